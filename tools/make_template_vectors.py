#!/usr/bin/env python3
"""Writes the chat-template test vectors in tests/data/templates/.

The oracle is Python jinja2 set up exactly as Hugging Face transformers renders
chat templates (ImmutableSandboxedEnvironment, trim_blocks, lstrip_blocks,
loopcontrols, its own tojson filter, raise_exception and strftime_now globals,
tools=None and documents=None passed in). ember's interpreter must match it
byte for byte.

Inputs (committed, written by hand): NAME.jinja, each a model's template text.
Outputs:
  templates.json      the templates with the bos/eos tokens their models use
  conversations.json  the conversations every template is rendered with
  NAME.CASE.txt       the rendered prompt, or
  NAME.CASE.raise     the message the template passed to raise_exception, or
  NAME.CASE.fail      jinja2's message for any other error (ember must fail too)
  snippets.json       small templates that pin the interpreter's semantics

Usage: python3 tools/make_template_vectors.py          # (re)write the vectors
       python3 tools/make_template_vectors.py --check  # regenerate in a temp dir, compare
       python3 tools/make_template_vectors.py --smollm2-gguf PATH  # refresh smollm2.jinja
"""

import argparse
import datetime
import filecmp
import json
import os
import shutil
import sys
import tempfile

import jinja2
import jinja2.ext
from jinja2 import nodes
from jinja2.sandbox import ImmutableSandboxedEnvironment

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DATA = os.path.join(ROOT, "tests", "data", "templates")

# name -> the special tokens its model's tokenizer passes to the template.
TEMPLATES = {
    "smollm2": {"bos_token": "<|im_start|>", "eos_token": "<|im_end|>"},
    "chatml": {"bos_token": "<|im_start|>", "eos_token": "<|im_end|>"},
    "llama3": {"bos_token": "<|begin_of_text|>", "eos_token": "<|eot_id|>"},
    "llama31": {"bos_token": "<|begin_of_text|>", "eos_token": "<|eot_id|>"},
    "qwen25": {"bos_token": "", "eos_token": "<|im_end|>"},
    "phi3": {"bos_token": "<s>", "eos_token": "<|endoftext|>"},
    "mistral_v01": {"bos_token": "<s>", "eos_token": "</s>"},
    "mistral_v03": {"bos_token": "<s>", "eos_token": "</s>"},
    "gemma3": {"bos_token": "<bos>", "eos_token": "<eos>"},
}


def msg(role, content):
    return {"role": role, "content": content}


SYSTEM = msg("system", "You are a concise assistant.")
USER1 = msg("user", "What is the capital of France?")
ASSISTANT1 = msg("assistant", "Paris.")
USER2 = msg("user", "And of Italy?")
ASSISTANT2 = msg("assistant", "Rome.")

# (name, add_generation_prompt, messages)
CONVERSATIONS = [
    ("system_user", True, [SYSTEM, USER1]),
    ("system_user_nogen", False, [SYSTEM, USER1]),
    ("multi_turn", True, [USER1, ASSISTANT1, USER2]),
    ("multi_turn_system", False, [SYSTEM, USER1, ASSISTANT1, USER2, ASSISTANT2]),
    ("user_only", True, [USER1]),
    ("user_only_nogen", False, [USER1]),
    ("unicode", True, [
        msg("system", "Réponds en français. 日本語 OK 🙂"),
        msg("user", "  naïve café — ¿qué?\u00a0\n"),
        msg("assistant", "Ça va ✓\u3000"),
        msg("user", "Ελληνικά\u2028𝔘𝔫𝔦"),
    ]),
    ("literal_template_syntax", True, [
        msg("user", "{{x}} {% if y %}z{% endif %} {# c #} {%- raw -%} {{ raise_exception('no') }}"),
        msg("assistant", "}}{{ '\" \\n"),
        msg("user", "{{x}}"),
    ]),
    ("whitespace", False, [
        msg("system", "  padded system  \n"),
        msg("user", "\n\tline one\nline two  "),
        msg("assistant", "  answer\r\n  "),
    ]),
    ("empty_content", True, [msg("user", ""), msg("assistant", ""), msg("user", " ")]),
    ("no_messages", True, []),
    ("two_users", True, [USER1, USER2]),
    ("assistant_first", True, [ASSISTANT1, USER1]),
    ("system_late", True, [USER1, ASSISTANT1, msg("system", "Be brief."), USER2]),
    ("tool_result", True, [
        SYSTEM, USER1, msg("assistant", "Let me check."), msg("tool", '{"capital": "Paris"}'),
    ]),
]


class RaisedByTemplate(jinja2.exceptions.TemplateError):
    """What raise_exception throws, told apart from jinja2's own errors."""


def raise_exception(message):
    raise RaisedByTemplate(message)


def tojson(x, ensure_ascii=False, indent=None, separators=None, sort_keys=False):
    # transformers' replacement for jinja2's HTML-escaping tojson.
    return json.dumps(x, ensure_ascii=ensure_ascii, indent=indent, separators=separators, sort_keys=sort_keys)


def strftime_now(format):
    return datetime.datetime.now().strftime(format)


class AssistantTracker(jinja2.ext.Extension):
    """transformers' {% generation %} tag: it marks assistant text and renders its body unchanged."""

    tags = {"generation"}

    def parse(self, parser):
        lineno = next(parser.stream).lineno
        body = parser.parse_statements(("name:endgeneration",), drop_needle=True)
        return nodes.CallBlock(self.call_method("_render", []), [], [], body).set_lineno(lineno)

    def _render(self, caller):
        return caller()


def environment():
    env = ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True,
                                        extensions=[AssistantTracker, jinja2.ext.loopcontrols])
    env.filters["tojson"] = tojson
    env.globals["raise_exception"] = raise_exception
    env.globals["strftime_now"] = strftime_now
    return env


def render(env, source, messages, add_generation_prompt, tokens):
    """Returns ("output", text), ("raise", message) or ("fail", message)."""
    try:
        template = env.from_string(source)
        return "output", template.render(messages=messages, tools=None, documents=None,
                                         add_generation_prompt=add_generation_prompt, **tokens)
    except RaisedByTemplate as e:
        return "raise", e.message
    except Exception as e:  # any jinja2 or Python error: ember must refuse as well
        return "fail", f"{type(e).__name__}: {e}"


# Small templates that pin down one behaviour each. Rendered with SNIPPET_MESSAGES,
# add_generation_prompt=True, bos "<s>", eos "</s>".
SNIPPET_MESSAGES = [SYSTEM, USER1, ASSISTANT1]
SNIPPET_TOKENS = {"bos_token": "<s>", "eos_token": "</s>"}
SNIPPETS = [
    # literals and printing (Python's str / repr)
    "{{ 1 }} {{ -2 }} {{ 1.5 }} {{ 2.0 }} {{ 1e20 }} {{ 1.5e-7 }} {{ 0.1 + 0.2 }} {{ 1_000 }} {{ 0x1F }}",
    "{{ true }} {{ false }} {{ none }} {{ True }} {{ None }} {{ [] }} {{ {} }}",
    "{{ [1, 'a', none, true, 2.5, \"it's\", 'say \"hi\"', 'both \\' \"'] }}",
    "{{ {'a': 1, 'b': [1, 2], 'c': {'d': none}} }}",
    "{{ 'tab\\there' }}|{{ 'nl\\nx' }}|{{ 'q\\'q' }}|{{ \"\\u00e9\\x41\\\\\" }}|{{ 'unknown \\d escape' }}",
    "{{ ['tab\\t', 'nl\\n', '\\x01', 'é'] }}",
    "{{ (1, 2) }} {{ (1,) }} {{ () }}",
    # arithmetic
    "{{ 1 + 2 }} {{ 7 - 10 }} {{ 3 * 4 }} {{ 1 / 2 }} {{ 4 / 2 }} {{ 7 // 2 }} {{ -7 // 2 }} {{ 7 % 3 }} {{ -7 % 3 }} {{ 2 ** 10 }}",
    "{{ 1.5 + 1 }} {{ 7.5 // 2 }} {{ 7.5 % 2 }} {{ 2 ** -1 }} {{ 2 ** 0.5 }} {{ -(3) }} {{ +3 }} {{ - 2.5 }}",
    "{{ 'ab' + 'cd' }} {{ 'ab' * 3 }} {{ 3 * 'x' }} {{ [1] + [2, 3] }} {{ [0] * 3 }} {{ 'n=' ~ 5 ~ none ~ true ~ undefined_name }}",
    "{{ 1 + 2 * 3 ** 2 }} {{ (1 + 2) * 3 }} {{ 2 ** 3 ** 2 }} {{ 10 - 2 - 3 }} {{ 'a' ~ 1 * 2 }} {{ -2 ** 2 }} {{ not 1 == 2 }}",
    "{{ 'a' ~ 1 + 2 }}",
    "{{ true + 1 }} {{ 3 / 1.5 }} {{ 10 % 2.5 }}",
    # comparisons and logic
    "{{ 1 < 2 }} {{ 2 <= 1 }} {{ 'a' < 'b' }} {{ 1 == 1.0 }} {{ 1 != 2 }} {{ 1 < 2 < 3 }} {{ 3 > 2 > 2 }} {{ true == 1 }}",
    "{{ [1, 2] == [1, 2] }} {{ {'a': 1} == {'a': 1} }} {{ 'a' == 'a' }} {{ none == none }} {{ undefined_name == none }} {{ 'x' == 1 }}",
    "{{ 1 and 'x' }}|{{ 0 and 'x' }}|{{ '' or 'fallback' }}|{{ 'first' or 'second' }}|{{ not 0 }}|{{ not 'a' }}|{{ none or [] }}",
    "{{ 'ell' in 'hello' }} {{ 'z' not in 'hello' }} {{ 2 in [1, 2] }} {{ 'role' in messages[0] }} {{ 'x' in messages[0] }} {{ not 'a' in 'abc' }}",
    "{{ 'yes' if messages else 'no' }} {{ 'yes' if [] else 'no' }} {{ 'a' if false }}|{{ 1 if true else 2 if true else 3 }}",
    # variables, attributes, subscripts, slices
    "{{ messages[0].role }} {{ messages[0]['content'] }} {{ messages[-1].role }} {{ messages | length }}",
    "{{ messages[5] }}|{{ messages[0].missing }}|{{ messages[0]['missing'] is defined }}|{{ undefined_name }}|{{ bos_token }}{{ eos_token }}",
    "{% for m in messages[1:] %}{{ m.role }},{% endfor %} {% for m in messages[:-1] %}{{ m.role }},{% endfor %} {% for m in messages[::-1] %}{{ m.role }},{% endfor %}",
    "{{ 'hello'[1:3] }} {{ 'hello'[::-1] }} {{ 'hello'[-3:] }} {{ 'hello'[1] }} {{ 'hello'[10:] }}|{{ [1,2,3,4,5][1::2] }} {{ [1,2,3][5:1:-1] }}",
    "{{ 'héllo wörld'[1:4] }} {{ 'héllo'|length }} {{ '日本語'[1] }} {{ '🙂x'[1:] }}",
    "{{ {'a': {'b': 'deep'}}.a.b }} {{ {'a': 1}['a'] }} {{ messages.0.role }}",
    # tests
    "{{ x is defined }} {{ messages is defined }} {{ x is undefined }} {{ none is none }} {{ 1 is not none }} {{ 'a' is string }} {{ 1 is string }}",
    "{{ {} is mapping }} {{ [] is mapping }} {{ 'a' is iterable }} {{ [] is iterable }} {{ 1 is iterable }} {{ 1 is number }} {{ 1.5 is number }} {{ true is number }}",
    "{{ 3 is odd }} {{ 3 is even }} {{ 9 is divisibleby 3 }} {{ 9 is divisibleby(2) }} {{ 1 is integer }} {{ 1.0 is float }} {{ true is boolean }} {{ 'a' is sequence }} {{ {} is sequence }}",
    "{{ 'abc' is lower }} {{ 'ABC' is upper }} {{ 1 is eq 1 }} {{ 1 is equalto 2 }} {{ 2 is in [1, 2] }} {{ true is true }} {{ 0 is false }} {{ x is not defined }}",
    # filters
    "{{ '  pad  ' | trim }}|{{ 'xxhixx' | trim('x') }}|{{ '\\u00a0 nbsp \\u3000' | trim }}|{{ 'Hello' | upper }}|{{ 'Hello' | lower }}|{{ 'hello world' | capitalize }}",
    "{{ 'hello wORLD-foo bar_baz' | title }}|{{ \"they're o'neil\" | title }}|{{ 'x' | string }}{{ 1 | string }}{{ none | string }}{{ [1] | string }}",
    "{{ [1, 2, 3] | length }} {{ 'abc' | count }} {{ {'a': 1} | length }} {{ undefined_name | length }} {{ [1, 2, 3] | first }} {{ [1, 2, 3] | last }} {{ 'abc' | first }} {{ 'abc' | last }}",
    "{{ [1, 2, 3] | join }}|{{ [1, 'a', none] | join(', ') }}|{{ 'abc' | join('-') }}|{{ messages | map(attribute='role') | join('/') }}",
    "{{ undefined_name | default('dflt') }}|{{ '' | default('dflt') }}|{{ '' | default('dflt', true) }}|{{ none | default('dflt') }}|{{ 0 | d('zero', boolean=true) }}",
    "{{ {'b': 1, 'a': [1, 2]} | tojson }}|{{ 'é\"\\\\\\n\\t\\x01' | tojson }}|{{ [1.5, 2.0, none, true, 1e100] | tojson }}|{{ messages[0] | tojson(indent=2) }}",
    "{{ {'b': 1, 'a': {'c': [1, {}], 'd': []}} | tojson(indent=4) }}|{{ {'b': 1, 'a': 2} | tojson(sort_keys=true) }}|{{ [1, 2] | tojson(separators=(',', ':')) }}",
    "{{ 'line1\\nline2\\n\\nline4' | indent }}|{{ 'a\\nb' | indent(2, true) }}|{{ 'a\\n\\nb\\n' | indent(width=3, blank=true) }}|{{ 'a\\nb' | indent('> ') }}",
    "{% for k, v in {'x': 1, 'y': 2} | items %}{{ k }}={{ v }};{% endfor %} {% for k, v in {'x': 1}.items() %}{{ k }}:{{ v }}{% endfor %} {{ {'a': 1}.keys() | list }} {{ {'a': 1}.values() | list }}",
    "{{ messages | selectattr('role', 'equalto', 'user') | list | length }} {{ messages | rejectattr('role', 'eq', 'user') | map(attribute='role') | join(',') }} {{ messages | selectattr('missing') | list }}",
    "{{ [1, 2, 3, 4] | select('odd') | list }} {{ [1, 2, 3, 4] | reject('even') | list }} {{ ['a', 'b'] | reject('equalto', 'a') | list }} {{ [0, 1, ''] | select | list }}",
    "{{ 'abc' | list }} {{ [3, 1, 2] | sort | list }} {{ [3, 1, 2] | reverse | list }} {{ 'abc' | reverse }} {{ [1, 1, 2] | unique | list }} {{ 'a,b' | replace(',', ';') }}",
    "{{ '42' | int + 1 }} {{ '3.5' | float }} {{ 'x' | int }} {{ -3 | abs }} {{ 3.7 | int }} {{ 2.5 | round }} {{ 2.567 | round(2) }} {{ '1e3' | float }}",
    "{{ 1250|round(-2) }} {{ 1350|round(-2) }} {{ -1250|round(-2) }} {{ -1351|round(-2) }} {{ 67|round(2) }} {{ 67|round(1, 'ceil') }} {{ 1e300|round(2) }} {{ 0.125|round(2) }} {{ 0.375|round(2) }}",
    "{{ 'ff'|int(0, 16) }} {{ ' 12 '|int }} {{ '1_000'|int }} {{ '-5'|int }} {{ '_5'|int }} {{ '1__0'|int }} {{ '1_0.5'|float }} {{ '-inf'|float }} {{ ' 1e3 '|float }} {{ '1.5'|int }} {{ 'x'|float(3) }}",
    "{{ '<a href=\"x\">&\\'</a>' | e }} {{ 'x' | escape }}",
    "{{ ['a', 'b'] | map('upper') | join }} {{ messages | map(attribute='role') | first }} {{ 'x' | safe }} {{ [1, 2, 3] | sum }} {{ [3, 1] | min }} {{ [3, 1] | max }}",
    # string methods
    "{{ '  x  '.strip() }}|{{ '  x  '.lstrip() }}|{{ '  x  '.rstrip() }}|{{ 'xxaxx'.strip('x') }}|{{ 'abc'.startswith('ab') }}|{{ 'abc'.endswith('bc') }}|{{ 'abc'.startswith(('x', 'a')) }}",
    "{{ 'a b  c'.split() }} {{ 'a,b,,c'.split(',') }} {{ 'a,b,c'.split(',', 1) }} {{ '  lead'.split(' ') }} {{ ''.split() }} {{ ''.split(',') }}",
    "{{ 'Hello'.upper() }} {{ 'Hello'.lower() }} {{ 'hello world'.title() }} {{ \"they're\".title() }} {{ 'aXb'.replace('X', '--') }} {{ 'aaa'.replace('a', 'b', 2) }} {{ 'hello'.capitalize() }}",
    "{{ 'a-b'.find('-') }} {{ 'abcb'.count('b') }} {{ 'x'.isdigit() }} {{ '12'.isdigit() }} {{ ', '.join(['a', 'b']) }}",
    "{{ {'a': 1}.get('a') }} {{ {'a': 1}.get('b') }} {{ {'a': 1}.get('b', 'dflt') }} {{ messages[0].get('role') }}",
    # loops
    "{% for m in messages %}{{ loop.index }}/{{ loop.index0 }}/{{ loop.revindex }}/{{ loop.revindex0 }}/{{ loop.first }}/{{ loop.last }}/{{ loop.length }};{% endfor %}",
    "{% for m in messages %}[{{ loop.previtem.role if loop.previtem is defined else '-' }}>{{ loop.nextitem.role if loop.nextitem is defined else '-' }}]{% endfor %}",
    "{% for m in messages if m.role != 'system' %}{{ loop.index }}:{{ m.role }}/{{ loop.length }} {% endfor %}",
    "{% for x in [] %}never{% else %}empty{% endfor %} {% for x in [1] %}{{ x }}{% else %}not shown{% endfor %}",
    "{% for x in [1, 2, 3, 4] %}{% if x == 2 %}{% continue %}{% endif %}{% if x == 4 %}{% break %}{% endif %}{{ x }}{% endfor %}",
    "{% for row in [[1, 2], [3]] %}{% for x in row %}{{ loop.index }}{{ x }}{% endfor %}|{{ loop.index }};{% endfor %}",
    "{% for a, b in [[1, 2], [3, 4]] %}{{ a }}{{ b }} {% endfor %}{% for c in 'hé' %}{{ c }}.{% endfor %}{% for k in {'x': 1, 'y': 2} %}{{ k }}{% endfor %}",
    "{% for i in range(3) %}{{ i }}{% endfor %} {% for i in range(1, 7, 2) %}{{ i }}{% endfor %} {{ range(5, 0, -2) | list }}",
    "{% for m in messages %}{{ loop.cycle('odd', 'even') }} {{ loop }} {% endfor %}",
    "{% for x in [1]: %}{{ x }}{% else: %}{% endfor %}{% if true: %}y{% elif false: %}{% else: %}{% endif %}",
    # set, scoping, namespace
    "{% set x = 1 %}{% for i in [1, 2] %}{{ x }}{% set x = i + 5 %}{{ x }}{% endfor %}{{ x }}",
    "{% if true %}{% set y = 'leaks out of if' %}{% endif %}{{ y }}",
    "{% for i in [1, 2] %}{% if i == 2 %}[{{ z }}]{% endif %}{% set z = i %}{% endfor %}[{{ z }}]",
    "{% set ns = namespace(count=0, names=[]) %}{% for m in messages %}{% set ns.count = ns.count + 1 %}{% endfor %}{{ ns.count }} {{ ns.names }} {{ ns.missing is defined }}",
    "{% set a, b = 1, 2 %}{{ a }}{{ b }} {% set c = [1, 2] %}{{ c }}",
    "{% set block_value %}captured {{ messages | length }}{% set inner = 1 %}{% endset %}[{{ block_value }}][{{ inner }}]",
    "{% for a in [] %}{% else %}{% set z = 2 %}{% endfor %}[{{ z }}] {% set a = 5 %}{% for a in [1] %}{% endfor %}[{{ a }}] {% set loop = 3 %}{% for a in [1] %}{{ loop.index }}{% endfor %}{{ loop }}",
    "{% set messages = messages[1:] %}{{ messages | length }} {{ messages[0].role }}",
    "{{ [1, undefined_name] }} {{ (undefined_name,) }} {{ {'k': undefined_name} }} {{ messages[1, 2] }}|{{ 'hello'[] }}|",
    # filters ember lacks are fine in branches not taken, as in jinja2
    "{% if false %}{{ x | no_such_filter }}{% elif false and x is no_such_test %}{% endif %}ok {{ 1 if true else x | no_such_filter }}",
    "{% if true %}{{ x | no_such_filter }}{% endif %}",
    # whitespace control: trim_blocks, lstrip_blocks, -, +
    "A\n  {% if true %}\n  B\n  {% endif %}\nC\n",
    "A\n  {%- if true -%}\n  B\n  {%- endif %}\nC",
    "A  {% if true %}B{% endif %}  C\n  {{ 'var' }}  \n",
    "A\n    {%+ if true %}B{% endif %}\n   {# comment #}\nC {#- trim left #}  D {# trim right -#}   E\n",
    "{% raw %}{{ not evaluated }}{% endraw %} {%- raw -%}  x {% if %}  {%- endraw %} after",
    "line1\r\nline2\rline3\n{{ 'last' }}\n",
    "{{- ' a ' -}}   {{ 'b' }}\n\n{{- 'c' }}\t{%- if true %} d {% endif -%}\n\n e",
    "{# only a comment #}",
    "{{ '}}' }} {{ {'k': '}}'}['k'] }} {{ \"{%\" }}",
    "{% generation %}inside generation{% endgeneration %}",
    # errors the template raises itself
    "{{ raise_exception('Custom failure: ' + messages[0].role) }}",
    "before {% if messages | length > 2 %}{{ raise_exception('too many') }}{% endif %}",
    # errors jinja2 reports: ember must refuse too
    "{{ undefined_name.attribute }}",
    "{{ 'a' + 1 }}",
    "{{ 1 / 0 }}",
    "{{ messages[0].role.missing.deeper }}",
    "{% for m in messages %}unclosed",
    "{% if true %}x{% endfor %}",
    "{% endfor %}",
    "{{ 'unterminated }}",
    "{{ 1 + }}",
    "{{ messages | no_such_filter }}",
    "{{ x is no_such_test }}",
    "{% no_such_tag %}",
    "{{ 1 }",
    "{% if true %}x",
]


def render_snippet(env, source):
    kind, text = render(env, source, SNIPPET_MESSAGES, True, SNIPPET_TOKENS)
    return {"template": source, kind: text}


def write(path, text):
    with open(path, "w", encoding="utf-8", newline="") as f:
        f.write(text)


def generate(out_dir):
    env = environment()
    os.makedirs(out_dir, exist_ok=True)
    manifest = [{"name": name, **tokens} for name, tokens in TEMPLATES.items()]
    write(os.path.join(out_dir, "templates.json"), json.dumps({"templates": manifest}, ensure_ascii=False, indent=1) + "\n")
    cases = [{"name": n, "add_generation_prompt": g, "messages": m} for n, g, m in CONVERSATIONS]
    write(os.path.join(out_dir, "conversations.json"), json.dumps({"cases": cases}, ensure_ascii=False, indent=1) + "\n")
    counts = {"output": 0, "raise": 0, "fail": 0}
    for name, tokens in TEMPLATES.items():
        with open(os.path.join(DATA, name + ".jinja"), encoding="utf-8", newline="") as f:
            source = f.read()
        for case, add_generation_prompt, messages in CONVERSATIONS:
            kind, text = render(env, source, messages, add_generation_prompt, tokens)
            suffix = {"output": "txt", "raise": "raise", "fail": "fail"}[kind]
            write(os.path.join(out_dir, f"{name}.{case}.{suffix}"), text)
            counts[kind] += 1
    snippets = {"messages": SNIPPET_MESSAGES, "add_generation_prompt": True, **SNIPPET_TOKENS,
                "snippets": [render_snippet(env, s) for s in SNIPPETS]}
    write(os.path.join(out_dir, "snippets.json"), json.dumps(snippets, ensure_ascii=False, indent=1) + "\n")
    return counts, len(snippets["snippets"])


def generated_names(directory):
    return sorted(f for f in os.listdir(directory) if not f.endswith(".jinja"))


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--check", action="store_true", help="regenerate into a temp dir and compare")
    parser.add_argument("--smollm2-gguf", help="copy tokenizer.chat_template from this GGUF into smollm2.jinja")
    args = parser.parse_args()

    if args.smollm2_gguf:
        import gguf  # only needed for this step
        reader = gguf.GGUFReader(args.smollm2_gguf)
        write(os.path.join(DATA, "smollm2.jinja"), reader.fields["tokenizer.chat_template"].contents())

    if args.check:
        with tempfile.TemporaryDirectory() as tmp:
            generate(tmp)
            expected, present = generated_names(tmp), generated_names(DATA)
            bad = sorted(set(expected) ^ set(present))
            bad += [f for f in expected if f in present and not filecmp.cmp(os.path.join(tmp, f), os.path.join(DATA, f), shallow=False)]
            if bad:
                print("out of date: " + ", ".join(bad), file=sys.stderr)
                return 1
            print(f"{len(expected)} vector files up to date (jinja2 {jinja2.__version__})")
            return 0

    for f in generated_names(DATA):
        os.remove(os.path.join(DATA, f))
    counts, n_snippets = generate(DATA)
    print(f"wrote {counts['output']} outputs, {counts['raise']} raise, {counts['fail']} fail vectors "
          f"and {n_snippets} snippets (jinja2 {jinja2.__version__})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
