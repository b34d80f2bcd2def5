#!/usr/bin/env bash
# Builds the node installer image (Containerfile) from the static release
# binary, locally: FROM scratch, nothing is pulled.
# usage: scripts/image.sh [TAG]     (default localhost/rcni:<version>)
# Env: PODMAN, the podman command with any global options
#      (default: podman); RCNI_BINARY, the binary (default: build it).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
binary=${RCNI_BINARY:-}
if [[ -z $binary ]]; then
  "$root/scripts/build-release.sh"
  binary="$root/target/release/rcni"
fi
tag=${1:-localhost/rcni:$("$binary" --version | awk '{print $2}')}
context=$(mktemp -d "${TMPDIR:-/tmp}/rcni-image-XXXXXX")
trap 'rm -rf "$context"' EXIT
install -m 0755 "$binary" "$context/rcni"
cp "$root/Containerfile" "$context/"
${PODMAN:-podman} build -q -t "$tag" -f "$context/Containerfile" "$context" >/dev/null
echo "$tag"
