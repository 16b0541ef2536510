#!/usr/bin/env bash
# Builds the manifest validator into .tools/bin/k8s-validate unless it is newer than its
# sources (make k8s-check and tests/deploy/test_k8s_manifests.py both call this). Modules come
# from the Go module proxy, pinned by go.sum; a cold build takes minutes, a rebuild seconds.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
repo="$(cd "$here/../../.." && pwd)"
bin="$repo/.tools/bin/k8s-validate"
if [[ -x "$bin" ]]; then
  stale=$(find "$here" -maxdepth 1 \( -name '*.go' -o -name go.mod -o -name go.sum \) -newer "$bin" | head -n 1)
  [[ -z "$stale" ]] && exit 0
fi
mkdir -p "$repo/.tools/bin"
echo "k8s-validate: building $bin (deploy/k8s/validate)" >&2
cd "$here"
GOFLAGS="-mod=mod -buildvcs=false" go build -trimpath -o "$bin.tmp" .
mv "$bin.tmp" "$bin"
