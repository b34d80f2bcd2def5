#!/usr/bin/env bash
# The whole test suite: style, lints, unit and integration tests (as root,
# each in its own throwaway network namespaces), and the size budget.
set -euo pipefail
cd "$(dirname "$0")/.."

if [[ $(id -u) -ne 0 ]]; then
  echo "run as root: the integration tests create network namespaces" >&2
  exit 1
fi

scripts/deps.sh

echo "== cargo fmt"
cargo fmt --all -- --check
echo "== cargo clippy"
cargo clippy --workspace --all-targets --locked -- -D warnings

echo "== release build and size budget"
scripts/build-release.sh
size=$(stat -c %s target/release/rcni)
echo "rcni release binary: $size bytes"
# 3 MiB + 320 KiB: the dhcp daemon (DHCPv4 client, lease upkeep and records) added ~178 KiB,
# then DHCPv6 (its client and codec, wired into the daemon) ~71 KiB, then the nf_tables rule
# encoders (nftables without the nft process), host-local's store index and in-process IPAM ~50 KiB.
budget=$((3 * 1024 * 1024 + 320 * 1024))
if (( size >= budget )); then
  echo "the multi-call binary is over its budget of $budget bytes" >&2
  exit 1
fi

echo "== tests"
cargo test --workspace --locked --no-fail-fast 2>&1 | tee target/test-output.txt

echo "== tests that need a full distribution kernel (one VM boot)"
scripts/vm-tests.sh 2>&1 | tee target/vm-test-output.txt

echo "== benchmark smoke run (no timing is asserted)"
scripts/bench.sh --quick

# One closing line for the whole run.
awk '/^test result: / { p += $4; f += $6 } END { printf "tests: %d passed, %d failed\n", p, f; exit (f > 0) }' \
  target/test-output.txt target/vm-test-output.txt
