/* SPDX-License-Identifier: Apache-2.0 */
/* vufuzz fuzz: a structured black-box fuzzer for any vhost-user back-end over
 * its socket. The campaign (campaign/vuf_campaign.h) picks, mutates and runs
 * sessions through the harness against the back-end (harness/vuf_backend.h);
 * this file is the command: seeds, workers (--jobs), findings saved with what
 * reproduces them, progress and the report. */
#include "cli.h"
#include "vuf_aflmap.h"
#include "vuf_backend.h"
#include "vuf_campaign.h"
#include "vuf_harness.h"
#include "vuf_json.h"
#include "vuf_rules.h"
#include "vuf_session.h"
#include "vuf_sha256.h"
#include "vuf_trace.h"
#include "vuf_util.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#ifndef VUF_SOURCE_DIR
#define VUF_SOURCE_DIR "."
#endif

static const char usage_line[] =
    "usage: vufuzz fuzz (--connect PATH [--pid PID] | --exec 'CMD ... {socket}')\n"
    "                   [--corpus DIR]... [--out DIR] [--seconds N] [--runs N] [--jobs N]\n"
    "                   [--seed N] [--device TYPE] [--level must|should]\n"
    "                   [--coverage | --coverage-count-only]\n"
    "                   [--map-size N] [--max-len N] [--json FILE] [--quiet]\n"
    "                   [--reply-timeout MS] [--backend-log FILE] [--ready-timeout MS]\n"
    "                   [--spec FILE]";

static void usage(FILE *f)
{
    fprintf(f,
            "%s\n\n"
            "Fuzz a vhost-user back-end over its socket: sessions (docs/session-format.md)\n"
            "from the seeds are mutated by the structure-aware mutator and played as a\n"
            "front-end would, each on a new connection, with the oracles of the external\n"
            "targets: a crash, an exit while it should serve, a sanitizer report in its\n"
            "output, a hang (a reply owed that does not come), fds it keeps, a write\n"
            "outside the buffers it may write in our guest memory, and a MUST rule it\n"
            "breaks (the checker). An input that makes the back-end answer in a way not\n"
            "seen before (protocol state: the request answered, the answer's size and\n"
            "status, its fds, the features acked so far, a close, a request of its own,\n"
            "a rule it broke, and each pair of these in a row) joins the corpus; with\n"
            "--coverage, so does one that reaches a new edge of an AFL++-instrumented\n"
            "back-end.\n\n"
            "The back-end:\n%s\n"
            "  --corpus DIR     seed sessions (text or binary; repeatable; default: the\n"
            "                   source tree's corpus/)\n"
            "  --out DIR        where findings and the grown corpus go (default\n"
            "                   vufuzz-out): DIR/findings/KIND-RULE-ID.{txt,log,trace,json},\n"
            "                   DIR/corpus/*.bin, DIR/stats.json\n"
            "  --seconds N      stop after N seconds (default: run until SIGINT/SIGTERM)\n"
            "  --runs N         stop after N runs (per job)\n"
            "  --jobs N         N workers, each with its own --exec back-end, sharing the\n"
            "                   corpus through DIR/corpus (default 1)\n"
            "  --seed N, -seed=N  the random seed (default: the time); a run with the\n"
            "                   same seed, seeds and back-end behaviour repeats its choices\n"
            "  --device TYPE    the device type (blk, net, ...) for the checker's queue\n"
            "                   counting\n"
            "  --level L        the checker's findings: must (default) or should\n"
            "  --coverage       read the edge map of a back-end built with afl-clang-fast\n"
            "                   (needs --exec: vufuzz makes the map and passes\n"
            "                   __AFL_SHM_ID to the back-end it starts)\n"
            "  --coverage-count-only  read and count the edges, but keep no input for a\n"
            "                   new edge (a baseline for --coverage's feedback)\n"
            "  --map-size N     the map's size in bytes (default 65536; AFL_MAP_SIZE)\n"
            "  --max-len N      the largest session in bytes, packed (default 16384)\n"
            "  --json FILE      the final report as JSON (for CI)\n"
            "  --quiet          no progress lines\n"
            "  --spec FILE      use this table instead of the built-in one\n\n"
            "Progress (stderr, every 2 s): runs and runs/s, protocol states and\n"
            "transitions, edges, corpus size, findings. A finding is saved once per kind,\n"
            "rule and text: the session (replay it with `vufuzz replay --exec ... FILE`,\n"
            "shrink it with `vufuzz minimize`), the back-end's output, the conversation\n"
            "of a second run (which says whether it reproduced) and a JSON summary.\n"
            "Exit status: 0 no finding, 1 findings, 2 usage or target error.\n",
            usage_line, vuf_cli_backend_help);
}

/* ---- the configuration every worker shares ---- */

typedef struct {
    const vuf_spec *spec;
    vuf_backend_opts bo;
    char **corpus_dirs;
    size_t ncorpus;
    const char *out, *device, *json;
    uint64_t seconds, runs, jobs, seed, map_size, max_len;
    vuf_level level;
    bool coverage, coverage_count_only, quiet;
} config;

static volatile sig_atomic_t stop_requested;

static void on_stop(int sig)
{
    (void)sig;
    stop_requested = 1;
}

/* The first 16 hex digits of the SHA-256 of the bytes: a name. */
static void hex16(const uint8_t *data, size_t len, char out[17])
{
    char h[65];
    vuf_sha256_hex(data, len, h);
    memcpy(out, h, 16);
    out[16] = 0;
}

/* ---- a worker ---- */

typedef struct {
    const config *cfg;
    unsigned index;
    vuf_campaign *camp;
    vuf_harness *h;
    vuf_backend *be;
    vuf_aflmap *map;
    /* the conversation of a finding's second run */
    bool recording;
    vuf_lines trace;
    /* findings: their signatures, so each is saved once */
    char (*sigs)[17];
    size_t nsigs;
    uint64_t findings, unique;
    /* the shared corpus: files already imported or written */
    char (*seen)[24];
    size_t nseen;
    int status_fd; /* --jobs: the parent reads progress here; -1 */
    char error[600];
    /* progress and corpus sync */
    double last_print, last_sync;
    uint64_t last_execs;
    bool warned_map, parent_gone;
} worker;

static void on_event(void *ctx, const vuf_event *ev)
{
    worker *w = ctx;
    vuf_campaign_on_event(w->camp, ev);
    if (w->recording) {
        char line[8192];
        int n = vuf_trace_format_event(w->cfg->spec, ev, line, sizeof line);
        if (n > 0 && (size_t)n < sizeof line)
            vuf_lines_add(&w->trace, line);
    }
}

static void on_violation(void *ctx, const vuf_violation *v)
{
    worker *w = ctx;
    vuf_campaign_on_violation(w->camp, v);
}

static void on_action(void *ctx, size_t i, const Vuf__Action *a)
{
    worker *w = ctx;
    if (!w->recording)
        return;
    char *t = vuf_session_format_action(w->cfg->spec, a);
    char line[700];
    snprintf(line, sizeof line, "# action %zu: %s", i, t ? t : "?");
    vuf_lines_add(&w->trace, line);
    free(t);
}

/* A finding's signature: its kind, rule and text without the numbers (pids,
 * addresses, counts) and what follows the first ';' (a back-end's last
 * output). */
static void signature(const vuf_finding *f, char out[17])
{
    char b[700];
    size_t n = (size_t)snprintf(b, sizeof b, "%s:%s:", vuf_finding_kind_name(f->kind), f->rule);
    for (const char *p = f->text; *p && *p != ';' && n + 1 < sizeof b; p++)
        if (!(*p >= '0' && *p <= '9'))
            b[n++] = *p;
    hex16((const uint8_t *)b, n, out);
}

static void save_finding(worker *w, const vuf_finding *f, const uint8_t *input, size_t len,
                         double t0)
{
    char sig[17];
    signature(f, sig);
    w->findings++;
    for (size_t i = 0; i < w->nsigs; i++)
        if (!strcmp(w->sigs[i], sig))
            return; /* seen: counted, not saved again */
    char(*ns)[17] = realloc(w->sigs, (w->nsigs + 1) * sizeof *ns);
    if (!ns)
        return;
    w->sigs = ns;
    memcpy(w->sigs[w->nsigs++], sig, 17);
    w->unique++;
    /* what it did, then a second run for the conversation */
    char tail[16384];
    size_t tl = vuf_backend_log_tail(w->be, tail, sizeof tail);
    Vuf__Session *s = vuf_session_unpack(input, len);
    char *text = s ? vuf_session_format_text(w->cfg->spec, s) : NULL;
    vuf_lines_free(&w->trace);
    vuf_finding again = {0};
    if (s) {
        w->recording = true;
        again = vuf_harness_run(w->h, s);
        w->recording = false;
        vuf_session_free(s);
    }
    bool reproduced = again.kind == f->kind && !strcmp(again.rule, f->rule);
    char base[4200], path[4300];
    snprintf(base, sizeof base, "%s/findings/%s-%s-%s", w->cfg->out, vuf_finding_kind_name(f->kind),
             f->rule, sig);
    for (char *p = base + strlen(w->cfg->out) + 10; *p; p++)
        if (*p == '/' || *p == ' ')
            *p = '_';
    snprintf(path, sizeof path, "%s.txt", base);
    if (text) {
        char head[1200];
        int hn = snprintf(head, sizeof head,
                          "# vufuzz fuzz finding: %s %s at action %zu: %s\n"
                          "# reproduce: vufuzz replay --exec '...' %s.txt\n",
                          vuf_finding_kind_name(f->kind), f->rule, f->action, f->text, base);
        size_t tlen = strlen(text);
        char *all = malloc((size_t)hn + tlen + 1);
        if (all) {
            memcpy(all, head, (size_t)hn);
            memcpy(all + hn, text, tlen + 1);
            vuf_write_file(path, all, (size_t)hn + tlen);
            free(all);
        }
    }
    snprintf(path, sizeof path, "%s.log", base);
    vuf_write_file(path, tail, tl);
    snprintf(path, sizeof path, "%s.trace", base);
    vuf_write_file(path, w->trace.text ? w->trace.text : "", w->trace.len);
    snprintf(path, sizeof path, "%s.json", base);
    FILE *jf = fopen(path, "w");
    if (jf) {
        vuf_json j;
        vuf_json_init(&j, jf);
        vuf_json_object(&j, NULL);
        vuf_cli_json_meta(&j);
        vuf_json_str(&j, "kind", vuf_finding_kind_name(f->kind));
        vuf_json_str(&j, "rule", f->rule);
        vuf_json_str(&j, "text", f->text);
        vuf_json_u64(&j, "action", f->action);
        vuf_json_str(&j, "backend", vuf_backend_name(w->be));
        vuf_json_u64(&j, "worker", w->index);
        vuf_json_double(&j, "seconds", vuf_now_s() - t0);
        vuf_json_bool(&j, "reproduced", reproduced);
        vuf_json_str(&j, "second_run", again.kind ? vuf_finding_kind_name(again.kind) : "none");
        vuf_json_str(&j, "session", text ? text : "");
        vuf_json_end(&j);
        vuf_json_finish(&j);
        fclose(jf);
    }
    free(text);
    if (!w->cfg->quiet)
        fprintf(stderr,
                "vufuzz fuzz: [job %u] finding: %s %s at action %zu: %s%s\n  saved: %s.txt\n",
                w->index, vuf_finding_kind_name(f->kind), f->rule, f->action, f->text,
                reproduced ? "" : " (the second run did not reproduce it)", base);
}

static bool was_seen(worker *w, const char *name)
{
    for (size_t i = 0; i < w->nseen; i++)
        if (!strcmp(w->seen[i], name))
            return true;
    return false;
}

static void mark_seen(worker *w, const char *name)
{
    char(*ns)[24] = realloc(w->seen, (w->nseen + 1) * sizeof *ns);
    if (!ns)
        return;
    w->seen = ns;
    snprintf(w->seen[w->nseen++], 24, "%s", name);
}

typedef struct {
    uint64_t execs, bad, findings, unique, starts;
    uint64_t corpus, states, transitions, edges;
} progress;

static void progress_of(const worker *w, progress *p)
{
    vuf_campaign_stats st;
    vuf_campaign_stats_get(w->camp, &st);
    *p = (progress){.execs = st.execs,
                    .bad = st.bad_inputs,
                    .findings = w->findings,
                    .unique = w->unique,
                    .starts = vuf_backend_starts(w->be),
                    .corpus = st.corpus,
                    .states = st.states,
                    .transitions = st.transitions,
                    .edges = st.edges};
}

static void print_progress(const progress *p, double secs, double rate, bool coverage)
{
    char edges[48] = "";
    if (coverage)
        snprintf(edges, sizeof edges, ", edges %llu", (unsigned long long)p->edges);
    fprintf(stderr,
            "vufuzz fuzz: %6.0f s: %llu runs (%.0f/s), states %llu + transitions %llu%s, "
            "corpus %llu, findings %llu (%llu unique), back-end starts %llu\n",
            secs, (unsigned long long)p->execs, rate, (unsigned long long)p->states,
            (unsigned long long)p->transitions, edges, (unsigned long long)p->corpus,
            (unsigned long long)p->findings, (unsigned long long)p->unique,
            (unsigned long long)p->starts);
}

static bool time_up(const worker *w, double t0)
{
    return stop_requested || (w->cfg->seconds && vuf_now_s() - t0 >= (double)w->cfg->seconds);
}

static void import_shared(worker *w, double t0);

/* Every run: progress every 2 s (to the parent with --jobs), other workers'
 * corpus every 5 s. */
static void tick(worker *w, double t0)
{
    double t = vuf_now_s();
    if (w->cfg->jobs > 1 && t - w->last_sync >= 5) {
        w->last_sync = t;
        import_shared(w, t0);
    }
    if (t - w->last_print < 2)
        return;
    progress p;
    progress_of(w, &p);
    if (w->status_fd >= 0) {
        if (write(w->status_fd, &p, sizeof p) < 0)
            w->parent_gone = true;
    } else if (!w->cfg->quiet) {
        print_progress(&p, t - t0, (double)(p.execs - w->last_execs) / (t - w->last_print),
                       w->map != NULL);
    }
    if (w->map && !p.edges && p.execs > 50 && !w->warned_map) {
        fprintf(stderr,
                "vufuzz fuzz: [job %u] the edge map stays empty: is the back-end built with "
                "afl-clang-fast?\n",
                w->index);
        w->warned_map = true;
    }
    w->last_execs = p.execs;
    w->last_print = t;
}

/* Keep a corpus entry on disk (shared with the other workers). */
static void save_input(worker *w, const uint8_t *data, size_t len)
{
    char h[17], name[24], path[4200];
    hex16(data, len, h);
    snprintf(name, sizeof name, "%s.bin", h);
    snprintf(path, sizeof path, "%s/corpus/%s", w->cfg->out, name);
    mark_seen(w, name);
    vuf_write_file(path, data, len);
}

static void handle(worker *w, const vuf_campaign_run *r, double t0)
{
    if (r->kept)
        save_input(w, r->input, r->len);
    switch (r->finding.kind) {
    case VUF_FINDING_NONE:
    case VUF_FINDING_BAD_INPUT:
        break;
    case VUF_FINDING_TARGET_ERROR:
        snprintf(w->error, sizeof w->error, "the back-end could not be driven: %s",
                 r->finding.text);
        break;
    default:
        save_finding(w, &r->finding, r->input, r->len, t0);
        break;
    }
}

/* Other workers' new inputs. */
static void import_shared(worker *w, double t0)
{
    char dir[4200];
    snprintf(dir, sizeof dir, "%s/corpus", w->cfg->out);
    DIR *d = opendir(dir);
    if (!d)
        return;
    for (struct dirent *e; (e = readdir(d)) && !stop_requested && !w->error[0];) {
        size_t n = strlen(e->d_name);
        if (n != 20 || strcmp(e->d_name + 16, ".bin") || was_seen(w, e->d_name))
            continue;
        mark_seen(w, e->d_name);
        char path[4500], err[200];
        snprintf(path, sizeof path, "%s/%s", dir, e->d_name);
        size_t len;
        uint8_t *data = (uint8_t *)vuf_read_file(path, 1 << 20, &len, err, sizeof err);
        if (!data)
            continue;
        vuf_campaign_run r;
        vuf_campaign_import(w->camp, data, len, &r);
        r.kept = false; /* it is on disk already */
        handle(w, &r, t0);
        free(data);
    }
    closedir(d);
}

/* Seeds: every regular file of the corpus directories, text or binary. */
static size_t load_seeds(worker *w, double t0)
{
    size_t n = 0;
    for (size_t k = 0; k < w->cfg->ncorpus; k++) {
        DIR *d = opendir(w->cfg->corpus_dirs[k]);
        if (!d)
            continue;
        struct dirent **list;
        closedir(d);
        int m = scandir(w->cfg->corpus_dirs[k], &list, NULL, alphasort);
        for (int i = 0; i < m; i++) {
            char path[4500];
            snprintf(path, sizeof path, "%s/%s", w->cfg->corpus_dirs[k], list[i]->d_name);
            struct stat st;
            if (list[i]->d_name[0] != '.' && !stat(path, &st) && S_ISREG(st.st_mode) &&
                !w->error[0] && !time_up(w, t0)) {
                vuf_diag dg;
                Vuf__Session *s = vuf_session_load_file(w->cfg->spec, path, NULL, &dg);
                size_t len = 0;
                uint8_t *packed = s ? vuf_session_pack(s, &len) : NULL;
                vuf_session_free(s);
                if (packed) {
                    vuf_campaign_run r;
                    vuf_campaign_seed(w->camp, packed, len, &r);
                    if (r.finding.kind != VUF_FINDING_BAD_INPUT)
                        n++;
                    handle(w, &r, t0);
                    tick(w, t0);
                    free(packed);
                }
            }
            free(list[i]);
        }
        free(list);
    }
    return n;
}

/* A worker: its own back-end (--exec) and campaign, until the deadline. */
static int run_worker(const config *cfg, unsigned index, int status_fd, progress *final)
{
    worker w = {.cfg = cfg, .index = index, .status_fd = status_fd};
    char err[1024];
    int rc = 2;
    if (cfg->coverage && !(w.map = vuf_aflmap_new(cfg->map_size, err, sizeof err))) {
        fprintf(stderr, "vufuzz fuzz: %s\n", err);
        return 2;
    }
    w.be = vuf_backend_new(&cfg->bo, err, sizeof err);
    if (!w.be) {
        fprintf(stderr, "vufuzz fuzz: %s\n", err);
        vuf_aflmap_free(w.map);
        return 2;
    }
    vuf_campaign_opts co = {.spec = cfg->spec,
                            .seed = cfg->seed + index * 0x9e3779b97f4a7c15ull,
                            .max_len = cfg->max_len,
                            .edges = w.map ? vuf_aflmap_bytes(w.map) : NULL,
                            .edges_len = w.map ? vuf_aflmap_size(w.map) : 0,
                            .edges_count_only = cfg->coverage_count_only};
    w.camp = vuf_campaign_new(&co);
    vuf_harness_opts ho = {.custom = vuf_backend_target(w.be, cfg->spec),
                           .strict = cfg->level == VUF_MUST ? VUF_STRICT_OFF : VUF_STRICT_ON,
                           .stop_on_peer_close = true,
                           .on_event = on_event,
                           .on_action = on_action,
                           .on_violation = on_violation,
                           .device = cfg->device ? vuf_spec_device(cfg->spec, cfg->device) : NULL,
                           .ctx = &w};
    w.h = w.camp ? vuf_harness_new(cfg->spec, &ho) : NULL;
    if (!w.h) {
        fprintf(stderr, "vufuzz fuzz: cannot set up the harness\n");
        goto out;
    }
    vuf_campaign_attach(w.camp, w.h);
    double t0 = vuf_now_s();
    w.last_print = w.last_sync = t0;
    size_t seeds = load_seeds(&w, t0);
    if (w.error[0]) {
        fprintf(stderr, "vufuzz fuzz: %s\n", w.error);
        goto out;
    }
    if (!seeds && !stop_requested) {
        fprintf(stderr, "vufuzz fuzz: no seed plays against the table (corpus:");
        for (size_t k = 0; k < cfg->ncorpus; k++)
            fprintf(stderr, " %s", cfg->corpus_dirs[k]);
        fprintf(stderr, ")\n");
        goto out;
    }
    if (!cfg->quiet && status_fd < 0)
        fprintf(stderr, "vufuzz fuzz: %zu seeds played against %s%s\n", seeds,
                vuf_backend_name(w.be), w.map ? ", with its edge map" : "");
    for (uint64_t n = 0; !time_up(&w, t0) && !w.parent_gone; n++) {
        if (cfg->runs && n >= cfg->runs)
            break;
        vuf_campaign_run r;
        vuf_campaign_step(w.camp, &r);
        handle(&w, &r, t0);
        if (w.error[0])
            break;
        tick(&w, t0);
    }
    if (w.error[0]) {
        fprintf(stderr, "vufuzz fuzz: [job %u] %s\n", index, w.error);
        rc = 2;
    } else {
        rc = w.unique ? 1 : 0;
    }
    progress_of(&w, final);
    if (status_fd >= 0 && write(status_fd, final, sizeof *final) < 0)
        rc = 2;
out:
    vuf_harness_free(w.h);
    vuf_campaign_free(w.camp);
    vuf_backend_free(w.be);
    vuf_aflmap_free(w.map);
    vuf_lines_free(&w.trace);
    free(w.sigs);
    free(w.seen);
    return rc;
}

static void write_report(const config *cfg, const progress *p, double secs, int rc)
{
    char path[4200];
    snprintf(path, sizeof path, "%s/stats.json", cfg->out);
    const char *files[2] = {path, cfg->json};
    for (int k = 0; k < 2; k++) {
        if (!files[k])
            continue;
        FILE *f = fopen(files[k], "w");
        if (!f) {
            fprintf(stderr, "vufuzz fuzz: %s: %s\n", files[k], strerror(errno));
            continue;
        }
        vuf_json j;
        vuf_json_init(&j, f);
        vuf_json_object(&j, NULL);
        vuf_cli_json_meta(&j);
        vuf_json_str(&j, "backend", cfg->bo.exec_cmd ? cfg->bo.exec_cmd : cfg->bo.connect_path);
        vuf_json_u64(&j, "jobs", cfg->jobs);
        vuf_json_u64(&j, "seed", cfg->seed);
        vuf_json_double(&j, "seconds", secs);
        vuf_json_u64(&j, "runs", p->execs);
        vuf_json_double(&j, "runs_per_second", secs > 0 ? (double)p->execs / secs : 0);
        vuf_json_u64(&j, "bad_inputs", p->bad);
        vuf_json_u64(&j, "states", p->states);
        vuf_json_u64(&j, "transitions", p->transitions);
        if (cfg->coverage)
            vuf_json_u64(&j, "edges", p->edges);
        else
            vuf_json_null(&j, "edges");
        vuf_json_u64(&j, "corpus", p->corpus);
        vuf_json_u64(&j, "findings", p->findings);
        vuf_json_u64(&j, "unique_findings", p->unique);
        vuf_json_u64(&j, "backend_starts", p->starts);
        vuf_json_str(&j, "out", cfg->out);
        vuf_json_i64(&j, "exit", rc);
        vuf_json_end(&j);
        vuf_json_finish(&j);
        fclose(f);
    }
}

static void add(progress *a, const progress *b)
{
    a->execs += b->execs;
    a->bad += b->bad;
    a->findings += b->findings;
    a->unique += b->unique;
    a->starts += b->starts;
    /* corpus, states, edges: per worker (they overlap); the largest */
    a->corpus = b->corpus > a->corpus ? b->corpus : a->corpus;
    a->states = b->states > a->states ? b->states : a->states;
    a->transitions = b->transitions > a->transitions ? b->transitions : a->transitions;
    a->edges = b->edges > a->edges ? b->edges : a->edges;
}

/* --jobs N: N children, their progress merged here. */
static int run_jobs(const config *cfg, progress *total)
{
    pid_t pids[64];
    int fds[64];
    progress last[64];
    memset(last, 0, sizeof last);
    unsigned n = 0;
    for (; n < cfg->jobs; n++) {
        int pp[2];
        if (pipe2(pp, O_CLOEXEC))
            break;
        pid_t pid = fork();
        if (pid < 0) {
            close(pp[0]);
            close(pp[1]);
            break;
        }
        if (pid == 0) {
            close(pp[0]);
            progress fin;
            _exit(run_worker(cfg, n, pp[1], &fin));
        }
        close(pp[1]);
        pids[n] = pid;
        fds[n] = pp[0];
    }
    double t0 = vuf_now_s(), last_print = t0;
    uint64_t last_execs = 0;
    unsigned open_fds = n;
    bool stopping = false;
    while (open_fds) {
        if (stop_requested && !stopping) {
            for (unsigned i = 0; i < n; i++)
                kill(pids[i], SIGTERM);
            stopping = true;
        }
        struct pollfd pf[64];
        for (unsigned i = 0; i < n; i++)
            pf[i] = (struct pollfd){.fd = fds[i], .events = POLLIN};
        if (poll(pf, n, 500) < 0 && errno != EINTR)
            break;
        for (unsigned i = 0; i < n; i++) {
            if (fds[i] < 0 || !(pf[i].revents & (POLLIN | POLLHUP)))
                continue;
            progress p;
            ssize_t k = read(fds[i], &p, sizeof p);
            if (k == (ssize_t)sizeof p) {
                last[i] = p;
            } else {
                close(fds[i]);
                fds[i] = -1;
                open_fds--;
            }
        }
        double t = vuf_now_s();
        if (t - last_print >= 2 && !cfg->quiet) {
            progress sum = {0};
            for (unsigned i = 0; i < n; i++)
                add(&sum, &last[i]);
            print_progress(&sum, t - t0, (double)(sum.execs - last_execs) / (t - last_print),
                           cfg->coverage);
            last_execs = sum.execs;
            last_print = t;
        }
    }
    int rc = 0;
    memset(total, 0, sizeof *total);
    for (unsigned i = 0; i < n; i++) {
        int st;
        while (waitpid(pids[i], &st, 0) < 0 && errno == EINTR)
            ;
        int r = WIFEXITED(st) ? WEXITSTATUS(st) : 2;
        rc = r == 2 || rc == 2 ? 2 : r || rc ? 1 : 0;
        add(total, &last[i]);
    }
    return n == cfg->jobs ? rc : 2;
}

enum {
    O_CORPUS,
    O_OUT,
    O_SECONDS,
    O_RUNS,
    O_JOBS,
    O_SEED,
    O_SEED1,
    O_DEVICE,
    O_LEVEL,
    O_COVERAGE,
    O_COVERAGE_COUNT,
    O_MAP_SIZE,
    O_MAX_LEN,
    O_JSON,
    O_QUIET,
    O_SPEC,
    O_BACKEND /* VUF_CLI_BACKEND_N of them */
};

int vuf_cmd_fuzz(int argc, char **argv)
{
    static const vuf_cli_opt opts[] = {[O_CORPUS] = {"--corpus", "DIR"},
                                       [O_OUT] = {"--out", "DIR"},
                                       [O_SECONDS] = {"--seconds", "N"},
                                       [O_RUNS] = {"--runs", "N"},
                                       [O_JOBS] = {"--jobs", "N"},
                                       [O_SEED] = {"--seed", "N"},
                                       [O_SEED1] = {"-seed", "N"},
                                       [O_DEVICE] = {"--device", "TYPE"},
                                       [O_LEVEL] = {"--level", "L"},
                                       [O_COVERAGE] = {"--coverage", NULL},
                                       [O_COVERAGE_COUNT] = {"--coverage-count-only", NULL},
                                       [O_MAP_SIZE] = {"--map-size", "N"},
                                       [O_MAX_LEN] = {"--max-len", "N"},
                                       [O_JSON] = {"--json", "FILE"},
                                       [O_QUIET] = {"--quiet", NULL},
                                       [O_SPEC] = {"--spec", "FILE"},
                                       VUF_CLI_BACKEND_OPTS(O_BACKEND),
                                       {NULL, NULL}};
    config cfg = {.out = "vufuzz-out", .jobs = 1, .max_len = 16384, .level = VUF_MUST};
    const char *spec_path = NULL, *val;
    bool seed_given = false;
    cfg.corpus_dirs = calloc((size_t)argc + 1, sizeof *cfg.corpus_dirs);
    vuf_cli_parser p;
    vuf_cli_init(&p, "fuzz", usage_line, opts, argc, argv);
    int rc = -1;
    uint64_t *num = NULL;
    for (int k; rc < 0 && (k = vuf_cli_next(&p, &val)) != VUF_CLI_END;) {
        const char *name = k >= 0 ? opts[k].name : "";
        uint64_t lo = 1, hi = UINT64_MAX;
        num = NULL;
        switch (k) {
        case VUF_CLI_HELP:
            usage(stdout);
            rc = 0;
            break;
        case VUF_CLI_ERROR:
            rc = 2;
            break;
        case VUF_CLI_POS:
            rc = vuf_cli_usage_error("fuzz", usage_line, "unexpected '%s'", val);
            break;
        case O_CORPUS:
            cfg.corpus_dirs[cfg.ncorpus++] = (char *)val;
            break;
        case O_OUT:
            cfg.out = val;
            break;
        case O_SECONDS:
            num = &cfg.seconds, hi = 365 * 86400ull;
            break;
        case O_RUNS:
            num = &cfg.runs;
            break;
        case O_JOBS:
            num = &cfg.jobs, hi = 64;
            break;
        case O_SEED:
        case O_SEED1:
            num = &cfg.seed, lo = 0;
            seed_given = true;
            break;
        case O_DEVICE:
            cfg.device = val;
            break;
        case O_LEVEL:
            if (vuf_level_parse(val, &cfg.level) != 0 || cfg.level == VUF_NOTE)
                rc = vuf_cli_usage_error("fuzz", usage_line, "bad --level '%s' (must or should)",
                                         val);
            break;
        case O_COVERAGE:
            cfg.coverage = true;
            break;
        case O_COVERAGE_COUNT:
            cfg.coverage = cfg.coverage_count_only = true;
            break;
        case O_MAP_SIZE:
            num = &cfg.map_size, lo = 256, hi = 1u << 26;
            break;
        case O_MAX_LEN:
            num = &cfg.max_len, lo = 64, hi = 1u << 20;
            break;
        case O_JSON:
            cfg.json = val;
            break;
        case O_QUIET:
            cfg.quiet = true;
            break;
        case O_SPEC:
            spec_path = val;
            break;
        default:
            if (vuf_cli_backend_opt(&cfg.bo, k - O_BACKEND, val, "fuzz", usage_line))
                rc = 2;
            break;
        }
        if (num && (!vuf_parse_u64(val, num) || *num < lo || *num > hi))
            rc = vuf_cli_usage_error("fuzz", usage_line, "bad %s '%s' (%llu..%llu)", name, val,
                                     (unsigned long long)lo, (unsigned long long)hi);
    }
    bool given = false;
    if (rc < 0 && (rc = vuf_cli_backend_check(&cfg.bo, &given, "fuzz", usage_line)) == 0) {
        rc = -1;
        if (!given)
            rc = vuf_cli_usage_error("fuzz", usage_line,
                                     "give the back-end: --connect PATH or --exec 'CMD {socket}'");
        else if (cfg.coverage && !cfg.bo.exec_cmd)
            rc = vuf_cli_usage_error("fuzz", usage_line,
                                     "--coverage needs --exec (the back-end must be started with "
                                     "the map's id in its environment)");
        else if (cfg.jobs > 1 && !cfg.bo.exec_cmd)
            rc = vuf_cli_usage_error("fuzz", usage_line,
                                     "--jobs needs --exec (one back-end per job)");
    }
    if (rc >= 0) {
        free(cfg.corpus_dirs);
        return rc;
    }
    char defcorpus[4096];
    if (!cfg.ncorpus) {
        snprintf(defcorpus, sizeof defcorpus, "%s/corpus", VUF_SOURCE_DIR);
        cfg.corpus_dirs[cfg.ncorpus++] = defcorpus;
    }
    for (size_t i = 0; i < cfg.ncorpus; i++) {
        struct stat st;
        if (stat(cfg.corpus_dirs[i], &st) || !S_ISDIR(st.st_mode)) {
            fprintf(stderr, "vufuzz fuzz: %s: not a directory\n", cfg.corpus_dirs[i]);
            free(cfg.corpus_dirs);
            return 2;
        }
    }
    if (!seed_given)
        cfg.seed = (uint64_t)time(NULL) ^ ((uint64_t)getpid() << 32);
    char sub[4200];
    snprintf(sub, sizeof sub, "%s/findings", cfg.out);
    int okdir = vuf_mkdir_p(sub);
    snprintf(sub, sizeof sub, "%s/corpus", cfg.out);
    if (okdir || vuf_mkdir_p(sub)) {
        fprintf(stderr, "vufuzz fuzz: cannot make %s: %s\n", sub, strerror(errno));
        free(cfg.corpus_dirs);
        return 2;
    }
    cfg.spec = vuf_cli_open_spec(spec_path);
    if (!cfg.spec) {
        free(cfg.corpus_dirs);
        return 2;
    }
    struct sigaction sa = {.sa_handler = on_stop};
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
    signal(SIGPIPE, SIG_IGN);
    if (!cfg.quiet)
        fprintf(stderr, "vufuzz fuzz: seed %llu, %llu job%s, findings and corpus in %s\n",
                (unsigned long long)cfg.seed, (unsigned long long)cfg.jobs,
                cfg.jobs == 1 ? "" : "s", cfg.out);
    double t0 = vuf_now_s();
    progress total;
    memset(&total, 0, sizeof total);
    rc = cfg.jobs > 1 ? run_jobs(&cfg, &total) : run_worker(&cfg, 0, -1, &total);
    double secs = vuf_now_s() - t0;
    printf("vufuzz fuzz: %llu runs in %.1f s (%.0f/s), %llu bad inputs; states %llu, transitions "
           "%llu; corpus %llu; findings %llu (%llu unique, in %s/findings); back-end starts "
           "%llu\n",
           (unsigned long long)total.execs, secs, secs > 0 ? (double)total.execs / secs : 0,
           (unsigned long long)total.bad, (unsigned long long)total.states,
           (unsigned long long)total.transitions, (unsigned long long)total.corpus,
           (unsigned long long)total.findings, (unsigned long long)total.unique, cfg.out,
           (unsigned long long)total.starts);
    if (cfg.coverage)
        printf("vufuzz fuzz: edges %llu\n", (unsigned long long)total.edges);
    write_report(&cfg, &total, secs, rc);
    vuf_spec_release(cfg.spec);
    free(cfg.corpus_dirs);
    return rc;
}
