#!/bin/sh
# fashion_check.sh FASHION_TRAIN [DATA_DIR]: fashion_train runs end to end on real
# Fashion-MNIST: trains, evaluates, saves the model, exports ONNX and quantizes to int8; and
# refuses bad flags before any work (that part needs no data).
#
# The data: DATA_DIR, else $EMBER_FASHION_DATA, else /usr/share/datasets/fashion-mnist (Debian's
# dataset-fashion-mnist, which scripts/install_deps.sh installs); exit 77, "skipped", when none
# is there. A short run (3,000 training images, 2 epochs, 2 threads; about 20 s on 2 cores) must
# reach more than 70% test accuracy (chance is 10%; such a run got 78.02%), write the three
# files, and give an int8 model within 2 points of the float one. With a Python that imports
# numpy and onnxruntime ($EMBER_PYTHON, else .venv-bench/bin/python at the repository root, else
# python3), the ONNX file must also classify the test set as the float model does (within 0.1
# points). Files go to $EMBER_TEST_TMP/fashion_check (CTest sets it), else a temporary folder.
set -eu

. "$(dirname "$0")/common.sh"
e2e_args 1 2 "FASHION_TRAIN [DATA_DIR]" "$@"
train=$1
e2e_work fashion_check

# First, with or without the data: bad settings are refused before any work, exit status 1
# and a message naming the flag (the data folder given is empty: a flag that slipped through
# fails differently and shows).
mkdir -p "$work/empty"
refused() {  # refused 'MESSAGE' FLAGS...
  want=$1
  shift
  status=0
  "$train" --data "$work/empty" "$@" > "$work/out.log" 2> "$work/err.log" || status=$?
  if [ "$status" -ne 1 ] || ! grep -qF -- "$want" "$work/err.log"; then
    fail "fashion_train $*: exit $status, stderr: $(cat "$work/err.log");" \
      "expected exit 1 and: $want"
  fi
}
refused "--epochs: 0 is out of range" --epochs 0
refused "--warmup-epochs 3 leaves no epoch for the cosine decay of --epochs 3" \
  --epochs 3 --warmup-epochs 3
refused "--lr: 0 is out of range" --lr 0
refused "--val-size: 60000 is out of range" --val-size 60000
refused "--onnx: cannot write '$work/missing/m.onnx'" --onnx "$work/missing/m.onnx"
refused "installs it in /usr/share/datasets/fashion-mnist" --save-model '' --onnx '' --int8 ''

data=${2:-${EMBER_FASHION_DATA:-/usr/share/datasets/fashion-mnist}}
if [ ! -e "$data/t10k-labels-idx1-ubyte.gz" ] && [ ! -e "$data/t10k-labels-idx1-ubyte" ]; then
  echo "SKIPPED: no Fashion-MNIST in '$data' (install dataset-fashion-mnist, or give DATA_DIR)"
  exit 77
fi
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)

"$train" --data "$data" --max-train 3000 --epochs 2 --warmup-epochs 0 --threads 2 \
  --save-model "$work/model.safetensors" --onnx "$work/model.onnx" \
  --int8 "$work/int8.safetensors" --metrics "$work/metrics" > "$work/train.log" 2>&1 ||
  fail "fashion_train failed (see $work/train.log)"
cat "$work/train.log"

for file in model.safetensors model.onnx int8.safetensors; do
  [ -s "$work/$file" ] || fail "fashion_train did not write $file"
done
grep -q "^Epoch 2: " "$work/train.log" || fail "no report of epoch 2"

# --metrics: a train and a validation record per epoch, then the test record, in both files;
# the test record's accuracy is the printed one; the confusion matrix counts the 10,000 test
# images with its trace the printed number correct, under Fashion-MNIST's class names.
[ "$(cut -d, -f3 "$work/metrics/metrics.csv" | tr '\n' ' ')" = "split train val train val test " ] ||
  fail "metrics.csv holds the splits: $(cut -d, -f3 "$work/metrics/metrics.csv" | tr '\n' ' ')"
[ "$(wc -l < "$work/metrics/metrics.jsonl")" -eq 5 ] || fail "metrics.jsonl: not 5 records"
printed=$(sed -n 's/^Test set: .*Accuracy: \([0-9]*\)\/10000 (\([0-9.]*\)%).*/\1 \2/p' "$work/train.log")
python3 - "$work/metrics" $printed <<'PY' || fail "metrics and confusion.csv disagree with the log"
import csv, json, sys
folder, correct, acc = sys.argv[1], int(sys.argv[2]), float(sys.argv[3])
test = [json.loads(l) for l in open(f"{folder}/metrics.jsonl")][-1]
assert test["split"] == "test" and abs(test["accuracy"] - acc) < 0.006, test
rows = list(csv.reader(open(f"{folder}/confusion.csv")))
assert rows[0][1] == "T-shirt/top" and rows[10][0] == "Ankle boot", rows[0]
counts = [[int(v) for v in r[1:]] for r in rows[1:]]
assert sum(map(sum, counts)) == 10000 and sum(counts[i][i] for i in range(10)) == correct
PY

# percent LINE_PREFIX: the accuracy in percent on the log's line that starts with LINE_PREFIX.
percent() {
  grep "^$1" "$work/train.log" | sed -n 's/.*Accuracy: [0-9]*\/[0-9]* (\([0-9.]*\)%).*/\1/p'
}
float_acc=$(percent "Test set:")
int8_acc=$(percent "int8 test set:")
if [ -z "$float_acc" ] || [ -z "$int8_acc" ]; then fail "no test accuracy in the log"; fi
awk -v f="$float_acc" -v q="$int8_acc" 'BEGIN { exit !(f > 70 && q > f - 2) }' ||
  fail "test accuracy $float_acc% (float), $int8_acc% (int8): expected > 70%, int8 within 2 points"
echo "fashion_check: test accuracy $float_acc% (float), $int8_acc% (int8)"

python=""
for p in "${EMBER_PYTHON:-}" "$root/.venv-bench/bin/python" python3; do
  if [ -n "$p" ] && "$p" -c "import numpy, onnxruntime" 2>/dev/null; then
    python=$p
    break
  fi
done
if [ -z "$python" ]; then
  echo "fashion_check: no Python with numpy and onnxruntime; the ONNX file was not run"
  exit 0
fi
onnx_acc=$("$python" - "$work/model.onnx" "$data" <<'PY'
import gzip, os, sys
import numpy as np
import onnxruntime as ort

model, data = sys.argv[1], sys.argv[2]
def idx(name):
    path = os.path.join(data, name)
    raw = open(path, "rb").read() if os.path.exists(path) else gzip.open(path + ".gz").read()
    ndim = raw[3]
    dims = [int.from_bytes(raw[4 + 4 * i:8 + 4 * i], "big") for i in range(ndim)]
    return np.frombuffer(raw, np.uint8, offset=4 + 4 * ndim).reshape(dims)
x = ((idx("t10k-images-idx3-ubyte").astype(np.float32) / 255 - np.float32(0.2860))
     / np.float32(0.3530))[:, None]
y = idx("t10k-labels-idx1-ubyte")
sess = ort.InferenceSession(model, providers=["CPUExecutionProvider"])
out = sess.run(None, {sess.get_inputs()[0].name: x})[0]
print("%.2f" % (100.0 * (out.argmax(1) == y).mean()))
PY
) || fail "onnxruntime could not run $work/model.onnx"
echo "fashion_check: onnxruntime's test accuracy of the ONNX file: $onnx_acc%"
awk -v f="$float_acc" -v o="$onnx_acc" 'BEGIN { d = f - o; exit !(d <= 0.1 && d >= -0.1) }' ||
  fail "the ONNX file's test accuracy $onnx_acc% differs from the float model's $float_acc%"
