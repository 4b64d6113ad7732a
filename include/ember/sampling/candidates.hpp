// What sampling steps work on: the candidate tokens of one position (id, logit, and a
// probability once a step needs it), the random draws a step may use, and the history of
// accepted tokens that penalties look back over.
//
// Conventions: "sorted" always means ranks_before order (higher logit first, lower id on
// ties), so every result is a function of the logits alone, never of sort stability.
// Buffers are reused, so after the first token nothing here allocates.
#pragma once

#include <algorithm>
#include <bit>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <span>
#include <utility>
#include <vector>

#include "ember/core/rng.hpp"

namespace ember {

using TokenId = int32_t;

namespace sampling {

struct Candidate {
  TokenId id;
  float logit;
  float p = 0.f;  // meaningful only while Candidates::has_probabilities()
};

// The one order all steps agree on.
inline bool ranks_before(const Candidate& a, const Candidate& b) {
  return a.logit > b.logit || (a.logit == b.logit && a.id < b.id);
}

// The candidate set of one position. Steps edit logits, reorder, truncate or select; the
// set remembers what is still valid (order, probabilities) so each step redoes only what
// its predecessors invalidated.
class Candidates {
 public:
  static constexpr size_t npos = size_t(-1);

  Candidates() = default;
  explicit Candidates(std::span<const float> logits) { assign(logits); }

  // Starts over from a full logit vector: ids 0..n-1 in id order. Reuses storage.
  void assign(std::span<const float> logits) {
    items_.resize(logits.size());
    for (size_t i = 0; i < logits.size(); ++i) items_[i] = {TokenId(i), logits[i], 0.f};
    id_order_ = true;
    sorted_ = probabilities_ = normalized_ = false;
    selected_ = npos;
  }

  size_t size() const { return items_.size(); }
  bool empty() const { return items_.empty(); }
  Candidate& operator[](size_t i) { return items_[i]; }
  const Candidate& operator[](size_t i) const { return items_[i]; }
  std::span<Candidate> items() { return items_; }
  std::span<const Candidate> items() const { return items_; }

  // items()[i].id == i for every i: fresh from assign(), at most truncated.
  bool in_id_order() const { return id_order_; }
  // In ranks_before order, or in an order-preserving image of it (after temperature).
  bool is_sorted() const { return sorted_; }
  // p is proportional to exp(logit) over the current set...
  bool has_probabilities() const { return probabilities_; }
  // ...and sums to 1 over it.
  bool is_normalized() const { return normalized_; }

  void sort() {
    if (sorted_) return;
    if (id_order_ && items_.size() >= radix_sort_min) {
      radix_sort_by_logit();
    } else {
      std::sort(items_.begin(), items_.end(), ranks_before);
    }
    sorted_ = true;
    id_order_ = false;
  }

  // Moves the best k to the front, in order, and drops the rest (all are kept, sorted, if k >= size).
  void keep_top(size_t k) {
    if (k >= size() || sorted_) {
      sort();
      truncate(k);
      return;
    }
    std::partial_sort(items_.begin(), items_.begin() + ptrdiff_t(k), items_.end(), ranks_before);
    id_order_ = false;
    truncate(k);
    sorted_ = true;
  }

  // p = exp(logit - max) / sum over the current set, in sorted order with a double sum.
  void softmax() {
    sort();
    if (empty()) return;
    const float max = items_[0].logit;
    if (!(max > -INFINITY)) {  // every candidate banned: nothing to prefer, keep them equal
      for (auto& c : items_) c.p = 1.f / float(items_.size());
    } else {
      double sum = 0;
      for (auto& c : items_) {
        c.p = std::exp(c.logit - max);
        sum += c.p;
      }
      for (auto& c : items_) c.p = float(c.p / sum);
    }
    probabilities_ = normalized_ = true;
  }

  // Keeps the first n. Probabilities stay proportional but no longer sum to 1.
  void truncate(size_t n) {
    if (n >= size()) return;
    items_.resize(n);
    normalized_ = false;
  }

  // Drops the first n.
  void drop_front(size_t n) {
    n = std::min(n, size());
    if (n == 0) return;
    items_.erase(items_.begin(), items_.begin() + ptrdiff_t(n));
    id_order_ = false;
    normalized_ = false;
  }

  // Keeps candidate i alone.
  void keep_only(size_t i) {
    items_[0] = items_[i];
    items_.resize(1);
    id_order_ = items_[0].id == 0;
    sorted_ = true;
    normalized_ = false;
  }

  // A step edited logits: probabilities are stale, and so is the order unless it kept it.
  void logits_changed(bool order_kept = false) {
    probabilities_ = normalized_ = false;
    if (!order_kept) sorted_ = false;
  }

  // A step reordered the set by a criterion of its own (typical-p).
  void order_changed() {
    sorted_ = false;
    id_order_ = false;
  }

  // Index of the best candidate: the first when sorted, else highest logit, lowest id on ties.
  size_t best() const {
    if (sorted_ || empty()) return 0;
    size_t b = 0;
    for (size_t i = 1; i < items_.size(); ++i)
      if (ranks_before(items_[i], items_[b])) b = i;
    return b;
  }

  float max_logit() const { return empty() ? -INFINITY : items_[best()].logit; }

  // The candidate where the running sum of p, in the current order, first exceeds u.
  // Needs normalized probabilities; u in [0, 1).
  size_t index_at(double u) const {
    double cum = 0;
    for (size_t i = 0; i < items_.size(); ++i) {
      cum += items_[i].p;
      if (u < cum) return i;
    }
    return items_.size() - 1;  // rounding left the sum a hair under 1
  }

  void select(size_t i) { selected_ = i; }
  bool has_selection() const { return selected_ != npos; }
  // The chosen token, or -1 before any step chose.
  TokenId selected() const { return selected_ == npos ? TokenId(-1) : items_[selected_].id; }

 private:
  // A whole vocabulary sorts ~10x faster by a stable radix sort on the logit than by
  // comparisons; starting from id order, stability gives the same ties-by-id order.
  static constexpr size_t radix_sort_min = 1024;
  static constexpr int radix_bits = 11;  // three passes cover the 32-bit key

  // Unsigned keys that sort like the floats, descending; -0 and +0 tie as they compare equal.
  static uint32_t descending_key(float logit) {
    if (logit == 0.f) logit = 0.f;
    const uint32_t bits = std::bit_cast<uint32_t>(logit);
    const uint32_t ascending = (bits & 0x80000000u) ? ~bits : bits | 0x80000000u;
    return ~ascending;
  }

  void radix_sort_by_logit() {
    const size_t n = items_.size();
    constexpr size_t buckets = size_t(1) << radix_bits;
    keys_.resize(n);
    keys_scratch_.resize(n);
    histogram_.assign(3 * buckets, 0);
    for (size_t i = 0; i < n; ++i) {  // the low half is the id, which is i here
      const uint32_t key = descending_key(items_[i].logit);
      keys_[i] = uint64_t(key) << 32 | uint64_t(i);
      for (int pass = 0; pass < 3; ++pass)
        ++histogram_[size_t(pass) * buckets + ((key >> (pass * radix_bits)) & (buckets - 1))];
    }
    for (int pass = 0; pass < 3; ++pass) {
      uint32_t* count = histogram_.data() + size_t(pass) * buckets;
      uint32_t sum = 0;
      for (size_t b = 0; b < buckets; ++b) sum += std::exchange(count[b], sum);
      const int shift = 32 + pass * radix_bits;
      for (uint64_t k : keys_) keys_scratch_[count[(k >> shift) & (buckets - 1)]++] = k;
      keys_.swap(keys_scratch_);
    }
    items_scratch_.resize(n);
    for (size_t i = 0; i < n; ++i) items_scratch_[i] = items_[uint32_t(keys_[i])];
    items_.swap(items_scratch_);
  }

  std::vector<Candidate> items_;
  std::vector<Candidate> items_scratch_;
  std::vector<uint64_t> keys_, keys_scratch_;
  std::vector<uint32_t> histogram_;
  size_t selected_ = npos;
  bool id_order_ = false;
  bool sorted_ = false;
  bool probabilities_ = false;
  bool normalized_ = false;
};

// Which random numbers one sample() call uses. Counter-based (core/rng.hpp): the value
// depends only on the seed, the index of this sample since reset, and the stream, so
// output never depends on threads, backends or which other random steps are present.
struct Draws {
  // Streams keep independent purposes apart: XTC's coin does not shift the token draw.
  static constexpr uint64_t token_stream = 0;  // the final draw (Draw, MirostatV2)
  static constexpr uint64_t xtc_stream = 1;

  uint64_t seed = 0;
  uint64_t index = 0;  // samples drawn since reset

  // Stream 0 is exactly uniform01(seed, index), the draw ember has always used.
  double uniform(uint64_t stream = token_stream) const {
    return uniform01(stream == token_stream ? seed : mix64(seed, ~stream), index);
  }
};

// The last accepted tokens, oldest first: a sliding window of `limit` tokens (< 0: all of
// them, 0: none). The buffer is trimmed by half-windows, so a push is O(1) amortized and
// never allocates once the buffer has reached 2 * limit.
class TokenHistory {
 public:
  // Appends t; returns the token that left the window, or -1.
  TokenId push(TokenId t, int32_t limit) {
    limit_ = limit;
    if (limit == 0) return -1;
    TokenId left = -1;
    if (limit > 0) {
      const size_t window = size_t(limit);
      if (tokens_.capacity() < 2 * window) tokens_.reserve(2 * window);
      if (tokens_.size() >= window) left = tokens_[tokens_.size() - window];
      if (tokens_.size() == 2 * window) tokens_.erase(tokens_.begin(), tokens_.begin() + ptrdiff_t(window));
    }
    tokens_.push_back(t);
    return left;
  }

  std::span<const TokenId> window() const {
    const size_t n = limit_ < 0 ? tokens_.size() : std::min(tokens_.size(), size_t(limit_));
    return std::span<const TokenId>(tokens_).last(n);
  }

  void clear() { tokens_.clear(); }

 private:
  std::vector<TokenId> tokens_;
  int32_t limit_ = 0;
};

}  // namespace sampling
}  // namespace ember
