#!/bin/sh
# dist_dead_rank_check.sh MNIST_TRAIN MPIRUN [DATA_DIR]: a data-parallel run whose process dies
# or hangs ends, with a non-zero status, within a bound, and its last checkpoint stays whole.
#
# On real MNIST (DATA_DIR, else $EMBER_DATA; exit 77 without), `MPIRUN -np 2 mnist_train` on
# 1,200 images with --checkpoint; once the checkpoint of epoch 1 exists:
#   A: rank 1 is killed (SIGKILL): mpirun must end the job within 30 s, non-zero;
#   B: rank 1 is stopped (SIGSTOP, alive but silent): rank 0's wait for its gradients times out
#      after EMBER_DIST_TIMEOUT=5 s with an error naming the all-reduce, and the job ends within
#      30 s, non-zero;
# after each, a 2-process --resume from the checkpoint trains the next epoch. MPIRUN is mpirun
# with its options (--oversubscribe, --allow-run-as-root, ...), one word split on spaces.
# shellcheck disable=SC2086  # $mpirun and $common are lists of words, split on purpose
set -eu

. "$(dirname "$0")/common.sh"
e2e_args 2 3 "MNIST_TRAIN MPIRUN [DATA_DIR]" "$@"
train=$1
mpirun=$2
e2e_data "${3:-}"
e2e_work dist_dead_rank_check

common="--limit-train 1400 --val-size 200 --limit-test 200 --threads 1 --log-interval 0 \
--save-model ''"

# rank_pid MPIRUN_PID RANK: the pid of that rank among mpirun's children (from its environment)
rank_pid() {
  for p in $(pgrep -P "$1"); do
    if tr '\0' '\n' < "/proc/$p/environ" 2>/dev/null | grep -qx "OMPI_COMM_WORLD_RANK=$2"; then
      echo "$p"
      return 0
    fi
  done
  return 1
}

# scenario NAME SIGNAL: start a run, signal rank 1 after the first checkpoint, time the end
scenario() {
  name=$1
  sig=$2
  dir=$work/$name
  mkdir -p "$dir"
  EMBER_DIST_TIMEOUT=5 $mpirun -np 2 "$train" --data "$data" $common --epochs 50 \
    --checkpoint "$dir/run.ckpt" > "$dir/run.log" 2>&1 &
  job=$!
  waited=0
  while ! grep -q "Saved checkpoint $dir/run.ckpt (epoch 1)" "$dir/run.log"; do
    kill -0 "$job" 2>/dev/null || fail "$name: the run ended before its first checkpoint \
(see $dir/run.log)"
    [ $waited -lt 600 ] || fail "$name: no checkpoint after 300 s"
    sleep 0.5
    waited=$((waited + 1))
  done
  victim=$(rank_pid "$job" 1) || fail "$name: rank 1's process not found"
  start=$(date +%s)
  kill "-$sig" "$victim"
  # Bounded: the job must end by itself within 30 s.
  ended=0
  while [ $(($(date +%s) - start)) -lt 30 ]; do
    if ! kill -0 "$job" 2>/dev/null; then ended=1; break; fi
    sleep 0.2
  done
  if [ $ended -eq 0 ]; then
    kill -KILL "$victim" 2>/dev/null || true
    kill -TERM "$job" 2>/dev/null || true
    fail "$name: the job still ran 30 s after rank 1 got SIG$sig (see $dir/run.log)"
  fi
  status=0
  wait "$job" || status=$?
  [ "$status" -ne 0 ] || fail "$name: the job ended with status 0 after rank 1 got SIG$sig"
  echo "$name: SIG$sig to rank 1: the job ended after $(($(date +%s) - start)) s, status $status"
  # The checkpoint is whole: a 2-process run resumes from it.
  $mpirun -np 2 "$train" --data "$data" $common --epochs 2 --resume "$dir/run.ckpt" \
    > "$dir/resume.log" 2>&1 || fail "$name: resuming from the checkpoint failed (see \
$dir/resume.log)"
  grep -q "Resumed from $dir/run.ckpt at epoch 1" "$dir/resume.log" ||
    fail "$name: the resumed run did not report the resume"
  grep -q "^Epoch 2:" "$dir/resume.log" || fail "$name: the resumed run did not train epoch 2"
}

scenario killed KILL
scenario stopped STOP
grep -q "did not complete within 5" "$work/stopped/run.log" ||
  fail "stopped: rank 0 did not report the timed-out all-reduce (see $work/stopped/run.log)"
echo "dist_dead_rank_check: passed"
