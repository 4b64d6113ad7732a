// Causal attention of the query heads of one KV head over the cached positions [0, n_pos)
// (grouped-query attention). Both products run as backend matmuls over views of the cache,
// or as one fused kernel where the backend has one.
#pragma once

#include <algorithm>
#include <cmath>
#include <concepts>
#include <cstddef>
#include <cstring>

#include "ember/attention/kv_cache.hpp"
#include "ember/core/half.hpp"
#include "ember/kernels/key_tiles.hpp"
#include "ember/quant/dequantize.hpp"

namespace ember {

// A backend may compute a whole group in one kernel (Highway::attend); others take the
// matmul path of attend_group.
template <class Backend>
concept FusedAttention = requires(const kernels::MatrixView& m, const float* q, float* s) {
  { Backend::attend(m, m, q, size_t{1}, 1.0f, s, s) } -> std::same_as<bool>;
};
template <class Backend>
concept FusedAttentionQ8 = requires(const kernels::KeyTiles& k, const kernels::MatrixView& m, const float* q,
                                    float* s) {
  { Backend::attend_q8(k, m, q, size_t{1}, 1.0f, s, s) } -> std::same_as<bool>;
};

// attend_group over a Q8_0 cache without a fused kernel: the scores as backend matmuls of
// 16 keys at a time (a tile's rows read back as q8_0 blocks: the queries are quantized to
// q8_0 by the matmul, as llama.cpp's q8_0 K cache does), then each value row dequantized and
// added into every head's output (Backend::axpy), in position order.
template <class Backend>
void attend_group_q8_rows(const kernels::KeyTiles& keys, const kernels::MatrixView& values, const float* q,
                          size_t group, float scale, float* scores, float* out) {
  constexpr size_t kPos = kernels::KeyTiles::kPos;
  const size_t hd = keys.head_dim, n_pos = keys.n_pos;
  quant::BlockQ8_0 rows[kPos * KvCache::kMaxBlocks];
  float tile_scores[kPos * 16];
  for (size_t j0 = keys.first / kPos * kPos; j0 < keys.first + n_pos; j0 += kPos) {
    const size_t lo = std::max(j0, keys.first), hi = std::min(j0 + kPos, keys.first + n_pos);
    for (size_t p = lo; p < hi; ++p) kernels::KeyTiles::get_row(keys.data, hd, p, rows + (p - lo) * (hd / 32));
    const auto view = kernels::make_matrix_view(DType::Q8_0, rows, hi - lo, hd);
    for (size_t g0 = 0; g0 < group; g0 += 16) {  // tile_scores holds 16 heads
      const size_t ng = std::min<size_t>(16, group - g0);
      Backend::matmul(view, q + g0 * hd, hd, ng, tile_scores, kPos, 0, hi - lo);
      for (size_t g = 0; g < ng; ++g)
        std::memcpy(scores + (g0 + g) * n_pos + (lo - keys.first), tile_scores + g * kPos, (hi - lo) * sizeof(float));
    }
  }
  for (size_t g = 0; g < group; ++g) {
    Backend::scale(scores + g * n_pos, scale, n_pos);
    Backend::softmax(scores + g * n_pos, n_pos);
  }
  std::fill(out, out + group * hd, 0.0f);
  float v[32 * KvCache::kMaxBlocks];
  for (size_t j = 0; j < n_pos; ++j) {
    (void)quant::dequantize_row(DType::Q8_0, values.row(j), v, hd);
    for (size_t g = 0; g < group; ++g) Backend::axpy(scores[g * n_pos + j], v, out + g * hd, hd);
  }
}

// For each of the `group` query heads that share one KV head (grouped-query attention):
// out_g(head_dim) = softmax(q_g·k_j / sqrt(head_dim), first <= j < first + n_pos) · v_j.
// The group's queries (and outputs) are contiguous, head_dim apart. All heads of the group go
// through each product as one matmul of `group` tokens, so every key and value row is read
// once per group rather than once per head; a matmul's outputs do not depend on how many
// tokens it takes (kernels/), so the bits are those of one head at a time.
// With an F16 cache the other operand of each product is taken at f16 precision too (the
// queries, then the probabilities), as llama.cpp's f16 dot products do, so logits agree: every
// backend's matmul rounds the activations of F16 weights to f16 itself (kernels/), so nothing
// is rounded here.
// With a Q8_0 cache the queries are quantized to q8_0 for the scores (as llama.cpp's are) and
// the values dequantized; the probabilities stay f32 (attend_group_q8_rows, or a backend's
// fused attend_q8).
// Scratch: `scores` holds group * n_pos floats.
template <class Backend>
void attend_group(const KvCache& cache, size_t layer, size_t kv_head, size_t head_dim, size_t group, const float* q,
                  size_t n_pos, float* scores, float* out, size_t first = 0) {
  const float scale = 1.0f / std::sqrt(float(head_dim));
  if (cache.dtype() == DType::Q8_0) {
    const kernels::KeyTiles keys = cache.key_tiles(layer, kv_head, n_pos, first);
    const kernels::MatrixView values = cache.values(layer, kv_head, n_pos, first);
    if constexpr (FusedAttentionQ8<Backend>) {
      if (Backend::attend_q8(keys, values, q, group, scale, scores, out)) return;
    }
    attend_group_q8_rows<Backend>(keys, values, q, group, scale, scores, out);
    return;
  }
  if constexpr (FusedAttention<Backend>) {
    if (Backend::attend(cache.keys(layer, kv_head, head_dim, n_pos, first),
                        cache.values_transposed(layer, kv_head, head_dim, n_pos, first), q, group, scale, scores, out))
      return;
  }
  Backend::matmul(cache.keys(layer, kv_head, head_dim, n_pos, first), q, head_dim, group, scores, n_pos, 0, n_pos);
  for (size_t g = 0; g < group; ++g) {
    float* s = scores + g * n_pos;
    Backend::scale(s, scale, n_pos);
    Backend::softmax(s, n_pos);
  }
  Backend::matmul(cache.values_transposed(layer, kv_head, head_dim, n_pos, first), scores, n_pos, group, out, head_dim,
                  0, head_dim);
}

// One query head: attend_group with a group of one.
template <class Backend>
void attend_head(const KvCache& cache, size_t layer, size_t kv_head, size_t head_dim, const float* q, size_t n_pos,
                 float* scores, float* out, size_t first = 0) {
  attend_group<Backend>(cache, layer, kv_head, head_dim, 1, q, n_pos, scores, out, first);
}

}  // namespace ember
