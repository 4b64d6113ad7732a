#!/usr/bin/env bash
# The TinyLlama-1.1B-shaped benchmark, ember against llama.cpp on the same files (issue #3).
#   bash bench/tinyllama.sh [THREADS]      (default 2)
# Builds ember's bench tools and ember-cli, writes TinyLlama-shaped models with random weights
# in Q4_0 and Q8_0 with ember's own writer and quantizer (.cache/bench/, about 1.8 GB), measures
# this machine's read bandwidth, then runs both engines alternately (best of 3): pp64, tg64,
# pp512 and tg64 after it. The peer is llama.cpp through llama-cpp-python 0.3.36, built from its
# PyPI source distribution with the flags of ../shared/design/MODELS.md if it is not installed.
# Not done yet: Q4_K_M (ember has no Q4_K quantizer), tg64 after 4096 tokens, peak RSS, TTFT.
set -euo pipefail
cd "$(dirname "$0")/.."
threads=${1:-2}
if ! python3 -c "import llama_cpp" 2>/dev/null; then
  CMAKE_ARGS="-DGGML_NATIVE=OFF -DGGML_AVX2=ON -DGGML_FMA=ON -DGGML_F16C=ON -DGGML_AVX512=ON -DGGML_AVX512_VNNI=ON \
-DGGML_AVX512_VBMI=ON -DGGML_AVX512_BF16=ON" python3 -m pip install --no-binary :all: llama-cpp-python==0.3.36
fi
cmake -S . -B build/bench -G Ninja -DCMAKE_BUILD_TYPE=Release -DEMBER_BUILD_BENCH=ON -DEMBER_BUILD_TESTS=OFF >/dev/null
cmake --build build/bench --target make_tinyllama membw ember-cli
mkdir -p .cache/bench
for q in Q4_0 Q8_0; do
  f=.cache/bench/tinyllama-$q.gguf
  [ -f "$f" ] || build/bench/bench/make_tinyllama "$f" "$q"
done
bw=$(build/bench/bench/membw "$threads")
echo "read bandwidth, $threads threads: $bw GB/s"
for q in Q4_0 Q8_0; do
  for p in 64 512; do
    echo "### $q, $threads threads"
    python3 bench/decode_vs_llamacpp.py --ember build/bench/examples/ember-cli -m .cache/bench/tinyllama-$q.gguf \
      -t "$threads" -p "$p" -n 64 --bandwidth "$bw"
  done
done
