#!/usr/bin/env bash
# Runs the operator locally against the test bed: brings up kube-apiserver and the AWS
# emulator (with the clusters and snapshots the examples name), installs the CRDs, starts the
# operator, applies examples/ and shows `kubectl get dbsnapshots` until Ctrl-C, which
# tears everything down.
#
#   scripts/run-local.sh [--until-ready]
#
# --until-ready: stop (and tear down) once every example is Ready; exit 1 if that
# takes more than RUN_LOCAL_TIMEOUT seconds (default 180).
set -euo pipefail
cd "$(dirname "$0")/.."
. tests/testbed/lib.sh
trap on_error ERR

until_ready=0
case "${1:-}" in
  --until-ready) until_ready=1 ;;
  "") ;;
  *)
    sed -n '2,11p' "$0" | sed 's/^# \{0,1\}//'
    exit 2
    ;;
esac

step "build the operator and the AWS emulator (cargo)"
cargo build --quiet --workspace --bins
operator_pid=
teardown() {
  trap - EXIT INT TERM
  if [ -n "$operator_pid" ] && kill -0 "$operator_pid" 2>/dev/null; then
    kill -TERM "$operator_pid" 2>/dev/null || true
    wait "$operator_pid" 2>/dev/null || true
  fi
  tests/testbed/down.sh >/dev/null
  echo "==> torn down" >&2
}
trap teardown EXIT
trap 'exit 130' INT TERM

step "bring up the test bed"
tests/testbed/down.sh >/dev/null # start from a clean slate
EMULATOR_BIN=$PWD/target/debug/aws-emulator \
  EMULATOR_SNAPSHOT_SECONDS=${EMULATOR_SNAPSHOT_SECONDS:-20} \
  tests/testbed/up.sh >/dev/null
. "$TESTBED_STATE/env.sh"

step "create the clusters the examples snapshot (emulator admin API)"
curl -sf -XPOST "$AWS_ENDPOINT_URL/_emulator/seed" -H 'content-type: application/json' \
  -d '{"redshift": ["analytics"], "docdb": ["orders"], "replicationGroups": ["sessions"]}' >/dev/null
# The automated snapshot examples/redshift-snapshotcopy.yaml keeps.
curl -sf -XPOST "$AWS_ENDPOINT_URL/_emulator/redshift/automated-snapshot" -H 'content-type: application/json' \
  -d '{"clusterIdentifier": "analytics", "snapshotIdentifier": "rs:analytics-2026-11-22-03-00"}' >/dev/null

step "install the CRDs"
# --validate=false: kubectl validates CRDs against the server's own schema, and
# Kubernetes 1.20 does not know x-kubernetes-validations yet (it drops the CEL rules).
kubectl apply --validate=false -f crds/ >/dev/null
kubectl wait --for condition=established --timeout=60s crd/clustersnapshots.dbsnapshot.io crd/snapshotcopies.dbsnapshot.io >/dev/null

step "start the operator (log: $TESTBED_STATE/logs/operator.log)"
target/debug/dbsnapshot-operator run --metrics-addr 127.0.0.1:0 --max-poll-seconds 5 \
  >"$TESTBED_STATE/logs/operator.log" 2>&1 &
operator_pid=$!

step "apply examples/"
kubectl apply -f examples/

deadline=$((SECONDS + ${RUN_LOCAL_TIMEOUT:-180}))
total=$(kubectl get dbsnapshots --no-headers | wc -l)
while true; do
  echo
  kubectl get dbsnapshots
  ready=$(kubectl get dbsnapshots -o jsonpath='{range .items[*]}{.status.conditions[?(@.type=="Ready")].status}{"\n"}{end}' | grep -c '^True$' || true)
  if [ "$until_ready" = 1 ]; then
    if [ "$ready" = "$total" ]; then
      echo "==> all $total objects are Ready" >&2
      exit 0
    fi
    if [ "$SECONDS" -ge "$deadline" ]; then
      echo "==> not all snapshots became Ready in time; operator log:" >&2
      tail -n 30 "$TESTBED_STATE/logs/operator.log" >&2
      exit 1
    fi
  fi
  sleep 3
done
