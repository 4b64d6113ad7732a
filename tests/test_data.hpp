// EMBER_REQUIRE_DATA: like EMBER_DATA_FILE (data_path.hpp), but the relative path
// may be any std::string, not only a literal. A missing file is reported as
// skipped and the test case returns; with EMBER_REQUIRE_TEST_DATA=1 (CI) it fails.
#pragma once

#include <doctest/doctest.h>

#include <cstdlib>
#include <string>

#include "data_path.hpp"

namespace ember::test {

inline std::string missing_data_message(const std::string& relative) {
  const char* dir = std::getenv("EMBER_TEST_DATA");
  if (!dir || !*dir) return "test data " + relative + " not found (EMBER_TEST_DATA is not set)";
  return "test data " + relative + " not found under EMBER_TEST_DATA=" + dir;
}

}  // namespace ember::test

// Declares `const std::string var`, the full path of `relative`.
#define EMBER_REQUIRE_DATA(var, relative)                                                           \
  const std::string var = ::ember::test::data_file(relative);                                       \
  if (var.empty()) {                                                                                \
    if (::ember::test::data_required()) {                                                           \
      FAIL_CHECK((::ember::test::missing_data_message(relative) + " (EMBER_REQUIRE_TEST_DATA=1)")); \
    } else {                                                                                        \
      WARN_MESSAGE(false, ("SKIPPED: " + ::ember::test::missing_data_message(relative)));           \
    }                                                                                               \
    return;                                                                                         \
  }
