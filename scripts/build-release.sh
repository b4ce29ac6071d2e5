#!/usr/bin/env bash
# The Dockerfile's build stage, run outside Docker (there is no Docker engine here), and
# checks that what the runtime stage needs holds: the binary links only against what
# the distroless cc base ships (glibc, libgcc), runs as a non-root user with no shell
# and no writable files, and answers --version. Prints the binary's size.
set -euo pipefail
cd "$(dirname "$0")/.."
# The workspace loads from the build context .dockerignore leaves (the benches and the
# emulator's manifest are part of it), and that context carries no docs or tests.
context=$(mktemp -d)
python3 scripts/docker-context.py "$context"
(cd "$context" && cargo metadata --locked --offline --no-deps --format-version 1 >/dev/null)
for gone in docs tests/cluster_snapshot.rs charts README.md; do
  [ ! -e "$context/$gone" ] || { echo "build-release: $gone is in the Docker build context" >&2; exit 1; }
done
rm -rf "$context"
# The Dockerfile's base images are pinned by digest.
for arg in RUST_IMAGE RUNTIME_IMAGE; do
  grep -Eq "^ARG $arg=[^ @]+:[^ @]+@sha256:[0-9a-f]{64}$" Dockerfile || {
    echo "build-release: the Dockerfile's $arg is not pinned by digest (image:tag@sha256:<64 hex>)" >&2
    exit 1
  }
done
cargo build --release --locked --bin dbsnapshot-operator
bin=${CARGO_TARGET_DIR:-target}/release/dbsnapshot-operator
stripped=$(mktemp)
trap 'rm -f "$stripped"' EXIT
strip -o "$stripped" "$bin"
echo "release binary: $(stat -c %s "$bin") bytes; stripped (as in the image): $(stat -c %s "$stripped") bytes"

# Shared libraries: only those distroless/cc-debian12 carries.
libs=$(ldd "$stripped" | awk '{print $1}' | sed 's|.*/||' | sort -u)
for lib in $libs; do
  case $lib in
    linux-vdso.so.1 | ld-linux-*.so.* | libc.so.6 | libm.so.6 | libgcc_s.so.1 | libpthread.so.0 | libdl.so.2 | librt.so.1) ;;
    *)
      echo "build-release: $lib is not in the distroless cc base image" >&2
      exit 1
      ;;
  esac
done
echo "shared libraries: $(echo $libs | tr '\n' ' ')"

# Runs as the image's non-root user, from /, with nothing writable and no shell.
nobody_run() {
  if [ "$(id -u)" = 0 ] && command -v setpriv >/dev/null; then
    setpriv --reuid 65532 --regid 65532 --clear-groups env -i PATH=/nonexistent HOME=/nonexistent "$@"
  else
    env -i PATH=/nonexistent HOME=/nonexistent "$@"
  fi
}
cp "$stripped" /tmp/dbsnapshot-operator-image-check
chmod 755 /tmp/dbsnapshot-operator-image-check
(cd / && nobody_run /tmp/dbsnapshot-operator-image-check --version)
# Every CRD, in full: as many as crds/ commits (grep -c reads to the end; `crd | head`
# must not fail either).
want=$(grep -c "^kind: CustomResourceDefinition" crds/dbsnapshot.io.yaml)
crds=$( (cd / && nobody_run /tmp/dbsnapshot-operator-image-check crd) | grep -c "^kind: CustomResourceDefinition")
[ "$crds" = "$want" ] && [ "$crds" -ge 4 ] ||
  { echo "build-release: crd printed $crds CustomResourceDefinitions, crds/ has $want" >&2; exit 1; }
(cd / && nobody_run /tmp/dbsnapshot-operator-image-check crd) | head -1 >/dev/null
rm -f /tmp/dbsnapshot-operator-image-check
echo "build-release: ok"
