#!/usr/bin/python3
"""Generates the torchvision reference fixtures of resdet's box and detection
packages (torch 1.13, torchvision 0.14, CPU, float32).

Usage: /usr/bin/python3 gen_fixtures.py box|detection|large|bench OUTDIR

box, detection: the small fixtures committed in box/testdata and
detection/testdata. large: bigger cases (C4-sized maps) that the detection
tests generate into a temporary directory when torch is available.
bench: times torchvision's roi_align on the benchmark shape.

Each fixture is a JSON file: {case name: {field: value}}. Arrays are
{"shape": [...], "dtype": "f32"|"i64", "b64": base64 of the little-endian
row-major data}, so float32 values round-trip exactly. Inputs are random with
fixed seeds. The Go tests read the committed files; `go test -update` in
box/ or detection/ reruns this script.
"""
import base64
import json
import math
import os
import sys
import time

import numpy as np
import torch
import torchvision
from torchvision.models.detection import _utils as det_utils
from torchvision.models.detection.anchor_utils import AnchorGenerator
from torchvision.models.detection.image_list import ImageList
from torchvision.models.detection.roi_heads import RoIHeads
from torchvision.models.detection.rpn import RegionProposalNetwork, RPNHead, concat_box_prediction_layers
from torchvision.ops import boxes as box_ops


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


def clustered_boxes(g, n, centres, spread, size):
    """Boxes jittered around a few centres, so that many overlap."""
    k = torch.randint(0, len(centres), (n,), generator=g)
    c = torch.tensor(centres, dtype=torch.float32)[k]
    c = c + torch.randn(n, 2, generator=g) * spread
    wh = size * (0.5 + torch.rand(n, 2, generator=g))
    return torch.cat([c - wh / 2, c + wh / 2], 1)


# ---------------------------------------------------------------- box

def gen_box(outdir):
    g = torch.Generator().manual_seed(1)
    centres = [(50, 50), (120, 80), (60, 150), (200, 200), (210, 190)]

    nms = {}
    for name, n, thr, quant in [
        ("clustered_0.5", 300, 0.5, None),
        ("clustered_0.7", 300, 0.7, None),
        ("clustered_0.3", 200, 0.3, None),
        ("tied_scores_0.5", 300, 0.5, 8),  # scores take 8 values: stable order matters
    ]:
        b = clustered_boxes(g, n, centres, 12.0, 40.0)
        s = torch.rand(n, generator=g)
        if quant:
            s = torch.floor(s * quant) / quant
        nms[name] = {"boxes": arr(b), "scores": arr(s), "thresh": thr, "keep": arr(torchvision.ops.nms(b, s, thr))}
    # degenerate boxes: zero width, zero area, duplicates
    b = clustered_boxes(g, 60, centres, 5.0, 20.0)
    b[:10, 2] = b[:10, 0]
    b[10:15] = b[15:20]
    s = torch.rand(60, generator=g)
    nms["degenerate_0.5"] = {"boxes": arr(b), "scores": arr(s), "thresh": 0.5,
                             "keep": arr(torchvision.ops.nms(b, s, 0.5))}
    write(outdir, "nms.json", nms)

    bnms = {}
    for name, n, ncls in [("trick_path_500", 500, 4), ("vanilla_path_1500", 1500, 6), ("trick_path_1000", 1000, 3)]:
        b = clustered_boxes(g, n, centres, 15.0, 40.0).clamp(min=0)
        s = torch.rand(n, generator=g)
        idx = torch.randint(0, ncls, (n,), generator=g)
        bnms[name] = {"boxes": arr(b), "scores": arr(s), "idxs": arr(idx), "thresh": 0.5,
                      "keep": arr(box_ops.batched_nms(b, s, idx, 0.5))}
    b = rand_boxes(g, 80, 100, 100, 0.0, 10.0)
    bnms["remove_small"] = {"boxes": arr(b), "min_size": 2.0, "keep": arr(box_ops.remove_small_boxes(b, 2.0))}
    write(outdir, "batched_nms.json", bnms)

    coder = {}
    for name, w in [("rcnn_10_10_5_5", (10.0, 10.0, 5.0, 5.0)), ("rpn_1_1_1_1", (1.0, 1.0, 1.0, 1.0))]:
        bc = det_utils.BoxCoder(w)
        ref = rand_boxes(g, 400, 600, 400, 2.0, 300.0)
        gt = rand_boxes(g, 400, 600, 400, 2.0, 300.0)
        enc = bc.encode_single(gt, ref)
        d = torch.randn(400, 4, generator=g) * torch.tensor([w[0], w[1], w[2], w[3]]) * 0.3
        d[:20, 2:] = torch.tensor([w[2], w[3]]) * 6.0  # beyond the clamp log(1000/16) = 4.135
        dec = bc.decode_single(d, ref)
        coder[name] = {"weights": list(w), "ref": arr(ref), "gt": arr(gt), "encoded": arr(enc),
                       "deltas": arr(d), "decoded": arr(dec)}
    write(outdir, "coder.json", coder)

    matcher = {}
    gt = rand_boxes(g, 7, 300, 300, 20.0, 150.0)
    anchors = clustered_boxes(g, 400, [(80, 80), (150, 150), (220, 100)], 60.0, 80.0)
    iou = box_ops.box_iou(gt, anchors)
    quant = torch.floor(iou * 10) / 10  # ties, also of a gt's best
    for name, q, hi, lo, allow in [
        ("rpn_0.7_0.3_lowq", iou, 0.7, 0.3, True),
        ("roi_0.5_0.5", iou, 0.5, 0.5, False),
        ("rpn_quantized_ties", quant, 0.7, 0.3, True),
        ("roi_quantized_ties", quant, 0.5, 0.1, False),
    ]:
        m = det_utils.Matcher(hi, lo, allow_low_quality_matches=allow)
        matcher[name] = {"gt": arr(gt), "anchors": arr(anchors), "quality": arr(q), "high": hi, "low": lo,
                         "allow_low_quality": allow, "matches": arr(m(q))}
    write(outdir, "matcher.json", matcher)


# ---------------------------------------------------------------- detection

def gen_anchors(g):
    cases = {}
    for name, sizes, ratios, img, feat in [
        ("c4_default", (128, 256, 512), (0.5, 1.0, 2.0), (320, 416), (20, 26)),
        ("coco_sizes", (64, 128, 256, 512), (0.5, 1.0, 2.0), (96, 128), (6, 8)),
        ("odd_ratios_stride8", (32, 45), (0.3, 1.0, 2.7), (64, 40), (8, 5)),
    ]:
        ag = AnchorGenerator(sizes=(sizes,), aspect_ratios=(ratios,))
        il = ImageList(torch.zeros(1, 3, *img), [img])
        fm = torch.zeros(1, 4, *feat)
        a = ag(il, [fm])[0]
        cases[name] = {"sizes": list(sizes), "ratios": list(ratios), "image": list(img), "feat": list(feat),
                       "anchors": arr(a)}
    return cases


PROPOSAL_CASES = [
    ("test_1000_300", (320, 400), (20, 25), 1000, 300, False),
    ("train_2000_2000", (320, 400), (20, 25), 2000, 2000, True),
    ("small_map_all", (96, 128), (6, 8), 1000, 1000, False),
]


def gen_proposals(g, specs=PROPOSAL_CASES):
    cases = {}
    for name, img, feat, pre, post, training in specs:
        ag = AnchorGenerator(sizes=((128, 256, 512),), aspect_ratios=((0.5, 1.0, 2.0),))
        A = 9
        head = RPNHead(4, A)
        rpn = RegionProposalNetwork(ag, head, 0.7, 0.3, 256, 0.5,
                                    dict(training=pre, testing=pre), dict(training=post, testing=post), 0.7)
        rpn.train(training)
        # the image is padded to a multiple of 16 (stride 16); the true size is smaller
        padded = (feat[0] * 16, feat[1] * 16)
        il = ImageList(torch.zeros(1, 3, *padded), [img])
        fm = torch.zeros(1, 4, *feat)
        anchors = ag(il, [fm])
        obj = torch.randn(1, A, *feat, generator=g) * 2
        deltas = torch.randn(1, 4 * A, *feat, generator=g) * 0.3
        deltas[0, 2::4] *= 2  # wider spread of dw, dh
        o, d = concat_box_prediction_layers([obj], [deltas])
        props = rpn.box_coder.decode(d.detach(), anchors).view(1, -1, 4)
        boxes, scores = rpn.filter_proposals(props, o, il.image_sizes, [o.shape[0]])
        cases[name] = {"image": list(img), "feat": list(feat), "pre_nms_top_n": pre, "post_nms_top_n": post,
                       "training": training,
                       "anchors": arr(anchors[0]), "objectness": arr(obj[0]), "deltas": arr(deltas[0]),
                       "boxes": arr(boxes[0]), "scores": arr(scores[0])}
    return cases


POSTPROCESS_CASES = [
    ("voc_300", 300, 21, (375, 500), 4.0),
    ("few_40", 40, 5, (200, 300), 3.0),
    ("coco_100", 100, 81, (480, 640), 6.0),
]


def gen_postprocess(g, specs=POSTPROCESS_CASES):
    cases = {}
    for name, k, ncls, img, scale in specs:
        rh = RoIHeads(None, None, None, 0.5, 0.5, 512, 0.25, None, 0.05, 0.5, 100)
        props = rand_boxes(g, k, img[1], img[0], 4.0, 250.0)
        logits = torch.randn(k, ncls, generator=g) * scale
        reg = torch.randn(k, 4 * ncls, generator=g)
        boxes, scores, labels = rh.postprocess_detections(logits, reg, [props], [img])
        cases[name] = {"image": list(img), "proposals": arr(props), "class_logits": arr(logits),
                       "box_regression": arr(reg), "boxes": arr(boxes[0]), "scores": arr(scores[0]),
                       "labels": arr(labels[0])}
    return cases


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


def gen_detection(outdir):
    g = torch.Generator().manual_seed(2)
    write(outdir, "anchors.json", gen_anchors(g))
    write(outdir, "proposals.json", gen_proposals(g))
    write(outdir, "postprocess.json", gen_postprocess(g))
    align, pool = gen_roi(g)
    write(outdir, "roi_align.json", align)
    write(outdir, "roi_pool.json", pool)


def gen_large(outdir):
    g = torch.Generator().manual_seed(4)
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
    write(outdir, "roi_align.json", align)
    write(outdir, "roi_pool.json", pool)
    write(outdir, "proposals.json", gen_proposals(g, [
        ("c4_600x1000_test", (600, 1000), (38, 63), 1000, 300, False),
        ("c4_600x1000_train", (600, 1000), (38, 63), 2000, 2000, True),
    ]))
    write(outdir, "postprocess.json", gen_postprocess(g, [
        ("voc_1000", 1000, 21, (600, 800), 4.0),
        ("coco_300", 300, 81, (600, 1000), 6.0),
    ]))


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
    modes = {"box": gen_box, "detection": gen_detection, "large": gen_large, "bench": bench}
    if len(sys.argv) != 3 or sys.argv[1] not in modes:
        sys.exit(__doc__)
    torch.set_num_threads(1)
    modes[sys.argv[1]](sys.argv[2])
