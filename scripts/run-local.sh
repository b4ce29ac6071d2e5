#!/usr/bin/env bash
# Runs the operator locally against the test bed: brings up kube-apiserver and the AWS
# emulator (with the clusters and snapshots the examples name), installs the CRDs, starts the
# operator, applies examples/ and a demo SnapshotSchedule, and shows `kubectl get
# dbsnapshots` until Ctrl-C, which tears everything down. The local demo runs schedules
# 20x fast (the operator's hidden --schedule-clock-speed 20): the demo's per-minute cron
# makes a run every 3 s (one at a time, as each takes the emulator's 20 s), keeps the last
# 2 and copies each to eu-west-1.
#
#   scripts/run-local.sh [--until-ready]
#
# --until-ready: stop (and tear down) once every example is Ready and the demo schedule
# has pruned a run and made a Ready copy; exit 1 if that takes more than
# RUN_LOCAL_TIMEOUT seconds (default 240).
set -euo pipefail
cd "$(dirname "$0")/.."
. tests/testbed/lib.sh
trap on_error ERR

until_ready=0
case "${1:-}" in
  --until-ready) until_ready=1 ;;
  "") ;;
  *)
    sed -n '2,15p' "$0" | sed 's/^# \{0,1\}//'
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
# The role examples/aws-account.yaml assumes, trusting the test bed's own account.
EMULATOR_BIN=$PWD/target/debug/aws-emulator \
  EMULATOR_SNAPSHOT_SECONDS=${EMULATOR_SNAPSHOT_SECONDS:-20} \
  EMULATOR_ARGS="--role arn:aws:iam::210987654321:role/dbsnapshot-operator=123456789012" \
  tests/testbed/up.sh >/dev/null
. "$TESTBED_STATE/env.sh"

step "create the clusters the examples snapshot (emulator admin API)"
curl -sf -XPOST "$AWS_ENDPOINT_URL/_emulator/seed" -H 'content-type: application/json' \
  -d '{"redshift": ["analytics"], "docdb": ["orders", "demo"], "replicationGroups": ["sessions"]}' >/dev/null
# The automated snapshot examples/redshift-snapshotcopy.yaml keeps.
curl -sf -XPOST "$AWS_ENDPOINT_URL/_emulator/redshift/automated-snapshot" -H 'content-type: application/json' \
  -d '{"clusterIdentifier": "analytics", "snapshotIdentifier": "rs:analytics-2026-11-22-03-00"}' >/dev/null

step "install the CRDs"
# --validate=false: kubectl validates CRDs against the server's own schema, and
# Kubernetes 1.20 does not know x-kubernetes-validations yet (it drops the CEL rules).
kubectl apply --validate=false -f crds/ >/dev/null
kubectl wait --for condition=established --timeout=60s crd/clustersnapshots.dbsnapshot.io \
  crd/snapshotcopies.dbsnapshot.io crd/snapshotschedules.dbsnapshot.io \
  crd/awsaccounts.dbsnapshot.io >/dev/null

step "start the operator; the local demo runs schedules 20x fast (--schedule-clock-speed 20; log: $TESTBED_STATE/logs/operator.log)"
# --schedule-clock-speed is a hidden testing flag: schedules run on a clock 20 times
# faster than the real one, from the operator's start, so run names and scheduled times
# are ahead of the wall clock (kubectl shows their ages as <invalid>).
target/debug/dbsnapshot-operator run --metrics-addr 127.0.0.1:0 --max-poll-seconds 5 \
  --schedule-clock-speed 20 \
  >"$TESTBED_STATE/logs/operator.log" 2>&1 &
operator_pid=$!

step "apply examples/"
kubectl apply -f examples/

demo=demo-every-minute
step "apply the demo SnapshotSchedule $demo: cron */1 (every 3 s at 20x), keepLast 2, a copy to eu-west-1"
kubectl apply -f - <<'YAML'
apiVersion: dbsnapshot.io/v1alpha1
kind: SnapshotSchedule
metadata:
  name: demo-every-minute
spec:
  schedule: "*/1 * * * *"
  snapshotTemplate:
    spec:
      source:
        docdb:
          clusterIdentifier: demo
  copyTemplates:
    - name: dr
      spec:
        region: eu-west-1
  retention:
    keepLast: 2
YAML

# What the demo has shown so far (a run seen, then gone while the schedule lives, was
# pruned: nothing else deletes the demo's runs).
seen_runs=" "
pruned=
copy_ready=
demo_runs() {
  kubectl get csnap -l "dbsnapshot.io/schedule=$demo" -o jsonpath='{range .items[*]}{.metadata.name}{"\n"}{end}'
}
watch_demo() {
  local now name
  now=$(demo_runs)
  for name in $seen_runs; do
    if ! grep -qx "$name" <<<"$now"; then
      [ -n "$pruned" ] || echo "==> demo: run $name was pruned (keepLast 2)" >&2
      pruned=${pruned:-$name}
    fi
  done
  for name in $now; do
    case "$seen_runs" in *" $name "*) ;; *) seen_runs="$seen_runs$name " ;; esac
  done
  if [ -z "$copy_ready" ]; then
    copy_ready=$(kubectl get scopy -l "dbsnapshot.io/schedule=$demo" \
      -o jsonpath='{range .items[*]}{.metadata.name}{" "}{.status.conditions[?(@.type=="Ready")].status}{"\n"}{end}' |
      awk '$2 == "True" {print $1; exit}')
    [ -z "$copy_ready" ] || echo "==> demo: copy $copy_ready is Ready in eu-west-1" >&2
  fi
}
show_demo() {
  echo
  echo "--- the demo schedule, its runs (kubectl get csnap -l dbsnapshot.io/schedule=$demo) and copies"
  kubectl get ssched "$demo"
  kubectl get csnap -l "dbsnapshot.io/schedule=$demo"
  kubectl get scopy -l "dbsnapshot.io/schedule=$demo"
}

deadline=$((SECONDS + ${RUN_LOCAL_TIMEOUT:-240}))
started=$SECONDS
# The objects in examples/ (the runs that the example schedules make on the fast clock
# come and go; they are shown, not waited for).
examples_ready() {
  kubectl get -f examples/ -o jsonpath='{range .items[*]}{.status.conditions[?(@.type=="Ready")].status}{"\n"}{end}' |
    grep -c '^True$' || true
}
total=$(kubectl get -f examples/ --no-headers | wc -l)
while true; do
  echo
  kubectl get dbsnapshots
  watch_demo
  ready=$(examples_ready)
  if [ "$until_ready" = 1 ]; then
    if [ "$ready" = "$total" ] && [ -n "$pruned" ] && [ -n "$copy_ready" ]; then
      show_demo
      echo
      echo "--- the demo schedule's events"
      kubectl get events --field-selector "involvedObject.name=$demo" --sort-by=.lastTimestamp \
        -o custom-columns=REASON:.reason,MESSAGE:.message | tail -n 12
      echo "==> all $total example objects are Ready; the demo schedule made runs, pruned $pruned and copied to eu-west-1 ($copy_ready) in $((SECONDS - started)) s" >&2
      exit 0
    fi
    if [ "$SECONDS" -ge "$deadline" ]; then
      show_demo
      echo "==> not done in time: $ready of $total example objects Ready, demo pruned: ${pruned:-none}, demo copy Ready: ${copy_ready:-none}; operator log:" >&2
      tail -n 30 "$TESTBED_STATE/logs/operator.log" >&2
      exit 1
    fi
  elif [ $(((SECONDS - started) % 15)) -lt 3 ]; then
    show_demo
  fi
  sleep 3
done
