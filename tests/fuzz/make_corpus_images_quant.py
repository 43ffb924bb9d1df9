#!/usr/bin/env python3
"""Writes the seed corpora of fuzz_pgm, fuzz_png and fuzz_quant_model (standard library only):

    python3 tests/fuzz/make_corpus_images_quant.py

corpus/pgm/: P5 and P2 images (comments, maxval < 255, a comment after maxval) and near misses;
corpus/png/: the PNG test fixtures (tests/fixtures/png, each under 1.5 KB) and a cut one;
corpus/quant_model/: small int8 models in ember's format (quant/serialize.hpp), one per kind
of step and geometry (conv2d with padding, stride and dilation, max_pool2d on codes and on
floats, linear only), a few hundred bytes each, plus near misses. Deterministic output.
"""
import json
import os
import shutil
import struct

HERE = os.path.dirname(os.path.abspath(__file__))
CORPUS = os.path.join(HERE, "corpus")
PNG_FIXTURES = os.path.join(HERE, "..", "fixtures", "png")


def fresh(target):
    folder = os.path.join(CORPUS, target)
    shutil.rmtree(folder, ignore_errors=True)
    os.makedirs(folder)
    return folder


def write(folder, name, data):
    with open(os.path.join(folder, name), "wb") as f:
        f.write(data)


# ---- PGM ---------------------------------------------------------------------------------

def pgm():
    out = fresh("pgm")
    write(out, "p5_3x2", b"P5\n3 2\n255\n" + bytes([0, 50, 100, 150, 200, 255]))
    write(out, "p5_maxval15", b"P5 2 2 15\n" + bytes([0, 5, 10, 15]))
    write(out, "p5_comment_after_maxval", b"P5 1 1 255#x\n\x07")
    write(out, "p5_comments", b"P5\n# made by hand\n2 1\n# max\n255\n\x01\x02")
    write(out, "p2_2x2", b"P2\n# comment\n2 2\n15\n0 15\n5 10\n")
    write(out, "p2_comments_in_data", b"P2 3 1 9\n007 #a\n0\n9")
    write(out, "p2_truncated", b"P2 2 2 255\n1 2 3")
    write(out, "p5_truncated", b"P5 4 4 255\n" + b"x" * 7)
    write(out, "p5_huge_claim", b"P5 16384 16384 255\n\x01")


# ---- PNG ---------------------------------------------------------------------------------

def png():
    out = fresh("png")
    for name in sorted(os.listdir(PNG_FIXTURES)):
        if name.endswith(".png") and os.path.getsize(os.path.join(PNG_FIXTURES, name)) <= 1500:
            with open(os.path.join(PNG_FIXTURES, name), "rb") as f:
                data = f.read()
            write(out, name[:-4], data)
    with open(os.path.join(PNG_FIXTURES, "digit28.png"), "rb") as f:
        digit = f.read()
    write(out, "cut_in_idat", digit[:50])


# ---- int8 models -------------------------------------------------------------------------

def safetensors(tensors, metadata):
    """tensors: {name: (dtype, shape, bytes)}; data back to back in name order."""
    header = {"__metadata__": metadata}
    data = b""
    for name in sorted(tensors):
        dtype, shape, raw = tensors[name]
        header[name] = {"dtype": dtype, "shape": shape,
                        "data_offsets": [len(data), len(data) + len(raw)]}
        data += raw
    text = json.dumps(header, separators=(",", ":")).encode()
    text += b" " * (-len(text) % 8)
    return struct.pack("<Q", len(text)) + text + data


def int8_model(input_shape, steps, version="1"):
    """steps: (op, name, args); conv2d args (in, out, kernel, stride, padding, dilation),
    linear (in, out), batch_norm (channels); the other ops' as quant/serialize.hpp lists them.
    Weights follow a fixed pattern within [-127, 127]."""
    tensors = {}
    text = []
    for i, (op, name, args) in enumerate(steps):
        text.append(":".join([op, name] + ([",".join(map(str, args))] if args else [])))
        if op in ("avg_pool2d", "adaptive_avg_pool2d"):
            tensors[name + ".input_scale"] = ("F32", [], struct.pack("<f", 0.03))
            tensors[name + ".input_zero_point"] = ("I32", [], struct.pack("<i", 5 * i % 64))
        if op == "batch_norm":
            c = args[0]
            tensors[name + ".weight_scale"] = (
                "F32", [c], struct.pack("<%df" % c, *[0.5 + 0.1 * k for k in range(c)]))
            tensors[name + ".bias"] = (
                "F32", [c], struct.pack("<%df" % c, *[0.05 * (k - 2) for k in range(c)]))
        if op not in ("conv2d", "linear"):
            continue
        cin, cout = args[0], args[1]
        shape = [cout, cin, args[2], args[2]] if op == "conv2d" else [cout, cin]
        n = 1
        for d in shape:
            n *= d
        w = bytes(((k * 37 + i * 11) % 255 - 127) & 0xFF for k in range(n))
        tensors[name + ".weight"] = ("I8", shape, w)
        tensors[name + ".weight_scale"] = (
            "F32", [cout], struct.pack("<%df" % cout, *[0.01 + 0.002 * o for o in range(cout)]))
        tensors[name + ".bias"] = (
            "F32", [cout], struct.pack("<%df" % cout, *[0.1 * (o - 1) for o in range(cout)]))
        tensors[name + ".input_scale"] = ("F32", [], struct.pack("<f", 0.02))
        tensors[name + ".input_zero_point"] = ("I32", [], struct.pack("<i", 3 * i % 64))
    metadata = {"format": "ember-int8", "version": version,
                "input_shape": ",".join(map(str, input_shape)), "steps": ";".join(text),
                "activation_bits": "7", "weights": "int8, symmetric, per output channel"}
    return safetensors(tensors, metadata)


def quant_model():
    out = fresh("quant_model")
    write(out, "conv_pool_linear", int8_model([1, 6, 6], [
        ("conv2d", "c1", [1, 2, 3, 1, 1, 1]), ("relu", "relu", []),
        ("max_pool2d", "max_pool2d", [2, 2, 0]), ("dropout", "dropout1", []),
        ("flatten", "flatten", [1]), ("linear", "fc", [18, 3]),
        ("log_softmax", "log_softmax", [1])]))
    write(out, "linear_only", int8_model([4], [
        ("linear", "a", [4, 5]), ("relu", "relu", []), ("dropout", "d", []),
        ("linear", "b", [5, 2])]))
    write(out, "strided_dilated", int8_model([2, 7, 7], [
        ("conv2d", "c", [2, 3, 2, 2, 1, 2]), ("conv2d", "c2", [3, 2, 1, 1, 0, 1]),
        ("relu", "relu", []), ("max_pool2d", "p", [3, 1, 1]), ("flatten", "flatten", [1]),
        ("linear", "fc", [32, 2]), ("log_softmax", "log_softmax", [1])]))
    write(out, "pool_on_floats", int8_model([1, 4, 4], [
        ("max_pool2d", "p", [2, 2, 0]), ("relu", "relu", []), ("flatten", "flatten", [1]),
        ("linear", "fc", [4, 2])]))
    write(out, "twice_listed", int8_model([4], [("linear", "a", [4, 2]), ("linear", "a", [4, 2])]))
    write(out, "big_padding", int8_model([1, 3, 3], [
        ("conv2d", "c", [1, 1, 1, 1, 4611686018427387904, 1])]))
    # version 2: batch norm in float, average pooling on codes and on floats, the activations
    # without an int8 form
    write(out, "v2_every_step", int8_model([3, 8, 8], [
        ("conv2d", "c", [3, 4, 3, 1, 1, 1]), ("batch_norm", "bn", [4]), ("gelu", "g", [0]),
        ("avg_pool2d", "ap", [3, 3, 2, 2, 1, 1, 1, 0]), ("leaky_relu", "lr", ["0.2"]),
        ("adaptive_avg_pool2d", "aap", [2, 2]), ("elu", "e", ["0.7"]), ("silu", "s", []),
        ("sigmoid", "sg", []), ("tanh", "t", []), ("softmax", "sm", [1]), ("flatten", "f", [1]),
        ("linear", "fc", [16, 5]), ("log_softmax", "ls", [-1])], version="2"))
    write(out, "v2_pools_on_codes", int8_model([2, 9, 9], [
        ("conv2d", "c", [2, 3, 3, 1, 0, 1]), ("relu", "r", []),
        ("avg_pool2d", "ap", [2, 3, 2, 1, 1, 0, 1, 1]), ("adaptive_avg_pool2d", "aap", [3, 1]),
        ("gelu", "g", [1]), ("flatten", "f", [1]), ("linear", "fc", [9, 2])], version="2"))
    write(out, "v1_with_gelu", int8_model([4], [("linear", "a", [4, 2]), ("gelu", "g", [0])]))


if __name__ == "__main__":
    pgm()
    png()
    quant_model()
