// Causal attention of the query heads of one KV head over the cached positions [0, n_pos)
// (grouped-query attention). Both products run as backend matmuls over
// views of the cache.
#pragma once

#include <cmath>
#include <concepts>
#include <cstddef>

#include "ember/attention/kv_cache.hpp"
#include "ember/core/half.hpp"

namespace ember {

// A backend may compute a whole group in one kernel (Highway::attend); others take the
// matmul path of attend_group.
template <class Backend>
concept FusedAttention = requires(const kernels::MatrixView& m, const float* q, float* s) {
  { Backend::attend(m, m, q, size_t{1}, 1.0f, s, s) } -> std::same_as<bool>;
};

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
// Scratch: `scores` holds group * n_pos floats.
template <class Backend>
void attend_group(const KvCache& cache, size_t layer, size_t kv_head, size_t head_dim, size_t group, const float* q,
                  size_t n_pos, float* scores, float* out, size_t first = 0) {
  const float scale = 1.0f / std::sqrt(float(head_dim));
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
