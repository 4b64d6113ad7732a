// Causal attention of one query head over the cached positions [0, n_pos); the caller
// picks the KV head (grouped-query attention). Both products run as backend matmuls over
// views of the cache.
#pragma once

#include <cmath>
#include <cstddef>

#include "ember/attention/kv_cache.hpp"
#include "ember/core/half.hpp"

namespace ember {

// out(head_dim) = softmax(q·k_j / sqrt(head_dim), first <= j < first + n_pos) · v_j
// With an F16 cache the other operand of each product is taken at f16 precision too (the
// query, then the probabilities), as llama.cpp's f16 dot products do, so logits agree.
// Scratch: `scores` holds n_pos floats, `q_tmp` head_dim floats.
template <class Backend>
void attend_head(const KvCache& cache, size_t layer, size_t kv_head, size_t head_dim, const float* q, size_t n_pos,
                 float* scores, float* q_tmp, float* out, size_t first = 0) {
  const bool f16 = cache.dtype() == DType::F16;
  const float* query = q;
  if (f16) {
    for (size_t d = 0; d < head_dim; ++d) q_tmp[d] = f16_to_f32(f32_to_f16(q[d]));
    query = q_tmp;
  }
  Backend::matmul(cache.keys(layer, kv_head, head_dim, n_pos, first), query, head_dim, 1, scores, n_pos, 0, n_pos);
  Backend::scale(scores, 1.0f / std::sqrt(float(head_dim)), n_pos);
  Backend::softmax(scores, n_pos);
  if (f16)
    for (size_t j = 0; j < n_pos; ++j) scores[j] = f16_to_f32(f32_to_f16(scores[j]));
  Backend::matmul(cache.values_transposed(layer, kv_head, head_dim, n_pos, first), scores, n_pos, 1, out, head_dim, 0,
                  head_dim);
}

}  // namespace ember
