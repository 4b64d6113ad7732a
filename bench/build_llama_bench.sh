#!/usr/bin/env bash
# Builds llama.cpp's own llama-bench from the llama-cpp-python 0.3.36 source distribution
# (PyPI; it vendors llama.cpp), with the flags of ../shared/design/MODELS.md (the native
# build crashes on this machine in its AMX path). Prints the binary's path on its last line.
#   bash bench/build_llama_bench.sh            (about 10 minutes on 2 cores, once)
set -euo pipefail
cd "$(dirname "$0")/.."
dir=.cache/bench/peer
bin=$dir/build/bin/llama-bench
if [ ! -x "$bin" ]; then
  mkdir -p "$dir"
  [ -f "$dir/llama_cpp_python-0.3.36.tar.gz" ] ||
    python3 -m pip download --quiet --no-deps --no-binary :all: llama-cpp-python==0.3.36 -d "$dir"
  [ -d "$dir/llama_cpp_python-0.3.36" ] || tar -xzf "$dir/llama_cpp_python-0.3.36.tar.gz" -C "$dir"
  cmake -S "$dir/llama_cpp_python-0.3.36/vendor/llama.cpp" -B "$dir/build" -DCMAKE_BUILD_TYPE=Release \
    -DBUILD_SHARED_LIBS=OFF -DLLAMA_CURL=OFF -DLLAMA_BUILD_TESTS=OFF -DLLAMA_BUILD_EXAMPLES=OFF \
    -DLLAMA_BUILD_SERVER=OFF -DLLAMA_BUILD_TOOLS=ON \
    -DGGML_NATIVE=OFF -DGGML_AVX2=ON -DGGML_FMA=ON -DGGML_F16C=ON -DGGML_AVX512=ON -DGGML_AVX512_VNNI=ON \
    -DGGML_AVX512_VBMI=ON -DGGML_AVX512_BF16=ON >"$dir/configure.log"
  cmake --build "$dir/build" --target llama-bench -j"$(nproc)" >"$dir/build.log"
fi
echo "$bin"
