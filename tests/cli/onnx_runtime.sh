#!/usr/bin/env bash
# The dynamic ONNX export run by ONNX Runtime (npm onnxruntime-node, the
# cache the ONNX Runtime benchmark anchor, bench/ort_fcn.sh, installs into) at two image sizes,
# against fcn forward's scores for the same image: within 1e-4 relative
# (max abs diff / max abs). FCN-8s at-once, width 0.25: its Scale layers
# export as Mul. Skips (exit 77) where node or onnxruntime-node is missing;
# install with: cd ~/.cache/fcn-bench/ort && npm install --ignore-scripts onnxruntime-node@1.20.1
set -euo pipefail
fcn=$(realpath "$1")
cache=${FCN_BENCH_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/fcn-bench}
if ! command -v node >/dev/null || [ ! -d "$cache/ort/node_modules/onnxruntime-node" ]; then
  echo "SKIP: needs node and onnxruntime-node in $cache/ort"; exit 77
fi
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
/usr/bin/python3 tools/make_caffemodel.py --arch fcn8s-atonce --width 0.25 --classes 5 --seed 6 --out "$tmp/m.caffemodel"
"$fcn" import-caffe "$tmp/m.caffemodel" --out "$tmp/imp" 2>/dev/null
"$fcn" export-onnx --config "$tmp/imp/config.json" --weights "$tmp/imp/weights.safetensors" --out "$tmp/m.onnx" 2>/dev/null
for size in "67 91" "50 77"; do
  set -- $size
  /usr/bin/python3 - "$tmp" "$1" "$2" <<'PY'
import sys; sys.path.insert(0, "tools")
import numpy as np, safetensors_np
tmp, h, w = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
x = (np.random.RandomState(h * w).standard_normal((1, 3, h, w)) * 50).astype(np.float32)
safetensors_np.save(f"{tmp}/data.safetensors", {"data": x})
safetensors_np.save(f"{tmp}/label.safetensors", {"label": np.zeros((1, 1, h, w), np.float32)})
x.tofile(f"{tmp}/x_{h}x{w}.bin")
PY
  "$fcn" forward --config "$tmp/imp/config.json" --weights "$tmp/imp/weights.safetensors" \
    --input "data=$tmp/data.safetensors" --input "label=$tmp/label.safetensors" --dump "$tmp/dump.safetensors" 2>/dev/null
  /usr/bin/python3 - "$tmp" "$1" "$2" <<'PY'
import sys; sys.path.insert(0, "tools")
import numpy as np, safetensors_np
tmp, h, w = sys.argv[1], sys.argv[2], sys.argv[3]
tensors, _ = safetensors_np.load(f"{tmp}/dump.safetensors")
tensors["score"].astype("<f4").tofile(f"{tmp}/y_{h}x{w}.bin")
PY
done
cat > "$tmp/run.js" <<'JS'
const ort = require(process.env.ORT_DIR + '/node_modules/onnxruntime-node'); const fs = require('fs');
const tmp = process.argv[2];
(async () => {
  const session = await ort.InferenceSession.create(tmp + '/m.onnx', {intraOpNumThreads: 2, interOpNumThreads: 1});
  const read = f => { const b = fs.readFileSync(tmp + f); return new Float32Array(b.buffer, b.byteOffset, b.length / 4); };
  let failed = false;
  for (const [h, w] of [[67, 91], [50, 77]]) {
    const x = new ort.Tensor('float32', read(`/x_${h}x${w}.bin`), [1, 3, h, w]);
    const expected = read(`/y_${h}x${w}.bin`);
    const out = (await session.run({image: x})).score;
    let diff = 0, scale = 0;
    for (let i = 0; i < expected.length; i++) {
      diff = Math.max(diff, Math.abs(out.data[i] - expected[i])); scale = Math.max(scale, Math.abs(expected[i]));
    }
    const rel = diff / scale, ok = out.dims.join('x') === `1x5x${h}x${w}` && scale > 0 && rel <= 1e-4;
    console.log(`onnxruntime ${ort.env.versions.common} ${h}x${w}: score ${out.dims.join('x')}, rel diff ${rel.toExponential(2)} ${ok ? 'ok' : 'FAIL'}`);
    failed = failed || !ok;
  }
  process.exit(failed ? 1 : 0);
})().catch(e => { console.error(e); process.exit(1); });
JS
ORT_DIR="$cache/ort" timeout 300 node "$tmp/run.js" "$tmp"
