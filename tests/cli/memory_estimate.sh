#!/usr/bin/env bash
# The inference memory estimate (fcn describe --size, from the memory plan)
# is within 25% of the peak RSS that fcn predict measures at two sizes, and
# an image over --max-memory runs in tiles under that budget.
# In a sanitizer build (fcn --version: "sanitizers: address, ...") the RSS
# holds ASan's shadow memory and quarantine, so a peak says nothing about
# fcn's own: there the commands run at 500x500 only, for ASan and UBSan to
# check, and the comparisons are skipped (exit 77).
# Usage (from the repo root): bash tests/cli/memory_estimate.sh path/to/fcn
set -euo pipefail
fcn=$(realpath "$1")
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
cd "$tmp"
fail() { echo "FAIL: $*" >&2; exit 1; }
instrumented=$("$fcn" --version | grep -c '^sanitizers: address' || true)
((instrumented)) || [[ -x /usr/bin/time ]] || { echo "SKIP: /usr/bin/time is not installed (Debian: time)"; exit 77; }

"$fcn" make-synthetic --out data --train 2 --val 1 --size 64 64 --classes 21 --seed 1 >/dev/null
cat > model.json <<'EOF'
{"model": {"arch": "fcn8s", "num_classes": 21, "width": 0.25}, "data": {"root": "data"},
 "solver": {"max_iter": 1, "test_every": 0, "snapshot_every": 0, "threads": 2}}
EOF
"$fcn" train --config model.json --out run 2>train.log || { cat train.log; fail "train"; }
/usr/bin/python3 -c "
from PIL import Image
import numpy as np
rng = np.random.RandomState(0)
for h, w in [(500, 500), (1000, 1500)]:
    Image.fromarray((rng.rand(h // 20, w // 20, 3) * 255).astype('uint8')).resize((w, h), Image.BILINEAR).save(f'img_{h}x{w}.jpg')
"
if ((instrumented)); then
  "$fcn" describe --config model.json --size 500 500 --json >/dev/null || fail "describe --size 500 500"
  "$fcn" predict --config model.json --weights run/final.safetensors --image img_500x500.jpg --out mask.png \
    --max-memory 100G 2>predict.log || { cat predict.log; fail "predict 500x500"; }
  if "$fcn" predict --config model.json --weights run/final.safetensors --image img_500x500.jpg --out mask.png \
    --max-memory 1M 2>predict.log; then fail "predict under --max-memory 1M succeeded"; fi
  grep -q "raise --max-memory" predict.log || { cat predict.log; fail "predict under --max-memory 1M: no error"; }
  echo "SKIP: a sanitizer build's RSS holds ASan's shadow memory and quarantine, so the peak-RSS comparisons mean" \
    "nothing there (ran describe and predict at 500x500 only)"
  exit 77
fi
# peak_mib H W [predict options...]: fcn predict's peak RSS in MiB
peak_mib() {
  local h=$1 w=$2
  shift 2
  /usr/bin/time -f "%M" -o rss.txt "$fcn" predict --config model.json --weights run/final.safetensors \
    --image "img_${h}x${w}.jpg" --out mask.png "$@" 2>predict.log || { cat predict.log; fail "predict ${h}x${w}"; }
  echo $(( $(tail -1 rss.txt) / 1024 ))
}
for size in "500 500" "1000 1500"; do
  set -- $size
  estimate=$("$fcn" describe --config model.json --size "$1" "$2" --json |
    /usr/bin/python3 -c "import json, sys; print(json.load(sys.stdin)['memory']['inference_bytes'] // 2**20)")
  measured=$(peak_mib "$1" "$2" --max-memory 100G)
  echo "$1x$2: estimate $estimate MiB, measured peak $measured MiB"
  /usr/bin/python3 -c "import sys; e, m = int(sys.argv[1]), int(sys.argv[2]); sys.exit(0 if abs(e - m) <= 0.25 * m else 1)" \
    "$estimate" "$measured" || fail "$1x$2: the estimate is more than 25% off the measured peak"
done
budget=600
measured=$(peak_mib 1000 1500 --max-memory ${budget}M)
grep -q "tiles of" predict.log || { cat predict.log; fail "an image over --max-memory ${budget}M did not run in tiles"; }
echo "1000x1500 in tiles under --max-memory ${budget}M: measured peak $measured MiB ($(grep -o '[0-9]* tiles of [0-9]* px' predict.log))"
(( measured <= budget )) || fail "the tiled run peaked at $measured MiB, over the ${budget} MiB budget"
echo "memory estimate checks passed"
