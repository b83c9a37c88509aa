/* SPDX-License-Identifier: Apache-2.0 */
/* The rule engine: an I/O-free observer of a conversation. Every check reads
 * a column of the message's table definition; only feature negotiation and
 * memory tracking know messages by name, looked up once in the table. */
#include "vuf_checker.h"
#include "vuf_codec.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAX_REGIONS 64

typedef struct {
    bool active;
    uint32_t id;
    const vuf_msg_def *def;
    bool explicit_reply; /* the explicit reply payload is owed */
    bool ack_expected;   /* an ack is owed */
    bool broke_must;     /* the request broke a MUST rule */
    bool refused;        /* the responder said it refused it (a REFUSE note) */
    size_t event_index;
    size_t req_len; /* request payload bytes */
    /* what the request changed, restored if its reply says it failed */
    bool saved;
    size_t serial; /* the checker's request count when it came: undo only the latest */
    vuf_checker_state st_before;
    size_t nreg_before;
    uint8_t seen_before; /* seen[] of the request's id before it */
} pending_t;

struct vuf_checker {
    const vuf_spec *spec;
    /* negotiation-carrying messages, looked up by name in the table */
    const vuf_msg_def *get_features, *set_features, *get_proto, *set_proto, *get_queue_num,
        *set_backend_req_fd, *set_mem_table, *add_mem_reg, *rem_mem_reg, *iotlb_msg;
    int bit_reply_ack, bit_backend_req;
    vuf_checker_state st;
    bool closed[VUF_CHAN_COUNT];
    uint8_t *seen[VUF_CHAN_COUNT]; /* by id, for `after` and reply-always-if after: */
    uint32_t max_id[VUF_CHAN_COUNT];
    pending_t pending[VUF_CHAN_COUNT];
    struct {
        uint64_t uaddr, size;
    } regions[MAX_REGIONS], regions_before[MAX_REGIONS];
    size_t nreg;
    size_t events;
    size_t requests; /* requests seen, both channels */
    vuf_violation *v;
    size_t nv, capv;
    const vuf_event *cur;
    const char *cur_name; /* valid while an event is fed */
    char idname[16];      /* name of an id not in the table */
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
    c->iotlb_msg = by_name(spec, "IOTLB_MSG");
    c->bit_reply_ack = vuf_spec_feature_bit(spec, VUF_SPACE_PROTOCOL, "REPLY_ACK");
    c->bit_backend_req = vuf_spec_feature_bit(spec, VUF_SPACE_PROTOCOL, "BACKEND_REQ");
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
    for (int ch = 0; ch < VUF_CHAN_COUNT; ch++)
        memset(c->seen[ch], 0, (size_t)c->max_id[ch] + 1);
    c->nreg = 0;
    c->events = 0;
    c->requests = 0;
    c->nv = 0;
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
        n += c->v[i].rule->level == VUF_MUST && c->v[i].side == side;
    return n;
}

void vuf_checker_state_get(const vuf_checker *c, vuf_checker_state *st)
{
    *st = c->st;
}

static void report(vuf_checker *c, const char *rule, vuf_side side, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

static void report(vuf_checker *c, const char *rule, vuf_side side, const char *fmt, ...)
{
    const vuf_rule_info *ri = vuf_rule_find(rule);
    if (!ri)
        return;
    if (c->nv == c->capv) {
        size_t nc = c->capv ? c->capv * 2 : 16;
        vuf_violation *nv = realloc(c->v, nc * sizeof *nv);
        if (!nv)
            return;
        c->v = nv;
        c->capv = nc;
    }
    vuf_violation *v = &c->v[c->nv++];
    memset(v, 0, sizeof *v);
    v->rule = ri;
    v->side = side;
    v->event_index = c->events;
    v->line = c->cur ? c->cur->line : 0;
    v->channel = c->cur ? c->cur->channel : VUF_CHAN_FRONTEND;
    snprintf(v->msg, sizeof v->msg, "%s", c->cur_name ? c->cur_name : "-");
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(v->text, sizeof v->text, fmt, ap);
    va_end(ap);
}

static bool proto_acked(const vuf_checker *c, int bit)
{
    return bit >= 0 && c->st.protocol_acked_known && (c->st.protocol_acked >> bit & 1);
}

static bool seen(const vuf_checker *c, vuf_channel ch, uint32_t id)
{
    return id <= c->max_id[ch] && c->seen[ch][id];
}

static vuf_side responder_of(const vuf_checker *c, vuf_channel ch)
{
    const vuf_channel_def *cd = vuf_spec_channel(c->spec, ch);
    return cd->initiator == VUF_SIDE_FRONTEND ? VUF_SIDE_BACKEND : VUF_SIDE_FRONTEND;
}

/* A reply is owed on ch and will not come. `closer` is the side that closed
 * the channel, or -1 when the next request came or the conversation ended.
 * A responder that closes instead of answering reacts to the request (the
 * spec lets it close on errors), which is a finding only when the request
 * broke no rule. A requester that closes gave up waiting: the responder
 * could no longer answer, and that is nobody's violation. */
static void owed_missing(vuf_checker *c, vuf_channel ch, int closer, const char *when)
{
    pending_t *p = &c->pending[ch];
    if (p->active && (p->explicit_reply || p->ack_expected)) {
        vuf_side responder = responder_of(c, ch);
        bool requester_closed = closer >= 0 && closer != (int)responder;
        if (closer == (int)responder) {
            /* a responder that gave its reason (a REFUSE note) refused a
             * request it could not carry out: a device's own limit is not
             * in the table, and closing is how a reply without a failure
             * form fails */
            if (!p->broke_must && !p->refused)
                report(c, "REACT-CLOSE", responder,
                       "closed the channel instead of answering %s (event %zu), which broke no "
                       "rule",
                       p->def ? p->def->name : "?", p->event_index);
        } else if (!requester_closed) {
            report(c, "REPLY-MISSING", responder, "no %s to %s (event %zu) %s",
                   p->explicit_reply ? "reply" : "ack", p->def ? p->def->name : "?", p->event_index,
                   when);
        }
    }
    p->active = false;
}

/* u64 overflow of every span of a payload, its elements' included. */
static void check_spans(vuf_checker *c, const vuf_payload_def *lay, const uint8_t *pl, size_t len,
                        vuf_side s)
{
    if (!lay)
        return;
    for (size_t i = 0; i < lay->nspans; i++) {
        uint64_t base, size;
        if (vuf_span_read(lay, i, pl, len, &base, &size) && size && base + (size - 1) < base)
            report(c, "VALUE-SPAN", s, "%s 0x%llx + %s 0x%llx overflows",
                   lay->fields[lay->spans[i].base_field].name, (unsigned long long)base,
                   lay->fields[lay->spans[i].size_field].name, (unsigned long long)size);
    }
    if (lay->varray_field < 0 || len < lay->fixed_size)
        return;
    const vuf_field_def *va = &lay->fields[lay->varray_field];
    if (!va->element || !va->element->nspans)
        return;
    /* hostile count: bound by the layout's max and by the bytes present */
    uint64_t n = vuf_payload_count(lay, pl, len), present = (len - lay->fixed_size) / va->size;
    if (n > present)
        n = present;
    if (n > va->max_count)
        n = va->max_count;
    for (uint64_t k = 0; k < n; k++)
        check_spans(c, va->element, pl + va->offset + k * va->size, va->size, s);
}

static void regions_check_iotlb(vuf_checker *c, const vuf_msg_def *d, const uint8_t *pl, size_t len,
                                vuf_side sender)
{
    vuf_field_ref rt, ru, rs;
    uint64_t type, uaddr, size;
    if (!vuf_field_resolve(d->request, "type", &rt) ||
        !vuf_field_resolve(d->request, "uaddr", &ru) ||
        !vuf_field_resolve(d->request, "size", &rs) || !vuf_field_read(&rt, pl, len, &type) ||
        !vuf_field_read(&ru, pl, len, &uaddr) || !vuf_field_read(&rs, pl, len, &size) ||
        type != 2 || c->nreg == 0)
        return;
    for (size_t i = 0; i < c->nreg; i++) {
        uint64_t a = c->regions[i].uaddr, n = c->regions[i].size;
        if (uaddr >= a && size <= n && uaddr - a <= n - size)
            return;
    }
    report(c, "IOTLB-OUTSIDE-MEM", sender,
           "IOTLB update [0x%llx, +0x%llx) is outside every memory region",
           (unsigned long long)uaddr, (unsigned long long)size);
}

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
            if (region_at(d->request, pre, pl, len, &ua, &sz)) {
                c->regions[c->nreg].uaddr = ua;
                c->regions[c->nreg++].size = sz;
            }
        }
    } else if (d == c->add_mem_reg && c->nreg < MAX_REGIONS &&
               region_at(d->request, "", pl, len, &ua, &sz)) {
        c->regions[c->nreg].uaddr = ua;
        c->regions[c->nreg++].size = sz;
    } else if (d == c->rem_mem_reg && region_at(d->request, "", pl, len, &ua, &sz)) {
        for (size_t i = 0; i < c->nreg; i++)
            if (c->regions[i].uaddr == ua && c->regions[i].size == sz) {
                c->regions[i] = c->regions[--c->nreg];
                break;
            }
    }
    c->st.nregions = (uint32_t)c->nreg;
}

static void check_fds(vuf_checker *c, const vuf_fd_rule *r, const vuf_event *ev, const uint8_t *pl,
                      size_t len, vuf_side sender, bool is_reply)
{
    uint32_t mn, mx;
    if (!vuf_fd_rule_range(r, pl, len, &mn, &mx))
        return; /* payload too short to read the rule's field: a size violation already */
    size_t n = ev->nfds;
    if (n < mn || n > mx) {
        if (is_reply)
            report(c, "FD-REPLY-COUNT", sender, "reply carries %zu fds, expected %u..%u", n, mn,
                   mx);
        else if (r->kind == VUF_FDRULE_EXACT && r->a == 0)
            report(c, "FD-UNEXPECTED", sender, "%zu fds on a message that takes none", n);
        else if (r->kind == VUF_FDRULE_NOFD)
            report(c, "FD-NOFD", sender, "%zu fds with the no-fd bit %s (expected %u)", n,
                   mn ? "clear" : "set", mn);
        else if (r->kind == VUF_FDRULE_COUNT)
            report(c, "FD-COUNT-FIELD", sender, "%zu fds but %s says %u", n, r->ref.path, mn);
        else
            report(c, "FD-COUNT", sender, "%zu fds, expected %u%s%u", n, mn, mn == mx ? "" : "..",
                   mn == mx ? mn : mx);
        return;
    }
    if (!is_reply && r->has_should && n != r->should)
        report(c, "FD-SHOULD", sender, "%zu fds; the spec recommends %u", n, r->should);
    for (size_t i = 0; i < n; i++)
        if (!vuf_fdkind_matches((vuf_fdkind)ev->fds[i], r->fdkind)) {
            char rs[96];
            vuf_fd_rule_str(r, rs, sizeof rs);
            report(c, "FD-KIND", sender, "fd %zu is %s, the table wants %s", i,
                   vuf_fdkind_name((vuf_fdkind)ev->fds[i]), rs);
        }
}

static void on_request(vuf_checker *c, const vuf_event *ev, const vuf_msg_view *v, size_t before)
{
    vuf_channel ch = ev->channel;
    vuf_side s = ev->sender;
    const vuf_msg_def *d = v->def;
    const uint8_t *pl = v->payload;
    size_t len = v->payload_len;
    owed_missing(c, ch, -1, "before the next request");
    c->requests++;
    bool reply_ack = proto_acked(c, c->bit_reply_ack);
    if (v->hdr.request == 0 || !d) {
        if (v->hdr.request == 0)
            report(c, "HDR-ID-ZERO", s, "request id 0 is invalid");
        else
            report(c, "HDR-ID-UNKNOWN", s, "id %u is not a %s-channel message", v->hdr.request,
                   vuf_channel_name(ch));
        /* NEED_REPLY may be set on any command (REPLY_ACK): a failure ack
         * may answer even an unknown one */
        pending_t *p = &c->pending[ch];
        memset(p, 0, sizeof *p);
        p->active = true;
        p->id = v->hdr.request;
        p->ack_expected = (v->hdr.flags & VUF_F_NEED_REPLY) && reply_ack;
        p->broke_must = true;
        p->event_index = c->events;
        p->req_len = len;
        return;
    }
    if ((v->hdr.flags & VUF_F_NEED_REPLY) && !reply_ack)
        report(c, "REPLY-NEED-REPLY-NO-ACK", s, "NEED_REPLY set but REPLY_ACK is not negotiated");
    uint64_t exp = 0;
    switch (vuf_payload_check_size(d->request, d->size_rule, pl, len, &exp)) {
    case VUF_SZ_OK:
        break;
    case VUF_SZ_COUNT_OVER:
        report(c, "SIZE-COUNT-MAX", s, "count field %llu is above the layout's max %u",
               (unsigned long long)vuf_payload_count(d->request, pl, len),
               d->request->fields[d->request->varray_field].max_count);
        break;
    default:
        report(c, "SIZE-REQUEST", s, "payload is %zu bytes, the table's layout %s needs %llu", len,
               d->request ? d->request->name : "none", (unsigned long long)exp);
    }
    for (size_t i = 0; i < d->nchecks; i++) {
        const vuf_value_check *k = &d->checks[i];
        uint64_t val;
        if (!vuf_field_read(&k->ref, pl, len, &val))
            continue;
        if (k->kind == VUF_CHECK_MASK) {
            if (val & ~k->values[0])
                report(c, "VALUE-MASK", s, "%s = 0x%llx has bits outside 0x%llx", k->ref.path,
                       (unsigned long long)val, (unsigned long long)k->values[0]);
        } else {
            bool ok = false;
            for (size_t j = 0; j < k->nvalues; j++)
                ok |= val == k->values[j];
            if (!ok)
                report(c, "VALUE-IN", s, "%s = %llu is not an allowed value", k->ref.path,
                       (unsigned long long)val);
        }
    }
    check_spans(c, d->request, pl, len, s);
    uint64_t idx;
    if (d->vring.present && c->st.queue_num && vuf_field_read(&d->vring, pl, len, &idx) &&
        idx >= c->st.queue_num)
        report(c, "VRING-INDEX", s, "vring %llu, but GET_QUEUE_NUM said %u queues",
               (unsigned long long)idx, c->st.queue_num);
    const vuf_channel_def *cd = vuf_spec_channel(c->spec, ch);
    if (ev->nfds > cd->max_fds)
        report(c, "FD-CHANNEL-MAX", s, "%zu fds, the channel allows %u", ev->nfds, cd->max_fds);
    if (ev->nfds && cd->has_fd_gate && !proto_acked(c, (int)cd->fd_gate_bit)) {
        const vuf_feature_def *f = vuf_spec_feature(c->spec, VUF_SPACE_PROTOCOL, cd->fd_gate_bit);
        report(c, "FD-BACKEND-SEND-FD", s, "fds on the back-end channel without %s",
               f ? f->name : "its fd gate");
    }
    check_fds(c, &d->fds, ev, pl, len, s, false);
    uint64_t pmiss = d->gate_protocol & ~(c->st.protocol_acked_known ? c->st.protocol_acked : 0);
    uint64_t vmiss = d->gate_virtio & ~(c->st.features_acked_known ? c->st.features_acked : 0);
    if (pmiss || vmiss) {
        char b[256];
        if (pmiss)
            vuf_feature_mask_str(c->spec, VUF_SPACE_PROTOCOL, pmiss, b, sizeof b);
        else
            vuf_feature_mask_str(c->spec, VUF_SPACE_VIRTIO, vmiss, b, sizeof b);
        report(c,
               ch == VUF_CHAN_BACKEND ? "GATE-BACKEND-MSG"
               : pmiss                ? "GATE-PROTOCOL"
                                      : "GATE-VIRTIO",
               s, "needs %s negotiated", b);
    }
    if (d->gate_bit30 == VUF_BIT30_OFFERED &&
        !(c->st.features_offered_known && (c->st.features_offered >> 30 & 1)))
        report(c, "GATE-BIT30-OFFERED", s, "GET_FEATURES did not offer PROTOCOL_FEATURES (bit 30)");
    if (d->gate_bit30 == VUF_BIT30_NEGOTIATED &&
        !(c->st.features_acked_known && (c->st.features_acked >> 30 & 1)))
        report(c, "GATE-BIT30-NEGOTIATED", s, "PROTOCOL_FEATURES (bit 30) is not acked");
    for (size_t i = 0; i < d->nafter; i++)
        if (!seen(c, ch, d->after[i]->id))
            report(c, "ORDER-AFTER", s, "%s must come first", d->after[i]->name);
    /* what this request changes is undone if its reply reports a failure */
    pending_t *p = &c->pending[ch];
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
        if (!c->st.features_offered_known)
            report(c, "FEAT-SET-BEFORE-GET", s, "SET_FEATURES before GET_FEATURES's reply");
        else if (val & ~c->st.features_offered)
            report(c, "FEAT-SUBSET", s, "acks 0x%llx, which was not offered",
                   (unsigned long long)(val & ~c->st.features_offered));
        c->st.features_acked = val;
        c->st.features_acked_known = true;
    }
    if (d == c->set_proto && have_u64) {
        if (!c->st.protocol_offered_known)
            report(c, "FEAT-PROTO-SET-BEFORE-GET", s,
                   "SET_PROTOCOL_FEATURES before GET_PROTOCOL_FEATURES's reply");
        else if (val & ~c->st.protocol_offered)
            report(c, "FEAT-PROTO-SUBSET", s, "enables 0x%llx, which was not offered",
                   (unsigned long long)(val & ~c->st.protocol_offered));
        for (unsigned b = 0; b < 64; b++) {
            const vuf_feature_def *f = vuf_spec_feature(c->spec, VUF_SPACE_PROTOCOL, b);
            if ((val >> b & 1) && f && (f->requires & ~val)) {
                char need[256];
                vuf_feature_mask_str(c->spec, VUF_SPACE_PROTOCOL, f->requires & ~val, need,
                                     sizeof need);
                report(c, "FEAT-DEPENDENCY", s, "%s without %s", f->name, need);
            }
        }
        c->st.protocol_acked = val;
        c->st.protocol_acked_known = true;
    }
    if (d == c->set_backend_req_fd && ev->nfds == 1 && ev->fds[0] == VUF_FDKIND_SOCKET)
        c->st.backend_channel = true;
    if (d == c->iotlb_msg)
        regions_check_iotlb(c, d, pl, len, s);
    track_memory(c, d, pl, len);
    bool explicit_reply =
        d->reply == VUF_REPLY_ALWAYS ||
        (d->reply_cond == VUF_COND_PROTOCOL && proto_acked(c, (int)d->reply_cond_bit)) ||
        (d->reply_cond == VUF_COND_AFTER && seen(c, ch, d->reply_cond_after->id));
    p->active = true;
    p->id = d->id;
    p->def = d;
    p->explicit_reply = explicit_reply;
    p->ack_expected = !explicit_reply && d->reply != VUF_REPLY_NONE &&
                      (v->hdr.flags & VUF_F_NEED_REPLY) && reply_ack;
    p->broke_must = vuf_checker_must_count(c, s) > before;
    p->event_index = c->events;
    p->req_len = len;
    p->seen_before = c->seen[ch][d->id];
    c->seen[ch][d->id] = 1;
}

static void on_reply(vuf_checker *c, const vuf_event *ev, const vuf_msg_view *v)
{
    vuf_channel ch = ev->channel;
    vuf_side s = ev->sender;
    pending_t *p = &c->pending[ch];
    if (v->hdr.flags & VUF_F_NEED_REPLY)
        report(c, "HDR-NEED-REPLY-ON-REPLY", s, "NEED_REPLY set on a reply");
    if (!p->active) {
        report(c, "REPLY-UNSOLICITED", s, "reply with no outstanding request on this channel");
        return;
    }
    if (v->hdr.request != p->id) {
        report(c, "REPLY-ID-MISMATCH", s, "reply id %u to request %s (id %u)", v->hdr.request,
               p->def ? p->def->name : "an unknown request", p->id);
        p->active = false;
        return;
    }
    const vuf_msg_def *d = p->def;
    const uint8_t *pl = v->payload;
    size_t len = v->payload_len;
    if (!p->explicit_reply && !p->ack_expected) {
        report(c, "REPLY-ACK-UNREQUESTED", s, "ack sent though %s",
               proto_acked(c, c->bit_reply_ack) ? "NEED_REPLY was not set"
                                                : "REPLY_ACK is not negotiated");
    }
    if (!d) {
        /* the answer to an unknown request can only be an ack, a failure */
        uint64_t val = 0;
        if (len != 8)
            report(c, "SIZE-REPLY", s, "reply payload is %zu bytes, an ack needs 8", len);
        else if (memcpy(&val, pl, 8), val == 0 && s == VUF_SIDE_BACKEND)
            report(c, "REACT-ACK-INVALID", s, "acked success to an unknown request");
        p->active = false;
        return;
    }
    const vuf_payload_def *lay = vuf_reply_layout(c->spec, d, p->explicit_reply);
    uint64_t exp = 0;
    if (p->explicit_reply && d->reply_size_matches_request) {
        /* the request's size, or empty (0 bytes or the fixed part: an error) */
        if (len != p->req_len && len != 0 && len != lay->fixed_size)
            report(c, "SIZE-REPLY-MATCH", s, "reply payload is %zu bytes, the request's is %zu",
                   len, p->req_len);
    } else {
        vuf_size_verdict sv = vuf_payload_check_size(lay, VUF_SIZE_EXACT, pl, len, &exp);
        if (sv != VUF_SZ_OK)
            report(c, "SIZE-REPLY", s, "reply payload is %zu bytes, %s needs %llu", len, lay->name,
                   (unsigned long long)exp);
    }
    const vuf_fd_rule none = {.kind = VUF_FDRULE_EXACT};
    check_fds(c, p->explicit_reply ? &d->reply_fds : &none, ev, pl, len, s, true);
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
    /* did the reply say "failed"? an ack or a u64 status that is non-zero, or
     * the empty form of an explicit reply */
    bool status_reply = !p->explicit_reply || d->reply_error == VUF_RERR_U64;
    bool failed = (status_reply && have_u64 && val != 0) ||
                  (p->explicit_reply && d->reply_error == VUF_RERR_EMPTY && len == 0);
    bool can_fail = status_reply || d->reply_error == VUF_RERR_EMPTY;
    if (can_fail && !failed && p->broke_must && s == VUF_SIDE_BACKEND)
        report(c, "REACT-ACK-INVALID", s, "replied success to %s, which broke a MUST rule",
               d->name);
    /* A failed request has no effect (the reply's own learning is kept). Only
     * a reply that was owed undoes anything (an unrequested one is a violation,
     * not an answer), and only while its request is the latest one: a late
     * reply on one channel must not roll back what requests on the other
     * channel did since (a stale snapshot made the checker forget REPLY_ACK). */
    if (failed && p->saved && (p->explicit_reply || p->ack_expected) && p->serial == c->requests) {
        vuf_checker_state learned = c->st;
        c->st = p->st_before;
        c->st.features_offered = learned.features_offered;
        c->st.features_offered_known = learned.features_offered_known;
        c->st.protocol_offered = learned.protocol_offered;
        c->st.protocol_offered_known = learned.protocol_offered_known;
        c->st.queue_num = learned.queue_num;
        c->seen[ch][d->id] = p->seen_before;
        c->nreg = p->nreg_before;
        memcpy(c->regions, c->regions_before, c->nreg * sizeof c->regions[0]);
        c->st.nregions = (uint32_t)c->nreg;
    }
    p->active = false;
}

size_t vuf_checker_feed(vuf_checker *c, const vuf_event *ev)
{
    size_t n0 = c->nv;
    c->cur = ev;
    c->cur_name = NULL;
    vuf_channel ch = ev->channel < VUF_CHAN_COUNT ? ev->channel : VUF_CHAN_FRONTEND;
    if (ev->kind == VUF_EV_NOTE) {
        /* a side's own account of what it did */
        if (ev->note == VUF_NOTE_REFUSE && c->pending[ch].active &&
            ev->sender == responder_of(c, ch))
            c->pending[ch].refused = true;
    } else if (ev->kind == VUF_EV_OPEN) {
        c->closed[ch] = false;
    } else if (ev->kind == VUF_EV_CLOSE) {
        owed_missing(c, ch, (int)ev->sender, "before the channel closed");
        c->closed[ch] = true;
    } else {
        vuf_msg_view v;
        if (!vuf_msg_decode(c->spec, ch, ev->data, ev->len, &v)) {
            report(c, "HDR-SIZE", ev->sender, "%zu bytes: shorter than the 12-byte header",
                   ev->len);
            goto out;
        }
        /* header violations count as the request's own (REACT rules) */
        size_t before = vuf_checker_must_count(c, ev->sender);
        snprintf(c->idname, sizeof c->idname, "%u", v.hdr.request);
        c->cur_name = v.def ? v.def->name : c->idname;
        if (v.hdr.size != v.payload_len)
            report(c, "HDR-SIZE", ev->sender, "header says %u payload bytes, %zu follow",
                   v.hdr.size, v.payload_len);
        if ((v.hdr.flags & VUF_F_VERSION_MASK) != VUF_F_VERSION)
            report(c, "HDR-VERSION", ev->sender, "version %u", v.hdr.flags & VUF_F_VERSION_MASK);
        if (v.hdr.flags & ~VUF_F_KNOWN)
            report(c, "HDR-FLAGS-RESERVED", ev->sender, "flags 0x%x", v.hdr.flags);
        if (c->closed[ch])
            report(c, "CHAN-CLOSED", ev->sender, "message on the closed %s channel",
                   ch == VUF_CHAN_BACKEND ? "back-end" : "main");
        const vuf_channel_def *cd = vuf_spec_channel(c->spec, ch);
        if (ch == VUF_CHAN_BACKEND && ev->sender == cd->initiator) {
            uint64_t miss = cd->requires & ~(c->st.protocol_acked_known ? c->st.protocol_acked : 0);
            if (miss) {
                char b[128];
                vuf_feature_mask_str(c->spec, VUF_SPACE_PROTOCOL, miss, b, sizeof b);
                report(c, "BCH-BEFORE-BACKEND-REQ", ev->sender,
                       "back-end channel traffic before %s is negotiated", b);
            } else if (!c->st.backend_channel) {
                report(c, "BCH-NOT-HANDED-OVER", ev->sender,
                       "back-end channel traffic before SET_BACKEND_REQ_FD passed a socket");
            }
        }
        if (ev->sender == cd->initiator) {
            if (v.is_reply)
                report(c, "REPLY-DIRECTION", ev->sender,
                       "the %s, initiator of this channel, set the REPLY flag",
                       vuf_side_name(ev->sender));
            else
                on_request(c, ev, &v, before);
        } else if (!v.is_reply) {
            report(c, ch == VUF_CHAN_FRONTEND ? "INIT-BACKEND-ON-MAIN" : "INIT-FRONTEND-ON-BACKEND",
                   ev->sender, "request without the REPLY flag from the %s on the %s channel",
                   vuf_side_name(ev->sender), ch == VUF_CHAN_FRONTEND ? "main" : "back-end");
        } else {
            on_reply(c, ev, &v);
        }
    }
out:
    c->cur = NULL;
    c->cur_name = NULL;
    c->events++;
    return c->nv - n0;
}

size_t vuf_checker_finish(vuf_checker *c)
{
    size_t n0 = c->nv;
    for (int ch = 0; ch < VUF_CHAN_COUNT; ch++)
        owed_missing(c, (vuf_channel)ch, -1, "before the conversation ended");
    return c->nv - n0;
}

bool vuf_checker_reply_owed(const vuf_checker *c, vuf_channel ch)
{
    const pending_t *p = &c->pending[ch < VUF_CHAN_COUNT ? ch : VUF_CHAN_FRONTEND];
    return p->active && (p->explicit_reply || p->ack_expected) && !c->closed[ch];
}
