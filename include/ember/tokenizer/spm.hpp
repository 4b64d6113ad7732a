// SentencePiece-style BPE ("llama" vocabularies): start from single characters
// and keep merging the adjacent pair whose merged text is the token with the
// highest score; characters no token covers fall back to byte tokens <0xXX>.
#pragma once

#include <cstdint>
#include <queue>
#include <string_view>
#include <vector>

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

// Tokenizes `text` (spaces already escaped as U+2581) and appends ids to `out`.
inline void encode(std::string_view text, const Vocab& vocab, const ByteTokens& bytes, std::vector<TokenId>& out) {
  struct Symbol {
    int prev, next;
    uint32_t begin, length;  // bytes of text; length 0 once merged away
  };
  struct Pair {
    float score;
    int left, right;
    uint32_t length;  // merged length when queued, to spot stale entries
  };
  // Highest score first; on ties, the leftmost pair (as SentencePiece does).
  const auto worse = [](const Pair& a, const Pair& b) {
    return a.score < b.score || (a.score == b.score && a.left > b.left);
  };

  std::vector<Symbol> symbols;
  symbols.reserve(text.size());
  for (size_t pos = 0; pos < text.size();) {
    const size_t n = std::min(unicode::utf8_sequence_length(static_cast<uint8_t>(text[pos])), text.size() - pos);
    const int index = static_cast<int>(symbols.size());
    symbols.push_back(
        {index - 1, pos + n == text.size() ? -1 : index + 1, static_cast<uint32_t>(pos), static_cast<uint32_t>(n)});
    pos += n;
  }

  std::priority_queue<Pair, std::vector<Pair>, decltype(worse)> queue(worse);
  const auto try_pair = [&](int left, int right) {
    if (left < 0 || right < 0) return;
    const uint32_t length = symbols[left].length + symbols[right].length;
    const auto id = vocab.find(text.substr(symbols[left].begin, length));
    if (!id) return;
    queue.push({vocab.score(*id), left, right, length});
  };
  for (int i = 1; i < static_cast<int>(symbols.size()); ++i) try_pair(i - 1, i);

  while (!queue.empty()) {
    const Pair pair = queue.top();
    queue.pop();
    Symbol& left = symbols[pair.left];
    Symbol& right = symbols[pair.right];
    if (left.length == 0 || right.length == 0 || left.length + right.length != pair.length) continue;
    left.length += right.length;
    right.length = 0;
    left.next = right.next;
    if (right.next >= 0) symbols[right.next].prev = pair.left;
    try_pair(left.prev, pair.left);
    try_pair(pair.left, left.next);
  }

  // Every merged symbol is a token; only single characters can be missing.
  for (int i = symbols.empty() ? -1 : 0; i != -1; i = symbols[i].next) {
    const Symbol& s = symbols[i];
    const std::string_view piece = text.substr(s.begin, s.length);
    if (const auto id = vocab.find(piece)) {
      out.push_back(*id);
      continue;
    }
    for (char c : piece) {
      const TokenId id = bytes.id[static_cast<uint8_t>(c)];
      if (id >= 0) out.push_back(id);
    }
  }
}

}  // namespace ember::spm
