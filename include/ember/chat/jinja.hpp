// A Jinja2 subset interpreter for chat templates: lexer -> recursive-descent parser
// -> AST -> tree-walking evaluator over a small dynamic Value type.
//
// The reference is Python jinja2 configured the way Hugging Face transformers
// renders chat templates (ImmutableSandboxedEnvironment, trim_blocks,
// lstrip_blocks, the loopcontrols extension, undefined values falsy and printed
// as ""), down to Python's spelling of values (str(), repr(), json.dumps()), so a
// prompt comes out byte for byte as the model saw it in training. What is not
// supported fails with an Error naming the template line, never with a silently
// different prompt. tools/make_template_vectors.py pins the behaviour.
//
// Not supported (an error when reached): macros and call blocks, include /
// import / extends / block, filter blocks, recursive loops, `%` and
// str.format() formatting, dict keys other than strings, integers beyond int64,
// filters and methods outside the lists below. Known differences that render:
// upper/lower/title change ASCII letters only; Python objects without a stable
// spelling print differently (bound methods, generators print as lists,
// dict.keys() prints as a list, a namespace prints as "<Namespace>").
//
// Convention: text is UTF-8; "characters" are code points, as in Python str.
#pragma once

#include <algorithm>
#include <charconv>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <ctime>
#include <initializer_list>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <system_error>
#include <utility>
#include <vector>

#include "ember/core/result.hpp"

namespace ember::chat::jinja {

// Guards against runaway or hostile templates; real chat templates stay far below.
inline constexpr size_t kMaxStringBytes = size_t{16} << 20;  // the output and every string built
inline constexpr size_t kMaxSteps = 10'000'000;              // default budget: loop iterations, comparisons
inline constexpr int kMaxNesting = 128;                      // blocks + expressions; nesting of values
inline constexpr size_t kMaxListItems = 1'000'000;           // range() and list repetition

// ---- Text helpers (Python str semantics over UTF-8) ----

namespace text {

struct Char {
  char32_t cp;
  size_t size;  // bytes; a malformed byte decodes as itself, size 1
};

inline Char decode(std::string_view s, size_t pos) {
  auto b = static_cast<unsigned char>(s[pos]);
  size_t n = b < 0x80 ? 1 : (b >> 5) == 0x6 ? 2 : (b >> 4) == 0xE ? 3 : (b >> 3) == 0x1E ? 4 : 0;
  if (n == 0 || pos + n > s.size()) return {b, 1};
  if (n == 1) return {b, 1};
  char32_t cp = b & (0x7F >> n);
  for (size_t i = 1; i < n; ++i) {
    auto c = static_cast<unsigned char>(s[pos + i]);
    if ((c >> 6) != 0x2) return {b, 1};
    cp = (cp << 6) | (c & 0x3F);
  }
  return {cp, n};
}

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

// Byte offsets where each character starts, plus the end: Python indexes strings by character.
inline std::vector<size_t> char_starts(std::string_view s) {
  std::vector<size_t> starts;
  for (size_t i = 0; i < s.size(); i += decode(s, i).size) starts.push_back(i);
  starts.push_back(s.size());
  return starts;
}

inline size_t length(std::string_view s) {
  size_t n = 0;
  for (size_t i = 0; i < s.size(); i += decode(s, i).size) ++n;
  return n;
}

// str.isspace(): what str.strip(), str.split() and the regex \s of jinja's lexer mean.
inline bool is_space(char32_t c) {
  return (c >= 0x09 && c <= 0x0D) || (c >= 0x1C && c <= 0x20) || c == 0x85 || c == 0xA0 || c == 0x1680 ||
         (c >= 0x2000 && c <= 0x200A) || c == 0x2028 || c == 0x2029 || c == 0x202F || c == 0x205F || c == 0x3000;
}

// Line boundaries of str.splitlines().
inline bool is_line_break(char32_t c) {
  return c == '\n' || c == '\r' || c == 0x0B || c == 0x0C || (c >= 0x1C && c <= 0x1E) || c == 0x85 || c == 0x2028 ||
         c == 0x2029;
}

// str.strip / lstrip / rstrip; `chars` empty means whitespace.
inline std::string_view strip(std::string_view s, bool left, bool right, const std::u32string* chars = nullptr) {
  auto stripped = [&](char32_t c) { return chars ? chars->find(c) != std::u32string::npos : is_space(c); };
  size_t begin = 0, end = s.size();
  if (left) {
    while (begin < end) {
      Char c = decode(s, begin);
      if (!stripped(c.cp)) break;
      begin += c.size;
    }
  }
  if (right) {
    while (end > begin) {
      size_t start = end - 1;
      while (start > begin && (static_cast<unsigned char>(s[start]) >> 6) == 0x2) --start;
      Char c = decode(s, start);
      if (start + c.size != end) c = {static_cast<unsigned char>(s[end - 1]), 1}, start = end - 1;
      if (!stripped(c.cp)) break;
      end = start;
    }
  }
  return s.substr(begin, end - begin);
}

inline std::u32string code_points(std::string_view s) {
  std::u32string out;
  for (size_t i = 0; i < s.size();) {
    Char c = decode(s, i);
    out += c.cp;
    i += c.size;
  }
  return out;
}

inline bool all_space(std::string_view s) { return strip(s, true, false).empty(); }

// Case mapping is ASCII-only: other scripts keep their case (documented limitation).
inline char upper(char c) { return c >= 'a' && c <= 'z' ? static_cast<char>(c - 32) : c; }
inline char lower(char c) { return c >= 'A' && c <= 'Z' ? static_cast<char>(c + 32) : c; }
inline bool is_ascii_alpha(char c) { return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z'); }

inline std::string to_upper(std::string_view s) {
  std::string out(s);
  for (char& c : out) c = upper(c);
  return out;
}

inline std::string to_lower(std::string_view s) {
  std::string out(s);
  for (char& c : out) c = lower(c);
  return out;
}

// str.capitalize(): first character upper, the rest lower.
inline std::string capitalize(std::string_view s) {
  std::string out = to_lower(s);
  if (!out.empty()) out[0] = upper(out[0]);
  return out;
}

// str.title(): a cased character after an uncased one starts a word. Non-ASCII
// bytes count as cased letters, so "naïve" stays one word.
inline std::string title_method(std::string_view s) {
  std::string out(s);
  bool previous_cased = false;
  for (char& c : out) {
    bool non_ascii = static_cast<unsigned char>(c) >= 0x80;
    if (is_ascii_alpha(c)) c = previous_cased ? lower(c) : upper(c);
    previous_cased = is_ascii_alpha(c) || non_ascii;
  }
  return out;
}

// jinja's title filter: words start after whitespace, '-' or an opening bracket.
inline std::string title_filter(std::string_view s) {
  std::string out(s);
  bool word_start = true;
  for (size_t i = 0; i < out.size();) {
    Char c = decode(out, i);
    bool separator = is_space(c.cp) || c.cp == '-' || c.cp == '(' || c.cp == '{' || c.cp == '[' || c.cp == '<';
    if (!separator) out[i] = word_start ? upper(out[i]) : lower(out[i]);
    word_start = separator;
    i += c.size;
  }
  return out;
}

// str.splitlines() (no keepends).
inline std::vector<std::string_view> split_lines(std::string_view s) {
  std::vector<std::string_view> lines;
  size_t start = 0;
  for (size_t i = 0; i < s.size();) {
    Char c = decode(s, i);
    if (!is_line_break(c.cp)) {
      i += c.size;
      continue;
    }
    lines.push_back(s.substr(start, i - start));
    i += c.size;
    if (c.cp == '\r' && i < s.size() && s[i] == '\n') ++i;
    start = i;
  }
  if (start < s.size()) lines.push_back(s.substr(start));
  return lines;
}

// str.replace(old, new, count); an empty `old` inserts between characters, as Python does.
inline std::string replace(std::string_view s, std::string_view old, std::string_view with, int64_t count) {
  std::string out;
  int64_t done = 0;
  if (old.empty()) {
    for (size_t i = 0; i <= s.size();) {
      if (count < 0 || done < count) out += with, ++done;
      if (i == s.size()) break;
      size_t n = decode(s, i).size;
      out += s.substr(i, n);
      i += n;
    }
    return out;
  }
  size_t pos = 0;
  while (count < 0 || done < count) {
    size_t hit = s.find(old, pos);
    if (hit == std::string_view::npos) break;
    out += s.substr(pos, hit - pos);
    out += with;
    pos = hit + old.size();
    ++done;
  }
  out += s.substr(pos);
  return out;
}

// Python's repr(float) (and str(), json.dumps()): the shortest digits that read
// back exactly, positional for exponents -4..15 and "1e+16"-style beyond.
inline std::string float_repr(double d) {
  if (std::isnan(d)) return "nan";
  if (std::isinf(d)) return d > 0 ? "inf" : "-inf";
  if (d == 0) return std::signbit(d) ? "-0.0" : "0.0";
  char buf[64];
  auto [end, ec] = std::to_chars(buf, buf + sizeof buf, d, std::chars_format::scientific);
  std::string_view s(buf, static_cast<size_t>(end - buf));
  std::string out;
  if (s[0] == '-') out += '-', s.remove_prefix(1);
  size_t e = s.find('e');
  std::string digits(1, s[0]);
  if (e > 1) digits += s.substr(2, e - 2);
  int exponent = 0;
  std::from_chars(s.data() + e + (s[e + 1] == '+' ? 2 : 1), s.data() + s.size(), exponent);
  const int n = static_cast<int>(digits.size());
  if (exponent >= 16 || exponent < -4) {
    out += digits[0];
    if (n > 1) out += '.', out += digits.substr(1);
    out += exponent < 0 ? "e-" : "e+";
    std::string x = std::to_string(std::abs(exponent));
    if (x.size() < 2) out += '0';
    out += x;
  } else if (exponent >= 0) {
    if (n <= exponent + 1) {
      out += digits + std::string(static_cast<size_t>(exponent + 1 - n), '0') + ".0";
    } else {
      out +=
          digits.substr(0, static_cast<size_t>(exponent + 1)) + "." + digits.substr(static_cast<size_t>(exponent + 1));
    }
  } else {
    out += "0." + std::string(static_cast<size_t>(-exponent - 1), '0') + digits;
  }
  return out;
}

// Characters Python's repr() escapes beyond ASCII controls: separators, format
// characters, surrogates and private use (str.isprintable() is false). Approximate
// for the rarest categories; exact for what appears in chat text.
inline bool is_unprintable(char32_t c) {
  return (c >= 0x80 && c <= 0xA0) || c == 0xAD || c == 0x1680 || (c >= 0x0600 && c <= 0x0605) || c == 0x061C ||
         c == 0x06DD || c == 0x070F || c == 0x180E || (c >= 0x2000 && c <= 0x200F) || (c >= 0x2028 && c <= 0x202F) ||
         (c >= 0x205F && c <= 0x206F) || c == 0x3000 || (c >= 0xD800 && c <= 0xF8FF) || c == 0xFEFF ||
         (c >= 0xFFF9 && c <= 0xFFFB) || c >= 0xF0000 || (c >= 0xE0000 && c <= 0xE007F);
}

inline void append_hex(std::string& out, char prefix, uint32_t value, int digits) {
  static constexpr char kHex[] = "0123456789abcdef";
  out += '\\';
  out += prefix;
  for (int i = digits - 1; i >= 0; --i) out += kHex[(value >> (4 * i)) & 0xF];
}

// Python's repr(str).
inline std::string string_repr(std::string_view s) {
  const bool has_single = s.find('\'') != std::string_view::npos, has_double = s.find('"') != std::string_view::npos;
  const char quote = has_single && !has_double ? '"' : '\'';
  std::string out(1, quote);
  for (size_t i = 0; i < s.size();) {
    Char c = decode(s, i);
    if (c.cp == static_cast<char32_t>(quote) || c.cp == '\\') {
      out += '\\';
      out += static_cast<char>(c.cp);
    } else if (c.cp == '\t') {
      out += "\\t";
    } else if (c.cp == '\n') {
      out += "\\n";
    } else if (c.cp == '\r') {
      out += "\\r";
    } else if (c.cp < 0x20 || c.cp == 0x7F || (c.size > 1 && c.cp <= 0xFF && is_unprintable(c.cp))) {
      append_hex(out, 'x', c.cp, 2);
    } else if (c.size > 1 && is_unprintable(c.cp)) {
      if (c.cp <= 0xFFFF)
        append_hex(out, 'u', c.cp, 4);
      else
        append_hex(out, 'U', c.cp, 8);
    } else {
      out += s.substr(i, c.size);
    }
    i += c.size;
  }
  out += quote;
  return out;
}

// json.dumps(str, ensure_ascii=...).
inline void append_json_string(std::string& out, std::string_view s, bool ensure_ascii) {
  out += '"';
  for (size_t i = 0; i < s.size();) {
    Char c = decode(s, i);
    switch (c.cp) {
      case '"': out += "\\\""; break;
      case '\\': out += "\\\\"; break;
      case '\n': out += "\\n"; break;
      case '\r': out += "\\r"; break;
      case '\t': out += "\\t"; break;
      case '\b': out += "\\b"; break;
      case '\f': out += "\\f"; break;
      default:
        if (c.cp < 0x20 || (ensure_ascii && c.cp > 0x7E)) {
          if (c.cp > 0xFFFF) {
            char32_t v = c.cp - 0x10000;
            append_hex(out, 'u', 0xD800 + (v >> 10), 4);
            append_hex(out, 'u', 0xDC00 + (v & 0x3FF), 4);
          } else {
            append_hex(out, 'u', c.cp, 4);
          }
        } else {
          out += s.substr(i, c.size);
        }
    }
    i += c.size;
  }
  out += '"';
}

}  // namespace text

// ---- Values ----

class Value;
using List = std::vector<Value>;
using Dict = std::vector<std::pair<std::string, Value>>;  // insertion order, as Python dicts keep it

// A template value, with Python's types: lists and dicts are shared and never
// change after creation (the sandbox is immutable), except a namespace's members.
class Value {
 public:
  enum class Kind : uint8_t {
    undefined,
    none,
    boolean,
    integer,
    floating,
    string,
    list,
    tuple,
    dict,
    name_space,
    function,
    loop
  };

  Value() = default;                         // undefined
  static Value undefined(std::string why) {  // `why` becomes the error if the value is used
    Value v;
    v.string_ = std::make_shared<const std::string>(std::move(why));
    return v;
  }
  static Value none() { return with_kind(Kind::none); }
  static Value boolean(bool b) {
    Value v = with_kind(Kind::boolean);
    v.int_ = b;
    return v;
  }
  static Value integer(int64_t i) {
    Value v = with_kind(Kind::integer);
    v.int_ = i;
    return v;
  }
  static Value floating(double d) {
    Value v = with_kind(Kind::floating);
    v.float_ = d;
    return v;
  }
  static Value string(std::string s) {
    Value v = with_kind(Kind::string);
    v.string_ = std::make_shared<const std::string>(std::move(s));
    return v;
  }
  static Value list(List items, Kind kind = Kind::list) {
    Value v = with_kind(kind);
    for (const Value& item : items) v.depth_ = std::max(v.depth_, item.depth_ + 1);
    v.list_ = std::make_shared<List>(std::move(items));
    return v;
  }
  static Value dict(Dict members, Kind kind = Kind::dict) {
    Value v = with_kind(kind);
    if (kind == Kind::dict)
      for (const auto& member : members) v.depth_ = std::max(v.depth_, member.second.depth_ + 1);
    v.dict_ = std::make_shared<Dict>(std::move(members));
    return v;
  }
  // `loop` inside a for loop: its attributes are computed from the items and the index.
  static Value loop(const Value& sequence, size_t index) {
    Value v = with_kind(Kind::loop);
    v.list_ = sequence.list_;
    v.int_ = static_cast<int64_t>(index);
    return v;
  }
  static Value function(std::string name) {
    Value v = with_kind(Kind::function);
    v.string_ = std::make_shared<const std::string>(std::move(name));
    return v;
  }
  // `text.split` without a call: a method bound to its object, as Python has them.
  static Value method(const Value& self, std::string name) {
    Value v = function(std::move(name));
    v.list_ = std::make_shared<List>(1, self);
    return v;
  }
  const Value* bound_self() const { return kind_ == Kind::function && list_ ? &list_->front() : nullptr; }

  Kind kind() const { return kind_; }
  bool is_undefined() const { return kind_ == Kind::undefined; }
  bool is_none() const { return kind_ == Kind::none; }
  bool is_string() const { return kind_ == Kind::string; }
  bool is_integral() const { return kind_ == Kind::integer || kind_ == Kind::boolean; }
  bool is_number() const { return is_integral() || kind_ == Kind::floating; }
  bool is_sequence() const { return kind_ == Kind::list || kind_ == Kind::tuple; }
  bool is_mapping() const { return kind_ == Kind::dict; }
  bool is_namespace() const { return kind_ == Kind::name_space; }

  int64_t as_int() const { return int_; }  // integers and booleans
  double as_double() const { return kind_ == Kind::floating ? float_ : static_cast<double>(int_); }
  // The string; a function's name; why a value is undefined.
  const std::string& str() const {
    static const std::string kEmpty;
    return string_ ? *string_ : kEmpty;
  }
  const List& items() const { return *list_; }
  const Dict& members() const { return *dict_; }
  Dict& namespace_members() const { return *dict_; }  // a namespace is the one mutable value
  int depth() const { return depth_; }                // nesting of lists and dicts

  const Value* find(std::string_view key) const {
    if (kind_ != Kind::dict && kind_ != Kind::name_space) return nullptr;
    for (const auto& [k, v] : *dict_)
      if (k == key) return &v;
    return nullptr;
  }
  bool same_object(const Value& other) const {
    return kind_ == other.kind_ && string_ == other.string_ && list_ == other.list_ && dict_ == other.dict_;
  }

  // Python truthiness; undefined is false.
  bool truthy() const {
    switch (kind_) {
      case Kind::undefined:
      case Kind::none: return false;
      case Kind::boolean:
      case Kind::integer: return int_ != 0;
      case Kind::floating: return float_ != 0;
      case Kind::string: return !str().empty();
      case Kind::list:
      case Kind::tuple: return !list_->empty();
      case Kind::dict: return !dict_->empty();
      case Kind::name_space:
      case Kind::function:
      case Kind::loop: return true;
    }
    return false;
  }

  // The type name Python's error messages use.
  const char* type_name() const {
    switch (kind_) {
      case Kind::undefined: return "Undefined";
      case Kind::none: return "NoneType";
      case Kind::boolean: return "bool";
      case Kind::integer: return "int";
      case Kind::floating: return "float";
      case Kind::string: return "str";
      case Kind::list: return "list";
      case Kind::tuple: return "tuple";
      case Kind::dict: return "dict";
      case Kind::name_space: return "Namespace";
      case Kind::function: return "function";
      case Kind::loop: return "LoopContext";
    }
    return "object";
  }

 private:
  static Value with_kind(Kind kind) {
    Value v;
    v.kind_ = kind;
    return v;
  }

  Kind kind_ = Kind::undefined;
  int depth_ = 0;
  int64_t int_ = 0;
  double float_ = 0;
  std::shared_ptr<const std::string> string_;  // shared: message contents are copied often
  std::shared_ptr<List> list_;
  std::shared_ptr<Dict> dict_;
};

inline void append_repr(std::string& out, const Value& v);

// Python's str(value), which is what `{{ value }}` prints; undefined prints nothing.
inline void append_str(std::string& out, const Value& v) {
  using K = Value::Kind;
  switch (v.kind()) {
    case K::undefined: return;
    case K::none: out += "None"; return;
    case K::boolean: out += v.as_int() ? "True" : "False"; return;
    case K::integer: out += std::to_string(v.as_int()); return;
    case K::floating: out += text::float_repr(v.as_double()); return;
    case K::string: out += v.str(); return;
    case K::list:
    case K::tuple: {
      const bool tuple = v.kind() == K::tuple;
      out += tuple ? '(' : '[';
      for (size_t i = 0; i < v.items().size() && out.size() <= kMaxStringBytes; ++i) {
        if (i) out += ", ";
        append_repr(out, v.items()[i]);
      }
      if (tuple && v.items().size() == 1) out += ',';
      out += tuple ? ')' : ']';
      return;
    }
    case K::dict: {
      out += '{';
      bool first = true;
      for (const auto& [key, value] : v.members()) {
        if (out.size() > kMaxStringBytes) break;  // the caller reports the size
        if (!first) out += ", ";
        first = false;
        out += text::string_repr(key);
        out += ": ";
        append_repr(out, value);
      }
      out += '}';
      return;
    }
    // Members are not printed: a namespace may hold itself.
    case K::name_space: out += "<Namespace>"; return;
    case K::function:
      if (const Value* self = v.bound_self())
        out += "<built-in method " + v.str() + " of " + self->type_name() + " object>";
      else
        out += "<function " + v.str() + ">";
      return;
    case K::loop:
      out += "<LoopContext " + std::to_string(v.as_int() + 1) + "/" + std::to_string(v.items().size()) + ">";
      return;
  }
}

inline void append_repr(std::string& out, const Value& v) {
  if (v.is_string())
    out += text::string_repr(v.str());
  else if (v.is_undefined())
    out += "Undefined";
  else
    append_str(out, v);
}

inline std::string to_str(const Value& v) {
  std::string out;
  append_str(out, v);
  return out;
}

// ---- Lexer ----
//
// Follows jinja2's lexer rules with trim_blocks and lstrip_blocks on: `{%-` and
// `{{-` strip all whitespace before the tag, `-%}` and `-}}` all after; a block or
// comment tag alone on its line loses the indentation before it (unless `{%+`) and
// the newline after it (unless `+%}`); CRLF and CR read as LF; one trailing newline
// of the template is dropped.

enum class Tok : uint8_t {
  text,
  print_begin,
  print_end,
  block_begin,
  block_end,
  name,
  string,
  integer,
  floating,
  op,
  end
};

struct Token {
  Tok type;
  int line;
  std::string text;  // text, name, string (unescaped), op
  int64_t integer = 0;
  double floating = 0;
};

inline Error template_error(int line, std::string what, Errc code = Errc::format) {
  return make_error(code, "chat template line " + std::to_string(line) + ": " + what);
}

class Lexer {
 public:
  explicit Lexer(std::string_view source) {
    src_.reserve(source.size());
    for (size_t i = 0; i < source.size(); ++i) {
      if (source[i] != '\r') {
        src_ += source[i];
      } else {
        src_ += '\n';
        if (i + 1 < source.size() && source[i + 1] == '\n') ++i;
      }
    }
    if (!src_.empty() && src_.back() == '\n') src_.pop_back();
  }

  Result<std::vector<Token>> run() {
    while (pos_ < src_.size()) {
      size_t start = src_.find('{', pos_);
      while (start != std::string::npos && start + 1 < src_.size() && !is_tag_char(src_[start + 1]))
        start = src_.find('{', start + 1);
      if (start == std::string::npos || start + 1 >= src_.size()) {
        add_text(src_.substr(pos_), src_.size());
        break;
      }
      const char kind = src_[start + 1];
      size_t after = start + 2;
      const char sign = after < src_.size() && (src_[after] == '-' || src_[after] == '+') ? src_[after] : 0;
      std::string_view before = std::string_view(src_).substr(pos_, start - pos_);
      add_text(left_strip(before, sign, kind != '{'), start);
      if (sign) ++after;
      pos_ = after;
      if (kind == '#') {
        EMBER_TRY_VOID(comment());
      } else if (kind == '%' && raw_begin(after)) {
        EMBER_TRY_VOID(raw());
      } else {
        EMBER_TRY_VOID(tag(kind == '{'));
      }
    }
    tokens_.push_back({Tok::end, line_, ""});
    return std::move(tokens_);
  }

 private:
  static bool is_tag_char(char c) { return c == '{' || c == '%' || c == '#'; }
  static bool is_digit(char c) { return c >= '0' && c <= '9'; }
  static bool is_name_start(char c) { return text::is_ascii_alpha(c) || c == '_'; }

  int count_lines(size_t from, size_t to) const {
    return static_cast<int>(std::count(src_.begin() + static_cast<std::ptrdiff_t>(from),
                                       src_.begin() + static_cast<std::ptrdiff_t>(to), '\n'));
  }

  // Text before a tag; `end` is where the unstripped text ends, for line counting.
  void add_text(std::string_view text, size_t end) {
    if (!text.empty()) tokens_.push_back({Tok::text, line_, std::string(text)});
    line_ += count_lines(pos_, end);
  }

  std::string_view left_strip(std::string_view text, char sign, bool lstrip_allowed) const {
    if (sign == '-') return text::strip(text, false, true);
    if (sign == '+' || !lstrip_allowed) return text;
    size_t line_begin = text.rfind('\n');
    line_begin = line_begin == std::string_view::npos ? 0 : line_begin + 1;
    if ((line_begin > 0 || line_starting_) && line_begin < text.size() && text::all_space(text.substr(line_begin)))
      return text.substr(0, line_begin);
    return text;
  }

  // After a tag's closing characters: `-` eats all whitespace, a plain block end one newline.
  void finish_tag(size_t end, char sign, bool trim_newline) {
    if (sign == '-') {
      while (end < src_.size()) {
        text::Char c = text::decode(src_, end);
        if (!text::is_space(c.cp)) break;
        end += c.size;
      }
    } else if (sign == 0 && trim_newline && end < src_.size() && src_[end] == '\n') {
      ++end;
    }
    line_starting_ = end > 0 && src_[end - 1] == '\n';
    line_ += count_lines(pos_, end);
    pos_ = end;
  }

  // Where `close` (e.g. "#}") first appears with an optional -/+ before it, from pos_.
  size_t find_close(std::string_view close, char* sign) const {
    for (size_t p = pos_; p + close.size() <= src_.size(); ++p) {
      if ((src_[p] == '-' || src_[p] == '+') && src_.compare(p + 1, close.size(), close) == 0) {
        *sign = src_[p];
        return p;
      }
      if (src_.compare(p, close.size(), close) == 0) {
        *sign = 0;
        return p;
      }
    }
    return std::string::npos;
  }

  Result<void> comment() {
    char sign = 0;
    size_t p = find_close("#}", &sign);
    if (p == std::string::npos && pos_ == src_.size()) return {};  // jinja2 lets a bare "{#" end the template
    if (p == std::string::npos) return template_error(line_, "unclosed comment '{#'");
    finish_tag(p + (sign ? 3 : 2), sign, true);
    return {};
  }

  size_t skip_space(size_t p) const {
    while (p < src_.size()) {
      text::Char c = text::decode(src_, p);
      if (!text::is_space(c.cp)) break;
      p += c.size;
    }
    return p;
  }

  // `{% raw %}`: the next tag is raw; `after` is past "{%" and its sign.
  bool raw_begin(size_t after) {
    size_t p = skip_space(after);
    if (src_.compare(p, 3, "raw") != 0) return false;
    p = skip_space(p + 3);
    if (src_.compare(p, 3, "-%}") == 0) {
      raw_body_ = skip_space(p + 3);
      return true;
    }
    if (src_.compare(p, 2, "%}") == 0) {
      raw_body_ = p + 2;
      return true;
    }
    return false;
  }

  Result<void> raw() {
    const int open_line = line_;
    line_ += count_lines(pos_, raw_body_);
    pos_ = raw_body_;
    line_starting_ = src_[raw_body_ - 1] == '\n';
    for (size_t p = src_.find("{%", pos_); p != std::string::npos; p = src_.find("{%", p + 1)) {
      size_t q = p + 2;
      const char sign = q < src_.size() && (src_[q] == '-' || src_[q] == '+') ? src_[q] : 0;
      if (sign) ++q;
      q = skip_space(q);
      if (src_.compare(q, 6, "endraw") != 0) continue;
      q = skip_space(q + 6);
      char end_sign = 0;
      if (src_.compare(q, 3, "-%}") == 0 || src_.compare(q, 3, "+%}") == 0)
        end_sign = src_[q];
      else if (src_.compare(q, 2, "%}") != 0)
        continue;
      std::string_view body = std::string_view(src_).substr(pos_, p - pos_);
      add_text(left_strip(body, sign, true), p);
      pos_ = p;
      finish_tag(q + (end_sign ? 3 : 2), end_sign, true);
      return {};
    }
    return template_error(open_line, "unclosed '{% raw %}': expected '{% endraw %}'");
  }

  // The inside of `{{ ... }}` or `{% ... %}`, up to and including its end.
  Result<void> tag(bool print) {
    const int open_line = line_;
    tokens_.push_back({print ? Tok::print_begin : Tok::block_begin, line_, ""});
    std::string expected_closers;  // brackets still open: `}}` inside `{'a': {}}` closes the dict
    while (true) {
      if (pos_ >= src_.size())
        return template_error(open_line, print ? "unclosed '{{': expected '}}'" : "unclosed '{%': expected '%}'");
      if (expected_closers.empty()) {
        std::string_view close = print ? "}}" : "%}";
        const char sign = src_[pos_] == '-' || (src_[pos_] == '+' && !print) ? src_[pos_] : 0;
        if (src_.compare(pos_ + (sign ? 1 : 0), 2, close) == 0) {
          tokens_.push_back({print ? Tok::print_end : Tok::block_end, line_, ""});
          finish_tag(pos_ + (sign ? 3 : 2), sign, !print);
          return {};
        }
      }
      size_t p = skip_space(pos_);
      if (p != pos_) {
        line_ += count_lines(pos_, p);
        pos_ = p;
        continue;
      }
      EMBER_TRY_VOID(token(expected_closers));
    }
  }

  // (\d+_)*\d+ : digits, single underscores between them.
  size_t digits(size_t p) const {
    if (p >= src_.size() || !is_digit(src_[p])) return std::string::npos;
    while (true) {
      while (p < src_.size() && is_digit(src_[p])) ++p;
      if (p + 1 < src_.size() && src_[p] == '_' && is_digit(src_[p + 1]))
        ++p;
      else
        return p;
    }
  }

  // jinja's float_re, tried before integers: 1.5, 1e5, 1.5e-3 (not after a '.').
  size_t float_end(size_t p) const {
    if (p > 0 && src_[p - 1] == '.') return std::string::npos;
    size_t q = digits(p);
    if (q == std::string::npos) return q;
    size_t exponent_at = q;
    if (q < src_.size() && src_[q] == '.') {
      size_t f = digits(q + 1);
      if (f != std::string::npos) exponent_at = f;
    }
    if (exponent_at < src_.size() && (src_[exponent_at] == 'e' || src_[exponent_at] == 'E')) {
      size_t e = exponent_at + 1;
      if (e < src_.size() && (src_[e] == '+' || src_[e] == '-')) ++e;
      size_t end = digits(e);
      if (end != std::string::npos) return end;
    }
    return exponent_at != q ? exponent_at : std::string::npos;
  }

  Result<void> token(std::string& expected_closers) {
    const char c = src_[pos_];
    auto push = [&](Tok type, size_t end) {
      tokens_.push_back({type, line_, src_.substr(pos_, end - pos_)});
      pos_ = end;
    };
    if (size_t end = float_end(pos_); end != std::string::npos) {
      std::string digits_only;
      for (size_t i = pos_; i < end; ++i)
        if (src_[i] != '_') digits_only += src_[i];
      double d = 0;
      auto [ptr, ec] = std::from_chars(digits_only.data(), digits_only.data() + digits_only.size(), d);
      if (ec != std::errc() && ec != std::errc::result_out_of_range)
        return template_error(line_, "bad number '" + digits_only + "'");
      if (ec == std::errc::result_out_of_range) {  // Python reads these as inf or 0.0
        const bool tiny = digits_only.find("e-") != std::string::npos || digits_only.find("E-") != std::string::npos;
        d = tiny ? 0.0 : HUGE_VAL;
      }
      push(Tok::floating, end);
      tokens_.back().floating = d;
      return {};
    }
    if (is_digit(c)) return integer();
    if (is_name_start(c)) {
      size_t end = pos_;
      while (end < src_.size() && (is_name_start(src_[end]) || is_digit(src_[end]))) ++end;
      push(Tok::name, end);
      return {};
    }
    if (c == '\'' || c == '"') return string_literal();
    static constexpr std::string_view kTwoCharOps[] = {"//", "**", "==", "!=", ">=", "<="};
    for (std::string_view op : kTwoCharOps) {
      if (src_.compare(pos_, 2, op) == 0) {
        push(Tok::op, pos_ + 2);
        return {};
      }
    }
    if (std::string_view("+-/*%~[](){}=.:|,;<>").find(c) == std::string_view::npos)
      return template_error(line_, std::string("unexpected character '") + c + "'");
    if (c == '(' || c == '[' || c == '{') {
      expected_closers += c == '(' ? ')' : c == '[' ? ']' : '}';
    } else if (c == ')' || c == ']' || c == '}') {
      if (expected_closers.empty()) return template_error(line_, std::string("unexpected '") + c + "'");
      if (expected_closers.back() != c)
        return template_error(line_, std::string("unexpected '") + c + "', expected '" + expected_closers.back() + "'");
      expected_closers.pop_back();
    }
    push(Tok::op, pos_ + 1);
    return {};
  }

  // 42, 1_000, 0x1F, 0o17, 0b101 (jinja's integer_re).
  Result<void> integer() {
    int base = 10;
    size_t p = pos_;
    if (src_[p] == '0' && p + 1 < src_.size()) {
      char prefix = text::lower(src_[p + 1]);
      base = prefix == 'x' ? 16 : prefix == 'o' ? 8 : prefix == 'b' ? 2 : 10;
    }
    auto is_base_digit = [&](char ch) {
      ch = text::lower(ch);
      if (base == 16) return is_digit(ch) || (ch >= 'a' && ch <= 'f');
      return ch >= '0' && ch < static_cast<char>('0' + base);
    };
    std::string digits_only;
    if (base != 10) {  // 0x(_?[0-9a-f])+ and the like
      size_t q = p + 2;
      while (true) {
        if (q + 1 < src_.size() && src_[q] == '_' && is_base_digit(src_[q + 1])) ++q;
        if (q >= src_.size() || !is_base_digit(src_[q])) break;
        digits_only += src_[q++];
      }
      if (digits_only.empty())
        base = 10;  // "0x" alone: the 0, then a name
      else
        p = q;
    }
    if (base == 10) {
      digits_only.clear();
      if (src_[p] == '0') {  // 0(_?0)*
        ++p;
        while (p < src_.size() && (src_[p] == '0' || (src_[p] == '_' && p + 1 < src_.size() && src_[p + 1] == '0')))
          ++p;
        digits_only = "0";
      } else {
        size_t end = digits(p);
        for (size_t i = p; i < end; ++i)
          if (src_[i] != '_') digits_only += src_[i];
        p = end;
      }
    }
    int64_t value = 0;
    auto [ptr, ec] = std::from_chars(digits_only.data(), digits_only.data() + digits_only.size(), value, base);
    if (ec != std::errc()) return template_error(line_, "integer literal too large");
    tokens_.push_back({Tok::integer, line_, src_.substr(pos_, p - pos_), value});
    pos_ = p;
    return {};
  }

  // A quoted string with Python's escapes (\n, \t, \xhh, \uhhhh, \Uhhhhhhhh, octal;
  // unknown escapes stay as written).
  Result<void> string_literal() {
    const char quote = src_[pos_];
    const int start_line = line_;
    std::string out;
    size_t p = pos_ + 1;
    auto hex = [&](size_t at, int n, char32_t* value) {
      if (at + static_cast<size_t>(n) > src_.size()) return false;
      uint32_t v = 0;
      auto [ptr, ec] = std::from_chars(src_.data() + at, src_.data() + at + n, v, 16);
      *value = v;
      return ec == std::errc() && ptr == src_.data() + at + n;
    };
    while (true) {
      if (p >= src_.size()) return template_error(start_line, "unterminated string literal");
      char c = src_[p];
      if (c == quote) break;
      if (c != '\\') {
        out += c;
        ++p;
        continue;
      }
      if (p + 1 >= src_.size()) return template_error(start_line, "unterminated string literal");
      char e = src_[p + 1];
      p += 2;
      switch (e) {
        case '\n': break;
        case '\\': out += '\\'; break;
        case '\'': out += '\''; break;
        case '"': out += '"'; break;
        case 'a': out += '\a'; break;
        case 'b': out += '\b'; break;
        case 'f': out += '\f'; break;
        case 'n': out += '\n'; break;
        case 'r': out += '\r'; break;
        case 't': out += '\t'; break;
        case 'v': out += '\v'; break;
        case 'x':
        case 'u':
        case 'U': {
          const int n = e == 'x' ? 2 : e == 'u' ? 4 : 8;
          char32_t cp = 0;
          if (!hex(p, n, &cp)) return template_error(line_, std::string("truncated \\") + e + " escape in string");
          if (cp > 0x10FFFF) return template_error(line_, "illegal Unicode character in string");
          if (cp >= 0xD800 && cp < 0xE000) cp = 0xFFFD;  // lone surrogates cannot be UTF-8
          text::append_utf8(out, cp);
          p += static_cast<size_t>(n);
          break;
        }
        case 'N': return template_error(line_, "\\N{...} escapes are not supported", Errc::unsupported);
        default:
          if (e >= '0' && e <= '7') {
            char32_t cp = static_cast<char32_t>(e - '0');
            for (int i = 0; i < 2 && p < src_.size() && src_[p] >= '0' && src_[p] <= '7'; ++i)
              cp = cp * 8 + static_cast<char32_t>(src_[p++] - '0');
            text::append_utf8(out, cp);
          } else {
            out += '\\';
            out += e;
          }
      }
    }
    tokens_.push_back({Tok::string, line_, std::move(out)});
    line_ += count_lines(pos_, p);
    pos_ = p + 1;
    return {};
  }

  std::string src_;
  size_t pos_ = 0;
  int line_ = 1;
  bool line_starting_ = true;  // the last tag ended a line (or nothing came yet): lstrip may apply
  size_t raw_body_ = 0;
  std::vector<Token> tokens_;
};

// ---- Syntax tree ----

enum class Op : uint8_t { add, sub, mul, div, floordiv, mod, pow, eq, ne, lt, le, gt, ge, in, not_in };

struct Expr {
  enum class Kind : uint8_t {
    literal,      // value
    variable,     // name
    list,         // args: the items
    tuple,        // args: the items
    dict,         // args: key, value, key, value, ...
    attribute,    // args[0].name
    item,         // args[0][args[1]]
    slice,        // args[0][args[1]:args[2]:args[3]], a none literal where omitted
    call,         // args[0](args[1...]); `keywords` names the last arguments
    filter,       // args[0] | name(args[1...])
    test,         // args[0] is [not] name(args[1...])
    negative,     // -args[0]
    positive,     // +args[0]
    logical_not,  // not args[0]
    binary,       // args[0] op args[1]
    logical_and,  // args[0] and args[1]
    logical_or,   // args[0] or args[1]
    conditional,  // args[1] if args[0] else args[2]; no args[2]: undefined
    concat,       // args[0] ~ args[1] ~ ...
  };
  Kind kind = Kind::literal;
  Op op = Op::add;
  bool negated = false;  // `is not`
  int line = 0;
  std::string name;
  Value value;
  std::vector<Expr> args;
  std::vector<std::string> keywords;
};

struct Stmt {
  enum class Kind : uint8_t {
    text,           // text
    print,          // {{ exprs[0] }}
    if_chain,       // if exprs[i]: bodies[i] ... and a last extra body is the else
    for_loop,       // for targets in exprs[0] (if exprs[1]): bodies[0], else bodies[1]
    set,            // targets = exprs[0], or targets[0].attribute = exprs[0]
    set_block,      // targets[0] = what bodies[0] prints
    loop_break,     // {% break %}
    loop_continue,  // {% continue %}
  };
  Kind kind = Kind::text;
  int line = 0;
  std::string text;
  std::string attribute;
  std::vector<std::string> targets;
  std::vector<Expr> exprs;
  std::vector<std::vector<Stmt>> bodies;
};

inline Stmt make_stmt(Stmt::Kind kind, int line, std::string text = "") {
  Stmt s;
  s.kind = kind;
  s.line = line;
  s.text = std::move(text);
  return s;
}

inline bool is_known_filter(std::string_view name) {
  static constexpr std::string_view kFilters[] = {
      "abs",        "capitalize", "count",  "d",          "default", "e",       "escape", "first",  "float",
      "indent",     "int",        "items",  "join",       "last",    "length",  "list",   "lower",  "map",
      "max",        "min",        "reject", "rejectattr", "replace", "reverse", "round",  "safe",   "select",
      "selectattr", "sort",       "string", "sum",        "title",   "tojson",  "trim",   "unique", "upper"};
  return std::find(std::begin(kFilters), std::end(kFilters), name) != std::end(kFilters);
}

inline bool is_known_test(std::string_view name) {
  static constexpr std::string_view kTests[] = {
      "boolean",  "callable", "defined", "divisibleby", "eq",        "equalto", "even",     "false",
      "float",    "ge",       "gt",      "greaterthan", "in",        "integer", "iterable", "le",
      "lessthan", "lower",    "lt",      "mapping",     "ne",        "none",    "number",   "odd",
      "sameas",   "sequence", "string",  "true",        "undefined", "upper"};
  return std::find(std::begin(kTests), std::end(kTests), name) != std::end(kTests);
}

// ---- Parser: tokens -> statements, by recursive descent in jinja2's precedence order ----
//
// Lowest first: `a if c else b`, or, and, not, comparisons (==, in, ...), + -, ~,
// * / // %, **, unary - +, then postfix: .attr [item] (call) | filter, is test.

class Parser {
 public:
  explicit Parser(std::vector<Token> tokens) : tokens_(std::move(tokens)) {}

  Result<std::vector<Stmt>> parse() {
    std::string found;
    EMBER_TRY(std::vector<Stmt> body, statements({}, &found));
    EMBER_TRY_VOID(check_names(body, false));
    return body;
  }

 private:
  struct Open {  // a block waiting for its end tag, for error messages
    std::string tag;
    int line;
  };

  // Keeps recursion (nested blocks and expressions) within kMaxNesting.
  class DepthGuard {
   public:
    explicit DepthGuard(int& depth) : depth_(depth) { ++depth_; }
    ~DepthGuard() { --depth_; }
    bool too_deep() const { return depth_ > kMaxNesting; }

   private:
    int& depth_;
  };

  // Loops that wrap the previous node (`a + b + c`, `x | f | g`, `x.a.b`) deepen the
  // tree without recursing here; this counts each wrap against the same limit.
  class ChainGuard {
   public:
    explicit ChainGuard(int& depth) : depth_(depth) {}
    ~ChainGuard() { depth_ -= added_; }
    bool deeper() {
      ++depth_;
      ++added_;
      return depth_ > kMaxNesting;
    }

   private:
    int& depth_;
    int added_ = 0;
  };

  const Token& current() const { return tokens_[pos_]; }
  const Token& peek() const { return tokens_[std::min(pos_ + 1, tokens_.size() - 1)]; }
  bool at_name(std::string_view word) const { return current().type == Tok::name && current().text == word; }
  bool at_op(std::string_view op) const { return current().type == Tok::op && current().text == op; }
  bool skip_name(std::string_view word) {
    if (!at_name(word)) return false;
    ++pos_;
    return true;
  }
  bool skip_op(std::string_view op) {
    if (!at_op(op)) return false;
    ++pos_;
    return true;
  }

  static std::string describe(const Token& t) {
    switch (t.type) {
      case Tok::end: return "the end of the template";
      case Tok::text: return "template text";
      case Tok::print_begin: return "'{{'";
      case Tok::print_end: return "'}}'";
      case Tok::block_begin: return "'{%'";
      case Tok::block_end: return "'%}'";
      case Tok::string: return "a string";
      default: return "'" + t.text + "'";
    }
  }

  Error error(std::string what, Errc code = Errc::format) const {
    return template_error(current().line, std::move(what), code);
  }
  Error unexpected(std::string_view expected) const {
    return error("expected " + std::string(expected) + ", found " + describe(current()));
  }
  Error too_deep() const { return error("template nested too deeply", Errc::out_of_range); }

  Result<void> expect_op(std::string_view op) {
    // Not "'" + std::string(op): GCC 12 warns a false -Wrestrict on that.
    if (!skip_op(op)) return unexpected(std::string("'").append(op).append("'"));
    return {};
  }
  Result<std::string> expect_name(std::string_view what) {
    if (current().type != Tok::name) return unexpected(what);
    return tokens_[pos_++].text;
  }
  Result<std::string> dotted_name(std::string_view what) {  // filter and test names may be dotted
    EMBER_TRY(std::string name, expect_name(what));
    while (skip_op(".")) {
      EMBER_TRY(std::string part, expect_name(what));
      name += "." + part;
    }
    return name;
  }
  Result<void> expect_block_end() {
    if (current().type != Tok::block_end) return unexpected("'%}'");
    ++pos_;
    return {};
  }
  // Before a block's body jinja2 allows a colon, Python style: `{% for x in xs: %}`.
  Result<void> expect_body_start() {
    skip_op(":");
    return expect_block_end();
  }

  static std::string tag_list(std::initializer_list<std::string_view> tags) {
    std::string out;
    for (std::string_view t : tags) out += (out.empty() ? "'{% " : " or '{% ") + std::string(t) + " %}'";
    return out;
  }

  // Statements until one of `end_tags`, which is consumed (its `%}` is not) and
  // returned in `found`; the template's end when `end_tags` is empty.
  Result<std::vector<Stmt>> statements(std::initializer_list<std::string_view> end_tags, std::string* found) {
    DepthGuard guard(depth_);
    if (guard.too_deep()) return too_deep();
    std::vector<Stmt> body;
    while (true) {
      const Token& t = current();
      if (t.type == Tok::text) {
        body.push_back(make_stmt(Stmt::Kind::text, t.line, t.text));
        ++pos_;
      } else if (t.type == Tok::print_begin) {
        ++pos_;
        Stmt print = make_stmt(Stmt::Kind::print, t.line);
        EMBER_TRY(Expr value, tuple_expression(true));
        print.exprs.push_back(std::move(value));
        if (current().type != Tok::print_end) return unexpected("'}}'");
        ++pos_;
        body.push_back(std::move(print));
      } else if (t.type == Tok::block_begin) {
        ++pos_;
        if (current().type == Tok::name &&
            std::find(end_tags.begin(), end_tags.end(), current().text) != end_tags.end()) {
          *found = tokens_[pos_++].text;
          return body;
        }
        EMBER_TRY_VOID(statement(body, end_tags));
      } else if (t.type == Tok::end) {
        if (end_tags.size() == 0) return body;
        const Open& open = open_.back();
        return template_error(open.line, "unclosed '{% " + open.tag + " %}': expected " + tag_list(end_tags) +
                                             " before the end of the template");
      } else {
        return unexpected("template text or a tag");
      }
    }
  }

  Result<void> statement(std::vector<Stmt>& body, std::initializer_list<std::string_view> end_tags) {
    if (current().type != Tok::name) return unexpected("a tag name");
    const std::string tag = current().text;
    const int line = current().line;
    if (tag == "for") return for_loop(body);
    if (tag == "if") return if_chain(body);
    if (tag == "set") return set(body);
    if (tag == "break" || tag == "continue") {
      ++pos_;
      if (loop_depth_ == 0) return template_error(line, "'{% " + tag + " %}' outside a for loop");
      EMBER_TRY_VOID(expect_block_end());
      body.push_back(make_stmt(tag == "break" ? Stmt::Kind::loop_break : Stmt::Kind::loop_continue, line));
      return {};
    }
    if (tag == "generation") {  // transformers marks assistant text with it; renders as its body
      ++pos_;
      EMBER_TRY_VOID(expect_body_start());
      open_.push_back({tag, line});
      std::string found;
      EMBER_TRY(std::vector<Stmt> inner, statements({"endgeneration"}, &found));
      open_.pop_back();
      EMBER_TRY_VOID(expect_block_end());
      for (Stmt& s : inner) body.push_back(std::move(s));
      return {};
    }
    static constexpr std::string_view kUnsupported[] = {"macro",   "call",  "filter", "include",    "import", "from",
                                                        "extends", "block", "with",   "autoescape", "do",     "trans"};
    if (std::find(std::begin(kUnsupported), std::end(kUnsupported), tag) != std::end(kUnsupported))
      return template_error(line, "'{% " + tag + " %}' is not supported", Errc::unsupported);
    if (tag.rfind("end", 0) == 0 || tag == "else" || tag == "elif") {
      if (open_.empty()) return template_error(line, "unexpected '{% " + tag + " %}'");
      return template_error(line, "unexpected '{% " + tag + " %}': expected " + tag_list(end_tags) +
                                      " to close the '{% " + open_.back().tag + " %}' on line " +
                                      std::to_string(open_.back().line));
    }
    return template_error(line, "unknown tag '" + tag + "'", Errc::unsupported);
  }

  // Loop or assignment targets: `x`, `k, v` or `(k, v)`.
  Result<std::vector<std::string>> targets() {
    std::vector<std::string> names;
    const bool parens = skip_op("(");
    do {
      if (parens && at_op(")")) break;
      EMBER_TRY(std::string name, expect_name("a variable name"));
      names.push_back(std::move(name));
    } while (skip_op(","));
    if (parens) EMBER_TRY_VOID(expect_op(")"));
    return names;
  }

  Result<void> for_loop(std::vector<Stmt>& body) {
    Stmt loop = make_stmt(Stmt::Kind::for_loop, current().line);
    ++pos_;
    EMBER_TRY(loop.targets, targets());
    if (!skip_name("in")) return unexpected("'in'");
    EMBER_TRY(Expr iterable, tuple_expression(false));
    loop.exprs.push_back(std::move(iterable));
    if (skip_name("if")) {
      EMBER_TRY(Expr filter, expression(true));
      loop.exprs.push_back(std::move(filter));
    }
    if (at_name("recursive")) return error("recursive loops are not supported", Errc::unsupported);
    EMBER_TRY_VOID(expect_body_start());
    open_.push_back({"for", loop.line});
    ++loop_depth_;
    std::string found;
    EMBER_TRY(std::vector<Stmt> inner, statements({"endfor", "else"}, &found));
    loop.bodies.push_back(std::move(inner));
    --loop_depth_;  // `break` in the else branch has no loop to leave
    if (found == "else") {
      EMBER_TRY_VOID(expect_body_start());
      EMBER_TRY(std::vector<Stmt> otherwise, statements({"endfor"}, &found));
      loop.bodies.push_back(std::move(otherwise));
    }
    open_.pop_back();
    EMBER_TRY_VOID(expect_block_end());
    body.push_back(std::move(loop));
    return {};
  }

  Result<void> if_chain(std::vector<Stmt>& body) {
    Stmt chain = make_stmt(Stmt::Kind::if_chain, current().line);
    ++pos_;
    open_.push_back({"if", chain.line});
    while (true) {
      EMBER_TRY(Expr condition, tuple_expression(false));
      chain.exprs.push_back(std::move(condition));
      EMBER_TRY_VOID(expect_body_start());
      std::string found;
      EMBER_TRY(std::vector<Stmt> branch, statements({"elif", "else", "endif"}, &found));
      chain.bodies.push_back(std::move(branch));
      if (found == "elif") continue;
      if (found == "else") {
        EMBER_TRY_VOID(expect_body_start());
        EMBER_TRY(std::vector<Stmt> otherwise, statements({"endif"}, &found));
        chain.bodies.push_back(std::move(otherwise));
      }
      break;
    }
    open_.pop_back();
    EMBER_TRY_VOID(expect_block_end());
    body.push_back(std::move(chain));
    return {};
  }

  Result<void> set(std::vector<Stmt>& body) {
    Stmt set = make_stmt(Stmt::Kind::set, current().line);
    ++pos_;
    if (current().type == Tok::name && peek().type == Tok::op && peek().text == ".") {  // set ns.attribute = ...
      set.targets.push_back(tokens_[pos_].text);
      pos_ += 2;
      EMBER_TRY(set.attribute, expect_name("an attribute name"));
    } else {
      EMBER_TRY(set.targets, targets());
    }
    if (skip_op("=")) {
      EMBER_TRY(Expr value, tuple_expression(true));
      set.exprs.push_back(std::move(value));
      EMBER_TRY_VOID(expect_block_end());
      body.push_back(std::move(set));
      return {};
    }
    if (!set.attribute.empty() || set.targets.size() != 1) return unexpected("'='");
    if (at_op("|")) return error("filtered '{% set %}' blocks are not supported", Errc::unsupported);
    EMBER_TRY_VOID(expect_body_start());
    set.kind = Stmt::Kind::set_block;
    open_.push_back({"set", set.line});
    std::string found;
    EMBER_TRY(std::vector<Stmt> inner, statements({"endset"}, &found));
    open_.pop_back();
    set.bodies.push_back(std::move(inner));
    EMBER_TRY_VOID(expect_block_end());
    body.push_back(std::move(set));
    return {};
  }

  // ---- expressions ----

  static Expr node(Expr::Kind kind, int line, std::vector<Expr> args = {}) {
    Expr e;
    e.kind = kind;
    e.line = line;
    e.args = std::move(args);
    return e;
  }
  static Expr literal(Value v, int line) {
    Expr e = node(Expr::Kind::literal, line);
    e.value = std::move(v);
    return e;
  }

  bool at_tuple_end() const {
    return current().type == Tok::block_end || current().type == Tok::print_end || at_op(")") ||
           current().type == Tok::end;
  }

  // `a, b` is a tuple where jinja allows one: printed values, set values, loop iterables.
  Result<Expr> tuple_expression(bool with_conditional) {
    const int line = current().line;
    EMBER_TRY(Expr first, expression(with_conditional));
    if (!at_op(",")) return first;
    Expr tuple = node(Expr::Kind::tuple, line);
    tuple.args.push_back(std::move(first));
    while (skip_op(",") && !at_tuple_end()) {
      EMBER_TRY(Expr item, expression(with_conditional));
      tuple.args.push_back(std::move(item));
    }
    return tuple;
  }

  Result<Expr> expression(bool with_conditional) {
    DepthGuard guard(depth_);
    if (guard.too_deep()) return too_deep();
    const int line = current().line;
    EMBER_TRY(Expr value, or_expression());
    ChainGuard chain(depth_);
    while (with_conditional && skip_name("if")) {
      if (chain.deeper()) return too_deep();
      EMBER_TRY(Expr condition, or_expression());
      Expr conditional = node(Expr::Kind::conditional, line);
      conditional.args.push_back(std::move(condition));
      conditional.args.push_back(std::move(value));
      if (skip_name("else")) {
        EMBER_TRY(Expr otherwise, expression(true));
        conditional.args.push_back(std::move(otherwise));
      }
      value = std::move(conditional);
    }
    return value;
  }

  Result<Expr> or_expression() {
    EMBER_TRY(Expr left, and_expression());
    ChainGuard chain(depth_);
    while (at_name("or")) {
      if (chain.deeper()) return too_deep();
      const int line = current().line;
      ++pos_;
      EMBER_TRY(Expr right, and_expression());
      std::vector<Expr> args;
      args.push_back(std::move(left));
      args.push_back(std::move(right));
      left = node(Expr::Kind::logical_or, line, std::move(args));
    }
    return left;
  }

  Result<Expr> and_expression() {
    EMBER_TRY(Expr left, not_expression());
    ChainGuard chain(depth_);
    while (at_name("and")) {
      if (chain.deeper()) return too_deep();
      const int line = current().line;
      ++pos_;
      EMBER_TRY(Expr right, not_expression());
      std::vector<Expr> args;
      args.push_back(std::move(left));
      args.push_back(std::move(right));
      left = node(Expr::Kind::logical_and, line, std::move(args));
    }
    return left;
  }

  Result<Expr> not_expression() {
    if (!at_name("not")) return comparison();
    DepthGuard guard(depth_);
    if (guard.too_deep()) return too_deep();
    const int line = current().line;
    ++pos_;
    EMBER_TRY(Expr operand, not_expression());
    std::vector<Expr> args;
    args.push_back(std::move(operand));
    return node(Expr::Kind::logical_not, line, std::move(args));
  }

  static Expr binary(Op op, int line, Expr left, Expr right) {
    Expr e = node(Expr::Kind::binary, line);
    e.op = op;
    e.args.push_back(std::move(left));
    e.args.push_back(std::move(right));
    return e;
  }

  // `a < b < c` means `a < b and b < c`, as in Python.
  Result<Expr> comparison() {
    EMBER_TRY(Expr left, sum());
    Expr chain;
    bool chained = false;
    ChainGuard guard(depth_);
    while (true) {
      if (guard.deeper()) return too_deep();
      const int line = current().line;
      Op op;
      if (at_op("=="))
        op = Op::eq;
      else if (at_op("!="))
        op = Op::ne;
      else if (at_op("<"))
        op = Op::lt;
      else if (at_op("<="))
        op = Op::le;
      else if (at_op(">"))
        op = Op::gt;
      else if (at_op(">="))
        op = Op::ge;
      else if (at_name("in"))
        op = Op::in;
      else if (at_name("not") && peek().type == Tok::name && peek().text == "in")
        op = Op::not_in, ++pos_;
      else
        break;
      ++pos_;
      EMBER_TRY(Expr right, sum());
      Expr step = binary(op, line, left, right);
      if (chained) {
        std::vector<Expr> both;
        both.push_back(std::move(chain));
        both.push_back(std::move(step));
        chain = node(Expr::Kind::logical_and, line, std::move(both));
      } else {
        chain = std::move(step);
        chained = true;
      }
      left = std::move(right);
    }
    return chained ? chain : left;
  }

  Result<Expr> sum() {
    EMBER_TRY(Expr left, concatenation());
    ChainGuard chain(depth_);
    while (at_op("+") || at_op("-")) {
      if (chain.deeper()) return too_deep();
      const Op op = at_op("+") ? Op::add : Op::sub;
      const int line = current().line;
      ++pos_;
      EMBER_TRY(Expr right, concatenation());
      left = binary(op, line, std::move(left), std::move(right));
    }
    return left;
  }

  Result<Expr> concatenation() {
    const int line = current().line;
    EMBER_TRY(Expr first, product());
    if (!at_op("~")) return first;
    Expr concat = node(Expr::Kind::concat, line);
    concat.args.push_back(std::move(first));
    while (skip_op("~")) {
      EMBER_TRY(Expr next, product());
      concat.args.push_back(std::move(next));
    }
    return concat;
  }

  Result<Expr> product() {
    EMBER_TRY(Expr left, power());
    ChainGuard chain(depth_);
    while (true) {
      if (chain.deeper()) return too_deep();
      Op op;
      if (at_op("*"))
        op = Op::mul;
      else if (at_op("/"))
        op = Op::div;
      else if (at_op("//"))
        op = Op::floordiv;
      else if (at_op("%"))
        op = Op::mod;
      else
        break;
      const int line = current().line;
      ++pos_;
      EMBER_TRY(Expr right, power());
      left = binary(op, line, std::move(left), std::move(right));
    }
    return left;
  }

  Result<Expr> power() {  // left-associative in jinja: 2 ** 3 ** 2 == 64
    EMBER_TRY(Expr left, unary(true));
    ChainGuard chain(depth_);
    while (at_op("**")) {
      if (chain.deeper()) return too_deep();
      const int line = current().line;
      ++pos_;
      EMBER_TRY(Expr right, unary(true));
      left = binary(Op::pow, line, std::move(left), std::move(right));
    }
    return left;
  }

  // jinja applies filters after the sign: `-3 | abs` is abs(-3).
  Result<Expr> unary(bool with_filters) {
    DepthGuard guard(depth_);
    if (guard.too_deep()) return too_deep();
    const int line = current().line;
    Expr value;
    if (at_op("-") || at_op("+")) {
      const auto kind = at_op("-") ? Expr::Kind::negative : Expr::Kind::positive;
      ++pos_;
      EMBER_TRY(Expr operand, unary(false));
      std::vector<Expr> args;
      args.push_back(std::move(operand));
      value = node(kind, line, std::move(args));
    } else {
      EMBER_TRY(value, primary());
    }
    EMBER_TRY(value, postfix(std::move(value)));
    if (with_filters) {
      EMBER_TRY(value, filters_and_tests(std::move(value)));
    }
    return value;
  }

  Result<Expr> primary() {
    const Token& t = current();
    const int line = t.line;
    switch (t.type) {
      case Tok::name: {
        ++pos_;
        if (t.text == "true" || t.text == "True") return literal(Value::boolean(true), line);
        if (t.text == "false" || t.text == "False") return literal(Value::boolean(false), line);
        if (t.text == "none" || t.text == "None") return literal(Value::none(), line);
        Expr variable = node(Expr::Kind::variable, line);
        variable.name = t.text;
        return variable;
      }
      case Tok::string: {  // adjacent literals join, as in Python
        std::string s;
        while (current().type == Tok::string) s += tokens_[pos_++].text;
        return literal(Value::string(std::move(s)), line);
      }
      case Tok::integer: ++pos_; return literal(Value::integer(t.integer), line);
      case Tok::floating: ++pos_; return literal(Value::floating(t.floating), line);
      case Tok::op:
        if (t.text == "(") return parenthesized();
        if (t.text == "[") return list_literal();
        if (t.text == "{") return dict_literal();
        break;
      default: break;
    }
    return unexpected("a value");
  }

  // (a) is a, (a,) and (a, b) are tuples, () is the empty tuple.
  Result<Expr> parenthesized() {
    const int line = current().line;
    ++pos_;
    Expr tuple = node(Expr::Kind::tuple, line);
    if (skip_op(")")) return tuple;
    EMBER_TRY(Expr first, expression(true));
    if (skip_op(")")) return first;
    tuple.args.push_back(std::move(first));
    while (skip_op(",") && !at_op(")")) {
      EMBER_TRY(Expr item, expression(true));
      tuple.args.push_back(std::move(item));
    }
    EMBER_TRY_VOID(expect_op(")"));
    return tuple;
  }

  Result<Expr> list_literal() {
    Expr list = node(Expr::Kind::list, current().line);
    ++pos_;
    while (!at_op("]")) {
      if (!list.args.empty()) EMBER_TRY_VOID(expect_op(","));
      if (at_op("]")) break;
      EMBER_TRY(Expr item, expression(true));
      list.args.push_back(std::move(item));
    }
    ++pos_;
    return list;
  }

  Result<Expr> dict_literal() {
    Expr dict = node(Expr::Kind::dict, current().line);
    ++pos_;
    while (!at_op("}")) {
      if (!dict.args.empty()) EMBER_TRY_VOID(expect_op(","));
      if (at_op("}")) break;
      EMBER_TRY(Expr key, expression(true));
      EMBER_TRY_VOID(expect_op(":"));
      EMBER_TRY(Expr value, expression(true));
      dict.args.push_back(std::move(key));
      dict.args.push_back(std::move(value));
    }
    ++pos_;
    return dict;
  }

  Result<Expr> postfix(Expr value) {
    ChainGuard chain(depth_);
    while (true) {
      if (chain.deeper()) return too_deep();
      const int line = current().line;
      if (skip_op(".")) {
        if (current().type == Tok::integer) {  // messages.0 is messages[0]
          std::vector<Expr> args;
          args.push_back(std::move(value));
          args.push_back(literal(Value::integer(tokens_[pos_++].integer), line));
          value = node(Expr::Kind::item, line, std::move(args));
          continue;
        }
        EMBER_TRY(std::string name, expect_name("an attribute name"));
        std::vector<Expr> args;
        args.push_back(std::move(value));
        value = node(Expr::Kind::attribute, line, std::move(args));
        value.name = std::move(name);
      } else if (at_op("[")) {
        EMBER_TRY(value, subscript(std::move(value)));
      } else if (at_op("(")) {
        EMBER_TRY(value, call(std::move(value), Expr::Kind::call, ""));
      } else {
        return value;
      }
    }
  }

  // x[i] or x[start:stop:step]; x[] and x[a, b] index with a tuple (which finds nothing).
  Result<Expr> subscript(Expr value) {
    const int line = current().line;
    ++pos_;
    std::vector<Expr> args;
    args.push_back(std::move(value));
    if (at_op("]")) {
      ++pos_;
      args.push_back(node(Expr::Kind::tuple, line));
      return node(Expr::Kind::item, line, std::move(args));
    }
    if (!at_op(":")) {
      EMBER_TRY(Expr index, expression(true));
      if (at_op(",")) {
        Expr tuple = node(Expr::Kind::tuple, line);
        tuple.args.push_back(std::move(index));
        while (skip_op(",") && !at_op("]")) {
          EMBER_TRY(Expr next, expression(true));
          tuple.args.push_back(std::move(next));
        }
        index = std::move(tuple);
      }
      if (skip_op("]")) {
        args.push_back(std::move(index));
        return node(Expr::Kind::item, line, std::move(args));
      }
      if (!at_op(":") || index.kind == Expr::Kind::tuple) return unexpected("']' or ':'");
      args.push_back(std::move(index));
    } else {
      args.push_back(literal(Value::none(), line));
    }
    ++pos_;  // ':'
    for (int part = 0; part < 2; ++part) {
      if (at_op("]") || at_op(":")) {
        args.push_back(literal(Value::none(), line));
      } else {
        EMBER_TRY(Expr bound, expression(true));
        args.push_back(std::move(bound));
      }
      if (part == 0 && !skip_op(":")) {
        args.push_back(literal(Value::none(), line));
        break;
      }
    }
    EMBER_TRY_VOID(expect_op("]"));
    return node(Expr::Kind::slice, line, std::move(args));
  }

  // Arguments in parentheses: positional first, then name=value.
  Result<Expr> call(Expr callee, Expr::Kind kind, std::string name) {
    Expr e = node(kind, current().line);
    e.name = std::move(name);
    e.args.push_back(std::move(callee));
    if (!skip_op("(")) return e;
    while (!at_op(")")) {
      if (e.args.size() > 1) EMBER_TRY_VOID(expect_op(","));
      if (at_op(")")) break;
      if (at_op("*") || at_op("**")) return error("*args and **kwargs are not supported", Errc::unsupported);
      std::string keyword;
      if (current().type == Tok::name && peek().type == Tok::op && peek().text == "=") {
        keyword = tokens_[pos_].text;
        pos_ += 2;
      } else if (!e.keywords.empty()) {
        return error("positional argument after a keyword argument");
      }
      EMBER_TRY(Expr argument, expression(true));
      e.args.push_back(std::move(argument));
      if (!keyword.empty()) e.keywords.push_back(std::move(keyword));
    }
    ++pos_;
    return e;
  }

  Result<Expr> filters_and_tests(Expr value) {
    ChainGuard chain(depth_);
    while (true) {
      if (chain.deeper()) return too_deep();
      const int line = current().line;
      if (skip_op("|")) {
        EMBER_TRY(std::string name, dotted_name("a filter name"));
        EMBER_TRY(value, call(std::move(value), Expr::Kind::filter, std::move(name)));
      } else if (skip_name("is")) {
        const bool negated = skip_name("not");
        EMBER_TRY(std::string name, dotted_name("a test name"));
        const Tok next = current().type;
        const bool bare_argument = (next == Tok::name || next == Tok::string || next == Tok::integer ||
                                    next == Tok::floating || at_op("[") || at_op("{")) &&
                                   !at_name("else") && !at_name("or") && !at_name("and");
        if (bare_argument) {  // `x is divisibleby 3`
          Expr test = node(Expr::Kind::test, line);
          test.name = std::move(name);
          test.args.push_back(std::move(value));
          EMBER_TRY(Expr argument, primary());
          EMBER_TRY(argument, postfix(std::move(argument)));
          test.args.push_back(std::move(argument));
          value = std::move(test);
        } else {
          EMBER_TRY(value, call(std::move(value), Expr::Kind::test, std::move(name)));
        }
        value.negated = negated;
      } else if (at_op("(")) {
        EMBER_TRY(value, call(std::move(value), Expr::Kind::call, ""));
      } else {
        return value;
      }
    }
  }

  // Unknown filters and tests are errors here, as jinja2 reports them when it
  // compiles, except inside `if` blocks and inline ifs (`soft`), where jinja2
  // waits until they run: a branch the conversation never takes may use them.
  static Result<void> check_names(const Expr& e, bool soft) {
    soft = soft || e.kind == Expr::Kind::conditional;
    if (!soft && e.kind == Expr::Kind::filter && !is_known_filter(e.name))
      return template_error(e.line, "unknown filter '" + e.name + "'", Errc::unsupported);
    if (!soft && e.kind == Expr::Kind::test && !is_known_test(e.name))
      return template_error(e.line, "unknown test '" + e.name + "'", Errc::unsupported);
    for (const Expr& arg : e.args) EMBER_TRY_VOID(check_names(arg, soft));
    return {};
  }

  static Result<void> check_names(const std::vector<Stmt>& body, bool soft) {
    for (const Stmt& s : body) {
      // Like jinja2's frames: `if` softens, loop bodies and set blocks start hard again.
      const bool loop = s.kind == Stmt::Kind::for_loop, branch = soft || s.kind == Stmt::Kind::if_chain;
      for (size_t i = 0; i < s.exprs.size(); ++i)
        EMBER_TRY_VOID(check_names(s.exprs[i], loop ? soft && i == 0 : branch));
      for (const std::vector<Stmt>& inner : s.bodies)
        EMBER_TRY_VOID(check_names(inner, loop || s.kind == Stmt::Kind::set_block ? false : branch));
    }
    return {};
  }

  std::vector<Token> tokens_;
  size_t pos_ = 0;
  int depth_ = 0;
  int loop_depth_ = 0;
  std::vector<Open> open_;
};

// ---- Evaluation ----

struct Program {
  std::string source;
  std::vector<Stmt> body;
};

// Evaluated arguments of a call, filter, test or method.
struct Args {
  std::vector<Value> positional;
  std::vector<std::pair<std::string, Value>> keywords;

  // The argument at position `index` or named `name`; nullptr when not given.
  const Value* get(size_t index, std::string_view name) const {
    if (index < positional.size()) return &positional[index];
    for (const auto& [k, v] : keywords)
      if (k == name) return &v;
    return nullptr;
  }
};

// One render: the scopes, the output and the budgets. Runtime errors are
// Errc::invalid_argument (these messages do not fit this template), limits out_of_range.
class Renderer {
 public:
  Renderer(Dict globals, size_t max_steps) : max_steps_(max_steps) { scopes_.push_back(std::move(globals)); }

  // A namespace can hold itself (`set ns.me = ns`); emptying every namespace this
  // render made breaks such cycles, since no value outlives the render.
  ~Renderer() {
    for (const Value& ns : namespaces_) ns.namespace_members().clear();
  }
  Renderer(const Renderer&) = delete;
  Renderer& operator=(const Renderer&) = delete;

  Result<std::string> render(const std::vector<Stmt>& body) {
    EMBER_TRY(Flow flow, execute(body));
    (void)flow;
    return std::move(out_);
  }

 private:
  enum class Flow { normal, break_loop, continue_loop };
  using K = Value::Kind;

  static Error fail(int line, std::string what) {
    return template_error(line, std::move(what), Errc::invalid_argument);
  }
  static Error undefined_error(int line, const Value& v) { return fail(line, v.str()); }
  static Error too_large(int line) {
    return template_error(line, "output exceeds " + std::to_string(kMaxStringBytes >> 20) + " MiB", Errc::out_of_range);
  }
  static Result<Value> sized(std::string s, int line) {
    if (s.size() > kMaxStringBytes) return too_large(line);
    return Value::string(std::move(s));
  }

  // Counts loop iterations and other work proportional to the data, against the budget.
  Result<void> tick(int line, size_t n = 1) {
    steps_ += n;
    if (steps_ > max_steps_)
      return template_error(line, "template exceeds " + std::to_string(max_steps_) + " steps", Errc::out_of_range);
    return {};
  }

  // ---- variables: a scope per loop iteration and set block; `if` shares its parent's ----

  Value lookup(const std::string& name) const {
    for (auto scope = scopes_.rbegin(); scope != scopes_.rend(); ++scope)
      for (const auto& [k, v] : *scope)
        if (k == name) return v;
    return Value::undefined("'" + name + "' is undefined");
  }

  void assign(const std::string& name, Value value) {
    Dict& scope = scopes_.back();
    for (auto& [k, v] : scope) {
      if (k == name) {
        v = std::move(value);
        return;
      }
    }
    scope.emplace_back(name, std::move(value));
  }

  Result<void> assign_targets(const std::vector<std::string>& names, const Value& value, int line) {
    if (names.size() == 1) {
      assign(names[0], value);
      return {};
    }
    if (!value.is_sequence()) return fail(line, std::string("cannot unpack a ") + value.type_name() + " value");
    if (value.items().size() != names.size())
      return fail(line, "cannot unpack " + std::to_string(value.items().size()) + " values into " +
                            std::to_string(names.size()) + " names");
    for (size_t i = 0; i < names.size(); ++i) assign(names[i], value.items()[i]);
    return {};
  }

  // ---- statements ----

  Result<void> emit(std::string_view piece, int line) {
    if (out_.size() + piece.size() > kMaxStringBytes) return too_large(line);
    out_ += piece;
    return {};
  }

  Result<Flow> execute(const std::vector<Stmt>& body) {
    for (const Stmt& stmt : body) {
      EMBER_TRY(Flow flow, execute(stmt));
      if (flow != Flow::normal) return flow;
    }
    return Flow::normal;
  }

  Result<Flow> execute(const Stmt& s) {
    switch (s.kind) {
      case Stmt::Kind::text: EMBER_TRY_VOID(emit(s.text, s.line)); return Flow::normal;
      case Stmt::Kind::print: {
        EMBER_TRY(Value v, eval(s.exprs[0]));
        std::string piece;
        append_str(piece, v);
        EMBER_TRY_VOID(emit(piece, s.line));
        return Flow::normal;
      }
      case Stmt::Kind::if_chain:
        for (size_t i = 0; i < s.exprs.size(); ++i) {
          EMBER_TRY(Value condition, eval(s.exprs[i]));
          if (condition.truthy()) return execute(s.bodies[i]);
        }
        if (s.bodies.size() > s.exprs.size()) return execute(s.bodies.back());
        return Flow::normal;
      case Stmt::Kind::for_loop: return for_loop(s);
      case Stmt::Kind::set: {
        EMBER_TRY(Value value, eval(s.exprs[0]));
        if (s.attribute.empty()) {
          EMBER_TRY_VOID(assign_targets(s.targets, value, s.line));
          return Flow::normal;
        }
        Value target = lookup(s.targets[0]);
        if (!target.is_namespace())
          return fail(s.line, "cannot assign attribute on non-namespace object '" + s.targets[0] + "'");
        Dict& members = target.namespace_members();
        for (auto& [k, v] : members) {
          if (k == s.attribute) {
            v = std::move(value);
            return Flow::normal;
          }
        }
        members.emplace_back(s.attribute, std::move(value));
        return Flow::normal;
      }
      case Stmt::Kind::set_block: {  // the body has its own scope, as in jinja
        std::string saved = std::move(out_);
        out_.clear();
        scopes_.emplace_back();
        EMBER_TRY(Flow flow, execute(s.bodies[0]));
        scopes_.pop_back();
        std::string captured = std::move(out_);
        out_ = std::move(saved);
        assign(s.targets[0], Value::string(std::move(captured)));
        return flow;
      }
      case Stmt::Kind::loop_break: return Flow::break_loop;
      case Stmt::Kind::loop_continue: return Flow::continue_loop;
    }
    return Flow::normal;
  }

  // One scope serves every iteration, emptied before each: nothing set in the body
  // outlives its iteration, as in jinja.
  Result<Flow> for_loop(const Stmt& s) {
    EMBER_TRY(Value iterable, eval(s.exprs[0]));
    const bool filtered = s.exprs.size() > 1;
    Value sequence = iterable;
    if (!iterable.is_sequence() || filtered) {
      EMBER_TRY(List items, iterate(iterable, s.line));
      if (filtered) {  // `for x in xs if c`: filtered first, so loop.length counts what is kept
        List kept;
        scopes_.emplace_back();
        for (Value& item : items) {
          EMBER_TRY_VOID(tick(s.line));
          scopes_.back().clear();
          EMBER_TRY_VOID(assign_targets(s.targets, item, s.line));
          EMBER_TRY(Value keep, eval(s.exprs[1]));
          if (keep.truthy()) kept.push_back(std::move(item));
        }
        scopes_.pop_back();
        items = std::move(kept);
      }
      sequence = Value::list(std::move(items));
    }
    Flow flow = Flow::normal;
    scopes_.emplace_back();
    if (sequence.items().empty() && s.bodies.size() > 1) {
      EMBER_TRY(flow, execute(s.bodies[1]));
    }
    for (size_t i = 0; i < sequence.items().size(); ++i) {
      EMBER_TRY_VOID(tick(s.line));
      scopes_.back().clear();
      EMBER_TRY_VOID(assign_targets(s.targets, sequence.items()[i], s.line));
      assign("loop", Value::loop(sequence, i));
      EMBER_TRY(Flow step, execute(s.bodies[0]));
      if (step == Flow::break_loop) break;
    }
    scopes_.pop_back();
    return flow;
  }

  // What `for` walks: items, a dict's keys, a string's characters; undefined is empty.
  Result<List> iterate(const Value& v, int line) {
    switch (v.kind()) {
      case K::undefined: return List{};
      case K::list:
      case K::tuple: return v.items();
      case K::dict: {
        List keys;
        for (const auto& member : v.members()) keys.push_back(Value::string(member.first));
        return keys;
      }
      case K::string: {
        List chars;
        const std::string& s = v.str();
        EMBER_TRY_VOID(tick(line, s.size()));
        for (size_t i = 0; i < s.size();) {
          size_t n = text::decode(s, i).size;
          chars.push_back(Value::string(s.substr(i, n)));
          i += n;
        }
        return chars;
      }
      default: return fail(line, std::string("'") + v.type_name() + "' object is not iterable");
    }
  }

  // ---- expressions ----

  Result<Args> eval_args(const Expr& e, size_t first) {
    Args args;
    const size_t n_keywords = e.keywords.size(), n_positional = e.args.size() - first - n_keywords;
    for (size_t i = 0; i < e.args.size() - first; ++i) {
      EMBER_TRY(Value v, eval(e.args[first + i]));
      if (i < n_positional)
        args.positional.push_back(std::move(v));
      else
        args.keywords.emplace_back(e.keywords[i - n_positional], std::move(v));
    }
    return args;
  }

  // Rejects arguments beyond `names` (which may also be given by keyword).
  static Result<void> check_args(const Args& args, std::initializer_list<std::string_view> names, std::string_view what,
                                 int line) {
    if (args.positional.size() > names.size())
      return fail(line, std::string(what) + " takes at most " + std::to_string(names.size()) + " arguments");
    for (const auto& [k, v] : args.keywords)
      if (std::find(names.begin(), names.end(), k) == names.end())
        return fail(line, std::string(what) + " got an unexpected keyword argument '" + k + "'");
    return {};
  }

  Result<Value> eval(const Expr& e) {
    switch (e.kind) {
      case Expr::Kind::literal: return e.value;
      case Expr::Kind::variable: return lookup(e.name);
      case Expr::Kind::list:
      case Expr::Kind::tuple: {
        List items;
        for (const Expr& item : e.args) {
          EMBER_TRY(Value v, eval(item));
          items.push_back(std::move(v));
        }
        return nested(Value::list(std::move(items), e.kind == Expr::Kind::list ? K::list : K::tuple), e.line);
      }
      case Expr::Kind::dict: {
        Dict members;
        for (size_t i = 0; i < e.args.size(); i += 2) {
          EMBER_TRY(Value key, eval(e.args[i]));
          EMBER_TRY(Value value, eval(e.args[i + 1]));
          if (!key.is_string()) return template_error(e.line, "dict keys must be strings", Errc::unsupported);
          set_member(members, key.str(), std::move(value));
        }
        return nested(Value::dict(std::move(members)), e.line);
      }
      case Expr::Kind::attribute: {
        EMBER_TRY(Value object, eval(e.args[0]));
        return attribute(object, e.name, e.line);
      }
      case Expr::Kind::item: {
        EMBER_TRY(Value object, eval(e.args[0]));
        EMBER_TRY(Value key, eval(e.args[1]));
        return item(object, key, e.line);
      }
      case Expr::Kind::slice: return slice(e);
      case Expr::Kind::call: return call(e);
      case Expr::Kind::filter: {
        EMBER_TRY(Value input, eval(e.args[0]));
        EMBER_TRY(Args args, eval_args(e, 1));
        return filter(e.name, input, args, e.line);
      }
      case Expr::Kind::test: {
        EMBER_TRY(Value input, eval(e.args[0]));
        EMBER_TRY(Args args, eval_args(e, 1));
        EMBER_TRY(bool result, test(e.name, input, args, e.line));
        return Value::boolean(result != e.negated);
      }
      case Expr::Kind::negative:
      case Expr::Kind::positive: {
        EMBER_TRY(Value v, eval(e.args[0]));
        if (v.is_undefined()) return undefined_error(e.line, v);
        if (!v.is_number()) return fail(e.line, std::string("bad operand type for unary -: '") + v.type_name() + "'");
        if (e.kind == Expr::Kind::positive) return v.kind() == K::floating ? v : Value::integer(v.as_int());
        if (v.kind() == K::floating) return Value::floating(-v.as_double());
        if (v.as_int() == INT64_MIN) return fail(e.line, "integer overflow");
        return Value::integer(-v.as_int());
      }
      case Expr::Kind::logical_not: {
        EMBER_TRY(Value v, eval(e.args[0]));
        return Value::boolean(!v.truthy());
      }
      case Expr::Kind::binary: {
        EMBER_TRY(Value left, eval(e.args[0]));
        EMBER_TRY(Value right, eval(e.args[1]));
        return binary(e.op, left, right, e.line);
      }
      case Expr::Kind::logical_and:
      case Expr::Kind::logical_or: {  // Python's: the deciding operand, not a bool
        EMBER_TRY(Value left, eval(e.args[0]));
        if (left.truthy() == (e.kind == Expr::Kind::logical_or)) return left;
        return eval(e.args[1]);
      }
      case Expr::Kind::conditional: {
        EMBER_TRY(Value condition, eval(e.args[0]));
        if (condition.truthy()) return eval(e.args[1]);
        if (e.args.size() > 2) return eval(e.args[2]);
        return Value::undefined("the inline if-expression on line " + std::to_string(e.line) +
                                " evaluated to false and no else section was defined");
      }
      case Expr::Kind::concat: {
        std::string s;
        for (const Expr& part : e.args) {
          EMBER_TRY(Value v, eval(part));
          append_str(s, v);
          if (s.size() > kMaxStringBytes) return too_large(e.line);
        }
        return Value::string(std::move(s));
      }
    }
    return fail(e.line, "unknown expression");
  }

  static Result<Value> nested(Value v, int line) {
    if (v.depth() > kMaxNesting) return template_error(line, "values nested too deeply", Errc::out_of_range);
    return v;
  }

  static void set_member(Dict& members, const std::string& key, Value value) {
    for (auto& [k, v] : members) {
      if (k == key) {
        v = std::move(value);
        return;
      }
    }
    members.emplace_back(key, std::move(value));
  }

  // Python's methods of str, dict and list/tuple that the immutable sandbox lets a template see.
  static bool is_python_method(const Value& object, std::string_view name) {
    static constexpr std::string_view kStr[] = {
        "capitalize", "casefold",     "center",       "count",   "encode",     "endswith",    "expandtabs",
        "find",       "format",       "format_map",   "index",   "isalnum",    "isalpha",     "isascii",
        "isdecimal",  "isdigit",      "isidentifier", "islower", "isnumeric",  "isprintable", "isspace",
        "istitle",    "isupper",      "join",         "ljust",   "lower",      "lstrip",      "maketrans",
        "partition",  "removeprefix", "removesuffix", "replace", "rfind",      "rindex",      "rjust",
        "rpartition", "rsplit",       "rstrip",       "split",   "splitlines", "startswith",  "strip",
        "swapcase",   "title",        "translate",    "upper",   "zfill"};
    static constexpr std::string_view kDict[] = {"copy", "fromkeys", "get", "items", "keys", "values"};
    static constexpr std::string_view kList[] = {"copy", "count", "index"};
    auto in = [&](const auto& names) { return std::find(std::begin(names), std::end(names), name) != std::end(names); };
    if (object.is_string()) return in(kStr);
    if (object.is_mapping()) return in(kDict);
    if (object.is_sequence()) return in(kList) && (name != "copy" || object.kind() == K::list);
    return false;
  }

  // obj.name: like jinja's getattr, a method of the object first (`d.items`), then a dict's member.
  static Result<Value> attribute(const Value& object, const std::string& name, int line) {
    if (object.is_undefined()) return undefined_error(line, object);
    if (object.kind() == K::loop) return loop_attribute(object, name);
    if (is_python_method(object, name)) return Value::method(object, name);
    if (const Value* member = object.find(name)) return *member;
    return Value::undefined("'" + std::string(object.type_name()) + " object' has no attribute '" + name + "'");
  }

  static Value loop_attribute(const Value& loop, const std::string& name) {
    const List& items = loop.items();
    const auto n = static_cast<int64_t>(items.size()), i = loop.as_int();
    if (name == "index") return Value::integer(i + 1);
    if (name == "index0") return Value::integer(i);
    if (name == "revindex") return Value::integer(n - i);
    if (name == "revindex0") return Value::integer(n - i - 1);
    if (name == "first") return Value::boolean(i == 0);
    if (name == "last") return Value::boolean(i == n - 1);
    if (name == "length") return Value::integer(n);
    if (name == "depth") return Value::integer(1);
    if (name == "depth0") return Value::integer(0);
    if (name == "previtem")
      return i > 0 ? items[static_cast<size_t>(i - 1)] : Value::undefined("there is no previous item");
    if (name == "nextitem")
      return i + 1 < n ? items[static_cast<size_t>(i + 1)] : Value::undefined("there is no next item");
    return Value::undefined("'LoopContext object' has no attribute '" + name + "'");
  }

  // obj[key]: list and string indexes (negative from the end), dict keys.
  static Result<Value> item(const Value& object, const Value& key, int line) {
    if (object.is_undefined()) return undefined_error(line, object);
    if (key.is_string()) {  // obj['name']: the member first, then an attribute
      if (const Value* member = object.find(key.str())) return *member;
      return attribute(object, key.str(), line);
    }
    if ((object.is_sequence() || object.is_string()) && key.is_integral()) {
      const std::string& s = object.str();
      std::vector<size_t> starts;
      if (object.is_string()) starts = text::char_starts(s);
      const auto n = static_cast<int64_t>(object.is_string() ? starts.size() - 1 : object.items().size());
      int64_t i = key.as_int() < 0 ? key.as_int() + n : key.as_int();
      if (i >= 0 && i < n) {
        if (!object.is_string()) return object.items()[static_cast<size_t>(i)];
        const size_t begin = starts[static_cast<size_t>(i)];
        return Value::string(s.substr(begin, starts[static_cast<size_t>(i) + 1] - begin));
      }
    }
    return Value::undefined(std::string(object.type_name()) + " object has no element " + to_str(key));
  }

  // Python's slice semantics, including negative bounds and steps.
  Result<Value> slice(const Expr& e) {
    EMBER_TRY(Value object, eval(e.args[0]));
    int64_t bounds[3];
    bool given[3];
    for (int i = 0; i < 3; ++i) {
      EMBER_TRY(Value v, eval(e.args[static_cast<size_t>(i) + 1]));
      given[i] = !v.is_none();
      if (given[i] && !v.is_integral()) return fail(e.line, "slice indices must be integers or none");
      bounds[i] = given[i] ? v.as_int() : 0;
    }
    if (object.is_undefined()) return undefined_error(e.line, object);
    if (!object.is_sequence() && !object.is_string())
      return fail(e.line, std::string("'") + object.type_name() + "' object is not subscriptable");
    const int64_t step = given[2] ? bounds[2] : 1;
    if (step == 0) return fail(e.line, "slice step cannot be zero");
    std::vector<size_t> starts;
    if (object.is_string()) starts = text::char_starts(object.str());
    const auto n = static_cast<int64_t>(object.is_string() ? starts.size() - 1 : object.items().size());
    auto clamp = [&](bool is_given, int64_t value, int64_t if_missing) {
      if (!is_given) return if_missing;
      if (value < 0) value += n;
      const int64_t lower = step < 0 ? -1 : 0, upper = step < 0 ? n - 1 : n;
      return std::clamp(value, lower, upper);
    };
    const int64_t start = clamp(given[0], bounds[0], step < 0 ? n - 1 : 0);
    const int64_t stop = clamp(given[1], bounds[1], step < 0 ? -1 : n);
    std::string s;
    List items;
    for (int64_t i = start; step > 0 ? i < stop : i > stop;) {
      const auto at = static_cast<size_t>(i);
      if (object.is_string())
        s.append(object.str(), starts[at], starts[at + 1] - starts[at]);
      else
        items.push_back(object.items()[at]);
      if (__builtin_add_overflow(i, step, &i)) break;
    }
    if (object.is_string()) return Value::string(std::move(s));
    return Value::list(std::move(items), object.kind());
  }

  // ---- operators, with Python's rules ----

  Result<bool> equals(const Value& a, const Value& b, int line) {
    EMBER_TRY_VOID(tick(line));
    if (a.is_number() && b.is_number()) {
      if (a.is_integral() && b.is_integral()) return a.as_int() == b.as_int();
      return a.as_double() == b.as_double();
    }
    if (a.kind() != b.kind()) return false;
    switch (a.kind()) {
      case K::undefined:
      case K::none: return true;
      case K::string: return a.str() == b.str();
      case K::function: return a.str() == b.str() && a.same_object(b);
      case K::list:
      case K::tuple: {
        if (a.same_object(b)) return true;
        if (a.items().size() != b.items().size()) return false;
        for (size_t i = 0; i < a.items().size(); ++i) {
          EMBER_TRY(bool same, equals(a.items()[i], b.items()[i], line));
          if (!same) return false;
        }
        return true;
      }
      case K::dict: {
        if (a.same_object(b)) return true;
        if (a.members().size() != b.members().size()) return false;
        for (const auto& [key, value] : a.members()) {
          const Value* other = b.find(key);
          if (!other) return false;
          EMBER_TRY(bool same, equals(value, *other, line));
          if (!same) return false;
        }
        return true;
      }
      default: return a.same_object(b);
    }
  }

  // Ordering for < <= > >= and sorting: numbers, strings, lists element-wise.
  Result<int> compare(const Value& a, const Value& b, int line) {
    EMBER_TRY_VOID(tick(line));
    if (a.is_number() && b.is_number()) {
      if (a.is_integral() && b.is_integral()) return (a.as_int() > b.as_int()) - (a.as_int() < b.as_int());
      return (a.as_double() > b.as_double()) - (a.as_double() < b.as_double());
    }
    if (a.is_string() && b.is_string()) {  // UTF-8 byte order is code point order
      const int c = a.str().compare(b.str());
      return (c > 0) - (c < 0);
    }
    if (a.is_sequence() && a.kind() == b.kind()) {
      for (size_t i = 0; i < a.items().size() && i < b.items().size(); ++i) {
        EMBER_TRY(bool same, equals(a.items()[i], b.items()[i], line));
        if (!same) return compare(a.items()[i], b.items()[i], line);
      }
      return (a.items().size() > b.items().size()) - (a.items().size() < b.items().size());
    }
    if (a.is_undefined()) return undefined_error(line, a);
    if (b.is_undefined()) return undefined_error(line, b);
    return fail(line, std::string("cannot compare '") + a.type_name() + "' with '" + b.type_name() + "'");
  }

  Result<bool> contains(const Value& container, const Value& needle, int line) {
    switch (container.kind()) {
      case K::undefined: return false;
      case K::string:
        if (!needle.is_string())
          return fail(line, std::string("'in <string>' requires string as left operand, not ") + needle.type_name());
        return container.str().find(needle.str()) != std::string::npos;
      case K::list:
      case K::tuple:
        for (const Value& item : container.items()) {
          EMBER_TRY(bool same, equals(item, needle, line));
          if (same) return true;
        }
        return false;
      case K::dict: return needle.is_string() && container.find(needle.str()) != nullptr;
      default: return fail(line, std::string("argument of type '") + container.type_name() + "' is not iterable");
    }
  }

  static Result<Value> repeat(const Value& v, int64_t times, int line) {
    times = std::max<int64_t>(times, 0);
    if (v.is_string()) {
      if (!v.str().empty() && static_cast<uint64_t>(times) > kMaxStringBytes / v.str().size()) return too_large(line);
      std::string out;
      for (int64_t i = 0; i < times; ++i) out += v.str();
      return Value::string(std::move(out));
    }
    if (!v.items().empty() && static_cast<uint64_t>(times) > kMaxListItems / v.items().size())
      return template_error(line, "list too long", Errc::out_of_range);
    List out;
    for (int64_t i = 0; i < times; ++i) out.insert(out.end(), v.items().begin(), v.items().end());
    return Value::list(std::move(out), v.kind());
  }

  Result<Value> binary(Op op, const Value& a, const Value& b, int line) {
    switch (op) {
      case Op::eq:
      case Op::ne: {
        EMBER_TRY(bool same, equals(a, b, line));
        return Value::boolean(same == (op == Op::eq));
      }
      case Op::in:
      case Op::not_in: {
        EMBER_TRY(bool found, contains(b, a, line));
        return Value::boolean(found == (op == Op::in));
      }
      case Op::lt:
      case Op::le:
      case Op::gt:
      case Op::ge: {
        EMBER_TRY(int c, compare(a, b, line));
        return Value::boolean(op == Op::lt ? c < 0 : op == Op::le ? c <= 0 : op == Op::gt ? c > 0 : c >= 0);
      }
      default: break;
    }
    if (a.is_undefined()) return undefined_error(line, a);
    if (b.is_undefined()) return undefined_error(line, b);
    static constexpr const char* kSymbols[] = {"+", "-", "*", "/", "//", "%", "**"};
    const std::string unsupported = std::string("unsupported operand types for ") + kSymbols[static_cast<int>(op)] +
                                    ": '" + a.type_name() + "' and '" + b.type_name() + "'";
    if (op == Op::add) {
      if (a.is_string() && b.is_string()) return sized(a.str() + b.str(), line);
      if (a.is_sequence() && a.kind() == b.kind()) {
        if (a.items().size() + b.items().size() > kMaxListItems)
          return template_error(line, "list too long", Errc::out_of_range);
        List items = a.items();
        items.insert(items.end(), b.items().begin(), b.items().end());
        return Value::list(std::move(items), a.kind());
      }
    }
    if (op == Op::mul) {
      if ((a.is_string() || a.is_sequence()) && b.is_integral()) return repeat(a, b.as_int(), line);
      if (a.is_integral() && (b.is_string() || b.is_sequence())) return repeat(b, a.as_int(), line);
    }
    if (op == Op::mod && a.is_string())
      return template_error(line, "printf-style '%' string formatting is not supported", Errc::unsupported);
    if (!a.is_number() || !b.is_number()) return fail(line, unsupported);
    if (a.is_integral() && b.is_integral() && op != Op::div) {
      const int64_t x = a.as_int(), y = b.as_int();
      int64_t r = 0;
      bool overflow = false;
      switch (op) {
        case Op::add: overflow = __builtin_add_overflow(x, y, &r); break;
        case Op::sub: overflow = __builtin_sub_overflow(x, y, &r); break;
        case Op::mul: overflow = __builtin_mul_overflow(x, y, &r); break;
        case Op::floordiv:
        case Op::mod: {
          if (y == 0) return fail(line, "integer division or modulo by zero");
          if (y == -1) {
            if (op == Op::mod) return Value::integer(0);
            if (x == INT64_MIN) return fail(line, "integer overflow");
            return Value::integer(-x);
          }
          int64_t q = x / y, m = x % y;
          if (m != 0 && ((m < 0) != (y < 0))) m += y, --q;  // Python floors
          return Value::integer(op == Op::mod ? m : q);
        }
        case Op::pow: {
          if (y < 0) return Value::floating(std::pow(static_cast<double>(x), static_cast<double>(y)));
          int64_t result = 1, base = x;
          for (int64_t e = y; e > 0; e >>= 1) {
            if ((e & 1) && __builtin_mul_overflow(result, base, &result)) return fail(line, "integer overflow");
            if (e > 1 && __builtin_mul_overflow(base, base, &base)) return fail(line, "integer overflow");
          }
          return Value::integer(result);
        }
        default: break;
      }
      if (overflow) return fail(line, "integer overflow");
      return Value::integer(r);
    }
    const double x = a.as_double(), y = b.as_double();
    switch (op) {
      case Op::add: return Value::floating(x + y);
      case Op::sub: return Value::floating(x - y);
      case Op::mul: return Value::floating(x * y);
      case Op::div:
        if (y == 0) return fail(line, "division by zero");
        return Value::floating(x / y);
      case Op::floordiv:
      case Op::mod: {  // Python's float_divmod
        if (y == 0) return fail(line, "float floor division or modulo by zero");
        double mod = std::fmod(x, y), div = (x - mod) / y;
        if (mod != 0) {
          if ((y < 0) != (mod < 0)) mod += y, div -= 1.0;
        } else {
          mod = std::copysign(0.0, y);
        }
        double floor_div = std::copysign(0.0, x / y);
        if (div != 0) {
          floor_div = std::floor(div);
          if (div - floor_div > 0.5) floor_div += 1.0;
        }
        return Value::floating(op == Op::mod ? mod : floor_div);
      }
      case Op::pow:
        if (x == 0 && y < 0) return fail(line, "0.0 cannot be raised to a negative power");
        if (x < 0 && y != std::floor(y)) return fail(line, "a negative number to a fractional power is complex");
        return Value::floating(std::pow(x, y));
      default: return fail(line, unsupported);
    }
  }

  // ---- calls: global functions and methods ----

  Result<Value> call(const Expr& e) {
    const Expr& callee = e.args[0];
    if (callee.kind == Expr::Kind::attribute) {
      EMBER_TRY(Value object, eval(callee.args[0]));
      EMBER_TRY(Args args, eval_args(e, 1));
      return method(object, callee.name, args, e.line);
    }
    EMBER_TRY(Value function, eval(callee));
    if (function.is_undefined()) return undefined_error(e.line, function);
    if (function.kind() != K::function)
      return fail(e.line, std::string("'") + function.type_name() + "' object is not callable");
    EMBER_TRY(Args args, eval_args(e, 1));
    const std::string& name = function.str();
    if (const Value* self = function.bound_self()) return method(*self, name, args, e.line);
    if (name == "raise_exception") {
      EMBER_TRY_VOID(check_args(args, {"message"}, name, e.line));
      const Value* message = args.get(0, "message");
      // The template's own words, unprefixed: they are meant for the user.
      return make_error(Errc::invalid_argument, message ? to_str(*message) : std::string("raise_exception"));
    }
    if (name == "namespace" || name == "dict") {
      if (args.positional.size() > 1) return fail(e.line, name + "() takes one dict at most");
      Dict members;
      if (!args.positional.empty()) {
        if (!args.positional[0].is_mapping()) return fail(e.line, name + "() expects a dict");
        members = args.positional[0].members();
      }
      for (auto& [k, v] : args.keywords) set_member(members, k, v);
      if (name == "dict") return nested(Value::dict(std::move(members)), e.line);
      namespaces_.push_back(Value::dict(std::move(members), K::name_space));
      return namespaces_.back();
    }
    if (name == "range") return range(args, e.line);
    if (name == "strftime_now") {
      EMBER_TRY_VOID(check_args(args, {"format"}, name, e.line));
      const Value* format = args.get(0, "format");
      if (!format || !format->is_string()) return fail(e.line, "strftime_now() expects a format string");
      return strftime_now(format->str(), e.line);
    }
    return fail(e.line, "unknown function '" + name + "'");
  }

  Result<Value> range(const Args& args, int line) {
    if (!args.keywords.empty() || args.positional.empty() || args.positional.size() > 3)
      return fail(line, "range() takes 1 to 3 integer arguments");
    for (const Value& v : args.positional)
      if (!v.is_integral()) return fail(line, "range() takes integer arguments");
    const auto& p = args.positional;
    const int64_t start = p.size() > 1 ? p[0].as_int() : 0, stop = p.size() > 1 ? p[1].as_int() : p[0].as_int();
    const int64_t step = p.size() > 2 ? p[2].as_int() : 1;
    if (step == 0) return fail(line, "range() step must not be zero");
    const double count =
        std::ceil((static_cast<double>(stop) - static_cast<double>(start)) / static_cast<double>(step));
    if (count > static_cast<double>(kMaxListItems)) return template_error(line, "range() too long", Errc::out_of_range);
    List items;
    for (int64_t i = start; step > 0 ? i < stop : i > stop; i += step) {
      items.push_back(Value::integer(i));
      if ((step > 0 && i > INT64_MAX - step) || (step < 0 && i < INT64_MIN - step)) break;
    }
    return Value::list(std::move(items));
  }

  static Result<Value> strftime_now(const std::string& format, int line) {
    const std::time_t now = std::time(nullptr);
    std::tm local{};
#if defined(_WIN32)
    localtime_s(&local, &now);
#else
    localtime_r(&now, &local);
#endif
    char buf[512];
    const size_t n = std::strftime(buf, sizeof buf, format.c_str(), &local);
    if (n == 0 && !format.empty()) return fail(line, "strftime_now(): format too long");
    return Value::string(std::string(buf, n));
  }

  static Result<std::u32string> strip_chars(const Args& args, int line) {
    const Value* chars = args.get(0, "chars");
    if (!chars || chars->is_none()) return std::u32string();
    if (!chars->is_string()) return fail(line, "strip() expects a string of characters");
    return text::code_points(chars->str());
  }

  // str.split(sep=None, maxsplit=-1).
  static Result<Value> split(const std::string& s, const Args& args, int line) {
    const Value* sep = args.get(0, "sep");
    const Value* max = args.get(1, "maxsplit");
    if (max && !max->is_integral()) return fail(line, "split() maxsplit must be an integer");
    const int64_t max_splits = max ? max->as_int() : -1;
    List parts;
    if (!sep || sep->is_none()) {  // runs of whitespace, no empty parts
      size_t i = 0;
      while (true) {
        std::string_view rest = text::strip(std::string_view(s).substr(i), true, false);
        i = s.size() - rest.size();
        if (rest.empty()) break;
        if (max_splits >= 0 && static_cast<int64_t>(parts.size()) == max_splits) {
          parts.push_back(Value::string(std::string(rest)));  // the rest keeps its trailing space, as in Python
          break;
        }
        size_t end = i;
        while (end < s.size()) {
          text::Char c = text::decode(s, end);
          if (text::is_space(c.cp)) break;
          end += c.size;
        }
        parts.push_back(Value::string(s.substr(i, end - i)));
        i = end;
      }
      return Value::list(std::move(parts));
    }
    if (!sep->is_string()) return fail(line, "split() separator must be a string");
    if (sep->str().empty()) return fail(line, "empty separator");
    size_t pos = 0;
    while (true) {
      size_t hit = s.find(sep->str(), pos);
      if (hit == std::string::npos || (max_splits >= 0 && static_cast<int64_t>(parts.size()) == max_splits)) break;
      parts.push_back(Value::string(s.substr(pos, hit - pos)));
      pos = hit + sep->str().size();
    }
    parts.push_back(Value::string(s.substr(pos)));
    return Value::list(std::move(parts));
  }

  Result<Value> method(const Value& object, const std::string& name, const Args& args, int line) {
    if (object.is_undefined()) return undefined_error(line, object);
    auto string_arg = [&](size_t index, std::string_view keyword) -> const std::string* {
      const Value* v = args.get(index, keyword);
      return v && v->is_string() ? &v->str() : nullptr;
    };
    if (object.is_string()) {
      const std::string& s = object.str();
      if (name == "strip" || name == "lstrip" || name == "rstrip") {
        EMBER_TRY_VOID(check_args(args, {"chars"}, name, line));
        EMBER_TRY(std::u32string chars, strip_chars(args, line));
        return Value::string(
            std::string(text::strip(s, name != "rstrip", name != "lstrip", chars.empty() ? nullptr : &chars)));
      }
      if (name == "startswith" || name == "endswith") {
        EMBER_TRY_VOID(check_args(args, {"prefix"}, name, line));
        const Value* affix = args.get(0, "prefix");
        List options;
        if (affix && affix->is_string())
          options.push_back(*affix);
        else if (affix && affix->kind() == K::tuple)
          options = affix->items();
        else
          return fail(line, name + "() expects a string or a tuple of strings");
        for (const Value& option : options) {
          if (!option.is_string()) return fail(line, name + "() expects strings");
          const std::string& o = option.str();
          const bool hit =
              o.size() <= s.size() && (name == "startswith" ? s.compare(0, o.size(), o) == 0
                                                            : s.compare(s.size() - o.size(), o.size(), o) == 0);
          if (hit) return Value::boolean(true);
        }
        return Value::boolean(false);
      }
      if (name == "split") {
        EMBER_TRY_VOID(check_args(args, {"sep", "maxsplit"}, name, line));
        return split(s, args, line);
      }
      if (name == "upper" || name == "lower" || name == "title" || name == "capitalize") {
        EMBER_TRY_VOID(check_args(args, {}, name, line));
        if (name == "upper") return Value::string(text::to_upper(s));
        if (name == "lower") return Value::string(text::to_lower(s));
        if (name == "title") return Value::string(text::title_method(s));
        return Value::string(text::capitalize(s));
      }
      if (name == "replace") {
        EMBER_TRY_VOID(check_args(args, {"old", "new", "count"}, name, line));
        const std::string* old = string_arg(0, "old");
        const std::string* with = string_arg(1, "new");
        const Value* count = args.get(2, "count");
        if (!old || !with) return fail(line, "replace() expects two strings");
        if (count && !count->is_integral()) return fail(line, "replace() count must be an integer");
        return sized(text::replace(s, *old, *with, count ? count->as_int() : -1), line);
      }
      if (name == "find" || name == "count") {
        EMBER_TRY_VOID(check_args(args, {"sub"}, name, line));
        const std::string* sub = string_arg(0, "sub");
        if (!sub) return fail(line, name + "() expects a string");
        if (name == "find") {
          const size_t at = s.find(*sub);
          return Value::integer(at == std::string::npos ? -1 : static_cast<int64_t>(text::length(s.substr(0, at))));
        }
        if (sub->empty()) return Value::integer(static_cast<int64_t>(text::length(s)) + 1);
        int64_t n = 0;
        for (size_t at = s.find(*sub); at != std::string::npos; at = s.find(*sub, at + sub->size())) ++n;
        return Value::integer(n);
      }
      if (name == "isdigit" || name == "isalpha" || name == "isspace") {
        EMBER_TRY_VOID(check_args(args, {}, name, line));
        if (s.empty()) return Value::boolean(false);
        if (name == "isspace") return Value::boolean(text::all_space(s));
        for (char c : s)
          if (name == "isdigit" ? !(c >= '0' && c <= '9') : !text::is_ascii_alpha(c)) return Value::boolean(false);
        return Value::boolean(true);
      }
      if (name == "join") {
        EMBER_TRY_VOID(check_args(args, {"iterable"}, name, line));
        const Value* items = args.get(0, "iterable");
        EMBER_TRY(List list, iterate(items ? *items : Value(), line));
        std::string out;
        for (size_t i = 0; i < list.size(); ++i) {
          if (!list[i].is_string()) return fail(line, "join() expects strings");
          if (i) out += s;
          out += list[i].str();
          if (out.size() > kMaxStringBytes) return too_large(line);
        }
        return Value::string(std::move(out));
      }
    } else if (object.kind() == K::loop && name == "cycle") {  // loop.cycle('odd', 'even')
      if (args.positional.empty() || !args.keywords.empty()) return fail(line, "loop.cycle() needs values");
      return args.positional[static_cast<size_t>(object.as_int()) % args.positional.size()];
    } else if (object.is_mapping()) {
      if (name == "items" || name == "keys" || name == "values") {
        EMBER_TRY_VOID(check_args(args, {}, name, line));
        List out;
        for (const auto& [k, v] : object.members()) {
          if (name == "items")
            out.push_back(Value::list({Value::string(k), v}, K::tuple));
          else
            out.push_back(name == "keys" ? Value::string(k) : v);
        }
        return Value::list(std::move(out));
      }
      if (name == "get") {
        EMBER_TRY_VOID(check_args(args, {"key", "default"}, name, line));
        const Value* key = args.get(0, "key");
        if (!key) return fail(line, "get() expects a key");
        const Value* fallback = args.get(1, "default");
        const Value* found = key->is_string() ? object.find(key->str()) : nullptr;
        return found ? *found : fallback ? *fallback : Value::none();
      }
    }
    return template_error(line, "unknown method '" + name + "' of " + object.type_name(), Errc::unsupported);
  }

  // ---- tests (`x is name`) ----

  Result<bool> test(const std::string& name, const Value& v, const Args& args, int line) {
    const Value* other = args.get(0, "other");
    auto need_other = [&]() -> Result<const Value*> {
      if (!other) return fail(line, "test '" + name + "' needs an argument");
      return other;
    };
    const K kind = v.kind();
    static constexpr std::string_view kWithArgument[] = {"divisibleby", "eq", "equalto",     "ne", "lt", "lessthan",
                                                         "le",          "gt", "greaterthan", "ge", "in", "sameas"};
    const bool takes_argument =
        std::find(std::begin(kWithArgument), std::end(kWithArgument), name) != std::end(kWithArgument);
    if (args.positional.size() + args.keywords.size() > (takes_argument ? 1u : 0u))
      return fail(line, "test '" + name + "' got too many arguments");
    if (name == "defined") return !v.is_undefined();
    if (name == "undefined") return v.is_undefined();
    if (name == "none") return v.is_none();
    if (name == "string") return v.is_string();
    if (name == "mapping") return v.is_mapping();
    if (name == "number") return v.is_number();
    if (name == "integer") return kind == K::integer;
    if (name == "float") return kind == K::floating;
    if (name == "boolean") return kind == K::boolean;
    if (name == "true") return kind == K::boolean && v.as_int() == 1;
    if (name == "false") return kind == K::boolean && v.as_int() == 0;
    if (name == "callable") return kind == K::function;
    if (name == "iterable" || name == "sequence")
      return v.is_undefined() || v.is_string() || v.is_sequence() || v.is_mapping();
    if (name == "odd" || name == "even") {
      if (!v.is_integral()) return fail(line, "test '" + name + "' needs an integer");
      const bool odd = v.as_int() % 2 != 0;
      return name == "odd" ? odd : !odd;
    }
    if (name == "divisibleby") {
      EMBER_TRY(const Value* divisor, need_other());
      if (!v.is_integral() || !divisor->is_integral()) return fail(line, "divisibleby needs integers");
      if (divisor->as_int() == 0) return fail(line, "integer division or modulo by zero");
      return divisor->as_int() == -1 || v.as_int() % divisor->as_int() == 0;
    }
    if (name == "lower" || name == "upper") {
      std::string s = to_str(v);
      bool cased = false;
      for (char c : s) {
        if (!text::is_ascii_alpha(c)) continue;
        cased = true;
        if ((name == "lower") != (c >= 'a' && c <= 'z')) return false;
      }
      return cased;
    }
    if (name == "sameas") {
      EMBER_TRY(const Value* o, need_other());
      if (v.kind() != o->kind()) return false;
      if (kind == K::none || kind == K::undefined) return true;
      if (kind == K::boolean) return v.as_int() == o->as_int();
      return v.same_object(*o);
    }
    if (name == "in") {
      EMBER_TRY(const Value* container, need_other());
      return contains(*container, v, line);
    }
    EMBER_TRY(const Value* o, need_other());
    if (name == "eq" || name == "equalto" || name == "ne") {
      EMBER_TRY(bool same, equals(v, *o, line));
      return same == (name != "ne");
    }
    EMBER_TRY(int c, compare(v, *o, line));
    if (name == "lt" || name == "lessthan") return c < 0;
    if (name == "le") return c <= 0;
    if (name == "gt" || name == "greaterthan") return c > 0;
    if (name == "ge") return c >= 0;
    return template_error(line, "unknown test '" + name + "'", Errc::unsupported);
  }

  // ---- filters (`x | name`) ----

  // An item's attribute for map/selectattr/sort(attribute=...): "a.b" and "0" walk deeper.
  static Result<Value> attribute_path(const Value& v, const std::string& path, int line) {
    Value current = v;
    size_t start = 0;
    while (true) {
      const size_t dot = path.find('.', start);
      const std::string part = path.substr(start, dot == std::string::npos ? std::string::npos : dot - start);
      const bool numeric = !part.empty() && part.find_first_not_of("0123456789") == std::string::npos;
      int64_t index = 0;
      if (numeric) std::from_chars(part.data(), part.data() + part.size(), index);
      EMBER_TRY(current, item(current, numeric ? Value::integer(index) : Value::string(part), line));
      if (dot == std::string::npos) return current;
      start = dot + 1;
    }
  }

  static Result<int64_t> length(const Value& v, int line) {
    switch (v.kind()) {
      case K::undefined: return int64_t{0};
      case K::string: return static_cast<int64_t>(text::length(v.str()));
      case K::list:
      case K::tuple: return static_cast<int64_t>(v.items().size());
      case K::dict: return static_cast<int64_t>(v.members().size());
      default: return fail(line, std::string("object of type '") + v.type_name() + "' has no len()");
    }
  }

  struct JsonStyle {
    bool ensure_ascii = false;
    bool sort_keys = false;
    bool indented = false;
    std::string indent;  // one level
    std::string item_separator = ", ";
    std::string key_separator = ": ";
  };

  // json.dumps with transformers' defaults (ensure_ascii=False).
  static Result<void> append_json(std::string& out, const Value& v, const JsonStyle& style, int level, int line) {
    if (out.size() > kMaxStringBytes) return too_large(line);
    auto newline = [&](int depth) {
      if (!style.indented) return;
      out += '\n';
      for (int i = 0; i < depth; ++i) out += style.indent;
    };
    switch (v.kind()) {
      case K::none: out += "null"; return {};
      case K::boolean: out += v.as_int() ? "true" : "false"; return {};
      case K::integer: out += std::to_string(v.as_int()); return {};
      case K::floating: {
        const double d = v.as_double();
        out += std::isnan(d) ? "NaN" : std::isinf(d) ? (d > 0 ? "Infinity" : "-Infinity") : text::float_repr(d);
        return {};
      }
      case K::string: text::append_json_string(out, v.str(), style.ensure_ascii); return {};
      case K::list:
      case K::tuple: {
        if (v.items().empty()) {
          out += "[]";
          return {};
        }
        out += '[';
        for (size_t i = 0; i < v.items().size(); ++i) {
          if (i) out += style.item_separator;
          newline(level + 1);
          EMBER_TRY_VOID(append_json(out, v.items()[i], style, level + 1, line));
        }
        newline(level);
        out += ']';
        return {};
      }
      case K::dict: {
        if (v.members().empty()) {
          out += "{}";
          return {};
        }
        std::vector<const std::pair<std::string, Value>*> members;
        for (const auto& member : v.members()) members.push_back(&member);
        if (style.sort_keys)
          std::stable_sort(members.begin(), members.end(), [](auto* a, auto* b) { return a->first < b->first; });
        out += '{';
        for (size_t i = 0; i < members.size(); ++i) {
          if (i) out += style.item_separator;
          newline(level + 1);
          text::append_json_string(out, members[i]->first, style.ensure_ascii);
          out += style.key_separator;
          EMBER_TRY_VOID(append_json(out, members[i]->second, style, level + 1, line));
        }
        newline(level);
        out += '}';
        return {};
      }
      default: return fail(line, std::string("Object of type ") + v.type_name() + " is not JSON serializable");
    }
  }

  static Result<Value> tojson(const Value& v, const Args& args, int line) {
    EMBER_TRY_VOID(check_args(args, {"ensure_ascii", "indent", "separators", "sort_keys"}, "tojson", line));
    JsonStyle style;
    if (const Value* a = args.get(0, "ensure_ascii")) style.ensure_ascii = a->truthy();
    if (const Value* s = args.get(3, "sort_keys")) style.sort_keys = s->truthy();
    if (const Value* indent = args.get(1, "indent"); indent && !indent->is_none()) {
      style.indented = true;
      style.item_separator = ",";
      if (indent->is_string())
        style.indent = indent->str();
      else if (indent->is_integral())
        style.indent.assign(static_cast<size_t>(std::clamp<int64_t>(indent->as_int(), 0, 64)), ' ');
      else
        return fail(line, "tojson indent must be a number or a string");
    }
    if (const Value* separators = args.get(2, "separators"); separators && !separators->is_none()) {
      if (!separators->is_sequence() || separators->items().size() != 2 || !separators->items()[0].is_string() ||
          !separators->items()[1].is_string())
        return fail(line, "tojson separators must be two strings");
      style.item_separator = separators->items()[0].str();
      style.key_separator = separators->items()[1].str();
    }
    std::string out;
    EMBER_TRY_VOID(append_json(out, v, style, 0, line));
    return sized(std::move(out), line);
  }

  // jinja's indent: every line but the first (unless `first`) gets the prefix; blank lines only with `blank`.
  static Result<Value> indent(const Value& v, const Args& args, int line) {
    EMBER_TRY_VOID(check_args(args, {"width", "first", "blank"}, "indent", line));
    std::string prefix(4, ' ');
    if (const Value* width = args.get(0, "width")) {
      if (width->is_string())
        prefix = width->str();
      else if (width->is_integral())
        prefix.assign(static_cast<size_t>(std::clamp<int64_t>(width->as_int(), 0, 1024)), ' ');
      else
        return fail(line, "indent width must be a number or a string");
    }
    const Value* first = args.get(1, "first");
    const Value* blank = args.get(2, "blank");
    if (v.is_undefined()) return undefined_error(line, v);
    if (!v.is_string()) return fail(line, std::string("indent expects a string, not ") + v.type_name());
    const std::string s = v.str() + "\n";  // jinja's own trick: a trailing newline keeps a last empty line
    std::vector<std::string_view> lines = text::split_lines(s);
    std::string out;
    for (size_t i = 0; i < lines.size(); ++i) {
      if (i) out += '\n';
      if (i && (!lines[i].empty() || (blank && blank->truthy()))) out += prefix;
      out += lines[i];
      if (out.size() > kMaxStringBytes) return too_large(line);
    }
    if (first && first->truthy()) out = prefix + out;
    return sized(std::move(out), line);
  }

  // Python's number syntax allows single underscores between digits ("1_000"), nowhere else.
  static std::optional<std::string> without_underscores(std::string_view s) {
    std::string out;
    for (size_t i = 0; i < s.size(); ++i) {
      if (s[i] != '_') {
        out += s[i];
        continue;
      }
      auto alnum = [](char c) { return (c >= '0' && c <= '9') || text::is_ascii_alpha(c); };
      if (i == 0 || i + 1 == s.size() || !alnum(s[i - 1]) || !alnum(s[i + 1])) return std::nullopt;
    }
    return out;
  }

  // float(): Python's float() of a string.
  static std::optional<double> parse_float(std::string_view s) {
    std::optional<std::string> cleaned = without_underscores(text::strip(s, true, true));
    if (!cleaned) return std::nullopt;
    const std::string& digits = *cleaned;
    std::string lowered = text::to_lower(digits);
    const bool negative = !lowered.empty() && lowered[0] == '-';
    std::string_view body = lowered;
    if (!body.empty() && (body[0] == '-' || body[0] == '+')) body.remove_prefix(1);
    if (body == "inf" || body == "infinity") return negative ? -HUGE_VAL : HUGE_VAL;
    if (body == "nan") return std::nan("");
    double d = 0;
    const char* first = digits.data() + (!digits.empty() && digits[0] == '+' ? 1 : 0);
    auto [ptr, ec] = std::from_chars(first, digits.data() + digits.size(), d);
    if (digits.empty() || ptr != digits.data() + digits.size() ||
        (ec != std::errc() && ec != std::errc::result_out_of_range))
      return std::nullopt;
    return d;
  }

  // int(): Python's int() of the value, falling back to float(), then to the default.
  static Value to_int(const Value& v, const Value& fallback, int base = 10) {
    if (v.is_integral()) return Value::integer(v.as_int());
    if (v.kind() == K::floating) {
      const double d = v.as_double();
      if (!std::isfinite(d) || std::fabs(d) >= 9.2e18) return fallback;
      return Value::integer(static_cast<int64_t>(d));
    }
    if (!v.is_string()) return fallback;
    std::optional<std::string> cleaned = without_underscores(text::strip(v.str(), true, true));
    if (!cleaned) return fallback;
    const std::string& digits = *cleaned;
    int64_t i = 0;
    const char* first = digits.data() + (!digits.empty() && digits[0] == '+' ? 1 : 0);
    auto [ptr, ec] = std::from_chars(first, digits.data() + digits.size(), i, base);
    if (!digits.empty() && ec == std::errc() && ptr == digits.data() + digits.size()) return Value::integer(i);
    if (base != 10) return fallback;
    if (std::optional<double> d = parse_float(v.str())) return to_int(Value::floating(*d), fallback);
    return fallback;
  }

  Result<Value> filter(const std::string& name, const Value& v, const Args& args, int line) {
    static constexpr std::string_view kNoArguments[] = {"abs",   "capitalize", "count",  "e",    "escape", "first",
                                                        "items", "last",       "length", "list", "lower",  "reverse",
                                                        "safe",  "string",     "title",  "upper"};
    if (std::find(std::begin(kNoArguments), std::end(kNoArguments), name) != std::end(kNoArguments))
      EMBER_TRY_VOID(check_args(args, {}, name, line));
    if (name == "safe") return v;
    if (name == "string") return Value::string(to_str(v));
    if (name == "trim") {
      EMBER_TRY_VOID(check_args(args, {"chars"}, name, line));
      EMBER_TRY(std::u32string chars, strip_chars(args, line));
      return Value::string(std::string(text::strip(to_str(v), true, true, chars.empty() ? nullptr : &chars)));
    }
    if (name == "escape" || name == "e") {  // HTML escaping, as markupsafe does it
      std::string out;
      for (char c : to_str(v)) {
        switch (c) {
          case '&': out += "&amp;"; break;
          case '<': out += "&lt;"; break;
          case '>': out += "&gt;"; break;
          case '"': out += "&#34;"; break;
          case '\'': out += "&#39;"; break;
          default: out += c;
        }
      }
      return sized(std::move(out), line);
    }
    if (name == "upper") return Value::string(text::to_upper(to_str(v)));
    if (name == "lower") return Value::string(text::to_lower(to_str(v)));
    if (name == "capitalize") return Value::string(text::capitalize(to_str(v)));
    if (name == "title") return Value::string(text::title_filter(to_str(v)));
    if (name == "length" || name == "count") {
      EMBER_TRY(int64_t n, length(v, line));
      return Value::integer(n);
    }
    if (name == "default" || name == "d") {
      EMBER_TRY_VOID(check_args(args, {"default_value", "boolean"}, name, line));
      const Value* fallback = args.get(0, "default_value");
      const Value* boolean = args.get(1, "boolean");
      if (v.is_undefined() || (boolean && boolean->truthy() && !v.truthy()))
        return fallback ? *fallback : Value::string("");
      return v;
    }
    if (name == "tojson") return tojson(v, args, line);
    if (name == "indent") return indent(v, args, line);
    if (name == "replace") {
      EMBER_TRY_VOID(check_args(args, {"old", "new", "count"}, name, line));
      const Value* old = args.get(0, "old");
      const Value* with = args.get(1, "new");
      const Value* count = args.get(2, "count");
      if (!old || !with) return fail(line, "replace needs two arguments");
      return sized(
          text::replace(to_str(v), to_str(*old), to_str(*with), count && count->is_integral() ? count->as_int() : -1),
          line);
    }
    if (name == "int") {
      EMBER_TRY_VOID(check_args(args, {"default", "base"}, name, line));
      const Value* fallback = args.get(0, "default");
      const Value* base = args.get(1, "base");
      if (base && (!base->is_integral() || base->as_int() < 2 || base->as_int() > 36))
        return fail(line, "int base must be between 2 and 36");
      return to_int(v, fallback ? *fallback : Value::integer(0), base ? static_cast<int>(base->as_int()) : 10);
    }
    if (name == "float") {
      EMBER_TRY_VOID(check_args(args, {"default"}, name, line));
      const Value* fallback = args.get(0, "default");
      if (v.is_number()) return Value::floating(v.as_double());
      if (v.is_string())
        if (std::optional<double> d = parse_float(v.str())) return Value::floating(*d);
      return fallback ? *fallback : Value::floating(0);
    }
    if (name == "abs") {
      if (!v.is_number()) return fail(line, std::string("bad operand type for abs(): '") + v.type_name() + "'");
      if (v.kind() == K::floating) return Value::floating(std::fabs(v.as_double()));
      if (v.as_int() == INT64_MIN) return fail(line, "integer overflow");
      return Value::integer(v.as_int() < 0 ? -v.as_int() : v.as_int());
    }
    if (name == "round") {
      EMBER_TRY_VOID(check_args(args, {"precision", "method"}, name, line));
      if (!v.is_number()) return fail(line, "round needs a number");
      const Value* precision_arg = args.get(0, "precision");
      const Value* method_arg = args.get(1, "method");
      const int precision = precision_arg && precision_arg->is_integral()
                                ? static_cast<int>(std::clamp<int64_t>(precision_arg->as_int(), -20, 20))
                                : 0;
      const std::string method = method_arg ? to_str(*method_arg) : "common";
      const double x = v.as_double(), scale = std::pow(10.0, precision);
      if (method == "ceil") return Value::floating(std::ceil(x * scale) / scale);
      if (method == "floor") return Value::floating(std::floor(x * scale) / scale);
      if (method != "common") return fail(line, "round method must be common, ceil or floor");
      if (v.is_integral()) {  // Python's round(int, n) stays an int; n < 0 rounds half to even
        const int64_t i = v.as_int();
        if (precision >= 0) return Value::integer(i);
        if (precision < -18) return Value::integer(0);  // beyond any int64
        int64_t unit = 1;
        for (int k = 0; k < -precision; ++k) unit *= 10;
        int64_t q = i / unit, r = i % unit;
        if (r < 0) r += unit, --q;  // floor division
        if (2 * r > unit || (2 * r == unit && q % 2 != 0)) ++q;
        int64_t result = 0;
        if (__builtin_mul_overflow(q, unit, &result)) return fail(line, "integer overflow");
        return Value::integer(result);
      }
      if (precision < 0 || !std::isfinite(x)) return Value::floating(std::nearbyint(x * scale) / scale);
      // Python's round(): correctly rounded from the exact binary value, ties to even, as printf does.
      char buf[512];
      std::snprintf(buf, sizeof buf, "%.*f", precision, x);
      double rounded = 0;
      std::from_chars(buf, buf + std::char_traits<char>::length(buf), rounded);
      return Value::floating(rounded);
    }
    if (name == "first" || name == "last") {
      EMBER_TRY(List items, iterate(v, line));
      if (items.empty()) return Value::undefined("No " + name + " item, sequence was empty.");
      return name == "first" ? items.front() : items.back();
    }
    if (name == "list") {
      EMBER_TRY(List items, iterate(v, line));
      return Value::list(std::move(items));
    }
    if (name == "reverse") {
      if (v.is_string()) {
        std::string out;
        const std::vector<size_t> starts = text::char_starts(v.str());
        for (size_t i = starts.size() - 1; i > 0; --i) out.append(v.str(), starts[i - 1], starts[i] - starts[i - 1]);
        return Value::string(std::move(out));
      }
      EMBER_TRY(List items, iterate(v, line));
      std::reverse(items.begin(), items.end());
      return Value::list(std::move(items));
    }
    if (name == "items") {
      if (v.is_undefined()) return Value::list({});
      if (!v.is_mapping()) return fail(line, "can only get item pairs from a mapping");
      List pairs;
      for (const auto& [k, value] : v.members()) pairs.push_back(Value::list({Value::string(k), value}, K::tuple));
      return nested(Value::list(std::move(pairs)), line);
    }
    if (name == "join") {
      EMBER_TRY_VOID(check_args(args, {"d", "attribute"}, name, line));
      const Value* separator = args.get(0, "d");
      const Value* attribute_name = args.get(1, "attribute");
      EMBER_TRY(List items, iterate(v, line));
      std::string out;
      for (size_t i = 0; i < items.size(); ++i) {
        if (i && separator) append_str(out, *separator);
        if (attribute_name) {
          EMBER_TRY(Value member, attribute_path(items[i], to_str(*attribute_name), line));
          append_str(out, member);
        } else {
          append_str(out, items[i]);
        }
        if (out.size() > kMaxStringBytes) return too_large(line);
      }
      return Value::string(std::move(out));
    }
    if (name == "map") return map(v, args, line);
    if (name == "select" || name == "reject" || name == "selectattr" || name == "rejectattr")
      return select(name, v, args, line);
    if (name == "sort" || name == "unique" || name == "min" || name == "max") return ordered(name, v, args, line);
    if (name == "sum") {
      EMBER_TRY_VOID(check_args(args, {"attribute", "start"}, name, line));
      const Value* attribute_name = args.get(0, "attribute");
      const Value* start = args.get(1, "start");
      EMBER_TRY(List items, iterate(v, line));
      Value total = start ? *start : Value::integer(0);
      for (const Value& item : items) {
        Value term = item;
        if (attribute_name && !attribute_name->is_none()) {
          EMBER_TRY(term, attribute_path(item, to_str(*attribute_name), line));
        }
        EMBER_TRY(total, binary(Op::add, total, term, line));
      }
      return total;
    }
    return template_error(line, "unknown filter '" + name + "'", Errc::unsupported);
  }

  // map(attribute='x', default=...) or map('filter', args...).
  // Like jinja's generators, map and select check their arguments only when there are items.
  Result<Value> map(const Value& v, const Args& args, int line) {
    EMBER_TRY(List items, iterate(v, line));
    List out;
    if (items.empty()) return Value::list({});
    const Value* attribute_name = args.get(SIZE_MAX, "attribute");
    if (attribute_name) {
      const Value* fallback = args.get(SIZE_MAX, "default");
      for (const Value& item : items) {
        EMBER_TRY(Value member, attribute_path(item, to_str(*attribute_name), line));
        out.push_back(member.is_undefined() && fallback ? *fallback : member);
      }
      return Value::list(std::move(out));
    }
    if (args.positional.empty() || !args.positional[0].is_string())
      return fail(line, "map needs a filter name or attribute=");
    const std::string& filter_name = args.positional[0].str();
    if (!is_known_filter(filter_name))
      return template_error(line, "unknown filter '" + filter_name + "'", Errc::unsupported);
    Args rest{List(args.positional.begin() + 1, args.positional.end()), args.keywords};
    for (const Value& item : items) {
      EMBER_TRY(Value mapped, filter(filter_name, item, rest, line));
      out.push_back(std::move(mapped));
    }
    return Value::list(std::move(out));
  }

  // select('test', args...), reject(...), selectattr('attr', 'test', args...), rejectattr(...).
  Result<Value> select(const std::string& name, const Value& v, const Args& args, int line) {
    const bool by_attribute = name == "selectattr" || name == "rejectattr";
    const bool keep_when = name == "select" || name == "selectattr";
    EMBER_TRY(List items, iterate(v, line));
    if (items.empty()) return Value::list({});
    size_t next = 0;
    std::string attribute_name;
    if (by_attribute) {
      if (args.positional.empty()) return fail(line, name + " needs an attribute name");
      attribute_name = to_str(args.positional[next++]);
    }
    std::string test_name;
    if (next < args.positional.size()) {
      if (!args.positional[next].is_string()) return fail(line, name + " needs a test name");
      test_name = args.positional[next++].str();
      if (!is_known_test(test_name)) return template_error(line, "unknown test '" + test_name + "'", Errc::unsupported);
    }
    Args test_args{List(args.positional.begin() + static_cast<std::ptrdiff_t>(next), args.positional.end()), {}};
    List out;
    for (const Value& item : items) {
      Value subject = item;
      if (by_attribute) {
        EMBER_TRY(subject, attribute_path(item, attribute_name, line));
      }
      bool passed = subject.truthy();
      if (!test_name.empty()) {
        EMBER_TRY(passed, test(test_name, subject, test_args, line));
      }
      if (passed == keep_when) out.push_back(item);
    }
    return Value::list(std::move(out));
  }

  // sort, unique, min, max: strings compare case-insensitively unless case_sensitive=true.
  Result<Value> ordered(const std::string& name, const Value& v, const Args& args, int line) {
    const bool is_sort = name == "sort";
    if (is_sort) {
      EMBER_TRY_VOID(check_args(args, {"reverse", "case_sensitive", "attribute"}, name, line));
    } else {
      EMBER_TRY_VOID(check_args(args, {"case_sensitive", "attribute"}, name, line));
    }
    const Value* reverse = is_sort ? args.get(0, "reverse") : nullptr;
    const Value* case_sensitive = args.get(is_sort ? 1 : 0, "case_sensitive");
    const Value* attribute_name = args.get(is_sort ? 2 : 1, "attribute");
    EMBER_TRY(List items, iterate(v, line));
    EMBER_TRY_VOID(tick(line, items.size()));
    List keys;
    for (const Value& item : items) {
      Value key = item;
      if (attribute_name && !attribute_name->is_none()) {
        EMBER_TRY(key, attribute_path(item, to_str(*attribute_name), line));
      }
      if (key.is_string() && !(case_sensitive && case_sensitive->truthy()))
        key = Value::string(text::to_lower(key.str()));
      keys.push_back(std::move(key));
    }
    std::vector<size_t> order(items.size());
    for (size_t i = 0; i < order.size(); ++i) order[i] = i;
    if (name == "unique") {
      List out, seen;
      for (size_t i = 0; i < items.size(); ++i) {
        bool duplicate = false;
        for (const Value& s : seen) {
          EMBER_TRY(duplicate, equals(s, keys[i], line));
          if (duplicate) break;
        }
        if (duplicate) continue;
        seen.push_back(keys[i]);
        out.push_back(items[i]);
      }
      return Value::list(std::move(out));
    }
    std::optional<Error> error;
    const bool descending = reverse && reverse->truthy();
    std::stable_sort(order.begin(), order.end(), [&](size_t a, size_t b) {
      if (error) return false;
      Result<int> c = compare(keys[a], keys[b], line);
      if (!c) {
        error = c.error();
        return false;
      }
      return descending ? *c > 0 : *c < 0;
    });
    if (error) return std::move(*error);
    if (is_sort) {
      List out;
      for (size_t i : order) out.push_back(items[i]);
      return Value::list(std::move(out));
    }
    if (items.empty()) return Value::undefined("No aggregated item, sequence was empty.");
    return items[name == "min" ? order.front() : order.back()];
  }

  std::vector<Dict> scopes_;
  std::vector<Value> namespaces_;
  std::string out_;
  size_t steps_ = 0;
  size_t max_steps_;
};

// A parsed template: immutable, cheap to copy, safe to render from many threads.
class Template {
 public:
  static Result<Template> parse(std::string_view source) {
    EMBER_TRY(std::vector<Token> tokens, Lexer(source).run());
    EMBER_TRY(std::vector<Stmt> body, Parser(std::move(tokens)).parse());
    auto program = std::make_shared<Program>();
    program->source = std::string(source);
    program->body = std::move(body);
    return Template(std::move(program));
  }

  // Renders with `variables`, plus transformers' globals (raise_exception,
  // strftime_now) and jinja's (namespace, range, dict) unless a variable hides them.
  // `max_steps` bounds loop iterations and comparisons (Errc::out_of_range beyond).
  Result<std::string> render(Dict variables, size_t max_steps = kMaxSteps) const {
    for (const char* name : {"raise_exception", "strftime_now", "namespace", "range", "dict"}) {
      const bool hidden =
          std::any_of(variables.begin(), variables.end(), [&](const auto& v) { return v.first == name; });
      if (!hidden) variables.emplace_back(name, Value::function(name));
    }
    return Renderer(std::move(variables), max_steps).render(program_->body);
  }

  std::string_view source() const { return program_->source; }

 private:
  explicit Template(std::shared_ptr<const Program> program) : program_(std::move(program)) {}
  std::shared_ptr<const Program> program_;
};

}  // namespace ember::chat::jinja
