/* SPDX-License-Identifier: Apache-2.0 */
/* The reference device's handlers: one per front-end request it
 * implements, each given a validated, typed payload (ref.c) and returning
 * H_OK, H_REPLY (with c->reply built), H_FAIL (c->why) or H_CLOSE. A handler
 * is installed only when the table's layouts are the ones it reads. */
#include "ref_int.h"

#include <fcntl.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>

/* ---------- helpers ---------- */

static int set_nonblock(int fd)
{
    int fl = fcntl(fd, F_GETFL);
    if (fl >= 0 && (fl & O_NONBLOCK))
        return 0; /* already: one system call fewer */
    return fl < 0 ? -1 : fcntl(fd, F_SETFL, fl | O_NONBLOCK);
}

/* Take ownership of fds[i] (the caller will not close it). */
static int take_fd(ctx *c, size_t i)
{
    int fd = c->fds[i];
    c->fds[i] = -1;
    return fd;
}

void vuf_ref_unmap_inflight(vuf_ref *d)
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

/* ---------- handlers ---------- */

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
    d->protocol_reported = true;
    return reply_u64(c, d->cfg.protocol_features);
}

static int h_set_protocol_features(vuf_ref *d, ctx *c)
{
    uint64_t v = c->p.u64;
    if (v & ~d->cfg.protocol_features)
        return fail(c, "enables protocol features the device did not offer");
    d->proto = v; /* validate() closed on a feature without those it requires */
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
    vuf_field_write(&d->pk[PK_VRING_STATE].f[0], r, c->reply_len, c->p.vs.index);
    vuf_field_write(&d->pk[PK_VRING_STATE].f[1], r, c->reply_len, q->vq.last_avail);
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
            vuf_ref_ring_start(d, (uint32_t)(c->p.u64 & VRING_IDX_MASK));
            vuf_ref_ring_process(d, (uint32_t)(c->p.u64 & VRING_IDX_MASK), c->out);
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
    vuf_ref_ring_process(d, c->p.vs.index, c->out);
    return H_OK;
}

static int h_vring_kick(vuf_ref *d, ctx *c)
{
    vuf_ref_ring_start(d, c->p.vs.index);
    vuf_ref_ring_process(d, c->p.vs.index, c->out);
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
        vuf_ref_be_close(d);
        c->out->backend_closed = true;
    }
    d->be_fd = take_fd(c, 0);
    c->out->backend_opened = true;
    return H_OK;
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
    vuf_ref_rings_retry(d, c->out);
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
    vuf_field_write(&l->f[0], r, c->reply_len, c->p.cfg.offset);
    vuf_field_write(&l->f[1], r, c->reply_len, c->p.cfg.size);
    vuf_field_write(&l->f[2], r, c->reply_len, c->p.cfg.flags);
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
    vuf_ref_unmap_inflight(d); /* a repeated request releases the old buffer (CVE-2020-10726) */
    d->inf_map = map;
    d->inf_map_len = map_len;
    for (uint16_t i = 0; i < nq; i++)
        vuf_vq_inflight_init(base + vuf_vq_inflight_bytes(qs) * i, qs);
    attach_inflight(d, base, nq, qs);
    const pk_layout *l = &d->pk[PK_INFLIGHT];
    uint8_t *r = reply_begin(d, c, PK_INFLIGHT, 0);
    vuf_field_write(&l->f[0], r, c->reply_len, size);
    vuf_field_write(&l->f[1], r, c->reply_len, 0);
    vuf_field_write(&l->f[2], r, c->reply_len, nq);
    vuf_field_write(&l->f[3], r, c->reply_len, qs);
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
    vuf_ref_unmap_inflight(d);
    d->inf_map = map;
    d->inf_map_len = map_len;
    attach_inflight(d, base, nq, qs);
    return H_OK;
}

static int h_reset_device(vuf_ref *d, ctx *c)
{
    (void)c;
    vuf_ref_reset_device(d);
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

/* ---------- the table of handlers ---------- */

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

const handler *vuf_ref_handlers(size_t *n)
{
    *n = sizeof handlers / sizeof handlers[0];
    return handlers;
}
