#!/usr/bin/env python3
"""The shapes of bench/cuda/bench_cuda_kernels.cu timed with PyTorch on a CUDA GPU.

Names line up with the C++ benchmarks: BM_<op>/torch/<shape> next to BM_<op>/custom/<shape>
and BM_<op>/cublas|cudnn/<shape>:

  BM_gemm            4096^3; the MNIST net's fc1 products: fc1_fwd_b64 (x W^T, M=64 N=128
                     K=9216), fc1_dx_b64 (gy W, M=64 N=9216 K=128), fc1_dw_b64 (gy^T x, M=128
                     N=9216 K=64), fc1_fwd_b1000
  BM_conv_fwd, BM_conv_bwd_data (conv2 only), BM_conv_bwd_weight (weight + bias gradient),
  BM_conv_fwd_bwd    conv1 (N x 1 x 28 x 28, 32 3x3 filters) and conv2 (N x 32 x 26 x 26, 64
                     3x3 filters) at N = 64 and 1000, through aten.convolution /
                     aten.convolution_backward (no autograd bookkeeping, like the C++ side)
  BM_max_pool2d_fwd/bwd   2x2 pool of (N, 64, 24, 24), N = 64 and 1000
  BM_log_softmax_fwd/bwd  (N, 10), N = 64 and 1000
  BM_sgd_step        SGD (lr 0.01, momentum 0.5) over the net's 8 parameter tensors:
                     torch = fused=True when this PyTorch has it, torch_foreach = foreach=True

FP32 only: TF32 is switched off for matmul and cuDNN (checked on the 4096 product against
float64). cudnn.benchmark stays False (heuristic algorithm choice, as ember's cuDNN path), unless
--cudnn-benchmark.

Timing (METHOD.md): inputs random, never zeros; several operand sets rotate when one set is
smaller than twice the L2; warm-up, then batches of back-to-back calls of about 1 ms timed with
torch.cuda.Event; each repetition runs batches for at least --min-time seconds and yields a mean
per call; the median over --repetitions is reported. GFLOP/s and GB/s use the same formulas as
the C++ benchmarks (minimum bytes: each input read once, each output written once).

Output: one JSON object per line on stdout, a table at the end, and (--out) all records as one
JSON array.
"""

import argparse
import inspect
import json
import math
import statistics
import sys
import time

import torch
import torch.nn.functional as F

aten = torch.ops.aten


def parse_args():
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--repetitions", type=int, default=5)
    ap.add_argument("--min-time", type=float, default=0.2, help="seconds per repetition")
    ap.add_argument("--batch-ms", type=float, default=1.0, help="target length of a timed batch")
    ap.add_argument("--only", default="", help="run only names containing one of these (comma-separated)")
    ap.add_argument("--out", default="", help="write all records to this JSON file")
    ap.add_argument("--cudnn-benchmark", action="store_true",
                    help="torch.backends.cudnn.benchmark = True (timed algorithm choice)")
    return ap.parse_args()


ARGS = None
DEV = torch.device("cuda")
RECORDS = []


def l2_bytes():
    props = torch.cuda.get_device_properties(0)
    return int(getattr(props, "L2_cache_size", 50 << 20))


def sets_for(set_bytes):
    """Enough operand sets that together they are at least twice the L2 (at most 32, ~4 GiB)."""
    if set_bytes <= 0:
        return 1
    want = math.ceil(2 * l2_bytes() / set_bytes)
    cap = max(1, (4 << 30) // set_bytes)
    return int(max(1, min(want, 32, cap)))


def rand(*shape, lo=-1.0, hi=1.0):
    return torch.empty(*shape, device=DEV, dtype=torch.float32).uniform_(lo, hi)


def wanted(name):
    only = [s for s in ARGS.only.split(",") if s]
    return not only or any(s in name for s in only)


def bench(name, make_set, fn, flops=0.0, nbytes=0.0, set_bytes=0, extra=None):
    """Times fn(set) over rotating sets; records the median of the repetitions' means."""
    if not wanted(name):
        return
    try:
        nsets = sets_for(set_bytes)
        sets = [make_set() for _ in range(nsets)]
        for i in range(max(3, nsets)):  # warm-up: every set once
            fn(sets[i % nsets])
        torch.cuda.synchronize()
        start, stop = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        nxt = 0
        start.record()
        for _ in range(3):
            fn(sets[nxt % nsets])
            nxt += 1
        stop.record()
        stop.synchronize()
        per_call_s = start.elapsed_time(stop) * 1e-3 / 3
        batch = int(min(2048, max(1, math.ceil(ARGS.batch_ms * 1e-3 / max(per_call_s, 1e-9)))))
        reps = []
        host_s = 0.0
        host_calls = 0
        for _ in range(ARGS.repetitions):
            total, calls = 0.0, 0
            while total < ARGS.min_time:
                start.record()
                h0 = time.perf_counter()
                for _ in range(batch):
                    fn(sets[nxt % nsets])
                    nxt += 1
                host_s += time.perf_counter() - h0
                stop.record()
                stop.synchronize()
                total += start.elapsed_time(stop) * 1e-3
                calls += batch
            host_calls += calls
            reps.append(total / calls)
        med = statistics.median(reps)
        rec = {
            "name": name,
            "impl": name.split("/")[1],
            "median_us": round(med * 1e6, 3),
            "min_us": round(min(reps) * 1e6, 3),
            "reps_us": [round(r * 1e6, 3) for r in reps],
            "host_us": round(host_s / max(host_calls, 1) * 1e6, 3),
            "sets": nsets,
            "batch": batch,
        }
        if flops:
            rec["GFLOP/s"] = round(flops / med * 1e-9, 2)
        if nbytes:
            rec["GB/s"] = round(nbytes / med * 1e-9, 2)
        if extra:
            rec.update(extra)
    except Exception as e:  # report and go on: one failing shape must not hide the others
        rec = {"name": name, "impl": name.split("/")[1], "error": f"{type(e).__name__}: {e}"}
    RECORDS.append(rec)
    print(json.dumps(rec), flush=True)


# ---- GEMM -------------------------------------------------------------------------------------

GEMMS = [
    # name, M, N, K, trans_a, trans_b  (row-major, as ember's GemmParams)
    ("4096", 4096, 4096, 4096, False, False),
    ("fc1_fwd_b64", 64, 128, 9216, False, True),
    ("fc1_dx_b64", 64, 9216, 128, False, False),
    ("fc1_dw_b64", 128, 9216, 64, True, False),
    ("fc1_fwd_b1000", 1000, 128, 9216, False, True),
]


def gemm_operands(m, n, k, ta, tb):
    a = rand(k, m) if ta else rand(m, k)   # stored [K,M] when transposed
    b = rand(n, k) if tb else rand(k, n)   # stored [N,K] when transposed
    c = torch.empty(m, n, device=DEV)
    return a, b, c


def op_view(x, t):
    return x.t() if t else x


def check_fp32_gemm():
    """TF32 must be off: a float32 4096 product must match float64 far below tf32's ~3e-4."""
    a, b = rand(4096, 4096), rand(4096, 4096)
    ref = a.double() @ b.double()
    err = ((a @ b).double() - ref).norm() / ref.norm()
    err = float(err)
    print(json.dumps({"check": "fp32 gemm 4096 vs float64", "rel_err": err}), flush=True)
    if not err < 1e-5:
        print(f"WARNING: float32 matmul rel error {err:.3g}: TF32 or another reduced-precision mode "
              "seems to be on", file=sys.stderr)
    return err


def run_gemms():
    for name, m, n, k, ta, tb in GEMMS:
        set_bytes = 4 * (m * k + k * n + m * n)

        def make(m=m, n=n, k=k, ta=ta, tb=tb):
            return gemm_operands(m, n, k, ta, tb)

        def fn(s, ta=ta, tb=tb):
            a, b, c = s
            torch.mm(op_view(a, ta), op_view(b, tb), out=c)

        bench(f"BM_gemm/torch/{name}", make, fn, flops=2.0 * m * n * k, set_bytes=set_bytes)


# ---- convolution --------------------------------------------------------------------------------

def conv_cases():
    for n in (64, 1000):
        yield f"conv1_n{n}", (n, 1, 28, 32), False
        yield f"conv2_n{n}", (n, 32, 26, 64), True


def run_convs():
    ops = ["fwd", "bwd_data", "bwd_weight", "fwd_bwd"]
    for op in ops:
        for name, (n, c, hw, k), input_grad in conv_cases():
            if op == "bwd_data" and not input_grad:
                continue
            pq = hw - 2
            x_e, w_e, y_e = n * c * hw * hw, k * c * 9, n * k * pq * pq
            f = 2.0 * y_e * c * 9
            flops = f * (3 if input_grad else 2) if op == "fwd_bwd" else f
            ws = {"fwd": x_e + w_e + k + y_e, "bwd_data": w_e + y_e + x_e,
                  "bwd_weight": x_e + y_e + w_e + k,
                  "fwd_bwd": x_e + w_e + k + 2 * y_e + (x_e if input_grad else 0) + w_e + k}[op] * 4

            def make(n=n, c=c, hw=hw, k=k, pq=pq):
                return rand(n, c, hw, hw), rand(k, c, 3, 3, lo=-0.5, hi=0.5), rand(k), rand(n, k, pq, pq)

            def fwd(s):
                x, w, b, _ = s
                aten.convolution(x, w, b, [1, 1], [0, 0], [1, 1], False, [0, 0], 1)

            def bwd(s, mask):
                x, w, _, gy = s
                aten.convolution_backward(gy, x, w, [w.shape[0]], [1, 1], [0, 0], [1, 1], False,
                                          [0, 0], 1, mask)

            if op == "fwd":
                fn = fwd
            elif op == "bwd_data":
                def fn(s):
                    bwd(s, [True, False, False])
            elif op == "bwd_weight":
                def fn(s):
                    bwd(s, [False, True, True])
            else:
                def fn(s, input_grad=input_grad):
                    fwd(s)
                    bwd(s, [input_grad, True, True])
            with torch.no_grad():
                bench(f"BM_conv_{op}/torch/{name}", make, fn, flops=flops, set_bytes=ws)


# ---- max_pool2d, log_softmax, SGD ------------------------------------------------------------------

def run_pool():
    for n in (64, 1000):
        inp, out = n * 64 * 24 * 24, n * 64 * 12 * 12

        def make(n=n):
            x = rand(n, 64, 24, 24)
            y, idx = aten.max_pool2d_with_indices(x, [2, 2], [2, 2], [0, 0], [1, 1], False)
            return x, rand(n, 64, 12, 12), idx

        def fwd(s):
            aten.max_pool2d_with_indices(s[0], [2, 2], [2, 2], [0, 0], [1, 1], False)

        def bwd(s):
            x, gy, idx = s
            aten.max_pool2d_with_indices_backward(gy, x, [2, 2], [2, 2], [0, 0], [1, 1], False, idx)

        # the same nominal byte counts as the C++ benchmarks (int32 argmax); PyTorch's index is int64
        sb = 4 * (2 * inp + 3 * out)
        bench(f"BM_max_pool2d_fwd/torch/n{n}", make, fwd, nbytes=4.0 * (inp + 2 * out), set_bytes=sb)
        bench(f"BM_max_pool2d_bwd/torch/n{n}", make, bwd, nbytes=4.0 * (2 * out + inp), set_bytes=sb)


def run_log_softmax():
    for rows in (64, 1000):
        cols = 10

        def make(rows=rows):
            x = rand(rows, cols, lo=-5.0, hi=5.0)
            return x, torch._log_softmax(x, 1, False), rand(rows, cols)

        def fwd(s):
            torch._log_softmax(s[0], 1, False)

        def bwd(s):
            _, y, g = s
            torch._log_softmax_backward_data(g, y, 1, torch.float32)

        sb = 16 * rows * cols
        bench(f"BM_log_softmax_fwd/torch/n{rows}", make, fwd, nbytes=4.0 * rows * cols * 2, set_bytes=sb)
        bench(f"BM_log_softmax_bwd/torch/n{rows}", make, bwd, nbytes=4.0 * rows * cols * 3, set_bytes=sb)


NET_PARAM_SHAPES = [(32, 1, 3, 3), (32,), (64, 32, 3, 3), (64,), (128, 9216), (128,), (10, 128), (10,)]


def run_sgd():
    total = sum(math.prod(s) for s in NET_PARAM_SHAPES)
    variants = [("torch_foreach", {"foreach": True})]
    if "fused" in inspect.signature(torch.optim.SGD).parameters:
        variants.insert(0, ("torch", {"fused": True}))
    else:
        print("note: this PyTorch's SGD has no fused=True: BM_sgd_step/torch is not run", file=sys.stderr)
    for impl, kw in variants:
        def make(kw=kw):
            params = [torch.nn.Parameter(rand(*s)) for s in NET_PARAM_SHAPES]
            for p in params:
                p.grad = rand(*p.shape)
            opt = torch.optim.SGD(params, lr=0.01, momentum=0.5, **kw)
            opt.step()  # creates the momentum buffers: later steps are the timed kind
            return opt

        def fn(opt):
            opt.step()

        with torch.no_grad():
            bench(f"BM_sgd_step/{impl}/mnist_net", make, fn, nbytes=20.0 * total, set_bytes=12 * total,
                  extra={"options": kw})


def main():
    global ARGS
    ARGS = parse_args()
    if not torch.cuda.is_available():
        print("no CUDA device visible to PyTorch", file=sys.stderr)
        return 77
    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.allow_tf32 = False
    torch.backends.cudnn.benchmark = bool(ARGS.cudnn_benchmark)
    torch.manual_seed(0)
    props = torch.cuda.get_device_properties(0)
    info = {"device": props.name, "sms": props.multi_processor_count, "l2_bytes": l2_bytes(),
            "torch": torch.__version__, "cuda": torch.version.cuda,
            "cudnn": torch.backends.cudnn.version(), "cudnn_benchmark": bool(ARGS.cudnn_benchmark)}
    print(json.dumps({"context": info}), flush=True)
    try:
        gemm_err = check_fp32_gemm()
    except Exception as e:  # noqa: BLE001 - reported, not fatal
        gemm_err = None
        print(f"fp32 check failed to run: {e}", file=sys.stderr)
    run_gemms()
    run_convs()
    run_pool()
    run_log_softmax()
    run_sgd()

    print(f"\n{'benchmark':<44} {'median us':>11} {'GFLOP/s':>10} {'GB/s':>9}")
    for r in RECORDS:
        if "error" in r:
            print(f"{r['name']:<44} ERROR {r['error']}")
            continue
        print(f"{r['name']:<44} {r['median_us']:>11.2f} {r.get('GFLOP/s', float('nan')):>10.1f} "
              f"{r.get('GB/s', float('nan')):>9.1f}")
    if ARGS.out:
        with open(ARGS.out, "w") as f:
            json.dump({"context": info, "fp32_gemm_rel_err": gemm_err, "benchmarks": RECORDS}, f, indent=1)
    return 1 if any("error" in r for r in RECORDS) else 0


if __name__ == "__main__":
    sys.exit(main())
