// The host's view: one TU defines EMBER_IMPLEMENTATION, loads a model, generates.
#define EMBER_IMPLEMENTATION
#include <cstdio>
#include <ember/ember.hpp>
#include <string>

int main(int argc, char** argv) {
  if (argc < 2) return 2;
  auto model = ember::Model<>::load(argv[1]);
  if (!model) {
    std::fprintf(stderr, "%s\n", model.error().message().c_str());
    return 1;
  }
  ember::Session session(*model, {.n_ctx = 128});
  auto sampler = ember::Sampler::greedy();
  auto r = session.generate("", sampler, {.max_tokens = 16});
  if (!r || r->tokens.size() != 16) return 1;
  std::printf("consumer ok: %s\n", r->text.c_str());
  return 0;
}
