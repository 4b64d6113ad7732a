// Read-only bytes of a file: memory-mapped where the OS allows it, so weights are used in place.
#pragma once

#include <cerrno>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <span>
#include <string>
#include <utility>

#include "ember/core/result.hpp"

#if defined(__unix__) || defined(__APPLE__)
#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>
#define EMBER_HAS_MMAP 1
#else
#include <cstdio>
#include <vector>
#define EMBER_HAS_MMAP 0
#endif

namespace ember {

class MappedFile {
 public:
  MappedFile() = default;
  MappedFile(MappedFile&& o) noexcept { *this = std::move(o); }
  MappedFile& operator=(MappedFile&& o) noexcept {
    if (this != &o) {
      release();
      data_ = std::exchange(o.data_, nullptr);
      size_ = std::exchange(o.size_, 0);
#if !EMBER_HAS_MMAP
      buffer_ = std::move(o.buffer_);
#endif
    }
    return *this;
  }
  MappedFile(const MappedFile&) = delete;
  MappedFile& operator=(const MappedFile&) = delete;
  ~MappedFile() { release(); }

  static Result<MappedFile> open(const std::string& path) {
    MappedFile m;
#if EMBER_HAS_MMAP
    const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
    if (fd < 0) return make_error(Errc::io, "cannot open " + path + ": " + std::strerror(errno));
    struct stat st {};
    if (::fstat(fd, &st) != 0) {
      const int e = errno;
      ::close(fd);
      return make_error(Errc::io, "cannot stat " + path + ": " + std::strerror(e));
    }
    if (!S_ISREG(st.st_mode)) {
      ::close(fd);
      return make_error(Errc::io, path + " is not a regular file");
    }
    m.size_ = static_cast<size_t>(st.st_size);
    if (m.size_ > 0) {
      void* p = ::mmap(nullptr, m.size_, PROT_READ, MAP_PRIVATE, fd, 0);
      if (p == MAP_FAILED) {
        const int e = errno;
        ::close(fd);
        return make_error(Errc::io, "cannot map " + path + ": " + std::strerror(e));
      }
      m.data_ = static_cast<const std::byte*>(p);
    }
    ::close(fd);
#else
    std::FILE* f = std::fopen(path.c_str(), "rb");
    if (!f) return make_error(Errc::io, "cannot open " + path);
    std::fseek(f, 0, SEEK_END);
    const long n = std::ftell(f);
    std::fseek(f, 0, SEEK_SET);
    m.buffer_.resize(n > 0 ? size_t(n) : 0);
    const size_t got = std::fread(m.buffer_.data(), 1, m.buffer_.size(), f);
    std::fclose(f);
    if (got != m.buffer_.size()) return make_error(Errc::io, "cannot read " + path);
    m.data_ = m.buffer_.data();
    m.size_ = m.buffer_.size();
#endif
    return m;
  }

  std::span<const std::byte> bytes() const { return {data_, size_}; }
  size_t size() const { return size_; }

  // Tells the OS that the whole pages inside `range` (a part of bytes()) will not be needed
  // soon: they leave this process's resident memory and come back from the page cache or the
  // disk if read again. The contents never change. A no-op without mmap.
  void release_pages(std::span<const std::byte> range) const {
#if EMBER_HAS_MMAP
    const size_t page = size_t(::sysconf(_SC_PAGESIZE));
    const auto begin = (reinterpret_cast<uintptr_t>(range.data()) + page - 1) / page * page;
    const auto end = (reinterpret_cast<uintptr_t>(range.data()) + range.size()) / page * page;
    if (end > begin) ::madvise(reinterpret_cast<void*>(begin), end - begin, MADV_DONTNEED);
#else
    (void)range;
#endif
  }

 private:
  void release() {
#if EMBER_HAS_MMAP
    if (data_) ::munmap(const_cast<std::byte*>(data_), size_);
#endif
    data_ = nullptr;
    size_ = 0;
  }

  const std::byte* data_ = nullptr;
  size_t size_ = 0;
#if !EMBER_HAS_MMAP
  std::vector<std::byte> buffer_;
#endif
};

}  // namespace ember
