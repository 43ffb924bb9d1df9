#!/usr/bin/env bash
# Checks what a consumer of ember's CMake project meets:
#  1. configuring ember as the top-level project without Catch2, Google Benchmark or libpng
#     fails with a message that names each missing package and the option that turns its part
#     off, and succeeds with those options off;
#  2. a project that adds ember with add_subdirectory (as FetchContent does) and does not link
#     ember::cuda builds its `all` without compiling any CUDA, even where nvcc is installed.
set -euo pipefail
cd "$(dirname "$0")/.."
work=build/check-cmake
rm -rf "$work"
mkdir -p "$work"
fail() { echo "check_cmake: $*" >&2; exit 1; }

expect_missing() {  # <package> <option text expected in the message>
  local dir="$work/no-$1" log="$work/no-$1.log"
  if cmake -S . -B "$dir" -DEMBER_ENABLE_CUDA=OFF "-DCMAKE_DISABLE_FIND_PACKAGE_$1=ON" >"$log" 2>&1; then
    fail "configuring without $1 succeeded; it should have failed naming it"
  fi
  grep -q "$2" "$log" || { cat "$log" >&2; fail "the message for a missing $1 does not name $2"; }
  echo "  without $1: refused, naming $2"
}
expect_missing Catch2 "EMBER_BUILD_TESTS=OFF"
expect_missing benchmark "EMBER_BUILD_BENCH=OFF"
expect_missing PNG "EMBER_BUILD_EXAMPLES=OFF"
cmake -S . -B "$work/none" -DEMBER_ENABLE_CUDA=OFF -DEMBER_BUILD_TESTS=OFF -DEMBER_BUILD_BENCH=OFF \
  -DEMBER_BUILD_EXAMPLES=OFF -DCMAKE_DISABLE_FIND_PACKAGE_Catch2=ON \
  -DCMAKE_DISABLE_FIND_PACKAGE_benchmark=ON -DCMAKE_DISABLE_FIND_PACKAGE_PNG=ON \
  >"$work/none.log" 2>&1 || { cat "$work/none.log" >&2; fail "the library alone did not configure"; }
echo "  library alone (tests, benchmarks, examples off; no Catch2, benchmark, libpng): configures"

dir="$work/subdir"
cmake -S tests/consumer_subdir -B "$dir" -DCMAKE_BUILD_TYPE=Release >"$work/subdir.log" 2>&1 ||
  { cat "$work/subdir.log" >&2; fail "the add_subdirectory consumer did not configure"; }
cmake --build "$dir" -j"$(nproc)" -- VERBOSE=1 >"$work/subdir-build.log" 2>&1 ||
  { tail -40 "$work/subdir-build.log" >&2; fail "the add_subdirectory consumer did not build"; }
"$dir/consumer" >/dev/null || fail "the add_subdirectory consumer did not run"
if grep -q -E 'nvcc|\.cu\.o' "$work/subdir-build.log"; then
  grep -E 'nvcc|\.cu\.o' "$work/subdir-build.log" | head -3 >&2
  fail "the add_subdirectory consumer's build compiled CUDA without linking ember::cuda"
fi
if command -v nvcc >/dev/null && grep -q "CUDA backend on" "$work/subdir.log"; then
  echo "  add_subdirectory consumer: built and ran; ember::cuda defined, nvcc never ran"
else
  echo "  add_subdirectory consumer: built and ran (no nvcc here: the CUDA part is not exercised)"
fi
echo "check_cmake: all passed"
