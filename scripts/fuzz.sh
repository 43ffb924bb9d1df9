#!/usr/bin/env bash
# Builds the libFuzzer harnesses (tests/fuzz/fuzz_*.cpp) with clang-16, AddressSanitizer and
# UndefinedBehaviorSanitizer, then runs each for EMBER_FUZZ_SECONDS seconds, starting from its
# seed corpus (tests/fuzz/corpus/<name>/, copied first: the committed corpus is not modified),
# and prints a table: target, executions, result. Exits non-zero if any harness crashed, hit
# a sanitizer report, ran out of time or memory on one input, or did not run.
#
#   scripts/fuzz.sh                  # every harness, 60 s each
#   scripts/fuzz.sh fuzz_json        # some of them
#   EMBER_FUZZ_SECONDS=600 scripts/fuzz.sh fuzz_idx_raw
#
# Settings (environment): EMBER_FUZZ_SECONDS (60), EMBER_FUZZ_BUILD (build/fuzz),
# EMBER_FUZZ_MALLOC_MB (1024: one allocation this large is a finding), EMBER_FUZZ_RSS_MB
# (2048), EMBER_FUZZ_TIMEOUT (10 s for one input), EMBER_FUZZ_BUILD_JOBS (nproc),
# EMBER_FUZZ_TMP (/dev/shm, else the system's temporary folder), ASAN_OPTIONS, UBSAN_OPTIONS.
# EMBER_FUZZ_JOBS (nproc): how many harnesses run at once.
# A finding's input is kept in <build>/findings/<target>/; rerun it with
# <build>/tests/fuzz/<target> <file>. Needs clang-16 and libclang-rt-16-dev (libFuzzer); when
# they are missing it runs scripts/install_deps.sh, which installs them (root or sudo).
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
seconds=${EMBER_FUZZ_SECONDS:-60}
build=${EMBER_FUZZ_BUILD:-$root/build/fuzz}
malloc_mb=${EMBER_FUZZ_MALLOC_MB:-1024}
rss_mb=${EMBER_FUZZ_RSS_MB:-2048}
timeout=${EMBER_FUZZ_TIMEOUT:-10}
jobs=${EMBER_FUZZ_BUILD_JOBS:-$(nproc)}
cxx=clang++-16

die() {
  echo "fuzz.sh: $*" >&2
  exit 2
}

# ---- the compiler and libFuzzer ----------------------------------------------------------
# Working corpora and the harnesses' temporary files in memory (/dev/shm) where there is one:
# the file-reading harnesses run three times faster than on a disk.
shm=${EMBER_FUZZ_TMP:-/dev/shm}
scratch=$(mktemp -d "$shm/ember_fuzz.XXXXXX" 2>/dev/null || mktemp -d)
trap 'rm -rf "$scratch"' EXIT
can_fuzz() {
  command -v "$cxx" >/dev/null 2>&1 || return 1
  echo 'extern "C" int LLVMFuzzerTestOneInput(const unsigned char*, unsigned long) { return 0; }' \
    >"$scratch/probe.cpp"
  "$cxx" -fsanitize=fuzzer,address,undefined "$scratch/probe.cpp" -o "$scratch/probe" \
    >"$scratch/probe.log" 2>&1
}
if ! can_fuzz; then
  echo "fuzz.sh: $cxx with libFuzzer is missing; installing (scripts/install_deps.sh)"
  "$root/scripts/install_deps.sh" || die "could not install clang-16 and libclang-rt-16-dev"
  can_fuzz || die "$cxx cannot link a libFuzzer program (is libclang-rt-16-dev installed?):
$(cat "$scratch/probe.log" 2>/dev/null)"
fi

# ---- build -------------------------------------------------------------------------------
t0=$(date +%s)
# -O2 -g without NDEBUG: fast enough to fuzz, asserts kept, readable stack traces.
cmake -S "$root" -B "$build" -DCMAKE_CXX_COMPILER="$cxx" \
  -DCMAKE_BUILD_TYPE=RelWithDebInfo -DCMAKE_CXX_FLAGS_RELWITHDEBINFO="-O2 -g" \
  -DEMBER_BUILD_FUZZERS=ON -DEMBER_BUILD_TESTS=OFF -DEMBER_BUILD_EXAMPLES=OFF \
  -DEMBER_BUILD_BENCH=OFF -DEMBER_ENABLE_CUDA=OFF >"$scratch/configure.log" 2>&1 ||
  { cat "$scratch/configure.log" >&2; die "configure failed"; }
cmake --build "$build" --target ember_fuzzers -j"$jobs" || die "build failed"
t1=$(date +%s)
echo "fuzz.sh: built in $((t1 - t0)) s"

# ---- run ---------------------------------------------------------------------------------
if [ $# -gt 0 ]; then
  targets=("$@")
else
  targets=()
  for exe in "$build"/tests/fuzz/fuzz_*; do
    [ -x "$exe" ] && [ -f "$exe" ] && targets+=("$(basename "$exe")")
  done
fi
[ ${#targets[@]} -gt 0 ] || die "no harness built in $build/tests/fuzz"

# One target: its run in $scratch/<target>/, its table row in $scratch/<target>/result; fails
# when the harness did. The targets run fuzz_jobs at a time (each harness is one process).
fuzz_one() {
  local target=$1 exe name work args rc execs result kept found
  exe="$build/tests/fuzz/$target"
  name=${target#fuzz_}
  work="$scratch/$target"
  mkdir -p "$work/corpus" "$work/artifacts" "$work/tmp"
  if [ -d "$root/tests/fuzz/corpus/$name" ]; then
    cp -R "$root/tests/fuzz/corpus/$name/." "$work/corpus/"
  fi
  args=(-max_total_time="$seconds" -malloc_limit_mb="$malloc_mb" -rss_limit_mb="$rss_mb"
    -timeout="$timeout" -print_final_stats=1 -artifact_prefix="$work/artifacts/")
  [ -f "$root/tests/fuzz/$name.dict" ] && args+=(-dict="$root/tests/fuzz/$name.dict")
  echo "fuzz.sh: $target for $seconds s"
  rc=0
  if [ ! -x "$exe" ]; then
    echo "not built" >"$work/log"
    rc=127
  else
    # The harnesses' temporary files go to the working folder, removed at the end. Most inputs
    # end in a thrown ember::Error, and ASan's stack-use-after-return check (on by default with
    # clang 15+) then spends half the time collecting fake stack frames: it is off here.
    ASAN_DEFAULT=abort_on_error=1:detect_leaks=1:detect_stack_use_after_return=0
    TMPDIR="$work/tmp" ASAN_OPTIONS="${ASAN_OPTIONS:-$ASAN_DEFAULT}" \
      UBSAN_OPTIONS="${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}" \
      "$exe" "${args[@]}" "$work/corpus" >"$work/log" 2>&1 || rc=$?
  fi
  execs=$(awk '/stat::number_of_executed_units/ {n = $2} END {print n + 0}' "$work/log")
  if [ "$rc" -eq 0 ]; then
    result="ok"
  else
    kept="$build/findings/$target"
    mkdir -p "$kept"
    cp "$work/log" "$kept/log.txt"
    found=$(find "$work/artifacts" -type f | head -n 1)
    if [ -n "$found" ]; then
      cp "$work/artifacts/"* "$kept/"
      result="FAILED (exit $rc): $kept/$(basename "$found")"
    else
      result="FAILED (exit $rc): $kept/log.txt"
    fi
    grep -m 3 -E "ERROR|SUMMARY|runtime error|property violated" "$work/log" |
      sed 's/^/    /' || true
  fi
  echo "$target|$execs|$result" >"$work/result"
  [ "$rc" -eq 0 ]
}
fuzz_jobs=${EMBER_FUZZ_JOBS:-$(nproc)}
failed=0
running=0
for target in "${targets[@]}"; do
  fuzz_one "$target" &
  running=$((running + 1))
  if [ "$running" -ge "$fuzz_jobs" ]; then
    wait -n || failed=1
    running=$((running - 1))
  fi
done
while [ "$running" -gt 0 ]; do
  wait -n || failed=1
  running=$((running - 1))
done
results=()
for target in "${targets[@]}"; do
  if [ -f "$scratch/$target/result" ]; then
    results+=("$(cat "$scratch/$target/result")")
  else
    results+=("$target|0|FAILED: no result")
    failed=1
  fi
done
t2=$(date +%s)

echo
printf '%-24s %14s  %s\n' target executions result
for row in "${results[@]}"; do
  IFS='|' read -r target execs result <<<"$row"
  printf '%-24s %14s  %s\n' "$target" "$execs" "$result"
done
echo "fuzz.sh: build $((t1 - t0)) s, runs $((t2 - t1)) s ($seconds s per target)"
exit "$failed"
