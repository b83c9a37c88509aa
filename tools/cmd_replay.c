/* SPDX-License-Identifier: Apache-2.0 */
/* vufuzz replay: run session files against the reference device with the
 * fuzzers' oracles, and print what happened. */
#include "cli.h"
#include "vuf_harness.h"
#include "vuf_json.h"
#include "vuf_ref.h"
#include "vuf_session.h"
#include "vuf_backend.h"
#include "vuf_trace.h"
#include "vuf_util.h"

#include <dirent.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

static const char usage_line[] =
    "usage: vufuzz replay [--sockets | --connect PATH [--pid PID] | --exec 'CMD {socket}'\n"
    "                     | --frontend-exec 'CMD {socket}' [--device blk|net] [--firmware]]\n"
    "                     [--quiet] [--action N] [--stats] [--json] [--raw] [--repeat N]\n"
    "                     [--timeout S] [--reply-timeout MS] [--backend-log FILE]\n"
    "                     [--ready-timeout MS] [--spec FILE] FILE|DIR...";

static void usage(FILE *f)
{
    fprintf(f,
            "%s\n\n"
            "Run sessions (a fuzzer's findings, corpus seeds: binary or text, see\n"
            "docs/session-format.md) against the reference device in this process, with\n"
            "the fuzzers' oracles, and print the conversation in the trace format, each\n"
            "action (numbered from 1, as `vufuzz session check` counts) before the\n"
            "messages it caused, then the verdict: the rule the device broke (MUST, or\n"
            "SHOULD: the reference device promises to refuse every broken request), an fd\n"
            "leak, a guest-memory write outside the device's buffers. A sanitizer report,\n"
            "when the binary is built with sanitizers, is printed by the sanitizer itself.\n"
            "A session that does not play against the table (a message that does not\n"
            "build, as `vufuzz session check` says) is a bad input, never 'clean'.\n\n"
            "  --sockets    over real socket pairs and the device's connection layer (the\n"
            "               fuzz_session_sockets target), instead of in process\n\n"
            "Against a front-end instead (back-end sessions, 'role backend': the\n"
            "findings of `vufuzz fuzz-frontend`; vufuzz plays the reference device with\n"
            "the session's deviations, a fresh front-end per session):\n"
            "  --frontend-exec 'CMD'  start the front-end: CMD goes to bash -c with\n"
            "               {socket} replaced by the path vufuzz listens on (a QEMU\n"
            "               command gets -qmp and, without --firmware, -S: see\n"
            "               `vufuzz fuzz-frontend --help`); its oracles: a crash, an\n"
            "               assertion, a hang (QMP), the front-end's MUST violations\n"
            "%s\n"
            "Against any vhost-user back-end instead (a new connection per session;\n"
            "replies the checker says are owed are awaited, then a hang is a finding;\n"
            "with --exec, the back-end's last output follows a crash):\n"
            "%s"
            "\nOther options:\n"
            "  --quiet      only the verdict lines\n"
            "  --action N   only the conversation around action N (two actions each side)\n"
            "  --stats      after the runs: which table messages the device accepted\n"
            "               (front-end channel) or sent (back-end channel), and counts\n"
            "  --json       the verdicts (and --stats) as one JSON object on stdout\n"
            "  --raw        the files are raw bytes for the main channel (fuzz_raw inputs)\n"
            "  --repeat N   run each session N times and print its throughput\n"
            "               (sessions/s, actions/s, messages/s; implies --quiet)\n"
            "  --timeout S  a session that runs longer than S seconds is a stall (10)\n"
            "  --spec FILE  use this table instead of the built-in one\n\n"
            "Directories are read non-recursively, files in name order.\n"
            "Exit status: 0 every session clean, 1 a finding, 2 bad input or usage.\n",
            usage_line, vuf_cli_frontend_help, vuf_cli_backend_help);
}

typedef struct {
    const vuf_spec *spec;
    bool quiet;
    size_t action, focus; /* the action running; --action N (0: all) */
} replay_ctx;

static replay_ctx *alarm_ctx;

static void on_alarm(int sig)
{
    (void)sig;
    /* async-signal-safe: build the line by hand */
    char msg[96] = "STALL: the device did not return in time (a blocking wait) at action ";
    size_t n = strlen(msg), a = alarm_ctx ? alarm_ctx->action : 0;
    char digits[24];
    size_t k = 0;
    do {
        digits[k++] = (char)('0' + a % 10);
        a /= 10;
    } while (a && k < sizeof digits);
    while (k && n < sizeof msg - 2)
        msg[n++] = digits[--k];
    msg[n++] = '\n';
    if (write(2, msg, n) < 0) {
        /* nothing more to do */
    }
    _exit(1);
}

/* Is the running action inside the --action window? */
static bool shown(const replay_ctx *c)
{
    if (c->quiet)
        return false;
    return !c->focus || (c->action + 2 >= c->focus && c->action <= c->focus + 2);
}

static void on_event(void *ctx, const vuf_event *ev)
{
    replay_ctx *c = ctx;
    if (!shown(c))
        return;
    char line[32768];
    int n = vuf_trace_format_event(c->spec, ev, line, sizeof line);
    if (n >= 0 && (size_t)n < sizeof line)
        printf("%s\n", line);
}

static void on_action(void *ctx, size_t i, const Vuf__Action *a)
{
    replay_ctx *c = ctx;
    c->action = i;
    if (!shown(c))
        return;
    char *text = vuf_session_format_action(c->spec, a);
    printf("# action %zu: %s\n", i, text ? text : "?");
    free(text);
}

/* One session's verdict in a --json report. */
static void json_verdict(vuf_json *j, const char *file, const vuf_finding *f)
{
    vuf_json_object(j, NULL);
    vuf_json_str(j, "file", file);
    vuf_json_str(j, "verdict", f->kind ? vuf_finding_kind_name(f->kind) : "clean");
    if (f->kind) {
        vuf_json_str(j, "rule", f->rule);
        vuf_json_u64(j, "action", f->action);
        vuf_json_str(j, "text", f->text);
    }
}

/* A program's last output, as trace comments (the output stays a trace). */
static void print_output(const char *whose, const char *tail)
{
    printf("# the %s's last output:\n", whose);
    for (const char *l = tail, *e; *l; l = e + !!*e) {
        e = l + strcspn(l, "\n");
        printf("#   %.*s\n", (int)(e - l), l);
    }
}

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

static bool push(char ***v, size_t *k, size_t *cap, const char *path)
{
    if (*k == *cap) {
        size_t nc = *cap ? *cap * 2 : 64;
        char **nv = realloc(*v, nc * sizeof *nv);
        if (!nv)
            return false;
        *v = nv;
        *cap = nc;
    }
    (*v)[(*k)++] = strdup(path);
    return true;
}

/* Expand directories into their regular files, sorted. */
static char **collect(char **args, size_t n, size_t *count)
{
    char **v = NULL;
    size_t k = 0, cap = 0;
    for (size_t i = 0; i < n; i++) {
        struct stat st;
        DIR *d = stat(args[i], &st) == 0 && S_ISDIR(st.st_mode) ? opendir(args[i]) : NULL;
        if (!d) {
            push(&v, &k, &cap, args[i]);
            continue;
        }
        size_t first = k;
        for (struct dirent *e; (e = readdir(d));) {
            char path[4096];
            int dl = (int)strlen(args[i]);
            while (dl > 1 && args[i][dl - 1] == '/')
                dl--; /* "corpus/" names corpus/x, not corpus//x */
            snprintf(path, sizeof path, "%.*s/%s", dl, args[i], e->d_name);
            if (e->d_name[0] != '.' && stat(path, &st) == 0 && S_ISREG(st.st_mode) &&
                !push(&v, &k, &cap, path))
                break;
        }
        closedir(d);
        qsort(v + first, k - first, sizeof *v, cmp_str);
    }
    *count = k;
    return v;
}

/* A fuzz_raw input as a session: one raw action on the main channel. */
static Vuf__Session *raw_session(const char *path, vuf_diag *d)
{
    memset(d, 0, sizeof *d);
    snprintf(d->file, sizeof d->file, "%s", path);
    size_t n = 0;
    char err[160];
    uint8_t *buf = vuf_read_file(path, VUF_SESSION_MAX_DATA, &n, err, sizeof err);
    Vuf__Session *s = calloc(1, sizeof *s);
    Vuf__Action *a = calloc(1, sizeof *a);
    Vuf__Raw *r = calloc(1, sizeof *r);
    Vuf__Action **acts = calloc(1, sizeof *acts);
    if (!buf || !s || !a || !r || !acts) {
        snprintf(d->text, sizeof d->text, "%s", buf ? "out of memory" : err);
        free(buf);
        free(s);
        free(a);
        free(r);
        free(acts);
        return NULL;
    }
    vuf__session__init(s);
    vuf__action__init(a);
    vuf__raw__init(r);
    r->data.data = buf;
    r->data.len = n;
    a->action_case = VUF__ACTION__ACTION_RAW;
    a->raw = r;
    acts[0] = a;
    s->actions = acts;
    s->n_actions = 1;
    return s; /* built with malloc: vuf_session_free() frees it */
}

static void print_throughput(vuf_harness *h, const Vuf__Session *s, const char *file, long repeat,
                             vuf_finding *f)
{
    vuf_harness_stats a, b;
    vuf_harness_stats_get(h, &a);
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    for (long k = 1; k < repeat && !f->kind; k++)
        *f = vuf_harness_run(h, s);
    clock_gettime(CLOCK_MONOTONIC, &t1);
    vuf_harness_stats_get(h, &b);
    double sec = (double)(t1.tv_sec - t0.tv_sec) + (t1.tv_nsec - t0.tv_nsec) / 1e9;
    double runs = (double)(b.sessions - a.sessions);
    if (runs < 1 || sec <= 0)
        return;
    printf("%s: %.0f sessions/s, %.0f actions/s, %.0f messages/s (%.1f us per session, "
           "%.1f actions and %.1f messages per session, %s target)\n",
           file, runs / sec, (double)(b.actions - a.actions) / sec,
           (double)(b.messages - a.messages) / sec, sec * 1e6 / runs,
           (double)(b.actions - a.actions) / runs, (double)(b.messages - a.messages) / runs,
           vuf_harness_target_name(h));
}

static void print_stats(vuf_harness *h, const vuf_spec *spec, vuf_json *j)
{
    /* the device's handlers, to tell unreached from unsupported */
    vuf_ref_config cfg;
    vuf_ref_config_default(&cfg);
    static uint8_t disk[4096];
    cfg.disk = disk;
    cfg.disk_size = sizeof disk;
    char err[160];
    vuf_ref *probe = vuf_ref_new(spec, &cfg, err, sizeof err);
    vuf_harness_stats st;
    vuf_harness_stats_get(h, &st);
    if (j) {
        vuf_json_object(j, "stats");
        vuf_json_u64(j, "sessions", st.sessions);
        vuf_json_u64(j, "actions", st.actions);
        vuf_json_u64(j, "events", st.events);
        vuf_json_u64(j, "requests_completed", st.chains);
        vuf_json_u64(j, "guest_checks", st.guest_checks);
        vuf_json_u64(j, "guest_disarmed", st.guest_disarmed);
        vuf_json_object(j, "accepted");
    } else {
        printf("\n%llu sessions, %llu actions, %llu events, %llu block requests completed, "
               "guest oracle: %llu checks, disarmed in %llu sessions\n",
               (unsigned long long)st.sessions, (unsigned long long)st.actions,
               (unsigned long long)st.events, (unsigned long long)st.chains,
               (unsigned long long)st.guest_checks, (unsigned long long)st.guest_disarmed);
        printf("%-9s %-4s %-34s %-10s %s\n", "channel", "id", "message", "device", "accepted/sent");
    }
    for (int ch = 0; ch < VUF_CHAN_COUNT; ch++)
        for (size_t i = 0; i < vuf_spec_msg_count(spec, (vuf_channel)ch); i++) {
            const vuf_msg_def *m = vuf_spec_msg_at(spec, (vuf_channel)ch, i);
            uint64_t a = vuf_harness_accepted(h, (vuf_channel)ch, m->id);
            bool sup = probe && vuf_ref_supports(probe, (vuf_channel)ch, m->id);
            if (j) {
                vuf_json_object(j, m->name);
                vuf_json_str(j, "channel", vuf_channel_name((vuf_channel)ch));
                vuf_json_bool(j, "supported", sup);
                vuf_json_u64(j, "count", a);
                vuf_json_end(j);
            } else {
                printf("%-9s %-4u %-34s %-10s %llu\n", vuf_channel_name((vuf_channel)ch), m->id,
                       m->name, sup ? "supported" : "refused", (unsigned long long)a);
            }
        }
    if (j) {
        vuf_json_end(j);
        vuf_json_end(j);
    }
    vuf_ref_free(probe);
}

enum {
    O_SOCKETS,
    O_QUIET,
    O_ACTION,
    O_STATS,
    O_JSON,
    O_RAW,
    O_REPEAT,
    O_TIMEOUT,
    O_SPEC,
    O_FRONTEND_EXEC,
    O_BACKEND,                                 /* VUF_CLI_BACKEND_N of them */
    O_FRONTEND = O_BACKEND + VUF_CLI_BACKEND_N /* VUF_CLI_FRONTEND_N of them */
};

/* The end of a report: the totals in the JSON object j is in (NULL: text,
 * one line when there were several sessions). */
static void summary(vuf_json *j, size_t n, size_t findings, size_t bad)
{
    if (j) {
        vuf_json_u64(j, "findings", findings);
        vuf_json_u64(j, "bad_inputs", bad);
        vuf_json_end(j);
        vuf_json_finish(j);
    } else if (n > 1) {
        printf("%zu sessions: %zu findings, %zu bad inputs\n", n, findings, bad);
    }
}

/* ---------- against a front-end ---------- */

static void on_violation(void *ctx, const vuf_violation *v)
{
    replay_ctx *c = ctx;
    if (shown(c) && v->side == VUF_SIDE_FRONTEND)
        printf("# %s %s side=frontend msg=%s: %s\n", vuf_level_name(v->level), v->rule->id, v->msg,
               v->text);
}

static int replay_frontend(const vuf_spec *spec, vuf_frontend_opts *fo, char **files, size_t n,
                           replay_ctx *ctx, bool json)
{
    char err[1024];
    fo->on_event = on_event;
    fo->on_action = on_action;
    fo->on_violation = on_violation;
    fo->ctx = ctx;
    fo->pool = -1; /* one at a time: a replay waits for nothing */
    vuf_frontend *f = vuf_frontend_new(spec, fo, err, sizeof err);
    if (!f) {
        fprintf(stderr, "vufuzz replay: %s\n", err);
        for (size_t i = 0; i < n; i++)
            free(files[i]);
        return 2;
    }
    vuf_json j;
    if (json) {
        vuf_json_init(&j, stdout);
        vuf_json_object(&j, NULL);
        vuf_cli_json_meta(&j);
        vuf_json_str(&j, "frontend", vuf_frontend_command(f));
        vuf_json_array(&j, "sessions");
    }
    size_t findings = 0, bad = 0;
    for (size_t i = 0; i < n; i++) {
        vuf_diag d;
        Vuf__Session *s = vuf_session_load_file(spec, files[i], NULL, &d);
        vuf_finding fd = {0};
        vuf_frontend_result r = {0};
        if (!s) {
            vuf_cli_print_diag(stderr, &d, true);
            fd.kind = VUF_FINDING_BAD_INPUT;
            snprintf(fd.text, sizeof fd.text, "%s", d.text);
        } else {
            if (!ctx->quiet)
                printf("# %s\n", files[i]);
            ctx->action = 0;
            fd = vuf_frontend_run(f, s, &r);
            vuf_session_free(s);
        }
        bool is_bad = fd.kind == VUF_FINDING_BAD_INPUT || fd.kind == VUF_FINDING_TARGET_ERROR;
        bad += is_bad;
        findings += fd.kind && !is_bad;
        if (json) {
            json_verdict(&j, files[i], &fd);
            vuf_json_str(&j, "status", r.status);
            vuf_json_str(&j, "frontend_output", r.output);
            vuf_json_end(&j);
        } else if (fd.kind == VUF_FINDING_BAD_INPUT) {
            printf("%s: BAD INPUT at action %zu: %s\n", files[i], fd.action, fd.text);
        } else if (fd.kind == VUF_FINDING_TARGET_ERROR) {
            fprintf(stderr, "%s: error: %s\n", files[i], fd.text);
            printf("%s: TARGET ERROR: %s\n", files[i], fd.text);
        } else if (fd.kind) {
            printf("%s: FINDING %s %s at action %zu: %s\n", files[i],
                   vuf_finding_kind_name(fd.kind), fd.rule, fd.action, fd.text);
            if (r.output[0])
                print_output("front-end", r.output);
        } else {
            printf("%s: clean (%.2f s, the front-end %s)\n", files[i], r.seconds, r.status);
        }
        free(files[i]);
    }
    if (json)
        vuf_json_end(&j);
    summary(json ? &j : NULL, n, findings, bad);
    vuf_frontend_free(f);
    return bad ? 2 : findings ? 1 : 0;
}

int vuf_cmd_replay(int argc, char **argv)
{
    static const vuf_cli_opt opts[] = {[O_SOCKETS] = {"--sockets", NULL},
                                       [O_QUIET] = {"--quiet", NULL},
                                       [O_ACTION] = {"--action", "N"},
                                       [O_STATS] = {"--stats", NULL},
                                       [O_JSON] = {"--json", NULL},
                                       [O_RAW] = {"--raw", NULL},
                                       [O_REPEAT] = {"--repeat", "N"},
                                       [O_TIMEOUT] = {"--timeout", "S"},
                                       [O_SPEC] = {"--spec", "FILE"},
                                       [O_FRONTEND_EXEC] = {"--frontend-exec", "CMD"},
                                       VUF_CLI_BACKEND_OPTS(O_BACKEND),
                                       VUF_CLI_FRONTEND_OPTS(O_FRONTEND),
                                       {NULL, NULL}};
    const char *spec_path = NULL, *val;
    bool quiet = false, stats = false, json = false, raw = false, sockets = false;
    uint64_t timeout = 10, repeat = 1, focus = 0;
    vuf_backend_opts bo = {0};
    vuf_frontend_opts fo = {0};
    const char *frontend_exec = NULL;
    bool frontend_opts = false;
    char **pos = calloc((size_t)argc, sizeof *pos);
    size_t npos = 0;
    vuf_cli_parser p;
    vuf_cli_init(&p, "replay", usage_line, opts, argc, argv);
    for (int k; (k = vuf_cli_next(&p, &val)) != VUF_CLI_END;) {
        switch (k) {
        case VUF_CLI_HELP:
            usage(stdout);
            free(pos);
            return 0;
        case VUF_CLI_ERROR:
            free(pos);
            return 2;
        case VUF_CLI_POS:
            pos[npos++] = (char *)val;
            break;
        case O_SOCKETS:
            sockets = true;
            break;
        case O_QUIET:
            quiet = true;
            break;
        case O_STATS:
            stats = true;
            break;
        case O_JSON:
            json = quiet = true;
            break;
        case O_RAW:
            raw = true;
            break;
        case O_SPEC:
            spec_path = val;
            break;
        case O_FRONTEND_EXEC:
            frontend_exec = val;
            break;
        default: /* the back-end's and the front-end's options */
            if (k >= O_FRONTEND) {
                frontend_opts = true;
                if (vuf_cli_frontend_opt(&fo, k - O_FRONTEND, val, "replay", usage_line)) {
                    free(pos);
                    return 2;
                }
                break;
            }
            if (vuf_cli_backend_opt(&bo, k - O_BACKEND, val, "replay", usage_line)) {
                free(pos);
                return 2;
            }
            break;
        case O_ACTION:
            if (!vuf_parse_u64(val, &focus) || focus < 1) {
                free(pos);
                return vuf_cli_usage_error("replay", usage_line, "bad action number '%s' (from 1)",
                                           val);
            }
            break;
        case O_TIMEOUT:
            if (!vuf_parse_u64(val, &timeout) || timeout < 1 || timeout > 86400) {
                free(pos);
                return vuf_cli_usage_error("replay", usage_line, "bad timeout '%s' (1..86400 s)",
                                           val);
            }
            break;
        case O_REPEAT:
            if (!vuf_parse_u64(val, &repeat) || repeat < 1 || repeat > 100000000) {
                free(pos);
                return vuf_cli_usage_error("replay", usage_line, "bad repeat count '%s'", val);
            }
            quiet = true;
            break;
        }
    }
    if (!npos) {
        free(pos);
        return vuf_cli_usage_error("replay", usage_line, "no session file");
    }
    bool external;
    if (vuf_cli_backend_check(&bo, &external, "replay", usage_line)) {
        free(pos);
        return 2;
    }
    if (external && sockets) {
        free(pos);
        return vuf_cli_usage_error("replay", usage_line,
                                   "--sockets or an external back-end, not both");
    }
    if (frontend_exec && (external || sockets || raw || repeat > 1 || stats)) {
        free(pos);
        return vuf_cli_usage_error("replay", usage_line,
                                   "--frontend-exec goes without --sockets, a back-end, --raw, "
                                   "--repeat and --stats");
    }
    if (frontend_opts && !frontend_exec) {
        free(pos);
        return vuf_cli_usage_error("replay", usage_line,
                                   "--device, --firmware, --frontend-log, --connect-timeout, "
                                   "--settle, --hang-timeout, --pool and --level go with "
                                   "--frontend-exec");
    }
    if (frontend_exec && vuf_cli_frontend_check(&fo, frontend_exec, "replay", usage_line)) {
        free(pos);
        return 2;
    }
    const vuf_spec *spec = vuf_cli_open_spec(spec_path);
    if (!spec) {
        free(pos);
        return 2;
    }
    signal(SIGPIPE, SIG_IGN);
    replay_ctx ctx = {.spec = spec, .quiet = quiet, .focus = focus};
    if (frontend_exec) {
        size_t nf;
        char **ff = collect(pos, npos, &nf);
        free(pos);
        int rc = replay_frontend(spec, &fo, ff, nf, &ctx, json);
        free(ff);
        vuf_spec_release(spec);
        return rc;
    }
    vuf_harness_opts o = {.target = sockets ? VUF_TARGET_KIND_SOCKET : VUF_TARGET_KIND_INPROC,
                          .fd_scan_period = 1,
                          .on_event = on_event,
                          .on_action = on_action,
                          .ctx = &ctx};
    vuf_backend *be = NULL;
    if (external) {
        char err[1024];
        be = vuf_backend_new(&bo, err, sizeof err);
        if (!be) {
            fprintf(stderr, "vufuzz replay: %s\n", err);
            free(pos);
            vuf_spec_release(spec);
            return 2;
        }
        o.custom = vuf_backend_target(be, spec);
        /* a session ends where the back-end closed, as vufuzz fuzz and
         * minimize play it: a finding replays the way it was found */
        o.stop_on_peer_close = true;
    }
    vuf_harness *h = vuf_harness_new(spec, &o);
    if (!h) {
        fprintf(stderr, "vufuzz replay: cannot set up the harness\n");
        free(pos);
        vuf_backend_free(be);
        vuf_spec_release(spec);
        return 2;
    }
    size_t n;
    char **files = collect(pos, npos, &n);
    free(pos);
    size_t findings = 0, bad = 0;
    alarm_ctx = &ctx;
    signal(SIGALRM, on_alarm);
    vuf_json j;
    if (json) {
        vuf_json_init(&j, stdout);
        vuf_json_object(&j, NULL);
        vuf_cli_json_meta(&j);
        vuf_json_str(&j, "target", vuf_harness_target_name(h));
        vuf_json_array(&j, "sessions");
    }
    for (size_t i = 0; i < n; i++) {
        vuf_diag d;
        Vuf__Session *s =
            raw ? raw_session(files[i], &d) : vuf_session_load_file(spec, files[i], NULL, &d);
        if (!s) {
            vuf_cli_print_diag(stderr, &d, true);
            bad++;
            if (json) {
                vuf_json_object(&j, NULL);
                vuf_json_str(&j, "file", files[i]);
                vuf_json_str(&j, "verdict", "bad-input");
                vuf_json_str(&j, "text", d.text);
                vuf_json_end(&j);
            }
            free(files[i]);
            continue;
        }
        if (!quiet)
            printf("# %s\n", files[i]);
        ctx.action = 0;
        alarm((unsigned)timeout);
        vuf_finding f = vuf_harness_run(h, s);
        alarm(0);
        char tail[4096] = "";
        if (be && (f.kind == VUF_FINDING_CRASH || f.kind == VUF_FINDING_SANITIZER ||
                   f.kind == VUF_FINDING_EXIT))
            vuf_backend_log_tail(be, tail, sizeof tail);
        if (repeat > 1 && !f.kind)
            print_throughput(h, s, files[i], (long)repeat, &f);
        vuf_session_free(s);
        if (f.kind == VUF_FINDING_BAD_INPUT || f.kind == VUF_FINDING_TARGET_ERROR)
            bad++;
        else if (f.kind)
            findings++;
        if (json) {
            json_verdict(&j, files[i], &f);
            if (f.kind && tail[0])
                vuf_json_str(&j, "backend_output", tail);
            vuf_json_end(&j);
        } else if (f.kind == VUF_FINDING_BAD_INPUT) {
            fprintf(stderr, "%s: error: bad input: %s\n", files[i], f.text);
            printf("%s: BAD INPUT at action %zu: %s\n", files[i], f.action, f.text);
        } else if (f.kind == VUF_FINDING_TARGET_ERROR) {
            fprintf(stderr, "%s: error: %s\n", files[i], f.text);
            printf("%s: TARGET ERROR at action %zu: %s\n", files[i], f.action, f.text);
        } else if (f.kind) {
            printf("%s: FINDING %s %s at action %zu: %s\n", files[i], vuf_finding_kind_name(f.kind),
                   f.rule, f.action, f.text);
            if (tail[0])
                print_output("back-end", tail);
        } else {
            printf("%s: clean\n", files[i]);
        }
        free(files[i]);
    }
    if (json)
        vuf_json_end(&j);
    if (stats)
        print_stats(h, spec, json ? &j : NULL);
    summary(json ? &j : NULL, n, findings, bad);
    free(files);
    vuf_harness_free(h);
    vuf_backend_free(be);
    vuf_spec_release(spec);
    return bad ? 2 : findings ? 1 : 0;
}
