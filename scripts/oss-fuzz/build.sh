#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# Builds the vufuzz fuzz targets the OSS-Fuzz way, through the project's CMake
# build (see --help). OSS-Fuzz's projects/vufuzz/build.sh and ClusterFuzzLite's
# .clusterfuzzlite/build.sh only run this script.
set -euo pipefail

usage() {
  cat <<'USAGE'
usage: scripts/oss-fuzz/build.sh [--with-baseline] [--help]

Builds the vufuzz fuzz targets fuzz_spec, fuzz_wire, fuzz_checker,
fuzz_session and fuzz_session_sockets the OSS-Fuzz way, for whichever engine
and sanitizer the environment describes, by driving the project's CMake build. It reads only the
base-builder variables:

  CC CFLAGS            compile every C source (the CMake build adds C11,
                       -D_GNU_SOURCE, -Wall -Wextra; no -Werror)
  CXX CXXFLAGS         link the fuzz targets, with
  LIB_FUZZING_ENGINE   the engine (-fsanitize=fuzzer, libAFLDriver.a, ...),
                       given to CMake as -DVUF_LIB_FUZZING_ENGINE
  OUT                  where the targets and their files go
  SRC                  the source is $SRC/vufuzz
  WORK                 scratch space (a temporary directory when unset)

  --with-baseline      also fuzz_raw, the raw-bytes baseline of scripts/bench/
                       (scripts/fuzz-afl.sh passes it; OSS-Fuzz does not: it
                       is a benchmark baseline, not worth fuzzing CPU)

Optional overrides (not set by OSS-Fuzz):
  VUF_SRC              the source tree (default: $SRC/vufuzz, else the
                       repository that contains this script)
  VUF_HOST_CC          compiler of the host build: the vufuzz command line and
                       trace_bytes that make the seeds, and the AFL++ mutator
                       library (default: the first of clang, cc, gcc)
  VUF_HOST_CXX         its C++ compiler (default: clang++, c++ or g++ to match)
  VUF_HOST_CFLAGS      its flags (default: -O2 -g; never $CFLAGS)
  VUF_PROTOBUF_C_LIB   the static libprotobuf-c.a to link
  VUF_JOBS             parallel compiler jobs (default: nproc)

Two CMake builds in $WORK/vufuzz-build: host/ (host compiler, no sanitizer,
no instrumentation) and target/ ($CC $CFLAGS, the engine). Writes into $OUT,
for each target T:
  T                    the fuzz target
  T_seed_corpus.zip    its seeds
  T.options            scripts/oss-fuzz/options/T.options: [libfuzzer]
                       max_len, timeout (and dict)
  T.dict               fuzz_spec, fuzz_wire, fuzz_checker (fuzz_raw)
fuzz_session_sockets takes fuzz_session's seeds; its options are the same values.
and libvufuzz_afl_mutator.so, the session mutator as an AFL++ custom mutator
(AFL_CUSTOM_MUTATOR_LIBRARY; from the host build).

Needs cmake, protoc-c, libprotobuf-c (static), zip, od and a host C compiler.
USAGE
}

baseline=0
for arg in "$@"; do
  case $arg in
    -h | --help) usage; exit 0 ;;
    --with-baseline) baseline=1 ;;
    *) echo "build.sh: unknown argument '$arg' (try --help)" >&2; exit 2 ;;
  esac
done

die() { echo "build.sh: error: $*" >&2; exit 2; }
log() { echo "build.sh: $*" >&2; }

for v in CC CXX LIB_FUZZING_ENGINE OUT; do
  [ -n "${!v:-}" ] || die "\$$v is not set; this script expects the OSS-Fuzz base-builder environment (see --help)"
done

# ---- where things are ----
script_dir=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
if [ -n "${VUF_SRC:-}" ]; then
  S=$VUF_SRC
elif [ -n "${SRC:-}" ] && [ -f "$SRC/vufuzz/spec/vhost-user.spec" ]; then
  S=$SRC/vufuzz
elif [ -f "$script_dir/../../spec/vhost-user.spec" ]; then
  S=$script_dir/../..
else
  die "cannot find the vufuzz source: set VUF_SRC, or put it at \$SRC/vufuzz"
fi
S=$(cd "$S" && pwd)
[ -f "$S/spec/vhost-user.spec" ] || die "$S is not the vufuzz source tree (no spec/vhost-user.spec)"

targets=(fuzz_spec fuzz_wire fuzz_checker fuzz_session fuzz_session_sockets)
if [ "$baseline" = 1 ]; then targets+=(fuzz_raw); fi
has() { # has T: T is built
  local t
  for t in "${targets[@]}"; do [ "$t" = "$1" ] && return 0; done
  return 1
}

mkdir -p "$OUT"
OUT=$(cd "$OUT" && pwd)
if [ -n "${WORK:-}" ]; then
  B=$WORK/vufuzz-build
  rm -rf "$B"
  mkdir -p "$B"
else
  B=$(mktemp -d)
  trap 'rm -rf "$B"' EXIT
fi
mkdir -p "$B/seeds"

# ---- tools ----
command -v cmake >/dev/null 2>&1 || die "cmake not found (apt-get install cmake)"
command -v protoc-c >/dev/null 2>&1 || die "protoc-c not found (Debian/Ubuntu: apt-get install protobuf-c-compiler)"
command -v zip >/dev/null 2>&1 || die "zip not found (apt-get install zip)"
command -v od >/dev/null 2>&1 || die "od not found (coreutils)"
if [ -n "${VUF_HOST_CC:-}" ]; then
  host_cc=$VUF_HOST_CC
else
  host_cc=""
  for c in clang cc gcc; do
    if command -v "$c" >/dev/null 2>&1; then host_cc=$c; break; fi
  done
  [ -n "$host_cc" ] || die "no host C compiler (clang, cc or gcc) for the build-time tools; set VUF_HOST_CC"
fi
if [ -n "${VUF_HOST_CXX:-}" ]; then
  host_cxx=$VUF_HOST_CXX
else
  case $(basename "$host_cc") in
    clang*) host_cxx=${host_cc/%clang/clang++} ;;
    gcc*) host_cxx=${host_cc/%gcc/g++} ;;
    *) host_cxx=c++ ;;
  esac
fi
command -v "$host_cxx" >/dev/null 2>&1 || die "no host C++ compiler '$host_cxx' (the CMake project enables C++); set VUF_HOST_CXX"
if [ -n "${VUF_PROTOBUF_C_LIB:-}" ]; then
  pbc=$VUF_PROTOBUF_C_LIB
else
  pbc=""
  for f in /usr/lib/x86_64-linux-gnu/libprotobuf-c.a /usr/lib/*-linux-gnu*/libprotobuf-c.a \
    /usr/local/lib/libprotobuf-c.a /usr/lib64/libprotobuf-c.a /usr/lib/libprotobuf-c.a; do
    if [ -f "$f" ]; then pbc=$f; break; fi
  done
fi
if [ -z "$pbc" ] || [ ! -f "$pbc" ]; then
  die "static libprotobuf-c.a not found (apt-get install libprotobuf-c-dev, or set VUF_PROTOBUF_C_LIB)"
fi
jobs=${VUF_JOBS:-$(nproc 2>/dev/null || echo 2)}

log "source $S, output $OUT, scratch $B"
log "CC=$CC CXX=$CXX LIB_FUZZING_ENGINE=$LIB_FUZZING_ENGINE host compiler $host_cc"

cmake_build() { # cmake_build NAME [ENV...] -- CMAKE-ARGS... -- TARGETS...: configure and build $B/NAME
  local name=$1 dir=$B/$1 envs=() args=()
  shift
  while [ "$1" != -- ]; do envs+=("$1"); shift; done
  shift
  while [ "$1" != -- ]; do args+=("$1"); shift; done
  shift
  # libprotobuf-c linked statically (the runner image has no shared one);
  # warnings stay warnings (the compilers of the base images change)
  if ! env "${envs[@]}" cmake -S "$S" -B "$dir" -DVUF_PROTOBUF_C_LIBRARY="$pbc" -DVUF_WERROR=OFF \
    "${args[@]}" >"$B/$name.configure.log" 2>&1; then
    tail -40 "$B/$name.configure.log" >&2
    die "configuring the $name build failed (log: $B/$name.configure.log)"
  fi
  if ! env "${envs[@]}" cmake --build "$dir" -j"$jobs" --target "$@" >"$B/$name.build.log" 2>&1; then
    grep -E 'error|Error' -A3 "$B/$name.build.log" | head -60 >&2
    die "the $name build failed (log: $B/$name.build.log)"
  fi
}
built() { # built BUILD NAME: the file of CMake target NAME, from the build's manifest
  local f
  f=$(awk -v t="$2" '$1 == t { print $2 }' "$B/$1/oss-fuzz-targets.txt" 2>/dev/null)
  [ -n "$f" ] && [ -f "$f" ] || die "the $1 build made no $2 (see $B/$1/oss-fuzz-targets.txt)"
  echo "$f"
}

# The two builds run side by side: each one's libraries wait for the ones
# they link, so one build alone leaves cores idle.
# ---- host build: the vufuzz command line and trace_bytes (to make the
# seeds), the AFL++ mutator library. Plain host compiler: none of $CFLAGS
# (no sanitizers, no coverage), since afl-fuzz loads the library into itself.
log "host build ($host_cc) and target build ($CC, $LIB_FUZZING_ENGINE: ${targets[*]})"
cmake_build host -u CFLAGS -u CXXFLAGS -u CPPFLAGS -u LDFLAGS CC="$host_cc" CXX="$host_cxx" -- \
  -DCMAKE_C_FLAGS="${VUF_HOST_CFLAGS:--O2 -g}" -DCMAKE_CXX_FLAGS="${VUF_HOST_CFLAGS:--O2 -g}" \
  -DVUF_SANITIZE=OFF -DVUF_FUZZ=OFF -DVUF_AFL_MUTATOR=ON -- vufuzz vufuzz_afl_mutator vuf_trace_bytes &
host_pid=$!
# ---- target build: $CC $CFLAGS (CMake reads CC, CXX, CFLAGS, CXXFLAGS from
# the environment), every fuzz target linked by $CXX $CXXFLAGS with the engine
target_rc=0
(cmake_build target -- -DVUF_LIB_FUZZING_ENGINE="$LIB_FUZZING_ENGINE" -DVUF_SANITIZE=OFF \
  -DVUF_AFL_MUTATOR=OFF -- "${targets[@]}") || target_rc=$?
wait "$host_pid" || exit 2
[ "$target_rc" -eq 0 ] || exit 2
V=$(built host vufuzz)
trace_bytes=$(built host vuf_trace_bytes)
cp "$(built host vufuzz_afl_mutator)" "$OUT/libvufuzz_afl_mutator.so"
for t in "${targets[@]}"; do
  cp "$(built target "$t")" "$OUT/$t"
done

spec=$S/spec/vhost-user.spec
shopt -s nullglob

# ---- seed corpora ----
regressions() { # regressions DIR T: saved findings of target T (fuzz/regressions/T-*.bin) as seeds
  local r
  for r in "$S/fuzz/regressions/$2"-*.bin; do cp "$r" "$1/"; done
}
for t in "${targets[@]}"; do mkdir -p "$B/seeds/$t"; done
cp "$spec" "$B/seeds/fuzz_spec/"
# fuzz_session: the session corpus, encoded to the binary form
for src in "$S"/corpus/*.txt; do
  name=$(basename "$src" .txt)
  "$V" session encode "$src" -o "$B/seeds/fuzz_session/$name.bin" ||
    die "vufuzz session encode $src failed"
done
# The conversations the session corpus has with the reference device (both
# sides, as `vufuzz replay` prints them in the trace format): realistic traces
# for the checker and the wire-byte seeds.
mkdir -p "$B/conversations"
for src in "$S"/corpus/*.txt; do
  name=$(basename "$src" .txt)
  { "$V" replay "$src" 2>/dev/null || true; } | grep -E '^(F>B|B>F|open|close|#)' \
    >"$B/conversations/replay-$name.trace" || true
done
traces=("$S"/tests/golden/*.trace "$S"/tests/traces/*.trace "$B"/conversations/*.trace)
cp "${traces[@]}" "$B/seeds/fuzz_checker/"
# fuzz_wire: every message of those traces; fuzz_raw: the front-end's
# fd-less main-channel messages of each trace as one byte stream (the
# handshake of every corpus session, as far as it goes without fds)
"$trace_bytes" wire "$B/seeds/fuzz_wire" "${traces[@]}"
if has fuzz_raw; then "$trace_bytes" raw "$B/seeds/fuzz_raw" "${traces[@]}"; fi
for t in "${targets[@]}"; do regressions "$B/seeds/$t" "${t#fuzz_}"; done
# fuzz_session_sockets: the same inputs as fuzz_session (its regressions too)
cp "$B/seeds/fuzz_session"/* "$B/seeds/fuzz_session_sockets/"
for t in "${targets[@]}"; do
  set -- "$B/seeds/$t"/*
  [ $# -gt 0 ] || die "no seeds for $t"
  rm -f "$OUT/${t}_seed_corpus.zip"
  zip -q -j -X "$OUT/${t}_seed_corpus.zip" "$@"
done

# ---- dictionaries ----
# Every message name of the table (current and former), from `vufuzz spec list`.
"$V" spec list | awk '
  $1 == "frontend" || $1 == "backend" {
    print $3
    if ($4 == "(formerly")
      for (i = 5; i <= NF; i++) { w = $i; gsub(/[(),]/, "", w); if (w != "") print w; if ($i ~ /\)$/) break }
  }' | sort -u >"$B/names"
# Message ids per channel, for the binary dictionaries.
"$V" spec list | awk '$1 == "frontend" || $1 == "backend" { print $1, $2, $3 }' >"$B/ids"
if [ ! -s "$B/names" ] || [ ! -s "$B/ids" ]; then die "vufuzz spec list gave no messages"; fi
# Payload field names, from the table's payload blocks (spec/README.md).
awk '
  /^payload / { p = 1; next }
  /^end/ { p = 0 }
  p && $1 != "pad" && $1 != "span" && NF >= 2 {
    n = $2; sub(/\[.*/, "", n)
    if ($1 ~ /^[ui](8|16|32|64)$/) print n "="; else print n "[0]."
  }' "$spec" | sort -u >"$B/fields"

le32() { # le32 N: N as 4 little-endian bytes in dictionary escapes
  printf '\\x%02x\\x%02x\\x%02x\\x%02x' $(($1 & 255)) $(($1 >> 8 & 255)) $(($1 >> 16 & 255)) $(($1 >> 24 & 255))
}

# fuzz_checker reads the trace text form (docs/trace-format.md).
{
  echo "# fuzz_checker: the trace format (docs/trace-format.md). Generated by scripts/oss-fuzz/build.sh;"
  echo "# message names from 'vufuzz spec list', field names from spec/vhost-user.spec."
  for w in "F>B main " "B>F main " "F>B backend " "B>F backend " "open main" "open backend" \
    "close main" "close backend" " by=F" " by=B" " reply" " need_reply" " hdr.flags=0x" " hdr.size=" \
    " raw=" " fds=" "short=" "fds=none" "# expect: " "0x" "\\x0a"; do
    printf '"%s"\n' "$w"
  done
  for k in eventfd memfd file socket socket-listen socket-dgram socket-closed pipe devnull other unknown; do
    printf '"%s"\n' "$k"
  done
  sed 's/.*/"&"/' "$B/names"
  sed 's/.*/" &"/' "$B/fields"
} >"$OUT/fuzz_checker.dict"

# fuzz_wire and fuzz_raw read wire bytes: each message's id as the header's
# first word (u32 little-endian), header flag words, the table's payload sizes.
{
  echo "# @TARGET@: vhost-user wire bytes. Generated by scripts/oss-fuzz/build.sh from 'vufuzz spec list'"
  echo "# (message ids as the header's first u32) and spec/vhost-user.spec (payload sizes)."
  while read -r ch id name; do
    printf '%s_%s="%s"\n' "$ch" "$name" "$(le32 "$id")"
  done <"$B/ids"
  printf 'flags_version="%s"\n' "$(le32 1)"
  printf 'flags_reply="%s"\n' "$(le32 5)"
  printf 'flags_need_reply="%s"\n' "$(le32 9)"
  printf 'flags_bad_version="%s"\n' "$(le32 2)"
  printf 'u64_nofd="\\x00\\x01\\x00\\x00\\x00\\x00\\x00\\x00"\n'
  printf 'u64_protocol_features_bit="\\x00\\x00\\x00\\x40\\x00\\x00\\x00\\x00"\n'
  printf 'u64_version_1_bit="\\x00\\x00\\x00\\x00\\x01\\x00\\x00\\x00"\n'
  printf 'u64_all_ones="\\xff\\xff\\xff\\xff\\xff\\xff\\xff\\xff"\n'
  awk '/^payload / { split($3, a, "+"); print $2, a[1] }' "$spec" | while read -r name size; do
    printf 'size_%s="%s"\n' "$name" "$(le32 "$size")"
  done
} >"$B/wire.dict"
sed 's/^# @TARGET@:/# fuzz_wire (after its first byte, sender | channel << 1):/' "$B/wire.dict" >"$OUT/fuzz_wire.dict"
if has fuzz_raw; then
  sed 's/^# @TARGET@:/# fuzz_raw (the bytes on the main socket):/' "$B/wire.dict" >"$OUT/fuzz_raw.dict"
fi

# fuzz_spec reads the table format (spec/README.md): its keywords and names.
{
  echo "# fuzz_spec: the table format (spec/README.md). Generated by scripts/oss-fuzz/build.sh"
  echo "# from the words of spec/vhost-user.spec."
  awk '!/^[ \t]*#/ { gsub(/"[^"]*"/, ""); for (i = 1; i <= NF; i++) if ($i ~ /^[a-z][a-z0-9_-]*$/) print $i }' \
    "$spec" | sort -u | sed 's/.*/"&"/'
  printf '"%s"\n' '\"' '\x0aend\x0a' '[nregions]' ' max ' '0x' '+8n'
} >"$OUT/fuzz_spec.dict"

# ---- options ----
# One file per target, in the repository: the same values serve OSS-Fuzz,
# scripts/run.sh, scripts/bench/ and the documented commands. No
# close_fd_mask: the targets report what they found on stderr before they
# abort (fuzz_session: "==vufuzz== finding: ..."), and that line is the report.
for t in "${targets[@]}"; do
  o=$S/scripts/oss-fuzz/options/$t.options
  [ -f "$o" ] || die "no $o"
  d=$(sed -n 's/^dict *= *//p' "$o")
  if [ -n "$d" ] && [ ! -s "$OUT/$d" ]; then die "$o names $d, which this script did not make"; fi
  cp "$o" "$OUT/$t.options"
done

log "done: $(cd "$OUT" && echo "${targets[@]}" libvufuzz_afl_mutator.so) in $OUT"
if [ -n "${WORK:-}" ]; then log "host vufuzz (replay findings with it): $V"; fi
