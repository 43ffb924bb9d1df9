#!/usr/bin/env bash
# Checks that every C++ sample in README.md and docs/pytorch-to-ember.md is code that CI
# compiles: each ```cpp block must follow a line
#   <!-- sample: docs/samples/FILE.cpp NAME -->
# and equal, line for line, the region of FILE between its two "// [NAME]" lines (with the
# region's common indentation removed). The files are built with -Werror by the Release build
# (tests/CMakeLists.txt: doc_sample_*), and CTest runs the cheat sheet's (test_doc_samples).
#
#   scripts/check_doc_samples.sh                 # the markdown against docs/samples/
#   scripts/check_doc_samples.sh build/release   # also builds and runs the samples there
set -euo pipefail
cd "$(dirname "$0")/.."

python3 - README.md docs/pytorch-to-ember.md <<'PY'
import re, sys, textwrap

def region(path, name):
    lines = open(path).read().split("\n")
    marks = [i for i, l in enumerate(lines) if l.strip() == f"// [{name}]"]
    if len(marks) != 2:
        raise SystemExit(f"check_doc_samples: {path} has {len(marks)} '// [{name}]' lines, "
                         "expected 2")
    return textwrap.dedent("\n".join(lines[marks[0] + 1:marks[1]])).strip("\n")

bad = 0
blocks = 0
for md in sys.argv[1:]:
    lines = open(md).read().split("\n")
    i = 0
    while i < len(lines):
        if lines[i].strip() != "```cpp":
            i += 1
            continue
        start = i
        end = next((j for j in range(i + 1, len(lines)) if lines[j].strip() == "```"), None)
        if end is None:
            raise SystemExit(f"check_doc_samples: {md}:{start + 1}: unclosed ```cpp block")
        body = "\n".join(lines[start + 1:end]).strip("\n")
        prev = next((lines[j] for j in range(start - 1, -1, -1) if lines[j].strip()), "")
        m = re.fullmatch(r"\s*<!-- sample: (\S+) (\S+) -->\s*", prev)
        blocks += 1
        if not m:
            print(f"{md}:{start + 1}: a ```cpp block without a '<!-- sample: FILE NAME -->' "
                  "line before it (its code would not be compiled)")
            bad += 1
        else:
            want = region(m.group(1), m.group(2))
            if body != want:
                print(f"{md}:{start + 1}: the block differs from {m.group(1)} [{m.group(2)}]:")
                import difflib
                for d in difflib.unified_diff(want.split("\n"), body.split("\n"),
                                              m.group(1), md, lineterm="", n=1):
                    print("  " + d)
                bad += 1
        i = end + 1
if bad:
    raise SystemExit(f"check_doc_samples: {bad} of {blocks} C++ blocks are not the compiled code")
print(f"check_doc_samples: {blocks} C++ blocks quote docs/samples/ exactly")
PY

if [ $# -ge 1 ]; then
  build=$1
  cmake --build "$build" -j"${EMBER_JOBS:-$(nproc)}" --target doc_sample_readme_quickstart \
    doc_sample_readme_own_model doc_sample_pytorch_to_ember
  ctest --test-dir "$build" -R '^test_doc_samples$' --output-on-failure
fi
