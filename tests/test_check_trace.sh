#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# check-trace as a CI job runs it: several files with per-file and total
# results, --side, --level and the exit status that follows it, a cut capture
# reported as incomplete, real lines, bad input (a directory, /dev/zero) as
# exit 2, --device, JSON and JUnit reports; and `vufuzz trace print`.
set -uo pipefail
B=${1:?usage: test_check_trace.sh BUILD_DIR}
V="$B/vufuzz"
. "$(dirname "$0")/lib.sh"
tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT
out="$tmp/out"
run() { # run CMD...: output in $out, exit status in $rc
  "$@" >"$out" 2>&1; rc=$?
}
expect() { # expect DESC RC [PATTERN...]: the last run's exit status and output lines
  local desc=$1 want=$2 p; shift 2
  if [ "$rc" -ne "$want" ]; then ko "$desc: exit $rc, want $want"; sed 's/^/     /' "$out" | head -20; return; fi
  for p in "$@"; do
    if ! grep -qE -- "$p" "$out"; then ko "$desc: no /$p/ in:"; sed 's/^/     /' "$out" | head -20; return; fi
  done
  ok "$desc (exit $rc)"
}

g=tests/golden
run "$V" check-trace $g/FD-NOFD.pass.trace $g/FD-NOFD.fail.trace
expect "two files: per-file results and a total" 1 \
  "^$g/FD-NOFD.pass.trace: 2 events, 0 MUST, 0 SHOULD and 0 NOTE" \
  "^$g/FD-NOFD.fail.trace:4: MUST FD-NOFD side=frontend msg=SET_VRING_CALL: 1 fd with the no-fd bit set \(expected 0\)" \
  "^total: 2 files, 1 failing at --level must, 0 unreadable, 0 incomplete; 1 MUST, 0 SHOULD and 0 NOTE$"
run "$V" check-trace $g/FD-NOFD.pass.trace $g/FD-COUNT.pass.trace
expect "two clean files" 0 "^total: 2 files, 0 failing"

# --side: a back-end's CI is not failed by its front-end's violations
run "$V" check-trace --side backend $g/FD-NOFD.fail.trace
expect "--side backend: the front-end's MUST is left out" 0 "0 MUST, 0 SHOULD and 0 NOTE by the backend \(1 by the other side not shown\)"
run "$V" check-trace --side frontend $g/FD-NOFD.fail.trace
expect "--side frontend: counted" 1 "MUST FD-NOFD"
run "$V" check-trace --side backend $g/REPLY-MISSING.fail.trace
expect "--side backend: the back-end's own" 1 "MUST REPLY-MISSING side=backend"
run "$V" check-trace --side both $g/FD-NOFD.fail.trace
expect "--side both is no side" 2 "bad --side 'both' \(expected frontend or backend\)" "Try 'vufuzz check-trace --help'"

# --level: the exit status follows it
run "$V" check-trace $g/GATE-BIT30-NEGOTIATED.fail.trace
expect "a SHOULD passes at the default level (must), still shown" 0 "SHOULD GATE-BIT30-NEGOTIATED"
run "$V" check-trace --level should $g/GATE-BIT30-NEGOTIATED.fail.trace
expect "a SHOULD fails at --level should" 1 "SHOULD GATE-BIT30-NEGOTIATED"
run "$V" check-trace --level should $g/VALUE-IN.mem-table-padding.fail.trace
expect "a NOTE, reported apart, passes at --level should" 0 "notes \(checks the spec does not state" "NOTE VALUE-IN .*\(spec: not stated\)"
run "$V" check-trace --level all $g/VALUE-IN.mem-table-padding.fail.trace
expect "a NOTE fails at --level all" 1 "NOTE VALUE-IN"
run "$V" check-trace --level sometimes $g/FD-NOFD.fail.trace
expect "a bad --level" 2 "bad --level 'sometimes' \(expected must, should or all\)"
run "$V" check-trace --level
expect "--level without its value" 2 "option --level needs a value"

# a capture cut off mid-conversation: incomplete, not a violation; every
# violation has a real line
run "$V" check-trace $g/REPLY-MISSING.incomplete.pass.trace
expect "a cut capture is incomplete" 0 ":[1-9][0-9]*: incomplete: the capture ends while the backend owes a reply to GET_FEATURES on the main channel" ", incomplete"
run "$V" check-trace --level all $g/*.fail.trace
grep -qE '^[^ ]+\.trace:0: ' "$out" && ko "a violation at line 0" || ok "no violation at line 0 in $(ls $g/*.fail.trace | wc -l) fail traces"

# bad input: exit 2, quickly
run "$V" check-trace tests
expect "a directory is an error" 2 "tests: error: .*directory"
start=$(date +%s%N)
run "$V" check-trace /dev/zero
ms=$(( ($(date +%s%N) - start) / 1000000 ))
expect "/dev/zero is refused" 2 "/dev/zero: error:"
[ "$ms" -lt 2000 ] && ok "/dev/zero refused in $ms ms" || ko "/dev/zero took $ms ms"
run "$V" check-trace $g/FD-NOFD.pass.trace tests $g/FD-NOFD.fail.trace
expect "an unreadable file among others: exit 2, the others judged" 2 "MUST FD-NOFD" "1 unreadable"
printf 'F>B main SET_VRING_NUM index=0 nums=1\n' >"$tmp/bad.trace"
run "$V" check-trace "$tmp/bad.trace"
expect "a malformed trace: file:line:col" 2 "bad.trace:1:32: error: unknown field 'nums'"

# the FD-COUNT text names the count it expects
run "$V" check-trace $g/FD-COUNT.fail.trace
expect "FD-COUNT: 'expected 1', not '11'" 1 "MUST FD-COUNT .*, expected 1 "

# --device: how queues count; overrides the trace's device line
run "$V" check-trace --device net $g/VRING-INDEX.fail.trace
expect "--device net: ring 2 of 2 queue pairs is fine" 0 "0 MUST, 0 SHOULD"
run "$V" check-trace --device toaster $g/VRING-INDEX.fail.trace
expect "an unknown --device" 2 "unknown --device 'toaster' \(expected blk, net"
run "$V" check-trace $g/VRING-INDEX.no-device.pass.trace
expect "no device type: said" 0 "no device type: ring indices not judged"

# reports
run "$V" check-trace --json --level must $g/FD-NOFD.fail.trace $g/GATE-BIT30-NEGOTIATED.fail.trace
expect "--json: version, table, files, total, exit" 1 '^\{"vufuzz":"[0-9]' '"table":\{"file":"built-in","sha256":"[0-9a-f]{64}"\}' \
  '"level":"must","side":"both","files":\[\{"file":"tests/golden/FD-NOFD.fail.trace"' \
  '"rule":"GATE-BIT30-NEGOTIATED","level":"SHOULD".*"counts":false' '"total":\{"files":2,"failing":1' '"exit":1\}$'
run "$V" check-trace --junit "$tmp/r.xml" $g/FD-NOFD.fail.trace $g/FD-NOFD.pass.trace
cp "$tmp/r.xml" "$out"; rc=0
expect "--junit: a suite per file" 0 '<testsuite name="tests/golden/FD-NOFD.fail.trace" tests="[0-9]+" failures="1"' \
  '<testsuite name="tests/golden/FD-NOFD.pass.trace" tests="[0-9]+" failures="0"' '<failure message="MUST FD-NOFD'

# trace print: names and decoded fields
run "$V" trace print $g/GATE-VIRTIO.pass.trace
expect "trace print" 0 "F>B main +SET_MEM_TABLE \(id 5\) request, need_reply, 40 bytes, 1 fd: memfd" \
  "^      regions\[0\].user_addr +0x7f0000000000$" "IOTLB_MSG \(id 22\) request, 32 bytes"
run "$V" trace print "$tmp/bad.trace"
expect "trace print of a bad file" 2 "bad.trace:1:32: error"
run "$V" trace frob
expect "trace with an unknown subcommand" 2 "unknown subcommand 'frob'"

echo "$pass passed, $fail failed"
[ "$fail" -eq 0 ]
