#!/usr/bin/python3
"""Detectron2's ResizeShortestEdge output sizes, for imageio's
TestShortestEdgeSizeMatchesPython.

Usage: /usr/bin/python3 gen_sizes.py OUTDIR

Writes OUTDIR/sizes.json, a list of [w, h, short, max, new_w, new_h] with Python doubles,
following detectron2/data/transforms/augmentation_impl.py
(ResizeShortestEdge.get_output_shape) step by step.
"""
import json
import os
import random
import sys


def output_shape(h, w, short, max_size):
    size = short * 1.0
    scale = size / min(h, w)
    if h < w:
        newh, neww = size, scale * w
    else:
        newh, neww = scale * h, size
    if max(newh, neww) > max_size:
        scale = max_size * 1.0 / max(newh, neww)
        newh = newh * scale
        neww = neww * scale
    return int(newh + 0.5), int(neww + 0.5)


def main():
    rng = random.Random(7)
    sizes = [(512, 600), (741, 240), (1000, 872), (451, 300), (640, 427), (600, 512),
             (512, 512), (1, 1), (1, 5000), (5000, 1), (3, 2), (2, 3), (1333, 800), (800, 1333)]
    sizes += [(w, h) for w in range(1, 1400, 37) for h in range(1, 1400, 53)]
    sizes += [(rng.randint(1, 6000), rng.randint(1, 6000)) for _ in range(3000)]
    rules = [(800, 1333), (600, 1000), (640, 1333), (1, 1), (7, 9)]
    out = []
    for i, (w, h) in enumerate(sizes):
        short, max_size = rules[i % len(rules)] if i >= 14 else (800, 1333)
        nh, nw = output_shape(h, w, short, max_size)
        out.append([w, h, short, max_size, nw, nh])
    with open(os.path.join(sys.argv[1], "sizes.json"), "w") as f:
        json.dump(out, f)


if __name__ == "__main__":
    main()
