/* SPDX-License-Identifier: Apache-2.0 */
/* vufuzz monitor: a live vhost-user proxy that checks both sides.
 *
 * It listens where the front-end expects its back-end, and relays each
 * connection to the real back-end (--connect PATH, or a process it runs:
 * --exec, proc/vuf_proc.h) byte for byte on both channels (monitor/,
 * vuf_relay.h), with a checker and a trace per connection. One event loop
 * (vuf_pollset): the signals (a self-pipe), the listening socket, the
 * back-end process's pidfd, and every connection's sockets. */
#include "cli.h"
#include "vuf_checker.h"
#include "vuf_json.h"
#include "vuf_proc.h"
#include "vuf_relay.h"
#include "vuf_rules.h"
#include "vuf_trace.h"
#include "vuf_transport.h"
#include "vuf_util.h"

#include <errno.h>
#include <signal.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static const char usage_line[] =
    "usage: vufuzz monitor --listen PATH (--connect PATH | --exec 'CMD ... {socket}')\n"
    "                      [--trace FILE] [--json FILE] [--level L] [--strict] [--quiet] [--once]\n"
    "                      [--backend-log FILE] [--ready-timeout MS] [--spec FILE]";

static void usage(FILE *f)
{
    fprintf(f,
            "%s\n\n"
            "Sit between a vhost-user front-end (QEMU, cloud-hypervisor, crosvm) and its\n"
            "back-end, relay everything between them unchanged on both channels, and check\n"
            "the conversation against the spec table as it passes.\n\n"
            "  --listen PATH     where the front-end connects (what it would give its\n"
            "                    back-end: QEMU's -chardev socket,path=PATH)\n"
            "  --connect PATH    the real back-end listens on PATH; each front-end\n"
            "                    connection gets a connection of its own to it (waited for\n"
            "                    up to 5 s)\n"
            "  --exec 'CMD'      run the back-end: CMD goes to /bin/sh -c with {socket}\n"
            "                    replaced by a private socket path, where the back-end must\n"
            "                    listen; the monitor waits until it does (--ready-timeout),\n"
            "                    restarts it for the next connection if it died, and stops\n"
            "                    it (its whole process group) when it stops\n"
            "  --backend-log FILE  the --exec back-end's stdout and stderr (default: a\n"
            "                    private file, removed at the end; its last lines are\n"
            "                    printed when the back-end dies)\n"
            "  --ready-timeout MS  how long the --exec back-end may take to listen\n"
            "                    (default 10000)\n"
            "  --trace FILE      write the conversation in the trace format that\n"
            "                    `vufuzz check-trace` reads (docs/trace-format.md), which\n"
            "                    gives the same violations offline; connection N > 1 goes\n"
            "                    to FILE.N; each file is written anew\n"
            "  --json FILE       at the end, the violations of every connection, counts of\n"
            "                    messages and the summary, as JSON (for CI)\n"
            "  --level L         what counts toward the exit status and the summary: must\n"
            "                    (default), should (MUST and SHOULD) or all (NOTE findings\n"
            "                    too, which are then printed; docs/rules.md)\n"
            "  --strict          the same as --level should; MUST and SHOULD violations\n"
            "                    are printed either way\n"
            "  --quiet           print violations and the summary only (no connection and\n"
            "                    back-end log lines)\n"
            "  --once            stop after the first connection ends (default: wait for\n"
            "                    the next one, as a back-end does)\n"
            "  --spec FILE       judge against this table instead of the built-in one\n\n"
            "What is relayed: every byte and every fd (SCM_RIGHTS) at the byte it rode on,\n"
            "malformed messages too (the monitor is not a filter). The back-end channel a\n"
            "SET_BACKEND_REQ_FD hands over with one connected socket is interposed: the\n"
            "back-end gets one end of the monitor's own socket pair and both sides of it are\n"
            "relayed and checked; any other SET_BACKEND_REQ_FD passes as it is (a note in the\n"
            "trace says the channel is not seen). A side that stops reading blocks only what\n"
            "goes to it. A side that closes or dies is relayed as a close to the other side;\n"
            "the monitor then waits for the next connection (a front-end that reconnects,\n"
            "QEMU's reconnect=, gets a new one). Several connections are served at once,\n"
            "each with its own checker and trace.\n\n"
            "Each violation is printed on stdout when it happens:\n"
            "  conn N: FILE:LINE: MUST|SHOULD|NOTE RULE side=SIDE channel=CH msg=NAME: text (spec: "
            "section)\n"
            "(without --trace, 'event K' stands for FILE:LINE; past 1000 on a connection,\n"
            "violations are counted, not printed). Connection and back-end events\n"
            "go to stderr. SIGINT or SIGTERM stops the monitor: both sides of every\n"
            "connection are closed, the back-end process is stopped, and a summary is printed\n"
            "(messages per channel and direction, violations by rule).\n"
            "Exit status: 0 no violation that counts, 1 one that counts (--level), 2 usage or "
            "setup error (cannot listen, the back-end does not\n"
            "start).\n",
            usage_line);
}

#define MAX_CONNS 30              /* 8 poll entries each, within VUF_POLL_MAX */
#define MAX_KEPT_VIOLATIONS 10000 /* kept for --json over the whole run */
#define MAX_PRINTED 1000          /* printed per connection; the rest are counted */

typedef struct {
    const vuf_rule_info *rule;
    vuf_level level; /* the violation's own (a rule's level may vary by message) */
    vuf_side side;
    vuf_channel channel;
    size_t event;
    unsigned line;
    char msg[48], text[200];
} kept_violation;

typedef struct conn conn;
typedef struct monitor monitor;

struct conn {
    monitor *m;
    unsigned id;
    vuf_relay *relay;
    vuf_checker *chk;
    FILE *trace;
    char trace_path[4096];
    unsigned lines; /* lines written to the trace */
    size_t events;
    uint64_t msgs[VUF_CHAN_COUNT][2]; /* [channel][sender] */
    /* kept when it ended */
    kept_violation *v;
    size_t nv;
    const char *closed_by;
};

struct monitor {
    const vuf_spec *spec;
    const char *listen, *connect, *exec, *trace, *json;
    bool quiet, once;
    /* The violations that count: levels up to this one (--level; MUST by
     * default, SHOULD with --strict). NOTE findings are printed only when
     * they count. */
    vuf_level count_up_to;
    vuf_proc *proc;
    conn *live[MAX_CONNS];
    size_t nlive;
    conn **done;
    size_t ndone;
    size_t kept;
    bool kept_truncated;
    unsigned next_id;
    bool end_reported; /* the back-end process's end, since its last start */
};

static bool counts(const monitor *m, vuf_level l)
{
    return vuf_level_within(l, m->count_up_to);
}

static const char *counted_text(vuf_level l, bool json)
{
    if (l == VUF_MUST)
        return json ? "must" : "MUST";
    if (l == VUF_SHOULD)
        return json ? "must+should" : "MUST and SHOULD";
    return json ? "all" : "MUST, SHOULD and NOTE";
}

static void say(const monitor *m, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static void say(const monitor *m, const char *fmt, ...)
{
    if (m->quiet)
        return;
    va_list ap;
    va_start(ap, fmt);
    fprintf(stderr, "vufuzz monitor: ");
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
}

/* ---- a connection's events ---- */

static void trace_line(conn *c, const char *text)
{
    if (!c->trace)
        return;
    fputs(text, c->trace);
    fputc('\n', c->trace);
    c->lines++;
}

static void print_violation(const conn *c, const vuf_violation *v)
{
    if (v->level == VUF_NOTE && !counts(c->m, VUF_NOTE))
        return;
    char where[4200];
    if (c->trace)
        snprintf(where, sizeof where, "%s:%u", c->trace_path, v->line);
    else
        snprintf(where, sizeof where, "event %zu", v->event_index + 1);
    printf("conn %u: %s: %s %s side=%s channel=%s msg=%s: %s (spec: %s)\n", c->id, where,
           vuf_level_name(v->level), v->rule->id, vuf_side_name(v->side),
           v->channel == VUF_CHAN_BACKEND ? "backend" : "main", v->msg, v->text, v->rule->section);
    fflush(stdout);
}

static void judge_from(conn *c, size_t from)
{
    for (size_t i = from; i < vuf_checker_violation_count(c->chk); i++) {
        if (i < MAX_PRINTED)
            print_violation(c, vuf_checker_violation(c->chk, i));
        else if (i == MAX_PRINTED)
            printf("conn %u: more than %d violations: the others are counted, not printed "
                   "(check-trace on the trace lists them all)\n",
                   c->id, MAX_PRINTED);
    }
}

static void on_event(void *ctx, const vuf_event *ev)
{
    conn *c = ctx;
    if (c->trace) {
        char line[32768];
        int n = vuf_trace_format_event(c->m->spec, ev, line, sizeof line);
        if (n < 0 || (size_t)n >= sizeof line)
            snprintf(line, sizeof line, "# event too long to print");
        trace_line(c, line);
    }
    c->events++;
    if (ev->kind == VUF_EV_MSG && ev->channel < VUF_CHAN_COUNT && ev->sender <= 1)
        c->msgs[ev->channel][ev->sender]++;
    vuf_event e = *ev;
    e.line = c->trace ? c->lines : 0;
    size_t before = vuf_checker_violation_count(c->chk);
    vuf_checker_feed(c->chk, &e);
    judge_from(c, before);
}

static void on_note(void *ctx, const char *text)
{
    conn *c = ctx;
    char line[400];
    snprintf(line, sizeof line, "# monitor: %s", text);
    trace_line(c, line);
    say(c->m, "connection %u: %s", c->id, text);
}

/* ---- connections ---- */

static conn *conn_open(monitor *m, int fe, int be, const char *backend)
{
    conn *c = calloc(1, sizeof *c);
    if (!c) {
        close(fe);
        close(be);
        return NULL;
    }
    c->m = m;
    c->id = ++m->next_id;
    c->chk = vuf_checker_new(m->spec);
    if (m->trace) {
        if (c->id == 1)
            snprintf(c->trace_path, sizeof c->trace_path, "%s", m->trace);
        else
            snprintf(c->trace_path, sizeof c->trace_path, "%s.%u", m->trace, c->id);
        c->trace = fopen(c->trace_path, "w");
        if (!c->trace)
            fprintf(stderr, "vufuzz monitor: %s: %s (connection %u is not traced)\n", c->trace_path,
                    strerror(errno), c->id);
    }
    if (c->trace) {
        time_t t = time(NULL);
        char when[64], head[600];
        strftime(when, sizeof when, "%Y-%m-%dT%H:%M:%SZ", gmtime(&t));
        snprintf(head, sizeof head,
                 "# vufuzz monitor: connection %u, front-end on %s, back-end %s, %s", c->id,
                 m->listen, backend, when);
        trace_line(c, head);
    }
    vuf_relay_opts o = {.spec = m->spec, .on_event = on_event, .on_note = on_note, .ctx = c};
    c->relay = c->chk ? vuf_relay_new(fe, be, &o) : NULL;
    if (!c->relay) {
        if (!c->chk) {
            close(fe);
            close(be);
        }
        vuf_checker_free(c->chk);
        if (c->trace)
            fclose(c->trace);
        free(c);
        return NULL;
    }
    return c;
}

static size_t count_of(const conn *c, vuf_level l, bool *any)
{
    size_t n = 0;
    for (size_t i = 0; i < c->nv; i++)
        n += c->v[i].level == l;
    if (any)
        *any = c->nv > 0;
    return n;
}

/* The connection ended (or the monitor stops): its last events, the
 * checker's end, what is kept for the report. */
static void conn_close(monitor *m, conn *c)
{
    int closer = vuf_relay_closer(c->relay);
    vuf_relay_close(c->relay);
    size_t before = vuf_checker_violation_count(c->chk);
    vuf_checker_finish(c->chk);
    judge_from(c, before);
    c->closed_by = closer == VUF_SIDE_FRONTEND  ? "front-end"
                   : closer == VUF_SIDE_BACKEND ? "back-end"
                                                : "monitor";
    size_t nv = vuf_checker_violation_count(c->chk);
    c->v = nv ? calloc(nv, sizeof *c->v) : NULL;
    for (size_t i = 0; c->v && i < nv; i++) {
        if (m->kept == MAX_KEPT_VIOLATIONS) {
            m->kept_truncated = true;
            break;
        }
        const vuf_violation *v = vuf_checker_violation(c->chk, i);
        kept_violation *k = &c->v[c->nv++];
        k->rule = v->rule;
        k->level = v->level;
        k->side = v->side;
        k->channel = v->channel;
        k->event = v->event_index;
        k->line = v->line;
        memcpy(k->msg, v->msg, sizeof k->msg);
        memcpy(k->text, v->text, sizeof k->text);
        m->kept++;
    }
    size_t must = count_of(c, VUF_MUST, NULL), should = count_of(c, VUF_SHOULD, NULL);
    say(m,
        "connection %u closed by the %s: %llu+%llu messages on the main channel, %llu+%llu "
        "on the back-end channel (front-end+back-end), %zu MUST and %zu SHOULD violations%s%s",
        c->id, c->closed_by, (unsigned long long)c->msgs[VUF_CHAN_FRONTEND][VUF_SIDE_FRONTEND],
        (unsigned long long)c->msgs[VUF_CHAN_FRONTEND][VUF_SIDE_BACKEND],
        (unsigned long long)c->msgs[VUF_CHAN_BACKEND][VUF_SIDE_FRONTEND],
        (unsigned long long)c->msgs[VUF_CHAN_BACKEND][VUF_SIDE_BACKEND], must, should,
        c->trace ? "; trace " : "", c->trace ? c->trace_path : "");
    vuf_relay_free(c->relay);
    c->relay = NULL;
    vuf_checker_free(c->chk);
    c->chk = NULL;
    if (c->trace)
        fclose(c->trace);
    c->trace = NULL;
    conn **nd = realloc(m->done, (m->ndone + 1) * sizeof *nd);
    if (nd) {
        m->done = nd;
        m->done[m->ndone++] = c;
    } else {
        free(c->v);
        free(c);
    }
}

/* ---- the back-end ---- */

static void report_backend_end(monitor *m)
{
    if (m->end_reported)
        return;
    m->end_reported = true;
    char st[64], tail[2048];
    vuf_proc_status_text(m->proc, st, sizeof st);
    size_t n = vuf_proc_log_tail(m->proc, tail, sizeof tail);
    say(m, "the back-end (pid %d) %s%s", (int)vuf_proc_pid(m->proc), st,
        n ? "; the end of its output:" : " (no output)");
    if (n && !m->quiet)
        fprintf(stderr, "%s%s", tail, tail[n - 1] == '\n' ? "" : "\n");
}

static void stop_backend(monitor *m)
{
    if (!m->proc || vuf_proc_poll(m->proc) != VUF_PROC_RUNNING)
        return;
    vuf_proc_stop(m->proc);
    char st[64];
    say(m, "the back-end (pid %d) is stopped: it %s", (int)vuf_proc_pid(m->proc),
        vuf_proc_status_text(m->proc, st, sizeof st));
}

/* A connection to the back-end for a new front-end connection, or -1. */
static int backend_connect(monitor *m, char *desc, size_t cap)
{
    char err[1024];
    if (m->proc && vuf_proc_poll(m->proc) != VUF_PROC_RUNNING) {
        report_backend_end(m);
        say(m, "restarting the back-end");
        m->end_reported = false;
        if (vuf_proc_restart(m->proc, err, sizeof err)) {
            fprintf(stderr, "vufuzz monitor: %s\n", err);
            return -1;
        }
        say(m, "the back-end runs again (pid %d)", (int)vuf_proc_pid(m->proc));
    }
    const char *path = m->proc ? vuf_proc_socket(m->proc) : m->connect;
    if (m->proc)
        snprintf(desc, cap, "pid %d at %s", (int)vuf_proc_pid(m->proc), path);
    else
        snprintf(desc, cap, "at %s", path);
    int fd = vuf_unix_connect(path, 5000);
    if (fd < 0)
        fprintf(stderr, "vufuzz monitor: cannot connect to the back-end at %s: %s\n", path,
                strerror(errno));
    return fd;
}

static void accept_one(monitor *m, int lfd)
{
    int fe = vuf_unix_accept(lfd, 100);
    if (fe < 0)
        return;
    if (m->nlive == MAX_CONNS) {
        fprintf(stderr, "vufuzz monitor: %d connections already: this one is closed\n", MAX_CONNS);
        close(fe);
        return;
    }
    char desc[200];
    int be = backend_connect(m, desc, sizeof desc);
    if (be < 0) {
        fprintf(stderr, "vufuzz monitor: the front-end's connection is closed\n");
        close(fe);
        return;
    }
    conn *c = conn_open(m, fe, be, desc);
    if (!c) {
        fprintf(stderr, "vufuzz monitor: out of memory: the connection is closed\n");
        return;
    }
    m->live[m->nlive++] = c;
    say(m, "connection %u: a front-end connected; relayed to the back-end %s%s%s", c->id, desc,
        c->trace ? "; trace " : "", c->trace ? c->trace_path : "");
}

/* ---- reports ---- */

typedef struct {
    const vuf_rule_info *rule;
    vuf_level level;
    size_t n;
} rule_count;

static size_t by_rule(const monitor *m, rule_count *rc, size_t cap)
{
    size_t n = 0;
    for (size_t i = 0; i < m->ndone; i++)
        for (size_t k = 0; k < m->done[i]->nv; k++) {
            const vuf_rule_info *r = m->done[i]->v[k].rule;
            vuf_level l = m->done[i]->v[k].level;
            size_t j = 0;
            while (j < n && (rc[j].rule != r || rc[j].level != l))
                j++;
            if (j == n && n < cap)
                rc[n++] = (rule_count){r, l, 0};
            if (j < n)
                rc[j].n++;
        }
    return n;
}

static void totals(const monitor *m, uint64_t msgs[VUF_CHAN_COUNT][2], size_t *must, size_t *should,
                   size_t *counted)
{
    memset(msgs, 0, sizeof(uint64_t) * VUF_CHAN_COUNT * 2);
    *must = *should = *counted = 0;
    for (size_t i = 0; i < m->ndone; i++) {
        const conn *c = m->done[i];
        for (int ch = 0; ch < VUF_CHAN_COUNT; ch++)
            for (int s = 0; s < 2; s++)
                msgs[ch][s] += c->msgs[ch][s];
        for (size_t k = 0; k < c->nv; k++) {
            vuf_level l = c->v[k].level;
            *must += l == VUF_MUST;
            *should += l == VUF_SHOULD;
            *counted += counts(m, l);
        }
    }
}

static void summary(const monitor *m)
{
    uint64_t msgs[VUF_CHAN_COUNT][2];
    size_t must, should, counted;
    totals(m, msgs, &must, &should, &counted);
    printf("vufuzz monitor: %zu connection%s; messages: main %llu F>B, %llu B>F; back-end "
           "channel %llu B>F, %llu F>B\n",
           m->ndone, m->ndone == 1 ? "" : "s",
           (unsigned long long)msgs[VUF_CHAN_FRONTEND][VUF_SIDE_FRONTEND],
           (unsigned long long)msgs[VUF_CHAN_FRONTEND][VUF_SIDE_BACKEND],
           (unsigned long long)msgs[VUF_CHAN_BACKEND][VUF_SIDE_BACKEND],
           (unsigned long long)msgs[VUF_CHAN_BACKEND][VUF_SIDE_FRONTEND]);
    printf("vufuzz monitor: %zu MUST and %zu SHOULD violations (%zu count: %s)%s\n", must, should,
           counted, counted_text(m->count_up_to, false),
           m->kept_truncated ? "; more were not kept" : "");
    rule_count rc[256];
    size_t n = by_rule(m, rc, 256);
    for (size_t i = 0; i < n; i++)
        printf("  %-6s %-28s %zu\n", vuf_level_name(rc[i].level), rc[i].rule->id, rc[i].n);
    fflush(stdout);
}

static int write_json(const monitor *m, int rc)
{
    FILE *f = fopen(m->json, "w");
    if (!f) {
        fprintf(stderr, "vufuzz monitor: %s: %s\n", m->json, strerror(errno));
        return 2;
    }
    vuf_json j;
    vuf_json_init(&j, f);
    vuf_json_object(&j, NULL);
    vuf_cli_json_meta(&j);
    vuf_json_str(&j, "listen", m->listen);
    vuf_json_object(&j, "backend");
    if (m->proc) {
        char st[64];
        vuf_json_str(&j, "exec", m->exec);
        vuf_json_i64(&j, "pid", vuf_proc_pid(m->proc));
        vuf_json_u64(&j, "starts", vuf_proc_starts(m->proc));
        vuf_json_str(&j, "status", vuf_proc_status_text(m->proc, st, sizeof st));
    } else {
        vuf_json_str(&j, "connect", m->connect);
    }
    vuf_json_end(&j);
    vuf_json_str(&j, "counted", counted_text(m->count_up_to, true));
    vuf_json_array(&j, "connections");
    for (size_t i = 0; i < m->ndone; i++) {
        const conn *c = m->done[i];
        vuf_json_object(&j, NULL);
        vuf_json_u64(&j, "id", c->id);
        if (c->trace_path[0])
            vuf_json_str(&j, "trace", c->trace_path);
        else
            vuf_json_null(&j, "trace");
        vuf_json_str(&j, "closed_by", c->closed_by);
        vuf_json_object(&j, "messages");
        for (int ch = 0; ch < VUF_CHAN_COUNT; ch++) {
            vuf_json_object(&j, ch == VUF_CHAN_FRONTEND ? "main" : "backend");
            vuf_json_u64(&j, "frontend", c->msgs[ch][VUF_SIDE_FRONTEND]);
            vuf_json_u64(&j, "backend", c->msgs[ch][VUF_SIDE_BACKEND]);
            vuf_json_end(&j);
        }
        vuf_json_end(&j);
        vuf_json_array(&j, "violations");
        for (size_t k = 0; k < c->nv; k++) {
            const kept_violation *v = &c->v[k];
            vuf_json_object(&j, NULL);
            vuf_json_str(&j, "rule", v->rule->id);
            vuf_json_str(&j, "level", vuf_level_name(v->level));
            vuf_json_bool(&j, "counts", counts(m, v->level));
            vuf_json_str(&j, "side", vuf_side_name(v->side));
            vuf_json_str(&j, "channel", v->channel == VUF_CHAN_BACKEND ? "backend" : "main");
            vuf_json_u64(&j, "event", v->event);
            vuf_json_u64(&j, "line", v->line);
            vuf_json_str(&j, "message", v->msg);
            vuf_json_str(&j, "text", v->text);
            vuf_json_str(&j, "section", v->rule->section);
            vuf_json_end(&j);
        }
        vuf_json_end(&j);
        vuf_json_end(&j);
    }
    vuf_json_end(&j);
    uint64_t msgs[VUF_CHAN_COUNT][2];
    size_t must, should, counted;
    totals(m, msgs, &must, &should, &counted);
    vuf_json_object(&j, "summary");
    vuf_json_u64(&j, "connections", m->ndone);
    vuf_json_u64(&j, "must", must);
    vuf_json_u64(&j, "should", should);
    vuf_json_u64(&j, "counted", counted);
    vuf_json_bool(&j, "truncated", m->kept_truncated);
    vuf_json_object(&j, "by_rule");
    rule_count rules[256];
    size_t n = by_rule(m, rules, 256);
    for (size_t i = 0; i < n; i++) { /* one key per rule, its levels summed */
        size_t first = 0, sum = 0;
        while (rules[first].rule != rules[i].rule)
            first++;
        if (first < i)
            continue;
        for (size_t k = i; k < n; k++)
            sum += rules[k].rule == rules[i].rule ? rules[k].n : 0;
        vuf_json_u64(&j, rules[i].rule->id, sum);
    }
    vuf_json_end(&j);
    vuf_json_end(&j);
    vuf_json_i64(&j, "exit", rc);
    vuf_json_end(&j);
    bool ok = vuf_json_finish(&j);
    if (fclose(f) || !ok) {
        fprintf(stderr, "vufuzz monitor: %s: cannot write the report\n", m->json);
        return 2;
    }
    return rc;
}

/* ---- the command ---- */

enum {
    O_LISTEN,
    O_CONNECT,
    O_EXEC,
    O_TRACE,
    O_JSON,
    O_STRICT,
    O_LEVEL,
    O_QUIET,
    O_ONCE,
    O_BACKEND_LOG,
    O_READY,
    O_SPEC
};

int vuf_cmd_monitor(int argc, char **argv)
{
    static const vuf_cli_opt opts[] = {[O_LISTEN] = {"--listen", "PATH"},
                                       [O_CONNECT] = {"--connect", "PATH"},
                                       [O_EXEC] = {"--exec", "CMD"},
                                       [O_TRACE] = {"--trace", "FILE"},
                                       [O_JSON] = {"--json", "FILE"},
                                       [O_STRICT] = {"--strict", NULL},
                                       [O_LEVEL] = {"--level", "L"},
                                       [O_QUIET] = {"--quiet", NULL},
                                       [O_ONCE] = {"--once", NULL},
                                       [O_BACKEND_LOG] = {"--backend-log", "FILE"},
                                       [O_READY] = {"--ready-timeout", "MS"},
                                       [O_SPEC] = {"--spec", "FILE"},
                                       {NULL, NULL}};
    monitor m = {.count_up_to = VUF_MUST};
    const char *spec_path = NULL, *backend_log = NULL, *val;
    uint64_t ready_ms = 10000;
    vuf_cli_parser p;
    vuf_cli_init(&p, "monitor", usage_line, opts, argc, argv);
    for (int k; (k = vuf_cli_next(&p, &val)) != VUF_CLI_END;) {
        switch (k) {
        case VUF_CLI_HELP:
            usage(stdout);
            return 0;
        case VUF_CLI_ERROR:
            return 2;
        case VUF_CLI_POS:
            return vuf_cli_usage_error("monitor", usage_line, "unexpected '%s'", val);
        case O_LISTEN:
            m.listen = val;
            break;
        case O_CONNECT:
            m.connect = val;
            break;
        case O_EXEC:
            m.exec = val;
            break;
        case O_TRACE:
            m.trace = val;
            break;
        case O_JSON:
            m.json = val;
            break;
        case O_STRICT:
            m.count_up_to = VUF_SHOULD;
            break;
        case O_LEVEL:
            if (vuf_level_parse(val, &m.count_up_to) != 0)
                return vuf_cli_usage_error("monitor", usage_line, "bad --level '%s' (%s)", val,
                                           VUF_LEVEL_ARG);
            break;
        case O_QUIET:
            m.quiet = true;
            break;
        case O_ONCE:
            m.once = true;
            break;
        case O_BACKEND_LOG:
            backend_log = val;
            break;
        case O_READY:
            if (!vuf_parse_u64(val, &ready_ms) || ready_ms < 1 || ready_ms > 600000)
                return vuf_cli_usage_error("monitor", usage_line,
                                           "bad --ready-timeout '%s' (1..600000 ms)", val);
            break;
        case O_SPEC:
            spec_path = val;
            break;
        }
    }
    if (!m.listen)
        return vuf_cli_usage_error("monitor", usage_line, "--listen PATH is required");
    if (!m.connect == !m.exec)
        return vuf_cli_usage_error("monitor", usage_line,
                                   "give the back-end: --connect PATH or --exec 'CMD {socket}'");
    if (m.exec && vuf_proc_command_error(m.exec))
        return vuf_cli_usage_error("monitor", usage_line, "the --exec command %s",
                                   vuf_proc_command_error(m.exec));
    if (backend_log && !m.exec)
        return vuf_cli_usage_error("monitor", usage_line, "--backend-log goes with --exec");
    m.spec = vuf_cli_open_spec(spec_path);
    if (!m.spec)
        return 2;
    int rc = 2, lfd = -1;
    static const int sigs[] = {SIGINT, SIGTERM};
    int sigfd = vuf_cli_signal_fd(sigs, 2);
    if (sigfd < 0) {
        fprintf(stderr, "vufuzz monitor: cannot watch signals: %s\n", strerror(errno));
        goto out;
    }
    if (m.exec) {
        char err[1024];
        vuf_proc_opts po = {
            .command = m.exec, .ready_timeout_ms = (int)ready_ms, .log_path = backend_log};
        m.proc = vuf_proc_start(&po, err, sizeof err);
        if (!m.proc) {
            fprintf(stderr, "vufuzz monitor: %s\n", err);
            goto out;
        }
        say(&m, "the back-end runs (pid %d), listening on %s; its output: %s",
            (int)vuf_proc_pid(m.proc), vuf_proc_socket(m.proc), vuf_proc_log_path(m.proc));
    }
    lfd = vuf_unix_listen(m.listen);
    if (lfd < 0) {
        fprintf(stderr, "vufuzz monitor: cannot listen on %s: %s\n", m.listen, strerror(errno));
        goto out;
    }
    say(&m, "listening on %s for the front-end; back-end %s %s", m.listen,
        m.proc ? "process" : "at", m.proc ? m.exec : m.connect);
    rc = 0;
    bool stop = false;
    while (!stop) {
        vuf_pollset ps;
        vuf_pollset_init(&ps, -1);
        int i_sig = vuf_pollset_add(&ps, sigfd, POLLIN);
        int i_lfd = vuf_pollset_add(&ps, lfd, POLLIN);
        int i_proc = m.proc ? vuf_pollset_add(&ps, vuf_proc_wait_fd(m.proc), POLLIN) : -1;
        for (size_t i = 0; i < m.nlive; i++)
            vuf_relay_poll_add(m.live[i]->relay, &ps);
        if (vuf_pollset_wait(&ps) < 0) {
            fprintf(stderr, "vufuzz monitor: poll: %s\n", strerror(errno));
            rc = 2;
            break;
        }
        if (vuf_pollset_revents(&ps, i_sig) & POLLIN) {
            for (int s; (s = vuf_cli_signal_next(sigfd));)
                say(&m, "stopping on signal %d", s);
            break;
        }
        /* connections first: a back-end's death shows there as a close */
        for (size_t i = 0; i < m.nlive;) {
            conn *c = m.live[i];
            if (vuf_relay_dispatch(c->relay, &ps)) {
                if (c->trace)
                    fflush(c->trace); /* what passed is in the trace before the next wait */
                i++;
                continue;
            }
            conn_close(&m, c);
            m.live[i] = m.live[--m.nlive];
            stop |= m.once;
        }
        if (m.proc && (vuf_pollset_revents(&ps, i_proc) & POLLIN) &&
            vuf_proc_poll(m.proc) != VUF_PROC_RUNNING)
            report_backend_end(&m);
        if (!stop && (vuf_pollset_revents(&ps, i_lfd) & POLLIN))
            accept_one(&m, lfd);
    }
    for (size_t i = 0; i < m.nlive; i++)
        conn_close(&m, m.live[i]);
    m.nlive = 0;
    stop_backend(&m); /* before the report, which has its status */
    if (rc != 2) {
        summary(&m);
        uint64_t msgs[VUF_CHAN_COUNT][2];
        size_t must, should, counted;
        totals(&m, msgs, &must, &should, &counted);
        rc = counted ? 1 : 0;
    }
    if (m.json && rc != 2)
        rc = write_json(&m, rc);
out:
    if (lfd >= 0) {
        close(lfd);
        unlink(m.listen);
    }
    stop_backend(&m);
    vuf_proc_free(m.proc);
    for (size_t i = 0; i < m.ndone; i++) {
        free(m.done[i]->v);
        free(m.done[i]);
    }
    free(m.done);
    vuf_spec_release(m.spec);
    return rc;
}
