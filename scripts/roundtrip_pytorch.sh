#!/usr/bin/env bash
# Runs scripts/roundtrip_pytorch.py (the MNIST CNN's round trip between ember and PyTorch, both
# ways, on the real test set) with an interpreter that has PyTorch and safetensors, and
# mnist_infer from the release build. Every flag is passed on; see --help.
#
# Usage: scripts/roundtrip_pytorch.sh --ember-model mnist_cnn.safetensors [--steps 300] ...
# Environment: PYTHON (default .venv-bench/bin/python), EMBER_INFER (default
# build/release/examples/mnist_infer), EMBER_DATA (default data/mnist).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
python="${PYTHON:-.venv-bench/bin/python}"
if ! "$python" -c "import torch, safetensors, numpy" 2>/dev/null; then
  echo "roundtrip_pytorch.sh: '$python' lacks torch, safetensors or numpy (set PYTHON)" >&2
  exit 2
fi
exec "$python" scripts/roundtrip_pytorch.py "$@"
