#!/usr/bin/env bash
# Compiles every public header alone (as its own translation unit), so no header relies
# on another having been included first.
set -euo pipefail
cd "$(dirname "$0")/.."
eigen=$(pkg-config --cflags eigen3 2>/dev/null || echo "-I/usr/include/eigen3")
eigen=${eigen//-I/-isystem }
fail=0
for h in $(cd include && find ember -name '*.hpp' | sort); do
  if ! echo "#include \"$h\"" | g++ -std=c++20 -Wall -Wextra -Wpedantic -Werror -fsyntax-only \
      -Iinclude $eigen -x c++ - ; then
    echo "check_headers: $h does not compile on its own" >&2
    fail=1
  fi
done
[ $fail -eq 0 ] && echo "check_headers: $(cd include && find ember -name '*.hpp' | wc -l) headers compile on their own"
exit $fail
