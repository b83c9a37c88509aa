#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# vufuzz conform against real processes: the reference device (vufuzz serve),
# a small back-end with bugs put in on purpose (tests/tools/toy_backend.c),
# and qemu-storage-daemon's vhost-user-blk export when it is installed.
# Nothing here says which cases a foreign back-end fails: the reports are
# checked for completeness and form, the toy's bugs for the oracle each one
# must set off.
set -uo pipefail
B=${1:?usage: test_conform.sh BUILD_DIR}
. "$(dirname "$0")/lib.sh"
private_run_dir "$B"

# a report: JSON with every case, JUnit with one testcase per case
check_reports() { # check_reports NAME JSON JUNIT
  python3 - "$@" <<'EOF'
import json, sys, xml.etree.ElementTree as ET
name, jf, xf = sys.argv[1:4]
try:
    r = json.load(open(jf))
except Exception as e:
    print(f"FAIL {name}: JSON report does not parse: {e}"); sys.exit()
cases = r.get("cases", [])
need = {"id", "group", "verdict", "rule", "section"}
bad = [c.get("id") for c in cases if not need <= set(c)]
print(("ok   " if not bad else "FAIL ") + f"{name}: every case has {sorted(need)}" + (f" (not: {bad[:3]})" if bad else ""))
t = r.get("total", {})
n = sum(t.get(k, 0) for k in ("PASS", "WARN", "FAIL", "SKIP", "ERROR"))
print(("ok   " if n == len(cases) and n >= 80 else "FAIL ") + f"{name}: totals add up to the {len(cases)} cases (>= 80)")
fails = [c for c in cases if c["verdict"] == "FAIL"]
print(("ok   " if all(c.get("conversation") for c in fails) else "FAIL ") + f"{name}: each of the {len(fails)} FAIL carries its conversation")
try:
    x = ET.parse(xf).getroot()
    tc = x.findall(".//testcase")
    print(("ok   " if len(tc) == len(cases) else "FAIL ") + f"{name}: JUnit has {len(tc)} testcases for {len(cases)} cases")
    nf = len([t for t in tc if t.find("failure") is not None])
    print(("ok   " if nf == len(fails) else "FAIL ") + f"{name}: JUnit failures {nf} = FAIL verdicts {len(fails)}")
except Exception as e:
    print(f"FAIL {name}: JUnit report does not parse: {e}")
EOF
}

# usage and listing
"$V" conform >/dev/null 2>&1
[ $? -eq 2 ] && ok "no back-end: exit 2" || ko "no back-end: not exit 2"
h=$("$V" conform --help); case $h in *--exec*) ok "--help" ;; *) ko "--help" ;; esac
n=$("$V" conform --list | wc -l)
[ "$n" -ge 80 ] && ok "--list: $n cases" || ko "--list: only $n cases"
g=$("$V" conform --list | awk '{print $1}' | sort -u | tr '\n' ' ')
for grp in handshake initiator header fd gate reply-ack backend memory vring reset; do
  case " $g" in *" $grp "*) ok "group $grp listed" ;; *) ko "group $grp missing ($g)" ;; esac
done
mkdir -p "$T/cases/vring"
printf '# conform: x\n# group: vring\n# accept: bogus\nF>B main GET_FEATURES\n' >"$T/cases/vring/x.txt"
out=$("$V" conform --dir "$T/cases" --exec "$V serve --socket {socket}" 2>&1); rc=$?
[ $rc -eq 2 ] && echo "$out" | grep -q "x.txt:3: error" && ok "a bad case file: file:line, exit 2" || ko "a bad case file: rc=$rc: $out"

# the reference device: every case PASS at --level should; SKIP only for
# what it does not offer
"$V" conform --exec "$V serve --socket {socket}" --device blk --level should \
  --json "$T/serve.json" --junit "$T/serve.xml" >"$T/serve.txt" 2>&1; rc=$?
[ $rc -eq 0 ] && ok "serve: exit 0" || ko "serve: exit $rc: $(grep -E '^(FAIL|WARN|ERROR)' "$T/serve.txt" | head -3)"
python3 - "$T/serve.json" <<'EOF'
import json, sys
r = json.load(open(sys.argv[1]))
c = r["cases"]
bad = [x["id"] for x in c if x["verdict"] not in ("PASS", "SKIP")]
print(("ok   " if not bad else "FAIL ") + f"serve: every case PASS or SKIP (not: {bad[:5]})")
sk = [x for x in c if x["verdict"] == "SKIP"]
why = [x["id"] for x in sk if "not offered" not in x.get("reason", "")]
print(("ok   " if not why else "FAIL ") + f"serve: the {len(sk)} SKIP are for features it does not offer (not: {why[:5]})")
EOF
check_reports serve "$T/serve.json" "$T/serve.xml" >"$T/r.txt"; report_lines "$T/r.txt"
# without --device, the ring-index cases are SKIP, with the reason
"$V" conform --exec "$V serve --socket {socket}" --group vring >"$T/nodev.txt" 2>&1
grep -q "^SKIP 7 cases: needs a device type (--device" "$T/nodev.txt" && ok "no --device: the 7 ring-index cases SKIP, saying why" || ko "no --device: $(grep SKIP "$T/nodev.txt" | head -2)"

# the toy back-end: clean, then each bug set off by its oracle
"$V" conform --exec "$TOY --socket {socket}" --json "$T/toy.json" >"$T/toy.txt" 2>&1; rc=$?
[ $rc -eq 0 ] && ok "toy (no bug): no FAIL" || ko "toy (no bug): exit $rc: $(grep '^FAIL' "$T/toy.txt" | head -3)"
bug() { # bug NAME PATTERN: some FAIL of the run names PATTERN
  "$V" conform --exec "$TOY --socket {socket} --bug $1" --device blk --group "$3" >"$T/bug-$1.txt" 2>&1; local rc=$?
  if [ $rc -eq 1 ] && grep -E "^FAIL" "$T/bug-$1.txt" | grep -q -- "$2"; then
    ok "toy --bug $1: FAIL by $2"
  else
    ko "toy --bug $1: exit $rc, no FAIL naming $2: $(grep -E '^FAIL' "$T/bug-$1.txt" | head -2)"
  fi
}
bug crash "sanitizer" vring
bug oob "sanitizer" vring
bug hang "hang" vring
bug leak "fd-leak" fd
bug exit "exit" handshake
grep -q "runtime error\|AddressSanitizer" "$T/bug-crash.txt" && ok "crash: the back-end's report is quoted" || ko "crash: no sanitizer line in the report"

# a --connect back-end that serves one connection and is gone: the cases
# left are ERROR, quickly, exit 2
"$TOY" --socket "$T/one.sock" --one-shot >/dev/null 2>&1 &
for _ in $(seq 50); do [ -S "$T/one.sock" ] && break; sleep 0.1; done
s=$(date +%s)
"$V" conform --connect "$T/one.sock" --group handshake >"$T/gone.txt" 2>&1; rc=$?
e=$(($(date +%s) - s))
[ $rc -eq 2 ] && grep -q "^ERROR\|ERROR" "$T/gone.txt" && ok "--connect back-end gone: ERROR, exit 2 (${e}s)" || ko "--connect back-end gone: exit $rc"
[ $e -lt 60 ] && ok "gone back-end does not stall the run" || ko "gone back-end: ${e}s"
# a one-connection server under --exec: restarted for every case
"$V" conform --exec "$TOY --socket {socket} --one-shot" --group handshake >"$T/oneshot.txt" 2>&1; rc=$?
[ $rc -eq 0 ] && ok "--exec one-connection server: every case ran" || ko "--exec one-connection server: exit $rc: $(grep -E '^(FAIL|ERROR)' "$T/oneshot.txt" | head -2)"
"$V" conform --connect "$T/none.sock" >"$T/none.txt" 2>&1; rc=$?
[ $rc -eq 2 ] && ok "--connect nobody listening: exit 2" || ko "--connect nobody listening: exit $rc"

# qemu-storage-daemon, when installed: a complete, well-formed report
if command -v qemu-storage-daemon >/dev/null; then
  truncate -s 1M "$T/qsd.img"
  "$V" conform --device blk --json "$T/qsd.json" --junit "$T/qsd.xml" \
    --exec "qemu-storage-daemon --blockdev driver=file,node-name=f0,filename=$T/qsd.img --export type=vhost-user-blk,id=e0,node-name=f0,addr.type=unix,addr.path={socket},writable=on" \
    >"$T/qsd.txt" 2>&1; rc=$?
  [ $rc -le 1 ] && ok "qemu-storage-daemon: exit $rc (0 or 1)" || ko "qemu-storage-daemon: exit $rc: $(tail -3 "$T/qsd.txt")"
  check_reports qsd "$T/qsd.json" "$T/qsd.xml" >"$T/r.txt"; report_lines "$T/r.txt"
  grep -q "^total" "$T/qsd.txt" && ok "qemu-storage-daemon: per-group table" || ko "qemu-storage-daemon: no table"
else
  ko "qemu-storage-daemon is not installed (scripts/lib.sh installs qemu-system-x86)"
fi
no_leftovers
echo "$pass passed, $fail failed"
[ $fail -eq 0 ]
