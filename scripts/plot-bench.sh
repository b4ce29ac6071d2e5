#!/usr/bin/env bash
# Plots the scale benchmark's runs: AWS calls per object lifecycle and the operator's
# peak RSS against N, batched and per-object, from a results.json (default
# docs/benchmarks/results.json, the runs docs/benchmarks.md reports) into a PNG
# (default docs/benchmarks/scale.png). matplotlib comes from a virtualenv of its own
# under ~/.cache, made once.
#   scripts/plot-bench.sh [results.json] [out.png]
set -euo pipefail
cd "$(dirname "$0")/.."
. tests/testbed/lib.sh
results=${1:-docs/benchmarks/results.json}
out=${2:-docs/benchmarks/scale.png}
venv=$TESTBED_CACHE/plot-venv
if ! [ -x "$venv/bin/python" ] || ! "$venv/bin/python" -c 'import matplotlib' 2>/dev/null; then
  python3 -m venv "$venv"
  "$venv/bin/pip" install --quiet --disable-pip-version-check 'matplotlib==3.9.2'
fi
"$venv/bin/python" - "$results" "$out" <<'PY'
import json, sys
import matplotlib
matplotlib.use("Agg")
import matplotlib.pyplot as plt

results, out = sys.argv[1], sys.argv[2]
runs = json.load(open(results))
# The latest run of each mode, N and M (results.json keeps earlier ones for the record).
latest = {}
for r in runs:
    latest[(r["mode"], r["snapshots"], r.get("copies", 0))] = r
runs = list(latest.values())
fig, (calls, rss) = plt.subplots(1, 2, figsize=(11, 4.2))
styles = {"batched": ("tab:blue", "o"), "per-object": ("tab:red", "s")}
for mode, (color, marker) in styles.items():
    for copies, line in ((False, "-"), (True, "--")):
        pts = sorted(
            (r["snapshots"] + r.get("copies", 0), r["aws_calls_per_snapshot"], r["peak_rss_mib"], r.get("capped_after_s"))
            for r in runs
            if r["mode"] == mode and bool(r.get("copies", 0)) == copies
        )
        if not pts:
            continue
        label = f"{mode}" + (" (with copies)" if copies else "")
        xs = [p[0] for p in pts]
        calls.plot(xs, [p[1] for p in pts], line, color=color, marker=marker, label=label)
        rss.plot(xs, [p[2] for p in pts], line, color=color, marker=marker, label=label)
        for p in pts:
            if p[3]:
                calls.annotate(f"capped {p[3]:.0f} s", (p[0], p[1]), fontsize=7)
for ax, title, unit in (
    (calls, "AWS calls per object lifecycle", "calls"),
    (rss, "Operator peak RSS", "MiB"),
):
    ax.set_xscale("log")
    ax.set_xlabel("objects (ClusterSnapshots + SnapshotCopies)")
    ax.set_ylabel(unit)
    ax.set_title(title)
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=8)
calls.set_yscale("log")
fig.suptitle("Scale benchmark: 300 s snapshots, 12 requests/s account budget", fontsize=10)
fig.tight_layout()
fig.savefig(out, dpi=110)
print(f"wrote {out} from {len(runs)} runs")
PY
