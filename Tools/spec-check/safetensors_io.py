"""A minimal safetensors reader / writer (little-endian, no dependencies beyond NumPy)."""

import json
import struct

import numpy as np

DTYPES = {"BF16": (np.uint16, 2), "F16": (np.uint16, 2), "F32": (np.float32, 4),
          "I32": (np.int32, 4), "I64": (np.int64, 8), "U8": (np.uint8, 1),
          "F8_E4M3": (np.uint8, 1), "F8_E8M0": (np.uint8, 1), "U16": (np.uint16, 2)}


def write_safetensors(path, tensors, metadata=None):
    """tensors: {name: (dtype_string, ndarray)}"""
    header = {}
    blobs = []
    pos = 0
    for name, (dt, arr) in tensors.items():
        npdt = DTYPES[dt][0]
        b = np.ascontiguousarray(np.asarray(arr).astype(npdt).astype(np.dtype(npdt).newbyteorder("<"))).tobytes()
        header[name] = {"dtype": dt, "shape": list(np.asarray(arr).shape), "data_offsets": [pos, pos + len(b)]}
        blobs.append(b)
        pos += len(b)
    if metadata:
        header["__metadata__"] = metadata
    h = json.dumps(header, separators=(",", ":")).encode()
    h += b" " * ((8 - len(h) % 8) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(h)))
        f.write(h)
        for b in blobs:
            f.write(b)


def read_safetensors(path):
    """-> ({name: (dtype_string, shape, raw bytes)}, metadata)"""
    with open(path, "rb") as f:
        data = f.read()
    (n,) = struct.unpack("<Q", data[:8])
    header = json.loads(data[8:8 + n])
    meta = header.pop("__metadata__", None)
    base = 8 + n
    out = {}
    for name, info in header.items():
        a, b = info["data_offsets"]
        out[name] = (info["dtype"], tuple(info["shape"]), data[base + a:base + b])
    return out, meta


def as_array(entry):
    dt, shape, raw = entry
    return np.frombuffer(raw, dtype=np.dtype(DTYPES[dt][0]).newbyteorder("<")).reshape(shape)
