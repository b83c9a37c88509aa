#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# Golden traces: every rule of the catalogue has RULE.pass.trace and
# RULE.fail.trace in tests/golden/. The set of rule ids check-trace reports
# must equal the file's "# expect:" lines ("none" = no violation). The
# handshake traces in tests/traces/ must be clean, and docs/rules.md fresh.
set -uo pipefail
B=${1:?usage: test_golden.sh BUILD_DIR}
V="$B/vufuzz"
. "$(dirname "$0")/lib.sh"

judge() { # judge FILE: compare reported rule ids (every level) with the expected ones
  local f=$1 want got rc
  want=$(sed -n 's/^# expect: *//p' "$f" | grep -vx none | sort -u | tr '\n' ' ')
  got=$("$V" check-trace --level all "$f" | awk '$2=="MUST"||$2=="SHOULD"||$2=="NOTE"{print $3}' | sort -u | tr '\n' ' ')
  "$V" check-trace --level all "$f" >/dev/null 2>&1; rc=$?
  if [ "$got" != "$want" ]; then ko "$f: reported [${got% }], expected [${want% }]"; return; fi
  if [ -z "$want" ] && [ $rc -ne 0 ]; then ko "$f: exit $rc on a clean trace"; return; fi
  if [ -n "$want" ] && [ $rc -ne 1 ]; then ko "$f: exit $rc, expected 1"; return; fi
  ok "$f [${got% }]"
}

rules=$("$V" rules | awk 'NF>3 {print $1}')
# the level each fail trace's violation is printed with is the catalogue's (or,
# for a per-message rule, the table's sentence's): '# level: L' says which
for f in tests/golden/*.fail.trace; do
  lv=$(sed -n 's/^# level: *//p' "$f")
  r=$(basename "$f"); r=${r%%.*}
  [ -n "$lv" ] || continue
  got=$("$V" check-trace --level all "$f" | awk -v r="$r" '$3==r {print $2; exit}')
  [ "$got" = "$lv" ] && ok "$f: $r at $lv" || ko "$f: $r printed at '$got', expected $lv"
done
n=0
for r in $rules; do
  n=$((n + 1))
  for kind in pass fail; do
    [ -f "tests/golden/$r.$kind.trace" ] || ko "$r has no tests/golden/$r.$kind.trace"
  done
  grep -qx "# expect: $r" "tests/golden/$r.fail.trace" 2>/dev/null || ko "$r.fail.trace does not expect $r"
done
[ "$n" -ge 40 ] && ok "catalogue has $n rules (>= 40)" || ko "catalogue has only $n rules"
# every golden file: RULE.pass.trace, RULE.fail.trace, or a further case RULE.CASE.pass|fail.trace
for f in tests/golden/*.trace; do
  r=$(basename "$f"); r=${r%%.*}
  grep -qx "$r" <<<"$rules" || ko "$f names no catalogue rule"
  judge "$f"
done
for f in tests/traces/*.trace; do judge "$f"; done
# conversations recorded from real QEMU report no MUST
for f in tests/traces/qemu-*.trace; do
  m=$("$V" check-trace --level must "$f" | grep -c ': MUST ')
  rc=$("$V" check-trace --level must "$f" >/dev/null 2>&1; echo $?)
  [ "$m" -eq 0 ] && [ "$rc" -eq 0 ] && ok "$f: no MUST (exit 0 at --level must)" || ko "$f: $m MUST, exit $rc at --level must"
done

# docs/rules.md: the generated part (up to the hand-written marker) is fresh
"$V" rules --format md >/tmp/vuf_rules_$$.md
n=$(wc -l </tmp/vuf_rules_$$.md)
if head -n "$n" docs/rules.md | cmp -s - /tmp/vuf_rules_$$.md; then ok "docs/rules.md is fresh"; else ko "docs/rules.md is stale: run build/vufuzz rules --format md -o docs/rules.md"; fi
rm -f /tmp/vuf_rules_$$.md

# a bad trace is refused with file:line:col and exit 2, never a crash
printf 'F>B main SET_VRING_NUM index=0 nums=1\n' >/tmp/vuf_bad_$$.trace
"$V" check-trace /tmp/vuf_bad_$$.trace 2>/tmp/vuf_bad_$$.err; rc=$?
if [ $rc -eq 2 ] && grep -q "vuf_bad_$$.trace:1:32: error: unknown field 'nums'" /tmp/vuf_bad_$$.err; then ok "bad trace: exit 2 with file:line:col"; else ko "bad trace: exit $rc: $(cat /tmp/vuf_bad_$$.err)"; fi
"$V" check-trace --json tests/golden/FD-NOFD.fail.trace >/tmp/vuf_bad_$$.json
if grep -q '"rule":"FD-NOFD","level":"MUST","side":"frontend"' /tmp/vuf_bad_$$.json && grep -q '"summary":{"must":1,"should":0,"note":0' /tmp/vuf_bad_$$.json && grep -q '"vufuzz":"' /tmp/vuf_bad_$$.json && grep -q '"sha256":"[0-9a-f]\{64\}"' /tmp/vuf_bad_$$.json; then ok "--json report (version, table sha256)"; else ko "--json report: $(cat /tmp/vuf_bad_$$.json)"; fi
"$V" check-trace --junit /tmp/vuf_bad_$$.xml tests/golden/FD-NOFD.fail.trace >/dev/null
if grep -q 'name="FD-NOFD"' /tmp/vuf_bad_$$.xml && grep -q '<failure message=' /tmp/vuf_bad_$$.xml; then ok "--junit report"; else ko "--junit report: $(cat /tmp/vuf_bad_$$.xml)"; fi
rm -f /tmp/vuf_bad_$$.*
echo "$pass passed, $fail failed"
[ "$fail" -eq 0 ]
