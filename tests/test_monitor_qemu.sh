#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# vufuzz monitor between real programs: QEMU 7.2 (TCG, q35, memfd guest
# memory shared with the back-end, SeaBIOS, no guest kernel) as the
# front-end, and as the back-end
#  1. qemu-storage-daemon's vhost-user-blk export (libvhost-user inside),
#  2. vufuzz serve (the reference device).
# The disk holds a boot sector that prints VUFUZZ-BOOT-OK on the serial
# port: SeaBIOS reads it from the back-end through the monitor and runs it,
# so the guest's block I/O got through, data intact. Each run: boot, a
# system_reset (a second boot), with serve a resize that the back-end tells
# on its channel, then QEMU quits. The monitor's trace must hold both
# channels, check-trace on it must give the violations the monitor
# reported live, those must be the ones docs/conformance.md reviews, and no
# process may be left behind.
set -uo pipefail
B=${1:?usage: test_monitor_qemu.sh BUILD_DIR}
V="$B/vufuzz"
. "$(dirname "$0")/lib.sh"
QEMU=${QEMU:-qemu-system-x86_64}
QSD=${QSD:-qemu-storage-daemon}
for p in "$QEMU" "$QSD"; do
  command -v "$p" >/dev/null || { echo "FAIL $p not installed (scripts/test.sh installs it)"; exit 1; }
done
tmp=$(mktemp -d)
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill -9 "$p" 2>/dev/null; done
  [ -n "${VUF_KEEP:-}" ] && cp -r "$tmp" "$VUF_KEEP"
  rm -rf "$tmp"
}
trap cleanup EXIT
wait_sock() { for _ in $(seq 200); do [ -S "$1" ] && return 0; sleep 0.05; done; return 1; }
gone() { for _ in $(seq 100); do kill -0 "$1" 2>/dev/null || return 0; sleep 0.05; done; return 1; }
be_pid() { sed -n 's/.*the back-end runs (pid \([0-9]*\)).*/\1/p' "$1" | head -n 1; }

# The boot sector: cld; xor ax,ax; mov ds,ax; mov si,msg; mov dx,0x3f8;
# print each byte of msg to COM1 until 0; then hlt forever.
mkdisk() {
  { printf '\xfc\x31\xc0\x8e\xd8\xbe\x16\x7c\xba\xf8\x03\xac\x84\xc0\x74\x03\xee\xeb\xf8\xf4\xeb\xfd'
    printf 'VUFUZZ-BOOT-OK\r\n\0'; } >"$1"
  truncate -s 510 "$1"
  printf '\x55\xaa' >>"$1"
  truncate -s 1M "$1"
}
cat >"$tmp/qmp.py" <<'EOF'
import json, socket, sys
s = socket.socket(socket.AF_UNIX); s.connect(sys.argv[1]); f = s.makefile("rw")
def cmd(c):
    f.write(json.dumps(c) + "\n"); f.flush()
    while True:
        r = json.loads(f.readline())
        if "return" in r or "error" in r:
            return r
f.readline()
cmd({"execute": "qmp_capabilities"})
r = cmd({"execute": sys.argv[2]})
sys.exit(0 if "return" in r else 1)
EOF
boots() {
  local n
  n=$(grep -c VUFUZZ-BOOT-OK "$1" 2>/dev/null)
  echo "${n:-0}"
}
wait_boots() { # SERIAL N: until N boots (90 s at most)
  for _ in $(seq 900); do [ "$(boots "$1")" -ge "$2" ] && return 0; sleep 0.1; done
  return 1
}

# one run: NAME, the --exec command, more -chardev options; sets mpid qpid bpid
run() {
  local name=$1 cmd=$2 chardev=${3:-}
  "$V" monitor --listen "$tmp/$name.sock" --exec "$cmd" --backend-log "$tmp/$name.be.log" \
    --trace "$tmp/$name.trace" --json "$tmp/$name.json" >"$tmp/$name.out" 2>"$tmp/$name.log" &
  mpid=$!; pids+=("$mpid")
  wait_sock "$tmp/$name.sock" || ko "$name: the monitor does not listen: $(cat "$tmp/$name.log")"
  bpid=$(be_pid "$tmp/$name.log")
  "$QEMU" -machine q35,accel=tcg -m 256M \
    -object memory-backend-memfd,id=mem,size=256M,share=on -numa node,memdev=mem \
    -chardev socket,id=c0,path="$tmp/$name.sock"$chardev -device vhost-user-blk-pci,chardev=c0 \
    -serial file:"$tmp/$name.serial" -qmp unix:"$tmp/$name.qmp",server=on,wait=off \
    -nodefaults -display none >"$tmp/$name.qemu.log" 2>&1 &
  qpid=$!; pids+=("$qpid")
  if wait_boots "$tmp/$name.serial" 1; then
    ok "$name: the firmware booted the disk through the monitor (its boot sector ran)"
  else
    ko "$name: no boot: $(cat "$tmp/$name.qemu.log" "$tmp/$name.log")"
  fi
}
reset_boot() { # NAME WHAT: a system_reset, and a second boot
  python3 "$tmp/qmp.py" "$tmp/$1.qmp" system_reset
  wait_boots "$tmp/$1.serial" 2 && ok "$1: system_reset, and a second boot${2:-}" || ko "$1: no second boot"
}
finish() { # NAME: QEMU quits, then the monitor is stopped; checks
  local name=$1
  python3 "$tmp/qmp.py" "$tmp/$name.qmp" quit
  for _ in $(seq 200); do kill -0 "$qpid" 2>/dev/null || break; sleep 0.05; done
  for _ in $(seq 100); do grep -q 'closed by the' "$tmp/$name.log" && break; sleep 0.05; done
  kill -TERM "$mpid"; wait "$mpid"; mrc=$?
  if gone "$qpid" && gone "$mpid" && [ -n "$bpid" ] && gone "$bpid"; then
    ok "$name: QEMU, the monitor and the back-end (pid $bpid) stopped, no process left"
  else ko "$name: processes left (qemu $qpid, monitor $mpid, back-end $bpid)"; fi
  local t="$tmp/$name.trace"
  grep -q '^F>B main SET_BACKEND_REQ_FD need_reply fds=socket$' "$t" && grep -q '^open backend$' "$t" \
    && grep -q '^close backend by=' "$t" && ok "$name: the trace has both channels (the back-end channel interposed)" \
    || ko "$name: back-end channel: $(grep backend "$t")"
  # the live verdict, and check-trace's on the trace
  sed -n 's/^conn [0-9]*: //p' "$tmp/$name.out" | sed 's/ channel=[a-z]*//' | sort >"$tmp/$name.live"
  local files=("$t") f
  for f in "$t".[0-9]*; do [ -e "$f" ] && files+=("$f"); done # connection 2 on
  "$V" check-trace "${files[@]}" >"$tmp/$name.check"; crc=$?
  grep -E ': (MUST|SHOULD) ' "$tmp/$name.check" | sort >"$tmp/$name.offline"
  if diff "$tmp/$name.live" "$tmp/$name.offline" >/dev/null; then
    ok "$name: check-trace on the trace: $(tail -n 1 "$tmp/$name.check" | sed 's/^[^:]*: //'), as live"
  else ko "$name: live and offline verdicts differ"; diff "$tmp/$name.live" "$tmp/$name.offline"; fi
}

# ---- 1. QEMU -> monitor -> qemu-storage-daemon
mkdisk "$tmp/qsd.img"
run qsd "$QSD --blockdev driver=file,node-name=disk,filename=$tmp/qsd.img --export type=vhost-user-blk,id=exp0,node-name=disk,addr.type=unix,addr.path={socket},writable=on"
reset_boot qsd
finish qsd
# Every violation seen on this pair is reviewed in docs/conformance.md; a
# new one fails here until it is reviewed there.
sed -n 's/.*: \(MUST\|SHOULD\) \([A-Z0-9-]*\) side=\([a-z]*\) msg=\([A-Z0-9_]*\):.*/\1 \2 \3 \4/p' \
  "$tmp/qsd.offline" | sort -u >"$tmp/qsd.seen"
sed -n '/^<!-- qemu-qsd-violations -->$/,/^<!-- end -->$/p' docs/conformance.md | sed -n 's/^| \(MUST\|SHOULD\) | \([A-Z0-9-]*\) | \([a-z]*\) | \([A-Z0-9_]*\) |.*/\1 \2 \3 \4/p' \
  | sort -u >"$tmp/qsd.reviewed"
if diff "$tmp/qsd.seen" "$tmp/qsd.reviewed" >/dev/null; then
  ok "QEMU <-> qemu-storage-daemon: $(wc -l <"$tmp/qsd.seen") kinds of violation seen, each reviewed in docs/conformance.md"
else
  ko "violations seen vs reviewed in docs/conformance.md:"; diff "$tmp/qsd.seen" "$tmp/qsd.reviewed"
fi
[ "$mrc" -le 1 ] && ok "qsd: the monitor exits $mrc" || ko "qsd: the monitor exits $mrc"

# ---- 2. QEMU -> monitor -> vufuzz serve, a resize on the back-end channel
mkdisk "$tmp/serve.img"
run serve "$V serve --socket {socket} --disk $tmp/serve.img --trace $tmp/serve.back.trace"
reset_boot serve
truncate -s 2M "$tmp/serve.img"
kill -USR1 "$bpid" # serve re-reads the disk's size and tells the front-end
for _ in $(seq 200); do grep -q '^F>B backend BACKEND_CONFIG_CHANGE_MSG reply' "$tmp/serve.trace" && break; sleep 0.05; done
grep -q '^B>F backend BACKEND_CONFIG_CHANGE_MSG need_reply$' "$tmp/serve.trace" \
  && grep -q '^F>B backend BACKEND_CONFIG_CHANGE_MSG reply u64=0$' "$tmp/serve.trace" \
  && ok "serve: a resize: CONFIG_CHANGE on the back-end channel, QEMU's ack back" || ko "serve: no config change: $(grep backend "$tmp/serve.trace")"
finish serve
# QEMU's one reviewed SHOULD (docs/conformance.md), nothing else
if [ "$mrc" -eq 0 ] && ! grep -vq ': SHOULD GATE-BIT30-NEGOTIATED side=frontend msg=SET_BACKEND_REQ_FD:' "$tmp/serve.live"; then
  ok "serve: no MUST, only the reviewed SHOULD ($(wc -l <"$tmp/serve.live")), exit 0"
else ko "serve: exit $mrc"; cat "$tmp/serve.out"; fi
if [ "$(grep -E '^[FB]>' "$tmp/serve.trace")" = "$(grep -E '^[FB]>' "$tmp/serve.back.trace")" ]; then
  ok "serve: the monitor's trace and the back-end's own: the same $(grep -cE '^[FB]>' "$tmp/serve.trace") message lines"
else ko "serve: the traces differ"; diff <(grep -E '^[FB]>' "$tmp/serve.trace") <(grep -E '^[FB]>' "$tmp/serve.back.trace") | head; fi

# ---- 3. the back-end dies under a running guest; QEMU reconnects
# (reconnect=1): the monitor restarts the --exec back-end for the new
# connection, and the guest's next boot reads the disk through it
mkdisk "$tmp/rec.img"
run rec "$V serve --socket {socket} --disk $tmp/rec.img" ",reconnect=1"
kill -9 "$bpid"
for _ in $(seq 200); do grep -q 'connection 2: a front-end connected' "$tmp/rec.log" && break; sleep 0.05; done
grep -q 'connection 1 closed by the back-end' "$tmp/rec.log" && grep -q 'connection 2: a front-end connected' "$tmp/rec.log" \
  && ok "rec: the back-end killed: connection 1 closed by it, QEMU reconnected (connection 2)" || ko "rec: $(cat "$tmp/rec.log")"
grep -q 'the back-end runs again' "$tmp/rec.log" && ok "rec: the back-end was restarted for it" || ko "rec: no restart"
for _ in $(seq 200); do grep -q '^F>B main SET_VRING_ENABLE index=0 num=1$' "$tmp/rec.trace.2" 2>/dev/null && break; sleep 0.05; done
reset_boot rec " through the new connection"
bpid=$(sed -n 's/.*the back-end runs again (pid \([0-9]*\)).*/\1/p' "$tmp/rec.log" | tail -n 1)
finish rec
"$V" check-trace "$tmp/rec.trace.2" >"$tmp/rec.check2" && ok "rec: connection 2's trace: $(tail -n 1 "$tmp/rec.check2" | sed 's/^[^:]*: //')" \
  || { ko "rec: connection 2"; cat "$tmp/rec.check2"; }
echo "$pass passed, $fail failed"
[ "$fail" -eq 0 ]
