// WordPiece ("bert" vocabularies), as Hugging Face's BertNormalizer,
// BertPreTokenizer and WordPiece model do it: clean and normalize the text,
// split on white space and punctuation, then take the longest vocabulary
// match from the left, word by word.
//
// GGUF stores word-initial pieces with a U+2581 prefix ("▁hello") and
// continuation pieces bare ("ing"), where BERT's vocab.txt has "hello"/"##ing".
#pragma once

#include <algorithm>
#include <cstdint>
#include <optional>
#include <span>
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

// Normalized text split into words: code points back to back, and where each
// word ends.
struct Words {
  std::vector<uint32_t> cps;
  std::vector<size_t> ends;  // word i is cps[ends[i - 1], ends[i])
  size_t size() const { return ends.size(); }
  std::span<const uint32_t> operator[](size_t i) const {
    const size_t begin = i == 0 ? 0 : ends[i - 1];
    return std::span<const uint32_t>(cps).subspan(begin, ends[i] - begin);
  }
};

// Splits normalized text into words.
inline void split_words(std::string_view text, const Options& options, Words& out) {
  out.cps.clear();
  out.ends.clear();
  out.cps.reserve(text.size());
  const auto finish_word = [&] {
    if (out.cps.size() > (out.ends.empty() ? 0 : out.ends.back())) out.ends.push_back(out.cps.size());
  };
  std::vector<uint32_t> parts;
  for (size_t pos = 0; pos < text.size();) {
    uint32_t cp;
    if (static_cast<uint8_t>(text[pos]) < 0x80) {
      cp = static_cast<uint8_t>(text[pos++]);
    } else {
      const auto d = unicode::decode_utf8(text, pos);
      pos += d.length;
      cp = d.code_point;
    }
    // Clean: tabs and newlines are spaces; NUL, U+FFFD and control, format,
    // private-use and surrogate characters go; then white space separates
    // words. Unassigned code points (Cn) stay, as in Hugging Face's
    // BertNormalizer (BERT's Python original drops them too; llama.cpp keeps them).
    if (cp == '\t' || cp == '\n' || cp == '\r') {
      finish_word();
      continue;
    }
    const auto category = unicode::category(cp);
    if (cp == 0 || cp == unicode::kReplacement || (unicode::is_other(category) && category != unicode::Category::Cn))
      continue;
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
      const bool alone = c < 0x80 ? ((c >= 0x21 && c <= 0x2F) || (c >= 0x3A && c <= 0x40) || (c >= 0x5B && c <= 0x60) ||
                                     (c >= 0x7B && c <= 0x7E))
                                  : (unicode::is_punctuation(c) || is_cjk_ideograph(c));
      if (alone) {
        finish_word();
        out.cps.push_back(c);
        out.ends.push_back(out.cps.size());
      } else {
        out.cps.push_back(c);
      }
    }
  }
  finish_word();
}

// Splits normalized text into words (code points).
inline std::vector<std::vector<uint32_t>> words(std::string_view text, const Options& options) {
  Words w;
  split_words(text, options, w);
  std::vector<std::vector<uint32_t>> out;
  for (size_t i = 0; i < w.size(); ++i) out.emplace_back(w[i].begin(), w[i].end());
  return out;
}

// Appends the pieces of one word, or `unknown` when some part has no piece.
// `text` and `boundaries` are scratch space.
inline void encode_word(std::span<const uint32_t> word, const Vocab& vocab, TokenId unknown, const Options& options,
                        std::vector<TokenId>& out, std::string& text, std::vector<size_t>& boundaries) {
  if (word.size() > options.max_word_chars) {
    out.push_back(unknown);
    return;
  }
  text = "\xE2\x96\x81";    // U+2581 marks the start of a word
  boundaries.assign(1, 0);  // byte offsets where characters start
  for (uint32_t cp : word) {
    unicode::append_utf8(text, cp);
    boundaries.push_back(text.size());
  }
  const size_t max_length = vocab.max_token_length();
  const size_t before = out.size();
  size_t start = 0;  // index into boundaries
  while (start + 1 < boundaries.size()) {
    const size_t from = boundaries[start];
    // No token is longer than max_length bytes: start from the longest candidate that fits.
    size_t end = static_cast<size_t>(
        std::upper_bound(boundaries.begin() + start + 1, boundaries.end(), from + max_length) - boundaries.begin());
    if (end > start + 1) --end;
    std::optional<TokenId> id;
    for (; end > start; --end) {
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

inline void encode_word(const std::vector<uint32_t>& word, const Vocab& vocab, TokenId unknown, const Options& options,
                        std::vector<TokenId>& out) {
  std::string text;
  std::vector<size_t> boundaries;
  encode_word(std::span<const uint32_t>(word), vocab, unknown, options, out, text, boundaries);
}

}  // namespace ember::wordpiece
