/* SPDX-License-Identifier: Apache-2.0 */
/* vufuzz check-trace FILE: judge a recorded conversation. */
#include "cli.h"
#include "vuf_checker.h"
#include "vuf_codec.h"
#include "vuf_trace.h"

#include <stdlib.h>
#include <string.h>
#include <time.h>

static void usage(FILE *f)
{
    fprintf(f,
            "usage: vufuzz check-trace [--json] [--junit FILE] [--spec FILE] [--bench N] FILE\n\n"
            "Judge a conversation in the trace format (docs/trace-format.md) against the\n"
            "spec table and print the violations, one per line:\n"
            "  FILE:LINE: MUST|SHOULD RULE side=SIDE msg=NAME: text (spec: section)\n\n"
            "  --json        print a JSON report on stdout instead\n"
            "  --junit FILE  also write a JUnit XML report (one test case per rule)\n"
            "  --spec FILE   use this table instead of the built-in one\n"
            "  --bench N     feed the trace N times (checker reset between) and print\n"
            "                events/s for the checker and for decoding alone\n\n"
            "Exit status: 0 no violations, 1 violations, 2 bad input or usage.\n");
}

static void json_str(FILE *f, const char *s)
{
    fputc('"', f);
    for (; *s; s++) {
        if (*s == '"' || *s == '\\')
            fprintf(f, "\\%c", *s);
        else if ((unsigned char)*s < 0x20)
            fprintf(f, "\\u%04x", *s);
        else
            fputc(*s, f);
    }
    fputc('"', f);
}

static void xml_str(FILE *f, const char *s)
{
    for (; *s; s++) {
        switch (*s) {
        case '<':
            fputs("&lt;", f);
            break;
        case '>':
            fputs("&gt;", f);
            break;
        case '&':
            fputs("&amp;", f);
            break;
        case '"':
            fputs("&quot;", f);
            break;
        default:
            fputc(*s, f);
        }
    }
}

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

static int bench(const vuf_spec *s, const vuf_trace *t, long n)
{
    size_t ev = vuf_trace_count(t);
    vuf_checker *c = vuf_checker_new(s);
    if (!c)
        return 2;
    /* baseline: decode every message the same way, without the rules */
    double t0 = now();
    size_t sink = 0;
    for (long r = 0; r < n; r++)
        for (size_t i = 0; i < ev; i++) {
            const vuf_event *e = vuf_trace_event(t, i);
            vuf_msg_view v;
            if (e->kind == VUF_EV_MSG && vuf_msg_decode(s, e->channel, e->data, e->len, &v))
                sink += v.payload_len + (v.def != NULL);
        }
    double t1 = now();
    for (long r = 0; r < n; r++) {
        vuf_checker_reset(c);
        for (size_t i = 0; i < ev; i++)
            vuf_checker_feed(c, vuf_trace_event(t, i));
        vuf_checker_finish(c);
    }
    double t2 = now();
    double total = (double)ev * (double)n;
    printf("events per pass: %zu, passes: %ld, violations per pass: %zu\n", ev, n,
           vuf_checker_violation_count(c));
    printf("%-28s %14.0f events/s\n", "baseline (decode only)", total / (t1 - t0));
    printf("%-28s %14.0f events/s\n", "checker (all rules)", total / (t2 - t1));
    printf("(decode checksum %zu)\n", sink);
    vuf_checker_free(c);
    return 0;
}

int vuf_cmd_check_trace(int argc, char **argv)
{
    const char *spec = NULL, *junit = NULL, *file = NULL;
    bool json = false;
    long nbench = 0;
    for (int i = 1; i < argc; i++) {
        if (vuf_cli_is_help(argv[i])) {
            usage(stdout);
            return 0;
        } else if (!strcmp(argv[i], "--json")) {
            json = true;
        } else if ((!strcmp(argv[i], "--spec") || !strcmp(argv[i], "--junit") ||
                    !strcmp(argv[i], "--bench")) &&
                   i + 1 < argc) {
            const char *o = argv[i++];
            if (o[2] == 's')
                spec = argv[i];
            else if (o[2] == 'j')
                junit = argv[i];
            else if ((nbench = strtol(argv[i], NULL, 10)) <= 0) {
                fprintf(stderr, "vufuzz check-trace: --bench needs a positive count\n");
                return 2;
            }
        } else if (argv[i][0] == '-' && argv[i][1]) {
            fprintf(stderr, "vufuzz check-trace: unknown or incomplete option '%s'\n", argv[i]);
            usage(stderr);
            return 2;
        } else if (!file) {
            file = argv[i];
        } else {
            fprintf(stderr, "vufuzz check-trace: one FILE only\n");
            return 2;
        }
    }
    if (!file) {
        usage(stderr);
        return 2;
    }
    const vuf_spec *s = vuf_cli_open_spec(spec);
    if (!s)
        return 2;
    vuf_diag d;
    vuf_trace *t = vuf_trace_load_file(s, file, &d);
    if (!t) {
        vuf_cli_print_diag(stderr, &d, true);
        vuf_spec_release(s);
        return 2;
    }
    if (nbench) {
        int rc = bench(s, t, nbench);
        vuf_trace_free(t);
        vuf_spec_release(s);
        return rc;
    }
    vuf_checker *c = vuf_checker_new(s);
    if (!c) {
        fprintf(stderr, "vufuzz check-trace: out of memory\n");
        return 2;
    }
    for (size_t i = 0; i < vuf_trace_count(t); i++)
        vuf_checker_feed(c, vuf_trace_event(t, i));
    vuf_checker_finish(c);
    size_t nv = vuf_checker_violation_count(c), must = 0;
    for (size_t i = 0; i < nv; i++)
        must += vuf_checker_violation(c, i)->rule->level == VUF_MUST;
    if (json) {
        printf("{\"file\":");
        json_str(stdout, file);
        printf(",\"events\":%zu,\"violations\":[", vuf_trace_count(t));
        for (size_t i = 0; i < nv; i++) {
            const vuf_violation *v = vuf_checker_violation(c, i);
            printf("%s{\"rule\":\"%s\",\"level\":\"%s\",\"side\":\"%s\",\"event\":%zu,\"line\":%u,"
                   "\"channel\":\"%s\",\"message\":",
                   i ? "," : "", v->rule->id, v->rule->level == VUF_MUST ? "MUST" : "SHOULD",
                   vuf_side_name(v->side), v->event_index, v->line, vuf_channel_name(v->channel));
            json_str(stdout, v->msg);
            printf(",\"text\":");
            json_str(stdout, v->text);
            printf(",\"section\":");
            json_str(stdout, v->rule->section);
            printf("}");
        }
        printf("],\"summary\":{\"must\":%zu,\"should\":%zu}}\n", must, nv - must);
    } else {
        for (size_t i = 0; i < nv; i++) {
            const vuf_violation *v = vuf_checker_violation(c, i);
            printf("%s:%u: %s %s side=%s msg=%s: %s (spec: %s)\n", file, v->line,
                   v->rule->level == VUF_MUST ? "MUST" : "SHOULD", v->rule->id,
                   vuf_side_name(v->side), v->msg, v->text, v->rule->section);
        }
        printf("%s: %zu events, %zu MUST and %zu SHOULD violations\n", file, vuf_trace_count(t),
               must, nv - must);
    }
    int rc = nv ? 1 : 0;
    if (junit) {
        FILE *f = fopen(junit, "w");
        if (!f) {
            perror(junit);
            rc = 2;
        } else {
            fprintf(f, "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<testsuite name=\"");
            xml_str(f, file);
            fprintf(f, "\" tests=\"%zu\" failures=\"%zu\">\n", vuf_rule_count(), nv);
            for (size_t r = 0; r < vuf_rule_count(); r++) {
                const vuf_rule_info *ri = vuf_rule_at(r);
                fprintf(f, "  <testcase classname=\"vufuzz.%s\" name=\"%s\">\n", ri->family,
                        ri->id);
                for (size_t i = 0; i < nv; i++) {
                    const vuf_violation *v = vuf_checker_violation(c, i);
                    if (v->rule != ri)
                        continue;
                    fprintf(f, "    <failure message=\"");
                    xml_str(f, v->text);
                    fprintf(f, "\">line %u, %s, side %s</failure>\n", v->line, v->msg,
                            vuf_side_name(v->side));
                }
                fprintf(f, "  </testcase>\n");
            }
            fprintf(f, "</testsuite>\n");
            fclose(f);
        }
    }
    vuf_checker_free(c);
    vuf_trace_free(t);
    vuf_spec_release(s);
    return rc;
}
