# SPDX-License-Identifier: Apache-2.0
# Shared by the shell tests: one line per check, "N passed, M failed" at the end.
pass=0 fail=0
ok() { pass=$((pass + 1)); echo "ok   $*"; }
ko() { fail=$((fail + 1)); echo "FAIL $*"; }
# Counts the "ok   ..." and "FAIL ..." lines a helper (a Python check, for
# instance) printed into FILE; any other line is a failure.
report_lines() {
  local line
  while IFS= read -r line; do
    case $line in
      "ok   "*) ok "${line#ok   }" ;;
      "FAIL "*) ko "${line#FAIL }" ;;
      *) ko "unexpected output: $line" ;;
    esac
  done <"$1"
}
# private_run_dir BUILD_DIR: T, a private directory removed at exit (the
# processes started from it killed), with links V (vufuzz) and TOY (the toy
# back-end) in it, so every process a test starts from them has $T in its
# command line (other tests may run the same binaries at once)
private_run_dir() {
  T=$(mktemp -d)
  trap 'pkill -f "$T/" 2>/dev/null; rm -rf "$T"' EXIT
  ln -s "$(realpath "$1/vufuzz")" "$T/vufuzz"
  ln -s "$(realpath "$1/tests/toy_backend")" "$T/toy_backend"
  V="$T/vufuzz"
  TOY="$T/toy_backend"
}
# no_leftovers: the check that no process started from $T (private_run_dir)
# outlived the test's last command
no_leftovers() {
  local left
  sleep 0.3
  left=$(pgrep -f "$T/" | wc -l)
  [ "$left" -eq 0 ] && ok "no process left behind" || ko "$left processes left behind"
}
