#!/usr/bin/env bash
# Load on an inference server with wrk: each kind of request (bench/serve/*.lua) at each number
# of connections for a bounded time, then one table of requests/s, images/s, and p50 and p99
# latency (wrk --latency, as printed by common.lua's done()). Loopback only: the URL must be
# 127.0.0.1, localhost or [::1].
#
#   bench/serve/run.sh --url http://127.0.0.1:8000 --model mnist
#   bench/serve/run.sh --url http://127.0.0.1:8080 --model mnist --api torchserve
#   bench/serve/run.sh --url ... --model ... --kinds single_binary_fp32 --conns "1 16" \
#       --duration 5s --repeat 3 --raw results.txt
#
# --api kserve (default) runs single_json_fp32, single_binary_fp32 and batch64_binary_fp32
# against POST /v2/models/MODEL/infer; --api torchserve runs ts_single_raw_uint8 and
# ts_single_json_fp32 against POST /predictions/MODEL; --kinds picks any. The bodies come from
# real MNIST test images ($EMBER_DATA, else data/mnist), written by make_bodies.py under
# --bodies (default build/serve-bodies). wrk runs with min(--threads, connections) threads.
# --repeat N runs everything N times and reports each cell's medians (bench/serve/table.py).
# A run with wrk errors (connect, read, write, timeout, or non-2xx statuses) shows them in the
# table's last column and makes the script exit 1 at the end.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
root="$(cd "$here/../.." && pwd)"

url="" model="" api=kserve kinds="" conns="1 16 64 256" duration=10s threads=2
bodies="$root/build/serve-bodies" raw="" repeat=1 status=0 wrk_timeout=10s input_name=input outputs=log_probs,class
while [ $# -gt 0 ]; do
  case "$1" in
    --url) url="$2"; shift 2 ;;
    --model) model="$2"; shift 2 ;;
    --api) api="$2"; shift 2 ;;
    --kinds) kinds="$2"; shift 2 ;;
    --conns) conns="$2"; shift 2 ;;
    --duration) duration="$2"; shift 2 ;;
    --threads) threads="$2"; shift 2 ;;
    --bodies) bodies="$2"; shift 2 ;;
    --raw) raw="$2"; shift 2 ;;
    --repeat) repeat="$2"; shift 2 ;;
    --timeout) wrk_timeout="$2"; shift 2 ;;
    --input-name) input_name="$2"; shift 2 ;;
    --outputs) outputs="$2"; shift 2 ;;
    -h|--help) sed -n '2,19p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "run.sh: unknown argument '$1' (see --help)" >&2; exit 2 ;;
  esac
done
[ -n "$url" ] && [ -n "$model" ] || { echo "run.sh: --url and --model are required" >&2; exit 2; }
case "$url" in
  http://127.0.0.1:*|http://localhost:*|http://\[::1\]:*) ;;
  *) echo "run.sh: --url '$url' is not a loopback http URL (http://127.0.0.1:PORT)" >&2; exit 2 ;;
esac
case "$api" in
  kserve) kinds="${kinds:-single_json_fp32,single_binary_fp32,batch64_binary_fp32}" ;;
  torchserve) kinds="${kinds:-ts_single_raw_uint8,ts_single_json_fp32}" ;;
  *) echo "run.sh: --api is kserve or torchserve, not '$api'" >&2; exit 2 ;;
esac
[[ "$duration" =~ ^[0-9]+s$ ]] || { echo "run.sh: --duration is seconds, as 10s" >&2; exit 2; }
[[ "$repeat" =~ ^[1-9][0-9]?$ ]] || { echo "run.sh: --repeat is 1 to 99" >&2; exit 2; }
command -v wrk >/dev/null || { echo "run.sh: wrk is not installed (Debian package wrk)" >&2; exit 2; }

python3 "$here/make_bodies.py" --out "$bodies" --input-name "$input_name" --outputs "$outputs" \
  >/dev/null
results=$(mktemp)
trap 'rm -f "$results"' EXIT
limit=$(( ${duration%s} + 60 ))  # wrk itself stops at --duration; this bounds a stuck wrk
# Repeats go round all kinds and connection counts, so a busy spell of the machine spreads
# over the cells instead of spoiling one; the table shows each cell's medians.
for r in $(seq "$repeat"); do
  for kind in ${kinds//,/ }; do
    [ -f "$here/$kind.lua" ] || { echo "run.sh: no script $here/$kind.lua" >&2; exit 2; }
    for c in $conns; do
      t=$(( c < threads ? c : threads ))
      echo "[$r/$repeat] wrk -t$t -c$c -d$duration --latency --timeout $wrk_timeout $kind.lua $url ($model)" >&2
      out=$(timeout "$limit" wrk -t"$t" -c"$c" -d"$duration" --latency --timeout "$wrk_timeout" \
        -s "$here/$kind.lua" "$url" -- "$model" "$bodies" 2>&1) || true
      line=$(grep '^RESULT ' <<<"$out" || true)
      if [ -z "$line" ]; then
        echo "run.sh: wrk gave no result for $kind at $c connections:" >&2
        echo "$out" >&2
        line="RESULT kind=$kind failed=1"
      fi
      echo "$line conns=$c" >>"$results"
    done
  done
done
[ -z "$raw" ] || cp "$results" "$raw"

# The table: one row per kind and connection count, then how busy the machine was.
python3 "$here/table.py" "$results" || status=1
echo "load average (1, 5, 15 min) at the end: $(cut -d" " -f1-3 /proc/loadavg)"
exit $status
