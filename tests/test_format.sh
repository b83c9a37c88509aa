#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# Formatting: every C source and header in git is clang-format clean against
# the repository's .clang-format (clang-format --dry-run -Werror). A file that
# is not fails the test with clang-format's own diagnostics.
set -uo pipefail
cd "$(dirname "$0")/.."
. tests/lib.sh
if ! command -v clang-format >/dev/null; then
  ko "clang-format is not installed (scripts/test.sh installs clang, which brings it)"
  echo "$pass passed, $fail failed"; exit 1
fi
if git rev-parse --git-dir >/dev/null 2>&1; then
  files=$(git ls-files '*.c' '*.h')
else
  files=$(find . -name '*.[ch]' -not -path './build*' | sed 's|^\./||')
fi
n=0
for f in $files; do
  [ -f "$f" ] || continue
  n=$((n + 1))
  if ! out=$(clang-format --dry-run -Werror "$f" 2>&1); then
    ko "$f is not clang-format clean (clang-format -i $f):"
    printf '%s\n' "$out" | head -8 | sed 's/^/     /'
  fi
done
[ "$n" -gt 20 ] && ok "$n C files checked" || ko "only $n C files found"
echo "$pass passed, $fail failed"
[ "$fail" -eq 0 ]
