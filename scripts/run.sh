#!/usr/bin/env bash
# The main job, for now (the reference device and its fuzzing campaign are
# the next issues):
#   1. the spec table summary and lint;
#   2. the golden handshake traces judged by the checker;
#   3. the golden rule pairs: each rule's violating trace reports that rule.
# Installs what is missing (apt-get), builds into build/, then runs.
set -euo pipefail
. "$(dirname "$0")/lib.sh"

vuf_install_deps
vuf_build
V="$VUF_BUILD/vufuzz"
cd "$VUF_ROOT"

echo
echo "== 1. spec table ($("$V" spec list | tail -n 1))"
"$V" spec lint spec/vhost-user.spec

echo
echo "== 2. golden handshake traces"
rc=0
for t in tests/traces/*.trace corpus/*.trace; do
  [ -f "$t" ] || continue
  case "$t" in corpus/*) head -n 5 "$t" | grep -q '^# expect: none' || continue ;; esac
  if "$V" check-trace "$t" >/tmp/vuf_run_$$.out 2>&1; then
    printf '  %-55s clean\n' "$t"
  else
    rc=1
    printf '  %-55s VIOLATIONS\n' "$t"
    sed 's/^/    /' /tmp/vuf_run_$$.out
  fi
done
rm -f /tmp/vuf_run_$$.out

echo
echo "== 3. rule catalogue: $("$V" rules | tail -n 1), each with a golden pair"
found=0 total=0
for f in tests/golden/*.fail.trace; do
  total=$((total + 1))
  r=$(basename "$f" .fail.trace)
  out=$("$V" check-trace "$f" || true)
  if awk '{print $3}' <<<"$out" | grep -qx "$r"; then found=$((found + 1)); else
    rc=1; echo "  $f: rule $r not reported"; fi
done
echo "  $found of $total violating traces report their rule"
exit "$rc"
