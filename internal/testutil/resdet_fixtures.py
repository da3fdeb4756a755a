"""What the torch fixture scripts in */testdata share: writing tensors
(safetensors, raw float32 files), and the synthetic images and batch-norm
statistics of the detector references.

A script imports it with its own folder's path to here, e.g. from
backbone/testdata:

    sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)),
                                    "..", "..", "internal", "testutil"))
    import resdet_fixtures

Runs under Debian's /usr/bin/python3 with torch; needs nothing else.
"""
import json
import os
import struct

import torch

# torch dtype -> (safetensors dtype, numpy little-endian dtype).
SAFETENSORS_DTYPES = {
    torch.float32: ("F32", "<f4"),
    torch.float64: ("F64", "<f8"),
    torch.int64: ("I64", "<i8"),
    torch.float16: ("F16", "<f2"),
}


def write_safetensors(path, tensors, metadata=None, as_float32=False):
    """Writes the dict name -> tensor to path in the safetensors format,
    in the dict's order, row-major, little endian. With as_float32 every
    tensor is written as F32; otherwise its dtype must be one of
    SAFETENSORS_DTYPES. metadata (a dict of strings), when given, is the
    header's "__metadata__" entry. The header is padded with spaces to a
    multiple of 8 bytes."""
    header, blobs, off = {}, [], 0
    if metadata is not None:
        header["__metadata__"] = metadata
    for k, t in tensors.items():
        t = t.detach()
        if as_float32:
            t = t.float()
        code, npt = SAFETENSORS_DTYPES[t.dtype]
        b = t.contiguous().numpy().astype(npt).tobytes()
        header[k] = {"dtype": code, "shape": list(t.shape), "data_offsets": [off, off + len(b)]}
        blobs.append(b)
        off += len(b)
    h = json.dumps(header).encode()
    h += b" " * ((8 - len(h) % 8) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(h)))
        f.write(h)
        for b in blobs:
            f.write(b)


def save_bins(out, case, **tensors):
    """Writes each tensor as out/<case>.<name>.bin (float32, little endian,
    row-major) and their shapes as out/<case>.json ({"name": shape}): the
    format of package nn's op fixtures."""
    shapes = {}
    for name, t in tensors.items():
        t = t.detach().to(torch.float32).contiguous()
        shapes[name] = list(t.shape)
        with open(os.path.join(out, "%s.%s.bin" % (case, name)), "wb") as f:
            f.write(t.numpy().astype("<f4").tobytes())
    with open(os.path.join(out, case + ".json"), "w") as f:
        json.dump(shapes, f)


def make_image(g, w, h, rects, min_side, noise):
    """A smooth random RGB image, uint8 [H, W, 3], drawn from the generator
    g: sine waves, then rects flat rectangles of random colour, each side at
    least min_side pixels (cut at the border), then Gaussian noise of
    standard deviation noise (0..255 scale)."""
    ys = torch.linspace(0, 1, h).view(h, 1, 1)
    xs = torch.linspace(0, 1, w).view(1, w, 1)
    a = torch.rand(1, 1, 3, generator=g)
    b = torch.rand(1, 1, 3, generator=g)
    img = 255 * (0.5 + 0.25 * torch.sin(6 * xs * a + 4 * ys * b + a))
    img = img.expand(h, w, 3).clone()
    for _ in range(rects):
        x1 = int(torch.randint(0, w - min_side, (1,), generator=g))
        y1 = int(torch.randint(0, h - min_side, (1,), generator=g))
        x2 = min(w, x1 + int(torch.randint(min_side, max(min_side + 1, w // 2), (1,), generator=g)))
        y2 = min(h, y1 + int(torch.randint(min_side, max(min_side + 1, h // 2), (1,), generator=g)))
        img[y1:y2, x1:x2] = 255 * torch.rand(3, generator=g)
    img += noise * torch.randn(h, w, 3, generator=g)
    return img.clamp(0, 255).round().to(torch.uint8)


def calibrate(model, inputs, g, norm_types):
    """Runs model(inputs) once without gradients and sets the statistics of
    every module of a class in norm_types from its input there: running
    mean and variance near the input's per-channel ones (perturbed), weight
    in [0.5, 1.5), bias ~ N(0, 0.2²), all drawn from g. So the batch norms
    are far from the identity while activations keep a sane scale."""
    hooks = []

    def pre(mod, inp):
        v = inp[0].detach()
        c = v.shape[1]
        mean = v.transpose(0, 1).reshape(c, -1).mean(1)
        var = v.transpose(0, 1).reshape(c, -1).var(1) + 1e-3
        mod.running_mean.copy_(mean + 0.1 * var.sqrt() * torch.randn(c, generator=g))
        mod.running_var.copy_(var * (0.5 + torch.rand(c, generator=g)))
        mod.weight.copy_(0.5 + torch.rand(c, generator=g))
        mod.bias.copy_(0.2 * torch.randn(c, generator=g))

    for m in model.modules():
        if isinstance(m, norm_types):
            hooks.append(m.register_forward_pre_hook(pre))
    with torch.no_grad():
        model(inputs)
    for h in hooks:
        h.remove()
