#!/usr/bin/env bash
# Builds rcni, installs the plugins, and attaches a network namespace to a
# ptp + host-local network: shows the address and routes, pings the
# gateway, deletes the attachment and shows that nothing is left.
# Everything happens inside a throwaway "host" netns, so the machine's own
# network is never touched.
set -euo pipefail
cd "$(dirname "$0")/.."

[[ $(id -u) -eq 0 ]] || { echo "run as root (network namespaces)" >&2; exit 1; }
scripts/deps.sh

bin_dir=${CNI_BIN_DIR:-/opt/cni/bin}
echo "== building"
cargo build --release --locked -p rcni
echo "== installing into $bin_dir"
target/release/rcni install "$bin_dir"
ls -l "$bin_dir/rcni"

host=rcni-demo-host-$$ ctr=rcni-demo-ctr-$$
work=$(mktemp -d)
cleanup() {
  ip netns del "$ctr" 2>/dev/null || true
  ip netns del "$host" 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT
ip netns add "$host"
ip netns add "$ctr"
ip -n "$host" link set lo up

cat >"$work/demo.conf" <<CONF
{
  "cniVersion": "1.1.0",
  "name": "demo",
  "type": "ptp",
  "mtu": 1400,
  "ipam": {
    "type": "host-local",
    "subnet": "10.123.0.0/24",
    "routes": [{"dst": "0.0.0.0/0"}],
    "dataDir": "$work/ipam"
  }
}
CONF

plugin() { # plugin VERB
  ip netns exec "$host" env CNI_COMMAND="$1" CNI_CONTAINERID=demo CNI_NETNS="/run/netns/$ctr" \
    CNI_IFNAME=eth0 CNI_PATH="$bin_dir" "$bin_dir/ptp" <"$work/demo.conf"
}

echo "== ADD: the result"
plugin ADD
echo "== the container's eth0 and routes"
ip -n "$ctr" -br addr show dev eth0
ip -n "$ctr" route
echo "== ping the gateway from the container"
ip netns exec "$ctr" ping -c 2 -W 2 10.123.0.1
echo "== DEL"
plugin DEL
echo "== after DEL: container links, host links, allocated IPs"
ip -n "$ctr" -br link
ip -n "$host" -br link
leftover=$(find "$work/ipam/demo" -type f ! -name lock ! -name 'last_reserved_ip.*' | wc -l)
echo "allocated IP files left: $leftover"
[[ $leftover -eq 0 && $(ip -n "$ctr" -br link | wc -l) -eq 1 ]]
echo "== demo done: attached, reachable, and cleanly removed"
