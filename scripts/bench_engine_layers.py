#!/usr/bin/python3
"""Times the four representative layers of issue 4 (conv + frozen BN + ReLU,
batch 1, float32) in torch and in resdet/nn side by side, and prints the
ratio Go/torch per layer for the forward pass and for forward+backward.

Run from the repository root with Debian's python (it has torch):

    /usr/bin/python3 scripts/bench_engine_layers.py [--rounds 3] [--iters 10] [--threads 2]

torch runs with torch.set_num_threads(threads); the Go benchmark with
RESDET_THREADS=threads. Each round times torch, then Go, per layer and mode,
so both see the same machine load; the table reports the minimum over rounds
of the per-round median (ms), GFLOP/s from that time, and the ratio.

Go side: BenchmarkConvLayer/<layer>/{fwd,fwdbwd} in nn/conv_bench_test.go:
frozen BN folded into the weights and bias, one oneDNN convolution with
bias and ReLU post-ops. torch side: Conv2d(bias=False), torchvision-style
FrozenBatchNorm2d (x*scale + shift), ReLU. Forward+backward: x and the
weights require gradients, BN is frozen, y.backward(dy).
"""

import argparse
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time

import torch

LAYERS = [
    # name, (C, H, W), (OutC, KH, KW), stride, pad
    ("3x3_256_38x63", (256, 38, 63), (256, 3, 3), 1, 1),
    ("3x3_64_150x250", (64, 150, 250), (64, 3, 3), 1, 1),
    ("1x1_1024to256_38x63", (1024, 38, 63), (256, 1, 1), 1, 0),
    ("7x7s2_3to64_600x1000", (3, 600, 1000), (64, 7, 7), 2, 3),
]


def flops(layer):
    _, (c, h, w), (oc, kh, kw), s, p = layer
    oh = (h + 2 * p - kh) // s + 1
    ow = (w + 2 * p - kw) // s + 1
    return 2.0 * oc * oh * ow * c * kh * kw


class FrozenBN(torch.nn.Module):
    def __init__(self, n):
        super().__init__()
        g = torch.Generator().manual_seed(n)
        self.register_buffer("weight", torch.rand(n, generator=g) + 0.5)
        self.register_buffer("bias", torch.randn(n, generator=g))
        self.register_buffer("running_mean", torch.randn(n, generator=g))
        self.register_buffer("running_var", torch.rand(n, generator=g) + 0.5)

    def forward(self, x):
        scale = self.weight * (self.running_var + 1e-5).rsqrt()
        shift = self.bias - self.running_mean * scale
        return x * scale.reshape(1, -1, 1, 1) + shift.reshape(1, -1, 1, 1)


def torch_times(layer, mode, iters):
    name, (c, h, w), (oc, kh, kw), s, p = layer
    torch.manual_seed(0)
    conv = torch.nn.Conv2d(c, oc, (kh, kw), stride=s, padding=p, bias=False)
    bn = FrozenBN(oc)
    x = torch.randn(1, c, h, w)
    ts = []
    if mode == "fwd":
        with torch.no_grad():
            for i in range(iters + 2):
                t = time.perf_counter()
                torch.relu_(bn(conv(x)))
                ts.append(time.perf_counter() - t)
    else:
        x.requires_grad_(True)
        dy = None
        for i in range(iters + 2):
            t = time.perf_counter()
            y = torch.relu(bn(conv(x)))
            if dy is None:
                dy = torch.randn_like(y)
            y.backward(dy)
            ts.append(time.perf_counter() - t)
            x.grad = None
            conv.weight.grad = None
    return statistics.median(ts[2:]) * 1e3


def go_times(binary, layer, mode, iters, threads):
    env = dict(os.environ, RESDET_THREADS=str(threads))
    out = subprocess.run(
        [binary, "-test.run", "^$", "-test.bench", f"^BenchmarkConvLayer$/^{layer[0]}$/^{mode}$",
         "-test.benchtime", f"{iters}x", "-test.count", "1"],
        capture_output=True, text=True, env=env, cwd="nn", check=True).stdout
    m = re.search(r"([0-9.]+) ms/op", out)
    if not m:
        sys.exit(f"bench_engine_layers: no ms/op in Go output:\n{out}")
    return float(m.group(1))


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--iters", type=int, default=10)
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    with tempfile.TemporaryDirectory() as tmp:
        binary = os.path.join(tmp, "nn.test")
        subprocess.run(["go", "test", "-c", "-o", binary, "./nn/"], check=True)
        res = {}
        for r in range(args.rounds):
            for layer in LAYERS:
                for mode in ("fwd", "fwdbwd"):
                    t = torch_times(layer, mode, args.iters)
                    g = go_times(binary, layer, mode, args.iters, args.threads)
                    tt, gg = res.setdefault((layer[0], mode), ([], []))
                    tt.append(t)
                    gg.append(g)
    print(f"threads={args.threads} rounds={args.rounds} iters={args.iters}; "
          "times: min over rounds of the per-round median, ms")
    print(f"{'layer':24s} {'mode':7s} {'torch ms':>9s} {'go ms':>9s} {'go/torch':>8s} "
          f"{'torch GF/s':>10s} {'go GF/s':>8s}")
    for layer in LAYERS:
        for mode in ("fwd", "fwdbwd"):
            tt, gg = res[(layer[0], mode)]
            t, g = min(tt), min(gg)
            f = flops(layer) * (3 if mode == "fwdbwd" else 1)
            print(f"{layer[0]:24s} {mode:7s} {t:9.2f} {g:9.2f} {g / t:8.2f} "
                  f"{f / t / 1e6:10.1f} {f / g / 1e6:8.1f}")


if __name__ == "__main__":
    main()
