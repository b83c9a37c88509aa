#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# Each fuzz target's libFuzzer options live in one file,
# scripts/oss-fuzz/options/T.options: OSS-Fuzz and ClusterFuzzLite get it as
# $OUT/T.options, the scripts read it through vuf_fuzz_option (scripts/lib.sh),
# and the documented commands must say the same. This test fails when they
# disagree:
#  1. every options file reads with Python's configparser (what OSS-Fuzz's
#     base-runner parse_options.py uses): [libfuzzer], max_len and timeout
#     positive integers, a dict named T.dict if any;
#  2. every fuzz target of the build (BUILD_DIR/oss-fuzz-targets.txt) has one;
#  3. vuf_fuzz_option reads the same values as configparser;
#  4. every command in README.md, docs/ and scripts/**/*.md that runs a fuzz
#     target with libFuzzer flags or on a corpus directory (a campaign, not
#     the replay of one input) passes -max_len=N with the target's N (and
#     -timeout, -dict, when given, as the file says); any other max_len on a
#     line that names a target is that target's;
#  5. every script in scripts/ that runs a libFuzzer campaign
#     (-max_total_time) passes -max_len, read with vuf_fuzz_option; a literal
#     -max_len=N in a script is the N of the target on its line.
#   bash tests/test_fuzz_options.sh [BUILD_DIR]      (cwd: the source root)
set -uo pipefail
cd "$(dirname "$0")/.."
B=${1:-build}
case $B in /*) ;; *) B=$OLDPWD/$B ;; esac
. tests/lib.sh
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

# vuf_fuzz_option's values, for 3
(
  . scripts/lib.sh
  for f in scripts/oss-fuzz/options/*.options; do
    t=$(basename "$f" .options)
    echo "$t max_len $(vuf_fuzz_option "$t" max_len 2>/dev/null)"
    echo "$t timeout $(vuf_fuzz_option "$t" timeout 2>/dev/null)"
  done
) >"$tmp/helper"

VUF_MANIFEST=$B/oss-fuzz-targets.txt VUF_HELPER=$tmp/helper python3 - >"$tmp/py.out" 2>&1 <<'EOF'
import configparser, glob, os, re

def ok(m): print("ok   " + m)
def ko(m): print("FAIL " + m)

opts = {}
for f in sorted(glob.glob("scripts/oss-fuzz/options/*.options")):
    t = os.path.basename(f)[:-len(".options")]
    p = configparser.ConfigParser()
    try:
        p.read(f)
        sec = p["libfuzzer"]
        o = {k: sec[k] for k in sec}
        assert re.fullmatch(r"[1-9][0-9]*", o.get("max_len", "")) and re.fullmatch(r"[1-9][0-9]*", o.get("timeout", ""))
        assert o.get("dict", t + ".dict") == t + ".dict"
    except Exception:
        ko("%s: no [libfuzzer] with positive max_len and timeout (and dict = %s.dict if any)" % (f, t))
        continue
    opts[t] = o
    ok("%s: max_len %s, timeout %s%s" % (f, o["max_len"], o["timeout"], ", dict " + o["dict"] if "dict" in o else ""))
if not opts:
    ko("no options files in scripts/oss-fuzz/options/")

# 2. every fuzz target of the build
manifest = os.environ["VUF_MANIFEST"]
if os.path.exists(manifest):
    built = [l.split()[0] for l in open(manifest) if l.startswith("fuzz_")]
    missing = [t for t in built if t not in opts]
    if built and not missing:
        ok("every fuzz target of the build has its options file (%s)" % " ".join(built))
    elif missing:
        ko("fuzz targets without scripts/oss-fuzz/options/T.options: %s" % " ".join(missing))
else:
    ok("%s not there (no build): not compared with the build's targets" % manifest)

# 3. the shell helper
bad = []
for l in open(os.environ["VUF_HELPER"]):
    t, k, *v = l.split()
    if t in opts and (v[:1] != [opts[t][k]]):
        bad.append("%s %s: %s, not %s" % (t, k, v[:1], opts[t][k]))
if bad:
    ko("vuf_fuzz_option disagrees with configparser: " + "; ".join(bad))
else:
    ok("vuf_fuzz_option reads what configparser reads, for every target")

targets = "|".join(sorted(opts, key=len, reverse=True)) or "fuzz_none"
# a fuzz target binary: build/fuzz/T, out/T, $OUT/T, build-afl/out/T (not corpus/T)
run_re = re.compile(r"(?:^|[\s`(])(\S*(?:fuzz|out|OUT\}?)/(%s))(?=[\s`]|$)(.*)$" % targets)
name_re = re.compile(r"\b(%s)\b" % targets)
len_re = re.compile(r"max_len\s*(?:=|\s)\s*([0-9]+)")

def args(rest):  # the arguments of the command, up to a comment or the next command
    return re.split(r"`| #|&&|\|\||[|;]", rest)[0]

def flags(rest):
    rest = args(rest)
    return dict(m.groups() for m in re.finditer(r"(?:^|\s)-([a-z_]+)=(\S+)", rest))

# 4. the documentation
docs = ["README.md"] + sorted(glob.glob("docs/**/*.md", recursive=True)) + sorted(glob.glob("scripts/**/*.md", recursive=True))
checked = 0
for f in docs:
    for n, line in enumerate(open(f, encoding="utf-8"), 1):
        where = "%s:%d" % (f, n)
        m = run_re.search(line)
        if m:
            t, fl = m.group(2), flags(m.group(3))
            # a campaign: libFuzzer flags, or a corpus directory to fuzz
            if fl or "corpus" in args(m.group(3)):
                checked += 1
                want = opts[t]
                errs = []
                if fl.get("max_len") != want["max_len"]:
                    errs.append("-max_len=%s, not %s" % (fl.get("max_len", "(none)"), want["max_len"]))
                if "timeout" in fl and fl["timeout"] != want["timeout"]:
                    errs.append("-timeout=%s, not %s" % (fl["timeout"], want["timeout"]))
                if "dict" in fl and os.path.basename(fl["dict"]) != want.get("dict"):
                    errs.append("-dict=%s, not %s" % (fl["dict"], want.get("dict", "none")))
                if errs:
                    ko("%s: %s runs with %s (scripts/oss-fuzz/options/%s.options)" % (where, t, ", ".join(errs), t))
                continue
        names = sorted(set(name_re.findall(line)))
        for v in len_re.findall(line):
            checked += 1
            if len(names) != 1:
                ko("%s: max_len %s names no single target: say which" % (where, v))
            elif v != opts[names[0]]["max_len"]:
                ko("%s: max_len %s for %s, whose options say %s" % (where, v, names[0], opts[names[0]]["max_len"]))
ok("documentation: %d fuzz target commands and max_len mentions checked in %d files" % (checked, len(docs)))

# 5. the scripts
for f in sorted(glob.glob("scripts/**/*.sh", recursive=True)):
    text = open(f, encoding="utf-8").read()
    for n, line in enumerate(text.splitlines(), 1):
        for v in re.findall(r"-max_len=([0-9]+)", line):
            names = sorted(set(name_re.findall(line)))
            if len(names) != 1 or v != opts[names[0]]["max_len"]:
                ko("%s:%d: -max_len=%s, not the target's options (use vuf_fuzz_option)" % (f, n, v))
    if "-max_total_time" in text:
        if "-max_len=" in text and "vuf_fuzz_option" in text:
            ok("%s: its campaigns take -max_len from the options (vuf_fuzz_option)" % f)
        else:
            ko("%s runs libFuzzer campaigns without -max_len from vuf_fuzz_option" % f)
EOF
report_lines "$tmp/py.out"

echo "$pass passed, $fail failed"
[ "$fail" -eq 0 ]
