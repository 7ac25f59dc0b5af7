"""Writes the PyTorch reference fixtures of the solver:

tests/fixtures/solver_sgd.safetensors
  A small graph (conv-relu-conv-frozen bilinear deconv-crop-softmax_loss,
  normalize "batch") trained 3 steps by torch.optim.SGD on a batch of 2
  (loss = mean of the 2 images' summed losses); fcn must match it with
  iter_size 2 and one image per pass. Momentum and weight decay on; biases
  get lr x2 and no decay (separate torch param groups). Tensors:
    init/<param>, data [2,3,H,W], label [2,1,H,W],
    step<k>/<param> params after step k (k = 1..3),
    step<k>/<param>.momentum  torch's buffer times the group lr (= Caffe's v)
  metadata: "spec" (graph JSON), "solver" (fcn solver keys JSON).

tests/fixtures/solver_golden.safetensors
  A tiny net (conv-relu-conv-deconv-crop-softmax_loss, normalize "valid")
  trained 10 steps, one image per step (image t % 4), by torch.optim.SGD.
  Tensors: init/<param>, data [4,3,H,W], label [4,1,H,W] (some void 255),
  losses [10] (the loss of each step's forward, before its update).
  metadata: "spec", "solver".

Run: /usr/bin/python3 tools/fixtures_solver.py [--check] (deterministic; seed 0).
"""
import json
import os
import sys

import numpy as np
import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import fixture_output  # noqa: E402
import safetensors_np  # noqa: E402
from torch_graph import TorchGraph  # noqa: E402

OUT_DIR = fixture_output.directory("tests/fixtures")


def graph_spec(layers):
    return {"inputs": {"data": {"channels": 3}, "label": {"channels": 1}}, "layers": layers}


def conv(name, x, out, k, pad=0):
    return {"name": name, "type": "conv", "inputs": [x], "num_output": out, "kernel": k, "pad": pad,
            "lr_mult": 1, "decay_mult": 1, "bias_lr_mult": 2, "bias_decay_mult": 0}


def multipliers(spec):
    """param name -> (lr_mult, decay_mult), with fcn's defaults."""
    out = {}
    for layer in spec["layers"]:
        if layer["type"] not in ("conv", "deconv"):
            continue
        out[layer["name"] + ".weight"] = (layer.get("lr_mult", 1.0), layer.get("decay_mult", 1.0))
        if layer.get("bias", True):
            out[layer["name"] + ".bias"] = (layer.get("bias_lr_mult", 2.0), layer.get("bias_decay_mult", 0.0))
    return out


def sgd(graph, spec, solver):
    """torch.optim.SGD with one group per param: lr = base_lr * lr_mult,
    weight_decay = weight_decay * decay_mult (frozen params left out)."""
    groups = []
    for name, (lr_mult, decay_mult) in sorted(multipliers(spec).items()):
        if lr_mult == 0:
            continue
        groups.append({"params": [graph.params[name]], "lr": solver["base_lr"] * lr_mult,
                       "weight_decay": solver["weight_decay"] * decay_mult, "name": name})
    return torch.optim.SGD(groups, lr=solver["base_lr"], momentum=solver["momentum"])


def bilinear(channels, k):
    factor = (k + 1) // 2
    center = factor - 1 if k % 2 == 1 else factor - 0.5
    og = np.ogrid[:k, :k]
    filt = (1 - abs(og[0] - center) / factor) * (1 - abs(og[1] - center) / factor)
    w = np.zeros((channels, channels, k, k), dtype=np.float32)
    w[range(channels), range(channels)] = filt
    return w


def init_params(rng, shapes):
    params = {}
    for name, shape in shapes.items():
        fan_in = int(np.prod(shape[1:])) if len(shape) > 1 else 1
        scale = 0.1 if name.endswith(".bias") else np.sqrt(2.0 / fan_in)
        params[name] = (rng.standard_normal(shape) * scale).astype(np.float32)
    return params


def labels(rng, n, classes, h, w, void_fraction):
    lab = rng.integers(0, classes, size=(n, 1, h, w)).astype(np.float32)
    lab[rng.random((n, 1, h, w)) < void_fraction] = 255
    return lab


def sgd_fixture(rng):
    h = w = 9
    spec = graph_spec([
        conv("conv1", "data", 4, 3, pad=1),
        {"name": "relu1", "type": "relu", "inputs": ["conv1"]},
        conv("score", "relu1", 3, 1),
        {"name": "up", "type": "deconv", "inputs": ["score"], "num_output": 3, "kernel": 4, "stride": 2,
         "bias": False, "weight_init": "bilinear", "lr_mult": 0},
        {"name": "crop", "type": "crop", "inputs": ["up", "data"], "offset": 1},
        {"name": "loss", "type": "softmax_loss", "inputs": ["crop", "label"], "normalize": "batch",
         "ignore_label": 255},
    ])
    solver = {"base_lr": 0.01, "lr_policy": "fixed", "momentum": 0.9, "weight_decay": 0.01, "iter_size": 2}
    params = init_params(rng, {"conv1.weight": (4, 3, 3, 3), "conv1.bias": (4,), "score.weight": (3, 4, 1, 1),
                               "score.bias": (3,)})
    params["up.weight"] = bilinear(3, 4)
    data = rng.standard_normal((2, 3, h, w)).astype(np.float32)
    label = labels(rng, 2, 3, h, w, 0.1)
    tensors = {"init/" + k: v for k, v in params.items()}
    tensors.update(data=data, label=label)

    graph = TorchGraph(spec, params)
    opt = sgd(graph, spec, solver)
    for step in range(1, 4):
        opt.zero_grad()
        graph.run({"data": data, "label": label}, backward=True)
        opt.step()
        for name, p in graph.params.items():
            tensors[f"step{step}/{name}"] = p.detach().numpy().copy()
        for group in opt.param_groups:
            buf = opt.state[group["params"][0]]["momentum_buffer"]
            tensors[f"step{step}/{group['name']}.momentum"] = (buf * group["lr"]).numpy().copy()
    safetensors_np.save(os.path.join(OUT_DIR, "solver_sgd.safetensors"), tensors,
                        {"spec": json.dumps(spec), "solver": json.dumps(solver)})


def golden_fixture(rng):
    h, w = 11, 13
    spec = graph_spec([
        conv("conv1", "data", 6, 3, pad=1),
        {"name": "relu1", "type": "relu", "inputs": ["conv1"]},
        conv("conv2", "relu1", 4, 3, pad=1),
        {"name": "up", "type": "deconv", "inputs": ["conv2"], "num_output": 4, "kernel": 4, "stride": 2,
         "bias": False, "lr_mult": 1, "decay_mult": 1},
        {"name": "score", "type": "crop", "inputs": ["up", "data"], "offset": [1, 2]},
        {"name": "loss", "type": "softmax_loss", "inputs": ["score", "label"], "normalize": "valid",
         "ignore_label": 255},
    ])
    solver = {"base_lr": 0.05, "lr_policy": "fixed", "momentum": 0.9, "weight_decay": 0.0005, "iter_size": 1}
    params = init_params(rng, {"conv1.weight": (6, 3, 3, 3), "conv1.bias": (6,), "conv2.weight": (4, 6, 3, 3),
                               "conv2.bias": (4,)})
    params["up.weight"] = bilinear(4, 4) + (rng.standard_normal((4, 4, 4, 4)) * 0.05).astype(np.float32)
    data = rng.standard_normal((4, 3, h, w)).astype(np.float32)
    # labels the net can learn: the class follows the sign pattern of two input channels
    label = ((data[:, 0:1] > 0).astype(np.float32) + 2 * (data[:, 1:2] > 0)).astype(np.float32)
    label[rng.random(label.shape) < 0.1] = 255
    tensors = {"init/" + k: v for k, v in params.items()}
    tensors.update(data=data, label=label)

    graph = TorchGraph(spec, params)
    opt = sgd(graph, spec, solver)
    losses = []
    for step in range(10):
        i = step % 4
        opt.zero_grad()
        blobs, _ = graph.run({"data": data[i:i + 1], "label": label[i:i + 1]}, backward=True)
        losses.append(float(blobs["loss"]))
        opt.step()
    tensors["losses"] = np.array(losses, dtype=np.float64)
    print("golden losses:", " ".join(f"{x:.6f}" for x in losses))
    safetensors_np.save(os.path.join(OUT_DIR, "solver_golden.safetensors"), tensors,
                        {"spec": json.dumps(spec), "solver": json.dumps(solver)})


def main():
    torch.manual_seed(0)
    sgd_fixture(np.random.default_rng(0))
    golden_fixture(np.random.default_rng(1))


if __name__ == "__main__":
    main()
