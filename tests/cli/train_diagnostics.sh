#!/usr/bin/env bash
# What a training run tells its user (src/train/diagnostics.cpp,
# training_monitor.cpp, run_info.cpp): diagnostics in metrics.jsonl at each
# logged step, per-class scores and the confusion matrix at each validation,
# the single-class and update-ratio warnings of a run that cannot learn
# (base_lr 0: the zero-initialised score layers predict class 0 everywhere),
# once each, run.json, report.html; and model.class_weights
# "median_frequency" equal to Eigen & Fergus's formula computed with numpy
# from the label PNGs.
# Usage (from the repo root): bash tests/cli/train_diagnostics.sh path/to/fcn
set -euo pipefail
fcn=$(realpath "$1")
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
cd "$tmp"
fail() { echo "FAIL: $*" >&2; exit 1; }

"$fcn" make-synthetic --out data --train 12 --val 4 --size 48 48 --classes 3 --seed 3 >/dev/null
cat > run.json <<'JSON'
{"model": {"arch": "fcn8s", "num_classes": 3, "width": 0.0625, "normalize": "valid"},
 "data": {"format": "voc", "root": "data", "seed": 5, "input_scale": 0.017, "class_names": ["background", "disk", "square"]},
 "solver": {"base_lr": 0, "momentum": 0.9, "max_iter": 12, "snapshot_every": 0, "test_every": 4,
            "display_every": 2, "threads": 1, "seed": 7}}
JSON

echo "== a run that cannot learn: warned once per kind, within two validations"
"$fcn" train --config run.json --out stuck 2>stuck.err || { cat stuck.err; fail "train exited $?"; }
grep -q "^warning: iteration 8: the last 2 validations predicted 'background' for 100.0% of the pixels" stuck.err ||
  { cat stuck.err; fail "no single-class warning at the second validation"; }
grep -q "^warning: iteration 2: the update/weight ratio is 0 .*below the band" stuck.err ||
  { cat stuck.err; fail "no update-ratio warning at the first logged step"; }
[[ $(grep -c "^warning: " stuck.err) -eq 2 ]] || { cat stuck.err; fail "expected exactly two warnings"; }
/usr/bin/python3 - stuck <<'PY'
import json, sys
run = sys.argv[1]
records = [json.loads(line) for line in open(f"{run}/metrics.jsonl")]
steps = [r for r in records if "loss" in r]
vals = [r for r in records if "val" in r]
warnings = [r["warning"]["kind"] for r in records if "warning" in r]
assert [r["iter"] for r in steps] == [2, 4, 6, 8, 10, 12], steps
assert [r["iter"] for r in vals] == [4, 8, 12], vals
assert sorted(warnings) == ["single_class", "update_ratio"], warnings
for r in steps:
    d = r["diag"]
    assert set(d["relu_zero"]) == {"relu1", "relu2", "relu3", "relu4", "relu5", "relu6", "relu7"}, d["relu_zero"]
    assert all(0 <= v <= 1 for v in d["relu_zero"].values())
    assert "conv1_1.weight" in d["grad_norm"] and "score_fr.bias" in d["grad_norm"]
    assert all(v == 0 for v in d["update_ratio"].values()), d["update_ratio"]  # lr 0: nothing moves
for r in vals:
    v = r["val"]
    assert len(v["per_class"]) == 3 and len(v["confusion"]) == 3
    assert sum(c["pred_pixels"] for c in v["per_class"][1:]) == 0  # all background
    assert sum(map(sum, v["confusion"])) == sum(c["gt_pixels"] for c in v["per_class"])
info = json.load(open(f"{run}/run.json"))
assert info["state"] == "finished" and info["iter"] == 12 and info["max_iter"] == 12, info
assert info["command"].startswith("fcn train --config run.json --out stuck"), info["command"]
assert info["model"]["precision"] == "fp32" and info["model"]["num_classes"] == 3
assert info["class_weights"] is None
page = open(f"{run}/report.html").read()
assert page.count('class="val-point"') == 3, page.count('class="val-point"')
assert page.count('<tr') >= 3 and 'id="confusion"' in page
print("ok: metrics, warnings, run.json, report.html")
PY

echo "== median_frequency weights equal numpy's Eigen & Fergus weights"
"$fcn" train --config run.json --out weighted --set model.class_weights=median_frequency --set solver.max_iter=2 \
  --set solver.base_lr=0.001 2>weighted.err || { cat weighted.err; fail "weighted train failed"; }
grep -q "^info: class weights (median frequency): background " weighted.err || { cat weighted.err; fail "no weights in the header"; }
grep -q '"class_weights": "median_frequency"' weighted/config.json || fail "config.json lost median_frequency"
/usr/bin/python3 - <<'PY'
import json
import numpy as np
from PIL import Image
ids = open("data/ImageSets/Segmentation/train.txt").read().split()
classes = 3
pixels = np.zeros(classes); image_pixels = np.zeros(classes)
for i in ids:
    label = np.array(Image.open(f"data/SegmentationClass/{i}.png"))
    counted = label[label < classes]
    counts = np.bincount(counted, minlength=classes)
    pixels += counts
    image_pixels += (counts > 0) * counted.size
freq = pixels / image_pixels
expected = np.median(freq) / freq
got = np.array(json.load(open("weighted/run.json"))["class_weights"])
assert np.allclose(got, expected, rtol=1e-9), (got, expected)
print("ok: weights", got)
PY
echo "all passed"
