#!/usr/bin/env bash
# The whole test suite, as CI runs it (.ci/run calls exactly this). Installs what it needs
# (Debian packages, the default model from PyPI, llama.cpp's vocabulary files from PyPI),
# then: format check; the optimized build (Meson) and every test; the CMake install and an
# out-of-tree find_package consumer; ember-cli and examples/chat built with -fno-exceptions
# -fno-rtti; the kernel tests built with -march=native; ThreadSanitizer on the multi-threaded
# session tests; every test again under AddressSanitizer+UBSan (CMake, ctest); 60 s of the
# tokenizer fuzzer.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD
step() { printf '\n== %s (%s)\n' "$1" "$(date +%T)"; }

step "dependencies"
bash tools/deps.sh
export EMBER_SMOLLM2_GGUF=${EMBER_SMOLLM2_GGUF:-$(bash tools/fetch-model.sh)}
export EMBER_TEST_DATA=${EMBER_TEST_DATA:-$(cd "$root/../shared/data" 2>/dev/null && pwd || true)}
# llama.cpp's own vocabulary files and their vectors (the llama-cpp-python sdist, cached in .cache/).
export EMBER_PEER_VOCAB=${EMBER_PEER_VOCAB:-$(bash tools/fetch-peer-vocabs.sh)}
export EMBER_REQUIRE_TEST_DATA=1  # a test whose data is missing fails instead of skipping
jobs=$(nproc)

step "clang-format"
files=$(git ls-files '*.hpp' '*.cpp' | grep -v '^include/ember/tokenizer/unicode_tables.hpp$')
clang-format --dry-run -Werror $files

step "optimized build (Meson) and every test"
meson setup build/meson --buildtype=release --wipe >/dev/null 2>&1 || meson setup build/meson --buildtype=release >/dev/null
meson compile -C build/meson -j "$jobs"
meson test -C build/meson --print-errorlogs

# CMake builds the tests and examples in the sanitizer stage below; here only what it installs.
step "CMake: install, and an out-of-tree find_package consumer"
cmake -S . -B build/release -G Ninja -DCMAKE_BUILD_TYPE=Release -DEMBER_BUILD_TESTS=OFF -DEMBER_BUILD_EXAMPLES=OFF >/dev/null
cmake --build build/release -j "$jobs"
cmake --install build/release --prefix build/prefix >/dev/null
cmake -S tests/consumer -B build/consumer -G Ninja -DCMAKE_PREFIX_PATH="$root/build/prefix" >/dev/null
cmake --build build/consumer
build/consumer/consumer "$EMBER_TEST_DATA/stories260K/stories260K.gguf"

step "ember-cli and examples/chat built with -fno-exceptions -fno-rtti"
mkdir -p build/noexcept
for example in ember-cli chat; do
  c++ -std=c++20 -O2 -fno-exceptions -fno-rtti -Iinclude $(pkg-config --cflags xsimd) \
    examples/$example/main.cpp -o build/noexcept/$example -lhwy &
done
wait
build/noexcept/ember-cli generate -m "$EMBER_TEST_DATA/stories260K/stories260K.gguf" -n 200 --temp 0 > build/noexcept/out.txt
cmp build/noexcept/out.txt "$EMBER_TEST_DATA/stories260K/greedy-200.txt"
printf 'What is the capital of France?\n' | build/noexcept/chat -m "$EMBER_SMOLLM2_GGUF" 2>/dev/null | tee build/noexcept/chat.txt
grep -q Paris build/noexcept/chat.txt

step "kernel tests built for this CPU (-march=native): Xsimd's AVX2 / AVX-512 archs, Highway from its baseline"
# The other builds use the distribution's baseline flags, where Xsimd<> is SSE2 and its
# wider archs are not compiled: this build runs every kernel test on each arch the CPU has.
mkdir -p build/native
c++ -std=c++20 -O2 -march=native -Iinclude $(pkg-config --cflags xsimd) \
  -DEMBER_TESTS_DIR="\"$root/tests\"" -DEMBER_DEFAULT_TEST_DATA="\"$root/../shared/data\"" \
  tests/main.cpp tests/test_kernels.cpp -o build/native/kernel_tests -lhwy
build/native/kernel_tests -tc="kernels*"

step "ThreadSanitizer: many Sessions (and their pools) on one Model, cancellation from another thread"
mkdir -p build/tsan
c++ -std=c++20 -O1 -g -fsanitize=thread -Iinclude $(pkg-config --cflags xsimd) \
  -DEMBER_TESTS_DIR="\"$root/tests\"" -DEMBER_DEFAULT_TEST_DATA="\"$root/../shared/data\"" \
  tests/main.cpp tests/test_session.cpp -o build/tsan/session_tests -lhwy
TSAN_OPTIONS="halt_on_error=1 second_deadlock_stack=1" build/tsan/session_tests -tc="threads*,cancel: returns*"

step "tests under AddressSanitizer + UBSan"
# To keep this stage short: Highway's AVX3 target is left out (AVX3_DL runs the same int8
# source, AVX2 the 256-bit copy; 0x200f001900 is highway_impl.hpp's default list plus
# HWY_AVX3), chat and npc run in the optimized stage only (each example is one more Highway
# translation unit to compile with sanitizers), and so do the four SmolLM2 tests that run a
# real 135M model for minutes under ASan — the same code paths run here on synthesized models.
# amx_emulated (a second Highway translation unit) runs in the optimized stage only.
cmake -S . -B build/asan -G Ninja -DCMAKE_BUILD_TYPE=Debug -DEMBER_BUILD_EXAMPLES=ON \
  -DCMAKE_CXX_FLAGS="-O1 -g1 -fsanitize=address,undefined -fno-sanitize-recover=all -fno-omit-frame-pointer \
-DHWY_DISABLED_TARGETS=0x200f001900" >/dev/null
cmake --build build/asan -j "$jobs" --target ember_tests ember-cli
(cd build/asan && ctest --output-on-failure -j "$jobs" -E '^examples$|^SmolLM2: |^cancel: lands|^amx_emulated$')

step "fuzzer: 60 s of libFuzzer over the committed corpus (fails on a crash, leak or timeout)"
FUZZ_OUT=$root/build/fuzz bash tools/fuzz.sh 60

