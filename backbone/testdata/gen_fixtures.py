#!/usr/bin/python3
"""Parity fixtures for package backbone: a torch network with seeded random weights and
random BN statistics, its state dict and its outputs on a seeded random input.

Usage: /usr/bin/python3 gen_fixtures.py OUTDIR ARCH [--variant V] [--size H W] [--batch N] [--seed S] [--grads]
           [--layers A B C D] [--groups G] [--width-per-group W] [--res2-out C] [--dilate5 tv|d2] [--eps0]
       /usr/bin/python3 gen_fixtures.py --many < LINES   (one argument list per line)

ARCH: resnet18 resnet34 resnet50 resnet101 resnet152 (torchvision models), or cifarN for
the paper's CIFAR-10 net with N = 6n+2 layers (built here: 3x3 16-filter stem, three
stages of n BasicBlocks with 16/32/64 filters, option A shortcuts, 10 classes).
V (ImageNet nets): B (torchvision, default), A, C (shortcut options), plain, stride1x1
(Bottleneck stride on the first 1x1); for cifarN: A (default) or plain. Non-torchvision
variants are built by changing the torchvision modules (extra projections, moved
strides) and their forward functions; parameter names stay torchvision's.

The trunks of the published detectors (ImageNet nets only): --layers replaces the blocks
per stage (e.g. 1 1 1 1 for a short network); --groups and --width-per-group are
torchvision's ResNeXt arguments (32 and 8: ResNeXt-101 32x8d); --res2-out C builds
Bottlenecks with expansion C/64, so res2 outputs C channels (Detectron2's
RES2_OUT_CHANNELS; with --width-per-group 16 and --res2-out 64 the narrow fixture
models); --dilate5 dilates layer4 instead of striding it: "tv" is torchvision's
replace_stride_with_dilation=[False, False, True] (the first block's 3x3 keeps dilation
1), "d2" Detectron2's RES5_DILATION 2 (every 3x3 of layer4 dilated by 2, padding 2);
--eps0 sets every batch norm's epsilon to 0 after dividing the running variances by 1e4
and the BN weights by 1e2 (scale unchanged with eps 0, so eps 1e-5 would differ clearly).

With --grads, also the gradients of sum(logits * lossw) (see --help), computed in float64
after shifting BN biases so that no ReLU input is near 0 (avoid_relu_ties: float32 rounding
must not flip a ReLU's gradient mask), and the error of torch's float32 gradients relative
to them.

Writes OUTDIR/model.pth (torch.save of the state dict) and OUTDIR/io.safetensors with
"input" [N,3,H,W], "logits" [N,classes] and, for the ImageNet nets, "stem" (after the
max pooling), "res2" .. "res5" (the outputs of layer1 .. layer4), "c4" (= "res4") and
"res5_out" = layer4("res5_in"), a random [3, C4 channels, 14, 14] input (the detector's
RoI head). BN statistics: running stats are first set to the statistics of a random batch
(so activations keep a sane scale through 150 layers) and then perturbed; gamma and beta
are random. So BN is far from the identity.
"""
import argparse
import copy
import os
import sys
import types

import torch
import torch.nn as nn
import torch.nn.functional as F
import torchvision

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "internal", "testutil"))
import resdet_fixtures  # noqa: E402


def shortcut_a(x, out_c, stride):
    """Option A: subsample, then zero-pad the channels."""
    if stride != 1:
        x = x[:, :, ::stride, ::stride]
    if out_c > x.shape[1]:
        x = F.pad(x, (0, 0, 0, 0, 0, out_c - x.shape[1]))
    return x


# When set, block_forward passes every ReLU input through ON_RELU(bn, pre), bn being the
# batch norm whose bias shifts pre, and uses what it returns (see avoid_relu_ties).
ON_RELU = None


def record(bn, pre):
    return pre if ON_RELU is None else ON_RELU(bn, pre)


def block_forward(self, x):
    """Forward of a torchvision BasicBlock/Bottleneck with self.mode in A, B, C, plain."""
    out = F.relu(record(self.bn1, self.bn1(self.conv1(x))))
    if hasattr(self, "conv3"):
        out = F.relu(record(self.bn2, self.bn2(self.conv2(out))))
        last = self.bn3
    else:
        last = self.bn2
    out = last((self.conv3 if hasattr(self, "conv3") else self.conv2)(out))
    if self.mode == "plain":
        return F.relu(record(last, out))
    if self.downsample is not None:
        short = self.downsample(x)
    elif self.mode == "A":
        short = shortcut_a(x, out.shape[1], self.a_stride)
    else:
        short = x
    return F.relu(record(last, out + short))


def avoid_relu_ties(model, x, margin=3e-5):
    """Shifts BN biases so that no ReLU input is within margin*max|ReLU input| of 0.

    float32 rounding differs between implementations by ~1e-6 of a tensor's scale; a
    ReLU input closer to 0 than that can be positive in one and negative in the
    other, and its gradient mask then differs. In layer4, with a few positions per
    channel, one such flip changes weight gradients by percents. One float64 forward
    pass fixes the ReLUs in order: a channel with an element too close to 0 gets the
    smallest bias shift (a multiple of 2*margin*max) that clears all its elements,
    applied to the ReLU input itself too, so that the later layers see it.
    """
    global ON_RELU
    m64 = copy.deepcopy(model).double()
    name64 = {id(m): n for n, m in m64.named_modules()}
    mods = dict(model.named_modules())

    def fix(bn, pre):
        pre = pre.clone()
        thr = margin * pre.abs().max()
        for c in range(pre.shape[1]):
            v = pre[:, c]
            if (v.abs() >= thr).all():
                continue
            for j in range(1, 10000):
                d = 2 * thr * ((j + 1) // 2) * (1 if j % 2 else -1)
                if ((v + d).abs() >= thr).all():
                    break
            v += d
            mods[name64[id(bn)]].bias.data[c] += d.float()
        return pre

    stem = m64.bn1.register_forward_hook(lambda mod, inp, out: fix(mod, out))
    ON_RELU = fix
    try:
        with torch.no_grad():
            m64(x.double())
    finally:
        ON_RELU = None
        stem.remove()


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


def imagenet_model(a):
    """torchvision's a.arch, or the ResNet the trunk options describe."""
    std = a.layers is None and a.groups == 1 and a.width_per_group == 64 and not a.res2_out and not a.dilate5
    if std:
        return getattr(torchvision.models, a.arch)()
    depth = int(a.arch[len("resnet"):])
    R = torchvision.models.resnet
    block = R.BasicBlock if depth < 50 else R.Bottleneck
    if a.res2_out:
        assert a.res2_out % 64 == 0 and block is R.Bottleneck
        block = type("NarrowBottleneck", (R.Bottleneck,), {"expansion": a.res2_out // 64})
    layers = a.layers or {18: [2, 2, 2, 2], 34: [3, 4, 6, 3], 50: [3, 4, 6, 3], 101: [3, 4, 23, 3], 152: [3, 8, 36, 3]}[depth]
    model = R.ResNet(block, layers, groups=a.groups, width_per_group=a.width_per_group,
                     replace_stride_with_dilation=[False, False, a.dilate5 is not None])
    if a.dilate5 == "d2":
        c = model.layer4[0].conv2
        c.dilation, c.padding = (2, 2), (2, 2)
    return model


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
    ap.add_argument("--layers", type=int, nargs=4)
    ap.add_argument("--groups", type=int, default=1)
    ap.add_argument("--width-per-group", type=int, default=64)
    ap.add_argument("--res2-out", type=int, default=0)
    ap.add_argument("--dilate5", choices=["tv", "d2"])
    ap.add_argument("--eps0", action="store_true")
    ap.add_argument("--train", action="store_true",
                    help="also write train_logits (BN in train mode: batch statistics) and "
                         "post.<bn>.running_mean/var (running statistics after that forward pass)")
    ap.add_argument("--grads", action="store_true",
                    help="also write lossw (random [N,classes]) and grad.<param> = d sum(logits*lossw) / d param "
                         "for every conv and fc parameter (BN in eval mode, i.e. frozen), computed in float64 after "
                         "avoid_relu_ties shifted the BN biases (model.pth holds the shifted biases), "
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
        model = imagenet_model(a)
        apply_variant(model, a.variant or "B")
    x = torch.randn(a.batch, 3, a.size[0], a.size[1], generator=g)
    calib = torch.randn(max(a.batch, 4), 3, a.size[0], a.size[1], generator=g)
    randomize_bn(model, calib, g)
    if a.eps0:
        for m in model.modules():
            if isinstance(m, nn.BatchNorm2d):
                m.running_var /= 1e4
                m.weight.data /= 1e2
                m.eps = 0.0
    # torchvision's classifier is uniform ±1/sqrt(fan_in); make it larger so that the
    # logits differ clearly.
    model.fc.weight.data *= 10
    if a.grads:
        avoid_relu_ties(model, x)
    os.makedirs(a.out, exist_ok=True)
    torch.save(model.state_dict(), os.path.join(a.out, "model.pth"))
    outs = {"input": x}
    with torch.no_grad():
        outs["logits"] = model(x)
        if not a.arch.startswith("cifar"):
            m = model
            y = m.maxpool(m.relu(m.bn1(m.conv1(x))))
            outs["stem"] = y
            for i in range(4):
                y = getattr(m, "layer%d" % (i + 1))(y)
                outs["res%d" % (i + 2)] = y
            outs["c4"] = outs["res4"]
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
        # The reference is computed in float64 on the model avoid_relu_ties shifted, so
        # float32 and float64 take the same ReLU masks. The error of torch's own float32
        # gradients is written too, as grad32err.<param> = max|grad32 - grad64| / max|grad64|.
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
    resdet_fixtures.write_safetensors(os.path.join(a.out, "io.safetensors"), outs, as_float32=True)


if __name__ == "__main__":
    if sys.argv[1:] == ["--many"]:
        # One fixture per stdin line (the arguments above, space separated): saves
        # torch's start-up time when a test needs many fixtures.
        for line in sys.stdin:
            if line.strip():
                main(line.split())
    else:
        main()
