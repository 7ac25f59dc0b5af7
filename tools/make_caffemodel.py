#!/usr/bin/python3
"""Writes Caffe .caffemodel files with random weights, for testing fcn import-caffe.

The messages come from proto/caffe_subset.proto (Caffe's own field numbers),
compiled at run time with protoc --python_out (Debian protobuf-compiler,
python3-protobuf), so the bytes are what Caffe itself writes.

    make_caffemodel.py --arch fcn8s --width 0.25 --classes 5 --out X.caffemodel
        [--layout layer|v1] [--dims shape|legacy] [--floats packed|unpacked|double]
        [--seed S] [--reference REF.safetensors] [--deploy NET.prototxt]

--arch fcn32s|fcn16s|fcn8s|fcn8s-atonce writes the reference's VOC nets
(shelhamer/fcn.berkeleyvision.org voc-fcn*/net.py: layer names, pad 100,
crops 19 / 5, 27 / 5, 9, 31, SoftmaxWithLoss with normalize false, and the
Split layer a saved Caffe net holds for the image blob);
--arch vgg16 the ILSVRC VGG16 classifier (V1 layout, legacy dims,
InnerProduct fc6/fc7/fc8, Softmax "prob", NetParameter.input).
--arch mixed writes a small net of every mapped layer kind at a declared
input of --channels 1, 3 or 6 (input_dim, an Input layer, input_shape):
grouped rectangular convolution and deconvolution, leaky ReLU, AVE pooling
with padding and a ceil-mode partial last window, MAX pooling, and in the
layer layout (V1 has none of them) BatchNorm + Scale pairs (separate tops
with use_global_stats unset, in place with use_global_stats true; a
moving-average factor s != 1) and Crop; Eltwise SUM with coefficients,
Concat, InnerProduct on a spatial blob and a transposed one, fillers in the
structure; --expected writes an input and the net's output computed with
Caffe's semantics in float64 (numpy).
--reference writes the same weights as float32 under fcn's names
(fc6 of vgg16 reshaped to a 7x7 kernel); --deploy writes the structure as a
text prototxt (and the caffemodel then keeps only names and blobs).
"""
import argparse
import atexit
import math
import os
import shutil
import subprocess
import sys
import tempfile

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import safetensors_np  # noqa: E402

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..")


SCHEMA = os.path.join(ROOT, "tests", "fixtures", "caffe", "bvlc_fields.proto")


def compile_schema(packed):
    """The module of the test schema (BVLC's fields, tests/fixtures/caffe);
    packed=False drops [packed = true] (proto2's default is unpacked), in its
    own package so both can coexist."""
    with open(SCHEMA) as f:
        text = f.read()
    name = "bvlc_fields" if packed else "bvlc_unpacked"
    if not packed:
        text = text.replace(" [packed = true]", "").replace("package fcn.caffe_test;", "package fcn.caffe_unpacked;")
    work = tempfile.mkdtemp(prefix="fcn_caffe_proto_")
    atexit.register(shutil.rmtree, work, True)  # the module stays loaded; its files need not
    with open(os.path.join(work, name + ".proto"), "w") as f:
        f.write(text)
    subprocess.run(["protoc", "--python_out=" + work, "-I" + work, name + ".proto"], check=True)
    sys.path.insert(0, work)
    return __import__(name + "_pb2")


# ---- Caffe's layers in float64, written from Caffe's definitions (the reference of --arch mixed)


def caffe_conv(x, w, b, stride, pad, group):
    """Caffe's Convolution: w [out, in/g, kh, kw], zero padding, floor output size."""
    c, h, wd = x.shape
    out, cg, kh, kw = w.shape
    xp = np.zeros((c, h + 2 * pad[0], wd + 2 * pad[1]))
    xp[:, pad[0]:pad[0] + h, pad[1]:pad[1] + wd] = x
    oh, ow = (h + 2 * pad[0] - kh) // stride[0] + 1, (wd + 2 * pad[1] - kw) // stride[1] + 1
    y = np.zeros((out, oh, ow))
    og = out // group
    for o in range(out):
        g = o // og
        for i in range(oh):
            for j in range(ow):
                window = xp[g * cg:(g + 1) * cg, i * stride[0]:i * stride[0] + kh, j * stride[1]:j * stride[1] + kw]
                y[o, i, j] = np.sum(window * w[o])
    return y + (b[:, None, None] if b is not None else 0)


def caffe_deconv(x, w, b, stride, pad, group):
    """Caffe's Deconvolution: w [in, out/g, kh, kw]; each input pixel adds its kernel (col2im), then the pad is cut."""
    c, h, wd = x.shape
    _, og, kh, kw = w.shape
    cg = c // group
    full = np.zeros((og * group, (h - 1) * stride[0] + kh, (wd - 1) * stride[1] + kw))
    for ci in range(c):
        g = ci // cg
        for i in range(h):
            for j in range(wd):
                full[g * og:(g + 1) * og, i * stride[0]:i * stride[0] + kh, j * stride[1]:j * stride[1] + kw] += x[ci, i, j] * w[ci]
    y = full[:, pad[0]:full.shape[1] - pad[0], pad[1]:full.shape[2] - pad[1]]
    return y + (b[:, None, None] if b is not None else 0)


def caffe_pool(x, method, kernel, stride, pad):
    """Caffe's Pooling (round_mode CEIL): a last window starting in the padding is dropped; MAX over the
    window clipped to the image; AVE divides by the window clipped to the padded image (padding counted)."""
    c, h, w = x.shape
    size = []
    for axis, n in enumerate((h, w)):
        o = int(math.ceil((n + 2 * pad[axis] - kernel[axis]) / stride[axis])) + 1
        if pad[axis] and (o - 1) * stride[axis] >= n + pad[axis]:
            o -= 1
        size.append(o)
    y = np.zeros((c, size[0], size[1]))
    for i in range(size[0]):
        for j in range(size[1]):
            hs, ws = i * stride[0] - pad[0], j * stride[1] - pad[1]
            he, we = min(hs + kernel[0], h + pad[0]), min(ws + kernel[1], w + pad[1])
            count = (he - hs) * (we - ws)
            hs, ws, he, we = max(hs, 0), max(ws, 0), min(he, h), min(we, w)
            window = x[:, hs:he, ws:we].reshape(c, -1)
            y[:, i, j] = window.max(axis=1) if method == "MAX" else window.sum(axis=1) / count
    return y


def channels(c, width):
    return max(1, int(math.floor(c * width + 1e-9)))


class NetWriter:
    def __init__(self, pb, args):
        self.pb, self.args = pb, args
        self.rng = np.random.RandomState(args.seed)
        self.net = pb.NetParameter()
        self.net.name = args.arch
        self.reference = {}
        self.v1 = args.layout == "v1"

    # ---- layers

    def layer(self, name, type_name, bottoms, tops):
        if self.v1:
            layer = self.net.layers.add()
            layer.type = getattr(self.pb.V1LayerParameter, type_name.upper())
        else:
            layer = self.net.layer.add()
            layer.type = {"convolution": "Convolution", "deconvolution": "Deconvolution", "pooling": "Pooling",
                          "relu": "ReLU", "dropout": "Dropout", "eltwise": "Eltwise", "inner_product": "InnerProduct",
                          "softmax": "Softmax", "softmax_loss": "SoftmaxWithLoss", "data": "Python", "crop": "Crop",
                          "scale": "Scale", "accuracy": "Accuracy", "split": "Split", "input": "Input",
                          "concat": "Concat", "batch_norm": "BatchNorm"}[type_name]
        layer.name = name
        layer.bottom.extend(bottoms)
        layer.top.extend(tops)
        return layer

    def mults(self, layer, values):
        """(lr_mult, decay_mult) per blob: ParamSpecs, or V1's blobs_lr/weight_decay."""
        for lr, decay in values:
            if self.v1:
                layer.blobs_lr.append(lr)
                layer.weight_decay.append(decay)
            else:
                spec = layer.param.add()
                spec.lr_mult, spec.decay_mult = lr, decay

    def blob(self, layer, array, legacy_shape=None):
        blob = layer.blobs.add()
        shape = list(array.shape)
        if self.args.dims == "legacy":
            dims = legacy_shape or ([1] * (4 - len(shape)) + shape)
            blob.num, blob.channels, blob.height, blob.width = dims
        else:
            blob.shape.dim.extend(shape)
        flat = array.reshape(-1)
        if self.args.floats == "double":
            blob.double_data.extend(flat.astype(np.float64).tolist())
        else:
            blob.data.extend(flat.astype(np.float32).tolist())

    def random(self, shape, fan_in):
        return (self.rng.standard_normal(shape) * math.sqrt(2.0 / fan_in)).astype(np.float32)

    def conv(self, name, bottom, c_in, c_out, kernel, pad=0, stride=1, deconv=False, bias=True, mults=None):
        layer = self.layer(name, "deconvolution" if deconv else "convolution", [bottom], [name])
        p = layer.convolution_param
        p.num_output = c_out
        if self.v1 or kernel % 2:
            p.kernel_size.append(kernel)
        else:  # both spellings of a square kernel: kernel_size or kernel_h/kernel_w
            p.kernel_h, p.kernel_w = kernel, kernel
        if stride != 1:
            p.stride.append(stride)
        if pad:
            p.pad.append(pad)
        if not bias:
            p.bias_term = False
        self.mults(layer, mults or ([(1, 1), (2, 0)] if bias else [(0, 0)]))
        shape = (c_in, c_out, kernel, kernel) if deconv else (c_out, c_in, kernel, kernel)
        w = self.random(shape, c_in * kernel * kernel)
        self.blob(layer, w)
        self.reference[name + ".weight"] = w
        if bias:
            b = (self.rng.standard_normal(c_out) * 0.1).astype(np.float32)
            self.blob(layer, b)
            self.reference[name + ".bias"] = b
        return name

    def inner_product(self, name, bottom, c_in, spatial, c_out):
        layer = self.layer(name, "inner_product", [bottom], [name])
        layer.inner_product_param.num_output = c_out
        self.mults(layer, [(1, 1), (2, 0)])
        w = self.random((c_out, c_in * spatial * spatial), c_in * spatial * spatial)
        b = (self.rng.standard_normal(c_out) * 0.1).astype(np.float32)
        self.blob(layer, w, legacy_shape=[1, 1, c_out, c_in * spatial * spatial])
        self.blob(layer, b, legacy_shape=[1, 1, 1, c_out])
        self.reference[name + ".weight"] = w.reshape(c_out, c_in, spatial, spatial)
        self.reference[name + ".bias"] = b
        return name

    def relu(self, name, blob):
        self.layer(name, "relu", [blob], [blob])  # in place, as the reference
        return blob

    def dropout(self, name, blob):
        self.layer(name, "dropout", [blob], [blob]).dropout_param.dropout_ratio = 0.5
        return blob

    def pool(self, name, bottom):
        p = self.layer(name, "pooling", [bottom], [name]).pooling_param
        p.pool = self.pb.PoolingParameter.MAX
        p.kernel_size, p.stride = 2, 2
        return name

    def crop(self, name, bottom, reference, offset):
        if self.v1:
            raise SystemExit("Caffe's V1 layout has no Crop layer: use --layout layer for the FCN nets")
        p = self.layer(name, "crop", [bottom, reference], [name]).crop_param
        p.axis = 2
        p.offset.append(offset)
        return name

    def eltwise_sum(self, name, a, b):
        layer = self.layer(name, "eltwise", [a, b], [name])
        layer.eltwise_param.operation = self.pb.EltwiseParameter.SUM
        layer.eltwise_param.coeff.extend([1.0, 1.0])
        return name

    def scale(self, name, bottom, c, value):
        layer = self.layer(name, "scale", [bottom], [name])
        self.mults(layer, [(0, 0)])
        self.blob(layer, np.full((c,), value, dtype=np.float32))
        return name

    # ---- nets

    def trunk(self, width, first_pad, data="data"):
        blob, c_in, tops = data, 3, {}
        for b, (c, n) in enumerate(zip([64, 128, 256, 512, 512], [2, 2, 3, 3, 3])):
            for i in range(n):
                name = "conv%d_%d" % (b + 1, i + 1)
                c_out = channels(c, width)
                self.conv(name, blob, c_in, c_out, 3, pad=first_pad if b == 0 and i == 0 else 1)
                blob, c_in = self.relu("relu%d_%d" % (b + 1, i + 1), name), c_out
            blob = self.pool("pool%d" % (b + 1), blob)
            tops["pool%d" % (b + 1)] = (blob, c_in)
        return blob, c_in, tops

    def fcn(self, arch, width, classes):
        data = self.layer("data", "data", [], ["data", "label"])
        image, image_ref = "data", "data"
        if not self.v1:
            data.type = "Python"
            # a saved Caffe net holds the Split layers Caffe inserts for a blob with several readers
            image, image_ref = "data_data_0_split_0", "data_data_0_split_1"
            self.layer("data_data_0_split", "split", ["data"], [image, image_ref])
        blob, c, tops = self.trunk(width, 100, image)
        c6 = channels(4096, width)
        blob = self.dropout("drop6", self.relu("relu6", self.conv("fc6", blob, c, c6, 7)))
        blob = self.dropout("drop7", self.relu("relu7", self.conv("fc7", blob, c6, c6, 1)))
        score_fr = self.conv("score_fr", blob, c6, classes, 1)
        frozen = [(0, 0)]
        if arch == "fcn32s":
            up = self.conv("upscore", score_fr, classes, classes, 64, stride=32, deconv=True, bias=False, mults=frozen)
            score = self.crop("score", up, image_ref, 19)
        else:
            up2 = self.conv("upscore2", score_fr, classes, classes, 4, stride=2, deconv=True, bias=False, mults=frozen)
            pool4, c4 = tops["pool4"]
            if arch == "fcn8s-atonce":
                pool4 = self.scale("scale_pool4", pool4, c4, 0.01)
            sp4 = self.crop("score_pool4c", self.conv("score_pool4", pool4, c4, classes, 1), up2, 5)
            fuse4 = self.eltwise_sum("fuse_pool4", up2, sp4)
            if arch == "fcn16s":
                up = self.conv("upscore16", fuse4, classes, classes, 32, stride=16, deconv=True, bias=False,
                               mults=frozen)
                score = self.crop("score", up, image_ref, 27)
            else:
                up4 = self.conv("upscore_pool4", fuse4, classes, classes, 4, stride=2, deconv=True, bias=False,
                                mults=frozen)
                pool3, c3 = tops["pool3"]
                if arch == "fcn8s-atonce":
                    pool3 = self.scale("scale_pool3", pool3, c3, 0.0001)
                sp3 = self.crop("score_pool3c", self.conv("score_pool3", pool3, c3, classes, 1), up4, 9)
                fuse3 = self.eltwise_sum("fuse_pool3", up4, sp3)
                up = self.conv("upscore8", fuse3, classes, classes, 16, stride=8, deconv=True, bias=False,
                               mults=frozen)
                score = self.crop("score", up, image_ref, 31)
        loss = self.layer("loss", "softmax_loss", [score, "label"], ["loss"])
        loss.loss_param.ignore_label = 255
        loss.loss_param.normalize = False

    def declare_input(self, c, h, w):
        """1 channel: NetParameter.input + input_dim; 3: an Input layer; 6: input + input_shape."""
        if c == 3 and not self.v1:
            layer = self.layer("input", "input", [], ["data"])
            layer.input_param.shape.add().dim.extend([1, c, h, w])
            return
        self.net.input.append("data")
        if c == 1 or self.v1:
            self.net.input_dim.extend([1, c, h, w])
        else:
            self.net.input_shape.add().dim.extend([1, c, h, w])

    def param_blobs(self, layer, name, w, b, fcn_w=None):
        self.blob(layer, w)
        self.reference[name + ".weight"] = w if fcn_w is None else fcn_w
        if b is not None:
            self.blob(layer, b)
            self.reference[name + ".bias"] = b

    def batch_norm(self, name, scale_name, bottom, top, scale_top, c, global_stats):
        """BatchNorm (blobs mean*s, var*s, s) + Scale with a bias: Caffe's inference normalisation; returns
        the function of the bottom (float64) computing scale_top."""
        layer = self.layer(name, "batch_norm", [bottom], [top])
        q = layer.batch_norm_param
        if global_stats is not None:
            q.use_global_stats = global_stats
        q.moving_average_fraction, q.eps = 0.99, 1e-3
        self.mults(layer, [(0, 0)] * 3)  # Caffe's BatchNorm keeps its blobs out of the solver
        s = np.float32(0.7)  # the moving-average normaliser: Caffe divides mean and var by it
        mean = (self.rng.standard_normal(c) * s).astype(np.float32)
        var = (self.rng.uniform(0.2, 2.0, c) * s).astype(np.float32)
        for blob in (mean, var, np.array([s], dtype=np.float32)):
            self.blob(layer, blob)
        factor = np.float32(1) / s  # in float32, as Caffe and fcn compute it: the weights are compared exactly
        self.reference[name + ".running_mean"] = mean * factor
        self.reference[name + ".running_var"] = var * factor
        scale = self.layer(scale_name, "scale", [top], [scale_top])
        scale.scale_param.bias_term = True
        gamma = self.rng.uniform(0.5, 1.5, c).astype(np.float32)
        beta = (self.rng.standard_normal(c) * 0.1).astype(np.float32)
        self.blob(scale, gamma)
        self.blob(scale, beta)
        self.reference[name + ".weight"], self.reference[name + ".bias"] = gamma, beta
        m, v = mean.astype(np.float64) / float(s), var.astype(np.float64) / float(s)
        return lambda x: ((x - m[:, None, None]) / np.sqrt(v[:, None, None] + q.eps) * gamma[:, None, None]
                          + beta[:, None, None])

    def mixed(self, c, h=13, w=17):
        """Every mapped layer kind once; returns the function computing the output of an input (float64)."""
        pb, rng = self.pb, self.rng
        self.declare_input(c, h, w)
        group = 1 if c == 1 else 3
        ops = []  # (blob, function of the blob dict) in order

        conv1 = self.layer("conv1", "convolution", ["data"], ["conv1"])
        p = conv1.convolution_param
        p.num_output, p.group = 6, group
        # 12 x 8 out of 13 x 17: pool1's last windows are ceil mode's partial ones
        p.kernel_h, p.kernel_w, p.pad_h, p.pad_w, p.stride_h, p.stride_w = 4, 5, 1, 1, 1, 2
        p.weight_filler.type, p.weight_filler.std = "gaussian", 0.01
        p.bias_filler.type, p.bias_filler.value = "constant", 0.1
        p.engine = pb.ConvolutionParameter.CAFFE
        self.mults(conv1, [(1, 1), (2, 0)])
        w1, b1 = self.random((6, c // group, 4, 5), 20 * c // group), rng.standard_normal(6).astype(np.float32)
        self.param_blobs(conv1, "conv1", w1, b1)
        ops.append(("conv1", lambda t: caffe_conv(t["data"], w1, b1, (1, 2), (1, 1), group)))
        act = "conv1"
        if not self.v1:  # V1 has no BatchNorm or Scale
            bn1 = self.batch_norm("bn1", "scale1", "conv1", "bn1", "scale1", 6, None)
            ops.append(("scale1", lambda t: bn1(t["conv1"])))
            act = "scale1"

        relu = self.layer("relu1", "relu", [act], [act])
        relu.relu_param.negative_slope = 0.1
        ops.append((act, lambda t: np.where(t[act] > 0, t[act], 0.1 * t[act])))

        pool1 = self.layer("pool1", "pooling", [act], ["pool1"]).pooling_param
        pool1.pool, pool1.kernel_size, pool1.stride, pool1.pad = pb.PoolingParameter.AVE, 3, 2, 1
        ops.append(("pool1", lambda t: caffe_pool(t[act], "AVE", (3, 3), (2, 2), (1, 1))))

        conv2 = self.layer("conv2", "convolution", ["pool1"], ["conv2"])
        p = conv2.convolution_param
        p.num_output = 4
        p.kernel_size.extend([3, 1])
        p.pad.extend([1, 0])
        w2, b2 = self.random((4, 6, 3, 1), 18), rng.standard_normal(4).astype(np.float32)
        self.param_blobs(conv2, "conv2", w2, b2)
        ops.append(("conv2", lambda t: caffe_conv(t["pool1"], w2, b2, (1, 1), (1, 0), 1)))
        if not self.v1:
            bn2 = self.batch_norm("bn2", "scale2", "conv2", "conv2", "conv2", 4, True)
            ops.append(("conv2", lambda t: bn2(t["conv2"])))

        pool2 = self.layer("pool2", "pooling", ["conv2"], ["pool2"]).pooling_param
        pool2.pool, pool2.kernel_size, pool2.stride = pb.PoolingParameter.MAX, 2, 2
        ops.append(("pool2", lambda t: caffe_pool(t["conv2"], "MAX", (2, 2), (2, 2), (0, 0))))

        up = self.layer("up", "deconvolution", ["pool2"], ["up"])
        p = up.convolution_param
        p.num_output, p.group, p.bias_term = 6, 2, False
        p.kernel_h, p.kernel_w, p.stride_h, p.stride_w = 4, 3, 2, 1
        self.mults(up, [(0, 0)])
        wu = self.random((4, 3, 4, 3), 12)
        self.param_blobs(up, "up", wu, None)
        ops.append(("up", lambda t: caffe_deconv(t["pool2"], wu, None, (2, 1), (0, 0), 2)))
        last = "up"
        if not self.v1:  # V1 has no Crop
            crop = self.layer("crop", "crop", ["up", "pool1"], ["crop"]).crop_param
            crop.axis = 2
            crop.offset.extend([1, 0])
            ops.append(("crop", lambda t: t["up"][:, 1:1 + t["pool1"].shape[1], 0:t["pool1"].shape[2]]))
            fuse = self.layer("fuse", "eltwise", ["crop", "pool1"], ["fuse"]).eltwise_param
            fuse.operation = pb.EltwiseParameter.SUM
            fuse.coeff.extend([1.0, 0.5])
            ops.append(("fuse", lambda t: t["crop"] + 0.5 * t["pool1"]))
            last = "fuse"
        other = "up" if self.v1 else "pool1"
        cat = self.layer("cat", "concat", [last, other], ["cat"]).concat_param
        if self.v1:
            cat.concat_dim = 1  # the deprecated spelling
        else:
            cat.axis = -3
        ops.append(("cat", lambda t, a=last, b=other: np.concatenate([t[a], t[b]], axis=0)))
        shape = {"fuse": (12, 7, 5), "up": (12, 10, 5)}[last]
        last = "cat"
        fc = self.layer("fc", "inner_product", [last], ["fc"])
        fc.inner_product_param.num_output = 5
        fc.inner_product_param.weight_filler.type = "xavier"
        cols = int(np.prod(shape))
        wf, bf = self.random((5, cols), cols), rng.standard_normal(5).astype(np.float32)
        self.param_blobs(fc, "fc", wf, bf, wf.reshape(5, *shape))
        ops.append(("fc", lambda t: (wf.astype(np.float64) @ t[last].reshape(-1) + bf).reshape(5, 1, 1)))

        fc2 = self.layer("fc2", "inner_product", ["fc"], ["fc2"])
        fc2.inner_product_param.num_output = 3
        fc2.inner_product_param.transpose = True
        wt, bt = self.random((5, 3), 5), rng.standard_normal(3).astype(np.float32)  # stored [inputs, outputs]
        self.param_blobs(fc2, "fc2", wt, bt, np.ascontiguousarray(wt.T).reshape(3, 5, 1, 1))
        ops.append(("fc2", lambda t: (wt.astype(np.float64).T @ t["fc"].reshape(-1) + bt).reshape(3, 1, 1)))

        def forward(x):
            blobs = {"data": x.astype(np.float64)}
            for name, fn in ops:
                blobs[name] = fn(blobs)
            return blobs["fc2"]
        return forward

    def vgg16(self, width):
        self.net.input.append("data")
        self.net.input_dim.extend([10, 3, 224, 224])
        blob, c, _ = self.trunk(width, 1)
        c6 = channels(4096, width)
        blob = self.dropout("drop6", self.relu("relu6", self.inner_product("fc6", blob, c, 7, c6)))
        blob = self.dropout("drop7", self.relu("relu7", self.inner_product("fc7", blob, c6, 1, c6)))
        fc8 = self.inner_product("fc8", blob, c6, 1, 1000)
        self.layer("prob", "softmax", [fc8], ["prob"])


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--arch", required=True,
                        choices=["fcn32s", "fcn16s", "fcn8s", "fcn8s-atonce", "vgg16", "mixed"])
    parser.add_argument("--channels", type=int, default=3, help="--arch mixed: input channels (1, 3 or 6)")
    parser.add_argument("--expected", help="--arch mixed: write an input (data) and Caffe's output (expected)")
    parser.add_argument("--drop-last-blob", metavar="LAYER", help="--arch mixed: leave LAYER's last blob out")
    parser.add_argument("--fork-field", action="store_true", help="set a field BVLC does not define (conv1)")
    parser.add_argument("--width", type=float, default=1.0)
    parser.add_argument("--classes", type=int, default=21)
    parser.add_argument("--layout", choices=["layer", "v1"], default=None, help="default: v1 for vgg16, else layer")
    parser.add_argument("--dims", choices=["shape", "legacy"], default=None, help="default: legacy for vgg16")
    parser.add_argument("--floats", choices=["packed", "unpacked", "double"], default="packed")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--out", required=True)
    parser.add_argument("--reference", help="also write the weights under fcn's names (safetensors)")
    parser.add_argument("--deploy", help="also write the structure as a text prototxt")
    args = parser.parse_args()
    vgg = args.arch == "vgg16"
    args.layout = args.layout or ("v1" if vgg else "layer")
    args.dims = args.dims or ("legacy" if vgg else "shape")
    pb = compile_schema(packed=args.floats != "unpacked")
    writer = NetWriter(pb, args)
    forward = None
    if vgg:
        writer.vgg16(args.width)
    elif args.arch == "mixed":
        forward = writer.mixed(args.channels)
        if args.drop_last_blob:
            layer = next(l for l in list(writer.net.layer) + list(writer.net.layers) if l.name == args.drop_last_blob)
            del layer.blobs[-1]
        if args.fork_field:
            (writer.net.layers if writer.v1 else writer.net.layer)[int(args.channels == 3 and not writer.v1)] \
                .convolution_param.fork_option = 1
    else:
        writer.fcn(args.arch, args.width, args.classes)
    if args.deploy:
        from google.protobuf import text_format
        structure = pb.NetParameter()
        structure.CopyFrom(writer.net)
        for layer in list(structure.layer) + list(structure.layers):
            del layer.blobs[:]
        with open(args.deploy, "w") as f:
            f.write(text_format.MessageToString(structure))
        # the caffemodel then carries names and blobs only
        del writer.net.input[:]
        del writer.net.input_dim[:]
        for layer in list(writer.net.layer) + list(writer.net.layers):
            keep = list(layer.blobs)
            name = layer.name
            layer.Clear()
            layer.name = name
            layer.blobs.extend(keep)
    with open(args.out, "wb") as f:
        f.write(writer.net.SerializeToString())
    if args.reference:
        safetensors_np.save(args.reference, writer.reference)
    if args.expected:
        x = writer.rng.standard_normal((1, args.channels, 13, 17)).astype(np.float32)
        y = forward(x[0])[None].astype(np.float32)
        safetensors_np.save(args.expected, {"data": x, "expected": y})


if __name__ == "__main__":
    main()
