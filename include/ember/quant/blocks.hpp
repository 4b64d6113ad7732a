// Quantized block layouts, byte for byte as ggml stores them in GGUF files
// (ggml-common.h). Weights are memory-mapped and read in place, so these
// structs are the on-disk format: every size is pinned with a static_assert.
//
// Conventions: `d` is the block scale, `m` / `dmin` the block (super-block)
// minimum, `qs` the low bits of the quants, `qh` / `hmask` their high bits.
// Fields named `*_f16` hold IEEE half bits (see core/half.hpp); ggml stores
// no other float than Q8_K's `d`.
#pragma once

#include <cstddef>
#include <cstdint>

#include "ember/core/half.hpp"
#include "ember/tensor/dtype.hpp"

namespace ember::quant {

// Elements per block of the legacy formats and of the K-quant super-blocks.
inline constexpr size_t kLegacyBlockSize = 32;
inline constexpr size_t kSuperBlockSize = 256;
// Bytes of packed 6-bit scales and mins in Q4_K / Q5_K (and of Q3_K's scales).
inline constexpr size_t kPackedScaleBytes = 12;

// x = d * (q - 8), q in 0..15.
struct BlockQ4_0 {
  uint16_t d_f16;
  uint8_t qs[kLegacyBlockSize / 2];  // element j in the low nibble of qs[j], j + 16 in the high one
};

// x = d * q + m, q in 0..15.
struct BlockQ4_1 {
  uint16_t d_f16;
  uint16_t m_f16;
  uint8_t qs[kLegacyBlockSize / 2];
};

// x = d * (q - 16), q in 0..31; bit 4 of element j is bit j of qh (little-endian u32).
struct BlockQ5_0 {
  uint16_t d_f16;
  uint8_t qh[4];
  uint8_t qs[kLegacyBlockSize / 2];
};

// x = d * q + m, q in 0..31.
struct BlockQ5_1 {
  uint16_t d_f16;
  uint16_t m_f16;
  uint8_t qh[4];
  uint8_t qs[kLegacyBlockSize / 2];
};

// x = d * q, q in -128..127.
struct BlockQ8_0 {
  uint16_t d_f16;
  int8_t qs[kLegacyBlockSize];
};

// Q8_0 plus s = d * sum(q): the activation side of Q4_1 / Q5_1 dot products.
struct BlockQ8_1 {
  uint16_t d_f16;
  uint16_t s_f16;
  int8_t qs[kLegacyBlockSize];
};

// 16 groups of 16: x = d * (scales[g] & 15) * q - dmin * (scales[g] >> 4), q in 0..3.
struct BlockQ2_K {
  uint8_t scales[kSuperBlockSize / 16];
  uint8_t qs[kSuperBlockSize / 4];
  uint16_t d_f16;
  uint16_t dmin_f16;
};

// 16 groups of 16: x = d * (scale[g] - 32) * (q - 4 * !high_bit), 6-bit scales packed in 12 bytes.
struct BlockQ3_K {
  uint8_t hmask[kSuperBlockSize / 8];
  uint8_t qs[kSuperBlockSize / 4];
  uint8_t scales[kPackedScaleBytes];
  uint16_t d_f16;
};

// 8 groups of 32: x = d * scale[g] * q - dmin * min[g], 6-bit scales and mins, q in 0..15.
struct BlockQ4_K {
  uint16_t d_f16;
  uint16_t dmin_f16;
  uint8_t scales[kPackedScaleBytes];
  uint8_t qs[kSuperBlockSize / 2];
};

// As Q4_K with a fifth bit per quant in qh.
struct BlockQ5_K {
  uint16_t d_f16;
  uint16_t dmin_f16;
  uint8_t scales[kPackedScaleBytes];
  uint8_t qh[kSuperBlockSize / 8];
  uint8_t qs[kSuperBlockSize / 2];
};

// 16 groups of 16: x = d * scales[g] * (q - 32), q in 0..63 split 4 + 2 bits.
struct BlockQ6_K {
  uint8_t ql[kSuperBlockSize / 2];
  uint8_t qh[kSuperBlockSize / 4];
  int8_t scales[kSuperBlockSize / 16];
  uint16_t d_f16;
};

// x = d * q with a float scale; bsums (sums of 16 quants) feed K-quant dot products.
struct BlockQ8_K {
  float d;
  int8_t qs[kSuperBlockSize];
  int16_t bsums[kSuperBlockSize / 16];
};

static_assert(sizeof(BlockQ4_0) == 18);
static_assert(sizeof(BlockQ4_1) == 20);
static_assert(sizeof(BlockQ5_0) == 22);
static_assert(sizeof(BlockQ5_1) == 24);
static_assert(sizeof(BlockQ8_0) == 34);
static_assert(sizeof(BlockQ8_1) == 36);
static_assert(sizeof(BlockQ2_K) == 84);
static_assert(sizeof(BlockQ3_K) == 110);
static_assert(sizeof(BlockQ4_K) == 144);
static_assert(sizeof(BlockQ5_K) == 176);
static_assert(sizeof(BlockQ6_K) == 210);
static_assert(sizeof(BlockQ8_K) == 292);

// Block type and geometry of a DType. Plain float formats count as blocks of
// one element, so code templated on the type needs no special case.
template <DType T>
struct BlockTraits;  // left undefined for types without a block struct (yet)

#define EMBER_QUANT_BLOCK_TRAITS(dtype_, Block_, n_elements_)          \
  template <>                                                          \
  struct BlockTraits<DType::dtype_> {                                  \
    using Block = Block_;                                              \
    static constexpr DType dtype = DType::dtype_;                      \
    static constexpr size_t block_size = n_elements_;                  \
    static constexpr size_t block_bytes = sizeof(Block_);              \
    static_assert(block_size == ::ember::block_size(DType::dtype_));   \
    static_assert(block_bytes == ::ember::block_bytes(DType::dtype_)); \
  };

EMBER_QUANT_BLOCK_TRAITS(F32, float, 1)
EMBER_QUANT_BLOCK_TRAITS(F16, ::ember::f16, 1)
EMBER_QUANT_BLOCK_TRAITS(BF16, ::ember::bf16, 1)
EMBER_QUANT_BLOCK_TRAITS(Q4_0, BlockQ4_0, kLegacyBlockSize)
EMBER_QUANT_BLOCK_TRAITS(Q4_1, BlockQ4_1, kLegacyBlockSize)
EMBER_QUANT_BLOCK_TRAITS(Q5_0, BlockQ5_0, kLegacyBlockSize)
EMBER_QUANT_BLOCK_TRAITS(Q5_1, BlockQ5_1, kLegacyBlockSize)
EMBER_QUANT_BLOCK_TRAITS(Q8_0, BlockQ8_0, kLegacyBlockSize)
EMBER_QUANT_BLOCK_TRAITS(Q8_1, BlockQ8_1, kLegacyBlockSize)
EMBER_QUANT_BLOCK_TRAITS(Q2_K, BlockQ2_K, kSuperBlockSize)
EMBER_QUANT_BLOCK_TRAITS(Q3_K, BlockQ3_K, kSuperBlockSize)
EMBER_QUANT_BLOCK_TRAITS(Q4_K, BlockQ4_K, kSuperBlockSize)
EMBER_QUANT_BLOCK_TRAITS(Q5_K, BlockQ5_K, kSuperBlockSize)
EMBER_QUANT_BLOCK_TRAITS(Q6_K, BlockQ6_K, kSuperBlockSize)
EMBER_QUANT_BLOCK_TRAITS(Q8_K, BlockQ8_K, kSuperBlockSize)

#undef EMBER_QUANT_BLOCK_TRAITS

// True where BlockTraits<T> is defined.
template <DType T>
concept HasBlockTraits = requires {
  typename BlockTraits<T>::Block;
};

// Scale and min of group j (0..7) of a Q4_K / Q5_K super-block. Twelve bytes
// hold eight 6-bit scales and eight 6-bit mins: groups 0..3 in the low six bits
// of bytes 0..7, groups 4..7 split between the nibbles of bytes 8..11 and the
// top two bits of bytes 0..7 (ggml's get_scale_min_k4).
inline void unpack_scale_min_k4(const uint8_t* scales, int j, uint8_t& scale, uint8_t& min) {
  if (j < 4) {
    scale = scales[j] & 63;
    min = scales[j + 4] & 63;
  } else {
    scale = uint8_t((scales[j + 4] & 0x0f) | ((scales[j - 4] >> 6) << 4));
    min = uint8_t((scales[j + 4] >> 4) | ((scales[j] >> 6) << 4));
  }
}

// Signed 6-bit scale of group j (0..15) of a Q3_K super-block, in -32..31.
// Low four bits: nibble (j / 8) of byte j % 8; high two bits: bits 2 * (j / 4)
// of byte 8 + j % 4.
inline int unpack_scale_q3_k(const uint8_t* scales, int j) {
  const int low = (scales[j % 8] >> (4 * (j / 8))) & 0x0f;
  const int high = (scales[8 + j % 4] >> (2 * (j / 4))) & 0x03;
  return (low | (high << 4)) - 32;
}

}  // namespace ember::quant
