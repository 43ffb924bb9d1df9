#!/usr/bin/env python3
"""Generate the BatchNorm/AvgPool/GELU model fixture read by tests/io/test_bn_fixture.cpp.

Run from the repository root with an interpreter that has torch, numpy and safetensors
(about three minutes on 2 busy cores), with MNIST's IDX files in the folder given (default
$EMBER_DATA, else data/mnist):

    /work/venv/bin/python tests/golden/make_bn_fixture.py [MNIST_DIR]

CI does NOT run this script; the two files it writes are committed:

  bn_fixture_weights.safetensors
      The state_dict of the nn.Sequential below after training on real MNIST, written by
      safetensors.torch.save_file: PyTorch's names ("0.weight", "1.running_mean",
      "1.num_batches_tracked", ...), F32 except num_batches_tracked (I64 scalars).

  bn_fixture_io.safetensors
      io.pixels        [64,28,28] U8   the first 64 MNIST test images, as stored
      io.labels        [64]       I64  their labels
      io.log_probs     [64,10]    F32  PyTorch's eval-mode output on the pixels normalised
                                       as ember does, computed in float32
      io.log_probs_f64 [64,10]    F32  the same forward in float64 (float32 weights and
                                       inputs), rounded once to float32
      io.predicted     [64]       I64  argmax of io.log_probs; every top-2 margin > 1e-3
    and in "__metadata__": the model's test accuracy on the 10,000 MNIST test images
    ("test_accuracy", percent, float32 eval), the number it got right ("test_correct"),
    the training batches (each BatchNorm2d's num_batches_tracked, "batches"),
    the model as PyTorch prints it ("model"), the training recipe, the torch version.

Deterministic: torch.manual_seed(0), 2 threads; a rerun on the same PyTorch version and CPU
reproduces the weights file byte for byte, and the io file's tensors and metadata (safetensors
writes the metadata keys in no fixed order, so the header's bytes can differ).
"""

import gzip
import os
import struct
import sys
import time

# Idle OpenMP threads that spin cost a busy machine a time slice per parallel region.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import numpy as np  # noqa: E402
import torch  # noqa: E402
import torch.nn as nn  # noqa: E402
import torch.nn.functional as F  # noqa: E402
from safetensors.torch import save_file  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(HERE)), "scripts"))
from torch_mnist import normalise  # noqa: E402  (ember's normalisation, bit for bit)

EPOCHS, BATCH, LR = 2, 64, 2e-3
N_IO = 64
MIN_MARGIN = 1e-3     # top-1 minus top-2 log-prob of every io image, so argmax is stable
MIN_ACCURACY = 97.0   # percent on the MNIST test set
SIZE_LIMIT = 300_000  # bytes, both files together


def model():
    """(N, 1, 28, 28) -> (N, 10) log-probabilities; tests/io/test_bn_fixture.cpp builds the
    same nn::Sequential in ember."""
    return nn.Sequential(
        nn.Conv2d(1, 16, 3, padding=1), nn.BatchNorm2d(16), nn.GELU(),          # (N,16,28,28)
        nn.AvgPool2d(2),                                                        # (N,16,14,14)
        nn.Conv2d(16, 32, 3, padding=1), nn.BatchNorm2d(32), nn.GELU(),         # (N,32,14,14)
        nn.AvgPool2d(2),                                                        # (N,32,7,7)
        nn.Conv2d(32, 32, 3, padding=1), nn.BatchNorm2d(32), nn.GELU("tanh"),   # (N,32,7,7)
        nn.AdaptiveAvgPool2d((1, 1)), nn.Flatten(),                             # (N,32)
        nn.Linear(32, 10), nn.LogSoftmax(1))                                    # (N,10)


def read_idx(path):
    """An IDX file (gzipped or not) as a numpy array: magic 0x0000 0x08 (u8) ndim, then ndim
    big-endian u32 sizes, then the data."""
    opener = gzip.open if path.endswith(".gz") else open
    with opener(path, "rb") as f:
        raw = f.read()
    zero, dtype, ndim = struct.unpack(">HBB", raw[:4])
    assert zero == 0 and dtype == 0x08, f"{path}: not an IDX file of unsigned bytes"
    shape = struct.unpack(f">{ndim}I", raw[4:4 + 4 * ndim])
    data = np.frombuffer(raw, dtype=np.uint8, offset=4 + 4 * ndim)
    assert data.size == int(np.prod(shape)), f"{path}: {data.size} bytes for shape {shape}"
    return data.reshape(shape)


def load_mnist(folder, split):
    def path(stem):
        p = os.path.join(folder, stem)
        return p + ".gz" if os.path.exists(p + ".gz") else p
    prefix = "train" if split == "train" else "t10k"
    return (read_idx(path(f"{prefix}-images-idx3-ubyte")),
            read_idx(path(f"{prefix}-labels-idx1-ubyte")).astype(np.int64))


def accuracy(net, pixels, labels):
    correct = 0
    with torch.no_grad():
        for b in range(0, len(labels), 1000):
            out = net(normalise(pixels[b:b + 1000]))
            correct += (out.argmax(1).numpy() == labels[b:b + 1000]).sum()
    return int(correct)


def main():
    folder = sys.argv[1] if len(sys.argv) > 1 else os.environ.get("EMBER_DATA", "data/mnist")
    torch.set_num_threads(2)
    torch.manual_seed(0)
    train_x, train_y = load_mnist(folder, "train")
    test_x, test_y = load_mnist(folder, "test")

    net = model()
    opt = torch.optim.Adam(net.parameters(), lr=LR)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=LR,
                                                total_steps=EPOCHS * len(train_y) // BATCH)
    start = time.time()
    for epoch in range(EPOCHS):
        net.train()
        order = torch.randperm(len(train_y)).numpy()
        total = 0.0
        for b in range(len(train_y) // BATCH):
            idx = order[b * BATCH:(b + 1) * BATCH]
            opt.zero_grad()
            loss = F.nll_loss(net(normalise(train_x[idx])), torch.from_numpy(train_y[idx]))
            loss.backward()
            opt.step()
            sched.step()
            total += loss.item()
            if (b + 1) % 200 == 0:
                print(f"  batch {b + 1}: mean loss {total / (b + 1):.4f} "
                      f"({time.time() - start:.0f} s)", flush=True)
        net.eval()
        correct = accuracy(net, test_x, test_y)
        print(f"epoch {epoch + 1}: mean loss {total / (len(train_y) // BATCH):.4f}, test "
              f"{correct / 100:.2f}% ({time.time() - start:.0f} s)")
    test_accuracy = correct / len(test_y) * 100
    assert test_accuracy >= MIN_ACCURACY, f"test accuracy {test_accuracy:.2f}% < {MIN_ACCURACY}%"

    pixels, labels = test_x[:N_IO], test_y[:N_IO]
    x = normalise(pixels)
    net.eval()
    with torch.no_grad():
        out = net(x)
        out64 = model().double()
        out64.load_state_dict(net.state_dict())
        out64.eval()
        out64 = out64(x.double())
    predicted = out.argmax(dim=1)
    top2 = out64.topk(2, dim=1).values
    margin = (top2[:, 0] - top2[:, 1]).min().item()
    assert torch.equal(predicted, out64.argmax(dim=1)), "float32 and float64 argmax differ"
    assert margin > MIN_MARGIN, f"an io image is a near tie (margin {margin:.2e})"
    print(f"io: {(predicted.numpy() == labels).sum()}/{N_IO} right, min margin {margin:.3f}, "
          f"max |f32 - f64| {(out.double() - out64).abs().max().item():.2e}")

    state = {k: v.contiguous() for k, v in net.state_dict().items()}
    weights = os.path.join(HERE, "bn_fixture_weights.safetensors")
    save_file(state, weights, metadata={"format": "pt"})
    meta = {
        "torch": torch.__version__,
        "model": str(net),
        "training": f"{EPOCHS} epochs of torch.optim.Adam with OneCycleLR(max_lr={LR}), batch "
                    f"{BATCH}, train mode, the 60,000 MNIST training images, torch.manual_seed(0), "
                    "2 threads",
        "normalisation": "(pixel - 127.5f) * (1.0f / 127.5f) in float32",
        "test_accuracy": f"{test_accuracy:.2f}",
        "test_correct": str(correct),
        "batches": str(EPOCHS * (len(train_y) // BATCH)),
        "io.pixels": f"the first {N_IO} MNIST test images (t10k), uint8",
        "io.log_probs": "net.eval() forward in float32 (PyTorch's CPU kernels)",
        "io.log_probs_f64": "net.eval() forward in float64, rounded to float32",
    }
    io = {
        "io.pixels": torch.from_numpy(pixels.copy()),
        "io.labels": torch.from_numpy(labels.copy()),
        "io.log_probs": out.contiguous(),
        "io.log_probs_f64": out64.float().contiguous(),
        "io.predicted": predicted,
    }
    io_path = os.path.join(HERE, "bn_fixture_io.safetensors")
    save_file(io, io_path, metadata=meta)
    sizes = [os.path.getsize(p) for p in (weights, io_path)]
    print(f"weights {sizes[0]} bytes, io {sizes[1]} bytes")
    assert sum(sizes) < SIZE_LIMIT, f"fixtures too large: {sum(sizes)} bytes"


if __name__ == "__main__":
    main()
