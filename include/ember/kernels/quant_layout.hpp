// Byte offsets within the 32-element quant blocks (Q8_0, Q4_0, Q4_1, Q5_0, Q5_1), from the
// pinned ggml layouts in quant/blocks.hpp, for the SIMD backends' block kernels (Highway's
// highway-inl.hpp and xsimd.hpp read blocks through these).
#pragma once

#include <cstddef>

#include "ember/quant/blocks.hpp"
#include "ember/tensor/dtype.hpp"

namespace ember::kernels {

template <DType kT>
struct QuantLayout;
template <>
struct QuantLayout<DType::Q8_0> {  // x = d*q, q int8
  static constexpr size_t kBytes = sizeof(quant::BlockQ8_0);
  static constexpr size_t kScale = offsetof(quant::BlockQ8_0, d_f16);
  static constexpr size_t kQs = offsetof(quant::BlockQ8_0, qs);
};
template <>
struct QuantLayout<DType::Q4_0> {  // x = d*(q - 8), q a nibble
  static constexpr size_t kBytes = sizeof(quant::BlockQ4_0);
  static constexpr size_t kScale = offsetof(quant::BlockQ4_0, d_f16);
  static constexpr size_t kQs = offsetof(quant::BlockQ4_0, qs);
};
template <>
struct QuantLayout<DType::Q4_1> {  // x = d*q + m, q a nibble
  static constexpr size_t kBytes = sizeof(quant::BlockQ4_1);
  static constexpr size_t kScale = offsetof(quant::BlockQ4_1, d_f16);
  static constexpr size_t kOffset = offsetof(quant::BlockQ4_1, m_f16);
  static constexpr size_t kQs = offsetof(quant::BlockQ4_1, qs);
};
template <>
struct QuantLayout<DType::Q5_0> {  // x = d*(q - 16), q = nibble | fifth bit << 4
  static constexpr size_t kBytes = sizeof(quant::BlockQ5_0);
  static constexpr size_t kScale = offsetof(quant::BlockQ5_0, d_f16);
  static constexpr size_t kQh = offsetof(quant::BlockQ5_0, qh);
  static constexpr size_t kQs = offsetof(quant::BlockQ5_0, qs);
};
template <>
struct QuantLayout<DType::Q5_1> {  // x = d*q + m, q = nibble | fifth bit << 4
  static constexpr size_t kBytes = sizeof(quant::BlockQ5_1);
  static constexpr size_t kScale = offsetof(quant::BlockQ5_1, d_f16);
  static constexpr size_t kOffset = offsetof(quant::BlockQ5_1, m_f16);
  static constexpr size_t kQh = offsetof(quant::BlockQ5_1, qh);
  static constexpr size_t kQs = offsetof(quant::BlockQ5_1, qs);
};
// Low nibbles of qs[j] are elements j, high nibbles elements j + 16 (ggml); bit j of qh
// (32 bits, little-endian) is element j's fifth bit.

// Formats whose quants are unsigned with an m * s offset term (Q8_1 activations).
template <DType kT>
inline constexpr bool kHasOffset = kT == DType::Q4_1 || kT == DType::Q5_1;

}  // namespace ember::kernels
