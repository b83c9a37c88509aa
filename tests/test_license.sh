#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# The license: LICENSE is the Apache License 2.0, and every source file of the
# repository (C, headers, CMake, shell, protobuf, Docker, workflows, the spec
# table) names it with an SPDX line near its top. Fails on the first file that
# does not, so a new file without the header is caught in CI.
set -uo pipefail
cd "$(dirname "$0")/.."
. tests/lib.sh
tag='SPDX-License-Identifier: Apache-2.0'

if [ -f LICENSE ] && grep -q 'Apache License' LICENSE && grep -q 'Version 2.0, January 2004' LICENSE; then
  ok "LICENSE is the Apache License 2.0"
else
  ko "LICENSE is missing or not the Apache License 2.0"
fi

# The files that must carry the header: sources in git, or on disk when this
# is not a git checkout (a tarball).
if git rev-parse --git-dir >/dev/null 2>&1; then
  files=$(git ls-files)
else
  files=$(find . -type f -not -path './build*' -not -path './.git/*' | sed 's|^\./||')
fi
checked=0 missing=0
for f in $files; do
  case "$f" in
    *.c|*.h|*.def|*.proto|*.sh|*.cmake|CMakeLists.txt|*/CMakeLists.txt|*Dockerfile|*.yaml|*.yml|*.py|.ci/run|spec/*.spec) ;;
    *) continue ;;
  esac
  [ -f "$f" ] || continue
  checked=$((checked + 1))
  if ! head -n 3 "$f" | grep -q "$tag"; then
    ko "$f: no '$tag' in its first 3 lines"
    missing=$((missing + 1))
  fi
done
if [ "$checked" -gt 50 ] && [ "$missing" -eq 0 ]; then
  ok "$checked source files carry the SPDX header"
elif [ "$checked" -le 50 ]; then
  ko "only $checked source files found: the file list is wrong"
fi
echo "$pass passed, $fail failed"
[ "$fail" -eq 0 ]
