"""Random FCN-shaped graphs run through `fcn forward --backward --dump` and
through PyTorch in float64 (tools/torch_graph.py) must agree in every blob
(relative error <= 1e-4) and every gradient (<= 1e-3). The graphs mix every
layer type: conv (dilated, grouped), max_pool and avg_pool (padding counted or
not), batch_norm (train or frozen, with and without affine), relu (leaky),
concat (channels or h/w), resize (scale, a ref's size, align_corners) and
deconv for upsampling, crop, sum, scale, softmax_loss. About half the graphs
run in training mode (`fcn forward --train`), where batch_norm normalises
with the batch's statistics and its updated running statistics must agree too.

Usage: /usr/bin/python3 tools/check_graph_parity.py FCN_BINARY [--count N] [--seed S] [--keep DIR]
Relative error = max |fcn - torch| / max(max |torch|, 1e-6) per tensor."""
import argparse
import json
import os
import shutil
import random
import subprocess
import sys
import tempfile

import numpy as np
import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import safetensors_np  # noqa: E402
import torch  # noqa: E402
from torch_graph import TorchGraph, conv_out, deconv_out, pool_out, resize_out  # noqa: E402


class Builder:
    def __init__(self, rng, channels, h, w):
        self.rng = rng
        self.layers = []
        self.params = {}
        self.shapes = {"data": (channels, h, w)}
        self.count = 0

    def name(self, prefix):
        self.count += 1
        return f"{prefix}{self.count}"

    def add(self, layer, shape):
        self.layers.append(layer)
        self.shapes[layer["name"]] = shape
        return layer["name"]

    def conv(self, x, out_c, k, s=1, p=0, d=1, groups=1, bias=True):
        c, h, w = self.shapes[x]
        kh, kw = k if isinstance(k, list) else (k, k)
        name = self.name("conv")
        layer = {"name": name, "type": "conv", "inputs": [x], "num_output": out_c, "kernel": k, "stride": s,
                 "pad": p, "dilation": d, "groups": groups, "bias": bias}
        self.params[name + ".weight"] = self.rand((out_c, c // groups, kh, kw), 1.0 / np.sqrt(c // groups * kh * kw))
        if bias:
            self.params[name + ".bias"] = self.rand((out_c,), 0.1)
        return self.add(layer, (out_c, conv_out(h, kh, s, p, d), conv_out(w, kw, s, p, d)))

    def deconv(self, x, out_c, k, s, p=0, op=0, groups=1, bias=False, frozen=False):
        c, h, w = self.shapes[x]
        name = self.name("up")
        layer = {"name": name, "type": "deconv", "inputs": [x], "num_output": out_c, "kernel": k, "stride": s,
                 "pad": p, "output_padding": op, "groups": groups, "bias": bias}
        if frozen:
            layer["lr_mult"] = 0
        self.params[name + ".weight"] = self.rand((c, out_c // groups, k, k), 0.5)
        if bias:
            self.params[name + ".bias"] = self.rand((out_c,), 0.1)
        return self.add(layer, (out_c, deconv_out(h, k, s, p, op), deconv_out(w, k, s, p, op)))

    def rand(self, shape, scale):
        return (self.rng_np.uniform(-1, 1, shape) * scale).astype(np.float32)

    def relu(self, x, slope=0.0):
        layer = {"name": self.name("relu"), "type": "relu", "inputs": [x]}
        if slope:
            layer["negative_slope"] = slope
        return self.add(layer, self.shapes[x])

    def pool(self, x, k, s, p=0):
        c, h, w = self.shapes[x]
        layer = {"name": self.name("pool"), "type": "max_pool", "inputs": [x], "kernel": k, "stride": s, "pad": p,
                 "ceil_mode": True}
        if self.rng.random() < 0.5:
            layer["type"] = "avg_pool"
            layer["count_include_pad"] = self.rng.random() < 0.5
        return self.add(layer, (c, pool_out(h, k, s, p), pool_out(w, k, s, p)))

    def maybe_batch_norm(self, x):
        """Half the time a batch_norm after x: mode train or frozen, affine or not."""
        if self.rng.random() < 0.5:
            return x
        c = self.shapes[x][0]
        name = self.name("bn")
        layer = {"name": name, "type": "batch_norm", "inputs": [x], "momentum": self.rng.choice([0.1, 0.5]),
                 "mode": self.rng.choice(["train", "train", "frozen"]), "affine": self.rng.random() < 0.75}
        producer = self.layers[-1]
        if layer["mode"] == "train" and producer["name"] == x and producer.get("bias"):
            # batch statistics cancel a per-channel constant: the bias gradient is zero
            # up to rounding, which no relative tolerance can compare; nets drop such biases
            producer["bias"] = False
            del self.params[x + ".bias"]
        if layer["affine"]:
            self.params[name + ".weight"] = (1 + self.rand((c,), 0.5)).astype(np.float32)
            self.params[name + ".bias"] = self.rand((c,), 0.5)
        self.params[name + ".running_mean"] = self.rand((c,), 0.5)
        self.params[name + ".running_var"] = (1 + self.rand((c,), 0.5)).astype(np.float32)
        return self.add(layer, self.shapes[x])

    def concat(self, xs, axis):
        shapes = [self.shapes[x] for x in xs]
        along = axis % 4 - 1  # index into (c, h, w)
        shape = list(shapes[0])
        shape[along] = sum(sh[along] for sh in shapes)
        return self.add({"name": self.name("cat"), "type": "concat", "inputs": list(xs), "axis": axis}, tuple(shape))

    def resize(self, x, scale=None, ref=None, align=False):
        c, h, w = self.shapes[x]
        layer = {"name": self.name("resize"), "type": "resize", "inputs": [x] + ([ref] if ref else [])}
        if align:
            layer["align_corners"] = True
        if ref:
            _, oh, ow = self.shapes[ref]
        else:
            layer["scale"] = scale
            sh, sw = scale if isinstance(scale, list) else (scale, scale)
            oh, ow = resize_out(h, sh), resize_out(w, sw)
        return self.add(layer, (c, oh, ow))

    def crop(self, x, ref, offset):
        c = self.shapes[x][0]
        _, h, w = self.shapes[ref]
        return self.add({"name": self.name("crop"), "type": "crop", "inputs": [x, ref], "offset": offset}, (c, h, w))


def random_graph(seed):
    rng = random.Random(seed)
    b = Builder(rng, 3, rng.randint(19, 29), rng.randint(19, 29))
    b.rng_np = np.random.RandomState(seed)
    classes = rng.choice([3, 4, 5])
    # pad 8: FCN's wide padding in small, whose outputs reading only padding
    # start a constant frame (fcn/core/constant_frame.hpp) down the trunk
    x = b.relu(b.maybe_batch_norm(b.conv("data", 8, 3, p=rng.choice([1, 2, 3, 8]), d=rng.choice([1, 2]))))
    x = b.pool(x, rng.choice([2, 3]), 2, p=rng.choice([0, 1]))
    skip = x
    branch = x
    kernel = rng.choice([3, [3, 1]])
    x = b.conv(x, 8, kernel, p=1, groups=rng.choice([1, 2, 4]))
    x = b.relu(b.maybe_batch_norm(x), slope=rng.choice([0.0, 0.1]))
    if rng.random() < 0.6:
        # a second branch of the same size joined along channels (any width) or along h or w (same channels)
        axis = rng.choice([1, -3, 2, -1])
        side = b.relu(b.conv(branch, 4 if axis in (1, -3) else 8, kernel, p=1))
        x = b.concat([x, side] if rng.random() < 0.5 else [side, x, side], axis)
    x = b.pool(x, 2, 2)
    if rng.random() < 0.3:
        # not before a max_pool: interpolating a constant region gives ties that float32 and float64 break apart
        x = b.resize(x, scale=rng.choice([0.75, [0.8, 1.3]]), align=rng.random() < 0.5)
    x = b.relu(b.conv(x, 12, 3, s=rng.choice([1, 2]), p=1))
    score = b.conv(x, classes, 1)
    skip_score = b.conv(skip, classes, 1)
    upsampling = rng.choice(["deconv", "deconv", "resize_ref", "resize_scale"])
    if upsampling == "deconv":
        up = b.deconv(score, classes, 4, 2, p=rng.choice([0, 1]), op=rng.choice([0, 1]), bias=rng.random() < 0.5,
                      frozen=rng.random() < 0.5)
    elif upsampling == "resize_ref":
        up = b.resize(score, ref=skip_score, align=rng.random() < 0.5)
    else:
        up = b.resize(score, scale=rng.choice([2, 2.5, [1.7, 2]]), align=rng.random() < 0.5)
    # crop the larger of the two to the smaller at an explicit offset
    (_, uh, uw), (_, sh, sw) = b.shapes[up], b.shapes[skip_score]
    if uh >= sh and uw >= sw:
        up = b.crop(up, skip_score, [rng.randint(0, uh - sh), rng.randint(0, uw - sw)])
    elif uh <= sh and uw <= sw:
        skip_score = b.crop(skip_score, up, [rng.randint(0, sh - uh), rng.randint(0, sw - uw)])
    else:
        return None  # neither fits inside the other: the caller draws another graph
    fused = b.add({"name": b.name("fuse"), "type": "sum", "inputs": [up, skip_score], "coeffs": [1.0, rng.choice([1.0, 0.5])]},
                  b.shapes[up])
    scaled = b.add({"name": b.name("scale"), "type": "scale", "inputs": [fused], "value": 1.5,
                    "learnable": rng.random() < 0.5}, b.shapes[fused])
    if b.layers[-1].get("learnable"):
        b.params[scaled + ".weight"] = np.array([0.75], dtype=np.float32)
    last = rng.choice(["deconv", "deconv", "resize_scale", "resize_data"])
    if last == "deconv":
        final = b.deconv(scaled, classes, 4, 2, bias=True)
    elif last == "resize_scale":
        final = b.resize(scaled, scale=rng.choice([2, 1.7, [2, 3]]), align=rng.random() < 0.5)
    else:
        final = b.resize(scaled, ref="data", align=rng.random() < 0.5)
    normalize = rng.choice(["valid", "none", "batch"])
    b.add({"name": "loss", "type": "softmax_loss", "inputs": [final, "label"], "ignore_label": 255,
           "normalize": normalize}, ())
    spec = {"inputs": {"data": {"channels": 3}, "label": {"channels": 1}}, "layers": b.layers}
    n = rng.choice([1, 2])
    c, h, w = b.shapes["data"]
    data = b.rng_np.uniform(-1, 1, (n, c, h, w)).astype(np.float32)
    _, lh, lw = b.shapes[final]
    label = b.rng_np.randint(0, classes, (n, 1, lh, lw)).astype(np.float32)
    label[b.rng_np.uniform(size=label.shape) < 0.2] = 255
    train = rng.random() < 0.5
    if rng.random() < 0.5:  # drawn last: the graphs of a seed stay those before loss_weight existed
        b.layers[-1]["loss_weight"] = 0.5
    return spec, b.params, {"data": data, "label": label}, train


def rel_err(a, b):
    return float(np.max(np.abs(a - b)) / max(float(np.max(np.abs(b))), 1e-6)) if b.size else 0.0


def check(fcn, seed, workdir):
    drawn = None
    attempt = 0
    while drawn is None:
        drawn = random_graph(seed * 1000 + attempt)
        attempt += 1
    spec, params, inputs, train = drawn
    paths = {k: os.path.join(workdir, f"g{seed}_{k}") for k in ("spec.json", "weights.safetensors", "data.safetensors",
                                                                 "label.safetensors", "dump.safetensors")}
    with open(paths["spec.json"], "w") as f:
        json.dump(spec, f, indent=1)
    safetensors_np.save(paths["weights.safetensors"], params)
    safetensors_np.save(paths["data.safetensors"], {"data": inputs["data"]})
    safetensors_np.save(paths["label.safetensors"], {"label": inputs["label"]})
    cmd = [fcn, "forward", "--graph", paths["spec.json"], "--weights", paths["weights.safetensors"],
           "--input", "data=" + paths["data.safetensors"], "--input", "label=" + paths["label.safetensors"],
           "--dump", paths["dump.safetensors"], "--backward"] + (["--train"] if train else [])
    run = subprocess.run(cmd, capture_output=True, text=True)
    if run.returncode != 0:
        print(f"graph {seed}: fcn forward failed: {run.stderr.strip()}")
        return False
    ours, _ = safetensors_np.load(paths["dump.safetensors"])
    blobs, grads = TorchGraph(spec, params, torch.float64).run(inputs, backward=True, train=train)
    ok = True
    for name, ref in list(blobs.items()) + list(grads.items()):
        if name in spec["inputs"]:
            continue
        tol = 1e-3 if name.startswith("grad/") else 1e-4
        if name not in ours:
            print(f"graph {seed}: {name} missing from the dump")
            ok = False
            continue
        got = ours[name].reshape(ref.shape) if ours[name].size == ref.size else ours[name]
        if got.shape != ref.shape:
            print(f"graph {seed}: {name} shape {got.shape} vs torch {ref.shape}")
            ok = False
            continue
        e = rel_err(got, ref)
        if e > tol:
            print(f"graph {seed}: {name} relative error {e:.3g} > {tol}")
            ok = False
    types = sorted({layer["type"] for layer in spec["layers"]} & {"avg_pool", "batch_norm", "concat", "resize"})
    print(f"graph {seed}: {len(spec['layers'])} layers{''.join(', ' + t for t in types)}, "
          f"{'train' if train else 'test'} mode, {len(blobs) + len(grads)} tensors: {'ok' if ok else 'MISMATCH'}")
    return ok


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("fcn")
    ap.add_argument("--count", type=int, default=8)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--keep", default=None)
    a = ap.parse_args()
    workdir = a.keep or tempfile.mkdtemp(prefix="fcn_parity_")
    os.makedirs(workdir, exist_ok=True)
    results = [check(a.fcn, a.seed + i, workdir) for i in range(a.count)]
    failed = results.count(False)
    print(f"{results.count(True)} passed, {failed} failed")
    if failed and not a.keep:
        print(f"the failing cases' files are kept in {workdir}")
    elif not a.keep:
        shutil.rmtree(workdir, ignore_errors=True)
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
