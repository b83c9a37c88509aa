#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# The command line as a user meets it: --help everywhere, the spec
# subcommands' output and exit codes, file:line:col errors, fresh docs.
set -uo pipefail
B=${1:?usage: test_cli.sh BUILD_DIR}
V="$B/vufuzz"
. "$(dirname "$0")/lib.sh"
expect_rc() { # expect_rc RC DESC CMD...
  local want=$1 desc=$2; shift 2
  "$@" >/tmp/vuf_cli_out.$$ 2>&1; local rc=$?
  if [ "$rc" -eq "$want" ]; then ok "$desc (exit $rc)"; else ko "$desc: exit $rc, want $want"; sed 's/^/     /' /tmp/vuf_cli_out.$$ | head -20; fi
}
has() { # has DESC PATTERN (in the last output)
  if grep -qE -- "$2" /tmp/vuf_cli_out.$$; then ok "$1"; else ko "$1: no /$2/ in:"; sed 's/^/     /' /tmp/vuf_cli_out.$$ | head -20; fi
}
tmp=$(mktemp -d); trap 'rm -rf "$tmp" /tmp/vuf_cli_out.$$' EXIT

expect_rc 0 "vufuzz --help" "$V" --help
has "--help lists spec" '^  spec '
expect_rc 0 "vufuzz --version" "$V" --version
has "--version names the version and the commit" '^vufuzz [0-9]+\.[0-9]+\.[0-9]+ \(git [0-9a-f]{12}|^vufuzz [0-9]+\.[0-9]+\.[0-9]+ \(git unknown'
has "--version gives the built-in table's sha256 (its text at build time)" "sha256 $(sha256sum spec/vhost-user.spec | cut -c1-64)"
{ cat spec/vhost-user.spec; echo "# a change"; } >"$tmp/changed.spec"
expect_rc 0 "vufuzz --version --spec FILE" "$V" --version --spec "$tmp/changed.spec"
has "--version --spec FILE gives that file's sha256" "sha256 $(sha256sum "$tmp/changed.spec" | cut -c1-64)"
expect_rc 2 "--version --spec without a value" "$V" --version --spec
has "a missing value is named as such" 'option --spec needs a value'
expect_rc 2 "vufuzz without command" "$V"
expect_rc 2 "unknown command" "$V" frobnicate
for cmd in $("$V" --help | awk '/^commands:/{f=1;next} f&&/^  [a-z]/{print $1}'); do
  expect_rc 0 "vufuzz $cmd --help" "$V" "$cmd" --help
  has "$cmd --help prints usage" 'usage:'
done

expect_rc 0 "spec list" "$V" spec list
has "45 front-end and 10 back-end messages" '^45 front-end messages, 10 back-end messages'
expect_rc 0 "spec list --channel backend" "$V" spec list --channel backend
has "backend list has BACKEND_IOTLB_MSG" '^backend +1  BACKEND_IOTLB_MSG'
expect_rc 2 "spec list --channel bogus" "$V" spec list --channel bogus

expect_rc 0 "spec show SET_SLAVE_REQ_FD" "$V" spec show SET_SLAVE_REQ_FD
has "show: id 21" 'channel: +frontend \(id 21\)'
has "show: front-end initiator" 'initiator: +frontend'
has "show: one socket fd" '^  fds: +1 socket$'
has "show: BACKEND_REQ gate, offered" '^  gate: +protocol BACKEND_REQ offered$'
has "show: the gate's rst sentence and its verb" '^ +should: "This request should be sent only when'
expect_rc 0 "spec show backend:1" "$V" spec show backend:1
has "backend:1 is BACKEND_IOTLB_MSG" '^BACKEND_IOTLB_MSG'
expect_rc 2 "spec show unknown" "$V" spec show NOPE

expect_rc 0 "spec lint of the table" "$V" spec lint spec/vhost-user.spec
has "lint clean" ': 0 errors'
sed 's/^payload vring_state 8$/payload vring_state 12/' spec/vhost-user.spec >"$tmp/bad.spec"
expect_rc 1 "lint catches a size contradiction" "$V" spec lint "$tmp/bad.spec"
has "lint error has file:line:col" "$tmp/bad.spec:[0-9]+:[0-9]+: error: payload 'vring_state' is declared 12"
awk '/^message frontend 21 /{print "message frontend 20 DUP_OF_21"; next} {print}' spec/vhost-user.spec >"$tmp/dup.spec"
expect_rc 1 "lint catches a duplicate (channel, id)" "$V" spec lint "$tmp/dup.spec"
has "duplicate reported with position" "$tmp/dup.spec:[0-9]+:[0-9]+: error: duplicate \(frontend, 2[01]\)"
expect_rc 2 "lint of a missing file" "$V" spec lint "$tmp/none.spec"
expect_rc 2 "a tool refuses a table with lint errors" "$V" spec list --spec "$tmp/bad.spec"

awk '/^message frontend 21 /{m=1} m&&/gate protocol BACKEND_REQ/{sub(/BACKEND_REQ/,"BACKEND_REQ REPLY_ACK"); m=0} {print}' spec/vhost-user.spec >"$tmp/gate.spec"
expect_rc 1 "spec diff reports a gate change" "$V" spec diff spec/vhost-user.spec "$tmp/gate.spec"
has "diff names the message and the gate" 'message frontend 21 SET_BACKEND_REQ_FD: gates changed: .* -> .*protocol REPLY_ACK BACKEND_REQ offered \(should\)'
has "diff counts one change" '^1 difference$'
expect_rc 0 "spec diff of a table with itself" "$V" spec diff spec/vhost-user.spec spec/vhost-user.spec
expect_rc 1 "spec diff --json" "$V" spec diff --json spec/vhost-user.spec "$tmp/gate.spec"
has "diff --json: one change with its text" '"differences":\[\{"change":"~","text":"message frontend 21 SET_BACKEND_REQ_FD: gates changed'
has "diff --json: count" '"count":1'
has "diff --json: the table's sha256" '"sha256":"[0-9a-f]{64}"'
sed 's/check num in 0 must/check num in 0 should/' spec/vhost-user.spec >"$tmp/verb.spec"
expect_rc 1 "lint: a verb that is not its sentence's" "$V" spec lint "$tmp/verb.spec"
has "lint names the verbs" "error: GET_VRING_BASE: check num: the table says 'should' but the sentence's words say 'must'"
expect_rc 1 "spec lint of several files" "$V" spec lint spec/vhost-user.spec "$tmp/bad.spec"
has "lint: a summary per file" "^spec/vhost-user.spec: 0 errors, 0 warnings"
has "lint: the total" '^total: 2 files, 1 error, 0 warnings$'
expect_rc 2 "spec lint of a missing file among others" "$V" spec lint spec/vhost-user.spec "$tmp/none.spec"
awk '/^message frontend 2 SET_FEATURES/{m=1} m&&/^end$/{m=0; next} {print}' spec/vhost-user.spec >"$tmp/noend.spec"
expect_rc 1 "a message without end" "$V" spec lint "$tmp/noend.spec"
has "reported at the message that is not closed" "$tmp/noend.spec:$(grep -n '^message frontend 2 SET_FEATURES' spec/vhost-user.spec | cut -d: -f1):1: error: message 'SET_FEATURES' has no 'end'"
expect_rc 2 "spec doc --format html" "$V" spec doc --format html
expect_rc 2 "spec with an unknown subcommand" "$V" spec frob
has "one usage line and a pointer to --help" "Try 'vufuzz spec --help'"

# docs/messages.md: one command regenerates it (md is the default), and it
# names no table line numbers (a table edit is not a doc diff)
"$V" spec doc >"$tmp/messages.md"
if cmp -s "$tmp/messages.md" docs/messages.md; then ok "docs/messages.md is fresh"; else ko "docs/messages.md is stale: run build/vufuzz spec doc -o docs/messages.md"; fi
grep -q 'defined at' docs/messages.md && ko "docs/messages.md has 'defined at' line numbers" || ok "docs/messages.md has no table line numbers"
grep -qE '\(1 bytes\)|1 fds per' docs/messages.md && ko "docs/messages.md says '1 bytes'" || ok "no '1 bytes' in docs/messages.md"

# rules: the json carries every column md has; the help advertises no 'rules list'
"$V" --help | grep -q 'rules list' && ko "--help advertises 'rules list'" || ok "--help does not advertise 'rules list'"
expect_rc 2 "rules list (no such subcommand)" "$V" rules list
expect_rc 0 "rules --format json" "$V" rules --format json
for col in id level level_per_message verb family section sentence derived_from; do
  has "rules json: column $col" "\"$col\":"
done
has "rules json: the table's sentences" '"table_sentences":\[\{"channel":"frontend","message":"'
n_md=$("$V" rules --format md | grep -c '^| `')
n_js=$("$V" rules --format json | grep -o '"derived_from"' | wc -l)
[ "$n_md" -eq "$n_js" ] && ok "rules: md and json have the same $n_md rules" || ko "rules: md $n_md, json $n_js"
expect_rc 2 "rules --format xml" "$V" rules --format xml

echo "$pass passed, $fail failed"
[ "$fail" -eq 0 ]
