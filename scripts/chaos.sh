#!/usr/bin/env bash
# The chaos run: prepares a kube-apiserver of its own (target/testbed-chaos; built once
# and cached), then runs benches/chaos.rs (release build): 200 objects (by default)
# through create → Ready → delete, and 5 SnapshotSchedules on a per-minute cron on the
# operator's fast test clock, while the AWS emulator injects faults, the operator is
# SIGKILLed at random moments and the kube-apiserver restarts once; then checks the
# invariants (docs/reliability.md). Arguments go to the run, e.g. --objects 200
# --kills 10 --seed 7 --runs 3 --schedules 5 --schedule-speed 6 (--schedules 0: none).
# Appends the figures of each run to target/chaos/results.json; exits non-zero on the
# first run whose invariants break.
set -euo pipefail
cd "$(dirname "$0")/.."
. tests/testbed/lib.sh
trap on_error ERR
mkdir -p "$TESTBED_STATE/logs"
log=$TESTBED_STATE/logs/chaos-prepare.log
: >"$log"
step "kube-apiserver $TESTBED_K8S_VERSION, etcd and Go" "$log"
tests/testbed/build-apiserver.sh >>"$log" 2>&1
CURRENT_LOG=
stop_chaos_testbed() { TESTBED_STATE=$TESTBED_ROOT/target/testbed-chaos tests/testbed/down.sh >/dev/null 2>&1 || true; }
trap stop_chaos_testbed EXIT
runs=1
args=()
while [ $# -gt 0 ]; do
  case $1 in
    --runs) runs=$2; shift 2 ;;
    *) args+=("$1"); shift ;;
  esac
done
for run in $(seq 1 "$runs"); do
  step "chaos run $run of $runs: cargo bench --bench chaos -- ${args[*]:-}"
  cargo bench --locked --bench chaos -- "${args[@]}"
done
