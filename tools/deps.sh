#!/usr/bin/env bash
# Installs what building and testing ember needs on Debian bookworm (apt, as root or via sudo).
set -euo pipefail
# clang-14 and libclang-rt-14-dev: the libFuzzer build of tests/fuzz (tools/fuzz.sh).
pkgs=(g++ cmake ninja-build meson pkg-config libhwy-dev libxsimd-dev doctest-dev clang-format python3 python3-pip unzip
  clang-14 libclang-rt-14-dev)
missing=()
for p in "${pkgs[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  sudo=""; [ "$(id -u)" -ne 0 ] && sudo="sudo"
  echo "== installing: ${missing[*]}"
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
