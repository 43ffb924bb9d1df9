#!/bin/sh
# serve_curl_check.sh EMBER_SERVE MNIST_TRAIN [DATA_DIR]: the curl examples of docs/serving.md
# work as written. The ```sh block after the line `<!-- ci: serve_curl_check -->` is run by
# bash (-e, pipefail) against `ember_serve --model mnist=mnist_cnn.safetensors`, started here
# on a free loopback port (localhost:8000 in the block becomes that port), with digit.png (a 7,
# dark on light, 300 x 300: tests/fixtures/png/seven_300_light.png) in the working folder.
# Every curl in the block must get HTTP 200, and its answer must match the comment lines right
# under it: the same text once every number is made 0 (the numbers depend on the model) and
# "..." stands for anything. So the docs and this test cannot drift apart.
# On real MNIST (DATA_DIR, else $EMBER_DATA; exit 77, "skipped", when neither is set): the
# model is a short training (1 epoch, 3,000 images). Needs curl and python3 (else exit 77).
# Files go to $EMBER_TEST_TMP/serve_curl_check (CTest sets it), else to a temporary folder.
set -eu

. "$(dirname "$0")/common.sh"
. "$(dirname "$0")/serve_common.sh"
e2e_args 2 3 "EMBER_SERVE MNIST_TRAIN [DATA_DIR]" "$@"
serve=$(cd "$(dirname "$1")" && pwd)/$(basename "$1")
e2e_data "${3:-}"
root=$(cd "$(dirname "$0")/../.." && pwd)
for tool in curl python3 bash; do
  command -v $tool > /dev/null || { echo "SKIPPED: no $tool"; exit 77; }
done
e2e_work serve_curl_check

"$2" --data "$data" --limit-train 3000 --val-size 500 --limit-test 1000 --threads 2 --epochs 1 \
  --log-interval 0 --save-model "$work/mnist_cnn.safetensors" > "$work/train.log" 2>&1 ||
  fail "mnist_train failed (see $work/train.log)"
cp "$root/tests/fixtures/png/seven_300_light.png" "$work/digit.png"
cd "$work"
serve_start "$work/serve.log" "$serve" --threads 2 --access-log off \
  --model mnist=mnist_cnn.safetensors

# The block, the expected answers, and a curl that records each call's body and HTTP code.
python3 - "$root/docs/serving.md" "$work" "$port" <<'PY' || fail "could not read the curl block"
import json, re, sys
doc, work, port = sys.argv[1], sys.argv[2], sys.argv[3]
lines = open(doc).read().split("\n")
start = lines.index("<!-- ci: serve_curl_check -->")
assert lines[start + 1] == "```sh", "the marker must come right before a ```sh fence"
end = lines.index("```", start + 2)
block = lines[start + 2:end]
expected = []  # for each line that starts with curl: the comment lines of its answer
for i, line in enumerate(block):
    if not line.startswith("curl "):
        continue
    j = i + 1
    while j < len(block) and block[j] and not block[j].startswith(("#", "curl ")):
        j += 1
    answer = []
    while j < len(block) and block[j].startswith("# "):
        answer.append(block[j][2:])
        j += 1
    expected.append("\n".join(answer))
assert expected, "no curl command in the block"
script = "\n".join(block).replace("localhost:8000", "127.0.0.1:" + port)
prelude = """curl() {
  n=$(( $(cat "$EMBER_CURL_DIR/count") + 1 )); echo $n > "$EMBER_CURL_DIR/count"
  command curl -o "$EMBER_CURL_DIR/$n.body" -w '%{http_code}' "$@" > "$EMBER_CURL_DIR/$n.code"
  cat "$EMBER_CURL_DIR/$n.body"
}
"""
open(work + "/block.sh", "w").write(prelude + script + "\n")
json.dump(expected, open(work + "/expected.json", "w"))
print(f"serve_curl_check: {len(expected)} curl commands in docs/serving.md")
PY

mkdir -p "$work/calls"
echo 0 > "$work/calls/count"
EMBER_CURL_DIR=$work/calls bash -e -o pipefail block.sh > block.out 2>&1 ||
  fail "the docs' curl block failed: $(cat "$work/block.out")"

python3 - "$work" <<'PY' || fail "the answers differ from docs/serving.md's (above)"
import json, re, sys
work = sys.argv[1]
expected = json.load(open(work + "/expected.json"))
calls = int(open(work + "/calls/count").read())
assert calls == len(expected), f"{calls} curl calls ran, the block has {len(expected)}"
number = re.compile(r"-?\d+(\.\d+)?([eE][-+]?\d+)?")
ok = True
for n, want in enumerate(expected, 1):
    code = open(f"{work}/calls/{n}.code").read()
    body = open(f"{work}/calls/{n}.body", errors="replace").read().rstrip("\n")
    if code != "200":
        print(f"curl {n}: HTTP {code}: {body[:300]}")
        ok = False
        continue
    if not want:
        continue
    pattern = ".*".join(re.escape(part) for part in number.sub("0", want).split("..."))
    if not re.fullmatch(pattern, number.sub("0", body), re.S):
        print(f"curl {n}: the answer\n  {body[:400]}\ndoes not match the docs'\n  {want}")
        ok = False
sys.exit(0 if ok else 1)
PY

serve_stop
[ "$serve_rc" = 0 ] || fail "ember_serve exited $serve_rc after SIGTERM: $(tail -n 5 "$work/serve.log")"
echo "serve_curl_check: OK ($(cat "$work/calls/count") curl calls as docs/serving.md shows)"
