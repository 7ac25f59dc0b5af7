"""A PyTorch interpreter for fcn's JSON graph specs: runs the same graph with
torch.nn.functional (in float32, or float64 for a reference), so that fcn's
blobs and gradients can be compared number by number. Crop "auto" offsets are derived here
independently, with Caffe's coord_map rules. Used by the parity tools and
tests."""
import math

import numpy as np
import torch
import torch.nn.functional as F


def _hw(v, default):
    if v is None:
        v = default
    return (v, v) if isinstance(v, int) else (int(v[0]), int(v[1]))


def _resize_map(layer, in_hw, out_hw):
    """The inverse of F.interpolate's bilinear source mapping, per axis."""
    align = layer.get("align_corners", False)
    scale = layer.get("scale")
    scales = None if scale is None else (scale, scale) if not isinstance(scale, list) else scale
    maps = []
    for i in range(2):
        n, m = in_hw[i], out_hw[i]
        if n == m:  # PyTorch copies an axis whose size does not change
            maps.append((1.0, 0.0))
        elif align:
            maps.append(((m - 1) / (n - 1), 0.0) if n > 1 and m > 1 else (m / n, 0.0))
        else:
            a = float(scales[i]) if scales else m / n  # the given factor, else out/in
            maps.append((a, 0.5 * a - 0.5))
    return maps


def _coord_map(layer, in_hw=None, out_hw=None):
    """(scale, shift) per axis: output coord = scale * input coord + shift."""
    t = layer["type"]
    if t == "resize":
        return _resize_map(layer, in_hw, out_hw)
    if t == "avg_pool" and layer.get("global", False):  # the kernel is the input plane, stride 1
        return [(1.0, -(in_hw[i] - 1) / 2.0) for i in range(2)]
    if t in ("conv", "max_pool", "avg_pool"):
        k = _hw(layer.get("kernel"), 1)
        s = _hw(layer.get("stride"), 1 if t == "conv" else k)
        p = _hw(layer.get("pad"), 0)
        d = _hw(layer.get("dilation"), 1) if t == "conv" else (1, 1)
        return [(1.0 / s[i], (p[i] - d[i] * (k[i] - 1) / 2.0) / s[i]) for i in range(2)]
    if t == "deconv":
        k = _hw(layer.get("kernel"), 1)
        s = _hw(layer.get("stride"), 1)
        p = _hw(layer.get("pad"), 0)
        d = _hw(layer.get("dilation"), 1)
        return [(float(s[i]), d[i] * (k[i] - 1) / 2.0 - p[i]) for i in range(2)]
    return [(1.0, 0.0), (1.0, 0.0)]


_RUNNING = (".running_mean", ".running_var")


class TorchGraph:
    def __init__(self, spec, params, dtype=torch.float32):
        """params: dict name -> np.ndarray, e.g. 'conv1.weight'; the graph
        computes in `dtype`. batch_norm's running statistics are buffers, which
        a training run updates."""
        self.spec = spec
        self.dtype = dtype
        self.train = False
        self.params = {k: torch.tensor(np.asarray(v), dtype=dtype, requires_grad=not k.endswith(_RUNNING))
                       for k, v in params.items()}

    def frozen(self, layer, suffix):
        key = "lr_mult" if suffix == "weight" else "bias_lr_mult"
        default = 1.0 if suffix == "weight" else 2.0
        if layer["type"] in ("scale", "batch_norm"):
            default = 1.0
        if layer["type"] == "batch_norm" and layer.get("mode", "train") == "frozen":
            return True
        return float(layer.get(key, default)) == 0.0

    def run(self, inputs, backward=False, train=False):
        """inputs: dict name -> np.ndarray. Returns (blobs, grads) as numpy dicts;
        grads holds 'grad/<blob>' and 'grad/<param>' for trainable params. With
        train, batch_norm runs in training mode, and blobs also holds its
        running statistics as they are after the pass (by param name)."""
        self.train = train
        blobs, maps = {}, {}
        for name in self.spec["inputs"]:
            blobs[name] = torch.tensor(np.asarray(inputs[name]), dtype=self.dtype)
            maps[name] = [(1.0, 0.0), (1.0, 0.0)]
        losses = []
        for layer in self.spec["layers"]:
            xs = [blobs[n] for n in layer["inputs"]]
            in_maps = [maps[n] for n in layer["inputs"]]
            out, crop_offset = self._layer(layer, xs, in_maps)
            if layer["type"] == "loss" or layer["type"] == "softmax_loss":
                losses.append(out)
            if backward and out.requires_grad:
                out.retain_grad()
            blobs[layer["name"]] = out
            own = _coord_map(layer, xs[0].shape[2:] if xs else None, out.shape[2:] if out.dim() == 4 else None)
            if layer["type"] == "crop":
                own = [(1.0, -float(crop_offset[i])) for i in range(2)]
            maps[layer["name"]] = [(in_maps[0][i][0] * own[i][0], own[i][0] * in_maps[0][i][1] + own[i][1])
                                   for i in range(2)]
        if train:
            for name, p in self.params.items():
                if name.endswith(_RUNNING):
                    blobs[name] = p
        grads = {}
        if backward:
            if losses:
                total = sum(losses)
            else:
                last = blobs[self.spec["layers"][-1]["name"]]
                total = last.sum()
            total.backward()
            for name, b in blobs.items():
                if name in self.spec["inputs"] or not b.requires_grad or b.grad is None:
                    continue
                grads["grad/" + name] = b.grad.detach().numpy()
            for name, p in self.params.items():
                if p.grad is not None:
                    grads["grad/" + name] = p.grad.detach().numpy()
        return {k: v.detach().numpy() for k, v in blobs.items()}, grads

    def _param(self, layer, suffix):
        p = self.params[layer["name"] + "." + suffix]
        if self.frozen(layer, suffix):
            p = p.detach()
        return p

    def _layer(self, layer, xs, in_maps):
        t = layer["type"]
        if t == "conv":
            w = self._param(layer, "weight")
            b = self._param(layer, "bias") if layer.get("bias", True) else None
            return F.conv2d(xs[0], w, b, stride=_hw(layer.get("stride"), 1), padding=_hw(layer.get("pad"), 0),
                            dilation=_hw(layer.get("dilation"), 1), groups=layer.get("groups", 1)), None
        if t == "deconv":
            w = self._param(layer, "weight")
            b = self._param(layer, "bias") if layer.get("bias", True) else None
            return F.conv_transpose2d(xs[0], w, b, stride=_hw(layer.get("stride"), 1),
                                      padding=_hw(layer.get("pad"), 0),
                                      output_padding=_hw(layer.get("output_padding"), 0),
                                      groups=layer.get("groups", 1), dilation=_hw(layer.get("dilation"), 1)), None
        if t == "max_pool":
            k = _hw(layer.get("kernel"), 1)
            return F.max_pool2d(xs[0], k, _hw(layer.get("stride"), k), _hw(layer.get("pad"), 0),
                                ceil_mode=layer.get("ceil_mode", True)), None
        if t == "avg_pool":
            if layer.get("global", False):
                return xs[0].mean(dim=(2, 3), keepdim=True), None
            k = _hw(layer.get("kernel"), 1)
            return F.avg_pool2d(xs[0], k, _hw(layer.get("stride"), k), _hw(layer.get("pad"), 0),
                                ceil_mode=layer.get("ceil_mode", True),
                                count_include_pad=layer.get("count_include_pad", True)), None
        if t == "batch_norm":
            affine = layer.get("affine", True)
            w = self._param(layer, "weight") if affine else None
            b = self._param(layer, "bias") if affine else None
            training = self.train and layer.get("mode", "train") != "frozen"
            return F.batch_norm(xs[0], self.params[layer["name"] + ".running_mean"],
                                self.params[layer["name"] + ".running_var"], w, b, training=training,
                                momentum=layer.get("momentum", 0.1), eps=layer.get("eps", 1e-5)), None
        if t == "relu":
            slope = layer.get("negative_slope", 0.0)
            return (F.leaky_relu(xs[0], slope) if slope else F.relu(xs[0])), None
        if t == "dropout":
            return xs[0] * 1.0, None  # test mode
        if t == "crop":
            x, ref = xs
            offset = layer.get("offset", "auto")
            if offset == "auto":
                off = []
                for i in range(2):
                    (ax, bx), (ar, br) = in_maps[0][i], in_maps[1][i]
                    assert abs(ax - ar) < 1e-9, "scale mismatch on crop"
                    off.append(int(round(bx - br)))
            elif isinstance(offset, int):
                off = [offset, offset]
            else:
                off = list(offset)
            h, w = ref.shape[2], ref.shape[3]
            return x[:, :, off[0]:off[0] + h, off[1]:off[1] + w], off
        if t == "sum":
            coeffs = layer.get("coeffs", [1.0] * len(xs))
            out = xs[0] * coeffs[0]
            for c, x in zip(coeffs[1:], xs[1:]):
                out = out + c * x
            return out, None
        if t == "concat":
            return torch.cat(xs, layer.get("axis", 1)), None
        if t == "resize":
            align = layer.get("align_corners", False)
            if "scale" in layer:
                scale = layer["scale"]
                factors = [float(v) for v in scale] if isinstance(scale, list) else [float(scale)] * 2
                return F.interpolate(xs[0], scale_factor=factors, mode="bilinear", align_corners=align), None
            size = xs[1].shape[2:] if len(xs) == 2 else _hw(layer["size"], None)
            return F.interpolate(xs[0], size=tuple(size), mode="bilinear", align_corners=align), None
        if t == "scale":
            if layer.get("learnable", False):
                return xs[0] * self._param(layer, "weight"), None
            return xs[0] * layer.get("value", 1.0), None
        if t == "softmax_loss":
            score, label = xs
            target = label[:, 0].round().long()
            ignore = layer.get("ignore_label", 255)
            norm = layer.get("normalize", "valid")
            total = F.cross_entropy(score, target, ignore_index=ignore, reduction="sum")
            if norm == "valid":
                valid = int((target != ignore).sum())
                total = total / max(valid, 1) if valid else total * 0.0
            else:  # "batch" and "none": each image's sum, averaged over the batch
                total = total / score.shape[0]
            return total, None
        raise ValueError("unknown layer type " + t)


def conv_out(n, k, s, p, d=1):
    return (n + 2 * p - d * (k - 1) - 1) // s + 1


def pool_out(n, k, s, p, ceil=True):
    if ceil:
        o = int(math.ceil((n + 2 * p - k) / s)) + 1
        if (o - 1) * s >= n + p:
            o -= 1
    else:
        o = (n + 2 * p - k) // s + 1
    return o


def deconv_out(n, k, s, p, op=0, d=1):
    return (n - 1) * s - 2 * p + d * (k - 1) + op + 1


def resize_out(n, scale):
    """F.interpolate's output size for a scale factor: floor(n * scale) in double."""
    return int(n * scale)
