#!/usr/bin/env python3
"""One Faster R-CNN training iteration in torchvision, the torch side of
detection's training benchmarks. Cases:

  r101_c4   BenchmarkTrainStepR101: the issue-6 R101-C4 construction (frozen
            BN, stem and layer1 frozen as torchvision's trainable_layers=3),
            20 classes, one 600x800 image with three boxes.
  r50_fpn   BenchmarkTrainStepFPN: fasterrcnn_resnet50_fpn v1 as
            torchvision builds it for ImageNet-initialised training (frozen
            BN, trainable_backbone_layers=3), 91 classes, one 800x1333 image
            (the transform's size already) with three boxes.

Both: torchvision's sampling defaults (256 anchors, 512 RoIs per image),
forward + backward + SGD step (momentum 0.9, weight decay 1e-4, lr 1e-4), one
untimed warm-up step, then --iters timed ones, --threads threads. Prints the
losses of the first step, a summary line, and last a JSON line (s_per_iter,
cpu_s_per_iter: user+system of all threads, peak_rss_mb: ru_maxrss) that
scripts/bench_train.py reads.

Run with /usr/bin/python3 (Debian's torch):
  scripts/bench_train_torchvision.py [r101_c4|r50_fpn] [--iters N] [--threads T]
"""
import argparse
import json
import resource
import sys
import time

import torch
import torchvision
from torchvision.models.detection import FasterRCNN
from torchvision.models.detection.backbone_utils import _resnet_fpn_extractor
from torchvision.models.detection.faster_rcnn import FastRCNNPredictor
from torchvision.models.detection.rpn import AnchorGenerator
from torchvision.ops import MultiScaleRoIAlign, FrozenBatchNorm2d


class Res5Head(torch.nn.Module):
    def __init__(self, layer4):
        super().__init__()
        self.layer4 = layer4

    def forward(self, x):
        return self.layer4(x).mean(dim=(2, 3))


def scale_last_bn(r):
    # Random weights with identity BN make activations grow ~sqrt(2) per
    # block (1e5 at C4); a small last-BN scale keeps them O(1), as the Go
    # benchmarks do, so both compute finite losses.
    for m in r.modules():
        if isinstance(m, torchvision.models.resnet.Bottleneck):
            m.bn3.weight.fill_(0.1)


def r101_c4(width=800):
    r = torchvision.models.resnet101(weights=None, norm_layer=FrozenBatchNorm2d)
    scale_last_bn(r)
    body = torch.nn.Sequential(r.conv1, r.bn1, r.relu, r.maxpool, r.layer1, r.layer2, r.layer3)
    for p in list(r.conv1.parameters()) + list(r.layer1.parameters()):
        p.requires_grad_(False)
    body.out_channels = 1024
    model = FasterRCNN(
        body, None,
        rpn_anchor_generator=AnchorGenerator(sizes=((128, 256, 512),), aspect_ratios=((0.5, 1.0, 2.0),)),
        box_roi_pool=MultiScaleRoIAlign(["0"], 14, sampling_ratio=0),
        box_head=Res5Head(r.layer4), box_predictor=FastRCNNPredictor(2048, 21),
        min_size=600, max_size=1000)
    img = torch.randn(3, 600, width)
    tgt = {"boxes": torch.tensor([[50., 60., 300., 400.], [400., 100., 700., 300.], [200., 350., 450., 580.]]),
           "labels": torch.tensor([3, 7, 12])}
    return model, img, tgt, "R101-C4 600x%d" % width


def r50_fpn():
    # fasterrcnn_resnet50_fpn(weights=None, weights_backbone=None) would
    # train BN and all layers; this is what it builds with ImageNet weights.
    r = torchvision.models.resnet50(weights=None, norm_layer=FrozenBatchNorm2d)
    scale_last_bn(r)
    model = FasterRCNN(_resnet_fpn_extractor(r, 3), num_classes=91)
    img = torch.randn(3, 800, 1333)
    tgt = {"boxes": torch.tensor([[80., 60., 500., 520.], [600., 100., 1200., 400.], [300., 450., 700., 780.]]),
           "labels": torch.tensor([1, 18, 62])}
    return model, img, tgt, "R50-FPN 800x1333"


CASES = {"r101_c4": r101_c4, "r101_c4_1000": lambda: r101_c4(1000), "r50_fpn": r50_fpn}


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("case", nargs="?", default="r101_c4", choices=sorted(CASES))
    ap.add_argument("--iters", type=int, default=3)
    ap.add_argument("--threads", type=int, default=2)
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    torch.manual_seed(0)
    model, img, tgt, what = CASES[a.case]()
    model.train()
    params = [p for p in model.parameters() if p.requires_grad]
    opt = torch.optim.SGD(params, lr=1e-4, momentum=0.9, weight_decay=1e-4)

    def step():
        losses = model([img], [tgt])
        loss = sum(losses.values())
        opt.zero_grad()
        loss.backward()
        opt.step()
        return losses

    losses = step()  # warm-up
    if not all(torch.isfinite(v) for v in losses.values()):
        sys.exit(f"losses not finite: {losses}")
    print("losses of the first step:", {k: round(v.item(), 4) for k, v in losses.items()})
    t0, c0 = time.perf_counter(), time.process_time()
    for _ in range(a.iters):
        step()
    wall = (time.perf_counter() - t0) / a.iters
    cpu = (time.process_time() - c0) / a.iters
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"torchvision {what} train step, {a.threads} threads: {wall:.2f} s/iter wall, "
          f"{cpu:.2f} s/iter CPU, peak RSS {peak:.0f} MB")
    print(json.dumps({"s_per_iter": wall, "cpu_s_per_iter": cpu, "peak_rss_mb": peak}))


if __name__ == "__main__":
    main()
