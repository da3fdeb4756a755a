#!/usr/bin/python3
"""Reference torchvision FPN Faster R-CNNs for resdet's parity tests (torch
1.13, torchvision 0.14, CPU, float32).

Usage: /usr/bin/python3 gen_tv_fpn.py OUTDIR --arch v1|v2 [--min-size 480]
           [--max-size 800] [--seed 0] [--calib-photos A.jpg,B.png,...]

Builds fasterrcnn_resnet50_fpn (v1) or fasterrcnn_resnet50_fpn_v2 (v2) with 91
classes and seeded random weights:

  v1: what fasterrcnn_resnet50_fpn(weights=COCO_V1) builds before loading its
      file: resnet50(norm_layer=FrozenBatchNorm2d), _resnet_fpn_extractor(.., 3),
      FasterRCNN(backbone, 91), then overwrite_eps(model, 0.0) (FrozenBN eps 0);
  v2: fasterrcnn_resnet50_fpn_v2(weights=None, weights_backbone=None) in eval
      mode (BatchNorm2d with running statistics, eps 1e-5).

Calibration (on the three images as one batch, or on the photos --calib-photos
names, read as RGB with EXIF orientation ignored) so that every stage produces
varied output:
every batch norm's statistics come from its input (then perturbed; gamma and
beta random); the RPN convolutions are redrawn and the objectness and delta
layers scaled to output std 2.0 and 0.15 over all levels; the predictor's
classifier is centred per class and scaled to logits of std 2 (scores spread
over (0.05, 1), tens of detections per image) and its deltas to std 0.5.

Writes OUTDIR/model.pth (the state_dict; v1 also OUTDIR/model_legacy.pth with
the pre-0.13 names backbone.fpn.{inner,layer}_blocks.{i}.{weight,bias} and
rpn.head.conv.{weight,bias}), the images img0.png (640x480 -> 469x352 at the
default 352/576, padded 352x480: both sides/32 odd, so P6's anchor strides are
352//6 = 58 and 480//8 = 60), img1.jpg (420x300 -> 492x352) and img2.png
(700x350 -> 576x288, 288/32 odd), and OUTDIR/ref.json:

    {"min_size": .., "max_size": .., "images": [{"file": "img0.png",
      "resized": [w, h], "boxes": [[x1, y1, x2, y2], ...] (original pixels),
      "scores": [...], "labels": [...]}, ...],
     "proposals": [[x1, y1, x2, y2], ...] (first image, resized pixels),
     "proposal_scores": [...]}
"""
import argparse
import json
import os
import sys

import torch
import torch.nn as nn
import torchvision
from PIL import Image
from torchvision.models.detection import FasterRCNN
from torchvision.models.detection.backbone_utils import _resnet_fpn_extractor
from torchvision.models.detection.faster_rcnn import fasterrcnn_resnet50_fpn_v2
from torchvision.ops import FrozenBatchNorm2d
from torchvision.models.detection._utils import overwrite_eps

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "internal", "testutil"))
import resdet_fixtures  # noqa: E402

IMAGES = (("img0.png", 640, 480), ("img1.jpg", 420, 300), ("img2.png", 700, 350))


def build(arch, min_size, max_size):
    if arch == "v1":
        r = torchvision.models.resnet50(weights=None, norm_layer=FrozenBatchNorm2d)
        backbone = _resnet_fpn_extractor(r, 3)
        model = FasterRCNN(backbone, num_classes=91, min_size=min_size, max_size=max_size)
        overwrite_eps(model, 0.0)
    else:
        model = fasterrcnn_resnet50_fpn_v2(weights=None, weights_backbone=None, min_size=min_size, max_size=max_size)
    return model.eval()


def make_image(g, w, h):
    """A smooth random RGB image with 10 flat rectangles, uint8 [H, W, 3]."""
    return resdet_fixtures.make_image(g, w, h, rects=10, min_side=16, noise=12)


def calibrate(model, xs, g):
    """Sets every batch norm's statistics from its input on the images xs."""
    resdet_fixtures.calibrate(model, xs, g, (FrozenBatchNorm2d, nn.BatchNorm2d))


def rescale_heads(model, xs, g):
    head = model.rpn.head
    with torch.no_grad():
        for m in head.conv.modules():
            if isinstance(m, nn.Conv2d):
                m.weight.copy_(torch.randn(m.weight.shape, generator=g) * (2.0 / (9 * m.in_channels)) ** 0.5)
                m.bias.copy_(0.1 * torch.randn(m.bias.shape, generator=g))
        images, _ = model.transform(xs)
        feats = model.backbone(images.tensors)
        ts = [head.conv(f) for f in feats.values()]
        for conv, target in ((head.cls_logits, 2.0), (head.bbox_pred, 0.15)):
            conv.weight.copy_(0.01 * torch.randn(conv.weight.shape, generator=g))
            conv.bias.copy_(0.1 * torch.randn(conv.bias.shape, generator=g))
            s = torch.cat([conv(t).flatten() for t in ts]).std()
            conv.weight.mul_(target / s)
            conv.bias.mul_(target / s)
        props, _ = model.rpn(images, feats)
        pooled = model.roi_heads.box_roi_pool(feats, props, images.image_sizes)
        h = model.roi_heads.box_head(pooled)
        pred = model.roi_heads.box_predictor
        # Class logits: centred per class over the proposals and scaled to
        # std 2, so that the winning class and its score vary by proposal.
        pred.cls_score.weight.copy_(torch.randn(pred.cls_score.weight.shape, generator=g))
        pred.cls_score.bias.zero_()
        z = pred.cls_score(h)
        mu = z.mean(0)
        s = (z - mu).std()
        pred.cls_score.weight.mul_(2.0 / s)
        pred.cls_score.bias.copy_(-mu * 2.0 / s + 0.5 * torch.randn(mu.shape, generator=g))
        pred.bbox_pred.weight.copy_(torch.randn(pred.bbox_pred.weight.shape, generator=g))
        pred.bbox_pred.bias.copy_(torch.randn(pred.bbox_pred.bias.shape, generator=g))
        s = pred.bbox_pred(h).std()
        pred.bbox_pred.weight.mul_(0.5 / s)
        pred.bbox_pred.bias.mul_(0.5 / s)


def legacy(state):
    """The names torchvision < 0.13 wrote for v1."""
    out = {}
    for k, v in state.items():
        parts = k.split(".")
        if k.startswith("backbone.fpn.") and len(parts) == 6 and parts[4] == "0":
            k = ".".join(parts[:4] + parts[5:])
        elif k.startswith("rpn.head.conv.0.0."):
            k = "rpn.head.conv." + parts[-1]
        out[k] = v
    return out


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("outdir")
    ap.add_argument("--arch", choices=("v1", "v2"), required=True)
    ap.add_argument("--min-size", type=int, default=352)
    ap.add_argument("--max-size", type=int, default=576)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--calib-photos", default="", help="comma-separated photos to calibrate on instead of the images")
    a = ap.parse_args()
    torch.manual_seed(a.seed)
    torch.set_num_threads(2)
    g = torch.Generator().manual_seed(a.seed)
    model = build(a.arch, a.min_size, a.max_size)
    xs = []
    for name, w, h in IMAGES:
        img = make_image(g, w, h)
        path = os.path.join(a.outdir, name)
        if name.endswith(".jpg"):
            Image.fromarray(img.numpy()).save(path, quality=95)
        else:
            Image.fromarray(img.numpy()).save(path)
        # Read back as the test reads it (the JPEG's decoded pixels).
        back = torch.from_numpy(__import__("numpy").asarray(Image.open(path).convert("RGB")).copy())
        xs.append(back.permute(2, 0, 1).float() / 255)
    calib = xs
    if a.calib_photos:
        np = __import__("numpy")
        calib = [torch.from_numpy(np.asarray(Image.open(p).convert("RGB")).copy()).permute(2, 0, 1).float() / 255
                 for p in a.calib_photos.split(",")]
    calibrate(model, calib, g)
    rescale_heads(model, calib, g)
    state = model.state_dict()
    torch.save(state, os.path.join(a.outdir, "model.pth"))
    if a.arch == "v1":
        torch.save(legacy(state), os.path.join(a.outdir, "model_legacy.pth"))
    ref = {"min_size": a.min_size, "max_size": a.max_size, "images": []}
    with torch.no_grad():
        for (name, _, _), x in zip(IMAGES, xs):
            images, _ = model.transform([x])
            h, w = images.image_sizes[0]
            out = model([x])[0]
            ref["images"].append({"file": name, "resized": [w, h], "boxes": out["boxes"].tolist(),
                                  "scores": out["scores"].tolist(), "labels": out["labels"].tolist()})
            if len(ref["images"]) == 1:
                feats = model.backbone(images.tensors)
                model.rpn.training = False
                props, _ = model.rpn(images, feats)
                ref["proposals"] = props[0].tolist()
    with open(os.path.join(a.outdir, "ref.json"), "w") as f:
        json.dump(ref, f)
    print(a.arch, "detections per image:", [len(i["scores"]) for i in ref["images"]],
          "score range:", [(round(min(i["scores"]), 3), round(max(i["scores"]), 3)) for i in ref["images"] if i["scores"]])


if __name__ == "__main__":
    main()
