#!/usr/bin/env bash
# promtool, which checks deploy/prometheus/rules.yaml (tests/observability.rs): Debian's
# package prometheus has it. Installs it unless promtool is on the PATH already.
set -euo pipefail
. "$(dirname "$0")/lib.sh"
command -v promtool >/dev/null 2>&1 && exit 0
apt_install prometheus
command -v promtool >/dev/null
