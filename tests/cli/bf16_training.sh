#!/usr/bin/env bash
# bf16 trains as well as fp32: the demo (tools/demo.sh: configs/synthetic-fcn8s.json
# on `fcn make-synthetic`'s default set, 1500 iterations) run in fp32 and with
# --set model.precision=bf16, side by side on the same data; the bf16 run's
# validation mean IoU (the mean of the last three validations) must be >= 0.8
# and no more than 0.02 below the fp32 run's. One-sided and averaged because
# the demo's last validation moves with rounding alone: fp32 runs that
# differ only in the GEMM library (FCN_GEMM) or the Winograd tile
# (FCN_WINOGRAD=2) ended at 0.876, 0.887, 0.903 and 0.927 (Zen 5), and one
# run moved 0.921 -> 0.887 between its last two validations.
# Both run at once, one thread each (the config's), ~3 minutes on 2 cores.
# Skipped (exit 77) where the CPU has no bf16 (`fcn --version`).
# Usage (from the repo root): bash tests/cli/bf16_training.sh path/to/fcn
set -euo pipefail
fcn=$(realpath "$1")
repo=$(pwd)
version=$("$fcn" --version)
if [[ "$version" != *"bf16: oneDNN"* ]]; then
  echo "SKIP: no bf16 on this CPU ($(sed -n 's/^bf16: //p' <<<"$version"))"
  exit 77
fi
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
cd "$tmp"

"$fcn" make-synthetic --out data >/dev/null
train() {  # precision
  "$fcn" train --config "$repo/configs/synthetic-fcn8s.json" --set data.root=data --set model.precision="$1" \
    --set solver.snapshot_every=0 --out "$1" >"$1.log" 2>&1
}
train fp32 &
fp32_pid=$!
train bf16 || { tail -n 20 bf16.log; echo "FAIL: the bf16 run" >&2; exit 1; }
wait "$fp32_pid" || { tail -n 20 fp32.log; echo "FAIL: the fp32 run" >&2; exit 1; }

/usr/bin/python3 - fp32/metrics.jsonl bf16/metrics.jsonl <<'PY'
import json, sys
def last_mious(path):
    records = [json.loads(line) for line in open(path)]
    val = [(r["iter"], r["val"]["mean_iou"]) for r in records if "mean_iou" in r.get("val", {})]
    if len(val) < 3:
        sys.exit(f"FAIL: {path} has {len(val)} validation records, expected at least 3")
    return val[-3:]
runs = {"fp32": last_mious(sys.argv[1]), "bf16": last_mious(sys.argv[2])}
for name, val in runs.items():
    print(f"{name} validation mean IoU: " + ", ".join(f"{m:.4f} (iter {it})" for it, m in val))
if [it for it, _ in runs["fp32"]] != [it for it, _ in runs["bf16"]]:
    sys.exit("FAIL: the two runs' last validations are at different iterations")
fp32, bf16 = (sum(m for _, m in runs[k]) / 3 for k in ("fp32", "bf16"))
print(f"mean of the last three: fp32 {fp32:.4f}, bf16 {bf16:.4f}")
if bf16 < 0.8:
    sys.exit(f"FAIL: bf16 mean IoU {bf16:.4f} < 0.8")
if bf16 < fp32 - 0.02:
    sys.exit(f"FAIL: bf16 mean IoU {bf16:.4f} is {fp32 - bf16:.4f} below fp32's (> 0.02)")
PY
