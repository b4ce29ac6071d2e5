# Shared helpers for the test-bed scripts. Sourced, never run.
# shellcheck shell=bash

TESTBED_K8S_VERSION=v1.20.2
TESTBED_CACHE=${DBSNAPSHOT_CACHE:-$HOME/.cache/dbsnapshot-operator}
TESTBED_ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
# Where the running test bed keeps its state; tests point it elsewhere.
TESTBED_STATE=${TESTBED_STATE:-$TESTBED_ROOT/target/testbed}

CURRENT_STEP=""
CURRENT_LOG=""

step() {
  CURRENT_STEP=$1
  CURRENT_LOG=${2:-}
  echo "==> $CURRENT_STEP" >&2
}

# Set to a command to run after a failure has been reported (up.sh stops what it
# started).
ON_ERROR_CLEANUP=""

# On any failure: name the step, show the tail of its log, clean up.
on_error() {
  local rc=$?
  trap - ERR
  echo "testbed: step failed: ${CURRENT_STEP:-unknown} (exit $rc)" >&2
  if [ -n "$CURRENT_LOG" ] && [ -f "$CURRENT_LOG" ]; then
    echo "---- last 40 lines of $CURRENT_LOG ----" >&2
    tail -n 40 "$CURRENT_LOG" >&2
    echo "----" >&2
  fi
  if [ -n "$ON_ERROR_CLEANUP" ]; then
    $ON_ERROR_CLEANUP >&2 || true
  fi
  exit "$rc"
}

# Runs a command with its output going to the current step's log.
logged() {
  if [ -n "$CURRENT_LOG" ]; then
    "$@" >>"$CURRENT_LOG" 2>&1
  else
    "$@"
  fi
}

as_root() {
  if [ "$(id -u)" = 0 ]; then "$@"; else sudo "$@"; fi
}

# A free TCP port on 127.0.0.1, chosen by the kernel.
free_port() {
  python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1]); s.close()'
}

# A process counts as running until it has exited (a zombie has).
alive() {
  kill -0 "$1" 2>/dev/null || return 1
  [ "$(awk '{print $3}' "/proc/$1/stat" 2>/dev/null)" != Z ]
}

# wait_until SECONDS DESCRIPTION PID COMMAND... : polls COMMAND every 0.2 s; fails
# at once if process PID exits first.
wait_until() {
  local secs=$1 what=$2 pid=$3
  shift 3
  local deadline=$((SECONDS + secs))
  while ! "$@" >/dev/null 2>&1; do
    if ! alive "$pid"; then
      echo "testbed: $what: the process ($pid) exited before it was ready" >&2
      return 1
    fi
    if [ "$SECONDS" -ge "$deadline" ]; then
      echo "testbed: timed out after ${secs}s waiting for $what" >&2
      return 1
    fi
    sleep 0.2
  done
}

apt_updated=0
apt_install() {
  local missing=()
  local p
  for p in "$@"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
  done
  [ ${#missing[@]} -eq 0 ] && return 0
  if [ $apt_updated = 0 ]; then
    logged as_root apt-get update
    apt_updated=1
  fi
  logged as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends "${missing[@]}"
}

ensure_deb_src() {
  local src=/etc/apt/sources.list.d/debian-src.sources
  [ -f "$src" ] && return 0
  local base=/etc/apt/sources.list.d/debian.sources
  if [ ! -f "$base" ]; then
    echo "testbed: $base not found; cannot derive a deb-src entry" >&2
    return 1
  fi
  sed 's/^Types: deb$/Types: deb-src/' "$base" | as_root tee "$src" >/dev/null
  apt_updated=0
}
