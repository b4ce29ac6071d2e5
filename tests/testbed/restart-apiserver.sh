#!/usr/bin/env bash
# Crashes the test bed's kube-apiserver (SIGKILL), keeps it down for SECONDS (default
# 0), then starts it again with the same flags on the same port (etcd keeps the data)
# and waits until it is ready. The new PID replaces the old one for down.sh.
#
#   tests/testbed/restart-apiserver.sh [SECONDS]
set -euo pipefail
. "$(dirname "$0")/lib.sh"
run=$TESTBED_STATE/run
down=${1:-0}
pid=$(awk '$1 == "kube-apiserver" { print $2 }' "$run/pids")
if [ -z "$pid" ] || [ ! -f "$run/kube-apiserver.cmd" ]; then
  echo "restart-apiserver.sh: no kube-apiserver recorded under $run" >&2
  exit 1
fi
kill -KILL "$pid" 2>/dev/null || true
while alive "$pid"; do sleep 0.1; done
sleep "$down"
cmd=$(cat "$run/kube-apiserver.cmd")
nohup bash -c "exec $cmd" >>"$TESTBED_STATE/logs/kube-apiserver.log" 2>&1 </dev/null &
new=$!
sed -i "s/^kube-apiserver $pid\$/kube-apiserver $new/" "$run/pids"
port=$(cat "$run/api_port")
token=$(cut -d, -f1 "$run/tokens.csv")
wait_until 120 "kube-apiserver /readyz" "$new" sh -c \
  "curl -sfk -H 'Authorization: Bearer $token' https://127.0.0.1:$port/readyz | grep -qx ok"
echo "kube-apiserver restarted ($pid -> $new) after ${down}s down"
