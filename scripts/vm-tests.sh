#!/usr/bin/env bash
# Runs the tests that need kernel features this machine may lack (dummy,
# 8021q, ipvlan, vrf, bridge VLAN filtering) under a full distribution
# kernel, all in one VM boot (scripts/vm-run.sh). These tests, and only
# these, are #[ignore]d in the normal run so they never pass silently; here
# every test binary of the workspace runs with --ignored, and with the
# arguments given here (a test name filter, --exact, ...).
set -euo pipefail
cd "$(dirname "$0")/.."

# Test binaries only: the profile of a test build says "test":true.
built=$(cargo test --workspace --locked --no-run --message-format=json)
mapfile -t bins < <(sed -n '/"profile":{[^}]*"test":true/s/.*"executable":"\([^"]*\)".*/\1/p' <<<"$built" | sort -u)
((${#bins[@]})) || { echo "vm-tests: no test binary was built" >&2; exit 1; }

# Every binary runs even when one fails. The script lives in target/ (the VM
# writes there). The VM sees this machine's files read-only: the tests' temp
# dirs go to a fresh TMPDIR under target/, and /tmp gets an empty tmpfs of
# the VM's own unless the checkout itself lives under /tmp (a tmpfs there
# would hide it).
scratch=$PWD/target/vm-tmp
rm -rf "$scratch" && mkdir -p "$scratch"
{
  echo 'status=0'
  printf 'export TMPDIR=%q\n' "$scratch"
  case $PWD/ in
    /tmp/*) ;;
    *) echo 'mount -t tmpfs tmpfs /tmp 2>/dev/null || true' ;;
  esac
  for b in "${bins[@]}"; do
    printf 'echo %q\n' "== VM: ${b##*/}"
    printf '%q ' "$b" --ignored --test-threads=1 "$@"
    echo '|| status=1'
  done
  echo 'exit $status'
} >target/vm-tests.sh
status=0
scripts/vm-run.sh bash target/vm-tests.sh || status=$?
rm -rf "$scratch"
exit "$status"
