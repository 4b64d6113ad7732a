// Activation quantization for matmuls, as ggml's CPU backend does it.
//
// ggml never multiplies quantized weights by f32 activations. A matmul first
// converts each activation row to the weight type's "vec_dot_type" and then
// takes integer block dot products: Q8_0 activations for Q4_0 / Q5_0 / Q8_0
// weights, Q8_1 (Q8_0 plus s = d * sum(q)) for Q4_1 / Q5_1, Q8_K for the
// K-quants, f16 for f16 weights and bf16 for bf16 weights. ember does the same,
// for llama.cpp's logits and for speed (int8 dot products).
//
// These quantizers follow ggml's x86 code (ggml-cpu/arch/x86/quants.c, and
// quantize_row_q8_K_ref, which x86 uses for Q8_K), not the weight quantizer in
// quantize.hpp: the inverse scale is 127 / amax rather than 1 / d, and the
// rounding is to nearest with ties to even (_mm256_round_ps), not roundf's ties
// away from zero. Rounding uses the current rounding mode, which must be the
// default (to nearest), as everywhere in ember. Non-finite activations give
// unspecified (but defined) quants.
#pragma once

#include <cmath>
#include <cstddef>
#include <cstdint>
#include <cstring>

#include "ember/core/half.hpp"
#include "ember/quant/blocks.hpp"
#include "ember/tensor/dtype.hpp"

namespace ember::quant {

// The format activations take in a matmul with weights of type `weight`
// (ggml's type_traits_cpu[weight].vec_dot_type). F32 where activations stay as
// they are: F32 weights, and the formats ggml has no CPU dot product for
// (Q8_1, Q8_K as weights).
constexpr DType activation_type(DType weight) {
  switch (weight) {
    case DType::Q4_0:
    case DType::Q5_0:
    case DType::Q8_0: return DType::Q8_0;
    case DType::Q4_1:
    case DType::Q5_1: return DType::Q8_1;
    case DType::Q2_K:
    case DType::Q3_K:
    case DType::Q4_K:
    case DType::Q5_K:
    case DType::Q6_K: return DType::Q8_K;
    case DType::F16: return DType::F16;
    case DType::BF16: return DType::BF16;
    default: return DType::F32;
  }
}

namespace detail {

// Nearest integer, ties to even, saturated to int8 (as x86's packs saturate).
// rint rather than the 1.5 * 2^23 trick of ggml's nearest_int: with FMA
// enabled, GCC fuses `x * id + 12582912.f` into one rounding, which can round
// a product that is not a tie as if it were.
inline int8_t round_activation(float v) {
  const float r = std::fmin(std::fmax(std::rint(v), -128.0f), 127.0f);  // NaN -> -128
  return static_cast<int8_t>(r);
}

}  // namespace detail

// One Q8_0 / Q8_1 block of 32 activations: writes q, returns the unrounded
// scale d = amax / 127 and the sum of q (for Q8_1's s).
inline float quantize_activation_block_q8(const float* x, int8_t* q, int32_t& sum) {
  float amax = 0.0f;
  for (size_t j = 0; j < kLegacyBlockSize; ++j) amax = std::fmax(amax, std::fabs(x[j]));
  const float d = amax / 127.0f;
  const float id = amax != 0.0f ? 127.0f / amax : 0.0f;
  int32_t s = 0;
  for (size_t j = 0; j < kLegacyBlockSize; ++j) {
    q[j] = detail::round_activation(x[j] * id);
    s += q[j];
  }
  sum = s;
  return d;
}

// Q8_1's s: d * sum(q) with the unrounded d, rounded once to float, then to f16.
inline uint16_t activation_sum_f16(float d, int32_t sum) { return f32_to_f16(d * float(sum)); }

// n activations (a multiple of the block size) to blocks.
inline void quantize_activations(const float* x, BlockQ8_0* y, size_t n) {
  for (size_t b = 0; b < n / kLegacyBlockSize; ++b) {
    int32_t sum;
    y[b].d_f16 = f32_to_f16(quantize_activation_block_q8(x + b * kLegacyBlockSize, y[b].qs, sum));
  }
}

inline void quantize_activations(const float* x, BlockQ8_1* y, size_t n) {
  for (size_t b = 0; b < n / kLegacyBlockSize; ++b) {
    int32_t sum;
    const float d = quantize_activation_block_q8(x + b * kLegacyBlockSize, y[b].qs, sum);
    y[b].d_f16 = f32_to_f16(d);
    y[b].s_f16 = activation_sum_f16(d, sum);
  }
}

// Q8_K (ggml's quantize_row_q8_K_ref): the element of largest magnitude (the
// first one on ties), with its sign, maps to -127; d = 1 / iscale is negative
// when that element is positive. bsums hold the sums of each 16 quants.
inline void quantize_activations(const float* x, BlockQ8_K* y, size_t n) {
  for (size_t b = 0; b < n / kSuperBlockSize; ++b, x += kSuperBlockSize) {
    BlockQ8_K& out = y[b];
    float max = 0.0f, amax = 0.0f;
    for (size_t j = 0; j < kSuperBlockSize; ++j) {
      const float ax = std::fabs(x[j]);
      if (ax > amax) {
        amax = ax;
        max = x[j];
      }
    }
    if (amax == 0.0f) {
      out.d = 0.0f;
      std::memset(out.qs, 0, sizeof(out.qs));
      std::memset(out.bsums, 0, sizeof(out.bsums));
      continue;
    }
    const float iscale = -127.0f / max;
    for (size_t j = 0; j < kSuperBlockSize; ++j) out.qs[j] = detail::round_activation(iscale * x[j]);
    for (size_t g = 0; g < kSuperBlockSize / 16; ++g) {
      int sum = 0;
      for (size_t j = 0; j < 16; ++j) sum += out.qs[16 * g + j];
      out.bsums[g] = int16_t(sum);
    }
    out.d = 1.0f / iscale;
  }
}

// f16 / bf16 activations: each value rounded to nearest even.
inline void quantize_activations(const float* x, f16* y, size_t n) {
  for (size_t i = 0; i < n; ++i) y[i].bits = f32_to_f16(x[i]);
}

inline void quantize_activations(const float* x, bf16* y, size_t n) {
  for (size_t i = 0; i < n; ++i) y[i].bits = f32_to_bf16(x[i]);
}

// Type-erased: n activations (a multiple of the block size of `act`) into
// row_bytes(act, n) bytes at `y`, which must be aligned for act's block type.
// act is an activation_type(); F32 copies.
inline void quantize_activations(DType act, const float* x, void* y, size_t n) {
  switch (act) {
    case DType::Q8_0: quantize_activations(x, static_cast<BlockQ8_0*>(y), n); break;
    case DType::Q8_1: quantize_activations(x, static_cast<BlockQ8_1*>(y), n); break;
    case DType::Q8_K: quantize_activations(x, static_cast<BlockQ8_K*>(y), n); break;
    case DType::F16: quantize_activations(x, static_cast<f16*>(y), n); break;
    case DType::BF16: quantize_activations(x, static_cast<bf16*>(y), n); break;
    default: std::memcpy(y, x, n * sizeof(float)); break;
  }
}

}  // namespace ember::quant
