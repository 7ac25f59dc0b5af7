"""Caffe-faithful FCN-32s/16s/8s/8s-atonce in PyTorch, written from the
reference nets (shelhamer/fcn.berkeleyvision.org voc-fcn*/net.py), not from
fcn's graph JSON, so that whole-model parity checks compare two independent
descriptions of the same network.

Module names are the reference layer names (conv1_1 ... fc7, score_fr,
score_pool4, score_pool3, upscore*), so `state_dict()` keys are exactly the
param names of an fcn checkpoint ("conv1_1.weight", "upscore2.weight", ...).

Faithful to Caffe: conv1_1 pads 100, max pools are 2x2/2 in ceil mode, fc6 is
a 7x7 conv and fc7 a 1x1 conv, each followed by ReLU and (element-wise)
dropout; every upsampling is a bias-free, frozen ConvTranspose2d holding the
bilinear kernel; skip scores are cropped at the fixed offsets Caffe's
coord_map derives (19; 5, 27; 5, 9, 31); the at-once net scales pool4 by
0.01 and pool3 by 0.0001 before scoring them.

`width` multiplies every VGG16 channel count (floor, at least 1), as fcn's
model.width does: width 0.0625 gives 4, 8, 16, 32, 32 and fc6/fc7 of 256."""
import math

import numpy as np
import torch
import torch.nn as nn

VARIANTS = ("fcn32s", "fcn16s", "fcn8s", "fcn8s-atonce")
# (block, convs per block, channels at width 1)
VGG16_BLOCKS = ((1, 2, 64), (2, 2, 128), (3, 3, 256), (4, 3, 512), (5, 3, 512))
FC_CHANNELS = 4096
# Caffe's crop offsets for these nets (coord_map with conv1_1 pad 100).
CROP_32S = 19
CROP_POOL4, CROP_16S = 5, 27
CROP_POOL3, CROP_8S = 9, 31
ATONCE_POOL4_SCALE, ATONCE_POOL3_SCALE = 0.01, 0.0001


def channels(c, width):
    return max(1, int(math.floor(c * width + 1e-9)))


def vgg16_convs():
    """(name, channels at width 1, whether a pool follows) for conv1_1 ... conv5_3."""
    return [(f"conv{b}_{i}", c, i == n) for b, n, c in VGG16_BLOCKS for i in range(1, n + 1)]


def upsample_filter(k):
    """The FCN surgery.upsample_filt bilinear kernel, k x k."""
    factor = (k + 1) // 2
    center = factor - 1 if k % 2 == 1 else factor - 0.5
    rows, cols = np.ogrid[:k, :k]
    return ((1 - abs(rows - center) / factor) * (1 - abs(cols - center) / factor)).astype(np.float32)


def bilinear_upsampler(num_classes, factor, k=None):
    """A frozen, bias-free deconv (kernel k, by default the paper's 2*factor;
    stride factor) with the bilinear kernel on the class diagonal."""
    k = k or 2 * factor
    up = nn.ConvTranspose2d(num_classes, num_classes, k, stride=factor, bias=False)
    weight = np.zeros((num_classes, num_classes, k, k), dtype=np.float32)
    weight[range(num_classes), range(num_classes)] = upsample_filter(k)
    up.weight.data.copy_(torch.from_numpy(weight))
    up.weight.requires_grad_(False)
    return up


def crop_like(x, ref, offset):
    h, w = ref.shape[2], ref.shape[3]
    return x[:, :, offset:offset + h, offset:offset + w]


class FCN(nn.Module):
    def __init__(self, variant="fcn8s", num_classes=21, width=1.0, dropout=0.5):
        super().__init__()
        if variant not in VARIANTS:
            raise ValueError(f"unknown variant {variant!r}, expected one of {VARIANTS}")
        self.variant = variant
        # keep_pools: each forward keeps pool1 ... pool5 in self.pools, their
        # gradients retained by backward (for parity checks of pool gradients)
        self.keep_pools = False
        self.pools = []
        in_c = 3
        for name, c, _ in vgg16_convs():
            out_c = channels(c, width)
            self.add_module(name, nn.Conv2d(in_c, out_c, 3, padding=100 if name == "conv1_1" else 1))
            in_c = out_c
        fc = channels(FC_CHANNELS, width)
        self.fc6 = nn.Conv2d(in_c, fc, 7)
        self.fc7 = nn.Conv2d(fc, fc, 1)
        self.drop = nn.Dropout(dropout)
        self.score_fr = nn.Conv2d(fc, num_classes, 1)
        if variant == "fcn32s":
            self.upscore = bilinear_upsampler(num_classes, 32)
            return
        self.upscore2 = bilinear_upsampler(num_classes, 2)
        self.score_pool4 = nn.Conv2d(channels(512, width), num_classes, 1)
        if variant == "fcn16s":
            self.upscore16 = bilinear_upsampler(num_classes, 16)
            return
        self.upscore_pool4 = bilinear_upsampler(num_classes, 2)
        self.score_pool3 = nn.Conv2d(channels(256, width), num_classes, 1)
        self.upscore8 = bilinear_upsampler(num_classes, 8)

    def trunk(self, x):
        """(pool3, pool4, score_fr)"""
        pools = []
        h = x
        for name, _, pool_follows in vgg16_convs():
            h = torch.relu(getattr(self, name)(h))
            if pool_follows:
                h = nn.functional.max_pool2d(h, 2, 2, ceil_mode=True)
                if self.keep_pools and h.requires_grad:
                    h.retain_grad()
                pools.append(h)
        self.pools = pools if self.keep_pools else []
        h = self.drop(torch.relu(self.fc6(h)))
        h = self.drop(torch.relu(self.fc7(h)))
        return pools[2], pools[3], self.score_fr(h)

    def forward(self, x):
        pool3, pool4, score_fr = self.trunk(x)
        if self.variant == "fcn32s":
            return crop_like(self.upscore(score_fr), x, CROP_32S)
        at_once = self.variant == "fcn8s-atonce"
        upscore2 = self.upscore2(score_fr)
        if at_once:
            pool4 = pool4 * ATONCE_POOL4_SCALE
        fuse_pool4 = upscore2 + crop_like(self.score_pool4(pool4), upscore2, CROP_POOL4)
        if self.variant == "fcn16s":
            return crop_like(self.upscore16(fuse_pool4), x, CROP_16S)
        upscore_pool4 = self.upscore_pool4(fuse_pool4)
        if at_once:
            pool3 = pool3 * ATONCE_POOL3_SCALE
        fuse_pool3 = upscore_pool4 + crop_like(self.score_pool3(pool3), upscore_pool4, CROP_POOL3)
        return crop_like(self.upscore8(fuse_pool3), x, CROP_8S)


def reference_loss(score, label, ignore_label=255):
    """The reference's SoftmaxWithLoss with normalize: false (a sum over
    valid pixels); label is [N, 1, H, W] or [N, H, W] of class ids."""
    target = label.reshape(label.shape[0], label.shape[-2], label.shape[-1]).round().long()
    return nn.functional.cross_entropy(score, target, ignore_index=ignore_label, reduction="sum")
