#!/usr/bin/env bash
# Load on an inference server with wrk: each kind of request (bench/serve/*.lua) at each number
# of connections for a bounded time, then one table of requests/s, images/s, and p50 and p99
# latency (wrk --latency, as printed by common.lua's done()). Loopback only: the URL must be
# 127.0.0.1, localhost or [::1].
#
#   bench/serve/run.sh --url http://127.0.0.1:8000 --model mnist
#   bench/serve/run.sh --url http://127.0.0.1:8080 --model mnist --api torchserve
#   bench/serve/run.sh --url ... --model ... --kinds single_binary_fp32 --conns "1 16" \
#       --duration 5s --raw results.txt
#
# --api kserve (default) runs single_json_fp32, single_binary_fp32 and batch64_binary_fp32
# against POST /v2/models/MODEL/infer; --api torchserve runs ts_single_raw_uint8 and
# ts_single_json_fp32 against POST /predictions/MODEL; --kinds picks any. The bodies come from
# real MNIST test images ($EMBER_DATA, else data/mnist), written by make_bodies.py under
# --bodies (default build/serve-bodies). wrk runs with min(--threads, connections) threads.
# A run with wrk errors (connect, read, write, timeout, or non-2xx statuses) shows them in the
# table's last column and makes the script exit 1 at the end.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
root="$(cd "$here/../.." && pwd)"

url="" model="" api=kserve kinds="" conns="1 16 64 256" duration=10s threads=2
bodies="$root/build/serve-bodies" raw="" wrk_timeout=10s input_name=input outputs=log_probs,class
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
    --timeout) wrk_timeout="$2"; shift 2 ;;
    --input-name) input_name="$2"; shift 2 ;;
    --outputs) outputs="$2"; shift 2 ;;
    -h|--help) sed -n '2,20p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
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
command -v wrk >/dev/null || { echo "run.sh: wrk is not installed (Debian package wrk)" >&2; exit 2; }

python3 "$here/make_bodies.py" --out "$bodies" --input-name "$input_name" --outputs "$outputs" \
  >/dev/null
results=$(mktemp)
trap 'rm -f "$results"' EXIT
limit=$(( ${duration%s} + 60 ))  # wrk itself stops at --duration; this bounds a stuck wrk
for kind in ${kinds//,/ }; do
  [ -f "$here/$kind.lua" ] || { echo "run.sh: no script $here/$kind.lua" >&2; exit 2; }
  for c in $conns; do
    t=$(( c < threads ? c : threads ))
    echo "wrk -t$t -c$c -d$duration --latency --timeout $wrk_timeout $kind.lua $url ($model)" >&2
    out=$(timeout "$limit" wrk -t"$t" -c"$c" -d"$duration" --latency --timeout "$wrk_timeout" \
      -s "$here/$kind.lua" "$url" -- "$model" "$bodies" 2>&1) || true
    line=$(grep '^RESULT ' <<<"$out" || true)
    if [ -z "$line" ]; then
      echo "run.sh: wrk gave no result for $kind at $c connections:" >&2
      echo "$out" >&2
      line="RESULT kind=$kind images_per_request=0 requests=0 duration_us=1 p50_us=0 p90_us=0 p99_us=0 max_us=0 err_connect=0 err_read=0 err_write=0 err_status=0 err_timeout=0 failed=1"
    fi
    echo "$line conns=$c" >>"$results"
  done
done
[ -z "$raw" ] || cp "$results" "$raw"

# The table: one row per kind and connection count, then how busy the machine was.
trap 'rm -f "$results"; echo "load average (1, 5, 15 min) at the end: $(cut -d" " -f1-3 /proc/loadavg)"' EXIT
awk '
  function v(k,   i, kv) { for (i = 2; i <= NF; i++) { split($i, kv, "="); if (kv[1] == k) return kv[2] } return "" }
  BEGIN { printf "| %-20s | %5s | %10s | %10s | %9s | %9s | %s |\n", "kind", "conns", "requests/s", "images/s", "p50 ms", "p99 ms", "errors"
          printf "| %-20s | %5s | %10s | %10s | %9s | %9s | %s |\n", "---", "---:", "---:", "---:", "---:", "---:", "---" }
  {
    rps = v("requests") / (v("duration_us") / 1e6)
    err = v("err_connect") + v("err_read") + v("err_write") + v("err_status") + v("err_timeout") + v("failed")
    if (err > 0) bad = 1
    e = v("failed") ? "no result from wrk (see above)" : err == 0 ? "0" : sprintf("%d (connect %d, read %d, write %d, status %d, timeout %d)", err, v("err_connect"), v("err_read"), v("err_write"), v("err_status"), v("err_timeout"))
    printf "| %-20s | %5d | %10.1f | %10.1f | %9.2f | %9.2f | %s |\n", v("kind"), v("conns"), rps, rps * v("images_per_request"), v("p50_us") / 1000, v("p99_us") / 1000, e
  }
  END { exit bad }' "$results"
