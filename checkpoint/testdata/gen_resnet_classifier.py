#!/usr/bin/python3
"""A torchvision ImageNet ResNet classifier file with seeded random weights,
as torchvision publishes them (torch.save of the state_dict, zip format).

Usage: /usr/bin/python3 gen_resnet_classifier.py OUT.pth [--depth 18] [--seed 0]
"""
import argparse

import torch
import torchvision

p = argparse.ArgumentParser()
p.add_argument("out")
p.add_argument("--depth", type=int, default=18)
p.add_argument("--seed", type=int, default=0)
a = p.parse_args()
torch.manual_seed(a.seed)
m = getattr(torchvision.models, "resnet%d" % a.depth)(weights=None)
torch.save(m.state_dict(), a.out)
