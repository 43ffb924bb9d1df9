#!/usr/bin/env bash
# Compiles every public header alone (as its own translation unit), so no header relies
# on another having been included first.
set -euo pipefail
cd "$(dirname "$0")/.."
eigen=$(pkg-config --cflags eigen3 2>/dev/null || echo "-I/usr/include/eigen3")
eigen=${eigen//-I/-isystem }
fail=0
# backend/cuda/ is nvcc-only (each header says so with #error under a host compiler).
headers=$(cd include && find ember -name '*.hpp' -not -path 'ember/backend/cuda/*' | sort)
compilers=(g++)
command -v clang++-16 >/dev/null && compilers+=(clang++-16)
for cxx in "${compilers[@]}"; do
  for h in $headers; do
    if ! echo "#include \"$h\"" | $cxx -std=c++20 -Wall -Wextra -Wpedantic -Werror -fsyntax-only \
        -Iinclude $eigen -x c++ - ; then
      echo "check_headers: $h does not compile on its own ($cxx)" >&2
      fail=1
    fi
  done
done
[ $fail -eq 0 ] && echo "check_headers: $(echo "$headers" | wc -l) headers compile on their own (${compilers[*]})"
if command -v nvcc >/dev/null; then
  mkdir -p build/check_headers/include/ember
  ln -sfn "$PWD/kernels" build/check_headers/include/ember/kernels
  # (register.hpp is every CUDA target's ember_cuda.cu, so the build compiles it alone already)
  cuda_headers=$(cd include && find ember/backend/cuda -name '*.hpp' -not -name register.hpp | sort)
  for h in $cuda_headers; do
    if ! echo "#include \"$h\"" | nvcc -std=c++20 -arch=sm_90 --expt-relaxed-constexpr \
        -Xcompiler -Wall,-Wextra,-Werror -Iinclude -Ibuild/check_headers/include $eigen -x cu \
        -c - -o /dev/null; then
      echo "check_headers: $h does not compile on its own (nvcc)" >&2
      fail=1
    fi
  done
  [ $fail -eq 0 ] && echo "check_headers: $(echo "$cuda_headers" | wc -l) CUDA headers compile on their own (nvcc)"
fi
exit $fail
