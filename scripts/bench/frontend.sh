#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# Front-end fuzzing against QEMU (`vufuzz fuzz-frontend`, issue 13): one
# campaign of S seconds (default 300) per device against the installed
# qemu-system-x86_64 (vufuzz's default command: q35, TCG, -S, -nodefaults,
# a shared memfd memory backend, a vhost-user-blk-pci device or a
# virtio-net-pci on a vhost-user netdev), then the figures: sessions/s, the
# message kinds of both channels reached (sent by the front-end, sent to it),
# and the findings (saved under --findings DIR, default a directory printed
# at the end and kept when it holds any). A benchmark: it asserts nothing.
#
#   scripts/bench/frontend.sh [--seconds S] [--device blk|net|both]
#                             [--seed N] [--findings DIR] [--build DIR]
#
# Release build (build-release/, no sanitizers) like the other benchmarks,
# unless --build names a build directory that holds a vufuzz binary.
set -euo pipefail
. "$(dirname "$0")/../lib.sh"
seconds=300 device=both seed=1 findings="" build=""
while [ $# -gt 0 ]; do
  case "$1" in
    --seconds) seconds=${2:?}; shift 2 ;;
    --device) device=${2:?}; shift 2 ;;
    --seed) seed=${2:?}; shift 2 ;;
    --findings) findings=${2:?}; shift 2 ;;
    --build) build=${2:?}; shift 2 ;;
    -h|--help) sed -n '3,16p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "frontend.sh: unknown argument '$1' (see --help)" >&2; exit 2 ;;
  esac
done
case "$device" in blk) devices=blk ;; net) devices=net ;; both) devices="blk net" ;;
  *) echo "frontend.sh: --device blk, net or both" >&2; exit 2 ;; esac
if ! command -v qemu-system-x86_64 >/dev/null; then
  echo "frontend.sh: qemu-system-x86_64 is not installed (apt-get install qemu-system-x86)" >&2
  exit 2
fi
if [ -n "$build" ]; then
  V="$build/vufuzz"
else
  vuf_install_deps
  R="$VUF_RELEASE"
  vuf_build_release vufuzz
  V="$R/vufuzz"
fi
[ -x "$V" ] || { echo "frontend.sh: no vufuzz at $V" >&2; exit 2; }
[ -n "$findings" ] || findings=$(mktemp -d /tmp/vufuzz-frontend-findings.XXXXXX)
mkdir -p "$findings"
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
echo "vufuzz fuzz-frontend against $(qemu-system-x86_64 --version | head -1): $(uname -m), $(nproc) cores, $seconds s per device, seed $seed"
for d in $devices; do
  rc=0
  "$V" fuzz-frontend --device "$d" --seconds "$seconds" --seed "$seed" --quiet \
    --findings "$findings/$d" --json "$tmp/$d.json" >"$tmp/$d.out" 2>&1 || rc=$?
  if [ "$rc" -gt 1 ]; then
    echo "frontend.sh: fuzz-frontend --device $d failed (exit $rc):" >&2
    tail -5 "$tmp/$d.out" >&2
    exit 2
  fi
  echo
  echo "== --device $d"
  cmd=$(sed -n 's/.*"frontend": *"\(\([^"\\]\|\\.\)*\)".*/\1/p' "$tmp/$d.json" | head -1)
  echo "front-end: $cmd"
  grep -E '^[0-9]+ sessions in|channel, |^block requests|^corpus' "$tmp/$d.out"
  if [ -d "$findings/$d" ]; then
    for f in "$findings/$d"/*.txt; do
      case "$f" in *.orig.txt) continue ;; esac
      [ -f "$f" ] && echo "finding: $f ($(grep -c . "$f") lines): $V replay --frontend-exec '$cmd' --device $d $f"
    done
  fi
done
if [ -z "$(ls -A "$findings" 2>/dev/null)" ]; then
  rmdir "$findings" 2>/dev/null || true
else
  echo
  echo "findings kept in $findings"
fi
