// Keys and values of every past position, per layer: what attention reads instead of
// recomputing the prompt. Elements are F32 or F16 (llama.cpp's default, half the memory).
// Keys are stored per KV head, (n_layer, n_head_kv, n_ctx, head_dim): one head's keys are one
// contiguous run, read as a stream by attention. Values are stored transposed,
// (n_layer, n_head_kv * head_dim, n_ctx). Both attention products are then ordinary matmuls
// of the backend over views of the cache (or one fused kernel, Highway::attend). A Session
// with several sequences gives each a contiguous slice of positions [first, first + its n_ctx);
// `n_ctx` here is the total. Saved states keep one layout whatever this one is: per position,
// the key row of all heads (read_rows / write_rows).
#pragma once

#include <cassert>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <vector>

#include "ember/core/half.hpp"
#include "ember/kernels/matrix.hpp"
#include "ember/tensor/dtype.hpp"

namespace ember {

class KvCache {
 public:
  KvCache() = default;
  // n_embd_kv = n_head_kv * head_dim; head_dim > 0.
  KvCache(DType dtype, size_t n_layer, size_t n_ctx, size_t n_embd_kv, size_t head_dim)
      : dtype_(dtype),
        elem_(dtype == DType::F16 ? 2 : 4),
        n_ctx_(n_ctx),
        n_embd_kv_(n_embd_kv),
        head_dim_(head_dim),
        k_(n_layer * n_ctx * n_embd_kv * elem_),
        v_(n_layer * n_ctx * n_embd_kv * elem_) {
    assert(head_dim > 0 && n_embd_kv % head_dim == 0);
  }

  static size_t bytes_needed(DType dtype, size_t n_layer, size_t n_ctx, size_t n_embd_kv) {
    return 2 * n_layer * n_ctx * n_embd_kv * (dtype == DType::F16 ? 2 : 4);
  }

  DType dtype() const { return dtype_; }
  size_t n_ctx() const { return n_ctx_; }
  size_t bytes() const { return k_.size() + v_.size(); }

  // Writes the key and value rows of one position.
  void store(size_t layer, size_t pos, const float* key, const float* value) {
    std::byte* v_col = v_.data() + (layer * n_embd_kv_ * n_ctx_ + pos) * elem_;
    for (size_t i = 0; i < n_embd_kv_; ++i) {
      put(key_at(layer, pos, i), key[i]);
      put(v_col + i * n_ctx_ * elem_, value[i]);
    }
  }

  // The keys of one KV head for rows [first, first + n_pos): (n_pos, head_dim).
  kernels::MatrixView keys(size_t layer, size_t kv_head, size_t head_dim, size_t n_pos, size_t first = 0) const {
    assert(head_dim == head_dim_);
    const std::byte* p = k_.data() + (((layer * n_head_kv() + kv_head) * n_ctx_ + first) * head_dim_) * elem_;
    return {dtype_, p, n_pos, head_dim, head_dim_ * elem_};
  }
  // The values of one KV head, transposed: (head_dim, n_pos).
  kernels::MatrixView values_transposed(size_t layer, size_t kv_head, size_t head_dim, size_t n_pos,
                                        size_t first = 0) const {
    const std::byte* p = v_.data() + ((layer * n_embd_kv_ + kv_head * head_dim) * n_ctx_ + first) * elem_;
    return {dtype_, p, head_dim, n_pos, n_ctx_ * elem_};
  }

  size_t element_bytes() const { return elem_; }
  size_t n_layer() const { return n_ctx_ && n_embd_kv_ ? k_.size() / (n_ctx_ * n_embd_kv_ * elem_) : 0; }
  size_t n_embd_kv() const { return n_embd_kv_; }

  // Copies rows [src, src + n) to [dst, dst + n) in every layer; the ranges may overlap.
  void copy_rows(size_t src, size_t dst, size_t n) {
    if (n == 0 || src == dst) return;
    const size_t L = n_layer(), H = n_head_kv(), key_row = head_dim_ * elem_;
    for (size_t l = 0; l < L; ++l) {
      for (size_t h = 0; h < H; ++h) {
        std::byte* head = k_.data() + (l * H + h) * n_ctx_ * key_row;
        std::memmove(head + dst * key_row, head + src * key_row, n * key_row);
      }
      for (size_t i = 0; i < n_embd_kv_; ++i) {
        std::byte* col = v_.data() + (l * n_embd_kv_ + i) * n_ctx_ * elem_;
        std::memmove(col + dst * elem_, col + src * elem_, n * elem_);
      }
    }
  }

  // The key row of one position as floats, and back: for re-rotating cached keys.
  void load_key(size_t layer, size_t pos, float* key) const {
    for (size_t i = 0; i < n_embd_kv_; ++i) key[i] = get(key_at(layer, pos, i));
  }
  void store_key(size_t layer, size_t pos, const float* key) {
    for (size_t i = 0; i < n_embd_kv_; ++i) put(key_at(layer, pos, i), key[i]);
  }

  // Raw bytes of rows [first, first + n) of one layer, for saving and restoring a state:
  // keys as n rows of n_embd_kv elements (all heads of a position), values as n_embd_kv
  // runs of n elements.
  void read_rows(size_t layer, size_t first, size_t n, std::byte* out) const {
    if (n == 0) return;  // `out` may then be null, which memcpy must not see
    const size_t key_row = head_dim_ * elem_;
    for (size_t r = first; r < first + n; ++r)
      for (size_t h = 0; h < n_head_kv(); ++h, out += key_row)
        std::memcpy(out, key_at(layer, r, h * head_dim_), key_row);
    for (size_t i = 0; i < n_embd_kv_; ++i, out += n * elem_)
      std::memcpy(out, v_.data() + ((layer * n_embd_kv_ + i) * n_ctx_ + first) * elem_, n * elem_);
  }
  void write_rows(size_t layer, size_t first, size_t n, const std::byte* in) {
    if (n == 0) return;
    const size_t key_row = head_dim_ * elem_;
    for (size_t r = first; r < first + n; ++r)
      for (size_t h = 0; h < n_head_kv(); ++h, in += key_row) std::memcpy(key_at(layer, r, h * head_dim_), in, key_row);
    for (size_t i = 0; i < n_embd_kv_; ++i, in += n * elem_)
      std::memcpy(v_.data() + ((layer * n_embd_kv_ + i) * n_ctx_ + first) * elem_, in, n * elem_);
  }
  size_t row_bytes() const { return 2 * n_embd_kv_ * elem_; }  // keys and values of one position, one layer

 private:
  size_t n_head_kv() const { return head_dim_ ? n_embd_kv_ / head_dim_ : 0; }
  // Element i (of n_embd_kv) of the key of position `pos`.
  std::byte* key_at(size_t layer, size_t pos, size_t i) {
    return k_.data() + (((layer * n_head_kv() + i / head_dim_) * n_ctx_ + pos) * head_dim_ + i % head_dim_) * elem_;
  }
  const std::byte* key_at(size_t layer, size_t pos, size_t i) const {
    return const_cast<KvCache*>(this)->key_at(layer, pos, i);
  }

  float get(const std::byte* src) const {
    if (dtype_ == DType::F16) {
      uint16_t h;
      std::memcpy(&h, src, 2);
      return f16_to_f32(h);
    }
    float x;
    std::memcpy(&x, src, 4);
    return x;
  }
  void put(std::byte* dst, float x) const {
    if (dtype_ == DType::F16) {
      const uint16_t h = f32_to_f16(x);
      std::memcpy(dst, &h, 2);
    } else {
      std::memcpy(dst, &x, 4);
    }
  }

  DType dtype_ = DType::F32;
  size_t elem_ = 4;
  size_t n_ctx_ = 0;
  size_t n_embd_kv_ = 0;
  size_t head_dim_ = 0;
  std::vector<std::byte> k_;
  std::vector<std::byte> v_;
};

}  // namespace ember
