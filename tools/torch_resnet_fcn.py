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
import resource
import sys
import time

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F
import torchvision
from torchvision.models._utils import IntermediateLayerGetter

RESNETS = {"resnet18": torchvision.models.resnet18, "resnet34": torchvision.models.resnet34,
           "resnet50": torchvision.models.resnet50, "resnet101": torchvision.models.resnet101}
SEGMENTATION = {"fcn_resnet50": torchvision.models.segmentation.fcn_resnet50,
                "fcn_resnet101": torchvision.models.segmentation.fcn_resnet101}
AUX_WEIGHT = 0.5


def bilinear_kernel(channels, kernel):
    """FCN's upsample_filt on the channel diagonal (symmetric for odd kernels)."""
    factor = (kernel + 1) // 2
    center = factor - 1 if kernel % 2 == 1 else factor - 0.5
    og = np.ogrid[:kernel, :kernel]
    filt = (1 - abs(og[0] - center) / factor) * (1 - abs(og[1] - center) / factor)
    w = np.zeros((channels, channels, kernel, kernel), dtype=np.float32)
    w[range(channels), range(channels)] = filt
    return torch.from_numpy(w)


class Upsample(nn.ConvTranspose2d):
    """A frozen bilinear deconv by `factor`: kernel 2f-1, stride f, so feature
    i of the coarse map lands on f*i + f-1 (an integral crop offset)."""

    def __init__(self, channels, factor):
        super().__init__(channels, channels, 2 * factor - 1, factor, bias=False)
        self.offset = factor - 1
        self.weight.data.copy_(bilinear_kernel(channels, 2 * factor - 1))
        self.weight.requires_grad_(False)


def crop_like(x, reference, offset):
    return x[:, :, offset:offset + reference.shape[2], offset:offset + reference.shape[3]]


class SkipFCN(nn.Module):
    """FCN-32s/16s/8s on a ResNet trunk (fcn's `model.backbone: resnetNN`)."""

    def __init__(self, variant, backbone, num_classes):
        super().__init__()
        self.variant = variant
        trunk = RESNETS[backbone](weights=None)
        layers = {"layer4": "stride32", "layer3": "stride16", "layer2": "stride8"}
        self.backbone = IntermediateLayerGetter(trunk, return_layers=layers)
        expansion = 4 if backbone in ("resnet50", "resnet101") else 1
        self.score_fr = nn.Conv2d(512 * expansion, num_classes, 1)
        if variant == "fcn32s":
            self.upscore = Upsample(num_classes, 32)
            return
        self.upscore2 = Upsample(num_classes, 2)
        self.score_pool4 = nn.Conv2d(256 * expansion, num_classes, 1)
        if variant == "fcn16s":
            self.upscore16 = Upsample(num_classes, 16)
            return
        self.upscore_pool4 = Upsample(num_classes, 2)
        self.score_pool3 = nn.Conv2d(128 * expansion, num_classes, 1)
        self.upscore8 = Upsample(num_classes, 8)

    def forward(self, x):
        features = self.backbone(x)
        score = self.score_fr(features["stride32"])
        if self.variant == "fcn32s":
            return crop_like(self.upscore(score), x, self.upscore.offset)
        pool4 = self.score_pool4(features["stride16"])
        fuse = pool4 + crop_like(self.upscore2(score), pool4, self.upscore2.offset)
        if self.variant == "fcn16s":
            return crop_like(self.upscore16(fuse), x, self.upscore16.offset)
        pool3 = self.score_pool3(features["stride8"])
        fuse = pool3 + crop_like(self.upscore_pool4(fuse), pool3, self.upscore_pool4.offset)
        return crop_like(self.upscore8(fuse), x, self.upscore8.offset)


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
