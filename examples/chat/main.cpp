// chat: a terminal chat with a local model, in one file.
//
//   chat -m MODEL [--system TEXT] [-c CONTEXT] [-n MAX_TOKENS] [--temp T] [--seed S] [-t THREADS]
//
// Shows what a host needs for an assistant: a progress bar while the model loads, the
// model's own chat template, answers streamed as they are produced, the history kept in the
// session's KV cache (each turn decodes only the new text), and a context that shifts when
// full instead of ending the conversation. Reads one message per line from stdin; /reset
// starts over (keeping the system prompt), /quit ends. Answers go to
// stdout; the prompt marker, progress and errors to stderr. Builds with -fno-exceptions
// -fno-rtti: every error is a Result.
#define EMBER_IMPLEMENTATION
#include <cstdio>
#include <cstdlib>
#include <iostream>
#include <string>
#include <string_view>
#if defined(_WIN32)
#include <io.h>
#define isatty _isatty
#define fileno _fileno
#else
#include <unistd.h>
#endif

#include "ember/ember.hpp"

namespace {

[[noreturn]] void fail(const std::string& message, int status = 1) {
  std::fprintf(stderr, "chat: %s\n", message.c_str());
  std::exit(status);
}

struct Args {
  std::string model;
  std::string system = "You are a helpful assistant.";
  uint32_t n_ctx = 2048;
  int32_t max_tokens = 512;
  float temp = 0.f;
  uint64_t seed = 1;
  uint32_t threads = 2;
};

constexpr const char* kUsage =
    "usage: chat -m MODEL [--system TEXT] [-c CONTEXT] [-n MAX_TOKENS] [--temp T] [--seed S] [-t THREADS]\n"
    "  one message per line on stdin; /reset starts over, /quit ends\n";

long number(const std::string& flag, const char* v, long lo, long hi) {
  char* end = nullptr;
  const long x = std::strtol(v, &end, 10);
  if (!*v || *end || x < lo || x > hi)
    fail(flag + " expects an integer from " + std::to_string(lo) + " to " + std::to_string(hi), 2);
  return x;
}

Args parse(int argc, char** argv) {
  Args a;
  for (int i = 1; i < argc; ++i) {
    const std::string f = argv[i];
    if (f == "-h" || f == "--help") {
      std::fputs(kUsage, stdout);
      std::exit(0);
    }
    if (i + 1 >= argc) fail(f == "-m" || f[0] == '-' ? f + " needs a value" : "unexpected argument " + f, 2);
    const char* v = argv[++i];
    if (f == "-m" || f == "--model") {
      a.model = v;
    } else if (f == "--system") {
      a.system = v;
    } else if (f == "-c" || f == "--ctx-size") {
      a.n_ctx = uint32_t(number(f, v, 16, 1 << 20));
    } else if (f == "-n" || f == "--n-predict") {
      a.max_tokens = int32_t(number(f, v, 1, 1 << 20));
    } else if (f == "--seed") {
      a.seed = uint64_t(number(f, v, 0, 0x7fffffffL));
    } else if (f == "-t" || f == "--threads") {
      a.threads = uint32_t(number(f, v, 1, 256));
    } else if (f == "--temp") {
      char* end = nullptr;
      a.temp = std::strtof(v, &end);
      if (!*v || *end || !(a.temp >= 0.f)) fail("--temp expects a number >= 0", 2);
    } else {
      fail("unknown option " + f + "\n" + kUsage, 2);
    }
  }
  if (a.model.empty()) fail(std::string("-m MODEL is required\n") + kUsage, 2);
  return a;
}

// A bar on stderr that redraws in place when stderr is a terminal, and is drawn once, full,
// otherwise (a log file gets one line).
bool show_progress(float done) {
  static int last = -1;
  static const bool tty = isatty(fileno(stderr));
  const int pct = int(done * 100.f + 0.5f);
  if (pct == last || (!tty && pct < 100)) return true;
  last = pct;
  const int width = 30, filled = pct * width / 100;
  std::fprintf(stderr, "\rloading [%.*s%*s] %3d%%", filled, "==============================", width - filled, "", pct);
  if (pct == 100) std::fputc('\n', stderr);
  return true;
}

}  // namespace

int main(int argc, char** argv) {
  const Args a = parse(argc, argv);
  auto model = ember::Model<>::load(a.model, {.progress = show_progress});
  if (!model) fail(model.error().message());
  const ember::Tokenizer& tok = model->tokenizer();
  auto tmpl = model->chat_template();
  if (!tmpl) fail(tmpl.error().message());

  ember::chat::RenderOptions ro;
  if (tok.bos() >= 0) ro.bos_token = std::string(tok.token_text(tok.bos()));
  if (tok.eos() >= 0) ro.eos_token = std::string(tok.token_text(tok.eos()));
  ember::chat::Conversation conversation(std::move(*tmpl), ro);
  if (!a.system.empty()) conversation.add("system", a.system);

  ember::Session session(*model, {.n_ctx = a.n_ctx, .n_threads = a.threads});
  ember::Sampler sampler(ember::SamplerParams{.temperature = a.temp, .seed = a.seed});

  // A context shift keeps BOS and the system prompt, and drops the oldest turns after them.
  ember::GenerateOptions options{.max_tokens = a.max_tokens, .context_shift = true};
  auto preamble = conversation.preamble();
  if (!preamble) fail(preamble.error().message());
  options.n_keep = uint32_t(tok.encode(*preamble, {.parse_special = true}).size());

  auto print = [](std::string_view piece) {
    std::fwrite(piece.data(), 1, piece.size(), stdout);
    std::fflush(stdout);
  };
  auto answer = [&](const std::string& message) -> bool {
    auto turn = conversation.user(message);
    if (!turn) {
      std::fprintf(stderr, "chat: %s\n", turn.error().message().c_str());
      return false;
    }
    if (turn->restart) session.clear();
    const auto ids = tok.encode(
        turn->text, {.add_bos = session.n_past() == 0 ? std::nullopt : std::optional(false), .parse_special = true});
    auto r = session.append_and_generate(0, ids, sampler, options, print);
    std::fputc('\n', stdout);
    std::fflush(stdout);
    if (!r) {
      std::fprintf(stderr, "chat: %s\n", r.error().message().c_str());
      return false;
    }
    // An answer cut by max_tokens leaves its last token sampled but not decoded: decode it so
    // the session holds the whole answer, as the conversation does.
    if (!r->stopped_by_eog && !r->tokens.empty()) {
      const ember::TokenId last[1] = {r->tokens.back()};
      if (session.n_past() + 1 > session.n_ctx()) (void)session.shift(0, session.n_past() / 2, options.n_keep);
      if (auto d = session.decode(last); !d) std::fprintf(stderr, "chat: %s\n", d.error().message().c_str());
    }
    conversation.assistant(r->text);
    std::fprintf(stderr, "[context %u/%u: +%zu prompt tokens, +%zu generated]\n", session.n_past(), session.n_ctx(),
                 ids.size(), r->tokens.size());
    return true;
  };

  std::string line;
  std::fputs("> ", stderr);
  while (std::getline(std::cin, line)) {
    if (line == "/quit") break;
    if (line == "/reset") {
      conversation.reset();
      session.clear();
    } else if (!line.empty()) {
      answer(line);
    }
    std::fputs("> ", stderr);
  }
  std::fputc('\n', stderr);
  return 0;
}
