#!/usr/bin/python3
"""Writes the data, image and metrics fixtures under tests/fixtures/data/
with numpy, PIL and scipy, independently of the C++ code under test:

  metrics.json     random label/prediction pairs (with void 255 pixels and
                   classes absent from both) and the scores of the FCN
                   reference score.py formulas
  voc/, folder/, sbd/   tiny datasets in each layout, plus broken entries
  labels/          label PNGs of several kinds
  expected.json    the label values and decoded pixels the loaders must give

Usage: /usr/bin/python3 tools/fixtures_data.py [--check]
"""
import io
import json
import os
import shutil
import sys

import numpy as np
import scipy.io
from PIL import Image

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import fixture_output  # noqa: E402

ROOT = fixture_output.directory("tests/fixtures/data")
rng = np.random.RandomState(20240611)


def voc_palette():
    """VOCdevkit labelcolormap.m, as a flat PIL palette."""
    pal = []
    for i in range(256):
        r = g = b = 0
        c = i
        for j in range(8):
            r |= ((c >> 0) & 1) << (7 - j)
            g |= ((c >> 1) & 1) << (7 - j)
            b |= ((c >> 2) & 1) << (7 - j)
            c >>= 3
        pal += [r, g, b]
    return pal


def fast_hist(a, b, n):
    k = (a >= 0) & (a < n)
    return np.bincount(n * a[k].astype(int) + b[k], minlength=n ** 2).reshape(n, n)


def scores(hist):
    """The FCN reference score.py, with NaN kept for undefined values."""
    with np.errstate(divide="ignore", invalid="ignore"):
        acc = np.diag(hist).sum() / hist.sum()
        acc_cls = np.diag(hist) / hist.sum(1)
        iu = np.diag(hist) / (hist.sum(1) + hist.sum(0) - np.diag(hist))
        freq = hist.sum(1) / hist.sum()
        fwavacc = (freq[freq > 0] * iu[freq > 0]).sum()
    nan = lambda v: None if np.isnan(v) else float(v)
    return {"pixel_acc": nan(acc), "mean_acc": nan(np.nanmean(acc_cls)), "mean_iou": nan(np.nanmean(iu)),
            "fwavacc": nan(fwavacc), "iou": [nan(v) for v in iu], "acc": [nan(v) for v in acc_cls],
            "gt_pixels": hist.sum(1).tolist(), "pred_pixels": hist.sum(0).tolist()}


def write_metrics():
    n = 6
    images, hist = [], np.zeros((n, n), dtype=np.int64)
    for h, w in [(7, 9), (5, 11), (8, 8)]:
        # class 4 never occurs; class 5 is predicted but never true
        label = rng.choice([0, 1, 2, 3, 255], size=(h, w), p=[0.4, 0.2, 0.15, 0.15, 0.1])
        pred = np.where(rng.rand(h, w) < 0.6, np.where(label == 255, 0, label), rng.choice([0, 1, 2, 3, 5], size=(h, w)))
        images.append({"label": label.ravel().tolist(), "pred": pred.ravel().tolist()})
        hist += fast_hist(label.ravel(), pred.ravel(), n)
    ignored = sum(int((np.array(im["label"]) >= n).sum()) for im in images)
    out = {"num_classes": n, "images": images, "hist": hist.ravel().tolist(), "ignored_pixels": ignored,
           "expected": scores(hist)}
    with open(os.path.join(ROOT, "metrics.json"), "w") as f:
        json.dump(out, f)


def palette_png(path, label, bits=8):
    im = Image.fromarray(label.astype(np.uint8), mode="P")
    im.putpalette(voc_palette())
    if bits < 8:
        im.save(path, format="PNG", bits=bits)
    else:
        im.save(path, format="PNG")


def random_image(h, w):
    # smooth gradients plus noise: JPEG keeps it close to the original
    y, x = np.mgrid[0:h, 0:w]
    base = np.stack([x * 7 % 256, y * 11 % 256, (x + y) * 5 % 256], axis=-1)
    return np.clip(base + rng.randint(0, 20, size=(h, w, 3)), 0, 255).astype(np.uint8)


def random_label(h, w, classes):
    label = rng.randint(0, classes, size=(h, w))
    label[rng.rand(h, w) < 0.1] = 255
    return label.astype(np.uint8)


def jpeg_bytes(rgb):
    buf = io.BytesIO()
    Image.fromarray(rgb).save(buf, format="JPEG", quality=95)
    return buf.getvalue()


def write(path, data):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "wb") as f:
        f.write(data)


def decoded_bgr(path):
    return np.asarray(Image.open(path).convert("RGB"))[:, :, ::-1]


def write_voc(expected):
    voc = os.path.join(ROOT, "voc")
    for d in ["JPEGImages", "SegmentationClass", "ImageSets/Segmentation"]:
        os.makedirs(os.path.join(voc, d), exist_ok=True)
    lists = {"train": ["a", "b", "c"], "missing": ["a", "nofile"], "mismatch": ["d"], "badvalue": ["e"],
             "corrupt": ["f"], "truncjpg": ["g"], "mixed": ["a", "nofile", "d", "b"]}
    sizes = {"a": (16, 20), "b": (12, 18), "c": (10, 10), "d": (9, 13), "e": (8, 8), "f": (30, 30), "g": (40, 40)}
    for name, (h, w) in sizes.items():
        rgb = random_image(h, w)
        data = jpeg_bytes(rgb)
        if name == "g":
            data = data[: len(data) * 2 // 3]
        write(os.path.join(voc, "JPEGImages", name + ".jpg"), data)
        label = random_label(h + (1 if name == "d" else 0), w, 5)
        if name == "e":
            label[3, 2] = 9
        label_path = os.path.join(voc, "SegmentationClass", name + ".png")
        if name == "c":
            Image.fromarray(label, mode="L").save(label_path)  # grayscale ids
        else:
            palette_png(label_path, label)
        if name == "f":
            with open(label_path, "rb") as f:
                data = f.read()
            write(label_path, data[: len(data) // 2])
        if name in "abc":
            expected["voc/" + name] = {"label": label.ravel().tolist(), "height": h, "width": w,
                                       "bgr": decoded_bgr(os.path.join(voc, "JPEGImages", name + ".jpg")).ravel().tolist()}
    for split, ids in lists.items():
        with open(os.path.join(voc, "ImageSets/Segmentation", split + ".txt"), "w") as f:
            f.write("".join(i + "\n" for i in ids))
    with open(os.path.join(voc, "ImageSets/Segmentation/empty.txt"), "w") as f:
        f.write("\n  \n")


def write_folder(expected):
    folder = os.path.join(ROOT, "folder")
    ids = ["p", "q"]
    for i, name in enumerate(ids):
        h, w = 11 + i, 7 + 2 * i
        rgb = random_image(h, w)
        os.makedirs(os.path.join(folder, "images"), exist_ok=True)
        os.makedirs(os.path.join(folder, "labels"), exist_ok=True)
        Image.fromarray(rgb).save(os.path.join(folder, "images", name + ".png"))
        label = random_label(h, w, 3)
        palette_png(os.path.join(folder, "labels", name + ".png"), label)
        expected["folder/" + name] = {"label": label.ravel().tolist(), "height": h, "width": w,
                                      "bgr": rgb[:, :, ::-1].ravel().tolist()}
    with open(os.path.join(folder, "train.txt"), "w") as f:
        f.write("".join(i + "\n" for i in ids))


def write_sbd(expected):
    sbd = os.path.join(ROOT, "sbd")
    ids = ["s1", "s2"]
    for i, name in enumerate(ids):
        h, w = 9 + i, 14 - i
        write(os.path.join(sbd, "img", name + ".jpg"), jpeg_bytes(random_image(h, w)))
        label = random_label(h, w, 21)
        gt = {"Segmentation": label, "Boundaries": np.empty((21, 1), dtype=object),
              "CategoriesPresent": np.unique(label[label < 255]).astype(np.uint8)}
        for k in range(21):
            gt["Boundaries"][k, 0] = np.zeros((1, 1), dtype=np.uint8)
        os.makedirs(os.path.join(sbd, "cls"), exist_ok=True)
        scipy.io.savemat(os.path.join(sbd, "cls", name + ".mat"), {"GTcls": gt}, do_compression=(i == 0))
        expected["sbd/" + name] = {"label": label.ravel().tolist(), "height": h, "width": w}
    with open(os.path.join(sbd, "train.txt"), "w") as f:
        f.write("".join(i + "\n" for i in ids))


def write_labels(expected):
    labels = os.path.join(ROOT, "labels")
    os.makedirs(labels, exist_ok=True)
    four_bit = rng.randint(0, 16, size=(6, 9)).astype(np.uint8)
    palette_png(os.path.join(labels, "palette4.png"), four_bit, bits=4)
    expected["labels/palette4"] = {"label": four_bit.ravel().tolist(), "height": 6, "width": 9}
    Image.fromarray(random_image(5, 5)).save(os.path.join(labels, "rgb.png"))
    write(os.path.join(labels, "garbage.png"), b"\x89PNG\r\n\x1a\nthis is not a png at all")
    # a palette PNG with a bad CRC in its pixel data chunk
    buf = io.BytesIO()
    palette_png(buf, random_label(12, 12, 5))
    data = bytearray(buf.getvalue())
    idat = data.find(b"IDAT")
    data[idat + 6] ^= 0xFF
    write(os.path.join(labels, "badcrc.png"), bytes(data))


def main():
    if os.path.isdir(ROOT):
        shutil.rmtree(ROOT)
    os.makedirs(ROOT)
    expected = {}
    write_metrics()
    write_voc(expected)
    write_folder(expected)
    write_sbd(expected)
    write_labels(expected)
    with open(os.path.join(ROOT, "expected.json"), "w") as f:
        json.dump(expected, f)


if __name__ == "__main__":
    main()
