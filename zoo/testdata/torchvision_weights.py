"""Prints, as JSON, what the installed torchvision publishes about the Faster R-CNN
weights the zoo registers: URL, COCO box mAP, and the SHA-256 prefix torch.hub
reads from the file name (torch.hub.HASH_REGEX)."""
import json
import os

import torch.hub
from torchvision.models.detection import (
    FasterRCNN_ResNet50_FPN_V2_Weights,
    FasterRCNN_ResNet50_FPN_Weights,
)

out = {}
for name, w in [
    ("fasterrcnn_resnet50_fpn", FasterRCNN_ResNet50_FPN_Weights.COCO_V1),
    ("fasterrcnn_resnet50_fpn_v2", FasterRCNN_ResNet50_FPN_V2_Weights.COCO_V1),
]:
    file_name = os.path.basename(w.url)
    out[name] = {
        "url": w.url,
        "box_map": w.meta["_metrics"]["COCO-val2017"]["box_map"],
        "sha256_prefix": torch.hub.HASH_REGEX.search(file_name).group(1),
    }
print(json.dumps(out))
