#!/usr/bin/python3
"""Parity fixtures for package backbone: a torch network with seeded random weights and
random BN statistics, its state dict and its outputs on a seeded random input.

Usage: /usr/bin/python3 gen_fixtures.py OUTDIR ARCH [--variant V] [--size H W] [--batch N] [--seed S] [--grads]
       /usr/bin/python3 gen_fixtures.py --many < LINES   (one argument list per line)

ARCH: resnet18 resnet34 resnet50 resnet101 resnet152 (torchvision models), or cifarN for
the paper's CIFAR-10 net with N = 6n+2 layers (built here: 3x3 16-filter stem, three
stages of n BasicBlocks with 16/32/64 filters, option A shortcuts, 10 classes).
V (ImageNet nets): B (torchvision, default), A, C (shortcut options), plain, stride1x1
(Bottleneck stride on the first 1x1); for cifarN: A (default) or plain. Non-torchvision
variants are built by changing the torchvision modules (extra projections, moved
strides) and their forward functions; parameter names stay torchvision's.

With --grads, also the gradients of sum(logits * lossw) (see --help), computed in float64,
and the error of torch's float32 gradients relative to them.

Writes OUTDIR/model.pth (torch.save of the state dict) and OUTDIR/io.safetensors with
"input" [N,3,H,W], "logits" [N,classes] and, for the ImageNet nets, "c4" (the output of
layer3) and "res5_out" = layer4("res5_in"), a random [3, C4 channels, 14, 14] input (the
detector's RoI head). BN statistics: running stats are first set to the statistics of a random batch
(so activations keep a sane scale through 150 layers) and then perturbed; gamma and beta
are random. So BN is far from the identity.
"""
import argparse
import copy
import json
import os
import struct
import sys
import types

import torch
import torch.nn as nn
import torch.nn.functional as F
import torchvision


def write_safetensors(path, d):
    header, blobs, off = {}, [], 0
    for k, t in d.items():
        b = t.detach().float().contiguous().numpy().astype("<f4").tobytes()
        header[k] = {"dtype": "F32", "shape": list(t.shape), "data_offsets": [off, off + len(b)]}
        blobs.append(b)
        off += len(b)
    h = json.dumps(header).encode()
    h += b" " * ((8 - len(h) % 8) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(h)))
        f.write(h)
        for b in blobs:
            f.write(b)


def shortcut_a(x, out_c, stride):
    """Option A: subsample, then zero-pad the channels."""
    if stride != 1:
        x = x[:, :, ::stride, ::stride]
    if out_c > x.shape[1]:
        x = F.pad(x, (0, 0, 0, 0, 0, out_c - x.shape[1]))
    return x


def block_forward(self, x):
    """Forward of a torchvision BasicBlock/Bottleneck with self.mode in A, B, C, plain."""
    out = F.relu(self.bn1(self.conv1(x)))
    if hasattr(self, "conv3"):
        out = F.relu(self.bn2(self.conv2(out)))
        out = self.bn3(self.conv3(out))
    else:
        out = self.bn2(self.conv2(out))
    if self.mode == "plain":
        return F.relu(out)
    if self.downsample is not None:
        short = self.downsample(x)
    elif self.mode == "A":
        short = shortcut_a(x, out.shape[1], self.a_stride)
    else:
        short = x
    return F.relu(out + short)


def blocks(model):
    for layer in [model.layer1, model.layer2, model.layer3] + ([model.layer4] if hasattr(model, "layer4") else []):
        for b in layer:
            yield b


def apply_variant(model, variant):
    for b in blocks(model):
        stride = b.conv1.stride[0] if not hasattr(b, "conv3") else max(b.conv1.stride[0], b.conv2.stride[0])
        in_c = b.conv1.in_channels
        out_c = (b.conv3 if hasattr(b, "conv3") else b.conv2).out_channels
        b.mode = variant if variant in ("A", "C", "plain") else "B"
        b.a_stride = stride
        if variant in ("A", "plain"):
            b.downsample = None
        if variant == "C" and b.downsample is None:
            b.downsample = nn.Sequential(nn.Conv2d(in_c, out_c, 1, stride, bias=False), nn.BatchNorm2d(out_c))
        if variant == "stride1x1" and hasattr(b, "conv3") and stride != 1:
            b.conv1.stride, b.conv2.stride = (stride, stride), (1, 1)
        b.forward = types.MethodType(block_forward, b)


class CifarBlock(nn.Module):
    def __init__(self, in_c, out_c, stride):
        super().__init__()
        self.conv1 = nn.Conv2d(in_c, out_c, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(out_c)
        self.conv2 = nn.Conv2d(out_c, out_c, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(out_c)
        self.downsample = None


class CifarResNet(nn.Module):
    def __init__(self, n, classes=10):
        super().__init__()
        self.conv1 = nn.Conv2d(3, 16, 3, 1, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(16)
        in_c = 16
        for i, (c, s) in enumerate([(16, 1), (32, 2), (64, 2)]):
            layer = []
            for j in range(n):
                layer.append(CifarBlock(in_c, c, s if j == 0 else 1))
                in_c = c
            setattr(self, "layer%d" % (i + 1), nn.Sequential(*layer))
        self.fc = nn.Linear(64, classes)

    def forward(self, x):
        x = F.relu(self.bn1(self.conv1(x)))
        x = self.layer3(self.layer2(self.layer1(x)))
        return self.fc(torch.flatten(F.adaptive_avg_pool2d(x, 1), 1))


def randomize_bn(model, x, g):
    bns = [m for m in model.modules() if isinstance(m, nn.BatchNorm2d)]
    for m in bns:
        m.weight.data = torch.rand(m.num_features, generator=g) + 0.5
        m.bias.data = torch.randn(m.num_features, generator=g) * 0.2
        m.momentum = 1.0  # running stats := this batch's statistics
    model.train()
    with torch.no_grad():
        model(x)
    model.eval()
    for m in bns:
        m.momentum = 0.1
        m.running_mean += torch.randn(m.num_features, generator=g) * 0.1 * m.running_var.sqrt()
        m.running_var *= torch.rand(m.num_features, generator=g) + 0.5


def main(argv=None):
    ap = argparse.ArgumentParser()
    ap.add_argument("out")
    ap.add_argument("arch")
    ap.add_argument("--variant", default="")
    ap.add_argument("--size", type=int, nargs=2, default=[65, 97])
    ap.add_argument("--batch", type=int, default=2)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--train", action="store_true",
                    help="also write train_logits (BN in train mode: batch statistics) and "
                         "post.<bn>.running_mean/var (running statistics after that forward pass)")
    ap.add_argument("--grads", action="store_true",
                    help="also write lossw (random [N,classes]) and grad.<param> = d sum(logits*lossw) / d param "
                         "for every conv and fc parameter (BN in eval mode, i.e. frozen), computed in float64, "
                         "and grad32err.<param> = max|torch's float32 gradient - grad| / max|grad|")
    a = ap.parse_args(argv)
    torch.manual_seed(a.seed)
    g = torch.Generator().manual_seed(a.seed + 1000)
    if a.arch.startswith("cifar"):
        depth = int(a.arch[5:])
        assert (depth - 2) % 6 == 0
        model = CifarResNet((depth - 2) // 6)
        for m in model.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
        apply_variant(model, a.variant or "A")
    else:
        model = getattr(torchvision.models, a.arch)()
        apply_variant(model, a.variant or "B")
    x = torch.randn(a.batch, 3, a.size[0], a.size[1], generator=g)
    calib = torch.randn(max(a.batch, 4), 3, a.size[0], a.size[1], generator=g)
    randomize_bn(model, calib, g)
    # torchvision's classifier is uniform ±1/sqrt(fan_in); make it larger so that the
    # logits differ clearly.
    model.fc.weight.data *= 10
    os.makedirs(a.out, exist_ok=True)
    torch.save(model.state_dict(), os.path.join(a.out, "model.pth"))
    outs = {"input": x}
    with torch.no_grad():
        outs["logits"] = model(x)
        if not a.arch.startswith("cifar"):
            m = model
            y = m.maxpool(m.relu(m.bn1(m.conv1(x))))
            outs["c4"] = m.layer3(m.layer2(m.layer1(y)))
            # conv5_x as the detector's per-RoI head: layer4 on pooled 14x14 features.
            c4c = outs["c4"].shape[1]
            outs["res5_in"] = torch.randn(3, c4c, 14, 14, generator=g)
            outs["res5_out"] = m.layer4(outs["res5_in"])
    if a.train:
        model.train()
        with torch.no_grad():
            outs["train_logits"] = model(x)
        model.eval()
        for name, t in model.state_dict().items():
            if name.endswith("running_mean") or name.endswith("running_var"):
                outs["post." + name] = t.clone()
    if a.grads:
        # The reference is computed in float64: torch's float32 gradients of the deeper
        # nets differ from it by up to 1.7e-2 of their largest magnitude (ResNet-50 at
        # 64x48). That error of torch's own float32 computation is written too, as
        # grad32err.<param> = max|grad32 - grad64| / max|grad64|.
        lw = torch.randn(outs["logits"].shape, generator=g)
        model.zero_grad()
        (model(x) * lw).sum().backward()
        m64 = copy.deepcopy(model).double()
        m64.zero_grad()
        (m64(x.double()) * lw.double()).sum().backward()
        outs["lossw"] = lw
        p32 = dict(model.named_parameters())
        for name, p in m64.named_parameters():
            if name.endswith(".weight") and p.dim() in (2, 4) or name == "fc.bias":
                outs["grad." + name] = p.grad
                err = (p32[name].grad.double() - p.grad).abs().max() / p.grad.abs().max()
                outs["grad32err." + name] = err.reshape(1)
    write_safetensors(os.path.join(a.out, "io.safetensors"), outs)


if __name__ == "__main__":
    if sys.argv[1:] == ["--many"]:
        # One fixture per stdin line (the arguments above, space separated): saves
        # torch's start-up time when a test needs many fixtures.
        for line in sys.stdin:
            if line.strip():
                main(line.split())
    else:
        main()
