/* SPDX-License-Identifier: Apache-2.0 */
/* The session mutator: every output is a session within the size limit,
 * the same (input, seed) gives the same output, garbage becomes a session,
 * crossover and trimming keep sessions whole, and every kind of mutation
 * happens (the derived-field breakers among them). */
#include "vuf_mutator.h"
#include "vuf_session.h"
#include "vuf_test.h"

#include <stdlib.h>
#include <string.h>

#define MAX 8192
#define ROUNDS 10000

/* Guest addresses at a region's end: the seed's guest is one 64 KiB region
 * at gpa 0 / user address 0x7f0000000000 */
static bool near_end(uint64_t v)
{
    return (v <= 0x10000 && v >= 0x10000 - 0x200) ||
           (v <= 0x7f0000010000ull && v >= 0x7f0000010000ull - 0x200);
}

static bool has_near_end_address(const Vuf__Session *s)
{
    for (size_t i = 0; i < s->n_actions; i++) {
        const Vuf__Action *a = s->actions[i];
        if (a->action_case == VUF__ACTION__ACTION_SEND)
            for (size_t k = 0; k < a->send->n_fields; k++)
                if (a->send->fields[k]->has_value && near_end(a->send->fields[k]->value))
                    return true;
        if (a->action_case == VUF__ACTION__ACTION_DESC && near_end(a->desc->addr))
            return true;
    }
    return false;
}

/* Two fields of one message whose sum wraps around 2^64 to a small number:
 * an address range that passes `base + size <= limit` (span-wrap). Both
 * large, the sum not 0: what the generic integer mutations almost never
 * make together. */
static bool has_wrapping_pair(const Vuf__Session *s)
{
    for (size_t i = 0; i < s->n_actions; i++) {
        const Vuf__Action *a = s->actions[i];
        if (a->action_case != VUF__ACTION__ACTION_SEND)
            continue;
        const Vuf__Message *m = a->send;
        for (size_t j = 0; j < m->n_fields; j++)
            for (size_t k = 0; k < m->n_fields; k++) {
                uint64_t x = m->fields[j]->value, y = m->fields[k]->value;
                if (j != k && m->fields[j]->has_value && m->fields[k]->has_value &&
                    x >= (1ull << 62) && y >= (1ull << 62) && x + y < x && x + y &&
                    x + y <= 0x10000)
                    return true;
            }
    }
    return false;
}

/* Whether every message of s builds against the table (an input that does
 * not is skipped by the fuzz targets: an execution lost). */
static bool builds(const vuf_spec *spec, const Vuf__Session *s)
{
    static vuf_session_wire w;
    char err[200];
    for (size_t i = 0; i < s->n_actions; i++) {
        const Vuf__Action *a = s->actions[i];
        if (a->action_case == VUF__ACTION__ACTION_SEND &&
            vuf_session_build(spec, VUF_CHAN_FRONTEND, a->send, &w, err, sizeof err))
            return false;
        if (a->action_case == VUF__ACTION__ACTION_BACKEND_SEND &&
            vuf_session_build(spec, VUF_CHAN_BACKEND, a->backend_send, &w, err, sizeof err))
            return false;
    }
    return true;
}

/* A run of descriptors whose NEXT links back into the run, then its head
 * made available: a descriptor loop a driver could write. */
static bool has_chain_loop(const Vuf__Session *s)
{
    for (size_t i = 0; i < s->n_actions; i++) {
        size_t j = i;
        bool loop = false;
        while (j < s->n_actions && s->actions[j]->action_case == VUF__ACTION__ACTION_DESC) {
            const Vuf__Desc *d = s->actions[j]->desc;
            for (size_t k = i; k <= j; k++)
                loop |= (d->flags & 1) && d->next == s->actions[k]->desc->index;
            j++;
        }
        if (j > i && loop && j < s->n_actions &&
            s->actions[j]->action_case == VUF__ACTION__ACTION_AVAIL &&
            s->actions[j]->avail->head == s->actions[i]->desc->index)
            return true;
        i = j > i ? j - 1 : i;
    }
    return false;
}

/* A text session packed as the fuzzers take it, and its action count;
 * NULL (and a failed check) when it does not parse. */
static uint8_t *packed(const vuf_spec *spec, const char *text, size_t *len, size_t *nactions)
{
    vuf_diag d;
    Vuf__Session *s = vuf_session_parse_text(spec, text, strlen(text), "seed", &d);
    CHECK(s != NULL, "seed parses: %s", d.text);
    if (!s)
        return NULL;
    uint8_t *p = vuf_session_pack(s, len);
    *nactions = s->n_actions;
    vuf_session_free(s);
    return p;
}

static const char *seed_text =
    "config queues=1\n"
    "F>B main GET_FEATURES\n"
    "F>B main GET_PROTOCOL_FEATURES\n"
    "F>B main SET_PROTOCOL_FEATURES u64=0x1b22b\n"
    "F>B main SET_MEM_TABLE need_reply regions[0].guest_addr=0 regions[0].size=0x10000 "
    "regions[0].user_addr=0x7f0000000000 regions[0].mmap_offset=0 fds=guest:0\n"
    "F>B main SET_VRING_KICK u64=0\n"
    "F>B main GET_CONFIG offset=0 flags=0 payload=00000000\n"
    "blk type=in\n"
    "kick\n"
    "backend-reply ack\n";

VUF_TEST(mutations)
{
    const vuf_spec *spec = vuf_spec_default();
    size_t slen, seed_actions;
    uint8_t *seed = packed(spec, seed_text, &slen, &seed_actions);
    if (!seed)
        return;
    vuf_mutator *m = vuf_mutator_new(spec, NULL);
    uint8_t *buf = malloc(MAX), *again = malloc(MAX), *out = malloc(MAX);

    const char *seen[64];
    size_t nseen = 0, invalid = 0, oversize = 0, differ = 0, same = 0, ends = 0, loops = 0,
           wraps = 0, unbuildable = 0;
    size_t len = slen;
    memcpy(buf, seed, slen);
    for (unsigned i = 0; i < ROUNDS; i++) {
        if (i % 50 == 0) { /* restart from the seed now and then */
            memcpy(buf, seed, slen);
            len = slen;
        }
        uint8_t before[MAX];
        size_t blen = len;
        memcpy(before, buf, len);
        len = vuf_mutator_mutate(m, buf, len, MAX, i);
        oversize += len == 0 || len > MAX;
        Vuf__Session *x = vuf_session_unpack(buf, len);
        invalid += x == NULL;
        unbuildable += x && !builds(spec, x);
        ends += x && has_near_end_address(x);
        loops += x && has_chain_loop(x);
        wraps += x && has_wrapping_pair(x);
        vuf_session_free(x);
        /* determinism: the same input and seed, the same output */
        memcpy(again, before, blen);
        size_t alen = vuf_mutator_mutate(m, again, blen, MAX, i);
        if (alen != len || memcmp(again, buf, len))
            differ++;
        same += len == blen && !memcmp(buf, before, len);
        const char *op = vuf_mutator_last(m);
        bool known = false;
        for (size_t k = 0; k < nseen; k++)
            known |= !strcmp(seen[k], op);
        if (!known && nseen < 64)
            seen[nseen++] = op;
    }
    CHECK(invalid == 0, "%zu outputs are not sessions", invalid);
    CHECK(oversize == 0, "%zu outputs out of bounds", oversize);
    CHECK(unbuildable <= ROUNDS / 1000, "%zu outputs do not build against the table", unbuildable);
    CHECK(differ == 0, "%zu outputs differ for the same input and seed", differ);
    CHECK(same < ROUNDS / 10, "%zu of %d mutations changed nothing", same, ROUNDS);
    /* the seed has neither: the mutator makes them, and not rarely */
    CHECK(ends >= ROUNDS / 200, "%zu outputs with an address at a region's end", ends);
    CHECK(loops >= ROUNDS / 200, "%zu outputs with a descriptor loop made available", loops);
    CHECK(wraps >= ROUNDS / 200, "%zu outputs with an address range wrapping around 2^64", wraps);
    static const char *const want[] = {
        "insert-action", "insert-chain",      "delete-action",       "duplicate-action",
        "swap-actions",  "splice-actions",    "rename-message",      "add-field",
        "table-value",   "span-wrap",         "range-edge",          "raw-id",
        "header",        "break-fd-count-up", "break-fd-count-down", "break-count-field",
        "break-nofd",    "break-hdr-size",    "break-truncate",      "oneof-switch",
        "mutate-scalar", "insert-element",    "delete-element"};
    for (size_t w = 0; w < sizeof want / sizeof want[0]; w++) {
        bool found = false;
        for (size_t k = 0; k < nseen; k++)
            found |= !strcmp(seen[k], want[w]);
        CHECK(found, "mutation '%s' happened", want[w]);
    }

    /* garbage becomes a session; a tiny max is respected */
    memset(buf, 0xff, 64);
    len = vuf_mutator_mutate(m, buf, 64, MAX, 7);
    Vuf__Session *g = vuf_session_unpack(buf, len);
    CHECK(g != NULL && g->n_actions > 0, "garbage becomes a session with actions");
    vuf_session_free(g);
    memcpy(buf, seed, slen);
    len = vuf_mutator_mutate(m, buf, slen, slen, 3);
    CHECK(len <= slen, "max %zu respected: %zu", slen, len);

    /* crossover: a session, with the first one's config */
    size_t clen = vuf_mutator_crossover(m, seed, slen, seed, slen, out, MAX, 5);
    Vuf__Session *c = vuf_session_unpack(out, clen);
    CHECK(c != NULL && c->config && c->config->has_queues, "crossover keeps the config");
    vuf_session_free(c);

    /* trimming: one action fewer per step, the session otherwise intact */
    CHECK(vuf_mutator_trim_steps(seed, slen) == seed_actions, "%zu trim steps",
          vuf_mutator_trim_steps(seed, slen));
    size_t tlen = vuf_mutator_without_action(seed, slen, 2, out, MAX);
    Vuf__Session *t = vuf_session_unpack(out, tlen);
    CHECK(t && t->n_actions == seed_actions - 1, "an action removed");
    if (t && t->n_actions > 2)
        CHECK(t->actions[2]->action_case == VUF__ACTION__ACTION_SEND &&
                  !strcmp(t->actions[2]->send->name, "SET_MEM_TABLE"),
              "the third action is the old fourth");
    vuf_session_free(t);
    CHECK(vuf_mutator_without_action(seed, slen, 99, out, MAX) == 0, "out of range: nothing");

    free(seed);
    free(buf);
    free(again);
    free(out);
    vuf_mutator_free(m);
}

/* The message that matters sits deep in a long set-up: SET_LOG_BASE and
 * SET_INFLIGHT_FD (spans: offset + size), SET_VRING_ADDR (ring addresses)
 * among 21 actions, as in corpus/dirty-log.txt. range-edge and deep-field
 * pick them over the whole session. Measured when they were added, in
 * 10,000 outputs: SET_LOG_BASE's range wraps in 224 (30 without range-edge),
 * a ring address lands at a region's end in 367 (41), SET_INFLIGHT_FD gets
 * more than 64 queues in 40 (4 without deep-field). */
static const char *long_text =
    "config disk_size=0x100000 queues=1 mem_size=0x10000 mem_regions=1 mem_gpa=0 "
    "mem_uaddr=0x7f0000000000 queue_size=16\n"
    "F>B main GET_FEATURES\n"
    "F>B main GET_PROTOCOL_FEATURES\n"
    "F>B main SET_PROTOCOL_FEATURES u64=0x1b22b\n"
    "F>B main GET_QUEUE_NUM\n"
    "F>B main SET_BACKEND_REQ_FD need_reply\n"
    "F>B main SET_OWNER need_reply\n"
    "F>B main SET_FEATURES need_reply u64=0x154001a44\n"
    "F>B main SET_MEM_TABLE need_reply regions[0].guest_addr=0 regions[0].size=0x10000 "
    "regions[0].user_addr=0x7f0000000000 regions[0].mmap_offset=0 fds=guest:0\n"
    "F>B main SET_LOG_BASE mmap_size=0x1000 mmap_offset=0\n"
    "F>B main SET_LOG_FD need_reply\n"
    "F>B main SET_INFLIGHT_FD need_reply mmap_size=0x1000 mmap_offset=0 num_queues=1 "
    "queue_size=0x10\n"
    "F>B main SET_VRING_NUM need_reply index=0 num=0x10\n"
    "F>B main SET_VRING_BASE need_reply index=0 num=0\n"
    "F>B main SET_VRING_ADDR need_reply index=0 flags=1 desc=0x7f0000000000 "
    "used=0x7f0000000800 avail=0x7f0000000400 log_guest_addr=0x800\n"
    "F>B main SET_VRING_KICK need_reply u64=0 fds=eventfd\n"
    "F>B main SET_VRING_CALL need_reply u64=0 fds=eventfd\n"
    "F>B main SET_VRING_ENABLE need_reply index=0 num=1\n"
    "blk type=out sector=0 len=0x200 data=a5\n"
    "kick\n"
    "blk type=in sector=0 len=0x200\n"
    "kick\n";

/* The message named `name` of s (the first), or NULL. */
static const Vuf__Message *find_send(const Vuf__Session *s, const char *name)
{
    for (size_t i = 0; i < s->n_actions; i++)
        if (s->actions[i]->action_case == VUF__ACTION__ACTION_SEND && s->actions[i]->send->name &&
            !strcmp(s->actions[i]->send->name, name))
            return s->actions[i]->send;
    return NULL;
}

VUF_TEST(range_edges_in_long_sessions)
{
    const vuf_spec *spec = vuf_spec_default();
    size_t slen, nactions;
    uint8_t *seed = packed(spec, long_text, &slen, &nactions);
    if (!seed)
        return;
    vuf_mutator *m = vuf_mutator_new(spec, NULL);
    uint8_t *buf = malloc(MAX);
    size_t log_wraps = 0, ring_ends = 0, many_queues = 0;
    for (unsigned i = 0; i < ROUNDS; i++) {
        memcpy(buf, seed, slen);
        size_t len = vuf_mutator_mutate(m, buf, slen, MAX, i);
        Vuf__Session *x = vuf_session_unpack(buf, len);
        const Vuf__Message *lb = x ? find_send(x, "SET_LOG_BASE") : NULL;
        const Vuf__Message *va = x ? find_send(x, "SET_VRING_ADDR") : NULL;
        const Vuf__Message *inf = x ? find_send(x, "SET_INFLIGHT_FD") : NULL;
        for (size_t k = 0; inf && k < inf->n_fields; k++)
            many_queues +=
                !strcmp(inf->fields[k]->path, "num_queues") && inf->fields[k]->value > 64;
        uint64_t off = 0, size = 0;
        for (size_t k = 0; lb && k < lb->n_fields; k++) {
            if (!strcmp(lb->fields[k]->path, "mmap_offset"))
                off = lb->fields[k]->value;
            if (!strcmp(lb->fields[k]->path, "mmap_size"))
                size = lb->fields[k]->value;
        }
        log_wraps += off + size < off && off + size != 0;
        bool end = false;
        for (size_t k = 0; va && k < va->n_fields; k++)
            end |= strcmp(va->fields[k]->path, "index") && va->fields[k]->has_value &&
                   near_end(va->fields[k]->value);
        ring_ends += end;
        vuf_session_free(x);
    }
    CHECK(log_wraps >= ROUNDS / 100, "%zu of %d outputs wrap SET_LOG_BASE's range", log_wraps,
          ROUNDS);
    CHECK(many_queues >= ROUNDS / 500, "%zu of %d outputs give SET_INFLIGHT_FD more than 64 queues",
          many_queues, ROUNDS);
    CHECK(ring_ends >= ROUNDS / 100, "%zu of %d outputs put a ring address at a region's end",
          ring_ends, ROUNDS);
    free(seed);
    free(buf);
    vuf_mutator_free(m);
}

VUF_TEST_MAIN()
