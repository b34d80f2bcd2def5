#!/usr/bin/env bash
# Runs the tests that need kernel features this machine may lack (dummy,
# 8021q, ipvlan, vrf, bridge VLAN filtering) under a full distribution
# kernel, all in one VM boot. These tests are #[ignore]d in the normal run
# so they never pass silently; here they run with --ignored.
set -euo pipefail
cd "$(dirname "$0")/.."

vmtest=${VMTEST_RUN:-../shared/vmtest/run}
suites=(rcni-net:vm_kinds rcni:bridge_vlan rcni:vm_links)

bins=()
for s in "${suites[@]}"; do
  pkg=${s%%:*} test=${s#*:}
  exe=$(cargo test --locked -p "$pkg" --test "$test" --no-run --message-format=json 2>/dev/null |
        sed -n 's/.*"executable":"\([^"]*\)".*/\1/p' | tail -n 1)
  [[ -x $exe ]] || { echo "could not build the $test tests" >&2; exit 1; }
  bins+=("$exe")
done

script=$(mktemp "${TMPDIR:-/tmp}/rcni-vm-XXXXXX.sh")
trap 'rm -f "$script"' EXIT
{
  echo 'set -e'
  echo 'mount -t tmpfs tmpfs /tmp 2>/dev/null || true'
  for b in "${bins[@]}"; do
    echo "echo \"== VM: $(basename "$b")\""
    echo "'$b' --ignored --test-threads=1"
  done
} >"$script"
cp "$script" target/vm-tests.sh
"$vmtest" -- sh target/vm-tests.sh
