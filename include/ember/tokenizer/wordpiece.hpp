// WordPiece ("bert" vocabularies), as Hugging Face's BertNormalizer,
// BertPreTokenizer and WordPiece model do it: clean and normalize the text,
// split on white space and punctuation, then take the longest vocabulary
// match from the left, word by word.
//
// GGUF stores word-initial pieces with a U+2581 prefix ("▁hello") and
// continuation pieces bare ("ing"), where BERT's vocab.txt has "hello"/"##ing".
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "ember/tokenizer/unicode.hpp"
#include "ember/tokenizer/vocab.hpp"

namespace ember::wordpiece {

struct Options {
  bool lowercase = true;
  bool strip_accents = true;
  size_t max_word_chars = 100;  // longer words become the unknown token
};

// CJK ideographs get spaces around them, so each is a word. (The range
// 0x2B920.. instead of 0x2B820.. is what BERT's code has.)
inline bool is_cjk_ideograph(uint32_t cp) {
  return (cp >= 0x4E00 && cp <= 0x9FFF) || (cp >= 0x3400 && cp <= 0x4DBF) || (cp >= 0x20000 && cp <= 0x2A6DF) ||
         (cp >= 0x2A700 && cp <= 0x2B73F) || (cp >= 0x2B740 && cp <= 0x2B81F) || (cp >= 0x2B920 && cp <= 0x2CEAF) ||
         (cp >= 0xF900 && cp <= 0xFAFF) || (cp >= 0x2F800 && cp <= 0x2FA1F);
}

// Splits normalized text into words (code points).
inline std::vector<std::vector<uint32_t>> words(std::string_view text, const Options& options) {
  std::vector<std::vector<uint32_t>> out(1);
  const auto finish_word = [&] {
    if (!out.back().empty()) out.emplace_back();
  };
  std::vector<uint32_t> parts;
  for (size_t pos = 0; pos < text.size();) {
    const auto d = unicode::decode_utf8(text, pos);
    pos += d.length;
    const uint32_t cp = d.code_point;
    const auto category = unicode::category(cp);
    // Clean: tabs and newlines are spaces; NUL, U+FFFD and other control or
    // unassigned characters go; then white space separates words.
    if (cp == '\t' || cp == '\n' || cp == '\r') {
      finish_word();
      continue;
    }
    if (cp == 0 || cp == unicode::kReplacement || unicode::is_other(category)) continue;
    if (unicode::is_white_space(cp)) {
      finish_word();
      continue;
    }

    parts.clear();
    if (options.strip_accents) {
      unicode::append_without_accents(parts, cp);
    } else {
      parts.push_back(cp);
    }
    for (uint32_t c : parts) {
      if (options.lowercase) c = unicode::to_lower(c);
      // Punctuation (any \p{P}, and every ASCII symbol) and ideographs stand alone.
      const bool ascii_symbol = c < 0x80 && ((c >= 0x21 && c <= 0x2F) || (c >= 0x3A && c <= 0x40) ||
                                             (c >= 0x5B && c <= 0x60) || (c >= 0x7B && c <= 0x7E));
      if (ascii_symbol || unicode::is_punctuation(c) || is_cjk_ideograph(c)) {
        finish_word();
        out.back().push_back(c);
        out.emplace_back();
      } else {
        out.back().push_back(c);
      }
    }
  }
  if (out.back().empty()) out.pop_back();
  return out;
}

// Appends the pieces of one word, or `unknown` when some part has no piece.
inline void encode_word(const std::vector<uint32_t>& word, const Vocab& vocab, TokenId unknown, const Options& options,
                        std::vector<TokenId>& out) {
  if (word.size() > options.max_word_chars) {
    out.push_back(unknown);
    return;
  }
  std::string text = "\xE2\x96\x81";  // U+2581 marks the start of a word
  std::vector<size_t> boundaries{0};  // byte offsets where characters start
  for (uint32_t cp : word) {
    unicode::append_utf8(text, cp);
    boundaries.push_back(text.size());
  }
  const size_t before = out.size();
  size_t start = 0;  // index into boundaries
  while (start + 1 < boundaries.size()) {
    size_t end = boundaries.size() - 1;
    std::optional<TokenId> id;
    for (; end > start; --end) {
      const size_t from = boundaries[start];
      id = vocab.find(std::string_view(text).substr(from, boundaries[end] - from));
      if (id) break;
    }
    if (!id) {
      out.resize(before);
      out.push_back(unknown);
      return;
    }
    out.push_back(*id);
    start = end;
  }
}

}  // namespace ember::wordpiece
