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

With --resnet it instead times a ResNet-101 forward pass at 600x1000 (up to
layer4, batch 1, frozen BN, random weights): torchvision in a subprocess vs
BenchmarkResNet101Forward/<variant> (nn/conv_resnet_bench_test.go, through
nn.Executor), each in its own process so that peak RSS is its own.

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


TORCH_RESNET = r"""
import resource, sys, time, torch, torchvision
torch.set_num_threads(int(sys.argv[1]))
iters = int(sys.argv[2])
m = torchvision.models.resnet101(norm_layer=torchvision.ops.FrozenBatchNorm2d).eval()
body = torch.nn.Sequential(*list(m.children())[:-2])
x = torch.randn(1, 3, 600, 1000)
ts = []
if sys.argv[3] == "train":
    for i in range(iters + 1):
        t = time.perf_counter()
        body(x).sum().backward()
        ts.append(time.perf_counter() - t)
    ts = ts[1:]
else:
  with torch.no_grad():
    body(x)
    for i in range(iters):
        t = time.perf_counter()
        body(x)
        ts.append(time.perf_counter() - t)
ts.sort()
print(ts[len(ts) // 2] * 1e3, resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1e3)
"""


def resnet(args, binary):
    rows = []
    for r in range(args.rounds):
        mode = "train" if args.train else "fwd"
        bench = "BenchmarkResNet101TrainStep" if args.train else "BenchmarkResNet101Forward"
        out = subprocess.run([sys.executable, "-c", TORCH_RESNET, str(args.threads), str(args.iters), mode],
                             capture_output=True, text=True, check=True).stdout.split()
        t_ms, t_mb = float(out[0]), float(out[1])
        env = dict(os.environ, RESDET_THREADS=str(args.threads))
        out = subprocess.run(
            [binary, "-test.run", "^$", "-test.bench", f"^{bench}$/^{args.variant}$",
             "-test.benchtime", f"{args.iters}x", "-test.count", "1", "-test.v"],
            capture_output=True, text=True, env=env, cwd="nn", check=True).stdout
        skip = re.search(r"\s\S+\.go:\d+: (.*)\n--- SKIP:", out)
        if skip:
            print(f"Go variant {args.variant} skipped: {skip.group(1)}")
            return
        if "ms/op" not in out:
            sys.exit(f"Go variant {args.variant}: no result (is it one of the --variant values?):\n{out}")
        g_ms = float(re.search(r"([0-9.]+) ms/op", out).group(1))
        g_mb = float(re.search(r"([0-9.]+) peakRSS_MB", out).group(1))
        g_build = float(re.search(r"([0-9.]+) peakRSS(?:Build|FirstRun)_MB", out).group(1))
        rows.append((t_ms, g_ms, t_mb, g_mb, g_build))
    what = "training step (all conv weights, frozen BN)" if args.train else "forward"
    print(f"ResNet-101 {what} 600x1000, threads={args.threads}, Go variant {args.variant}; "
          "torch: median of iters, Go: mean of iters; min over rounds")
    t_ms, g_ms = min(r[0] for r in rows), min(r[1] for r in rows)
    t_mb, g_mb, g_build = (max(r[i] for r in rows) for i in (2, 3, 4))
    print(f"time ms: torch {t_ms:.0f}  go {g_ms:.0f}  go/torch {g_ms / t_ms:.2f}")
    print(f"peak RSS MB: torch {t_mb:.0f} (whole process)  go {g_mb:.0f} during runs, "
          f"{g_build:.0f} while building the graph and running it once")
    if args.train:
        print("(Go training RSS depends on the GC: run with GOMEMLIMIT=2500MiB to keep it near the live size)")


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--iters", type=int, default=10)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--resnet", action="store_true", help="time ResNet-101 forward instead of the layers")
    ap.add_argument("--train", action="store_true", help="with --resnet: forward+backward (BenchmarkResNet101TrainStep)")
    ap.add_argument("--variant", default="blocked", help="Go variant for --resnet: plain, blocked, blocked_const, blocked_const_bf16 (skipped without bf16 support, see nn.BF16Supported); with --train: plain, blocked, blocked_exec")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    if args.resnet:
        with tempfile.TemporaryDirectory() as tmp:
            binary = os.path.join(tmp, "nn.test")
            subprocess.run(["go", "test", "-c", "-o", binary, "./nn/"], check=True)
            resnet(args, binary)
        return
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
