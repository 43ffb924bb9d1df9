#!/usr/bin/env python3
"""Generate the PyTorch round-trip fixtures read by tests/io/test_roundtrip.cpp.

Run from the repository root with the system interpreter (PyTorch 1.13 + numpy):

    /usr/bin/python3 tests/golden/make_roundtrip.py

CI does NOT run this script; the two files it writes are committed:

  roundtrip_weights.safetensors
      The state_dict of PyTorch's classic MNIST example Net, narrowed to conv1 4,
      conv2 8, hidden 16 (ember's MnistNetConfig{4, 8, 16}), after 50 SGD steps on
      synthetic digits: exactly the tensors safetensors.torch.save_file stores (F32,
      C order, PyTorch's names, nothing else), so io::load(net, path) reads it strictly.

  roundtrip_io.safetensors
      io.x          [32,1,28,28] F32  synthetic images, normalised as ember does
      io.log_probs  [32,10]      F32  PyTorch's eval-mode output, computed in float32
      io.log_probs_f64 [32,10]   F32  the same forward in float64 from the float32
                                      weights and inputs, rounded once to float32
      io.predicted  [32]         I64  argmax of io.log_probs
    and in "__metadata__" the state_dict schema (every key, dtype and shape, in PyTorch's
    state_dict order) of the full-size Net ("schema.full") and of the small one
    ("schema.small"), as JSON: [["conv1.weight", "F32", [32, 1, 3, 3]], ...].

The safetensors writer and reader are make_golden.py's; Net and normalise are
scripts/torch_mnist.py's. Deterministic: fixed seeds, one thread; a rerun on the same
PyTorch version and CPU reproduces the files.
"""

import json
import os
import sys

import numpy as np
import torch
import torch.nn.functional as F

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(HERE)), "scripts"))
from make_golden import read_safetensors, save  # noqa: E402  (pure-python safetensors)
from torch_mnist import Net, normalise  # noqa: E402  (scripts/torch_mnist.py)

SIZE_LIMIT = 600_000  # bytes, both files together
SMALL = (4, 8, 16)    # conv1, conv2, hidden
FULL = (32, 64, 128)
STEPS, BATCH, LR, MOMENTUM = 50, 32, 0.02, 0.9
N_IO = 32
MIN_MARGIN = 1e-3     # top-1 minus top-2 log-prob of every io image, so argmax is stable


def templates(rng):
    """One 28x28 pattern per class in [0, 1]: a few Gaussian strokes at fixed places."""
    yy, xx = np.mgrid[0:28, 0:28].astype(np.float64)
    out = np.zeros((10, 28, 28))
    for c in range(10):
        for _ in range(4):
            cy, cx = rng.uniform(6, 22, size=2)
            sy, sx = rng.uniform(1.5, 4.0, size=2)
            out[c] += np.exp(-((yy - cy) / sy) ** 2 - ((xx - cx) / sx) ** 2)
    return np.clip(out, 0.0, 1.0)


def synthetic_digits(rng, tmpl, n):
    """n images (uint8, N x 28 x 28) and labels: a class pattern, shifted by up to 2
    pixels, scaled, plus noise."""
    labels = rng.integers(0, 10, size=n)
    images = np.empty((n, 28, 28), dtype=np.uint8)
    for i, c in enumerate(labels):
        img = np.roll(tmpl[c], shift=tuple(rng.integers(-1, 2, size=2)), axis=(0, 1))
        img = img * rng.uniform(0.6, 1.0) + rng.normal(0.0, 0.1, size=(28, 28))
        images[i] = np.clip(np.round(img * 255.0), 0, 255).astype(np.uint8)
    return images, labels


def schema(net):
    return [[k, "F32", list(v.shape)] for k, v in net.state_dict().items()]


def main():
    torch.set_num_threads(1)
    torch.manual_seed(0)
    rng = np.random.default_rng(0)
    tmpl = templates(rng)

    net = Net(*SMALL)
    opt = torch.optim.SGD(net.parameters(), lr=LR, momentum=MOMENTUM)
    net.train()
    for step in range(STEPS):
        pixels, labels = synthetic_digits(rng, tmpl, BATCH)
        x = normalise(pixels)
        opt.zero_grad()
        loss = F.nll_loss(net(x), torch.from_numpy(labels))
        loss.backward()
        opt.step()
        if step in (0, STEPS - 1):
            print(f"step {step + 1:2d}: loss {loss.item():.4f}")

    pixels, labels = synthetic_digits(rng, tmpl, N_IO)
    x = normalise(pixels)
    net.eval()
    with torch.no_grad():
        out = net(x)
        out64 = net.double()(x.double())
    net.float()
    predicted = out.argmax(dim=1)
    top2 = out64.topk(2, dim=1).values
    margin = (top2[:, 0] - top2[:, 1]).min().item()
    assert torch.equal(predicted, out64.argmax(dim=1)), "float32 and float64 argmax differ"
    assert margin > MIN_MARGIN, f"an io image is a near tie (margin {margin:.2e})"
    assert len(set(predicted.tolist())) >= 5, "predictions should span several classes"
    print(f"io: accuracy {(predicted.numpy() == labels).mean() * 100:.1f}% on synthetic "
          f"labels, {len(set(predicted.tolist()))} classes predicted, "
          f"min margin {margin:.3f}, max |log_prob| {out.abs().max().item():.2f}, "
          f"max |f32 - f64| {(out.double() - out64).abs().max().item():.2e}")

    state = net.state_dict()
    total = save("roundtrip_weights.safetensors", state, {"format": "pt"})
    meta = {
        "torch": torch.__version__,
        "small.config": ",".join(map(str, SMALL)),
        "schema.small": json.dumps(schema(net)),
        "schema.full": json.dumps(schema(Net(*FULL))),
        "training": f"{STEPS} steps of torch.optim.SGD(lr={LR}, momentum={MOMENTUM}), "
                    f"batch {BATCH}, train mode (dropout on), synthetic digits, seed 0",
        "normalisation": "(pixel - 127.5f) * (1.0f / 127.5f) in float32",
        "io.log_probs": "net.eval() forward in float32 (PyTorch's CPU kernels)",
        "io.log_probs_f64": "net.eval() forward in float64, rounded to float32",
    }
    io = {"io.x": x, "io.log_probs": out, "io.log_probs_f64": out64, "io.predicted": predicted}
    total += save("roundtrip_io.safetensors", io, meta)
    print(f"{'total':28s} {total:9d} bytes")
    assert total < SIZE_LIMIT, f"fixtures too large: {total} bytes"

    back, _ = read_safetensors(os.path.join(HERE, "roundtrip_weights.safetensors"))
    assert list(back) == sorted(state), "weights file holds exactly the state_dict"


if __name__ == "__main__":
    main()
