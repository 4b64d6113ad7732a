// Pre-tokenizers for byte-level BPE: split text into words before merges run.
//
// The original tokenizers split with regular expressions (tokenizer.json), and
// llama.cpp runs a list of them one after another, each splitting the pieces
// the previous one left. Here every regex a supported `tokenizer.ggml.pre` uses
// is a small hand-written matcher with the same results (no regex engine).
//
// Conventions: text is a vector of code points; a split is a list of piece
// lengths in code points that sum to the text's length.
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <span>
#include <string_view>
#include <vector>

#include "ember/tokenizer/unicode.hpp"

namespace ember::pretokenize {

// One splitting pass; each names the regex it stands for.
enum class Pass : uint8_t {
  // 's|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+
  gpt2,
  // (?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}|
  //   ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+
  llama3,
  // The same with \p{N} instead of \p{N}{1,3} (Qwen2).
  qwen2,
  // Qwen3.5: marks join letters. (?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?[\p{L}\p{M}]+|\p{N}|
  //    ?[^\s\p{L}\p{M}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+
  qwen35,
  // Mistral's Tekken, as llama.cpp rewrote it for std::regex (every letter outside ASCII
  // counts as both upper and lower case; marks are no letters):
  // [^\r\n\p{L}\p{N}]?((?=[\p{L}])([^a-z]))*((?=[\p{L}])([^A-Z]))+|
  // [^\r\n\p{L}\p{N}]?((?=[\p{L}])([^a-z]))+((?=[\p{L}])([^A-Z]))*|
  // \p{N}| ?[^\s\p{L}\p{N}]+[\r\n/]*|\s*[\r\n]+|\s+(?!\S)|\s+
  tekken,
  each_number,           // \p{N}
  number_runs,           // \p{N}+
  ascii_digit_triples,   // [0-9][0-9][0-9]
  falcon_punctuation,    // [\p{P}\$\+<=>\^~\|`]+
  default_punctuation,   // [\p{P}\$\+<=>\^~\|]+
  each_newline,          // [\r\n]
  deepseek_letters,      // \s?[A-Za-zµÀ-ÖØ-öø-ƺ...]+  (cased letters of many scripts)
  deepseek_punctuation,  // \s?[!-/:-~！-／：-～‘-‟　-。]+
  trailing_space,        // \s+$
  deepseek_cjk,          // [一-龥ࠀ-一가-퟿]+
  space_letters,         // \s?\p{L}+       (DeepSeek Coder)
  space_punctuation,     // \s?\p{P}+       (DeepSeek Coder)
  bloom,                 //  ?[^(\s|.,!?…。，、।۔،)]+
  newline_runs,          // [^\n]+|[\n]+    (Gemma 4: only lines apart)
};

struct Config {
  std::vector<Pass> passes;
  bool ignore_merges = false;  // a word that is already a token skips BPE (llama3)
  bool add_bos = false;        // default for tokenizer.ggml.add_bos_token
  // SentencePiece-style BPE (Gemma 4): merges run on UTF-8 characters, not GPT-2's
  // byte spelling; spaces are written U+2581; bytes fall back to <0xXX> tokens; add_bos
  // is forced on (as llama.cpp does, whatever the file says).
  bool sentencepiece_style = false;
};

// The passes for a `tokenizer.ggml.pre` value, as llama.cpp runs them; nothing
// for names we do not know.
inline std::optional<Config> config_for(std::string_view pre) {
  using P = Pass;
  const auto is_any = [&](std::initializer_list<std::string_view> names) {
    for (auto n : names)
      if (pre == n) return true;
    return false;
  };
  if (pre.empty() || pre == "default")
    return Config{{P::default_punctuation, P::gpt2, P::number_runs, P::ascii_digit_triples}};
  if (is_any({"gpt-2", "gpt2", "mpt", "olmo", "jais", "phi-2", "jina-es", "jina-de", "jina-v2-es", "jina-v2-de",
              "gigachat", "a.x-4.0", "mellum", "modern-bert", "roberta-bpe", "exaone4", "trillion", "granite-docling"}))
    return Config{{P::gpt2}};
  if (is_any({"starcoder", "smollm", "refact", "command-r", "codeshell", "exaone", "minerva-7b"}))
    return Config{{P::each_number, P::gpt2}};
  if (pre == "falcon") return Config{{P::falcon_punctuation, P::gpt2, P::ascii_digit_triples}};
  if (pre == "deepseek-llm")
    return Config{{P::each_newline, P::deepseek_letters, P::deepseek_punctuation, P::trailing_space, P::deepseek_cjk,
                   P::number_runs}};
  if (is_any({"llama3", "llama-v3", "llama-bpe", "falcon3", "falcon-h1", "pixtral", "midm-2.0", "lfm2"}))
    return Config{{P::llama3}, /*ignore_merges=*/true, /*add_bos=*/true};
  if (is_any({"dbrx", "smaug-bpe"})) return Config{{P::llama3}};
  if (is_any({"qwen2", "stablelm2", "deepseek-r1-qwen", "kormo", "f2llmv2", "megrez", "hunyuan", "grok-2"}))
    return Config{{P::qwen2}};
  if (pre == "qwen35") return Config{{P::qwen35}};
  if (pre == "deepseek-coder")
    return Config{{P::each_newline, P::space_letters, P::space_punctuation, P::deepseek_cjk, P::each_number}};
  if (is_any({"bloom", "poro-chat", "gpt3-finnish"})) return Config{{P::bloom}};
  if (pre == "viking") return Config{{P::bloom, P::each_number}};
  if (pre == "tekken") return Config{{P::tekken}, /*ignore_merges=*/true};
  if (is_any({"gemma4", "granite-embed-multi-311m"}))
    return Config{{P::newline_runs}, /*ignore_merges=*/false, /*add_bos=*/true, /*sentencepiece_style=*/true};
  return std::nullopt;
}

namespace detail {

struct Range {
  uint32_t first, last;
};

// `ranges` sorted and disjoint.
inline bool in_ranges(std::span<const Range> ranges, uint32_t cp) {
  size_t lo = 0, hi = ranges.size();
  while (lo < hi) {
    const size_t mid = (lo + hi) / 2;
    if (cp < ranges[mid].first) {
      hi = mid;
    } else if (cp > ranges[mid].last) {
      lo = mid + 1;
    } else {
      return true;
    }
  }
  return false;
}

// llama.cpp runs these literal classes through std::wregex on text where every
// non-ASCII white space is replaced by U+000B, so such characters never match.
inline bool literal_class(std::span<const Range> ranges, uint32_t cp) {
  if (cp > 0x7F && unicode::is_white_space(cp)) return false;
  return in_ranges(ranges, cp);
}

// From DeepSeek LLM's tokenizer.json.
inline constexpr Range kDeepseekLetters[] = {
    {0x41, 0x5A},       {0x61, 0x7A},       {0xB5, 0xB5},       {0xC0, 0xD6},       {0xD8, 0xF6},
    {0xF8, 0x1BA},      {0x1BC, 0x1BF},     {0x1C4, 0x293},     {0x295, 0x2AF},     {0x370, 0x373},
    {0x376, 0x377},     {0x37B, 0x37D},     {0x37F, 0x37F},     {0x386, 0x386},     {0x388, 0x38A},
    {0x38C, 0x38C},     {0x38E, 0x3A1},     {0x3A3, 0x3F5},     {0x3F7, 0x481},     {0x48A, 0x52F},
    {0x531, 0x556},     {0x10A0, 0x10C5},   {0x13A0, 0x13F5},   {0x13F8, 0x13FD},   {0x1C90, 0x1CBA},
    {0x1CBD, 0x1CBF},   {0x1D00, 0x1D2B},   {0x1D6B, 0x1D77},   {0x1D79, 0x1D9A},   {0x1E00, 0x1F15},
    {0x1F18, 0x1F1D},   {0x1F20, 0x1F45},   {0x1F48, 0x1F4D},   {0x1F50, 0x1F57},   {0x1F59, 0x1F59},
    {0x1F5B, 0x1F5B},   {0x1F5D, 0x1F5D},   {0x1F5F, 0x1F7D},   {0x1F80, 0x1FB4},   {0x1FB6, 0x1FBC},
    {0x1FBE, 0x1FBE},   {0x1FC2, 0x1FC4},   {0x1FC6, 0x1FCC},   {0x1FD0, 0x1FD3},   {0x1FD6, 0x1FDB},
    {0x1FE0, 0x1FEC},   {0x1FF2, 0x1FF4},   {0x1FF6, 0x1FFC},   {0x2102, 0x2102},   {0x2107, 0x2107},
    {0x210A, 0x2113},   {0x2115, 0x2115},   {0x2119, 0x211D},   {0x2124, 0x2124},   {0x2126, 0x2126},
    {0x2128, 0x2128},   {0x212A, 0x212D},   {0x212F, 0x2134},   {0x2139, 0x2139},   {0x213C, 0x213F},
    {0x2145, 0x2149},   {0x214E, 0x214E},   {0x2183, 0x2184},   {0x2C00, 0x2C7B},   {0x2C7E, 0x2CE4},
    {0x2CEB, 0x2CEE},   {0x2CF2, 0x2CF3},   {0xA640, 0xA66D},   {0xA680, 0xA69B},   {0xA722, 0xA76F},
    {0xA771, 0xA787},   {0xA78B, 0xA78E},   {0xAB70, 0xABBF},   {0xFB00, 0xFB06},   {0xFB13, 0xFB17},
    {0xFF21, 0xFF3A},   {0xFF41, 0xFF5A},   {0x10400, 0x1044F}, {0x104B0, 0x104D3}, {0x104D8, 0x104FB},
    {0x10C80, 0x10CB2}, {0x10CC0, 0x10CF2}, {0x118A0, 0x118DF}, {0x1E900, 0x1E943},
};
inline constexpr Range kDeepseekPunctuation[] = {
    {0x21, 0x2F}, {0x3A, 0x7E}, {0x2018, 0x201F}, {0x3000, 0x3002}, {0xFF01, 0xFF0F}, {0xFF1A, 0xFF5E},
};
// [一-龥ࠀ-一가-퟿]: the first two ranges overlap, merged here.
inline constexpr Range kDeepseekCjk[] = {{0x0800, 0x9FA5}, {0xAC00, 0xD7FF}};
// What BLOOM's words stop at (besides white space): ( | ) . , ! ? … 。 ， 、 । ۔ ،
inline constexpr Range kBloomStops[] = {{0x21, 0x21},     {0x28, 0x29},     {0x2C, 0x2C},     {0x2E, 0x2E},
                                        {0x3F, 0x3F},     {0x7C, 0x7C},     {0x060C, 0x060C}, {0x06D4, 0x06D4},
                                        {0x0964, 0x0964}, {0x2026, 0x2026}, {0x3001, 0x3002}, {0xFF0C, 0xFF0C}};

// The character classes a code point belongs to, looked up once per character.
struct Flags {
  bool letter = false, number = false, space = false, mark = false;
  bool none = true;  // past the end of the piece
};

class Splitter {
 public:
  Splitter(std::span<const uint32_t> cps, std::vector<size_t>& out) : cps_(cps), out_(out) {
    flags_.reserve(cps.size());
    for (uint32_t cp : cps) {
      const auto c = unicode::category(cp);
      flags_.push_back(
          {unicode::is_letter(c), unicode::is_number(c), unicode::is_white_space(cp), unicode::is_mark(c), false});
    }
  }

  // Splits [begin, end) with one pass, appending piece lengths.
  void run(Pass pass, size_t begin, size_t end) {
    begin_ = begin;
    end_ = end;
    switch (pass) {
      case Pass::gpt2: return gpt2();
      case Pass::llama3: return llama3(3);
      case Pass::qwen2: return llama3(1);
      case Pass::qwen35: return llama3(1, /*marks_are_letters=*/true);
      case Pass::tekken: return tekken();
      case Pass::each_number: return by_matches([&](size_t p) -> size_t { return flags_[p].number ? 1 : 0; });
      case Pass::number_runs:
        return by_matches([&](size_t p) { return run_length(p, [&](size_t q) { return flags_[q].number; }); });
      case Pass::ascii_digit_triples:
        return by_matches([&](size_t p) -> size_t {
          if (p + 3 > end_) return 0;
          for (size_t q = p; q < p + 3; ++q)
            if (cps_[q] < '0' || cps_[q] > '9') return 0;
          return 3;
        });
      case Pass::falcon_punctuation:
        return by_matches(
            [&](size_t p) { return run_length(p, [&](size_t q) { return punctuation(cps_[q], true); }); });
      case Pass::default_punctuation:
        return by_matches(
            [&](size_t p) { return run_length(p, [&](size_t q) { return punctuation(cps_[q], false); }); });
      case Pass::each_newline:
        return by_matches([&](size_t p) -> size_t { return (cps_[p] == '\r' || cps_[p] == '\n') ? 1 : 0; });
      case Pass::deepseek_letters: return by_matches([&](size_t p) { return space_then_class(p, kDeepseekLetters); });
      case Pass::deepseek_punctuation:
        return by_matches([&](size_t p) { return space_then_class(p, kDeepseekPunctuation); });
      case Pass::trailing_space: return trailing_space();
      case Pass::deepseek_cjk:
        return by_matches(
            [&](size_t p) { return run_length(p, [&](size_t q) { return literal_class(kDeepseekCjk, cps_[q]); }); });
      case Pass::space_letters:
        return by_matches([&](size_t p) { return space_then_run(p, [&](size_t q) { return flags_[q].letter; }); });
      case Pass::space_punctuation:
        return by_matches(
            [&](size_t p) { return space_then_run(p, [&](size_t q) { return unicode::is_punctuation(cps_[q]); }); });
      case Pass::bloom:
        return by_matches([&](size_t p) -> size_t {
          const auto word = [&](size_t q) { return !flags_[q].space && !in_ranges(kBloomStops, cps_[q]); };
          if (cps_[p] == ' ' && p + 1 < end_ && word(p + 1)) return 1 + run_length(p + 1, word);
          return run_length(p, word);
        });
      case Pass::newline_runs: return newline_runs();
    }
  }

 private:
  Flags flags(size_t p) const { return p < end_ ? flags_[p] : Flags{}; }
  uint32_t cp(size_t p) const { return p < end_ ? cps_[p] : 0xFFFFFFFF; }

  void emit(size_t& last, size_t to) {
    if (to > last) out_.push_back(to - last);
    last = to;
  }

  template <class Pred>
  size_t run_length(size_t p, Pred pred) const {
    size_t q = p;
    while (q < end_ && pred(q)) ++q;
    return q - p;
  }

  // Leftmost-first matching, like a regex iterator: text between matches is kept
  // as pieces of its own.
  template <class Match>
  void by_matches(Match match) {
    size_t last = begin_;
    for (size_t p = begin_; p < end_;) {
      const size_t n = match(p);
      if (n == 0) {
        ++p;
        continue;
      }
      emit(last, p);
      emit(last, p + n);
      p += n;
    }
    emit(last, end_);
  }

  // \p{P} plus the ASCII symbols listed in the regex. llama.cpp matches these on
  // a copy of the text where each non-ASCII character stands for its category,
  // so only the ASCII symbols named literally join \p{P}.
  static bool punctuation(uint32_t c, bool backtick) {
    if (c < 0x80) {
      if (c == '`') return backtick;
      return (c >= 0x21 && c <= 0x2F) || (c >= 0x3A && c <= 0x40) || (c >= 0x5B && c <= 0x60) ||
             (c >= 0x7B && c <= 0x7E);
    }
    return !unicode::is_white_space(c) && unicode::is_punctuation(c);
  }

  // \s?[class]+
  size_t space_then_class(size_t p, std::span<const Range> cls) const {
    return space_then_run(p, [&](size_t q) { return literal_class(cls, cps_[q]); });
  }
  template <class In>
  size_t space_then_run(size_t p, In in) const {
    if (flags_[p].space && p + 1 < end_ && in(p + 1)) return 1 + run_length(p + 1, in);
    return run_length(p, in);
  }

  void newline_runs() {
    size_t last = begin_;
    for (size_t p = begin_; p < end_;) {
      const bool newline = cps_[p] == '\n';
      p += run_length(p, [&](size_t q) { return (cps_[q] == '\n') == newline; });
      emit(last, p);
    }
  }

  void trailing_space() {
    size_t t = end_;
    while (t > begin_ && flags_[t - 1].space) --t;
    size_t last = begin_;
    emit(last, t);
    emit(last, end_);
  }

  // A run of white space at p: \s+(?!\S) leaves the last one to prefix the next
  // word, unless the run ends the piece; \s+ takes the rest.
  void white_space(size_t& p, size_t& last) {
    size_t n = 0;
    while (flags(p + n).space) ++n;
    if (n > 1 && p + n < end_) {
      p += n - 1;
    } else {
      p += n > 0 ? n : 1;  // no alternative matched: a piece of one character
    }
    emit(last, p);
  }

  bool contraction(size_t& p, size_t& last, bool any_case) {
    if (cp(p) != '\'' || p + 1 >= end_) return false;
    const auto lower = [&](uint32_t c) { return any_case ? unicode::to_lower(c) : c; };
    const uint32_t a = lower(cp(p + 1));
    if (a == 's' || a == 't' || a == 'm' || a == 'd') {
      p += 2;
      emit(last, p);
      return true;
    }
    if (p + 2 >= end_) return false;
    const uint32_t b = lower(cp(p + 2));
    if ((a == 'r' && b == 'e') || (a == 'v' && b == 'e') || (a == 'l' && b == 'l')) {
      p += 3;
      emit(last, p);
      return true;
    }
    return false;
  }

  void gpt2() {
    size_t last = begin_;
    for (size_t p = begin_; p < end_;) {
      if (contraction(p, last, false)) continue;
      // ' ?' then a run of one class: letters, numbers, or anything else but space.
      const size_t q = p + (cps_[p] == ' ' ? 1 : 0);
      const Flags f = flags(q);
      if (!f.none) {
        if (f.letter) {
          p = q + run_length(q, [&](size_t r) { return flags_[r].letter; });
          emit(last, p);
          continue;
        }
        if (f.number) {
          p = q + run_length(q, [&](size_t r) { return flags_[r].number; });
          emit(last, p);
          continue;
        }
        if (!f.space) {
          p = q + run_length(q, [&](size_t r) { return !(flags_[r].space || flags_[r].letter || flags_[r].number); });
          emit(last, p);
          continue;
        }
      }
      white_space(p, last);
    }
  }

  // Also Qwen2 (max_digits 1) and Qwen3.5 (marks_are_letters: [\p{L}\p{M}] for \p{L}).
  void llama3(size_t max_digits, bool marks_are_letters = false) {
    const auto word = [&](Flags f) { return f.letter || (marks_are_letters && f.mark); };
    size_t last = begin_;
    for (size_t p = begin_; p < end_;) {
      if (contraction(p, last, true)) continue;
      const uint32_t c = cps_[p];
      const Flags f = flags_[p];
      // [^\r\n\p{L}\p{N}]?\p{L}+
      if (!(c == '\r' || c == '\n' || f.number) && (word(f) || word(flags(p + 1)))) {
        p = p + 1 + run_length(p + 1, [&](size_t r) { return word(flags_[r]); });
        emit(last, p);
        continue;
      }
      // \p{N}{1,max_digits}
      if (f.number) {
        const size_t n = std::min(max_digits, run_length(p, [&](size_t r) { return flags_[r].number; }));
        p += n;
        emit(last, p);
        continue;
      }
      //  ?[^\s\p{L}\p{N}]+[\r\n]*
      const size_t q = p + (c == ' ' ? 1 : 0);
      const Flags g = flags(q);
      const auto other = [&](Flags h) { return !(h.space || word(h) || h.number); };
      if (!g.none && other(g)) {
        p = q + run_length(q, [&](size_t r) { return other(flags_[r]); });
        p += run_length(p, [&](size_t r) { return cps_[r] == '\r' || cps_[r] == '\n'; });
        emit(last, p);
        continue;
      }
      white_space_or_line_breaks(p, last);
    }
  }

  // \s*[\r\n]+|\s+(?!\S)|\s+ at p.
  void white_space_or_line_breaks(size_t& p, size_t& last) {
    // \s*[\r\n]+ : white space up to the last line break in the run.
    size_t n = 0, after_break = 0;
    while (flags(p + n).space) {
      if (cps_[p + n] == '\r' || cps_[p + n] == '\n') after_break = p + n + 1;
      ++n;
    }
    if (after_break > 0) {
      p = after_break;
      emit(last, p);
      return;
    }
    white_space(p, last);
  }

  void tekken() {
    // After the optional [^\r\n\p{L}\p{N}]: "upper" is A-Z or any letter outside ASCII,
    // "lower" is a-z or any letter outside ASCII.
    const auto upper = [&](size_t q) { return q < end_ && flags_[q].letter && !(cps_[q] >= 'a' && cps_[q] <= 'z'); };
    const auto lower = [&](size_t q) { return q < end_ && flags_[q].letter && !(cps_[q] >= 'A' && cps_[q] <= 'Z'); };
    const auto run = [&](size_t q, auto pred) {
      size_t n = 0;
      while (pred(q + n)) ++n;
      return n;
    };
    size_t last = begin_;
    for (size_t p = begin_; p < end_;) {
      const uint32_t c = cps_[p];
      const Flags f = flags_[p];
      const size_t q = (!(c == '\r' || c == '\n' || f.letter || f.number) && flags(p + 1).letter) ? p + 1 : p;
      if (flags(q).letter) {
        // upper* lower+, the regex engine giving back upper letters until lower+ can match.
        const size_t u = run(q, upper);
        size_t end = 0;
        if (lower(q + u)) {
          end = q + u + run(q + u, lower);
        } else {
          for (size_t k = u; k-- > 0;)
            if (lower(q + k)) {
              end = q + k + 1;  // the letters after k are A-Z: lower+ stops at once
              break;
            }
        }
        // Else upper+ lower* (u >= 1 here: a letter that is not lower is upper).
        if (end == 0) end = q + u + run(q + u, lower);
        p = end;
        emit(last, p);
        continue;
      }
      // \p{N}
      if (f.number) {
        emit(last, ++p);
        continue;
      }
      //  ?[^\s\p{L}\p{N}]+[\r\n/]*
      const size_t r = p + (c == ' ' ? 1 : 0);
      const Flags g = flags(r);
      const auto other = [&](Flags h) { return !(h.space || h.letter || h.number); };
      if (!g.none && other(g)) {
        p = r + run_length(r, [&](size_t s) { return other(flags_[s]); });
        p += run_length(p, [&](size_t s) { return cps_[s] == '\r' || cps_[s] == '\n' || cps_[s] == '/'; });
        emit(last, p);
        continue;
      }
      white_space_or_line_breaks(p, last);
    }
  }

  std::span<const uint32_t> cps_;
  std::vector<size_t>& out_;
  std::vector<Flags> flags_;
  size_t begin_ = 0, end_ = 0;
};

}  // namespace detail

// Splits code points into words; returns word lengths in code points.
inline std::vector<size_t> split(std::span<const Pass> passes, std::span<const uint32_t> cps) {
  std::vector<size_t> pieces;
  if (cps.empty()) return pieces;
  pieces.push_back(cps.size());
  std::vector<size_t> next;
  detail::Splitter splitter(cps, next);
  for (Pass pass : passes) {
    next.clear();
    next.reserve(pieces.size() * 2);
    size_t begin = 0;
    for (size_t len : pieces) {
      splitter.run(pass, begin, begin + len);
      begin += len;
    }
    pieces.swap(next);
  }
  return pieces;
}

}  // namespace ember::pretokenize
