#!/usr/bin/env bash
# Installs the Debian packages ember's build, tests, examples and benchmarks need.
# Does nothing when they are all present; otherwise needs root (or sudo).
set -euo pipefail

packages=(cmake g++ make pkg-config libeigen3-dev zlib1g-dev libpng-dev catch2 libbenchmark-dev
  clang-16 libclang-rt-16-dev  # clang-16 and libFuzzer: scripts/fuzz.sh
  dataset-fashion-mnist        # /usr/share/datasets/fashion-mnist: data::FashionMNIST
  python3-matplotlib           # scripts/plot_metrics.py: mnist_train --plots
  libopenmpi-dev openmpi-bin   # ember::dist (data-parallel training), mpirun for its tests
  libcpp-httplib-dev nlohmann-json3-dev  # the inference server: ember::serve, ember_serve
  wrk curl                     # the server's load test (tests/e2e/serve_fault_check.sh), bench/serve
  doxygen)                     # the API reference: scripts/check_docs.sh, docs/Doxyfile
missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -eq 0 ]; then
  exit 0
fi
echo "install_deps: installing ${missing[*]}"
sudo=""
if [ "$(id -u)" -ne 0 ]; then
  command -v sudo >/dev/null || { echo "install_deps: need root or sudo to install: ${missing[*]}" >&2; exit 1; }
  sudo="sudo"
fi
export DEBIAN_FRONTEND=noninteractive
$sudo apt-get update -qq
$sudo apt-get install -y -qq --no-install-recommends "${missing[@]}"
