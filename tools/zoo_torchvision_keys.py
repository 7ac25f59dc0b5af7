#!/usr/bin/env python3
"""The state-dict keys and shapes of torchvision's own ResNet and FCN models,
the names and shapes fcn's model zoo must give its parameters
(tests/test_model_zoo.cpp reads tests/fixtures/zoo/torchvision_keys.json).

  /usr/bin/python3 tools/zoo_torchvision_keys.py           # rewrite the fixture
  /usr/bin/python3 tools/zoo_torchvision_keys.py --check   # fail if it differs

* "resnet18" .. "resnet101": torchvision.models.resnetNN()'s keys with the
  prefix "backbone." (fcn's FCN-32s/16s/8s trunk), without fc (not used);
* "fcn_resnet50", "fcn_resnet101": segmentation.fcn_resnetNN(num_classes=21,
  aux_loss=True).
num_batches_tracked has no fcn counterpart and is left out.
"""
import argparse
import json
import os
import sys

import torch
import torchvision

FIXTURE = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests", "fixtures", "zoo",
                       "torchvision_keys.json")


def keys(model, prefix=""):
    return [[prefix + k, list(v.shape)] for k, v in model.state_dict().items()
            if not k.endswith("num_batches_tracked") and not k.startswith("fc.")]


def generate():
    models = torchvision.models
    out = {"torchvision": torchvision.__version__}
    for depth in ("resnet18", "resnet34", "resnet50", "resnet101"):
        out[depth] = keys(getattr(models, depth)(weights=None), "backbone.")
    for arch in ("fcn_resnet50", "fcn_resnet101"):
        out[arch] = keys(getattr(models.segmentation, arch)(weights=None, weights_backbone=None, num_classes=21,
                                                            aux_loss=True))
    lines = ["{", f'"torchvision": {json.dumps(out.pop("torchvision"))},']
    for i, (net, entries) in enumerate(out.items()):
        lines.append(f"{json.dumps(net)}: [")
        lines += [f"  {json.dumps(e)}" + ("," if j + 1 < len(entries) else "") for j, e in enumerate(entries)]
        lines.append("]" + ("," if i + 1 < len(out) else ""))
    return "\n".join(lines + ["}"]) + "\n"


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--check", action="store_true", help="compare with the committed fixture, write nothing")
    args = parser.parse_args()
    torch.manual_seed(0)
    text = generate()
    if args.check:
        with open(FIXTURE) as f:
            if f.read() != text:
                sys.exit(f"{FIXTURE} differs from torchvision {torchvision.__version__}'s models")
        print("torchvision keys: fixture up to date")
        return
    os.makedirs(os.path.dirname(FIXTURE), exist_ok=True)
    with open(FIXTURE, "w") as f:
        f.write(text)
    print(f"wrote {FIXTURE}")


if __name__ == "__main__":
    main()
