// Per-target SIMD code of the Highway backend. highway_impl.hpp includes this
// once per CPU target (via hwy/foreach_target.h); nothing else should.
//
// Conventions, as in reference.hpp: `w` weights, `x` activations, `y` outputs,
// strides in floats, no alignment assumed for weights or caller activations.
// Vectors are at most 16 floats (CappedTag) so one vector never straddles a
// 32-element quant block. Each output's arithmetic is a fixed sequence that
// depends only on n_col and the target, never on how many tokens or rows one
// call covers: that is what keeps matmul deterministic under any split. (With
// or without VNNI, the int8 kernels give the same bits.)
//
// Matmul follows ggml's semantics (reference.hpp): activations are converted
// once per call (per chunk of tokens) into the scratch the dispatcher passes,
// to planar Q8 for Q8_0 / Q4_x / Q5_x weights, to Q8_K blocks for the
// K-quants and to f16-rounded floats for F16 weights, bit for bit as
// Reference converts them; then integer block dot products. On x86 they use
// AVX2 or AVX-512 VNNI intrinsics (highway_int8-inl.hpp); elsewhere Q8_0 /
// Q4_0 / Q4_1 use Highway ops with widening multiplies and the Q5 and K-quant
// formats run Reference's matmul. BF16 weights take the dense path (bf16-rounded
// activations, as Reference's).
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <type_traits>

#include "ember/core/half.hpp"
#include "ember/kernels/activation_buffer.hpp"
#include "ember/kernels/key_tiles.hpp"
#include "ember/kernels/matrix.hpp"
#include "ember/kernels/packed.hpp"
#include "ember/kernels/quant_layout.hpp"
#include "ember/kernels/reference.hpp"
#include "ember/kernels/with_count.hpp"
#include "ember/quant/activations.hpp"
#include "ember/quant/blocks.hpp"
#include "ember/tensor/dtype.hpp"

// Per-target include guard (Highway's toggle idiom).
#if defined(EMBER_KERNELS_HIGHWAY_INL_H_) == defined(HWY_TARGET_TOGGLE)
#ifdef EMBER_KERNELS_HIGHWAY_INL_H_
#undef EMBER_KERNELS_HIGHWAY_INL_H_
#else
#define EMBER_KERNELS_HIGHWAY_INL_H_
#endif

#include <hwy/cache_control.h>
#include <hwy/contrib/math/math-inl.h>
#include <hwy/highway.h>

// x86 targets get intrinsics for the int8 dot products and f16 rounding.
#undef EMBER_HWY_X86
#if HWY_TARGET == HWY_AVX2 || HWY_TARGET == HWY_AVX3 || HWY_TARGET == HWY_AVX3_DL
#define EMBER_HWY_X86 1
#include <immintrin.h>
#else
#define EMBER_HWY_X86 0
#endif

HWY_BEFORE_NAMESPACE();
namespace ember::kernels::HWY_NAMESPACE {
namespace hn = hwy::HWY_NAMESPACE;

using DF = hn::CappedTag<float, 16>;
using VF = hn::Vec<DF>;

// Most lanes any vector of DF has on this target; sizes the tail buffers.
constexpr size_t kMaxLanes = HWY_MAX_BYTES / sizeof(float) < 16 ? HWY_MAX_BYTES / sizeof(float) : 16;
// Tokens that share one pass over a weight row: each weight vector is loaded
// (and unpacked) once and used kMaxTok times. 4 keeps the quant kernels'
// accumulators (two per token) and operands within AVX2's 16 registers.
constexpr size_t kMaxTok = 4;

// ------------------------------------------------------------------ loads

// Weights of a dense row to f32 lanes.
HWY_INLINE VF LoadWeights(DF d, const float* HWY_RESTRICT p) { return hn::LoadU(d, p); }
HWY_INLINE VF LoadWeights(DF d, const hwy::float16_t* HWY_RESTRICT p) {
  const hn::Rebind<hwy::float16_t, DF> dh;
  return hn::PromoteTo(d, hn::LoadU(dh, p));
}
// bf16: the 16 bits are the top half of the float's.
HWY_INLINE VF LoadWeights(DF d, const bf16* HWY_RESTRICT p) {
  const hn::Rebind<uint16_t, DF> du16;
  const hn::RebindToUnsigned<DF> du32;
  const auto bits = hn::PromoteTo(du32, hn::LoadU(du16, reinterpret_cast<const uint16_t*>(p)));
  return hn::BitCast(d, hn::ShiftLeft<16>(bits));
}

// The bits of an f16 scale in a quant block, which may sit at any byte address.
HWY_INLINE uint16_t LoadHalfBits(const uint8_t* p) {
  uint16_t h;
  std::memcpy(&h, p, sizeof(h));
  return h;
}

// --------------------------------------------------------- dense (F32/F16)

// One group of 4 vectors of one token: the unit of summation for dense rows.
// Independent groups keep several FMA chains in flight without making the
// result depend on the token count.
HWY_INLINE VF DotGroup(DF d, const VF w0, const VF w1, const VF w2, const VF w3, const float* HWY_RESTRICT x) {
  const size_t N = hn::Lanes(d);
  // fma(w, x, 0) rather than Mul: a bare product may be contracted into a
  // neighbouring add differently per inlining context (see xsimd.hpp).
  VF p = hn::MulAdd(w0, hn::LoadU(d, x), hn::Zero(d));
  p = hn::MulAdd(w1, hn::LoadU(d, x + N), p);
  p = hn::MulAdd(w2, hn::LoadU(d, x + 2 * N), p);
  return hn::MulAdd(w3, hn::LoadU(d, x + 3 * N), p);
}

// A software prefetch into L2 (x86's hint T2), not L1: on AMD Zen 4 an L1 prefetch waits for
// one of the core's few L1 miss buffers, and the attention's streams stalled on them
// (attention_bench --layers=22 4096, f16, alternating: 736-854 -> 598-671 us per layer).
HWY_INLINE void PrefetchL2(const void* p) {
#if EMBER_HWY_X86
  _mm_prefetch(static_cast<const char*>(p), _MM_HINT_T2);
#else
  hwy::Prefetch(p);
#endif
}

// How far ahead dense rows are prefetched, in elements (a few KiB; the attention's keys and
// values are read once per token from a cache far larger than L2).
constexpr size_t kDenseAhead = 2048;

template <size_t kTok, typename WT>
HWY_INLINE void DenseRow(const WT* HWY_RESTRICT w, size_t n, const float* HWY_RESTRICT x, size_t x_stride,
                         float* HWY_RESTRICT y, size_t y_stride) {
  const DF d;
  const size_t N = hn::Lanes(d);
  VF acc[kTok];
  for (size_t k = 0; k < kTok; ++k) acc[k] = hn::Zero(d);
  size_t i = 0;
  for (; i + 4 * N <= n; i += 4 * N) {
    // Long rows (the attention's transposed values) are read ahead within the row.
    if (i + kDenseAhead < n) hwy::Prefetch(w + i + kDenseAhead);
    const VF w0 = LoadWeights(d, w + i);
    const VF w1 = LoadWeights(d, w + i + N);
    const VF w2 = LoadWeights(d, w + i + 2 * N);
    const VF w3 = LoadWeights(d, w + i + 3 * N);
    for (size_t k = 0; k < kTok; ++k) {
      acc[k] = hn::Add(acc[k], DotGroup(d, w0, w1, w2, w3, x + k * x_stride + i));
    }
  }
  if (i < n) {
    // The last partial group, zero-padded: adding exact zeros leaves every
    // sum as it would be without them.
    const size_t rem = n - i;
    WT wbuf[4 * kMaxLanes];
    std::memset(static_cast<void*>(wbuf), 0, sizeof(wbuf));
    std::memcpy(static_cast<void*>(wbuf), w + i, rem * sizeof(WT));
    const VF w0 = LoadWeights(d, wbuf);
    const VF w1 = LoadWeights(d, wbuf + N);
    const VF w2 = LoadWeights(d, wbuf + 2 * N);
    const VF w3 = LoadWeights(d, wbuf + 3 * N);
    HWY_ALIGN float xbuf[4 * kMaxLanes] = {};
    for (size_t k = 0; k < kTok; ++k) {
      std::memcpy(xbuf, x + k * x_stride + i, rem * sizeof(float));
      acc[k] = hn::Add(acc[k], DotGroup(d, w0, w1, w2, w3, xbuf));
    }
  }
  for (size_t k = 0; k < kTok; ++k) {
    y[k * y_stride] = hn::GetLane(hn::SumOfLanes(d, acc[k]));
  }
}

// ------------------------------------------------- activation preparation

// Q8_0 / Q8_1 activations of one token into the planar layout, with the same
// bits as detail::quantize_planar_q8 (scalar, and the reference's blocks):
// amax, d = amax / 127 and id = 127 / amax as scalars, then q = x * id rounded
// to nearest even (cvtps2dq in the default rounding mode, as std::rint).
// `correction` (x86 only): the x16 kernels take Q4_0's nibbles unsigned and add -8 * sum(q)
// per block, and with VNNI Q8_0's quants as w + 128, adding -128 * sum(q): a non-zero factor
// puts factor * sum(q) in the block's otherwise unused s slot, as int32 (from the sum the
// block's quants give here, rather than by a second, scalar pass over them).
HWY_INLINE void QuantizePlanarQ8(const float* HWY_RESTRICT x, size_t n_col, detail::PlanarQ8 out, bool with_sum,
                                 int32_t correction = 0) {
#if EMBER_HWY_X86
  const DF d;
  const hn::RebindToSigned<DF> di;
  const hn::Rebind<int8_t, DF> d8;
  constexpr size_t N = hn::MaxLanes(DF());  // 8 or 16 on x86
  constexpr size_t kVecs = 32 / N;
  for (size_t b = 0; b < n_col / 32; ++b) {
    const float* xb = x + 32 * b;
    VF v[kVecs];
    VF vmax = hn::Zero(d);
    for (size_t i = 0; i < kVecs; ++i) {
      v[i] = hn::LoadU(d, xb + i * N);
      vmax = hn::Max(vmax, hn::Abs(v[i]));
    }
    const float amax = hn::GetLane(hn::MaxOfLanes(d, vmax));
    const float scale = amax / 127.0f;
    const VF inverse = hn::Set(d, amax != 0.0f ? 127.0f / amax : 0.0f);
    auto sum = hn::Zero(di);
    for (size_t i = 0; i < kVecs; ++i) {
      const auto q = hn::NearestInt(hn::Mul(v[i], inverse));
      sum = hn::Add(sum, q);
      hn::StoreU(hn::DemoteTo(d8, q), d8, out.qs + 32 * b + i * N);
    }
    out.d[b] = f16_to_f32(f32_to_f16(scale));
    if (with_sum) out.s[b] = f16_to_f32(quant::activation_sum_f16(scale, hn::GetLane(hn::SumOfLanes(di, sum))));
    if (correction != 0) {
      const int32_t c = correction * hn::GetLane(hn::SumOfLanes(di, sum));
      std::memcpy(out.s + b, &c, sizeof(c));
    }
  }
#else
  (void)correction;
  // Highway's scalar NearestInt rounds x + 0.5, which is off by one for some
  // values just below a half: keep the scalar quantizer.
  detail::quantize_planar_q8(x, n_col, out, with_sum);
#endif
}

// Q8_K activations of one token (K-quant weights), with the bits of quant::quantize_activations
// (ggml's quantize_row_q8_K_ref): the first element of largest magnitude sets the scale,
// q = iscale * x rounded to nearest even (cvtps2dq) and clamped, sums of 16 quants.
HWY_INLINE void QuantizeQ8K(const float* HWY_RESTRICT x, quant::BlockQ8_K* HWY_RESTRICT y, size_t n_col) {
#if EMBER_HWY_X86
  const DF d;
  const hn::RebindToSigned<DF> di;
  const hn::Rebind<int8_t, DF> d8;
  constexpr size_t N = hn::MaxLanes(DF());  // 8 or 16 on x86
  constexpr size_t kBlock = quant::kSuperBlockSize;
  for (size_t b = 0; b < n_col / kBlock; ++b, x += kBlock) {
    quant::BlockQ8_K& out = y[b];
    VF vmax = hn::Zero(d);
    auto nan = hn::FirstN(d, 0);
    for (size_t i = 0; i < kBlock; i += N) {
      const VF v = hn::LoadU(d, x + i);
      vmax = hn::Max(vmax, hn::Abs(v));
      nan = hn::Or(nan, hn::Ne(v, v));
    }
    const float amax = hn::GetLane(hn::MaxOfLanes(d, vmax));
    if (!hn::AllFalse(d, nan) || !(amax > 0.0f) || !(amax <= hwy::HighestValue<float>())) {
      quant::quantize_activations(x, &out, kBlock);  // zeros, NaNs, infinities: the scalar code's cases
      continue;
    }
    float max = 0.0f;  // the first element whose magnitude is amax, with its sign
    for (size_t i = 0; i < kBlock; i += N) {
      const VF v = hn::LoadU(d, x + i);
      const intptr_t at = hn::FindFirstTrue(d, hn::Eq(hn::Abs(v), hn::Set(d, amax)));
      if (at >= 0) {
        max = x[i + size_t(at)];
        break;
      }
    }
    const float iscale = -127.0f / max;
    const VF vs = hn::Set(d, iscale);
    for (size_t g = 0; g < kBlock / 16; ++g) {
      auto sum = hn::Zero(di);
      for (size_t i = 16 * g; i < 16 * g + 16; i += N) {
        auto q = hn::NearestInt(hn::Mul(vs, hn::LoadU(d, x + i)));
        q = hn::Min(hn::Max(q, hn::Set(di, -128)), hn::Set(di, 127));
        sum = hn::Add(sum, q);
        hn::StoreU(hn::DemoteTo(d8, q), d8, out.qs + i);
      }
      out.bsums[g] = int16_t(hn::GetLane(hn::SumOfLanes(di, sum)));
    }
    out.d = 1.0f / iscale;
  }
#else
  quant::quantize_activations(x, y, n_col);
#endif
}

// Activations for F16 weights: rounded to f16 (nearest even) and widened.
HWY_INLINE void RoundToF16(const float* HWY_RESTRICT x, float* HWY_RESTRICT out, size_t n) {
  size_t i = 0;
#if EMBER_HWY_X86 && !defined(HWY_DISABLE_F16C)
  for (; i + 8 <= n; i += 8) {
    const __m128i h = _mm256_cvtps_ph(_mm256_loadu_ps(x + i), _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
    _mm256_storeu_ps(out + i, _mm256_cvtph_ps(h));
  }
#endif
  // Highway's DemoteTo to f16 truncates on the scalar target: scalar code.
  detail::round_to_f16(x + i, out + i, n - i);
}

// ------------------------------------------------------ quant (Q8_0, Q4_x)

// Block layouts: kernels/quant_layout.hpp.

#if EMBER_HWY_X86

namespace int8_plain {
#define EMBER_INT8_VNNI 0
#include "ember/kernels/highway_int8-inl.hpp"
#undef EMBER_INT8_VNNI
}  // namespace int8_plain

#if HWY_TARGET != HWY_AVX2
// The same kernels with AVX512_VNNI enabled. Clang applies only the outermost
// pushed target attribute, so leave Highway's region and push a complete one.
// Highway 1.0.3's AVX3_DL string enables AVX-VNNI (the VEX form, Alder Lake),
// which Ice Lake lacks; with both, GCC picks the VEX encoding: turn it off.
HWY_POP_ATTRIBUTES
HWY_PUSH_ATTRIBUTES(HWY_TARGET_STR ",avx512vnni,no-avxvnni")
// GCC 12 flags the undefined pass-through operand of its own 512-bit
// intrinsics as maybe-uninitialized (GCC bug 105593, fixed in 13).
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#pragma GCC diagnostic ignored "-Wuninitialized"
#endif
namespace int8_vnni {
#define EMBER_INT8_VNNI 1
#include "ember/kernels/highway_int8-inl.hpp"
#undef EMBER_INT8_VNNI
}  // namespace int8_vnni
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic pop
#endif
HWY_POP_ATTRIBUTES
HWY_PUSH_ATTRIBUTES(HWY_TARGET_STR)
#endif

HWY_INLINE void QuantRows(const MatrixView& w, const detail::PlanarQ8* act, size_t n_tok, float* y, size_t y_stride,
                          size_t r_begin, size_t r_end, bool vnni) {
#if HWY_TARGET != HWY_AVX2
  if (vnni) {
    int8_vnni::QuantRows(w, act, n_tok, y, y_stride, r_begin, r_end);
    return;
  }
#else
  (void)vnni;
#endif
  int8_plain::QuantRows(w, act, n_tok, y, y_stride, r_begin, r_end);
}

HWY_INLINE void KQuantRows(const MatrixView& w, const quant::BlockQ8_K* const* act, size_t n_tok, float* y,
                           size_t y_stride, size_t r_begin, size_t r_end, bool vnni) {
#if HWY_TARGET != HWY_AVX2
  if (vnni) {
    int8_vnni::KQuantRows(w, act, n_tok, y, y_stride, r_begin, r_end);
    return;
  }
#else
  (void)vnni;
#endif
  int8_plain::KQuantRows(w, act, n_tok, y, y_stride, r_begin, r_end);
}

// `amx`: AMX is usable and on (Highway::amx_enabled); the tokens in full tiles of 16 then go
// through the tile kernel (amx_x86-inl.hpp, the VNNI kernel's bits), the rest through VNNI.
// `act_stride`: bytes from one token's planar row to the next.
HWY_INLINE void PackedRows(const MatrixView& w, const detail::PlanarQ8* act, size_t act_stride, size_t n_tok, float* y,
                           size_t y_stride, size_t r_begin, size_t r_end, bool vnni, bool amx) {
#if HWY_TARGET != HWY_AVX2
  if (vnni) {
    const size_t done = amx ? int8_vnni::AmxPackedRows(w, act, act_stride, n_tok, y, y_stride, r_begin, r_end) : 0;
    if (done < n_tok) int8_vnni::PackedRows(w, act + done, n_tok - done, y + done * y_stride, y_stride, r_begin, r_end);
    return;
  }
#else
  (void)vnni;
#endif
  (void)act_stride;
  (void)amx;
  int8_plain::PackedRows(w, act, n_tok, y, y_stride, r_begin, r_end);
}

// Formats with integer kernels on this target (the dispatcher's list, which
// also names F32 and F16).
constexpr bool HasQuantKernel(DType /*t*/) { return true; }

// Whether this target reads w.packed (packed.hpp) for w's format.
constexpr bool HasPackedKernel(DType t) { return t == DType::Q4_0 || t == DType::Q4_1 || t == DType::Q8_0; }
// Q4_K's and Q6_K's x16 kernels: AVX-512 VNNI only.
constexpr bool HasPackedKKernel(DType t, bool vnni) {
  return HWY_TARGET != HWY_AVX2 && vnni && (t == DType::Q4_K || t == DType::Q6_K);
}

// `amx`: as PackedRows' (Q4_K's full tiles of 16 tokens on the tile unit, with the bits of the
// x16 kernel); `act_stride`: bytes from one token's Q8_K row to the next.
HWY_INLINE void PackedKRows(const MatrixView& w, const quant::BlockQ8_K* const* act, size_t act_stride, size_t n_tok,
                            float* y, size_t y_stride, size_t r_begin, size_t r_end, bool amx) {
#if HWY_TARGET != HWY_AVX2
  const size_t done = amx ? int8_vnni::AmxPackedKRows(w, act, act_stride, n_tok, y, y_stride, r_begin, r_end) : 0;
  if (done < n_tok) int8_vnni::PackedKRows(w, act + done, n_tok - done, y + done * y_stride, y_stride, r_begin, r_end);
#else
  (void)w, (void)act, (void)act_stride, (void)n_tok, (void)y, (void)y_stride, (void)r_begin, (void)r_end, (void)amx;
#endif
}

#else   // !EMBER_HWY_X86: Highway ops, widening the int8 products to int32

// One block of a weight row against kTok tokens: the integer products
// accumulate exactly in int32 lanes, then acc[k] += d_w * d_a * sums.
template <size_t kTok, DType kT>
HWY_INLINE void QuantBlock(const uint8_t* HWY_RESTRICT blk, size_t b, const detail::PlanarQ8* act, VF (&acc)[kTok],
                           float (&offset)[kTok]) {
  using L = QuantLayout<kT>;
  const DF d;
  const hn::RebindToSigned<DF> di;
  const hn::Rebind<int8_t, DF> d8;
  const hn::Rebind<uint8_t, DF> du8;
  using VI = hn::Vec<decltype(di)>;
  constexpr size_t N = hn::MaxLanes(DF());  // no scalable targets are compiled
  constexpr size_t kVecs = 32 / N;
  const uint8_t* qs = blk + L::kQs;
  VI wv[kVecs];  // the block's 32 weights as int32
  for (size_t i = 0; i < kVecs; ++i) {
    const size_t j = i * N;
    if constexpr (kT == DType::Q8_0) {
      wv[i] = hn::PromoteTo(di, hn::LoadU(d8, reinterpret_cast<const int8_t*>(qs + j)));
    } else {
      const VI raw = hn::PromoteTo(di, hn::LoadU(du8, qs + (j % 16)));
      wv[i] = j < 16 ? hn::And(raw, hn::Set(di, 0xf)) : hn::ShiftRight<4>(raw);
      if constexpr (kT == DType::Q4_0) wv[i] = hn::Sub(wv[i], hn::Set(di, 8));
    }
  }
  const float dw = f16_to_f32(LoadHalfBits(blk + L::kScale));
  for (size_t k = 0; k < kTok; ++k) {
    const int8_t* aq = act[k].qs + 32 * b;
    VI sumi = hn::Zero(di);
    for (size_t i = 0; i < kVecs; ++i) {
      sumi = hn::Add(sumi, hn::Mul(wv[i], hn::PromoteTo(di, hn::LoadU(d8, aq + i * N))));
    }
    acc[k] = hn::MulAdd(hn::Set(d, dw * act[k].d[b]), hn::ConvertTo(d, sumi), acc[k]);
  }
  if constexpr (kT == DType::Q4_1) {
    const float mw = f16_to_f32(LoadHalfBits(blk + L::kOffset));
    for (size_t k = 0; k < kTok; ++k) offset[k] += mw * act[k].s[b];
  }
}

// One weight row against kTok tokens. Even and odd blocks feed separate
// accumulators (acc0, acc1); Q4_1's m * s terms (exact products) add up in a
// scalar float, in block order. No horizontal sum until the row ends.
template <size_t kTok, DType kT>
HWY_INLINE void QuantRow(const uint8_t* HWY_RESTRICT row, size_t n_block, const detail::PlanarQ8* act,
                         float* HWY_RESTRICT y, size_t y_stride) {
  constexpr size_t kBytes = QuantLayout<kT>::kBytes;
  const DF d;
  VF acc0[kTok], acc1[kTok];
  float offset[kTok];
  for (size_t k = 0; k < kTok; ++k) {
    acc0[k] = acc1[k] = hn::Zero(d);
    offset[k] = 0.0f;
  }
  size_t b = 0;
  for (; b + 2 <= n_block; b += 2) {
    QuantBlock<kTok, kT>(row + b * kBytes, b, act, acc0, offset);
    QuantBlock<kTok, kT>(row + (b + 1) * kBytes, b + 1, act, acc1, offset);
  }
  if (b < n_block) QuantBlock<kTok, kT>(row + b * kBytes, b, act, acc0, offset);
  for (size_t k = 0; k < kTok; ++k) {
    y[k * y_stride] = hn::GetLane(hn::SumOfLanes(d, hn::Add(acc0[k], acc1[k]))) + offset[k];
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
    default: break;  // the caller routes other formats elsewhere
  }
}

HWY_INLINE void QuantRows(const MatrixView& w, const detail::PlanarQ8* act, size_t n_tok, float* y, size_t y_stride,
                          size_t r_begin, size_t r_end, bool /*vnni*/) {
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

HWY_INLINE void KQuantRows(const MatrixView&, const quant::BlockQ8_K* const*, size_t, float*, size_t, size_t, size_t,
                           bool) {}

// Only Q8_0 / Q4_0 / Q4_1 have portable integer kernels; the Q5 formats and
// the K-quants run Reference's matmul on these targets (exact, but slow).
constexpr bool HasQuantKernel(DType t) { return t == DType::Q8_0 || t == DType::Q4_0 || t == DType::Q4_1; }
constexpr bool HasPackedKernel(DType /*t*/) { return false; }
constexpr bool HasPackedKKernel(DType /*t*/, bool /*vnni*/) { return false; }
HWY_INLINE void PackedKRows(const MatrixView&, const quant::BlockQ8_K* const*, size_t, size_t, float*, size_t, size_t,
                            size_t, bool) {}
HWY_INLINE void PackedRows(const MatrixView&, const detail::PlanarQ8*, size_t, size_t, float*, size_t, size_t, size_t,
                           bool, bool) {}
#endif  // EMBER_HWY_X86

// ---------------------------------------------------------------- matmul

// Dense rows (F32 weights, or F16 against f16-rounded activations), rows
// outer and token groups inner: a row (a few KiB) stays in L1 while every
// group of tokens reads it.
template <typename WT>
HWY_INLINE void DenseRows(const MatrixView& w, const float* x, size_t x_stride, size_t n_tok, float* y, size_t y_stride,
                          size_t r_begin, size_t r_end) {
  const size_t n = w.n_col;
  // Short rows (the attention's keys: one head's slice of each position) are prefetched
  // whole, some rows ahead; long ones have their start prefetched one row ahead.
  const size_t row_bytes = n * sizeof(WT), ahead = row_bytes >= 4096 ? 1 : 4096 / row_bytes;
  const size_t head_bytes = row_bytes < 4096 ? row_bytes : 4096;
  for (size_t r = r_begin; r < r_end; ++r) {
    if (r + ahead < r_end) {
      const auto* next = reinterpret_cast<const char*>(w.row(r + ahead));
      for (size_t b = 0; b < head_bytes; b += 64) hwy::Prefetch(next + b);
    }
    const WT* row = reinterpret_cast<const WT*>(w.row(r));
    size_t t = 0;
    for (; t + kMaxTok <= n_tok; t += kMaxTok) {
      DenseRow<kMaxTok>(row, n, x + t * x_stride, x_stride, y + t * y_stride + r, y_stride);
    }
    const float* xt = x + t * x_stride;
    float* yt = y + t * y_stride + r;
    switch (n_tok - t) {
      case 1: DenseRow<1>(row, n, xt, x_stride, yt, y_stride); break;
      case 2: DenseRow<2>(row, n, xt, x_stride, yt, y_stride); break;
      case 3: DenseRow<3>(row, n, xt, x_stride, yt, y_stride); break;
      default: break;
    }
  }
}

// nt tokens' Q8_K activations (K-quant weights) into scratch, a row `stride` bytes apart, as
// Reference quantizes them, with vectors (scalar, this was a fifth of Q4_K_M's prefill).
HWY_INLINE void PrepareQ8K(const float* xt, size_t x_stride, size_t nt, size_t n_col, std::byte* scratch, size_t stride,
                           const quant::BlockQ8_K** blocks) {
  for (size_t k = 0; k < nt; ++k) {
    auto* out = reinterpret_cast<quant::BlockQ8_K*>(scratch + k * stride);
    QuantizeQ8K(xt + k * x_stride, out, n_col);
    blocks[k] = out;
  }
}

// nt tokens' planar Q8 activations for weights of type t into scratch; `packed`: for t's x16
// kernel, with its per-block correction (QuantizePlanarQ8).
HWY_INLINE void PreparePlanar(DType t, bool packed, const float* xt, size_t x_stride, size_t nt, size_t n_col,
                              std::byte* scratch, size_t stride, detail::PlanarQ8* act) {
  const bool with_sum = quant::activation_type(t) == DType::Q8_1;
  const int32_t correction = !packed || t == DType::Q4_1 ? 0 : t == DType::Q4_0 ? -8 : -128;
  for (size_t k = 0; k < nt; ++k) {
    act[k] = detail::planar_q8(scratch + k * stride, n_col);
    QuantizePlanarQ8(xt + k * x_stride, n_col, act[k], with_sum, correction);
  }
}

// `scratch` holds min(n_tok, kTokenChunk) * planar_row_bytes(w.dtype, n_col)
// bytes, 64-byte aligned; `vnni` says the CPU has AVX512_VNNI and it is on, `amx` the same of
// AMX-INT8 (with the OS's and Linux's permission).
void Matmul(const MatrixView& w, const float* x, size_t x_stride, size_t n_tok, float* y, size_t y_stride,
            size_t r_begin, size_t r_end, std::byte* scratch, bool vnni, bool amx) {
  if (r_begin == r_end) return;
  if (w.dtype == DType::F32) {
    DenseRows<float>(w, x, x_stride, n_tok, y, y_stride, r_begin, r_end);
    return;
  }
  if (w.dtype != DType::F16 && w.dtype != DType::BF16 && !HasQuantKernel(w.dtype)) {
    // Reference takes the same per-thread scratch for its own activations:
    // `scratch` is not touched after this.
    Reference::matmul(w, x, x_stride, n_tok, y, y_stride, r_begin, r_end);
    return;
  }
  const size_t stride = detail::planar_row_bytes(w.dtype, w.n_col);
  for (size_t t0 = 0; t0 < n_tok; t0 += detail::kTokenChunk) {
    const size_t nt = n_tok - t0 < detail::kTokenChunk ? n_tok - t0 : detail::kTokenChunk;
    const float* xt = x + t0 * x_stride;
    float* yt = y + t0 * y_stride;
    if (w.dtype == DType::F16) {
      auto* rounded = reinterpret_cast<float*>(scratch);
      const size_t rounded_stride = stride / sizeof(float);
      for (size_t k = 0; k < nt; ++k) RoundToF16(xt + k * x_stride, rounded + k * rounded_stride, w.n_col);
      DenseRows<hwy::float16_t>(w, rounded, rounded_stride, nt, yt, y_stride, r_begin, r_end);
      continue;
    }
    if (w.dtype == DType::BF16) {  // activations rounded to bf16 as Reference's are (nearest even)
      auto* rounded = reinterpret_cast<float*>(scratch);
      const size_t rounded_stride = stride / sizeof(float);
      for (size_t k = 0; k < nt; ++k) detail::round_to_bf16(xt + k * x_stride, rounded + k * rounded_stride, w.n_col);
      DenseRows<bf16>(w, rounded, rounded_stride, nt, yt, y_stride, r_begin, r_end);
      continue;
    }
    if (quant::activation_type(w.dtype) == DType::Q8_K) {
      const quant::BlockQ8_K* blocks[detail::kTokenChunk];
      PrepareQ8K(xt, x_stride, nt, w.n_col, scratch, stride, blocks);
      if (w.packed && HasPackedKKernel(w.dtype, vnni)) {
        PackedKRows(w, blocks, stride, nt, yt, y_stride, r_begin, r_end, amx);
        continue;
      }
      KQuantRows(w, blocks, nt, yt, y_stride, r_begin, r_end, vnni);
      continue;
    }
    detail::PlanarQ8 act[detail::kTokenChunk];
    const bool packed = w.packed && HasPackedKernel(w.dtype);
    PreparePlanar(w.dtype, packed, xt, x_stride, nt, w.n_col, scratch, stride, act);
    if (packed) {
      PackedRows(w, act, stride, nt, yt, y_stride, r_begin, r_end, vnni, amx);
      continue;
    }
    QuantRows(w, act, nt, yt, y_stride, r_begin, r_end, vnni);
  }
}

// Several matrices against the same tokens (Highway::matmuls): where all have the same x16
// format (Q, K and V; gate and up), each chunk of tokens is quantized once for all of them,
// not once per matrix; else each goes through Matmul. The same activations either way, so the
// same bits. `scratch` as Matmul's, for the part that needs the most.
void Matmuls(const MatmulPart* parts, size_t n_part, const float* x, size_t x_stride, size_t n_tok, std::byte* scratch,
             bool vnni, bool amx) {
  const MatrixView& w0 = *parts[0].w;
  bool planar = w0.packed && HasPackedKernel(w0.dtype), q8k = w0.packed && HasPackedKKernel(w0.dtype, vnni);
  for (size_t i = 1; i < n_part; ++i) {
    const MatrixView& w = *parts[i].w;
    planar = planar && w.packed && w.dtype == w0.dtype && w.n_col == w0.n_col;
    q8k = q8k && w.packed && HasPackedKKernel(w.dtype, vnni) && w.n_col == w0.n_col;
  }
  if (!planar && !q8k) {
    for (size_t i = 0; i < n_part; ++i)
      Matmul(*parts[i].w, x, x_stride, n_tok, parts[i].y, parts[i].y_stride, parts[i].r_begin, parts[i].r_end, scratch,
             vnni, amx);
    return;
  }
  const size_t stride = detail::planar_row_bytes(w0.dtype, w0.n_col);
  for (size_t t0 = 0; t0 < n_tok; t0 += detail::kTokenChunk) {
    const size_t nt = n_tok - t0 < detail::kTokenChunk ? n_tok - t0 : detail::kTokenChunk;
    const float* xt = x + t0 * x_stride;
    if (q8k) {
      const quant::BlockQ8_K* blocks[detail::kTokenChunk];
      PrepareQ8K(xt, x_stride, nt, w0.n_col, scratch, stride, blocks);
      for (size_t i = 0; i < n_part; ++i)
        if (parts[i].r_begin < parts[i].r_end)
          PackedKRows(*parts[i].w, blocks, stride, nt, parts[i].y + t0 * parts[i].y_stride, parts[i].y_stride,
                      parts[i].r_begin, parts[i].r_end, amx);
      continue;
    }
    detail::PlanarQ8 act[detail::kTokenChunk];
    PreparePlanar(w0.dtype, true, xt, x_stride, nt, w0.n_col, scratch, stride, act);
    for (size_t i = 0; i < n_part; ++i)
      if (parts[i].r_begin < parts[i].r_end)
        PackedRows(*parts[i].w, act, stride, nt, parts[i].y + t0 * parts[i].y_stride, parts[i].y_stride,
                   parts[i].r_begin, parts[i].r_end, vnni, amx);
  }
}

// ------------------------------------------------------------ vector ops

// Elementwise ops finish with one zero-padded partial vector; this holds it.
struct Tail {
  HWY_ALIGN float a[kMaxLanes];
  HWY_ALIGN float b[kMaxLanes];
  Tail(const float* pa, const float* pb, size_t count) {
    for (size_t i = 0; i < kMaxLanes; ++i) a[i] = b[i] = 0.0f;
    if (pa) std::memcpy(a, pa, count * sizeof(float));
    if (pb) std::memcpy(b, pb, count * sizeof(float));
  }
};

float Dot(const float* HWY_RESTRICT a, const float* HWY_RESTRICT b, size_t n) {
  const DF d;
  const size_t N = hn::Lanes(d);
  VF acc0 = hn::Zero(d), acc1 = hn::Zero(d), acc2 = hn::Zero(d), acc3 = hn::Zero(d);
  size_t i = 0;
  for (; i + 4 * N <= n; i += 4 * N) {
    acc0 = hn::MulAdd(hn::LoadU(d, a + i), hn::LoadU(d, b + i), acc0);
    acc1 = hn::MulAdd(hn::LoadU(d, a + i + N), hn::LoadU(d, b + i + N), acc1);
    acc2 = hn::MulAdd(hn::LoadU(d, a + i + 2 * N), hn::LoadU(d, b + i + 2 * N), acc2);
    acc3 = hn::MulAdd(hn::LoadU(d, a + i + 3 * N), hn::LoadU(d, b + i + 3 * N), acc3);
  }
  for (; i + N <= n; i += N) {
    acc0 = hn::MulAdd(hn::LoadU(d, a + i), hn::LoadU(d, b + i), acc0);
  }
  if (i < n) {
    const Tail t(a + i, b + i, n - i);
    acc1 = hn::MulAdd(hn::Load(d, t.a), hn::Load(d, t.b), acc1);
  }
  return hn::GetLane(hn::SumOfLanes(d, hn::Add(hn::Add(acc0, acc1), hn::Add(acc2, acc3))));
}

void Axpy(float a, const float* HWY_RESTRICT x, float* HWY_RESTRICT y, size_t n) {
  const DF d;
  const size_t N = hn::Lanes(d);
  const VF va = hn::Set(d, a);
  size_t i = 0;
  for (; i + N <= n; i += N) {
    hn::StoreU(hn::MulAdd(va, hn::LoadU(d, x + i), hn::LoadU(d, y + i)), d, y + i);
  }
  if (i < n) {
    Tail t(x + i, y + i, n - i);
    hn::Store(hn::MulAdd(va, hn::Load(d, t.a), hn::Load(d, t.b)), d, t.b);
    std::memcpy(y + i, t.b, (n - i) * sizeof(float));
  }
}

void Add(float* HWY_RESTRICT y, const float* HWY_RESTRICT x, size_t n) {
  const DF d;
  const size_t N = hn::Lanes(d);
  size_t i = 0;
  for (; i + N <= n; i += N) {
    hn::StoreU(hn::Add(hn::LoadU(d, y + i), hn::LoadU(d, x + i)), d, y + i);
  }
  if (i < n) {
    Tail t(y + i, x + i, n - i);
    hn::Store(hn::Add(hn::Load(d, t.a), hn::Load(d, t.b)), d, t.a);
    std::memcpy(y + i, t.a, (n - i) * sizeof(float));
  }
}

void Scale(float* HWY_RESTRICT x, float s, size_t n) {
  const DF d;
  const size_t N = hn::Lanes(d);
  const VF vs = hn::Set(d, s);
  size_t i = 0;
  for (; i + N <= n; i += N) hn::StoreU(hn::Mul(hn::LoadU(d, x + i), vs), d, x + i);
  if (i < n) {
    Tail t(x + i, nullptr, n - i);
    hn::Store(hn::Mul(hn::Load(d, t.a), vs), d, t.a);
    std::memcpy(x + i, t.a, (n - i) * sizeof(float));
  }
}

// out may alias x (in-place norm), so no HWY_RESTRICT on them.
void RmsNorm(const float* x, const float* weight, float* out, size_t n, float eps) {
  const DF d;
  const size_t N = hn::Lanes(d);
  VF acc0 = hn::Zero(d), acc1 = hn::Zero(d);
  size_t i = 0;
  for (; i + 2 * N <= n; i += 2 * N) {
    const VF v0 = hn::LoadU(d, x + i);
    const VF v1 = hn::LoadU(d, x + i + N);
    acc0 = hn::MulAdd(v0, v0, acc0);
    acc1 = hn::MulAdd(v1, v1, acc1);
  }
  for (; i + N <= n; i += N) {
    const VF v = hn::LoadU(d, x + i);
    acc0 = hn::MulAdd(v, v, acc0);
  }
  if (i < n) {
    const Tail t(x + i, nullptr, n - i);
    const VF v = hn::Load(d, t.a);
    acc1 = hn::MulAdd(v, v, acc1);
  }
  const float sum = hn::GetLane(hn::SumOfLanes(d, hn::Add(acc0, acc1)));
  const float mean = sum / float(n);
  const VF s = hn::Set(d, 1.0f / std::sqrt(mean + eps));
  // x * s * weight, in the oracle's order.
  for (i = 0; i + N <= n; i += N) {
    hn::StoreU(hn::Mul(hn::Mul(hn::LoadU(d, x + i), s), hn::LoadU(d, weight + i)), d, out + i);
  }
  if (i < n) {
    Tail t(x + i, weight + i, n - i);
    hn::Store(hn::Mul(hn::Mul(hn::Load(d, t.a), s), hn::Load(d, t.b)), d, t.a);
    std::memcpy(out + i, t.a, (n - i) * sizeof(float));
  }
}

// Softmax in place; returns log(sum of exp(x - max)) + max, the log-sum-exp of the input.
float SoftmaxLse(float* x, size_t n) {
  if (n == 0) return -HUGE_VALF;
  const DF d;
  const size_t N = hn::Lanes(d);
  VF vmax = hn::Set(d, hwy::LowestValue<float>());
  size_t i = 0;
  for (; i + N <= n; i += N) vmax = hn::Max(vmax, hn::LoadU(d, x + i));
  float max = hn::GetLane(hn::MaxOfLanes(d, vmax));
  for (size_t j = i; j < n; ++j) max = x[j] > max ? x[j] : max;
  vmax = hn::Set(d, max);

  VF sum = hn::Zero(d);
  for (i = 0; i + N <= n; i += N) {
    const VF e = hn::Exp(d, hn::Sub(hn::LoadU(d, x + i), vmax));
    hn::StoreU(e, d, x + i);
    sum = hn::Add(sum, e);
  }
  if (i < n) {
    Tail t(x + i, nullptr, n - i);
    // Padding lanes would give exp(-max); keep them out of the sum.
    const VF e = hn::IfThenElseZero(hn::FirstN(d, n - i), hn::Exp(d, hn::Sub(hn::Load(d, t.a), vmax)));
    hn::Store(e, d, t.a);
    std::memcpy(x + i, t.a, (n - i) * sizeof(float));
    sum = hn::Add(sum, e);
  }
  const float total = hn::GetLane(hn::SumOfLanes(d, sum));
  Scale(x, 1.0f / total, n);
  return max + std::log(total);
}

void Softmax(float* x, size_t n) { (void)SoftmaxLse(x, n); }

HWY_INLINE VF Silu(DF d, VF g) {
  // Highway's Exp builds 2^q from two exponent fields, valid to x ~ 176.
  // Clamping at 100 keeps exp(-g) = inf for gates below -88.7, so silu is -0
  // there exactly as in the oracle.
  const VF e = hn::Exp(d, hn::Min(hn::Neg(g), hn::Set(d, 100.0f)));
  return hn::Div(g, hn::Add(hn::Set(d, 1.0f), e));
}

// x - mean, then / sqrt(var + eps), then * weight + bias (either may be null); two passes
// over x for the sums (mean, then centered squares), as the oracle. out may alias x.
void LayerNorm(const float* x, const float* weight, const float* bias, float* out, size_t n, float eps) {
  if (n == 0) return;
  const DF d;
  const size_t N = hn::Lanes(d);
  VF acc0 = hn::Zero(d), acc1 = hn::Zero(d);
  size_t i = 0;
  for (; i + 2 * N <= n; i += 2 * N) {
    acc0 = hn::Add(acc0, hn::LoadU(d, x + i));
    acc1 = hn::Add(acc1, hn::LoadU(d, x + i + N));
  }
  for (; i + N <= n; i += N) acc0 = hn::Add(acc0, hn::LoadU(d, x + i));
  float sum = hn::GetLane(hn::SumOfLanes(d, hn::Add(acc0, acc1)));
  for (; i < n; ++i) sum += x[i];
  const float mean = sum / float(n);
  const VF vmean = hn::Set(d, mean);
  acc0 = acc1 = hn::Zero(d);
  for (i = 0; i + 2 * N <= n; i += 2 * N) {
    const VF v0 = hn::Sub(hn::LoadU(d, x + i), vmean);
    const VF v1 = hn::Sub(hn::LoadU(d, x + i + N), vmean);
    acc0 = hn::MulAdd(v0, v0, acc0);
    acc1 = hn::MulAdd(v1, v1, acc1);
  }
  for (; i + N <= n; i += N) {
    const VF v = hn::Sub(hn::LoadU(d, x + i), vmean);
    acc0 = hn::MulAdd(v, v, acc0);
  }
  float sum2 = hn::GetLane(hn::SumOfLanes(d, hn::Add(acc0, acc1)));
  for (; i < n; ++i) sum2 += (x[i] - mean) * (x[i] - mean);
  const float s = 1.0f / std::sqrt(sum2 / float(n) + eps);
  const VF vs = hn::Set(d, s);
  for (i = 0; i + N <= n; i += N) {
    VF v = hn::Mul(hn::Sub(hn::LoadU(d, x + i), vmean), vs);
    if (weight) v = hn::Mul(v, hn::LoadU(d, weight + i));
    if (bias) v = hn::Add(v, hn::LoadU(d, bias + i));
    hn::StoreU(v, d, out + i);
  }
  for (; i < n; ++i) {
    float v = (x[i] - mean) * s;
    if (weight) v *= weight[i];
    if (bias) v += bias[i];
    out[i] = v;
  }
}

// ggml_gelu's tanh approximation, 0.5 x (1 + tanh(u)) with u = sqrt(2/pi) x (1 + 0.044715 x^2),
// as the equal x / (1 + exp(-2u)): one Exp, no cancellation for negative x. Clamped as Silu:
// Exp's argument stays in its valid range and still overflows to inf, so x below ~ -10
// gives -0 as in the oracle.
HWY_INLINE VF Gelu(DF d, VF x) {
  const VF x2 = hn::Mul(x, x);
  const VF u2 = hn::Mul(hn::Mul(x, hn::Set(d, -2.0f * 0.79788456080286535588f)),
                        hn::MulAdd(x2, hn::Set(d, 0.044715f), hn::Set(d, 1.0f)));
  const VF e = hn::Exp(d, hn::Min(u2, hn::Set(d, 100.0f)));
  return hn::Div(x, hn::Add(hn::Set(d, 1.0f), e));
}

// gate = act(gate) * up, or gate = act(gate) when up is null (act: Silu, Gelu).
template <class Act>
HWY_INLINE void ActivateMul(Act act, float* HWY_RESTRICT gate, const float* HWY_RESTRICT up, size_t n) {
  const DF d;
  const size_t N = hn::Lanes(d);
  size_t i = 0;
  for (; i + N <= n; i += N) {
    VF g = act(d, hn::LoadU(d, gate + i));
    if (up) g = hn::Mul(g, hn::LoadU(d, up + i));
    hn::StoreU(g, d, gate + i);
  }
  if (i < n) {
    Tail t(gate + i, up ? up + i : nullptr, n - i);
    VF g = act(d, hn::Load(d, t.a));
    if (up) g = hn::Mul(g, hn::Load(d, t.b));
    hn::Store(g, d, t.a);
    std::memcpy(gate + i, t.a, (n - i) * sizeof(float));
  }
}

void SiluMul(float* HWY_RESTRICT gate, const float* HWY_RESTRICT up, size_t n) {
  ActivateMul([](DF d, VF g) { return Silu(d, g); }, gate, up, n);
}

void GeluMul(float* HWY_RESTRICT gate, const float* HWY_RESTRICT up, size_t n) {
  ActivateMul([](DF d, VF x) { return Gelu(d, x); }, gate, up, n);
}

// ------------------------------------------------------------ attention

// Decode attention over an f16 cache (attention/attention.hpp's attend_group, its fast
// path): the `group` query heads of one KV head against n_pos keys (f16 key tiles,
// key_tiles.hpp) and values (rows of `values_t`, one per dimension, n_pos each). The same
// arithmetic as the matmul path (queries and probabilities rounded to f16, each product exact
// in f32) in other orders: the scores in llama.cpp's (KeyTileNode), the values with 2
// accumulators per head. The bits depend on the inputs alone (not on threads, batches or the
// other heads). False where the shapes do not fit (head_dim not a multiple of the lanes or
// above 256, groups above 16, the scalar target): the caller takes the matmul path.
#if HWY_TARGET != HWY_SCALAR
constexpr size_t kAttnMaxHeadDim = 256, kAttnMaxGroup = 16;

// Heads per pass over a key tile (8 measured faster than 2 or 4 on AVX3_DL and on AVX2,
// `attention_bench --target=...`, though their partial sums then spill on AVX2).
constexpr size_t kAttnRows = 8;

// The dot products of kR heads' queries (qr, rounded to f16, hd apart) with the kN positions
// of a key tile's vectors at `t` (dimension i at t + i * 16), in llama.cpp's order for f16
// (tinyBLAS with kN-lane vectors: lane m sums dimensions m, m + kN, m + 2 kN, ... by FMAs from
// zero; then the lanes in halving steps, lane m + lane m + kN / 2 first): this node of that tree sums
// the lanes kM + j * kS. Every product is exact (f16 times f16), so the bits are llama.cpp's
// for the same queries and keys. Each position stays in its own lane.
// `ahead` (or null): the same place in a tile further on, its dimensions' lines prefetched
// as these are loaded (spread over the tile's loads, not in a burst).
template <size_t kR, size_t kM, size_t kS>
HWY_INLINE void KeyTileNode(DF d, const hwy::float16_t* HWY_RESTRICT t, const float* HWY_RESTRICT qr, size_t hd,
                            const hwy::float16_t* ahead, VF* out) {
  constexpr size_t kN = hn::MaxLanes(DF()), kPos = KeyTilesF16::kPos;
  if constexpr (kS == kN) {
    if (ahead) PrefetchL2(ahead + kM * kPos);
    const VF k0 = LoadWeights(d, t + kM * kPos);
#pragma GCC unroll 8
    for (size_t r = 0; r < kR; ++r) out[r] = hn::MulAdd(hn::Set(d, qr[r * hd + kM]), k0, hn::Zero(d));
    for (size_t i = kM + kN; i < hd; i += kN) {
      if (ahead) PrefetchL2(ahead + i * kPos);
      const VF k = LoadWeights(d, t + i * kPos);
#pragma GCC unroll 8
      for (size_t r = 0; r < kR; ++r) out[r] = hn::MulAdd(hn::Set(d, qr[r * hd + i]), k, out[r]);
    }
  } else {
    VF x[kR], y[kR];
    KeyTileNode<kR, kM, 2 * kS>(d, t, qr, hd, ahead, x);
    KeyTileNode<kR, kM + kS, 2 * kS>(d, t, qr, hd, ahead, y);
#pragma GCC unroll 8
    for (size_t r = 0; r < kR; ++r) out[r] = hn::Add(x[r], y[r]);
  }
}

// scores[g * n_pos + j - first] = scale * qr[g] . k[j] for kR heads and the keys j of
// [first, first + n_pos): per f16 key tile (key_tiles.hpp) and kN of its positions,
// KeyTileNode's tree, each key vector widened once for the kR heads.
template <size_t kR>
HWY_INLINE void KeyTileScoresF16(const KeyTilesF16& keys, const float* HWY_RESTRICT qr, float scale,
                                 float* HWY_RESTRICT scores) {
  const DF d;
  constexpr size_t kN = hn::MaxLanes(DF()), kPos = KeyTilesF16::kPos;
  static_assert(kPos % kN == 0, "a tile is whole vectors");
  const size_t hd = keys.head_dim, n_pos = keys.n_pos, end = keys.first + n_pos, tb = KeyTilesF16::tile_bytes(hd);
  const VF sc = hn::Set(d, scale);
  for (size_t j0 = keys.first / kPos * kPos; j0 < end; j0 += kPos) {
    const auto* tile = reinterpret_cast<const hwy::float16_t*>(keys.data + j0 / kPos * tb);
    // The tile two ahead (a long context's keys stream from memory), a line per load or two.
    const hwy::float16_t* ahead = j0 + 3 * kPos <= end ? tile + 2 * tb / sizeof(hwy::float16_t) : nullptr;
    for (size_t h = 0; h < kPos; h += kN) {
      const size_t p0 = j0 + h;  // lane 0's position
      if (p0 >= end || p0 + kN <= keys.first) continue;
      VF sum[kR];
      KeyTileNode<kR, 0, 1>(d, tile + h, qr, hd, ahead ? ahead + h : nullptr, sum);
      const size_t lo = p0 > keys.first ? p0 : keys.first, hi = end - p0 < kN ? end : p0 + kN;
#pragma GCC unroll 8
      for (size_t r = 0; r < kR; ++r) {
        const VF sv = hn::Mul(sum[r], sc);
        float* dst = scores + r * n_pos + (lo - keys.first);
        if (hi - lo == kN) {
          hn::StoreU(sv, d, dst);
        } else {
          HWY_ALIGN float buf[kN];
          hn::Store(sv, d, buf);
          std::memcpy(dst, buf + (lo - p0), (hi - lo) * sizeof(float));
        }
      }
    }
  }
}

// Positions per pass over the values: one pass reads kG rows of this many probabilities
// (16 KiB for 8 heads, held in L1) against every value row, then the next pass the next ones.
constexpr size_t kAttnChunk = 512, kAttnAheadRows = 4;

// out[g][dim] = sum_j p[g][j] * v[dim][j] for kG heads, `out` zeroed by the caller: each
// value row is read once for all heads, kAttnChunk positions at a time (two accumulators per
// head); each chunk's sum is added to out in chunk order.
template <size_t kG>
HWY_INLINE void AttendValues(const MatrixView& values_t, const float* p, size_t n_pos, float* out, size_t out_stride) {
  const DF d;
  constexpr size_t kN = hn::MaxLanes(DF());
  // The chunk's probabilities, copied to rows a little over 2 KiB apart: rows n_pos floats
  // apart often share their low 12 address bits, and 8 such streams overflow an L1 set.
  // Each row is zero-padded to whole steps of 2 kN positions, so the last (partial) step
  // reads its probabilities from here like the others.
  constexpr size_t kStride = kAttnChunk + 16;
  static_assert(kAttnChunk % (2 * kN) == 0, "a chunk is whole steps");
  HWY_ALIGN float pc[kG * kStride];
  hwy::float16_t vtail[4 * kN];  // row_tail's buffer
  std::memset(static_cast<void*>(vtail), 0, sizeof(vtail));
  for (size_t j0 = 0; j0 < n_pos; j0 += kAttnChunk) {
    const size_t j1 = n_pos - j0 < kAttnChunk ? n_pos : j0 + kAttnChunk;
    const size_t padded = (j1 - j0 + 2 * kN - 1) / (2 * kN) * (2 * kN);
    for (size_t g = 0; g < kG; ++g) {
      std::memcpy(pc + g * kStride, p + g * n_pos + j0, (j1 - j0) * sizeof(float));
      std::memset(pc + g * kStride + (j1 - j0), 0, (padded - (j1 - j0)) * sizeof(float));
    }
    for (size_t dim = 0; dim < values_t.n_row; ++dim) {
      const auto* v = reinterpret_cast<const hwy::float16_t*>(values_t.row(dim));
      // The piece of this chunk kAttnAheadRows rows on, a line with each step of 2 kN
      // positions (at the start of a chunk, the first rows' pieces at once): rows are far
      // apart, and one row's piece is too short to hide a miss.
      if (dim == 0)
        for (size_t r = 1; r < kAttnAheadRows && r < values_t.n_row; ++r) {
          const auto* next = reinterpret_cast<const char*>(values_t.row(r) + 2 * j0);
          for (size_t b = 0; b < 2 * (j1 - j0); b += 64) PrefetchL2(next + b);
        }
      const char* ahead = dim + kAttnAheadRows < values_t.n_row
                              ? reinterpret_cast<const char*>(values_t.row(dim + kAttnAheadRows) + 2 * j0)
                              : nullptr;
      VF acc[kG][2];  // the loops over heads unrolled: acc stays in registers
#pragma GCC unroll 16
      for (size_t g = 0; g < kG; ++g) acc[g][0] = acc[g][1] = hn::Zero(d);
      size_t j = j0;
      for (; j + 2 * kN <= j1; j += 2 * kN) {
        if (ahead) PrefetchL2(ahead + 2 * (j - j0));
        const VF v0 = LoadWeights(d, v + j), v1 = LoadWeights(d, v + j + kN);
        const float* pj = pc + (j - j0);
#pragma GCC unroll 16
        for (size_t g = 0; g < kG; ++g) {
          acc[g][0] = hn::MulAdd(v0, hn::Load(d, pj + g * kStride), acc[g][0]);
          acc[g][1] = hn::MulAdd(v1, hn::Load(d, pj + g * kStride + kN), acc[g][1]);
        }
      }
      if (j < j1) {  // zero-padded values and probabilities: the padding adds exact zeros
        const hwy::float16_t* vt = row_tail<2 * kN>(v, j1, j1 - j, vtail);
        const VF v0 = LoadWeights(d, vt), v1 = LoadWeights(d, vt + kN);
        const float* pj = pc + (j - j0);
#pragma GCC unroll 16
        for (size_t g = 0; g < kG; ++g) {
          acc[g][0] = hn::MulAdd(v0, hn::Load(d, pj + g * kStride), acc[g][0]);
          acc[g][1] = hn::MulAdd(v1, hn::Load(d, pj + g * kStride + kN), acc[g][1]);
        }
      }
#pragma GCC unroll 16
      for (size_t g = 0; g < kG; ++g)
        out[g * out_stride + dim] += hn::GetLane(hn::SumOfLanes(d, hn::Add(acc[g][0], acc[g][1])));
    }
  }
}

bool AttendF16(const KeyTilesF16& keys, const MatrixView& values_t, const float* q, size_t group, float scale,
               float* scores, float* out, float* lse) {
  constexpr size_t kN = hn::MaxLanes(DF());
  const size_t hd = keys.head_dim, n_pos = keys.n_pos;
  if (values_t.dtype != DType::F16 || values_t.n_row != hd || values_t.n_col != n_pos || hd % kN != 0 ||
      hd > kAttnMaxHeadDim || group > kAttnMaxGroup || group == 0 || n_pos == 0)
    return false;
  HWY_ALIGN float qr[kAttnMaxGroup * kAttnMaxHeadDim];
  for (size_t g = 0; g < group; ++g) RoundToF16(q + g * hd, qr + g * hd, hd);
  for (size_t g0 = 0; g0 < group; g0 += kAttnRows) {
    with_count<kAttnRows>(group - g0 < kAttnRows ? group - g0 : kAttnRows, [&](auto k) {
      KeyTileScoresF16<decltype(k)::value>(keys, qr + g0 * hd, scale, scores + g0 * n_pos);
    });
  }
  // Probabilities, rounded to f16 as the matmul path's activations are.
  HWY_ALIGN float rounded[256];
  for (size_t g = 0; g < group; ++g) {
    float* s = scores + g * n_pos;
    const float l = SoftmaxLse(s, n_pos);
    if (lse) lse[g] = l;
    for (size_t j = 0; j < n_pos; j += 256) {
      const size_t m = n_pos - j < 256 ? n_pos - j : 256;
      RoundToF16(s + j, rounded, m);
      std::memcpy(s + j, rounded, m * sizeof(float));
    }
  }
  std::memset(out, 0, group * hd * sizeof(float));
  for (size_t g0 = 0; g0 < group; g0 += 8) {
    const size_t ng = group - g0 < 8 ? group - g0 : 8;
    const float* p = scores + g0 * n_pos;
    float* o = out + g0 * hd;
    switch (ng) {
      case 1: AttendValues<1>(values_t, p, n_pos, o, hd); break;
      case 2: AttendValues<2>(values_t, p, n_pos, o, hd); break;
      case 3: AttendValues<3>(values_t, p, n_pos, o, hd); break;
      case 4: AttendValues<4>(values_t, p, n_pos, o, hd); break;
      case 5: AttendValues<5>(values_t, p, n_pos, o, hd); break;
      case 6: AttendValues<6>(values_t, p, n_pos, o, hd); break;
      case 7: AttendValues<7>(values_t, p, n_pos, o, hd); break;
      default: AttendValues<8>(values_t, p, n_pos, o, hd); break;
    }
  }
  return true;
}
#else
bool AttendF16(const KeyTilesF16&, const MatrixView&, const float*, size_t, float, float*, float*, float*) {
  return false;
}
#endif

// Decode attention over a q8_0 cache (attend_group's fast path for Q8_0): the queries
// quantized to q8_0 as the matmul path's are, integer dot products against the key tiles
// 16 positions at a time, softmax, then the values dequantized and weighted in f32
// (highway_int8-inl.hpp's AttendQ8Tiles: vpdpbusd with VNNI, maddubs on AVX2 and on AVX3
// without it). False on the other targets (the caller takes attend_group_q8_rows).
bool AttendQ8(const KeyTiles& keys, const MatrixView& values, const float* q, size_t group, float scale, float* scores,
              float* out, float* lse, bool vnni) {
#if EMBER_HWY_X86
  const size_t hd = keys.head_dim, nb = KeyTiles::n_block(hd), n_pos = keys.n_pos;
  if (hd % 32 != 0 || nb > KeyTiles::kMaxBlocks || group == 0 || group > int8_plain::kAttnQ8MaxGroup || n_pos == 0 ||
      values.dtype != DType::Q8_0 || values.n_row != n_pos || values.n_col != hd)
    return false;
  // The queries as q8_0 blocks, with vectors (the scalar quantizer was 28% of the kernel's
  // time at 512 positions).
  quant::BlockQ8_0 qb[int8_plain::kAttnQ8MaxGroup * KeyTiles::kMaxBlocks];
  for (size_t g = 0; g < group; ++g)
    detail::quantize_blocks_q8_0(q + g * hd, hd, qb + g * nb, [](const float* x, size_t n, detail::PlanarQ8 p) {
      QuantizePlanarQ8(x, n, p, false);
    });
#if HWY_TARGET != HWY_AVX2
  if (vnni) {
    int8_vnni::AttendQ8Tiles(keys, values, qb, group, scale, scores, out, lse);
    return true;
  }
#endif
  (void)vnni;
  int8_plain::AttendQ8Tiles(keys, values, qb, group, scale, scores, out, lse);
  return true;
#else
  (void)keys, (void)values, (void)q, (void)group, (void)scale, (void)scores, (void)out, (void)lse, (void)vnni;
  return false;
#endif
}

const char* TargetName() { return hwy::TargetName(HWY_TARGET); }

}  // namespace ember::kernels::HWY_NAMESPACE
HWY_AFTER_NAMESPACE();

#endif  // EMBER_KERNELS_HIGHWAY_INL_H_ toggle
