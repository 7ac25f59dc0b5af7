#!/usr/bin/env bash
# bf16 trains as well as fp32: the demo (tools/demo.sh: configs/synthetic-fcn8s.json
# on `fcn make-synthetic`'s default set, 1500 iterations) run in fp32 and with
# --set model.precision=bf16, side by side on the same data; the bf16 run's
# final validation mean IoU must be >= 0.8 and within 0.02 of the fp32 run's.
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
def final_miou(path):
    records = [json.loads(line) for line in open(path)]
    val = [r for r in records if "mean_iou" in r.get("val", {})]
    if not val:
        sys.exit(f"FAIL: {path} has no validation record")
    return val[-1]["iter"], val[-1]["val"]["mean_iou"]
(it32, fp32), (it16, bf16) = final_miou(sys.argv[1]), final_miou(sys.argv[2])
print(f"final validation mean IoU: fp32 {fp32:.4f} (iter {it32}), bf16 {bf16:.4f} (iter {it16})")
if it32 != it16:
    sys.exit("FAIL: the two runs' last validations are at different iterations")
if bf16 < 0.8:
    sys.exit(f"FAIL: bf16 mean IoU {bf16:.4f} < 0.8")
if abs(bf16 - fp32) > 0.02:
    sys.exit(f"FAIL: bf16 mean IoU {bf16:.4f} is {abs(bf16 - fp32):.4f} from fp32's (> 0.02)")
PY
