#!/usr/bin/env bash
# Builds ember's CPU benchmarks (Release) and compares the MNIST CNN's training step and
# evaluation with PyTorch's, running ember and PyTorch alternately for several rounds so
# that machine noise hits both alike. Prints a table of medians and ember / PyTorch.
#
# Usage: scripts/bench.sh [--rounds N] [--threads N] [--kernels] [--layers] [--layers-only]
#                         [--keep DIR]
#   --rounds N    ember, torch, ember, torch, ... N rounds each (default 3)
#   --threads N   threads for both (default $EMBER_THREADS or 2)
#   --kernels     also run every per-layer benchmark, once each, after the rounds
#   --layers      also bench_layers (batch_norm, avg_pool2d, the activations) against
#                 bench/peer/pytorch_layers.py on 1 and 2 threads, N rounds each
#   --layers-only only that
#   --keep DIR    keep the raw results (Google Benchmark JSON, JSON lines) in DIR; every
#                 result file already there is tabulated too, so use a new directory
# Environment: PYTHON (default .venv-bench/bin/python), BUILD_DIR (default build-bench);
# OMP_WAIT_POLICY=PASSIVE stops PyTorch's idle OpenMP threads spinning, which on a busy
# machine costs it a scheduler time slice per parallel region (the table notes it).
# docs/performance.md explains what is measured and shows a run.
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."
rounds=3
threads="${EMBER_THREADS:-2}"
kernels=0
layers=0
net=1
keep=""
while [[ $# -gt 0 ]]; do
  case "$1" in
    --rounds) rounds="$2"; shift 2 ;;
    --threads) threads="$2"; shift 2 ;;
    --kernels) kernels=1; shift ;;
    --layers) layers=1; shift ;;
    --layers-only) layers=1; net=0; shift ;;
    --keep) keep="$2"; shift 2 ;;
    -h|--help) sed -n '2,19p' "$0"; exit 0 ;;
    *) echo "bench.sh: unknown argument '$1' (see --help)" >&2; exit 2 ;;
  esac
done

build="${BUILD_DIR:-build-bench}"
python="${PYTHON:-.venv-bench/bin/python}"

cmake -S . -B "$build" -DCMAKE_BUILD_TYPE=Release -DEMBER_BUILD_TESTS=OFF \
  -DEMBER_BUILD_EXAMPLES=OFF >/dev/null
targets=(bench_mnist)
[[ $layers == 1 ]] && targets+=(bench_layers)
cmake --build "$build" --target "${targets[@]}" -j2
bench="$build/bench/bench_mnist"

have_torch=1
if [[ ! -x "$python" ]] || ! "$python" -c "import torch" 2>/dev/null; then
  have_torch=0
  cat >&2 <<EOF
bench.sh: no PyTorch at '$python'; running ember alone. To compare, create the venv:
  python3 -m venv .venv-bench && .venv-bench/bin/pip install torch numpy
EOF
fi

if [[ -n "$keep" ]]; then
  mkdir -p "$keep"
  out="$keep"
else
  out="$(mktemp -d)"
  trap 'rm -rf "$out"' EXIT
fi

# run_ember PREFIX FILTER [PROGRAM [THREADS]]: PREFIX.json gets the results; the console output
# goes to PREFIX.log, shown only if the run fails.
run_ember() {
  if ! "${3:-$bench}" --threads="${4:-$threads}" --benchmark_filter="$2" --benchmark_out="$1.json" \
      --benchmark_out_format=json >"$1.log" 2>&1; then
    cat "$1.log" >&2
    exit 1
  fi
}

echo "threads $threads, $rounds round(s); load before: $(cut -d' ' -f1-3 /proc/loadavg)"
for ((r = 1; r <= rounds * net; ++r)); do
  echo "round $r/$rounds: ember (load $(cut -d' ' -f1 /proc/loadavg))"
  run_ember "$out/ember_$r" '^BM_(TrainStep|Eval)/'
  if [[ $have_torch == 1 ]]; then
    echo "round $r/$rounds: PyTorch (load $(cut -d' ' -f1 /proc/loadavg))"
    "$python" bench/peer/pytorch_mnist.py --threads "$threads" >"$out/torch_$r.jsonl"
  fi
done
if [[ $kernels == 1 ]]; then
  echo "kernels: ember"
  run_ember "$out/ember_kernels" '^BM_(Conv|Fc1|MaxPool2d|Gemm)'
  if [[ $have_torch == 1 ]]; then
    echo "kernels: PyTorch"
    "$python" bench/peer/pytorch_mnist.py --threads "$threads" --kernels \
      --skip train_step,eval >"$out/torch_kernels.jsonl"
  fi
fi
if [[ $layers == 1 ]]; then
  # the layer set on 1 and 2 threads, ember and PyTorch alternately at each thread count
  for t in 1 2; do
    for ((r = 1; r <= rounds; ++r)); do
      echo "layers, $t thread(s), round $r/$rounds: ember (load $(cut -d' ' -f1 /proc/loadavg))"
      run_ember "$out/layers_ember_t${t}_$r" '.' "$build/bench/bench_layers" "$t"
      if [[ $have_torch == 1 ]]; then
        echo "layers, $t thread(s), round $r/$rounds: PyTorch (load $(cut -d' ' -f1 /proc/loadavg))"
        "$python" bench/peer/pytorch_layers.py --threads "$t" >"$out/layers_torch_t${t}_$r.jsonl"
      fi
    done
  done
fi
echo "load after: $(cut -d' ' -f1-3 /proc/loadavg)"
echo
[[ $net == 1 ]] && python3 bench/peer/compare.py "$out"
[[ $layers == 1 ]] && python3 bench/peer/compare.py --layers "$out"
exit 0
