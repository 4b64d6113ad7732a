// AMX prefill kernels of the Highway backend: Q4_0, Q4_1, Q8_0 and Q4_K weights in the x16
// layout (packed.hpp) against 16 tokens at a time, on the tile unit (AMX-TILE + AMX-INT8:
// Sapphire Rapids and later), with the bits of the VNNI kernels they stand in for
// (PackedGroup, PackedQ4KGroup). Q6_K (groups of 16 elements, a tile stage of K = 16 per
// scale) stays on VNNI.
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
// Work order: per group of 16 rows (its weights read from memory once per call, the nibble
// formats' unpacked to B tiles in a scratch), per tile of 16 tokens, the blocks in order with
// the 16 tokens' accumulators in registers; the tile stages of consecutive blocks alternate
// between two sets of tiles, so the tile unit computes block b + 1 while the vector units
// scale block b's sums.
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

// One tile stage of block b: its A and B tiles in, C = A . B, C out to `sums`. Blocks alternate
// between two sets of tiles (C tmm0 / tmm1, A tmm4 / tmm5, B tmm6 / tmm7), so that the tile
// unit works on block b + 1 while the vector units take block b's sums.
#define EMBER_AMX_STAGE(C, A, B, a, bt, sums, signed_b) \
  do {                                                  \
    EMBER_AMX_LOAD(A, a, act_stride);                   \
    EMBER_AMX_LOAD(B, bt, 64);                          \
    EMBER_AMX_ZERO(C);                                  \
    if constexpr (signed_b)                             \
      EMBER_AMX_DOT_SS(C, A, B);                        \
    else                                                \
      EMBER_AMX_DOT_SU(C, A, B);                        \
    EMBER_AMX_STORE(C, sums, 64);                       \
  } while (0)

// The tiles EMBER_AMX_STAGE uses, for the kernels below to load before their first stage.
HWY_INLINE void AmxLoadStageConfig() {
  AmxConfig cfg;
  for (int t = 0; t < 2; ++t) cfg.rows[t] = 16, cfg.colsb[t] = 64;  // sums: 16 tokens x 16 rows
  for (int t = 4; t < 6; ++t) cfg.rows[t] = 16, cfg.colsb[t] = 32;  // A: 16 tokens x 32 quants
  for (int t = 6; t < 8; ++t) cfg.rows[t] = 8, cfg.colsb[t] = 64;   // B: 8 quads x 16 rows x 4
  AmxLoadConfig(cfg);
}

// 16 tokens against one group of 16 rows over all blocks: out[k][r] for token k, row r.
// `bt`: the group's B tiles, block b at bt + 512 b; `aq`: token 0's quants (token k at
// aq + k * act_stride); `ad`, `as`: the tokens' activation scales and s slots per block,
// transposed (block b's 16 at 16 b). PackedGroup's arithmetic per token, with the 16
// accumulators (each 16 rows) in registers.
template <DType kT>
HWY_INLINE void AmxGroupTile(const uint8_t* HWY_RESTRICT bt, const uint8_t* HWY_RESTRICT dw,
                             const uint8_t* HWY_RESTRICT mw, size_t n_block, const int8_t* aq, size_t act_stride,
                             const float* HWY_RESTRICT ad, const float* HWY_RESTRICT as, float (*out)[kPackRows]) {
  HWY_ALIGN int32_t sums[2][kAmxTok * kPackRows];
  __m512 acc[kAmxTok], off[kAmxTok];
#pragma GCC unroll 16
  for (size_t k = 0; k < kAmxTok; ++k) acc[k] = off[k] = _mm512_setzero_ps();
  auto stage = [&](size_t b) {
    if (b % 2 == 0)
      EMBER_AMX_STAGE(0, 4, 6, aq + 32 * b, bt + 512 * b, sums[0], kT == DType::Q8_0);
    else
      EMBER_AMX_STAGE(1, 5, 7, aq + 32 * b, bt + 512 * b, sums[1], kT == DType::Q8_0);
  };
  stage(0);
  for (size_t b = 0; b < n_block; ++b) {
    if (b + 1 < n_block) stage(b + 1);
    const int32_t* c = sums[b % 2];
    const __m512 d = _mm512_cvtph_ps(_mm256_load_si256(reinterpret_cast<const __m256i*>(dw + 32 * b)));
    const __m512 m = kT == DType::Q4_1
                         ? _mm512_cvtph_ps(_mm256_load_si256(reinterpret_cast<const __m256i*>(mw + 32 * b)))
                         : _mm512_setzero_ps();
    const float* adb = ad + kAmxTok * b;
    const float* asb = as + kAmxTok * b;
#pragma GCC unroll 16
    for (size_t k = 0; k < kAmxTok; ++k) {
      __m512i isum = _mm512_load_si512(c + kPackRows * k);
      if constexpr (kT == DType::Q4_0) {  // -8 * sum(a), QuantizePlanarQ8's correction
        int32_t correction;
        std::memcpy(&correction, asb + k, sizeof(correction));
        isum = _mm512_add_epi32(isum, _mm512_set1_epi32(correction));
      }
      const __m512 scale = _mm512_mul_ps(d, _mm512_set1_ps(adb[k]));
      acc[k] = _mm512_fmadd_ps(scale, _mm512_cvtepi32_ps(isum), acc[k]);
      if constexpr (kT == DType::Q4_1) off[k] = _mm512_fmadd_ps(m, _mm512_set1_ps(asb[k]), off[k]);
    }
  }
#pragma GCC unroll 16
  for (size_t k = 0; k < kAmxTok; ++k)
    _mm512_store_ps(out[k], kT == DType::Q4_1 ? _mm512_add_ps(acc[k], off[k]) : acc[k]);
}

// The per-thread scratch of AmxPackedRowsOf and AmxPackedQ4KRows, grown on demand, 64-byte
// aligned: beside detail::thread_scratch, which holds the same call's activations.
inline uint8_t* AmxScratch(size_t bytes) {
  static thread_local std::vector<uint8_t> buffer;
  if (buffer.size() < bytes + 64) buffer.resize(bytes + 64);
  const size_t address = reinterpret_cast<size_t>(buffer.data());
  return buffer.data() + (64 - address % 64) % 64;
}

// Rows [r_begin, r_end) of a packed Q4_0 / Q4_1 / Q8_0 matrix against the first n_tok / 16 * 16
// of n_tok (<= kTokenChunk) tokens, whose planar rows lie act_stride bytes apart (act[k].qs =
// act[0].qs + k * act_stride). Returns how many tokens it did; the caller runs the rest on
// PackedRows. A group the range cuts is computed whole and stored in part, as PackedRows does.
// Groups outer, token tiles inner: each group's weights come from memory once per call and
// stay in L1 / L2 for the other tiles (the nibble formats' unpacked once into the scratch).
template <DType kT>
HWY_INLINE size_t AmxPackedRowsOf(const MatrixView& w, const detail::PlanarQ8* act, size_t act_stride, size_t n_tok,
                                  float* y, size_t y_stride, size_t r_begin, size_t r_end) {
  constexpr size_t kMaxTiles = detail::kTokenChunk / kAmxTok;
  constexpr size_t kQuantBytes = kT == DType::Q8_0 ? 512 : 256;
  const size_t n_tiles = n_tok / kAmxTok < kMaxTiles ? n_tok / kAmxTok : kMaxTiles;
  if (n_tiles == 0 || r_begin >= r_end) return 0;
  const size_t n_block = w.n_col / 32, stride = packed_group_stride(w.dtype, w.n_col);
  // Scratch: the tokens' scales and s slots per tile and block, transposed; the nibble
  // formats' B tiles of one group.
  const size_t scale_floats = n_tiles * n_block * kAmxTok;
  uint8_t* scratch = AmxScratch(2 * scale_floats * sizeof(float) + (kT == DType::Q8_0 ? 0 : n_block * 512));
  auto* ad = reinterpret_cast<float*>(scratch);
  float* as = ad + scale_floats;
  uint8_t* unpacked = scratch + 2 * scale_floats * sizeof(float);
  for (size_t t = 0; t < n_tiles * kAmxTok; ++t)
    for (size_t b = 0; b < n_block; ++b) {
      const size_t at = (t / kAmxTok * n_block + b) * kAmxTok + t % kAmxTok;
      ad[at] = act[t].d[b];
      if (kT != DType::Q8_0) std::memcpy(as + at, act[t].s + b, sizeof(float));  // Q4_0: an int32's bits
    }
  AmxLoadStageConfig();
  const __m512i nibble = _mm512_set1_epi8(0x0f);
  HWY_ALIGN float out[kAmxTok][kPackRows];
  for (size_t g = r_begin / kPackRows; g * kPackRows < r_end; ++g) {
    const uint8_t* q = reinterpret_cast<const uint8_t*>(w.packed) + g * stride;
    const uint8_t* dw = q + n_block * kQuantBytes;
    const uint8_t* mw = dw + n_block * 2 * kPackRows;
    const uint8_t* bt = q;
    if constexpr (kT != DType::Q8_0) {
      for (size_t b = 0; b < n_block; ++b) {
        const uint8_t* blk = q + b * kQuantBytes;
        PrefetchAhead<kQuantBytes>(blk);
        for (size_t c = 0; c < 4; ++c) {
          const __m512i raw = _mm512_load_si512(blk + 64 * c);
          _mm512_store_si512(unpacked + 512 * b + 64 * c, _mm512_and_si512(raw, nibble));
          _mm512_store_si512(unpacked + 512 * b + 64 * (c + 4), _mm512_and_si512(_mm512_srli_epi16(raw, 4), nibble));
        }
      }
      bt = unpacked;
    }
    const size_t row0 = g * kPackRows;
    const size_t lo = r_begin > row0 ? r_begin - row0 : 0;
    const size_t hi = r_end - row0 < kPackRows ? r_end - row0 : kPackRows;
    for (size_t i = 0; i < n_tiles; ++i) {
      const size_t t0 = i * kAmxTok;
      AmxGroupTile<kT>(bt, dw, mw, n_block, act[t0].qs, act_stride, ad + i * n_block * kAmxTok,
                       as + i * n_block * kAmxTok, out);
      for (size_t k = 0; k < kAmxTok; ++k) StoreGroup(y + (t0 + k) * y_stride + row0, out[k], lo, hi);
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

// Q4_K in the x16 layout (packed.hpp's Q4_K record), 16 tokens' Q8_K activations against one
// group of 16 rows: PackedQ4KGroup's integers and its double steps. Per super-block b and
// group g of 32 elements, the tile stage sums q * a exactly (the nibbles unpacked to B tiles,
// `bt` holding group g of super-block b at bt + 512 (8 b + g)); isum += scale_g * that, in
// int32 as there; after the eighth group, the mins against the activations' group sums and
// AddSuperBlockTerm, per token, in super-block order. Token k's blocks are at act[0] + k *
// act_stride bytes.
HWY_INLINE void AmxQ4KGroupTile(const uint8_t* HWY_RESTRICT bt, const uint8_t* HWY_RESTRICT rec, size_t n_sb,
                                const quant::BlockQ8_K* const* act, size_t act_stride, float (*out)[kPackRows]) {
  HWY_ALIGN int32_t sums[2][kAmxTok * kPackRows];
  HWY_ALIGN double sum[kAmxTok][kPackRows];
  for (size_t k = 0; k < kAmxTok; ++k)
    for (size_t h = 0; h < 2; ++h) _mm512_store_pd(sum[k] + 8 * h, _mm512_setzero_pd());
  const int8_t* a0 = act[0]->qs;
  auto stage = [&](size_t i) {  // i = 8 b + g
    const int8_t* a = a0 + i / 8 * sizeof(quant::BlockQ8_K) + 32 * (i % 8);
    if (i % 2 == 0)
      EMBER_AMX_STAGE(0, 4, 6, a, bt + 512 * i, sums[0], false);
    else
      EMBER_AMX_STAGE(1, 5, 7, a, bt + 512 * i, sums[1], false);
  };
  const size_t n_stage = 8 * n_sb;
  stage(0);
  for (size_t b = 0; b < n_sb; ++b, rec += kQ4KRecordBytes) {
    __m512i isum[kAmxTok];
#pragma GCC unroll 16
    for (size_t k = 0; k < kAmxTok; ++k) isum[k] = _mm512_setzero_si512();
    for (size_t g = 0; g < 8; ++g) {
      const size_t i = 8 * b + g;
      if (i + 1 < n_stage) stage(i + 1);
      const int32_t* c = sums[i % 2];
      const __m512i sc = _mm512_cvtepu8_epi32(_mm_load_si128(reinterpret_cast<const __m128i*>(rec + 2048 + 16 * g)));
#pragma GCC unroll 16
      for (size_t k = 0; k < kAmxTok; ++k)
        isum[k] = _mm512_add_epi32(isum[k], _mm512_mullo_epi32(_mm512_load_si512(c + kPackRows * k), sc));
    }
    const __m512 dw = _mm512_cvtph_ps(_mm256_load_si256(reinterpret_cast<const __m256i*>(rec + 2048 + 128 + 256)));
    const __m512 dmw =
        _mm512_cvtph_ps(_mm256_load_si256(reinterpret_cast<const __m256i*>(rec + 2048 + 128 + 256 + 32)));
#pragma GCC unroll 16
    for (size_t k = 0; k < kAmxTok; ++k) {
      const quant::BlockQ8_K& a = act[k][b];
      int16_t group[8];
      for (size_t j = 0; j < 8; ++j) group[j] = int16_t(a.bsums[2 * j] + a.bsums[2 * j + 1]);
      __m512i ms = _mm512_setzero_si512();
      for (size_t j = 0; j < 4; ++j) {
        int32_t pair;
        std::memcpy(&pair, group + 2 * j, sizeof(pair));
        ms = _mm512_dpwssd_epi32(ms, _mm512_load_si512(rec + 2048 + 128 + 64 * j), _mm512_set1_epi32(pair));
      }
      AddSuperBlockTerm(sum[k], dw, dmw, a.d, isum[k], ms);
    }
  }
  for (size_t k = 0; k < kAmxTok; ++k)
    for (size_t h = 0; h < 2; ++h) _mm256_storeu_ps(out[k] + 8 * h, _mm512_cvtpd_ps(_mm512_load_pd(sum[k] + 8 * h)));
}

// Rows [r_begin, r_end) of a packed Q4_K matrix against the first n_tok / 16 * 16 of n_tok (<=
// kTokenChunk) tokens' Q8_K rows, act_stride bytes apart. Returns how many tokens it did (0 for
// other formats: Q6_K's groups of 16 stay on PackedKRows); PackedKRows takes the rest. Groups
// outer, as AmxPackedRowsOf: a group's quants unpacked once into B tiles, then each token tile.
HWY_INLINE size_t AmxPackedQ4KRows(const MatrixView& w, const quant::BlockQ8_K* const* act, size_t act_stride,
                                   size_t n_tok, float* y, size_t y_stride, size_t r_begin, size_t r_end) {
  constexpr size_t kMaxTiles = detail::kTokenChunk / kAmxTok;
  const size_t n_tiles = n_tok / kAmxTok < kMaxTiles ? n_tok / kAmxTok : kMaxTiles;
  if (w.dtype != DType::Q4_K || n_tiles == 0 || r_begin >= r_end) return 0;
  const size_t n_sb = w.n_col / 256, stride = packed_group_stride(w.dtype, w.n_col);
  uint8_t* unpacked = AmxScratch(n_sb * 8 * 512);
  AmxLoadStageConfig();
  const __m512i low = _mm512_set1_epi8(0x0f);
  HWY_ALIGN float out[kAmxTok][kPackRows];
  for (size_t g = r_begin / kPackRows; g * kPackRows < r_end; ++g) {
    const uint8_t* rec = reinterpret_cast<const uint8_t*>(w.packed) + g * stride;
    for (size_t b = 0; b < n_sb; ++b) {
      const uint8_t* r = rec + b * kQ4KRecordBytes;
      PrefetchAhead<kQ4KRecordBytes>(r);
      for (size_t p = 0; p < 4; ++p)  // groups 2p (low nibbles) and 2p + 1 (high)
        for (size_t j = 0; j < 8; ++j) {
          const __m512i raw = _mm512_load_si512(r + 64 * (8 * p + j));
          uint8_t* dst = unpacked + 512 * (8 * b + 2 * p) + 64 * j;
          _mm512_store_si512(dst, _mm512_and_si512(raw, low));
          _mm512_store_si512(dst + 512, _mm512_and_si512(_mm512_srli_epi16(raw, 4), low));
        }
    }
    const size_t row0 = g * kPackRows;
    const size_t lo = r_begin > row0 ? r_begin - row0 : 0;
    const size_t hi = r_end - row0 < kPackRows ? r_end - row0 : kPackRows;
    for (size_t i = 0; i < n_tiles; ++i) {
      const size_t t0 = i * kAmxTok;
      AmxQ4KGroupTile(unpacked, rec, n_sb, act + t0, act_stride, out);
      for (size_t k = 0; k < kAmxTok; ++k) StoreGroup(y + (t0 + k) * y_stride + row0, out[k], lo, hi);
    }
  }
  AmxRelease();
  return n_tiles * kAmxTok;
}

size_t AmxPackedKRows(const MatrixView& w, const quant::BlockQ8_K* const* act, size_t act_stride, size_t n_tok,
                      float* y, size_t y_stride, size_t r_begin, size_t r_end) {
  return AmxPackedQ4KRows(w, act, act_stride, n_tok, y, y_stride, r_begin, r_end);
}

#undef EMBER_AMX_STAGE
#undef EMBER_AMX_LOAD
#undef EMBER_AMX_STORE
#undef EMBER_AMX_ZERO
#undef EMBER_AMX_DOT_SS
#undef EMBER_AMX_DOT_SU
