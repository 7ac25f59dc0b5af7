#!/usr/bin/env python3
"""Writes the PyTorch parity fixtures of the conv and deconv layers:
tests/fixtures/{conv,deconv}_<case>.safetensors hold x, weight, bias, a
given grad_out and PyTorch's y, grad_x, grad_weight, grad_bias (computed in
float64, stored as float32), with the layer's JSON spec in the metadata
("spec"); {conv,deconv}_sizes.safetensors tabulate output sizes measured by
running PyTorch. Usage: /usr/bin/python3 tools/fixtures_conv.py [--check]"""
import json
import os
import sys

import numpy as np
import torch
import torch.nn.functional as F

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import fixture_output  # noqa: E402
import safetensors_np  # noqa: E402

OUT = fixture_output.directory("tests/fixtures")

# name: (input shape, layer options)
CONV_CASES = {
    "basic": ([2, 3, 7, 6], {"num_output": 4, "kernel": 3, "pad": 1}),
    "rect_stride": ([1, 2, 9, 8], {"num_output": 3, "kernel": [3, 2], "stride": 2}),
    "dilation": ([1, 3, 8, 9], {"num_output": 2, "kernel": 3, "pad": 2, "dilation": 2}),
    "groups": ([2, 4, 7, 7], {"num_output": 6, "kernel": 3, "stride": 2, "pad": 1, "groups": 2}),
    "pointwise": ([2, 5, 4, 3], {"num_output": 3, "kernel": 1}),
    "stride_gt_kernel": ([1, 2, 10, 11], {"num_output": 3, "kernel": 2, "stride": 3, "pad": [1, 0], "bias": False}),
}
DECONV_CASES = {
    "basic": ([2, 3, 4, 5], {"num_output": 4, "kernel": 3, "stride": 2, "pad": 1}),
    "output_padding": ([1, 2, 3, 4], {"num_output": 3, "kernel": 3, "stride": 2, "pad": 1, "output_padding": 1}),
    "groups": ([1, 4, 3, 3], {"num_output": 6, "kernel": 4, "stride": 2, "pad": 1, "groups": 2}),
    # output_padding >= stride is allowed when it is below the dilation
    "dilation": ([1, 2, 4, 4], {"num_output": 2, "kernel": 3, "pad": 1, "dilation": 2, "output_padding": [1, 0]}),
    "rect_nobias": ([2, 3, 3, 4], {"num_output": 2, "kernel": [2, 3], "stride": [2, 1], "pad": [0, 1],
                                    "bias": False}),
    "pointwise": ([1, 3, 4, 4], {"num_output": 2, "kernel": 1}),
    # 1x1, but the output_padding row and column receive only the bias
    "pointwise_output_padding": ([1, 3, 3, 3], {"num_output": 2, "kernel": 1, "dilation": 2, "output_padding": 1}),
}


def hw(options, key, default):
    v = options.get(key, default)
    return tuple(v) if isinstance(v, list) else (v, v)


def write_case(layer_type, case, in_shape, options, rng):
    groups = options.get("groups", 1)
    cin, cout = in_shape[1], options["num_output"]
    k = hw(options, "kernel", 1)
    w_shape = [cout, cin // groups, *k] if layer_type == "conv" else [cin, cout // groups, *k]
    x = torch.tensor(rng.uniform(-1, 1, in_shape), dtype=torch.float64, requires_grad=True)
    w = torch.tensor(rng.uniform(-1, 1, w_shape), dtype=torch.float64, requires_grad=True)
    use_bias = options.get("bias", True)
    b = torch.tensor(rng.uniform(-1, 1, [cout]), dtype=torch.float64, requires_grad=True) if use_bias else None
    common = dict(stride=hw(options, "stride", 1), padding=hw(options, "pad", 0),
                  dilation=hw(options, "dilation", 1), groups=groups)
    if layer_type == "conv":
        y = F.conv2d(x, w, b, **common)
    else:
        y = F.conv_transpose2d(x, w, b, output_padding=hw(options, "output_padding", 0), **common)
    grad_out = torch.tensor(rng.uniform(-1, 1, list(y.shape)), dtype=torch.float64)
    y.backward(grad_out)
    tensors = {"x": x.detach().numpy(), "weight": w.detach().numpy(), "grad_out": grad_out.numpy(),
               "y": y.detach().numpy(), "grad_x": x.grad.numpy(), "grad_weight": w.grad.numpy()}
    if use_bias:
        tensors.update(bias=b.detach().numpy(), grad_bias=b.grad.numpy())
    spec = dict(name=f"{layer_type}_{case}", type=layer_type, inputs=["x"], **options)
    tensors = {name: a.astype(np.float32) for name, a in tensors.items()}
    safetensors_np.save(os.path.join(OUT, f"{layer_type}_{case}.safetensors"), tensors, {"spec": json.dumps(spec)})


def size_tables():
    """Rows (in, kernel, stride, pad, dilation, output_padding, out), measured."""
    conv_rows, deconv_rows = [], []
    for size in (1, 2, 5, 17, 33):
        for kernel in (1, 2, 3, 7):
            for stride in (1, 2, 3, 8):
                for pad in (0, 1, 3):
                    for dilation in (1, 2):
                        x = torch.zeros(1, 1, size, size)
                        w = torch.zeros(1, 1, kernel, kernel)
                        if size + 2 * pad >= dilation * (kernel - 1) + 1:
                            out = F.conv2d(x, w, stride=stride, padding=pad, dilation=dilation).shape[2]
                            conv_rows.append([size, kernel, stride, pad, dilation, 0, out])
                        for output_padding in sorted({0, max(stride, dilation) - 1}):
                            try:
                                out = F.conv_transpose2d(x, w, stride=stride, padding=pad, dilation=dilation,
                                                         output_padding=output_padding).shape[2]
                            except RuntimeError:
                                continue  # the padding removes the whole output
                            deconv_rows.append([size, kernel, stride, pad, dilation, output_padding, out])
    # the FCN upsampling deconvs
    for size, kernel, stride in ((16, 64, 32), (34, 4, 2), (35, 16, 8), (18, 32, 16)):
        x, w = torch.zeros(1, 1, size, size), torch.zeros(1, 1, kernel, kernel)
        out = F.conv_transpose2d(x, w, stride=stride).shape[2]
        deconv_rows.append([size, kernel, stride, 0, 1, 0, out])
    return np.array(conv_rows, dtype=np.int32), np.array(deconv_rows, dtype=np.int32)


def main():
    os.makedirs(OUT, exist_ok=True)
    rng = np.random.default_rng(20150607)
    for case, (shape, options) in CONV_CASES.items():
        write_case("conv", case, shape, options, rng)
    for case, (shape, options) in DECONV_CASES.items():
        write_case("deconv", case, shape, options, rng)
    conv_sizes, deconv_sizes = size_tables()
    safetensors_np.save(os.path.join(OUT, "conv_sizes.safetensors"), {"rows": conv_sizes})
    safetensors_np.save(os.path.join(OUT, "deconv_sizes.safetensors"), {"rows": deconv_sizes})


if __name__ == "__main__":
    main()
