/* SPDX-License-Identifier: Apache-2.0 */
/* vufuzz fuzz-frontend: vufuzz as a hostile back-end against a front-end
 * (QEMU): back-end sessions mutated, run against a fresh front-end each,
 * with the oracles of vuf_frontend.h; findings saved with the front-end's
 * output, minimized. */
#include "cli.h"
#include "vuf_codec.h"
#include "vuf_frontend.h"
#include "vuf_json.h"
#include "vuf_mutator.h"
#include "vuf_session.h"
#include "vuf_sha256.h"
#include "vuf_util.h"

#include <dirent.h>
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static const char usage_line[] =
    "usage: vufuzz fuzz-frontend [--exec 'CMD {socket}'] [--device blk|net] [--firmware]\n"
    "                            [--seconds N] [--runs N] [--jobs N] [--seed N] [--corpus DIR]\n"
    "                            [--findings DIR] [--json FILE] [--no-minimize] [--quiet]\n"
    "                            [--minimize FILE [-o OUT]] [front-end options] [--spec FILE]\n"
    "                            [SEED...]";

static void usage(FILE *f)
{
    fprintf(f,
            "%s\n\n"
            "vufuzz as a hostile back-end against a vhost-user front-end (QEMU), on both\n"
            "channels. vufuzz listens where the front-end connects, starts a fresh\n"
            "front-end for every session and plays the back-end: the reference device\n"
            "(`vufuzz serve`'s) with a back-end session's deviations (docs/session-format.md,\n"
            "\"Back-end sessions\"): its replies laid over the device's with a field, a\n"
            "size, an id, flags or fds changed; feature bits beyond the device's;\n"
            "back-end channel requests from the table, with and without NEED_REPLY,\n"
            "well-formed or broken; delays; closes; raw bytes; a disk resize.\n\n"
            "The first session is the device unchanged: the front-end's conversation\n"
            "with it becomes a seed (each front-end message an expectation where\n"
            "deviations go), beside the SEED files and the --corpus DIR. Sessions that\n"
            "reach something new (a message of either channel, a line of the front-end's\n"
            "output, a rule broken by either side, an exit status) join the corpus.\n\n"
            "Oracles: the front-end dies by a signal, or its output holds an assertion,\n"
            "abort or sanitizer line; it hangs (QMP query-status unanswered, or still\n"
            "there after QMP quit, within --hang-timeout); it breaks a MUST rule (the\n"
            "checker judges the front-end's side). A front-end that refuses the back-end\n"
            "and exits with an error status does its duty: not a finding.\n\n"
            "  --exec 'CMD'   the front-end: CMD goes to bash -c with {socket} replaced by\n"
            "                 the socket vufuzz listens on (the client chardev's path). A\n"
            "                 QEMU command gets `-qmp unix:{qmp},server=on,wait=off`\n"
            "                 (unless it names {qmp}) and `-S` without --firmware.\n"
            "                 Default: QEMU (q35, TCG, 64 MiB of shared memfd memory) with\n"
            "                 vhost-user-blk-pci, or virtio-net-pci on a vhost-user netdev\n"
            "                 with --device net\n"
            "%s"
            "  --seconds N    run for N seconds (default 60)\n"
            "  --runs N       stop after N sessions\n"
            "  --jobs N       N campaigns in parallel, each with its front-ends (default 1)\n"
            "  --seed N       the mutator's seed (default: from the clock)\n"
            "  --corpus DIR   load the sessions there, and keep the new ones there\n"
            "  --findings DIR where findings go (default findings-frontend): FILE.txt the\n"
            "                 minimized session, FILE.orig.txt as found, FILE.output the\n"
            "                 front-end's last output; `vufuzz replay --frontend-exec CMD\n"
            "                 FILE.txt` reproduces it\n"
            "  --json FILE    the report as JSON\n"
            "  --no-minimize  save findings as found\n"
            "  --minimize FILE  no campaign: minimize the finding FILE reproduces, into\n"
            "                 -o OUT (default FILE.min.txt)\n"
            "  --quiet        no progress lines\n"
            "  --spec FILE    use this table instead of the built-in one\n\n"
            "The report: sessions and sessions/s, the messages of both channels reached\n"
            "(sent by the front-end, sent to it), findings.\n"
            "Exit status: 0 no finding, 1 findings, 2 usage or input error.\n",
            usage_line, vuf_cli_frontend_help);
}

/* ---------- features: what a session reached ---------- */

#define FEAT_BITS 16
#define FEAT_SIZE (1u << FEAT_BITS)

typedef struct {
    uint64_t *v; /* open addressing, 0 = empty */
    size_t n;
} featset;

static uint64_t hash64(const void *data, size_t len, uint64_t h)
{
    const uint8_t *p = data;
    h ^= 0xcbf29ce484222325ull;
    for (size_t i = 0; i < len; i++)
        h = (h ^ p[i]) * 0x100000001b3ull;
    return h ? h : 1;
}

/* true if it was new */
static bool feat_add(featset *s, uint64_t h)
{
    if (s->n * 2 >= FEAT_SIZE)
        return false; /* full: nothing counts as new any more */
    for (size_t i = h & (FEAT_SIZE - 1);; i = (i + 1) & (FEAT_SIZE - 1)) {
        if (s->v[i] == h)
            return false;
        if (!s->v[i]) {
            s->v[i] = h;
            s->n++;
            return true;
        }
    }
}

/* A line of output with its numbers made '#': the code path, not the values. */
static uint64_t line_feature(const char *l, size_t n)
{
    char norm[256];
    size_t o = 0;
    for (size_t i = 0; i < n && o + 1 < sizeof norm; i++) {
        bool num = (l[i] >= '0' && l[i] <= '9');
        if (num || (l[i] == 'x' && i && l[i - 1] == '0')) {
            if (!o || norm[o - 1] != '#')
                norm[o++] = '#';
            while (i + 1 < n && ((l[i + 1] >= '0' && l[i + 1] <= '9') ||
                                 (l[i + 1] >= 'a' && l[i + 1] <= 'f') || l[i + 1] == 'x'))
                i++;
            continue;
        }
        norm[o++] = l[i];
    }
    return hash64(norm, o, 7);
}

/* ---------- the campaign ---------- */

typedef struct {
    uint8_t *data;
    size_t len;
} entry;

typedef struct {
    const vuf_spec *spec;
    vuf_frontend *f;
    vuf_mutator *mu;
    featset feats;
    entry *corpus;
    size_t ncorpus, capcorpus;
    const char *corpus_dir, *findings_dir;
    bool minimize, quiet;
    bool target_error; /* the front-end did not connect: the campaign stopped */
    /* the run's features, gathered by the callbacks */
    uint64_t run_feats[512];
    size_t nrun;
    /* the reference conversation: the front-end's messages, in order */
    bool recording;
    Vuf__Action **rec;
    size_t nrec, caprec;
    /* figures */
    uint64_t sessions, bad, minimize_runs;
    uint64_t seen[VUF_CHAN_COUNT][2];
    uint64_t msgs[VUF_CHAN_COUNT][2];
    unsigned nfindings;
    char sigs[64][80]; /* finding signatures saved */
    size_t nsigs;
    double busy; /* seconds inside sessions */
} campaign;

static void run_feature(campaign *c, uint64_t h)
{
    if (c->nrun < sizeof c->run_feats / sizeof c->run_feats[0])
        c->run_feats[c->nrun++] = h;
}

static void record(campaign *c, const vuf_event *ev)
{
    if (ev->kind != VUF_EV_MSG || ev->sender != VUF_SIDE_FRONTEND || ev->len < VUF_HDR_SIZE)
        return;
    vuf_hdr hd;
    vuf_hdr_decode(ev->data, &hd);
    if (c->nrec == c->caprec) {
        size_t nc = c->caprec ? 2 * c->caprec : 64;
        Vuf__Action **nv = realloc(c->rec, nc * sizeof *nv);
        if (!nv)
            return;
        c->rec = nv;
        c->caprec = nc;
    }
    Vuf__Action *a = malloc(sizeof *a);
    Vuf__Message *m = malloc(sizeof *m);
    if (!a || !m) {
        free(a);
        free(m);
        return;
    }
    vuf__action__init(a);
    vuf__message__init(m);
    const vuf_msg_def *d = vuf_spec_msg(c->spec, ev->channel, hd.request);
    if (d) {
        m->name = strdup(d->name);
    } else {
        m->has_id = true;
        m->id = hd.request;
    }
    if (hd.flags & VUF_F_REPLY)
        m->has_reply = m->reply = true;
    a->action_case = ev->channel == VUF_CHAN_BACKEND ? VUF__ACTION__ACTION_BACKEND_EXPECT
                                                     : VUF__ACTION__ACTION_EXPECT;
    a->expect = m;
    c->rec[c->nrec++] = a;
}

static void on_event(void *ctx, const vuf_event *ev)
{
    campaign *c = ctx;
    if (c->recording)
        record(c, ev);
}

static void on_violation(void *ctx, const vuf_violation *v)
{
    campaign *c = ctx;
    char k[64];
    int n = snprintf(k, sizeof k, "rule %s %d", v->rule->id, (int)v->side);
    run_feature(c, hash64(k, (size_t)n, 3));
}

static bool add_entry(campaign *c, const uint8_t *data, size_t len)
{
    if (c->ncorpus == c->capcorpus) {
        size_t nc = c->capcorpus ? 2 * c->capcorpus : 64;
        entry *nv = realloc(c->corpus, nc * sizeof *nv);
        if (!nv)
            return false;
        c->corpus = nv;
        c->capcorpus = nc;
    }
    uint8_t *d = malloc(len ? len : 1);
    if (!d)
        return false;
    memcpy(d, data, len);
    c->corpus[c->ncorpus++] = (entry){d, len};
    return true;
}

static bool write_file(const char *path, const void *data, size_t len)
{
    if (vuf_write_file(path, data, len))
        return true;
    fprintf(stderr, "vufuzz fuzz-frontend: %s: %s\n", path, strerror(errno));
    return false;
}

/* Does text parse back to the session whose binary form is b? */
static bool round_trips(const vuf_spec *spec, const char *text, const uint8_t *b, size_t blen)
{
    vuf_diag d;
    Vuf__Session *back = vuf_session_parse_text(spec, text, strlen(text), "", &d);
    size_t l2 = 0;
    uint8_t *b2 = back ? vuf_session_pack(back, &l2) : NULL;
    bool same = b2 && l2 == blen && !memcmp(b, b2, blen);
    free(b2);
    vuf_session_free(back);
    return same;
}

/* Write a session as base.txt, the text form, when it parses back to the
 * same session, and as base.bin, the binary form, when it does not (the
 * mutator can make messages the text cannot say: fields on an id the table
 * does not know); `both`: the two always. *bin tells whether base.bin was
 * written. */
static bool save_session(const vuf_spec *spec, const Vuf__Session *s, const char *base, bool both,
                         bool *bin)
{
    char path[4200];
    size_t blen = 0;
    uint8_t *b = vuf_session_pack(s, &blen);
    char *text = vuf_session_format_text(spec, s);
    bool same = b && text && round_trips(spec, text, b, blen);
    bool ok = b && text;
    if (ok && (both || same)) {
        snprintf(path, sizeof path, "%s.txt", base);
        ok = write_file(path, text, strlen(text));
    }
    if (bin)
        *bin = ok && (both || !same);
    if (ok && (both || !same)) {
        snprintf(path, sizeof path, "%s.bin", base);
        ok = write_file(path, b, blen);
    }
    free(b);
    free(text);
    return ok;
}

/* Write a session to path: its text form when that parses back to the same
 * session, else its binary form (vufuzz reads either). */
static bool save_as(const vuf_spec *spec, const Vuf__Session *s, const char *path)
{
    size_t blen = 0;
    uint8_t *b = vuf_session_pack(s, &blen);
    char *text = vuf_session_format_text(spec, s);
    bool ok = b && text;
    if (ok && round_trips(spec, text, b, blen))
        ok = write_file(path, text, strlen(text));
    else if (ok)
        ok = write_file(path, b, blen);
    free(b);
    free(text);
    return ok;
}

static void save_corpus(campaign *c, const Vuf__Session *s, const uint8_t *data, size_t len)
{
    if (!c->corpus_dir)
        return;
    char hex[65], base[4096];
    vuf_sha256_hex(data, len, hex);
    snprintf(base, sizeof base, "%s/%.16s", c->corpus_dir, hex);
    save_session(c->spec, s, base, false, NULL);
}

/* The features of the session that just ran; true if one was new. */
static bool judge_features(campaign *c, const vuf_frontend_result *r)
{
    for (int ch = 0; ch < VUF_CHAN_COUNT; ch++)
        for (int who = 0; who < 2; who++) {
            c->msgs[ch][who] += r->msgs[ch][who];
            c->seen[ch][who] |= r->seen_ids[ch][who];
            for (uint64_t m = r->seen_ids[ch][who]; m; m &= m - 1) {
                uint64_t k = (uint64_t)ch << 16 | (uint64_t)who << 8 | (uint64_t)__builtin_ctzll(m);
                run_feature(c, hash64(&k, sizeof k, 1));
            }
        }
    for (const char *l = r->output, *e; *l; l = e + !!*e) {
        e = l + strcspn(l, "\n");
        if (e > l && strncmp(l, "== vufuzz:", 10))
            run_feature(c, line_feature(l, (size_t)(e - l)));
    }
    run_feature(c, hash64(r->status, strlen(r->status), 5));
    size_t done = r->actions_done, bucket = 0;
    while (done) {
        bucket++;
        done >>= 1;
    }
    run_feature(c, hash64(&bucket, sizeof bucket, 9));
    bool fresh = false;
    for (size_t i = 0; i < c->nrun; i++)
        fresh |= feat_add(&c->feats, c->run_feats[i]);
    c->nrun = 0;
    return fresh;
}

/* The finding's signature: kind, rule, and the crash line's shape. */
static void signature(const vuf_finding *fd, const vuf_frontend_result *r, char *out, size_t cap)
{
    char line[300] = "";
    vuf_frontend_crash_line(r->output, line, sizeof line, NULL);
    uint64_t h = line_feature(line, strlen(line));
    snprintf(out, cap, "%s-%s-%08llx", vuf_finding_kind_name(fd->kind), fd->rule,
             (unsigned long long)(h & 0xffffffffu));
}

static void on_finding(campaign *c, const Vuf__Session *s, const vuf_finding *fd,
                       const vuf_frontend_result *r)
{
    char sig[80];
    signature(fd, r, sig, sizeof sig);
    for (size_t i = 0; i < c->nsigs; i++)
        if (!strcmp(c->sigs[i], sig))
            return; /* seen: not saved again */
    if (c->nsigs < sizeof c->sigs / sizeof c->sigs[0])
        snprintf(c->sigs[c->nsigs++], sizeof c->sigs[0], "%s", sig);
    c->nfindings++;
    if (mkdir(c->findings_dir, 0755) && errno != EEXIST)
        fprintf(stderr, "vufuzz fuzz-frontend: cannot make the findings directory %s: %s\n",
                c->findings_dir, strerror(errno));
    char path[4096];
    snprintf(path, sizeof path, "%s/%s.orig", c->findings_dir, sig);
    bool saved = save_session(c->spec, s, path, true, NULL);
    snprintf(path, sizeof path, "%s/%s.output", c->findings_dir, sig);
    FILE *o = fopen(path, "w");
    if (o) {
        fprintf(o, "# %s %s: %s\n# the front-end %s\n%s", vuf_finding_kind_name(fd->kind), fd->rule,
                fd->text, r->status, r->output);
        fclose(o);
    }
    Vuf__Session *min = NULL;
    unsigned runs = 0;
    if (c->minimize)
        min = vuf_frontend_minimize(c->f, s, fd, &runs);
    c->minimize_runs += runs;
    snprintf(path, sizeof path, "%s/%s", c->findings_dir, sig);
    saved = save_session(c->spec, min ? min : s, path, true, NULL) && saved;
    printf("FINDING %s %s at action %zu: %s\n  %s: %s.txt and .bin (%zu actions%s)\n",
           vuf_finding_kind_name(fd->kind), fd->rule, fd->action, fd->text,
           saved ? "saved" : "NOT SAVED (see the error above)", path,
           min ? min->n_actions : s->n_actions,
           !c->minimize ? ""
           : min        ? ", minimized"
                        : ", not minimized: it did not come back in two runs");
    fflush(stdout);
    vuf_session_free(min);
}

/* One session: run, features, findings. Returns its finding. */
static vuf_finding run_one(campaign *c, const Vuf__Session *s, const uint8_t *data, size_t len)
{
    vuf_frontend_result r;
    c->nrun = 0;
    vuf_finding fd = vuf_frontend_run(c->f, s, &r);
    c->busy += r.seconds;
    if (fd.kind == VUF_FINDING_BAD_INPUT) {
        c->bad++;
        c->nrun = 0;
        return fd;
    }
    if (fd.kind == VUF_FINDING_TARGET_ERROR)
        return fd;
    c->sessions++;
    if (judge_features(c, &r) && data && add_entry(c, data, len))
        save_corpus(c, s, data, len);
    if (fd.kind)
        on_finding(c, s, &fd, &r);
    return fd;
}

static int load_seeds(campaign *c, char **paths, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        struct stat st;
        DIR *d = stat(paths[i], &st) == 0 && S_ISDIR(st.st_mode) ? opendir(paths[i]) : NULL;
        size_t count = 0;
        for (struct dirent *e = NULL;;) {
            char path[4096];
            if (d) {
                if (!(e = readdir(d)))
                    break;
                snprintf(path, sizeof path, "%s/%s", paths[i], e->d_name);
                if (e->d_name[0] == '.' || stat(path, &st) || !S_ISREG(st.st_mode))
                    continue;
            } else {
                if (count)
                    break;
                snprintf(path, sizeof path, "%s", paths[i]);
            }
            count++;
            vuf_diag dg;
            Vuf__Session *s = vuf_session_load_file(c->spec, path, NULL, &dg);
            if (!s) {
                vuf_cli_print_diag(stderr, &dg, true);
                if (d)
                    closedir(d);
                return 2;
            }
            if (s->n_actions && !(s->has_role && s->role == VUF__ROLE__ROLE_BACKEND)) {
                fprintf(stderr,
                        "%s: error: not a back-end session (its first line must be "
                        "'role backend')\n",
                        path);
                vuf_session_free(s);
                if (d)
                    closedir(d);
                return 2;
            }
            size_t len;
            uint8_t *b = vuf_session_pack(s, &len);
            if (b)
                add_entry(c, b, len);
            free(b);
            vuf_session_free(s);
        }
        if (d)
            closedir(d);
    }
    return 0;
}

/* The reference session, recorded as the first seed. */
static void reference_seed(campaign *c)
{
    Vuf__Session empty = VUF__SESSION__INIT;
    empty.has_role = true;
    empty.role = VUF__ROLE__ROLE_BACKEND;
    c->recording = true;
    vuf_finding fd = run_one(c, &empty, NULL, 0);
    c->recording = false;
    if (fd.kind == VUF_FINDING_TARGET_ERROR) {
        fprintf(stderr, "vufuzz fuzz-frontend: %s\n", fd.text);
        c->target_error = true;
        for (size_t i = 0; i < c->nrec; i++)
            protobuf_c_message_free_unpacked(&c->rec[i]->base, NULL);
        free(c->rec);
        c->rec = NULL;
        c->nrec = 0;
        return;
    }
    if (!c->quiet)
        fprintf(stderr,
                "vufuzz fuzz-frontend: the reference conversation: %zu messages of the "
                "front-end%s\n",
                c->nrec, fd.kind ? " (a finding already)" : "");
    Vuf__Session s = VUF__SESSION__INIT;
    s.has_role = true;
    s.role = VUF__ROLE__ROLE_BACKEND;
    s.actions = c->rec;
    s.n_actions = c->nrec;
    size_t len;
    uint8_t *b = vuf_session_pack(&s, &len);
    if (b && add_entry(c, b, len))
        save_corpus(c, &s, b, len);
    free(b);
    for (size_t i = 0; i < c->nrec; i++)
        protobuf_c_message_free_unpacked(&c->rec[i]->base, NULL);
    free(c->rec);
    c->rec = NULL;
    c->nrec = 0;
}

#define SESSION_MAX_BYTES 65536

static volatile sig_atomic_t stop;

static void on_stop(int sig)
{
    (void)sig;
    stop = 1;
}

/* The campaign of one job; its figures in *c. */
static void campaign_loop(campaign *c, double seconds, uint64_t runs, unsigned seed, int job)
{
    double t0 = vuf_now_s(), last = t0;
    uint8_t *buf = malloc(SESSION_MAX_BYTES);
    if (!buf)
        return;
    reference_seed(c);
    if (c->target_error) {
        free(buf);
        return;
    }
    if (!c->ncorpus) {
        Vuf__Session e = VUF__SESSION__INIT;
        e.has_role = true;
        e.role = VUF__ROLE__ROLE_BACKEND;
        size_t len;
        uint8_t *b = vuf_session_pack(&e, &len);
        if (b)
            add_entry(c, b, len);
        free(b);
    }
    for (uint64_t k = 0; !stop && c->ncorpus && (!runs || c->sessions + c->bad < runs) &&
                         vuf_now_s() - t0 < seconds;
         k++) {
        entry *e = &c->corpus[vuf_mutator_below(c->mu, c->ncorpus)];
        size_t len = e->len <= SESSION_MAX_BYTES ? e->len : SESSION_MAX_BYTES;
        memcpy(buf, e->data, len);
        len = vuf_mutator_mutate_backend(c->mu, c->spec, buf, len, SESSION_MAX_BYTES,
                                         seed * 2654435761u + (unsigned)k);
        Vuf__Session *s = vuf_session_unpack(buf, len);
        if (!s)
            continue;
        vuf_finding fd = run_one(c, s, buf, len);
        vuf_session_free(s);
        if (fd.kind == VUF_FINDING_TARGET_ERROR) {
            fprintf(stderr, "vufuzz fuzz-frontend: %s\n", fd.text);
            c->target_error = true;
            break;
        }
        double now = vuf_now_s();
        if (!c->quiet && now - last >= 10) {
            last = now;
            fprintf(stderr,
                    "%s[%.0f s] %llu sessions (%.2f/s), corpus %zu, features %zu, findings %u\n",
                    job >= 0 ? "[job] " : "", now - t0, (unsigned long long)c->sessions,
                    c->sessions / (now - t0), c->ncorpus, c->feats.n, c->nfindings);
        }
    }
    free(buf);
}

/* ---------- the report ---------- */

typedef struct {
    uint64_t sessions, bad, minimize_runs;
    uint64_t seen[VUF_CHAN_COUNT][2], msgs[VUF_CHAN_COUNT][2];
    unsigned findings;
    size_t corpus, features;
} figures;

static void figures_of(const campaign *c, figures *g)
{
    memset(g, 0, sizeof *g);
    g->sessions = c->sessions;
    g->bad = c->bad;
    g->minimize_runs = c->minimize_runs;
    memcpy(g->seen, c->seen, sizeof g->seen);
    memcpy(g->msgs, c->msgs, sizeof g->msgs);
    g->findings = c->nfindings;
    g->corpus = c->ncorpus;
    g->features = c->feats.n;
}

static void add_figures(figures *a, const figures *b)
{
    a->sessions += b->sessions;
    a->bad += b->bad;
    a->minimize_runs += b->minimize_runs;
    for (int ch = 0; ch < VUF_CHAN_COUNT; ch++)
        for (int w = 0; w < 2; w++) {
            a->seen[ch][w] |= b->seen[ch][w];
            a->msgs[ch][w] += b->msgs[ch][w];
        }
    a->findings += b->findings;
    a->corpus += b->corpus;
    a->features += b->features;
}

static void names(const vuf_spec *spec, vuf_channel ch, uint64_t mask, FILE *o, vuf_json *j,
                  const char *key)
{
    if (j)
        vuf_json_array(j, key);
    for (; mask; mask &= mask - 1) {
        unsigned id = (unsigned)__builtin_ctzll(mask);
        const vuf_msg_def *d = vuf_spec_msg(spec, ch, id);
        char num[16];
        snprintf(num, sizeof num, "#%u", id);
        if (j)
            vuf_json_str(j, NULL, d ? d->name : num);
        else
            fprintf(o, " %s", d ? d->name : num);
    }
    if (j)
        vuf_json_end(j);
}

static int popcount(uint64_t m)
{
    return __builtin_popcountll(m);
}

static void report(const vuf_spec *spec, const figures *g, double seconds, const char *cmd,
                   const char *json_path, const char *findings_dir, uint64_t chains)
{
    double rate = seconds > 0 ? g->sessions / seconds : 0;
    printf("\n%llu sessions in %.1f s: %.2f sessions/s (%llu bad inputs, %llu runs to "
           "minimize)\n",
           (unsigned long long)g->sessions, seconds, rate, (unsigned long long)g->bad,
           (unsigned long long)g->minimize_runs);
    static const char *const who[2] = {"by the front-end", "to the front-end"};
    for (int ch = 0; ch < VUF_CHAN_COUNT; ch++)
        for (int w = 0; w < 2; w++) {
            printf("%s channel, %s: %d message kinds, %llu messages:",
                   ch == VUF_CHAN_BACKEND ? "back-end" : "main", who[w], popcount(g->seen[ch][w]),
                   (unsigned long long)g->msgs[ch][w]);
            names(spec, (vuf_channel)ch, g->seen[ch][w], stdout, NULL, NULL);
            printf("\n");
        }
    if (chains)
        printf("block requests the device completed (firmware I/O): %llu\n",
               (unsigned long long)chains);
    printf("corpus %zu, features %zu; findings: %u%s%s\n", g->corpus, g->features, g->findings,
           g->findings ? " in " : "", g->findings ? findings_dir : "");
    if (!json_path)
        return;
    FILE *f = fopen(json_path, "w");
    if (!f) {
        fprintf(stderr, "vufuzz fuzz-frontend: %s: %s\n", json_path, strerror(errno));
        return;
    }
    vuf_json j;
    vuf_json_init(&j, f);
    vuf_json_object(&j, NULL);
    vuf_cli_json_meta(&j);
    vuf_json_str(&j, "frontend", cmd);
    vuf_json_u64(&j, "sessions", g->sessions);
    vuf_json_double(&j, "seconds", seconds);
    vuf_json_double(&j, "sessions_per_second", rate);
    vuf_json_u64(&j, "bad_inputs", g->bad);
    vuf_json_object(&j, "reached");
    static const char *const keys[VUF_CHAN_COUNT][2] = {
        {"main_from_frontend", "main_to_frontend"},
        {"backend_from_frontend", "backend_to_frontend"}};
    for (int ch = 0; ch < VUF_CHAN_COUNT; ch++)
        for (int w = 0; w < 2; w++)
            names(spec, (vuf_channel)ch, g->seen[ch][w], NULL, &j, keys[ch][w]);
    vuf_json_end(&j);
    vuf_json_u64(&j, "block_requests", chains);
    vuf_json_u64(&j, "corpus", g->corpus);
    vuf_json_u64(&j, "features", g->features);
    vuf_json_u64(&j, "findings", g->findings);
    vuf_json_str(&j, "findings_dir", findings_dir);
    vuf_json_end(&j);
    vuf_json_finish(&j);
    fclose(f);
}

/* ---------- the command ---------- */

enum {
    O_EXEC,
    O_SECONDS,
    O_RUNS,
    O_JOBS,
    O_SEED,
    O_CORPUS,
    O_FINDINGS,
    O_JSON,
    O_NO_MINIMIZE,
    O_MINIMIZE,
    O_OUT,
    O_QUIET,
    O_SPEC,
    O_FRONTEND /* VUF_CLI_FRONTEND_N of them */
};

static int minimize_file(const vuf_spec *spec, vuf_frontend *f, const char *in, const char *out)
{
    vuf_diag d;
    Vuf__Session *s = vuf_session_load_file(spec, in, NULL, &d);
    if (!s) {
        vuf_cli_print_diag(stderr, &d, true);
        return 2;
    }
    vuf_finding fd = vuf_frontend_run(f, s, NULL);
    if (fd.kind == VUF_FINDING_BAD_INPUT || fd.kind == VUF_FINDING_TARGET_ERROR) {
        fprintf(stderr, "%s: error: %s\n", in, fd.text);
        vuf_session_free(s);
        return 2;
    }
    if (!fd.kind) {
        printf("%s: clean: nothing to minimize\n", in);
        vuf_session_free(s);
        return 0;
    }
    unsigned runs = 0;
    Vuf__Session *min = vuf_frontend_minimize(f, s, &fd, &runs);
    char path[4096];
    snprintf(path, sizeof path, "%s", out ? out : in);
    if (!out)
        snprintf(path, sizeof path, "%s.min.txt", in);
    int rc = 1;
    if (!min) {
        printf("%s: FINDING %s %s did not come back in two runs: not minimized\n", in,
               vuf_finding_kind_name(fd.kind), fd.rule);
    } else if (!save_as(spec, min, path)) {
        fprintf(stderr, "vufuzz fuzz-frontend: cannot write %s\n", path);
        rc = 2;
    } else {
        printf("%s: FINDING %s %s: %zu actions -> %zu in %u runs: %s\n", in,
               vuf_finding_kind_name(fd.kind), fd.rule, s->n_actions, min->n_actions, runs, path);
    }
    vuf_session_free(min);
    vuf_session_free(s);
    return rc;
}

int vuf_cmd_fuzz_frontend(int argc, char **argv)
{
    static const vuf_cli_opt opts[] = {[O_EXEC] = {"--exec", "CMD"},
                                       [O_SECONDS] = {"--seconds", "N"},
                                       [O_RUNS] = {"--runs", "N"},
                                       [O_JOBS] = {"--jobs", "N"},
                                       [O_SEED] = {"--seed", "N"},
                                       [O_CORPUS] = {"--corpus", "DIR"},
                                       [O_FINDINGS] = {"--findings", "DIR"},
                                       [O_JSON] = {"--json", "FILE"},
                                       [O_NO_MINIMIZE] = {"--no-minimize", NULL},
                                       [O_MINIMIZE] = {"--minimize", "FILE"},
                                       [O_OUT] = {"-o", "OUT"},
                                       [O_QUIET] = {"--quiet", NULL},
                                       [O_SPEC] = {"--spec", "FILE"},
                                       VUF_CLI_FRONTEND_OPTS(O_FRONTEND),
                                       {NULL, NULL}};
    const char *exec = NULL, *corpus_dir = NULL, *findings_dir = "findings-frontend";
    const char *json_path = NULL, *minimize_path = NULL, *out = NULL, *spec_path = NULL, *val;
    uint64_t seconds = 60, runs = 0, jobs = 1, seed = (uint64_t)time(NULL);
    bool minimize = true, quiet = false;
    vuf_frontend_opts fo = {0};
    char **pos = calloc((size_t)argc, sizeof *pos);
    size_t npos = 0;
    vuf_cli_parser p;
    vuf_cli_init(&p, "fuzz-frontend", usage_line, opts, argc, argv);
    for (int k; (k = vuf_cli_next(&p, &val)) != VUF_CLI_END;) {
        uint64_t *num = NULL;
        uint64_t lo = 0, hi = 0;
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
            continue;
        case O_EXEC:
            exec = val;
            continue;
        case O_SECONDS:
            num = &seconds, lo = 1, hi = 31u * 86400;
            break;
        case O_RUNS:
            num = &runs, lo = 1, hi = UINT32_MAX;
            break;
        case O_JOBS:
            num = &jobs, lo = 1, hi = 64;
            break;
        case O_SEED:
            num = &seed, lo = 0, hi = UINT32_MAX;
            break;
        case O_CORPUS:
            corpus_dir = val;
            continue;
        case O_FINDINGS:
            findings_dir = val;
            continue;
        case O_JSON:
            json_path = val;
            continue;
        case O_NO_MINIMIZE:
            minimize = false;
            continue;
        case O_MINIMIZE:
            minimize_path = val;
            continue;
        case O_OUT:
            out = val;
            continue;
        case O_QUIET:
            quiet = true;
            continue;
        case O_SPEC:
            spec_path = val;
            continue;
        default:
            if (vuf_cli_frontend_opt(&fo, k - O_FRONTEND, val, "fuzz-frontend", usage_line)) {
                free(pos);
                return 2;
            }
            continue;
        }
        if (!vuf_parse_u64(val, num) || *num < lo || *num > hi) {
            free(pos);
            return vuf_cli_usage_error("fuzz-frontend", usage_line, "bad %s '%s' (%llu..%llu)",
                                       opts[k].name, val, (unsigned long long)lo,
                                       (unsigned long long)hi);
        }
    }
    if (out && !minimize_path) {
        free(pos);
        return vuf_cli_usage_error("fuzz-frontend", usage_line, "-o goes with --minimize");
    }
    if (minimize_path && npos) {
        free(pos);
        return vuf_cli_usage_error("fuzz-frontend", usage_line,
                                   "--minimize takes one session: no SEED files with it");
    }
    if (vuf_cli_frontend_check(&fo, exec, "fuzz-frontend", usage_line)) {
        free(pos);
        return 2;
    }
    const vuf_spec *spec = vuf_cli_open_spec(spec_path);
    if (!spec) {
        free(pos);
        return 2;
    }
    signal(SIGPIPE, SIG_IGN);
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_stop;
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
    if (corpus_dir && mkdir(corpus_dir, 0755) && errno != EEXIST) {
        fprintf(stderr, "vufuzz fuzz-frontend: %s: %s\n", corpus_dir, strerror(errno));
        free(pos);
        vuf_spec_release(spec);
        return 2;
    }
    char err[1024];
    int rc = 0;
    if (minimize_path) {
        fo.pool = -1;
        vuf_frontend *f = vuf_frontend_new(spec, &fo, err, sizeof err);
        if (!f) {
            fprintf(stderr, "vufuzz fuzz-frontend: %s\n", err);
            rc = 2;
        } else {
            rc = minimize_file(spec, f, minimize_path, out);
        }
        vuf_frontend_free(f);
        free(pos);
        vuf_spec_release(spec);
        return rc;
    }
    /* jobs: job 0 here, the others in child processes that report their
     * figures through a pipe */
    int pipes[64];
    pid_t kids[64];
    size_t nkids = 0;
    int job = -1;
    fflush(NULL);
    for (uint64_t i = 1; i < jobs; i++) {
        int pf[2];
        if (pipe(pf))
            break;
        pid_t pid = fork();
        if (pid == 0) {
            close(pf[0]);
            for (size_t k = 0; k < nkids; k++)
                close(pipes[k]);
            pipes[0] = pf[1];
            job = (int)i;
            break;
        }
        close(pf[1]);
        if (pid < 0) {
            close(pf[0]);
            break;
        }
        pipes[nkids] = pf[0];
        kids[nkids++] = pid;
    }
    campaign c = {.spec = spec,
                  .corpus_dir = corpus_dir,
                  .findings_dir = findings_dir,
                  .minimize = minimize,
                  .quiet = quiet};
    fo.on_event = on_event;
    fo.on_violation = on_violation;
    fo.ctx = &c;
    c.feats.v = calloc(FEAT_SIZE, sizeof *c.feats.v);
    c.mu = vuf_mutator_new(spec, NULL);
    c.f = c.feats.v && c.mu ? vuf_frontend_new(spec, &fo, err, sizeof err) : NULL;
    double t0 = vuf_now_s();
    if (!c.f) {
        fprintf(stderr, "vufuzz fuzz-frontend: %s\n", c.feats.v && c.mu ? err : "out of memory");
        rc = 2;
    } else if ((rc = load_seeds(&c, pos, npos)) == 0 &&
               (!corpus_dir || (rc = load_seeds(&c, (char *[]){(char *)corpus_dir}, 1)) == 0)) {
        if (!quiet && job < 0)
            fprintf(stderr, "vufuzz fuzz-frontend: %s (%llu job%s, %llu s)\n",
                    vuf_frontend_command(c.f), (unsigned long long)jobs, vuf_plural(jobs),
                    (unsigned long long)seconds);
        campaign_loop(&c, (double)seconds, runs, (unsigned)seed + (unsigned)(job < 0 ? 0 : job),
                      job);
        if (c.target_error && !c.sessions)
            rc = 2; /* the front-end never ran a session: the command is wrong */
    }
    figures g;
    figures_of(&c, &g);
    uint64_t chains = c.f ? vuf_frontend_chains(c.f) : 0;
    vuf_frontend_free(c.f);
    vuf_mutator_free(c.mu);
    free(c.feats.v);
    for (size_t i = 0; i < c.ncorpus; i++)
        free(c.corpus[i].data);
    free(c.corpus);
    free(pos);
    if (job >= 0) { /* a child: its figures to the parent */
        g.findings = c.nfindings;
        ssize_t w = write(pipes[0], &g, sizeof g);
        _exit(w == (ssize_t)sizeof g ? (rc ? 2 : 0) : 2);
    }
    for (size_t i = 0; i < nkids; i++) {
        figures kg;
        if (read(pipes[i], &kg, sizeof kg) == (ssize_t)sizeof kg)
            add_figures(&g, &kg);
        close(pipes[i]);
        int st = 0;
        while (waitpid(kids[i], &st, 0) < 0 && errno == EINTR) {
        }
        if (WIFEXITED(st) && WEXITSTATUS(st) == 2)
            rc = 2;
    }
    if (rc != 2)
        report(spec, &g, vuf_now_s() - t0, fo.exec_cmd, json_path, findings_dir, chains);
    vuf_spec_release(spec);
    if (rc == 2)
        return 2;
    return g.findings ? 1 : 0;
}
