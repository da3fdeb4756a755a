#!/usr/bin/env python3
"""The demo's training recipe in torchvision: the reference side of
scripts/demo.sh. It trains torchvision's FasterRCNN built as resdet builds
r18-c4 (ResNet-18 conv1..layer3 as the trunk, layer4 + spatial mean as the
box head, RoIAlign sampling_ratio 0, trainable BatchNorm, random weights)
on the trainval split of a synthetic dataset (train-det synth) with the
demo's flags, then writes VOC comp4 result files for the test split, so
that `eval-det --gt DATA/VOC2007 --dets OUT --classes ...` scores it as
train-det eval scores resdet.

Run with /usr/bin/python3 (Debian's torch):
  scripts/train_demo_torchvision.py DATA OUT [--iters 500] [--lr 0.04] ...
"""
import argparse
import math
import os
import random
import time
import xml.etree.ElementTree as ET

import torch
import torchvision
from PIL import Image
from torchvision.models.detection import FasterRCNN
from torchvision.models.detection.faster_rcnn import FastRCNNPredictor
from torchvision.models.detection.rpn import AnchorGenerator
from torchvision.ops import MultiScaleRoIAlign
import torchvision.transforms.functional as TF

from bench_train_torchvision import Res5Head  # layer4 + spatial mean, resdet's box head

CLASSES = ["circle", "square", "triangle", "ellipse", "star", "cross"]


def read_split(voc, split):
    with open(os.path.join(voc, "ImageSets", "Main", split + ".txt")) as f:
        return [l.strip() for l in f if l.strip()]


def read_ann(voc, name):
    root = ET.parse(os.path.join(voc, "Annotations", name + ".xml")).getroot()
    boxes, labels = [], []
    for o in root.findall("object"):
        if int(o.findtext("difficult", "0")):
            continue
        b = o.find("bndbox")
        boxes.append([float(b.findtext("xmin")) - 1, float(b.findtext("ymin")) - 1,
                      float(b.findtext("xmax")), float(b.findtext("ymax"))])
        labels.append(CLASSES.index(o.findtext("name")) + 1)
    return torch.tensor(boxes, dtype=torch.float32).reshape(-1, 4), torch.tensor(labels, dtype=torch.int64)


def build(args):
    r = torchvision.models.resnet18(weights=None)
    body = torch.nn.Sequential(r.conv1, r.bn1, r.relu, r.maxpool, r.layer1, r.layer2, r.layer3)
    body.out_channels = 256
    sizes = tuple(float(s) for s in args.anchor_sizes.split(","))
    return FasterRCNN(
        body, None,
        rpn_anchor_generator=AnchorGenerator(sizes=(sizes,), aspect_ratios=((0.5, 1.0, 2.0),)),
        box_roi_pool=MultiScaleRoIAlign(["0"], args.roi_size, sampling_ratio=0),
        box_head=Res5Head(r.layer4), box_predictor=FastRCNNPredictor(512, len(CLASSES) + 1),
        min_size=args.min_size, max_size=args.max_size, box_batch_size_per_image=args.rois_per_image,
        rpn_post_nms_top_n_test=args.test_proposals, size_divisible=args.pad_multiple)


def main():
    p = argparse.ArgumentParser()
    p.add_argument("data")
    p.add_argument("out")
    p.add_argument("--iters", type=int, default=1200)
    p.add_argument("--lr", type=float, default=0.02)
    p.add_argument("--warmup", type=int, default=50)
    p.add_argument("--batch", type=int, default=2)
    p.add_argument("--weight-decay", type=float, default=1e-4)
    p.add_argument("--min-size", type=int, default=192)
    p.add_argument("--max-size", type=int, default=320)
    p.add_argument("--anchor-sizes", default="24,48,96,192")
    p.add_argument("--rois-per-image", type=int, default=16)
    p.add_argument("--roi-size", type=int, default=4)
    p.add_argument("--test-proposals", type=int, default=100)
    p.add_argument("--pad-multiple", type=int, default=64)
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--threads", type=int, default=2)
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    rng = random.Random(args.seed)
    voc = os.path.join(args.data, "VOC2007")
    train = [(n, *read_ann(voc, n)) for n in read_split(voc, "trainval")]
    train = [t for t in train if len(t[1])]
    model = build(args)
    model.train()
    params = [q for q in model.parameters() if q.requires_grad]
    opt = torch.optim.SGD(params, lr=args.lr, momentum=0.9, weight_decay=args.weight_decay)
    steps = int(args.iters * 0.8)

    def lr_at(it):
        f = 0.1 if it >= steps else 1.0
        if it < args.warmup:
            a = it / args.warmup
            f *= 0.001 * (1 - a) + a
        return args.lr * f

    order = []
    t0 = time.time()
    for it in range(args.iters):
        imgs, tgts = [], []
        for _ in range(args.batch):
            if not order:
                order = list(range(len(train)))
                rng.shuffle(order)
            name, boxes, labels = train[order.pop()]
            img = TF.to_tensor(Image.open(os.path.join(voc, "JPEGImages", name + ".jpg")).convert("RGB"))
            if rng.random() < 0.5:
                img = img.flip(-1)
                w = img.shape[-1]
                boxes = torch.stack([w - boxes[:, 2], boxes[:, 1], w - boxes[:, 0], boxes[:, 3]], 1)
            imgs.append(img)
            tgts.append({"boxes": boxes, "labels": labels})
        for g in opt.param_groups:
            g["lr"] = lr_at(it)
        losses = model(imgs, tgts)
        loss = sum(losses.values())
        opt.zero_grad()
        loss.backward()
        opt.step()
        if (it + 1) % 25 == 0:
            parts = " ".join(f"{k}={v.item():.3f}" for k, v in losses.items())
            print(f"iter {it + 1} loss {loss.item():.3f} {parts} lr {lr_at(it):.4g} {time.time() - t0:.0f}s", flush=True)
    model.eval()
    os.makedirs(args.out, exist_ok=True)
    files = {c: open(os.path.join(args.out, f"comp4_det_test_{c}.txt"), "w") for c in CLASSES}
    with torch.no_grad():
        for name in read_split(voc, "test"):
            img = TF.to_tensor(Image.open(os.path.join(voc, "JPEGImages", name + ".jpg")).convert("RGB"))
            d = model([img])[0]
            for b, l, s in zip(d["boxes"].tolist(), d["labels"].tolist(), d["scores"].tolist()):
                files[CLASSES[l - 1]].write(f"{name} {s:.6f} {b[0] + 1:.2f} {b[1] + 1:.2f} {b[2]:.2f} {b[3]:.2f}\n")
    for f in files.values():
        f.close()
    print(f"trained {args.iters} iterations in {time.time() - t0:.0f}s; results in {args.out}")


if __name__ == "__main__":
    main()
