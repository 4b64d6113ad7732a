// Keys and values of every past position, per layer: what attention reads instead of
// recomputing the prompt. Elements are F32, F16 (llama.cpp's default, half the memory) or
// Q8_0 (a quarter of F32's memory, plus a scale per 32; needs head_dim a multiple of 32).
//   F32: keys per KV head, (n_layer, n_head_kv, n_ctx, head_dim): one head's keys are one
//     contiguous run, read as a stream by attention. Values transposed,
//     (n_layer, n_head_kv * head_dim, n_ctx). Both attention products are then ordinary
//     matmuls of the backend over views of the cache.
//   F16: keys per KV head in f16 key tiles of 16 positions (kernels/key_tiles.hpp: one
//     dimension of 16 positions per 32 bytes, what the fused kernels' FMAs take), values
//     transposed as for F32.
//   Q8_0: keys per KV head in key tiles of 16 positions (kernels/key_tiles.hpp), values per
//     KV head as q8_0 rows, (n_layer, n_head_kv, n_ctx, head_dim). A q8_0 block spans 32
//     elements of one row, so values are not transposed: a position's values are written
//     whole, once (llama.cpp, too, keeps quantized values untransposed).
// A Session with several sequences gives each a contiguous slice of positions
// [first, first + its n_ctx); `n_ctx` here is the total. Saved states keep one layout
// whatever this one is: per position, the key row of all heads (read_rows / write_rows).
#pragma once

#include <cassert>
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <new>

#include "ember/core/half.hpp"
#include "ember/core/large_buffer.hpp"
#include "ember/kernels/key_tiles.hpp"
#include "ember/kernels/matrix.hpp"
#include "ember/quant/activations.hpp"
#include "ember/quant/dequantize.hpp"
#include "ember/tensor/dtype.hpp"

namespace ember {

class KvCache {
 public:
  KvCache() = default;
  // n_embd_kv = n_head_kv * head_dim; head_dim > 0, a multiple of 32 for Q8_0.
  KvCache(DType dtype, size_t n_layer, size_t n_ctx, size_t n_embd_kv, size_t head_dim)
      : dtype_(dtype),
        elem_(dtype == DType::F16 ? 2 : 4),
        n_layer_(n_layer),
        n_ctx_(n_ctx),
        n_embd_kv_(n_embd_kv),
        head_dim_(head_dim) {
    assert(head_dim > 0 && n_embd_kv % head_dim == 0);
    if (dtype_ == DType::Q8_0) {
      assert(head_dim % 32 == 0);
      tile_bytes_ = kernels::KeyTiles::tile_bytes(head_dim);
      k_ = allocate(n_layer * n_head_kv() * n_tiles() * tile_bytes_ + 64);
      v_ = allocate(n_layer * n_head_kv() * n_ctx * row_q8());
    } else if (dtype_ == DType::F16) {
      tile_bytes_ = kernels::KeyTilesF16::tile_bytes(head_dim);
      k_ = allocate(n_layer * n_head_kv() * n_tiles() * tile_bytes_ + 64);
      v_ = allocate(n_layer * n_ctx * n_embd_kv * elem_);
    } else {
      k_ = allocate(n_layer * n_ctx * n_embd_kv * elem_);
      v_ = allocate(n_layer * n_ctx * n_embd_kv * elem_);
    }
  }
  KvCache(KvCache&&) = default;
  KvCache& operator=(KvCache&&) = default;
  KvCache(const KvCache&) = delete;  // the key tiles' alignment is an offset into k_
  KvCache& operator=(const KvCache&) = delete;

  static size_t bytes_needed(DType dtype, size_t n_layer, size_t n_ctx, size_t n_embd_kv) {
    if (dtype == DType::Q8_0) return 2 * n_layer * n_ctx * (n_embd_kv / 32 * sizeof(quant::BlockQ8_0));
    return 2 * n_layer * n_ctx * n_embd_kv * (dtype == DType::F16 ? 2 : 4);
  }

  DType dtype() const { return dtype_; }
  size_t n_ctx() const { return n_ctx_; }
  size_t bytes() const { return k_.size() + v_.size(); }

  // Writes the key and value rows of one position.
  void store(size_t layer, size_t pos, const float* key, const float* value) {
    if (dtype_ == DType::Q8_0) {
      quant::BlockQ8_0 row[kMaxBlocks];
      for (size_t h = 0; h < n_head_kv(); ++h) {
        quant::quantize_activations(key + h * head_dim_, row, head_dim_);
        kernels::KeyTiles::put_row(head_tiles(layer, h), head_dim_, pos, row);
        quant::quantize_activations(value + h * head_dim_, value_row(layer, h, pos), head_dim_);
      }
      return;
    }
    std::byte* v_col = v_.data() + (layer * n_embd_kv_ * n_ctx_ + pos) * elem_;
    for (size_t i = 0; i < n_embd_kv_; ++i) {
      put(key_at(layer, pos, i), key[i]);
      put(v_col + i * n_ctx_ * elem_, value[i]);
    }
  }

  // F32: the keys of one KV head for rows [first, first + n_pos): (n_pos, head_dim).
  kernels::MatrixView keys(size_t layer, size_t kv_head, size_t head_dim, size_t n_pos, size_t first = 0) const {
    assert(head_dim == head_dim_ && dtype_ == DType::F32);
    const std::byte* p = k_.data() + (((layer * n_head_kv() + kv_head) * n_ctx_ + first) * head_dim_) * elem_;
    return {dtype_, p, n_pos, head_dim, head_dim_ * elem_};
  }
  // F32 / F16: the values of one KV head, transposed: (head_dim, n_pos).
  kernels::MatrixView values_transposed(size_t layer, size_t kv_head, size_t head_dim, size_t n_pos,
                                        size_t first = 0) const {
    assert(dtype_ != DType::Q8_0);
    const std::byte* p = v_.data() + ((layer * n_embd_kv_ + kv_head * head_dim) * n_ctx_ + first) * elem_;
    return {dtype_, p, head_dim, n_pos, n_ctx_ * elem_};
  }
  // F16: the keys of one KV head for rows [first, first + n_pos), as f16 key tiles.
  kernels::KeyTilesF16 key_tiles_f16(size_t layer, size_t kv_head, size_t n_pos, size_t first = 0) const {
    assert(dtype_ == DType::F16);
    return {const_cast<KvCache*>(this)->head_tiles(layer, kv_head), head_dim_, first, n_pos};
  }
  // Q8_0: the keys of one KV head for rows [first, first + n_pos), as key tiles.
  kernels::KeyTiles key_tiles(size_t layer, size_t kv_head, size_t n_pos, size_t first = 0) const {
    assert(dtype_ == DType::Q8_0);
    return {const_cast<KvCache*>(this)->head_tiles(layer, kv_head), head_dim_, first, n_pos};
  }
  // Q8_0: the values of one KV head for rows [first, first + n_pos): (n_pos, head_dim).
  kernels::MatrixView values(size_t layer, size_t kv_head, size_t n_pos, size_t first = 0) const {
    assert(dtype_ == DType::Q8_0);
    return {DType::Q8_0, const_cast<KvCache*>(this)->value_row(layer, kv_head, first), n_pos, head_dim_, row_q8()};
  }

  size_t element_bytes() const { return elem_; }
  size_t n_layer() const { return n_layer_; }
  size_t n_embd_kv() const { return n_embd_kv_; }

  // Copies rows [src, src + n) to [dst, dst + n) in every layer; the ranges may overlap.
  void copy_rows(size_t src, size_t dst, size_t n) {
    if (n == 0 || src == dst) return;
    const size_t L = n_layer(), H = n_head_kv();
    if (dtype_ == DType::Q8_0) {
      quant::BlockQ8_0 row[kMaxBlocks];
      for (size_t l = 0; l < L; ++l)
        for (size_t h = 0; h < H; ++h) {
          std::byte* tiles = head_tiles(l, h);
          for (size_t i = 0; i < n; ++i) {  // in the order that reads each row before it is overwritten
            const size_t r = dst < src ? i : n - 1 - i;
            kernels::KeyTiles::get_row(tiles, head_dim_, src + r, row);
            kernels::KeyTiles::put_row(tiles, head_dim_, dst + r, row);
          }
          std::memmove(value_row(l, h, dst), value_row(l, h, src), n * row_q8());
        }
      return;
    }
    const size_t key_row = head_dim_ * elem_;
    for (size_t l = 0; l < L; ++l) {
      if (dtype_ == DType::F16) {
        for (size_t i = 0; i < n; ++i) {  // in the order that reads each row before it is overwritten
          const size_t r = dst < src ? i : n - 1 - i;
          for (size_t e = 0; e < n_embd_kv_; ++e) std::memcpy(key_at(l, dst + r, e), key_at(l, src + r, e), 2);
        }
      } else {
        for (size_t h = 0; h < H; ++h) {
          std::byte* head = k_.data() + (l * H + h) * n_ctx_ * key_row;
          std::memmove(head + dst * key_row, head + src * key_row, n * key_row);
        }
      }
      for (size_t i = 0; i < n_embd_kv_; ++i) {
        std::byte* col = v_.data() + (l * n_embd_kv_ + i) * n_ctx_ * elem_;
        std::memmove(col + dst * elem_, col + src * elem_, n * elem_);
      }
    }
  }

  // The key row of one position as floats, and back: for re-rotating cached keys (a Q8_0
  // key is dequantized, rotated and quantized again, as llama.cpp does).
  void load_key(size_t layer, size_t pos, float* key) const {
    if (dtype_ == DType::Q8_0) {
      quant::BlockQ8_0 row[kMaxBlocks];
      for (size_t h = 0; h < n_head_kv(); ++h) {
        kernels::KeyTiles::get_row(const_cast<KvCache*>(this)->head_tiles(layer, h), head_dim_, pos, row);
        (void)quant::dequantize_row(DType::Q8_0, row, key + h * head_dim_, head_dim_);
      }
      return;
    }
    for (size_t i = 0; i < n_embd_kv_; ++i) key[i] = get(key_at(layer, pos, i));
  }
  void store_key(size_t layer, size_t pos, const float* key) {
    if (dtype_ == DType::Q8_0) {
      quant::BlockQ8_0 row[kMaxBlocks];
      for (size_t h = 0; h < n_head_kv(); ++h) {
        quant::quantize_activations(key + h * head_dim_, row, head_dim_);
        kernels::KeyTiles::put_row(head_tiles(layer, h), head_dim_, pos, row);
      }
      return;
    }
    for (size_t i = 0; i < n_embd_kv_; ++i) put(key_at(layer, pos, i), key[i]);
  }

  // Raw bytes of rows [first, first + n) of one layer, for saving and restoring a state:
  // keys as n rows of n_embd_kv elements (all heads of a position); values as n_embd_kv
  // runs of n elements (F32 / F16) or as n rows of n_embd_kv (Q8_0, in q8_0 blocks).
  void read_rows(size_t layer, size_t first, size_t n, std::byte* out) const {
    if (n == 0) return;  // `out` may then be null, which memcpy must not see
    auto* self = const_cast<KvCache*>(this);
    if (dtype_ == DType::Q8_0) {
      for (size_t r = first; r < first + n; ++r)
        for (size_t h = 0; h < n_head_kv(); ++h, out += row_q8())
          kernels::KeyTiles::get_row(self->head_tiles(layer, h), head_dim_, r,
                                     reinterpret_cast<quant::BlockQ8_0*>(out));
      for (size_t r = first; r < first + n; ++r)
        for (size_t h = 0; h < n_head_kv(); ++h, out += row_q8())
          std::memcpy(out, self->value_row(layer, h, r), row_q8());
      return;
    }
    for (size_t r = first; r < first + n; ++r)
      for (size_t i = 0; i < n_embd_kv_; ++i, out += elem_) std::memcpy(out, key_at(layer, r, i), elem_);
    for (size_t i = 0; i < n_embd_kv_; ++i, out += n * elem_)
      std::memcpy(out, v_.data() + ((layer * n_embd_kv_ + i) * n_ctx_ + first) * elem_, n * elem_);
  }
  void write_rows(size_t layer, size_t first, size_t n, const std::byte* in) {
    if (n == 0) return;
    if (dtype_ == DType::Q8_0) {
      quant::BlockQ8_0 row[kMaxBlocks];
      for (size_t r = first; r < first + n; ++r)
        for (size_t h = 0; h < n_head_kv(); ++h, in += row_q8()) {
          std::memcpy(static_cast<void*>(row), in, row_q8());
          kernels::KeyTiles::put_row(head_tiles(layer, h), head_dim_, r, row);
        }
      for (size_t r = first; r < first + n; ++r)
        for (size_t h = 0; h < n_head_kv(); ++h, in += row_q8()) std::memcpy(value_row(layer, h, r), in, row_q8());
      return;
    }
    for (size_t r = first; r < first + n; ++r)
      for (size_t i = 0; i < n_embd_kv_; ++i, in += elem_) std::memcpy(key_at(layer, r, i), in, elem_);
    for (size_t i = 0; i < n_embd_kv_; ++i, in += n * elem_)
      std::memcpy(v_.data() + ((layer * n_embd_kv_ + i) * n_ctx_ + first) * elem_, in, n * elem_);
  }
  // Keys and values of one position, one layer.
  size_t row_bytes() const { return dtype_ == DType::Q8_0 ? 2 * n_head_kv() * row_q8() : 2 * n_embd_kv_ * elem_; }

  static constexpr size_t kMaxBlocks = kernels::KeyTiles::kMaxBlocks;  // q8_0 blocks per head

 private:
  size_t n_head_kv() const { return head_dim_ ? n_embd_kv_ / head_dim_ : 0; }
  size_t n_tiles() const { return (n_ctx_ + kernels::KeyTiles::kPos - 1) / kernels::KeyTiles::kPos; }
  size_t row_q8() const { return head_dim_ / 32 * sizeof(quant::BlockQ8_0); }  // one head's q8_0 row
  // Q8_0 / F16: the first tile of one head's keys, 64-byte aligned within k_.
  std::byte* head_tiles(size_t layer, size_t h) {
    const auto base = reinterpret_cast<uintptr_t>(k_.data());
    std::byte* aligned = k_.data() + ((base + 63) / 64 * 64 - base);
    return aligned + (layer * n_head_kv() + h) * n_tiles() * tile_bytes_;
  }
  quant::BlockQ8_0* value_row(size_t layer, size_t h, size_t pos) {
    return reinterpret_cast<quant::BlockQ8_0*>(v_.data() + ((layer * n_head_kv() + h) * n_ctx_ + pos) * row_q8());
  }
  // Element i (of n_embd_kv) of the key of position `pos` (F32 / F16).
  std::byte* key_at(size_t layer, size_t pos, size_t i) {
    if (dtype_ == DType::F16)
      return kernels::KeyTilesF16::at(head_tiles(layer, i / head_dim_), head_dim_, pos, i % head_dim_);
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
  size_t n_layer_ = 0;
  size_t n_ctx_ = 0;
  size_t n_embd_kv_ = 0;
  size_t head_dim_ = 0;
  size_t tile_bytes_ = 0;
  // Zero-filled, in huge pages where the OS gives them: decode at depth reads every layer's
  // cache once per token, and in 4 KiB pages that pass most likely missed the TLB on each page
  // (inferred: no counters on the machine that measured it; attention_bench --q8 --layers=22
  // 4096, alternating: 374-404 -> 297-317 us per layer; f16 821-847 -> 759-803).
  static LargeBuffer allocate(size_t bytes) {
    LargeBuffer b(bytes);
    if (bytes && !b.data()) {
#if defined(__cpp_exceptions)
      throw std::bad_alloc();  // as the std::vector it replaces
#else
      std::abort();
#endif
    }
    return b;
  }

  LargeBuffer k_;
  LargeBuffer v_;
};

}  // namespace ember
