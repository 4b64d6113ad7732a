// Chat template tests: every template in tests/data/templates rendered on every
// conversation and compared byte for byte with Python jinja2 as transformers runs
// it (tools/make_template_vectors.py writes the vectors), the interpreter's
// semantics pinned by snippets, errors for malformed and runaway templates, and
// the messages JSON reader.
#include <doctest/doctest.h>

#include <cstdint>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include "data_path.hpp"
#include "ember/chat/json.hpp"
#include "ember/chat/template.hpp"
#include "ember/gguf/reader.hpp"

#ifndef EMBER_TESTS_DIR
#error "EMBER_TESTS_DIR must name the tests/ folder"
#endif

namespace {

using ember::Errc;
using ember::chat::ChatTemplate;
using ember::chat::JsonValue;
using ember::chat::Message;
using ember::chat::RenderOptions;

const std::string kDir = std::string(EMBER_TESTS_DIR) + "/data/templates/";

bool read_file(const std::string& path, std::string* out) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return false;
  std::stringstream s;
  s << in.rdbuf();
  *out = s.str();
  return true;
}

JsonValue read_json(const std::string& name) {
  std::string text;
  REQUIRE_MESSAGE(read_file(kDir + name, &text), "missing " << kDir + name);
  auto doc = ember::chat::parse_json(text);
  REQUIRE_MESSAGE(doc.ok(), (doc.ok() ? std::string() : doc.error().message()));
  return *doc;
}

std::string string_member(const JsonValue& object, std::string_view key) {
  const JsonValue* v = object.find(key);
  return v && v->is_string() ? v->as_string() : std::string();
}

// Renders `source`, or returns the error.
ember::Result<std::string> render(std::string_view source, const std::vector<Message>& messages,
                                  const RenderOptions& options = {}) {
  EMBER_TRY(ChatTemplate t, ChatTemplate::parse(source));
  return t.render(messages, options);
}

// The prompt, or "error: ..." (so a failure shows the message).
std::string output_of(std::string_view source, const std::vector<Message>& messages = {},
                      const RenderOptions& options = {}) {
  auto r = render(source, messages, options);
  return r.ok() ? *r : "error: " + r.error().message();
}

std::string error_of(std::string_view source, const std::vector<Message>& messages = {}) {
  auto r = render(source, messages);
  if (r.ok()) return "(no error; rendered \"" + *r + "\")";
  return r.error().message();
}

Errc code_of(std::string_view source, const std::vector<Message>& messages = {}) {
  auto r = render(source, messages);
  REQUIRE_FALSE(r.ok());
  return r.error().code();
}

const std::vector<Message> kChat = {{"system", "Be brief."}, {"user", "Hi"}, {"assistant", "Hello!"}};

}  // namespace

TEST_CASE("chat templates render every conversation exactly as jinja2 does") {
  const JsonValue templates = read_json("templates.json");
  const JsonValue conversations = read_json("conversations.json");
  size_t outputs = 0, raises = 0, failures = 0;
  for (const JsonValue& entry : templates.find("templates")->as_array()) {
    const std::string name = string_member(entry, "name");
    std::string source;
    REQUIRE(read_file(kDir + name + ".jinja", &source));
    auto tmpl = ChatTemplate::parse(source);
    REQUIRE_MESSAGE(tmpl.ok(), name << ": " << (tmpl.ok() ? std::string() : tmpl.error().message()));
    CHECK(tmpl->source() == source);
    RenderOptions options;
    options.bos_token = string_member(entry, "bos_token");
    options.eos_token = string_member(entry, "eos_token");
    for (const JsonValue& conversation : conversations.find("cases")->as_array()) {
      const std::string vector = name + "." + string_member(conversation, "name");
      INFO(vector);
      auto messages = ember::chat::messages_from_json(*conversation.find("messages"));
      REQUIRE(messages.ok());
      options.add_generation_prompt = conversation.find("add_generation_prompt")->as_bool();
      auto prompt = tmpl->render(*messages, options);
      std::string expected;
      if (read_file(kDir + vector + ".txt", &expected)) {
        REQUIRE_MESSAGE(prompt.ok(), (prompt.ok() ? std::string() : prompt.error().message()));
        CHECK(*prompt == expected);
        ++outputs;
      } else if (read_file(kDir + vector + ".raise", &expected)) {
        REQUIRE_FALSE(prompt.ok());
        CHECK(prompt.error().message() == expected);  // the template's own words
        CHECK(prompt.error().code() == Errc::invalid_argument);
        ++raises;
      } else if (read_file(kDir + vector + ".fail", &expected)) {
        INFO("jinja2 said: " << expected);
        CHECK_FALSE(prompt.ok());
        ++failures;
      } else {
        FAIL("no expected output for " << vector);
      }
    }
  }
  MESSAGE(outputs << " prompts, " << raises << " raise_exception, " << failures << " failures matched jinja2");
  CHECK(outputs > 100);
  CHECK(raises > 10);
}

TEST_CASE("interpreter snippets match jinja2") {
  const JsonValue doc = read_json("snippets.json");
  auto messages = ember::chat::messages_from_json(*doc.find("messages"));
  REQUIRE(messages.ok());
  RenderOptions options;
  options.add_generation_prompt = doc.find("add_generation_prompt")->as_bool();
  options.bos_token = string_member(doc, "bos_token");
  options.eos_token = string_member(doc, "eos_token");
  size_t checked = 0;
  for (const JsonValue& snippet : doc.find("snippets")->as_array()) {
    const std::string source = string_member(snippet, "template");
    INFO("template: " << source);
    auto result = render(source, *messages, options);
    if (const JsonValue* output = snippet.find("output")) {
      REQUIRE_MESSAGE(result.ok(), (result.ok() ? std::string() : result.error().message()));
      CHECK(*result == output->as_string());
    } else if (const JsonValue* raised = snippet.find("raise")) {
      REQUIRE_FALSE(result.ok());
      CHECK(result.error().message() == raised->as_string());
    } else {
      INFO("jinja2 said: " << string_member(snippet, "fail"));
      CHECK_FALSE(result.ok());
      if (!result.ok()) CHECK(result.error().message().find("chat template line ") == 0);
    }
    ++checked;
  }
  CHECK(checked > 80);
}

TEST_CASE("SmolLM2's template, read from its GGUF file, is the one the vectors use") {
  EMBER_SMOLLM2_FILE(path);
  auto file = ember::gguf::File::open(path);
  REQUIRE(file.ok());
  auto source = file->get_string("tokenizer.chat_template");
  REQUIRE(source.ok());
  std::string stored;
  REQUIRE(read_file(kDir + "smollm2.jinja", &stored));
  CHECK(*source == stored);
  auto tmpl = ChatTemplate::parse(*source);
  REQUIRE(tmpl.ok());
  RenderOptions options;
  options.bos_token = "<|im_start|>";
  options.eos_token = "<|im_end|>";
  std::string expected;
  REQUIRE(read_file(kDir + "smollm2.multi_turn.txt", &expected));
  std::vector<Message> history = {{"user", "What is the capital of France?"}, {"assistant", "Paris."}};
  history.push_back({"user", "And of Italy?"});
  auto prompt = tmpl->render(history, options);
  REQUIRE(prompt.ok());
  CHECK(*prompt == expected);
}

TEST_CASE("message content is data, never template code") {
  const std::string chatml = "{% for m in messages %}<{{ m.role }}>{{ m.content }}{% endfor %}";
  auto out = render(chatml, {{"user", "{{ 7 * 7 }} {% if true %}x{% endif %} {# c #} {{ raise_exception('no') }}"}});
  REQUIRE(out.ok());
  CHECK(*out == "<user>{{ 7 * 7 }} {% if true %}x{% endif %} {# c #} {{ raise_exception('no') }}");
}

TEST_CASE("raise_exception becomes an error carrying the template's message") {
  const std::string alternate =
      "{% for m in messages %}{% if (m.role == 'user') != (loop.index0 % 2 == 0) %}"
      "{{ raise_exception('Conversation roles must alternate user/assistant/user/assistant/...') }}"
      "{% endif %}{% endfor %}ok";
  CHECK(output_of(alternate, {{"user", "a"}, {"assistant", "b"}}) == "ok");
  auto r = render(alternate, {{"user", "a"}, {"user", "b"}});
  REQUIRE_FALSE(r.ok());
  CHECK(r.error().code() == Errc::invalid_argument);
  CHECK(r.error().message() == "Conversation roles must alternate user/assistant/user/assistant/...");
}

TEST_CASE("malformed templates fail with the line and the reason") {
  CHECK(error_of("a\n{% for m in messages %}\nno end") ==
        "chat template line 2: unclosed '{% for %}': expected '{% endfor %}' or '{% else %}' before the end of the "
        "template");
  CHECK(error_of("line 1\n{{ messages | foo }}") == "chat template line 2: unknown filter 'foo'");
  CHECK(code_of("{{ messages | foo }}") == Errc::unsupported);
  CHECK(error_of("{% if true %}\n{% endfor %}") ==
        "chat template line 2: unexpected '{% endfor %}': expected '{% elif %}' or '{% else %}' or '{% endif %}' to "
        "close the '{% if %}' on line 1");
  CHECK(error_of("x\n\n{% endfor %}") == "chat template line 3: unexpected '{% endfor %}'");
  CHECK(error_of("{{ 'unterminated }}") == "chat template line 1: unterminated string literal");
  CHECK(error_of("{{ \"also\nunterminated }}") == "chat template line 1: unterminated string literal");
  CHECK(error_of("\n{{ x ") == "chat template line 2: unclosed '{{': expected '}}'");
  CHECK(error_of("{% if x") == "chat template line 1: unclosed '{%': expected '%}'");
  CHECK(error_of("{# never closed") == "chat template line 1: unclosed comment '{#'");
  CHECK(error_of("{{ 1 + }}") == "chat template line 1: expected a value, found '}}'");
  CHECK(error_of("{{ x is foo }}") == "chat template line 1: unknown test 'foo'");
  // As in jinja2, a branch that is not taken may name filters ember does not have.
  CHECK(output_of("{% if false %}{{ x | foo }}{% elif false and x is bar %}{% endif %}{{ 1 if true else x | foo }}",
                  {}) == "1");
  CHECK(error_of("{% if true %}\n{{ x | foo }}{% endif %}") == "chat template line 2: unknown filter 'foo'");
  CHECK(error_of("{% if false %}{% for a in b %}{{ a | foo }}{% endfor %}{% endif %}") ==
        "chat template line 1: unknown filter 'foo'");
  CHECK(error_of("{% frobnicate %}") == "chat template line 1: unknown tag 'frobnicate'");
  CHECK(error_of("{% macro m() %}{% endmacro %}") == "chat template line 1: '{% macro %}' is not supported");
  CHECK(error_of("{% break %}") == "chat template line 1: '{% break %}' outside a for loop");
  CHECK(error_of("{{ (1 }}") == "chat template line 1: unexpected '}', expected ')'");
  CHECK(error_of("{{ 1 ]}}") == "chat template line 1: unexpected ']'");
  CHECK(error_of("{{ a ! b }}") == "chat template line 1: unexpected character '!'");
  CHECK(error_of("{% raw %}never closed") == "chat template line 1: unclosed '{% raw %}': expected '{% endraw %}'");
  CHECK(error_of("{% set %}") == "chat template line 1: expected a variable name, found '%}'");
  CHECK(error_of("{{ '%s' % 1 }}") == "chat template line 1: printf-style '%' string formatting is not supported");
  CHECK(error_of("\n\n{{ 'x'.zfill(3) }}") == "chat template line 3: unknown method 'zfill' of str");
  CHECK(error_of("{{ undefined_thing.attribute }}") == "chat template line 1: 'undefined_thing' is undefined");
  CHECK(error_of("{{ messages[0].role }}") == "chat template line 1: list object has no element 0");
  CHECK(error_of("{{ 'a' + 1 }}") == "chat template line 1: unsupported operand types for +: 'str' and 'int'");
  CHECK(error_of("{{ 1 // 0 }}") == "chat template line 1: integer division or modulo by zero");
  CHECK(error_of("{{ 9223372036854775807 + 1 }}") == "chat template line 1: integer overflow");
  CHECK(error_of("{% set x = 1 %}{% set x.y = 2 %}") ==
        "chat template line 1: cannot assign attribute on non-namespace object 'x'");
  CHECK(error_of("{% for a, b in [1] %}{% endfor %}") == "chat template line 1: cannot unpack a int value");
}

namespace {

// Renders with a small step budget, so that runaway loops stop quickly.
Errc code_within(std::string_view source, size_t max_steps) {
  auto parsed = ember::chat::jinja::Template::parse(source);
  REQUIRE(parsed.ok());
  auto r = parsed->render({}, max_steps);
  REQUIRE_FALSE(r.ok());
  return r.error().code();
}

}  // namespace

TEST_CASE("runaway templates are stopped") {
  CHECK(code_of("{% for i in range(200000) %}{{ 'x' * 100 }}{% endfor %}") == Errc::out_of_range);
  CHECK(code_of("{{ 'x' * 100000000 }}") == Errc::out_of_range);
  CHECK(code_within("{% for i in range(1000) %}{% for j in range(1000) %}{% endfor %}{% endfor %}", 100000) ==
        Errc::out_of_range);
  CHECK(code_within("{% for i in range(1000) %}{{ messages == messages }}{% endfor %}", 500) == Errc::out_of_range);
  CHECK(code_of("{{ range(100000000) | length }}") == Errc::out_of_range);
  CHECK(code_of("{% set ns = namespace(s='xx') %}{% for i in range(64) %}{% set ns.s = ns.s + ns.s %}{% endfor %}") ==
        Errc::out_of_range);
  CHECK(code_of("{% set ns = namespace(v=[]) %}{% for i in range(1000) %}{% set ns.v = [ns.v] %}{% endfor %}") ==
        Errc::out_of_range);
  // Values shared with themselves: printing and comparing stay bounded.
  CHECK(code_of("{% set ns = namespace(v=[1]) %}{% for i in range(100) %}{% set ns.v = [ns.v, ns.v] %}{% endfor %}"
                "{{ ns.v }}") == Errc::out_of_range);
  CHECK(code_within("{% set ns = namespace(a=[1], b=[1]) %}{% for i in range(100) %}{% set ns.a = [ns.a, ns.a] %}"
                    "{% set ns.b = [ns.b, ns.b] %}{% endfor %}{{ ns.a == ns.b }}",
                    100000) == Errc::out_of_range);
  CHECK(output_of("{% set ns = namespace() %}{% set ns.self = ns %}{{ ns.self.self }}", {}) == "<Namespace>");
  CHECK(code_of("{{ " + std::string(10000, '(') + "1" + std::string(10000, ')') + " }}") == Errc::out_of_range);
  CHECK(code_of("{{ " + std::string(10000, '[') + std::string(10000, ']') + " }}") == Errc::out_of_range);
  CHECK(code_of("{{ " + std::string(20000, '-') + "1 }}") == Errc::out_of_range);
  CHECK(code_of("{{ x" + std::string(10000, '|') + " }}") == Errc::format);
  std::string long_sum = "{{ 1";
  for (int i = 0; i < 100000; ++i) long_sum += " + 1";
  CHECK(code_of(long_sum + " }}") == Errc::out_of_range);
  std::string long_chain = "{{ x";
  for (int i = 0; i < 100000; ++i) long_chain += "|trim";
  CHECK(code_of(long_chain + " }}") == Errc::out_of_range);
  CHECK(code_of("{{ x" + std::string(100000, '.') + " }}") == Errc::format);
  std::string long_attributes = "{{ x";
  for (int i = 0; i < 100000; ++i) long_attributes += ".a";
  CHECK(code_of(long_attributes + " }}") == Errc::out_of_range);
  CHECK(output_of("{{ 1" + std::string(100, '+') + "1 }}", {}) == "2");  // unary pluses, within the limit
  std::string nested_ifs;
  for (int i = 0; i < 10000; ++i) nested_ifs += "{% if true %}";
  CHECK(code_of(nested_ifs) == Errc::out_of_range);
}

TEST_CASE("a parsed template can be copied, moved and rendered many times") {
  auto parsed = ChatTemplate::parse("{% for m in messages %}{{ m.role }}:{{ m.content }};{% endfor %}{{ eos_token }}");
  REQUIRE(parsed.ok());
  RenderOptions options;
  options.eos_token = "</s>";
  ChatTemplate copy = *parsed;
  ChatTemplate moved = std::move(*parsed);
  std::vector<Message> history = kChat;
  CHECK(*copy.render(history, options) == "system:Be brief.;user:Hi;assistant:Hello!;</s>");
  CHECK(*moved.render(history, options) == *copy.render(history, options));
  history.push_back({"user", "again"});
  CHECK(*moved.render(history) == "system:Be brief.;user:Hi;assistant:Hello!;user:again;");
  CHECK(*moved.render({}) == "");
}

TEST_CASE("transformers' globals: tools and documents are none, strftime_now reads the clock") {
  CHECK(output_of("{{ tools is defined }} {{ tools is none }} {{ documents is none }} {{ custom is defined }}", {}) ==
        "True True True False");
  CHECK(output_of("{{ strftime_now('%Y') | length }} {{ strftime_now is defined }}", {}) == "4 True");
  RenderOptions no_prompt;
  no_prompt.add_generation_prompt = false;
  CHECK(output_of("{{ add_generation_prompt }}", {}, no_prompt) == "False");
  CHECK(output_of("{{ add_generation_prompt }}", {}) == "True");
}

TEST_CASE("mutated templates never crash") {
  // Deterministic mutations of the real templates: each must parse and render or fail cleanly.
  const char* names[] = {"smollm2", "chatml",      "llama3",      "llama31", "qwen25",
                         "phi3",    "mistral_v01", "mistral_v03", "gemma3"};
  const std::string alphabet = std::string("{}%#-+()[]'\"|.~,:=! \nxis0\xff\xc3\x80\t") + '\0';
  uint64_t state = 0x9E3779B97F4A7C15ull;
  auto next = [&] {
    state ^= state << 13, state ^= state >> 7, state ^= state << 17;
    return state;
  };
  size_t rendered = 0;
  for (const char* name : names) {
    std::string source;
    REQUIRE(read_file(kDir + name + ".jinja", &source));
    for (int i = 0; i < 300; ++i) {
      std::string mutated = source;
      for (int edits = 1 + static_cast<int>(next() % 3); edits > 0 && !mutated.empty(); --edits) {
        const size_t at = next() % mutated.size();
        switch (next() % 3) {
          case 0: mutated.erase(at, 1 + next() % 4); break;
          case 1: mutated.insert(at, 1, alphabet[next() % alphabet.size()]); break;
          default: mutated[at] = alphabet[next() % alphabet.size()];
        }
      }
      auto r = render(mutated, kChat);
      if (r.ok())
        ++rendered;
      else
        CHECK(!r.error().message().empty());
    }
  }
  CHECK(rendered > 0);
}

TEST_CASE("malformed UTF-8 in messages is carried through, never a crash") {
  const std::vector<Message> messages = {{"user", "\xff\xc3 ab\xe2\x82"}, {"assistant", "\xe2\x82\xac\xf0\x9f"}};
  const std::string tmpl =
      "{% for m in messages %}{{ m.content | trim }}|{{ m.content | length }}|{{ m.content[::-1] }}|"
      "{{ m.content[1:3] }}|{{ m.content.title() }}|{{ m.content.split() }}|{{ m.content | indent(2, true) }}|"
      "{{ m.content | tojson }}|{{ [m.content] }}|{{ m.content | list | length }}|"
      "{{ m.content.strip('\xff') }}{% endfor %}";
  auto r = render(tmpl, messages);
  REQUIRE_MESSAGE(r.ok(), (r.ok() ? std::string() : r.error().message()));
  CHECK(r->find("\xff\xc3 ab\xe2\x82") != std::string::npos);  // content as is
}

TEST_CASE("parse_messages_json reads conversations and rejects malformed ones") {
  auto ok = ember::chat::parse_messages_json(
      R"([{"role": "system", "content": "Be brief."}, {"role": "user", "content": "h\u00e9 \ud83d\ude42\n", "x": 1},
          {"role": "assistant", "content": null}])");
  REQUIRE(ok.ok());
  REQUIRE(ok->size() == 3);
  CHECK((*ok)[0].role == "system");
  CHECK((*ok)[1].content == "hé 🙂\n");
  CHECK((*ok)[2].content.empty());
  CHECK(ember::chat::parse_messages_json("[]")->empty());

  auto error = [](std::string_view text) {
    auto r = ember::chat::parse_messages_json(text);
    REQUIRE_FALSE(r.ok());
    CHECK(r.error().code() == Errc::format);
    return r.error().message();
  };
  CHECK(error(R"({"role": "user"})") == "messages JSON: expected a list of messages");
  CHECK(error(R"(["hi"])") == "messages JSON: message 0 is not an object");
  CHECK(error(R"([{"content": "hi"}])") == "messages JSON: message 0 has no string \"role\"");
  CHECK(error(R"([{"role": "user", "content": "a"}, {"role": "user"}])") ==
        "messages JSON: message 1 has no string \"content\"");
  CHECK(error(R"([{"role": "user", "content": [{"type": "text"}]}])") ==
        "messages JSON: message 0 has no string \"content\"");
  CHECK(error("[{\"role\": \"user\",\n  \"content\": \"a\" ") == "JSON line 2 column 18: expected ',' or '}'");
  CHECK(error(R"([{"role": "user", "content": "bad \q escape"}])") == "JSON line 1 column 35: bad escape '\\q'");
  CHECK(error("[{\"role\": \"user\", \"content\": \"raw\nnewline\"}]") ==
        "JSON line 1 column 34: control character in string");
  CHECK(error("[] []") == "JSON line 1 column 4: unexpected text after the JSON value");
  CHECK(error("") == "JSON line 1 column 1: unexpected end of input");
  CHECK(error("[01]") == "JSON line 1 column 4: leading zero in number");
  CHECK(error(std::string(1000, '[') + std::string(1000, ']')).find("nested too deeply") != std::string::npos);
}
