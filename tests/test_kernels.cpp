// Kernel backends against the scalar oracle: every op of Highway (on every
// target this CPU runs, with and without AVX-512 VNNI where the CPU has it)
// and of Xsimd (on every arch the compiler flags allow) is compared with
// Reference by normalized error, over sizes that hit every vector tail, odd
// block counts, strides, sub-ranges of rows and misaligned weights. Matmul
// must also be bit-identical under any split of rows and tokens (the
// determinism rule).
//
// Matmul quantizes activations as ggml does (quant/activations.hpp): the
// activation quantizers are checked against hand-computed blocks, Reference's
// quantized dot products against dequantized blocks summed in double, and the
// SIMD backends against Reference, which they must match up to float
// summation order (the quantized activations are the same bits).
//
// Normalized error of a matmul output: |y - y_ref| / sum_j |w_j * x_j|, the
// measure of ggml's test-backend-ops; it is scale-free and does not blow up
// when an output happens to cancel to near zero.
#include <doctest/doctest.h>

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <limits>
#include <memory>
#include <string>
#include <tuple>
#include <type_traits>
#include <vector>

#include "ember/attention/attention.hpp"
#include "ember/core/half.hpp"
#include "ember/kernels/kernels.hpp"
#include "ember/kernels/packed.hpp"
#include "ember/quant/activations.hpp"
#include "ember/quant/quant.hpp"

namespace {

using ember::DType;
using ember::kernels::Highway;
using ember::kernels::MatrixView;
using ember::kernels::Reference;
using ember::kernels::Xsimd;
namespace quant = ember::quant;

// ------------------------------------------------------------ error budgets
//
// Matmul, max normalized error against Reference. Both sides take the same
// integer block sums (or exact f16 products); the vector paths add the
// blocks' float terms with another association than the double-precision
// oracle, so only summation order separates them. Measured worst values
// (x86-64, every Highway target with and without VNNI, Xsimd sse2..avx512bw)
// are in the comments; one activation quant off by one (a wrong rounding) or
// a dropped scale lands orders of magnitude above these.
constexpr double kBudgetF32 = 1e-6;   // measured 1.3e-7
constexpr double kBudgetF16 = 1e-6;   // measured 1.2e-7
constexpr double kBudgetBF16 = 1e-6;  // products exact in float, float sums; measured 6.7e-8
constexpr double kBudgetQ8_0 = 1e-6;  // measured 7.8e-8
constexpr double kBudgetQ4_0 = 1e-6;  // measured 5.7e-8
// Q4_1 sums d_w*d_a*sum(q*a) + m*s: the two terms may cancel, so its error is
// relative to |d*q| + |m| rather than to |w|.
constexpr double kBudgetQ4_1 = 2e-6;  // measured 6.4e-8
constexpr double kBudgetQ5_0 = 1e-6;  // measured 6.2e-8
constexpr double kBudgetQ5_1 = 2e-6;  // as Q4_1; measured 6.0e-8
// The K-quant kernels (Q2_K .. Q6_K) take each super-block's exact integer
// sums and add its term in double, in block order, exactly as Reference does:
// bit-identical, like the formats without vector code, which run Reference's
// own matmul.
constexpr double kBudgetExact = 0.0;

double matmul_budget(DType t) {
  switch (t) {
    case DType::F32: return kBudgetF32;
    case DType::F16: return kBudgetF16;
    case DType::BF16: return kBudgetBF16;
    case DType::Q8_0: return kBudgetQ8_0;
    case DType::Q4_0: return kBudgetQ4_0;
    case DType::Q4_1: return kBudgetQ4_1;
    case DType::Q5_0: return kBudgetQ5_0;
    case DType::Q5_1: return kBudgetQ5_1;
    default: return kBudgetExact;
  }
}

// Vector ops: relative error against the oracle (dot: normalized as matmul).
// Measured worst over all targets in the comments.
constexpr double kBudgetDot = 1e-6;          // measured 8.1e-8
constexpr double kBudgetElementwise = 1e-6;  // axpy/add/scale: one rounding apart; 6.0e-8
constexpr double kBudgetRmsNorm = 4e-6;      // float sum of squares; 8.6e-7 on SCALAR
constexpr double kBudgetSoftmax = 5e-6;      // vector exp, float sum; 1.7e-6 on SCALAR
constexpr double kBudgetSilu = 1e-6;         // vector exp vs libm expf; 2.4e-7
constexpr double kBudgetLayerNorm = 1e-5;    // absolute (outputs ~1), float sums; 3.0e-6 on SCALAR
constexpr double kBudgetGelu = 3e-5;         // exp's float argument (~80 at x = -10, a few ulp); 1.0e-5

// Every format the quant layer dequantizes, and those with vector code in
// some backend (both have all of kVectorFormats on x86: Xsimd's K-quants on its
// AVX2 and AVX-512 archs).
const DType kFormats[] = {DType::F32,  DType::F16,  DType::Q8_0, DType::Q4_0, DType::Q4_1,
                          DType::BF16, DType::Q5_0, DType::Q5_1, DType::Q8_1, DType::Q2_K,
                          DType::Q3_K, DType::Q4_K, DType::Q5_K, DType::Q6_K, DType::Q8_K};
const DType kVectorFormats[] = {DType::F32,  DType::F16,  DType::BF16, DType::Q8_0, DType::Q4_0,
                                DType::Q4_1, DType::Q5_0, DType::Q5_1, DType::Q2_K, DType::Q3_K,
                                DType::Q4_K, DType::Q5_K, DType::Q6_K};

// ------------------------------------------------------------------ inputs

// splitmix64: a seeded, portable generator, so failures reproduce anywhere.
struct Rng {
  uint64_t s;
  explicit Rng(uint64_t seed) : s(seed) {}
  uint64_t next() {
    uint64_t z = (s += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
  }
  float uniform(float lo, float hi) { return lo + (hi - lo) * float(next() >> 40) * 0x1p-24f; }
  float sign() { return (next() & 1) ? 1.0f : -1.0f; }
};

std::vector<float> random_floats(size_t n, Rng& rng, float lo = -1, float hi = 1) {
  std::vector<float> v(n);
  for (float& f : v) f = rng.uniform(lo, hi);
  return v;
}

void put_f16(unsigned char* p, float v) {
  const uint16_t h = ember::f32_to_f16(v);
  std::memcpy(p, &h, sizeof(h));
}

// Scale fields of a block (f16 unless noted), for giving random blocks sane scales.
struct ScaleFields {
  size_t offsets[2];
  size_t count;
  bool f32 = false;  // Q8_K keeps its d as a float
};

ScaleFields scale_fields(DType t) {
  using namespace quant;
  switch (t) {
    case DType::Q4_0: return {{offsetof(BlockQ4_0, d_f16)}, 1};
    case DType::Q4_1: return {{offsetof(BlockQ4_1, d_f16), offsetof(BlockQ4_1, m_f16)}, 2};
    case DType::Q5_0: return {{offsetof(BlockQ5_0, d_f16)}, 1};
    case DType::Q5_1: return {{offsetof(BlockQ5_1, d_f16), offsetof(BlockQ5_1, m_f16)}, 2};
    case DType::Q8_0: return {{offsetof(BlockQ8_0, d_f16)}, 1};
    case DType::Q8_1: return {{offsetof(BlockQ8_1, d_f16), offsetof(BlockQ8_1, s_f16)}, 2};
    case DType::Q2_K: return {{offsetof(BlockQ2_K, d_f16), offsetof(BlockQ2_K, dmin_f16)}, 2};
    case DType::Q3_K: return {{offsetof(BlockQ3_K, d_f16)}, 1};
    case DType::Q4_K: return {{offsetof(BlockQ4_K, d_f16), offsetof(BlockQ4_K, dmin_f16)}, 2};
    case DType::Q5_K: return {{offsetof(BlockQ5_K, d_f16), offsetof(BlockQ5_K, dmin_f16)}, 2};
    case DType::Q6_K: return {{offsetof(BlockQ6_K, d_f16)}, 1};
    case DType::Q8_K: return {{offsetof(BlockQ8_K, d)}, 1, true};
    default: return {{}, 0};
  }
}

// Fills n_row rows of weights of type t: random quants with scales of either
// sign in a range a real model has, or random values for float formats.
void fill_weights(DType t, unsigned char* dst, size_t n_row, size_t n_col, Rng& rng) {
  const size_t n = n_row * n_col;
  switch (t) {
    case DType::F32:
      for (size_t i = 0; i < n; ++i) {
        const float v = rng.uniform(-1, 1);
        std::memcpy(dst + 4 * i, &v, 4);
      }
      return;
    case DType::F16:
      for (size_t i = 0; i < n; ++i) put_f16(dst + 2 * i, rng.uniform(-1, 1));
      return;
    case DType::BF16:
      for (size_t i = 0; i < n; ++i) {
        const uint16_t h = ember::f32_to_bf16(rng.uniform(-1, 1));
        std::memcpy(dst + 2 * i, &h, 2);
      }
      return;
    default: break;
  }
  const size_t bytes = n_row * ember::row_bytes(t, n_col);
  for (size_t i = 0; i < bytes; ++i) dst[i] = static_cast<unsigned char>(rng.next());
  const ScaleFields f = scale_fields(t);
  const size_t block = ember::block_bytes(t);
  for (size_t b = 0; b < bytes / block; ++b) {
    for (size_t k = 0; k < f.count; ++k) {
      const float v = rng.sign() * rng.uniform(0.002f, 0.05f);
      unsigned char* p = dst + b * block + f.offsets[k];
      if (f.f32) {
        std::memcpy(p, &v, 4);
      } else {
        put_f16(p, v);
      }
    }
  }
}

// A byte buffer whose data() sits `misalign` bytes past a 64-byte boundary.
struct Buffer {
  std::vector<unsigned char> storage;
  unsigned char* ptr;
  Buffer(size_t bytes, size_t misalign) : storage(bytes + 128) {
    const auto a = reinterpret_cast<uintptr_t>(storage.data());
    ptr = storage.data() + ((64 - a % 64) % 64) + misalign;
  }
  unsigned char* data() { return ptr; }
};

// ------------------------------------------------------ backends under test

// The default xsimd arch for this TU's flags (no -m flags on x86-64: SSE2),
// then the lesser archs those flags also allow, each listed once.
using XsimdArchs = std::tuple<xsimd::default_arch
#if XSIMD_WITH_AVX512BW && XSIMD_WITH_FMA3_AVX2
                              ,
                              xsimd::fma3<xsimd::avx2>
#endif
#if XSIMD_WITH_AVX2 && (XSIMD_WITH_FMA3_AVX2 || XSIMD_WITH_AVX512F)
                              ,
                              xsimd::avx2
#endif
#if XSIMD_WITH_SSE4_1 && XSIMD_WITH_AVX
                              ,
                              xsimd::sse4_1
#endif
#if XSIMD_WITH_SSE2 && XSIMD_WITH_SSE3
                              ,
                              xsimd::sse2
#endif
                              >;

// Calls f(std::type_identity<Backend>{}, label) for Highway on every target
// this CPU runs (the AVX3 targets twice, with and without VNNI, where the CPU
// has it), then for Xsimd on every arch in XsimdArchs.
template <class F>
void for_each_backend(F&& f) {
  const std::vector<std::string> targets = Highway::available_targets();
  REQUIRE(!targets.empty());
  for (const std::string& target : targets) {
    REQUIRE(Highway::force_target(target));
    const bool has_vnni_path = target == "AVX3" || target == "AVX3_DL";
    if (has_vnni_path && Highway::vnni_available()) {
      f(std::type_identity<Highway>{}, "Highway/" + target + "+VNNI");
      Highway::set_vnni_enabled(false);
      f(std::type_identity<Highway>{}, "Highway/" + target + " without VNNI");
      Highway::set_vnni_enabled(true);
    } else {
      f(std::type_identity<Highway>{}, "Highway/" + target);
    }
  }
  Highway::reset_target();
  std::apply(
      [&](auto... archs) {
        (f(std::type_identity<Xsimd<decltype(archs)>>{}, std::string("Xsimd/") + decltype(archs)::name()), ...);
      },
      XsimdArchs{});
}

// ----------------------------------------------------------------- matmul

struct MatmulCase {
  DType t;
  size_t n_row, n_col, n_tok;
  size_t misalign;    // bytes added to the weights' address
  bool ties = false;  // activations whose Q8 quantization meets exact halves
};

// Runs one case on backend B against Reference; returns the worst normalized
// error and checks that rows outside the requested range stay untouched.
template <class B>
double matmul_error(const MatmulCase& c, uint64_t seed, bool* wrote_outside) {
  Rng rng(seed);
  const size_t rb = ember::row_bytes(c.t, c.n_col);
  Buffer w_buf(c.n_row * rb, c.misalign);
  fill_weights(c.t, w_buf.data(), c.n_row, c.n_col, rng);
  const MatrixView w{c.t, w_buf.data(), c.n_row, c.n_col, rb};

  // Activations with a stride: the gap holds NaN, so reading past a row shows.
  const size_t x_stride = c.n_col + 3;
  std::vector<float> x(c.n_tok * x_stride + 1, std::numeric_limits<float>::quiet_NaN());
  float* x0 = x.data() + 1;  // 4-byte but not vector aligned
  for (size_t k = 0; k < c.n_tok; ++k) {
    for (size_t j = 0; j < c.n_col; ++j) {
      float v = rng.uniform(-1, 1);
      if (c.ties) {
        // amax 127 in every block of 32 makes 127 / amax exactly 1, so
        // x * id lands on k + 0.5: rounding must go to even everywhere.
        v = j % 32 == 0 ? 127.0f * rng.sign() : float(int(rng.next() % 254) - 127) + 0.5f;
      }
      x0[k * x_stride + j] = v;
    }
  }

  const size_t y_stride = c.n_row + 2;
  const float kSentinel = 12345.0f;
  std::vector<float> y_ref(c.n_tok * y_stride, kSentinel), y(c.n_tok * y_stride, kSentinel);
  Reference::matmul(w, x0, x_stride, c.n_tok, y_ref.data(), y_stride, 0, c.n_row);

  // A range that starts mid-matrix when there is room, then the rest.
  const size_t r_mid = c.n_row / 3, r_end = c.n_row - c.n_row / 4;
  B::matmul(w, x0, x_stride, c.n_tok, y.data(), y_stride, r_mid, r_end);
  for (size_t k = 0; k < c.n_tok; ++k) {
    for (size_t r = 0; r < y_stride; ++r) {
      const bool inside = r >= r_mid && r < r_end;
      if (!inside && y[k * y_stride + r] != kSentinel) *wrote_outside = true;
    }
  }
  B::matmul(w, x0, x_stride, c.n_tok, y.data(), y_stride, 0, r_mid);
  B::matmul(w, x0, x_stride, c.n_tok, y.data(), y_stride, r_end, c.n_row);
  for (size_t k = 0; k < c.n_tok; ++k) {  // the stride gap
    for (size_t r = c.n_row; r < y_stride; ++r) {
      if (y[k * y_stride + r] != kSentinel) *wrote_outside = true;
    }
  }

  std::vector<float> row(c.n_col);
  double worst = 0;
  for (size_t r = 0; r < c.n_row; ++r) {
    REQUIRE(quant::dequantize_row(c.t, w.row(r), row.data(), c.n_col).ok());
    for (size_t k = 0; k < c.n_tok; ++k) {
      double norm = 0;
      for (size_t j = 0; j < c.n_col; ++j) norm += std::fabs(double(row[j]) * x0[k * x_stride + j]);
      const double got = y[k * y_stride + r], want = y_ref[k * y_stride + r];
      double err = std::fabs(got - want) / (norm > 0 ? norm : 1.0);
      if (!std::isfinite(got) || !std::isfinite(want)) err = std::numeric_limits<double>::infinity();
      if (matmul_budget(c.t) == 0.0 && got != want) err = std::max(err, 1e-30);
      worst = std::max(worst, err);
    }
  }
  return worst;
}

// Column counts: for dense rows, every tail length of every vector width; for
// blocks, 1, a few odd counts and a count past one 4-vector group.
std::vector<size_t> column_counts(DType t) {
  const size_t bs = ember::block_size(t);
  if (bs == 1) {
    return {1, 2, 3, 5, 7, 8, 9, 15, 16, 17, 31, 32, 33, 47, 63, 64, 65, 100, 127, 129, 256, 300};
  }
  if (bs == 32) return {32, 64, 96, 160, 224, 256, 544};
  return {256, 512, 768};
}

TEST_CASE("kernels: Xsimd's integer f16 conversion is exact for all 65536 values") {
  // The path for flags without F16C; with F16C, load_f16 uses the hardware.
  std::vector<uint16_t> all(65536 + 16);
  for (size_t i = 0; i < all.size(); ++i) all[i] = uint16_t(i);
  std::apply(
      [&](auto... archs) {
        (
            [&]<class A>(A) {
              namespace detail = ember::kernels::xsimd_detail;
              constexpr size_t N = xsimd::batch<float, A>::size;
              size_t mismatches = 0;
              for (size_t i = 0; i < 65536; i += N) {
                alignas(64) float got[N], via_load[N];
                detail::f16_bits_to_float<A>(detail::widen_u16<A>(all.data() + i)).store_aligned(got);
                detail::load_f16<A>(all.data() + i).store_aligned(via_load);
                for (size_t j = 0; j < N; ++j) {
                  const float want = ember::f16_to_f32(uint16_t(i + j));
                  if (std::isnan(want)) {
                    mismatches += !std::isnan(got[j]) || !std::isnan(via_load[j]);
                  } else {
                    mismatches += std::memcmp(&got[j], &want, 4) != 0;
                    mismatches += std::memcmp(&via_load[j], &want, 4) != 0;
                  }
                }
              }
              INFO(A::name());
              CHECK(mismatches == 0);
            }(archs),
            ...);
      },
      XsimdArchs{});
}

TEST_CASE("kernels: Highway target control") {
  const std::vector<std::string> targets = Highway::available_targets();
  REQUIRE(!targets.empty());
  for (const std::string& t : targets) {
    CHECK(Highway::force_target(t));
    CHECK(std::string(Highway::current_target()) == t);
  }
  CHECK_FALSE(Highway::force_target("NOT_A_TARGET"));
  Highway::reset_target();
  CHECK(std::string(Highway::current_target()) == targets.front());
  // Forcing must not shrink what is reported as available.
  REQUIRE(Highway::force_target(targets.back()));
  CHECK(Highway::available_targets() == targets);
  CHECK(std::string(Highway::current_target()) == targets.back());
  Highway::reset_target();
}

TEST_CASE("kernels: every backend supports every format the quant layer reads") {
  for (DType t : kFormats) {
    INFO(ember::name(t));
    CHECK(Reference::supports(t));
    CHECK(Highway::supports(t));
    CHECK(Xsimd<>::supports(t));
  }
  CHECK_FALSE(Reference::supports(static_cast<DType>(4)));  // Q4_2, removed from ggml
}

// ------------------------------------------------- activation quantization

std::vector<float> zeros(size_t n) { return std::vector<float>(n, 0.0f); }

TEST_CASE("activations: the activation type of each weight format is ggml's vec_dot_type") {
  using quant::activation_type;
  for (DType t : {DType::Q4_0, DType::Q5_0, DType::Q8_0}) CHECK(activation_type(t) == DType::Q8_0);
  for (DType t : {DType::Q4_1, DType::Q5_1}) CHECK(activation_type(t) == DType::Q8_1);
  for (DType t : {DType::Q2_K, DType::Q3_K, DType::Q4_K, DType::Q5_K, DType::Q6_K}) {
    CHECK(activation_type(t) == DType::Q8_K);
  }
  CHECK(activation_type(DType::F16) == DType::F16);
  CHECK(activation_type(DType::BF16) == DType::BF16);
  // No ggml CPU dot product for these as weights: activations stay f32.
  for (DType t : {DType::F32, DType::Q8_1, DType::Q8_K}) CHECK(activation_type(t) == DType::F32);
}

TEST_CASE("activations: Q8_0 and Q8_1 blocks round ties to even, as ggml's x86 code") {
  SUBCASE("amax 127: id = 1, so x itself is rounded") {
    std::vector<float> x = zeros(32);
    const float in[] = {127, 0.5f, 1.5f, 2.5f, -0.5f, -1.5f, -2.5f, 3.5f, -3.5f, 126.5f, -126.5f, 0.49999997f, 2.6f};
    const int8_t want[] = {127, 0, 2, 2, 0, -2, -2, 4, -4, 126, -126, 0, 3};
    std::copy(std::begin(in), std::end(in), x.begin());
    quant::BlockQ8_0 b;
    quant::quantize_activations(x.data(), &b, 32);
    CHECK(b.d_f16 == ember::f32_to_f16(1.0f));
    for (size_t j = 0; j < std::size(want); ++j) {
      INFO("x = ", in[j]);
      CHECK(int(b.qs[j]) == int(want[j]));
    }
    for (size_t j = std::size(want); j < 32; ++j) CHECK(b.qs[j] == 0);
  }
  SUBCASE("amax 1: id = 127, d = 1/127; Q8_1's s is f16(d * sum(q)) with the unrounded d") {
    std::vector<float> x = zeros(32);
    x[0] = 1.0f;    // 127
    x[1] = 0.5f;    // 63.5 -> 64
    x[2] = -0.5f;   // -63.5 -> -64
    x[3] = 0.25f;   // 31.75 -> 32
    x[31] = -1.0f;  // the same magnitude as x[0]: -127
    quant::BlockQ8_1 b;
    quant::quantize_activations(x.data(), &b, 32);
    CHECK(b.d_f16 == ember::f32_to_f16(1.0f / 127.0f));
    CHECK(int(b.qs[0]) == 127);
    CHECK(int(b.qs[1]) == 64);
    CHECK(int(b.qs[2]) == -64);
    CHECK(int(b.qs[3]) == 32);
    CHECK(int(b.qs[31]) == -127);
    // s = f16(d * sum(q)), d = amax / 127 in float, sum(q) = 127 + 64 - 64 + 32 - 127.
    const float d = 1.0f / 127.0f;
    CHECK(b.s_f16 == ember::f32_to_f16(d * 32.0f));
    CHECK(ember::f16_to_f32(b.s_f16) == doctest::Approx(32.0 / 127).epsilon(1e-3));
  }
  SUBCASE("an all-zero block has d = 0, s = 0 and zero quants") {
    const std::vector<float> x = zeros(64);
    quant::BlockQ8_1 b[2];
    quant::quantize_activations(x.data(), b, 64);
    for (const auto& blk : b) {
      CHECK(blk.d_f16 == 0);
      CHECK(blk.s_f16 == 0);
      for (int8_t q : blk.qs) CHECK(q == 0);
    }
  }
}

TEST_CASE("activations: Q8_K maps the signed element of largest magnitude to -127") {
  SUBCASE("negative max: iscale = 64, positive elements may reach +127") {
    std::vector<float> x = zeros(256);
    const float m = 127.0f / 64.0f;  // exact: iscale = -127 / -m = 64
    x[0] = 0.5f / 64;                // 0.5 -> 0
    x[1] = 1.5f / 64;                // 1.5 -> 2
    x[2] = 2.5f / 64;                // 2.5 -> 2
    x[3] = -m;                       // the max: -127
    x[4] = -0.5f / 64;               // -0.5 -> 0
    x[5] = -2.5f / 64;               // -2.5 -> -2
    x[6] = -3.5f / 64;               // -3.5 -> -4
    x[10] = m;                       // same magnitude, later: not the max; 127
    x[17] = 1.0f;                    // group 1: 64
    x[255] = -1.0f;                  // group 15: -64
    quant::BlockQ8_K b;
    quant::quantize_activations(x.data(), &b, 256);
    CHECK(b.d == 1.0f / 64.0f);
    const int want[] = {0, 2, 2, -127, 0, -2, -4};
    for (size_t j = 0; j < std::size(want); ++j) CHECK(int(b.qs[j]) == want[j]);
    CHECK(int(b.qs[10]) == 127);
    CHECK(int(b.qs[17]) == 64);
    CHECK(int(b.qs[255]) == -64);
    CHECK(b.bsums[0] == 0 + 2 + 2 - 127 + 0 - 2 - 4 + 127);
    CHECK(b.bsums[1] == 64);
    CHECK(b.bsums[15] == -64);
    for (size_t g = 2; g < 15; ++g) CHECK(b.bsums[g] == 0);
  }
  SUBCASE("positive max: iscale and d are negative") {
    std::vector<float> x = zeros(256);
    x[0] = 2.0f;   // iscale = -63.5: -127
    x[1] = -1.0f;  // 63.5 -> 64
    x[2] = 1.0f;   // -63.5 -> -64
    x[3] = -2.0f;  // 127
    quant::BlockQ8_K b;
    quant::quantize_activations(x.data(), &b, 256);
    CHECK(b.d == 1.0f / (-127.0f / 2.0f));
    CHECK(b.d < 0);
    CHECK(int(b.qs[0]) == -127);
    CHECK(int(b.qs[1]) == 64);
    CHECK(int(b.qs[2]) == -64);
    CHECK(int(b.qs[3]) == 127);
    CHECK(b.bsums[0] == -127 + 64 - 64 + 127);
  }
  SUBCASE("an all-zero block has d = 0 and zero quants and sums") {
    const std::vector<float> x = zeros(256);
    quant::BlockQ8_K b;
    std::memset(&b, 0x5a, sizeof(b));
    quant::quantize_activations(x.data(), &b, 256);
    CHECK(b.d == 0.0f);
    for (int8_t q : b.qs) CHECK(q == 0);
    for (int16_t s : b.bsums) CHECK(s == 0);
  }
}

TEST_CASE("activations: f16 and bf16 activations round to nearest even") {
  const float x[] = {1.0f, 1.0f + 0x1p-11f, 1.0f + 0x1p-11f + 0x1p-20f, 1.0f + 3 * 0x1p-11f, -65504.0f};
  ember::f16 h[5];
  quant::quantize_activations(x, h, 5);
  CHECK(h[0].bits == 0x3c00);
  CHECK(h[1].bits == 0x3c00);  // halfway: to even
  CHECK(h[2].bits == 0x3c01);  // just above halfway
  CHECK(h[3].bits == 0x3c02);  // halfway: to even (up)
  CHECK(h[4].bits == 0xfbff);
  ember::bf16 b[2];
  const float y[] = {1.0f + 0x1p-8f, 1.0f + 3 * 0x1p-8f};
  quant::quantize_activations(y, b, 2);
  CHECK(b[0].bits == 0x3f80);
  CHECK(b[1].bits == 0x3f82);
}

TEST_CASE("kernels: Reference's quantized matmul equals dequantized blocks summed in double") {
  // The oracle's block dot products are integer sums times scales. Recompute
  // them independently: quantize the activations, dequantize both sides with
  // quant::dequantize_row and sum the products in double. For Q4_1 / Q5_1,
  // ggml adds m * s with the block's stored s = f16(d * sum(q)), not m times
  // the sum of the dequantized activations: take that difference into account.
  for (DType t : kFormats) {
    const DType act = quant::activation_type(t);
    if (act == DType::F32) continue;
    INFO(ember::name(t), " weights, ", ember::name(act), " activations");
    Rng rng(uint64_t(t) * 7 + 1);
    const size_t n_col = ember::block_size(t) == 256 ? 768 : 224, n_row = 5, n_tok = 3;
    const size_t rb = ember::row_bytes(t, n_col);
    Buffer w_buf(n_row * rb, 3);
    fill_weights(t, w_buf.data(), n_row, n_col, rng);
    const MatrixView w{t, w_buf.data(), n_row, n_col, rb};
    std::vector<float> x(n_tok * n_col);
    for (float& v : x) v = rng.uniform(-2, 2);
    std::vector<float> y(n_tok * n_row);
    Reference::matmul(w, x.data(), n_col, n_tok, y.data(), n_row, 0, n_row);

    std::vector<unsigned char> act_row(ember::row_bytes(act, n_col) + 64);
    void* act_ptr = act_row.data() + (64 - reinterpret_cast<uintptr_t>(act_row.data()) % 64) % 64;
    std::vector<float> a(n_col), wr(n_col);
    double worst = 0;
    for (size_t k = 0; k < n_tok; ++k) {
      quant::quantize_activations(act, x.data() + k * n_col, act_ptr, n_col);
      REQUIRE(quant::dequantize_row(act, act_ptr, a.data(), n_col).ok());
      for (size_t r = 0; r < n_row; ++r) {
        REQUIRE(quant::dequantize_row(t, w.row(r), wr.data(), n_col).ok());
        double want = 0, norm = 0;
        for (size_t j = 0; j < n_col; ++j) {
          want += double(wr[j]) * double(a[j]);
          norm += std::fabs(double(wr[j]) * double(a[j]));
        }
        if (act == DType::Q8_1) {
          const size_t m_offset =
              t == DType::Q4_1 ? offsetof(quant::BlockQ4_1, m_f16) : offsetof(quant::BlockQ5_1, m_f16);
          const auto* blocks = static_cast<const quant::BlockQ8_1*>(act_ptr);
          for (size_t b = 0; b < n_col / 32; ++b) {
            uint16_t m;
            std::memcpy(&m, w.row(r) + b * ember::block_bytes(t) + m_offset, sizeof(m));
            double a_sum = 0;
            for (size_t j = 0; j < 32; ++j) a_sum += a[32 * b + j];
            want += double(ember::f16_to_f32(m)) * (double(ember::f16_to_f32(blocks[b].s_f16)) - a_sum);
          }
        }
        worst = std::max(worst, std::fabs(double(y[k * n_row + r]) - want) / norm);
      }
    }
    INFO("worst normalized difference ", worst);
    CHECK(worst <= 1e-6);
  }
}

TEST_CASE("kernels: quantized activations stay close to the f32 product") {
  // A coarse check of the whole oracle: Q8 activations carry about 8 bits, so
  // the result moves by well under 1% of sum |w * x| (random data: ~2e-4).
  for (DType t : kFormats) {
    if (quant::activation_type(t) == DType::F32) continue;
    INFO(ember::name(t));
    Rng rng(uint64_t(t) + 3);
    const size_t n_col = 512;
    const size_t rb = ember::row_bytes(t, n_col);
    Buffer w_buf(rb, 0);
    fill_weights(t, w_buf.data(), 1, n_col, rng);
    const MatrixView w{t, w_buf.data(), 1, n_col, rb};
    std::vector<float> x = random_floats(n_col, rng), wr(n_col);
    REQUIRE(quant::dequantize_row(t, w.row(0), wr.data(), n_col).ok());
    double exact = 0, norm = 0;
    for (size_t j = 0; j < n_col; ++j) {
      exact += double(wr[j]) * x[j];
      norm += std::fabs(double(wr[j]) * x[j]);
    }
    float y = 0;
    Reference::matmul(w, x.data(), n_col, 1, &y, 1, 0, 1);
    CHECK(std::fabs(y - exact) / norm < 1e-2);
  }
}

TEST_CASE("kernels: Highway's VNNI switch") {
  CHECK(Highway::vnni_enabled() == Highway::vnni_available());
  Highway::set_vnni_enabled(false);
  CHECK_FALSE(Highway::vnni_enabled());
  Highway::set_vnni_enabled(true);
  CHECK(Highway::vnni_enabled() == Highway::vnni_available());
  MESSAGE("AVX512_VNNI available: ", Highway::vnni_available());
}

TEST_CASE("kernels: matmul matches Reference within each format's budget") {
  const size_t n_rows[] = {1, 2, 3, 4, 5, 7, 8, 9, 12, 16, 17};
  for_each_backend([&]<class B>(std::type_identity<B>, const std::string& label) {
    for (DType t : kFormats) {
      double worst = 0;
      std::string worst_case;
      bool wrote_outside = false;
      uint64_t seed = 1;
      for (size_t n_col : column_counts(t)) {
        for (size_t i = 0; i < std::size(n_rows); ++i) {
          // Cover every (n_row, n_tok, misalign) without the full product.
          const size_t n_row = n_rows[i];
          const size_t n_tok = 1 + (i + n_col) % 5;
          const size_t misalign = (i + n_col / 7) % 4;
          const MatmulCase c{t, n_row, n_col, n_tok, misalign};
          const double err = matmul_error<B>(c, ++seed, &wrote_outside);
          if (err > worst || worst_case.empty()) {
            worst = std::max(worst, err);
            worst_case = "n_row=" + std::to_string(n_row) + " n_col=" + std::to_string(n_col) +
                         " n_tok=" + std::to_string(n_tok) + " misalign=" + std::to_string(misalign);
          }
        }
      }
      INFO(label, " ", ember::name(t), " worst at ", worst_case, ": ", worst);
      CHECK(worst <= matmul_budget(t));
      CHECK_FALSE(wrote_outside);
    }
  });
}

TEST_CASE("kernels: SIMD activation quantizers round ties to even as Reference does") {
  // Every activation of these cases quantizes through an exact half; a vector
  // quantizer rounding half away from zero (or truncating) would be off by
  // one quant, which shows at ~1e-4, far above the budgets.
  for_each_backend([&]<class B>(std::type_identity<B>, const std::string& label) {
    for (DType t : kVectorFormats) {
      if (quant::activation_type(t) == DType::F32) continue;
      bool wrote_outside = false;
      double worst = 0;
      uint64_t seed = 100;
      const size_t n_col = ember::block_size(t) == 256 ? 512 : 96;
      for (size_t n_tok : {1, 4, 5}) {
        const MatmulCase c{t, 6, n_col, n_tok, 1, /*ties=*/true};
        worst = std::max(worst, matmul_error<B>(c, ++seed, &wrote_outside));
      }
      INFO(label, " ", ember::name(t), ": ", worst);
      CHECK(worst <= matmul_budget(t));
    }
  });
}

TEST_CASE("kernels: matmul is bit-identical under any split of rows and tokens") {
  for_each_backend([&]<class B>(std::type_identity<B>, const std::string& label) {
    for (DType t : {DType::F32, DType::F16, DType::Q8_0, DType::Q4_0, DType::Q4_1, DType::Q5_1, DType::Q4_K,
                    DType::Q6_K, DType::BF16}) {
      INFO(label, " ", ember::name(t));
      Rng rng(uint64_t(t) + 99);
      const size_t n_row = 13, n_tok = 7;
      const size_t n_col = ember::block_size(t) == 1 ? 203 : ember::block_size(t) * 5;
      const size_t rb = ember::row_bytes(t, n_col);
      Buffer w_buf(n_row * rb, 1);
      fill_weights(t, w_buf.data(), n_row, n_col, rng);
      const MatrixView w{t, w_buf.data(), n_row, n_col, rb};
      std::vector<float> x(n_tok * n_col);
      for (float& v : x) v = rng.uniform(-1, 1);

      std::vector<float> whole(n_tok * n_row), split(n_tok * n_row, 0.0f);
      B::matmul(w, x.data(), n_col, n_tok, whole.data(), n_row, 0, n_row);

      // One row and one token per call.
      for (size_t r = 0; r < n_row; ++r) {
        for (size_t k = 0; k < n_tok; ++k) {
          B::matmul(w, x.data() + k * n_col, n_col, 1, split.data() + k * n_row, n_row, r, r + 1);
        }
      }
      CHECK(std::memcmp(whole.data(), split.data(), whole.size() * sizeof(float)) == 0);

      // Uneven row ranges and token groups (as threads and batches cut them).
      const size_t row_cuts[] = {0, 2, 3, 8, 13};
      const size_t tok_cuts[] = {0, 3, 5, 7};
      std::fill(split.begin(), split.end(), 0.0f);
      for (size_t a = 0; a + 1 < std::size(row_cuts); ++a) {
        for (size_t b = 0; b + 1 < std::size(tok_cuts); ++b) {
          const size_t t0 = tok_cuts[b];
          B::matmul(w, x.data() + t0 * n_col, n_col, tok_cuts[b + 1] - t0, split.data() + t0 * n_row, n_row,
                    row_cuts[a], row_cuts[a + 1]);
        }
      }
      CHECK(std::memcmp(whole.data(), split.data(), whole.size() * sizeof(float)) == 0);
    }
  });
}

TEST_CASE("kernels: Highway's VNNI and AVX2-style int8 paths give the same bits") {
  // The integer block sums are exact either way and the float steps are the
  // same per lane, so switching VNNI (as a CPU difference would) changes nothing.
  if (!Highway::vnni_available()) return;
  for (const std::string& target : Highway::available_targets()) {
    if (target != "AVX3" && target != "AVX3_DL") continue;
    REQUIRE(Highway::force_target(target));
    for (DType t : {DType::Q8_0, DType::Q4_0, DType::Q4_1, DType::Q5_0, DType::Q5_1, DType::Q2_K, DType::Q3_K,
                    DType::Q4_K, DType::Q5_K, DType::Q6_K}) {
      INFO(target, " ", ember::name(t));
      Rng rng(uint64_t(t) + 77);
      const size_t n_row = 9, n_tok = 6;
      const size_t n_col = ember::block_size(t) == 256 ? 768 : 352;  // 11 blocks of 32: pairs and a tail
      const size_t rb = ember::row_bytes(t, n_col);
      Buffer w_buf(n_row * rb, 1);
      fill_weights(t, w_buf.data(), n_row, n_col, rng);
      const MatrixView w{t, w_buf.data(), n_row, n_col, rb};
      const std::vector<float> x = random_floats(n_tok * n_col, rng, -3, 3);
      std::vector<float> with(n_tok * n_row), without(n_tok * n_row);
      Highway::matmul(w, x.data(), n_col, n_tok, with.data(), n_row, 0, n_row);
      Highway::set_vnni_enabled(false);
      Highway::matmul(w, x.data(), n_col, n_tok, without.data(), n_row, 0, n_row);
      Highway::set_vnni_enabled(true);
      CHECK(std::memcmp(with.data(), without.data(), with.size() * sizeof(float)) == 0);
    }
  }
  Highway::reset_target();
}

// ------------------------------------------------- x16 row-interleaved layout

// A matrix with its x16 copy (kernels/packed.hpp), as Model::load prepares it.
struct PackedMatrix {
  Buffer weights, packed;
  MatrixView view;
  PackedMatrix(DType t, size_t n_row, size_t n_col, Rng& rng, size_t misalign)
      : weights(n_row * ember::row_bytes(t, n_col), misalign),
        packed(ember::kernels::packed_bytes(t, n_row, n_col), 0),
        view{t, nullptr, n_row, n_col, ember::row_bytes(t, n_col)} {
    fill_weights(t, weights.data(), n_row, n_col, rng);
    view.data = weights.data();
    ember::kernels::pack_groups(view, reinterpret_cast<std::byte*>(packed.data()), 0,
                                ember::kernels::packed_groups(n_row));
    view.packed = reinterpret_cast<const std::byte*>(packed.data());
  }
};

TEST_CASE("kernels: Highway's AMX switch") {
  CHECK(Highway::amx_enabled() == (Highway::amx_available() && Highway::vnni_enabled()));
  Highway::set_amx_enabled(false);
  CHECK_FALSE(Highway::amx_enabled());
  Highway::set_amx_enabled(true);
  CHECK(Highway::amx_enabled() == (Highway::amx_available() && Highway::vnni_enabled()));
  MESSAGE("AMX-INT8 available (CPU, OS and process permission): ", Highway::amx_available());
}

TEST_CASE("kernels: AMX prefill gives the VNNI kernel's bits") {
  // The tile kernels (amx_x86-inl.hpp) take the tokens in full tiles of 16; their sums are the
  // x16 kernels' exact integers and their epilogues those kernels' float (Q4_K: double) steps,
  // so every output must be bit-identical with AMX off. Token counts
  // that leave one tile, an odd number of tiles, a tail for VNNI, and more than one chunk of
  // 64; rows in an odd number of groups, cut inside groups; rows long enough for a real
  // matrix (2048) and short ones.
  if (!Highway::amx_available()) {
    MESSAGE("no AMX here (CPU, OS or permission): skipped");
    return;
  }
  for (DType t : {DType::Q4_0, DType::Q4_1, DType::Q8_0, DType::Q4_K}) {
    for (size_t n_col : {ember::block_size(t) == 256 ? size_t(512) : size_t(96), size_t(2048)}) {
      Rng rng(uint64_t(t) * 31 + n_col);
      const size_t n_row = 53;  // four groups, the last with 5 rows
      PackedMatrix m(t, n_row, n_col, rng, 0);
      for (size_t n_tok : {size_t(16), size_t(17), size_t(48), size_t(64), size_t(100)}) {
        INFO(ember::name(t), " n_col ", n_col, " n_tok ", n_tok);
        const std::vector<float> x = random_floats(n_tok * n_col, rng, -2, 2);
        std::vector<float> with(n_tok * n_row, 0.0f), without(n_tok * n_row, 0.0f);
        const size_t row_cuts[] = {0, 7, 16, 48, 53};  // groups cut, a pair and a single
        for (size_t a = 0; a + 1 < std::size(row_cuts); ++a)
          Highway::matmul(m.view, x.data(), n_col, n_tok, with.data(), n_row, row_cuts[a], row_cuts[a + 1]);
        Highway::set_amx_enabled(false);
        Highway::matmul(m.view, x.data(), n_col, n_tok, without.data(), n_row, 0, n_row);
        Highway::set_amx_enabled(true);
        CHECK(std::memcmp(with.data(), without.data(), with.size() * sizeof(float)) == 0);
      }
    }
  }
}

TEST_CASE("kernels: the x16 layout holds every block's bytes once, rows padded with zeros") {
  for (DType t : {DType::Q4_0, DType::Q4_1, DType::Q8_0}) {
    INFO(ember::name(t));
    Rng rng{uint64_t(t)};
    const size_t n_row = 21, n_col = 96;
    PackedMatrix m(t, n_row, n_col, rng, 3);
    const size_t stride = ember::kernels::packed_group_stride(t, n_col), n_block = n_col / 32;
    const size_t quant_bytes = ember::kernels::packed_quant_bytes(t), block = ember::row_bytes(t, 32);
    const size_t qs = t == DType::Q4_1 ? 4 : 2, n_qs = block - qs;
    bool same = true;
    for (size_t r = 0; r < 32; ++r) {  // two groups, 11 padding rows
      for (size_t b = 0; b < n_block; ++b) {
        const unsigned char* g = m.packed.data() + r / 16 * stride;
        unsigned char blk[34] = {};
        std::memcpy(blk, g + n_block * quant_bytes + b * 32 + 2 * (r % 16), 2);
        if (t == DType::Q4_1) std::memcpy(blk + 2, g + n_block * (quant_bytes + 32) + b * 32 + 2 * (r % 16), 2);
        for (size_t j = 0; j < n_qs; ++j) blk[qs + j] = g[b * quant_bytes + 64 * (j / 4) + 4 * (r % 16) + j % 4];
        unsigned char want[34] = {};
        if (r < n_row) std::memcpy(want, m.weights.data() + r * ember::row_bytes(t, n_col) + b * block, block);
        same = same && std::memcmp(blk, want, block) == 0;
      }
    }
    CHECK(same);
    CHECK(ember::kernels::packed_bytes(t, n_row, n_col) == 2 * stride);
    CHECK(stride % 64 == 0);
  }
}

TEST_CASE("kernels: x16 packed matmul matches Reference, and its bits depend on nothing but the inputs") {
  // Row ranges that cut groups, tokens past one pass (8 with VNNI, 4 without), padding rows.
  // Q4_K's x16 kernel (VNNI only) gives Reference's bits, like the file layout's kernels.
  for (DType t : {DType::Q4_0, DType::Q4_1, DType::Q8_0, DType::Q4_K, DType::Q6_K}) {
    if ((t == DType::Q4_K || t == DType::Q6_K) && !Highway::vnni_available()) continue;
    REQUIRE(Highway::packs(t));
    Rng rng(uint64_t(t) + 1000);
    const size_t n_row = 37, n_col = ember::block_size(t) == 256 ? 768 : 160, n_tok = 36;
    PackedMatrix m(t, n_row, n_col, rng, 1);
    std::vector<float> x = random_floats(n_tok * n_col, rng, -2, 2);
    std::vector<float> ref(n_tok * n_row);
    Reference::matmul(m.view, x.data(), n_col, n_tok, ref.data(), n_row, 0, n_row);
    std::vector<float> first;  // the first target's result: every target must give these bits
    for (const std::string& target : Highway::available_targets()) {
      if (target != "AVX2" && target != "AVX3" && target != "AVX3_DL") continue;
      REQUIRE(Highway::force_target(target));
      for (bool vnni : {true, false}) {
        if (vnni && (target == "AVX2" || !Highway::vnni_available())) continue;
        Highway::set_vnni_enabled(vnni);
        INFO(ember::name(t), " ", target, vnni ? "+VNNI" : "");
        std::vector<float> whole(n_tok * n_row), split(n_tok * n_row, 0.0f);
        Highway::matmul(m.view, x.data(), n_col, n_tok, whole.data(), n_row, 0, n_row);
        double worst = 0;
        std::vector<float> row(n_col);
        for (size_t r = 0; r < n_row; ++r) {
          REQUIRE(quant::dequantize_row(t, m.view.row(r), row.data(), n_col).ok());
          for (size_t k = 0; k < n_tok; ++k) {
            double norm = 0;
            for (size_t j = 0; j < n_col; ++j) norm += std::fabs(double(row[j]) * x[k * n_col + j]);
            worst = std::max(worst, std::fabs(double(whole[k * n_row + r]) - ref[k * n_row + r]) / norm);
          }
        }
        INFO("worst normalized error ", worst);
        CHECK(worst <= matmul_budget(t));
        // The K-quants' kernels (x16 with VNNI, the file layout's without) give Reference's bits,
        // so the SIMD Q8_K activation quantizer must too.
        if (ember::block_size(t) == 256)
          CHECK(std::memcmp(whole.data(), ref.data(), whole.size() * sizeof(float)) == 0);
        const size_t row_cuts[] = {0, 5, 16, 17, 31, 37};
        const size_t tok_cuts[] = {0, 1, 3, 6, 10, 15, 21, 28, 36};  // every pass width 1 .. 8
        for (size_t a = 0; a + 1 < std::size(row_cuts); ++a)
          for (size_t b = 0; b + 1 < std::size(tok_cuts); ++b)
            Highway::matmul(m.view, x.data() + tok_cuts[b] * n_col, n_col, tok_cuts[b + 1] - tok_cuts[b],
                            split.data() + tok_cuts[b] * n_row, n_row, row_cuts[a], row_cuts[a + 1]);
        CHECK(std::memcmp(whole.data(), split.data(), whole.size() * sizeof(float)) == 0);
        // One token at a time (decode, where the VNNI kernel takes two groups at once while
        // both start in the range), over all rows and over rows [5, n_row) then [0, 5).
        for (size_t cut : {size_t(0), size_t(5)}) {
          std::vector<float> single(n_tok * n_row, 0.0f);
          for (size_t k = 0; k < n_tok; ++k)
            for (const auto& [lo, hi] : {std::pair{cut, n_row}, std::pair{size_t(0), cut}})
              Highway::matmul(m.view, x.data() + k * n_col, n_col, 1, single.data() + k * n_row, n_row, lo, hi);
          CHECK(std::memcmp(whole.data(), single.data(), whole.size() * sizeof(float)) == 0);
        }
        if (first.empty()) first = whole;
        CHECK(std::memcmp(whole.data(), first.data(), whole.size() * sizeof(float)) == 0);
      }
      Highway::set_vnni_enabled(true);
    }
    Highway::reset_target();
    // A target without the packed kernel reads `data`: same results as without a copy. (The
    // last target is SCALAR or EMU128, unless the compiler flags' baseline is an x86 target,
    // as with -march=native: then every compiled target has the packed kernels.)
    const std::string last = Highway::available_targets().back();
    if (last != "SCALAR" && last != "EMU128") continue;
    REQUIRE(Highway::force_target(last));
    MatrixView plain = m.view;
    plain.packed = nullptr;
    std::vector<float> with(n_tok * n_row), without(n_tok * n_row);
    Highway::matmul(m.view, x.data(), n_col, n_tok, with.data(), n_row, 0, n_row);
    Highway::matmul(plain, x.data(), n_col, n_tok, without.data(), n_row, 0, n_row);
    CHECK(std::memcmp(with.data(), without.data(), with.size() * sizeof(float)) == 0);
    Highway::reset_target();
  }
}

TEST_CASE("kernels: Highway::matmuls gives each matrix matmul's bits, the activations shared or not") {
  // Q, K and V of one format (quantized once for the three), Q4_K with Q6_K (one Q8_K
  // quantization), and formats that take different activations (each its own); row ranges
  // that cut groups and an empty one; tokens past one chunk; one token (decode).
  using Parts = std::vector<std::pair<DType, size_t>>;  // format, rows
  const Parts cases[] = {{{DType::Q4_0, 48}, {DType::Q4_0, 16}, {DType::Q4_0, 37}},
                         {{DType::Q8_0, 33}, {DType::Q8_0, 20}},
                         {{DType::Q4_1, 40}, {DType::Q4_1, 18}},
                         {{DType::Q4_K, 35}, {DType::Q6_K, 17}, {DType::Q4_K, 16}},
                         {{DType::Q4_0, 32}, {DType::Q8_0, 17}, {DType::Q4_1, 19}, {DType::F16, 5}}};
  for (const Parts& c : cases) {
    const bool k_quants = ember::block_size(c[0].first) == 256;
    if (k_quants && !Highway::vnni_available()) continue;
    const size_t n_col = k_quants ? 512 : 256;
    Rng rng(77 + c.size());
    std::vector<std::unique_ptr<PackedMatrix>> ms;
    for (const auto& [t, n_row] : c) ms.push_back(std::make_unique<PackedMatrix>(t, n_row, n_col, rng, 3));
    for (size_t n_tok : {size_t(1), size_t(70)}) {
      const std::vector<float> x = random_floats(n_tok * n_col, rng, -2, 2);
      INFO(ember::name(c[0].first), " and others, ", n_tok, " tokens");
      std::vector<std::vector<float>> one(c.size()), all(c.size());
      std::vector<ember::kernels::MatmulPart> parts;
      for (size_t i = 0; i < c.size(); ++i) {
        const size_t n_row = c[i].second, lo = i == 1 ? 3 : 0, hi = i == 2 ? n_row - 5 : n_row;
        one[i].assign(n_tok * n_row, 0.0f);
        all[i].assign(n_tok * n_row, 0.0f);
        Highway::matmul(ms[i]->view, x.data(), n_col, n_tok, one[i].data(), n_row, lo, hi);
        parts.push_back({&ms[i]->view, all[i].data(), n_row, lo, hi});
      }
      parts.push_back({&ms[0]->view, all[0].data(), c[0].second, 4, 4});  // an empty range
      Highway::matmuls(parts.data(), parts.size(), x.data(), n_col, n_tok);
      for (size_t i = 0; i < c.size(); ++i)
        CHECK(std::memcmp(one[i].data(), all[i].data(), one[i].size() * sizeof(float)) == 0);
    }
  }
}

TEST_CASE("kernels: x16 K-quant kernels keep Reference's bits at the largest quants, scales and activations") {
  // The Q6_K kernel sums scale * activation * 4 q in int32 over a super-block: with every
  // quant 63, every scale -128 and every activation -127 (inputs of -1) that sum is near
  // 256 * 252 * 128 * 127, under 2^31. Q4_K's largest case too (quants 15, scales 63).
  if (!Highway::vnni_available()) return;
  for (DType t : {DType::Q6_K, DType::Q4_K}) {
    INFO(ember::name(t));
    const size_t n_row = 16, n_col = 512, rb = ember::row_bytes(t, n_col);
    Buffer w_buf(n_row * rb, 0);
    for (size_t r = 0; r < n_row; ++r)
      for (size_t b = 0; b < n_col / 256; ++b) {
        unsigned char* blk = w_buf.data() + r * rb + b * ember::row_bytes(t, 256);
        if (t == DType::Q6_K) {
          ember::quant::BlockQ6_K q;
          std::memset(q.ql, 0xff, sizeof(q.ql));
          std::memset(q.qh, 0xff, sizeof(q.qh));
          std::memset(q.scales, 0x80, sizeof(q.scales));  // -128
          q.d_f16 = ember::f32_to_f16(r % 2 ? -1.0f : 0.5f);
          std::memcpy(blk, &q, sizeof(q));
        } else {
          ember::quant::BlockQ4_K q;
          std::memset(q.qs, 0xff, sizeof(q.qs));
          std::memset(q.scales, 0xff, sizeof(q.scales));  // every 6-bit scale and min 63
          q.d_f16 = ember::f32_to_f16(0.5f);
          q.dmin_f16 = ember::f32_to_f16(r % 2 ? 0.25f : 0.0f);
          std::memcpy(blk, &q, sizeof(q));
        }
      }
    MatrixView w{t, w_buf.data(), n_row, n_col, rb};
    Buffer packed(ember::kernels::packed_bytes(t, n_row, n_col), 0);  // 64-byte aligned, as Model::load's
    ember::kernels::pack_groups(w, reinterpret_cast<std::byte*>(packed.data()), 0, 1);
    std::vector<float> x(2 * n_col, -1.0f);
    for (size_t j = 0; j < n_col; ++j) x[n_col + j] = j % 2 ? 1.0f : -1.0f;
    std::vector<float> ref(2 * n_row), got(2 * n_row);
    Reference::matmul(w, x.data(), n_col, 2, ref.data(), n_row, 0, n_row);
    w.packed = reinterpret_cast<const std::byte*>(packed.data());
    Highway::matmul(w, x.data(), n_col, 2, got.data(), n_row, 0, n_row);
    CHECK(std::memcmp(got.data(), ref.data(), got.size() * sizeof(float)) == 0);
    CHECK(std::fabs(ref[0]) > 1e5);  // the large case: 0.5 / 128 * 128 * 128 * 31 * 256 for Q6_K
  }
}

TEST_CASE("kernels: matmul past one chunk of tokens equals token-by-token calls") {
  // Activations are quantized kTokenChunk tokens at a time; crossing a chunk
  // boundary must change nothing.
  constexpr size_t n_tok = ember::kernels::detail::kTokenChunk + 5;
  for_each_backend([&]<class B>(std::type_identity<B>, const std::string& label) {
    for (DType t : {DType::F16, DType::Q8_0, DType::Q4_1, DType::Q5_0, DType::Q3_K}) {
      INFO(label, " ", ember::name(t));
      Rng rng(uint64_t(t) + 5);
      const size_t n_row = 3, n_col = ember::block_size(t) == 256 ? 256 : 64;
      const size_t rb = ember::row_bytes(t, n_col);
      Buffer w_buf(n_row * rb, 2);
      fill_weights(t, w_buf.data(), n_row, n_col, rng);
      const MatrixView w{t, w_buf.data(), n_row, n_col, rb};
      const std::vector<float> x = random_floats(n_tok * n_col, rng);
      std::vector<float> whole(n_tok * n_row), single(n_tok * n_row);
      B::matmul(w, x.data(), n_col, n_tok, whole.data(), n_row, 0, n_row);
      for (size_t k = 0; k < n_tok; ++k) {
        B::matmul(w, x.data() + k * n_col, n_col, 1, single.data() + k * n_row, n_row, 0, n_row);
      }
      CHECK(std::memcmp(whole.data(), single.data(), whole.size() * sizeof(float)) == 0);
    }
  });
}

// ------------------------------------------------------------- vector ops

// Lengths that hit every tail of every width up to 16 lanes, plus model sizes.
std::vector<size_t> vector_lengths() {
  std::vector<size_t> n;
  for (size_t i = 0; i <= 70; ++i) n.push_back(i);
  for (size_t i : {127, 128, 129, 255, 256, 257, 1000, 2048, 4099}) n.push_back(i);
  return n;
}

// |got - want| / (|want| + floor): relative error, with an absolute floor for
// values near zero.
double rel_error(double got, double want, double floor) {
  if (!std::isfinite(got) || !std::isfinite(want)) {
    return got == want ? 0.0 : std::numeric_limits<double>::infinity();
  }
  return std::fabs(got - want) / (std::fabs(want) + floor);
}

// ------------------------------------------------------------- attention

// attend_group over a cache filled with random keys and values: the fused kernels (Highway::attend
// on every Highway target, Xsimd<A>::attend on every arch of XsimdArchs) against Reference's
// matmul path in double. Both take the queries and the probabilities at f16 precision; they
// differ in summation order only, which can move a probability across an f16 rounding boundary
// (one f16 ulp of p, 2^-11 relative, times |v| <= 1). Where a kernel does not apply, attend_group
// takes the backend's matmul path, which must stay within the same budget.
TEST_CASE("kernels: fused f16 attention matches Reference on every Highway target and Xsimd arch") {
  struct Case {
    size_t head_dim, group, n_pos;
  };
  const Case cases[] = {{64, 8, 1},   {64, 8, 17},  {64, 3, 100}, {128, 4, 515}, {64, 16, 1030}, {32, 1, 33},
                        {256, 2, 70}, {64, 9, 600}, {80, 2, 40},  {64, 17, 20},  {7, 3, 21},     {6, 5, 16}};
  constexpr double kBudget = 2e-4;  // absolute, outputs of magnitude <= 1
  Rng rng{7};
  for_each_backend([&]<class B>(std::type_identity<B>, const std::string& label) {
    double backend_worst = 0;
    for (const Case& c : cases) {
      const size_t first = 3, n_ctx = c.n_pos + 7, n_kv = 2;
      ember::KvCache cache(DType::F16, 2, n_ctx, n_kv * c.head_dim, c.head_dim);
      std::vector<float> k(n_kv * c.head_dim), v(k.size());
      for (size_t l = 0; l < 2; ++l)
        for (size_t p = 0; p < n_ctx; ++p) {
          k = random_floats(k.size(), rng);
          v = random_floats(v.size(), rng);
          cache.store(l, p, k.data(), v.data());
        }
      const std::vector<float> q = random_floats(c.group * c.head_dim, rng, -2, 2);
      std::vector<float> scores(
          std::max(c.group * n_ctx, ember::attention_scratch_floats(c.group, c.head_dim, c.n_pos)), 123.0f),
          out(q.size(), 9.0f), expect(q.size());
      ember::attend_group<Reference>(cache, 1, 1, c.head_dim, c.group, q.data(), c.n_pos, scores.data(), expect.data(),
                                     first);
      ember::attend_group<B>(cache, 1, 1, c.head_dim, c.group, q.data(), c.n_pos, scores.data(), out.data(), first);
      double worst = 0;
      for (size_t i = 0; i < out.size(); ++i) worst = std::max(worst, std::fabs(double(out[i]) - expect[i]));
      // Which path ran: the kernels take head_dim a multiple of the vector lanes up to 256 and
      // groups up to 16, on the vector targets.
      std::vector<float> probe_scores(scores.size()), probe_out(out.size());
      const bool fused = B::attend(cache.key_tiles_f16(1, 1, c.n_pos, first),
                                   cache.values_transposed(1, 1, c.head_dim, c.n_pos, first), q.data(), c.group, 0.125f,
                                   probe_scores.data(), probe_out.data());
      INFO(label, " head_dim=", c.head_dim, " group=", c.group, " n_pos=", c.n_pos, " fused=", fused);
      CHECK(worst <= kBudget);
      backend_worst = std::max(backend_worst, worst);
      if (fused) {
        // Asked for, each head's log-sum-exp of its scaled scores (f16 queries and keys), the
        // outputs unchanged; against the exact value in double.
        std::vector<float> lse(c.group, 0.0f), lse_scores(scores.size()), lse_out(out.size());
        REQUIRE(B::attend(cache.key_tiles_f16(1, 1, c.n_pos, first),
                          cache.values_transposed(1, 1, c.head_dim, c.n_pos, first), q.data(), c.group, 0.125f,
                          lse_scores.data(), lse_out.data(), lse.data()));
        CHECK(std::memcmp(lse_out.data(), probe_out.data(), out.size() * sizeof(float)) == 0);
        const auto keys = cache.key_tiles_f16(1, 1, c.n_pos, first);
        std::vector<uint16_t> k(c.head_dim);
        for (size_t g = 0; g < c.group; ++g) {
          std::vector<double> s(c.n_pos);
          for (size_t j = 0; j < c.n_pos; ++j) {
            ember::kernels::KeyTilesF16::get_row(keys.data, c.head_dim, first + j, k.data());
            double d = 0;
            for (size_t i = 0; i < c.head_dim; ++i)
              d += double(ember::f16_to_f32(ember::f32_to_f16(q[g * c.head_dim + i]))) * ember::f16_to_f32(k[i]);
            s[j] = 0.125 * d;
          }
          const double mx = *std::max_element(s.begin(), s.end());
          double sum = 0;
          for (double x : s) sum += std::exp(x - mx);
          CHECK(std::fabs(lse[g] - (mx + std::log(sum))) <= 1e-5 * std::max(1.0, std::fabs(mx)));
        }
      }
      if constexpr (std::is_same_v<B, Highway>) {
        const std::string target = Highway::current_target();
        const size_t lanes = target.rfind("AVX3", 0) == 0 ? 16 : target == "AVX2" ? 8 : 4;
        if (target != "SCALAR" && target != "EMU128") CHECK(fused == (c.head_dim % lanes == 0 && c.group <= 16));
      } else {
        const size_t lanes = xsimd::batch<float, typename B::arch_type>::size;
        CHECK(fused == (c.head_dim % lanes == 0 && c.group <= 16));
      }
      // The same inputs give the same bits, whatever the scratch held.
      std::vector<float> again(q.size());
      std::fill(scores.begin(), scores.end(), -7.0f);
      ember::attend_group<B>(cache, 1, 1, c.head_dim, c.group, q.data(), c.n_pos, scores.data(), again.data(), first);
      CHECK(std::memcmp(again.data(), out.data(), again.size() * sizeof(float)) == 0);
    }
    MESSAGE("attention ", label, ": worst difference from Reference ", backend_worst);
  });
}

TEST_CASE("kernels: q8_0 KV cache attention: every path matches exact attention over the cached values") {
  // The independent expectation: softmax(q' . k / sqrt(head_dim)) . v in double, where k and v
  // are the cache's q8_0 values read back as floats and q' the query quantized to q8_0 (as
  // llama.cpp's q8_0 K cache takes it). Every backend's row path (attend_group_q8_rows), and
  // attend_group with the fused kernels (Highway's on every target, AVX3 with and without VNNI;
  // Xsimd's on every arch of XsimdArchs), must land within the budget, with the same bits
  // whatever the scratch held; the fused kernels are also checked to have run where they apply.
  struct Case {
    size_t head_dim, group, n_pos, first;
  };
  const Case cases[] = {{64, 8, 1, 0},   {64, 8, 17, 3},  {64, 3, 100, 16}, {128, 4, 515, 5}, {64, 16, 1030, 0},
                        {32, 1, 33, 31}, {256, 2, 70, 9}, {64, 9, 600, 1},  {96, 2, 40, 17},  {64, 17, 20, 2}};
  constexpr double kBudget = 1e-5;  // absolute, outputs of magnitude <= 1
  // Highway's VNNI kernel weights the values in integers: each weight as int16 against the
  // largest in its 128 positions (2^-16 of it), so its error grows as sqrt(positions) * 2^-16
  // of the largest normalized weight (1.3e-5 seen here; q8_0's own rounding of v is ~4e-3).
  constexpr double kBudgetInt16 = 4e-5;
  Rng rng{11};
  double worst_rows = 0, worst_fused[2] = {};  // Highway's kernel, Xsimd's
  bool ran[2] = {};
  for (const Case& c : cases) {
    const size_t n_ctx = c.first + c.n_pos + 21, n_kv = 2, hd = c.head_dim, nb = hd / 32;
    ember::KvCache cache(DType::Q8_0, 2, n_ctx, n_kv * hd, hd);
    for (size_t l = 0; l < 2; ++l)
      for (size_t p = 0; p < n_ctx; ++p) {
        const auto k = random_floats(n_kv * hd, rng), v = random_floats(n_kv * hd, rng);
        cache.store(l, p, k.data(), v.data());
      }
    const std::vector<float> q = random_floats(c.group * hd, rng, -2, 2);
    // Read back through the saved-state layout: per position, the key rows of both heads,
    // then the value rows.
    std::vector<std::byte> rows(c.n_pos * cache.row_bytes());
    cache.read_rows(1, c.first, c.n_pos, rows.data());
    const size_t head_row = nb * sizeof(ember::quant::BlockQ8_0);
    std::vector<float> k(c.n_pos * hd), v(c.n_pos * hd), qq(hd);
    for (size_t j = 0; j < c.n_pos; ++j) {
      REQUIRE(
          ember::quant::dequantize_row(DType::Q8_0, rows.data() + (j * n_kv + 1) * head_row, k.data() + j * hd, hd));
      REQUIRE(ember::quant::dequantize_row(DType::Q8_0, rows.data() + ((c.n_pos + j) * n_kv + 1) * head_row,
                                           v.data() + j * hd, hd));
    }
    std::vector<double> expect(c.group * hd), expect_lse(c.group);
    for (size_t g = 0; g < c.group; ++g) {
      std::vector<ember::quant::BlockQ8_0> qb(nb);
      ember::quant::quantize_activations(q.data() + g * hd, qb.data(), hd);
      REQUIRE(ember::quant::dequantize_row(DType::Q8_0, qb.data(), qq.data(), hd));
      std::vector<double> s(c.n_pos);
      double mx = -1e300, sum = 0;
      for (size_t j = 0; j < c.n_pos; ++j) {
        double d = 0;
        for (size_t i = 0; i < hd; ++i) d += double(qq[i]) * k[j * hd + i];
        s[j] = d / std::sqrt(double(hd));
        mx = std::max(mx, s[j]);
      }
      for (double& x : s) sum += (x = std::exp(x - mx));
      expect_lse[g] = mx + std::log(sum);
      for (size_t j = 0; j < c.n_pos; ++j)
        for (size_t i = 0; i < hd; ++i) expect[g * hd + i] += s[j] / sum * v[j * hd + i];
    }
    auto worst_of = [&](const std::vector<float>& out) {
      double w = 0;
      for (size_t i = 0; i < out.size(); ++i) w = std::max(w, std::fabs(double(out[i]) - expect[i]));
      return w;
    };
    // Each head's log-sum-exp of its scaled scores, where a path is asked for it.
    auto check_lse = [&](const std::vector<float>& lse) {
      for (size_t g = 0; g < c.group; ++g) CHECK(std::fabs(lse[g] - expect_lse[g]) <= 1e-5);
    };
    const size_t n_scratch = std::max(c.group * n_ctx, ember::attention_scratch_floats(c.group, hd, c.n_pos));
    for_each_backend([&]<class B>(std::type_identity<B>, const std::string& label) {
      std::vector<float> scores(n_scratch, 123.0f), out(q.size(), 9.0f), lse(c.group);
      ember::attend_group_q8_rows<B>(cache.key_tiles(1, 1, c.n_pos, c.first), cache.values(1, 1, c.n_pos, c.first),
                                     q.data(), c.group, 1.0f / std::sqrt(float(hd)), scores.data(), out.data(),
                                     lse.data());
      INFO(label, " rows: head_dim=", hd, " group=", c.group, " n_pos=", c.n_pos, " first=", c.first);
      CHECK(worst_of(out) <= kBudget);
      check_lse(lse);
      worst_rows = std::max(worst_rows, worst_of(out));
    });
    // attend_group<B>, which runs B's fused kernel where it applies: `applies` says where.
    auto check_fused = [&]<class B>(std::type_identity<B>, const std::string& label, bool applies) {
      std::vector<float> scores(n_scratch, 123.0f), out(q.size(), 9.0f), again(q.size(), -1.0f);
      ember::attend_group<B>(cache, 1, 1, hd, c.group, q.data(), c.n_pos, scores.data(), out.data(), c.first);
      std::fill(scores.begin(), scores.end(), -7.0f);
      ember::attend_group<B>(cache, 1, 1, hd, c.group, q.data(), c.n_pos, scores.data(), again.data(), c.first);
      std::vector<float> probe_scores(scores.size()), probe_out(out.size());
      const bool fused = B::attend_q8(cache.key_tiles(1, 1, c.n_pos, c.first), cache.values(1, 1, c.n_pos, c.first),
                                      q.data(), c.group, 0.125f, probe_scores.data(), probe_out.data());
      INFO(label, " head_dim=", hd, " group=", c.group, " n_pos=", c.n_pos, " first=", c.first, " fused=", fused);
      CHECK(worst_of(again) <= (label.ends_with("+VNNI") ? kBudgetInt16 : kBudget));
      CHECK(std::memcmp(again.data(), out.data(), out.size() * sizeof(float)) == 0);
      const size_t which = std::is_same_v<B, Highway> ? 0 : 1;
      if (fused) worst_fused[which] = std::max(worst_fused[which], worst_of(again)), ran[which] = true;
      CHECK(fused == applies);
      if (fused) {
        std::vector<float> lse(c.group), lse_out(out.size());
        REQUIRE(B::attend_q8(cache.key_tiles(1, 1, c.n_pos, c.first), cache.values(1, 1, c.n_pos, c.first), q.data(),
                             c.group, 1.0f / std::sqrt(float(hd)), probe_scores.data(), lse_out.data(), lse.data()));
        check_lse(lse);
      }
    };
    // Highway's kernel runs on the x86 vector targets for groups up to 16; the scalar target
    // takes the row path.
    for (const std::string& target : Highway::available_targets()) {
      REQUIRE(Highway::force_target(target));
      const bool applies = target != "SCALAR" && target != "EMU128" && c.group <= 16;
      // The AVX3 targets once with VNNI (vpdpbusd) and once without (maddubs), where the CPU has it.
      if (target.starts_with("AVX3") && Highway::vnni_available()) {
        check_fused(std::type_identity<Highway>{}, "Highway/" + target + "+VNNI", applies);
        Highway::set_vnni_enabled(false);
        check_fused(std::type_identity<Highway>{}, "Highway/" + target + " without VNNI", applies);
        Highway::set_vnni_enabled(true);
      } else {
        check_fused(std::type_identity<Highway>{}, "Highway/" + target, applies);
      }
    }
    Highway::reset_target();
    // Xsimd's kernel runs on the AVX2 and avx512 archs (vpdpbusd where the flags give AVX-512
    // VNNI, maddubs otherwise), for groups up to 16.
    auto check_xsimd = [&]<class A>(std::type_identity<A>) {
      constexpr bool avx2_or_wider = std::is_base_of_v<xsimd::avx2, A> || std::is_base_of_v<xsimd::avx512f, A>;
      check_fused(std::type_identity<Xsimd<A>>{}, std::string("Xsimd/") + A::name(), avx2_or_wider && c.group <= 16);
    };
    std::apply([&](auto... archs) { (check_xsimd(std::type_identity<decltype(archs)>{}), ...); }, XsimdArchs{});
  }
  const std::string not_run[2] = {ran[0] ? "" : " (did not run)", ran[1] ? "" : " (did not run)"};
  MESSAGE("q8_0 attention: worst difference from exact, row paths ", worst_rows, ", fused kernels: Highway's ",
          worst_fused[0], not_run[0], ", Xsimd's ", worst_fused[1], not_run[1]);
}

TEST_CASE("attention: a long context's chunks, merged by their log-sum-exps, equal one pass over it") {
  // attend_group takes more than kAttentionChunk positions in chunks (each softmax normalized
  // on its own) and merges them; the independent expectation is one softmax over all the
  // positions (attend_range in one piece, F32 cache, Reference's arithmetic). Chunks computed
  // one by one (as the session's threads do) and merged give attend_group's bits.
  const size_t hd = 64, group = 4, n_kv = 2;
  Rng rng{21};
  const std::pair<size_t, size_t> cases[] = {{1025, 2}, {2100, 3}, {3500, 4}};  // positions, chunks
  for (const auto& [n_pos, n_chunks] : cases) {
    const size_t first = 5, n_ctx = first + n_pos + 3;
    ember::KvCache cache(DType::F32, 1, n_ctx, n_kv * hd, hd);
    for (size_t p = 0; p < n_ctx; ++p) {
      // Scores spread over a wide range, so that the chunks' maxima differ.
      const auto k = random_floats(n_kv * hd, rng, -1.0f - float(p % 97) / 20, 1.0f + float(p % 89) / 20);
      const auto v = random_floats(n_kv * hd, rng);
      cache.store(0, p, k.data(), v.data());
    }
    const auto q = random_floats(group * hd, rng, -2, 2);
    std::vector<float> whole_scores(group * n_pos), whole(group * hd), lse(group);
    ember::attend_range<Reference>(cache, 0, 1, hd, group, q.data(), n_pos, whole_scores.data(), whole.data(), first,
                                   lse.data());
    std::vector<float> scratch(ember::attention_scratch_floats(group, hd, n_pos)), merged(group * hd);
    ember::attend_group<Reference>(cache, 0, 1, hd, group, q.data(), n_pos, scratch.data(), merged.data(), first);
    double worst = 0;
    for (size_t i = 0; i < merged.size(); ++i) worst = std::max(worst, std::fabs(double(merged[i]) - whole[i]));
    INFO("n_pos=", n_pos, " chunks=", ember::attention_chunks(n_pos), " worst=", worst);
    CHECK(ember::attention_chunks(n_pos) == n_chunks);
    CHECK(worst <= 1e-6);
    // The chunks one at a time into separate buffers, then merged.
    const size_t n_chunk = ember::attention_chunks(n_pos);
    std::vector<float> outs(n_chunk * group * hd), lses(n_chunk * group), chunk_scores(group * ember::kAttentionChunk),
        again(group * hd);
    for (size_t c = n_chunk; c-- > 0;)  // in any order
      ember::attend_chunk<Reference>(cache, 0, 1, hd, group, q.data(), n_pos, c, chunk_scores.data(),
                                     outs.data() + c * group * hd, lses.data() + c * group, first);
    ember::merge_attention_chunks(n_chunk, group, hd, outs.data(), lses.data(), again.data());
    CHECK(std::memcmp(again.data(), merged.data(), again.size() * sizeof(float)) == 0);
    // The merged log-sum-exp of the chunks is the whole one's.
    for (size_t g = 0; g < group; ++g) {
      double mx = -1e300, sum = 0;
      for (size_t c = 0; c < n_chunk; ++c) mx = std::max(mx, double(lses[c * group + g]));
      for (size_t c = 0; c < n_chunk; ++c) sum += std::exp(lses[c * group + g] - mx);
      CHECK(std::fabs(mx + std::log(sum) - lse[g]) <= 1e-5);
    }
  }
}

TEST_CASE("kernels: q8_0 KV cache: rows read back as written, copies overlap safely, keys re-rotate") {
  // A position's q8_0 blocks go into the key tiles and come back unchanged, whichever tile
  // and lane they land in; copy_rows with overlapping ranges in both directions equals a copy
  // through a separate buffer; load_key / store_key round-trip a key's values exactly.
  const size_t hd = 64, n_kv = 3, n_ctx = 50, L = 2;
  Rng rng{5};
  ember::KvCache cache(DType::Q8_0, L, n_ctx, n_kv * hd, hd);
  std::vector<std::vector<float>> keys, values;
  for (size_t l = 0; l < L; ++l)
    for (size_t p = 0; p < n_ctx; ++p) {
      keys.push_back(random_floats(n_kv * hd, rng, -4, 4));
      values.push_back(random_floats(n_kv * hd, rng, -4, 4));
      cache.store(l, p, keys.back().data(), values.back().data());
    }
  auto snapshot = [&](size_t l) {
    std::vector<std::byte> b(n_ctx * cache.row_bytes());
    cache.read_rows(l, 0, n_ctx, b.data());
    return b;
  };
  const size_t head_row = hd / 32 * sizeof(ember::quant::BlockQ8_0), row = n_kv * head_row;
  for (size_t l = 0; l < L; ++l) {  // the rows hold the q8_0 blocks of what was stored
    const auto b = snapshot(l);
    for (size_t p = 0; p < n_ctx; ++p) {
      std::vector<ember::quant::BlockQ8_0> expect_k(n_kv * hd / 32), expect_v(expect_k.size());
      ember::quant::quantize_activations(keys[l * n_ctx + p].data(), expect_k.data(), n_kv * hd);
      ember::quant::quantize_activations(values[l * n_ctx + p].data(), expect_v.data(), n_kv * hd);
      CHECK(std::memcmp(b.data() + p * row, expect_k.data(), row) == 0);
      CHECK(std::memcmp(b.data() + (n_ctx + p) * row, expect_v.data(), row) == 0);
    }
  }
  for (auto [src, dst, n] : {std::tuple<size_t, size_t, size_t>{3, 10, 20}, {20, 4, 25}, {0, 33, 17}}) {
    std::vector<std::vector<std::byte>> before;
    for (size_t l = 0; l < L; ++l) before.push_back(snapshot(l));
    cache.copy_rows(src, dst, n);
    for (size_t l = 0; l < L; ++l) {
      auto expect = before[l];
      for (size_t r = 0; r < n; ++r) {
        std::memcpy(expect.data() + (dst + r) * row, before[l].data() + (src + r) * row, row);
        std::memcpy(expect.data() + (n_ctx + dst + r) * row, before[l].data() + (n_ctx + src + r) * row, row);
      }
      INFO("copy ", src, " -> ", dst, " x", n, " layer ", l);
      CHECK(snapshot(l) == expect);
    }
  }
  std::vector<float> key(n_kv * hd), again(key.size());
  cache.load_key(1, 7, key.data());
  const auto before = snapshot(1);
  cache.store_key(1, 7, key.data());  // dequantized values quantize back to the same blocks
  CHECK(snapshot(1) == before);
  cache.load_key(1, 7, again.data());
  CHECK(again == key);
  // A saved state's rows written into a fresh cache read back the same.
  ember::KvCache other(DType::Q8_0, L, n_ctx + 9, n_kv * hd, hd);
  other.write_rows(1, 9, n_ctx, before.data());
  std::vector<std::byte> back(before.size());
  other.read_rows(1, 9, n_ctx, back.data());
  CHECK(back == before);
}

TEST_CASE("kernels: f16 KV cache: keys read back as written from their tiles, copies overlap safely") {
  // Keys sit in f16 key tiles (key_tiles.hpp): each position's key comes back as its f16
  // rounding, whichever tile and lane it lands in (including head_dim not a multiple of 16 and
  // a last, partial tile); copy_rows with overlapping ranges in both directions equals a copy
  // through a separate buffer, keys and values; store_key / load_key round-trip; a saved
  // state's rows written into a fresh cache of another size read back the same.
  for (const size_t hd : {size_t{64}, size_t{24}}) {
    const size_t n_kv = 3, n_ctx = 50, L = 2, D = n_kv * hd;
    Rng rng{11};
    ember::KvCache cache(DType::F16, L, n_ctx, D, hd);
    std::vector<std::vector<float>> keys, values;
    for (size_t l = 0; l < L; ++l)
      for (size_t p = 0; p < n_ctx; ++p) {
        keys.push_back(random_floats(D, rng, -4, 4));
        values.push_back(random_floats(D, rng, -4, 4));
        cache.store(l, p, keys.back().data(), values.back().data());
      }
    auto f16 = [](float x) { return ember::f16_to_f32(ember::f32_to_f16(x)); };
    // Every key and value of layer l, as floats: (position, element).
    auto key_rows = [&](size_t l) {
      std::vector<float> k(n_ctx * D);
      for (size_t p = 0; p < n_ctx; ++p) cache.load_key(l, p, k.data() + p * D);
      return k;
    };
    auto value_rows = [&](size_t l) {
      std::vector<float> v(n_ctx * D);
      for (size_t h = 0; h < n_kv; ++h) {
        const auto vt = cache.values_transposed(l, h, hd, n_ctx);
        for (size_t i = 0; i < hd; ++i)
          for (size_t p = 0; p < n_ctx; ++p) {
            uint16_t bits;
            std::memcpy(&bits, vt.row(i) + 2 * p, 2);
            v[p * D + h * hd + i] = ember::f16_to_f32(bits);
          }
      }
      return v;
    };
    INFO("head_dim ", hd);
    for (size_t l = 0; l < L; ++l) {
      const auto k = key_rows(l), v = value_rows(l);
      bool keys_ok = true, values_ok = true;
      for (size_t p = 0; p < n_ctx; ++p)
        for (size_t i = 0; i < D; ++i) {
          keys_ok &= k[p * D + i] == f16(keys[l * n_ctx + p][i]);
          values_ok &= v[p * D + i] == f16(values[l * n_ctx + p][i]);
        }
      CHECK(keys_ok);
      CHECK(values_ok);
      // The tiles as the kernels read them: KV head h's position p, dimension i.
      for (size_t h = 0; h < n_kv; ++h) {
        const auto tiles = cache.key_tiles_f16(l, h, n_ctx);
        std::vector<uint16_t> row(hd);
        bool tiles_ok = true;
        for (size_t p = 0; p < n_ctx; ++p) {
          ember::kernels::KeyTilesF16::get_row(tiles.data, hd, p, row.data());
          for (size_t i = 0; i < hd; ++i) tiles_ok &= ember::f16_to_f32(row[i]) == k[p * D + h * hd + i];
        }
        CHECK(tiles_ok);
      }
    }
    for (auto [src, dst, n] : {std::tuple<size_t, size_t, size_t>{3, 10, 20}, {20, 4, 25}, {0, 33, 17}}) {
      std::vector<std::vector<float>> kb, vb;
      for (size_t l = 0; l < L; ++l) kb.push_back(key_rows(l)), vb.push_back(value_rows(l));
      cache.copy_rows(src, dst, n);
      for (size_t l = 0; l < L; ++l) {
        auto ek = kb[l], ev = vb[l];
        std::copy_n(kb[l].begin() + src * D, n * D, ek.begin() + dst * D);
        std::copy_n(vb[l].begin() + src * D, n * D, ev.begin() + dst * D);
        INFO("copy ", src, " -> ", dst, " x", n, " layer ", l);
        CHECK(key_rows(l) == ek);
        CHECK(value_rows(l) == ev);
      }
    }
    std::vector<float> key(D), again(D);
    cache.load_key(1, 7, key.data());
    const auto before = key_rows(1);
    cache.store_key(1, 7, key.data());
    CHECK(key_rows(1) == before);
    cache.load_key(1, 7, again.data());
    CHECK(again == key);
    std::vector<std::byte> state(n_ctx * cache.row_bytes()), back(state.size());
    cache.read_rows(1, 0, n_ctx, state.data());
    ember::KvCache other(DType::F16, L, n_ctx + 9, D, hd);
    other.write_rows(1, 9, n_ctx, state.data());
    other.read_rows(1, 9, n_ctx, back.data());
    CHECK(back == state);
    std::vector<float> moved(D);
    other.load_key(1, 9 + 7, moved.data());
    CHECK(moved == key);
  }
}

TEST_CASE("kernels: vector ops match Reference") {
  for_each_backend([&]<class B>(std::type_identity<B>, const std::string& label) {
    Rng rng(7);
    enum { kDot, kAxpy, kAddScale, kRmsNorm, kLayerNorm, kSoftmax, kSilu, kGelu, kOps };
    double worst[kOps] = {};
    bool in_place_differs = false;
    auto note = [&](int op, double err) { worst[op] = std::max(worst[op], err); };
    for (size_t n : vector_lengths()) {
      for (size_t off = 0; off < 4; ++off) {  // misaligned by 0..3 floats
        std::vector<float> a_buf = random_floats(n + 4, rng), b_buf = random_floats(n + 4, rng);
        const float* a = a_buf.data() + off;
        const float* b = b_buf.data() + (3 - off);

        double norm = 0;  // dot is normalized as matmul
        for (size_t i = 0; i < n; ++i) norm += std::fabs(double(a[i]) * b[i]);
        note(kDot, std::fabs(double(B::dot(a, b, n)) - Reference::dot(a, b, n)) / (norm > 0 ? norm : 1.0));

        std::vector<float> y_ref(b, b + n), y(b, b + n);
        Reference::axpy(0.37f, a, y_ref.data(), n);
        B::axpy(0.37f, a, y.data(), n);
        for (size_t i = 0; i < n; ++i) {
          note(kAxpy, rel_error(y[i], y_ref[i], std::fabs(0.37 * a[i]) + std::fabs(b[i])));
        }
        y_ref.assign(b, b + n);
        y.assign(b, b + n);
        Reference::add(y_ref.data(), a, n);
        B::add(y.data(), a, n);
        Reference::scale(y_ref.data(), -1.7f, n);
        B::scale(y.data(), -1.7f, n);
        for (size_t i = 0; i < n; ++i) {
          note(kAddScale, rel_error(y[i], y_ref[i], std::fabs(a[i]) + std::fabs(b[i])));
        }
        if (n == 0) continue;

        {  // rmsnorm, out of place and in place
          std::vector<float> out_ref(n), out(n), in_place(a, a + n);
          Reference::rmsnorm(a, b, out_ref.data(), n, 1e-5f);
          B::rmsnorm(a, b, out.data(), n, 1e-5f);
          B::rmsnorm(in_place.data(), b, in_place.data(), n, 1e-5f);
          for (size_t i = 0; i < n; ++i) note(kRmsNorm, rel_error(out[i], out_ref[i], 1e-6));
          in_place_differs |= in_place != out;
        }

        {  // layernorm of off-centre inputs (the mean matters): weight and bias, weight only,
           // neither, and in place; outputs are of magnitude ~1, so the error is absolute
          const std::vector<float> xs = random_floats(n, rng, 1.5f, 3.5f), bias = random_floats(n, rng);
          for (int variant = 0; variant < 3; ++variant) {
            const float* w = variant == 2 ? nullptr : b;
            const float* bs = variant == 0 ? bias.data() : nullptr;
            std::vector<float> out_ref(n), out(n), in_place = xs;
            Reference::layernorm(xs.data(), w, bs, out_ref.data(), n, 1e-5f);
            B::layernorm(xs.data(), w, bs, out.data(), n, 1e-5f);
            B::layernorm(in_place.data(), w, bs, in_place.data(), n, 1e-5f);
            for (size_t i = 0; i < n; ++i) note(kLayerNorm, std::fabs(double(out[i]) - out_ref[i]));
            in_place_differs |= in_place != out;
          }
        }

        {  // softmax over logits with a wide range (attention scores, vocab logits)
          std::vector<float> s_ref = random_floats(n, rng, -30, 30), s = s_ref;
          Reference::softmax(s_ref.data(), n);
          B::softmax(s.data(), n);
          double sum = 0;
          for (size_t i = 0; i < n; ++i) {
            note(kSoftmax, rel_error(s[i], s_ref[i], 1e-12));
            sum += s[i];
          }
          note(kSoftmax, std::fabs(sum - 1.0));
        }

        {  // silu_mul, including gates where exp overflows
          std::vector<float> g_ref = random_floats(n, rng, -12, 12), up(b, b + n);
          if (n > 2) {
            g_ref[0] = -200.0f;
            g_ref[1] = 150.0f;
          }
          std::vector<float> g = g_ref;
          Reference::silu_mul(g_ref.data(), up.data(), n);
          B::silu_mul(g.data(), up.data(), n);
          for (size_t i = 0; i < n; ++i) note(kSilu, rel_error(g[i], g_ref[i], 1e-30));
        }

        {  // gelu and gelu_mul, including arguments far out on both sides (outputs x and -0)
          std::vector<float> g_ref = random_floats(n, rng, -12, 12), up(b, b + n);
          if (n > 3) {
            g_ref[0] = -200.0f;
            g_ref[1] = 150.0f;
            g_ref[2] = 0.0f;
          }
          std::vector<float> g = g_ref, gm_ref = g_ref, gm = g_ref;
          Reference::gelu(g_ref.data(), n);
          B::gelu(g.data(), n);
          Reference::gelu_mul(gm_ref.data(), up.data(), n);
          B::gelu_mul(gm.data(), up.data(), n);
          for (size_t i = 0; i < n; ++i) {
            note(kGelu, rel_error(g[i], g_ref[i], 1e-30));
            note(kGelu, rel_error(gm[i], gm_ref[i], 1e-30));
          }
        }
      }
    }
    INFO(label, ": worst dot ", worst[kDot], ", axpy ", worst[kAxpy], ", add+scale ", worst[kAddScale], ", rmsnorm ",
         worst[kRmsNorm], ", layernorm ", worst[kLayerNorm], ", softmax ", worst[kSoftmax], ", silu_mul ", worst[kSilu],
         ", gelu ", worst[kGelu]);
    CHECK(worst[kDot] <= kBudgetDot);
    CHECK(worst[kAxpy] <= kBudgetElementwise);
    CHECK(worst[kAddScale] <= kBudgetElementwise);
    CHECK(worst[kRmsNorm] <= kBudgetRmsNorm);
    CHECK(worst[kSoftmax] <= kBudgetSoftmax);
    CHECK(worst[kSilu] <= kBudgetSilu);
    CHECK(worst[kLayerNorm] <= kBudgetLayerNorm);
    CHECK(worst[kGelu] <= kBudgetGelu);
    CHECK_FALSE(in_place_differs);
  });
}

TEST_CASE("kernels: Reference layernorm and gelu give the published values") {
  // gelu's tanh approximation as PyTorch's gelu(approximate="tanh") gives it, and the layer
  // norm of 1..4 (population variance, eps 1e-5): both worked out by hand in double.
  const float x[] = {-3.0f, -1.0f, 0.0f, 0.5f, 1.0f, 3.0f};
  const double want[] = {-0.00363739208, -0.158808009, 0.0, 0.34571401, 0.841191991, 2.99636261};
  float g[6];
  std::memcpy(g, x, sizeof(g));
  Reference::gelu(g, 6);
  for (size_t i = 0; i < 6; ++i) CHECK(g[i] == doctest::Approx(want[i]).epsilon(1e-6));
  const float v[] = {1.0f, 2.0f, 3.0f, 4.0f}, w[] = {1.0f, 2.0f, 1.0f, 1.0f}, b[] = {0.0f, 0.0f, 0.0f, 0.5f};
  float out[4];
  Reference::layernorm(v, w, b, out, 4, 1e-5f);
  const double norm[] = {-1.34163542, -0.447211807 * 2, 0.447211807, 1.34163542 + 0.5};
  for (size_t i = 0; i < 4; ++i) CHECK(out[i] == doctest::Approx(norm[i]).epsilon(1e-6));
}

// Rotation by hand, in double, with angles from pow per pair.
void rope_by_hand(std::vector<double>& v, size_t n_head, size_t head_dim, size_t n_rot, int32_t pos, double base,
                  bool neox) {
  for (size_t h = 0; h < n_head; ++h) {
    for (size_t i = 0; i < n_rot / 2; ++i) {
      const double theta = pos * std::pow(base, -2.0 * double(i) / double(n_rot));
      const size_t i0 = h * head_dim + (neox ? i : 2 * i);
      const size_t i1 = h * head_dim + (neox ? i + n_rot / 2 : 2 * i + 1);
      const double x0 = v[i0], x1 = v[i1];
      v[i0] = x0 * std::cos(theta) - x1 * std::sin(theta);
      v[i1] = x0 * std::sin(theta) + x1 * std::cos(theta);
    }
  }
}

TEST_CASE("kernels: rope follows ggml's normal and NEOX layouts") {
  SUBCASE("known values") {
    // pos 1, base 10000, n_rot 4: pair 0 turns by 1 rad, pair 1 by 0.01 rad.
    float x[4] = {1, 0, 1, 0};
    Reference::rope(x, 1, 4, 4, 1, 10000.0f);
    CHECK(x[0] == doctest::Approx(std::cos(1.0)).epsilon(1e-6));
    CHECK(x[1] == doctest::Approx(std::sin(1.0)).epsilon(1e-6));
    CHECK(x[2] == doctest::Approx(std::cos(0.01)).epsilon(1e-6));
    CHECK(x[3] == doctest::Approx(std::sin(0.01)).epsilon(1e-6));
    float y[4] = {1, 1, 0, 0};  // NEOX pairs (0, 2) and (1, 3)
    Reference::rope_neox(y, 1, 4, 4, 1, 10000.0f);
    CHECK(y[0] == doctest::Approx(std::cos(1.0)).epsilon(1e-6));
    CHECK(y[1] == doctest::Approx(std::cos(0.01)).epsilon(1e-6));
    CHECK(y[2] == doctest::Approx(std::sin(1.0)).epsilon(1e-6));
    CHECK(y[3] == doctest::Approx(std::sin(0.01)).epsilon(1e-6));
  }
  SUBCASE("against a double-precision rotation; position 0 is the identity") {
    Rng rng(11);
    const size_t n_head = 3, head_dim = 64;
    for (bool neox : {false, true}) {
      for (size_t n_rot : {size_t(64), size_t(32), size_t(2)}) {
        for (int32_t pos : {0, 1, 5, 37, 300}) {
          INFO("neox=", neox, " n_rot=", n_rot, " pos=", pos);
          std::vector<float> x = random_floats(n_head * head_dim, rng);
          std::vector<double> want(x.begin(), x.end());
          rope_by_hand(want, n_head, head_dim, n_rot, pos, 10000.0, neox);
          std::vector<float> got = x;
          if (neox) {
            Reference::rope_neox(got.data(), n_head, head_dim, n_rot, pos, 10000.0f);
          } else {
            Reference::rope(got.data(), n_head, head_dim, n_rot, pos, 10000.0f);
          }
          double worst = 0;
          for (size_t i = 0; i < got.size(); ++i) worst = std::max(worst, std::fabs(got[i] - want[i]));
          // Float angles drift by about pos * i ulps as ggml's do.
          CHECK(worst <= 1e-6 + 2e-7 * pos * double(n_rot));
          if (pos == 0) CHECK(std::memcmp(got.data(), x.data(), x.size() * sizeof(float)) == 0);
          for (size_t h = 0; h < n_head; ++h) {  // dims past n_rot untouched
            CHECK(std::memcmp(got.data() + h * head_dim + n_rot, x.data() + h * head_dim + n_rot,
                              (head_dim - n_rot) * sizeof(float)) == 0);
          }
        }
      }
    }
  }
  SUBCASE("backends agree with Reference bit for bit") {
    // Both backends run Reference's rope. Bit-equality assumes every TU of the
    // test binary is built with the same flags: with FMA enabled, GCC may
    // contract x0*c - x1*s differently in differently-flagged copies.
    for_each_backend([&]<class B>(std::type_identity<B>, const std::string& label) {
      INFO(label);
      Rng rng(5);
      std::vector<float> x = random_floats(4 * 128, rng);
      std::vector<float> a = x, b = x, c = x, d = x;
      Reference::rope(a.data(), 4, 128, 96, 1234, 500000.0f);
      B::rope(b.data(), 4, 128, 96, 1234, 500000.0f);
      Reference::rope_neox(c.data(), 4, 128, 96, 1234, 500000.0f);
      B::rope_neox(d.data(), 4, 128, 96, 1234, 500000.0f);
      CHECK(a == b);
      CHECK(c == d);
    });
  }
}

}  // namespace
