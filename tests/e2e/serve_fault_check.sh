#!/bin/sh
# serve_fault_check.sh EMBER_SERVE MNIST_TRAIN [DATA_DIR]: ember_serve under overload and
# under signals, on loopback, in about 30 s.
#   overload  --max-queue-size 1 and wrk at 64 connections for 3 s: some requests are refused
#             503 at once (counted in /metrics), the server still answers /v2/health/ready 200
#             and an inference afterwards, and its resident memory grew by at most 64 MiB.
#   SIGKILL   under load, serving a model repository: the server restarted on the same
#             repository serves again, with the same answer to the same request as before, and
#             every file of the repository is byte-identical (sha256) to before.
#   slow clients  2 HTTP threads, both taken by clients that stop in the middle of a request:
#             each is answered 400 after the read timeout (1 s) and its thread is free again
#             after the keep-alive time (1 s), so an inference on a third connection is
#             answered within seconds, and the stalled connections end.
#   SIGTERM   under load: the server exits 0, and no answer is cut in the middle (curl loops
#             beside the load check every answer they get).
# The load is wrk (64 connections) where it is installed, else 8 curl loops; without wrk the
# overload part is skipped, with a message. Needs curl (else exit 77).
# On real MNIST (DATA_DIR, else $EMBER_DATA; exit 77, "skipped", when neither is set): the
# model is a short training (1 epoch, 3,000 images).
# Files go to $EMBER_TEST_TMP/serve_fault_check (CTest sets it), else to a temporary folder.
set -eu

. "$(dirname "$0")/common.sh"
. "$(dirname "$0")/serve_common.sh"
e2e_args 2 3 "EMBER_SERVE MNIST_TRAIN [DATA_DIR]" "$@"
serve=$1
e2e_data "${3:-}"
command -v curl > /dev/null || { echo "SKIPPED: no curl"; exit 77; }
have_wrk=0
command -v wrk > /dev/null && have_wrk=1
e2e_work serve_fault_check

"$2" --data "$data" --limit-train 3000 --val-size 500 --limit-test 1000 --threads 2 --epochs 1 \
  --log-interval 0 --save-model "$work/mnist.safetensors" > "$work/train.log" 2>&1 ||
  fail "mnist_train failed (see $work/train.log)"

# One MNIST-sized UINT8 image (a bar of ink) as JSON, and wrk's script that posts it.
pixels=$(awk 'BEGIN { for (i = 0; i < 784; ++i) printf "%s%d", (i ? "," : ""),
  (i % 28 >= 12 && i % 28 < 16 && i >= 112 && i < 672) ? 255 : 0 }')
body='{"inputs":[{"name":"input","datatype":"UINT8","shape":[1,28,28],"data":['$pixels']}]}'
printf '%s' "$body" > "$work/body.json"
cat > "$work/post.lua" <<LUA
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
wrk.body = '$body'
LUA

url() { echo "http://127.0.0.1:$port$1"; }
code() { curl -s -o "$work/answer" -w '%{http_code}' "$@" || echo "none"; }
infer() { code -X POST -H 'Content-Type: application/json' --data-binary @"$work/body.json" \
  "$(url /v2/models/mnist/infer)"; }
rss_kib() { awk '/^VmRSS:/ { print $2 }' "/proc/$serve_pid/status"; }

# load SECONDS: 64 connections (wrk) or 8 curl loops in the background; sets load_pid.
load() {
  if [ "$have_wrk" = 1 ]; then
    wrk -t 2 -c 64 -d "$1s" --timeout 5s -s "$work/post.lua" "$(url /v2/models/mnist/infer)" \
      > "$work/wrk.log" 2>&1 &
    load_pid=$!
  else
    (end=$(($(date +%s) + $1)); for _ in 1 2 3 4 5 6 7 8; do
      while [ "$(date +%s)" -lt "$end" ]; do infer > /dev/null; done &
    done; wait) &
    load_pid=$!
  fi
}

# Overload.
if [ "$have_wrk" = 1 ]; then
  serve_start "$work/serve1.log" "$serve" --threads 1 --access-log off --max-queue-size 1 \
    --model "mnist=$work/mnist.safetensors"
  [ "$(infer)" = 200 ] || fail "overload: the first inference: $(cat "$work/answer")"
  rss_before=$(rss_kib)
  wrk -t 2 -c 64 -d 3s --timeout 5s -s "$work/post.lua" "$(url /v2/models/mnist/infer)" \
    > "$work/wrk.log" 2>&1 || fail "wrk failed: $(cat "$work/wrk.log")"
  rss_after=$(rss_kib)
  refused=$(curl -s "$(url /metrics)" |
    awk '/^ember_requests_total\{.*code="503"/ { n += $NF } END { print n + 0 }')
  served=$(curl -s "$(url /metrics)" |
    awk '/^ember_requests_total\{.*model="mnist".*code="200"/ { n += $NF } END { print n + 0 }')
  [ "$refused" -gt 0 ] || fail "overload: no request was refused 503: $(cat "$work/wrk.log")"
  [ "$served" -gt 1 ] || fail "overload: no request was served: $(cat "$work/wrk.log")"
  [ "$(code "$(url /v2/health/ready)")" = 200 ] || fail "overload: not ready afterwards"
  [ "$(infer)" = 200 ] || fail "overload: no inference afterwards: $(cat "$work/answer")"
  grew=$((rss_after - rss_before))
  [ "$grew" -le 65536 ] || fail "overload: resident memory grew by $grew KiB"
  serve_stop
  [ "$serve_rc" = 0 ] || fail "overload: SIGTERM: exit $serve_rc"
  echo "overload: $served served, $refused refused 503 in 3 s at 64 connections;" \
    "RSS $rss_before -> $rss_after KiB"
else
  echo "serve_fault_check: SKIPPED the overload part: no wrk"
fi

# SIGKILL under load, then a restart on the same model repository.
mkdir -p "$work/repo/mnist/1"
cp "$work/mnist.safetensors" "$work/repo/mnist/1/model.safetensors"
echo '{"max_batch_size": 16, "dynamic_batching": {"max_queue_size": 8}}' \
  > "$work/repo/mnist/config.json"
(cd "$work/repo" && find . -type f | sort | xargs sha256sum) > "$work/sha_before"
serve_start "$work/serve2.log" "$serve" --threads 1 --access-log off \
  --model-repository "$work/repo"
[ "$(infer)" = 200 ] || fail "repository: no inference: $(cat "$work/answer")"
cp "$work/answer" "$work/answer_before"
load 4
sleep 1.5
kill -KILL "$serve_pid"
wait "$serve_pid" || true
serve_pid=""
wait "$load_pid" || true
(cd "$work/repo" && find . -type f | sort | xargs sha256sum) > "$work/sha_after"
cmp -s "$work/sha_before" "$work/sha_after" ||
  fail "SIGKILL changed the model repository: $(diff "$work/sha_before" "$work/sha_after")"
serve_start "$work/serve3.log" "$serve" --threads 1 --access-log off \
  --model-repository "$work/repo"
[ "$(code "$(url /v2/health/ready)")" = 200 ] || fail "restart: not ready"
[ "$(infer)" = 200 ] || fail "restart: no inference: $(cat "$work/answer")"
cmp -s "$work/answer_before" "$work/answer" ||
  fail "restart: another answer: $(cat "$work/answer") (before: $(cat "$work/answer_before"))"
echo "SIGKILL under load: the repository unchanged ($(wc -l < "$work/sha_after") files)," \
  "the restarted server gives the same answer"

# SIGTERM under load, with 4 curl loops beside the load that log each request: curl's exit
# status, the HTTP code and the answer's last 3 bytes. No answer may be cut in the middle
# (curl 18, or a 200 whose JSON does not end), and the loops must have been answered before.
load 4
for i in 1 2 3 4; do
  (end=$(($(date +%s) + 4)); n=0; while [ "$(date +%s)" -lt "$end" ]; do
    n=$((n + 1)); rc=0
    got=$(curl -s -o "$work/term$i.$n" -w '%{http_code}' -X POST \
      -H 'Content-Type: application/json' --data-binary @"$work/body.json" \
      "$(url /v2/models/mnist/infer)") || rc=$?
    echo "$rc $got $(tail -c 3 "$work/term$i.$n" 2> /dev/null)"
  done > "$work/term$i.log") &
  eval "loop$i=\$!"
done
# Stop only once every loop has had an answer (a loaded machine may take seconds to start them).
sleep 1.5
for _ in $(seq 40); do
  n=0
  for i in 1 2 3 4; do [ -s "$work/term$i.log" ] && n=$((n + 1)); done
  [ "$n" = 4 ] && break
  sleep 0.25
done
serve_stop
wait "$load_pid" || true
wait "$loop1" "$loop2" "$loop3" "$loop4" || true
[ "$serve_rc" = 0 ] || fail "SIGTERM under load: exit $serve_rc: $(tail -n 5 "$work/serve3.log")"
cat "$work"/term?.log > "$work/term.log"
# A whole answer: an inference (200, ending "}]}") or a whole error (a 503 when the queue was
# full, ending '"}'); the queue holds 8, so under the load most loop requests get a 503.
answered=$(awk '$1 == 0 && (($2 == 200 && $3 == "}]}") || ($2 != 200 && $3 ~ /"}$/))' \
  "$work/term.log" | wc -l)
inferred=$(grep -c '^0 200 }]}$' "$work/term.log" || true)
cut=$(awk '$1 == 18 || ($1 == 0 && $2 == 200 && $3 != "}]}") ||
  ($1 == 0 && $2 != 200 && $2 != "000" && $3 !~ /"}$/)' "$work/term.log")
[ -z "$cut" ] || fail "SIGTERM cut answers (curl status, HTTP code, last bytes): $cut"
[ "$answered" -gt 0 ] ||
  fail "SIGTERM: no request of the curl loops was answered: $(head -n 3 "$work/term.log")"
# Slow clients: python3 holds two connections that stop in the middle of a request (headers
# alone, then half a body) on a server with 2 HTTP threads, a 1 s read timeout and 1 s of
# keep-alive, then asks for an inference on a third connection.
if command -v python3 > /dev/null; then
  serve_start "$work/serve4.log" "$serve" --threads 1 --http-threads 2 --read-timeout-seconds 1 \
    --keep-alive-seconds 1 --access-log off --model "mnist=$work/mnist.safetensors"
  python3 - "$port" "$work/body.json" > "$work/slow.log" 2>&1 << 'PY' || fail "slow clients: $(cat "$work/slow.log")"
import socket, sys, time, urllib.request
port, body = int(sys.argv[1]), open(sys.argv[2], "rb").read()
stalled = []
for partial in (b"POST /v2/models/mnist/infer HTTP/1.1\r\nHost: x\r\n",
                b"POST /v2/models/mnist/infer HTTP/1.1\r\nHost: x\r\nContent-Type: "
                b"application/json\r\nContent-Length: %d\r\n\r\n" % len(body) + body[:len(body) // 2]):
    s = socket.create_connection(("127.0.0.1", port))
    s.sendall(partial)
    stalled.append(s)
time.sleep(0.2)  # both HTTP threads are now reading a stalled request
t0 = time.monotonic()
req = urllib.request.Request("http://127.0.0.1:%d/v2/models/mnist/infer" % port, data=body,
                             headers={"Content-Type": "application/json"})
with urllib.request.urlopen(req, timeout=20) as r:
    status, answer = r.status, r.read()
waited = time.monotonic() - t0
if status != 200 or not answer.endswith(b"}]}"):
    sys.exit("the inference after the stalled clients: %d %r" % (status, answer[-80:]))
if waited > 8:
    sys.exit("the inference waited %.1f s behind the stalled clients" % waited)
for i, s in enumerate(stalled):
    s.settimeout(10)
    t1 = time.monotonic()
    rest = b""
    try:
        while True:
            chunk = s.recv(4096)
            if not chunk:
                break
            rest += chunk
    except socket.timeout:
        sys.exit("stalled connection %d still open after %.1f s more" % (i, time.monotonic() - t1))
    except ConnectionResetError:
        pass
    if not rest.startswith(b"HTTP/1.1 400") or b"read timeout of 1 s" not in rest:
        sys.exit("stalled connection %d: %r, not a 400 naming the read timeout" % (i, rest[:300]))
print("slow clients: the inference answered in %.1f s; both stalled connections answered 400 "
      "and closed" % waited)
PY
  cat "$work/slow.log"
  serve_stop
  [ "$serve_rc" = 0 ] || fail "slow clients: SIGTERM: exit $serve_rc"
else
  echo "serve_fault_check: SKIPPED the slow-client part: no python3"
fi

echo "serve_fault_check: OK (SIGTERM under load: exit 0; $answered whole answers ($inferred" \
  "inferences), none cut, $(awk '$1 != 0' "$work/term.log" | wc -l) requests unanswered" \
  "after the stop)"
