// The decoder end to end: real models against independent references (llama2.c's exact
// greedy text, llama.cpp's tokens and logits), every backend against the Reference,
// determinism over threads and batch splits, and clear errors for bad models and calls.
#include <doctest/doctest.h>

#include <cmath>
#include <fstream>
#include <random>
#include <sstream>
#include <string>
#include <vector>

#include "data_path.hpp"
#include "ember/ember.hpp"
#include "tiny_model.hpp"

using ember::TokenId;
using ember::test::tiny_llama;
namespace kernels = ember::kernels;

namespace {

std::string slurp(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::ostringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

// Reads every integer array that follows `"key": [` in a JSON text, in order.
std::vector<std::vector<int>> int_arrays(const std::string& json, const std::string& key) {
  std::vector<std::vector<int>> out;
  const std::string pat = "\"" + key + "\": [";
  for (size_t at = json.find(pat); at != std::string::npos; at = json.find(pat, at + 1)) {
    std::vector<int> v;
    size_t i = at + pat.size();
    while (i < json.size() && json[i] != ']') {
      if (json[i] == '-' || (json[i] >= '0' && json[i] <= '9')) {
        size_t end = i;
        v.push_back(std::stoi(json.substr(i), &end));
        i += end;
      } else {
        ++i;
      }
    }
    out.push_back(std::move(v));
  }
  return out;
}

// Reads every string value of `"key": "..."` in a JSON text (escapes \n \" \\ \t and \uXXXX below U+0800).
std::vector<std::string> strings(const std::string& json, const std::string& key) {
  std::vector<std::string> out;
  const std::string pat = "\"" + key + "\": \"";
  for (size_t at = json.find(pat); at != std::string::npos; at = json.find(pat, at + 1)) {
    std::string v;
    for (size_t i = at + pat.size(); i < json.size() && json[i] != '"'; ++i) {
      if (json[i] != '\\') {
        v += json[i];
        continue;
      }
      const char e = json[++i];
      if (e == 'n')
        v += '\n';
      else if (e == 't')
        v += '\t';
      else if (e == 'u') {
        const unsigned cp = unsigned(std::stoul(json.substr(i + 1, 4), nullptr, 16));
        i += 4;
        if (cp < 0x80)
          v += char(cp);
        else
          v += char(0xC0 | (cp >> 6)), v += char(0x80 | (cp & 0x3F));
      } else
        v += e;
    }
    out.push_back(std::move(v));
  }
  return out;
}

// Reads every number array that follows `"key": [` in a JSON text, in order.
std::vector<std::vector<double>> number_arrays(const std::string& json, const std::string& key) {
  std::vector<std::vector<double>> out;
  const std::string pat = "\"" + key + "\": [";
  for (size_t at = json.find(pat); at != std::string::npos; at = json.find(pat, at + 1)) {
    std::vector<double> v;
    size_t i = at + pat.size();
    while (i < json.size() && json[i] != ']') {
      if (json[i] == '-' || (json[i] >= '0' && json[i] <= '9')) {
        size_t end = 0;
        v.push_back(std::stod(json.substr(i, 32), &end));
        i += end;
      } else {
        ++i;
      }
    }
    out.push_back(std::move(v));
  }
  return out;
}

// The integer after `"key": ` (the first occurrence).
int number_after(const std::string& json, const std::string& key) {
  const std::string pat = "\"" + key + "\": ";
  const size_t at = json.find(pat);
  return at == std::string::npos ? -1 : std::stoi(json.substr(at + pat.size(), 16));
}

template <class Backend>
std::string greedy_text(const ember::Model<Backend>& m, const std::string& prompt, int n, uint32_t threads,
                        uint32_t n_batch = 64) {
  ember::Session s(m, {.n_ctx = 512, .n_batch = n_batch, .n_threads = threads});
  auto sampler = ember::Sampler::greedy();
  auto r = s.generate(prompt, sampler, {.max_tokens = n});
  REQUIRE(r.ok());
  return r->text;
}

template <class Backend>
std::vector<float> all_logits(const ember::Model<Backend>& m, const std::vector<TokenId>& ids, uint32_t threads,
                              uint32_t n_batch) {
  ember::Session s(m, {.n_batch = n_batch, .n_threads = threads});
  REQUIRE(s.decode(ids, true).ok());
  std::vector<float> out;
  for (size_t i = 0; i < ids.size(); ++i) {
    auto l = s.logits(i);
    out.insert(out.end(), l.begin(), l.end());
  }
  return out;
}

}  // namespace

TEST_CASE_TEMPLATE("stories260K: greedy 200 tokens match llama2.c byte for byte", Backend, kernels::Reference,
                   kernels::Highway, kernels::Xsimd<>) {
  EMBER_REQUIRE_DATA(path, "stories260K/stories260K.gguf");
  EMBER_REQUIRE_DATA(golden, "stories260K/greedy-200.txt");
  auto m = ember::Model<Backend>::load(path);
  REQUIRE_MESSAGE(m.ok(), (m.ok() ? "" : m.error().message()));
  const std::string expected = slurp(golden);
  for (uint32_t threads : {1u, 2u}) {
    INFO("threads ", threads);
    CHECK(greedy_text(*m, "", 200, threads) == expected);
  }
}

TEST_CASE_TEMPLATE("tiny synthesized llama: every backend agrees with the Reference", Backend, kernels::Highway,
                   kernels::Xsimd<>) {
  for (ember::DType t : {ember::DType::F32, ember::DType::F16, ember::DType::Q8_0, ember::DType::Q4_0,
                         ember::DType::Q4_1, ember::DType::Q5_0, ember::DType::Q5_1}) {
    INFO("weights ", ember::name(t));
    const auto bytes = tiny_llama(t);
    auto ref = ember::Model<kernels::Reference>::from_memory(bytes);
    auto fast = ember::Model<Backend>::from_memory(bytes);
    REQUIRE_MESSAGE(ref.ok(), (ref.ok() ? "" : ref.error().message()));
    REQUIRE(fast.ok());
    const std::vector<TokenId> ids = {1, 5, 9, 20, 33, 7, 7, 12, 3, 39};
    const auto a = all_logits(*ref, ids, 1, 64);
    const auto b = all_logits(*fast, ids, 1, 64);
    double err = 0, norm = 0;
    for (size_t i = 0; i < a.size(); ++i) {
      err += (a[i] - b[i]) * (a[i] - b[i]);
      norm += a[i] * a[i];
    }
    INFO("relative RMS error ", std::sqrt(err / norm));
    // Same math, different summation order. With F16 weights the activations are rounded to
    // f16, and a last-bit difference flips a rounding that the layers amplify: Highway's own
    // AVX2 and AVX3 targets differ by 3.6e-4 here, while each kernel matches Reference to 1e-7.
    CHECK(std::sqrt(err / norm) < (t == ember::DType::F16 ? 1e-3 : 1e-4));
  }
}

TEST_CASE_TEMPLATE("logits are bit-identical for any thread count and batch split", Backend, kernels::Reference,
                   kernels::Highway, kernels::Xsimd<>) {
  const auto bytes = tiny_llama(ember::DType::Q4_0, {.n_layer = 3});
  auto m = ember::Model<Backend>::from_memory(bytes);
  REQUIRE(m.ok());
  std::vector<TokenId> ids;
  for (int i = 0; i < 37; ++i) ids.push_back(TokenId((i * 7 + 3) % 40));
  const auto base = all_logits(*m, ids, 1, 64);
  CHECK(all_logits(*m, ids, 2, 64) == base);
  CHECK(all_logits(*m, ids, 3, 64) == base);
  CHECK(all_logits(*m, ids, 1, 1) == base);
  CHECK(all_logits(*m, ids, 2, 7) == base);
  // Token by token through separate decode calls too.
  ember::Session s(*m, {.n_threads = 2});
  for (size_t i = 0; i < ids.size(); ++i) {
    REQUIRE(s.decode(std::span(&ids[i], 1)).ok());
    auto l = s.logits();
    CHECK(std::equal(l.begin(), l.end(), base.begin() + i * l.size()));
  }
}

TEST_CASE("LargeBuffer: zero-filled, writable to its last byte, 64-byte aligned, movable") {
  for (size_t bytes : {size_t(100), size_t(4096), (size_t(2) << 20) + 12345}) {
    INFO(bytes);
    ember::LargeBuffer b(bytes);
    REQUIRE(b.data() != nullptr);
    CHECK(b.size() == bytes);
    CHECK(reinterpret_cast<uintptr_t>(b.data()) % 64 == 0);
    bool zero = true;
    for (size_t i = 0; i < bytes; i += 511) zero = zero && b.data()[i] == std::byte{0};
    CHECK(zero);
    CHECK(b.data()[bytes - 1] == std::byte{0});
    b.data()[bytes - 1] = std::byte{2};
    ember::LargeBuffer moved(std::move(b));
    CHECK(b.data() == nullptr);  // NOLINT(bugprone-use-after-move): the moved-from state is the point
    CHECK(moved.data()[bytes - 1] == std::byte{2});
  }
}

TEST_CASE("bad models and bad calls give clear errors") {
  {
    const auto bytes = tiny_llama(ember::DType::F32, {.n_layer = 2, .drop_a_tensor = true});
    auto m = ember::Model<kernels::Reference>::from_memory(bytes);
    REQUIRE(!m.ok());
    CHECK(m.error().message() == "tensor blk.1.ffn_up.weight is missing");
  }
  {
    const auto bytes = tiny_llama(ember::DType::F32, {.n_layer = 1, .arch = "mamba"});
    auto m = ember::Model<kernels::Reference>::from_memory(bytes);
    REQUIRE(!m.ok());
    CHECK(m.error().code() == ember::Errc::unsupported);
    CHECK(m.error().message().find("architecture \"mamba\" is not supported") != std::string::npos);
  }
  {
    auto m = ember::Model<kernels::Reference>::load("/nonexistent.gguf");
    REQUIRE(!m.ok());
    CHECK(m.error().message().find("/nonexistent.gguf") != std::string::npos);
  }
  const auto bytes = tiny_llama(ember::DType::F32, {.n_layer = 1});
  auto m = ember::Model<kernels::Reference>::from_memory(bytes);
  REQUIRE(m.ok());
  ember::Session s(*m, {.n_ctx = 8});
  const std::vector<TokenId> nine(9, 5);
  auto r = s.decode(nine);
  REQUIRE(!r.ok());
  CHECK(r.error().message() == "decode: 9 tokens after 0 do not fit the context of 8");
  const std::vector<TokenId> bad = {5, 40};
  r = s.decode(bad);
  REQUIRE(!r.ok());
  CHECK(r.error().message() == "decode: token id 40 is outside the vocab (40)");
  CHECK(s.n_past() == 0);  // a refused call changes nothing
}

// llama.cpp's own top-1 choice moves when only its attention path or batch size changes, at
// steps where its best two logits are up to this far apart (measured by the script that made
// llamacpp.json). Within that band two correct implementations may pick either token.
double tie_band(const std::string& json) {
  const std::string key = "\"largest_margin_where_it_disagrees\": ";
  const size_t at = json.find(key);
  REQUIRE(at != std::string::npos);
  return std::stod(json.substr(at + key.size(), 16));
}

TEST_CASE("SmolLM2: prompts tokenize like llama.cpp and greedy decoding follows it") {
  EMBER_SMOLLM2_FILE(path);
  auto m = ember::Model<kernels::Highway>::load(path);
  REQUIRE_MESSAGE(m.ok(), (m.ok() ? "" : m.error().message()));
  const std::string json = slurp(EMBER_TESTS_DIR "/data/smollm2/llamacpp.json");
  const auto prompts = int_arrays(json, "prompt_ids");
  const auto generated = int_arrays(json, "generated");
  const auto margins = number_arrays(json, "margins");
  const auto texts = strings(json, "prompt");
  const double kTieBand = tie_band(json);
  REQUIRE(prompts.size() >= 5);
  REQUIRE(texts.size() == prompts.size());
  REQUIRE(generated.size() == prompts.size());
  for (size_t i = 0; i < prompts.size(); ++i) {
    INFO("prompt #", i);
    const std::vector<TokenId> ids(prompts[i].begin(), prompts[i].end());
    const std::vector<TokenId> expected(generated[i].begin(), generated[i].begin() + 32);
    CHECK(m->tokenizer().encode(texts[i], {.parse_special = true}) == ids);

    // Free-running greedy: identical up to the first step inside the tie band.
    ember::Session s(*m, {.n_ctx = 512, .n_threads = 2});
    REQUIRE(s.decode(ids).ok());
    auto sampler = ember::Sampler::greedy();
    auto r = s.continue_generation(sampler, {.max_tokens = 32, .stop_at_end_of_generation = false}, {});
    REQUIRE(r.ok());
    size_t first_tie = 0;
    while (first_tie < 32 && margins[i][first_tie] > kTieBand) ++first_tie;
    size_t same = 0;
    while (same < 32 && r->tokens[same] == expected[same]) ++same;
    MESSAGE("prompt #", i, ": ", same, " of 32 greedy tokens equal llama.cpp's; its first near-tie is at step ",
            first_tie);
    CHECK(same >= first_tie);

    // Teacher-forced on llama.cpp's 32 tokens: the same choice at every step outside the band.
    ember::Session t(*m, {.n_ctx = 512, .n_threads = 2});
    std::vector<TokenId> all = ids;
    all.insert(all.end(), expected.begin(), expected.end() - 1);
    REQUIRE(t.decode(all, true).ok());
    for (size_t k = 0; k < 32; ++k) {
      if (margins[i][k] <= kTieBand) continue;
      INFO("step ", k, ", llama.cpp margin ", margins[i][k]);
      CHECK(ember::Sampler::argmax(t.logits(ids.size() - 1 + k)) == expected[k]);
    }
  }
}

TEST_CASE("SmolLM2: teacher-forced top-1 agrees with llama.cpp as well as llama.cpp agrees with itself") {
  EMBER_SMOLLM2_FILE(path);
  const std::string json = slurp(EMBER_TESTS_DIR "/data/smollm2/llamacpp.json");
  const auto ids = int_arrays(json, "ids").at(0);
  const auto top1 = int_arrays(json, "top1").at(0);
  const auto margins = number_arrays(json, "margins").back();
  const int self_fa = number_after(json, "flash_attention_on_vs_off_top1");
  const int self_batch = number_after(json, "batch_1_vs_512_top1");
  const double kTieBand = tie_band(json);
  REQUIRE(ids.size() == 256);
  REQUIRE(top1.size() == ids.size());
  REQUIRE(margins.size() == ids.size());
  std::vector<TokenId> tokens(ids.begin(), ids.end());
  // Positions inside llama.cpp's tie band (55 of these 256, llama.cpp margins up to 0.318)
  // flip with any change of summation order: llama.cpp itself moves 8 of them between its two
  // attention paths and 7 between batch sizes. ember's arithmetic differs from llama.cpp's in
  // the attention and in the matmuls, two such sources, so the count is held to 256 minus
  // twice llama.cpp's own larger disagreement (240 with this file), and everywhere outside the
  // tie band both layouts must choose as llama.cpp does.
  // Measured: the double-precision Reference backend agrees at 246 positions (Model<Reference>,
  // 30 s, too slow to repeat here); Highway at 251 / 246 (file layout / row-interleaved) with
  // the matmul attention path; with the fused f16 attention kernel 247 / 248 over row-major
  // keys (sessions 9-13) and 244 / 247 over the key tiles of session 14, whose top-1 is
  // Reference's at 248 of the 256 positions (file layout, `ember-cli logits`; the row-major
  // kernel's at 245): nearer the exact
  // result, further from llama.cpp by near-ties only (all its flips have margins below 0.19).
  const int floor = 256 - 2 * (256 - std::min(self_fa, self_batch));
  for (bool pack : {false, true}) {
    auto m = ember::Model<kernels::Highway>::load(path, {.pack_weights = pack});
    REQUIRE(m.ok());
    auto mine = m->tokenizer().encode(strings(json, "text").back());
    mine.resize(std::min(mine.size(), tokens.size()));
    CHECK(mine == tokens);
    for (uint32_t n_batch : {64u, 7u}) {
      ember::Session s(*m, {.n_ctx = 512, .n_batch = n_batch, .n_threads = 2});
      REQUIRE(s.decode(tokens, true).ok());
      int agree = 0;
      for (size_t i = 0; i < tokens.size(); ++i) {
        const bool same = ember::Sampler::argmax(s.logits(i)) == top1[i];
        agree += same;
        if (margins[i] > kTieBand) CHECK_MESSAGE(same, "position ", i, ", llama.cpp margin ", margins[i]);
      }
      MESSAGE(std::string(pack ? "row-interleaved" : "file layout"), ": top-1 agreement with llama.cpp: ", agree,
              "/256 (llama.cpp with itself: ", self_fa, " flash attention on/off, ", self_batch, " batch 1/512)");
      CHECK(agree >= floor);
    }
  }
}
