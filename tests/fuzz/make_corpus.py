#!/usr/bin/env python3
"""Writes the seed corpora of the fuzz harnesses in tests/fuzz/ (Python standard library only):

    python3 tests/fuzz/make_corpus.py

tests/fuzz/corpus/<name>/ holds the seeds of fuzz_<name> (idx_raw, idx_gzip, safetensors,
state_dict, checkpoint, json): small valid files the parser accepts, so that the fuzzer starts
from the paths that read real data, plus a few near misses. Each file is at most a few KB. The
output is deterministic (fixed values, gzip with mtime 0), so rerunning it changes nothing.
Other harnesses' corpora (written by hand or by their own scripts) are left alone.
"""
import gzip
import json
import os
import shutil
import struct
import zlib

HERE = os.path.dirname(os.path.abspath(__file__))
CORPUS = os.path.join(HERE, "corpus")
REFERENCE = os.path.join(HERE, "..", "fixtures", "io", "reference.safetensors")


def write(target, name, data):
    folder = os.path.join(CORPUS, target)
    os.makedirs(folder, exist_ok=True)
    with open(os.path.join(folder, name), "wb") as f:
        f.write(data)


def fresh(target):
    shutil.rmtree(os.path.join(CORPUS, target), ignore_errors=True)


# ---- IDX ---------------------------------------------------------------------------------

IDX_TYPES = {0x08: "B", 0x09: "b", 0x0B: ">h", 0x0C: ">i", 0x0D: ">f", 0x0E: ">d"}


def idx(type_code, dims, values=None):
    n = 1
    for d in dims:
        n *= d
    if values is None:
        values = [(i * 37 + 11) % 100 - (0 if type_code == 0x08 else 50) for i in range(n)]
    fmt = IDX_TYPES[type_code]
    payload = b"".join(struct.pack(fmt, v) for v in values)
    header = bytes([0, 0, type_code, len(dims)]) + b"".join(struct.pack(">I", d) for d in dims)
    return header + payload


def gz(data, level=6):
    return gzip.compress(data, compresslevel=level, mtime=0)


def idx_seeds():
    return {
        "u8_1d": idx(0x08, [5]),
        "u8_images": idx(0x08, [2, 4, 4]),
        "u8_labels": idx(0x08, [10], [5, 0, 4, 1, 9, 2, 1, 3, 1, 4]),
        "i8": idx(0x09, [3, 2]),
        "i16": idx(0x0B, [3]),
        "i32_rank4": idx(0x0C, [1, 2, 1, 2]),
        "f32": idx(0x0D, [2, 2], [0.5, -1.25, 3.0, 1e-3]),
        "f64": idx(0x0E, [2], [3.141592653589793, -0.0]),
        "bad_magic": b"\x12\x34\x08\x01" + struct.pack(">I", 2) + b"ab",
        "truncated": idx(0x08, [3, 3])[:-2],
        "extra": idx(0x08, [3]) + b"!",
    }


def make_idx():
    fresh("idx_raw")
    fresh("idx_gzip")
    for name, data in idx_seeds().items():
        write("idx_raw", name, data)
    # fuzz_idx_gzip: byte 0 picks the mode (low 2 bits) and the level (the rest), byte 1 a point.
    images = idx(0x08, [2, 4, 4])
    labels = idx(0x08, [10], [5, 0, 4, 1, 9, 2, 1, 3, 1, 4])
    write("idx_gzip", "file_images", b"\x00\x00" + gz(images))
    write("idx_gzip", "file_f64", b"\x00\x00" + gz(idx(0x0E, [2], [1.5, -2.0]), 9))
    write("idx_gzip", "file_two_members", b"\x00\x00" + gz(labels[:7]) + gz(labels[7:]))
    write("idx_gzip", "file_trailing", b"\x00\x00" + gz(labels) + b"xyz")
    write("idx_gzip", "file_stored", b"\x00\x00" + gz(labels, 0))
    write("idx_gzip", "compress_images", bytes([1 | (6 << 2), 0]) + images)
    write("idx_gzip", "compress_i32", bytes([1 | (1 << 2), 0]) + idx(0x0C, [1, 2, 1, 2]))
    write("idx_gzip", "split_labels", bytes([2 | (9 << 2), 100]) + labels)
    write("idx_gzip", "cut_images", bytes([3 | (6 << 2), 200]) + images)
    raw_deflate = zlib.compressobj(6, zlib.DEFLATED, -15)
    body = raw_deflate.compress(labels) + raw_deflate.flush()
    header = b"\x1f\x8b\x08\x08\x00\x00\x00\x00\x00\x03name\x00"  # FNAME set
    trailer = struct.pack("<II", zlib.crc32(labels), len(labels))
    write("idx_gzip", "file_fname", b"\x00\x00" + header + body + trailer)


# ---- safetensors ---------------------------------------------------------------------------

DTYPE = {"F32": "<f", "F64": "<d", "I64": "<q", "I32": "<i", "U8": "B", "I8": "b",
         "I16": "<h", "U16": "<H", "F16": "<e", "BF16": "<H", "BOOL": "B", "U32": "<I",
         "U64": "<Q"}


def safetensors(tensors, metadata=None):
    """tensors: name -> (dtype, shape, values); written in name order."""
    header = {}
    if metadata:
        header["__metadata__"] = metadata
    data = b""
    for name in sorted(tensors):
        dtype, shape, values = tensors[name]
        raw = b"".join(struct.pack(DTYPE[dtype], v) for v in values)
        header[name] = {"dtype": dtype, "shape": shape,
                        "data_offsets": [len(data), len(data) + len(raw)]}
        data += raw
    text = json.dumps(header, separators=(",", ":"), ensure_ascii=False).encode()
    text += b" " * (-len(text) % 8)
    return struct.pack("<Q", len(text)) + text + data


def values(n, scale=0.1, offset=0):
    return [((i * 7919 + offset) % 23 - 11) * scale for i in range(n)]


def make_safetensors():
    fresh("safetensors")
    with open(REFERENCE, "rb") as f:
        write("safetensors", "reference", f.read())
    write("safetensors", "empty", safetensors({}))
    write("safetensors", "metadata_only", safetensors({}, {"format": "pt", "k\u00e9y": "v\\\"\n"}))
    write("safetensors", "dtypes", safetensors({
        "a": ("F32", [2, 2], values(4)),
        "b": ("F64", [3], values(3)),
        "c": ("I64", [], [-(2 ** 40)]),
        "d": ("U8", [4], [0, 1, 128, 255]),
        "e": ("BF16", [2], [0x3F80, 0xC000]),
        "f": ("BOOL", [2], [0, 1]),
        "g": ("I32", [0, 3], []),
        "h": ("F16", [1, 1, 1, 1, 1, 1, 1, 2], [1.5, -2.0]),
    }, {"format": "np"}))
    write("safetensors", "linear", safetensors({
        "weight": ("F32", [2, 3], values(6)), "bias": ("F32", [2], values(2))}))


# ---- state_dict and checkpoint: MnistNet(conv1 1, conv2 1, hidden 2) -------------------------

MNIST_SHAPES = {
    "conv1.weight": [1, 1, 3, 3], "conv1.bias": [1],
    "conv2.weight": [1, 1, 3, 3], "conv2.bias": [1],
    "fc1.weight": [2, 144], "fc1.bias": [2],
    "fc2.weight": [10, 2], "fc2.bias": [10],
}


def numel(shape):
    n = 1
    for d in shape:
        n *= d
    return n


def mnist_tensors(dtype="F32", prefix="", offset=0):
    return {prefix + name: (dtype, shape, values(numel(shape), 0.01, offset))
            for name, shape in MNIST_SHAPES.items()}


def make_state_dict():
    fresh("state_dict")
    write("state_dict", "f32", safetensors(mnist_tensors(), {"format": "pt"}))
    write("state_dict", "f64", safetensors(mnist_tensors("F64")))
    partial = mnist_tensors()
    del partial["fc2.bias"]
    partial["extra"] = ("F32", [1], [1.0])
    write("state_dict", "partial_nonstrict", safetensors(partial))
    wrong = mnist_tensors()
    wrong["fc1.weight"] = ("F32", [144, 2], values(288, 0.01))
    write("state_dict", "wrong_shape", safetensors(wrong))


CHECKPOINT_METADATA = {
    "format": "ember-checkpoint", "version": "1", "epoch": "1",
    "optimizer.lr": "0.007", "optimizer.momentum": "0.9", "optimizer.dampening": "0",
    "optimizer.weight_decay": "0", "optimizer.nesterov": "false", "optimizer.steps": "3",
    "scheduler": "StepLR", "scheduler.last_epoch": "1", "scheduler.step_size": "1",
    "scheduler.gamma": "0.7", "scheduler.base_lr": "0.01",
    "generator.seed": "7", "generator.offset": "123",
    "loader_generator.seed": "8", "loader_generator.offset": "5",
    "setting.seed": "1", "setting.batch-size": "64",
}


CHECKPOINT_V2_METADATA = {
    "optimizer": "SGD", "optimizer.steps": "3", "optimizer.param_groups": "2",
    "optimizer.param_groups.0.lr": "0.007", "optimizer.param_groups.0.momentum": "0.9",
    "optimizer.param_groups.0.dampening": "0", "optimizer.param_groups.0.weight_decay": "0.0001",
    "optimizer.param_groups.0.nesterov": "0", "optimizer.param_groups.0.maximize": "0",
    "optimizer.param_groups.0.initial_lr": "0.01",
    "optimizer.param_groups.1.lr": "0.007", "optimizer.param_groups.1.momentum": "0.9",
    "optimizer.param_groups.1.dampening": "0", "optimizer.param_groups.1.weight_decay": "0",
    "optimizer.param_groups.1.nesterov": "0", "optimizer.param_groups.1.maximize": "0",
    "optimizer.param_groups.1.initial_lr": "0.01",
    "scheduler": "SequentialLR", "scheduler.value.last_epoch": "1",
    "scheduler.list._last_lr": "0.007,0.007", "scheduler.list._milestones": "2",
    "scheduler.children": "2",
    "scheduler.child.0": "LinearLR", "scheduler.child.0.value.last_epoch": "1",
    "scheduler.child.0.value._step_count": "2", "scheduler.child.0.value.start_factor": "0.5",
    "scheduler.child.0.value.end_factor": "1", "scheduler.child.0.value.total_iters": "2",
    "scheduler.child.0.list.base_lrs": "0.01,0.01", "scheduler.child.0.list._last_lr": "0.007,0.007",
    "scheduler.child.1": "StepLR", "scheduler.child.1.value.last_epoch": "-1",
    "scheduler.child.1.value._step_count": "1", "scheduler.child.1.value.step_size": "1",
    "scheduler.child.1.value.gamma": "0.7", "scheduler.child.1.list.base_lrs": "0.01,0.01",
    "scheduler.child.1.list._last_lr": "0.005,0.005",
}


def make_checkpoint():
    fresh("checkpoint")
    tensors = mnist_tensors(prefix="model.")
    tensors.update(mnist_tensors(prefix="optimizer.momentum_buffer.", offset=5))
    meta = dict(CHECKPOINT_METADATA)
    for name in MNIST_SHAPES:
        meta["optimizer.momentum_buffer." + name] = "present"
    write("checkpoint", "momentum_present", safetensors(tensors, meta))
    meta = dict(CHECKPOINT_METADATA, epoch="0")
    meta["optimizer.steps"] = "0"
    meta["scheduler.last_epoch"] = "0"
    for name in MNIST_SHAPES:
        meta["optimizer.momentum_buffer." + name] = "absent"
    write("checkpoint", "momentum_absent", safetensors(mnist_tensors(prefix="model."), meta))
    meta["setting.batch-size"] = "32"
    meta["version"] = "3"
    write("checkpoint", "version_3", safetensors(mnist_tensors(prefix="model."), meta))
    # Version 2: any optimizer, here SGD with two groups (weights, biases), and a scheduler
    # whose state has values, lists and a child (SequentialLR of LinearLR and StepLR).
    meta = {k: v for k, v in CHECKPOINT_METADATA.items()
            if not k.startswith("optimizer.") and not k.startswith("scheduler")}
    meta["version"] = "2"
    weights = [n for n in MNIST_SHAPES if n.endswith("weight")]
    biases = [n for n in MNIST_SHAPES if n.endswith("bias")]
    meta.update(CHECKPOINT_V2_METADATA)
    meta["optimizer.param_groups.0.params"] = ",".join(weights)
    meta["optimizer.param_groups.1.params"] = ",".join(biases)
    tensors = mnist_tensors(prefix="model.")
    for i, name in enumerate(MNIST_SHAPES):
        if name in weights:
            meta["optimizer.state." + name] = "momentum_buffer"
            shape = MNIST_SHAPES[name]
            tensors["optimizer.state." + name + ".momentum_buffer"] = (
                "F32", shape, values(numel(shape), 0.01, 5 + i))
        else:
            meta["optimizer.state." + name] = ""
    write("checkpoint", "v2_sgd_groups_sequential", safetensors(tensors, meta))


# ---- JSON ----------------------------------------------------------------------------------

def make_json():
    fresh("json")
    # The first byte is also the data size (x 4) for the safetensors header parse.
    write("json", "header", b"\x06" + json.dumps({
        "__metadata__": {"format": "pt"},
        "w": {"dtype": "F32", "shape": [2, 3], "data_offsets": [0, 24]}},
        separators=(",", ":")).encode())
    write("json", "header_two", b"\x03" + json.dumps({
        "a": {"dtype": "U8", "shape": [4], "data_offsets": [0, 4]},
        "b": {"dtype": "I64", "shape": [], "data_offsets": [4, 12]}},
        indent=1).encode())
    write("json", "escapes", b' {"k\\u00e9\\ud83d\\ude00": ["a\\"\\\\\\/\\b\\f\\n\\r\\t", '
          b'-9223372036854775807, 0, {"": []}]} ')
    write("json", "nested", b"[" * 40 + b"1" + b"]" * 40)
    write("json", "utf8", "{\"\u00e9\u20ac\U0001F600\": \"\u00ff\"}".encode())
    write("json", "numbers", b"[0, -0, 12345678901234567, 1.5, 1e3, 01]")


# ---- dictionaries (libFuzzer -dict, tests/fuzz/<name>.dict): the tokens of a header -------

JSON_TOKENS = ['{', '}', '[', ']', ':', ',', '"', '\\u', '\\ud83d\\ude00', '-', '0',
               '9223372036854775807', '18446744073709551616']
HEADER_TOKENS = ['"dtype"', '"shape"', '"data_offsets"', '"__metadata__"'] + [
    '"%s"' % d for d in ("U64", "I64", "F64", "C64", "F32", "U32", "I32", "BF16", "F16", "U16",
                         "I16", "F8_E8M0", "F8_E4M3", "F8_E5M2", "I8", "U8", "BOOL")]
CHECKPOINT_TOKENS = ['"model.', '"optimizer.momentum_buffer.', '"present"', '"absent"',
                     '"StepLR"', '"none"', '"ember-checkpoint"', '"setting.', '"true"',
                     '"false"', '"nan"', '"inf"', '"1e308"', '"-0"', '"4611686018427387904"',
                     '"optimizer.state.', '".momentum_buffer"', '"exp_avg"', '"Adam"',
                     '"scheduler.value.', '"scheduler.list.', '"scheduler.child.', '","'] + [
    '"%s"' % k for k in CHECKPOINT_METADATA] + ['"%s"' % k for k in CHECKPOINT_V2_METADATA]


def dict_line(token):
    escaped = token.replace("\\", "\\\\").replace('"', '\\"')
    return '"%s"\n' % escaped


def make_dicts():
    dicts = {
        "json": JSON_TOKENS + HEADER_TOKENS,
        "safetensors": JSON_TOKENS + HEADER_TOKENS,
        "state_dict": JSON_TOKENS + HEADER_TOKENS + ['"%s"' % n for n in MNIST_SHAPES],
        "checkpoint": JSON_TOKENS + HEADER_TOKENS + CHECKPOINT_TOKENS,
    }
    for name, tokens in dicts.items():
        with open(os.path.join(HERE, name + ".dict"), "w") as f:
            f.write("# libFuzzer dictionary of fuzz_%s, written by make_corpus.py\n" % name)
            f.writelines(dict_line(t) for t in tokens)


def main():
    make_dicts()
    make_idx()
    make_safetensors()
    make_state_dict()
    make_checkpoint()
    make_json()
    total = 0
    for target in ("idx_raw", "idx_gzip", "safetensors", "state_dict", "checkpoint", "json"):
        folder = os.path.join(CORPUS, target)
        files = sorted(os.listdir(folder))
        size = sum(os.path.getsize(os.path.join(folder, f)) for f in files)
        largest = max(os.path.getsize(os.path.join(folder, f)) for f in files)
        total += size
        print(f"corpus/{target}: {len(files)} files, {size} bytes (largest {largest})")
    print(f"total {total} bytes")


if __name__ == "__main__":
    main()
