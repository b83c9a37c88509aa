/* SPDX-License-Identifier: Apache-2.0 */
/* The session runner: determinism (the same input gives the same run, alone
 * or after any other session), every oracle firing on what it names, and
 * the corpus seeds (the malformed SET_BACKEND_REQ_FD cases first) running
 * clean with the device refusing what it must. */
#include "vuf_runner.h"
#include "vuf_session.h"
#include "vuf_test.h"
#include "vuf_trace.h"

#include <dirent.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define MAX_SEEDS 128

typedef struct {
    const vuf_spec *spec;
    char *buf;
    size_t len, cap;
} recorder;

/* Every event, as trace text: the run as the device saw it. */
static void record(void *ctx, const vuf_event *ev)
{
    recorder *r = ctx;
    char line[32768];
    int n = vuf_trace_format_event(r->spec, ev, line, sizeof line);
    if (n < 0 || (size_t)n >= sizeof line)
        return;
    if (r->len + (size_t)n + 2 > r->cap) {
        size_t nc = (r->cap ? r->cap * 2 : 4096) + (size_t)n;
        char *nb = realloc(r->buf, nc);
        if (!nb)
            return;
        r->buf = nb;
        r->cap = nc;
    }
    memcpy(r->buf + r->len, line, (size_t)n);
    r->len += (size_t)n;
    r->buf[r->len++] = '\n';
    r->buf[r->len] = 0;
}

static char *run_recorded(vuf_runner *run, recorder *rec, const Vuf__Session *s, vuf_finding *f)
{
    rec->len = 0;
    if (rec->buf)
        rec->buf[0] = 0;
    *f = vuf_runner_run(run, s);
    return strdup(rec->buf ? rec->buf : "");
}

/* A "device" that leaks: one fd opened on the first action, kept. */
static void leak_on_first(void *ctx, size_t i, const Vuf__Action *a)
{
    (void)a;
    int *fd = ctx;
    if (i == 0 && *fd < 0)
        *fd = open("/dev/null", O_RDONLY | O_CLOEXEC);
}

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

int main(void)
{
    const vuf_spec *spec = vuf_spec_default();
    char dir[4096];
    snprintf(dir, sizeof dir, "%s/corpus", VUF_SOURCE_DIR);
    DIR *d = opendir(dir);
    CHECK(d != NULL, "corpus/ exists");
    if (!d)
        TEST_END();
    char *names[MAX_SEEDS];
    size_t n = 0;
    for (struct dirent *e; (e = readdir(d)) && n < MAX_SEEDS;) {
        size_t l = strlen(e->d_name);
        if (l > 4 && !strcmp(e->d_name + l - 4, ".txt"))
            names[n++] = strdup(e->d_name);
    }
    closedir(d);
    qsort(names, n, sizeof *names, cmp_str);
    CHECK(n >= 30, "%zu seeds", n);
    Vuf__Session *seeds[MAX_SEEDS];
    for (size_t i = 0; i < n; i++) {
        char path[8192];
        snprintf(path, sizeof path, "%s/%s", dir, names[i]);
        vuf_diag dg;
        seeds[i] = vuf_session_load_file(spec, path, NULL, &dg);
        CHECK(seeds[i] != NULL, "%s loads: %s", names[i], dg.text);
    }

    /* 1. determinism: each seed alone, in a fresh runner ... */
    recorder rec = {.spec = spec};
    vuf_runner_opts o = {.on_event = record, .ctx = &rec};
    char *alone[MAX_SEEDS] = {0};
    for (size_t i = 0; i < n; i++) {
        if (!seeds[i])
            continue;
        vuf_runner *r = vuf_runner_new(spec, &o);
        vuf_finding f;
        alone[i] = run_recorded(r, &rec, seeds[i], &f);
        CHECK(f.kind == VUF_FINDING_NONE, "%s runs clean: %s %s", names[i], f.rule, f.text);
        CHECK(strlen(alone[i]) > 0, "%s has a conversation", names[i]);
        vuf_runner_free(r);
    }
    /* ... gives the same run after all the others, forwards, backwards and
     * twice in a row, in one runner (pooled memory, fds, disk) */
    vuf_runner *shared = vuf_runner_new(spec, &o);
    size_t differ = 0;
    for (int pass = 0; pass < 3; pass++)
        for (size_t k = 0; k < n; k++) {
            size_t i = pass == 1 ? n - 1 - k : k;
            if (!seeds[i])
                continue;
            vuf_finding f;
            char *again = run_recorded(shared, &rec, seeds[i], &f);
            if (strcmp(again, alone[i])) {
                differ++;
                printf("FAIL %s differs on pass %d\n", names[i], pass);
            }
            free(again);
        }
    CHECK(differ == 0, "%zu runs differ from the same input alone", differ);
    /* a session whose last action queues more messages than the device's
     * bounded steps take: the rest (a polled ring start, processing a read
     * request) runs as the connection closes; the next session must still
     * start from clean guest memory */
    size_t hsi = 0;
    for (size_t i = 0; i < n; i++)
        if (!strcmp(names[i], "handshake.txt"))
            hsi = i;
    char path[8192];
    snprintf(path, sizeof path, "%s/handshake.txt", dir);
    FILE *hf = fopen(path, "r");
    char *late = calloc(1, 65536 + 8192);
    size_t ll = hf && late ? fread(late, 1, 8192, hf) : 0;
    if (hf)
        fclose(hf);
    if (late && ll) {
        ll += (size_t)sprintf(late + ll, "blk type=in sector=0 len=512\nraw main data=");
        for (int k = 0; k < 250; k++) /* GET_FEATURES */
            ll += (size_t)sprintf(late + ll, "010000000100000000000000");
        /* SET_VRING_KICK u64=0x100: no fd, the ring is polled: it starts */
        ll += (size_t)sprintf(late + ll, "0c00000001000000080000000001000000000000\n");
        vuf_diag dg;
        Vuf__Session *ls = vuf_session_parse_text(spec, late, ll, "late", &dg);
        CHECK(ls != NULL, "late session parses: %s", dg.text);
        if (ls && seeds[hsi]) {
            vuf_finding f;
            free(run_recorded(shared, &rec, ls, &f));
            char *after = run_recorded(shared, &rec, seeds[hsi], &f);
            CHECK(!strcmp(after, alone[hsi]), "handshake after a late ring pass: same run");
            free(after);
        }
        vuf_session_free(ls);
    }
    free(late);

    /* 2. the malformed SET_BACKEND_REQ_FD seeds: clean, and refused */
    for (size_t i = 0; i < n; i++) {
        if (!seeds[i] || strncmp(names[i], "backend-req-fd-", 15))
            continue;
        vuf_runner *r = vuf_runner_new(spec, NULL);
        vuf_finding f = vuf_runner_run(r, seeds[i]);
        const vuf_msg_def *m = vuf_spec_msg_by_name(spec, VUF_CHAN_FRONTEND, "SET_BACKEND_REQ_FD");
        uint64_t acc = vuf_runner_accepted(r, VUF_CHAN_FRONTEND, m->id);
        /* before SET_PROTOCOL_FEATURES, or without BACKEND_REQ enabled, it is
         * accepted: the rst's gate is BACKEND_REQ "present in
         * VHOST_USER_GET_PROTOCOL_FEATURES" (offered), and the bit-30 gate a
         * SHOULD the device tolerates (docs/reaction-policy.md) */
        uint64_t want = !strcmp(names[i], "backend-req-fd-repeated.txt")                   ? 2
                        : !strcmp(names[i], "backend-req-fd-need-reply-no-reply-ack.txt")  ? 1
                        : !strcmp(names[i], "backend-req-fd-before-protocol-features.txt") ? 1
                        : !strcmp(names[i], "backend-req-fd-not-negotiated.txt")           ? 1
                                                                                           : 0;
        CHECK(f.kind == VUF_FINDING_NONE, "%s clean", names[i]);
        CHECK(acc == want, "%s: the device accepted %llu SET_BACKEND_REQ_FD, want %llu", names[i],
              (unsigned long long)acc, (unsigned long long)want);
        vuf_runner_free(r);
    }

    /* 3. the oracles fire */
    size_t hs = 0;
    for (size_t i = 0; i < n; i++)
        if (!strcmp(names[i], "handshake.txt"))
            hs = i;
    CHECK(seeds[hs] && !strcmp(names[hs], "handshake.txt"), "handshake seed");
    if (seeds[hs]) {
        /* guest memory: a stray byte outside the buffers and rings ... */
        vuf_runner_opts g = {.inject_stray_write = 0xf000};
        vuf_runner *r = vuf_runner_new(spec, &g);
        vuf_finding f = vuf_runner_run(r, seeds[hs]);
        CHECK(f.kind == VUF_FINDING_GUEST_WRITE && strstr(f.text, "0xf000"),
              "stray write found: %s", f.text);
        vuf_runner_free(r);
        /* ... but not inside the used ring (gpa 0x800 + 4: an element) */
        g.inject_stray_write = 0x804;
        r = vuf_runner_new(spec, &g);
        f = vuf_runner_run(r, seeds[hs]);
        CHECK(f.kind == VUF_FINDING_NONE, "a used-ring write is allowed: %s", f.text);
        vuf_runner_stats st;
        vuf_runner_stats_get(r, &st);
        CHECK(st.guest_checks > 0 && st.chains == 4, "%llu checks, %llu requests completed",
              (unsigned long long)st.guest_checks, (unsigned long long)st.chains);
        vuf_runner_free(r);
    }
    /* fd leak: an fd opened during the session and never closed */
    {
        int leaked = -1;
        vuf_runner_opts lo = {.on_action = leak_on_first, .ctx = &leaked};
        vuf_runner *r = vuf_runner_new(spec, &lo);
        vuf_finding f = vuf_runner_run(r, seeds[hs]);
        CHECK(leaked >= 0 && f.kind == VUF_FINDING_FD_LEAK, "fd leak found: %s", f.text);
        if (leaked >= 0)
            close(leaked);
        f = vuf_runner_run(r, seeds[hs]); /* the callback opens nothing now */
        CHECK(f.kind == VUF_FINDING_NONE, "clean once nothing leaks: %s", f.text);
        vuf_runner_free(r);
    }
    /* MUST: the same device judged against a table where GET_FEATURES has
     * no reply: its reply is then unsolicited */
    size_t tl;
    const char *text = vuf_spec_default_text(&tl);
    char *mod = malloc(tl + 1);
    memcpy(mod, text, tl);
    mod[tl] = 0;
    char *p = strstr(mod, "message frontend 1 GET_FEATURES\n  initiator frontend\n  request none\n"
                          "  reply always\n  reply-payload u64\n");
    CHECK(p != NULL, "GET_FEATURES block found");
    if (p) {
        char *q = strstr(p, "  reply always\n  reply-payload u64\n");
        memcpy(q, "  reply none   \n                  \n", 35);
        vuf_diag dg;
        vuf_spec *judge = vuf_spec_parse(mod, tl, "judge.spec", &dg);
        CHECK(judge != NULL, "modified table parses: %s", dg.text);
        vuf_runner_opts jo = {.judge_spec = judge};
        vuf_runner *r = vuf_runner_new(spec, &jo);
        vuf_finding f = vuf_runner_run(r, seeds[hs]);
        CHECK(f.kind == VUF_FINDING_MUST && !strcmp(f.rule, "REPLY-ACK-UNREQUESTED"),
              "judged by the modified table: %s %s", f.rule, f.text);
        vuf_runner_free(r);
        vuf_spec_free(judge);
    }
    free(mod);

    for (size_t i = 0; i < n; i++) {
        vuf_session_free(seeds[i]);
        free(alone[i]);
        free(names[i]);
    }
    vuf_runner_free(shared);
    free(rec.buf);
    TEST_END();
}
