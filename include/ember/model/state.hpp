// A Session's state as bytes: what save() writes and restore() checks before it touches
// anything. Little-endian, version 1:
//   "EMBS" · u32 version · u64 model fingerprint · u32 n_ctx · u32 KV dtype · u32 n_layer ·
//   u32 n_embd_kv · u32 n_vocab · u32 n_seq, then per sequence:
//   u32 seq id · u32 n_past · i32 tokens[n_past] · f32 logits[n_vocab] ·
//   per layer: keys (n_past, n_embd_kv) then values (n_embd_kv, n_past), KV dtype elements
//   (Q8_0: keys then values, each n_past rows of n_embd_kv / 32 q8_0 blocks);
//   and last a u64 FNV-1a checksum of every byte before it.
// The fingerprint hashes the hyperparameters, every tensor's name, type, shape and first
// 64 bytes, and the file size, so a state from another model (another quantization, or
// another finetune of the same shapes) is refused.
#pragma once

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <span>
#include <string_view>
#include <vector>

#include "ember/model/hparams.hpp"

namespace ember::state {

inline constexpr char kMagic[4] = {'E', 'M', 'B', 'S'};
inline constexpr uint32_t kVersion = 1;
inline constexpr size_t kHeaderBytes = 4 + 4 + 8 + 4 * 6;

inline uint64_t fnv1a(const void* data, size_t n, uint64_t h = 14695981039346656037ull) {
  const auto* p = static_cast<const unsigned char*>(data);
  for (size_t i = 0; i < n; ++i) h = (h ^ p[i]) * 1099511628211ull;
  return h;
}

class Writer {
 public:
  explicit Writer(std::vector<std::byte>& out) : out_(&out) {}
  void bytes(const void* p, size_t n) {
    const auto* b = static_cast<const std::byte*>(p);
    out_->insert(out_->end(), b, b + n);
  }
  void u32(uint32_t v) { bytes(&v, 4); }  // ember targets little-endian hosts
  void u64(uint64_t v) { bytes(&v, 8); }

 private:
  std::vector<std::byte>* out_;
};

class Reader {
 public:
  explicit Reader(std::span<const std::byte> in) : in_(in) {}
  bool bytes(void* p, size_t n) {
    if (n == 0) return true;  // `p` may then be null, which memcpy must not see
    if (n > left()) return false;
    std::memcpy(p, in_.data() + pos_, n);
    pos_ += n;
    return true;
  }
  bool skip(size_t n) {
    if (n > left()) return false;
    pos_ += n;
    return true;
  }
  bool u32(uint32_t& v) { return bytes(&v, 4); }
  bool u64(uint64_t& v) { return bytes(&v, 8); }
  size_t left() const { return in_.size() - pos_; }
  size_t pos() const { return pos_; }
  const std::byte* here() const { return in_.data() + pos_; }

 private:
  std::span<const std::byte> in_;
  size_t pos_ = 0;
};

// Identifies a model: hyperparameters, tensors (name, type, shape, first 64 bytes) and file
// size. Model computes it once at load, before it releases the weights' pages (reading a
// tensor's first bytes later would map their pages again: a 2 MiB page each where the page
// cache holds the file in huge pages).
template <class File>
uint64_t model_fingerprint(const Hyperparams& h, const File& file) {
  uint64_t f = fnv1a(h.arch.data(), h.arch.size());
  const uint32_t u[] = {h.n_vocab,   h.n_ctx_train, h.n_embd,   h.n_layer, h.n_head,
                        h.n_head_kv, h.n_ff,        h.head_dim, h.n_rot,   uint32_t(h.rope_style)};
  f = fnv1a(u, sizeof u, f);
  const float fl[] = {h.rms_eps, h.rope_freq_base};
  f = fnv1a(fl, sizeof fl, f);
  for (const auto& t : file.tensors()) {
    f = fnv1a(t.name.data(), t.name.size(), f);
    const uint32_t d[] = {uint32_t(t.dtype), t.n_dims};
    f = fnv1a(d, sizeof d, f);
    f = fnv1a(t.ne.data(), sizeof(uint64_t) * t.ne.size(), f);
    f = fnv1a(t.data, std::min<uint64_t>(t.n_bytes, 64), f);  // a sample of the weights: tells finetunes apart
  }
  const uint64_t size = file.bytes().size();
  return fnv1a(&size, sizeof size, f);
}

}  // namespace ember::state
