#!/bin/sh
# resume_check.sh MNIST_TRAIN [DATA_DIR]: `mnist_train --resume` continues a run bit for bit.
#
# On real MNIST (DATA_DIR, else $EMBER_DATA; exit 77, "skipped", when neither is set), on the
# CPU with 2 threads, 2,500 training images and StepLR lowering the lr after every epoch:
#   A: 2 epochs straight, model saved;
#   C: 1 epoch with --checkpoint;
#   B: --epochs 2 --resume C, model saved;
# and the two models A and B must be the same bytes. Then a resume with another --batch-size
# must be refused with an error naming it. Files go to $EMBER_TEST_TMP/resume_check (CTest
# sets it), else to a temporary folder. Takes about a minute on 2 cores.
# shellcheck disable=SC2086  # $common is a list of words, split on purpose
set -eu

. "$(dirname "$0")/common.sh"
e2e_args 1 2 "MNIST_TRAIN [DATA_DIR]" "$@"
train=$1
e2e_data "${2:-}"
e2e_work resume_check

common="--limit-train 3000 --val-size 500 --limit-test 1000 --threads 2 --step-size 1 \
--log-interval 0"

run() {  # run LOG FLAGS...: mnist_train with the common flags, its output in LOG
  log=$1
  shift
  "$train" --data "$data" $common "$@" > "$log" 2>&1
}

run "$work/A.log" --epochs 2 --save-model "$work/A.safetensors" ||
  fail "the straight run failed (see $work/A.log)"
run "$work/C.log" --epochs 1 --save-model '' --checkpoint "$work/C.safetensors" ||
  fail "the first half failed (see $work/C.log)"
grep -q "Saved checkpoint $work/C.safetensors (epoch 1)" "$work/C.log" ||
  fail "the first half did not report its checkpoint"
run "$work/B.log" --epochs 2 --resume "$work/C.safetensors" --save-model "$work/B.safetensors" ||
  fail "the resumed run failed (see $work/B.log)"
grep -q "Resumed from $work/C.safetensors at epoch 1" "$work/B.log" ||
  fail "the resumed run did not report the resume"
if grep -q "^Epoch 1:" "$work/B.log"; then fail "the resumed run trained epoch 1 again"; fi
cmp "$work/A.safetensors" "$work/B.safetensors" ||
  fail "the resumed model differs from the straight run's"
# The last epoch's report is the same line but for the time it took.
a_epoch=$(grep "^Epoch 2:" "$work/A.log" | sed 's/, [0-9.]* s$//')
b_epoch=$(grep "^Epoch 2:" "$work/B.log" | sed 's/, [0-9.]* s$//')
if [ -z "$a_epoch" ] || [ "$a_epoch" != "$b_epoch" ]; then
  fail "epoch 2 reports differ: '$a_epoch' vs '$b_epoch'"
fi

if run "$work/refused.log" --epochs 2 --batch-size 32 --resume "$work/C.safetensors" \
  --save-model ''; then
  fail "a resume with another --batch-size was not refused"
fi
grep -q "was written with batch-size 64 but this run has batch-size 32" "$work/refused.log" ||
  fail "the refusal does not name the setting (see $work/refused.log)"

echo "resume_check: OK ($a_epoch)"
