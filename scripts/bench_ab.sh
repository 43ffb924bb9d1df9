#!/usr/bin/env bash
# A/B of two builds of one Google Benchmark program (e.g. bench_mnist before and after a
# change), in the same run: the two programs take turns, ROUNDS times, at each thread count,
# each run reporting the median of its repetitions; the table gives, per benchmark and thread
# count, the median over the rounds of each program's time and the ratio B / A. Taking turns
# spreads the machine's noise (other jobs, frequency changes) over both.
#
#   scripts/bench_ab.sh OLD/bench_mnist NEW/bench_mnist
#   EMBER_AB_FILTER='TrainStep' EMBER_AB_THREADS="1 2" EMBER_AB_ROUNDS=5 scripts/bench_ab.sh A B
#
# Settings (environment): EMBER_AB_FILTER (benchmark regex, default TrainStep), EMBER_AB_THREADS
# (default "1 2"), EMBER_AB_ROUNDS (default 5). Each run's repetitions and time per repetition
# are the program's own (bench/common.hpp: 5 repetitions of at least 0.5 s, median reported).
set -euo pipefail
if [ $# -ne 2 ]; then
  echo "usage: $0 PROGRAM_A PROGRAM_B" >&2
  exit 2
fi
a=$1 b=$2
for p in "$a" "$b"; do
  [ -x "$p" ] || { echo "bench_ab.sh: '$p' is not an executable" >&2; exit 2; }
done
filter=${EMBER_AB_FILTER:-TrainStep}
threads=${EMBER_AB_THREADS:-1 2}
rounds=${EMBER_AB_ROUNDS:-5}
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT

for t in $threads; do
  for r in $(seq 1 "$rounds"); do
    for side in A B; do
      prog=$a
      [ "$side" = B ] && prog=$b
      echo "bench_ab.sh: round $r/$rounds, $t thread(s), $side" >&2
      "$prog" --threads="$t" --benchmark_filter="$filter" --benchmark_format=json >"$out/$side-$t-$r.json" 2>/dev/null
    done
  done
done

python3 - "$out" "$a" "$b" <<'EOF'
import json, os, statistics, sys
out, a, b = sys.argv[1:4]
runs = {}  # (benchmark, threads, side) -> [median ms of each round]
for f in sorted(os.listdir(out)):
    side, threads, _ = f[:-5].split("-")
    for row in json.load(open(os.path.join(out, f)))["benchmarks"]:
        if row.get("aggregate_name") != "median":
            continue
        scale = {"ns": 1e-6, "us": 1e-3, "ms": 1.0, "s": 1e3}[row["time_unit"]]
        runs.setdefault((row["run_name"], int(threads), side), []).append(row["real_time"] * scale)
print(f"A: {a}\nB: {b}")
print(f"{'benchmark':<24} {'threads':>7} {'A ms':>9} {'B ms':>9} {'B/A':>7}  rounds")
for (name, threads, side) in sorted(k for k in runs if k[2] == "A"):
    ta, tb = runs[(name, threads, "A")], runs.get((name, threads, "B"), [])
    if not tb:
        continue
    ma, mb = statistics.median(ta), statistics.median(tb)
    name = name.split("/")[0]
    print(f"{name:<24} {threads:>7} {ma:9.3f} {mb:9.3f} {mb / ma:7.3f}  {len(ta)}")
EOF
