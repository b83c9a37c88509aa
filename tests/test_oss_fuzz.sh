#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# scripts/oss-fuzz/build.sh in two emulated OSS-Fuzz base-builder
# environments, each from an empty environment into its own $OUT: libFuzzer
# with ASan+UBSan, as OSS-Fuzz and ClusterFuzzLite build it (fuzz_raw left
# out), and AFL++ with afl-clang-fast and libAFLDriver.a, as
# scripts/fuzz-afl.sh builds it (--with-baseline: fuzz_raw too). Checks the
# emitted files, that the CMake build linked each target with $CXX and
# $LIB_FUZZING_ENGINE, runs every libFuzzer target briefly and
# deterministically on its seed corpus with its .options, and the AFL build
# of fuzz_session under afl-fuzz with the custom mutator library. About 5
# minutes on 2 cores shared with other jobs.
set -uo pipefail
case ${1:-} in
  -h | --help)
    echo "usage: tests/test_oss_fuzz.sh BUILD_DIR   (from the source root; ctest runs it)"
    echo "BUILD_DIR: a CMake build; its corpus/handshake.bin, when present, is compared with build.sh's"
    exit 0 ;;
esac
B=${1:?usage: test_oss_fuzz.sh BUILD_DIR}
# shellcheck source=tests/lib.sh
. "$(dirname "$0")/lib.sh"
root=$PWD
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
oss_targets=(fuzz_spec fuzz_wire fuzz_checker fuzz_session fuzz_session_sockets) # what OSS-Fuzz gets
all_targets=("${oss_targets[@]}" fuzz_raw)                  # with --with-baseline
declare -A runs=([fuzz_spec]=1000 [fuzz_wire]=50000 [fuzz_checker]=20000 [fuzz_session]=300 [fuzz_session_sockets]=300 [fuzz_raw]=3000)
declare -A has_dict=([fuzz_spec]=1 [fuzz_wire]=1 [fuzz_checker]=1 [fuzz_session]=0 [fuzz_session_sockets]=0 [fuzz_raw]=1)
driver=/usr/lib/afl/libAFLDriver.a

summary() { echo "$pass passed, $fail failed"; [ "$fail" -eq 0 ]; exit $?; }

missing=()
for t in cmake clang clang++ afl-clang-fast afl-clang-fast++ afl-fuzz protoc-c zip unzip od nm readelf python3; do
  command -v "$t" >/dev/null 2>&1 || missing+=("$t")
done
[ -f "$driver" ] || missing+=("$driver")
if [ ${#missing[@]} -gt 0 ]; then
  ko "missing: ${missing[*]} (scripts/test.sh installs clang, afl++, protobuf-c-compiler, zip, unzip)"
  summary
fi

# $SRC/vufuzz, as the Dockerfile copies it
mkdir -p "$tmp/src"
ln -s "$root" "$tmp/src/vufuzz"

# build.sh's command line
rc=0
bash scripts/oss-fuzz/build.sh --bogus >/dev/null 2>"$tmp/usage.err" || rc=$?
if bash scripts/oss-fuzz/build.sh --help | grep -q -- '--with-baseline' && [ "$rc" -eq 2 ] &&
  grep -q "unknown argument '--bogus'" "$tmp/usage.err"; then
  ok "build.sh --help; an unknown argument is refused"
else
  ko "build.sh --help or its usage error"
fi

build() { # build NAME [BUILD.SH-ARG] VAR=VALUE...: build.sh from an empty environment
  local name=$1 args=()
  shift
  if [ "${1:-}" = --with-baseline ]; then args=("$1"); shift; fi
  mkdir -p "$tmp/$name"
  if env -i PATH="$PATH" HOME="$tmp" "$@" SRC="$tmp/src" OUT="$tmp/$name/out" WORK="$tmp/$name/work" \
    bash "$root/scripts/oss-fuzz/build.sh" "${args[@]}" >"$tmp/$name/build.log" 2>&1; then
    ok "$name: build.sh ${args[*]}"
  else
    ko "$name: build.sh failed:"
    tail -30 "$tmp/$name/build.log" | sed 's/^/     /'
    return 1
  fi
}

members() { unzip -Z1 "$1" 2>/dev/null; }

max_len() { # max_len OPTIONS-FILE: its [libfuzzer] max_len, read as OSS-Fuzz reads it
  python3 -c 'import configparser, sys
p = configparser.ConfigParser()
p.read(sys.argv[1])
print(p["libfuzzer"]["max_len"])' "$1"
}

fields() { # fields FILE WORD: how many times WORD is a whole field of FILE
  awk -v w="$2" '{ for (i = 1; i <= NF; i++) if ($i == w) n++ } END { print n + 0 }' "$1"
}

check_out() { # check_out NAME CXX ENGINE TARGET...: the files build.sh promises
  local name=$1 cxx=$2 engine=$3 o=$tmp/$1/out t z n f l
  local V=$tmp/$1/work/vufuzz-build/host/vufuzz
  shift 3
  local targets=("$@")
  for t in "${all_targets[@]}"; do
    case " ${targets[*]} " in *" $t "*) ;; *)
      if ls "$o/$t" "$o/$t".* "$o/${t}_seed_corpus.zip" >/dev/null 2>&1; then ko "$name: $t built, though not asked for"; else ok "$name: no $t (not asked for)"; fi
      continue ;;
    esac
    # linked by the CMake build: $CXX $CXXFLAGS ... $LIB_FUZZING_ENGINE
    # (and compiled without -fsanitize=fuzzer: $CFLAGS has the instrumentation)
    l=$(find "$tmp/$name/work/vufuzz-build/target" -path "*/$t.dir/link.txt" | head -1)
    f=${l%/link.txt}/flags.make
    if [ -n "$l" ] && [ "$(awk '{print $1; exit}' "$l")" = "$(command -v "$cxx")" ] &&
      [ "$(fields "$l" "$engine")" -eq 1 ] && { [ "$engine" = -fsanitize=fuzzer ] || [ "$(fields "$l" -fsanitize=fuzzer)" -eq 0 ]; } &&
      [ -f "$f" ] && [ "$(fields "$f" -fsanitize=fuzzer)" -eq 0 ]; then ok "$name: $t linked by $cxx with $engine (CMake)"
    else ko "$name: $t not linked by $cxx with $engine: $(head -c 300 "$l" 2>/dev/null)"; fi
    if [ -x "$o/$t" ] && grep -q LLVMFuzzerTestOneInput "$o/$t"; then ok "$name: $t built"; else ko "$name: $t missing or not a fuzz target"; fi
    if readelf -d "$o/$t" 2>/dev/null | grep -q 'libprotobuf-c'; then ko "$name: $t needs the shared libprotobuf-c (the runner image has none)"; else ok "$name: $t links libprotobuf-c statically"; fi
    z=$o/${t}_seed_corpus.zip
    n=$(members "$z" | wc -l)
    if [ "$n" -gt 0 ]; then ok "$name: ${t}_seed_corpus.zip ($n files)"; else ko "$name: ${t}_seed_corpus.zip missing or empty"; fi
    f=$o/$t.options
    if cmp -s "$f" "scripts/oss-fuzz/options/$t.options" && [[ $(max_len "$f" 2>/dev/null) =~ ^[1-9][0-9]*$ ]] &&
      grep -qx 'timeout = 10' "$f"; then ok "$name: $t.options (scripts/oss-fuzz/options/$t.options, max_len $(max_len "$f"))"
    else ko "$name: $t.options missing, unreadable or not scripts/oss-fuzz/options/$t.options"; fi
    if [ "${has_dict[$t]}" -eq 1 ]; then
      if grep -qx "dict = $t.dict" "$f" && [ -s "$o/$t.dict" ]; then ok "$name: $t.dict"; else ko "$name: $t.dict missing or not in $t.options"; fi
    elif grep -q '^dict' "$f"; then ko "$name: $t.options names a dictionary"; fi
  done
  # expected seed members
  if members "$o/fuzz_spec_seed_corpus.zip" | grep -qx vhost-user.spec; then ok "$name: fuzz_spec seeds hold the table"; else ko "$name: no vhost-user.spec in fuzz_spec seeds"; fi
  local want=() got
  for f in tests/golden/*.trace tests/traces/*.trace; do want+=("$(basename "$f")"); done
  got=$(members "$o/fuzz_checker_seed_corpus.zip")
  n=0
  for f in "${want[@]}" replay-handshake.trace; do grep -qxF "$f" <<<"$got" || n=$((n + 1)); done
  if [ "$n" -eq 0 ]; then ok "$name: fuzz_checker seeds: every golden and sample trace, the replayed corpus"; else ko "$name: fuzz_checker seeds lack $n traces"; fi
  for t in fuzz_session fuzz_session_sockets; do
    got=$(members "$o/${t}_seed_corpus.zip")
    n=0
    for f in corpus/*.txt; do grep -qxF "$(basename "$f" .txt).bin" <<<"$got" || n=$((n + 1)); done
    for f in fuzz/regressions/session-*.bin; do grep -qxF "$(basename "$f")" <<<"$got" || n=$((n + 1)); done
    if [ "$n" -eq 0 ]; then ok "$name: $t seeds: every corpus/*.txt encoded, the session regressions"; else ko "$name: $t seeds lack $n files"; fi
  done
  if [ -f "$B/corpus/handshake.bin" ]; then
    mkdir -p "$tmp/$name/z"
    unzip -q -o "$o/fuzz_session_seed_corpus.zip" handshake.bin -d "$tmp/$name/z"
    if cmp -s "$tmp/$name/z/handshake.bin" "$B/corpus/handshake.bin"; then ok "$name: handshake.bin is what the cmake build encodes"; else ko "$name: handshake.bin differs from $B/corpus/handshake.bin"; fi
  fi
  got=$(members "$o/fuzz_wire_seed_corpus.zip")
  if grep -q '^msg-' <<<"$got" && grep -q '^wire-' <<<"$got"; then ok "$name: fuzz_wire seeds: messages, the regressions"; else ko "$name: fuzz_wire seeds lack messages or regressions"; fi
  # fuzz_raw: byte streams that start with GET_FEATURES (id 1, flags 1, size 0)
  if [ -f "$o/fuzz_raw" ]; then
    mkdir -p "$tmp/$name/raw"
    unzip -q -o "$o/fuzz_raw_seed_corpus.zip" -d "$tmp/$name/raw"
    n=0
    for f in "$tmp/$name/raw"/*; do
      [ "$(od -An -tx1 -N12 "$f" | tr -d ' \n')" = 010000000100000000000000 ] && n=$((n + 1))
    done
    if [ "$n" -gt 0 ]; then ok "$name: fuzz_raw seeds: $n handshakes start with GET_FEATURES"; else ko "$name: no fuzz_raw seed starts with GET_FEATURES"; fi
  fi
  # dictionaries: the table's message names
  n=$("$V" spec list | grep -cE '^(frontend|backend) ')
  if [ "$(grep -cE '^(frontend|backend)_[A-Z0-9_]+="(\\x[0-9a-f]{2}){4}"$' "$o/fuzz_wire.dict")" -eq "$n" ]; then ok "$name: fuzz_wire.dict: the $n message ids of the table"; else ko "$name: fuzz_wire.dict does not hold the $n message ids"; fi
  if grep -qx '"SET_BACKEND_REQ_FD"' "$o/fuzz_checker.dict" && grep -qx '"SET_SLAVE_REQ_FD"' "$o/fuzz_checker.dict" &&
    grep -qx '"F>B main "' "$o/fuzz_checker.dict" && grep -qx '" regions\[0\]."' "$o/fuzz_checker.dict" &&
    grep -qx '"socket-closed"' "$o/fuzz_checker.dict"; then ok "$name: fuzz_checker.dict: names, former names, directions, fields, fd kinds"; else ko "$name: fuzz_checker.dict incomplete"; fi
  # the AFL++ mutator library: the hooks, no sanitizer or coverage runtime, no shared protobuf-c
  f=$o/libvufuzz_afl_mutator.so
  if [ -f "$f" ]; then
    local defined undef h bad=""
    defined=$(nm -D --defined-only "$f" | awk '{print $3}')
    for h in afl_custom_init afl_custom_fuzz afl_custom_describe afl_custom_init_trim afl_custom_trim afl_custom_post_trim afl_custom_deinit; do
      grep -qx "$h" <<<"$defined" || bad+=" $h"
    done
    if [ -z "$bad" ]; then ok "$name: libvufuzz_afl_mutator.so exports the AFL++ hooks"; else ko "$name: libvufuzz_afl_mutator.so lacks$bad"; fi
    undef=$(nm -D --undefined-only "$f" | awk '{print $2}' | grep -E '^__(asan|ubsan|sanitizer|afl)' | head -3)
    if [ -z "$undef" ] && ! readelf -d "$f" | grep -q libprotobuf-c; then ok "$name: libvufuzz_afl_mutator.so is plain (no sanitizer runtime, static protobuf-c)"; else ko "$name: libvufuzz_afl_mutator.so needs: $undef $(readelf -d "$f" | grep -o 'libprotobuf-c[^]]*')"; fi
  else
    ko "$name: libvufuzz_afl_mutator.so missing"
  fi
}

# ---- libFuzzer, ASan+UBSan ----
lf_flags="-O1 -g -fno-omit-frame-pointer -fsanitize=address,undefined -fsanitize-address-use-after-scope -fsanitize=fuzzer-no-link"
if build libfuzzer CC=clang CXX=clang++ CFLAGS="$lf_flags" CXXFLAGS="$lf_flags" LIB_FUZZING_ENGINE=-fsanitize=fuzzer; then
  check_out libfuzzer clang++ -fsanitize=fuzzer "${oss_targets[@]}"
  o=$tmp/libfuzzer/out
  for t in "${oss_targets[@]}"; do
    [ -x "$o/$t" ] || continue
    seeds=$tmp/libfuzzer/seeds/$t
    mkdir -p "$seeds" "$tmp/artifacts"
    unzip -q -o "$o/${t}_seed_corpus.zip" -d "$seeds"
    args=(-seed=1 "-runs=${runs[$t]}" -max_total_time=60 -rss_limit_mb=2048 -artifact_prefix="$tmp/artifacts/")
    args+=("-max_len=$(max_len "$o/$t.options")")
    args+=("-timeout=$(awk -F' = ' '$1 == "timeout" {print $2}' "$o/$t.options")")
    d=$(awk -F' = ' '$1 == "dict" {print $2}' "$o/$t.options")
    if [ -n "$d" ]; then args+=("-dict=$o/$d"); fi
    if "$o/$t" "${args[@]}" "$seeds" >"$tmp/libfuzzer/$t.log" 2>&1; then
      ok "libfuzzer: $t on its seeds with its options: $(grep -Eo 'Done [0-9]+ runs in [0-9]+ second' "$tmp/libfuzzer/$t.log")"
    else
      ko "libfuzzer: $t failed on its seeds:"
      grep -E 'ERROR|SUMMARY|finding|ParseDictionary|^    #[0-9]' "$tmp/libfuzzer/$t.log" | head -20 | sed 's/^/     /'
    fi
  done
fi

# ---- AFL++: afl-clang-fast, libAFLDriver.a ----
afl_flags="-O1 -g -fsanitize=address,undefined"
if build afl --with-baseline AFL_QUIET=1 CC=afl-clang-fast CXX=afl-clang-fast++ CFLAGS="$afl_flags" \
  CXXFLAGS="$afl_flags" LIB_FUZZING_ENGINE="$driver"; then
  check_out afl afl-clang-fast++ "$driver" "${all_targets[@]}"
  o=$tmp/afl/out
  for t in "${all_targets[@]}"; do
    [ -x "$o/$t" ] || continue
    mkdir -p "$tmp/afl/seeds/$t"
    unzip -q -o "$o/${t}_seed_corpus.zip" -d "$tmp/afl/seeds/$t"
    s=$(find "$tmp/afl/seeds/$t" -type f | sort | head -1)
    if grep -q '##SIG_AFL_PERSISTENT##' "$o/$t" && "$o/$t" "$s" >"$tmp/afl/$t.log" 2>&1 &&
      grep -q 'Execution successful' "$tmp/afl/$t.log"; then ok "afl: $t is an AFL++ persistent-mode target and runs $(basename "$s")"
    else ko "afl: $t: not an AFL++ target, or it fails on $(basename "$s")"; tail -5 "$tmp/afl/$t.log" | sed 's/^/     /'; fi
  done
  # a short campaign of fuzz_session with the session mutator alone (with
  # AFL's havoc as well, a short run under load may keep none of its inputs)
  if [ -x "$o/fuzz_session" ]; then
    a=$tmp/afl/findings
    env -u ASAN_OPTIONS -u UBSAN_OPTIONS -u LSAN_OPTIONS -u MSAN_OPTIONS AFL_SKIP_CPUFREQ=1 AFL_NO_UI=1 \
      AFL_NO_AFFINITY=1 AFL_I_DONT_CARE_ABOUT_MISSING_CRASHES=1 AFL_CUSTOM_MUTATOR_ONLY=1 \
      AFL_CUSTOM_MUTATOR_LIBRARY="$o/libvufuzz_afl_mutator.so" \
      afl-fuzz -i "$tmp/afl/seeds/fuzz_session" -o "$a" -V 8 -- "$o/fuzz_session" >"$tmp/afl/afl-fuzz.log" 2>&1
    rc=$?
    st=$a/default/fuzzer_stats
    field() { awk -F' *: *' -v k="$1" '$1 == k {print $2}' "$st" 2>/dev/null; }
    execs=$(field execs_done)
    if [ "$rc" -eq 0 ] && [ "${execs:-0}" -gt 0 ]; then
      ok "afl: afl-fuzz -V 8 fuzz_session: execs_done $execs, execs_per_sec $(field execs_per_sec), corpus_count $(field corpus_count), saved_hangs $(field saved_hangs)"
    else
      ko "afl: afl-fuzz on fuzz_session did not run (exit $rc, execs_done ${execs:-none}):"
      tail -15 "$tmp/afl/afl-fuzz.log" | sed 's/^/     /'
    fi
    if [ -f "$st" ] && [ "$(field saved_crashes)" = 0 ]; then ok "afl: no crash saved"; else
      ko "afl: afl-fuzz saved crashes: $(field saved_crashes)"
      for f in "$a"/default/crashes/id:*; do
        [ -f "$f" ] || continue
        mkdir -p "$B/fuzz-findings"
        cp "$f" "$B/fuzz-findings/afl-fuzz_session-$(basename "$f" | tr ':,' '__')"
      done
      echo "     (inputs kept in $B/fuzz-findings/)"
    fi
    # with AFL_CUSTOM_MUTATOR_ONLY every execution past the seeds'
    # calibration is a session the mutator made
    nseeds=$(find "$tmp/afl/seeds/fuzz_session" -type f | wc -l)
    ours=$(find "$a/default/queue" -name 'id:*' | grep -cE 'execs:[0-9]+,(crossover|[a-z]+(-[a-z]+)*),' || true)
    if grep -q 'Custom mutator .*libvufuzz_afl_mutator.so.* installed successfully' "$tmp/afl/afl-fuzz.log" &&
      [ "${execs:-0}" -gt $((nseeds * 20)) ]; then
      ok "afl: the session mutator was loaded and made the executions past calibration ($ours of its sessions queued)"
    else
      ko "afl: the session mutator was not used"
    fi
  fi
fi

summary
