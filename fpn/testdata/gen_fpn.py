#!/usr/bin/python3
"""Parity fixtures for package fpn: torchvision's FeaturePyramidNetwork with
LastLevelMaxPool and seeded random weights, its outputs on seeded random
C2..C5 maps, and the gradients of a weighted sum of its outputs.

Usage: /usr/bin/python3 gen_fpn.py OUTDIR CASE...

CASE is NAME:VARIANT:HxW[:CHANNELS] with VARIANT v1 (norm_layer=None: convs
with bias), v2 (norm_layer=BatchNorm2d, eval mode, random statistics),
d2 (the v1 modules run through Detectron2's forward, which upsamples with
scale_factor=2.0 instead of a size) or legacy (v1 whose model.pth carries the
names of torchvision < 0.13: inner_blocks.{i}.weight without ".0"). HxW is the
image size; C2..C5 get the sizes a torchvision ResNet gives them (strides 4,
8, 16, 32; each stride-2 stage maps s to (s-1)//2 + 1). CHANNELS is the
output width (default 32). Inputs have 16, 32, 64, 128 channels, batch 2.

For each case writes OUTDIR/NAME/model.pth (torch.save of the state dict with
the names "backbone.fpn.*" a FasterRCNN uses) and OUTDIR/NAME/io.safetensors:
c2..c5, the outputs p2..p6 (torchvision's "0".."3", "pool"), loss weights
w2..w6, the input gradients grad.c2..grad.c5 and, for every parameter with a
gradient, "grad.<state name>" of loss = sum_i sum(p_i * w_i).
"""
import os
import sys

import torch
import torch.nn.functional as F
from torchvision.ops.feature_pyramid_network import FeaturePyramidNetwork, LastLevelMaxPool

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "internal", "testutil"))
import resdet_fixtures  # noqa: E402

PREFIX = "backbone.fpn."
IN_CHANNELS = [16, 32, 64, 128]


def down(s):
    return (s - 1) // 2 + 1


def level_sizes(h, w):
    h, w = down(down(h)), down(down(w))  # conv1 and max pool: stride 4
    sizes = [(h, w)]
    for _ in range(3):
        h, w = down(h), down(w)
        sizes.append((h, w))
    return sizes


def d2_forward(fpn, xs):
    """Detectron2's FPN.forward (modeling/backbone/fpn.py) on torchvision's
    modules: lateral = inner_blocks, output = layer_blocks, top-down by
    F.interpolate(scale_factor=2.0), fuse "sum", p6 = max_pool2d(p5, 1, 2, 0)."""
    prev = fpn.inner_blocks[-1](xs[-1])
    results = [fpn.layer_blocks[-1](prev)]
    for idx in range(len(xs) - 2, -1, -1):
        top_down = F.interpolate(prev, scale_factor=2.0, mode="nearest")
        prev = fpn.inner_blocks[idx](xs[idx]) + top_down
        results.insert(0, fpn.layer_blocks[idx](prev))
    results.append(F.max_pool2d(results[-1], kernel_size=1, stride=2, padding=0))
    return results


def gen(outdir, name, variant, size, channels, seed):
    torch.manual_seed(seed)
    h, w = size
    norm = torch.nn.BatchNorm2d if variant == "v2" else None
    fpn = FeaturePyramidNetwork(IN_CHANNELS, channels, LastLevelMaxPool(), norm_layer=norm)
    with torch.no_grad():
        for k, p in fpn.named_parameters():
            if k.endswith(".0.bias"):
                p.uniform_(-0.5, 0.5)  # torchvision initialises conv biases to 0
        for m in fpn.modules():
            if isinstance(m, torch.nn.BatchNorm2d):
                m.weight.uniform_(0.5, 1.5)
                m.bias.uniform_(-0.5, 0.5)
                m.running_mean.uniform_(-0.5, 0.5)
                m.running_var.uniform_(0.5, 2.0)
    fpn.eval()
    xs = [torch.randn(2, c, sh, sw).requires_grad_(True) for c, (sh, sw) in zip(IN_CHANNELS, level_sizes(h, w))]
    if variant == "d2":
        outs = d2_forward(fpn, xs)
    else:
        res = fpn({"feat%d" % i: x for i, x in enumerate(xs)})
        if list(res.keys())[-1] != "pool":
            raise SystemExit("unexpected output names %s" % list(res.keys()))
        outs = list(res.values())
    ws = [torch.randn_like(o) for o in outs]
    loss = sum((o * wt).sum() for o, wt in zip(outs, ws))
    loss.backward()

    d = os.path.join(outdir, name)
    os.makedirs(d, exist_ok=True)
    io = {}
    for i, x in enumerate(xs):
        io["c%d" % (i + 2)] = x
        io["grad.c%d" % (i + 2)] = x.grad
    for i, (o, wt) in enumerate(zip(outs, ws)):
        io["p%d" % (i + 2)] = o
        io["w%d" % (i + 2)] = wt
    for k, p in fpn.named_parameters():
        io["grad." + PREFIX + k] = p.grad
    resdet_fixtures.write_safetensors(os.path.join(d, "io.safetensors"), io, as_float32=True)

    state = {}
    for k, v in fpn.state_dict().items():
        if variant == "legacy":
            # torchvision < 0.13: inner_blocks.{i} was the Conv2d itself.
            parts = k.split(".")
            if parts[0] in ("inner_blocks", "layer_blocks") and parts[2] == "0":
                k = ".".join(parts[:2] + parts[3:])
        state[PREFIX + k] = v.detach().clone()
    torch.save(state, os.path.join(d, "model.pth"))


def main():
    torch.set_num_threads(1)
    outdir = sys.argv[1]
    for seed, spec in enumerate(sys.argv[2:]):
        parts = spec.split(":")
        name, variant, hw = parts[:3]
        channels = int(parts[3]) if len(parts) > 3 else 32
        if variant not in ("v1", "v2", "d2", "legacy"):
            raise SystemExit("unknown variant %s" % variant)
        h, w = (int(v) for v in hw.split("x"))
        gen(outdir, name, variant, (h, w), channels, 1000 + seed)


if __name__ == "__main__":
    main()
