"""Writes torch reference results for nn.UpsampleNearest and the 1x1/stride-2
max pooling of the feature pyramid's LastLevelMaxPool.

Usage: /usr/bin/python3 gen_resize_fixtures.py OUTDIR

Same format as gen_ops_fixtures.py: OUTDIR/<case>.json ({"tensor": shape})
and OUTDIR/<case>.<tensor>.bin (float32, little endian, row-major).
Gradients are those of the loss sum(out * w) for the stored weight tensor w.
"""
import os
import sys

import torch
import torch.nn.functional as F

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "internal", "testutil"))
import resdet_fixtures  # noqa: E402

torch.manual_seed(20261202)
torch.set_num_threads(1)
OUT = sys.argv[1]


def save(case, **tensors):
    resdet_fixtures.save_bins(OUT, case, **tensors)


# name: (input shape, output size). "float32" cases are sizes where torch's
# float32 index rule differs from the exact floor(dst*in/out).
UPSAMPLE = {
    "x2": ((2, 3, 4, 6), (8, 12)),
    "x2_fpn_odd": ((1, 4, 3, 4), (5, 7)),
    "same": ((1, 2, 5, 3), (5, 3)),
    "x3_mixed": ((1, 2, 3, 5), (9, 7)),
    "down": ((1, 3, 7, 9), (3, 4)),
    "one_pixel": ((2, 2, 1, 1), (4, 3)),
    "float32": ((1, 2, 3, 2), (123, 82)),
}

for case, (shape, size) in UPSAMPLE.items():
    x = torch.randn(*shape).requires_grad_(True)
    y = F.interpolate(x, size=size, mode="nearest")
    w = torch.randn_like(y)
    (y * w).sum().backward()
    save("upsample_" + case, x=x, y=y, w=w, dx=x.grad,
         size=torch.tensor(size, dtype=torch.float32))

# Detectron2's top-down step: scale_factor=2.0 instead of a size.
x = torch.randn(1, 3, 5, 7).requires_grad_(True)
y = F.interpolate(x, scale_factor=2.0, mode="nearest")
w = torch.randn_like(y)
(y * w).sum().backward()
save("upsample_scale2", x=x, y=y, w=w, dx=x.grad, size=torch.tensor(y.shape[-2:], dtype=torch.float32))

# LastLevelMaxPool: F.max_pool2d(p5, 1, 2, 0).
for case, shape in {"even": (2, 3, 4, 6), "odd": (1, 4, 5, 7), "one": (1, 2, 1, 1)}.items():
    x = torch.randn(*shape).requires_grad_(True)
    y = F.max_pool2d(x, 1, 2, 0)
    w = torch.randn_like(y)
    (y * w).sum().backward()
    save("maxpool1x1s2_" + case, x=x, y=y, w=w, dx=x.grad)
