"""torchvision ResNet / FCN-ResNet state dicts <-> fcn weights.

fcn names its ResNet layers with torchvision's module paths (docs/config.md,
"ResNet backbones"), so a param's fcn name IS its torchvision state-dict key,
with two differences:
  - an ImageNet ResNet's trunk sits under `backbone.` in fcn's FCN-32s/16s/8s
    (as in torchvision's segmentation models) and its `fc` (the 1000 ImageNet
    classes) has no counterpart: to-fcn drops it;
  - BN's `num_batches_tracked` has no fcn counterpart (fcn's batch_norm uses
    a fixed momentum): to-fcn drops it, to-torchvision writes 0.
Running statistics (`running_mean`, `running_var`) travel both ways.

  to-fcn IN.pth OUT.safetensors [--model M] [--config-out CONFIG.json]
      IN: torch.save(model.state_dict()) of a torchvision resnet18/34/50/101 or
      fcn_resnet50/101 (or torchvision's downloaded checkpoint files in
      ~/.cache/torch/hub/checkpoints). Without --model the net is told from
      the keys. Every key and shape is checked against torchvision's own
      model built with the same settings (num_classes from the weights,
      aux head if the file has one). Written as float32.
      --config-out writes an fcn config for the net: fcn_resnet50/101 with
      num_classes and aux_weight from the weights (`fcn predict --config C
      --weights OUT img.jpg` runs at once); an ImageNet ResNet as the trunk
      of --arch (fcn8s) with --num-classes (21) and init.weights = OUT, for
      training. Both with torchvision's input convention (RGB, pixels/255,
      ImageNet mean and std) and VOC's layout at data/VOCdevkit/VOC2012 as
      the dataset (read by train and eval only; --set data.root=DIR).
  to-torchvision IN.safetensors OUT.pth --model M
      IN: fcn weights or a checkpoint (momentum buffers are ignored).
      fcn_resnet50/101: the whole net; the result loads into torchvision's
      fcn_resnetXX(num_classes=K, aux_loss=<has aux_classifier>) with
      strict=True. resnet18/34/50/101: the `backbone.*` params (e.g. of an
      FCN-8s with that trunk) as an ImageNet ResNet state dict without `fc`
      (the FCN's score layers are dropped); it loads into torchvision's
      resnetXX() with strict=False, only fc.weight and fc.bias missing.
      Both are checked by loading into torchvision's model before writing.

Outputs are written to a temporary file and renamed, so a failed run never
leaves a truncated file; an existing OUT is refused unless --force.
Errors are one line on stderr and a non-zero exit.

Usage: /usr/bin/python3 tools/convert_torchvision.py to-fcn IN.pth OUT.safetensors [--model M]
           [--config-out CONFIG.json] [--arch fcn8s] [--num-classes 21] [--force]
       /usr/bin/python3 tools/convert_torchvision.py to-torchvision IN.safetensors OUT.pth --model M [--force]"""
import argparse
import json
import os
import re
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import safetensors_np  # noqa: E402

# (block type, blocks per layer1..layer4), as torchvision's resnet18 ... resnet101
RESNETS = {"resnet18": ("basic", (2, 2, 2, 2)), "resnet34": ("basic", (3, 4, 6, 3)),
           "resnet50": ("bottleneck", (3, 4, 6, 3)), "resnet101": ("bottleneck", (3, 4, 23, 3))}
FCN_RESNETS = {"fcn_resnet50": "resnet50", "fcn_resnet101": "resnet101"}
MODELS = tuple(RESNETS) + tuple(FCN_RESNETS)
SKIP_ARCHS = ("fcn32s", "fcn16s", "fcn8s")
BACKBONE = "backbone."
# torchvision's input convention: RGB, pixels scaled to [0, 1], ImageNet mean and std
TORCHVISION_INPUT = {"channel_order": "rgb", "pixel_scale": 1.0 / 255.0, "mean": [0.485, 0.456, 0.406],
                     "std": [0.229, 0.224, 0.225]}
TORCHVISION_AUX_WEIGHT = 0.5  # the segmentation reference recipe's aux loss weight


class ConvertError(Exception):
    pass


def fail(message):
    raise ConvertError(message)


def listing(names, limit=6):
    names = sorted(names)
    more = f", ... ({len(names) - limit} more)" if len(names) > limit else ""
    return ", ".join(names[:limit]) + more


# ---- reading --------------------------------------------------------------

def load_torch_state(path):
    """A state dict saved with torch.save (or a pickled module, or a dict
    holding one under "model"/"state_dict") -> {key: torch tensor}."""
    if not os.path.isfile(path):
        fail(f"{path}: no such file")
    import torch
    try:
        obj = torch.load(path, map_location="cpu")
    except Exception as e:  # a truncated or foreign file: torch's own message, on one line
        fail(f"{path}: not a PyTorch file torch.load reads ({str(e).splitlines()[0] if str(e) else type(e).__name__})")
    if isinstance(obj, torch.nn.Module):
        obj = obj.state_dict()
    if isinstance(obj, dict) and not any(torch.is_tensor(v) for v in obj.values()):
        for key in ("model", "state_dict"):
            if isinstance(obj.get(key), dict):
                obj = obj[key]
                break
    if not isinstance(obj, dict) or not obj:
        fail(f"{path}: expected a state dict, got {type(obj).__name__}")
    return {k: v for k, v in obj.items() if torch.is_tensor(v)}


def load_fcn_params(path):
    """The params of fcn weights or a checkpoint (no solver or debug tensors)."""
    if not os.path.isfile(path):
        fail(f"{path}: no such file")
    try:
        tensors, _ = safetensors_np.load(path)
    except Exception as e:
        fail(f"{path}: not a safetensors file ({e})")
    return {k: v for k, v in tensors.items() if not k.endswith(".momentum") and not k.startswith("grad/")}


# ---- telling the model from its keys --------------------------------------

def blocks_per_layer(keys, prefix):
    counts = []
    for layer in range(1, 5):
        pattern = re.compile(rf"^{re.escape(prefix)}layer{layer}\.(\d+)\.")
        found = {int(m.group(1)) for k in keys if (m := pattern.match(k))}
        counts.append(max(found) + 1 if found else 0)
    return tuple(counts)


def resnet_of(keys, prefix):
    """The resnetXX whose block structure the keys under `prefix` have, or None."""
    kind = "bottleneck" if f"{prefix}layer1.0.conv3.weight" in keys else "basic"
    layers = blocks_per_layer(keys, prefix)
    return next((name for name, spec in RESNETS.items() if spec == (kind, layers)), None)


def detect_model(keys, path):
    keys = set(keys)
    if "classifier.0.weight" in keys and any(k.startswith(BACKBONE) for k in keys):
        trunk = resnet_of(keys, BACKBONE)
        model = next((m for m, t in FCN_RESNETS.items() if t == trunk), None)
    elif "conv1.weight" in keys and "layer1.0.conv1.weight" in keys:
        model = resnet_of(keys, "")
    else:
        model = None
    if model is None:
        fail(f"{path}: cannot tell which torchvision model these {len(keys)} keys are "
             f"(first: {listing(keys, 3)}); give --model ({'|'.join(MODELS)})")
    return model


# ---- torchvision's own models (the reference for every key and shape) ------

def torchvision_model(model, num_classes=None, aux=False):
    import torchvision
    if model in RESNETS:
        return getattr(torchvision.models, model)(weights=None)
    return getattr(torchvision.models.segmentation, model)(weights=None, weights_backbone=None,
                                                           num_classes=num_classes, aux_loss=aux)


def fcn_head_settings(params, path):
    """(num_classes, has aux head) of an fcn_resnet state (fcn or torchvision names)."""
    final = params.get("classifier.4.weight")
    if final is None:
        fail(f"{path}: no classifier.4.weight (the FCN head's final 1x1 conv): not an fcn_resnet50/101")
    return int(final.shape[0]), any(k.startswith("aux_classifier.") for k in params)


def expected_shapes(net):
    """{state-dict key: shape} of a torchvision module, num_batches_tracked excluded."""
    return {k: tuple(v.shape) for k, v in net.state_dict().items() if not k.endswith("num_batches_tracked")}


def check_against(params, expected, path, model, ignore=None):
    """Unknown keys, missing keys and shape mismatches, as one-line errors;
    keys starting with `ignore` may be absent or extra."""
    def ignored(key):
        return ignore is not None and key.startswith(ignore)
    unknown = [k for k in params if k not in expected and not ignored(k)]
    if unknown:
        fail(f"{path}: {len(unknown)} keys that torchvision's {model} does not have: {listing(unknown)}")
    missing = [k for k in expected if k not in params and not ignored(k)]
    if missing:
        fail(f"{path}: {len(missing)} keys of torchvision's {model} are missing: {listing(missing)}")
    for key, shape in expected.items():
        if key in params and tuple(params[key].shape) != shape:
            fail(f"{path}: {key} has shape {list(params[key].shape)}, torchvision's {model} has {list(shape)}")


# ---- writing --------------------------------------------------------------

def refuse_overwrite(path, force):
    if os.path.exists(path) and not force:
        fail(f"{path}: exists; refusing to overwrite it (--force to replace it)")


def write_atomically(path, write):
    """write(tmp_path), then rename over `path`: never a truncated `path`."""
    directory = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(directory):
        fail(f"{path}: directory {directory} does not exist")
    tmp = os.path.join(directory, f".{os.path.basename(path)}.tmp{os.getpid()}")
    try:
        write(tmp)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)


def fcn_config(model, params, weights_path, arch, num_classes):
    """An fcn config for the converted net, with torchvision's input convention."""
    if model in FCN_RESNETS:
        classes, aux = fcn_head_settings(params, weights_path)
        net = {"arch": model, "num_classes": classes, "aux_weight": TORCHVISION_AUX_WEIGHT if aux else 0.0}
        config = {"model": net}
    else:
        net = {"arch": arch, "backbone": model, "num_classes": num_classes}
        config = {"model": net, "init": {"weights": os.path.abspath(weights_path)}}
    # torchvision's reference loss: the mean over the valid (non-ignored) pixels
    net.update({"normalize": "valid", "ignore_label": 255})
    # the dataset is read by train and eval only (predict needs none, but a
    # data section needs a root): VOC's, whose 21 categories torchvision's
    # FCN-ResNet weights predict; --set data.root=DIR points it elsewhere
    config["data"] = {"format": "voc", "root": "data/VOCdevkit/VOC2012", **TORCHVISION_INPUT}
    return config


# ---- the two directions ---------------------------------------------------

def to_fcn(args):
    state = load_torch_state(args.src)
    import torch
    model = args.model or detect_model(state.keys(), args.src)
    state = {k: v for k, v in state.items() if not k.endswith("num_batches_tracked")}
    if model in RESNETS:
        check_against(state, expected_shapes(torchvision_model(model)), args.src, model, ignore="fc.")
        params = {BACKBONE + k: v for k, v in state.items() if not k.startswith("fc.")}
        dropped = sorted(k for k in state if k.startswith("fc."))
    else:
        classes, aux = fcn_head_settings(state, args.src)
        check_against(state, expected_shapes(torchvision_model(model, classes, aux)), args.src, model)
        params, dropped = state, []
    arrays = {k: v.detach().to(torch.float32).numpy() for k, v in params.items()}
    refuse_overwrite(args.dst, args.force)
    if args.config_out:
        refuse_overwrite(args.config_out, args.force)
    write_atomically(args.dst, lambda tmp: safetensors_np.save(
        tmp, arrays, {"source": os.path.basename(args.src), "torchvision_model": model}))
    note = f" (dropped {', '.join(dropped)}: ImageNet's classifier)" if dropped else ""
    print(f"wrote {len(arrays)} tensors of {model} from {args.src} to {args.dst}{note}")
    if args.config_out:
        config = fcn_config(model, arrays, args.dst, args.arch, args.num_classes)

        def write(tmp):
            with open(tmp, "w") as f:
                json.dump(config, f, indent=1)
                f.write("\n")
        write_atomically(args.config_out, write)
        print(f"wrote {args.config_out}: model {json.dumps(config['model'])}")


def to_torchvision(args):
    import torch
    params = load_fcn_params(args.src)
    model = args.model
    if model in RESNETS:
        trunk = {k[len(BACKBONE):]: v for k, v in params.items() if k.startswith(BACKBONE)}
        if not trunk:
            fail(f"{args.src}: no backbone.* params: not an fcn net with a ResNet backbone")
        dropped = sorted({k.rsplit(".", 1)[0] for k in params if not k.startswith(BACKBONE)})
        net = torchvision_model(model)
        check_against(trunk, expected_shapes(net), args.src, model, ignore="fc.")
        params = trunk
    else:
        classes, aux = fcn_head_settings(params, args.src)
        net = torchvision_model(model, classes, aux)
        check_against(params, expected_shapes(net), args.src, model)
        dropped = []
    state = {k: torch.from_numpy(np.ascontiguousarray(v, dtype=np.float32)) for k, v in params.items()}
    for key in net.state_dict():
        if key.endswith("num_batches_tracked"):
            state[key] = torch.tensor(0, dtype=torch.long)
    missing, unexpected = net.load_state_dict(state, strict=model in FCN_RESNETS)
    if unexpected or any(not k.startswith("fc.") for k in missing):
        fail(f"{args.src}: torchvision's {model} does not load the result (missing {missing}, unexpected {unexpected})")
    refuse_overwrite(args.dst, args.force)
    write_atomically(args.dst, lambda tmp: torch.save(dict(sorted(state.items())), tmp))
    print(f"wrote {len(state)} tensors of {args.src} to {args.dst} as torchvision's {model}")
    if model in RESNETS:
        print(f"  loads into torchvision's {model}() with strict=False: missing only {', '.join(missing)} "
              f"(ImageNet's classifier, not part of an FCN)")
        if dropped:
            print(f"  dropped the FCN's own layers: {listing(dropped, 10)}")


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="command", required=True)
    a = sub.add_parser("to-fcn", help="torchvision state dict -> fcn weights")
    a.add_argument("src")
    a.add_argument("dst")
    a.add_argument("--model", choices=MODELS, help="the torchvision model (default: told from the keys)")
    a.add_argument("--config-out", help="also write an fcn config for the net here")
    a.add_argument("--arch", choices=SKIP_ARCHS, default="fcn8s", help="--config-out for a ResNet trunk: the FCN")
    a.add_argument("--num-classes", type=int, default=21, help="--config-out for a ResNet trunk: the classes")
    a.add_argument("--force", action="store_true", help="replace existing outputs")
    b = sub.add_parser("to-torchvision", help="fcn weights -> torchvision state dict")
    b.add_argument("src")
    b.add_argument("dst")
    b.add_argument("--model", choices=MODELS, required=True)
    b.add_argument("--force", action="store_true", help="replace an existing output")
    args = ap.parse_args()
    try:
        (to_fcn if args.command == "to-fcn" else to_torchvision)(args)
    except ConvertError as e:
        print(f"convert_torchvision: error: {e}", file=sys.stderr)
        sys.exit(1)


if __name__ == "__main__":
    main()
