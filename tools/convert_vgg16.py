"""torchvision VGG16 weights -> fcn safetensors, the initialisation of
FCN-32s (and FCN-8s at-once), as the reference's surgery.transplant does
from the ILSVRC VGG16 caffemodel.

  features.{0,2,5,...,28}  -> conv1_1 ... conv5_3 (weight, bias)
  classifier.0 (fc6)       -> fc6.weight reshaped 4096x25088 -> 4096x512x7x7
  classifier.3 (fc7)       -> fc7.weight reshaped 4096x4096 -> 4096x4096x1x1
  classifier.6 (fc8)       -> dropped (1000 ImageNet classes; FCN scores from score_fr)

torchvision flattens pool5 in (channel, row, column) order, so the plain
reshape turns the fully connected fc6 into the equivalent 7x7 convolution.

Input convention: torchvision's VGG16 was trained on RGB images scaled to
[0, 1] and normalised by the ImageNet mean/std, while fcn feeds BGR images
minus the Caffe mean, unscaled (as the reference caffemodel expects). By
default the converter folds that difference into conv1_1 (reverses its input
channels, divides by 255*std and moves the mean difference into its bias), so
the converted net sees the input it was trained on. The fold is exact except
in conv1_1's zero padding, which now stands for the Caffe mean instead of
255 x ImageNet mean (at most one grey level apart). --torchvision-input
keeps conv1_1 as it is (for checks against torchvision on the same tensor).

Usage: /usr/bin/python3 tools/convert_vgg16.py VGG16.pth OUT.safetensors [--torchvision-input]
       /usr/bin/python3 tools/convert_vgg16.py --random [--seed S] OUT.safetensors"""
import argparse
import os
import sys

import numpy as np
import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import safetensors_np  # noqa: E402
from torch_fcn_ref import vgg16_convs  # noqa: E402

FC_SHAPES = {"fc6": ("classifier.0", (4096, 512, 7, 7)), "fc7": ("classifier.3", (4096, 4096, 1, 1))}
# torchvision's input normalisation (RGB, [0, 1] scale) and fcn's (BGR, 0..255 minus this mean)
TORCHVISION_MEAN_RGB = np.array([0.485, 0.456, 0.406], dtype=np.float64)
TORCHVISION_STD_RGB = np.array([0.229, 0.224, 0.225], dtype=np.float64)
CAFFE_MEAN_BGR = np.array([104.00698793, 116.66876762, 122.67891434], dtype=np.float64)


def load_state_dict(path):
    """A state dict saved with torch.save (or a whole pickled model)."""
    obj = torch.load(path, map_location="cpu")
    if isinstance(obj, torch.nn.Module):
        obj = obj.state_dict()
    if not isinstance(obj, dict):
        raise SystemExit(f"{path}: expected a state dict, got {type(obj).__name__}")
    return {k: v.detach().cpu().numpy().astype(np.float32) for k, v in obj.items() if torch.is_tensor(v)}


def feature_convs(state):
    """The features.N conv layers in order; exactly 13 for VGG16 (no BN)."""
    indices = sorted(int(k.split(".")[1]) for k in state if k.startswith("features.") and k.endswith(".weight"))
    convs = [i for i in indices if state[f"features.{i}.weight"].ndim == 4]
    if len(convs) != len(indices) or len(convs) != len(vgg16_convs()):
        raise SystemExit(f"expected torchvision VGG16 (13 conv layers, no batch norm) in features.*, "
                         f"found {len(convs)} conv and {len(indices) - len(convs)} other weighted layers")
    return convs


def vgg16_to_fcn(state):
    """torchvision VGG16 state dict (numpy) -> {fcn param name: array}."""
    out = {}
    for index, (name, channels, _) in zip(feature_convs(state), vgg16_convs()):
        weight = state[f"features.{index}.weight"]
        if weight.shape[0] != channels:
            raise SystemExit(f"features.{index}.weight: {weight.shape[0]} outputs, VGG16's {name} has {channels}")
        out[name + ".weight"] = weight
        out[name + ".bias"] = state[f"features.{index}.bias"]
    for name, (key, shape) in FC_SHAPES.items():
        weight = state.get(key + ".weight")
        if weight is None or weight.size != int(np.prod(shape)):
            got = "missing" if weight is None else f"shape {list(weight.shape)}"
            raise SystemExit(f"{key}.weight ({name}): expected {shape[0]}x{int(np.prod(shape[1:]))}, {got}")
        out[name + ".weight"] = weight.reshape(shape)
        out[name + ".bias"] = state[key + ".bias"]
    return out


def fold_input_normalisation(params):
    """Makes conv1_1 take fcn's input z = x_bgr - caffe_mean (0..255) instead of
    torchvision's (x_rgb / 255 - mean) / std. As x_rgb is (z + caffe_mean) with
    the channels reversed: w'[:, c] = w[:, 2 - c] / (255 std_bgr[c]) and
    b' = b + sum over c, h, w of w'[:, c] (caffe_mean[c] - 255 mean_bgr[c])."""
    w = params["conv1_1.weight"].astype(np.float64)[:, ::-1]  # RGB -> BGR input channels
    std_bgr, mean_bgr = TORCHVISION_STD_RGB[::-1], TORCHVISION_MEAN_RGB[::-1]
    w = w / (255.0 * std_bgr)[None, :, None, None]
    shift = CAFFE_MEAN_BGR - 255.0 * mean_bgr  # what x_bgr - caffe_mean lacks of x_bgr - 255 mean
    b = params["conv1_1.bias"] + np.einsum("ochw,c->o", w, shift)
    return {**params, "conv1_1.weight": w.astype(np.float32), "conv1_1.bias": b.astype(np.float32)}


def random_vgg16(seed):
    import torchvision  # only needed here
    torch.manual_seed(seed)
    return {k: v.numpy() for k, v in torchvision.models.vgg16().state_dict().items()}


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("input", nargs="?", help="torchvision VGG16 state dict (.pth)")
    ap.add_argument("output", nargs="?", help="fcn weights (.safetensors)")
    ap.add_argument("--random", action="store_true", help="convert a randomly initialised torchvision vgg16()")
    ap.add_argument("--seed", type=int, default=0, help="torch seed for --random")
    ap.add_argument("--torchvision-input", action="store_true",
                    help="keep conv1_1 for torchvision's normalised RGB input (no fold, see above)")
    a = ap.parse_args()
    if a.random:
        if a.output is not None:
            ap.error("with --random give only OUT.safetensors")
        a.input, a.output = None, a.input
    if a.output is None:
        ap.error("give VGG16.pth OUT.safetensors, or --random OUT.safetensors")
    state = random_vgg16(a.seed) if a.random else load_state_dict(a.input)
    params = vgg16_to_fcn(state)
    if not a.torchvision_input:
        params = fold_input_normalisation(params)
    source = f"torchvision vgg16() seed {a.seed}" if a.random else os.path.basename(a.input)
    convention = "torchvision" if a.torchvision_input else "caffe_bgr"
    safetensors_np.save(a.output, params, {"source": source, "input": convention})
    dropped = sorted(k for k in state if k.startswith("classifier.6."))
    print(f"wrote {len(params)} tensors to {a.output} (dropped {', '.join(dropped) or 'nothing'})")


if __name__ == "__main__":
    main()
