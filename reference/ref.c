/* SPDX-License-Identifier: Apache-2.0 */
/* The reference vhost-user-blk back-end: message core.
 *
 * Security model: do not assume a received field contains a sensible value.
 * Every message passes validate() -- driven by the spec table's columns --
 * before its handler runs, and every refusal goes through finish(), the one
 * place that applies the reaction policy (docs/reaction-policy.md). fds the
 * handler does not take are closed on every path by vuf_ref_handle(). */
#include "vuf_ref.h"
#include "vuf_blk.h"
#include "vuf_codec.h"
#include "vuf_event.h"
#include "vuf_gmem.h"
#include "vuf_vq.h"

#include <fcntl.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#define MAX_REGIONS 64 /* typed SET_MEM_TABLE payload (the table caps it at 8) */
#define BQ_MAX 16      /* queued back-end channel requests */

/* Virtio and protocol bits the core itself acts on. */
#define F_LOG_ALL 26
#define F_EVENT_IDX 29
#define F_PROTOCOL_FEATURES 30
#define F_VERSION_1 32
#define F_IOMMU_PLATFORM 33
#define VIRTIO_S_NEEDS_RESET 0x40u

enum { H_OK, H_REPLY, H_FAIL, H_CLOSE };

/* ---- payload kinds the handlers understand, by table name ---- */

typedef enum {
    PK_NONE,
    PK_U64,
    PK_VRING_STATE,
    PK_VRING_ADDR,
    PK_MEM_TABLE,
    PK_REGION,
    PK_LOG,
    PK_IOTLB,
    PK_CONFIG,
    PK_INFLIGHT,
    PK_COUNT
} pkind;

#define PK_FIELDS 6
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

typedef struct {
    bool ok;
    const vuf_payload_def *def;
    vuf_field_ref f[PK_FIELDS];
} pk_layout;

/* A decoded request payload. */
typedef struct {
    uint64_t u64;
    struct {
        uint32_t index, num;
    } vs;
    struct {
        uint32_t index, flags;
        uint64_t desc, used, avail, log;
    } va;
    struct {
        uint32_t n;
        vuf_gmem_region r[MAX_REGIONS];
    } mt;
    vuf_gmem_region reg;
    struct {
        uint64_t size, offset;
    } log;
    struct iotlb_req {
        uint64_t iova, size, uaddr;
        uint8_t perm, type;
    } tlb;
    struct {
        uint32_t offset, size, flags;
        const uint8_t *data;
    } cfg;
    struct {
        uint64_t mmap_size, mmap_offset;
        uint16_t num_queues, queue_size;
    } inf;
} payload;

typedef struct ctx {
    const vuf_msg_def *def;
    vuf_hdr hdr;
    const uint8_t *pl;
    size_t len;
    int *fds;
    const uint8_t *kinds;
    size_t nfds;
    vuf_ref_out *out;
    const char *why; /* refusal reason */
    payload p;
    /* an explicit reply built by the handler */
    uint8_t reply[VUF_REF_MSG_MAX - VUF_HDR_SIZE];
    size_t reply_len;
    int reply_fd;
} ctx;

typedef struct vuf_ref vuf_ref;
typedef int (*handler_fn)(vuf_ref *d, ctx *c);

typedef struct {
    const char *name;
    pkind req, rep;
    handler_fn fn;
    bool uses_fds; /* false: fds it may carry are closed unused (REM_MEM_REG) */
} handler;

typedef struct {
    vuf_vq vq;
    int kick, call, err;
    bool polled, started, enabled, broken, stalled, need_start;
    const char *broken_reason;
} queue;

enum { BQ_IOTLB_MISS, BQ_ACCESS_FAIL, BQ_CONFIG, BQ_CALL, BQ_ERR };

typedef struct {
    int kind;
    uint64_t a;
    uint32_t b;
} bq_entry;

struct vuf_ref {
    const vuf_spec *spec;
    vuf_ref_config cfg;
    /* table */
    const handler **h; /* by front-end id */
    uint32_t nh;
    pk_layout pk[PK_COUNT];
    const vuf_msg_def *be_iotlb, *be_config, *be_call, *be_err;
    int bit_reply_ack;
    uint32_t maxid[VUF_CHAN_COUNT];
    uint64_t *accepted[VUF_CHAN_COUNT], *refused[VUF_CHAN_COUNT];
    uint8_t *seen; /* front-end ids accepted on this connection (`after`) */
    /* negotiation */
    uint64_t acked, proto;
    bool features_set, features_reported, owner;
    /* resources */
    vuf_gmem *mem;
    queue q[VUF_REF_MAX_QUEUES];
    int log_fd;
    void *inf_map;
    size_t inf_map_len;
    /* back-end channel */
    int be_fd;
    bool be_waiting;
    uint32_t be_wait_id;
    bq_entry bq[BQ_MAX];
    size_t nbq;
    uint64_t main_ino, peer_ino;
    /* device */
    vuf_blk blk;
    uint64_t status;
    vuf_vq_chain *chain;
    uint64_t chains, passes;
    const char *last_reason;
    ctx msg; /* the message being handled (one at a time: no allocation per message) */
};

static const handler *handler_table(size_t *n);

/* ---------- helpers ---------- */

static bool has(uint64_t mask, int bit)
{
    return bit >= 0 && bit < 64 && (mask >> bit & 1);
}

static void close_fd(int *fd)
{
    if (*fd >= 0)
        close(*fd);
    *fd = -1;
}

static int set_nonblock(int fd)
{
    int fl = fcntl(fd, F_GETFL);
    return fl < 0 ? -1 : fcntl(fd, F_SETFL, fl | O_NONBLOCK);
}

/* Take ownership of fds[i] (the caller will not close it). */
static int take_fd(ctx *c, size_t i)
{
    int fd = c->fds[i];
    c->fds[i] = -1;
    return fd;
}

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

static vuf_ref_msg *out_msg(vuf_ref_out *o, vuf_channel ch, uint32_t id, uint32_t flags,
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

static void put(uint8_t *buf, const vuf_field_ref *r, uint64_t v)
{
    switch (r->width) {
    case 1:
        buf[r->offset] = (uint8_t)v;
        break;
    case 2: {
        uint16_t x = (uint16_t)v;
        memcpy(buf + r->offset, &x, 2);
        break;
    }
    case 4: {
        uint32_t x = (uint32_t)v;
        memcpy(buf + r->offset, &x, 4);
        break;
    }
    default:
        memcpy(buf + r->offset, &v, 8);
    }
}

static uint64_t get(const pk_layout *k, int i, const uint8_t *pl, size_t len, uint64_t base)
{
    vuf_field_ref r = k->f[i];
    r.offset += (uint32_t)base;
    uint64_t v = 0;
    vuf_field_read(&r, pl, len, &v);
    return v;
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
    const handler *handlers = handler_table(&nhandlers);
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

static void unmap_inflight(vuf_ref *d)
{
    if (d->inf_map)
        munmap(d->inf_map, d->inf_map_len);
    d->inf_map = NULL;
    d->inf_map_len = 0;
    for (uint32_t i = 0; i < VUF_REF_MAX_QUEUES; i++) {
        d->q[i].vq.inflight = NULL;
        d->q[i].vq.inflight_num = 0;
    }
}

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

static void close_backend(vuf_ref *d)
{
    close_fd(&d->be_fd);
    d->be_waiting = false;
    d->nbq = 0;
}

/* RESET_DEVICE: every ring disabled, device state as at creation; the
 * connection (owner, protocol features, back-end channel) stays. */
static void reset_device(vuf_ref *d)
{
    for (uint32_t i = 0; i < VUF_REF_MAX_QUEUES; i++)
        reset_queue(&d->q[i]);
    unmap_inflight(d);
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
    reset_device(d);
    close_backend(d);
    d->proto = 0;
    d->owner = false;
    d->features_reported = false;
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

/* ---------- back-end channel requests ---------- */

/* May the device send `def` now: channel present and every gate negotiated. */
static bool can_send(const vuf_ref *d, const vuf_msg_def *def)
{
    const vuf_channel_def *cd = vuf_spec_channel(d->spec, VUF_CHAN_BACKEND);
    return def && d->be_fd >= 0 && !(cd->requires & ~d->proto) &&
           !(def->gate_protocol & ~d->proto) && !(def->gate_virtio & ~d->acked);
}

static void bq_push(vuf_ref *d, int kind, uint64_t a, uint32_t b)
{
    for (size_t i = 0; i < d->nbq; i++)
        if (d->bq[i].kind == kind && d->bq[i].a == a)
            return; /* already queued: coalesced */
    if (d->nbq < BQ_MAX)
        d->bq[d->nbq++] = (bq_entry){.kind = kind, .a = a, .b = b};
}

/* Send queued back-end requests while no reply is awaited. */
static void pump(vuf_ref *d, vuf_ref_out *out)
{
    while (!d->be_waiting && d->nbq && out->nmsgs < VUF_REF_OUT_MSGS) {
        bq_entry e = d->bq[0];
        memmove(&d->bq[0], &d->bq[1], (d->nbq - 1) * sizeof d->bq[0]);
        d->nbq--;
        const vuf_msg_def *def = e.kind == BQ_CONFIG ? d->be_config
                                 : e.kind == BQ_CALL ? d->be_call
                                 : e.kind == BQ_ERR  ? d->be_err
                                                     : d->be_iotlb;
        if (!can_send(d, def))
            continue; /* no channel or not negotiated (any more): dropped */
        uint8_t pl[64] = {0};
        size_t len = 0;
        if (def == d->be_iotlb) {
            const pk_layout *k = &d->pk[PK_IOTLB];
            put(pl, &k->f[0], e.a);                                /* iova */
            put(pl, &k->f[3], e.b);                                /* perm */
            put(pl, &k->f[4], e.kind == BQ_ACCESS_FAIL ? 4u : 1u); /* type: miss 1, fail 4 */
            len = k->def->fixed_size;
        } else if (def == d->be_call || def == d->be_err) {
            const pk_layout *k = &d->pk[PK_VRING_STATE];
            put(pl, &k->f[0], e.a); /* index; num 0 */
            len = k->def->fixed_size;
        }
        bool ack = has(d->proto, d->bit_reply_ack);
        vuf_ref_msg *m = out_msg(out, VUF_CHAN_BACKEND, def->id,
                                 VUF_F_VERSION | (ack ? VUF_F_NEED_REPLY : 0), pl, len);
        if (!m)
            return;
        if (def->id <= d->maxid[VUF_CHAN_BACKEND])
            d->accepted[VUF_CHAN_BACKEND][def->id]++; /* sent */
        if (ack) {
            m->wants_reply = true;
            d->be_waiting = true;
            d->be_wait_id = def->id;
        }
    }
}

/* ---------- data plane ---------- */

static void notify(vuf_ref *d, uint32_t qi, vuf_ref_out *out)
{
    if (d->q[qi].call >= 0)
        out->call_mask |= 1ull << qi;
    else if (can_send(d, d->be_call))
        bq_push(d, BQ_CALL, qi, 0);
}

static void queue_broken(vuf_ref *d, uint32_t qi, const vuf_vq_result *r, vuf_ref_out *out)
{
    queue *q = &d->q[qi];
    q->broken = true;
    q->broken_reason = r->reason;
    d->last_reason = r->reason;
    if (r->denied && can_send(d, d->be_iotlb))
        bq_push(d, BQ_ACCESS_FAIL, r->miss_iova, r->miss_perm);
    if (q->err >= 0)
        out->err_mask |= 1ull << qi;
    else if (can_send(d, d->be_err))
        bq_push(d, BQ_ERR, qi, 0);
}

/* A missing translation: ask the front-end and wait for its update. */
static void queue_miss(vuf_ref *d, uint32_t qi, const vuf_vq_result *r, vuf_ref_out *out)
{
    if (!can_send(d, d->be_iotlb)) {
        vuf_vq_result b = {.status = VUF_VQ_BROKEN,
                           .reason = "IOTLB miss with no back-end channel to ask"};
        queue_broken(d, qi, &b, out);
        return;
    }
    d->q[qi].stalled = true;
    bq_push(d, BQ_IOTLB_MISS, r->miss_iova, r->miss_perm);
}

/* Execute one chain and complete it. false: the queue cannot go on. */
static bool run_chain(vuf_ref *d, uint32_t qi, vuf_ref_out *out)
{
    queue *q = &d->q[qi];
    vuf_vq_inflight_get(&q->vq, d->chain->head);
    vuf_blk_result br = vuf_blk_execute(&d->blk, &q->vq, d->mem, d->chain);
    if (!br.ok) {
        vuf_vq_result b = {.status = VUF_VQ_BROKEN, .reason = br.reason};
        queue_broken(d, qi, &b, out);
        return false;
    }
    vuf_vq_result pr = vuf_vq_push(&q->vq, d->mem, d->chain->head, br.written);
    if (pr.status != VUF_VQ_CHAIN) {
        if (pr.status == VUF_VQ_MISS)
            queue_miss(d, qi, &pr, out);
        else
            queue_broken(d, qi, &pr, out);
        return false;
    }
    vuf_vq_inflight_put(&q->vq, d->chain->head);
    out->flush |= br.flush;
    d->chains++;
    return true;
}

/* Begin processing a started ring: the used index, then inflight
 * resubmission (INFLIGHT_SHMFD). */
static bool begin_ring(vuf_ref *d, uint32_t qi, vuf_ref_out *out, bool *used)
{
    queue *q = &d->q[qi];
    vuf_vq_result r = vuf_vq_start(&q->vq, d->mem);
    if (r.status == VUF_VQ_MISS) {
        queue_miss(d, qi, &r, out);
        return false;
    }
    if (r.status == VUF_VQ_BROKEN) {
        queue_broken(d, qi, &r, out);
        return false;
    }
    uint16_t heads[VUF_VQ_MAX_SIZE];
    size_t n = vuf_vq_inflight_pending(&q->vq, d->mem, heads, VUF_VQ_MAX_SIZE);
    /* the heads left inflight were taken from the avail ring already: the
     * next one to take follows them (a front-end restarts a crashed
     * back-end's ring at the used index; libvhost-user and DPDK likewise) */
    if (n)
        q->vq.last_avail = (uint16_t)(q->vq.used_idx + n);
    for (size_t i = 0; i < n; i++) {
        vuf_vq_result cr = vuf_vq_chain_at(&q->vq, d->mem, heads[i], d->chain);
        if (cr.status == VUF_VQ_MISS) {
            queue_miss(d, qi, &cr, out);
            return false;
        }
        if (cr.status != VUF_VQ_CHAIN) {
            queue_broken(d, qi, &cr, out);
            return false;
        }
        if (!run_chain(d, qi, out))
            return false;
        *used = true;
    }
    q->need_start = false; /* a stalled resubmission starts over when retried */
    return true;
}

/* Take and run what is available, up to a queue's worth. true: the ring was
 * emptied (false: it stopped, broken, stalled, or full of work). */
static bool drain_ring(vuf_ref *d, uint32_t qi, vuf_ref_out *out, bool *used)
{
    queue *q = &d->q[qi];
    for (uint32_t n = 0; n < q->vq.num; n++) {
        vuf_vq_result r = vuf_vq_pop(&q->vq, d->mem, d->chain);
        if (r.status == VUF_VQ_EMPTY)
            return true;
        if (r.status == VUF_VQ_MISS) {
            queue_miss(d, qi, &r, out);
            return false;
        }
        if (r.status == VUF_VQ_BROKEN) {
            queue_broken(d, qi, &r, out);
            return false;
        }
        /* the used ring must translate before the request runs: a miss at
         * push time would lose the completion of a request that ran. The
         * chain is given back and taken again once the ring is mapped. */
        r = vuf_vq_check_rings(&q->vq, d->mem);
        if (r.status != VUF_VQ_EMPTY) {
            q->vq.last_avail--;
            if (r.status == VUF_VQ_MISS)
                queue_miss(d, qi, &r, out);
            else
                queue_broken(d, qi, &r, out);
            return false;
        }
        if (!run_chain(d, qi, out))
            return false;
        *used = true;
    }
    return false;
}

/* Process queue qi as far as it goes now. Stopped, disabled, broken or
 * stalled rings are left alone (started + disabled: block requests have no
 * side-effect-free processing, so they wait in the avail ring). */
static void process(vuf_ref *d, uint32_t qi, vuf_ref_out *out)
{
    queue *q = &d->q[qi];
    if (!q->started || !q->enabled || q->broken || q->stalled || !vuf_vq_ready(&q->vq) ||
        !vuf_gmem_count(d->mem))
        return;
    bool used = false;
    d->passes++;
    if (!q->need_start || begin_ring(d, qi, out, &used)) {
        bool empty = drain_ring(d, qi, out, &used);
        /* EVENT_IDX: once the device asks to be kicked past last_avail, it
         * looks again. A buffer the driver made available before it could
         * see the new avail_event would otherwise wait for a kick that the
         * driver, reading the old one, decided not to send. Bounded. */
        for (int round = 0; empty && q->vq.event_idx && round < 4; round++) {
            vuf_vq_set_avail_event(&q->vq, d->mem);
            __atomic_thread_fence(__ATOMIC_SEQ_CST);
            if (!vuf_vq_pending(&q->vq, d->mem))
                break;
            empty = drain_ring(d, qi, out, &used);
        }
    }
    if (used) {
        if (vuf_vq_should_notify(&q->vq, d->mem))
            notify(d, qi, out);
        if (q->vq.log_all && vuf_gmem_log_mapped(d->mem) && d->log_fd >= 0)
            out->log_changed = true;
    }
    if (!q->broken && !q->stalled && !q->need_start)
        vuf_vq_set_avail_event(&q->vq, d->mem);
}

static void start_ring(vuf_ref *d, uint32_t qi)
{
    queue *q = &d->q[qi];
    if (!q->started) {
        q->started = true;
        q->need_start = true;
    }
    q->stalled = false; /* a kick retries a stalled ring */
}

void vuf_ref_kick(vuf_ref *d, uint32_t qi, vuf_ref_out *out)
{
    if (qi >= d->cfg.queues)
        return;
    start_ring(d, qi);
    process(d, qi, out);
    pump(d, out);
}

/* ---------- validation ---------- */

static bool proto_gate_ok(const vuf_ref *d, const vuf_msg_def *m)
{
    return !(m->gate_protocol & ~d->proto);
}

/* The spans of one payload (or element) at pl: no range wraps, and an
 * fd-backed range fits in fd `fdi`. */
static const char *check_spans(const ctx *c, const vuf_payload_def *p, const uint8_t *pl,
                               size_t len, size_t fdi, bool uses_fds)
{
    for (size_t i = 0; i < p->nspans; i++) {
        uint64_t base, size;
        if (!vuf_span_read(p, i, pl, len, &base, &size))
            return "payload too short for an address range";
        if (size && base + (size - 1) < base)
            return "an address range wraps around 2^64";
        struct stat st;
        if (p->spans[i].fd && uses_fds && fdi < c->nfds &&
            (fstat(c->fds[fdi], &st) || st.st_size < 0 || (uint64_t)st.st_size < base ||
             (uint64_t)st.st_size - base < size))
            return "an fd is smaller than the range the message maps from it";
    }
    return NULL;
}

/* Every check a column of the table states, in the order of the spec's
 * message description. Returns NULL or the reason for refusing. */
static const char *validate(vuf_ref *d, ctx *c, const handler *h)
{
    const vuf_msg_def *m = c->def;
    if (!m)
        return c->hdr.request == 0 ? "request id 0 is invalid" : "unknown request id";
    if (!h)
        return "not supported by this device";
    /* gates */
    if (!proto_gate_ok(d, m))
        return "gated by a protocol feature that is not negotiated";
    if (m->gate_virtio & ~d->acked)
        return "gated by a virtio feature that is not negotiated";
    if (m->gate_bit30 == VUF_BIT30_OFFERED &&
        !(d->features_reported && has(d->cfg.features, F_PROTOCOL_FEATURES)))
        return "PROTOCOL_FEATURES was not offered in a GET_FEATURES reply on this connection";
    if (m->gate_bit30 == VUF_BIT30_NEGOTIATED && !has(d->acked, F_PROTOCOL_FEATURES))
        return "PROTOCOL_FEATURES (bit 30) is not negotiated";
    for (size_t i = 0; i < m->nafter; i++)
        if (m->after[i]->id >= d->nh || !d->seen[m->after[i]->id])
            return "a prerequisite message did not come first";
    /* size */
    uint64_t want;
    if (vuf_payload_check_size(m->request, m->size_rule, c->pl, c->len, &want) != VUF_SZ_OK)
        return "payload size is not the table's";
    /* fds: count and kind */
    uint32_t mn, mx;
    const vuf_channel_def *cd = vuf_spec_channel(d->spec, VUF_CHAN_FRONTEND);
    if (c->nfds > cd->max_fds)
        return "more fds than the channel allows";
    if (!vuf_fd_rule_range(&m->fds, c->pl, c->len, &mn, &mx) || c->nfds < mn || c->nfds > mx)
        return "fd count is not the table's";
    for (size_t i = 0; i < c->nfds; i++)
        if (!vuf_fdkind_matches((vuf_fdkind)c->kinds[i], m->fds.fdkind))
            return "fd kind is not the table's";
    /* vring index */
    uint64_t v;
    if (m->vring.present && (!vuf_field_read(&m->vring, c->pl, c->len, &v) || v >= d->cfg.queues))
        return "vring index out of range";
    /* value checks */
    for (size_t i = 0; i < m->nchecks; i++) {
        const vuf_value_check *k = &m->checks[i];
        if (!vuf_field_read(&k->ref, c->pl, c->len, &v))
            return "payload too short for a checked field";
        if (k->kind == VUF_CHECK_MASK) {
            if (v & ~k->values[0])
                return "a field has bits outside its mask";
        } else {
            bool ok = false;
            for (size_t j = 0; j < k->nvalues; j++)
                ok |= v == k->values[j];
            if (!ok)
                return "a field holds a value outside its allowed set";
        }
    }
    /* spans: no range wraps; an fd-backed range fits its fd (fd 0 for the
     * fixed part, fd i for element i of a variable array) */
    const vuf_payload_def *lay = m->request;
    if (!lay)
        return NULL;
    const char *why = check_spans(c, lay, c->pl, c->len, 0, h->uses_fds);
    if (why || lay->varray_field < 0 || !lay->fields[lay->varray_field].element)
        return why;
    const vuf_field_def *va = &lay->fields[lay->varray_field];
    uint64_t nel = vuf_payload_count(lay, c->pl, c->len);
    for (uint64_t e = 0; e < nel && !why; e++)
        why = check_spans(c, va->element, c->pl + va->offset + va->size * e, va->size, (size_t)e,
                          h->uses_fds);
    return why;
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

/* ---------- replies ---------- */

static int fail(ctx *c, const char *why)
{
    c->why = why;
    return H_FAIL;
}

static int reply_u64(ctx *c, uint64_t v)
{
    memcpy(c->reply, &v, 8);
    c->reply_len = 8;
    return H_REPLY;
}

/* Start a reply of payload kind k: zeroed fixed part. */
static uint8_t *reply_begin(vuf_ref *d, ctx *c, pkind k, size_t extra)
{
    size_t n = d->pk[k].def->fixed_size + extra;
    if (n > sizeof c->reply)
        return NULL;
    memset(c->reply, 0, n);
    c->reply_len = n;
    return c->reply;
}

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
    if (r == H_OK && explicit_rep)
        r = fail(c, "internal: no reply was built");
    if (r == H_OK || r == H_REPLY) {
        if (id <= d->maxid[VUF_CHAN_FRONTEND])
            d->accepted[VUF_CHAN_FRONTEND][id]++;
        if (id < d->nh)
            d->seen[id] = 1;
        if (r == H_REPLY) {
            vuf_ref_msg *m = out_msg(out, VUF_CHAN_FRONTEND, id, rflags, c->reply, c->reply_len);
            if (m) {
                m->fd = c->reply_fd;
                c->reply_fd = -1;
            }
        } else if (need) {
            uint64_t zero = 0;
            out_msg(out, VUF_CHAN_FRONTEND, id, rflags, &zero, 8);
        }
        return;
    }
    if (id <= d->maxid[VUF_CHAN_FRONTEND])
        d->refused[VUF_CHAN_FRONTEND][id]++;
    d->last_reason = c->why;
    out->reason = c->why;
    if (r == H_CLOSE) {
        out->close = true;
        return;
    }
    if (explicit_rep) {
        if (c->def->reply_error == VUF_RERR_U64) {
            out_msg(out, VUF_CHAN_FRONTEND, id, rflags, &c->def->reply_error_value, 8);
        } else if (c->def->reply_error == VUF_RERR_EMPTY) {
            out_msg(out, VUF_CHAN_FRONTEND, id, rflags, NULL, 0);
        } else {
            out->close = true; /* an explicit reply with no failure form */
        }
    } else if (need) {
        uint64_t one = 1;
        out_msg(out, VUF_CHAN_FRONTEND, id, rflags, &one, 8);
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
    c->out = out;
    c->fds = fds;
    c->kinds = kinds;
    c->nfds = nfds;
    vuf_hdr_decode(msg, &c->hdr);
    c->pl = msg + VUF_HDR_SIZE;
    c->len = len - VUF_HDR_SIZE;
    c->def = vuf_spec_msg(d->spec, VUF_CHAN_FRONTEND, c->hdr.request);
    /* framing and direction: nothing that follows can be trusted */
    const char *fatal = NULL;
    if ((c->hdr.flags & VUF_F_VERSION_MASK) != VUF_F_VERSION)
        fatal = "not protocol version 1";
    else if (c->hdr.flags & VUF_F_REPLY)
        fatal = "a reply on the main channel, where the back-end answers";
    else if (c->hdr.size != c->len)
        fatal = "header size does not match the payload";
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
        int r = H_FAIL;
        if (!c->why) {
            decode(d, c, h->req);
            r = h->fn(d, c);
        }
        finish(d, c, r, reply_ack, explicit_rep);
        close_fd(&c->reply_fd);
    }
    pump(d, out);
close_fds:
    for (size_t i = 0; i < nfds; i++)
        close_fd(&fds[i]);
}

/* ---------- handlers ---------- */

static queue *vq_of(vuf_ref *d, uint32_t index)
{
    return &d->q[index]; /* validate() checked the index against the queue count */
}

static bool any_started(const vuf_ref *d)
{
    for (uint32_t i = 0; i < d->cfg.queues; i++)
        if (d->q[i].started)
            return true;
    return false;
}

static int h_get_features(vuf_ref *d, ctx *c)
{
    d->features_reported = true;
    return reply_u64(c, d->cfg.features);
}

static int h_set_features(vuf_ref *d, ctx *c)
{
    uint64_t v = c->p.u64;
    if (v & ~d->cfg.features)
        return fail(c, "acks features the device did not offer");
    if (!has(v, F_VERSION_1))
        return fail(c, "VIRTIO_F_VERSION_1 not acked (the device has no legacy interface)");
    if (d->features_set && any_started(d) && ((v ^ d->acked) & ~(1ull << F_LOG_ALL)))
        return fail(c, "features other than LOG_ALL changed while a ring is started");
    d->acked = v;
    d->features_set = true;
    vuf_gmem_set_iommu(d->mem, has(v, F_IOMMU_PLATFORM));
    for (uint32_t i = 0; i < VUF_REF_MAX_QUEUES; i++) {
        d->q[i].vq.event_idx = has(v, F_EVENT_IDX);
        d->q[i].vq.log_all = has(v, F_LOG_ALL);
        /* without PROTOCOL_FEATURES rings are enabled from the start */
        if (!has(v, F_PROTOCOL_FEATURES))
            d->q[i].enabled = true;
    }
    return H_OK;
}

static int h_set_owner(vuf_ref *d, ctx *c)
{
    if (d->owner)
        return fail(c, "SET_OWNER again on a connection that has an owner");
    d->owner = true;
    return H_OK;
}

static int h_reset_owner(vuf_ref *d, ctx *c)
{
    (void)c;
    /* deprecated; the spec recommends ignoring it or disabling all rings */
    for (uint32_t i = 0; i < VUF_REF_MAX_QUEUES; i++)
        d->q[i].enabled = false;
    return H_OK;
}

static int h_get_protocol_features(vuf_ref *d, ctx *c)
{
    return reply_u64(c, d->cfg.protocol_features);
}

static int h_set_protocol_features(vuf_ref *d, ctx *c)
{
    uint64_t v = c->p.u64;
    if (v & ~d->cfg.protocol_features)
        return fail(c, "enables protocol features the device did not offer");
    for (unsigned b = 0; b < 64; b++) {
        const vuf_feature_def *f = vuf_spec_feature(d->spec, VUF_SPACE_PROTOCOL, b);
        if (has(v, (int)b) && f && (f->requires & ~v)) {
            /* "the back-end should close the connection" (In-band
             * notifications); applied to every dependency of the table */
            c->why = "a protocol feature negotiated without the features it requires";
            return H_CLOSE;
        }
    }
    d->proto = v;
    return H_OK;
}

static int h_get_queue_num(vuf_ref *d, ctx *c)
{
    return reply_u64(c, d->cfg.queues);
}

static int h_get_max_mem_slots(vuf_ref *d, ctx *c)
{
    return reply_u64(c, d->cfg.max_mem_slots);
}

static int mem_fail(ctx *c, vuf_gmem_status s)
{
    static const char *const why[] = {
        [VUF_GMEM_EZERO] = "a memory region of size 0",
        [VUF_GMEM_EOVERFLOW] = "a memory region wraps around 2^64",
        [VUF_GMEM_EOVERLAP] = "memory regions overlap",
        [VUF_GMEM_EFD] = "a memory region's fd cannot be mapped for the range",
        [VUF_GMEM_EFULL] = "no free memory slot",
        [VUF_GMEM_ENOENT] = "no such memory region",
    };
    return fail(c, s > 0 && s <= VUF_GMEM_ENOENT ? why[s] : "memory error");
}

static int h_set_mem_table(vuf_ref *d, ctx *c)
{
    if (c->p.mt.n > MAX_REGIONS)
        return fail(c, "too many memory regions");
    size_t bad;
    vuf_gmem_status s = vuf_gmem_set(d->mem, c->p.mt.r, c->fds, c->p.mt.n, &bad);
    return s ? mem_fail(c, s) : H_OK;
}

static int h_add_mem_reg(vuf_ref *d, ctx *c)
{
    vuf_gmem_status s = vuf_gmem_add(d->mem, &c->p.reg, c->fds[0]);
    return s ? mem_fail(c, s) : H_OK;
}

static int h_rem_mem_reg(vuf_ref *d, ctx *c)
{
    vuf_gmem_status s = vuf_gmem_remove(d->mem, &c->p.reg);
    return s ? mem_fail(c, s) : H_OK;
}

static int h_set_log_base(vuf_ref *d, ctx *c)
{
    vuf_gmem_status s = vuf_gmem_log_map(d->mem, c->fds[0], c->p.log.offset, c->p.log.size);
    if (s)
        return fail(c, "the log cannot be mapped");
    return reply_u64(c, 0);
}

static int h_set_log_fd(vuf_ref *d, ctx *c)
{
    close_fd(&d->log_fd);
    d->log_fd = take_fd(c, 0);
    set_nonblock(d->log_fd);
    return H_OK;
}

static int h_set_vring_num(vuf_ref *d, ctx *c)
{
    queue *q = vq_of(d, c->p.vs.index);
    uint32_t n = c->p.vs.num;
    if (q->started)
        return fail(c, "SET_VRING_NUM on a started ring");
    if (n == 0 || n > VUF_VQ_MAX_SIZE || (n & (n - 1)))
        return fail(c, "queue size not a power of 2 in 1..1024");
    q->vq.num = n;
    return H_OK;
}

static int h_set_vring_base(vuf_ref *d, ctx *c)
{
    queue *q = vq_of(d, c->p.vs.index);
    if (q->started)
        return fail(c, "SET_VRING_BASE on a started ring");
    if (c->p.vs.num > 0xffff)
        return fail(c, "split ring base: bits 16-31 are reserved (packed rings not offered)");
    q->vq.last_avail = (uint16_t)c->p.vs.num;
    return H_OK;
}

static int h_set_vring_addr(vuf_ref *d, ctx *c)
{
    queue *q = vq_of(d, c->p.va.index);
    if (c->p.va.desc % 16 || c->p.va.avail % 2 || c->p.va.used % 4)
        return fail(c, "ring addresses not aligned (descriptors 16, avail 2, used 4)");
    vuf_vq t = q->vq;
    t.desc = c->p.va.desc;
    t.avail = c->p.va.avail;
    t.used = c->p.va.used;
    t.addr_flags = c->p.va.flags;
    t.log_guest_addr = c->p.va.log;
    t.addr_set = true;
    /* user addresses must be in guest memory now (IOVAs are asked for later) */
    if (t.num && vuf_gmem_count(d->mem) && !vuf_gmem_iommu(d->mem) &&
        vuf_vq_check_rings(&t, d->mem).status == VUF_VQ_BROKEN)
        return fail(c, "a ring is not inside guest memory");
    q->vq = t;
    return H_OK;
}

static int h_get_vring_base(vuf_ref *d, ctx *c)
{
    queue *q = vq_of(d, c->p.vs.index);
    /* stops the ring; a broken ring is given up, and restarts afresh */
    q->started = q->stalled = q->broken = q->need_start = false;
    q->polled = false;
    close_fd(&q->kick);
    uint8_t *r = reply_begin(d, c, PK_VRING_STATE, 0);
    put(r, &d->pk[PK_VRING_STATE].f[0], c->p.vs.index);
    put(r, &d->pk[PK_VRING_STATE].f[1], q->vq.last_avail);
    return H_REPLY;
}

#define VRING_IDX_MASK 0xffull
#define VRING_NOFD (1ull << 8)

static int set_vring_fd(vuf_ref *d, ctx *c, int which)
{
    queue *q = vq_of(d, (uint32_t)(c->p.u64 & VRING_IDX_MASK));
    int fd = -1;
    if (!(c->p.u64 & VRING_NOFD)) {
        fd = take_fd(c, 0);
        set_nonblock(fd);
    }
    int *slot = which == 0 ? &q->kick : which == 1 ? &q->call : &q->err;
    close_fd(slot);
    *slot = fd;
    if (which == 0) {
        q->polled = fd < 0; /* no kick fd: the ring is polled, started now */
        if (q->polled) {
            start_ring(d, (uint32_t)(c->p.u64 & VRING_IDX_MASK));
            process(d, (uint32_t)(c->p.u64 & VRING_IDX_MASK), c->out);
        }
    }
    return H_OK;
}

static int h_set_vring_kick(vuf_ref *d, ctx *c)
{
    return set_vring_fd(d, c, 0);
}

static int h_set_vring_call(vuf_ref *d, ctx *c)
{
    return set_vring_fd(d, c, 1);
}

static int h_set_vring_err(vuf_ref *d, ctx *c)
{
    return set_vring_fd(d, c, 2);
}

static int h_set_vring_enable(vuf_ref *d, ctx *c)
{
    queue *q = vq_of(d, c->p.vs.index);
    q->enabled = c->p.vs.num == 1;
    process(d, c->p.vs.index, c->out);
    return H_OK;
}

static int h_vring_kick(vuf_ref *d, ctx *c)
{
    start_ring(d, c->p.vs.index);
    process(d, c->p.vs.index, c->out);
    return H_OK;
}

static int h_set_backend_req_fd(vuf_ref *d, ctx *c)
{
    struct stat st;
    if (fstat(c->fds[0], &st))
        return fail(c, "the back-end channel fd cannot be inspected");
    if ((d->main_ino && (uint64_t)st.st_ino == d->main_ino) ||
        (d->peer_ino && (uint64_t)st.st_ino == d->peer_ino))
        return fail(c, "the back-end channel is the main channel's own socket");
    if (d->be_fd >= 0) {
        /* a repeated SET_BACKEND_REQ_FD replaces the channel; the old one
         * is closed (DPDK 761d57651c leaked it) */
        close_backend(d);
        c->out->backend_closed = true;
    }
    d->be_fd = take_fd(c, 0);
    c->out->backend_opened = true;
    return H_OK;
}

static void retry_stalled(vuf_ref *d, vuf_ref_out *out)
{
    for (uint32_t i = 0; i < d->cfg.queues; i++)
        if (d->q[i].stalled) {
            d->q[i].stalled = false;
            process(d, i, out);
        }
}

static int h_iotlb_msg(vuf_ref *d, ctx *c)
{
    const struct iotlb_req *t = &c->p.tlb;
    if (t->size == 0)
        return fail(c, "IOTLB entry of size 0");
    if (t->type == 3) {
        vuf_gmem_iotlb_invalidate(d->mem, t->iova, t->size);
        return reply_u64(c, 0);
    }
    /* "Addresses and size must be within vhost memory regions" */
    if (!vuf_gmem_uva_covered(d->mem, t->uaddr, t->size))
        return fail(c, "IOTLB update outside the memory regions");
    if (vuf_gmem_iotlb_update(d->mem, t->iova, t->size, t->uaddr, t->perm))
        return fail(c, "IOTLB full");
    retry_stalled(d, c->out);
    return reply_u64(c, 0);
}

static bool config_range(uint32_t off, uint32_t size)
{
    return size > 0 && off <= VUF_BLK_CONFIG_SIZE && size <= VUF_BLK_CONFIG_SIZE - off;
}

static int h_get_config(vuf_ref *d, ctx *c)
{
    if (!config_range(c->p.cfg.offset, c->p.cfg.size))
        return fail(c, "config access outside the 60-byte virtio-blk config space");
    uint8_t space[VUF_BLK_CONFIG_SIZE];
    vuf_blk_config(&d->blk, space);
    uint8_t *r = reply_begin(d, c, PK_CONFIG, c->p.cfg.size);
    if (!r)
        return fail(c, "config reply too large");
    const pk_layout *l = &d->pk[PK_CONFIG];
    put(r, &l->f[0], c->p.cfg.offset);
    put(r, &l->f[1], c->p.cfg.size);
    put(r, &l->f[2], c->p.cfg.flags);
    memcpy(r + l->def->fixed_size, space + c->p.cfg.offset, c->p.cfg.size);
    return H_REPLY;
}

static int h_set_config(vuf_ref *d, ctx *c)
{
    bool wce = has(d->acked, VUF_BLK_F_CONFIG_WCE);
    if (!config_range(c->p.cfg.offset, c->p.cfg.size))
        return fail(c, "config access outside the 60-byte virtio-blk config space");
    /* flags 0: writable fields only; 1: live migration may write any */
    if (c->p.cfg.flags == 0 && !vuf_blk_config_writable(c->p.cfg.offset, c->p.cfg.size, wce))
        return fail(c, "SET_CONFIG writes read-only config fields without the migration flag");
    vuf_blk_config_write(&d->blk, c->p.cfg.offset, c->p.cfg.data, c->p.cfg.size, wce);
    return H_OK;
}

/* Attach an inflight buffer to the queues it covers. */
static void attach_inflight(vuf_ref *d, uint8_t *base, uint16_t nq, uint16_t qs)
{
    uint64_t stride = vuf_vq_inflight_bytes(qs);
    for (uint32_t i = 0; i < VUF_REF_MAX_QUEUES; i++) {
        d->q[i].vq.inflight = i < nq ? base + stride * i : NULL;
        d->q[i].vq.inflight_num = i < nq ? qs : 0;
    }
}

static const char *check_inflight(const vuf_ref *d, uint16_t nq, uint16_t qs)
{
    if (nq == 0 || nq > d->cfg.queues)
        return "inflight num_queues outside 1..the device's queue count";
    if (qs == 0 || qs > VUF_VQ_MAX_SIZE)
        return "inflight queue_size outside 1..1024";
    return NULL;
}

static int h_get_inflight_fd(vuf_ref *d, ctx *c)
{
    uint16_t nq = c->p.inf.num_queues, qs = c->p.inf.queue_size;
    const char *why = check_inflight(d, nq, qs);
    if (why)
        return fail(c, why);
    uint64_t size = (uint64_t)nq * vuf_vq_inflight_bytes(qs);
    int fd = memfd_create("vufuzz-inflight", MFD_CLOEXEC);
    if (fd < 0 || ftruncate(fd, (off_t)size)) {
        close_fd(&fd);
        return fail(c, "cannot create the inflight buffer");
    }
    void *map;
    size_t map_len;
    uint8_t *base = vuf_gmem_map(fd, 0, size, &map, &map_len);
    if (!base) {
        close_fd(&fd);
        return fail(c, "cannot map the inflight buffer");
    }
    unmap_inflight(d); /* a repeated request releases the old buffer (CVE-2020-10726) */
    d->inf_map = map;
    d->inf_map_len = map_len;
    for (uint16_t i = 0; i < nq; i++)
        vuf_vq_inflight_init(base + vuf_vq_inflight_bytes(qs) * i, qs);
    attach_inflight(d, base, nq, qs);
    const pk_layout *l = &d->pk[PK_INFLIGHT];
    uint8_t *r = reply_begin(d, c, PK_INFLIGHT, 0);
    put(r, &l->f[0], size);
    put(r, &l->f[1], 0);
    put(r, &l->f[2], nq);
    put(r, &l->f[3], qs);
    c->reply_fd = fd;
    return H_REPLY;
}

static int h_set_inflight_fd(vuf_ref *d, ctx *c)
{
    uint16_t nq = c->p.inf.num_queues, qs = c->p.inf.queue_size;
    /* num_queues bounded before use (CVE-2021-3839) */
    const char *why = check_inflight(d, nq, qs);
    if (why)
        return fail(c, why);
    if (c->p.inf.mmap_size < (uint64_t)nq * vuf_vq_inflight_bytes(qs))
        return fail(c, "inflight mmap_size smaller than num_queues regions of queue_size");
    void *map;
    size_t map_len;
    uint8_t *base =
        vuf_gmem_map(c->fds[0], c->p.inf.mmap_offset, c->p.inf.mmap_size, &map, &map_len);
    if (!base)
        return fail(c, "the inflight buffer cannot be mapped");
    unmap_inflight(d);
    d->inf_map = map;
    d->inf_map_len = map_len;
    attach_inflight(d, base, nq, qs);
    return H_OK;
}

static int h_reset_device(vuf_ref *d, ctx *c)
{
    (void)c;
    reset_device(d);
    return H_OK;
}

static int h_set_status(vuf_ref *d, ctx *c)
{
    if (c->p.u64 > 0xff)
        return fail(c, "device status is one byte");
    d->status = c->p.u64;
    return H_OK;
}

static int h_get_status(vuf_ref *d, ctx *c)
{
    uint64_t s = d->status;
    for (uint32_t i = 0; i < d->cfg.queues; i++)
        if (d->q[i].broken)
            s |= VIRTIO_S_NEEDS_RESET;
    return reply_u64(c, s);
}

static const handler handlers[] = {
    {"GET_FEATURES", PK_NONE, PK_U64, h_get_features, false},
    {"SET_FEATURES", PK_U64, PK_NONE, h_set_features, false},
    {"SET_OWNER", PK_NONE, PK_NONE, h_set_owner, false},
    {"RESET_OWNER", PK_NONE, PK_NONE, h_reset_owner, false},
    {"SET_MEM_TABLE", PK_MEM_TABLE, PK_NONE, h_set_mem_table, true},
    {"SET_LOG_BASE", PK_LOG, PK_U64, h_set_log_base, true},
    {"SET_LOG_FD", PK_NONE, PK_NONE, h_set_log_fd, true},
    {"SET_VRING_NUM", PK_VRING_STATE, PK_NONE, h_set_vring_num, false},
    {"SET_VRING_ADDR", PK_VRING_ADDR, PK_NONE, h_set_vring_addr, false},
    {"SET_VRING_BASE", PK_VRING_STATE, PK_NONE, h_set_vring_base, false},
    {"GET_VRING_BASE", PK_VRING_STATE, PK_VRING_STATE, h_get_vring_base, false},
    {"SET_VRING_KICK", PK_U64, PK_NONE, h_set_vring_kick, true},
    {"SET_VRING_CALL", PK_U64, PK_NONE, h_set_vring_call, true},
    {"SET_VRING_ERR", PK_U64, PK_NONE, h_set_vring_err, true},
    {"GET_PROTOCOL_FEATURES", PK_NONE, PK_U64, h_get_protocol_features, false},
    {"SET_PROTOCOL_FEATURES", PK_U64, PK_NONE, h_set_protocol_features, false},
    {"GET_QUEUE_NUM", PK_NONE, PK_U64, h_get_queue_num, false},
    {"SET_VRING_ENABLE", PK_VRING_STATE, PK_NONE, h_set_vring_enable, false},
    {"SET_BACKEND_REQ_FD", PK_NONE, PK_NONE, h_set_backend_req_fd, true},
    {"IOTLB_MSG", PK_IOTLB, PK_U64, h_iotlb_msg, false},
    {"GET_CONFIG", PK_CONFIG, PK_CONFIG, h_get_config, false},
    {"SET_CONFIG", PK_CONFIG, PK_NONE, h_set_config, false},
    {"GET_INFLIGHT_FD", PK_INFLIGHT, PK_INFLIGHT, h_get_inflight_fd, false},
    {"SET_INFLIGHT_FD", PK_INFLIGHT, PK_NONE, h_set_inflight_fd, true},
    {"RESET_DEVICE", PK_NONE, PK_NONE, h_reset_device, false},
    {"VRING_KICK", PK_VRING_STATE, PK_NONE, h_vring_kick, false},
    {"GET_MAX_MEM_SLOTS", PK_NONE, PK_U64, h_get_max_mem_slots, false},
    {"ADD_MEM_REG", PK_REGION, PK_NONE, h_add_mem_reg, true},
    {"REM_MEM_REG", PK_REGION, PK_NONE, h_rem_mem_reg, false},
    {"SET_STATUS", PK_U64, PK_NONE, h_set_status, false},
    {"GET_STATUS", PK_NONE, PK_U64, h_get_status, false},
};

static const handler *handler_table(size_t *n)
{
    *n = sizeof handlers / sizeof handlers[0];
    return handlers;
}

/* ---------- the back-end channel, front-end side ---------- */

void vuf_ref_handle_backend(vuf_ref *d, const uint8_t *msg, size_t len, int *fds,
                            const uint8_t *kinds, size_t nfds, vuf_ref_out *out)
{
    (void)kinds;
    /* the device's requests take no fds back: any fd is closed unused */
    for (size_t i = 0; i < nfds; i++)
        close_fd(&fds[i]);
    vuf_hdr h = {0};
    if (len >= VUF_HDR_SIZE)
        vuf_hdr_decode(msg, &h);
    if (len < VUF_HDR_SIZE || !(h.flags & VUF_F_REPLY)) {
        /* a request in the wrong direction (the front-end only replies
         * here), or garbage: the channel is closed */
        d->last_reason = out->reason = "a request from the front-end on the back-end channel";
        close_backend(d);
        out->backend_closed = true;
        return;
    }
    if (!d->be_waiting || h.request != d->be_wait_id) {
        d->last_reason = out->reason = "an unsolicited or mismatched reply: ignored";
        return;
    }
    /* the awaited reply; a malformed one counts as a failure */
    d->be_waiting = false;
    uint64_t v = 1;
    if ((h.flags & VUF_F_VERSION_MASK) == VUF_F_VERSION && h.size == 8 && len == VUF_HDR_SIZE + 8 &&
        nfds == 0)
        memcpy(&v, msg + VUF_HDR_SIZE, 8);
    if (v && h.request <= d->maxid[VUF_CHAN_BACKEND])
        d->refused[VUF_CHAN_BACKEND][h.request]++; /* the front-end reported a failure */
    pump(d, out);
}

void vuf_ref_backend_timeout(vuf_ref *d, vuf_ref_out *out)
{
    if (d->be_waiting) {
        d->be_waiting = false;
        d->last_reason = "a back-end request got no reply in time";
    }
    pump(d, out);
}

void vuf_ref_backend_closed(vuf_ref *d)
{
    close_backend(d);
}

void vuf_ref_set_disk(vuf_ref *d, uint8_t *disk, uint64_t size, vuf_ref_out *out)
{
    d->blk.disk = disk;
    d->blk.size = size;
    d->cfg.disk = disk;
    d->cfg.disk_size = size;
    if (can_send(d, d->be_config))
        bq_push(d, BQ_CONFIG, 0, 0);
    pump(d, out);
}

/* ---------- fds and introspection ---------- */

int vuf_ref_backend_fd(const vuf_ref *d)
{
    return d->be_fd;
}

uint32_t vuf_ref_backend_wait_id(const vuf_ref *d)
{
    return d->be_waiting ? d->be_wait_id : 0;
}

bool vuf_ref_backend_waiting(const vuf_ref *d)
{
    return d->be_waiting;
}

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
