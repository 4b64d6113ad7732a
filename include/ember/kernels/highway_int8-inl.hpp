// x86 int8 matmul kernels of the Highway backend: Q8_0, Q4_0, Q4_1, Q5_0 and
// Q5_1 weights against planar Q8 activations (activation_buffer.hpp), and the
// K-quants (Q2_K, Q3_K, Q4_K, Q5_K, Q6_K) against Q8_K blocks.
//
// highway-inl.hpp includes this inside its per-target namespace, on the x86
// targets only, twice on AVX3 / AVX3_DL: once as namespace int8_plain (AVX2
// instructions: maddubs + madd) and once as int8_vnni with AVX512_VNNI added to
// the target attributes (vpdpbusd). Compilers refuse to inline a VNNI
// intrinsic into a function compiled without VNNI, and the AVX3 target does
// not have it (Cascade Lake has VNNI, Skylake-X does not), so the VNNI kernels
// need their own copy of every function on the path; the runtime check is in
// highway_impl.hpp. No include guard: that is the point. No standard-library
// includes either: this sits inside a namespace.
//
// Per block of 32, the 32 int8 products sum exactly into 8 int32 lanes; one
// FMA scales them by d_w * d_a (an exact product of two f16 values) into a
// float accumulator. Even and odd blocks use separate accumulators, so two FMA
// chains are in flight even for one token; one horizontal sum per output.
// Q4_1's m * s terms (exact products) add up in a scalar float, in block order.
// Signed weights (Q8_0, Q4_0) go through maddubs / vpdpbusd, which take one
// unsigned operand, as |w| times a with w's sign; activation quants are never
// -128, so that cannot overflow.
//
// The VNNI copy takes the even and odd block of each pair in one 512-bit
// register (lanes 0..7 and 8..15) with the same per-lane arithmetic as the two
// 256-bit accumulators, so both copies give the same bits.
//
// The K-quants keep the whole super-block in integers: per token, the group
// scales multiply maddubs's int16 pair sums (madd, or vpdpwssd in the VNNI
// copy) into int32 lanes, the mins (or Q6_K's -32 offset) meet the
// activations' bsums the same way, and one horizontal sum gives the exact
// integers Reference computes. Then the super-block's term, scale products
// and all, is Reference's expression in double (every product in it is
// exact), added in block order: the results equal Reference's bit for bit, on
// every target, with or without VNNI.

#ifndef EMBER_INT8_VNNI
#error "define EMBER_INT8_VNNI (0 or 1) before including highway_int8-inl.hpp"
#endif

// 32 unsigned bytes u times 32 signed bytes s, summed in fours into 8 int32
// lanes. maddubs saturates its int16 pair sums: u * s pairs stay below 2^15
// here (|u| <= 128 and |s| <= 127, or u <= 15).
HWY_INLINE __m256i DotU8S8(__m256i u, __m256i s) {
#if EMBER_INT8_VNNI
  return _mm256_dpbusd_epi32(_mm256_setzero_si256(), u, s);
#else
  return _mm256_madd_epi16(_mm256_maddubs_epi16(u, s), _mm256_set1_epi16(1));
#endif
}

// The 32 quants of a Q4 block as bytes 0..15 in element order: low nibbles
// are elements 0..15, high nibbles 16..31.
HWY_INLINE __m256i UnpackNibbles(const uint8_t* qs) {
  const __m128i raw = _mm_loadu_si128(reinterpret_cast<const __m128i*>(qs));
  const __m256i both = _mm256_set_m128i(_mm_srli_epi16(raw, 4), raw);
  return _mm256_and_si256(both, _mm256_set1_epi8(0x0f));
}

// 0x10 in byte j where bit j of a Q5 block's qh (32 bits, little-endian) is
// set: the fifth bit of each quant, in element order.
HWY_INLINE __m256i FifthBits(const uint8_t* qh) {
  uint32_t bits;
  std::memcpy(&bits, qh, sizeof(bits));
  // Byte j takes byte j / 8 of qh, then tests its bit j % 8.
  const __m256i spread = _mm256_shuffle_epi8(
      _mm256_set1_epi32(int(bits)), _mm256_set_epi64x(0x0303030303030303, 0x0202020202020202, 0x0101010101010101, 0));
  const __m256i select = _mm256_set1_epi64x(int64_t(0x8040201008040201));
  return _mm256_and_si256(_mm256_cmpeq_epi8(_mm256_and_si256(spread, select), select), _mm256_set1_epi8(0x10));
}

// The 32 quants of a quant block in element order: int8 for Q8_0, and the
// weight's integer q without its offset for the 4- and 5-bit formats (q - 8 for
// Q4_0 and q - 16 for Q5_0 as int8; Q4_1 and Q5_1 stay unsigned).
template <DType kT>
HWY_INLINE __m256i LoadQuants(const uint8_t* blk) {
  using L = QuantLayout<kT>;
  if constexpr (kT == DType::Q8_0) {
    return _mm256_loadu_si256(reinterpret_cast<const __m256i*>(blk + L::kQs));
  } else if constexpr (kT == DType::Q4_0) {
    return _mm256_sub_epi8(UnpackNibbles(blk + L::kQs), _mm256_set1_epi8(8));
  } else if constexpr (kT == DType::Q4_1) {
    return UnpackNibbles(blk + L::kQs);
  } else {
    const __m256i q = _mm256_or_si256(UnpackNibbles(blk + L::kQs), FifthBits(blk + L::kQh));
    return kT == DType::Q5_0 ? _mm256_sub_epi8(q, _mm256_set1_epi8(16)) : q;
  }
}

// Formats whose quants are unsigned with an m * s offset term (Q8_1 activations).
template <DType kT>
inline constexpr bool kHasOffset = kT == DType::Q4_1 || kT == DType::Q5_1;

// An f16 scale of a block, which may sit at any byte address.
HWY_INLINE float LoadHalf(const uint8_t* p) {
  uint16_t h;
  std::memcpy(&h, p, sizeof(h));
#ifndef HWY_DISABLE_F16C
  return _cvtsh_ss(h);
#else
  return f16_to_f32(h);
#endif
}

// Sum of 8 lanes in a fixed order.
HWY_INLINE float SumLanes(__m256 v) {
  __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
  s = _mm_add_ps(s, _mm_movehl_ps(s, s));
  s = _mm_add_ss(s, _mm_movehdup_ps(s));
  return _mm_cvtss_f32(s);
}

// One block of a weight row against kTok tokens: acc[k] += d_w * d_a * sums.
template <size_t kTok, DType kT>
HWY_INLINE void QuantBlock(const uint8_t* HWY_RESTRICT blk, size_t b, const int8_t* const (&aq)[kTok],
                           const float* const (&ad)[kTok], const float* const (&as)[kTok], __m256 (&acc)[kTok],
                           float (&offset)[kTok]) {
  using L = QuantLayout<kT>;
  const float dw = LoadHalf(blk + L::kScale);
  const __m256i wq = LoadQuants<kT>(blk);
  const __m256i wabs = _mm256_sign_epi8(wq, wq);
#pragma GCC unroll 4
  for (size_t k = 0; k < kTok; ++k) {
    const __m256i a = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(aq[k] + 32 * b));
    const __m256i sumi = kHasOffset<kT> ? DotU8S8(wq, a) : DotU8S8(wabs, _mm256_sign_epi8(a, wq));
    acc[k] = _mm256_fmadd_ps(_mm256_set1_ps(dw * ad[k][b]), _mm256_cvtepi32_ps(sumi), acc[k]);
  }
  if constexpr (kHasOffset<kT>) {
    const float mw = LoadHalf(blk + L::kOffset);
#pragma GCC unroll 4
    for (size_t k = 0; k < kTok; ++k) offset[k] += mw * as[k][b];
  }
}

#if EMBER_INT8_VNNI
// Blocks b and b + 1 against kTok tokens in 512-bit registers: lanes 0..7
// hold block b (the even block), lanes 8..15 block b + 1. Per lane the float
// arithmetic is that of QuantBlock into acc0 and acc1, so results are the
// same bits as the 256-bit kernels'.
template <size_t kTok, DType kT>
HWY_INLINE void QuantBlockPair(const uint8_t* HWY_RESTRICT blk, size_t b, const int8_t* const (&aq)[kTok],
                               const float* const (&ad)[kTok], const float* const (&as)[kTok], __m512 (&acc)[kTok],
                               float (&offset)[kTok]) {
  using L = QuantLayout<kT>;
  const uint8_t* blk1 = blk + L::kBytes;
  __m512i wq;
  if constexpr (kT == DType::Q8_0) {
    const __m256i w0 = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(blk + L::kQs));
    const __m256i w1 = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(blk1 + L::kQs));
    wq = _mm512_inserti64x4(_mm512_castsi256_si512(w0), w1, 1);
  } else if constexpr (kT == DType::Q5_0 || kT == DType::Q5_1) {
    wq = _mm512_inserti64x4(_mm512_castsi256_si512(LoadQuants<kT>(blk)), LoadQuants<kT>(blk1), 1);
  } else {
    const __m128i r0 = _mm_loadu_si128(reinterpret_cast<const __m128i*>(blk + L::kQs));
    const __m128i r1 = _mm_loadu_si128(reinterpret_cast<const __m128i*>(blk1 + L::kQs));
    const __m256i low = _mm256_set_m128i(r1, r0);
    // 128-bit lanes [r0, r1, r0 >> 4, r1 >> 4] -> [r0, r0 >> 4, r1, r1 >> 4]
    const __m512i both = _mm512_inserti64x4(_mm512_castsi256_si512(low), _mm256_srli_epi16(low, 4), 1);
    wq = _mm512_and_si512(_mm512_shuffle_i64x2(both, both, _MM_SHUFFLE(3, 1, 2, 0)), _mm512_set1_epi8(0x0f));
    if constexpr (kT == DType::Q4_0) wq = _mm512_sub_epi8(wq, _mm512_set1_epi8(8));
  }
  // Signed weights: |w| times a negated where w < 0 (where w = 0, |w| = 0).
  const __mmask64 negative = _mm512_movepi8_mask(wq);
  const __m512i wabs = _mm512_abs_epi8(wq);
  const __m512 dw = _mm512_insertf32x8(_mm512_castps256_ps512(_mm256_set1_ps(LoadHalf(blk + L::kScale))),
                                       _mm256_set1_ps(LoadHalf(blk1 + L::kScale)), 1);
  const __m512i halves = _mm512_set_epi32(1, 1, 1, 1, 1, 1, 1, 1, 0, 0, 0, 0, 0, 0, 0, 0);
#pragma GCC unroll 4
  for (size_t k = 0; k < kTok; ++k) {
    const __m512i a = _mm512_loadu_si512(aq[k] + 32 * b);
    const __m512i sumi = kHasOffset<kT>
                             ? _mm512_dpbusd_epi32(_mm512_setzero_si512(), wq, a)
                             : _mm512_dpbusd_epi32(_mm512_setzero_si512(), wabs,
                                                   _mm512_mask_sub_epi8(a, negative, _mm512_setzero_si512(), a));
    const __m128 da = _mm_castsi128_ps(_mm_loadl_epi64(reinterpret_cast<const __m128i*>(ad[k] + b)));
    const __m512 scale = _mm512_mul_ps(dw, _mm512_permutexvar_ps(halves, _mm512_castps128_ps512(da)));
    acc[k] = _mm512_fmadd_ps(scale, _mm512_cvtepi32_ps(sumi), acc[k]);
  }
  if constexpr (kHasOffset<kT>) {
    const float m0 = LoadHalf(blk + L::kOffset), m1 = LoadHalf(blk1 + L::kOffset);
#pragma GCC unroll 4
    for (size_t k = 0; k < kTok; ++k) {
      offset[k] += m0 * as[k][b];
      offset[k] += m1 * as[k][b + 1];
    }
  }
}
#endif

// One weight row against kTok tokens' activations. Even and odd blocks feed
// separate accumulators (acc0, acc1), fixed by the block index.
template <size_t kTok, DType kT>
HWY_INLINE void QuantRow(const uint8_t* HWY_RESTRICT row, size_t n_block, const detail::PlanarQ8* act,
                         float* HWY_RESTRICT y, size_t y_stride) {
  constexpr size_t kBytes = QuantLayout<kT>::kBytes;
  const int8_t* aq[kTok];
  const float* ad[kTok];
  const float* as[kTok];
  __m256 acc0[kTok], acc1[kTok];
  float offset[kTok];
  for (size_t k = 0; k < kTok; ++k) {
    aq[k] = act[k].qs;
    ad[k] = act[k].d;
    as[k] = act[k].s;
    acc0[k] = acc1[k] = _mm256_setzero_ps();
    offset[k] = 0.0f;
  }
  size_t b = 0;
#if EMBER_INT8_VNNI
  __m512 acc[kTok];
  for (size_t k = 0; k < kTok; ++k) acc[k] = _mm512_setzero_ps();
  for (; b + 2 <= n_block; b += 2) QuantBlockPair<kTok, kT>(row + b * kBytes, b, aq, ad, as, acc, offset);
  for (size_t k = 0; k < kTok; ++k) {
    acc0[k] = _mm512_castps512_ps256(acc[k]);
    acc1[k] = _mm512_extractf32x8_ps(acc[k], 1);
  }
#else
  for (; b + 2 <= n_block; b += 2) {
    QuantBlock<kTok, kT>(row + b * kBytes, b, aq, ad, as, acc0, offset);
    QuantBlock<kTok, kT>(row + (b + 1) * kBytes, b + 1, aq, ad, as, acc1, offset);
  }
#endif
  if (b < n_block) QuantBlock<kTok, kT>(row + b * kBytes, b, aq, ad, as, acc0, offset);
  for (size_t k = 0; k < kTok; ++k) {
    y[k * y_stride] = SumLanes(_mm256_add_ps(acc0[k], acc1[k])) + offset[k];
  }
}

template <size_t kTok>
HWY_INLINE void QuantRowTokens(const MatrixView& w, const std::byte* row, const detail::PlanarQ8* act, float* y,
                               size_t y_stride) {
  const auto* bytes = reinterpret_cast<const uint8_t*>(row);
  const size_t n_block = w.n_col / 32;
  switch (w.dtype) {
    case DType::Q8_0: QuantRow<kTok, DType::Q8_0>(bytes, n_block, act, y, y_stride); break;
    case DType::Q4_0: QuantRow<kTok, DType::Q4_0>(bytes, n_block, act, y, y_stride); break;
    case DType::Q4_1: QuantRow<kTok, DType::Q4_1>(bytes, n_block, act, y, y_stride); break;
    case DType::Q5_0: QuantRow<kTok, DType::Q5_0>(bytes, n_block, act, y, y_stride); break;
    case DType::Q5_1: QuantRow<kTok, DType::Q5_1>(bytes, n_block, act, y, y_stride); break;
    default: break;  // the caller routes other formats elsewhere
  }
}

// Rows [r_begin, r_end) against n_tok (<= kTokenChunk) tokens of planar
// activations `act`; y points at token 0's outputs.
void QuantRows(const MatrixView& w, const detail::PlanarQ8* act, size_t n_tok, float* y, size_t y_stride,
               size_t r_begin, size_t r_end) {
  for (size_t r = r_begin; r < r_end; ++r) {
    const std::byte* row = w.row(r);
    size_t t = 0;
    for (; t + kMaxTok <= n_tok; t += kMaxTok) QuantRowTokens<kMaxTok>(w, row, act + t, y + t * y_stride + r, y_stride);
    switch (n_tok - t) {
      case 1: QuantRowTokens<1>(w, row, act + t, y + t * y_stride + r, y_stride); break;
      case 2: QuantRowTokens<2>(w, row, act + t, y + t * y_stride + r, y_stride); break;
      case 3: QuantRowTokens<3>(w, row, act + t, y + t * y_stride + r, y_stride); break;
      default: break;
    }
  }
}

// ---------------------------------------------------------------- K-quants

// acc + (u * s) * scale: maddubs's int16 sums of byte pairs times 16-bit
// scales, summed in pairs into int32 lanes. The callers keep u * s pairs and
// their scaled sums far from int16 / int32 limits (see each kernel).
HWY_INLINE __m256i DotScaled(__m256i acc, __m256i u, __m256i s, __m256i scale) {
  const __m256i pairs = _mm256_maddubs_epi16(u, s);
#if EMBER_INT8_VNNI
  return _mm256_dpwssd_epi32(acc, pairs, scale);
#else
  return _mm256_add_epi32(acc, _mm256_madd_epi16(pairs, scale));
#endif
}

// The sums of the 8 int32 lanes of a and of b, exact (no lane sum overflows).
HWY_INLINE void SumLanes2(__m256i a, __m256i b, int& sum_a, int& sum_b) {
  const __m256i pairs = _mm256_hadd_epi32(a, b);  // [a01 a23 b01 b23 | a45 a67 b45 b67]
  __m128i s = _mm_add_epi32(_mm256_castsi256_si128(pairs), _mm256_extracti128_si256(pairs, 1));
  s = _mm_hadd_epi32(s, s);  // [a, b, a, b]
  sum_a = _mm_cvtsi128_si32(s);
  sum_b = _mm_extract_epi32(s, 1);
}

// 16-bit lane i (of 8) of each 128-bit half of v, broadcast across that half:
// shuffle control picking bytes 2i and 2i + 1.
HWY_INLINE __m256i BroadcastWord(__m256i v, int low_half, int high_half) {
  const __m256i control = _mm256_set_m128i(_mm_set1_epi16(short(0x0100 + 0x0202 * high_half)),
                                           _mm_set1_epi16(short(0x0100 + 0x0202 * low_half)));
  return _mm256_shuffle_epi8(v, control);
}

HWY_INLINE const int8_t* ActQuants(const quant::BlockQ8_K* a) { return a->qs; }
HWY_INLINE __m256i ActBsums(const quant::BlockQ8_K* a) {
  return _mm256_loadu_si256(reinterpret_cast<const __m256i*>(a->bsums));
}
HWY_INLINE __m256i LoadAct(const int8_t* p) { return _mm256_loadu_si256(reinterpret_cast<const __m256i*>(p)); }

// One Q4_K / Q5_K super-block against kTok tokens' Q8_K blocks: sum[k] gets
// Reference's term d * isum - dmin * summs. Eight groups of 32: maddubs pairs
// stay below 2 * 31 * 128, |isum| below 63 * 31 * 127 * 256 < 2^26.
template <size_t kTok, DType kT>
HWY_INLINE void K4Block(const uint8_t* HWY_RESTRICT blk, const quant::BlockQ8_K* const (&act)[kTok],
                        double (&sum)[kTok]) {
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
HWY_INLINE void K16Quants(const uint8_t* HWY_RESTRICT blk, int h, __m256i (&q)[4]) {
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
HWY_INLINE void K16Scales(const uint8_t* HWY_RESTRICT blk, __m256i& scales16, __m256i& bsum_factors) {
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
HWY_INLINE void K16Block(const uint8_t* HWY_RESTRICT blk, const quant::BlockQ8_K* const (&act)[kTok],
                         double (&sum)[kTok]) {
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
HWY_INLINE void KQuantRow(const uint8_t* HWY_RESTRICT row, size_t n_block, const quant::BlockQ8_K* const* act,
                          float* HWY_RESTRICT y, size_t y_stride) {
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
HWY_INLINE void KQuantRowTokens(const MatrixView& w, const std::byte* row, const quant::BlockQ8_K* const* act, float* y,
                                size_t y_stride) {
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
void KQuantRows(const MatrixView& w, const quant::BlockQ8_K* const* act, size_t n_tok, float* y, size_t y_stride,
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
