// Writes a TinyLlama-1.1B-shaped llama model with random weights, in one weight format, with
// ember's own GGUF writer and quantizer: the benchmark's model (real shapes, no download).
//
//   make_tinyllama OUT.gguf [TYPE] [SEED]
//
// TYPE (default Q4_0) is a format every weight matrix gets (Q4_0, Q4_1, Q5_0, Q5_1, Q8_0,
// Q4_K, Q5_K, Q6_K, F16, BF16, F32), or Q4_K_M: the mix llama.cpp's llama-quantize writes
// for a llama model in its Q4_K_M mode (llama_tensor_get_type_impl in llama-quant.cpp), so
// that the file matches the Q4_K_M models people download:
//   - attn_v and ffn_down: Q6_K in the layers where llama.cpp's use_more_bits holds (the
//     first and last eighth of the layers, and every third layer between them: 0, 1, 4, 7,
//     10, 13, 16, 19, 20, 21 of 22), Q4_K in the others;
//   - output.weight: Q6_K (llama.cpp's rule for the output matrix);
//   - token_embd and the other matrices (attn_q, attn_k, attn_output, ffn_gate, ffn_up): Q4_K;
//   - norms: F32, as in every mode.
// The K-quant bytes are those llama.cpp's quantizer gives without an importance matrix
// (quant/quantize.hpp), so quantizing this program's F32 output with llama-quantize Q4_K_M
// gives the same tensors.
//
// Shapes: 22 layers, dim 2048, 32 heads (4 KV heads), FFN 5632, vocab 32000, context 2048.
// The vocabulary is SentencePiece-style (<unk>, <s>, </s>, 256 byte tokens, then filler
// pieces) so that llama.cpp loads the same file. Weights: uniform in ±0.05, norms near 1.
#include <cstdio>
#include <cstdlib>
#include <string>
#include <vector>

#include "ember/gguf/writer.hpp"
#include "ember/quant/quant.hpp"

namespace {

// xorshift64*: fast enough to fill 1.1 billion weights in seconds.
struct Rng {
  uint64_t s;
  float uniform() {  // [-1, 1)
    s ^= s >> 12, s ^= s << 25, s ^= s >> 27;
    return float(int64_t((s * 0x2545F4914F6CDD1DULL) >> 40) - (1 << 23)) / float(1 << 23);
  }
};

// llama.cpp's use_more_bits (llama-quant.cpp): the layers whose attn_v and ffn_down its
// Q4_K_M mode keeps at Q6_K. With integer division, as there.
bool use_more_bits(int layer, int n_layers) {
  return layer < n_layers / 8 || layer >= 7 * n_layers / 8 || (layer - n_layers / 8) % 3 == 2;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 2) {
    std::fprintf(stderr,
                 "usage: make_tinyllama OUT.gguf [Q4_0|Q4_1|Q5_0|Q5_1|Q8_0|Q4_K|Q5_K|Q6_K|F16|Q4_K_M] [SEED]\n");
    return 2;
  }
  const std::string out = argv[1], type_name = argc > 2 ? argv[2] : "Q4_0";
  const bool q4_k_m = type_name == "Q4_K_M";
  const auto type = q4_k_m ? ember::DType::Q4_K : ember::dtype_from_name(type_name);
  if (!type || !ember::quant::can_quantize(*type)) {
    std::fprintf(stderr, "make_tinyllama: cannot write %s weights\n", type_name.c_str());
    return 2;
  }
  Rng rng{argc > 3 ? std::strtoull(argv[3], nullptr, 10) * 2654435761ULL + 1 : 88172645463325252ULL};
  const uint32_t n_embd = 2048, n_layer = 22, n_head = 32, n_head_kv = 4, n_ff = 5632, n_vocab = 32000;

  ember::gguf::Writer w;
  w.add_string("general.architecture", "llama");
  w.add_string("general.name", "TinyLlama-1.1B-shaped random weights (" + type_name + ")");
  w.add_u32("llama.embedding_length", n_embd);
  w.add_u32("llama.block_count", n_layer);
  w.add_u32("llama.attention.head_count", n_head);
  w.add_u32("llama.attention.head_count_kv", n_head_kv);
  w.add_u32("llama.feed_forward_length", n_ff);
  w.add_u32("llama.context_length", 2048);
  w.add_u32("llama.rope.dimension_count", n_embd / n_head);
  w.add_f32("llama.rope.freq_base", 10000.f);
  w.add_f32("llama.attention.layer_norm_rms_epsilon", 1e-5f);
  w.add_string("tokenizer.ggml.model", "llama");
  std::vector<std::string> tokens = {"<unk>", "<s>", "</s>"};
  std::vector<int32_t> types = {2, 3, 3};
  for (int b = 0; b < 256; ++b) {
    char buf[8];
    std::snprintf(buf, sizeof buf, "<0x%02X>", b);
    tokens.push_back(buf), types.push_back(6);
  }
  while (tokens.size() < n_vocab) tokens.push_back("\xE2\x96\x81t" + std::to_string(tokens.size())), types.push_back(1);
  std::vector<float> scores(n_vocab);
  for (uint32_t i = 0; i < n_vocab; ++i) scores[i] = -float(i);
  w.add_strings("tokenizer.ggml.tokens", tokens);
  w.add_f32s("tokenizer.ggml.scores", scores);
  w.add_i32s("tokenizer.ggml.token_type", types);
  w.add_u32("tokenizer.ggml.bos_token_id", 1);
  w.add_u32("tokenizer.ggml.eos_token_id", 2);
  w.add_u32("tokenizer.ggml.unknown_token_id", 0);

  auto add = [&](const std::string& name, uint64_t cols, uint64_t rows, ember::DType t) {
    const size_t rb = ember::row_bytes(t, cols);
    std::vector<std::byte> bytes(rb * rows);
    std::vector<float> row(cols);
    for (uint64_t r = 0; r < rows; ++r) {
      for (auto& x : row) x = rows == 1 ? 1.f + 0.1f * rng.uniform() : 0.05f * rng.uniform();
      if (!ember::quant::quantize_row(t, row.data(), bytes.data() + r * rb, cols).ok()) std::exit(1);
    }
    const std::vector<uint64_t> ne = rows == 1 ? std::vector<uint64_t>{cols} : std::vector<uint64_t>{cols, rows};
    if (auto ok = w.add_tensor(name, t, ne, bytes); !ok) {
      std::fprintf(stderr, "make_tinyllama: %s\n", ok.error().message().c_str());
      std::exit(1);
    }
  };
  const auto f32 = ember::DType::F32;
  // The Q4_K_M exceptions; every other matrix is *type.
  const auto output_type = q4_k_m ? ember::DType::Q6_K : *type;
  auto more_bits_type = [&](uint32_t layer) {
    return q4_k_m && use_more_bits(int(layer), int(n_layer)) ? ember::DType::Q6_K : *type;
  };
  add("token_embd.weight", n_embd, n_vocab, *type);
  add("output_norm.weight", n_embd, 1, f32);
  add("output.weight", n_embd, n_vocab, output_type);
  for (uint32_t l = 0; l < n_layer; ++l) {
    const std::string b = "blk." + std::to_string(l) + ".";
    add(b + "attn_norm.weight", n_embd, 1, f32);
    add(b + "attn_q.weight", n_embd, n_embd, *type);
    add(b + "attn_k.weight", n_embd, n_embd / n_head * n_head_kv, *type);
    add(b + "attn_v.weight", n_embd, n_embd / n_head * n_head_kv, more_bits_type(l));
    add(b + "attn_output.weight", n_embd, n_embd, *type);
    add(b + "ffn_norm.weight", n_embd, 1, f32);
    add(b + "ffn_gate.weight", n_embd, n_ff, *type);
    add(b + "ffn_up.weight", n_embd, n_ff, *type);
    add(b + "ffn_down.weight", n_ff, n_embd, more_bits_type(l));
  }
  if (auto ok = w.write(out); !ok) {
    std::fprintf(stderr, "make_tinyllama: %s\n", ok.error().message().c_str());
    return 1;
  }
  return 0;
}
