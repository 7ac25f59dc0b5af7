#!/usr/bin/env bash
# Weight conversion without downloads:
# 1. a randomly initialised torchvision vgg16() (random biases too), converted
#    by tools/convert_vgg16.py --torchvision-input and run by fcn as an
#    explicit VGG16 graph (pad 1, 224x224: fc6 gives 1x1), gives torchvision's
#    fc7 (classifier[3], before its ReLU) to 1e-4 relative;
# 2. the fold of torchvision's input normalisation into conv1_1 (the
#    converter's default) gives on a BGR, Caffe-mean-subtracted image what
#    torchvision's conv1_1 gives on the normalised RGB image (away from the
#    zero padding);
# 3. an FCN-8s checkpoint (params, momentum, metadata) exported by
#    tools/convert_torch.py to-torch loads strictly into tools/torch_fcn_ref.py
#    and gives fcn's scores (2e-4); from-torch gives the params back exactly.
set -euo pipefail
fcn=$(realpath "$1")
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
export FCN=$fcn TMP=$tmp
timeout 300 /usr/bin/python3 - <<'EOF'  # not exec: the EXIT trap must still remove $tmp
import os, subprocess, sys, json
import numpy as np
import torch
sys.path.insert(0, "tools")
import safetensors_np, torch_fcn_ref
from check_model_parity import fcn_forward, random_inputs, random_weights, rel_err
from convert_vgg16 import fold_input_normalisation

fcn, tmp = os.environ["FCN"], os.environ["TMP"]
failures = []


def expect(what, error, tol):
    ok = error <= tol
    print(f"{what}: relative error {error:.2e} (tolerance {tol:g}) {'ok' if ok else 'FAIL'}")
    if not ok:
        failures.append(what)


def tool(*args):
    subprocess.run(["/usr/bin/python3", *args], check=True, stdout=subprocess.DEVNULL)


def vgg16_graph(path, last):
    """Plain VGG16 (pad 1, as torchvision) up to layer `last`, fc6/fc7 as convs."""
    layers, top = [], "data"
    for name, channels, pool_follows in torch_fcn_ref.vgg16_convs():
        layers += [{"name": name, "type": "conv", "inputs": [top], "num_output": channels, "kernel": 3, "pad": 1},
                   {"name": "relu" + name[4:], "type": "relu", "inputs": [name]}]
        top = layers[-1]["name"]
        if pool_follows:
            layers.append({"name": "pool" + name[4], "type": "max_pool", "inputs": [top], "kernel": 2, "stride": 2})
            top = layers[-1]["name"]
    layers += [{"name": "fc6", "type": "conv", "inputs": [top], "num_output": 4096, "kernel": 7},
               {"name": "relu6", "type": "relu", "inputs": ["fc6"]},
               {"name": "fc7", "type": "conv", "inputs": ["relu6"], "num_output": 4096, "kernel": 1}]
    names = [l["name"] for l in layers]
    with open(path, "w") as f:
        json.dump({"inputs": {"data": {"channels": 3}}, "layers": layers[:names.index(last) + 1]}, f)
    return ["--graph", path]


# 1. torchvision VGG16 -> fcn: fc7 activations
import torchvision
torch.manual_seed(0)
vgg = torchvision.models.vgg16().eval()
with torch.no_grad():
    for name, p in vgg.named_parameters():
        if name.endswith(".bias"):  # torchvision zeroes them, which would hide a bias mix-up
            p.uniform_(-0.1, 0.1)
torch.save(vgg.state_dict(), f"{tmp}/vgg16.pth")
x = torch.randn(1, 3, 224, 224)
with torch.no_grad():
    fc7 = vgg.classifier[:4](torch.flatten(vgg.avgpool(vgg.features(x)), 1)).numpy()
    conv1_1 = vgg.features[0]
tool("tools/convert_vgg16.py", f"{tmp}/vgg16.pth", f"{tmp}/vgg16_tv.safetensors", "--torchvision-input")
dump, _ = fcn_forward(fcn, tmp, "vgg", vgg16_graph(f"{tmp}/vgg.json", "fc7"), f"{tmp}/vgg16_tv.safetensors",
                      {"data": x.numpy()})
expect("vgg16 fc7 vs torchvision classifier[3]", rel_err(dump["fc7"].reshape(fc7.shape), fc7), 1e-4)
del dump

# 2. the folded conv1_1 takes fcn's input (BGR minus the Caffe mean)
conv1_params = {"conv1_1." + k: v.numpy() for k, v in conv1_1.state_dict().items()}
safetensors_np.save(f"{tmp}/conv1_1.safetensors", fold_input_normalisation(conv1_params))
image_rgb = np.random.RandomState(1).uniform(0, 255, (1, 3, 20, 24))
mean, std = np.array([0.485, 0.456, 0.406]), np.array([0.229, 0.224, 0.225])
normalised = ((image_rgb / 255 - mean[:, None, None]) / std[:, None, None]).astype(np.float32)
caffe_bgr = (image_rgb[:, ::-1] - np.array([104.00698793, 116.66876762, 122.67891434])[:, None, None])
dump, _ = fcn_forward(fcn, tmp, "fold", vgg16_graph(f"{tmp}/conv1.json", "conv1_1"), f"{tmp}/conv1_1.safetensors",
                      {"data": caffe_bgr.astype(np.float32)})
with torch.no_grad():
    ref = conv1_1(torch.from_numpy(normalised)).numpy()[:, :, 1:-1, 1:-1]
expect("folded conv1_1 on the Caffe input vs torchvision", rel_err(dump["conv1_1"][:, :, 1:-1, 1:-1], ref), 1e-4)
del vgg, dump

# 3. FCN-8s checkpoint -> torch_fcn_ref and back
model = torch_fcn_ref.FCN("fcn8s", 5, 0.0625)
safetensors_np.save(f"{tmp}/init.safetensors", random_weights(model, 5))
with open(f"{tmp}/fcn8s.json", "w") as f:
    json.dump({"model": {"arch": "fcn8s", "num_classes": 5, "width": 0.0625}}, f)
inputs = random_inputs(np.random.RandomState(2), 45, 39, 5)
dump, _ = fcn_forward(fcn, tmp, "fcn8s", ["--config", f"{tmp}/fcn8s.json"], f"{tmp}/init.safetensors", inputs)
params = {k: dump[k] for k in model.state_dict()}  # every param fcn used, frozen deconvs included
checkpoint = {**params, **{k + ".momentum": np.full_like(v, 0.5) for k, v in params.items()}}
safetensors_np.save(f"{tmp}/ckpt.safetensors", checkpoint, {"format": "fcn-checkpoint", "iter": "12"})
tool("tools/convert_torch.py", "to-torch", f"{tmp}/ckpt.safetensors", f"{tmp}/fcn8s.pth")
model.load_state_dict(torch.load(f"{tmp}/fcn8s.pth"), strict=True)
with torch.no_grad():
    score = model.eval()(torch.from_numpy(inputs["data"])).numpy()
expect("fcn8s checkpoint exported to torch_fcn_ref: score", rel_err(dump["score"], score), 2e-4)
tool("tools/convert_torch.py", "from-torch", f"{tmp}/fcn8s.pth", f"{tmp}/back.safetensors")
back, _ = safetensors_np.load(f"{tmp}/back.safetensors")
same = back.keys() == params.keys() and all(np.array_equal(back[k], params[k]) for k in params)
print(f"from-torch gives the checkpoint's params back: {'ok' if same else 'FAIL'}")
if not same:
    failures.append("round trip")
print("FAILED: " + ", ".join(failures) if failures else "ok")
sys.exit(1 if failures else 0)
EOF
