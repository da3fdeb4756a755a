#!/usr/bin/python3
"""Prints the ResNet trunk tensors of a Detectron2 model-zoo pickle as JSON
{torchvision name: shape}.

Usage: /usr/bin/python3 d2_trunk_shapes.py MODEL_FINAL.pkl

The pickle is {"model": {name: numpy array}, ...}. Trunk tensors are
backbone[.bottom_up].{stem,res2..res5}.* and, for the C4 models, roi_heads.res5.*;
Detectron2's names map to torchvision's: stem.conv1 -> conv1, stem.conv1.norm -> bn1,
resN.B.convK -> layer(N-1).B.convK, resN.B.convK.norm -> layer(N-1).B.bnK,
resN.B.shortcut -> layer(N-1).B.downsample.0, resN.B.shortcut.norm -> ...downsample.1.
"""
import json
import pickle
import re
import sys


def torchvision_name(name):
    m = re.match(r"^(?:backbone\.(?:bottom_up\.)?|roi_heads\.)(stem|res\d)\.(.*)$", name)
    if not m or (name.startswith("roi_heads.") and m.group(1) != "res5"):
        return None
    stage, rest = m.groups()
    if stage == "stem":
        return {"conv1.weight": "conv1.weight"}.get(rest) or re.sub(r"^conv1\.norm\.", "bn1.", rest)
    block, layer = rest.split(".", 1), "layer%d" % (int(stage[3:]) - 1)
    b, rest = block
    rest = re.sub(r"^conv(\d)\.norm\.", r"bn\1.", rest)
    rest = re.sub(r"^shortcut\.norm\.", "downsample.1.", rest)
    rest = re.sub(r"^shortcut\.weight$", "downsample.0.weight", rest)
    return "%s.%s.%s" % (layer, b, rest)


def main():
    with open(sys.argv[1], "rb") as f:
        model = pickle.load(f, encoding="latin1")["model"]
    out = {}
    for name, arr in model.items():
        tv = torchvision_name(name)
        if tv is not None:
            out[tv] = list(arr.shape)
    json.dump(out, sys.stdout, sort_keys=True)


if __name__ == "__main__":
    main()
