/* SPDX-License-Identifier: Apache-2.0 */
/* A black-box fuzzing campaign (vuf_campaign.h). */
#include "vuf_campaign.h"
#include "vuf_codec.h"
#include "vuf_mutator.h"
#include "vuf_rules.h"
#include "vuf_session.h"

#include <stdlib.h>
#include <string.h>

/* ---- a set of 64-bit hashes (open addressing, 0 is the empty slot) ---- */

typedef struct {
    uint64_t *slot;
    size_t cap, n; /* cap: a power of 2 */
} hset;

static bool hset_add(hset *s, uint64_t h)
{
    if (!h)
        h = 1;
    if ((s->n + 1) * 2 > s->cap) {
        size_t nc = s->cap ? s->cap * 2 : 1024;
        uint64_t *ns = calloc(nc, sizeof *ns);
        if (!ns)
            return false;
        for (size_t i = 0; i < s->cap; i++)
            if (s->slot[i])
                for (size_t j = s->slot[i] & (nc - 1);; j = (j + 1) & (nc - 1))
                    if (!ns[j]) {
                        ns[j] = s->slot[i];
                        break;
                    }
        free(s->slot);
        s->slot = ns;
        s->cap = nc;
    }
    for (size_t j = h & (s->cap - 1);; j = (j + 1) & (s->cap - 1)) {
        if (s->slot[j] == h)
            return false;
        if (!s->slot[j]) {
            s->slot[j] = h;
            s->n++;
            return true;
        }
    }
}

static uint64_t mix(uint64_t h, uint64_t v)
{
    h ^= v + 0x9e3779b97f4a7c15ull + (h << 6) + (h >> 2);
    h ^= h >> 31;
    h *= 0xbf58476d1ce4e5b9ull;
    return h ^ (h >> 29);
}

/* ---- the campaign ---- */

typedef struct {
    uint8_t *data;
    size_t len;
    size_t found; /* tuples and edges it brought */
    uint64_t picks;
} entry;

/* Tuples of one run, judged against the sets only after it: a run that was
 * cut by a finding still counts what it showed. */
#define MAX_RUN_TUPLES 4096

struct vuf_campaign {
    vuf_campaign_opts o;
    vuf_harness *h;
    vuf_mutator *mut;
    uint64_t rng;
    entry *corpus;
    size_t n, cap;
    hset states, transitions;
    uint8_t *virgin; /* per edge: the hit-count buckets seen */
    size_t edges;
    uint64_t execs, bad_inputs, last_new;
    uint8_t *buf; /* the input being run */
    size_t buf_len;
    /* what the table calls the negotiation messages (their ids) */
    uint32_t id_set_features, id_set_proto;
    /* the run's protocol view */
    uint64_t virtio_acked, proto_acked;
    uint32_t last_request;
    uint64_t prev;
    uint64_t run_tuples[MAX_RUN_TUPLES];
    size_t nrun;
    bool run_pair[MAX_RUN_TUPLES]; /* a transition (else a state) */
};

static uint64_t rnd(vuf_campaign *c)
{
    /* xorshift64* */
    c->rng ^= c->rng >> 12;
    c->rng ^= c->rng << 25;
    c->rng ^= c->rng >> 27;
    return c->rng * 0x2545f4914f6cdd1dull;
}

static uint32_t msg_id(const vuf_spec *s, const char *name)
{
    const vuf_msg_def *d = vuf_spec_msg_by_name(s, VUF_CHAN_FRONTEND, name);
    return d ? d->id : 0;
}

vuf_campaign *vuf_campaign_new(const vuf_campaign_opts *o)
{
    vuf_campaign *c = calloc(1, sizeof *c);
    if (!c)
        return NULL;
    c->o = *o;
    if (!c->o.max_len)
        c->o.max_len = 16384;
    c->rng = o->seed ? o->seed : 1;
    c->mut = vuf_mutator_new(o->spec, NULL);
    c->buf = malloc(c->o.max_len);
    c->virgin = o->edges ? calloc(1, o->edges_len) : NULL;
    if (!c->mut || !c->buf || (o->edges && !c->virgin)) {
        vuf_campaign_free(c);
        return NULL;
    }
    c->id_set_features = msg_id(o->spec, "SET_FEATURES");
    c->id_set_proto = msg_id(o->spec, "SET_PROTOCOL_FEATURES");
    return c;
}

void vuf_campaign_free(vuf_campaign *c)
{
    if (!c)
        return;
    for (size_t i = 0; i < c->n; i++)
        free(c->corpus[i].data);
    free(c->corpus);
    free(c->states.slot);
    free(c->transitions.slot);
    free(c->virgin);
    free(c->buf);
    vuf_mutator_free(c->mut);
    free(c);
}

void vuf_campaign_attach(vuf_campaign *c, vuf_harness *h)
{
    c->h = h;
}

/* ---- protocol state, from the conversation ---- */

static void tuple(vuf_campaign *c, uint64_t t)
{
    if (c->nrun + 2 > MAX_RUN_TUPLES)
        return;
    c->run_pair[c->nrun] = false;
    c->run_tuples[c->nrun++] = t;
    if (c->prev) {
        c->run_pair[c->nrun] = true;
        c->run_tuples[c->nrun++] = mix(c->prev, t);
    }
    c->prev = t;
}

/* The features acked so far, folded into the tuples: the same answer in
 * another negotiated state is another state. */
static uint64_t negotiated(const vuf_campaign *c)
{
    return mix(c->proto_acked, c->virtio_acked >> 30);
}

static unsigned size_class(size_t len)
{
    return len == 0 ? 0 : len < 8 ? 1 : len == 8 ? 2 : len <= 64 ? 3 : 4;
}

void vuf_campaign_on_event(void *ctx, const vuf_event *ev)
{
    vuf_campaign *c = ctx;
    if (ev->kind == VUF_EV_CLOSE) {
        if (ev->sender == VUF_SIDE_BACKEND)
            tuple(c, mix(mix(3, ev->channel), mix(c->last_request, negotiated(c))));
        return;
    }
    if (ev->kind == VUF_EV_NOTE) {
        if (ev->sender == VUF_SIDE_BACKEND)
            tuple(c, mix(4, ev->note));
        return;
    }
    if (ev->kind != VUF_EV_MSG || ev->len < VUF_HDR_SIZE)
        return;
    vuf_hdr hd;
    vuf_hdr_decode(ev->data, &hd);
    const uint8_t *pl = ev->data + VUF_HDR_SIZE;
    size_t plen = ev->len - VUF_HDR_SIZE;
    uint64_t u64 = 0;
    if (plen >= 8)
        memcpy(&u64, pl, 8);
    if (ev->sender == VUF_SIDE_FRONTEND) {
        if (ev->channel == VUF_CHAN_FRONTEND && !(hd.flags & VUF_F_REPLY)) {
            c->last_request = hd.request;
            if (hd.request == c->id_set_features && plen >= 8)
                c->virtio_acked = u64;
            else if (hd.request == c->id_set_proto && plen >= 8)
                c->proto_acked = u64;
        }
        return;
    }
    /* the back-end's: an answer on the main channel, or a request of its
     * own on the back-end channel */
    unsigned status = plen == 8 ? (u64 == 0 ? 0 : u64 == 1 ? 1 : 2) : 3;
    if (ev->channel == VUF_CHAN_FRONTEND)
        tuple(c, mix(mix(1, hd.request), mix(mix(c->last_request, size_class(plen)),
                                             mix(status * 16 + (ev->nfds < 15 ? ev->nfds : 15),
                                                 mix(hd.flags, negotiated(c))))));
    else
        tuple(c, mix(mix(2, hd.request), mix(hd.flags, size_class(plen))));
}

void vuf_campaign_on_violation(void *ctx, const vuf_violation *v)
{
    vuf_campaign *c = ctx;
    if (v->side != VUF_SIDE_BACKEND)
        return;
    uint64_t name = 0;
    for (const char *p = v->msg; *p; p++)
        name = name * 131 + (unsigned char)*p;
    tuple(c, mix(mix(5, v->rule->rid), mix(v->level, name)));
}

/* ---- edges (AFL's hit-count buckets) ---- */

static uint8_t bucket(uint8_t n)
{
    return n == 0    ? 0
           : n == 1  ? 1
           : n == 2  ? 2
           : n == 3  ? 4
           : n < 8   ? 8
           : n < 16  ? 16
           : n < 32  ? 32
           : n < 128 ? 64
                     : 128;
}

static size_t new_edges(vuf_campaign *c)
{
    if (!c->o.edges)
        return 0;
    size_t found = 0;
    const uint64_t *w = (const uint64_t *)(const void *)c->o.edges;
    size_t nw = c->o.edges_len / 8;
    for (size_t i = 0; i < nw; i++) {
        if (!w[i])
            continue; /* most of the map: untouched */
        for (size_t k = i * 8; k < i * 8 + 8; k++) {
            uint8_t b = bucket(c->o.edges[k]);
            if (b & ~c->virgin[k]) {
                if (!c->virgin[k])
                    c->edges++;
                c->virgin[k] |= b;
                found++;
            }
        }
    }
    return found;
}

/* ---- runs ---- */

static void keep(vuf_campaign *c, const uint8_t *data, size_t len, size_t found)
{
    if (c->n == c->cap) {
        size_t nc = c->cap ? c->cap * 2 : 64;
        entry *ne = realloc(c->corpus, nc * sizeof *ne);
        if (!ne)
            return;
        c->corpus = ne;
        c->cap = nc;
    }
    uint8_t *d = malloc(len ? len : 1);
    if (!d)
        return;
    memcpy(d, data, len);
    c->corpus[c->n++] = (entry){.data = d, .len = len, .found = found};
}

/* Run the bytes in c->buf; the feedback in *r. */
static void run(vuf_campaign *c, vuf_campaign_run *r)
{
    memset(r, 0, sizeof *r);
    r->input = c->buf;
    r->len = c->buf_len;
    Vuf__Session *s = vuf_session_unpack(c->buf, c->buf_len);
    c->execs++;
    if (!s) {
        c->bad_inputs++;
        r->finding.kind = VUF_FINDING_BAD_INPUT;
        return;
    }
    c->nrun = 0;
    c->prev = 0;
    c->virtio_acked = c->proto_acked = 0;
    c->last_request = 0;
    if (c->o.edges)
        memset(c->o.edges, 0, c->o.edges_len);
    r->finding = vuf_harness_run(c->h, s);
    vuf_session_free(s);
    if (r->finding.kind == VUF_FINDING_BAD_INPUT) {
        c->bad_inputs++;
        return;
    }
    for (size_t i = 0; i < c->nrun; i++)
        if (hset_add(c->run_pair[i] ? &c->transitions : &c->states, c->run_tuples[i]))
            r->new_states++;
    r->new_edges = new_edges(c);
    if (c->o.edges_count_only)
        r->new_edges = 0; /* counted in c->edges, no feedback */
    if (r->new_states || r->new_edges)
        c->last_new = c->execs;
}

void vuf_campaign_seed(vuf_campaign *c, const uint8_t *data, size_t len, vuf_campaign_run *r)
{
    c->buf_len = len < c->o.max_len ? len : c->o.max_len;
    memcpy(c->buf, data, c->buf_len);
    run(c, r);
    if (r->finding.kind != VUF_FINDING_BAD_INPUT) {
        keep(c, c->buf, c->buf_len, r->new_states + r->new_edges);
        r->kept = true;
    }
}

void vuf_campaign_import(vuf_campaign *c, const uint8_t *data, size_t len, vuf_campaign_run *r)
{
    c->buf_len = len < c->o.max_len ? len : c->o.max_len;
    memcpy(c->buf, data, c->buf_len);
    run(c, r);
    if (r->new_states || r->new_edges) {
        keep(c, c->buf, c->buf_len, r->new_states + r->new_edges);
        r->kept = true;
    }
}

/* The schedule: half the time one of the newest entries (what the campaign
 * is learning now), else any, a little more often those that brought
 * more. */
static const entry *pick(vuf_campaign *c)
{
    size_t i;
    if (c->n > 16 && rnd(c) % 2)
        i = c->n - 1 - rnd(c) % 16;
    else {
        i = rnd(c) % c->n;
        size_t j = rnd(c) % c->n;
        if (c->corpus[j].found > c->corpus[i].found)
            i = j;
    }
    c->corpus[i].picks++;
    return &c->corpus[i];
}

bool vuf_campaign_step(vuf_campaign *c, vuf_campaign_run *r)
{
    if (!c->n)
        return false;
    const entry *e = pick(c);
    if (c->n > 1 && rnd(c) % 10 == 0) {
        const entry *o = &c->corpus[rnd(c) % c->n];
        c->buf_len = vuf_mutator_crossover(c->mut, e->data, e->len, o->data, o->len, c->buf,
                                           c->o.max_len, (unsigned)rnd(c));
    } else {
        c->buf_len = e->len < c->o.max_len ? e->len : c->o.max_len;
        memcpy(c->buf, e->data, c->buf_len);
    }
    for (unsigned k = 1 + rnd(c) % 4; k; k--)
        c->buf_len = vuf_mutator_mutate(c->mut, c->buf, c->buf_len, c->o.max_len, (unsigned)rnd(c));
    run(c, r);
    if (r->finding.kind != VUF_FINDING_BAD_INPUT && (r->new_states || r->new_edges)) {
        keep(c, c->buf, c->buf_len, r->new_states + r->new_edges);
        r->kept = true;
    }
    return true;
}

void vuf_campaign_stats_get(const vuf_campaign *c, vuf_campaign_stats *st)
{
    *st = (vuf_campaign_stats){.execs = c->execs,
                               .bad_inputs = c->bad_inputs,
                               .corpus = c->n,
                               .states = c->states.n,
                               .transitions = c->transitions.n,
                               .edges = c->edges,
                               .last_new_exec = c->last_new};
}
