#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# Runs each libFuzzer target briefly on its seeds and replays the saved
# regression inputs (fuzz/regressions/<target>-*.bin; fuzz_session_sockets
# replays the session ones). Registered with ctest
# when the build has -DVUF_FUZZ=ON. The runs are deterministic (fixed seed and
# run count) so CI verdicts repeat; long campaigns are not tests. Scale with
# VUF_FUZZ_SMOKE_SCALE (default 1).
set -uo pipefail
B=${1:?usage: fuzz_smoke.sh BUILD_DIR}
scale=${VUF_FUZZ_SMOKE_SCALE:-1}
declare -A runs=([spec]=3000 [wire]=400000 [checker]=200000 [session]=3000 [session_sockets]=1000 [raw]=3000)
pass=0 fail=0
work=$(mktemp -d); trap 'rm -rf "$work"' EXIT
mkdir -p "$work/spec" "$work/wire" "$work/checker" "$work/session" "$work/raw"
cp spec/vhost-user.spec "$work/spec/"
cp tests/golden/*.trace tests/traces/*.trace "$work/checker/"
# session seeds: the corpus, compiled by the build (BUILD/corpus/*.bin)
cp "$B"/corpus/*.bin "$work/session/"
mkdir -p "$work/session_sockets" && cp "$B"/corpus/*.bin "$work/session_sockets/"
printf '\x01\x00\x00\x00\x01\x00\x00\x00\x00\x00\x00\x00' >"$work/raw/get_features"
# wire seeds: the messages of the handshake, as bytes (sender/channel byte + message)
printf '\x00\x01\x00\x00\x00\x01\x00\x00\x00\x00\x00\x00\x00' >"$work/wire/get_features"
printf '\x00\x15\x00\x00\x00\x09\x00\x00\x00\x00\x00\x00\x00' >"$work/wire/set_backend_req_fd"
for t in spec wire checker session session_sockets raw; do
  bin="$B/fuzz/fuzz_$t"
  if [ ! -x "$bin" ]; then echo "FAIL $bin not built"; fail=$((fail + 1)); continue; fi
  # the socket target replays the session regressions
  for r in fuzz/regressions/${t%_sockets}-*.bin; do
    [ -f "$r" ] || continue
    if "$bin" -timeout=5 "$r" >"$work/log" 2>&1; then echo "ok   $t regression $r"; pass=$((pass + 1));
    else echo "FAIL $t regression $r"; tail -20 "$work/log"; fail=$((fail + 1)); fi
  done
  if "$bin" -seed=1 -runs=$((runs[$t] * scale)) -timeout=5 -rss_limit_mb=2048 -artifact_prefix="$work/" "$work/$t" >"$work/log" 2>&1; then
    echo "ok   fuzz_$t seed 1: $(grep -Eo 'Done [0-9]+ runs' "$work/log")"
    pass=$((pass + 1))
  else
    mkdir -p "$B/fuzz-findings"
    cp "$work"/crash-* "$work"/timeout-* "$work"/leak-* "$work"/oom-* "$B/fuzz-findings/" 2>/dev/null
    echo "FAIL fuzz_$t found something (inputs kept in $B/fuzz-findings/):"
    grep -E '==vufuzz== finding|ERROR|SUMMARY|^    #[0-9]' "$work/log" | head -20
    fail=$((fail + 1))
  fi
done
echo "$pass passed, $fail failed"
[ "$fail" -eq 0 ]
