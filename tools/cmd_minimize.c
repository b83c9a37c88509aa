/* SPDX-License-Identifier: Apache-2.0 */
/* vufuzz minimize: shrink a session that gives a finding to the fewest
 * actions that still give the same finding (the same kind and rule), against
 * the reference device (in process, or --sockets) or any back-end over its
 * socket (--connect, --exec). */
#include "cli.h"
#include "vuf_backend.h"
#include "vuf_harness.h"
#include "vuf_session.h"
#include "vuf_util.h"

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static const char usage_line[] =
    "usage: vufuzz minimize [--sockets | --connect PATH [--pid PID] | --exec 'CMD {socket}']\n"
    "                       [-o FILE] [--runs N] [--seconds N] [--quiet]\n"
    "                       [--reply-timeout MS] [--backend-log FILE] [--ready-timeout MS]\n"
    "                       [--spec FILE] FILE";

static void usage(FILE *f)
{
    fprintf(f,
            "%s\n\n"
            "Shrink a session that gives a finding (a fuzzer's finding, saved as text or\n"
            "binary) to the fewest actions that still give the same finding: the same\n"
            "kind (crash, sanitizer, hang, fd-leak, must, ...) and the same rule. Actions\n"
            "after the one that showed the finding go first, then runs of actions of\n"
            "halving length, then single actions, until no action can go. Each try is one\n"
            "run of the session, as `vufuzz replay` runs it.\n\n"
            "The target: the reference device in this process (default), or\n"
            "  --sockets    the reference device over real socket pairs\n"
            "or any vhost-user back-end:\n"
            "%s"
            "\nOther options:\n"
            "  -o FILE      where the shrunk session goes (default: FILE with .min.txt\n"
            "               in place of its extension), as text\n"
            "  --runs N     at most N tries (default 2000)\n"
            "  --seconds N  at most N seconds (default 600); the smallest session found\n"
            "               so far is written when a limit stops it\n"
            "  --quiet      no progress lines\n"
            "  --spec FILE  use this table instead of the built-in one\n\n"
            "Exit status: 0 the shrunk session is written (it gives the finding), 1 the\n"
            "session gives no finding (nothing to minimize), 2 bad input or usage, or the\n"
            "back-end could not be driven.\n",
            usage_line, vuf_cli_backend_help);
}

typedef struct {
    vuf_harness *h;
    Vuf__Session view; /* the session with a subset of its actions (not owned) */
    vuf_finding want;
    uint64_t runs, max_runs;
    double t0, max_seconds;
    bool error; /* the target could not be driven */
} shrinker;

static bool out_of_budget(const shrinker *m)
{
    return m->runs >= m->max_runs || vuf_now_s() - m->t0 >= m->max_seconds;
}

/* Does the session with these actions still give the finding? */
static bool same(shrinker *m, Vuf__Action **acts, size_t n)
{
    m->view.actions = acts;
    m->view.n_actions = n;
    m->runs++;
    vuf_finding f = vuf_harness_run(m->h, &m->view);
    if (f.kind == VUF_FINDING_TARGET_ERROR)
        m->error = true;
    return f.kind == m->want.kind && !strcmp(f.rule, m->want.rule);
}

/* Remove runs of `chunk` actions, from the end, while the finding stays. */
static bool pass(shrinker *m, Vuf__Action **cur, size_t *n, size_t chunk, Vuf__Action **tmp)
{
    bool progress = false;
    for (size_t end = *n; end > 0 && !out_of_budget(m) && !m->error;) {
        size_t start = end > chunk ? end - chunk : 0;
        size_t k = 0;
        for (size_t i = 0; i < *n; i++)
            if (i < start || i >= end)
                tmp[k++] = cur[i];
        if (k < *n && same(m, tmp, k)) {
            memcpy(cur, tmp, k * sizeof *cur);
            *n = k;
            progress = true;
        }
        end = start;
    }
    return progress;
}

static char *default_out(const char *in)
{
    size_t n = strlen(in);
    const char *dot = strrchr(in, '.'), *slash = strrchr(in, '/');
    if (dot && (!slash || dot > slash))
        n = (size_t)(dot - in);
    char *o = malloc(n + 9);
    if (o) {
        memcpy(o, in, n);
        memcpy(o + n, ".min.txt", 9);
    }
    return o;
}

enum { O_SOCKETS, O_OUT, O_RUNS, O_SECONDS, O_QUIET, O_SPEC, O_BACKEND };

int vuf_cmd_minimize(int argc, char **argv)
{
    static const vuf_cli_opt opts[] = {
        [O_SOCKETS] = {"--sockets", NULL}, [O_OUT] = {"-o", "FILE"},
        [O_RUNS] = {"--runs", "N"},        [O_SECONDS] = {"--seconds", "N"},
        [O_QUIET] = {"--quiet", NULL},     [O_SPEC] = {"--spec", "FILE"},
        VUF_CLI_BACKEND_OPTS(O_BACKEND),   {NULL, NULL}};
    const char *spec_path = NULL, *out = NULL, *file = NULL, *val;
    bool quiet = false, sockets = false;
    uint64_t max_runs = 2000, max_seconds = 600;
    vuf_backend_opts bo = {0};
    vuf_cli_parser p;
    vuf_cli_init(&p, "minimize", usage_line, opts, argc, argv);
    for (int k; (k = vuf_cli_next(&p, &val)) != VUF_CLI_END;) {
        switch (k) {
        case VUF_CLI_HELP:
            usage(stdout);
            return 0;
        case VUF_CLI_ERROR:
            return 2;
        case VUF_CLI_POS:
            if (file)
                return vuf_cli_usage_error("minimize", usage_line, "one session file only");
            file = val;
            break;
        case O_SOCKETS:
            sockets = true;
            break;
        case O_OUT:
            out = val;
            break;
        case O_QUIET:
            quiet = true;
            break;
        case O_SPEC:
            spec_path = val;
            break;
        case O_RUNS:
            if (!vuf_parse_u64(val, &max_runs) || !max_runs)
                return vuf_cli_usage_error("minimize", usage_line, "bad run count '%s'", val);
            break;
        case O_SECONDS:
            if (!vuf_parse_u64(val, &max_seconds) || !max_seconds || max_seconds > 86400 * 7)
                return vuf_cli_usage_error("minimize", usage_line, "bad seconds '%s'", val);
            break;
        default:
            if (vuf_cli_backend_opt(&bo, k - O_BACKEND, val, "minimize", usage_line))
                return 2;
            break;
        }
    }
    if (!file)
        return vuf_cli_usage_error("minimize", usage_line, "no session file");
    bool external;
    if (vuf_cli_backend_check(&bo, &external, "minimize", usage_line))
        return 2;
    if (external && sockets)
        return vuf_cli_usage_error("minimize", usage_line,
                                   "--sockets or an external back-end, not both");
    const vuf_spec *spec = vuf_cli_open_spec(spec_path);
    if (!spec)
        return 2;
    signal(SIGPIPE, SIG_IGN);
    vuf_diag d;
    Vuf__Session *s = vuf_session_load_file(spec, file, NULL, &d);
    if (!s) {
        vuf_cli_print_diag(stderr, &d, true);
        vuf_spec_release(spec);
        return 2;
    }
    int rc = 2;
    char err[1024];
    vuf_backend *be = NULL;
    vuf_harness *h = NULL;
    Vuf__Action **cur = NULL, **tmp = NULL;
    char *outp = NULL, *text = NULL;
    vuf_harness_opts o = {.target = sockets ? VUF_TARGET_KIND_SOCKET : VUF_TARGET_KIND_INPROC,
                          .fd_scan_period = 1,
                          .stop_on_peer_close = true};
    if (external) {
        if (!(be = vuf_backend_new(&bo, err, sizeof err))) {
            fprintf(stderr, "vufuzz minimize: %s\n", err);
            goto out;
        }
        o.custom = vuf_backend_target(be, spec);
    }
    if (!(h = vuf_harness_new(spec, &o))) {
        fprintf(stderr, "vufuzz minimize: cannot set up the harness\n");
        goto out;
    }
    shrinker m = {.h = h, .view = *s, .max_runs = max_runs, .t0 = vuf_now_s()};
    m.max_seconds = (double)max_seconds;
    m.want = vuf_harness_run(h, s);
    m.runs = 1;
    if (m.want.kind == VUF_FINDING_BAD_INPUT || m.want.kind == VUF_FINDING_TARGET_ERROR) {
        fprintf(stderr, "vufuzz minimize: %s: %s\n", file, m.want.text);
        goto out;
    }
    if (!m.want.kind) {
        fprintf(stderr, "vufuzz minimize: %s gives no finding: nothing to minimize\n", file);
        rc = 1;
        goto out;
    }
    size_t n = s->n_actions, n0 = n;
    cur = malloc((n + 1) * sizeof *cur);
    tmp = malloc((n + 1) * sizeof *tmp);
    if (!cur || !tmp)
        goto out;
    memcpy(cur, s->actions, n * sizeof *cur);
    if (!quiet)
        fprintf(stderr, "vufuzz minimize: %s: %s %s at action %zu of %zu: %s\n", file,
                vuf_finding_kind_name(m.want.kind), m.want.rule, m.want.action, n, m.want.text);
    /* what follows the action that showed it first */
    if (m.want.action && m.want.action < n && same(&m, cur, m.want.action))
        n = m.want.action;
    for (size_t chunk = n / 2 ? n / 2 : 1; !out_of_budget(&m) && !m.error;) {
        bool progress = pass(&m, cur, &n, chunk, tmp);
        if (!quiet)
            fprintf(stderr,
                    "vufuzz minimize: %zu actions left (runs of %zu tried), %llu runs, %.1f s\n", n,
                    chunk, (unsigned long long)m.runs, vuf_now_s() - m.t0);
        if (chunk > 1)
            chunk /= 2;
        else if (!progress)
            break;
    }
    if (m.error) {
        fprintf(stderr, "vufuzz minimize: the back-end could not be driven any more\n");
        goto out;
    }
    m.view.actions = cur;
    m.view.n_actions = n;
    text = vuf_session_format_text(spec, &m.view);
    outp = out ? strdup(out) : default_out(file);
    FILE *f = outp && text ? fopen(outp, "w") : NULL;
    if (!f) {
        fprintf(stderr, "vufuzz minimize: cannot write %s\n", outp ? outp : "the result");
        goto out;
    }
    fprintf(f, "# vufuzz minimize: %s %s (%s), %zu of %zu actions\n# from %s\n%s",
            vuf_finding_kind_name(m.want.kind), m.want.rule, m.want.text, n, n0, file, text);
    bool ok = !fclose(f);
    if (!ok) {
        fprintf(stderr, "vufuzz minimize: cannot write %s\n", outp);
        goto out;
    }
    printf("%s: %zu of %zu actions give %s %s (%llu runs, %.1f s)%s\n", outp, n, n0,
           vuf_finding_kind_name(m.want.kind), m.want.rule, (unsigned long long)m.runs,
           vuf_now_s() - m.t0, out_of_budget(&m) ? "; stopped by --runs/--seconds" : "");
    rc = 0;
out:
    free(text);
    free(outp);
    free(cur);
    free(tmp);
    vuf_harness_free(h);
    vuf_backend_free(be);
    vuf_session_free(s);
    vuf_spec_release(spec);
    return rc;
}
