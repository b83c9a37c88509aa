/* SPDX-License-Identifier: Apache-2.0 */
/* The reference vhost-user-blk back-end: the message core's dispatch and
 * validation (ref_int.h says which part is where). Creation and reset,
 * vuf_ref_handle(): framing and direction, then the table's interpreter
 * (validate()), the typed payload (decode()), the handler, and finish(),
 * the reaction policy (docs/reaction-policy.md); and what the device tells
 * about itself. */
#include "ref_int.h"
#include "vuf_event.h"
#include "vuf_msgcheck.h"

#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

/* ---------- output ---------- */

void vuf_ref_out_init(vuf_ref_out *o)
{
    memset(o, 0, sizeof *o);
    for (size_t i = 0; i < VUF_REF_OUT_MSGS; i++)
        o->msgs[i].fd = -1;
}

void vuf_ref_out_clear(vuf_ref_out *o)
{
    /* the message buffers are written before they are read (out_msg):
     * only what says what to do is reset, not 4 KiB of bytes per message */
    for (size_t i = 0; i < o->nmsgs; i++)
        close_fd(&o->msgs[i].fd);
    o->nmsgs = 0;
    o->call_mask = o->err_mask = 0;
    o->log_changed = o->flush = o->backend_opened = o->backend_closed = o->close = false;
    o->reason = o->rule = NULL;
}

vuf_ref_msg *vuf_ref_out_msg(vuf_ref_out *o, vuf_channel ch, uint32_t id, uint32_t flags,
                             const void *pl, size_t len)
{
    if (o->nmsgs == VUF_REF_OUT_MSGS || len > VUF_REF_MSG_MAX - VUF_HDR_SIZE)
        return NULL;
    vuf_ref_msg *m = &o->msgs[o->nmsgs++];
    m->channel = ch;
    vuf_hdr h = {.request = id, .flags = flags, .size = (uint32_t)len};
    vuf_hdr_encode(&h, m->data);
    if (len)
        memcpy(m->data + VUF_HDR_SIZE, pl, len);
    m->len = VUF_HDR_SIZE + len;
    m->fd = -1;
    m->wants_reply = false;
    return m;
}

static uint64_t get(const pk_layout *k, int i, const uint8_t *pl, size_t len, uint64_t base)
{
    return vuf_field_get(&k->f[i], pl, len, base);
}

/* ---------- creation ---------- */

void vuf_ref_config_default(vuf_ref_config *cfg)
{
    memset(cfg, 0, sizeof *cfg);
    cfg->disk_size = 1 << 20;
    cfg->queues = 1;
    cfg->max_mem_slots = 32;
    cfg->iotlb_entries = 2048;
    cfg->features = VUF_REF_FEATURES;
    cfg->protocol_features = VUF_REF_PROTOCOL_FEATURES;
}

/* The table names of the payload kinds, and the fields each handler reads. */
static const struct {
    const char *name;
    const char *fields[PK_FIELDS];
} pk_def[PK_COUNT] = {
    [PK_NONE] = {"none", {NULL}},
    [PK_U64] = {"u64", {"u64"}},
    [PK_VRING_STATE] = {"vring_state", {"index", "num"}},
    [PK_VRING_ADDR] = {"vring_addr", {"index", "flags", "desc", "used", "avail", "log_guest_addr"}},
    [PK_MEM_TABLE] = {"mem_table",
                      {"nregions", "regions[0].guest_addr", "regions[0].size",
                       "regions[0].user_addr", "regions[0].mmap_offset"}},
    [PK_REGION] = {"single_region", {"guest_addr", "size", "user_addr", "mmap_offset"}},
    [PK_LOG] = {"log", {"mmap_size", "mmap_offset"}},
    [PK_IOTLB] = {"iotlb", {"iova", "size", "uaddr", "perm", "type"}},
    [PK_CONFIG] = {"config", {"offset", "size", "flags"}},
    [PK_INFLIGHT] = {"inflight", {"mmap_size", "mmap_offset", "num_queues", "queue_size"}},
};

static void resolve_kinds(vuf_ref *d)
{
    for (int k = 0; k < PK_COUNT; k++) {
        pk_layout *l = &d->pk[k];
        memset(l, 0, sizeof *l);
        if (k == PK_NONE) {
            l->ok = true;
            continue;
        }
        l->def = vuf_spec_payload(d->spec, pk_def[k].name);
        l->ok = l->def != NULL;
        for (int i = 0; l->ok && i < PK_FIELDS && pk_def[k].fields[i]; i++)
            l->ok = vuf_field_resolve(l->def, pk_def[k].fields[i], &l->f[i]);
    }
    /* shapes the handlers rely on */
    if (d->pk[PK_MEM_TABLE].ok && d->pk[PK_MEM_TABLE].def->varray_field < 0)
        d->pk[PK_MEM_TABLE].ok = false;
    if (d->pk[PK_CONFIG].ok && d->pk[PK_CONFIG].def->varray_field < 0)
        d->pk[PK_CONFIG].ok = false;
}

static bool payload_is(const vuf_ref *d, const vuf_payload_def *p, pkind k)
{
    if (k == PK_NONE)
        return p == NULL;
    return d->pk[k].ok && p == d->pk[k].def;
}

vuf_ref *vuf_ref_new(const vuf_spec *spec, const vuf_ref_config *cfg, char *err, size_t errcap)
{
    if (!spec || !cfg || cfg->queues == 0 || cfg->queues > VUF_REF_MAX_QUEUES ||
        cfg->max_mem_slots == 0 || (cfg->disk_size && !cfg->disk)) {
        snprintf(err, errcap, "bad configuration (queues 1..%d, a disk buffer, mem slots > 0)",
                 VUF_REF_MAX_QUEUES);
        return NULL;
    }
    vuf_ref *d = calloc(1, sizeof *d);
    if (!d) {
        snprintf(err, errcap, "out of memory");
        return NULL;
    }
    d->spec = spec;
    d->cfg = *cfg;
    if (cfg->read_only)
        d->cfg.features |= 1ull << VUF_BLK_F_RO;
    d->log_fd = d->be_fd = -1;
    for (uint32_t i = 0; i < VUF_REF_MAX_QUEUES; i++)
        d->q[i].kick = d->q[i].call = d->q[i].err = -1;
    d->mem = vuf_gmem_new(cfg->max_mem_slots, cfg->iotlb_entries);
    d->chain = malloc(sizeof *d->chain);
    resolve_kinds(d);
    for (int ch = 0; ch < VUF_CHAN_COUNT; ch++) {
        size_t n = vuf_spec_msg_count(spec, (vuf_channel)ch);
        d->maxid[ch] = n ? vuf_spec_msg_at(spec, (vuf_channel)ch, n - 1)->id : 0;
        d->accepted[ch] = calloc((size_t)d->maxid[ch] + 1, sizeof(uint64_t));
        d->refused[ch] = calloc((size_t)d->maxid[ch] + 1, sizeof(uint64_t));
        if (!d->accepted[ch] || !d->refused[ch])
            goto oom;
    }
    d->nh = d->maxid[VUF_CHAN_FRONTEND] + 1;
    d->h = calloc(d->nh, sizeof *d->h);
    d->seen = calloc(d->nh, 1);
    if (!d->mem || !d->chain || !d->h || !d->seen)
        goto oom;
    size_t nhandlers;
    const handler *handlers = vuf_ref_handlers(&nhandlers);
    for (size_t i = 0; i < nhandlers; i++) {
        const handler *h = &handlers[i];
        const vuf_msg_def *m = vuf_spec_msg_by_name(spec, VUF_CHAN_FRONTEND, h->name);
        /* installed only when the table's layouts are the ones it reads */
        if (m && payload_is(d, m->request, h->req) &&
            (h->rep == PK_NONE || payload_is(d, m->reply_payload, h->rep)))
            d->h[m->id] = h;
    }
    d->be_iotlb = vuf_spec_msg_by_name(spec, VUF_CHAN_BACKEND, "BACKEND_IOTLB_MSG");
    d->be_config = vuf_spec_msg_by_name(spec, VUF_CHAN_BACKEND, "BACKEND_CONFIG_CHANGE_MSG");
    d->be_call = vuf_spec_msg_by_name(spec, VUF_CHAN_BACKEND, "BACKEND_VRING_CALL");
    d->be_err = vuf_spec_msg_by_name(spec, VUF_CHAN_BACKEND, "BACKEND_VRING_ERR");
    if (d->be_iotlb && !payload_is(d, d->be_iotlb->request, PK_IOTLB))
        d->be_iotlb = NULL;
    if (d->be_call && !payload_is(d, d->be_call->request, PK_VRING_STATE))
        d->be_call = NULL;
    if (d->be_err && !payload_is(d, d->be_err->request, PK_VRING_STATE))
        d->be_err = NULL;
    d->bit_reply_ack = vuf_spec_feature_bit(spec, VUF_SPACE_PROTOCOL, "REPLY_ACK");
    d->blk = (vuf_blk){.disk = cfg->disk,
                       .size = cfg->disk_size,
                       .read_only = cfg->read_only,
                       .num_queues = (uint16_t)cfg->queues,
                       .seg_max = 126};
    return d;
oom:
    vuf_ref_free(d);
    snprintf(err, errcap, "out of memory");
    return NULL;
}

int vuf_ref_reset(vuf_ref *d, const vuf_ref_config *cfg, char *err, size_t errcap)
{
    if (!cfg || cfg->queues == 0 || cfg->queues > VUF_REF_MAX_QUEUES || cfg->max_mem_slots == 0 ||
        (cfg->disk_size && !cfg->disk)) {
        snprintf(err, errcap, "bad configuration (queues 1..%d, a disk buffer, mem slots > 0)",
                 VUF_REF_MAX_QUEUES);
        return -1;
    }
    vuf_ref_disconnect(d);
    if (cfg->max_mem_slots != d->cfg.max_mem_slots || cfg->iotlb_entries != d->cfg.iotlb_entries) {
        vuf_gmem *m = vuf_gmem_new(cfg->max_mem_slots, cfg->iotlb_entries);
        if (!m) {
            snprintf(err, errcap, "out of memory");
            return -1;
        }
        vuf_gmem_free(d->mem);
        d->mem = m;
    }
    d->cfg = *cfg;
    if (cfg->read_only)
        d->cfg.features |= 1ull << VUF_BLK_F_RO;
    d->blk = (vuf_blk){.disk = cfg->disk,
                       .size = cfg->disk_size,
                       .read_only = cfg->read_only,
                       .num_queues = (uint16_t)cfg->queues,
                       .seg_max = 126};
    d->last_reason = NULL;
    return 0;
}

/* ---------- per-connection state ---------- */

static void reset_queue(queue *q)
{
    close_fd(&q->kick);
    close_fd(&q->call);
    close_fd(&q->err);
    uint8_t *inf = q->vq.inflight;
    uint16_t infn = q->vq.inflight_num;
    memset(q, 0, sizeof *q);
    q->kick = q->call = q->err = -1;
    q->vq.inflight = inf;
    q->vq.inflight_num = infn;
}

/* RESET_DEVICE: every ring disabled, device state as at creation; the
 * connection (owner, protocol features, back-end channel) stays. */
void vuf_ref_reset_device(vuf_ref *d)
{
    for (uint32_t i = 0; i < VUF_REF_MAX_QUEUES; i++)
        reset_queue(&d->q[i]);
    vuf_ref_unmap_inflight(d);
    vuf_gmem_clear(d->mem);
    vuf_gmem_iotlb_clear(d->mem);
    vuf_gmem_set_iommu(d->mem, false);
    vuf_gmem_log_unmap(d->mem);
    close_fd(&d->log_fd);
    d->acked = 0;
    d->features_set = false;
    d->status = 0;
}

void vuf_ref_disconnect(vuf_ref *d)
{
    vuf_ref_reset_device(d);
    vuf_ref_be_close(d);
    d->proto = 0;
    d->owner = false;
    d->features_reported = d->protocol_reported = false;
    memset(d->seen, 0, d->nh);
    d->main_ino = d->peer_ino = 0;
}

void vuf_ref_free(vuf_ref *d)
{
    if (!d)
        return;
    if (d->mem)
        vuf_ref_disconnect(d);
    vuf_gmem_free(d->mem);
    for (int ch = 0; ch < VUF_CHAN_COUNT; ch++) {
        free(d->accepted[ch]);
        free(d->refused[ch]);
    }
    free(d->h);
    free(d->seen);
    free(d->chain);
    free(d);
}

void vuf_ref_set_channel_identity(vuf_ref *d, uint64_t main_ino, uint64_t peer_ino)
{
    d->main_ino = main_ino;
    d->peer_ino = peer_ino;
}

/* ---------- validation ---------- */

/* The device's side of the conversation, for the table's interpreter
 * (vuf_msgcheck.h): what it offered and reported, what was negotiated, its
 * own queue count as GET_QUEUE_NUM reports it, its memory and rings. */
static bool dev_mem_covers(void *ctx, uint64_t uaddr, uint64_t size)
{
    const vuf_ref *d = ctx;
    return vuf_gmem_uva_covered(d->mem, uaddr, size);
}

static bool dev_ring_addrs(void *ctx, uint32_t i, uint64_t addr[3])
{
    const vuf_ref *d = ctx;
    if (i >= d->cfg.queues || !d->q[i].vq.addr_set)
        return false;
    addr[0] = d->q[i].vq.desc;
    addr[1] = d->q[i].vq.avail;
    addr[2] = d->q[i].vq.used;
    return true;
}

static void dev_view(vuf_ref *d, vuf_msgcheck_state *v)
{
    memset(v, 0, sizeof *v);
    v->features_offered_known = d->features_reported;
    v->features_offered = d->cfg.features;
    v->features_acked_known = d->features_set;
    v->features_acked = d->acked;
    v->protocol_offered_known = d->protocol_reported;
    v->protocol_offered = d->cfg.protocol_features;
    v->protocol_acked_known = true;
    v->protocol_acked = d->proto;
    v->backend_channel = d->be_fd >= 0;
    v->queue_num = d->cfg.queues;
    v->device = vuf_spec_device(d->spec, "blk");
    v->seen[VUF_CHAN_FRONTEND] = d->seen;
    v->seen_max[VUF_CHAN_FRONTEND] = d->nh - 1;
    v->mem = d;
    v->nregions = vuf_gmem_count(d->mem);
    v->mem_covers = dev_mem_covers;
    v->ring_addrs = dev_ring_addrs;
}

typedef struct {
    vuf_ref *d;
    ctx *c;
} refusal;

/* The first finding the device does not tolerate refuses the message
 * (docs/reaction-policy.md lists what it tolerates and why). */
static bool dev_finding(void *arg, const vuf_finding *f)
{
    refusal *r = arg;
    switch (f->rule) {
    case VUF_RULE_HDR_FLAGS_RESERVED:      /* undefined flag bits are ignored */
    case VUF_RULE_REPLY_NEED_REPLY_NO_ACK: /* no ack without REPLY_ACK */
    case VUF_RULE_FD_SHOULD:               /* REM_MEM_REG's fd: "MAY accept" */
    case VUF_RULE_FEAT_SET_BEFORE_GET:     /* the handlers check what was offered */
    case VUF_RULE_FEAT_PROTO_SET_BEFORE_GET:
    case VUF_RULE_GATE_BIT30_NEGOTIATED: /* QEMU sends SET_BACKEND_REQ_FD before it acks bit 30 */
        return true;
    default:
        break;
    }
    snprintf(r->d->why_buf, sizeof r->d->why_buf, "%s", f->text);
    r->c->rule = (int)f->rule;
    r->c->why = r->d->why_buf;
    return false;
}

/* A layout (or an element of one) with a range that must lie in an fd: only
 * then do the fds' sizes matter to the checks. */
static bool has_fd_span(const vuf_payload_def *p)
{
    if (!p)
        return false;
    for (size_t i = 0; i < p->nspans; i++)
        if (p->spans[i].fd)
            return true;
    for (size_t i = 0; i < p->nfields; i++)
        if (p->fields[i].element && has_fd_span(p->fields[i].element))
            return true;
    return false;
}

/* Every check a column of the table states, by the one interpreter, and
 * the device's own limits. Returns NULL or the reason for refusing; c->rule
 * names the catalogue rule when there is one. */
static const char *validate(vuf_ref *d, ctx *c, const handler *h)
{
    /* the size of every fd the message maps from, when the handler uses them */
    uint64_t sizes[VUF_EV_MAX_FDS];
    bool know_sizes =
        h && h->uses_fds && c->nfds <= VUF_EV_MAX_FDS && c->def && has_fd_span(c->def->request);
    for (size_t i = 0; know_sizes && i < c->nfds; i++) {
        struct stat st;
        sizes[i] = fstat(c->fds[i], &st) || st.st_size < 0 ? 0 : (uint64_t)st.st_size;
    }
    vuf_msg_view v = {.hdr = c->hdr,
                      .def = c->def,
                      .payload = c->pl,
                      .payload_len = c->len,
                      .layout = c->def ? c->def->request : NULL};
    vuf_msgcheck_state st;
    dev_view(d, &st);
    vuf_msgcheck_msg m = {.channel = VUF_CHAN_FRONTEND,
                          .sender = VUF_SIDE_FRONTEND,
                          .v = &v,
                          .fd_kinds = c->kinds,
                          .nfds = c->nfds,
                          .fd_sizes = know_sizes ? sizes : NULL};
    refusal r = {.d = d, .c = c};
    if (!vuf_msgcheck_request(d->spec, &m, &st, dev_finding, &r))
        return c->why;
    if (!c->def)
        return c->hdr.request == 0 ? "request id 0 is invalid" : "unknown request id";
    if (!h)
        return "not supported by this device";
    /* the queues the handlers index, whatever the table's device types say */
    uint64_t idx;
    if (c->def->vring.present &&
        (!vuf_field_read(&c->def->vring, c->pl, c->len, &idx) || idx >= d->cfg.queues)) {
        c->rule = VUF_RULE_VRING_INDEX;
        return "vring index out of range";
    }
    return NULL;
}

/* The typed payload of a validated request. */
static void decode(vuf_ref *d, ctx *c, pkind k)
{
    const pk_layout *l = &d->pk[k];
    payload *p = &c->p;
    const uint8_t *pl = c->pl;
    size_t n = c->len;
    switch (k) {
    case PK_NONE:
    case PK_COUNT:
        break;
    case PK_U64:
        p->u64 = get(l, 0, pl, n, 0);
        break;
    case PK_VRING_STATE:
        p->vs.index = (uint32_t)get(l, 0, pl, n, 0);
        p->vs.num = (uint32_t)get(l, 1, pl, n, 0);
        break;
    case PK_VRING_ADDR:
        p->va.index = (uint32_t)get(l, 0, pl, n, 0);
        p->va.flags = (uint32_t)get(l, 1, pl, n, 0);
        p->va.desc = get(l, 2, pl, n, 0);
        p->va.used = get(l, 3, pl, n, 0);
        p->va.avail = get(l, 4, pl, n, 0);
        p->va.log = get(l, 5, pl, n, 0);
        break;
    case PK_MEM_TABLE: {
        uint64_t cnt = get(l, 0, pl, n, 0);
        uint32_t stride = l->def->elem_size;
        p->mt.n = cnt > MAX_REGIONS ? MAX_REGIONS + 1 : (uint32_t)cnt;
        for (uint32_t i = 0; i < p->mt.n && i < MAX_REGIONS; i++) {
            uint64_t b = (uint64_t)stride * i;
            p->mt.r[i] = (vuf_gmem_region){.gpa = get(l, 1, pl, n, b),
                                           .size = get(l, 2, pl, n, b),
                                           .uaddr = get(l, 3, pl, n, b),
                                           .mmap_offset = get(l, 4, pl, n, b)};
        }
        break;
    }
    case PK_REGION:
        p->reg = (vuf_gmem_region){.gpa = get(l, 0, pl, n, 0),
                                   .size = get(l, 1, pl, n, 0),
                                   .uaddr = get(l, 2, pl, n, 0),
                                   .mmap_offset = get(l, 3, pl, n, 0)};
        break;
    case PK_LOG:
        p->log.size = get(l, 0, pl, n, 0);
        p->log.offset = get(l, 1, pl, n, 0);
        break;
    case PK_IOTLB:
        p->tlb.iova = get(l, 0, pl, n, 0);
        p->tlb.size = get(l, 1, pl, n, 0);
        p->tlb.uaddr = get(l, 2, pl, n, 0);
        p->tlb.perm = (uint8_t)get(l, 3, pl, n, 0);
        p->tlb.type = (uint8_t)get(l, 4, pl, n, 0);
        break;
    case PK_CONFIG:
        p->cfg.offset = (uint32_t)get(l, 0, pl, n, 0);
        p->cfg.size = (uint32_t)get(l, 1, pl, n, 0);
        p->cfg.flags = (uint32_t)get(l, 2, pl, n, 0);
        p->cfg.data = pl + l->def->fixed_size;
        break;
    case PK_INFLIGHT:
        p->inf.mmap_size = get(l, 0, pl, n, 0);
        p->inf.mmap_offset = get(l, 1, pl, n, 0);
        p->inf.num_queues = (uint16_t)get(l, 2, pl, n, 0);
        p->inf.queue_size = (uint16_t)get(l, 3, pl, n, 0);
        break;
    }
}

/* ---------- the reaction policy and dispatch ---------- */

/* Is an explicit reply owed for this message now (before it is handled)? */
static bool explicit_reply(const vuf_ref *d, const vuf_msg_def *m)
{
    if (!m)
        return false;
    if (m->reply == VUF_REPLY_ALWAYS)
        return true;
    if (m->reply_cond == VUF_COND_PROTOCOL)
        return has(d->proto, (int)m->reply_cond_bit);
    if (m->reply_cond == VUF_COND_AFTER)
        return m->reply_cond_after->id < d->nh && d->seen[m->reply_cond_after->id];
    return false;
}

/* The reaction policy, in one place (docs/reaction-policy.md). */
static void finish(vuf_ref *d, ctx *c, int r, bool reply_ack, bool explicit_rep)
{
    vuf_ref_out *out = c->out;
    uint32_t id = c->hdr.request;
    const uint32_t rflags = VUF_F_VERSION | VUF_F_REPLY;
    bool need = (c->hdr.flags & VUF_F_NEED_REPLY) && reply_ack;
    if (r == H_OK && explicit_rep && c->def->reply_error == VUF_RERR_U64) {
        /* a u64 status reply ("must respond with zero for success") */
        memset(c->reply, 0, 8);
        c->reply_len = 8;
        r = H_REPLY;
    }
    if (r == H_OK && explicit_rep)
        r = fail(c, "internal: no reply was built");
    if (r == H_OK || r == H_REPLY) {
        if (id <= d->maxid[VUF_CHAN_FRONTEND])
            d->accepted[VUF_CHAN_FRONTEND][id]++;
        if (id < d->nh)
            d->seen[id] = 1;
        if (r == H_REPLY) {
            vuf_ref_msg *m =
                vuf_ref_out_msg(out, VUF_CHAN_FRONTEND, id, rflags, c->reply, c->reply_len);
            if (m) {
                m->fd = c->reply_fd;
                c->reply_fd = -1;
            }
        } else if (need) {
            uint64_t zero = 0;
            vuf_ref_out_msg(out, VUF_CHAN_FRONTEND, id, rflags, &zero, 8);
        }
        return;
    }
    if (id <= d->maxid[VUF_CHAN_FRONTEND])
        d->refused[VUF_CHAN_FRONTEND][id]++;
    d->last_reason = c->why;
    out->reason = c->why;
    out->rule = c->rule >= 0 ? vuf_rule((vuf_rule_id)c->rule)->id : NULL;
    if (r == H_CLOSE) {
        out->close = true;
        return;
    }
    if (explicit_rep) {
        if (c->def->reply_error == VUF_RERR_U64) {
            vuf_ref_out_msg(out, VUF_CHAN_FRONTEND, id, rflags, &c->def->reply_error_value, 8);
        } else if (c->def->reply_error == VUF_RERR_EMPTY) {
            vuf_ref_out_msg(out, VUF_CHAN_FRONTEND, id, rflags, NULL, 0);
        } else if (c->def->reply_error == VUF_RERR_NEGATIVE && c->def->reply_payload &&
                   c->def->reply_payload->fixed_size <= sizeof c->reply) {
            /* the reply payload with its status field negative (-1) */
            memset(c->reply, 0, c->def->reply_payload->fixed_size);
            vuf_field_write(&c->def->reply_error_ref, c->reply, sizeof c->reply, ~0ull);
            vuf_ref_out_msg(out, VUF_CHAN_FRONTEND, id, rflags, c->reply,
                            c->def->reply_payload->fixed_size);
        } else {
            out->close = true; /* an explicit reply with no failure form */
        }
    } else if (need) {
        uint64_t one = 1;
        vuf_ref_out_msg(out, VUF_CHAN_FRONTEND, id, rflags, &one, 8);
    } else {
        out->close = true; /* the front-end could not learn of the failure */
    }
}

void vuf_ref_handle(vuf_ref *d, const uint8_t *msg, size_t len, int *fds, const uint8_t *kinds,
                    size_t nfds, vuf_ref_out *out)
{
    ctx *c = &d->msg;
    /* the fields before the payload; decode() writes every field of the
     * payload kind a handler reads, and a handler writes its reply */
    memset(c, 0, offsetof(ctx, p));
    c->reply_len = 0;
    if (len < VUF_HDR_SIZE) {
        out->close = true;
        out->reason = "message shorter than a header";
        goto close_fds;
    }
    c->reply_fd = -1;
    c->rule = -1;
    c->out = out;
    c->fds = fds;
    c->kinds = kinds;
    c->nfds = nfds;
    vuf_hdr_decode(msg, &c->hdr);
    c->pl = msg + VUF_HDR_SIZE;
    c->len = len - VUF_HDR_SIZE;
    c->def = vuf_spec_msg(d->spec, VUF_CHAN_FRONTEND, c->hdr.request);
    /* framing and direction: nothing that follows can be trusted */
    static const struct {
        vuf_rule_id rule;
        const char *why;
    } framing[] = {
        {VUF_RULE_HDR_VERSION, "not protocol version 1"},
        {VUF_RULE_REPLY_DIRECTION, "a reply on the main channel, where the back-end answers"},
        {VUF_RULE_HDR_SIZE, "header size does not match the payload"}};
    int broken = (c->hdr.flags & VUF_F_VERSION_MASK) != VUF_F_VERSION ? 0
                 : (c->hdr.flags & VUF_F_REPLY)                       ? 1
                 : c->hdr.size != c->len                              ? 2
                                                                      : -1;
    const char *fatal = broken >= 0 ? framing[broken].why : NULL;
    if (fatal)
        c->rule = (int)framing[broken].rule;
    if (fatal) {
        c->why = fatal;
        finish(d, c, H_CLOSE, false, false);
    } else {
        /* undefined flag bits (above bit 3) are ignored */
        bool reply_ack = has(d->proto, d->bit_reply_ack);
        bool explicit_rep = explicit_reply(d, c->def);
        const handler *h = c->def && c->hdr.request < d->nh ? d->h[c->hdr.request] : NULL;
        if (h && !h->uses_fds)
            for (size_t i = 0; i < nfds; i++)
                close_fd(&fds[i]); /* the spec's MAY accept: closed, never used */
        c->why = validate(d, c, h);
        /* "the back-end should close the connection" (In-band notifications):
         * a feature negotiated without the ones it requires */
        int r = c->rule == VUF_RULE_FEAT_DEPENDENCY ? H_CLOSE : H_FAIL;
        if (!c->why) {
            decode(d, c, h->req);
            r = h->fn(d, c);
        }
        finish(d, c, r, reply_ack, explicit_rep);
        close_fd(&c->reply_fd);
    }
    vuf_ref_be_pump(d, out);
close_fds:
    for (size_t i = 0; i < nfds; i++)
        close_fd(&fds[i]);
}

/* ---------- fds and introspection ---------- */

size_t vuf_ref_kick_fds(const vuf_ref *d, int *fds, uint32_t *queues, size_t cap)
{
    size_t n = 0;
    for (uint32_t i = 0; i < d->cfg.queues && n < cap; i++)
        if (d->q[i].kick >= 0) {
            fds[n] = d->q[i].kick;
            queues[n++] = i;
        }
    return n;
}

uint64_t vuf_ref_polled_queues(const vuf_ref *d)
{
    uint64_t m = 0;
    for (uint32_t i = 0; i < d->cfg.queues; i++)
        if (d->q[i].polled && d->q[i].started)
            m |= 1ull << i;
    return m;
}

int vuf_ref_kick_fd(const vuf_ref *d, uint32_t q)
{
    return q < VUF_REF_MAX_QUEUES ? d->q[q].kick : -1;
}

int vuf_ref_call_fd(const vuf_ref *d, uint32_t q)
{
    return q < VUF_REF_MAX_QUEUES ? d->q[q].call : -1;
}

int vuf_ref_err_fd(const vuf_ref *d, uint32_t q)
{
    return q < VUF_REF_MAX_QUEUES ? d->q[q].err : -1;
}

int vuf_ref_log_fd(const vuf_ref *d)
{
    return d->log_fd;
}

uint64_t vuf_ref_accepted(const vuf_ref *d, vuf_channel ch, uint32_t id)
{
    return ch < VUF_CHAN_COUNT && id <= d->maxid[ch] ? d->accepted[ch][id] : 0;
}

uint64_t vuf_ref_refused(const vuf_ref *d, vuf_channel ch, uint32_t id)
{
    return ch < VUF_CHAN_COUNT && id <= d->maxid[ch] ? d->refused[ch][id] : 0;
}

bool vuf_ref_supports(const vuf_ref *d, vuf_channel ch, uint32_t id)
{
    if (ch == VUF_CHAN_FRONTEND)
        return id < d->nh && d->h[id];
    const vuf_msg_def *m = vuf_spec_msg(d->spec, ch, id);
    return m && (m == d->be_iotlb || m == d->be_config || m == d->be_call || m == d->be_err);
}

size_t vuf_ref_fd_count(const vuf_ref *d)
{
    size_t n = (d->be_fd >= 0) + (d->log_fd >= 0);
    for (uint32_t i = 0; i < VUF_REF_MAX_QUEUES; i++)
        n += (d->q[i].kick >= 0) + (d->q[i].call >= 0) + (d->q[i].err >= 0);
    return n;
}

const char *vuf_ref_last_reason(const vuf_ref *d)
{
    return d->last_reason;
}

uint64_t vuf_ref_chains_completed(const vuf_ref *d)
{
    return d->chains;
}

uint64_t vuf_ref_ring_passes(const vuf_ref *d)
{
    return d->passes;
}

bool vuf_ref_queue_broken(const vuf_ref *d, uint32_t q)
{
    return q < VUF_REF_MAX_QUEUES && d->q[q].broken;
}
