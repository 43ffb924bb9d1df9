#!/usr/bin/env bash
# Builds ember and runs every test: the Release build for this CPU (CTest, which also builds
# and runs the docs' code samples), every public header on its own (g++ and clang), a consumer
# project built against the installed package and the CMake checks for consumers, the API
# reference (Doxygen, no warnings) and the docs' samples against docs/samples/, the tests under
# AddressSanitizer + UndefinedBehaviorSanitizer, builds for every x86-64 level with g++ and
# clang (scripts/check_levels.sh: clang-16 at one other level in full, the -march-dependent
# code at the others), and each libFuzzer harness for a bounded time (scripts/fuzz.sh). Set
# EMBER_DATA to the MNIST folder to include the end-to-end training tests (they are skipped,
# with a message, otherwise). Prints the wall time of each stage last.
#
#   scripts/test.sh                            # everything
#   EMBER_SKIP_SANITIZERS=1 scripts/test.sh    # without the sanitizer build
#   EMBER_SKIP_LEVELS=1 EMBER_SKIP_FUZZ=1 ...  # without the CPU-level builds / the fuzzers
#   EMBER_FUZZ_SECONDS=60                      # time per fuzz target (default 20 here)
#   EMBER_LEVELS="g++:x86-64-v3 clang++-16:x86-64-v4"   # other level builds (check_levels.sh)
set -euo pipefail
cd "$(dirname "$0")/.."
jobs=$(nproc)
times=()
t0=$(date +%s)
stage_start=$t0
stage_name=""
stage() {  # stage "<name>": closes the previous stage's clock and opens one for <name>
  local now
  now=$(date +%s)
  [ -n "$stage_name" ] && times+=("$(printf '%6d s  %s' $((now - stage_start)) "$stage_name")")
  stage_name="$1"
  stage_start=$now
  [ -n "$1" ] && echo "== $1"
  return 0
}

stage "Install the build's packages (scripts/install_deps.sh)"
scripts/install_deps.sh

stage "The tests' Python peer: onnxruntime in .venv-test (scripts/install_py.sh)"
py=$(scripts/install_py.sh | tail -n 1)
if [ -n "$py" ]; then
  export EMBER_PYTHON="${EMBER_PYTHON:-$py}"
fi

stage "The server checks' client: Triton's Python client in .venv-serve (scripts/install_py_serve.sh)"
py=$(scripts/install_py_serve.sh | tail -n 1)
if [ -n "$py" ]; then
  export EMBER_SERVE_PYTHON="${EMBER_SERVE_PYTHON:-$py}"
fi

stage "Release build (g++, -march=native)"
cmake --preset release
cmake --build --preset release -j"$jobs"

stage "Release tests (CTest)"
ctest --preset release

stage "Every public header compiles on its own (g++, clang)"
scripts/check_headers.sh

stage "Install; a find_package(ember) consumer; the CMake checks for consumers"
rm -rf build/install build/consumer
cmake --install build/release --prefix build/install >/dev/null
cmake -S tests/consumer -B build/consumer -DCMAKE_PREFIX_PATH="$PWD/build/install" \
  -DCMAKE_BUILD_TYPE=Release >/dev/null
cmake --build build/consumer -j"$jobs"
build/consumer/consumer
if [ -x build/release/examples/ember_serve ]; then  # built with the server: so is its consumer
  build/consumer/consumer_serve
fi
scripts/check_cmake.sh

stage "Docs: API reference (scripts/check_docs.sh), C++ samples (scripts/check_doc_samples.sh)"
scripts/check_docs.sh
scripts/check_doc_samples.sh

if [ "${EMBER_SKIP_SANITIZERS:-0}" != "1" ]; then
  # The end-to-end tests and the op-level CUDA tests on the harness backend (label emu) are too
  # slow unoptimised; every kernel still runs under the sanitizers in test_kernels.
  stage "ASan + UBSan build"
  cmake --preset asan
  cmake --build --preset asan -j"$jobs"
  stage "Tests under ASan + UBSan (end-to-end and harness-backend tests excluded)"
  ctest --preset asan -LE "e2e|emu"
fi

if [ "${EMBER_SKIP_LEVELS:-0}" != "1" ]; then
  # The native g++ build and the sanitizer build cover this CPU's level. Within CI's time (a
  # full build is ~13 min on 2 cores) one more build runs in full, with clang-16: x86-64-v4 on
  # a CPU without AVX-512 (its AVX-512 paths are compiled nowhere else), else the x86-64-v2
  # baseline (no AVX). Every other compiler x level pair builds tests/levels/test_simd_paths.cpp,
  # the code whose instructions depend on -march, and runs it where the CPU can. (clang's
  # AddressSanitizer build takes over 7 CPU-minutes for one harness kernel test, so the
  # sanitizer build stays with g++.)
  if [ -z "${EMBER_LEVELS:-}" ]; then
    # native: the level the native g++ build already compiles (its -march=native is a superset)
    if grep -q -w avx512bw /proc/cpuinfo; then full="clang++-16:x86-64-v2" native="g++:x86-64-v4"
    elif grep -q -w avx2 /proc/cpuinfo; then full="clang++-16:x86-64-v4" native="g++:x86-64-v3"
    else full="clang++-16:x86-64-v4" native="g++:x86-64-v2"; fi
    EMBER_LEVELS=$full
    for pair in g++:x86-64-v2 g++:x86-64-v3 g++:x86-64-v4 clang++-16:x86-64-v2 \
        clang++-16:x86-64-v3 clang++-16:x86-64-v4; do
      [ "$pair" = "$full" ] || [ "$pair" = "$native" ] || EMBER_LEVELS="$EMBER_LEVELS $pair:simd"
    done
    export EMBER_LEVELS
  fi
  stage "Builds for every x86-64 level (scripts/check_levels.sh): $EMBER_LEVELS"
  scripts/check_levels.sh
fi

if [ "${EMBER_SKIP_FUZZ:-0}" != "1" ]; then
  export EMBER_FUZZ_SECONDS="${EMBER_FUZZ_SECONDS:-20}"
  stage "libFuzzer harnesses, $EMBER_FUZZ_SECONDS s each (scripts/fuzz.sh)"
  scripts/fuzz.sh
fi

stage ""
echo "== Wall time per stage"
printf '  %s\n' "${times[@]}"
printf '%8d s  in all\n' $(( $(date +%s) - t0 ))
echo "== All tests passed"
