#!/usr/bin/env bash
# Writes the release artifact, shaped like the reference's
# cni-plugins-linux-<arch>-<version>.tgz: extracted into /opt/cni/bin it
# gives a file under every plugin name (links to the one rcni binary),
# plus SHA256SUMS, LICENSE and README.md.
#
# usage: scripts/release.sh [--binary PATH] [--out DIR]
#   --binary  package this rcni binary (default: build the static release
#             binary with scripts/build-release.sh)
#   --out     where the .tgz and its .sha256 go (default: target/dist)
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
binary="" out="$root/target/dist"
while (($#)); do
  case $1 in
    --binary) binary=$(realpath "$2"); shift 2 ;;
    --out) out=$(realpath -m "$2"); shift 2 ;;
    *) sed -n '2,11p' "$0" | sed 's/^# \{0,1\}//'; exit 2 ;;
  esac
done
if [[ -z $binary ]]; then
  "$root/scripts/build-release.sh"
  binary="$root/target/release/rcni"
fi
[[ -x $binary ]] || { echo "release: $binary is not an executable" >&2; exit 1; }

version=$("$binary" --version | awk '{print $2}')
case $(uname -m) in
  x86_64) arch=amd64 ;;
  aarch64) arch=arm64 ;;
  *) arch=$(uname -m) ;;
esac
name="rcni-$version-linux-$arch"

stage=$(mktemp -d "${TMPDIR:-/tmp}/rcni-release-XXXXXX")
# The archive's "./" entry sets the mode of the directory it is extracted
# into (/opt/cni/bin): it must be the usual 0755.
chmod 0755 "$stage"
trap 'rm -rf "$stage"' EXIT
install -m 0755 "$binary" "$stage/rcni"
while read -r plugin; do
  ln -s rcni "$stage/$plugin"
done < <("$binary" list)
install -m 0644 "$root/LICENSE" "$root/README.md" "$stage/"
(cd "$stage" && sha256sum -- rcni LICENSE README.md > SHA256SUMS)

mkdir -p "$out"
tar -C "$stage" --owner=0 --group=0 --numeric-owner --sort=name \
    -czf "$out/$name.tgz" .
(cd "$out" && sha256sum -- "$name.tgz" > "$name.tgz.sha256")
echo "$out/$name.tgz"
