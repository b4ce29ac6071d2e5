#!/usr/bin/env bash
# The whole test suite, from a fresh clone on a fresh machine: installs what the tests
# need (Debian packages, the Python virtualenv with boto3 and moto, helm and kubectl),
# builds kube-apiserver v1.20.2 once (cached under ~/.cache), checks formatting and
# lints, then runs every test.
set -euo pipefail
cd "$(dirname "$0")/.."
. tests/testbed/lib.sh
trap on_error ERR
mkdir -p "$TESTBED_STATE/logs"
log=$TESTBED_STATE/logs/prepare.log
: >"$log"

step "Python virtualenv with boto3 and moto" "$log"
tests/testbed/python-venv.sh >>"$log" 2>&1
step "kube-apiserver $TESTBED_K8S_VERSION, etcd and Go" "$log"
tests/testbed/build-apiserver.sh >>"$log" 2>&1
step "helm and kubectl" "$log"
tests/testbed/install-helm-kubectl.sh "$TESTBED_STATE/bin" >>"$log" 2>&1
step "Lua 5.1 (runs the Argo CD health check)" "$log"
apt_install lua5.1
step "promtool (checks the alert rules)" "$log"
tests/testbed/install-promtool.sh >>"$log" 2>&1
CURRENT_LOG=
step "cargo fmt --check"
cargo fmt --all -- --check
step "cargo clippy"
cargo clippy --workspace --all-targets --locked -- -D warnings

# The operator's integration tests share one kube-apiserver (target/testbed-it);
# stop it however the run ends.
stop_shared_testbed() { TESTBED_STATE=$TESTBED_ROOT/target/testbed-it tests/testbed/down.sh >/dev/null 2>&1 || true; }
trap stop_shared_testbed EXIT

# The image's build stage (a release build: the longest step) runs in the background at
# the lowest CPU priority, in a target directory of its own, while the test bed and the
# tests below mostly wait on timers and sockets; it has the CPU they leave idle and is
# waited for at the end. Its failure fails the run like any step's.
release_log=$TESTBED_ROOT/target/build-release.log
step "the image's build stage, outside Docker: scripts/build-release.sh (in the background, log: $release_log)"
# Its own process group (set -m), so that cargo and rustc stop with it; not its own
# session (setsid): with the kernel's autogroup scheduling a new session is a new CPU
# group that gets an equal share whatever its nice value, and the build slowed the
# tests' build 2.5 times.
set -m
CARGO_TARGET_DIR=$TESTBED_ROOT/target/image nice -n 19 scripts/build-release.sh >"$release_log" 2>&1 &
release_pid=$!
set +m
stop_release_build() { kill -- "-$release_pid" 2>/dev/null || true; }
trap 'stop_release_build; stop_shared_testbed' EXIT

step "the README's run command: scripts/run-local.sh --until-ready"
scripts/run-local.sh --until-ready
step "cargo test"
cargo test --workspace --locked
# Not a measurement (that is scripts/bench.sh, outside CI): every phase of the scale
# benchmark (copies, the restart, the deletes) on a few objects, so that it still runs.
step "the scale benchmark's smoke run: 12 ClusterSnapshots and 6 copies, both modes, restart included"
cargo bench --locked --profile dev --bench scale -- --snapshots 12 --copies 6 --snapshot-seconds 20 --out "$TESTBED_ROOT/target/bench-smoke"
step "the image's build stage: waiting for scripts/build-release.sh" "$release_log"
wait "$release_pid"
cat "$release_log"
