#!/bin/sh
# serve_client_check.sh EMBER_SERVE MNIST_TRAIN MNIST_QUANTIZE MNIST_INFER [DATA_DIR]:
# ember_serve answers Triton's Python client (tritonclient.http, a client no one here wrote)
# exactly as mnist_infer answers for the same model files.
#
# On real MNIST (DATA_DIR, else $EMBER_DATA; exit 77, "skipped", when neither is set), a short
# training (1 epoch, 3,000 images) and its int8 form (mnist_quantize) are served together;
# scripts/serve_client_check.py classifies all 10,000 test images through the server for the
# float and the int8 model, in JSON and with the binary tensor extension, as FP32 and as UINT8
# (8 runs, batches of 64, 4 in flight), and 300 PNG files (MNIST's, inverted, twice the size)
# for each model; every class and log-probability must match mnist_infer's (--json
# --predictions; --png for the files). Then SIGTERM: the server exits 0.
# The client's Python is $EMBER_SERVE_PYTHON (scripts/test.sh sets it), else what
# scripts/install_py_serve.sh prints; when it prints no path (offline), exit 77.
# Files go to $EMBER_TEST_TMP/serve_client_check (CTest sets it), else to a temporary folder.
set -eu

. "$(dirname "$0")/common.sh"
. "$(dirname "$0")/serve_common.sh"
e2e_args 4 5 "EMBER_SERVE MNIST_TRAIN MNIST_QUANTIZE MNIST_INFER [DATA_DIR]" "$@"
serve=$1
infer=$4
e2e_data "${5:-}"
root=$(cd "$(dirname "$0")/../.." && pwd)
python=${EMBER_SERVE_PYTHON:-$("$root/scripts/install_py_serve.sh" | tail -n 1)}
if [ -z "$python" ]; then
  echo "SKIPPED: no Python with tritonclient (scripts/install_py_serve.sh printed no path)"
  exit 77
fi
check="$python $root/scripts/serve_client_check.py"
e2e_work serve_client_check

serve_models "$2" "$3"
for m in mnist mnist_int8; do
  "$infer" --model "$work/$m.safetensors" --data "$data" --threads 2 --json --predictions \
    > "$work/ref_$m.json" 2> "$work/infer.err" || fail "mnist_infer $m: $(cat "$work/infer.err")"
done
$check --write-pngs "$work/png" --count 300 --data "$data" > "$work/pngs.log" 2>&1 ||
  fail "serve_client_check.py --write-pngs: $(cat "$work/pngs.log")"
for m in mnist mnist_int8; do
  "$infer" --model "$work/$m.safetensors" --threads 2 --json \
    --png "$(cat "$work/png/png_list.txt")" > "$work/ref_png_$m.json" 2> "$work/infer.err" ||
    fail "mnist_infer --png $m: $(cat "$work/infer.err")"
done

serve_start "$work/serve.log" "$serve" --threads 2 --access-log off \
  --model "mnist=$work/mnist.safetensors,mnist_int8=$work/mnist_int8.safetensors"

runs=0
for m in mnist mnist_int8; do
  for mode in binary json; do
    for dtype in fp32 uint8; do
      $check --url "127.0.0.1:$port" --model "$m" --reference "$work/ref_$m.json" \
        --mode "$mode" --dtype "$dtype" --batch 64 --concurrency 4 --data "$data" \
        > "$work/check.log" 2>&1 || fail "$m, $mode, $dtype: $(cat "$work/check.log")"
      grep -q "^mismatches: 0 classes, 0 log-probabilities" "$work/check.log" ||
        fail "$m, $mode, $dtype: $(cat "$work/check.log")"
      echo "$m $mode $dtype: $(grep '^accuracy\|^throughput' "$work/check.log" | tr '\n' ' ')"
      runs=$((runs + 1))
    done
  done
  $check --url "127.0.0.1:$port" --model "$m" --reference "$work/ref_png_$m.json" \
    --mode binary --dtype png --png-dir "$work/png" --count 300 --batch 50 --data "$data" \
    > "$work/check.log" 2>&1 || fail "$m, binary, png: $(cat "$work/check.log")"
  grep -q "^mismatches: 0 classes, 0 log-probabilities" "$work/check.log" ||
    fail "$m, binary, png: $(cat "$work/check.log")"
  echo "$m binary png: $(grep '^accuracy' "$work/check.log")"
  runs=$((runs + 1))
done

serve_stop
[ "$serve_rc" = 0 ] || fail "ember_serve exited $serve_rc after SIGTERM: $(tail -n 5 "$work/serve.log")"
echo "serve_client_check: OK ($runs runs, no mismatch; SIGTERM: exit 0)"
