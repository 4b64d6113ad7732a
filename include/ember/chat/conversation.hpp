// A conversation whose history lives in a Session's KV cache. Each turn the whole
// conversation is rendered with the model's chat template (the template decides the
// format), but only the text the session has not seen yet is handed out to decode: the
// rendering up to the last answer, plus the answer as generated, is a prefix of the next
// rendering for every template ember knows. When a template rewrites history (a prefix no
// longer matches), the turn says so and carries the whole rendering instead.
#pragma once

#include <span>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "ember/chat/message.hpp"
#include "ember/chat/template.hpp"
#include "ember/core/result.hpp"

namespace ember::chat {

struct Turn {
  std::string text;      // to append to the session (special tokens written as text: parse them)
  bool restart = false;  // the text is the whole conversation: clear the session first
};

class Conversation {
 public:
  Conversation(ChatTemplate tmpl, RenderOptions options = {})
      : template_(std::move(tmpl)), options_(std::move(options)) {}

  // A system prompt (or any message) before the first turn. Without one, a template may add
  // its own default system prompt.
  void add(std::string role, std::string content) { messages_.push_back({std::move(role), std::move(content)}); }

  // The text for a new user message, ending with the assistant's header. The message is
  // kept only if the template accepts it.
  Result<Turn> user(std::string_view content) {
    messages_.push_back({"user", std::string(content)});
    RenderOptions o = options_;
    o.add_generation_prompt = true;
    auto full = template_.render(messages_, o);
    if (!full) {
      messages_.pop_back();
      return std::move(full).error();
    }
    Turn t;
    if (std::string_view(*full).starts_with(seen_)) {
      t.text = full->substr(seen_.size());
    } else {
      t.text = *full;
      t.restart = true;
    }
    seen_ = std::move(*full);
    return t;
  }

  // Records the answer exactly as generated (the text now in the session after the turn).
  void assistant(std::string_view generated) {
    messages_.push_back({"assistant", std::string(generated)});
    seen_ += generated;
  }

  // The rendering of the messages added before the first user message (a system prompt),
  // or empty: what a context shift should keep (GenerateOptions::n_keep, in tokens).
  Result<std::string> preamble() const {
    size_t n = 0;
    while (n < messages_.size() && messages_[n].role != "user") ++n;
    if (n == 0) return std::string();
    RenderOptions o = options_;
    o.add_generation_prompt = false;
    return template_.render(std::span<const Message>(messages_).first(n), o);
  }

  std::span<const Message> messages() const { return messages_; }
  // Forgets every message but those before the first user message; clear the session too.
  void reset() {
    size_t n = 0;
    while (n < messages_.size() && messages_[n].role != "user") ++n;
    messages_.resize(n);
    seen_.clear();
  }

 private:
  ChatTemplate template_;
  RenderOptions options_;
  std::vector<Message> messages_;
  std::string seen_;  // the text the session holds, as rendered and generated
};

}  // namespace ember::chat
