#!/usr/bin/env python3
"""Tabulates the runs scripts/bench.sh collected: ember vs PyTorch, median over rounds.

  compare.py DIR   reads DIR/ember_*.json (Google Benchmark JSON, median aggregates) and
                   DIR/torch_*.jsonl (bench/peer/pytorch_mnist.py's JSON lines)
  compare.py --layers DIR
                   reads DIR/layers_ember_t<T>_*.json (bench_layers) and
                   DIR/layers_torch_t<T>_*.jsonl (pytorch_layers.py) for T = 1, 2: one row per
                   layer benchmark, ember and PyTorch ms and ember / PyTorch on each thread count

Each round gives one median per benchmark (of its 5 repetitions); the table shows the median
of those per-round medians, the per-round values, and ember / PyTorch (below 1: ember faster).
Standard library only, so the system python3 runs it.
"""

import glob
import json
import os
import statistics
import sys

# ember's benchmark (name before "/min_time") -> the PyTorch peer's name, and the row label.
ROWS = [
    ("BM_TrainStep", "train_step", "train step, batch 64"),
    ("BM_Eval", "eval", "eval forward, batch 1000"),
    ("BM_ConvForward/conv1", "conv1_forward", "conv1 forward"),
    ("BM_ConvForwardBackward/conv1", "conv1_forward_backward", "conv1 forward+backward"),
    ("BM_ConvForward/conv2", "conv2_forward", "conv2 forward"),
    ("BM_ConvForwardBackward/conv2", "conv2_forward_backward", "conv2 forward+backward"),
    ("BM_Fc1Forward", None, "fc1 forward"),
    ("BM_Fc1ForwardBackward", "fc1_forward_backward", "fc1 forward+backward"),
    ("BM_MaxPool2d/backward:0", "max_pool2d_forward", "max_pool2d forward"),
    ("BM_MaxPool2d/backward:1", None, "max_pool2d forward+backward"),
    ("BM_Gemm/M:64/N:576/K:288/threads:1", None, "GEMM 64x576x288, 1 thread"),
    ("BM_Gemm/M:64/N:576/K:288/threads:0", "gemm_64x576x288", "GEMM 64x576x288"),
    ("BM_Gemm/M:512/N:512/K:512/threads:0", "gemm_512x512x512", "GEMM 512x512x512"),
]

# bench_layers.cpp's benchmark -> pytorch_layers.py's, and the row label; x is (64, 64, 24, 24).
LAYER_ROWS = [
    ("BM_BatchNorm2d/train", "batch_norm2d_train", "batch_norm train, fwd+bwd"),
    ("BM_BatchNorm2d/eval", "batch_norm2d_eval", "batch_norm eval, fwd"),
    ("BM_AvgPool2d", "avg_pool2d", "avg_pool2d 2x2, fwd+bwd"),
] + [(f"BM_Activation/{a}", f"act_{a}", f"{a}{' (dim 1)' if 'softmax' in a else ''}, fwd+bwd")
     for a in ("sigmoid", "tanh", "gelu", "silu", "leaky_relu", "elu", "softmax", "log_softmax")] + [
    ("BM_Bmm", "bmm", "bmm (64, 49, 64) @ (64, 64, 49), fwd+bwd"),
    ("BM_OptimStep/adam", "optim_adam", "Adam step, MNIST net (1.2 M parameters)"),
    ("BM_OptimStep/adamw", "optim_adamw", "AdamW step, MNIST net"),
    ("BM_OptimStep/sgd_momentum", "optim_sgd_momentum", "SGD momentum step, MNIST net"),
]
LAYER_THREADS = (1, 2)

TO_MS = {"ns": 1e-6, "us": 1e-3, "ms": 1.0, "s": 1e3}


def read_ember(path):
    """{name: (ms, gflops or None)} from the median aggregates of one Google Benchmark run."""
    with open(path) as f:
        doc = json.load(f)
    out = {}
    for b in doc.get("benchmarks", []):
        if b.get("aggregate_name") != "median":
            continue
        name = b["run_name"].split("/min_time")[0]
        ms = b["real_time"] * TO_MS[b.get("time_unit", "ns")]
        flops = b.get("FLOP/s")
        out[name] = (ms, flops / 1e9 if flops else None)
    return out, doc.get("context", {})


def read_torch(path):
    out, version = {}, None
    with open(path) as f:
        for line in f:
            line = line.strip()
            if not line.startswith("{"):
                continue
            r = json.loads(line)
            out[r["bench"]] = (r["median_ms"], r.get("gflops"))
            version = f'{r["version"]}, {r["threads"]} threads'
            if r.get("omp_wait_policy", "default") != "default":
                version += f', OMP_WAIT_POLICY={r["omp_wait_policy"]}'
    return out, version


def median_over_rounds(runs, key):
    ms = [r[key][0] for r in runs if key in r]
    gf = [r[key][1] for r in runs if key in r and r[key][1]]
    if not ms:
        return None
    return statistics.median(ms), (statistics.median(gf) if gf else None), ms


def fmt_ms(v):
    return f"{v:.3f}" if v < 1 else (f"{v:.2f}" if v < 100 else f"{v:.1f}")


def read_ember_cpu(path):
    """{name: median CPU ms (this process, all threads)} of one Google Benchmark run."""
    with open(path) as f:
        doc = json.load(f)
    return {b["run_name"].split("/min_time")[0]: b["cpu_time"] * TO_MS[b.get("time_unit", "ns")]
            for b in doc.get("benchmarks", []) if b.get("aggregate_name") == "median"}


def read_torch_cpu(path):
    with open(path) as f:
        rows = [json.loads(line) for line in f if line.strip().startswith("{")]
    return {r["bench"]: r["median_cpu_ms"] for r in rows if "median_cpu_ms" in r}


def layers_table(d):
    """The layer benchmarks: per thread count, the median over rounds of ember's and PyTorch's
    wall-clock ms, their ratio, and the ratio of their CPU times (process, all threads)."""
    runs, version = {}, None
    for t in LAYER_THREADS:
        ember_files = sorted(glob.glob(os.path.join(d, f"layers_ember_t{t}_*.json")))
        torch_files = sorted(glob.glob(os.path.join(d, f"layers_torch_t{t}_*.jsonl")))
        torch_runs = []
        for p in torch_files:
            run, v = read_torch(p)
            torch_runs.append(run)
            version = v.split(",")[0] if v else version
        runs[t] = ([read_ember(p)[0] for p in ember_files], torch_runs,
                   [read_ember_cpu(p) for p in ember_files],
                   [read_torch_cpu(p) for p in torch_files])
    rounds = ", ".join(f"{t} thread(s): ember {len(runs[t][0])}, PyTorch {len(runs[t][1])}"
                       for t in LAYER_THREADS)
    print(f"layers on x (64, 64, 24, 24) float, rounds {rounds}"
          + (f"; PyTorch {version}" if version else ""))
    head = " | ".join(f"ember ms {t}T | PyTorch ms {t}T | ember / PyTorch {t}T "
                      f"| CPU time ratio {t}T" for t in LAYER_THREADS)
    print(f"| benchmark | {head} |")
    print("|---|" + "---:|" * (4 * len(LAYER_THREADS)))

    def cpu_median(runs_cpu, key):
        v = [r[key] for r in runs_cpu if key in r]
        return statistics.median(v) if v else None

    for ember_key, torch_key, label in LAYER_ROWS:
        cells = [label]
        for t in LAYER_THREADS:
            e_runs, t_runs, e_cpu, t_cpu = runs[t]
            e = median_over_rounds(e_runs, ember_key)
            tv = median_over_rounds(t_runs, torch_key)
            ec, tc = cpu_median(e_cpu, ember_key), cpu_median(t_cpu, torch_key)
            cells += [fmt_ms(e[0]) if e else "", fmt_ms(tv[0]) if tv else "",
                      f"{e[0] / tv[0]:.2f}" if e and tv else "",
                      f"{ec / tc:.2f}" if ec and tc else ""]
        print("| " + " | ".join(cells) + " |")


def main():
    if len(sys.argv) == 3 and sys.argv[1] == "--layers":
        layers_table(sys.argv[2])
        return
    if len(sys.argv) != 2:
        sys.exit(__doc__)
    d = sys.argv[1]
    ember_runs, torch_runs, context, version = [], [], {}, None
    for p in sorted(glob.glob(os.path.join(d, "ember_*.json"))):
        run, context = read_ember(p)
        ember_runs.append(run)
    for p in sorted(glob.glob(os.path.join(d, "torch_*.jsonl"))):
        run, v = read_torch(p)
        torch_runs.append(run)
        version = v or version

    def rounds(runs, key):
        return sum(1 for r in runs if key in r)

    print(f"ember: {rounds(ember_runs, 'BM_TrainStep')} round(s), "
          f"{context.get('ember_threads', '?')} threads; PyTorch: "
          f"{rounds(torch_runs, 'train_step')} round(s)" + (f", {version}" if version else ""))
    print("| benchmark | ember ms | ember GFLOP/s | PyTorch ms | PyTorch GFLOP/s "
          "| ember / PyTorch | ember per round | PyTorch per round |")
    print("|---|---:|---:|---:|---:|---:|---|---|")
    for ember_key, torch_key, label in ROWS:
        e = median_over_rounds(ember_runs, ember_key)
        t = median_over_rounds(torch_runs, torch_key) if torch_key else None
        if e is None and t is None:
            continue
        cells = [label]
        cells += [fmt_ms(e[0]), f"{e[1]:.1f}" if e and e[1] else ""] if e else ["", ""]
        cells += [fmt_ms(t[0]), f"{t[1]:.1f}" if t[1] else ""] if t else ["", ""]
        cells.append(f"{e[0] / t[0]:.2f}" if e and t else "")
        cells.append(" ".join(fmt_ms(v) for v in e[2]) if e else "")
        cells.append(" ".join(fmt_ms(v) for v in t[2]) if t else "")
        print("| " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main()
