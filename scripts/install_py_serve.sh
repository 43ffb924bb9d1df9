#!/usr/bin/env bash
# Creates .venv-serve, the Python the serving checks use as a client no one here wrote:
# Triton's Python client (tritonclient[http], which talks KServe v2 over HTTP, binary tensor
# data included) and numpy. scripts/serve_client_check.py and bench/serve/make_bodies.py run
# in it. Prints the interpreter's path last. Offline, it says so and exits 0 without printing
# a path: the checks that need it then report themselves skipped.
#
#   scripts/install_py_serve.sh          # -> .venv-serve/bin/python
set -euo pipefail
cd "$(dirname "$0")/.."
venv=.venv-serve
need="import numpy, tritonclient.http"
if [ -x "$venv/bin/python" ] && "$venv/bin/python" -c "$need" 2>/dev/null; then
  echo "$PWD/$venv/bin/python"
  exit 0
fi
if ! python3 -m venv --help >/dev/null 2>&1; then
  echo "install_py_serve: python3 has no venv module; the Triton client checks will be skipped" >&2
  exit 0
fi
if ! python3 -m venv "$venv"; then
  echo "install_py_serve: python3 -m venv failed; the Triton client checks will be skipped" >&2
  exit 0
fi
# PIP_DEFAULT_TIMEOUT bounds each network wait, so an unreachable index fails in seconds.
if ! PIP_DEFAULT_TIMEOUT="${PIP_DEFAULT_TIMEOUT:-30}" "$venv/bin/pip" install -q \
    numpy "tritonclient[http]"; then
  echo "install_py_serve: could not install numpy and tritonclient[http] from PyPI; the Triton client checks will be skipped" >&2
  exit 0
fi
if ! "$venv/bin/python" -c "$need"; then
  echo "install_py_serve: tritonclient.http does not import in $venv; the Triton client checks will be skipped" >&2
  exit 0
fi
echo "$PWD/$venv/bin/python"
