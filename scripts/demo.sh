#!/usr/bin/env bash
# Builds rcni and cnitool, installs them, and attaches a network namespace
# to a ptp + host-local (+ loopback) network with cnitool: shows the
# address and routes, pings the gateway, checks, deletes the attachment
# and shows that nothing is left.
# Everything happens inside a throwaway "host" netns, so the machine's own
# network is never touched.
set -euo pipefail
cd "$(dirname "$0")/.."

[[ $(id -u) -eq 0 ]] || { echo "run as root (network namespaces)" >&2; exit 1; }
scripts/deps.sh

bin_dir=${CNI_BIN_DIR:-/opt/cni/bin}
echo "== building"
cargo build --release --locked -p rcni -p rcni-cnitool
echo "== installing the plugins into $bin_dir, cnitool into /usr/local/bin"
target/release/rcni install "$bin_dir"
install -m 0755 target/release/cnitool /usr/local/bin/cnitool
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

mkdir -p "$work/net.d"
cat >"$work/net.d/10-demo.conflist" <<CONF
{
  "cniVersion": "1.1.0",
  "name": "demo",
  "plugins": [
    {
      "type": "ptp",
      "mtu": 1400,
      "ipam": {
        "type": "host-local",
        "subnet": "10.123.0.0/24",
        "routes": [{"dst": "0.0.0.0/0"}],
        "dataDir": "$work/ipam"
      }
    },
    {"type": "loopback"}
  ]
}
CONF

cni() { # cni VERB: cnitool run from inside the demo's host netns
  ip netns exec "$host" env NETCONFPATH="$work/net.d" CNI_PATH="$bin_dir" CNI_CACHE_DIR="$work/cache" \
    cnitool "$1" demo "/run/netns/$ctr"
}

echo "== cnitool add: the result"
cni add
echo "== the container's eth0 and routes"
ip -n "$ctr" -br addr show dev eth0
ip -n "$ctr" route
echo "== ping the gateway from the container"
ip netns exec "$ctr" ping -c 2 -W 2 10.123.0.1
echo "== cnitool check"
cni check && echo "attachment is as the cached result says"
echo "== cnitool del"
cni del
echo "== after DEL: container links, host links, allocated IPs"
ip -n "$ctr" -br link
ip -n "$host" -br link
leftover=$(find "$work/ipam/demo" -type f ! -name lock ! -name 'last_reserved_ip.*' | wc -l)
cached=$(find "$work/cache" -type f | wc -l)
echo "allocated IP files left: $leftover, cached results left: $cached"
[[ $leftover -eq 0 && $cached -eq 0 && $(ip -n "$ctr" -br link | wc -l) -eq 1 ]]
echo "== demo done: attached, reachable, and cleanly removed"
