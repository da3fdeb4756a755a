#!/usr/bin/python3
"""Reference logits for `detect classify --size HxW` on an image already H x W:
torchvision's ToTensor + Normalize(ImageNet mean/std), then the model.

Usage: /usr/bin/python3 classify_ref.py MODEL.pth ARCH IMAGE.png
Prints a JSON list of the logits of the image.
"""
import json
import sys

import numpy as np
import torch
import torchvision
from PIL import Image


def main():
    path, arch, image = sys.argv[1:4]
    sd = torch.load(path)
    model = getattr(torchvision.models, arch)(num_classes=sd["fc.weight"].shape[0])
    model.load_state_dict(sd)
    model.eval()
    im = Image.open(image).convert("RGB")
    t = torchvision.transforms.functional.to_tensor(im)
    t = torchvision.transforms.functional.normalize(t, [0.485, 0.456, 0.406], [0.229, 0.224, 0.225])
    with torch.no_grad():
        y = model(t.unsqueeze(0))[0]
    print(json.dumps(y.double().tolist()))


if __name__ == "__main__":
    main()
