// Causal attention of the query heads of one KV head over the cached positions [0, n_pos)
// (grouped-query attention). Both products run as backend matmuls over views of the cache,
// or as one fused kernel where the backend has one; long contexts in chunks of positions,
// merged by their log-sum-exps (the unit the session's threads split a decode step by).
#pragma once

#include <algorithm>
#include <cmath>
#include <concepts>
#include <cstddef>
#include <cstring>
#include <vector>

#include "ember/attention/kv_cache.hpp"
#include "ember/core/half.hpp"
#include "ember/kernels/key_tiles.hpp"
#include "ember/quant/dequantize.hpp"

namespace ember {

// A backend may compute a whole group in one kernel (Highway::attend); others take the
// matmul path of attend_group.
template <class Backend>
concept FusedAttention = requires(const kernels::KeyTilesF16& k, const kernels::MatrixView& m, const float* q,
                                  float* s) {
  { Backend::attend(k, m, q, size_t{1}, 1.0f, s, s, s) } -> std::same_as<bool>;
};
template <class Backend>
concept FusedAttentionQ8 = requires(const kernels::KeyTiles& k, const kernels::MatrixView& m, const float* q,
                                    float* s) {
  { Backend::attend_q8(k, m, q, size_t{1}, 1.0f, s, s, s) } -> std::same_as<bool>;
};

// The log-sum-exp of n scaled scores, max + log(sum of exp(x - max)), in double: the paths
// without a fused kernel take it before their softmax.
inline float log_sum_exp(const float* x, size_t n) {
  float mx = -HUGE_VALF;
  for (size_t j = 0; j < n; ++j) mx = std::max(mx, x[j]);
  double sum = 0;
  for (size_t j = 0; j < n; ++j) sum += std::exp(double(x[j]) - mx);
  return float(double(mx) + std::log(sum));
}

// scores[g * n_pos + j - first] = q_g . k_j for the keys of [first, first + n_pos) held in
// tiles of 16 positions, as backend matmuls of a tile's keys at a time: `rows(lo, hi)` reads
// the tile's positions [lo, hi) back as rows and returns them as a matrix.
template <class Backend, class Rows>
void tile_scores_by_matmul(size_t first, size_t n_pos, size_t head_dim, const float* q, size_t group, float* scores,
                           Rows rows) {
  constexpr size_t kPos = kernels::KeyTiles::kPos;
  float tile_scores[kPos * 16];
  for (size_t j0 = first / kPos * kPos; j0 < first + n_pos; j0 += kPos) {
    const size_t lo = std::max(j0, first), hi = std::min(j0 + kPos, first + n_pos);
    const kernels::MatrixView view = rows(lo, hi);
    for (size_t g0 = 0; g0 < group; g0 += 16) {  // tile_scores holds 16 heads
      const size_t ng = std::min<size_t>(16, group - g0);
      Backend::matmul(view, q + g0 * head_dim, head_dim, ng, tile_scores, kPos, 0, hi - lo);
      for (size_t g = 0; g < ng; ++g)
        std::memcpy(scores + (g0 + g) * n_pos + (lo - first), tile_scores + g * kPos, (hi - lo) * sizeof(float));
    }
  }
}

// attend_group over a Q8_0 cache without a fused kernel: the scores as backend matmuls of
// 16 keys at a time (a tile's rows read back as q8_0 blocks: the queries are quantized to
// q8_0 by the matmul, as llama.cpp's q8_0 K cache does), then each value row dequantized and
// added into every head's output (Backend::axpy), in position order.
template <class Backend>
void attend_group_q8_rows(const kernels::KeyTiles& keys, const kernels::MatrixView& values, const float* q,
                          size_t group, float scale, float* scores, float* out, float* lse = nullptr) {
  constexpr size_t kPos = kernels::KeyTiles::kPos;
  const size_t hd = keys.head_dim, n_pos = keys.n_pos;
  quant::BlockQ8_0 rows[kPos * KvCache::kMaxBlocks];
  tile_scores_by_matmul<Backend>(keys.first, n_pos, hd, q, group, scores, [&](size_t lo, size_t hi) {
    for (size_t p = lo; p < hi; ++p) kernels::KeyTiles::get_row(keys.data, hd, p, rows + (p - lo) * (hd / 32));
    return kernels::make_matrix_view(DType::Q8_0, rows, hi - lo, hd);
  });
  for (size_t g = 0; g < group; ++g) {
    Backend::scale(scores + g * n_pos, scale, n_pos);
    if (lse) lse[g] = log_sum_exp(scores + g * n_pos, n_pos);
    Backend::softmax(scores + g * n_pos, n_pos);
  }
  std::fill(out, out + group * hd, 0.0f);
  float v[32 * KvCache::kMaxBlocks];
  for (size_t j = 0; j < n_pos; ++j) {
    (void)quant::dequantize_row(DType::Q8_0, values.row(j), v, hd);
    for (size_t g = 0; g < group; ++g) Backend::axpy(scores[g * n_pos + j], v, out + g * hd, hd);
  }
}

// attend_group over the positions [first, first + n_pos) in one piece: the scores, their
// softmax and the weighted values, as one fused kernel where the backend has one. `lse`,
// where not null, gets each head's log-sum-exp of its scaled scores (merge_attention_chunks).
// Scratch: `scores` holds group * n_pos floats.
template <class Backend>
void attend_range(const KvCache& cache, size_t layer, size_t kv_head, size_t head_dim, size_t group, const float* q,
                  size_t n_pos, float* scores, float* out, size_t first, float* lse) {
  const float scale = 1.0f / std::sqrt(float(head_dim));
  if (cache.dtype() == DType::Q8_0) {
    const kernels::KeyTiles keys = cache.key_tiles(layer, kv_head, n_pos, first);
    const kernels::MatrixView values = cache.values(layer, kv_head, n_pos, first);
    if constexpr (FusedAttentionQ8<Backend>) {
      if (Backend::attend_q8(keys, values, q, group, scale, scores, out, lse)) return;
    }
    attend_group_q8_rows<Backend>(keys, values, q, group, scale, scores, out, lse);
    return;
  }
  const kernels::MatrixView values_t = cache.values_transposed(layer, kv_head, head_dim, n_pos, first);
  if (cache.dtype() == DType::F16) {
    const kernels::KeyTilesF16 keys = cache.key_tiles_f16(layer, kv_head, n_pos, first);
    if constexpr (FusedAttention<Backend>) {
      if (Backend::attend(keys, values_t, q, group, scale, scores, out, lse)) return;
    }
    // The matmul path: the keys read back as f16 rows a tile at a time (on the stack up to
    // head_dim 512).
    constexpr size_t kPos = kernels::KeyTilesF16::kPos, kStackDim = 512;
    uint16_t stack_rows[kPos * kStackDim];
    std::vector<uint16_t> heap_rows(head_dim > kStackDim ? kPos * head_dim : 0);
    uint16_t* rows = head_dim > kStackDim ? heap_rows.data() : stack_rows;
    tile_scores_by_matmul<Backend>(first, n_pos, head_dim, q, group, scores, [&](size_t lo, size_t hi) {
      for (size_t p = lo; p < hi; ++p)
        kernels::KeyTilesF16::get_row(keys.data, head_dim, p, rows + (p - lo) * head_dim);
      return kernels::make_matrix_view(DType::F16, rows, hi - lo, head_dim);
    });
  } else {
    Backend::matmul(cache.keys(layer, kv_head, head_dim, n_pos, first), q, head_dim, group, scores, n_pos, 0, n_pos);
  }
  for (size_t g = 0; g < group; ++g) {
    float* s = scores + g * n_pos;
    Backend::scale(s, scale, n_pos);
    if (lse) lse[g] = log_sum_exp(s, n_pos);
    Backend::softmax(s, n_pos);
  }
  Backend::matmul(values_t, scores, n_pos, group, out, head_dim, 0, head_dim);
}

// Long contexts are attended in chunks of kAttentionChunk positions, each normalized on its
// own, then merged by their log-sum-exps (merge_attention_chunks): the chunks of one query
// can run on different threads (the KV range split over threads, when a decode step has
// fewer (token, KV head) pairs than threads), and since attend_group merges the same chunks
// in the same order, the bits do not depend on how the work was split.
inline constexpr size_t kAttentionChunk = 1024;

constexpr size_t attention_chunks(size_t n_pos) { return (n_pos + kAttentionChunk - 1) / kAttentionChunk; }

// The scratch attend_group needs, in floats: the scores of one chunk, and where there are
// several, each chunk's outputs and log-sum-exps.
constexpr size_t attention_scratch_floats(size_t group, size_t head_dim, size_t n_pos) {
  const size_t n_chunk = attention_chunks(n_pos);
  return group * std::min(n_pos, kAttentionChunk) + (n_chunk > 1 ? n_chunk * group * (head_dim + 1) : 0);
}

// Chunk c of attend_group: the positions [first + c * kAttentionChunk, ...) of the n_pos,
// `out` normalized over them alone, `lse` (group floats) their log-sum-exps.
// Scratch: `scores` holds group * kAttentionChunk floats.
template <class Backend>
void attend_chunk(const KvCache& cache, size_t layer, size_t kv_head, size_t head_dim, size_t group, const float* q,
                  size_t n_pos, size_t c, float* scores, float* out, float* lse, size_t first = 0) {
  const size_t begin = c * kAttentionChunk, n = std::min(kAttentionChunk, n_pos - begin);
  attend_range<Backend>(cache, layer, kv_head, head_dim, group, q, n, scores, out, first + begin, lse);
}

// out (group, head_dim) = the chunks' outputs `outs` (n_chunk, group, head_dim) weighted by
// exp(lse - the largest lse) and divided by those weights' sum, per head, in chunk order.
inline void merge_attention_chunks(size_t n_chunk, size_t group, size_t head_dim, const float* outs, const float* lses,
                                   float* out) {
  for (size_t g = 0; g < group; ++g) {
    float mx = -HUGE_VALF;
    for (size_t c = 0; c < n_chunk; ++c) mx = std::max(mx, lses[c * group + g]);
    double total = 0;
    for (size_t c = 0; c < n_chunk; ++c) total += std::exp(double(lses[c * group + g]) - mx);
    for (size_t i0 = 0; i0 < head_dim; i0 += 256) {
      const size_t n = std::min<size_t>(256, head_dim - i0);
      double acc[256] = {};
      for (size_t c = 0; c < n_chunk; ++c) {
        const double w = std::exp(double(lses[c * group + g]) - mx) / total;
        const float* o = outs + (c * group + g) * head_dim + i0;
        for (size_t i = 0; i < n; ++i) acc[i] += w * o[i];
      }
      for (size_t i = 0; i < n; ++i) out[g * head_dim + i0 + i] = float(acc[i]);
    }
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
// is rounded here. The f16 keys sit in key tiles (kv_cache.hpp): the matmul path reads a
// tile's keys back as rows, 16 positions per matmul.
// With a Q8_0 cache the queries are quantized to q8_0 for the scores (as llama.cpp's are) and
// the values dequantized; the probabilities stay f32 (attend_group_q8_rows, or a backend's
// fused attend_q8).
// More than kAttentionChunk positions go in chunks, merged (attend_chunk, merge_attention_chunks).
// Scratch: `scores` holds attention_scratch_floats(group, head_dim, n_pos) floats.
template <class Backend>
void attend_group(const KvCache& cache, size_t layer, size_t kv_head, size_t head_dim, size_t group, const float* q,
                  size_t n_pos, float* scores, float* out, size_t first = 0) {
  const size_t n_chunk = attention_chunks(n_pos);
  if (n_chunk <= 1) {
    attend_range<Backend>(cache, layer, kv_head, head_dim, group, q, n_pos, scores, out, first, nullptr);
    return;
  }
  float* outs = scores + group * kAttentionChunk;
  float* lses = outs + n_chunk * group * head_dim;
  for (size_t c = 0; c < n_chunk; ++c)
    attend_chunk<Backend>(cache, layer, kv_head, head_dim, group, q, n_pos, c, scores, outs + c * group * head_dim,
                          lses + c * group, first);
  merge_attention_chunks(n_chunk, group, head_dim, outs, lses, out);
}

// One query head: attend_group with a group of one.
template <class Backend>
void attend_head(const KvCache& cache, size_t layer, size_t kv_head, size_t head_dim, const float* q, size_t n_pos,
                 float* scores, float* out, size_t first = 0) {
  attend_group<Backend>(cache, layer, kv_head, head_dim, 1, q, n_pos, scores, out, first);
}

}  // namespace ember
