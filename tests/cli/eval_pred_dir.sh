#!/usr/bin/env bash
# fcn eval --pred-dir against a fresh synthetic dataset: the ground truth as
# its own prediction scores exactly 1; a shifted copy (half palette, half
# grayscale PNGs) scores what numpy's fast_hist and score.py's formulas give.
# Usage: tests/cli/eval_pred_dir.sh path/to/fcn
set -euo pipefail
fcn=$1
fail() { echo "FAIL: $*" >&2; exit 1; }
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

"$fcn" make-synthetic --out "$work/data" --train 2 --val 12 --size 40 56 --classes 5 --seed 3 >"$work/make.log"
grep -q "wrote 2 train + 12 val images (40x56, 5 classes" "$work/make.log" || fail "summary: $(cat "$work/make.log")"

# 1. Ground truth as prediction: every figure is exactly 1.
"$fcn" eval --pred-dir "$work/data/SegmentationClass" --data "$work/data" --num-classes 5 \
  --json "$work/self.json" >"$work/self.txt" 2>"$work/self.err"
grep -q "mean IoU 100.00%" "$work/self.txt" || fail "self table: $(cat "$work/self.txt")"
grep -q "12/12" "$work/self.err" || fail "no progress line: $(cat "$work/self.err")"
/usr/bin/python3 - "$work/self.json" <<'PY'
import json, sys
r = json.load(open(sys.argv[1]))
assert r["mean_iou"] == 1.0 and r["pixel_acc"] == 1.0 and r["mean_acc"] == 1.0 and r["fwavacc"] == 1.0, r
assert r["num_images"] == 12 and r["ignored_pixels"] > 0, r
assert [c["id"] for c in r["per_class"]] == list(range(5)), r
PY

# 2. A shifted prediction, scored independently with numpy.
mkdir "$work/pred"
/usr/bin/python3 - "$work" <<'PY'
import json, os, sys
import numpy as np
from PIL import Image
work = sys.argv[1]
ids = open(os.path.join(work, "data/ImageSets/Segmentation/val.txt")).read().split()
n = 5
hist = np.zeros((n, n), dtype=np.int64)
for k, i in enumerate(ids):
    gt = np.array(Image.open(os.path.join(work, "data/SegmentationClass", i + ".png")))
    pred = np.roll(gt, (3, -4), axis=(0, 1))
    pred[pred == 255] = 0  # a prediction is always a class
    if k % 2:
        Image.fromarray(pred.astype(np.uint8), mode="L").save(os.path.join(work, "pred", i + ".png"))
    else:
        im = Image.fromarray(pred.astype(np.uint8), mode="P")
        im.putpalette(Image.open(os.path.join(work, "data/SegmentationClass", i + ".png")).getpalette())
        im.save(os.path.join(work, "pred", i + ".png"))
    a, b = gt.ravel().astype(int), pred.ravel().astype(int)
    keep = (a >= 0) & (a < n)
    hist += np.bincount(n * a[keep] + b[keep], minlength=n * n).reshape(n, n)
with np.errstate(divide="ignore", invalid="ignore"):
    iu = np.diag(hist) / (hist.sum(1) + hist.sum(0) - np.diag(hist))
    freq = hist.sum(1) / hist.sum()
    want = {"pixel_acc": np.diag(hist).sum() / hist.sum(),
            "mean_acc": np.nanmean(np.diag(hist) / hist.sum(1)),
            "mean_iou": np.nanmean(iu),
            "fwavacc": (freq[freq > 0] * iu[freq > 0]).sum()}
json.dump({k: float(v) for k, v in want.items()} | {"iou": iu.tolist(), "gt": hist.sum(1).tolist(),
          "pred": hist.sum(0).tolist()}, open(os.path.join(work, "want.json"), "w"))
PY
"$fcn" eval --pred-dir "$work/pred" --data "$work/data" --split val --num-classes 5 \
  --class-names bg,disk,square,triangle,ring --json "$work/shift.json" >"$work/shift.txt" 2>/dev/null
grep -q "triangle" "$work/shift.txt" || fail "table lacks class names: $(cat "$work/shift.txt")"
/usr/bin/python3 - "$work/shift.json" "$work/want.json" <<'PY'
import json, math, sys
got, want = json.load(open(sys.argv[1])), json.load(open(sys.argv[2]))
for key in ["pixel_acc", "mean_acc", "mean_iou", "fwavacc"]:
    assert math.isclose(got[key], want[key], rel_tol=1e-12), (key, got[key], want[key])
assert got["mean_iou"] < 0.9, got["mean_iou"]
for c, iou, gt, pred in zip(got["per_class"], want["iou"], want["gt"], want["pred"]):
    assert math.isclose(c["iou"], iou, rel_tol=1e-12) and c["gt_pixels"] == gt and c["pred_pixels"] == pred, c
assert got["per_class"][2]["name"] == "square"
PY

# 3. Clear errors: a missing prediction, mixed modes, wrong class-name count.
rm "$work/pred/val_00004.png"
if "$fcn" eval --pred-dir "$work/pred" --data "$work/data" --num-classes 5 >/dev/null 2>"$work/err"; then
  fail "missing prediction accepted"
fi
grep -q "val_00004.png: missing prediction" "$work/err" || fail "missing: $(cat "$work/err")"
if "$fcn" eval --pred-dir "$work/pred" --config c.json --num-classes 5 >/dev/null 2>"$work/err"; then
  fail "mixed modes accepted"
fi
grep -q "error: options of both modes given" "$work/err" || fail "modes: $(cat "$work/err")"
if "$fcn" eval --pred-dir "$work/data/SegmentationClass" --data "$work/data" --num-classes 5 --class-names a,b \
  >/dev/null 2>"$work/err"; then
  fail "wrong class-name count accepted"
fi
grep -q "error: --class-names: has 2 names but --num-classes is 5" "$work/err" || fail "names: $(cat "$work/err")"
echo "eval_pred_dir: OK"
