// Scalar quantization to the formats with a simple closed-form quantizer:
// Q4_0, Q4_1, Q5_0, Q5_1, Q8_0, Q8_1, and F32 / F16 / BF16.
//
// For finite input the bytes match the PyPI `gguf` package's numpy `quantize`
// (gguf/quants.py) bit for bit, which follows ggml's quantize_row_*_ref; Q8_1,
// absent from numpy, follows ggml's quantize_row_q8_1_ref. What the numpy code
// does that C might not:
// - the block maximum of Q4_0 / Q5_0 is the first element of largest
//   magnitude (argmax), starting from element 0 even if it is -0.0;
// - `x * id + 8.5` rounds the product before the add (no FMA);
// - a quant whose float value is not finite (a scale so small that 1 / d
//   overflows) becomes 0, as numpy's float -> uint8/int8 cast gives on x86.
// NaN in the input gives defined but unspecified bytes.
#pragma once

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
    case DType::Q8_1: return true;
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
    default: break;  // rejected by check_row
  }
  return {};
}

}  // namespace ember::quant
