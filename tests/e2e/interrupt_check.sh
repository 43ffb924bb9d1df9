#!/bin/sh
# interrupt_check.sh MNIST_TRAIN [DATA_DIR]: mnist_train loses no work and leaves no litter.
#
# On real MNIST (DATA_DIR, else $EMBER_DATA; exit 77, "skipped", when neither is set), on the
# CPU with 2 threads and a few hundred training images:
#   1. SIGINT while a checkpoint is being saved (the script watches for the temporary file and
#      interrupts then; if no save is caught in 30 tries, after one) ends the run by the signal
#      and leaves no "run.ckpt.tmp.*" behind; the last checkpoint still resumes;
#   2. a temporary file of a dead process, an hour old, is swept by the next run;
#   3. the output folder removed during training: the checkpoint and the model are saved in the
#      current folder instead, the run says where, and exits with status 1.
# Files go to $EMBER_TEST_TMP/interrupt_check (CTest sets it), else to a temporary folder.
# Takes about half a minute on 2 cores.
# shellcheck disable=SC2086  # $common is a list of words, split on purpose
set -eu

. "$(dirname "$0")/common.sh"
e2e_args 1 2 "MNIST_TRAIN [DATA_DIR]" "$@"
train=$1
case $train in /*) ;; *) train=$(pwd)/$train ;; esac  # part 3 runs it from another folder
e2e_data "${2:-}"
e2e_work interrupt_check
mkdir -p "$work/cwd"
common="--data $data --limit-train 600 --val-size 100 --limit-test 100 --threads 2 \
--log-interval 0"
temporaries() {  # temporaries DIR: the names of the temporary files of saves in DIR
  find "$1" -name '*.tmp.*' | sort
}

# A background job of a non-interactive shell starts with SIGINT ignored (POSIX), which the
# writer's handler rightly respects: give the job SIGINT's default back.
if env --default-signal=INT true 2> /dev/null; then
  with_sigint="env --default-signal=INT"
  sig=INT
else
  with_sigint=""
  sig=TERM
fi

# 1. SIGINT (or SIGTERM where env cannot reset SIGINT) during a checkpoint save, after the
# first one has completed (so that there is one to resume).
: > "$work/interrupted.log"
$with_sigint "$train" $common --epochs 100000 --save-model '' --checkpoint "$work/run.ckpt" \
  > "$work/interrupted.log" 2>&1 &
pid=$!
caught=no
tries=0
while [ $tries -lt 6000 ] && kill -0 $pid 2> /dev/null; do
  saved=$(grep -c '^Saved checkpoint' "$work/interrupted.log" || true)
  if [ "$saved" -eq 0 ]; then
    sleep 0.01
    continue
  fi
  # Any temporary file now means a save under way (their names end in a pid and a count).
  for f in "$work"/run.ckpt.tmp.*; do
    if [ -e "$f" ]; then
      caught=yes
      break
    fi
  done
  if [ $caught = yes ]; then break; fi
  # After 30 checkpoints without catching one, interrupt anyway (between saves).
  if [ "$saved" -ge 30 ]; then break; fi
  sleep 0.01
  tries=$((tries + 1))
done
kill -$sig $pid 2> /dev/null || fail "mnist_train ended before it was interrupted"
status=0
wait $pid || status=$?
# A process ended by a signal shows as 128 + its number: SIGINT 2, SIGTERM 15.
[ $status -eq 130 ] || [ $status -eq 143 ] ||
  fail "the interrupted run exited with $status, not by the signal (see $work/interrupted.log)"
left=$(temporaries "$work")
[ -z "$left" ] || fail "the interrupted save left $left"
epoch=$(grep '^Saved checkpoint' "$work/interrupted.log" | tail -n 1 |
  sed 's/.*(epoch \([0-9]*\))/\1/')
[ -n "$epoch" ] || fail "no checkpoint was saved before the interrupt"
echo "interrupt_check: SIG$sig $( [ $caught = yes ] && echo during || echo after ) a save" \
  "(checkpoint at epoch $epoch): no temporary file left"

# 2. A leftover of a dead process (as SIGKILL leaves) is swept by the next run, which resumes.
sh -c 'exit 0' &
dead=$!
wait $dead
stale="$work/run.ckpt.tmp.$dead.0"
echo partial > "$stale"
touch -d '1 hour ago' "$stale"
"$train" $common --epochs $((epoch + 1)) --save-model '' --checkpoint "$work/run.ckpt" \
  --resume "$work/run.ckpt" > "$work/resumed.log" 2>&1 ||
  fail "the run after the interrupt failed (see $work/resumed.log)"
grep -q "Removed $stale, left by an interrupted save" "$work/resumed.log" ||
  fail "the stale temporary file was not reported removed (see $work/resumed.log)"
[ ! -e "$stale" ] || fail "the stale temporary file is still there"
grep -q "Resumed from $work/run.ckpt at epoch $epoch" "$work/resumed.log" ||
  fail "the checkpoint left by the interrupted run did not resume"

# 3. The output folder disappears during training: nothing trained is lost.
mkdir -p "$work/out"
: > "$work/rescued.log"
(cd "$work/cwd" && exec "$train" $common --limit-train 3000 --epochs 2 \
  --checkpoint "$work/out/c.ckpt" --save-model "$work/out/m.safetensors") \
  > "$work/rescued.log" 2>&1 &
pid=$!
until grep -q '^Saved checkpoint' "$work/rescued.log"; do
  kill -0 $pid 2> /dev/null || fail "the run ended before its first checkpoint"
  sleep 0.05
done
rm -rf "$work/out"
status=0
wait $pid || status=$?
[ $status -eq 1 ] || fail "a run whose outputs failed exited with $status, not 1"
model=$(find "$work/cwd" -name 'm.rescued.*.safetensors')
ckpt=$(find "$work/cwd" -name 'c.rescued.*.ckpt')
if [ -z "$model" ] || [ -z "$ckpt" ]; then fail "no rescued model or checkpoint in $work/cwd"; fi
grep -q "saved to '$work/cwd/m.rescued\..*\.safetensors' instead" "$work/rescued.log" ||
  fail "the run did not say where the model went (see $work/rescued.log)"
grep -q "Saved checkpoint $work/cwd/c.rescued\..*\.ckpt (epoch 2)" "$work/rescued.log" ||
  fail "the run did not say where the checkpoint went (see $work/rescued.log)"
echo "interrupt_check: OK (outputs rescued to $(basename "$model") and $(basename "$ckpt"))"
