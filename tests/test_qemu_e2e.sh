#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# QEMU (the real front-end, TCG, no guest kernel) against `vufuzz serve`:
# QEMU connects at start-up and runs the vhost-user handshake; SeaBIOS then
# drives the virtio-blk device (DRIVER_OK, a read, a reset). The recorded
# conversation must be clean on both sides by the checker, the device must
# have completed a request, and no process may be left behind. Then QEMU
# without a shared memory backend: the device refuses to start the ring
# (RING-ADDR-UNMAPPED, a note in the trace) and the checker names it.
#   tests/test_qemu_e2e.sh BUILD_DIR            the test
#   VUF_RECORD=FILE tests/test_qemu_e2e.sh ...  also keep the recorded trace
set -uo pipefail
B=${1:?usage: test_qemu_e2e.sh BUILD_DIR}
V="$B/vufuzz"
. "$(dirname "$0")/lib.sh"
QEMU=${QEMU:-qemu-system-x86_64}
if ! command -v "$QEMU" >/dev/null; then
  echo "FAIL $QEMU not installed (scripts/test.sh installs qemu-system-x86)"
  exit 1
fi

tmp=$(mktemp -d)
spid="" qpid=""
cleanup() {
  for p in $qpid $spid; do kill -9 "$p" 2>/dev/null; done
  rm -rf "$tmp"
}
trap cleanup EXIT

# the device, for one connection
"$V" serve --socket "$tmp/vhost.sock" --trace "$tmp/conv.trace" --once --size 8M 2>"$tmp/serve.log" &
spid=$!
for _ in $(seq 100); do [ -S "$tmp/vhost.sock" ] && break; sleep 0.05; done
[ -S "$tmp/vhost.sock" ] && ok "vufuzz serve listens" || { ko "vufuzz serve did not listen"; cat "$tmp/serve.log"; }

# the front-end: the command line of the issue
"$QEMU" -machine q35,accel=tcg -m 256M \
  -object memory-backend-memfd,id=mem,size=256M,share=on -numa node,memdev=mem \
  -chardev socket,id=c0,path="$tmp/vhost.sock" -device vhost-user-blk-pci,chardev=c0 \
  -nographic -nodefaults -display none >"$tmp/qemu.log" 2>&1 &
qpid=$!

# wait for the firmware's first block request to complete (a comment line of
# the trace), at most 90 s; QEMU then stops the device when it terminates
for _ in $(seq 900); do
  grep -q '^# data plane: [1-9]' "$tmp/conv.trace" 2>/dev/null && break
  kill -0 "$qpid" 2>/dev/null || break
  sleep 0.1
done
kill -TERM "$qpid" 2>/dev/null
for _ in $(seq 100); do kill -0 "$qpid" 2>/dev/null || break; sleep 0.1; done
# --once: the device exits when QEMU's connection ends
for _ in $(seq 100); do kill -0 "$spid" 2>/dev/null || break; sleep 0.1; done
if kill -0 "$qpid" 2>/dev/null || kill -0 "$spid" 2>/dev/null; then
  ko "processes left behind (qemu $qpid, serve $spid)"
else
  ok "QEMU and vufuzz serve stopped, no process left"
fi
wait "$spid"; src=$?
[ "$src" -eq 0 ] && ok "vufuzz serve exited 0" || { ko "vufuzz serve exit $src"; cat "$tmp/serve.log"; }

t="$tmp/conv.trace"
want() { # want DESC PATTERN: a line of the conversation
  if grep -qE -- "$2" "$t"; then ok "$1"; else ko "$1: no /$2/"; fi
}
want "GET_FEATURES answered" '^B>F main GET_FEATURES reply u64='
want "protocol features negotiated" '^F>B main SET_PROTOCOL_FEATURES u64='
want "back-end channel handed over and acked" '^B>F main SET_BACKEND_REQ_FD reply u64=0$'
want "back-end channel open" '^open backend$'
want "config space read" '^B>F main GET_CONFIG reply offset=0'
want "features acked" '^F>B main SET_FEATURES u64='
want "guest memory mapped" '^F>B main (SET_MEM_TABLE|ADD_MEM_REG) .*fds=memfd'
want "ring configured" '^F>B main SET_VRING_ADDR index=0'
want "ring kicked by eventfd" '^F>B main SET_VRING_KICK u64=0 fds=eventfd'
want "ring stopped" '^B>F main GET_VRING_BASE reply index=0'
if grep -qE 'connection 1 closed .*\(([1-9][0-9]*) requests completed\)' "$tmp/serve.log"; then
  ok "the device completed the firmware's block requests: $(grep -oE '[0-9]+ requests completed' "$tmp/serve.log")"
else
  ko "no block request completed"; cat "$tmp/serve.log"
fi
# QEMU 7.2 sends SET_BACKEND_REQ_FD before SET_FEATURES acks bit 30: a SHOULD
# finding (docs/rules.md); no MUST on either side
"$V" check-trace --device blk --level must "$t" >"$tmp/verdict" 2>&1; rc=$?
if [ "$rc" -eq 0 ]; then ok "checker, no MUST: $(tail -n 1 "$tmp/verdict" | sed 's/^[^:]*: //')"; else ko "checker found MUST violations:"; cat "$tmp/verdict"; fi
[ -n "${VUF_RECORD:-}" ] && cp "$t" "$VUF_RECORD" && echo "recorded: $VUF_RECORD"

# the most common setup mistake: QEMU without a shared memory backend sends
# the rings' addresses and kicks with no memory table. The device refuses to
# start the ring (a note in the trace names the rule) and the checker says
# what is missing.
"$V" serve --socket "$tmp/ns.sock" --trace "$tmp/ns.trace" --once --size 8M 2>"$tmp/ns.log" &
spid=$!
for _ in $(seq 100); do [ -S "$tmp/ns.sock" ] && break; sleep 0.05; done
"$QEMU" -machine q35,accel=tcg -m 256M \
  -chardev socket,id=c0,path="$tmp/ns.sock" -device vhost-user-blk-pci,chardev=c0 \
  -nographic -nodefaults -display none >"$tmp/nsq.log" 2>&1 &
qpid=$!
for _ in $(seq 300); do
  grep -q '^note main refuse' "$tmp/ns.trace" 2>/dev/null && break
  kill -0 "$qpid" 2>/dev/null || break
  sleep 0.1
done
kill -TERM "$qpid" 2>/dev/null
for _ in $(seq 100); do kill -0 "$qpid" 2>/dev/null || break; sleep 0.1; done
for _ in $(seq 100); do kill -0 "$spid" 2>/dev/null || break; sleep 0.1; done
kill -0 "$qpid" 2>/dev/null || kill -0 "$spid" 2>/dev/null && ko "processes left behind" || ok "without shared memory: QEMU and vufuzz serve stopped"
t="$tmp/ns.trace"
want "no memory table was sent" '^F>B main SET_VRING_KICK u64=0 fds=eventfd$'
grep -qE '^F>B main (SET_MEM_TABLE|ADD_MEM_REG)' "$t" && ko "a memory table was sent" || ok "no SET_MEM_TABLE or ADD_MEM_REG"
want "the device refused to start the ring, naming the rule" '^note main refuse by=B rule=RING-ADDR-UNMAPPED -- ring 0 starts with no memory table'
"$V" check-trace --device blk "$t" >"$tmp/verdict" 2>&1; rc=$?
if [ "$rc" -eq 1 ] && grep -q 'MUST RING-ADDR-UNMAPPED side=frontend msg=SET_VRING_KICK: .*share=on' "$tmp/verdict"; then
  ok "checker: RING-ADDR-UNMAPPED with the share=on hint"
else
  ko "checker (exit $rc):"; cat "$tmp/verdict"
fi
echo "$pass passed, $fail failed"
[ "$fail" -eq 0 ]
