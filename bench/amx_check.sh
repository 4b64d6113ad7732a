#!/bin/bash
# AMX on a machine that has it (this project's own has none): the tile kernels' bits against
# the VNNI kernels', their speed, and pp512 with AMX on and off against llama-bench, 2 threads.
# Built here, run there: the other machine may lack compilers, libhwy and the network.
#
#   bash bench/amx_check.sh pack DIR   # copies the binaries and the shared libraries they need
#   bash DIR/amx_check.sh run DIR      # on the AMX machine (from any directory)
#
# pack expects build/dev (tests) and build/bench (ember-cli, make_tinyllama, kquant_bench; see
# README's benchmark section) built, and llama-bench at .cache/bench/peer/build/bin (bench/
# build_llama_bench.sh). run synthesizes the Q4_0, Q8_0 and Q4_K_M TinyLlama-shaped models in /tmp
# (10-20 s each), so DIR stays small (about 26 MiB). About 3 minutes in all.
set -euo pipefail
mode=${1:?pack or run}
dir=${2:?directory}

if [ "$mode" = pack ]; then
  mkdir -p "$dir/lib"
  cp build/dev/tests/ember_tests build/bench/examples/ember-cli build/bench/bench/make_tinyllama \
    build/bench/bench/kquant_bench .cache/bench/peer/build/bin/llama-bench bench/amx_check.sh "$dir/"
  for bin in "$dir"/ember_tests "$dir"/ember-cli "$dir"/llama-bench; do
    ldd "$bin" | awk '/=> \// {print $3}' | grep -E 'libhwy|libgomp|libssl|libcrypto' || true
  done | sort -u | xargs -r cp -L -t "$dir/lib/"
  du -sh "$dir"
  exit 0
fi

[ "$mode" = run ] || { echo "mode: pack or run" >&2; exit 2; }
set +e +o pipefail  # a failing step is reported in its output; the others still run
D=$(cd "$dir" && pwd)
export LD_LIBRARY_PATH=$D/lib
start=$(date +%s)
stamp() { echo "== $1 [$(($(date +%s) - start)) s]"; }
lscpu | grep -E "Model name|^CPU\(s\)|L2|L3" || true
{ grep -o 'amx_[a-z0-9]*' /proc/cpuinfo || echo 'no amx flags'; } | sort -u | tr '\n' ' '
echo
M=/tmp/ember-amx
mkdir -p $M
("$D/make_tinyllama" $M/q4.gguf Q4_0 >/dev/null && "$D/make_tinyllama" $M/q8.gguf Q8_0 >/dev/null &&
  "$D/make_tinyllama" $M/q4km.gguf Q4_K_M >/dev/null) &
models=$!
stamp "kernel tests"
"$D/ember_tests" -tc="kernels*" 2>&1 | grep -E "AMX|test cases|assertions|Status|ERROR|FAILED" | head -20
wait $models
stamp "kquant_bench, one thread, AMX on then off"
"$D/kquant_bench" --packed --no-ref --tok=16,64 --seconds=0.3 Q4_0 Q8_0 Q4_K
"$D/kquant_bench" --packed --no-ref --no-amx --tok=16,64 --seconds=0.3 Q4_0 Q8_0 Q4_K
prompt="The quick brown fox jumps over the lazy dog while the cat sleeps by the warm fire and the rain falls"
prompt="$prompt on the old roof of the house"
for q in q4 q8 q4km; do
  stamp "logits $q, AMX on and off"
  "$D/ember-cli" logits -m $M/$q.gguf -p "$prompt" --top 3 >$M/$q.amx 2>/dev/null
  EMBER_DISABLE=amx "$D/ember-cli" logits -m $M/$q.gguf -p "$prompt" --top 3 >$M/$q.vnni 2>/dev/null
  if cmp -s $M/$q.amx $M/$q.vnni; then echo "logits $q: byte-identical"; else echo "logits $q: DIFFER"; fi
  for round in 1 2; do
    stamp "ember pp512 $q round $round: AMX, then EMBER_DISABLE=amx"
    "$D/ember-cli" bench -m $M/$q.gguf -p 512 -n 16 -t 2 --json 2>/dev/null | tail -1
    EMBER_DISABLE=amx "$D/ember-cli" bench -m $M/$q.gguf -p 512 -n 16 -t 2 --json 2>/dev/null | tail -1
  done
  stamp "llama-bench $q"
  "$D/llama-bench" -m $M/$q.gguf -t 2 -p 64,512 -n 0 -r 2 2>&1 | grep -E "^\|"
done
stamp end
