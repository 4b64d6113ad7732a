// Unigram ("t5" vocabularies: T5, XLM-RoBERTa and their descendants): the text is
// normalized by SentencePiece's precompiled character map, spaces become U+2581,
// and the split into tokens is the one with the highest sum of token scores
// (log probabilities), found by Viterbi over every token that starts at each
// character. Characters no token covers become the unknown token, at a score
// penalty; neighbouring unknowns merge into one. Results are llama.cpp's.
//
// The precompiled character map (tokenizer.ggml.precompiled_charsmap) is
// SentencePiece's serialized normalizer: a 32-bit size, then a compact double
// array (Darts-clone's XOR-compressed layout) mapping input byte sequences to
// offsets into a block of NUL-terminated replacement strings. Matching takes
// the longest input prefix that has a replacement.
#pragma once

#include <algorithm>
#include <cfloat>
#include <cstdint>
#include <cstring>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "ember/core/result.hpp"
#include "ember/tokenizer/flat_map.hpp"
#include "ember/tokenizer/unicode.hpp"
#include "ember/tokenizer/vocab.hpp"

namespace ember::ugm {

class Charsmap {
 public:
  // Checks the layout; an empty blob is a map without entries.
  static Result<Charsmap> parse(std::span<const uint8_t> blob) {
    Charsmap m;
    if (blob.empty()) return m;
    if (blob.size() < 4) return make_error(Errc::format, "precompiled_charsmap is shorter than its header");
    uint32_t array_bytes = 0;
    for (int i = 3; i >= 0; --i) array_bytes = (array_bytes << 8) | blob[i];  // little-endian
    if (array_bytes % 4 != 0 || array_bytes == 0 || size_t{array_bytes} + 4 >= blob.size())
      return make_error(Errc::format, "precompiled_charsmap: its array does not fit the blob");
    m.nodes_.resize(array_bytes / 4);
    for (size_t i = 0; i < m.nodes_.size(); ++i) {
      const uint8_t* p = blob.data() + 4 + i * 4;
      m.nodes_[i] = uint32_t{p[0]} | uint32_t{p[1]} << 8 | uint32_t{p[2]} << 16 | uint32_t{p[3]} << 24;
    }
    m.replacements_.assign(reinterpret_cast<const char*>(blob.data()) + 4 + array_bytes, blob.size() - 4 - array_bytes);
    return m;
  }

  bool empty() const { return nodes_.empty(); }

  struct Match {
    std::string_view replacement;
    size_t consumed = 0;  // 0: no entry matches
  };

  // The longest prefix of text[pos..] the map replaces. A map that points outside
  // itself matches nothing there (llama.cpp would throw; a valid map never does).
  Match longest_prefix(std::string_view text, size_t pos) const {
    Match best;
    if (nodes_.empty()) return best;
    uint32_t node = base(0);
    for (size_t i = pos; i < text.size(); ++i) {
      const auto c = static_cast<uint8_t>(text[i]);
      if (c == 0) break;  // the keys are C strings
      node ^= c;
      if (node >= nodes_.size() || label(node) != c) break;
      const bool leaf = (nodes_[node] >> 8) & 1;
      node ^= base(node);
      if (node >= nodes_.size()) break;
      if (leaf) {
        // The leaf's value is the offset of its replacement string.
        const uint32_t offset = nodes_[node] & 0x7FFFFFFFu;
        if (offset >= replacements_.size()) break;
        const size_t end = replacements_.find('\0', offset);
        if (end == std::string::npos) break;
        best.replacement = std::string_view(replacements_).substr(offset, end - offset);
        best.consumed = i - pos + 1;
      }
    }
    return best;
  }

 private:
  // Node layout: bits 10-30 the BASE (shifted left by 8 more when bit 9 is set),
  // bit 8 LEAF, bits 0-7 the label; bit 31 set marks value nodes (never a label).
  uint32_t base(size_t i) const { return (nodes_[i] >> 10) << ((nodes_[i] & (1u << 9)) >> 6); }
  uint32_t label(size_t i) const { return nodes_[i] & (0x80000000u | 0xFFu); }

  std::vector<uint32_t> nodes_;
  std::string replacements_;
};

// A byte trie keyed by (node, byte) in a hash map: fast to build for 250,000
// tokens, and a look-up per byte while matching.
class ByteTrie {
 public:
  ByteTrie() : values_(1, -1) {}

  // Sets the value at `text` unless it has one.
  void insert(std::string_view text, int32_t value) {
    int32_t node = 0;
    for (char ch : text) {
      const uint64_t key = edge_key(node, static_cast<uint8_t>(ch));
      if (const int32_t* c = edges_.find(key)) {
        node = *c;
        continue;
      }
      const auto next = static_cast<int32_t>(values_.size());
      values_.push_back(-1);
      edges_.insert(key, next);
      node = next;
    }
    if (values_[node] < 0) values_[node] = value;
  }

  // The child of `node` by `byte`, or -1. The root is node 0.
  int32_t child(int32_t node, uint8_t byte) const {
    const int32_t* c = edges_.find(edge_key(node, byte));
    return c ? *c : -1;
  }
  int32_t value(int32_t node) const { return values_[node]; }

  // Length of the longest inserted text that starts text[pos..], or 0.
  size_t longest_prefix(std::string_view text, size_t pos) const {
    size_t longest = 0;
    int32_t node = 0;
    for (size_t i = pos; i < text.size(); ++i) {
      node = child(node, static_cast<uint8_t>(text[i]));
      if (node < 0) break;
      if (values_[node] >= 0) longest = i - pos + 1;
    }
    return longest;
  }

 private:
  static uint64_t edge_key(int32_t node, uint8_t byte) { return (static_cast<uint64_t>(node) << 8) | byte; }
  std::vector<int32_t> values_;              // per node: the value, or -1
  tokenizer_detail::U64Map<int32_t> edges_;  // (node << 8 | byte) -> child
};

struct Options {
  bool add_space_prefix = false;          // tokenizer.ggml.add_space_prefix
  bool remove_extra_whitespaces = false;  // tokenizer.ggml.remove_extra_whitespaces
};

class Model {
 public:
  static Model build(const Vocab& vocab, TokenId unknown, Charsmap charsmap, Options options) {
    Model m;
    m.charsmap_ = std::move(charsmap);
    m.options_ = options;
    m.unknown_ = unknown;
    float min_score = FLT_MAX;
    for (size_t i = 0; i < vocab.size(); ++i) {
      const auto id = static_cast<TokenId>(i);
      const TokenType t = vocab.type(id);
      if (t == TokenType::normal) min_score = std::min(min_score, vocab.score(id));
      if (t != TokenType::normal && t != TokenType::user_defined && t != TokenType::unused) continue;
      const std::string_view text = vocab.text(id);
      if (text.empty()) continue;
      m.tokens_.insert(text, id);  // duplicates keep the first id
      if (t == TokenType::user_defined) m.user_defined_.insert(text, id);
    }
    m.unknown_score_ = min_score - 10.0f;
    return m;
  }

  // Tokenizes one fragment of text (no special tokens in it); appends ids to `out`.
  void encode(std::string_view text, const Vocab& vocab, std::vector<TokenId>& out) const {
    const std::string normalized = normalize(text);
    const size_t n = normalized.size();
    if (n == 0) return;
    struct Best {
      TokenId token;
      size_t from;
      double score;
    };
    std::vector<Best> best(n + 1, Best{unknown_, 0, -DBL_MAX});
    best[0] = {unknown_, 0, 0.0};
    for (size_t pos = 0; pos < n;) {
      const size_t char_len = std::min(unicode::utf8_sequence_length(static_cast<uint8_t>(normalized[pos])), n - pos);
      const double here = best[pos].score;
      bool whole_char_token = false;
      int32_t node = 0;
      for (size_t end = pos; end < n;) {
        node = tokens_.child(node, static_cast<uint8_t>(normalized[end++]));
        if (node < 0) break;
        const TokenId id = tokens_.value(node);
        if (id < 0) continue;
        if (end - pos == char_len) whole_char_token = true;
        // User-defined tokens score 0, above any log probability.
        const double score = here + (vocab.type(id) == TokenType::user_defined ? 0.0 : vocab.score(id));
        if (score > best[end].score) best[end] = {id, pos, score};
      }
      if (!whole_char_token) {
        const double score = here + unknown_score_;
        if (score > best[pos + char_len].score) best[pos + char_len] = {unknown_, pos, score};
      }
      pos += char_len;
    }
    // Back from the end; runs of unknowns become one.
    const size_t first = out.size();
    bool previous_unknown = false;
    for (size_t at = n;;) {
      const Best& b = best[at];
      const bool is_unknown = b.token == unknown_;
      if (!(previous_unknown && is_unknown) && b.token >= 0) out.push_back(b.token);
      if (b.from == 0) break;
      previous_unknown = is_unknown;
      at = b.from;
    }
    std::reverse(out.begin() + static_cast<std::ptrdiff_t>(first), out.end());
  }

  // The normalized text that encode() splits (exposed for tests).
  std::string normalize(std::string_view text) const {
    static constexpr std::string_view kSpace = "\xE2\x96\x81";
    std::string out;
    out.reserve(text.size() * 3);
    const bool merge_spaces = options_.remove_extra_whitespaces;
    bool space_prepended = false, in_word = false;
    for (size_t pos = 0; pos < text.size();) {
      const auto [piece, consumed] = normalize_prefix(text, pos);
      for (char c : piece) {
        if (c != ' ') {
          if (!in_word) {
            in_word = true;
            // With merged spaces, every word gets one space in front, the first too.
            if ((options_.add_space_prefix && !space_prepended) || merge_spaces) {
              out += kSpace;
              space_prepended = true;
            }
          }
          out.push_back(c);
        } else {
          in_word = false;
          if (!merge_spaces) out += kSpace;
        }
      }
      pos += consumed;
    }
    return out;
  }

 private:
  struct Piece {
    std::string_view text;
    size_t consumed;
  };

  // What the input at pos normalizes to: a user-defined token as it is, else the
  // character map's replacement, else one character as it is, else (bytes that
  // are no character) U+FFFD for one byte.
  Piece normalize_prefix(std::string_view text, size_t pos) const {
    if (const size_t u = user_defined_.longest_prefix(text, pos)) return {text.substr(pos, u), u};
    const Charsmap::Match m = charsmap_.longest_prefix(text, pos);
    if (m.consumed > 0) return {m.replacement, m.consumed};
    const size_t n = char_length(text, pos);
    if (n > 0) return {text.substr(pos, n), n};
    return {"\xEF\xBF\xBD", 1};
  }

  // llama.cpp's test of a character: the lead byte's length, with continuation
  // bytes after it (overlong forms and surrogates pass); 0 if not a character.
  static size_t char_length(std::string_view text, size_t pos) {
    const auto lead = static_cast<uint8_t>(text[pos]);
    size_t n;
    if (lead < 0x80) {
      return 1;
    } else if ((lead & 0xE0) == 0xC0) {
      n = 2;
    } else if ((lead & 0xF0) == 0xE0) {
      n = 3;
    } else if ((lead & 0xF8) == 0xF0) {
      n = 4;
    } else {
      return 0;
    }
    if (pos + n > text.size()) return 0;
    for (size_t i = 1; i < n; ++i)
      if ((static_cast<uint8_t>(text[pos + i]) & 0xC0) != 0x80) return 0;
    return n;
  }

  Charsmap charsmap_;
  Options options_;
  TokenId unknown_ = -1;
  float unknown_score_ = 0.0f;
  ByteTrie tokens_;        // normal, user-defined and unused tokens -> id
  ByteTrie user_defined_;  // user-defined tokens, kept as they are by normalization
};

}  // namespace ember::ugm
