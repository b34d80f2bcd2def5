#!/usr/bin/env bash
# Benchmarks rcni against the reference plugins side by side and writes
# docs/performance.md (and docs/performance-add-latency.svg).
#   scripts/bench.sh            the full suite (1,000 pods per scenario)
#   scripts/bench.sh --quick    a short run that proves the suite works
# Runs as root inside a throwaway "host" network namespace.
set -euo pipefail
cd "$(dirname "$0")/.."
[[ $(id -u) -eq 0 ]] || { echo "run as root (network namespaces)" >&2; exit 1; }
scripts/deps.sh

scripts/build-release.sh rcni-bench
host=rcni-bench-host-$$
bench_pid=
# The bench names its namespaces rb{p,n,fl,mem}<its pid mod 10000>, then
# "-", "n" or nothing: only this run's are removed, not another's.
cleanup() {
  if [[ -n $bench_pid ]]; then
    kill "$bench_pid" 2>/dev/null || true
    wait "$bench_pid" 2>/dev/null || true
    local tag=$((bench_pid % 10000))
    for ns in $(ip netns list 2>/dev/null | awk -v re="^rb(p|n|fl|mem)${tag}([-n]|$)" '$1 ~ re {print $1}'); do
      ip netns del "$ns" 2>/dev/null || true
    done
  fi
  ip netns del "$host" 2>/dev/null || true
}
trap cleanup EXIT
ip netns add "$host"
out=docs/performance.md
args=()
for a in "$@"; do
  case $a in
    --quick) args+=(--quick); out=target/performance-quick.md ;;
    *) args+=("$a") ;;
  esac
done
# `ip netns exec` execs the bench in its own process: its pid is the bench's.
ip netns exec "$host" target/release/rcni-bench --rcni "$PWD/target/release/rcni" --out "$out" "${args[@]}" &
bench_pid=$!
status=0
wait "$bench_pid" || status=$?
exit "$status"
