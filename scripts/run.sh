#!/usr/bin/env bash
# The main job, on the built-in reference device:
#   1. the spec table summary;
#   2. the golden handshake traces judged by the checker (QEMU's recorded
#      conversation included);
#   3. a short structured fuzzing campaign against the reference device, with
#      its figures (execs, exec/s, coverage, messages reached, findings).
# Installs what is missing (apt-get), builds into build/, then runs.
#   VUF_FUZZ_SECONDS=60 scripts/run.sh     campaign length (default 60)
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
secs=${VUF_FUZZ_SECONDS:-60}
echo "== 3. structured fuzzing of the reference device (${secs}s)"
"$V" fuzz --reference --time "$secs" --corpus corpus --out "$VUF_ROOT/out/run" || rc=$?
exit "$rc"
