#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# QEMU's virtio-net front-end (TCG, no guest kernel: SeaBIOS network-boots
# and iPXE drives the NIC) against a small recording back-end
# (tests/vhost_user_recorder.py): QEMU runs the vhost-user handshake at
# start-up and starts the rings when iPXE sets DRIVER_OK. The recorded
# conversation, made canonical by `vufuzz trace canon`, must report no MUST;
# no process may be left behind.
#   tests/test_qemu_net.sh BUILD_DIR            the test
#   VUF_RECORD=FILE tests/test_qemu_net.sh ...  also keep the canonical trace
set -uo pipefail
B=${1:?usage: test_qemu_net.sh BUILD_DIR}
V="$B/vufuzz"
. "$(dirname "$0")/lib.sh"
QEMU=${QEMU:-qemu-system-x86_64}
for tool in "$QEMU" python3; do
  if ! command -v "$tool" >/dev/null; then
    echo "FAIL $tool not installed (scripts/test.sh installs qemu-system-x86 and python3)"
    exit 1
  fi
done

tmp=$(mktemp -d)
rpid="" qpid=""
cleanup() {
  for p in $qpid $rpid; do kill -9 "$p" 2>/dev/null; done
  rm -rf "$tmp"
}
trap cleanup EXIT

python3 "$(dirname "$0")/vhost_user_recorder.py" "$tmp/vhost.sock" "$tmp/raw.trace" --device net \
  2>"$tmp/recorder.log" &
rpid=$!
for _ in $(seq 100); do [ -S "$tmp/vhost.sock" ] && break; sleep 0.05; done
[ -S "$tmp/vhost.sock" ] && ok "the recorder listens" || { ko "the recorder did not listen"; cat "$tmp/recorder.log"; }

# the front-end: shared guest memory, a vhost-user netdev, virtio-net with
# its iPXE option ROM, a network boot
"$QEMU" -machine q35,accel=tcg -m 256M \
  -object memory-backend-memfd,id=mem,size=256M,share=on -numa node,memdev=mem \
  -chardev socket,id=c0,path="$tmp/vhost.sock" -netdev vhost-user,chardev=c0,id=n0 \
  -device virtio-net-pci,netdev=n0,mac=52:54:00:12:34:56 -boot n \
  -nographic -nodefaults -display none >"$tmp/qemu.log" 2>&1 &
qpid=$!

# wait until iPXE has started the device: both rings kicked (QEMU sends the
# kicks when the driver sets DRIVER_OK; it enables the rings at start-up
# already), at most 90 s
for _ in $(seq 900); do
  [ "$(grep -c '^F>B main 12 ' "$tmp/raw.trace" 2>/dev/null)" -ge 2 ] && break
  kill -0 "$qpid" 2>/dev/null || break
  sleep 0.1
done
sleep 0.5 # what iPXE does next (its first packets) is not waited for
kill -TERM "$qpid" 2>/dev/null
for _ in $(seq 100); do kill -0 "$qpid" 2>/dev/null || break; sleep 0.1; done
for _ in $(seq 100); do kill -0 "$rpid" 2>/dev/null || break; sleep 0.1; done
if kill -0 "$qpid" 2>/dev/null || kill -0 "$rpid" 2>/dev/null; then
  ko "processes left behind (qemu $qpid, recorder $rpid)"
else
  ok "QEMU and the recorder stopped, no process left"
fi
wait "$rpid"; rrc=$?
[ "$rrc" -eq 0 ] && ok "the recorder exited 0" || { ko "recorder exit $rrc"; cat "$tmp/recorder.log"; }

t="$tmp/conv.trace"
if "$V" trace canon "$tmp/raw.trace" >"$t" 2>"$tmp/canon.err"; then ok "the recording is a valid trace"; else ko "trace canon: $(cat "$tmp/canon.err")"; fi
want() { # want DESC PATTERN: a line of the conversation
  if grep -qE -- "$2" "$t"; then ok "$1"; else ko "$1: no /$2/"; fi
}
want "a net device" '^device net$'
want "GET_FEATURES answered" '^B>F main GET_FEATURES reply u64='
want "protocol features negotiated" '^F>B main SET_PROTOCOL_FEATURES u64='
want "queue pairs asked" '^F>B main GET_QUEUE_NUM$'
want "back-end channel handed over" '^F>B main SET_BACKEND_REQ_FD need_reply fds=socket$'
want "features acked" '^F>B main SET_FEATURES u64='
want "guest memory mapped" '^F>B main SET_MEM_TABLE .*fds=memfd'
want "the receive ring configured" '^F>B main SET_VRING_ADDR index=0 '
want "the transmit ring configured" '^F>B main SET_VRING_ADDR index=1 '
want "rings kicked by eventfd" '^F>B main SET_VRING_KICK u64=1 fds=eventfd$'
want "rings enabled" '^F>B main SET_VRING_ENABLE index=1 num=1$'
"$V" check-trace --level must "$t" >"$tmp/verdict" 2>&1; rc=$?
if [ "$rc" -eq 0 ]; then ok "checker, no MUST: $(tail -n 1 "$tmp/verdict" | sed 's/^[^:]*: //')"; else ko "checker found MUST violations:"; cat "$tmp/verdict"; fi
[ -n "${VUF_RECORD:-}" ] && cp "$t" "$VUF_RECORD" && echo "recorded: $VUF_RECORD"
echo "$pass passed, $fail failed"
[ "$fail" -eq 0 ]
