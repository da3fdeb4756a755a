#!/usr/bin/python3
"""Reference training steps of Faster R-CNN for resdet's training parity
tests (detection/training_torch_test.go): torch 1.13, torchvision 0.14, CPU,
float32.

Usage: /usr/bin/python3 gen_train_parity.py OUTDIR [--arch c4|fpn]
           [--norm frozen|trainable] [--depth 50] [--width 64] [--freeze-at 2]
           [--steps 1] [--lr 0.01] [--weight-decay 1e-4] [--seed 0]
           [--classes 5] [--counts 3,5] [--min-size 192] [--max-size 320]
           [--anchors 128,256,512] [--pre-nms N] [--post-nms 24] [--shift 1.5]
           [--shift-during]

--arch c4 builds gen_fasterrcnn.py's C4 construction (ResNet-<depth>,
RoIAlign 14x14 with sampling_ratio 0, layer4 + mean as the box head, anchors
--anchors); --arch fpn builds what fasterrcnn_resnet50_fpn builds (v1):
resnet50(norm_layer=FrozenBatchNorm2d, width_per_group=--width),
_resnet_fpn_extractor(.., 3), FasterRCNN(backbone, classes + 1), FrozenBN eps
0 (overwrite_eps), torchvision's FPN anchors, MultiScaleRoIAlign 7x7 with
sampling_ratio 2 and TwoMLPHead 1024 (--width 64 is the real ResNet-50; 16
keeps the output channels and makes the bottlenecks 4x narrower). --norm
frozen: FrozenBatchNorm2d with calibrated random statistics and affine;
trainable (c4 only): nn.BatchNorm2d in train mode (batch statistics, running
statistics updated with momentum 0.1), as resdet's --norm trainable.
--freeze-at 2 freezes conv1, bn1 and layer1 (requires_grad False, as
trainable_layers=3); 0 freezes nothing (the demo's from-scratch setting).

Weights are seeded random. The model runs in train mode on batches of two
images of the sizes (200, 150) and (160, 200) (min/max size 192/320 makes
them 255x191 and 192x240, padded together to 256x256) with --counts ground
truth boxes each (len(--counts) images, two per batch, batch b = images 2b and
2b+1). Both fg_bg_samplers are replaced by one that takes every positive and
negative candidate, so every step is deterministic. The RPN keeps --pre-nms
anchors per level before NMS (default: all of them for c4, torchvision's
training 2000 for fpn) and --post-nms proposals after it (default 24 for c4,
torchvision's 2000 for fpn).

--steps 1 runs ONE forward and backward pass, model(images, targets), on
batch 0. --steps S > 1 trains S steps with torch.optim.SGD(momentum 0.9,
weight_decay --weight-decay on every parameter that requires a gradient,
--lr), step s on batch s mod (number of batches), and records every step's
losses and the final weights.

--shift raises every BN's bias (and the RPN conv's) so that its output
is about N(shift, 1) in units of its weight, after every BN is calibrated
(the layers after a BN were calibrated without its shift, so the maps grow
through the network: ResNet-50's res5 reaches a std of ~900 at 1.5; with
--shift-during (fpn) each BN is shifted as soon as it is calibrated and the
maps keep a std of ~2-3, which SGD needs) (about 7% of the ReLU inputs
negative at 1.5 if they were normal, instead of half). Why: a float32 rounding difference
(~1e-6 relative) that flips one ReLU input across zero moves the gradient of
the weights before it by one spatial position's term, and at these small
sizes one term is ~0.3% of the largest gradient entry. With --shift 0 the
float64 gradients of this script moved by up to 2% when the input was
perturbed by 1e-7 relative, and torch's own float32 gradients differed from
its float64 ones by 1%; with 1.5 resdet agrees with torch within 7e-4.

Writes to OUTDIR:
  model.pth   the state_dict before the first step, under resdet's parameter
              names (resdet_names)
  grads.pth   {name: gradient of the summed losses of the first step} for
              every parameter that requires a gradient (resdet's names)
  final.pth   (--steps > 1) the state_dict after the last step (resdet's
              names; with trainable BN it holds the updated running
              statistics)
  input_B.f32 batch B's transformed, padded images.tensors [N, 3, PH, PW],
              raw little-endian float32
  ref.json    {"batches": [{"padded": [PW, PH], "sizes": [[w, h], ...] (each
              image after resizing, before padding), "boxes": [[[x1, y1, x2,
              y2], ...], ...] (ground truth in resized pixels), "labels":
              [[...], ...]}, ...], "steps": [{"losses": {loss_objectness,
              loss_rpn_box_reg, loss_classifier, loss_box_reg}, "rois":
              [sampled RoIs per image], "fg": [foreground RoIs per image],
              "anchors": [sampled anchors per image], "pos_anchors": [...]},
              ...], "classes": K, "pre_nms": P, "post_nms": Q, "lr": lr,
              "weight_decay": wd, "momentum": 0.9}
"""
import argparse
import json
import os
import sys

import torch
import torch.nn as nn
import torchvision
from torchvision.models.detection import FasterRCNN
from torchvision.models.detection._utils import overwrite_eps
from torchvision.models.detection.backbone_utils import _resnet_fpn_extractor
from torchvision.ops import FrozenBatchNorm2d

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.join(HERE, "..", "..", "checkpoint", "testdata"))
import gen_fasterrcnn as frc  # noqa: E402  (the shared C4 construction)
import gen_tv_fpn as tvfpn  # noqa: E402  (the shared FPN calibration)

SIZES = ((200, 150), (160, 200))  # originals, W x H, cycled over the images
ALL = 1 << 20  # every anchor enters NMS


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


def shift_bn(model, shift):
    """Raises every BN's bias by shift times its weight: each BN output is
    then about N(shift, 1) in units of its weight, so fewer ReLU inputs sit
    near zero."""
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, (FrozenBatchNorm2d, nn.BatchNorm2d)):
                m.bias.add_(shift * m.weight)


def features(model, x):
    """The backbone's maps of the single image x, as a list."""
    images, _ = model.transform([x])
    feat = model.backbone(images.tensors)
    return list(feat.values()) if isinstance(feat, dict) else [feat]


def recentre_rpn(model, x, shift):
    """Raises the RPN conv's bias by shift times its output's std over the
    levels (fewer ReLU inputs near zero), then makes the objectness logits
    zero-mean with std 2 and the deltas zero-mean with std 0.15 on x: no
    saturated sigmoid, so no ties in the proposal order."""
    head = model.rpn.head
    conv = head.conv[0][0]
    with torch.no_grad():
        feats = features(model, x)
        conv.bias.add_(shift * torch.cat([conv(f).flatten() for f in feats]).std())
        ts = [torch.relu(conv(f)) for f in feats]
        for layer, std in ((head.cls_logits, 2.0), (head.bbox_pred, 0.15)):
            o = torch.cat([layer(t).transpose(0, 1).flatten(1) for t in ts], 1)
            layer.weight.mul_(std / o.std())
            layer.bias.mul_(std / o.std())
            o = torch.cat([layer(t).transpose(0, 1).flatten(1) for t in ts], 1)
            layer.bias.sub_(o.mean(1))


def calibrate_shifted(model, xs, g, shift):
    """gen_tv_fpn.calibrate (every BN's statistics from its input on xs)
    with each BN's bias raised by shift times its weight as soon as it is
    calibrated, so that the layers after it are calibrated on the shifted
    activations: ResNet-50's maps keep a std of ~2-3 (--shift-during)."""
    def post(mod, inp, out):
        mod.bias.add_(shift * mod.weight)
        return out + (shift * mod.weight).view(1, -1, 1, 1)

    hooks = [m.register_forward_hook(post) for m in model.modules() if isinstance(m, (FrozenBatchNorm2d, nn.BatchNorm2d))]
    tvfpn.calibrate(model, xs, g)
    for h in hooks:
        h.remove()


def build(a):
    """The model of --arch and --norm in eval mode, with its RPN top-n."""
    if a.arch == "fpn":
        r = torchvision.models.resnet50(weights=None, norm_layer=FrozenBatchNorm2d, width_per_group=a.width)
        model = FasterRCNN(_resnet_fpn_extractor(r, 3), num_classes=a.classes + 1,
                           min_size=a.min_size, max_size=a.max_size)
        overwrite_eps(model, 0.0)
    else:
        norm = FrozenBatchNorm2d if a.norm == "frozen" else nn.BatchNorm2d
        model = frc.build(a.depth, a.classes, a.min_size, a.max_size, norm_layer=norm, anchor_sizes=a.anchors)
    model.rpn._pre_nms_top_n = dict(training=a.pre_nms, testing=a.pre_nms)
    model.rpn._post_nms_top_n = dict(training=a.post_nms, testing=a.post_nms)
    return model.eval()


def setup(a):
    """The model in train mode (samplers replaced, --freeze-at applied), its
    state_dict before training, the images and their targets."""
    torch.manual_seed(a.seed)
    g = torch.Generator().manual_seed(a.seed)
    xs, targets = [], []
    for i, n in enumerate(a.counts):
        w, h = SIZES[i % len(SIZES)]
        xs.append(frc.make_image(g, w, h).permute(2, 0, 1).float() / 255)
        targets.append({"boxes": rand_boxes(g, n, w, h),
                        "labels": torch.randint(1, a.classes + 1, (n,), generator=g)})

    model = build(a)
    if a.arch == "fpn":
        if a.shift_during:
            calibrate_shifted(model, [xs[0]], g, a.shift)
        else:
            tvfpn.calibrate(model, [xs[0]], g)
            shift_bn(model, a.shift)
        tvfpn.rescale_heads(model, [xs[0]], g)
    else:
        if a.norm == "frozen":
            frc.calibrate(model, xs[0], g)
        else:
            tvfpn.calibrate(model, [xs[0]], g)
        shift_bn(model, a.shift)
        frc.rescale_heads(model, xs[0], g)
    recentre_rpn(model, xs[0], a.shift)
    state = {k: v.clone() for k, v in model.state_dict().items()}

    model.rpn.fg_bg_sampler = TakeAll()
    model.roi_heads.fg_bg_sampler = TakeAll()
    if a.freeze_at >= 2:
        body = model.backbone.body if a.arch == "fpn" else model.backbone
        for name, mod in body.named_children():
            if name in ("0", "1", "4", "conv1", "bn1", "layer1"):
                for p in mod.parameters():
                    p.requires_grad_(False)
    model.train()
    return model, state, xs, targets


def resdet_names(state):
    """Renames a state to resdet's parameter names (detection/state.go):
    C4: the trunk's nn.Sequential indices to ResNet names, the box head's
    layer4 into the backbone; FPN: backbone.body. to backbone. (the pyramid
    keeps torchvision's names); the RPN conv out of its wrappers;
    num_batches_tracked dropped."""
    body = {"0": "conv1", "1": "bn1", "4": "layer1", "5": "layer2", "6": "layer3"}
    out = {}
    for name, v in state.items():
        if name.endswith(".num_batches_tracked"):
            continue
        if name.startswith("backbone.body."):
            name = "backbone." + name[len("backbone.body."):]
        elif name.startswith("backbone.") and not name.startswith("backbone.fpn."):
            idx, rest = name[len("backbone."):].split(".", 1)
            name = "backbone.%s.%s" % (body[idx], rest)
        elif name.startswith("roi_heads.box_head.0."):
            name = "backbone.layer4." + name[len("roi_heads.box_head.0."):]
        elif name.startswith("rpn.head.conv.0.0."):
            name = "rpn.head.conv." + name[len("rpn.head.conv.0.0."):]
        out[name] = v
    return out


def record(model):
    """Wraps the samplers' callers so that each step's counts land in the
    returned dict."""
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
    return rec


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("outdir")
    ap.add_argument("--arch", choices=("c4", "fpn"), default="c4")
    ap.add_argument("--norm", choices=("frozen", "trainable"), default="frozen")
    ap.add_argument("--depth", type=int, default=50)
    ap.add_argument("--width", type=int, default=64)
    ap.add_argument("--freeze-at", type=int, default=2)
    ap.add_argument("--steps", type=int, default=1)
    ap.add_argument("--lr", type=float, default=0.01)
    ap.add_argument("--weight-decay", type=float, default=1e-4)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--classes", type=int, default=5)
    ap.add_argument("--counts", default="3,5")
    ap.add_argument("--min-size", type=int, default=192)
    ap.add_argument("--max-size", type=int, default=320)
    ap.add_argument("--anchors", default="128,256,512")
    ap.add_argument("--pre-nms", type=int, default=None)
    ap.add_argument("--post-nms", type=int, default=None)
    ap.add_argument("--shift", type=float, default=1.5)
    ap.add_argument("--shift-during", action="store_true")
    a = ap.parse_args()
    a.counts = [int(v) for v in a.counts.split(",")]
    a.anchors = [int(v) for v in a.anchors.split(",")]
    if len(a.counts) % 2:
        ap.error("--counts: want an even number of images (batches of two)")
    if a.arch == "fpn" and a.norm != "frozen":
        ap.error("--arch fpn: only --norm frozen (fasterrcnn_resnet50_fpn's)")
    if a.pre_nms is None:
        a.pre_nms = 2000 if a.arch == "fpn" else ALL
    if a.post_nms is None:
        a.post_nms = 2000 if a.arch == "fpn" else 24
    torch.set_num_threads(2)
    os.makedirs(a.outdir, exist_ok=True)
    model, state, xs, targets = setup(a)
    torch.save(resdet_names(state), os.path.join(a.outdir, "model.pth"))
    rec = record(model)

    batches = []
    for b in range(len(xs) // 2):
        bx = xs[2 * b:2 * b + 2]
        bt = targets[2 * b:2 * b + 2]
        images, tgts = model.transform([x.clone() for x in bx], [{k: v.clone() for k, v in t.items()} for t in bt])
        t = images.tensors.detach().contiguous()
        t.numpy().astype("<f4").tofile(os.path.join(a.outdir, "input_%d.f32" % b))
        ph, pw = t.shape[-2:]
        batches.append({
            "padded": [pw, ph],
            "sizes": [[w, h] for h, w in images.image_sizes],
            "boxes": [t["boxes"].tolist() for t in tgts],
            "labels": [t["labels"].tolist() for t in tgts],
        })

    params = [p for p in model.parameters() if p.requires_grad]
    opt = torch.optim.SGD(params, lr=a.lr, momentum=0.9, weight_decay=a.weight_decay)
    steps = []
    for s in range(a.steps):
        b = s % len(batches)
        opt.zero_grad()
        losses = model(xs[2 * b:2 * b + 2], targets[2 * b:2 * b + 2])
        sum(losses.values()).backward()
        if s == 0:
            grads = {n: p.grad.detach().clone() for n, p in model.named_parameters() if p.grad is not None}
            torch.save(resdet_names(grads), os.path.join(a.outdir, "grads.pth"))
        steps.append(dict(rec, losses={k: float(v) for k, v in losses.items()}))
        if not all(torch.isfinite(v) for v in losses.values()):
            sys.exit("step %d: losses not finite: %s (a smaller --lr?)" % (s, steps[-1]["losses"]))
        if a.steps > 1:
            opt.step()
    if a.steps > 1:
        torch.save(resdet_names(model.state_dict()), os.path.join(a.outdir, "final.pth"))

    ref = {
        "batches": batches, "steps": steps,
        "classes": a.classes, "pre_nms": a.pre_nms, "post_nms": a.post_nms,
        "lr": a.lr, "weight_decay": a.weight_decay, "momentum": 0.9,
    }
    tmp = os.path.join(a.outdir, "ref.json.tmp")
    with open(tmp, "w") as f:
        json.dump(ref, f)
    os.replace(tmp, os.path.join(a.outdir, "ref.json"))
    first = steps[0]
    print("%s %s: batches %s, sizes %s, first step RoIs %s (fg %s), anchors %s (pos %s), %d gradients, losses %s; last losses %s" % (
        a.arch, a.norm, [b["padded"] for b in batches], [b["sizes"] for b in batches], first["rois"], first["fg"],
        first["anchors"], first["pos_anchors"], len(grads),
        {k: round(v, 5) for k, v in first["losses"].items()},
        {k: round(v, 5) for k, v in steps[-1]["losses"].items()}))


if __name__ == "__main__":
    main()
