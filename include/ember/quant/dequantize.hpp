// Scalar dequantization of every weight format ember reads, the oracle the
// SIMD kernels are tested against.
//
// Results match the PyPI `gguf` package's numpy dequantization (gguf/quants.py)
// bit for bit, and so ggml's dequantize_row_*. Every format computes
// `scale * q` or `(d * scale) * q`, minus `dmin * min` for formats with a
// minimum, in float32. Each product is exact (an f16 scale has 11 significant
// bits and the integer factors add at most 12, inside float's 24), so only the
// final subtraction or addition rounds: the result is the same whatever the
// order of the products and whether the compiler fuses the last step into an
// FMA (GCC does by default for C++ when FMA is enabled). Q8_K's float scale
// times q is a single rounding too.
//
// Blocks are read through memcpy: rows in a GGUF file need not be aligned for
// the block struct, and a misaligned typed load is undefined behaviour.
// The host is assumed little-endian, as GGUF data is.
#pragma once

#include <cstddef>
#include <cstdint>
#include <cstring>
#include <string>

#include "ember/core/half.hpp"
#include "ember/core/result.hpp"
#include "ember/quant/blocks.hpp"
#include "ember/tensor/dtype.hpp"

namespace ember::quant {

// --- One block at a time: for kernels that dequantize as they go. ----------
// `out` receives BlockTraits<T>::block_size floats.

inline void dequantize_block(const float& block, float* out) { *out = block; }
inline void dequantize_block(const f16& block, float* out) { *out = f16_to_f32(block.bits); }
inline void dequantize_block(const bf16& block, float* out) { *out = bf16_to_f32(block.bits); }

inline void dequantize_block(const BlockQ4_0& block, float* out) {
  const float d = f16_to_f32(block.d_f16);
  for (size_t j = 0; j < kLegacyBlockSize / 2; ++j) {
    out[j] = d * float((block.qs[j] & 0x0f) - 8);
    out[j + kLegacyBlockSize / 2] = d * float((block.qs[j] >> 4) - 8);
  }
}

inline void dequantize_block(const BlockQ4_1& block, float* out) {
  const float d = f16_to_f32(block.d_f16);
  const float m = f16_to_f32(block.m_f16);
  for (size_t j = 0; j < kLegacyBlockSize / 2; ++j) {
    out[j] = d * float(block.qs[j] & 0x0f) + m;
    out[j + kLegacyBlockSize / 2] = d * float(block.qs[j] >> 4) + m;
  }
}

namespace detail {
// The 32 fifth bits of a Q5 block, bit j for element j.
inline uint32_t load_high_bits(const uint8_t (&qh)[4]) {
  return uint32_t(qh[0]) | uint32_t(qh[1]) << 8 | uint32_t(qh[2]) << 16 | uint32_t(qh[3]) << 24;
}
}  // namespace detail

inline void dequantize_block(const BlockQ5_0& block, float* out) {
  const float d = f16_to_f32(block.d_f16);
  const uint32_t qh = detail::load_high_bits(block.qh);
  constexpr size_t half = kLegacyBlockSize / 2;
  for (size_t j = 0; j < half; ++j) {
    const int q0 = (block.qs[j] & 0x0f) | int((qh >> j) & 1) << 4;
    const int q1 = (block.qs[j] >> 4) | int((qh >> (j + half)) & 1) << 4;
    out[j] = d * float(q0 - 16);
    out[j + half] = d * float(q1 - 16);
  }
}

inline void dequantize_block(const BlockQ5_1& block, float* out) {
  const float d = f16_to_f32(block.d_f16);
  const float m = f16_to_f32(block.m_f16);
  const uint32_t qh = detail::load_high_bits(block.qh);
  constexpr size_t half = kLegacyBlockSize / 2;
  for (size_t j = 0; j < half; ++j) {
    const int q0 = (block.qs[j] & 0x0f) | int((qh >> j) & 1) << 4;
    const int q1 = (block.qs[j] >> 4) | int((qh >> (j + half)) & 1) << 4;
    out[j] = d * float(q0) + m;
    out[j + half] = d * float(q1) + m;
  }
}

inline void dequantize_block(const BlockQ8_0& block, float* out) {
  const float d = f16_to_f32(block.d_f16);
  for (size_t j = 0; j < kLegacyBlockSize; ++j) out[j] = d * float(block.qs[j]);
}

// `s` is redundant for dequantization: it only speeds up dot products.
inline void dequantize_block(const BlockQ8_1& block, float* out) {
  const float d = f16_to_f32(block.d_f16);
  for (size_t j = 0; j < kLegacyBlockSize; ++j) out[j] = d * float(block.qs[j]);
}

// Element 128 * h + 32 * s + l takes bits 2s..2s+1 of qs[32 * h + l].
inline void dequantize_block(const BlockQ2_K& block, float* out) {
  const float d = f16_to_f32(block.d_f16);
  const float dmin = f16_to_f32(block.dmin_f16);
  for (int h = 0; h < 2; ++h) {
    for (int s = 0; s < 4; ++s) {
      float* y = out + 128 * h + 32 * s;
      const int group = 8 * h + 2 * s;  // two groups of 16 per 32 outputs
      for (int g = 0; g < 2; ++g) {
        const uint8_t scale_min = block.scales[group + g];
        const float dl = d * float(scale_min & 0x0f);
        const float ml = dmin * float(scale_min >> 4);
        for (int l = 16 * g; l < 16 * g + 16; ++l) {
          const int q = (block.qs[32 * h + l] >> (2 * s)) & 3;
          y[l] = dl * float(q) - ml;
        }
      }
    }
  }
}

// Element 128 * h + 32 * s + l: low two bits as in Q2_K, high bit is bit
// 4h + s of hmask[l]; a clear high bit means q - 4.
inline void dequantize_block(const BlockQ3_K& block, float* out) {
  const float d = f16_to_f32(block.d_f16);
  for (int h = 0; h < 2; ++h) {
    for (int s = 0; s < 4; ++s) {
      float* y = out + 128 * h + 32 * s;
      const int group = 8 * h + 2 * s;
      const int high_bit = 4 * h + s;
      for (int g = 0; g < 2; ++g) {
        const float dl = d * float(unpack_scale_q3_k(block.scales, group + g));
        for (int l = 16 * g; l < 16 * g + 16; ++l) {
          const int low = (block.qs[32 * h + l] >> (2 * s)) & 3;
          const int high = (block.hmask[l] >> high_bit) & 1;
          y[l] = dl * float(low - (high ? 0 : 4));
        }
      }
    }
  }
}

// Element 64 * c + 32 * s + l takes nibble s of qs[32 * c + l], group 2c + s.
inline void dequantize_block(const BlockQ4_K& block, float* out) {
  const float d = f16_to_f32(block.d_f16);
  const float dmin = f16_to_f32(block.dmin_f16);
  for (int c = 0; c < 4; ++c) {
    for (int s = 0; s < 2; ++s) {
      const int group = 2 * c + s;
      uint8_t scale, min;
      unpack_scale_min_k4(block.scales, group, scale, min);
      const float dl = d * float(scale);
      const float ml = dmin * float(min);
      float* y = out + 32 * group;
      for (int l = 0; l < 32; ++l) {
        const int q = (block.qs[32 * c + l] >> (4 * s)) & 0x0f;
        y[l] = dl * float(q) - ml;
      }
    }
  }
}

// As Q4_K; the fifth bit of element 32 * group + l is bit `group` of qh[l].
inline void dequantize_block(const BlockQ5_K& block, float* out) {
  const float d = f16_to_f32(block.d_f16);
  const float dmin = f16_to_f32(block.dmin_f16);
  for (int c = 0; c < 4; ++c) {
    for (int s = 0; s < 2; ++s) {
      const int group = 2 * c + s;
      uint8_t scale, min;
      unpack_scale_min_k4(block.scales, group, scale, min);
      const float dl = d * float(scale);
      const float ml = dmin * float(min);
      float* y = out + 32 * group;
      for (int l = 0; l < 32; ++l) {
        const int q = ((block.qs[32 * c + l] >> (4 * s)) & 0x0f) | ((block.qh[l] >> group) & 1) << 4;
        y[l] = dl * float(q) - ml;
      }
    }
  }
}

// Element 128 * h + 32 * t + l: low nibble (t / 2) of ql[64 * h + 32 * (t % 2) + l],
// high bits 2t..2t+1 of qh[32 * h + l]; scale group = element / 16.
inline void dequantize_block(const BlockQ6_K& block, float* out) {
  const float d = f16_to_f32(block.d_f16);
  for (int h = 0; h < 2; ++h) {
    for (int t = 0; t < 4; ++t) {
      float* y = out + 128 * h + 32 * t;
      const uint8_t* ql = block.ql + 64 * h + 32 * (t % 2);
      const uint8_t* qh = block.qh + 32 * h;
      for (int g = 0; g < 2; ++g) {
        const float dl = d * float(block.scales[8 * h + 2 * t + g]);
        for (int l = 16 * g; l < 16 * g + 16; ++l) {
          const int low = (ql[l] >> (4 * (t / 2))) & 0x0f;
          const int high = (qh[l] >> (2 * t)) & 3;
          y[l] = dl * float((low | high << 4) - 32);
        }
      }
    }
  }
}

inline void dequantize_block(const BlockQ8_K& block, float* out) {
  for (size_t j = 0; j < kSuperBlockSize; ++j) out[j] = block.d * float(block.qs[j]);
}

// --- Typed rows. -----------------------------------------------------------

// Dequantizes n_blocks consecutive blocks of type T from `src` (any alignment)
// into n_blocks * BlockTraits<T>::block_size floats.
template <DType T>
requires HasBlockTraits<T>
void dequantize(const void* src, float* dst, size_t n_blocks) {
  using Traits = BlockTraits<T>;
  if (n_blocks == 0) return;
  const auto* bytes = static_cast<const unsigned char*>(src);
  if constexpr (T == DType::F32) {
    std::memcpy(dst, bytes, n_blocks * sizeof(float));
  } else {
    for (size_t i = 0; i < n_blocks; ++i) {
      typename Traits::Block block;
      std::memcpy(&block, bytes + i * Traits::block_bytes, sizeof(block));
      dequantize_block(block, dst + i * Traits::block_size);
    }
  }
}

// --- Type-erased rows. -----------------------------------------------------

inline bool can_dequantize(DType t) {
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
    case DType::Q2_K:
    case DType::Q3_K:
    case DType::Q4_K:
    case DType::Q5_K:
    case DType::Q6_K:
    case DType::Q8_K: return true;
    default: return false;
  }
}

namespace detail {
// Checks shared by dequantize_row and quantize_row; `verb` names the operation.
inline Result<void> check_row(const char* verb, DType t, bool supported, size_t n, bool pointers_ok) {
  const auto info = dtype_info(static_cast<uint32_t>(t));
  if (!info) {
    return make_error(Errc::invalid_argument,
                      std::string(verb) + ": unknown tensor type id " + std::to_string(static_cast<uint32_t>(t)));
  }
  const std::string type_name(info->name);
  if (!supported) {
    return make_error(Errc::unsupported, std::string(verb) + ": type " + type_name + " is not supported (yet)");
  }
  if (n % info->block_size != 0) {
    return make_error(Errc::invalid_argument, std::string(verb) + ": a " + type_name + " row of " + std::to_string(n) +
                                                  " elements is not a multiple of the block size " +
                                                  std::to_string(info->block_size));
  }
  if (n != 0 && !pointers_ok) {
    return make_error(Errc::invalid_argument, std::string(verb) + ": null source or destination for a " + type_name +
                                                  " row of " + std::to_string(n) + " elements");
  }
  return {};
}
}  // namespace detail

// Dequantizes a row of n elements of type t (n a multiple of t's block size).
inline Result<void> dequantize_row(DType t, const void* src, float* dst, size_t n) {
  EMBER_TRY_VOID(detail::check_row("dequantize", t, can_dequantize(t), n, src != nullptr && dst != nullptr));
  const size_t n_blocks = n / block_size(t);
  switch (t) {
    case DType::F32: dequantize<DType::F32>(src, dst, n_blocks); break;
    case DType::F16: dequantize<DType::F16>(src, dst, n_blocks); break;
    case DType::BF16: dequantize<DType::BF16>(src, dst, n_blocks); break;
    case DType::Q4_0: dequantize<DType::Q4_0>(src, dst, n_blocks); break;
    case DType::Q4_1: dequantize<DType::Q4_1>(src, dst, n_blocks); break;
    case DType::Q5_0: dequantize<DType::Q5_0>(src, dst, n_blocks); break;
    case DType::Q5_1: dequantize<DType::Q5_1>(src, dst, n_blocks); break;
    case DType::Q8_0: dequantize<DType::Q8_0>(src, dst, n_blocks); break;
    case DType::Q8_1: dequantize<DType::Q8_1>(src, dst, n_blocks); break;
    case DType::Q2_K: dequantize<DType::Q2_K>(src, dst, n_blocks); break;
    case DType::Q3_K: dequantize<DType::Q3_K>(src, dst, n_blocks); break;
    case DType::Q4_K: dequantize<DType::Q4_K>(src, dst, n_blocks); break;
    case DType::Q5_K: dequantize<DType::Q5_K>(src, dst, n_blocks); break;
    case DType::Q6_K: dequantize<DType::Q6_K>(src, dst, n_blocks); break;
    case DType::Q8_K: dequantize<DType::Q8_K>(src, dst, n_blocks); break;
    default: break;  // rejected by check_row
  }
  return {};
}

}  // namespace ember::quant
