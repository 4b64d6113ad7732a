// Large, long-lived, zero-filled buffers: the row-interleaved weight copies made at load.
//
// Where the OS has anonymous mmap the buffer is mapped directly (so it goes back to the OS
// when freed) and asks for transparent huge pages (MADV_HUGEPAGE): a 600 MiB copy then
// takes ~300 page faults instead of ~150,000 while it is written, and the kernels that read
// it miss the TLB far less. Elsewhere it is a 64-byte aligned heap block.
#pragma once

#include <cstddef>
#include <cstdint>
#include <cstring>
#include <new>
#include <utility>

#if defined(__unix__) || defined(__APPLE__)
#include <sys/mman.h>
#define EMBER_LARGE_BUFFER_MMAP 1
#else
#define EMBER_LARGE_BUFFER_MMAP 0
#endif

namespace ember {

class LargeBuffer {
 public:
  LargeBuffer() = default;
  // Empty (data() null) when the memory is not there; no exceptions, so that hosts built
  // with -fno-exceptions can use it.
  explicit LargeBuffer(size_t bytes) {
    if (bytes == 0) return;
#if EMBER_LARGE_BUFFER_MMAP
    // From 2 MiB up the start is placed on a 2 MiB boundary (mapped 2 MiB longer, the
    // excess unmapped), so that huge pages can cover the buffer from its first byte.
    constexpr size_t kHuge = size_t(2) << 20, kPage = 4096;
    const size_t extra = bytes >= kHuge ? kHuge : 0;
    void* p = ::mmap(nullptr, bytes + extra, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (p == MAP_FAILED) return;
    auto* start = static_cast<std::byte*>(p);
    if (extra) {
      const auto at = reinterpret_cast<uintptr_t>(p);
      const size_t head = (kHuge - at % kHuge) % kHuge, end = head + (bytes + kPage - 1) / kPage * kPage;
      if (head) ::munmap(p, head);
      if (end < bytes + extra) ::munmap(start + end, bytes + extra - end);
      start += head;
    }
#ifdef MADV_HUGEPAGE
    ::madvise(start, bytes, MADV_HUGEPAGE);  // advice only: fine if refused
#endif
    data_ = start;
#else
    data_ = new (std::align_val_t(64), std::nothrow) std::byte[bytes];
    if (!data_) return;
    std::memset(data_, 0, bytes);
#endif
    size_ = bytes;
  }
  LargeBuffer(LargeBuffer&& o) noexcept : data_(std::exchange(o.data_, nullptr)), size_(std::exchange(o.size_, 0)) {}
  LargeBuffer& operator=(LargeBuffer&& o) noexcept {
    if (this != &o) {
      release();
      data_ = std::exchange(o.data_, nullptr);
      size_ = std::exchange(o.size_, 0);
    }
    return *this;
  }
  LargeBuffer(const LargeBuffer&) = delete;
  LargeBuffer& operator=(const LargeBuffer&) = delete;
  ~LargeBuffer() { release(); }

  // With mmap 2 MiB-aligned from 2 MiB up and page-aligned below; else 64-byte aligned.
  std::byte* data() const { return data_; }
  size_t size() const { return size_; }

 private:
  void release() {
    if (!data_) return;
#if EMBER_LARGE_BUFFER_MMAP
    ::munmap(data_, size_);
#else
    ::operator delete[](data_, std::align_val_t(64));
#endif
    data_ = nullptr;
  }

  std::byte* data_ = nullptr;
  size_t size_ = 0;
};

}  // namespace ember
