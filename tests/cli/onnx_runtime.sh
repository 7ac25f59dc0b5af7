#!/usr/bin/env bash
# ONNX exports run by ONNX Runtime (npm onnxruntime-node, the cache the ONNX
# Runtime benchmark anchor, bench/ort_fcn.sh, installs into), against fcn
# forward's scores for the same image: within 1e-4 relative (max abs diff /
# max abs).
# 1. FCN-8s at-once, width 0.25 (its Scale layers export as Mul): the
#    dynamic export at two image sizes.
# 2. batch_norm (train, frozen, affine false) and avg_pool in each of its
#    ONNX forms (tools/onnx_layer_models.py; tests/test_onnx_export.cpp runs
#    the same forms in OpenCV):
#    a dynamic export at two sizes (the mean Conv of padding counted at
#    stride 1, AveragePool without padding counted or without padding, with
#    partial windows), GlobalAveragePool dynamic, and the divisor map of
#    padding counted with a partial window in a fixed-size export.
# 3. The zoo's ResNet nets (conv stride and dilation, batch_norm, max_pool
#    with padding, odd-kernel deconvs and crops, resize): ResNet-18 FCN-8s
#    at width 0.25 and fcn_resnet50 at width 0.125 (its aux head is not
#    exported), dynamic, at two sizes with odd sides; random weights whose
#    batch-norm statistics one training-mode forward has moved.
# Skips (exit 77) where node or onnxruntime-node is missing;
# install with: cd ~/.cache/fcn-bench/ort && npm install --ignore-scripts onnxruntime-node@1.20.1
set -euo pipefail
fcn=$(realpath "$1")
cache=${FCN_BENCH_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/fcn-bench}
if ! command -v node >/dev/null || [ ! -d "$cache/ort/node_modules/onnxruntime-node" ]; then
  echo "SKIP: needs node and onnxruntime-node in $cache/ort"; exit 77
fi
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
echo "[]" > "$tmp/cases.json"

# make_inputs TAG H W: an image of H x W (data, x_TAG.bin) and an all-background label
make_inputs() {
  /usr/bin/python3 - "$tmp" "$1" "$2" "$3" <<'PY'
import sys; sys.path.insert(0, "tools")
import numpy as np, safetensors_np
tmp, tag, h, w = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
x = (np.random.RandomState(h * w).standard_normal((1, 3, h, w)) * 50).astype(np.float32)
safetensors_np.save(f"{tmp}/data.safetensors", {"data": x})
safetensors_np.save(f"{tmp}/label.safetensors", {"label": np.zeros((1, 1, h, w), np.float32)})
x.tofile(f"{tmp}/x_{tag}.bin")
PY
}

# expect MODEL CONFIG WEIGHTS H W: an image of H x W, fcn's scores for it, and a case for the runner
expect() {
  local model=$1 config=$2 weights=$3 h=$4 w=$5 tag
  tag=$(basename "$model" .onnx)_${h}x${w}
  make_inputs "$tag" "$h" "$w"
  local inputs=(--input "data=$tmp/data.safetensors")
  grep -q '"label"\|"arch"' "$config" && inputs+=(--input "label=$tmp/label.safetensors")
  "$fcn" forward --config "$config" --weights "$weights" "${inputs[@]}" --dump "$tmp/dump.safetensors" 2>/dev/null
  /usr/bin/python3 - "$tmp" "$tag" "$model" "$config" "$h" "$w" <<'PY'
import json, sys; sys.path.insert(0, "tools")
import safetensors_np
tmp, tag, model, config, h, w = sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4], int(sys.argv[5]), int(sys.argv[6])
tensors, _ = safetensors_np.load(f"{tmp}/dump.safetensors")
section = json.load(open(config))["model"]
layers = section["graph"]["layers"] if "graph" in section else None
score = "score" if layers is None else next((l["inputs"][0] for l in layers if l["type"] == "softmax_loss"), layers[-1]["name"])
tensors[score].astype("<f4").tofile(f"{tmp}/y_{tag}.bin")
cases = json.load(open(f"{tmp}/cases.json"))
cases.append({"model": model, "tag": tag, "x": [1, 3, h, w], "y": list(tensors[score].shape)})
json.dump(cases, open(f"{tmp}/cases.json", "w"))
PY
}

# 1. FCN-8s at-once, through import-caffe (its config holds the graph)
/usr/bin/python3 tools/make_caffemodel.py --arch fcn8s-atonce --width 0.25 --classes 5 --seed 6 --out "$tmp/m.caffemodel"
"$fcn" import-caffe "$tmp/m.caffemodel" --out "$tmp/imp" 2>/dev/null
"$fcn" export-onnx --config "$tmp/imp/config.json" --weights "$tmp/imp/weights.safetensors" --out "$tmp/m.onnx" 2>/dev/null
for size in "67 91" "50 77"; do expect "$tmp/m.onnx" "$tmp/imp/config.json" "$tmp/imp/weights.safetensors" $size; done

# 2. batch_norm and avg_pool: configs with explicit graphs, random weights and statistics
/usr/bin/python3 tools/onnx_layer_models.py "$tmp"
for name in layers_dyn layers_global; do
  "$fcn" export-onnx --config "$tmp/$name.json" --weights "$tmp/layers.safetensors" --out "$tmp/$name.onnx" 2>/dev/null
  for size in "20 23" "17 30"; do expect "$tmp/$name.onnx" "$tmp/$name.json" "$tmp/layers.safetensors" $size; done
done
"$fcn" export-onnx --config "$tmp/layers_fixed.json" --weights "$tmp/layers.safetensors" --out "$tmp/layers_fixed.onnx" \
  --size 20 23 2>/dev/null
expect "$tmp/layers_fixed.onnx" "$tmp/layers_fixed.json" "$tmp/layers.safetensors" 20 23

# 3. zoo_case NAME MODEL: `fcn forward --train` initialises the params, moves
#    the batch-norm statistics and dumps both, which then serve as the weights
zoo_case() {
  local config="$tmp/$1.json"
  echo "{\"model\": $2}" > "$config"
  make_inputs train 41 29
  "$fcn" forward --config "$config" --input "data=$tmp/data.safetensors" --input "label=$tmp/label.safetensors" \
    --train --dump "$tmp/$1.safetensors" 2>/dev/null
  "$fcn" export-onnx --config "$config" --weights "$tmp/$1.safetensors" --out "$tmp/$1.onnx" 2>/dev/null
  for size in "45 61" "38 27"; do expect "$tmp/$1.onnx" "$config" "$tmp/$1.safetensors" $size; done
}
scores='"num_classes": 5, "score_init": {"type": "gaussian", "std": 0.3}'
zoo_case resnet18_fcn8s "{\"arch\": \"fcn8s\", \"backbone\": \"resnet18\", \"width\": 0.25, $scores}"
zoo_case fcn_resnet50 "{\"arch\": \"fcn_resnet50\", \"width\": 0.125, $scores}"

cat > "$tmp/run.js" <<'JS'
const ort = require(process.env.ORT_DIR + '/node_modules/onnxruntime-node'); const fs = require('fs');
const tmp = process.argv[2];
(async () => {
  const read = f => { const b = fs.readFileSync(tmp + f); return new Float32Array(b.buffer, b.byteOffset, b.length / 4); };
  let failed = false;
  for (const c of JSON.parse(fs.readFileSync(tmp + '/cases.json'))) {
    const session = await ort.InferenceSession.create(c.model, {intraOpNumThreads: 2, interOpNumThreads: 1});
    const x = new ort.Tensor('float32', read(`/x_${c.tag}.bin`), c.x);
    const expected = read(`/y_${c.tag}.bin`);
    const out = (await session.run({image: x})).score;
    let diff = 0, scale = 0;
    for (let i = 0; i < expected.length; i++) {
      diff = Math.max(diff, Math.abs(out.data[i] - expected[i])); scale = Math.max(scale, Math.abs(expected[i]));
    }
    const rel = diff / scale, ok = out.dims.join('x') === c.y.join('x') && scale > 0 && rel <= 1e-4;
    console.log(`onnxruntime ${ort.env.versions.common} ${c.tag}: score ${out.dims.join('x')}, rel diff ${rel.toExponential(2)} ${ok ? 'ok' : 'FAIL'}`);
    failed = failed || !ok;
  }
  process.exit(failed ? 1 : 0);
})().catch(e => { console.error(e); process.exit(1); });
JS
ORT_DIR="$cache/ort" timeout 300 node "$tmp/run.js" "$tmp"
