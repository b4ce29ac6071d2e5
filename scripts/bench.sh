#!/usr/bin/env bash
# The scale benchmark: prepares the test bed (kube-apiserver v1.20.2, built once and
# cached), then runs benches/scale.rs (release build): N ClusterSnapshots across 20
# source clusters and all three engines, batched and per-object, side by side.
# Arguments go to the benchmark, e.g. --snapshots 100 --modes batched.
# Writes target/bench/results.json and target/bench/results.md.
#
# scripts/bench.sh --exports [--exports N] [--snapshot-seconds S]: the export benchmark
# instead (benches/exports.rs, about 2.5 minutes): 20 ElastiCache exports to S3 at once,
# printing the AWS calls per export and the wall time. It counts calls and waits on
# timers, so it uses the test build (dev profile) rather than a release build.
set -euo pipefail
cd "$(dirname "$0")/.."
. tests/testbed/lib.sh
trap on_error ERR
mkdir -p "$TESTBED_STATE/logs"
log=$TESTBED_STATE/logs/bench-prepare.log
: >"$log"
step "kube-apiserver $TESTBED_K8S_VERSION, etcd and Go" "$log"
tests/testbed/build-apiserver.sh >>"$log" 2>&1
CURRENT_LOG=
stop_shared_testbed() { TESTBED_STATE=$TESTBED_ROOT/target/testbed-it tests/testbed/down.sh >/dev/null 2>&1 || true; }
trap stop_shared_testbed EXIT
if [ "${1:-}" = "--exports" ]; then
  shift
  step "cargo bench --profile dev --bench exports -- $*"
  cargo bench --locked --profile dev --bench exports -- "$@"
  exit 0
fi
step "cargo bench --bench scale -- $*"
cargo bench --locked --bench scale -- "$@"
