#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# The whole test suite: installs what is missing (apt-get), builds with clang
# under ASan+UBSan (build/), checks that gcc builds it warning-free too
# (build-gcc/, and optimized in build-gcc-release/), then runs every test
# with ctest.
#   scripts/test.sh            everything
#   scripts/test.sh -R golden  only tests whose name matches (ctest -R)
set -euo pipefail
. "$(dirname "$0")/lib.sh"

vuf_install_deps
vuf_build

# gcc builds, warnings are errors: the default (debug) configuration in
# build-gcc/, then the optimized one in build-gcc-release/ (optimization
# enables more of gcc's warnings: maybe-uninitialized, format-truncation)
jobs=$(nproc 2>/dev/null || echo 2)
gcc_build() { # gcc_build DIR [CMAKE_ARGS...]
  local dir=$1
  shift
  vuf_log "gcc build in ${dir#"$VUF_ROOT"/} (warnings are errors)"
  if [ ! -f "$dir/CMakeCache.txt" ]; then
    CC=gcc CXX=g++ cmake -S "$VUF_ROOT" -B "$dir" "$@" >/dev/null
  fi
  if ! cmake --build "$dir" -j"$jobs" >"$dir/build.log" 2>&1; then
    grep -E 'error' -A3 "$dir/build.log" | head -60 >&2
    echo "error: gcc build failed, see ${dir#"$VUF_ROOT"/}/build.log" >&2
    exit 2
  fi
}
gcc_build "$VUF_ROOT/build-gcc"
gcc_build "$VUF_ROOT/build-gcc-release" -DCMAKE_BUILD_TYPE=Release

vuf_log "running tests"
cd "$VUF_BUILD"
export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=0}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}
ctest --output-on-failure -j"$jobs" "$@"
