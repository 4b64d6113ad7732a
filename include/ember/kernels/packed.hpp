// Row-interleaved weight layouts, prepared once at load for the decode path (issue #3).
//
// In a GGUF file each row of a quantized matrix is a run of blocks, so a kernel that computes
// one output reads one row, sums a block's products inside a vector and must add its lanes
// up at the end. Interleaving 16 rows puts row r of a group in lane r of every vector: one
// activation broadcast feeds 16 rows, each block's integer sum of a row stays in its own lane,
// and the 16 outputs are stored as one vector with no horizontal sum.
//
// Layout "x16" of a Q4_0 / Q4_1 / Q8_0 matrix (Q4_K, Q6_K: below) with n_row rows of n_block blocks of 32:
//   rows are taken 16 at a time, the last group padded with zero rows (scale 0: they
//   contribute +0 and are never stored). Group g starts at packed + g * group_stride, 64-byte
//   aligned, and holds
//     quants   for each block b, n_chunk chunks of 64 bytes: chunk c of block b holds, for
//              r = 0..15, the 4 bytes qs[4c .. 4c + 3] of row r's block b at byte 4 r
//              (n_chunk = 4 for the nibble formats, whose byte j has element j low and
//              j + 16 high; 8 for Q8_0, byte j = element j);
//     d        then for each block, the 16 rows' f16 scales (32 bytes);
//     m        then, Q4_1 only, the 16 rows' f16 offsets per block.
//   The blocks' bytes rearranged, plus at most 63 bytes of padding per group: the packed copy
//   costs as much memory as the matrix itself. Every quant load is one aligned cache line.
// Who uses it: Model::load packs the matrices whose format Backend::packs() names (see
// LoadOptions::pack_weights), MatrixView::packed points at the copy, and a kernel that knows
// the layout reads it instead of `data`. Kernels that do not (other CPU targets, other
// backends) keep reading `data`, which stays valid.
#pragma once

#include <cstddef>
#include <cstdint>
#include <cstring>

#include "ember/kernels/matrix.hpp"
#include "ember/quant/blocks.hpp"
#include "ember/tensor/dtype.hpp"

namespace ember::kernels {

inline constexpr size_t kPackRows = 16;

// Formats with an x16 layout.
inline constexpr bool has_packed_layout(DType t) {
  return t == DType::Q4_0 || t == DType::Q4_1 || t == DType::Q8_0 || t == DType::Q4_K || t == DType::Q6_K;
}

inline constexpr size_t packed_groups(size_t n_row) { return (n_row + kPackRows - 1) / kPackRows; }

// Q4_K's x16 record: one super-block (256 columns) of 16 rows, 2368 bytes (16 blocks are
// 2304: the unpacked scales and int16 mins cost 2.8% more), records back to back:
//   quants  32 chunks of 64 bytes: chunk c holds, for r = 0..15, qs[4c .. 4c + 3] of row r
//           at byte 4 r (byte j of pair p = j / 32 has element 64 p + j % 32 low and
//           64 p + 32 + j % 32 high: groups 2p and 2p + 1);
//   scales  8 x 16 bytes: byte 16 g + r = the 6-bit scale of group g of row r;
//   mins    4 x 64 bytes: pair i, row r at byte 4 r: the mins of groups 2i and 2i + 1 as
//           two int16 (vpdpwssd takes them against the activations' group sums);
//   d, dmin 16 f16 each.
inline constexpr size_t kQ4KRecordBytes = 2048 + 128 + 256 + 64;

// Q6_K's x16 record: one super-block of 16 rows, 3392 bytes (16 blocks are 3360; 32 bytes of
// padding keep every record 64-byte aligned), records back to back. The 6-bit quants q (0..63,
// the file's ql and qh joined) are rearranged so that each comes out of a byte in one or two
// vector operations, times 4:
//   quants  48 chunks of 64 bytes, three per group s of 16 elements: in chunk 3 s + i
//           (i = 0..2), byte 4 r + k of row r holds q[16 s + 4 i + k] << 2 in bits 2..7 and
//           bits 2 i, 2 i + 1 of q[16 s + 12 + k] in bits 0..1;
//   scales  8 x 32 bytes: bytes 32 i + 2 r and 32 i + 2 r + 1 = the int8 scales of groups 2 i
//           and 2 i + 1 of row r (sign-extended to int16 they are one 32-bit lane per row);
//   d       16 f16, then 32 bytes of zeros.
inline constexpr size_t kQ6KRecordBytes = 3072 + 256 + 32 + 32;
// Quant bytes of one block of 16 rows (n_chunk * 64).
inline constexpr size_t packed_quant_bytes(DType t) { return t == DType::Q8_0 ? 512 : 256; }

// Bytes from one group's start to the next's.
inline constexpr size_t packed_group_stride(DType t, size_t n_col) {
  if (t == DType::Q4_K) return n_col / 256 * kQ4KRecordBytes;
  if (t == DType::Q6_K) return n_col / 256 * kQ6KRecordBytes;
  const size_t n_block = n_col / 32, scales = t == DType::Q4_1 ? 2 : 1;
  return (n_block * (packed_quant_bytes(t) + scales * 2 * kPackRows) + 63) / 64 * 64;
}

// Bytes of the packed copy of an (n_row, n_col) matrix of `t`, 0 if `t` has no layout.
inline constexpr size_t packed_bytes(DType t, size_t n_row, size_t n_col) {
  return has_packed_layout(t) ? packed_groups(n_row) * packed_group_stride(t, n_col) : 0;
}

namespace packed_detail {

// One format's copy loop with its sizes fixed at compile time (so each 2- and 4-byte copy is
// one move); rows are read in order, 16 at a time.
template <size_t kQsOffset, size_t kChunks, bool kHasM>
void pack(const MatrixView& w, std::byte* out, size_t g_begin, size_t g_end) {
  constexpr size_t kBlockBytes = kQsOffset + 4 * kChunks, kQuantBytes = 64 * kChunks;
  const size_t n_block = w.n_col / 32, stride = packed_group_stride(w.dtype, w.n_col);
  for (size_t g = g_begin; g < g_end; ++g) {
    std::byte* quants = out + g * stride;
    std::byte* d = quants + n_block * kQuantBytes;
    std::byte* m = d + n_block * 2 * kPackRows;
    for (size_t r = 0; r < kPackRows && g * kPackRows + r < w.n_row; ++r) {
      const std::byte* blk = w.row(g * kPackRows + r);
      for (size_t b = 0; b < n_block; ++b, blk += kBlockBytes) {
        std::memcpy(d + b * 2 * kPackRows + 2 * r, blk, 2);
        if constexpr (kHasM) std::memcpy(m + b * 2 * kPackRows + 2 * r, blk + 2, 2);
        std::byte* q = quants + b * kQuantBytes + 4 * r;
        for (size_t c = 0; c < kChunks; ++c) std::memcpy(q + 64 * c, blk + kQsOffset + 4 * c, 4);
      }
    }
  }
}

// The K-quants' walk: for groups [g_begin, g_end), each real row r of the group and each
// super-block b, `write(block, record, r)` with the block copied out (rows may sit at any
// address) and the group's record b.
template <class Block, size_t kRecordBytes, class Write>
void pack_superblocks(const MatrixView& w, std::byte* out, size_t g_begin, size_t g_end, Write&& write) {
  const size_t n_sb = w.n_col / 256, stride = packed_group_stride(w.dtype, w.n_col);
  for (size_t g = g_begin; g < g_end; ++g) {
    for (size_t r = 0; r < kPackRows && g * kPackRows + r < w.n_row; ++r) {
      const std::byte* row = w.row(g * kPackRows + r);
      for (size_t b = 0; b < n_sb; ++b) {
        Block blk;
        std::memcpy(&blk, row + b * sizeof(blk), sizeof(blk));
        write(blk, out + g * stride + b * kRecordBytes, r);
      }
    }
  }
}

inline void pack_q4_k(const MatrixView& w, std::byte* out, size_t g_begin, size_t g_end) {
  pack_superblocks<quant::BlockQ4_K, kQ4KRecordBytes>(
      w, out, g_begin, g_end, [](const quant::BlockQ4_K& blk, std::byte* rec, size_t r) {
        for (size_t c = 0; c < 32; ++c) std::memcpy(rec + 64 * c + 4 * r, blk.qs + 4 * c, 4);
        for (int j = 0; j < 8; ++j) {
          uint8_t scale = 0, min = 0;
          quant::unpack_scale_min_k4(blk.scales, j, scale, min);
          rec[2048 + 16 * j + r] = std::byte(scale);
          const int16_t m16 = int16_t(min);
          std::memcpy(rec + 2048 + 128 + 64 * (j / 2) + 4 * r + 2 * (j % 2), &m16, 2);
        }
        std::memcpy(rec + 2048 + 128 + 256 + 2 * r, &blk.d_f16, 2);
        std::memcpy(rec + 2048 + 128 + 256 + 32 + 2 * r, &blk.dmin_f16, 2);
      });
}

inline void pack_q6_k(const MatrixView& w, std::byte* out, size_t g_begin, size_t g_end) {
  pack_superblocks<quant::BlockQ6_K, kQ6KRecordBytes>(
      w, out, g_begin, g_end, [](const quant::BlockQ6_K& blk, std::byte* rec, size_t r) {
        // Eight quants at a time in a uint64 (little-endian byte order, as x86 and ARM64 have).
        uint8_t q[256];  // element 128 h + 32 t + l, as quant::dequantize_block reads it
        for (size_t h = 0; h < 2; ++h)
          for (size_t t = 0; t < 4; ++t)
            for (size_t l = 0; l < 32; l += 8) {
              uint64_t lo, hi;
              std::memcpy(&lo, blk.ql + 64 * h + 32 * (t % 2) + l, 8);
              std::memcpy(&hi, blk.qh + 32 * h + l, 8);
              const uint64_t v =
                  ((lo >> (4 * (t / 2))) & 0x0f0f0f0f0f0f0f0full) | (((hi >> (2 * t)) & 0x0303030303030303ull) << 4);
              std::memcpy(q + 128 * h + 32 * t + l, &v, 8);
            }
        for (size_t s = 0; s < 16; ++s) {
          uint32_t fourth;
          std::memcpy(&fourth, q + 16 * s + 12, 4);
          for (size_t i = 0; i < 3; ++i) {
            uint32_t v;
            std::memcpy(&v, q + 16 * s + 4 * i, 4);
            v = ((v << 2) & 0xfcfcfcfcu) | ((fourth >> (2 * i)) & 0x03030303u);
            std::memcpy(rec + 64 * (3 * s + i) + 4 * r, &v, 4);
          }
        }
        for (size_t s = 0; s < 16; ++s) std::memcpy(rec + 3072 + 32 * (s / 2) + 2 * r + s % 2, blk.scales + s, 1);
        std::memcpy(rec + 3328 + 2 * r, &blk.d_f16, 2);
      });
}

}  // namespace packed_detail

// Writes groups [g_begin, g_end) of w's x16 copy into `out`: the whole copy's start, 64-byte
// aligned and zero-filled (padding rows are left as they are). Groups are independent, so
// callers may split them over threads.
inline void pack_groups(const MatrixView& w, std::byte* out, size_t g_begin, size_t g_end) {
  switch (w.dtype) {
    case DType::Q4_0: packed_detail::pack<2, 4, false>(w, out, g_begin, g_end); break;
    case DType::Q4_1: packed_detail::pack<4, 4, true>(w, out, g_begin, g_end); break;
    case DType::Q8_0: packed_detail::pack<2, 8, false>(w, out, g_begin, g_end); break;
    case DType::Q4_K: packed_detail::pack_q4_k(w, out, g_begin, g_end); break;
    case DType::Q6_K: packed_detail::pack_q6_k(w, out, g_begin, g_end); break;
    default: break;
  }
}

}  // namespace ember::kernels
