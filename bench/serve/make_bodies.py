"""Writes the request bodies bench/serve's wrk scripts send, made from real MNIST test images
(the first --images of the test set, one body per image or per batch), plus a manifest per
kind that the Lua reads: one line per body, "FILE HEADER_LENGTH" (the JSON header's length
for Inference-Header-Content-Length; 0: the body is all JSON, or not KServe at all).

Kinds (KServe v2 / Open Inference Protocol, POST /v2/models/{model}/infer):
  single_json_fp32      one image, FP32 [1, 1, 28, 28] normalised, JSON data, JSON outputs
  single_binary_fp32    the same tensor as binary tensor data, outputs asked for as binary
  batch64_binary_fp32   64 images, FP32 [64, 1, 28, 28], binary in and out
  single_binary_uint8   one image, UINT8 [1, 28, 28] raw pixels, binary in and out
TorchServe's own API (POST /predictions/{model}; bench/serve/torchserve/mnist_handler.py):
  ts_single_raw_uint8   the 784 raw pixel bytes, application/octet-stream
  ts_single_json_fp32   {"data": [784 normalised floats]}, application/json

Needs only Python's standard library. Normalisation is ember's PixelNormalization(0.5, 0.5):
(p - 127.5f) * (1.0f / 127.5f) in float32 (struct's "<f" rounds each value to float32).

  python3 bench/serve/make_bodies.py --out build/serve-bodies --images 64
"""

import argparse
import gzip
import json
import os
import struct
import sys

SIDE = 28
PIXELS = SIDE * SIDE


def read_test_images(folder, count):
    for name in ("t10k-images-idx3-ubyte.gz", "t10k-images-idx3-ubyte"):
        path = os.path.join(folder, name)
        if os.path.exists(path):
            break
    else:
        sys.exit(f"make_bodies: no t10k-images-idx3-ubyte[.gz] in '{folder}' "
                 "(set --data or $EMBER_DATA)")
    with (gzip.open if path.endswith(".gz") else open)(path, "rb") as f:
        raw = f.read()
    if len(raw) < 16 or raw[:4] != b"\0\0\x08\x03":
        sys.exit(f"make_bodies: '{path}' is not an IDX file of 3-d unsigned bytes")
    n, h, w = struct.unpack(">3I", raw[4:16])
    if (h, w) != (SIDE, SIDE) or len(raw) != 16 + n * h * w or n < count:
        sys.exit(f"make_bodies: '{path}' holds {n} images of {w} x {h}; need {count} of 28 x 28")
    return [raw[16 + i * PIXELS:16 + (i + 1) * PIXELS] for i in range(count)]


def f32(p):
    """One pixel normalised in float32, as ember does, as a Python float."""
    center = struct.unpack("<f", struct.pack("<f", 127.5))[0]
    scale = struct.unpack("<f", struct.pack("<f", 1.0 / 127.5))[0]
    diff = struct.unpack("<f", struct.pack("<f", p - center))[0]
    return struct.unpack("<f", struct.pack("<f", diff * scale))[0]


TABLE = [f32(p) for p in range(256)]  # every pixel value's float32


def kserve_body(pixels_list, shape, datatype, binary, args):
    """One KServe v2 infer request: (body bytes, JSON header length or 0)."""
    if datatype == "FP32":
        values = [TABLE[p] for px in pixels_list for p in px]
        raw = struct.pack(f"<{len(values)}f", *values)
    else:
        values = [p for px in pixels_list for p in px]
        raw = bytes(values)
    inp = {"name": args.input_name, "datatype": datatype, "shape": shape}
    if binary:
        inp["parameters"] = {"binary_data_size": len(raw)}
    else:
        inp["data"] = values
    outputs = [{"name": name, "parameters": {"binary_data": binary}}
               for name in args.outputs.split(",")]
    header = json.dumps({"inputs": [inp], "outputs": outputs}, separators=(",", ":")).encode()
    return (header + raw, len(header)) if binary else (header, 0)


def write_kind(out, kind, bodies):
    folder = os.path.join(out, kind)
    os.makedirs(folder, exist_ok=True)
    lines = []
    for i, (body, header_length) in enumerate(bodies):
        name = f"{i:04d}.body"
        with open(os.path.join(folder, name), "wb") as f:
            f.write(body)
        lines.append(f"{kind}/{name} {header_length}\n")
    with open(os.path.join(out, kind + ".manifest"), "w") as f:
        f.writelines(lines)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", required=True, help="folder for the bodies and manifests")
    ap.add_argument("--data", default=os.environ.get("EMBER_DATA", "data/mnist"),
                    help="MNIST folder (default $EMBER_DATA, else data/mnist)")
    ap.add_argument("--images", type=int, default=64,
                    help="distinct test images (single kinds: one body each)")
    ap.add_argument("--batches", type=int, default=4, help="distinct bodies of the batch kind")
    ap.add_argument("--input-name", default="input", help="the model's input tensor name")
    ap.add_argument("--outputs", default="log_probs,class", help="output names, comma-separated")
    args = ap.parse_args()
    if not 1 <= args.images <= 10000 or not 1 <= args.batches <= 10000 // 64:
        ap.error("--images in [1, 10000], --batches in [1, 156]")

    images = read_test_images(args.data, max(args.images, 64 * args.batches))
    singles = images[:args.images]
    batches = [images[64 * b:64 * (b + 1)] for b in range(args.batches)]
    kinds = {
        "single_json_fp32": [kserve_body([px], [1, 1, SIDE, SIDE], "FP32", False, args)
                             for px in singles],
        "single_binary_fp32": [kserve_body([px], [1, 1, SIDE, SIDE], "FP32", True, args)
                               for px in singles],
        "batch64_binary_fp32": [kserve_body(b, [64, 1, SIDE, SIDE], "FP32", True, args)
                                for b in batches],
        "single_binary_uint8": [kserve_body([px], [1, SIDE, SIDE], "UINT8", True, args)
                                for px in singles],
        "ts_single_raw_uint8": [(bytes(px), 0) for px in singles],
        "ts_single_json_fp32": [(json.dumps({"data": [TABLE[p] for p in px]},
                                            separators=(",", ":")).encode(), 0)
                                for px in singles],
    }
    for kind, bodies in kinds.items():
        write_kind(args.out, kind, bodies)
    print(f"make_bodies: {len(kinds)} kinds from {len(images)} test images in {args.out}")


if __name__ == "__main__":
    main()
