#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# External back-ends, side by side in one run (a benchmark: it asserts
# nothing):
#   conform    the time of the whole conformance suite against vufuzz serve
#              and against qemu-storage-daemon (vhost-user-blk export);
#   fuzz       vufuzz fuzz sessions/s and protocol states reached in S
#              seconds (default 300) against vufuzz serve over --connect and
#              over --exec, and against qemu-storage-daemon, beside the
#              in-process fuzz_session target (libFuzzer, its exec/s) for the
#              same S seconds;
#   coverage   edges of vufuzz serve built with afl-clang-fast (build-afl/),
#              fuzzed S seconds with --coverage and S seconds without (the
#              edge map is read in both runs; only --coverage feeds it back).
#
#   scripts/bench/external.sh [--seconds S] [--skip-coverage]
#
# vufuzz and the back-end under test are the release build (build-release/,
# no sanitizers); fuzz_session is the libFuzzer build (build/, ASan+UBSan).
set -euo pipefail
. "$(dirname "$0")/../lib.sh"
secs=300 coverage=1
while [ $# -gt 0 ]; do
  case "$1" in
    --seconds) secs=${2:?}; shift 2 ;;
    --skip-coverage) coverage=0; shift ;;
    -h|--help) sed -n '3,20p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "external.sh: unknown argument '$1' (see --help)" >&2; exit 2 ;;
  esac
done
vuf_install_deps
R="$VUF_RELEASE"
vuf_build_release vufuzz
[ -x "$VUF_ROOT/build/fuzz/fuzz_session" ] || vuf_build "$VUF_ROOT/build" >/dev/null
V="$R/vufuzz"
tmp=$(mktemp -d)
serve_pid=
cleanup() { [ -n "$serve_pid" ] && kill "$serve_pid" 2>/dev/null; rm -rf "$tmp"; }
trap cleanup EXIT
truncate -s 1M "$tmp/qsd.img"
QSD="qemu-storage-daemon --blockdev driver=file,node-name=f0,filename=$tmp/qsd.img --export type=vhost-user-blk,id=e0,node-name=f0,addr.type=unix,addr.path={socket},writable=on"
field() { python3 -c "import json,sys; v=json.load(open(sys.argv[1])); [v:=v[k] for k in sys.argv[2:]]; print(v)" "$@"; }

echo "== conform: the whole suite (212 cases, --device blk)"
printf '%-28s %8s %6s %6s %6s %6s\n' "back-end" "seconds" "PASS" "WARN" "FAIL" "SKIP"
for name in serve qsd; do
  cmd="$V serve --socket {socket}"; [ $name = qsd ] && cmd=$QSD
  s=$(date +%s.%N)
  "$V" conform --device blk --exec "$cmd" --json "$tmp/c.json" >/dev/null 2>&1 || true
  e=$(date +%s.%N)
  printf '%-28s %8.1f %6s %6s %6s %6s\n' "$name" "$(echo "$e - $s" | bc)" \
    "$(field "$tmp/c.json" total PASS)" "$(field "$tmp/c.json" total WARN)" \
    "$(field "$tmp/c.json" total FAIL)" "$(field "$tmp/c.json" total SKIP)"
done

echo
echo "== fuzz: $secs s each, one job, seed 1"
printf '%-28s %10s %8s %12s %8s\n' "target" "sessions" "per s" "states+tr." "findings"
fuzz_row() { # NAME ARGS...
  local name=$1; shift
  "$V" fuzz --seconds "$secs" --seed 1 --quiet --out "$tmp/f-$name" "$@" >/dev/null 2>&1 || true
  local j="$tmp/f-$name/stats.json"
  printf '%-28s %10s %8.0f %12s %8s\n' "$name" "$(field "$j" runs)" "$(field "$j" runs_per_second)" \
    "$(field "$j" states)+$(field "$j" transitions)" "$(field "$j" unique_findings)"
}
"$V" serve --socket "$tmp/serve.sock" >/dev/null 2>&1 &
serve_pid=$!
for _ in $(seq 100); do [ -S "$tmp/serve.sock" ] && break; sleep 0.05; done
fuzz_row "serve --connect" --connect "$tmp/serve.sock" --pid "$serve_pid"
kill "$serve_pid"; wait "$serve_pid" 2>/dev/null || true; serve_pid=
fuzz_row "serve --exec" --exec "$V serve --socket {socket}"
fuzz_row "qemu-storage-daemon --exec" --device blk --exec "$QSD"
mkdir -p "$tmp/lf-corpus"
"$VUF_ROOT/build/fuzz/fuzz_session" -max_total_time="$secs" -print_final_stats=1 \
  -max_len="$(vuf_fuzz_option fuzz_session max_len)" -timeout="$(vuf_fuzz_option fuzz_session timeout)" \
  "$tmp/lf-corpus" "$VUF_ROOT/corpus" >"$tmp/lf.txt" 2>&1 || true
lf_execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$tmp/lf.txt" | tail -1)
lf_rate=$(sed -n 's/^stat::average_exec_per_sec: *//p' "$tmp/lf.txt" | tail -1)
printf '%-28s %10s %8s %12s %8s\n' "fuzz_session (in process)" "${lf_execs:-?}" "${lf_rate:-?}" "-" "-"

if [ $coverage = 1 ]; then
  echo
  echo "== coverage: vufuzz serve built with afl-clang-fast (build-afl/), $secs s each"
  A="$VUF_ROOT/build-afl"
  if [ ! -f "$A/CMakeCache.txt" ]; then
    CC=afl-clang-fast CXX=afl-clang-fast++ cmake -S "$VUF_ROOT" -B "$A" -DCMAKE_BUILD_TYPE=Release \
      -DVUF_WERROR=OFF >/dev/null
  fi
  AFL_QUIET=1 cmake --build "$A" -j"$(nproc)" --target vufuzz >/dev/null
  printf '%-28s %10s %8s %8s %12s\n' "run" "sessions" "per s" "edges" "states+tr."
  for mode in with without; do
    cov=--coverage; [ $mode = without ] && cov=--coverage-count-only
    # the map is read in both runs; only --coverage keeps inputs for new edges
    "$V" fuzz --seconds "$secs" --seed 1 --quiet --out "$tmp/cov-$mode" $cov \
      --exec "$A/vufuzz serve --socket {socket}" >/dev/null 2>&1 || true
    j="$tmp/cov-$mode/stats.json"
    printf '%-28s %10s %8.0f %8s %12s\n' "$mode coverage feedback" "$(field "$j" runs)" \
      "$(field "$j" runs_per_second)" "$(field "$j" edges)" "$(field "$j" states)+$(field "$j" transitions)"
  done
fi
