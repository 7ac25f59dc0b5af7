#!/usr/bin/env bash
# concat and resize through fcn export-onnx: one explicit graph with concat
# along channels, h and w and resize by a ref's size (half-pixel and
# align_corners), by non-integer factors (0.45 down, 1.7 up), by 2 and to a
# fixed size;
# 1. onnx.checker.check_model(full_check=True) accepts the dynamic and a
#    fixed-size export, and the dynamic one computes its Resize sizes from
#    Shape (no constant size but the fixed one);
# 2. ONNX Runtime (npm onnxruntime-node, as tests/cli/onnx_runtime.sh) runs the
#    dynamic export at two image sizes and the fixed one, against fcn forward's
#    scores within 1e-4 relative (max abs diff / max abs). Part 2 skips where
#    node or onnxruntime-node is missing (exit 77 after part 1 passed).
# OpenCV dnn runs each form at a fixed size in tests/test_onnx_export.cpp.
set -euo pipefail
fcn=$(realpath "$1")
cache=${FCN_BENCH_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/fcn-bench}
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
cat > "$tmp/config.json" <<'JSON'
{"model": {"graph": {"inputs": {"data": {"channels": 3}, "label": {"channels": 1}}, "layers": [
  {"name": "a", "type": "conv", "inputs": ["data"], "num_output": 4, "kernel": 3, "pad": 1},
  {"name": "p", "type": "max_pool", "inputs": ["a"], "kernel": 2, "stride": 2},
  {"name": "up", "type": "resize", "inputs": ["p", "data"]},
  {"name": "up_ac", "type": "resize", "inputs": ["p", "data"], "align_corners": true},
  {"name": "cat", "type": "concat", "inputs": ["a", "up", "up_ac"]},
  {"name": "s", "type": "conv", "inputs": ["cat"], "num_output": 5, "kernel": 1},
  {"name": "down", "type": "resize", "inputs": ["s"], "scale": 0.45},
  {"name": "back", "type": "resize", "inputs": ["down"], "scale": [1.7, 2], "align_corners": true},
  {"name": "fixed", "type": "resize", "inputs": ["back"], "size": [7, 9]},
  {"name": "wide", "type": "concat", "inputs": ["fixed", "fixed"], "axis": -1},
  {"name": "tall", "type": "concat", "inputs": ["wide", "wide"], "axis": 2},
  {"name": "coarse", "type": "resize", "inputs": ["tall", "data"]},
  {"name": "fine", "type": "resize", "inputs": ["s"], "scale": 1.7},
  {"name": "fine_c", "type": "crop", "inputs": ["fine", "data"], "offset": [1, 2]},
  {"name": "score", "type": "sum", "inputs": ["coarse", "fine_c"]},
  {"name": "loss", "type": "softmax_loss", "inputs": ["score", "label"]}]}}}
JSON
/usr/bin/python3 - "$tmp" <<'PY'
import sys; sys.path.insert(0, "tools")
import numpy as np, safetensors_np
rng = np.random.RandomState(3)
w = {"a.weight": rng.standard_normal((4, 3, 3, 3)) * 0.05, "a.bias": rng.standard_normal(4),
     "s.weight": rng.standard_normal((5, 12, 1, 1)) * 0.3, "s.bias": rng.standard_normal(5)}
safetensors_np.save(sys.argv[1] + "/weights.safetensors", {k: v.astype(np.float32) for k, v in w.items()})
PY
export_args=(--config "$tmp/config.json" --weights "$tmp/weights.safetensors")
"$fcn" export-onnx "${export_args[@]}" --out "$tmp/dyn.onnx" 2>/dev/null
"$fcn" export-onnx "${export_args[@]}" --out "$tmp/fixed.onnx" --size 67 91 2>/dev/null
TMP=$tmp timeout 300 /usr/bin/python3 - <<'PY'
import os, onnx
from onnx import numpy_helper
tmp = os.environ["TMP"]
for name in ("dyn", "fixed"):
    model = onnx.load(os.path.join(tmp, name + ".onnx"))
    onnx.checker.check_model(model, full_check=True)
    g = model.graph
    resizes = [n for n in g.node if n.op_type == "Resize"]
    concats = [n for n in g.node if n.op_type == "Concat" and not n.name.endswith("/sizes")]
    assert len(resizes) == 7 and len(concats) == 3, (len(resizes), len(concats))
    modes = {n.name: {a.name: a.s.decode() for a in n.attribute} for n in resizes}
    assert modes["up_ac"]["coordinate_transformation_mode"] == "align_corners", modes
    assert modes["up"]["coordinate_transformation_mode"] == "half_pixel", modes
    inits = {t.name: numpy_helper.to_array(t) for t in g.initializer}
    by_scales = sorted(n.name for n in resizes if len(n.input) == 3)
    assert by_scales == ["back", "down", "fine"], by_scales
    if name == "dyn":  # the ref's and the fixed size's sizes come from Shape at run time
        assert not any(k.endswith("/sizes") for k in inits), sorted(inits)
        assert sum(n.op_type == "Shape" for n in g.node) == 8, [n.op_type for n in g.node]
    else:
        assert list(inits["coarse/sizes"]) == [1, 5, 67, 91], inits["coarse/sizes"]
    print(name, "ok:", len(g.node), "nodes")
PY
if ! command -v node >/dev/null || [ ! -d "$cache/ort/node_modules/onnxruntime-node" ]; then
  echo "SKIP: ONNX Runtime part needs node and onnxruntime-node in $cache/ort"; exit 77
fi
for size in "67 91" "50 77"; do
  set -- $size
  /usr/bin/python3 - "$tmp" "$1" "$2" <<'PY'
import sys; sys.path.insert(0, "tools")
import numpy as np, safetensors_np
tmp, h, w = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
x = (np.random.RandomState(h * w).standard_normal((2, 3, h, w)) * 50).astype(np.float32)
safetensors_np.save(f"{tmp}/data.safetensors", {"data": x})
safetensors_np.save(f"{tmp}/label.safetensors", {"label": np.zeros((2, 1, h, w), np.float32)})
x.tofile(f"{tmp}/x_{h}x{w}.bin")
PY
  "$fcn" forward "${export_args[@]}" --input "data=$tmp/data.safetensors" --input "label=$tmp/label.safetensors" \
    --dump "$tmp/dump.safetensors" 2>/dev/null
  /usr/bin/python3 - "$tmp" "$1" "$2" <<'PY'
import sys; sys.path.insert(0, "tools")
import safetensors_np
tmp, h, w = sys.argv[1:4]
tensors, _ = safetensors_np.load(f"{tmp}/dump.safetensors")
tensors["score"].astype("<f4").tofile(f"{tmp}/y_{h}x{w}.bin")
PY
done
cat > "$tmp/run.js" <<'JS'
const ort = require(process.env.ORT_DIR + '/node_modules/onnxruntime-node'); const fs = require('fs');
const tmp = process.argv[2];
(async () => {
  const read = f => { const b = fs.readFileSync(tmp + f); return new Float32Array(b.buffer, b.byteOffset, b.length / 4); };
  let failed = false;
  for (const [model, h, w, n] of [['dyn', 67, 91, 2], ['dyn', 50, 77, 2], ['fixed', 67, 91, 1]]) {
    const session = await ort.InferenceSession.create(`${tmp}/${model}.onnx`, {intraOpNumThreads: 2, interOpNumThreads: 1});
    const x = read(`/x_${h}x${w}.bin`).subarray(0, n * 3 * h * w), expected = read(`/y_${h}x${w}.bin`);
    const out = (await session.run({image: new ort.Tensor('float32', x, [n, 3, h, w])})).score;
    let diff = 0, scale = 0;
    for (let i = 0; i < out.data.length; i++) {
      diff = Math.max(diff, Math.abs(out.data[i] - expected[i])); scale = Math.max(scale, Math.abs(expected[i]));
    }
    const rel = diff / scale, ok = out.dims.join('x') === `${n}x5x${h}x${w}` && scale > 0 && rel <= 1e-4;
    console.log(`onnxruntime ${ort.env.versions.common} ${model} ${n}x3x${h}x${w}: score ${out.dims.join('x')}, rel diff ${rel.toExponential(2)} ${ok ? 'ok' : 'FAIL'}`);
    failed = failed || !ok;
  }
  process.exit(failed ? 1 : 0);
})().catch(e => { console.error(e); process.exit(1); });
JS
ORT_DIR="$cache/ort" timeout 300 node "$tmp/run.js" "$tmp"
