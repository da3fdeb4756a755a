#!/usr/bin/env python3
"""One Faster R-CNN R101-C4 training iteration in torchvision, the side of
detection's BenchmarkTrainStepR101: the issue-6 construction (frozen BN,
stem and layer1 frozen as torchvision's trainable_layers=3), 20 classes,
one 600x800 image with three boxes, forward + backward + SGD step, 2
threads. Prints the mean time per iteration and the peak RSS.

Run with /usr/bin/python3 (Debian's torch): scripts/bench_train_torchvision.py [iters]
"""
import resource
import sys
import time

import torch
import torchvision
from torchvision.models.detection import FasterRCNN
from torchvision.models.detection.faster_rcnn import FastRCNNPredictor
from torchvision.models.detection.rpn import AnchorGenerator
from torchvision.ops import MultiScaleRoIAlign, FrozenBatchNorm2d


class Res5Head(torch.nn.Module):
    def __init__(self, layer4):
        super().__init__()
        self.layer4 = layer4

    def forward(self, x):
        return self.layer4(x).mean(dim=(2, 3))


def main():
    iters = int(sys.argv[1]) if len(sys.argv) > 1 else 3
    torch.set_num_threads(2)
    torch.manual_seed(0)
    r = torchvision.models.resnet101(weights=None, norm_layer=FrozenBatchNorm2d)
    # Random weights with identity BN make activations grow ~sqrt(2) per
    # block (1e5 at C4); a small last-BN scale keeps them O(1), as the Go
    # benchmark does, so both compute finite losses.
    for m in r.modules():
        if isinstance(m, torchvision.models.resnet.Bottleneck):
            m.bn3.weight.fill_(0.1)
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
    model.train()
    params = [p for p in model.parameters() if p.requires_grad]
    opt = torch.optim.SGD(params, lr=1e-4, momentum=0.9, weight_decay=1e-4)
    img = torch.randn(3, 600, 800)
    tgt = {"boxes": torch.tensor([[50., 60., 300., 400.], [400., 100., 700., 300.], [200., 350., 450., 580.]]),
           "labels": torch.tensor([3, 7, 12])}

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
    for _ in range(iters):
        step()
    wall = (time.perf_counter() - t0) / iters
    cpu = (time.process_time() - c0) / iters
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"torchvision R101-C4 train step, 600x800, 2 threads: {wall:.2f} s/iter wall, {cpu:.2f} s/iter CPU, peak RSS {peak:.0f} MB")


if __name__ == "__main__":
    main()
