#!/bin/sh
# metrics_check.sh MNIST_TRAIN MNIST_INFER [DATA_DIR]: `mnist_train --metrics DIR --plots DIR`
# writes the run's records, its confusion matrix and its plots, and mnist_infer's per-class
# table and confusion matrix agree with them.
#
# On real MNIST (DATA_DIR, else $EMBER_DATA; exit 77, "skipped", when neither is set), 2 epochs
# on 2,500 training images, 500 validation and the first 1,000 test images, a record every 10
# steps:
#   metrics.csv has the 8 columns, steps that never decrease, step records between the epochs'
#   and a train, val and test record after each epoch; metrics.jsonl holds the same records;
#   the last test record's accuracy is the one printed; confusion.csv sums to the 1,000 test
#   images and its trace is the printed number of correct predictions; mnist_infer on the same
#   1,000 images with the saved model gives the same matrix and per-class counts (--json);
#   --plots drew loss, accuracy and confusion as PNG and SVG (skipped, with a message, where
#   the plot Python has no matplotlib), and a plot Python that does not exist is reported
#   without failing the run. The JSON checks need python3 (skipped with a message without).
# Files go to $EMBER_TEST_TMP/metrics_check (CTest sets it), else to a temporary folder.
set -eu

. "$(dirname "$0")/common.sh"
e2e_args 2 3 "MNIST_TRAIN MNIST_INFER [DATA_DIR]" "$@"
train=$1
infer=$2
e2e_data "${3:-}"
e2e_work metrics_check

"$train" --data "$data" --limit-train 3000 --val-size 500 --limit-test 1000 --threads 2 \
  --epochs 2 --log-interval 10 --metrics "$work/m" --plots "$work/p" \
  --save-model "$work/model.safetensors" > "$work/train.log" 2>&1 ||
  fail "mnist_train failed (see $work/train.log)"

csv=$work/m/metrics.csv
for file in metrics.csv metrics.jsonl confusion.csv; do
  [ -s "$work/m/$file" ] || fail "--metrics: no $file in $work/m"
done
[ "$(head -n 1 "$csv")" = "step,epoch,split,loss,lr,accuracy,images_per_s,wall_s" ] ||
  fail "metrics.csv header: $(head -n 1 "$csv")"

# Every row: 8 fields, a step that never decreases, a known split, a loss and accuracy; train
# records an lr. 2,500 images are 40 steps an epoch: records at steps 10, 20, 30, then 40 for
# the epoch (train, val, test), the same again up to 80.
summary=$(awk -F, 'NR > 1 {
    if (NF != 8) { print "line " NR " has " NF " fields"; exit }
    if ($1 + 0 < last) { print "step " $1 " after " last " at line " NR; exit }
    last = $1 + 0
    if ($3 != "train" && $3 != "val" && $3 != "test") { print "split " $3; exit }
    if ($4 == "" || $6 == "" || $8 == "") { print "missing loss/accuracy/wall_s: " $0; exit }
    if ($3 == "train" && $5 == "") { print "train record without lr: " $0; exit }
    rows = rows " " $1 ":" $3 ":" $2
  } END { print rows }' "$csv")
want=" 10:train:0.25 20:train:0.5 30:train:0.75 40:train:1 40:val:1 40:test:1 50:train:1.25\
 60:train:1.5 70:train:1.75 80:train:2 80:val:2 80:test:2"
[ "$summary" = "$want" ] || fail "metrics.csv records (step:split:epoch):
  got: $summary
 want: $want"

# The last test record against the printed result.
printed=$(grep "^Test set:" "$work/train.log" | tail -n 1)
correct=$(echo "$printed" | sed -n 's/.*Accuracy: \([0-9]*\)\/1000 .*/\1/p')
percent=$(echo "$printed" | sed -n 's/.*(\([0-9.]*\)%).*/\1/p')
[ -n "$correct" ] || fail "no test result in the log: $printed"
recorded=$(awk -F, '$3 == "test" { a = $6 } END { printf "%.2f", a }' "$csv")
[ "$recorded" = "$percent" ] || fail "last test record: accuracy $recorded, printed $percent"

# The confusion matrix: a header and 10 rows of 10 counts; sum 1000, trace the correct ones.
read_matrix=$(awk -F, 'NR > 1 { if (NF != 11) bad = 1; for (p = 2; p <= 11; ++p) {
    sum += $p; if (p - 2 == NR - 2) trace += $p } rows++ }
    END { print (bad || rows != 10) ? "bad" : sum " " trace }' "$work/m/confusion.csv")
[ "$read_matrix" = "1000 $correct" ] ||
  fail "confusion.csv: sum and trace '$read_matrix', want '1000 $correct'"

if command -v python3 > /dev/null; then
  # metrics.jsonl: the same records as metrics.csv, value for value; mnist_infer's matrix.
  "$infer" --model "$work/model.safetensors" --data "$data" --idx-range 0:1000 --threads 2 \
    --json --confusion > "$work/infer.json" 2> "$work/infer.err" ||
    fail "mnist_infer failed: $(cat "$work/infer.err")"
  python3 - "$work/m" "$work/infer.json" <<'EOF' || fail "metrics.jsonl or mnist_infer's JSON"
import csv, json, math, sys
d = sys.argv[1]
rows = list(csv.DictReader(open(d + "/metrics.csv")))
lines = [json.loads(l) for l in open(d + "/metrics.jsonl")]
assert len(rows) == len(lines), (len(rows), len(lines))
for r, j in zip(rows, lines):
    assert list(j) == list(r), (list(j), list(r))
    assert j["step"] == int(r["step"]) and j["split"] == r["split"], (r, j)
    for k in ["epoch", "loss", "lr", "accuracy", "images_per_s", "wall_s"]:
        assert (j[k] is None) == (r[k] == ""), (k, r, j)
        assert j[k] is None or j[k] == float(r[k]), (k, r, j)
m = [[int(c) for c in row[1:]] for row in list(csv.reader(open(d + "/confusion.csv")))[1:]]
e = json.load(open(sys.argv[2]))["eval"]
assert e["confusion"] == m, ("mnist_infer's matrix differs", e["confusion"], m)
for c, pc in enumerate(e["per_class"]):
    assert pc["class"] == c and pc["count"] == sum(m[c]) and pc["correct"] == m[c][c], pc
assert sum(pc["correct"] for pc in e["per_class"]) == e["correct"]
EOF
else
  echo "metrics_check: no python3: metrics.jsonl and mnist_infer's JSON not checked"
fi

# The plots, where the plot Python has matplotlib.
python=${EMBER_PLOT_PYTHON:-/usr/bin/python3}
if "$python" -c 'import matplotlib' > /dev/null 2>&1; then
  for name in loss accuracy confusion; do
    for ext in png svg; do
      [ -s "$work/p/$name.$ext" ] || fail "--plots: no $name.$ext"
    done
    [ "$(head -c 8 "$work/p/$name.png" | od -An -c | tr -d ' ')" = "211PNG\r\n032\n" ] ||
      fail "$name.png is not a PNG file"
    grep -q "<svg" "$work/p/$name.svg" || fail "$name.svg is not an SVG file"
  done
  grep -q "^Plots: $work/p/" "$work/train.log" || fail "mnist_train did not say where the plots are"
else
  echo "metrics_check: SKIPPED the plots: $python has no matplotlib"
fi

# A plot that cannot be drawn is reported, and the run still succeeds with its metrics.
EMBER_PLOT_PYTHON=$work/no-such-python "$train" --data "$data" --limit-train 600 --val-size 100 \
  --limit-test 100 --threads 2 --epochs 1 --log-interval 0 --plots "$work/q" --save-model '' \
  > "$work/noplot.log" 2>&1 || fail "a failed plot failed the run (see $work/noplot.log)"
grep -q "mnist_train: --plots: cannot run $work/no-such-python" "$work/noplot.log" ||
  fail "the failed plot was not reported (see $work/noplot.log)"
[ "$(grep -c ',val,\|,test,' "$work/q/metrics.csv")" = 2 ] ||
  fail "--plots without --metrics did not write the records into its folder"

echo "metrics_check: OK ($printed)"
