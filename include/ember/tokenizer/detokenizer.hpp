// Streaming detokenizer: turns ids into text as they are generated, and never
// hands out part of a UTF-8 character. A character spread over several byte
// tokens (an emoji as <0xF0><0x9F><0xA6><0x99>) is held back until complete.
//
// Output is always valid UTF-8 in the sense of unicode::decode_utf8: a byte
// that can no longer start or continue a character becomes U+FFFD.
#pragma once

#include <string>
#include <string_view>

#include "ember/tokenizer/tokenizer.hpp"
#include "ember/tokenizer/unicode.hpp"

namespace ember {

class Detokenizer {
 public:
  // strip_leading_space: drop the space that the first piece carries when the
  // stream is a whole text from a SentencePiece or WordPiece tokenizer (see
  // Tokenizer::strips_leading_space); leave it off when continuing after a
  // prompt. The tokenizer must outlive the detokenizer.
  explicit Detokenizer(const Tokenizer& tokenizer, bool strip_leading_space = false, bool render_special = false)
      : tokenizer_(&tokenizer), strip_(strip_leading_space), render_special_(render_special) {}

  // Returns the text completed by this token (may be empty).
  std::string push(TokenId id) {
    std::string_view piece = tokenizer_->piece(id, render_special_);
    if (strip_ && !piece.empty()) {
      if (piece.front() == ' ') piece.remove_prefix(1);
      strip_ = false;
    }
    pending_.append(piece);
    return take(false);
  }

  // Returns whatever is held back; an unfinished character becomes U+FFFD.
  std::string flush() { return take(true); }

  // Starts a new stream (the strip setting is not restored).
  void reset() { pending_.clear(); }

 private:
  std::string take(bool final) {
    std::string out;
    size_t pos = 0;
    const std::string_view p = pending_;
    while (pos < p.size()) {
      const auto d = unicode::decode_utf8(p, pos);
      const bool invalid = d.length == 1 && static_cast<uint8_t>(p[pos]) >= 0x80;
      if (!invalid) {
        out.append(p.substr(pos, d.length));
        pos += d.length;
        continue;
      }
      // An unfinished character at the end waits for more bytes.
      if (unicode::complete_utf8_prefix(p.substr(pos)) == 0) {
        if (!final) break;
        unicode::append_utf8(out, unicode::kReplacement);
        pos = p.size();
        break;
      }
      unicode::append_utf8(out, unicode::kReplacement);
      ++pos;
    }
    pending_.erase(0, pos);
    return out;
  }

  const Tokenizer* tokenizer_;
  bool strip_;
  bool render_special_;
  std::string pending_;  // bytes of an unfinished character
};

}  // namespace ember
