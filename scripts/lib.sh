# SPDX-License-Identifier: Apache-2.0
# Shared by scripts/run.sh and scripts/test.sh: install what is missing,
# then build. Source it; do not run it.
set -euo pipefail

VUF_ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
VUF_BUILD=${VUF_BUILD:-$VUF_ROOT/build}

# Debian packages the project needs, and a file each one provides.
VUF_PACKAGES=(
  "cmake:/usr/bin/cmake"
  "gcc:/usr/bin/gcc"
  "clang:/usr/bin/clang"
  "clang-format:/usr/bin/clang-format"
  "libclang-rt-14-dev:/usr/lib/llvm-14/lib/clang/14.0.6/lib/linux/libclang_rt.fuzzer-x86_64.a"
  "llvm:/usr/bin/llvm-profdata"
  "afl++:/usr/bin/afl-clang-fast"
  "protobuf-c-compiler:/usr/bin/protoc-c"
  "libprotobuf-c-dev:/usr/include/protobuf-c/protobuf-c.h"
  "qemu-system-x86:/usr/bin/qemu-system-x86_64"
  "ipxe-qemu:/usr/lib/ipxe/qemu/efi-virtio.rom"
  "qemu-system-common:/usr/bin/qemu-storage-daemon"
  "zip:/usr/bin/zip"
  "unzip:/usr/bin/unzip"
  "python3:/usr/bin/python3"
  "python3-yaml:/usr/lib/python3/dist-packages/yaml/__init__.py"
)

vuf_log() { printf '== %s\n' "$*" >&2; }

# vuf_fuzz_option TARGET KEY: the [libfuzzer] KEY (max_len, timeout, dict) of
# TARGET's options file, scripts/oss-fuzz/options/TARGET.options: the values
# OSS-Fuzz runs it with, which every campaign of the scripts uses too
# (tests/test_fuzz_options.sh checks this against Python's configparser, the
# parser OSS-Fuzz reads the file with).
vuf_fuzz_option() {
  local f=$VUF_ROOT/scripts/oss-fuzz/options/$1.options v
  v=$(awk -F' *= *' -v k="$2" '/^\[/ { s = ($0 == "[libfuzzer]") } s && $1 == k { print $2 }' "$f" 2>/dev/null)
  if [ -z "$v" ]; then
    echo "error: no $2 in $f" >&2
    return 2
  fi
  echo "$v"
}

vuf_install_deps() {
  local missing=() entry pkg file
  for entry in "${VUF_PACKAGES[@]}"; do
    pkg=${entry%%:*}
    file=${entry#*:}
    [ -e "$file" ] || missing+=("$pkg")
  done
  if [ ${#missing[@]} -eq 0 ]; then
    return 0
  fi
  vuf_log "installing missing packages: ${missing[*]}"
  local sudo=""
  if [ "$(id -u)" -ne 0 ]; then
    if command -v sudo >/dev/null 2>&1; then sudo=sudo; else
      echo "error: need root (or sudo) to apt-get install: ${missing[*]}" >&2
      exit 2
    fi
  fi
  export DEBIAN_FRONTEND=noninteractive
  $sudo apt-get update -qq
  $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
}

# Build into $VUF_BUILD: clang, ASan+UBSan, libFuzzer targets. Extra cmake
# arguments may be passed.
vuf_build() {
  local jobs
  jobs=$(nproc 2>/dev/null || echo 2)
  if [ ! -f "$VUF_BUILD/CMakeCache.txt" ]; then
    vuf_log "configuring $VUF_BUILD (clang, ASan+UBSan, libFuzzer targets)"
    CC=clang CXX=clang++ cmake -S "$VUF_ROOT" -B "$VUF_BUILD" -DCMAKE_BUILD_TYPE=RelWithDebInfo \
      -DVUF_SANITIZE=ON -DVUF_FUZZ=ON "$@" >/dev/null
  fi
  vuf_log "building $VUF_BUILD (log: $VUF_BUILD/build.log)"
  if ! cmake --build "$VUF_BUILD" -j"$jobs" >"$VUF_BUILD/build.log" 2>&1; then
    grep -E 'error|Error' -A3 "$VUF_BUILD/build.log" | head -60 >&2
    echo "error: build failed, see $VUF_BUILD/build.log" >&2
    exit 2
  fi
}

# The release build the benchmarks time ($VUF_RELEASE, default build-release/:
# clang, Release, no sanitizers), configured once; builds the named targets.
VUF_RELEASE=${VUF_RELEASE:-$VUF_ROOT/build-release}
vuf_build_release() {
  if [ ! -f "$VUF_RELEASE/CMakeCache.txt" ]; then
    CC=clang cmake -S "$VUF_ROOT" -B "$VUF_RELEASE" -DCMAKE_BUILD_TYPE=Release >/dev/null
  fi
  cmake --build "$VUF_RELEASE" -j"$(nproc)" --target "$@" >/dev/null
}
