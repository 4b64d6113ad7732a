// A small strict JSON (RFC 8259) reader for chat inputs: a conversation file
// (`--messages FILE.json`), tool lists and template variables. Objects keep
// their key order, as Python's json module does, because chat templates print
// them in that order. Errors name the line and column.
#pragma once

#include <charconv>
#include <cstdint>
#include <string>
#include <string_view>
#include <system_error>
#include <utility>
#include <vector>

#include "ember/chat/message.hpp"
#include "ember/core/result.hpp"

namespace ember::chat {

class JsonValue {
 public:
  enum class Kind : std::uint8_t { null, boolean, integer, number, string, array, object };
  using Array = std::vector<JsonValue>;
  using Object = std::vector<std::pair<std::string, JsonValue>>;

  JsonValue() = default;  // null
  JsonValue(bool b) : kind_(Kind::boolean), bool_(b) {}
  JsonValue(int i) : kind_(Kind::integer), int_(i) {}
  JsonValue(std::int64_t i) : kind_(Kind::integer), int_(i) {}
  JsonValue(double d) : kind_(Kind::number), number_(d) {}
  JsonValue(std::string s) : kind_(Kind::string), string_(std::move(s)) {}
  JsonValue(std::string_view s) : kind_(Kind::string), string_(s) {}
  JsonValue(const char* s) : kind_(Kind::string), string_(s) {}
  static JsonValue array(Array items) {
    JsonValue v;
    v.kind_ = Kind::array;
    v.array_ = std::move(items);
    return v;
  }
  static JsonValue object(Object members) {
    JsonValue v;
    v.kind_ = Kind::object;
    v.object_ = std::move(members);
    return v;
  }

  Kind kind() const { return kind_; }
  bool is_null() const { return kind_ == Kind::null; }
  bool is_string() const { return kind_ == Kind::string; }
  bool as_bool() const { return bool_; }
  std::int64_t as_integer() const { return int_; }
  double as_number() const { return kind_ == Kind::integer ? static_cast<double>(int_) : number_; }
  const std::string& as_string() const { return string_; }
  const Array& as_array() const { return array_; }
  const Object& as_object() const { return object_; }

  // The member named `key` of an object; nullptr when absent or not an object.
  const JsonValue* find(std::string_view key) const {
    for (const auto& [k, v] : object_)
      if (k == key) return &v;
    return nullptr;
  }

 private:
  Kind kind_ = Kind::null;
  bool bool_ = false;
  std::int64_t int_ = 0;
  double number_ = 0;
  std::string string_;
  Array array_;
  Object object_;
};

namespace json_detail {

// Appends code point `cp` to `out` as UTF-8.
inline void append_utf8(std::string& out, char32_t cp) {
  if (cp < 0x80) {
    out += static_cast<char>(cp);
  } else if (cp < 0x800) {
    out += static_cast<char>(0xC0 | (cp >> 6));
    out += static_cast<char>(0x80 | (cp & 0x3F));
  } else if (cp < 0x10000) {
    out += static_cast<char>(0xE0 | (cp >> 12));
    out += static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
    out += static_cast<char>(0x80 | (cp & 0x3F));
  } else {
    out += static_cast<char>(0xF0 | (cp >> 18));
    out += static_cast<char>(0x80 | ((cp >> 12) & 0x3F));
    out += static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
    out += static_cast<char>(0x80 | (cp & 0x3F));
  }
}

class Reader {
 public:
  explicit Reader(std::string_view text) : text_(text) {}

  Result<JsonValue> document() {
    EMBER_TRY(JsonValue v, value(0));
    skip_space();
    if (pos_ != text_.size()) return fail("unexpected text after the JSON value");
    return v;
  }

 private:
  static constexpr int kMaxDepth = 128;  // deeper input is hostile, not a conversation

  Error fail(std::string_view what) const {
    int line = 1, column = 1;
    for (size_t i = 0; i < pos_ && i < text_.size(); ++i) {
      if (text_[i] == '\n') {
        ++line;
        column = 1;
      } else {
        ++column;
      }
    }
    return make_error(Errc::format, "JSON line " + std::to_string(line) + " column " + std::to_string(column) + ": " +
                                        std::string(what));
  }

  void skip_space() {
    while (pos_ < text_.size() &&
           (text_[pos_] == ' ' || text_[pos_] == '\t' || text_[pos_] == '\n' || text_[pos_] == '\r'))
      ++pos_;
  }

  bool consume(std::string_view word) {
    if (text_.substr(pos_, word.size()) != word) return false;
    pos_ += word.size();
    return true;
  }

  Result<JsonValue> value(int depth) {
    if (depth > kMaxDepth) return fail("nested too deeply");
    skip_space();
    if (pos_ >= text_.size()) return fail("unexpected end of input");
    char c = text_[pos_];
    if (c == '{') return object(depth);
    if (c == '[') return array(depth);
    if (c == '"') {
      EMBER_TRY(std::string s, string());
      return JsonValue(std::move(s));
    }
    if (consume("true")) return JsonValue(true);
    if (consume("false")) return JsonValue(false);
    if (consume("null")) return JsonValue();
    if (c == '-' || (c >= '0' && c <= '9')) return number();
    return fail(std::string("unexpected character '") + c + "'");
  }

  Result<JsonValue> object(int depth) {
    ++pos_;  // '{'
    JsonValue::Object members;
    skip_space();
    if (pos_ < text_.size() && text_[pos_] == '}') {
      ++pos_;
      return JsonValue::object(std::move(members));
    }
    while (true) {
      skip_space();
      if (pos_ >= text_.size() || text_[pos_] != '"') return fail("expected a string key");
      EMBER_TRY(std::string key, string());
      skip_space();
      if (pos_ >= text_.size() || text_[pos_] != ':') return fail("expected ':'");
      ++pos_;
      EMBER_TRY(JsonValue v, value(depth + 1));
      members.emplace_back(std::move(key), std::move(v));
      skip_space();
      if (pos_ < text_.size() && text_[pos_] == ',') {
        ++pos_;
        continue;
      }
      if (pos_ < text_.size() && text_[pos_] == '}') {
        ++pos_;
        return JsonValue::object(std::move(members));
      }
      return fail("expected ',' or '}'");
    }
  }

  Result<JsonValue> array(int depth) {
    ++pos_;  // '['
    JsonValue::Array items;
    skip_space();
    if (pos_ < text_.size() && text_[pos_] == ']') {
      ++pos_;
      return JsonValue::array(std::move(items));
    }
    while (true) {
      EMBER_TRY(JsonValue v, value(depth + 1));
      items.push_back(std::move(v));
      skip_space();
      if (pos_ < text_.size() && text_[pos_] == ',') {
        ++pos_;
        continue;
      }
      if (pos_ < text_.size() && text_[pos_] == ']') {
        ++pos_;
        return JsonValue::array(std::move(items));
      }
      return fail("expected ',' or ']'");
    }
  }

  Result<unsigned> hex4() {
    if (pos_ + 4 > text_.size()) return fail("truncated \\u escape");
    unsigned v = 0;
    for (int i = 0; i < 4; ++i) {
      char h = text_[pos_++];
      v <<= 4;
      if (h >= '0' && h <= '9')
        v |= h - '0';
      else if (h >= 'a' && h <= 'f')
        v |= h - 'a' + 10;
      else if (h >= 'A' && h <= 'F')
        v |= h - 'A' + 10;
      else
        return fail("bad hex digit in \\u escape");
    }
    return v;
  }

  Result<std::string> string() {
    ++pos_;  // '"'
    std::string out;
    while (true) {
      if (pos_ >= text_.size()) return fail("unterminated string");
      char c = text_[pos_++];
      if (c == '"') return out;
      if (static_cast<unsigned char>(c) < 0x20) {
        --pos_;  // point at the character
        return fail("control character in string");
      }
      if (c != '\\') {
        out += c;
        continue;
      }
      if (pos_ >= text_.size()) return fail("unterminated string");
      char e = text_[pos_++];
      switch (e) {
        case '"': out += '"'; break;
        case '\\': out += '\\'; break;
        case '/': out += '/'; break;
        case 'b': out += '\b'; break;
        case 'f': out += '\f'; break;
        case 'n': out += '\n'; break;
        case 'r': out += '\r'; break;
        case 't': out += '\t'; break;
        case 'u': {
          EMBER_TRY(unsigned cp, hex4());
          if (cp >= 0xD800 && cp < 0xDC00 && text_.substr(pos_, 2) == "\\u") {
            size_t saved = pos_;
            pos_ += 2;
            EMBER_TRY(unsigned low, hex4());
            if (low >= 0xDC00 && low < 0xE000) {
              cp = 0x10000 + ((cp - 0xD800) << 10) + (low - 0xDC00);
            } else {
              pos_ = saved;  // a lone high surrogate; the next escape stands alone
            }
          }
          // Lone surrogates cannot be UTF-8; Python would keep them, we substitute U+FFFD.
          if (cp >= 0xD800 && cp < 0xE000) cp = 0xFFFD;
          append_utf8(out, cp);
          break;
        }
        default:
          pos_ -= 2;  // point at the backslash
          return fail(std::string("bad escape '\\") + e + "'");
      }
    }
  }

  Result<JsonValue> number() {
    size_t start = pos_;
    if (text_[pos_] == '-') ++pos_;
    auto digits = [&] {
      size_t n = 0;
      while (pos_ < text_.size() && text_[pos_] >= '0' && text_[pos_] <= '9') ++pos_, ++n;
      return n;
    };
    size_t int_start = pos_;
    if (digits() == 0) return fail("bad number");
    if (text_[int_start] == '0' && pos_ - int_start > 1) return fail("leading zero in number");
    bool integral = true;
    if (pos_ < text_.size() && text_[pos_] == '.') {
      ++pos_;
      integral = false;
      if (digits() == 0) return fail("bad number");
    }
    if (pos_ < text_.size() && (text_[pos_] == 'e' || text_[pos_] == 'E')) {
      ++pos_;
      integral = false;
      if (pos_ < text_.size() && (text_[pos_] == '+' || text_[pos_] == '-')) ++pos_;
      if (digits() == 0) return fail("bad number");
    }
    const char* first = text_.data() + start;
    const char* last = text_.data() + pos_;
    if (integral) {
      std::int64_t i = 0;
      auto [p, ec] = std::from_chars(first, last, i);
      if (ec == std::errc() && p == last) return JsonValue(i);
      // Beyond int64: Python keeps the exact integer; we keep the nearest double.
    }
    double d = 0;
    auto [p, ec] = std::from_chars(first, last, d);
    if (ec != std::errc() || p != last) return fail("number out of range");
    return JsonValue(d);
  }

  std::string_view text_;
  size_t pos_ = 0;
};

}  // namespace json_detail

inline Result<JsonValue> parse_json(std::string_view text) { return json_detail::Reader(text).document(); }

// A conversation from parsed JSON: a list of {"role": ..., "content": ...} objects
// (other members are ignored). A null content reads as "" (assistant turns that
// only call tools); content given as a list of parts is not supported yet.
inline Result<std::vector<Message>> messages_from_json(const JsonValue& doc) {
  if (doc.kind() != JsonValue::Kind::array)
    return make_error(Errc::format, "messages JSON: expected a list of messages");
  std::vector<Message> messages;
  messages.reserve(doc.as_array().size());
  for (size_t i = 0; i < doc.as_array().size(); ++i) {
    const JsonValue& m = doc.as_array()[i];
    const std::string where = "messages JSON: message " + std::to_string(i);
    if (m.kind() != JsonValue::Kind::object) return make_error(Errc::format, where + " is not an object");
    const JsonValue* role = m.find("role");
    const JsonValue* content = m.find("content");
    if (!role || !role->is_string()) return make_error(Errc::format, where + " has no string \"role\"");
    if (!content || !(content->is_string() || content->is_null()))
      return make_error(Errc::format, where + " has no string \"content\"");
    messages.push_back({role->as_string(), content->is_null() ? std::string() : content->as_string()});
  }
  return messages;
}

// Reads a conversation file's text (`--messages FILE.json`); see messages_from_json.
inline Result<std::vector<Message>> parse_messages_json(std::string_view text) {
  EMBER_TRY(JsonValue doc, parse_json(text));
  return messages_from_json(doc);
}

}  // namespace ember::chat
