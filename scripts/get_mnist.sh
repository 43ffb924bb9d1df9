#!/usr/bin/env bash
# Fetches the four MNIST IDX files (gzip) into DIR and checks their MD5s.
#
#   scripts/get_mnist.sh [DIR]      DIR defaults to data/mnist under the repository root
#
# Mirrors are tried in order; EMBER_MNIST_MIRROR=URL/ puts one of your own first.
#
# Exit status: 0 when all four files are in DIR with the right MD5s (already there or
# downloaded), 2 when some could not be downloaded from any mirror (e.g. offline), 1 on
# other errors (bad usage, no curl/wget/md5sum).
set -euo pipefail

repo_root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"

if [[ $# -gt 1 || "${1:-}" == "-h" || "${1:-}" == "--help" ]]; then
  echo "usage: $0 [DIR]   (default DIR: ${repo_root}/data/mnist)" >&2
  exit 1
fi
dir="${1:-${repo_root}/data/mnist}"

# The original gz files' MD5s (as published by LeCun's page and torchvision).
files=(train-images-idx3-ubyte.gz train-labels-idx1-ubyte.gz
       t10k-images-idx3-ubyte.gz t10k-labels-idx1-ubyte.gz)
declare -A md5=(
  [train-images-idx3-ubyte.gz]=f68b3c2dcbeaaa9fbdd348bbdeb94873
  [train-labels-idx1-ubyte.gz]=d53e105ee54ea40749a09fcbcd1e9432
  [t10k-images-idx3-ubyte.gz]=9fb629c4189551a2d022fa330f9573f3
  [t10k-labels-idx1-ubyte.gz]=ec29112dd5afa0611ce80d1b7f02629c
)
mirrors=(https://ossci-datasets.s3.amazonaws.com/mnist/
         https://storage.googleapis.com/cvdf-datasets/mnist/
         http://yann.lecun.com/exdb/mnist/)
# EMBER_MNIST_MIRROR=URL/ is tried first (a local mirror, or a file:// folder).
[[ -z "${EMBER_MNIST_MIRROR:-}" ]] || mirrors=("${EMBER_MNIST_MIRROR%/}/" "${mirrors[@]}")

if ! command -v md5sum > /dev/null; then
  echo "get_mnist.sh: md5sum not found (coreutils)" >&2
  exit 1
fi

md5_ok() {  # md5_ok FILE NAME: FILE exists and has NAME's published MD5
  [[ -f "$1" ]] && [[ "$(md5sum < "$1" | cut -d' ' -f1)" == "${md5[$2]}" ]]
}

missing=()
for f in "${files[@]}"; do
  md5_ok "${dir}/${f}" "$f" || missing+=("$f")
done
if [[ ${#missing[@]} -eq 0 ]]; then
  echo "MNIST is in ${dir} (all 4 files present, MD5s verified)"
  exit 0
fi

# fetch URL OUT: short connect timeout so that an offline machine fails fast; the overall
# limit only stops a stalled transfer (the largest file is 9.9 MB). Returns 100 when the host
# could not be reached at all (DNS, connect or timeout), so that the mirror is not tried again.
if command -v curl > /dev/null; then
  fetch() {
    local rc=0
    curl -fsSL --connect-timeout 10 --max-time 300 -o "$2" "$1" || rc=$?
    case $rc in 6 | 7 | 28) return 100 ;; *) return $rc ;; esac
  }
elif command -v wget > /dev/null; then
  fetch() {
    local rc=0
    wget -nv --connect-timeout=10 --dns-timeout=10 --read-timeout=60 --tries=1 \
         -O "$2" "$1" || rc=$?
    case $rc in 4) return 100 ;; *) return $rc ;; esac
  }
else
  echo "get_mnist.sh: neither curl nor wget is installed" >&2
  fetch() { return 100; }
fi

mkdir -p "$dir"
failed=()
declare -A unreachable=()
for f in "${missing[@]}"; do
  tmp="${dir}/.${f}.part.$$"
  got=0
  for m in "${mirrors[@]}"; do
    [[ -z "${unreachable[$m]:-}" ]] || continue
    echo "downloading ${m}${f}" >&2
    rc=0
    err="$(fetch "${m}${f}" "$tmp" 2>&1)" || rc=$?
    if [[ $rc -eq 0 ]]; then
      if md5_ok "$tmp" "$f"; then
        mv -f "$tmp" "${dir}/${f}"
        got=1
        break
      fi
      echo "  MD5 mismatch for ${f} from ${m}; trying the next mirror" >&2
    else
      [[ $rc -ne 100 ]] || unreachable[$m]=1
      [[ -n "$err" || $rc -ne 100 ]] || err="host not reachable"
      echo "  failed: ${err:-exit status $rc}" >&2
    fi
  done
  rm -f "$tmp"
  [[ $got -eq 1 ]] || failed+=("$f")
done

if [[ ${#failed[@]} -eq 0 ]]; then
  echo "MNIST is in ${dir} (downloaded, MD5s verified)"
  exit 0
fi

cat >&2 << EOF

get_mnist.sh: MNIST could not be downloaded (no mirror answered, or the files did not
match their MD5s). Missing from ${dir}, or with a wrong MD5 there:
$(printf '  %s\n' "${failed[@]}")

If you have a copy of the four MNIST .gz files elsewhere, point ember at that folder:
  pass --data DIR to the examples, or set EMBER_DATA=DIR
(or copy the files into ${dir}).

Offline alternative: Fashion-MNIST, in the same IDX format with the same four file names,
is packaged by Debian, so it installs from the Debian archive alone:
  apt-get install dataset-fashion-mnist
  # files: /usr/share/datasets/fashion-mnist/{train,t10k}-{images-idx3,labels-idx1}-ubyte.gz
then use --data /usr/share/datasets/fashion-mnist (or EMBER_DATA=...).
EOF
exit 2
