// Tokenizer encode throughput, one thread: MB/s per vocabulary over a few MB
// of mixed-language text, best of 3 runs.
//
// The text: every valid UTF-8 string of tests/data/tokenizer/multilingual.txt
// (80+ languages and scripts, code, emoji, odd white space, long runs), each
// followed by "\n", the whole repeated until it reaches --mb megabytes (4 by
// default). bench/tokenizer_vs_llamacpp.py builds the same text, times
// llama.cpp on it and compares.
//
//   tokenizer_bench [--set multilingual.txt] [--text FILE] [--mb 4] [--runs 3]
//                   [--dump-text FILE] NAME=GGUF...
//
// Prints one line per vocabulary: "NAME  MB/s  tokens  bytes". Encoding uses no
// BOS/EOS and no special-token parsing, as the comparison with llama.cpp does.
#include <algorithm>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <sstream>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

#include "ember/gguf/reader.hpp"
#include "ember/tokenizer/tokenizer.hpp"

#ifndef EMBER_TESTS_DIR
#define EMBER_TESTS_DIR "tests"
#endif

namespace {

std::string read_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw std::runtime_error("cannot read " + path);
  std::stringstream s;
  s << in.rdbuf();
  return s.str();
}

void append_code_point(std::string& out, uint32_t cp) {
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

// The escapes of multilingual.txt (see its header).
std::string unescape(std::string_view s) {
  std::string out;
  for (size_t i = 0; i < s.size();) {
    if (s[i] != '\\' || i + 1 >= s.size()) {
      out.push_back(s[i++]);
      continue;
    }
    const char e = s[i + 1];
    if (e == 'n' || e == 'r' || e == 't' || e == '\\') {
      out.push_back(e == 'n' ? '\n' : e == 'r' ? '\r' : e == 't' ? '\t' : '\\');
      i += 2;
      continue;
    }
    const size_t close = s.find('}', i);
    if (close == std::string_view::npos || i + 2 >= s.size() || s[i + 2] != '{')
      throw std::runtime_error("bad escape in the test set");
    const std::string body(s.substr(i + 3, close - i - 3));
    if (e == 'u') {
      append_code_point(out, static_cast<uint32_t>(std::stoul(body, nullptr, 16)));
    } else if (e == 'x') {
      out.push_back(static_cast<char>(std::stoul(body, nullptr, 16)));
    } else if (e == 'R') {
      const size_t colon = body.find(':');
      const std::string inner = unescape(std::string_view(body).substr(colon + 1));
      for (size_t k = std::stoul(body.substr(0, colon)); k > 0; --k) out += inner;
    } else {
      throw std::runtime_error("bad escape in the test set");
    }
    i = close + 1;
  }
  return out;
}

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

// The benchmark text (bench/tokenizer_vs_llamacpp.py builds the same bytes).
std::string build_text(const std::string& set_path, double megabytes) {
  std::string unit;
  std::istringstream in(read_file(set_path));
  for (std::string line; std::getline(in, line);) {
    if (line.empty() || line[0] == '#') continue;
    const size_t space = line.find(' ');
    if (space == std::string::npos) continue;  // the empty string
    const std::string text = unescape(std::string_view(line).substr(space + 1));
    if (!valid_utf8(text)) continue;
    unit += text;
    unit += '\n';
  }
  const auto target = static_cast<size_t>(megabytes * 1e6);
  std::string text;
  while (text.size() < target) text += unit;
  return text;
}

uint64_t fnv1a(std::string_view s) {
  uint64_t h = 0xcbf29ce484222325ull;
  for (char c : s) h = (h ^ static_cast<uint8_t>(c)) * 0x100000001b3ull;
  return h;
}

}  // namespace

int main(int argc, char** argv) {
  std::string set_path = EMBER_TESTS_DIR "/data/tokenizer/multilingual.txt";
  std::string text_path, dump_path;
  double megabytes = 4.0;
  int runs = 3;
  std::vector<std::pair<std::string, std::string>> vocabs;
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    const auto value = [&]() -> std::string {
      if (i + 1 >= argc) {
        std::fprintf(stderr, "%s needs a value\n", a.c_str());
        std::exit(2);
      }
      return argv[++i];
    };
    if (a == "--set") {
      set_path = value();
    } else if (a == "--text") {
      text_path = value();
    } else if (a == "--mb") {
      megabytes = std::atof(value().c_str());
    } else if (a == "--runs") {
      runs = std::max(1, std::atoi(value().c_str()));
    } else if (a == "--dump-text") {
      dump_path = value();
    } else if (a.find('=') != std::string::npos) {
      vocabs.emplace_back(a.substr(0, a.find('=')), a.substr(a.find('=') + 1));
    } else {
      std::fprintf(stderr,
                   "usage: %s [--set multilingual.txt] [--text FILE] [--mb 4] [--runs 3] [--dump-text FILE] "
                   "NAME=GGUF...\n",
                   argv[0]);
      return 2;
    }
  }

  std::string text;
  try {
    text = text_path.empty() ? build_text(set_path, megabytes) : read_file(text_path);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "%s\n", e.what());
    return 1;
  }
  std::printf("text: %zu bytes, fnv1a %016llx\n", text.size(), static_cast<unsigned long long>(fnv1a(text)));
  if (!dump_path.empty()) {
    std::ofstream(dump_path, std::ios::binary) << text;
  }

  ember::Tokenizer::EncodeOptions options;
  options.add_bos = false;
  options.add_eos = false;
  options.parse_special = false;
  int status = 0;
  for (const auto& [name, path] : vocabs) {
    auto file = ember::gguf::File::open(path);
    if (!file) {
      std::fprintf(stderr, "%s: %s\n", name.c_str(), file.error().message().c_str());
      status = 1;
      continue;
    }
    auto tok = ember::Tokenizer::from_gguf(*file);
    if (!tok) {
      std::fprintf(stderr, "%s: %s\n", name.c_str(), tok.error().message().c_str());
      status = 1;
      continue;
    }
    double best = 1e30;
    size_t n_tokens = 0;
    for (int r = 0; r < runs; ++r) {
      const auto t0 = std::chrono::steady_clock::now();
      const auto ids = tok->encode(text, options);
      const auto t1 = std::chrono::steady_clock::now();
      best = std::min(best, std::chrono::duration<double>(t1 - t0).count());
      n_tokens = ids.size();
    }
    std::printf("%-14s %8.2f MB/s %10zu tokens %10zu bytes\n", name.c_str(), text.size() / best / 1e6, n_tokens,
                text.size());
    std::fflush(stdout);
  }
  return status;
}
