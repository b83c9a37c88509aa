#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# The README's main job, scripts/run.sh, as a user runs it (a 5 s campaign,
# on the build under test): it exits 0 on the clean reference device, judges
# every trace of tests/traces/ against its "# expect:" lines, replays the
# corpus without findings and prints the campaign's figures.
set -uo pipefail
B=${1:?usage: test_run.sh BUILD_DIR}
. "$(dirname "$0")/lib.sh"
B=$(cd "$B" && pwd)
if [ ! -x "$B/fuzz/fuzz_session" ]; then
  # the gcc build has no libFuzzer targets; scripts/test.sh runs ctest in the clang one
  ok "no fuzz_session in $B: the main job needs the libFuzzer build"
  echo "$pass passed, $fail failed"
  exit 0
fi
out=$(mktemp)
trap 'rm -f "$out"' EXIT
VUF_BUILD=$B bash scripts/run.sh --seconds 5 >"$out" 2>&1
rc=$?
if [ "$rc" -eq 0 ]; then ok "scripts/run.sh --seconds 5 exits 0"; else ko "scripts/run.sh exit $rc"; sed 's/^/     /' "$out" | tail -40; fi
n=$(ls tests/traces/*.trace | wc -l)
judged=$(grep -cE '^  tests/traces/.*\.trace +(clean|[A-Z][A-Z0-9-]+( [A-Z][A-Z0-9-]+)*)$' "$out")
if [ "$judged" -eq "$n" ]; then ok "$n traces judged as their # expect: lines say"; else ko "$judged of $n traces judged as expected"; fi
has() { if grep -qE -- "$2" "$out"; then ok "$1"; else ko "$1: no /$2/ in the output"; fi; }
has "corpus replayed without findings" '^  [0-9]+ sessions: 0 findings, 0 bad inputs'
has "campaign figures: exec/s" 'executions: +[0-9]+ in 5s, [0-9]+ exec/s'
has "campaign figures: coverage" 'coverage: +[0-9]+ edges'
has "campaign figures: messages reached" 'messages: +[0-9]+ of the [0-9]+ front-end messages'
has "no findings" 'findings: +none'
has "skipped inputs are counted" 'skipped inputs: +[0-9]+ \([0-9]+ not buildable'
# two jobs sharing a corpus, the figures merged
VUF_BUILD=$B bash scripts/run.sh --seconds 3 --jobs 2 >"$out" 2>&1
rc=$?
if [ "$rc" -eq 0 ]; then ok "scripts/run.sh --jobs 2 exits 0"; else ko "--jobs 2: exit $rc"; tail -20 "$out"; fi
has "--jobs 2: merged figures" 'executions: +[0-9]+ in 3s, [0-9]+ exec/s \(2 job\(s\)'
bash scripts/run.sh --jobs 0 >"$out" 2>&1; [ $? -eq 2 ] && ok "--jobs 0: exit 2" || ko "--jobs 0 accepted"
echo "$pass passed, $fail failed"
[ "$fail" -eq 0 ]
