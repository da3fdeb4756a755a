"""Times torch's equivalents of the non-convolution ops of package nn.

Usage: /usr/bin/python3 bench_ops_torch.py [REPEATS]
Prints one line per benchmark: name, milliseconds per run (median), with
torch.set_num_threads(2) as in the Go benchmarks (BenchmarkAffine,
BenchmarkAffineFrozenStep, BenchmarkReLU, BenchmarkMaxPool2d,
BenchmarkGlobalAvgPool, BenchmarkBatchNormTrain).
"""
import statistics
import sys
import time

import torch
import torch.nn.functional as F

torch.set_num_threads(2)
torch.manual_seed(0)
REPEATS = int(sys.argv[1]) if len(sys.argv) > 1 else 10


def bench(name, fn):
    fn()
    times = []
    for _ in range(REPEATS):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    print("%-45s %8.2f ms" % (name, 1000 * statistics.median(times)), flush=True)


def frozen_bn(x, scale, shift):
    # torchvision's FrozenBatchNorm2d: x * scale + shift with [1, C, 1, 1] buffers.
    return x * scale + shift


for shape in ((1, 256, 150, 250), (1, 1024, 38, 63)):
    c = shape[1]
    x, r = torch.randn(shape), torch.randn(shape)
    scale, shift = torch.randn(1, c, 1, 1), torch.randn(1, c, 1, 1)
    rm, rv, w, b = torch.randn(c), torch.rand(c) + 0.5, torch.randn(c), torch.randn(c)
    s = "x".join(map(str, shape))
    with torch.no_grad():
        bench("affine fwd (FrozenBatchNorm2d) " + s, lambda: frozen_bn(x, scale, shift))
        bench("affine fwd (batch_norm eval) " + s, lambda: F.batch_norm(x, rm, rv, w, b, False))

        def fused():
            out = F.batch_norm(x, rm, rv, w, b, False)
            out += r
            return torch.relu_(out)
        bench("affine fwd res relu (bn eval, +=, relu_) " + s, fused)

    xg, rg = x.clone().requires_grad_(True), r.clone().requires_grad_(True)
    gy = torch.randn(shape)

    def step():
        out = F.batch_norm(xg, rm, rv, w, b, False)
        out = torch.relu(out + rg)
        out.backward(gy)
    bench("affine frozen step fwd+bwd (x, residual) " + s, step)

x = torch.randn(1, 256, 150, 250)
with torch.no_grad():
    bench("relu fwd 1x256x150x250", lambda: torch.relu(x))

x = torch.randn(1, 64, 300, 500)
with torch.no_grad():
    bench("maxpool fwd 1x64x300x500", lambda: F.max_pool2d(x, 3, 2, 1))
xg = x.clone().requires_grad_(True)
y = F.max_pool2d(xg, 3, 2, 1)
gy = torch.randn_like(y)


def mp_step():
    xg.grad = None
    F.max_pool2d(xg, 3, 2, 1).backward(gy)
bench("maxpool fwd+bwd 1x64x300x500", mp_step)

for shape in ((8, 2048, 7, 7), (1, 2048, 19, 32)):
    x = torch.randn(shape)
    with torch.no_grad():
        bench("gap fwd " + "x".join(map(str, shape)), lambda: x.mean(dim=(2, 3)))

bn = torch.nn.BatchNorm2d(64).train()
x = torch.randn(8, 64, 56, 56)
with torch.no_grad():
    bench("batchnorm train fwd 8x64x56x56", lambda: bn(x))
xg = x.clone().requires_grad_(True)
gy = torch.randn_like(x)


def bn_step():
    xg.grad = None
    bn(xg).backward(gy)
bench("batchnorm train fwd+bwd 8x64x56x56", bn_step)
