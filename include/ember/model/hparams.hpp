// What an architecture is, as data read from GGUF metadata: one decoder forward reads
// these fields instead of a class per architecture.
#pragma once

#include <cstdint>
#include <string>

#include "ember/core/result.hpp"
#include "ember/gguf/reader.hpp"

namespace ember {

enum class RopeStyle { normal, neox };  // GGML's names: adjacent pairs vs halves

struct Hyperparams {
  std::string arch;  // general.architecture, e.g. "llama"
  uint32_t n_vocab = 0;
  uint32_t n_ctx_train = 0;  // context length the model was trained for
  uint32_t n_embd = 0;       // width of the residual stream
  uint32_t n_layer = 0;
  uint32_t n_head = 0;
  uint32_t n_head_kv = 0;  // < n_head: grouped-query attention
  uint32_t n_ff = 0;       // FFN hidden width
  uint32_t head_dim = 0;
  uint32_t n_rot = 0;  // dims of each head that RoPE rotates
  float rms_eps = 1e-5f;
  float rope_freq_base = 10000.f;
  RopeStyle rope_style = RopeStyle::normal;

  uint32_t n_embd_q() const { return n_head * head_dim; }
  uint32_t n_embd_kv() const { return n_head_kv * head_dim; }
};

// Architectures whose forward is the llama decoder (RMSNorm, RoPE, GQA, SwiGLU).
inline bool is_llama_like(std::string_view arch) { return arch == "llama" || arch == "mistral"; }

inline Result<Hyperparams> read_hyperparams(const gguf::File& f) {
  Hyperparams h;
  EMBER_TRY(std::string_view arch, f.get_string("general.architecture"));
  h.arch = std::string(arch);
  if (!is_llama_like(arch))
    return make_error(Errc::unsupported,
                      "architecture \"" + h.arch + "\" is not supported yet (ember runs: llama, mistral)");
  const std::string p = h.arch + ".";
  auto req = [&](const char* key, uint32_t& out) -> Result<void> {
    EMBER_TRY(uint64_t v, f.get_uint(p + key));
    if (v == 0 || v > (1u << 24))
      return make_error(Errc::format, p + key + " = " + std::to_string(v) + " is out of range");
    out = uint32_t(v);
    return {};
  };
  EMBER_TRY_VOID(req("embedding_length", h.n_embd));
  EMBER_TRY_VOID(req("block_count", h.n_layer));
  EMBER_TRY_VOID(req("attention.head_count", h.n_head));
  EMBER_TRY_VOID(req("feed_forward_length", h.n_ff));
  EMBER_TRY_VOID(req("context_length", h.n_ctx_train));
  h.n_head_kv = uint32_t(f.get_uint_or(p + "attention.head_count_kv", h.n_head));
  if (h.n_head_kv == 0 || h.n_head % h.n_head_kv != 0)
    return make_error(Errc::format, "head_count " + std::to_string(h.n_head) + " is not a multiple of head_count_kv " +
                                        std::to_string(h.n_head_kv));
  if (h.n_embd % h.n_head != 0)
    return make_error(Errc::format, "embedding_length " + std::to_string(h.n_embd) +
                                        " is not a multiple of head_count " + std::to_string(h.n_head));
  h.head_dim = uint32_t(f.get_uint_or(p + "attention.key_length", h.n_embd / h.n_head));
  h.n_rot = uint32_t(f.get_uint_or(p + "rope.dimension_count", h.head_dim));
  if (h.n_rot > h.head_dim || h.n_rot % 2 != 0)
    return make_error(Errc::format, "rope.dimension_count " + std::to_string(h.n_rot) + " does not fit head size " +
                                        std::to_string(h.head_dim));
  h.rms_eps = float(f.get_float_or(p + "attention.layer_norm_rms_epsilon", 1e-5));
  h.rope_freq_base = float(f.get_float_or(p + "rope.freq_base", 10000.0));
  if (const auto* v = f.find("tokenizer.ggml.tokens")) h.n_vocab = uint32_t(v->size());
  h.n_vocab = uint32_t(f.get_uint_or(p + "vocab_size", h.n_vocab));
  return h;
}

}  // namespace ember
