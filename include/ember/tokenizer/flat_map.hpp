// A small open-addressing hash map keyed by uint64_t, for the tokenizers' hot
// look-ups (merge tables keyed by two ids, characters keyed by their bytes).
// Insert-only; after building it is read-only and safe to share across threads.
#pragma once

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <vector>

namespace ember::tokenizer_detail {

template <class V>
class U64Map {
 public:
  static constexpr uint64_t kEmpty = ~uint64_t{0};  // never a key

  void reserve(size_t n) {
    size_t capacity = 16;
    int bits = 4;
    while (capacity < n * 2) capacity *= 2, ++bits;
    if (capacity <= slots_.size()) return;
    std::vector<Slot> old = std::move(slots_);
    slots_.assign(capacity, Slot{kEmpty, V{}});
    mask_ = capacity - 1;
    shift_ = 64 - bits;
    size_ = 0;
    for (const Slot& s : old)
      if (s.key != kEmpty) insert(s.key, s.value);
  }

  // Keeps the first value inserted for a key; returns whether it inserted.
  bool insert(uint64_t k, const V& v) {
    if (k == kEmpty) return false;
    if ((size_ + 1) * 2 > slots_.size()) reserve(std::max<size_t>(16, size_ + 1) * 2);
    for (size_t i = hash(k);; i = (i + 1) & mask_) {
      if (slots_[i].key == k) return false;
      if (slots_[i].key == kEmpty) {
        slots_[i] = {k, v};
        ++size_;
        return true;
      }
    }
  }

  const V* find(uint64_t k) const {
    if (slots_.empty() || k == kEmpty) return nullptr;
    for (size_t i = hash(k);; i = (i + 1) & mask_) {
      if (slots_[i].key == k) return &slots_[i].value;
      if (slots_[i].key == kEmpty) return nullptr;
    }
  }
  bool contains(uint64_t k) const { return find(k) != nullptr; }
  size_t size() const { return size_; }

 private:
  struct Slot {
    uint64_t key;
    V value;
  };
  // Fibonacci hashing: the top bits of the product depend on every key bit.
  size_t hash(uint64_t k) const { return static_cast<size_t>((k * 0x9E3779B97F4A7C15ull) >> shift_); }

  std::vector<Slot> slots_;
  size_t mask_ = 0;
  int shift_ = 60;
  size_t size_ = 0;
};

// Two 32-bit ids as one key.
inline uint64_t pair_key(int32_t a, int32_t b) {
  return (static_cast<uint64_t>(static_cast<uint32_t>(a)) << 32) | static_cast<uint32_t>(b);
}

}  // namespace ember::tokenizer_detail
