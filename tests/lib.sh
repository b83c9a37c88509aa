# SPDX-License-Identifier: Apache-2.0
# Shared by the shell tests: one line per check, "N passed, M failed" at the end.
pass=0 fail=0
ok() { pass=$((pass + 1)); echo "ok   $*"; }
ko() { fail=$((fail + 1)); echo "FAIL $*"; }
