// Tokenizer tests: llama.cpp's tokenizer test vectors for every vocabulary in
// shared/data/vocab, round trips, streaming detokenization, hostile input, and
// handcrafted GGUF files for the error paths.
#include <doctest/doctest.h>

#include <algorithm>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <optional>
#include <sstream>
#include <string>
#include <vector>

#include "data_path.hpp"
#include "ember/gguf/reader.hpp"
#include "ember/gguf/writer.hpp"
#include "ember/tokenizer/detokenizer.hpp"
#include "ember/tokenizer/tokenizer.hpp"

namespace {

using ember::TokenId;
using ember::Tokenizer;

std::string read_all(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream s;
  s << in.rdbuf();
  return s.str();
}

// NAME.gguf.inp: strings, each followed by "\n__ggml_vocab_test__\n".
// NAME.gguf.out: one line of space-separated ids per string.
struct Vectors {
  std::vector<std::string> inputs;
  std::vector<std::vector<TokenId>> expected;
};

Vectors read_vectors(const std::string& gguf_path) {
  Vectors v;
  const std::string inp = read_all(gguf_path + ".inp");
  const std::string separator = "\n__ggml_vocab_test__\n";
  for (size_t pos = 0; pos < inp.size();) {
    size_t end = inp.find(separator, pos);
    if (end == std::string::npos) end = inp.size();
    v.inputs.push_back(inp.substr(pos, end - pos));
    pos = end + separator.size();
  }
  std::istringstream out(read_all(gguf_path + ".out"));
  for (std::string line; std::getline(out, line);) {
    std::istringstream ids(line);
    std::vector<TokenId> row;
    for (TokenId id; ids >> id;) row.push_back(id);
    v.expected.push_back(std::move(row));
  }
  return v;
}

std::string join(const std::vector<TokenId>& ids) {
  std::string s;
  for (TokenId id : ids) s += (s.empty() ? "" : " ") + std::to_string(id);
  return s;
}

// (Designated initializers that skip members draw -Wmissing-field-initializers from GCC 12.)
Tokenizer::EncodeOptions options(std::optional<bool> add_bos, std::optional<bool> add_eos = std::nullopt,
                                 bool parse_special = false) {
  Tokenizer::EncodeOptions o;
  o.add_bos = add_bos;
  o.add_eos = add_eos;
  o.parse_special = parse_special;
  return o;
}

// Loads a tokenizer from shared data; the GGUF file may close afterwards.
std::optional<Tokenizer> load(const std::string& path) {
  auto file = ember::gguf::File::open(path);
  REQUIRE_MESSAGE(file.ok(), (file.ok() ? std::string() : file.error().message()));
  auto tok = Tokenizer::from_gguf(*file);
  REQUIRE_MESSAGE(tok.ok(), (tok.ok() ? std::string() : tok.error().message()));
  return std::move(*tok);
}

std::string stream_decode(const Tokenizer& tok, const std::vector<TokenId>& ids, bool strip) {
  ember::Detokenizer detok(tok, strip);
  std::string s;
  for (TokenId id : ids) s += detok.push(id);
  return s + detok.flush();
}

// Runs one vocabulary's vectors; returns how many passed.
size_t run_vectors(const std::string& name, const std::string& path, bool lossless) {
  auto file = ember::gguf::File::open(path);
  REQUIRE_MESSAGE(file.ok(), (file.ok() ? std::string() : file.error().message()));
  auto tok = Tokenizer::from_gguf(*file);
  REQUIRE_MESSAGE(tok.ok(), (tok.ok() ? std::string() : tok.error().message()));
  const Vectors v = read_vectors(path);
  REQUIRE(v.inputs.size() == v.expected.size());
  REQUIRE(!v.inputs.empty());

  size_t passed = 0;
  for (size_t i = 0; i < v.inputs.size(); ++i) {
    CAPTURE(name);
    CAPTURE(i);
    CAPTURE(v.inputs[i]);
    const auto ids = tok->encode(v.inputs[i], options(false, false));
    if (ids == v.expected[i]) {
      ++passed;
    } else {
      MESSAGE(name << " #" << i << " got [" << join(ids) << "] want [" << join(v.expected[i]) << "]");
    }
    const std::string decoded = tok->decode(ids);
    if (lossless) CHECK(decoded == v.inputs[i]);
    // Streaming gives the same bytes as decoding all at once.
    CHECK(stream_decode(*tok, ids, tok->strips_leading_space()) == decoded);
  }
  MESSAGE(name << ": " << passed << "/" << v.inputs.size() << " vectors pass");
  return passed;
}

}  // namespace

// ---------------------------------------------------------------------------
// llama.cpp's test vectors

TEST_CASE("tokenizer vectors: llama-spm (SentencePiece)") {
  EMBER_REQUIRE_DATA(path, "vocab/ggml-vocab-llama-spm.gguf");
  CHECK(run_vectors("llama-spm", path, true) == 46);
}

TEST_CASE("tokenizer vectors: phi-3 (SentencePiece)") {
  EMBER_REQUIRE_DATA(path, "vocab/ggml-vocab-phi-3.gguf");
  CHECK(run_vectors("phi-3", path, true) == 46);
}

TEST_CASE("tokenizer vectors: gpt-2 (byte-level BPE)") {
  EMBER_REQUIRE_DATA(path, "vocab/ggml-vocab-gpt-2.gguf");
  CHECK(run_vectors("gpt-2", path, true) == 46);
}

TEST_CASE("tokenizer vectors: deepseek-llm") {
  EMBER_REQUIRE_DATA(path, "vocab/ggml-vocab-deepseek-llm.gguf");
  CHECK(run_vectors("deepseek-llm", path, true) == 46);
}

TEST_CASE("tokenizer vectors: falcon") {
  EMBER_REQUIRE_DATA(path, "vocab/ggml-vocab-falcon.gguf");
  CHECK(run_vectors("falcon", path, true) == 46);
}

TEST_CASE("tokenizer vectors: starcoder") {
  EMBER_REQUIRE_DATA(path, "vocab/ggml-vocab-starcoder.gguf");
  CHECK(run_vectors("starcoder", path, true) == 46);
}

TEST_CASE("tokenizer vectors: mpt") {
  EMBER_REQUIRE_DATA(path, "vocab/ggml-vocab-mpt.gguf");
  CHECK(run_vectors("mpt", path, true) == 46);
}

TEST_CASE("tokenizer vectors: bert-bge (WordPiece)") {
  EMBER_REQUIRE_DATA(path, "vocab/ggml-vocab-bert-bge.gguf");
  // WordPiece lowercases and drops accents: not lossless.
  CHECK(run_vectors("bert-bge", path, false) == 46);
}

// llama.cpp's own vocabulary files with vectors, from the llama-cpp-python sdist
// (tools/fetch-peer-vocabs.sh; EMBER_PEER_VOCAB names the folder). The eight above
// are among them again (the same files); the rest cover more pre-tokenizers and
// Gemma 4's SentencePiece-style BPE.

namespace {

struct PeerVocab {
  const char* name;
  size_t vectors;
  bool lossless;
};

constexpr PeerVocab kPeerVocabs[] = {
    {"llama-bpe", 46, true},      {"qwen2", 46, true},  {"qwen35", 50, true},       {"command-r", 46, true},
    {"deepseek-coder", 46, true}, {"refact", 46, true}, {"gemma-4", 46, true},      {"llama-spm", 46, true},
    {"phi-3", 46, true},          {"gpt-2", 46, true},  {"deepseek-llm", 46, true}, {"falcon", 46, true},
    {"starcoder", 46, true},      {"mpt", 46, true},    {"bert-bge", 46, false},
};

void run_peer_vectors(const PeerVocab& v) {
  EMBER_REQUIRE_PEER_VOCAB(path, std::string("ggml-vocab-") + v.name + ".gguf");
  CHECK(run_vectors(v.name, path, v.lossless) == v.vectors);
}

}  // namespace

TEST_CASE("tokenizer vectors: llama.cpp's vocabularies (EMBER_PEER_VOCAB)") {
  for (const PeerVocab& v : kPeerVocabs) {
    CAPTURE(v.name);
    run_peer_vectors(v);
  }
  // Every vocabulary there with vectors is in the list above.
  if (const char* dir = std::getenv("EMBER_PEER_VOCAB"); dir && *dir) {
    for (const auto& e : std::filesystem::directory_iterator(dir)) {
      const std::string file = e.path().filename().string();
      const std::string prefix = "ggml-vocab-", suffix = ".gguf.inp";
      if (file.size() <= prefix.size() + suffix.size() || file.compare(0, prefix.size(), prefix) != 0 ||
          file.compare(file.size() - suffix.size(), suffix.size(), suffix) != 0)
        continue;
      const std::string name = file.substr(prefix.size(), file.size() - prefix.size() - suffix.size());
      CHECK_MESSAGE(std::any_of(std::begin(kPeerVocabs), std::end(kPeerVocabs),
                                [&](const PeerVocab& p) { return name == p.name; }),
                    name << " has vectors but no entry in kPeerVocabs");
    }
  }
}

// ---------------------------------------------------------------------------
// Behaviour on real vocabularies

TEST_CASE("tokenizer: special ids, flags and pieces") {
  EMBER_REQUIRE_DATA(spm_path, "vocab/ggml-vocab-llama-spm.gguf");
  EMBER_REQUIRE_DATA(gpt2_path, "vocab/ggml-vocab-gpt-2.gguf");
  EMBER_REQUIRE_DATA(phi3_path, "vocab/ggml-vocab-phi-3.gguf");
  EMBER_REQUIRE_DATA(bert_path, "vocab/ggml-vocab-bert-bge.gguf");
  const auto spm = load(spm_path);
  const auto gpt2 = load(gpt2_path);
  const auto phi3 = load(phi3_path);
  const auto bert = load(bert_path);

  CHECK(spm->kind() == Tokenizer::Kind::spm);
  CHECK(spm->n_vocab() == 32000);
  CHECK(spm->bos() == 1);
  CHECK(spm->eos() == 2);
  CHECK(spm->add_bos());
  CHECK(spm->add_space_prefix());
  CHECK(spm->encode("Hello") == std::vector<TokenId>{1, 15043});
  CHECK(spm->encode("Hello", options(false)) == std::vector<TokenId>{15043});
  CHECK(spm->token_text(15043) == "\xE2\x96\x81Hello");
  CHECK(spm->token_to_piece(15043) == " Hello");
  CHECK(spm->token_to_piece(13) == "\n");  // <0x0A>
  CHECK(spm->token_to_piece(1).empty());
  CHECK(spm->token_to_piece(1, true) == "<s>");
  CHECK(spm->decode(std::vector<TokenId>{1, 15043, 3186}) == "Hello world");
  CHECK(spm->decode(std::vector<TokenId>{1, 15043}, true) == "<s> Hello");
  CHECK(spm->find("<0x0A>") == 13);
  CHECK(!spm->find("no such token"));
  CHECK(spm->is_end_of_generation(2));
  CHECK(!spm->is_end_of_generation(1));

  CHECK(gpt2->kind() == Tokenizer::Kind::bpe);
  CHECK(gpt2->bos() == 50256);
  CHECK(!gpt2->add_bos());
  CHECK(!gpt2->add_space_prefix());
  CHECK(gpt2->is_end_of_generation(50256));
  CHECK(!gpt2->is_end_of_generation(0));
  CHECK(gpt2->token_to_piece(*gpt2->find("\xC4\xA0world")) == " world");  // "Ġworld"
  CHECK(gpt2->token_to_piece(*gpt2->find("\xC4\x8A")) == "\n");           // "Ċ"
  CHECK(gpt2->token_to_piece(-1).empty());
  CHECK(gpt2->token_to_piece(50257).empty());

  CHECK(phi3->is_end_of_generation(*phi3->find("<|end|>")));
  CHECK(phi3->is_end_of_generation(32000));  // <|endoftext|>, its EOS

  CHECK(bert->kind() == Tokenizer::Kind::wordpiece);
  CHECK(bert->encode("Hello world") == std::vector<TokenId>{101, 7592, 2088, 102});
  // WordPiece pieces know only "starts a word": punctuation comes back spaced.
  CHECK(bert->decode(bert->encode("Hello, world!")) == "hello , world !");
  CHECK(!bert->is_end_of_generation(102));
}

TEST_CASE("tokenizer: special tokens are matched only when asked") {
  EMBER_REQUIRE_DATA(gpt2_path, "vocab/ggml-vocab-gpt-2.gguf");
  EMBER_REQUIRE_DATA(spm_path, "vocab/ggml-vocab-llama-spm.gguf");
  const auto gpt2 = load(gpt2_path);
  const auto spm = load(spm_path);

  const std::string text = "a<|endoftext|>b";
  const auto plain = gpt2->encode(text);
  const auto special = gpt2->encode(text, options(std::nullopt, std::nullopt, true));
  CHECK(std::find(plain.begin(), plain.end(), 50256) == plain.end());
  CHECK(special == std::vector<TokenId>{64, 50256, 65});
  CHECK(gpt2->decode(plain) == text);
  CHECK(gpt2->decode(special) == "ab");
  CHECK(gpt2->decode(special, true) == text);

  // After a special token SentencePiece starts a new text, with its space prefix.
  CHECK(spm->encode("<s>Hello", options(false, std::nullopt, true)) == std::vector<TokenId>{1, 15043});
  CHECK(spm->encode("</s>", options(false, std::nullopt, true)) == std::vector<TokenId>{2});
  const auto literal = spm->encode("</s>", options(false));
  CHECK(std::find(literal.begin(), literal.end(), 2) == literal.end());
}

TEST_CASE("detokenizer: holds back a character split across byte tokens") {
  EMBER_REQUIRE_DATA(spm_path, "vocab/ggml-vocab-llama-spm.gguf");
  EMBER_REQUIRE_DATA(gpt2_path, "vocab/ggml-vocab-gpt-2.gguf");
  const auto spm = load(spm_path);
  const auto gpt2 = load(gpt2_path);

  // "🦙" has no token: SentencePiece falls back to its four bytes.
  const auto ids = spm->encode("\xF0\x9F\xA6\x99", options(false));
  REQUIRE(ids == std::vector<TokenId>{29871, 243, 162, 169, 156});
  {
    ember::Detokenizer detok(*spm);
    CHECK(detok.push(ids[0]) == " ");
    CHECK(detok.push(ids[1]).empty());
    CHECK(detok.push(ids[2]).empty());
    CHECK(detok.push(ids[3]).empty());
    CHECK(detok.push(ids[4]) == "\xF0\x9F\xA6\x99");
    CHECK(detok.flush().empty());
  }
  {
    ember::Detokenizer detok(*spm, /*strip_leading_space=*/true);
    CHECK(detok.push(ids[0]).empty());
    CHECK(detok.push(ids[1]).empty());
    CHECK(detok.push(ids[2]).empty());
    CHECK(detok.flush() == "\xEF\xBF\xBD");  // an unfinished character becomes U+FFFD
  }
  {
    // A byte that cannot start a character is replaced at once.
    ember::Detokenizer detok(*spm);
    CHECK(detok.push(*spm->find("<0xFF>")) == "\xEF\xBF\xBD");
    CHECK(detok.push(*spm->find("<0xE2>")).empty());
    CHECK(detok.push(*spm->find("\xE2\x96\x81Hello")) == "\xEF\xBF\xBD Hello");
  }
  // Byte-level BPE splits characters across tokens too.
  const std::string text = "\xF0\x9F\xA6\x99 \xE4\xBD\xA0\xE5\xA5\xBD";  // "🦙 你好"
  const auto bpe_ids = gpt2->encode(text);
  ember::Detokenizer detok(*gpt2);
  std::string streamed;
  for (TokenId id : bpe_ids) {
    const std::string piece = detok.push(id);
    CHECK(ember::unicode::complete_utf8_prefix(piece) == piece.size());
    streamed += piece;
  }
  streamed += detok.flush();
  CHECK(streamed == text);
}

TEST_CASE("tokenizer: invalid UTF-8 does not crash") {
  const std::vector<std::string> nasty = {
      std::string("\xFF\xFE\xFD", 3),
      std::string("a\x80"
                  "b",
                  3),
      std::string("\xC3", 1),
      std::string("\xE2\x82", 2),
      std::string("\xF0\x9F\xA6", 3),
      std::string("\xC0\x80", 2),
      std::string("\xED\xA0\x80", 3),
      std::string("\xF4\x90\x80\x80", 4),
      std::string("\xF8\x88\x80\x80\x80", 5),
      std::string("x\0y", 3),
      std::string("\xE2\x96", 2),
  };
  for (const char* name :
       {"llama-spm", "phi-3", "gpt-2", "deepseek-llm", "falcon", "starcoder", "mpt", "bert-bge", "ugm-tiny"}) {
    const std::string path = std::string(name) == "ugm-tiny"
                                 ? std::string(EMBER_TESTS_DIR "/data/tokenizer/ugm-tiny.gguf")
                                 : ember::test::data_file(std::string("vocab/ggml-vocab-") + name + ".gguf");
    if (path.empty()) {
      EMBER_REQUIRE_DATA(missing, std::string("vocab/ggml-vocab-") + name + ".gguf");
    }
    const auto tok = load(path);
    for (const auto& s : nasty) {
      CAPTURE(name);
      CAPTURE(s);
      const auto ids = tok->encode(s, options(std::nullopt, std::nullopt, true));
      for (TokenId id : ids) CHECK(tok->vocab().contains(id));
      const std::string decoded = tok->decode(ids);
      // Streaming never hands out a broken character, even for broken input.
      const std::string streamed = stream_decode(*tok, ids, tok->strips_leading_space());
      CHECK(ember::unicode::complete_utf8_prefix(streamed) == streamed.size());
      // SentencePiece keeps raw bytes through byte fallback.
      if (tok->kind() == Tokenizer::Kind::spm) CHECK(decoded == s);
    }
  }
}

TEST_CASE("tokenizer: Unigram (ugm-tiny: SentencePiece's normalization, specials, unknowns)") {
  const auto tok = load(EMBER_TESTS_DIR "/data/tokenizer/ugm-tiny.gguf");
  CHECK(tok->kind() == Tokenizer::Kind::ugm);
  CHECK(!tok->add_bos());
  CHECK(tok->add_eos());
  CHECK(tok->eos() == 1);
  CHECK(tok->unknown() == 2);
  CHECK(tok->strips_leading_space());
  // EOS is added by default; spaces are merged and the text gets a space in front.
  const auto ids = tok->encode("  Hello   world ");
  REQUIRE(!ids.empty());
  CHECK(ids.back() == 1);
  CHECK(tok->decode(ids) == "Hello world");
  // NFKC: the full-width letters and the ligature read as plain ASCII.
  CHECK(tok->encode("\xEF\xBC\xA8"
                    "ello \xEF\xAC\x81"
                    "ne",
                    options(false, false)) == tok->encode("Hello fine", options(false, false)));
  // The user-defined token is found inside words, the control token only when asked.
  const TokenId tag = *tok->find("<tag>"), ctl = *tok->find("<ctl>");
  const auto with_tag = tok->encode("a<tag>b", options(false, false));
  CHECK(std::count(with_tag.begin(), with_tag.end(), tag) == 1);
  const auto plain = tok->encode("<ctl>", options(false, false));
  CHECK(std::find(plain.begin(), plain.end(), ctl) == plain.end());
  CHECK(tok->encode("<ctl>", options(false, false, true)) == std::vector<TokenId>{ctl});
  // A run of characters no token covers is one unknown token.
  const auto unknown = tok->encode("\xF0\x9F\x9B\xB8\xF0\x9F\x9B\xB8", options(false, false));  // two flying saucers
  CHECK(std::count(unknown.begin(), unknown.end(), tok->unknown()) == 1);
  CHECK(tok->encode("", options(false, false)).empty());
}

TEST_CASE("tokenizer: stories260K (llama2.c vocabulary)") {
  EMBER_REQUIRE_DATA(path, "stories260K/stories260K.gguf");
  const auto tok = load(path);
  CHECK(tok->n_vocab() == 512);
  CHECK(tok->kind() == Tokenizer::Kind::spm);
  const std::string text = "Once upon a time, there was a little girl named Lily.\nShe liked 3 cats!";
  const auto ids = tok->encode(text);
  REQUIRE(!ids.empty());
  CHECK(ids[0] == tok->bos());
  CHECK(tok->decode(ids) == text);
  CHECK(stream_decode(*tok, ids, true) == text);
}

// ---------------------------------------------------------------------------
// Handcrafted vocabularies (no shared data needed)

namespace {

struct TinyBpe {
  std::vector<std::string> tokens;
  std::vector<std::string> merges;
};

// A byte-level vocabulary: the 256 byte spellings, then the merges' results.
TinyBpe tiny_bpe(std::initializer_list<std::pair<std::string, std::string>> merges) {
  TinyBpe v;
  const auto spellings = ember::unicode::byte_level_spellings();
  v.tokens.assign(spellings.begin(), spellings.end());
  for (const auto& [a, b] : merges) {
    v.merges.push_back(a + " " + b);
    v.tokens.push_back(a + b);
  }
  v.tokens.push_back("<|endoftext|>");
  return v;
}

ember::gguf::Writer bpe_writer(const TinyBpe& v, std::string_view pre) {
  ember::gguf::Writer w;
  w.add_string("tokenizer.ggml.model", "gpt2");
  w.add_string("tokenizer.ggml.pre", pre);
  w.add_strings("tokenizer.ggml.tokens", v.tokens);
  std::vector<int32_t> types(v.tokens.size(), 1);
  types.back() = 3;
  w.add_i32s("tokenizer.ggml.token_type", types);
  w.add_strings("tokenizer.ggml.merges", v.merges);
  return w;
}

ember::Result<Tokenizer> from_bytes(const std::vector<std::byte>& bytes) {
  auto file = ember::gguf::File::from_memory(bytes);
  if (!file) return std::move(file).error();
  return Tokenizer::from_gguf(*file);
}

std::vector<std::string> pieces(const Tokenizer& tok, const std::vector<TokenId>& ids) {
  std::vector<std::string> out;
  for (TokenId id : ids) out.push_back(tok.token_to_piece(id));
  return out;
}

using Strings = std::vector<std::string>;

}  // namespace

TEST_CASE("tokenizer: pre-tokenizers on a tiny byte-level vocabulary") {
  const auto v = tiny_bpe({{"a", "b"}, {"1", "2"}, {"\xC4\xA0", "ab"}});  // "Ġ ab": " ab"
  const auto gpt2_bytes = bpe_writer(v, "gpt-2").to_bytes();
  const auto smollm_bytes = bpe_writer(v, "smollm").to_bytes();
  auto gpt2 = from_bytes(gpt2_bytes);
  auto smollm = from_bytes(smollm_bytes);
  REQUIRE_MESSAGE(gpt2.ok(), (gpt2.ok() ? std::string() : gpt2.error().message()));
  REQUIRE_MESSAGE(smollm.ok(), (smollm.ok() ? std::string() : smollm.error().message()));
  // GPT-2 keeps digit runs together; SmolLM (StarCoder) splits every digit.
  CHECK(pieces(*gpt2, gpt2->encode("ab12 ab")) == Strings{"ab", "12", " ab"});
  CHECK(pieces(*smollm, smollm->encode("ab12 ab")) == Strings{"ab", "1", "2", " ab"});
  CHECK(gpt2->decode(gpt2->encode("ab12 ab")) == "ab12 ab");
  CHECK(gpt2->bos() == 11);  // llama.cpp's default when the file names none
  CHECK(gpt2->is_end_of_generation(static_cast<TokenId>(v.tokens.size() - 1)));
}

TEST_CASE("tokenizer: SentencePiece merges on a tiny vocabulary") {
  // Expected ids from llama.cpp on the same vocabulary (written with gguf-py).
  std::vector<std::string> tokens = {"<unk>", "<s>", "</s>"};
  std::vector<int32_t> types = {2, 3, 3};
  std::vector<float> scores = {0, 0, 0};
  static constexpr char kHex[] = "0123456789ABCDEF";
  for (int b = 0; b < 256; ++b) {
    tokens.push_back(std::string("<0x") + kHex[b >> 4] + kHex[b & 15] + ">");
    types.push_back(6);
    scores.push_back(0);
  }
  const std::string space = "\xE2\x96\x81";  // U+2581
  const std::pair<std::string, float> pieces[] = {{space, -1.0f}, {"a", -2.0f},          {"b", -2.0f},  {"ab", -1.5f},
                                                  {"ba", -1.5f},  {space + "ab", -0.5f}, {"xy", -1.0f}, {"aba", -0.2f}};
  for (const auto& [text, score] : pieces) {
    tokens.emplace_back(text);  // ids 259..266
    types.push_back(1);
    scores.push_back(score);
  }
  ember::gguf::Writer w;
  w.add_string("tokenizer.ggml.model", "llama");
  w.add_strings("tokenizer.ggml.tokens", tokens);
  w.add_i32s("tokenizer.ggml.token_type", types);
  w.add_f32s("tokenizer.ggml.scores", scores);
  auto tok = from_bytes(w.to_bytes());
  REQUIRE_MESSAGE(tok.ok(), (tok.ok() ? std::string() : tok.error().message()));
  const auto encode = [&](std::string_view text) { return tok->encode(text, options(false)); };
  // Equal scores: the leftmost pair merges first ("ab" before "ba").
  CHECK(encode("aba") == std::vector<TokenId>{259, 266});
  CHECK(encode("bab") == std::vector<TokenId>{259, 263, 261});
  CHECK(encode("abab") == std::vector<TokenId>{259, 266, 261});
  // "x" and "y" are no tokens, yet merge into "xy"; alone they fall back to bytes.
  CHECK(encode("xy") == std::vector<TokenId>{259, 265});
  CHECK(encode("xyxy") == std::vector<TokenId>{259, 265, 265});
  CHECK(encode("yx") == std::vector<TokenId>{259, 3 + 'y', 3 + 'x'});
  // No token holds "b\u2581": the text splits there without changing the result.
  CHECK(encode("ab ab") == std::vector<TokenId>{264, 264});
  CHECK(encode("").empty());
  CHECK(tok->decode(encode("ab xy yx")) == "ab xy yx");
}

TEST_CASE("pretokenize: GPT-2 and Llama 3 splits") {
  using ember::pretokenize::Pass;
  const auto split = [](std::initializer_list<Pass> passes, std::string_view text) {
    const auto cps = ember::unicode::decode_utf8(text);
    const std::vector<Pass> p(passes);
    Strings out;
    size_t begin = 0;
    for (size_t len : ember::pretokenize::split(p, cps)) {
      std::string word;
      for (size_t i = begin; i < begin + len; ++i) ember::unicode::append_utf8(word, cps[i]);
      out.push_back(word);
      begin += len;
    }
    return out;
  };
  CHECK(split({Pass::gpt2}, "Hello world's 1234  x\n\n") ==
        Strings{"Hello", " world", "'s", " 1234", " ", " x", "\n\n"});
  CHECK(split({Pass::llama3}, "Hello world's 1234  x\n\n") ==
        Strings{"Hello", " world", "'s", " ", "123", "4", " ", " x", "\n\n"});
  CHECK(split({Pass::llama3}, "I'M here!!\n ok") == Strings{"I", "'M", " here", "!!\n", " ok"});
  CHECK(split({Pass::each_number, Pass::gpt2}, "x 42") == Strings{"x", " ", "4", "2"});
  CHECK(split({Pass::gpt2}, "\xC2\xA0\xE3\x80\x80word") == Strings{"\xC2\xA0", "\xE3\x80\x80", "word"});
  CHECK(split({Pass::gpt2}, "").empty());
  // Tekken (as llama.cpp runs it): upper* lower+ or upper+ lower*, so case changes split words.
  CHECK(split({Pass::tekken}, "XMLHttpRequest getHTTP 42/x\n") ==
        Strings{"XMLHttp", "Request", " get", "HTTP", " ", "4", "2", "/x", "\n"});
  // BLOOM: words end only at white space and a few punctuation marks.
  CHECK(split({Pass::bloom}, "Hello, world! (ok) a-b") == Strings{"Hello", ",", " world", "! (", "ok", ")", " a-b"});
  CHECK(split({Pass::newline_runs}, "a b\n\nc") == Strings{"a b", "\n\n", "c"});
  CHECK(ember::pretokenize::config_for("llama-bpe")->ignore_merges);
  CHECK(!ember::pretokenize::config_for("no-such-pre"));
}

TEST_CASE("tokenizer: metadata errors are reported, not crashed on") {
  const auto v = tiny_bpe({{"a", "b"}});
  SUBCASE("no tokenizer at all") {
    ember::gguf::Writer w;
    w.add_string("general.name", "x");
    auto tok = from_bytes(w.to_bytes());
    REQUIRE(!tok.ok());
    CHECK(tok.error().message().find("tokenizer.ggml.model") != std::string::npos);
  }
  SUBCASE("unknown model") {
    ember::gguf::Writer w;
    w.add_string("tokenizer.ggml.model", "rwkv");
    w.add_strings("tokenizer.ggml.tokens", v.tokens);
    auto tok = from_bytes(w.to_bytes());
    REQUIRE(!tok.ok());
    CHECK(tok.error().code() == ember::Errc::unsupported);
    CHECK(tok.error().message().find("rwkv") != std::string::npos);
  }
  SUBCASE("unknown pre-tokenizer") {
    auto tok = from_bytes(bpe_writer(v, "klingon").to_bytes());
    REQUIRE(!tok.ok());
    CHECK(tok.error().message().find("klingon") != std::string::npos);
  }
  SUBCASE("missing merges") {
    ember::gguf::Writer w;
    w.add_string("tokenizer.ggml.model", "gpt2");
    w.add_string("tokenizer.ggml.pre", "gpt-2");
    w.add_strings("tokenizer.ggml.tokens", v.tokens);
    auto tok = from_bytes(w.to_bytes());
    REQUIRE(!tok.ok());
    CHECK(tok.error().message().find("tokenizer.ggml.merges") != std::string::npos);
  }
  SUBCASE("malformed merge") {
    auto bad = v;
    bad.merges.push_back("nospace");
    auto tok = from_bytes(bpe_writer(bad, "gpt-2").to_bytes());
    REQUIRE(!tok.ok());
    CHECK(tok.error().message().find("nospace") != std::string::npos);
  }
  SUBCASE("missing tokens") {
    ember::gguf::Writer w;
    w.add_string("tokenizer.ggml.model", "llama");
    auto tok = from_bytes(w.to_bytes());
    REQUIRE(!tok.ok());
    CHECK(tok.error().message().find("tokenizer.ggml.tokens") != std::string::npos);
  }
  SUBCASE("token types of the wrong length") {
    ember::gguf::Writer w;
    w.add_string("tokenizer.ggml.model", "llama");
    w.add_strings("tokenizer.ggml.tokens", v.tokens);
    w.add_i32s("tokenizer.ggml.token_type", std::vector<int32_t>{1, 1});
    auto tok = from_bytes(w.to_bytes());
    REQUIRE(!tok.ok());
    CHECK(tok.error().message().find("tokenizer.ggml.token_type") != std::string::npos);
  }
  SUBCASE("BOS outside the vocabulary") {
    auto w = bpe_writer(v, "gpt-2");
    w.add_u32("tokenizer.ggml.bos_token_id", 100000);
    auto tok = from_bytes(w.to_bytes());
    REQUIRE(!tok.ok());
    CHECK(tok.error().message().find("100000") != std::string::npos);
  }
  SUBCASE("scores of the wrong type") {
    ember::gguf::Writer w;
    w.add_string("tokenizer.ggml.model", "llama");
    w.add_strings("tokenizer.ggml.tokens", v.tokens);
    w.add_strings("tokenizer.ggml.scores", v.tokens);
    auto tok = from_bytes(w.to_bytes());
    REQUIRE(!tok.ok());
    CHECK(tok.error().message().find("tokenizer.ggml.scores") != std::string::npos);
  }
}

TEST_CASE("unicode tables") {
  using namespace ember::unicode;
  CHECK(category('A') == Category::Lu);
  CHECK(category(0xE4) == Category::Ll);    // ä
  CHECK(category(0x4E2D) == Category::Lo);  // 中
  CHECK(category(0x0301) == Category::Mn);
  CHECK(category(0x0378) == Category::Cn);   // unassigned
  CHECK(category(0x1F999) == Category::So);  // 🦙
  CHECK(category(0x110000) == Category::Cn);
  CHECK(is_white_space(0x3000));
  CHECK(is_white_space(0x85));
  CHECK(!is_white_space(0x200B));
  CHECK(to_lower('Q') == 'q');
  CHECK(to_lower(0xC4) == 0xE4);    // Ä
  CHECK(to_lower(0x100) == 0x101);  // Ā (alternating case run)
  CHECK(to_lower(0x410) == 0x430);  // А
  CHECK(to_lower(0x3B1) == 0x3B1);
  std::vector<uint32_t> out;
  append_without_accents(out, 0xE9);    // é
  append_without_accents(out, 0x301);   // a lone accent goes
  append_without_accents(out, 0xD55C);  // 한 -> three jamo
  CHECK(out == std::vector<uint32_t>{'e', 0x1112, 0x1161, 0x11AB});
  for (int b = 0; b < 256; ++b) CHECK(code_point_to_byte(byte_to_code_point(static_cast<uint8_t>(b))) == b);
  CHECK(byte_to_code_point(' ') == 0x120);  // Ġ
  CHECK(code_point_to_byte(0x41) == 0x41);
  CHECK(code_point_to_byte(0x200) == -1);
  CHECK(complete_utf8_prefix("ab\xE2\x82") == 2);
  CHECK(complete_utf8_prefix("ab\xE2\x82\xAC") == 5);
  CHECK(complete_utf8_prefix("\x80") == 1);
}

TEST_CASE("tokenizer: SmolLM2 (smollm pre-tokenizer, ChatML specials)") {
  EMBER_SMOLLM2_FILE(path);
  const auto tok = load(path);
  CHECK(tok->kind() == Tokenizer::Kind::bpe);
  CHECK(!tok->add_bos());
  const auto im_start = tok->find("<|im_start|>");
  const auto im_end = tok->find("<|im_end|>");
  REQUIRE(im_start);
  REQUIRE(im_end);
  CHECK(tok->is_end_of_generation(*im_end));
  // Every digit is a word of its own.
  const auto digits = tok->encode("12345");
  CHECK(digits.size() == 5);
  const std::string chat = "<|im_start|>user\nWhat is 2+2?<|im_end|>\n";
  const auto ids = tok->encode(chat, options(std::nullopt, std::nullopt, true));
  REQUIRE(ids.size() > 3);
  CHECK(ids.front() == *im_start);
  CHECK(std::count(ids.begin(), ids.end(), *im_end) == 1);
  CHECK(tok->decode(ids, true) == chat);
  CHECK(tok->decode(ids) == "user\nWhat is 2+2?\n");
}
