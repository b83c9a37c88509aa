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
