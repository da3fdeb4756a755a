#!/usr/bin/python3
"""ResNet-50/101 backbone benchmarks, Go (package backbone) next to torch.

Usage: /usr/bin/python3 scripts/bench_backbone.py [--runs N] [--threads T] [--case NAME ...]

Cases (one process per case and side, so peak RSS is per case; the Go side is
BenchmarkBackbone/<case> in backbone/bench_test.go, same names):
  r50_224, r101_224           whole classifier to logits, 1x3x224x224, inference
  r50_c4_600x1000,            C4 trunk (conv1..layer3), 1x3x600x1000, inference
  r101_c4_600x1000
  r50_train_224,              training step: forward + backward of sum(logits),
  r101_train_224              2x3x224x224
  r101_train_600x1000         training step: forward + backward of sum(layer4 output)
                              (conv1..layer4, no pooling/fc), 1x3x600x1000
Training steps: frozen BN (torchvision's FrozenBatchNorm2d / Go nn.Affine), stem
and layer1 frozen (Detectron's freeze-at 2), the image gets no gradient, gradients
recomputed each step, no optimizer step. Go runs them through nn.Executor.

Both sides use --threads threads (default 2): torch.set_num_threads, and for Go
RESDET_THREADS and GOMAXPROCS. torch runs inference under torch.no_grad() with BN in
eval mode; Go folds BN into the convolutions. Time is the mean over N runs after one
warm-up run, wall clock and CPU time (user+system, all threads: less sensitive to
other processes on the machine); memory is the process's peak resident set size.
GFLOP/s = FLOPs / wall time for both sides, FLOPs counted on the torch model by
forward hooks (torch_flops.py): 2*MACs of every convolution and linear layer (BN, ReLU, pooling and
additions are left out), plus for a training step the backward-weights MACs of every
layer with a trainable weight and the backward-data MACs of every layer whose input
needs a gradient. The machine may be shared: timings are noisy.
"""
import argparse
import os
import re
import resource
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from torch_flops import count_flops  # noqa: E402
GO_BENCH = "BenchmarkBackbone"

# name: (depth, input shape, output: "c4" | "features" | "logits", train)
CASES = {
    "r50_224": (50, (1, 3, 224, 224), "logits", False),
    "r50_c4_600x1000": (50, (1, 3, 600, 1000), "c4", False),
    "r101_224": (101, (1, 3, 224, 224), "logits", False),
    "r101_c4_600x1000": (101, (1, 3, 600, 1000), "c4", False),
    "r50_train_224": (50, (2, 3, 224, 224), "logits", True),
    "r101_train_224": (101, (2, 3, 224, 224), "logits", True),
    "r101_train_600x1000": (101, (1, 3, 600, 1000), "features", True),
}


def torch_model(depth, out, train):
    import torch
    import torchvision
    from torchvision.ops.misc import FrozenBatchNorm2d

    ctor = {50: torchvision.models.resnet50, 101: torchvision.models.resnet101}[depth]
    m = ctor(norm_layer=FrozenBatchNorm2d) if train else ctor().eval()
    if train:
        for mod in [m.conv1, m.bn1, m.layer1]:
            for p in mod.parameters():
                p.requires_grad_(False)
    trunk = [m.conv1, m.bn1, m.relu, m.maxpool, m.layer1, m.layer2, m.layer3]
    if out == "c4":
        return torch.nn.Sequential(*trunk)
    if out == "features":
        return torch.nn.Sequential(*trunk, m.layer4)
    return m


def torch_case(case, runs, threads):
    import torch

    torch.set_num_threads(threads)
    torch.manual_seed(1)
    depth, shape, out, train = CASES[case]
    m = torch_model(depth, out, train)
    x = torch.randn(*shape)
    if train:
        def step():
            for p in m.parameters():
                p.grad = None
            m(x).sum().backward()
    else:
        def step():
            with torch.no_grad():
                m(x)
    flops = count_flops(m, step)  # also the warm-up run
    t0, c0 = time.perf_counter(), time.process_time()
    for _ in range(runs):
        step()
    dt = (time.perf_counter() - t0) / runs
    cpu = (time.process_time() - c0) / runs
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print("%f %f %f %d" % (dt, cpu, peak, flops))


def run_torch(case, runs, threads):
    out = subprocess.run([sys.executable, __file__, "--torch-case", case, "--runs", str(runs), "--threads", str(threads)],
                         check=True, capture_output=True, text=True).stdout.split()
    return float(out[0]), float(out[1]), float(out[2]), int(out[3])


def run_go(case, runs, threads):
    cmd = ["go", "test", "-run", "^$", "-bench", "^%s$/^%s$" % (GO_BENCH, case), "-benchtime", "%dx" % runs,
           "./backbone"]
    env = dict(os.environ, RESDET_THREADS=str(threads), GOMAXPROCS=str(threads))
    res = subprocess.run(cmd, cwd=ROOT, env=env, check=True, capture_output=True, text=True).stdout
    m = re.search(r"%s/%s\S*\s+\d+\s+([\d.]+) ns/op\s+([\d.]+) cpu-s/op\s+([\d.]+) peak-RSS-MB" % (GO_BENCH, case),
                  res)
    if not m:
        raise SystemExit("cannot parse go test output:\n" + res)
    return float(m.group(1)) / 1e9, float(m.group(2)), float(m.group(3))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--case", nargs="*", default=list(CASES), choices=list(CASES))
    ap.add_argument("--threads", type=int, default=2,
                    help="torch.set_num_threads and, for Go, RESDET_THREADS and GOMAXPROCS")
    ap.add_argument("--torch-case", choices=list(CASES))
    a = ap.parse_args()
    if a.torch_case:
        torch_case(a.torch_case, a.runs, a.threads)
        return
    print("%-19s %6s | %7s %7s %5s | %7s %7s | %7s %7s %5s | %6s %6s %5s" % (
        "case", "GFLOP", "go s", "torch s", "ratio", "go GF/s", "th GF/s",
        "go cpu", "th cpu", "ratio", "go MB", "th MB", "ratio"))
    for case in a.case:
        ts, tc, tm, flops = run_torch(case, a.runs, a.threads)
        gs, gc, gm = run_go(case, a.runs, a.threads)
        gf = flops / 1e9
        print("%-19s %6.1f | %7.3f %7.3f %5.2f | %7.1f %7.1f | %7.3f %7.3f %5.2f | %6.0f %6.0f %5.2f" % (
            case, gf, gs, ts, gs / ts, gf / gs, gf / ts, gc, tc, gc / tc, gm, tm, gm / tm), flush=True)


if __name__ == "__main__":
    main()
