// One turn of a conversation, as chat templates see it: messages[i].role / .content.
#pragma once

#include <string>

namespace ember::chat {

struct Message {
  std::string role;     // "system", "user", "assistant", "tool", ... as the template expects
  std::string content;  // UTF-8 text, inserted as is (never interpreted as template code)
};

}  // namespace ember::chat
