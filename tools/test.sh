#!/usr/bin/env bash
# The whole test suite, as CI runs it (.ci/run calls exactly this). Installs what it needs
# (Debian packages, the default model from PyPI), then: format check, Meson build and tests,
# the find_package consumer, a -fno-exceptions -fno-rtti build of ember-cli, the tests under
# AddressSanitizer+UBSan, and last the optimized build's tests through ctest.
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

step "Meson: build and test"
meson setup build/meson --buildtype=release --wipe >/dev/null 2>&1 || meson setup build/meson --buildtype=release >/dev/null
meson compile -C build/meson -j "$jobs"
meson test -C build/meson --print-errorlogs

step "CMake: release build, install, and an out-of-tree find_package consumer"
cmake -S . -B build/release -G Ninja -DCMAKE_BUILD_TYPE=Release -DEMBER_BUILD_TESTS=ON >/dev/null
cmake --build build/release -j "$jobs"
cmake --install build/release --prefix build/prefix >/dev/null
cmake -S tests/consumer -B build/consumer -G Ninja -DCMAKE_PREFIX_PATH="$root/build/prefix" >/dev/null
cmake --build build/consumer
build/consumer/consumer "$EMBER_TEST_DATA/stories260K/stories260K.gguf"

step "ember-cli built with -fno-exceptions -fno-rtti"
mkdir -p build/noexcept
c++ -std=c++20 -O2 -fno-exceptions -fno-rtti -Iinclude $(pkg-config --cflags xsimd) \
  examples/ember-cli/main.cpp -o build/noexcept/ember-cli -lhwy
build/noexcept/ember-cli generate -m "$EMBER_TEST_DATA/stories260K/stories260K.gguf" -n 200 --temp 0 > build/noexcept/out.txt
cmp build/noexcept/out.txt "$EMBER_TEST_DATA/stories260K/greedy-200.txt"

step "tests under AddressSanitizer + UBSan"
cmake -S . -B build/asan -G Ninja -DCMAKE_BUILD_TYPE=Debug -DEMBER_BUILD_EXAMPLES=ON \
  -DCMAKE_CXX_FLAGS="-O1 -g -fsanitize=address,undefined -fno-sanitize-recover=all -fno-omit-frame-pointer" >/dev/null
cmake --build build/asan -j "$jobs"
(cd build/asan && ctest --output-on-failure -j "$jobs")

step "tests, optimized build"
(cd build/release && ctest --output-on-failure -j "$jobs")
