// Decode attention throughput, one thread: the query heads of every KV head of one
// TinyLlama-shaped layer (32 query heads, 4 KV heads, head_dim 64) attend over N cached
// positions (f16, f32 or q8_0 cache), as one decode step does per layer. Prints the time per layer
// and the cache bytes read per second (each step reads every key and value of the layer once);
// a 22-layer model's decode at depth N spends 22 times that per token, split over the threads.
// Each depth runs Highway's fused attention kernel (Highway::attend), then the matmul path it
// replaces (two Highway matmuls with softmax between), for comparison in the same run; with
// --q8 the q8_0 kernel (Highway::attend_q8), then its row path (attend_group_q8_rows).
//
//   attention_bench [--seconds=S] [--f32 | --q8] [--target=T | --xsimd] [--layers=L] [N ...]   (default N: 512 4096)
//
// --layers=L gives the cache L layers and attends each in turn (22: TinyLlama's, whose cache
// at 4096 positions is more than the last-level cache, as in decode): the time is the mean per
// layer, and only the fused kernel runs.
// --target=T forces Highway's target T (AVX2, AVX3, ...: Highway::available_targets).
// --xsimd runs the Xsimd backend instead (Xsimd<>: the arch of the compiler flags), its fused
// kernels (Xsimd::attend, Xsimd::attend_q8) and then its matmul / row paths.
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

#define EMBER_IMPLEMENTATION
#include "ember/attention/attention.hpp"
#include "ember/kernels/kernels.hpp"

namespace {

// A backend without its fused kernels: attend_group takes the matmul path (f16, f32) or
// attend_group_q8_rows (q8_0).
template <class Backend>
struct MatmulPath {
  static void matmul(const ember::kernels::MatrixView& w, const float* x, size_t x_stride, size_t n_tok, float* y,
                     size_t y_stride, size_t r_begin, size_t r_end) {
    Backend::matmul(w, x, x_stride, n_tok, y, y_stride, r_begin, r_end);
  }
  static void scale(float* x, float s, size_t n) { Backend::scale(x, s, n); }
  static void softmax(float* x, size_t n) { Backend::softmax(x, n); }
  static void axpy(float a, const float* x, float* y, size_t n) { Backend::axpy(a, x, y, n); }
};

}  // namespace

int main(int argc, char** argv) {
  double seconds = 0.5;
  ember::DType dtype = ember::DType::F16;
  bool use_xsimd = false;
  size_t n_layer = 1;
  std::vector<size_t> depths;
  for (int i = 1; i < argc; ++i) {
    if (std::strncmp(argv[i], "--seconds=", 10) == 0)
      seconds = std::atof(argv[i] + 10);
    else if (std::strcmp(argv[i], "--f32") == 0)
      dtype = ember::DType::F32;
    else if (std::strcmp(argv[i], "--q8") == 0)
      dtype = ember::DType::Q8_0;
    else if (std::strcmp(argv[i], "--xsimd") == 0)
      use_xsimd = true;
    else if (std::strncmp(argv[i], "--layers=", 9) == 0)
      n_layer = std::max<size_t>(1, size_t(std::atol(argv[i] + 9)));
    else if (std::strncmp(argv[i], "--target=", 9) == 0) {
      if (!ember::kernels::Highway::force_target(argv[i] + 9)) {
        std::fprintf(stderr, "target %s is not available here\n", argv[i] + 9);
        return 2;
      }
    } else
      depths.push_back(size_t(std::atol(argv[i])));
  }
  if (depths.empty()) depths = {512, 4096};
  constexpr size_t kHeadDim = 64, kHeads = 32, kKvHeads = 4, kGroup = kHeads / kKvHeads;
  using Xsimd = ember::kernels::Xsimd<>;
  std::string backend;
  if (use_xsimd) {
    backend = std::string("Xsimd<") + Xsimd::arch_type::name() + ">";
    if (ember::kernels::xsimd_detail::use_vnni<Xsimd::arch_type>()) backend += "+VNNI";
  } else {
    backend = ember::kernels::Highway::current_target();
    if (ember::kernels::Highway::vnni_enabled() && backend != "AVX2") backend += "+VNNI";  // AVX2 has no VNNI path
  }
  std::printf("backend %s, %s cache, one thread, %zu layer%s\n", backend.c_str(),
              std::string(ember::name(dtype)).c_str(), n_layer, n_layer == 1 ? "" : "s");
  for (const size_t n : depths) {
    ember::KvCache cache(dtype, n_layer, n, kKvHeads * kHeadDim, kHeadDim);
    std::vector<float> k(kKvHeads * kHeadDim), v(k.size());
    uint32_t s = 12345;
    auto rnd = [&] { return float((s = s * 1664525u + 1013904223u) >> 8) * 0x1p-24f - 0.5f; };
    for (size_t p = 0; p < n; ++p) {
      for (auto& x : k) x = rnd();
      for (auto& x : v) x = rnd();
      for (size_t l = 0; l < n_layer; ++l) cache.store(l, p, k.data(), v.data());
    }
    std::vector<float> q(kHeads * kHeadDim), out(q.size()),
        scores(ember::attention_scratch_floats(kGroup, kHeadDim, n));
    for (auto& x : q) x = rnd();
    auto run = [&](auto backend, const char* what) {
      using B = decltype(backend);
      size_t next_layer = 0;
      auto layer = [&] {
        for (size_t g = 0; g < kKvHeads; ++g)
          ember::attend_group<B>(cache, next_layer, g, kHeadDim, kGroup, q.data() + g * kGroup * kHeadDim, n,
                                 scores.data(), out.data() + g * kGroup * kHeadDim);
        next_layer = (next_layer + 1) % n_layer;
      };
      layer();
      size_t calls = 0;
      const auto t0 = std::chrono::steady_clock::now();
      double elapsed = 0;
      do {
        layer();
        ++calls;
        elapsed = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
      } while (elapsed < seconds);
      const double per = elapsed / double(calls);
      std::printf("N %6zu %-8s %8.1f us per layer, %6.2f GB/s of cache read (checksum %.6f)\n", n, what, per * 1e6,
                  double(cache.bytes()) / double(n_layer) / per / 1e9, double(out[0] + out[kHeads * kHeadDim - 1]));
    };
    const char* unfused = dtype == ember::DType::Q8_0 ? "rows" : "matmul";
    if (use_xsimd) {
      run(Xsimd{}, "fused");
      if (n_layer == 1) run(MatmulPath<Xsimd>{}, unfused);
    } else {
      run(ember::kernels::Highway{}, "fused");
      if (n_layer == 1) run(MatmulPath<ember::kernels::Highway>{}, unfused);
    }
  }
  return 0;
}
