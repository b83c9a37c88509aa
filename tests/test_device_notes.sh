#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# What the device does that is not on the wire shows in `vufuzz serve
# --trace` as note lines (docs/trace-format.md), and check-trace understands
# them: a refusal names its rule before the NACK, a back-end request whose
# reply did not come in time is given up (timeout), the reply that comes after
# is ignored (late) and is no violation.
set -uo pipefail
B=${1:?usage: test_device_notes.sh BUILD_DIR}
V="$B/vufuzz"
. "$(dirname "$0")/lib.sh"
tmp=$(mktemp -d)
spid=""
cleanup() { [ -n "$spid" ] && kill -9 "$spid" 2>/dev/null; rm -rf "$tmp"; }
trap cleanup EXIT

# A front-end that negotiates REPLY_ACK, BACKEND_REQ and CONFIG, sends a
# request the device refuses, then lets a back-end request time out and
# answers it late.
cat >"$tmp/fe.py" <<'EOF'
import socket, struct, sys, time
path = sys.argv[1]
def msg(req, flags=1, payload=b""):
    return struct.pack("<III", req, flags, len(payload)) + payload
def recv(s):
    h = s.recv(12, socket.MSG_WAITALL)
    req, flags, size = struct.unpack("<III", h)
    return req, flags, s.recv(size, socket.MSG_WAITALL) if size else b""
s = socket.socket(socket.AF_UNIX); s.connect(path)
s.sendall(msg(1)); feats = struct.unpack("<Q", recv(s)[2])[0]
s.sendall(msg(15)); recv(s)
s.sendall(msg(17)); recv(s)                   # GET_QUEUE_NUM
s.sendall(msg(16, payload=struct.pack("<Q", (1 << 3) | (1 << 5) | (1 << 9))))
s.sendall(msg(2, flags=1 | 8, payload=struct.pack("<Q", feats & ((1 << 32) | (1 << 30))))); recv(s)
fe, be = socket.socketpair()
socket.send_fds(s, [msg(21, flags=1 | 8)], [be.fileno()]); recv(s); be.close()
# SET_VRING_NUM with a queue size that is not a power of 2: refused, a NACK
s.sendall(msg(8, flags=1 | 8, payload=struct.pack("<II", 0, 3)))
print("nack", struct.unpack("<Q", recv(s)[2])[0])
# SET_VRING_NUM for a ring the device does not have: VRING-INDEX
s.sendall(msg(8, flags=1 | 8, payload=struct.pack("<II", 5, 8)))
print("nack", struct.unpack("<Q", recv(s)[2])[0])
sys.stdout.flush()
fe.settimeout(10)
req, flags, pl = recv(fe)                     # the resize's config change
print("backend request", req); sys.stdout.flush()
time.sleep(0.6)                               # past --backend-timeout 200
fe.sendall(msg(req, flags=1 | 4, payload=struct.pack("<Q", 0)))   # late
time.sleep(0.3)
s.sendall(msg(1)); recv(s)                    # the device still answers
print("done")
EOF

mkfifo "$tmp/cmds"
"$V" serve --socket "$tmp/s" --trace "$tmp/t" --size 1M --backend-timeout 200 --once \
  --commands <"$tmp/cmds" 2>"$tmp/serve.log" &
spid=$!
exec 3>"$tmp/cmds"
for _ in $(seq 100); do [ -S "$tmp/s" ] && break; sleep 0.05; done
python3 "$tmp/fe.py" "$tmp/s" >"$tmp/fe.out" 2>&1 &
fpid=$!
for _ in $(seq 100); do [ "$(grep -c '^nack 1' "$tmp/fe.out")" -ge 2 ] && break; sleep 0.05; done
echo "resize 2M" >&3
wait "$fpid"; frc=$?
exec 3>&-
for _ in $(seq 100); do kill -0 "$spid" 2>/dev/null || break; sleep 0.1; done
kill -0 "$spid" 2>/dev/null && ko "serve still running" || ok "serve stopped after the connection"
spid=""
[ "$frc" -eq 0 ] && grep -q '^done$' "$tmp/fe.out" && ok "the front-end ran" || { ko "front-end exit $frc"; cat "$tmp/fe.out" "$tmp/serve.log"; }

want() { # want DESC PATTERN: a line of the trace
  if grep -qE -- "$2" "$tmp/t"; then ok "$1"; else ko "$1: no /$2/ in:"; sed 's/^/     /' "$tmp/t"; fi
}
want "the refusal, with its reason, before the NACK" '^note main refuse by=B -- queue size not a power of 2'
want "a refusal names the catalogue rule" '^note main refuse by=B rule=VRING-INDEX -- '
want "the back-end request given up" '^note backend timeout by=B -- '
want "the late reply ignored" '^note backend late by=B -- '
grep -A1 '^note main refuse by=B -- queue size' "$tmp/t" | grep -q '^B>F main SET_VRING_NUM reply u64=1$' &&
  ok "the NACK follows the note" || ko "the NACK does not follow the note"
"$V" check-trace --level should --device blk "$tmp/t" >"$tmp/v" 2>&1; rc=$?
if [ "$rc" -eq 1 ] && grep -q 'SHOULD VRING-INDEX side=frontend' "$tmp/v" && ! grep -qE 'REPLY-(UNSOLICITED|ID-MISMATCH|MISSING)' "$tmp/v"; then
  ok "check-trace: the front-end's VRING-INDEX, the late reply no violation"
else
  ko "check-trace (exit $rc):"; cat "$tmp/v"
fi
"$V" check-trace --device blk --side backend "$tmp/t" >"$tmp/v" 2>&1 && ok "the device broke no rule" || { ko "device violations:"; cat "$tmp/v"; }
echo "$pass passed, $fail failed"
[ "$fail" -eq 0 ]
