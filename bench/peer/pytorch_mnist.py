#!/usr/bin/env python3
"""The MNIST CNN of bench/bench_mnist.cpp in PyTorch, timed the same way.

  train_step  one SGD step at batch 64 (zero_grad, forward, nll_loss, backward, step),
              train mode, SGD lr 0.01 momentum 0.5
  eval        one forward at batch 1000, eval mode, under torch.no_grad()
  --kernels   also conv1/conv2 forward and forward+backward, fc1 forward+backward,
              max_pool2d and torch.mm on the shapes bench_mnist.cpp uses

Each benchmark warms up, then runs `--repetitions` repetitions of at least `--min-time`
seconds each (as Google Benchmark's MinTime/Repetitions do) and reports the median of the
repetitions' mean wall-clock times. One JSON object per line on stdout:

  {"impl": "pytorch", "version": "2.x", "threads": 2, "bench": "train_step",
   "median_ms": 12.3, "reps_ms": [...], "gflops": 45.6}

Usage: .venv-bench/bin/python bench/peer/pytorch_mnist.py [--threads 2] [--kernels]
"""

import argparse
import json
import os
import statistics
import time

import torch
import torch.nn as nn
import torch.nn.functional as F

TRAIN_BATCH = 64
EVAL_BATCH = 1000

# FLOPs per image of each layer's forward (a multiply-add counts 2), as in bench_mnist.cpp.
CONV1_FLOPS = 2.0 * 32 * (26 * 26) * (1 * 3 * 3)
CONV2_FLOPS = 2.0 * 64 * (24 * 24) * (32 * 3 * 3)
FC1_FLOPS = 2.0 * 9216 * 128
FC2_FLOPS = 2.0 * 128 * 10
FORWARD_FLOPS = CONV1_FLOPS + CONV2_FLOPS + FC1_FLOPS + FC2_FLOPS
# conv1's input (the images) needs no gradient; every other layer's backward costs two forwards.
TRAIN_FLOPS = FORWARD_FLOPS + CONV1_FLOPS + 2 * (CONV2_FLOPS + FC1_FLOPS + FC2_FLOPS)


class Net(nn.Module):
    """The classic PyTorch MNIST example's network (models/mnist_net.hpp in ember)."""

    def __init__(self):
        super().__init__()
        self.conv1 = nn.Conv2d(1, 32, 3, 1)
        self.conv2 = nn.Conv2d(32, 64, 3, 1)
        self.dropout1 = nn.Dropout2d(0.25)
        self.dropout2 = nn.Dropout(0.5)
        self.fc1 = nn.Linear(9216, 128)
        self.fc2 = nn.Linear(128, 10)

    def forward(self, x):
        x = F.relu(self.conv1(x))      # (N, 32, 26, 26)
        x = F.relu(self.conv2(x))      # (N, 64, 24, 24)
        x = F.max_pool2d(x, 2)         # (N, 64, 12, 12)
        x = self.dropout1(x)
        x = torch.flatten(x, 1)        # (N, 9216)
        x = F.relu(self.fc1(x))        # (N, 128)
        x = self.dropout2(x)
        x = self.fc2(x)                # (N, 10)
        return F.log_softmax(x, dim=1)


def measure(fn, min_time, repetitions, warmup_time):
    """Median over repetitions of the mean seconds per call; each repetition runs >= min_time."""
    end = time.perf_counter() + warmup_time
    fn()
    while time.perf_counter() < end:
        fn()
    reps = []
    for _ in range(repetitions):
        calls = 0
        start = time.perf_counter()
        while True:
            fn()
            calls += 1
            elapsed = time.perf_counter() - start
            if elapsed >= min_time:
                break
        reps.append(elapsed / calls)
    return statistics.median(reps), reps


def train_step_fn():
    model = Net()
    model.train()
    opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.5)
    images = torch.randn(TRAIN_BATCH, 1, 28, 28)
    labels = torch.randint(0, 10, (TRAIN_BATCH,))

    def step():
        opt.zero_grad()
        loss = F.nll_loss(model(images), labels)
        loss.backward()
        opt.step()

    return step, TRAIN_BATCH * TRAIN_FLOPS


def eval_fn():
    model = Net()
    model.eval()
    images = torch.randn(EVAL_BATCH, 1, 28, 28)

    def forward():
        with torch.no_grad():
            model(images)

    return forward, EVAL_BATCH * FORWARD_FLOPS


def conv_fns():
    """conv1/conv2 forward and forward+backward at batch 64 (bench_mnist.cpp's BM_Conv*)."""
    out = {}
    for name, (c, k, hw, input_grad, flops) in {
        "conv1": (1, 32, 28, False, CONV1_FLOPS),
        "conv2": (32, 64, 26, True, CONV2_FLOPS),
    }.items():
        x = torch.randn(TRAIN_BATCH, c, hw, hw)
        w = torch.empty(k, c, 3, 3).uniform_(-0.1, 0.1)
        b = torch.empty(k).uniform_(-0.1, 0.1)

        def forward(x=x, w=w, b=b):
            with torch.no_grad():
                F.conv2d(x, w, b)

        xg = x.clone().requires_grad_(input_grad)
        wg = w.clone().requires_grad_()
        bg = b.clone().requires_grad_()
        gy = torch.randn(TRAIN_BATCH, k, hw - 2, hw - 2)

        def forward_backward(xg=xg, wg=wg, bg=bg, gy=gy):
            xg.grad = wg.grad = bg.grad = None
            F.conv2d(xg, wg, bg).backward(gy)

        out[f"{name}_forward"] = (forward, TRAIN_BATCH * flops)
        out[f"{name}_forward_backward"] = (forward_backward,
                                           TRAIN_BATCH * flops * (3 if input_grad else 2))
    return out


def other_kernel_fns():
    out = {}
    x = torch.randn(TRAIN_BATCH, 9216, requires_grad=True)
    w = torch.empty(128, 9216).uniform_(-0.01, 0.01).requires_grad_()
    b = torch.empty(128).uniform_(-0.01, 0.01).requires_grad_()
    gy = torch.randn(TRAIN_BATCH, 128)

    def fc1_forward_backward():
        x.grad = w.grad = b.grad = None
        F.linear(x, w, b).backward(gy)

    out["fc1_forward_backward"] = (fc1_forward_backward, TRAIN_BATCH * FC1_FLOPS * 3)

    p = torch.randn(TRAIN_BATCH, 64, 24, 24)

    def max_pool2d_forward():
        with torch.no_grad():
            F.max_pool2d(p, 2)

    out["max_pool2d_forward"] = (max_pool2d_forward, None)

    for m, n, k in [(64, 576, 288), (512, 512, 512)]:
        a, bm = torch.randn(m, k), torch.randn(k, n)

        def mm(a=a, bm=bm):
            torch.mm(a, bm)

        out[f"gemm_{m}x{n}x{k}"] = (mm, 2.0 * m * n * k)
    return out


def main():
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--threads", type=int, default=2, help="torch.set_num_threads (default 2)")
    ap.add_argument("--min-time", type=float, default=0.5, help="seconds per repetition")
    ap.add_argument("--repetitions", type=int, default=5)
    ap.add_argument("--warmup-time", type=float, default=0.2)
    ap.add_argument("--kernels", action="store_true", help="also time the per-layer kernels")
    ap.add_argument("--only", default="", help="comma-separated benchmark names to run")
    ap.add_argument("--skip", default="", help="comma-separated benchmark names to skip")
    args = ap.parse_args()

    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    benches = {"train_step": train_step_fn(), "eval": eval_fn()}
    if args.kernels:
        benches.update(conv_fns())
        benches.update(other_kernel_fns())
    only = {s for s in args.only.split(",") if s}
    skip = {s for s in args.skip.split(",") if s}
    for name, (fn, flops) in benches.items():
        if (only and name not in only) or name in skip:
            continue
        median, reps = measure(fn, args.min_time, args.repetitions, args.warmup_time)
        record = {
            "impl": "pytorch",
            "version": torch.__version__,
            "threads": torch.get_num_threads(),
            # libgomp's default lets idle threads spin; on a busy machine PASSIVE can be faster
            "omp_wait_policy": os.environ.get("OMP_WAIT_POLICY", "default"),
            "bench": name,
            "median_ms": round(median * 1e3, 4),
            "reps_ms": [round(r * 1e3, 4) for r in reps],
        }
        if flops:
            record["gflops"] = round(flops / median / 1e9, 2)
        print(json.dumps(record), flush=True)


if __name__ == "__main__":
    main()
