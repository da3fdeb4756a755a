#!/usr/bin/python3
"""Generates the torch/torchvision reference fixtures of resdet's ops package
(torch 1.13, torchvision 0.14, CPU, float32).

Usage: /usr/bin/python3 gen_fixtures.py ops|large|bench OUTDIR

ops: the small fixtures committed in ops/testdata (roi_align.json,
roi_pool.json, losses.json). large: bigger RoI cases (C4-sized maps) that the
ops tests generate into a temporary directory when torch is available.
bench: times torchvision's roi_align and roi_pool on the benchmark shape.

Each fixture is a JSON file: {case name: {field: value}}. Arrays are
{"shape": [...], "dtype": "f32"|"i64", "b64": base64 of the little-endian
row-major data}, so float32 values round-trip exactly. Inputs are random with
fixed seeds. The Go tests read the committed files; `go test -update` in ops/
reruns this script. detection/testdata's generators import arr, write,
rand_boxes and the case builders from here (their random streams continue
after these cases).

losses.json: the elementwise losses against torch.nn.functional on random
inputs (value and gradient).
"""
import base64
import json
import os
import sys
import time

import torch
import torch.nn.functional as F
import torchvision


def arr(t):
    t = torch.as_tensor(t).detach().contiguous()
    if t.dtype.is_floating_point:
        a, dt = t.to(torch.float32).numpy().astype("<f4"), "f32"
    else:
        a, dt = t.to(torch.int64).numpy().astype("<i8"), "i64"
    return {"shape": list(a.shape), "dtype": dt, "b64": base64.b64encode(a.tobytes()).decode()}


def write(outdir, name, cases):
    path = os.path.join(outdir, name)
    tmp = path + ".tmp"
    with open(tmp, "w") as f:
        json.dump(cases, f, indent=0, sort_keys=True)
    os.replace(tmp, path)


def rand_boxes(g, n, w, h, min_side=1.0, max_side=None):
    """Valid random boxes inside roughly [0, w] x [0, h]."""
    max_side = max_side or min(w, h) / 2
    x1 = torch.rand(n, generator=g) * w
    y1 = torch.rand(n, generator=g) * h
    bw = min_side + torch.rand(n, generator=g) * (max_side - min_side)
    bh = min_side + torch.rand(n, generator=g) * (max_side - min_side)
    return torch.stack([x1, y1, x1 + bw, y1 + bh], 1)


def roi_inputs(g, n, c, h, w, k, scale):
    feat = torch.randn(n, c, h, w, generator=g)
    iw, ih = w / scale, h / scale
    b = rand_boxes(g, k, iw, ih, 0.5, max(iw, ih) * 0.8)
    b[: k // 6] -= torch.tensor([iw, ih, iw, ih]) * 0.3  # partly outside (top/left)
    b[k // 6: k // 3] += torch.tensor([iw, ih, iw, ih]) * 0.4  # partly outside (bottom/right)
    b[k // 3: k // 3 + 2, 2:] = b[k // 3: k // 3 + 2, :2]  # empty boxes
    b[k // 3 + 2, 2] = b[k // 3 + 2, 0] - 3  # x2 < x1
    b[k // 3 + 3] = torch.tensor([-50.0, -50.0, -20.0, -10.0])  # entirely outside
    b[k // 3 + 4] = torch.tensor([iw + 5, ih + 5, iw + 40, ih + 30])  # entirely outside
    idx = torch.randint(0, n, (k, 1), generator=g).float()
    return feat, torch.cat([idx, b], 1)


def gen_roi(g):
    align, pool = {}, {}
    for name, shape, k, scale, out, sr, aligned in [
        ("s05_7x7_sr2", (2, 5, 11, 14), 30, 0.5, (7, 7), 2, False),
        ("s025_5x4_adaptive_aligned", (2, 4, 12, 9), 30, 0.25, (5, 4), 0, True),
        ("c4_14x14_adaptive", (1, 3, 19, 25), 24, 1 / 16, (14, 14), 0, False),
        ("c4_14x14_adaptive_aligned", (1, 3, 19, 25), 24, 1 / 16, (14, 14), -1, True),
        ("s1_3x3_sr1", (1, 2, 6, 7), 18, 1.0, (3, 3), 1, False),
    ]:
        feat, rois = roi_inputs(g, *shape, k, scale)
        feat.requires_grad_(True)
        y = torchvision.ops.roi_align(feat, rois, out, scale, sr, aligned)
        gy = torch.randn(y.shape, generator=g)
        y.backward(gy)
        align[name] = {"feat": arr(feat), "rois": arr(rois), "scale": scale, "out": list(out),
                       "sampling_ratio": sr, "aligned": aligned, "y": arr(y), "grad_y": arr(gy),
                       "grad_feat": arr(feat.grad)}
    for name, shape, k, scale, out in [
        ("s05_7x7", (2, 5, 11, 14), 30, 0.5, (7, 7)),
        ("c4_14x14", (1, 3, 19, 25), 24, 1 / 16, (14, 14)),
        ("s1_4x3", (2, 3, 8, 10), 24, 1.0, (4, 3)),
    ]:
        feat, rois = roi_inputs(g, *shape, k, scale)
        feat.requires_grad_(True)
        y = torchvision.ops.roi_pool(feat, rois, out, scale)
        gy = torch.randn(y.shape, generator=g)
        y.backward(gy)
        pool[name] = {"feat": arr(feat), "rois": arr(rois), "scale": scale, "out": list(out),
                      "y": arr(y), "grad_y": arr(gy), "grad_feat": arr(feat.grad)}
    return align, pool


def large_roi(g):
    """The large RoIAlign and RoIPool cases, drawn from g."""
    align, pool = {}, {}
    for aligned in (False, True):
        feat, rois = roi_inputs(g, 2, 64, 38, 50, 200, 1 / 16)
        feat.requires_grad_(True)
        y = torchvision.ops.roi_align(feat, rois, (14, 14), 1 / 16, 0, aligned)
        gy = torch.randn(y.shape, generator=g)
        y.backward(gy)
        align["c4_200_aligned_%s" % aligned] = {
            "feat": arr(feat), "rois": arr(rois), "scale": 1 / 16, "out": [14, 14], "sampling_ratio": 0,
            "aligned": aligned, "y": arr(y), "grad_y": arr(gy), "grad_feat": arr(feat.grad)}
    feat, rois = roi_inputs(g, 2, 64, 38, 50, 200, 1 / 16)
    feat.requires_grad_(True)
    y = torchvision.ops.roi_pool(feat, rois, (14, 14), 1 / 16)
    gy = torch.randn(y.shape, generator=g)
    y.backward(gy)
    pool["c4_200"] = {"feat": arr(feat), "rois": arr(rois), "scale": 1 / 16, "out": [14, 14],
                      "y": arr(y), "grad_y": arr(gy), "grad_feat": arr(feat.grad)}
    return align, pool


def grad_case(fn, *inputs):
    xs = [x.clone().requires_grad_(True) for x in inputs]
    y = fn(*xs)
    y.backward()
    return y, [x.grad for x in xs]


def elementwise_loss_cases(g):
    """The BCE, smooth L1 and cross-entropy cases, drawn from g."""
    cases = {}
    x = torch.randn(50, generator=g) * 3
    idx = torch.cat([torch.randperm(50, generator=g)[:30], torch.tensor([3, 3, 7])])
    y = torch.cat([(torch.rand(28, generator=g) > 0.5).float(), torch.rand(5, generator=g)])
    x[idx[0]] = 40.0  # saturated logits
    x[idx[1]] = -40.0
    v, (gx,) = grad_case(lambda x: F.binary_cross_entropy_with_logits(x[idx], y), x)
    cases["bce"] = {"x": arr(x), "idx": arr(idx), "target": arr(y), "value": float(v), "grad": arr(gx)}

    for name, beta, norm in [("smooth_l1_ninth", 1.0 / 9, 7.0), ("smooth_l1_one", 1.0, 1.0), ("smooth_l1_zero", 0.0, 3.0)]:
        x = torch.randn(40, generator=g) * 0.3
        idx = torch.cat([torch.randperm(40, generator=g)[:25], torch.tensor([5, 5])])
        t = torch.randn(27, generator=g) * 0.3
        t[0] = x[idx[0]] + 0.05  # inside and outside the quadratic zone
        t[1] = x[idx[1]] - 0.2
        v, (gx,) = grad_case(lambda x: F.smooth_l1_loss(x[idx], t, beta=beta, reduction="sum") / norm, x)
        cases[name] = {"x": arr(x), "idx": arr(idx), "target": arr(t), "beta": beta, "norm": norm,
                       "value": float(v), "grad": arr(gx)}

    x = torch.randn(20, 6, generator=g) * 3
    x[0, 2] = 60.0
    lab = torch.randint(0, 6, (20,), generator=g)
    v, (gx,) = grad_case(lambda x: F.cross_entropy(x, lab), x)
    cases["cross_entropy"] = {"x": arr(x), "labels": arr(lab), "value": float(v), "grad": arr(gx)}
    return cases


def gen_ops(outdir):
    g = torch.Generator().manual_seed(2)
    align, pool = gen_roi(g)
    write(outdir, "roi_align.json", align)
    write(outdir, "roi_pool.json", pool)
    write(outdir, "losses.json", elementwise_loss_cases(torch.Generator().manual_seed(11)))


def gen_large(outdir):
    align, pool = large_roi(torch.Generator().manual_seed(4))
    write(outdir, "roi_align.json", align)
    write(outdir, "roi_pool.json", pool)


# ---------------------------------------------------------------- bench

def bench(outdir):
    """Times torchvision.ops.roi_align and roi_pool on the C4 benchmark shape (2 threads) and
    writes its RoIs to OUTDIR/bench_rois.json for the Go benchmark."""
    torch.set_num_threads(2)
    g = torch.Generator().manual_seed(3)
    feat = torch.randn(1, 1024, 38, 63, generator=g, requires_grad=True)
    b = rand_boxes(g, 300, 63 * 16, 38 * 16, 16.0, 400.0)
    rois = torch.cat([torch.zeros(300, 1), b], 1)
    write(outdir, "bench_rois.json", {"c4_300": {"rois": arr(rois)}})
    for aligned in (False, True):
        fw, bw, fc, bc = [], [], [], []
        for _ in range(5):
            c0, t0 = time.process_time(), time.perf_counter()
            y = torchvision.ops.roi_align(feat, rois, (14, 14), 1 / 16, 0, aligned)
            c1, t1 = time.process_time(), time.perf_counter()
            y.backward(torch.ones_like(y))
            c2, t2 = time.process_time(), time.perf_counter()
            feat.grad = None
            fw.append(t1 - t0)
            bw.append(t2 - t1)
            fc.append(c1 - c0)
            bc.append(c2 - c1)
        print("torchvision roi_align aligned=%s 300x[1,1024,38,63]->14x14 (min of 5): "
              "forward %.1f ms wall, %.1f ms cpu; backward %.1f ms wall, %.1f ms cpu"
              % (aligned, min(fw) * 1e3, min(fc) * 1e3, min(bw) * 1e3, min(bc) * 1e3))
    fw, bw, fc, bc = [], [], [], []
    for _ in range(5):
        c0, t0 = time.process_time(), time.perf_counter()
        y = torchvision.ops.roi_pool(feat, rois, (14, 14), 1 / 16)
        c1, t1 = time.process_time(), time.perf_counter()
        y.backward(torch.ones_like(y))
        c2, t2 = time.process_time(), time.perf_counter()
        feat.grad = None
        fw.append(t1 - t0)
        bw.append(t2 - t1)
        fc.append(c1 - c0)
        bc.append(c2 - c1)
    print("torchvision roi_pool 300x[1,1024,38,63]->14x14 (min of 5): "
          "forward %.1f ms wall, %.1f ms cpu; backward %.1f ms wall, %.1f ms cpu"
          % (min(fw) * 1e3, min(fc) * 1e3, min(bw) * 1e3, min(bc) * 1e3))


if __name__ == "__main__":
    modes = {"ops": gen_ops, "large": gen_large, "bench": bench}
    if len(sys.argv) != 3 or sys.argv[1] not in modes:
        sys.exit(__doc__)
    torch.set_num_threads(1)
    modes[sys.argv[1]](sys.argv[2])
