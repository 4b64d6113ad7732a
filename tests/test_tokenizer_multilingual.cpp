// The multilingual tokenizer test set (tests/data/tokenizer/multilingual.txt:
// 80+ languages and scripts, code, emoji, odd white space, long runs, invalid
// UTF-8) against ids from independent references (llama.cpp; Hugging Face
// `tokenizers` for the WordPiece vocabulary), written by
// tools/make_tokenizer_vectors.py. Every string of every vocabulary must match.
// Also: decode(encode(s)) == s where the vocabulary is lossless, and the
// streaming Detokenizer gives what decode() gives.
#include <doctest/doctest.h>

#include <algorithm>
#include <fstream>
#include <optional>
#include <sstream>
#include <stdexcept>
#include <string>
#include <vector>

#include "data_path.hpp"
#include "ember/gguf/reader.hpp"
#include "ember/gguf/writer.hpp"
#include "ember/tokenizer/detokenizer.hpp"
#include "ember/tokenizer/tokenizer.hpp"

#ifndef EMBER_TESTS_DIR
#error "EMBER_TESTS_DIR must name the tests/ folder"
#endif

namespace {

using ember::TokenId;
using ember::Tokenizer;

struct Case {
  std::string label;
  std::string text;
};

std::string read_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  REQUIRE_MESSAGE(in.good(), "cannot read " << path);
  std::stringstream s;
  s << in.rdbuf();
  return s.str();
}

void append_code_point(std::string& out, uint32_t cp) {
  // Written without validation: \u{D800} stands for the bytes ED A0 80.
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

// The escapes of multilingual.txt (see its header); throws on a malformed line.
std::string unescape(std::string_view s) {
  std::string out;
  for (size_t i = 0; i < s.size();) {
    if (s[i] != '\\') {
      out.push_back(s[i++]);
      continue;
    }
    if (i + 1 >= s.size()) throw std::runtime_error("lone backslash");
    const char e = s[i + 1];
    if (e == 'n' || e == 'r' || e == 't' || e == '\\') {
      out.push_back(e == 'n' ? '\n' : e == 'r' ? '\r' : e == 't' ? '\t' : '\\');
      i += 2;
      continue;
    }
    if ((e != 'u' && e != 'x' && e != 'R') || i + 2 >= s.size() || s[i + 2] != '{')
      throw std::runtime_error("bad escape");
    const size_t close = s.find('}', i + 3);
    if (close == std::string_view::npos) throw std::runtime_error("unclosed escape");
    const std::string body(s.substr(i + 3, close - i - 3));
    if (e == 'u') {
      append_code_point(out, static_cast<uint32_t>(std::stoul(body, nullptr, 16)));
    } else if (e == 'x') {
      out.push_back(static_cast<char>(std::stoul(body, nullptr, 16)));
    } else {
      const size_t colon = body.find(':');
      if (colon == std::string::npos) throw std::runtime_error("\\R{N:TEXT} without ':'");
      const size_t count = std::stoul(body.substr(0, colon));
      const std::string inner = unescape(std::string_view(body).substr(colon + 1));
      for (size_t k = 0; k < count; ++k) out += inner;
    }
    i = close + 1;
  }
  return out;
}

std::vector<Case> read_set() {
  const std::string all = read_file(EMBER_TESTS_DIR "/data/tokenizer/multilingual.txt");
  std::vector<Case> cases;
  std::istringstream in(all);
  for (std::string line; std::getline(in, line);) {
    if (line.empty() || line[0] == '#') continue;
    const size_t space = line.find(' ');
    Case c;
    c.label = line.substr(0, space);
    INFO("line: " << line);
    REQUIRE_NOTHROW(c.text = space == std::string::npos ? "" : unescape(std::string_view(line).substr(space + 1)));
    cases.push_back(std::move(c));
  }
  return cases;
}

std::vector<std::vector<TokenId>> read_expected(const std::string& vocab) {
  const std::string all = read_file(EMBER_TESTS_DIR "/data/tokenizer/" + vocab + ".expected");
  std::vector<std::vector<TokenId>> rows;
  std::istringstream in(all);
  for (std::string line; std::getline(in, line);) {
    std::istringstream ids(line);
    std::vector<TokenId> row;
    for (TokenId id; ids >> id;) row.push_back(id);
    rows.push_back(std::move(row));
  }
  return rows;
}

// Strict UTF-8: no overlong forms, surrogates or values past U+10FFFF.
bool valid_utf8(std::string_view s) {
  for (size_t i = 0; i < s.size();) {
    const auto b = [&](size_t k) { return static_cast<uint8_t>(s[k]); };
    const uint8_t c = b(i);
    size_t n;
    uint32_t cp;
    if (c < 0x80) {
      ++i;
      continue;
    } else if (c >= 0xC2 && c <= 0xDF) {
      n = 2, cp = c & 0x1F;
    } else if (c >= 0xE0 && c <= 0xEF) {
      n = 3, cp = c & 0x0F;
    } else if (c >= 0xF0 && c <= 0xF4) {
      n = 4, cp = c & 0x07;
    } else {
      return false;
    }
    if (i + n > s.size()) return false;
    for (size_t k = 1; k < n; ++k) {
      if ((b(i + k) & 0xC0) != 0x80) return false;
      cp = (cp << 6) | (b(i + k) & 0x3F);
    }
    if ((n == 3 && cp < 0x800) || (n == 4 && (cp < 0x10000 || cp > 0x10FFFF)) || (cp >= 0xD800 && cp <= 0xDFFF))
      return false;
    i += n;
  }
  return true;
}

std::string join(const std::vector<TokenId>& ids) {
  std::string s;
  for (TokenId id : ids) s += (s.empty() ? "" : " ") + std::to_string(id);
  return s;
}

// Whether every byte of `text` has a token of its own to fall back on (a
// vocabulary may lack some: Falcon has none for 0x0B, StarCoder none for 0xF1).
bool bytes_covered(const Tokenizer& tok, std::string_view text) {
  static const auto spellings = ember::unicode::byte_level_spellings();
  static constexpr char kHex[] = "0123456789ABCDEF";
  for (char ch : text) {
    const auto b = static_cast<uint8_t>(ch);
    if (tok.byte_level()) {
      if (!tok.find(spellings[b])) return false;
    } else if (b != ' ') {  // SentencePiece (and Gemma 4's BPE) writes spaces as U+2581
      const char hex[6] = {'<', '0', 'x', kHex[b >> 4], kHex[b & 15], '>'};
      if (!tok.find(std::string_view(hex, 6))) return false;
    }
  }
  return true;
}

std::string stream_decode(const Tokenizer& tok, const std::vector<TokenId>& ids) {
  ember::Detokenizer detok(tok, tok.strips_leading_space());
  std::string s;
  for (TokenId id : ids) s += detok.push(id);
  return s + detok.flush();
}

// The tokenizer of a GGUF file, with tokenizer.ggml.pre replaced when `pre` is given
// (as tools/make_tokenizer_vectors.py rewrites the file for llama.cpp).
ember::Result<Tokenizer> load(const std::string& gguf_path, const std::optional<std::string>& pre) {
  auto file = ember::gguf::File::open(gguf_path);
  if (!file) return std::move(file).error();
  if (!pre) return Tokenizer::from_gguf(*file);
  ember::gguf::Writer w;
  for (const auto& [key, value] : file->metadata())
    if (key != "tokenizer.ggml.pre") w.add_value(key, value);
  w.add_string("tokenizer.ggml.pre", *pre);
  const std::vector<std::byte> bytes = w.to_bytes();
  auto copy = ember::gguf::File::from_memory(bytes);
  if (!copy) return std::move(copy).error();
  return Tokenizer::from_gguf(*copy);  // the Tokenizer keeps no view into the bytes
}

// Checks one vocabulary against its .expected file; gguf_path names the tokenizer.
void run_set(const std::string& vocab, const std::string& gguf_path, const std::optional<std::string>& pre = {}) {
  auto tok = load(gguf_path, pre);
  REQUIRE_MESSAGE(tok.ok(), (tok.ok() ? std::string() : tok.error().message()));
  const std::vector<Case> cases = read_set();
  const auto expected = read_expected(vocab);
  REQUIRE(cases.size() >= 100);
  REQUIRE_MESSAGE(expected.size() == cases.size(),
                  vocab << ".expected is out of date: rerun tools/make_tokenizer_vectors.py");

  // WordPiece lowercases, strips accents and forgets spacing; Unigram normalizes (NFKC,
  // merged spaces) and has no byte fallback: neither is lossless.
  const bool lossless = tok->kind() != Tokenizer::Kind::wordpiece && tok->kind() != Tokenizer::Kind::ugm;
  Tokenizer::EncodeOptions plain;
  plain.add_bos = false;
  plain.add_eos = false;
  plain.parse_special = false;

  size_t passed = 0, round_trips = 0;
  for (size_t i = 0; i < cases.size(); ++i) {
    const Case& c = cases[i];
    CAPTURE(vocab);
    CAPTURE(c.label);
    const auto ids = tok->encode(c.text, plain);
    if (ids == expected[i]) {
      ++passed;
    } else {
      FAIL_CHECK((vocab + " " + c.label + ": got [" + join(ids) + "] want [" + join(expected[i]) + "]"));
    }
    const std::string decoded = tok->decode(ids);
    // Valid UTF-8 whose bytes all have tokens comes back exactly. (Invalid
    // UTF-8 need not: byte-level BPE reads it as U+FFFD, and SentencePiece
    // takes a bad lead byte with the bytes after it, such as half of a U+2581.)
    const bool exact = lossless && valid_utf8(c.text) && bytes_covered(*tok, c.text);
    if (exact) {
      CHECK(decoded == c.text);
      round_trips += decoded == c.text;
    }
    // Streaming gives what decode() gives, wherever that is valid UTF-8 (the
    // Detokenizer turns broken bytes into U+FFFD as they arrive).
    if (valid_utf8(decoded)) CHECK(stream_decode(*tok, ids) == decoded);
  }
  MESSAGE(vocab << ": " << passed << "/" << cases.size() << " multilingual strings match; " << round_trips
                << " exact round trips");
  CHECK(passed == cases.size());
}

}  // namespace

TEST_CASE("multilingual set: llama-spm (SentencePiece)") {
  EMBER_REQUIRE_DATA(path, "vocab/ggml-vocab-llama-spm.gguf");
  run_set("llama-spm", path);
}

TEST_CASE("multilingual set: phi-3 (SentencePiece)") {
  EMBER_REQUIRE_DATA(path, "vocab/ggml-vocab-phi-3.gguf");
  run_set("phi-3", path);
}

TEST_CASE("multilingual set: gpt-2 (byte-level BPE)") {
  EMBER_REQUIRE_DATA(path, "vocab/ggml-vocab-gpt-2.gguf");
  run_set("gpt-2", path);
}

TEST_CASE("multilingual set: deepseek-llm") {
  EMBER_REQUIRE_DATA(path, "vocab/ggml-vocab-deepseek-llm.gguf");
  run_set("deepseek-llm", path);
}

TEST_CASE("multilingual set: falcon") {
  EMBER_REQUIRE_DATA(path, "vocab/ggml-vocab-falcon.gguf");
  run_set("falcon", path);
}

TEST_CASE("multilingual set: starcoder") {
  EMBER_REQUIRE_DATA(path, "vocab/ggml-vocab-starcoder.gguf");
  run_set("starcoder", path);
}

TEST_CASE("multilingual set: mpt") {
  EMBER_REQUIRE_DATA(path, "vocab/ggml-vocab-mpt.gguf");
  run_set("mpt", path);
}

TEST_CASE("multilingual set: bert-bge (WordPiece, Hugging Face reference)") {
  EMBER_REQUIRE_DATA(path, "vocab/ggml-vocab-bert-bge.gguf");
  run_set("bert-bge", path);
}

TEST_CASE("multilingual set: SmolLM2 (smollm pre-tokenizer)") {
  EMBER_SMOLLM2_FILE(path);
  run_set("smollm2", path);
}

// llama.cpp's own vocabulary files (tools/fetch-peer-vocabs.sh, EMBER_PEER_VOCAB); gpt-neox,
// aquila, baichuan and nomic-bert-moe (XLM-RoBERTa's Unigram vocabulary, "t5") come without
// vectors of their own.
TEST_CASE("multilingual set: llama.cpp's vocabularies (EMBER_PEER_VOCAB)") {
  for (const char* name : {"llama-bpe", "qwen2", "qwen35", "command-r", "deepseek-coder", "refact", "gemma-4",
                           "gpt-neox", "aquila", "baichuan", "nomic-bert-moe"}) {
    CAPTURE(name);
    EMBER_REQUIRE_PEER_VOCAB(path, std::string("ggml-vocab-") + name + ".gguf");
    run_set(name, path);
  }
}

// A small Unigram ("t5") vocabulary trained with SentencePiece (tools/make_ugm_vocab.py),
// committed: it has a real precompiled character map (nmt_nfkc), a user-defined and a
// control token, and leaves rare characters unknown.
TEST_CASE("multilingual set: ugm-tiny (Unigram, committed)") {
  run_set("ugm-tiny", EMBER_TESTS_DIR "/data/tokenizer/ugm-tiny.gguf");
}

// Pre-tokenizers that no vocabulary file here uses, on GPT-2's tokens and merges.
TEST_CASE("multilingual set: bloom, olmo and tekken pre-tokenizers on GPT-2's vocabulary") {
  EMBER_REQUIRE_DATA(path, "vocab/ggml-vocab-gpt-2.gguf");
  for (const char* pre : {"bloom", "olmo", "tekken"}) {
    CAPTURE(pre);
    run_set(std::string("gpt-2+") + pre, path, pre);
  }
}

TEST_CASE("multilingual set: the file is well formed") {
  const auto cases = read_set();
  CHECK(cases.size() >= 100);
  size_t non_ascii = 0;
  for (const auto& c : cases) {
    CHECK(!c.label.empty());
    non_ascii += std::any_of(c.text.begin(), c.text.end(), [](char ch) { return static_cast<uint8_t>(ch) >= 0x80; });
  }
  CHECK(non_ascii >= 80);
  CHECK(unescape("a\\tb\\u{20}\\x{FF}\\R{3:x\\n}") == std::string("a\tb \xFF"
                                                                  "x\nx\nx\n"));
}
