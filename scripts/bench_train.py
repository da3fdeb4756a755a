#!/usr/bin/python3
"""Training-step benchmarks, Go next to torch: issue 13's R50-FPN target and
issue 14's fp32 memory target.

Usage: /usr/bin/python3 scripts/bench_train.py [--iters N] [--threads T] [--case NAME ...] [--torch-malloc default|keep]

Cases (one process per case and side, torch first, then Go, never at the same
time, so that the peak RSS is per case):
  r101_c4_600x800    the paper's R101-C4, frozen BN, stem and res2 frozen, 20
                     classes, one 600x800 image. Go: BenchmarkTrainStepR101.
  r101_c4_600x800_bf16  the same, Go in mixed precision (bf16 convolutions forward
                     and backward, float32 weights and SGD) beside torch's fp32
                     step (issue 14: <= 0.5x on AMX). Go:
                     BenchmarkTrainStepR101BF16; skipped (a line saying so)
                     on a CPU without bf16 instructions.
  r101_c4_600x1000, r101_c4_600x1000_bf16  the same two on a 600x1000 image, the
                     size of issue 14's time target (bf16 <= 0.5x torch's
                     fp32 step on AMX).
  r50_fpn_800x1333   torchvision's fasterrcnn_resnet50_fpn v1 (frozen BN,
                     trainable_backbone_layers=3), 91 classes, one 800x1333
                     image. Go: BenchmarkTrainStepFPN.
Both (detection package): torchvision's sampling (256 anchors, 512 RoIs), three
boxes, random weights with the last BN of every bottleneck scaled to 0.1 (finite
losses), forward + backward + SGD step. torch: scripts/bench_train_torchvision.py.
Targets: R50-FPN time <= 1.0x and peak memory <= 1.2x torch's (issue 13);
R101-C4 peak memory <= 1.0x torch's (issue 14).

Figures as scripts/bench_detect.py's (whose helpers this uses): wall time and CPU
time (user+system, all threads: what to compare on a shared machine) per
iteration after one untimed warm-up step, and the peak RSS of the process.
"""
import argparse
import json
import os
import subprocess
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from bench_detect import PY, ROOT, go_bench, torch_env  # noqa: E402

CASES = {"r101_c4_600x800": ("r101_c4", "BenchmarkTrainStepR101"),
         "r101_c4_600x800_bf16": ("r101_c4", "BenchmarkTrainStepR101BF16"),
         "r101_c4_600x1000": ("r101_c4_1000", "BenchmarkTrainStepR101At1000"),
         "r101_c4_600x1000_bf16": ("r101_c4_1000", "BenchmarkTrainStepR101At1000BF16"),
         "r50_fpn_800x1333": ("r50_fpn", "BenchmarkTrainStepFPN")}


def torch_train(case, iters, threads, malloc):
    out = subprocess.run([PY, "scripts/bench_train_torchvision.py", case, "--iters", str(iters),
                          "--threads", str(threads)], cwd=ROOT, env=torch_env(malloc), check=True,
                         capture_output=True, text=True).stdout
    r = json.loads(out.strip().splitlines()[-1])
    return {"s": r["s_per_iter"], "cpu": r["cpu_s_per_iter"], "mb": r["peak_rss_mb"]}


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--iters", type=int, default=3)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--case", nargs="*", default=list(CASES), choices=list(CASES))
    ap.add_argument("--torch-malloc", default="default", choices=["default", "keep"],
                    help="as in scripts/bench_detect.py")
    a = ap.parse_args()
    print("torch's glibc malloc: %s" % a.torch_malloc)
    print("%-18s | %7s %7s %5s | %7s %7s %5s | %6s %6s %5s" % (
        "case", "go s", "torch s", "ratio", "go cpu", "th cpu", "ratio", "go MB", "th MB", "ratio"))
    torch = {}  # torch's figures per torch case: the bf16 case compares with the fp32 run
    for case in a.case:
        tcase, bench = CASES[case]
        if tcase not in torch:
            torch[tcase] = torch_train(tcase, a.iters, a.threads, a.torch_malloc)
        t = torch[tcase]
        try:
            g = go_bench("detection", bench, a.iters, a.threads, {}, flops=False)
        except SystemExit as e:
            if not case.endswith("_bf16"):
                raise
            print("%-18s | skipped: %s" % (case, str(e).splitlines()[0]), flush=True)
            continue
        print("%-18s | %7.2f %7.2f %5.2f | %7.2f %7.2f %5.2f | %6.0f %6.0f %5.2f" % (
            case, g["s"], t["s"], g["s"] / t["s"], g["cpu"], t["cpu"], g["cpu"] / t["cpu"],
            g["mb"], t["mb"], g["mb"] / t["mb"]), flush=True)


if __name__ == "__main__":
    sys.exit(main())
