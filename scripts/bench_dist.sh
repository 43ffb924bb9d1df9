#!/bin/sh
# bench_dist.sh MNIST_TRAIN [REPEATS]: data-parallel training on this machine, in one run:
#   A: 1 process  x 2 threads   (mnist_train --threads 2)
#   B: 2 processes x 1 thread   (mpirun -np 2 mnist_train --threads 1)
# the same global batch (64) and data (--limit-train 6464 --val-size 64: 100 steps an epoch),
# one epoch each, alternated A B A B ... REPEATS times (default 3). Prints each run's training
# time of the epoch and steps/s, the medians, the ratio B/A, and B's time in the gradient
# all-reduce (calls and waits on rank 0, as mnist_train reports it). Needs $EMBER_DATA.
# shellcheck disable=SC2086
set -eu
train=$1
repeats=${2:-3}
: "${EMBER_DATA:?set EMBER_DATA to the MNIST folder}"
mpirun=${MPIRUN:-mpirun --oversubscribe --allow-run-as-root --mca btl self,vader}
work=${TMPDIR:-/tmp}/bench_dist.$$
# (the model goes to $work, removed at the end: a quoted '' inside $common would reach
# mnist_train as a file literally named '')
common="--epochs 1 --limit-train 6464 --val-size 64 --limit-test 100 --log-interval 0 \
--save-model $work/model.safetensors --batch-size 64"
mkdir -p "$work"
steps=100

epoch_time() { sed -n 's/^Epoch 1: .*, \([0-9.]*\) s$/\1/p' "$1"; }
median() { sort -n | awk '{a[NR]=$1} END {print (NR % 2) ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2}'; }

i=1
while [ "$i" -le "$repeats" ]; do
  "$train" --data "$EMBER_DATA" $common --threads 2 > "$work/A$i.log" 2>&1
  $mpirun -np 2 "$train" --data "$EMBER_DATA" $common --threads 1 > "$work/B$i.log" 2>&1
  a=$(epoch_time "$work/A$i.log")
  b=$(epoch_time "$work/B$i.log")
  comm=$(sed -n 's/^Data-parallel: \([0-9.]*\) s of .*/\1/p' "$work/B$i.log")
  echo "repeat $i: A 1x2 $a s ($(echo "$steps / $a" | bc -l | cut -c1-5) steps/s)," \
    "B 2x1 $b s ($(echo "$steps / $b" | bc -l | cut -c1-5) steps/s), B all-reduce $comm s"
  echo "$a" >> "$work/a"
  echo "$b" >> "$work/b"
  echo "$comm" >> "$work/c"
  i=$((i + 1))
done
ma=$(median < "$work/a")
mb=$(median < "$work/b")
mc=$(median < "$work/c")
echo "median: A $ma s, B $mb s; steps/s B/A = $(echo "$ma / $mb" | bc -l | cut -c1-5);" \
  "B's all-reduce share $(echo "100 * $mc / $mb" | bc -l | cut -c1-4)%"
rm -rf "$work"
