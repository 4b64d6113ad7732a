// Unicode helpers the tokenizers need: UTF-8 decoding that never fails, general
// categories and properties from the generated tables, lowercasing, accent
// stripping, and GPT-2's byte <-> code point mapping.
//
// Convention: a "code point" is a uint32_t; text is UTF-8 in std::string(_view).
#pragma once

#include <algorithm>
#include <array>
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "ember/tokenizer/unicode_tables.hpp"

namespace ember::unicode {

inline constexpr uint32_t kReplacement = 0xFFFD;
inline constexpr uint32_t kMaxCodePoint = 0x10FFFF;

// Length of the UTF-8 sequence a lead byte announces (1 for stray continuation
// bytes), as SentencePiece-style tokenizers split raw bytes into characters.
inline size_t utf8_sequence_length(uint8_t lead) {
  static constexpr uint8_t kLength[16] = {1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 2, 2, 3, 4};
  return kLength[lead >> 4];
}

struct Decoded {
  uint32_t code_point;
  uint32_t length;  // bytes consumed, at least 1
};

// Decodes the character at text[pos]. Accepts any well-formed lead byte with the
// right number of continuation bytes (like llama.cpp, it does not reject overlong
// forms or surrogates, so token boundaries match); anything else, and values past
// U+10FFFF, decode as U+FFFD consuming one byte.
inline Decoded decode_utf8(std::string_view text, size_t pos) {
  const auto byte = [&](size_t i) { return static_cast<uint8_t>(text[i]); };
  const uint8_t b0 = byte(pos);
  if (b0 < 0x80) return {b0, 1};
  size_t n = 0;
  uint32_t cp = 0;
  if ((b0 & 0xE0) == 0xC0) {
    n = 2;
    cp = b0 & 0x1F;
  } else if ((b0 & 0xF0) == 0xE0) {
    n = 3;
    cp = b0 & 0x0F;
  } else if ((b0 & 0xF8) == 0xF0) {
    n = 4;
    cp = b0 & 0x07;
  } else {
    return {kReplacement, 1};
  }
  if (pos + n > text.size()) return {kReplacement, 1};
  for (size_t i = 1; i < n; ++i) {
    const uint8_t b = byte(pos + i);
    if ((b & 0xC0) != 0x80) return {kReplacement, 1};
    cp = (cp << 6) | (b & 0x3F);
  }
  if (cp > kMaxCodePoint) return {kReplacement, 1};
  return {cp, static_cast<uint32_t>(n)};
}

inline std::vector<uint32_t> decode_utf8(std::string_view text) {
  std::vector<uint32_t> out;
  out.reserve(text.size());
  for (size_t pos = 0; pos < text.size();) {
    const Decoded d = decode_utf8(text, pos);
    out.push_back(d.code_point);
    pos += d.length;
  }
  return out;
}

inline void append_utf8(std::string& out, uint32_t cp) {
  if (cp > kMaxCodePoint) cp = kReplacement;
  if (cp < 0x80) {
    out.push_back(static_cast<char>(cp));
  } else if (cp < 0x800) {
    out.push_back(static_cast<char>(0xC0 | (cp >> 6)));
    out.push_back(static_cast<char>(0x80 | (cp & 0x3F)));
  } else if (cp < 0x10000) {
    out.push_back(static_cast<char>(0xE0 | (cp >> 12)));
    out.push_back(static_cast<char>(0x80 | ((cp >> 6) & 0x3F)));
    out.push_back(static_cast<char>(0x80 | (cp & 0x3F)));
  } else {
    out.push_back(static_cast<char>(0xF0 | (cp >> 18)));
    out.push_back(static_cast<char>(0x80 | ((cp >> 12) & 0x3F)));
    out.push_back(static_cast<char>(0x80 | ((cp >> 6) & 0x3F)));
    out.push_back(static_cast<char>(0x80 | (cp & 0x3F)));
  }
}

// Number of leading bytes of `text` that form complete UTF-8 characters, holding
// back an incomplete sequence at the end (if it could still be completed).
inline size_t complete_utf8_prefix(std::string_view text) {
  const size_t n = text.size();
  // A sequence is at most 4 bytes: only the last 3 bytes can start an unfinished one.
  for (size_t back = 1; back <= 3 && back <= n; ++back) {
    const uint8_t b = static_cast<uint8_t>(text[n - back]);
    if ((b & 0xC0) == 0x80) continue;  // continuation byte: look further back
    if (b < 0x80) return n;
    size_t need = 0;
    if ((b & 0xE0) == 0xC0)
      need = 2;
    else if ((b & 0xF0) == 0xE0)
      need = 3;
    else if ((b & 0xF8) == 0xF0)
      need = 4;
    else
      return n;  // invalid lead byte: nothing to wait for
    return need > back ? n - back : n;
  }
  return n;
}

// ---- General categories and properties ----

inline Category category(uint32_t cp) {
  if (cp < 0x100) return static_cast<Category>(tables::kLatin1Category[cp]);
  if (cp > kMaxCodePoint) return Category::Cn;
  const uint32_t* begin = tables::kCategoryStart;
  const uint32_t* end = begin + tables::kCategoryRuns;
  const auto i = std::upper_bound(begin, end, cp) - begin - 1;
  return static_cast<Category>(tables::kCategoryValue[i]);
}

// The one-letter groupings regexes write as \p{L}, \p{N}, ...
inline bool is_letter(Category c) { return c <= Category::Lo; }
inline bool is_mark(Category c) { return c >= Category::Mn && c <= Category::Me; }
inline bool is_number(Category c) { return c >= Category::Nd && c <= Category::No; }
inline bool is_punctuation(Category c) { return c >= Category::Pc && c <= Category::Po; }
inline bool is_symbol(Category c) { return c >= Category::Sm && c <= Category::So; }
inline bool is_separator(Category c) { return c >= Category::Zs && c <= Category::Zp; }
inline bool is_other(Category c) { return c >= Category::Cc; }

inline bool is_letter(uint32_t cp) { return is_letter(category(cp)); }
inline bool is_number(uint32_t cp) { return is_number(category(cp)); }
inline bool is_punctuation(uint32_t cp) { return is_punctuation(category(cp)); }

// White_Space property: what \s means in the Python and Rust regex engines that
// the original tokenizers ran.
inline bool is_white_space(uint32_t cp) {
  if (cp < 0x80) return cp == ' ' || (cp >= 0x09 && cp <= 0x0D);
  for (const auto& r : tables::kWhiteSpace) {
    if (cp < r.first) return false;
    if (cp <= r.last) return true;
  }
  return false;
}

// Simple (one code point) lowercase mapping.
inline uint32_t to_lower(uint32_t cp) {
  if (cp < 0x80) return (cp >= 'A' && cp <= 'Z') ? cp + 32 : cp;
  const auto* begin = tables::kLowercase;
  const auto* end = begin + std::size(tables::kLowercase);
  const auto* it = std::upper_bound(begin, end, cp, [](uint32_t c, const tables::CaseRun& r) { return c < r.first; });
  if (it == begin) return cp;
  --it;
  if (cp > it->last || (cp - it->first) % it->stride != 0) return cp;
  return static_cast<uint32_t>(static_cast<int32_t>(cp) + it->delta);
}

// Appends the canonical decomposition of cp without its nonspacing marks (Mn):
// "é" -> "e", a nonspacing mark -> nothing. This is BERT's strip_accents.
inline void append_without_accents(std::vector<uint32_t>& out, uint32_t cp) {
  // Hangul syllables decompose by arithmetic (Unicode 3.12); their jamo are letters.
  constexpr uint32_t kSBase = 0xAC00, kLBase = 0x1100, kVBase = 0x1161, kTBase = 0x11A7;
  constexpr uint32_t kVCount = 21, kTCount = 28, kSCount = 19 * kVCount * kTCount;
  if (cp >= kSBase && cp < kSBase + kSCount) {
    const uint32_t s = cp - kSBase;
    out.push_back(kLBase + s / (kVCount * kTCount));
    out.push_back(kVBase + (s % (kVCount * kTCount)) / kTCount);
    if (s % kTCount != 0) out.push_back(kTBase + s % kTCount);
    return;
  }
  if (category(cp) == Category::Mn) return;
  if (cp < 0xC0) {
    out.push_back(cp);
    return;
  }
  {
    const auto* begin = tables::kStripAccentSingle;
    const auto* end = begin + std::size(tables::kStripAccentSingle);
    const auto* it = std::upper_bound(begin, end, cp, [](uint32_t c, const tables::BaseRun& r) { return c < r.first; });
    if (it != begin && cp <= (it - 1)->last) {
      out.push_back((it - 1)->base);
      return;
    }
  }
  for (const auto& m : tables::kStripAccentMulti) {
    if (m.cp == cp) {
      for (uint32_t b : m.base)
        if (b != 0) out.push_back(b);
      return;
    }
  }
  out.push_back(cp);
}

// ---- GPT-2 byte-level encoding ----
// Byte-level BPE vocabularies spell every byte as a printable code point: the
// printable Latin-1 bytes stand for themselves, the other 68 bytes are moved to
// U+0100.. in byte order. (From GPT-2's bytes_to_unicode.)

inline bool byte_is_printable(uint8_t b) { return (b >= 0x21 && b <= 0x7E) || (b >= 0xA1 && b <= 0xAC) || b >= 0xAE; }

// The 68 moved bytes are 0x00-0x20, 0x7F-0xA0 and 0xAD, becoming U+0100-U+0143.
inline uint32_t byte_to_code_point(uint8_t b) {
  if (byte_is_printable(b)) return b;
  if (b <= 0x20) return 0x100 + b;
  if (b <= 0xA0) return 0x100 + 33 + (b - 0x7F);
  return 0x100 + 67;  // 0xAD
}

// The byte a code point spells, or -1 when it spells none.
inline int code_point_to_byte(uint32_t cp) {
  if (cp < 0x100) return byte_is_printable(static_cast<uint8_t>(cp)) ? static_cast<int>(cp) : -1;
  if (cp > 0x100 + 67) return -1;
  const uint32_t n = cp - 0x100;
  if (n <= 32) return static_cast<int>(n);
  if (n <= 66) return static_cast<int>(0x7F + n - 33);
  return 0xAD;
}

// The UTF-8 spelling of each byte, computed once per tokenizer.
inline std::array<std::string, 256> byte_level_spellings() {
  std::array<std::string, 256> out;
  for (int b = 0; b < 256; ++b) append_utf8(out[b], byte_to_code_point(static_cast<uint8_t>(b)));
  return out;
}

}  // namespace ember::unicode
