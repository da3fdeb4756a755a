#!/usr/bin/python3
"""Generates the torchvision reference fixtures of resdet's box and detection
packages (torch 1.13, torchvision 0.14, CPU, float32).

Usage: /usr/bin/python3 gen_fixtures.py box|detection|large OUTDIR

box, detection: the small fixtures committed in box/testdata and
detection/testdata. large: bigger cases (C4-sized maps) that the detection
tests generate into a temporary directory when torch is available. The
helpers arr, write and rand_boxes come from ops/testdata/gen_fixtures.py.

Each fixture is a JSON file: {case name: {field: value}}. Arrays are
{"shape": [...], "dtype": "f32"|"i64", "b64": base64 of the little-endian
row-major data}, so float32 values round-trip exactly. Inputs are random with
fixed seeds. The Go tests read the committed files; `go test -update` in
box/ or detection/ reruns this script.
"""
import importlib.util
import math
import os
import sys

import torch
import torchvision
from torchvision.models.detection import _utils as det_utils
from torchvision.models.detection.anchor_utils import AnchorGenerator
from torchvision.models.detection.image_list import ImageList
from torchvision.models.detection.roi_heads import RoIHeads
from torchvision.models.detection.rpn import RegionProposalNetwork, RPNHead, concat_box_prediction_layers
from torchvision.ops import boxes as box_ops



def _load_ops_fixtures():
    """ops/testdata/gen_fixtures.py, loaded by path (it has this file's name)."""
    path = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "ops", "testdata", "gen_fixtures.py")
    spec = importlib.util.spec_from_file_location("ops_gen_fixtures", path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


ops_fixtures = _load_ops_fixtures()
arr, write, rand_boxes, large_roi = ops_fixtures.arr, ops_fixtures.write, ops_fixtures.rand_boxes, ops_fixtures.large_roi


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


def gen_detection(outdir):
    g = torch.Generator().manual_seed(2)
    write(outdir, "anchors.json", gen_anchors(g))
    write(outdir, "proposals.json", gen_proposals(g))
    write(outdir, "postprocess.json", gen_postprocess(g))


def gen_large(outdir):
    g = torch.Generator().manual_seed(4)
    large_roi(g)  # the ops package's large cases come first in this stream
    write(outdir, "proposals.json", gen_proposals(g, [
        ("c4_600x1000_test", (600, 1000), (38, 63), 1000, 300, False),
        ("c4_600x1000_train", (600, 1000), (38, 63), 2000, 2000, True),
    ]))
    write(outdir, "postprocess.json", gen_postprocess(g, [
        ("voc_1000", 1000, 21, (600, 800), 4.0),
        ("coco_300", 300, 81, (600, 1000), 6.0),
    ]))


if __name__ == "__main__":
    modes = {"box": gen_box, "detection": gen_detection, "large": gen_large}
    if len(sys.argv) != 3 or sys.argv[1] not in modes:
        sys.exit(__doc__)
    torch.set_num_threads(1)
    modes[sys.argv[1]](sys.argv[2])
