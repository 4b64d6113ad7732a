// ember-cli: the command-line face of the library, and an example of using it.
//
//   ember-cli generate -m MODEL [-p PROMPT] [-n N] [--temp T] [--seed S] [-t THREADS]
//   ember-cli tokenize -m MODEL [--no-bos] [--no-eos] [--parse-special] (-p TEXT | -f FILE)
//   ember-cli chat     -m MODEL [-p MESSAGE] [--system TEXT] [-n N] [--temp T] [--seed S] [-t THREADS]
//   ember-cli info     -m MODEL [--json] [-c CONTEXT]
//   ember-cli logits   -m MODEL -p TEXT [--top K]
//   ember-cli bench    -m MODEL [-p N] [-n N] [-t THREADS] [--depth D [--rounds R]] [--json]
//   ember-cli template (-m MODEL | --template FILE.jinja [--bos S] [--eos S]) --messages FILE.json
//                      [--no-generation-prompt]
// Common: --backend highway|xsimd|reference, -v (log to stderr), --no-pack (weights stay in
// the file's layout: LoadOptions::pack_weights = false).
// Results go to stdout, messages to stderr; bad input exits 1 with one line on stderr.
#define EMBER_IMPLEMENTATION
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <ember/ember.hpp>
#include <fstream>
#include <iostream>
#include <map>
#include <optional>
#include <sstream>
#include <string>
#include <type_traits>
#include <vector>
#if defined(__unix__) || defined(__APPLE__)
#include <sys/resource.h>
#endif

namespace {

struct Args {
  std::string command, model, prompt, file, backend = "highway";
  std::string template_file, messages_file, bos, eos, system;
  ember::KvType kv_type = ember::KvType::automatic;
  bool no_generation_prompt = false;
  bool has_prompt = false, has_file = false, no_bos = false, no_eos = false, parse_special = false, json = false,
       verbose = false, no_pack = false;
  int n_predict = -1, top = 5, threads = 1, depth = 0, rounds = 1;
  uint32_t n_ctx = 0;
  float temp = -1.f;
  uint64_t seed = 0;
};

[[noreturn]] void fail(const std::string& message, int code = 1) {
  std::fprintf(stderr, "ember-cli: %s\n", message.c_str());
  std::exit(code);
}

const char* kUsage =
    "usage: ember-cli COMMAND -m MODEL [options]\n"
    "  generate [-p PROMPT] [-n N] [--temp T] [--seed S] [-t THREADS]\n"
    "  tokenize [--no-bos] [--no-eos] [--parse-special] (-p TEXT | -f FILE)\n"
    "  chat     [-p MESSAGE] [--system TEXT] [-n N] [--temp T] [--seed S] [-t THREADS]\n"
    "  info     [--json] [-c CONTEXT]\n"
    "  logits   -p TEXT [--top K]\n"
    "  bench    [-p N] [-n N] [-t THREADS] [--depth D [--rounds R]] [--json]\n"
    "  template (-m MODEL | --template FILE.jinja [--bos S] [--eos S]) --messages FILE.json\n"
    "           [--no-generation-prompt]\n"
    "common: --backend highway|xsimd|reference, -c CONTEXT, --kv-type f32|f16|q8_0, --no-pack, -v\n";

long parse_int(const std::string& flag, const std::string& v, long lo, long hi) {
  char* end = nullptr;
  const long x = std::strtol(v.c_str(), &end, 10);
  if (v.empty() || *end || x < lo || x > hi)
    fail(flag + " expects an integer from " + std::to_string(lo) + " to " + std::to_string(hi) + ", got \"" + v + "\"");
  return x;
}

Args parse_args(int argc, char** argv) {
  if (argc < 2) fail("missing command (see ember-cli --help)", 2);
  Args a;
  a.command = argv[1];
  if (a.command == "-h" || a.command == "--help") {
    std::fputs(kUsage, stdout);
    std::exit(0);
  }
  for (int i = 2; i < argc; ++i) {
    const std::string f = argv[i];
    auto value = [&]() -> std::string {
      if (i + 1 >= argc) fail(f + " needs a value", 2);
      return argv[++i];
    };
    if (f == "-m" || f == "--model")
      a.model = value();
    else if (f == "-p" || f == "--prompt")
      a.prompt = value(), a.has_prompt = true;
    else if (f == "-f" || f == "--file")
      a.file = value(), a.has_file = true;
    else if (f == "-n" || f == "--n-predict")
      a.n_predict = int(parse_int(f, value(), 0, 1 << 24));
    else if (f == "-t" || f == "--threads")
      a.threads = int(parse_int(f, value(), 1, 256));
    else if (f == "-c" || f == "--ctx-size")
      a.n_ctx = uint32_t(parse_int(f, value(), 1, 1 << 24));
    else if (f == "--top")
      a.top = int(parse_int(f, value(), 1, 1 << 20));
    else if (f == "--depth")
      a.depth = int(parse_int(f, value(), 0, 1 << 24));
    else if (f == "--rounds")
      a.rounds = int(parse_int(f, value(), 1, 1000));
    else if (f == "--seed")
      a.seed = uint64_t(parse_int(f, value(), 0, 0x7fffffffffffffffL));
    else if (f == "--temp") {
      const std::string v = value();
      char* end = nullptr;
      a.temp = std::strtof(v.c_str(), &end);
      if (v.empty() || *end || !(a.temp >= 0.f)) fail("--temp expects a number >= 0, got \"" + v + "\"", 2);
    } else if (f == "--backend")
      a.backend = value();
    else if (f == "--system")
      a.system = value();
    else if (f == "--template")
      a.template_file = value();
    else if (f == "--messages")
      a.messages_file = value();
    else if (f == "--bos")
      a.bos = value();
    else if (f == "--eos")
      a.eos = value();
    else if (f == "--no-generation-prompt")
      a.no_generation_prompt = true;
    else if (f == "--no-bos")
      a.no_bos = true;
    else if (f == "--no-eos")
      a.no_eos = true;
    else if (f == "--parse-special")
      a.parse_special = true;
    else if (f == "--json")
      a.json = true;
    else if (f == "-v" || f == "--verbose")
      a.verbose = true;
    else if (f == "--no-pack")
      a.no_pack = true;
    else if (f == "--kv-type") {
      const std::string v = value();
      if (v == "f32")
        a.kv_type = ember::KvType::f32;
      else if (v == "f16")
        a.kv_type = ember::KvType::f16;
      else if (v == "q8_0")
        a.kv_type = ember::KvType::q8_0;
      else
        fail("--kv-type expects f32, f16 or q8_0, got \"" + v + "\"", 2);
    } else
      fail("unknown option " + f + " (see ember-cli --help)", 2);
  }
  if (a.command == "template") {
    if (a.model.empty() == a.template_file.empty())
      fail("template needs exactly one of -m MODEL or --template FILE", 2);
    if (a.messages_file.empty()) fail("template needs --messages FILE.json", 2);
  } else if (a.model.empty()) {
    fail("-m MODEL is required", 2);
  }
  return a;
}

std::string json_escape(std::string_view s) {
  std::string o;
  for (unsigned char c : s) {
    switch (c) {
      case '"': o += "\\\""; break;
      case '\\': o += "\\\\"; break;
      case '\n': o += "\\n"; break;
      case '\r': o += "\\r"; break;
      case '\t': o += "\\t"; break;
      default:
        if (c < 0x20) {
          char buf[8];
          std::snprintf(buf, sizeof buf, "\\u%04x", c);
          o += buf;
        } else {
          o += char(c);
        }
    }
  }
  return o;
}

void log_to_stderr(ember::LogLevel, std::string_view m, void*) {
  std::fprintf(stderr, "%.*s\n", int(m.size()), m.data());
}

std::string human_bytes(uint64_t b) {
  char buf[32];
  if (b >= (1ull << 30))
    std::snprintf(buf, sizeof buf, "%.2f GiB", double(b) / double(1ull << 30));
  else if (b >= (1ull << 20))
    std::snprintf(buf, sizeof buf, "%.1f MiB", double(b) / double(1ull << 20));
  else
    std::snprintf(buf, sizeof buf, "%.1f KiB", double(b) / 1024.0);
  return buf;
}

void print_card(const ember::ModelCard& c, bool json) {
  const auto& h = c.hparams;
  const auto& m = c.memory;
  if (json) {
    std::string s = "{";
    auto field = [&](const char* k, const std::string& v, bool quote = true) {
      if (s.size() > 1) s += ", ";
      s += "\"" + std::string(k) + "\": " + (quote ? "\"" + json_escape(v) + "\"" : v);
    };
    field("architecture", c.architecture);
    field("name", c.name);
    field("organization", c.organization);
    field("license", c.license);
    field("base_model", c.base_model);
    field("file_type", c.file_type);
    field("tokenizer", c.tokenizer);
    field("gguf_version", std::to_string(c.gguf_version), false);
    field("file_bytes", std::to_string(c.file_bytes), false);
    field("n_params", std::to_string(c.n_params), false);
    std::string hp = "{\"n_vocab\": " + std::to_string(h.n_vocab) +
                     ", \"n_ctx_train\": " + std::to_string(h.n_ctx_train) +
                     ", \"n_embd\": " + std::to_string(h.n_embd) + ", \"n_layer\": " + std::to_string(h.n_layer) +
                     ", \"n_head\": " + std::to_string(h.n_head) + ", \"n_head_kv\": " + std::to_string(h.n_head_kv) +
                     ", \"n_ff\": " + std::to_string(h.n_ff) + ", \"head_dim\": " + std::to_string(h.head_dim) + "}";
    field("hparams", hp, false);
    std::string types = "{";
    for (auto& [k, v] : c.tensor_types) types += (types.size() > 1 ? ", \"" : "\"") + k + "\": " + std::to_string(v);
    field("tensor_types", types + "}", false);
    field("memory",
          "{\"n_ctx\": " + std::to_string(m.n_ctx) + ", \"weights_bytes\": " + std::to_string(m.weights_bytes) +
              ", \"packed_bytes\": " + std::to_string(m.packed_bytes) + ", \"kv_bytes_per_token\": " +
              std::to_string(m.kv_bytes_per_token) + ", \"kv_bytes\": " + std::to_string(m.kv_bytes) +
              ", \"scratch_bytes\": " + std::to_string(m.scratch_bytes) +
              ", \"session_bytes\": " + std::to_string(m.session_bytes()) + "}",
          false);
    std::string md = "{";
    for (auto& [k, v] : c.metadata)
      md += (md.size() > 1 ? ", \"" : "\"") + json_escape(k) + "\": \"" + json_escape(v) + "\"";
    field("metadata", md + "}", false);
    std::printf("%s}\n", s.c_str());
    return;
  }
  std::printf("architecture:  %s\n", c.architecture.c_str());
  std::printf("name:          %s\n", c.name.c_str());
  if (!c.organization.empty()) std::printf("organization:  %s\n", c.organization.c_str());
  std::printf("licence:       %s\n", c.license.empty() ? "(not stated)" : c.license.c_str());
  std::printf("base model:    %s\n", c.base_model.empty() ? "(not stated)" : c.base_model.c_str());
  std::printf("quantization:  %s\n", c.file_type.empty() ? "(not stated)" : c.file_type.c_str());
  std::printf("parameters:    %llu (%.1f M)\n", (unsigned long long)c.n_params, double(c.n_params) / 1e6);
  std::printf("file:          %s, GGUF v%u\n", human_bytes(c.file_bytes).c_str(), c.gguf_version);
  std::printf(
      "shape:         %u layers, dim %u, %u heads (%u KV, head size %u), FFN %u, vocab %u, trained context %u\n",
      h.n_layer, h.n_embd, h.n_head, h.n_head_kv, h.head_dim, h.n_ff, h.n_vocab, h.n_ctx_train);
  std::printf("tokenizer:     %s\n", c.tokenizer.c_str());
  std::printf("tensor types: ");
  for (auto& [k, v] : c.tensor_types) std::printf(" %s×%llu", k.c_str(), (unsigned long long)v);
  std::printf("\nmemory for a session of %u tokens: weights %s (mapped), KV cache %s (%s per token), scratch %s\n",
              m.n_ctx, human_bytes(m.weights_bytes).c_str(), human_bytes(m.kv_bytes).c_str(),
              human_bytes(m.kv_bytes_per_token).c_str(), human_bytes(m.scratch_bytes).c_str());
  if (m.packed_bytes)
    std::printf("row-interleaved copies made at load: %s (their pages of the file are released; --no-pack skips)\n",
                human_bytes(m.packed_bytes).c_str());
  std::printf("metadata:\n");
  for (auto& [k, v] : c.metadata) {
    std::string line = v.size() > 200 ? v.substr(0, 200) + "..." : v;
    for (auto& ch : line)
      if (ch == '\n') ch = ' ';
    std::printf("  %s = %s\n", k.c_str(), line.c_str());
  }
}

std::string read_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) fail("cannot read " + path);
  std::ostringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

// Tokenizes with the file's tokenizer alone: works on vocabulary-only GGUF files and on
// models of architectures ember does not run.
int tokenize(const Args& a) {
  if (a.has_prompt == a.has_file) fail("tokenize needs exactly one of -p TEXT or -f FILE", 2);
  auto file = ember::gguf::File::open(a.model);
  if (!file) fail(file.error().message());
  auto tok = ember::Tokenizer::from_gguf(*file);
  if (!tok) fail(a.model + ": " + tok.error().message());
  const std::string text = a.has_file ? read_file(a.file) : a.prompt;
  ember::Tokenizer::EncodeOptions eo;
  if (a.no_bos) eo.add_bos = false;
  if (a.no_eos) eo.add_eos = false;
  eo.parse_special = a.parse_special;
  const auto ids = tok->encode(text, eo);
  std::string out;
  for (size_t i = 0; i < ids.size(); ++i) {
    if (i) out += ' ';
    out += std::to_string(ids[i]);
  }
  std::printf("%s\n", out.c_str());
  return 0;
}

// Renders a chat template exactly as the model (or a template file) defines it.
int render_template(const Args& a) {
  std::string source;
  ember::chat::RenderOptions ro;
  ro.add_generation_prompt = !a.no_generation_prompt;
  if (!a.model.empty()) {
    // Only the metadata is needed, so any GGUF with a template works, whatever its architecture.
    auto file = ember::gguf::File::open(a.model);
    if (!file) fail(file.error().message());
    auto src = file->get_string("tokenizer.chat_template");
    if (!src) fail(a.model + " has no chat template (tokenizer.chat_template)");
    source = std::string(*src);
    const auto* tokens = file->find("tokenizer.ggml.tokens");
    auto token_text = [&](const char* key) -> std::string {
      const auto* id = file->find(key);
      auto v = id ? id->as_uint() : std::nullopt;
      if (!tokens || !v || *v >= tokens->size() || tokens->element_type() != ember::gguf::ValueType::string) return "";
      return std::string(tokens->string_at(size_t(*v)));
    };
    ro.bos_token = token_text("tokenizer.ggml.bos_token_id");
    ro.eos_token = token_text("tokenizer.ggml.eos_token_id");
  } else {
    source = read_file(a.template_file);
    ro.bos_token = a.bos;
    ro.eos_token = a.eos;
  }
  auto messages = ember::chat::parse_messages_json(read_file(a.messages_file));
  if (!messages) fail(a.messages_file + ": " + messages.error().message());
  auto tmpl = ember::chat::ChatTemplate::parse(source);
  if (!tmpl) fail(tmpl.error().message());
  auto out = tmpl->render(*messages, ro);
  if (!out) fail(out.error().message());
  std::fwrite(out->data(), 1, out->size(), stdout);
  return 0;
}

// The process's peak resident set (getrusage), 0 where unknown.
size_t peak_rss_bytes() {
#if defined(__unix__) || defined(__APPLE__)
  struct rusage ru {};
  if (getrusage(RUSAGE_SELF, &ru) != 0) return 0;
#if defined(__APPLE__)
  return size_t(ru.ru_maxrss);  // bytes
#else
  return size_t(ru.ru_maxrss) * 1024;  // KiB
#endif
#else
  return 0;
#endif
}

template <class Backend>
int run(const Args& a) {
  ember::LoadOptions lo;
  if (a.verbose) lo.log.fn = log_to_stderr;
  lo.pack_weights = !a.no_pack;
  const auto load_start = std::chrono::steady_clock::now();
  auto model = ember::Model<Backend>::load(a.model, lo);
  const double load_s = std::chrono::duration<double>(std::chrono::steady_clock::now() - load_start).count();
  if (!model) fail(model.error().message());
  const auto& tok = model->tokenizer();

  if (a.command == "info") {
    print_card(model->card(a.n_ctx), a.json);
    return 0;
  }

  ember::SessionConfig sc;
  sc.n_ctx = a.n_ctx;
  if (a.command == "generate" && sc.n_ctx == 0) {
    // Room for the prompt and every requested token, even past the trained context.
    ember::Tokenizer::EncodeOptions eo;
    eo.parse_special = true;
    const size_t need = tok.encode(a.prompt, eo).size() + 1 + size_t(a.n_predict < 0 ? 128 : a.n_predict);
    sc.n_ctx = uint32_t(std::max<size_t>(std::min<uint32_t>(model->hparams().n_ctx_train, 4096), need));
  }
  sc.n_threads = uint32_t(a.threads);
  sc.kv_type = a.kv_type;

  if (a.command == "bench") {
    // Prompt processing (one batch of -p tokens) and generation (-n single-token steps)
    // after --depth tokens of context; token ids are arbitrary but fixed. With --rounds R,
    // generation runs in R rounds that alternate -n tokens at the depth with -n tokens of a
    // second session at depth 0 (after the same prompt), so that both see the same minutes of
    // a noisy machine: "tg0" and the median of the rounds' ratios ("tg_ratio") come with "tg".
    const size_t n_prompt = a.has_prompt ? size_t(parse_int("-p", a.prompt, 1, 1 << 20)) : 64;
    const size_t n_gen = a.n_predict < 0 ? 32 : size_t(a.n_predict);
    const size_t n_round = size_t(a.rounds);
    const bool paired = n_round > 1;
    ember::SessionConfig bc = sc;
    bc.n_ctx = uint32_t(size_t(a.depth) + n_prompt + n_gen * n_round + 1);
    bc.n_batch = uint32_t(std::max<size_t>(n_prompt, 1));
    ember::Session bs(*model, bc);
    std::optional<std::remove_cvref_t<decltype(bs)>> b0;
    if (paired) {
      ember::SessionConfig c0 = bc;
      c0.n_ctx = uint32_t(n_prompt + n_gen * n_round + 1);
      b0.emplace(*model, c0);
    }
    const uint32_t n_vocab = model->hparams().n_vocab;
    auto ids = [&](size_t n, size_t salt) {
      std::vector<ember::TokenId> v(n);
      for (size_t i = 0; i < n; ++i) v[i] = ember::TokenId((i * 7919 + salt * 104729 + 13) % n_vocab);
      return v;
    };
    using clock = std::chrono::steady_clock;
    if (a.depth > 0) {
      if (auto r = bs.decode(ids(size_t(a.depth), 1)); !r) fail(r.error().message());
    }
    auto t0 = clock::now();
    if (auto r = bs.decode(ids(n_prompt, 2)); !r) fail(r.error().message());
    const double pp_s = std::chrono::duration<double>(clock::now() - t0).count();
    if (b0)
      if (auto r = b0->decode(ids(n_prompt, 2)); !r) fail(r.error().message());
    const auto gen = ids(n_gen * n_round, 3);
    // n_gen tokens on session s, the seconds they took.
    auto generate = [&](auto& s, size_t round) {
      const auto start = clock::now();
      for (size_t i = round * n_gen; i < (round + 1) * n_gen; ++i)
        if (auto r = s.decode(std::span(&gen[i], 1)); !r) fail(r.error().message());
      return std::chrono::duration<double>(clock::now() - start).count();
    };
    double tg_s = 0, tg0_s = 0;
    std::vector<double> ratios;
    for (size_t round = 0; round < n_round; ++round) {
      if (!b0) {
        tg_s += generate(bs, round);
        continue;
      }
      // Odd rounds start with the depth-0 session, so that neither always goes first.
      double d = 0, d0 = 0;
      if (round % 2) {
        d0 = generate(*b0, round);
        d = generate(bs, round);
      } else {
        d = generate(bs, round);
        d0 = generate(*b0, round);
      }
      tg_s += d, tg0_s += d0;
      if (n_gen > 0) ratios.push_back(d0 / d);  // tokens/s at depth over tokens/s at 0 (none with -n 0)
    }
    const double pp = double(n_prompt) / pp_s, tg = n_gen ? double(n_gen * n_round) / tg_s : 0.0;
    const double tg0 = paired && n_gen ? double(n_gen * n_round) / tg0_s : 0.0;
    std::sort(ratios.begin(), ratios.end());
    const double ratio =
        ratios.empty() ? 0.0 : (ratios[(ratios.size() - 1) / 2] + ratios[ratios.size() / 2]) / 2;  // median
    // Which kernels ran (EMBER_DISABLE=avx512,avx2,vnni,amx turns features off for comparisons;
    // AMX runs in prefill matmuls of 16 tokens and more).
    std::string target;
    if constexpr (std::is_same_v<Backend, ember::kernels::Highway>) target = Backend::current_target();
    if (target.starts_with("AVX3") && ember::kernels::Highway::vnni_enabled()) target += "+VNNI";
    if (target.starts_with("AVX3") && ember::kernels::Highway::amx_enabled()) target += "+AMX";
    // Time to first token: load + the prompt's pass (the first token's logits), meaningful
    // with --depth 0. Peak resident memory of the whole run (the kernel's high-water mark).
    const double ttft = load_s + pp_s;
    const double peak_rss_mib = double(peak_rss_bytes()) / double(1 << 20);
    const std::string kv_name(ember::name(bs.kv_dtype()));
    std::printf(
        "backend %s%s%s, %d threads, KV %s, depth %d: pp%zu %.2f t/s, tg%zu %.2f t/s; load %.3f s, "
        "first token %.3f s, peak RSS %.0f MiB\n",
        Backend::name, target.empty() ? "" : " ", target.c_str(), a.threads, kv_name.c_str(), a.depth, n_prompt, pp,
        n_gen, tg, load_s, ttft, peak_rss_mib);
    if (paired)
      std::printf("%zu rounds of %zu tokens: %.2f t/s at depth %d, %.2f t/s at depth 0, median ratio %.3f\n", n_round,
                  n_gen, tg, a.depth, tg0, ratio);
    if (a.json) {
      std::printf(
          "{\"pp\": %.3f, \"tg\": %.3f, \"n_prompt\": %zu, \"n_gen\": %zu, \"depth\": %d, \"threads\": %d, "
          "\"backend\": \"%s\", \"target\": \"%s\", \"kv\": \"%s\", \"load_s\": %.4f, \"ttft_s\": %.4f, "
          "\"peak_rss_mib\": %.1f, \"kv_mib\": %.1f, \"packed_mib\": %.1f",
          pp, tg, n_prompt, n_gen, a.depth, a.threads, Backend::name, target.c_str(), kv_name.c_str(), load_s, ttft,
          peak_rss_mib, double(model->memory_plan(bc.n_ctx, bc.n_batch, bs.kv_dtype()).kv_bytes) / double(1 << 20),
          double(model->memory_plan(bc.n_ctx).packed_bytes) / double(1 << 20));
      if (paired) std::printf(", \"rounds\": %zu, \"tg0\": %.3f, \"tg_ratio\": %.4f", n_round, tg0, ratio);
      std::printf("}\n");
    }
    return 0;
  }

  ember::Session session(*model, sc);
  if (a.command == "logits") {
    if (!a.has_prompt) fail("logits needs -p TEXT", 2);
    ember::Tokenizer::EncodeOptions eo;
    eo.parse_special = true;
    const auto ids = tok.encode(a.prompt, eo);
    if (ids.empty()) fail("the prompt has no tokens");
    if (auto r = session.decode(ids, /*all_logits=*/true); !r) fail(r.error().message());
    std::vector<int> order(tok.n_vocab());
    for (size_t i = 0; i < ids.size(); ++i) {
      auto lg = session.logits(i);
      const size_t k = std::min<size_t>(size_t(a.top), lg.size());
      for (size_t j = 0; j < order.size(); ++j) order[j] = int(j);
      std::partial_sort(order.begin(), order.begin() + k, order.end(),
                        [&](int x, int y) { return lg[x] > lg[y] || (lg[x] == lg[y] && x < y); });
      std::string line = "{\"pos\": " + std::to_string(i) + ", \"token\": " + std::to_string(ids[i]) +
                         ", \"next\": " + (i + 1 < ids.size() ? std::to_string(ids[i + 1]) : std::string("null")) +
                         ", \"top\": [";
      for (size_t j = 0; j < k; ++j) {
        char buf[64];
        std::snprintf(buf, sizeof buf, "%s{\"id\": %d, \"logit\": %.6g}", j ? ", " : "", order[j], lg[order[j]]);
        line += buf;
      }
      std::printf("%s]}\n", line.c_str());
    }
    return 0;
  }

  ember::SamplerParams sp;
  sp.seed = a.seed;
  sp.temperature = a.temp;
  ember::GenerateOptions go;
  auto print_piece = [](std::string_view s) {
    std::fwrite(s.data(), 1, s.size(), stdout);
    std::fflush(stdout);
  };

  if (a.command == "generate") {
    if (sp.temperature < 0) sp.temperature = 0.8f;
    go.max_tokens = a.n_predict < 0 ? 128 : a.n_predict;
    ember::Sampler sampler(sp);
    auto r = session.generate(a.has_prompt ? a.prompt : "", sampler, go, print_piece);
    if (!r) fail(r.error().message());
    return 0;
  }

  if (a.command == "chat") {
    if (sp.temperature < 0) sp.temperature = 0.f;  // answers are reproducible unless asked otherwise
    go.max_tokens = a.n_predict < 0 ? 512 : a.n_predict;
    auto tmpl = model->chat_template();
    if (!tmpl) fail(tmpl.error().message());
    ember::chat::RenderOptions ro;
    if (tok.bos() >= 0) ro.bos_token = std::string(tok.token_text(tok.bos()));
    if (tok.eos() >= 0) ro.eos_token = std::string(tok.token_text(tok.eos()));
    std::vector<ember::chat::Message> history;
    if (!a.system.empty()) history.push_back({"system", a.system});  // else the template's own default
    ember::Sampler sampler(sp);
    auto answer = [&](const std::string& message) {
      history.push_back({"user", message});
      auto prompt = tmpl->render(history, ro);
      if (!prompt) fail(prompt.error().message());
      // The whole conversation is re-rendered each turn; the session keeps what it already saw.
      ember::Tokenizer::EncodeOptions eo;
      eo.parse_special = true;
      auto ids = tok.encode(*prompt, eo);
      auto r = session.append_and_generate(ids, sampler, go, print_piece);
      if (!r) fail(r.error().message());
      std::fputs("\n", stdout);
      history.push_back({"assistant", r->text});
    };
    if (a.has_prompt) {
      answer(a.prompt);
      return 0;
    }
    std::string line;
    std::fprintf(stderr, "> ");
    while (std::getline(std::cin, line)) {
      if (!line.empty()) answer(line);
      std::fprintf(stderr, "> ");
    }
    return 0;
  }
  fail("unknown command \"" + a.command + "\" (see ember-cli --help)", 2);
}

}  // namespace

int main(int argc, char** argv) {
  const Args a = parse_args(argc, argv);
  if (a.command != "generate" && a.command != "tokenize" && a.command != "chat" && a.command != "info" &&
      a.command != "logits" && a.command != "bench" && a.command != "template")
    fail("unknown command \"" + a.command + "\" (see ember-cli --help)", 2);
  if (a.command == "template") return render_template(a);
  if (a.command == "tokenize") return tokenize(a);
  if (a.backend == "highway") return run<ember::kernels::Highway>(a);
  if (a.backend == "xsimd") return run<ember::kernels::Xsimd<>>(a);
  if (a.backend == "reference") return run<ember::kernels::Reference>(a);
  fail("unknown backend \"" + a.backend + "\" (highway, xsimd, reference)", 2);
}
