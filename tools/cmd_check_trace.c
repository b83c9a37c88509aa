/* SPDX-License-Identifier: Apache-2.0 */
/* vufuzz check-trace FILE...: judge recorded conversations. */
#include "cli.h"
#include "vuf_checker.h"
#include "vuf_codec.h"
#include "vuf_trace.h"
#include "vuf_util.h"

#include <stdlib.h>
#include <string.h>
#include <time.h>

static const char usage_line[] =
    "usage: vufuzz check-trace [--level " VUF_LEVEL_ARG "] [--side frontend|backend] "
    "[--device NAME] [--json] [--junit FILE] [--spec FILE] [--bench N] FILE...";

static void usage(FILE *f)
{
    fprintf(f,
            "%s\n\n"
            "Judge conversations in the trace format (docs/trace-format.md) against the spec\n"
            "table. Each violation is one line:\n"
            "  FILE:LINE: MUST|SHOULD|NOTE RULE side=SIDE msg=NAME: text (spec: section)\n"
            "MUST and SHOULD come from the rst's own verb (docs/rules.md); NOTE findings are\n"
            "checks the spec does not state (listed apart, after the violations). A capture\n"
            "cut off while a reply was owed is reported as incomplete, not as a violation.\n\n"
            "  --level L     what counts toward the exit status: must (default, as in\n"
            "                every command), should (MUST and SHOULD) or all (NOTE too)\n"
            "  --side S      only the violations of S (frontend or backend): a back-end's CI\n"
            "                is not failed by its front-end's violations\n"
            "  --device NAME how the device counts its queues (the table's device types:\n"
            "                blk, net, ...); overrides the trace's 'device' line. Without\n"
            "                either, ring indices are not judged against GET_QUEUE_NUM\n"
            "  --json        a JSON report on stdout instead (with the version and the\n"
            "                table's SHA-256)\n"
            "  --junit FILE  also a JUnit XML report: one suite per file, one case per rule\n"
            "  --spec FILE   use this table instead of the built-in one\n"
            "  --bench N     feed each trace N times and print events/s for the checker and\n"
            "                for decoding alone\n\n"
            "Exit status: 0 nothing at the level, 1 a violation at the level, 2 bad input\n"
            "(an unreadable or malformed file, a directory) or usage.\n",
            usage_line);
}

/* The --level word of a level. */
static const char *level_arg(vuf_level l)
{
    return l == VUF_MUST ? "must" : l == VUF_SHOULD ? "should" : "all";
}

static int bench(const vuf_spec *s, const vuf_trace *t, long n)
{
    size_t ev = vuf_trace_count(t);
    vuf_checker *c = vuf_checker_new(s);
    if (!c)
        return 2;
    /* baseline: decode every message the same way, without the rules */
    double t0 = vuf_now_s();
    size_t sink = 0;
    for (long r = 0; r < n; r++)
        for (size_t i = 0; i < ev; i++) {
            const vuf_event *e = vuf_trace_event(t, i);
            vuf_msg_view v;
            if (e->kind == VUF_EV_MSG && vuf_msg_decode(s, e->channel, e->data, e->len, &v))
                sink += v.payload_len + (v.def != NULL);
        }
    double t1 = vuf_now_s();
    for (long r = 0; r < n; r++) {
        vuf_checker_reset(c);
        for (size_t i = 0; i < ev; i++)
            vuf_checker_feed(c, vuf_trace_event(t, i));
        vuf_checker_end_capture(c);
    }
    double t2 = vuf_now_s();
    double total = (double)ev * (double)n;
    printf("events per pass: %zu, passes: %ld, violations per pass: %zu\n", ev, n,
           vuf_checker_violation_count(c));
    printf("%-28s %14.0f events/s\n", "baseline (decode only)", total / (t1 - t0));
    printf("%-28s %14.0f events/s\n", "checker (all rules)", total / (t2 - t1));
    printf("(decode checksum %zu)\n", sink);
    vuf_checker_free(c);
    return 0;
}

typedef struct {
    vuf_level level;
    int side; /* -1: both */
    const vuf_device_def *device;
    bool json;
} options;

/* What one file gave. */
typedef struct {
    const char *file;
    bool bad; /* unreadable or malformed: exit 2 */
    size_t events;
    const char *device;
    size_t count[VUF_LEVEL_COUNT]; /* violations of the selected side, by level */
    size_t other_side;             /* violations of the side left out */
    size_t incomplete;
    bool fails; /* a violation at the level */
} file_result;

static bool selected(const options *o, const vuf_violation *v)
{
    return o->side < 0 || (int)v->side == o->side;
}

static void print_violation(const char *file, const vuf_violation *v)
{
    printf("%s:%u: %s %s side=%s msg=%s: %s (spec: %s)\n", file, v->line, vuf_level_name(v->level),
           v->rule->id, vuf_side_name(v->side), v->msg, v->text,
           v->section[0] ? v->section : "not stated");
}

static void print_text(const options *o, const vuf_checker *c, file_result *r)
{
    size_t nv = vuf_checker_violation_count(c);
    for (size_t i = 0; i < nv; i++) {
        const vuf_violation *v = vuf_checker_violation(c, i);
        if (selected(o, v) && v->level != VUF_NOTE)
            print_violation(r->file, v);
    }
    if (r->count[VUF_NOTE]) {
        printf("%s: notes (checks the spec does not state; they count only at --level all):\n",
               r->file);
        for (size_t i = 0; i < nv; i++) {
            const vuf_violation *v = vuf_checker_violation(c, i);
            if (selected(o, v) && v->level == VUF_NOTE)
                print_violation(r->file, v);
        }
    }
    for (size_t i = 0; i < vuf_checker_incomplete_count(c); i++) {
        const vuf_incomplete *in = vuf_checker_incomplete(c, i);
        printf("%s:%u: incomplete: the capture ends while the %s owes a reply to %s on the %s "
               "channel (not a violation: it had no chance to answer)\n",
               r->file, in->line, vuf_side_name(in->responder), in->msg,
               in->channel == VUF_CHAN_BACKEND ? "back-end" : "main");
    }
    printf("%s: %zu event%s, %zu MUST, %zu SHOULD and %zu NOTE%s", r->file, r->events,
           vuf_plural(r->events), r->count[VUF_MUST], r->count[VUF_SHOULD], r->count[VUF_NOTE],
           o->side >= 0 ? " by the " : "");
    if (o->side >= 0)
        printf("%s (%zu by the other side not shown)", vuf_side_name((vuf_side)o->side),
               r->other_side);
    printf("%s%s\n", r->incomplete ? ", incomplete" : "",
           r->device ? "" : " (no device type: ring indices not judged)");
}

static void json_file(vuf_json *j, const options *o, const vuf_checker *c, const file_result *r)
{
    vuf_json_object(j, NULL);
    vuf_json_str(j, "file", r->file);
    if (r->bad) {
        vuf_json_str(j, "error", "unreadable or malformed (see stderr)");
        vuf_json_end(j);
        return;
    }
    vuf_json_str(j, "device", r->device);
    vuf_json_u64(j, "events", r->events);
    vuf_json_array(j, "violations");
    for (size_t i = 0; i < vuf_checker_violation_count(c); i++) {
        const vuf_violation *v = vuf_checker_violation(c, i);
        if (!selected(o, v))
            continue;
        vuf_json_object(j, NULL);
        vuf_json_str(j, "rule", v->rule->id);
        vuf_json_str(j, "level", vuf_level_name(v->level));
        vuf_json_str(j, "side", vuf_side_name(v->side));
        vuf_json_u64(j, "event", v->event_index);
        vuf_json_u64(j, "line", v->line);
        vuf_json_str(j, "channel", vuf_channel_name(v->channel));
        vuf_json_str(j, "message", v->msg);
        vuf_json_str(j, "text", v->text);
        vuf_json_str(j, "section", v->section);
        vuf_json_str(j, "quote", v->quote);
        vuf_json_bool(j, "counts", vuf_level_within(v->level, o->level));
        vuf_json_end(j);
    }
    vuf_json_end(j);
    vuf_json_array(j, "incomplete");
    for (size_t i = 0; i < vuf_checker_incomplete_count(c); i++) {
        const vuf_incomplete *in = vuf_checker_incomplete(c, i);
        vuf_json_object(j, NULL);
        vuf_json_str(j, "channel", vuf_channel_name(in->channel));
        vuf_json_str(j, "responder", vuf_side_name(in->responder));
        vuf_json_u64(j, "line", in->line);
        vuf_json_str(j, "message", in->msg);
        vuf_json_end(j);
    }
    vuf_json_end(j);
    vuf_json_object(j, "summary");
    vuf_json_u64(j, "must", r->count[VUF_MUST]);
    vuf_json_u64(j, "should", r->count[VUF_SHOULD]);
    vuf_json_u64(j, "note", r->count[VUF_NOTE]);
    vuf_json_u64(j, "other_side", r->other_side);
    vuf_json_bool(j, "fails", r->fails);
    vuf_json_end(j);
    vuf_json_end(j);
}

static void junit_file(FILE *f, const options *o, const vuf_checker *c, const file_result *r)
{
    if (r->bad) {
        vuf_junit_suite(f, r->file, 1, 0, 0, 1, 0);
        vuf_junit_case(f, "vufuzz.input", "read", 0, VUF_JUNIT_ERROR,
                       "unreadable or malformed trace", NULL);
        vuf_junit_suite_end(f);
        return;
    }
    unsigned failures = 0;
    for (size_t k = 0; k < vuf_rule_count(); k++) {
        const vuf_rule_info *ri = vuf_rule_at(k);
        for (size_t i = 0; i < vuf_checker_violation_count(c); i++) {
            const vuf_violation *v = vuf_checker_violation(c, i);
            if (v->rule == ri && selected(o, v) && vuf_level_within(v->level, o->level)) {
                failures++;
                break;
            }
        }
    }
    vuf_junit_suite(f, r->file, (unsigned)vuf_rule_count(), failures, 0, 0, 0);
    for (size_t k = 0; k < vuf_rule_count(); k++) {
        const vuf_rule_info *ri = vuf_rule_at(k);
        char msg[300] = "", detail[4096] = "";
        size_t dl = 0;
        bool fail = false;
        for (size_t i = 0; i < vuf_checker_violation_count(c); i++) {
            const vuf_violation *v = vuf_checker_violation(c, i);
            if (v->rule != ri || !selected(o, v) || !vuf_level_within(v->level, o->level))
                continue;
            if (!fail)
                snprintf(msg, sizeof msg, "%s %s: %s", vuf_level_name(v->level), ri->id, v->text);
            fail = true;
            if (dl < sizeof detail)
                dl += (size_t)snprintf(detail + dl, sizeof detail - dl, "%s:%u: %s side=%s: %s\n",
                                       r->file, v->line, v->msg, vuf_side_name(v->side), v->text);
        }
        char cls[64];
        snprintf(cls, sizeof cls, "vufuzz.%s", ri->family);
        vuf_junit_case(f, cls, ri->id, 0, fail ? VUF_JUNIT_FAIL : VUF_JUNIT_PASS, fail ? msg : NULL,
                       fail ? detail : NULL);
    }
    vuf_junit_suite_end(f);
}

/* Judge one file into the checker; false if it could not be read. */
static bool judge(const vuf_spec *s, const options *o, vuf_checker *c, const char *file,
                  file_result *r)
{
    vuf_diag d;
    memset(r, 0, sizeof *r);
    r->file = file;
    vuf_trace *t = vuf_trace_load_file(s, file, &d);
    if (!t) {
        vuf_cli_print_diag(stderr, &d, true);
        r->bad = true;
        return false;
    }
    const vuf_device_def *dev = o->device;
    if (!dev)
        dev = vuf_spec_device(s, vuf_trace_device(t, NULL));
    r->device = dev ? dev->name : NULL;
    vuf_checker_reset(c);
    vuf_checker_set_device(c, dev);
    for (size_t i = 0; i < vuf_trace_count(t); i++)
        vuf_checker_feed(c, vuf_trace_event(t, i));
    r->incomplete = vuf_checker_end_capture(c);
    r->events = vuf_trace_count(t);
    for (size_t i = 0; i < vuf_checker_violation_count(c); i++) {
        const vuf_violation *v = vuf_checker_violation(c, i);
        if (!selected(o, v)) {
            r->other_side++;
            continue;
        }
        r->count[v->level]++;
        r->fails |= vuf_level_within(v->level, o->level);
    }
    vuf_trace_free(t);
    return true;
}

int vuf_cmd_check_trace(int argc, char **argv)
{
    static const vuf_cli_opt opts[] = {{"--level", "must|should|all"},
                                       {"--side", "frontend|backend"},
                                       {"--device", "NAME"},
                                       {"--json", NULL},
                                       {"--junit", "FILE"},
                                       {"--spec", "FILE"},
                                       {"--bench", "N"},
                                       {NULL, NULL}};
    enum { O_LEVEL, O_SIDE, O_DEVICE, O_JSON, O_JUNIT, O_SPEC, O_BENCH };
    const char *spec = NULL, *junit = NULL, *device = NULL, *val;
    const char **files = calloc((size_t)argc + 1, sizeof *files);
    size_t nfiles = 0;
    options o = {.level = VUF_MUST, .side = -1};
    uint64_t nbench = 0;
    int rc = 2;
    if (!files)
        return 2;
    vuf_cli_parser p;
    vuf_cli_init(&p, "check-trace", usage_line, opts, argc, argv);
    for (int k; (k = vuf_cli_next(&p, &val)) != VUF_CLI_END;) {
        switch (k) {
        case VUF_CLI_HELP:
            usage(stdout);
            free(files);
            return 0;
        case VUF_CLI_ERROR:
            goto out;
        case VUF_CLI_POS:
            files[nfiles++] = val;
            break;
        case O_LEVEL:
            if (vuf_level_parse(val, &o.level)) {
                vuf_cli_usage_error("check-trace", usage_line,
                                    "bad --level '%s' (expected must, should or all)", val);
                goto out;
            }
            break;
        case O_SIDE: {
            vuf_channel side;
            if (vuf_channel_parse(val, &side) || !strcmp(val, "main")) {
                vuf_cli_usage_error("check-trace", usage_line,
                                    "bad --side '%s' (expected frontend or backend)", val);
                goto out;
            }
            o.side = (int)side;
            break;
        }
        case O_DEVICE:
            device = val;
            break;
        case O_JSON:
            o.json = true;
            break;
        case O_JUNIT:
            junit = val;
            break;
        case O_SPEC:
            spec = val;
            break;
        case O_BENCH:
            if (!vuf_parse_u64(val, &nbench) || nbench == 0 || nbench > 100000000) {
                vuf_cli_usage_error("check-trace", usage_line,
                                    "bad --bench '%s' (expected a count from 1)", val);
                goto out;
            }
            break;
        }
    }
    if (!nfiles) {
        vuf_cli_usage_error("check-trace", usage_line, "no FILE");
        goto out;
    }
    const vuf_spec *s = vuf_cli_open_spec(spec);
    if (!s)
        goto out;
    if (device && !(o.device = vuf_spec_device(s, device))) {
        char names[256];
        vuf_spec_device_names(s, names, sizeof names);
        vuf_cli_usage_error("check-trace", usage_line, "unknown --device '%s' (expected %s)",
                            device, names);
        vuf_spec_release(s);
        goto out;
    }
    if (nbench) {
        vuf_diag d;
        vuf_trace *t = vuf_trace_load_file(s, files[0], &d);
        if (!t)
            vuf_cli_print_diag(stderr, &d, true);
        rc = t ? bench(s, t, (long)nbench) : 2;
        vuf_trace_free(t);
        vuf_spec_release(s);
        goto out;
    }
    vuf_checker *c = vuf_checker_new(s);
    FILE *jf = junit ? fopen(junit, "w") : NULL;
    if (!c || (junit && !jf)) {
        if (junit && !jf)
            perror(junit);
        vuf_checker_free(c);
        vuf_spec_release(s);
        goto out;
    }
    vuf_json j;
    if (o.json) {
        vuf_json_init(&j, stdout);
        vuf_json_object(&j, NULL);
        vuf_cli_json_meta(&j);
        vuf_json_str(&j, "level", level_arg(o.level));
        vuf_json_str(&j, "side", o.side < 0 ? "both" : vuf_side_name((vuf_side)o.side));
        vuf_json_array(&j, "files");
    }
    if (jf)
        vuf_junit_begin(jf, "vufuzz check-trace");
    size_t total[VUF_LEVEL_COUNT] = {0}, bad = 0, failing = 0, incomplete = 0;
    for (size_t i = 0; i < nfiles; i++) {
        file_result r;
        bool ok = judge(s, &o, c, files[i], &r);
        bad += !ok;
        failing += ok && r.fails;
        incomplete += ok && r.incomplete;
        for (int l = 0; l < VUF_LEVEL_COUNT; l++)
            total[l] += r.count[l];
        if (o.json)
            json_file(&j, &o, c, &r);
        else if (ok)
            print_text(&o, c, &r);
        if (jf)
            junit_file(jf, &o, c, &r);
    }
    rc = bad ? 2 : failing ? 1 : 0;
    if (o.json) {
        vuf_json_end(&j);
        vuf_json_object(&j, "total");
        vuf_json_u64(&j, "files", nfiles);
        vuf_json_u64(&j, "failing", failing);
        vuf_json_u64(&j, "unreadable", bad);
        vuf_json_u64(&j, "incomplete", incomplete);
        vuf_json_u64(&j, "must", total[VUF_MUST]);
        vuf_json_u64(&j, "should", total[VUF_SHOULD]);
        vuf_json_u64(&j, "note", total[VUF_NOTE]);
        vuf_json_end(&j);
        vuf_json_i64(&j, "exit", rc);
        vuf_json_end(&j);
        vuf_json_finish(&j);
    } else if (nfiles > 1) {
        printf("total: %zu files, %zu failing at --level %s, %zu unreadable, %zu incomplete; "
               "%zu MUST, %zu SHOULD and %zu NOTE\n",
               nfiles, failing, level_arg(o.level), bad, incomplete, total[VUF_MUST],
               total[VUF_SHOULD], total[VUF_NOTE]);
    }
    if (jf) {
        vuf_junit_end(jf);
        if (fclose(jf)) {
            perror(junit);
            rc = 2;
        }
    }
    vuf_checker_free(c);
    vuf_spec_release(s);
out:
    free(files);
    return rc;
}
