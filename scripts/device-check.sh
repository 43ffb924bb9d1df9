#!/usr/bin/env bash
# The one script run on a GPU machine (written for an H200): builds ember's CUDA targets, runs the CUDA
# tests, trains MNIST on the GPU with both backend choices, times the kernels against cuBLAS /
# cuDNN and the same work in PyTorch, and prints a short table LAST.
#
#   scripts/device-check.sh --prepare   on the build machine first: copies what the GPU
#                                       machine may lack into ignored folders to be copied
#                                       along (see below), and prints their list
#   scripts/device-check.sh             on the GPU machine (from the repository root; $OUT: output)
#
# The GPU machine is expected to have nvcc, CMake, ninja, python3 with torch and cuDNN inside
# the torch wheels, but maybe not Eigen, Catch2, Google Benchmark or zlib's headers, and it
# cannot download anything. --prepare copies this machine's copies into build/devdeps (with
# their CMake package files, relocatable) and the MNIST files into data/mnist; both paths are
# ignored by git, so whatever copies the working tree to the GPU machine must copy them too:
#   extra paths: ["build/devdeps", "data/mnist"]        (+ "build/device-prebuilt", see below)
# Optional: EMBER_PREBUILT_FROM=<build dir> scripts/device-check.sh --prepare also copies (and
# strips) the five executables of a CUDA build made here into build/device-prebuilt; the
# device run uses those that start there (all libraries found) and builds only the others,
# which saves minutes of device time. Carry build/device-prebuilt too then.
#
# Steps (each with a time limit; a failing step is recorded and the script goes on):
#   env      versions (GPU, driver, nvcc, cmake, g++, torch, cuDNN)
#   build    cmake configure (Release, CUDA arch 90, EMBER_ENABLE_CUDA=ON) + build of
#            test_kernels_cuda test_cuda_runtime test_cuda_ops mnist_train bench_cuda_kernels;
#            host -Werror is dropped by a compiler wrapper (the device's g++ is not the one the
#            code is checked with here; warnings are counted instead; EMBER_DEVICE_WERROR=1
#            keeps -Werror)
#   torch    pytorch_mnist_cuda.py (seed recipe; --graph; stronger recipe) and
#            pytorch_kernels_cuda.py: run WHILE the build compiles (pinned to 2 CPUs, the build
#            to the others) unless EMBER_CHECK_SERIAL=1; the GPU is otherwise idle then
#   tests    the three CUDA test programs (Catch2)
#   mnist    mnist_train --device cuda --epochs 5 with EMBER_GEMM/EMBER_CONV = custom/custom
#            and cublas/cudnn, then the stronger recipe (--lr 0.02 --momentum 0.9 --step-size 3
#            --gamma 0.1) with the faster choice, if time allows
#   bench    bench_cuda_kernels, 5 repetitions (fewer when time is short), JSON to $OUT
#   table    parsed by a python3 snippet, printed last and saved as $OUT/summary.txt
# The whole run stays within EMBER_CHECK_BUDGET seconds (default 480; a runner's own time
# limit should be at least that plus 30).
#
# Files under $OUT (eight, so that a runner which returns a few files gets them all): env_build.log tests.log mnist.log
# bench_cuda_kernels.log bench_cuda_kernels.json pytorch_kernels.log pytorch_kernels.json
# summary.txt
#
# MNIST: $EMBER_DATA, else data/mnist, else ../shared/data/mnist, else shared/data/mnist.
# Testing parts of it elsewhere: EMBER_CHECK_SKIP=build,torch,tests,mnist,bench (any subset).

set -euo pipefail

repo_root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$repo_root"

DEVDEPS="$repo_root/build/devdeps"
PREBUILT="$repo_root/build/device-prebuilt"
TARGETS=(test_kernels_cuda test_cuda_runtime test_cuda_ops mnist_train bench_cuda_kernels)

# ---- --prepare (run here, not on the device) -------------------------------------------------
prepare() {
  echo "preparing build/devdeps (Eigen, Catch2, Google Benchmark, zlib) and data/mnist"
  rm -rf "$DEVDEPS"
  mkdir -p "$DEVDEPS"/include "$DEVDEPS"/share/eigen3/cmake "$DEVDEPS"/lib/cmake/Catch2 \
           "$DEVDEPS"/lib/x86_64-linux-gnu/cmake/benchmark "$DEVDEPS"/zlib/include "$DEVDEPS"/zlib/lib
  # Eigen (the library uses Eigen/Core only: unsupported/ stays behind)
  mkdir -p "$DEVDEPS"/include/eigen3
  cp -r /usr/include/eigen3/Eigen /usr/include/eigen3/signature_of_eigen3_matrix_library "$DEVDEPS"/include/eigen3/
  cp /usr/share/eigen3/cmake/*.cmake "$DEVDEPS"/share/eigen3/cmake/
  # Catch2 2.x (single header + relocatable package files)
  cp -r /usr/include/catch2 "$DEVDEPS"/include/
  cp /usr/lib/cmake/Catch2/*.cmake "$DEVDEPS"/lib/cmake/Catch2/
  cp /usr/lib/libCatch2WithMain.a "$DEVDEPS"/lib/  # the package files check that it exists
  # Google Benchmark (shared library, its soname link, the static main the package files check)
  cp -r /usr/include/benchmark "$DEVDEPS"/include/
  cp /usr/lib/x86_64-linux-gnu/cmake/benchmark/*.cmake "$DEVDEPS"/lib/x86_64-linux-gnu/cmake/benchmark/
  cp -L /usr/lib/x86_64-linux-gnu/libbenchmark.so* /usr/lib/x86_64-linux-gnu/libbenchmark_main.a \
        "$DEVDEPS"/lib/x86_64-linux-gnu/
  # zlib (headers + static library; used only when the device has no zlib development files)
  cp /usr/include/zlib.h /usr/include/zconf.h "$DEVDEPS"/zlib/include/
  cp /usr/lib/x86_64-linux-gnu/libz.a "$DEVDEPS"/zlib/lib/
  # MNIST
  local src="${EMBER_DATA:-}"
  for d in "$src" data/mnist ../shared/data/mnist /work/shared/data/mnist; do
    if [[ -n "$d" && -f "$d/train-images-idx3-ubyte.gz" ]]; then src="$d"; break; fi
  done
  if [[ "$(cd "$src" 2>/dev/null && pwd)" != "$repo_root/data/mnist" ]]; then
    mkdir -p data/mnist
    cp "$src"/{train,t10k}-{images-idx3,labels-idx1}-ubyte.gz data/mnist/
  fi
  # Optional prebuilt executables from a CUDA build made here
  if [[ -n "${EMBER_PREBUILT_FROM:-}" ]]; then
    rm -rf "$PREBUILT"
    mkdir -p "$PREBUILT"
    for t in "${TARGETS[@]}"; do
      local exe
      exe="$(find "$EMBER_PREBUILT_FROM" -maxdepth 4 -type f -name "$t" -perm -u+x 2>/dev/null | head -n 1 || true)"
      if [[ -n "$exe" ]]; then
        cp "$exe" "$PREBUILT/$t"
        strip "$PREBUILT/$t" 2>/dev/null || true
      else
        echo "  (no $t under $EMBER_PREBUILT_FROM)"
      fi
    done
    du -sh "$PREBUILT"
  fi
  du -sh "$DEVDEPS" data/mnist
  echo "copy along: [\"build/devdeps\", \"data/mnist\"$([[ -d "$PREBUILT" ]] && echo ', "build/device-prebuilt"')]"
  echo "(both are ignored by git: /build*/ and /data/ in .gitignore)"
}

if [[ "${1:-}" == "--prepare" ]]; then
  prepare
  exit 0
fi

# ---- the device run -------------------------------------------------------------------------------
T0=$(date +%s)
BUDGET=${EMBER_CHECK_BUDGET:-480}
DEADLINE=$((T0 + BUDGET))
RESERVE=20  # seconds kept for the table
OUT="${OUT:-$repo_root/out/device-check}"
mkdir -p "$OUT"
WORK="$(mktemp -d /tmp/ember-device-check.XXXXXX)"
STATUS="$WORK/status.tsv"
: >"$STATUS"
ENVLOG="$OUT/env_build.log"
: >"$ENVLOG"
NPROC=$(nproc 2>/dev/null || echo 4)
SKIP=",${EMBER_CHECK_SKIP:-},"
skipped() { [[ "$SKIP" == *",$1,"* ]]; }
export PYTHONUNBUFFERED=1

say() { echo "[$(($(date +%s) - T0))s] $*"; }
record() { printf '%s\t%s\t%s\t%s\n' "$1" "$2" "$3" "${4:-}" >>"$STATUS"; }

# run_step NAME CAP LOG cmd...: runs cmd with a time limit of min(CAP, time left), output to
# $WORK/NAME.out and appended to LOG; records OK / TIMEOUT / FAIL(rc) / SKIPPED; never fails.
run_step() {
  local name="$1" cap="$2" log="$3"
  shift 3
  local left=$((${STEP_DEADLINE:-$DEADLINE} - $(date +%s) - RESERVE))
  local limit=$cap
  ((left < limit)) && limit=$left
  if ((limit < 10)); then
    record "$name" SKIPPED 0 "no time left"
    echo "==== [$name] SKIPPED: no time left" >>"$log"
    say "$name: SKIPPED (no time left)"
    return 0
  fi
  local start rc=0 status
  start=$(date +%s)
  {
    echo "==== [$name] $(date -u +%T) limit ${limit}s: $*"
  } >>"$log"
  timeout --kill-after=10 "$limit" "$@" >"$WORK/$name.out" 2>&1 || rc=$?
  local dur=$(($(date +%s) - start))
  case $rc in
    0) status=OK ;;
    124 | 137) status=TIMEOUT ;;
    77) status="SKIPPED(77)" ;;
    *) status="FAIL(rc=$rc)" ;;
  esac
  cat "$WORK/$name.out" >>"$log"
  echo "==== [$name] $status after ${dur}s" >>"$log"
  record "$name" "$status" "$dur" ""
  say "$name: $status (${dur}s)"
  return 0
}

# ---- environment ------------------------------------------------------------------------------
env_info() {
  echo "date: $(date -u)"
  echo "host: $(uname -a)"
  echo "cpus: $NPROC"
  command -v nvidia-smi >/dev/null && nvidia-smi --query-gpu=name,driver_version,memory.total,clocks.sm,clocks.max.sm,temperature.gpu,power.draw --format=csv || echo "nvidia-smi: not found"
  command -v nvcc >/dev/null && nvcc --version | tail -n 2 || echo "nvcc: not on PATH"
  ls -d /usr/local/cuda* 2>/dev/null || true
  cmake --version 2>/dev/null | head -n 1 || echo "cmake: not found"
  ninja --version 2>/dev/null | sed 's/^/ninja /' || echo "ninja: not found"
  g++ --version 2>/dev/null | head -n 1 || echo "g++: not found"
  python3 -c 'import torch; print("torch", torch.__version__, "cuda", torch.version.cuda, "cudnn", torch.backends.cudnn.version(), "gpu", torch.cuda.get_device_name(0))' 2>&1 | tail -n 1
  ldconfig -p 2>/dev/null | grep -E 'libcudnn\.so|libcublas\.so|libbenchmark|libz\.so' | head -n 20 || true
  for f in /usr/include/eigen3/Eigen/Core /usr/include/catch2/catch.hpp /usr/include/benchmark/benchmark.h /usr/include/zlib.h /usr/include/cudnn_version.h /usr/include/x86_64-linux-gnu/cudnn_version.h /usr/local/cuda/include/cudnn_version.h; do
    [[ -e "$f" ]] && echo "present: $f" || echo "absent:  $f"
  done
  df -h "$repo_root" /tmp 2>/dev/null | tail -n 2
  free -g 2>/dev/null | head -n 2
}
say "ember device check: budget ${BUDGET}s, output $OUT, work $WORK"
env_info >>"$ENVLOG" 2>&1 || true

# ---- toolchain, libraries, data ------------------------------------------------------------------
if ! command -v nvcc >/dev/null; then
  for d in /usr/local/cuda/bin /usr/local/cuda-*/bin; do
    [[ -x "$d/nvcc" ]] && export PATH="$d:$PATH" && break
  done
fi
CUDA_HOME_GUESS="$(dirname "$(dirname "$(command -v nvcc 2>/dev/null || echo /usr/local/cuda/bin/nvcc)")")"

cmake_args=(-DCMAKE_BUILD_TYPE=Release -DEMBER_ENABLE_CUDA=ON -DCMAKE_CUDA_ARCHITECTURES=90
            -DEMBER_BUILD_TESTS=ON -DEMBER_BUILD_EXAMPLES=ON)
notes=()
ld_dirs=("$CUDA_HOME_GUESS/lib64" "$CUDA_HOME_GUESS/targets/x86_64-linux/lib")

find_config() {  # find_config NAME: a system package config file NAME (Config.cmake) or nothing
  find /usr/lib /usr/share /usr/local/lib /usr/local/share -maxdepth 5 -name "$1" 2>/dev/null | head -n 1
}

# Eigen 3.4 (config mode): the carried copy first (the version the code is checked with here).
if [[ -f "$DEVDEPS/share/eigen3/cmake/Eigen3Config.cmake" ]]; then
  cmake_args+=(-DEigen3_DIR="$DEVDEPS/share/eigen3/cmake"); notes+=("eigen=carried")
elif [[ -n "$(find_config Eigen3Config.cmake)" ]]; then
  notes+=("eigen=system")
else
  notes+=("eigen=MISSING")
fi
# Catch2 2.x: without it no tests can be built.
if [[ -f "$DEVDEPS/lib/cmake/Catch2/Catch2Config.cmake" ]]; then
  cmake_args+=(-DCatch2_DIR="$DEVDEPS/lib/cmake/Catch2"); notes+=("catch2=carried")
elif [[ -f /usr/include/catch2/catch.hpp && -n "$(find_config Catch2Config.cmake)" ]]; then
  notes+=("catch2=system")
else
  cmake_args+=(-DEMBER_BUILD_TESTS=OFF); notes+=("catch2=MISSING(tests not built)")
fi
# Google Benchmark: without it no bench_cuda_kernels.
if [[ -f "$DEVDEPS/lib/x86_64-linux-gnu/cmake/benchmark/benchmarkConfig.cmake" ]]; then
  cmake_args+=(-Dbenchmark_DIR="$DEVDEPS/lib/x86_64-linux-gnu/cmake/benchmark" -DEMBER_BUILD_BENCH=ON)
  ld_dirs+=("$DEVDEPS/lib/x86_64-linux-gnu"); notes+=("benchmark=carried")
elif [[ -n "$(find_config benchmarkConfig.cmake)" ]]; then
  cmake_args+=(-DEMBER_BUILD_BENCH=ON); notes+=("benchmark=system")
else
  cmake_args+=(-DEMBER_BUILD_BENCH=OFF); notes+=("benchmark=MISSING(no kernel benchmarks)")
fi
# zlib: the system's when its headers and linkable library are there, else the carried static one.
if [[ -f /usr/include/zlib.h ]] && ls /usr/lib/x86_64-linux-gnu/libz.so /usr/lib64/libz.so /usr/lib/libz.so >/dev/null 2>&1; then
  notes+=("zlib=system")
elif [[ -f "$DEVDEPS/zlib/lib/libz.a" ]]; then
  cmake_args+=(-DZLIB_INCLUDE_DIR="$DEVDEPS/zlib/include" -DZLIB_LIBRARY="$DEVDEPS/zlib/lib/libz.a")
  notes+=("zlib=carried")
else
  notes+=("zlib=MISSING")
fi
# cuDNN 9: a system installation, else the one inside PyTorch's wheels (nvidia-cudnn-cu13),
# whose library directory has libcudnn.so.9 but no unversioned link.
cudnn_inc="" cudnn_lib=""
for d in /usr/include /usr/include/x86_64-linux-gnu "$CUDA_HOME_GUESS/include" /usr/local/cuda/include; do
  [[ "${EMBER_CHECK_NO_SYSTEM_CUDNN:-0}" == 1 ]] && break  # (for testing the wheel path)
  if [[ -f "$d/cudnn_version.h" ]]; then cudnn_inc="$d"; break; fi
done
if [[ -z "$cudnn_inc" ]]; then
  py_cudnn="$(python3 -c 'import nvidia.cudnn as m; print(list(m.__path__)[0])' 2>/dev/null || true)"
  if [[ -n "$py_cudnn" && -f "$py_cudnn/include/cudnn_version.h" ]]; then
    cudnn_inc="$py_cudnn/include"
    cudnn_lib="$(ls "$py_cudnn"/lib/libcudnn.so "$py_cudnn"/lib/libcudnn.so.[0-9]* 2>/dev/null | head -n 1 || true)"
    ld_dirs+=("$py_cudnn/lib")
  fi
fi
if [[ -z "$cudnn_inc" ]]; then
  f="$(timeout 30 find / -xdev -name cudnn_version.h -not -path '*/proc/*' 2>/dev/null | head -n 1 || true)"
  if [[ -n "$f" ]]; then
    cudnn_inc="$(dirname "$f")"
    cudnn_lib="$(timeout 30 find "$(dirname "$cudnn_inc")" -maxdepth 3 -name 'libcudnn.so*' 2>/dev/null | grep -E 'libcudnn\.so(\.[0-9]+)?$' | head -n 1 || true)"
    [[ -n "$cudnn_lib" ]] && ld_dirs+=("$(dirname "$cudnn_lib")")
  fi
fi
if [[ -n "$cudnn_lib" ]]; then
  cmake_args+=(-DCUDNN_INCLUDE_DIR="$cudnn_inc" -DCUDNN_LIBRARY="$cudnn_lib"); notes+=("cudnn=$cudnn_lib")
elif [[ -n "$cudnn_inc" ]]; then
  cmake_args+=(-DCUDNN_INCLUDE_DIR="$cudnn_inc"); notes+=("cudnn=system($cudnn_inc)")
else
  notes+=("cudnn=NOT FOUND")
fi
# The other NVIDIA libraries of the torch wheels (cuBLASLt etc., which cuDNN's engines load)
# after the toolkit's own.
py_nvidia="$(python3 -c 'import nvidia, os; print(" ".join(list(nvidia.__path__)))' 2>/dev/null || true)"
for p in $py_nvidia; do
  for d in "$p"/*/lib "$p"/cu13/lib; do [[ -d "$d" ]] && ld_dirs+=("$d"); done
done
# (PyTorch keeps the original search path: its own wheels' libraries, not the toolkit's.)
if [[ -n "${LD_LIBRARY_PATH:-}" ]]; then torch_env=(env "LD_LIBRARY_PATH=$LD_LIBRARY_PATH"); else torch_env=(env -u LD_LIBRARY_PATH); fi
LD_LIBRARY_PATH="$(IFS=:; echo "${ld_dirs[*]}")${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
export LD_LIBRARY_PATH

# Host compiler wrapper: drops -Werror (see the header), unless EMBER_DEVICE_WERROR=1.
if [[ "${EMBER_DEVICE_WERROR:-0}" != 1 ]] && command -v g++ >/dev/null; then
  mkdir -p "$WORK/cc"
  real_cxx="$(command -v g++)"
  cat >"$WORK/cc/g++" <<EOF
#!/usr/bin/env bash
args=()
for a in "\$@"; do [[ "\$a" == -Werror ]] || args+=("\$a"); done
exec "$real_cxx" "\${args[@]}"
EOF
  chmod +x "$WORK/cc/g++"
  cmake_args+=(-DCMAKE_CXX_COMPILER="$WORK/cc/g++" -DCMAKE_CUDA_HOST_COMPILER="$WORK/cc/g++")
  notes+=("host -Werror dropped")
fi
command -v ninja >/dev/null && cmake_args+=(-G Ninja)

DATA=""
for d in "${EMBER_DATA:-}" data/mnist ../shared/data/mnist shared/data/mnist; do
  if [[ -n "$d" && ( -f "$d/train-images-idx3-ubyte.gz" || -f "$d/train-images-idx3-ubyte" ) ]]; then
    DATA="$(cd "$d" && pwd)"; break
  fi
done
[[ -z "$DATA" ]] && notes+=("MNIST NOT FOUND")
record setup info 0 "${notes[*]}; data=${DATA:-none}"
{
  echo "setup: ${notes[*]}"
  echo "data: ${DATA:-none}"
  echo "LD_LIBRARY_PATH=$LD_LIBRARY_PATH"
  echo "cmake args: ${cmake_args[*]}"
} >>"$ENVLOG"
say "setup: ${notes[*]}; data ${DATA:-none}"

# ---- executables: carried prebuilt ones that start here, else built here ----------------------------
declare -A EXE=()
if [[ -d "$PREBUILT" ]]; then
  for t in "${TARGETS[@]}"; do
    exe="$PREBUILT/$t"
    [[ -x "$exe" ]] || continue
    if ldd "$exe" 2>&1 | grep -q "not found"; then
      echo "prebuilt $t: missing libraries: $(ldd "$exe" 2>&1 | grep 'not found' | tr '\n' ' ')" >>"$ENVLOG"
      continue
    fi
    EXE[$t]="$exe"
    echo "prebuilt $t: usable" >>"$ENVLOG"
  done
  # compiled-in source paths (test fixtures) of a build made at /work/main
  if [[ ${#EXE[@]} -gt 0 && ! -e /work/main ]]; then
    { mkdir -p /work && ln -s "$repo_root" /work/main; } 2>/dev/null || true
  fi
fi
to_build=()
for t in "${TARGETS[@]}"; do [[ -n "${EXE[$t]:-}" ]] || to_build+=("$t"); done

# The build as a script of its own (run_step runs programs, not shell functions):
#   bash build.sh JOBS PIN TARGET...   (PIN: "" or a taskset prefix); cmake arguments from a file.
printf '%s\n' "${cmake_args[@]}" >"$WORK/cmake_args.txt"
cat >"$WORK/build.sh" <<'EOF'
set -uo pipefail
jobs="$1" pin="$2"
shift 2
mapfile -t args <"$(dirname "$0")/cmake_args.txt"
cmake -S . -B build/device "${args[@]}" || exit 1
# only the targets this configuration has (tests / bench may be off)
help="$(cmake --build build/device --target help 2>/dev/null || true)"
have=()
for t in "$@"; do
  if grep -qE "(^|[ .])$t(:| |\$)" <<<"$help"; then have+=("$t"); else echo "note: no target $t in this configuration"; fi
done
((${#have[@]} > 0)) || exit 1
keep=(-k)
[[ -f build/device/build.ninja ]] && keep=(-k 0)
$pin cmake --build build/device -j"$jobs" --target "${have[@]}" -- "${keep[@]}"
EOF

# PyTorch work, timed on the otherwise idle GPU.
torch_all() {
  local -a pin=()
  [[ -n "$1" ]] && read -ra pin <<<"$1"
  [[ -n "${2:-}" ]] && STEP_DEADLINE="$2"
  if [[ -n "$DATA" ]]; then
    run_step torch_mnist 90 "$OUT/mnist.log" "${torch_env[@]}" "${pin[@]}" python3 bench/peer/pytorch_mnist_cuda.py --data "$DATA"
  fi
  run_step torch_kernels 200 "$OUT/pytorch_kernels.log" "${torch_env[@]}" "${pin[@]}" python3 bench/peer/pytorch_kernels_cuda.py --out "$OUT/pytorch_kernels.json"
  if [[ -n "$DATA" ]]; then
    run_step torch_mnist_graph 60 "$OUT/mnist.log" "${torch_env[@]}" "${pin[@]}" python3 bench/peer/pytorch_mnist_cuda.py --data "$DATA" --graph
    run_step torch_mnist_strong 60 "$OUT/mnist.log" "${torch_env[@]}" "${pin[@]}" python3 bench/peer/pytorch_mnist_cuda.py --data "$DATA" --lr 0.02 --momentum 0.9 --step-size 3 --gamma 0.1
  fi
}

: >"$OUT/mnist.log"
: >"$OUT/pytorch_kernels.log"
torch_pid=""
torch_done=0
build_pin=""
build_jobs=$NPROC
parallel=0
if ! skipped torch && [[ "${EMBER_CHECK_SERIAL:-0}" != 1 ]] && command -v taskset >/dev/null && ((NPROC >= 8)) &&
   ((${#to_build[@]} > 0)) && ! skipped build; then
  parallel=1
fi

if ((parallel)); then
  record torch_mode info 0 "during the build, pinned to CPUs 0-1 (the build on 2-$((NPROC - 1)))"
  say "PyTorch runs start now on CPUs 0-1 while the build compiles on CPUs 2-$((NPROC - 1))"
  # the PyTorch runs end by about 230 s into the run, so the GPU phase after the build starts then
  torch_all "taskset -c 0-1" $((T0 + 230)) &
  torch_pid=$!
  build_pin="taskset -c 2-$((NPROC - 1))"
  build_jobs=$((NPROC - 2))
fi

if ((${#to_build[@]} > 0)) && ! skipped build; then
  run_step build 330 "$ENVLOG" bash "$WORK/build.sh" "$build_jobs" "$build_pin" "${to_build[@]}"
  for t in "${to_build[@]}"; do
    exe="$(find build/device -maxdepth 4 -type f -name "$t" -perm -u+x 2>/dev/null | head -n 1 || true)"
    [[ -n "$exe" ]] && EXE[$t]="$exe"
  done
else
  record build "SKIPPED" 0 "prebuilt: ${!EXE[*]}"
fi
warnings=$(grep -c "warning:" "$WORK/build.out" 2>/dev/null || true)
record build_warnings info 0 "${warnings:-0}"
for t in "${TARGETS[@]}"; do record "exe:$t" info 0 "${EXE[$t]:-missing}"; done

if [[ -n "$torch_pid" ]]; then
  say "waiting for the PyTorch runs to finish (the GPU must be idle for what follows)"
  wait "$torch_pid" || true
  torch_done=1
fi

# ---- tests ----------------------------------------------------------------------------------------
: >"$OUT/tests.log"
if ! skipped tests; then
  for t in test_kernels_cuda test_cuda_runtime test_cuda_ops; do
    if [[ -n "${EXE[$t]:-}" ]]; then
      cap=120
      [[ $t == test_cuda_runtime ]] && cap=90
      run_step "$t" "$cap" "$OUT/tests.log" "${EXE[$t]}" --use-colour no
    else
      record "$t" "NOT BUILT" 0 ""
    fi
  done
fi

# ---- MNIST on the GPU -----------------------------------------------------------------------------
if ! skipped mnist; then
  if [[ -n "${EXE[mnist_train]:-}" && -n "$DATA" ]]; then
    mnist=("${EXE[mnist_train]}" --device cuda --epochs 5 --data "$DATA" --save-model "$WORK/mnist_cnn.safetensors")
    run_step mnist_custom 120 "$OUT/mnist.log" env EMBER_GEMM=custom EMBER_CONV=custom "${mnist[@]}"
    run_step mnist_vendor 120 "$OUT/mnist.log" env EMBER_GEMM=cublas EMBER_CONV=cudnn "${mnist[@]}"
  else
    record mnist_custom "NOT RUN" 0 "mnist_train ${EXE[mnist_train]:-missing}, data ${DATA:-missing}"
    record mnist_vendor "NOT RUN" 0 ""
  fi
fi

# ---- kernel benchmarks ----------------------------------------------------------------------------
: >"$OUT/bench_cuda_kernels.log"
if ! skipped bench; then
  if [[ -n "${EXE[bench_cuda_kernels]:-}" ]]; then
    left=$((DEADLINE - $(date +%s) - RESERVE))
    reps=5
    ((left < 200)) && reps=3
    ((left < 110)) && reps=1
    run_step bench 240 "$OUT/bench_cuda_kernels.log" "${EXE[bench_cuda_kernels]}" \
      --benchmark_repetitions=$reps --benchmark_report_aggregates_only=true \
      --benchmark_out="$OUT/bench_cuda_kernels.json" --benchmark_out_format=json
    record bench_reps info 0 "$reps"
  else
    record bench "NOT BUILT" 0 ""
  fi
fi

# ---- PyTorch (when it did not run during the build) -----------------------------------------------
if ! skipped torch && ((torch_done == 0)); then
  record torch_mode info 0 "after the ember benchmarks"
  torch_all ""
fi

# ---- the stronger recipe with the faster ember backend choice -------------------------------------
if ! skipped mnist && [[ -n "${EXE[mnist_train]:-}" && -n "$DATA" ]]; then
  best="$(python3 - "$WORK" <<'PY'
import re, sys, os
best = None
for name, env in (("mnist_custom", "custom custom"), ("mnist_vendor", "cublas cudnn")):
    p = os.path.join(sys.argv[1], name + ".out")
    if not os.path.exists(p):
        continue
    m = re.search(r"Trained \d+ epochs in ([\d.]+) s", open(p, errors="replace").read())
    if m and (best is None or float(m.group(1)) < best[0]):
        best = (float(m.group(1)), env)
print(best[1] if best else "cublas cudnn")
PY
)"
  read -r g c <<<"$best"
  record mnist_strong_backend info 0 "$g/$c"
  run_step mnist_strong 90 "$OUT/mnist.log" env EMBER_GEMM="$g" EMBER_CONV="$c" "${mnist[@]}" \
    --lr 0.02 --momentum 0.9 --step-size 3 --gamma 0.1
fi

# ---- the table (printed last) -----------------------------------------------------------------------
record total info "$(($(date +%s) - T0))" ""
python3 - "$WORK" "$OUT" <<'PY' || { echo "table: the python snippet failed; see the logs in $OUT"; cat "$STATUS"; }
import json, os, re, sys

work, out = sys.argv[1], sys.argv[2]
lines = []
def p(s=""):
    lines.append(s)

status = {}
order = []
for ln in open(os.path.join(work, "status.tsv"), errors="replace"):
    parts = ln.rstrip("\n").split("\t")
    if len(parts) < 4:
        continue
    name, st, secs, note = parts[:4]
    if name not in status:
        order.append(name)
    status[name] = (st, secs, note)

def step(name):
    return status.get(name, ("NOT RUN", "0", ""))

def text(name):
    f = os.path.join(work, name + ".out")
    return open(f, errors="replace").read() if os.path.exists(f) else ""

# -- benchmarks -------------------------------------------------------------------------------
def load_bench(path):
    """Google Benchmark JSON, tolerating a file cut short by a timeout."""
    if not os.path.exists(path):
        return []
    raw = open(path, errors="replace").read()
    try:
        return json.loads(raw).get("benchmarks", [])
    except Exception:
        pass
    i = raw.find('"benchmarks"')
    i = raw.find("[", i) + 1 if i >= 0 else -1
    res, dec = [], json.JSONDecoder()
    while i > 0:
        j = raw.find("{", i)
        if j < 0:
            break
        try:
            obj, i = dec.raw_decode(raw, j)
        except Exception:
            break
        res.append(obj)
    return res

def per_call_us(b):
    unit = {"ns": 1e-3, "us": 1.0, "ms": 1e3, "s": 1e6}.get(b.get("time_unit", "ns"), 1e-3)
    return float(b["real_time"]) * unit

def clean(name):
    """BM_op/impl/shape: without the /min_time:.../manual_time parts Google Benchmark appends."""
    return re.sub(r"/(min_time:[^/]*|min_warmup_time:[^/]*|manual_time|real_time|process_time|"
                  r"iterations:\d+|repeats:\d+|threads:\d+)", "", name)

bench = {}
bench_err = {}
for b in load_bench(os.path.join(out, "bench_cuda_kernels.json")):
    name = clean(b.get("run_name", b.get("name", "")))
    if b.get("error_occurred"):
        bench_err[name] = b.get("error_message", "error")
        continue
    agg = b.get("aggregate_name", "")
    if b.get("run_type") == "aggregate" and agg != "median":
        continue
    if agg == "median" or name not in bench:
        bench[name] = b

torch_b = {}
tp = os.path.join(out, "pytorch_kernels.json")
if os.path.exists(tp):
    try:
        for r in json.load(open(tp)).get("benchmarks", []):
            torch_b[r["name"]] = r
    except Exception:
        pass
if not torch_b:  # the JSON lines in the log (a run cut short)
    for ln in text("torch_kernels").splitlines():
        if ln.startswith("{") and '"name"' in ln:
            try:
                r = json.loads(ln)
                torch_b[r["name"]] = r
            except Exception:
                pass

def t_us(op, impl, shape):
    b = bench.get(f"BM_{op}/{impl}/{shape}")
    return per_call_us(b) if b else None

def torch_us(op, shape, impl="torch"):
    r = torch_b.get(f"BM_{op}/{impl}/{shape}")
    return r.get("median_us") if r and "median_us" in r else None

def fmt(v, spec="{:.1f}"):
    return spec.format(v) if v is not None else "-"

# -- header -------------------------------------------------------------------------------------
elapsed = step("total")[1]
p(f"==== ember CUDA device check: {elapsed} s in all ====")
p("setup: " + step("setup")[2])
p("pytorch runs: " + step("torch_mode")[2])
p("steps: " + "  ".join(f"{n}={status[n][0]}({status[n][1]}s)" for n in order
                        if status[n][0] != "info" and not n.startswith("exe:")))
missing = [n[4:] for n in order if n.startswith("exe:") and status[n][2] == "missing"]
p(f"build: {step('build')[0]}, {step('build_warnings')[2]} warning lines"
  + (f"; NOT BUILT: {' '.join(missing)}" if missing else ""))

# -- tests --------------------------------------------------------------------------------------
p("")
p("tests (Catch2 on the GPU):")
tot_pass = tot_fail = 0
for t in ("test_kernels_cuda", "test_cuda_runtime", "test_cuda_ops"):
    st = step(t)[0]
    s = text(t)
    m_all = re.search(r"All tests passed \((\d+) assertions? in (\d+) test cases?\)", s)
    m_tc = re.search(r"test cases:\s*(\d+)\s*\|\s*(\d+) passed\s*\|\s*(\d+) failed", s)
    m_as = re.search(r"assertions:\s*(\d+)\s*\|\s*(\d+) passed\s*\|\s*(\d+) failed", s)
    m_none = re.search(r"test cases:\s*(\d+)\s*\|\s*(\d+) failed", s)
    if m_all:
        n = int(m_all.group(2))
        tot_pass += n
        detail = f"{n}/{n} test cases passed, {m_all.group(1)} assertions"
    elif m_tc:
        tot_pass += int(m_tc.group(2))
        tot_fail += int(m_tc.group(3))
        detail = f"{m_tc.group(2)}/{m_tc.group(1)} test cases passed, {m_tc.group(3)} failed"
        if m_as:
            detail += f" ({m_as.group(3)} of {m_as.group(1)} assertions failed)"
    elif m_none:
        tot_fail += int(m_none.group(2))
        detail = f"0/{m_none.group(1)} test cases passed"
    else:
        detail = "no Catch2 summary (crash, timeout or not run)"
    p(f"  {t:<20} {st:<12} {detail}")
p(f"  total: {tot_pass} test cases passed, {tot_fail} failed")

# -- MNIST -------------------------------------------------------------------------------------------
p("")
p("MNIST on the GPU, 5 epochs incl. per-epoch validation + test (wall s, final test accuracy):")
def mnist(name):
    s = text(name)
    m = re.search(r"Trained (\d+) epochs in ([\d.]+) s; final test accuracy ([\d.]+)%", s)
    return (float(m.group(2)), float(m.group(3))) if m else None
rows = [("ember custom/custom (seed recipe)", "mnist_custom"),
        ("ember cublas/cudnn (seed recipe)", "mnist_vendor"),
        ("pytorch eager (seed recipe)", "torch_mnist"),
        ("pytorch CUDA graph (seed recipe)", "torch_mnist_graph"),
        (f"ember {step('mnist_strong_backend')[2]} (lr .02 mom .9 step 3)", "mnist_strong"),
        ("pytorch eager (lr .02 mom .9 step 3)", "torch_mnist_strong")]
res = {}
for label, name in rows:
    r = mnist(name)
    res[name] = r
    if r:
        ok = "MEETS" if r[0] < 1.5 and r[1] >= 99.0 else "misses"
        p(f"  {label:<44} {r[0]:7.2f} s  {r[1]:6.2f}%   target <1.5 s & >=99.0%: {ok}")
    else:
        p(f"  {label:<44} {step(name)[0]}")
ember_best = min((res[n] for n in ("mnist_custom", "mnist_vendor") if res.get(n)), default=None)
if ember_best and res.get("torch_mnist"):
    p(f"  time ember(best seed run) / pytorch eager: {ember_best[0] / res['torch_mnist'][0]:.2f}x"
      + (f";  / pytorch graph: {ember_best[0] / res['torch_mnist_graph'][0]:.2f}x" if res.get("torch_mnist_graph") else ""))

# -- kernels ------------------------------------------------------------------------------------
p("")
p("kernels, median time per call (us); c/v = custom time / vendor time (< 1: custom faster):")
p(f"  {'benchmark':<32} {'custom':>9} {'vendor':>9} {'torch':>9} {'c/v':>6}  {'rel_err':>8}  target")
gemm_shapes = ["4096", "fc1_fwd_b64", "fc1_dx_b64", "fc1_dw_b64", "fc1_fwd_b1000"]
def relerr(op, shape):
    b = bench.get(f"BM_{op}/custom/{shape}")
    return b.get("rel_err") if b else None
def pair_line(label, op, vendor, shape, target=None, limit=None):
    c, v, t = t_us(op, "custom", shape), t_us(op, vendor, shape), torch_us(op, shape)
    ratio = c / v if c and v else None
    verdict = ""
    if target and ratio is not None:
        verdict = f"{target}: {'PASS' if ratio <= limit else 'MISS'}"
    elif target:
        err = bench_err.get(f"BM_{op}/custom/{shape}") or bench_err.get(f"BM_{op}/{vendor}/{shape}")
        verdict = f"{target}: no data" + (f" ({err[:60]})" if err else "")
    re_ = relerr(op, shape)
    p(f"  {label:<32} {fmt(c):>9} {fmt(v):>9} {fmt(t):>9} {fmt(ratio, '{:.2f}'):>6}  "
      f"{fmt(re_, '{:.1e}'):>8}  {verdict}")
    return c, v
for s in gemm_shapes:
    tgt = ("SGEMM >=0.8x cuBLAS", 1.25) if s == "4096" else (None, None)
    pair_line(f"gemm {s}", "gemm", "cublas", s, *tgt)
totals = {}
for n in ("64", "1000"):
    for layer in ("conv1", "conv2"):
        shape = f"{layer}_n{n}"
        for op, lab in (("conv_fwd", "fwd"), ("conv_bwd_data", "bwd_data"), ("conv_bwd_weight", "bwd_w"),
                        ("conv_fwd_bwd", "fwd+bwd")):
            if op == "conv_bwd_data" and layer == "conv1":
                continue
            c, v = pair_line(f"{lab} {shape}", op, "cudnn", shape)
            if op == "conv_fwd_bwd":
                tc, tv = totals.get(n, (0.0, 0.0))
                totals[n] = (tc + c if c and tc is not None else None, tv + v if v and tv is not None else None)
    tc, tv = totals.get(n, (None, None))
    tt = [torch_us("conv_fwd_bwd", f"{l}_n{n}") for l in ("conv1", "conv2")]
    tt = sum(tt) if all(x is not None for x in tt) else None
    ratio = tc / tv if tc and tv else None
    verdict = ("PASS" if ratio <= 1.2 else "MISS") if ratio is not None else "no data"
    p(f"  {'conv1+conv2 fwd+bwd n' + n:<32} {fmt(tc):>9} {fmt(tv):>9} {fmt(tt):>9} {fmt(ratio, '{:.2f}'):>6}  "
      f"{'':>8}  conv <=1.2x cuDNN: {verdict}")
p("")
p("kernels without a vendor pair (custom vs torch, median us):")
for op in ("max_pool2d_fwd", "max_pool2d_bwd", "log_softmax_fwd", "log_softmax_bwd"):
    for n in ("64", "1000"):
        c, t = t_us(op, "custom", f"n{n}"), torch_us(op, f"n{n}")
        b = bench.get(f"BM_{op}/custom/n{n}")
        gbs = b.get("GB/s") if b else None
        p(f"  {op + ' n' + n:<32} {fmt(c, '{:.2f}'):>9} {fmt(t, '{:.2f}'):>9}   {fmt(gbs)} GB/s")
c = t_us("sgd_step", "custom", "mnist_net")
p(f"  {'sgd_step (8 tensors)':<32} {fmt(c, '{:.2f}'):>9} {fmt(torch_us('sgd_step', 'mnist_net'), '{:.2f}'):>9}"
  f"   torch foreach {fmt(torch_us('sgd_step', 'mnist_net', 'torch_foreach'), '{:.2f}')}")
fails = [ln for ln in text("bench").splitlines() if "CORRECTNESS FAILURE" in ln or ln.startswith("ERROR ")]
if bench_err or fails:
    p("")
    p("benchmark errors / correctness failures:")
    for ln in fails[:12]:
        p("  " + ln[:160])
    for k, v in list(bench_err.items())[:12]:
        if not any(k in f for f in fails):
            p(f"  {k}: {v[:140]}")
elif not bench:
    p("  (no kernel benchmark results: " + step("bench")[0] + ")")
p("")
p(f"logs: {out}")
txt = "\n".join(lines)
open(os.path.join(out, "summary.txt"), "w").write(txt + "\n")
print(txt)
PY
