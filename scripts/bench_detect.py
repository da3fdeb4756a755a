#!/usr/bin/python3
"""Detector benchmarks, Go next to torch: issue 12's speed and memory targets.

Usage: /usr/bin/python3 scripts/bench_detect.py [--iters N] [--threads T] [--torch-malloc default|keep]
           [--case NAME ...] [--fpn-dir DIR] [--c4-dir DIR] [--flop-per-cycle F]

Cases (one process per case and side, torch first, then Go, never at the same
time, so that the peak RSS is per case):
  tv_r50_fpn_800x1333   torchvision fasterrcnn_resnet50_fpn (v1), 91 classes, one
                        640x480 PNG read, resized to 1066x800 and detected
                        (seeded random weights written by gen_tv_fpn.py at
                        800/1333: the same weights and image on both sides).
                        torch: checkpoint/testdata/bench_tv_fpn.py; Go:
                        BenchmarkDetectFPN (checkpoint).
  tv_r50_fpn_800x1333_bf16  the same, Go in bf16 (BenchmarkDetectFPNBF16; skipped on
                        a CPU without bf16) beside torch's fp32 run.
  r101_c4_800x1333      our C4 construction (issue 6's: torchvision's FasterRCNN on
                        a ResNet-101 trunk with the res5 box head), 80 classes,
                        seeded random weights and a 1333x800 PNG written by
                        detection/testdata/gen_fasterrcnn.py (frozen BN
                        calibrated on it; the RPN keeps 233 proposals), read,
                        transformed and detected as `detect` does. torch:
                        cmd/detect/testdata/bench_torchvision.py; Go:
                        BenchmarkDetect/align (cmd/detect).
  r101_c4_800x1333_bf16 the same, Go in bf16 (BenchmarkDetect/align-bf16; skipped
                        on a CPU without bf16) beside torch's fp32 run.
  d2_r101_c4_800x1333   Detectron2's R101-C4 construction, 80 classes, random
                        weights, one blank 1333x800 input (no padding), which
                        keeps 1000 proposals on both sides. torch:
                        detection/testdata/bench_d2_c4.py (plain torch and
                        torchvision modules); Go: BenchmarkDetectD2C4 (detection).
  d2_r101_c4_800x1333_bf16  the same, Go in bf16 (BenchmarkDetectD2C4BF16; skipped,
                        with a line saying so, on a CPU without bf16
                        instructions) beside torch's fp32 run.
  d2_r101_c4_800x1333_bf16_vs_bf16  the same beside torch in bf16 (autocast with
                        channels_last tensors: bench_d2_c4.py --bf16
                        --channels-last). On AMX CPUs both sides run oneDNN's
                        brgconv:avx512_core_amx_bf16 (ONEDNN_VERBOSE=1 shows it).
Targets: time <= 0.8x torch's, peak memory <= torch's (issue 12, fp32); bf16
time <= 0.3x torch's fp32 on an AMX CPU (issue 14).

Both sides use --threads threads (default 2): torch.set_num_threads, and for Go
RESDET_THREADS and GOMAXPROCS. Each side runs one untimed warm-up image, then
--iters timed ones. Figures: wall time per image; CPU time per image (user+system,
all threads: what to compare on a machine shared with other work, where wall
time is noise); peak RSS of the process (torch: ru_maxrss; Go: VmHWM), which
includes the interpreter or runtime, the weights and for the FPN case the
image; GFLOP/s = FLOPs / wall time, FLOPs = 2 x the multiply-adds of every
convolution and linear layer, counted on each side on its own (torch: forward
hooks, scripts/torch_flops.py; Go: nn.Executor.FLOPs over Predict's graphs):
the two counts agree when both keep the same number of proposals.

The fp32 peak is threads x clock x FLOP per cycle and core: the clock is the
"cpu MHz" of /proc/cpuinfo (this VM reports its nominal 2.6 GHz; boost clocks
are not visible) and --flop-per-cycle defaults to 64, for a core with two
512-bit FMA pipes (2 FMA x 16 float32 lanes x 2 FLOP): AMD Zen 5 (family 26
with avx512_vp2intersect, as here) and Intel server cores with two AVX-512 FMA
units. Zen 4 runs 512-bit FMAs on 256-bit pipes: pass 32 there.
"""
import argparse
import json
import os
import re
import subprocess
import sys
import tempfile

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PY = "/usr/bin/python3"

CASES = ["tv_r50_fpn_800x1333", "tv_r50_fpn_800x1333_bf16", "r101_c4_800x1333", "r101_c4_800x1333_bf16", "d2_r101_c4_800x1333", "d2_r101_c4_800x1333_bf16", "d2_r101_c4_800x1333_bf16_vs_bf16"]


def go_bench(pkg, name, iters, threads, env_extra, flops=True):
    """Runs one Go benchmark (-benchtime iters x) in its own process and
    returns its figures: s (per op), cpu (CPU-s/op), mb (peak RSS) and, with
    flops, flops (per op, from GFLOP/s)."""
    cmd = ["go", "test", "-run", "^$", "-bench", "^%s$" % name, "-benchtime", "%dx" % iters, "-count", "1",
           "./" + pkg]
    env = dict(os.environ, RESDET_THREADS=str(threads), GOMAXPROCS=str(threads), GOFLAGS="-mod=mod", **env_extra)
    out = subprocess.run(cmd, cwd=ROOT, env=env, check=True, capture_output=True, text=True).stdout
    line = next((l for l in out.splitlines() if l.startswith(name)), None)
    if line is None:
        raise SystemExit("cannot find %s in go test output:\n%s" % (name, out))
    metrics = {unit: float(v) for v, unit in re.findall(r"([\d.e+-]+) (\S+)", line)}
    for unit in ("ns/op", "CPU-s/op", "peak-RSS-MB") + (("GFLOP/s",) if flops else ()):
        if unit not in metrics:
            raise SystemExit("no %s in: %s" % (unit, line))
    s = metrics["ns/op"] / 1e9
    r = {"s": s, "cpu": metrics["CPU-s/op"], "mb": metrics["peak-RSS-MB"]}
    if flops:
        r["flops"] = metrics["GFLOP/s"] * 1e9 * s
    return r


# torch_env's glibc settings for --torch-malloc keep: no mmap for large
# blocks and no trimming, so that torch's allocator keeps the memory it frees
# instead of handing it to the kernel and faulting it in again on the next
# step (on machines where a page fault is slow, 2026-12-03: 7-13 us per 4 KiB
# page, torch's R101-C4 steps took 2-4x as long with glibc's defaults; its
# peak RSS grows instead).
MALLOC_KEEP = {"MALLOC_MMAP_MAX_": "0", "MALLOC_TRIM_THRESHOLD_": "100000000000"}


def torch_env(malloc):
    """The environment of torch's side: glibc's defaults (malloc "default")
    or MALLOC_KEEP (malloc "keep")."""
    if malloc not in ("default", "keep"):
        raise SystemExit("--torch-malloc: %r, want default or keep" % malloc)
    return dict(os.environ, **(MALLOC_KEEP if malloc == "keep" else {}))


def torch_script(args, malloc="default"):
    out = subprocess.run([PY] + args, cwd=ROOT, env=torch_env(malloc), check=True, capture_output=True,
                         text=True).stdout
    r = json.loads(out.strip().splitlines()[-1])
    return {"s": r["ms_mean"] / 1000, "cpu": r["cpu_s_per_image"], "mb": r["peak_rss_mb"], "flops": r["flops"]}


def generated_dir(given, what, script):
    """Returns (folder, temporary folder or None): given, or a temporary
    folder script (a list: the generator and its arguments after the
    folder) writes."""
    if given:
        return given, None
    tmp = tempfile.TemporaryDirectory(prefix="resdet-bench-")
    print("generating the %s weights and image (%s, a few minutes) in %s" % (what, script[0], tmp.name), flush=True)
    subprocess.run([PY, script[0], tmp.name] + script[1:], cwd=ROOT, check=True, capture_output=True)
    return tmp.name, tmp


FPN_GEN = ["checkpoint/testdata/gen_tv_fpn.py", "--arch", "v1", "--min-size", "800", "--max-size", "1333"]
C4_GEN = ["detection/testdata/gen_fasterrcnn.py", "--depth", "101", "--classes", "80", "--image", "1333x800",
          "--min-size", "800", "--max-size", "1333", "--seed", "2"]


def run_case(case, a, state):
    if case.startswith("tv_r50_fpn_"):
        if "fpn" not in state:
            state["fpn"] = generated_dir(a.fpn_dir, "FPN", FPN_GEN)
        d = state["fpn"][0]
        if "fpn torch" not in state:  # the bf16 case compares with the fp32 case's torch run
            state["fpn torch"] = torch_script(["checkpoint/testdata/bench_tv_fpn.py", d, "--iters", str(a.iters),
                                               "--threads", str(a.threads)], a.torch_malloc)
        t = state["fpn torch"]
        bench = "BenchmarkDetectFPNBF16" if case.endswith("_bf16") else "BenchmarkDetectFPN"
        g = go_bench("checkpoint", bench, a.iters, a.threads, {"RESDET_TVFPN_DIR": d})
    elif case.startswith("r101_c4_"):
        if "c4" not in state:
            state["c4"] = generated_dir(a.c4_dir, "C4", C4_GEN)
        d = state["c4"][0]
        if "c4 torch" not in state:  # the bf16 case compares with the fp32 case's torch run
            state["c4 torch"] = torch_script(["cmd/detect/testdata/bench_torchvision.py", d, "--iters",
                                              str(a.iters), "--threads", str(a.threads)], a.torch_malloc)
        t = state["c4 torch"]
        bench = "BenchmarkDetect/align-bf16" if case.endswith("_bf16") else "BenchmarkDetect/align"
        g = go_bench("cmd/detect", bench, a.iters, a.threads, {"RESDET_FRCNN_DIR": d})
    else:
        args = ["detection/testdata/bench_d2_c4.py", "--height", "800", "--width", "1333",
                "--iters", str(a.iters), "--threads", str(a.threads)]
        if case.endswith("_vs_bf16"):
            args += ["--bf16", "--channels-last"]
        key = " ".join(args)  # the bf16 case compares with the fp32 case's torch run
        if key not in state:
            state[key] = torch_script(args, a.torch_malloc)
        t = state[key]
        bench = "BenchmarkDetectD2C4BF16" if "_bf16" in case else "BenchmarkDetectD2C4"
        g = go_bench("detection", bench, a.iters, a.threads, {})
    return t, g


def cpu_mhz():
    with open("/proc/cpuinfo") as f:
        for line in f:
            if line.startswith("cpu MHz"):
                return float(line.split(":")[1])
    return 0.0


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--iters", type=int, default=3)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--case", nargs="*", default=CASES, choices=CASES)
    ap.add_argument("--torch-malloc", default="default", choices=["default", "keep"],
                    help="glibc settings of torch's side: its defaults, or keep (no mmap, no trim: "
                         "freed memory is reused, not faulted in again; faster where page faults are "
                         "slow, larger peak RSS)")
    ap.add_argument("--fpn-dir", help="a folder gen_tv_fpn.py --arch v1 --min-size 800 --max-size 1333 wrote "
                                      "(default: generated into a temporary folder)")
    ap.add_argument("--c4-dir", help="a folder gen_fasterrcnn.py %s wrote (default: generated into a "
                                     "temporary folder)" % " ".join(C4_GEN[1:]))
    ap.add_argument("--flop-per-cycle", type=float, default=64, help="fp32 FLOP per cycle and core (see above)")
    a = ap.parse_args()
    peak = a.threads * cpu_mhz() / 1000 * a.flop_per_cycle
    print("fp32 peak: %d threads x %.2f GHz x %g FLOP/cycle = %.0f GFLOP/s" % (
        a.threads, cpu_mhz() / 1000, a.flop_per_cycle, peak))
    print("torch's glibc malloc: %s" % a.torch_malloc)
    print("%-34s %7s %7s | %7s %7s %5s | %7s %7s %5s | %6s %6s %5s | %6s %6s %5s %5s" % (
        "case", "go GF", "th GF", "go s", "torch s", "ratio", "go cpu", "th cpu", "ratio",
        "go MB", "th MB", "ratio", "go GF/s", "th GF/s", "go %", "th %"))
    state = {}
    try:
        for case in a.case:
            try:
                t, g = run_case(case, a, state)
            except SystemExit as e:
                if "_bf16" not in case:
                    raise
                print("%-34s skipped: %s" % (case, str(e).splitlines()[0]), flush=True)
                continue
            gfs, tfs = g["flops"] / g["s"] / 1e9, t["flops"] / t["s"] / 1e9
            print("%-34s %7.1f %7.1f | %7.3f %7.3f %5.2f | %7.3f %7.3f %5.2f | %6.0f %6.0f %5.2f | %6.1f %6.1f %5.1f %5.1f" % (
                case, g["flops"] / 1e9, t["flops"] / 1e9, g["s"], t["s"], g["s"] / t["s"], g["cpu"], t["cpu"],
                g["cpu"] / t["cpu"], g["mb"], t["mb"], g["mb"] / t["mb"], gfs, tfs,
                100 * gfs / peak if peak else 0, 100 * tfs / peak if peak else 0), flush=True)
    finally:
        for key in ("fpn", "c4"):
            tmp = state.get(key, (None, None))[1]
            if tmp is not None:
                tmp.cleanup()


if __name__ == "__main__":
    sys.exit(main())
