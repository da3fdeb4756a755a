#!/usr/bin/python3
"""Writes torch reference results for nn's convolution tests.

Usage: /usr/bin/python3 gen_conv_fixtures.py OUTDIR

For each case, OUTDIR/conv_<name>.json holds the options and the tensors
(float32 values, row-major, with shapes): inputs x, w, b, res, the cost
weight r, the output y = act(conv2d(x, w, b) + res) and the gradients of
sum(y * r) w.r.t. x, w, b and res. act is ReLU when "relu" is true.
OUTDIR/convbn_<name>.json: the same for act(conv2d(x, w)*scale + shift + res)
(frozen batch norm), with gradients w.r.t. x, w, shift and res.
"""

import json
import os
import sys

import torch

CASES = [
    # name, x shape, w shape, stride, pad, dilation, groups, bias, residual, relu
    ("resnet_3x3", (2, 16, 13, 11), (32, 16, 3, 3), (1, 1), (1, 1), (1, 1), 1, False, False, False),
    ("stem_7x7s2", (1, 3, 31, 27), (16, 3, 7, 7), (2, 2), (3, 3), (1, 1), 1, False, False, True),
    ("bottleneck_1x1_s2_res", (1, 32, 15, 9), (64, 32, 1, 1), (2, 2), (0, 0), (1, 1), 1, True, True, True),
    ("head_3x3_bias_relu", (1, 24, 10, 14), (24, 24, 3, 3), (1, 1), (1, 1), (1, 1), 1, True, False, True),
    ("dilated_grouped", (1, 12, 12, 10), (18, 4, 3, 3), (1, 2), (2, 1), (2, 1), 3, True, False, False),
    ("rect_kernel_stride3", (2, 5, 17, 19), (7, 5, 2, 5), (3, 2), (1, 2), (1, 1), 1, True, True, False),
]

# Convolution + frozen batch norm (x*scale + shift per channel, as
# torchvision's FrozenBatchNorm2d) + residual + ReLU: Conv2dBN's semantics.
# The cost gradient is not taken w.r.t. scale (frozen).
BN_CASES = [
    # name, x shape, w shape, stride, pad, dilation, groups, residual, relu
    ("bn_block_3x3", (1, 16, 11, 9), (16, 16, 3, 3), (1, 1), (1, 1), (1, 1), 1, True, True),
    ("bn_stem_7x7s2", (1, 3, 29, 33), (8, 3, 7, 7), (2, 2), (3, 3), (1, 1), 1, False, True),
    # ResNeXt's grouped 3x3 (32 groups of 4 channels) and DC5's dilated 3x3.
    ("bn_resnext_3x3_32groups_s2", (2, 128, 9, 11), (128, 4, 3, 3), (2, 2), (1, 1), (1, 1), 32, False, True),
    ("bn_dc5_3x3_dilation2", (1, 32, 8, 7), (32, 32, 3, 3), (1, 1), (2, 2), (2, 2), 1, False, True),
    ("bn_grouped_dilated_res", (1, 64, 7, 9), (64, 8, 3, 3), (1, 1), (2, 2), (2, 2), 8, True, True),
]


def tensor_json(t):
    t = t.detach().contiguous().float()
    return {"shape": list(t.shape), "data": [float(v) for v in t.reshape(-1).tolist()]}


def main():
    out = sys.argv[1]
    torch.manual_seed(0)
    for name, xs, ws, stride, pad, dil, groups, bias, residual, relu in CASES:
        x = torch.randn(xs, requires_grad=True)
        w = torch.randn(ws, requires_grad=True)
        b = torch.randn(ws[0], requires_grad=True)
        y = torch.nn.functional.conv2d(x, w, b if bias else None, stride, pad, dil, groups)
        res = torch.randn(y.shape, requires_grad=True)
        if residual:
            y = y + res
        if relu:
            y = torch.relu(y)
        r = torch.randn(y.shape)
        (y * r).sum().backward()
        tensors = {"x": x, "w": w, "y": y, "r": r, "dx": x.grad, "dw": w.grad}
        if bias:
            tensors.update(b=b, db=b.grad)
        if residual:
            tensors.update(res=res, dres=res.grad)
        doc = {
            "stride": list(stride), "pad": list(pad), "dilation": list(dil), "groups": groups,
            "relu": relu, "tensors": {k: tensor_json(v) for k, v in tensors.items()},
        }
        write(out, "conv_" + name, doc)
    for name, xs, ws, stride, pad, dil, groups, residual, relu in BN_CASES:
        x = torch.randn(xs, requires_grad=True)
        w = torch.randn(ws, requires_grad=True)
        scale = torch.rand(ws[0]) + 0.5
        shift = torch.randn(ws[0], requires_grad=True)
        y = torch.nn.functional.conv2d(x, w, None, stride, pad, dil, groups)
        y = y * scale.reshape(1, -1, 1, 1) + shift.reshape(1, -1, 1, 1)
        res = torch.randn(y.shape, requires_grad=True)
        if residual:
            y = y + res
        if relu:
            y = torch.relu(y)
        r = torch.randn(y.shape)
        (y * r).sum().backward()
        tensors = {"x": x, "w": w, "scale": scale, "shift": shift, "y": y, "r": r,
                   "dx": x.grad, "dw": w.grad, "dshift": shift.grad}
        if residual:
            tensors.update(res=res, dres=res.grad)
        doc = {
            "stride": list(stride), "pad": list(pad), "dilation": list(dil), "groups": groups,
            "relu": relu, "tensors": {k: tensor_json(v) for k, v in tensors.items()},
        }
        write(out, "convbn_" + name, doc)


def write(out, name, doc):
    path = os.path.join(out, name + ".json")
    with open(path + ".tmp", "w") as f:
        json.dump(doc, f)
    os.replace(path + ".tmp", path)


if __name__ == "__main__":
    main()
