// AMX prefill kernels of the Highway backend: Q4_0, Q4_1 and Q8_0 weights in the x16 layout
// (packed.hpp) against 16 tokens at a time, on the tile unit (AMX-TILE + AMX-INT8: Sapphire
// Rapids and later), with the bits of the VNNI kernel they stand in for (PackedGroup).
//
// highway_int8-inl.hpp includes this at its end, in the VNNI copy only (namespace int8_vnni):
// the epilogue is AVX-512, and every CPU with AMX has AVX-512 VNNI. Whether the CPU has AMX,
// the OS saves its state and Linux lets this process use it (arch_prctl) is checked in
// highway_impl.hpp (Highway::amx_available); EMBER_DISABLE=amx turns it off. No include guard
// and no standard-library includes: this sits inside a namespace.
//
// Why the bits are the VNNI kernel's. The x16 layout's block of a group of 16 rows is, for
// Q8_0, eight 64-byte chunks whose chunk c holds bytes 4c .. 4c + 3 of each row's block: that
// is exactly an AMX B tile of 8 rows (K = 32) by 16 columns of 4 bytes. Q4_0 and Q4_1 hold the
// low nibbles of chunks 0..3 and the high nibbles of chunks 4..7 in four chunks; they are
// unpacked to that B tile once per block and pass over the tokens. The A tile is 16 tokens'
// 32 activation quants of the block (the planar rows, one row stride apart). tdpbssd (Q8_0:
// signed weights) or tdpbsud (nibbles: unsigned) sums the 32 products of each (token, row)
// exactly in int32: the integer the VNNI kernel gets (there Q8_0 enters as w + 128 with
// -128 * sum(a) added, Q4_0's -8 * sum(a) is added here too, from the same activation slot).
// The tile goes to memory, and per token the epilogue is PackedGroup's to the instruction:
// acc = fma(d_w * d_a, float(isum), acc) per block in block order, Q4_1's off = fma(m_w, s_a,
// off) beside it, acc + off at the end. So a row's output does not depend on whether its
// tokens ran here or on the VNNI kernel (the tokens past the last full tile do).
//
// Tiles: tmm0..3 the int32 sums of (token tile i, group h) as tmm(2i + h), tmm4..5 the A tiles
// of two token tiles, tmm6..7 the B tiles of two groups: per block, up to four tdp over 16 x 16
// outputs each, then their epilogue on the vector units.
//
// EMBER_AMX_EMULATE (tests only): the tile instructions become scalar code with the same
// results, so the tile loops and the epilogue run, and are checked against the VNNI kernel's
// bits, on CPUs without AMX.

#ifndef EMBER_AMX_EMULATE
#define EMBER_AMX_EMULATE 0
#endif

// The tile configuration ldtilecfg loads (Intel SDM, "TILECFG"): palette 1, then per tile its
// bytes per row and its rows.
struct alignas(64) AmxConfig {
  uint8_t palette = 1, start_row = 0;
  uint8_t reserved[14] = {};
  uint16_t colsb[16] = {};
  uint8_t rows[16] = {};
};

constexpr size_t kAmxTok = 16;  // tokens per A tile (and rows per group: kPackRows)

#if EMBER_AMX_EMULATE
struct AmxTiles {
  AmxConfig cfg;
  alignas(64) uint8_t t[8][16][64];
};
inline thread_local AmxTiles amx_tiles;
HWY_INLINE void AmxLoadConfig(const AmxConfig& c) { amx_tiles.cfg = c; }
HWY_INLINE void AmxRelease() {}
HWY_INLINE void AmxTileLoad(int tmm, const void* base, size_t stride) {
  for (size_t r = 0; r < amx_tiles.cfg.rows[tmm]; ++r)
    std::memcpy(amx_tiles.t[tmm][r], static_cast<const uint8_t*>(base) + r * stride, amx_tiles.cfg.colsb[tmm]);
}
HWY_INLINE void AmxTileStore(int tmm, void* base, size_t stride) {
  for (size_t r = 0; r < amx_tiles.cfg.rows[tmm]; ++r)
    std::memcpy(static_cast<uint8_t*>(base) + r * stride, amx_tiles.t[tmm][r], amx_tiles.cfg.colsb[tmm]);
}
HWY_INLINE void AmxTileZero(int tmm) { std::memset(amx_tiles.t[tmm], 0, sizeof(amx_tiles.t[tmm])); }
// C[m][n] += sum over k of A[m][4k + i] * B[k][4n + i], A signed, B signed or unsigned.
HWY_INLINE void AmxDot(int c, int a, int b, bool b_signed) {
  for (size_t m = 0; m < amx_tiles.cfg.rows[c]; ++m)
    for (size_t n = 0; n < amx_tiles.cfg.colsb[c] / 4u; ++n) {
      int32_t s;
      std::memcpy(&s, amx_tiles.t[c][m] + 4 * n, 4);
      for (size_t k = 0; k < amx_tiles.cfg.rows[b]; ++k)
        for (size_t i = 0; i < 4; ++i) {
          const int32_t x = int8_t(amx_tiles.t[a][m][4 * k + i]);
          const uint8_t raw = amx_tiles.t[b][k][4 * n + i];
          s += x * (b_signed ? int32_t(int8_t(raw)) : int32_t(raw));
        }
      std::memcpy(amx_tiles.t[c][m] + 4 * n, &s, 4);
    }
}
#define EMBER_AMX_LOAD(tmm, base, stride) AmxTileLoad(tmm, base, stride)
#define EMBER_AMX_STORE(tmm, base, stride) AmxTileStore(tmm, base, stride)
#define EMBER_AMX_ZERO(tmm) AmxTileZero(tmm)
#define EMBER_AMX_DOT_SS(c, a, b) AmxDot(c, a, b, true)
#define EMBER_AMX_DOT_SU(c, a, b) AmxDot(c, a, b, false)
#else
// The tile instructions through inline asm (GCC's and Clang's intrinsics want the amx-tile
// target attribute, which this file's Highway target region does not carry; the assembler
// knows the instructions either way). A tile number is part of the instruction, so these
// take it as a literal. "memory": tile loads read what plain stores wrote just before, and
// the epilogue reads what tile stores wrote.
HWY_INLINE void AmxLoadConfig(const AmxConfig& c) { asm volatile("ldtilecfg %0" ::"m"(c)); }
HWY_INLINE void AmxRelease() { asm volatile("tilerelease" ::); }
#define EMBER_AMX_LOAD(tmm, base, stride) \
  asm volatile("tileloadd (%0,%1,1), %%tmm" #tmm ::"r"(base), "r"(static_cast<long>(stride)) : "memory")
#define EMBER_AMX_STORE(tmm, base, stride) \
  asm volatile("tilestored %%tmm" #tmm ", (%0,%1,1)" ::"r"(base), "r"(static_cast<long>(stride)) : "memory")
#define EMBER_AMX_ZERO(tmm) asm volatile("tilezero %%tmm" #tmm ::)
#define EMBER_AMX_DOT_SS(c, a, b) asm volatile("tdpbssd %%tmm" #b ", %%tmm" #a ", %%tmm" #c ::)
#define EMBER_AMX_DOT_SU(c, a, b) asm volatile("tdpbsud %%tmm" #b ", %%tmm" #a ", %%tmm" #c ::)
#endif

// C(2i + h) = A(4 + i) . B(6 + h) for the token tiles i < n_i and groups h < n_h present.
template <DType kT>
HWY_INLINE void AmxBlockDots(size_t n_i, size_t n_h) {
#define EMBER_AMX_DOT(c, a, b)       \
  do {                               \
    EMBER_AMX_ZERO(c);               \
    if constexpr (kT == DType::Q8_0) \
      EMBER_AMX_DOT_SS(c, a, b);     \
    else                             \
      EMBER_AMX_DOT_SU(c, a, b);     \
  } while (0)
  EMBER_AMX_DOT(0, 4, 6);
  if (n_h > 1) EMBER_AMX_DOT(1, 4, 7);
  if (n_i > 1) {
    EMBER_AMX_DOT(2, 5, 6);
    if (n_h > 1) EMBER_AMX_DOT(3, 5, 7);
  }
#undef EMBER_AMX_DOT
}

// PackedGroup's per-block step for one (token tile, group) pair of sums `c` (16 tokens x 16
// rows, int32): acc[k] = fma(d_w * d_a, float(isum), acc[k]) for each token k, and for Q4_1
// off[k] = fma(m_w, s_a, off[k]).
template <DType kT>
HWY_INLINE void AmxEpilogue(const int32_t* HWY_RESTRICT c, __m512 d, __m512 m, const detail::PlanarQ8* act, size_t b,
                            float* HWY_RESTRICT acc, float* HWY_RESTRICT off) {
#pragma GCC unroll 4
  for (size_t k = 0; k < kAmxTok; ++k) {
    __m512i isum = _mm512_load_si512(c + 16 * k);
    if constexpr (kT == DType::Q4_0) {  // -8 * sum(a), PackedCorrection's
      int32_t correction;
      std::memcpy(&correction, act[k].s + b, sizeof(correction));
      isum = _mm512_add_epi32(isum, _mm512_set1_epi32(correction));
    }
    const __m512 scale = _mm512_mul_ps(d, _mm512_set1_ps(act[k].d[b]));
    _mm512_store_ps(acc + 16 * k, _mm512_fmadd_ps(scale, _mm512_cvtepi32_ps(isum), _mm512_load_ps(acc + 16 * k)));
    if constexpr (kT == DType::Q4_1)
      _mm512_store_ps(off + 16 * k, _mm512_fmadd_ps(m, _mm512_set1_ps(act[k].s[b]), _mm512_load_ps(off + 16 * k)));
  }
}

// Rows [r_begin, r_end) of a packed Q4_0 / Q4_1 / Q8_0 matrix against the first n_tok / 16 * 16
// of n_tok (<= kTokenChunk) tokens, whose planar rows lie act_stride bytes apart (act[k].qs =
// act[0].qs + k * act_stride). Returns how many tokens it did; the caller runs the rest on
// PackedRows. A group the range cuts is computed whole and stored in part, as PackedRows does.
template <DType kT>
HWY_INLINE size_t AmxPackedRowsOf(const MatrixView& w, const detail::PlanarQ8* act, size_t act_stride, size_t n_tok,
                                  float* y, size_t y_stride, size_t r_begin, size_t r_end) {
  constexpr size_t kMaxTiles = detail::kTokenChunk / kAmxTok;
  constexpr size_t kQuantBytes = kT == DType::Q8_0 ? 512 : 256;
  const size_t n_tiles = n_tok / kAmxTok < kMaxTiles ? n_tok / kAmxTok : kMaxTiles;
  if (n_tiles == 0 || r_begin >= r_end) return 0;
  const size_t n_block = w.n_col / 32, stride = packed_group_stride(w.dtype, w.n_col);
  AmxConfig cfg;
  for (int t = 0; t < 4; ++t) cfg.rows[t] = 16, cfg.colsb[t] = 64;  // sums: 16 tokens x 16 rows
  for (int t = 4; t < 6; ++t) cfg.rows[t] = 16, cfg.colsb[t] = 32;  // A: 16 tokens x 32 quants
  for (int t = 6; t < 8; ++t) cfg.rows[t] = 8, cfg.colsb[t] = 64;   // B: 8 quads x 16 rows x 4
  AmxLoadConfig(cfg);
  const __m512i nibble = _mm512_set1_epi8(0x0f);
  HWY_ALIGN int32_t sums[4][kAmxTok * kPackRows];
  HWY_ALIGN uint8_t unpacked[2][512];  // the nibble formats' B tiles of the block
  HWY_ALIGN float acc[kMaxTiles][2][kAmxTok * kPackRows], off[kMaxTiles][2][kAmxTok * kPackRows];
  for (size_t g = r_begin / kPackRows; g * kPackRows < r_end; g += 2) {
    const size_t n_h = (g + 1) * kPackRows < r_end ? 2 : 1;
    const uint8_t* q[2];
    const uint8_t* dw[2];
    const uint8_t* mw[2];
    for (size_t h = 0; h < n_h; ++h) {
      q[h] = reinterpret_cast<const uint8_t*>(w.packed) + (g + h) * stride;
      dw[h] = q[h] + n_block * kQuantBytes;
      mw[h] = dw[h] + n_block * 2 * kPackRows;
    }
    std::memset(acc, 0, sizeof(acc));
    if constexpr (kT == DType::Q4_1) std::memset(off, 0, sizeof(off));
    for (size_t b = 0; b < n_block; ++b) {
      const uint8_t* bt[2];
      __m512 d[2], m[2];
      for (size_t h = 0; h < n_h; ++h) {
        const uint8_t* blk = q[h] + b * kQuantBytes;
        PrefetchAhead<kQuantBytes>(blk);
        if constexpr (kT == DType::Q8_0) {
          bt[h] = blk;
        } else {
          for (size_t c = 0; c < 4; ++c) {
            const __m512i raw = _mm512_load_si512(blk + 64 * c);
            _mm512_store_si512(unpacked[h] + 64 * c, _mm512_and_si512(raw, nibble));
            _mm512_store_si512(unpacked[h] + 64 * (c + 4), _mm512_and_si512(_mm512_srli_epi16(raw, 4), nibble));
          }
          bt[h] = unpacked[h];
        }
        d[h] = _mm512_cvtph_ps(_mm256_load_si256(reinterpret_cast<const __m256i*>(dw[h] + 32 * b)));
        m[h] = kT == DType::Q4_1 ? _mm512_cvtph_ps(_mm256_load_si256(reinterpret_cast<const __m256i*>(mw[h] + 32 * b)))
                                 : _mm512_setzero_ps();
      }
      EMBER_AMX_LOAD(6, bt[0], 64);
      if (n_h > 1) EMBER_AMX_LOAD(7, bt[1], 64);
      for (size_t i0 = 0; i0 < n_tiles; i0 += 2) {
        const size_t n_i = n_tiles - i0 > 1 ? 2 : 1;
        const int8_t* a = act[i0 * kAmxTok].qs + 32 * b;
        EMBER_AMX_LOAD(4, a, act_stride);
        if (n_i > 1) EMBER_AMX_LOAD(5, a + kAmxTok * act_stride, act_stride);
        AmxBlockDots<kT>(n_i, n_h);
        EMBER_AMX_STORE(0, sums[0], 64);
        if (n_h > 1) EMBER_AMX_STORE(1, sums[1], 64);
        if (n_i > 1) {
          EMBER_AMX_STORE(2, sums[2], 64);
          if (n_h > 1) EMBER_AMX_STORE(3, sums[3], 64);
        }
        for (size_t i = 0; i < n_i; ++i)
          for (size_t h = 0; h < n_h; ++h)
            AmxEpilogue<kT>(sums[2 * i + h], d[h], m[h], act + (i0 + i) * kAmxTok, b, acc[i0 + i][h], off[i0 + i][h]);
      }
    }
    for (size_t h = 0; h < n_h; ++h) {
      const size_t row0 = (g + h) * kPackRows;
      const size_t lo = r_begin > row0 ? r_begin - row0 : 0;
      const size_t hi = r_end - row0 < kPackRows ? r_end - row0 : kPackRows;
      for (size_t t = 0; t < n_tiles * kAmxTok; ++t) {
        float* row = acc[t / kAmxTok][h] + (t % kAmxTok) * kPackRows;
        if constexpr (kT == DType::Q4_1) {
          const float* o = off[t / kAmxTok][h] + (t % kAmxTok) * kPackRows;
          _mm512_store_ps(row, _mm512_add_ps(_mm512_load_ps(row), _mm512_load_ps(o)));
        }
        std::memcpy(y + t * y_stride + row0 + lo, row + lo, (hi - lo) * sizeof(float));
      }
    }
  }
  AmxRelease();
  return n_tiles * kAmxTok;
}

size_t AmxPackedRows(const MatrixView& w, const detail::PlanarQ8* act, size_t act_stride, size_t n_tok, float* y,
                     size_t y_stride, size_t r_begin, size_t r_end) {
  switch (w.dtype) {
    case DType::Q4_0: return AmxPackedRowsOf<DType::Q4_0>(w, act, act_stride, n_tok, y, y_stride, r_begin, r_end);
    case DType::Q4_1: return AmxPackedRowsOf<DType::Q4_1>(w, act, act_stride, n_tok, y, y_stride, r_begin, r_end);
    case DType::Q8_0: return AmxPackedRowsOf<DType::Q8_0>(w, act, act_stride, n_tok, y, y_stride, r_begin, r_end);
    default: return 0;
  }
}

#undef EMBER_AMX_LOAD
#undef EMBER_AMX_STORE
#undef EMBER_AMX_ZERO
#undef EMBER_AMX_DOT_SS
#undef EMBER_AMX_DOT_SU
