#!/usr/bin/python3
"""Generates the torchvision reference fixtures of resdet's training targets
and losses (detection/targets*.go, detection/loss*.go): torch 1.13,
torchvision 0.14, CPU, float32.

Usage: /usr/bin/python3 gen_loss_fixtures.py OUTDIR

Writes OUTDIR/targets.json and OUTDIR/losses.json in the format of
gen_fixtures.py: {case name: {field: value}}, arrays as {"shape", "dtype":
"f32"|"i64", "b64": little-endian row-major data}. Inputs are random with
fixed seeds. `go test -update` in detection/ reruns this script.

targets.json, per case: the inputs (anchors or proposals, gt boxes and
labels, image size) and torchvision's targets before sampling: labels,
matched indices and regression targets. The "paper" cases apply the
original code's options on top of torchvision's matcher: cross-boundary
anchors removed before matching and labelled -1; proposals whose best IoU is
below 0.1 labelled -1.

losses.json: torchvision's two loss functions
(RegionProposalNetwork.compute_loss, roi_heads.fastrcnn_loss) on random head
outputs with targets from torchvision, the sampler's choice recorded so the
Go side can feed the same indices.
"""
import os
import sys

import torch
from torchvision.models.detection import _utils as det_utils
from torchvision.models.detection.anchor_utils import AnchorGenerator
from torchvision.models.detection.image_list import ImageList
from torchvision.models.detection.roi_heads import RoIHeads, fastrcnn_loss
from torchvision.models.detection.rpn import RegionProposalNetwork, RPNHead, concat_box_prediction_layers
from torchvision.ops import boxes as box_ops

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import gen_fixtures  # noqa: E402  (this folder's; it loads ops/testdata/gen_fixtures.py)

_ops = gen_fixtures.ops_fixtures
arr, write, grad_case = _ops.arr, _ops.write, _ops.grad_case


def rand_gt(g, n, w, h, lo=12.0, hi=80.0):
    x1 = torch.rand(n, generator=g) * (w - lo)
    y1 = torch.rand(n, generator=g) * (h - lo)
    bw = lo + torch.rand(n, generator=g) * (hi - lo)
    bh = lo + torch.rand(n, generator=g) * (hi - lo)
    return torch.stack([x1, y1, torch.clamp(x1 + bw, max=w), torch.clamp(y1 + bh, max=h)], 1)


def jitter(g, boxes, n, scale):
    """n boxes near the given ones: each corner moved by up to scale * size."""
    k = torch.randint(0, len(boxes), (n,), generator=g)
    b = boxes[k]
    wh = (b[:, 2:] - b[:, :2]).repeat(1, 2)
    out = b + (torch.rand(n, 4, generator=g) * 2 - 1) * scale * wh
    x1 = torch.minimum(out[:, 0], out[:, 2] - 1)
    y1 = torch.minimum(out[:, 1], out[:, 3] - 1)
    return torch.stack([x1, y1, out[:, 2], out[:, 3]], 1)


SIZES, RATIOS = (32, 64, 128), (0.5, 1.0, 2.0)
PAD_H, PAD_W, STRIDE = 96, 128, 16


def make_anchors(n_images, image_sizes):
    gen = AnchorGenerator((SIZES,), (RATIOS,))
    images = ImageList(torch.zeros(n_images, 3, PAD_H, PAD_W), image_sizes)
    feat = torch.zeros(n_images, 4, PAD_H // STRIDE, PAD_W // STRIDE)
    return gen, gen(images, [feat])


def make_rpn(gen, batch=256):
    head = RPNHead(4, gen.num_anchors_per_location()[0])
    return RegionProposalNetwork(gen, head, 0.7, 0.3, batch, 0.5,
                                 dict(training=2000, testing=1000), dict(training=2000, testing=1000), 0.7)


def rpn_targets(rpn, anchors, gt):
    """torchvision's labels, matched indices and regression targets."""
    labels, matched_gt = rpn.assign_targets_to_anchors([anchors], [{"boxes": gt}])
    if gt.numel() == 0:
        matched = torch.full((anchors.shape[0],), -1, dtype=torch.int64)
    else:
        matched = rpn.proposal_matcher(box_ops.box_iou(gt, anchors))
    deltas = rpn.box_coder.encode(matched_gt, [anchors])[0]
    return labels[0], matched, deltas


def rpn_targets_paper(rpn, anchors, gt, h, w):
    """py-faster-rcnn: only anchors inside the image are matched."""
    inside = (anchors[:, 0] >= 0) & (anchors[:, 1] >= 0) & (anchors[:, 2] <= w) & (anchors[:, 3] <= h)
    idx = torch.where(inside)[0]
    labels = torch.full((anchors.shape[0],), -1.0)
    matched = torch.full((anchors.shape[0],), -2, dtype=torch.int64)
    m = rpn.proposal_matcher(box_ops.box_iou(gt, anchors[idx]))
    matched[idx] = m
    lab = (m >= 0).float()
    lab[m == -1] = 0.0
    lab[m == -2] = -1.0
    labels[idx] = lab
    deltas = rpn.box_coder.encode([gt[matched.clamp(min=0)]], [anchors])[0]
    return labels, matched, deltas, inside


def make_roi_heads(batch=512, fg=0.5, bg=0.5):
    return RoIHeads(None, None, None, fg, bg, batch, 0.25, None, 0.05, 0.5, 100)


def roi_targets(heads, proposals, gt, gt_labels):
    """Before sampling: RoIs (proposals + gt), labels, matched indices (as
    torchvision returns them, clamped to >= 0), regression targets."""
    rois = heads.add_gt_proposals([proposals], [gt])[0]
    matched, labels = heads.assign_targets_to_proposals([rois], [gt], [gt_labels])
    gt_for = gt if gt.numel() else torch.zeros(1, 4)
    deltas = heads.box_coder.encode([gt_for[matched[0]]], [rois])[0]
    return rois, labels[0], matched[0], deltas


def gen_targets(outdir):
    g = torch.Generator().manual_seed(7)
    cases = {}
    gen, anchors = make_anchors(1, [(PAD_H, PAD_W)])
    anchors = anchors[0]
    rpn = make_rpn(gen)

    gt = rand_gt(g, 5, PAD_W, PAD_H)
    # A box halfway between two anchors of the same shape: tied best anchors.
    a = anchors[4 * 9 + 3]
    tie = a + torch.tensor([STRIDE / 2, 0, STRIDE / 2, 0])
    gt_tie = torch.cat([gt[:3], tie[None]])
    for name, boxes in [("rpn_random", gt), ("rpn_ties", gt_tie), ("rpn_no_gt", torch.zeros(0, 4))]:
        labels, matched, deltas = rpn_targets(rpn, anchors, boxes)
        cases[name] = {"anchors": arr(anchors), "gt": arr(boxes), "img_w": PAD_W, "img_h": PAD_H, "paper": False,
                       "labels": arr(labels), "matched": arr(matched), "deltas": arr(deltas)}
    h, w = 90, 120
    gt_small = rand_gt(g, 4, w, h)
    labels, matched, deltas, inside = rpn_targets_paper(rpn, anchors, gt_small, h, w)
    cases["rpn_paper_border"] = {"anchors": arr(anchors), "gt": arr(gt_small), "img_w": w, "img_h": h,
                                 "paper": True, "labels": arr(labels), "matched": arr(matched),
                                 "deltas": arr(deltas), "inside": arr(inside.long())}

    heads = make_roi_heads()
    gtb = rand_gt(g, 4, 200, 150, 20, 90)
    gtl = torch.tensor([3, 1, 4, 3])
    props = torch.cat([jitter(g, gtb, 60, 0.3), rand_gt(g, 30, 200, 150, 4, 60)])
    for name, boxes, labs in [("roi_random", gtb, gtl), ("roi_no_gt", torch.zeros(0, 4), torch.zeros(0, dtype=torch.int64))]:
        rois, labels, matched, deltas = roi_targets(heads, props, boxes, labs)
        cases[name] = {"proposals": arr(props), "gt": arr(boxes), "gt_labels": arr(labs), "paper": False,
                       "rois": arr(rois), "labels": arr(labels), "matched": arr(matched), "deltas": arr(deltas)}
    rois, labels, matched, deltas = roi_targets(heads, props, gtb, gtl)
    best = box_ops.box_iou(gtb, rois).max(0).values
    labels = labels.clone()
    labels[(labels == 0) & (best < 0.1)] = -1
    cases["roi_paper_bg_lo"] = {"proposals": arr(props), "gt": arr(gtb), "gt_labels": arr(gtl), "paper": True,
                                "rois": arr(rois), "labels": arr(labels), "matched": arr(matched), "deltas": arr(deltas)}
    write(outdir, "targets.json", cases)


class RecordingSampler:
    """Wraps torchvision's sampler and keeps the masks it returned."""

    def __init__(self, inner):
        self.inner = inner
        self.pos, self.neg = None, None

    def __call__(self, matched_idxs):
        pos, neg = self.inner(matched_idxs)
        self.pos = [torch.where(p)[0] for p in pos]
        self.neg = [torch.where(n)[0] for n in neg]
        return pos, neg


def gen_losses(outdir):
    g = torch.Generator().manual_seed(11)
    cases = {}

    _ops.elementwise_loss_cases(g)  # in ops/testdata/losses.json; this stream continues after them

    # RPN: three images (one without ground truth), sampler as in torchvision.
    n = 3
    gen, anchors = make_anchors(n, [(PAD_H, PAD_W)] * n)
    rpn = make_rpn(gen, batch=64)
    gts = [rand_gt(g, 4, PAD_W, PAD_H), torch.zeros(0, 4), rand_gt(g, 2, PAD_W, PAD_H)]
    labels, matched_gt = rpn.assign_targets_to_anchors(anchors, [{"boxes": b} for b in gts])
    reg = rpn.box_coder.encode(matched_gt, anchors)
    a, hh, ww = 9, PAD_H // STRIDE, PAD_W // STRIDE
    obj = torch.randn(n, a, hh, ww, generator=g)
    dl = torch.randn(n, 4 * a, hh, ww, generator=g) * 0.5
    torch.manual_seed(3)
    rec = RecordingSampler(rpn.fg_bg_sampler)
    rpn.fg_bg_sampler = rec

    def rpn_loss(o, d):
        of, df = concat_box_prediction_layers([o], [d])
        lo, lb = rpn.compute_loss(of, df, labels, reg)
        rpn_loss.parts = (lo, lb)
        return lo + lb

    _, (go, gd) = grad_case(rpn_loss, obj, dl)
    lo, lb = rpn_loss.parts
    c = {"objectness": arr(obj), "deltas": arr(dl), "loss_objectness": float(lo), "loss_box": float(lb),
         "grad_objectness": arr(go), "grad_deltas": arr(gd), "anchors": arr(anchors[0]),
         "img_w": PAD_W, "img_h": PAD_H, "batch": 64}
    for i in range(n):
        c[f"gt{i}"] = arr(gts[i])
        c[f"pos{i}"] = arr(rec.pos[i])
        c[f"neg{i}"] = arr(rec.neg[i])
        c[f"labels{i}"] = arr(labels[i])
    cases["rpn_loss"] = c

    # Box head: two images (the second without ground truth), 5 classes.
    heads = make_roi_heads(batch=48)
    rec = RecordingSampler(heads.fg_bg_sampler)
    heads.fg_bg_sampler = rec
    gtb = rand_gt(g, 3, 200, 150, 20, 90)
    gtl = torch.tensor([2, 4, 1])
    props = [torch.cat([jitter(g, gtb, 50, 0.3), rand_gt(g, 30, 200, 150, 4, 60)]), rand_gt(g, 40, 200, 150, 4, 60)]
    targets = [{"boxes": gtb, "labels": gtl}, {"boxes": torch.zeros(0, 4), "labels": torch.zeros(0, dtype=torch.int64)}]
    sp, smatched, slabels, sreg = heads.select_training_samples(props, targets)
    k = sum(len(p) for p in sp)
    nc = 5
    cls = torch.randn(k, nc, generator=g) * 2
    box = torch.randn(k, 4 * nc, generator=g) * 0.5
    lab, rg = torch.cat(slabels), torch.cat(sreg)

    def box_loss(cl, bx):
        lc, lb = fastrcnn_loss(cl, bx, slabels, sreg)
        box_loss.parts = (lc, lb)
        return lc + lb

    _, (gc, gb) = grad_case(box_loss, cls, box)
    lc, lb = box_loss.parts
    c = {"class_logits": arr(cls), "box_regression": arr(box), "loss_classifier": float(lc), "loss_box_reg": float(lb),
         "grad_class_logits": arr(gc), "grad_box_regression": arr(gb), "gt0": arr(gtb), "gt_labels0": arr(gtl),
         "gt1": arr(targets[1]["boxes"]), "gt_labels1": arr(targets[1]["labels"]), "batch": 48,
         "sampled_labels": arr(lab), "sampled_deltas": arr(rg)}
    for i in range(2):
        c[f"proposals{i}"] = arr(props[i])
        c[f"pos{i}"] = arr(rec.pos[i])
        c[f"neg{i}"] = arr(rec.neg[i])
        c[f"sampled_rois{i}"] = arr(sp[i])
    cases["fastrcnn_loss"] = c
    cases["chain"] = gen_chain(g)
    write(outdir, "losses.json", cases)


def gen_chain(g):
    """torchvision's training-mode RPN and RoIHeads target chain on random
    features: head outputs -> RPN losses and proposals -> sampled RoIs and
    targets -> fastrcnn_loss. Both samplers take everything (batch sizes
    above the counts), so the chain is deterministic."""
    n, c, ph, pw, post_nms = 2, 8, 128, 192, 100
    fh, fw = ph // STRIDE, pw // STRIDE
    sizes = [(ph, pw), (ph - 8, pw - 12)]
    gen = AnchorGenerator((SIZES,), (RATIOS,))
    head = RPNHead(c, 9)
    for layer in head.modules():
        if isinstance(layer, torch.nn.Conv2d):
            layer.weight.data.copy_(torch.randn(layer.weight.shape, generator=g) * 0.3)
            layer.bias.data.copy_(torch.randn(layer.bias.shape, generator=g) * 0.1)
    big = 1_000_000
    rpn = RegionProposalNetwork(gen, head, 0.7, 0.3, big, 0.5, dict(training=2000, testing=1000),
                                dict(training=post_nms, testing=post_nms), 0.7)
    rpn.train()
    feats = torch.randn(n, c, fh, fw, generator=g)
    images = ImageList(torch.zeros(n, 3, ph, pw), sizes)
    gts = [rand_gt(g, 3, sizes[0][1], sizes[0][0], 24, 110), rand_gt(g, 2, sizes[1][1], sizes[1][0], 24, 110)]
    gtl = [torch.tensor([1, 4, 2]), torch.tensor([3, 3])]
    targets = [{"boxes": b, "labels": l} for b, l in zip(gts, gtl)]
    outs = {}
    head.register_forward_hook(lambda m, i, o: outs.update(obj=o[0][0], deltas=o[1][0]))
    with torch.no_grad():
        proposals, rpn_losses = rpn(images, {"0": feats}, targets)
    heads = make_roi_heads(batch=big)
    sp, _, slabels, sreg = heads.select_training_samples(proposals, targets)
    k = sum(len(p) for p in sp)
    nc = 5
    cls = torch.randn(k, nc, generator=g) * 2
    box = torch.randn(k, 4 * nc, generator=g) * 0.5
    lc, lb = fastrcnn_loss(cls, box, slabels, sreg)
    c = {"objectness": arr(outs["obj"]), "deltas": arr(outs["deltas"]), "pad_w": pw, "pad_h": ph, "post_nms": post_nms,
         "loss_objectness": float(rpn_losses["loss_objectness"]), "loss_rpn_box_reg": float(rpn_losses["loss_rpn_box_reg"]),
         "class_logits": arr(cls), "box_regression": arr(box), "loss_classifier": float(lc), "loss_box_reg": float(lb)}
    for i in range(n):
        c[f"img_w{i}"], c[f"img_h{i}"] = sizes[i][1], sizes[i][0]
        c[f"gt{i}"], c[f"gt_labels{i}"] = arr(gts[i]), arr(gtl[i])
        c[f"proposals{i}"] = arr(proposals[i])
        c[f"rois{i}"], c[f"labels{i}"], c[f"deltas{i}"] = arr(sp[i]), arr(slabels[i]), arr(sreg[i])
    return c


def main():
    if len(sys.argv) != 2:
        sys.exit(__doc__)
    torch.set_num_threads(1)
    gen_targets(sys.argv[1])
    gen_losses(sys.argv[1])


if __name__ == "__main__":
    main()
