// The token list of a GGUF tokenizer: text, type and score per id, and the
// reverse look-up. Owns copies of the strings, so it outlives the GGUF file.
#pragma once

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace ember {

using TokenId = int32_t;

// Values of tokenizer.ggml.token_type (llama.cpp's llama_token_type).
enum class TokenType : int32_t {
  undefined = 0,
  normal = 1,
  unknown = 2,
  control = 3,
  user_defined = 4,
  unused = 5,
  byte = 6,
};

class Vocab {
 public:
  Vocab() = default;
  // Copies are not offered (a vocabulary is large; share the Tokenizer instead).
  Vocab(Vocab&&) noexcept = default;
  Vocab& operator=(Vocab&&) noexcept = default;
  Vocab(const Vocab&) = delete;
  Vocab& operator=(const Vocab&) = delete;

  // Builds from parallel arrays; `text(i)` gives token i's text.
  template <class TextAt>
  static Vocab build(size_t n, TextAt text, std::vector<TokenType> types, std::vector<float> scores) {
    Vocab v;
    size_t total = 0;
    for (size_t i = 0; i < n; ++i) total += text(i).size();
    v.blob_.reserve(total);
    v.offsets_.reserve(n + 1);
    v.offsets_.push_back(0);
    for (size_t i = 0; i < n; ++i) {
      const std::string_view t = text(i);
      v.blob_.insert(v.blob_.end(), t.begin(), t.end());
      v.offsets_.push_back(static_cast<uint32_t>(v.blob_.size()));
      v.max_token_length_ = std::max(v.max_token_length_, t.size());
    }
    v.types_ = std::move(types);
    v.scores_ = std::move(scores);
    v.types_.resize(n, TokenType::normal);
    v.scores_.resize(n, 0.0f);
    // Open addressing, at most half full: slot = (hash tag, id).
    size_t capacity = 16;
    int bits = 4;
    while (capacity < n * 2) capacity *= 2, ++bits;
    v.slots_.assign(capacity, Slot{0, -1});
    v.mask_ = capacity - 1;
    v.shift_ = 64 - bits;
    for (size_t i = 0; i < n; ++i) {
      // An empty token can never be produced from text; duplicates keep the first id.
      const TokenId id = static_cast<TokenId>(i);
      const std::string_view t = v.text(id);
      if (t.empty()) continue;
      const uint64_t h = hash(t);
      for (size_t s = v.slot_of(h);; s = (s + 1) & v.mask_) {
        Slot& slot = v.slots_[s];
        if (slot.id < 0) {
          slot = {static_cast<uint32_t>(h), id};
          break;
        }
        if (slot.tag == static_cast<uint32_t>(h) && v.text(slot.id) == t) break;
      }
    }
    return v;
  }

  size_t size() const { return types_.size(); }
  bool contains(TokenId id) const { return id >= 0 && static_cast<size_t>(id) < size(); }

  std::string_view text(TokenId id) const {
    if (!contains(id)) return {};
    return std::string_view(blob_.data() + offsets_[id], offsets_[id + 1] - offsets_[id]);
  }
  TokenType type(TokenId id) const { return contains(id) ? types_[id] : TokenType::undefined; }
  float score(TokenId id) const { return contains(id) ? scores_[id] : 0.0f; }
  size_t max_token_length() const { return max_token_length_; }
  void set_type(TokenId id, TokenType type) {
    if (contains(id)) types_[id] = type;
  }

  std::optional<TokenId> find(std::string_view text) const {
    const TokenId id = find_or(text, -1);
    if (id < 0) return std::nullopt;
    return id;
  }
  TokenId find_or(std::string_view text, TokenId fallback) const {
    if (slots_.empty()) return fallback;
    const uint64_t h = hash(text);
    const auto tag = static_cast<uint32_t>(h);
    for (size_t s = slot_of(h);; s = (s + 1) & mask_) {
      const Slot slot = slots_[s];
      if (slot.id < 0) return fallback;
      if (slot.tag == tag) {
        const uint32_t begin = offsets_[slot.id], size = offsets_[slot.id + 1] - begin;
        if (size == text.size() && std::memcmp(blob_.data() + begin, text.data(), size) == 0) return slot.id;
      }
    }
  }

  // A fast hash of short strings, 8 bytes at a time (token texts are short).
  static uint64_t hash(std::string_view s) {
    constexpr uint64_t kMul = 0x9E3779B97F4A7C15ull;
    uint64_t h = s.size() * kMul;
    size_t i = 0;
    for (; i + 8 <= s.size(); i += 8) {
      uint64_t w;
      std::memcpy(&w, s.data() + i, 8);
      h = (h ^ w) * kMul;
      h ^= h >> 29;
    }
    if (i < s.size()) {
      uint64_t w = 0;
      std::memcpy(&w, s.data() + i, s.size() - i);
      h = (h ^ w) * kMul;
      h ^= h >> 29;
    }
    h *= 0xBF58476D1CE4E5B9ull;
    return h ^ (h >> 31);
  }

 private:
  std::vector<char> blob_;         // all token texts, back to back
  std::vector<uint32_t> offsets_;  // (n + 1): token i is blob_[offsets_[i], offsets_[i + 1])
  std::vector<TokenType> types_;   // (n)
  std::vector<float> scores_;      // (n)
  struct Slot {
    uint32_t tag;  // low bits of the text's hash
    TokenId id;    // -1: empty
  };
  size_t slot_of(uint64_t h) const { return static_cast<size_t>((h * 0x9E3779B97F4A7C15ull) >> shift_); }
  std::vector<Slot> slots_;  // text -> id
  size_t mask_ = 0;
  int shift_ = 60;
  size_t max_token_length_ = 0;
};

}  // namespace ember
