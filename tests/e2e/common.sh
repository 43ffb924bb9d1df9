# Sourced by the end-to-end scripts in this folder (POSIX sh): their argument check, the MNIST
# folder or the skip, the working folder, and fail.
#
#   . "$(dirname "$0")/common.sh"
#   e2e_args 1 2 "MNIST_TRAIN [DATA_DIR]" "$@"   # between 1 and 2 arguments, else usage, exit 2
#   e2e_data "${2:-}"        # sets data: the argument, else $EMBER_DATA, else exit 77 (skipped)
#   e2e_work resume_check    # sets work: $EMBER_TEST_TMP/resume_check (CTest sets the variable,
#                            # else the system's temporary folder), emptied and created

# e2e_args MIN MAX USAGE ARGS...
e2e_args() {
  e2e_min=$1
  e2e_max=$2
  e2e_usage=$3
  shift 3
  if [ $# -lt "$e2e_min" ] || [ $# -gt "$e2e_max" ]; then
    echo "usage: $0 $e2e_usage" >&2
    exit 2
  fi
}

# e2e_data [DATA_DIR]
e2e_data() {
  data=${1:-${EMBER_DATA:-}}
  if [ -z "$data" ]; then
    echo "SKIPPED: no MNIST folder (give DATA_DIR or set EMBER_DATA)"
    exit 77
  fi
}

# e2e_work NAME
e2e_work() {
  work=${EMBER_TEST_TMP:-${TMPDIR:-/tmp}}/$1
  rm -rf "$work"
  mkdir -p "$work"
}

fail() {
  echo "FAIL: $*" >&2
  exit 1
}
