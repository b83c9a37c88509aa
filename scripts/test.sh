#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# The whole test suite: installs what is missing (apt-get), builds with clang
# under ASan+UBSan (build/), checks that gcc builds it warning-free too
# (build-gcc/), then runs every test with ctest.
#   scripts/test.sh            everything
#   scripts/test.sh -R golden  only tests whose name matches (ctest -R)
set -euo pipefail
. "$(dirname "$0")/lib.sh"

vuf_install_deps
vuf_build

vuf_log "gcc build (warnings are errors)"
jobs=$(nproc 2>/dev/null || echo 2)
if [ ! -f "$VUF_ROOT/build-gcc/CMakeCache.txt" ]; then
  CC=gcc CXX=g++ cmake -S "$VUF_ROOT" -B "$VUF_ROOT/build-gcc" >/dev/null
fi
if ! cmake --build "$VUF_ROOT/build-gcc" -j"$jobs" >"$VUF_ROOT/build-gcc/build.log" 2>&1; then
  grep -E 'error' -A3 "$VUF_ROOT/build-gcc/build.log" | head -60 >&2
  echo "error: gcc build failed, see build-gcc/build.log" >&2
  exit 2
fi

vuf_log "running tests"
cd "$VUF_BUILD"
export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=0}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}
ctest --output-on-failure -j"$jobs" "$@"
