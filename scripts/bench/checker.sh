#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# Checker throughput on a long realistic trace: the QEMU-style handshake, then
# N cycles of data-path-era traffic on both channels (ring reconfiguration,
# IOTLB updates and misses, config changes, GET_VRING_BASE stop/start).
# Prints events/s for the checker beside a baseline in the same run: decoding
# the same events without the rules.
#   scripts/bench/checker.sh [CYCLES] [PASSES]     defaults: 20000 cycles, 5 passes
set -euo pipefail
. "$(dirname "$0")/../lib.sh"
cycles=${1:-20000}
passes=${2:-5}
vuf_install_deps
vuf_build
# a release build: the figure should not measure the sanitizers
R="$VUF_RELEASE"
vuf_build_release vufuzz
trace=$(mktemp --suffix=.trace)
trap 'rm -f "$trace"' EXIT
{
  sed -e '/^close /d' -e '/^# expect/d' "$VUF_ROOT/tests/traces/qemu-blk-handshake.trace"
  awk -v n="$cycles" 'BEGIN {
    for (i = 0; i < n; i++) {
      q = 0
      printf "F>B main SET_VRING_NUM need_reply index=%d num=128\nB>F main SET_VRING_NUM reply u64=0\n", q
      printf "F>B main SET_VRING_ADDR index=%d flags=0 desc=0x7f3a4010c000 used=0x7f3a4010d000 avail=0x7f3a4010c800 log_guest_addr=0\n", q
      printf "F>B main SET_VRING_KICK u64=%d fds=eventfd\nF>B main SET_VRING_CALL u64=%d fds=eventfd\n", q, q
      printf "F>B main SET_VRING_ENABLE index=%d num=1\n", q
      printf "B>F backend BACKEND_CONFIG_CHANGE_MSG need_reply\nF>B backend BACKEND_CONFIG_CHANGE_MSG reply u64=0\n"
      printf "F>B main GET_CONFIG offset=0 flags=0 payload=0000000000000000\nB>F main GET_CONFIG reply offset=0 flags=0 payload=0000400000000000\n"
      printf "F>B main GET_VRING_BASE index=%d num=0\nB>F main GET_VRING_BASE reply index=%d num=%d\n", q, q, i % 65536
      printf "F>B main SET_VRING_BASE index=%d num=%d\n", q, i % 65536
    }
  }'
  echo "close backend by=F"
  echo "close main by=F"
} >"$trace"
echo "trace: $(grep -c . "$trace") events ($cycles cycles), $passes passes, $(uname -m), $(nproc) cores"
"$R/vufuzz" check-trace --bench "$passes" "$trace"
