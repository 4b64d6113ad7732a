// The token list of a GGUF tokenizer: text, type and score per id, and the
// reverse look-up. Owns copies of the strings, so it outlives the GGUF file.
#pragma once

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
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
  // The look-up table points into blob_; a vector's heap buffer survives moves,
  // but a copy would need rebuilding, so copies are not offered.
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
    v.ids_.reserve(n);
    for (size_t i = 0; i < n; ++i) {
      // An empty token can never be produced from text; duplicates keep the first id.
      if (!v.text(static_cast<TokenId>(i)).empty())
        v.ids_.emplace(v.text(static_cast<TokenId>(i)), static_cast<TokenId>(i));
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
    auto it = ids_.find(text);
    if (it == ids_.end()) return std::nullopt;
    return it->second;
  }
  TokenId find_or(std::string_view text, TokenId fallback) const {
    auto it = ids_.find(text);
    return it == ids_.end() ? fallback : it->second;
  }

 private:
  std::vector<char> blob_;         // all token texts, back to back
  std::vector<uint32_t> offsets_;  // (n + 1): token i is blob_[offsets_[i], offsets_[i + 1])
  std::vector<TokenType> types_;   // (n)
  std::vector<float> scores_;      // (n)
  std::unordered_map<std::string_view, TokenId> ids_;
  size_t max_token_length_ = 0;
};

}  // namespace ember
