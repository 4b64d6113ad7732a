// Every GGML tensor type id, with its block geometry. Ids are the on-disk values in GGUF.
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string_view>

namespace ember {

enum class DType : uint32_t {
  F32 = 0,
  F16 = 1,
  Q4_0 = 2,
  Q4_1 = 3,  // 4, 5: removed Q4_2, Q4_3
  Q5_0 = 6,
  Q5_1 = 7,
  Q8_0 = 8,
  Q8_1 = 9,
  Q2_K = 10,
  Q3_K = 11,
  Q4_K = 12,
  Q5_K = 13,
  Q6_K = 14,
  Q8_K = 15,
  IQ2_XXS = 16,
  IQ2_XS = 17,
  IQ3_XXS = 18,
  IQ1_S = 19,
  IQ4_NL = 20,
  IQ3_S = 21,
  IQ2_S = 22,
  IQ4_XS = 23,
  I8 = 24,
  I16 = 25,
  I32 = 26,
  I64 = 27,
  F64 = 28,
  IQ1_M = 29,
  BF16 = 30,
  // 31..33: removed Q4_0_4_4, Q4_0_4_8, Q4_0_8_8
  TQ1_0 = 34,
  TQ2_0 = 35,
  // 36..38: removed IQ4_NL_4_4, IQ4_NL_4_8, IQ4_NL_8_8
  MXFP4 = 39,
};

struct DTypeInfo {
  std::string_view name;
  uint32_t block_size;   // elements per block
  uint32_t block_bytes;  // bytes per block
};

// Geometry of a type id, or nothing for an id that no GGML version defines.
constexpr std::optional<DTypeInfo> dtype_info(uint32_t id) {
  switch (id) {
    case 0: return DTypeInfo{"F32", 1, 4};
    case 1: return DTypeInfo{"F16", 1, 2};
    case 2: return DTypeInfo{"Q4_0", 32, 18};
    case 3: return DTypeInfo{"Q4_1", 32, 20};
    case 6: return DTypeInfo{"Q5_0", 32, 22};
    case 7: return DTypeInfo{"Q5_1", 32, 24};
    case 8: return DTypeInfo{"Q8_0", 32, 34};
    case 9: return DTypeInfo{"Q8_1", 32, 36};
    case 10: return DTypeInfo{"Q2_K", 256, 84};
    case 11: return DTypeInfo{"Q3_K", 256, 110};
    case 12: return DTypeInfo{"Q4_K", 256, 144};
    case 13: return DTypeInfo{"Q5_K", 256, 176};
    case 14: return DTypeInfo{"Q6_K", 256, 210};
    case 15: return DTypeInfo{"Q8_K", 256, 292};
    case 16: return DTypeInfo{"IQ2_XXS", 256, 66};
    case 17: return DTypeInfo{"IQ2_XS", 256, 74};
    case 18: return DTypeInfo{"IQ3_XXS", 256, 98};
    case 19: return DTypeInfo{"IQ1_S", 256, 50};
    case 20: return DTypeInfo{"IQ4_NL", 32, 18};
    case 21: return DTypeInfo{"IQ3_S", 256, 110};
    case 22: return DTypeInfo{"IQ2_S", 256, 82};
    case 23: return DTypeInfo{"IQ4_XS", 256, 136};
    case 24: return DTypeInfo{"I8", 1, 1};
    case 25: return DTypeInfo{"I16", 1, 2};
    case 26: return DTypeInfo{"I32", 1, 4};
    case 27: return DTypeInfo{"I64", 1, 8};
    case 28: return DTypeInfo{"F64", 1, 8};
    case 29: return DTypeInfo{"IQ1_M", 256, 56};
    case 30: return DTypeInfo{"BF16", 1, 2};
    case 34: return DTypeInfo{"TQ1_0", 256, 54};
    case 35: return DTypeInfo{"TQ2_0", 256, 66};
    case 39: return DTypeInfo{"MXFP4", 32, 17};
    default: return std::nullopt;
  }
}

constexpr DTypeInfo info(DType t) { return *dtype_info(static_cast<uint32_t>(t)); }
constexpr std::string_view name(DType t) { return info(t).name; }
constexpr uint32_t block_size(DType t) { return info(t).block_size; }
constexpr uint32_t block_bytes(DType t) { return info(t).block_bytes; }

// Bytes of a row of n elements; n must be a multiple of the block size.
constexpr size_t row_bytes(DType t, size_t n) { return n / block_size(t) * block_bytes(t); }

constexpr std::optional<DType> dtype_from_name(std::string_view s) {
  for (uint32_t id = 0; id < 40; ++id) {
    auto i = dtype_info(id);
    if (i && i->name == s) return static_cast<DType>(id);
  }
  return std::nullopt;
}

}  // namespace ember
