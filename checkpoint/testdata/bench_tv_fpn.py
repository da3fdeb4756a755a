#!/usr/bin/python3
"""Times torchvision's fasterrcnn_resnet50_fpn (v1) end to end on one image,
for comparison with BenchmarkDetectFPN (checkpoint/bench_fpn_test.go).

Usage: /usr/bin/python3 bench_tv_fpn.py DIR [--iters 3] [--threads 2]

DIR is written by gen_tv_fpn.py --arch v1 (model.pth, the images, ref.json with
the sizes). Each iteration reads the first image (PIL), converts it to a float
tensor and runs model([x]) under no_grad. One warm-up run is not timed; it
also counts the convolution and linear FLOPs (scripts/torch_flops.py).
Prints one JSON line: ms per image (mean and min), CPU seconds per image
(user+system, all threads), the process's peak RSS in MiB (ru_maxrss), the
FLOPs of one image and GFLOP/s over the mean wall time.
"""
import argparse
import json
import os
import resource
import sys
import time

import numpy as np
import torch
from PIL import Image

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.join(HERE, "..", "..", "scripts"))
import gen_tv_fpn  # noqa: E402
from torch_flops import count_flops  # noqa: E402


def cpu():
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("dir")
    ap.add_argument("--iters", type=int, default=3)
    ap.add_argument("--threads", type=int, default=2)
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    ref = json.load(open(os.path.join(a.dir, "ref.json")))
    model = gen_tv_fpn.build("v1", ref["min_size"], ref["max_size"])
    model.load_state_dict(torch.load(os.path.join(a.dir, "model.pth")))
    path = os.path.join(a.dir, ref["images"][0]["file"])

    def once():
        x = torch.from_numpy(np.array(Image.open(path).convert("RGB"))).permute(2, 0, 1).float() / 255
        with torch.no_grad():
            return model([x])[0]

    flops = count_flops(model, once)  # also the warm-up run
    times = []
    c0 = cpu()
    for _ in range(a.iters):
        t0 = time.perf_counter()
        once()
        times.append(time.perf_counter() - t0)
    c1 = cpu()
    mean = sum(times) / len(times)
    print(json.dumps({"model": "fasterrcnn_resnet50_fpn", "image": ref["images"][0]["file"],
                      "ms_mean": 1000 * mean, "ms_min": 1000 * min(times),
                      "cpu_s_per_image": (c1 - c0) / a.iters,
                      "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
                      "flops": flops, "gflops_per_s": flops / mean / 1e9, "threads": a.threads}))


if __name__ == "__main__":
    main()
