#!/usr/bin/env bash
# Runs one command as root inside a small VM booted with Debian's own kernel
# (linux-image-amd64: every network module, dummy, 8021q, ipvlan, vrf, bridge
# VLAN filtering), and exits with the command's status.
#
#   scripts/vm-run.sh COMMAND [ARG...]
#
# The VM sees this machine's filesystem read-only and the current directory
# read-write; its network starts empty, so the command may build any links
# and rules. Its output (stdout and stderr) comes on stdout. Installs what it
# needs on first use (root): qemu-system-x86, linux-image-amd64,
# busybox-static (apt) and virtme-ng (PyPI, into a venv). Fails, saying why,
# when it cannot boot the VM: the tests it runs are never skipped.
# Env: RCNI_VM_TIMEOUT (seconds, default 1800), RCNI_VM_MEMORY (default 2G),
#      RCNI_VM_CPUS (default: all), RCNI_VM_KVM=1 to try KVM (the default is
#      software emulation: KVM does not boot in every VM this runs in),
#      RCNI_VM_VENV (where virtme-ng goes, default ~/.cache/rcni-vm/venv).
set -euo pipefail

fail() { echo "vm-run: cannot run the VM: $*" >&2; exit 1; }
(($#)) || { sed -n '2,17p' "$0" | sed 's/^# \{0,1\}//' >&2; exit 2; }

kernel() { ls /boot/vmlinuz-*-amd64 2>/dev/null | sort -V | tail -n 1; }

need=()
command -v qemu-system-x86_64 >/dev/null || need+=(qemu-system-x86)
[[ -n $(kernel) ]] || need+=(linux-image-amd64)
command -v busybox >/dev/null || need+=(busybox-static)
command -v python3 >/dev/null || need+=(python3)
command -v vng >/dev/null || python3 -c 'import ensurepip' 2>/dev/null || need+=(python3-venv)
if ((${#need[@]})); then
  [[ $(id -u) -eq 0 ]] || fail "${need[*]} missing; run as root to install them"
  echo "vm-run: installing ${need[*]}" >&2
  export DEBIAN_FRONTEND=noninteractive
  apt-get -o DPkg::Lock::Timeout=300 update -qq >&2 &&
    apt-get -o DPkg::Lock::Timeout=300 install -y -qq --no-install-recommends "${need[@]}" >&2 ||
    fail "apt-get could not install ${need[*]}"
fi
kernel=$(kernel)
[[ -n $kernel ]] || fail "no kernel image /boot/vmlinuz-*-amd64 (linux-image-amd64 did not install one)"
[[ -d /lib/modules/${kernel#/boot/vmlinuz-} ]] || fail "no modules for $kernel in /lib/modules"

if ! command -v vng >/dev/null; then
  venv=${RCNI_VM_VENV:-${XDG_CACHE_HOME:-~/.cache}/rcni-vm/venv}
  if [[ ! -x $venv/bin/vng ]]; then
    echo "vm-run: installing virtme-ng into $venv" >&2
    { python3 -m venv "$venv" && "$venv/bin/pip" install -q virtme-ng; } >&2 ||
      fail "could not install virtme-ng into the venv $venv"
  fi
  PATH=$venv/bin:$PATH
  command -v vng >/dev/null || fail "virtme-ng installed, but no vng in $venv/bin"
fi

accel=(--disable-kvm)
[[ ${RCNI_VM_KVM:-0} == 1 ]] && accel=()
timeout=${RCNI_VM_TIMEOUT:-1800}
# Output goes through a pipe (cat): qemu truncates a file given as its
# stdout, and writes it from several places at once. timeout runs the VM in a
# process group of its own, which it ends whole when time is up (vng leaves
# qemu behind when only vng is ended); an interrupt here is passed on to it.
timeout -k 10 "$timeout" \
  vng --run "$kernel" "${accel[@]}" --user root \
    --memory "${RCNI_VM_MEMORY:-2G}" --cpus "${RCNI_VM_CPUS:-$(nproc)}" \
    --rwdir "$PWD" --cwd "$PWD" --exec "$(printf '%q ' "$@")" </dev/null > >(cat) 2>&1 &
vm=$!
trap 'kill -TERM "$vm"; wait "$vm" || true; exit 130' INT TERM
status=0
wait "$vm" || status=$?
((status != 124)) || echo "vm-run: timed out after $timeout s (RCNI_VM_TIMEOUT)" >&2
exit "$status"
