#!/usr/bin/python3
"""Reference training step of the Faster R-CNN C4 detector for resdet's
training parity test (detection/training_torch_test.go): torch 1.13,
torchvision 0.14, CPU, float32.

Usage: /usr/bin/python3 gen_train_parity.py OUTDIR [--seed 0] [--classes 5]
           [--post-nms 24] [--shift 1.5]

Builds gen_fasterrcnn.py's R50-C4 construction (FrozenBatchNorm2d with
calibrated random statistics and affine, seeded random weights, RoIAlign
14x14 with sampling_ratio 0, layer4 + mean as the box head), freezes conv1
and layer1 (requires_grad False, as trainable_layers=3), and runs ONE
training-mode forward and backward pass, model(images, targets), on a batch
of two images of different sizes (so that both are padded) with a few ground
truth boxes each. Both fg_bg_samplers are replaced by one that takes every
positive and negative candidate, so the step is deterministic; the RPN keeps
every anchor before NMS and --post-nms proposals after it, which keeps the
second stage small.

--shift raises every frozen BN's bias (and the RPN conv's) so that its output
is about N(shift, 1) in units of its weight (about 7% of the ReLU inputs
negative at 1.5 if they were normal, instead of half). Why: a float32 rounding difference
(~1e-6 relative) that flips one ReLU input across zero moves the gradient of
the weights before it by one spatial position's term, and at these small
sizes one term is ~0.3% of the largest gradient entry. With --shift 0 the
float64 gradients of this script moved by up to 2% when the input was
perturbed by 1e-7 relative, and torch's own float32 gradients differed from
its float64 ones by 1%; with 1.5 resdet agrees with torch within 7e-4.

Writes to OUTDIR:
  model.pth   the state_dict before the step, under resdet's parameter names
              (resdet_names)
  grads.pth   {name: gradient of the summed losses} for every parameter that
              requires a gradient (resdet's names)
  input.f32   the transformed, padded batch images.tensors [N, 3, PH, PW],
              raw little-endian float32
  ref.json    {"padded": [PW, PH], "sizes": [[w, h], ...] (each image after
              resizing, before padding), "boxes": [[[x1, y1, x2, y2], ...], ...]
              (ground truth in resized pixels), "labels": [[...], ...],
              "losses": {loss_objectness, loss_rpn_box_reg, loss_classifier,
              loss_box_reg}, "rois": [sampled RoIs per image],
              "fg": [foreground RoIs per image], "anchors": [sampled anchors
              per image], "classes": K, "pre_nms": P, "post_nms": Q}
"""
import argparse
import json
import os
import sys

import torch
from torchvision.ops import FrozenBatchNorm2d

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import gen_fasterrcnn as frc  # noqa: E402  (the shared construction)


class TakeAll:
    """A fg_bg_sampler that keeps every positive (label >= 1) and every
    negative (label 0) candidate: torchvision's masks, nothing random."""

    def __call__(self, matched_idxs):
        pos = [(m >= 1).to(torch.uint8) for m in matched_idxs]
        neg = [(m == 0).to(torch.uint8) for m in matched_idxs]
        return pos, neg


def rand_boxes(g, n, w, h):
    """n boxes inside a w x h image, 20%..70% of its sides."""
    out = []
    for _ in range(n):
        bw = w * (0.2 + 0.5 * float(torch.rand(1, generator=g)))
        bh = h * (0.2 + 0.5 * float(torch.rand(1, generator=g)))
        x1 = (w - bw) * float(torch.rand(1, generator=g))
        y1 = (h - bh) * float(torch.rand(1, generator=g))
        out.append([x1, y1, x1 + bw, y1 + bh])
    return torch.tensor(out, dtype=torch.float32)


def calibrate(model, x, g, shift):
    """gen_fasterrcnn.calibrate, with every FrozenBatchNorm2d's bias raised
    by shift times its weight: each BN output is then about N(shift, 1) in
    units of its weight, so fewer ReLU inputs sit near zero."""
    frc.calibrate(model, x, g)
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, FrozenBatchNorm2d):
                m.bias.add_(shift * m.weight)


def recentre_rpn(model, x, shift):
    """Raises the RPN conv's bias by shift times its output's std (fewer
    ReLU inputs near zero), then makes the objectness logits zero-mean with
    std 2 and the deltas zero-mean with std 0.15 on x: no saturated
    sigmoid, so no ties in the proposal order."""
    head = model.rpn.head
    conv = head.conv[0][0]
    with torch.no_grad():
        images, _ = model.transform([x])
        feat = model.backbone(images.tensors)
        conv.bias.add_(shift * conv(feat).std())
        t = torch.relu(conv(feat))
        for layer, std in ((head.cls_logits, 2.0), (head.bbox_pred, 0.15)):
            o = layer(t)
            layer.weight.mul_(std / o.std())
            layer.bias.mul_(std / o.std())
            layer.bias.sub_(layer(t).mean((0, 2, 3)))


def setup(a):
    """The model in train mode (samplers replaced, stem and layer1 frozen),
    its state_dict before training, the images and their targets."""
    torch.manual_seed(a.seed)
    g = torch.Generator().manual_seed(a.seed)
    # Originals (W x H) and their ground truth; min 192 / max 320 resizes
    # them to 255x191 and 192x240, padded together to 256x256.
    sizes = [(200, 150), (160, 200)]
    counts = [3, 5]
    xs, targets = [], []
    for (w, h), n in zip(sizes, counts):
        xs.append(frc.make_image(g, w, h).permute(2, 0, 1).float() / 255)
        targets.append({"boxes": rand_boxes(g, n, w, h),
                        "labels": torch.randint(1, a.classes + 1, (n,), generator=g)})

    model = frc.build(50, a.classes, 192, 320).eval()
    model.rpn._pre_nms_top_n = dict(training=PRE_NMS, testing=PRE_NMS)
    model.rpn._post_nms_top_n = dict(training=a.post_nms, testing=a.post_nms)
    calibrate(model, xs[0], g, a.shift)
    frc.rescale_heads(model, xs[0], g)
    recentre_rpn(model, xs[0], a.shift)
    state = {k: v.clone() for k, v in model.state_dict().items()}

    model.rpn.fg_bg_sampler = TakeAll()
    model.roi_heads.fg_bg_sampler = TakeAll()
    for mod in (model.backbone[0], model.backbone[1], model.backbone[4]):  # conv1, bn1, layer1
        for p in mod.parameters():
            p.requires_grad_(False)
    model.train()
    return model, state, xs, targets


PRE_NMS = 1 << 20  # every anchor enters NMS


def resdet_names(state):
    """Renames a state of gen_fasterrcnn.py's construction to resdet's
    parameter names (detection/state.go): the trunk's nn.Sequential indices
    to ResNet names, the box head's layer4 into the backbone, the RPN conv
    out of its wrappers; num_batches_tracked dropped."""
    body = {"0": "conv1", "1": "bn1", "4": "layer1", "5": "layer2", "6": "layer3"}
    out = {}
    for name, v in state.items():
        if name.endswith(".num_batches_tracked"):
            continue
        if name.startswith("backbone."):
            idx, rest = name[len("backbone."):].split(".", 1)
            name = "backbone.%s.%s" % (body[idx], rest)
        elif name.startswith("roi_heads.box_head.0."):
            name = "backbone.layer4." + name[len("roi_heads.box_head.0."):]
        elif name.startswith("rpn.head.conv.0.0."):
            name = "rpn.head.conv." + name[len("rpn.head.conv.0.0."):]
        out[name] = v
    return out


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("outdir")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--classes", type=int, default=5)
    ap.add_argument("--post-nms", type=int, default=24)
    ap.add_argument("--shift", type=float, default=1.5)
    a = ap.parse_args()
    torch.set_num_threads(2)
    os.makedirs(a.outdir, exist_ok=True)
    model, state, xs, targets = setup(a)
    torch.save(resdet_names(state), os.path.join(a.outdir, "model.pth"))

    # The sampled counts, recorded from the modules' own calls.
    rec = {}
    orig_sub = model.roi_heads.subsample

    def subsample(labels):
        idx = orig_sub(labels)
        rec["rois"] = [len(i) for i in idx]
        rec["fg"] = [int((l[i] > 0).sum()) for l, i in zip(labels, idx)]
        return idx

    model.roi_heads.subsample = subsample
    orig_assign = model.rpn.assign_targets_to_anchors

    def assign(anchors, tg):
        labels, matched = orig_assign(anchors, tg)
        rec["anchors"] = [int((l >= 0).sum()) for l in labels]
        rec["pos_anchors"] = [int((l == 1).sum()) for l in labels]
        return labels, matched

    model.rpn.assign_targets_to_anchors = assign

    images, tgts = model.transform([x.clone() for x in xs], [{k: v.clone() for k, v in t.items()} for t in targets])
    losses = model(xs, targets)
    total = sum(losses.values())
    total.backward()
    grads = {n: p.grad.detach().clone() for n, p in model.named_parameters() if p.grad is not None}
    torch.save(resdet_names(grads), os.path.join(a.outdir, "grads.pth"))

    batch = images.tensors.detach().contiguous()
    batch.numpy().astype("<f4").tofile(os.path.join(a.outdir, "input.f32"))
    ph, pw = batch.shape[-2:]
    ref = {
        "padded": [pw, ph],
        "sizes": [[w, h] for h, w in images.image_sizes],
        "boxes": [t["boxes"].tolist() for t in tgts],
        "labels": [t["labels"].tolist() for t in tgts],
        "losses": {k: float(v) for k, v in losses.items()},
        "rois": rec["rois"], "fg": rec["fg"], "anchors": rec["anchors"], "pos_anchors": rec["pos_anchors"],
        "classes": a.classes, "pre_nms": PRE_NMS, "post_nms": a.post_nms,
    }
    tmp = os.path.join(a.outdir, "ref.json.tmp")
    with open(tmp, "w") as f:
        json.dump(ref, f)
    os.replace(tmp, os.path.join(a.outdir, "ref.json"))
    print("batch %dx%d, sizes %s, RoIs %s (fg %s), anchors %s (pos %s), %d gradients, losses %s" % (
        pw, ph, ref["sizes"], ref["rois"], ref["fg"], ref["anchors"], ref["pos_anchors"], len(grads),
        {k: round(v, 5) for k, v in ref["losses"].items()}))


if __name__ == "__main__":
    main()
