#!/usr/bin/env bash
# The Python module (python/fcn_module.cpp on the public API), imported from
# the build tree: predict gives `fcn predict`'s mask (the C++ API's) and
# probabilities whose argmax it is; train for a few iterations writes the
# metrics.jsonl of `fcn train` with the same config and seed (timings aside);
# evaluate returns `fcn eval --json`'s dict; a bad config raises fcn.Error
# with the line fcn prints; on_progress returning False stops the run. Then
# the module installed (cmake --install --component python) imports from the
# prefix. Exit 77 when the module was not built (no pybind11-dev, FCN_PYTHON=OFF).
# Usage (from the repo root): bash tests/cli/python_module.sh path/to/fcn
set -euo pipefail
fcn=$(realpath "$1")
source tests/skip_if_sanitized.sh "$fcn"
build=$(dirname "$fcn")
compgen -G "$build/python/fcn*.so" >/dev/null || { echo "SKIP: no Python module in $build/python (pybind11-dev missing or FCN_PYTHON=OFF)"; exit 77; }
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
cd "$tmp"
fail() { echo "FAIL: $*" >&2; exit 1; }

"$fcn" make-synthetic --out data --train 4 --val 2 --size 36 44 --classes 3 --seed 3 >/dev/null
cat > tiny.json <<'JSON'
{"model": {"arch": "fcn8s", "num_classes": 3, "width": 0.03125, "normalize": "valid"},
 "data": {"format": "voc", "root": "data", "seed": 5, "augment": {"flip": true}},
 "solver": {"base_lr": 0.001, "momentum": 0.9, "max_iter": 3, "snapshot_every": 0, "test_every": 3,
            "display_every": 1, "threads": 1, "seed": 7}}
JSON
"$fcn" train --config tiny.json --out cli_run 2>train.log || { cat train.log; fail "fcn train"; }
image=data/JPEGImages/val_00000.jpg
"$fcn" predict --config cli_run/config.json --weights cli_run/final.safetensors --image $image --out cli_mask.png 2>/dev/null
"$fcn" eval --config cli_run/config.json --weights cli_run/final.safetensors --json cli_eval.json >/dev/null 2>&1
rc=0
"$fcn" predict --config tiny.json --weights cli_run/final.safetensors --image $image --out x.png \
  --set solver.no_such_key=1 2>bad.log || rc=$?
[[ $rc -eq 1 ]] || fail "fcn predict with a bad key: exit $rc"

PYTHONPATH="$build/python" /usr/bin/python3 - <<'PY'
import json, sys
import numpy as np
from PIL import Image
import fcn

def fail(message):
    print("FAIL:", message, file=sys.stderr)
    sys.exit(1)

print("fcn", fcn.__version__, "from", fcn.__file__)
# training: the same metrics.jsonl as fcn train (images/s are timings)
seen = []
summary = fcn.train("tiny.json", "py_run", handle_signals=False, on_progress=lambda p: seen.append(p))
if summary["iterations"] != 3 or summary["stopped"]: fail(f"train summary {summary}")
if [p["iteration"] for p in seen] != [1, 2, 3]: fail(f"on_progress saw {seen}")
def records(path):
    out = []
    for line in open(path):
        record = json.loads(line)
        record.pop("images_per_s", None)
        out.append(record)
    return out
py_records, cli_records = records("py_run/metrics.jsonl"), records("cli_run/metrics.jsonl")
if py_records != cli_records: fail(f"metrics.jsonl differ:\n{py_records}\n{cli_records}")
if not any("val" in r for r in py_records): fail("no validation record to compare")
print(f"ok: fcn.train wrote fcn train's metrics.jsonl ({len(py_records)} records, timings aside)")

# predict: fcn predict's mask (PIL reads the palette PNG's indices)
model = fcn.Model("py_run/config.json", "py_run/final.safetensors")
bgr = np.array(Image.open("data/JPEGImages/val_00000.jpg").convert("RGB"))[:, :, ::-1]
mask = model.predict(bgr)
cli_mask = np.array(Image.open("cli_mask.png"))
if mask.dtype != np.uint8 or mask.shape != bgr.shape[:2]: fail(f"mask {mask.dtype} {mask.shape}")
if not np.array_equal(mask, cli_mask): fail(f"mask differs from fcn predict's in {(mask != cli_mask).sum()} pixels")
probabilities = model.probabilities(bgr)
if probabilities.dtype != np.float32 or probabilities.shape != (3,) + bgr.shape[:2]: fail(f"probabilities {probabilities.shape}")
if not np.array_equal(probabilities.argmax(axis=0), mask): fail("predict is not the argmax of probabilities")
if not np.allclose(probabilities.sum(axis=0), 1, atol=1e-5): fail("probabilities do not sum to 1")
if model.num_classes != 3 or len(model.class_names) != 3: fail("class names")
if fcn.palette().shape != (256, 3) or list(fcn.palette()[1]) != [0, 0, 128]: fail("palette")
fcn.write_mask_png("py_mask.png", mask)
if open("py_mask.png", "rb").read() != open("cli_mask.png", "rb").read(): fail("write_mask_png differs from fcn predict's file")
print("ok: Model.predict equals fcn predict's mask byte for byte; probabilities argmax to it")

# evaluate: fcn eval --json's dict
scores = fcn.evaluate("py_run/config.json", "py_run/final.safetensors")
if scores != json.load(open("cli_eval.json")): fail(f"evaluate {scores} != fcn eval --json")
print(f"ok: fcn.evaluate equals fcn eval --json (mean IoU {scores['mean_iou']:.4f})")

# errors: fcn.Error with fcn's line
cli_line = open("bad.log").read().strip()
try:
    fcn.Model("tiny.json", "cli_run/final.safetensors", overrides=["solver.no_such_key=1"])
    fail("a bad config key raised nothing")
except fcn.Error as e:
    if "error: " + str(e) != cli_line: fail(f"message {e!s} vs fcn's {cli_line}")
try:
    model.predict(np.zeros((4, 4), np.uint8))
    fail("a 2-D image raised nothing")
except fcn.Error:
    pass
if not issubclass(fcn.Error, RuntimeError): fail("fcn.Error is not a RuntimeError")
print("ok: fcn.Error carries fcn's line:", cli_line)

# on_progress returning False stops as Ctrl-C does
stopped = fcn.train("tiny.json", "stopped", handle_signals=False, on_progress=lambda p: p["iteration"] < 2)
if not stopped["stopped"] or stopped["iterations"] != 2 or not stopped["checkpoint"]: fail(f"stop: {stopped}")
print("ok: on_progress returning False stopped after iteration 2 with", stopped["checkpoint"])
PY

# installed: the module alone from its install prefix
cmake --install "$build" --component python --prefix "$tmp/prefix" >install.log || { cat install.log; fail "install"; }
site=$(dirname "$(find "$tmp/prefix" -name 'fcn*.so' | sed -n 1p)")
[[ -d $site ]] || fail "cmake --install --component python installed no module"
(cd / && PYTHONPATH="$site" /usr/bin/python3 -c "import fcn, sys; assert fcn.__file__.startswith('$site'), fcn.__file__; print('ok: import fcn from', fcn.__file__)")
