#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# The structured session fuzzer against its baselines, in one run (a
# benchmark, not a test: nothing here asserts a time).
#
#   scripts/bench/fuzz.sh [--minutes M] [--steady S] [--profile P] [--out DIR]
#                         [--json FILE] [--max-len N]
#
# 1. Two campaigns side by side for M minutes (default 5), one core each:
#   structured  fuzz_session: protobuf sessions, the custom mutator, the seed
#               corpus (corpus/*.txt compiled by the build), the device in
#               process (the inproc target);
#   raw         fuzz_raw: the same device and oracles fed raw bytes on its main
#               channel by plain libFuzzer, no custom mutator, a few handshake
#               byte seeds.
# 2. On the corpus the structured campaign grew, S seconds each (default 60),
#    one after the other: fuzz_session (inproc), fuzz_session_sockets (the
#    same sessions over real socket pairs: the baseline of the target
#    redesign), and fuzz_session built without sanitizers.
# Then it prints, side by side:
#   speed       exec/s of each campaign and of each target on the grown corpus
#               (ASan+UBSan unless said), and where the time of a session goes:
#               CPU µs per execution of the fuzz targets themselves on an
#               empty, a 15- and a 30-message session (libFuzzer running one
#               input file 1000 times, `perf stat` task-clock, the lowest of
#               3), the socket target beside the in-process one, with and
#               without sanitizers; the same sessions under `vufuzz replay
#               --repeat`; system calls per execution (strace -c) and the
#               cost of one system call here (perf bench syscall); and a
#               profile of P seconds (default 20; 0: none) of each
#               fuzz_session build on the grown corpus, split by part of an
#               execution (scripts/bench/perf_split.py; needs perf);
#   coverage    edges covered in reference/ by each final corpus, measured by
#               one build whose coverage is restricted to reference/
#               (-fsanitize-coverage-allowlist), at the start and at the end;
#   messages    which table messages reached an accepting handler of the
#               device, out of those it implements.
# Every run takes its target's -max_len and -timeout as OSS-Fuzz runs it
# (scripts/oss-fuzz/options/T.options; fuzz_session's for the three of step 2;
# 8192 everywhere); --max-len N gives them all N instead. Installs what is
# missing and builds like scripts/run.sh.
set -euo pipefail
. "$(dirname "$0")/../lib.sh"

minutes=5 steady=60 profile=20 out="" json="" maxlen=""
usage() {
  sed -n '3,42p' "$0" | sed 's/^# \{0,1\}//'
}
while [ $# -gt 0 ]; do
  case "$1" in
    --minutes) minutes=${2:?}; shift 2 ;;
    --steady) steady=${2:?}; shift 2 ;;
    --profile) profile=${2:?}; shift 2 ;;
    --out) out=${2:?}; shift 2 ;;
    --json) json=${2:?}; shift 2 ;;
    --max-len) maxlen=${2:?}; shift 2 ;;
    -h|--help) usage; exit 0 ;;
    *) echo "fuzz.sh: unknown argument '$1' (see --help)" >&2; exit 2 ;;
  esac
done
case "$minutes" in ''|*[!0-9.]*) echo "fuzz.sh: --minutes takes a number" >&2; exit 2 ;; esac
secs=$(awk -v m="$minutes" 'BEGIN { printf "%d", m * 60 }')

vuf_install_deps
vuf_build
COV=${VUF_BENCH_COV_BUILD:-$VUF_ROOT/build-bench-cov}
if [ ! -f "$COV/CMakeCache.txt" ]; then
  vuf_log "configuring $COV (coverage counted in reference/ only)"
  mkdir -p "$COV"
  printf 'src:*/reference/*\nfun:*\n' >"$COV/allowlist.txt" # both: src and fun must match
  CC=clang CXX=clang++ cmake -S "$VUF_ROOT" -B "$COV" -DCMAKE_BUILD_TYPE=RelWithDebInfo \
    -DVUF_FUZZ=ON -DVUF_AFL_MUTATOR=OFF \
    -DCMAKE_C_FLAGS="-fsanitize-coverage-allowlist=$COV/allowlist.txt -Wno-unused-command-line-argument" \
    >/dev/null # (the libraries built without coverage instrumentation ignore the allowlist)
fi
vuf_log "building $COV"
cmake --build "$COV" -j"$(nproc)" --target fuzz_session fuzz_session_sockets fuzz_raw vufuzz \
  >"$COV/build.log" 2>&1 ||
  { tail -30 "$COV/build.log" >&2; exit 2; }

B=$VUF_BUILD
out=${out:-$(mktemp -d /tmp/vufuzz-bench.XXXXXX)}
mkdir -p "$out/structured" "$out/raw" "$out/artifacts"
cp "$B"/corpus/*.bin "$out/structured/"
# raw seeds: the handshake's first messages as wire bytes, one per file and all together
hs() { printf '%b' "$1"; }
hs '\x01\x00\x00\x00\x01\x00\x00\x00\x00\x00\x00\x00' >"$out/raw/get_features"
hs '\x0f\x00\x00\x00\x01\x00\x00\x00\x00\x00\x00\x00' >"$out/raw/get_protocol_features"
hs '\x10\x00\x00\x00\x01\x00\x00\x00\x08\x00\x00\x00\x2b\xb2\x01\x00\x00\x00\x00\x00' >"$out/raw/set_protocol_features"
hs '\x03\x00\x00\x00\x01\x00\x00\x00\x00\x00\x00\x00' >"$out/raw/set_owner"
cat "$out"/raw/get_features "$out"/raw/get_protocol_features "$out"/raw/set_protocol_features \
  "$out"/raw/set_owner >"$out/raw/handshake"

edges() { # edges BIN DIR: edges of reference/ the corpus covers
  "$1" -runs=0 -rss_limit_mb=4096 "$2" 2>&1 | sed -n 's/.*INITED cov: \([0-9]*\).*/\1/p' | tail -1
}
cov0_s=$(edges "$COV/fuzz/fuzz_session" "$out/structured")
cov0_r=$(edges "$COV/fuzz/fuzz_raw" "$out/raw")

vuf_log "two campaigns of $minutes min, side by side (corpora and logs in $out)"
common=(-max_total_time="$secs" -rss_limit_mb=4096 -print_final_stats=1 -artifact_prefix="$out/artifacts/")
# each target's -max_len (or --max-len) and -timeout, as OSS-Fuzz runs it
s_len=${maxlen:-$(vuf_fuzz_option fuzz_session max_len)}
r_len=${maxlen:-$(vuf_fuzz_option fuzz_raw max_len)}
s_timeout=$(vuf_fuzz_option fuzz_session timeout)
r_timeout=$(vuf_fuzz_option fuzz_raw timeout)
sopts=(-max_len="$s_len" -timeout="$s_timeout")
ropts=(-max_len="$r_len" -timeout="$r_timeout")
vuf_log "structured: ${sopts[*]}; raw: ${ropts[*]}"
"$B/fuzz/fuzz_session" -seed=1 "${common[@]}" "${sopts[@]}" "$out/structured" >"$out/structured.log" 2>&1 &
spid=$!
"$B/fuzz/fuzz_raw" -seed=1 "${common[@]}" "${ropts[@]}" "$out/raw" >"$out/raw.log" 2>&1 &
rpid=$!
start=$(date +%s)
last() { grep -E '^#[0-9]+' "$1" | tail -1 | sed 's/  */ /g' | cut -c1-90; }
while kill -0 "$spid" 2>/dev/null || kill -0 "$rpid" 2>/dev/null; do
  sleep 30
  el=$(( $(date +%s) - start ))
  printf '== %3ds structured: %s\n== %3ds raw:        %s\n' "$el" "$(last "$out/structured.log")" \
    "$el" "$(last "$out/raw.log")" >&2
done
wait "$spid"; src=$?
wait "$rpid"; rrc=$?

stat() { sed -n "s/^stat::$2: *//p" "$1" | tail -1; }

# 2. the grown corpus, target by target, one at a time
steady_eps() { # steady_eps BIN LABEL: exec/s of S seconds on a copy of the grown corpus
  rm -rf "$out/steady" && mkdir -p "$out/steady" && cp "$out/structured"/* "$out/steady/"
  # the three are fuzz_session builds: fuzz_session's -max_len and -timeout for all
  "$1" -seed=2 -max_total_time="$steady" "${sopts[@]}" -rss_limit_mb=4096 -print_final_stats=1 \
    -artifact_prefix="$out/artifacts/" "$out/steady" >"$out/steady-$2.log" 2>&1 || true
  stat "$out/steady-$2.log" average_exec_per_sec
}
vuf_log "the grown corpus ($(ls "$out/structured" | wc -l) inputs), ${steady}s per target"
eps_in=$(steady_eps "$B/fuzz/fuzz_session" inproc)
eps_so=$(steady_eps "$B/fuzz/fuzz_session_sockets" sockets)
eps_ns=$(steady_eps "$COV/fuzz/fuzz_session" nosan)
eps_s=$(stat "$out/structured.log" average_exec_per_sec)
eps_r=$(stat "$out/raw.log" average_exec_per_sec)
runs_s=$(stat "$out/structured.log" number_of_executed_units)
runs_r=$(stat "$out/raw.log" number_of_executed_units)
cov1_s=$(edges "$COV/fuzz/fuzz_session" "$out/structured")
cov1_r=$(edges "$COV/fuzz/fuzz_raw" "$out/raw")
V="$B/vufuzz"
"$V" replay --quiet --stats --json "$out/structured" >"$out/structured-stats.json" 2>/dev/null || true
"$V" replay --quiet --raw --stats --json "$out/raw" >"$out/raw-stats.json" 2>/dev/null || true
reached() { # reached JSON: "N of M" supported front-end messages accepted, and the unreached
  python3 - "$1" <<'EOF'
import json, sys
try:
    s = json.load(open(sys.argv[1]))["stats"]["accepted"]
except Exception:
    print("? of ?|(no stats)"); sys.exit(0)
sup = [k for k, v in s.items() if v["supported"] and not k.startswith("BACKEND_")]
hit = [k for k in sup if s[k]["count"] > 0]
be = [k for k, v in s.items() if v["supported"] and k.startswith("BACKEND_")]
besent = [k for k in be if s[k]["count"] > 0]
miss = [k for k in sup if s[k]["count"] == 0] + [k for k in be if s[k]["count"] == 0]
print(f"{len(hit)} of {len(sup)} front-end, {len(besent)} of {len(be)} back-end sent|"
      + (" ".join(miss) if miss else "none"))
EOF
}
IFS='|' read -r msg_s miss_s <<<"$(reached "$out/structured-stats.json")"
IFS='|' read -r msg_r miss_r <<<"$(reached "$out/raw-stats.json")"

# the same session fuzzer under AFL++ (edge coverage only, no comparison
# tracing; persistent mode; the session mutator), one core, one minute
afl_eps="" afl_execs=""
if [ -z "${VUF_BENCH_NO_AFL:-}" ] && command -v afl-fuzz >/dev/null; then
  vuf_log "AFL++: fuzz_session for 60 s with the session mutator (scripts/fuzz-afl.sh)"
  if bash "$VUF_ROOT/scripts/fuzz-afl.sh" --seconds 60 --out "$out/afl" >"$out/afl.log" 2>&1 ||
    [ -f "$out/afl/default/fuzzer_stats" ]; then
    afl_eps=$(awk -F' *: *' '$1 == "execs_per_sec" {print $2}' "$out/afl/default/fuzzer_stats")
    afl_execs=$(awk -F' *: *' '$1 == "execs_done" {print $2}' "$out/afl/default/fuzzer_stats")
  fi
fi

# where the time goes: fixed cost of a session, cost of a message
printf 'config\n' >"$out/empty.txt"
costs() { # costs VUFUZZ LABEL [--sockets]: three sessions replayed 2000 times each
  "$1" replay ${3:-} --repeat 2000 "$out/empty.txt" "$VUF_ROOT/corpus/handshake.txt" \
    "$VUF_ROOT/corpus/qemu-7.2-seabios.txt" 2>/dev/null | grep 'sessions/s' |
    sed -e "s|^|$2: |" -e "s|$VUF_ROOT/||" -e "s|$out/||" || true
}
{
  costs "$V" "ASan+UBSan"
  costs "$V" "ASan+UBSan" --sockets
  costs "$COV/vufuzz" "no sanitizers, -O2"
  costs "$COV/vufuzz" "no sanitizers, -O2" --sockets
} >"$out/costs.txt"
# the fuzz targets themselves: CPU µs per execution of one input run 1000
# times by libFuzzer (no mutation; the file is read again for each run)
"$V" session encode "$out/empty.txt" -o "$out/empty.bin" >/dev/null 2>&1 || true
cpu_us() { # cpu_us BIN FILE: the lowest of 3 runs, CPU time (wall time without perf)
  local k
  for k in 1 2 3; do
    if command -v perf >/dev/null && perf stat -x, -e task-clock true >/dev/null 2>&1; then
      perf stat -x, -e task-clock "$1" -runs=1000 "$2" 2>&1 >/dev/null |
        awk -F, '/task-clock/ { printf "%.0f\n", $1 }'
    else
      local s e
      s=$(date +%s%N)
      "$1" -runs=1000 "$2" >/dev/null 2>&1 || true
      e=$(date +%s%N)
      echo $(((e - s) / 1000000))
    fi
  done | sort -n | head -1
}
{
  printf '%-44s %10s %10s %10s\n' "CPU µs per execution (libFuzzer -runs=1000 FILE)" "empty" "15 msgs" "30 msgs"
  for t in "fuzz_session, inproc, ASan+UBSan|$B/fuzz/fuzz_session" \
    "fuzz_session_sockets, ASan+UBSan (baseline)|$B/fuzz/fuzz_session_sockets" \
    "fuzz_session, inproc, no sanitizers|$COV/fuzz/fuzz_session" \
    "fuzz_session_sockets, no sanitizers|$COV/fuzz/fuzz_session_sockets"; do
    printf '%-44s' "${t%%|*}"
    for f in "$out/empty.bin" "$B/corpus/handshake.bin" "$B/corpus/qemu-7.2-seabios.bin"; do
      printf ' %10s' "$(cpu_us "${t#*|}" "$f")"
    done
    echo
  done
} >"$out/exec-costs.txt"
# system calls per execution, and what one costs on this machine
{
  if command -v strace >/dev/null; then
    for t in "inproc|$COV/fuzz/fuzz_session" "sockets|$COV/fuzz/fuzz_session_sockets"; do
      strace -f -c -o "$out/strace-${t%%|*}.txt" "${t#*|}" -runs=300 "$B/corpus/handshake.bin" >/dev/null 2>&1 || true
      calls() { awk 'NR > 2 && $4 ~ /^[0-9]+$/ && $NF != "total" { print $4, $NF }' "$1"; }
      all=$(calls "$out/strace-${t%%|*}.txt" | awk '{ n += $1 } END { printf "%.0f", n / 300 }')
      top=$(calls "$out/strace-${t%%|*}.txt" | sort -rn | head -8 |
        awk '{ printf " %s %.1f", $2, $1 / 300 }')
      echo "system calls per execution of handshake (15 msgs), ${t%%|*}: $all;$top"
    done
  fi
  if command -v perf >/dev/null; then
    perf bench syscall basic -l 300000 2>/dev/null | awk '/usecs\/op/ { printf "one system call here (perf bench syscall basic, getppid): %.2f µs\n", $1 }'
  fi
} >"$out/syscalls.txt" 2>/dev/null || true
# a profile of each fuzz_session build on the grown corpus
: >"$out/profile.txt"
if [ "$profile" != 0 ] && command -v perf >/dev/null &&
  perf record -o /dev/null true >/dev/null 2>&1; then
  for t in "no sanitizers|$COV/fuzz/fuzz_session" "ASan+UBSan|$B/fuzz/fuzz_session"; do
    vuf_log "profile: fuzz_session (${t%%|*}) for ${profile}s on the grown corpus"
    rm -rf "$out/steady" && mkdir -p "$out/steady" && cp "$out/structured"/* "$out/steady/"
    perf record -F 250 --call-graph dwarf,16384 -o "$out/perf.data" "${t#*|}" -seed=3 \
      -max_total_time="$profile" "${sopts[@]}" -rss_limit_mb=4096 -print_final_stats=1 \
      -artifact_prefix="$out/artifacts/" "$out/steady" >"$out/profile-run.log" 2>&1 || true
    {
      echo "fuzz_session, ${t%%|*}: $(stat "$out/profile-run.log" average_exec_per_sec) exec/s under perf"
      perf script -i "$out/perf.data" -F ip,sym 2>/dev/null | python3 "$VUF_ROOT/scripts/bench/perf_split.py"
    } >>"$out/profile.txt"
    rm -f "$out/perf.data"
  done
fi
avg_len=$(ls -l "$out/structured" | awk 'NR>1 { s += $5; n++ } END { if (n) printf "%d", s / n; else print 0 }')

finding() { # finding LOG: the first finding's line, or "none"
  local l
  l=$(grep -m1 -E '==vufuzz== finding|ERROR: (AddressSanitizer|libFuzzer)|runtime error' "$1" || true)
  echo "${l:-none}"
}
echo
echo "== fuzz benchmark: $minutes min per campaign, one core each, ASan+UBSan, $(nproc) cores"
printf '%-34s %-22s %-22s\n' "" "structured" "raw bytes (baseline)"
printf '%-34s %-22s %-22s\n' "exec/s" "${eps_s:-?}" "${eps_r:-?}"
printf '%-34s %-22s %-22s\n' "executions" "${runs_s:-?}" "${runs_r:-?}"
printf '%-34s %-22s %-22s\n' "edges in reference/ at the start" "${cov0_s:-?}" "${cov0_r:-?}"
printf '%-34s %-22s %-22s\n' "edges in reference/ at the end" "${cov1_s:-?}" "${cov1_r:-?}"
printf '%-34s %-22s %-22s\n' "messages reaching a handler" "$msg_s" "$msg_r"
printf '%-34s %-22s %-22s\n' "corpus inputs" "$(ls "$out/structured" | wc -l)" "$(ls "$out/raw" | wc -l)"
printf '%-34s %-22s %-22s\n' "libFuzzer exit (0: no finding)" "$src" "$rrc"
[ -n "$afl_eps" ] && echo "AFL++ (afl-clang-fast, ASan+UBSan, persistent, session mutator): $afl_eps exec/s, $afl_execs executions in 60 s"
echo
echo "== on the grown corpus, ${steady}s per target, one after the other"
printf '%-46s %s\n' "fuzz_session, inproc (ASan+UBSan)" "${eps_in:-?} exec/s"
printf '%-46s %s\n' "fuzz_session_sockets (ASan+UBSan): baseline" "${eps_so:-?} exec/s"
printf '%-46s %s\n' "fuzz_session, inproc, without sanitizers" "${eps_ns:-?} exec/s"
echo "implemented but not reached (structured): $miss_s"
echo "first finding (structured): $(finding "$out/structured.log")"
echo "first finding (raw):        $(finding "$out/raw.log")"
echo "where fuzz_session's time goes: the same sessions replayed by vufuzz replay --repeat (no"
echo "libFuzzer, no mutator) in the ASan+UBSan build and in a build without sanitizers; the"
echo "rest of an execution is libFuzzer's (coverage, comparison tracing, mutation). Average"
echo "structured corpus input: $avg_len bytes:"
sed 's/^/  /' "$out/costs.txt"
echo "the fuzz targets themselves (the socket target is the baseline; no sanitizers: the coverage"
echo "build, instrumented in reference/ only):"
sed 's/^/  /' "$out/exec-costs.txt"
sed 's/^/  /' "$out/syscalls.txt"
if [ -s "$out/profile.txt" ]; then
  echo "where an execution's time goes (perf record, samples by part; scripts/bench/perf_split.py):"
  sed 's/^/  /' "$out/profile.txt"
fi
if [ -n "$json" ]; then
  python3 - "$json" <<EOF
import json, sys
json.dump({"minutes": $minutes,
  "structured": {"exec_per_sec": "${eps_s:-}", "executions": "${runs_s:-}", "edges_start": "${cov0_s:-}",
                 "edges_end": "${cov1_s:-}", "messages": "$msg_s", "unreached": "$miss_s", "exit": $src},
  "raw": {"exec_per_sec": "${eps_r:-}", "executions": "${runs_r:-}", "edges_start": "${cov0_r:-}",
          "edges_end": "${cov1_r:-}", "messages": "$msg_r", "exit": $rrc},
  "afl_exec_per_sec": "${afl_eps:-}",
  "grown_corpus": {"seconds": $steady, "inproc_exec_per_sec": "${eps_in:-}",
                   "sockets_exec_per_sec": "${eps_so:-}", "inproc_nosan_exec_per_sec": "${eps_ns:-}"},
  "costs": open("$out/costs.txt").read().splitlines(),
  "exec_costs": open("$out/exec-costs.txt").read().splitlines(),
  "syscalls": open("$out/syscalls.txt").read().splitlines(),
  "profile": open("$out/profile.txt").read().splitlines()}, open(sys.argv[1], "w"), indent=1)
EOF
  echo "JSON: $json"
fi
