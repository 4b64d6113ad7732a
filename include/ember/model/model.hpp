// Model<Backend>: the immutable, shareable half of inference — the mapped GGUF file, the
// architecture, weight views, tokenizer and chat template. Many Sessions can use one
// Model from many threads at once; nothing in it changes after load.
#pragma once

#include <algorithm>
#include <functional>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <thread>
#include <vector>

#include "ember/attention/attention.hpp"
#include "ember/attention/kv_cache.hpp"
#include "ember/chat/template.hpp"
#include "ember/core/large_buffer.hpp"
#include "ember/core/log.hpp"
#include "ember/core/result.hpp"
#include "ember/gguf/reader.hpp"
#include "ember/kernels/kernels.hpp"
#include "ember/kernels/packed.hpp"
#include "ember/model/card.hpp"
#include "ember/model/hparams.hpp"
#include "ember/model/state.hpp"
#include "ember/model/weights.hpp"
#include "ember/tokenizer/tokenizer.hpp"

namespace ember {

struct LoadOptions {
  Logger log;  // where load messages go; silent by default
  // Called with the fraction of the file read so far (0..1) while load() reads the mapped
  // file through once, so that the first tokens do not wait on the disk; returning false
  // stops the load (Errc::cancelled). Without it pages are read when first used.
  std::function<bool(float)> progress;
  // Copies the matrices whose format the backend has a row-interleaved kernel for
  // (Backend::packs, kernels/packed.hpp) into that layout, for faster decoding. Costs memory
  // the size of those matrices (MemoryPlan::packed_bytes, logged) and about a memory copy's
  // time at load; the file's pages of the packed tensors are then released (MappedFile::
  // release_pages), so resident memory stays near the file size. Results differ from the
  // unpacked kernels' in the last bits (another summation order), never between runs.
  bool pack_weights = true;
  // Threads that load() may start for that copy (0: one per hardware thread). The kernel
  // zero-fills every fresh page before it is written, so a 600 MiB copy takes ~0.3-0.6 s on
  // one thread here.
  unsigned n_threads = 0;
};

template <class Backend = kernels::Highway>
class Model {
 public:
  using backend_type = Backend;

  // Maps and validates a GGUF file; every problem is an Error naming the file and what is wrong.
  static Result<Model> load(const std::string& path, const LoadOptions& options = {}) {
    auto file = gguf::File::open(path);
    if (!file) return std::move(file).error();
    if (options.progress && !read_through(file->bytes(), options.progress))
      return make_error(Errc::cancelled, "loading " + path + " was cancelled");
    auto m = from_file(std::move(*file), options);
    if (!m) return std::move(m).error().context(path);
    return m;
  }

  // Uses a caller's buffer in place; it must outlive the Model.
  static Result<Model> from_memory(std::span<const std::byte> bytes, const LoadOptions& options = {}) {
    auto file = gguf::File::from_memory(bytes);
    if (!file) return std::move(file).error();
    return from_file(std::move(*file), options);
  }

  const Hyperparams& hparams() const { return impl_->hparams; }
  const Weights& weights() const { return impl_->weights; }
  const Tokenizer& tokenizer() const { return impl_->tokenizer; }
  const gguf::File& file() const { return impl_->file; }
  // Identifies the model in saved session states (state::model_fingerprint).
  uint64_t fingerprint() const { return impl_->fingerprint; }

  // The model's own chat template (tokenizer.chat_template), parsed.
  Result<chat::ChatTemplate> chat_template() const {
    auto src = impl_->file.get_string("tokenizer.chat_template");
    if (!src) return make_error(Errc::unsupported, "this model has no chat template (tokenizer.chat_template)");
    return chat::ChatTemplate::parse(*src);
  }

  // What a session with this context and batch will need, before anything is allocated.
  // The KV cache type a session gets by default: F32 when every matrix is F32 (full
  // precision, as llama2.c runs such models), else F16 (llama.cpp's default).
  DType default_kv_dtype() const {
    for (const auto& l : weights().layers)
      for (const MatrixView* m : {&l.wq, &l.wk, &l.wv, &l.wo, &l.w_gate, &l.w_up, &l.w_down})
        if (m->dtype != DType::F32) return DType::F16;
    return DType::F32;
  }

  // n_ctx is per sequence; a Session with n_seq_max sequences holds n_seq_max KV slices.
  MemoryPlan memory_plan(uint32_t n_ctx, uint32_t n_batch = 64, std::optional<DType> kv_dtype = std::nullopt,
                         uint32_t n_seq_max = 1) const {
    const auto& h = hparams();
    MemoryPlan p;
    for (const auto& t : impl_->file.tensors()) p.weights_bytes += t.n_bytes;
    p.packed_bytes = impl_->packed_bytes;
    p.n_ctx = n_ctx;
    p.n_batch = n_batch;
    p.kv_bytes_per_token = KvCache::bytes_needed(kv_dtype.value_or(default_kv_dtype()), h.n_layer, 1, h.n_embd_kv());
    p.kv_bytes = p.kv_bytes_per_token * n_ctx * n_seq_max;
    const uint64_t per_token = 2ull * h.n_embd + 2ull * h.n_embd_q() + 2ull * h.n_embd_kv() + 2ull * h.n_ff;
    const uint64_t n_logit_rows = n_seq_max + std::min(n_seq_max, n_batch);
    // Attention's scratch for two threads (Session: per thread, and the chunks of a split
    // decode step, up to 4 * 2 - 1 pairs').
    const size_t group = h.n_head / h.n_head_kv;
    const uint64_t attention = 2ull * attention_scratch_floats(group, h.head_dim, n_ctx) +
                               7ull * attention_chunks(n_ctx) * group * (h.head_dim + 1);
    p.scratch_bytes = (per_token * n_batch + n_logit_rows * h.n_vocab + attention) * sizeof(float) + 16ull * n_batch;
    return p;
  }

  ModelCard card(uint32_t n_ctx = 0) const {
    ModelCard c = make_card(impl_->file, hparams());
    c.memory = memory_plan(n_ctx ? n_ctx : hparams().n_ctx_train);
    return c;
  }

 private:
  struct Impl {
    gguf::File file;
    Hyperparams hparams;
    Weights weights;
    Tokenizer tokenizer;
    std::vector<LargeBuffer> packed;  // what weights' MatrixView::packed point into
    uint64_t packed_bytes = 0;
    uint64_t fingerprint = 0;  // state::model_fingerprint, taken before pack releases pages
    std::vector<float> norms;  // with packed weights, what weights' norm pointers point into
  };
  explicit Model(std::unique_ptr<const Impl> impl) : impl_(std::move(impl)) {}

  // Touches every page of the mapping in order (one load per 4 KiB page), reporting progress
  // every 16 MiB.
  static bool read_through(std::span<const std::byte> bytes, const std::function<bool(float)>& progress) {
    constexpr size_t kChunk = size_t(16) << 20, kPage = 4096;
    unsigned sink = 0;
    for (size_t at = 0; at < bytes.size(); at += kChunk) {
      if (!progress(float(double(at) / double(bytes.size())))) return false;
      const size_t end = std::min(bytes.size(), at + kChunk);
      for (size_t p = at; p < end; p += kPage) sink += unsigned(*static_cast<const volatile std::byte*>(&bytes[p]));
    }
    (void)sink;  // the loads are volatile, so they happen even though the sum is unused
    return progress(1.0f);
  }

  static Result<Model> from_file(gguf::File file, const LoadOptions& options) {
    EMBER_TRY(Hyperparams h, read_hyperparams(file));
    EMBER_TRY(Weights w, load_weights(file, h, &Backend::supports));
    EMBER_TRY(Tokenizer tok, Tokenizer::from_gguf(file));
    if (tok.n_vocab() != h.n_vocab)
      return make_error(Errc::format, "tokenizer has " + std::to_string(tok.n_vocab()) +
                                          " tokens but the model's vocab is " + std::to_string(h.n_vocab));
    options.log(LogLevel::info, "loaded " + h.arch + ": " + std::to_string(h.n_layer) + " layers, dim " +
                                    std::to_string(h.n_embd) + ", backend " + Backend::name);
    // The Impl lives on the heap so views into it (tokenizer, weights) survive moves of Model.
    const uint64_t fingerprint = state::model_fingerprint(h, file);
    auto impl = std::unique_ptr<Impl>(
        new Impl{std::move(file), std::move(h), std::move(w), std::move(tok), {}, 0, fingerprint});
    if (options.pack_weights) pack(*impl, options);
    return Model(std::move(impl));
  }

  static bool backend_packs(DType t) {
    if constexpr (requires { Backend::packs(t); }) {
      return Backend::packs(t);
    } else {
      return false;
    }
  }

  // LoadOptions::pack_weights: an x16 copy of every matrix the backend has a packed kernel
  // for. The token embedding's pages stay (rows are looked up from the file), also when the
  // output projection shares them.
  static void pack(Impl& impl, const LoadOptions& options) {
    std::vector<MatrixView*> views;
    for (auto& l : impl.weights.layers)
      for (MatrixView* m : {&l.wq, &l.wk, &l.wv, &l.wo, &l.w_gate, &l.w_up, &l.w_down}) views.push_back(m);
    views.push_back(&impl.weights.output);
    const size_t n_threads = options.n_threads ? options.n_threads : std::max(1u, std::thread::hardware_concurrency());
    for (MatrixView* m : views) {
      if (m->data == nullptr || !backend_packs(m->dtype)) continue;
      const size_t n = kernels::packed_bytes(m->dtype, m->n_row, m->n_col);
      LargeBuffer buffer(n);  // zero-filled, as pack_groups expects
      if (!buffer.data()) {
        options.log(LogLevel::warning, "not enough memory for a row-interleaved copy (" + std::to_string(n >> 20) +
                                           " MiB): this matrix keeps the file's layout");
        continue;
      }
      const size_t n_group = kernels::packed_groups(m->n_row);
      const size_t n_task = std::min<size_t>(n_threads, n_group);
      std::vector<std::thread> helpers;
      for (size_t i = 1; i < n_task; ++i)
        helpers.emplace_back(
            [&, i] { kernels::pack_groups(*m, buffer.data(), n_group * i / n_task, n_group * (i + 1) / n_task); });
      kernels::pack_groups(*m, buffer.data(), 0, n_group / n_task);
      for (auto& h : helpers) h.join();
      m->packed = buffer.data();
      impl.packed_bytes += n;
      impl.packed.push_back(std::move(buffer));
      if (m->data != impl.weights.token_embd.data)
        impl.file.release_pages({static_cast<const std::byte*>(m->data), m->n_row * m->row_bytes});
    }
    if (!impl.packed_bytes) return;
    // The norm weights, copied out of the file once its matrices are: read every token, they
    // would keep a page of the file mapped around each (2 MiB where the page cache holds the
    // file in huge pages: 24 MiB stayed resident for TinyLlama's 22 layers).
    std::vector<const float**> norms{&impl.weights.output_norm};
    for (auto& l : impl.weights.layers) norms.insert(norms.end(), {&l.attn_norm, &l.ffn_norm});
    const size_t n = impl.hparams.n_embd;
    impl.norms.resize(norms.size() * n);
    for (size_t i = 0; i < norms.size(); ++i) {
      std::copy_n(*norms[i], n, impl.norms.data() + i * n);
      impl.file.release_pages({reinterpret_cast<const std::byte*>(*norms[i]), n * sizeof(float)});
      *norms[i] = impl.norms.data() + i * n;
    }
    options.log(LogLevel::info, "packed " + std::to_string(impl.packed.size()) +
                                    " matrices row-interleaved: " + std::to_string(impl.packed_bytes >> 20) + " MiB");
  }

  std::unique_ptr<const Impl> impl_;
};

}  // namespace ember
