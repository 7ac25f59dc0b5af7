"""Whole-model parity of fcn's ResNet nets with torchvision's own model code.

fcn's zoo nets, run by `fcn forward --backward [--train]`, against
  - fcn_resnet50/101: torchvision.models.segmentation.fcn_resnet50/101
    (weights=None, num_classes=K, aux_loss=True or False) itself;
  - FCN-32s/16s/8s with a resnet18/34/50/101 backbone: torchvision has no such
    class, so SkipFCN (tools/torch_resnet_fcn.py) writes the paper's skip head in PyTorch around
    torchvision's resnetXX trunk (IntermediateLayerGetter: layer2, layer3,
    layer4 at strides 8, 16, 32): score layers (1x1 convs with bias), frozen
    bilinear deconvs of kernel 2f-1 and stride f (shift f-1: output j sits
    at input (j - f + 1) / f), the upsampled map cropped at offset f-1 to the
    skip's scores, and the last one at f-1 to the input. An independent
    description of the geometry, as tools/torch_fcn_ref.py is for VGG16.
Both load the same random weights by name (fcn's names are torchvision's
state-dict keys): msra-scaled convs, non-zero score layers and biases, BN
affine params away from (1, 0), and running statistics that are a float64
train-mode pass's batch statistics, perturbed (so that eval mode keeps
activations O(1) through 100 layers and the running statistics matter).
The reference runs in float64 and once more in float32 to measure PyTorch's
own float32 error (in both of its memory formats, NCHW and channels_last:
the larger error counts). At a ReLU input within 1e-4 x its RMS of 0 both take
fcn's side of the kink (KinkOracle: float32 rounding decides that side, and
one flipped pixel moves a small map's BN gradients by ~1e-3); each line
says how many pixels that changed (typically 0 to 2 of ~10^5).

For every net, input size (batch 2) and mode it compares
  - the scores (blob "score"; "aux_score" for fcn_resnet with the aux head)
    and the loss (torchvision's reference recipe: cross_entropy(out, target,
    ignore_index=255) + aux_weight x cross_entropy(aux, target, ...), i.e.
    fcn's normalize "valid"): max-abs relative error vs float64 at most
    2e-4 (tools/check_model_parity.py's bound) or, where PyTorch's own
    float32 error is larger, 3 x that (the 50- and 101-layer nets: each
    train-mode BN's mean subtraction amplifies the rounding error a little,
    and it compounds to ~1e-4 at the scores and ~1e-2 at the first layers'
    gradients, in PyTorch's float32 as in fcn's);
  - every learned param's gradient and, in train mode, every BN's running
    statistics after the pass: relative L2 error vs float64 at most
    max(3 x PyTorch float32's own relative L2 error on that tensor, 1e-5).
Modes: train (BN normalises with the batch's statistics and moves its
running statistics; the FCNHead's dropout is random in both frameworks, so
its ratio is 0 here: model.dropout 0 in fcn, p=0 in torch), eval (running
statistics; dropout at its default 0.1, an identity at test time in both)
and inference: eval without --backward, which fcn computes as fcn predict
does (batch norm folded into the conv before it, F(4x4, 3x3) Winograd
forward); its scores, aux scores and loss only, the scores also within
5 x PyTorch float32's own error (or 1e-6).

Usage: /usr/bin/python3 tools/check_torchvision_parity.py FCN_BINARY [--nets resnet18-fcn8s fcn_resnet50-aux ...]
           [--all] [--sizes 45x61 64x64] [--modes train eval inference] [--classes K] [--seed S] [--verbose]
           [--keep DIR] [--json OUT]
Nets: BACKBONE-ARCH (resnet18-fcn8s, resnet50-fcn32s, ...) and fcn_resnet50-aux,
fcn_resnet50-noaux, fcn_resnet101-aux, fcn_resnet101-noaux. Default: resnet18
and resnet50 x fcn32s/16s/8s, fcn_resnet50 with and without aux; --all: every net.
One line per (net, size, mode), a table of each net's worst tensor (error /
tolerance) at the end; --verbose (or a failure) adds one line per tensor."""
import argparse
import json
import os
import sys
import tempfile
import time

import numpy as np
import torch
import torch.nn.functional as F
import torchvision
from torch import nn

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import safetensors_np  # noqa: E402
from check_graph_parity import rel_err  # noqa: E402
from check_model_parity import SCORE_FACTOR, SCORE_FLOOR, compare_tensor, fcn_forward, format_record, rel_l2  # noqa: E402
from torch_resnet_fcn import SkipFCN  # noqa: E402

SCORE_TOL, LOSS_TOL = 2e-4, 2e-4
GRAD_FACTOR, GRAD_FLOOR = 3.0, 1e-5
IGNORE = 255
AUX_WEIGHT = 0.5  # torchvision's segmentation reference recipe
BACKBONES = ("resnet18", "resnet34", "resnet50", "resnet101")
SKIP_ARCHS = ("fcn32s", "fcn16s", "fcn8s")
FCN_RESNETS = ("fcn_resnet50", "fcn_resnet101")
ALL_NETS = [f"{b}-{a}" for b in BACKBONES for a in SKIP_ARCHS] + \
           [f"{m}-{h}" for m in FCN_RESNETS for h in ("aux", "noaux")]
DEFAULT_NETS = [f"{b}-{a}" for b in ("resnet18", "resnet50") for a in SKIP_ARCHS] + \
               ["fcn_resnet50-aux", "fcn_resnet50-noaux"]


# ---- the reference nets ----------------------------------------------------

class Net:
    """One net of the check: its torch module and fcn config."""

    def __init__(self, name, num_classes):
        self.name = name
        self.num_classes = num_classes
        first, second = name.split("-")
        self.fcn_resnet = first in FCN_RESNETS
        if self.fcn_resnet:
            self.model, self.aux = first, second == "aux"
        else:
            self.backbone, self.arch, self.aux = first, second, False

    def torch_module(self, mode):
        if self.fcn_resnet:
            net = getattr(torchvision.models.segmentation, self.model)(
                weights=None, weights_backbone=None, num_classes=self.num_classes, aux_loss=self.aux)
            if mode == "train":
                for module in net.modules():
                    if isinstance(module, nn.Dropout):
                        module.p = 0.0
            return net
        return SkipFCN(self.arch, self.backbone, self.num_classes)

    def config(self, mode):
        mode = "eval" if mode == "inference" else mode
        model = {"num_classes": self.num_classes, "normalize": "valid", "ignore_label": IGNORE}
        if self.fcn_resnet:
            model.update({"arch": self.model, "aux_weight": AUX_WEIGHT if self.aux else 0.0})
            if mode == "train":
                model["dropout"] = 0.0
        else:
            model.update({"arch": self.arch, "backbone": self.backbone})
        return {"model": model}

    def outputs(self, module, data):
        """(score, aux score or None) of a forward pass."""
        out = module(data)
        if self.fcn_resnet:
            return out["out"], out.get("aux")
        return out, None


def reference_loss(score, aux, label):
    target = label[:, 0].long()
    loss = F.cross_entropy(score, target, ignore_index=IGNORE)
    if aux is not None:
        loss = loss + AUX_WEIGHT * F.cross_entropy(aux, target, ignore_index=IGNORE)
    return loss


# ---- random weights and inputs ----------------------------------------------

def random_weights(net, seed, calibration):
    """{state-dict key: float32 array} for every learned param and running
    statistic (num_batches_tracked and the frozen deconvs left out). The
    running statistics are a float64 train-mode pass's batch statistics on
    `calibration`, perturbed."""
    rng = np.random.RandomState(seed)
    module = net.torch_module("train").double()
    bns = [m for m in module.modules() if isinstance(m, nn.BatchNorm2d)]
    bn_params = {id(p) for m in bns for p in (m.weight, m.bias)}
    params = dict(module.named_parameters())
    with torch.no_grad():
        for name, p in params.items():
            if not p.requires_grad:
                continue
            shape = tuple(p.shape)
            if id(p) in bn_params:
                low, high = (0.5, 1.5) if name.endswith(".weight") else (-0.2, 0.2)
                value = rng.uniform(low, high, shape)
            elif name.endswith(".bias"):
                value = rng.uniform(-0.1, 0.1, shape)
            else:
                fan_in = int(np.prod(shape[1:]))
                # the score layers (the only convs with a bias) feed no ReLU
                gain = 1.0 if name[:-len("weight")] + "bias" in params else 2.0
                value = rng.standard_normal(shape) * np.sqrt(gain / fan_in)
            # float32 values: fcn and both references use exactly these
            p.copy_(torch.from_numpy(value.astype(np.float32).astype(np.float64)))
        for m in bns:
            m.momentum = 1.0  # the running statistics become the batch's
        module.train()
        net.outputs(module, torch.from_numpy(calibration).double())
        for m in bns:
            mean, var = m.running_mean.numpy(), m.running_var.numpy()
            m.running_mean.copy_(torch.from_numpy(mean + 0.2 * np.sqrt(var) * rng.standard_normal(mean.shape)))
            m.running_var.copy_(torch.from_numpy(var * rng.uniform(0.7, 1.4, var.shape)))
    frozen = {n for n, p in module.named_parameters() if not p.requires_grad}
    return {k: v.numpy().astype(np.float32) for k, v in module.state_dict().items()
            if not k.endswith("num_batches_tracked") and k not in frozen}


def random_inputs(rng, batch, height, width, num_classes):
    """Normalised-image-like data (torchvision's convention gives O(1)
    inputs) and labels with 20% void."""
    data = rng.standard_normal((batch, 3, height, width)).astype(np.float32)
    label = rng.randint(0, num_classes, (batch, 1, height, width)).astype(np.float32)
    label[rng.uniform(size=label.shape) < 0.2] = IGNORE
    return {"data": data, "label": label}


# ---- running the reference ---------------------------------------------------

KINK_BAND = 1e-4  # of the ReLU input's RMS: within it, which side of 0 a value falls on is rounding


class KinkOracle:
    """fcn's side of each ReLU kink. A ReLU input that float64 puts within
    KINK_BAND x RMS of 0 can fall on the other side in float32 (rounding
    through ~100 layers reaches ~1e-5 of the RMS), and one such pixel moves a
    BN's gradient by ~1e-3 on a 4x4 map: so there the reference takes the
    side fcn took (read from fcn's dumped ReLU output, found by shape and
    value), and counts the pixels where that differs from its own."""

    def __init__(self, blobs):
        self.by_shape = {}
        for name, value in blobs.items():
            if not name.startswith("grad/") and value.ndim == 4 and value.min() >= 0:
                self.by_shape.setdefault(value.shape, []).append(value.astype(np.float64))
        self.adopted = 0

    def mask(self, x):
        x64 = x.detach().double().numpy()
        mask = x64 > 0
        band = KINK_BAND * float(np.sqrt(np.mean(x64 ** 2)))
        near = np.abs(x64) < band
        if not near.any():
            return mask
        out = np.maximum(x64, 0)
        candidates = self.by_shape.get(x64.shape, [])
        errors = [rel_l2(c, out) for c in candidates]
        if not errors or min(errors) > 1e-2:
            return mask  # no fcn blob is this ReLU's output: leave it to the comparison
        ours = candidates[int(np.argmin(errors))] > 0
        self.adopted += int(np.sum(near & (ours != mask)))
        return np.where(near, ours, mask)


class KinkReLU(nn.Module):
    def __init__(self, oracle):
        super().__init__()
        self.oracle = oracle

    def forward(self, x):
        return x * torch.from_numpy(self.oracle.mask(x)).to(x.dtype)


class Reference:
    """float64 and float32 runs of one (net, size, mode), at fcn's side of
    the ReLU kinks (KinkOracle)."""

    def __init__(self, net, mode, weights, inputs, ours):
        start = time.time()
        oracle = KinkOracle(ours)
        self.r64 = self.run(net, mode, weights, inputs, torch.float64, oracle)
        self.kinks = oracle.adopted
        # PyTorch's float32 error: the larger of its two memory formats' (they
        # sum in different orders, and a gradient that is a sum with much
        # cancellation, e.g. a score layer's bias, sees the two differ by 2x)
        runs = [self.run(net, mode, weights, inputs, torch.float32, KinkOracle(ours), layout)
                for layout in (torch.contiguous_format, torch.channels_last)]
        self.torch32 = {name: max(rel_l2(r["tensors"][name], t64) for r in runs)
                        for name, t64 in self.r64["tensors"].items()}
        # the scores' and the loss's float32 error, measured as they are compared
        for name in ("score", "aux_score"):
            if self.r64[name] is not None:
                self.torch32[name] = max(rel_err(r[name], self.r64[name]) for r in runs)
        self.torch32["loss"] = max(abs(r["loss"] - self.r64["loss"]) for r in runs) / max(abs(self.r64["loss"]), 1e-6)
        self.seconds = time.time() - start

    @staticmethod
    def run(net, mode, weights, inputs, dtype, oracle, layout=torch.contiguous_format):
        """{"score", "aux_score", "loss", "tensors": {grad/<param> and, in
        train mode, <bn>.running_mean/var after the pass}} as float64 numpy."""
        module = net.torch_module(mode).to(dtype)
        relus = [(parent, name) for parent in module.modules() for name, child in parent.named_children()
                 if isinstance(child, nn.ReLU)]
        for parent, name in relus:
            setattr(parent, name, KinkReLU(oracle))
        state = {k: torch.from_numpy(v).to(dtype) for k, v in weights.items()}
        missing, unexpected = module.load_state_dict(state, strict=False)
        assert not unexpected and all(k.endswith("num_batches_tracked") or k.startswith("upscore")
                                      for k in missing), (missing, unexpected)
        module.train(mode == "train")
        module.to(memory_format=layout)
        data = torch.from_numpy(inputs["data"]).to(dtype).contiguous(memory_format=layout)
        score, aux = net.outputs(module, data)
        loss = reference_loss(score, aux, torch.from_numpy(inputs["label"]))
        loss.backward()
        tensors = {"grad/" + n: p.grad.double().numpy() for n, p in module.named_parameters() if p.grad is not None}
        if mode == "train":
            for key, value in module.state_dict().items():
                if key.endswith(("running_mean", "running_var")):
                    tensors[key] = value.double().numpy()
        return {"score": score.detach().double().numpy(),
                "aux_score": None if aux is None else aux.detach().double().numpy(),
                "loss": float(loss), "tensors": tensors}


def compare(ours, meta, ref, backward=True):
    """Per-tensor records and the names of those out of tolerance (the
    outputs and the loss only, without `backward`)."""
    r64 = ref.r64
    records, failed = [], []
    outputs = [("score", r64["score"])] + ([("aux_score", r64["aux_score"])] if r64["aux_score"] is not None else [])
    for name, expected in outputs:
        got = ours.get(name)
        err = rel_err(got.astype(np.float64), expected) if got is not None and got.shape == expected.shape \
            else float("inf")
        tol = max(SCORE_TOL, GRAD_FACTOR * ref.torch32[name])
        records.append({"tensor": name, "max_abs_rel": err, "torch32_max_abs_rel": ref.torch32[name], "tolerance": tol})
        if not backward:  # the outputs are all a forward-only pass gives: held to PyTorch float32's own error too
            records.append({"tensor": name + " (vs float32)", "max_abs_rel": err,
                            "torch32_max_abs_rel": ref.torch32[name],
                            "tolerance": max(SCORE_FACTOR * ref.torch32[name], SCORE_FLOOR)})
    loss_err = abs(float(meta["loss"]) - r64["loss"]) / max(abs(r64["loss"]), 1e-6)
    records.append({"tensor": "loss", "max_abs_rel": loss_err, "torch32_max_abs_rel": ref.torch32["loss"],
                    "tolerance": max(LOSS_TOL, GRAD_FACTOR * ref.torch32["loss"])})
    failed += [r["tensor"] for r in records if not r["max_abs_rel"] <= r["tolerance"]]
    if not backward:
        return records, failed
    for name, t64 in r64["tensors"].items():
        compare_tensor(records, failed, name, ours, t64, ref.torch32[name])
    # fcn must not have a learned param the reference lacks
    # (blob names have dots too; a param's ends in .weight or .bias)
    for key in sorted(k for k in ours if k.startswith("grad/") and k.endswith((".weight", ".bias"))
                      and k not in r64["tensors"]):
        records.append({"tensor": key, "note": "not in the reference"})
        failed.append(key)
    return records, failed


def ratio(r):
    if "rel_l2" in r:
        return r["rel_l2"] / r["tolerance"]
    return r["max_abs_rel"] / r["tolerance"] if "max_abs_rel" in r else float("inf")


def check(fcn, workdir, net, size, mode, weights, inputs, args, results, worst):
    """One (net, size, mode): prints its line; returns True when it passed."""
    height, width = size
    tag = f"{net.name}_{args.batch}x{height}x{width}_{mode}"
    config = os.path.join(workdir, f"{tag}.json")
    with open(config, "w") as f:
        json.dump(net.config(mode), f)
    weights_file = os.path.join(workdir, f"{tag}_weights.safetensors")
    safetensors_np.save(weights_file, weights)
    start = time.time()
    flags = ["--train"] if mode == "train" else []
    backward = mode != "inference"
    try:
        ours, meta = fcn_forward(fcn, workdir, tag, ["--config", config], weights_file, inputs, backward=backward,
                                 flags=flags)
    except RuntimeError as e:
        print(f"{tag}: {e}", flush=True)
        worst[net.name] = max(worst.get(net.name, ("", 0.0)), ("fcn failed", float("inf")), key=lambda w: w[1])
        return False
    fcn_seconds = time.time() - start
    ref = Reference(net, mode, weights, inputs, ours)
    records, failed = compare(ours, meta, ref, backward)
    top = max(records, key=ratio)
    worst[net.name] = max(worst.get(net.name, ("", 0.0)), (f"{top['tensor']} ({size[0]}x{size[1]} {mode})",
                                                            ratio(top)), key=lambda w: w[1])
    scores = " ".join(f"{r['tensor']} {r['max_abs_rel']:.1e}" for r in records if "rel_l2" not in r and "max_abs_rel" in r)
    tensors = [r for r in records if "rel_l2" in r]
    print(f"{tag}: {'ok' if not failed else 'MISMATCH in ' + ', '.join(failed[:8])}  {scores}  "
          f"{len(tensors)} tensors, worst {top['tensor']} at {ratio(top):.2f} x tol, {ref.kinks} kinks adopted  "
          f"[fcn {fcn_seconds:.1f} s, torch {ref.seconds:.1f} s]", flush=True)
    if failed or args.verbose:
        for r in records:
            print(format_record(r, width=48))
    for r in records:
        results.append({"net": net.name, "size": f"{height}x{width}", "mode": mode, **r})
    return not failed


def parse_size(text):
    h, w = text.lower().split("x")
    return int(h), int(w)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("fcn")
    ap.add_argument("--nets", nargs="+", choices=ALL_NETS, default=None)
    ap.add_argument("--all", action="store_true", help="every net (resnet34/101 backbones, fcn_resnet101)")
    ap.add_argument("--sizes", nargs="+", type=parse_size, default=[(45, 61), (64, 64)])
    ap.add_argument("--modes", nargs="+", choices=("train", "eval", "inference"),
                    default=["train", "eval"])
    ap.add_argument("--batch", type=int, default=2)
    ap.add_argument("--classes", type=int, default=5)
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("--threads", type=int, default=0, help="torch threads (0: torch's default)")
    ap.add_argument("--keep", default=None, help="keep the configs, weights and dumps here")
    ap.add_argument("--json", default=None, help="write every tensor's errors here (a JSON list)")
    ap.add_argument("--verbose", action="store_true", help="one line per tensor")
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    names = ALL_NETS if args.all else (args.nets or DEFAULT_NETS)
    results, worst, failed, total = [], {}, 0, 0
    with tempfile.TemporaryDirectory(prefix="fcn_tv_parity_") as tmp:
        workdir = args.keep or tmp
        os.makedirs(workdir, exist_ok=True)
        for name in names:
            net = Net(name, args.classes)
            for height, width in args.sizes:
                calibration = random_inputs(np.random.RandomState(args.seed), args.batch, height, width,
                                            net.num_classes)["data"]
                weights = random_weights(net, args.seed, calibration)
                inputs = random_inputs(np.random.RandomState(args.seed + height * 1000 + width), args.batch, height,
                                       width, net.num_classes)
                for mode in args.modes:
                    total += 1
                    failed += not check(args.fcn, workdir, net, (height, width), mode, weights, inputs, args,
                                        results, worst)
    if args.json:
        with open(args.json, "w") as f:
            json.dump(results, f, indent=1)
    print("worst tensor per net (error / tolerance; <= 1 passes):")
    for name in names:
        tensor, r = worst[name]
        print(f"  {name:22s} {r:6.3f}  {tensor}")
    print(f"{total - failed} passed, {failed} failed")
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
