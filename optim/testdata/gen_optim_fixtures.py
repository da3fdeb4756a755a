#!/usr/bin/python3
"""Generates the torch reference for resdet's optim package (torch 1.13, CPU,
float32): torch.optim.SGD (momentum 0.9, weight decay) driven by Detectron2's
WarmupMultiStepLR schedule, written here as a LambdaLR with Detectron2's
formula (detectron2/solver/lr_scheduler.py, WarmupMultiStepLR + linear
_get_warmup_factor_at_iter).

Usage: /usr/bin/python3 gen_optim_fixtures.py OUTDIR

Writes OUTDIR/sgd.json: {case: {"params": [{name, shape, init, grads[step],
after[step], momentum}], "lr": [per step], config...}}. Float arrays are
lists of float32 bit patterns (uint32) so they round-trip exactly.
"""
import bisect
import json
import os
import struct
import sys

import torch


def bits(t):
    a = t.detach().contiguous().view(-1).to(torch.float32).tolist()
    return [struct.unpack("<I", struct.pack("<f", v))[0] for v in a]


def warmup_multistep(steps, gamma, warmup_iters, warmup_factor):
    def factor(it):
        w = 1.0
        if it < warmup_iters:
            a = it / warmup_iters
            w = warmup_factor * (1 - a) + a
        return w * gamma ** bisect.bisect_right(steps, it)
    return factor


def case(seed, base_lr, momentum, wd, steps, warmup_iters, n_steps, bias_group=False):
    """bias_group: the [13] parameter in a group of its own with twice the
    learning rate and no weight decay (the Caffe recipe's biases)."""
    g = torch.Generator().manual_seed(seed)
    shapes = [[4, 3, 3, 3], [13], [5, 7]]
    params = [torch.nn.Parameter(torch.randn(*s, generator=g)) for s in shapes]
    mults, decays = [1.0] * 3, [wd] * 3
    if bias_group:
        mults[1], decays[1] = 2.0, 0.0
        groups = [{"params": [params[0], params[2]]}, {"params": [params[1]], "lr": 2 * base_lr, "weight_decay": 0.0}]
    else:
        groups = params
    opt = torch.optim.SGD(groups, lr=base_lr, momentum=momentum, weight_decay=wd)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, warmup_multistep(steps, 0.1, warmup_iters, 1.0 / 1000))
    out = [{"name": f"p{i}", "shape": s, "init": bits(p), "grads": [], "after": [], "lr_mult": mults[i],
            "weight_decay": decays[i]} for i, (p, s) in enumerate(zip(params, shapes))]
    lrs = []  # of the first group
    for _ in range(n_steps):
        lrs.append(opt.param_groups[0]["lr"])
        for p, o in zip(params, out):
            p.grad = torch.randn(p.shape, generator=g) * 0.1
            o["grads"].append(bits(p.grad))
        opt.step()
        sched.step()
        for p, o in zip(params, out):
            o["after"].append(bits(p))
    for p, o in zip(params, out):
        buf = opt.state[p].get("momentum_buffer")
        o["momentum"] = bits(buf) if buf is not None else None
    return {"params": out, "lr": lrs, "base_lr": base_lr, "momentum": momentum, "weight_decay": wd,
            "steps": steps, "warmup_iters": warmup_iters}


def main():
    if len(sys.argv) != 2:
        sys.exit(__doc__)
    cases = {
        "default": case(1, 0.02, 0.9, 1e-4, [4, 7], 3, 9),
        "voc": case(2, 0.001, 0.9, 5e-4, [5], 2, 7),
        "no_momentum": case(3, 0.1, 0.0, 1e-4, [2], 0, 4),
        "no_decay": case(4, 0.01, 0.9, 0.0, [], 5, 6),
        "bias_group": case(5, 0.001, 0.9, 5e-4, [3], 2, 5, bias_group=True),
    }
    path = os.path.join(sys.argv[1], "sgd.json")
    with open(path + ".tmp", "w") as f:
        json.dump(cases, f, sort_keys=True)
    os.replace(path + ".tmp", path)


if __name__ == "__main__":
    main()
