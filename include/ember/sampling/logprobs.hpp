// Log-probabilities of the model's own distribution, log softmax(logits), for a Session's
// logprobs API: computed with the top logit subtracted and a double sum, so they stay exact
// for any logit scale.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <span>
#include <vector>

#include "ember/sampling/candidates.hpp"

namespace ember {

struct TokenLogprob {
  TokenId id;
  float logprob;  // natural log
};

// log sum exp(logits): log p(i) = logits[i] - log_sum_exp(logits). -INFINITY when empty.
inline double log_sum_exp(std::span<const float> logits) {
  float max = -INFINITY;
  for (float l : logits) max = std::max(max, l);
  if (!(max > -INFINITY) || !std::isfinite(max)) return max;
  double sum = 0;
  for (float l : logits) sum += std::exp(double(l) - double(max));
  return double(max) + std::log(sum);
}

// log softmax(logits)[id].
inline float token_logprob(std::span<const float> logits, TokenId id) {
  if (id < 0 || size_t(id) >= logits.size()) return -INFINITY;
  return float(double(logits[size_t(id)]) - log_sum_exp(logits));
}

// The n most likely tokens (fewer if the vocabulary is smaller), most likely first, ties by
// lower id, with their log-probabilities. Writes into `out`, reusing its storage.
inline void top_logprobs(std::span<const float> logits, size_t n, std::vector<TokenLogprob>& out) {
  out.clear();
  n = std::min(n, logits.size());
  if (n == 0) return;
  // A heap of the best n seen so far with the worst on top: one pass, no vocabulary-sized buffer.
  auto better = [](const TokenLogprob& a, const TokenLogprob& b) {
    return a.logprob > b.logprob || (a.logprob == b.logprob && a.id < b.id);
  };
  for (size_t i = 0; i < logits.size(); ++i) {
    const TokenLogprob x{TokenId(i), logits[i]};  // the raw logit until the end
    if (out.size() < n) {
      out.push_back(x);
      std::push_heap(out.begin(), out.end(), better);
    } else if (better(x, out.front())) {
      std::pop_heap(out.begin(), out.end(), better);
      out.back() = x;
      std::push_heap(out.begin(), out.end(), better);
    }
  }
  std::sort_heap(out.begin(), out.end(), better);
  const double normalizer = log_sum_exp(logits);
  for (auto& x : out) x.logprob = float(double(x.logprob) - normalizer);
}

inline std::vector<TokenLogprob> top_logprobs(std::span<const float> logits, size_t n) {
  std::vector<TokenLogprob> out;
  out.reserve(std::min(n, logits.size()));
  top_logprobs(logits, n, out);
  return out;
}

}  // namespace ember
