// SentencePiece-style BPE ("llama" vocabularies): start from single characters
// and keep merging the adjacent pair whose merged text is the token with the
// highest score (the leftmost on ties); characters no token covers fall back
// to byte tokens <0xXX>. The results are llama.cpp's (and SentencePiece's).
//
// What makes it fast, without changing a single result: the text is cut into
// independent segments before merging. Every symbol while merging is a single
// character or a token, so a merge can only span two adjacent characters a, b
// if some token contains "ab". Where no token does, nothing ever merges across,
// and the merge order on each side does not depend on the other side. So the
// priority queue stays as small as a word instead of growing with the whole
// text (a 4 MB text was one 4-million-entry queue, mostly cache misses).
#pragma once

#include <algorithm>
#include <array>
#include <cstdint>
#include <string_view>
#include <vector>

#include "ember/tokenizer/flat_map.hpp"
#include "ember/tokenizer/unicode.hpp"
#include "ember/tokenizer/vocab.hpp"

namespace ember::spm {

// Byte fallback ids for one vocabulary: <0xXX>, else the byte itself as a token.
struct ByteTokens {
  TokenId id[256];
};

inline ByteTokens byte_tokens(const Vocab& vocab, TokenId unknown) {
  static constexpr char kHex[] = "0123456789ABCDEF";
  ByteTokens t;
  for (int b = 0; b < 256; ++b) {
    const char hex[6] = {'<', '0', 'x', kHex[b >> 4], kHex[b & 15], '>'};
    const char raw[1] = {static_cast<char>(b)};
    t.id[b] = vocab.find_or(std::string_view(hex, 6), vocab.find_or(std::string_view(raw, 1), unknown));
  }
  return t;
}

// The character at text[pos], SentencePiece style: as many bytes as the lead
// byte announces (1 for a stray continuation byte), cut short at the end.
inline size_t char_length(std::string_view text, size_t pos) {
  return std::min(unicode::utf8_sequence_length(static_cast<uint8_t>(text[pos])), text.size() - pos);
}

class Model {
 public:
  static Model build(const Vocab& vocab, TokenId unknown) {
    Model m;
    m.bytes_ = byte_tokens(vocab, unknown);
    m.ascii_.fill(Char{-1, -1});
    int32_t next_id = 0;
    // A small id for every character that occurs in some token (and the
    // character's own token, if it is one).
    for (size_t i = 0; i < vocab.size(); ++i) {
      const std::string_view t = vocab.text(static_cast<TokenId>(i));
      for (size_t pos = 0; pos < t.size();) {
        const std::string_view c = t.substr(pos, char_length(t, pos));
        pos += c.size();
        if (m.char_of(c).id >= 0) continue;
        const Char info{next_id++, vocab.find_or(c, -1)};
        if (c.size() == 1 && static_cast<uint8_t>(c[0]) < 0x80) {
          m.ascii_[static_cast<uint8_t>(c[0])] = info;
        } else {
          m.chars_.insert(char_key(c), info);
        }
      }
    }
    // The pairs of adjacent characters that tokens contain.
    for (size_t i = 0; i < vocab.size(); ++i) {
      const std::string_view t = vocab.text(static_cast<TokenId>(i));
      int32_t prev = -1;
      for (size_t pos = 0; pos < t.size();) {
        const std::string_view c = t.substr(pos, char_length(t, pos));
        const int32_t id = m.char_of(c).id;
        if (pos > 0) m.pairs_.insert(tokenizer_detail::pair_key(prev, id), 1);
        prev = id;
        pos += c.size();
      }
    }
    return m;
  }

  // Tokenizes `text` (spaces already escaped as U+2581) and appends ids to `out`.
  void encode(std::string_view text, const Vocab& vocab, std::vector<TokenId>& out) const {
    std::vector<Symbol> symbols;
    std::vector<Pair> queue;
    size_t segment_begin = 0;
    Char prev{-1, -1};
    const auto finish_segment = [&](size_t end) {
      // Most segments are a single character (many scripts pair with nothing).
      if (end - segment_begin == char_length(text, segment_begin)) {
        emit(std::string_view(text.data() + segment_begin, end - segment_begin), prev.token, out);
      } else {
        encode_segment(text, vocab, segment_begin, end, symbols, queue, out);
      }
      segment_begin = end;
    };
    for (size_t pos = 0; pos < text.size();) {
      const std::string_view c(text.data() + pos, char_length(text, pos));
      const Char info = char_of(c);
      // Nothing merges across characters that no token holds side by side.
      if (pos > 0 && (prev.id < 0 || info.id < 0 || !pairs_.contains(tokenizer_detail::pair_key(prev.id, info.id))))
        finish_segment(pos);
      prev = info;
      pos += c.size();
    }
    if (segment_begin < text.size()) finish_segment(text.size());
  }

 private:
  struct Char {
    int32_t id;     // -1: in no token
    TokenId token;  // the character as a token, or -1
  };
  struct Symbol {
    int prev, next;
    TokenId token;           // -1: a single character that is no token
    uint32_t begin, length;  // bytes of text; length 0 once merged away
    float pair_score;        // short segments: the merge with the next symbol
    TokenId pair_token;      // (-1: none)
  };
  static constexpr size_t kShortSegment = 24;
  struct Pair {
    float score;
    int left, right;
    uint32_t length;  // merged length when queued, to spot stale entries
    TokenId token;
  };
  // Highest score first; on ties, the leftmost pair (as SentencePiece does).
  struct Worse {
    bool operator()(const Pair& a, const Pair& b) const {
      return a.score < b.score || (a.score == b.score && a.left > b.left);
    }
  };

  // A character's bytes and length as one key (the length keeps a character
  // cut short at the end of a text apart from any full one).
  static uint64_t char_key(std::string_view c) {
    uint64_t k = static_cast<uint64_t>(c.size()) << 32;
    for (size_t i = 0; i < c.size(); ++i) k |= static_cast<uint64_t>(static_cast<uint8_t>(c[i])) << (8 * i);
    return k;
  }

  Char char_of(std::string_view c) const {
    if (c.size() == 1 && static_cast<uint8_t>(c[0]) < 0x80) return ascii_[static_cast<uint8_t>(c[0])];
    const Char* info = chars_.find(char_key(c));
    return info ? *info : Char{-1, -1};
  }

  void encode_segment(std::string_view text, const Vocab& vocab, size_t begin, size_t end, std::vector<Symbol>& symbols,
                      std::vector<Pair>& queue, std::vector<TokenId>& out) const {
    symbols.clear();
    for (size_t pos = begin; pos < end;) {
      const size_t n = char_length(text, pos);
      const int index = static_cast<int>(symbols.size());
      symbols.push_back({index - 1, pos + n == end ? -1 : index + 1,
                         char_of(std::string_view(text.data() + pos, n)).token, static_cast<uint32_t>(pos),
                         static_cast<uint32_t>(n), 0.0f, -1});
      pos += n;
    }
    // The token that merging `left` with its right neighbour makes, or -1.
    const auto merged = [&](int left, int right) -> TokenId {
      const uint32_t length = symbols[left].length + symbols[right].length;
      return vocab.find_or(std::string_view(text.data() + symbols[left].begin, length), -1);
    };
    const auto merge = [&](int l, int r) {
      Symbol& left = symbols[l];
      Symbol& right = symbols[r];
      left.length += right.length;
      right.length = 0;
      left.next = right.next;
      if (right.next >= 0) symbols[right.next].prev = l;
    };

    if (symbols.size() <= kShortSegment) {
      // Short segments: keep each symbol's pair with its right neighbour and
      // scan for the best one; cheaper than a heap for a handful of symbols.
      const auto update = [&](int i) {
        Symbol& s = symbols[i];
        s.pair_token = s.next >= 0 ? merged(i, s.next) : -1;
        if (s.pair_token >= 0) s.pair_score = vocab.score(s.pair_token);
      };
      for (int i = 0; i < static_cast<int>(symbols.size()); ++i) update(i);
      for (;;) {
        int best = -1;
        for (int i = 0; i != -1; i = symbols[i].next) {
          const Symbol& s = symbols[i];
          // Strictly better: on ties the leftmost pair wins.
          if (s.pair_token >= 0 && (best < 0 || s.pair_score > symbols[best].pair_score)) best = i;
        }
        if (best < 0) break;
        symbols[best].token = symbols[best].pair_token;
        merge(best, symbols[best].next);
        update(best);
        if (symbols[best].prev >= 0) update(symbols[best].prev);
      }
    } else {
      queue.clear();
      const auto try_pair = [&](int left, int right) {
        if (left < 0 || right < 0) return;
        const TokenId token = merged(left, right);
        if (token < 0) return;
        queue.push_back({vocab.score(token), left, right, symbols[left].length + symbols[right].length, token});
        std::push_heap(queue.begin(), queue.end(), Worse{});
      };
      for (int i = 1; i < static_cast<int>(symbols.size()); ++i) try_pair(i - 1, i);
      while (!queue.empty()) {
        std::pop_heap(queue.begin(), queue.end(), Worse{});
        const Pair pair = queue.back();
        queue.pop_back();
        const Symbol& left = symbols[pair.left];
        const Symbol& right = symbols[pair.right];
        if (left.length == 0 || right.length == 0 || left.length + right.length != pair.length) continue;
        symbols[pair.left].token = pair.token;
        merge(pair.left, pair.right);
        try_pair(left.prev, pair.left);
        try_pair(pair.left, left.next);
      }
    }

    for (int i = symbols.empty() ? -1 : 0; i != -1; i = symbols[i].next)
      emit(std::string_view(text.data() + symbols[i].begin, symbols[i].length), symbols[i].token, out);
  }

  // Every merged symbol is a token; only single characters can be missing:
  // those fall back to their bytes.
  void emit(std::string_view piece, TokenId token, std::vector<TokenId>& out) const {
    if (token >= 0) {
      out.push_back(token);
      return;
    }
    for (char c : piece) {
      const TokenId id = bytes_.id[static_cast<uint8_t>(c)];
      if (id >= 0) out.push_back(id);
    }
  }

  ByteTokens bytes_{};
  std::array<Char, 128> ascii_{};            // ASCII characters
  tokenizer_detail::U64Map<Char> chars_;     // other characters, by char_key
  tokenizer_detail::U64Map<uint8_t> pairs_;  // adjacent character ids some token holds
};

}  // namespace ember::spm
