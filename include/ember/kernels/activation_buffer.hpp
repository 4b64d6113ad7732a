// Activations prepared for a matmul (quant/activations.hpp says what and why):
// the per-thread scratch that holds them, and the planar layout the SIMD
// backends read.
#pragma once

#include <cstddef>
#include <cstdint>
#include <cstring>
#include <vector>

#include "ember/core/half.hpp"
#include "ember/quant/activations.hpp"
#include "ember/quant/blocks.hpp"
#include "ember/tensor/dtype.hpp"

namespace ember::kernels::detail {

// Tokens whose activations are prepared at once. Bounds the scratch to 64
// activation rows per thread (for n_col = 16384: 1.1 MiB of Q8, 4 MiB of f16
// as floats); weight rows are then read once per 64 tokens.
inline constexpr size_t kTokenChunk = 64;

inline constexpr size_t round_up(size_t n, size_t m) { return (n + m - 1) / m * m; }

// Per-thread scratch, 64-byte aligned, grown on demand and never shrunk: a
// matmul allocates only the first time its thread needs more than before.
inline std::byte* thread_scratch(size_t bytes) {
  static thread_local std::vector<std::byte> buffer;
  if (buffer.size() < bytes + 64) buffer.resize(bytes + 64);
  const auto address = reinterpret_cast<uintptr_t>(buffer.data());
  return buffer.data() + (64 - address % 64) % 64;
}

// Q8_0 / Q8_1 activations of one token, planar: block b's 32 quants at
// qs + 32 * b, its scale d (f16, widened to float) at d[b] and, for Q8_1,
// s = d * sum(q) (f16, widened) at s[b]. Same values as the ggml blocks of
// quant::quantize_activations, in a layout vector loads like.
struct PlanarQ8 {
  int8_t* qs;
  float* d;
  float* s;
};

// n (<= 512) activations to q8_0 blocks through a backend's planar quantizer, `planar(x, n,
// PlanarQ8)` (with quant::quantize_activations' bits: its d is the f16 scale, read back
// exactly): the attention kernels' queries.
template <class Planar>
inline void quantize_blocks_q8_0(const float* x, size_t n, quant::BlockQ8_0* out, Planar&& planar) {
  alignas(64) int8_t qs[512];
  float d[512 / 32];
  planar(x, n, PlanarQ8{qs, d, nullptr});
  for (size_t b = 0; b < n / 32; ++b) {
    out[b].d_f16 = f32_to_f16(d[b]);
    std::memcpy(out[b].qs, qs + 32 * b, 32);
  }
}

// Bytes per token of activations prepared by the SIMD backends for weights of
// type `weight`: planar Q8 for Q8_0 / Q8_1 activations, floats rounded to f16
// (bf16) for f16 (bf16) weights, ggml's own Q8_K blocks for the K-quants (their 256 quants
// are already contiguous, and the bsums sit beside them), none where
// activations stay f32. A multiple of 64, so every token's row stays aligned.
inline size_t planar_row_bytes(DType weight, size_t n_col) {
  switch (quant::activation_type(weight)) {
    case DType::Q8_0:
    case DType::Q8_1: return round_up(n_col + 2 * sizeof(float) * (n_col / 32), 64);
    case DType::F16:
    case DType::BF16: return round_up(n_col * sizeof(float), 64);
    case DType::Q8_K: return round_up(row_bytes(DType::Q8_K, n_col), 64);
    default: return 0;
  }
}

inline PlanarQ8 planar_q8(std::byte* row, size_t n_col) {
  auto* d = reinterpret_cast<float*>(row + n_col);  // n_col is a multiple of 32: aligned
  return PlanarQ8{reinterpret_cast<int8_t*>(row), d, d + n_col / 32};
}

// Scalar quantization into the planar layout; the vector versions in the SIMD
// backends give the same bits. `with_sum` fills s (Q8_1).
inline void quantize_planar_q8(const float* x, size_t n_col, PlanarQ8 out, bool with_sum) {
  for (size_t b = 0; b < n_col / 32; ++b) {
    int32_t sum;
    const float d = quant::quantize_activation_block_q8(x + 32 * b, out.qs + 32 * b, sum);
    out.d[b] = f16_to_f32(f32_to_f16(d));
    if (with_sum) out.s[b] = f16_to_f32(quant::activation_sum_f16(d, sum));
  }
}

// Activations for f16 weights: each value rounded to f16 and widened back.
inline void round_to_f16(const float* x, float* out, size_t n) {
  for (size_t i = 0; i < n; ++i) out[i] = f16_to_f32(f32_to_f16(x[i]));
}

// Activations for bf16 weights: each value rounded to bf16 (nearest even) and widened back.
inline void round_to_bf16(const float* x, float* out, size_t n) {
  for (size_t i = 0; i < n; ++i) out[i] = bf16_to_f32(f32_to_bf16(x[i]));
}

}  // namespace ember::kernels::detail
