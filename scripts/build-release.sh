#!/usr/bin/env bash
# Builds the release binaries: `rcni` statically linked (static-pie, glibc
# included), plus any other packages named as arguments (e.g. rcni-cnitool).
# A plugin is a process started for every call; without the dynamic loader
# rcni starts in about half the time and with less memory
# (docs/performance.md). The static flag is given to the final link only
# (`cargo rustc`): set for the whole build it would also reach proc-macros.
set -euo pipefail
cd "$(dirname "$0")/.."
others=()
for p in "$@"; do others+=(-p "$p"); done
if ((${#others[@]})); then
  cargo build --release --locked "${others[@]}"
fi
cargo rustc --release --locked -p rcni --bin rcni -- -C target-feature=+crt-static
# The reason for this script: a plugin binary without a dynamic loader.
if readelf -lW target/release/rcni | grep -q 'program interpreter'; then
  echo "target/release/rcni came out dynamically linked" >&2
  exit 1
fi
