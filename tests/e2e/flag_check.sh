#!/bin/sh
# flag_check.sh BIN_DIR: the example programs refuse bad flags and unwritable outputs before
# they start work, each with exit status 1 and a message naming the flag. Needs no MNIST: every
# refusal here comes before the data are read (the MNIST folder is pointed at an empty one, so
# a flag that slipped through fails differently and shows). Files go to
# $EMBER_TEST_TMP/flag_check (CTest sets it), else to a temporary folder.
set -eu

. "$(dirname "$0")/common.sh"
e2e_args 1 1 "BIN_DIR (the folder of mnist_train, mnist_infer, ...)" "$@"
bin=$1
e2e_work flag_check
mkdir -p "$work/empty"
export EMBER_DATA="$work/empty"
failures=0

# refused PROGRAM 'MESSAGE' FLAGS...: PROGRAM FLAGS must exit 1 with MESSAGE in its stderr.
refused() {
  prog=$1
  want=$2
  shift 2
  status=0
  "$bin/$prog" "$@" > "$work/out.log" 2> "$work/err.log" || status=$?
  if [ "$status" -ne 1 ] || ! grep -qF -- "$want" "$work/err.log"; then
    echo "FAIL: $prog $*: exit $status, stderr: $(cat "$work/err.log")" >&2
    echo "      expected exit 1 and: $want" >&2
    failures=$((failures + 1))
  fi
}

# Integers: range, overflow, trailing characters, empty; one rule for --threads everywhere.
refused mnist_train "--epochs: 0 is out of range" --epochs 0
refused mnist_train "--epochs: -1 is out of range" --epochs -1
refused mnist_train "--epochs: 99999999999999999999 is out of range" \
  --epochs 99999999999999999999
refused mnist_train "--epochs: '5x' is not an integer" --epochs 5x
refused mnist_train "--epochs: '' is not an integer" --epochs=
refused mnist_train "--epochs: ' 5' is not an integer" --epochs " 5"
refused mnist_train "--limit-train: -5 is out of range" --limit-train -5
refused mnist_train "--step-size: -1 is out of range" --step-size -1
refused mnist_train "--seed: -1 is out of range" --seed -1
refused mnist_train "--batch-size: 0 is out of range" --batch-size 0
refused mnist_train "--cuda-graph: 2 is out of range" --cuda-graph 2
for prog in mnist_train mnist_infer mnist_quantize; do
  refused "$prog" "--threads: -3 is out of range; expected an integer in [0, 1024]" --threads -3
  refused "$prog" "--threads: 1000000 is out of range; expected an integer in [0, 1024]" \
    --threads 1000000
done
refused mnist_infer "--batch-size: 0 is out of range" --batch-size 0
refused mnist_infer "--repeat: 0 is out of range" --repeat 0
refused mnist_quantize "--repeat: 0 is out of range" --repeat 0
refused mnist_quantize "--calibration-batches: 0 is out of range" --calibration-batches 0
refused mnist_export "--opset: 12 is out of range" --opset 12
refused mnist_export "--batch: -1 is out of range" --batch -1
refused mnist_export "--widths: 'x' is not an integer" --widths 4,x,16

# Reals: finite, and in range for what each means.
refused mnist_train "--gamma: 'nan' is not a finite number" --gamma nan
refused mnist_train "--gamma: 1.5 is out of range; expected a number in (0, 1]" --gamma 1.5
refused mnist_train "--gamma: 0 is out of range" --gamma 0
refused mnist_train "--lr: 'inf' is not a finite number" --lr inf
refused mnist_train "--lr: 0 is out of range; expected a number in (0, inf)" --lr 0
refused mnist_train "--lr: -0.1 is out of range" --lr -0.1
refused mnist_train "--lr: '1e999' is not a finite number" --lr 1e999
refused mnist_train "--lr: '0.01x' is not a number" --lr 0.01x
refused mnist_train "--momentum: 1 is out of range; expected a number in [0, 1)" --momentum 1
refused mnist_train "--weight-decay: -1 is out of range" --weight-decay -1

# Other values.
refused mnist_train "--device: expected cpu, cuda or cuda:N" --device gpu
refused mnist_train "--gemm: 'fast' is not custom or cublas" --gemm fast
refused mnist_train "--conv: 'x' is not custom or cudnn" --conv x
refused mnist_train "--nesterov: 'yes' is not true or false" --nesterov=yes
refused mnist_infer "--invert and --no-invert exclude each other" --invert --no-invert

# Output files, checked before any work: a missing folder, a folder, a folder that is a file.
: > "$work/file"
refused mnist_train "--save-model: cannot write '$work/missing/m.safetensors': folder \
'$work/missing' does not exist" --save-model "$work/missing/m.safetensors"
refused mnist_train "--save-model: '$work' is a folder" --save-model "$work"
refused mnist_train "--checkpoint: cannot write '$work/file/c.ckpt': folder '$work/file' is \
not a folder" --checkpoint "$work/file/c.ckpt"
refused mnist_train "--save-model and --checkpoint name the same file" \
  --save-model "$work/same" --checkpoint "$work/same"
refused mnist_train "--metrics: MetricsWriter: cannot create the folder '$work/file'" \
  --metrics "$work/file"
refused mnist_train "--plots: cannot create the folder '$work/file/p'" --plots "$work/file/p"
refused mnist_quantize "--out: '$work' is a folder" --out "$work"
refused mnist_quantize "is the --model file; the int8 model would replace it" \
  --model "$work/file" --out "$work/file"
refused mnist_export "--out: cannot write '$work/missing/m.onnx'" --out "$work/missing/m.onnx"

# --epochs 0 used to "train" and save untrained weights over a trained model: the model stays.
echo "trained" > "$work/model.safetensors"
refused mnist_train "--epochs: 0 is out of range" --epochs 0 --save-model "$work/model.safetensors"
[ "$(cat "$work/model.safetensors")" = "trained" ] || {
  echo "FAIL: --epochs 0 touched the model" >&2
  failures=$((failures + 1))
}

# mnist_quantize given an int8 model says so (a safetensors file with the int8 format's marker;
# 40 bytes of JSON header, no tensors).
printf '\050\000\000\000\000\000\000\000{"__metadata__":{"format":"ember-int8"}}' \
  > "$work/int8.safetensors"
refused mnist_quantize "is already an int8 model" --model "$work/int8.safetensors" \
  --out "$work/q.safetensors"

if [ "$failures" -ne 0 ]; then
  echo "flag_check: $failures failures" >&2
  exit 1
fi
echo "flag_check: OK"
