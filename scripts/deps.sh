#!/usr/bin/env bash
# Installs what building and testing rcni needs on a Debian machine (root).
# Idempotent: does nothing when everything is already there.
set -euo pipefail

need=()
for pkg_cmd in iproute2:ip iputils-ping:ping iptables:iptables nftables:nft \
               containernetworking-plugins:/usr/lib/cni/host-local dnsmasq:dnsmasq \
               isc-dhcp-server:/usr/sbin/dhcpd \
               procps:ps psmisc:killall python3:python3 strace:strace \
               containerd:containerd runc:runc protobuf-compiler:protoc podman:podman \
               dbus-daemon:dbus-daemon firewalld:firewalld; do
  pkg=${pkg_cmd%%:*} cmd=${pkg_cmd#*:}
  if [[ $cmd == /* ]]; then [[ -e $cmd ]] || need+=("$pkg")
  else command -v "$cmd" >/dev/null 2>&1 || need+=("$pkg"); fi
done
# The CRI test's sandbox image is a static busybox (Debian's busybox is not).
dpkg-query -W -f '${Status}' busybox-static 2>/dev/null | grep -q 'ok installed' \
  || need+=(busybox-static)
if ((${#need[@]})); then
  echo "installing: ${need[*]}"
  # firewalld must not start and take over this machine's firewall: the
  # firewall plugin's tests run their own, in a throwaway namespace.
  systemctl mask firewalld >/dev/null 2>&1 || true
  # Nor the ISC DHCP server: the dhcp tests run their own, in a LAN netns.
  systemctl mask isc-dhcp-server isc-dhcp-server6 >/dev/null 2>&1 || true
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
fi
# dnsmasq's own service is not wanted: tests start their own instances.
systemctl disable --now dnsmasq >/dev/null 2>&1 || true
systemctl disable --now isc-dhcp-server isc-dhcp-server6 >/dev/null 2>&1 || true
# Nor containerd's: the CRI test starts its own, with its own config and dirs.
systemctl disable --now containerd >/dev/null 2>&1 || true

if ! command -v cargo >/dev/null 2>&1; then
  echo "cargo is missing: install a Rust toolchain (rustup) first" >&2
  exit 1
fi
