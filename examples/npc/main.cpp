// npc: four characters of a small game share one model, inside a frame loop.
//
//   npc -m MODEL [--seed S] [-t THREADS] [--frames N] [--budget-ms MS] [--line-every K]
//
// A traveler walks into a village square and says something every K frames; the guard, the
// smith, the innkeeper and the bard each answer in character. All four are sequences of one
// Session, so one decode round reads the weights once for all of them. Each frame the game
// gives the model a time budget (Session::step) and shows the lines that are finished.
//
// The run is reproducible from the seed: what a character says depends only on its persona,
// the traveler's lines and its own seeded sampler, never on how many rounds fit in a frame,
// and lines are printed in a fixed order (the traveler's line, then each character's answer
// to it, as soon as that answer and all before it are done). After the last frame the
// answers still being written are finished. stdout: the transcript; stderr: frame times.
#define EMBER_IMPLEMENTATION
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <deque>
#include <string>
#include <vector>

#include "ember/ember.hpp"

namespace {

[[noreturn]] void fail(const std::string& message, int status = 1) {
  std::fprintf(stderr, "npc: %s\n", message.c_str());
  std::exit(status);
}

struct Args {
  std::string model;
  uint64_t seed = 1;
  uint32_t threads = 2;
  uint32_t frames = 600;
  double budget_ms = 12.0;  // per frame, for all four characters together
  uint32_t line_every = 150;
};

constexpr const char* kUsage =
    "usage: npc -m MODEL [--seed S] [-t THREADS] [--frames N] [--budget-ms MS] [--line-every K]\n"
    "  stdout: the transcript; stderr: frame-time statistics\n";

double number(const std::string& flag, const char* v, double lo, double hi) {
  char* end = nullptr;
  const double x = std::strtod(v, &end);
  if (!*v || *end || !(x >= lo && x <= hi))
    fail(flag + " expects a number from " + std::to_string(lo) + " to " + std::to_string(hi), 2);
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
    if (i + 1 >= argc) fail(f + " needs a value\n" + kUsage, 2);
    const char* v = argv[++i];
    if (f == "-m" || f == "--model")
      a.model = v;
    else if (f == "--seed")
      a.seed = uint64_t(number(f, v, 0, 2147483647.0));
    else if (f == "-t" || f == "--threads")
      a.threads = uint32_t(number(f, v, 1, 256));
    else if (f == "--frames")
      a.frames = uint32_t(number(f, v, 1, 1e7));
    else if (f == "--budget-ms")
      a.budget_ms = number(f, v, 0, 1e4);
    else if (f == "--line-every")
      a.line_every = uint32_t(number(f, v, 1, 1e7));
    else
      fail("unknown option " + f + "\n" + kUsage, 2);
  }
  if (a.model.empty()) fail(std::string("-m MODEL is required\n") + kUsage, 2);
  return a;
}

struct Character {
  const char* name;
  const char* persona;
};

constexpr Character kCast[4] = {
    {"Guard",
     "You are Bram, the gate guard of the village of Emberfall. You are gruff, suspicious of strangers "
     "and proud of the village. Answer in one or two short sentences."},
    {"Smith",
     "You are Hilda, the blacksmith of Emberfall. You are practical and loud and love talking about "
     "metal and tools. Answer in one or two short sentences."},
    {"Innkeeper",
     "You are Olwen, who runs the Sleeping Fox inn in Emberfall. You are warm, curious and know "
     "every rumour. Answer in one or two short sentences."},
    {"Bard",
     "You are Pip, a travelling bard staying in Emberfall. You are cheerful and speak in playful, "
     "poetic phrases. Answer in one or two short sentences."},
};

constexpr const char* kTraveler[] = {
    "Good evening! What is this place?",           "I am looking for a place to sleep tonight.",
    "Have you heard any news from the mountains?", "My sword is chipped. Can anyone help?",
    "Is it safe to travel north tomorrow?",        "Tell me something about yourself.",
    "What do you think of the other villagers?",   "Thank you all. Farewell!",
};
constexpr size_t kNumTraveler = sizeof kTraveler / sizeof kTraveler[0];

struct Npc {
  ember::chat::Conversation talk;
  ember::Sampler sampler;
  std::deque<size_t> to_answer;  // traveler lines heard, not yet answered
  bool busy = false;
};

std::string one_line(std::string s) {
  for (char& c : s)
    if (c == '\n' || c == '\r') c = ' ';
  const size_t b = s.find_first_not_of(' '), e = s.find_last_not_of(' ');
  return b == std::string::npos ? std::string() : s.substr(b, e - b + 1);
}

}  // namespace

int main(int argc, char** argv) {
  using clock = std::chrono::steady_clock;
  const Args a = parse(argc, argv);
  auto model = ember::Model<>::load(a.model);
  if (!model) fail(model.error().message());
  const ember::Tokenizer& tok = model->tokenizer();
  ember::chat::RenderOptions ro;
  if (tok.bos() >= 0) ro.bos_token = std::string(tok.token_text(tok.bos()));
  if (tok.eos() >= 0) ro.eos_token = std::string(tok.token_text(tok.eos()));

  // Small prompt batches keep one round of step() short, so a frame's budget holds.
  ember::Session session(*model, {.n_ctx = 1024, .n_batch = 8, .n_threads = a.threads, .n_seq_max = 4});
  std::vector<Npc> npcs;
  std::vector<ember::GenerateOptions> options(4);
  for (uint32_t i = 0; i < 4; ++i) {
    auto tmpl = model->chat_template();
    if (!tmpl) fail(tmpl.error().message());
    ember::chat::Conversation talk(std::move(*tmpl), ro);
    talk.add("system", kCast[i].persona);
    ember::SamplerParams sp{.temperature = 0.8f, .seed = a.seed * 4 + i, .repeat_penalty = 1.1f};
    npcs.push_back({std::move(talk), ember::Sampler(sp)});
    auto pre = npcs[i].talk.preamble();
    if (!pre) fail(pre.error().message());
    options[i] = {.max_tokens = 48, .stop = {"\n"}, .context_shift = true};
    options[i].n_keep = uint32_t(tok.encode(*pre, {.parse_special = true}).size());
    if (i > 0) {
      auto seq = session.add_sequence();
      if (!seq || *seq != i) fail("could not add a sequence");
    }
  }

  // answers[k][i]: character i's answer to traveler line k, once finished.
  std::vector<std::vector<std::optional<std::string>>> answers;
  // Prints the transcript in its fixed order, as far as finished answers allow.
  size_t printed_line = 0, printed_npc = 0;  // the next answer to print
  bool heard = false;                        // the traveler's line printed_line is printed
  auto print_ready = [&] {
    while (printed_line < answers.size()) {
      const auto& row = answers[printed_line];
      if (!heard) std::printf("Traveler: %s\n", kTraveler[printed_line % kNumTraveler]), heard = true;
      for (; printed_npc < 4 && row[printed_npc]; ++printed_npc)
        std::printf("%s: %s\n", kCast[printed_npc].name, row[printed_npc]->c_str());
      if (printed_npc < 4) break;
      ++printed_line, printed_npc = 0, heard = false;
    }
    std::fflush(stdout);
  };

  auto start_answers = [&] {
    for (uint32_t i = 0; i < 4; ++i) {
      Npc& n = npcs[i];
      if (n.busy || n.to_answer.empty()) continue;
      auto turn = n.talk.user(kTraveler[n.to_answer.front() % kNumTraveler]);
      if (!turn) fail(turn.error().message());
      const bool first = session.n_past(i) == 0;
      const auto ids =
          tok.encode(turn->text, {.add_bos = first ? std::nullopt : std::optional(false), .parse_special = true});
      if (auto r = session.begin_generation(i, ids, n.sampler, options[i]); !r) fail(r.error().message());
      n.busy = true;
    }
  };
  auto collect = [&](std::vector<std::pair<ember::SeqId, ember::GenerateResult>>& done) {
    for (auto& [seq, result] : done) {
      Npc& n = npcs[seq];
      const size_t k = n.to_answer.front();
      n.to_answer.pop_front();
      n.busy = false;
      n.talk.assistant(result.text);
      answers[k][seq] = one_line(result.text);
    }
  };

  const auto budget = std::chrono::microseconds(int64_t(a.budget_ms * 1000.0));
  std::vector<double> frame_ms;
  frame_ms.reserve(a.frames);
  uint64_t n_tokens = 0;
  const auto t_run = clock::now();
  for (uint32_t frame = 0; frame < a.frames; ++frame) {
    const auto t0 = clock::now();
    if (frame % a.line_every == 0) {  // the traveler speaks; everyone hears it
      answers.emplace_back(4);
      for (auto& n : npcs) n.to_answer.push_back(answers.size() - 1);
    }
    start_answers();
    bool any = std::any_of(npcs.begin(), npcs.end(), [](const Npc& n) { return n.busy; });
    if (any) {
      // What is left of this frame's budget after the game's own work (starting answers).
      const auto left = budget - std::chrono::duration_cast<std::chrono::microseconds>(clock::now() - t0);
      auto r = session.step(std::max(left, std::chrono::microseconds(0)));
      if (!r) fail(r.error().message());
      n_tokens += r->n_tokens;
      collect(r->results);  // a character that finished starts its next answer next frame
    }
    print_ready();
    frame_ms.push_back(std::chrono::duration<double, std::milli>(clock::now() - t0).count());
  }

  // The game is over: finish what the characters are saying, without a budget.
  const auto t_drain = clock::now();
  while (std::any_of(npcs.begin(), npcs.end(), [](const Npc& n) { return n.busy || !n.to_answer.empty(); })) {
    start_answers();
    auto r = session.step(std::chrono::seconds(1));
    if (!r) fail(r.error().message());
    n_tokens += r->n_tokens;
    collect(r->results);
  }
  print_ready();
  const auto t_end = clock::now();

  std::vector<double> sorted = frame_ms;
  std::sort(sorted.begin(), sorted.end());
  auto pct = [&](double p) { return sorted[std::min(sorted.size() - 1, size_t(p * double(sorted.size() - 1) + 0.5))]; };
  double sum = 0;
  for (double f : frame_ms) sum += f;
  const size_t over =
      size_t(std::count_if(frame_ms.begin(), frame_ms.end(), [&](double f) { return f > a.budget_ms; }));
  const double run_s = std::chrono::duration<double>(t_end - t_run).count();
  std::fprintf(stderr,
               "npc: %u frames, budget %.2f ms: mean %.2f ms, p50 %.2f, p99 %.2f, worst %.2f ms; %zu over budget\n"
               "npc: %llu tokens in %.2f s (%.1f tokens/s), %.2f s after the last frame to finish the answers\n",
               a.frames, a.budget_ms, sum / double(frame_ms.size()), pct(0.5), pct(0.99), sorted.back(), over,
               static_cast<unsigned long long>(n_tokens), run_s, double(n_tokens) / run_s,
               std::chrono::duration<double>(t_end - t_drain).count());
  return 0;
}
