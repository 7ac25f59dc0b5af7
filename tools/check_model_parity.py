"""Whole-model parity: fcn's zoo FCN-32s/16s/8s/8s-atonce, run by `fcn forward
--backward`, against tools/torch_fcn_ref.py (an independent PyTorch
description of the reference nets) loaded with the same weights by name,
the reference run in float64 (and once more in float32, to measure what
float32 itself costs).

For every variant, input size and convolution path (FCN_WINOGRAD=0: im2col
+ GEMM; default: Winograd where it applies; "inference": `fcn forward`
without --backward, which computes as fcn predict does, F(4x4, 3x3) forward)
it compares
  - the final scores (blob "score") and the unnormalized loss: max-abs
    relative error <= 2e-4 against float64;
  - (but for "inference") the gradient of every learned param and of every pool output
    (grad/pool1 ... grad/pool5): relative L2 error ||g - g64|| / ||g64|| at
    most max(3 x PyTorch float32's own relative L2 error on that tensor,
    1e-5). The max-abs relative error (max |g - g64| / max |g64|) is
    reported too, for information.
The upsampling deconvs are not in the weights file: fcn initialises them
(bilinear) and the reference builds its own, so the check covers that init
too. Pool gradients catch a max-pool routing its gradient to another pixel
of a tie than PyTorch does (FCN's 100-pixel padding makes many exact ties,
and ceil mode's partial windows sit next to them): the weight gradients can
agree while those do not.

Usage: /usr/bin/python3 tools/check_model_parity.py FCN_BINARY [--width W] [--classes K]
           [--sizes 338x500 500x375] [--variants fcn32s ...] [--paths im2col winograd winograd2 winograd4]
           [--seed S] [--keep DIR] [--json OUT] [--verbose]
One line per (variant, size, path); --verbose (or a failure) adds one line
per tensor; --json writes every tensor's numbers."""
import argparse
import json
import os
import subprocess
import sys
import tempfile
import time

import numpy as np
import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import safetensors_np  # noqa: E402
import torch_fcn_ref  # noqa: E402
from check_graph_parity import rel_err  # noqa: E402

SCORE_TOL, LOSS_TOL = 2e-4, 2e-4
# a forward-only pass's scores may be off by this many times PyTorch float32's own max-abs error, or this floor
SCORE_FACTOR, SCORE_FLOOR = 5.0, 1e-6
# a gradient's relative L2 error may be this many times PyTorch float32's own, or this floor
GRAD_FACTOR, GRAD_FLOOR = 3.0, 1e-5
SCORE_LAYERS = ("score_fr", "score_pool4", "score_pool3")
POOLS = tuple(f"pool{i}" for i in range(1, 6))
# FCN_WINOGRAD for each convolution path ("" leaves it unset: fcn's default;
# winograd2/winograd4 force F(2x2, 3x3) / F(4x4, 3x3) in every pass)
PATHS = {"im2col": "0", "winograd": "", "winograd2": "2", "winograd4": "4", "inference": ""}
# paths that run no backward: the scores and the loss are all they are checked on
FORWARD_ONLY = {"inference"}
DEFAULT_PATHS = ["im2col", "winograd"]


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


def fcn_forward(fcn, workdir, tag, model_flag, weights_file, inputs, backward=False, env=None, flags=()):
    """Runs `fcn forward` with `model_flag` (["--config", F] or ["--graph", F]),
    a weights file, inputs (a dict of numpy arrays, saved under workdir) and
    further `flags` (e.g. ["--train"]); returns (tensors, metadata) of the
    dump. Raises with fcn's stderr on failure."""
    dump_file = os.path.join(workdir, f"{tag}_dump.safetensors")
    cmd = [fcn, "forward", *model_flag, "--weights", weights_file, "--dump", dump_file]
    for name, array in inputs.items():
        path = os.path.join(workdir, f"{tag}_{name}.safetensors")
        safetensors_np.save(path, {name: array})
        cmd += ["--input", f"{name}={path}"]
    if backward:
        cmd.append("--backward")
    cmd += list(flags)
    run = subprocess.run(cmd, capture_output=True, text=True, env=env)
    if run.returncode != 0:
        raise RuntimeError(f"fcn forward failed: {run.stderr.strip()}")
    return safetensors_np.load(dump_file)


def write_config(workdir, variant, num_classes, width):
    path = os.path.join(workdir, f"{variant}.json")
    with open(path, "w") as f:
        json.dump({"model": {"arch": variant, "num_classes": num_classes, "width": width, "normalize": "none"}}, f)
    return path


def torch_reference(variant, num_classes, width, weights, inputs, dtype=torch.float32):
    """(score, loss, {name: grad}) from torch_fcn_ref in eval mode, computed in
    `dtype`; the grads are every learned param's and the pool outputs'
    (pool1 ... pool5), as float64 numpy arrays."""
    model = torch_fcn_ref.FCN(variant, num_classes, width).eval().to(dtype)
    state = {k: torch.from_numpy(v).to(dtype) for k, v in weights.items()}
    missing, unexpected = model.load_state_dict(state, strict=False)
    assert not unexpected and all(k.startswith("upscore") for k in missing), (missing, unexpected)
    model.keep_pools = True
    score = model(torch.from_numpy(inputs["data"]).to(dtype))
    loss = torch_fcn_ref.reference_loss(score, torch.from_numpy(inputs["label"]))
    loss.backward()
    grads = {name: p.grad.double().numpy() for name, p in model.named_parameters() if p.grad is not None}
    for name, pool in zip(POOLS, model.pools):
        grads[name] = pool.grad.double().numpy()
    return score.detach().double().numpy(), float(loss), grads


def rel_l2(a, b):
    """||a - b|| / ||b|| (0 when both are 0)."""
    diff, norm = float(np.linalg.norm((a - b).ravel())), float(np.linalg.norm(b.ravel()))
    return diff / norm if norm > 0 else (0.0 if diff == 0 else float("inf"))


def compare_tensor(records, failed, key, ours, t64, torch32_rel_l2):
    """Appends fcn's tensor `key` against the float64 reference t64 to
    records (relative L2 error, tolerance max(GRAD_FACTOR x PyTorch
    float32's own error, GRAD_FLOOR)) and the key to failed when it is
    over the tolerance, missing or mis-shaped."""
    tol = max(GRAD_FACTOR * torch32_rel_l2, GRAD_FLOOR)
    if key not in ours or ours[key].size != t64.size:
        records.append({"tensor": key, "rel_l2": float("inf"), "torch32_rel_l2": torch32_rel_l2,
                        "tolerance": tol, "max_abs_rel": float("inf"), "note": "missing or mis-shaped"})
        failed.append(key)
        return
    t = ours[key].reshape(t64.shape).astype(np.float64)
    err = rel_l2(t, t64)
    records.append({"tensor": key, "rel_l2": err, "torch32_rel_l2": torch32_rel_l2, "tolerance": tol,
                    "max_abs_rel": rel_err(t, t64)})
    if not err <= tol:
        failed.append(key)


class Reference:
    """The float64 and float32 PyTorch runs of one (variant, size), shared by the paths."""

    def __init__(self, variant, args, weights, inputs):
        start = time.time()
        self.score, self.loss, self.grads = torch_reference(variant, args.classes, args.width, weights, inputs,
                                                            torch.float64)
        score32, _, grads32 = torch_reference(variant, args.classes, args.width, weights, inputs, torch.float32)
        self.torch32_score = rel_err(score32, self.score)
        self.torch32 = {name: rel_l2(grads32[name], g) for name, g in self.grads.items()}
        self.seconds = time.time() - start


def compare(ours, meta, ref, backward=True):
    """Per-tensor records and the names of those out of tolerance (the
    scores and the loss only, without `backward`)."""
    records, failed = [], []
    score_err = rel_err(ours["score"].astype(np.float64), ref.score) if ours["score"].shape == ref.score.shape \
        else float("inf")
    loss_err = abs(float(meta["loss"]) - ref.loss) / max(abs(ref.loss), 1e-6)
    for name, err, tol in (("score", score_err, SCORE_TOL), ("loss", loss_err, LOSS_TOL)):
        records.append({"tensor": name, "max_abs_rel": err, "tolerance": tol})
        if not err <= tol:
            failed.append(name)
    if not backward:
        # the scores are all a forward-only pass gives: they are held to PyTorch float32's own error too
        tol = max(SCORE_FACTOR * ref.torch32_score, SCORE_FLOOR)
        records.append({"tensor": "score (vs float32)", "max_abs_rel": score_err,
                        "torch32_max_abs_rel": ref.torch32_score, "tolerance": tol})
        if not score_err <= tol:
            failed.append("score (vs float32)")
        return records, failed
    for name, g64 in ref.grads.items():
        compare_tensor(records, failed, "grad/" + name, ours, g64, ref.torch32[name])
    # fcn must not have a learned param the reference lacks
    extra = sorted(k for k in ours if k.startswith("grad/") and "." in k and k[5:] not in ref.grads)
    for key in extra:
        records.append({"tensor": key, "note": "not in the reference"})
        failed.append(key)
    return records, failed


def format_record(r, width=26):
    """One per-tensor line; `width` fits the longest tensor name of the nets."""
    if "rel_l2" in r:
        return (f"    {r['tensor']:{width}s} relL2 {r['rel_l2']:.2e}  torch-f32 {r['torch32_rel_l2']:.2e}  "
                f"tol {r['tolerance']:.2e}  maxabs {r['max_abs_rel']:.2e}")
    if "torch32_max_abs_rel" in r:  # a tolerance that scales with PyTorch float32's own error
        return (f"    {r['tensor']:{width}s} max-abs rel {r['max_abs_rel']:.2e}  "
                f"torch-f32 {r['torch32_max_abs_rel']:.2e}  tol {r['tolerance']:.2e}")
    if "max_abs_rel" in r:
        return f"    {r['tensor']:{width}s} max-abs rel {r['max_abs_rel']:.2e}  tol {r['tolerance']:.0e}"
    return f"    {r['tensor']:{width}s} {r.get('note', '')}"


def check(fcn, workdir, variant, size, args, results):
    """Prints one line per path for (variant, size) (and per-tensor lines when
    asked or failing); returns the number of failed paths."""
    height, width = size
    rng = np.random.RandomState(args.seed + height * 1000 + width)
    weights = random_weights(torch_fcn_ref.FCN(variant, args.classes, args.width), args.seed)
    inputs = random_inputs(rng, height, width, args.classes)
    tag = f"{variant}_{height}x{width}"
    config = write_config(workdir, variant, args.classes, args.width)
    weights_file = os.path.join(workdir, f"{tag}_weights.safetensors")
    safetensors_np.save(weights_file, weights)
    ref = None
    failures = 0
    for path in args.paths:
        env = dict(os.environ)
        env.pop("FCN_WINOGRAD", None)
        if PATHS[path]:
            env["FCN_WINOGRAD"] = PATHS[path]
        start = time.time()
        try:
            backward = path not in FORWARD_ONLY
            ours, meta = fcn_forward(fcn, workdir, f"{tag}_{path}", ["--config", config], weights_file, inputs,
                                     backward=backward, env=env)
        except RuntimeError as e:
            print(f"{tag} {path}: {e}")
            failures += 1
            continue
        fcn_seconds = time.time() - start
        if ref is None:
            ref = Reference(variant, args, weights, inputs)
        records, failed = compare(ours, meta, ref, backward)
        grads = [r for r in records if "rel_l2" in r]
        worst = max(grads, key=lambda r: r["rel_l2"] / r["tolerance"]) if grads else None
        summary = (f"worst {worst['tensor']} relL2 {worst['rel_l2']:.2e} (tol {worst['tolerance']:.2e})"
                   if worst else "")
        print(f"{tag} {path}: {'ok' if not failed else 'MISMATCH in ' + ', '.join(failed)}  "
              f"score {records[0]['max_abs_rel']:.1e} loss {records[1]['max_abs_rel']:.1e}  {len(grads)} grads, "
              f"{summary}  [fcn {fcn_seconds:.1f} s, torch {ref.seconds:.1f} s]", flush=True)
        if failed or args.verbose:
            for r in records:
                print(format_record(r))
        for r in records:
            results.append({"variant": variant, "size": f"{height}x{width}", "path": path, **r})
        failures += bool(failed)
    return failures


def parse_size(text):
    h, w = text.lower().split("x")
    return int(h), int(w)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("fcn")
    ap.add_argument("--width", type=float, default=0.0625)
    ap.add_argument("--classes", type=int, default=5)
    ap.add_argument("--sizes", nargs="+", type=parse_size, default=[(338, 500), (58, 90)])
    ap.add_argument("--variants", nargs="+", choices=torch_fcn_ref.VARIANTS, default=list(torch_fcn_ref.VARIANTS))
    ap.add_argument("--paths", nargs="+", choices=list(PATHS), default=DEFAULT_PATHS)
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("--keep", default=None, help="keep the configs, weights and dumps here")
    ap.add_argument("--json", default=None, help="write every tensor's errors here (a JSON list)")
    ap.add_argument("--verbose", action="store_true", help="one line per tensor")
    args = ap.parse_args()
    torch.manual_seed(args.seed)
    results = []
    with tempfile.TemporaryDirectory(prefix="fcn_model_parity_") as tmp:
        workdir = args.keep or tmp
        os.makedirs(workdir, exist_ok=True)
        failed = sum(check(args.fcn, workdir, v, s, args, results) for v in args.variants for s in args.sizes)
    if args.json:
        with open(args.json, "w") as f:
            json.dump(results, f, indent=1)
    total = len(args.variants) * len(args.sizes) * len(args.paths)
    print(f"{total - failed} passed, {failed} failed")
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
