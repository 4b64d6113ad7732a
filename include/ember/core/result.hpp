// Errors as values: every API that takes outside data returns Result<T>.
// Works without exceptions or RTTI; an Error carries a message a person can act on.
#pragma once

#include <cassert>
#include <optional>
#include <string>
#include <utility>

namespace ember {

enum class Errc {
  invalid_argument,  // the caller passed something unusable
  io,                // the OS refused (open, read, map)
  format,            // a file or buffer is malformed
  unsupported,       // well-formed, but not something ember handles (yet)
  out_of_range,      // an index, position or size beyond what is allowed
  cancelled,         // the host asked to stop
};

inline const char* errc_name(Errc c) {
  switch (c) {
    case Errc::invalid_argument: return "invalid argument";
    case Errc::io: return "I/O error";
    case Errc::format: return "format error";
    case Errc::unsupported: return "unsupported";
    case Errc::out_of_range: return "out of range";
    case Errc::cancelled: return "cancelled";
  }
  return "error";
}

class Error {
 public:
  Error(Errc code, std::string message) : code_(code), message_(std::move(message)) {}
  Errc code() const { return code_; }
  const std::string& message() const { return message_; }
  // Adds context in front: "reading model.gguf: <message>".
  Error&& context(std::string_view what) && {
    message_ = std::string(what) + ": " + message_;
    return std::move(*this);
  }

 private:
  Errc code_;
  std::string message_;
};

template <class T>
class [[nodiscard]] Result {
 public:
  Result(T value) : value_(std::move(value)) {}
  Result(Error error) : error_(std::move(error)) {}

  explicit operator bool() const { return value_.has_value(); }
  bool ok() const { return value_.has_value(); }

  T& value() & {
    assert(ok());
    return *value_;
  }
  const T& value() const& {
    assert(ok());
    return *value_;
  }
  T&& value() && {
    assert(ok());
    return std::move(*value_);
  }
  T& operator*() & { return value(); }
  const T& operator*() const& { return value(); }
  T&& operator*() && { return std::move(*this).value(); }
  T* operator->() { return &value(); }
  const T* operator->() const { return &value(); }

  const Error& error() const& {
    assert(!ok());
    return *error_;
  }
  Error&& error() && {
    assert(!ok());
    return std::move(*error_);
  }

 private:
  std::optional<T> value_;
  std::optional<Error> error_;
};

template <>
class [[nodiscard]] Result<void> {
 public:
  Result() = default;
  Result(Error error) : error_(std::move(error)) {}
  explicit operator bool() const { return !error_.has_value(); }
  bool ok() const { return !error_.has_value(); }
  const Error& error() const& {
    assert(!ok());
    return *error_;
  }
  Error&& error() && {
    assert(!ok());
    return std::move(*error_);
  }

 private:
  std::optional<Error> error_;
};

inline Error make_error(Errc code, std::string message) { return Error(code, std::move(message)); }

}  // namespace ember

// Propagates an error: `EMBER_TRY(auto x, parse());` or `EMBER_TRY_VOID(check());`.
#define EMBER_CONCAT_INNER(a, b) a##b
#define EMBER_CONCAT(a, b) EMBER_CONCAT_INNER(a, b)
#define EMBER_TRY(decl, expr)                                                                            \
  auto EMBER_CONCAT(ember_try_, __LINE__) = (expr);                                                      \
  if (!EMBER_CONCAT(ember_try_, __LINE__)) return std::move(EMBER_CONCAT(ember_try_, __LINE__)).error(); \
  decl = std::move(EMBER_CONCAT(ember_try_, __LINE__)).value()
#define EMBER_TRY_VOID(expr)                                 \
  do {                                                       \
    auto ember_try_v = (expr);                               \
    if (!ember_try_v) return std::move(ember_try_v).error(); \
  } while (0)
