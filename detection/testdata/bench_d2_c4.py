#!/usr/bin/python3
"""Times Detectron2's R101-C4 Faster R-CNN (inference) built from plain torch and
torchvision modules, for comparison with BenchmarkDetectD2C4
(detection/detectron2_bench_test.go). Random weights; the construction follows
Detectron2's (PRETRAINED.md section 2): MSRA ResNet with the stride on the 1x1,
FrozenBN folded into eval-mode BatchNorm, no padding, RPN head 1024 ch with 15
anchors (32..512 x 0.5, 1, 2, size-major, unrounded, stride 16), top 6000 by
logit, clip, keep w > 0 and h > 0, NMS 0.7, 1000 kept, ROIAlignV2 14x14
(aligned, sampling 0), res5 + mean, cls_score 81 (background last) and
bbox_pred 320, softmax, score > 0.05, per-class NMS 0.5, top 100.

--bf16 runs the network under torch.autocast("cpu", dtype=torch.bfloat16)
(convolutions and linear layers in bf16; proposals, RoIAlign's output
precision aside, softmax and box decoding are cast back to float32 here), as
BenchmarkDetectD2C4's bf16 case runs ours; --channels-last converts the model
and the input to torch.channels_last first (oneDNN then picks its brgconv
kernels, on AMX CPUs the AMX ones, instead of jit_bf16 on nChw16c). Run with
ONEDNN_VERBOSE=1 to see the kernels.

Usage: /usr/bin/python3 bench_d2_c4.py [--height 800] [--width 1333] [--iters 1] [--threads 2]
           [--bf16] [--channels-last]
One warm-up run is not timed; it also counts the convolution and linear FLOPs
(scripts/torch_flops.py). Prints one JSON line: ms per image (mean, min), CPU
seconds per image (user+system, all threads), the process's peak RSS in MiB
(ru_maxrss), the FLOPs of one image, GFLOP/s over the mean wall time, the
detection count and the precision.
"""
import argparse
import json
import math
import os
import resource
import sys
import time

import torch
import torchvision
from torch import nn
from torchvision.ops import batched_nms, nms, roi_align

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "scripts"))
from torch_flops import count_flops  # noqa: E402


def msra_resnet101():
    r = torchvision.models.resnet101()
    for layer in (r.layer2, r.layer3, r.layer4):
        b = layer[0]
        b.conv1.stride, b.conv2.stride = (2, 2), (1, 1)  # STRIDE_IN_1X1
    return r.eval()


def cell_anchors():
    out = []
    for s in (32, 64, 128, 256, 512):
        for r in (0.5, 1.0, 2.0):
            w = math.sqrt(s * s / r)
            h = r * w
            out.append([-w / 2, -h / 2, w / 2, h / 2])
    return torch.tensor(out, dtype=torch.float32)


def decode(deltas, boxes, wts, clamp=math.log(1000.0 / 16)):
    wx, wy, ww, wh = wts
    widths, heights = boxes[:, 2] - boxes[:, 0], boxes[:, 3] - boxes[:, 1]
    cx, cy = boxes[:, 0] + 0.5 * widths, boxes[:, 1] + 0.5 * heights
    dx, dy = deltas[:, 0::4] / wx, deltas[:, 1::4] / wy
    dw, dh = (deltas[:, 2::4] / ww).clamp(max=clamp), (deltas[:, 3::4] / wh).clamp(max=clamp)
    pcx, pcy = dx * widths[:, None] + cx[:, None], dy * heights[:, None] + cy[:, None]
    pw, ph = torch.exp(dw) * widths[:, None], torch.exp(dh) * heights[:, None]
    out = torch.stack([pcx - 0.5 * pw, pcy - 0.5 * ph, pcx + 0.5 * pw, pcy + 0.5 * ph], dim=2)
    return out.reshape(deltas.shape)


class D2C4(nn.Module):
    def __init__(self, classes=80):
        super().__init__()
        r = msra_resnet101()
        self.trunk = nn.Sequential(r.conv1, r.bn1, r.relu, r.maxpool, r.layer1, r.layer2, r.layer3)
        self.res5 = r.layer4
        self.rpn_conv = nn.Conv2d(1024, 1024, 3, padding=1)
        self.logits = nn.Conv2d(1024, 15, 1)
        self.deltas = nn.Conv2d(1024, 60, 1)
        self.cls = nn.Linear(2048, classes + 1)
        self.bbox = nn.Linear(2048, 4 * classes)
        for m in (self.rpn_conv, self.logits, self.deltas, self.cls, self.bbox):
            nn.init.normal_(m.weight, std=0.01)
            nn.init.zeros_(m.bias)
        self.register_buffer("cell", cell_anchors())

    def forward(self, x):
        h, w = x.shape[-2:]
        f = self.trunk(x)
        t = torch.relu(self.rpn_conv(f))
        fh, fw = f.shape[-2:]
        logits = self.logits(t).float().permute(0, 2, 3, 1).reshape(-1)
        deltas = self.deltas(t).float().reshape(1, 15, 4, fh, fw).permute(0, 3, 4, 1, 2).reshape(-1, 4)
        sy, sx = torch.meshgrid(torch.arange(fh) * 16.0, torch.arange(fw) * 16.0, indexing="ij")
        shifts = torch.stack([sx, sy, sx, sy], dim=-1).reshape(-1, 1, 4)
        anchors = (shifts + self.cell.view(1, 15, 4)).reshape(-1, 4)
        k = min(6000, logits.numel())
        top, idx = logits.topk(k)
        props = decode(deltas[idx], anchors[idx], (1.0, 1.0, 1.0, 1.0))
        props[:, 0::2] = props[:, 0::2].clamp(0, w)
        props[:, 1::2] = props[:, 1::2].clamp(0, h)
        keep = ((props[:, 2] - props[:, 0]) > 0) & ((props[:, 3] - props[:, 1]) > 0)
        props, top = props[keep], top[keep]
        props = props[nms(props, top, 0.7)[:1000]]
        self.last_proposals = len(props)
        if len(props) == 0:  # torch 1.13's channels_last bf16 convolution fails on an empty batch
            return props, top[:0], top[:0].long()
        rois = torch.cat([torch.zeros(len(props), 1), props], dim=1)
        feats = roi_align(f.float(), rois, (14, 14), 1 / 16, 0, aligned=True)
        if f.is_contiguous(memory_format=torch.channels_last):
            feats = feats.contiguous(memory_format=torch.channels_last)
        v = self.res5(feats).mean(dim=[2, 3])
        scores = torch.softmax(self.cls(v).float(), dim=1)[:, :-1]
        boxes = decode(self.bbox(v).float(), props, (10.0, 10.0, 5.0, 5.0)).reshape(-1, scores.shape[1], 4)
        boxes[..., 0::2] = boxes[..., 0::2].clamp(0, w)
        boxes[..., 1::2] = boxes[..., 1::2].clamp(0, h)
        mask = scores > 0.05
        cand = mask.nonzero()
        b, s = boxes[mask], scores[mask]
        keep = batched_nms(b, s, cand[:, 1], 0.5)[:100]
        return b[keep], s[keep], cand[keep, 1]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--height", type=int, default=800)
    ap.add_argument("--width", type=int, default=1333)
    ap.add_argument("--iters", type=int, default=1)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--bf16", action="store_true", help="autocast to bfloat16")
    ap.add_argument("--channels-last", action="store_true", help="model and input in torch.channels_last")
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    torch.manual_seed(0)
    model = D2C4().eval()
    # A blank image: the RPN then keeps its 1000 proposals (on noise it kept
    # a handful, and the box head, the largest part of a C4 detector's work
    # on 1000 RoIs, went unmeasured). BenchmarkDetectD2C4 feeds the same.
    x = torch.zeros(1, 3, a.height, a.width)
    if a.channels_last:
        model = model.to(memory_format=torch.channels_last)
        x = x.contiguous(memory_format=torch.channels_last)
    times = []
    with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16, enabled=a.bf16):
        flops = count_flops(model, lambda: model(x))  # also the warm-up run
        c0 = time.process_time()
        for _ in range(a.iters):
            t0 = time.perf_counter()
            boxes, _, _ = model(x)
            times.append((time.perf_counter() - t0) * 1000)
        cpu = (time.process_time() - c0) / a.iters
    mean = sum(times) / len(times)
    print(json.dumps({"ms_mean": mean, "ms_min": min(times), "cpu_s_per_image": cpu, "proposals": model.last_proposals,
                      "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
                      "flops": flops, "gflops_per_s": flops / mean / 1e6, "detections": len(boxes),
                      "size": [a.width, a.height], "precision": "bf16" if a.bf16 else "fp32",
                      "channels_last": a.channels_last}))


if __name__ == "__main__":
    main()
