// Session: the per-conversation half of inference — KV cache, scratch activations and
// position. Used by one thread at a time; many Sessions may share one Model.
//
// The path of one batch of tokens, in the order `forward` runs it:
//   embed rows → for each layer: RMSNorm → Q,K,V matmuls → RoPE → KV cache write →
//   causal GQA attention → output matmul → residual → RMSNorm → gate,up matmuls →
//   SiLU·up → down matmul → residual; then the final RMSNorm and the output matmul.
// Everything it touches was allocated when the Session was made.
#pragma once

#include <algorithm>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "ember/attention/attention.hpp"
#include "ember/attention/kv_cache.hpp"
#include "ember/core/result.hpp"
#include "ember/core/thread_pool.hpp"
#include "ember/model/model.hpp"
#include "ember/quant/quant.hpp"
#include "ember/sampling/sampler.hpp"
#include "ember/tokenizer/detokenizer.hpp"
#include "ember/tokenizer/tokenizer.hpp"

namespace ember {

// Element type of the KV cache. Automatic: F32 for a model whose matrices are all F32
// (full precision, as llama2.c runs them), else F16 (llama.cpp's default; half the memory).
enum class KvType { automatic, f32, f16 };

struct SessionConfig {
  uint32_t n_ctx = 0;  // positions the KV cache holds; 0: min(training context, 4096)
  KvType kv_type = KvType::automatic;
  uint32_t n_batch = 64;   // tokens per forward pass when processing a prompt
  uint32_t n_threads = 1;  // threads of a pool the Session owns (ignored with an executor)
  ExecutorRef executor{};  // the host's own job system, if it has one
};

struct GenerateOptions {
  int32_t max_tokens = 256;
  bool parse_special = true;              // special tokens written in the prompt become their ids
  std::optional<bool> add_bos;            // default: the vocab's add_bos flag
  bool stop_at_end_of_generation = true;  // EOS / EOT ends the answer
};

struct GenerateResult {
  std::vector<TokenId> tokens;  // generated ids, the stop token excluded
  std::string text;
  bool stopped_by_eog = false;
};

template <class ModelT>
class Session {
 public:
  using Backend = typename ModelT::backend_type;

  Session(const ModelT& model, SessionConfig config = {}) : model_(&model), cfg_(config) {
    const auto& h = model.hparams();
    if (cfg_.n_ctx == 0) cfg_.n_ctx = std::min<uint32_t>(h.n_ctx_train, 4096);
    if (cfg_.n_batch == 0) cfg_.n_batch = 1;
    if (!cfg_.executor && cfg_.n_threads > 1) {
      pool_ = std::make_unique<ThreadPool>(cfg_.n_threads);
      cfg_.executor = ExecutorRef(*pool_);
    }
    const size_t B = cfg_.n_batch;
    cache_ = KvCache(kv_dtype(model, cfg_.kv_type), h.n_layer, cfg_.n_ctx, h.n_embd_kv());
    tokens_.reserve(cfg_.n_ctx);
    x_.resize(B * h.n_embd);
    xn_.resize(B * h.n_embd);
    q_.resize(B * h.n_embd_q());
    k_.resize(B * h.n_embd_kv());
    v_.resize(B * h.n_embd_kv());
    att_.resize(B * h.n_embd_q());
    gate_.resize(B * h.n_ff);
    up_.resize(B * h.n_ff);
    logits_.resize(h.n_vocab);
    n_tasks_ = std::max<size_t>(1, cfg_.executor.n_threads());
    scores_.resize(n_tasks_ * (cfg_.n_ctx + h.head_dim));
  }

  static DType kv_dtype(const ModelT& model, KvType t) {
    if (t == KvType::f32) return DType::F32;
    if (t == KvType::f16) return DType::F16;
    return model.default_kv_dtype();
  }

  const ModelT& model() const { return *model_; }
  DType kv_dtype() const { return cache_.dtype(); }
  const SessionConfig& config() const { return cfg_; }
  uint32_t n_ctx() const { return cfg_.n_ctx; }
  uint32_t n_past() const { return n_past_; }
  std::span<const TokenId> tokens() const { return tokens_; }  // what the KV cache holds, in order
  void clear() { truncate(0); }
  // Forgets every position from n on; the next decode continues at n.
  void truncate(uint32_t n) {
    n_past_ = std::min(n, n_past_);
    tokens_.resize(n_past_);
  }

  // Appends tokens at the current position and runs them through the model in batches.
  // Afterwards logits() holds the next-token logits of the last one; with all_logits,
  // logits(i) holds those of each token i of this call.
  Result<void> decode(std::span<const TokenId> tokens, bool all_logits = false) {
    const auto& h = model_->hparams();
    if (tokens.empty()) return make_error(Errc::invalid_argument, "decode: no tokens");
    if (n_past_ + tokens.size() > cfg_.n_ctx)
      return make_error(Errc::out_of_range, "decode: " + std::to_string(tokens.size()) + " tokens after " +
                                                std::to_string(n_past_) + " do not fit the context of " +
                                                std::to_string(cfg_.n_ctx));
    for (TokenId t : tokens)
      if (t < 0 || uint32_t(t) >= h.n_vocab)
        return make_error(Errc::invalid_argument, "decode: token id " + std::to_string(t) + " is outside the vocab (" +
                                                      std::to_string(h.n_vocab) + ")");
    all_logits_.clear();
    if (all_logits) all_logits_.resize(tokens.size() * h.n_vocab);
    for (size_t start = 0; start < tokens.size(); start += cfg_.n_batch) {
      const size_t n = std::min<size_t>(cfg_.n_batch, tokens.size() - start);
      const bool last = start + n == tokens.size();
      float* out = all_logits ? all_logits_.data() + start * h.n_vocab : (last ? logits_.data() : nullptr);
      forward(tokens.subspan(start, n), all_logits ? n : (last ? 1 : 0), out);
    }
    if (all_logits) std::copy_n(all_logits_.end() - h.n_vocab, h.n_vocab, logits_.begin());
    tokens_.insert(tokens_.end(), tokens.begin(), tokens.end());
    return {};
  }

  std::span<const float> logits() const { return logits_; }
  std::span<const float> logits(size_t i) const {
    const size_t n = model_->hparams().n_vocab;
    return {all_logits_.data() + i * n, n};
  }

  // Tokenizes `prompt`, decodes it, then samples up to max_tokens tokens, handing each
  // completed piece of UTF-8 text to on_piece as it is produced.
  Result<GenerateResult> generate(std::string_view prompt, Sampler& sampler, const GenerateOptions& options = {},
                                  const std::function<void(std::string_view)>& on_piece = {}) {
    const Tokenizer& tok = model_->tokenizer();
    Tokenizer::EncodeOptions eo;
    eo.add_bos = options.add_bos;
    eo.parse_special = options.parse_special;
    std::vector<TokenId> ids = tok.encode(prompt, eo);
    if (ids.empty()) {  // nothing to condition on: start from BOS alone
      if (tok.bos() < 0) return make_error(Errc::invalid_argument, "empty prompt and the vocab has no BOS token");
      ids.push_back(tok.bos());
    }
    // A SentencePiece decoder drops the space the first piece carries when nothing precedes it.
    const bool at_start = n_past_ == 0 && ids.size() == 1 && ids[0] == tok.bos() && tok.add_space_prefix();
    EMBER_TRY_VOID(decode(ids));
    for (TokenId id : ids) sampler.accept(id);
    return continue_generation(sampler, options, on_piece, at_start);
  }

  // For conversations re-rendered each turn: reuses the longest prefix of `ids` the
  // session already holds, decodes the rest, then generates.
  Result<GenerateResult> append_and_generate(std::span<const TokenId> ids, Sampler& sampler,
                                             const GenerateOptions& options = {},
                                             const std::function<void(std::string_view)>& on_piece = {}) {
    if (ids.empty()) return make_error(Errc::invalid_argument, "append_and_generate: no tokens");
    size_t common = 0;
    while (common < ids.size() && common < tokens_.size() && tokens_[common] == ids[common]) ++common;
    if (common == ids.size()) --common;  // the last token must run again to give fresh logits
    truncate(uint32_t(common));
    EMBER_TRY_VOID(decode(ids.subspan(common)));
    for (TokenId id : ids.subspan(common)) sampler.accept(id);
    return continue_generation(sampler, options, on_piece);
  }

  // Samples from the current logits onwards (after decode or an earlier generate).
  Result<GenerateResult> continue_generation(Sampler& sampler, const GenerateOptions& options,
                                             const std::function<void(std::string_view)>& on_piece,
                                             bool strip_leading_space = false) {
    const Tokenizer& tok = model_->tokenizer();
    GenerateResult r;
    Detokenizer detok(tok, strip_leading_space);
    auto emit = [&](const std::string& s) {
      if (s.empty()) return;
      r.text += s;
      if (on_piece) on_piece(s);
    };
    for (int32_t i = 0; i < options.max_tokens; ++i) {
      const TokenId next = sampler.sample(logits_);
      sampler.accept(next);
      if (options.stop_at_end_of_generation && tok.is_end_of_generation(next)) {
        r.stopped_by_eog = true;
        break;
      }
      r.tokens.push_back(next);
      emit(detok.push(next));
      if (i + 1 == options.max_tokens) break;  // no need to run the last token
      if (n_past_ >= cfg_.n_ctx) break;
      const TokenId one[1] = {next};
      EMBER_TRY_VOID(decode(one));
    }
    emit(detok.flush());
    return r;
  }

 private:
  // Splits rows over the executor's threads; each output element is computed whole by one task.
  void matmul(const MatrixView& w, const float* x, size_t n_tok, float* y) {
    const size_t n_tasks = std::min(n_tasks_, std::max<size_t>(1, w.n_row / 16));
    cfg_.executor.for_each(n_tasks, [&](size_t i) {
      const size_t r0 = w.n_row * i / n_tasks, r1 = w.n_row * (i + 1) / n_tasks;
      Backend::matmul(w, x, w.n_col, n_tok, y, w.n_row, r0, r1);
    });
  }

  // Runs n tokens at positions n_past_.. and writes logits of the last n_out tokens to `out`.
  void forward(std::span<const TokenId> tokens, size_t n_out, float* out) {
    const auto& h = model_->hparams();
    const auto& W = model_->weights();
    const size_t n = tokens.size(), D = h.n_embd, Dq = h.n_embd_q(), Dkv = h.n_embd_kv(), hd = h.head_dim;
    const uint32_t pos0 = n_past_;

    for (size_t t = 0; t < n; ++t) {  // embedding rows, dequantized
      const auto* row = W.token_embd.row(size_t(tokens[t]));
      (void)quant::dequantize_row(W.token_embd.dtype, row, x_.data() + t * D, D);
    }

    for (uint32_t l = 0; l < h.n_layer; ++l) {
      const LayerWeights& L = W.layers[l];
      for (size_t t = 0; t < n; ++t) Backend::rmsnorm(x_.data() + t * D, L.attn_norm, xn_.data() + t * D, D, h.rms_eps);
      matmul(L.wq, xn_.data(), n, q_.data());
      matmul(L.wk, xn_.data(), n, k_.data());
      matmul(L.wv, xn_.data(), n, v_.data());
      for (size_t t = 0; t < n; ++t) {
        const int32_t pos = int32_t(pos0 + t);
        rope(q_.data() + t * Dq, h.n_head, pos);
        rope(k_.data() + t * Dkv, h.n_head_kv, pos);
        cache_.store(l, size_t(pos), k_.data() + t * Dkv, v_.data() + t * Dkv);
      }
      // Causal GQA attention: query head hq reads KV head hq / (n_head / n_head_kv).
      const size_t n_pairs = n * h.n_head, group = h.n_head / h.n_head_kv;
      const size_t n_tasks = std::min(n_tasks_, n_pairs);
      cfg_.executor.for_each(n_tasks, [&](size_t task) {
        float* scores = scores_.data() + task * (cfg_.n_ctx + hd);
        for (size_t p = n_pairs * task / n_tasks; p < n_pairs * (task + 1) / n_tasks; ++p) {
          const size_t t = p / h.n_head, hq = p % h.n_head;
          attend_head<Backend>(cache_, l, hq / group, hd, q_.data() + t * Dq + hq * hd, pos0 + t + 1, scores,
                               scores + cfg_.n_ctx, att_.data() + t * Dq + hq * hd);
        }
      });
      matmul(L.wo, att_.data(), n, xn_.data());
      for (size_t t = 0; t < n; ++t) Backend::add(x_.data() + t * D, xn_.data() + t * D, D);

      for (size_t t = 0; t < n; ++t) Backend::rmsnorm(x_.data() + t * D, L.ffn_norm, xn_.data() + t * D, D, h.rms_eps);
      matmul(L.w_gate, xn_.data(), n, gate_.data());
      matmul(L.w_up, xn_.data(), n, up_.data());
      for (size_t t = 0; t < n; ++t) Backend::silu_mul(gate_.data() + t * h.n_ff, up_.data() + t * h.n_ff, h.n_ff);
      matmul(L.w_down, gate_.data(), n, xn_.data());
      for (size_t t = 0; t < n; ++t) Backend::add(x_.data() + t * D, xn_.data() + t * D, D);
    }
    n_past_ += uint32_t(n);

    if (n_out == 0) return;
    const size_t first = n - n_out;
    for (size_t t = first; t < n; ++t)
      Backend::rmsnorm(x_.data() + t * D, W.output_norm, xn_.data() + (t - first) * D, D, h.rms_eps);
    matmul(W.output, xn_.data(), n_out, out);
  }

  void rope(float* x, uint32_t n_heads, int32_t pos) {
    const auto& h = model_->hparams();
    if (h.rope_style == RopeStyle::neox)
      Backend::rope_neox(x, n_heads, h.head_dim, h.n_rot, pos, h.rope_freq_base);
    else
      Backend::rope(x, n_heads, h.head_dim, h.n_rot, pos, h.rope_freq_base);
  }

  const ModelT* model_;
  SessionConfig cfg_;
  std::unique_ptr<ThreadPool> pool_;
  size_t n_tasks_ = 1;
  uint32_t n_past_ = 0;
  KvCache cache_;
  // Scratch, (n_batch, width) each: residual stream, normed input, attention and FFN activations.
  std::vector<float> x_, xn_, q_, k_, v_, att_, gate_, up_;
  std::vector<float> scores_;  // (n_tasks, n_ctx + head_dim) attention probabilities, query copy
  std::vector<float> logits_;  // (n_vocab) of the last decoded token
  std::vector<float> all_logits_;
  std::vector<TokenId> tokens_;  // (n_past)
};

}  // namespace ember
