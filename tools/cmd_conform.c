/* SPDX-License-Identifier: Apache-2.0 */
/* vufuzz conform: a conformance suite for any vhost-user back-end, run over
 * its socket (h2spec's way: point it at a server, get a report keyed by rule
 * and spec section).
 *
 * A case is a file (conform/GROUP/ID.txt): a few "# key: value" header lines
 * and a session (docs/session-format.md), optionally after a shared prefix
 * (conform/prefix/NAME.txt). The runner plays it against the back-end with
 * the harness and its oracles (the checker's MUST rules judging the
 * back-end, a crash, a hang, the process's fds), observes how the back-end
 * answered the case's probe (its last front-end request unless "probe"
 * says), and checks that a fresh connection still gets an answer. Adding a
 * case takes no C code; conform/README.md documents the format. */
#include "cli.h"
#include "vuf_harness.h"
#include "vuf_json.h"
#include "vuf_session.h"
#include "vuf_rules.h"
#include "vuf_trace.h"
#include "vuf_util.h"

#include <dirent.h>
#include <fnmatch.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#ifndef VUF_SOURCE_DIR
#define VUF_SOURCE_DIR "."
#endif

static const char usage_line[] =
    "usage: vufuzz conform (--connect PATH [--pid PID] | --exec 'CMD ... {socket}')\n"
    "                      [--device blk|net|fs|...] [--case ID|GLOB]... [--group G]...\n"
    "                      [--level must|should|all] [--strict] [--json FILE] [--junit FILE]\n"
    "                      [--list] [--dir DIR] [--reply-timeout MS] [--backend-log FILE]\n"
    "                      [--ready-timeout MS] [--verbose] [--spec FILE]";

static void usage(FILE *f)
{
    fprintf(f,
            "%s\n\n"
            "Run the conformance suite against a vhost-user back-end over its socket.\n"
            "Each case (conform/GROUP/ID.txt) is a session played as a front-end would,\n"
            "judged by the checker's rules (the back-end's side), the oracles (a crash, a\n"
            "hang, fds the back-end keeps after a session) and the outcomes the case\n"
            "accepts for its probe message (ack, nack, close, silent); after every case a\n"
            "fresh connection must still get an answer to GET_FEATURES.\n\n"
            "The back-end (a new connection per case):\n"
            "%s\n"
            "  --device TYPE     the device type (blk, net, fs, ...): data-plane cases run\n"
            "                    only for a type they are written for\n"
            "  --case ID|GLOB    only these cases (repeatable); --group G only this group\n"
            "  --level L         what fails the run: must (default: FAIL verdicts), should\n"
            "                    (WARN too: a SHOULD the back-end broke, or an answer the\n"
            "                    case allows but does not recommend) or all (the back-end's\n"
            "                    NOTE findings, checks the spec does not state, are WARN and\n"
            "                    fail too)\n"
            "  --strict          the same as --level should\n"
            "  --json FILE       a JSON report; --junit FILE a JUnit XML report\n"
            "  --list            list the cases and exit\n"
            "  --dir DIR         the cases (default: $VUF_CONFORM_DIR, else the source\n"
            "                    tree's conform/)\n"
            "  --verbose         print the conversation of every case that does not pass\n"
            "  --spec FILE       use this table instead of the built-in one\n\n"
            "Verdicts:\n"
            "  PASS   the answer is one the case accepts, and nothing else was found\n"
            "  FAIL   the back-end broke a MUST rule (the checker, docs/rules.md), or an\n"
            "         oracle fired: a crash, an exit, a sanitizer report, a hang (a reply\n"
            "         owed did not come, or a fresh connection got no answer after the\n"
            "         case), an fd the back-end kept\n"
            "  WARN   a SHOULD the back-end broke, or an answer the case does not expect\n"
            "         (the rst's reactions are SHOULDs); a pass at --level must\n"
            "  SKIP   the back-end does not offer what the case needs (the reason says)\n"
            "  ERROR  the back-end could not be driven: with --connect, once it stops\n"
            "         answering, the cases left are ERROR without being run; with --exec it\n"
            "         is started again\n"
            "Exit status: 0 no FAIL, 1 a FAIL, 2 usage error or an ERROR.\n",
            usage_line, vuf_cli_backend_help);
}

/* ---------- cases ---------- */

typedef enum { OUT_NONE, OUT_ACK, OUT_NACK, OUT_CLOSE, OUT_SILENT } outcome;
static const char *const outcome_name[] = {"none", "ack", "nack", "close", "silent"};

typedef enum { V_PASS, V_WARN, V_FAIL, V_SKIP, V_ERROR } verdict;
static const char *const verdict_name[] = {"PASS", "WARN", "FAIL", "SKIP", "ERROR"};

typedef struct {
    char *path, *id, *group, *title, *rule, *section, *prefix, *needs;
    unsigned accept, warn; /* bit per outcome */
    unsigned probe;        /* action of the body (from 1), 0: the last main request */
    char *body;
    /* the result */
    verdict v;
    outcome out;
    char reason[400];
    double seconds;
    char *conversation; /* --verbose, or a FAIL in the JSON report */
} conf_case;

static char *dupn(const char *s, size_t n)
{
    char *d = malloc(n + 1);
    if (d) {
        memcpy(d, s, n);
        d[n] = 0;
    }
    return d;
}

static unsigned outcome_set(const char *s, char *bad, size_t badcap)
{
    unsigned m = 0;
    char buf[256];
    snprintf(buf, sizeof buf, "%s", s);
    for (char *save = NULL, *w = strtok_r(buf, " ,", &save); w; w = strtok_r(NULL, " ,", &save)) {
        int k = 1;
        while (k <= OUT_SILENT && strcmp(w, outcome_name[k]))
            k++;
        if (k > OUT_SILENT) {
            snprintf(bad, badcap, "%s", w);
            return 0;
        }
        m |= 1u << k;
    }
    return m;
}

/* "ack, nack" for a set of outcomes. */
static const char *outcomes_str(unsigned m, char *buf, size_t cap)
{
    size_t n = 0;
    buf[0] = 0;
    for (int k = 1; k <= OUT_SILENT; k++)
        if (m >> k & 1 && n < cap)
            n += (size_t)snprintf(buf + n, cap - n, "%s%s", n ? ", " : "", outcome_name[k]);
    return buf;
}

/* Read a case file: its header, then its body. false with a FILE:LINE:
 * message on stderr. */
static bool load_case(const char *path, conf_case *c)
{
    memset(c, 0, sizeof *c);
    c->path = strdup(path);
    size_t len;
    char err[200];
    char *text = (char *)vuf_read_file(path, 1 << 20, &len, err, sizeof err);
    if (!text) {
        fprintf(stderr, "%s: error: %s\n", path, err);
        return false;
    }
    unsigned line = 0;
    bool ok = true;
    for (char *p = text; *p && ok;) {
        char *nl = strchr(p, '\n');
        size_t n = nl ? (size_t)(nl - p) : strlen(p);
        line++;
        if (n < 2 || p[0] != '#')
            break; /* the header ends at the first line that is not a comment */
        const char *k = p + 1;
        while (*k == ' ')
            k++;
        const char *colon = memchr(k, ':', n - (size_t)(k - p));
        if (colon) {
            size_t kl = (size_t)(colon - k);
            const char *v = colon + 1;
            while (*v == ' ')
                v++;
            char *val = dupn(v, n - (size_t)(v - p));
            char **slot = kl == 7 && !strncmp(k, "conform", 7)   ? &c->id
                          : kl == 5 && !strncmp(k, "group", 5)   ? &c->group
                          : kl == 5 && !strncmp(k, "title", 5)   ? &c->title
                          : kl == 4 && !strncmp(k, "rule", 4)    ? &c->rule
                          : kl == 7 && !strncmp(k, "section", 7) ? &c->section
                          : kl == 6 && !strncmp(k, "prefix", 6)  ? &c->prefix
                          : kl == 5 && !strncmp(k, "needs", 5)   ? &c->needs
                                                                 : NULL;
            char bad[64] = "";
            if (slot) {
                free(*slot);
                *slot = val;
                val = NULL;
            } else if (kl == 6 && !strncmp(k, "accept", 6)) {
                c->accept = outcome_set(val, bad, sizeof bad);
            } else if (kl == 4 && !strncmp(k, "warn", 4)) {
                c->warn = outcome_set(val, bad, sizeof bad);
            } else if (kl == 5 && !strncmp(k, "probe", 5)) {
                uint64_t v64;
                if (!vuf_parse_u64(val, &v64) || v64 < 1 || v64 > 100000) {
                    fprintf(stderr, "%s:%u: error: probe takes an action number from 1\n", path,
                            line);
                    ok = false;
                }
                c->probe = (unsigned)v64;
            }
            if (bad[0]) {
                fprintf(stderr, "%s:%u: error: unknown outcome '%s' (ack, nack, close or silent)\n",
                        path, line, bad);
                ok = false;
            }
            free(val);
        }
        p = nl ? nl + 1 : p + n;
    }
    if (ok && (!c->id || !c->group || !c->accept)) {
        fprintf(stderr,
                "%s:1: error: a case needs '# conform: ID', '# group: G' and "
                "'# accept: OUTCOMES' in its header\n",
                path);
        ok = false;
    }
    c->body = text;
    return ok;
}

static void free_case(conf_case *c)
{
    free(c->path);
    free(c->id);
    free(c->group);
    free(c->title);
    free(c->rule);
    free(c->section);
    free(c->prefix);
    free(c->needs);
    free(c->body);
    free(c->conversation);
}

static int cmp_path(const void *a, const void *b)
{
    return strcmp(((const conf_case *)a)->path, ((const conf_case *)b)->path);
}

/* Every DIR/GROUP/ID.txt (not DIR/prefix/). */
static conf_case *load_cases(const char *dir, size_t *n, bool *ok)
{
    conf_case *v = NULL;
    size_t k = 0, cap = 0;
    *ok = true;
    DIR *d = opendir(dir);
    if (!d) {
        fprintf(stderr, "vufuzz conform: %s: cannot open the case directory\n", dir);
        *ok = false;
        *n = 0;
        return NULL;
    }
    for (struct dirent *g; (g = readdir(d));) {
        if (g->d_name[0] == '.' || !strcmp(g->d_name, "prefix"))
            continue;
        char gd[4096];
        int gl = snprintf(gd, sizeof gd, "%s/%s", dir, g->d_name);
        if (gl < 0 || (size_t)gl >= sizeof gd)
            continue; /* a path too long to open */
        DIR *e = opendir(gd);
        if (!e)
            continue;
        for (struct dirent *f; (f = readdir(e));) {
            size_t l = strlen(f->d_name);
            if (l < 5 || strcmp(f->d_name + l - 4, ".txt"))
                continue;
            if (k == cap) {
                cap = cap ? cap * 2 : 128;
                v = realloc(v, cap * sizeof *v);
            }
            char path[8192];
            snprintf(path, sizeof path, "%s/%s", gd, f->d_name);
            if (!load_case(path, &v[k]))
                *ok = false;
            k++;
        }
        closedir(e);
    }
    closedir(d);
    qsort(v, k, sizeof *v, cmp_path);
    *n = k;
    return v;
}

/* ---------- what the back-end offers ---------- */

typedef struct {
    bool virtio_known, proto_known;
    uint64_t virtio, proto;
} offer;

/* "protocol A B; virtio C; device blk|any": what the back-end (or --device) lacks, or NULL. */
static const char *unmet(const vuf_spec *s, const char *needs, const offer *o, const char *device,
                         char *why, size_t cap)
{
    if (!needs)
        return NULL;
    char buf[512];
    snprintf(buf, sizeof buf, "%s", needs);
    int space = -1; /* 0 protocol, 1 virtio, 2 device */
    for (char *save = NULL, *w = strtok_r(buf, " ;,", &save); w; w = strtok_r(NULL, " ;,", &save)) {
        if (!strcmp(w, "protocol")) {
            space = 0;
        } else if (!strcmp(w, "virtio")) {
            space = 1;
        } else if (!strcmp(w, "device")) {
            space = 2;
        } else if (space == 2 && !strcmp(w, "any")) {
            /* a ring index is judged against the device's queue count */
            if (!device) {
                snprintf(why, cap, "a device type (--device blk|net|...), to judge a ring index");
                return why;
            }
        } else if (space == 2) {
            if (!device || strcmp(device, w)) {
                snprintf(why, cap, "a %s device (--device %s)", w, w);
                return why;
            }
        } else if (space >= 0) {
            int bit = vuf_spec_feature_bit(s, space ? VUF_SPACE_VIRTIO : VUF_SPACE_PROTOCOL, w);
            uint64_t have = space ? o->virtio : o->proto;
            if (bit < 0) {
                snprintf(why, cap, "%s feature %s, which the table does not have",
                         space ? "virtio" : "protocol", w);
                return why;
            }
            if (!(space ? o->virtio_known : o->proto_known) || !(have >> bit & 1)) {
                snprintf(why, cap, "the %s feature %s, not offered", space ? "virtio" : "protocol",
                         w);
                return why;
            }
        }
    }
    return NULL;
}

/* ---------- running a case ---------- */

/* What follows a probe that ends its case (run_case). */
#define BARRIER "F>B main GET_FEATURES\n"

typedef struct {
    const vuf_spec *spec;
    size_t action, probe, barrier; /* barrier: its action, or 0 */
    bool probe_sent, closed_before;
    size_t closed_at;
    outcome out;
    const vuf_msg_def *probe_def;
    bool explicit_reply;
    /* what the back-end offered (discovery) */
    offer off;
    /* violations */
    size_t should, note;
    char should_text[300], note_text[300];
    /* the conversation, for reports */
    vuf_lines conv;
    bool record;
    /* liveness: the GET_FEATURES reply came */
    bool answered;
} observer;

static void record(observer *o, const char *line)
{
    vuf_lines_add(&o->conv, line);
}

static void obs_action(void *ctx, size_t i, const Vuf__Action *a)
{
    observer *o = ctx;
    o->action = i;
    if (i == o->probe && a->action_case == VUF__ACTION__ACTION_SEND) {
        /* the probe goes out now (whole or cut: its events may come later) */
        uint32_t id;
        o->probe_sent = true;
        o->probe_def = vuf_session_msg_def(o->spec, VUF_CHAN_FRONTEND, a->send, &id);
    }
    if (o->record) {
        char *t = vuf_session_format_action(o->spec, a);
        char line[600];
        snprintf(line, sizeof line, "# action %zu: %s", i, t ? t : "?");
        record(o, line);
        free(t);
    }
}

static void obs_event(void *ctx, const vuf_event *ev)
{
    observer *o = ctx;
    if (o->record) {
        char line[8192];
        int n = vuf_trace_format_event(o->spec, ev, line, sizeof line);
        if (n > 0 && (size_t)n < sizeof line)
            record(o, line);
    }
    if (ev->channel != VUF_CHAN_FRONTEND)
        return;
    vuf_msg_view v;
    bool ok =
        ev->kind == VUF_EV_MSG && vuf_msg_decode(o->spec, VUF_CHAN_FRONTEND, ev->data, ev->len, &v);
    if (ok && ev->sender == VUF_SIDE_BACKEND && v.is_reply && v.def &&
        !strcmp(v.def->name, "GET_FEATURES") && v.payload_len == 8) {
        memcpy(&o->off.virtio, v.payload, 8);
        o->off.virtio_known = true;
        o->answered = true;
    }
    if (ok && ev->sender == VUF_SIDE_BACKEND && v.is_reply && v.def &&
        !strcmp(v.def->name, "GET_PROTOCOL_FEATURES") && v.payload_len == 8) {
        memcpy(&o->off.proto, v.payload, 8);
        o->off.proto_known = true;
    }
    if (ev->kind == VUF_EV_CLOSE && ev->sender == VUF_SIDE_BACKEND) {
        if (o->probe_sent && o->out == OUT_NONE)
            o->out = OUT_CLOSE;
        else if (!o->probe_sent && !o->closed_before) {
            o->closed_before = true;
            o->closed_at = o->action;
        }
        return;
    }
    if (!ok)
        return;
    if (ev->sender == VUF_SIDE_BACKEND && v.is_reply && o->probe_sent && o->out == OUT_NONE &&
        o->barrier && o->action >= o->barrier && v.def && !strcmp(v.def->name, "GET_FEATURES") &&
        !(o->probe_def && !strcmp(o->probe_def->name, "GET_FEATURES"))) {
        o->out = OUT_SILENT; /* the barrier answered, the probe was not */
        return;
    }
    if (ev->sender == VUF_SIDE_BACKEND && v.is_reply && o->probe_sent && o->out == OUT_NONE) {
        /* the probe's answer: success, or the failure form its table row
         * says (an explicit reply: reply-error; an ack: a u64 not 0) */
        uint64_t val = 0;
        bool u64 = v.payload_len == 8;
        if (u64)
            memcpy(&val, v.payload, 8);
        const vuf_msg_def *d = o->probe_def;
        bool explicit_reply = d && d->reply == VUF_REPLY_ALWAYS;
        bool failed = explicit_reply ? (d->reply_error == VUF_RERR_EMPTY && v.payload_len == 0) ||
                                           (d->reply_error == VUF_RERR_U64 && u64 && val != 0)
                                     : !u64 || val != 0;
        o->out = failed ? OUT_NACK : OUT_ACK;
    }
}

static void obs_violation(void *ctx, const vuf_violation *v)
{
    observer *o = ctx;
    if (v->side == VUF_SIDE_BACKEND && v->level == VUF_SHOULD) {
        if (!o->should)
            snprintf(o->should_text, sizeof o->should_text, "SHOULD %s: %s: %s", v->rule->id,
                     v->msg, v->text);
        o->should++;
    } else if (v->side == VUF_SIDE_BACKEND && v->level == VUF_NOTE) {
        if (!o->note)
            snprintf(o->note_text, sizeof o->note_text, "NOTE %s: %s: %s", v->rule->id, v->msg,
                     v->text);
        o->note++;
    }
}

/* The case's session: its prefix, then its body. */
static Vuf__Session *case_session(const vuf_spec *s, const char *dir, const conf_case *c,
                                  const char *tail, size_t *prefix_actions, char *err, size_t cap)
{
    char *text = NULL;
    size_t plen = 0;
    *prefix_actions = 0;
    if (c->prefix) {
        char path[4096];
        int pl = snprintf(path, sizeof path, "%s/prefix/%s.txt", dir, c->prefix);
        if (pl < 0 || (size_t)pl >= sizeof path) {
            snprintf(err, cap, "prefix %s: the path is too long", c->prefix);
            return NULL;
        }
        char e[200];
        text = (char *)vuf_read_file(path, 1 << 20, &plen, e, sizeof e);
        if (!text) {
            if (snprintf(err, cap, "prefix %s: %s", path, e) < 0)
                err[0] = 0;
            return NULL;
        }
        vuf_diag d;
        Vuf__Session *ps = vuf_session_parse_text(s, text, plen, path, &d);
        if (!ps) {
            snprintf(err, cap, "%s:%u:%u: %s", d.file, d.line, d.col, d.text);
            free(text);
            return NULL;
        }
        *prefix_actions = ps->n_actions;
        vuf_session_free(ps);
    }
    size_t blen = strlen(c->body), tlen = tail ? strlen(tail) : 0;
    char *all = malloc(plen + blen + tlen + 3);
    if (plen)
        memcpy(all, text, plen);
    all[plen] = '\n';
    memcpy(all + plen + 1, c->body, blen);
    all[plen + 1 + blen] = '\n';
    memcpy(all + plen + 2 + blen, tail ? tail : "", tlen + 1);
    free(text);
    vuf_diag d;
    /* diagnostics name the case file (the prefix's lines come first) */
    Vuf__Session *ses = vuf_session_parse_text(s, all, plen + 2 + blen + tlen, c->path, &d);
    free(all);
    if (!ses && snprintf(err, cap, "%s:%u:%u: %s (line numbers count the prefix's lines first)",
                         d.file, d.line, d.col, d.text) < 0)
        err[0] = 0;
    return ses;
}

static size_t last_main_send(const Vuf__Session *s)
{
    for (size_t i = s->n_actions; i > 0; i--)
        if (s->actions[i - 1]->action_case == VUF__ACTION__ACTION_SEND)
            return i;
    return 0;
}

static void setv(conf_case *c, verdict v, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void setv(conf_case *c, verdict v, const char *fmt, ...)
{
    c->v = v;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(c->reason, sizeof c->reason, fmt, ap);
    va_end(ap);
}

typedef struct {
    const vuf_spec *spec;
    const char *dir, *device;
    vuf_harness *h;
    observer *obs;
    vuf_level level;
    bool verbose;
    vuf_backend *be;
    bool exec; /* --exec: restarted when it dies */
    /* --connect: the back-end stopped answering (the cases left are not run) */
    bool gone;
    char gone_why[300];
} runner;

/* A fresh connection asks GET_FEATURES: is the back-end still there? */
static bool alive(runner *r, vuf_finding *f)
{
    static const char text[] = "F>B main GET_FEATURES\n";
    vuf_diag d;
    Vuf__Session *s = vuf_session_parse_text(r->spec, text, sizeof text - 1, "liveness", &d);
    observer *o = r->obs;
    bool rec = o->record;
    o->record = false;
    o->probe = 0;
    /* A connection closed unanswered may be a server still tearing the last
     * one down (one that serves one connection at a time): a second try a
     * moment later. No answer in time (a hang) is not tried again. */
    for (int attempt = 0; attempt < 2; attempt++) {
        if (attempt)
            usleep(200000);
        o->answered = false;
        *f = vuf_harness_run(r->h, s);
        if (o->answered || f->kind == VUF_FINDING_HANG)
            break;
    }
    o->record = rec;
    vuf_session_free(s);
    return o->answered;
}

static void run_case(runner *r, conf_case *c)
{
    observer *o = r->obs;
    double t0 = vuf_now_s();
    char why[200], err[400], exp[64];
    if (unmet(r->spec, c->needs, &o->off, r->device, why, sizeof why)) {
        setv(c, V_SKIP, "needs %s", why);
        return;
    }
    if (r->gone) {
        setv(c, V_ERROR, "not run: %s", r->gone_why);
        return;
    }
    size_t pre;
    Vuf__Session *s = case_session(r->spec, r->dir, c, NULL, &pre, err, sizeof err);
    if (!s) {
        setv(c, V_ERROR, "the case does not load: %s", err);
        return;
    }
    size_t probe = c->probe ? pre + c->probe : last_main_send(s);
    /* (not after a probe whose framing is the point: its header's size or a
     * cut; the barrier's bytes would complete it) */
    const Vuf__Message *pm = probe && probe <= s->n_actions &&
                                     s->actions[probe - 1]->action_case == VUF__ACTION__ACTION_SEND
                                 ? s->actions[probe - 1]->send
                                 : NULL;
    bool barrier = pm && probe == s->n_actions && !pm->has_size && !pm->has_truncate;
    if (barrier) {
        /* The probe ends the session: a barrier after it, which the
         * back-end answers in order. A back-end that closes over the probe
         * has closed before it; one that answers it first and not the
         * probe was silent. Without it, a close a moment late would look
         * like silence. */
        vuf_session_free(s);
        s = case_session(r->spec, r->dir, c, BARRIER, &pre, err, sizeof err);
        if (!s) {
            setv(c, V_ERROR, "the case does not load: %s", err);
            return;
        }
    }
    if (!probe || probe > s->n_actions ||
        s->actions[probe - 1]->action_case != VUF__ACTION__ACTION_SEND) {
        setv(c, V_ERROR, "the probe (action %zu) is not a front-end message", probe);
        vuf_session_free(s);
        return;
    }
    offer keep = o->off;
    vuf_lines_free(&o->conv);
    *o = (observer){.spec = r->spec,
                    .probe = probe,
                    .barrier = barrier ? probe + 1 : 0,
                    .off = keep,
                    .record = true};
    vuf_finding f = vuf_harness_run(r->h, s);
    vuf_session_free(s);
    if (o->probe_sent && o->out == OUT_NONE)
        o->out = OUT_SILENT;
    c->out = o->out;
    if (f.kind == VUF_FINDING_TARGET_ERROR || f.kind == VUF_FINDING_BAD_INPUT)
        setv(c, V_ERROR, "%s", f.text);
    else if (f.kind)
        setv(c, V_FAIL, "%s %s at action %zu: %s", vuf_finding_kind_name(f.kind), f.rule, f.action,
             f.text);
    else if (o->closed_before) /* (the checker judged the close: REACT-CLOSE) */
        setv(c, V_WARN,
             "the back-end closed the connection at action %zu, before the probe: the case "
             "did not run",
             o->closed_at);
    else if (!o->probe_sent)
        setv(c, V_ERROR, "the probe was not sent");
    else if (c->warn >> o->out & 1)
        setv(c, V_WARN, "the back-end's answer to the probe was '%s' (allowed, not recommended)",
             outcome_name[o->out]);
    /* An answer the case does not expect breaks no MUST by itself (the
     * rst's reactions are SHOULDs: "should close", "should be set to zero
     * on success or non-zero on failure"); a MUST it breaks, the checker
     * reports above. */
    else if (!(c->accept >> o->out & 1))
        setv(c, V_WARN,
             "the back-end's answer to the probe was '%s', not one the case expects (%s)",
             outcome_name[o->out], outcomes_str(c->accept, exp, sizeof exp));
    else if (o->should)
        setv(c, V_WARN, "%s", o->should_text);
    else if (o->note && r->level == VUF_NOTE)
        setv(c, V_WARN, "%s", o->note_text);
    else
        setv(c, V_PASS, "answer '%s'", outcome_name[o->out]);
    if (f.kind == VUF_FINDING_CRASH || f.kind == VUF_FINDING_SANITIZER ||
        f.kind == VUF_FINDING_EXIT) {
        char tail[4096];
        if (vuf_backend_log_tail(r->be, tail, sizeof tail)) { /* what it said as it died */
            record(o, "# the back-end's last output:");
            for (char *l = tail, *e; *l; l = e + !!*e) {
                e = l + strcspn(l, "\n");
                char line[600];
                snprintf(line, sizeof line, "#   %.*s", (int)(e - l < 500 ? e - l : 500), l);
                record(o, line);
            }
        }
    }
    c->conversation = vuf_lines_take(&o->conv);
    vuf_finding lf = {0};
    bool up = true;
    if (c->v != V_ERROR) {
        up = alive(r, &lf);
        if (!up) {
            setv(c, V_FAIL, "afterwards, a fresh connection got no answer to GET_FEATURES%s%s",
                 lf.kind ? ": " : "", lf.kind ? lf.text : "");
        } else if (lf.kind && lf.kind != VUF_FINDING_BAD_INPUT && c->v != V_FAIL) {
            setv(c, V_FAIL, "afterwards: %s %s: %s", vuf_finding_kind_name(lf.kind), lf.rule,
                 lf.text);
        }
    }
    /* A back-end that cannot be reached any more: the cases left are not
     * run (--connect: nobody restarts it; --exec: it does not start). */
    if (r->exec && f.kind == VUF_FINDING_TARGET_ERROR) /* a second chance to start */
        up = alive(r, &lf);
    if (r->exec && !up) {
        /* alive but deaf (a hang): the case's verdict says so; the next
         * cases get a fresh process */
        char err[300];
        if (vuf_backend_restart(r->be, err, sizeof err) == 0) {
            up = alive(r, &lf);
        } else {
            lf.kind = VUF_FINDING_TARGET_ERROR;
            snprintf(lf.text, sizeof lf.text, "%s", err);
        }
    }
    if (r->exec ? !up && lf.kind == VUF_FINDING_TARGET_ERROR
                : !up || f.kind == VUF_FINDING_TARGET_ERROR) {
        r->gone = true;
        snprintf(r->gone_why, sizeof r->gone_why,
                 "the back-end stopped answering at %s/%s (%.200s)", c->group, c->id,
                 lf.kind  ? lf.text
                 : f.kind ? f.text
                          : "no answer to GET_FEATURES");
    }
    c->seconds = vuf_now_s() - t0;
}

/* ---------- reports ---------- */

static bool selected(const conf_case *c, char **cases, size_t ncases, char **groups, size_t ngroups)
{
    bool in = !ncases && !ngroups;
    for (size_t i = 0; i < ncases && !in; i++)
        in = !fnmatch(cases[i], c->id, 0);
    for (size_t i = 0; i < ngroups && !in; i++)
        in = !strcmp(groups[i], c->group);
    return in;
}

static void write_json(const char *path, const char *target, conf_case *cs, size_t n,
                       const unsigned counts[][5], char **gnames, size_t ng, vuf_level level)
{
    FILE *f = fopen(path, "w");
    if (!f) {
        perror(path);
        return;
    }
    vuf_json j;
    vuf_json_init(&j, f);
    vuf_json_object(&j, NULL);
    vuf_cli_json_meta(&j);
    vuf_json_str(&j, "target", target);
    vuf_json_str(&j, "level", vuf_level_name(level));
    vuf_json_bool(&j, "strict", level != VUF_MUST);
    vuf_json_array(&j, "cases");
    for (size_t i = 0; i < n; i++) {
        if (!cs[i].path || cs[i].v == V_ERROR + 1)
            continue;
        vuf_json_object(&j, NULL);
        vuf_json_str(&j, "id", cs[i].id);
        vuf_json_str(&j, "group", cs[i].group);
        vuf_json_str(&j, "title", cs[i].title);
        vuf_json_str(&j, "rule", cs[i].rule);
        vuf_json_str(&j, "section", cs[i].section);
        vuf_json_str(&j, "file", cs[i].path);
        vuf_json_str(&j, "verdict", verdict_name[cs[i].v]);
        vuf_json_str(&j, "answer", cs[i].out ? outcome_name[cs[i].out] : NULL);
        vuf_json_str(&j, "reason", cs[i].reason);
        vuf_json_double(&j, "seconds", cs[i].seconds);
        if (cs[i].v == V_FAIL)
            vuf_json_str(&j, "conversation", cs[i].conversation);
        vuf_json_end(&j);
    }
    vuf_json_end(&j);
    vuf_json_object(&j, "groups");
    for (size_t g = 0; g < ng; g++) {
        vuf_json_object(&j, gnames[g]);
        for (int v = 0; v < 5; v++)
            vuf_json_u64(&j, verdict_name[v], counts[g][v]);
        vuf_json_end(&j);
    }
    vuf_json_end(&j);
    vuf_json_object(&j, "total");
    for (int v = 0; v < 5; v++) {
        uint64_t sum = 0;
        for (size_t g = 0; g < ng; g++)
            sum += counts[g][v];
        vuf_json_u64(&j, verdict_name[v], sum);
    }
    vuf_json_end(&j);
    vuf_json_end(&j);
    vuf_json_finish(&j);
    fclose(f);
}

static void write_junit(const char *path, conf_case *cs, size_t n, char **gnames, size_t ng,
                        const unsigned counts[][5])
{
    FILE *f = fopen(path, "w");
    if (!f) {
        perror(path);
        return;
    }
    vuf_junit_begin(f, "vufuzz conform");
    for (size_t g = 0; g < ng; g++) {
        unsigned total = 0;
        double secs = 0;
        for (int v = 0; v < 5; v++)
            total += counts[g][v];
        for (size_t i = 0; i < n; i++)
            if (cs[i].path && cs[i].v <= V_ERROR && !strcmp(cs[i].group, gnames[g]))
                secs += cs[i].seconds;
        vuf_junit_suite(f, gnames[g], total, counts[g][V_FAIL], counts[g][V_SKIP],
                        counts[g][V_ERROR], secs);
        for (size_t i = 0; i < n; i++) {
            if (!cs[i].path || cs[i].v > V_ERROR || strcmp(cs[i].group, gnames[g]))
                continue;
            vuf_junit_status st = cs[i].v == V_FAIL    ? VUF_JUNIT_FAIL
                                  : cs[i].v == V_SKIP  ? VUF_JUNIT_SKIP
                                  : cs[i].v == V_ERROR ? VUF_JUNIT_ERROR
                                                       : VUF_JUNIT_PASS;
            char cls[128];
            snprintf(cls, sizeof cls, "vufuzz.conform.%s", cs[i].group);
            vuf_junit_case(f, cls, cs[i].id, cs[i].seconds, st, cs[i].reason,
                           st == VUF_JUNIT_FAIL ? cs[i].conversation : NULL);
        }
        vuf_junit_suite_end(f);
    }
    vuf_junit_end(f);
    fclose(f);
}

/* ---------- the command ---------- */

enum {
    O_DEVICE,
    O_CASE,
    O_GROUP,
    O_STRICT,
    O_JSON,
    O_JUNIT,
    O_LIST,
    O_DIR,
    O_VERBOSE,
    O_SPEC,
    O_LEVEL,
    O_BACKEND /* VUF_CLI_BACKEND_N of them */
};

int vuf_cmd_conform(int argc, char **argv)
{
    static const vuf_cli_opt opts[] = {[O_DEVICE] = {"--device", "TYPE"},
                                       [O_CASE] = {"--case", "ID"},
                                       [O_GROUP] = {"--group", "G"},
                                       [O_STRICT] = {"--strict", NULL},
                                       [O_JSON] = {"--json", "FILE"},
                                       [O_JUNIT] = {"--junit", "FILE"},
                                       [O_LIST] = {"--list", NULL},
                                       [O_DIR] = {"--dir", "DIR"},
                                       [O_VERBOSE] = {"--verbose", NULL},
                                       [O_SPEC] = {"--spec", "FILE"},
                                       [O_LEVEL] = {"--level", "L"},
                                       VUF_CLI_BACKEND_OPTS(O_BACKEND),
                                       {NULL, NULL}};
    const char *device = NULL, *json = NULL, *junit = NULL, *dir = getenv("VUF_CONFORM_DIR"),
               *spec_path = NULL, *val;
    bool list = false, verbose = false;
    vuf_level level = VUF_MUST;
    vuf_backend_opts bo = {0};
    char **cases = calloc((size_t)argc, sizeof *cases),
         **groups = calloc((size_t)argc, sizeof *groups);
    size_t ncases = 0, ngroups = 0;
    vuf_cli_parser p;
    vuf_cli_init(&p, "conform", usage_line, opts, argc, argv);
    int rc = -1;
    for (int k; rc < 0 && (k = vuf_cli_next(&p, &val)) != VUF_CLI_END;) {
        switch (k) {
        case VUF_CLI_HELP:
            usage(stdout);
            rc = 0;
            break;
        case VUF_CLI_ERROR:
            rc = 2;
            break;
        case VUF_CLI_POS:
            rc = vuf_cli_usage_error("conform", usage_line, "unexpected '%s'", val);
            break;
        case O_DEVICE:
            device = val;
            break;
        case O_CASE:
            cases[ncases++] = (char *)val;
            break;
        case O_GROUP:
            groups[ngroups++] = (char *)val;
            break;
        case O_STRICT:
            level = VUF_SHOULD;
            break;
        case O_LEVEL:
            if (vuf_level_parse(val, &level) != 0)
                rc = vuf_cli_usage_error("conform", usage_line, "bad --level '%s' (%s)", val,
                                         VUF_LEVEL_ARG);
            break;
        case O_JSON:
            json = val;
            break;
        case O_JUNIT:
            junit = val;
            break;
        case O_LIST:
            list = true;
            break;
        case O_DIR:
            dir = val;
            break;
        case O_VERBOSE:
            verbose = true;
            break;
        case O_SPEC:
            spec_path = val;
            break;
        default: /* the back-end's options */
            if (vuf_cli_backend_opt(&bo, k - O_BACKEND, val, "conform", usage_line))
                rc = 2;
            break;
        }
    }
    if (rc >= 0) {
        free(cases);
        free(groups);
        return rc;
    }
    char defdir[4096];
    if (!dir) {
        snprintf(defdir, sizeof defdir, "%s/conform", VUF_SOURCE_DIR);
        dir = defdir;
    }
    const vuf_spec *spec = vuf_cli_open_spec(spec_path);
    if (!spec) {
        free(cases);
        free(groups);
        return 2;
    }
    size_t n;
    bool loaded;
    conf_case *cs = load_cases(dir, &n, &loaded);
    if (!loaded || !n) {
        if (!n)
            fprintf(stderr, "vufuzz conform: no case in %s\n", dir);
        rc = 2;
        goto out;
    }
    if (list) {
        for (size_t i = 0; i < n; i++)
            if (selected(&cs[i], cases, ncases, groups, ngroups))
                printf("%-14s %-44s %-26s %s\n", cs[i].group, cs[i].id,
                       cs[i].rule ? cs[i].rule : "-", cs[i].title ? cs[i].title : "");
        rc = 0;
        goto out;
    }
    bool given;
    if ((rc = vuf_cli_backend_check(&bo, &given, "conform", usage_line)) != 0)
        goto out;
    if (!given) {
        rc = vuf_cli_usage_error("conform", usage_line,
                                 "give the back-end: --connect PATH or --exec 'CMD {socket}'");
        goto out;
    }
    char berr[1024];
    vuf_backend *be = vuf_backend_new(&bo, berr, sizeof berr);
    if (!be) {
        fprintf(stderr, "vufuzz conform: %s\n", berr);
        rc = 2;
        goto out;
    }
    observer obs = {.spec = spec};
    vuf_harness_opts ho = {.custom = vuf_backend_target(be, spec),
                           .strict = VUF_STRICT_OFF,
                           .stop_on_peer_close = true,
                           .fd_scan_period = 1,
                           .on_event = obs_event,
                           .on_action = obs_action,
                           .on_violation = obs_violation,
                           .device = device ? vuf_spec_device(spec, device) : NULL,
                           .ctx = &obs};
    runner r = {.spec = spec,
                .dir = dir,
                .device = device,
                .obs = &obs,
                .level = level,
                .verbose = verbose,
                .be = be,
                .exec = bo.exec_cmd != NULL};
    r.h = vuf_harness_new(spec, &ho);
    if (!r.h) {
        fprintf(stderr, "vufuzz conform: cannot set up the harness\n");
        vuf_backend_free(be);
        rc = 2;
        goto out;
    }
    /* what the back-end offers: every case's needs are judged against it */
    vuf_finding df;
    {
        static const char disc[] = "F>B main GET_FEATURES\nF>B main GET_PROTOCOL_FEATURES\n";
        vuf_diag d;
        Vuf__Session *s = vuf_session_parse_text(spec, disc, sizeof disc - 1, "discovery", &d);
        df = vuf_harness_run(r.h, s);
        vuf_session_free(s);
    }
    if (df.kind == VUF_FINDING_TARGET_ERROR || !obs.off.virtio_known) {
        fprintf(stderr, "vufuzz conform: the back-end could not be driven: %s\n",
                df.kind ? df.text : "no answer to GET_FEATURES");
        char tail[2048];
        if (vuf_backend_log_tail(be, tail, sizeof tail))
            fprintf(stderr, "its last output:\n%s\n", tail);
        vuf_harness_free(r.h);
        vuf_backend_free(be);
        rc = 2;
        goto out;
    }
    bool tty = isatty(1);
    size_t nsel = 0, done = 0;
    for (size_t i = 0; i < n; i++)
        nsel += selected(&cs[i], cases, ncases, groups, ngroups);
    printf("vufuzz conform: %zu cases against %s (offers virtio 0x%llx, protocol 0x%llx)\n", nsel,
           vuf_backend_name(be), (unsigned long long)obs.off.virtio,
           (unsigned long long)obs.off.proto);
    double t0 = vuf_now_s();
    for (size_t i = 0; i < n; i++) {
        if (!selected(&cs[i], cases, ncases, groups, ngroups)) {
            cs[i].v = V_ERROR + 1; /* not run */
            continue;
        }
        obs.record = true;
        run_case(&r, &cs[i]);
        done++;
        if (cs[i].v == V_WARN && level != VUF_MUST)
            cs[i].v = V_FAIL;
        if (tty || cs[i].v == V_FAIL || cs[i].v == V_ERROR)
            printf("[%3zu/%zu] %-5s %s/%s: %s\n", done, nsel, verdict_name[cs[i].v], cs[i].group,
                   cs[i].id, cs[i].reason);
        if (verbose && cs[i].v != V_PASS && cs[i].v != V_SKIP && cs[i].conversation)
            printf("%s", cs[i].conversation);
        fflush(stdout);
    }
    double secs = vuf_now_s() - t0;
    /* the summary, group by group */
    char *gnames[64];
    size_t ng = 0;
    unsigned counts[64][5];
    memset(counts, 0, sizeof counts);
    unsigned total[5] = {0};
    for (size_t i = 0; i < n; i++) {
        if (cs[i].v > V_ERROR)
            continue;
        size_t g = 0;
        while (g < ng && strcmp(gnames[g], cs[i].group))
            g++;
        if (g == ng && ng < 64)
            gnames[ng++] = cs[i].group;
        if (g < 64) {
            counts[g][cs[i].v]++;
            total[cs[i].v]++;
        }
    }
    printf("\n%-16s %6s %6s %6s %6s %6s\n", "group", "PASS", "WARN", "FAIL", "SKIP", "ERROR");
    for (size_t g = 0; g < ng; g++)
        printf("%-16s %6u %6u %6u %6u %6u\n", gnames[g], counts[g][V_PASS], counts[g][V_WARN],
               counts[g][V_FAIL], counts[g][V_SKIP], counts[g][V_ERROR]);
    printf("%-16s %6u %6u %6u %6u %6u   (%.1f s)\n", "total", total[V_PASS], total[V_WARN],
           total[V_FAIL], total[V_SKIP], total[V_ERROR], secs);
    /* why cases were skipped: one line per reason */
    for (size_t i = 0; i < n; i++) {
        if (cs[i].v != V_SKIP)
            continue;
        bool first = true;
        unsigned same = 0;
        for (size_t k = 0; k < n; k++) {
            if (cs[k].v == V_SKIP && !strcmp(cs[k].reason, cs[i].reason)) {
                first = first && k >= i;
                same++;
            }
        }
        if (first)
            printf("SKIP %u case%s: %s\n", same, vuf_plural(same), cs[i].reason);
    }
    for (size_t i = 0; i < n; i++)
        if (cs[i].v == V_FAIL)
            printf("FAIL %s/%s (%s, %s): %s\n", cs[i].group, cs[i].id,
                   cs[i].rule ? cs[i].rule : "-", cs[i].section ? cs[i].section : "-",
                   cs[i].reason);
    if (json)
        write_json(json, vuf_backend_name(be), cs, n, (const unsigned(*)[5])counts, gnames, ng,
                   level);
    if (junit)
        write_junit(junit, cs, n, gnames, ng, (const unsigned(*)[5])counts);
    vuf_harness_free(r.h);
    vuf_backend_free(be);
    vuf_lines_free(&obs.conv);
    rc = total[V_ERROR] ? 2 : total[V_FAIL] ? 1 : 0;
out:
    for (size_t i = 0; i < n; i++)
        free_case(&cs[i]);
    free(cs);
    free(cases);
    free(groups);
    vuf_spec_release(spec);
    return rc;
}
