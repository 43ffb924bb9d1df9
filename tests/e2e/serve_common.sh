# Sourced by the ember_serve end-to-end scripts (POSIX sh), after common.sh: a small MNIST
# model and its int8 form, and a server started on a free loopback port.
#
#   serve_models TRAIN QUANTIZE   # trains $work/mnist.safetensors (1 epoch, 3,000 images:
#                                 # accuracy is not the point) and $work/mnist_int8.safetensors
#   serve_start LOG SERVE ARGS... # starts `SERVE --port 0 ARGS...` in the background, its
#                                 # stderr in LOG; sets serve_pid and port once it listens
#   serve_stop                    # SIGTERM, waits; sets serve_rc (the exit status)

serve_models() {
  "$1" --data "$data" --limit-train 3000 --val-size 500 --limit-test 1000 --threads 2 \
    --epochs 1 --log-interval 0 --save-model "$work/mnist.safetensors" \
    > "$work/train.log" 2>&1 || fail "mnist_train failed (see $work/train.log)"
  "$2" --model "$work/mnist.safetensors" --out "$work/mnist_int8.safetensors" --data "$data" \
    --calibration-batches 5 --repeat 1 --threads 2 > "$work/quantize.log" 2>&1 ||
    fail "mnist_quantize failed (see $work/quantize.log)"
}

# A server left running by a failed check is killed when the script exits.
serve_pid=""
trap '[ -z "$serve_pid" ] || kill -KILL "$serve_pid" 2> /dev/null || true' EXIT

serve_start() {
  serve_log=$1
  shift
  : > "$serve_log"
  "$@" --port 0 > "$serve_log.out" 2> "$serve_log" &
  serve_pid=$!
  port=""
  tries=0
  while [ -z "$port" ]; do
    port=$(sed -n 's/^ember_serve: listening on http:\/\/[^:]*:\([0-9]*\) .*/\1/p' "$serve_log")
    [ -n "$port" ] && break
    kill -0 "$serve_pid" 2> /dev/null || fail "ember_serve did not start: $(cat "$serve_log")"
    tries=$((tries + 1))
    [ "$tries" -lt 300 ] || { kill -KILL "$serve_pid"; fail "ember_serve did not listen in 30 s"; }
    sleep 0.1
  done
}

serve_stop() {
  kill -TERM "$serve_pid"
  serve_rc=0
  wait "$serve_pid" || serve_rc=$?
  serve_pid=""
}
