"""Classifies the MNIST test set through a KServe v2 (Open Inference Protocol) server with
Triton's Python client, and checks every answer against mnist_infer's for the same model.

The client is tritonclient.http (scripts/install_py_serve.sh puts it in .venv-serve): a
client no one here wrote, so the check holds the server to the protocol as Triton speaks it.
Each request carries --batch test images, in order:
  --dtype fp32   FP32 (N, 1, 28, 28), normalised as in training ((x - 127.5) / 127.5)
  --dtype uint8  UINT8 (N, 28, 28), raw pixels, for the server to normalise
  --dtype png    BYTES (N), one PNG file per image, for the server to prepare as mnist_infer
                 prepares PNG files (binary mode only: PNG bytes are not JSON strings)
and --mode says how tensors travel, both ways:
  --mode json    JSON arrays in the request and the response
  --mode binary  the binary tensor data extension (tritonclient's default): the JSON header,
                 then the raw little-endian bytes (Inference-Header-Content-Length,
                 "binary_data_size"); outputs are asked for with "binary_data": true.

The reference is what mnist_infer prints for the same model file:
  mnist_infer --model M --json --predictions > ref.json
(--predictions lists every test image with its predicted class and 10 log-probabilities).
PNG files are prepared before classifying (the ink cropped, scaled, centred; polarity from the
border), so --dtype png has its own reference, made from the same files:
  serve_client_check.py --write-pngs DIR --count 1000   # and DIR/png_list.txt
  mnist_infer --model M --json --png "$(cat DIR/png_list.txt)" > ref_png.json
  serve_client_check.py --dtype png --png-dir DIR --count 1000 --reference ref_png.json ...
The files vary as users' would: image i is written as MNIST has it (light ink on black) when
i % 3 == 0, inverted (dark ink on white) when i % 3 == 1, and twice the size when i % 3 == 2.
The check fails (exit 1) when the server's accuracy differs, when any image's class differs
from mnist_infer's, when the server's class is not the argmax of its own log-probabilities,
or when a log-probability differs by more than --atol; it prints the first differences.
Exit 2: bad flags, files, or a server that cannot be reached or answers an error.

  .venv-serve/bin/python scripts/serve_client_check.py --url 127.0.0.1:8000 --model mnist \\
      --reference ref.json --mode binary --dtype uint8 --batch 64

prints, for example (here against a server running the model in PyTorch):
  mnist @ 127.0.0.1:8000, binary, UINT8, batches of 64, 1 in flight; reference: float32 model
  accuracy 98.27% (9827/10000), mnist_infer 98.27% (9827/10000)
  mismatches: 0 classes, 0 log-probabilities over 1e-04 (max |diff| 7.66e-06), 0 classes not
  the argmax of their own log-probabilities
  throughput 887 images/s (157 requests, 11.27 s), request latency p50 112.02 ms, p99 152.13 ms
  OK
"""

import argparse
import gzip
import json
import os
import struct
import sys
import time
import zlib

import numpy as np

try:
    import tritonclient.http as httpclient
    from tritonclient.utils import InferenceServerException
except ImportError as e:  # the venv is missing: say how to make it
    sys.exit(f"serve_client_check: {e}; run scripts/install_py_serve.sh and use its python")


class CheckError(Exception):
    """Bad flags, files or server answers: exit status 2 with the message."""


# ---- the MNIST test set (IDX, gzip or plain), as ember's loader reads it ------------------

def read_idx(folder, stem):
    for name in (stem + ".gz", stem):
        path = os.path.join(folder, name)
        if os.path.exists(path):
            break
    else:
        raise CheckError(f"no {stem}[.gz] in '{folder}' (set --data or $EMBER_DATA)")
    with (gzip.open if path.endswith(".gz") else open)(path, "rb") as f:
        raw = f.read()
    if len(raw) < 4 or raw[:3] != b"\0\0\x08":
        raise CheckError(f"'{path}': not an IDX file of unsigned bytes")
    ndim = raw[3]
    dims = list(struct.unpack(f">{ndim}I", raw[4:4 + 4 * ndim]))
    if len(raw) != 4 + 4 * ndim + int(np.prod(dims)):
        raise CheckError(f"'{path}': {len(raw)} bytes do not fit dims {dims}")
    return np.frombuffer(raw, np.uint8, offset=4 + 4 * ndim).reshape(dims)


def normalise(pixels):
    """uint8 (N, 28, 28) -> float32 (N, 1, 28, 28), bit for bit as ember's
    PixelNormalization(0.5, 0.5): (p - 127.5f) * (1.0f / 127.5f) in float32."""
    center = np.float32(127.5)
    scale = np.float32(1.0) / center
    return np.ascontiguousarray(((pixels.astype(np.float32) - center) * scale)[:, None])


def png_bytes(pixels):
    """A greyscale 8-bit PNG file of uint8 pixels (H, W)."""
    h, w = pixels.shape
    raw = b"".join(b"\0" + pixels[y].tobytes() for y in range(h))  # filter 0 per row

    def chunk(kind, data):
        return (struct.pack(">I", len(data)) + kind + data +
                struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF))

    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 8, 0, 0, 0, 0))
            + chunk(b"IDAT", zlib.compress(raw, 6)) + chunk(b"IEND", b""))


def png_variant(pixels, i):
    """Test image i as a user might hand it over (see the top of this file)."""
    if i % 3 == 1:
        return 255 - pixels
    if i % 3 == 2:
        return np.repeat(np.repeat(pixels, 2, axis=0), 2, axis=1)
    return pixels


def png_path(folder, i):
    return os.path.join(folder, f"test_{i:05d}.png")


def write_pngs(images, folder, model_hint):
    os.makedirs(folder, exist_ok=True)
    paths = []
    for i, px in enumerate(images):
        with open(png_path(folder, i), "wb") as f:
            f.write(png_bytes(np.ascontiguousarray(png_variant(px, i))))
        paths.append(png_path(folder, i))
    listing = os.path.join(folder, "png_list.txt")
    with open(listing, "w") as f:
        f.write(",".join(paths) + "\n")
    print(f"wrote {len(paths)} PNG files to {folder}; their reference:")
    print(f"mnist_infer --model {model_hint} --json --png \"$(cat {listing})\" > ref_png.json")
    if os.path.getsize(listing) > 120000:  # one argument may not exceed 128 KiB on Linux
        print("(the --png list is longer than one command-line argument may be: use a "
              "smaller --count or a shorter folder name)")


def read_pngs(folder, count):
    out = []
    for i in range(count):
        try:
            with open(png_path(folder, i), "rb") as f:
                out.append(f.read())
        except OSError as e:
            raise CheckError(f"{e} (write the files with --write-pngs {folder})")
    return out


# ---- the reference ----------------------------------------------------------------------

def load_reference(path, count, sources):
    """(format, predicted classes (count,), log-probabilities (count, 10)) of the first
    `count` inputs, from `mnist_infer --json --predictions` (or --png for PNG files), whose
    "source" must be sources(i)."""
    try:
        with open(path) as f:
            ref = json.load(f)
    except (OSError, ValueError) as e:
        raise CheckError(f"reference '{path}': {e}")
    preds = ref.get("predictions") or []
    if len(preds) < count:
        raise CheckError(f"reference '{path}' lists {len(preds)} predictions, not the "
                         f"{count} needed: make it with mnist_infer --json --predictions")
    for i, p in enumerate(preds[:count]):
        src = p.get("source") or ""
        if src != sources(i) and os.path.basename(src) != os.path.basename(sources(i)):
            raise CheckError(f"reference '{path}': prediction {i} is of {src!r}, not "
                             f"{sources(i)!r}")
    classes = np.array([p["predicted"] for p in preds[:count]], np.int64)
    log_probs = np.array([p["log_probs"] for p in preds[:count]], np.float64)
    return ref.get("format", "?"), classes, log_probs


# ---- the server -------------------------------------------------------------------------

def names_from_metadata(client, args):
    """The input and the two output names: from the flags, else from the model metadata
    (the FP32 output of shape [-1, 10] is the log-probabilities, the INT64 one the class)."""
    try:
        meta = client.get_model_metadata(args.model)
    except InferenceServerException as e:
        raise CheckError(f"model metadata of '{args.model}' at {args.url}: {e}")
    inp = args.input or meta["inputs"][0]["name"]
    outputs = meta.get("outputs", [])
    lp = args.log_probs_output or next(
        (o["name"] for o in outputs if o["datatype"] == "FP32"), "log_probs")
    cls = args.class_output or next(
        (o["name"] for o in outputs if o["datatype"] == "INT64"), "class")
    return inp, lp, cls


def make_request(pixels, args, inp_name, lp_name, cls_name):
    """The keyword arguments of client.infer for one batch: pixels (N, 28, 28), or for
    --dtype png a list of N PNG files' bytes."""
    binary = args.mode == "binary"
    if args.dtype == "png":
        data, datatype = np.array(pixels, dtype=np.object_), "BYTES"
    elif args.dtype == "fp32":
        data, datatype = normalise(pixels), "FP32"
    else:
        data, datatype = np.ascontiguousarray(pixels), "UINT8"
    inp = httpclient.InferInput(inp_name, list(data.shape), datatype)
    inp.set_data_from_numpy(data, binary_data=binary)
    outs = [httpclient.InferRequestedOutput(lp_name, binary_data=binary),
            httpclient.InferRequestedOutput(cls_name, binary_data=binary)]
    return {"inputs": [inp], "outputs": outs}


def answer(result, n, lp_name, cls_name):
    lp = result.as_numpy(lp_name)
    cls = result.as_numpy(cls_name)
    if lp is None or cls is None:
        raise CheckError(f"the response lacks output '{lp_name}' or '{cls_name}': "
                         f"{result.get_response()}")
    if lp.shape != (n, 10) or lp.dtype != np.float32:
        raise CheckError(f"'{lp_name}': {lp.dtype} {list(lp.shape)} for {n} images, "
                         f"expected FP32 [{n}, 10]")
    if cls.shape != (n,) or cls.dtype != np.int64:
        raise CheckError(f"'{cls_name}': {cls.dtype} {list(cls.shape)} for {n} images, "
                         f"expected INT64 [{n}]")
    return lp, cls


def classify(client, pixels, args, names):
    """Sends the images in batches, up to --concurrency requests in flight; returns the
    log-probabilities (N, 10), classes (N,), wall seconds and per-request latencies (s)."""
    n = len(pixels)
    starts = list(range(0, n, args.batch))
    lp = np.empty((n, 10), np.float32)
    cls = np.empty(n, np.int64)
    latencies = []

    def collect(lo, t0, result):
        hi = min(lo + args.batch, n)
        lp[lo:hi], cls[lo:hi] = answer(result, hi - lo, names[1], names[2])
        latencies.append(time.perf_counter() - t0)

    try:
        # A warm-up request, untimed (the first request may load lazily on the server).
        client.infer(args.model, **make_request(pixels[:1], args, *names))
        t_start = time.perf_counter()
        if args.concurrency == 1:
            for lo in starts:
                t0 = time.perf_counter()
                collect(lo, t0, client.infer(
                    args.model, **make_request(pixels[lo:lo + args.batch], args, *names)))
        else:
            pending = []  # (lo, start time, handle), oldest first
            for lo in starts:
                if len(pending) == args.concurrency:
                    a, t0, h = pending.pop(0)
                    collect(a, t0, h.get_result())
                request = make_request(pixels[lo:lo + args.batch], args, *names)
                pending.append((lo, time.perf_counter(),
                                client.async_infer(args.model, **request)))
            for a, t0, h in pending:
                collect(a, t0, h.get_result())
    except InferenceServerException as e:
        raise CheckError(f"infer on '{args.model}' at {args.url}: {e}")
    return lp, cls, time.perf_counter() - t_start, sorted(latencies)


def percentile(sorted_values, p):
    """Nearest rank, as mnist_infer's latency percentiles."""
    rank = max(1, int(np.ceil(p / 100.0 * len(sorted_values))))
    return sorted_values[min(rank, len(sorted_values)) - 1]


# ---- main -------------------------------------------------------------------------------

def parse_args(argv):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--url", default="127.0.0.1:8000", help="server host:port (no scheme)")
    ap.add_argument("--model", default="mnist", help="model name on the server")
    ap.add_argument("--reference",
                    help="mnist_infer --json --predictions output for the same model file")
    ap.add_argument("--mode", choices=("json", "binary"), default="binary")
    ap.add_argument("--dtype", choices=("fp32", "uint8", "png"), default="fp32")
    ap.add_argument("--png-dir", help="--dtype png: the files --write-pngs wrote")
    ap.add_argument("--write-pngs", metavar="DIR",
                    help="write the first --count test images as PNG files to DIR, print "
                         "the mnist_infer command of their reference, and exit")
    ap.add_argument("--batch", type=int, default=64, help="images per request")
    ap.add_argument("--concurrency", type=int, default=1, help="requests in flight")
    ap.add_argument("--count", type=int, default=10000, help="first COUNT test images")
    ap.add_argument("--data", default=os.environ.get("EMBER_DATA", "data/mnist"),
                    help="MNIST folder (default $EMBER_DATA, else data/mnist)")
    ap.add_argument("--atol", type=float, default=1e-4,
                    help="largest |log-probability difference| accepted (float and int8 "
                         "models run the same code as mnist_infer; batches may differ)")
    ap.add_argument("--timeout", type=float, default=60.0,
                    help="seconds for each connection and network wait")
    ap.add_argument("--input", help="input name (default: from the model metadata)")
    ap.add_argument("--log-probs-output", help="FP32 [N, 10] output (default: metadata)")
    ap.add_argument("--class-output", help="INT64 [N] output (default: metadata)")
    args = ap.parse_args(argv)
    if not 1 <= args.count <= 10000:
        ap.error("--count must be in [1, 10000]")
    if args.batch < 1 or args.concurrency < 1:
        ap.error("--batch and --concurrency must be at least 1")
    if "://" in args.url:
        ap.error("--url is host:port, without a scheme")
    if not args.write_pngs and not args.reference:
        ap.error("--reference is required (mnist_infer --json --predictions output)")
    if args.dtype == "png" and (args.mode != "binary" or not args.png_dir):
        ap.error("--dtype png needs --mode binary and --png-dir")
    return args


def run(args):
    images = read_idx(args.data, "t10k-images-idx3-ubyte")[:args.count]
    labels = read_idx(args.data, "t10k-labels-idx1-ubyte")[:args.count].astype(np.int64)
    if args.write_pngs:
        write_pngs(images, args.write_pngs, "MODEL.safetensors")
        return 0
    if args.dtype == "png":
        images = read_pngs(args.png_dir, args.count)
        sources = lambda i: png_path(args.png_dir, i)  # noqa: E731
    else:
        sources = lambda i: f"test[{i}]"  # noqa: E731
    ref_format, ref_cls, ref_lp = load_reference(args.reference, args.count, sources)

    client = httpclient.InferenceServerClient(
        args.url, concurrency=args.concurrency, connection_timeout=args.timeout,
        network_timeout=args.timeout)
    try:
        ready = client.is_model_ready(args.model)
    except InferenceServerException as e:
        raise CheckError(f"{args.url}: {e}")
    except Exception as e:  # connection refused and the like come as OS errors
        raise CheckError(f"cannot reach {args.url}: {type(e).__name__}: {e}")
    if not ready:
        raise CheckError(f"model '{args.model}' is not ready at {args.url}")
    names = names_from_metadata(client, args)
    lp, cls, seconds, lat = classify(client, images, args, names)
    client.close()

    n = args.count
    correct = int((cls == labels).sum())
    ref_correct = int((ref_cls == labels).sum())
    diff = np.abs(lp.astype(np.float64) - ref_lp)
    max_diff = float(diff.max())
    bad_cls = np.nonzero(cls != ref_cls)[0]
    bad_lp = np.nonzero(diff.max(axis=1) > args.atol)[0]
    not_argmax = np.nonzero(cls != lp.argmax(axis=1))[0]

    print(f"{args.model} @ {args.url}, {args.mode}, {args.dtype.upper()}, batches of "
          f"{args.batch}, {args.concurrency} in flight; reference: {ref_format} model")
    print(f"accuracy {100.0 * correct / n:.2f}% ({correct}/{n}), mnist_infer "
          f"{100.0 * ref_correct / n:.2f}% ({ref_correct}/{n})")
    print(f"mismatches: {len(bad_cls)} classes, {len(bad_lp)} log-probabilities over "
          f"{args.atol:.0e} (max |diff| {max_diff:.2e}), {len(not_argmax)} classes not the "
          f"argmax of their own log-probabilities")
    print(f"throughput {n / seconds:.0f} images/s ({len(lat)} requests, {seconds:.2f} s), "
          f"request latency p50 {1000 * percentile(lat, 50):.2f} ms, "
          f"p99 {1000 * percentile(lat, 99):.2f} ms")
    for i in list(bad_cls[:5]):
        print(f"  {sources(i)}: server class {cls[i]}, mnist_infer {ref_cls[i]}, label {labels[i]}")
    for i in list(bad_lp[:5]):
        print(f"  {sources(i)}: log-probabilities differ by {diff[i].max():.2e}")
    for i in list(not_argmax[:5]):
        print(f"  {sources(i)}: class {cls[i]} but log-probabilities argmax {lp[i].argmax()}")
    ok = correct == ref_correct and not len(bad_cls) and not len(bad_lp) and not len(not_argmax)
    print("OK" if ok else "FAILED")
    return 0 if ok else 1


def main(argv=None):
    try:
        return run(parse_args(argv))
    except CheckError as e:
        print(f"serve_client_check: {e}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
