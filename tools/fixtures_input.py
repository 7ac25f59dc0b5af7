"""Writes tests/fixtures/input_convention.safetensors: torchvision's input
convention on a real photo, for test_dataset's check of data.channel_order /
pixel_scale / mean / std.

Tensors:
  rgb          uint8 [H, W, 3]  the photo's pixels as PIL decodes them (RGB)
  torchvision  float32 [3, H, W] Normalize(ImageNet mean, std)(ToTensor(photo))
Metadata "mean" and "std": the ImageNet numbers used, as JSON.
Run: /usr/bin/python3 tools/fixtures_input.py [--check].
"""
import json
import os
import sys

import numpy as np
import torch
from PIL import Image
from torchvision import transforms

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import fixture_output  # noqa: E402
import safetensors_np  # noqa: E402

OUT_DIR = fixture_output.directory("tests/fixtures")
PHOTO = os.path.join(fixture_output.REPO, "tests/fixtures/data/voc/JPEGImages/b.jpg")
MEAN = [0.485, 0.456, 0.406]
STD = [0.229, 0.224, 0.225]


def main():
    photo = Image.open(PHOTO).convert("RGB")
    normalize = transforms.Compose([transforms.ToTensor(), transforms.Normalize(MEAN, STD)])
    tensor = normalize(photo)
    assert tensor.dtype == torch.float32
    tensors = {"rgb": np.asarray(photo, dtype=np.uint8), "torchvision": tensor.numpy()}
    safetensors_np.save(os.path.join(OUT_DIR, "input_convention.safetensors"), tensors,
                        {"mean": json.dumps(MEAN), "std": json.dumps(STD)})


if __name__ == "__main__":
    main()
