// Sampling: each step against its definition, and seeded draws against the analytic
// distribution.
#include <doctest/doctest.h>

#include <cmath>
#include <map>
#include <vector>

#include "ember/sampling/sampler.hpp"

using ember::Sampler;
using ember::SamplerParams;

TEST_CASE("sampling: greedy is the argmax, first index on ties") {
  const std::vector<float> logits = {0.1f, 2.f, -1.f, 2.f, 1.9f};
  CHECK(Sampler::greedy().sample(logits) == 1);
  CHECK(Sampler(SamplerParams{.temperature = 0.f}).sample(logits) == 1);
}

TEST_CASE("sampling: top-k 1, tiny top-p and min-p 1 all reduce to greedy") {
  const std::vector<float> logits = {0.5f, 1.f, 3.f, 2.9f, -2.f};
  for (uint64_t seed = 0; seed < 50; ++seed) {
    CHECK(Sampler({.temperature = 1.5f, .top_k = 1, .top_p = 1.f, .min_p = 0.f, .seed = seed}).sample(logits) == 2);
    CHECK(Sampler({.temperature = 1.5f, .top_k = 0, .top_p = 1e-6f, .min_p = 0.f, .seed = seed}).sample(logits) == 2);
    CHECK(Sampler({.temperature = 1.5f, .top_k = 0, .top_p = 1.f, .min_p = 1.f, .seed = seed}).sample(logits) == 2);
  }
}

TEST_CASE("sampling: the same seed gives the same sequence, another seed another one") {
  std::vector<float> logits(100);
  for (size_t i = 0; i < logits.size(); ++i) logits[i] = float(std::sin(double(i))) * 2.f;
  const SamplerParams p{.temperature = 1.f, .top_k = 0, .top_p = 1.f, .min_p = 0.f, .seed = 99};
  Sampler a(p), b(p), c({.temperature = 1.f, .top_k = 0, .top_p = 1.f, .min_p = 0.f, .seed = 100});
  std::vector<int> sa, sb, sc;
  for (int i = 0; i < 200; ++i)
    sa.push_back(a.sample(logits)), sb.push_back(b.sample(logits)), sc.push_back(c.sample(logits));
  CHECK(sa == sb);
  CHECK(sa != sc);
  a.reset();
  CHECK(a.sample(logits) == sa[0]);
}

TEST_CASE("sampling: draws follow softmax(logits / T) restricted by top-k and min-p") {
  const std::vector<float> logits = {1.f, 2.f, 0.f, 1.5f, -3.f};
  const float T = 0.7f;
  // top_k = 4 drops id 4; min_p = 0.1 of the top probability (at T = 1) drops id 2 (e^-2 < 0.1... of e^0).
  Sampler s({.temperature = T, .top_k = 4, .top_p = 1.f, .min_p = 0.2f, .seed = 5});
  std::map<int, int> count;
  const int n = 40000;
  for (int i = 0; i < n; ++i) ++count[s.sample(logits)];
  CHECK(count[4] == 0);
  CHECK(count[2] == 0);  // p(2)/p(1) = e^-2 = 0.135 < 0.2 at T = 1
  double z = 0;
  for (int id : {0, 1, 3}) z += std::exp(logits[id] / T);
  for (int id : {0, 1, 3}) {
    const double expected = std::exp(logits[id] / T) / z;
    INFO("id ", id, " expected ", expected, " got ", double(count[id]) / n);
    CHECK(std::abs(double(count[id]) / n - expected) < 0.01);
  }
}

TEST_CASE("sampling: top-p keeps the smallest prefix reaching p") {
  // Probabilities at T=1: ids 0 and 1 carry ~0.88 together; top_p 0.85 keeps exactly those two.
  const std::vector<float> logits = {3.f, 2.5f, 0.5f, 0.4f, 0.3f};
  Sampler s({.temperature = 1.f, .top_k = 0, .top_p = 0.85f, .min_p = 0.f, .seed = 1});
  std::map<int, int> count;
  for (int i = 0; i < 5000; ++i) ++count[s.sample(logits)];
  CHECK(count[0] + count[1] == 5000);
  CHECK(count[0] > count[1]);
}

// ---------------------------------------------------------------------------------------
// The chain: each step against its definition on hand-made logits.

#include <algorithm>
#include <cstdlib>
#include <new>
#include <numeric>
#include <set>
#include <variant>

namespace {

using ember::TokenId;
using ember::sampling::Candidates;
using ember::sampling::Draws;
namespace sampling = ember::sampling;

// Allocation counting for the steady-state test; the replacement below is a plain malloc/free
// pair, so it changes nothing for the rest of the test binary.
thread_local bool count_allocations = false;
thread_local size_t allocations = 0;

std::vector<double> softmax_of(const std::vector<float>& logits) {
  double max = -INFINITY;
  for (float l : logits) max = std::max(max, double(l));
  std::vector<double> p(logits.size());
  double sum = 0;
  for (size_t i = 0; i < p.size(); ++i) sum += p[i] = std::exp(double(logits[i]) - max);
  for (double& x : p) x /= sum;
  return p;
}

std::set<TokenId> ids_of(const Candidates& c) {
  std::set<TokenId> s;
  for (const auto& x : c.items()) s.insert(x.id);
  return s;
}

// Logits of the current candidates by id, for comparing with a directly computed vector.
std::map<TokenId, float> logits_of(const Candidates& c) {
  std::map<TokenId, float> m;
  for (const auto& x : c.items()) m[x.id] = x.logit;
  return m;
}

template <class Step>
Candidates applied(Step& step, const std::vector<float>& logits, Draws d = {}) {
  Candidates c(logits);
  step.apply(c, d);
  return c;
}

// The sampler as it was before the chain (verbatim), the reference for "unchanged behaviour".
class PreviousSampler {
 public:
  explicit PreviousSampler(SamplerParams p) : p_(p) {}
  TokenId sample(std::span<const float> logits) {
    if (p_.temperature <= 0.f) return Sampler::argmax(logits);
    cand_.resize(logits.size());
    for (size_t i = 0; i < logits.size(); ++i) cand_[i] = {TokenId(i), logits[i]};
    auto better = [](const Candidate& a, const Candidate& b) {
      return a.logit > b.logit || (a.logit == b.logit && a.id < b.id);
    };
    size_t n = cand_.size();
    if (p_.top_k > 0 && size_t(p_.top_k) < n) {
      std::partial_sort(cand_.begin(), cand_.begin() + p_.top_k, cand_.end(), better);
      n = size_t(p_.top_k);
    } else {
      std::sort(cand_.begin(), cand_.end(), better);
    }
    softmax(n, 1.f);
    if (p_.top_p < 1.f) {
      double cum = 0;
      size_t keep = n;
      for (size_t i = 0; i < n; ++i) {
        cum += cand_[i].p;
        if (cum >= p_.top_p) {
          keep = i + 1;
          break;
        }
      }
      n = keep;
    }
    if (p_.min_p > 0.f) {
      const float floor = cand_[0].p * p_.min_p;
      size_t keep = 1;
      while (keep < n && cand_[keep].p >= floor) ++keep;
      n = keep;
    }
    softmax(n, p_.temperature);
    const double u = ember::uniform01(p_.seed, n_drawn_++);
    double cum = 0;
    for (size_t i = 0; i < n; ++i) {
      cum += cand_[i].p;
      if (u < cum) return cand_[i].id;
    }
    return cand_[n - 1].id;
  }

 private:
  struct Candidate {
    TokenId id;
    float logit;
    float p = 0.f;
  };
  void softmax(size_t n, float temperature) {
    const float max = cand_[0].logit;
    double sum = 0;
    for (size_t i = 0; i < n; ++i) {
      cand_[i].p = std::exp((cand_[i].logit - max) / temperature);
      sum += cand_[i].p;
    }
    for (size_t i = 0; i < n; ++i) cand_[i].p = float(cand_[i].p / sum);
  }
  SamplerParams p_;
  uint64_t n_drawn_ = 0;
  std::vector<Candidate> cand_;
};

}  // namespace

// The whole unaligned family is replaced, so no pointer crosses between this malloc/free pair
// and a sanitizer's own operator new. noinline keeps GCC from pairing the inlined malloc/free
// with new/delete (-Wmismatched-new-delete).
[[gnu::noinline]] void* operator new(std::size_t n, const std::nothrow_t&) noexcept {
  if (count_allocations) ++allocations;
  return std::malloc(n ? n : 1);
}
[[gnu::noinline]] void* operator new(std::size_t n) {
  if (void* p = operator new(n, std::nothrow)) return p;
  throw std::bad_alloc();
}
void* operator new[](std::size_t n) { return operator new(n); }
void* operator new[](std::size_t n, const std::nothrow_t&) noexcept { return operator new(n, std::nothrow); }
[[gnu::noinline]] void operator delete(void* p) noexcept { std::free(p); }
void operator delete(void* p, std::size_t) noexcept { operator delete(p); }
void operator delete(void* p, const std::nothrow_t&) noexcept { operator delete(p); }
void operator delete[](void* p) noexcept { operator delete(p); }
void operator delete[](void* p, std::size_t) noexcept { operator delete(p); }
void operator delete[](void* p, const std::nothrow_t&) noexcept { operator delete(p); }

TEST_CASE("sampling: the parameter front door draws exactly what the sampler before the chain drew") {
  std::vector<float> logits(3000);
  for (size_t i = 0; i < logits.size(); ++i) logits[i] = float(std::sin(double(i) * 0.37) * 4.0 + std::cos(double(i)));
  logits[10] = logits[20] = logits[30];  // ties must break the same way
  const SamplerParams cases[] = {
      {},
      {.temperature = 1.f, .top_k = 0, .top_p = 1.f, .min_p = 0.f},
      {.temperature = 0.7f, .top_k = 0, .top_p = 0.9f, .min_p = 0.f},
      {.temperature = 1.3f, .top_k = 100, .top_p = 1.f, .min_p = 0.02f},
      {.temperature = 2.f, .top_k = 5000, .top_p = 0.5f, .min_p = 0.1f},
      {.temperature = 0.f},
  };
  for (const SamplerParams& base : cases) {
    for (uint64_t seed : {0ull, 1ull, 12345ull}) {
      SamplerParams p = base;
      p.seed = seed;
      Sampler now(p);
      PreviousSampler before(p);
      for (int i = 0; i < 300; ++i) {
        logits[size_t(i) % logits.size()] += 0.01f;  // vary the distribution a little per token
        REQUIRE(now.sample(logits) == before.sample(logits));
      }
    }
  }
}

TEST_CASE("sampling: the default chain follows llama.cpp's order and leaves out neutral steps") {
  using Step = ember::SamplerStep;
  auto kinds = [](const Sampler& s) {
    std::vector<size_t> k;
    for (const Step& step : s.steps()) k.push_back(step.index());
    return k;
  };
  auto index_of = [](auto step) { return Step(step).index(); };
  const size_t bias = index_of(sampling::LogitBias{}), penalties = index_of(sampling::Penalties{}),
               dry = index_of(sampling::Dry{}), top_k = index_of(sampling::TopK{}),
               typical = index_of(sampling::TypicalP{}), top_p = index_of(sampling::TopP{}),
               min_p = index_of(sampling::MinP{}), xtc = index_of(sampling::Xtc{}),
               temperature = index_of(sampling::Temperature{}), mirostat = index_of(sampling::MirostatV2{}),
               greedy = index_of(sampling::Greedy{}), draw = index_of(sampling::Draw{});

  CHECK(kinds(Sampler::greedy()) == std::vector<size_t>{greedy});
  CHECK(kinds(Sampler()) == std::vector<size_t>{top_k, top_p, min_p, temperature, draw});
  CHECK(kinds(Sampler({.temperature = 1.f, .top_k = 0, .top_p = 1.f, .min_p = 0.f})) == std::vector<size_t>{draw});

  SamplerParams all;
  all.typical_p = 0.9f;
  all.repeat_penalty = 1.1f;
  all.dry_multiplier = 0.8f;
  all.xtc_probability = 0.5f;
  all.logit_bias = {{3, -1.f}};
  CHECK(kinds(Sampler(all)) ==
        std::vector<size_t>{bias, penalties, dry, top_k, typical, top_p, min_p, xtc, temperature, draw});
  all.temperature = 0.f;
  CHECK(kinds(Sampler(all)) == std::vector<size_t>{bias, penalties, dry, greedy});
  all.temperature = 0.9f;
  all.mirostat_v2 = true;
  CHECK(kinds(Sampler(all)) == std::vector<size_t>{bias, temperature, mirostat});
  all.mirostat_v2 = false;
  all.xtc_threshold = 0.6f;  // above 0.5 XTC cannot act
  all.repeat_penalty = 1.f;  // and penalties are neutral
  CHECK(kinds(Sampler(all)) == std::vector<size_t>{bias, dry, top_k, typical, top_p, min_p, temperature, draw});
}

TEST_CASE("sampling: candidates sort by logit, ties by id, at every size") {
  for (size_t n : {0u, 1u, 7u, 1023u, 1024u, 5000u}) {
    std::vector<float> logits(n);
    for (size_t i = 0; i < n; ++i) {
      const uint64_t r = ember::mix64(9, i);
      switch (r % 8) {
        case 0: logits[i] = -0.f; break;
        case 1: logits[i] = 0.f; break;
        case 2: logits[i] = -INFINITY; break;
        case 3: logits[i] = 1e-40f; break;                   // subnormal
        case 4: logits[i] = float(int(r % 5)) - 2.f; break;  // many exact ties
        default: logits[i] = float(int64_t(r >> 20) % 200001 - 100000) * 1e-3f;
      }
    }
    Candidates c(logits);
    c.sort();
    std::vector<sampling::Candidate> expected;
    for (size_t i = 0; i < n; ++i) expected.push_back({TokenId(i), logits[i]});
    std::sort(expected.begin(), expected.end(), sampling::ranks_before);
    REQUIRE(c.size() == n);
    bool same = true;
    for (size_t i = 0; i < n; ++i)
      same = same && c[i].id == expected[i].id && std::signbit(c[i].logit) == std::signbit(expected[i].logit);
    INFO("n = ", n);
    CHECK(same);
  }
}

TEST_CASE("sampling: greedy and draw steps select; a chain without a selector ends with a draw") {
  const std::vector<float> logits = {0.f, 3.f, 1.f, 3.f};
  sampling::Greedy greedy;
  Candidates c = applied(greedy, logits);
  CHECK(c.selected() == 1);  // the lower id of the tie

  // Draw follows the candidates' sorted cumulative distribution at u = uniform01(seed, index).
  const auto p = softmax_of(logits);  // sorted order: ids 1, 3, 2, 0
  const int order[] = {1, 3, 2, 0};
  for (uint64_t index = 0; index < 50; ++index) {
    const Draws d{7, index};
    const double u = ember::uniform01(7, index);
    double cum = 0;
    int expected = order[3];
    for (int id : order)
      if (u < (cum += p[size_t(id)])) {
        expected = id;
        break;
      }
    sampling::Draw draw;
    CHECK(applied(draw, logits, d).selected() == expected);
  }
  Sampler a = Sampler::chain(7), b = Sampler::chain(7, {sampling::Draw{}});
  for (int i = 0; i < 50; ++i) CHECK(a.sample(logits) == b.sample(logits));
}

TEST_CASE("sampling: temperature scales logits; dynamic temperature follows the entropy") {
  const std::vector<float> logits = {1.f, 2.f, 0.5f, -1.f, 1.5f};
  auto probabilities_after = [&](sampling::Temperature t) {
    Candidates c = applied(t, logits);
    c.softmax();
    std::vector<double> p(logits.size(), 0.0);
    for (const auto& x : c.items()) p[size_t(x.id)] = x.p;
    return p;
  };
  auto scaled = [&](double t) {
    std::vector<float> l(logits);
    for (float& x : l) x = float(x / t);
    return softmax_of(l);
  };
  auto close = [](const std::vector<double>& a, const std::vector<double>& b) {
    for (size_t i = 0; i < a.size(); ++i)
      if (std::abs(a[i] - b[i]) > 1e-6) return false;
    return true;
  };
  CHECK(close(probabilities_after({.temperature = 0.5f}), scaled(0.5)));
  CHECK(close(probabilities_after({.temperature = 3.f}), scaled(3.0)));

  // Dynamic: t' = t_min + (t_max - t_min) * (H / log n)^exponent.
  const auto p = softmax_of(logits);
  double h = 0;
  for (double x : p) h -= x * std::log(x);
  const double t_dyn = 0.2 + (1.8 - 0.2) * std::pow(h / std::log(5.0), 2.0);
  const sampling::Temperature dynamic{.temperature = 1.f, .dynamic_range = 0.8f, .dynamic_exponent = 2.f};
  CHECK(close(probabilities_after(dynamic), scaled(t_dyn)));

  // t <= 0 leaves the best alone.
  sampling::Temperature zero{.temperature = 0.f};
  CHECK(ids_of(applied(zero, logits)) == std::set<TokenId>{1});
}

TEST_CASE("sampling: top-k, top-p and min-p keep what their definitions keep") {
  const std::vector<float> logits = {1.f, 3.f, 2.f, 3.f, -1.f, 0.f};
  sampling::TopK k2{.k = 2}, k0{.k = 0}, k9{.k = 9};
  CHECK(ids_of(applied(k2, logits)) == std::set<TokenId>{1, 3});
  CHECK(applied(k0, logits).size() == 6);
  CHECK(applied(k9, logits).size() == 6);
  sampling::TopK k1{.k = 1};
  CHECK(applied(k1, logits)[0].id == 1);  // ties go to the lower id

  // top-p: the smallest sorted prefix with mass >= p.
  const auto p = softmax_of(logits);
  const int order[] = {1, 3, 2, 0, 5, 4};
  for (float top_p : {0.1f, 0.5f, 0.7f, 0.9f, 0.99f, 0.999f}) {
    std::set<TokenId> expected;
    double cum = 0;
    for (int id : order) {
      expected.insert(id);
      if ((cum += p[size_t(id)]) >= top_p) break;
    }
    sampling::TopP step{.p = top_p};
    CHECK(ids_of(applied(step, logits)) == expected);
  }
  // min-p: p >= min_p * p_max.
  for (float min_p : {0.01f, 0.1f, 0.3f, 0.5f, 1.f}) {
    std::set<TokenId> expected;
    for (int id = 0; id < 6; ++id)
      if (p[size_t(id)] >= min_p * p[1] * (1 - 1e-6)) expected.insert(id);
    sampling::MinP step{.p = min_p};
    CHECK(ids_of(applied(step, logits)) == expected);
  }
}

TEST_CASE("sampling: typical-p keeps the most typical tokens up to mass p") {
  const std::vector<float> logits = {2.f, 1.5f, 1.f, 0.2f, -0.5f, -3.f, 0.9f};
  const auto p = softmax_of(logits);
  double h = 0;
  for (double x : p) h -= x * std::log(x);
  std::vector<int> order(p.size());
  std::iota(order.begin(), order.end(), 0);
  std::stable_sort(order.begin(), order.end(), [&](int a, int b) {
    return std::abs(-std::log(p[size_t(a)]) - h) < std::abs(-std::log(p[size_t(b)]) - h);
  });
  for (float typical : {0.05f, 0.3f, 0.5f, 0.8f, 0.95f}) {
    std::set<TokenId> expected;
    double cum = 0;
    for (int id : order) {
      expected.insert(id);
      if ((cum += p[size_t(id)]) > typical) break;
    }
    sampling::TypicalP step{.p = typical};
    INFO("typical_p ", typical);
    CHECK(ids_of(applied(step, logits)) == expected);
  }
  sampling::TypicalP off{.p = 1.f};
  CHECK(applied(off, logits).size() == logits.size());
}

TEST_CASE("sampling: penalties follow llama.cpp's formula over a sliding window") {
  const std::vector<float> logits = {1.f, 2.f, -1.f, 0.5f, 0.f, 3.f};
  sampling::Penalties pen{.last_n = 3, .repeat = 1.5f, .frequency = 0.25f, .presence = 0.5f};
  for (TokenId t : {1, 2, 2, 5}) pen.accept(t);  // the window is {2, 2, 5}: 1 has left
  auto out = logits_of(applied(pen, logits));
  CHECK(out[0] == 1.f);
  CHECK(out[1] == 2.f);
  CHECK(out[2] == doctest::Approx(-1.f * 1.5f - (2 * 0.25f + 0.5f)));  // negative: multiplied
  CHECK(out[3] == 0.5f);
  CHECK(out[4] == 0.f);
  CHECK(out[5] == doctest::Approx(3.f / 1.5f - (1 * 0.25f + 0.5f)));  // positive: divided

  pen.accept(3);  // window {2, 5, 3}: one 2 left
  out = logits_of(applied(pen, logits));
  CHECK(out[2] == doctest::Approx(-1.f * 1.5f - (1 * 0.25f + 0.5f)));
  CHECK(out[3] == doctest::Approx(0.5f / 1.5f - 0.75f));

  pen.reset();
  out = logits_of(applied(pen, logits));
  for (size_t i = 0; i < logits.size(); ++i) CHECK(out[TokenId(i)] == logits[i]);

  // last_n < 0 remembers everything; 0 is off.
  sampling::Penalties all{.last_n = -1, .repeat = 2.f}, off{.last_n = 0, .repeat = 2.f};
  for (int i = 0; i < 100; ++i) all.accept(i % 7 == 0 ? 1 : 4), off.accept(1);
  CHECK(logits_of(applied(all, logits))[1] == 1.f);
  CHECK(logits_of(applied(off, logits))[1] == 2.f);
}

TEST_CASE("sampling: logit bias adds to the chosen logits, -inf bans") {
  const std::vector<float> logits = {1.f, 2.f, 3.f};
  sampling::LogitBias bias{.biases = {{0, 0.5f}, {2, -1.f}, {0, 0.25f}, {7, 1.f}}};
  auto out = logits_of(applied(bias, logits));
  CHECK(out[0] == 1.75f);
  CHECK(out[1] == 2.f);
  CHECK(out[2] == 2.f);

  SamplerParams p{.temperature = 1.f, .top_k = 0, .top_p = 1.f, .min_p = 0.f, .seed = 3};
  p.logit_bias = {{2, -INFINITY}};
  Sampler s(p);
  for (int i = 0; i < 500; ++i) CHECK(s.sample(logits) != 2);
  p.temperature = 0.f;
  CHECK(Sampler(p).sample(logits) == 1);
}

TEST_CASE("sampling: mirostat v2 truncates by surprise and updates mu") {
  const std::vector<float> logits = {3.f, 2.f, 1.f, 0.f, -1.f, -2.f};
  sampling::MirostatV2 m{.tau = 1.5f, .eta = 0.2f};
  CHECK(m.mu == 3.f);  // 2 tau
  for (uint64_t index = 0; index < 20; ++index) {
    const float mu = m.mu;
    // Keep surprise -log2 p <= mu (at least one), renormalize, draw, learn.
    const auto p = softmax_of(logits);
    std::vector<double> kept;
    for (double x : p)
      if (-std::log2(x) <= mu) kept.push_back(x);
    if (kept.empty()) kept.push_back(p[0]);
    const double mass = std::accumulate(kept.begin(), kept.end(), 0.0);
    const double u = ember::uniform01(11, index);
    size_t i = 0;
    for (double cum = 0; i + 1 < kept.size(); ++i)
      if (u < (cum += kept[i] / mass)) break;
    const double surprise = -std::log2(kept[i] / mass);

    Candidates c = applied(m, logits, {11, index});
    CHECK(c.size() == kept.size());
    CHECK(c.selected() == TokenId(i));
    CHECK(m.mu == doctest::Approx(mu - 0.2 * (surprise - 1.5)).epsilon(1e-5));
  }
  m.reset();
  CHECK(m.mu == 3.f);
}

namespace {

// DRY by its definition, by brute force: for every earlier position j whose next token t
// exists, the match length L of the text ending at j with the text ending now (at most j + 1
// tokens, at most `limit`); t's penalty uses its longest L >= allowed.
std::map<TokenId, float> dry_reference(const std::vector<TokenId>& w, const std::vector<float>& logits, float mult,
                                       float base, int allowed, int limit, std::set<TokenId> single_breakers = {}) {
  std::map<TokenId, float> out;
  for (size_t i = 0; i < logits.size(); ++i) out[TokenId(i)] = logits[i];
  const int n = int(w.size());
  if (n <= allowed || limit < allowed) return out;
  std::map<TokenId, int> longest;
  for (int j = 0; j + 1 < n; ++j) {
    int length = 0;
    while (length <= j && w[size_t(j - length)] == w[size_t(n - 1 - length)]) ++length;
    length = std::min(length, limit);
    if (length < allowed) continue;
    const TokenId t = w[size_t(j + 1)];
    longest[t] = std::max(longest.count(t) ? longest[t] : 0, length);
  }
  for (auto [t, length] : longest)
    if (!single_breakers.count(t)) out[t] -= float(double(mult) * std::pow(double(base), length - allowed));
  return out;
}

}  // namespace

TEST_CASE("sampling: DRY penalizes the token that would extend a repeat, multiplier * base^(L - allowed)") {
  // a b c d x a b c: emitting d would make "a b c d" repeat, L = 3.
  const std::vector<float> logits(8, 1.f);
  sampling::Dry dry{.multiplier = 0.8f, .base = 1.75f, .allowed_length = 2};
  for (TokenId t : {0, 1, 2, 3, 7, 0, 1, 2}) dry.accept(t);
  auto out = logits_of(applied(dry, logits));
  CHECK(out[3] == doctest::Approx(1.f - 0.8f * 1.75f));
  for (TokenId t : {0, 1, 2, 4, 5, 6, 7}) CHECK(out[t] == 1.f);

  // A breaker (token 7) between the repeats: the match may not reach back past it.
  sampling::Dry broken{.multiplier = 0.8f, .base = 1.75f, .allowed_length = 2, .sequence_breakers = {{7}}};
  for (TokenId t : {0, 1, 2, 3, 0, 7, 1, 2}) broken.accept(t);  // "1 2" repeats, but 7 precedes it
  out = logits_of(applied(broken, logits));
  CHECK(out[3] == doctest::Approx(1.f - 0.8f * 1.f));  // L capped at 2 = tokens after the breaker
  // A multi-token breaker {5, 6} counts only when complete.
  sampling::Dry multi{.multiplier = 1.f, .base = 2.f, .allowed_length = 1, .sequence_breakers = {{5, 6}}};
  for (TokenId t : {0, 1, 2, 3, 5, 0, 1, 2}) multi.accept(t);
  out = logits_of(applied(multi, logits));
  CHECK(out[3] == doctest::Approx(1.f - 4.f));  // L = 3, 5 alone breaks nothing
  multi.reset();
  for (TokenId t : {0, 1, 2, 3, 5, 6, 0, 1, 2}) multi.accept(t);
  out = logits_of(applied(multi, logits));
  CHECK(out[3] == doctest::Approx(1.f - 4.f));  // L still 3: the breaker lies before the suffix
  multi.reset();
  for (TokenId t : {0, 1, 2, 3, 0, 5, 6, 1, 2}) multi.accept(t);
  out = logits_of(applied(multi, logits));
  CHECK(out[3] == doctest::Approx(1.f - 2.f));  // L capped at 2

  // Brute-force definition against the O(n) Z-algorithm on random small-alphabet histories.
  uint64_t draw = 0;
  for (int trial = 0; trial < 400; ++trial) {
    const int n = 1 + int(ember::mix64(1, draw++) % 60);
    const int alphabet = 2 + int(ember::mix64(2, draw++) % 3);
    const int allowed = int(ember::mix64(3, draw++) % 4);
    const int last_n = trial % 3 == 0 ? 25 : -1;
    std::vector<TokenId> history;
    sampling::Dry step{.multiplier = 0.5f, .base = 1.5f, .allowed_length = allowed, .last_n = last_n};
    for (int i = 0; i < n; ++i) {
      history.push_back(TokenId(ember::mix64(4, draw++) % uint64_t(alphabet)));
      step.accept(history.back());
    }
    std::vector<TokenId> window(history);
    if (last_n > 0 && int(window.size()) > last_n) window.erase(window.begin(), window.end() - last_n);
    const std::vector<float> flat(size_t(alphabet), 0.f);
    const auto expected = dry_reference(window, flat, 0.5f, 1.5f, allowed, int(window.size()));
    const auto got = logits_of(applied(step, flat));
    INFO("trial ", trial);
    for (auto [t, l] : expected) CHECK(got.at(t) == doctest::Approx(l));
  }
}

TEST_CASE("sampling: XTC removes all but the least likely top choice when its draw says so") {
  // p = 0.4, 0.3, 0.2, 0.1: above 0.15 are ids 0, 1, 2; only 2 of them stays.
  const std::vector<float> logits = {std::log(0.4f), std::log(0.3f), std::log(0.2f), std::log(0.1f)};
  sampling::Xtc always{.probability = 1.f, .threshold = 0.15f};
  CHECK(ids_of(applied(always, logits)) == std::set<TokenId>{2, 3});
  sampling::Xtc high{.probability = 1.f, .threshold = 0.35f};  // one top choice: nothing to remove
  CHECK(applied(high, logits).size() == 4);
  sampling::Xtc keep3{.probability = 1.f, .threshold = 0.15f, .min_keep = 3};  // would leave 2
  CHECK(applied(keep3, logits).size() == 4);
  sampling::Xtc off{.probability = 1.f, .threshold = 0.6f};
  CHECK(applied(off, logits).size() == 4);

  sampling::Xtc half{.probability = 0.5f, .threshold = 0.15f};
  int acted = 0;
  for (uint64_t index = 0; index < 200; ++index) {
    const Draws d{21, index};
    const bool acts = d.uniform(Draws::xtc_stream) < 0.5;
    acted += acts;
    CHECK(applied(half, logits, d).size() == (acts ? 2u : 4u));
  }
  CHECK(acted > 60);
  CHECK(acted < 140);
}

TEST_CASE("sampling: steps compose in the order they were added") {
  const std::vector<float> logits = {1.f, 5.f, 2.f, 0.f, 4.f};
  // Bias before top-k 1 changes the winner; after it, the set is already the old winner.
  auto bias = sampling::LogitBias{.biases = {{3, 10.f}}};
  CHECK(Sampler::chain(1, {bias, sampling::TopK{.k = 1}}).sample(logits) == 3);
  CHECK(Sampler::chain(1, {sampling::TopK{.k = 1}, bias}).sample(logits) == 1);
  // top-k 3 then min-p 0.5 keeps {1, 4}; min-p then top-k the same set: these two commute...
  Sampler a = Sampler::chain(1, {sampling::TopK{.k = 3}, sampling::MinP{.p = 0.3f}, sampling::Greedy{}});
  a.sample(logits);
  CHECK(ids_of(a.candidates()) == std::set<TokenId>{1, 4});
  // ...but temperature before top-p widens the nucleus, after it does not.
  Sampler hot_first = Sampler::chain(1, {sampling::Temperature{.temperature = 5.f}, sampling::TopP{.p = 0.5f}});
  Sampler hot_last = Sampler::chain(1, {sampling::TopP{.p = 0.5f}, sampling::Temperature{.temperature = 5.f}});
  hot_first.sample(logits);
  hot_last.sample(logits);
  CHECK(hot_first.candidates().size() > hot_last.candidates().size());
  // Steps after a selector do not run.
  CHECK(Sampler::chain(1, {sampling::Greedy{}, bias}).sample(logits) == 1);
}

namespace {

// Logits that depend on the previous token, so feedback through accept() matters.
std::vector<float> logits_after(TokenId previous, size_t n_vocab) {
  std::vector<float> l(n_vocab);
  for (size_t i = 0; i < n_vocab; ++i) l[i] = float(std::sin(double(i) * 1.3 + double(previous) * 0.7) * 3.0);
  return l;
}

std::vector<TokenId> generate(Sampler& s, int n, size_t n_vocab = 64) {
  std::vector<TokenId> out;
  TokenId previous = 0;
  for (TokenId t : {1, 2, 3, 1, 2}) s.accept(t);  // a "prompt"
  for (int i = 0; i < n; ++i) {
    previous = s.sample(logits_after(previous, n_vocab));
    s.accept(previous);
    out.push_back(previous);
  }
  return out;
}

SamplerParams everything(uint64_t seed) {
  SamplerParams p{.temperature = 1.1f, .top_k = 30, .top_p = 0.97f, .min_p = 0.01f, .seed = seed};
  p.typical_p = 0.95f;
  p.dynamic_temperature_range = 0.3f;
  p.repeat_penalty = 1.2f;
  p.frequency_penalty = 0.1f;
  p.presence_penalty = 0.1f;
  p.dry_multiplier = 0.8f;
  p.dry_sequence_breakers = {{5}, {6, 7}};
  p.xtc_probability = 0.5f;
  p.xtc_threshold = 0.05f;
  p.logit_bias = {{9, -INFINITY}};
  return p;
}

}  // namespace

TEST_CASE("sampling: a full chain is reproducible from its seed, and reset() restarts it") {
  for (bool mirostat : {false, true}) {
    SamplerParams p = everything(42), q = everything(43);
    p.mirostat_v2 = q.mirostat_v2 = mirostat;
    Sampler a(p), b(p), c(q);
    const auto sa = generate(a, 300), sb = generate(b, 300), sc = generate(c, 300);
    CHECK(sa == sb);
    CHECK(sa != sc);
    CHECK(std::find(sa.begin(), sa.end(), 9) == sa.end());  // banned
    a.reset();
    CHECK(generate(a, 300) == sa);
    // A copy carries the state along and continues identically.
    Sampler d = b;
    CHECK(generate(d, 50) == generate(b, 50));
  }
}

TEST_CASE("sampling: sampling does not allocate once warm") {
  SamplerParams p = everything(5);
  p.penalty_last_n = 32;
  p.dry_penalty_last_n = 48;
  Sampler s(p);
  std::vector<std::vector<float>> logits;
  for (TokenId t = 0; t < 64; ++t) logits.push_back(logits_after(t, 1000));
  TokenId previous = 0;
  for (int i = 0; i < 200; ++i) s.accept(previous = s.sample(logits[size_t(previous) % 64]));  // warm up
  allocations = 0;
  count_allocations = true;
  for (int i = 0; i < 500; ++i) s.accept(previous = s.sample(logits[size_t(previous) % 64]));
  count_allocations = false;
  CHECK(allocations == 0);
}

TEST_CASE("sampling: top_logprobs are the n best of a direct log-softmax, ties by id") {
  const std::vector<float> logits = {0.5f, 3.f, -2.f, 3.f, 1.f, 800.f - 800.f, 2.5f};
  long double max = 3.L, sum = 0;
  for (float l : logits) sum += std::exp(static_cast<long double>(l) - max);
  auto direct = [&](size_t i) { return double(static_cast<long double>(logits[i]) - max - std::log(sum)); };

  const auto top = ember::top_logprobs(logits, 4);
  REQUIRE(top.size() == 4);
  const TokenId expected_ids[] = {1, 3, 6, 4};
  for (size_t i = 0; i < 4; ++i) {
    CHECK(top[i].id == expected_ids[i]);
    CHECK(top[i].logprob == doctest::Approx(direct(size_t(expected_ids[i]))).epsilon(1e-6));
  }
  const auto all = ember::top_logprobs(logits, 100);
  REQUIRE(all.size() == logits.size());
  double mass = 0;
  for (const auto& x : all) mass += std::exp(double(x.logprob));
  CHECK(mass == doctest::Approx(1.0).epsilon(1e-6));
  CHECK(ember::top_logprobs(logits, 0).empty());
  CHECK(ember::token_logprob(logits, 2) == doctest::Approx(direct(2)).epsilon(1e-6));

  // Huge logits stay finite: the top logit is subtracted first.
  const std::vector<float> huge = {1e30f, 1e30f - 1e24f, -1e30f};
  const auto h = ember::top_logprobs(huge, 2);
  CHECK(h[0].id == 0);
  CHECK(std::isfinite(h[0].logprob));
  CHECK(h[0].logprob == doctest::Approx(0.0));
}
