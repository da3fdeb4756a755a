#!/usr/bin/python3
"""Reads a Detectron2 .pkl weight file with pickle + numpy and writes what it holds.

Usage: /usr/bin/python3 dump_pickle.py FILE.pkl OUTDIR

The file is classified as Detectron2's DetectionCheckpointer._load_file does: "model" and
"__author__" => model zoo; otherwise Caffe2, under "blobs" if present, *_momentum dropped.
OUTDIR/manifest.json: {"layout" ("zoo", "c2flat", "c2blobs"), "author", "heuristics",
"tensors": [{"name", "shape", "offset"}]} in file order; OUTDIR/values.bin holds every tensor
as float32 little-endian, row-major, starting at its offset (counted in values).
"""
import json
import os
import pickle
import sys

import numpy as np


def main():
    path, out = sys.argv[1], sys.argv[2]
    os.makedirs(out, exist_ok=True)
    with open(path, "rb") as f:
        data = pickle.load(f, encoding="latin1")
    author, heuristics = "", True
    if "model" in data and "__author__" in data:
        layout, tensors = "zoo", data["model"]
        author = data["__author__"] if isinstance(data["__author__"], str) else ""
        heuristics = bool(data.get("matching_heuristics", False))
    elif "blobs" in data:
        layout, tensors = "c2blobs", data["blobs"]
    else:
        layout, tensors = "c2flat", data
    if layout != "zoo":
        tensors = {k: v for k, v in tensors.items() if not k.endswith("_momentum")}
    entries, offset = [], 0
    with open(os.path.join(out, "values.bin"), "wb") as f:
        for k, v in tensors.items():
            a = np.ascontiguousarray(np.asarray(v).astype("<f4"))
            entries.append({"name": k, "shape": list(a.shape), "offset": offset})
            f.write(a.tobytes())
            offset += a.size
    with open(os.path.join(out, "manifest.json"), "w") as f:
        json.dump({"layout": layout, "author": author, "heuristics": heuristics,
                   "tensors": entries}, f)


if __name__ == "__main__":
    main()
