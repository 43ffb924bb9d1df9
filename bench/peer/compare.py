#!/usr/bin/env python3
"""Tabulates the runs scripts/bench.sh collected: ember vs PyTorch, median over rounds.

  compare.py DIR   reads DIR/ember_*.json (Google Benchmark JSON, median aggregates) and
                   DIR/torch_*.jsonl (bench/peer/pytorch_mnist.py's JSON lines)

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


def main():
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
