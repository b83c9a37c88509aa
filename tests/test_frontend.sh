#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# Front-end fuzzing (`vufuzz fuzz-frontend`, `vufuzz replay --frontend-exec`):
#   - every oracle shown on the tests' own front-end (tests/tools/toy_frontend.c,
#     bugs put in on purpose, so no bug of QEMU is assumed): one hostile
#     reply or back-end request each for a crash (an assert on a reply's
#     size), a hang (a back-end request that sends it into a loop that
#     ignores SIGTERM) and a MUST violation (its reply to a back-end request
#     with another id); the same sessions are clean on the toy without its
#     bugs, and the unmutated session is clean on the toy with them;
#   - back-end sessions round-trip through the binary form;
#   - QEMU 7.2 (-S, TCG, Debian's): the unmutated session (the reference
#     device's behaviour) is clean for blk and net, with --firmware SeaBIOS
#     gets block requests served, a reply held back is
#     not QEMU's hang (the back-end hangs up), its two findings (MUST
#     violations, docs/frontend-fuzzing.md) are reported, and a short
#     campaign with a fixed seed gives no finding;
#   - no process is left behind (the QEMU command carries a marker).
#   tests/test_frontend.sh BUILD_DIR
set -uo pipefail
B=${1:?usage: test_frontend.sh BUILD_DIR}
V="$B/vufuzz" T="$B/tests/toy_frontend"
. "$(dirname "$0")/lib.sh"
QEMU=${QEMU:-qemu-system-x86_64}
tmp=$(mktemp -d)
marker="vufuzz-test-frontend-$$"
cleanup() {
  # anything a failed check left running: only what carries this run's marker
  for p in $(pgrep -f "$marker|$T --socket"); do kill -9 "$p" 2>/dev/null; done
  rm -rf "$tmp"
}
trap cleanup EXIT
[ -x "$T" ] || { ko "no $T (built by tests/CMakeLists.txt)"; echo "$pass passed, $fail failed"; exit 1; }

# run NAME WANT_RC GREP_RE CMD...: the command's exit status and a line of its output
run() {
  local name=$1 want=$2 re=$3 rc=0
  shift 3
  timeout 120 "$@" >"$tmp/$name.out" 2>&1 || rc=$?
  if [ "$rc" = "$want" ] && grep -qE -- "$re" "$tmp/$name.out"; then
    ok "$name"
  else
    ko "$name: exit $rc (want $want), no line matching '$re'; output:"
    tail -15 "$tmp/$name.out" | sed 's/^/     /'
  fi
}

cat >"$tmp/empty.txt" <<'EOF'
role backend
EOF
# a u64 reply whose header says 4 bytes
cat >"$tmp/crash.txt" <<'EOF'
role backend
F>B main GET_FEATURES
B>F main GET_FEATURES reply hdr.size=4
EOF
# a back-end channel request the toy has no use for
cat >"$tmp/abort.txt" <<'EOF'
role backend
F>B main SET_BACKEND_REQ_FD
B>F backend BACKEND_IOTLB_MSG
EOF
# a back-end channel request with an id beyond the table's
cat >"$tmp/hang.txt" <<'EOF'
role backend
F>B main SET_BACKEND_REQ_FD
B>F backend 70
EOF
# a back-end channel request with NEED_REPLY
cat >"$tmp/must.txt" <<'EOF'
role backend
F>B main SET_BACKEND_REQ_FD
B>F backend BACKEND_CONFIG_CHANGE_MSG need_reply
EOF

# a request whose header says more than its bytes, sent twice without
# waiting: the front-end frames the second one's first bytes into the first
# (the back-end's doing: not the front-end's missing or mismatched reply)
cat >"$tmp/pipelined.txt" <<'EOF'
role backend
F>B main SET_BACKEND_REQ_FD
B>F backend BACKEND_VRING_ERR need_reply hdr.size=0x10
B>F backend BACKEND_VRING_ERR need_reply hdr.size=0x10
EOF
# three requests with NEED_REPLY, none waiting for its reply: the toy answers
# them in order, correctly; the order is not judged
cat >"$tmp/three.txt" <<'EOF'
role backend
F>B main SET_BACKEND_REQ_FD
B>F backend BACKEND_CONFIG_CHANGE_MSG need_reply
B>F backend BACKEND_VRING_HOST_NOTIFIER_MSG need_reply
B>F backend BACKEND_CONFIG_CHANGE_MSG need_reply
EOF

toy="$T --socket {socket}"
bugs="--bug crash --bug abort --bug hang --bug badid"
fast=(--hang-timeout 1000)
run oracle-crash 1 'FINDING crash .*SIGABRT.*Assertion' \
  "$V" replay --frontend-exec "$toy $bugs" "${fast[@]}" "$tmp/crash.txt"
run oracle-signal 1 'FINDING crash crash .*killed by signal 6 \(SIGABRT\)' \
  "$V" replay --frontend-exec "$toy $bugs" "${fast[@]}" "$tmp/abort.txt"
run oracle-hang 1 'FINDING hang .*did not exit within 1000 ms of SIGTERM' \
  "$V" replay --frontend-exec "$toy $bugs" "${fast[@]}" "$tmp/hang.txt"
run oracle-hang-qmp 1 'FINDING hang .*did not answer QMP query-status within 1000 ms' \
  "$V" replay --frontend-exec "$toy --qmp {qmp} $bugs" "${fast[@]}" "$tmp/hang.txt"
run unmutated-clean-with-qmp 0 'clean .*exited with status 0' \
  "$V" replay --frontend-exec "$toy --qmp {qmp} $bugs" "${fast[@]}" "$tmp/empty.txt"
run oracle-must 1 'FINDING must REPLY-ID-MISMATCH' \
  "$V" replay --frontend-exec "$toy $bugs" "${fast[@]}" "$tmp/must.txt"
run unmutated-clean-on-buggy-toy 0 'clean .*exited with status 0' \
  "$V" replay --frontend-exec "$toy $bugs" "${fast[@]}" "$tmp/empty.txt"
for s in crash abort hang must; do
  run "$s-clean-without-bug" 0 'clean' \
    "$V" replay --frontend-exec "$toy" "${fast[@]}" "$tmp/$s.txt"
done
run pipelined-oversized-requests-clean 0 'clean' \
  "$V" replay --frontend-exec "$toy" "${fast[@]}" "$tmp/pipelined.txt"
run three-pipelined-requests-clean 0 'clean' \
  "$V" replay --frontend-exec "$toy" "${fast[@]}" "$tmp/three.txt"
# the back-end's refusal to the front-end's error exit is no finding, the
# crash above is one: the status decides, not the session
grep -q 'exited with status 1' "$tmp/crash-clean-without-bug.out" &&
  ok "the toy without its bug refuses the short reply (exit 1, not a finding)" ||
  ko "the toy without its bug did not refuse the short reply"
# a finding is reproduced by its saved session: fuzz-frontend --minimize
run minimize 1 'FINDING crash' \
  "$V" fuzz-frontend --exec "$toy $bugs" "${fast[@]}" --minimize "$tmp/crash.txt" -o "$tmp/crash.min.txt"
[ -s "$tmp/crash.min.txt" ] && grep -q 'hdr.size=4' "$tmp/crash.min.txt" &&
  ok "minimize keeps the hostile reply" || ko "minimize: no $tmp/crash.min.txt with the reply"

# a campaign against the toy (with QMP): its corpus reads back, every entry
# (text where the text says the same session, else binary)
run toy-campaign 0 '^corpus .*findings: 0' \
  "$V" fuzz-frontend --exec "$toy --qmp {qmp}" --runs 30 --seed 5 --quiet \
  --corpus "$tmp/corpus" --findings "$tmp/toy-findings"
if "$V" session check "$tmp/corpus"/* >"$tmp/corpus-check.out" 2>&1 && [ "$(ls "$tmp/corpus" | wc -l)" -gt 1 ]; then
  ok "the campaign's corpus reads back ($(ls "$tmp/corpus" | wc -l) files)"
else
  ko "the campaign's corpus does not read back:"
  head -5 "$tmp/corpus-check.out" | sed 's/^/     /'
fi

# back-end sessions: text -> binary -> text
cat >"$tmp/rt.txt" <<'EOF'
role backend
F>B main GET_FEATURES
B>F main GET_FEATURES reply u64=0x1 hdr.flags=0x5
F>B main SET_BACKEND_REQ_FD
B>F backend BACKEND_CONFIG_CHANGE_MSG need_reply
delay 5
F>B backend BACKEND_CONFIG_CHANGE_MSG
close backend by=B
close main by=B
EOF
if "$V" session encode "$tmp/rt.txt" -o "$tmp/rt.bin" 2>"$tmp/rt.err" &&
  "$V" session decode "$tmp/rt.bin" -o "$tmp/rt2.txt" 2>>"$tmp/rt.err" &&
  "$V" session encode "$tmp/rt2.txt" -o "$tmp/rt2.bin" 2>>"$tmp/rt.err" &&
  cmp -s "$tmp/rt.bin" "$tmp/rt2.bin" && head -1 "$tmp/rt2.txt" | grep -q '^role backend'; then
  ok "back-end sessions round-trip (text, binary, text)"
else
  ko "back-end session round trip:"
  cat "$tmp/rt.err" "$tmp/rt2.txt" 2>/dev/null | sed 's/^/     /'
fi
run never-connects-is-an-error 2 'exited with status 1 before it connected' \
  "$V" fuzz-frontend --exec "false {socket}" --runs 1 --quiet
printf 'role backend\nF>B main NOPE\n' >"$tmp/bad.txt"
run bad-session-file-line 2 'bad.txt:2:10: error: unknown message' \
  "$V" replay --frontend-exec "$toy" "$tmp/bad.txt"
run replay-needs-frontend 2 'not a back-end session|role backend' \
  "$V" replay --frontend-exec "$toy" "${fast[@]}" corpus/backend-reply-nack.txt

# QEMU: the reference behaviour is clean; a short campaign finds nothing
if ! command -v "$QEMU" >/dev/null; then
  ko "$QEMU not installed (scripts/test.sh installs qemu-system-x86)"
else
  common="-machine q35,accel=tcg -m 64M -object memory-backend-memfd,id=mem,size=64M,share=on -numa node,memdev=mem -nographic -nodefaults -display none -name $marker"
  qblk="$QEMU $common -chardev socket,id=c0,path={socket} -device vhost-user-blk-pci,chardev=c0"
  qnet="$QEMU $common -chardev socket,id=c0,path={socket} -netdev vhost-user,chardev=c0,id=n0 -device virtio-net-pci,netdev=n0"
  run qemu-blk-unmutated-clean 0 'clean .*exited with status 0' \
    "$V" replay --frontend-exec "$qblk" "$tmp/empty.txt" "$tmp/empty.txt"
  grep -q 'F>B main SET_BACKEND_REQ_FD' "$tmp/qemu-blk-unmutated-clean.out" &&
    ok "QEMU (blk) ran the handshake with vufuzz as its back-end" ||
    ko "QEMU (blk): no SET_BACKEND_REQ_FD in the conversation"
  run qemu-net-unmutated-clean 0 'clean .*exited with status 0' \
    "$V" replay --frontend-exec "$qnet" --device net "$tmp/empty.txt"
  # a reply held back: QEMU waits for it in device realize, before its main
  # loop (and QMP) runs; the back-end hangs up at the end of the session
  # and QEMU goes on: waiting on its peer is no hang
  printf 'role backend\nF>B main GET_QUEUE_NUM\nB>F main GET_QUEUE_NUM reply truncate=0\n' >"$tmp/held.txt"
  run qemu-held-reply-no-hang 0 'clean' \
    "$V" replay --frontend-exec "$qblk" "$tmp/held.txt"
  grep -q 'close main by=B' "$tmp/qemu-held-reply-no-hang.out" &&
    ok "the back-end hung up on the reply it held back" ||
    ko "no 'close main by=B' after the held reply"
  # firmware-driven I/O: SeaBIOS starts the rings and reads the boot disk
  run qemu-blk-firmware 0 '^corpus .*findings: 0' \
    "$V" fuzz-frontend --exec "$qblk" --firmware --runs 1 --seed 7 --quiet \
    --findings "$tmp/findings" --json "$tmp/firmware.json"
  grep -qE '"block_requests":[1-9]' "$tmp/firmware.json" &&
    ok "the firmware's block requests reached the device" ||
    ko "no block request with --firmware: $(cat "$tmp/firmware.json" 2>/dev/null)"
  # the MUST oracle on QEMU: its finding (docs/frontend-fuzzing.md)
  run qemu-finding-inband-notifications 1 'FINDING must FEAT-DEPENDENCY .*INBAND_NOTIFICATIONS without BACKEND_REQ' \
    "$V" replay --frontend-exec "$qblk" docs/frontend-findings/qemu-7.2-inband-notifications.txt
  run qemu-finding-reply-flags-echo 1 'FINDING must HDR-VERSION .*version 0' \
    "$V" replay --frontend-exec "$qnet" --device net docs/frontend-findings/qemu-7.2-reply-flags-echo.txt
  # the ack of SET_BACKEND_REQ_FD replaced by nothing: QEMU waits, whatever
  # the checker thinks is owed (its gate was not met), and is no hang
  printf 'role backend\nF>B main SET_BACKEND_REQ_FD\nB>F main 11 reply truncate=0\n' >"$tmp/held2.txt"
  run qemu-net-held-ack-no-hang 0 'clean' \
    "$V" replay --frontend-exec "$qnet" --device net "$tmp/held2.txt"
  run qemu-blk-campaign 0 '^corpus .*findings: 0' \
    "$V" fuzz-frontend --exec "$qblk" --runs 12 --seed 7 --quiet \
    --findings "$tmp/findings" --json "$tmp/campaign.json"
  ran=$(sed -n 's/.*"sessions":\([0-9]*\).*"bad_inputs":\([0-9]*\).*/\1 \2/p' "$tmp/campaign.json")
  # --runs counts sessions and bad inputs (mutations that do not build)
  if [ -n "$ran" ] && [ $((${ran% *} + ${ran#* })) -eq 12 ] && [ "${ran% *}" -ge 6 ]; then
    ok "the campaign ran 12 sessions ($ran: played, bad inputs)"
  else
    ko "the campaign's report: $(cat "$tmp/campaign.json" 2>/dev/null)"
  fi
fi

sleep 0.2
left=$(pgrep -f "$marker|$T --socket" | tr '\n' ' ')
[ -z "$left" ] && ok "no front-end left behind" || ko "processes left behind: $left"
echo "$pass passed, $fail failed"
[ "$fail" -eq 0 ]
