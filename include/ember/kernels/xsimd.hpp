// The header-only SIMD backend, built on xsimd 8.1: Xsimd<Arch> vectorizes
// for one instruction set chosen at compile time, by default the best the
// host's compiler flags enable (no flags on x86-64: SSE2). Nothing to link.
//
// Conventions, as in reference.hpp: `w` weights, `x` activations, `y` outputs,
// strides in floats, no alignment assumed (unaligned loads everywhere).
// Matmul follows ggml's semantics (reference.hpp): activations are converted
// once per call (per chunk of tokens) into a per-thread scratch
// (activation_buffer.hpp), to planar Q8 for Q8_0 / Q4_x / Q5_x weights, to
// Q8_K blocks for the K-quants and to f16-rounded floats for F16 weights, bit
// for bit as Reference converts them; then integer block dot products. Vector
// code for F32, F16, BF16, Q8_0, Q4_0, Q4_1, Q5_0 and Q5_1 weights, and on AVX2
// and avx512 archs for the K-quants (Q2_K .. Q6_K, shared with Highway:
// kquant_x86-inl.hpp, bit-identical to Reference); the K-quants on other archs
// run Reference's matmul. Each output's arithmetic is a fixed sequence that depends only on
// n_col and Arch, never on how many tokens or rows one call covers, so results
// are the same under any split.
//
// xsimd 8.1 has no int8 dot products, widening integer conversions (int8 ->
// int32) or f16 loads; those steps use the arch's intrinsics where the flags
// allow them (int8 dot products: AVX-512 VNNI on avx512 archs when the flags
// enable it, AVX2 or SSSE3 maddubs, SSE2 madd) and portable code otherwise.
#pragma once

#include <algorithm>
#include <cassert>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <type_traits>
#include <xsimd/xsimd.hpp>

#include "ember/core/half.hpp"
#include "ember/kernels/activation_buffer.hpp"
#include "ember/kernels/key_tiles.hpp"
#include "ember/kernels/matrix.hpp"
#include "ember/kernels/quant_layout.hpp"
#include "ember/kernels/reference.hpp"
#include "ember/quant/activations.hpp"
#include "ember/quant/blocks.hpp"
#include "ember/tensor/dtype.hpp"

#if defined(__SSE2__) || defined(__AVX__) || defined(__AVX512F__)
#include <immintrin.h>
#endif

namespace ember::kernels {

namespace xsimd_detail {

template <class A>
using FloatBatch = xsimd::batch<float, A>;
template <class A>
using IntBatch = xsimd::batch<int32_t, A>;

// N bytes at p (N = lanes of a float batch), sign- or zero-extended to int32.
template <class A, bool kSigned>
inline IntBatch<A> widen_bytes(const uint8_t* p) {
  constexpr size_t N = IntBatch<A>::size;
#if XSIMD_WITH_AVX512F
  if constexpr (std::is_base_of_v<xsimd::avx512f, A>) {
    const __m128i v = _mm_loadu_si128(reinterpret_cast<const __m128i*>(p));
    return IntBatch<A>(kSigned ? _mm512_cvtepi8_epi32(v) : _mm512_cvtepu8_epi32(v));
  } else
#endif
#if XSIMD_WITH_AVX2
      if constexpr (std::is_base_of_v<xsimd::avx2, A>) {
    const __m128i v = _mm_loadl_epi64(reinterpret_cast<const __m128i*>(p));
    return IntBatch<A>(kSigned ? _mm256_cvtepi8_epi32(v) : _mm256_cvtepu8_epi32(v));
  } else
#endif
#if XSIMD_WITH_SSE4_1
      if constexpr (std::is_base_of_v<xsimd::sse4_1, A>) {
    int32_t bits;
    std::memcpy(&bits, p, sizeof(bits));
    const __m128i v = _mm_cvtsi32_si128(bits);
    return IntBatch<A>(kSigned ? _mm_cvtepi8_epi32(v) : _mm_cvtepu8_epi32(v));
  } else
#endif
#if XSIMD_WITH_SSE2
      if constexpr (std::is_base_of_v<xsimd::sse2, A>) {
    int32_t bits;
    std::memcpy(&bits, p, sizeof(bits));
    const __m128i v = _mm_cvtsi32_si128(bits);
    if constexpr (kSigned) {
      // Each byte into the top of its own int32, then shift the sign down.
      const __m128i t = _mm_unpacklo_epi8(v, v);
      return IntBatch<A>(_mm_srai_epi32(_mm_unpacklo_epi16(t, t), 24));
    } else {
      const __m128i z = _mm_setzero_si128();
      return IntBatch<A>(_mm_unpacklo_epi16(_mm_unpacklo_epi8(v, z), z));
    }
  } else
#endif
  {
    alignas(64) int32_t buf[N];
    for (size_t i = 0; i < N; ++i) {
      buf[i] = kSigned ? int32_t(int8_t(p[i])) : int32_t(p[i]);
    }
    return IntBatch<A>::load_aligned(buf);
  }
}

// N uint16 at p, zero-extended to int32.
template <class A>
inline IntBatch<A> widen_u16(const uint16_t* p) {
  constexpr size_t N = IntBatch<A>::size;
#if XSIMD_WITH_AVX512F
  if constexpr (std::is_base_of_v<xsimd::avx512f, A>) {
    return IntBatch<A>(_mm512_cvtepu16_epi32(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(p))));
  } else
#endif
#if XSIMD_WITH_AVX2
      if constexpr (std::is_base_of_v<xsimd::avx2, A>) {
    return IntBatch<A>(_mm256_cvtepu16_epi32(_mm_loadu_si128(reinterpret_cast<const __m128i*>(p))));
  } else
#endif
#if XSIMD_WITH_SSE2
      if constexpr (std::is_base_of_v<xsimd::sse2, A>) {
    const __m128i v = _mm_loadl_epi64(reinterpret_cast<const __m128i*>(p));
    return IntBatch<A>(_mm_unpacklo_epi16(v, _mm_setzero_si128()));
  } else
#endif
  {
    alignas(64) int32_t buf[N];
    for (size_t i = 0; i < N; ++i) {
      uint16_t h;
      std::memcpy(&h, p + i, sizeof(h));
      buf[i] = h;
    }
    return IntBatch<A>::load_aligned(buf);
  }
}

// f16 bits (one per int32 lane) to floats, exactly, with integer ops: for
// flags without F16C. Rebias the exponent; infinities and NaNs get a second
// rebias, zeros and subnormals renormalize through an exact float subtraction.
template <class A>
inline FloatBatch<A> f16_bits_to_float(const IntBatch<A>& h) {
  using I = IntBatch<A>;
  using F = FloatBatch<A>;
  const I exp_mask(0x7c00 << 13);
  I o = (h & I(0x7fff)) << 13;
  const I exp = o & exp_mask;
  o = o + I((127 - 15) << 23);
  o = xsimd::select(exp == exp_mask, o + I((128 - 16) << 23), o);
  const F magic = xsimd::bitwise_cast<F>(I(113 << 23));
  const I subnormal = xsimd::bitwise_cast<I>(xsimd::bitwise_cast<F>(o + I(1 << 23)) - magic);
  o = xsimd::select(exp == I(0), subnormal, o);
  return xsimd::bitwise_cast<F>(o | ((h & I(0x8000)) << 16));
}

// N f16 values at p (any alignment) as floats.
template <class A>
inline FloatBatch<A> load_f16(const uint16_t* p) {
#if XSIMD_WITH_AVX512F
  if constexpr (std::is_base_of_v<xsimd::avx512f, A>) {
    return FloatBatch<A>(_mm512_cvtph_ps(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(p))));
  } else
#endif
#if XSIMD_WITH_AVX && defined(__F16C__)
      if constexpr (std::is_base_of_v<xsimd::avx, A>) {
    return FloatBatch<A>(_mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(p))));
  } else
#endif
#if XSIMD_WITH_SSE2 && defined(__F16C__)
      if constexpr (std::is_base_of_v<xsimd::sse2, A>) {
    return FloatBatch<A>(_mm_cvtph_ps(_mm_loadl_epi64(reinterpret_cast<const __m128i*>(p))));
  } else
#endif
  {
    return f16_bits_to_float<A>(widen_u16<A>(p));
  }
}

// The f16 scale of a quant block, which may sit at any byte address.
inline float load_f16_scalar(const uint8_t* p) {
  uint16_t h;
  std::memcpy(&h, p, sizeof(h));
#if defined(__F16C__)
  return _cvtsh_ss(h);
#else
  return f16_to_f32(h);
#endif
}

template <class A>
inline FloatBatch<A> load_weights(const float* p) {
  return FloatBatch<A>::load_unaligned(p);
}
template <class A>
inline FloatBatch<A> load_weights(const uint16_t* p) {
  return load_f16<A>(p);
}
// bf16: the 16 bits are the top half of the float's.
template <class A>
inline FloatBatch<A> load_weights(const bf16* p) {
  return xsimd::bitwise_cast<FloatBatch<A>>(widen_u16<A>(reinterpret_cast<const uint16_t*>(p)) << 16);
}

// Block layouts: kernels/quant_layout.hpp.

// ------------------------------------------------- activation preparation

// Q8_0 / Q8_1 activations of one token into the planar layout, with the same
// bits as detail::quantize_planar_q8: amax, d and id as scalars, then
// q = x * id rounded to nearest even (cvtps2dq in the default rounding mode,
// as std::rint), saturated to int8 by the packs.
inline void quantize_planar_q8(const float* x, size_t n_col, detail::PlanarQ8 out, bool with_sum) {
#if XSIMD_WITH_SSE2
  const __m128 sign = _mm_set1_ps(-0.0f);
  for (size_t b = 0; b < n_col / 32; ++b) {
    const float* xb = x + 32 * b;
    __m128 v[8];
    __m128 vmax = _mm_setzero_ps();
    for (size_t i = 0; i < 8; ++i) {
      v[i] = _mm_loadu_ps(xb + 4 * i);
      vmax = _mm_max_ps(vmax, _mm_andnot_ps(sign, v[i]));
    }
    vmax = _mm_max_ps(vmax, _mm_movehl_ps(vmax, vmax));
    vmax = _mm_max_ss(vmax, _mm_shuffle_ps(vmax, vmax, 1));
    const float amax = _mm_cvtss_f32(vmax);
    const float scale = amax / 127.0f;
    const __m128 inverse = _mm_set1_ps(amax != 0.0f ? 127.0f / amax : 0.0f);
    __m128i q[8];
    __m128i sum = _mm_setzero_si128();
    for (size_t i = 0; i < 8; ++i) {
      q[i] = _mm_cvtps_epi32(_mm_mul_ps(v[i], inverse));
      sum = _mm_add_epi32(sum, q[i]);
    }
    for (size_t h = 0; h < 2; ++h) {
      const __m128i lo = _mm_packs_epi32(q[4 * h], q[4 * h + 1]);
      const __m128i hi = _mm_packs_epi32(q[4 * h + 2], q[4 * h + 3]);
      _mm_storeu_si128(reinterpret_cast<__m128i*>(out.qs + 32 * b + 16 * h), _mm_packs_epi16(lo, hi));
    }
    out.d[b] = f16_to_f32(f32_to_f16(scale));
    if (with_sum) {
      alignas(16) int32_t lanes[4];
      _mm_store_si128(reinterpret_cast<__m128i*>(lanes), sum);
      out.s[b] = f16_to_f32(quant::activation_sum_f16(scale, lanes[0] + lanes[1] + lanes[2] + lanes[3]));
    }
  }
#else
  detail::quantize_planar_q8(x, n_col, out, with_sum);
#endif
}

// Activations for F16 weights: rounded to f16 (nearest even) and widened.
inline void round_to_f16(const float* x, float* out, size_t n) {
  size_t i = 0;
#if XSIMD_WITH_SSE2 && defined(__F16C__)
  for (; i + 4 <= n; i += 4) {
    const __m128i h = _mm_cvtps_ph(_mm_loadu_ps(x + i), _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
    _mm_storeu_ps(out + i, _mm_cvtph_ps(h));
  }
#endif
  detail::round_to_f16(x + i, out + i, n - i);
}

// ------------------------------------------------------ int8 dot products

// How an arch takes the int8 dot products of a block of 32.
enum class Int8Path {
  kX86_256,  // AVX2 maddubs (or AVX-512 VNNI): 8 int32 lanes per block
  kX86_128,  // SSSE3 maddubs, or SSE2 madd on widened int16: 4 int32 lanes per block
  kPortable  // xsimd int32 batches: widen, multiply, add
};

template <class A>
constexpr Int8Path int8_path() {
#if XSIMD_WITH_AVX2
  if constexpr (std::is_base_of_v<xsimd::avx2, A>) return Int8Path::kX86_256;
#endif
#if XSIMD_WITH_AVX512F && XSIMD_WITH_AVX2
  if constexpr (std::is_base_of_v<xsimd::avx512f, A>) return Int8Path::kX86_256;
#endif
#if XSIMD_WITH_SSE2
  if constexpr (std::is_base_of_v<xsimd::sse2, A> || std::is_base_of_v<xsimd::avx, A>) return Int8Path::kX86_128;
#endif
  return Int8Path::kPortable;
}

// VNNI on avx512 archs when the compiler flags enable it; xsimd fixes the
// arch at compile time, so there is nothing to check at run time.
template <class A>
constexpr bool use_vnni() {
#if XSIMD_WITH_AVX512F && defined(__AVX512VNNI__) && defined(__AVX512VL__)
  return std::is_base_of_v<xsimd::avx512f, A>;
#else
  return false;
#endif
}

#if XSIMD_WITH_AVX2
// 32 unsigned bytes times 32 signed bytes, summed in fours into 8 int32 lanes.
// maddubs saturates its int16 pair sums: u * s pairs stay below 2^15 here
// (|u| <= 128 and |s| <= 127, or u <= 15).
template <bool kVnni>
inline __m256i dot_u8s8_256(__m256i u, __m256i s) {
#if defined(__AVX512VNNI__) && defined(__AVX512VL__)
  if constexpr (kVnni) return _mm256_dpbusd_epi32(_mm256_setzero_si256(), u, s);
#endif
  return _mm256_madd_epi16(_mm256_maddubs_epi16(u, s), _mm256_set1_epi16(1));
}

inline __m256 fma_256(__m256 a, __m256 b, __m256 c) {
#ifdef __FMA__
  return _mm256_fmadd_ps(a, b, c);
#else
  return _mm256_add_ps(_mm256_mul_ps(a, b), c);  // no FMA in the flags: nothing to contract
#endif
}

inline float sum_lanes_256(__m256 v) {
  __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
  s = _mm_add_ps(s, _mm_movehl_ps(s, s));
  s = _mm_add_ss(s, _mm_shuffle_ps(s, s, 1));
  return _mm_cvtss_f32(s);
}
#endif

#if XSIMD_WITH_SSE2
// 0x10 in byte j where bit j of the low 16 bits of `bits` is set: the fifth bits of 16
// elements of a Q5 block, in element order. Each byte of `bits` is copied 8 times, then
// byte j keeps its bit j % 8 (SSE2 only).
inline __m128i fifth_bits_128(uint32_t bits) {
  constexpr uint64_t kCopies = 0x0101010101010101ull;
  const __m128i spread = _mm_set_epi64x(int64_t(((bits >> 8) & 0xff) * kCopies), int64_t((bits & 0xff) * kCopies));
  const __m128i select = _mm_set1_epi64x(int64_t(0x8040201008040201ull));
  return _mm_and_si128(_mm_cmpeq_epi8(_mm_and_si128(spread, select), select), _mm_set1_epi8(0x10));
}

inline uint32_t load_u32(const uint8_t* p) {
  uint32_t v;
  std::memcpy(&v, p, sizeof(v));
  return v;
}

// 16 weight bytes times 16 activation bytes (signed, never -128), summed into
// 4 int32 lanes; kUnsigned: weights are nibbles 0..15.
template <bool kUnsigned>
inline __m128i dot_16(__m128i w, __m128i a) {
#if XSIMD_WITH_SSSE3
  if constexpr (kUnsigned) {
    return _mm_madd_epi16(_mm_maddubs_epi16(w, a), _mm_set1_epi16(1));
  } else {
    return _mm_madd_epi16(_mm_maddubs_epi16(_mm_sign_epi8(w, w), _mm_sign_epi8(a, w)), _mm_set1_epi16(1));
  }
#else
  // SSE2: widen to int16 (sign- or zero-extend) and multiply-add pairs.
  const __m128i zero = _mm_setzero_si128();
  const __m128i w_lo = kUnsigned ? _mm_unpacklo_epi8(w, zero) : _mm_srai_epi16(_mm_unpacklo_epi8(w, w), 8);
  const __m128i w_hi = kUnsigned ? _mm_unpackhi_epi8(w, zero) : _mm_srai_epi16(_mm_unpackhi_epi8(w, w), 8);
  const __m128i a_lo = _mm_srai_epi16(_mm_unpacklo_epi8(a, a), 8);
  const __m128i a_hi = _mm_srai_epi16(_mm_unpackhi_epi8(a, a), 8);
  return _mm_add_epi32(_mm_madd_epi16(w_lo, a_lo), _mm_madd_epi16(w_hi, a_hi));
#endif
}

inline __m128 fma_128(__m128 a, __m128 b, __m128 c) {
#ifdef __FMA__
  return _mm_fmadd_ps(a, b, c);
#else
  return _mm_add_ps(_mm_mul_ps(a, b), c);  // no FMA in the flags: nothing to contract
#endif
}

inline float sum_lanes_128(__m128 s) {
  s = _mm_add_ps(s, _mm_movehl_ps(s, s));
  s = _mm_add_ss(s, _mm_shuffle_ps(s, s, 1));
  return _mm_cvtss_f32(s);
}
#endif

// The int8 engines: one block of a weight row against kTok tokens,
// acc[k] += d_w * d_a[k] * (integer sums of the block, in lanes). The
// activation quants of token k are aq[k] + 32 * b, its scales ad[k][b].
#if XSIMD_WITH_AVX2
template <bool kVnni>
struct Int8X86_256 {
  using Acc = __m256;
  static Acc zero() { return _mm256_setzero_ps(); }
  static float sum(Acc a, Acc b) { return sum_lanes_256(_mm256_add_ps(a, b)); }

  template <size_t kTok, DType kT>
  static void block(const uint8_t* blk, size_t b, const int8_t* const (&aq)[kTok], const float* const (&ad)[kTok],
                    Acc (&acc)[kTok]) {
    using L = QuantLayout<kT>;
    const float dw = load_f16_scalar(blk + L::kScale);
    __m256i wq;
    if constexpr (kT == DType::Q8_0) {
      wq = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(blk + L::kQs));
    } else {
      const __m128i raw = _mm_loadu_si128(reinterpret_cast<const __m128i*>(blk + L::kQs));
      wq = _mm256_and_si256(_mm256_set_m128i(_mm_srli_epi16(raw, 4), raw), _mm256_set1_epi8(0x0f));
      if constexpr (kT == DType::Q5_0 || kT == DType::Q5_1) {
        const uint32_t qh = load_u32(blk + L::kQh);
        wq = _mm256_or_si256(wq, _mm256_set_m128i(fifth_bits_128(qh >> 16), fifth_bits_128(qh)));
      }
      if constexpr (kT == DType::Q4_0) wq = _mm256_sub_epi8(wq, _mm256_set1_epi8(8));
      if constexpr (kT == DType::Q5_0) wq = _mm256_sub_epi8(wq, _mm256_set1_epi8(16));
    }
    // Signed formats: |w| (<= 128) times a with w's sign; unsigned ones (<= 31) as they are.
    const __m256i wabs = _mm256_sign_epi8(wq, wq);
#pragma GCC unroll 4
    for (size_t k = 0; k < kTok; ++k) {
      const __m256i a = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(aq[k] + 32 * b));
      const __m256i sumi =
          kHasOffset<kT> ? dot_u8s8_256<kVnni>(wq, a) : dot_u8s8_256<kVnni>(wabs, _mm256_sign_epi8(a, wq));
      acc[k] = fma_256(_mm256_set1_ps(dw * ad[k][b]), _mm256_cvtepi32_ps(sumi), acc[k]);
    }
  }
};
#endif

#if XSIMD_WITH_AVX2
// The K-quant kernels (kquant_x86-inl.hpp, shared with the Highway backend)
// for archs on the 256-bit int8 path: AVX2 maddubs + madd, and a VNNI copy
// for avx512 archs when the flags enable VNNI (use_vnni).
#define EMBER_KQ_INLINE inline
namespace kquant_plain {
inline float LoadHalf(const uint8_t* p) { return load_f16_scalar(p); }
constexpr size_t kMaxTok = 4;
#define EMBER_KQ_VNNI 0
#include "ember/kernels/kquant_x86-inl.hpp"
#undef EMBER_KQ_VNNI
}  // namespace kquant_plain
#if defined(__AVX512VNNI__) && defined(__AVX512VL__)
namespace kquant_vnni {
inline float LoadHalf(const uint8_t* p) { return load_f16_scalar(p); }
constexpr size_t kMaxTok = 4;
#define EMBER_KQ_VNNI 1
#include "ember/kernels/kquant_x86-inl.hpp"
#undef EMBER_KQ_VNNI
}  // namespace kquant_vnni
#endif
#undef EMBER_KQ_INLINE
#endif

// Whether arch A has the K-quant kernels (Q2_K .. Q6_K against Q8_K).
template <class A>
constexpr bool has_kquant_kernels() {
  return int8_path<A>() == Int8Path::kX86_256;
}

// Rows [r_begin, r_end) of a K-quant matrix against n_tok tokens' Q8_K
// blocks; only for archs with has_kquant_kernels.
template <class A>
inline void kquant_rows(const MatrixView& w, const quant::BlockQ8_K* const* act, size_t n_tok, float* y,
                        size_t y_stride, size_t r_begin, size_t r_end) {
#if XSIMD_WITH_AVX2
#if defined(__AVX512VNNI__) && defined(__AVX512VL__)
  if constexpr (use_vnni<A>()) {
    kquant_vnni::KQuantRows(w, act, n_tok, y, y_stride, r_begin, r_end);
    return;
  }
#endif
  kquant_plain::KQuantRows(w, act, n_tok, y, y_stride, r_begin, r_end);
#else
  (void)w, (void)act, (void)n_tok, (void)y, (void)y_stride, (void)r_begin, (void)r_end;
#endif
}

#if XSIMD_WITH_SSE2
struct Int8X86_128 {
  using Acc = __m128;
  static Acc zero() { return _mm_setzero_ps(); }
  static float sum(Acc a, Acc b) { return sum_lanes_128(_mm_add_ps(a, b)); }

  template <size_t kTok, DType kT>
  static void block(const uint8_t* blk, size_t b, const int8_t* const (&aq)[kTok], const float* const (&ad)[kTok],
                    Acc (&acc)[kTok]) {
    using L = QuantLayout<kT>;
    constexpr bool kUnsigned = kHasOffset<kT>;
    const float dw = load_f16_scalar(blk + L::kScale);
    __m128i w0, w1;  // elements 0..15 and 16..31
    if constexpr (kT == DType::Q8_0) {
      w0 = _mm_loadu_si128(reinterpret_cast<const __m128i*>(blk + L::kQs));
      w1 = _mm_loadu_si128(reinterpret_cast<const __m128i*>(blk + L::kQs + 16));
    } else {
      const __m128i raw = _mm_loadu_si128(reinterpret_cast<const __m128i*>(blk + L::kQs));
      const __m128i mask = _mm_set1_epi8(0x0f);
      w0 = _mm_and_si128(raw, mask);
      w1 = _mm_and_si128(_mm_srli_epi16(raw, 4), mask);
      if constexpr (kT == DType::Q5_0 || kT == DType::Q5_1) {
        const uint32_t qh = load_u32(blk + L::kQh);
        w0 = _mm_or_si128(w0, fifth_bits_128(qh));
        w1 = _mm_or_si128(w1, fifth_bits_128(qh >> 16));
      }
      if constexpr (kT == DType::Q4_0 || kT == DType::Q5_0) {
        const __m128i offset = _mm_set1_epi8(kT == DType::Q4_0 ? 8 : 16);
        w0 = _mm_sub_epi8(w0, offset);
        w1 = _mm_sub_epi8(w1, offset);
      }
    }
#pragma GCC unroll 4
    for (size_t k = 0; k < kTok; ++k) {
      const int8_t* a = aq[k] + 32 * b;
      const __m128i a0 = _mm_loadu_si128(reinterpret_cast<const __m128i*>(a));
      const __m128i a1 = _mm_loadu_si128(reinterpret_cast<const __m128i*>(a + 16));
      const __m128i sumi = _mm_add_epi32(dot_16<kUnsigned>(w0, a0), dot_16<kUnsigned>(w1, a1));
      acc[k] = fma_128(_mm_set1_ps(dw * ad[k][b]), _mm_cvtepi32_ps(sumi), acc[k]);
    }
  }
};
#endif

template <class A>
struct Int8Portable {
  using F = FloatBatch<A>;
  using I = IntBatch<A>;
  using Acc = F;
  static constexpr size_t N = F::size;
  static constexpr size_t kVecs = 32 / N;
  static Acc zero() { return F(0.0f); }
  static float sum(Acc a, Acc b) { return xsimd::hadd(a + b); }

  template <size_t kTok, DType kT>
  static void block(const uint8_t* blk, size_t b, const int8_t* const (&aq)[kTok], const float* const (&ad)[kTok],
                    Acc (&acc)[kTok]) {
    using L = QuantLayout<kT>;
    const uint8_t* qs = blk + L::kQs;
    const float dw = load_f16_scalar(blk + L::kScale);
    I wv[kVecs];                         // the block's 32 weights as int32
    alignas(64) int32_t fifth[32] = {};  // Q5: element j's fifth bit, times 16
    if constexpr (kT == DType::Q5_0 || kT == DType::Q5_1) {
      uint32_t qh;
      std::memcpy(&qh, blk + L::kQh, sizeof(qh));
      for (size_t j = 0; j < 32; ++j) fifth[j] = int32_t((qh >> j) & 1) << 4;
    }
    for (size_t i = 0; i < kVecs; ++i) {
      const size_t j = i * N;
      if constexpr (kT == DType::Q8_0) {
        wv[i] = widen_bytes<A, true>(qs + j);
      } else {
        const I raw = widen_bytes<A, false>(qs + j % 16);
        wv[i] = j < 16 ? (raw & I(0xf)) : (raw >> 4);
        if constexpr (kT == DType::Q5_0 || kT == DType::Q5_1) wv[i] = wv[i] | I::load_aligned(fifth + j);
        if constexpr (kT == DType::Q4_0) wv[i] = wv[i] - I(8);
        if constexpr (kT == DType::Q5_0) wv[i] = wv[i] - I(16);
      }
    }
    for (size_t k = 0; k < kTok; ++k) {
      const auto* a = reinterpret_cast<const uint8_t*>(aq[k] + 32 * b);
      I sumi(0);
      for (size_t i = 0; i < kVecs; ++i) sumi = sumi + wv[i] * widen_bytes<A, true>(a + i * N);
      acc[k] = xsimd::fma(F(dw * ad[k][b]), xsimd::batch_cast<float>(sumi), acc[k]);
    }
  }
};

template <class A>
auto int8_engine() {
  constexpr Int8Path kPath = int8_path<A>();
#if XSIMD_WITH_AVX2
  if constexpr (kPath == Int8Path::kX86_256) return Int8X86_256<use_vnni<A>()>{};
#endif
#if XSIMD_WITH_SSE2
  if constexpr (kPath == Int8Path::kX86_128) return Int8X86_128{};
#endif
  if constexpr (kPath == Int8Path::kPortable) return Int8Portable<A>{};
}

// One weight row against kTok tokens of planar activations. Per block and
// token the int8 products sum exactly into int32 lanes, which one FMA scales
// by d_w * d_a (an exact product of two f16 values) into a float accumulator;
// even and odd blocks feed separate accumulators (two FMA chains in flight
// even for one token). Q4_1's and Q5_1's m * s terms (exact products) add up in a scalar
// float, in block order. One horizontal sum per output.
template <class A, size_t kTok, DType kT>
inline void quant_row(const uint8_t* row, size_t n_block, const detail::PlanarQ8* act, float* y, size_t y_stride) {
  using E = decltype(int8_engine<A>());
  using L = QuantLayout<kT>;
  const int8_t* aq[kTok];
  const float* ad[kTok];
  typename E::Acc acc0[kTok], acc1[kTok];
  float offset[kTok];
  for (size_t k = 0; k < kTok; ++k) {
    aq[k] = act[k].qs;
    ad[k] = act[k].d;
    acc0[k] = acc1[k] = E::zero();
    offset[k] = 0.0f;
  }
  auto add_offsets = [&](size_t b) {
    if constexpr (kHasOffset<kT>) {
      const float mw = load_f16_scalar(row + b * L::kBytes + L::kOffset);
      for (size_t k = 0; k < kTok; ++k) offset[k] += mw * act[k].s[b];
    }
  };
  size_t b = 0;
  for (; b + 2 <= n_block; b += 2) {
    E::template block<kTok, kT>(row + b * L::kBytes, b, aq, ad, acc0);
    E::template block<kTok, kT>(row + (b + 1) * L::kBytes, b + 1, aq, ad, acc1);
    add_offsets(b);
    add_offsets(b + 1);
  }
  if (b < n_block) {
    E::template block<kTok, kT>(row + b * L::kBytes, b, aq, ad, acc0);
    add_offsets(b);
  }
  for (size_t k = 0; k < kTok; ++k) y[k * y_stride] = E::sum(acc0[k], acc1[k]) + offset[k];
}

}  // namespace xsimd_detail

template <class Arch = xsimd::default_arch>
struct Xsimd {
  static constexpr const char* name = "xsimd";
  using arch_type = Arch;

  static bool supports(DType t) { return has_vector_matmul(t) || Reference::supports(t); }

  static void matmul(const MatrixView& w, const float* x, size_t x_stride, size_t n_tok, float* y, size_t y_stride,
                     size_t r_begin, size_t r_end) {
    assert(r_begin <= r_end && r_end <= w.n_row);
    assert(w.n_col % block_size(w.dtype) == 0);
    if (!has_vector_matmul(w.dtype)) {
      Reference::matmul(w, x, x_stride, n_tok, y, y_stride, r_begin, r_end);
      return;
    }
    if (r_begin == r_end) return;
    if (w.dtype == DType::F32) {
      dense_rows<float>(w, x, x_stride, n_tok, y, y_stride, r_begin, r_end);
      return;
    }
    // Convert the activations of up to kTokenChunk tokens at a time.
    const size_t stride = detail::planar_row_bytes(w.dtype, w.n_col);
    std::byte* scratch = detail::thread_scratch(std::min(n_tok, detail::kTokenChunk) * stride);
    for (size_t t0 = 0; t0 < n_tok; t0 += detail::kTokenChunk) {
      const size_t nt = std::min(n_tok - t0, detail::kTokenChunk);
      const float* xt = x + t0 * x_stride;
      float* yt = y + t0 * y_stride;
      if (w.dtype == DType::F16) {
        auto* rounded = reinterpret_cast<float*>(scratch);
        const size_t rounded_stride = stride / sizeof(float);
        for (size_t k = 0; k < nt; ++k) {
          xsimd_detail::round_to_f16(xt + k * x_stride, rounded + k * rounded_stride, w.n_col);
        }
        dense_rows<uint16_t>(w, rounded, rounded_stride, nt, yt, y_stride, r_begin, r_end);
        continue;
      }
      if (w.dtype == DType::BF16) {  // activations rounded to bf16 as Reference's are (nearest even)
        auto* rounded = reinterpret_cast<float*>(scratch);
        const size_t rounded_stride = stride / sizeof(float);
        for (size_t k = 0; k < nt; ++k) detail::round_to_bf16(xt + k * x_stride, rounded + k * rounded_stride, w.n_col);
        dense_rows<bf16>(w, rounded, rounded_stride, nt, yt, y_stride, r_begin, r_end);
        continue;
      }
      if (quant::activation_type(w.dtype) == DType::Q8_K) {
        // As Reference quantizes them (scalar: a sliver of the matmul's work).
        const quant::BlockQ8_K* blocks[detail::kTokenChunk];
        for (size_t k = 0; k < nt; ++k) {
          auto* out = reinterpret_cast<quant::BlockQ8_K*>(scratch + k * stride);
          quant::quantize_activations(xt + k * x_stride, out, w.n_col);
          blocks[k] = out;
        }
        xsimd_detail::kquant_rows<Arch>(w, blocks, nt, yt, y_stride, r_begin, r_end);
        continue;
      }
      detail::PlanarQ8 act[detail::kTokenChunk];
      const bool with_sum = quant::activation_type(w.dtype) == DType::Q8_1;
      for (size_t k = 0; k < nt; ++k) {
        act[k] = detail::planar_q8(scratch + k * stride, w.n_col);
        xsimd_detail::quantize_planar_q8(xt + k * x_stride, w.n_col, act[k], with_sum);
      }
      quant_rows(w, act, nt, yt, y_stride, r_begin, r_end);
    }
  }

  static float dot(const float* a, const float* b, size_t n) {
    Batch acc0(0.0f), acc1(0.0f), acc2(0.0f), acc3(0.0f);
    size_t i = 0;
    for (; i + 4 * N <= n; i += 4 * N) {
      acc0 = xsimd::fma(load(a + i), load(b + i), acc0);
      acc1 = xsimd::fma(load(a + i + N), load(b + i + N), acc1);
      acc2 = xsimd::fma(load(a + i + 2 * N), load(b + i + 2 * N), acc2);
      acc3 = xsimd::fma(load(a + i + 3 * N), load(b + i + 3 * N), acc3);
    }
    for (; i + N <= n; i += N) acc0 = xsimd::fma(load(a + i), load(b + i), acc0);
    if (i < n) {
      const Tail t(a + i, b + i, n - i);
      acc1 = xsimd::fma(t.load_a(), t.load_b(), acc1);
    }
    return xsimd::hadd((acc0 + acc1) + (acc2 + acc3));
  }

  static void axpy(float a, const float* x, float* y, size_t n) {
    const Batch va(a);
    size_t i = 0;
    for (; i + N <= n; i += N) xsimd::fma(va, load(x + i), load(y + i)).store_unaligned(y + i);
    if (i < n) {
      Tail t(x + i, y + i, n - i);
      xsimd::fma(va, t.load_a(), t.load_b()).store_aligned(t.b);
      std::memcpy(y + i, t.b, (n - i) * sizeof(float));
    }
  }

  static void add(float* y, const float* x, size_t n) {
    size_t i = 0;
    for (; i + N <= n; i += N) (load(y + i) + load(x + i)).store_unaligned(y + i);
    if (i < n) {
      Tail t(y + i, x + i, n - i);
      (t.load_a() + t.load_b()).store_aligned(t.a);
      std::memcpy(y + i, t.a, (n - i) * sizeof(float));
    }
  }

  static void scale(float* x, float s, size_t n) {
    const Batch vs(s);
    size_t i = 0;
    for (; i + N <= n; i += N) (load(x + i) * vs).store_unaligned(x + i);
    if (i < n) {
      Tail t(x + i, nullptr, n - i);
      (t.load_a() * vs).store_aligned(t.a);
      std::memcpy(x + i, t.a, (n - i) * sizeof(float));
    }
  }

  // out may alias x (in-place norm).
  static void rmsnorm(const float* x, const float* weight, float* out, size_t n, float eps) {
    Batch acc0(0.0f), acc1(0.0f);
    size_t i = 0;
    for (; i + 2 * N <= n; i += 2 * N) {
      const Batch v0 = load(x + i), v1 = load(x + i + N);
      acc0 = xsimd::fma(v0, v0, acc0);
      acc1 = xsimd::fma(v1, v1, acc1);
    }
    for (; i + N <= n; i += N) {
      const Batch v = load(x + i);
      acc0 = xsimd::fma(v, v, acc0);
    }
    if (i < n) {
      const Tail t(x + i, nullptr, n - i);
      const Batch v = t.load_a();
      acc1 = xsimd::fma(v, v, acc1);
    }
    const float mean = xsimd::hadd(acc0 + acc1) / float(n);
    const Batch s(1.0f / std::sqrt(mean + eps));
    // x * s * weight, in the oracle's order.
    for (i = 0; i + N <= n; i += N) (load(x + i) * s * load(weight + i)).store_unaligned(out + i);
    if (i < n) {
      Tail t(x + i, weight + i, n - i);
      (t.load_a() * s * t.load_b()).store_aligned(t.a);
      std::memcpy(out + i, t.a, (n - i) * sizeof(float));
    }
  }

  // As Reference::layernorm: sums in two passes (mean, then centered squares). out may alias x.
  static void layernorm(const float* x, const float* weight, const float* bias, float* out, size_t n, float eps) {
    if (n == 0) return;
    Batch acc0(0.0f), acc1(0.0f);
    size_t i = 0;
    for (; i + 2 * N <= n; i += 2 * N) {
      acc0 += load(x + i);
      acc1 += load(x + i + N);
    }
    for (; i + N <= n; i += N) acc0 += load(x + i);
    float sum = xsimd::hadd(acc0 + acc1);
    for (; i < n; ++i) sum += x[i];
    const float mean = sum / float(n);
    const Batch vmean(mean);
    acc0 = acc1 = Batch(0.0f);
    for (i = 0; i + 2 * N <= n; i += 2 * N) {
      const Batch v0 = load(x + i) - vmean, v1 = load(x + i + N) - vmean;
      acc0 = xsimd::fma(v0, v0, acc0);
      acc1 = xsimd::fma(v1, v1, acc1);
    }
    for (; i + N <= n; i += N) {
      const Batch v = load(x + i) - vmean;
      acc0 = xsimd::fma(v, v, acc0);
    }
    float sum2 = xsimd::hadd(acc0 + acc1);
    for (; i < n; ++i) sum2 += (x[i] - mean) * (x[i] - mean);
    const float s = 1.0f / std::sqrt(sum2 / float(n) + eps);
    const Batch vs(s);
    for (i = 0; i + N <= n; i += N) {
      Batch v = (load(x + i) - vmean) * vs;
      if (weight) v *= load(weight + i);
      if (bias) v += load(bias + i);
      v.store_unaligned(out + i);
    }
    for (; i < n; ++i) {
      float v = (x[i] - mean) * s;
      if (weight) v *= weight[i];
      if (bias) v += bias[i];
      out[i] = v;
    }
  }

  static void softmax(float* x, size_t n) { (void)softmax_lse(x, n); }
  // Softmax in place; returns the input's log-sum-exp, max + log(sum of exp(x - max)).
  static float softmax_lse(float* x, size_t n) {
    if (n == 0) return -HUGE_VALF;
    float max = x[0];
    size_t i = 0;
    if (n >= N) {
      Batch vmax = load(x);
      for (i = N; i + N <= n; i += N) vmax = xsimd::max(vmax, load(x + i));
      alignas(64) float lanes[N];
      vmax.store_aligned(lanes);
      for (size_t j = 0; j < N; ++j) max = lanes[j] > max ? lanes[j] : max;
    }
    for (size_t j = i; j < n; ++j) max = x[j] > max ? x[j] : max;
    const Batch vmax(max);

    Batch sum(0.0f);
    for (i = 0; i + N <= n; i += N) {
      const Batch e = xsimd::exp(load(x + i) - vmax);
      e.store_unaligned(x + i);
      sum += e;
    }
    if (i < n) {
      Tail t(x + i, nullptr, n - i);
      xsimd::exp(t.load_a() - vmax).store_aligned(t.a);
      // Padding lanes hold exp(-max); keep them out of the sum.
      for (size_t j = n - i; j < N; ++j) t.a[j] = 0.0f;
      sum += t.load_a();
      std::memcpy(x + i, t.a, (n - i) * sizeof(float));
    }
    const float total = xsimd::hadd(sum);
    scale(x, 1.0f / total, n);
    return max + std::log(total);
  }

  static void silu_mul(float* gate, const float* up, size_t n) {
    activate_mul([](const Batch& g) { return silu(g); }, gate, up, n);
  }

  static void gelu(float* x, size_t n) { gelu_mul(x, nullptr, n); }

  static void gelu_mul(float* gate, const float* up, size_t n) {
    activate_mul([](const Batch& x) { return gelu(x); }, gate, up, n);
  }

  // RoPE stays scalar: one cos/sin per pair serves every head, and sharing
  // the oracle's code keeps the angles bit-identical to llama.cpp's.
  static void rope(float* x, size_t n_head, size_t head_dim, size_t n_rot, int32_t pos, float freq_base) {
    Reference::rope(x, n_head, head_dim, n_rot, pos, freq_base);
  }
  static void rope_neox(float* x, size_t n_head, size_t head_dim, size_t n_rot, int32_t pos, float freq_base) {
    Reference::rope_neox(x, n_head, head_dim, n_rot, pos, freq_base);
  }

  // Fused decode attention for attention/attention.hpp's attend_group, with the contracts of
  // Highway::attend and Highway::attend_q8 (highway.hpp); defined in xsimd_attention.hpp.
  static bool attend(const KeyTilesF16& keys, const MatrixView& values_t, const float* q, size_t group, float scale,
                     float* scores, float* out, float* lse = nullptr);
  static bool attend_q8(const KeyTiles& keys, const MatrixView& values, const float* q, size_t group, float scale,
                        float* scores, float* out, float* lse = nullptr);

 private:
  using Batch = xsimd::batch<float, Arch>;
  static constexpr size_t N = Batch::size;
  // One vector must never straddle a 32-element quant block.
  static_assert(N <= 16 && 32 % N == 0, "unexpected vector width");
  // Tokens sharing one pass over a weight row (see Highway's kMaxTok).
  static constexpr size_t kMaxTok = 4;

  static bool has_vector_matmul(DType t) {
    switch (t) {
      case DType::F32:
      case DType::F16:
      case DType::BF16:
      case DType::Q8_0:
      case DType::Q4_0:
      case DType::Q4_1:
      case DType::Q5_0:
      case DType::Q5_1: return true;
      case DType::Q2_K:
      case DType::Q3_K:
      case DType::Q4_K:
      case DType::Q5_K:
      case DType::Q6_K: return xsimd_detail::has_kquant_kernels<Arch>();
      default: return false;
    }
  }

  static Batch load(const float* p) { return Batch::load_unaligned(p); }

  // Elementwise ops finish with one zero-padded partial vector; this holds it.
  struct Tail {
    alignas(64) float a[N];
    alignas(64) float b[N];
    Tail(const float* pa, const float* pb, size_t count) {
      for (size_t i = 0; i < N; ++i) a[i] = b[i] = 0.0f;
      if (pa) std::memcpy(a, pa, count * sizeof(float));
      if (pb) std::memcpy(b, pb, count * sizeof(float));
    }
    Batch load_a() const { return Batch::load_aligned(a); }
    Batch load_b() const { return Batch::load_aligned(b); }
  };

  static Batch silu(const Batch& g) { return g / (Batch(1.0f) + xsimd::exp(-g)); }

  // gate = act(gate) * up, or gate = act(gate) when up is null (act: silu, gelu).
  template <class Act>
  static void activate_mul(Act act, float* gate, const float* up, size_t n) {
    size_t i = 0;
    for (; i + N <= n; i += N) {
      Batch g = act(load(gate + i));
      if (up) g *= load(up + i);
      g.store_unaligned(gate + i);
    }
    if (i < n) {
      Tail t(gate + i, up ? up + i : nullptr, n - i);
      Batch g = act(t.load_a());
      if (up) g *= t.load_b();
      g.store_aligned(t.a);
      std::memcpy(gate + i, t.a, (n - i) * sizeof(float));
    }
  }
  // ggml_gelu's tanh approximation as x / (1 + exp(-2u)), u = sqrt(2/pi) x (1 + 0.044715 x^2)
  // (Highway's Gelu: one exp, no cancellation for negative x).
  static Batch gelu(const Batch& x) {
    const Batch u2 = x * Batch(-2.0f * 0.79788456080286535588f) * xsimd::fma(x * x, Batch(0.044715f), Batch(1.0f));
    return x / (Batch(1.0f) + xsimd::exp(u2));
  }

  // Rows outer, token groups inner: a row stays in L1 while every group of
  // tokens reads it.
  template <typename WT>
  static void dense_rows(const MatrixView& w, const float* x, size_t x_stride, size_t n_tok, float* y, size_t y_stride,
                         size_t r_begin, size_t r_end) {
    for (size_t r = r_begin; r < r_end; ++r) {
      const WT* row = reinterpret_cast<const WT*>(w.row(r));
      size_t t = 0;
      for (; t + kMaxTok <= n_tok; t += kMaxTok) {
        dense_row<kMaxTok>(row, w.n_col, x + t * x_stride, x_stride, y + t * y_stride + r, y_stride);
      }
      const float* xt = x + t * x_stride;
      float* yt = y + t * y_stride + r;
      switch (n_tok - t) {
        case 1: dense_row<1>(row, w.n_col, xt, x_stride, yt, y_stride); break;
        case 2: dense_row<2>(row, w.n_col, xt, x_stride, yt, y_stride); break;
        case 3: dense_row<3>(row, w.n_col, xt, x_stride, yt, y_stride); break;
        default: break;
      }
    }
  }

  template <size_t kTok>
  static void quant_row_tokens(const MatrixView& w, const std::byte* row, const detail::PlanarQ8* act, float* y,
                               size_t y_stride) {
    using xsimd_detail::quant_row;
    const auto* bytes = reinterpret_cast<const uint8_t*>(row);
    const size_t n_block = w.n_col / 32;
    switch (w.dtype) {
      case DType::Q8_0: quant_row<Arch, kTok, DType::Q8_0>(bytes, n_block, act, y, y_stride); break;
      case DType::Q4_0: quant_row<Arch, kTok, DType::Q4_0>(bytes, n_block, act, y, y_stride); break;
      case DType::Q4_1: quant_row<Arch, kTok, DType::Q4_1>(bytes, n_block, act, y, y_stride); break;
      case DType::Q5_0: quant_row<Arch, kTok, DType::Q5_0>(bytes, n_block, act, y, y_stride); break;
      case DType::Q5_1: quant_row<Arch, kTok, DType::Q5_1>(bytes, n_block, act, y, y_stride); break;
      default: break;  // matmul routes other formats elsewhere
    }
  }

  static void quant_rows(const MatrixView& w, const detail::PlanarQ8* act, size_t n_tok, float* y, size_t y_stride,
                         size_t r_begin, size_t r_end) {
    for (size_t r = r_begin; r < r_end; ++r) {
      const std::byte* row = w.row(r);
      size_t t = 0;
      for (; t + kMaxTok <= n_tok; t += kMaxTok) {
        quant_row_tokens<kMaxTok>(w, row, act + t, y + t * y_stride + r, y_stride);
      }
      switch (n_tok - t) {
        case 1: quant_row_tokens<1>(w, row, act + t, y + t * y_stride + r, y_stride); break;
        case 2: quant_row_tokens<2>(w, row, act + t, y + t * y_stride + r, y_stride); break;
        case 3: quant_row_tokens<3>(w, row, act + t, y + t * y_stride + r, y_stride); break;
        default: break;
      }
    }
  }

  // One group of 4 vectors of one token: the unit of summation for dense
  // rows. Independent groups keep several FMA chains in flight without making
  // the result depend on the token count.
  //
  // Every product goes through fma, the first one as fma(w, x, 0), never a
  // bare `w * x`: xsimd's operators are plain vector arithmetic that GCC may
  // contract into FMAs (-ffp-contract=fast is its C++ default), and in
  // `w1*x1 + w0*x0` which product it fuses can change with the inlining
  // context, i.e. with the token count. That broke determinism on archs
  // without native FMA in builds whose flags enable it.
  static Batch dot_group(const Batch& w0, const Batch& w1, const Batch& w2, const Batch& w3, const float* x) {
    Batch p = xsimd::fma(w0, load(x), Batch(0.0f));
    p = xsimd::fma(w1, load(x + N), p);
    p = xsimd::fma(w2, load(x + 2 * N), p);
    return xsimd::fma(w3, load(x + 3 * N), p);
  }

  template <size_t kTok, typename WT>
  static void dense_row(const WT* w, size_t n, const float* x, size_t x_stride, float* y, size_t y_stride) {
    using xsimd_detail::load_weights;
    Batch acc[kTok];
    for (size_t k = 0; k < kTok; ++k) acc[k] = Batch(0.0f);
    size_t i = 0;
    for (; i + 4 * N <= n; i += 4 * N) {
      const Batch w0 = load_weights<Arch>(w + i);
      const Batch w1 = load_weights<Arch>(w + i + N);
      const Batch w2 = load_weights<Arch>(w + i + 2 * N);
      const Batch w3 = load_weights<Arch>(w + i + 3 * N);
      for (size_t k = 0; k < kTok; ++k) acc[k] += dot_group(w0, w1, w2, w3, x + k * x_stride + i);
    }
    if (i < n) {
      // The last partial group, zero-padded: adding exact zeros leaves every
      // sum as it would be without them.
      const size_t rem = n - i;
      alignas(64) WT wbuf[4 * N] = {};
      std::memcpy(wbuf, w + i, rem * sizeof(WT));
      const Batch w0 = load_weights<Arch>(wbuf);
      const Batch w1 = load_weights<Arch>(wbuf + N);
      const Batch w2 = load_weights<Arch>(wbuf + 2 * N);
      const Batch w3 = load_weights<Arch>(wbuf + 3 * N);
      alignas(64) float xbuf[4 * N] = {};
      for (size_t k = 0; k < kTok; ++k) {
        std::memcpy(xbuf, x + k * x_stride + i, rem * sizeof(float));
        acc[k] += dot_group(w0, w1, w2, w3, xbuf);
      }
    }
    for (size_t k = 0; k < kTok; ++k) y[k * y_stride] = xsimd::hadd(acc[k]);
  }
};

}  // namespace ember::kernels

// The fused attention kernels: Xsimd::attend and Xsimd::attend_q8.
#include "ember/kernels/xsimd_attention.hpp"
