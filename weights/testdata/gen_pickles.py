#!/usr/bin/python3
"""Writes Detectron2-style .pkl files for the weights package tests (pickle + numpy only).

Usage: /usr/bin/python3 gen_pickles.py OUTDIR
       /usr/bin/python3 gen_pickles.py --seeds OUTDIR   (the small fuzz seeds in testdata/)

OUTDIR/manifest.json:
  "cases":  [{"file", "layout" ("zoo", "c2flat", "c2blobs"), "author", "heuristics",
              "tensors": [{"name", "shape", "offset"}]}]   tensors in file order; offset
            indexes OUTDIR/values.bin, float32 little-endian, each tensor row-major
            (the array converted with numpy's astype(float32)).
  "errors": [{"file", "want": [substrings the error must contain]}]
Every valid file is also read back with pickle.load(encoding="latin1") and compared with
what was written, so a malformed hand-assembled file fails here, not in Go.
"""
import collections
import io
import json
import os
import pickle
import struct
import sys

import numpy as np

rng = np.random.default_rng(7)


def randf(*shape, dtype="<f4"):
    return (rng.standard_normal(shape) * 3).astype(dtype)


def zoo_tensors():
    d = collections.OrderedDict()
    d["backbone.stem.conv1.weight"] = randf(4, 3, 3, 3)
    d["fortran3d"] = np.asfortranarray(randf(3, 4, 5))
    d["fortran2d_f8"] = np.asfortranarray(randf(5, 7, dtype="<f8"))
    d["half"] = randf(6, dtype="<f2")
    d["double"] = randf(2, 3, dtype="<f8")
    d["big_endian"] = randf(3, 2, dtype=">f4")
    d["big_endian_f8"] = randf(4, dtype=">f8")
    d["big_endian_f2"] = np.asfortranarray(randf(2, 3, dtype=">f2"))
    d["scalar"] = np.array(2.5, dtype="<f4")
    d["scalar_f8"] = np.array(-1e-3, dtype="<f8")
    d["empty"] = np.zeros((0, 3), dtype="<f4")
    d["noncontig"] = randf(4, 6)[:, ::2]
    d["special"] = np.array([np.inf, -np.inf, -0.0, 1e-45, 3.4028235e38, np.nan], dtype="<f4")
    d["half_special"] = np.array([np.inf, -0.0, 6e-8, 65504, np.nan], dtype="<f2")
    d["f8_rounding"] = np.array([1 + 2**-24, 1 + 3 * 2**-24, 1e300, 1e-300], dtype="<f8")
    d["res2.0.conv1.norm.num_batches_tracked"] = np.array(7, dtype="<i8")
    return d


def c2_tensors():
    d = collections.OrderedDict()
    d["conv1_w"] = randf(4, 3, 3, 3)
    d["conv1_w_momentum"] = randf(4, 3, 3, 3)
    d["res_conv1_bn_s"] = randf(4)
    d["res_conv1_bn_b"] = randf(4)
    d["res2_0_branch2a_w"] = np.asfortranarray(randf(2, 4, 1, 1))
    d["res2_0_branch2a_w_momentum"] = randf(2, 4, 1, 1)
    d["fc1000_b"] = randf(10, dtype=">f8")
    d["all_halves"] = np.arange(1 << 16, dtype="<u2").view("<f2")  # every float16 bit pattern
    return d


class Call:
    """Pickles as fn(*args) without running it (for the forbidden-class files)."""

    def __init__(self, fn, *args):
        self.fn, self.args = fn, args

    def __reduce__(self):
        return self.fn, self.args


# --- hand assembly -------------------------------------------------------------------

def op_int(v):
    if 0 <= v < 256:
        return b"K" + bytes([v])
    if 0 <= v < 65536:
        return b"M" + struct.pack("<H", v)
    return b"J" + struct.pack("<i", v)


def op_str2(s):
    """A Python 2 str (SHORT_BINSTRING / BINSTRING)."""
    b = s if isinstance(s, bytes) else s.encode("latin1")
    if len(b) < 256:
        return b"U" + bytes([len(b)]) + b
    return b"T" + struct.pack("<i", len(b)) + b


def op_unicode(s):
    b = s.encode("utf8")
    return b"X" + struct.pack("<I", len(b)) + b


def py2_array(a):
    """A numpy array as Python 2's numpy pickles it with protocol 2."""
    fortran = a.flags.f_contiguous and not a.flags.c_contiguous
    raw = a.tobytes(order="F" if fortran else "C")
    out = b"cnumpy.core.multiarray\n_reconstruct\ncnumpy\nndarray\n"
    out += op_int(0) + b"\x85" + op_str2("b") + b"\x87R"
    order = a.dtype.str[0]
    out += b"(" + op_int(1) + b"(" + b"".join(op_int(d) for d in a.shape) + b"t"
    out += b"cnumpy\ndtype\n" + op_str2(a.dtype.str[1:]) + op_int(0) + op_int(1) + b"\x87R"
    out += b"(" + op_int(3) + op_str2(order) + b"NNN" + op_int(-1) + op_int(-1) + op_int(0) + b"tb"
    out += (b"\x88" if fortran else b"\x89") + op_str2(raw) + b"tb"
    return out


def py2_pickle(d):
    out = b"\x80\x02}q\x00("
    for k, v in d.items():
        out += op_str2(k) + py2_array(v)
    return out + b"u."


def check_equal(got, want, where):
    assert list(got) == list(want), (where, list(got), list(want))
    for k in want:
        g, w = got[k], want[k]
        if isinstance(w, dict):
            check_equal(g, w, where + "/" + k)
        elif isinstance(w, np.ndarray):
            # numpy may load a big-endian array as a native one with the same values.
            native = w.dtype.newbyteorder("=")
            assert g.dtype.newbyteorder("=") == native and g.shape == w.shape, (where, k, g.dtype, w.dtype)
            assert g.astype(native).tobytes() == w.astype(native).tobytes(), (where, k)
        else:
            assert g == w, (where, k)


def main():
    args = sys.argv[1:]
    seeds = args and args[0] == "--seeds"
    if seeds:
        args = args[1:]
    out = args[0]
    os.makedirs(out, exist_ok=True)
    if seeds:
        write_seeds(out)
        return
    values = io.BytesIO()
    cases, errors = [], []

    def valid(fname, obj, data, layout, tensors, author="", heuristics=False, load=True):
        if load:
            check_equal(pickle.loads(data, encoding="latin1"), obj, fname)
        with open(os.path.join(out, fname), "wb") as f:
            f.write(data)
        ts = []
        for k, v in tensors.items():
            if layout != "zoo" and k.endswith("_momentum"):
                continue
            ts.append({"name": k, "shape": list(v.shape), "offset": values.tell() // 4})
            with np.errstate(over="ignore"):  # 1e300 becomes inf, as in Go
                values.write(np.ascontiguousarray(v.astype("<f4")).tobytes())
        cases.append({"file": fname, "layout": layout, "author": author,
                      "heuristics": heuristics, "tensors": ts})

    def bad(fname, data, *want):
        with open(os.path.join(out, fname), "wb") as f:
            f.write(data)
        errors.append({"file": fname, "want": list(want)})

    zoo = zoo_tensors()
    for proto in (2, 3, 4, 5):
        obj = {"model": dict(zoo), "__author__": "Detectron2 Model Zoo"}
        if proto == 4:
            obj["matching_heuristics"] = True
        valid("zoo_p%d.pkl" % proto, obj, pickle.dumps(obj, protocol=proto), "zoo", zoo,
              "Detectron2 Model Zoo", proto == 4)
    obj = {"__author__": "OrderedDict", "model": zoo}
    valid("zoo_ordered.pkl", obj, pickle.dumps(obj, protocol=3), "zoo", zoo, "OrderedDict")
    # numpy 2 moved numpy.core to numpy._core (this numpy cannot load the result).
    obj = {"model": dict(zoo), "__author__": "numpy2"}
    data = pickle.dumps(obj, protocol=3)
    assert data.count(b"cnumpy.core.multiarray\n") == 1
    data = data.replace(b"cnumpy.core.multiarray\n", b"cnumpy._core.multiarray\n")
    valid("zoo_numpy2_names.pkl", obj, data, "zoo", zoo, "numpy2", load=False)
    c2 = c2_tensors()
    valid("c2_flat_p2.pkl", dict(c2), pickle.dumps(dict(c2), protocol=2), "c2flat", c2, "", True)
    obj = {"blobs": dict(c2), "cfg": "MODEL:\n  TYPE: generalized_rcnn\n"}
    valid("c2_blobs_p4.pkl", obj, pickle.dumps(obj, protocol=4), "c2blobs", c2, "", True)
    valid("c2_py2.pkl", dict(c2), py2_pickle(c2), "c2flat", c2, "", True)
    # {"__author__": "py2", "model": {...}} as Python 2 writes it.
    data = (b"\x80\x02}(" + op_str2("__author__") + op_str2("py2") + op_str2("model")
            + py2_pickle(zoo)[2:-1] + b"u.")
    valid("zoo_py2.pkl", {"__author__": "py2", "model": dict(zoo)}, data, "zoo", zoo, "py2")

    # Files that must be rejected.
    two = {"a.weight": randf(2), "b.weight": randf(3)}
    for name, fn in [("posix_system", os.system), ("builtins_eval", eval)]:
        for proto in (2, 4):
            obj = {"model": {"a.weight": randf(2), "evil": Call(fn, "echo pwned"), "z": randf(1)},
                   "__author__": "x"}
            data = pickle.dumps(obj, protocol=proto)
            cls = "%s.%s" % (fn.__module__, fn.__name__)
            if proto < 3:
                cls = cls.replace("builtins.", "__builtin__.")
            bad("%s_p%d.pkl" % (name, proto), data, cls, "evil")
    bad("ordereddict_evil.pkl", pickle.dumps({"w": randf(2), "x": Call(collections.Counter, ())}, protocol=3),
        "collections.Counter", '"x"')
    bad("object_array.pkl", pickle.dumps({"w": randf(2), "obj": np.array([1, "a"], dtype=object)}, protocol=3),
        '"obj"', "object array")
    bad("int_array.pkl", pickle.dumps({"model": {"res2.0.conv1.weight": np.arange(4, dtype=np.int32)},
                                       "__author__": "x"}, protocol=3),
        '"res2.0.conv1.weight"', "integer array")
    bad("bool_array.pkl", pickle.dumps({"mask": np.ones(3, dtype=bool), "w": randf(1)}, protocol=5),
        '"mask"', "integer array")
    bad("complex_array.pkl", pickle.dumps({"c": np.ones(3, dtype=np.complex64), "w": randf(1)}, protocol=3),
        '"c"', "unsupported dtype")
    bad("unicode_array.pkl", pickle.dumps({"u": np.array(["ab"]), "w": randf(1)}, protocol=3),
        '"u"', "unsupported dtype")
    bad("structured_array.pkl", pickle.dumps({"s": np.zeros(2, dtype=[("a", "<f4")]), "w": randf(1)}, protocol=3),
        '"s"', "structured")
    bad("not_array.pkl", pickle.dumps({"conv1_w": [1.0, 2.0], "conv1_b": randf(2)}, protocol=2),
        '"conv1_w"', "list")
    bad("nested_dict.pkl", pickle.dumps({"conv1_w": {"x": randf(2)}}, protocol=3), '"conv1_w"', "dict")
    bad("model_not_dict.pkl", pickle.dumps({"model": [1], "__author__": "x"}, protocol=3), '"model"', "list")
    bad("blobs_not_dict.pkl", pickle.dumps({"blobs": randf(2)}, protocol=3), '"blobs"', "numpy.ndarray")
    bad("int_key.pkl", pickle.dumps({1: randf(2)}, protocol=3), "key", "int")
    bad("list_top.pkl", pickle.dumps([randf(2)], protocol=3), "list", "want a dict")
    bad("protocol0.pkl", pickle.dumps({"w": 1}, protocol=0), "not a pickle of protocol 2-5")
    bad("protocol1.pkl", pickle.dumps({"w": 1}, protocol=1), "not a pickle of protocol 2-5")
    bad("zip_magic.pkl", b"PK\x03\x04" + bytes(40), "zip")
    bad("empty.pkl", b"", "empty")
    bad("text.pkl", b'{"model": {}}', "not a pickle")
    bad("protocol9.pkl", b"\x80\x09}.", "protocol 9")
    full = pickle.dumps({"model": dict(zoo), "__author__": "x"}, protocol=3)
    cut = full.find(zoo["fortran2d_f8"].tobytes(order="F")) + 20
    assert cut > 20
    bad("truncated_data.pkl", full[:cut], "truncated", '"fortran2d_f8"')
    bad("truncated_end.pkl", full[:-1], "truncated")
    p5 = pickle.dumps({"model": dict(zoo), "__author__": "x"}, protocol=5)
    cut = p5.find(zoo["fortran3d"].tobytes(order="F")) + 8
    assert cut > 8
    bad("truncated_p5.pkl", p5[:cut], "truncated", '"fortran3d"')
    bufs = []
    bad("out_of_band.pkl", pickle.dumps({"w": randf(4), "v": randf(5)}, protocol=5, buffer_callback=bufs.append),
        "out-of-band")
    # Length fields far beyond the input: must fail without allocating them.
    hdr = b"\x80\x04}(" + b"\x8c\x01w"
    bad("huge_bytes8.pkl", hdr + b"\x8e" + struct.pack("<Q", 1 << 62) + b"abc", "truncated", '"w"')
    bad("huge_unicode.pkl", hdr + b"X\xff\xff\xff\xff" + b"abc", "truncated", '"w"')
    bad("huge_bytearray8.pkl", hdr + b"\x96" + struct.pack("<Q", (1 << 64) - 1), "truncated")
    bad("huge_frame.pkl", b"\x80\x04\x95" + struct.pack("<Q", 1 << 60) + b"}.", "truncated")
    bad("negative_binstring.pkl", hdr + b"T\xff\xff\xff\xff", "negative")
    bad("bad_memo.pkl", b"\x80\x03}(X\x01\x00\x00\x00wj\xff\xff\xff\x7fu.", "memo")
    bad("stack_underflow.pkl", b"\x80\x03u.", "MARK")
    bad("no_stop.pkl", b"\x80\x03}", "truncated")
    bad("newobj.pkl", b"\x80\x02ccollections\nOrderedDict\n)\x81.", "NEWOBJ")
    # A shape that claims far more values than the data holds.
    arr = py2_array(np.zeros(2, dtype="<f4"))
    big = arr.replace(b"(" + op_int(2) + b"t", b"(" + op_int(1 << 30) + op_int(1 << 30) + b"t")
    assert big != arr
    bad("huge_shape.pkl", b"\x80\x02}(" + op_str2("w") + big + op_str2("v") + arr + b"u.", '"w"', "shape")
    short = arr.replace(b"(" + op_int(2) + b"t", b"(" + op_int(1) + b"t")
    bad("shape_mismatch.pkl", b"\x80\x02}(" + op_str2("w") + short + op_str2("v") + arr + b"u.", '"w"', "needs")
    neg = arr.replace(b"(" + op_int(2) + b"t", b"(" + op_int(-2) + b"t")
    bad("negative_dim.pkl", b"\x80\x02}(" + op_str2("w") + neg + op_str2("v") + arr + b"u.", '"w"', "shape")
    # One 4 KB buffer shared, through the memo, by 500 arrays of 1024 values each.
    payload = bytes(4096)
    shared = b"\x80\x02}(" + op_str2("a0") + py2_array(np.zeros(1024, "<f4")).replace(
        op_str2(payload), op_str2(payload) + b"r\x00\x00\x01\x00")
    one = py2_array(np.zeros(1024, "<f4")).replace(op_str2(payload), b"j\x00\x00\x01\x00")
    for i in range(1, 500):
        shared += op_str2("a%d" % i) + one
    bad("shared_buffer.pkl", shared + b"u.", "more values than the file")
    # _codecs.encode repeated on one memoized 64 KB str.
    s = op_unicode("x" * 65536) + b"r\x00\x00\x01\x00"
    enc = b"c_codecs\nencode\n" + s + op_unicode("latin1") + b"\x86R0"
    rep = b"c_codecs\nencode\nj\x00\x00\x01\x00" + op_unicode("latin1") + b"\x86R0"
    bad("encode_amplify.pkl", b"\x80\x02}" + enc + rep * 20 + b".", "more bytes than the file")
    bad("encode_not_latin1.pkl", b"\x80\x02}c_codecs\nencode\n" + op_unicode("\u20ac") + op_unicode("latin1") + b"\x86R0.",
        "latin-1")
    bad("bad_utf8.pkl", b"\x80\x03}(X\x02\x00\x00\x00\xff\xfeK\x01u.", "UTF-8")

    with open(os.path.join(out, "values.bin"), "wb") as f:
        f.write(values.getvalue())
    with open(os.path.join(out, "manifest.json"), "w") as f:
        json.dump({"cases": cases, "errors": errors}, f, indent=1)


def write_seeds(out):
    """Small pickles for the fuzz target's seed corpus."""
    small = collections.OrderedDict()
    small["w"] = np.arange(6, dtype="<f4").reshape(2, 3)
    small["f"] = np.asfortranarray(np.arange(6, dtype=">f8").reshape(3, 2))
    small["h"] = np.array(1.5, dtype="<f2")
    for proto in (2, 3, 4, 5):
        obj = {"model": dict(small), "__author__": "seed"}
        with open(os.path.join(out, "seed_p%d.pkl" % proto), "wb") as f:
            f.write(pickle.dumps(obj, protocol=proto))
    with open(os.path.join(out, "seed_py2.pkl"), "wb") as f:
        f.write(py2_pickle(small))


if __name__ == "__main__":
    main()
