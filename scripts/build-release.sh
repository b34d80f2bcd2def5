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
# Linked by the toolchain's lld with the functions a call runs at start
# and for an ADD placed first (scripts/startup-order.txt, made by
# scripts/startup-order.sh): the kernel maps a binary's pages 64 KiB at a
# time around each one touched, so start-up code spread over the binary
# made most of it resident (VERSION peak memory 1.8 MiB -> 1.3 MiB). cargo
# does not watch the order file: after changing it, touch
# crates/rcni/src/main.rs.
host=$(rustc -vV | sed -n 's/^host: //p')
gccld=$(rustc --print sysroot)/lib/rustlib/$host/bin/gcc-ld
link=()
if [[ -x $gccld/ld.lld ]]; then
  # lld names each listed function it cannot find; rustc shows that with
  # -W linker-messages (cargo replays it when the link is up to date).
  link=(-C "link-arg=-B$gccld" -C link-arg=-fuse-ld=lld
        -C "link-arg=-Wl,--symbol-ordering-file=$PWD/scripts/startup-order.txt"
        -W linker-messages)
else
  echo "the toolchain has no rust-lld: linking without the start-up order (more memory per call)" >&2
fi
log=$(mktemp)
trap 'rm -f "$log"' EXIT
status=0
cargo rustc --release --locked -p rcni --bin rcni -- -C target-feature=+crt-static "${link[@]}" \
  > "$log" 2>&1 || status=$?
grep -v -e 'symbol ordering file: no such symbol' -e 'linker-messages' -e '^ *|\? *$' \
  -e 'generated [0-9]* warning' "$log" >&2 || true
(( status == 0 )) || exit "$status"
# A stale order (its names carry hashes of each crate's identity, which
# change with a crate's dependencies) silently costs memory per call: a
# few names are always missing (inlined since), a stale list misses a
# quarter of them.
if ((${#link[@]})); then
  missing=$(grep -c 'symbol ordering file: no such symbol' "$log" || true)
  listed=$(wc -l < scripts/startup-order.txt)
  if (( missing * 10 > listed )); then
    echo "scripts/startup-order.txt is stale: $missing of its $listed functions are not in the" \
      "binary; run scripts/startup-order.sh" >&2
    exit 1
  fi
fi
# The reason for this script: a plugin binary without a dynamic loader.
if readelf -lW target/release/rcni | grep -q 'program interpreter'; then
  echo "target/release/rcni came out dynamically linked" >&2
  exit 1
fi
