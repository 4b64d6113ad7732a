// Parallel work goes through an Executor: anything that can run n independent tasks and
// return when all are done. ember ships ThreadPool; a host can pass its own job system.
// Tasks are split the same way whatever runs them, so results never depend on threads.
#pragma once

#include <atomic>
#include <concepts>
#include <condition_variable>
#include <cstddef>
#include <mutex>
#include <thread>
#include <vector>

namespace ember {

using TaskFn = void (*)(void* context, size_t task);

// run(n, fn, ctx) calls fn(ctx, i) once for each i in [0, n), on any threads, and returns
// when all calls have returned.
template <class E>
concept Executor = requires(E& e, size_t n, TaskFn fn, void* ctx) {
  {e.run(n, fn, ctx)};
  { e.n_threads() } -> std::convertible_to<size_t>;
};

// A non-owning, type-erased handle to any Executor.
class ExecutorRef {
 public:
  ExecutorRef() = default;
  template <Executor E>
  ExecutorRef(E& e)  // NOLINT: implicit on purpose, `.executor = &pool` reads naturally
      : self_(&e),
        run_([](void* self, size_t n, TaskFn fn, void* ctx) { static_cast<E*>(self)->run(n, fn, ctx); }),
        n_threads_(e.n_threads()) {}

  explicit operator bool() const { return self_ != nullptr; }
  size_t n_threads() const { return self_ ? n_threads_ : 1; }
  void run(size_t n, TaskFn fn, void* ctx) const {
    if (!self_ || n <= 1) {
      for (size_t i = 0; i < n; ++i) fn(ctx, i);
      return;
    }
    run_(self_, n, fn, ctx);
  }
  // Convenience for lambdas: for_each(n, [&](size_t i) { ... }).
  template <class F>
  void for_each(size_t n, F&& f) const {
    run(
        n, [](void* c, size_t i) { (*static_cast<F*>(c))(i); }, &f);
  }

 private:
  void* self_ = nullptr;
  void (*run_)(void*, size_t, TaskFn, void*) = nullptr;
  size_t n_threads_ = 1;
};

// Spin-wait hint to the CPU (a pause on x86), so a spinning thread leaves the core's
// resources to its sibling.
inline void cpu_relax() {
#if defined(__x86_64__) || defined(__i386__)
  __builtin_ia32_pause();
#elif defined(__aarch64__)
  asm volatile("yield");
#endif
}

// A fixed set of worker threads; the calling thread works too. A forward pass hands the
// pool hundreds of small jobs a few microseconds apart, so between jobs workers spin on an
// atomic job counter (about 100 microseconds) before they sleep on a condition variable: a
// job reaches a spinning worker in well under a microsecond instead of the tens a wake-up
// costs, and an idle pool still costs nothing.
class ThreadPool {
 public:
  explicit ThreadPool(size_t n_threads) : n_threads_(n_threads == 0 ? 1 : n_threads) {
    for (size_t i = 1; i < n_threads_; ++i) workers_.emplace_back([this] { work(); });
  }
  ThreadPool(const ThreadPool&) = delete;
  ThreadPool& operator=(const ThreadPool&) = delete;
  ~ThreadPool() {
    {
      std::lock_guard lock(mutex_);
      stop_.store(true, std::memory_order_relaxed);
      job_.fetch_add(1, std::memory_order_release);
    }
    wake_.notify_all();
    for (auto& t : workers_) t.join();
  }

  size_t n_threads() const { return n_threads_; }

  void run(size_t n, TaskFn fn, void* ctx) {
    if (n_threads_ == 1 || n <= 1) {
      for (size_t i = 0; i < n; ++i) fn(ctx, i);
      return;
    }
    fn_ = fn;
    ctx_ = ctx;
    n_tasks_ = n;
    next_.store(0, std::memory_order_relaxed);
    working_.store(workers_.size(), std::memory_order_relaxed);
    bool wake;
    {
      // Under the mutex, so that a worker about to sleep either sees the new job or is
      // counted in sleepers_ and gets the notification.
      std::lock_guard lock(mutex_);
      job_.fetch_add(1, std::memory_order_release);  // publishes fn_, ctx_, n_tasks_
      wake = sleepers_ > 0;
    }
    if (wake) wake_.notify_all();
    drain();
    for (int spins = 0; working_.load(std::memory_order_acquire) != 0; ++spins) {
      if (spins < kSpins)
        cpu_relax();
      else
        std::this_thread::yield();
    }
  }

 private:
  static constexpr int kSpins = 2000;  // ~100 us of pause instructions

  void drain() {
    for (size_t i; (i = next_.fetch_add(1, std::memory_order_relaxed)) < n_tasks_;) fn_(ctx_, i);
  }
  void work() {
    uint64_t seen = 0;
    for (;;) {
      uint64_t job;
      for (int spins = 0; (job = job_.load(std::memory_order_acquire)) == seen;) {
        if (++spins < kSpins) {
          cpu_relax();
          continue;
        }
        std::unique_lock lock(mutex_);
        ++sleepers_;
        wake_.wait(lock, [&] { return job_.load(std::memory_order_relaxed) != seen; });
        --sleepers_;
        spins = 0;
      }
      seen = job;
      if (stop_.load(std::memory_order_relaxed)) return;
      drain();
      working_.fetch_sub(1, std::memory_order_release);
    }
  }

  size_t n_threads_;
  std::vector<std::thread> workers_;
  std::mutex mutex_;
  std::condition_variable wake_;
  size_t sleepers_ = 0;  // guarded by mutex_
  std::atomic<uint64_t> job_{0};
  std::atomic<bool> stop_{false};
  std::atomic<size_t> working_{0};  // workers not yet done with the current job
  TaskFn fn_ = nullptr;
  void* ctx_ = nullptr;
  size_t n_tasks_ = 0;
  std::atomic<size_t> next_{0};
};

}  // namespace ember
