"""Times torch's equivalents of the non-convolution ops of package nn.

Usage: /usr/bin/python3 bench_ops_torch.py [REPEATS]
Prints one line per benchmark: the name of the matching Go benchmark, then
the minimum and the median milliseconds per run, with torch.set_num_threads(2)
as on the Go side. nn/testdata/bench_ops.sh runs both and prints the ratios.
"""
import statistics
import sys
import time

import torch
import torch.nn.functional as F

torch.set_num_threads(2)
torch.manual_seed(0)
REPEATS = int(sys.argv[1]) if len(sys.argv) > 1 else 10


def go_shape(shape):
    return "(" + ",_".join(map(str, shape)) + ")"


def bench(name, fn):
    fn()
    times = []
    for _ in range(REPEATS):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    print("%s %.3f %.3f" % (name, 1000 * min(times), 1000 * statistics.median(times)), flush=True)


for shape in ((1, 256, 150, 250), (1, 1024, 38, 63)):
    c = shape[1]
    x, r = torch.randn(shape), torch.randn(shape)
    rm, rv, w, b = torch.randn(c), torch.rand(c) + 0.5, torch.randn(c), torch.randn(c)
    s = go_shape(shape)
    with torch.no_grad():
        # Frozen BN as torch runs it at inference: batch_norm in eval mode.
        bench("BenchmarkAffine/fwd/" + s, lambda: F.batch_norm(x, rm, rv, w, b, False))

        def fused():  # torchvision's Bottleneck tail: bn3, += identity, relu
            out = F.batch_norm(x, rm, rv, w, b, False)
            out += r
            return torch.relu_(out)
        bench("BenchmarkAffine/fwd_res_relu/" + s, fused)

    xg, rg = x.clone().requires_grad_(True), r.clone().requires_grad_(True)
    gy = torch.randn(shape)

    def step():
        xg.grad, rg.grad = None, None
        out = F.batch_norm(xg, rm, rv, w, b, False)
        out = torch.relu(out + rg)
        out.backward(gy)
    bench("BenchmarkAffineFrozenStep/" + s, step)

shape = (1, 256, 150, 250)
x = torch.randn(shape)
with torch.no_grad():
    bench("BenchmarkReLU/fwd/" + go_shape(shape), lambda: torch.relu(x))

shape = (1, 64, 300, 500)
x = torch.randn(shape)
with torch.no_grad():
    bench("BenchmarkMaxPool2d/fwd/" + go_shape(shape), lambda: F.max_pool2d(x, 3, 2, 1))
xg = x.clone().requires_grad_(True)
y = F.max_pool2d(xg, 3, 2, 1)
gy = torch.randn_like(y)


def mp_bwd():
    xg.grad = None
    y.backward(gy, retain_graph=True)
bench("BenchmarkMaxPool2d/bwd/" + go_shape(shape), mp_bwd)

for shape in ((8, 2048, 7, 7), (1, 2048, 19, 32)):
    x = torch.randn(shape)
    with torch.no_grad():
        bench("BenchmarkGlobalAvgPool/fwd/" + go_shape(shape), lambda: x.mean(dim=(2, 3)))

shape = (8, 64, 56, 56)
bn = torch.nn.BatchNorm2d(64).train()
x = torch.randn(shape)
with torch.no_grad():
    bench("BenchmarkBatchNormTrain/fwd/" + go_shape(shape), lambda: bn(x))
xg = x.clone().requires_grad_(True)
y = bn(xg)
gy = torch.randn_like(x)


def bn_bwd():
    xg.grad = None
    y.backward(gy, retain_graph=True)
bench("BenchmarkBatchNormTrain/bwd_x/" + go_shape(shape), bn_bwd)
