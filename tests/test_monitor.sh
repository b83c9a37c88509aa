#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# vufuzz monitor between a front-end and `vufuzz serve`, without QEMU
# (tests/test_monitor_qemu.sh has QEMU and qemu-storage-daemon):
#  1. bad arguments and setups: exit 2, one line saying why;
#  2. the hostile SET_BACKEND_REQ_FD seeds of corpus/, played as a front-end
#     over a socket (`vufuzz replay --connect`) through the monitor to
#     `vufuzz serve`: the relay is byte-exact (every message line, bytes and
#     fd kinds, the same on the front-end's side, in the monitor's trace and
#     in the back-end's trace), the monitor reports the front-end's
#     violations, `check-trace` on its traces gives the same ones, and its
#     open fds do not grow;
#  3. the back-end channel both ways (a python front-end, a resize of the
#     device), two front-ends at once, each with its own trace;
#  4. peer death: the back-end killed mid-session, then the front-end: the
#     monitor stays, restarts the --exec back-end and serves the next
#     connection; the front-end killed mid-session: the same;
#  5. SIGTERM: a summary, --json, the exit status, --strict, --once, and no
#     process left behind.
set -uo pipefail
B=${1:?usage: test_monitor.sh BUILD_DIR}
V="$B/vufuzz"
. "$(dirname "$0")/lib.sh"
tmp=$(mktemp -d)
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill -9 "$p" 2>/dev/null; done
  rm -rf "$tmp"
}
trap cleanup EXIT
wait_sock() { for _ in $(seq 200); do [ -S "$1" ] && return 0; sleep 0.05; done; return 1; }
nfds() { ls "/proc/$1/fd" 2>/dev/null | wc -l; }
# the pid of the --exec back-end, from the monitor's log (the last start)
be_pid() { sed -n 's/.*the back-end \(runs\|runs again\) (pid \([0-9]*\)).*/\2/p' "$1" | tail -n 1; }
gone() { for _ in $(seq 100); do kill -0 "$1" 2>/dev/null || return 0; sleep 0.05; done; return 1; }

# ---- 1. usage and setup errors
usage_err() { # DESC WANT ARGS...: exit 2 and WANT in the message
  local desc=$1 want=$2
  shift 2
  "$V" monitor "$@" >"$tmp/u.out" 2>&1
  local rc=$?
  if [ "$rc" -eq 2 ] && grep -q -- "$want" "$tmp/u.out"; then ok "$desc: exit 2"; else
    ko "$desc: exit $rc: $(cat "$tmp/u.out")"; fi
}
usage_err "no --listen" "--listen PATH is required" --connect /x
usage_err "no back-end" "give the back-end" --listen "$tmp/l"
usage_err "both back-ends" "give the back-end" --listen "$tmp/l" --connect /x --exec 'y {socket}'
usage_err "--exec without {socket}" "has no {socket}" --listen "$tmp/l" --exec 'serve'
usage_err "--backend-log without --exec" "goes with --exec" --listen "$tmp/l" --connect /x --backend-log f
usage_err "a bad --ready-timeout" "bad --ready-timeout" --listen "$tmp/l" --exec 'x {socket}' --ready-timeout 0
usage_err "a back-end that exits" "exited with status 3" --listen "$tmp/l" --exec 'echo oops >&2; exit 3 # {socket}'
usage_err "a back-end that never listens" "did not listen" --listen "$tmp/l" --exec 'sleep 30 # {socket}' --ready-timeout 300
"$V" monitor --help | grep -q -- "--exec 'CMD'" && ok "--help documents --exec" || ko "--help"
[ -e "$tmp/l" ] && ko "a failed setup left its socket" || ok "no socket left by the failed setups"

# ---- 2. the hostile SET_BACKEND_REQ_FD seeds through the monitor to serve
mkfifo "$tmp/cmds"
"$V" serve --socket "$tmp/s.sock" --trace "$tmp/serve.trace" --commands <"$tmp/cmds" 2>"$tmp/serve.log" &
spid=$!; pids+=("$spid")
exec 7>"$tmp/cmds"
wait_sock "$tmp/s.sock" || ko "serve does not listen"
"$V" monitor --listen "$tmp/m.sock" --connect "$tmp/s.sock" --trace "$tmp/m.trace" \
  --json "$tmp/m.json" >"$tmp/mon.out" 2>"$tmp/mon.log" &
mpid=$!; pids+=("$mpid")
wait_sock "$tmp/m.sock" && ok "the monitor listens" || ko "the monitor does not listen: $(cat "$tmp/mon.log")"
connected() { grep -c 'a front-end connected' "$tmp/mon.log"; }
closed() { grep -c 'closed by the' "$tmp/mon.log"; }
settle() { # until every connection the monitor accepted is closed
  for _ in $(seq 100); do [ "$(connected)" -eq "$(closed)" ] && return; sleep 0.05; done
}
: >"$tmp/seeds.map"
fds0=""
for f in corpus/backend-req-fd-*.txt; do
  before=$(connected)
  "$V" replay --connect "$tmp/m.sock" "$f" >"$tmp/replay.$(basename "$f")" 2>&1
  settle
  echo "$f $before $(connected)" >>"$tmp/seeds.map"
  [ -z "$fds0" ] && fds0=$(nfds "$mpid")
done
nseeds=$(wc -l <"$tmp/seeds.map")
[ "$nseeds" -ge 19 ] && ok "$nseeds hostile seeds replayed through the monitor" || ko "$nseeds seeds"
kill -0 "$mpid" 2>/dev/null && ok "the monitor survived them" || ko "the monitor died"
fds1=$(nfds "$mpid")
[ -n "$fds0" ] && [ "$fds0" -eq "$fds1" ] && ok "its open fds did not grow ($fds0 after the first seed, $fds1 after all)" \
  || ko "its fds grew: $fds0 -> $fds1"
python3 - "$tmp" <<'PY' && pass=$((pass + 1)) || fail=$((fail + 1))
# The relay is byte-exact: a trace line is a message's exact bytes and fd
# kinds. For each seed, per channel and direction, the lines the sender's
# side has, the monitor's trace and the receiver's side have are the same,
# in the same order; a receiver that closed early read a prefix.
import sys, re
tmp = sys.argv[1]
def msgs(lines):
    out = {}
    for l in lines:
        m = re.match(r"^([FB]>[FB]) (main|backend) ", l)
        if m:
            out.setdefault((m.group(1), m.group(2)), []).append(l.split("#")[0].rstrip())
    return out
def chunks(text):  # one chunk per connection, each starting at its "open main"
    return text.split("\nopen main\n")[1:]
serve = chunks(open(tmp + "/serve.trace").read())
def prefix(x, y):
    return y[:len(x)] == x
bad, seeds, compared = [], 0, 0
for line in open(tmp + "/seeds.map"):
    f, a, b = line.split()
    a, b = int(a), int(b)
    seeds += 1
    fronts = chunks("\n" + open(tmp + "/replay." + f.split("/")[-1]).read())
    if len(fronts) != b - a:
        bad.append("%s: %d connections on the front-end's side, %d in the monitor" % (f, len(fronts), b - a))
        continue
    for i, n in enumerate(range(a + 1, b + 1)):
        front = msgs(fronts[i].splitlines())
        mon = msgs(open(tmp + "/m.trace" + ("" if n == 1 else ".%d" % n)).read().splitlines())
        back = msgs(serve[n - 1].splitlines())
        for (d, ch) in set(front) | set(mon) | set(back):
            fr, mo, ba = front.get((d, ch), []), mon.get((d, ch), []), back.get((d, ch), [])
            compared += len(mo)
            if d == "F>B":  # the monitor read a prefix of what was sent, serve a prefix of that
                okk = prefix(ba, mo) and (prefix(mo, fr) if ch == "main" else True)
            else:           # all that serve sent reached the monitor, a prefix the front-end
                okk = ba == mo and (prefix(fr, mo) if ch == "main" else True)
            if not okk:
                bad.append("%s connection %d %s %s: front %d, monitor %d, back-end %d lines"
                           % (f, n, d, ch, len(fr), len(mo), len(ba)))
for b_ in bad:
    print("FAIL " + b_)
print("ok   byte-exact relay: %d seeds, %d message lines compared on both sides of the monitor" % (seeds, compared))
sys.exit(1 if bad or compared < 200 else 0)
PY
# the violations of the front-end are reported, as check-trace finds them
grep -q 'MUST FD-KIND side=frontend channel=main msg=SET_BACKEND_REQ_FD' "$tmp/mon.out" \
  && ok "the front-end's FD-KIND violations are reported live" || ko "no FD-KIND: $(head "$tmp/mon.out")"
: >"$tmp/offline"
for t in "$tmp"/m.trace*; do "$V" check-trace "$t" | grep -E ': (MUST|SHOULD) ' >>"$tmp/offline"; done
sed -n 's/^conn [0-9]*: //p' "$tmp/mon.out" | sed 's/ channel=[a-z]*//' | sort >"$tmp/live.v"
sort "$tmp/offline" >"$tmp/offline.v"
if [ -s "$tmp/live.v" ] && diff "$tmp/live.v" "$tmp/offline.v" >"$tmp/vdiff"; then
  ok "check-trace on the monitor's traces: the same $(wc -l <"$tmp/live.v") violations, line for line"
else ko "live and offline verdicts differ:"; head -20 "$tmp/vdiff"; fi

# ---- 3. the back-end channel both ways, and two front-ends at once
cat >"$tmp/fe.py" <<'EOF'
import socket, struct, sys, time, os
mode, path = sys.argv[1], sys.argv[2]
def msg(req, flags=1, payload=b""):
    return struct.pack("<III", req, flags, len(payload)) + payload
def reply(s):
    h = s.recv(12, socket.MSG_WAITALL)
    if len(h) < 12:
        return None
    req, flags, size = struct.unpack("<III", h)
    return req, flags, s.recv(size, socket.MSG_WAITALL) if size else b""
s = socket.socket(socket.AF_UNIX); s.connect(path)
s.sendall(msg(1)); print("features", hex(struct.unpack("<Q", reply(s)[2])[0]), flush=True)
if mode == "hold":               # then wait for the other side to go
    print("eof" if reply(s) is None else "data", flush=True)
    time.sleep(60)
elif mode == "two":              # a second request once told to
    while not os.path.exists(sys.argv[3]):
        time.sleep(0.02)
    s.sendall(msg(1)); print("again", hex(struct.unpack("<Q", reply(s)[2])[0]), flush=True)
elif mode == "bch":
    s.sendall(msg(15)); reply(s)
    s.sendall(msg(16, payload=struct.pack("<Q", (1 << 3) | (1 << 5) | (1 << 9))))
    fe, be = socket.socketpair()
    socket.send_fds(s, [msg(21, flags=1 | 8)], [be.fileno()]); be.close()
    print("backend ack", struct.unpack("<Q", reply(s)[2])[0], flush=True)
    fe.settimeout(10)
    req, flags, pl = reply(fe)
    print("backend request", req, "need_reply", bool(flags & 8), flush=True)
    # as QEMU does: the new config first, then the ack on the channel
    s.sendall(msg(24, payload=struct.pack("<III", 0, 8, 0) + bytes(8)))
    print("capacity", struct.unpack("<Q", reply(s)[2][12:20])[0], flush=True)
    fe.sendall(msg(req, flags=1 | 4, payload=struct.pack("<Q", 0)))
    time.sleep(0.2)
EOF
n0=$(connected)
python3 "$tmp/fe.py" bch "$tmp/m.sock" >"$tmp/bch.out" 2>&1 &
fpid=$!; pids+=("$fpid")
for _ in $(seq 100); do grep -q "backend ack" "$tmp/bch.out" && break; sleep 0.05; done
echo "resize 2M" >&7
wait "$fpid"
grep -q "^backend request 2 need_reply True$" "$tmp/bch.out" && grep -q "^capacity 4096$" "$tmp/bch.out" \
  && ok "back-end channel through the monitor: CONFIG_CHANGE out, its reply back, GET_CONFIG after" \
  || ko "back-end channel: $(cat "$tmp/bch.out")"
settle
t="$tmp/m.trace.$((n0 + 1))"
grep -q '^B>F backend BACKEND_CONFIG_CHANGE_MSG need_reply$' "$t" && grep -q '^F>B backend BACKEND_CONFIG_CHANGE_MSG reply u64=0$' "$t" \
  && ok "the monitor's trace has both channels" || ko "trace: $(cat "$t")"
last=$(awk '/^open main$/ {n++} n == c' c="$((n0 + 1))" "$tmp/serve.trace" | grep -E '^[FB]>' )
[ "$(grep -E '^[FB]>' "$t")" = "$last" ] && ok "... and the same message lines as the back-end's own trace" \
  || ko "monitor and back-end traces differ"
# the ack came right after GET_CONFIG: the device read it in time (it once
# waited a second on an idle main channel while the ack sat unread)
! grep -q '^# B timeout' "$tmp/serve.trace" && ok "the device took the ack in time (no timeout note)" \
  || ko "the device gave up on the ack: $(grep '^# B' "$tmp/serve.trace" | tail -3)"
# two at once
python3 "$tmp/fe.py" two "$tmp/m.sock" "$tmp/go" >"$tmp/two1.out" 2>&1 &
f1=$!; pids+=("$f1")
python3 "$tmp/fe.py" two "$tmp/m.sock" "$tmp/go" >"$tmp/two2.out" 2>&1 &
f2=$!; pids+=("$f2")
for _ in $(seq 100); do [ -s "$tmp/two1.out" ] && [ -s "$tmp/two2.out" ] && break; sleep 0.05; done
[ "$(($(connected) - $(closed)))" -eq 2 ] && ok "two connections served at once" || ko "open connections: $(($(connected) - $(closed)))"
touch "$tmp/go"
wait "$f1"; r1=$?; wait "$f2"; r2=$?
[ $r1 -eq 0 ] && [ $r2 -eq 0 ] && grep -q '^again 0x' "$tmp/two1.out" && grep -q '^again 0x' "$tmp/two2.out" \
  && ok "both answered twice" || ko "two: $(cat "$tmp/two1.out" "$tmp/two2.out")"
settle
c=$(connected)
[ "$(grep -c '^F>B main GET_FEATURES$' "$tmp/m.trace.$c")" -eq 2 ] && [ "$(grep -c '^F>B main GET_FEATURES$' "$tmp/m.trace.$((c - 1))")" -eq 2 ] \
  && ok "each with its own trace" || ko "traces of the two"

# ---- 5a. SIGTERM: summary, JSON, exit status (the seeds broke MUST rules: 1)
kill -TERM "$mpid"; wait "$mpid"; mrc=$?
[ "$mrc" -eq 1 ] && ok "SIGTERM after MUST violations: exit 1" || ko "exit $mrc"
grep -q '^vufuzz monitor: [0-9]* connections; messages: main [0-9]* F>B' "$tmp/mon.out" && grep -q '^  MUST   FD-KIND  *[0-9]' "$tmp/mon.out" \
  && ok "a summary: messages per channel, violations by rule" || ko "summary: $(tail -12 "$tmp/mon.out")"
python3 - "$tmp/m.json" <<'PY' && ok "--json: every connection, its violations, the summary" || ko "--json"
import json, sys
j = json.load(open(sys.argv[1]))
c = j["connections"]
assert j["exit"] == 1 and j["summary"]["must"] > 0 and len(c) == j["summary"]["connections"] >= 20
assert any(v["rule"] == "FD-KIND" and v["side"] == "frontend" and v["counts"] for x in c for v in x["violations"])
assert j["summary"]["by_rule"]["FD-KIND"] >= 9 and j["table"]["sha256"]
PY
[ ! -e "$tmp/m.sock" ] && ok "its socket is removed" || ko "socket left"
exec 7>&-
kill -TERM "$spid"; wait "$spid"

# ---- 4. peer death, with an --exec back-end
"$V" monitor --listen "$tmp/d.sock" --exec "$V serve --socket {socket} --size 1M" --trace "$tmp/d.trace" \
  >"$tmp/d.out" 2>"$tmp/d.log" &
mpid=$!; pids+=("$mpid")
wait_sock "$tmp/d.sock" || ko "monitor (exec) does not listen: $(cat "$tmp/d.log")"
be1=$(be_pid "$tmp/d.log")
[ -n "$be1" ] && kill -0 "$be1" && ok "the --exec back-end runs (pid $be1)" || ko "no back-end pid: $(cat "$tmp/d.log")"
"$V" replay --connect "$tmp/d.sock" corpus/handshake.txt >"$tmp/d.r0" 2>&1 && ok "a first session is clean" || ko "first: $(tail -3 "$tmp/d.r0")"
fdsd=$(nfds "$mpid")
python3 "$tmp/fe.py" hold "$tmp/d.sock" >"$tmp/hold.out" 2>&1 &
fpid=$!; pids+=("$fpid")
for _ in $(seq 100); do grep -q features "$tmp/hold.out" && break; sleep 0.05; done
kill -9 "$be1"
for _ in $(seq 100); do grep -q eof "$tmp/hold.out" && break; sleep 0.05; done
grep -q eof "$tmp/hold.out" && ok "the back-end killed mid-session: the front-end sees the close" || ko "hold: $(cat "$tmp/hold.out")"
kill -9 "$fpid"; wait "$fpid" 2>/dev/null
for _ in $(seq 100); do grep -q 'killed by signal 9' "$tmp/d.log" && break; sleep 0.05; done
grep -q 'closed by the back-end' "$tmp/d.log" && grep -q "the back-end (pid $be1) was killed by signal 9 (SIGKILL)" "$tmp/d.log" \
  && ok "the monitor says so: closed by the back-end, killed by SIGKILL" || ko "log: $(cat "$tmp/d.log")"
n=$(sed -n 's/.*connection \([0-9]*\) closed by the back-end.*/\1/p' "$tmp/d.log" | head -n 1)
grep -q '^close main by=B$' "$tmp/d.trace.$n" && ok "its trace: close main by=B" || ko "trace $n: $(tail -3 "$tmp/d.trace.$n")"
kill -0 "$mpid" && ok "the monitor is alive" || ko "the monitor died"
"$V" replay --connect "$tmp/d.sock" corpus/handshake.txt >"$tmp/d.r1" 2>&1 \
  && ok "the next connection is served (the back-end restarted: pid $(be_pid "$tmp/d.log"))" || ko "next: $(tail -3 "$tmp/d.r1"; tail -5 "$tmp/d.log")"
# the front-end killed mid-session
python3 "$tmp/fe.py" hold "$tmp/d.sock" >"$tmp/hold2.out" 2>&1 &
fpid=$!; pids+=("$fpid")
for _ in $(seq 100); do grep -q features "$tmp/hold2.out" && break; sleep 0.05; done
kill -9 "$fpid"; wait "$fpid" 2>/dev/null
for _ in $(seq 100); do [ "$(grep -c 'closed by the front-end' "$tmp/d.log")" -ge 3 ] && break; sleep 0.05; done
be2=$(be_pid "$tmp/d.log")
kill -0 "$be2" && ok "the front-end killed mid-session: the back-end (pid $be2) goes on" || ko "back-end gone"
"$V" replay --connect "$tmp/d.sock" corpus/handshake.txt >"$tmp/d.r2" 2>&1 && ok "and the next connection is served" || ko "next after front-end death"
for _ in $(seq 100); do [ "$(grep -c 'closed by the' "$tmp/d.log")" -ge 6 ] && break; sleep 0.05; done
[ "$(nfds "$mpid")" -eq "$fdsd" ] && ok "the monitor's fds: $fdsd before the deaths, the same after" || ko "fds $fdsd -> $(nfds "$mpid")"
kill -INT "$mpid"; wait "$mpid"; mrc=$?
[ "$mrc" -eq 0 ] && ok "SIGINT: exit 0 (no MUST violation in these sessions)" || { ko "exit $mrc"; cat "$tmp/d.out"; }
gone "$be2" && ok "the --exec back-end is stopped with it" || ko "back-end $be2 left running"

# ---- 5b. --once and --strict: a session whose only violations are SHOULD ones
strictrun() {
  "$V" monitor --listen "$tmp/o.sock" --exec "$V serve --socket {socket}" --once "$@" >"$tmp/o.out" 2>"$tmp/o.log" &
  local p=$!
  pids+=("$p")
  wait_sock "$tmp/o.sock"
  "$V" replay --connect "$tmp/o.sock" corpus/backend-req-fd-need-reply-no-reply-ack.txt >/dev/null 2>&1
  wait "$p"
}
strictrun; rc0=$?
strictrun --strict; rc1=$?
grep -q 'SHOULD GATE-BIT30-NEGOTIATED side=frontend' "$tmp/o.out" && ! grep -qE '^conn [0-9]+: [^ ]+: MUST ' "$tmp/o.out" \
  && ok "a session with SHOULD violations only, printed" || ko "o.out: $(cat "$tmp/o.out")"
[ "$rc0" -eq 0 ] && [ "$rc1" -eq 1 ] && ok "--once exits after it: 0, and 1 with --strict" || ko "--once/--strict: $rc0, $rc1"
echo "$pass passed, $fail failed"
[ "$fail" -eq 0 ]
