#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# vufuzz session: encode/decode round trips through files, every corpus seed
# encodes, check, exit codes, FILE:LINE:COL errors, no binary on a terminal.
set -uo pipefail
B=${1:?usage: test_session_cli.sh BUILD_DIR}
V="$B/vufuzz"
. "$(dirname "$0")/lib.sh"
out=$(mktemp); tmp=$(mktemp -d); trap 'rm -rf "$tmp" "$out"' EXIT
expect_rc() { # expect_rc RC DESC CMD...
  local want=$1 desc=$2; shift 2
  "$@" >"$out" 2>&1; local rc=$?
  if [ "$rc" -eq "$want" ]; then ok "$desc (exit $rc)"; else ko "$desc: exit $rc, want $want"; sed 's/^/     /' "$out" | head -20; fi
}
has() { # has DESC PATTERN (in the last output)
  if grep -qE -- "$2" "$out"; then ok "$1"; else ko "$1: no /$2/ in:"; sed 's/^/     /' "$out" | head -20; fi
}
same() { # same DESC FILE FILE
  if cmp -s "$2" "$3"; then ok "$1"; else ko "$1: $2 and $3 differ"; fi
}

# usage
expect_rc 0 "session --help" "$V" session --help
has "help names the subcommands" 'vufuzz session encode .*FILE.txt'
expect_rc 0 "session encode --help" "$V" session encode --help
has "encode --help prints usage" '^usage:'
expect_rc 0 "session check --help" "$V" session check x --help
expect_rc 2 "session without subcommand" "$V" session
expect_rc 2 "unknown subcommand" "$V" session frobnicate x
has "unknown subcommand named" "unknown subcommand 'frobnicate'"
expect_rc 2 "encode without FILE" "$V" session encode
expect_rc 2 "encode with two FILEs" "$V" session encode corpus/handshake.txt corpus/status.txt
expect_rc 2 "unknown option" "$V" session encode --bogus corpus/handshake.txt
expect_rc 2 "-o without FILE" "$V" session encode corpus/handshake.txt -o
expect_rc 2 "check with -o" "$V" session check corpus/handshake.txt -o "$tmp/x"

# round trips through files
expect_rc 0 "encode handshake" "$V" session encode corpus/handshake.txt -o "$tmp/h.bin"
[ -s "$tmp/h.bin" ] && ok "binary written" || ko "no binary written"
expect_rc 0 "decode handshake" "$V" session decode "$tmp/h.bin" -o "$tmp/h.txt"
[ -s "$out" ] && ko "decode of a canonical binary warns: $(cat "$out")" || ok "no warning for a canonical binary"
grep -q '^config disk_size=0x100000 queues=1 ' "$tmp/h.txt" && ok "decoded text has the config line" || ko "decoded text lacks the config line"
grep -q '^F>B main SET_MEM_TABLE need_reply .* fds=guest:0$' "$tmp/h.txt" && ok "decoded text has SET_MEM_TABLE" || ko "decoded text lacks SET_MEM_TABLE"
if grep -q '^#' "$tmp/h.txt"; then ko "comments survive decoding"; else ok "decoded text is canonical (no comments)"; fi
expect_rc 0 "encode the decoded text" "$V" session encode "$tmp/h.txt" -o "$tmp/h2.bin"
same "text -> binary -> text -> binary is identical" "$tmp/h.bin" "$tmp/h2.bin"
expect_rc 0 "decode again" "$V" session decode "$tmp/h2.bin" -o "$tmp/h2.txt"
same "the canonical text is stable" "$tmp/h.txt" "$tmp/h2.txt"
"$V" session decode "$tmp/h.bin" >"$tmp/h3.txt" 2>/dev/null
same "decode to stdout = decode -o" "$tmp/h.txt" "$tmp/h3.txt"
"$V" session encode corpus/handshake.txt >"$tmp/h3.bin" 2>/dev/null
same "encode to a pipe = encode -o" "$tmp/h.bin" "$tmp/h3.bin"
expect_rc 0 "--spec on encode" "$V" session encode --spec spec/vhost-user.spec corpus/handshake.txt -o "$tmp/h4.bin"
same "--spec with the table itself changes nothing" "$tmp/h.bin" "$tmp/h4.bin"

# every corpus seed encodes, and decode(encode(x)) encodes to the same bytes
n=0 bad=0
for f in corpus/*.txt tests/traces/*.trace tests/golden/*.trace; do
  n=$((n + 1))
  b="$tmp/seed.bin"
  # a trace's device line and notes are the recording's, not something a
  # session plays (docs/trace-format.md): commented out
  if grep -qE '^(device|note) ' "$f"; then sed -E 's/^(device|note) /# &/' "$f" >"$tmp/stripped.trace"; f="$tmp/stripped.trace"; fi
  if ! "$V" session encode "$f" -o "$b" 2>"$out"; then bad=$((bad + 1)); ko "encode $f: $(cat "$out")"; continue; fi
  "$V" session decode "$b" -o "$tmp/seed.txt" 2>"$out" && [ ! -s "$out" ] || { bad=$((bad + 1)); ko "decode $f: $(cat "$out")"; continue; }
  "$V" session encode "$tmp/seed.txt" -o "$tmp/seed2.bin" 2>"$out" || { bad=$((bad + 1)); ko "re-encode $f: $(cat "$out")"; continue; }
  cmp -s "$b" "$tmp/seed2.bin" || { bad=$((bad + 1)); ko "$f: decode/encode changed the bytes"; }
done
[ "$bad" -eq 0 ] && ok "$n corpus seeds and traces encode and round-trip" || ko "$bad of $n files failed"
ls corpus/backend-req-fd-*.txt >/dev/null 2>&1 && [ "$(ls corpus/backend-req-fd-*.txt | wc -l)" -ge 19 ] &&
  ok "19 malformed SET_BACKEND_REQ_FD seeds" || ko "missing corpus/backend-req-fd-*.txt seeds"
if [ -d "$B/corpus" ]; then
  nb=$(ls "$B"/corpus/*.bin 2>/dev/null | wc -l); nt=$(ls corpus/*.txt | wc -l)
  [ "$nb" -ge "$nt" ] && ok "the corpus target built $nb binary seeds" || ko "$B/corpus has $nb seeds for $nt sources"
  same "the built seed equals encode's output" "$B/corpus/handshake.bin" "$tmp/h.bin"
fi

# check
expect_rc 0 "check text and binary" "$V" session check corpus/handshake.txt "$tmp/h.bin"
has "check counts actions of the text" '^corpus/handshake.txt: 23 actions$'
has "check counts actions of the binary" "^$tmp/h.bin: 23 actions\$"

# errors: FILE:LINE:COL and exit 2, never a crash
printf 'config queues=1\nF>B main SET_VRING_NUM index=0 nums=1\n' >"$tmp/bad.txt"
expect_rc 2 "encode of a bad text" "$V" session encode "$tmp/bad.txt" -o "$tmp/bad.bin"
has "error with file:line:col" "^$tmp/bad.txt:2:32: error: unknown field 'nums'"
[ -e "$tmp/bad.bin" ] && ko "no output on error" || ok "no output written on error"
expect_rc 2 "check of a bad text" "$V" session check corpus/handshake.txt "$tmp/bad.txt" corpus/status.txt
has "check reports the error" "^$tmp/bad.txt:2:32: error: unknown field 'nums'"
has "check goes on after an error" '^corpus/status.txt: [0-9]+ actions$'
printf 'desc queue=1\n' >"$tmp/bad2.txt"
expect_rc 2 "a missing key" "$V" session encode "$tmp/bad2.txt" -o "$tmp/bad.bin"
has "missing key at the end of the line" "^$tmp/bad2.txt:1:13: error: missing index= in desc \(expected queue=, index=, addr="
expect_rc 2 "decode of a text file" "$V" session decode corpus/handshake.txt
has "decode says it is not binary" 'not a binary session'
expect_rc 2 "decode of a missing file" "$V" session decode "$tmp/none.bin"
has "missing file named" "^$tmp/none.bin: error: cannot open"
expect_rc 2 "encode of a missing file" "$V" session encode "$tmp/none.txt"
head -c 4096 /dev/urandom >"$tmp/junk.bin"; printf '\x12\xff\xff\xff\x00' >>"$tmp/junk.bin"
expect_rc 2 "check of junk" "$V" session check "$tmp/junk.bin"
expect_rc 2 "encode to an unwritable place" "$V" session encode corpus/handshake.txt -o "$tmp/no/such/dir.bin"
awk '/^payload vring_state 8$/{print "payload vring_state 12"; next} {print}' spec/vhost-user.spec >"$tmp/bad.spec"
expect_rc 2 "a table with lint errors is refused" "$V" session check --spec "$tmp/bad.spec" corpus/handshake.txt

# a binary the text cannot express exactly: decode warns, exit 0
# Session{actions:[Action{send:Message{name:"GET_FEATURES", reply:false}}]}
printf '\x12\x12\x0a\x10\x0a\x0cGET_FEATURES\x40\x00' >"$tmp/nc.bin"
expect_rc 0 "decode of a non-canonical binary" "$V" session decode "$tmp/nc.bin" -o "$tmp/nc.txt"
has "it warns" 'warning: not in canonical form'
grep -qx 'F>B main GET_FEATURES' "$tmp/nc.txt" && ok "printed as the harness reads it" || ko "nc.txt: $(cat "$tmp/nc.txt")"
# a field path the text cannot parse back: decode warns with the position
# Session{actions:[Action{send:Message{id:8, fields:[Field{path:"a b", value:1}]}}]}
printf '\x12\x0d\x0a\x0b\x10\x08\x1a\x07\x0a\x03a b\x10\x01' >"$tmp/nc2.bin"
expect_rc 0 "decode of a bad field path" "$V" session decode "$tmp/nc2.bin"
has "it warns with the position" 'warning: the text does not parse back: <stdout>:1:12: error: unknown field'
expect_rc 2 "check builds every message" "$V" session check "$tmp/nc2.bin"
has "check names the action" "^$tmp/nc2.bin: error: action 1: unknown field 'a b'"

# binary is never written to a terminal
if command -v script >/dev/null 2>&1; then
  script -qec "$V session encode corpus/handshake.txt" /dev/null >"$out" 2>&1; rc=$?
  if [ $rc -eq 2 ] && grep -q 'refusing to write binary to a terminal' "$out"; then ok "no binary on a terminal (exit 2)"; else ko "binary on a terminal: exit $rc: $(head -c 300 "$out")"; fi
else
  ok "no binary on a terminal: skipped (no script(1))"
fi

echo "$pass passed, $fail failed"
[ "$fail" -eq 0 ]
