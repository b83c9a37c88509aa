#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# The bug-zoo benchmark's patches (scripts/bench/bugzoo/NN-name.patch) must keep
# applying to the current tree, or the benchmark silently loses bugs. A cheap
# guard: each patch applies (git apply --check in a git work tree, else
# patch --dry-run), touches only the reference device, has its header and its
# reproducer, and the reproducer is a valid session. Nothing is built here;
# scripts/bench/bugzoo.sh builds and validates the patched devices.
#   bash tests/test_bugzoo_patches.sh BUILD_DIR      (cwd: the source root)
set -uo pipefail
B=${1:?usage: test_bugzoo_patches.sh BUILD_DIR}
. tests/lib.sh
Z=scripts/bench/bugzoo

shopt -s nullglob
patches=("$Z"/[0-9][0-9]-*.patch)
if [ ${#patches[@]} -ge 8 ]; then ok "${#patches[@]} bug-zoo patches"; else ko "only ${#patches[@]} bug-zoo patches in $Z (8 or more expected)"; fi

use_git=0
if command -v git >/dev/null 2>&1 && git rev-parse --is-inside-work-tree >/dev/null 2>&1 &&
  [ "$(git rev-parse --show-toplevel)" = "$(pwd -P)" ]; then
  use_git=1
fi
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

for p in "${patches[@]}"; do
  id=$(basename "$p" .patch)
  # applies to the working tree as it is now
  if [ "$use_git" = 1 ]; then
    if git apply --check "$p" 2>"$work/err"; then ok "$id applies (git apply --check)"; else ko "$id no longer applies: $(head -3 "$work/err" | tr '\n' ' ')"; fi
  else
    if patch -p1 --dry-run --batch --forward --fuzz=0 -s <"$p" >"$work/err" 2>&1; then ok "$id applies (patch --dry-run)"; else ko "$id no longer applies: $(head -3 "$work/err" | tr '\n' ' ')"; fi
  fi
  # the bug goes into the device, nowhere else
  files=$(grep -E '^\+\+\+ b/' "$p" | sed 's|^+++ b/||' | sort -u | tr '\n' ' ')
  if [ -n "$files" ] && ! grep -E '^\+\+\+ b/' "$p" | grep -vqE '^\+\+\+ b/reference/'; then
    ok "$id patches only reference/ ($files)"
  else
    ko "$id patches files outside reference/: $files"
  fi
  # the header names the bug-zoo row, the missing check, the oracle, the reproducer
  for field in row message "missing check" "expected oracle" reproducer; do
    if sed '/^diff /,$d' "$p" | grep -q "^# $field:"; then :; else ko "$id header lacks '# $field:'"; continue 2; fi
  done
  ok "$id header"
  r=$Z/$id.repro.txt
  if [ ! -f "$r" ]; then
    ko "$id has no reproducer $r"
  elif [ -x "$B/vufuzz" ]; then
    if ASAN_OPTIONS=detect_leaks=0 "$B/vufuzz" session check "$r" >"$work/out" 2>&1; then ok "$id reproducer is a valid session"; else ko "$id reproducer: $(head -3 "$work/out")"; fi
  else
    ok "$id reproducer present ($B/vufuzz not built: not parsed)"
  fi
done

# the benchmark script itself: syntax and --help
if bash -n scripts/bench/bugzoo.sh && scripts/bench/bugzoo.sh --help | grep -q -- '--minutes'; then
  ok "scripts/bench/bugzoo.sh parses and has --help"
else
  ko "scripts/bench/bugzoo.sh: syntax or --help"
fi
echo "$pass passed, $fail failed"
[ "$fail" -eq 0 ]
