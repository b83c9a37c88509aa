#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# The files that cannot run here (no docker engine, no network): the OSS-Fuzz
# project directory scripts/oss-fuzz/projects/vufuzz/, .clusterfuzzlite/ and
# the ClusterFuzzLite workflows. What can be checked without them is:
#  - projects/vufuzz/ against the rules of google/oss-fuzz's presubmit
#    (infra/presubmit.py: the Apache license URL in Dockerfile and *.sh, the
#    project.yaml field names and values, apt-get update before install) and
#    infra/ci/check_base_os.py (base_os_version and the FROM tag agree), the
#    same FROM rule for .clusterfuzzlite/; the source is cloned from main_repo,
#    not copied; placeholders are marked;
#  - both build.sh wrappers run the in-repository scripts/oss-fuzz/build.sh
#    from $SRC/vufuzz (run here against a stand-in that records it);
#  - every workflow parses as YAML, and the ClusterFuzzLite ones keep what
#    docs/fuzzing.md promises: SARIF uploaded with security-events: write,
#    crash artifacts uploaded on failure under names unique in the run, a
#    scheduled batch job that builds the corpus, a scheduled prune job.
# The rules are written here from reading those files, not copied from them.
#   bash tests/test_oss_fuzz_project.sh [BUILD_DIR]    (cwd: the source root)
set -uo pipefail
cd "$(dirname "$0")/.."
. tests/lib.sh
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

if ! python3 -c 'import yaml' 2>/dev/null; then
  ko "python3 with the yaml module is needed (Debian: python3-yaml; scripts/test.sh installs it)"
  echo "$pass passed, $fail failed"
  exit 1
fi

# the wrappers: each must run $SRC/vufuzz/scripts/oss-fuzz/build.sh from $SRC/vufuzz
mkdir -p "$tmp/src/vufuzz/scripts/oss-fuzz"
cat >"$tmp/src/vufuzz/scripts/oss-fuzz/build.sh" <<'EOF'
echo "ran in $PWD with $# arguments" >"$SRC/ran"
EOF
for w in scripts/oss-fuzz/projects/vufuzz/build.sh .clusterfuzzlite/build.sh; do
  rm -f "$tmp/src/ran"
  if (cd / && SRC=$tmp/src bash "$OLDPWD/$w") && [ "$(cat "$tmp/src/ran" 2>/dev/null)" = "ran in $tmp/src/vufuzz with 0 arguments" ]; then
    ok "$w runs \$SRC/vufuzz/scripts/oss-fuzz/build.sh from \$SRC/vufuzz"
  else
    ko "$w does not run the in-repository build.sh from \$SRC/vufuzz: $(cat "$tmp/src/ran" 2>/dev/null)"
  fi
done

python3 - >"$tmp/py.out" 2>&1 <<'EOF'
import glob, os, re, sys, yaml

def ok(m): print("ok   " + m)
def ko(m): print("FAIL " + m)
def check(cond, good, bad):
    ok(good) if cond else ko(bad)

P = "scripts/oss-fuzz/projects/vufuzz"
LICENSE_URL = "http://www.apache.org/licenses/LICENSE-2.0"

# ---- the OSS-Fuzz project directory ----
files = sorted(os.listdir(P))
check(files == ["Dockerfile", "build.sh", "project.yaml"], P + ": project.yaml, Dockerfile, build.sh",
      P + ": holds %s, not the three files OSS-Fuzz takes" % files)
check(re.fullmatch(r"[a-z0-9_-]+", os.path.basename(P)) is not None, "project name is a valid OSS-Fuzz name",
      "project name " + os.path.basename(P) + " is not [a-z0-9_-]+")
for f in ("Dockerfile", "build.sh"):
    text = open(os.path.join(P, f)).read()
    check(LICENSE_URL in text, P + "/" + f + ": the Apache license header",
          P + "/" + f + ": no " + LICENSE_URL + " (OSS-Fuzz's presubmit requires it)")

y = yaml.safe_load(open(os.path.join(P, "project.yaml")))
fields = {"architectures", "auto_ccs", "blackbox", "builds_per_day", "coverage_extra_args", "disabled",
          "disable_remediation", "disable_remediation_pre_review", "fuzzing_engines", "help_url",
          "homepage", "language", "labels", "main_repo", "primary_contact", "run_tests", "sanitizers",
          "selective_unpack", "vendor_ccs", "view_restrictions", "file_github_issue", "indexer",
          "base_os_version"}
unknown = sorted(set(y) - fields)
check(not unknown, "project.yaml: every field is one OSS-Fuzz accepts", "project.yaml: unknown fields %s" % unknown)
check("main_repo" in y, "project.yaml: main_repo (required)", "project.yaml: no main_repo")
check(y.get("language") == "c", "project.yaml: language c", "project.yaml: language %r" % y.get("language"))
allowed = {"sanitizers": {"address", "none", "memory", "undefined", "thread", "coverage", "introspector", "hwaddress"},
           "fuzzing_engines": {"libfuzzer", "afl", "honggfuzz", "centipede", "none", "wycheproof"},
           "architectures": {"i386", "x86_64", "aarch64"}}
for k, vals in allowed.items():
    got = y.get(k) or []
    check(got and all(isinstance(v, str) and v in vals for v in got), "project.yaml: %s %s" % (k, got),
          "project.yaml: %s %r (allowed: %s)" % (k, got, sorted(vals)))
v = y.get("primary_contact", "")
check("@" in v and "." in v, "project.yaml: primary_contact looks like an address", "project.yaml: primary_contact %r" % v)
raw = open(os.path.join(P, "project.yaml")).read().splitlines()
unmarked = [l for l in raw if "example.invalid" in l and not l.lstrip().startswith("#") and "PLACEHOLDER" not in l]
check(not unmarked, "project.yaml: every placeholder value is marked PLACEHOLDER", "project.yaml: unmarked placeholders %s" % unmarked)

docker = open(os.path.join(P, "Dockerfile")).read().splitlines()
runs = [l for l in docker if l.startswith("RUN ")]
check(not any(re.match(r"RUN apt(-get)? install", l) for l in runs),
      "Dockerfile: apt-get update before apt-get install", "Dockerfile: RUN apt-get install without apt-get update")
clones = [l.split() for l in docker if l.startswith("RUN git clone")]
check(len(clones) == 1 and y["main_repo"] in clones[0], "Dockerfile: git clone of main_repo (%s)" % y["main_repo"],
      "Dockerfile: does not clone main_repo %s: %s" % (y["main_repo"], clones))
i = next((n for n, l in enumerate(docker) if l.startswith("RUN git clone")), 0)
check(i > 0 and "PLACEHOLDER" in docker[i - 1], "Dockerfile: the placeholder clone URL is marked",
      "Dockerfile: no PLACEHOLDER comment above the git clone")
copies = [l for l in docker if l.startswith(("COPY ", "ADD "))]
check(copies == ["COPY build.sh $SRC/"], "Dockerfile: copies build.sh only (the source comes from git)",
      "Dockerfile: copies %s" % copies)
build_sh = [l for l in open(os.path.join(P, "build.sh")).read().splitlines() if l.strip() and not l.startswith("#")]
check(len(build_sh) == 2 and "scripts/oss-fuzz/build.sh" in build_sh[-1], "build.sh: two lines, running scripts/oss-fuzz/build.sh",
      "build.sh: %d lines: %s" % (len(build_sh), build_sh))

# base_os_version and the FROM tag go together
tags = {"legacy": "latest", "ubuntu-24-04": "ubuntu-24-04"}
def from_tag(path):
    for l in open(path):
        if l.strip().startswith("FROM"):
            image = l.split()[1]
            return image.split(":")[1] if ":" in image else ""
    return None
for d in (P, ".clusterfuzzlite"):
    py = yaml.safe_load(open(os.path.join(d, "project.yaml")))
    v = py.get("base_os_version", "legacy")
    t = from_tag(os.path.join(d, "Dockerfile"))
    check(v in tags and t == tags[v], "%s: base_os_version %s, FROM tag %s" % (d, v, t),
          "%s: base_os_version %r wants FROM tag %r, the Dockerfile has %r" % (d, v, tags.get(v), t))
cfl = yaml.safe_load(open(".clusterfuzzlite/project.yaml"))
check(cfl.get("base_os_version") == y.get("base_os_version"), "OSS-Fuzz and ClusterFuzzLite build on the same base",
      "base_os_version differs: OSS-Fuzz %r, ClusterFuzzLite %r" % (y.get("base_os_version"), cfl.get("base_os_version")))

# ---- workflows ----
wf_files = sorted(glob.glob(".github/workflows/*.yml") + glob.glob(".github/workflows/*.yaml"))
modes = {}
for f in wf_files:
    try:
        w = yaml.safe_load(open(f))
    except yaml.YAMLError as e:
        ko("%s: not YAML: %s" % (f, " ".join(str(e).split())))
        continue
    # YAML 1.1 reads the key "on" as true
    on = w.get("on", w.get(True))
    check(isinstance(w.get("jobs"), dict) and on, f + ": parses, has triggers and jobs", f + ": no 'on' or no jobs")
    names = []
    for jn, job in (w.get("jobs") or {}).items():
        steps = job.get("steps", [])
        perms = job.get("permissions", w.get("permissions"))
        matrix = (job.get("strategy") or {}).get("matrix") or {}
        uses = lambda s, a: a in str(s.get("uses", ""))
        for s in steps:
            if uses(s, "actions/upload-artifact"):
                names.append((jn, s["with"]["name"], bool(matrix)))
        build = [s for s in steps if uses(s, "clusterfuzzlite/actions/build_fuzzers")]
        run = [s for s in steps if uses(s, "clusterfuzzlite/actions/run_fuzzers")]
        for s in build:
            check(s.get("with", {}).get("language") == cfl["language"], "%s/%s: language %s" % (f, jn, cfl["language"]),
                  "%s/%s: build_fuzzers language %r, .clusterfuzzlite/project.yaml says %r" % (f, jn, s.get("with", {}).get("language"), cfl["language"]))
        for s in run:
            wi = s.get("with", {})
            mode = wi.get("mode", "code-change")
            modes.setdefault(mode, []).append((f, jn, on))
            if build:
                bs, rs = build[0].get("with", {}).get("sanitizer", "address"), wi.get("sanitizer", "address")
                check(bs == rs, "%s/%s: build and run with the same sanitizer" % (f, jn),
                      "%s/%s: built with %s, run with %s" % (f, jn, bs, rs))
            if mode in ("code-change", "batch"):
                art = [t for t in steps if uses(t, "actions/upload-artifact")]
                check(art and "failure()" in str(art[0].get("if", "")) and art[0]["with"].get("path") == "./out/artifacts",
                      "%s/%s: crash artifacts (./out/artifacts) uploaded on failure" % (f, jn),
                      "%s/%s: no upload of ./out/artifacts on failure" % (f, jn))
            if wi.get("output-sarif") in (True, "true"):
                sar = [t for t in steps if uses(t, "codeql-action/upload-sarif")]
                check(sar and sar[0]["with"].get("sarif_file") == "cifuzz-sarif/results.sarif",
                      "%s/%s: SARIF uploaded (cifuzz-sarif/results.sarif)" % (f, jn), "%s/%s: output-sarif without an upload-sarif step" % (f, jn))
                check(isinstance(perms, dict) and perms.get("security-events") == "write",
                      "%s/%s: security-events: write for the SARIF upload" % (f, jn),
                      "%s/%s: uploads SARIF without security-events: write (permissions %r)" % (f, jn, perms))
                if matrix:
                    check(sar and "matrix" in str(sar[0]["with"].get("category", "")), "%s/%s: one SARIF category per matrix job" % (f, jn),
                          "%s/%s: matrix jobs upload SARIF under one category" % (f, jn))
    seen = {}
    for jn, n, in_matrix in names:
        unique = n not in seen and (not in_matrix or "matrix." in n)
        check(unique, "%s: artifact name %s is unique in a run" % (f, n), "%s: artifact name %s can repeat in a run" % (f, n))
        seen[n] = jn
for mode in ("code-change", "batch", "prune", "coverage"):
    jobs = modes.get(mode, [])
    scheduled = [j for j in jobs if isinstance(j[2], dict) and "schedule" in j[2]]
    if mode == "code-change":
        check(any(isinstance(j[2], dict) and "pull_request" in j[2] for j in jobs), "code-change fuzzing on pull requests",
              "no code-change run_fuzzers job on pull_request")
    else:
        check(scheduled, "%s job on a schedule (%s)" % (mode, ", ".join("%s/%s" % j[:2] for j in scheduled)),
              "no scheduled run_fuzzers job in %s mode" % mode)
EOF
report_lines "$tmp/py.out"

echo "$pass passed, $fail failed"
[ "$fail" -eq 0 ]
