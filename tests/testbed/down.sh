#!/usr/bin/env bash
# Stops exactly the processes tests/testbed/up.sh started (by the PIDs it recorded)
# and removes their temporary data. Safe to run when nothing is up.
set -euo pipefail
. "$(dirname "$0")/lib.sh"
run=$TESTBED_STATE/run
pids=$run/pids
if [ -f "$pids" ]; then
  # Stop in reverse start order: the AWS endpoint, kube-apiserver, then etcd.
  tac "$pids" | while read -r name pid; do
    if alive "$pid"; then
      kill -TERM "$pid" 2>/dev/null || true
      for _ in $(seq 1 50); do
        alive "$pid" || break
        sleep 0.2
      done
      if alive "$pid"; then
        echo "down.sh: $name ($pid) ignored SIGTERM; sending SIGKILL" >&2
        kill -KILL "$pid" 2>/dev/null || true
      fi
    fi
    echo "stopped $name ($pid)"
  done
fi
rm -rf "$run" "$TESTBED_STATE/env.sh" "$TESTBED_STATE/kubeconfig"
