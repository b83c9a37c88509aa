#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# Both reference targets give the same verdict: every corpus seed, every
# saved session regression and every bug-zoo reproducer is replayed in process
# (`vufuzz replay`, the inproc target) and over real socket pairs
# (`vufuzz replay --sockets`), and each file's verdict and rule must agree.
# The conversations themselves are compared event for event by
# tests/unit/test_harness.c (targets_agree).
set -uo pipefail
B=${1:?usage: test_targets.sh BUILD_DIR}
V="$B/vufuzz"
. "$(dirname "$0")/lib.sh"
tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT
files=(corpus/*.txt fuzz/regressions/session-*.bin scripts/bench/bugzoo/*.repro.txt)
"$V" replay --json "${files[@]}" >"$tmp/inproc.json" 2>"$tmp/inproc.err"; rc1=$?
"$V" replay --json --sockets "${files[@]}" >"$tmp/socket.json" 2>"$tmp/socket.err"; rc2=$?
[ "$rc1" -eq "$rc2" ] && ok "same exit status ($rc1)" || ko "exit status: inproc $rc1, socket $rc2"
python3 - "$tmp/inproc.json" "$tmp/socket.json" "${#files[@]}" <<'PY' || fail=$((fail + 1))
import json, sys
a = json.load(open(sys.argv[1])); b = json.load(open(sys.argv[2])); n = int(sys.argv[3])
assert a["target"] == "inproc" and b["target"] == "socket", (a["target"], b["target"])
va = {s["file"]: (s["verdict"], s.get("rule")) for s in a["sessions"]}
vb = {s["file"]: (s["verdict"], s.get("rule")) for s in b["sessions"]}
bad = [f for f in va if va[f] != vb.get(f)]
for f in bad:
    print("FAIL %s: inproc %s, socket %s" % (f, va[f], vb.get(f)))
print("ok   %d files replayed by both targets, %d verdicts differ" % (len(va), len(bad)))
clean = sum(1 for v in va.values() if v[0] == "clean")
print("ok   %d of them clean on the reference device" % clean)
sys.exit(1 if bad or len(va) != n else 0)
PY
[ $? -eq 0 ] && pass=$((pass + 1))
echo "$pass passed, $fail failed"
[ "$fail" -eq 0 ]
