#!/usr/bin/python3
"""Reference Faster R-CNN C4 detector for resdet's parity tests (torch 1.13,
torchvision 0.14, CPU, float32).

Usage: /usr/bin/python3 gen_fasterrcnn.py OUTDIR [--depth 50] [--classes 5]
           [--image 200x150] [--min-size 300] [--max-size 500] [--seed 0]

Builds the construction of issue 6 with seeded random weights:

    r = torchvision.models.resnet<depth>(weights=None, norm_layer=FrozenBatchNorm2d)
    body = nn.Sequential(r.conv1, r.bn1, r.relu, r.maxpool, r.layer1, r.layer2, r.layer3)
    FasterRCNN(body, None, rpn_anchor_generator=AnchorGenerator(((128, 256, 512),),
               ((0.5, 1.0, 2.0),)), box_roi_pool=MultiScaleRoIAlign(["0"], 14, sampling_ratio=0),
               box_head=nn.Sequential(r.layer4, MeanHW()), box_predictor=FastRCNNPredictor(C5, K+1),
               min_size=..., max_size=..., rpn_post_nms_top_n_test=300)

Frozen BN statistics are calibrated on the image (each layer's running mean and
variance set from its input, then perturbed; gamma and beta random), so the
activations keep a sane scale through 100 layers. The RPN and predictor
weights are rescaled so that objectness logits spread (no ties at the top-N
cut) and some class scores pass 0.05.

Writes OUTDIR/model.pth (the state_dict), OUTDIR/image.png (the RGB input,
W x H), OUTDIR/input.f32 (the transformed, unpadded image [3, h, w] as raw
little-endian float32) and OUTDIR/ref.json:

    {"orig": [W, H], "resized": [w, h], "depth": D, "classes": K,
     "align": {"proposals": [[x1, y1, x2, y2], ...] (resized pixels),
               "boxes": [[...]] (original pixels), "scores": [...], "labels": [...]},
     "pool": {...} (the same weights with torchvision.ops.roi_pool)}
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
from torchvision.models.detection.faster_rcnn import FastRCNNPredictor
from torchvision.models.detection.rpn import AnchorGenerator
from torchvision.ops import FrozenBatchNorm2d, MultiScaleRoIAlign

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "internal", "testutil"))
import resdet_fixtures  # noqa: E402


class MeanHW(nn.Module):
    """The mean over H and W: [R, C, h, w] -> [R, C]."""

    def forward(self, x):
        return x.mean((2, 3))


class RoIPoolC4(nn.Module):
    """torchvision.ops.roi_pool on the single C4 map, 14x14, scale 1/16."""

    def forward(self, features, proposals, image_shapes):
        return torchvision.ops.roi_pool(features["0"], proposals, (14, 14), 1.0 / 16)


def build(depth, classes, min_size, max_size, norm_layer=FrozenBatchNorm2d, anchor_sizes=(128, 256, 512)):
    """The construction above; gen_train_parity.py also builds it with
    nn.BatchNorm2d (trainable BN) and other anchor sizes."""
    r = getattr(torchvision.models, "resnet%d" % depth)(weights=None, norm_layer=norm_layer)
    body = nn.Sequential(r.conv1, r.bn1, r.relu, r.maxpool, r.layer1, r.layer2, r.layer3)
    body.out_channels = 1024
    c5 = 2048 if depth >= 50 else 512
    if depth < 50:
        body.out_channels = 256
    return FasterRCNN(
        body, None,
        rpn_anchor_generator=AnchorGenerator(sizes=(tuple(anchor_sizes),), aspect_ratios=((0.5, 1.0, 2.0),)),
        box_roi_pool=MultiScaleRoIAlign(["0"], 14, sampling_ratio=0),
        box_head=nn.Sequential(r.layer4, MeanHW()),
        box_predictor=FastRCNNPredictor(c5, classes + 1),
        min_size=min_size, max_size=max_size, rpn_post_nms_top_n_test=300)


def make_image(g, w, h):
    """A smooth random RGB image with 6 flat rectangles, uint8 [H, W, 3]."""
    return resdet_fixtures.make_image(g, w, h, rects=6, min_side=8, noise=20)


def calibrate(model, x, g):
    """Sets every FrozenBatchNorm2d's statistics from its input on x."""
    resdet_fixtures.calibrate(model, [x], g, FrozenBatchNorm2d)


def rescale_heads(model, x, g):
    """Random RPN head and predictor weights with useful output spreads."""
    head = model.rpn.head
    with torch.no_grad():
        for conv, std in ((head.conv[0][0], 0.01), (head.cls_logits, 0.01), (head.bbox_pred, 0.01)):
            conv.weight.copy_(std * torch.randn(conv.weight.shape, generator=g))
            conv.bias.copy_(0.1 * torch.randn(conv.bias.shape, generator=g))
        images, _ = model.transform([x])
        feat = model.backbone(images.tensors)
        t = torch.relu(head.conv(feat))
        for conv, target in ((head.conv[0][0], None), (head.cls_logits, 2.0), (head.bbox_pred, 0.15)):
            if target is None:
                continue
            s = conv(t).std()
            conv.weight.mul_(target / s)
            conv.bias.mul_(target / s)
        # Predictor: scale so that the class logits spread by about 3.
        features = {"0": feat}
        props, _ = model.rpn(images, features)
        pooled = model.roi_heads.box_roi_pool(features, props, images.image_sizes)
        h = model.roi_heads.box_head(pooled)
        pred = model.roi_heads.box_predictor
        pred.cls_score.weight.copy_(torch.randn(pred.cls_score.weight.shape, generator=g))
        pred.cls_score.bias.zero_()
        s = pred.cls_score(h).std()
        pred.cls_score.weight.mul_(3.0 / s)
        pred.bbox_pred.weight.copy_(torch.randn(pred.bbox_pred.weight.shape, generator=g))
        pred.bbox_pred.bias.copy_(torch.randn(pred.bbox_pred.bias.shape, generator=g))
        s = pred.bbox_pred(h).std()
        pred.bbox_pred.weight.mul_(1.0 / s)
        pred.bbox_pred.bias.mul_(1.0 / s)


def run(model, x, check=True):
    """Runs the model in its stages (to get the proposals); with check, also
    as a whole, which must give the same detections."""
    with torch.no_grad():
        images, _ = model.transform([x])
        feat = model.backbone(images.tensors)
        features = {"0": feat}
        props, _ = model.rpn(images, features)
        dets, _ = model.roi_heads(features, props, images.image_sizes)
        dets = model.transform.postprocess(dets, images.image_sizes, [tuple(x.shape[-2:])])
        whole = model([x])[0] if check else None
    d = dets[0]
    for k in ("boxes", "scores", "labels"):
        assert whole is None or torch.equal(d[k], whole[k]), k
    return images, {
        "proposals": props[0].tolist(),
        "boxes": d["boxes"].tolist(),
        "scores": d["scores"].tolist(),
        "labels": d["labels"].tolist(),
    }


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("outdir")
    ap.add_argument("--depth", type=int, default=50)
    ap.add_argument("--classes", type=int, default=5)
    ap.add_argument("--image", default="200x150")
    ap.add_argument("--min-size", type=int, default=300)
    ap.add_argument("--max-size", type=int, default=500)
    ap.add_argument("--seed", type=int, default=0)
    a = ap.parse_args()
    torch.manual_seed(a.seed)
    g = torch.Generator().manual_seed(a.seed)
    w, h = map(int, a.image.split("x"))
    os.makedirs(a.outdir, exist_ok=True)

    img = make_image(g, w, h)
    Image.fromarray(img.numpy()).save(os.path.join(a.outdir, "image.png"))
    # Read it back as a user would: PIL -> float [0, 1], CHW.
    x = torch.from_numpy(__import__("numpy").array(Image.open(os.path.join(a.outdir, "image.png")).convert("RGB")))
    x = x.permute(2, 0, 1).float() / 255

    model = build(a.depth, a.classes, a.min_size, a.max_size).eval()
    calibrate(model, x, g)
    rescale_heads(model, x, g)
    torch.save(model.state_dict(), os.path.join(a.outdir, "model.pth"))

    images, align = run(model, x)
    rh, rw = images.image_sizes[0]
    inp = images.tensors[0, :, :rh, :rw].contiguous()
    inp.numpy().astype("<f4").tofile(os.path.join(a.outdir, "input.f32"))
    model.roi_heads.box_roi_pool = RoIPoolC4()
    _, pool = run(model, x, check=False)
    ref = {"orig": [w, h], "resized": [rw, rh], "depth": a.depth, "classes": a.classes,
           "min_size": a.min_size, "max_size": a.max_size, "align": align, "pool": pool}
    tmp = os.path.join(a.outdir, "ref.json.tmp")
    with open(tmp, "w") as f:
        json.dump(ref, f)
    os.replace(tmp, os.path.join(a.outdir, "ref.json"))
    print("align: %d proposals, %d detections; pool: %d detections" % (
        len(align["proposals"]), len(align["boxes"]), len(pool["boxes"])))


if __name__ == "__main__":
    main()
