// Fused decode attention for the Xsimd backend: the kernels behind Xsimd<A>::attend (f16 KV
// cache) and Xsimd<A>::attend_q8 (q8_0 KV cache), which attention/attention.hpp's attend_group
// runs in place of its matmul path (f16) or attend_group_q8_rows (q8_0). Same contracts as
// Highway::attend / Highway::attend_q8 (highway.hpp), same algorithms as Highway's AttendF16
// (highway-inl.hpp) and AttendQ8Tiles (highway_int8-inl.hpp), except that the q8_0 kernel
// normalizes with Xsimd<A>::softmax before the values (Highway's divides by the sums at the
// end). The results agree with theirs and with the paths they replace up to float rounding.
//
// What they read (attention/kv_cache.hpp), for the `group` query heads of one KV head:
//   f16:  keys as f16 key tiles of 16 positions (kernels/key_tiles.hpp: 32 bytes hold one
//         dimension of all 16 positions), values transposed (head_dim, n_pos), both f16.
//   q8_0: keys as key tiles of 16 positions (one 64-byte line holds 4 dimensions of all 16
//         positions), values as rows of q8_0 blocks (n_pos, head_dim).
// Both write `scores` (group * n_pos floats of scratch) and `out` (group * head_dim).
//
// This header completes xsimd.hpp, which declares the two members and includes it at its end;
// it includes xsimd.hpp itself, so either header may be included first.
#pragma once

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <type_traits>
#include <utility>
#include <xsimd/xsimd.hpp>

#include "ember/core/half.hpp"
#include "ember/kernels/key_tiles.hpp"
#include "ember/kernels/matrix.hpp"
#include "ember/kernels/with_count.hpp"
#include "ember/kernels/xsimd.hpp"
#include "ember/quant/activations.hpp"
#include "ember/quant/blocks.hpp"
#include "ember/tensor/dtype.hpp"

#if defined(__SSE2__) || defined(__AVX__) || defined(__AVX512F__)
#include <immintrin.h>
#endif

namespace ember::kernels {

namespace xsimd_detail {

inline void prefetch(const void* p) {
#if defined(__GNUC__) || defined(__clang__)
  __builtin_prefetch(p);
#else
  (void)p;
#endif
}

// ------------------------------------------------------------------- f16 cache

constexpr size_t kAttnMaxHeadDim = 256, kAttnMaxGroup = 16;
// Positions per pass over the values: one pass reads up to 8 heads' probabilities for this
// many positions (16 KiB, held in L1) against every value row.
constexpr size_t kAttnChunk = 512, kAttnAheadRows = 4;

// The dot products of kR heads' queries (qr, rounded to f16, hd apart) with the N positions
// of a key tile's batches at `t` (dimension i at t + i * 16), in llama.cpp's order for f16
// (lane m sums dimensions m, m + N, ... by FMAs from zero, then the lanes in halving steps):
// this node of that tree sums the lanes kM + j * kS (Highway's KeyTileNode). `ahead` (or
// null): the same place in a tile further on, its lines prefetched as these are loaded.
template <class A, size_t kR, size_t kM, size_t kS>
inline void key_tile_node(const uint16_t* t, const float* qr, size_t hd, const uint16_t* ahead, FloatBatch<A>* out) {
  using F = FloatBatch<A>;
  constexpr size_t N = F::size, kPos = KeyTilesF16::kPos;
  if constexpr (kS == N) {
    if (ahead) prefetch(ahead + kM * kPos);
    const F k0 = load_f16<A>(t + kM * kPos);
#pragma GCC unroll 8
    for (size_t r = 0; r < kR; ++r) out[r] = xsimd::fma(F(qr[r * hd + kM]), k0, F(0.0f));
    for (size_t i = kM + N; i < hd; i += N) {
      if (ahead) prefetch(ahead + i * kPos);
      const F k = load_f16<A>(t + i * kPos);
#pragma GCC unroll 8
      for (size_t r = 0; r < kR; ++r) out[r] = xsimd::fma(F(qr[r * hd + i]), k, out[r]);
    }
  } else {
    F x[kR], y[kR];
    key_tile_node<A, kR, kM, 2 * kS>(t, qr, hd, ahead, x);
    key_tile_node<A, kR, kM + kS, 2 * kS>(t, qr, hd, ahead, y);
#pragma GCC unroll 8
    for (size_t r = 0; r < kR; ++r) out[r] = x[r] + y[r];
  }
}

// scores[g * n_pos + j - first] = scale * qr[g] . k[j] for kR heads and the keys j of
// [first, first + n_pos): per f16 key tile (key_tiles.hpp) and N of its positions,
// key_tile_node's tree, each key batch widened once for the kR heads.
template <class A, size_t kR>
inline void key_tile_scores_f16(const KeyTilesF16& keys, const float* qr, float scale, float* scores) {
  using F = FloatBatch<A>;
  constexpr size_t N = F::size, kPos = KeyTilesF16::kPos;
  static_assert(kPos % N == 0, "a tile is whole batches");
  const size_t hd = keys.head_dim, n_pos = keys.n_pos, end = keys.first + n_pos, tb = KeyTilesF16::tile_bytes(hd);
  for (size_t j0 = keys.first / kPos * kPos; j0 < end; j0 += kPos) {
    const auto* tile = reinterpret_cast<const uint16_t*>(keys.data + j0 / kPos * tb);
    // The tile two ahead (a long context's keys stream from memory), a line per load or two.
    const uint16_t* ahead = j0 + 3 * kPos <= end ? tile + 2 * tb / sizeof(uint16_t) : nullptr;
    for (size_t h = 0; h < kPos; h += N) {
      const size_t p0 = j0 + h;  // lane 0's position
      if (p0 >= end || p0 + N <= keys.first) continue;
      F sum[kR];
      key_tile_node<A, kR, 0, 1>(tile + h, qr, hd, ahead ? ahead + h : nullptr, sum);
      const size_t lo = std::max(p0, keys.first), hi = std::min(end, p0 + N);
#pragma GCC unroll 8
      for (size_t r = 0; r < kR; ++r) {
        const F sv = sum[r] * F(scale);
        float* dst = scores + r * n_pos + (lo - keys.first);
        if (hi - lo == N) {
          sv.store_unaligned(dst);
        } else {
          alignas(64) float buf[N];
          sv.store_aligned(buf);
          std::memcpy(dst, buf + (lo - p0), (hi - lo) * sizeof(float));
        }
      }
    }
  }
}

// out[g][dim] += sum_j p[g][j] * v[dim][j] for kG <= 8 heads: each value row is read once for
// all heads, kAttnChunk positions at a time (two accumulators per head); each chunk's sums are
// added to out in chunk order.
template <class A, size_t kG>
inline void attend_values(const MatrixView& values_t, const float* p, size_t n_pos, float* out, size_t out_stride) {
  using F = FloatBatch<A>;
  constexpr size_t N = F::size;
  // The chunk's probabilities, copied to rows a little over 2 KiB apart: rows n_pos floats
  // apart often share their low 12 address bits, and 8 such streams overflow an L1 set.
  // Each row is zero-padded to whole steps of 2 N positions, so the last (partial) step reads
  // its probabilities from here like the others.
  constexpr size_t kStride = kAttnChunk + 16;
  static_assert(kAttnChunk % (2 * N) == 0, "a chunk is whole steps");
  alignas(64) float pc[kG * kStride];
  uint16_t vtail[4 * N] = {};  // row_tail's buffer
  for (size_t j0 = 0; j0 < n_pos; j0 += kAttnChunk) {
    const size_t j1 = std::min(n_pos, j0 + kAttnChunk);
    const size_t padded = (j1 - j0 + 2 * N - 1) / (2 * N) * (2 * N);
    for (size_t g = 0; g < kG; ++g) {
      std::memcpy(pc + g * kStride, p + g * n_pos + j0, (j1 - j0) * sizeof(float));
      std::memset(pc + g * kStride + (j1 - j0), 0, (padded - (j1 - j0)) * sizeof(float));
    }
    for (size_t dim = 0; dim < values_t.n_row; ++dim) {
      const auto* v = reinterpret_cast<const uint16_t*>(values_t.row(dim));
      // This chunk's piece of the row kAttnAheadRows on, a line with each step of 2 N
      // positions (at a chunk's start, the first rows' pieces at once): rows are far apart,
      // and one row's piece is too short to hide a miss (Highway's AttendValues).
      if (dim == 0)
        for (size_t r = 1; r < kAttnAheadRows && r < values_t.n_row; ++r) {
          const auto* next = reinterpret_cast<const char*>(values_t.row(r) + 2 * j0);
          for (size_t b = 0; b < 2 * (j1 - j0); b += 64) prefetch(next + b);
        }
      const char* ahead = dim + kAttnAheadRows < values_t.n_row
                              ? reinterpret_cast<const char*>(values_t.row(dim + kAttnAheadRows) + 2 * j0)
                              : nullptr;
      F acc[kG][2];  // in registers: the loops over heads unrolled
#pragma GCC unroll 8
      for (size_t g = 0; g < kG; ++g) acc[g][0] = acc[g][1] = F(0.0f);
      size_t j = j0;
      for (; j + 2 * N <= j1; j += 2 * N) {
        if (ahead) prefetch(ahead + 2 * (j - j0));
        const F v0 = load_f16<A>(v + j), v1 = load_f16<A>(v + j + N);
        const float* pj = pc + (j - j0);
#pragma GCC unroll 8
        for (size_t g = 0; g < kG; ++g) {
          acc[g][0] = xsimd::fma(v0, F::load_aligned(pj + g * kStride), acc[g][0]);
          acc[g][1] = xsimd::fma(v1, F::load_aligned(pj + g * kStride + N), acc[g][1]);
        }
      }
      if (j < j1) {  // zero-padded values and probabilities: the padding adds exact zeros
        const uint16_t* vt = row_tail<2 * N>(v, j1, j1 - j, vtail);
        const F v0 = load_f16<A>(vt), v1 = load_f16<A>(vt + N);
        const float* pj = pc + (j - j0);
#pragma GCC unroll 8
        for (size_t g = 0; g < kG; ++g) {
          acc[g][0] = xsimd::fma(v0, F::load_aligned(pj + g * kStride), acc[g][0]);
          acc[g][1] = xsimd::fma(v1, F::load_aligned(pj + g * kStride + N), acc[g][1]);
        }
      }
#pragma GCC unroll 8
      for (size_t g = 0; g < kG; ++g) out[g * out_stride + dim] += xsimd::hadd(acc[g][0] + acc[g][1]);
    }
  }
}

// Xsimd<A>::attend. The matmul path's arithmetic (queries and probabilities rounded to f16,
// each product exact in f32) in other orders: the scores of all heads in one pass over the
// key tiles for up to 8 heads (llama.cpp's summation order), Xsimd<A>::softmax, then one
// pass over the values for up to 8 heads. False, with nothing written, unless head_dim is a
// multiple of A's lanes and at most 256 and 1 <= group <= 16.
template <class A>
bool attend_f16(const KeyTilesF16& keys, const MatrixView& values_t, const float* q, size_t group, float scale,
                float* scores, float* out, float* lse) {
  constexpr size_t kRows = 8;  // heads per pass over the keys (as Highway's kAttnRows)
  const size_t hd = keys.head_dim, n_pos = keys.n_pos;
  if (values_t.dtype != DType::F16 || values_t.n_row != hd || values_t.n_col != n_pos ||
      hd % FloatBatch<A>::size != 0 || hd > kAttnMaxHeadDim || group == 0 || group > kAttnMaxGroup || n_pos == 0)
    return false;
  alignas(64) float qr[kAttnMaxGroup * kAttnMaxHeadDim];
  for (size_t g = 0; g < group; ++g) round_to_f16(q + g * hd, qr + g * hd, hd);
  for (size_t g0 = 0; g0 < group; g0 += kRows) {
    with_count<kRows>(std::min(kRows, group - g0), [&](auto k) {
      key_tile_scores_f16<A, decltype(k)::value>(keys, qr + g0 * hd, scale, scores + g0 * n_pos);
    });
  }
  for (size_t g = 0; g < group; ++g) {
    float* s = scores + g * n_pos;
    const float l = Xsimd<A>::softmax_lse(s, n_pos);
    if (lse) lse[g] = l;
    round_to_f16(s, s, n_pos);  // as the matmul path's activations are (in place: element by element)
  }
  std::memset(out, 0, group * hd * sizeof(float));
  for (size_t g0 = 0; g0 < group; g0 += 8) {
    with_count<8>(std::min<size_t>(8, group - g0), [&](auto kG) {
      attend_values<A, decltype(kG)::value>(values_t, scores + g0 * n_pos, n_pos, out + g0 * hd, hd);
    });
  }
  return true;
}

// ------------------------------------------------------------------ q8_0 cache

#if XSIMD_WITH_AVX2
constexpr size_t kAttnQ8MaxGroup = 16;
constexpr size_t kAttnQ8Chunk = 128;  // value rows per pass (8.5 KiB for head_dim 64)

// The integer dot products of one block (32 dimensions) of a key tile's 16 positions with
// query blocks, as float batches of A: kVecs of them per tile (16 / lanes). load() takes the
// block's quants (8 lines of 64 bytes: 4 dimensions of the 16 positions each) and prefetches
// the same lines at `ahead` (null: none); dot() then gives the 16 sums for one query block.
#if XSIMD_WITH_AVX512F && defined(__AVX512VNNI__)
// vpdpbusd, a tile's 16 positions in one vector's int32 lanes. The keys enter as k + 128
// (unsigned, the xor); each sum starts at -128 * sum(q) to take that back out, so the integer
// sums are exact.
template <class A>
struct KeyBlockVnni {
  static constexpr size_t kVecs = 1;
  __m512i k[8];

  void load(const uint8_t* quants, const uint8_t* ahead) {
#pragma GCC unroll 8
    for (size_t c = 0; c < 8; ++c) {
      if (ahead) prefetch(ahead + 64 * c);
      k[c] = _mm512_xor_si512(_mm512_load_si512(quants + 64 * c), _mm512_set1_epi8(-128));
    }
  }
  // `bias` = -128 * sum(a): query_bias(a).
  void dot(const int8_t* a, int32_t bias, FloatBatch<A> (&sums)[kVecs]) const {
    const auto* a8 = reinterpret_cast<const uint8_t*>(a);
    __m512i acc0 = _mm512_set1_epi32(bias), acc1 = _mm512_setzero_si512();
#pragma GCC unroll 4
    for (size_t c = 0; c < 8; c += 2) {
      acc0 = _mm512_dpbusd_epi32(acc0, k[c], _mm512_set1_epi32(int32_t(load_u32(a8 + 4 * c))));
      acc1 = _mm512_dpbusd_epi32(acc1, k[c + 1], _mm512_set1_epi32(int32_t(load_u32(a8 + 4 * c + 4))));
    }
    sums[0] = _mm512_cvtepi32_ps(_mm512_add_epi32(acc0, acc1));
  }
  static int32_t query_bias(const int8_t* a) {
    int32_t sum = 0;
    for (size_t i = 0; i < 32; ++i) sum += a[i];
    return -128 * sum;
  }
};
#endif

// AVX2 maddubs: k * q as |k| times q with k's sign (pairs below 2^15: |k|, |q| <= 127, as the
// q8_0 quantizer gives), madd'ed into int32 lanes; a tile's 16 positions as two halves of 8.
// |k| is taken once per block for all heads. On avx512 archs (without VNNI) the two halves
// become one 16-lane float batch.
template <class A>
struct KeyBlockMaddubs {
  static constexpr size_t kVecs = KeyTiles::kPos / FloatBatch<A>::size;
  static_assert(kVecs == 1 || kVecs == 2);
  const uint8_t* k = nullptr;
  alignas(32) uint8_t kabs[32 * KeyTiles::kPos];

  void load(const uint8_t* quants, const uint8_t* ahead) {
    k = quants;
    for (size_t o = 0; o < sizeof(kabs); o += 32) {
      if (ahead && o % 64 == 0) prefetch(ahead + o);
      _mm256_store_si256(reinterpret_cast<__m256i*>(kabs + o),
                         _mm256_abs_epi8(_mm256_load_si256(reinterpret_cast<const __m256i*>(quants + o))));
    }
  }
  void dot(const int8_t* a, int32_t, FloatBatch<A> (&sums)[kVecs]) const {
    const auto* a8 = reinterpret_cast<const uint8_t*>(a);
    __m256i lo = _mm256_setzero_si256(), hi = _mm256_setzero_si256();  // positions 0..7, 8..15
#pragma GCC unroll 8
    for (size_t c = 0; c < 8; ++c) {
      const __m256i qv = _mm256_set1_epi32(int32_t(load_u32(a8 + 4 * c)));
      const auto* kc = reinterpret_cast<const __m256i*>(k + 64 * c);
      const auto* ka = reinterpret_cast<const __m256i*>(kabs + 64 * c);
      lo =
          _mm256_add_epi32(lo, dot_u8s8_256<false>(_mm256_load_si256(ka), _mm256_sign_epi8(qv, _mm256_load_si256(kc))));
      hi = _mm256_add_epi32(
          hi, dot_u8s8_256<false>(_mm256_load_si256(ka + 1), _mm256_sign_epi8(qv, _mm256_load_si256(kc + 1))));
    }
    if constexpr (kVecs == 2) {
      sums[0] = _mm256_cvtepi32_ps(lo);
      sums[1] = _mm256_cvtepi32_ps(hi);
    } else {
#if XSIMD_WITH_AVX512F
      sums[0] = _mm512_cvtepi32_ps(_mm512_inserti64x4(_mm512_castsi256_si512(lo), hi, 1));
#endif
    }
  }
  static int32_t query_bias(const int8_t*) { return 0; }
};

template <class A>
auto key_block_engine() {
#if XSIMD_WITH_AVX512F && defined(__AVX512VNNI__)
  if constexpr (use_vnni<A>()) return KeyBlockVnni<A>{};
#endif
  if constexpr (!use_vnni<A>()) return KeyBlockMaddubs<A>{};
}

// Heads per pass over the key tiles: their score vectors stay in registers (AVX2's 16 ymm
// registers hold 4 heads' two halves).
template <class A>
constexpr size_t kAttnQ8ScoreGroup = FloatBatch<A>::size >= 16 ? 8 : 4;

// scores[g * n_pos + j - first] = scale * sum over blocks b of d_k * d_q * sum(k * q), for
// each key j of the tiles' range and head g < kG, the queries given as q8_0 blocks `qb` (kG
// rows of nb blocks). A tile's 16 positions are lanes: no horizontal sums.
template <class A, size_t kG>
inline void key_tile_scores(const KeyTiles& keys, const quant::BlockQ8_0* qb, float scale, float* scores) {
  using F = FloatBatch<A>;
  using E = decltype(key_block_engine<A>());
  constexpr size_t N = F::size, kPos = KeyTiles::kPos;
  const size_t hd = keys.head_dim, nb = KeyTiles::n_block(hd), n_pos = keys.n_pos, end = keys.first + n_pos;
  const size_t tb = KeyTiles::tile_bytes(hd), sb = KeyTiles::scale_bytes(hd);
  float dq[kG][KeyTiles::kMaxBlocks];
  int32_t bias[kG][KeyTiles::kMaxBlocks];
  for (size_t g = 0; g < kG; ++g)
    for (size_t b = 0; b < nb; ++b) {
      dq[g][b] = f16_to_f32(qb[g * nb + b].d_f16);
      bias[g][b] = E::query_bias(qb[g * nb + b].qs);
    }
  E block;
  for (size_t j0 = keys.first / kPos * kPos; j0 < end; j0 += kPos) {
    const auto* tile = reinterpret_cast<const uint8_t*>(keys.data) + j0 / kPos * tb;
    // The tile two ahead, a line with each load of this one (scales first).
    const bool ahead = j0 + 3 * kPos <= end;
    if (ahead)
      for (size_t o = 0; o < sb; o += 64) prefetch(tile + 2 * tb + o);
    F s[kG][E::kVecs];  // in registers: the loops over heads unrolled
#pragma GCC unroll 8
    for (size_t g = 0; g < kG; ++g)
      for (size_t v = 0; v < E::kVecs; ++v) s[g][v] = F(0.0f);
    for (size_t b = 0; b < nb; ++b) {
      const uint8_t* quants = tile + sb + b * 32 * kPos;
      block.load(quants, ahead ? quants + 2 * tb : nullptr);
      F dk[E::kVecs];  // the 16 positions' scales of block b
      for (size_t v = 0; v < E::kVecs; ++v)
        dk[v] = load_f16<A>(reinterpret_cast<const uint16_t*>(tile + b * 32) + v * N);
#pragma GCC unroll 8
      for (size_t g = 0; g < kG; ++g) {
        F sums[E::kVecs];
        block.dot(qb[g * nb + b].qs, bias[g][b], sums);
        for (size_t v = 0; v < E::kVecs; ++v) s[g][v] = xsimd::fma(sums[v], dk[v] * F(dq[g][b]), s[g][v]);
      }
    }
    const size_t lo = std::max(j0, keys.first), hi = std::min(end, j0 + kPos);
#pragma GCC unroll 8
    for (size_t g = 0; g < kG; ++g) {
      float* dst = scores + g * n_pos + (lo - keys.first);
      alignas(64) float buf[kPos];
      float* to = hi - lo == kPos ? dst : buf;  // a partial tile goes through buf
      for (size_t v = 0; v < E::kVecs; ++v) (s[g][v] * F(scale)).store_unaligned(to + v * N);
      if (to == buf) std::memcpy(dst, buf + (lo - j0), (hi - lo) * sizeof(float));
    }
  }
}

// A run of cache lines to prefetch a line at a time, spread over a loop's steps (step() once
// per step): a burst of prefetches waits on the core's few line-fill buffers and stalls the
// loop, one per step does not.
struct PrefetchRun {
  const uint8_t* p = nullptr;
  const uint8_t* end = nullptr;
  void step() {
    if (p < end) {
      prefetch(p);
      p += 64;
    }
  }
};

// out[g][dim] += sum_j p[g][j] * v[j][dim] over q8_0 value rows (n_pos, head_dim), for kG <= 8
// heads: kAttnQ8Chunk positions at a time, and within a chunk one block (32 dimensions) at a
// time. Per chunk and block, each head's coefficients c = p * d (d: each position's block
// scale) go into an L1 buffer; then each value block is widened once for all heads and each
// head adds c times it. 16-lane archs take a block in one pass (two accumulators per head),
// 8-lane ones in four (one). Each chunk's sums are added to out in chunk order.
template <class A, size_t kG>
inline void value_rows_q8(const MatrixView& values, const float* p, size_t p_stride, float* out) {
  using F = FloatBatch<A>;
  constexpr size_t N = F::size, kPassVecs = N >= 16 ? 2 : 1;
  const size_t hd = values.n_col, nb = hd / 32, n_pos = values.n_row;
  constexpr size_t kStride = kAttnQ8Chunk + 16;  // rows of c a little over 512 bytes apart
  alignas(64) float c[kG * kStride];
  alignas(64) uint16_t dh[kAttnQ8Chunk];
  for (size_t j0 = 0; j0 < n_pos; j0 += kAttnQ8Chunk) {
    const size_t m = std::min(kAttnQ8Chunk, n_pos - j0);
    // The next chunk's rows, one contiguous run, a line per position of the passes over this
    // one (nb * m steps or more for m * nb * 34 / 64 lines).
    PrefetchRun next;
    if (j0 + m < n_pos) {
      next.p = reinterpret_cast<const uint8_t*>(values.row(j0 + m));
      next.end = next.p + std::min(kAttnQ8Chunk, n_pos - j0 - m) * values.row_bytes;
    }
    for (size_t b = 0; b < nb; ++b) {
      const auto* blk = reinterpret_cast<const uint8_t*>(values.row(j0)) + b * sizeof(quant::BlockQ8_0);
      for (size_t j = 0; j < m; ++j) std::memcpy(dh + j, blk + j * values.row_bytes, sizeof(uint16_t));
      size_t j = 0;
      for (; j + N <= m; j += N) {
        const F d = load_f16<A>(dh + j);
        for (size_t g = 0; g < kG; ++g)
          (d * F::load_unaligned(p + g * p_stride + j0 + j)).store_aligned(c + g * kStride + j);
      }
      for (; j < m; ++j) {
        const float d = f16_to_f32(dh[j]);
        for (size_t g = 0; g < kG; ++g) c[g * kStride + j] = d * p[g * p_stride + j0 + j];
      }
      for (size_t e = 0; e < 32 / N; e += kPassVecs) {
        F acc[kG][kPassVecs];
        for (size_t g = 0; g < kG; ++g)
          for (size_t i = 0; i < kPassVecs; ++i) acc[g][i] = F(0.0f);
        const uint8_t* qs = blk + offsetof(quant::BlockQ8_0, qs) + e * N;
        for (size_t j = 0; j < m; ++j, qs += values.row_bytes) {
          next.step();
          F v[kPassVecs];
          for (size_t i = 0; i < kPassVecs; ++i) v[i] = xsimd::batch_cast<float>(widen_bytes<A, true>(qs + i * N));
#pragma GCC unroll 8
          for (size_t g = 0; g < kG; ++g) {
            const F cg(c[g * kStride + j]);
            for (size_t i = 0; i < kPassVecs; ++i) acc[g][i] = xsimd::fma(cg, v[i], acc[g][i]);
          }
        }
        for (size_t g = 0; g < kG; ++g)
          for (size_t i = 0; i < kPassVecs; ++i) {
            float* o = out + g * hd + 32 * b + (e + i) * N;
            (F::load_unaligned(o) + acc[g][i]).store_unaligned(o);
          }
      }
    }
  }
}
#endif  // XSIMD_WITH_AVX2

// Xsimd<A>::attend_q8: the queries quantized to q8_0 as the matmul path's are (Reference's
// bits, with vectors), the scores of up to kAttnQ8ScoreGroup heads per pass over the key tiles with
// int8 dot products (vpdpbusd where the flags give AVX-512 VNNI, maddubs on the other AVX2
// and avx512 archs), Xsimd<A>::softmax, then the values dequantized and weighted in f32, up to
// 8 heads per pass. False, with nothing written, on archs below AVX2 (and off x86), for
// head_dim above 512 or groups above 16.
template <class A>
bool attend_q8(const KeyTiles& keys, const MatrixView& values, const float* q, size_t group, float scale, float* scores,
               float* out, float* lse) {
#if XSIMD_WITH_AVX2
  if constexpr (int8_path<A>() == Int8Path::kX86_256) {
    const size_t hd = keys.head_dim, nb = KeyTiles::n_block(hd), n_pos = keys.n_pos;
    if (hd % 32 != 0 || nb > KeyTiles::kMaxBlocks || group == 0 || group > kAttnQ8MaxGroup || n_pos == 0 ||
        values.dtype != DType::Q8_0 || values.n_row != n_pos || values.n_col != hd)
      return false;
    quant::BlockQ8_0 qb[kAttnQ8MaxGroup * KeyTiles::kMaxBlocks];
    for (size_t g = 0; g < group; ++g)
      detail::quantize_blocks_q8_0(q + g * hd, hd, qb + g * nb, [](const float* x, size_t n, detail::PlanarQ8 p) {
        xsimd_detail::quantize_planar_q8(x, n, p, false);
      });
    constexpr size_t kScoreGroup = kAttnQ8ScoreGroup<A>;
    for (size_t g0 = 0; g0 < group; g0 += kScoreGroup) {
      with_count<kScoreGroup>(std::min(kScoreGroup, group - g0), [&](auto kG) {
        key_tile_scores<A, decltype(kG)::value>(keys, qb + g0 * nb, scale, scores + g0 * n_pos);
      });
    }
    for (size_t g = 0; g < group; ++g) {
      const float l = Xsimd<A>::softmax_lse(scores + g * n_pos, n_pos);
      if (lse) lse[g] = l;
    }
    std::memset(out, 0, group * hd * sizeof(float));
    for (size_t g0 = 0; g0 < group; g0 += 8) {
      with_count<8>(std::min<size_t>(8, group - g0), [&](auto kG) {
        value_rows_q8<A, decltype(kG)::value>(values, scores + g0 * n_pos, n_pos, out + g0 * hd);
      });
    }
    return true;
  }
#endif
  (void)keys, (void)values, (void)q, (void)group, (void)scale, (void)scores, (void)out, (void)lse;
  return false;
}

}  // namespace xsimd_detail

template <class Arch>
bool Xsimd<Arch>::attend(const KeyTilesF16& keys, const MatrixView& values_t, const float* q, size_t group, float scale,
                         float* scores, float* out, float* lse) {
  return xsimd_detail::attend_f16<Arch>(keys, values_t, q, group, scale, scores, out, lse);
}

template <class Arch>
bool Xsimd<Arch>::attend_q8(const KeyTiles& keys, const MatrixView& values, const float* q, size_t group, float scale,
                            float* scores, float* out, float* lse) {
  return xsimd_detail::attend_q8<Arch>(keys, values, q, group, scale, scores, out, lse);
}

}  // namespace ember::kernels
