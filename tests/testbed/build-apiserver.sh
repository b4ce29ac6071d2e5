#!/usr/bin/env bash
# Builds kube-apiserver v1.20.2 from Debian's source package (once) and prints the
# path of the cached binary. Installs Go, etcd and the fixed reflect2 from Debian.
set -euo pipefail
. "$(dirname "$0")/lib.sh"
trap on_error ERR

# Bump RECIPE when the way the binary is built changes, so caches are rebuilt.
RECIPE=2
out_dir=$TESTBED_CACHE/kube-apiserver/$TESTBED_K8S_VERSION-r$RECIPE
bin=$out_dir/kube-apiserver
if [ -x "$bin" ] && "$bin" --version 2>/dev/null | grep -q "$TESTBED_K8S_VERSION"; then
  echo "$bin"
  exit 0
fi
mkdir -p "$out_dir"
log=$out_dir/build.log
: >"$log"

step "install Go, etcd and sources (apt)" "$log"
ensure_deb_src
apt_install golang-go etcd-server golang-github-modern-go-reflect2-dev dpkg-dev openssl

work=$(mktemp -d "$TESTBED_CACHE/k8s-build.XXXXXX")
cleanup() { rm -rf "$work"; }
trap cleanup EXIT

step "download kubernetes source (apt-get source)" "$log"
if [ $apt_updated = 0 ] && ! apt-cache showsrc kubernetes 2>/dev/null | grep -q '^Package: kubernetes'; then
  logged as_root apt-get update
fi
(cd "$work" && logged apt-get source --download-only kubernetes)
tarball=$(ls "$work"/kubernetes_*.orig.tar.gz | head -n1)

step "unpack kubernetes source" "$log"
mkdir -p "$work/gopath/src/k8s.io"
tar -xzf "$tarball" -C "$work"
srcdir=$(find "$work" -mindepth 1 -maxdepth 1 -type d ! -name gopath | head -n1)
mv "$srcdir" "$work/gopath/src/k8s.io/kubernetes"
k8s=$work/gopath/src/k8s.io/kubernetes

step "replace vendored reflect2 with Debian's" "$log"
rm -rf "$k8s/vendor/github.com/modern-go/reflect2"
cp -a /usr/share/gocode/src/github.com/modern-go/reflect2 "$k8s/vendor/github.com/modern-go/reflect2"

export GO111MODULE=off GOPATH=$work/gopath GOFLAGS= GOCACHE=$work/gocache CGO_ENABLED=0
cd "$k8s"

step "build openapi-gen" "$log"
logged go build -o "$work/openapi-gen" k8s.io/kubernetes/vendor/k8s.io/kube-openapi/cmd/openapi-gen

step "generate pkg/generated/openapi" "$log"
inputs=$(grep -RlE --include='*.go' '\+k8s:openapi-gen=' pkg cmd plugin vendor/k8s.io \
  | xargs -n1 dirname | sort -u \
  | grep -v -e code-generator -e sample-apiserver \
  | sed 's|^|k8s.io/kubernetes/|' | paste -sd, -)
logged "$work/openapi-gen" -i "$inputs" \
  -p k8s.io/kubernetes/pkg/generated/openapi -O zz_generated.openapi \
  -h vendor/k8s.io/code-generator/hack/boilerplate.go.txt \
  -r "$work/api-violations.report"
test -s pkg/generated/openapi/zz_generated.openapi.go

step "build kube-apiserver $TESTBED_K8S_VERSION" "$log"
# The version is compiled into two packages: component-base (--version) and
# client-go (the /version endpoint that clients and helm read).
ldflags="-s -w"
for v in k8s.io/kubernetes/vendor/k8s.io/component-base/version \
  k8s.io/kubernetes/vendor/k8s.io/client-go/pkg/version; do
  ldflags="$ldflags -X $v.gitVersion=$TESTBED_K8S_VERSION -X $v.gitMajor=1 -X $v.gitMinor=20"
  ldflags="$ldflags -X $v.gitCommit=faecb196815e248d3ecfb03c680a4507229c2a56"
  ldflags="$ldflags -X $v.gitTreeState=clean -X $v.buildDate=2021-01-13T13:20:00Z"
done
logged go build -o "$work/kube-apiserver" -ldflags "$ldflags" k8s.io/kubernetes/cmd/kube-apiserver
mv "$work/kube-apiserver" "$bin"
echo "$bin"
