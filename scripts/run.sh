#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# The main job: fuzz the built-in reference vhost-user-blk device with the
# structured session fuzzer, and print what it found.
#   1. the spec table, and the checker on tests/traces/ (each trace must
#      report exactly the rules its "# expect:" lines name);
#   2. every corpus seed replayed against the device with the oracles
#      (the malformed SET_BACKEND_REQ_FD cases among them);
#   3. a short structured campaign (libFuzzer, fuzz_session, ASan+UBSan,
#      the device in process): exec/s, coverage, corpus, messages reached,
#      findings; with --jobs N, N fuzzers share one corpus, one per core,
#      and the figures are merged.
# Installs what is missing (apt-get), builds into build/, then runs.
#   scripts/run.sh [--seconds N] [--jobs N]   campaign length (default 60),
#                                             parallel fuzzers (default 1)
set -euo pipefail
. "$(dirname "$0")/lib.sh"

seconds=60 jobs=1
while [ $# -gt 0 ]; do
  case "$1" in
    --seconds|--jobs)
      [ $# -ge 2 ] || { echo "run.sh: $1 needs a value (see --help)" >&2; exit 2; }
      if [ "$1" = --seconds ]; then seconds=$2; else jobs=$2; fi; shift 2 ;;
    --seconds=*) seconds=${1#*=}; shift ;;
    --jobs=*) jobs=${1#*=}; shift ;;
    -h|--help) sed -n '2,16p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "run.sh: unknown argument '$1' (see --help)" >&2; exit 2 ;;
  esac
done
case "$seconds" in ''|*[!0-9]*) echo "run.sh: --seconds takes a whole number" >&2; exit 2 ;; esac
case "$jobs" in ''|0|*[!0-9]*) echo "run.sh: --jobs takes a positive whole number" >&2; exit 2 ;; esac

vuf_install_deps
vuf_build
V="$VUF_BUILD/vufuzz"
cd "$VUF_ROOT"
rc=0

echo
echo "== 1. spec table ($("$V" spec list | tail -n 1)), $("$V" rules | tail -n 1)"
"$V" spec lint spec/vhost-user.spec
# each trace against its "# expect:" lines (none: clean; regressions of the
# checker expect the rule a party really broke)
for t in tests/traces/*.trace; do
  want=$(sed -n 's/^# expect: *//p' "$t" | grep -vx none | sort -u | tr '\n' ' ' || true)
  got=$("$V" check-trace "$t" 2>&1 | awk '$2=="MUST"||$2=="SHOULD"{print $3}' | sort -u | tr '\n' ' ' || true)
  if [ "$got" = "$want" ]; then got=${got% }; printf '  %-52s %s\n' "$t" "${got:-clean}"
  else rc=1; printf '  %-52s reported [%s], expected [%s]\n' "$t" "${got% }" "${want% }"; fi
done

echo
echo "== 2. corpus seeds against the reference device (vufuzz replay)"
if "$V" replay --quiet --stats corpus/ >/tmp/vuf_run_$$.out 2>&1; then :; else rc=1; fi
grep -E 'FINDING' /tmp/vuf_run_$$.out | sed 's/^/  /' || true
tail -n 1 /tmp/vuf_run_$$.out | sed 's/^/  /'
grep -E '^[0-9]+ sessions,' /tmp/vuf_run_$$.out | sed 's/^/  /'
rm -f /tmp/vuf_run_$$.out

echo
echo "== 3. structured fuzzing campaign: ${seconds}s of fuzz_session on the reference device, $jobs job(s)"
work=$(mktemp -d /tmp/vufuzz-run.XXXXXX)
mkdir -p "$work/corpus" "$work/findings"
cp "$VUF_BUILD"/corpus/*.bin "$work/corpus/"
seeds=$(ls "$work/corpus" | wc -l)
ncpu=$(nproc 2>/dev/null || echo 1)
# the options OSS-Fuzz runs it with (scripts/oss-fuzz/options/fuzz_session.options)
max_len=$(vuf_fuzz_option fuzz_session max_len)
fuzz_timeout=$(vuf_fuzz_option fuzz_session timeout)
set +e
pids=()
for j in $(seq 1 "$jobs"); do
  # one fuzzer per core when they fit: a process that stays on its core
  # spares the other cores its TLB shootdowns
  pin=()
  if [ "$jobs" -le "$ncpu" ] && command -v taskset >/dev/null; then pin=(taskset -c $((j - 1))); fi
  "${pin[@]}" "$VUF_BUILD/fuzz/fuzz_session" -seed="$j" -max_total_time="$seconds" -max_len="$max_len" \
    -timeout="$fuzz_timeout" -rss_limit_mb=4096 -print_final_stats=1 -artifact_prefix="$work/findings/" "$work/corpus" \
    >"$work/log.$j" 2>&1 &
  pids+=($!)
done
running() { for p in "${pids[@]}"; do kill -0 "$p" 2>/dev/null && return 0; done; return 1; }
while running; do
  sleep 10
  # the merged progress: executions summed, the best coverage, the corpus
  line=$(for j in $(seq 1 "$jobs"); do grep -E '^#[0-9]+' "$work/log.$j" | tail -1; done |
    awk '{ n += substr($1, 2); for (i = 1; i <= NF; i++) if ($i == "cov:" && $(i + 1) > c) c = $(i + 1) }
         END { if (n) printf "%d execs, cov %d", n, c }')
  [ -n "$line" ] && echo "  .. $line, corpus $(ls "$work/corpus" | wc -l)"
done
frc=0
for p in "${pids[@]}"; do wait "$p" || frc=$?; done
set -e
cat "$work"/log.* >"$work/log"
# the merged figures: executions and exec/s summed over the jobs
sum_stat() { sed -n "s/^stat::$1: *//p" "$work"/log.* | awk '{ s += $1 } END { print s + 0 }'; }
first=$(grep -hE '^#[0-9]+[[:space:]]+INITED' "$work"/log.* | head -1 |
  sed -n 's/.*cov: \([0-9]*\) ft: \([0-9]*\).*/\1 edges, \2 features/p' || true)
last=$(grep -hE '^#[0-9]+' "$work"/log.* | sed -n 's/.*cov: \([0-9]*\) ft: \([0-9]*\).*/\1 \2/p' |
  sort -n | tail -1 | awk '{ print $1 " edges, " $2 " features" }' || true)
echo "  executions:      $(sum_stat number_of_executed_units) in ${seconds}s, $(sum_stat average_exec_per_sec) exec/s ($jobs job(s), one core each, ASan+UBSan)"
echo "  coverage:        ${first:-?} from the seeds -> ${last:-?} (the best job)"
# inputs the table cannot play are skipped by the target, and counted
skipped=$(sed -n 's/^fuzz_session: \([0-9]*\) inputs skipped: \([0-9]*\) do not build.*, \([0-9]*\) are text.*/\1 \2 \3/p' "$work"/log.* |
  awk '{ a += $1; b += $2; c += $3 } END { printf "%d (%d not buildable against the table, %d text sessions)", a, b, c }')
echo "  skipped inputs:  $skipped"
echo "  corpus:          $seeds seeds -> $(ls "$work/corpus" | wc -l) inputs"
"$V" replay --quiet --stats --json "$work/corpus" >"$work/stats.json" 2>/dev/null || true
python3 - "$work/stats.json" <<'EOF' || true
import json, sys
s = json.load(open(sys.argv[1]))["stats"]
acc = s["accepted"]
sup = [k for k, v in acc.items() if v["supported"] and not k.startswith("BACKEND_")]
hit = [k for k in sup if acc[k]["count"]]
be = [k for k, v in acc.items() if v["supported"] and k.startswith("BACKEND_")]
print(f"  messages:        {len(hit)} of the {len(sup)} front-end messages the device implements reached "
      f"an accepting handler; it sent {sum(1 for k in be if acc[k]['count'])} of its {len(be)} back-end requests")
print(f"  data plane:      {s['requests_completed']} block requests completed replaying the corpus")
EOF
if [ "$frc" -ne 0 ] || ls "$work/findings"/* >/dev/null 2>&1; then
  rc=1
  echo "  FINDING: $(grep -h -m1 -E '==vufuzz== finding|ERROR: |runtime error' "$work"/log.* | head -1 || echo "libFuzzer exit $frc")"
  for f in "$work"/findings/*; do
    [ -f "$f" ] && echo "  reproduce: $V replay $f"
  done
else
  echo "  findings:        none (oracles: the checker's MUST rules and the reference device's SHOULD promises, fd leaks, guest memory, ASan, UBSan, hangs)"
fi
echo "  corpus and log:  $work"
exit "$rc"
