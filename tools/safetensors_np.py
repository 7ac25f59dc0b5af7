"""Minimal safetensors read/write with numpy (no extra packages), shared by
the fixture and conversion scripts. Tensors are stored as float32 unless
they are already int64/int32/uint8."""
import json
import struct

import numpy as np

_DTYPES = {np.dtype("float32"): "F32", np.dtype("float64"): "F64", np.dtype("int64"): "I64",
           np.dtype("int32"): "I32", np.dtype("uint8"): "U8"}
_NP = {v: k for k, v in _DTYPES.items()}


def save(path, tensors, metadata=None):
    header, blobs, offset = {}, [], 0
    if metadata:
        header["__metadata__"] = {str(k): str(v) for k, v in metadata.items()}
    for name in sorted(tensors):
        a = np.asarray(tensors[name])  # ascontiguousarray would turn 0-d into [1]
        if not a.flags.c_contiguous:
            a = a.copy(order="C")
        if a.dtype not in _DTYPES:
            a = a.astype(np.float32)
        raw = a.tobytes()
        header[name] = {"dtype": _DTYPES[a.dtype], "shape": list(a.shape), "data_offsets": [offset, offset + len(raw)]}
        blobs.append(raw)
        offset += len(raw)
    text = json.dumps(header).encode()
    text += b" " * ((8 - (8 + len(text)) % 8) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(text)))
        f.write(text)
        for raw in blobs:
            f.write(raw)


def load(path):
    """Returns (dict name -> np.ndarray, metadata dict)."""
    with open(path, "rb") as f:
        data = f.read()
    n = struct.unpack("<Q", data[:8])[0]
    header = json.loads(data[8:8 + n])
    meta = header.pop("__metadata__", {})
    out = {}
    for name, e in header.items():
        b, end = e["data_offsets"]
        out[name] = np.frombuffer(data[8 + n + b:8 + n + end], dtype=_NP[e["dtype"]]).reshape(e["shape"]).copy()
    return out, meta
