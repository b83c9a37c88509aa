#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# vufuzz serve as a user runs it, with a scripted front-end (python3, fds
# passed with SCM_RIGHTS): the listening server answers and logs the
# conversation, `resize` on --commands reaches the front-end as
# BACKEND_CONFIG_CHANGE_MSG on the back-end channel, SIGTERM stops it cleanly
# (exit 0, socket removed), --connect reconnects after the front-end goes
# away, the trace is appended to (never cut, not even by a second server that
# cannot listen), and bad arguments exit 2.
set -uo pipefail
B=${1:?usage: test_serve.sh BUILD_DIR}
V="$B/vufuzz"
. "$(dirname "$0")/lib.sh"
tmp=$(mktemp -d)
pids=()
cleanup() { for p in "${pids[@]}"; do kill -9 "$p" 2>/dev/null; done; rm -rf "$tmp"; }
trap cleanup EXIT

# A small front-end: handshake with REPLY_ACK + BACKEND_REQ + CONFIG, hands
# over a back-end channel, then waits for the device's request on it.
cat >"$tmp/fe.py" <<'EOF'
import socket, struct, sys, time
mode, path = sys.argv[1], sys.argv[2]
def msg(req, flags=1, payload=b""):
    return struct.pack("<III", req, flags, len(payload)) + payload
def reply(s):
    h = s.recv(12, socket.MSG_WAITALL)
    req, flags, size = struct.unpack("<III", h)
    return req, flags, s.recv(size, socket.MSG_WAITALL) if size else b""
if mode == "listen":               # serve --connect comes to us
    l = socket.socket(socket.AF_UNIX); l.bind(path); l.listen(1)
    for n in range(2):             # two connections: the second is the reconnect
        s, _ = l.accept()
        s.sendall(msg(1)); print("conn", n, "features", hex(struct.unpack("<Q", reply(s)[2])[0]))
        s.close()
    sys.exit(0)
s = socket.socket(socket.AF_UNIX); s.connect(path)
s.sendall(msg(1)); feats = struct.unpack("<Q", reply(s)[2])[0]; print("features", hex(feats))
s.sendall(msg(15)); prot = struct.unpack("<Q", reply(s)[2])[0]; print("protocol", hex(prot))
want = (1 << 3) | (1 << 5) | (1 << 9)   # REPLY_ACK, BACKEND_REQ, CONFIG
s.sendall(msg(16, payload=struct.pack("<Q", want)))
fe, be = socket.socketpair()
socket.send_fds(s, [msg(21, flags=1 | 8)], [be.fileno()])
print("backend ack", struct.unpack("<Q", reply(s)[2])[0])
be.close()
sys.stdout.flush()
if mode == "resize":
    fe.settimeout(10)
    req, flags, pl = reply(fe)
    print("backend request", req, "need_reply", bool(flags & 8))
    fe.sendall(msg(req, flags=1 | 4, payload=struct.pack("<Q", 0)))
    s.sendall(msg(24, payload=struct.pack("<III", 0, 8, 0) + bytes(8)))   # GET_CONFIG capacity
    print("capacity", struct.unpack("<Q", reply(s)[2][12:20])[0])
EOF

# 1. listening server, trace, a resize command, SIGTERM
mkfifo "$tmp/cmds"
"$V" serve --socket "$tmp/s1" --trace "$tmp/t1" --size 1M --commands <"$tmp/cmds" 2>"$tmp/serve1.log" &
spid=$!; pids+=("$spid")
exec 3>"$tmp/cmds"
for _ in $(seq 100); do [ -S "$tmp/s1" ] && break; sleep 0.05; done
python3 "$tmp/fe.py" resize "$tmp/s1" >"$tmp/fe1.out" 2>&1 &
fpid=$!; pids+=("$fpid")
for _ in $(seq 100); do grep -q "backend ack" "$tmp/fe1.out" && break; sleep 0.05; done
echo "resize 2M" >&3
wait "$fpid"; frc=$?
[ "$frc" -eq 0 ] && ok "front-end script ran" || { ko "front-end script exit $frc"; cat "$tmp/fe1.out"; }
grep -q "^features 0x374001a44$" "$tmp/fe1.out" && ok "GET_FEATURES answered" || ko "features: $(cat "$tmp/fe1.out")"
grep -q "^backend ack 0$" "$tmp/fe1.out" && ok "SET_BACKEND_REQ_FD acked 0" || ko "no ack"
grep -q "^backend request 2 need_reply True$" "$tmp/fe1.out" && ok "resize: BACKEND_CONFIG_CHANGE_MSG with NEED_REPLY" || ko "no config change: $(cat "$tmp/fe1.out")"
grep -q "^capacity 4096$" "$tmp/fe1.out" && ok "GET_CONFIG after resize: 4096 sectors" || ko "capacity: $(cat "$tmp/fe1.out")"
kill -TERM "$spid"; wait "$spid"; src=$?
exec 3>&-
[ "$src" -eq 0 ] && ok "SIGTERM: exit 0" || ko "SIGTERM: exit $src"
[ ! -e "$tmp/s1" ] && ok "socket file removed" || ko "socket file left behind"
grep -q "stopping on signal 15" "$tmp/serve1.log" && ok "says why it stopped" || ko "log: $(cat "$tmp/serve1.log")"
"$V" check-trace "$tmp/t1" >"$tmp/v1" 2>&1 && ok "its trace is clean: $(tail -1 "$tmp/v1" | sed 's/^[^:]*: //')" || { ko "trace violations"; cat "$tmp/v1"; }
grep -q '^B>F backend BACKEND_CONFIG_CHANGE_MSG need_reply$' "$tmp/t1" && ok "trace has the back-end request" || ko "trace lacks it"

# 2. --connect: the front-end listens; serve reconnects after the first connection ends
python3 "$tmp/fe.py" listen "$tmp/s2" >"$tmp/fe2.out" 2>&1 &
fpid=$!; pids+=("$fpid")
"$V" serve --socket "$tmp/s2" --connect 2>"$tmp/serve2.log" &
spid=$!; pids+=("$spid")
for _ in $(seq 100); do kill -0 "$fpid" 2>/dev/null || break; sleep 0.1; done
grep -q "^conn 1 features" "$tmp/fe2.out" && ok "--connect reconnected for a second connection" || { ko "no reconnect"; cat "$tmp/fe2.out" "$tmp/serve2.log"; }
kill -INT "$spid"; wait "$spid"; src=$?
[ "$src" -eq 0 ] && ok "SIGINT: exit 0" || ko "SIGINT: exit $src"

# 3. the trace is appended to, never cut, and a second serve on a live socket
# leaves the first one's trace alone; an idle server stops at once
"$V" serve --socket "$tmp/s3" --trace "$tmp/t3" 2>"$tmp/serve3.log" &
spid=$!; pids+=("$spid")
for _ in $(seq 100); do [ -S "$tmp/s3" ] && break; sleep 0.05; done
before=$(cat "$tmp/t3")
"$V" serve --socket "$tmp/s3" --trace "$tmp/t3" 2>"$tmp/serve3b.log"; rc2=$?
[ "$rc2" -eq 2 ] && grep -q "cannot listen" "$tmp/serve3b.log" && ok "a second serve on a live socket: exit 2" || ko "second serve: exit $rc2: $(cat "$tmp/serve3b.log")"
[ "$(cat "$tmp/t3")" = "$before" ] && ok "the first server's trace is untouched" || ko "the trace changed: $(cat "$tmp/t3")"
t0=$(date +%s%N)
kill -TERM "$spid"; wait "$spid"; src=$?
ms=$((($(date +%s%N) - t0) / 1000000))
[ "$src" -eq 0 ] && ok "idle server: SIGTERM exit 0 after $ms ms" || ko "idle SIGTERM: exit $src"
"$V" serve --socket "$tmp/s3" --trace "$tmp/t3" --once 2>/dev/null &
spid=$!; pids+=("$spid")
for _ in $(seq 100); do [ -S "$tmp/s3" ] && break; sleep 0.05; done
kill -TERM "$spid"; wait "$spid"
n=$(grep -c '^# vufuzz serve --socket .*(appended)$' "$tmp/t3")
[ "$n" -eq 2 ] && ok "a second run appends to the trace (2 run headers)" || ko "$n run headers in: $(cat "$tmp/t3")"
"$V" serve --socket "$tmp/nobody-listens" --connect 2>"$tmp/serve4.log" &
spid=$!; pids+=("$spid")
for _ in $(seq 50); do grep -q waiting "$tmp/serve4.log" && break; sleep 0.05; done
grep -q "connecting to $tmp/nobody-listens (waiting until it listens" "$tmp/serve4.log" && ok "--connect says it is waiting" || ko "--connect log: $(cat "$tmp/serve4.log")"
kill -TERM "$spid"; wait "$spid"

# 4. usage errors
"$V" serve >/dev/null 2>&1; [ $? -eq 2 ] && ok "no --socket: exit 2" || ko "no --socket"
"$V" serve --socket "$tmp/x" --queues 0 >/dev/null 2>&1; [ $? -eq 2 ] && ok "--queues 0: exit 2" || ko "--queues 0"
"$V" serve --socket "$tmp/x" --disk /nonexistent >/dev/null 2>&1; [ $? -eq 2 ] && ok "missing disk: exit 2" || ko "missing disk"
"$V" serve --socket >"$tmp/u" 2>&1; [ $? -eq 2 ] && grep -q 'option --socket needs a value' "$tmp/u" && [ "$(wc -l <"$tmp/u")" -le 5 ] && ok "a missing value: named, one line of usage" || ko "missing value: $(cat "$tmp/u")"
echo "$pass passed, $fail failed"
[ "$fail" -eq 0 ]
