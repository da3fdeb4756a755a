#!/usr/bin/python3
"""Times torchvision's equivalent of imageio.Transform.Load for comparison
with BenchmarkLoad/BenchmarkRead/BenchmarkTransform: decode a 500x375 JPEG,
flip, ToTensor, GeneralizedRCNNTransform normalise + resize to 800x600.

    /usr/bin/python3 datasets/imageio/testdata/bench_torchvision.py JPEG
(the JPEG written by the Go benchmark, or any 500x375 JPEG). 2 threads.
"""
import sys
import time

import torch
import torchvision
from torchvision.models.detection.transform import GeneralizedRCNNTransform

torch.set_num_threads(2)
path = sys.argv[1]
t = GeneralizedRCNNTransform(600, 1000, [0.485, 0.456, 0.406], [0.229, 0.224, 0.225]).eval()


def read():
    return torchvision.io.decode_jpeg(torchvision.io.read_file(path))


def transform(img, i):
    if i % 2 == 0:
        img = img.flip(-1)
    x = t.normalize(img.float() / 255)
    x, _ = t.resize(x, None)
    return x


def bench(name, f, n=200):
    f(0)
    start = time.perf_counter()
    for i in range(n):
        f(i)
    print(f"{name}: {(time.perf_counter() - start) / n * 1e3:.2f} ms/op")


img = read()
with torch.no_grad():
    bench("read", lambda i: read())
    bench("transform", lambda i: transform(img, i))
    bench("load", lambda i: transform(read(), i))
