#!/bin/sh
# bn_fixture_check.sh BN_FIXTURE_TOOL [DATA_DIR]: the PyTorch-trained BatchNorm/AvgPool/GELU
# model (tests/golden/bn_fixture_*.safetensors) exported by ember runs in onnxruntime with
# ember's outputs, and its int8 form loses at most 0.5 points of MNIST test accuracy.
#
# On real MNIST (DATA_DIR, else $EMBER_DATA; exit 77, "skipped", when neither is set) and with
# a Python that imports numpy, safetensors and onnxruntime ($EMBER_PYTHON, else .venv-bench/
# bin/python at the repository root, else python3; exit 77 when none does). The checks and
# their tolerances are in bn_fixture_check.py. About 30 s on 2 cores.
set -eu

. "$(dirname "$0")/common.sh"
e2e_args 1 2 "BN_FIXTURE_TOOL [DATA_DIR]" "$@"
tool=$1
e2e_data "${2:-}"
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)

python=""
for p in "${EMBER_PYTHON:-}" "$root/.venv-bench/bin/python" python3; do
  if [ -n "$p" ] && "$p" -c "import numpy, safetensors, onnxruntime" 2>/dev/null; then
    python=$p
    break
  fi
done
if [ -z "$python" ]; then
  echo "SKIPPED: no Python with numpy, safetensors and onnxruntime (set EMBER_PYTHON)"
  exit 77
fi
e2e_work bn_fixture_check

weights=$root/tests/golden/bn_fixture_weights.safetensors
"$tool" "$weights" "$data" "$work" > "$work/tool.log" 2>&1 ||
  fail "bn_fixture_tool failed: $(cat "$work/tool.log")"
cat "$work/tool.log"
"$python" "$here/bn_fixture_check.py" "$work" "$data" "$root/tests/golden/bn_fixture_io.safetensors"
