#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# The bug-zoo benchmark: historical vhost-user bugs (scripts/bench/bugzoo/
# README.md, "The historical bugs"), re-introduced one at a time into a COPY of the tree as patches
# (scripts/bench/bugzoo/NN-name.patch), each hunted by fuzzing. Time to the
# first finding, structured (fuzz_session: session inputs, the custom
# mutator, seeds = the build's corpus/*.bin) against raw bytes (fuzz_raw:
# plain libFuzzer on the device's main socket, a few raw handshake seeds),
# as the median of R runs. A benchmark, not a test: it takes hours with the
# defaults (8 bugs x 2 engines x 3 runs x up to 10 min, two at a time).
#
#   scripts/bench/bugzoo.sh                       everything, defaults
#   scripts/bench/bugzoo.sh --minutes 2 --runs 1  a quick check of the whole pipeline
#   scripts/bench/bugzoo.sh --only 03 --engine structured --json out.json
#   scripts/bench/bugzoo.sh --help
#
# What it does:
#  1. Copies the WORKING TREE (git ls-files: tracked and untracked files that
#     .gitignore does not exclude, so uncommitted fixes count; build dirs are
#     ignored) into $VUF_BENCH_DIR/run-DATE-PID (default /tmp/vuf-bugzoo).
#     The repository itself is never written to.
#  2. Builds the clean copy and one copy per patch with clang, ASan+UBSan and
#     libFuzzer (scripts/lib.sh's configuration: -DVUF_SANITIZE=ON
#     -DVUF_FUZZ=ON), only the targets fuzz_session, fuzz_raw and vufuzz (and
#     the seed corpus, in the clean copy).
#  3. Validates each patch with its reproducer (NN-name.repro.txt, a session
#     in text form): `vufuzz replay` of the patched build must report it (an
#     oracle finding, a sanitizer error or a stall) and the clean build must
#     replay it clean. A patch that no longer applies, builds or reproduces is
#     skipped with a FAIL line. Reproducers are never given to the fuzzers.
#  4. Runs R campaigns per engine per bug, J at a time: -seed=RUN (1..R, the
#     same for both engines), -max_total_time=60*M, -max_len of the target's
#     options (scripts/oss-fuzz/options/T.options), -timeout=10 (a hang is a
#     finding), -rss_limit_mb=4096, -artifact_prefix; stdin is /dev/null
#     (bug 02 is seen when the device closes fd 0). libFuzzer stops at the
#     first finding, so the time to find is the wall clock of the run
#     (start-up and seed loading included; a hang includes the 10 s timeout).
#     Each finding is replayed on the clean build's fuzz target: one that the
#     clean build reproduces too is not the patch's bug (a bug of the reference
#     device or of the harness): it is reported ("foreign"), never counted,
#     and the campaign resumes from its corpus for the time left with
#     -seed=RUN+1000*k (at most 20 segments); the time to find is the fuzzing
#     time of all its segments.
#  5. Prints a table (bug, oracle, median and runs per engine) and a summary
#     line; --json writes the same as JSON.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
ZOO=$ROOT/scripts/bench/bugzoo
# shellcheck source=scripts/lib.sh
. "$ROOT/scripts/lib.sh" # vuf_fuzz_option

usage() {
  cat <<'EOF'
usage: scripts/bench/bugzoo.sh [--minutes M] [--runs R] [--jobs J] [--only NN[,NN...]]
                               [--engine structured|raw|both] [--json FILE] [--list] [--help]
       scripts/bench/bugzoo.sh --resume RUNDIR [--json FILE]
       scripts/bench/bugzoo.sh --report RUNDIR [--json FILE]

Re-introduces historical vhost-user bugs (scripts/bench/bugzoo/NN-name.patch) into
copies of the working tree and measures how long fuzzing takes to find each one:
structured (fuzz_session, custom mutator, seeds = the build's corpus) against raw
bytes (fuzz_raw, plain libFuzzer, raw handshake seeds). Median of R runs.

  --minutes M   time limit of one campaign in minutes (default 10; decimals allowed)
  --runs R      campaigns per engine per bug, libFuzzer -seed=1..R (default 3)
  --jobs J      campaigns run in parallel (default 2)
  --only NN     only these bugs (comma-separated numbers or names: 03,07)
  --engine E    structured, raw or both (default both)
  --json FILE   also write the results as JSON
  --list        list the bugs and exit
  --resume DIR  finish an interrupted run: its builds and settings are reused, only
                the campaigns without a result are run (again)
  --report DIR  print the table (and --json) again from a run directory, finished or
                interrupted (runs without a result are shown as ?)
  --help        this text

Work directory: $VUF_BENCH_DIR (default /tmp/vuf-bugzoo), one run-DATE-PID
directory per invocation holding the copies, builds, campaign logs and findings.
Needs clang (libFuzzer), cmake, protoc-c: scripts/test.sh installs them.
Exit status: 0 the benchmark ran (whatever it found), 1 some bug was skipped
(patch does not apply, build or reproduce), 2 usage or setup error.
EOF
}

die() {
  echo "bugzoo: error: $*" >&2
  exit 2
}

minutes=10 runs=3 jobs=2 only="" engine=both json="" list=0 report_dir="" resume_dir=""
while [ $# -gt 0 ]; do
  case $1 in
    --*=*) set -- "${1%%=*}" "${1#*=}" "${@:2}"; continue ;; # --opt=value: as --opt value
    -h | --help) usage; exit 0 ;;
    --minutes | --runs | --jobs | --only | --engine | --json | --resume | --report)
      [ $# -ge 2 ] || die "$1 needs a value"
      case $1 in
        --minutes) minutes=$2 ;; --runs) runs=$2 ;; --jobs) jobs=$2 ;; --only) only=$2 ;;
        --engine) engine=$2 ;; --json) json=$2 ;; --resume) resume_dir=$2 ;; --report) report_dir=$2 ;;
      esac
      shift 2 ;;
    --list) list=1; shift ;;
    *) echo "bugzoo: unknown argument '$1'" >&2; echo >&2; usage >&2; exit 2 ;;
  esac
done

[[ $minutes =~ ^[0-9]+(\.[0-9]+)?$ ]] || die "--minutes: a positive number of minutes, not '$minutes'"
secs=$(awk -v m="$minutes" 'BEGIN { printf "%d", m * 60 + 0.5 }')
[ "$secs" -ge 1 ] || die "--minutes: at least one second"
[[ $runs =~ ^[1-9][0-9]?$ ]] || die "--runs: 1..99, not '$runs'"
[[ $jobs =~ ^[1-9][0-9]?$ ]] || die "--jobs: 1..99, not '$jobs'"
case $engine in
  structured) engines=(structured) ;;
  raw) engines=(raw) ;;
  both) engines=(structured raw) ;;
  *) die "--engine: structured, raw or both, not '$engine'" ;;
esac
if [ -n "$json" ]; then
  case $json in /*) ;; *) json=$PWD/$json ;; esac
  [ -d "$(dirname "$json")" ] || die "--json: no directory $(dirname "$json")"
fi

T0=$(date +%s)
clock() {
  local s=$(($(date +%s) - T0))
  printf '%02d:%02d:%02d' $((s / 3600)) $((s % 3600 / 60)) $((s % 60))
}
log() { printf '[+%s] %s\n' "$(clock)" "$*" >&2; }

# ---- results ----
# per bug and engine: "v1 v2 ..." with - for not found; median
median() { # values... (- = not found) -> median seconds or "-"
  printf '%s\n' "$@" | sed 's/^-$/1e18/' | sort -g | awk '
    { v[NR] = $1 + 0 }
    END {
      n = NR
      m = (n % 2) ? v[(n + 1) / 2] : (v[n / 2] + v[n / 2 + 1]) / 2
      if (m >= 1e17) print "-"; else printf "%.1f\n", m
    }'
}

report() {
  local id eng r res f s o sd a n olist vals shown x first summary
  local -a foreign=()
  declare -A VALS=() MED=() ORACLES=()
  for id in "${ids[@]}"; do
    olist=""
    for eng in structured raw; do
      vals=() shown=()
      for ((r = 1; r <= runs; r++)); do
        res=$W/camp/$id-$eng-r$r/result
        if [ ! -f "$res" ]; then
          [ -d "${res%/result}" ] && shown+=("?")
          continue
        fi
        IFS=$'\t' read -r f s o sd a n <"$res"
        case $n in *foreign*) foreign+=("$id $eng run $r: $n") ;; esac
        if [ "$f" = 1 ]; then
          vals+=("$s")
          if [ "$sd" = 1 ]; then shown+=("$s*"); else shown+=("$s"); fi
          olist+="$o"$'\n'
        else
          vals+=(-)
          shown+=(-)
        fi
      done
      if [ ${#shown[@]} -gt 0 ]; then
        VALS[$id/$eng]=$(IFS=,; echo "${shown[*]}" | sed 's/,/, /g')
        MED[$id/$eng]=n/a
        [ ${#vals[@]} -eq 0 ] || MED[$id/$eng]=$(median "${vals[@]}")
      else
        VALS[$id/$eng]="n/a"
        MED[$id/$eng]="n/a"
      fi
    done
    ORACLES[$id]=$(printf '%s' "$olist" | sed '/^$/d' | sort | uniq -c | sort -rn | awk '{ $1 = ""; sub(/^ /, ""); print }' | paste -sd/ -)
    [ -n "${ORACLES[$id]}" ] || ORACLES[$id]="(repro: ${VALID_P[$id]})"
  done

  cell() { # median -> text
    case $1 in n/a) echo "n/a" ;; -) echo "> $minutes min" ;; *) echo "$1 s" ;; esac
  }
  {
    echo
    echo "bugzoo: time to first finding, median of $runs run(s) (-seed=1..$runs), limit $minutes min per run, $jobs campaigns in parallel on $(nproc) cores"
    echo "source: $src_desc"
    echo "structured: fuzz_session (custom mutator), seeds: the build's corpus ($nseeds .bin); raw: fuzz_raw (plain libFuzzer), seeds: 4 raw handshake byte sequences"
    echo
    printf '%-24s %-32s %-13s %-24s %-13s %s\n' "bug" "oracle" "structured" "runs (s)" "raw" "runs (s)"
    printf '%-24s %-32s %-13s %-24s %-13s %s\n' "---" "------" "----------" "--------" "---" "--------"
    for id in "${ids[@]}"; do
      printf '%-24s %-32s %-13s %-24s %-13s %s\n' "$id" "${ORACLES[$id]}" \
        "$(cell "${MED[$id/structured]}")" "${VALS[$id/structured]}" \
        "$(cell "${MED[$id/raw]}")" "${VALS[$id/raw]}"
    done
    echo
    echo "runs: seconds to the first finding (wall clock of the run: start-up and seed loading included, a hang"
    echo "  includes libFuzzer's 10 s -timeout); - not found within $minutes min; * found by a seed input itself"
    echo "  (before libFuzzer's INITED); ? no result (interrupted)"
    echo "oracle: what reported the finding in the campaigns; (repro: X) when no campaign found the bug: what its"
    echo "  reproducer triggers on the patched build"
    summary=""
    for eng in "${engines[@]}"; do
      n=0
      for id in "${ids[@]}"; do
        case ${MED[$id/$eng]} in - | n/a) ;; *) n=$((n + 1)) ;; esac
      done
      summary+="${summary:+, }$n of ${#ids[@]} found by $eng"
    done
    echo "summary: $summary within $minutes min (median)"
    [ "$skipped" = 0 ] || echo "skipped: $skipped bug(s), see the FAIL lines above"
    [ ${#foreign[@]} = 0 ] || echo "foreign findings (the clean build finds them too: not the patches' bugs, not counted; each campaign resumed):"
    for x in "${foreign[@]}"; do echo "  $x"; done
    echo "logs, findings and corpora: $W/camp"
  }

  # ---- JSON ----
  jstr() { printf '"%s"' "$(printf '%s' "$1" | sed -e 's/\\/\\\\/g' -e 's/"/\\"/g' | tr -d '\000-\037')"; }
  jnum() { case $1 in - | n/a | "") printf 'null' ;; *) printf '%s' "$1" ;; esac; }
  if [ -n "$json" ]; then
    {
      printf '{"benchmark": "bugzoo", "minutes": %s, "seconds_limit": %s, "runs": %s, "jobs": %s, ' "$minutes" "$secs" "$runs" "$jobs"
      printf '"engines": [%s], "source": %s, "commit": %s, "workdir": %s, "skipped": %s, "bugs": [' \
        "$(for e in "${engines[@]}"; do printf '"%s",' "$e"; done | sed 's/,$//')" \
        "$(jstr "$src_desc")" "$(jstr "$commit")" "$(jstr "$W")" "$skipped"
      first=1
      for id in "${ids[@]}"; do
        [ "$first" = 1 ] || printf ', '
        first=0
        printf '{"id": %s, "row": %s, "validation": {"patched": %s, "clean": %s}, "oracle": %s' \
          "$(jstr "$id")" "$(jstr "${ROW[$id]}")" "$(jstr "${VALID_P[$id]}")" "$(jstr "${VALID_C[$id]}")" "$(jstr "${ORACLES[$id]}")"
        for eng in "${engines[@]}"; do
          printf ', %s: {"median_s": %s, "runs": [' "$(jstr "$eng")" "$(jnum "${MED[$id/$eng]}")"
          for ((r = 1; r <= runs; r++)); do
            res=$W/camp/$id-$eng-r$r/result
            [ "$r" = 1 ] || printf ', '
            if [ -f "$res" ]; then
              IFS=$'\t' read -r f s o sd a n <"$res"
              printf '{"seed": %s, "found": %s, "seconds": %s, "wall_s": %s, "oracle": %s, "seed_input": %s, "artifact": %s, "note": %s}' \
                "$r" "$([ "$f" = 1 ] && echo true || echo false)" "$([ "$f" = 1 ] && echo "$s" || echo null)" "$s" \
                "$([ "$f" = 1 ] && jstr "$o" || echo null)" "$([ "$sd" = 1 ] && echo true || echo false)" \
                "$([ "$a" != - ] && jstr "$a" || echo null)" "$([ "$n" != - ] && jstr "$n" || echo null)"
            else
              printf '{"seed": %s, "found": false, "seconds": null, "note": "not run"}' "$r"
            fi
          done
          printf ']}'
        done
        printf '}'
      done
      printf '], "summary": {'
      first=1
      for eng in "${engines[@]}"; do
        n=0
        for id in "${ids[@]}"; do case ${MED[$id/$eng]} in - | n/a) ;; *) n=$((n + 1)) ;; esac; done
        [ "$first" = 1 ] || printf ', '
        first=0
        printf '"%s_found": %s' "$eng" "$n"
      done
      printf ', "bugs": %s}}\n' "${#ids[@]}"
    } >"$json"
    log "JSON: $json"
  fi
}

save_run() { # the run's settings and bugs, for the report (and --report)
  printf 'minutes=%q\nsecs=%q\nruns=%q\njobs=%q\nengine=%q\nsrc_desc=%q\ncommit=%q\nnseeds=%q\nskipped=%q\n' \
    "$minutes" "$secs" "$runs" "$jobs" "$engine" "$src_desc" "$commit" "$nseeds" "$skipped" >"$W/settings.sh"
  local id
  for id in "${ids[@]}"; do
    printf '%s\t%s\t%s\t%s\n' "$id" "${ROW[$id]}" "${VALID_P[$id]}" "${VALID_C[$id]}"
  done >"$W/bugs.tsv"
}

# A run directory's settings and validated bugs (--report, --resume).
ids=()
declare -A ROW=() VALID_P=() VALID_C=()
load_run() {
  [ -f "$1/settings.sh" ] && [ -f "$1/bugs.tsv" ] ||
    die "$1 is not a bugzoo run directory (no settings.sh / bugs.tsv)"
  W=$(cd "$1" && pwd)
  # shellcheck source=/dev/null
  . "$W/settings.sh"
  case $engine in structured) engines=(structured) ;; raw) engines=(raw) ;; *) engines=(structured raw) ;; esac
  local id row vp vc
  while IFS=$'\t' read -r id row vp vc; do
    ids+=("$id")
    ROW[$id]=$row VALID_P[$id]=$vp VALID_C[$id]=$vc
  done <"$W/bugs.tsv"
}
# --report: the table again from a run directory
if [ -n "$report_dir" ]; then
  load_run "$report_dir"
  report
  exit 0
fi

# ---- tools ----
for t in clang cmake protoc-c patch tar awk sort timeout nproc; do
  command -v "$t" >/dev/null 2>&1 || die "'$t' not found (scripts/test.sh installs what the build needs)"
done

export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}

# Copy the working tree (tracked + untracked, minus what .gitignore excludes:
# build dirs, findings). Without git: everything but build*/ and .git.
copy_tree() {
  mkdir -p "$1"
  if git -C "$ROOT" rev-parse --is-inside-work-tree >/dev/null 2>&1; then
    (cd "$ROOT" && git ls-files -z --cached --others --exclude-standard |
      tar --null --ignore-failed-read -T - -cf - 2>/dev/null) | tar -C "$1" -xf -
  else
    tar -C "$ROOT" --exclude='./build*' --exclude=./.git -cf - . | tar -C "$1" -xf -
  fi
}

# Configure and build the fuzz targets of a tree in SRC/build.
build_tree() {
  local src=$1
  shift
  (cd "$src" &&
    CC=clang CXX=clang++ cmake -S . -B build -DCMAKE_BUILD_TYPE=RelWithDebInfo \
      -DVUF_SANITIZE=ON -DVUF_FUZZ=ON -DVUF_AFL_MUTATOR=OFF >build-configure.log 2>&1 &&
    cmake --build build -j"$(nproc)" --target fuzz_session fuzz_raw vufuzz "$@" >build.log 2>&1)
}

# The oracle of a report (libFuzzer log or `vufuzz replay` output), or "".
classify() {
  local line rule kind
  line=$(grep -a -m1 -E '==vufuzz== finding: |: FINDING |runtime error: |ERROR: AddressSanitizer: |ERROR: LeakSanitizer|ERROR: libFuzzer: |^STALL: ' "$1") || {
    echo ""
    return
  }
  case $line in
    *"finding: fd-leak"* | *"FINDING fd-leak"*) echo "fd-leak" ;;
    *"finding: guest-write"* | *"FINDING guest-write"*) echo "guest-memory" ;;
    *"finding: must "* | *"FINDING must "*)
      rule=$(sed -n 's/.*\(finding: \|FINDING \)must \([^ :]*\).*/\2/p' <<<"$line")
      echo "checker MUST $rule" ;;
    *"runtime error: index "*"out of bounds"*) echo "UBSan bounds" ;;
    *"runtime error: "*"overflowed to"*) echo "UBSan pointer-overflow" ;;
    *"runtime error: "*) echo "UBSan" ;;
    *"AddressSanitizer: "*)
      kind=$(sed -n 's/.*AddressSanitizer: \([A-Za-z-]*\).*/\1/p' <<<"$line")
      echo "ASan ${kind:-error}" ;;
    *LeakSanitizer*) echo "LSan leak" ;;
    *"libFuzzer: timeout"* | STALL*) echo "hang" ;;
    *"libFuzzer: out-of-memory"*) echo "OOM" ;;
    *"libFuzzer: deadly signal"*) echo "crash" ;;
    *) echo "libFuzzer $(sed -n 's/.*libFuzzer: \([a-z-]*\).*/\1/p' <<<"$line")" ;;
  esac
}

# Replay a session with vufuzz; prints the oracle, "clean", or "error (rc N)".
replay() { # vufuzz session log
  local rc=0 o
  timeout -k 5 120 "$1" replay --quiet --timeout 10 "$2" </dev/null >"$3" 2>&1 || rc=$?
  o=$(classify "$3")
  if [ -n "$o" ]; then
    echo "$o"
  elif [ "$rc" = 0 ] && grep -q ': clean$' "$3"; then
    echo "clean"
  else
    echo "error (rc $rc)"
  fi
}

# ---- the raw seeds: handshake byte sequences (no fds: bytes only) ----
hexmsg() { # id flags [payload hex]: header + payload as hex
  local p=${3:-} h
  h=$(printf '%08x%08x%08x' "$1" "$2" $((${#p} / 2)) |
    sed 's/\(..\)\(..\)\(..\)\(..\)/\4\3\2\1/g')
  printf '%s%s' "$h" "$p"
}
le64() { printf '%016x' "$1" | sed 's/\(..\)\(..\)\(..\)\(..\)\(..\)\(..\)\(..\)\(..\)/\8\7\6\5\4\3\2\1/'; }
le32() { printf '%08x' "$1" | sed 's/\(..\)\(..\)\(..\)\(..\)/\4\3\2\1/'; }
hex2bin() { sed 's/../\\x&/g' | { read -r esc || true; printf '%b' "$esc"; }; }
write_raw_seeds() {
  local d=$1 V=1 NR=9 negotiate ring
  mkdir -p "$d"
  # V: version 1; NR: version 1 + NEED_REPLY (acked: REPLY_ACK is negotiated)
  negotiate=$(hexmsg 1 $V)$(hexmsg 15 $V)$(hexmsg 16 $V "$(le64 0x1b22b)")$(hexmsg 17 $V)
  negotiate+=$(hexmsg 3 $NR)$(hexmsg 2 $NR "$(le64 0x150001a44)")
  ring=$(hexmsg 8 $NR "$(le32 0)$(le32 16)")$(hexmsg 10 $NR "$(le32 0)$(le32 0)")
  ring+=$(hexmsg 9 $NR "$(le32 0)$(le32 0)$(le64 0x7f0000000000)$(le64 0x7f0000000800)$(le64 0x7f0000000400)$(le64 0x800)")
  ring+=$(hexmsg 13 $NR "$(le64 0x100)")$(hexmsg 12 $NR "$(le64 0x100)")
  ring+=$(hexmsg 18 $NR "$(le32 0)$(le32 1)")$(hexmsg 11 $V "$(le32 0)$(le32 0)")
  hexmsg 1 $V | hex2bin >"$d/get-features"
  printf '%s' "$negotiate" | hex2bin >"$d/negotiate"
  printf '%s' "$negotiate$ring" | hex2bin >"$d/handshake-rings"
  printf '%s' "$negotiate$(hexmsg 24 $V "$(le32 0)$(le32 60)$(le32 0)$(printf '%0120d' 0)")$(hexmsg 40 $V)" |
    hex2bin >"$d/negotiate-config-status"
}

if [ -n "$resume_dir" ]; then
  load_run "$resume_dir"
  SEEDS=$W/clean/build/corpus
  for x in "$SEEDS" "$W/seeds-raw" "$W/clean/build/fuzz/fuzz_session"; do
    [ -e "$x" ] || die "--resume: $x is missing"
  done
  for id in "${ids[@]}"; do
    [ -x "$W/$id/build/fuzz/fuzz_session" ] || die "--resume: $id is not built in $W"
  done
  log "resuming $W: ${#ids[@]} bugs, engines: ${engines[*]}, $runs run(s) each, limit $minutes min"
else
  # ---- the bugs ----
  [ -d "$ZOO" ] || die "no $ZOO"
  all_patches=()
  for p in "$ZOO"/[0-9][0-9]-*.patch; do
    [ -f "$p" ] && all_patches+=("$p")
  done
  [ ${#all_patches[@]} -gt 0 ] || die "no patches in $ZOO"
  header() { # patch field -> the field's text (continuation lines joined)
    awk -v f="# $2:" '
      /^diff / || /^--- / { exit }
      index($0, f) == 1 { on = 1; s = substr($0, length(f) + 2); next }
      on && /^#   / { sub(/^#   /, ""); s = s " " $0; next }
      { on = 0 }
      END { print s }' "$1"
  }
  if [ "$list" = 1 ]; then
    for p in "${all_patches[@]}"; do
      printf '%-26s %s\n' "$(basename "$p" .patch)" "$(header "$p" row | cut -c1-100)"
    done
    exit 0
  fi
  patches=()
  for p in "${all_patches[@]}"; do
    name=$(basename "$p" .patch)
    if [ -n "$only" ]; then
      keep=0
      IFS=, read -ra sel <<<"$only"
      for s in "${sel[@]}"; do
        [ -n "$s" ] || continue
        case $name in "$s" | "$s"-*) keep=1 ;; esac
      done
      [ "$keep" = 1 ] || continue
    fi
    patches+=("$p")
  done
  [ ${#patches[@]} -gt 0 ] || die "--only '$only' matches no patch (see --list)"

  # ---- work directory ----
  base=${VUF_BENCH_DIR:-/tmp/vuf-bugzoo}
  mkdir -p "$base"
  base=$(cd "$base" && pwd)
  case $base/ in
    "$ROOT"/build-bugzoo*) ;;
    "$ROOT"/*) die "VUF_BENCH_DIR is inside the repository ($base); use /tmp or a build-bugzoo* directory" ;;
  esac
  W=$base/run-$(date +%Y%m%d-%H%M%S)-$$
  mkdir -p "$W"

  # ======================================================================
  log "bugzoo: ${#patches[@]} bugs, engines: ${engines[*]}, $runs run(s) each, limit $minutes min ($secs s), $jobs in parallel"
  log "work directory: $W"
  src_desc="working tree of $ROOT"
  commit=""
  if git -C "$ROOT" rev-parse --is-inside-work-tree >/dev/null 2>&1; then
    commit=$(git -C "$ROOT" describe --always --dirty 2>/dev/null || echo unknown)
    src_desc="working tree of $ROOT at $commit (uncommitted changes included)"
  fi
  log "copying the $src_desc"
  copy_tree "$W/src"

  log "building the clean tree (fuzz_session, fuzz_raw, vufuzz, corpus)"
  cp -a "$W/src" "$W/clean"
  build_tree "$W/clean" corpus || {
    tail -30 "$W/clean/build.log" >&2
    die "the clean tree does not build: $W/clean/build.log"
  }
  SEEDS=$W/clean/build/corpus
  nseeds=$(find "$SEEDS" -name '*.bin' | wc -l)
  [ "$nseeds" -gt 0 ] || die "no seeds in $SEEDS"
  write_raw_seeds "$W/seeds-raw"
  log "seeds: structured $nseeds (build/corpus/*.bin), raw $(find "$W/seeds-raw" -type f | wc -l) ($W/seeds-raw)"

  # ---- patch, build, validate ----
  ids=() skipped=0
  declare -A ROW=() VALID_P=() VALID_C=()
  for p in "${patches[@]}"; do
    id=$(basename "$p" .patch)
    repro=$ZOO/$id.repro.txt
    d=$W/$id
    if [ ! -f "$repro" ]; then
      echo "FAIL $id: no reproducer $repro: skipped" >&2
      skipped=$((skipped + 1))
      continue
    fi
    cp -a "$W/src" "$d"
    if ! (cd "$d" && patch -p1 --batch --forward --fuzz=0 --no-backup-if-mismatch <"$p" >"$d/patch.log" 2>&1); then
      echo "FAIL $id: the patch does not apply to the current tree (it rotted): $d/patch.log: skipped" >&2
      skipped=$((skipped + 1))
      continue
    fi
    log "$id: patched, building"
    if ! build_tree "$d"; then
      echo "FAIL $id: the patched tree does not build: $d/build.log: skipped" >&2
      grep -E 'error' "$d/build.log" | head -5 >&2 || true
      skipped=$((skipped + 1))
      continue
    fi
    vp=$(replay "$d/build/vufuzz" "$repro" "$d/repro-patched.log")
    vc=$(replay "$W/clean/build/vufuzz" "$repro" "$d/repro-clean.log")
    if [ "$vc" != clean ]; then
      echo "FAIL $id: the CLEAN build reports the reproducer ($vc): a bug in the reference itself? $d/repro-clean.log: skipped" >&2
      skipped=$((skipped + 1))
      continue
    fi
    case $vp in
      clean | error*)
        echo "FAIL $id: the patched build does not find its reproducer ($vp): the patch rotted? $d/repro-patched.log: skipped" >&2
        skipped=$((skipped + 1))
        continue ;;
    esac
    log "ok   $id: reproducer: patched build: $vp; clean build: clean"
    ids+=("$id")
    ROW[$id]=$(header "$p" row)
    VALID_P[$id]=$vp
    VALID_C[$id]=$vc
  done
  [ ${#ids[@]} -gt 0 ] || die "no bug left to benchmark"
  save_run
fi

# ---- campaigns ----
# One campaign: writes DIR/result: found secs oracle seed-input artifact note
campaign() {
  local id=$1 eng=$2 run=$3 dir=$4 bin clean_bin t0 t1 rc art oracle="" seedf=0 found=0 note=""
  local tgt=fuzz_session seeds=$SEEDS used=0 seg=0 left log foreign=0 d=0 max_len
  if [ "$eng" = raw ]; then tgt=fuzz_raw seeds=$W/seeds-raw; fi
  max_len=$(vuf_fuzz_option "$tgt" max_len) # as OSS-Fuzz runs the target
  bin=$W/$id/build/fuzz/$tgt
  clean_bin=$W/clean/build/fuzz/$tgt
  mkdir -p "$dir/corpus"
  cp "$seeds"/* "$dir/corpus/"
  # Segments: libFuzzer stops at its first finding. A finding the clean build
  # makes too (foreign: a bug of the reference or the harness, not the
  # patch's) must not end the campaign: it resumes from its corpus for the
  # time left, with another seed. The time to find is the fuzzing time of
  # the segments (the attribution replays in between are not counted).
  while [ "$seg" -lt 20 ]; do
    seg=$((seg + 1))
    left=$((secs - used))
    [ "$left" -ge 1 ] || break
    log=$dir/log
    [ "$seg" = 1 ] || log=$dir/log.$seg
    rc=0
    t0=$(date +%s.%N)
    timeout -k 30 $((left + 300)) "$bin" -seed=$((run + 1000 * (seg - 1))) -max_total_time="$left" \
      -max_len="$max_len" -timeout=10 -rss_limit_mb=4096 -artifact_prefix="$dir/s$seg-" -print_final_stats=1 \
      "$dir/corpus" </dev/null >"$log" 2>&1 &
    echo $! >"$dir/pid"
    wait $! || rc=$?
    t1=$(date +%s.%N)
    used=$(awk -v u="$used" -v a="$t0" -v b="$t1" 'BEGIN { printf "%d", u + (b - a) }')
    d=$(awk -v u="$d" -v a="$t0" -v b="$t1" 'BEGIN { printf "%.1f", u + (b - a) }')
    art=$(find "$dir" -maxdepth 1 -type f \( -name "s$seg-crash-*" -o -name "s$seg-timeout-*" \
      -o -name "s$seg-leak-*" -o -name "s$seg-oom-*" \) | head -1)
    if [ -z "$art" ]; then
      [ "$rc" = 0 ] || note="${note:+$note; }no finding but exit status $rc (see $log)"
      break
    fi
    oracle=$(classify "$log")
    [ "$seg" != 1 ] || grep -aqE '[[:space:]]INITED ' "$log" || seedf=1
    # the clean build must not find the same input: else it is not the patch's bug
    if timeout -k 5 120 "$clean_bin" -timeout=10 -rss_limit_mb=4096 "$art" \
      </dev/null >"$dir/clean-replay.$seg.log" 2>&1; then
      found=1
      break
    fi
    foreign=$((foreign + 1))
    # an input of the corpus (a seed) would find it again at once: drop it
    find "$dir/corpus" -maxdepth 1 -type f -size "$(stat -c %s "$art")c" -print0 |
      while IFS= read -r -d '' x; do cmp -s "$x" "$art" && rm -f "$x"; done
    note="${note:+$note; }foreign: the clean build finds this input too ($(classify "$dir/clean-replay.$seg.log")): $art"
    oracle="" seedf=0
  done
  [ "$foreign" = 0 ] || note="$foreign foreign finding(s), campaign resumed: $note"
  printf '%s\t%s\t%s\t%s\t%s\t%s\n' "$found" "${d:-0}" "${oracle:--}" "$seedf" \
    "$([ "$found" = 1 ] && echo "$art" || echo -)" "${note:--}" >"$dir/result.tmp"
  mv "$dir/result.tmp" "$dir/result"
}

queue=()
for id in "${ids[@]}"; do
  for ((r = 1; r <= runs; r++)); do
    for eng in "${engines[@]}"; do
      [ -f "$W/camp/$id-$eng-r$r/result" ] || queue+=("$id $eng $r")
    done
  done
done
total=${#queue[@]}
log "campaigns: $total ($((${#ids[@]})) bugs x ${#engines[@]} engine(s) x $runs run(s)), $jobs at a time, up to $minutes min each"

declare -A RUNNING=() STARTED=()
stop_all() {
  local j
  for j in "${!RUNNING[@]}"; do
    [ -f "$j/pid" ] && kill "$(cat "$j/pid")" 2>/dev/null || true
  done
  echo "bugzoo: interrupted; partial results in $W" >&2
  exit 130
}
trap stop_all INT TERM

next=0 done_n=0 last_beat=$(date +%s)
while [ "$next" -lt "$total" ] || [ ${#RUNNING[@]} -gt 0 ]; do
  while [ ${#RUNNING[@]} -lt "$jobs" ] && [ "$next" -lt "$total" ]; do
    read -r id eng r <<<"${queue[$next]}"
    next=$((next + 1))
    dir=$W/camp/$id-$eng-r$r
    rm -rf "$dir" # what an interrupted campaign left
    mkdir -p "$dir"
    log "[$next/$total] start $id $eng run $r/$runs (-seed=$r)"
    campaign "$id" "$eng" "$r" "$dir" &
    RUNNING[$dir]=$!
    STARTED[$dir]=$(date +%s)
  done
  sleep 2
  for dir in "${!RUNNING[@]}"; do
    [ -f "$dir/result" ] || continue
    wait "${RUNNING[$dir]}" 2>/dev/null || true
    unset "RUNNING[$dir]"
    done_n=$((done_n + 1))
    IFS=$'\t' read -r f s o sd a n <"$dir/result"
    what=${dir##*/}
    if [ "$f" = 1 ]; then
      log "[done $done_n/$total] $what: FOUND in $s s by $o$([ "$sd" = 1 ] && echo ' (a seed input itself)')"
    else
      log "[done $done_n/$total] $what: not found in $minutes min$([ "$n" != - ] && echo " -- $n")"
    fi
  done
  now=$(date +%s)
  if [ $((now - last_beat)) -ge 60 ] && [ ${#RUNNING[@]} -gt 0 ]; then
    last_beat=$now
    list=""
    for dir in "${!RUNNING[@]}"; do
      e=$((now - STARTED[$dir]))
      list+="${list:+, }${dir##*/} $((e / 60))m$((e % 60))s"
    done
    log "running: $list; $done_n/$total done"
  fi
done
trap - INT TERM

report
[ "$skipped" = 0 ] || exit 1
exit 0
