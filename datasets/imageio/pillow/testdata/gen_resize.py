#!/usr/bin/python3
"""Reference outputs of Pillow's BILINEAR resize for pillow's TestResizeBilinearMatchesPIL.

Usage: /usr/bin/python3 gen_resize.py OUTDIR

Writes OUTDIR/cases.json, a list of {"name", "mode", "w", "h", "new_w",
"new_h", "in", "out"}; "in" and "out" name raw files of the interleaved
8-bit pixels ([h, w, channels] row-major) before and after
PIL.Image.resize((new_w, new_h), Image.BILINEAR). "pil" in the list's
wrapper object is the Pillow version used.
"""
import json
import os
import sys

import numpy as np
import PIL
from PIL import Image


def images(w, h, channels, rng):
    """Named test images of w x h pixels: noise, smooth and hard patterns."""
    shape = (h, w, channels) if channels > 1 else (h, w)
    yy, xx = np.mgrid[0:h, 0:w]
    out = {
        "noise": rng.integers(0, 256, size=shape, dtype=np.uint8),
        "checker": np.broadcast_to((((xx + yy) % 2) * 255).astype(np.uint8)[..., None] if channels > 1
                                   else (((xx + yy) % 2) * 255).astype(np.uint8), shape).copy(),
        "white": np.full(shape, 255, dtype=np.uint8),
    }
    grad = ((xx * 7 + yy * 13) % 256).astype(np.uint8)
    if channels > 1:
        grad = np.stack([grad, 255 - grad, (grad * 3) % 256][:channels], axis=-1).astype(np.uint8)
    out["gradient"] = grad
    return out


def main():
    outdir = sys.argv[1]
    rng = np.random.default_rng(20240611)
    pairs = [
        # (w, h, new_w, new_h)
        (640, 480, 1067, 800),    # upscale, Detectron2-like
        (1000, 872, 917, 800),    # mild downscale (antialiased)
        (512, 600, 800, 938),
        (741, 240, 1333, 432),
        (97, 61, 13, 9),          # strong downscale
        (300, 7, 3, 700),         # down in x, up in y
        (5, 400, 1333, 2),        # extreme ratios the other way
        (1, 1, 1, 1),             # unchanged (copy)
        (1, 1, 37, 23),           # from a single pixel
        (37, 23, 1, 1),           # to a single pixel
        (1, 50, 9, 17),           # 1-pixel-wide input
        (50, 1, 17, 9),
        (64, 48, 64, 97),         # width unchanged: vertical pass only
        (64, 48, 131, 48),        # height unchanged: horizontal pass only
        (64, 48, 64, 48),         # unchanged
        (64, 48, 32, 24),         # exact halving
        (64, 48, 128, 96),        # exact doubling
        (999, 3, 333, 1),
        (3, 999, 2, 1333),
    ]
    for _ in range(60):
        w, h = int(rng.integers(1, 200)), int(rng.integers(1, 200))
        pairs.append((w, h, int(rng.integers(1, 260)), int(rng.integers(1, 260))))
    cases = []
    for i, (w, h, nw, nh) in enumerate(pairs):
        for mode, channels in (("RGB", 3), ("L", 1)):
            if mode == "L" and i % 3:
                continue  # grey images on a third of the pairs
            imgs = images(w, h, channels, rng)
            names = list(imgs) if i < 19 else ["noise"]
            for name in names:
                arr = imgs[name]
                res = np.asarray(Image.fromarray(arr, mode).resize((nw, nh), Image.BILINEAR))
                tag = f"{i:03d}_{mode}_{name}_{w}x{h}_to_{nw}x{nh}"
                with open(os.path.join(outdir, tag + ".in"), "wb") as f:
                    f.write(np.ascontiguousarray(arr).tobytes())
                with open(os.path.join(outdir, tag + ".out"), "wb") as f:
                    f.write(np.ascontiguousarray(res).tobytes())
                cases.append({"name": tag, "mode": mode, "w": w, "h": h, "new_w": nw, "new_h": nh,
                              "in": tag + ".in", "out": tag + ".out"})
    with open(os.path.join(outdir, "cases.json"), "w") as f:
        json.dump({"pil": PIL.__version__, "cases": cases}, f)


if __name__ == "__main__":
    main()
