"""Writes torch reference results for the non-convolution ops of package nn.

Usage: /usr/bin/python3 gen_ops_fixtures.py OUTDIR

For every case it writes OUTDIR/<case>.json ({"tensor": shape, ...}) and one
OUTDIR/<case>.<tensor>.bin per tensor (float32, little endian, row-major).
Gradients are those of the loss sum(out * w) for the stored weight tensor w.
"""
import os
import sys

import torch

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "internal", "testutil"))
import resdet_fixtures  # noqa: E402

torch.manual_seed(20261127)
torch.set_num_threads(1)
OUT = sys.argv[1]


def save(case, **tensors):
    resdet_fixtures.save_bins(OUT, case, **tensors)


def leaf(t):
    return t.clone().requires_grad_(True)


def affine_cases():
    for relu in (False, True):
        for res in (False, True):
            case = "affine_relu%d_res%d" % (relu, res)
            x = leaf(torch.randn(2, 3, 5, 7))
            s = leaf(torch.randn(3))
            b = leaf(torch.randn(3))
            r = leaf(torch.randn(2, 3, 5, 7))
            y = x * s[None, :, None, None] + b[None, :, None, None]
            if res:
                y = y + r
            if relu:
                y = torch.relu(y)
            w = torch.randn_like(y)
            (y * w).sum().backward()
            t = dict(x=x, scale=s, shift=b, y=y, w=w, dx=x.grad, dscale=s.grad, dshift=b.grad)
            if res:
                t.update(residual=r, dresidual=r.grad)
            save(case, **t)


def batchnorm_cases():
    for training in (True, False):
        case = "batchnorm_train%d" % training
        bn = torch.nn.BatchNorm2d(4)
        with torch.no_grad():
            bn.weight.copy_(torch.randn(4))
            bn.bias.copy_(torch.randn(4))
            bn.running_mean.copy_(torch.randn(4))
            bn.running_var.copy_(torch.rand(4) + 0.5)
        rm0, rv0 = bn.running_mean.clone(), bn.running_var.clone()
        bn.train(training)
        x = leaf(torch.randn(3, 4, 5, 6) * 2 + 1)
        y = bn(x)
        w = torch.randn_like(y)
        (y * w).sum().backward()
        save(case, x=x, gamma=bn.weight, beta=bn.bias, mean0=rm0, var0=rv0, y=y, w=w,
             dx=x.grad, dgamma=bn.weight.grad, dbeta=bn.bias.grad,
             mean1=bn.running_mean, var1=bn.running_var)


def maxpool_cases():
    for name, shape, k, s, p in (("stem", (2, 3, 11, 10), 3, 2, 1),
                                 ("k2", (1, 2, 8, 9), 2, 2, 0),
                                 ("k3s1", (1, 2, 6, 7), 3, 1, 1)):
        case = "maxpool_" + name
        # Small integers make ties frequent, so the tie rule is exercised.
        x = leaf(torch.randint(-3, 4, shape).to(torch.float32))
        y = torch.nn.functional.max_pool2d(x, k, s, p)
        w = torch.randn_like(y)
        (y * w).sum().backward()
        save(case, x=x, y=y, w=w, dx=x.grad, params=torch.tensor([k, s, p], dtype=torch.float32))


def gap_case():
    x = leaf(torch.randn(2, 5, 4, 3))
    y = x.mean(dim=(2, 3))
    w = torch.randn_like(y)
    (y * w).sum().backward()
    save("gap", x=x, y=y, w=w, dx=x.grad)


def linear_cases():
    for bias in (True, False):
        case = "linear_bias%d" % bias
        lin = torch.nn.Linear(7, 5, bias=bias)
        x = leaf(torch.randn(3, 7))
        y = lin(x)
        w = torch.randn_like(y)
        (y * w).sum().backward()
        t = dict(x=x, weight=lin.weight, y=y, w=w, dx=x.grad, dweight=lin.weight.grad)
        if bias:
            t.update(bias=lin.bias, dbias=lin.bias.grad)
        save(case, **t)


def relu_case():
    x = leaf(torch.randint(-3, 4, (2, 3, 4, 5)).to(torch.float32) * 0.5)
    y = torch.relu(x)
    w = torch.randn_like(y)
    (y * w).sum().backward()
    save("relu", x=x, y=y, w=w, dx=x.grad)


affine_cases()
batchnorm_cases()
maxpool_cases()
gap_case()
linear_cases()
relu_case()
