// Picking the next token from logits: a Sampler is a chain of steps (sampling/steps.hpp)
// run in order on the candidates of one position, ending in a step that selects a token.
// Built from SamplerParams it follows llama.cpp's default order,
//   logit bias → penalties → DRY → top-k → typical-p → top-p → min-p → XTC → temperature → draw,
// leaving out steps whose parameters are neutral; or assemble one with Sampler::chain().
// Randomness is counter-based (core/rng.hpp): the draws of the n-th sample since reset depend
// only on the seed and n, so the same seed gives the same text on every backend and thread count.
// This header gives the whole sampling layer.
#pragma once

#include <cstdint>
#include <initializer_list>
#include <span>
#include <type_traits>
#include <utility>
#include <variant>
#include <vector>

#include "ember/core/rng.hpp"
#include "ember/sampling/candidates.hpp"
#include "ember/sampling/logprobs.hpp"
#include "ember/sampling/steps.hpp"

namespace ember {

// The usual knobs, defaulted as in llama.cpp's common_params_sampling. New fields go last,
// so designated initializers in the order below keep working.
struct SamplerParams {
  float temperature = 0.8f;  // <= 0: greedy
  int32_t top_k = 40;        // <= 0: keep all
  float top_p = 0.95f;       // >= 1: keep all
  float min_p = 0.05f;       // <= 0: keep all
  uint64_t seed = 0;

  float typical_p = 1.f;                  // >= 1: off
  float dynamic_temperature_range = 0.f;  // > 0: temperature ± range by entropy
  float dynamic_temperature_exponent = 1.f;
  int32_t penalty_last_n = 64;    // tokens the penalties look back over; < 0: all
  float repeat_penalty = 1.f;     // 1: off
  float frequency_penalty = 0.f;  // 0: off
  float presence_penalty = 0.f;   // 0: off
  float dry_multiplier = 0.f;     // 0: off
  float dry_base = 1.75f;
  int32_t dry_allowed_length = 2;
  int32_t dry_penalty_last_n = -1;                            // < 0: all
  std::vector<std::vector<TokenId>> dry_sequence_breakers{};  // already tokenized
  float xtc_probability = 0.f;                                // 0: off
  float xtc_threshold = 0.1f;
  bool mirostat_v2 = false;  // true: logit bias → temperature → mirostat v2
  float mirostat_tau = 5.f;
  float mirostat_eta = 0.1f;
  std::vector<sampling::LogitBias::Entry> logit_bias{};
};

using SamplerStep = std::variant<sampling::LogitBias, sampling::Penalties, sampling::Dry, sampling::TopK,
                                 sampling::TypicalP, sampling::TopP, sampling::MinP, sampling::Xtc,
                                 sampling::Temperature, sampling::MirostatV2, sampling::Greedy, sampling::Draw>;

class Sampler {
 public:
  // llama.cpp's default chain for these parameters. temperature <= 0 gives
  // logit bias → penalties → DRY → greedy (truncation cannot change the argmax; XTC is skipped);
  // mirostat_v2 gives logit bias → temperature → mirostat v2, as llama.cpp does.
  explicit Sampler(SamplerParams p = {}) : params_(std::move(p)), seed_(params_.seed) { build_default_chain(); }

  static Sampler greedy() { return Sampler(SamplerParams{.temperature = 0.f}); }

  // An empty chain to assemble by hand: Sampler::chain(seed, {sampling::TopK{.k = 20}, sampling::Draw{}}).
  // A chain that ends without selecting a token finishes with a Draw.
  static Sampler chain(uint64_t seed, std::initializer_list<SamplerStep> steps = {}) {
    Sampler s(ChainTag{}, seed);
    for (const SamplerStep& step : steps) s.add(step);
    return s;
  }

  // Appends a step; steps run in the order they were added.
  Sampler& add(SamplerStep step) {
    steps_.push_back(std::move(step));
    return *this;
  }

  TokenId sample(std::span<const float> logits) {
    if (logits.empty()) return -1;
    const sampling::Draws draws{seed_, n_sampled_++};
    // Greedy straight on the logits is the argmax: skip building the candidate set.
    if (!steps_.empty() && std::holds_alternative<sampling::Greedy>(steps_.front())) return argmax(logits);
    candidates_.assign(logits);
    for (SamplerStep& step : steps_) {
      std::visit([&](auto& s) { s.apply(candidates_, draws); }, step);
      if (candidates_.has_selection()) return candidates_.selected();
    }
    sampling::Draw{}.apply(candidates_, draws);
    return candidates_.selected();
  }

  // Told every token that joins the context (prompt and generated), for history-aware steps.
  void accept(TokenId token) {
    for (SamplerStep& step : steps_)
      std::visit(
          [&](auto& s) {
            if constexpr (requires { s.accept(token); }) s.accept(token);
          },
          step);
  }

  // Back to the state after construction: draw counter, histories, mirostat's mu.
  void reset() {
    n_sampled_ = 0;
    for (SamplerStep& step : steps_)
      std::visit(
          [](auto& s) {
            if constexpr (requires { s.reset(); }) s.reset();
          },
          step);
  }

  static TokenId argmax(std::span<const float> logits) {
    size_t best = 0;
    for (size_t i = 1; i < logits.size(); ++i)
      if (logits[i] > logits[best]) best = i;
    return TokenId(best);
  }

  // The parameters the chain was built from ({.seed = seed} for chain()).
  const SamplerParams& params() const { return params_; }
  uint64_t seed() const { return seed_; }
  std::span<const SamplerStep> steps() const { return steps_; }
  std::span<SamplerStep> steps() { return steps_; }
  // The candidates the last sample() ended with (after truncation), for inspection; not
  // updated by a chain that starts with Greedy.
  const sampling::Candidates& candidates() const { return candidates_; }

 private:
  struct ChainTag {};
  Sampler(ChainTag, uint64_t seed) : seed_(seed) { params_.seed = seed; }

  void build_default_chain() {
    const SamplerParams& p = params_;
    if (!p.logit_bias.empty()) add(sampling::LogitBias{.biases = p.logit_bias});
    const sampling::Temperature temperature{.temperature = p.temperature,
                                            .dynamic_range = p.dynamic_temperature_range,
                                            .dynamic_exponent = p.dynamic_temperature_exponent};
    if (p.mirostat_v2 && p.temperature > 0.f) {
      add(temperature);
      add(sampling::MirostatV2{.tau = p.mirostat_tau, .eta = p.mirostat_eta});
      return;
    }
    const sampling::Penalties penalties{.last_n = p.penalty_last_n,
                                        .repeat = p.repeat_penalty,
                                        .frequency = p.frequency_penalty,
                                        .presence = p.presence_penalty};
    if (!penalties.neutral()) add(penalties);
    sampling::Dry dry{.multiplier = p.dry_multiplier,
                      .base = p.dry_base,
                      .allowed_length = p.dry_allowed_length,
                      .last_n = p.dry_penalty_last_n,
                      .sequence_breakers = p.dry_sequence_breakers};
    if (!dry.neutral()) add(std::move(dry));
    if (p.temperature <= 0.f) {
      add(sampling::Greedy{});
      return;
    }
    if (p.top_k > 0) add(sampling::TopK{.k = p.top_k});
    if (p.typical_p < 1.f) add(sampling::TypicalP{.p = p.typical_p});
    if (p.top_p < 1.f) add(sampling::TopP{.p = p.top_p});
    if (p.min_p > 0.f) add(sampling::MinP{.p = p.min_p});
    if (p.xtc_probability > 0.f && p.xtc_threshold <= 0.5f)
      add(sampling::Xtc{.probability = p.xtc_probability, .threshold = p.xtc_threshold});
    if (p.temperature != 1.f || p.dynamic_temperature_range > 0.f) add(temperature);
    add(sampling::Draw{});
  }

  SamplerParams params_;
  uint64_t seed_ = 0;
  uint64_t n_sampled_ = 0;
  std::vector<SamplerStep> steps_;
  sampling::Candidates candidates_;
};

}  // namespace ember
