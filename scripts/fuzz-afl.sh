#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# An AFL++ campaign on one vufuzz fuzz target, from a fresh clone (see --help).
set -euo pipefail

usage() {
  cat <<'EOF'
usage: scripts/fuzz-afl.sh [--target T] [--seconds N] [--jobs N] [--out DIR]
                           [--no-custom-mutator] [--no-build] [--help]

Runs an AFL++ campaign on a vufuzz fuzz target:
  1. installs what is missing (scripts/lib.sh, apt-get);
  2. builds every target with afl-clang-fast, ASan and UBSan
     (CFLAGS=-fsanitize=address,undefined -fno-sanitize-recover=undefined) and
     /usr/lib/afl/libAFLDriver.a as the engine, by running
     scripts/oss-fuzz/build.sh --with-baseline (fuzz_raw too) into
     build-afl/out (scratch: build-afl/work);
  3. runs afl-fuzz -i SEEDS -o DIR -V N on build-afl/out/T, seeds from
     T_seed_corpus.zip, the dictionary T.dict when there is one, and for
     fuzz_session and fuzz_session_sockets the structure-aware session mutator
     (AFL_CUSTOM_MUTATOR_LIBRARY=build-afl/out/libvufuzz_afl_mutator.so);
  4. prints a summary from fuzzer_stats and where the findings are; with
     --jobs N, each instance's figures and the merged ones.

  --target T            fuzz_session (default), fuzz_session_sockets, fuzz_raw,
                        fuzz_checker, fuzz_wire, fuzz_spec
  --seconds N           campaign length (default 600)
  --jobs N              N instances in parallel on one output directory:
                        afl-fuzz -M main, then -S sec1 ... -S secN-1 (they
                        share their finds through it); each instance's log is
                        DIR/afl-fuzz-NAME.log. Default 1: one instance
                        (DIR/default). One core per instance: with more
                        instances than free cores afl-fuzz refuses to start
                        unless AFL_NO_AFFINITY=1
  --out DIR             afl-fuzz output directory (default build-afl/findings/T); a
                        campaign already there is resumed (AFL_AUTORESUME=1)
  --no-custom-mutator   fuzz_session(_sockets) with AFL++'s own mutations only
  --no-build            reuse build-afl/out as it is

The environment afl-fuzz gets: AFL_SKIP_CPUFREQ=1; AFL_NO_UI=1 when stdout is
not a terminal; AFL_I_DONT_CARE_ABOUT_MISSING_CRASHES=1 when
/proc/sys/kernel/core_pattern pipes to a program; ASAN_OPTIONS, UBSAN_OPTIONS,
LSAN_OPTIONS and MSAN_OPTIONS removed, so afl-fuzz sets the values it needs
(abort_on_error=1, symbolize=0, ...). Other AFL_* variables pass through
(AFL_NO_AFFINITY=1 when every core is taken by another fuzzer).

The merged figures (--jobs N > 1): execs_done and execs_per_sec summed over
the instances, run_time the longest, saved_crashes and saved_hangs summed,
edges_found the highest (each instance imports the others' queue entries, so
the highest is the union up to its last sync), and the distinct inputs of all
queues (by content: an entry synced from another instance counts once).

Exit status: 0 the campaign saved no crash and no hang, 1 it did, 2 error.
EOF
}

die() { echo "fuzz-afl.sh: error: $*" >&2; exit 2; }

target=fuzz_session seconds=600 out="" custom=1 build=1 jobs=1
while [ $# -gt 0 ]; do
  case $1 in
    -h | --help) usage; exit 0 ;;
    --target) [ $# -ge 2 ] || die "--target needs a value"; target=$2; shift 2 ;;
    --seconds) [ $# -ge 2 ] || die "--seconds needs a value"; seconds=$2; shift 2 ;;
    --jobs) [ $# -ge 2 ] || die "--jobs needs a value"; jobs=$2; shift 2 ;;
    --out) [ $# -ge 2 ] || die "--out needs a value"; out=$2; shift 2 ;;
    --no-custom-mutator) custom=0; shift ;;
    --no-build) build=0; shift ;;
    *) die "unknown argument '$1' (try --help)" ;;
  esac
done
case $target in
  fuzz_session | fuzz_session_sockets | fuzz_raw | fuzz_checker | fuzz_wire | fuzz_spec) ;;
  *) die "unknown target '$target' (fuzz_session, fuzz_session_sockets, fuzz_raw, fuzz_checker, fuzz_wire, fuzz_spec)" ;;
esac
[[ $seconds =~ ^[1-9][0-9]*$ ]] || die "--seconds wants a positive number of seconds, not '$seconds'"
[[ $jobs =~ ^[1-9][0-9]*$ ]] && [ "$jobs" -le 64 ] || die "--jobs wants a number of instances from 1 to 64, not '$jobs'"

# shellcheck source=scripts/lib.sh
. "$(dirname "$0")/lib.sh"
A=$VUF_ROOT/build-afl
out=${out:-$A/findings/$target}

vuf_install_deps
for tool in afl-fuzz afl-clang-fast afl-clang-fast++ unzip; do
  command -v "$tool" >/dev/null 2>&1 || die "$tool not found (Debian: apt-get install afl++ unzip)"
done
driver=${VUF_AFL_DRIVER:-/usr/lib/afl/libAFLDriver.a}
[ -f "$driver" ] || die "$driver not found (the afl++ package provides it; or set VUF_AFL_DRIVER)"

if [ "$build" -eq 1 ]; then
  flags="-O1 -g -fno-omit-frame-pointer -fsanitize=address,undefined -fno-sanitize-recover=undefined"
  vuf_log "building the targets with afl-clang-fast into $A/out (log: $A/build.log)"
  mkdir -p "$A"
  if ! env CC=afl-clang-fast CXX=afl-clang-fast++ CFLAGS="$flags" CXXFLAGS="$flags" \
    LIB_FUZZING_ENGINE="$driver" OUT="$A/out" WORK="$A/work" VUF_SRC="$VUF_ROOT" AFL_QUIET=1 \
    bash "$VUF_ROOT/scripts/oss-fuzz/build.sh" --with-baseline >"$A/build.log" 2>&1; then
    tail -40 "$A/build.log" >&2
    die "build failed, see $A/build.log"
  fi
fi
bin=$A/out/$target
[ -x "$bin" ] || die "$bin not built (run without --no-build)"

# seeds
seeds=$A/seeds/$target
rm -rf "$seeds"
mkdir -p "$seeds"
unzip -q -o "$A/out/${target}_seed_corpus.zip" -d "$seeds"

# the environment
export AFL_SKIP_CPUFREQ=1
[ -t 1 ] || export AFL_NO_UI=1
if [ "$(head -c1 /proc/sys/kernel/core_pattern 2>/dev/null || true)" = "|" ]; then
  # core dumps go to a program (apport, systemd-coredump): afl-fuzz would refuse
  export AFL_I_DONT_CARE_ABOUT_MISSING_CRASHES=1
fi
unset ASAN_OPTIONS UBSAN_OPTIONS LSAN_OPTIONS MSAN_OPTIONS
if [ "${target%_sockets}" = fuzz_session ] && [ "$custom" -eq 1 ]; then
  [ -f "$A/out/libvufuzz_afl_mutator.so" ] || die "$A/out/libvufuzz_afl_mutator.so not built"
  export AFL_CUSTOM_MUTATOR_LIBRARY=$A/out/libvufuzz_afl_mutator.so
else
  unset AFL_CUSTOM_MUTATOR_LIBRARY
fi
mkdir -p "$out"
# instance names: default alone, else main and sec1..secN-1
if [ "$jobs" -eq 1 ]; then
  names=(default)
else
  names=(main)
  for ((i = 1; i < jobs; i++)); do names+=("sec$i"); done
  export AFL_NO_UI=1 # several instances cannot share one terminal
fi
for n in "${names[@]}"; do
  if [ -f "$out/$n/fuzzer_stats" ]; then
    export AFL_AUTORESUME=1
    vuf_log "resuming the campaign in $out"
    break
  fi
done
args=(-i "$seeds" -o "$out" -V "$seconds")
if [ -f "$A/out/$target.dict" ]; then args+=(-x "$A/out/$target.dict"); fi

what="$target for ${seconds}s${AFL_CUSTOM_MUTATOR_LIBRARY:+ with the session mutator}"
rc=0
if [ "$jobs" -eq 1 ]; then
  vuf_log "afl-fuzz on $what, output $out"
  log=$out/afl-fuzz.log
  if [ -t 1 ]; then
    afl-fuzz "${args[@]}" -- "$bin" || rc=$?
  else
    vuf_log "afl-fuzz log: $log"
    afl-fuzz "${args[@]}" -- "$bin" >"$log" 2>&1 || rc=$?
  fi
  if [ "$rc" -ne 0 ] || [ ! -f "$out/default/fuzzer_stats" ]; then
    [ -t 1 ] || tail -30 "$log" >&2
    die "afl-fuzz failed (exit $rc)"
  fi
else
  vuf_log "afl-fuzz on $what, $jobs instances (${names[*]}), output $out, logs $out/afl-fuzz-NAME.log"
  pids=()
  trap 'kill "${pids[@]}" 2>/dev/null || true' INT TERM
  for n in "${names[@]}"; do
    role=-S
    [ "$n" = main ] && role=-M
    afl-fuzz "${args[@]}" "$role" "$n" -- "$bin" >"$out/afl-fuzz-$n.log" 2>&1 &
    pids+=($!)
  done
  failed=()
  for i in "${!names[@]}"; do
    r=0
    wait "${pids[$i]}" || r=$?
    if [ "$r" -ne 0 ] || [ ! -f "$out/${names[$i]}/fuzzer_stats" ]; then
      failed+=("${names[$i]}")
      echo "== ${names[$i]} (exit $r), the end of $out/afl-fuzz-${names[$i]}.log:" >&2
      tail -15 "$out/afl-fuzz-${names[$i]}.log" >&2
    fi
  done
  trap - INT TERM
  [ ${#failed[@]} -eq 0 ] || die "afl-fuzz failed: ${failed[*]} (AFL_NO_AFFINITY=1 when there are fewer free cores than --jobs)"
fi

# summary
field() { awk -F' *: *' -v k="$1" '$1 == k { print $2 }' "$2"; }
keys=(run_time execs_done execs_per_sec corpus_count saved_crashes saved_hangs bitmap_cvg edges_found)
crashes=0 hangs=0
for n in "${names[@]}"; do
  stats=$out/$n/fuzzer_stats
  label=""
  [ "$jobs" -gt 1 ] && label=" of $n"
  echo "== $target: afl-fuzz summary$label ($stats)"
  for k in "${keys[@]}"; do
    printf '   %-14s %s\n' "$k" "$(field "$k" "$stats")"
  done
  crashes=$((crashes + $(field saved_crashes "$stats")))
  hangs=$((hangs + $(field saved_hangs "$stats")))
  echo "   queue          $out/$n/queue/"
done
if [ "$jobs" -gt 1 ]; then
  stats_files=()
  for n in "${names[@]}"; do stats_files+=("$out/$n/fuzzer_stats"); done
  echo "== $target: merged, $jobs instances"
  awk -F' *: *' '
    $1 == "run_time" && $2 > rt { rt = $2 }
    $1 == "execs_done" { ex += $2 }
    $1 == "execs_per_sec" { eps += $2 }
    $1 == "saved_crashes" { cr += $2 }
    $1 == "saved_hangs" { hg += $2 }
    $1 == "edges_found" && $2 > ed { ed = $2 }
    $1 == "total_edges" { te = $2 }
    END {
      printf "   %-14s %d\n   %-14s %d\n   %-14s %.2f\n", "run_time", rt, "execs_done", ex, "execs_per_sec", eps
      printf "   %-14s %d\n   %-14s %d\n", "saved_crashes", cr, "saved_hangs", hg
      printf "   %-14s %d of %d (the highest of the instances)\n", "edges_found", ed, te
    }' "${stats_files[@]}"
  distinct=$(find "${names[@]/#/$out/}" -path '*/queue/id:*' -type f -exec sha256sum {} + 2>/dev/null |
    awk '{ print $1 }' | sort -u | wc -l)
  printf '   %-14s %s (distinct inputs of all queues)\n' "corpus" "$distinct"
fi
if [ "${crashes:-0}" -gt 0 ] || [ "${hangs:-0}" -gt 0 ]; then
  for n in "${names[@]}"; do
    for d in crashes hangs; do
      echo "   $d $(printf '%*s' $((14 - ${#d})) '')$out/$n/$d/"
      find "$out/$n/$d" -maxdepth 1 -type f -name 'id:*' 2>/dev/null | sort | head -5 | sed 's/^/     /'
    done
  done
  echo "Reproduce a finding FILE:"
  echo "   $bin FILE"
  echo "       runs it once in the AFL build (ASan, UBSan, the oracles' abort)"
  raw=""
  [ "$target" = fuzz_raw ] && raw="--raw "
  [ "$target" = fuzz_session_sockets ] && raw="--sockets "
  if [ "${target%_sockets}" = fuzz_session ] || [ "$target" = fuzz_raw ]; then
    echo "   build/vufuzz replay ${raw}FILE"
    echo "       prints the conversation and the oracles' verdict (scripts/run.sh or scripts/test.sh builds it)"
    echo "   $A/work/vufuzz-build/host/vufuzz replay ${raw}FILE"
    echo "       the same, built by this script (no sanitizers)"
  fi
  echo "Once fixed, keep it as a regression (tests/fuzz_smoke.sh replays it):"
  reg=${target#fuzz_}
  echo "   cp FILE fuzz/regressions/${reg%_sockets}-WHAT.bin"
  exit 1
fi
echo "no crashes, no hangs"
