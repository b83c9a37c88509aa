/* SPDX-License-Identifier: Apache-2.0 */
/* The mutator of back-end sessions (vuf_mutator.h, `vufuzz fuzz-frontend`):
 * deviations of the back-end placed after the front-end messages a session
 * expects. Messages are mutated by the session mutator's own message
 * mutation (vuf_mutator_mutate_message); this file only chooses where a
 * deviation goes and what kind it is. Memory follows protobuf-c's unpack
 * conventions, so vuf_session_free frees any result. */
#include "vuf_mutator.h"

#include <stdlib.h>
#include <string.h>

#define MAX_ACTIONS 400

static uint64_t below(vuf_mutator *m, uint64_t n)
{
    return vuf_mutator_below(m, n);
}

static bool is_expect(const Vuf__Action *a)
{
    return a->action_case == VUF__ACTION__ACTION_EXPECT ||
           a->action_case == VUF__ACTION__ACTION_BACKEND_EXPECT;
}

static bool is_message(const Vuf__Action *a)
{
    return a->action_case == VUF__ACTION__ACTION_BE_SEND ||
           a->action_case == VUF__ACTION__ACTION_BE_BACKEND_SEND;
}

static Vuf__Action *new_action(Vuf__Action__ActionCase k)
{
    Vuf__Action *a = malloc(sizeof *a);
    if (a) {
        vuf__action__init(a);
        a->action_case = k;
    }
    return a;
}

static Vuf__Message *new_message(const char *name, uint32_t id, bool reply)
{
    Vuf__Message *m = malloc(sizeof *m);
    if (!m)
        return NULL;
    vuf__message__init(m);
    if (name) {
        m->name = strdup(name);
    } else {
        m->has_id = true;
        m->id = id;
    }
    m->has_reply = m->reply = reply;
    return m;
}

/* A place for a deviation: just after a random expectation (or at the
 * start), somewhere in its group; *trigger is that expectation's message. */
static size_t pick_place(vuf_mutator *m, const Vuf__Session *s, const Vuf__Message **trigger)
{
    size_t nexp = 0;
    for (size_t i = 0; i < s->n_actions; i++)
        nexp += is_expect(s->actions[i]);
    *trigger = NULL;
    size_t at = 0;
    if (nexp) {
        size_t k = below(m, nexp);
        for (size_t i = 0; i < s->n_actions; i++)
            if (is_expect(s->actions[i]) && !k--) {
                *trigger = s->actions[i]->expect;
                at = i + 1;
                break;
            }
    }
    size_t end = at;
    while (end < s->n_actions && !is_expect(s->actions[end]))
        end++;
    return at + below(m, end - at + 1);
}

static Vuf__Action *message_action(bool backend, Vuf__Message *msg)
{
    Vuf__Action *a = msg ? new_action(backend ? VUF__ACTION__ACTION_BE_BACKEND_SEND
                                              : VUF__ACTION__ACTION_BE_SEND)
                         : NULL;
    if (!a) {
        if (msg)
            protobuf_c_message_free_unpacked(&msg->base, NULL);
        return NULL;
    }
    a->be_send = msg; /* the union's Message */
    return a;
}

/* The trigger's reply line, its fields (or header, or fds) mutated. */
static Vuf__Action *reply_line(vuf_mutator *m, const Vuf__Message *trigger, unsigned rounds)
{
    Vuf__Message *msg = trigger ? new_message(trigger->name, trigger->id, true)
                                : new_message("GET_FEATURES", 0, true);
    for (unsigned i = 0; msg && i < rounds; i++)
        vuf_mutator_mutate_message(m, msg, VUF_CHAN_FRONTEND, (unsigned)below(m, 1u << 31));
    return message_action(false, msg);
}

/* A reply to GET_FEATURES or GET_PROTOCOL_FEATURES (by name) that offers
 * bits beyond the device's: the table's bits of that space, most of them,
 * with bits no device type of the table has (device-specific virtio bits,
 * unknown ones), or all 64. NULL when the trigger is another message. */
static Vuf__Action *features_reply(vuf_mutator *m, const vuf_spec *spec,
                                   const Vuf__Message *trigger)
{
    if (!trigger || !trigger->name)
        return NULL;
    vuf_space sp;
    if (!strcmp(trigger->name, "GET_FEATURES"))
        sp = VUF_SPACE_VIRTIO;
    else if (!strcmp(trigger->name, "GET_PROTOCOL_FEATURES"))
        sp = VUF_SPACE_PROTOCOL;
    else
        return NULL;
    uint64_t v = 0;
    for (size_t i = 0; i < vuf_spec_feature_count(spec); i++) {
        const vuf_feature_def *f = vuf_spec_feature_at(spec, i);
        if (f->space == sp && f->bit < 64 && below(m, 4))
            v |= 1ull << f->bit;
    }
    switch (below(m, 4)) {
    case 0:
        v = ~0ull;
        break;
    case 1: /* the device-specific range of virtio (0..23), or any bit */
        v |= 1ull << below(m, sp == VUF_SPACE_VIRTIO ? 24 : 64);
        break;
    case 2:
        v |= (uint64_t)below(m, 1ull << 32) << 32;
        break;
    default:
        v |= 1ull << below(m, 64);
        break;
    }
    Vuf__Message *msg = new_message(trigger->name, 0, true);
    Vuf__Field *f = msg ? malloc(sizeof *f) : NULL;
    Vuf__Field **fa = f ? malloc(sizeof *fa) : NULL;
    char *path = fa ? strdup("u64") : NULL;
    if (!path) {
        free(fa);
        free(f);
        if (msg)
            protobuf_c_message_free_unpacked(&msg->base, NULL);
        return NULL;
    }
    vuf__field__init(f);
    f->path = path;
    f->has_value = true;
    f->value = v;
    fa[0] = f;
    msg->fields = fa;
    msg->n_fields = 1;
    return message_action(false, msg);
}

/* A request of the back-end channel from the table, valid by default. */
static Vuf__Action *backend_request(vuf_mutator *m, const vuf_spec *spec)
{
    size_t n = vuf_spec_msg_count(spec, VUF_CHAN_BACKEND);
    const vuf_msg_def *d = n ? vuf_spec_msg_at(spec, VUF_CHAN_BACKEND, below(m, n)) : NULL;
    Vuf__Message *msg = d ? new_message(d->name, 0, false) : new_message(NULL, 1, false);
    if (msg && below(m, 2))
        msg->has_need_reply = msg->need_reply = true;
    for (unsigned i = 0, r = (unsigned)below(m, 3); msg && i < r; i++)
        vuf_mutator_mutate_message(m, msg, VUF_CHAN_BACKEND, (unsigned)below(m, 1u << 31));
    return message_action(true, msg);
}

static bool insert_deviation(vuf_mutator *m, const vuf_spec *spec, Vuf__Session *s)
{
    const Vuf__Message *trigger;
    size_t at = pick_place(m, s, &trigger);
    unsigned k = (unsigned)below(m, 100);
    if (k < 40) {
        Vuf__Action *f = below(m, 2) ? features_reply(m, spec, trigger) : NULL;
        return vuf_session_insert_action(
            s, f ? f : reply_line(m, trigger, 1 + (unsigned)below(m, 2)), at);
    }
    if (k < 65)
        return vuf_session_insert_action(s, backend_request(m, spec), at);
    if (k < 72) { /* the reply held back, then given as it is */
        static const uint32_t ms[] = {0, 10, 50, 200, 1000, 3000};
        Vuf__Action *d = new_action(VUF__ACTION__ACTION_DELAY);
        if (!d)
            return false;
        d->delay = ms[below(m, sizeof ms / sizeof *ms)];
        return vuf_session_insert_action(s, d, at) &&
               vuf_session_insert_action(s, reply_line(m, trigger, 0), at + 1);
    }
    if (k < 77) { /* the reply given twice */
        return vuf_session_insert_action(s, reply_line(m, trigger, 0), at) &&
               vuf_session_insert_action(s, reply_line(m, trigger, 0), at);
    }
    if (k < 82) {
        Vuf__Action *a = new_action(below(m, 2) ? VUF__ACTION__ACTION_BE_CLOSE
                                                : VUF__ACTION__ACTION_BE_CLOSE_BACKEND);
        if (a)
            a->be_close = true; /* the union's bool for both */
        return vuf_session_insert_action(s, a, at);
    }
    if (k < 88) { /* bytes as they are: a header of any id, or less */
        Vuf__Action *a = new_action(VUF__ACTION__ACTION_RAW);
        Vuf__Raw *r = malloc(sizeof *r);
        size_t n = 1 + below(m, 24);
        uint8_t *b = malloc(n);
        if (!a || !r || !b) {
            free(a);
            free(r);
            free(b);
            return false;
        }
        vuf__raw__init(r);
        for (size_t i = 0; i < n; i++)
            b[i] = (uint8_t)below(m, 256);
        if (n >= 12 && below(m, 2)) {
            b[4] = 0x5, b[5] = b[6] = b[7] = 0; /* a reply's flags */
            b[8] = (uint8_t)(n - 12), b[9] = b[10] = b[11] = 0;
        }
        r->data.data = b;
        r->data.len = n;
        r->has_backend = r->backend = below(m, 3) == 0;
        a->raw = r;
        return vuf_session_insert_action(s, a, at);
    }
    if (k < 93) {
        Vuf__Action *a = new_action(VUF__ACTION__ACTION_RESIZE);
        if (a)
            a->resize = below(m, 2) ? 2u << 20 : below(m, 64u << 20);
        return vuf_session_insert_action(s, a, at);
    }
    /* a reply of another message: mutated, then renamed most of the time */
    size_t n = vuf_spec_msg_count(spec, VUF_CHAN_FRONTEND);
    const vuf_msg_def *d = n ? vuf_spec_msg_at(spec, VUF_CHAN_FRONTEND, below(m, n)) : NULL;
    Vuf__Message *msg = new_message(d ? d->name : NULL, 1, true);
    if (msg && below(m, 2))
        vuf_mutator_mutate_message(m, msg, VUF_CHAN_FRONTEND, (unsigned)below(m, 1u << 31));
    return vuf_session_insert_action(s, message_action(false, msg), at);
}

/* A random action that is not an expectation, or -1. */
static long pick_deviation(vuf_mutator *m, const Vuf__Session *s, bool messages_only)
{
    size_t n = 0;
    for (size_t i = 0; i < s->n_actions; i++)
        n += messages_only ? is_message(s->actions[i]) : !is_expect(s->actions[i]);
    if (!n)
        return -1;
    size_t k = below(m, n);
    for (size_t i = 0; i < s->n_actions; i++)
        if ((messages_only ? is_message(s->actions[i]) : !is_expect(s->actions[i])) && !k--)
            return (long)i;
    return -1;
}

static bool mutate_once(vuf_mutator *m, const vuf_spec *spec, Vuf__Session *s)
{
    unsigned k = (unsigned)below(m, 100);
    if (k < 40 && s->n_actions < MAX_ACTIONS)
        return insert_deviation(m, spec, s);
    if (k < 70) { /* a message of the back-end, the session mutator's way */
        long i = pick_deviation(m, s, true);
        if (i < 0)
            return false;
        Vuf__Action *a = s->actions[i];
        return vuf_mutator_mutate_message(m, a->be_send,
                                          a->action_case == VUF__ACTION__ACTION_BE_BACKEND_SEND
                                              ? VUF_CHAN_BACKEND
                                              : VUF_CHAN_FRONTEND,
                                          (unsigned)below(m, 1u << 31));
    }
    if (k < 85) {
        long i = pick_deviation(m, s, false);
        if (i < 0)
            return false;
        vuf_session_remove_action(s, (size_t)i);
        return true;
    }
    if (k < 92) { /* a deviation copied elsewhere */
        long i = pick_deviation(m, s, false);
        if (i < 0 || s->n_actions >= MAX_ACTIONS)
            return false;
        size_t len = protobuf_c_message_get_packed_size(&s->actions[i]->base);
        uint8_t *buf = malloc(len ? len : 1);
        if (!buf)
            return false;
        protobuf_c_message_pack(&s->actions[i]->base, buf);
        Vuf__Action *c = vuf__action__unpack(NULL, len, buf);
        free(buf);
        const Vuf__Message *trigger;
        return vuf_session_insert_action(s, c, pick_place(m, s, &trigger));
    }
    { /* a delay's length, or two neighbours swapped */
        long i = pick_deviation(m, s, false);
        if (i < 0)
            return false;
        Vuf__Action *a = s->actions[i];
        if (a->action_case == VUF__ACTION__ACTION_DELAY) {
            a->delay = (uint32_t)below(m, 2) ? a->delay * 2 + 1 : a->delay / 2;
            return true;
        }
        if ((size_t)i + 1 < s->n_actions && !is_expect(s->actions[i + 1])) {
            s->actions[i] = s->actions[i + 1];
            s->actions[i + 1] = a;
            return true;
        }
        return false;
    }
}

size_t vuf_mutator_mutate_backend(vuf_mutator *m, const vuf_spec *spec, uint8_t *data, size_t size,
                                  size_t max, unsigned seed)
{
    vuf_mutator_seed(m, seed ^ (unsigned)size);
    Vuf__Session *s = vuf_session_unpack(data, size);
    if (!s) {
        s = malloc(sizeof *s);
        if (!s)
            return size;
        vuf__session__init(s);
    }
    s->has_role = true;
    s->role = VUF__ROLE__ROLE_BACKEND;
    unsigned rounds = 1 + (unsigned)below(m, 3);
    for (unsigned i = 0; i < rounds; i++)
        for (int tries = 0; tries < 4 && !mutate_once(m, spec, s); tries++) {
        }
    size_t n;
    uint8_t *out = vuf_session_pack(s, &n);
    while (out && n > max && s->n_actions) { /* too large: the last deviations go */
        long i = -1;
        for (size_t k = s->n_actions; k-- > 0 && i < 0;)
            if (!is_expect(s->actions[k]))
                i = (long)k;
        if (i < 0)
            break;
        vuf_session_remove_action(s, (size_t)i);
        free(out);
        out = vuf_session_pack(s, &n);
    }
    if (out && n <= max) {
        memcpy(data, out, n);
        size = n;
    }
    free(out);
    vuf_session_free(s);
    return size;
}
