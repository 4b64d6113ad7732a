// Large, long-lived, zero-filled buffers: the row-interleaved weight copies made at load.
//
// Where the OS has anonymous mmap the buffer is mapped directly (so it goes back to the OS
// when freed) and asks for transparent huge pages (MADV_HUGEPAGE): a 600 MiB copy then
// takes ~300 page faults instead of ~150,000 while it is written, and the kernels that read
// it miss the TLB far less. Elsewhere it is a 64-byte aligned heap block.
#pragma once

#include <cstddef>
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
    void* p = ::mmap(nullptr, bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (p == MAP_FAILED) return;
#ifdef MADV_HUGEPAGE
    ::madvise(p, bytes, MADV_HUGEPAGE);  // advice only: fine if refused
#endif
    data_ = static_cast<std::byte*>(p);
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

  std::byte* data() const { return data_; }  // page-aligned with mmap, else 64-byte aligned
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
