// Quantized matmul throughput, Reference vs Highway, one thread (Highway: --threads=T): for each
// weight format, a 2048x2048 and a 5632x2048 matrix (a 1B-class model's
// attention and FFN shapes) times 1 token (decode) and 8 tokens (a small
// batch). Prints the time per call and the weights' bytes per second (each
// call reads the matrix once). The weights are random quants with sane scales:
// throughput does not depend on the values.
//
//   kquant_bench [--seconds=S] [--no-vnni] [--no-amx] [--packed] [--cold] [--xsimd] [--tok=N,...]
//                [--threads=T] [--no-ref] [format ...]
//
// S is the time spent per measurement (default 0.5); --no-vnni runs the
// AVX2-style int8 path on AVX-512 targets; --packed gives Highway the x16 copy
// (packed.hpp) of the formats that have one, as Model::load does; --cold gives
// Highway 16 copies of each matrix in turn (more than the last-level cache, as
// a model's layers are in decode) and prints the mean time per call; --xsimd
// times Xsimd<> (the arch the compiler flags give: build with -march=native
// for AVX2 / AVX-512) in Highway's column instead; formats
// by ggml's names (Q4_K ...), default all quantized formats. --tok=N,... times those
// token counts instead of 1 and 8 (prefill: 64 is one chunk of Highway's matmul; with 16 and
// more, AMX where the CPU has it, --no-amx turns it off); the last column is then the
// multiply-adds per second. --no-ref skips Reference (slow for many tokens).
// --threads=T splits each Highway call's rows over T threads (ember::ThreadPool, cut at whole
// groups of 16 rows, as a Session splits a matmul): with --cold, what decode's threads read
// together. Check a finding against decode itself: without software prefetch one thread
// read Q4_K / Q6_K 40-55% faster here, two threads mixed, decode 10% slower (RESULTS.md).
#include <algorithm>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

#define EMBER_IMPLEMENTATION
#include "ember/core/large_buffer.hpp"
#include "ember/core/thread_pool.hpp"
#include "ember/kernels/kernels.hpp"
#include "ember/kernels/packed.hpp"
#include "ember/kernels/xsimd.hpp"

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
  // Float formats: values in [-1, 1] (random bits would include denormals, whose
  // microcode assists make a float kernel 10x slower).
  if (t == DType::F32 || t == DType::F16 || t == DType::BF16) {
    for (size_t i = 0; i < n_row * n_col; ++i) {
      const float v = rng.uniform();
      const uint16_t h = t == DType::F16 ? ember::f32_to_f16(v) : ember::f32_to_bf16(v);
      if (t == DType::F32)
        std::memcpy(&w[4 * i], &v, 4);
      else
        std::memcpy(&w[2 * i], &h, 2);
    }
    return w;
  }
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
  bool packed = false, cold = false, use_xsimd = false, ref_on = true;
  size_t n_threads = 1;
  std::vector<size_t> tokens = {1, 8};
  for (int i = 1; i < argc; ++i) {
    const std::string arg = argv[i];
    if (arg.rfind("--seconds=", 0) == 0) {
      budget = std::atof(arg.c_str() + 10);
    } else if (arg == "--no-vnni") {
      Highway::set_vnni_enabled(false);
    } else if (arg == "--no-amx") {
      Highway::set_amx_enabled(false);
    } else if (arg == "--no-ref") {
      ref_on = false;
    } else if (arg.rfind("--tok=", 0) == 0) {
      tokens.clear();
      for (const char* p = arg.c_str() + 6; *p;) {
        char* end = nullptr;
        const unsigned long n = std::strtoul(p, &end, 10);
        if (end == p || n == 0) {
          std::fprintf(stderr, "bad --tok list %s\n", arg.c_str());
          return 2;
        }
        tokens.push_back(n);
        p = *end == ',' ? end + 1 : end;
      }
    } else if (arg.rfind("--threads=", 0) == 0) {
      n_threads = std::strtoul(arg.c_str() + 10, nullptr, 10);
      if (n_threads == 0) {
        std::fprintf(stderr, "bad %s\n", arg.c_str());
        return 2;
      }
    } else if (arg == "--packed") {
      packed = true;
    } else if (arg == "--cold") {
      cold = true;
    } else if (arg == "--xsimd") {
      use_xsimd = true;
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
  // The backend timed in the "hwy" columns, rows split over the pool's threads.
  ember::ThreadPool pool(n_threads);
  struct Call {
    const MatrixView* w;
    const float* x;
    size_t n_tok;
    float* y;
    bool xsimd;
    size_t n_task;
    size_t cut(size_t i) const { return i == n_task ? w->n_row : w->n_row * i / n_task / 16 * 16; }
  };
  const auto matmul = [&](const MatrixView& w, const float* x, size_t n_tok, float* y) {
    Call call{&w, x, n_tok, y, use_xsimd, n_threads};
    pool.run(
        n_threads,
        [](void* ctx, size_t i) {
          const Call& c = *static_cast<const Call*>(ctx);
          if (c.xsimd)
            ember::kernels::Xsimd<>::matmul(*c.w, c.x, c.w->n_col, c.n_tok, c.y, c.w->n_row, c.cut(i), c.cut(i + 1));
          else
            Highway::matmul(*c.w, c.x, c.w->n_col, c.n_tok, c.y, c.w->n_row, c.cut(i), c.cut(i + 1));
        },
        &call);
  };
  if (use_xsimd) std::printf("hwy columns: Xsimd<%s>\n", xsimd::default_arch::name());
  std::printf("Highway target %s, VNNI %s, AMX %s, x16 copy %s; Reference one thread, Highway %zu; Highway: %s\n",
              Highway::current_target(), Highway::vnni_enabled() ? "on" : "off", Highway::amx_enabled() ? "on" : "off",
              packed ? "on" : "off", n_threads, cold ? "mean of calls on 16 copies in turn" : "best of repeated calls");
  std::printf("%-5s %-10s %4s %12s %10s %12s %10s %8s %10s\n", "fmt", "matrix", "tok", "ref ms", "ref GB/s", "hwy ms",
              "hwy GB/s", "speedup", "hwy GMAC/s");
  Rng rng{42};
  const size_t shapes[][2] = {{2048, 2048}, {5632, 2048}};
  for (DType t : formats) {
    for (const auto& shape : shapes) {
      const size_t n_row = shape[0], n_col = shape[1];
      const std::vector<unsigned char> w_data = random_weights(t, n_row, n_col, rng);
      const MatrixView w_file = ember::kernels::make_matrix_view(t, w_data.data(), n_row, n_col);
      // Highway's views: the file layout or the x16 copy; 16 copies of either with --cold.
      const size_t n_copy = cold ? 16 : 1;
      const bool pack = packed && !use_xsimd && Highway::packs(t);
      const size_t bytes = pack ? ember::kernels::packed_bytes(t, n_row, n_col) : w_data.size();
      // In huge pages where the kernel grants them, as Model::load's packed copies are.
      const ember::LargeBuffer copies(n_copy * (bytes + 64) + 64);
      std::vector<MatrixView> views(n_copy, w_file);
      for (size_t c = 0; c < n_copy; ++c) {
        const uintptr_t at = reinterpret_cast<uintptr_t>(copies.data()) + c * (bytes + 64);
        auto* start = reinterpret_cast<std::byte*>((at + 63) / 64 * 64);
        if (pack) {
          ember::kernels::pack_groups(w_file, start, 0, ember::kernels::packed_groups(n_row));
          views[c].packed = start;
        } else if (cold) {
          std::memcpy(start, w_data.data(), bytes);
          views[c].data = start;
        }
      }
      const double gb = double(w_data.size()) * 1e-9;
      for (size_t n_tok : tokens) {
        std::vector<float> x(n_tok * n_col), y(n_tok * n_row);
        for (float& v : x) v = rng.uniform();
        const double ref =
            ref_on ? time_call([&] { Reference::matmul(w_file, x.data(), n_col, n_tok, y.data(), n_row, 0, n_row); },
                               budget)
                   : 0.0;
        double hwy = 0;
        if (cold) {
          using clock = std::chrono::steady_clock;
          size_t calls = 0;
          const auto t0 = clock::now();
          do {
            matmul(views[calls % n_copy], x.data(), n_tok, y.data());
          } while (++calls < 2 * n_copy || std::chrono::duration<double>(clock::now() - t0).count() < budget);
          hwy = std::chrono::duration<double>(clock::now() - t0).count() / double(calls);
        } else {
          hwy = time_call([&] { matmul(views[0], x.data(), n_tok, y.data()); }, budget);
        }
        const std::string matrix = std::to_string(n_row) + "x" + std::to_string(n_col);
        const double gmac = double(n_row) * double(n_col) * double(n_tok) * 1e-9 / hwy;
        std::printf("%-5s %-10s %4zu %12.3f %10.2f %12.3f %10.2f %7.1fx %10.1f\n", std::string(ember::name(t)).c_str(),
                    matrix.c_str(), n_tok, ref * 1e3, ref > 0 ? gb / ref : 0.0, hwy * 1e3, gb / hwy, ref / hwy, gmac);
      }
    }
  }
}
