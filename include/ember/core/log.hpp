// The library never prints: it hands messages to a callback the host sets (or drops them).
#pragma once

#include <string_view>

namespace ember {

enum class LogLevel { debug, info, warning, error };

struct Logger {
  void (*fn)(LogLevel level, std::string_view message, void* user) = nullptr;
  void* user = nullptr;
  void operator()(LogLevel level, std::string_view message) const {
    if (fn) fn(level, message, user);
  }
};

}  // namespace ember
