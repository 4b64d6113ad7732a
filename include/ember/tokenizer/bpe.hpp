// Byte-level BPE ("gpt2" vocabularies): each word from the pre-tokenizer is
// spelled byte by byte in GPT-2's printable alphabet, then the adjacent pair
// with the lowest merge rank is merged until no listed merge applies.
//
// Merges are keyed by the ids of their two halves, so encoding does no string
// work. A merge whose halves or result are not tokens still takes part (as the
// original does, by text): such pieces get ids past the vocabulary.
//
// SentencePiece-style BPE (Gemma 4) runs the same merges on the UTF-8 characters
// of the text (spaces already written U+2581) instead of GPT-2's byte spelling,
// and falls back to <0xXX> byte tokens for what ends up no token.
#pragma once

#include <algorithm>
#include <array>
#include <cstdint>
#include <queue>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "ember/core/result.hpp"
#include "ember/tokenizer/unicode.hpp"
#include "ember/tokenizer/vocab.hpp"

namespace ember::bpe {

class Merges {
 public:
  // `merge_at(i)` gives merge i as "left right"; its rank is i.
  template <class MergeAt>
  static Result<Merges> build(const Vocab& vocab, size_t n_merges, MergeAt merge_at) {
    Merges m;
    m.n_vocab_ = static_cast<TokenId>(vocab.size());
    m.spellings_ = unicode::byte_level_spellings();
    m.merges_.reserve(n_merges);
    std::unordered_map<std::string, TokenId>& extra_ids = m.extra_ids_;
    const auto id_of = [&](std::string_view text) -> TokenId {
      if (auto id = vocab.find(text)) return *id;
      auto [it, inserted] = extra_ids.emplace(std::string(text), m.n_vocab_ + static_cast<TokenId>(m.extra_.size()));
      if (inserted) m.extra_.emplace_back(text);
      return it->second;
    };
    std::string joined;
    for (size_t i = 0; i < n_merges; ++i) {
      const std::string_view line = merge_at(i);
      // The separator is the first space after the first character: "Ġ t" splits at 2.
      const size_t space = line.size() > 1 ? line.find(' ', 1) : std::string_view::npos;
      if (space == std::string_view::npos)
        return make_error(Errc::format, "tokenizer.ggml.merges[" + std::to_string(i) + "] = \"" + std::string(line) +
                                            "\" is not two pieces separated by a space");
      const std::string_view left = line.substr(0, space), right = line.substr(space + 1);
      const TokenId a = id_of(left), b = id_of(right);
      joined.assign(left);
      joined.append(right);
      const TokenId merged = id_of(joined);
      m.merges_.insert(key(a, b), Merge{static_cast<int32_t>(i), merged});
    }
    for (int byte = 0; byte < 256; ++byte) {
      const std::string& s = m.spellings_[byte];
      auto id = vocab.find(s);
      auto extra = extra_ids.find(s);
      m.byte_ids_[byte] = id ? *id : extra != extra_ids.end() ? extra->second : -1;
    }
    return m;
  }

  // GPT-2's spelling of each byte ("Ġ" for a space).
  const std::string& spelling(uint8_t byte) const { return spellings_[byte]; }

  struct Symbol {
    int prev, next;
    TokenId id;       // -1: a byte no token or merge spells
    uint32_t begin;   // first byte of the word this symbol covers
    uint32_t length;  // bytes covered; 0 once merged away
  };
  struct Pair {
    int32_t rank;
    int left, right;
    TokenId left_id, right_id;  // to spot stale entries
    TokenId result;
  };
  // Buffers encode_word reuses from word to word (one per encode call).
  struct Scratch {
    std::vector<Symbol> symbols;
    std::vector<Pair> queue;
  };

  // Encodes one word given as raw bytes; appends ids to `out`.
  void encode_word(std::string_view word, const Vocab& vocab, std::vector<TokenId>& out) const {
    Scratch scratch;
    encode_word(word, vocab, out, scratch);
  }

  void encode_word(std::string_view word, const Vocab& vocab, std::vector<TokenId>& out, Scratch& scratch) const {
    if (word.size() == 1 && byte_ids_[static_cast<uint8_t>(word[0])] >= 0 &&
        byte_ids_[static_cast<uint8_t>(word[0])] < n_vocab_) {
      out.push_back(byte_ids_[static_cast<uint8_t>(word[0])]);
      return;
    }
    std::vector<Symbol>& symbols = scratch.symbols;
    symbols.resize(word.size());
    for (size_t i = 0; i < word.size(); ++i) {
      symbols[i] = {static_cast<int>(i) - 1, i + 1 == word.size() ? -1 : static_cast<int>(i) + 1,
                    byte_ids_[static_cast<uint8_t>(word[i])], static_cast<uint32_t>(i), 1};
    }
    merge(scratch);

    for (int i = symbols.empty() ? -1 : 0; i != -1; i = symbols[i].next) {
      const Symbol& s = symbols[i];
      if (s.id >= 0 && s.id < n_vocab_) {
        out.push_back(s.id);
        continue;
      }
      // Not a token (only possible with odd vocabularies): like llama.cpp, emit
      // whichever single bytes of its spelling happen to be tokens.
      for (size_t b = s.begin; b < s.begin + s.length; ++b) {
        for (char c : spellings_[static_cast<uint8_t>(word[b])]) {
          if (auto id = vocab.find(std::string_view(&c, 1))) out.push_back(*id);
        }
      }
    }
  }

  // SentencePiece-style: `word` is UTF-8 text as the vocabulary spells it; a piece
  // that ends up no token becomes its bytes' tokens in `byte_tokens` (-1: none).
  void encode_word_chars(std::string_view word, const Vocab& vocab, const std::array<TokenId, 256>& byte_tokens,
                         std::vector<TokenId>& out, Scratch& scratch) const {
    std::vector<Symbol>& symbols = scratch.symbols;
    symbols.clear();
    for (size_t pos = 0; pos < word.size();) {
      const size_t n = std::min(unicode::utf8_sequence_length(static_cast<uint8_t>(word[pos])), word.size() - pos);
      const std::string_view c = word.substr(pos, n);
      TokenId id = vocab.find_or(c, -1);
      if (id < 0 && !extra_ids_.empty()) {
        auto it = extra_ids_.find(std::string(c));
        if (it != extra_ids_.end()) id = it->second;
      }
      const int index = static_cast<int>(symbols.size());
      symbols.push_back({index - 1, pos + n == word.size() ? -1 : index + 1, id, static_cast<uint32_t>(pos),
                         static_cast<uint32_t>(n)});
      pos += n;
    }
    merge(scratch);
    for (int i = symbols.empty() ? -1 : 0; i != -1; i = symbols[i].next) {
      const Symbol& s = symbols[i];
      if (s.id >= 0 && s.id < n_vocab_) {
        out.push_back(s.id);
        continue;
      }
      for (size_t b = s.begin; b < s.begin + s.length; ++b) {
        const TokenId id = byte_tokens[static_cast<uint8_t>(word[b])];
        if (id >= 0) out.push_back(id);
      }
    }
  }

  // The byte-level spelling of raw bytes.
  std::string spell(std::string_view raw) const {
    std::string out;
    out.reserve(raw.size() * 2);
    for (char c : raw) out += spellings_[static_cast<uint8_t>(c)];
    return out;
  }

 private:
  // Applies merges to scratch.symbols, lowest rank first; on ties, the leftmost pair.
  void merge(Scratch& scratch) const {
    const auto worse = [](const Pair& a, const Pair& b) {
      return a.rank > b.rank || (a.rank == b.rank && a.left > b.left);
    };
    std::vector<Symbol>& symbols = scratch.symbols;
    std::vector<Pair>& queue = scratch.queue;
    queue.clear();
    const auto try_pair = [&](int left, int right) {
      if (left < 0 || right < 0) return;
      const TokenId a = symbols[left].id, b = symbols[right].id;
      if (a < 0 || b < 0) return;
      const Merge* m = merges_.find(key(a, b));
      if (!m) return;
      queue.push_back({m->rank, left, right, a, b, m->result});
      std::push_heap(queue.begin(), queue.end(), worse);
    };
    for (int i = 1; i < static_cast<int>(symbols.size()); ++i) try_pair(i - 1, i);

    while (!queue.empty()) {
      std::pop_heap(queue.begin(), queue.end(), worse);
      const Pair pair = queue.back();
      queue.pop_back();
      Symbol& left = symbols[pair.left];
      Symbol& right = symbols[pair.right];
      if (left.length == 0 || right.length == 0 || left.id != pair.left_id || right.id != pair.right_id) continue;
      left.id = pair.result;
      left.length += right.length;
      right.length = 0;
      left.next = right.next;
      if (right.next >= 0) symbols[right.next].prev = pair.left;
      try_pair(left.prev, pair.left);
      try_pair(pair.left, left.next);
    }
  }

  struct Merge {
    int32_t rank;
    TokenId result;
  };
  static uint64_t key(TokenId a, TokenId b) {
    return (static_cast<uint64_t>(static_cast<uint32_t>(a)) << 32) | static_cast<uint32_t>(b);
  }

  TokenId n_vocab_ = 0;
  std::array<std::string, 256> spellings_;
  std::array<TokenId, 256> byte_ids_{};
  // Open addressing keyed by the two ids: merge look-ups are most of the work.
  class MergeTable {
   public:
    void reserve(size_t n) {
      size_t capacity = 16;
      int bits = 4;
      while (capacity < n * 2) capacity *= 2, ++bits;
      slots_.assign(capacity, Slot{kEmpty, {}});
      mask_ = capacity - 1;
      shift_ = 64 - bits;
    }
    // Keeps the first entry for a key: the lower rank.
    void insert(uint64_t k, Merge m) {
      if ((size_ + 1) * 2 > slots_.size()) grow();
      for (size_t i = hash(k);; i = (i + 1) & mask_) {
        if (slots_[i].key == k) return;
        if (slots_[i].key == kEmpty) {
          slots_[i] = {k, m};
          ++size_;
          return;
        }
      }
    }
    const Merge* find(uint64_t k) const {
      if (slots_.empty()) return nullptr;
      for (size_t i = hash(k);; i = (i + 1) & mask_) {
        if (slots_[i].key == k) return &slots_[i].merge;
        if (slots_[i].key == kEmpty) return nullptr;
      }
    }

   private:
    static constexpr uint64_t kEmpty = ~uint64_t{0};  // ids are non-negative: never a real key
    struct Slot {
      uint64_t key;
      Merge merge;
    };
    // Fibonacci hashing: the top bits of the product mix both ids.
    size_t hash(uint64_t k) const { return static_cast<size_t>((k * 0x9E3779B97F4A7C15ull) >> shift_); }
    void grow() {
      std::vector<Slot> old = std::move(slots_);
      reserve(std::max<size_t>(16, old.size()));
      size_ = 0;
      for (const Slot& s : old)
        if (s.key != kEmpty) insert(s.key, s.merge);
    }
    std::vector<Slot> slots_;
    size_t mask_ = 0;
    int shift_ = 60;
    size_t size_ = 0;
  };
  MergeTable merges_;
  std::vector<std::string> extra_;                      // texts of ids n_vocab_.. (pieces that are not tokens)
  std::unordered_map<std::string, TokenId> extra_ids_;  // and back
};

}  // namespace ember::bpe
