#!/usr/bin/env bash
# Builds rcni and cnitool, installs them, and attaches a network namespace
# to a bridge + host-local + portmap (+ loopback) network with cnitool:
# shows the address and routes, pings the gateway, reaches a web server in
# the container through the host port, checks, deletes the attachment and
# shows that nothing is left.
# Everything happens inside a throwaway "host" netns, so the machine's own
# network is never touched.
set -euo pipefail
cd "$(dirname "$0")/.."

[[ $(id -u) -eq 0 ]] || { echo "run as root (network namespaces)" >&2; exit 1; }
scripts/deps.sh

bin_dir=${CNI_BIN_DIR:-/opt/cni/bin}
echo "== building"
scripts/build-release.sh rcni-cnitool
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
      "type": "bridge",
      "bridge": "cni-demo0",
      "isGateway": true,
      "ipMasq": true,
      "ipam": {
        "type": "host-local",
        "subnet": "10.123.0.0/24",
        "routes": [{"dst": "0.0.0.0/0"}],
        "dataDir": "$work/ipam"
      }
    },
    {"type": "portmap", "capabilities": {"portMappings": true}},
    {"type": "loopback"}
  ]
}
CONF

cni() { # cni VERB: cnitool run from inside the demo's host netns
  ip netns exec "$host" env NETCONFPATH="$work/net.d" CNI_PATH="$bin_dir" CNI_CACHE_DIR="$work/cache" \
    CAP_ARGS='{"portMappings":[{"hostPort":8080,"containerPort":80,"protocol":"tcp"}]}' \
    cnitool "$1" demo "/run/netns/$ctr"
}

echo "== cnitool add (bridge + host-local + portmap + loopback): the result"
cni add
echo "== the container's eth0 and routes"
ip -n "$ctr" -br addr show dev eth0
ip -n "$ctr" route
echo "== ping the gateway from the container"
ip netns exec "$ctr" ping -c 2 -W 2 10.123.0.1
echo "== a web server in the container on port 80, reached through host port 8080"
echo "hello from the container" >"$work/index.html"
ip netns exec "$ctr" python3 -m http.server 80 --bind 0.0.0.0 --directory "$work" >/dev/null 2>&1 &
server=$!
for _ in $(seq 50); do ip netns exec "$ctr" ss -ltn | grep -q ':80 ' && break; sleep 0.1; done
answer=$(ip netns exec "$host" bash -c 'exec 3<>/dev/tcp/127.0.0.1/8080; printf "GET /index.html HTTP/1.0\r\n\r\n" >&3; cat <&3' | tail -n 1)
echo "GET http://127.0.0.1:8080/index.html from the host -> $answer"
kill "$server" 2>/dev/null || true
[[ $answer == "hello from the container" ]]
echo "== cnitool check"
cni check && echo "attachment is as the cached result says"
echo "== cnitool del"
cni del
echo "== after DEL: container links, host links, NAT rules of the container, allocated IPs"
ip -n "$ctr" -br link
ip -n "$host" -br link
rules=$(ip netns exec "$host" iptables-save -t nat | grep -c -e 'CNI-DN-' -e 'id: \\"cnitool-' || true)
echo "port-mapping and masquerade rules left: $rules"
# host-local's store: one file per address; lock, last_reserved_ip.N and rcni's rcni-index are not addresses.
leftover=$(find "$work/ipam/demo" -type f ! -name lock ! -name 'last_reserved_ip.*' ! -name rcni-index | wc -l)
cached=$(find "$work/cache" -type f | wc -l)
echo "allocated IP files left: $leftover, cached results left: $cached"
[[ $leftover -eq 0 && $cached -eq 0 && $rules -eq 0 && $(ip -n "$ctr" -br link | wc -l) -eq 1 ]]
echo "== demo done: attached, reachable, and cleanly removed"
