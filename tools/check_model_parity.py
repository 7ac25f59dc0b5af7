"""Whole-model parity: fcn's zoo FCN-32s/16s/8s/8s-atonce, run by `fcn forward
--backward`, against tools/torch_fcn_ref.py (an independent PyTorch
description of the reference nets) loaded with the same weights by name.

For every variant and input size it compares the final scores (blob "score",
relative error <= 2e-4), the unnormalized loss (<= 2e-4) and the gradients of
a few params from the bottom and the top of the net (<= 1e-3). The upsampling
deconvs are not in the weights file: fcn initialises them (bilinear) and the
reference builds its own, so the check covers that init too.

Usage: /usr/bin/python3 tools/check_model_parity.py FCN_BINARY [--width W] [--classes K]
           [--sizes 37x45 51x33] [--variants fcn32s ...] [--seed S] [--keep DIR]
Relative error = max |fcn - torch| / max |torch| per tensor."""
import argparse
import json
import os
import subprocess
import sys
import tempfile

import numpy as np
import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import safetensors_np  # noqa: E402
import torch_fcn_ref  # noqa: E402
from check_graph_parity import rel_err  # noqa: E402

SCORE_TOL, LOSS_TOL, GRAD_TOL = 2e-4, 2e-4, 1e-3
SCORE_LAYERS = ("score_fr", "score_pool4", "score_pool3")
GRAD_PARAMS = ("conv1_1.weight", "conv3_1.bias", "fc6.weight") + tuple(f"{s}.weight" for s in SCORE_LAYERS)


def random_weights(model, seed):
    """Every learnable param of `model` by name: msra-scaled trunk weights (so
    activations keep their scale through 15 layers), non-zero score layers
    (the paper zero-inits them, which would hide the skip paths) and small
    random biases. The frozen upsampling deconvs are left out."""
    rng = np.random.RandomState(seed)
    weights = {}
    for name, p in model.named_parameters():
        if not p.requires_grad:
            continue
        shape = tuple(p.shape)
        if name.endswith(".bias"):
            weights[name] = rng.uniform(-0.1, 0.1, shape).astype(np.float32)
            continue
        fan_in = int(np.prod(shape[1:]))
        gain = 1.0 if name.split(".")[0] in SCORE_LAYERS else 2.0
        weights[name] = (rng.standard_normal(shape) * np.sqrt(gain / fan_in)).astype(np.float32)
    return weights


def random_inputs(rng, height, width, num_classes):
    """A mean-subtracted-image-like data blob and labels with 20% void."""
    data = (rng.standard_normal((1, 3, height, width)) * 50).astype(np.float32)
    label = rng.randint(0, num_classes, (1, 1, height, width)).astype(np.float32)
    label[rng.uniform(size=label.shape) < 0.2] = 255
    return {"data": data, "label": label}


def fcn_forward(fcn, workdir, tag, model_flag, weights_file, inputs, backward=False):
    """Runs `fcn forward` with `model_flag` (["--config", F] or ["--graph", F]),
    a weights file and inputs (a dict of numpy arrays, saved under workdir);
    returns (tensors, metadata) of the dump. Raises with fcn's stderr on failure."""
    dump_file = os.path.join(workdir, f"{tag}_dump.safetensors")
    cmd = [fcn, "forward", *model_flag, "--weights", weights_file, "--dump", dump_file]
    for name, array in inputs.items():
        path = os.path.join(workdir, f"{tag}_{name}.safetensors")
        safetensors_np.save(path, {name: array})
        cmd += ["--input", f"{name}={path}"]
    if backward:
        cmd.append("--backward")
    run = subprocess.run(cmd, capture_output=True, text=True)
    if run.returncode != 0:
        raise RuntimeError(f"fcn forward failed: {run.stderr.strip()}")
    return safetensors_np.load(dump_file)


def write_config(workdir, variant, num_classes, width):
    path = os.path.join(workdir, f"{variant}.json")
    with open(path, "w") as f:
        json.dump({"model": {"arch": variant, "num_classes": num_classes, "width": width, "normalize": "none"}}, f)
    return path


def torch_reference(variant, num_classes, width, weights, inputs):
    """(score, loss, {param name: grad}) from torch_fcn_ref in eval mode."""
    model = torch_fcn_ref.FCN(variant, num_classes, width).eval()
    missing, unexpected = model.load_state_dict({k: torch.from_numpy(v) for k, v in weights.items()}, strict=False)
    assert not unexpected and all(k.startswith("upscore") for k in missing), (missing, unexpected)
    score = model(torch.from_numpy(inputs["data"]))
    loss = torch_fcn_ref.reference_loss(score, torch.from_numpy(inputs["label"]))
    loss.backward()
    grads = {name: p.grad.numpy() for name, p in model.named_parameters() if p.grad is not None}
    return score.detach().numpy(), float(loss), grads


def check(fcn, workdir, variant, size, args):
    """Prints one line per (variant, size); returns True when within tolerance."""
    height, width = size
    rng = np.random.RandomState(args.seed + height * 1000 + width)
    weights = random_weights(torch_fcn_ref.FCN(variant, args.classes, args.width), args.seed)
    inputs = random_inputs(rng, height, width, args.classes)
    tag = f"{variant}_{height}x{width}"
    config = write_config(workdir, variant, args.classes, args.width)
    weights_file = os.path.join(workdir, f"{tag}_weights.safetensors")
    safetensors_np.save(weights_file, weights)
    try:
        ours, meta = fcn_forward(fcn, workdir, tag, ["--config", config], weights_file, inputs, backward=True)
    except RuntimeError as e:
        print(f"{tag}: {e}")
        return False
    score, loss, grads = torch_reference(variant, args.classes, args.width, weights, inputs)
    errors = {"score": rel_err(ours["score"], score) if ours["score"].shape == score.shape else float("inf"),
              "loss": abs(float(meta["loss"]) - loss) / max(abs(loss), 1e-6)}
    for name in GRAD_PARAMS:
        if name in grads:
            errors["grad/" + name] = rel_err(ours["grad/" + name].reshape(grads[name].shape), grads[name])
    failed = [k for k, e in errors.items() if e > (GRAD_TOL if k.startswith("grad/") else SCORE_TOL)]
    detail = " ".join(f"{k}={e:.2e}" for k, e in errors.items())
    print(f"{tag}: {'ok' if not failed else 'MISMATCH in ' + ', '.join(failed)}  {detail}")
    return not failed


def parse_size(text):
    h, w = text.lower().split("x")
    return int(h), int(w)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("fcn")
    ap.add_argument("--width", type=float, default=0.0625)
    ap.add_argument("--classes", type=int, default=5)
    ap.add_argument("--sizes", nargs="+", type=parse_size, default=[(37, 45), (51, 33)])
    ap.add_argument("--variants", nargs="+", choices=torch_fcn_ref.VARIANTS, default=list(torch_fcn_ref.VARIANTS))
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("--keep", default=None, help="keep the configs, weights and dumps here")
    args = ap.parse_args()
    torch.manual_seed(args.seed)
    with tempfile.TemporaryDirectory(prefix="fcn_model_parity_") as tmp:
        workdir = args.keep or tmp
        os.makedirs(workdir, exist_ok=True)
        results = [check(args.fcn, workdir, v, s, args) for v in args.variants for s in args.sizes]
    failed = results.count(False)
    print(f"{results.count(True)} passed, {failed} failed")
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
