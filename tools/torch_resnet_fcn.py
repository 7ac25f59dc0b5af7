"""The ResNet FCNs of fcn's model zoo in PyTorch, on torchvision's own model
code: the speed and memory anchor for `tools/bench.sh`'s ResNet cases (the
VGG16 nets use ../shared/bench/torch_fcn.py).

  fcn_resnet50, fcn_resnet101        torchvision.models.segmentation's nets
                                     (aux head on, its loss weighted 0.5 as in
                                     torchvision's reference recipe)
  fcn32s-resnet18 ... fcn8s-resnet101
                                     the paper's skip heads on torchvision's
                                     ImageNet ResNet trunk: scores from layer4,
                                     layer3, layer2; frozen bilinear deconvs of
                                     kernel 2f-1 and stride f; crops at offset
                                     f-1 (fcn's geometry, docs/config.md)

Usage: torch_resnet_fcn.py VARIANT SIZE [WIDTH_DIV(1)] [THREADS(2)] [ITERS(3)] [BATCH(1)]
WIDTH_DIV must be 1 (torchvision's ResNets have no width multiplier). The
last line has torch_fcn.py's format (train_step_s(median)=, infer_s=,
peakRSS_MB=, fwdGFLOP=) so tools/bench.sh reads both the same way.
A train step is what a PyTorch user's loop does: zero_grad, forward in train
mode (batch statistics), cross_entropy (mean over the non-ignored pixels),
backward, SGD with momentum 0.9 and weight decay 1e-4."""
import os
import resource
import sys
import time

import torch
import torch.nn as nn
import torch.nn.functional as F
import torchvision
from torchvision.models._utils import IntermediateLayerGetter

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from torch_fcn_ref import bilinear_upsampler  # noqa: E402

RESNETS = {"resnet18": torchvision.models.resnet18, "resnet34": torchvision.models.resnet34,
           "resnet50": torchvision.models.resnet50, "resnet101": torchvision.models.resnet101}
SEGMENTATION = {"fcn_resnet50": torchvision.models.segmentation.fcn_resnet50,
                "fcn_resnet101": torchvision.models.segmentation.fcn_resnet101}
AUX_WEIGHT = 0.5


def aligned_upsampler(num_classes, factor):
    """A frozen bilinear deconv of kernel 2f-1, stride f (1 - |x - (f-1)| / f
    per axis): feature i lands on pixel f*i + f-1, an integral crop offset."""
    return bilinear_upsampler(num_classes, factor, 2 * factor - 1)


def crop_to(x, ref, offset):
    """x's window of ref's size starting at (offset, offset): the upsampled
    map's pixel offset + i lies on ref's pixel i."""
    h, w = ref.shape[2], ref.shape[3]
    assert x.shape[2] >= offset + h and x.shape[3] >= offset + w, (x.shape, ref.shape, offset)
    return x[:, :, offset:offset + h, offset:offset + w]


class SkipFCN(nn.Module):
    """FCN-32s/16s/8s on torchvision's ResNet trunk: scores from layer4
    (stride 32), layer3 (16) and layer2 (8). Every stride-2 layer of the
    trunk has (k-1)/2 = pad, so feature i of a stride-S map sits at image
    pixel S*i and a map of an H-pixel side has ceil(H/S) features."""

    def __init__(self, arch, backbone, num_classes):
        super().__init__()
        self.arch = arch
        trunk = getattr(torchvision.models, backbone)(weights=None)
        self.backbone = IntermediateLayerGetter(trunk, {"layer2": "s8", "layer3": "s16", "layer4": "s32"})
        c32 = trunk.fc.in_features
        self.score_fr = nn.Conv2d(c32, num_classes, 1)
        if arch == "fcn32s":
            self.upscore = aligned_upsampler(num_classes, 32)
            return
        self.score_pool4 = nn.Conv2d(c32 // 2, num_classes, 1)
        self.upscore2 = aligned_upsampler(num_classes, 2)
        if arch == "fcn16s":
            self.upscore16 = aligned_upsampler(num_classes, 16)
            return
        self.score_pool3 = nn.Conv2d(c32 // 4, num_classes, 1)
        self.upscore_pool4 = aligned_upsampler(num_classes, 2)
        self.upscore8 = aligned_upsampler(num_classes, 8)

    def forward(self, x):
        features = self.backbone(x)
        score = self.score_fr(features["s32"])
        if self.arch == "fcn32s":
            return crop_to(self.upscore(score), x, 31)
        pool4 = self.score_pool4(features["s16"])
        score = crop_to(self.upscore2(score), pool4, 1) + pool4
        if self.arch == "fcn16s":
            return crop_to(self.upscore16(score), x, 15)
        pool3 = self.score_pool3(features["s8"])
        score = crop_to(self.upscore_pool4(score), pool3, 1) + pool3
        return crop_to(self.upscore8(score), x, 7)


def build_model(variant, num_classes=21):
    if variant in SEGMENTATION:
        return SEGMENTATION[variant](weights=None, weights_backbone=None, num_classes=num_classes, aux_loss=True)
    head, _, backbone = variant.partition("-")
    if head not in ("fcn32s", "fcn16s", "fcn8s") or backbone not in RESNETS:
        raise SystemExit(f"torch_resnet_fcn.py: unknown variant {variant!r} (fcn_resnet50, fcn_resnet101, "
                         f"fcn8s-resnet18, fcn16s-resnet50, ...)")
    return SkipFCN(head, backbone, num_classes)


def scores(outputs):
    """(main scores, aux scores or None) of either kind of model."""
    if isinstance(outputs, dict):
        return outputs["out"], outputs.get("aux")
    return outputs, None


def loss_of(outputs, labels):
    out, aux = scores(outputs)
    loss = F.cross_entropy(out, labels, ignore_index=255)
    if aux is not None:
        loss = loss + AUX_WEIGHT * F.cross_entropy(aux, labels, ignore_index=255)
    return loss


def forward_flops(model, x):
    """2 x multiply-adds of every convolution and deconvolution in eval mode
    (the aux head included: torchvision computes it at inference too)."""
    total = 0

    def hook(module, inputs, output):
        nonlocal total
        k = module.kernel_size[0] * module.kernel_size[1]
        if isinstance(module, nn.ConvTranspose2d):
            total += 2 * inputs[0].numel() * module.out_channels // module.groups * k
        elif isinstance(module, nn.Conv2d):
            total += 2 * output.numel() * module.in_channels // module.groups * k

    handles = [m.register_forward_hook(hook) for m in model.modules() if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d))]
    model.eval()
    with torch.no_grad():
        model(x)
    for h in handles:
        h.remove()
    return total


def main(argv):
    if len(argv) < 2:
        raise SystemExit(__doc__)
    variant, size = argv[0], int(argv[1])
    div = int(argv[2]) if len(argv) > 2 else 1
    threads = int(argv[3]) if len(argv) > 3 else 2
    iters = int(argv[4]) if len(argv) > 4 else 3
    batch = int(argv[5]) if len(argv) > 5 else 1
    if div != 1:
        raise SystemExit("torch_resnet_fcn.py: WIDTH_DIV must be 1 (torchvision's ResNets have no width multiplier)")
    torch.set_num_threads(threads)
    torch.manual_seed(0)
    model = build_model(variant)
    x = torch.randn(batch, 3, size, size)
    y = torch.randint(0, 21, (batch, size, size))
    flops = forward_flops(model, x[:1])
    model.train()
    opt = torch.optim.SGD([p for p in model.parameters() if p.requires_grad], lr=1e-3, momentum=0.9,
                          weight_decay=1e-4)
    times = []
    for _ in range(iters + 1):  # the first is a warm-up
        t0 = time.perf_counter()
        opt.zero_grad()
        loss = loss_of(model(x), y)
        loss.backward()
        opt.step()
        times.append(time.perf_counter() - t0)
    model.eval()
    inference = []
    with torch.no_grad():
        for _ in range(3):
            t0 = time.perf_counter()
            model(x)
            inference.append(time.perf_counter() - t0)
    train = sorted(times[1:])[len(times[1:]) // 2]
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"torch {torch.__version__} cpu fp32 {variant} size={size} div={div} threads={threads} batch={batch} "
          f"fwdGFLOP={flops / 1e9:.1f} train_step_s(median)={train:.3f} infer_s={sorted(inference)[1]:.3f} "
          f"peakRSS_MB={rss:.0f}")


if __name__ == "__main__":
    main(sys.argv[1:])
