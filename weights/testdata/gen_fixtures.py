#!/usr/bin/python3
"""Writes the small checkpoint fixtures of the weights package tests.

Usage: /usr/bin/python3 gen_fixtures.py OUTDIR

Files:
  state.pth          torch.save zip format: an OrderedDict of tensors of several dtypes,
                     a transposed view, a slice with a storage offset, a scalar.
  state_legacy.pth   the same with _use_new_zipfile_serialization=False.
  wrapped.pth        {"state_dict": <the same>, "epoch": 3} (a training checkpoint).
  not_tensor.pth     a state dict with a Python int as a value (must be rejected).
  module.pth         a pickled nn.Module (unknown classes: must be rejected).
  state.safetensors  the same tensors written by the writer below (F32, F64, I64, F16).
  expected.json      name -> {"shape": [...], "data": [...]} (row-major, as float).
"""
import collections
import json
import os
import sys

import numpy as np
import torch

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "internal", "testutil"))
import resdet_fixtures  # noqa: E402


def tensors():
    g = torch.Generator().manual_seed(5)
    base = torch.randn(4, 6, generator=g)
    big = torch.randn(10, generator=g)
    d = collections.OrderedDict()
    d["conv1.weight"] = torch.randn(2, 3, 3, 3, generator=g)
    d["bn1.running_var"] = torch.rand(3, generator=g) + 0.5
    d["transposed"] = base.t()  # non-contiguous: strides (1, 6)
    d["offset_slice"] = big[3:7]  # storage offset 3
    d["double"] = torch.randn(2, 2, generator=g, dtype=torch.float64)
    d["half"] = torch.randn(5, generator=g).half()
    d["bn1.num_batches_tracked"] = torch.tensor(7, dtype=torch.int64)
    return d


def main():
    out = sys.argv[1]
    os.makedirs(out, exist_ok=True)
    d = tensors()
    torch.save(d, os.path.join(out, "state.pth"))
    torch.save(d, os.path.join(out, "state_legacy.pth"), _use_new_zipfile_serialization=False)
    torch.save({"state_dict": d, "epoch": 3}, os.path.join(out, "wrapped.pth"))
    bad = collections.OrderedDict(d)
    bad["epoch"] = 3
    torch.save(bad, os.path.join(out, "not_tensor.pth"))
    torch.save(torch.nn.Linear(2, 2), os.path.join(out, "module.pth"))
    resdet_fixtures.write_safetensors(os.path.join(out, "state.safetensors"), d, metadata={"format": "pt"})
    exp = {k: {"shape": list(t.shape), "data": t.double().flatten().tolist()} for k, t in d.items()}
    with open(os.path.join(out, "expected.json"), "w") as f:
        json.dump(exp, f)


if __name__ == "__main__":
    main()
