// Scalar quantization: the formats with a simple closed-form quantizer
// (Q4_0, Q4_1, Q5_0, Q5_1, Q8_0, Q8_1, and F32 / F16 / BF16) and the K-quants
// Q4_K, Q5_K, Q6_K, whose quantizer searches for each group's scale.
//
// Closed-form formats: for finite input the bytes match the PyPI `gguf`
// package's numpy `quantize` (gguf/quants.py) bit for bit, which follows
// ggml's quantize_row_*_ref; Q8_1, absent from numpy, follows ggml's
// quantize_row_q8_1_ref. What the numpy code does that C might not:
// - the block maximum of Q4_0 / Q5_0 is the first element of largest
//   magnitude (argmax), starting from element 0 even if it is -0.0;
// - `x * id + 8.5` rounds the product before the add (no FMA);
// - a quant whose float value is not finite (a scale so small that 1 / d
//   overflows) becomes 0, as numpy's float -> uint8/int8 cast gives on x86.
// NaN in the input gives defined but unspecified bytes.
//
// K-quants: see the section below; the bytes match ggml's reference
// quantizer, the one llama.cpp's llama-quantize runs without an importance
// matrix.
#pragma once

#include <algorithm>
#include <bit>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <cstring>

#include "ember/core/half.hpp"
#include "ember/core/result.hpp"
#include "ember/quant/blocks.hpp"
#include "ember/quant/dequantize.hpp"
#include "ember/tensor/dtype.hpp"

namespace ember::quant {

namespace detail {

// Returns x rounded to float as it stands, so that `product + c` cannot be
// fused into an FMA: GCC contracts across statements by default for C++ when
// the target has FMA, and numpy rounds twice.
inline float round_to_float(float x) {
#if (defined(__GNUC__) || defined(__clang__)) && defined(__x86_64__)
  __asm__("" : "+x"(x));
#elif (defined(__GNUC__) || defined(__clang__)) && defined(__aarch64__)
  __asm__("" : "+w"(x));
#else
  volatile float v = x;
  x = v;
#endif
  return x;
}

// trunc(t) as an integer quant in 0..max_q, like numpy's
// `trunc(t).astype(uint8).clip(0, max_q)` for every t this file produces.
inline int truncate_to_quant(float t, int max_q) {
  if (!std::isfinite(t) || t < 0.0f) return 0;
  return t >= float(max_q) ? max_q : int(t);
}

// roundf(t) as an int8 quant; |t| <= 127 * (1 + 2^-23) for finite scales.
inline int8_t round_to_int8(float t) {
  if (!std::isfinite(t)) return 0;
  const float r = std::round(t);  // half away from zero, as numpy's np_roundf
  return int8_t(r > 127.0f ? 127 : (r < -128.0f ? -128 : int(r)));
}

// The element of largest magnitude, the first one on ties (numpy argmax).
inline float signed_absolute_max(const float* x, size_t n) {
  float max = x[0];
  float amax = std::fabs(x[0]);
  for (size_t j = 1; j < n; ++j) {
    if (std::fabs(x[j]) > amax) {
      amax = std::fabs(x[j]);
      max = x[j];
    }
  }
  return max;
}

inline void min_max(const float* x, size_t n, float& min, float& max) {
  min = max = x[0];
  for (size_t j = 1; j < n; ++j) {
    if (x[j] < min) min = x[j];
    if (x[j] > max) max = x[j];
  }
}

inline float inverse_or_zero(float d) { return d == 0.0f ? 0.0f : 1.0f / d; }

}  // namespace detail

// --- One block at a time. --------------------------------------------------
// `x` holds BlockTraits<T>::block_size floats.

inline void quantize_block(const float* x, float& block) { block = *x; }
inline void quantize_block(const float* x, f16& block) { block.bits = f32_to_f16(*x); }
inline void quantize_block(const float* x, bf16& block) { block.bits = f32_to_bf16(*x); }

// Symmetric 4-bit: the largest-magnitude element maps to -8 exactly.
inline void quantize_block(const float* x, BlockQ4_0& block) {
  constexpr size_t half = kLegacyBlockSize / 2;
  const float d = detail::signed_absolute_max(x, kLegacyBlockSize) / -8.0f;
  const float id = detail::inverse_or_zero(d);
  block.d_f16 = f32_to_f16(d);
  for (size_t j = 0; j < half; ++j) {
    const int q0 = detail::truncate_to_quant(detail::round_to_float(x[j] * id) + 8.5f, 15);
    const int q1 = detail::truncate_to_quant(detail::round_to_float(x[j + half] * id) + 8.5f, 15);
    block.qs[j] = uint8_t(q0 | q1 << 4);
  }
}

inline void quantize_block(const float* x, BlockQ4_1& block) {
  constexpr size_t half = kLegacyBlockSize / 2;
  float min, max;
  detail::min_max(x, kLegacyBlockSize, min, max);
  const float d = (max - min) / 15.0f;
  const float id = detail::inverse_or_zero(d);
  block.d_f16 = f32_to_f16(d);
  block.m_f16 = f32_to_f16(min);
  for (size_t j = 0; j < half; ++j) {
    const int q0 = detail::truncate_to_quant(detail::round_to_float((x[j] - min) * id) + 0.5f, 15);
    const int q1 = detail::truncate_to_quant(detail::round_to_float((x[j + half] - min) * id) + 0.5f, 15);
    block.qs[j] = uint8_t(q0 | q1 << 4);
  }
}

inline void quantize_block(const float* x, BlockQ5_0& block) {
  constexpr size_t half = kLegacyBlockSize / 2;
  const float d = detail::signed_absolute_max(x, kLegacyBlockSize) / -16.0f;
  const float id = detail::inverse_or_zero(d);
  block.d_f16 = f32_to_f16(d);
  uint32_t qh = 0;
  for (size_t j = 0; j < half; ++j) {
    const int q0 = detail::truncate_to_quant(detail::round_to_float(x[j] * id) + 16.5f, 31);
    const int q1 = detail::truncate_to_quant(detail::round_to_float(x[j + half] * id) + 16.5f, 31);
    block.qs[j] = uint8_t((q0 & 0x0f) | (q1 & 0x0f) << 4);
    qh |= uint32_t(q0 >> 4) << j | uint32_t(q1 >> 4) << (j + half);
  }
  for (int b = 0; b < 4; ++b) block.qh[b] = uint8_t(qh >> (8 * b));
}

inline void quantize_block(const float* x, BlockQ5_1& block) {
  constexpr size_t half = kLegacyBlockSize / 2;
  float min, max;
  detail::min_max(x, kLegacyBlockSize, min, max);
  const float d = (max - min) / 31.0f;
  const float id = detail::inverse_or_zero(d);
  block.d_f16 = f32_to_f16(d);
  block.m_f16 = f32_to_f16(min);
  uint32_t qh = 0;
  for (size_t j = 0; j < half; ++j) {
    const int q0 = detail::truncate_to_quant(detail::round_to_float((x[j] - min) * id) + 0.5f, 31);
    const int q1 = detail::truncate_to_quant(detail::round_to_float((x[j + half] - min) * id) + 0.5f, 31);
    block.qs[j] = uint8_t((q0 & 0x0f) | (q1 & 0x0f) << 4);
    qh |= uint32_t(q0 >> 4) << j | uint32_t(q1 >> 4) << (j + half);
  }
  for (int b = 0; b < 4; ++b) block.qh[b] = uint8_t(qh >> (8 * b));
}

namespace detail {
// Shared by Q8_0 and Q8_1; returns the float scale (before f16 rounding).
inline float quantize_q8(const float* x, int8_t* qs) {
  float amax = 0.0f;
  for (size_t j = 0; j < kLegacyBlockSize; ++j) amax = std::fmax(amax, std::fabs(x[j]));
  const float d = amax / 127.0f;
  const float id = inverse_or_zero(d);
  for (size_t j = 0; j < kLegacyBlockSize; ++j) qs[j] = round_to_int8(x[j] * id);
  return d;
}
}  // namespace detail

inline void quantize_block(const float* x, BlockQ8_0& block) {
  block.d_f16 = f32_to_f16(detail::quantize_q8(x, block.qs));
}

// s = d * sum(q) with the unrounded d, as ggml computes it.
inline void quantize_block(const float* x, BlockQ8_1& block) {
  const float d = detail::quantize_q8(x, block.qs);
  int sum = 0;
  for (size_t j = 0; j < kLegacyBlockSize; ++j) sum += block.qs[j];
  block.d_f16 = f32_to_f16(d);
  block.s_f16 = f32_to_f16(float(sum) * d);
}

// --- K-quants: super-blocks of 256. -----------------------------------------
// Q4_K, Q5_K and Q6_K follow ggml's quantize_row_q4_K_ref, quantize_row_q5_K_ref
// and quantize_row_q6_K_ref (ggml-quants.c): what llama.cpp's llama-quantize
// computes when it has no importance matrix. For finite input the bytes match
// llama.cpp's (tests/test_quant.cpp compares with vectors llama.cpp wrote,
// tools/make_kquant_vectors.py).
//
// Unlike the closed-form formats, these search: each group of 16 or 32 tries
// about twenty candidate scales and keeps the one with the least weighted
// squared error, then the group scales are themselves quantized to 6 or 8 bits
// against the super-block's largest, and every element is quantized again
// against the scale it will actually be dequantized with. A search compares
// float sums, so one rounding done differently can flip a choice and change
// every quant of a group. Hence, as ggml's reference build computes them:
// - every product that feeds an add, in the same statement or a later one,
//   is rounded first (no FMA), and sums run in element order;
// - rounding to an integer is ggml's nearest_int (ties to even);
// - a group whose rounded scale is 0 keeps the quants of its own search.

namespace detail {

// Ignored below this magnitude: a group (Q6_K) or super-block scale that is
// all zero for ggml's purposes (its GROUP_MAX_EPS).
inline constexpr float kGroupMaxEps = 1e-15f;

// a * b rounded to float, never fused into an FMA with what it feeds.
inline float product(float a, float b) { return round_to_float(a * b); }

// ggml's nearest_int: adding 1.5 * 2^23 leaves round(t), ties to even, in the
// low mantissa bits. Exact for |t| < 2^22; outside, or for NaN, it returns the
// same garbage as ggml, which the callers then clamp, so bytes still match.
inline int nearest_int(float t) {
  const float biased = round_to_float(t) + 12582912.0f;
  return int(std::bit_cast<uint32_t>(biased) & 0x007fffffu) - 0x00400000;
}

// ggml's make_qkx2_quants (use_mad = false), for Q4_K and Q5_K: fits
// x ≈ scale * q + min, q in 0..nmax, min <= 0, minimizing sum(w * error^2).
// Starts from the min-max fit, then for is = 0..nstep sets the quants by the
// scale (max - min) / (nmax + rmin + rdelta * is), solves the weighted least
// squares for scale and min given those quants (or for scale alone if the
// min would come out positive) and keeps the fit if its error is smaller.
// Writes the quants to q, returns the scale and sets `negated_min` = -min.
inline float search_scale_and_min(size_t n, int nmax, const float* x, const float* w, uint8_t* q, float& negated_min,
                                  float rmin, float rdelta, int nstep) {
  float min = x[0], max = x[0];
  float sum_w = w[0];
  float sum_x = product(sum_w, x[0]);
  for (size_t i = 1; i < n; ++i) {
    if (x[i] < min) min = x[i];
    if (x[i] > max) max = x[i];
    sum_w += w[i];
    sum_x += product(w[i], x[i]);
  }
  if (min > 0.0f) min = 0.0f;  // the min is subtracted: a positive one cannot be stored
  if (max == min) {
    for (size_t i = 0; i < n; ++i) q[i] = 0;
    negated_min = -min;
    return 0.0f;
  }
  float iscale = float(nmax) / (max - min);
  float scale = 1.0f / iscale;
  float best_error = 0.0f;
  for (size_t i = 0; i < n; ++i) {
    q[i] = uint8_t(std::clamp(nearest_int(iscale * (x[i] - min)), 0, nmax));
    const float diff = product(scale, float(q[i])) + min - x[i];
    best_error += product(w[i], diff * diff);
  }
  uint8_t trial[kSuperBlockSize];
  for (int is = 0; is <= nstep; ++is) {
    iscale = (rmin + product(rdelta, float(is)) + float(nmax)) / (max - min);
    float sum_l = 0.0f, sum_l2 = 0.0f, sum_xl = 0.0f;
    for (size_t i = 0; i < n; ++i) {
      const int l = std::clamp(nearest_int(iscale * (x[i] - min)), 0, nmax);
      trial[i] = uint8_t(l);
      const float wl = product(w[i], float(l));
      sum_l += wl;
      sum_l2 += product(wl, float(l));
      sum_xl += product(wl, x[i]);
    }
    const float det = product(sum_w, sum_l2) - product(sum_l, sum_l);
    if (det > 0.0f) {
      float this_scale = (product(sum_w, sum_xl) - product(sum_x, sum_l)) / det;
      float this_min = (product(sum_l2, sum_x) - product(sum_l, sum_xl)) / det;
      if (this_min > 0.0f) {
        this_min = 0.0f;
        this_scale = sum_xl / sum_l2;
      }
      float error = 0.0f;
      for (size_t i = 0; i < n; ++i) {
        const float diff = product(this_scale, float(trial[i])) + this_min - x[i];
        error += product(w[i], diff * diff);
      }
      if (error < best_error) {
        for (size_t i = 0; i < n; ++i) q[i] = trial[i];
        best_error = error;
        scale = this_scale;
        min = this_min;
      }
    }
  }
  negated_min = -min;
  return scale;
}

// ggml's make_qx_quants with rmse_type = 1, for Q6_K: fits x ≈ scale * l,
// l in -nmax..nmax-1, minimizing sum(x^2 * error^2) (large weights matter
// most). The scale is signed so that the element of largest magnitude maps
// to -nmax; 18 more candidates nudge nmax by ±0.1..0.9. Writes l + nmax to q.
inline float search_symmetric_scale(size_t n, int nmax, const float* x, int8_t* q) {
  float max = 0.0f, amax = 0.0f;
  for (size_t i = 0; i < n; ++i) {
    if (std::fabs(x[i]) > amax) {
      amax = std::fabs(x[i]);
      max = x[i];
    }
  }
  if (amax < kGroupMaxEps) {
    for (size_t i = 0; i < n; ++i) q[i] = 0;
    return 0.0f;
  }
  auto fit = [&](float iscale, float& sum_lx, float& sum_l2) {
    sum_lx = sum_l2 = 0.0f;
    for (size_t i = 0; i < n; ++i) {
      const int l = std::clamp(nearest_int(iscale * x[i]), -nmax, nmax - 1);
      const float w = x[i] * x[i];
      sum_lx += product(w * x[i], float(l));
      sum_l2 += product(w * float(l), float(l));
    }
  };
  auto set_quants = [&](float iscale) {
    for (size_t i = 0; i < n; ++i) q[i] = int8_t(nmax + std::clamp(nearest_int(iscale * x[i]), -nmax, nmax - 1));
  };
  float iscale = float(-nmax) / max;
  float sum_lx, sum_l2;
  fit(iscale, sum_lx, sum_l2);
  set_quants(iscale);
  float scale = sum_l2 != 0.0f ? sum_lx / sum_l2 : 0.0f;
  float best = scale * sum_lx;
  for (int is = -9; is <= 9; ++is) {
    if (is == 0) continue;
    iscale = -(float(nmax) + product(0.1f, float(is))) / max;
    fit(iscale, sum_lx, sum_l2);
    // Maximizing sum_lx^2 / sum_l2 minimizes the error at the best scale for these quants.
    if (sum_l2 > 0.0f && sum_lx * sum_lx > best * sum_l2) {
      set_quants(iscale);
      scale = sum_lx / sum_l2;
      best = scale * sum_lx;
    }
  }
  return scale;
}

// Q4_K and Q5_K up to the bit packing: fits each group of 32 (weights
// rms(group) + |x|: big elements count more, but none counts for nothing),
// quantizes the eight scales and eight mins to 6 bits against the largest of
// each, packs them (unpack_scale_min_k4's layout), then requantizes each
// element with the scale and min as they will be dequantized. q receives 256
// quants in 0..nmax, in element order.
inline void quantize_scale_min_super_block(const float* x, int nmax, float rmin, int nstep, uint16_t& d_f16,
                                           uint16_t& dmin_f16, uint8_t (&packed)[kPackedScaleBytes], uint8_t* q) {
  constexpr size_t kGroup = 32, kGroups = kSuperBlockSize / kGroup;
  float scales[kGroups], mins[kGroups], weights[kGroup];
  float max_scale = 0.0f, max_min = 0.0f;  // both >= 0: the min is subtracted
  for (size_t g = 0; g < kGroups; ++g) {
    const float* xg = x + kGroup * g;
    float sum_x2 = 0.0f;
    for (size_t l = 0; l < kGroup; ++l) sum_x2 += product(xg[l], xg[l]);
    const float rms = std::sqrt(sum_x2 / float(kGroup));
    for (size_t l = 0; l < kGroup; ++l) weights[l] = rms + std::fabs(xg[l]);
    scales[g] = search_scale_and_min(kGroup, nmax, xg, weights, q + kGroup * g, mins[g], rmin, 0.1f, nstep);
    if (scales[g] > max_scale) max_scale = scales[g];
    if (mins[g] > max_min) max_min = mins[g];
  }
  const float inv_scale = max_scale > 0.0f ? 63.0f / max_scale : 0.0f;
  const float inv_min = max_min > 0.0f ? 63.0f / max_min : 0.0f;
  for (size_t g = 0; g < kGroups; ++g) {
    // Truncated to 8 bits before the clamp, as ggml stores nearest_int in a uint8_t.
    const uint8_t ls = std::min<uint8_t>(63, uint8_t(nearest_int(inv_scale * scales[g])));
    const uint8_t lm = std::min<uint8_t>(63, uint8_t(nearest_int(inv_min * mins[g])));
    if (g < 4) {
      packed[g] = ls;
      packed[g + 4] = lm;
    } else {
      packed[g + 4] = uint8_t((ls & 0x0f) | (lm & 0x0f) << 4);
      packed[g - 4] |= uint8_t((ls >> 4) << 6);
      packed[g] |= uint8_t((lm >> 4) << 6);
    }
  }
  d_f16 = f32_to_f16(max_scale / 63.0f);
  dmin_f16 = f32_to_f16(max_min / 63.0f);
  for (size_t g = 0; g < kGroups; ++g) {
    uint8_t sc, m;
    unpack_scale_min_k4(packed, int(g), sc, m);
    const float d = f16_to_f32(d_f16) * float(sc);
    if (d == 0.0f) continue;
    const float dm = product(f16_to_f32(dmin_f16), float(m));
    for (size_t l = 0; l < kGroup; ++l) {
      q[kGroup * g + l] = uint8_t(std::clamp(nearest_int((x[kGroup * g + l] + dm) / d), 0, nmax));
    }
  }
}

}  // namespace detail

// Element 64 * c + 32 * s + l goes to nibble s of qs[32 * c + l].
inline void quantize_block(const float* x, BlockQ4_K& block) {
  uint8_t q[kSuperBlockSize];
  detail::quantize_scale_min_super_block(x, 15, -1.0f, 20, block.d_f16, block.dmin_f16, block.scales, q);
  for (size_t c = 0; c < 4; ++c) {
    for (size_t l = 0; l < 32; ++l) block.qs[32 * c + l] = uint8_t(q[64 * c + l] | q[64 * c + 32 + l] << 4);
  }
}

// As Q4_K with a fifth bit: bit `group` of qh[l] for element 32 * group + l.
inline void quantize_block(const float* x, BlockQ5_K& block) {
  uint8_t q[kSuperBlockSize];
  detail::quantize_scale_min_super_block(x, 31, -0.5f, 15, block.d_f16, block.dmin_f16, block.scales, q);
  std::memset(block.qh, 0, sizeof block.qh);
  for (size_t c = 0; c < 4; ++c) {
    for (size_t l = 0; l < 32; ++l) {
      const int q0 = q[64 * c + l], q1 = q[64 * c + 32 + l];
      block.qs[32 * c + l] = uint8_t((q0 & 0x0f) | (q1 & 0x0f) << 4);
      block.qh[l] |= uint8_t((q0 >> 4) << (2 * c) | (q1 >> 4) << (2 * c + 1));
    }
  }
}

// 16 groups of 16 with signed 8-bit scales: the group scale of largest
// magnitude maps to -128 (an f16 d, then scales[g] = round(group scale / d),
// at most 127), and the quants are fitted again against d * scales[g].
// Element 128 * h + 32 * t + l: low nibble (t / 2) of ql[64 * h + 32 * (t % 2) + l],
// high bits 2t..2t+1 of qh[32 * h + l].
inline void quantize_block(const float* x, BlockQ6_K& block) {
  constexpr size_t kGroup = 16, kGroups = kSuperBlockSize / kGroup;
  int8_t q[kSuperBlockSize];  // l + 32, in 0..63
  float scales[kGroups];
  float max_scale = 0.0f, max_abs_scale = 0.0f;
  for (size_t g = 0; g < kGroups; ++g) {
    scales[g] = detail::search_symmetric_scale(kGroup, 32, x + kGroup * g, q + kGroup * g);
    if (std::fabs(scales[g]) > max_abs_scale) {
      max_abs_scale = std::fabs(scales[g]);
      max_scale = scales[g];
    }
  }
  if (max_abs_scale < detail::kGroupMaxEps) {
    std::memset(&block, 0, sizeof block);
    return;
  }
  const float iscale = -128.0f / max_scale;
  block.d_f16 = f32_to_f16(1.0f / iscale);
  for (size_t g = 0; g < kGroups; ++g) block.scales[g] = int8_t(std::min(127, detail::nearest_int(iscale * scales[g])));
  for (size_t g = 0; g < kGroups; ++g) {
    const float d = f16_to_f32(block.d_f16) * float(block.scales[g]);
    if (d == 0.0f) continue;
    for (size_t l = 0; l < kGroup; ++l) {
      q[kGroup * g + l] = int8_t(32 + std::clamp(detail::nearest_int(x[kGroup * g + l] / d), -32, 31));
    }
  }
  for (size_t h = 0; h < 2; ++h) {
    const int8_t* qh_src = q + 128 * h;
    for (size_t l = 0; l < 32; ++l) {
      const int q0 = qh_src[l], q1 = qh_src[l + 32], q2 = qh_src[l + 64], q3 = qh_src[l + 96];
      block.ql[64 * h + l] = uint8_t((q0 & 0x0f) | (q2 & 0x0f) << 4);
      block.ql[64 * h + 32 + l] = uint8_t((q1 & 0x0f) | (q3 & 0x0f) << 4);
      block.qh[32 * h + l] = uint8_t(q0 >> 4 | (q1 >> 4) << 2 | (q2 >> 4) << 4 | (q3 >> 4) << 6);
    }
  }
}

// --- Typed rows. -----------------------------------------------------------

// True where quantize_block has an overload for T's block.
template <DType T>
concept HasQuantizer = HasBlockTraits<T> && requires(const float* x, typename BlockTraits<T>::Block& b) {
  quantize_block(x, b);
};

// Quantizes n_blocks * BlockTraits<T>::block_size floats into n_blocks blocks
// at `dst` (any alignment).
template <DType T>
requires HasQuantizer<T>
void quantize(const float* src, void* dst, size_t n_blocks) {
  using Traits = BlockTraits<T>;
  if (n_blocks == 0) return;
  auto* bytes = static_cast<unsigned char*>(dst);
  if constexpr (T == DType::F32) {
    std::memcpy(bytes, src, n_blocks * sizeof(float));
  } else {
    for (size_t i = 0; i < n_blocks; ++i) {
      typename Traits::Block block;
      quantize_block(src + i * Traits::block_size, block);
      std::memcpy(bytes + i * Traits::block_bytes, &block, sizeof(block));
    }
  }
}

// --- Type-erased rows. -----------------------------------------------------

inline bool can_quantize(DType t) {
  switch (t) {
    case DType::F32:
    case DType::F16:
    case DType::BF16:
    case DType::Q4_0:
    case DType::Q4_1:
    case DType::Q5_0:
    case DType::Q5_1:
    case DType::Q8_0:
    case DType::Q8_1:
    case DType::Q4_K:
    case DType::Q5_K:
    case DType::Q6_K: return true;
    default: return false;
  }
}

// Quantizes a row of n floats to type t (n a multiple of t's block size).
inline Result<void> quantize_row(DType t, const float* src, void* dst, size_t n) {
  EMBER_TRY_VOID(detail::check_row("quantize", t, can_quantize(t), n, src != nullptr && dst != nullptr));
  const size_t n_blocks = n / block_size(t);
  switch (t) {
    case DType::F32: quantize<DType::F32>(src, dst, n_blocks); break;
    case DType::F16: quantize<DType::F16>(src, dst, n_blocks); break;
    case DType::BF16: quantize<DType::BF16>(src, dst, n_blocks); break;
    case DType::Q4_0: quantize<DType::Q4_0>(src, dst, n_blocks); break;
    case DType::Q4_1: quantize<DType::Q4_1>(src, dst, n_blocks); break;
    case DType::Q5_0: quantize<DType::Q5_0>(src, dst, n_blocks); break;
    case DType::Q5_1: quantize<DType::Q5_1>(src, dst, n_blocks); break;
    case DType::Q8_0: quantize<DType::Q8_0>(src, dst, n_blocks); break;
    case DType::Q8_1: quantize<DType::Q8_1>(src, dst, n_blocks); break;
    case DType::Q4_K: quantize<DType::Q4_K>(src, dst, n_blocks); break;
    case DType::Q5_K: quantize<DType::Q5_K>(src, dst, n_blocks); break;
    case DType::Q6_K: quantize<DType::Q6_K>(src, dst, n_blocks); break;
    default: break;  // rejected by check_row
  }
  return {};
}

}  // namespace ember::quant
