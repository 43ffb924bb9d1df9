#!/bin/sh
# threads_check.sh MNIST_TRAIN [DATA_DIR]: `mnist_train` gives the same bits at any --threads.
#
# On real MNIST (DATA_DIR, else $EMBER_DATA; exit 77, "skipped", when neither is set), on the
# CPU with 1,200 training images, 2 epochs and StepLR lowering the lr after the first:
#   T1: --threads 1, model saved;     T3: --threads 3, model saved;
#   C:  --threads 1, 1 epoch with --checkpoint;
#   R:  --threads 3, --epochs 2 --resume C, model saved;
# and the models T1, T3 and R must be the same bytes, their last epoch's reports the same
# line. Files go to $EMBER_TEST_TMP/threads_check (CTest sets it), else to a temporary
# folder. Takes about half a minute on 2 cores.
# shellcheck disable=SC2086  # $common is a list of words, split on purpose
set -eu

. "$(dirname "$0")/common.sh"
e2e_args 1 2 "MNIST_TRAIN [DATA_DIR]" "$@"
train=$1
e2e_data "${2:-}"
e2e_work threads_check

common="--limit-train 1200 --val-size 200 --limit-test 500 --step-size 1 --log-interval 0"

run() {  # run NAME FLAGS...: mnist_train with the common flags, its output in NAME.log
  name=$1
  shift
  "$train" --data "$data" $common "$@" > "$work/$name.log" 2>&1 ||
    fail "run $name failed (see $work/$name.log)"
}
last_epoch() {  # the last epoch's report, but for the time it took
  grep "^Epoch 2:" "$work/$1.log" | sed 's/, [0-9.]* s$//'
}

run T1 --threads 1 --epochs 2 --save-model "$work/T1.safetensors"
run T3 --threads 3 --epochs 2 --save-model "$work/T3.safetensors"
cmp "$work/T1.safetensors" "$work/T3.safetensors" ||
  fail "the model trained with --threads 3 differs from the one trained with --threads 1"

run C --threads 1 --epochs 1 --save-model '' --checkpoint "$work/C.safetensors"
run R --threads 3 --epochs 2 --resume "$work/C.safetensors" --save-model "$work/R.safetensors"
grep -q "Resumed from $work/C.safetensors at epoch 1" "$work/R.log" ||
  fail "the resumed run did not report the resume"
cmp "$work/T1.safetensors" "$work/R.safetensors" ||
  fail "a run checkpointed at --threads 1 and resumed at --threads 3 differs from a straight run"

t1=$(last_epoch T1)
for name in T3 R; do
  if [ -z "$t1" ] || [ "$t1" != "$(last_epoch $name)" ]; then
    fail "epoch 2 reports differ: '$t1' (T1) vs '$(last_epoch $name)' ($name)"
  fi
done

echo "threads_check: OK ($t1)"
