#!/usr/bin/env bash
# Measures TorchServe serving the PyTorch twin of ember's MNIST net (bench/serve/torchserve/),
# with wrk through bench/serve/run.sh: single-image requests (raw pixels, and JSON) at 1, 16, 64
# and 256 connections, first without batching (batch_size 1), then with TorchServe's batching
# (batch_size and max_batch_delay). 2 workers of one PyTorch thread each, bound to 127.0.0.1.
# Run bench/serve/torchserve_setup.sh first. TorchServe is stopped at the end (and on error).
#
#   bench/serve/torchserve_bench.sh [--duration 10s] [--conns "1 16 64 256"]
#       [--batch-size 16] [--max-batch-delay 5] [--workers 2] [--kinds ts_single_raw_uint8]
#       [--repeat 3]   (run.sh's: medians over 3 rounds)
#       [--reference ref.json]   (first check 200 answers against mnist_infer --json
#                                 --predictions for the same model file)
set -euo pipefail
cd "$(dirname "$0")/../.."
duration=10s conns="1 16 64 256" batch_size=16 delay_ms=5 workers=2 repeat=1 reference=""
kinds=ts_single_raw_uint8,ts_single_json_fp32
while [ $# -gt 0 ]; do
  case "$1" in
    --duration) duration="$2"; shift 2 ;;
    --conns) conns="$2"; shift 2 ;;
    --batch-size) batch_size="$2"; shift 2 ;;
    --max-batch-delay) delay_ms="$2"; shift 2 ;;
    --workers) workers="$2"; shift 2 ;;
    --kinds) kinds="$2"; shift 2 ;;
    --repeat) repeat="$2"; shift 2 ;;
    --reference) reference="$2"; shift 2 ;;
    -h|--help) sed -n '2,12p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "torchserve_bench: unknown argument '$1'" >&2; exit 2 ;;
  esac
done
venv=$PWD/.venv-torchserve
dir=$PWD/build/torchserve
[ -f "$dir/model-store/mnist.mar" ] && [ -x "$venv/bin/torchserve" ] || {
  echo "torchserve_bench: run bench/serve/torchserve_setup.sh MODEL.safetensors first" >&2
  exit 2; }
export PATH="$venv/bin:$PATH" LOG_LOCATION="$dir/logs" METRICS_LOCATION="$dir/logs"
mkdir -p "$dir/logs"
inference=http://127.0.0.1:8080 management=http://127.0.0.1:8081

if curl -s -m 2 "$inference/ping" >/dev/null; then
  echo "torchserve_bench: something already answers on 127.0.0.1:8080; stop it first" >&2
  exit 2
fi
(cd "$dir" && torchserve --start --ncs --model-store model-store \
  --ts-config "$OLDPWD/bench/serve/torchserve/config.properties" --disable-token-auth \
  >"$dir/logs/start.out" 2>&1 </dev/null)
trap '(cd "$dir" && timeout 60 torchserve --stop >/dev/null 2>&1) || true' EXIT
for _ in $(seq 120); do
  curl -s -m 2 "$inference/ping" | grep -q Healthy && break
  sleep 1
done
curl -s -m 2 "$inference/ping" | grep -q Healthy || {
  echo "torchserve_bench: TorchServe did not become healthy in 120 s; see $dir/logs" >&2
  exit 1; }

register() {  # batch_size max_batch_delay_ms
  curl -sf -m 180 -X POST "$management/models?url=mnist.mar&model_name=mnist&batch_size=$1&max_batch_delay=$2&initial_workers=$workers&synchronous=true" >/dev/null || {
    echo "torchserve_bench: registering mnist (batch_size $1) failed; see $dir/logs" >&2
    exit 1; }
}
unregister() { curl -sf -m 60 -X DELETE "$management/models/mnist" >/dev/null; }

status=0
echo "## TorchServe $(torchserve --version 2>/dev/null | tail -n 1 | sed "s/.* //"), $workers workers, no batching (batch_size 1)"
register 1 0
if [ -n "$reference" ]; then
  python3 bench/serve/torchserve/check_predictions.py --url "$inference" --model mnist \
    --reference "$reference" --count 200 || exit 1
fi
bench/serve/run.sh --url "$inference" --model mnist --api torchserve --kinds "$kinds" \
  --conns "$conns" --duration "$duration" --repeat "$repeat" || status=1
unregister
echo
echo "## TorchServe, $workers workers, batching: batch_size $batch_size, max_batch_delay $delay_ms ms"
register "$batch_size" "$delay_ms"
bench/serve/run.sh --url "$inference" --model mnist --api torchserve --kinds "$kinds" \
  --conns "$conns" --duration "$duration" --repeat "$repeat" || status=1
unregister
exit $status
