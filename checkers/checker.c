/* SPDX-License-Identifier: Apache-2.0 */
/* The rule engine: an I/O-free observer of a conversation. The table's
 * columns are judged by the interpreter (msgcheck.c); this file keeps the
 * conversation's state (negotiation, memory, rings, replies owed) and
 * judges replies, closes and the sides' notes. */
#include "vuf_checker.h"
#include "vuf_codec.h"
#include "vuf_msgcheck.h"
#include "vuf_util.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAX_REGIONS 64
#define MAX_RINGS 256

/* A ring's addresses as SET_VRING_ADDR gave them. */
typedef struct {
    bool set;
    uint64_t addr[3]; /* desc, avail, used */
} ring_t;

typedef struct {
    bool active;
    uint32_t id;
    const vuf_msg_def *def;
    vuf_reply_owed owed;
    bool broke_must; /* the request broke a MUST rule */
    bool broke_any;  /* ... or any rule, of any level */
    size_t event_index;
    unsigned line;
    size_t req_len; /* request payload bytes */
    /* what the request changed, restored if its reply says it failed */
    bool saved;
    size_t serial; /* the checker's request count when it came: undo only the latest */
    vuf_checker_state st_before;
    size_t nreg_before;
    uint8_t seen_before; /* seen[] of the request's id before it */
    int ring_idx;        /* the ring SET_VRING_ADDR changed, -1 none */
    ring_t ring_before;
    bool rings_saved; /* RESET_DEVICE: every ring in rings_before */
    /* the responder's REFUSE note, the requester's TIMEOUT note */
    bool refused, timed_out;
    /* The reply may come but is not owed: the request broke a gate of its
     * own message (the rst says what the sender should or must not do, not
     * what a responder that was never told about the message does with
     * it), or the feature it is owed under was enabled without asking the
     * back-end's offer (whether the back-end has it is unknown). It is
     * judged when it comes; a missing one is nobody's violation. */
    bool optional;
    bool need_reply; /* NEED_REPLY set, REPLY_ACK negotiated */
    /* The requester sent its next request before this one's reply could
     * come (a front-end that does not wait, or a frame completed only by
     * the next message's bytes): the reply may still come, in order. */
    bool pipelined;
} pending_t;

typedef struct {
    uint64_t uaddr, size;
} region_t;

/* A message the requester sent that owed no reply, while the responder had
 * not answered since: a responder that answers it anyway (an ack nobody
 * asked for) may do so after the requester went on. */
typedef struct {
    uint32_t id;
    const vuf_msg_def *def;
    bool broke_must, broke_any;
    unsigned line;
} unowed_t;
#define MAX_UNOWED 8
#define MAX_LATE 8

struct vuf_checker {
    const vuf_spec *spec;
    const vuf_device_def *device;
    /* negotiation-carrying messages, looked up by name in the table */
    const vuf_msg_def *get_features, *set_features, *get_proto, *set_proto, *get_queue_num,
        *set_backend_req_fd, *set_mem_table, *add_mem_reg, *rem_mem_reg, *set_vring_addr,
        *reset_device;
    vuf_checker_state st;
    bool closed[VUF_CHAN_COUNT];
    uint8_t *seen[VUF_CHAN_COUNT]; /* by id, for `after` and reply-always-if after: */
    uint32_t max_id[VUF_CHAN_COUNT];
    pending_t pending[VUF_CHAN_COUNT];
    /* A request that broke a rule was sent on the channel since the
     * responder's last reply: a close now may be its reaction, whatever
     * request is pending (the responder reads in order and may not have
     * read the later ones). */
    bool broke_unanswered[VUF_CHAN_COUNT];
    /* Requests whose reply may still come, oldest first: the requester
     * stopped waiting (timed out), the reply was optional, or the requester
     * went on before it could come (pipelined: then it is owed, in order) */
    pending_t late[VUF_CHAN_COUNT][MAX_LATE];
    size_t nlate[VUF_CHAN_COUNT];
    unowed_t unowed[VUF_CHAN_COUNT][MAX_UNOWED]; /* oldest first */
    size_t nunowed[VUF_CHAN_COUNT];
    region_t regions[MAX_REGIONS], regions_before[MAX_REGIONS];
    size_t nreg;
    ring_t rings[MAX_RINGS], rings_before[MAX_RINGS];
    size_t events;
    size_t requests; /* requests seen, both channels */
    vuf_violation *v;
    size_t nv, capv;
    vuf_incomplete incomplete[VUF_CHAN_COUNT * 2];
    size_t nincomplete;
    const vuf_event *cur;
    const char *cur_name; /* valid while an event is fed */
    char idname[16];      /* name of an id not in the table */
    size_t must_in_event; /* MUST findings by the sender in the current event */
    size_t any_in_event;  /* findings of any level by the sender in the current event */
    size_t gate_in_event; /* gate findings by the sender in the current event */
    /* protocol features a REPLY-flagged SET_PROTOCOL_FEATURES named: the
     * responder may or may not have taken it for a request */
    uint64_t maybe_proto;
};

static const vuf_msg_def *by_name(const vuf_spec *s, const char *n)
{
    return vuf_spec_msg_by_name(s, VUF_CHAN_FRONTEND, n);
}

vuf_checker *vuf_checker_new(const vuf_spec *spec)
{
    vuf_checker *c = calloc(1, sizeof *c);
    if (!c)
        return NULL;
    c->spec = spec;
    c->get_features = by_name(spec, "GET_FEATURES");
    c->set_features = by_name(spec, "SET_FEATURES");
    c->get_proto = by_name(spec, "GET_PROTOCOL_FEATURES");
    c->set_proto = by_name(spec, "SET_PROTOCOL_FEATURES");
    c->get_queue_num = by_name(spec, "GET_QUEUE_NUM");
    c->set_backend_req_fd = by_name(spec, "SET_BACKEND_REQ_FD");
    c->set_mem_table = by_name(spec, "SET_MEM_TABLE");
    c->add_mem_reg = by_name(spec, "ADD_MEM_REG");
    c->rem_mem_reg = by_name(spec, "REM_MEM_REG");
    c->set_vring_addr = by_name(spec, "SET_VRING_ADDR");
    c->reset_device = by_name(spec, "RESET_DEVICE");
    for (int ch = 0; ch < VUF_CHAN_COUNT; ch++) {
        size_t n = vuf_spec_msg_count(spec, (vuf_channel)ch);
        const vuf_msg_def *last = n ? vuf_spec_msg_at(spec, (vuf_channel)ch, n - 1) : NULL;
        c->max_id[ch] = last ? last->id : 0;
        c->seen[ch] = calloc((size_t)c->max_id[ch] + 1, 1);
        if (!c->seen[ch]) {
            vuf_checker_free(c);
            return NULL;
        }
    }
    return c;
}

void vuf_checker_free(vuf_checker *c)
{
    if (!c)
        return;
    for (int ch = 0; ch < VUF_CHAN_COUNT; ch++)
        free(c->seen[ch]);
    free(c->v);
    free(c);
}

void vuf_checker_reset(vuf_checker *c)
{
    memset(&c->st, 0, sizeof c->st);
    memset(c->closed, 0, sizeof c->closed);
    memset(c->pending, 0, sizeof c->pending);
    memset(c->broke_unanswered, 0, sizeof c->broke_unanswered);
    memset(c->nunowed, 0, sizeof c->nunowed);
    memset(c->nlate, 0, sizeof c->nlate);
    c->maybe_proto = 0;
    memset(c->rings, 0, sizeof c->rings);
    for (int ch = 0; ch < VUF_CHAN_COUNT; ch++)
        memset(c->seen[ch], 0, (size_t)c->max_id[ch] + 1);
    c->nreg = 0;
    c->events = 0;
    c->requests = 0;
    c->nv = 0;
    c->nincomplete = 0;
}

void vuf_checker_set_device(vuf_checker *c, const vuf_device_def *d)
{
    c->device = d;
}

size_t vuf_checker_violation_count(const vuf_checker *c)
{
    return c->nv;
}

const vuf_violation *vuf_checker_violation(const vuf_checker *c, size_t i)
{
    return i < c->nv ? &c->v[i] : NULL;
}

size_t vuf_checker_must_count(const vuf_checker *c, vuf_side side)
{
    size_t n = 0;
    for (size_t i = 0; i < c->nv; i++)
        n += c->v[i].level == VUF_MUST && c->v[i].side == side;
    return n;
}

size_t vuf_checker_incomplete_count(const vuf_checker *c)
{
    return c->nincomplete;
}

const vuf_incomplete *vuf_checker_incomplete(const vuf_checker *c, size_t i)
{
    return i < c->nincomplete ? &c->incomplete[i] : NULL;
}

void vuf_checker_state_get(const vuf_checker *c, vuf_checker_state *st)
{
    *st = c->st;
}

/* ---------- violations ---------- */

static vuf_violation *add(vuf_checker *c, vuf_rule_id rule, vuf_level level, vuf_side side,
                          unsigned line)
{
    if (c->nv == c->capv) {
        size_t nc = c->capv ? c->capv * 2 : 16;
        vuf_violation *nv = realloc(c->v, nc * sizeof *nv);
        if (!nv)
            return NULL;
        c->v = nv;
        c->capv = nc;
    }
    vuf_violation *v = &c->v[c->nv++];
    memset(v, 0, sizeof *v);
    v->rule = vuf_rule(rule);
    v->level = level;
    v->quote = v->rule->quote;
    v->section = v->rule->section;
    v->side = side;
    v->event_index = c->events;
    v->line = line;
    v->channel = c->cur ? c->cur->channel : VUF_CHAN_FRONTEND;
    snprintf(v->msg, sizeof v->msg, "%s", c->cur_name ? c->cur_name : "-");
    if (level == VUF_MUST && c->cur && side == c->cur->sender)
        c->must_in_event++;
    if (c->cur && side == c->cur->sender)
        c->any_in_event++;
    if (c->cur && side == c->cur->sender && !strcmp(v->rule->family, "gate"))
        c->gate_in_event++;
    return v;
}

static unsigned cur_line(const vuf_checker *c)
{
    return c->cur ? c->cur->line : 0;
}

/* A violation of a rule whose level is the catalogue's. */
static void report(vuf_checker *c, vuf_rule_id rule, vuf_side side, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

static void report(vuf_checker *c, vuf_rule_id rule, vuf_side side, const char *fmt, ...)
{
    vuf_violation *v = add(c, rule, vuf_rule(rule)->level, side, cur_line(c));
    if (!v)
        return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(v->text, sizeof v->text, fmt, ap);
    va_end(ap);
}

/* The same, where the table quotes the rst for this message's column
 * (q->text set): the level is the quote's verb's, the quote and section the
 * message's. */
static void report_quoted(vuf_checker *c, vuf_rule_id rule, const vuf_quote *q, const char *section,
                          vuf_side side, const char *fmt, ...)
    __attribute__((format(printf, 6, 7)));

static void report_quoted(vuf_checker *c, vuf_rule_id rule, const vuf_quote *q, const char *section,
                          vuf_side side, const char *fmt, ...)
{
    bool quoted = q && q->text;
    vuf_violation *v = add(c, rule, quoted ? vuf_level_of_verb(q->verb) : vuf_rule(rule)->level,
                           side, cur_line(c));
    if (!v)
        return;
    if (quoted) {
        v->quote = q->text;
        v->section = q->verb == VUF_VERB_SILENT ? "" : section;
    }
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(v->text, sizeof v->text, fmt, ap);
    va_end(ap);
}

/* A finding of the interpreter, by the current event's sender. */
static bool on_finding(void *ctx, const vuf_finding *f)
{
    vuf_checker *c = ctx;
    vuf_violation *v = add(c, f->rule, f->level, c->cur->sender, cur_line(c));
    if (v) {
        if (f->quote) {
            v->quote = f->quote->text;
            v->section = f->section;
        }
        snprintf(v->text, sizeof v->text, "%s", f->text);
    }
    return true; /* the checker reports them all */
}

/* ---------- state views ---------- */

static bool mem_covers(void *ctx, uint64_t uaddr, uint64_t size)
{
    const vuf_checker *c = ctx;
    for (size_t i = 0; i < c->nreg; i++) {
        uint64_t a = c->regions[i].uaddr, n = c->regions[i].size;
        if (uaddr >= a && size <= n && uaddr - a <= n - size)
            return true;
    }
    return false;
}

static bool ring_addrs(void *ctx, uint32_t index, uint64_t addr[3])
{
    const vuf_checker *c = ctx;
    if (index >= MAX_RINGS || !c->rings[index].set)
        return false;
    memcpy(addr, c->rings[index].addr, sizeof c->rings[index].addr);
    return true;
}

static void view(vuf_checker *c, vuf_msgcheck_state *v)
{
    memset(v, 0, sizeof *v);
    v->features_offered_known = c->st.features_offered_known;
    v->features_offered = c->st.features_offered;
    v->features_acked_known = c->st.features_acked_known;
    v->features_acked = c->st.features_acked;
    v->protocol_offered_known = c->st.protocol_offered_known;
    v->protocol_offered = c->st.protocol_offered;
    v->protocol_acked_known = c->st.protocol_acked_known;
    v->protocol_acked = c->st.protocol_acked;
    v->backend_channel = c->st.backend_channel;
    v->queue_num = c->st.queue_num;
    v->device = c->device;
    for (int ch = 0; ch < VUF_CHAN_COUNT; ch++) {
        v->seen[ch] = c->seen[ch];
        v->seen_max[ch] = c->max_id[ch];
    }
    v->mem = c;
    v->nregions = c->nreg;
    v->mem_covers = mem_covers;
    v->ring_addrs = ring_addrs;
}

static vuf_side responder_of(const vuf_checker *c, vuf_channel ch)
{
    const vuf_channel_def *cd = vuf_spec_channel(c->spec, ch);
    return cd->initiator == VUF_SIDE_FRONTEND ? VUF_SIDE_BACKEND : VUF_SIDE_FRONTEND;
}

static const char *pname(const pending_t *p)
{
    return p->def ? p->def->name : "an unknown request";
}

/* Where a request was, for a text: " (line N)" (or ", line N" inside
 * parentheses) from a file, nothing from a live conversation (its events
 * have no lines). */
typedef struct {
    char s[32];
} line_ref;

static line_ref at_line(unsigned line, bool paren)
{
    line_ref r = {{0}};
    if (line)
        snprintf(r.s, sizeof r.s, paren ? " (line %u)" : ", line %u", line);
    return r;
}

/* A reply owed on ch will not come now. `closer` is the side that closed
 * the channel, or -1 when the next request came. A responder that closes
 * instead of answering reacts to the request (the spec lets it close on
 * errors), which is a finding only when the request broke no rule, of
 * any level: a request the rst describes only under a condition (a NOTE
 * gate: "When F has been negotiated, this message is submitted") that came
 * without it is an exceptional circumstance a back-end may refuse. A
 * requester that closes, or stopped waiting (TIMEOUT), gave up: the reply
 * may still come late, and a missing one is nobody's violation. */
/* The pending message owed nothing: remember it a while (unowed_t). */
static void keep_unowed(vuf_checker *c, vuf_channel ch)
{
    const pending_t *p = &c->pending[ch];
    if (!p->active || p->owed)
        return;
    size_t *n = &c->nunowed[ch];
    if (*n == MAX_UNOWED) {
        memmove(&c->unowed[ch][0], &c->unowed[ch][1], (MAX_UNOWED - 1) * sizeof(unowed_t));
        (*n)--;
    }
    c->unowed[ch][(*n)++] = (unowed_t){.id = p->id,
                                       .def = p->def,
                                       .broke_must = p->broke_must,
                                       .broke_any = p->broke_any,
                                       .line = p->line};
}

static void owed_missing(vuf_checker *c, vuf_channel ch, int closer, const char *when)
{
    pending_t *p = &c->pending[ch];
    if (closer < 0)
        keep_unowed(c, ch);
    else
        c->nunowed[ch] = 0;
    if (p->active && p->owed) {
        vuf_side responder = responder_of(c, ch);
        if (closer == (int)responder) {
            /* a responder that gave its reason (a REFUSE note) refused a
             * request it could not carry out: a device's own limit is not
             * in the table, and closing is how a reply without a failure
             * form fails */
            if (!p->broke_any && !p->refused && !c->broke_unanswered[ch])
                report(c, VUF_RULE_REACT_CLOSE, responder,
                       "closed the channel instead of answering %s%s, which broke no rule",
                       pname(p), at_line(p->line, true).s);
        } else if (closer < 0) {
            /* its reply may still come: late (timed out), optional, or
             * after the next request (the responder had no chance yet: it
             * is missing if a later reply or the end comes first) */
            if (c->nlate[ch] == MAX_LATE) { /* the oldest is given up on */
                memmove(&c->late[ch][0], &c->late[ch][1], (MAX_LATE - 1) * sizeof(pending_t));
                c->nlate[ch]--;
            }
            pending_t *l = &c->late[ch][c->nlate[ch]++];
            *l = *p;
            l->pipelined = !p->timed_out && !p->optional;
            (void)when;
        }
    }
    if (closer >= 0)
        c->nlate[ch] = 0;
    p->active = false;
}

/* The pipelined requests before index `upto` of the late list got nothing
 * though the responder answered a later request: each is missing. */
static void late_skipped(vuf_checker *c, vuf_channel ch, vuf_side s, size_t upto)
{
    for (size_t i = 0; i < upto && i < c->nlate[ch]; i++) {
        const pending_t *l = &c->late[ch][i];
        if (l->pipelined)
            report(
                c, VUF_RULE_REPLY_MISSING, s, "no %s to %s%s before the reply to a later request",
                l->owed == VUF_OWED_EXPLICIT ? "reply" : "ack", pname(l), at_line(l->line, true).s);
    }
    size_t n = upto < c->nlate[ch] ? upto : c->nlate[ch];
    memmove(&c->late[ch][0], &c->late[ch][n], (c->nlate[ch] - n) * sizeof(pending_t));
    c->nlate[ch] -= n;
}

/* ---------- memory and rings ---------- */

static bool region_at(const vuf_payload_def *p, const char *prefix, const uint8_t *pl, size_t len,
                      uint64_t *ua, uint64_t *sz)
{
    char a[64], b[64];
    vuf_field_ref r1, r2;
    snprintf(a, sizeof a, "%suser_addr", prefix);
    snprintf(b, sizeof b, "%ssize", prefix);
    return vuf_field_resolve(p, a, &r1) && vuf_field_resolve(p, b, &r2) &&
           vuf_field_read(&r1, pl, len, ua) && vuf_field_read(&r2, pl, len, sz);
}

static void track_memory(vuf_checker *c, const vuf_msg_def *d, const uint8_t *pl, size_t len)
{
    uint64_t ua, sz;
    if (d == c->set_mem_table) {
        c->nreg = 0;
        /* hostile count: bound by the layout's max and by the bytes present */
        const vuf_payload_def *lay = d->request;
        uint64_t n = vuf_payload_count(lay, pl, len);
        if (!lay || lay->varray_field < 0 || !lay->elem_size || len < lay->fixed_size)
            return;
        uint64_t present = (len - lay->fixed_size) / lay->elem_size;
        uint32_t max = lay->fields[lay->varray_field].max_count;
        if (n > present)
            n = present;
        if (n > max)
            n = max;
        for (uint64_t i = 0; i < n && c->nreg < MAX_REGIONS; i++) {
            char pre[32];
            snprintf(pre, sizeof pre, "regions[%llu].", (unsigned long long)i);
            if (region_at(d->request, pre, pl, len, &ua, &sz))
                c->regions[c->nreg++] = (region_t){ua, sz};
        }
    } else if (d == c->add_mem_reg && c->nreg < MAX_REGIONS &&
               region_at(d->request, "", pl, len, &ua, &sz)) {
        c->regions[c->nreg++] = (region_t){ua, sz};
    } else if (d == c->rem_mem_reg && region_at(d->request, "", pl, len, &ua, &sz)) {
        for (size_t i = 0; i < c->nreg; i++)
            if (c->regions[i].uaddr == ua && c->regions[i].size == sz) {
                c->regions[i] = c->regions[--c->nreg];
                break;
            }
    } else if (d == c->set_vring_addr) {
        static const char *const f[3] = {"desc", "avail", "used"};
        uint64_t idx, a[3];
        vuf_field_ref r;
        bool ok = d->vring.present && vuf_field_read(&d->vring, pl, len, &idx) && idx < MAX_RINGS;
        for (int i = 0; ok && i < 3; i++)
            ok = vuf_field_resolve(d->request, f[i], &r) && vuf_field_read(&r, pl, len, &a[i]);
        if (ok) {
            c->rings[idx].set = true;
            memcpy(c->rings[idx].addr, a, sizeof a);
        }
    }
    c->st.nregions = (uint32_t)c->nreg;
}

/* ---------- requests ---------- */

static bool has_protocol_gate(const vuf_msg_def *d)
{
    for (size_t i = 0; d && i < d->ngates; i++)
        if (d->gates[i].space == VUF_SPACE_PROTOCOL)
            return true;
    return false;
}

static void on_request(vuf_checker *c, const vuf_event *ev, const vuf_msg_view *v)
{
    vuf_channel ch = ev->channel;
    const vuf_msg_def *d = v->def;
    const uint8_t *pl = v->payload;
    size_t len = v->payload_len;
    owed_missing(c, ch, -1, "before the next request");
    c->requests++;
    vuf_msgcheck_state vs;
    view(c, &vs);
    vuf_msgcheck_msg m = {
        .channel = ch, .sender = ev->sender, .v = v, .fd_kinds = ev->fds, .nfds = ev->nfds};
    vuf_msgcheck_request(c->spec, &m, &vs, on_finding, c);
    pending_t *p = &c->pending[ch];
    memset(p, 0, sizeof *p);
    p->active = true;
    p->id = v->hdr.request;
    p->def = d;
    p->owed = vuf_msgcheck_reply_owed(c->spec, d, v->hdr.flags, &vs);
    p->broke_must = c->must_in_event > 0;
    p->broke_any = c->any_in_event > 0;
    p->need_reply = (v->hdr.flags & VUF_F_NEED_REPLY) &&
                    vuf_msgcheck_reply_owed(c->spec, NULL, v->hdr.flags, &vs) == VUF_OWED_ACK;
    int ack_bit = vuf_spec_feature_bit(c->spec, VUF_SPACE_PROTOCOL, "REPLY_ACK");
    bool maybe_ack = !p->owed && (v->hdr.flags & VUF_F_NEED_REPLY) && d &&
                     d->reply != VUF_REPLY_NONE && ack_bit >= 0 && (c->maybe_proto >> ack_bit & 1);
    if (maybe_ack)
        p->owed = VUF_OWED_ACK; /* an ack may come, and is judged as one */
    p->optional = maybe_ack || c->gate_in_event > 0 ||
                  (p->owed && ch == VUF_CHAN_FRONTEND && !c->st.protocol_offered_known &&
                   (p->owed == VUF_OWED_ACK || has_protocol_gate(d)));
    p->event_index = c->events;
    p->line = ev->line;
    p->req_len = len;
    if (!d)
        return;
    /* what this request changes is undone if its reply reports a failure */
    p->saved = true;
    p->serial = c->requests;
    p->st_before = c->st;
    p->nreg_before = c->nreg;
    memcpy(c->regions_before, c->regions, c->nreg * sizeof c->regions[0]);
    uint64_t val = 0;
    bool have_u64 = len >= 8 && d->request && d->request->fixed_size == 8;
    if (have_u64)
        memcpy(&val, pl, 8);
    if (d == c->set_features && have_u64) {
        c->st.features_acked = val;
        c->st.features_acked_known = true;
    }
    if (d == c->set_proto && have_u64) {
        c->st.protocol_acked = val;
        c->maybe_proto = 0; /* a request settles it */
        c->st.protocol_acked_known = true;
    }
    if (d == c->set_backend_req_fd && ev->nfds == 1 && ev->fds[0] == VUF_FDKIND_SOCKET)
        c->st.backend_channel = true;
    p->ring_idx = -1;
    uint64_t idx;
    if (d == c->set_vring_addr && d->vring.present && vuf_field_read(&d->vring, pl, len, &idx) &&
        idx < MAX_RINGS) {
        p->ring_idx = (int)idx;
        p->ring_before = c->rings[idx];
    }
    if (d == c->reset_device) {
        /* "reset all internal device state to the initial state, ready to be
         * reinitialized": rings, memory and acked features are forgotten;
         * ownership, protocol features and the back-end channel stay */
        memcpy(c->rings_before, c->rings, sizeof c->rings);
        p->rings_saved = true;
        memset(c->rings, 0, sizeof c->rings);
        c->nreg = 0;
        c->st.nregions = 0;
        c->st.features_acked_known = false;
        c->st.features_acked = 0;
    }
    track_memory(c, d, pl, len);
    p->seen_before = c->seen[ch][d->id];
    c->seen[ch][d->id] = 1;
}

/* ---------- replies ---------- */

static void check_reply_fds(vuf_checker *c, const vuf_fd_rule *r, const vuf_event *ev,
                            const uint8_t *pl, size_t len)
{
    uint32_t mn, mx;
    if (!vuf_fd_rule_range(r, pl, len, &mn, &mx))
        return;
    if (ev->nfds < mn || ev->nfds > mx) {
        if (mn == mx)
            report(c, VUF_RULE_FD_REPLY_COUNT, ev->sender, "reply carries %zu fd%s, expected %u",
                   ev->nfds, vuf_plural(ev->nfds), mn);
        else
            report(c, VUF_RULE_FD_REPLY_COUNT, ev->sender,
                   "reply carries %zu fd%s, expected %u..%u", ev->nfds, vuf_plural(ev->nfds), mn,
                   mx);
        return;
    }
    for (size_t i = 0; i < ev->nfds; i++)
        if (!vuf_fdkind_matches((vuf_fdkind)ev->fds[i], r->fdkind))
            report(c, VUF_RULE_FD_KIND, ev->sender, "reply fd %zu is %s", i,
                   vuf_fdkind_name((vuf_fdkind)ev->fds[i]));
}

/* A failed request has no effect (the reply's own learning is kept). Only a
 * reply that was owed undoes anything (an unrequested one is a violation,
 * not an answer), and only while its request is the latest one: a late reply
 * on one channel must not roll back what requests on the other channel did
 * since (a stale snapshot made the checker forget REPLY_ACK). */
static void undo(vuf_checker *c, vuf_channel ch, const pending_t *p)
{
    vuf_checker_state learned = c->st;
    c->st = p->st_before;
    c->st.features_offered = learned.features_offered;
    c->st.features_offered_known = learned.features_offered_known;
    c->st.protocol_offered = learned.protocol_offered;
    c->st.protocol_offered_known = learned.protocol_offered_known;
    c->st.queue_num = learned.queue_num;
    c->seen[ch][p->def->id] = p->seen_before;
    c->nreg = p->nreg_before;
    memcpy(c->regions, c->regions_before, c->nreg * sizeof c->regions[0]);
    c->st.nregions = (uint32_t)c->nreg;
    if (p->ring_idx >= 0)
        c->rings[p->ring_idx] = p->ring_before;
    if (p->rings_saved)
        memcpy(c->rings, c->rings_before, sizeof c->rings);
}

/* Whether d's reply has a layout of its own (not only the ack form). */
static bool explicit_layout(const vuf_msg_def *d)
{
    return d && d->reply == VUF_REPLY_ALWAYS && d->reply_payload;
}

/* An answer to a message that owed none. To one that broke a MUST rule (a
 * request out of its framing, a "reply" from the requester) it is the
 * responder's reaction, whatever its form: the rst says how requests are
 * answered, not such messages. Success, in the ack form (a u64 0) or in the
 * message's own explicit layout (a responder that ignores the REPLY flag
 * answers GET_CONFIG as GET_CONFIG), is REACT-ACK-INVALID; any other form is
 * a refusal. To one that broke a lesser rule (outside its gate, NEED_REPLY
 * before REPLY_ACK is negotiated) it is a reaction too, as free as a close
 * (REACT-CLOSE); on_reply judges its form when it answers the pending
 * request. Otherwise it is an ack nobody asked for. */
static void unrequested(vuf_checker *c, vuf_side s, const vuf_msg_def *d, bool broke_must,
                        bool broke_any, unsigned line, const uint8_t *pl, size_t len)
{
    if (broke_any && !broke_must)
        return;
    if (broke_must) {
        uint64_t ack = 1, exp;
        if (len == 8)
            memcpy(&ack, pl, 8);
        bool success = len == 8 ? ack == 0
                                : explicit_layout(d) &&
                                      vuf_payload_check_size(d->reply_payload, VUF_SIZE_EXACT, pl,
                                                             len, &exp) == VUF_SZ_OK;
        if (success && s == VUF_SIDE_BACKEND)
            report(c, VUF_RULE_REACT_ACK_INVALID, s, "%s success to %s%s, which broke a MUST rule",
                   len == 8 ? "acked" : "replied", d ? d->name : "a message",
                   at_line(line, true).s);
        return;
    }
    report(c, VUF_RULE_REPLY_ACK_UNREQUESTED, s, "ack sent though %s",
           c->st.protocol_acked_known &&
                   (c->st.protocol_acked >>
                        vuf_spec_feature_bit(c->spec, VUF_SPACE_PROTOCOL, "REPLY_ACK") &
                    1)
               ? "NEED_REPLY was not set"
               : "REPLY_ACK is not negotiated");
}

/* A message from the requester with the REPLY flag: not a request, and
 * nothing answers it, but a responder that does not look at the flag
 * takes it for one: its answer is a reaction, judged against it. */
static void on_misflagged(vuf_checker *c, const vuf_event *ev, const vuf_msg_view *v)
{
    vuf_channel ch = ev->channel;
    owed_missing(c, ch, -1, "before the next request");
    pending_t *p = &c->pending[ch];
    memset(p, 0, sizeof *p);
    p->active = true;
    p->id = v->hdr.request;
    p->def = v->def;
    p->broke_must = c->must_in_event > 0; /* REPLY-DIRECTION, at least */
    p->broke_any = c->any_in_event > 0;
    p->event_index = c->events;
    p->line = ev->line;
    p->req_len = v->payload_len;
    /* a responder that takes it for a request may enable what it names */
    if (v->def == c->set_proto && v->payload_len >= 8) {
        uint64_t val;
        memcpy(&val, v->payload, 8);
        c->maybe_proto |= val;
    }
}

static void on_reply(vuf_checker *c, const vuf_event *ev, const vuf_msg_view *v)
{
    vuf_channel ch = ev->channel;
    vuf_side s = ev->sender;
    pending_t *p = &c->pending[ch];
    if (v->hdr.flags & VUF_F_NEED_REPLY)
        report(c, VUF_RULE_HDR_NEED_REPLY_ON_REPLY, s, "NEED_REPLY set on a reply");
    /* a responder answers in order: the oldest outstanding request with
     * this id (one the requester stopped waiting for yields to the latest
     * request with the same id) */
    for (size_t i = 0; i < c->nlate[ch]; i++) {
        const pending_t *l = &c->late[ch][i];
        if (l->id != v->hdr.request)
            continue;
        /* one that may never be answered (timed out, optional) yields to
         * the latest request with its id, unless other messages wait
         * between them: a responder answers in order, so this reply is
         * then the earlier one's (found by `vufuzz fuzz` against
         * qemu-storage-daemon, which answered GET_INFLIGHT_FD, then the
         * SET_BACKEND_REQ_FD sent after it; golden
         * REPLY-UNSOLICITED.yielded-between.pass) */
        bool between = i + 1 < c->nlate[ch] || c->nunowed[ch] > 0;
        if (!l->pipelined && p->active && p->id == l->id && !between)
            continue;
        late_skipped(c, ch, s, i);
        memmove(&c->late[ch][0], &c->late[ch][1], (c->nlate[ch] - 1) * sizeof(pending_t));
        c->nlate[ch]--;
        return; /* accepted, not judged: the requester had gone on */
    }
    if (p->active && v->hdr.request == p->id)
        late_skipped(c, ch, s, c->nlate[ch]); /* the latest answered first */
    if (!p->active || v->hdr.request != p->id) {
        /* an answer to an earlier message that owed none? */
        for (size_t i = 0; i < c->nunowed[ch]; i++) {
            const unowed_t u = c->unowed[ch][i];
            if (u.id != v->hdr.request)
                continue;
            /* the responder read on to it: the ones before got nothing */
            c->nunowed[ch] -= i + 1;
            memmove(&c->unowed[ch][0], &c->unowed[ch][i + 1], c->nunowed[ch] * sizeof(unowed_t));
            const char *saved = c->cur_name;
            c->cur_name = u.def ? u.def->name : saved;
            unrequested(c, s, u.def, u.broke_must, u.broke_any, u.line, v->payload, v->payload_len);
            c->cur_name = saved;
            return;
        }
    }
    if (!p->active) {
        report(c, VUF_RULE_REPLY_UNSOLICITED, s,
               "reply with no outstanding request on this channel");
        return;
    }
    if (v->hdr.request != p->id) {
        report(c, VUF_RULE_REPLY_ID_MISMATCH, s, "reply id %u to %s (id %u%s)", v->hdr.request,
               pname(p), p->id, at_line(p->line, false).s);
        p->active = false;
        return;
    }
    const vuf_msg_def *d = p->def;
    const uint8_t *pl = v->payload;
    size_t len = v->payload_len;
    /* It read on to this request: a close from now on is no reaction to an
     * earlier broken one, unless this one broke a rule too (a responder may
     * answer a request it found wrong, then close) */
    if (!p->broke_any)
        c->broke_unanswered[ch] = false;
    /* It answered the latest: the ones before got nothing, but one with the
     * same id, which this reply may answer instead (in order: a second
     * reply with that id then answers the latest). */
    size_t keep = 0;
    for (size_t i = 0; i < c->nunowed[ch]; i++)
        if (c->unowed[ch][i].id == p->id)
            c->unowed[ch][keep++] = c->unowed[ch][i];
    c->nunowed[ch] = keep;
    if (!p->owed) {
        unrequested(c, s, d, p->broke_must, p->broke_any, p->line, pl, len);
        if (p->broke_must) {
            p->active = false;
            return;
        }
    }
    bool can_fail = false;
    bool failed = vuf_msgcheck_reply_failed(d, p->owed, pl, len, &can_fail);
    if (!d) {
        /* the answer to an unknown request can only be an ack, a failure */
        if (len != 8)
            report(c, VUF_RULE_SIZE_REPLY, s, "reply payload is %zu byte%s, an ack needs 8", len,
                   vuf_plural(len));
        else if (!failed && s == VUF_SIDE_BACKEND)
            report(c, VUF_RULE_REACT_ACK_INVALID, s, "acked success to an unknown request");
        p->active = false;
        return;
    }
    bool explicit_reply = p->owed == VUF_OWED_EXPLICIT;
    /* a request that broke a lesser rule (outside its gate) owed nothing,
     * but a responder that answers it may answer as it does when the
     * reply is owed: in the explicit layout, or in the ack form below */
    if (!p->owed && p->broke_any && !p->broke_must && explicit_layout(d))
        explicit_reply = true;
    const vuf_payload_def *lay = vuf_reply_layout(c->spec, d, explicit_reply);
    uint64_t exp = 0;
    /* (a provisional message, from a later rst than the table follows, or
     * one whose feature the responder may lack (an optional reply) may be
     * unknown to it: a NEED_REPLY one gets the ack form too) */
    bool unknown_to_peer = (d->provisional || p->optional) && p->need_reply;
    if (explicit_reply && (p->broke_any || unknown_to_peer) && len == 8 &&
        vuf_payload_check_size(lay, VUF_SIZE_EXACT, pl, len, &exp) != VUF_SZ_OK) {
        /* A request that broke a rule (out of its gate, malformed) answered
         * with a u64: the ack form, the back-end's reaction to a request
         * it refused or does not know; 0 is success (REACT-ACK-INVALID
         * below), anything else a failure (Communication: "If back-end
         * detects some error ..."; REPLY_ACK: "zero on success or non-zero
         * on failure"). Its explicit layout (and fds) are not owed then. */
        uint64_t ack;
        memcpy(&ack, pl, 8);
        can_fail = true;
        failed = ack != 0;
        explicit_reply = false;
        lay = vuf_reply_layout(c->spec, d, false);
    } else if (explicit_reply && d->reply_size_matches_request) {
        /* the request's size, or empty (0 bytes or the fixed part: an error) */
        if (len != p->req_len && len != 0 && len != lay->fixed_size)
            report(c, VUF_RULE_SIZE_REPLY_MATCH, s,
                   "reply payload is %zu byte%s, the request's is %zu", len, vuf_plural(len),
                   p->req_len);
    } else if (!(explicit_reply && d->reply_error == VUF_RERR_EMPTY && len == 0)) {
        vuf_size_verdict sv = vuf_payload_check_size(lay, VUF_SIZE_EXACT, pl, len, &exp);
        if (sv != VUF_SZ_OK && p->broke_must)
            failed = true; /* the reaction to a request that broke a MUST, in no form
                            * the rst defines (libvhost-user echoes an empty
                            * payload): a refusal, as in unrequested() */
        else if (sv != VUF_SZ_OK)
            report_quoted(c, VUF_RULE_SIZE_REPLY, explicit_reply ? &d->reply_payload_quote : NULL,
                          d->section, s, "reply payload is %zu byte%s, %s needs %llu", len,
                          vuf_plural(len), lay->name, (unsigned long long)exp);
    }
    /* a failure hands nothing over: no fd with an error (SET_DEVICE_STATE_FD);
     * nor need the refusal of a request that broke a rule, or of one whose
     * feature the responder may lack (optional), whose form the rst leaves
     * open (libvhost-user answers GET_INFLIGHT_FD outside its
     * gate with the request's zeroed description and no fd) */
    const vuf_fd_rule none = {.kind = VUF_FDRULE_EXACT};
    bool bare_refusal = (p->broke_any || p->optional) && ev->nfds == 0;
    check_reply_fds(c, explicit_reply && !failed && !bare_refusal ? &d->reply_fds : &none, ev, pl,
                    len);
    uint64_t val = 0;
    bool have_u64 = len == 8 && lay->fixed_size == 8;
    if (have_u64)
        memcpy(&val, pl, 8);
    if (d == c->get_features && have_u64) {
        c->st.features_offered = val;
        c->st.features_offered_known = true;
    } else if (d == c->get_proto && have_u64) {
        c->st.protocol_offered = val;
        c->st.protocol_offered_known = true;
    } else if (d == c->get_queue_num && have_u64) {
        c->st.queue_num = val > 0xffffffffu ? 0xffffffffu : (uint32_t)val;
    }
    if (can_fail && !failed && p->broke_must && s == VUF_SIDE_BACKEND)
        report(c, VUF_RULE_REACT_ACK_INVALID, s, "replied success to %s, which broke a MUST rule",
               d->name);
    if (failed && p->saved && p->owed && p->serial == c->requests)
        undo(c, ch, p);
    p->active = false;
}

/* ---------- notes ---------- */

static void on_note(vuf_checker *c, const vuf_event *ev)
{
    vuf_channel ch = ev->channel;
    pending_t *p = &c->pending[ch];
    switch (ev->note) {
    case VUF_NOTE_REFUSE:
        /* the responder refused the latest request: its NACK or close follows */
        if (p->active && ev->sender == responder_of(c, ch))
            p->refused = true;
        break;
    case VUF_NOTE_TIMEOUT:
        /* the requester stopped waiting: a reply may still come, late */
        if (p->active)
            p->timed_out = true;
        break;
    case VUF_NOTE_LATE:
    case VUF_NOTE_NONE:
        break; /* a late reply was ignored: it was judged when it came */
    }
}

/* ---------- events ---------- */

size_t vuf_checker_feed(vuf_checker *c, const vuf_event *ev)
{
    size_t n0 = c->nv;
    c->cur = ev;
    c->cur_name = NULL;
    c->must_in_event = 0;
    c->any_in_event = 0;
    c->gate_in_event = 0;
    vuf_channel ch = ev->channel < VUF_CHAN_COUNT ? ev->channel : VUF_CHAN_FRONTEND;
    if (ev->kind == VUF_EV_OPEN) {
        c->closed[ch] = false;
        c->broke_unanswered[ch] = false;
    } else if (ev->kind == VUF_EV_CLOSE) {
        owed_missing(c, ch, (int)ev->sender, "before the channel closed");
        c->closed[ch] = true;
        c->broke_unanswered[ch] = false;
    } else if (ev->kind == VUF_EV_NOTE) {
        on_note(c, ev);
    } else {
        vuf_msg_view v;
        if (!vuf_msg_decode(c->spec, ch, ev->data, ev->len, &v)) {
            report(c, VUF_RULE_HDR_SIZE, ev->sender, "%zu byte%s: shorter than the 12-byte header",
                   ev->len, vuf_plural(ev->len));
            goto out;
        }
        snprintf(c->idname, sizeof c->idname, "%u", v.hdr.request);
        c->cur_name = v.def ? v.def->name : c->idname;
        if (c->closed[ch])
            report(c, VUF_RULE_CHAN_CLOSED, ev->sender, "message on the closed %s channel",
                   ch == VUF_CHAN_BACKEND ? "back-end" : "main");
        vuf_msgcheck_state vs;
        view(c, &vs);
        vuf_msgcheck_msg m = {
            .channel = ch, .sender = ev->sender, .v = &v, .fd_kinds = ev->fds, .nfds = ev->nfds};
        vuf_msgcheck_frame(c->spec, &m, &vs, on_finding, c);
        const vuf_channel_def *cd = vuf_spec_channel(c->spec, ch);
        if (ev->sender == cd->initiator && !v.is_reply)
            on_request(c, ev, &v);
        else if (ev->sender == cd->initiator)
            on_misflagged(c, ev, &v);
        else if (ev->sender != cd->initiator && v.is_reply)
            on_reply(c, ev, &v);
    }
out:
    if (ev->kind == VUF_EV_MSG && c->any_in_event &&
        ev->sender == vuf_spec_channel(c->spec, ch)->initiator)
        c->broke_unanswered[ch] = true; /* a request, or anything else it sent */
    c->cur = NULL;
    c->cur_name = NULL;
    c->events++;
    return c->nv - n0;
}

/* A reply that never came before the conversation ended. */
static void missing_at_end(vuf_checker *c, vuf_channel ch, const pending_t *p)
{
    c->cur_name = p->def ? p->def->name : NULL;
    vuf_violation *v = add(c, VUF_RULE_REPLY_MISSING, VUF_MUST, responder_of(c, ch), p->line);
    if (v)
        snprintf(v->text, sizeof v->text, "no %s to %s%s before the conversation ended",
                 p->owed == VUF_OWED_EXPLICIT ? "reply" : "ack", pname(p),
                 at_line(p->line, true).s);
    c->cur_name = NULL;
}

size_t vuf_checker_finish(vuf_checker *c)
{
    size_t n0 = c->nv;
    for (int ch = 0; ch < VUF_CHAN_COUNT; ch++) {
        pending_t *p = &c->pending[ch];
        if (p->active && p->owed && !p->timed_out && !p->optional)
            missing_at_end(c, (vuf_channel)ch, p);
        for (size_t i = 0; i < c->nlate[ch]; i++)
            if (c->late[ch][i].pipelined)
                missing_at_end(c, (vuf_channel)ch, &c->late[ch][i]);
        p->active = false;
        c->nlate[ch] = 0;
    }
    return c->nv - n0;
}

size_t vuf_checker_end_capture(vuf_checker *c)
{
    for (int ch = 0; ch < VUF_CHAN_COUNT; ch++) {
        for (size_t k = 0; k <= c->nlate[ch]; k++) {
            pending_t *p = k ? &c->late[ch][k - 1] : &c->pending[ch];
            if (p->active && p->owed && !p->optional && !p->timed_out && !c->closed[ch] &&
                c->nincomplete < sizeof c->incomplete / sizeof c->incomplete[0]) {
                vuf_incomplete *in = &c->incomplete[c->nincomplete++];
                in->channel = (vuf_channel)ch;
                in->responder = responder_of(c, (vuf_channel)ch);
                in->line = p->line;
                snprintf(in->msg, sizeof in->msg, "%s", p->def ? p->def->name : "?");
            }
            p->active = false;
        }
        c->nlate[ch] = 0;
    }
    return c->nincomplete;
}

bool vuf_checker_reply_owed(const vuf_checker *c, vuf_channel ch)
{
    const pending_t *p = &c->pending[ch < VUF_CHAN_COUNT ? ch : VUF_CHAN_FRONTEND];
    return p->active && p->owed && !p->optional && !c->closed[ch];
}

bool vuf_checker_reply_optional(const vuf_checker *c, vuf_channel ch)
{
    const pending_t *p = &c->pending[ch < VUF_CHAN_COUNT ? ch : VUF_CHAN_FRONTEND];
    return p->active && p->owed && p->optional && !c->closed[ch];
}
