"""fcn checkpoints <-> PyTorch state dicts.

fcn's param names are the reference layer names, and so are the module names
of tools/torch_fcn_ref.py's FCN and of pytorch-fcn (wkentaro/pytorch-fcn):
there the conversion is a change of container. Checkpoint-only tensors
("<param>.momentum", "grad/...") are dropped on export.

  to-torch   CKPT.safetensors OUT.pth [--names ref|bench]
             ref:   conv1_1.weight, ..., upscore8.weight (torch_fcn_ref.FCN, pytorch-fcn)
             bench: the module names of shared/bench/torch_fcn.py's FCN
                    (b1.0.weight ... b5.4.bias; up2, up_pool4, and up for the
                    final upsampling); that class always builds score_pool4
                    and score_pool3, so load a 32s/16s export with strict=False.
  from-torch IN.pth OUT.safetensors
             a state dict with reference names (e.g. torch_fcn_ref.FCN's) ->
             fcn weights, for --init or --weights.

Usage: /usr/bin/python3 tools/convert_torch.py to-torch CKPT OUT.pth [--names bench]
       /usr/bin/python3 tools/convert_torch.py from-torch IN.pth OUT.safetensors"""
import argparse
import os
import sys

import numpy as np
import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import safetensors_np  # noqa: E402
from convert_vgg16 import load_state_dict  # noqa: E402
from torch_fcn_ref import VGG16_BLOCKS  # noqa: E402

# the final upsampling of each variant; torch_fcn.py calls every one of them "up"
BENCH_LAYERS = {"upscore": "up", "upscore16": "up", "upscore8": "up", "upscore2": "up2",
                "upscore_pool4": "up_pool4"}


def checkpoint_params(tensors):
    """The params of an fcn checkpoint or weights file (no solver/debug state)."""
    return {k: v for k, v in tensors.items() if not k.endswith(".momentum") and not k.startswith("grad/")}


def bench_layer(layer):
    """conv{b}_{i} -> b{b}.{2(i-1)} (torch_fcn.py's Sequential: conv, relu, conv, relu, ..., pool)."""
    for block, convs, _ in VGG16_BLOCKS:
        for i in range(1, convs + 1):
            if layer == f"conv{block}_{i}":
                return f"b{block}.{2 * (i - 1)}"
    return BENCH_LAYERS.get(layer, layer)


def to_bench_names(params):
    out = {}
    for name, value in params.items():
        layer, suffix = name.rsplit(".", 1)
        out[f"{bench_layer(layer)}.{suffix}"] = value
    return out


def to_torch(src, dst, names):
    tensors, meta = safetensors_np.load(src)
    params = checkpoint_params(tensors)
    if names == "bench":
        params = to_bench_names(params)
    torch.save({k: torch.from_numpy(np.ascontiguousarray(v, dtype=np.float32)) for k, v in sorted(params.items())},
               dst)
    at = f" (iter {meta['iter']})" if "iter" in meta else ""
    print(f"wrote {len(params)} tensors of {src}{at} to {dst} with {names} names")


def from_torch(src, dst):
    params = load_state_dict(src)
    safetensors_np.save(dst, params, {"source": os.path.basename(src)})
    print(f"wrote {len(params)} tensors of {src} to {dst}")


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="command", required=True)
    export = sub.add_parser("to-torch", help="fcn checkpoint -> PyTorch state dict")
    export.add_argument("src")
    export.add_argument("dst")
    export.add_argument("--names", choices=["ref", "bench"], default="ref")
    imp = sub.add_parser("from-torch", help="PyTorch state dict -> fcn weights")
    imp.add_argument("src")
    imp.add_argument("dst")
    a = ap.parse_args()
    if a.command == "to-torch":
        to_torch(a.src, a.dst, a.names)
    else:
        from_torch(a.src, a.dst)


if __name__ == "__main__":
    main()
