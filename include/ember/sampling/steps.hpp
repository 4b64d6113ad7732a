// The sampling steps, each a small value type: configuration fields first (set them with
// designated initializers), then any state the step carries between tokens, public so a
// host can inspect it. Every step has
//   void apply(Candidates&, const Draws&);   // transform the candidates, or select one
// and history-aware ones also `void accept(TokenId)` (every token that joins the context)
// and `void reset()`. Each follows the llama.cpp sampler of the same name (src/llama-sampling.cpp);
// where ember differs, the comment says so. Neutral parameters make a step a no-op.
// Every member has a default initializer (`{}` at least), so designated initializers that
// name only a few fields raise no -Wmissing-field-initializers in a host's -Wextra build.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <vector>

#include "ember/sampling/candidates.hpp"

namespace ember::sampling {

// Selects the best candidate: highest logit, lowest id on ties (llama_sampler_init_greedy).
struct Greedy {
  void apply(Candidates& c, const Draws&) const {
    if (!c.empty()) c.select(c.best());
  }
};

// Selects by a seeded draw from softmax(logits) (llama_sampler_init_dist). The draw walks the
// candidates in sorted order and uses Draws::uniform(token_stream).
struct Draw {
  void apply(Candidates& c, const Draws& d) const {
    if (c.empty()) return;
    c.softmax();
    c.select(c.index_at(d.uniform(Draws::token_stream)));
  }
};

// logit /= t (llama_sampler_init_temp_ext). t <= 0 keeps only the best candidate.
// Dynamic temperature (dynamic_range > 0): t' = t_min + (t_max - t_min) * (H / H_max)^exponent,
// t_min = max(0, t - range), t_max = t + range, H the entropy of softmax(logits) over the current
// candidates and H_max = log(n) that of a uniform distribution over them.
// Unlike llama.cpp the top logit is subtracted first: softmax is unchanged, and the later
// softmax then computes exp((l - max) / t) exactly as ember always has.
struct Temperature {
  float temperature = 0.8f;
  float dynamic_range = 0.f;  // 0: a fixed temperature
  float dynamic_exponent = 1.f;

  void apply(Candidates& c, const Draws&) const {
    if (c.empty()) return;
    float t = temperature;
    if (dynamic_range > 0.f) {
      if (c.size() <= 1) return;
      const float t_min = std::max(0.f, temperature - dynamic_range);
      const float t_max = temperature + dynamic_range;
      c.softmax();
      double entropy = 0;
      for (const auto& x : c.items())
        if (x.p > 0.f) entropy -= double(x.p) * std::log(double(x.p));
      const double max_entropy = std::log(double(c.size()));
      t = t_min + (t_max - t_min) * float(std::pow(entropy / max_entropy, double(dynamic_exponent)));
    }
    if (t <= 0.f) {
      c.keep_only(c.best());
      return;
    }
    const float max = c.max_logit();
    if (!(max > -INFINITY)) return;
    for (auto& x : c.items()) x.logit = (x.logit - max) / t;
    c.logits_changed(/*order_kept=*/true);
  }
};

// Keeps the k highest logits (llama_sampler_init_top_k). k <= 0: keep all.
struct TopK {
  int32_t k = 40;

  void apply(Candidates& c, const Draws&) const {
    if (k > 0) c.keep_top(size_t(k));
  }
};

// Nucleus: keeps the smallest sorted prefix whose probability reaches p, at least min_keep
// (llama_sampler_init_top_p). p >= 1: keep all.
struct TopP {
  float p = 0.95f;
  size_t min_keep = 1;

  void apply(Candidates& c, const Draws&) const {
    if (p >= 1.f || c.empty()) return;
    if (!c.is_normalized()) c.softmax();
    double cum = 0;
    size_t keep = c.size();
    for (size_t i = 0; i < c.size(); ++i) {
      cum += c[i].p;
      if (cum >= p && i + 1 >= min_keep) {
        keep = i + 1;
        break;
      }
    }
    c.truncate(keep);
  }
};

// Keeps candidates with probability >= p * (the top probability), at least min_keep
// (llama_sampler_init_min_p, which tests the same in log space: logit >= max + log p).
// p <= 0: keep all.
struct MinP {
  float p = 0.05f;
  size_t min_keep = 1;

  void apply(Candidates& c, const Draws&) const {
    if (p <= 0.f || c.empty()) return;
    if (!c.has_probabilities()) c.softmax();
    c.sort();
    const float floor = c[0].p * p;
    size_t keep = 1;
    while (keep < c.size() && c[keep].p >= floor) ++keep;
    c.truncate(std::max(keep, min_keep));
  }
};

// Locally typical sampling (Meister et al. 2022; llama_sampler_init_typical): with H the
// entropy of softmax(logits), orders candidates by |-log p - H| (most typical first) and keeps
// the shortest prefix of that order whose probability exceeds p, at least min_keep.
// p >= 1: keep all. Ties in typicality go by ranks_before; zero probabilities add no entropy.
struct TypicalP {
  float p = 1.f;
  size_t min_keep = 1;

  // Scratch reused across tokens.
  std::vector<double> atypicality{};  // (candidates) |-log p - H|
  std::vector<uint32_t> order{};      // (candidates) indices, most typical first
  std::vector<Candidate> reordered{};

  void apply(Candidates& c, const Draws&) {
    if (p >= 1.f || c.empty()) return;
    if (!c.is_normalized()) c.softmax();
    const size_t n = c.size();
    double entropy = 0;
    for (const auto& x : c.items())
      if (x.p > 0.f) entropy -= double(x.p) * std::log(double(x.p));
    atypicality.resize(n);
    order.resize(n);
    for (size_t i = 0; i < n; ++i) {
      atypicality[i] = std::abs(-std::log(double(c[i].p)) - entropy);
      order[i] = uint32_t(i);
    }
    std::sort(order.begin(), order.end(), [&](uint32_t a, uint32_t b) {
      return atypicality[a] < atypicality[b] || (atypicality[a] == atypicality[b] && ranks_before(c[a], c[b]));
    });
    double cum = 0;
    size_t keep = n;
    for (size_t i = 0; i < n; ++i) {
      cum += c[order[i]].p;
      if (cum > p && i + 1 >= min_keep) {
        keep = i + 1;
        break;
      }
    }
    reordered.resize(keep);
    for (size_t i = 0; i < keep; ++i) reordered[i] = c[order[i]];
    std::copy(reordered.begin(), reordered.end(), c.items().begin());
    c.order_changed();
    c.truncate(keep);
  }
};

// Repetition, frequency and presence penalties over the last last_n accepted tokens
// (llama_sampler_init_penalties). For a token seen count > 0 times in the window:
//   logit = logit > 0 ? logit / repeat : logit * repeat;
//   logit -= count * frequency + presence;
// last_n: 0 turns the step off, < 0 looks at every accepted token.
struct Penalties {
  int32_t last_n = 64;
  float repeat = 1.f;     // 1: off
  float frequency = 0.f;  // 0: off
  float presence = 0.f;   // 0: off

  // State: the window and how often each token id occurs in it.
  TokenHistory history{};
  std::vector<int32_t> counts{};  // (ids seen) by token id

  bool neutral() const { return last_n == 0 || (repeat == 1.f && frequency == 0.f && presence == 0.f); }

  void apply(Candidates& c, const Draws&) {
    if (neutral() || c.empty()) return;
    if (c.in_id_order() && counts.size() < c.size()) counts.resize(c.size(), 0);  // once: no growth later
    for (auto& x : c.items()) {
      if (x.id < 0 || size_t(x.id) >= counts.size()) continue;
      const int32_t count = counts[size_t(x.id)];
      if (count == 0) continue;
      x.logit = x.logit > 0.f ? x.logit / repeat : x.logit * repeat;
      x.logit -= float(count) * frequency + presence;
    }
    c.logits_changed();
  }

  void accept(TokenId t) {
    if (last_n == 0 || t < 0) return;
    if (size_t(t) >= counts.size()) counts.resize(size_t(t) + 1, 0);
    ++counts[size_t(t)];
    const TokenId left = history.push(t, last_n);
    if (left >= 0) --counts[size_t(left)];
  }

  void reset() {
    history.clear();
    std::fill(counts.begin(), counts.end(), 0);
  }
};

// Adds a fixed bias to chosen tokens' logits (llama_sampler_init_logit_bias); -INFINITY bans
// a token. Repeated ids add up.
struct LogitBias {
  struct Entry {
    TokenId id;
    float bias;
  };
  std::vector<Entry> biases{};

  void apply(Candidates& c, const Draws&) const {
    if (biases.empty() || c.empty()) return;
    for (const Entry& e : biases) {
      if (e.id < 0) continue;
      if (c.in_id_order()) {
        if (size_t(e.id) < c.size()) c[size_t(e.id)].logit += e.bias;
      } else {
        for (auto& x : c.items())
          if (x.id == e.id) x.logit += e.bias;
      }
    }
    c.logits_changed();
  }
};

// Mirostat 2.0 (Basu et al. 2021; llama_sampler_init_mirostat_v2): a terminal step that aims
// for an average surprise of tau bits. It keeps the candidates whose surprise -log2 p is at
// most mu (at least the best), renormalizes, draws one with Draws::uniform(token_stream), then
// learns: mu -= eta * (surprise of the drawn token - tau).
struct MirostatV2 {
  float tau = 5.f;
  float eta = 0.1f;

  // State: the surprise ceiling, 2 * tau at the start and after reset().
  float mu = 2.f * tau;

  void apply(Candidates& c, const Draws& d) {
    if (c.empty()) return;
    c.softmax();
    size_t keep = 0;
    while (keep < c.size() && -std::log2(c[keep].p) <= mu) ++keep;
    c.truncate(std::max<size_t>(keep, 1));
    c.softmax();
    const size_t i = c.index_at(d.uniform(Draws::token_stream));
    c.select(i);
    mu -= eta * (-std::log2(c[i].p) - tau);
  }

  void reset() { mu = 2.f * tau; }
};

// DRY, "don't repeat yourself" (p-e-w, text-generation-webui #5677; llama_sampler_init_dry).
// When the last L tokens of the context also occur earlier, followed there by token t, then
// emitting t would extend the repetition to L + 1; if L >= allowed_length, t is penalized:
//   logit(t) -= multiplier * base^(L - allowed_length)     (L the longest such match for t)
// Matches are searched within the last last_n accepted tokens (< 0: all of them, 0: off) and
// may not reach back past the most recent sequence breaker (a match cannot span a breaker);
// a single-token breaker is itself never penalized. Breakers are token sequences: tokenize
// llama.cpp's strings ("\n", ":", "\"", "*") yourself, which keeps this layer free of the
// tokenizer (llama.cpp also accepts every token that merely contains a breaker string's start,
// and caps tails at 20 tokens; ember matches the sequences exactly). The exponent is capped
// so the penalty stays finite in float, as llama.cpp does.
struct Dry {
  float multiplier = 0.f;  // 0: off
  float base = 1.75f;      // < 1: off
  int32_t allowed_length = 2;
  int32_t last_n = -1;
  std::vector<std::vector<TokenId>> sequence_breakers{};

  // State: the window; scratch reused across tokens.
  TokenHistory history{};
  std::vector<int32_t> repeat_length{};  // (window) by position: the match ending there
  std::vector<int32_t> longest{};        // (ids seen) by token id: its longest match, -1: none
  std::vector<TokenId> penalized{};      // ids whose `longest` is set this token

  bool neutral() const { return multiplier == 0.f || base < 1.f || last_n == 0; }

  void apply(Candidates& c, const Draws&) {
    if (neutral() || c.empty()) return;
    if (c.in_id_order() && longest.size() < c.size()) longest.resize(c.size(), -1);
    const std::span<const TokenId> w = history.window();  // oldest first
    const int n = int(w.size());
    if (n <= allowed_length) return;
    auto from_end = [&](int i) { return w[size_t(n - 1 - i)]; };  // 0: the newest

    // 1. The most recent breaker bounds how far back a match may reach.
    int limit = n;
    for (int i = 0; i < n && limit == n; ++i) {
      int tail_found = -1;
      for (const auto& b : sequence_breakers) {
        if (b.empty() || b[0] != from_end(i)) continue;
        const int tail = int(b.size()) - 1;  // tokens after the head, which are more recent
        if (tail <= tail_found || tail > i) continue;
        bool match = true;
        for (int k = 0; k < tail && match; ++k) match = b[size_t(k) + 1] == from_end(i - k - 1);
        if (match) tail_found = tail;
      }
      if (tail_found >= 0) limit = i - tail_found;
    }
    if (limit < allowed_length) return;

    // 2. For each earlier end position, the length of the match between the text ending there
    // and the text ending now: a Z-algorithm over the reversed window, O(n) (as llama.cpp).
    repeat_length.assign(size_t(n), 0);
    const int last = n - 1;
    int box_left = 0, box_right = 0;
    for (int k = 1; k < n; ++k) {
      if (k > box_right) {
        int m = 0;
        while (m + k < n && from_end(m) == from_end(m + k)) ++m;
        repeat_length[size_t(last - k)] = std::min(m, limit);
        if (m > 0) box_left = k, box_right = k + m - 1;
      } else {
        const int mirror = repeat_length[size_t(last - (k - box_left))];
        if (mirror < box_right - k + 1) {
          repeat_length[size_t(last - k)] = std::min(mirror, limit);
        } else {
          int i = box_right + 1;
          while (i < n && from_end(i) == from_end(i - k)) ++i;
          repeat_length[size_t(last - k)] = std::min(i - k, limit);
          box_left = k, box_right = i - 1;
        }
      }
    }

    // 3. The token after each long enough match would extend it.
    for (int i = 0; i + 1 < n; ++i) {
      const int length = repeat_length[size_t(i)];
      if (length < allowed_length) continue;
      const TokenId t = w[size_t(i) + 1];
      if (t < 0) continue;
      if (size_t(t) >= longest.size()) longest.resize(size_t(t) + 1, -1);
      if (longest[size_t(t)] < 0) penalized.push_back(t);
      longest[size_t(t)] = std::max(longest[size_t(t)], length);
    }

    // 4. Penalize.
    int max_exponent = 0;
    if (base > 1.000001f) max_exponent = int(88.7228391f / std::log(base));  // log(FLT_MAX)
    auto penalty = [&](TokenId t) {
      for (const auto& b : sequence_breakers)
        if (b.size() == 1 && b[0] == t) return 0.f;
      int exponent = longest[size_t(t)] - allowed_length;
      if (max_exponent > 0 && exponent > max_exponent) exponent = max_exponent;
      return float(double(multiplier) * std::pow(double(base), exponent));
    };
    if (c.in_id_order()) {
      for (TokenId t : penalized)
        if (size_t(t) < c.size()) c[size_t(t)].logit -= penalty(t);
    } else {
      for (auto& x : c.items())
        if (x.id >= 0 && size_t(x.id) < longest.size() && longest[size_t(x.id)] >= 0) x.logit -= penalty(x.id);
    }
    for (TokenId t : penalized) longest[size_t(t)] = -1;
    penalized.clear();
    c.logits_changed();
  }

  void accept(TokenId t) {
    if (last_n != 0) history.push(t, last_n);
  }

  void reset() { history.clear(); }
};

// XTC, "exclude top choices" (p-e-w, text-generation-webui #6335; llama_sampler_init_xtc):
// with chance `probability` per token (Draws::uniform(xtc_stream) < probability), removes every
// candidate whose probability is >= threshold except the least likely of them, provided that
// leaves at least min_keep. probability <= 0 or threshold > 0.5 (then at most one token can be
// above it): off.
struct Xtc {
  float probability = 0.f;
  float threshold = 0.1f;
  size_t min_keep = 1;

  void apply(Candidates& c, const Draws& d) const {
    if (probability <= 0.f || threshold > 0.5f || c.size() < 2) return;
    if (d.uniform(Draws::xtc_stream) >= probability) return;
    if (!c.is_normalized()) c.softmax();
    c.sort();
    size_t last_above = 0;
    for (size_t i = 0; i < c.size() && c[i].p >= threshold; ++i) last_above = i;
    if (last_above > 0 && c.size() - last_above >= min_keep) c.drop_front(last_above);
  }
};

}  // namespace ember::sampling
