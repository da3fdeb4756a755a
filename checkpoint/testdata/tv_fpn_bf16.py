#!/usr/bin/python3
"""torch's own bf16 against its fp32 on a torchvision FPN Faster R-CNN, the
reference of resdet's TestBF16AccuracyTVFPN (torch 1.13, torchvision 0.14,
CPU).

Usage: /usr/bin/python3 tv_fpn_bf16.py MODEL.pth --arch v1|v2 --min-size 480
           --max-size 800 PHOTO...

Builds the model as gen_tv_fpn.py does, loads MODEL.pth, and runs each photo
(RGB, no EXIF orientation) in float32 and with the parts resdet runs in bf16
(backbone with the FPN, RPN head, box head) under
torch.autocast("cpu", dtype=torch.bfloat16), their outputs cast back to
float32 (torchvision's NMS has no bf16 kernel; proposals, RoIAlign's
sampling, the predictor and post-processing stay float32, as in resdet).
Prints one JSON object:
{"fp32": [per photo {"boxes": [[x1, y1, x2, y2], ...] (original pixels),
"scores": [...], "labels": [...]}], "bf16": [...]}.
"""
import argparse
import json
import os
import sys

import numpy as np
import torch
from PIL import Image

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from gen_tv_fpn import build  # noqa: E402


def to_float(v):
    if isinstance(v, torch.Tensor):
        return v.float()
    if isinstance(v, dict):
        return type(v)((k, to_float(x)) for k, x in v.items())
    if isinstance(v, (list, tuple)):
        return type(v)(to_float(x) for x in v)
    return v


class BF16(torch.nn.Module):
    """Runs m under bf16 autocast and returns float32."""

    def __init__(self, m):
        super().__init__()
        self.m = m

    def forward(self, *args):
        with torch.autocast("cpu", dtype=torch.bfloat16):
            return to_float(self.m(*args))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("model")
    ap.add_argument("photos", nargs="+")
    ap.add_argument("--arch", choices=("v1", "v2"), required=True)
    ap.add_argument("--min-size", type=int, default=480)
    ap.add_argument("--max-size", type=int, default=800)
    a = ap.parse_args()
    torch.set_num_threads(2)
    model = build(a.arch, a.min_size, a.max_size)
    model.load_state_dict(torch.load(a.model))
    out = {"fp32": [], "bf16": []}
    xs = [torch.from_numpy(np.asarray(Image.open(p).convert("RGB")).copy()).permute(2, 0, 1).float() / 255
          for p in a.photos]
    with torch.no_grad():
        for key in ("fp32", "bf16"):
            if key == "bf16":
                model.backbone = BF16(model.backbone)
                model.rpn.head = BF16(model.rpn.head)
                model.roi_heads.box_head = BF16(model.roi_heads.box_head)
            for x in xs:
                r = model([x])[0]
                out[key].append({"boxes": r["boxes"].tolist(), "scores": r["scores"].tolist(),
                                 "labels": r["labels"].tolist()})
    json.dump(out, sys.stdout)


if __name__ == "__main__":
    main()
