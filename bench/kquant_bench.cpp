// Quantized matmul throughput, Reference vs Highway, one thread: for each
// weight format, a 2048x2048 and a 5632x2048 matrix (a 1B-class model's
// attention and FFN shapes) times 1 token (decode) and 8 tokens (a small
// batch). Prints the time per call and the weights' bytes per second (each
// call reads the matrix once). The weights are random quants with sane scales:
// throughput does not depend on the values.
//
//   kquant_bench [--seconds=S] [--no-vnni] [format ...]
//
// S is the time spent per measurement (default 0.5); --no-vnni runs the
// AVX2-style int8 path on AVX-512 targets; formats by ggml's names (Q4_K ...),
// default all quantized formats.
#include <algorithm>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

#define EMBER_IMPLEMENTATION
#include "ember/kernels/kernels.hpp"

namespace {

using ember::DType;
using ember::kernels::Highway;
using ember::kernels::MatrixView;
using ember::kernels::Reference;

struct Rng {
  uint64_t s;
  uint64_t next() {
    uint64_t z = (s += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
  }
  float uniform() { return float(next() >> 40) * 0x1p-23f - 1.0f; }
};

// Random bytes, then every f16 scale field of every block set to a small
// value: random f16 bits would include infinities and NaNs.
std::vector<unsigned char> random_weights(DType t, size_t n_row, size_t n_col, Rng& rng) {
  std::vector<unsigned char> w(n_row * ember::row_bytes(t, n_col));
  for (auto& b : w) b = static_cast<unsigned char>(rng.next());
  using namespace ember::quant;
  size_t fields[2] = {};
  size_t n_fields = 0;
  switch (t) {
    case DType::Q4_0: fields[n_fields++] = offsetof(BlockQ4_0, d_f16); break;
    case DType::Q4_1:
      fields[n_fields++] = offsetof(BlockQ4_1, d_f16), fields[n_fields++] = offsetof(BlockQ4_1, m_f16);
      break;
    case DType::Q5_0: fields[n_fields++] = offsetof(BlockQ5_0, d_f16); break;
    case DType::Q5_1:
      fields[n_fields++] = offsetof(BlockQ5_1, d_f16), fields[n_fields++] = offsetof(BlockQ5_1, m_f16);
      break;
    case DType::Q8_0: fields[n_fields++] = offsetof(BlockQ8_0, d_f16); break;
    case DType::Q2_K:
      fields[n_fields++] = offsetof(BlockQ2_K, d_f16), fields[n_fields++] = offsetof(BlockQ2_K, dmin_f16);
      break;
    case DType::Q3_K: fields[n_fields++] = offsetof(BlockQ3_K, d_f16); break;
    case DType::Q4_K:
      fields[n_fields++] = offsetof(BlockQ4_K, d_f16), fields[n_fields++] = offsetof(BlockQ4_K, dmin_f16);
      break;
    case DType::Q5_K:
      fields[n_fields++] = offsetof(BlockQ5_K, d_f16), fields[n_fields++] = offsetof(BlockQ5_K, dmin_f16);
      break;
    case DType::Q6_K: fields[n_fields++] = offsetof(BlockQ6_K, d_f16); break;
    default: break;
  }
  const size_t block = ember::block_bytes(t);
  const uint16_t scale = ember::f32_to_f16(0.01f);
  for (size_t b = 0; b < w.size() / block; ++b) {
    for (size_t f = 0; f < n_fields; ++f) std::memcpy(&w[b * block + fields[f]], &scale, sizeof(scale));
  }
  return w;
}

// Seconds per call: repeated until `budget` seconds have passed (at least
// twice, after one warm-up call), best of the repetitions.
template <class F>
double time_call(F&& f, double budget) {
  using clock = std::chrono::steady_clock;
  f();
  double best = 1e30, total = 0;
  for (int i = 0; i < 2 || total < budget; ++i) {
    const auto t0 = clock::now();
    f();
    const double s = std::chrono::duration<double>(clock::now() - t0).count();
    best = std::min(best, s);
    total += s;
  }
  return best;
}

}  // namespace

int main(int argc, char** argv) {
  double budget = 0.5;
  std::vector<DType> formats;
  for (int i = 1; i < argc; ++i) {
    const std::string arg = argv[i];
    if (arg.rfind("--seconds=", 0) == 0) {
      budget = std::atof(arg.c_str() + 10);
    } else if (arg == "--no-vnni") {
      Highway::set_vnni_enabled(false);
    } else if (const auto t = ember::dtype_from_name(arg)) {
      formats.push_back(*t);
    } else {
      std::fprintf(stderr, "unknown argument %s\n", arg.c_str());
      return 2;
    }
  }
  if (formats.empty()) {
    formats = {DType::Q4_K, DType::Q6_K, DType::Q5_K, DType::Q5_0, DType::Q5_1,
               DType::Q3_K, DType::Q2_K, DType::Q4_0, DType::Q8_0};
  }
  std::printf("Highway target %s, VNNI %s; one thread; best of repeated calls\n", Highway::current_target(),
              Highway::vnni_enabled() ? "on" : "off");
  std::printf("%-5s %-10s %4s %12s %10s %12s %10s %8s\n", "fmt", "matrix", "tok", "ref ms", "ref GB/s", "hwy ms",
              "hwy GB/s", "speedup");
  Rng rng{42};
  const size_t shapes[][2] = {{2048, 2048}, {5632, 2048}};
  for (DType t : formats) {
    for (const auto& shape : shapes) {
      const size_t n_row = shape[0], n_col = shape[1];
      const std::vector<unsigned char> w_data = random_weights(t, n_row, n_col, rng);
      const MatrixView w = ember::kernels::make_matrix_view(t, w_data.data(), n_row, n_col);
      const double gb = double(w_data.size()) * 1e-9;
      for (size_t n_tok : {size_t(1), size_t(8)}) {
        std::vector<float> x(n_tok * n_col), y(n_tok * n_row);
        for (float& v : x) v = rng.uniform();
        const double ref =
            time_call([&] { Reference::matmul(w, x.data(), n_col, n_tok, y.data(), n_row, 0, n_row); }, budget);
        const double hwy =
            time_call([&] { Highway::matmul(w, x.data(), n_col, n_tok, y.data(), n_row, 0, n_row); }, budget);
        const std::string matrix = std::to_string(n_row) + "x" + std::to_string(n_col);
        std::printf("%-5s %-10s %4zu %12.3f %10.2f %12.3f %10.2f %7.1fx\n", std::string(ember::name(t)).c_str(),
                    matrix.c_str(), n_tok, ref * 1e3, gb / ref, hwy * 1e3, gb / hwy, ref / hwy);
      }
    }
  }
}
