#!/usr/bin/env bash
# Sets up TorchServe, the peer of ember's inference server: .venv-torchserve with torchserve
# and torch-model-archiver from PyPI, PyTorch, and a model archive (build/torchserve/
# model-store/mnist.mar) of bench/serve/torchserve/mnist_handler.py serving the PyTorch twin of
# ember's MNIST net with the weights of an ember model file.
#
#   bench/serve/torchserve_setup.sh MODEL.safetensors [--torch-python PYTHON]
#
# PyTorch: --torch-python names a Python of the same version that already has torch and numpy
# (for example a venv of PyTorch's CPU build); its site-packages are then put on the venv's
# path (a .pth file) instead of downloading torch from PyPI, whose Linux wheel brings CUDA's
# libraries (gigabytes). Needs Java 17 or later (`java`) to run TorchServe.
set -euo pipefail
cd "$(dirname "$0")/../.."
model="" torch_python=""
while [ $# -gt 0 ]; do
  case "$1" in
    --torch-python) torch_python="$2"; shift 2 ;;
    -h|--help) sed -n '2,13p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) model="$1"; shift ;;
  esac
done
[ -n "$model" ] && [ -f "$model" ] || {
  echo "torchserve_setup: give an ember float32 model file (mnist_train's safetensors)" >&2
  exit 2; }
venv=.venv-torchserve
# pyyaml: TorchServe's Python worker imports yaml (ts/utils/util.py) without declaring it.
if ! [ -x "$venv/bin/torchserve" ] || ! "$venv/bin/python" -c "import yaml" 2>/dev/null; then
  python3 -m venv "$venv"
  PIP_DEFAULT_TIMEOUT="${PIP_DEFAULT_TIMEOUT:-30}" "$venv/bin/pip" install -q torchserve \
    torch-model-archiver pyyaml
fi
if ! "$venv/bin/python" -c "import torch, numpy" 2>/dev/null; then
  if [ -n "$torch_python" ]; then
    want=$("$venv/bin/python" -c 'import sys; print(sys.version_info[:2])')
    have=$("$torch_python" -c 'import sys; print(sys.version_info[:2])')
    [ "$want" = "$have" ] || {
      echo "torchserve_setup: $torch_python is Python $have, the venv $want" >&2; exit 2; }
    site=$("$torch_python" -c 'import os, torch; print(os.path.dirname(os.path.dirname(torch.__file__)))')
    vsite=$("$venv/bin/python" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')
    echo "$site" >"$vsite/peer_torch.pth"
  else
    PIP_DEFAULT_TIMEOUT="${PIP_DEFAULT_TIMEOUT:-30}" "$venv/bin/pip" install -q torch numpy
  fi
fi
"$venv/bin/python" -c "import torch, numpy, ts; print('torchserve_setup: torch', torch.__version__)"
command -v java >/dev/null || { echo "torchserve_setup: TorchServe needs java (17+)" >&2; exit 2; }

store=build/torchserve/model-store
mkdir -p "$store"
"$venv/bin/torch-model-archiver" --model-name mnist --version 1.0 --force \
  --serialized-file "$model" --handler bench/serve/torchserve/mnist_handler.py \
  --extra-files scripts/torch_mnist.py --export-path "$store"
echo "torchserve_setup: $store/mnist.mar"
