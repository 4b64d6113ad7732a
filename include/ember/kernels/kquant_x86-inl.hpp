// x86 int8 matmul kernels for the K-quants (Q2_K .. Q6_K) against Q8_K
// activations, shared by both SIMD backends: highway_int8-inl.hpp includes it
// inside each x86 target's int8 namespaces, xsimd.hpp inside its AVX2 code.
//
// The includer defines, before including it:
//   EMBER_KQ_VNNI    1 to use AVX-512 VNNI (vpdpwssd), 0 for AVX2 only;
//   EMBER_KQ_INLINE  the inline specifier for these functions;
// and provides, in the enclosing namespace, `float LoadHalf(const uint8_t*)`
// (an f16 field at any address) and `constexpr size_t kMaxTok` (tokens that
// share one pass over a weight row). No include guard (a namespace may take it
// twice, with and without VNNI) and no standard-library includes: <cstddef>,
// <cstdint>, <cstring>, <type_traits>, <immintrin.h>, quant/blocks.hpp and
// kernels/matrix.hpp must come first, outside any namespace.
//
// The whole super-block stays in integers: per token, the group scales
// multiply maddubs's int16 pair sums (madd, or vpdpwssd with VNNI) into int32
// lanes, the mins (or Q3_K's -4 and Q6_K's -32 offsets) meet the activations'
// bsums the same way, and one horizontal sum gives the exact integers
// Reference computes. Then the super-block's term, scale products and all, is
// Reference's expression in double (every product in it is exact), added in
// block order: the results equal Reference's bit for bit, on every arch, with
// or without VNNI.

#if !defined(EMBER_KQ_VNNI) || !defined(EMBER_KQ_INLINE)
#error "define EMBER_KQ_VNNI (0 or 1) and EMBER_KQ_INLINE before including kquant_x86-inl.hpp"
#endif

// acc + (u * s) * scale: maddubs's int16 sums of byte pairs times 16-bit
// scales, summed in pairs into int32 lanes. The callers keep u * s pairs and
// their scaled sums far from int16 / int32 limits (see each kernel).
EMBER_KQ_INLINE __m256i DotScaled(__m256i acc, __m256i u, __m256i s, __m256i scale) {
  const __m256i pairs = _mm256_maddubs_epi16(u, s);
#if EMBER_KQ_VNNI
  return _mm256_dpwssd_epi32(acc, pairs, scale);
#else
  return _mm256_add_epi32(acc, _mm256_madd_epi16(pairs, scale));
#endif
}

// The sums of the 8 int32 lanes of a and of b, exact (no lane sum overflows).
EMBER_KQ_INLINE void SumLanes2(__m256i a, __m256i b, int& sum_a, int& sum_b) {
  const __m256i pairs = _mm256_hadd_epi32(a, b);  // [a01 a23 b01 b23 | a45 a67 b45 b67]
  __m128i s = _mm_add_epi32(_mm256_castsi256_si128(pairs), _mm256_extracti128_si256(pairs, 1));
  s = _mm_hadd_epi32(s, s);  // [a, b, a, b]
  sum_a = _mm_cvtsi128_si32(s);
  sum_b = _mm_extract_epi32(s, 1);
}

// 16-bit lane i (of 8) of each 128-bit half of v, broadcast across that half:
// shuffle control picking bytes 2i and 2i + 1.
EMBER_KQ_INLINE __m256i BroadcastWord(__m256i v, int low_half, int high_half) {
  const __m256i control = _mm256_set_m128i(_mm_set1_epi16(short(0x0100 + 0x0202 * high_half)),
                                           _mm_set1_epi16(short(0x0100 + 0x0202 * low_half)));
  return _mm256_shuffle_epi8(v, control);
}

EMBER_KQ_INLINE const int8_t* ActQuants(const quant::BlockQ8_K* a) { return a->qs; }
EMBER_KQ_INLINE __m256i ActBsums(const quant::BlockQ8_K* a) {
  return _mm256_loadu_si256(reinterpret_cast<const __m256i*>(a->bsums));
}
EMBER_KQ_INLINE __m256i LoadAct(const int8_t* p) { return _mm256_loadu_si256(reinterpret_cast<const __m256i*>(p)); }

// One Q4_K / Q5_K super-block against kTok tokens' Q8_K blocks: sum[k] gets
// Reference's term d * isum - dmin * summs. Eight groups of 32: maddubs pairs
// stay below 2 * 31 * 128, |isum| below 63 * 31 * 127 * 256 < 2^26.
template <size_t kTok, DType kT>
EMBER_KQ_INLINE void K4Block(const uint8_t* blk, const quant::BlockQ8_K* const (&act)[kTok], double (&sum)[kTok]) {
  using B = std::conditional_t<kT == DType::Q4_K, quant::BlockQ4_K, quant::BlockQ5_K>;
  // The packed 6-bit scales and mins (quant::unpack_scale_min_k4) four at a
  // time in 32-bit words: bytes 0..3 hold groups 0..3, the nibbles of bytes
  // 8..11 with the top two bits of bytes 0..7 groups 4..7.
  uint32_t packed[3];
  std::memcpy(packed, blk + offsetof(B, scales), sizeof(packed));
  const uint32_t scales_low = packed[0] & 0x3f3f3f3f;
  const uint32_t mins_low = packed[1] & 0x3f3f3f3f;
  const uint32_t scales_high = (packed[2] & 0x0f0f0f0f) | ((packed[0] >> 6) & 0x03030303) << 4;
  const uint32_t mins_high = ((packed[2] >> 4) & 0x0f0f0f0f) | ((packed[1] >> 6) & 0x03030303) << 4;
  const __m128i scales8 = _mm_set_epi32(0, 0, int(scales_high), int(scales_low));
  const __m128i mins8 = _mm_set_epi32(0, 0, int(mins_high), int(mins_low));
  // Scales as int16 in both halves; each min twice, for the two bsums of its group.
  const __m256i scales16 = _mm256_broadcastsi128_si256(_mm_cvtepu8_epi16(scales8));
  const __m256i mins16 = _mm256_cvtepu8_epi16(_mm_unpacklo_epi8(mins8, mins8));

  const uint8_t* qs = blk + offsetof(B, qs);
  __m256i qh = _mm256_setzero_si256();
  if constexpr (kT == DType::Q5_K) qh = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(blk + offsetof(B, qh)));
  const __m256i nibble = _mm256_set1_epi8(0x0f);
  __m256i isum[kTok];
  for (size_t k = 0; k < kTok; ++k) isum[k] = _mm256_setzero_si256();
#pragma GCC unroll 4
  for (int pair = 0; pair < 4; ++pair) {
    // Groups 2 * pair (low nibbles) and 2 * pair + 1 (high nibbles).
    const __m256i raw = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(qs + 32 * pair));
    __m256i q0 = _mm256_and_si256(raw, nibble);
    __m256i q1 = _mm256_and_si256(_mm256_srli_epi16(raw, 4), nibble);
    if constexpr (kT == DType::Q5_K) {
      // Bit g of qh[l] is the fifth bit of element l of group g: move it to
      // bit 4 (16-bit shifts by at most 4 keep each byte's bits its own).
      const __m256i bits = _mm256_srli_epi16(qh, 2 * pair);
      const __m256i fifth = _mm256_set1_epi8(0x10);
      q0 = _mm256_or_si256(q0, _mm256_and_si256(_mm256_slli_epi16(bits, 4), fifth));
      q1 = _mm256_or_si256(q1, _mm256_and_si256(_mm256_slli_epi16(bits, 3), fifth));
    }
    const __m256i scale0 = BroadcastWord(scales16, 2 * pair, 2 * pair);
    const __m256i scale1 = BroadcastWord(scales16, 2 * pair + 1, 2 * pair + 1);
#pragma GCC unroll 4
    for (size_t k = 0; k < kTok; ++k) {
      const int8_t* a = ActQuants(act[k]) + 64 * pair;
      isum[k] = DotScaled(isum[k], q0, LoadAct(a), scale0);
      isum[k] = DotScaled(isum[k], q1, LoadAct(a + 32), scale1);
    }
  }
  const float dw = LoadHalf(blk + offsetof(B, d_f16));
  const float dminw = LoadHalf(blk + offsetof(B, dmin_f16));
#pragma GCC unroll 4
  for (size_t k = 0; k < kTok; ++k) {
    int is, summs;
    SumLanes2(isum[k], _mm256_madd_epi16(ActBsums(act[k]), mins16), is, summs);
    const float d = dw * act[k]->d;
    const float dmin = dminw * act[k]->d;
    sum[k] += double(d) * is - double(dmin) * summs;
  }
}

// Q2_K, Q3_K and Q6_K: 16 groups of 16, element 128 h + 32 t + l of the
// super-block in byte l of vector t of half h, quants unsigned (Q3_K's and
// Q6_K's offsets come back through the bsums, below).
template <DType kT>
EMBER_KQ_INLINE void K16Quants(const uint8_t* blk, int h, __m256i (&q)[4]) {
  if constexpr (kT == DType::Q6_K) {
    // Low nibble t / 2 of ql[64 h + 32 (t % 2) + l], bits 2 t of qh[32 h + l]:
    // q in 0..63. (16-bit shifts by at most 4 keep each byte's bits its own.)
    using B = quant::BlockQ6_K;
    const uint8_t* ql = blk + offsetof(B, ql) + 64 * h;
    const __m256i l0 = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(ql));
    const __m256i l1 = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(ql + 32));
    const __m256i hb = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(blk + offsetof(B, qh) + 32 * h));
    const __m256i nibble = _mm256_set1_epi8(0x0f), two_bits = _mm256_set1_epi8(0x30);
    q[0] = _mm256_or_si256(_mm256_and_si256(l0, nibble), _mm256_and_si256(_mm256_slli_epi16(hb, 4), two_bits));
    q[1] = _mm256_or_si256(_mm256_and_si256(l1, nibble), _mm256_and_si256(_mm256_slli_epi16(hb, 2), two_bits));
    q[2] = _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(l0, 4), nibble), _mm256_and_si256(hb, two_bits));
    q[3] = _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(l1, 4), nibble),
                           _mm256_and_si256(_mm256_srli_epi16(hb, 2), two_bits));
  } else {
    // Bits 2 t of qs[32 h + l]; Q3_K adds bit 4 h + t of hmask[l] as bit 2:
    // q + 4 in 0..7 where the block means q - 4 * !high in -4..3.
    using B = std::conditional_t<kT == DType::Q2_K, quant::BlockQ2_K, quant::BlockQ3_K>;
    const __m256i raw = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(blk + offsetof(B, qs) + 32 * h));
    const __m256i two = _mm256_set1_epi8(0x03);
    for (int t = 0; t < 4; ++t) q[t] = _mm256_and_si256(_mm256_srli_epi16(raw, 2 * t), two);
    if constexpr (kT == DType::Q3_K) {
      const __m256i hm = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(blk + offsetof(B, hmask)));
      const __m256i bit2 = _mm256_set1_epi8(0x04);
      for (int t = 0; t < 4; ++t) {
        // Bit 4 h + t down to bit 0, then up to bit 2, each byte on its own.
        const __m256i high = _mm256_slli_epi16(_mm256_srli_epi16(hm, 4 * h + t), 2);
        q[t] = _mm256_or_si256(q[t], _mm256_and_si256(high, bit2));
      }
    }
  }
}

// The 16 group scales of a Q2_K / Q3_K / Q6_K super-block as int16 (group g
// in lane g), and what multiplies the bsums: Q2_K's mins, the scales again
// for Q3_K and Q6_K (whose quant offsets, 4 and 32, are sum(scale * bsum)).
template <DType kT>
EMBER_KQ_INLINE void K16Scales(const uint8_t* blk, __m256i& scales16, __m256i& bsum_factors) {
  if constexpr (kT == DType::Q6_K) {
    scales16 = _mm256_cvtepi8_epi16(
        _mm_loadu_si128(reinterpret_cast<const __m128i*>(blk + offsetof(quant::BlockQ6_K, scales))));
    bsum_factors = scales16;
  } else if constexpr (kT == DType::Q2_K) {
    // Scale in the low nibble, min in the high one.
    const __m128i packed = _mm_loadu_si128(reinterpret_cast<const __m128i*>(blk + offsetof(quant::BlockQ2_K, scales)));
    const __m128i nibble = _mm_set1_epi8(0x0f);
    scales16 = _mm256_cvtepu8_epi16(_mm_and_si128(packed, nibble));
    bsum_factors = _mm256_cvtepu8_epi16(_mm_and_si128(_mm_srli_epi16(packed, 4), nibble));
  } else {
    // quant::unpack_scale_q3_k four groups at a time in 32-bit words: the low
    // nibbles of bytes 0..7 are groups 0..7, their high nibbles groups 8..15;
    // bits 2 k of bytes 8..11 are the top bits of groups 4 k .. 4 k + 3.
    uint32_t packed[3];
    std::memcpy(packed, blk + offsetof(quant::BlockQ3_K, scales), sizeof(packed));
    uint32_t word[4];
    for (int k = 0; k < 4; ++k) {
      const uint32_t low = (packed[k % 2] >> (4 * (k / 2))) & 0x0f0f0f0f;
      word[k] = low | ((packed[2] >> (2 * k)) & 0x03030303) << 4;
    }
    const __m128i biased = _mm_set_epi32(int(word[3]), int(word[2]), int(word[1]), int(word[0]));
    scales16 = _mm256_cvtepi8_epi16(_mm_sub_epi8(biased, _mm_set1_epi8(32)));
    bsum_factors = scales16;
  }
}

// One Q2_K / Q3_K / Q6_K super-block against kTok tokens: sum[k] gets
// Reference's term. maddubs pairs stay below 2 * 63 * 128 and |isum| below
// 128 * 63 * 127 * 256 < 2^29 (Q6_K, the widest).
template <size_t kTok, DType kT>
EMBER_KQ_INLINE void K16Block(const uint8_t* blk, const quant::BlockQ8_K* const (&act)[kTok], double (&sum)[kTok]) {
  __m256i scales16, bsum_factors;
  K16Scales<kT>(blk, scales16, bsum_factors);
  __m256i isum[kTok];
  for (size_t k = 0; k < kTok; ++k) isum[k] = _mm256_setzero_si256();
#pragma GCC unroll 2
  for (int h = 0; h < 2; ++h) {
    __m256i q[4];
    K16Quants<kT>(blk, h, q);
    const __m256i half_scales =
        _mm256_broadcastsi128_si256(h == 0 ? _mm256_castsi256_si128(scales16) : _mm256_extracti128_si256(scales16, 1));
#pragma GCC unroll 4
    for (int t = 0; t < 4; ++t) {
      // maddubs lanes 0..7 cover elements 0..15 (group 8 h + 2 t), 8..15 the next group.
      const __m256i scale = BroadcastWord(half_scales, 2 * t, 2 * t + 1);
#pragma GCC unroll 4
      for (size_t k = 0; k < kTok; ++k) {
        isum[k] = DotScaled(isum[k], q[t], LoadAct(ActQuants(act[k]) + 128 * h + 32 * t), scale);
      }
    }
  }
  using B = std::conditional_t<kT == DType::Q2_K, quant::BlockQ2_K,
                               std::conditional_t<kT == DType::Q3_K, quant::BlockQ3_K, quant::BlockQ6_K>>;
  const float dw = LoadHalf(blk + offsetof(B, d_f16));
#pragma GCC unroll 4
  for (size_t k = 0; k < kTok; ++k) {
    int is, bs;
    SumLanes2(isum[k], _mm256_madd_epi16(ActBsums(act[k]), bsum_factors), is, bs);
    if constexpr (kT == DType::Q2_K) {
      const float dall = act[k]->d * dw;
      const float dmin = act[k]->d * LoadHalf(blk + offsetof(B, dmin_f16));
      sum[k] += double(dall) * is - double(dmin) * bs;
    } else {
      sum[k] += double(dw * act[k]->d) * (is - (kT == DType::Q3_K ? 4 : 32) * bs);
    }
  }
}

// One K-quant weight row against kTok tokens' Q8_K activations (one block per
// 256 columns each), super-blocks in order, as Reference sums them.
template <size_t kTok, DType kT>
EMBER_KQ_INLINE void KQuantRow(const uint8_t* row, size_t n_block, const quant::BlockQ8_K* const* act, float* y,
                               size_t y_stride) {
  constexpr size_t kBytes = block_bytes(kT);
  double sum[kTok];
  const quant::BlockQ8_K* a[kTok];
  for (size_t k = 0; k < kTok; ++k) {
    sum[k] = 0.0;
    a[k] = act[k];
  }
  for (size_t b = 0; b < n_block; ++b) {
    if constexpr (kT == DType::Q4_K || kT == DType::Q5_K) {
      K4Block<kTok, kT>(row + b * kBytes, a, sum);
    } else {
      K16Block<kTok, kT>(row + b * kBytes, a, sum);
    }
    for (size_t k = 0; k < kTok; ++k) ++a[k];
  }
  for (size_t k = 0; k < kTok; ++k) y[k * y_stride] = float(sum[k]);
}

template <size_t kTok>
EMBER_KQ_INLINE void KQuantRowTokens(const MatrixView& w, const std::byte* row, const quant::BlockQ8_K* const* act,
                                     float* y, size_t y_stride) {
  const auto* bytes = reinterpret_cast<const uint8_t*>(row);
  const size_t n_block = w.n_col / quant::kSuperBlockSize;
  switch (w.dtype) {
    case DType::Q2_K: KQuantRow<kTok, DType::Q2_K>(bytes, n_block, act, y, y_stride); break;
    case DType::Q3_K: KQuantRow<kTok, DType::Q3_K>(bytes, n_block, act, y, y_stride); break;
    case DType::Q4_K: KQuantRow<kTok, DType::Q4_K>(bytes, n_block, act, y, y_stride); break;
    case DType::Q5_K: KQuantRow<kTok, DType::Q5_K>(bytes, n_block, act, y, y_stride); break;
    case DType::Q6_K: KQuantRow<kTok, DType::Q6_K>(bytes, n_block, act, y, y_stride); break;
    default: break;  // the caller routes other formats elsewhere
  }
}

// Rows [r_begin, r_end) of a K-quant matrix against n_tok (<= kTokenChunk)
// tokens' Q8_K activations, act[k] pointing at token k's first block.
inline void KQuantRows(const MatrixView& w, const quant::BlockQ8_K* const* act, size_t n_tok, float* y, size_t y_stride,
                       size_t r_begin, size_t r_end) {
  for (size_t r = r_begin; r < r_end; ++r) {
    const std::byte* row = w.row(r);
    size_t t = 0;
    for (; t + kMaxTok <= n_tok; t += kMaxTok) {
      KQuantRowTokens<kMaxTok>(w, row, act + t, y + t * y_stride + r, y_stride);
    }
    switch (n_tok - t) {
      case 1: KQuantRowTokens<1>(w, row, act + t, y + t * y_stride + r, y_stride); break;
      case 2: KQuantRowTokens<2>(w, row, act + t, y + t * y_stride + r, y_stride); break;
      case 3: KQuantRowTokens<3>(w, row, act + t, y + t * y_stride + r, y_stride); break;
      default: break;
    }
  }
}
