// A model's own chat template (GGUF `tokenizer.chat_template`): parsed once,
// rendered into the prompt text for a conversation, the way Hugging Face
// transformers renders it (see jinja.hpp for the interpreter and its limits).
#pragma once

#include <span>
#include <string>
#include <string_view>
#include <utility>

#include "ember/chat/jinja.hpp"
#include "ember/chat/message.hpp"
#include "ember/core/result.hpp"

namespace ember::chat {

struct RenderOptions {
  bool add_generation_prompt = true;  // end with the header of the assistant's turn
  std::string bos_token;              // the tokenizer's special tokens, as text
  std::string eos_token;
};

class ChatTemplate {
 public:
  // Errors name the template line: syntax errors (Errc::format) and constructs
  // ember does not implement (Errc::unsupported) are found here, not at render time.
  static Result<ChatTemplate> parse(std::string_view source) {
    EMBER_TRY(jinja::Template program, jinja::Template::parse(source));
    return ChatTemplate(std::move(program));
  }

  // The prompt for `messages`. Message contents are data, never template code. A
  // template that rejects the conversation (raise_exception, e.g. roles that do not
  // alternate) gives Errc::invalid_argument with the template's own message.
  Result<std::string> render(std::span<const Message> messages, const RenderOptions& options = {}) const {
    jinja::List list;
    list.reserve(messages.size());
    for (const Message& m : messages) {
      list.push_back(
          jinja::Value::dict({{"role", jinja::Value::string(m.role)}, {"content", jinja::Value::string(m.content)}}));
    }
    // What transformers passes: tools and documents are defined, and None without tools.
    return program_.render({{"messages", jinja::Value::list(std::move(list))},
                            {"add_generation_prompt", jinja::Value::boolean(options.add_generation_prompt)},
                            {"bos_token", jinja::Value::string(options.bos_token)},
                            {"eos_token", jinja::Value::string(options.eos_token)},
                            {"tools", jinja::Value::none()},
                            {"documents", jinja::Value::none()}});
  }

  std::string_view source() const { return program_.source(); }

 private:
  explicit ChatTemplate(jinja::Template program) : program_(std::move(program)) {}
  jinja::Template program_;
};

}  // namespace ember::chat
