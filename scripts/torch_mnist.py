"""PyTorch's side of ember's MNIST CNN, shared by scripts/roundtrip_pytorch.py,
scripts/check_onnx.py and tests/golden/make_roundtrip.py:

  Net             PyTorch's classic MNIST example net (ember's models::MnistNet), widths as
                  parameters
  net_for(state)  a Net with the widths of a state_dict, loaded strictly, in eval mode
  normalise       pixels -> float32 inputs, bit for bit as ember's PixelNormalization(0.5, 0.5)
  find_idx, read_idx, read_images, read_labels, load_mnist
                  the MNIST IDX files (.gz or plain), as ember's loader finds and reads them

Needs only PyTorch and numpy (works with PyTorch 1.13 and 2.x; no safetensors): the scripts
import it as `from torch_mnist import ...` with scripts/ on sys.path.
"""

import gzip
import os
import struct

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F


class DataError(Exception):
    """A missing or malformed MNIST IDX file; the message names the file and what is wrong."""


# --------------------------------------------------------------------------------------------
# the network
# --------------------------------------------------------------------------------------------

class Net(nn.Module):
    """PyTorch's classic MNIST example Net (ember's models::MnistNet) with its widths as
    parameters (the defaults are the example's: conv1 32, conv2 64, hidden 128). Dropout
    after the pooling is Dropout2d, as in ember's MnistNet; eval mode makes both dropouts
    identity."""

    def __init__(self, conv1=32, conv2=64, hidden=128):
        super().__init__()
        self.conv1 = nn.Conv2d(1, conv1, 3, 1)
        self.conv2 = nn.Conv2d(conv1, conv2, 3, 1)
        self.dropout1 = nn.Dropout2d(0.25)
        self.dropout2 = nn.Dropout(0.5)
        self.fc1 = nn.Linear(conv2 * 12 * 12, hidden)
        self.fc2 = nn.Linear(hidden, 10)

    def forward(self, x):
        x = F.relu(self.conv1(x))
        x = F.relu(self.conv2(x))
        x = F.max_pool2d(x, 2)
        x = self.dropout1(x)
        x = torch.flatten(x, 1)
        x = F.relu(self.fc1(x))
        x = self.dropout2(x)
        x = self.fc2(x)
        return F.log_softmax(x, dim=1)


def net_for(state):
    """A Net with the widths of state_dict `state` (conv1.weight, conv2.weight, fc1.weight
    shapes), load_state_dict(strict=True), in eval mode. Raises RuntimeError on a missing or
    unexpected key or a shape that does not fit."""
    net = Net(state["conv1.weight"].shape[0], state["conv2.weight"].shape[0],
              state["fc1.weight"].shape[0])
    net.load_state_dict(state, strict=True)
    return net.eval()


# --------------------------------------------------------------------------------------------
# inputs
# --------------------------------------------------------------------------------------------

def normalise(pixels):
    """uint8 pixels (N, 28, 28) -> float32 tensor (N, 1, 28, 28), bit for bit as
    ember::data::PixelNormalization with mean 0.5 and std 0.5:
    (pixel - 127.5f) * (1.0f / 127.5f), each step rounded to float32 (not torchvision's
    (x / 255 - 0.5) / 0.5, which differs in the last bit)."""
    center = np.float32(127.5)
    scale = np.float32(1.0) / np.float32(127.5)
    x = (pixels.astype(np.float32) - center) * scale
    return torch.from_numpy(np.ascontiguousarray(x[:, None, :, :]))


# --------------------------------------------------------------------------------------------
# MNIST IDX files
# --------------------------------------------------------------------------------------------

def find_idx(folder, stem):
    """The path of IDX file `stem` in `folder`: as ember's loader, stem.gz first, then stem."""
    for candidate in (stem + ".gz", stem):
        path = os.path.join(folder, candidate)
        if os.path.exists(path):
            return path
    raise DataError(f"no {stem}[.gz] in '{folder}' (set --data or $EMBER_DATA)")


def read_idx(path):
    """An IDX file of unsigned bytes (gzip or plain) as a uint8 numpy array of its dims."""
    opener = gzip.open if path.endswith(".gz") else open
    with opener(path, "rb") as f:
        raw = f.read()
    if len(raw) < 4 or raw[0] != 0 or raw[1] != 0 or raw[2] != 0x08:
        raise DataError(f"'{path}': not an IDX file of unsigned bytes")
    ndim = raw[3]
    offset = 4 + 4 * ndim
    if len(raw) < offset:
        raise DataError(f"'{path}': {len(raw)} bytes, shorter than its {ndim}-d header")
    dims = list(struct.unpack(f">{ndim}I", raw[4:offset]))
    count = int(np.prod(dims))
    if len(raw) != offset + count:
        raise DataError(f"'{path}': {len(raw) - offset} data bytes for dims {dims}")
    return np.frombuffer(raw, dtype=np.uint8, offset=offset).reshape(dims)


def _prefix(split):
    if split not in ("train", "test"):
        raise ValueError(f"split must be 'train' or 'test', not {split!r}")
    return "train" if split == "train" else "t10k"


def read_images(folder, split):
    """The `split` ("train" or "test") images in `folder`: uint8 (N, 28, 28)."""
    path = find_idx(folder, f"{_prefix(split)}-images-idx3-ubyte")
    images = read_idx(path)
    if images.ndim != 3 or images.shape[1:] != (28, 28):
        raise DataError(f"'{path}': images of shape {images.shape}, not (N, 28, 28)")
    return images


def read_labels(folder, split):
    """The `split` ("train" or "test") labels in `folder`: int64 (N,)."""
    path = find_idx(folder, f"{_prefix(split)}-labels-idx1-ubyte")
    labels = read_idx(path)
    if labels.ndim != 1:
        raise DataError(f"'{path}': labels of shape {labels.shape}, not (N,)")
    return labels.astype(np.int64)


def load_mnist(folder, split):
    """(images uint8 (N, 28, 28), labels int64 (N,)) of `split` ("train" or "test")."""
    images, labels = read_images(folder, split), read_labels(folder, split)
    if images.shape[0] != labels.shape[0]:
        raise DataError(f"{split} set: images {images.shape}, labels {labels.shape}")
    return images, labels
