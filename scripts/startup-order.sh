#!/usr/bin/env bash
# Regenerates scripts/startup-order.txt: the functions rcni runs for a
# VERSION call, a ptp + host-local ADD and a bridge + portmap ADD
# (nftables), which build-release.sh asks the linker to place first in the
# binary. The kernel maps a binary's pages
# 64 KiB at a time around each page a process touches, so code run at start
# that lies spread over the binary makes most of it resident; placed
# together, it makes a few windows resident.
#
# The names are mangled symbols: Rust's carry a hash of the crate's
# identity (name, version, profile, features, its dependencies, compiler),
# not of its code, so the list stays good across code changes; after a
# dependency update, a crate gaining or losing a dependency, or a compiler
# update, run this again (a stale list showed as VERSION peak memory
# 1.06 -> 1.56 MiB). Names no longer in the binary are
# ignored by the linker. Needs root (throwaway namespaces), valgrind and
# python3.
set -euo pipefail
cd "$(dirname "$0")/.."
[[ $(id -u) -eq 0 ]] || { echo "run as root (network namespaces)" >&2; exit 1; }
command -v valgrind >/dev/null || { echo "needs valgrind" >&2; exit 1; }

host=$(rustc -vV | sed -n 's/^host: //p')
gccld=$(rustc --print sysroot)/lib/rustlib/$host/bin/gcc-ld
out=target/startup-order
# The release build, linked the way build-release.sh links it but keeping
# its symbols. Only the final link's flags change (the profile's settings
# are part of every crate's identity, so of the names).
CARGO_TARGET_DIR=$out cargo rustc --release --locked -p rcni --bin rcni -- \
  -C target-feature=+crt-static -C link-arg=-B"$gccld" -C link-arg=-fuse-ld=lld -C strip=none
bin=$PWD/$out/release/rcni

work=$(mktemp -d)
hostns=rcni-order-host-$$ ctrns=rcni-order-ctr-$$
cleanup() {
  ip netns del "$ctrns" 2>/dev/null || true
  ip netns del "$hostns" 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT
mkdir "$work/bin" "$work/data"
for p in ptp host-local bridge portmap; do ln -s "$bin" "$work/bin/$p"; done

CNI_COMMAND=VERSION valgrind -q --tool=callgrind --demangle=no \
  --callgrind-out-file="$work/version.out" "$work/bin/ptp" >/dev/null
ip netns add "$hostns"
ip netns add "$ctrns"
conf='{"cniVersion":"1.0.0","name":"order","type":"ptp","ipMasq":true,
       "ipam":{"type":"host-local","subnet":"10.231.0.0/16","dataDir":"'"$work/data"'"}}'
env=(CNI_CONTAINERID=order CNI_NETNS=/run/netns/$ctrns CNI_IFNAME=eth0 CNI_PATH=$work/bin)
echo "$conf" | ip netns exec "$hostns" env CNI_COMMAND=ADD "${env[@]}" \
  valgrind -q --tool=callgrind --demangle=no --trace-children=yes \
  --trace-children-skip='*iptables*,*nft*,*xtables*' \
  --callgrind-out-file="$work/add.%p.out" "$work/bin/ptp" >/dev/null
echo "$conf" | ip netns exec "$hostns" env CNI_COMMAND=DEL "${env[@]}" "$work/bin/ptp"
# Then a bridge + portmap ADD on nftables (the functions the ptp ADD did
# not run come after its), the bridge's result as portmap's prevResult.
brconf='{"cniVersion":"1.0.0","name":"order","type":"bridge","bridge":"rcniorder0",
         "isGateway":true,"ipMasq":true,"ipMasqBackend":"nftables",
         "ipam":{"type":"host-local","subnet":"10.232.0.0/16","dataDir":"'"$work/data"'"}}'
prev=$(echo "$brconf" | ip netns exec "$hostns" env CNI_COMMAND=ADD "${env[@]}" \
  valgrind -q --tool=callgrind --demangle=no \
  --callgrind-out-file="$work/add.bridge.out" "$work/bin/bridge")
pmconf='{"cniVersion":"1.0.0","name":"order","type":"portmap","backend":"nftables",
         "runtimeConfig":{"portMappings":[{"hostPort":18080,"containerPort":80,"protocol":"tcp"}]},
         "prevResult":'"$prev"'}'
echo "$pmconf" | ip netns exec "$hostns" env CNI_COMMAND=ADD "${env[@]}" \
  valgrind -q --tool=callgrind --demangle=no \
  --callgrind-out-file="$work/add.portmap.out" "$work/bin/portmap" >/dev/null
echo "$pmconf" | ip netns exec "$hostns" env CNI_COMMAND=DEL "${env[@]}" "$work/bin/portmap"
echo "$brconf" | ip netns exec "$hostns" env CNI_COMMAND=DEL "${env[@]}" "$work/bin/bridge"

nm --defined-only "$bin" | awk '$2 ~ /^[tTiW]$/ {print $3}' >"$work/symbols"
python3 - "$work" >scripts/startup-order.txt <<'EOF'
import glob, re, sys
work = sys.argv[1]

def called(path):
    # callgrind names a function once, on the first fn= or cfn= line.
    for line in open(path):
        m = re.match(r"^c?fn=\(\d+\) (.+)$", line)
        if m and not m.group(1).startswith("0x") and m.group(1) != "(below main)":
            yield m.group(1)

symbols = set(s.strip() for s in open(f"{work}/symbols"))
# What runs before callgrind sees a name or only outside valgrind (the
# vDSO's setup: valgrind gives the process none).
first = ["_start", "__libc_start_main", "_dl_relocate_static_pie",
         "__libc_setup_tls", "__tls_pre_init_tp", "frame_dummy",
         "_dl_new_object", "_dl_add_to_namespace_list", "_dl_setup_hash",
         "__strcmp_avx2", "__strcmp_evex", "pthread_mutex_lock",
         "pthread_mutex_unlock"]

def with_twins(name):
    # glibc picks a string function's variant for the CPU at start, and
    # valgrind's virtual CPU is not the real one: the AVX2, EVEX and
    # AVX-512 variants of a function go together.
    yield name
    family = re.match(r"^(__[a-z0-9]+?)_(avx2|evex|avx512)", name)
    if family:
        for s in sorted(symbols):
            if s.startswith(family.group(1) + "_") and re.search(r"_(avx2|evex|avx512)", s):
                yield s

names = first + list(called(f"{work}/version.out"))
# ptp's (add.<pid>.out, with host-local's), then bridge's, then portmap's.
paths = sorted(p for p in glob.glob(f"{work}/add.*.out") if not re.search(r"add\.(bridge|portmap)\.out$", p))
for path in paths + [f"{work}/add.bridge.out", f"{work}/add.portmap.out"]:
    names += called(path)
order, seen = [], set()
for name in names:
    for n in with_twins(name):
        if n not in seen:
            seen.add(n)
            order.append(n)
print("\n".join(order))
EOF
echo "wrote scripts/startup-order.txt ($(wc -l <scripts/startup-order.txt) functions)"
