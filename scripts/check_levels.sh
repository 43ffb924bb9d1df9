#!/usr/bin/env bash
# Builds ember's own targets (tests, examples, benchmarks) for each x86-64 CPU level with g++
# and clang, warnings as errors, so that code paths this CPU does not take (AVX-512 on an AVX2
# machine, the plain SSE4.2 paths on an AVX-512 one) are compiled on every CI run; then runs
# the quick tests of each build whose level this CPU can execute.
#
#   scripts/check_levels.sh                       # g++ and clang-16 at x86-64-v2, -v3 and -v4
#   EMBER_LEVELS="g++:x86-64-v4" scripts/check_levels.sh     # any subset, compiler:level
#   EMBER_LEVELS="clang++-16:x86-64-v3:simd" ...  # only tests/levels/test_simd_paths.cpp
#
# An entry compiler:level builds every target; compiler:level:simd builds and runs only
# test_simd_paths: the code whose instructions depend on -march (Eigen's GEMM, the convolution,
# the int8 kernels, a training step through every CPU op), checked against plain loops, at a
# twentieth of a full build's cost. scripts/test.sh builds one level in full and the other
# compiler x level pairs this way.
#
# The op-level harness tests (test_cuda_ops_emu, label emu: CUDA kernels run on the CPU, with no
# CPU-level-specific code) are left out: they are the slowest file to compile and are built and
# run in the main Release build. g++ builds use -O2 (its optimiser's warnings, the class this
# check is for, are the same as at -O3); clang builds -O1 (clang warns from its front end,
# whatever the level, and a missing target feature is an error at any level). Prints the wall
# time of every build and test run.
set -euo pipefail
cd "$(dirname "$0")/.."
jobs=$(nproc)
levels="${EMBER_LEVELS:-g++:x86-64-v2 g++:x86-64-v3 g++:x86-64-v4 clang++-16:x86-64-v2 clang++-16:x86-64-v3 clang++-16:x86-64-v4}"

# Which levels this CPU runs: g++'s __builtin_cpu_supports knows the level names.
probe=build/levels/cpu_levels
mkdir -p build/levels
printf '%s\n' '#include <stdio.h>' \
  'int main(void) { __builtin_cpu_init();' \
  '  printf("x86-64-v2=%d x86-64-v3=%d x86-64-v4=%d\n", __builtin_cpu_supports("x86-64-v2") > 0,' \
  '         __builtin_cpu_supports("x86-64-v3") > 0, __builtin_cpu_supports("x86-64-v4") > 0);' \
  '  return 0; }' > "$probe.c"
gcc "$probe.c" -o "$probe"
runs="$("$probe")"
echo "check_levels: this CPU runs: $runs"

summary=()
for entry in $levels; do
  cxx="${entry%%:*}" rest="${entry#*:}"
  level="${rest%%:*}" what="${rest#*:}"
  [ "$what" = "$rest" ] && what=all
  case $what in all | simd) ;; *) echo "check_levels: '$entry': expected compiler:level[:simd]" >&2; exit 2 ;; esac
  command -v "$cxx" >/dev/null || { echo "check_levels: $cxx not found (scripts/install_deps.sh installs it)" >&2; exit 1; }
  opt=-O2
  case $cxx in clang*) opt=-O1 ;; esac
  start=$(date +%s)
  if [ "$what" = all ]; then
    dir="build/levels/${cxx}-${level}"
    cmake -S . -B "$dir" -DCMAKE_CXX_COMPILER="$cxx" -DCMAKE_BUILD_TYPE=Release \
      -DCMAKE_CXX_FLAGS_RELEASE="$opt -DNDEBUG" -DCMAKE_CXX_FLAGS="-march=$level" \
      -DEMBER_NATIVE=OFF -DEMBER_ENABLE_CUDA=OFF -DEMBER_HARNESS_BACKEND_TESTS=OFF \
      -DEMBER_BUILD_TESTS=ON -DEMBER_BUILD_EXAMPLES=ON -DEMBER_BUILD_BENCH=ON >/dev/null
    cmake --build "$dir" -j"$jobs"
    tests=(-LE "e2e|emu")
  else
    dir="build/levels/${cxx}-${level}-simd"
    cmake -S . -B "$dir" -DCMAKE_CXX_COMPILER="$cxx" -DCMAKE_BUILD_TYPE=Release \
      -DCMAKE_CXX_FLAGS_RELEASE="$opt -DNDEBUG" -DCMAKE_CXX_FLAGS="-march=$level" \
      -DEMBER_NATIVE=OFF -DEMBER_ENABLE_CUDA=OFF -DEMBER_HARNESS_BACKEND_TESTS=OFF \
      -DEMBER_BUILD_TESTS=ON -DEMBER_BUILD_EXAMPLES=OFF -DEMBER_BUILD_BENCH=OFF >/dev/null
    cmake --build "$dir" -j"$jobs" --target test_simd_paths
    tests=(-R '^test_simd_paths$')
  fi
  built=$(( $(date +%s) - start ))
  if [[ " $runs " == *" $level=1 "* ]]; then
    start=$(date +%s)
    ctest --test-dir "$dir" "${tests[@]}" -j"$jobs" --output-on-failure
    ran="tests passed in $(( $(date +%s) - start )) s"
  else
    ran="not run (this CPU lacks $level)"
  fi
  summary+=("$(printf '%-12s %-10s %-4s built in %4d s, %s' "$cxx" "$level" "$what" "$built" "$ran")")
done
echo "== check_levels"
printf '  %s\n' "${summary[@]}"
