#!/usr/bin/python3
"""ResNet-101 backbone benchmarks, Go (package backbone) next to torch.

Usage: /usr/bin/python3 scripts/bench_backbone.py [--runs N] [--case NAME ...]

Cases (one process per case and side, so peak RSS is per case):
  c4_600x1000   C4 trunk (conv1..layer3) forward, 1x3x600x1000, inference
  full_224      whole network to logits, 1x3x224x224, inference
  train_224     forward + backward of sum(logits), 2x3x224x224, frozen BN,
                stem and layer1 frozen (Detectron's freeze-at 2)

Both sides use --threads threads (default 2; 1 gives a comparison that other
processes on the machine distort less). torch runs under torch.no_grad() for inference; Go runs
`go test -bench` with its default threads (nn.Threads()). Time is the mean over N runs
after one warm-up run, wall clock and CPU time (user+system, all threads: less
sensitive to other processes on the machine); memory is the process's peak resident
set size. Prints one
table row per case with the Go/torch ratios. The machine may be shared: timings are noisy.
"""
import argparse
import os
import re
import resource
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
GO_BENCH = {
    "c4_600x1000": "BenchmarkResNet101C4Forward600x1000",
    "full_224": "BenchmarkResNet101Forward224",
    "train_224": "BenchmarkResNet101TrainStep224",
}


def torch_case(case, runs, threads):
    import torch
    import torchvision
    from torchvision.ops.misc import FrozenBatchNorm2d

    torch.set_num_threads(threads)
    torch.manual_seed(1)
    if case == "train_224":
        m = torchvision.models.resnet101(norm_layer=FrozenBatchNorm2d)
        for mod in [m.conv1, m.bn1, m.layer1]:
            for p in mod.parameters():
                p.requires_grad_(False)
        x = torch.randn(2, 3, 224, 224)

        def step():
            for p in m.parameters():
                p.grad = None
            m(x).sum().backward()
    else:
        m = torchvision.models.resnet101().eval()
        if case == "c4_600x1000":
            m = torch.nn.Sequential(m.conv1, m.bn1, m.relu, m.maxpool, m.layer1, m.layer2, m.layer3)
            x = torch.randn(1, 3, 600, 1000)
        else:
            x = torch.randn(1, 3, 224, 224)

        def step():
            with torch.no_grad():
                m(x)
    step()
    t0, c0 = time.perf_counter(), time.process_time()
    for _ in range(runs):
        step()
    dt = (time.perf_counter() - t0) / runs
    cpu = (time.process_time() - c0) / runs
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print("%f %f %f" % (dt, cpu, peak))


def run_torch(case, runs, threads):
    out = subprocess.run([sys.executable, __file__, "--torch-case", case, "--runs", str(runs), "--threads", str(threads)],
                         check=True, capture_output=True, text=True).stdout.split()
    return float(out[0]), float(out[1]), float(out[2])


def run_go(case, runs, threads):
    bench = GO_BENCH[case]
    cmd = ["go", "test", "-run", "^$", "-bench", "^%s$" % bench, "-benchtime", "%dx" % runs, "./backbone"]
    env = dict(os.environ, RESDET_THREADS=str(threads), GOMAXPROCS=str(threads))
    res = subprocess.run(cmd, cwd=ROOT, env=env, check=True, capture_output=True, text=True).stdout
    m = re.search(r"%s\S*\s+\d+\s+([\d.]+) ns/op\s+([\d.]+) cpu-s/op\s+([\d.]+) peak-RSS-MB" % bench, res)
    if not m:
        raise SystemExit("cannot parse go test output:\n" + res)
    return float(m.group(1)) / 1e9, float(m.group(2)), float(m.group(3))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--case", nargs="*", default=list(GO_BENCH))
    ap.add_argument("--threads", type=int, default=2,
                    help="torch.set_num_threads and, for Go, RESDET_THREADS and GOMAXPROCS")
    ap.add_argument("--torch-case")
    a = ap.parse_args()
    if a.torch_case:
        torch_case(a.torch_case, a.runs, a.threads)
        return
    print("%-12s %8s %8s %6s | %8s %8s %6s | %7s %8s %6s" % (
        "case", "go s", "torch s", "ratio", "go cpu", "torch cpu", "ratio", "go MB", "torch MB", "ratio"))
    for case in a.case:
        ts, tc, tm = run_torch(case, a.runs, a.threads)
        gs, gc, gm = run_go(case, a.runs, a.threads)
        print("%-12s %8.3f %8.3f %6.2f | %8.3f %8.3f %6.2f | %7.0f %8.0f %6.2f" % (
            case, gs, ts, gs / ts, gc, tc, gc / tc, gm, tm, gm / tm), flush=True)


if __name__ == "__main__":
    main()
