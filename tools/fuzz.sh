#!/usr/bin/env bash
# Fuzzes the tokenizers for a bounded time: tools/fuzz.sh SECONDS [extra libFuzzer flags]
#
# Builds tests/fuzz/fuzz_tokenizer.cpp with clang-14 and
# -fsanitize=fuzzer,address,undefined (installing clang-14 and
# libclang-rt-14-dev with apt-get when missing; that needs root), then runs it
# for SECONDS over a copy of tests/fuzz/corpus (the committed corpus is never
# written to). Exits non-zero on any crash, sanitizer report, leak or timeout;
# the failing input is left in $FUZZ_OUT/artifacts.
#
# Environment:
#   EMBER_TEST_DATA     shared test data (vocab/*.gguf, stories260K); default ../shared/data
#   EMBER_SMOLLM2_GGUF  SmolLM2's GGUF, fuzzed too when set
#   EMBER_PEER_VOCAB    llama.cpp's vocabulary files (tools/fetch-peer-vocabs.sh): Gemma 4 and
#                       nomic-bert-moe (Unigram) are fuzzed too when set
#   FUZZ_OUT            work folder (binary, corpus copy, artifacts); default build/fuzz
#   FUZZ_JOBS           parallel fuzzing processes (default 1)
set -euo pipefail

if [[ $# -lt 1 || ! "$1" =~ ^[0-9]+$ ]]; then
  echo "usage: $0 SECONDS [libFuzzer flags...]" >&2
  exit 2
fi
seconds=$1
shift

root=$(cd "$(dirname "$0")/.." && pwd)
out=${FUZZ_OUT:-$root/build/fuzz}
export EMBER_TEST_DATA=${EMBER_TEST_DATA:-$root/../shared/data}

# The compiler and the sanitizer runtimes.
cxx=clang++-14
if ! command -v "$cxx" >/dev/null || ! ls /usr/lib/llvm-14/lib/clang/*/lib/linux/libclang_rt.fuzzer-x86_64.a >/dev/null 2>&1; then
  if [[ $(id -u) -ne 0 ]]; then
    echo "fuzz.sh: clang-14 and libclang-rt-14-dev are missing; run as root to install them" >&2
    exit 2
  fi
  echo "fuzz.sh: installing clang-14 libclang-rt-14-dev"
  DEBIAN_FRONTEND=noninteractive apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq clang-14 libclang-rt-14-dev >/dev/null
fi

mkdir -p "$out"
bin=$out/fuzz_tokenizer
echo "fuzz.sh: building $bin"
"$cxx" -std=c++20 -O1 -g -fno-omit-frame-pointer \
  -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=undefined \
  -I"$root/include" -DEMBER_TESTS_DIR="\"$root/tests\"" "$root/tests/fuzz/fuzz_tokenizer.cpp" -o "$bin"

corpus=$out/corpus
artifacts=$out/artifacts
rm -rf "$corpus"
mkdir -p "$corpus" "$artifacts"
cp "$root"/tests/fuzz/corpus/* "$corpus"/

echo "fuzz.sh: fuzzing for ${seconds}s (EMBER_TEST_DATA=$EMBER_TEST_DATA)"
jobs=()
if [[ ${FUZZ_JOBS:-1} -gt 1 ]]; then jobs=(-jobs="$FUZZ_JOBS" -workers="$FUZZ_JOBS"); fi
status=0
ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=0} \
UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1} \
  "$bin" -max_total_time="$seconds" -timeout=60 -rss_limit_mb=4096 -max_len=8192 \
  ${jobs[@]+"${jobs[@]}"} \
  -artifact_prefix="$artifacts/" -print_final_stats=1 "$@" "$corpus" || status=$?

# Slow units (over 10 s, usually the 1 MiB inputs under ASan) are reported, not failures;
# crash-*, leak-*, timeout-* and oom-* files are.
if compgen -G "$artifacts/slow-unit-*" >/dev/null; then
  echo "fuzz.sh: slow inputs (not failures):" $(ls "$artifacts" | grep '^slow-unit-')
fi
if [[ $status -ne 0 ]] || ls "$artifacts" | grep -qv '^slow-unit-'; then
  echo "fuzz.sh: FAILED (exit status $status); inputs in $artifacts:" >&2
  ls -l "$artifacts" >&2 || true
  exit $((status == 0 ? 1 : status))
fi
echo "fuzz.sh: no crash, leak or timeout in ${seconds}s; corpus grew to $(ls "$corpus" | wc -l) inputs"
