#!/usr/bin/python3
"""Writes torchvision.json: reference outputs of torchvision 0.14's
GeneralizedRCNNTransform (resize size rule, normalise + bilinear resize, box
scaling) and of the detection references' horizontal flip, for
imageio's TestTorchvisionParity.

Run with Debian's python3 (torch 1.13, torchvision 0.14):
    /usr/bin/python3 datasets/imageio/testdata/gen_fixtures.py
"""
import json
import os

import torch
from torchvision.models.detection.transform import GeneralizedRCNNTransform, _resize_image_and_masks

MEAN = [0.485, 0.456, 0.406]
STD = [0.229, 0.224, 0.225]


def pattern(w, h):
    """The test image; the Go test rebuilds it with the same formula."""
    img = torch.zeros(3, h, w, dtype=torch.uint8)
    for c in range(3):
        for y in range(h):
            for x in range(w):
                img[c, y, x] = (x * 37 + y * 101 + c * 53 + x * y * 7) % 256
    return img


def main():
    sizes = []
    for (w, h, s, l) in [(500, 375, 600, 1000), (333, 500, 600, 1000), (1000, 200, 600, 1000),
                         (640, 480, 600, 1000), (353, 500, 600, 1000), (37, 23, 600, 1000),
                         (1, 1, 600, 1000), (4000, 3000, 800, 1333), (481, 321, 600, 1000),
                         (375, 500, 600, 1000), (320, 240, 600, 1000), (299, 211, 600, 1000)]:
        out, _ = _resize_image_and_masks(torch.zeros(3, h, w), float(s), float(l))
        sizes.append({"w": w, "h": h, "min": s, "max": l,
                      "out_w": out.shape[-1], "out_h": out.shape[-2]})

    cases = []
    w, h = 37, 23
    boxes = [[0.0, 0.0, 37.0, 23.0], [3.5, 2.0, 20.25, 11.0], [30.0, 17.0, 36.0, 22.5]]
    for name, s, l, flip in [("up", 30, 48, False), ("down_flip", 10, 16, True)]:
        img = pattern(w, h)
        b = torch.tensor(boxes)
        if flip:  # torchvision references/detection/transforms.py RandomHorizontalFlip
            img = img.flip(-1)
            b[:, [0, 2]] = w - b[:, [2, 0]]
        t = GeneralizedRCNNTransform(min_size=s, max_size=l, image_mean=MEAN, image_std=STD)
        t.eval()
        x = t.normalize(img.float() / 255)
        x, target = t.resize(x, {"boxes": b})
        cases.append({"name": name, "w": w, "h": h, "min": s, "max": l, "flip": flip,
                      "boxes_in": boxes,
                      "out_w": x.shape[-1], "out_h": x.shape[-2],
                      "data": [float(v) for v in x.flatten()],
                      "boxes_out": target["boxes"].tolist()})

    path = os.path.join(os.path.dirname(os.path.abspath(__file__)), "torchvision.json")
    with open(path, "w") as f:
        json.dump({"torch": torch.__version__, "sizes": sizes, "cases": cases}, f)
        f.write("\n")


if __name__ == "__main__":
    main()
