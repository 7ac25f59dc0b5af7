"""Writes the small models that check batch_norm's and avg_pool's ONNX
export in ONNX Runtime (tests/cli/onnx_runtime.sh) and onnx.checker
(tests/cli/onnx_export.sh): fcn configs with explicit graphs and one
weights file with random weights and batch_norm statistics.

  layers_dyn.json     conv, batch_norm (train; frozen without affine) and
                      avg_pool in its dynamic forms: padding counted at
                      stride 1 (a mean Conv), padding not counted and no
                      padding, both with partial ceil-mode windows
  layers_fixed.json   padding counted with a partial window, exact only in
                      a fixed-size export (20 x 23: a divisor map)
  layers_global.json  global average pooling
  layers.safetensors  the params of all three

Usage: /usr/bin/python3 tools/onnx_layer_models.py OUT_DIR (deterministic)."""
import json
import os
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import safetensors_np  # noqa: E402


def main():
    out = sys.argv[1]
    rng = np.random.RandomState(3)
    head = [
        {"name": "a", "type": "conv", "inputs": ["data"], "num_output": 4, "kernel": 3, "pad": 1},
        {"name": "bn_a", "type": "batch_norm", "inputs": ["a"]},
        {"name": "a_relu", "type": "relu", "inputs": ["bn_a"]},
    ]
    dynamic = head + [
        {"name": "avg1", "type": "avg_pool", "inputs": ["a_relu"], "kernel": 3, "stride": 1, "pad": 1},
        {"name": "bn_b", "type": "batch_norm", "inputs": ["avg1"], "mode": "frozen", "affine": False, "eps": 0.01},
        {"name": "avg2", "type": "avg_pool", "inputs": ["bn_b"], "kernel": 3, "stride": 2, "pad": 1,
         "count_include_pad": False},
        {"name": "avg4", "type": "avg_pool", "inputs": ["avg2"], "kernel": 2},
        {"name": "score", "type": "conv", "inputs": ["avg4"], "num_output": 2, "kernel": 1},
    ]
    fixed = dynamic[:-2] + [
        {"name": "avg3", "type": "avg_pool", "inputs": ["avg2"], "kernel": 3, "stride": 2, "pad": 1},
        {"name": "score", "type": "conv", "inputs": ["avg3"], "num_output": 2, "kernel": 1},
    ]
    pooled = head + [{"name": "score", "type": "avg_pool", "inputs": ["a_relu"], "global": True}]
    weights = {"a.weight": rng.normal(0, 0.05, (4, 3, 3, 3)), "a.bias": rng.normal(0, 1, 4),
               "score.weight": rng.normal(0, 1, (2, 4, 1, 1)), "score.bias": rng.normal(0, 1, 2)}
    for bn in ("bn_a", "bn_b"):
        weights.update({f"{bn}.weight": rng.uniform(0.5, 1.5, 4), f"{bn}.bias": rng.normal(0, 1, 4),
                        f"{bn}.running_mean": rng.normal(0, 2, 4), f"{bn}.running_var": rng.uniform(1, 9, 4)})
    safetensors_np.save(f"{out}/layers.safetensors", {k: np.asarray(v, np.float32) for k, v in weights.items()})
    for name, layers, classes in (("layers_dyn", dynamic, 2), ("layers_fixed", fixed, 2), ("layers_global", pooled, 4)):
        graph = {"inputs": {"data": {"channels": 3}}, "layers": layers}
        json.dump({"model": {"graph": graph, "num_classes": classes}}, open(f"{out}/{name}.json", "w"))


if __name__ == "__main__":
    main()
