#!/usr/bin/env bash
# The main job: installs what ember needs, builds the examples (Release), finds MNIST and
# trains the seed's CNN for 5 epochs, evaluating after each and saving the model.
# Extra arguments go to mnist_train, e.g. scripts/run_mnist.sh --epochs 1
#
# MNIST is taken from --data DIR / $EMBER_DATA, else data/mnist in this repository, which is
# downloaded (and checksummed) by scripts/get_mnist.sh when missing.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install_deps.sh

data="${EMBER_DATA:-data/mnist}"
for arg in "$@"; do
  case "$arg" in --data=*) data="${arg#--data=}" ;; esac
done
prev=""
for arg in "$@"; do
  [ "$prev" = "--data" ] && data="$arg"
  prev="$arg"
done
if [ ! -e "$data/train-images-idx3-ubyte.gz" ] && [ ! -e "$data/train-images-idx3-ubyte" ]; then
  if [ "$data" = "data/mnist" ]; then
    scripts/get_mnist.sh data/mnist || {
      echo "run_mnist: no MNIST; see the message above (EMBER_DATA, --data, or Fashion-MNIST)" >&2
      exit 2
    }
  else
    echo "run_mnist: no MNIST IDX files in '$data'" >&2
    exit 2
  fi
fi

cmake --preset release -DEMBER_BUILD_TESTS=OFF -DEMBER_BUILD_BENCH=OFF >/dev/null
cmake --build --preset release --target mnist_train mnist_infer -j"$(nproc)"
exec build/release/examples/mnist_train --data "$data" --save-model build/mnist_cnn.safetensors "$@"
