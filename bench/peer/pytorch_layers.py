#!/usr/bin/env python3
"""bench/bench_layers.cpp's benchmarks in PyTorch, timed the same way.

On one float tensor x (64, 64, 24, 24):
  batch_norm2d_train   F.batch_norm(training=True), forward + backward to x, weight, bias
  batch_norm2d_eval    F.batch_norm(training=False) under torch.no_grad()
  avg_pool2d           F.avg_pool2d(x, 2), forward + backward
  act_<name>           sigmoid, tanh, gelu, silu, leaky_relu, elu, softmax (dim 1),
                       log_softmax (dim 1), forward + backward
  bmm                  torch.bmm of a (64, 49, 64) by b (64, 64, 49), forward + backward to
                       a and b
  optim_<name>         one optimizer step over the MNIST net's parameters (fixed random
                       gradients): adam, adamw, sgd_momentum (momentum 0.9), each with
                       torch.optim's defaults (the single-tensor loop on CPU), and
                       adam_fused / adam_foreach for PyTorch's other implementations

Each forward+backward clears x's gradient, computes y = f(x) and calls y.backward(gy) with a
fixed random gy, as the C++ side does. Timing, output and flags are pytorch_mnist.py's: the
median of 5 repetitions' mean wall-clock times, one JSON object per line; "median_cpu_ms" is
the same for the process's CPU time (all threads), as Google Benchmark's cpu_time is for ember.

Usage: .venv-bench/bin/python bench/peer/pytorch_layers.py [--threads 2] [--only a,b]
"""

import argparse
import json
import os
import statistics
import time

import torch
import torch.nn.functional as F

SHAPE = (64, 64, 24, 24)


def measure(fn, min_time, repetitions, warmup_time):
    """pytorch_mnist.py's measure(), with the process CPU time per call beside the wall time:
    (median wall s, median CPU s, wall s per repetition)."""
    end = time.perf_counter() + warmup_time
    fn()
    while time.perf_counter() < end:
        fn()
    wall, cpu = [], []
    for _ in range(repetitions):
        calls = 0
        start, cpu_start = time.perf_counter(), time.process_time()
        while True:
            fn()
            calls += 1
            elapsed = time.perf_counter() - start
            if elapsed >= min_time:
                break
        wall.append(elapsed / calls)
        cpu.append((time.process_time() - cpu_start) / calls)
    return statistics.median(wall), statistics.median(cpu), wall


def batch_norm_fns():
    c = SHAPE[1]
    x = torch.randn(SHAPE, requires_grad=True)
    w = torch.empty(c).uniform_(0.5, 1.5).requires_grad_()
    b = torch.empty(c).uniform_(-0.5, 0.5).requires_grad_()
    running_mean, running_var = torch.zeros(c), torch.ones(c)
    gy = torch.randn(SHAPE)

    def train():
        x.grad = w.grad = b.grad = None
        F.batch_norm(x, running_mean, running_var, w, b, training=True).backward(gy)

    xe = torch.randn(SHAPE)
    we, be = w.detach().clone(), b.detach().clone()
    rm, rv = torch.empty(c).uniform_(-0.5, 0.5), torch.empty(c).uniform_(0.5, 2.0)

    def evaluate():
        with torch.no_grad():
            F.batch_norm(xe, rm, rv, we, be, training=False)

    return {"batch_norm2d_train": train, "batch_norm2d_eval": evaluate}


def optimizer_fns():
    # the MNIST net's parameter shapes (bench/peer/pytorch_mnist.py's Net)
    shapes = [(32, 1, 3, 3), (32,), (64, 32, 3, 3), (64,), (128, 9216), (128,), (10, 128), (10,)]
    fns = {}
    for name, make in {
        "adam": lambda p: torch.optim.Adam(p),
        "adamw": lambda p: torch.optim.AdamW(p),
        "sgd_momentum": lambda p: torch.optim.SGD(p, lr=0.01, momentum=0.9),
        "adam_foreach": lambda p: torch.optim.Adam(p, foreach=True),
        "adam_fused": lambda p: torch.optim.Adam(p, fused=True),
    }.items():
        params = [torch.randn(s, requires_grad=True) for s in shapes]
        for p in params:
            p.grad = torch.randn(p.shape)
        opt = make(params)
        fns[f"optim_{name}"] = opt.step
    return fns


def bmm_fn():
    a = torch.randn(64, 49, 64, requires_grad=True)
    b = torch.randn(64, 64, 49, requires_grad=True)
    gy = torch.randn(64, 49, 49)

    def step():
        a.grad = b.grad = None
        torch.bmm(a, b).backward(gy)

    return step


def forward_backward(f, out_shape=SHAPE):
    x = torch.randn(SHAPE, requires_grad=True)
    gy = torch.randn(out_shape)

    def step():
        x.grad = None
        f(x).backward(gy)

    return step


def main():
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--threads", type=int, default=2, help="torch.set_num_threads (default 2)")
    ap.add_argument("--min-time", type=float, default=0.5, help="seconds per repetition")
    ap.add_argument("--repetitions", type=int, default=5)
    ap.add_argument("--warmup-time", type=float, default=0.2)
    ap.add_argument("--only", default="", help="comma-separated benchmark names to run")
    args = ap.parse_args()

    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    n, c, h, w = SHAPE
    benches = batch_norm_fns()
    benches["avg_pool2d"] = forward_backward(lambda x: F.avg_pool2d(x, 2), (n, c, h // 2, w // 2))
    for name, f in {
        "sigmoid": torch.sigmoid,
        "tanh": torch.tanh,
        "gelu": F.gelu,
        "silu": F.silu,
        "leaky_relu": F.leaky_relu,
        "elu": F.elu,
        "softmax": lambda x: F.softmax(x, dim=1),
        "log_softmax": lambda x: F.log_softmax(x, dim=1),
    }.items():
        benches[f"act_{name}"] = forward_backward(f)
    benches["bmm"] = bmm_fn()
    benches.update(optimizer_fns())
    only = {s for s in args.only.split(",") if s}
    for name, fn in benches.items():
        if only and name not in only:
            continue
        median, median_cpu, reps = measure(fn, args.min_time, args.repetitions, args.warmup_time)
        print(json.dumps({
            "impl": "pytorch",
            "version": torch.__version__,
            "threads": torch.get_num_threads(),
            "omp_wait_policy": os.environ.get("OMP_WAIT_POLICY", "default"),
            "bench": name,
            "median_ms": round(median * 1e3, 4),
            "median_cpu_ms": round(median_cpu * 1e3, 4),
            "reps_ms": [round(r * 1e3, 4) for r in reps],
        }), flush=True)


if __name__ == "__main__":
    main()
