#!/usr/bin/env bash
# Creates (once) the virtualenv with boto3 and moto's server under ~/.cache and prints
# its path. Re-creating is skipped while the pinned versions are installed.
set -euo pipefail
. "$(dirname "$0")/lib.sh"
venv=$TESTBED_CACHE/venv
reqs="$(dirname "$0")/requirements.txt"
stamp=$venv/.requirements
if [ -x "$venv/bin/python" ] && cmp -s "$reqs" "$stamp"; then
  echo "$venv"
  exit 0
fi
python3 -m venv "$venv"
"$venv/bin/pip" install --quiet --disable-pip-version-check -r "$reqs"
cp "$reqs" "$stamp"
echo "$venv"
