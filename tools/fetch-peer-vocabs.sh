#!/usr/bin/env bash
# Prints the folder holding llama.cpp's own tokenizer test vocabularies
# (ggml-vocab-*.gguf, most with .inp/.out vectors), fetching them first if needed.
#
# They come from the PyPI sdist of llama-cpp-python, which vendors llama.cpp with its
# models/ folder: llama-bpe, qwen2, qwen35, command-r, deepseek-coder, refact, gemma-4 and
# more with vectors; gpt-neox, aquila, baichuan and nomic-bert-moe (a T5-style unigram
# vocabulary) without. The sdist is pinned by version and sha256, cached under .cache/ in
# the checkout (git-ignored), and extracted once; later runs only print the folder.
#
# Environment: EMBER_PEER_SDIST  an already downloaded copy of the sdist (still sha256-checked).
# Usage: EMBER_PEER_VOCAB=$(bash tools/fetch-peer-vocabs.sh)
set -euo pipefail

version=0.3.36
sha256=832db0699007f1be95a7e41ef12e88926b02ba836461e36a36372db2760c1a2e
root=$(cd "$(dirname "$0")/.." && pwd)
cache=$root/.cache/peer-vocab
dest=$cache/llama-cpp-python-$version
sdist=$cache/llama_cpp_python-$version.tar.gz

if [[ -f $dest/.complete ]]; then
  echo "$dest"
  exit 0
fi

mkdir -p "$cache"
verify() { [[ -f $1 ]] && echo "$sha256  $1" | sha256sum --check --status; }

if ! verify "$sdist"; then
  rm -f "$sdist"
  if [[ -n ${EMBER_PEER_SDIST:-} ]]; then
    cp "$EMBER_PEER_SDIST" "$sdist.part"
  else
    echo "fetch-peer-vocabs.sh: downloading llama-cpp-python $version (sdist, 77 MB) from PyPI" >&2
    tmp=$(mktemp -d)
    trap 'rm -rf "$tmp"' EXIT
    python3 -m pip download --quiet --no-deps --no-binary :all: "llama-cpp-python==$version" -d "$tmp" >&2
    mv "$tmp/llama_cpp_python-$version.tar.gz" "$sdist.part"
  fi
  if ! verify "$sdist.part"; then
    echo "fetch-peer-vocabs.sh: sha256 mismatch for llama_cpp_python-$version.tar.gz (want $sha256)" >&2
    rm -f "$sdist.part"
    exit 1
  fi
  mv "$sdist.part" "$sdist"
fi

# Only the vocabulary files, into a fresh folder that becomes $dest when complete.
work=$cache/extract.$$
rm -rf "$work"
mkdir -p "$work"
tar -xzf "$sdist" -C "$work" --wildcards "llama_cpp_python-$version/vendor/llama.cpp/models/ggml-vocab-*"
rm -rf "$dest"
mv "$work/llama_cpp_python-$version/vendor/llama.cpp/models" "$dest"
rm -rf "$work"
touch "$dest/.complete"
echo "$dest"
