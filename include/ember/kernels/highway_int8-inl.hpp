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
// The K-quant kernels live in kquant_x86-inl.hpp, shared with xsimd.hpp and
// included at the end of this file.

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

// ------------------------------------------------ x16 row-interleaved layouts

// Q4_0, Q4_1 and Q8_0 weights in packed.hpp's x16 layout: lane r of every vector is row r of a
// 16-row group, so one broadcast of 4 activation bytes feeds 16 rows and nothing is summed
// across lanes. Per row and block, the 32 products sum exactly in int32; then
// acc_r = fma(d_w * d_a, float(sum), acc_r), one chain per row over the blocks in order
// (d_w * d_a, a product of two f16 values, is exact), and Q4_1 adds m_w * s_a through a
// second chain, off_r = fma(m_w, s_a, off_r), then acc_r + off_r. The nibbles enter the dot
// products unsigned; Q4_0's -8 offset is the integer -8 * sum(a) that the caller puts in the
// activation's s slot (QuantizePlanarQ8's correction). Q8_0 enters VNNI as w + 128 with -128 * sum(a) in
// that slot, and the 256-bit code as |w| times a with w's sign. The VNNI copy works on 16 rows per 512-bit
// vector, the other on two 256-bit halves: the same per-lane arithmetic, the same bits.

// Tokens per pass over a group's weights.
constexpr size_t kPackedTok = EMBER_INT8_VNNI ? 8 : 4;

// One line into L2: highway-inl.hpp's PrefetchL2, restated here because the VNNI copy of this
// file is compiled under other target attributes, which PrefetchL2 cannot be inlined into.
HWY_INLINE void PrefetchLine(const void* p) { _mm_prefetch(static_cast<const char*>(p), _MM_HINT_T2); }

// A run of cache lines to prefetch a line at a time, spread over a loop's steps (Step once
// per step): a burst of prefetches as long as a chunk waits on the core's few line-fill
// buffers and stalls the loop, one per step does not. The caller gives it enough steps.
// Into L2 (hint T2): with T0 the q8_0 attention's value pass stalled on the prefetches
// themselves (perf annotate; attention_bench --q8 --layers=22 4096 331-350 -> 315-316 us, one
// run of 419).
struct PrefetchRun {
  const uint8_t* p = nullptr;
  const uint8_t* end = nullptr;
  HWY_INLINE void Step() {
    if (p < end) {
      PrefetchLine(p);
      p += 64;
    }
  }
};

// Software prefetch of the weights a few KiB ahead of the kernel: the x16 loops are short
// enough per byte that the hardware prefetcher alone leaves them waiting on memory (Q4_K_M
// decode, 2 threads: 18.8 -> 22.2 t/s). Prefetches never fault, so reading past the end
// of a matrix is harmless. They fill L2 (hint T2), not L1: with T0 one core read the weights
// at 13-17 GB/s on AMD Zen 4 (`kquant_bench --packed --cold`, 5632 x 2048: Q4_0 12.7-13.9 ->
// 14.8-16.7 GB/s with T2, Q4_K 15.3-17.1 -> 17.7-20.3; decode with 2 threads, TinyLlama-shaped
// Q4_K_M 22-37 -> 36-44 t/s), most likely because a T0 prefetch holds one of the core's few L1
// miss buffers until its line arrives (not measured: no counters on that VM).
constexpr size_t kPrefetchBytes = 4096;
template <size_t kBytes>
HWY_INLINE void PrefetchAhead(const uint8_t* p) {
  for (size_t i = 0; i < kBytes; i += 64)
    _mm_prefetch(reinterpret_cast<const char*>(p + kPrefetchBytes + i), _MM_HINT_T2);
}

HWY_INLINE int32_t LoadI32(const int8_t* p) {
  int32_t v;
  std::memcpy(&v, p, sizeof(v));
  return v;
}

template <size_t kTok, DType kT>
HWY_INLINE void PackedGroup(const uint8_t* HWY_RESTRICT q, const uint8_t* HWY_RESTRICT dw,
                            const uint8_t* HWY_RESTRICT mw, size_t n_block, const detail::PlanarQ8* act,
                            float (*out)[kPackRows]) {
  // Operand c (0..7) of a block takes activation bytes 4c .. 4c + 3: for the nibble formats,
  // chunk c's low nibbles for c < 4 and chunk c - 4's high nibbles (elements 16 + 4 (c - 4))
  // otherwise; for Q8_0, chunk c.
  constexpr bool kQ8 = kT == DType::Q8_0;
  constexpr size_t kQuantBytes = kQ8 ? 512 : 256;
  const int8_t* aq[kTok];
  const float* ad[kTok];
  const float* as[kTok];
  for (size_t k = 0; k < kTok; ++k) {
    aq[k] = act[k].qs;
    ad[k] = act[k].d;
    as[k] = act[k].s;
  }
#if EMBER_INT8_VNNI
  const __m512i nibble = _mm512_set1_epi8(0x0f);
  __m512 acc[kTok], off[kTok];
  for (size_t k = 0; k < kTok; ++k) acc[k] = off[k] = _mm512_setzero_ps();
  for (size_t b = 0; b < n_block; ++b, q += kQuantBytes) {
    PrefetchAhead<kQuantBytes>(q);
    __m512i wv[8];
    if constexpr (kQ8) {  // w + 128 as unsigned; the correction adds -128 * sum(a)
      for (size_t c = 0; c < 8; ++c) wv[c] = _mm512_xor_si512(_mm512_load_si512(q + 64 * c), _mm512_set1_epi8(-128));
    } else {
      for (size_t c = 0; c < 4; ++c) {
        const __m512i raw = _mm512_load_si512(q + 64 * c);
        wv[c] = _mm512_and_si512(raw, nibble);
        wv[c + 4] = _mm512_and_si512(_mm512_srli_epi16(raw, 4), nibble);
      }
    }
    const __m512 d = _mm512_cvtph_ps(_mm256_load_si256(reinterpret_cast<const __m256i*>(dw + 32 * b)));
    __m512 m = _mm512_setzero_ps();
    if constexpr (kT == DType::Q4_1)
      m = _mm512_cvtph_ps(_mm256_load_si256(reinterpret_cast<const __m256i*>(mw + 32 * b)));
#pragma GCC unroll 8
    for (size_t k = 0; k < kTok; ++k) {
      const int8_t* a = aq[k] + 32 * b;
      int32_t correction = 0;
      if constexpr (kT != DType::Q4_1) std::memcpy(&correction, as[k] + b, sizeof(correction));
      __m512i s0 = _mm512_set1_epi32(correction), s1 = _mm512_setzero_si512();
      for (size_t c = 0; c < 8; c += 2) {
        s0 = _mm512_dpbusd_epi32(s0, wv[c], _mm512_set1_epi32(LoadI32(a + 4 * c)));
        s1 = _mm512_dpbusd_epi32(s1, wv[c + 1], _mm512_set1_epi32(LoadI32(a + 4 * c + 4)));
      }
      const __m512 scale = _mm512_mul_ps(d, _mm512_set1_ps(ad[k][b]));
      acc[k] = _mm512_fmadd_ps(scale, _mm512_cvtepi32_ps(_mm512_add_epi32(s0, s1)), acc[k]);
      if constexpr (kT == DType::Q4_1) off[k] = _mm512_fmadd_ps(m, _mm512_set1_ps(as[k][b]), off[k]);
    }
  }
  for (size_t k = 0; k < kTok; ++k) {
    if constexpr (kT == DType::Q4_1) acc[k] = _mm512_add_ps(acc[k], off[k]);
    _mm512_storeu_ps(out[k], acc[k]);
  }
#else
  const __m256i nibble = _mm256_set1_epi8(0x0f);
  __m256 acc[kTok][2], off[kTok][2];
  for (size_t k = 0; k < kTok; ++k)
    for (size_t h = 0; h < 2; ++h) acc[k][h] = off[k][h] = _mm256_setzero_ps();
  for (size_t b = 0; b < n_block; ++b, q += kQuantBytes) {
    PrefetchAhead<kQuantBytes>(q);
    for (size_t h = 0; h < 2; ++h) {  // rows 8h .. 8h + 7
      // Q8_0: |w| times a with w's sign, as QuantBlock does (no correction needed).
      __m256i wv[8], sign[kQ8 ? 8 : 1];
      if constexpr (kQ8) {
        for (size_t c = 0; c < 8; ++c) {
          sign[c] = _mm256_load_si256(reinterpret_cast<const __m256i*>(q + 64 * c + 32 * h));
          wv[c] = _mm256_sign_epi8(sign[c], sign[c]);
        }
      } else {
        for (size_t c = 0; c < 4; ++c) {
          const __m256i raw = _mm256_load_si256(reinterpret_cast<const __m256i*>(q + 64 * c + 32 * h));
          wv[c] = _mm256_and_si256(raw, nibble);
          wv[c + 4] = _mm256_and_si256(_mm256_srli_epi16(raw, 4), nibble);
        }
      }
      const __m256 d = _mm256_cvtph_ps(_mm_load_si128(reinterpret_cast<const __m128i*>(dw + 32 * b + 16 * h)));
      __m256 m = _mm256_setzero_ps();
      if constexpr (kT == DType::Q4_1)
        m = _mm256_cvtph_ps(_mm_load_si128(reinterpret_cast<const __m128i*>(mw + 32 * b + 16 * h)));
      for (size_t k = 0; k < kTok; ++k) {
        const int8_t* a = aq[k] + 32 * b;
        int32_t correction = 0;
        if constexpr (kT == DType::Q4_0) std::memcpy(&correction, as[k] + b, sizeof(correction));
        __m256i s0 = _mm256_set1_epi32(correction), s1 = _mm256_setzero_si256();
        for (size_t c = 0; c < 8; c += 2) {
          __m256i a0 = _mm256_set1_epi32(LoadI32(a + 4 * c)), a1 = _mm256_set1_epi32(LoadI32(a + 4 * c + 4));
          if constexpr (kQ8) {
            a0 = _mm256_sign_epi8(a0, sign[c]);
            a1 = _mm256_sign_epi8(a1, sign[c + 1]);
          }
          s0 = _mm256_add_epi32(s0, DotU8S8(wv[c], a0));
          s1 = _mm256_add_epi32(s1, DotU8S8(wv[c + 1], a1));
        }
        const __m256 scale = _mm256_mul_ps(d, _mm256_set1_ps(ad[k][b]));
        acc[k][h] = _mm256_fmadd_ps(scale, _mm256_cvtepi32_ps(_mm256_add_epi32(s0, s1)), acc[k][h]);
        if constexpr (kT == DType::Q4_1) off[k][h] = _mm256_fmadd_ps(m, _mm256_set1_ps(as[k][b]), off[k][h]);
      }
    }
  }
  for (size_t k = 0; k < kTok; ++k)
    for (size_t h = 0; h < 2; ++h) {
      if constexpr (kT == DType::Q4_1) acc[k][h] = _mm256_add_ps(acc[k][h], off[k][h]);
      _mm256_storeu_ps(out[k] + 8 * h, acc[k][h]);
    }
#endif
}

#if EMBER_INT8_VNNI
// One token against two groups at once (decode): the groups' blocks b are read side by side,
// two streams of weights in flight instead of one, and each broadcast of 4 activation bytes
// feeds 32 rows. Per lane the arithmetic is PackedGroup<1, kT>'s, so a row's bits do not
// depend on whether its group ran alone or in a pair.
template <DType kT>
HWY_INLINE void PackedGroupPair(const uint8_t* HWY_RESTRICT q, const uint8_t* HWY_RESTRICT dw,
                                const uint8_t* HWY_RESTRICT mw, size_t n_block, size_t stride,
                                const detail::PlanarQ8& act, float (*out)[kPackRows]) {
  constexpr bool kQ8 = kT == DType::Q8_0;
  constexpr size_t kQuantBytes = kQ8 ? 512 : 256;
  const __m512i nibble = _mm512_set1_epi8(0x0f);
  __m512 acc[2] = {_mm512_setzero_ps(), _mm512_setzero_ps()}, off[2] = {_mm512_setzero_ps(), _mm512_setzero_ps()};
  for (size_t b = 0; b < n_block; ++b, q += kQuantBytes) {
    PrefetchAhead<kQuantBytes>(q);
    PrefetchAhead<kQuantBytes>(q + stride);
    const int8_t* a = act.qs + 32 * b;
    int32_t correction = 0;
    if constexpr (kT != DType::Q4_1) std::memcpy(&correction, act.s + b, sizeof(correction));
    __m512i s0[2], s1[2];
    for (size_t h = 0; h < 2; ++h) {
      s0[h] = _mm512_set1_epi32(correction);
      s1[h] = _mm512_setzero_si512();
    }
    for (size_t c = 0; c < 8; c += 2) {
      const __m512i a0 = _mm512_set1_epi32(LoadI32(a + 4 * c)), a1 = _mm512_set1_epi32(LoadI32(a + 4 * c + 4));
      for (size_t h = 0; h < 2; ++h) {
        const uint8_t* qh = q + h * stride;
        __m512i w0, w1;
        if constexpr (kQ8) {  // w + 128 as unsigned; the correction adds -128 * sum(a)
          w0 = _mm512_xor_si512(_mm512_load_si512(qh + 64 * c), _mm512_set1_epi8(-128));
          w1 = _mm512_xor_si512(_mm512_load_si512(qh + 64 * (c + 1)), _mm512_set1_epi8(-128));
        } else {  // operand c < 4: chunk c's low nibbles; c >= 4: chunk c - 4's high nibbles
          const __m512i raw0 = _mm512_load_si512(qh + 64 * (c % 4)), raw1 = _mm512_load_si512(qh + 64 * (c % 4 + 1));
          w0 = c < 4 ? _mm512_and_si512(raw0, nibble) : _mm512_and_si512(_mm512_srli_epi16(raw0, 4), nibble);
          w1 = c < 4 ? _mm512_and_si512(raw1, nibble) : _mm512_and_si512(_mm512_srli_epi16(raw1, 4), nibble);
        }
        s0[h] = _mm512_dpbusd_epi32(s0[h], w0, a0);
        s1[h] = _mm512_dpbusd_epi32(s1[h], w1, a1);
      }
    }
    const __m512 da = _mm512_set1_ps(act.d[b]);
    for (size_t h = 0; h < 2; ++h) {
      const __m512 d = _mm512_cvtph_ps(_mm256_load_si256(reinterpret_cast<const __m256i*>(dw + h * stride + 32 * b)));
      const __m512 scale = _mm512_mul_ps(d, da);
      acc[h] = _mm512_fmadd_ps(scale, _mm512_cvtepi32_ps(_mm512_add_epi32(s0[h], s1[h])), acc[h]);
      if constexpr (kT == DType::Q4_1) {
        const __m512 m = _mm512_cvtph_ps(_mm256_load_si256(reinterpret_cast<const __m256i*>(mw + h * stride + 32 * b)));
        off[h] = _mm512_fmadd_ps(m, _mm512_set1_ps(act.s[b]), off[h]);
      }
    }
  }
  for (size_t h = 0; h < 2; ++h) {
    if constexpr (kT == DType::Q4_1) acc[h] = _mm512_add_ps(acc[h], off[h]);
    _mm512_storeu_ps(out[h], acc[h]);
  }
}

HWY_INLINE void PackedGroupPairTokens(const MatrixView& w, size_t g, const detail::PlanarQ8& act,
                                      float (*out)[kPackRows]) {
  const size_t n_block = w.n_col / 32, stride = packed_group_stride(w.dtype, w.n_col);
  const auto* q = reinterpret_cast<const uint8_t*>(w.packed) + g * stride;
  const uint8_t* d = q + n_block * packed_quant_bytes(w.dtype);
  const uint8_t* m = d + n_block * 2 * kPackRows;
  switch (w.dtype) {
    case DType::Q4_0: PackedGroupPair<DType::Q4_0>(q, d, m, n_block, stride, act, out); break;
    case DType::Q4_1: PackedGroupPair<DType::Q4_1>(q, d, m, n_block, stride, act, out); break;
    case DType::Q8_0: PackedGroupPair<DType::Q8_0>(q, d, m, n_block, stride, act, out); break;
    default: break;
  }
}
#endif

template <size_t kTok>
HWY_INLINE void PackedGroupTokens(const MatrixView& w, size_t g, const detail::PlanarQ8* act, float (*out)[kPackRows]) {
  const size_t n_block = w.n_col / 32;
  const auto* q = reinterpret_cast<const uint8_t*>(w.packed) + g * packed_group_stride(w.dtype, w.n_col);
  const uint8_t* d = q + n_block * packed_quant_bytes(w.dtype);
  const uint8_t* m = d + n_block * 2 * kPackRows;
  switch (w.dtype) {
    case DType::Q4_0: PackedGroup<kTok, DType::Q4_0>(q, d, m, n_block, act, out); break;
    case DType::Q4_1: PackedGroup<kTok, DType::Q4_1>(q, d, m, n_block, act, out); break;
    case DType::Q8_0: PackedGroup<kTok, DType::Q8_0>(q, d, m, n_block, act, out); break;
    default: break;
  }
}

// A group's outputs [lo, hi) into its rows of y (y + the group's first row): a whole group,
// the usual case, as one fixed-size copy the compiler inlines, rather than a library call
// sized at run time (those calls were 2% of pp512's samples).
HWY_INLINE void StoreGroup(float* y, const float* out, size_t lo, size_t hi) {
  if (lo == 0 && hi == kPackRows)
    std::memcpy(y, out, kPackRows * sizeof(float));
  else
    std::memcpy(y + lo, out + lo, (hi - lo) * sizeof(float));
}

// Rows [r_begin, r_end) of a Q4_0 / Q4_1 / Q8_0 matrix with w.packed set, against n_tok (<=
// kTokenChunk) tokens; Q4_0's and Q8_0's activations carry QuantizePlanarQ8's correction in their s slot. A group
// that the range cuts is computed whole and stored in part: a row's bits never depend on
// the range.
void PackedRows(const MatrixView& w, const detail::PlanarQ8* act, size_t n_tok, float* y, size_t y_stride,
                size_t r_begin, size_t r_end) {
  HWY_ALIGN float out[kPackedTok][kPackRows];
  size_t g = r_begin / kPackRows;
#if EMBER_INT8_VNNI
  if (n_tok == 1)  // decode: two groups at a time while both start in the range
    for (; (g + 1) * kPackRows < r_end; g += 2) {
      PackedGroupPairTokens(w, g, act[0], out);
      for (size_t h = 0; h < 2; ++h) {
        const size_t row0 = (g + h) * kPackRows;
        const size_t lo = r_begin > row0 ? r_begin - row0 : 0;
        const size_t hi = r_end - row0 < kPackRows ? r_end - row0 : kPackRows;
        StoreGroup(y + row0, out[h], lo, hi);
      }
    }
#endif
  for (; g * kPackRows < r_end; ++g) {
    const size_t row0 = g * kPackRows;
    const size_t lo = r_begin > row0 ? r_begin - row0 : 0;
    const size_t hi = r_end - row0 < kPackRows ? r_end - row0 : kPackRows;
    for (size_t t = 0; t < n_tok; t += kPackedTok) {
      const size_t nt = n_tok - t < kPackedTok ? n_tok - t : kPackedTok;
      switch (nt) {
        case 1: PackedGroupTokens<1>(w, g, act + t, out); break;
        case 2: PackedGroupTokens<2>(w, g, act + t, out); break;
        case 3: PackedGroupTokens<3>(w, g, act + t, out); break;
        case 4: PackedGroupTokens<4>(w, g, act + t, out); break;
#if EMBER_INT8_VNNI
        case 5: PackedGroupTokens<5>(w, g, act + t, out); break;
        case 6: PackedGroupTokens<6>(w, g, act + t, out); break;
        case 7: PackedGroupTokens<7>(w, g, act + t, out); break;
        case 8: PackedGroupTokens<8>(w, g, act + t, out); break;
#endif
        default: break;
      }
      for (size_t k = 0; k < nt; ++k) StoreGroup(y + (t + k) * y_stride + row0, out[k], lo, hi);
    }
  }
}

#if EMBER_INT8_VNNI
// Q4_K in the x16 layout (packed.hpp), VNNI only (elsewhere the file layout's kernels run):
// per row and super-block, the integers Reference computes — isum = sum over groups of
// scale * sum(q * a), summs = sum of min * (the group's two bsums) — exact in int32 lanes,
// then Reference's expression double(d) * isum - double(dmin) * summs (both products exact
// in double, so one rounding either way) added in block order: Reference's bits.
// Tokens per pass over a group's records: the 16 nibble vectors of a pair of groups, the
// token's four vpdpbusd chains and each token's isum stay in registers; the double sums live
// in L1 (sum below).
constexpr size_t kPackedKTok = 8;

// The load of the cache line at p, with the prefetch of the line kPrefetchBytes ahead: a
// kernel whose step reads many lines (a K-quant record is 37 or 53) spreads its prefetches
// over its loads, so that they do not queue up at once for the core's few line-fill buffers.
HWY_INLINE __m512i LoadPrefetch(const uint8_t* p) {
  _mm_prefetch(reinterpret_cast<const char*>(p + kPrefetchBytes), _MM_HINT_T2);
  return _mm512_load_si512(p);
}

// sum[k][0..15] += double(d) * is - double(dmin) * ms per row, d = dw * a.d and dmin =
// dmw * a.d in float (products of an f16 and a float, as Reference rounds them), is and ms
// the rows' integers: Reference's expression, both products exact in double.
HWY_INLINE void AddSuperBlockTerm(double* HWY_RESTRICT sum, __m512 dw, __m512 dmw, float ad, __m512i is, __m512i ms) {
  const __m512 da = _mm512_set1_ps(ad);
  const __m512 d = _mm512_mul_ps(dw, da), dmin = _mm512_mul_ps(dmw, da);
  for (size_t h = 0; h < 2; ++h) {
    const __m512d dd = _mm512_cvtps_pd(h ? _mm512_extractf32x8_ps(d, 1) : _mm512_castps512_ps256(d));
    const __m512d dm = _mm512_cvtps_pd(h ? _mm512_extractf32x8_ps(dmin, 1) : _mm512_castps512_ps256(dmin));
    const __m512d i64 = _mm512_cvtepi32_pd(h ? _mm512_extracti64x4_epi64(is, 1) : _mm512_castsi512_si256(is));
    const __m512d m64 = _mm512_cvtepi32_pd(h ? _mm512_extracti64x4_epi64(ms, 1) : _mm512_castsi512_si256(ms));
    _mm512_store_pd(sum + 8 * h,
                    _mm512_add_pd(_mm512_load_pd(sum + 8 * h), _mm512_fmsub_pd(dd, i64, _mm512_mul_pd(dm, m64))));
  }
}

template <size_t kTok>
HWY_INLINE void PackedQ4KGroup(const uint8_t* HWY_RESTRICT rec, size_t n_sb, const quant::BlockQ8_K* const* act,
                               float (*out)[kPackRows]) {
  // The high nibbles enter vpdpbusd in place (q * 16, masked with 0xf0: one instruction
  // fewer than shifting them down), their sums come back exact with a shift by 4.
  const __m512i low = _mm512_set1_epi8(0x0f), high = _mm512_set1_epi8(char(0xf0));
  HWY_ALIGN double sum[kTok][kPackRows];
  for (size_t k = 0; k < kTok; ++k)
    for (size_t h = 0; h < 2; ++h) _mm512_store_pd(sum[k] + 8 * h, _mm512_setzero_pd());
  for (size_t b = 0; b < n_sb; ++b, rec += kQ4KRecordBytes) {
    // Records of a group are contiguous, the next group follows: the quants' lines are
    // prefetched as they are loaded (LoadPrefetch), the scales' and mins' here.
    PrefetchAhead<kQ4KRecordBytes - 2048>(rec + 2048);
    __m512i isum[kTok];
    for (size_t k = 0; k < kTok; ++k) isum[k] = _mm512_setzero_si512();
    for (size_t p = 0; p < 4; ++p) {  // groups 2p (low nibbles) and 2p + 1 (high)
      __m512i lo[8], hi[8];
      for (size_t j = 0; j < 8; ++j) {
        const __m512i raw = LoadPrefetch(rec + 64 * (8 * p + j));
        lo[j] = _mm512_and_si512(raw, low);
        hi[j] = _mm512_and_si512(raw, high);
      }
      const __m512i sc0 = _mm512_cvtepu8_epi32(_mm_load_si128(reinterpret_cast<const __m128i*>(rec + 2048 + 32 * p)));
      const __m512i sc1 =
          _mm512_cvtepu8_epi32(_mm_load_si128(reinterpret_cast<const __m128i*>(rec + 2048 + 32 * p + 16)));
#pragma GCC unroll 8
      for (size_t k = 0; k < kTok; ++k) {
        const int8_t* a = act[k][b].qs + 64 * p;
        // Four chains of four (vpdpbusd's latency is 5 cycles).
        __m512i s0 = _mm512_setzero_si512(), s1 = _mm512_setzero_si512();
        __m512i s2 = _mm512_setzero_si512(), s3 = _mm512_setzero_si512();
#pragma GCC unroll 4
        for (size_t j = 0; j < 8; j += 2) {
          s0 = _mm512_dpbusd_epi32(s0, lo[j], _mm512_set1_epi32(LoadI32(a + 4 * j)));
          s1 = _mm512_dpbusd_epi32(s1, hi[j], _mm512_set1_epi32(LoadI32(a + 32 + 4 * j)));
          s2 = _mm512_dpbusd_epi32(s2, lo[j + 1], _mm512_set1_epi32(LoadI32(a + 4 * j + 4)));
          s3 = _mm512_dpbusd_epi32(s3, hi[j + 1], _mm512_set1_epi32(LoadI32(a + 32 + 4 * j + 4)));
        }
        s0 = _mm512_add_epi32(s0, s2);
        // |s1 + s3| <= 8 * 4 * 240 * 128 < 2^20: no overflow, and a multiple of 16.
        s1 = _mm512_srai_epi32(_mm512_add_epi32(s1, s3), 4);
        isum[k] = _mm512_add_epi32(isum[k], _mm512_add_epi32(_mm512_mullo_epi32(s0, sc0), _mm512_mullo_epi32(s1, sc1)));
      }
    }
    const __m512 dw = _mm512_cvtph_ps(_mm256_load_si256(reinterpret_cast<const __m256i*>(rec + 2048 + 128 + 256)));
    const __m512 dmw =
        _mm512_cvtph_ps(_mm256_load_si256(reinterpret_cast<const __m256i*>(rec + 2048 + 128 + 256 + 32)));
    for (size_t k = 0; k < kTok; ++k) {
      // summs: the mins against the activations' group sums (two bsums each) as int16
      // pairs, one pair per 32 bits.
      int16_t group[8];
      for (size_t g = 0; g < 8; ++g) group[g] = int16_t(act[k][b].bsums[2 * g] + act[k][b].bsums[2 * g + 1]);
      __m512i ms = _mm512_setzero_si512();
      for (size_t i = 0; i < 4; ++i) {
        int32_t pair;
        std::memcpy(&pair, group + 2 * i, sizeof(pair));
        ms = _mm512_dpwssd_epi32(ms, _mm512_load_si512(rec + 2048 + 128 + 64 * i), _mm512_set1_epi32(pair));
      }
      AddSuperBlockTerm(sum[k], dw, dmw, act[k][b].d, isum[k], ms);
    }
  }
  for (size_t k = 0; k < kTok; ++k)
    for (size_t h = 0; h < 2; ++h) _mm256_storeu_ps(out[k] + 8 * h, _mm512_cvtpd_ps(_mm512_load_pd(sum[k] + 8 * h)));
}

// Q6_K in the x16 layout (packed.hpp), VNNI only, Reference's bits as for Q4_K: per row and
// super-block the integer isum = sum over groups s of scale_s * sum(a * (q - 32)), computed
// as (sum_s scale_s * sum(a * 4 q)) / 4 - 32 * sum_s scale_s * bsum_s (4 q = 0..252 unsigned,
// as the layout holds it and vpdpbusd takes it; the first sum's magnitude is at most
// 256 * 252 * 128 * 128 < 2^31), then double(d * a.d) * isum added in block order.
template <size_t kTok>
HWY_INLINE void PackedQ6KGroup(const uint8_t* HWY_RESTRICT rec, size_t n_sb, const quant::BlockQ8_K* const* act,
                               float (*out)[kPackRows]) {
  constexpr int kSelect = 0xca;  // vpternlogd: first operand ? second : third, per bit
  const __m512i top6 = _mm512_set1_epi8(char(0xfc)), low2 = _mm512_set1_epi8(0x03), low4 = _mm512_set1_epi8(0x0f);
  HWY_ALIGN double sum[kTok][kPackRows];
  for (size_t k = 0; k < kTok; ++k)
    for (size_t h = 0; h < 2; ++h) _mm512_store_pd(sum[k] + 8 * h, _mm512_setzero_pd());
  for (size_t b = 0; b < n_sb; ++b, rec += kQ6KRecordBytes) {
    // The quants' lines are prefetched at their load (LoadPrefetch), the scales and d here.
    PrefetchAhead<kQ6KRecordBytes - 3072>(rec + 3072);
    const uint8_t* scales = rec + 3072;
    __m512i isum[kTok];
    for (size_t k = 0; k < kTok; ++k) isum[k] = _mm512_setzero_si512();
    for (size_t s = 0; s < 16; s += 2) {  // groups s and s + 1
      // w[4 u + i]: elements 16 (s + u) + 4 i .. 4 i + 3 of the 16 rows, times 4.
      __m512i w[8];
      for (size_t u = 0; u < 2; ++u) {
        const uint8_t* c = rec + 64 * 3 * (s + u);
        const __m512i v0 = LoadPrefetch(c), v1 = LoadPrefetch(c + 64), v2 = LoadPrefetch(c + 128);
        w[4 * u] = _mm512_and_si512(v0, top6);
        w[4 * u + 1] = _mm512_and_si512(v1, top6);
        w[4 * u + 2] = _mm512_and_si512(v2, top6);
        // The fourth quant's bits 0-1 sit in v0, 2-3 in v1, 4-5 in v2, each in bits 0-1: joined
        // by selects of 16-bit shifts, then moved up by 2 (what a shift carries across a byte
        // is never selected, or is masked off by top6).
        const __m512i f01 = _mm512_ternarylogic_epi32(low2, v0, _mm512_slli_epi16(v1, 2), kSelect);
        const __m512i f012 = _mm512_ternarylogic_epi32(low4, f01, _mm512_slli_epi16(v2, 4), kSelect);
        w[4 * u + 3] = _mm512_and_si512(_mm512_slli_epi16(f012, 2), top6);
      }
      // Row r's scales of groups s and s + 1 as the int16 halves of 32-bit lane r.
      const __m512i pair = _mm512_cvtepi8_epi16(_mm256_load_si256(reinterpret_cast<const __m256i*>(scales + 16 * s)));
      const __m512i sc0 = _mm512_srai_epi32(_mm512_slli_epi32(pair, 16), 16), sc1 = _mm512_srai_epi32(pair, 16);
#pragma GCC unroll 8
      for (size_t k = 0; k < kTok; ++k) {
        const int8_t* a = act[k][b].qs + 16 * s;
        __m512i s0 = _mm512_dpbusd_epi32(_mm512_setzero_si512(), w[0], _mm512_set1_epi32(LoadI32(a)));
        __m512i s1 = _mm512_dpbusd_epi32(_mm512_setzero_si512(), w[1], _mm512_set1_epi32(LoadI32(a + 4)));
        __m512i s2 = _mm512_dpbusd_epi32(_mm512_setzero_si512(), w[4], _mm512_set1_epi32(LoadI32(a + 16)));
        __m512i s3 = _mm512_dpbusd_epi32(_mm512_setzero_si512(), w[5], _mm512_set1_epi32(LoadI32(a + 20)));
        s0 = _mm512_dpbusd_epi32(s0, w[2], _mm512_set1_epi32(LoadI32(a + 8)));
        s1 = _mm512_dpbusd_epi32(s1, w[3], _mm512_set1_epi32(LoadI32(a + 12)));
        s2 = _mm512_dpbusd_epi32(s2, w[6], _mm512_set1_epi32(LoadI32(a + 24)));
        s3 = _mm512_dpbusd_epi32(s3, w[7], _mm512_set1_epi32(LoadI32(a + 28)));
        isum[k] = _mm512_add_epi32(isum[k], _mm512_add_epi32(_mm512_mullo_epi32(_mm512_add_epi32(s0, s1), sc0),
                                                             _mm512_mullo_epi32(_mm512_add_epi32(s2, s3), sc1)));
      }
    }
    const __m512 dw = _mm512_cvtph_ps(_mm256_load_si256(reinterpret_cast<const __m256i*>(rec + 3328)));
    for (size_t k = 0; k < kTok; ++k) {
      __m512i corr = _mm512_setzero_si512();  // sum_s scale_s * bsum_s, by vpdpwssd of the scale pairs
      for (size_t i = 0; i < 8; ++i) {
        int32_t bsum_pair;
        std::memcpy(&bsum_pair, act[k][b].bsums + 2 * i, sizeof(bsum_pair));
        const __m512i pair = _mm512_cvtepi8_epi16(_mm256_load_si256(reinterpret_cast<const __m256i*>(scales + 32 * i)));
        corr = _mm512_dpwssd_epi32(corr, pair, _mm512_set1_epi32(bsum_pair));
      }
      const __m512i is = _mm512_sub_epi32(_mm512_srai_epi32(isum[k], 2), _mm512_slli_epi32(corr, 5));
      const __m512 dd = _mm512_mul_ps(dw, _mm512_set1_ps(act[k][b].d));
      for (size_t h = 0; h < 2; ++h) {
        const __m512d d64 = _mm512_cvtps_pd(h ? _mm512_extractf32x8_ps(dd, 1) : _mm512_castps512_ps256(dd));
        const __m512d i64 = _mm512_cvtepi32_pd(h ? _mm512_extracti64x4_epi64(is, 1) : _mm512_castsi512_si256(is));
        _mm512_store_pd(sum[k] + 8 * h, _mm512_add_pd(_mm512_load_pd(sum[k] + 8 * h), _mm512_mul_pd(d64, i64)));
      }
    }
  }
  for (size_t k = 0; k < kTok; ++k)
    for (size_t h = 0; h < 2; ++h) _mm256_storeu_ps(out[k] + 8 * h, _mm512_cvtpd_ps(_mm512_load_pd(sum[k] + 8 * h)));
}

// Rows [r_begin, r_end) of a Q4_K or Q6_K matrix with w.packed set, against n_tok (<= kTokenChunk)
// tokens' Q8_K activations; cut groups are computed whole and stored in part.
void PackedKRows(const MatrixView& w, const quant::BlockQ8_K* const* act, size_t n_tok, float* y, size_t y_stride,
                 size_t r_begin, size_t r_end) {
  HWY_ALIGN float out[kPackedKTok][kPackRows];
  const size_t n_sb = w.n_col / 256, stride = packed_group_stride(w.dtype, w.n_col);
  const bool q6 = w.dtype == DType::Q6_K;
  for (size_t g = r_begin / kPackRows; g * kPackRows < r_end; ++g) {
    const size_t row0 = g * kPackRows;
    const size_t lo = r_begin > row0 ? r_begin - row0 : 0;
    const size_t hi = r_end - row0 < kPackRows ? r_end - row0 : kPackRows;
    const auto* rec = reinterpret_cast<const uint8_t*>(w.packed) + g * stride;
    for (size_t t = 0; t < n_tok; t += kPackedKTok) {
      const size_t nt = n_tok - t < kPackedKTok ? n_tok - t : kPackedKTok;
      if (q6) {
        switch (nt) {
          case 1: PackedQ6KGroup<1>(rec, n_sb, act + t, out); break;
          case 2: PackedQ6KGroup<2>(rec, n_sb, act + t, out); break;
          case 3: PackedQ6KGroup<3>(rec, n_sb, act + t, out); break;
          case 4: PackedQ6KGroup<4>(rec, n_sb, act + t, out); break;
          case 5: PackedQ6KGroup<5>(rec, n_sb, act + t, out); break;
          case 6: PackedQ6KGroup<6>(rec, n_sb, act + t, out); break;
          case 7: PackedQ6KGroup<7>(rec, n_sb, act + t, out); break;
          default: PackedQ6KGroup<8>(rec, n_sb, act + t, out); break;
        }
      } else {
        switch (nt) {
          case 1: PackedQ4KGroup<1>(rec, n_sb, act + t, out); break;
          case 2: PackedQ4KGroup<2>(rec, n_sb, act + t, out); break;
          case 3: PackedQ4KGroup<3>(rec, n_sb, act + t, out); break;
          case 4: PackedQ4KGroup<4>(rec, n_sb, act + t, out); break;
          case 5: PackedQ4KGroup<5>(rec, n_sb, act + t, out); break;
          case 6: PackedQ4KGroup<6>(rec, n_sb, act + t, out); break;
          case 7: PackedQ4KGroup<7>(rec, n_sb, act + t, out); break;
          default: PackedQ4KGroup<8>(rec, n_sb, act + t, out); break;
        }
      }
      for (size_t k = 0; k < nt; ++k) StoreGroup(y + (t + k) * y_stride + row0, out[k], lo, hi);
    }
  }
}
#endif

// ---------------------------------------------------------------- q8_0 KV cache attention
// highway-inl.hpp's AttendQ8 runs AttendQ8Tiles: the scores against key tiles (key_tiles.hpp)
// with each head's maximum, exp(s - max) and its sum, the exp-weighted sum of q8_0 value rows,
// divided by the sum at the end. The VNNI copy works on 512-bit vectors (a tile's 16
// positions in one vector), the plain copy on 256-bit ones (AVX2; two halves of 8).

constexpr size_t kAttnQ8Chunk = 128;  // value rows per pass (8.5 KiB for head_dim 64)

// The value rows of the chunk that starts at row j (none past the end), to prefetch a line
// at a time while the chunk before it is worked on.
HWY_INLINE PrefetchRun NextValueChunk(const MatrixView& values, size_t j) {
  PrefetchRun run;
  if (j < values.n_row) {
    const size_t n = values.n_row - j < kAttnQ8Chunk ? values.n_row - j : kAttnQ8Chunk;
    run.p = reinterpret_cast<const uint8_t*>(values.row(j));
    run.end = run.p + n * values.row_bytes;
  }
  return run;
}

// maxes[g] = the largest of x[g * n .. g * n + n), for g < n_row: one pass over the stored
// scores, in 256-bit vectors for both the VNNI and the AVX2 copy.
HWY_INLINE void MaxOfRows(const float* x, size_t n, size_t n_row, float* maxes) {
  for (size_t g = 0; g < n_row; ++g, x += n) {
    __m256 m0 = _mm256_set1_ps(-HUGE_VALF), m1 = m0;
    size_t i = 0;
    for (; i + 16 <= n; i += 16) {
      m0 = _mm256_max_ps(m0, _mm256_loadu_ps(x + i));
      m1 = _mm256_max_ps(m1, _mm256_loadu_ps(x + i + 8));
    }
    HWY_ALIGN float t[8];
    _mm256_store_ps(t, _mm256_max_ps(m0, m1));
    float best = t[0];
    for (size_t k = 1; k < 8; ++k) best = t[k] > best ? t[k] : best;
    for (; i < n; ++i) best = x[i] > best ? x[i] : best;
    maxes[g] = best;
  }
}

#if EMBER_INT8_VNNI
constexpr size_t kAttnQ8ScoreGroup = 8, kAttnQ8ValueGroup = 8;  // heads per pass

// scores[g * n_pos + j - first] = scale * sum over blocks b of d_k * d_q * sum(k * q), for
// each key j of the tiles' range and head g < kG, the queries given as q8_0 blocks `qb`
// (kG rows of nb blocks). Keys go through vpdpbusd as k + 128 (unsigned; the xor below);
// each block's accumulator starts at -128 * sum(q) to take that back out, so the integer
// sums are exact. A tile's 16 lanes are its 16 positions: no horizontal sums. Each head's
// maximum is taken afterwards from the stored scores (MaxOfRows): kept in registers here, the
// kG running maxima made this loop store zmm registers to the stack and reload them (objdump,
// kG = 8).
template <size_t kG>
HWY_INLINE void KeyTileScores(const KeyTiles& keys, const quant::BlockQ8_0* qb, float scale, float* scores,
                              PrefetchRun& values_ahead) {
  const size_t hd = keys.head_dim, nb = KeyTiles::n_block(hd), n_pos = keys.n_pos, end = keys.first + n_pos;
  const size_t tb = KeyTiles::tile_bytes(hd), sb = KeyTiles::scale_bytes(hd);
  float dq[kG][KeyTiles::kMaxBlocks];
  int32_t corr[kG][KeyTiles::kMaxBlocks];
  for (size_t g = 0; g < kG; ++g)
    for (size_t b = 0; b < nb; ++b) {
      const quant::BlockQ8_0& a = qb[g * nb + b];
      dq[g][b] = f16_to_f32(a.d_f16);
      int32_t sum = 0;
      for (size_t i = 0; i < 32; ++i) sum += a.qs[i];
      corr[g][b] = -128 * sum;
    }
  const __m512i flip = _mm512_set1_epi8(-128);
  // Every loop over heads (g) or chunks (c) is unrolled, so that s and kv stay in registers.
  for (size_t j0 = keys.first / KeyTiles::kPos * KeyTiles::kPos; j0 < end; j0 += KeyTiles::kPos) {
    const auto* tile = reinterpret_cast<const uint8_t*>(keys.data) + j0 / KeyTiles::kPos * tb;
    // The tile four ahead into L2, a line with each load of this one (scales first); and two
    // lines of the first value chunk.
    const bool ahead = j0 + 5 * KeyTiles::kPos <= end;
    if (ahead)
      for (size_t o = 0; o < sb; o += 64) PrefetchLine(tile + 4 * tb + o);
    values_ahead.Step();
    values_ahead.Step();
    __m512 s[kG];
#pragma GCC unroll 16
    for (size_t g = 0; g < kG; ++g) s[g] = _mm512_setzero_ps();
    for (size_t b = 0; b < nb; ++b) {
      const uint8_t* q = tile + sb + b * 32 * KeyTiles::kPos;
      __m512i kv[8];
#pragma GCC unroll 8
      for (size_t c = 0; c < 8; ++c) {
        if (ahead) PrefetchLine(q + 64 * c + 4 * tb);
        kv[c] = _mm512_xor_si512(_mm512_load_si512(q + 64 * c), flip);
      }
      const __m512 dk = _mm512_cvtph_ps(_mm256_load_si256(reinterpret_cast<const __m256i*>(tile + b * 32)));
#pragma GCC unroll 16
      for (size_t g = 0; g < kG; ++g) {
        const int8_t* a = qb[g * nb + b].qs;
        __m512i acc0 = _mm512_set1_epi32(corr[g][b]), acc1 = _mm512_setzero_si512();
#pragma GCC unroll 4
        for (size_t c = 0; c < 8; c += 2) {
          acc0 = _mm512_dpbusd_epi32(acc0, kv[c], _mm512_set1_epi32(LoadI32(a + 4 * c)));
          acc1 = _mm512_dpbusd_epi32(acc1, kv[c + 1], _mm512_set1_epi32(LoadI32(a + 4 * c + 4)));
        }
        const __m512 sum = _mm512_cvtepi32_ps(_mm512_add_epi32(acc0, acc1));
        s[g] = _mm512_fmadd_ps(sum, _mm512_mul_ps(dk, _mm512_set1_ps(dq[g][b])), s[g]);
      }
    }
    const size_t lo = j0 > keys.first ? j0 : keys.first, hi = end - j0 < KeyTiles::kPos ? end : j0 + KeyTiles::kPos;
    const __m512 sc = _mm512_set1_ps(scale);
    // A tile's live positions [lo - j0, hi - j0): all 16 but at the ends of the range.
    const __mmask16 live = __mmask16(((1u << (hi - j0)) - 1) & ~((1u << (lo - j0)) - 1));
#pragma GCC unroll 16
    for (size_t g = 0; g < kG; ++g) {
      const __m512 v = _mm512_mul_ps(s[g], sc);
      float* dst = scores + g * n_pos + (lo - keys.first);
      if (live == 0xffff)
        _mm512_storeu_ps(dst, v);
      else
        _mm512_mask_compressstoreu_ps(dst, live, v);  // the live lanes, in order
    }
  }
}

// exp(x) for x <= 0 (softmax's shifted scores): x = n ln2 + r with |r| <= ln2 / 2 (ln2 in two
// parts, so r is exact to a few ulps), exp(r) by its degree-7 Taylor polynomial (relative
// error below 1e-8 there), times 2^n by vscalefps. Below -87 the result is held at exp(-87),
// 1.6e-38: nothing a softmax weight next to exp(0) = 1 can notice.
HWY_INLINE __m512 ExpNonPositive(__m512 x) {
  x = _mm512_max_ps(x, _mm512_set1_ps(-87.0f));
  const __m512 n = _mm512_roundscale_ps(_mm512_mul_ps(x, _mm512_set1_ps(1.44269504088896341f)),
                                        _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
  __m512 r = _mm512_fnmadd_ps(n, _mm512_set1_ps(0.693145751953125f), x);
  r = _mm512_fnmadd_ps(n, _mm512_set1_ps(1.42860682030941723212e-6f), r);
  __m512 p = _mm512_set1_ps(1.0f / 5040);
  constexpr float kTaylor[] = {1.0f / 720, 1.0f / 120, 1.0f / 24, 1.0f / 6, 0.5f, 1.0f, 1.0f};
#pragma GCC unroll 7
  for (const float c : kTaylor) p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(c));
  return _mm512_scalef_ps(p, n);
}

// x[i] = exp(x[i] - max) in place; returns their sum (at least 1 when max is x's maximum).
HWY_INLINE float ExpShiftedSum(float* x, size_t n, float max) {
  const __m512 m = _mm512_set1_ps(max);
  __m512 sum0 = _mm512_setzero_ps(), sum1 = _mm512_setzero_ps();
  size_t i = 0;
  for (; i + 32 <= n; i += 32) {
    const __m512 e0 = ExpNonPositive(_mm512_sub_ps(_mm512_loadu_ps(x + i), m));
    const __m512 e1 = ExpNonPositive(_mm512_sub_ps(_mm512_loadu_ps(x + i + 16), m));
    _mm512_storeu_ps(x + i, e0);
    _mm512_storeu_ps(x + i + 16, e1);
    sum0 = _mm512_add_ps(sum0, e0);
    sum1 = _mm512_add_ps(sum1, e1);
  }
  for (; i < n; i += 16) {
    const __mmask16 live = n - i >= 16 ? __mmask16(0xffff) : __mmask16((1u << (n - i)) - 1);
    const __m512 e = ExpNonPositive(_mm512_sub_ps(_mm512_maskz_loadu_ps(live, x + i), m));
    _mm512_mask_storeu_ps(x + i, live, e);
    sum0 = _mm512_add_ps(sum0, _mm512_maskz_mov_ps(live, e));
  }
  return _mm512_reduce_add_ps(_mm512_add_ps(sum0, sum1));
}

// acc += the int16 pairs of x times those of w, summed per int32 lane (vpdpwssd), through
// inline asm: with _mm512_dpwssd_epi32, GCC 12 moved each of ValueRowsQ8's 16 loop-carried
// accumulators through a second register every iteration and spilled some (perf annotate;
// attention_bench --q8 4096: 244-262 -> 236-239 us per layer).
HWY_INLINE void DpwssdInto(__m512i& acc, __m512i x, __m512i w) {
  asm("vpdpwssd %2, %1, %0" : "+v"(acc) : "v"(x), "v"(w));
}

// out[g][dim] = sum_j p[g][j] * v[j][dim] over q8_0 value rows (n_pos, head_dim), for kG
// heads, `out` zeroed by the caller: kAttnQ8Chunk positions at a time, and within a chunk one
// block (32 dimensions) at a time, in integers. The weights are softmax's exp(s - max), so
// 0 <= p <= 1; the coefficients c = p * d (d the rows' block scales) are quantized to int16,
// per chunk, block and head, as round(p * (d / D) * 32767) with D the block's largest |d| in
// the chunk (computed once per chunk and block, shared by the heads): each c lands within
// 2^-16 * D of its value, so that vpdpwssd adds two positions' c * v to 16 dimensions' int32
// sums at once (|sum| < 2^30 over 128 positions), twice the FMAs' 16 products per
// instruction. Each pair of value rows is interleaved and widened to int16 once for all
// heads; each chunk's sums, times D / 32767, are added to out in chunk order, so the bits
// depend only on where the chunks start.
template <size_t kG>
HWY_INLINE void ValueRowsQ8(const MatrixView& values, const float* p, size_t p_stride, float* out) {
  const size_t hd = values.n_col, nb = hd / 32, n_pos = values.n_row;
  constexpr size_t kStride = kAttnQ8Chunk + 32;  // rows of cq a little over 256 bytes apart
  HWY_ALIGN float dn[kAttnQ8Chunk];              // d / D * 32767 of the block
  HWY_ALIGN int16_t cq[kG * kStride];
  const __m512i lanes = _mm512_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15);
  // The accumulators' lanes hold dimensions {0..7, 16..23} and {8..15, 24..31} of the block
  // (the interleave below works in 128-bit halves); these put them back in order.
  const __m512i lo_dims = _mm512_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7, 16, 17, 18, 19, 20, 21, 22, 23);
  const __m512i hi_dims = _mm512_setr_epi32(8, 9, 10, 11, 12, 13, 14, 15, 24, 25, 26, 27, 28, 29, 30, 31);
  for (size_t j0 = 0; j0 < n_pos; j0 += kAttnQ8Chunk) {
    const size_t m = n_pos - j0 < kAttnQ8Chunk ? n_pos - j0 : kAttnQ8Chunk, m16 = (m + 15) / 16 * 16;
    // The next chunk's rows, one contiguous run, two lines per pair of positions of the passes
    // over this one (nb * m steps for m * nb * 34 / 64 lines).
    PrefetchRun next = NextValueChunk(values, j0 + m);
    for (size_t b = 0; b < nb; ++b) {
      const auto* blk = reinterpret_cast<const uint8_t*>(values.row(j0)) + b * sizeof(quant::BlockQ8_0);
      // Each row's d (the block's first two bytes, read as the low half of 4), 16 rows a gather.
      __m512 md = _mm512_setzero_ps();
      for (size_t j = 0; j < m16; j += 16) {
        const __mmask16 live = j + 16 <= m ? __mmask16(0xffff) : __mmask16((1u << (m - j)) - 1);
        const __m512i at = _mm512_mullo_epi32(_mm512_add_epi32(_mm512_set1_epi32(int32_t(j)), lanes),
                                              _mm512_set1_epi32(int32_t(values.row_bytes)));
        const __m512i raw = _mm512_mask_i32gather_epi32(_mm512_setzero_si512(), live, at, blk, 1);
        const __m512 d = _mm512_cvtph_ps(_mm512_cvtepi32_epi16(raw));
        _mm512_store_ps(dn + j, d);
        md = _mm512_max_ps(md, _mm512_abs_ps(d));
      }
      const float top_d = _mm512_reduce_max_ps(md);
      const __m512 inv_d = _mm512_set1_ps(top_d > 0 ? 32767.0f / top_d : 0.0f);
      for (size_t j = 0; j < m16; j += 16) _mm512_store_ps(dn + j, _mm512_mul_ps(_mm512_load_ps(dn + j), inv_d));
      // Past the chunk's end both p (the masked load) and dn are zero.
      for (size_t j = 0; j < m16; j += 16) {
        const __mmask16 live = j + 16 <= m ? __mmask16(0xffff) : __mmask16((1u << (m - j)) - 1);
        const __m512 d = _mm512_load_ps(dn + j);
#pragma GCC unroll 16
        for (size_t g = 0; g < kG; ++g)
          _mm256_store_si256(reinterpret_cast<__m256i*>(cq + g * kStride + j),
                             _mm512_cvtsepi32_epi16(_mm512_cvtps_epi32(
                                 _mm512_mul_ps(_mm512_maskz_loadu_ps(live, p + g * p_stride + j0 + j), d))));
      }
      // acc[2g] and acc[2g + 1]: head g's two halves of the block.
      __m512i acc[2 * kG];
#pragma GCC unroll 32
      for (size_t i = 0; i < 2 * kG; ++i) acc[i] = _mm512_setzero_si512();
      const uint8_t* qs = blk + offsetof(quant::BlockQ8_0, qs);
      for (size_t j = 0; j < m; j += 2, qs += 2 * values.row_bytes) {
        next.Step();
        next.Step();
        const __m256i v0 = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(qs));
        // The row after (zeros past the end, where the coefficient is zero too).
        const __m256i v1 = j + 1 < m ? _mm256_loadu_si256(reinterpret_cast<const __m256i*>(qs + values.row_bytes))
                                     : _mm256_setzero_si256();
        const __m512i x0 = _mm512_cvtepi8_epi16(_mm256_unpacklo_epi8(v0, v1));
        const __m512i x1 = _mm512_cvtepi8_epi16(_mm256_unpackhi_epi8(v0, v1));
#pragma GCC unroll 16
        for (size_t g = 0; g < kG; ++g) {
          int32_t pair;
          std::memcpy(&pair, cq + g * kStride + j, sizeof(pair));
          const __m512i w = _mm512_set1_epi32(pair);
          DpwssdInto(acc[2 * g], x0, w);
          DpwssdInto(acc[2 * g + 1], x1, w);
        }
      }
      const __m512 s = _mm512_set1_ps(top_d / 32767.0f);
#pragma GCC unroll 16
      for (size_t g = 0; g < kG; ++g) {
        const __m512 a0 = _mm512_mul_ps(_mm512_cvtepi32_ps(acc[2 * g]), s);
        const __m512 a1 = _mm512_mul_ps(_mm512_cvtepi32_ps(acc[2 * g + 1]), s);
        float* o = out + g * hd + 32 * b;
        _mm512_storeu_ps(o, _mm512_add_ps(_mm512_loadu_ps(o), _mm512_permutex2var_ps(a0, lo_dims, a1)));
        _mm512_storeu_ps(o + 16, _mm512_add_ps(_mm512_loadu_ps(o + 16), _mm512_permutex2var_ps(a0, hi_dims, a1)));
      }
    }
  }
}

#else
// 16 ymm registers on AVX2: 4 heads' two score halves per pass over the keys, 8 heads' one
// accumulator each (8 dimensions at a time) per pass over the values.
constexpr size_t kAttnQ8ScoreGroup = 4, kAttnQ8ValueGroup = 8;

// As the VNNI KeyTileScores, with maddubs: k * q as |k| * (q with k's sign), pairs below 2^15
// (|k|, |q| <= 127, as the q8_0 quantizer gives), then madd by ones into int32 lanes; a
// tile's 16 positions as two halves of 8. Each block's |k| is computed once for all heads.
template <size_t kG>
HWY_INLINE void KeyTileScores(const KeyTiles& keys, const quant::BlockQ8_0* qb, float scale, float* scores,
                              PrefetchRun& values_ahead) {
  const size_t hd = keys.head_dim, nb = KeyTiles::n_block(hd), n_pos = keys.n_pos, end = keys.first + n_pos;
  const size_t tb = KeyTiles::tile_bytes(hd), sb = KeyTiles::scale_bytes(hd);
  float dq[kG][KeyTiles::kMaxBlocks];
  for (size_t g = 0; g < kG; ++g)
    for (size_t b = 0; b < nb; ++b) dq[g][b] = f16_to_f32(qb[g * nb + b].d_f16);
  const __m256i ones = _mm256_set1_epi16(1);
  HWY_ALIGN uint8_t kabs[32 * KeyTiles::kPos];
  // Every loop over heads (g) or chunks (c) is unrolled, so that s stays in registers.
  for (size_t j0 = keys.first / KeyTiles::kPos * KeyTiles::kPos; j0 < end; j0 += KeyTiles::kPos) {
    const auto* tile = reinterpret_cast<const uint8_t*>(keys.data) + j0 / KeyTiles::kPos * tb;
    // The tile two ahead, a line with every other load of this one (scales first).
    const bool ahead = j0 + 3 * KeyTiles::kPos <= end;
    if (ahead)
      for (size_t o = 0; o < sb; o += 64) hwy::Prefetch(tile + 2 * tb + o);
    values_ahead.Step();
    values_ahead.Step();
    __m256 s[kG][2];
#pragma GCC unroll 16
    for (size_t g = 0; g < kG; ++g) s[g][0] = s[g][1] = _mm256_setzero_ps();
    for (size_t b = 0; b < nb; ++b) {
      const uint8_t* q = tile + sb + b * 32 * KeyTiles::kPos;
      for (size_t o = 0; o < 32 * KeyTiles::kPos; o += 32) {
        if (ahead && o % 64 == 0) hwy::Prefetch(q + o + 2 * tb);
        _mm256_store_si256(reinterpret_cast<__m256i*>(kabs + o),
                           _mm256_abs_epi8(_mm256_load_si256(reinterpret_cast<const __m256i*>(q + o))));
      }
      const __m128i dh0 = _mm_load_si128(reinterpret_cast<const __m128i*>(tile + b * 32));
      const __m128i dh1 = _mm_load_si128(reinterpret_cast<const __m128i*>(tile + b * 32 + 16));
      const __m256 dk0 = _mm256_cvtph_ps(dh0), dk1 = _mm256_cvtph_ps(dh1);
#pragma GCC unroll 16
      for (size_t g = 0; g < kG; ++g) {
        const int8_t* a = qb[g * nb + b].qs;
        __m256i acc0 = _mm256_setzero_si256(), acc1 = _mm256_setzero_si256();
#pragma GCC unroll 8
        for (size_t c = 0; c < 8; ++c) {
          const __m256i qv = _mm256_set1_epi32(LoadI32(a + 4 * c));
          const auto* k = reinterpret_cast<const __m256i*>(q + 64 * c);
          const auto* ka = reinterpret_cast<const __m256i*>(kabs + 64 * c);
          acc0 = _mm256_add_epi32(
              acc0, _mm256_madd_epi16(
                        _mm256_maddubs_epi16(_mm256_load_si256(ka), _mm256_sign_epi8(qv, _mm256_load_si256(k))), ones));
          acc1 = _mm256_add_epi32(
              acc1, _mm256_madd_epi16(
                        _mm256_maddubs_epi16(_mm256_load_si256(ka + 1), _mm256_sign_epi8(qv, _mm256_load_si256(k + 1))),
                        ones));
        }
        const __m256 f = _mm256_set1_ps(dq[g][b]);
        s[g][0] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(acc0), _mm256_mul_ps(dk0, f), s[g][0]);
        s[g][1] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(acc1), _mm256_mul_ps(dk1, f), s[g][1]);
      }
    }
    const size_t lo = j0 > keys.first ? j0 : keys.first, hi = end - j0 < KeyTiles::kPos ? end : j0 + KeyTiles::kPos;
    const __m256 sc = _mm256_set1_ps(scale);
#pragma GCC unroll 16
    for (size_t g = 0; g < kG; ++g) {
      const __m256 v0 = _mm256_mul_ps(s[g][0], sc), v1 = _mm256_mul_ps(s[g][1], sc);
      float* dst = scores + g * n_pos + (lo - keys.first);
      if (hi - lo == KeyTiles::kPos) {
        _mm256_storeu_ps(dst, v0);
        _mm256_storeu_ps(dst + 8, v1);
      } else {
        HWY_ALIGN float buf[KeyTiles::kPos];
        _mm256_store_ps(buf, v0);
        _mm256_store_ps(buf + 8, v1);
        std::memcpy(dst, buf + (lo - j0), (hi - lo) * sizeof(float));
      }
    }
  }
}

// As the VNNI ExpNonPositive, with 2^n built in the exponent field (n >= -126 here).
HWY_INLINE __m256 ExpNonPositive(__m256 x) {
  x = _mm256_max_ps(x, _mm256_set1_ps(-87.0f));
  const __m256 n = _mm256_round_ps(_mm256_mul_ps(x, _mm256_set1_ps(1.44269504088896341f)),
                                   _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
  __m256 r = _mm256_fnmadd_ps(n, _mm256_set1_ps(0.693145751953125f), x);
  r = _mm256_fnmadd_ps(n, _mm256_set1_ps(1.42860682030941723212e-6f), r);
  __m256 p = _mm256_set1_ps(1.0f / 5040);
  constexpr float kTaylor[] = {1.0f / 720, 1.0f / 120, 1.0f / 24, 1.0f / 6, 0.5f, 1.0f, 1.0f};
#pragma GCC unroll 7
  for (const float c : kTaylor) p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(c));
  const __m256i e = _mm256_slli_epi32(_mm256_add_epi32(_mm256_cvtps_epi32(n), _mm256_set1_epi32(127)), 23);
  return _mm256_mul_ps(p, _mm256_castsi256_ps(e));
}

HWY_INLINE float ExpShiftedSum(float* x, size_t n, float max) {
  const __m256 m = _mm256_set1_ps(max);
  __m256 sum0 = _mm256_setzero_ps(), sum1 = _mm256_setzero_ps();
  size_t i = 0;
  for (; i + 16 <= n; i += 16) {
    const __m256 e0 = ExpNonPositive(_mm256_sub_ps(_mm256_loadu_ps(x + i), m));
    const __m256 e1 = ExpNonPositive(_mm256_sub_ps(_mm256_loadu_ps(x + i + 8), m));
    _mm256_storeu_ps(x + i, e0);
    _mm256_storeu_ps(x + i + 8, e1);
    sum0 = _mm256_add_ps(sum0, e0);
    sum1 = _mm256_add_ps(sum1, e1);
  }
  HWY_ALIGN float t[8];
  _mm256_store_ps(t, _mm256_add_ps(sum0, sum1));
  float total = ((t[0] + t[1]) + (t[2] + t[3])) + ((t[4] + t[5]) + (t[6] + t[7]));
  for (; i < n; i += 8) {  // the last < 16, 8 at a time through a buffer padded with max
    const size_t live = n - i < 8 ? n - i : 8;
    HWY_ALIGN float b[8];
    for (size_t k = 0; k < 8; ++k) b[k] = k < live ? x[i + k] : max;
    _mm256_store_ps(b, ExpNonPositive(_mm256_sub_ps(_mm256_load_ps(b), m)));
    for (size_t k = 0; k < live; ++k) total += (x[i + k] = b[k]);
  }
  return total;
}

// As the VNNI ValueRowsQ8, 8 dimensions (one accumulator per head) per pass over a chunk's rows.
template <size_t kG>
HWY_INLINE void ValueRowsQ8(const MatrixView& values, const float* p, size_t p_stride, float* out) {
  const size_t hd = values.n_col, nb = hd / 32, n_pos = values.n_row;
  constexpr size_t kStride = kAttnQ8Chunk + 16;
  HWY_ALIGN float c[kG * kStride];
  for (size_t j0 = 0; j0 < n_pos; j0 += kAttnQ8Chunk) {
    const size_t m = n_pos - j0 < kAttnQ8Chunk ? n_pos - j0 : kAttnQ8Chunk;
    // The next chunk's rows, a line per position of the passes over this one (as the VNNI copy).
    PrefetchRun next = NextValueChunk(values, j0 + m);
    for (size_t b = 0; b < nb; ++b) {
      const auto* blk = reinterpret_cast<const uint8_t*>(values.row(j0)) + b * sizeof(quant::BlockQ8_0);
      for (size_t j = 0; j < m; ++j) {
        const float d = LoadHalf(blk + j * values.row_bytes);
        for (size_t g = 0; g < kG; ++g) c[g * kStride + j] = p[g * p_stride + j0 + j] * d;
      }
      for (size_t e = 0; e < 4; ++e) {
        __m256 acc[kG];
#pragma GCC unroll 16
        for (size_t g = 0; g < kG; ++g) acc[g] = _mm256_setzero_ps();
        const uint8_t* qs = blk + offsetof(quant::BlockQ8_0, qs) + 8 * e;
        for (size_t j = 0; j < m; ++j, qs += values.row_bytes) {
          next.Step();
          const __m256 v =
              _mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(_mm_loadl_epi64(reinterpret_cast<const __m128i*>(qs))));
#pragma GCC unroll 16
          for (size_t g = 0; g < kG; ++g) acc[g] = _mm256_fmadd_ps(_mm256_set1_ps(c[g * kStride + j]), v, acc[g]);
        }
#pragma GCC unroll 16
        for (size_t g = 0; g < kG; ++g) {
          float* o = out + g * hd + 32 * b + 8 * e;
          _mm256_storeu_ps(o, _mm256_add_ps(_mm256_loadu_ps(o), acc[g]));
        }
      }
    }
  }
}
#endif

// attend_group over a q8_0 cache for `group` (<= kAttnQ8MaxGroup) heads, the queries already
// q8_0 blocks: the scores in one pass over the key tiles, each head's maximum from them, then
// exp(s - max) and its sum in one pass, then the values weighted by those, and the outputs
// divided by the sums at the end (softmax's normalization moved past the sum over positions).
// `scores` holds group * n_pos floats; `lse` (where not null) gets max + log(sum) per head.
constexpr size_t kAttnQ8MaxGroup = 16;
void AttendQ8Tiles(const KeyTiles& keys, const MatrixView& values, const quant::BlockQ8_0* qb, size_t group,
                   float scale, float* scores, float* out, float* lse) {
  const size_t n_pos = keys.n_pos, hd = keys.head_dim, nb = KeyTiles::n_block(hd);
  float maxes[kAttnQ8MaxGroup];
  // The first chunk of value rows, into L2 while the keys are scored (two lines per key tile;
  // ValueRowsQ8 prefetches each next chunk itself).
  PrefetchRun values_ahead = NextValueChunk(values, 0);
  for (size_t g0 = 0; g0 < group; g0 += kAttnQ8ScoreGroup) {
    const size_t ng = group - g0 < kAttnQ8ScoreGroup ? group - g0 : kAttnQ8ScoreGroup;
    with_count<kAttnQ8ScoreGroup>(ng, [&](auto k) {
      KeyTileScores<decltype(k)::value>(keys, qb + g0 * nb, scale, scores + g0 * n_pos, values_ahead);
    });
  }
  MaxOfRows(scores, n_pos, group, maxes);
  float inv[kAttnQ8MaxGroup];
  for (size_t g = 0; g < group; ++g) {
    const float sum = ExpShiftedSum(scores + g * n_pos, n_pos, maxes[g]);
    inv[g] = 1.0f / sum;
    if (lse) lse[g] = maxes[g] + std::log(sum);
  }
  std::memset(out, 0, group * hd * sizeof(float));
  for (size_t g0 = 0; g0 < group; g0 += kAttnQ8ValueGroup) {
    const size_t ng = group - g0 < kAttnQ8ValueGroup ? group - g0 : kAttnQ8ValueGroup;
    with_count<kAttnQ8ValueGroup>(
        ng, [&](auto k) { ValueRowsQ8<decltype(k)::value>(values, scores + g0 * n_pos, n_pos, out + g0 * hd); });
  }
  for (size_t g = 0; g < group; ++g)
    for (size_t i = 0; i < hd; ++i) out[g * hd + i] *= inv[g];
}

// ---------------------------------------------------------------- K-quants

#define EMBER_KQ_VNNI EMBER_INT8_VNNI
#define EMBER_KQ_INLINE HWY_INLINE
#include "ember/kernels/kquant_x86-inl.hpp"
#undef EMBER_KQ_VNNI
#undef EMBER_KQ_INLINE

#if EMBER_INT8_VNNI
// ---------------------------------------------------------------- AMX (prefill)
#include "ember/kernels/amx_x86-inl.hpp"
#endif
