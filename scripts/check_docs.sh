#!/usr/bin/env bash
# Builds the API reference with Doxygen (docs/Doxyfile: the public headers under
# include/ember, HTML in build/docs/html) and fails on any warning: every public class, struct,
# function, member, enum and alias must have a /// comment, and every comment must parse.
# Debian's doxygen (scripts/install_deps.sh installs it).
#
#   scripts/check_docs.sh     # then open build/docs/html/index.html
set -euo pipefail
cd "$(dirname "$0")/.."
command -v doxygen >/dev/null || {
  echo "check_docs: doxygen is not installed (scripts/install_deps.sh installs it)" >&2
  exit 1
}
rm -rf build/docs
mkdir -p build/docs
log=build/docs/warnings.txt
status=0
doxygen docs/Doxyfile 2>"$log" >/dev/null || status=$?
if [ "$status" -ne 0 ] || [ -s "$log" ]; then
  cat "$log" >&2
  echo "check_docs: doxygen $(doxygen --version) exited with $status and $(grep -c . "$log") warning lines (above)" >&2
  exit 1
fi
echo "check_docs: API reference built without warnings: build/docs/html/index.html" \
  "($(find build/docs/html -name '*.html' | wc -l) pages, doxygen $(doxygen --version))"
