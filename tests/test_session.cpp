// Session features beyond a single decode: stop strings, log-probabilities, cancellation,
// time-budgeted steps, state save/restore, several sequences in one Session, and many
// Sessions on one Model from several threads.
#include <doctest/doctest.h>

#include <atomic>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <random>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "data_path.hpp"
#include "ember/ember.hpp"
#include "tiny_model.hpp"

using ember::TokenId;
using ember::test::tiny_llama;
namespace kernels = ember::kernels;
using Hwy = kernels::Highway;

namespace {

std::string slurp(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::ostringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

std::vector<TokenId> some_ids(size_t n, size_t salt, uint32_t n_vocab = 40) {
  std::vector<TokenId> v(n);
  for (size_t i = 0; i < n; ++i) v[i] = TokenId(3 + (i * 7 + salt * 13 + i * i * salt) % (n_vocab - 3));
  return v;
}

std::vector<float> copy(std::span<const float> s) { return {s.begin(), s.end()}; }

double relative_rms(std::span<const float> a, std::span<const float> b) {
  double err = 0, norm = 0;
  for (size_t i = 0; i < a.size(); ++i) {
    err += (double(a[i]) - b[i]) * (double(a[i]) - b[i]);
    norm += double(a[i]) * a[i];
  }
  return std::sqrt(err / norm);
}

ember::Sampler seeded(uint64_t seed) { return ember::Sampler(ember::SamplerParams{.temperature = 0.9f, .seed = seed}); }

}  // namespace

// ---- 1. Generation features ------------------------------------------------------------

TEST_CASE("generate: stop strings cut the text, and streaming never shows part of one early") {
  EMBER_REQUIRE_DATA(path, "stories260K/stories260K.gguf");
  EMBER_REQUIRE_DATA(golden_path, "stories260K/greedy-200.txt");
  auto m = ember::Model<Hwy>::load(path);
  REQUIRE(m.ok());
  const std::string golden = slurp(golden_path);
  // Stops inside one token, spanning tokens, after a newline, and one that never appears.
  for (std::string stop : {"red ball", "Lily's mom", "\"", "a big", "no such text!"}) {
    INFO("stop ", stop);
    ember::Session s(*m, {.n_ctx = 512});
    auto sampler = ember::Sampler::greedy();
    std::string streamed;
    size_t n_pieces = 0;
    auto r = s.generate("", sampler, {.max_tokens = 200, .stop = {"never-seen", stop}}, [&](std::string_view p) {
      streamed += p;
      ++n_pieces;
    });
    REQUIRE(r.ok());
    const size_t at = golden.find(stop);
    CHECK(r->text == golden.substr(0, at));
    CHECK(streamed == r->text);  // nothing handed out was later taken back
    CHECK(r->stopped_by_string == (at != std::string::npos));
    if (at != std::string::npos) CHECK(r->stop_string == stop);
    CHECK(n_pieces > std::min<size_t>(at, golden.size()) / 20);  // still streams as it goes
  }
}

TEST_CASE("generate: per-token log-probabilities with the top alternatives, from the raw logits") {
  EMBER_REQUIRE_DATA(path, "stories260K/stories260K.gguf");
  auto m = ember::Model<Hwy>::load(path);
  REQUIRE(m.ok());
  ember::Session s(*m, {.n_ctx = 512});
  auto sampler = seeded(3);
  auto r = s.generate("Once upon a time", sampler, {.max_tokens = 24, .logprobs = 5});
  REQUIRE(r.ok());
  REQUIRE(r->logprobs.size() == r->tokens.size());
  // Teacher-force the same tokens and recompute each log-probability independently.
  ember::Session t(*m, {.n_ctx = 512});
  std::vector<TokenId> all(s.tokens().begin(), s.tokens().begin() + (s.tokens().size() - r->tokens.size() + 1));
  const size_t n_prompt = all.size();
  all.insert(all.end(), r->tokens.begin(), r->tokens.end() - 1);
  REQUIRE(t.decode(all, true).ok());
  for (size_t i = 0; i < r->tokens.size(); ++i) {
    const auto& lp = r->logprobs[i];
    INFO("token ", i);
    CHECK(lp.id == r->tokens[i]);
    REQUIRE(lp.top.size() == 5);
    const auto lg = t.logits(n_prompt - 1 + i);
    CHECK(lp.logprob == doctest::Approx(ember::token_logprob(lg, lp.id)).epsilon(1e-5));
    CHECK(lp.top[0].id == ember::Sampler::argmax(lg));
    double total = 0;
    for (size_t k = 0; k < 5; ++k) {
      if (k) CHECK(lp.top[k - 1].logprob >= lp.top[k].logprob);
      total += std::exp(lp.top[k].logprob);
      if (lp.top[k].id == lp.id) CHECK(lp.top[k].logprob == lp.logprob);
    }
    CHECK(total <= 1.0 + 1e-6);
  }
}

TEST_CASE("cancel: returns Errc::cancelled, rolls the call back, and the session stays usable") {
  const auto bytes = tiny_llama(ember::DType::Q4_0, {.n_layer = 6});
  auto m = ember::Model<Hwy>::from_memory(bytes);
  REQUIRE(m.ok());
  const auto prefix = some_ids(10, 1), prompt = some_ids(300, 2);
  ember::Session ref(*m, {.n_ctx = 512, .n_batch = 8});
  REQUIRE(ref.decode(prefix).ok());
  REQUIRE(ref.decode(prompt).ok());

  ember::Session s(*m, {.n_ctx = 512, .n_batch = 8});
  REQUIRE(s.decode(prefix).ok());
  s.cancel();  // before the call: the next call reports it
  auto r = s.decode(prompt);
  REQUIRE(!r.ok());
  CHECK(r.error().code() == ember::Errc::cancelled);
  CHECK(s.n_past() == prefix.size());
  CHECK(s.tokens().size() == prefix.size());

  // From another thread while a long prompt runs: it stops at a layer boundary.
  int n_cancelled = 0;
  for (int attempt = 0; attempt < 3; ++attempt) {
    std::atomic<bool> started{false};
    std::thread canceller([&] {
      while (!started.load()) std::this_thread::yield();
      std::this_thread::sleep_for(std::chrono::microseconds(200));
      s.cancel();
    });
    started = true;
    auto rr = s.decode(prompt);
    canceller.join();
    if (!rr.ok()) {
      CHECK(rr.error().code() == ember::Errc::cancelled);
      ++n_cancelled;
      CHECK(s.n_past() == prefix.size());
    } else {
      s.truncate(uint32_t(prefix.size()));
      (void)s.decode(std::span(prompt.data(), 1));  // consumes a late request, if any
      s.truncate(uint32_t(prefix.size()));
    }
  }
  MESSAGE(n_cancelled, " of 3 cross-thread cancels landed during the prompt");
  // Usable afterwards, with exactly the logits of a session that was never interrupted.
  REQUIRE(s.decode(prompt).ok());
  CHECK(copy(s.logits()) == copy(ref.logits()));

  // A generation reports it too and keeps what it had decoded.
  auto sampler = ember::Sampler::greedy();
  s.cancel();
  auto g = s.continue_generation(sampler, {.max_tokens = 5}, {});
  REQUIRE(!g.ok());
  CHECK(g.error().code() == ember::Errc::cancelled);
  CHECK(s.n_past() == prefix.size() + prompt.size());
}

TEST_CASE("cancel: lands within one layer during a 512-token prompt (SmolLM2, measured)") {
  EMBER_SMOLLM2_FILE(path);
  auto m = ember::Model<Hwy>::load(path);
  REQUIRE(m.ok());
  std::vector<TokenId> prompt = some_ids(512, 5, m->hparams().n_vocab);
  ember::Session s(*m, {.n_ctx = 600, .n_batch = 512, .n_threads = 2});
  using clock = std::chrono::steady_clock;
  auto t0 = clock::now();
  REQUIRE(s.decode(prompt).ok());
  const double full = std::chrono::duration<double>(clock::now() - t0).count();
  const double per_layer = full / m->hparams().n_layer;
  s.clear();
  clock::time_point t_cancel;
  std::thread canceller([&] {
    std::this_thread::sleep_for(std::chrono::duration<double>(full / 2));
    t_cancel = clock::now();
    s.cancel();
  });
  auto r = s.decode(prompt);
  const auto t_end = clock::now();
  canceller.join();
  REQUIRE(!r.ok());
  CHECK(r.error().code() == ember::Errc::cancelled);
  CHECK(s.n_past() == 0);
  const double latency = std::chrono::duration<double>(t_end - t_cancel).count();
  MESSAGE("512-token prompt: ", full * 1e3, " ms, one layer ", per_layer * 1e3, " ms; cancel returned after ",
          latency * 1e3, " ms");
}

TEST_CASE("step: a time-budgeted generation gives the same tokens and text as generate") {
  EMBER_REQUIRE_DATA(path, "stories260K/stories260K.gguf");
  auto m = ember::Model<Hwy>::load(path);
  REQUIRE(m.ok());
  const ember::GenerateOptions opts{.max_tokens = 80, .stop = {"park."}};
  ember::Session a(*m, {.n_ctx = 512, .n_batch = 4});
  auto sa = seeded(11);
  auto expected = a.generate("Once upon a time, Tom", sa, opts);
  REQUIRE(expected.ok());

  ember::Session b(*m, {.n_ctx = 512, .n_batch = 4});
  auto sb = seeded(11);
  REQUIRE(b.begin_generation("Once upon a time, Tom", sb, opts).ok());
  std::string streamed;
  int calls = 0;
  std::optional<ember::GenerateResult> result;
  while (!result) {
    auto r = b.step(std::chrono::microseconds(0));  // a zero budget still does one piece of work
    REQUIRE(r.ok());
    CHECK(r->n_stages <= 1);
    ++calls;
    for (auto& p : b.take_pieces()) streamed += p.text;
    if (!r->results.empty()) result = std::move(r->results[0].second);
    REQUIRE(calls < 100000);
  }
  CHECK(result->tokens == expected->tokens);
  CHECK(result->text == expected->text);
  CHECK(streamed == expected->text);
  CHECK(calls > int(result->tokens.size()));          // one token per zero-budget call
  CHECK(!b.step(std::chrono::microseconds(0)).ok());  // nothing left to run

  // Cancelled midway: the round is rolled back, and stepping again resumes it unchanged.
  {
    ember::Session d(*m, {.n_ctx = 512, .n_batch = 4});
    auto sd = seeded(11);
    REQUIRE(d.begin_generation("Once upon a time, Tom", sd, opts).ok());
    for (int i = 0; i < 8; ++i) REQUIRE(d.step(std::chrono::microseconds(0)).ok());
    d.cancel();
    auto rc = d.step(std::chrono::microseconds(0));
    REQUIRE(!rc.ok());
    CHECK(rc.error().code() == ember::Errc::cancelled);
    CHECK(d.generating());
    auto rest = d.step(std::chrono::seconds(60));
    REQUIRE(rest.ok());
    REQUIRE(rest->results.size() == 1);
    CHECK(rest->results[0].second.tokens == expected->tokens);
  }

  // Several sequences, prompts of different lengths, decoded together: each as if alone.
  {
    const std::vector<std::string> prompts = {"Lily went to the park and saw a big", "The dog", "One day"};
    std::vector<ember::GenerateResult> alone;
    for (size_t i = 0; i < prompts.size(); ++i) {
      ember::Session a1(*m, {.n_ctx = 256});
      auto smp = seeded(40 + i);
      auto res = a1.generate(prompts[i], smp, {.max_tokens = 20 + 10 * int(i)});
      REQUIRE(res.ok());
      alone.push_back(*res);
    }
    // A fourth sequence, decoded into now and then while a round of step() is paused, makes
    // that round start over; the three generations do not notice.
    ember::Session many(*m, {.n_ctx = 256, .n_batch = 4, .n_seq_max = 4});
    std::vector<ember::Sampler> samplers = {seeded(40), seeded(41), seeded(42)};
    for (ember::SeqId q = 0; q < 3; ++q) {
      if (q) REQUIRE(many.add_sequence().ok());
      REQUIRE(many.begin_generation(q, prompts[q], samplers[q], {.max_tokens = 20 + 10 * int(q)}).ok());
    }
    auto bystander = many.add_sequence();
    REQUIRE(bystander.ok());
    std::vector<std::string> streamed(3);
    std::vector<ember::GenerateResult> results(3);
    for (int calls = 0; calls < 100000; ++calls) {
      auto rs = many.step(std::chrono::microseconds(calls % 3 == 0 ? 0 : 100));
      REQUIRE(rs.ok());
      if (calls % 50 == 7) {
        const TokenId one[1] = {TokenId(5 + calls % 20)};
        if (many.n_past(*bystander) + 1 > 256) many.clear(*bystander);
        REQUIRE(many.decode(*bystander, one).ok());
      }
      for (auto& p : many.take_pieces()) streamed[p.seq] += p.text;
      for (auto& [q, res] : rs->results) results[q] = std::move(res);
      if (rs->finished) break;
    }
    for (size_t q = 0; q < 3; ++q) {
      INFO("sequence ", q);
      CHECK(results[q].tokens == alone[q].tokens);
      CHECK(streamed[q] == alone[q].text);
    }
  }

  // A generous budget finishes it in one call.
  ember::Session c(*m, {.n_ctx = 512});
  auto sc = seeded(11);
  REQUIRE(c.begin_generation("Once upon a time, Tom", sc, opts).ok());
  auto r = c.step(std::chrono::seconds(60));
  REQUIRE(r.ok());
  CHECK(r->finished);
  REQUIRE(r->results.size() == 1);
  CHECK(r->results[0].second.tokens == expected->tokens);
}

// ---- 2. State save and restore ------------------------------------------------------------

namespace {

// Generates, decodes the last token, saves; then checks that a fresh session restored from
// the bytes continues exactly like the original.
template <class Backend>
std::vector<std::byte> check_save_restore(const ember::Model<Backend>& m, const std::vector<TokenId>& prompt,
                                          ember::Sampler sampler, ember::SessionConfig cfg) {
  ember::Session a(m, cfg);
  REQUIRE(a.decode(prompt).ok());
  for (TokenId t : prompt) sampler.accept(t);
  auto first = a.continue_generation(sampler, {.max_tokens = 8, .stop_at_end_of_generation = false}, {});
  REQUIRE(first.ok());
  REQUIRE(a.decode(std::span(&first->tokens.back(), 1)).ok());
  auto saved = a.save();
  REQUIRE(saved.ok());
  ember::Sampler sampler_b = sampler;  // the sampler is the host's; it continues from the same point

  auto cont_a = a.continue_generation(sampler, {.max_tokens = 16, .stop_at_end_of_generation = false}, {});
  REQUIRE(cont_a.ok());

  ember::Session b(m, cfg);
  REQUIRE(b.decode(some_ids(5, 9, m.hparams().n_vocab)).ok());  // something to overwrite
  auto rr = b.restore(*saved);
  REQUIRE_MESSAGE(rr.ok(), (rr.ok() ? "" : rr.error().message()));
  CHECK(b.n_past() == prompt.size() + first->tokens.size());
  auto cont_b = b.continue_generation(sampler_b, {.max_tokens = 16, .stop_at_end_of_generation = false}, {});
  REQUIRE(cont_b.ok());
  CHECK(cont_b->tokens == cont_a->tokens);
  CHECK(cont_b->text == cont_a->text);
  return *saved;
}

}  // namespace

TEST_CASE("state: save, restore into a fresh session, continue gives the same tokens (stories260K)") {
  EMBER_REQUIRE_DATA(path, "stories260K/stories260K.gguf");
  auto m = ember::Model<Hwy>::load(path);
  REQUIRE(m.ok());
  const auto prompt = m->tokenizer().encode("Once upon a time, there was a dog", {.add_bos = true});
  check_save_restore(*m, prompt, ember::Sampler::greedy(), {.n_ctx = 256});
  check_save_restore(*m, prompt, seeded(21), {.n_ctx = 256, .n_threads = 2});
  // Through a file too, into a session with a different context size.
  ember::Session a(*m, {.n_ctx = 256});
  REQUIRE(a.decode(prompt).ok());
  const std::string file = "/tmp/ember_test_session_state.bin";
  REQUIRE(a.save_file(file).ok());
  ember::Session b(*m, {.n_ctx = 128});
  REQUIRE(b.restore_file(file).ok());
  CHECK(copy(b.logits()) == copy(a.logits()));
  CHECK(std::vector<TokenId>(b.tokens().begin(), b.tokens().end()) == prompt);
  std::remove(file.c_str());
  CHECK(!b.restore_file("/nonexistent/state.bin").ok());
}

TEST_CASE("state: save/restore on a synthesized model (F16 KV), and bad states are refused") {
  const auto bytes = tiny_llama(ember::DType::Q4_0, {.n_layer = 2});
  auto m = ember::Model<Hwy>::from_memory(bytes);
  REQUIRE(m.ok());
  REQUIRE(m->default_kv_dtype() == ember::DType::F16);
  const auto prompt = some_ids(12, 3);
  check_save_restore(*m, prompt, ember::Sampler::greedy(), {.n_ctx = 64});
  const auto good = check_save_restore(*m, prompt, seeded(5), {.n_ctx = 64});

  // The victim: a restored session whose state must survive every refused restore.
  ember::Session v(*m, {.n_ctx = 64});
  REQUIRE(v.restore(good).ok());
  const auto logits0 = copy(v.logits());
  const std::vector<TokenId> tokens0(v.tokens().begin(), v.tokens().end());
  auto refused = [&](std::vector<std::byte> b, ember::Errc code, const std::string& says) {
    auto r = v.restore(b);
    REQUIRE(!r.ok());
    CHECK(r.error().code() == code);
    CHECK_MESSAGE(r.error().message().find(says) != std::string::npos, r.error().message());
    CHECK(copy(v.logits()) == logits0);
    CHECK(std::vector<TokenId>(v.tokens().begin(), v.tokens().end()) == tokens0);
  };
  auto bad = good;
  bad[0] = std::byte{'X'};
  refused(bad, ember::Errc::format, "bad magic");
  bad = good;
  bad[4] = std::byte{2};
  refused(bad, ember::Errc::unsupported, "format version 2, this build reads version 1");
  bad = good;
  bad[9] ^= std::byte{1};  // the fingerprint
  refused(bad, ember::Errc::invalid_argument, "different model");
  for (size_t n : {size_t(0), size_t(3), size_t(6), size_t(20), ember::state::kHeaderBytes,
                   ember::state::kHeaderBytes + 6, good.size() / 2, good.size() - 9, good.size() - 1})
    refused(std::vector<std::byte>(good.begin(), good.begin() + long(n)), ember::Errc::format,
            n < 4 ? "bad magic" : "truncated");
  bad = good;
  bad[good.size() - 100] ^= std::byte{0x40};  // inside the KV rows
  refused(bad, ember::Errc::format, "checksum");
  bad = good;
  bad.push_back(std::byte{0});
  refused(bad, ember::Errc::format, "size does not match");

  // Another model: another quantization of the same weights, and the same shapes and types
  // with other weights (a finetune).
  ember::Result<void> r;
  for (const auto& other_bytes :
       {tiny_llama(ember::DType::Q8_0, {.n_layer = 2}), tiny_llama(ember::DType::Q4_0, {.n_layer = 2, .seed = 7})}) {
    REQUIRE(other_bytes.size() != 0);
    auto other = ember::Model<Hwy>::from_memory(other_bytes);
    REQUIRE(other.ok());
    ember::Session o(*other, {.n_ctx = 64});
    r = o.restore(good);
    REQUIRE(!r.ok());
    CHECK(r.error().message() == "session state: saved from a different model");
  }
  // A Q8_0 cache saves and restores too (head_dim 32), and is refused by an F16 session; a
  // model whose heads are not a multiple of 32 gets F16 when asking for Q8_0.
  {
    const auto bytes32 = tiny_llama(ember::DType::Q4_0, {.n_layer = 2, .n_head = 2, .n_head_kv = 1});
    auto m32 = ember::Model<Hwy>::from_memory(bytes32);
    REQUIRE(m32.ok());
    const ember::SessionConfig q8{.n_ctx = 64, .kv_type = ember::KvType::q8_0};
    CHECK(ember::Session(*m32, q8).kv_dtype() == ember::DType::Q8_0);
    CHECK(ember::Session(*m, q8).kv_dtype() == ember::DType::F16);
    const auto saved = check_save_restore(*m32, prompt, seeded(5), q8);
    ember::Session f16(*m32, {.n_ctx = 64});
    r = f16.restore(saved);
    REQUIRE(!r.ok());
    CHECK(r.error().message() == "session state: KV cache is Q8_0, this session's is F16");
  }
  // Another KV type.
  ember::Session f32(*m, {.n_ctx = 64, .kv_type = ember::KvType::f32});
  r = f32.restore(good);
  REQUIRE(!r.ok());
  CHECK(r.error().message() == "session state: KV cache is F16, this session's is F32");
  // One sequence saved from a multi-sequence session, restored into another's slot.
  {
    ember::Session a(*m, {.n_ctx = 64, .n_seq_max = 3});
    auto q = a.add_sequence(prompt);
    REQUIRE(q.ok());
    auto one = a.save(*q);
    REQUIRE(one.ok());
    ember::Session b(*m, {.n_ctx = 64, .n_seq_max = 3});
    REQUIRE(b.restore(*one, ember::SeqId(2)).ok());
    CHECK(b.is_active(2));
    CHECK(b.n_past(2) == prompt.size());
    CHECK(b.n_past(0) == 0);
    const auto next = some_ids(3, 4);
    REQUIRE(a.decode(*q, next).ok());
    REQUIRE(b.decode(2, next).ok());
    CHECK(copy(a.seq_logits(*q)) == copy(b.seq_logits(2)));
    auto all = a.save();
    REQUIRE(all.ok());
    r = b.restore(*all, ember::SeqId(1));
    REQUIRE(!r.ok());
    CHECK(r.error().message() ==
          "session state: restoring into sequence 1 needs a state of one sequence, this one holds 2");
  }
  // A context too small for the saved positions.
  ember::Session small(*m, {.n_ctx = 8});
  r = small.restore(good);
  REQUIRE(!r.ok());
  CHECK(r.error().code() == ember::Errc::out_of_range);
}

// ---- 3. Several sequences in one Session ----------------------------------------------------

TEST_CASE_TEMPLATE("sequences: a batch of several equals running each alone, bit for bit", Backend, kernels::Reference,
                   kernels::Highway) {
  const auto bytes = tiny_llama(ember::DType::Q4_0, {.n_layer = 3});
  auto m = ember::Model<Backend>::from_memory(bytes);
  REQUIRE(m.ok());
  const std::vector<std::vector<TokenId>> prompts = {some_ids(5, 1), some_ids(13, 2), some_ids(1, 3), some_ids(9, 4)};
  const std::vector<std::vector<TokenId>> next = {some_ids(1, 5), some_ids(3, 6), some_ids(2, 7), some_ids(1, 8)};
  std::vector<std::vector<float>> alone, alone2;
  for (size_t i = 0; i < prompts.size(); ++i) {
    ember::Session s(*m, {.n_ctx = 32});
    REQUIRE(s.decode(prompts[i]).ok());
    alone.push_back(copy(s.logits()));
    REQUIRE(s.decode(next[i]).ok());
    alone2.push_back(copy(s.logits()));
  }
  for (uint32_t n_batch : {64u, 4u}) {
    INFO("n_batch ", n_batch);
    ember::Session s(*m, {.n_ctx = 32, .n_batch = n_batch, .n_threads = 2, .n_seq_max = 4});
    for (int i = 1; i < 4; ++i) {
      auto id = s.add_sequence();
      REQUIRE(id.ok());
      CHECK(*id == ember::SeqId(i));
    }
    CHECK(!s.add_sequence().ok());  // all four in use
    std::vector<ember::SeqTokens> batch;
    for (ember::SeqId q = 0; q < 4; ++q) batch.push_back({q, prompts[q]});
    REQUIRE(s.decode(batch).ok());
    for (ember::SeqId q = 0; q < 4; ++q) {
      CHECK(copy(s.seq_logits(q)) == alone[q]);
      CHECK(s.n_past(q) == prompts[q].size());
    }
    batch.clear();
    for (ember::SeqId q : {3u, 1u, 0u, 2u}) batch.push_back({q, next[q]});
    REQUIRE(s.decode(batch).ok());
    for (ember::SeqId q = 0; q < 4; ++q) CHECK(copy(s.seq_logits(q)) == alone2[q]);
  }
}

TEST_CASE("sequences: forked sequences continue independently and match running each alone") {
  EMBER_REQUIRE_DATA(path, "stories260K/stories260K.gguf");
  auto m = ember::Model<Hwy>::load(path);
  REQUIRE(m.ok());
  const auto intro = m->tokenizer().encode("Once upon a time, there was a", {.add_bos = true});
  const ember::GenerateOptions opts{.max_tokens = 30, .stop_at_end_of_generation = false};
  // Alone: one session per continuation.
  std::vector<ember::GenerateResult> alone;
  for (uint64_t seed : {1, 2, 3}) {
    ember::Session s(*m, {.n_ctx = 128});
    REQUIRE(s.decode(intro).ok());
    auto smp = seeded(seed);
    auto r = s.continue_generation(smp, opts, {});
    REQUIRE(r.ok());
    alone.push_back(*r);
  }
  ember::Session s(*m, {.n_ctx = 128, .n_seq_max = 3});
  REQUIRE(s.decode(intro).ok());
  auto f1 = s.fork(0, s.n_past());
  auto f2 = s.fork(0, s.n_past());
  REQUIRE(f1.ok());
  REQUIRE(f2.ok());
  CHECK(copy(s.seq_logits(*f1)) == copy(s.logits()));
  // Interleaved through step(): each sequence has its own sampler and positions.
  std::vector<ember::Sampler> samplers = {seeded(1), seeded(2), seeded(3)};
  for (ember::SeqId q = 0; q < 3; ++q)
    REQUIRE(s.begin_generation(q, std::span<const TokenId>(), samplers[q], opts).ok());
  std::vector<std::string> streamed(3);
  std::vector<ember::GenerateResult> results(3);
  for (int calls = 0; calls < 1000; ++calls) {
    auto r = s.step(std::chrono::microseconds(0));
    REQUIRE(r.ok());
    for (auto& p : s.take_pieces()) streamed[p.seq] += p.text;
    for (auto& [q, res] : r->results) results[q] = std::move(res);
    if (r->finished) break;
  }
  for (ember::SeqId q = 0; q < 3; ++q) {
    INFO("sequence ", q);
    CHECK(results[q].tokens == alone[q].tokens);
    CHECK(results[q].text == alone[q].text);
    CHECK(streamed[q] == alone[q].text);
  }
  CHECK(results[0].tokens != results[1].tokens);

  // A fork of a prefix, continued with other tokens, equals a session that saw only those.
  s.remove_sequence(*f2);
  auto f3 = s.fork(0, 4);
  REQUIRE(f3.ok());
  const auto tail = some_ids(6, 2, m->hparams().n_vocab);
  REQUIRE(s.decode(*f3, tail).ok());
  ember::Session t(*m, {.n_ctx = 128});
  std::vector<TokenId> ids(intro.begin(), intro.begin() + 4);
  ids.insert(ids.end(), tail.begin(), tail.end());
  REQUIRE(t.decode(ids).ok());
  CHECK(copy(s.seq_logits(*f3)) == copy(t.logits()));
  CHECK(!s.fork(0, 999).ok());
}

TEST_CASE("sequences: remove and shift re-rotate cached keys and match recomputing (within rounding)") {
  // One layer: its cached keys and values depend only on each token and its position, so
  // after a remove they must equal what recomputing the shorter text gives, up to rounding.
  // (With more layers they do not: a later position's keys and values in layer 1 and up
  // were computed attending to the removed tokens. That is what llama.cpp's KV removal does
  // too; it is an approximation of the text, not of the arithmetic.)
  // Keys cached at position p and rotated by -d differ from keys computed at p - d by the
  // rounding of two rotations instead of one: a few ulps with an F32 cache (tolerance 1e-5,
  // relative RMS of the logits that follow); with an F16 cache each re-rotated key is also
  // rounded to f16 twice (2^-11 relative each; measured 9e-4 to 1e-3, tolerance 4e-3).
  // The weights are F32: quantized weights quantize the activations to 8 bits, which turns
  // those ulps into whole quantization steps.
  // With a Q8_0 cache a re-rotated key is dequantized and quantized again (8-bit steps;
  // measured 1.4e-2 to 1.6e-2, tolerance 4e-2); Q8_0 needs head_dim a multiple of 32, so that case
  // runs on a model with 2 heads of 32 (one KV head).
  const auto bytes = tiny_llama(ember::DType::F32, {.n_layer = 1});
  const auto bytes32 = tiny_llama(ember::DType::F32, {.n_layer = 1, .n_head = 2, .n_head_kv = 1});
  auto m16 = ember::Model<Hwy>::from_memory(bytes);
  auto m32 = ember::Model<Hwy>::from_memory(bytes32);
  REQUIRE(m16.ok());
  REQUIRE(m32.ok());
  for (ember::KvType kv : {ember::KvType::f32, ember::KvType::f16, ember::KvType::q8_0}) {
    const double tol = kv == ember::KvType::f32 ? 1e-5 : kv == ember::KvType::f16 ? 4e-3 : 4e-2;
    const std::string kv_name = kv == ember::KvType::f32 ? "F32" : kv == ember::KvType::f16 ? "F16" : "Q8_0";
    auto& m = kv == ember::KvType::q8_0 ? m32 : m16;
    CHECK(ember::name(ember::Session(*m, {.n_ctx = 64, .kv_type = kv}).kv_dtype()) == kv_name);
    INFO("KV cache ", kv_name, ", tolerance ", tol);
    const auto ids = some_ids(40, 7), more = some_ids(5, 8);
    auto recomputed = [&](std::vector<TokenId> kept) {
      ember::Session r(*m, {.n_ctx = 64, .kv_type = kv});
      const size_t n = kept.size();
      kept.insert(kept.end(), more.begin(), more.end());
      REQUIRE(r.decode(kept, true).ok());
      std::vector<float> out;
      for (size_t i = n; i < kept.size(); ++i) {
        auto l = r.logits(i);
        out.insert(out.end(), l.begin(), l.end());
      }
      return out;
    };
    auto after = [&](ember::Session<ember::Model<Hwy>>& s) {
      REQUIRE(s.decode(more, true).ok());
      std::vector<float> out;
      for (size_t i = 0; i < more.size(); ++i) {
        auto l = s.logits(i);
        out.insert(out.end(), l.begin(), l.end());
      }
      return out;
    };
    {  // remove a middle range
      ember::Session s(*m, {.n_ctx = 64, .kv_type = kv});
      REQUIRE(s.decode(ids).ok());
      REQUIRE(s.remove(0, 10, 20).ok());
      CHECK(s.n_past() == 30);
      std::vector<TokenId> kept(ids.begin(), ids.begin() + 10);
      kept.insert(kept.end(), ids.begin() + 20, ids.end());
      CHECK(std::vector<TokenId>(s.tokens().begin(), s.tokens().end()) == kept);
      const auto a = after(s), b = recomputed(kept);
      MESSAGE(kv_name, " KV, remove: relative RMS ", relative_rms(b, a));
      CHECK(relative_rms(b, a) < tol);
    }
    {  // shift keeping the first token, in a second sequence; the first is untouched
      ember::Session s(*m, {.n_ctx = 64, .kv_type = kv, .n_seq_max = 2});
      REQUIRE(s.decode(ids).ok());
      auto q = s.add_sequence(ids);
      REQUIRE(q.ok());
      REQUIRE(s.shift(*q, 25, 1).ok());
      CHECK(s.n_past(*q) == 15);
      CHECK(s.n_past(0) == 40);
      std::vector<TokenId> kept(ids.begin(), ids.begin() + 1);
      kept.insert(kept.end(), ids.begin() + 26, ids.end());
      REQUIRE(s.decode(*q, more, true).ok());
      std::vector<float> a;
      for (size_t i = 0; i < more.size(); ++i) {
        auto l = s.logits(i);
        a.insert(a.end(), l.begin(), l.end());
      }
      const auto b = recomputed(kept);
      MESSAGE(kv_name, " KV, shift: relative RMS ", relative_rms(b, a));
      CHECK(relative_rms(b, a) < tol);
      // Keeps going past the context: shift, decode, repeatedly.
      for (int i = 0; i < 20; ++i) {
        if (s.n_past(*q) + 5 > 64) REQUIRE(s.shift(*q, 16, 1).ok());
        REQUIRE(s.decode(*q, more).ok());
      }
      s.clear(*q);
      CHECK(s.n_past(*q) == 0);
      CHECK(s.is_active(*q));
    }
  }
}

TEST_CASE("generate: context_shift keeps going past a full context, keeping the first n_keep positions") {
  EMBER_REQUIRE_DATA(path, "stories260K/stories260K.gguf");
  auto m = ember::Model<Hwy>::load(path);
  REQUIRE(m.ok());
  const std::string prompt = "Once upon a time, there was a little girl named Lily.";
  const auto prompt_ids = m->tokenizer().encode(prompt, {.add_bos = true});
  const uint32_t n_ctx = 48, n_keep = 5;
  REQUIRE(prompt_ids.size() < n_ctx);
  ember::GenerateOptions off{.max_tokens = 200, .stop_at_end_of_generation = false};
  ember::GenerateOptions on = off;
  on.context_shift = true;
  on.n_keep = n_keep;

  // Off: the answer ends when the context is full (the last token sampled is not decoded).
  ember::Session a(*m, {.n_ctx = n_ctx});
  auto sa = seeded(5);
  auto ra = a.generate(prompt, sa, off);
  REQUIRE(ra.ok());
  CHECK(ra->tokens.size() == n_ctx - prompt_ids.size() + 1);

  // On: all 200 tokens; until the first shift they equal the run without it, and afterwards
  // the KV cache holds the kept prefix, then the most recent tokens, never more than n_ctx.
  ember::Session b(*m, {.n_ctx = n_ctx});
  auto sb = seeded(5);
  auto rb = b.generate(prompt, sb, on);
  REQUIRE(rb.ok());
  CHECK(rb->tokens.size() == 200);
  CHECK(std::equal(ra->tokens.begin(), ra->tokens.end(), rb->tokens.begin()));
  CHECK(b.n_past() <= n_ctx);
  const auto held = b.tokens();
  CHECK(std::equal(prompt_ids.begin(), prompt_ids.begin() + n_keep, held.begin()));
  const size_t tail = held.size() - n_keep;  // the last generated token was sampled, not decoded
  CHECK(std::equal(held.end() - tail, held.end(), rb->tokens.end() - 1 - tail));

  // The same through step(), and a prompt longer than the context is taken in pieces.
  ember::Session c(*m, {.n_ctx = n_ctx, .n_batch = 8});
  auto sc = seeded(5);
  REQUIRE(c.begin_generation(prompt, sc, on).ok());
  std::optional<ember::GenerateResult> rc;
  for (int i = 0; i < 100000 && !rc; ++i) {
    auto r = c.step(std::chrono::microseconds(0));
    REQUIRE(r.ok());
    if (!r->results.empty()) rc = std::move(r->results[0].second);
  }
  REQUIRE(rc);
  CHECK(rc->tokens == rb->tokens);

  std::string long_prompt;
  for (int i = 0; i < 8; ++i) long_prompt += prompt + " ";
  ember::Session d(*m, {.n_ctx = n_ctx});
  auto sd = seeded(5);
  auto refused = d.generate(long_prompt, sd, off);
  REQUIRE(!refused.ok());
  CHECK(refused.error().code() == ember::Errc::out_of_range);
  auto taken = d.generate(long_prompt, sd, {.max_tokens = 20, .context_shift = true, .n_keep = n_keep});
  REQUIRE(taken.ok());
  CHECK(d.n_past() <= n_ctx);
  // n_keep leaves no room: a clear error, not a loop.
  ember::Session e(*m, {.n_ctx = n_ctx});
  auto se = seeded(5);
  auto r = e.generate(long_prompt, se, {.max_tokens = 20, .context_shift = true, .n_keep = n_ctx});
  REQUIRE(!r.ok());
  CHECK(r.error().message().find("n_keep") != std::string::npos);
}

// ---- 4. Threads ------------------------------------------------------------------------------

// A host's own job system: runs a job's tasks on threads it starts for the job.
struct HostJobs {
  std::atomic<int> jobs{0};
  size_t n_threads() const { return 3; }
  void run(size_t n, ember::TaskFn fn, void* ctx) {
    jobs.fetch_add(1, std::memory_order_relaxed);
    std::vector<std::thread> helpers;
    for (size_t i = 1; i < n; ++i) helpers.emplace_back([=] { fn(ctx, i); });
    fn(ctx, 0);
    for (auto& t : helpers) t.join();
  }
};

TEST_CASE_TEMPLATE("threads: 1, 2, 3 threads, a host's executor and any batch split give the same bits", Backend,
                   kernels::Reference, kernels::Highway, kernels::Xsimd<>) {
  const auto bytes = tiny_llama(ember::DType::Q4_0, {.n_layer = 3});
  auto m = ember::Model<Backend>::from_memory(bytes);
  REQUIRE(m.ok());
  const auto ids = some_ids(45, 3);
  // The same with a Q8_0 KV cache (head_dim 32).
  const auto bytes32 = tiny_llama(ember::DType::Q4_0, {.n_layer = 3, .n_head = 2, .n_head_kv = 1});
  auto m32 = ember::Model<Backend>::from_memory(bytes32);
  REQUIRE(m32.ok());
  auto all_logits = [&](ember::SessionConfig cfg) {
    ember::Session s(cfg.kv_type == ember::KvType::q8_0 ? *m32 : *m, cfg);
    std::vector<float> out;
    // Two calls, so the second runs against a KV cache filled by the first.
    REQUIRE(s.decode(std::span(ids).first(20), true).ok());
    for (size_t i = 0; i < 20; ++i) out.insert(out.end(), s.logits(i).begin(), s.logits(i).end());
    REQUIRE(s.decode(std::span(ids).subspan(20), true).ok());
    for (size_t i = 0; i < ids.size() - 20; ++i) out.insert(out.end(), s.logits(i).begin(), s.logits(i).end());
    return out;
  };
  HostJobs jobs;
  struct Case {
    const char* name;
    ember::SessionConfig cfg;
  };
  const Case cases[] = {
      {"2 threads", {.n_ctx = 64, .n_batch = 64, .n_threads = 2}},
      {"3 threads", {.n_ctx = 64, .n_batch = 64, .n_threads = 3}},
      {"1 thread, batches of 1", {.n_ctx = 64, .n_batch = 1, .n_threads = 1}},
      {"2 threads, batches of 7", {.n_ctx = 64, .n_batch = 7, .n_threads = 2}},
      {"3 threads, batches of 13", {.n_ctx = 64, .n_batch = 13, .n_threads = 3}},
      {"the host's executor, batches of 5", {.n_ctx = 64, .n_batch = 5, .executor = jobs}},
  };
  for (ember::KvType kv : {ember::KvType::automatic, ember::KvType::q8_0}) {
    const auto expected = all_logits({.n_ctx = 64, .kv_type = kv, .n_batch = 64, .n_threads = 1});
    for (Case c : cases) {
      c.cfg.kv_type = kv;
      INFO(c.name, kv == ember::KvType::q8_0 ? ", Q8_0 KV" : "");
      const auto got = all_logits(c.cfg);
      REQUIRE(got.size() == expected.size());
      CHECK(std::memcmp(got.data(), expected.data(), got.size() * sizeof(float)) == 0);
    }
  }
  CHECK(jobs.jobs.load() > 0);
}

TEST_CASE_TEMPLATE("threads: decode steps past one attention chunk split their positions over threads, same bits",
                   Backend, kernels::Reference, kernels::Highway, kernels::Xsimd<>) {
  // One KV head: a decode step has one (token, KV head) pair, fewer than twice the threads, so
  // Session splits its positions into attention chunks (attention.hpp) over the threads and
  // merges them. The bits must be those of the same tokens decoded in batches on one thread,
  // where each token's chunks are computed and merged in one task.
  const auto bytes = tiny_llama(ember::DType::Q4_0, {.n_layer = 2, .n_head = 2, .n_head_kv = 1});
  auto m = ember::Model<Backend>::from_memory(bytes);
  REQUIRE(m.ok());
  const size_t n_ids = ember::kAttentionChunk + 190, n_last = 4;
  const auto ids = some_ids(n_ids, 5);
  for (ember::KvType kv : {ember::KvType::automatic, ember::KvType::q8_0}) {
    ember::Session whole(*m, {.n_ctx = 2048, .kv_type = kv, .n_batch = 64, .n_threads = 1});
    REQUIRE(whole.decode(ids, true).ok());
    std::vector<float> expected;
    for (size_t i = n_ids - n_last; i < n_ids; ++i)
      expected.insert(expected.end(), whole.logits(i).begin(), whole.logits(i).end());
    HostJobs jobs;
    struct Case {
      const char* name;
      ember::SessionConfig cfg;
    };
    const Case cases[] = {
        {"2 threads", {.n_ctx = 2048, .kv_type = kv, .n_batch = 64, .n_threads = 2}},
        {"3 threads", {.n_ctx = 2048, .kv_type = kv, .n_batch = 64, .n_threads = 3}},
        {"the host's executor", {.n_ctx = 2048, .kv_type = kv, .n_batch = 64, .executor = jobs}},
    };
    for (const Case& c : cases) {
      INFO(c.name, kv == ember::KvType::q8_0 ? ", Q8_0 KV" : "");
      ember::Session s(*m, c.cfg);
      REQUIRE(s.decode(std::span(ids).first(n_ids - n_last)).ok());
      std::vector<float> got;
      for (size_t i = n_ids - n_last; i < n_ids; ++i) {
        REQUIRE(s.decode(std::span(ids).subspan(i, 1)).ok());
        got.insert(got.end(), s.logits().begin(), s.logits().end());
      }
      REQUIRE(got.size() == expected.size());
      CHECK(std::memcmp(got.data(), expected.data(), got.size() * sizeof(float)) == 0);
    }
  }
}

TEST_CASE("threads: four Sessions on four threads share one Model and match running alone") {
  EMBER_REQUIRE_DATA(path, "stories260K/stories260K.gguf");
  auto m = ember::Model<Hwy>::load(path);
  REQUIRE(m.ok());
  const std::vector<std::string> prompts = {"Once upon a time", "The cat", "Lily and Tom", "One day, a bird"};
  // Each Session also runs its own pool of two threads: eight threads on one Model.
  auto run = [&](size_t i) {
    ember::Session s(*m, {.n_ctx = 256, .n_threads = i < 2 ? 1u : 2u});
    auto smp = seeded(100 + i);
    auto r = s.generate(prompts[i], smp, {.max_tokens = 60});
    return r.ok() ? r->tokens : std::vector<TokenId>{-1};
  };
  std::vector<std::vector<TokenId>> alone(4), together(4);
  for (size_t i = 0; i < 4; ++i) alone[i] = run(i);
  std::vector<std::thread> threads;
  for (size_t i = 0; i < 4; ++i) threads.emplace_back([&, i] { together[i] = run(i); });
  for (auto& t : threads) t.join();
  for (size_t i = 0; i < 4; ++i) {
    CHECK(together[i] == alone[i]);
    CHECK(alone[i].size() > 1);
  }
}

TEST_CASE("Model: packed loads copy the norm weights out of the file; saved states move between packed and unpacked") {
  // With the matrices packed, nothing read per token stays in the file's pages (their pages
  // are released: a norm read there would map a whole huge page of the page cache again),
  // and the fingerprint that saved states carry is the file's, taken before any release.
  const auto bytes = tiny_llama(ember::DType::Q4_0, {.n_layer = 2});
  auto packed = ember::Model<Hwy>::from_memory(bytes);
  auto plain = ember::Model<Hwy>::from_memory(bytes, {.pack_weights = false});
  REQUIRE(packed.ok());
  REQUIRE(plain.ok());
  CHECK(packed->fingerprint() == plain->fingerprint());
  CHECK(plain->fingerprint() == ember::state::model_fingerprint(plain->hparams(), plain->file()));
  const auto file = plain->file().bytes();
  const auto in_file = [&](const float* p) {
    const auto* b = reinterpret_cast<const std::byte*>(p);
    return b >= file.data() && b < file.data() + file.size();
  };
  const size_t n = plain->hparams().n_embd;
  std::vector<std::pair<const float*, const float*>> norms{
      {plain->weights().output_norm, packed->weights().output_norm}};
  for (size_t l = 0; l < plain->weights().layers.size(); ++l) {
    norms.emplace_back(plain->weights().layers[l].attn_norm, packed->weights().layers[l].attn_norm);
    norms.emplace_back(plain->weights().layers[l].ffn_norm, packed->weights().layers[l].ffn_norm);
  }
  for (const auto& [from_file, copied] : norms) {
    CHECK(in_file(from_file));
    CHECK(!in_file(copied));
    CHECK(std::memcmp(from_file, copied, n * sizeof(float)) == 0);
  }
  const auto prompt = some_ids(12, 3);
  ember::Session a(*packed, {.n_ctx = 64});
  REQUIRE(a.decode(prompt).ok());
  auto saved = a.save();
  REQUIRE(saved.ok());
  ember::Session b(*plain, {.n_ctx = 64});
  REQUIRE(b.restore(*saved).ok());
  CHECK(std::vector<TokenId>(b.tokens().begin(), b.tokens().end()) == prompt);
  CHECK(copy(b.logits()) == copy(a.logits()));  // the logits travel in the state
}
