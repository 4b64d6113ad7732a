// A tiny llama model with seeded random weights, written with ember's own GGUF writer:
// the tests' synthetic model (vocab 40: three control tokens and byte tokens).
#pragma once

#include <doctest/doctest.h>

#include <cstdio>
#include <random>
#include <string>
#include <vector>

#include "ember/gguf/writer.hpp"
#include "ember/quant/quant.hpp"

namespace ember::test {

struct TinyLlama {
  uint32_t n_layer = 2;
  uint32_t seed = 42;
  bool drop_a_tensor = false;  // leaves out the last layer's ffn_up, for error tests
  const char* arch = "llama";
  uint32_t n_head = 4, n_head_kv = 2;  // head_dim = 64 / n_head
};

inline std::vector<std::byte> tiny_llama(ember::DType matrix_type, const TinyLlama& o = {}) {
  const uint32_t n_layer = o.n_layer;
  const char* arch = o.arch;
  const uint32_t n_embd = 64, n_head = o.n_head, n_head_kv = o.n_head_kv, n_ff = 96, n_vocab = 40;
  ember::gguf::Writer w;
  w.add_string("general.architecture", arch);
  const std::string p = std::string(arch) + ".";
  w.add_u32(p + "embedding_length", n_embd);
  w.add_u32(p + "block_count", n_layer);
  w.add_u32(p + "attention.head_count", n_head);
  w.add_u32(p + "attention.head_count_kv", n_head_kv);
  w.add_u32(p + "feed_forward_length", n_ff);
  w.add_u32(p + "context_length", 64);
  w.add_f32(p + "attention.layer_norm_rms_epsilon", 1e-5f);
  w.add_string("tokenizer.ggml.model", "llama");
  std::vector<std::string> tokens = {"<unk>", "<s>", "</s>"};
  std::vector<float> scores = {0, 0, 0};
  std::vector<int32_t> types = {2, 3, 3};
  for (int i = 0; i < 256 && tokens.size() < n_vocab; ++i) {
    char buf[8];
    std::snprintf(buf, sizeof buf, "<0x%02X>", i + 0x41);  // letters, so generated text is readable
    tokens.push_back(buf);
    scores.push_back(0);
    types.push_back(6);
  }
  w.add_strings("tokenizer.ggml.tokens", tokens);
  w.add_f32s("tokenizer.ggml.scores", scores);
  w.add_i32s("tokenizer.ggml.token_type", types);
  w.add_u32("tokenizer.ggml.bos_token_id", 1);
  w.add_u32("tokenizer.ggml.eos_token_id", 2);
  std::mt19937 rng(o.seed);
  std::normal_distribution<float> nd(0.f, 0.3f);
  auto add = [&](const std::string& name, uint64_t cols, uint64_t rows, ember::DType t) {
    std::vector<float> v(cols * rows);
    for (auto& x : v) x = nd(rng);
    if (rows == 1)
      for (auto& x : v) x = 1.f + 0.1f * x;  // norm weights near 1
    std::vector<std::byte> bytes(ember::row_bytes(t, cols) * rows);
    for (uint64_t r = 0; r < rows; ++r)
      REQUIRE(
          ember::quant::quantize_row(t, v.data() + r * cols, bytes.data() + r * ember::row_bytes(t, cols), cols).ok());
    std::vector<uint64_t> ne = rows == 1 ? std::vector<uint64_t>{cols} : std::vector<uint64_t>{cols, rows};
    REQUIRE(w.add_tensor(name, t, ne, bytes).ok());
  };
  add("token_embd.weight", n_embd, n_vocab, ember::DType::F32);
  add("output_norm.weight", n_embd, 1, ember::DType::F32);
  add("output.weight", n_embd, n_vocab, matrix_type);
  for (uint32_t l = 0; l < n_layer; ++l) {
    const std::string b = "blk." + std::to_string(l) + ".";
    add(b + "attn_norm.weight", n_embd, 1, ember::DType::F32);
    add(b + "attn_q.weight", n_embd, n_embd, matrix_type);
    add(b + "attn_k.weight", n_embd, n_embd / n_head * n_head_kv, matrix_type);
    add(b + "attn_v.weight", n_embd, n_embd / n_head * n_head_kv, matrix_type);
    add(b + "attn_output.weight", n_embd, n_embd, matrix_type);
    add(b + "ffn_norm.weight", n_embd, 1, ember::DType::F32);
    add(b + "ffn_gate.weight", n_embd, n_ff, matrix_type);
    if (!(o.drop_a_tensor && l == n_layer - 1)) add(b + "ffn_up.weight", n_embd, n_ff, matrix_type);
    add(b + "ffn_down.weight", n_ff, n_embd, matrix_type);
  }
  return w.to_bytes();
}

}  // namespace ember::test
