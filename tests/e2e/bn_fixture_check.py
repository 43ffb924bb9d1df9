#!/usr/bin/env python3
"""bn_fixture_check.py WORK DATA_DIR IO_FIXTURE: the checks of bn_fixture_check.sh, on what
bn_fixture_tool wrote to WORK (model.onnx, ember.safetensors; see bn_fixture_tool.cpp).

  * onnxruntime runs ember's model.onnx on the 10,000 MNIST test images (normalised in
    float32 exactly as ember does) and gives ember's log-probs within 5e-5 on every image,
    and within 2e-5 of PyTorch's float64 log-probs on the fixture's 64 images; its
    predictions are ember's wherever ember's top-2 margin exceeds 1e-4;
  * ember's float accuracy is PyTorch's (the fixture's "test_correct"), and onnxruntime's too;
  * the int8 model's accuracy is at most 0.5 points below the float model's.
Needs numpy, safetensors and onnxruntime only. Prints the measured numbers; exit 1 on a failure.
"""

import gzip
import os
import struct
import sys

import numpy as np
import onnxruntime as ort
from safetensors import safe_open
from safetensors.numpy import load_file

# Absolute, on log-probs. Measured (onnxruntime 1.32; the exporter folds the batch norms into
# the convolutions): 1.6e-5 against ember over the test set, 5.7e-6 against PyTorch's float64
# on the 64 images; float32 results of this model agree to about 1e-5 and no better (see
# tests/io/test_bn_fixture.cpp).
ORT_VS_EMBER = 5e-5       # every test image
ORT_VS_TORCH_IO = 2e-5    # the fixture's 64 images, against PyTorch's float64 forward
TIE_MARGIN = 1e-4         # predictions may differ only where ember's top-2 margin is below this
INT8_MAX_LOSS = 0.5       # accuracy points


def read_idx(folder, stem):
    path = os.path.join(folder, stem)
    if os.path.exists(path + ".gz"):  # as ember's loader: stem.gz first, then stem
        path += ".gz"
    with (gzip.open if path.endswith(".gz") else open)(path, "rb") as f:
        raw = f.read()
    zero, dtype, ndim = struct.unpack(">HBB", raw[:4])
    assert zero == 0 and dtype == 0x08, f"{path}: not an IDX file of unsigned bytes"
    shape = struct.unpack(f">{ndim}I", raw[4:4 + 4 * ndim])
    return np.frombuffer(raw, dtype=np.uint8, offset=4 + 4 * ndim).reshape(shape)


def normalise(pixels):
    """ember's PixelNormalization (mean 0.5, std 0.5): (pixel - 127.5f) * (1 / 127.5f)."""
    x = (pixels.astype(np.float32) - np.float32(127.5)) * (np.float32(1.0) / np.float32(127.5))
    return np.ascontiguousarray(x[:, None, :, :])


def main():
    if len(sys.argv) != 4:
        sys.exit(__doc__)
    work, data, io_path = sys.argv[1:]
    failures = []

    def check(ok, what):
        print(("ok:   " if ok else "FAIL: ") + what)
        if not ok:
            failures.append(what)

    ember = load_file(os.path.join(work, "ember.safetensors"))
    ember_lp = ember["test.log_probs"]
    labels = ember["test.labels"].astype(np.int64)
    pixels = read_idx(data, "t10k-images-idx3-ubyte")
    assert np.array_equal(labels, read_idx(data, "t10k-labels-idx1-ubyte").astype(np.int64))

    sess = ort.InferenceSession(os.path.join(work, "model.onnx"),
                                providers=["CPUExecutionProvider"])
    name = sess.get_inputs()[0].name
    x = normalise(pixels)
    ort_lp = np.concatenate([sess.run(None, {name: x[b:b + 1000]})[0]
                             for b in range(0, len(x), 1000)])
    diff = np.abs(ort_lp.astype(np.float64) - ember_lp).max()
    check(diff <= ORT_VS_EMBER, f"onnxruntime vs ember log-probs, 10,000 test images: max |diff| "
          f"{diff:.2e} (<= {ORT_VS_EMBER:g})")
    top2 = np.sort(ember_lp, axis=1)[:, -2:]
    clear = (top2[:, 1] - top2[:, 0]) > TIE_MARGIN
    ember_pred, ort_pred = ember_lp.argmax(1), ort_lp.argmax(1)
    mismatched = int((ember_pred != ort_pred)[clear].sum())
    check(mismatched == 0, f"onnxruntime's predictions are ember's: {mismatched} differ where "
          f"ember's margin > {TIE_MARGIN:g} ({int((~clear).sum())} near-ties)")

    io = load_file(io_path)
    with safe_open(io_path, framework="numpy") as f:
        meta = f.metadata()
    io_x = normalise(io["io.pixels"])
    io_ort = sess.run(None, {name: io_x})[0]
    diff_io = np.abs(io_ort.astype(np.float64) - io["io.log_probs_f64"]).max()
    check(diff_io <= ORT_VS_TORCH_IO, f"onnxruntime vs PyTorch float64 log-probs, the fixture's "
          f"{len(io_x)} images: max |diff| {diff_io:.2e} (<= {ORT_VS_TORCH_IO:g})")
    check(np.array_equal(io_ort.argmax(1), io["io.predicted"]), "onnxruntime's predictions on the "
          "fixture's images are PyTorch's")

    n = len(labels)
    torch_correct = int(meta["test_correct"])
    ember_correct = int((ember_pred == labels).sum())
    ort_correct = int((ort_pred == labels).sum())
    int8_correct = int((ember["int8.predicted"].astype(np.int64) == labels).sum())
    check(ember_correct == torch_correct, f"float accuracy: ember {ember_correct / n * 100:.2f}%, "
          f"PyTorch {torch_correct / n * 100:.2f}%")
    check(ort_correct == ember_correct, f"float accuracy: onnxruntime {ort_correct / n * 100:.2f}%")
    loss = (ember_correct - int8_correct) / n * 100
    check(loss <= INT8_MAX_LOSS, f"int8 accuracy {int8_correct / n * 100:.2f}%, {loss:.2f} points "
          f"below float (<= {INT8_MAX_LOSS})")
    if failures:
        sys.exit(1)
    print("bn_fixture_check: all checks passed")


if __name__ == "__main__":
    main()
