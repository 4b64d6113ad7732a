// The keys of a q8_0 or f16 KV cache as the kernels see them: "key tiles".
// attention/kv_cache.hpp writes these layouts; attention/attention.hpp and the backends' fused
// attention kernels (attend_q8, attend) read them.
//
// q8_0 (KeyTiles):
// One KV head's keys are a run of tiles of kPos = 16 positions (tile t holds positions
// 16t .. 16t + 15 of the cache). For head_dim = 32 * nb, a tile is
//   scales: [nb][16] f16          each position's q8_0 block scale d, padded to 64 bytes
//   quants: [nb][8][16][4] int8   block b, dimensions 4c .. 4c + 3 of it, position, dimension
// so one 64-byte load holds 4 dimensions of all 16 positions: one vpdpbusd then adds 4
// products to 16 dot products at once, and nothing is summed across lanes per key. The
// values are the q8_0 block's (ggml's quantize_row_q8_0: d = amax / 127 as f16, q = x / d
// rounded), so a tile row read back is a plain BlockQ8_0 row (get_row).
//
// f16 (KeyTilesF16): tiles of kPos = 16 positions too, each
//   [head_dim][16] f16            dimension, position
// so one 32-byte load holds one dimension of all 16 positions: a query's 16 scores are
// head_dim FMAs of its broadcast elements into the tile's vectors, with no sum across lanes.
#pragma once

#include <cstddef>
#include <cstdint>
#include <cstring>

#include "ember/quant/blocks.hpp"

namespace ember::kernels {

struct KeyTiles {
  static constexpr size_t kPos = 16;
  static constexpr size_t kMaxBlocks = 16;  // head_dim <= 512 (the kernels' stack arrays)

  const std::byte* data = nullptr;  // tile 0 of the head (64-byte aligned)
  size_t head_dim = 0;              // a multiple of 32
  size_t first = 0, n_pos = 0;      // the positions attended: [first, first + n_pos)

  static constexpr size_t n_block(size_t head_dim) { return head_dim / 32; }
  static constexpr size_t scale_bytes(size_t head_dim) { return (n_block(head_dim) * kPos * 2 + 63) / 64 * 64; }
  static constexpr size_t tile_bytes(size_t head_dim) { return scale_bytes(head_dim) + head_dim * kPos; }

  // Where position `pos`'s block b lives in a head's tiles starting at `tiles`.
  static std::byte* scale_at(std::byte* tiles, size_t head_dim, size_t pos, size_t b) {
    return tiles + pos / kPos * tile_bytes(head_dim) + (b * kPos + pos % kPos) * 2;
  }
  static std::byte* quants_at(std::byte* tiles, size_t head_dim, size_t pos, size_t b) {
    return tiles + pos / kPos * tile_bytes(head_dim) + scale_bytes(head_dim) + b * 32 * kPos + (pos % kPos) * 4;
  }

  // The key of position `pos` as q8_0 blocks (head_dim / 32 of them), out of / into the tiles.
  static void get_row(const std::byte* tiles, size_t head_dim, size_t pos, quant::BlockQ8_0* out) {
    auto* t = const_cast<std::byte*>(tiles);
    for (size_t b = 0; b < n_block(head_dim); ++b) {
      std::memcpy(&out[b].d_f16, scale_at(t, head_dim, pos, b), 2);
      const std::byte* q = quants_at(t, head_dim, pos, b);
      for (size_t c = 0; c < 8; ++c) std::memcpy(out[b].qs + 4 * c, q + c * 4 * kPos, 4);
    }
  }
  static void put_row(std::byte* tiles, size_t head_dim, size_t pos, const quant::BlockQ8_0* in) {
    for (size_t b = 0; b < n_block(head_dim); ++b) {
      std::memcpy(scale_at(tiles, head_dim, pos, b), &in[b].d_f16, 2);
      std::byte* q = quants_at(tiles, head_dim, pos, b);
      for (size_t c = 0; c < 8; ++c) std::memcpy(q + c * 4 * kPos, in[b].qs + 4 * c, 4);
    }
  }
};

struct KeyTilesF16 {
  static constexpr size_t kPos = 16;

  const std::byte* data = nullptr;  // tile 0 of the head (64-byte aligned)
  size_t head_dim = 0;
  size_t first = 0, n_pos = 0;  // the positions attended: [first, first + n_pos)

  static constexpr size_t tile_bytes(size_t head_dim) { return head_dim * kPos * 2; }

  // Where dimension `dim` of position `pos`'s key lives in a head's tiles starting at `tiles`.
  static std::byte* at(std::byte* tiles, size_t head_dim, size_t pos, size_t dim) {
    return tiles + pos / kPos * tile_bytes(head_dim) + (dim * kPos + pos % kPos) * 2;
  }

  // The key of position `pos` as head_dim f16 bit patterns, out of the tiles (the cache
  // writes them element by element, KvCache::key_at).
  static void get_row(const std::byte* tiles, size_t head_dim, size_t pos, uint16_t* out) {
    auto* t = const_cast<std::byte*>(tiles);
    for (size_t i = 0; i < head_dim; ++i) std::memcpy(out + i, at(t, head_dim, pos, i), 2);
  }
};
// KvCache counts both kinds of tile in one size.
static_assert(KeyTilesF16::kPos == KeyTiles::kPos);

}  // namespace ember::kernels
