#!/bin/sh
# dist_repeat_check.sh MNIST_TRAIN MPIRUN [DATA_DIR]: two separate `mpirun -np N mnist_train`
# runs with the same flags write the same model bytes, for N = 2 and 3 (global batch 48), on
# 960 real MNIST images (DATA_DIR, else $EMBER_DATA; exit 77 without). Also checks that rank 0
# alone printed (one "Epoch 1:" line) and that a world size that does not divide the batch is
# refused. MPIRUN is mpirun with its options, one word split on spaces.
# shellcheck disable=SC2086
set -eu

. "$(dirname "$0")/common.sh"
e2e_args 2 3 "MNIST_TRAIN MPIRUN [DATA_DIR]" "$@"
train=$1
mpirun=$2
e2e_data "${3:-}"
e2e_work dist_repeat_check

common="--epochs 1 --limit-train 1024 --val-size 64 --limit-test 100 --threads 1 \
--log-interval 0 --batch-size 48 --momentum 0.9"
for np in 2 3; do
  for run in a b; do
    $mpirun -np $np "$train" --data "$data" $common --save-model "$work/np$np$run.safetensors" \
      > "$work/np$np$run.log" 2>&1 || fail "np $np run $run failed (see $work/np$np$run.log)"
  done
  cmp -s "$work/np${np}a.safetensors" "$work/np${np}b.safetensors" ||
    fail "two runs with $np processes wrote different models"
  [ "$(grep -c '^Epoch 1:' "$work/np${np}a.log")" -eq 1 ] ||
    fail "with $np processes, not exactly one process printed (see $work/np${np}a.log)"
  grep -q "^Data-parallel: $np processes x 1 threads, global batch 48 ($((48 / np)) each)" \
    "$work/np${np}a.log" ||
    fail "with $np processes, the per-process batch was not reported as $((48 / np))"
  echo "np $np: two runs wrote the same model bytes"
done
# 48 does not divide among 5 processes: refused by every rank before any work.
if $mpirun -np 5 "$train" --data "$data" $common --save-model '' > "$work/np5.log" 2>&1; then
  fail "a global batch of 48 over 5 processes was accepted"
fi
grep -q "must divide among the 5 processes" "$work/np5.log" ||
  fail "the refusal does not name the batch and the processes (see $work/np5.log)"
echo "dist_repeat_check: passed"
