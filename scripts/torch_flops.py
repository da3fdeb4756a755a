"""Counts the FLOPs of a torch model's convolutions and linear layers, as
the Go benchmarks do (nn.Executor.FLOPs): 2 * multiply-adds of every Conv2d
and Linear call, from the shapes of one run; batch norm, ReLU, pooling,
additions, RoIAlign and the rest are left out. For a step run with gradients
enabled, the backward-weights multiply-adds of every layer with a trainable
weight and the backward-data ones of every layer whose input needs a
gradient are added.

Used by scripts/bench_backbone.py, checkpoint/testdata/bench_tv_fpn.py and
detection/testdata/bench_d2_c4.py (which put this folder on sys.path).
"""


def count_flops(m, step):
    """Runs step() once and returns the conv/linear FLOPs it does in m's modules."""
    import torch

    total = [0]

    def hook(mod, inp, outp):
        if isinstance(mod, torch.nn.Conv2d):
            macs = outp.numel() * mod.in_channels // mod.groups * mod.kernel_size[0] * mod.kernel_size[1]
        else:
            macs = outp.numel() * mod.in_features
        passes = 1
        if torch.is_grad_enabled():
            passes += mod.weight.requires_grad + inp[0].requires_grad
        total[0] += 2 * macs * passes

    hs = [mod.register_forward_hook(hook) for mod in m.modules()
          if isinstance(mod, (torch.nn.Conv2d, torch.nn.Linear))]
    try:
        step()
    finally:
        for h in hs:
            h.remove()
    return total[0]
