#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# What `vufuzz monitor` costs a conversation: the same front-end
# (tests/tools/monitor_bench.c) talks to the same back-end (`vufuzz serve`,
# the reference device, no trace) directly and through the monitor
# (checking on), in the same run, alternately, R times each; the medians
# are printed. A benchmark: it asserts nothing.
#
#   scripts/bench/monitor.sh [--messages N] [--rounds R]
#
# Figures:
#   stream      messages/s of a long conversation (N messages, default
#               400000): batches of 63 requests without a reply (a ring's
#               setup, as QEMU sends it) then GET_FEATURES and its reply;
#               overhead = 1 - through the monitor / direct;
#   round trip  µs per request and reply (N/10 messages, one request at a
#               time: GET_FEATURES, GET_QUEUE_NUM, GET_CONFIG, SET_VRING_NUM
#               with need_reply); added = through the monitor - direct;
#   and both through a monitor that also writes a trace (--trace).
# Release build (build-release/, no sanitizers), like the other benchmarks.
set -euo pipefail
. "$(dirname "$0")/../lib.sh"
messages=400000 rounds=3
while [ $# -gt 0 ]; do
  case "$1" in
    --messages) messages=${2:?}; shift 2 ;;
    --rounds) rounds=${2:?}; shift 2 ;;
    -h|--help) sed -n '3,24p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "monitor.sh: unknown argument '$1' (see --help)" >&2; exit 2 ;;
  esac
done
vuf_install_deps
R="$VUF_RELEASE"
vuf_build_release vufuzz monitor_bench
V="$R/vufuzz" C="$R/tests/monitor_bench"
tmp=$(mktemp -d)
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  rm -rf "$tmp"
}
trap cleanup EXIT
wait_sock() { for _ in $(seq 200); do [ -S "$1" ] && return 0; sleep 0.05; done; echo "no socket $1" >&2; exit 2; }
"$V" serve --socket "$tmp/dev.sock" 2>/dev/null &
pids+=($!)
wait_sock "$tmp/dev.sock"
"$V" monitor --listen "$tmp/mon.sock" --connect "$tmp/dev.sock" --quiet >"$tmp/mon.out" 2>&1 &
m1=$!
pids+=($m1)
"$V" monitor --listen "$tmp/tr.sock" --connect "$tmp/dev.sock" --quiet --trace "$tmp/t.trace" >"$tmp/tr.out" 2>&1 &
m2=$!
pids+=($m2)
wait_sock "$tmp/mon.sock"
wait_sock "$tmp/tr.sock"

field() { sed -n "s/.*$1=\([0-9.]*\).*/\1/p"; }
median() { sort -g | awk '{ v[NR] = $1 } END { print v[int((NR + 1) / 2)] }'; }
declare -A res
for _ in $(seq "$rounds"); do
  for path in dev mon tr; do
    "$C" "$tmp/$path.sock" --messages "$messages" --batch 64 >>"$tmp/stream.$path"
    "$C" "$tmp/$path.sock" --messages "$((messages / 10))" >>"$tmp/rtt.$path"
  done
done
for path in dev mon tr; do
  res[stream.$path]=$(field messages_per_s <"$tmp/stream.$path" | median)
  res[rtt.$path]=$(field rtt_us_mean <"$tmp/rtt.$path" | median)
  res[p99.$path]=$(field rtt_us_p99 <"$tmp/rtt.$path" | median)
done
echo "vufuzz monitor, relay cost: $(uname -m), $(nproc) cores, $rounds rounds, medians"
echo "back-end: vufuzz serve (reference device); front-end: tests/tools/monitor_bench.c"
printf '%-34s %14s %14s %14s\n' "" "direct" "monitor" "monitor+trace"
printf '%-34s %14.0f %14.0f %14.0f\n' "stream, messages/s ($messages msgs)" "${res[stream.dev]}" "${res[stream.mon]}" "${res[stream.tr]}"
printf '%-34s %14.1f %14.1f %14.1f\n' "round trip, µs mean ($((messages / 10)) msgs)" "${res[rtt.dev]}" "${res[rtt.mon]}" "${res[rtt.tr]}"
printf '%-34s %14.1f %14.1f %14.1f\n' "round trip, µs p99" "${res[p99.dev]}" "${res[p99.mon]}" "${res[p99.tr]}"
awk -v d="${res[stream.dev]}" -v m="${res[stream.mon]}" -v t="${res[stream.tr]}" \
  'BEGIN { printf "stream overhead: %.1f%% with checking, %.1f%% with checking and a trace (goal: at most 10%%)\n", 100 * (1 - m / d), 100 * (1 - t / d) }'
awk -v d="${res[rtt.dev]}" -v m="${res[rtt.mon]}" -v t="${res[rtt.tr]}" \
  'BEGIN { printf "latency added per round trip: %.1f µs with checking, %.1f µs with a trace too\n", m - d, t - d }'
kill -TERM "$m1" "$m2"
wait "$m1" "$m2" || true
echo "the monitors' own verdicts on these conversations:"
grep -h 'violations' "$tmp/mon.out" "$tmp/tr.out" | sed 's/^/  /'
