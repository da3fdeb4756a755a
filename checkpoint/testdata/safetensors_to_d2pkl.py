#!/usr/bin/python3
"""Writes the tensors of a float32 safetensors file as a Detectron2 model-zoo
file: a pickle (protocol 3, as Detectron2's zoo files) of {"model": {name:
numpy float32 array}, "__author__": "Detectron2 Model Zoo"}, in the order of
the safetensors header. The names are kept as they are (give Detectron2's).

Usage: /usr/bin/python3 safetensors_to_d2pkl.py IN.safetensors OUT.pkl
"""
import json
import pickle
import struct
import sys

import numpy as np

src, dst = sys.argv[1], sys.argv[2]
with open(src, "rb") as f:
    n = struct.unpack("<Q", f.read(8))[0]
    header = json.loads(f.read(n))
    data = f.read()
model = {}
for name, e in header.items():
    if name == "__metadata__":
        continue
    if e["dtype"] != "F32":
        sys.exit("%s: dtype %s, want F32" % (name, e["dtype"]))
    a, b = e["data_offsets"]
    model[name] = np.frombuffer(data[a:b], dtype="<f4").reshape(e["shape"]).copy()
with open(dst, "wb") as f:
    pickle.dump({"model": model, "__author__": "Detectron2 Model Zoo"}, f, protocol=3)
