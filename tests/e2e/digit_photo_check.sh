#!/bin/sh
# digit_photo_check.sh MNIST_TRAIN MNIST_INFER [DATA_DIR]: mnist_infer classifies pictures of a
# digit that are not MNIST's: any size, dark ink on paper or light on black, transparency.
#
# On real MNIST (DATA_DIR, else $EMBER_DATA; exit 77, "skipped", when neither is set): trains a
# small model (6,000 images, one epoch, about 20 s on 2 cores), then classifies the '7' of
# tests/fixtures/png/make_digit_photos.py: 28 x 28, 300 x 300 and 100 x 60, each dark on light
# and light on dark, and dark strokes on a transparent canvas. Each dark picture must get the
# same prediction as its light twin, and every one must be a 7. Files go to
# $EMBER_TEST_TMP/digit_photo_check (CTest sets it), else to a temporary folder.
# shellcheck disable=SC2086  # lists of words, split on purpose
set -eu

. "$(dirname "$0")/common.sh"
e2e_args 2 3 "MNIST_TRAIN MNIST_INFER [DATA_DIR]" "$@"
train=$1
infer=$2
e2e_data "${3:-}"
fixtures=$(cd "$(dirname "$0")/../fixtures/png" && pwd)
e2e_work digit_photo_check

"$train" --data "$data" --limit-train 6000 --val-size 500 --limit-test 1000 --epochs 1 \
  --lr 0.02 --momentum 0.9 --threads 2 --log-interval 0 --save-model "$work/model.safetensors" \
  > "$work/train.log" 2>&1 || fail "training failed (see $work/train.log)"

# predictions FILE...: the digits mnist_infer predicts for the PNG files, one per line.
predictions() {
  list=$(printf '%s,' "$@")
  "$infer" --model "$work/model.safetensors" --threads 2 --json --png "${list%,}" \
    > "$work/infer.json" 2> "$work/infer.err" || fail "mnist_infer failed: $(cat "$work/infer.err")"
  grep -o '"predicted":[0-9]*' "$work/infer.json" | sed 's/.*://'
}

names="seven_28 seven_300_dark seven_300_light seven_100x60_dark seven_100x60_light seven_64_alpha"
files=""
for n in $names; do files="$files $fixtures/$n.png"; done
got=$(predictions $files | tr '\n' ' ')
echo "digit_photo_check: predicted $got for $names"
set -- $got
[ $# -eq 6 ] || fail "expected 6 predictions, got '$got'"
[ "$2" = "$3" ] || fail "300 x 300: dark on light gives $2, light on dark $3"
[ "$4" = "$5" ] || fail "100 x 60: dark on light gives $4, light on dark $5"
for p in "$@"; do [ "$p" = 7 ] || fail "a picture of a 7 was called $p ($got)"; done
echo "digit_photo_check: OK"
