#!/usr/bin/env python3
"""Generate the PyTorch "golden" fixtures used by ember's C++ tests.

Run from the repository root with the system interpreter (which has torch):

    /usr/bin/python3 tests/golden/make_golden.py

This rewrites every *.safetensors file in tests/golden/. CI does NOT run this
script: the fixtures are committed, and the C++ tests only read them. Rerun it
only when a fixture has to change; the output is deterministic (fixed seeds,
fixed shapes), so a rerun on the same PyTorch version reproduces the files.

Conventions
  * Format: safetensors, written by the small pure-python writer below.
  * Float tensors are stored as F32, integer tensors as I64.
  * Inputs are drawn in float32; the reference results are then computed in
    float64 from those exact float32 values and rounded to float32 once when
    stored, so they are as close to the true result as float32 allows.
  * Every "grad_out" tensor is a random g; the gradients stored are those of
    sum(out * g).
  * Layer hyper-parameters live in the "__metadata__" map, as strings.
"""

import json
import math
import os
import struct

import numpy as np
import torch
import torch.nn.functional as F

HERE = os.path.dirname(os.path.abspath(__file__))
SIZE_LIMIT = 1_500_000  # bytes, all fixtures together

DTYPES = {np.dtype(np.float32): "F32", np.dtype(np.int64): "I64"}
NP_DTYPES = {v: k for k, v in DTYPES.items()}


# --------------------------------------------------------------------------
# safetensors writer / reader
# --------------------------------------------------------------------------

def to_numpy(t):
    """float tensors -> float32, integer tensors -> int64, C-contiguous LE."""
    if isinstance(t, torch.Tensor):
        t = t.detach().cpu()
        t = t.to(torch.float32) if t.is_floating_point() else t.to(torch.int64)
        t = t.numpy()
    a = np.asarray(t)
    # copy(order="C") keeps 0-d scalars 0-d (ascontiguousarray would not)
    return a.astype("<f4" if a.dtype.kind == "f" else "<i8").copy(order="C")


def write_safetensors(path, tensors, metadata):
    arrays = {name: to_numpy(t) for name, t in tensors.items()}
    header, offset = {}, 0
    for name in sorted(arrays):
        a = arrays[name]
        header[name] = {"dtype": DTYPES[a.dtype.newbyteorder("=")],
                        "shape": list(a.shape),
                        "data_offsets": [offset, offset + a.nbytes]}
        offset += a.nbytes
    header["__metadata__"] = {str(k): str(v) for k, v in metadata.items()}
    blob = json.dumps(header, sort_keys=True, separators=(",", ":")).encode()
    blob += b" " * (-len(blob) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(blob)))
        f.write(blob)
        for name in sorted(arrays):
            f.write(arrays[name].tobytes())
    return arrays


def read_safetensors(path):
    with open(path, "rb") as f:
        raw = f.read()
    (n,) = struct.unpack("<Q", raw[:8])
    assert n % 8 == 0, "header length must be a multiple of 8"
    header = json.loads(raw[8:8 + n])
    metadata = header.pop("__metadata__", {})
    data = raw[8 + n:]
    tensors, end = {}, 0
    for name in sorted(header):
        info = header[name]
        b, e = info["data_offsets"]
        assert b == end, f"{name}: data not contiguous in sorted order"
        dt = NP_DTYPES[info["dtype"]].newbyteorder("<")
        tensors[name] = np.frombuffer(data[b:e], dtype=dt).reshape(info["shape"])
        end = e
    assert end == len(data), "trailing bytes after the last tensor"
    return tensors, metadata


def save(filename, tensors, metadata):
    """Write one fixture, re-read it, check the round trip, report its size."""
    path = os.path.join(HERE, filename)
    arrays = write_safetensors(path, tensors, metadata)
    back, meta = read_safetensors(path)
    assert set(back) == set(arrays), filename
    for name, a in arrays.items():
        assert back[name].shape == a.shape and back[name].dtype == a.dtype, name
        assert np.array_equal(back[name], a), name
    assert meta == {str(k): str(v) for k, v in metadata.items()}, filename
    size = os.path.getsize(path)
    print(f"{filename:28s} {size:9d} bytes  ({len(arrays)} tensors)")
    return size


# --------------------------------------------------------------------------
# helpers
# --------------------------------------------------------------------------

def randn(*shape):
    return torch.randn(*shape, dtype=torch.float32)


def leaf(t):
    """float32 input -> float64 leaf that requires grad (for the reference)."""
    return t.detach().to(torch.float64).requires_grad_(True)


def backward_with(out, g):
    """Backpropagate sum(out * g)."""
    (out * g.to(out.dtype)).sum().backward()


# --------------------------------------------------------------------------
# fixtures
# --------------------------------------------------------------------------

def make_conv2d():
    torch.manual_seed(0)
    cases = {  # prefix: (x shape, w shape, stride, padding, dilation)
        "a": ((2, 3, 7, 9), (4, 3, 3, 3), 1, 0, 1),
        "b": ((3, 2, 8, 7), (5, 2, 3, 2), 2, 1, 1),
        "c": ((2, 3, 11, 10), (4, 3, 3, 3), 1, 2, 2),
    }
    tensors, meta = {}, {}
    for p, (xs, ws, stride, padding, dilation) in cases.items():
        x, w, b = randn(*xs), randn(*ws), randn(ws[0])
        xd, wd, bd = leaf(x), leaf(w), leaf(b)
        out = F.conv2d(xd, wd, bd, stride=stride, padding=padding,
                       dilation=dilation)
        g = randn(*out.shape)
        backward_with(out, g)
        tensors.update({f"{p}.x": x, f"{p}.w": w, f"{p}.b": b,
                        f"{p}.out": out, f"{p}.grad_out": g,
                        f"{p}.grad_x": xd.grad, f"{p}.grad_w": wd.grad,
                        f"{p}.grad_b": bd.grad})
        meta.update({f"{p}.stride": stride, f"{p}.padding": padding,
                     f"{p}.dilation": dilation})
    return save("conv2d.safetensors", tensors, meta)


def make_linear():
    torch.manual_seed(0)
    x, w, b = randn(5, 7), randn(3, 7), randn(3)
    xd, wd, bd = leaf(x), leaf(w), leaf(b)
    out = F.linear(xd, wd, bd)
    g = randn(*out.shape)
    backward_with(out, g)
    tensors = {"x": x, "w": w, "b": b, "out": out, "grad_out": g,
               "grad_x": xd.grad, "grad_w": wd.grad, "grad_b": bd.grad}
    return save("linear.safetensors", tensors, {})


def make_max_pool2d():
    torch.manual_seed(0)
    cases = {  # prefix: (x shape, kernel, stride, padding); floor mode
        "a": ((2, 3, 8, 8), 2, 2, 0),
        "b": ((2, 2, 7, 9), 3, 2, 1),
        "c": ((1, 2, 5, 7), 2, 2, 0),
    }
    tensors, meta = {}, {}
    for p, (xs, kernel, stride, padding) in cases.items():
        x = randn(*xs)
        assert torch.unique(x).numel() == x.numel(), "ties in max_pool input"
        xd = leaf(x)
        out = F.max_pool2d(xd, kernel, stride=stride, padding=padding)
        g = randn(*out.shape)
        backward_with(out, g)
        tensors.update({f"{p}.x": x, f"{p}.out": out, f"{p}.grad_out": g,
                        f"{p}.grad_x": xd.grad})
        meta.update({f"{p}.kernel": kernel, f"{p}.stride": stride,
                     f"{p}.padding": padding})
    return save("max_pool2d.safetensors", tensors, meta)


def make_activations():
    torch.manual_seed(0)
    tensors = {}

    x = randn(4, 9)
    assert bool((x != 0).all()), "relu input must have no exact zeros"
    xd = leaf(x)
    out = F.relu(xd)
    g = randn(*out.shape)
    backward_with(out, g)
    tensors.update({"relu.x": x, "relu.out": out, "relu.grad_out": g,
                    "relu.grad_x": xd.grad})

    x = randn(6, 10)
    xd = leaf(x)
    out = F.log_softmax(xd, dim=1)
    g = randn(*out.shape)
    backward_with(out, g)
    tensors.update({"log_softmax.x": x, "log_softmax.out": out,
                    "log_softmax.grad_out": g, "log_softmax.grad_x": xd.grad})

    inp = F.log_softmax(randn(7, 10), dim=1)  # stored float32 log-probs
    target = torch.randint(0, 10, (7,), dtype=torch.int64)
    ind, ins = leaf(inp), leaf(inp)
    mean_loss = F.nll_loss(ind, target, reduction="mean")
    sum_loss = F.nll_loss(ins, target, reduction="sum")
    mean_loss.backward()
    sum_loss.backward()
    tensors.update({"nll.input": inp, "nll.target": target,
                    "nll.mean_loss": mean_loss, "nll.sum_loss": sum_loss,
                    "nll.grad_input_mean": ind.grad,
                    "nll.grad_input_sum": ins.grad})

    logits = randn(7, 10)
    target = torch.randint(0, 10, (7,), dtype=torch.int64)
    ld = leaf(logits)
    loss = F.cross_entropy(ld, target)
    loss.backward()
    tensors.update({"ce.logits": logits, "ce.target": target, "ce.loss": loss,
                    "ce.grad_logits": ld.grad})
    return save("activations.safetensors", tensors,
                {"log_softmax.dim": 1, "ce.reduction": "mean"})


def make_dropout():
    torch.manual_seed(0)
    tensors, meta = {}, {}
    cases = {  # prefix: (x shape, mask shape, p)
        "dropout": ((4, 6), (4, 6), 0.5),
        "dropout2d": ((2, 5, 3, 4), (2, 5, 1, 1), 0.25),
    }
    for p_, (xs, ms, p) in cases.items():
        x = randn(*xs)
        mask = torch.bernoulli(torch.full(ms, 1.0 - p, dtype=torch.float32))
        xd = leaf(x)
        out = xd * mask.double() / (1.0 - p)
        g = randn(*out.shape)
        backward_with(out, g)
        tensors.update({f"{p_}.x": x, f"{p_}.mask": mask, f"{p_}.out": out,
                        f"{p_}.grad_out": g, f"{p_}.grad_x": xd.grad})
        meta[f"{p_}.p"] = p
    return save("dropout.safetensors", tensors, meta)


# --------------------------------------------------------------------------
# MNIST training step
# --------------------------------------------------------------------------

MNIST_PARAMS = [  # (name, shape, fan_in); index l = position + 1
    ("conv1.weight", (32, 1, 3, 3), 9),
    ("conv1.bias", (32,), 9),
    ("conv2.weight", (64, 32, 3, 3), 288),
    ("conv2.bias", (64,), 288),
    ("fc1.weight", (128, 9216), 9216),
    ("fc1.bias", (128,), 9216),
    ("fc2.weight", (10, 128), 128),
    ("fc2.bias", (10,), 128),
]
WEIGHT_FORMULA = ("param l=1..8 in order conv1.weight,conv1.bias,conv2.weight,"
                  "conv2.bias,fc1.weight,fc1.bias,fc2.weight,fc2.bias with "
                  "fan_in=9,9,288,288,9216,9216,128,128: value at flat C-order "
                  "index k = float32((1/sqrt(fan_in))*sin(0.7*k+l)), "
                  "computed in float64")
LR, MOMENTUM = 0.01, 0.5
P_DROP2D, P_DROP = 0.25, 0.5
SAMPLE_MAX = 4096


def formula_weight(l, shape, fan_in):
    k = np.arange(int(np.prod(shape)), dtype=np.float64)
    v = (1.0 / math.sqrt(fan_in)) * np.sin(0.7 * k + l)
    return torch.from_numpy(v.astype(np.float32).reshape(shape))


def mnist_forward(params, x, masks=None):
    """PyTorch's classic MNIST example net; masks=(mask2d, mask) or None."""
    x = F.relu(F.conv2d(x, params["conv1.weight"], params["conv1.bias"], 1))
    x = F.relu(F.conv2d(x, params["conv2.weight"], params["conv2.bias"], 1))
    x = F.max_pool2d(x, 2)
    if masks is not None:
        x = x * masks[0].to(x.dtype) / (1.0 - P_DROP2D)
    x = torch.flatten(x, 1)
    x = F.relu(F.linear(x, params["fc1.weight"], params["fc1.bias"]))
    if masks is not None:
        x = x * masks[1].to(x.dtype) / (1.0 - P_DROP)
    x = F.linear(x, params["fc2.weight"], params["fc2.bias"])
    return F.log_softmax(x, dim=1)


def mnist_batch(n=8):
    u = torch.rand(n, 1, 28, 28, dtype=torch.float32)
    u = torch.round(u * 255.0) / 255.0          # look like 8-bit pixels
    x = ((u - 0.5) / 0.5).to(torch.float32)
    target = torch.randint(0, 10, (n,), dtype=torch.int64)
    return x, target


def sample_stride(numel):
    return 1 if numel <= SAMPLE_MAX else -(-numel // SAMPLE_MAX)


def mnist_variant(v, batches, masks):
    """Two SGD steps; returns tensors and metadata prefixed with v."""
    params = {name: leaf(formula_weight(l, shape, fan_in))
              for l, (name, shape, fan_in) in enumerate(MNIST_PARAMS, 1)}
    opt = torch.optim.SGD(params.values(), lr=LR, momentum=MOMENTUM)
    tensors, meta = {}, {}
    for step, (x, target) in enumerate(batches, 1):
        opt.zero_grad()
        out = mnist_forward(params, x.double(), masks)
        loss = F.nll_loss(out, target)
        loss.backward()
        tensors[f"{v}.loss{step}"] = loss
        if step == 1:
            tensors[f"{v}.out1"] = out
            for name, p in params.items():
                # clone: zero_grad() in step 2 zeroes p.grad in place
                g = p.grad.detach().clone()
                s = sample_stride(g.numel())
                tensors[f"{v}.grad1.{name}.sample"] = g.flatten()[::s]
                tensors[f"{v}.grad1.{name}.rowsum"] = (
                    g.reshape(g.shape[0], -1).sum(dim=1))
                meta[f"{v}.grad1.{name}.stride"] = s
        opt.step()
    for name, p in params.items():
        s = sample_stride(p.numel())
        tensors[f"{v}.param2.{name}.sample"] = p.detach().flatten()[::s].clone()
    return tensors, meta


def make_mnist_step():
    torch.manual_seed(0)
    x, target = mnist_batch()
    x2, target2 = mnist_batch()
    mask2d = torch.bernoulli(torch.full((8, 64, 1, 1), 1.0 - P_DROP2D))
    mask = torch.bernoulli(torch.full((8, 128), 1.0 - P_DROP))
    batches = [(x, target), (x2, target2)]

    tensors = {"x": x, "target": target, "x2": x2, "target2": target2,
               "drop.mask2d": mask2d, "drop.mask": mask}
    meta = {"lr": LR, "momentum": MOMENTUM, "weight_formula": WEIGHT_FORMULA,
            "batches": "step 1 uses x/target, step 2 uses x2/target2",
            "loss": "nll_loss mean over the batch of log_softmax(dim=1)",
            "sgd": "torch.optim.SGD, dampening 0, no weight decay, no "
                   "nesterov: buf=grad at step 1, buf=momentum*buf+grad "
                   "after; param -= lr*buf",
            "nodrop": "dropout layers skipped (identity), still training steps",
            "drop": "dropout2d after max_pool2d and dropout after relu(fc1) "
                    "applied as x*mask/(1-p), same masks in both steps",
            "drop.mask2d.p": P_DROP2D, "drop.mask.p": P_DROP,
            "params": ",".join(n for n, _, _ in MNIST_PARAMS)}
    for v, masks in (("nodrop", None), ("drop", (mask2d, mask))):
        t, m = mnist_variant(v, batches, masks)
        tensors.update(t)
        meta.update(m)
    return save("mnist_step.safetensors", tensors, meta)


def main():
    total = sum(make() for make in (make_conv2d, make_linear, make_max_pool2d,
                                    make_activations, make_dropout,
                                    make_mnist_step))
    print(f"{'total':28s} {total:9d} bytes")
    assert total < SIZE_LIMIT, f"fixtures too large: {total} bytes"


if __name__ == "__main__":
    main()
