// Read bandwidth of this machine: THREADS threads each sum their part of a 1 GiB buffer
// (much larger than the caches), best of 5 passes. The roofline for decode is this number
// divided by the bytes of weights one token reads.
//
//   membw [THREADS]   prints GB/s (1e9 bytes per second) on one line
#include <algorithm>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <thread>
#include <vector>

int main(int argc, char** argv) {
  const size_t n_threads = argc > 1 ? std::max(1, std::atoi(argv[1])) : 1;
  const size_t n = (size_t(1) << 30) / sizeof(uint64_t);
  std::vector<uint64_t> buf(n);
  for (size_t i = 0; i < n; ++i) buf[i] = i * 0x9E3779B97F4A7C15ULL;  // touch every page
  std::vector<uint64_t> sums(n_threads * 8);
  double best = 0;
  for (int pass = 0; pass < 5; ++pass) {
    const auto t0 = std::chrono::steady_clock::now();
    std::vector<std::thread> ts;
    for (size_t t = 0; t < n_threads; ++t)
      ts.emplace_back([&, t] {
        const uint64_t* p = buf.data() + n * t / n_threads;
        const size_t m = n * (t + 1) / n_threads - n * t / n_threads;
        uint64_t a = 0, b = 0, c = 0, d = 0;
        for (size_t i = 0; i + 4 <= m; i += 4) a += p[i], b += p[i + 1], c += p[i + 2], d += p[i + 3];
        sums[t * 8] = a + b + c + d;
      });
    for (auto& t : ts) t.join();
    const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    best = std::max(best, double(n * sizeof(uint64_t)) / s / 1e9);
  }
  uint64_t total = 0;
  for (uint64_t s : sums) total += s;
  std::printf("%.2f\n", best + double(total & 0) * 0.0);
  return 0;
}
