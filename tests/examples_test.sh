#!/usr/bin/env bash
# examples/chat and examples/npc on SmolLM2-135M-Instruct (EMBER_SMOLLM2_GGUF), as outside
# checks use them. Usage: examples_test.sh CHAT NPC
set -uo pipefail
chat=$1 npc=$2
model=${EMBER_SMOLLM2_GGUF:-}
fails=0
check() { if eval "$2"; then echo "ok   $1"; else echo "FAIL $1"; fails=$((fails + 1)); fi; }
if [ -z "$model" ] || [ ! -f "$model" ]; then
  echo "EMBER_SMOLLM2_GGUF is not set to a file"; [ "${EMBER_REQUIRE_TEST_DATA:-0}" = 1 ] && exit 1; exit 77
fi
tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT

# chat: answers streamed to stdout, one per line of input, history kept between turns.
printf 'What is the capital of France?\n' | "$chat" -m "$model" > "$tmp/c1.out" 2> "$tmp/c1.err"
check "chat answers a question" 'grep -q "Paris" "$tmp/c1.out"'
check "chat shows load progress on stderr" 'grep -q "loading .*100%" "$tmp/c1.err"'
printf 'My name is Ada.\nWhat is my name?\n' | "$chat" -m "$model" > "$tmp/c2.out" 2> "$tmp/c2.err"
# After each answer stderr says "[context N/CTX: +P prompt tokens, +G generated]": the second
# turn decodes only its own text, on top of the first turn's tokens (N2 = N1 + P2 + G2).
check "chat keeps the history in the session between turns" 'python3 - "$tmp/c2.err" <<"PY"
import re, sys
t = [tuple(map(int, m)) for m in re.findall(r"\[context (\d+)/\d+: \+(\d+) prompt tokens, \+(\d+) generated\]", open(sys.argv[1]).read())]
assert len(t) == 2, t
(n1, p1, g1), (n2, p2, g2) = t
assert n1 == p1 + g1 and n2 == n1 + p2 + g2 and p2 < n1, t
PY'
# A 160-token context fills after two or three turns; the conversation goes on.
for i in 1 2 3 4 5 6; do echo "Tell me a short fact about the number $i."; done > "$tmp/many.txt"
"$chat" -m "$model" -c 160 -n 40 < "$tmp/many.txt" > "$tmp/c3.out" 2> "$tmp/c3.err"
check "chat shifts the context when full and keeps answering" '[ $? -eq 0 ] && [ "$(grep -c . "$tmp/c3.out")" -ge 6 ] && ! grep -q "chat:" "$tmp/c3.err" && python3 - "$tmp/c3.err" <<"PY"
import re, sys
n = [int(x) for x in re.findall(r"\[context (\d+)/160:", open(sys.argv[1]).read())]
assert len(n) == 6 and max(n) <= 160 and any(b < a for a, b in zip(n, n[1:])), n  # it shrank: a shift
PY'
"$chat" -m "$tmp/missing.gguf" < /dev/null > /dev/null 2> "$tmp/bad.err"
check "chat: a missing model is a one-line error and a non-zero exit" '[ $? -ne 0 ] && [ "$(wc -l < "$tmp/bad.err")" -eq 1 ]'

# npc: the same transcript for the same seed, whatever the threads and the frame budget.
run_npc() { "$npc" -m "$model" --frames 120 --line-every 60 "$@"; }
run_npc --seed 3 -t 1 > "$tmp/n1.out" 2> "$tmp/n1.err"
run_npc --seed 3 -t 2 > "$tmp/n2.out" 2> "$tmp/n2.err"
run_npc --seed 3 -t 2 --budget-ms 0.5 > "$tmp/n3.out" 2> /dev/null
run_npc --seed 4 -t 2 > "$tmp/n4.out" 2> /dev/null
check "npc: two traveler lines, four answers each" '[ "$(grep -c "^Traveler: " "$tmp/n1.out")" = 2 ] && [ "$(grep -c -v "^Traveler: " "$tmp/n1.out")" = 8 ]'
check "npc: same seed, 1 and 2 threads: same transcript" 'cmp -s "$tmp/n1.out" "$tmp/n2.out"'
check "npc: same seed, another frame budget: same transcript" 'cmp -s "$tmp/n2.out" "$tmp/n3.out"'
check "npc: another seed: another transcript" '! cmp -s "$tmp/n2.out" "$tmp/n4.out"'
check "npc: frame statistics on stderr" 'grep -q "worst" "$tmp/n1.err" && grep -q "worst" "$tmp/n2.err"'
cat "$tmp/n2.out" "$tmp/n2.err"
exit $((fails > 0))
