// Read bandwidth of this machine: THREADS threads each sum their part of a 1 GiB buffer
// (much larger than the caches), best of 5 passes of each of several read loops. The roofline
// for decode is this number divided by the bytes of weights one token reads.
//
// The roofline must be the most this machine can read, or a kernel can beat it: so the
// buffer sits on huge pages when the kernel gives them (as ember's packed weights do), the
// threads start before the clock does, and the loops are plain 64-bit sums, 32- and 64-byte
// vector sums, and vector sums with software prefetch a few KiB ahead (into L1, and into L2
// as ember's decode kernels read). The best loop's GB/s is printed; `-v` prints each loop's too, on stderr.
//
//   membw [THREADS] [-v]   prints GB/s (1e9 bytes per second) on one line
#include <sys/mman.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <thread>
#include <vector>

#if defined(__x86_64__)
#include <immintrin.h>
#endif

namespace {

uint64_t sum_scalar(const uint64_t* p, size_t m) {
  uint64_t a = 0, b = 0, c = 0, d = 0;
  for (size_t i = 0; i + 4 <= m; i += 4) a += p[i], b += p[i + 1], c += p[i + 2], d += p[i + 3];
  return a + b + c + d;
}

#if defined(__x86_64__)
template <bool kPrefetch>
__attribute__((target("avx2"))) uint64_t sum_avx2(const uint64_t* p, size_t m) {
  __m256i a = _mm256_setzero_si256(), b = a, c = a, d = a;
  const auto* v = reinterpret_cast<const __m256i*>(p);
  for (size_t i = 0; i + 16 <= m; i += 16, v += 4) {  // one 128-byte pair of lines per step
    if constexpr (kPrefetch) {
      _mm_prefetch(reinterpret_cast<const char*>(v) + 4096, _MM_HINT_T0);
      _mm_prefetch(reinterpret_cast<const char*>(v) + 4096 + 64, _MM_HINT_T0);
    }
    a = _mm256_add_epi64(a, _mm256_load_si256(v));
    b = _mm256_add_epi64(b, _mm256_load_si256(v + 1));
    c = _mm256_add_epi64(c, _mm256_load_si256(v + 2));
    d = _mm256_add_epi64(d, _mm256_load_si256(v + 3));
  }
  alignas(32) uint64_t out[4];
  _mm256_store_si256(reinterpret_cast<__m256i*>(out), _mm256_add_epi64(_mm256_add_epi64(a, b), _mm256_add_epi64(c, d)));
  return out[0] + out[1] + out[2] + out[3];
}
#endif

#if defined(__x86_64__)
// 64-byte vector sums, two lines per step, with software prefetch into L2 (hint T2) 4 KiB
// ahead, as the x16 decode kernels issue it (kernels/highway_int8-inl.hpp).
template <bool kPrefetch>
__attribute__((target("avx512f"))) uint64_t sum_avx512(const uint64_t* p, size_t m) {
  __m512i a = _mm512_setzero_si512(), b = a;
  const auto* v = reinterpret_cast<const __m512i*>(p);
  for (size_t i = 0; i + 16 <= m; i += 16, v += 2) {
    if constexpr (kPrefetch) {
      _mm_prefetch(reinterpret_cast<const char*>(v) + 4096, _MM_HINT_T2);
      _mm_prefetch(reinterpret_cast<const char*>(v) + 4096 + 64, _MM_HINT_T2);
    }
    a = _mm512_add_epi64(a, _mm512_load_si512(v));
    b = _mm512_add_epi64(b, _mm512_load_si512(v + 1));
  }
  alignas(64) uint64_t out[8];
  _mm512_store_si512(out, _mm512_add_epi64(a, b));
  uint64_t s = 0;
  for (uint64_t x : out) s += x;
  return s;
}
#endif

// Whether the CPU has feature F ("avx2", "avx512f"); never off x86.
#if defined(__x86_64__)
#define MEMBW_CPU_HAS(F) __builtin_cpu_supports(F)
#else
#define MEMBW_CPU_HAS(F) false
#endif

}  // namespace

int main(int argc, char** argv) {
  size_t n_threads = 1;
  bool verbose = false;
  for (int i = 1; i < argc; ++i) {
    if (std::strcmp(argv[i], "-v") == 0)
      verbose = true;
    else
      n_threads = size_t(std::max(1, std::atoi(argv[i])));
  }
  const size_t bytes = size_t(1) << 30, n = bytes / sizeof(uint64_t);
  void* mem = mmap(nullptr, bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (mem == MAP_FAILED) {
    std::fprintf(stderr, "membw: cannot map 1 GiB\n");
    return 1;
  }
#ifdef MADV_HUGEPAGE
  madvise(mem, bytes, MADV_HUGEPAGE);
#endif
  auto* buf = static_cast<uint64_t*>(mem);
  for (size_t i = 0; i < n; ++i) buf[i] = i * 0x9E3779B97F4A7C15ULL;  // touch every page

  using Loop = uint64_t (*)(const uint64_t*, size_t);
  struct Named {
    const char* name;
    Loop loop;
  };
  std::vector<Named> loops = {{"scalar", sum_scalar}};
#if defined(__x86_64__)
  if (MEMBW_CPU_HAS("avx2")) {
    loops.push_back({"avx2", sum_avx2<false>});
    loops.push_back({"avx2+prefetch", sum_avx2<true>});
  }
  if (MEMBW_CPU_HAS("avx512f")) {
    loops.push_back({"avx512", sum_avx512<false>});
    loops.push_back({"avx512+pf T2", sum_avx512<true>});
  }
#endif

  // Threads wait at a generation counter; the clock runs from the release to the last finish.
  std::atomic<int> generation{0}, done{0};
  std::atomic<Loop> loop{nullptr};
  std::vector<uint64_t> sums(n_threads * 8);
  std::vector<std::thread> ts;
  for (size_t t = 0; t < n_threads; ++t)
    ts.emplace_back([&, t] {
      for (int seen = 0;;) {
        while (generation.load() == seen) std::this_thread::yield();
        seen = generation.load();
        const Loop f = loop.load();
        if (!f) return;
        const uint64_t* p = buf + n * t / n_threads;
        const size_t m = n * (t + 1) / n_threads - n * t / n_threads;
        sums[t * 8] += f(p, m & ~size_t(15));
        done.fetch_add(1);
      }
    });
  double best = 0;
  for (const Named& l : loops) {
    double best_loop = 0;
    for (int pass = 0; pass < 5; ++pass) {
      loop.store(l.loop);
      done.store(0);
      const auto t0 = std::chrono::steady_clock::now();
      generation.fetch_add(1);
      while (done.load() < int(n_threads)) std::this_thread::yield();
      const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
      best_loop = std::max(best_loop, double(bytes & ~size_t(127)) / s / 1e9);
    }
    if (verbose) std::fprintf(stderr, "%-14s %.2f GB/s\n", l.name, best_loop);
    best = std::max(best, best_loop);
  }
  loop.store(nullptr);
  generation.fetch_add(1);
  for (auto& t : ts) t.join();
  uint64_t total = 0;
  for (uint64_t s : sums) total += s;
  std::printf("%.2f\n", best + double(total & 0) * 0.0);
  return 0;
}
