#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# Builds every vufuzz fuzz target the OSS-Fuzz way (see --help).
set -euo pipefail

usage() {
  cat <<'EOF'
usage: scripts/oss-fuzz/build.sh [--help]

Builds the vufuzz fuzz targets (fuzz_spec fuzz_wire fuzz_checker fuzz_session
fuzz_raw) the OSS-Fuzz way, for whichever engine and sanitizer the environment
describes. It reads only the base-builder variables:

  CC CFLAGS            compile every C source (C11, -D_GNU_SOURCE)
  CXX CXXFLAGS         link the targets, with
  LIB_FUZZING_ENGINE   the engine (-fsanitize=fuzzer, libAFLDriver.a, ...)
  OUT                  where the targets and their files go
  SRC                  the source is $SRC/vufuzz
  WORK                 scratch space (a temporary directory when unset)

Optional overrides (not set by OSS-Fuzz):
  VUF_SRC              the source tree (default: $SRC/vufuzz, else the
                       repository that contains this script)
  VUF_HOST_CC          compiler for the build-time tools and the AFL++ mutator
                       library (default: the first of clang, cc, gcc)
  VUF_HOST_CFLAGS      its flags (default: -O2 -g; never $CFLAGS)
  VUF_PROTOBUF_C_LIB   the static libprotobuf-c.a to link
  VUF_JOBS             parallel compiler jobs (default: nproc)

Writes into $OUT, for each target T:
  T                    the fuzz target
  T_seed_corpus.zip    its seeds
  T.options            [libfuzzer] max_len, timeout (and dict)
  T.dict               fuzz_spec, fuzz_wire, fuzz_checker, fuzz_raw
and libvufuzz_afl_mutator.so, the session mutator as an AFL++ custom mutator
(AFL_CUSTOM_MUTATOR_LIBRARY; built with the host compiler, no sanitizers).

Needs protoc-c, libprotobuf-c (static), zip, od and a host C compiler.
EOF
}

case "${1:-}" in
  -h | --help) usage; exit 0 ;;
  "") ;;
  *) echo "build.sh: unknown argument '$1' (try --help)" >&2; exit 2 ;;
esac

die() { echo "build.sh: error: $*" >&2; exit 2; }
log() { echo "build.sh: $*" >&2; }

for v in CC CXX LIB_FUZZING_ENGINE OUT; do
  [ -n "${!v:-}" ] || die "\$$v is not set; this script expects the OSS-Fuzz base-builder environment (see --help)"
done
# word lists, as OSS-Fuzz build scripts use them unquoted
read -r -a cc <<<"$CC"
read -r -a cxx <<<"$CXX"
read -r -a cflags <<<"${CFLAGS:-}"
read -r -a cxxflags <<<"${CXXFLAGS:-}"
read -r -a engine <<<"$LIB_FUZZING_ENGINE"

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
mkdir -p "$B/gen" "$B/host" "$B/target" "$B/seeds"

# ---- tools ----
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

# ---- generated sources ----
# The spec table compiled in (what cmake/embed.cmake does): bytes as a C array.
spec=$S/spec/vhost-user.spec
{
  printf '#include <stddef.h>\nconst char vuf_spec_default_data[] = {\n'
  od -An -v -tx1 "$spec" | sed -e 's/ *\([0-9a-f][0-9a-f]\)/0x\1,/g'
  printf '0};\nconst size_t vuf_spec_default_size = %s;\n' "$(wc -c <"$spec" | tr -d ' ')"
} >"$B/gen/spec_default.c"
protoc-c --c_out="$B/gen" --proto_path="$S/session" session.proto
# the version vufuzz --version reports (what cmake/version.cmake writes)
cmake -DVERSION="$(sed -n 's/^project(vufuzz VERSION \([0-9.]*\).*/\1/p' "$S/CMakeLists.txt")" \
  -DSRC="$S" -DOUT="$B/gen/version.c" -P "$S/cmake/version.cmake"

# ---- sources ----
shopt -s nullglob
core_src=("$S"/spec/*.c "$S"/wire/*.c "$S"/trace/*.c "$S"/checkers/*.c "$S"/common/*.c "$B/gen/spec_default.c")
ref_src=("$S"/reference/*.c)
session_src=("$S"/session/*.c "$B/gen/session.pb-c.c")
harness_src=("$S"/harness/*.c "$S/fuzz/mutator.c")
tool_src=("$S"/tools/*.c "$S"/proc/*.c "$S"/monitor/*.c "$B/gen/version.c")
# what the AFL++ mutator library needs (as fuzz/CMakeLists.txt builds it)
mutator_src=("$S/fuzz/afl_mutator.c" "$S/fuzz/mutator.c" "${session_src[@]}"
  "$S"/spec/*.c "$S/wire/codec.c" "$S"/trace/*.c "$S/common/util.c" "$B/gen/spec_default.c")
targets=(fuzz_spec fuzz_wire fuzz_checker fuzz_session fuzz_raw)
includes=(-I"$S/common" -I"$S/spec" -I"$S/wire" -I"$S/trace" -I"$S/checkers" -I"$S/reference" -I"$S/session" -I"$S/harness" -I"$S/fuzz" -I"$S/proc" -I"$S/monitor" -I"$B/gen")

obj() { # obj DIR SRC: the object file of SRC in DIR
  local rel=${2#"$S"/}
  rel=${rel#"$B"/}
  rel=${rel//\//_}
  echo "$1/${rel%.c}.o"
}
objs() { # objs DIR SRC...: their object files
  local d=$1 s
  shift
  for s in "$@"; do obj "$d" "$s"; done
}

# A small job pool: at most $jobs commands at once; failures are collected.
failed=$B/failed
: >"$failed"
running=0
run() { # run LOG CMD...
  local logf=$1
  shift
  if [ "$running" -ge "$jobs" ]; then
    wait -n || true
    running=$((running - 1))
  fi
  ("$@" >"$logf" 2>&1 || echo "$logf" >>"$failed") &
  running=$((running + 1))
}
finish() { # finish WHAT: wait for the pool, stop with the logs of failures
  wait
  running=0
  if [ -s "$failed" ]; then
    while read -r l; do
      echo "--- $l" >&2
      head -40 "$l" >&2
    done <"$failed"
    die "$1 failed"
  fi
}

# ---- host build: the build-time tools and the AFL++ mutator library ----
# Plain host compiler: no $CFLAGS (no sanitizers, no coverage), position
# independent so the same objects go into the shared library.
read -r -a host_cflags <<<"${VUF_HOST_CFLAGS:--O2 -g}"
tb_src=$S/scripts/oss-fuzz/trace_bytes.c
host_all=("${core_src[@]}" "${ref_src[@]}" "${session_src[@]}" "${harness_src[@]}" "${tool_src[@]}"
  "$S/fuzz/afl_mutator.c" "$tb_src")
for s in "${host_all[@]}"; do
  o=$(obj "$B/host" "$s")
  run "$o.log" "$host_cc" -std=c11 -D_GNU_SOURCE -DVUF_HAVE_REFERENCE=1 -fPIC "${host_cflags[@]}" \
    "${includes[@]}" -I"$S/tools" -c "$s" -o "$o"
done
finish "host compilation ($host_cc)"

# ---- target build: $CC $CFLAGS, linked with $CXX $CXXFLAGS $LIB_FUZZING_ENGINE ----
for s in "${core_src[@]}" "${ref_src[@]}" "${session_src[@]}" "${harness_src[@]}"; do
  o=$(obj "$B/target" "$s")
  run "$o.log" "${cc[@]}" -std=c11 -D_GNU_SOURCE -Wall -Wextra "${includes[@]}" "${cflags[@]}" -c "$s" -o "$o"
done
for t in "${targets[@]}"; do
  run "$B/target/$t.o.log" "${cc[@]}" -std=c11 -D_GNU_SOURCE -Wall -Wextra "${includes[@]}" "${cflags[@]}" \
    -c "$S/fuzz/$t.c" -o "$B/target/$t.o"
done
finish "compilation with \$CC ($CC)"

mapfile -t core_o < <(objs "$B/target" "${core_src[@]}")
mapfile -t harness_o < <(objs "$B/target" "${ref_src[@]}" "${session_src[@]}" "${harness_src[@]}")
for t in "${targets[@]}"; do
  case $t in
    fuzz_session | fuzz_raw) deps=("${core_o[@]}" "${harness_o[@]}") ;;
    *) deps=("${core_o[@]}") ;;
  esac
  run "$B/target/$t.link.log" "${cxx[@]}" "${cxxflags[@]}" "$B/target/$t.o" "${deps[@]}" "${engine[@]}" \
    "$pbc" -o "$OUT/$t"
done

# host links: the vufuzz command line, the seed tool, the mutator library
host_o() { objs "$B/host" "$@"; }
mapfile -t tool_o < <(host_o "${core_src[@]}" "${ref_src[@]}" "${session_src[@]}" "${harness_src[@]}" "${tool_src[@]}")
run "$B/host/vufuzz.link.log" "$host_cc" "${tool_o[@]}" "$pbc" -o "$B/host/vufuzz"
mapfile -t tb_o < <(host_o "${core_src[@]}")
run "$B/host/trace_bytes.link.log" "$host_cc" "$(obj "$B/host" "$tb_src")" "${tb_o[@]}" -o "$B/host/trace_bytes"
printf '{\n  global: afl_custom_*;\n  local: *;\n};\n' >"$B/host/afl_mutator.map"
mapfile -t mut_o < <(host_o "${mutator_src[@]}")
run "$B/host/mutator.link.log" "$host_cc" -shared -fPIC "${mut_o[@]}" "$pbc" -Wl,-z,defs \
  -Wl,--version-script="$B/host/afl_mutator.map" -o "$OUT/libvufuzz_afl_mutator.so"
finish "linking"
V=$B/host/vufuzz

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
"$B/host/trace_bytes" wire "$B/seeds/fuzz_wire" "${traces[@]}"
"$B/host/trace_bytes" raw "$B/seeds/fuzz_raw" "${traces[@]}"
regressions "$B/seeds/fuzz_spec" spec
regressions "$B/seeds/fuzz_wire" wire
regressions "$B/seeds/fuzz_checker" checker
regressions "$B/seeds/fuzz_session" session
regressions "$B/seeds/fuzz_raw" raw
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
sed 's/^# @TARGET@:/# fuzz_raw (the bytes on the main socket):/' "$B/wire.dict" >"$OUT/fuzz_raw.dict"

# fuzz_spec reads the table format (spec/README.md): its keywords and names.
{
  echo "# fuzz_spec: the table format (spec/README.md). Generated by scripts/oss-fuzz/build.sh"
  echo "# from the words of spec/vhost-user.spec."
  awk '!/^[ \t]*#/ { gsub(/"[^"]*"/, ""); for (i = 1; i <= NF; i++) if ($i ~ /^[a-z][a-z0-9_-]*$/) print $i }' \
    "$spec" | sort -u | sed 's/.*/"&"/'
  printf '"%s"\n' '\"' '\x0aend\x0a' '[nregions]' ' max ' '0x' '+8n'
} >"$OUT/fuzz_spec.dict"

# ---- options ----
# No close_fd_mask: the targets report what they found on stderr before they
# abort (fuzz_session: "==vufuzz== finding: ..."), and that line is the report.
options() { # options T MAX_LEN [DICT]
  {
    echo "[libfuzzer]"
    echo "max_len = $2"
    echo "timeout = 10"
    if [ -n "${3:-}" ]; then echo "dict = $3"; fi
  } >"$OUT/$1.options"
}
options fuzz_spec 32768 fuzz_spec.dict
options fuzz_wire 4109 fuzz_wire.dict # 1 + header (12) + VUF_PAYLOAD_MAX (4096): the target ignores more
options fuzz_checker 16384 fuzz_checker.dict
options fuzz_session 8192 # binary protobuf: the custom mutator knows the structure
options fuzz_raw 8192 fuzz_raw.dict

log "done: $(cd "$OUT" && echo "${targets[@]}" libvufuzz_afl_mutator.so) in $OUT"
if [ -n "${WORK:-}" ]; then log "host vufuzz (replay findings with it): $V"; fi
