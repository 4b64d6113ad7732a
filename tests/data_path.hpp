// Finds files of ../shared/data through EMBER_TEST_DATA. A test whose file is missing is
// reported as skipped (a warning), never as passed; with EMBER_REQUIRE_TEST_DATA=1 (CI) it fails.
#pragma once

#include <doctest/doctest.h>

#include <cstdlib>
#include <filesystem>
#include <string>

namespace ember::test {

// Returns the full path, or "" when the data is not available.
inline std::string data_file(const std::string& relative) {
  const char* dir = std::getenv("EMBER_TEST_DATA");
#ifdef EMBER_DEFAULT_TEST_DATA
  if (!dir || !*dir) dir = EMBER_DEFAULT_TEST_DATA;
#endif
  if (!dir || !*dir) return "";
  std::string path = std::string(dir) + "/" + relative;
  return std::filesystem::exists(path) ? path : "";
}

inline bool data_required() {
  const char* r = std::getenv("EMBER_REQUIRE_TEST_DATA");
  return r && std::string(r) == "1";
}

}  // namespace ember::test

// Declares `std::string var` holding the path; skips (or fails in CI) when it is missing.
#define EMBER_DATA_FILE(var, relative)                                                            \
  const std::string var = ::ember::test::data_file(relative);                                     \
  if (var.empty()) {                                                                              \
    if (::ember::test::data_required()) FAIL("test data missing: " relative " (EMBER_TEST_DATA)"); \
    WARN_MESSAGE(false, "SKIPPED: test data " relative " not found (set EMBER_TEST_DATA)");       \
    return;                                                                                       \
  }
