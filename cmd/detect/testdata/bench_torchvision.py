#!/usr/bin/python3
"""Times torchvision's Faster R-CNN C4 (issue 6's construction) end to end on
one image, for comparison with BenchmarkDetect (cmd/detect/bench_test.go).

Usage: /usr/bin/python3 bench_torchvision.py DIR [--iters 5] [--threads 2] [--roi-op align|pool]

DIR is written by detection/testdata/gen_fasterrcnn.py (model.pth, image.png,
ref.json give the depth, class count and sizes). Each iteration reads the PNG
(PIL), converts it to a float tensor and runs model([x]) under no_grad, as
`detect` reads, transforms and runs an image. One warm-up run is not timed.
The warm-up run also counts the convolution and linear FLOPs
(scripts/torch_flops.py) and the RPN's proposals. Prints one JSON line: ms per
image (mean and min), CPU seconds per image (user+system, all threads), peak
RSS of the process (ru_maxrss, includes the weights), the RSS before the
first run, the FLOPs of one image and the proposal and detection counts.
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

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "../../../detection/testdata"))
import gen_fasterrcnn  # noqa: E402

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "../../../scripts"))
from torch_flops import count_flops  # noqa: E402


def rss_mb():
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return 0.0


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("dir")
    ap.add_argument("--iters", type=int, default=5)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--roi-op", default="align")
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    ref = json.load(open(os.path.join(a.dir, "ref.json")))
    model = gen_fasterrcnn.build(ref["depth"], ref["classes"], ref["min_size"], ref["max_size"]).eval()
    model.load_state_dict(torch.load(os.path.join(a.dir, "model.pth")))
    if a.roi_op == "pool":
        model.roi_heads.box_roi_pool = gen_fasterrcnn.RoIPoolC4()
    path = os.path.join(a.dir, "image.png")

    def once():
        x = torch.from_numpy(np.array(Image.open(path).convert("RGB"))).permute(2, 0, 1).float() / 255
        with torch.no_grad():
            return model([x])[0]

    before = rss_mb()
    proposals = []
    hook = model.rpn.register_forward_hook(lambda mod, inp, out: proposals.append(len(out[0][0])))
    flops = count_flops(model, once)
    hook.remove()
    times = []
    cpu0 = time.process_time()
    for _ in range(a.iters):
        t = time.perf_counter()
        out = once()
        times.append(time.perf_counter() - t)
    cpu = (time.process_time() - cpu0) / a.iters
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(json.dumps({"torch": torch.__version__, "threads": a.threads, "roi_op": a.roi_op,
                      "ms_mean": 1000 * sum(times) / len(times), "ms_min": 1000 * min(times), "cpu_s_per_image": cpu,
                      "peak_rss_mb": peak, "rss_before_mb": before, "flops": flops, "proposals": proposals[0],
                      "detections": len(out["boxes"])}))


if __name__ == "__main__":
    main()
