#!/usr/bin/env bash
# Compiles every public header alone (as its own translation unit), so no header relies
# on another having been included first.
set -euo pipefail
cd "$(dirname "$0")/.."
eigen=$(pkg-config --cflags eigen3 2>/dev/null || echo "-I/usr/include/eigen3")
eigen=${eigen//-I/-isystem }
fail=0
jobs=$(nproc)
# ember/dist/ needs MPI's header (ember::dist); nccl.hpp is CUDA host code (nvcc, below).
mpi=$(pkg-config --cflags ompi-c 2>/dev/null || true)
mpi=${mpi//-I/-isystem }
headers=$(cd include && find ember -name '*.hpp' -not -path 'ember/backend/cuda/*' \
  -not -name nccl.hpp | sort)
if [ -z "$mpi" ] && ! echo '#include <mpi.h>' | g++ -fsyntax-only -x c++ - 2>/dev/null; then
  echo "check_headers: no MPI (libopenmpi-dev): ember/dist/comm.hpp and ddp.hpp not checked"
  headers=$(echo "$headers" | grep -v -e 'ember/dist/comm.hpp' -e 'ember/dist/ddp.hpp')
fi
compilers=(g++)
command -v clang++-16 >/dev/null && compilers+=(clang++-16)
# one_header CXX HEADER: compiles HEADER alone; on failure prints the compiler's output.
one_header() {
  local out
  if ! out=$(echo "#include \"$2\"" | $1 -std=c++20 -Wall -Wextra -Wpedantic -Werror \
      -fsyntax-only -Iinclude $eigen $mpi -x c++ - 2>&1); then
    printf '%s\ncheck_headers: %s does not compile on its own (%s)\n' "$out" "$2" "$1" >&2
    return 1
  fi
}
export -f one_header
export eigen mpi
# every (compiler, header) pair, $jobs at a time
for cxx in "${compilers[@]}"; do
  for h in $headers; do printf '%s %s\n' "$cxx" "$h"; done
done | xargs -P "$jobs" -n 2 bash -c 'one_header "$0" "$1"' || fail=1
[ $fail -eq 0 ] && echo "check_headers: $(echo "$headers" | wc -l) headers compile on their own (${compilers[*]})"
if command -v nvcc >/dev/null; then
  mkdir -p build/check_headers/include/ember
  ln -sfn "$PWD/kernels" build/check_headers/include/ember/kernels
  # (register.hpp is every CUDA target's ember_cuda.cu, so the build compiles it alone already)
  cuda_headers=$(cd include && find ember/backend/cuda -name '*.hpp' -not -name register.hpp | sort)
  [ -n "$mpi" ] && cuda_headers="$cuda_headers ember/dist/nccl.hpp"  # NCCL: the CUDA toolkit's
  one_cuda_header() {
    local out
    if ! out=$(echo "#include \"$1\"" | nvcc -std=c++20 -arch=sm_90 --expt-relaxed-constexpr \
        -Xcompiler -Wall,-Wextra,-Werror -Iinclude -Ibuild/check_headers/include $eigen $mpi -x cu \
        -c - -o /dev/null 2>&1); then
      printf '%s\ncheck_headers: %s does not compile on its own (nvcc)\n' "$out" "$1" >&2
      return 1
    fi
  }
  export -f one_cuda_header
  printf '%s\n' $cuda_headers | xargs -P "$jobs" -n 1 bash -c 'one_cuda_header "$0"' || fail=1
  [ $fail -eq 0 ] && echo "check_headers: $(echo "$cuda_headers" | wc -l) CUDA headers compile on their own (nvcc)"
fi
exit $fail
