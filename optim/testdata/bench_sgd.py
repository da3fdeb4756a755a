#!/usr/bin/python3
"""Times torch.optim.SGD (momentum 0.9, weight decay 1e-4, 2 threads) on the
sizes of BenchmarkSGDStep: 40 tensors of 250000 float32.

Usage: /usr/bin/python3 bench_sgd.py
"""
import time

import torch

torch.set_num_threads(2)
params = [torch.nn.Parameter(torch.randn(250_000)) for _ in range(40)]
opt = torch.optim.SGD(params, lr=0.01, momentum=0.9, weight_decay=1e-4)
for p in params:
    p.grad = torch.randn(250_000)
opt.step()
times = []
for _ in range(20):
    t = time.perf_counter()
    opt.step()
    times.append(time.perf_counter() - t)
times.sort()
print(f"torch.optim.SGD step, 10M params: median {times[len(times) // 2] * 1e3:.2f} ms, min {times[0] * 1e3:.2f} ms")
