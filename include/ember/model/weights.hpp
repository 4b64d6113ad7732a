// The model's weights as views into the GGUF file's bytes: nothing is copied here. (Model's
// packed load then points the matrices at x16 copies and the norm vectors at a copy of
// their own; see Model::pack.)
// Shapes are (rows, columns) as the kernels see them; a row is one output's weights.
#pragma once

#include <string>
#include <vector>

#include "ember/core/result.hpp"
#include "ember/gguf/reader.hpp"
#include "ember/kernels/matrix.hpp"
#include "ember/model/hparams.hpp"

namespace ember {

using kernels::MatrixView;

struct LayerWeights {
  const float* attn_norm;  // (n_embd)
  MatrixView wq;           // (n_head * head_dim, n_embd)
  MatrixView wk;           // (n_head_kv * head_dim, n_embd)
  MatrixView wv;           // (n_head_kv * head_dim, n_embd)
  MatrixView wo;           // (n_embd, n_head * head_dim)
  const float* ffn_norm;   // (n_embd)
  MatrixView w_gate;       // (n_ff, n_embd)
  MatrixView w_up;         // (n_ff, n_embd)
  MatrixView w_down;       // (n_embd, n_ff)
};

struct Weights {
  MatrixView token_embd;  // (n_vocab, n_embd), rows dequantized on lookup
  std::vector<LayerWeights> layers;
  const float* output_norm;  // (n_embd)
  MatrixView output;         // (n_vocab, n_embd); the token embedding when tied
  bool tied_output = false;
};

namespace detail {

inline Result<MatrixView> matrix(const gguf::File& f, const std::string& name, uint64_t n_row, uint64_t n_col,
                                 bool (*supports)(DType)) {
  const auto* t = f.find_tensor(name);
  if (!t) return make_error(Errc::format, "tensor " + name + " is missing");
  if (t->n_dims != 2 || t->ne[0] != n_col || t->ne[1] != n_row)
    return make_error(Errc::format, "tensor " + name + " has shape " + t->shape_string() + ", expected " +
                                        std::to_string(n_col) + "×" + std::to_string(n_row));
  if (!supports(t->dtype))
    return make_error(Errc::unsupported, "tensor " + name + " has type " + std::string(ember::name(t->dtype)) +
                                             ", which ember's kernels cannot multiply yet");
  return kernels::make_matrix_view(t->dtype, t->data, n_row, n_col);
}

inline Result<const float*> vector(const gguf::File& f, const std::string& name, uint64_t n) {
  const auto* t = f.find_tensor(name);
  if (!t) return make_error(Errc::format, "tensor " + name + " is missing");
  if (t->n_elements() != n)
    return make_error(Errc::format,
                      "tensor " + name + " has shape " + t->shape_string() + ", expected " + std::to_string(n));
  if (t->dtype != DType::F32)
    return make_error(Errc::unsupported,
                      "tensor " + name + " is " + std::string(ember::name(t->dtype)) + "; norm weights must be F32");
  if (reinterpret_cast<uintptr_t>(t->data) % alignof(float) != 0)
    return make_error(Errc::format, "tensor " + name + " is not 4-byte aligned");
  return reinterpret_cast<const float*>(t->data);
}

}  // namespace detail

// Finds and checks every tensor of a llama-style decoder. `supports` is the backend's
// answer to "can you multiply this format?".
inline Result<Weights> load_weights(const gguf::File& f, const Hyperparams& h, bool (*supports)(DType)) {
  Weights w;
  EMBER_TRY(w.token_embd, detail::matrix(f, "token_embd.weight", h.n_vocab, h.n_embd, [](DType) { return true; }));
  EMBER_TRY(w.output_norm, detail::vector(f, "output_norm.weight", h.n_embd));
  if (f.find_tensor("output.weight")) {
    EMBER_TRY(w.output, detail::matrix(f, "output.weight", h.n_vocab, h.n_embd, supports));
  } else {
    if (!supports(w.token_embd.dtype))
      return make_error(Errc::unsupported, "tied output uses token_embd.weight of type " +
                                               std::string(name(w.token_embd.dtype)) +
                                               ", which ember cannot multiply yet");
    w.output = w.token_embd;
    w.tied_output = true;
  }
  for (uint32_t i = 0; i < h.n_layer; ++i) {
    const std::string b = "blk." + std::to_string(i) + ".";
    LayerWeights l;
    EMBER_TRY(l.attn_norm, detail::vector(f, b + "attn_norm.weight", h.n_embd));
    EMBER_TRY(l.wq, detail::matrix(f, b + "attn_q.weight", h.n_embd_q(), h.n_embd, supports));
    EMBER_TRY(l.wk, detail::matrix(f, b + "attn_k.weight", h.n_embd_kv(), h.n_embd, supports));
    EMBER_TRY(l.wv, detail::matrix(f, b + "attn_v.weight", h.n_embd_kv(), h.n_embd, supports));
    EMBER_TRY(l.wo, detail::matrix(f, b + "attn_output.weight", h.n_embd, h.n_embd_q(), supports));
    EMBER_TRY(l.ffn_norm, detail::vector(f, b + "ffn_norm.weight", h.n_embd));
    EMBER_TRY(l.w_gate, detail::matrix(f, b + "ffn_gate.weight", h.n_ff, h.n_embd, supports));
    EMBER_TRY(l.w_up, detail::matrix(f, b + "ffn_up.weight", h.n_ff, h.n_embd, supports));
    EMBER_TRY(l.w_down, detail::matrix(f, b + "ffn_down.weight", h.n_embd, h.n_ff, supports));
    w.layers.push_back(l);
  }
  return w;
}

}  // namespace ember
