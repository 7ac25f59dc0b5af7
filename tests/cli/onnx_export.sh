#!/usr/bin/env bash
# fcn export-onnx end to end: an FCN-8s (width 0.25, 5 classes, random
# weights written as a Caffe file by tools/make_caffemodel.py and brought in
# by fcn import-caffe) exported dynamic and at a fixed odd size;
# 1. onnx.checker.check_model(full_check=True) (Debian python3-onnx) accepts
#    both, with input "image" [N,3,H,W] and output "score" [N,5,H,W]
#    (symbolic N, H, W in the dynamic one, 1x3x67x91 in the fixed one);
# 2. a second export to the same --out is refused and leaves the file as it was;
# 3. batch_norm and avg_pool (tools/onnx_layer_models.py): the dynamic and
#    fixed exports pass the checker with the expected operators, and the
#    divisor map that needs a fixed size is refused in a dynamic export.
# The scores are checked by tests/test_onnx_export.cpp (OpenCV dnn) and
# tests/cli/onnx_runtime.sh (ONNX Runtime, dynamic sizes).
set -euo pipefail
fcn=$(realpath "$1")
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
/usr/bin/python3 tools/make_caffemodel.py --arch fcn8s --width 0.25 --classes 5 --seed 4 --out "$tmp/m.caffemodel"
"$fcn" import-caffe "$tmp/m.caffemodel" --out "$tmp/imp" 2>/dev/null
"$fcn" export-onnx --config "$tmp/imp/config.json" --weights "$tmp/imp/weights.safetensors" --out "$tmp/dyn.onnx" 2>/dev/null
"$fcn" export-onnx --config "$tmp/imp/config.json" --weights "$tmp/imp/weights.safetensors" --out "$tmp/fixed.onnx" \
  --size 67 91 2>/dev/null
before=$(md5sum < "$tmp/fixed.onnx")
if "$fcn" export-onnx --config "$tmp/imp/config.json" --weights "$tmp/imp/weights.safetensors" --out "$tmp/fixed.onnx" \
  2>"$tmp/err"; then
  echo "FAIL: export-onnx replaced an existing file"; exit 1
fi
grep -q "exists; choose another --out or delete it" "$tmp/err" || { echo "FAIL: $(cat "$tmp/err")"; exit 1; }
[ "$(md5sum < "$tmp/fixed.onnx")" = "$before" ] || { echo "FAIL: the refused export changed the file"; exit 1; }
/usr/bin/python3 tools/onnx_layer_models.py "$tmp"
for name in layers_dyn layers_global; do
  "$fcn" export-onnx --config "$tmp/$name.json" --weights "$tmp/layers.safetensors" --out "$tmp/$name.onnx" 2>/dev/null
done
"$fcn" export-onnx --config "$tmp/layers_fixed.json" --weights "$tmp/layers.safetensors" --out "$tmp/layers_fixed.onnx" \
  --size 20 23 2>/dev/null
if "$fcn" export-onnx --config "$tmp/layers_fixed.json" --weights "$tmp/layers.safetensors" --out "$tmp/refused.onnx" \
  2>"$tmp/err"; then
  echo "FAIL: a dynamic export of a padded average pool with partial windows"; exit 1
fi
grep -q "layer 'avg3'.*--size" "$tmp/err" || { echo "FAIL: $(cat "$tmp/err")"; exit 1; }
TMP=$tmp timeout 300 /usr/bin/python3 - <<'PY'  # not exec: the EXIT trap must still remove $tmp
import os, onnx
tmp = os.environ["TMP"]

def dims(value):
    return [d.dim_param or d.dim_value for d in value.type.tensor_type.shape.dim]

for name, image, score in [("dyn", ["N", 3, "H", "W"], ["N", 5, "H", "W"]),
                           ("fixed", [1, 3, 67, 91], [1, 5, 67, 91])]:
    model = onnx.load(os.path.join(tmp, name + ".onnx"))
    onnx.checker.check_model(model, full_check=True)
    g = model.graph
    assert [i.name for i in g.input] == ["image"], [i.name for i in g.input]
    assert [o.name for o in g.output] == ["score"], [o.name for o in g.output]
    assert dims(g.input[0]) == image, dims(g.input[0])
    assert dims(g.output[0]) == score, dims(g.output[0])
    ops = sorted({n.op_type for n in g.node})
    assert ops == sorted({"Add", "Conv", "ConvTranspose", "MaxPool", "Relu", "Slice"} | ({"Shape"} if name == "dyn" else set())), ops
    assert model.opset_import[0].version == 13
    print(name, "ok:", ", ".join(ops))

common = {"Conv", "BatchNormalization", "Relu"}
for name, expected in [("layers_dyn", common | {"AveragePool"}), ("layers_fixed", common | {"AveragePool", "Mul"}),
                       ("layers_global", common | {"GlobalAveragePool"})]:
    model = onnx.load(os.path.join(tmp, name + ".onnx"))
    onnx.checker.check_model(model, full_check=True)
    ops = {n.op_type for n in model.graph.node}
    assert ops == expected, (name, sorted(ops))
    print(name, "ok:", ", ".join(sorted(ops)))
PY
