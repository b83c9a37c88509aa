/* SPDX-License-Identifier: Apache-2.0 */
/* vufuzz replay: run session files against the reference device with the
 * fuzzers' oracles, and print what happened. */
#include "cli.h"
#include "vuf_ref.h"
#include "vuf_runner.h"
#include "vuf_session.h"
#include "vuf_trace.h"
#include "vuf_util.h"

#include <dirent.h>
#include <errno.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

static void usage(FILE *f)
{
    fprintf(f, "usage: vufuzz replay [--quiet] [--stats] [--json] [--timeout S] [--spec FILE]\n"
               "                     FILE|DIR...\n\n"
               "Run sessions (a fuzzer's findings, corpus seeds: binary or text, see\n"
               "docs/session-format.md) against the reference device in this process, with\n"
               "the fuzzers' oracles, and print the conversation in the trace format and the\n"
               "verdict: the MUST rule the device broke, an fd leak, a guest-memory write\n"
               "outside the device's buffers. A sanitizer report, when the binary is built\n"
               "with sanitizers, is printed by the sanitizer itself.\n\n"
               "  --quiet      only the verdict lines\n"
               "  --stats      after the runs: which table messages the device accepted\n"
               "               (front-end channel) or sent (back-end channel), and counts\n"
               "  --json       the verdicts (and --stats) as one JSON object on stdout\n"
               "  --timeout S  a session that runs longer than S seconds is a stall (10)\n"
               "  --raw        the files are raw bytes for the main socket (fuzz_raw inputs)\n"
               "  --repeat N   run each session N times and print its throughput\n"
               "               (sessions/s, actions/s, messages/s; implies --quiet)\n"
               "  --spec FILE  use this table instead of the built-in one\n\n"
               "Directories are read non-recursively, files in name order.\n"
               "Exit status: 0 every session clean, 1 a finding, 2 bad input or usage.\n");
}

typedef struct {
    const vuf_spec *spec;
    bool quiet;
    size_t action;
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

static void on_event(void *ctx, const vuf_event *ev)
{
    replay_ctx *c = ctx;
    if (c->quiet)
        return;
    char line[32768];
    int n = vuf_trace_format_event(c->spec, ev, line, sizeof line);
    if (n >= 0 && (size_t)n < sizeof line)
        printf("%s\n", line);
}

static const char *action_name(const Vuf__Action *a)
{
    switch (a->action_case) {
    case VUF__ACTION__ACTION_SEND:
        return "send";
    case VUF__ACTION__ACTION_BACKEND_SEND:
        return "backend-send";
    case VUF__ACTION__ACTION_BACKEND_REPLY:
        return "backend-reply";
    case VUF__ACTION__ACTION_MEM_WRITE:
        return "mem-write";
    case VUF__ACTION__ACTION_DESC:
        return "desc";
    case VUF__ACTION__ACTION_AVAIL:
        return "avail";
    case VUF__ACTION__ACTION_BLK:
        return "blk";
    case VUF__ACTION__ACTION_KICK:
        return "kick";
    case VUF__ACTION__ACTION_RAW:
        return "raw";
    case VUF__ACTION__ACTION_CLOSE_BACKEND:
        return "close backend";
    case VUF__ACTION__ACTION_DISCONNECT:
        return "close main";
    case VUF__ACTION__ACTION_CONNECT:
        return "open main";
    case VUF__ACTION__ACTION_RESIZE:
        return "resize";
    default:
        return "none";
    }
}

static void on_action(void *ctx, size_t i, const Vuf__Action *a)
{
    replay_ctx *c = ctx;
    c->action = i;
    if (!c->quiet)
        printf("# action %zu: %s\n", i, action_name(a));
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
static char **collect(char **args, int n, size_t *count)
{
    char **v = NULL;
    size_t k = 0, cap = 0;
    for (int i = 0; i < n; i++) {
        struct stat st;
        DIR *d = stat(args[i], &st) == 0 && S_ISDIR(st.st_mode) ? opendir(args[i]) : NULL;
        if (!d) {
            push(&v, &k, &cap, args[i]);
            continue;
        }
        size_t first = k;
        for (struct dirent *e; (e = readdir(d));) {
            char path[4096];
            snprintf(path, sizeof path, "%s/%s", args[i], e->d_name);
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

/* A fuzz_raw input as a session: one raw action on the main socket. */
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

static void json_str(const char *s)
{
    putchar('"');
    for (; *s; s++) {
        if (*s == '"' || *s == '\\')
            printf("\\%c", *s);
        else if ((unsigned char)*s < 0x20)
            printf("\\u%04x", *s);
        else
            putchar(*s);
    }
    putchar('"');
}

int vuf_cmd_replay(int argc, char **argv)
{
    const char *spec_path = NULL;
    bool quiet = false, stats = false, json = false, raw = false;
    long timeout = 10, repeat = 1;
    int first = argc;
    for (int i = 1; i < argc; i++) {
        if (vuf_cli_is_help(argv[i])) {
            usage(stdout);
            return 0;
        } else if (!strcmp(argv[i], "--quiet")) {
            quiet = true;
        } else if (!strcmp(argv[i], "--raw")) {
            raw = true;
        } else if (!strcmp(argv[i], "--stats")) {
            stats = true;
        } else if (!strcmp(argv[i], "--json")) {
            json = quiet = true;
        } else if (!strcmp(argv[i], "--timeout") && i + 1 < argc) {
            char *end;
            timeout = strtol(argv[++i], &end, 10);
            if (*end || timeout < 1 || timeout > 86400) {
                fprintf(stderr, "vufuzz replay: bad timeout '%s' (1..86400 s)\n", argv[i]);
                return 2;
            }
        } else if (!strcmp(argv[i], "--repeat") && i + 1 < argc) {
            char *end;
            repeat = strtol(argv[++i], &end, 10);
            if (*end || repeat < 1 || repeat > 100000000) {
                fprintf(stderr, "vufuzz replay: bad repeat count '%s'\n", argv[i]);
                return 2;
            }
            quiet = true;
        } else if (!strcmp(argv[i], "--spec") && i + 1 < argc) {
            spec_path = argv[++i];
        } else if (argv[i][0] == '-' && argv[i][1]) {
            fprintf(stderr, "vufuzz replay: unknown option '%s'\n\n", argv[i]);
            usage(stderr);
            return 2;
        } else {
            first = i;
            break;
        }
    }
    if (first >= argc) {
        fprintf(stderr, "vufuzz replay: no session file\n\n");
        usage(stderr);
        return 2;
    }
    const vuf_spec *spec = vuf_cli_open_spec(spec_path);
    if (!spec)
        return 2;
    signal(SIGPIPE, SIG_IGN);
    replay_ctx ctx = {.spec = spec, .quiet = quiet};
    vuf_runner_opts o = {.on_event = on_event, .on_action = on_action, .ctx = &ctx};
    vuf_runner *r = vuf_runner_new(spec, &o);
    size_t n;
    char **files = collect(argv + first, argc - first, &n);
    int rc = 0;
    size_t findings = 0, bad = 0;
    alarm_ctx = &ctx;
    signal(SIGALRM, on_alarm);
    if (json)
        printf("{\"sessions\": [");
    for (size_t i = 0; r && i < n; i++) {
        vuf_diag d;
        Vuf__Session *s =
            raw ? raw_session(files[i], &d) : vuf_session_load_file(spec, files[i], NULL, &d);
        if (!s) {
            vuf_cli_print_diag(stderr, &d, true);
            bad++;
            free(files[i]);
            continue;
        }
        if (!quiet)
            printf("# %s\n", files[i]);
        alarm((unsigned)timeout);
        vuf_finding f = vuf_runner_run(r, s);
        alarm(0);
        if (repeat > 1 && !f.kind) {
            vuf_runner_stats a, b;
            vuf_runner_stats_get(r, &a);
            struct timespec t0, t1;
            clock_gettime(CLOCK_MONOTONIC, &t0);
            for (long k = 1; k < repeat && !f.kind; k++)
                f = vuf_runner_run(r, s);
            clock_gettime(CLOCK_MONOTONIC, &t1);
            vuf_runner_stats_get(r, &b);
            double sec = (double)(t1.tv_sec - t0.tv_sec) + (t1.tv_nsec - t0.tv_nsec) / 1e9;
            double runs = (double)(b.sessions - a.sessions);
            printf("%s: %.0f sessions/s, %.0f actions/s, %.0f messages/s (%.1f us per session, "
                   "%.1f actions and %.1f messages per session)\n",
                   files[i], runs / sec, (double)(b.actions - a.actions) / sec,
                   (double)(b.messages - a.messages) / sec, sec * 1e6 / runs,
                   (double)(b.actions - a.actions) / runs,
                   (double)(b.messages - a.messages) / runs);
        }
        vuf_session_free(s);
        if (f.kind)
            findings++;
        if (json) {
            printf("%s{\"file\": ", i ? ", " : "");
            json_str(files[i]);
            printf(", \"finding\": \"%s\"", vuf_finding_kind_name(f.kind));
            if (f.kind) {
                printf(", \"rule\": ");
                json_str(f.rule);
                printf(", \"action\": %zu, \"text\": ", f.action);
                json_str(f.text);
            }
            printf("}");
        } else if (f.kind) {
            printf("%s: FINDING %s %s at action %zu: %s\n", files[i], vuf_finding_kind_name(f.kind),
                   f.rule, f.action, f.text);
        } else {
            printf("%s: clean\n", files[i]);
        }
        free(files[i]);
    }
    if (json)
        printf("]");
    vuf_ref *probe = NULL;
    if (stats) {
        /* the device's handlers, to tell unreached from unsupported */
        vuf_ref_config cfg;
        vuf_ref_config_default(&cfg);
        static uint8_t disk[4096];
        cfg.disk = disk;
        cfg.disk_size = sizeof disk;
        char err[160];
        probe = vuf_ref_new(spec, &cfg, err, sizeof err);
    }
    if (stats && r) {
        vuf_runner_stats st;
        vuf_runner_stats_get(r, &st);
        if (json) {
            printf(", \"stats\": {\"sessions\": %llu, \"actions\": %llu, \"events\": %llu, "
                   "\"requests_completed\": %llu, \"accepted\": {",
                   (unsigned long long)st.sessions, (unsigned long long)st.actions,
                   (unsigned long long)st.events, (unsigned long long)st.chains);
        } else {
            printf("\n%llu sessions, %llu actions, %llu events, %llu block requests completed, "
                   "guest oracle: %llu checks, disarmed in %llu sessions\n",
                   (unsigned long long)st.sessions, (unsigned long long)st.actions,
                   (unsigned long long)st.events, (unsigned long long)st.chains,
                   (unsigned long long)st.guest_checks, (unsigned long long)st.guest_disarmed);
            printf("%-9s %-4s %-34s %-10s %s\n", "channel", "id", "message", "device",
                   "accepted/sent");
        }
        bool firstj = true;
        for (int ch = 0; ch < VUF_CHAN_COUNT; ch++)
            for (size_t i = 0; i < vuf_spec_msg_count(spec, (vuf_channel)ch); i++) {
                const vuf_msg_def *m = vuf_spec_msg_at(spec, (vuf_channel)ch, i);
                uint64_t a = vuf_runner_accepted(r, (vuf_channel)ch, m->id);
                bool sup = probe && vuf_ref_supports(probe, (vuf_channel)ch, m->id);
                if (json) {
                    printf("%s\"%s\": {\"supported\": %s, \"count\": %llu}", firstj ? "" : ", ",
                           m->name, sup ? "true" : "false", (unsigned long long)a);
                    firstj = false;
                } else {
                    printf("%-9s %-4u %-34s %-10s %llu\n", vuf_channel_name((vuf_channel)ch), m->id,
                           m->name, sup ? "supported" : "refused", (unsigned long long)a);
                }
            }
        if (json)
            printf("}}");
    }
    if (json)
        printf(", \"findings\": %zu, \"bad_inputs\": %zu}\n", findings, bad);
    else if (n > 1)
        printf("%zu sessions: %zu findings, %zu bad inputs\n", n, findings, bad);
    free(files);
    vuf_ref_free(probe);
    vuf_runner_free(r);
    vuf_spec_release(spec);
    rc = bad ? 2 : findings ? 1 : 0;
    return rc;
}
