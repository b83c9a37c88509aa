/* SPDX-License-Identifier: Apache-2.0 */
/* The mutator of back-end sessions (vuf_mutator_mutate_backend): every
 * output is a back-end session within the size limit, the same (input,
 * seed) gives the same output, garbage becomes an empty back-end session,
 * the expectations keep their order, and every kind of deviation happens:
 * a reply laid over the device's, feature bits beyond the table's, a
 * back-end channel request with and without NEED_REPLY, a delay, both
 * closes, raw bytes, a resize. */
#include "vuf_mutator.h"
#include "vuf_session.h"
#include "vuf_test.h"

#include <stdlib.h>
#include <string.h>

#define MAX 8192
#define ROUNDS 4000

static const char seed_text[] = "role backend\n"
                                "F>B main GET_FEATURES\n"
                                "F>B main GET_PROTOCOL_FEATURES\n"
                                "F>B main SET_PROTOCOL_FEATURES\n"
                                "F>B main GET_QUEUE_NUM\n"
                                "F>B main SET_BACKEND_REQ_FD\n"
                                "F>B main SET_OWNER\n"
                                "F>B main GET_CONFIG\n";

enum {
    K_REPLY,
    K_FEATURES_BEYOND,
    K_FEATURES_ALL,
    K_REQUEST,
    K_REQUEST_NEED_REPLY,
    K_DELAY,
    K_CLOSE,
    K_CLOSE_BACKEND,
    K_RAW,
    K_RESIZE,
    K_COUNT
};
static const char *const kind_names[K_COUNT] = {
    [K_REPLY] = "reply",
    [K_FEATURES_BEYOND] = "features beyond the table",
    [K_FEATURES_ALL] = "every feature bit offered",
    [K_REQUEST] = "back-end request",
    [K_REQUEST_NEED_REPLY] = "back-end request with need_reply",
    [K_DELAY] = "delay",
    [K_CLOSE] = "close main",
    [K_CLOSE_BACKEND] = "close backend",
    [K_RAW] = "raw",
    [K_RESIZE] = "resize",
};

/* Bits set that no feature of the table has, in the space of name. */
static bool beyond_table(const vuf_spec *spec, const Vuf__Message *m)
{
    if (!m->name || m->n_fields != 1 || !m->fields[0]->has_value)
        return false;
    vuf_space sp = !strcmp(m->name, "GET_FEATURES")            ? VUF_SPACE_VIRTIO
                   : !strcmp(m->name, "GET_PROTOCOL_FEATURES") ? VUF_SPACE_PROTOCOL
                                                               : (vuf_space)-1;
    if (sp == (vuf_space)-1)
        return false;
    uint64_t known = 0;
    for (size_t i = 0; i < vuf_spec_feature_count(spec); i++) {
        const vuf_feature_def *f = vuf_spec_feature_at(spec, i);
        if (f->space == sp && f->bit < 64)
            known |= 1ull << f->bit;
    }
    return (m->fields[0]->value & ~known) != 0;
}

static void classify(const vuf_spec *spec, const Vuf__Session *s, bool *seen)
{
    for (size_t i = 0; i < s->n_actions; i++) {
        const Vuf__Action *a = s->actions[i];
        switch (a->action_case) {
        case VUF__ACTION__ACTION_BE_SEND:
            if (a->be_send->has_reply && a->be_send->reply)
                seen[K_REPLY] = true;
            if (beyond_table(spec, a->be_send))
                seen[K_FEATURES_BEYOND] = true;
            if (beyond_table(spec, a->be_send) && a->be_send->fields[0]->value == ~0ull)
                seen[K_FEATURES_ALL] = true;
            break;
        case VUF__ACTION__ACTION_BE_BACKEND_SEND:
            seen[a->be_backend_send->has_need_reply && a->be_backend_send->need_reply
                     ? K_REQUEST_NEED_REPLY
                     : K_REQUEST] = true;
            break;
        case VUF__ACTION__ACTION_DELAY:
            seen[K_DELAY] = true;
            break;
        case VUF__ACTION__ACTION_BE_CLOSE:
            seen[K_CLOSE] = true;
            break;
        case VUF__ACTION__ACTION_BE_CLOSE_BACKEND:
            seen[K_CLOSE_BACKEND] = true;
            break;
        case VUF__ACTION__ACTION_RAW:
            seen[K_RAW] = true;
            break;
        case VUF__ACTION__ACTION_RESIZE:
            seen[K_RESIZE] = true;
            break;
        default:
            break;
        }
    }
}

/* The ids of the session's main-channel expectations, in order. */
static size_t expectations(const Vuf__Session *s, uint32_t *ids, size_t cap)
{
    size_t n = 0;
    for (size_t i = 0; i < s->n_actions && n < cap; i++)
        if (s->actions[i]->action_case == VUF__ACTION__ACTION_EXPECT)
            ids[n++] = s->actions[i]->expect->has_id ? s->actions[i]->expect->id : 0;
    return n;
}

VUF_TEST(mutations)
{
    const vuf_spec *spec = vuf_test_table();
    vuf_diag d;
    Vuf__Session *s = vuf_session_parse_text(spec, seed_text, strlen(seed_text), "seed", &d);
    CHECK(s != NULL, "seed parses: %s", d.text);
    if (!s)
        return;
    size_t slen;
    uint8_t *seed = vuf_session_pack(s, &slen);
    vuf_session_free(s);
    vuf_mutator *m = vuf_mutator_new(spec, NULL);
    uint8_t *buf = malloc(MAX), *again = malloc(MAX);
    bool seen[K_COUNT] = {0};
    size_t invalid = 0, not_backend = 0, oversize = 0, differ = 0, reordered = 0;
    size_t len = slen;
    memcpy(buf, seed, slen);
    for (unsigned i = 0; i < ROUNDS; i++) {
        if (i % 20 == 0) { /* restart from the seed now and then */
            memcpy(buf, seed, slen);
            len = slen;
        }
        uint8_t before[MAX];
        size_t blen = len;
        memcpy(before, buf, len);
        len = vuf_mutator_mutate_backend(m, spec, buf, len, MAX, i);
        oversize += len == 0 || len > MAX;
        memcpy(again, before, blen);
        size_t alen = vuf_mutator_mutate_backend(m, spec, again, blen, MAX, i);
        differ += alen != len || memcmp(again, buf, len);
        Vuf__Session *x = vuf_session_unpack(buf, len);
        invalid += x == NULL;
        if (!x)
            continue;
        not_backend += !(x->has_role && x->role == VUF__ROLE__ROLE_BACKEND);
        Vuf__Session *b = vuf_session_unpack(before, blen);
        if (b) {
            /* the expectations left are a subsequence of those before */
            uint32_t e0[64], e1[64];
            size_t n0 = expectations(b, e0, 64), n1 = expectations(x, e1, 64), k = 0;
            for (size_t j = 0; j < n0 && k < n1; j++)
                k += e0[j] == e1[k];
            reordered += k != n1;
            vuf_session_free(b);
        }
        classify(spec, x, seen);
        vuf_session_free(x);
    }
    CHECK_EQ(invalid, 0, "outputs that do not unpack");
    CHECK_EQ(not_backend, 0, "outputs that are not back-end sessions");
    CHECK_EQ(oversize, 0, "outputs empty or over the limit");
    CHECK_EQ(differ, 0, "outputs that differ for the same input and seed");
    CHECK_EQ(reordered, 0, "outputs whose expectations changed order");
    for (int k = 0; k < K_COUNT; k++)
        CHECK(seen[k], "no mutation made a %s in %d rounds", kind_names[k], ROUNDS);

    /* garbage becomes an empty back-end session */
    static const uint8_t garbage[] = {0xff, 0xff, 0xff, 0x01, 0x02};
    memcpy(buf, garbage, sizeof garbage);
    len = vuf_mutator_mutate_backend(m, spec, buf, sizeof garbage, MAX, 1);
    Vuf__Session *g = vuf_session_unpack(buf, len);
    CHECK(g && g->has_role && g->role == VUF__ROLE__ROLE_BACKEND, "garbage: a back-end session");
    vuf_session_free(g);

    free(buf);
    free(again);
    free(seed);
    vuf_mutator_free(m);
}

VUF_TEST_MAIN()
