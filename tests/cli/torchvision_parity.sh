#!/usr/bin/env bash
# fcn's ResNet nets against torchvision's own model code, and the weight
# converter (tools/convert_torchvision.py), without downloads:
# 1. parity (tools/check_torchvision_parity.py), batch 2: resnet18 FCN-8s
#    (skip head around torchvision's resnet18 trunk) at 33x47 (odd sides)
#    and 40x40, torchvision's fcn_resnet50 with the aux head at 33x47 (width
#    1: one size, for time); train mode (batch statistics, running-statistics
#    update; dropout 0) and eval mode: scores,
#    aux scores, loss, every param gradient and running statistic, float64
#    reference, within 3x PyTorch float32's own error;
# 2. round trip: random torchvision resnet18 and fcn_resnet50 (aux) state
#    dicts -> fcn weights -> torchvision state dicts: equal tensors, and the
#    result loads into torchvision's model (strict for fcn_resnet50; resnet18
#    misses only fc.*); errors are one line and exit non-zero;
# 3. --config-out: the converted fcn_resnet50 runs in `fcn forward` with
#    torchvision's scores on the same (normalised) input, and `fcn predict`
#    writes a mask for a photo with the written config as it is.
set -uo pipefail
fcn=$(realpath "$1")
status=0
timeout 100 /usr/bin/python3 tools/check_torchvision_parity.py "$fcn" --nets resnet18-fcn8s \
  --sizes 33x47 40x40 || status=1
timeout 60 /usr/bin/python3 tools/check_torchvision_parity.py "$fcn" --nets resnet18-fcn8s --sizes 161x193 \
  --modes inference || status=1
timeout 100 /usr/bin/python3 tools/check_torchvision_parity.py "$fcn" --nets fcn_resnet50-aux --sizes 33x47 || status=1

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
export FCN=$fcn TMP=$tmp
timeout 120 /usr/bin/python3 - <<'EOF' || status=1
import contextlib, io, os, subprocess, sys
import numpy as np
import torch
import torchvision
from PIL import Image
sys.path.insert(0, "tools")
import convert_torchvision
import safetensors_np
from check_graph_parity import rel_err
from check_model_parity import fcn_forward
from check_torchvision_parity import Net, random_weights

fcn, tmp = os.environ["FCN"], os.environ["TMP"]
failures = []
tool = os.path.join("tools", "convert_torchvision.py")


def expect(what, ok, detail=""):
    print(f"{what}: {'ok' if ok else 'FAIL'} {detail}")
    if not ok:
        failures.append(what)


def convert(*args, fails=False):
    """convert_torchvision.py's main() in this process (torch is imported once):
    its exit status and stderr, as the command line gives them."""
    sys.argv = [tool, *args]
    out, err = io.StringIO(), io.StringIO()
    code = 0
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            convert_torchvision.main()
        except SystemExit as e:
            code = e.code
    if fails:
        lines = err.getvalue().strip().splitlines()
        expect(f"refused: {' '.join(args[:1])} ... ({lines[-1] if lines else ''})",
               code not in (0, None) and len(lines) == 1 and lines[0].startswith("convert_torchvision: error:"))
    elif code not in (0, None):
        raise SystemExit(f"convert_torchvision {' '.join(args)} failed: {err.getvalue().strip()}")
    return out.getvalue()


def randomise(net):
    """Non-trivial values in every tensor, running statistics and
    num_batches_tracked included (the latter is dropped: 0 on the way back)."""
    gen = torch.Generator().manual_seed(3)
    with torch.no_grad():
        for key, value in net.state_dict().items():
            if value.is_floating_point():
                value.copy_(torch.rand(value.shape, generator=gen) + 0.5)
    return net


def same(a, b, skip_fc):
    keys = {k for k in a if not k.endswith("num_batches_tracked") and not (skip_fc and k.startswith("fc."))}
    return keys == {k for k in b if not k.endswith("num_batches_tracked")} and \
        all(torch.equal(a[k], b[k]) for k in keys) and \
        all(int(v) == 0 for k, v in b.items() if k.endswith("num_batches_tracked"))


# 2. round trips
r18 = randomise(torchvision.models.resnet18(weights=None)).state_dict()
torch.save(r18, f"{tmp}/r18.pth")
convert("to-fcn", f"{tmp}/r18.pth", f"{tmp}/r18.safetensors")
fcn_r18, _ = safetensors_np.load(f"{tmp}/r18.safetensors")
expect("resnet18 -> fcn: backbone.* names, no fc, no num_batches_tracked",
       set(fcn_r18) == {"backbone." + k for k in r18 if not k.startswith("fc.") and "num_batches" not in k})
out = convert("to-torchvision", f"{tmp}/r18.safetensors", f"{tmp}/r18_back.pth", "--model", "resnet18")
expect("resnet18 -> fcn -> torchvision: equal tensors", same(r18, torch.load(f"{tmp}/r18_back.pth"), True))
expect("resnet18 export loads with only fc.* missing", "missing only fc.weight, fc.bias" in out)

# weights that keep activations O(1) (calibrated running statistics), so the scores below mean something
weights = random_weights(Net("fcn_resnet50-aux", 5), 11, np.random.RandomState(4).standard_normal((2, 3, 40, 40)))
fr50 = torchvision.models.segmentation.fcn_resnet50(weights=None, weights_backbone=None, num_classes=5, aux_loss=True)
fr50.load_state_dict({k: torch.from_numpy(v) for k, v in weights.items()}, strict=False)
fr50.eval()
for key, value in fr50.state_dict().items():
    if key.endswith("num_batches_tracked"):
        value.fill_(7)
torch.save(fr50.state_dict(), f"{tmp}/fr50.pth")
convert("to-fcn", f"{tmp}/fr50.pth", f"{tmp}/fr50.safetensors", "--config-out", f"{tmp}/fr50.json")
convert("to-torchvision", f"{tmp}/fr50.safetensors", f"{tmp}/fr50_back.pth", "--model", "fcn_resnet50")
back = torch.load(f"{tmp}/fr50_back.pth")
expect("fcn_resnet50 -> fcn -> torchvision: equal tensors", same(fr50.state_dict(), back, False))
torchvision.models.segmentation.fcn_resnet50(weights=None, weights_backbone=None, num_classes=5,
                                             aux_loss=True).load_state_dict(back, strict=True)

convert("to-fcn", f"{tmp}/r18.pth", f"{tmp}/r18.safetensors", fails=True)  # exists
run = subprocess.run(["/usr/bin/python3", tool, "to-fcn", f"{tmp}/missing.pth", f"{tmp}/x.safetensors"],
                     capture_output=True, text=True)
expect("the command line: a missing file is one line on stderr and exit status 1",
       run.returncode == 1 and run.stderr.strip() == f"convert_torchvision: error: {tmp}/missing.pth: no such file")
convert("to-fcn", f"{tmp}/r18.pth", f"{tmp}/x.safetensors", "--model", "resnet34", fails=True)
convert("to-torchvision", f"{tmp}/r18.safetensors", f"{tmp}/x.pth", "--model", "fcn_resnet50", fails=True)
bad = dict(r18)
bad["layer1.0.conv1.weight"] = bad["layer1.0.conv1.weight"][:, :32]
torch.save(bad, f"{tmp}/bad.pth")
convert("to-fcn", f"{tmp}/bad.pth", f"{tmp}/x.safetensors", fails=True)
with open(f"{tmp}/fr50.pth", "rb") as f:
    head = f.read(4096)
with open(f"{tmp}/truncated.pth", "wb") as f:
    f.write(head)
convert("to-fcn", f"{tmp}/truncated.pth", f"{tmp}/x.safetensors", fails=True)
expect("no output left by the failed runs", not any(n.startswith(("x.", ".x.")) for n in os.listdir(tmp)))

# 3. the written config runs: scores as torchvision's on the same input
data = np.random.RandomState(5).standard_normal((1, 3, 37, 45)).astype(np.float32)
label = np.zeros((1, 1, 37, 45), dtype=np.float32)
ours, _ = fcn_forward(fcn, tmp, "fr50", ["--config", f"{tmp}/fr50.json"], f"{tmp}/fr50.safetensors",
                      {"data": data, "label": label})
with torch.no_grad():
    ref = fr50(torch.from_numpy(data))["out"].numpy()
error = rel_err(ours["score"].astype(np.float64), ref.astype(np.float64))
expect("fcn_resnet50 --config-out: fcn forward gives torchvision's scores", error < 2e-4, f"(max-abs rel {error:.1e})")
rng = np.random.RandomState(6)
Image.fromarray(rng.randint(0, 256, (41, 53, 3), dtype=np.uint8)).save(f"{tmp}/photo.jpg")
run = subprocess.run([fcn, "predict", "--config", f"{tmp}/fr50.json", "--weights", f"{tmp}/fr50.safetensors",
                      "--image", f"{tmp}/photo.jpg", "--out", f"{tmp}/mask.png"], capture_output=True, text=True)
mask_ok = run.returncode == 0 and Image.open(f"{tmp}/mask.png").size == (53, 41)
expect("fcn predict with the --config-out config", mask_ok, run.stderr.strip()[-300:] if not mask_ok else "")
sys.exit(1 if failures else 0)
EOF
exit $status
