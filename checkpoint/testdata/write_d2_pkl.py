#!/usr/bin/python3
"""Writes a safetensors file's tensors as a Detectron2 model-zoo .pkl (pickle + numpy only).

Usage: /usr/bin/python3 write_d2_pkl.py IN.safetensors OUT.pkl

OUT.pkl is what the zoo's model_final_*.pkl files are: a pickle (protocol 3) of
{"model": {name: numpy float32 array}, "__author__": "Detectron2 Model Zoo"},
names in the order of the safetensors header. The file is read back with
pickle.load(encoding="latin1") and compared with the input before the script ends.
"""
import json
import pickle
import struct
import sys

import numpy as np


def read_safetensors(path):
    with open(path, "rb") as f:
        raw = f.read()
    (n,) = struct.unpack("<Q", raw[:8])
    header = json.loads(raw[8 : 8 + n])
    data = raw[8 + n :]
    out = {}
    for name, info in header.items():
        if name == "__metadata__":
            continue
        if info["dtype"] != "F32":
            raise SystemExit(f"{path}: {name}: dtype {info['dtype']}, want F32")
        lo, hi = info["data_offsets"]
        out[name] = np.frombuffer(data[lo:hi], dtype="<f4").reshape(info["shape"]).copy()
    return out


def main():
    src, dst = sys.argv[1], sys.argv[2]
    model = read_safetensors(src)
    with open(dst, "wb") as f:
        pickle.dump({"model": model, "__author__": "Detectron2 Model Zoo"}, f, protocol=3)
    with open(dst, "rb") as f:
        back = pickle.load(f, encoding="latin1")
    assert back["__author__"] == "Detectron2 Model Zoo"
    assert sorted(back["model"]) == sorted(model)
    for name, a in model.items():
        b = back["model"][name]
        assert b.dtype == np.float32 and b.shape == a.shape and np.array_equal(a, b), name


if __name__ == "__main__":
    main()
