"""Writes the PyTorch parity fixtures of the non-conv layers:
tests/fixtures/{pool,relu,crop,sum,scale,softmax_loss,concat,resize,batch_norm,avg_pool}_parity.safetensors.

Each file holds several cases. Its metadata "cases" is a JSON list of
{"name", "spec"} (the layer spec, as in a graph), with "mode": "train" for
a case whose forward runs in training mode (else test mode); per case the
tensors are
  <case>/in<i>          inputs
  <case>/out            forward output
  <case>/out_grad       the output gradient fed to backward
  <case>/in<i>_grad     input gradients (absent when the input gets none)
  <case>/grad/<param>   parameter gradients (trainable params only)
  <case>/param/<param>  param values loaded before the forward (optional)
  <case>/after/<param>  param values expected after the forward (running
                        statistics; optional)
Run: /usr/bin/python3 tools/fixtures_layers.py [--check] (deterministic; seed 0).
"""
import json
import os
import sys

import numpy as np
import torch
import torch.nn.functional as F

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import fixture_output  # noqa: E402
import safetensors_np  # noqa: E402

OUT_DIR = fixture_output.directory("tests/fixtures")


def randn(*shape):
    return torch.randn(shape, dtype=torch.float64)


class Fixture:
    def __init__(self, layer, file_prefix=None):
        self.layer = layer
        self.file_prefix = file_prefix or layer
        self.cases = []
        self.tensors = {}

    def add(self, name, spec, inputs, fn, grad_inputs=None, params=None, buffers=None, mode=None,
            store_params=False):
        """fn(*inputs, **params, **buffers) -> output; gradients by autograd in
        float64. `params` are trainable (their gradients are stored, and with
        store_params their values); `buffers` are fixed params whose values
        are stored before and after fn (which may update them in place)."""
        params = params or {}
        buffers = {k: v.clone() for k, v in (buffers or {}).items()}
        grad_inputs = range(len(inputs)) if grad_inputs is None else grad_inputs
        inputs = [t.clone().requires_grad_(i in grad_inputs) for i, t in enumerate(inputs)]
        leaves = {k: v.clone().requires_grad_(True) for k, v in params.items()}
        for k, v in (params if store_params else {}).items():
            self.tensors[f"{name}/param/{name}.{k}"] = v
        for k, v in buffers.items():
            self.tensors[f"{name}/param/{name}.{k}"] = v.clone()
        out = fn(*inputs, **leaves, **buffers)
        for k, v in buffers.items():
            self.tensors[f"{name}/after/{name}.{k}"] = v
        out_grad = randn(*out.shape)
        out.backward(out_grad)
        spec = dict({"inputs": [f"in{i}" for i in range(len(inputs))]}, **spec)
        case = {"name": name, "spec": dict(spec, name=name, type=self.layer)}
        if mode is not None:
            case["mode"] = mode
        self.cases.append(case)
        for i, t in enumerate(inputs):
            self.tensors[f"{name}/in{i}"] = t.detach()
            if t.grad is not None:
                self.tensors[f"{name}/in{i}_grad"] = t.grad
        self.tensors[f"{name}/out"] = out.detach()
        self.tensors[f"{name}/out_grad"] = out_grad
        for k, v in leaves.items():
            self.tensors[f"{name}/grad/{name}.{k}"] = v.grad

    def save(self):
        path = os.path.join(OUT_DIR, f"{self.file_prefix}_parity.safetensors")
        # a scalar (the loss) is stored as fcn's loss blob, shape [1]
        arrays = {k: np.atleast_1d(v.numpy()).astype(np.float32) for k, v in self.tensors.items()}
        safetensors_np.save(path, arrays, {"cases": json.dumps(self.cases)})
        print(path, os.path.getsize(path), "bytes")


def pool_fixture():
    f = Fixture("max_pool", "pool")

    def pool(k, s, p, ceil):
        return lambda x: F.max_pool2d(x, k, s, p, ceil_mode=ceil)

    # (name, spec, input shape, PyTorch kernel, stride, pad, ceil_mode)
    cases = [
        ("k3s2p1_ceil", {"kernel": 3, "stride": 2, "pad": 1}, (2, 3, 9, 11), 3, 2, 1, True),
        ("k2s2_ceil_odd", {"kernel": 2, "stride": 2}, (1, 2, 7, 9), 2, 2, 0, True),
        ("k2s2_floor_odd", {"kernel": 2, "stride": 2, "ceil_mode": False}, (1, 2, 7, 9), 2, 2, 0, False),
        # ceil gives 4 windows on 5 pixels, the last starting at 6 >= 5 + 1: dropped, 3 remain
        ("k2s2p1_dropped_last", {"kernel": 2, "stride": 2, "pad": 1}, (1, 2, 5, 5), 2, 2, 1, True),
        ("k2s3_stride_gt_kernel", {"kernel": 2, "stride": 3}, (1, 2, 8, 10), 2, 3, 0, True),
        ("rect_floor", {"kernel": [3, 2], "stride": [2, 3], "pad": [1, 0], "ceil_mode": False}, (2, 2, 7, 8),
         (3, 2), (2, 3), (1, 0), False),
    ]
    for name, spec, shape, k, s, p, ceil in cases:
        f.add(name, spec, [randn(*shape)], pool(k, s, p, ceil))
    # small integers: many ties inside windows, which go to the first maximum
    ties = torch.randint(0, 3, (1, 2, 7, 7)).double()
    f.add("ties", {"kernel": 3, "stride": 2}, [ties], pool(3, 2, 0, True))
    f.save()


def relu_fixture():
    f = Fixture("relu")
    f.add("relu", {}, [randn(2, 3, 5, 7)], F.relu)
    f.add("leaky", {"negative_slope": 0.1}, [randn(2, 3, 5, 7)], lambda x: F.leaky_relu(x, 0.1))
    f.save()


def crop_fixture():
    f = Fixture("crop")
    ref = randn(2, 3, 4, 5)
    f.add("hw_offsets", {"offset": [2, 1]}, [randn(2, 3, 9, 7), ref],
          lambda x, r: x[:, :, 2:2 + 4, 1:1 + 5], grad_inputs=[0])
    f.add("int_offset", {"offset": 3}, [randn(2, 3, 8, 9), ref],
          lambda x, r: x[:, :, 3:3 + 4, 3:3 + 5], grad_inputs=[0])
    f.add("axis3", {"axis": 3, "offset": 2}, [randn(2, 3, 4, 8), ref],
          lambda x, r: x[:, :, :, 2:2 + 5], grad_inputs=[0])
    f.add("axis1", {"axis": 1, "offset": [1, 0, 2]}, [randn(2, 5, 4, 9), ref],
          lambda x, r: x[:, 1:1 + 3, :, 2:2 + 5], grad_inputs=[0])
    f.save()


def sum_fixture():
    f = Fixture("sum")
    shape = (2, 3, 5, 7)
    f.add("default", {}, [randn(*shape), randn(*shape)], lambda a, b: a + b)
    f.add("coeffs", {"coeffs": [1, -0.5, 2]}, [randn(*shape) for _ in range(3)],
          lambda a, b, c: a - 0.5 * b + 2 * c)
    f.save()


def scale_fixture():
    f = Fixture("scale")
    f.add("fixed", {"value": 0.01}, [randn(2, 3, 5, 7)], lambda x: 0.01 * x)
    f.add("learnable", {"value": 0.5, "learnable": True}, [randn(2, 3, 5, 7)], lambda x, weight: weight * x,
          params={"weight": torch.tensor([0.5], dtype=torch.float64)})
    f.save()


def softmax_loss_fixture():
    f = Fixture("softmax_loss")
    n, c, h, w = 2, 5, 4, 6
    score = 3 * randn(n, c, h, w)
    label = torch.randint(0, c, (n, 1, h, w)).double()
    label[torch.rand(n, 1, h, w) < 0.25] = 255

    def loss(reduction, divisor=1.0):
        def fn(s, l):
            target = l[:, 0].long()
            return F.cross_entropy(s, target, ignore_index=255, reduction=reduction) / divisor
        return fn

    f.add("valid", {"normalize": "valid"}, [score, label], loss("mean"), grad_inputs=[0])
    f.add("batch", {"normalize": "batch"}, [score, label], loss("sum", n), grad_inputs=[0])
    # "none": each image's sum, averaged over the batch (Caffe's NONE at batch 1)
    f.add("none", {"normalize": "none"}, [score, label], loss("sum", n), grad_inputs=[0])

    # class weights (one of them 0): PyTorch's "mean" divides by the sum of
    # the weights of the counted pixels, as fcn's "valid" does
    weights = [0.5, 2.0, 1.0, 0.0, 3.75]

    def weighted_loss(reduction, divisor=1.0):
        def fn(s, l):
            w = torch.tensor(weights, dtype=torch.float64)
            return F.cross_entropy(s, l[:, 0].long(), weight=w, ignore_index=255, reduction=reduction) / divisor
        return fn

    for name, normalize, reduction, divisor in (("weighted_valid", "valid", "mean", 1.0),
                                                 ("weighted_batch", "batch", "sum", n),
                                                 ("weighted_none", "none", "sum", n)):
        f.add(name, {"normalize": normalize, "class_weights": weights}, [score, label],
              weighted_loss(reduction, divisor), grad_inputs=[0])
    f.save()


def concat_fixture():
    f = Fixture("concat")
    f.add("two_channels", {}, [randn(2, 3, 4, 5), randn(2, 2, 4, 5)], lambda a, b: torch.cat([a, b], 1))
    f.add("three_channels", {"axis": 1}, [randn(1, 1, 3, 4), randn(1, 4, 3, 4), randn(1, 2, 3, 4)],
          lambda a, b, c: torch.cat([a, b, c], 1))
    f.add("h", {"axis": 2}, [randn(2, 3, 2, 5), randn(2, 3, 4, 5)], lambda a, b: torch.cat([a, b], 2))
    f.add("w_negative", {"axis": -1}, [randn(2, 2, 3, 1), randn(2, 2, 3, 4), randn(2, 2, 3, 2)],
          lambda a, b, c: torch.cat([a, b, c], -1))
    f.add("channels_negative", {"axis": -3}, [randn(3, 2, 2, 3), randn(3, 1, 2, 3)],
          lambda a, b: torch.cat([a, b], -3))
    f.save()


def resize_fixture():
    """F.interpolate(mode="bilinear") with scale_factor (recompute_scale_factor
    unset: the source mapping uses 1/scale), with a size, or to a ref's size."""
    f = Fixture("resize")

    def by_scale(scale, align_corners):
        return lambda x: F.interpolate(x, scale_factor=scale, mode="bilinear", align_corners=align_corners)

    def to_size(size, align_corners):
        return lambda x: F.interpolate(x, size=size, mode="bilinear", align_corners=align_corners)

    def to_ref(align_corners):
        return lambda x, ref: F.interpolate(x, size=ref.shape[2:], mode="bilinear", align_corners=align_corners)

    for align in (False, True):
        tag = "_ac" if align else ""
        spec = {"align_corners": True} if align else {}
        f.add("up2" + tag, dict(spec, scale=2), [randn(2, 3, 5, 6)], by_scale(2.0, align))
        f.add("up8" + tag, dict(spec, scale=8), [randn(1, 2, 3, 4)], by_scale(8.0, align))
        # 1/1.7 is not in/out (5 -> 8, 6 -> 10): PyTorch maps with the factor
        f.add("up1.7" + tag, dict(spec, scale=1.7), [randn(2, 2, 5, 6)], by_scale(1.7, align))
        f.add("down0.45" + tag, dict(spec, scale=0.45), [randn(1, 3, 11, 9)], by_scale(0.45, align))
        f.add("rect_scale" + tag, dict(spec, scale=[1.5, 0.7]), [randn(1, 2, 6, 10)], by_scale((1.5, 0.7), align))
        f.add("ref" + tag, spec, [randn(1, 2, 7, 9), randn(1, 1, 50, 61)], to_ref(align), grad_inputs=[0])
        f.add("ref_down" + tag, spec, [randn(1, 2, 13, 11), randn(2, 5, 4, 6)], to_ref(align), grad_inputs=[0])
        f.add("size" + tag, dict(spec, size=[9, 4]), [randn(2, 2, 5, 7)], to_size((9, 4), align))
        # a 1-pixel output axis: half-pixel reads the middle (src = in/2 - 0.5), align_corners pixel 0
        f.add("size_1" + tag, dict(spec, size=[1, 5]), [randn(1, 2, 4, 3)], to_size((1, 5), align))
        f.add("scale_to_1" + tag, dict(spec, scale=0.3), [randn(1, 1, 4, 5)], by_scale(0.3, align))
        f.add("from_1" + tag, dict(spec, size=[3, 4]), [randn(1, 2, 1, 1)], to_size((3, 4), align))
    # 10 * 1.05 floors to 10: PyTorch copies that axis whatever the factor
    f.add("unchanged_size", {"scale": [1.05, 1.5]}, [randn(1, 2, 10, 4)], by_scale((1.05, 1.5), False))
    f.save()


def batch_norm_fixture():
    f = Fixture("batch_norm")
    c = 3

    def stats():
        return {"running_mean": randn(c), "running_var": torch.rand(c, dtype=torch.float64) + 0.5}

    def affine():
        return {"weight": randn(c), "bias": randn(c)}

    def bn(training, momentum=0.1, eps=1e-5):
        def fn(x, running_mean, running_var, weight=None, bias=None):
            return F.batch_norm(x, running_mean, running_var, weight, bias, training=training, momentum=momentum,
                                eps=eps)
        return fn

    # the mean is far from zero in some channels: the two-pass variance matters. Rounded to
    # float32 first: the input's rounding at 20 would otherwise show in outputs near 0
    x = (randn(2, c, 5, 7) + torch.tensor([0.0, 3.0, -20.0], dtype=torch.float64).view(1, c, 1, 1)).float().double()
    f.add("train", {}, [x], bn(True), params=affine(), buffers=stats(), mode="train", store_params=True)
    f.add("train_n1_eps_momentum", {"eps": 1e-3, "momentum": 0.25}, [randn(1, c, 4, 3)], bn(True, 0.25, 1e-3),
          params=affine(), buffers=stats(), mode="train", store_params=True)
    f.add("train_affine_false", {"affine": False}, [randn(3, c, 2, 3)], bn(True), buffers=stats(), mode="train")
    # two values per channel, the least training accepts: unbiased var = 2x the biased one
    f.add("train_two_values", {}, [randn(2, c, 1, 1)], bn(True), params=affine(), buffers=stats(), mode="train",
          store_params=True)
    f.add("test", {}, [randn(2, c, 5, 7)], bn(False), params=affine(), buffers=stats(), store_params=True)
    f.add("test_affine_false", {"affine": False, "eps": 0.01}, [randn(2, c, 3, 4)], bn(False, eps=0.01),
          buffers=stats())
    # frozen: running statistics and fixed gamma/beta even while training; no running update
    frozen = dict(stats(), **affine())
    f.add("frozen_in_train", {"mode": "frozen"}, [randn(2, c, 4, 5)], bn(False), buffers=frozen, mode="train")
    f.save()


def avg_pool_fixture():
    f = Fixture("avg_pool")

    def pool(k, s, p, ceil, include_pad):
        return lambda x: F.avg_pool2d(x, k, s, p, ceil_mode=ceil, count_include_pad=include_pad)

    # (name, spec, input shape, PyTorch kernel, stride, pad, ceil_mode, count_include_pad)
    cases = [
        ("k3s2p1_ceil", {"kernel": 3, "stride": 2, "pad": 1}, (2, 3, 9, 11), 3, 2, 1, True, True),
        ("k3s2p1_ceil_exclude_pad", {"kernel": 3, "stride": 2, "pad": 1, "count_include_pad": False},
         (2, 3, 9, 11), 3, 2, 1, True, False),
        # 8 + 2 - 3 = 7 is odd: ceil's last window reaches one past the padded input
        ("k3s2p1_partial_last", {"kernel": 3, "stride": 2, "pad": 1}, (1, 2, 8, 10), 3, 2, 1, True, True),
        ("k3s2p1_partial_last_exclude_pad", {"kernel": 3, "stride": 2, "pad": 1, "count_include_pad": False},
         (1, 2, 8, 10), 3, 2, 1, True, False),
        ("k2s2_ceil_odd", {"kernel": 2}, (1, 2, 7, 9), 2, 2, 0, True, True),
        ("k3s2p1_floor", {"kernel": 3, "stride": 2, "pad": 1, "ceil_mode": False}, (1, 2, 8, 10), 3, 2, 1, False,
         True),
        ("k3s2p1_floor_exclude_pad", {"kernel": 3, "stride": 2, "pad": 1, "ceil_mode": False,
                                      "count_include_pad": False}, (1, 2, 8, 10), 3, 2, 1, False, False),
        # ceil gives 4 windows on 5 pixels, the last starting at 6 >= 5 + 1: dropped, 3 remain
        ("k2s2p1_dropped_last", {"kernel": 2, "stride": 2, "pad": 1}, (1, 2, 5, 5), 2, 2, 1, True, True),
        ("k2s3_stride_gt_kernel", {"kernel": 2, "stride": 3}, (1, 2, 8, 10), 2, 3, 0, True, True),
        ("rect", {"kernel": [3, 2], "stride": [2, 3], "pad": [1, 1]}, (2, 2, 7, 8), (3, 2), (2, 3), (1, 1), True,
         True),
        ("rect_floor_exclude_pad", {"kernel": [3, 2], "stride": [1, 2], "pad": [1, 0], "ceil_mode": False,
                                    "count_include_pad": False}, (1, 2, 6, 7), (3, 2), (1, 2), (1, 0), False, False),
    ]
    for name, spec, shape, k, s, p, ceil, include_pad in cases:
        f.add(name, spec, [randn(*shape)], pool(k, s, p, ceil, include_pad))
    f.add("global", {"global": True}, [randn(2, 3, 5, 7)], lambda x: F.adaptive_avg_pool2d(x, 1))
    f.save()


def main():
    torch.manual_seed(0)
    for make in (pool_fixture, relu_fixture, crop_fixture, sum_fixture, scale_fixture, softmax_loss_fixture,
                 concat_fixture, resize_fixture, batch_norm_fixture, avg_pool_fixture):
        make()


if __name__ == "__main__":
    main()
