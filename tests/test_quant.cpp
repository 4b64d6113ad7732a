// Quantization tests: bit-exact agreement with the PyPI `gguf` package's numpy
// code, row-length errors, and a round-trip error budget per format.
//
// Vectors live in tests/data/quant/, written by tools/make_quant_vectors.py
// (run it with --check to confirm they are current). Headerless little-endian
// files, two per case, n elements each (n = float32 file size / 4):
//   <type>.dequant.in   blocks of <type> as stored in GGUF
//   <type>.dequant.out  float32[n], numpy's dequantization of the blocks
//   <type>.quant.in     float32[n]
//   <type>.quant.out    blocks of <type>, numpy's quantization of the floats
// <type> is the lower-case GGML type name (q4_0, q6_k, bf16, ...). numpy has
// no Q8_1 / Q8_K code: their .dequant.out is the script's own d * q, and Q8_1
// quantization is checked against Q8_0 here instead of against a file.
//
// numpy cannot quantize to K-quants either: for Q4_K / Q5_K / Q6_K the
// expected bytes come from llama.cpp itself (its llama_model_quantize run on
// a tiny F32 model), written by tools/make_kquant_vectors.py (same --check):
//   kquant.llamacpp.in   float32[n], shared by the three formats
//   <type>.llamacpp.out  blocks of <type>, llama.cpp's quantization of it
#include <doctest/doctest.h>

#include <bit>
#include <cctype>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <string>
#include <vector>

#include "ember/quant/quant.hpp"

#ifndef EMBER_TESTS_DIR
#error "EMBER_TESTS_DIR must name the repository's tests/ folder"
#endif

namespace {

using ember::DType;
namespace quant = ember::quant;

// Round-trip budgets: RMS of (dequantize(quantize(x)) - x) over RMS of x per
// block of 32, averaged over Gaussian data whose scale varies from block to
// block (1e-3..1e2). Measured with this file's data in the comments; budgets
// add about 25%, so a change that loses precision fails and noise does not.
constexpr double kBudgetQ4_0 = 0.105;   // measured 0.0846
constexpr double kBudgetQ4_1 = 0.097;   // measured 0.0773
constexpr double kBudgetQ5_0 = 0.053;   // measured 0.0421
constexpr double kBudgetQ5_1 = 0.047;   // measured 0.0376
constexpr double kBudgetQ8_0 = 0.0066;  // measured 0.00530
constexpr double kBudgetQ8_1 = 0.0066;  // measured 0.00530 (same quants as Q8_0)
constexpr double kBudgetF16 = 0.00026;  // measured 0.000205
constexpr double kBudgetBF16 = 0.0021;  // measured 0.00164
// K-quants, per super-block of 256 (their scales are relative to the
// super-block's largest group, so the data's scale varies per 256 here).
constexpr double kBudgetQ4_K = 0.089;   // measured 0.0711
constexpr double kBudgetQ5_K = 0.045;   // measured 0.0361
constexpr double kBudgetQ6_K = 0.0224;  // measured 0.0179

template <DType T>
struct Format {
  static constexpr DType dtype = T;
};

std::string lower_name(DType t) {
  std::string s(ember::name(t));
  for (char& c : s) c = char(std::tolower(static_cast<unsigned char>(c)));
  return s;
}

std::vector<unsigned char> read_vector_file(const std::string& file_name) {
  const std::string path = std::string(EMBER_TESTS_DIR) + "/data/quant/" + file_name;
  std::vector<unsigned char> bytes;
  std::FILE* f = std::fopen(path.c_str(), "rb");
  if (f == nullptr) {
    FAIL("cannot open " << path << " (run tools/make_quant_vectors.py)");
    return bytes;
  }
  unsigned char chunk[4096];
  size_t n_read;
  while ((n_read = std::fread(chunk, 1, sizeof chunk, f)) > 0) bytes.insert(bytes.end(), chunk, chunk + n_read);
  std::fclose(f);
  return bytes;
}

std::vector<float> as_floats(const std::vector<unsigned char>& bytes) {
  REQUIRE(bytes.size() % sizeof(float) == 0);
  std::vector<float> values(bytes.size() / sizeof(float));
  if (!values.empty()) std::memcpy(values.data(), bytes.data(), bytes.size());
  return values;
}

// The error message, or nothing: doctest may print a message with a passing
// assertion (-s), when calling error() on a success would assert.
std::string message_of(const ember::Result<void>& result) {
  return result.ok() ? std::string() : result.error().message();
}

std::string hex_bits(float x) {
  char text[16];
  std::snprintf(text, sizeof text, "0x%08x", std::bit_cast<uint32_t>(x));
  return text;
}

// Compares float bit patterns (so -0 != +0 and NaN payloads count) and
// reports how many differ and the first one.
void check_same_bits(const std::vector<float>& got, const std::vector<float>& want) {
  REQUIRE(got.size() == want.size());
  if (got.empty()) return;
  size_t n_different = 0, first = 0;
  for (size_t i = 0; i < got.size(); ++i) {
    if (std::bit_cast<uint32_t>(got[i]) != std::bit_cast<uint32_t>(want[i])) {
      if (n_different++ == 0) first = i;
    }
  }
  CHECK_MESSAGE(n_different == 0, n_different << " of " << got.size() << " differ; first at " << first << ": got "
                                              << hex_bits(got[first]) << " (" << got[first] << "), want "
                                              << hex_bits(want[first]) << " (" << want[first] << ")");
}

void check_same_bytes(const std::vector<unsigned char>& got, const std::vector<unsigned char>& want,
                      size_t block_bytes) {
  REQUIRE(got.size() == want.size());
  if (got.empty()) return;
  size_t n_different = 0, first = 0;
  for (size_t i = 0; i < got.size(); ++i) {
    if (got[i] != want[i] && n_different++ == 0) first = i;
  }
  CHECK_MESSAGE(n_different == 0, n_different << " of " << got.size() << " bytes differ; first at byte " << first
                                              << " (block " << first / block_bytes << ", byte " << first % block_bytes
                                              << "): got " << int(got[first]) << ", want " << int(want[first]));
}

// splitmix64: a portable, seeded stream (std:: distributions differ between
// standard libraries).
class Random {
 public:
  explicit Random(uint64_t seed) : state_(seed) {}
  uint64_t next() {
    uint64_t z = (state_ += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
  }
  double uniform() { return double(next() >> 11) * 0x1.0p-53; }  // [0, 1)
  double normal() {                                              // Box-Muller
    const double u = 1.0 - uniform(), v = uniform();
    return std::sqrt(-2.0 * std::log(u)) * std::cos(6.283185307179586 * v);
  }

 private:
  uint64_t state_;
};

// Gaussian data, its scale drawn per 32 elements from 1e-3..1e2 as weights
// of different tensors would be.
std::vector<float> gaussian_blocks(size_t n, uint64_t seed) {
  Random random(seed);
  std::vector<float> x(n);
  double scale = 1.0;
  for (size_t i = 0; i < n; ++i) {
    if (i % 32 == 0) scale = std::pow(10.0, -3.0 + 5.0 * random.uniform());
    x[i] = float(scale * random.normal());
  }
  return x;
}

// As gaussian_blocks, with the scale drawn per `span` elements.
std::vector<float> gaussian_spans(size_t n, size_t span, uint64_t seed) {
  Random random(seed);
  std::vector<float> x(n);
  double scale = 1.0;
  for (size_t i = 0; i < n; ++i) {
    if (i % span == 0) scale = std::pow(10.0, -3.0 + 5.0 * random.uniform());
    x[i] = float(scale * random.normal());
  }
  return x;
}

// Relative RMS of (y - x) per span of elements, averaged over the spans: the
// data's scale varies by 1e5 between spans, and a plain RMS would only see
// the largest ones.
double mean_relative_rms(const std::vector<float>& x, const std::vector<float>& y, size_t span) {
  double sum_relative = 0.0;
  for (size_t b = 0; b < x.size() / span; ++b) {
    double error = 0.0, signal = 0.0;
    for (size_t j = span * b; j < span * b + span; ++j) {
      error += (double(y[j]) - x[j]) * (double(y[j]) - x[j]);
      signal += double(x[j]) * x[j];
    }
    sum_relative += std::sqrt(error / signal);
  }
  return sum_relative / double(x.size() / span);
}

#define EMBER_DEQUANTIZE_FORMATS                                                                               \
  Format<DType::F32>, Format<DType::F16>, Format<DType::BF16>, Format<DType::Q4_0>, Format<DType::Q4_1>,       \
      Format<DType::Q5_0>, Format<DType::Q5_1>, Format<DType::Q8_0>, Format<DType::Q8_1>, Format<DType::Q2_K>, \
      Format<DType::Q3_K>, Format<DType::Q4_K>, Format<DType::Q5_K>, Format<DType::Q6_K>, Format<DType::Q8_K>

#define EMBER_LLAMACPP_QUANTIZE_FORMATS Format<DType::Q4_K>, Format<DType::Q5_K>, Format<DType::Q6_K>

#define EMBER_NUMPY_QUANTIZE_FORMATS                                                                      \
  Format<DType::F16>, Format<DType::BF16>, Format<DType::Q4_0>, Format<DType::Q4_1>, Format<DType::Q5_0>, \
      Format<DType::Q5_1>, Format<DType::Q8_0>

// Block structs agree with dtype.hpp's geometry; a mismatch fails to compile.
template <DType T>
constexpr bool block_matches_dtype() {
  using Traits = quant::BlockTraits<T>;
  return sizeof(typename Traits::Block) == ember::block_bytes(T) && Traits::block_size == ember::block_size(T) &&
         Traits::dtype == T;
}
static_assert(block_matches_dtype<DType::F32>());
static_assert(block_matches_dtype<DType::F16>());
static_assert(block_matches_dtype<DType::BF16>());
static_assert(block_matches_dtype<DType::Q4_0>());
static_assert(block_matches_dtype<DType::Q4_1>());
static_assert(block_matches_dtype<DType::Q5_0>());
static_assert(block_matches_dtype<DType::Q5_1>());
static_assert(block_matches_dtype<DType::Q8_0>());
static_assert(block_matches_dtype<DType::Q8_1>());
static_assert(block_matches_dtype<DType::Q2_K>());
static_assert(block_matches_dtype<DType::Q3_K>());
static_assert(block_matches_dtype<DType::Q4_K>());
static_assert(block_matches_dtype<DType::Q5_K>());
static_assert(block_matches_dtype<DType::Q6_K>());
static_assert(block_matches_dtype<DType::Q8_K>());

}  // namespace

TEST_CASE_TEMPLATE("block struct sizes match the GGUF type table", F, EMBER_DEQUANTIZE_FORMATS) {
  using Traits = quant::BlockTraits<F::dtype>;
  CHECK(sizeof(typename Traits::Block) == ember::block_bytes(F::dtype));
  CHECK(Traits::block_size == ember::block_size(F::dtype));
  CHECK(quant::can_dequantize(F::dtype));
}

TEST_CASE_TEMPLATE("dequantize matches the gguf package bit for bit", F, EMBER_DEQUANTIZE_FORMATS) {
  constexpr DType t = F::dtype;
  using Traits = quant::BlockTraits<t>;
  const std::string stem = lower_name(t);
  CAPTURE(stem);
  const std::vector<unsigned char> blocks = read_vector_file(stem + ".dequant.in");
  const std::vector<float> want = as_floats(read_vector_file(stem + ".dequant.out"));
  const size_t n = want.size();
  REQUIRE(n > 0);
  REQUIRE(n % Traits::block_size == 0);
  REQUIRE(blocks.size() == ember::row_bytes(t, n));

  SUBCASE("dequantize_row") {
    std::vector<float> got(n);
    const auto result = quant::dequantize_row(t, blocks.data(), got.data(), n);
    REQUIRE_MESSAGE(result.ok(), message_of(result));
    check_same_bits(got, want);
  }
  SUBCASE("typed, from a misaligned source") {
    for (size_t offset = 1; offset < 4; ++offset) {
      CAPTURE(offset);
      std::vector<unsigned char> shifted(blocks.size() + offset);
      std::memcpy(shifted.data() + offset, blocks.data(), blocks.size());
      std::vector<float> got(n);
      quant::dequantize<t>(shifted.data() + offset, got.data(), n / Traits::block_size);
      check_same_bits(got, want);
    }
  }
  SUBCASE("one block at a time") {
    std::vector<float> got(n);
    for (size_t i = 0; i < n / Traits::block_size; ++i) {
      typename Traits::Block block;
      std::memcpy(&block, blocks.data() + i * Traits::block_bytes, sizeof block);
      quant::dequantize_block(block, got.data() + i * Traits::block_size);
    }
    check_same_bits(got, want);
  }
}

// Quantizes the floats of `in_file` three ways (quantize_row; typed, to a destination
// `offset` bytes off; block by block from a misaligned source) and compares each with the
// bytes of `out_file`.
template <DType t>
void check_quantizer(const std::string& in_file, const std::string& out_file, size_t offset) {
  using Traits = quant::BlockTraits<t>;
  const std::vector<float> x = as_floats(read_vector_file(in_file));
  const std::vector<unsigned char> want = read_vector_file(out_file);
  const size_t n = x.size();
  REQUIRE(n > 0);
  REQUIRE(want.size() == ember::row_bytes(t, n));
  REQUIRE(quant::can_quantize(t));

  SUBCASE("quantize_row") {
    std::vector<unsigned char> got(want.size());
    const auto result = quant::quantize_row(t, x.data(), got.data(), n);
    REQUIRE_MESSAGE(result.ok(), message_of(result));
    check_same_bytes(got, want, Traits::block_bytes);
  }
  SUBCASE("typed, to a misaligned destination") {
    std::vector<unsigned char> shifted(want.size() + offset);
    quant::quantize<t>(x.data(), shifted.data() + offset, n / Traits::block_size);
    const std::vector<unsigned char> got(shifted.begin() + offset, shifted.end());
    check_same_bytes(got, want, Traits::block_bytes);
  }
  SUBCASE("one block at a time, from a misaligned source") {
    std::vector<float> shifted(n + 1);
    std::memcpy(shifted.data() + 1, x.data(), n * sizeof(float));
    std::vector<unsigned char> got(want.size());
    for (size_t i = 0; i < n / Traits::block_size; ++i) {
      typename Traits::Block block;
      quant::quantize_block(shifted.data() + 1 + i * Traits::block_size, block);
      std::memcpy(got.data() + i * Traits::block_bytes, &block, sizeof block);
    }
    check_same_bytes(got, want, Traits::block_bytes);
  }
}

TEST_CASE_TEMPLATE("quantize matches the gguf package bit for bit", F, EMBER_NUMPY_QUANTIZE_FORMATS) {
  const std::string stem = lower_name(F::dtype);
  CAPTURE(stem);
  check_quantizer<F::dtype>(stem + ".quant.in", stem + ".quant.out", 1);
}

TEST_CASE_TEMPLATE("K-quant quantization matches llama.cpp byte for byte", F, EMBER_LLAMACPP_QUANTIZE_FORMATS) {
  const std::string stem = lower_name(F::dtype);
  CAPTURE(stem);
  check_quantizer<F::dtype>("kquant.llamacpp.in", stem + ".llamacpp.out", 3);
}

// numpy has no Q8_1: its quants and d must equal Q8_0's, and s = d * sum(q)
// computed with the float d before f16 rounding (ggml's quantize_row_q8_1_ref).
TEST_CASE("Q8_1 quantization is Q8_0 plus the scaled sum") {
  const std::vector<float> x = as_floats(read_vector_file("q8_0.quant.in"));
  const size_t n_blocks = x.size() / 32;
  std::vector<quant::BlockQ8_0> q8_0(n_blocks);
  std::vector<quant::BlockQ8_1> q8_1(n_blocks);
  REQUIRE(quant::quantize_row(DType::Q8_0, x.data(), q8_0.data(), x.size()).ok());
  REQUIRE(quant::quantize_row(DType::Q8_1, x.data(), q8_1.data(), x.size()).ok());
  size_t n_wrong = 0;
  for (size_t i = 0; i < n_blocks; ++i) {
    float amax = 0.0f;
    for (size_t j = 0; j < 32; ++j) amax = std::fmax(amax, std::fabs(x[32 * i + j]));
    const float d = amax / 127.0f;
    int sum = 0;
    for (int8_t q : q8_1[i].qs) sum += q;
    const bool same = q8_1[i].d_f16 == q8_0[i].d_f16 && std::memcmp(q8_1[i].qs, q8_0[i].qs, sizeof q8_0[i].qs) == 0 &&
                      q8_1[i].s_f16 == ember::f32_to_f16(float(sum) * d);
    if (!same) ++n_wrong;
  }
  CHECK(n_wrong == 0);
}

TEST_CASE("row lengths that are not a multiple of the block size are errors") {
  std::vector<unsigned char> bytes(4096);
  std::vector<float> floats(1024);

  SUBCASE("dequantize") {
    const auto result = quant::dequantize_row(DType::Q4_K, bytes.data(), floats.data(), 1000);
    REQUIRE_FALSE(result.ok());
    CHECK(result.error().code() == ember::Errc::invalid_argument);
    const std::string& message = result.error().message();
    CAPTURE(message);
    CHECK(message.find("Q4_K") != std::string::npos);
    CHECK(message.find("1000") != std::string::npos);
    CHECK(message.find("256") != std::string::npos);
  }
  SUBCASE("quantize") {
    const auto result = quant::quantize_row(DType::Q8_0, floats.data(), bytes.data(), 33);
    REQUIRE_FALSE(result.ok());
    CHECK(result.error().code() == ember::Errc::invalid_argument);
    const std::string& message = result.error().message();
    CAPTURE(message);
    CHECK(message.find("Q8_0") != std::string::npos);
    CHECK(message.find("33") != std::string::npos);
    CHECK(message.find("32") != std::string::npos);
  }
  SUBCASE("an empty row is fine") {
    CHECK(quant::dequantize_row(DType::Q6_K, nullptr, nullptr, 0).ok());
    CHECK(quant::quantize_row(DType::Q4_0, nullptr, nullptr, 0).ok());
  }
  SUBCASE("null pointers") {
    CHECK(quant::dequantize_row(DType::Q4_0, nullptr, floats.data(), 32).error().code() ==
          ember::Errc::invalid_argument);
    CHECK(quant::quantize_row(DType::Q4_0, floats.data(), nullptr, 32).error().code() == ember::Errc::invalid_argument);
  }
}

TEST_CASE("types without a scalar implementation are unsupported, unknown ids invalid") {
  std::vector<unsigned char> bytes(4096);
  std::vector<float> floats(1024);
  CHECK_FALSE(quant::can_dequantize(DType::IQ2_XXS));
  CHECK_FALSE(quant::can_quantize(DType::Q3_K));
  const auto dequantized = quant::dequantize_row(DType::IQ2_XXS, bytes.data(), floats.data(), 256);
  REQUIRE_FALSE(dequantized.ok());
  CHECK(dequantized.error().code() == ember::Errc::unsupported);
  CHECK(dequantized.error().message().find("IQ2_XXS") != std::string::npos);
  const auto quantized = quant::quantize_row(DType::Q3_K, floats.data(), bytes.data(), 256);
  REQUIRE_FALSE(quantized.ok());
  CHECK(quantized.error().code() == ember::Errc::unsupported);
  // Id 4 was Q4_2, removed from ggml; a file may still carry it.
  const auto unknown = quant::dequantize_row(static_cast<DType>(4), bytes.data(), floats.data(), 32);
  REQUIRE_FALSE(unknown.ok());
  CHECK(unknown.error().code() == ember::Errc::invalid_argument);
}

TEST_CASE("quantize then dequantize stays within each format's error budget") {
  struct Budget {
    DType dtype;
    double max_relative_rms;
  };
  const Budget budgets[] = {
      {DType::Q4_0, kBudgetQ4_0}, {DType::Q4_1, kBudgetQ4_1}, {DType::Q5_0, kBudgetQ5_0}, {DType::Q5_1, kBudgetQ5_1},
      {DType::Q8_0, kBudgetQ8_0}, {DType::Q8_1, kBudgetQ8_1}, {DType::F16, kBudgetF16},   {DType::BF16, kBudgetBF16},
  };
  constexpr size_t n = 16384;
  const std::vector<float> x = gaussian_blocks(n, 0x5eed);
  for (const Budget& budget : budgets) {
    const std::string name(ember::name(budget.dtype));
    CAPTURE(name);
    std::vector<unsigned char> blocks(ember::row_bytes(budget.dtype, n));
    std::vector<float> y(n);
    REQUIRE(quant::quantize_row(budget.dtype, x.data(), blocks.data(), n).ok());
    REQUIRE(quant::dequantize_row(budget.dtype, blocks.data(), y.data(), n).ok());
    const double relative_rms = mean_relative_rms(x, y, 32);
    CHECK_MESSAGE(relative_rms < budget.max_relative_rms,
                  name << " relative RMS error " << relative_rms << ", budget " << budget.max_relative_rms);
  }
}

TEST_CASE("K-quants: quantize then dequantize stays within each format's error budget") {
  struct Budget {
    DType dtype;
    double max_relative_rms;
  };
  const Budget budgets[] = {{DType::Q4_K, kBudgetQ4_K}, {DType::Q5_K, kBudgetQ5_K}, {DType::Q6_K, kBudgetQ6_K}};
  constexpr size_t n = 65536;
  const std::vector<float> x = gaussian_spans(n, 256, 0x5eed);
  for (const Budget& budget : budgets) {
    const std::string name(ember::name(budget.dtype));
    CAPTURE(name);
    std::vector<unsigned char> blocks(ember::row_bytes(budget.dtype, n));
    std::vector<float> y(n);
    REQUIRE(quant::quantize_row(budget.dtype, x.data(), blocks.data(), n).ok());
    REQUIRE(quant::dequantize_row(budget.dtype, blocks.data(), y.data(), n).ok());
    const double relative_rms = mean_relative_rms(x, y, 256);
    CHECK_MESSAGE(relative_rms < budget.max_relative_rms,
                  name << " relative RMS error " << relative_rms << ", budget " << budget.max_relative_rms);
  }
}

TEST_CASE("quantize_block handles a zero block and keeps the largest value exact") {
  float zeros[32] = {};
  quant::BlockQ4_0 q4;
  quant::quantize_block(zeros, q4);
  float back[32];
  quant::dequantize_block(q4, back);
  for (float v : back) CHECK(v == 0.0f);

  // The largest-magnitude element maps to -8 * d, so it survives exactly when
  // d is an f16 value.
  float x[32];
  for (int j = 0; j < 32; ++j) x[j] = float(j % 7) - 3.0f;
  x[5] = -16.0f;  // d = 2
  quant::quantize_block(x, q4);
  quant::dequantize_block(q4, back);
  CHECK(back[5] == -16.0f);
  CHECK(ember::f16_to_f32(q4.d_f16) == 2.0f);
}
