#!/usr/bin/python3
"""Images carrying EXIF orientations, and what Pillow 9.4 makes of them, for
pillow's TestOrientationMatchesPIL and imageio's TestReadOrientedMatchesPIL.

Usage: /usr/bin/python3 gen_exif.py OUTDIR

Writes OUTDIR/NAME.{jpg,png} and OUTDIR/cases.json, a list of {"name",
"file", "orientation", "w", "h", "rgb"}: "orientation" is
Image.open(file).getexif().get(0x0112) (0 when absent or not an int), "rgb"
names a raw file of the RGB pixels ([h, w, 3]) after Detectron2's
read_image steps: open, transpose as the orientation says (2..8), convert
to RGB. "w" and "h" are that image's size.
"""
import io
import json
import numbers
import os
import struct
import sys
import zlib

import numpy as np
from PIL import Image, PngImagePlugin

# EXIF orientation -> the Image.transpose method that undoes it
# (Detectron2 data/detection_utils.py and ImageOps.exif_transpose).
TRANSPOSE = {
    2: Image.Transpose.FLIP_LEFT_RIGHT,
    3: Image.Transpose.ROTATE_180,
    4: Image.Transpose.FLIP_TOP_BOTTOM,
    5: Image.Transpose.TRANSPOSE,
    6: Image.Transpose.ROTATE_270,
    7: Image.Transpose.TRANSVERSE,
    8: Image.Transpose.ROTATE_90,
}


def exif_bytes(order, entries):
    """An "Exif\\0\\0" TIFF block with IFD0 holding entries (tag, type, count, value bytes)."""
    e = "<" if order == b"II" else ">"
    out = b"Exif\x00\x00" + order + struct.pack(e + "HI", 42, 8) + struct.pack(e + "H", len(entries))
    extra = b""
    extra_at = 8 + 2 + 12 * len(entries) + 4
    for tag, typ, count, value in entries:
        if len(value) <= 4:
            field = value.ljust(4, b"\x00")
        else:
            field = struct.pack(e + "I", extra_at + len(extra))
            extra += value
        out += struct.pack(e + "HHI", tag, typ, count) + field
    return out + struct.pack(e + "I", 0) + extra


def short(order, v):
    return struct.pack("<H" if order == b"II" else ">H", v)


def as_int(v):
    """v when it is a number equal to an integer (a dict lookup then matches
    that integer, as Detectron2's does), else 0."""
    if isinstance(v, numbers.Number) and float(v).is_integer():
        return int(v)
    return 0


def picture(w, h, seed):
    """A w x h RGB image with structure (so orientation errors show) and noise."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:h, 0:w]
    img = np.stack([(xx * 255 // max(w - 1, 1)), (yy * 255 // max(h - 1, 1)),
                    ((xx // 8 + yy // 8) % 2) * 200], axis=-1)
    img = img + rng.integers(0, 30, size=img.shape)
    return Image.fromarray(np.clip(img, 0, 255).astype(np.uint8), "RGB")


def save_rgb16(arr):
    """A 16-bit RGB PNG of arr ([h, w, 3] uint16), which Pillow cannot write."""
    h, w, _ = arr.shape
    raw = b"".join(b"\x00" + arr[y].astype(">u2").tobytes() for y in range(h))

    def chunk(typ, body):
        return struct.pack(">I", len(body)) + typ + body + struct.pack(">I", zlib.crc32(typ + body))
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 16, 2, 0, 0, 0))
            + chunk(b"IDAT", zlib.compress(raw)) + chunk(b"IEND", b""))


def main():
    outdir = sys.argv[1]
    cases = []

    def add(name, ext, data):
        path = os.path.join(outdir, name + "." + ext)
        with open(path, "wb") as f:
            f.write(data)
        im = Image.open(path)
        o = im.getexif().get(0x0112)
        if o in TRANSPOSE:
            im = im.transpose(TRANSPOSE[o])
        arr = np.asarray(im.convert("RGB"))
        with open(os.path.join(outdir, name + ".rgb"), "wb") as f:
            f.write(arr.tobytes())
        cases.append({"name": name, "file": name + "." + ext,
                      "orientation": as_int(o),
                      "w": arr.shape[1], "h": arr.shape[0], "rgb": name + ".rgb"})

    def save(img, fmt, **kw):
        buf = io.BytesIO()
        img.save(buf, fmt, **kw)
        return buf.getvalue()

    base = picture(37, 23, 1)
    for o in range(1, 9):
        for order in (b"II", b"MM"):
            ex = exif_bytes(order, [(0x010F, 2, 4, b"Go!\x00"), (0x0112, 3, 1, short(order, o))])
            tag = f"o{o}_{order.decode().lower()}"
            add("jpeg_" + tag, "jpg", save(base, "JPEG", quality=90, exif=ex))
            add("png_" + tag, "png", save(base, "PNG", exif=ex))
    # Pillow's own EXIF writer.
    ex = Image.Exif()
    ex[0x0112] = 6
    add("jpeg_pil_exif_6", "jpg", save(base, "JPEG", quality=95, exif=ex.tobytes()))
    # Numbers stored as other types, repeated tags, out-of-range values.
    add("jpeg_long_8", "jpg", save(base, "JPEG", exif=exif_bytes(b"II", [(0x0112, 4, 1, struct.pack("<I", 8))])))
    add("jpeg_rational_3", "jpg", save(base, "JPEG", exif=exif_bytes(b"MM", [(0x0112, 5, 1, struct.pack(">II", 6, 2))])))
    add("jpeg_ascii", "jpg", save(base, "JPEG", exif=exif_bytes(b"II", [(0x0112, 2, 2, b"6\x00")])))
    add("jpeg_value_9", "jpg", save(base, "JPEG", exif=exif_bytes(b"II", [(0x0112, 3, 1, short(b"II", 9))])))
    add("jpeg_two_shorts", "jpg", save(base, "JPEG", exif=exif_bytes(b"II", [(0x0112, 3, 2, short(b"II", 5) + short(b"II", 2))])))
    add("jpeg_no_exif", "jpg", save(base, "JPEG"))
    add("jpeg_progressive_o6", "jpg", save(picture(64, 40, 2), "JPEG", progressive=True, optimize=True,
                                           exif=exif_bytes(b"II", [(0x0112, 3, 1, short(b"II", 6))])))
    add("jpeg_444_o7", "jpg", save(picture(33, 17, 3), "JPEG", subsampling=0, quality=97,
                                   exif=exif_bytes(b"MM", [(0x0112, 3, 1, short(b"MM", 7))])))
    add("jpeg_bad_tiff_header", "jpg", save(base, "JPEG", exif=b"Exif\x00\x00XX\x00*\x00\x00\x00\x08"))
    add("jpeg_grey_o6", "jpg", save(base.convert("L"), "JPEG", exif=exif_bytes(b"II", [(0x0112, 3, 1, short(b"II", 6))])))
    # PNG: XMP fallback, ImageMagick's raw profile, both with and without eXIf.
    xmp = ('<x:xmpmeta xmlns:x="adobe:ns:meta/"><rdf:RDF xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#">'
           '<rdf:Description xmlns:tiff="http://ns.adobe.com/tiff/1.0/" tiff:Orientation="%d"/></rdf:RDF></x:xmpmeta>')
    info = PngImagePlugin.PngInfo()
    info.add_itxt("XML:com.adobe.xmp", xmp % 8)
    add("png_xmp_8", "png", save(base, "PNG", pnginfo=info))
    info = PngImagePlugin.PngInfo()
    info.add_itxt("XML:com.adobe.xmp", xmp % 3, zip=True)
    add("png_xmp_zip_3", "png", save(base, "PNG", pnginfo=info))
    info = PngImagePlugin.PngInfo()
    info.add_itxt("XML:com.adobe.xmp", xmp % 8)
    add("png_exif_5_over_xmp", "png", save(base, "PNG", pnginfo=info,
                                          exif=exif_bytes(b"II", [(0x0112, 3, 1, short(b"II", 5))])))
    raw = exif_bytes(b"MM", [(0x0112, 3, 1, short(b"MM", 7))])[6:]
    hexed = raw.hex()
    info = PngImagePlugin.PngInfo()
    info.add_text("Raw profile type exif", "\nexif\n%8d\n" % len(raw)
                  + "\n".join(hexed[i:i + 72] for i in range(0, len(hexed), 72)) + "\n", zip=True)
    add("png_raw_profile_7", "png", save(base, "PNG", pnginfo=info))
    add("png_no_exif_rgba", "png", save(base.convert("RGBA"), "PNG"))
    # Other pixel formats, decoded as Pillow's convert("RGB") does.
    add("png_grey", "png", save(base.convert("L"), "PNG"))
    add("png_grey_alpha", "png", save(base.convert("LA"), "PNG"))
    add("png_palette", "png", save(base.convert("P", palette=Image.Palette.ADAPTIVE, colors=50), "PNG"))
    pal = base.convert("P", palette=Image.Palette.ADAPTIVE, colors=20)
    add("png_palette_trns", "png", save(pal, "PNG", transparency=3))
    add("png_rgb16", "png", save_rgb16(np.asarray(base).astype(np.uint16) * 257 + 3))
    # Not here, because imageio differs from Pillow on them: 16-bit grey PNGs
    # (Pillow clips each value to 255, OpenCV keeps the high byte) and CMYK
    # JPEGs (Pillow's and OpenCV's CMYK -> RGB round differently, by 1).
    with open(os.path.join(outdir, "cases.json"), "w") as f:
        json.dump(cases, f, indent=1)


if __name__ == "__main__":
    main()
