#!/usr/bin/env bash
# Exports a trained MNIST model with mnist_export and checks the ONNX file with
# scripts/check_onnx.py (onnx checker and shape inference, then onnxruntime against PyTorch on
# the MNIST test set). Not part of the default test run.
#
# Usage: scripts/check_onnx.sh [model.safetensors [out.onnx]]   (extra flags: CHECK_ONNX_ARGS)
# Environment: PYTHON (default .venv-bench/bin/python), EMBER_EXPORT (default
# build/release/examples/mnist_export), EMBER_DATA (default data/mnist).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
python="${PYTHON:-.venv-bench/bin/python}"
exporter="${EMBER_EXPORT:-build/release/examples/mnist_export}"
model="${1:-build/mnist_cnn.safetensors}"
out="${2:-build/mnist_cnn.onnx}"
if ! "$python" -c "import onnx, onnxruntime, torch, safetensors, numpy" 2>/dev/null; then
  echo "check_onnx.sh: '$python' lacks onnx, onnxruntime, torch, safetensors or numpy" \
       "(set PYTHON)" >&2
  exit 2
fi
if [ ! -x "$exporter" ]; then
  echo "check_onnx.sh: no exporter at '$exporter' (set EMBER_EXPORT)" >&2
  exit 2
fi
"$exporter" --model "$model" --out "$out"
# shellcheck disable=SC2086
exec "$python" scripts/check_onnx.py --onnx "$out" --model "$model" ${CHECK_ONNX_ARGS:-}
