#!/usr/bin/env bash
# Creates .venv-test, the Python the tests use as a peer: onnxruntime (runs ember's ONNX
# exports), numpy and safetensors (read the fixtures). PyTorch is not needed by any test (its
# numbers are committed as goldens). Prints the interpreter's path last. Offline, it says so
# and exits 0: the tests that need it then report themselves skipped.
#
#   scripts/install_py.sh            # -> .venv-test/bin/python
set -euo pipefail
cd "$(dirname "$0")/.."
venv=.venv-test
need="import numpy, safetensors, onnxruntime"
if [ -x "$venv/bin/python" ] && "$venv/bin/python" -c "$need" 2>/dev/null; then
  echo "$PWD/$venv/bin/python"
  exit 0
fi
if ! python3 -m venv --help >/dev/null 2>&1; then
  echo "install_py: python3 has no venv module; the onnxruntime checks will be skipped" >&2
  exit 0
fi
if ! python3 -m venv "$venv"; then
  echo "install_py: python3 -m venv failed; the onnxruntime checks will be skipped" >&2
  exit 0
fi
if ! "$venv/bin/pip" install -q numpy safetensors onnxruntime; then
  echo "install_py: could not install numpy, safetensors and onnxruntime from PyPI; the onnxruntime checks will be skipped" >&2
  exit 0
fi
echo "$PWD/$venv/bin/python"
