#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# vufuzz fuzz against processes over their socket: a back-end with a bug put
# in on purpose (tests/tools/toy_backend.c --bug crash) is found, the finding
# saved, replayed and minimized; the reference device (vufuzz serve) gives no
# finding; qemu-storage-daemon runs briefly with a well-formed report; an
# AFL++-instrumented back-end fills the edge map (--coverage).
set -uo pipefail
B=${1:?usage: test_fuzz_external.sh BUILD_DIR}
. "$(dirname "$0")/lib.sh"
private_run_dir "$B"
stat_of() { python3 -c "import json,sys; print(json.load(open(sys.argv[1]))[sys.argv[2]])" "$@"; }

"$V" fuzz >/dev/null 2>&1
[ $? -eq 2 ] && ok "no back-end: exit 2" || ko "no back-end: not exit 2"
h=$("$V" fuzz --help); case $h in *--coverage*) ok "fuzz --help" ;; *) ko "fuzz --help" ;; esac
h=$("$V" minimize --help); case $h in *--runs*) ok "minimize --help" ;; *) ko "minimize --help" ;; esac
"$V" fuzz --exec "$T/nonexistent {socket}" --seconds 2 --out "$T/x" >"$T/x.txt" 2>&1; rc=$?
[ $rc -eq 2 ] && grep -q "exited with status 127" "$T/x.txt" && ok "a back-end that does not start: exit 2, says why" || ko "a back-end that does not start: exit $rc"

# the crash: found, saved, replayed, minimized
"$V" fuzz --exec "$TOY --socket {socket} --bug crash" --seconds 20 --seed 1 --out "$T/crash" \
  >"$T/crash.txt" 2>&1; rc=$?
f=$(ls "$T"/crash/findings/sanitizer-*.txt 2>/dev/null | head -1)
[ $rc -eq 1 ] && [ -n "$f" ] && ok "toy --bug crash: found ($(basename "$f"))" || ko "toy --bug crash: exit $rc, no sanitizer finding: $(tail -2 "$T/crash.txt")"
if [ -n "$f" ]; then
  base=${f%.txt}
  grep -q "runtime error\|AddressSanitizer" "$base.log" && ok "finding: the back-end's report in .log" || ko "finding: no report in $base.log"
  [ "$(stat_of "$base.json" reproduced)" = True ] && ok "finding: reproduced on a second run" || ko "finding: not reproduced"
  grep -q "^open main" "$base.trace" && ok "finding: its trace" || ko "finding: no trace"
  # the toy reads a stream sent without waiting in pieces that depend on
  # timing, so a long session may take it down another path: up to 3 tries
  for try in 1 2 3; do
    "$V" replay --exec "$TOY --socket {socket} --bug crash" --quiet "$f" >"$T/replay.txt" 2>&1; rc=$?
    [ $rc -eq 1 ] && break
  done
  [ $rc -eq 1 ] && grep -q "FINDING sanitizer" "$T/replay.txt" && ok "replay --exec reproduces it (try $try)" || ko "replay --exec: exit $rc"
  "$V" minimize --exec "$TOY --socket {socket} --bug crash" --quiet -o "$T/min.txt" "$f" >"$T/min.out" 2>&1; rc=$?
  n0=$(grep -c '^F>B\|^B>F\|^[a-z]' "$f"); n1=$(grep -c '^F>B\|^B>F\|^[a-z]' "$T/min.txt" 2>/dev/null)
  [ $rc -eq 0 ] && [ "${n1:-99}" -lt "$n0" ] && ok "minimize: $n0 -> $n1 lines" || ko "minimize: exit $rc, $n0 -> ${n1:-?} lines"
  "$V" replay --exec "$TOY --socket {socket} --bug crash" --quiet "$T/min.txt" >/dev/null 2>&1
  [ $? -eq 1 ] && ok "the minimized session still crashes it" || ko "the minimized session does not reproduce"
  "$V" minimize --exec "$TOY --socket {socket}" --quiet "$f" >/dev/null 2>&1
  [ $? -eq 1 ] && ok "minimize: no finding without the bug, exit 1" || ko "minimize without the bug: not exit 1"
fi
python3 -c "import json,sys; d=json.load(open(sys.argv[1])); assert d['runs']>0 and d['exit']==1 and 'table' in d" "$T/crash/stats.json" 2>/dev/null \
  && ok "stats.json well-formed" || ko "stats.json: $(cat "$T/crash/stats.json" 2>/dev/null | head -c 300)"
grep -q "runs (.*/s), states" "$T/crash.txt" && ok "progress lines" || ko "no progress lines"

# the reference device: no finding (two workers sharing the corpus)
"$V" fuzz --exec "$V serve --socket {socket}" --seconds 10 --seed 2 --jobs 2 --out "$T/serve" \
  >"$T/serve.txt" 2>&1; rc=$?
[ $rc -eq 0 ] && ok "serve: no finding in 10 s, 2 jobs ($(tail -1 "$T/serve.txt" | cut -c1-60))" || ko "serve: exit $rc: $(ls "$T/serve/findings" | head -3) $(tail -2 "$T/serve.txt")"
[ "$(stat_of "$T/serve/stats.json" jobs)" = 2 ] && ok "serve: stats.json counts 2 jobs" || ko "serve: stats.json jobs"

# a session that passes a copy of the main channel's end, then reconnects:
# the copy is closed with the connection, so a back-end that serves one
# connection at a time (vufuzz serve) gets to the next one (it was a false
# hang of the reference device in a fuzz run)
"$V" replay --exec "$V serve --socket {socket}" --quiet tests/sessions/main-dup-then-reconnect.txt >"$T/dup.txt" 2>&1
[ $? -eq 0 ] && ok "main-channel copy closed with its connection: clean" || ko "main-dup-then-reconnect: $(tail -1 "$T/dup.txt")"

# qemu-storage-daemon: a short run; its findings are real deviations
# (docs/conformance.md), so only the report's form is checked
if command -v qemu-storage-daemon >/dev/null; then
  truncate -s 1M "$T/qsd.img"
  "$V" fuzz --device blk --seconds 8 --seed 3 --out "$T/qsd" \
    --exec "qemu-storage-daemon --blockdev driver=file,node-name=f0,filename=$T/qsd.img --export type=vhost-user-blk,id=e0,node-name=f0,addr.type=unix,addr.path={socket},writable=on" \
    >"$T/qsd.txt" 2>&1; rc=$?
  [ $rc -le 1 ] && [ "$(stat_of "$T/qsd/stats.json" runs)" -gt 0 ] && ok "qemu-storage-daemon: $(stat_of "$T/qsd/stats.json" runs) runs, exit $rc" || ko "qemu-storage-daemon: exit $rc: $(tail -2 "$T/qsd.txt")"
else
  ko "qemu-storage-daemon is not installed"
fi

# coverage from an AFL++-instrumented back-end
if command -v afl-clang-fast >/dev/null; then
  if AFL_QUIET=1 afl-clang-fast -O1 -w tests/tools/toy_backend.c -o "$T/toy_afl" >"$T/afl.txt" 2>&1; then
    "$V" fuzz --exec "$T/toy_afl --socket {socket}" --coverage --seconds 5 --seed 4 --out "$T/cov" >"$T/cov.txt" 2>&1
    e=$(stat_of "$T/cov/stats.json" edges)
    [ "${e:-0}" != None ] && [ "${e:-0}" -gt 10 ] && ok "--coverage: $e edges from the instrumented back-end" || ko "--coverage: edges $e"
    "$V" fuzz --exec "$TOY --socket {socket}" --coverage --seconds 3 --seed 4 --out "$T/nocov" >"$T/nocov.txt" 2>&1
    grep -q "edge map stays empty" "$T/nocov.txt" && ok "--coverage on a plain build: says the map stays empty" || ko "--coverage on a plain build: no warning"
  else
    ko "afl-clang-fast cannot build the toy: $(tail -2 "$T/afl.txt")"
  fi
else
  ko "afl-clang-fast is not installed (scripts/lib.sh installs afl++)"
fi
no_leftovers
echo "$pass passed, $fail failed"
[ $fail -eq 0 ]
