// libFuzzer target for the tokenizers: encode and decode on hostile input.
// Build and run with tools/fuzz.sh SECONDS (clang, -fsanitize=fuzzer,address,undefined).
//
// Vocabularies: three tiny handcrafted ones (SentencePiece with byte fallback,
// byte-level BPE, WordPiece; always there) and the committed Unigram vocabulary
// tests/data/tokenizer/ugm-tiny.gguf, plus every ggml-vocab-*.gguf in
// $EMBER_TEST_DATA/vocab, stories260K, $EMBER_SMOLLM2_GGUF, and Gemma 4's and
// nomic-bert-moe's vocabularies in $EMBER_PEER_VOCAB, when present.
//
// Input layout:
//   byte 0   which vocabulary (modulo how many there are)
//   byte 1   flags: 1 parse_special, 2 add_bos, 4 add_eos, 8 render_special,
//            16 "special soup" (see below), 32 decode the payload as token ids,
//            64 repeat the payload (byte 2 says how often: 2^(b % 21) times,
//            up to 64 KiB of text; 0xFF: up to 1 MiB), 128 split the payload
//            at byte 2 and put a run of the vocabulary's special-token texts
//            between the halves
//   byte 2   parameter for the modes above
//   rest     payload
// Special soup: each payload byte picks a special-token text of the vocabulary
// (even bytes) or is copied as a raw byte (odd bytes: b >> 1 with the top bit
// kept): long chains of "<|im_start|>", "<s>", "[CLS]" glued to partial UTF-8.
//
// Checked on every input (a failure aborts, which libFuzzer reports):
//   * every id encode() returns is inside the vocabulary;
//   * the streaming Detokenizer never hands out a broken UTF-8 character, and
//     equals decode() whenever decode() is valid UTF-8;
//   * decode(encode(s)) == s when the vocabulary is lossless for s (SentencePiece
//     or byte-level BPE, valid UTF-8, every byte has a token, no special-token
//     parsing, and only ordinary or byte tokens in the result).
#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "ember/gguf/reader.hpp"
#include "ember/gguf/writer.hpp"
#include "ember/tokenizer/detokenizer.hpp"
#include "ember/tokenizer/tokenizer.hpp"

namespace {

using ember::TokenId;
using ember::Tokenizer;

struct Loaded {
  std::string name;
  std::unique_ptr<Tokenizer> tok;
  std::vector<std::string> special_texts;  // control, user-defined, unknown
  std::vector<bool> byte_has_token;        // 256
};

std::vector<Loaded>& vocabs() {
  static std::vector<Loaded> v;
  return v;
}

[[noreturn]] void fail(const char* what, const Loaded& v) {
  std::fprintf(stderr, "fuzz_tokenizer: %s (vocabulary %s)\n", what, v.name.c_str());
  std::abort();
}

void add(std::string name, ember::Result<Tokenizer> tok) {
  if (!tok) {
    std::fprintf(stderr, "fuzz_tokenizer: %s: %s\n", name.c_str(), tok.error().message().c_str());
    return;
  }
  Loaded l;
  l.name = std::move(name);
  l.tok = std::make_unique<Tokenizer>(std::move(*tok));
  for (size_t i = 0; i < l.tok->n_vocab(); ++i) {
    const auto t = l.tok->token_type(static_cast<TokenId>(i));
    if ((t == ember::TokenType::control || t == ember::TokenType::user_defined || t == ember::TokenType::unknown) &&
        !l.tok->token_text(static_cast<TokenId>(i)).empty())
      l.special_texts.emplace_back(l.tok->token_text(static_cast<TokenId>(i)));
  }
  // Keep the soup varied but bounded (DeepSeek has 2,400 user-defined tokens).
  if (l.special_texts.size() > 128) l.special_texts.resize(128);
  const auto spellings = ember::unicode::byte_level_spellings();
  static constexpr char kHex[] = "0123456789ABCDEF";
  l.byte_has_token.resize(256);
  for (int b = 0; b < 256; ++b) {
    if (l.tok->byte_level()) {
      l.byte_has_token[b] = l.tok->find(spellings[b]).has_value();
    } else {
      const char hex[6] = {'<', '0', 'x', kHex[b >> 4], kHex[b & 15], '>'};
      l.byte_has_token[b] = b == ' ' || l.tok->find(std::string_view(hex, 6)).has_value();
    }
  }
  vocabs().push_back(std::move(l));
}

ember::Result<Tokenizer> from_writer(const ember::gguf::Writer& w) {
  const auto bytes = w.to_bytes();
  auto file = ember::gguf::File::from_memory(bytes);
  if (!file) return std::move(file).error();
  return Tokenizer::from_gguf(*file);
}

void add_tiny_vocabs() {
  // SentencePiece: byte tokens, a few pieces with scores, control tokens.
  {
    std::vector<std::string> tokens = {"<unk>", "<s>", "</s>"};
    std::vector<int32_t> types = {2, 3, 3};
    std::vector<float> scores = {0, 0, 0};
    static constexpr char kHex[] = "0123456789ABCDEF";
    for (int b = 0; b < 256; ++b) {
      tokens.push_back(std::string("<0x") + kHex[b >> 4] + kHex[b & 15] + ">");
      types.push_back(6);
      scores.push_back(0);
    }
    const char* pieces[] = {"\xE2\x96\x81",
                            "a",
                            "b",
                            "ab",
                            "\xE2\x96\x81"
                            "a",
                            "\xE2\x96\x81"
                            "ab",
                            "\xE2\x96\x81\xE2\x96\x81",
                            "\xC3\xA9",
                            "\xE4\xB8\xAD",
                            "\xE4\xB8\xAD\xE6\x96\x87",
                            "ba",
                            "aba",
                            "<tag>"};
    float score = -1;
    for (const char* p : pieces) {
      tokens.emplace_back(p);
      types.push_back(std::string_view(p) == "<tag>" ? 4 : 1);
      scores.push_back(score -= 0.5f);
    }
    ember::gguf::Writer w;
    w.add_string("tokenizer.ggml.model", "llama");
    w.add_strings("tokenizer.ggml.tokens", tokens);
    w.add_i32s("tokenizer.ggml.token_type", types);
    w.add_f32s("tokenizer.ggml.scores", scores);
    add("tiny-spm", from_writer(w));
  }
  // Byte-level BPE: all 256 byte spellings and a few merges.
  {
    const auto spellings = ember::unicode::byte_level_spellings();
    std::vector<std::string> tokens(spellings.begin(), spellings.end());
    const std::pair<std::string, std::string> merges[] = {
        {"a", "b"}, {"\xC4\xA0", "ab"}, {"1", "2"}, {"\xC4\xA0", "\xC4\xA0"}, {"ab", "ab"}, {"\xC3", "\xA9"}};
    std::vector<std::string> merge_lines;
    for (const auto& [a, b] : merges) {
      merge_lines.push_back(a + " " + b);
      tokens.push_back(a + b);
    }
    tokens.push_back("<|endoftext|>");
    tokens.push_back("<|im_start|>");
    std::vector<int32_t> types(tokens.size(), 1);
    types[types.size() - 2] = 3;
    types[types.size() - 1] = 4;
    ember::gguf::Writer w;
    w.add_string("tokenizer.ggml.model", "gpt2");
    w.add_string("tokenizer.ggml.pre", "llama-bpe");
    w.add_strings("tokenizer.ggml.tokens", tokens);
    w.add_i32s("tokenizer.ggml.token_type", types);
    w.add_strings("tokenizer.ggml.merges", merge_lines);
    add("tiny-bpe", from_writer(w));
  }
  // WordPiece.
  {
    std::vector<std::string> tokens = {"[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"};
    for (const char* p : {"\xE2\x96\x81"
                          "hello",
                          "\xE2\x96\x81"
                          "world",
                          "\xE2\x96\x81"
                          "a",
                          "ing", "s",
                          "\xE2\x96\x81"
                          ",",
                          "\xE2\x96\x81\xE4\xB8\xAD",
                          "\xE2\x96\x81"
                          "e",
                          "##"})
      tokens.emplace_back(p);
    std::vector<int32_t> types(tokens.size(), 1);
    for (int i = 0; i < 5; ++i) types[i] = 3;
    ember::gguf::Writer w;
    w.add_string("tokenizer.ggml.model", "bert");
    w.add_strings("tokenizer.ggml.tokens", tokens);
    w.add_i32s("tokenizer.ggml.token_type", types);
    w.add_u32("tokenizer.ggml.unknown_token_id", 1);
    w.add_u32("tokenizer.ggml.cls_token_id", 2);
    w.add_u32("tokenizer.ggml.seperator_token_id", 3);
    add("tiny-wordpiece", from_writer(w));
  }
}

void add_file(const std::string& name, const std::string& path) {
  auto file = ember::gguf::File::open(path);
  if (!file) {
    std::fprintf(stderr, "fuzz_tokenizer: %s: %s\n", path.c_str(), file.error().message().c_str());
    return;
  }
  add(name, Tokenizer::from_gguf(*file));
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

std::string stream(const Tokenizer& tok, std::span<const TokenId> ids, bool strip, bool render_special) {
  ember::Detokenizer detok(tok, strip, render_special);
  std::string out;
  for (TokenId id : ids) out += detok.push(id);
  return out + detok.flush();
}

void check_decode(const Loaded& v, std::span<const TokenId> ids, bool render_special) {
  const Tokenizer& tok = *v.tok;
  const std::string decoded = tok.decode(ids, render_special);
  const std::string streamed = stream(tok, ids, tok.strips_leading_space(), render_special);
  if (ember::unicode::complete_utf8_prefix(streamed) != streamed.size() || !valid_utf8(streamed)) {
    // The Detokenizer promises characters, never broken ones (surrogates and
    // overlong forms written by byte tokens are the one exception it lets by).
    for (size_t pos = 0; pos < streamed.size();) {
      const auto d = ember::unicode::decode_utf8(streamed, pos);
      if (d.length == 1 && static_cast<uint8_t>(streamed[pos]) >= 0x80) fail("Detokenizer emitted broken UTF-8", v);
      pos += d.length;
    }
  }
  if (valid_utf8(decoded) && streamed != decoded) fail("Detokenizer differs from decode()", v);
}

}  // namespace

extern "C" int LLVMFuzzerInitialize(int*, char***) {
  add_tiny_vocabs();
  std::string data;
  if (const char* d = std::getenv("EMBER_TEST_DATA"); d && *d) data = d;
  if (!data.empty()) {
    std::vector<std::filesystem::path> files;
    std::error_code ec;
    for (const auto& e : std::filesystem::directory_iterator(data + "/vocab", ec))
      if (e.path().extension() == ".gguf") files.push_back(e.path());
    std::sort(files.begin(), files.end());
    for (const auto& f : files) add_file(f.stem().string(), f.string());
    if (std::filesystem::exists(data + "/stories260K/stories260K.gguf"))
      add_file("stories260K", data + "/stories260K/stories260K.gguf");
  }
  if (const char* s = std::getenv("EMBER_SMOLLM2_GGUF"); s && *s && std::filesystem::exists(s)) add_file("smollm2", s);
#ifdef EMBER_TESTS_DIR
  add_file("ugm-tiny", EMBER_TESTS_DIR "/data/tokenizer/ugm-tiny.gguf");
#endif
  if (const char* d = std::getenv("EMBER_PEER_VOCAB"); d && *d) {
    for (const char* name : {"gemma-4", "nomic-bert-moe"}) {
      const std::string path = std::string(d) + "/ggml-vocab-" + name + ".gguf";
      if (std::filesystem::exists(path)) add_file(name, path);
    }
  }
  std::fprintf(stderr, "fuzz_tokenizer: %zu vocabularies:", vocabs().size());
  for (const auto& v : vocabs()) std::fprintf(stderr, " %s", v.name.c_str());
  std::fprintf(stderr, "\n");
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size < 3 || vocabs().empty()) return 0;
  const Loaded& v = vocabs()[data[0] % vocabs().size()];
  const Tokenizer& tok = *v.tok;
  const uint8_t flags = data[1], param = data[2];
  const std::string_view payload(reinterpret_cast<const char*>(data + 3), size - 3);

  Tokenizer::EncodeOptions options;
  options.parse_special = flags & 1;
  options.add_bos = (flags & 2) != 0;
  options.add_eos = (flags & 4) != 0;
  const bool render_special = flags & 8;

  if (flags & 32) {
    // Arbitrary ids, in and out of range.
    std::vector<TokenId> ids;
    for (size_t i = 0; i + 4 <= payload.size(); i += 4) {
      uint32_t u;
      std::memcpy(&u, payload.data() + i, 4);
      const auto n = static_cast<int64_t>(tok.n_vocab());
      ids.push_back(static_cast<TokenId>(static_cast<int64_t>(u % static_cast<uint32_t>(n + 8)) - 4));
    }
    check_decode(v, ids, render_special);
    for (TokenId id : ids) (void)tok.token_to_piece(id, render_special);
    return 0;
  }

  std::string text;
  if (flags & 16) {
    for (char c : payload) {
      const auto b = static_cast<uint8_t>(c);
      if ((b & 1) == 0 && !v.special_texts.empty()) {
        text += v.special_texts[(b >> 1) % v.special_texts.size()];
      } else {
        text.push_back(static_cast<char>(b >> 1 | (b & 0x80)));
      }
    }
  } else if (flags & 128) {
    const size_t cut = payload.empty() ? 0 : param % (payload.size() + 1);
    text.assign(payload.substr(0, cut));
    for (size_t k = 0; k < v.special_texts.size() && k < 8; ++k)
      text += v.special_texts[(param + k) % v.special_texts.size()];
    text.append(payload.substr(cut));
  } else {
    text.assign(payload);
  }
  if ((flags & 64) && !text.empty()) {
    // Up to 64 KiB of text; 1 MiB when byte 2 is 0xFF (kept rare: slow under ASan).
    const size_t times = param == 0xFF ? SIZE_MAX / 2 / text.size() : size_t{1} << (param % 21);
    const size_t cap = param == 0xFF ? size_t{1} << 20 : size_t{1} << 16;
    const std::string unit = text;
    while (text.size() < cap && text.size() < unit.size() * times) text += unit;
  }

  const std::vector<TokenId> ids = tok.encode(text, options);
  for (TokenId id : ids)
    if (!tok.vocab().contains(id)) fail("encode() returned an id outside the vocabulary", v);
  check_decode(v, ids, render_special);

  // Round trip where the vocabulary is lossless for this text.
  const bool lossless_kind = tok.kind() == Tokenizer::Kind::spm || tok.kind() == Tokenizer::Kind::bpe;
  const bool plain = !options.parse_special && !(flags & (16 | 128));
  bool covered = true;
  for (char c : text) covered = covered && v.byte_has_token[static_cast<uint8_t>(c)];
  // Vocabularies that write spaces as U+2581 (SentencePiece's escape; not byte-level) decode a
  // literal U+2581 in the text as a space too, as SentencePiece and llama.cpp do.
  const bool escape_free = tok.byte_level() || text.find("\xE2\x96\x81") == std::string::npos;
  if (lossless_kind && plain && covered && escape_free && valid_utf8(text)) {
    Tokenizer::EncodeOptions no_extras;
    no_extras.add_bos = false;
    no_extras.add_eos = false;
    const auto bare = tok.encode(text, no_extras);
    // A user-defined token found in the text may swallow white space next to
    // it (Phi-3's rstrip): only texts made of ordinary pieces must come back.
    const bool ordinary = std::all_of(bare.begin(), bare.end(), [&](TokenId id) {
      const auto t = tok.token_type(id);
      return t == ember::TokenType::normal || t == ember::TokenType::byte;
    });
    if (ordinary && tok.decode(bare) != text) fail("decode(encode(s)) != s on a lossless vocabulary", v);
  }
  return 0;
}
