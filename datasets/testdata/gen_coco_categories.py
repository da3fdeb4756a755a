# Writes coco_categories.txt: "<category id> <name>" for torchvision's 80 COCO
# detection categories (its 91-slot list with "__background__" and "N/A" gaps).
# Run with /usr/bin/python3 (needs torchvision) from datasets/testdata.
from torchvision.models.detection import FasterRCNN_ResNet50_FPN_Weights

cats = FasterRCNN_ResNet50_FPN_Weights.COCO_V1.meta["categories"]
with open("coco_categories.txt", "w") as f:
    for i, name in enumerate(cats):
        if name not in ("__background__", "N/A"):
            f.write(f"{i} {name}\n")
