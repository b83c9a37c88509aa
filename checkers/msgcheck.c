/* SPDX-License-Identifier: Apache-2.0 */
/* The one interpreter of the spec table's columns (vuf_msgcheck.h). Every
 * check reads a column of the message's table definition; only feature
 * negotiation and memory know messages by name, looked up in the table. */
#include "vuf_msgcheck.h"
#include "vuf_event.h"
#include "vuf_util.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

typedef struct {
    const vuf_spec *s;
    const vuf_msgcheck_msg *m;
    const vuf_msgcheck_state *st;
    vuf_finding_fn fn;
    void *ctx;
    bool stopped;
} run;

vuf_level vuf_msgcheck_level(vuf_rule_id r, const vuf_quote *q)
{
    const vuf_rule_info *ri = vuf_rule(r);
    if (ri && ri->table)
        return vuf_level_of_verb(q ? q->verb : VUF_VERB_SILENT);
    return ri ? ri->level : VUF_NOTE;
}

/* A finding. q: the table's sentence for a `table` rule, found in rst
 * section sec (NULL: the message's section). */
static void report_in(run *r, vuf_rule_id rule, const vuf_quote *q, const char *sec,
                      const char *fmt, ...) __attribute__((format(printf, 5, 6)));

#define report(r, rule, q, ...) report_in((r), (rule), (q), NULL, __VA_ARGS__)

static void report_in(run *r, vuf_rule_id rule, const vuf_quote *q, const char *sec,
                      const char *fmt, ...)
{
    if (r->stopped)
        return;
    const vuf_rule_info *ri = vuf_rule(rule);
    vuf_finding f = {.rule = rule, .quote = ri->table ? q : NULL, .section = ri->section};
    if (f.quote)
        f.section = f.quote->verb == VUF_VERB_SILENT ? ""
                    : sec                            ? sec
                    : r->m->v->def                   ? r->m->v->def->section
                                                     : "";
    f.level = vuf_msgcheck_level(rule, q);
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(f.text, sizeof f.text, fmt, ap);
    va_end(ap);
    if (!r->fn(r->ctx, &f))
        r->stopped = true;
}

static bool has_all(bool known, uint64_t have, uint64_t mask)
{
    return known && (have & mask) == mask;
}

/* A feature is negotiated when the front-end enabled it and the back-end
 * offered it (when its offer is known): a back-end that never declared
 * REPLY_ACK or CONFIG owes no ack and no config reply because the front-end
 * enabled the bit anyway (rst "Back-end communication": the channel exists
 * "if the back-end declares" the feature; docs/rules.md, Decisions). */
static uint64_t negotiated(bool acked_known, uint64_t acked, bool offered_known, uint64_t offered)
{
    if (!acked_known)
        return 0;
    return offered_known ? acked & offered : acked;
}

static uint64_t proto_negotiated(const vuf_msgcheck_state *st)
{
    return negotiated(st->protocol_acked_known, st->protocol_acked, st->protocol_offered_known,
                      st->protocol_offered);
}

static bool proto_acked(const vuf_msgcheck_state *st, int bit)
{
    return bit >= 0 && bit < 64 && (proto_negotiated(st) >> bit & 1);
}

static bool seen(const vuf_msgcheck_state *st, vuf_channel ch, uint32_t id)
{
    return st->seen[ch] && id <= st->seen_max[ch] && st->seen[ch][id];
}

static bool is_msg(const vuf_spec *s, const vuf_msg_def *d, const char *name)
{
    return d && d == vuf_spec_msg_by_name(s, VUF_CHAN_FRONTEND, name);
}

/* ---------- framing and direction ---------- */

bool vuf_msgcheck_frame(const vuf_spec *s, const vuf_msgcheck_msg *m, const vuf_msgcheck_state *st,
                        vuf_finding_fn fn, void *ctx)
{
    run r = {.s = s, .m = m, .st = st, .fn = fn, .ctx = ctx};
    const vuf_msg_view *v = m->v;
    if (v->hdr.size != v->payload_len)
        report(&r, VUF_RULE_HDR_SIZE, NULL, "header says %u payload bytes, %zu follow", v->hdr.size,
               v->payload_len);
    if ((v->hdr.flags & VUF_F_VERSION_MASK) != VUF_F_VERSION)
        report(&r, VUF_RULE_HDR_VERSION, NULL, "version %u", v->hdr.flags & VUF_F_VERSION_MASK);
    if (v->hdr.flags & ~VUF_F_KNOWN)
        report(&r, VUF_RULE_HDR_FLAGS_RESERVED, NULL, "flags 0x%x", v->hdr.flags);
    const vuf_channel_def *cd = vuf_spec_channel(s, m->channel);
    const char *chn = m->channel == VUF_CHAN_FRONTEND ? "main" : "back-end";
    if (m->channel == VUF_CHAN_BACKEND && m->sender == cd->initiator) {
        uint64_t miss = cd->requires & ~proto_negotiated(st);
        if (miss) {
            char b[128];
            vuf_feature_mask_str(s, VUF_SPACE_PROTOCOL, miss, b, sizeof b);
            report_in(&r, VUF_RULE_BCH_BEFORE_BACKEND_REQ, &cd->requires_quote, cd->section,
                      "back-end channel traffic before %s is negotiated", b);
        } else if (!st->backend_channel) {
            report(&r, VUF_RULE_BCH_NOT_HANDED_OVER, NULL,
                   "back-end channel traffic before SET_BACKEND_REQ_FD passed a socket");
        }
    }
    if (m->sender == cd->initiator && v->is_reply)
        report(&r, VUF_RULE_REPLY_DIRECTION, NULL,
               "the %s, initiator of this channel, set the REPLY flag", vuf_side_name(m->sender));
    else if (m->sender != cd->initiator && !v->is_reply)
        report(&r,
               m->channel == VUF_CHAN_FRONTEND ? VUF_RULE_INIT_BACKEND_ON_MAIN
                                               : VUF_RULE_INIT_FRONTEND_ON_BACKEND,
               NULL, "request without the REPLY flag from the %s on the %s channel",
               vuf_side_name(m->sender), chn);
    return !r.stopped;
}

/* ---------- requests ---------- */

static void check_size(run *r, const vuf_msg_def *d)
{
    const vuf_msg_view *v = r->m->v;
    uint64_t exp = 0;
    switch (vuf_payload_check_size(d->request, d->size_rule, v->payload, v->payload_len, &exp)) {
    case VUF_SZ_OK:
        break;
    case VUF_SZ_COUNT_OVER: {
        const vuf_field_def *va = &d->request->fields[d->request->varray_field];
        report_in(r, VUF_RULE_SIZE_COUNT_MAX, &va->max_quote, d->request->section,
                  "count field %llu is above the layout's max %u",
                  (unsigned long long)vuf_payload_count(d->request, v->payload, v->payload_len),
                  va->max_count);
        break;
    }
    default:
        report(r, VUF_RULE_SIZE_REQUEST, NULL,
               "payload is %zu byte%s, the table's layout %s needs %llu", v->payload_len,
               vuf_plural(v->payload_len), d->request ? d->request->name : "none",
               (unsigned long long)exp);
    }
}

static void check_values(run *r, const vuf_msg_def *d)
{
    const vuf_msg_view *v = r->m->v;
    for (size_t i = 0; i < d->nchecks; i++) {
        const vuf_value_check *k = &d->checks[i];
        uint64_t val;
        if (!vuf_field_read(&k->ref, v->payload, v->payload_len, &val))
            continue; /* too short: a size violation already */
        if (k->kind == VUF_CHECK_MASK) {
            if (val & ~k->values[0])
                report(r, VUF_RULE_VALUE_MASK, &k->quote, "%s = 0x%llx has bits outside 0x%llx",
                       k->ref.path, (unsigned long long)val, (unsigned long long)k->values[0]);
            continue;
        }
        bool ok = false;
        for (size_t j = 0; j < k->nvalues; j++)
            ok |= val == k->values[j];
        if (!ok)
            report(r, VUF_RULE_VALUE_IN, &k->quote, "%s = %llu is not an allowed value",
                   k->ref.path, (unsigned long long)val);
    }
}

/* The spans of one payload (or element) at pl: no range wraps, and an
 * fd-backed range lies in fd `fdi` when its size is known. */
static void check_spans_at(run *r, const vuf_payload_def *lay, const uint8_t *pl, size_t len,
                           size_t fdi)
{
    const vuf_msgcheck_msg *m = r->m;
    for (size_t i = 0; i < lay->nspans; i++) {
        uint64_t base, size;
        if (!vuf_span_read(lay, i, pl, len, &base, &size))
            continue;
        const char *bn = lay->fields[lay->spans[i].base_field].name;
        const char *sn = lay->fields[lay->spans[i].size_field].name;
        if (size && base + (size - 1) < base) {
            report(r, VUF_RULE_VALUE_SPAN, NULL, "%s 0x%llx + %s 0x%llx overflows", bn,
                   (unsigned long long)base, sn, (unsigned long long)size);
            continue;
        }
        if (lay->spans[i].fd && m->fd_sizes && fdi < m->nfds &&
            (m->fd_sizes[fdi] < base || m->fd_sizes[fdi] - base < size))
            report(r, VUF_RULE_VALUE_SPAN, NULL,
                   "fd %zu holds 0x%llx bytes, the range %s 0x%llx + %s 0x%llx does not fit", fdi,
                   (unsigned long long)m->fd_sizes[fdi], bn, (unsigned long long)base, sn,
                   (unsigned long long)size);
    }
}

static void check_spans(run *r, const vuf_payload_def *lay)
{
    const vuf_msg_view *v = r->m->v;
    if (!lay)
        return;
    check_spans_at(r, lay, v->payload, v->payload_len, 0);
    if (lay->varray_field < 0 || v->payload_len < lay->fixed_size)
        return;
    const vuf_field_def *va = &lay->fields[lay->varray_field];
    if (!va->element || !va->element->nspans)
        return;
    /* hostile count: bound by the layout's max and by the bytes present */
    uint64_t n = vuf_payload_count(lay, v->payload, v->payload_len);
    uint64_t present = (v->payload_len - lay->fixed_size) / va->size;
    if (n > present)
        n = present;
    if (n > va->max_count)
        n = va->max_count;
    for (uint64_t k = 0; k < n && !r->stopped; k++)
        check_spans_at(r, va->element, v->payload + va->offset + k * va->size, va->size, (size_t)k);
}

static void check_req_spans(run *r, const vuf_msg_def *d)
{
    check_spans(r, d->request);
}

static void check_after(run *r, const vuf_msg_def *d)
{
    for (size_t i = 0; i < d->nafter; i++)
        if (!seen(r->st, r->m->channel, d->after[i]->id))
            report(r, VUF_RULE_ORDER_AFTER, &d->after_quote, "%s must come first",
                   d->after[i]->name);
}

static void check_vring(run *r, const vuf_msg_def *d)
{
    const vuf_msgcheck_state *st = r->st;
    const vuf_msg_view *v = r->m->v;
    uint64_t idx;
    if (!d->vring.present || !st->queue_num || !st->device || !st->device->rings_per_queue ||
        !vuf_field_read(&d->vring, v->payload, v->payload_len, &idx))
        return;
    uint64_t rings = (uint64_t)st->queue_num * st->device->rings_per_queue;
    if (idx >= rings)
        report(r, VUF_RULE_VRING_INDEX, NULL,
               "vring %llu is beyond the %u %s%s GET_QUEUE_NUM reports (%llu ring%s for a %s "
               "device)",
               (unsigned long long)idx, st->queue_num,
               st->device->rings_per_queue == 2 ? "queue pair" : "queue", vuf_plural(st->queue_num),
               (unsigned long long)rings, vuf_plural(rings), st->device->name);
}

static void check_fds(run *r, const vuf_msg_def *d)
{
    const vuf_msgcheck_msg *m = r->m;
    const vuf_msg_view *v = m->v;
    const vuf_channel_def *cd = vuf_spec_channel(r->s, m->channel);
    if (m->nfds > cd->max_fds)
        report_in(r, VUF_RULE_FD_CHANNEL_MAX, &cd->max_fds_quote, cd->section,
                  "%zu fds, the channel allows %u", m->nfds, cd->max_fds);
    if (m->nfds && cd->has_fd_gate && !proto_acked(r->st, (int)cd->fd_gate_bit)) {
        const vuf_feature_def *f = vuf_spec_feature(r->s, VUF_SPACE_PROTOCOL, cd->fd_gate_bit);
        report_in(r, VUF_RULE_FD_BACKEND_SEND_FD, &cd->fd_gate_quote, cd->section,
                  "fds on the back-end channel without %s", f ? f->name : "its fd gate");
    }
    const vuf_fd_rule *fr = &d->fds;
    uint32_t mn, mx;
    if (!vuf_fd_rule_range(fr, v->payload, v->payload_len, &mn, &mx))
        return; /* payload too short to read the rule's field: a size violation already */
    size_t n = m->nfds;
    if (n < mn || n > mx) {
        char want[32];
        if (mn == mx)
            snprintf(want, sizeof want, "%u", mn);
        else
            snprintf(want, sizeof want, "%u..%u", mn, mx);
        if (fr->kind == VUF_FDRULE_EXACT && fr->a == 0)
            report(r, VUF_RULE_FD_UNEXPECTED, NULL, "%zu fd%s on a message that takes none", n,
                   vuf_plural(n));
        else if (fr->kind == VUF_FDRULE_NOFD)
            report(r, VUF_RULE_FD_NOFD, NULL, "%zu fd%s with the no-fd bit %s (expected %s)", n,
                   vuf_plural(n), mn ? "clear" : "set", want);
        else if (fr->kind == VUF_FDRULE_COUNT)
            report(r, VUF_RULE_FD_COUNT_FIELD, NULL, "%zu fd%s but %s says %u", n, vuf_plural(n),
                   fr->ref.path, mn);
        else
            report(r, VUF_RULE_FD_COUNT, NULL, "%zu fd%s, expected %s", n, vuf_plural(n), want);
        return;
    }
    if (fr->has_should && n != fr->should)
        report(r, VUF_RULE_FD_SHOULD, NULL, "%zu fd%s; the spec recommends %u", n, vuf_plural(n),
               fr->should);
    for (size_t i = 0; i < n; i++)
        if (!vuf_fdkind_matches((vuf_fdkind)m->fd_kinds[i], fr->fdkind)) {
            char rs[96];
            vuf_fd_rule_str(fr, rs, sizeof rs);
            report(r, VUF_RULE_FD_KIND, NULL, "fd %zu is %s, the table wants %s", i,
                   vuf_fdkind_name((vuf_fdkind)m->fd_kinds[i]), rs);
        }
}

static void check_gates(run *r, const vuf_msg_def *d)
{
    const vuf_msgcheck_state *st = r->st;
    const uint64_t bit30 = 1ull << VUF_VIRTIO_PROTOCOL_FEATURES_BIT;
    for (size_t i = 0; i < d->ngates; i++) {
        const vuf_gate *g = &d->gates[i];
        bool offered = g->cond == VUF_GATE_OFFERED;
        bool met =
            g->space == VUF_SPACE_PROTOCOL
                ? (offered ? has_all(st->protocol_offered_known, st->protocol_offered, g->mask)
                           : has_all(st->protocol_acked_known, proto_negotiated(st), g->mask))
                : (offered ? has_all(st->features_offered_known, st->features_offered, g->mask)
                           : has_all(st->features_acked_known,
                                     negotiated(st->features_acked_known, st->features_acked,
                                                st->features_offered_known, st->features_offered),
                                     g->mask));
        if (met)
            continue;
        vuf_rule_id rule = r->m->channel == VUF_CHAN_BACKEND ? VUF_RULE_GATE_BACKEND_MSG
                           : g->space == VUF_SPACE_PROTOCOL  ? VUF_RULE_GATE_PROTOCOL
                           : !(g->mask & bit30)              ? VUF_RULE_GATE_VIRTIO
                           : offered                         ? VUF_RULE_GATE_BIT30_OFFERED
                                                             : VUF_RULE_GATE_BIT30_NEGOTIATED;
        char b[256];
        vuf_feature_mask_str(r->s, g->space, g->mask, b, sizeof b);
        if (!b[0] || ((g->mask & bit30) && g->space == VUF_SPACE_VIRTIO && !strcmp(b, "bit30")))
            snprintf(b, sizeof b, "PROTOCOL_FEATURES (bit 30)");
        report(r, rule, &g->quote, "needs %s %s", b,
               offered ? (g->space == VUF_SPACE_PROTOCOL ? "offered by GET_PROTOCOL_FEATURES"
                                                         : "offered by GET_FEATURES")
                       : (g->space == VUF_SPACE_PROTOCOL ? "negotiated by SET_PROTOCOL_FEATURES"
                                                         : "negotiated (acked by SET_FEATURES)"));
    }
}

static void check_features(run *r, const vuf_msg_def *d)
{
    const vuf_msgcheck_state *st = r->st;
    const vuf_msg_view *v = r->m->v;
    uint64_t val;
    if (v->payload_len < 8 || !d->request || d->request->fixed_size != 8)
        return;
    memcpy(&val, v->payload, 8);
    if (is_msg(r->s, d, "SET_FEATURES")) {
        if (!st->features_offered_known)
            report(r, VUF_RULE_FEAT_SET_BEFORE_GET, NULL,
                   "SET_FEATURES before GET_FEATURES's reply");
        else if (val & ~st->features_offered)
            report(r, VUF_RULE_FEAT_SUBSET, NULL, "acks 0x%llx, which was not offered",
                   (unsigned long long)(val & ~st->features_offered));
    } else if (is_msg(r->s, d, "SET_PROTOCOL_FEATURES")) {
        if (!st->protocol_offered_known)
            report(r, VUF_RULE_FEAT_PROTO_SET_BEFORE_GET, NULL,
                   "SET_PROTOCOL_FEATURES before GET_PROTOCOL_FEATURES's reply");
        else if (val & ~st->protocol_offered)
            report(r, VUF_RULE_FEAT_PROTO_SUBSET, NULL, "enables 0x%llx, which was not offered",
                   (unsigned long long)(val & ~st->protocol_offered));
        for (unsigned b = 0; b < 64 && !r->stopped; b++) {
            const vuf_feature_def *f = vuf_spec_feature(r->s, VUF_SPACE_PROTOCOL, b);
            if ((val >> b & 1) && f && (f->requires & ~val)) {
                char need[256];
                vuf_feature_mask_str(r->s, VUF_SPACE_PROTOCOL, f->requires & ~val, need,
                                     sizeof need);
                report_in(r, VUF_RULE_FEAT_DEPENDENCY, &f->requires_quote, f->section,
                          "%s without %s", f->name, need);
            }
        }
    }
}

static bool read_named(const vuf_payload_def *p, const char *name, const vuf_msg_view *v,
                       uint64_t *out)
{
    vuf_field_ref ref;
    return vuf_field_resolve(p, name, &ref) &&
           vuf_field_read(&ref, v->payload, v->payload_len, out);
}

static void check_iotlb(run *r, const vuf_msg_def *d)
{
    const vuf_msgcheck_state *st = r->st;
    const vuf_msg_view *v = r->m->v;
    uint64_t type, uaddr, size;
    if (!st->mem_covers || !is_msg(r->s, d, "IOTLB_MSG") ||
        !read_named(d->request, "type", v, &type) || !read_named(d->request, "uaddr", v, &uaddr) ||
        !read_named(d->request, "size", v, &size) || type != 2)
        return;
    if (!st->mem_covers(st->mem, uaddr, size))
        report(r, VUF_RULE_IOTLB_OUTSIDE_MEM, NULL,
               "IOTLB update [0x%llx, +0x%llx) is outside every memory region%s",
               (unsigned long long)uaddr, (unsigned long long)size,
               st->nregions ? "" : " (no memory table was sent)");
}

/* Ring addresses are user addresses (without IOMMU_PLATFORM) and must lie in
 * the memory regions: when SET_VRING_ADDR gives them while regions exist,
 * and when the ring starts (SET_VRING_KICK, VRING_KICK). */
static void check_ring_addrs(run *r, const vuf_msg_def *d)
{
    const vuf_msgcheck_state *st = r->st;
    const vuf_msg_view *v = r->m->v;
    uint64_t idx, addr[3];
    int iommu = vuf_spec_feature_bit(r->s, VUF_SPACE_VIRTIO, "IOMMU_PLATFORM");
    bool set_addr = is_msg(r->s, d, "SET_VRING_ADDR");
    bool start = is_msg(r->s, d, "SET_VRING_KICK") || is_msg(r->s, d, "VRING_KICK");
    if (!st->mem_covers || !d->vring.present || !(set_addr || start) ||
        !vuf_field_read(&d->vring, v->payload, v->payload_len, &idx))
        return;
    if (iommu >= 0 && st->features_acked_known && (st->features_acked >> iommu & 1))
        return; /* ring addresses are IOVAs, translated later through the IOTLB */
    static const char *const what[3] = {"descriptor table", "avail ring", "used ring"};
    static const char *const field[3] = {"desc", "avail", "used"};
    if (set_addr) {
        if (!st->nregions) /* the memory table may come before the ring starts */
            return;
        for (int i = 0; i < 3; i++)
            if (!read_named(d->request, field[i], v, &addr[i]))
                return;
    } else if (!st->ring_addrs || !st->ring_addrs(st->mem, (uint32_t)idx, addr)) {
        return;
    } else if (!st->nregions) {
        report(r, VUF_RULE_RING_ADDR_UNMAPPED, NULL,
               "ring %llu starts with no memory table (no SET_MEM_TABLE or ADD_MEM_REG): the "
               "front-end shares no guest memory (QEMU: a memory backend with share=on)",
               (unsigned long long)idx);
        return;
    }
    for (int i = 0; i < 3; i++)
        if (!st->mem_covers(st->mem, addr[i], 1)) {
            report(r, VUF_RULE_RING_ADDR_UNMAPPED, NULL,
                   "ring %llu %s its %s at 0x%llx outside every "
                   "memory region",
                   (unsigned long long)idx, set_addr ? "has" : "starts with", what[i],
                   (unsigned long long)addr[i]);
            return;
        }
}

bool vuf_msgcheck_request(const vuf_spec *s, const vuf_msgcheck_msg *m,
                          const vuf_msgcheck_state *st, vuf_finding_fn fn, void *ctx)
{
    run r = {.s = s, .m = m, .st = st, .fn = fn, .ctx = ctx};
    const vuf_msg_view *v = m->v;
    const vuf_msg_def *d = v->def;
    if (v->hdr.request == 0 || !d) {
        if (v->hdr.request == 0)
            report(&r, VUF_RULE_HDR_ID_ZERO, NULL, "request id 0 is invalid");
        else
            report(&r, VUF_RULE_HDR_ID_UNKNOWN, NULL, "id %u is not a %s-channel message",
                   v->hdr.request, vuf_channel_name(m->channel));
        return !r.stopped;
    }
    int reply_ack = vuf_spec_feature_bit(s, VUF_SPACE_PROTOCOL, "REPLY_ACK");
    if ((v->hdr.flags & VUF_F_NEED_REPLY) && !proto_acked(st, reply_ack))
        report(&r, VUF_RULE_REPLY_NEED_REPLY_NO_ACK, NULL,
               "NEED_REPLY set but REPLY_ACK is not negotiated");
    /* in the order the device refuses by: gates and order first (what may be
     * sent at all), then the payload's shape, then its values */
    static void (*const checks[])(run *, const vuf_msg_def *) = {
        check_gates,  check_after,     check_size,     check_fds,   check_vring,
        check_values, check_req_spans, check_features, check_iotlb, check_ring_addrs};
    for (size_t i = 0; i < sizeof checks / sizeof checks[0] && !r.stopped; i++)
        checks[i](&r, d);
    return !r.stopped;
}

vuf_reply_owed vuf_msgcheck_reply_owed(const vuf_spec *s, const vuf_msg_def *d, uint32_t flags,
                                       const vuf_msgcheck_state *st)
{
    bool ack = (flags & VUF_F_NEED_REPLY) &&
               proto_acked(st, vuf_spec_feature_bit(s, VUF_SPACE_PROTOCOL, "REPLY_ACK"));
    if (!d) /* NEED_REPLY may be set on any command: a failure ack may answer an unknown one */
        return ack ? VUF_OWED_ACK : VUF_OWED_NONE;
    if (d->reply == VUF_REPLY_ALWAYS ||
        (d->reply_cond == VUF_COND_PROTOCOL && proto_acked(st, (int)d->reply_cond_bit)) ||
        (d->reply_cond == VUF_COND_AFTER && seen(st, d->channel, d->reply_cond_after->id)))
        return VUF_OWED_EXPLICIT;
    return ack && d->reply != VUF_REPLY_NONE ? VUF_OWED_ACK : VUF_OWED_NONE;
}

bool vuf_msgcheck_reply_failed(const vuf_msg_def *d, vuf_reply_owed owed, const uint8_t *pl,
                               size_t len, bool *can_fail)
{
    vuf_reply_error_kind k = owed == VUF_OWED_EXPLICIT && d ? d->reply_error : VUF_RERR_U64;
    uint64_t val = 0;
    if (can_fail)
        *can_fail = k != VUF_RERR_NONE;
    switch (k) {
    case VUF_RERR_U64:
        if (len != 8)
            return false; /* not a status: a size violation */
        memcpy(&val, pl, 8);
        /* a status whose no-fd bit says "no fd follows" (SET_DEVICE_STATE_FD:
         * bits 0-7 the error, bit 8 no fd): that bit is not the failure */
        if (owed == VUF_OWED_EXPLICIT && d && d->reply_fds.kind == VUF_FDRULE_NOFD &&
            d->reply_fds.a < 64)
            val &= ~(1ull << d->reply_fds.a);
        return val != 0;
    case VUF_RERR_EMPTY:
        return len == 0;
    case VUF_RERR_NEGATIVE:
        return vuf_field_read(&d->reply_error_ref, pl, len, &val) && (int64_t)val < 0;
    case VUF_RERR_NONE:
        break;
    }
    return false;
}
