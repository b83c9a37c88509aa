/* SPDX-License-Identifier: Apache-2.0 */
/* Split virtqueues, device side.
 *
 * Security model: the rings, the descriptor tables and the inflight region
 * are guest memory that changes under our feet. Each value is read once with
 * memcpy into a local (no unaligned or torn pointer games), every index is
 * checked against the queue size, a chain is at most the queue size long,
 * and every buffer is translated in full before anything is copied. */
#include "vuf_vq.h"

#include <stdlib.h>
#include <string.h>

static uint16_t ld16(const uint8_t *p)
{
    uint16_t v;
    memcpy(&v, p, 2);
    return v;
}

static void st16(uint8_t *p, uint16_t v)
{
    memcpy(p, &v, 2);
}

static void st32(uint8_t *p, uint32_t v)
{
    memcpy(p, &v, 4);
}

uint64_t vuf_vq_desc_bytes(uint32_t num)
{
    return 16ull * num;
}

uint64_t vuf_vq_avail_bytes(uint32_t num)
{
    return 6ull + 2ull * num; /* flags, idx, ring[num], used_event */
}

uint64_t vuf_vq_used_bytes(uint32_t num)
{
    return 6ull + 8ull * num; /* flags, idx, ring[num], avail_event */
}

bool vuf_vq_ready(const vuf_vq *vq)
{
    return vq->num != 0 && vq->addr_set;
}

static vuf_vq_result res(vuf_vq_status s)
{
    return (vuf_vq_result){.status = s};
}

static vuf_vq_result broken(const char *why)
{
    return (vuf_vq_result){.status = VUF_VQ_BROKEN, .reason = why};
}

/* A failed translation as a queue result. */
static vuf_vq_result xlate_fail(const vuf_xlate_err *e, unsigned perm, const char *what)
{
    if (e->status == VUF_XLATE_MISS)
        return (vuf_vq_result){.status = VUF_VQ_MISS, .miss_iova = e->fault, .miss_perm = perm};
    if (e->status == VUF_XLATE_DENIED)
        return (vuf_vq_result){.status = VUF_VQ_BROKEN,
                               .miss_iova = e->fault,
                               .miss_perm = perm,
                               .denied = true,
                               .reason = "IOTLB entry without the needed permission"};
    return broken(what);
}

static uint8_t *ring(const vuf_gmem *m, uint64_t addr, uint64_t len, unsigned perm,
                     vuf_vq_result *r, const char *what)
{
    vuf_xlate_err e;
    uint8_t *p = vuf_gmem_ring(m, addr, len, perm, &e);
    if (!p)
        *r = xlate_fail(&e, perm, what);
    return p;
}

vuf_vq_result vuf_vq_check_rings(const vuf_vq *vq, const vuf_gmem *m)
{
    vuf_vq_result r = res(VUF_VQ_EMPTY);
    if (!ring(m, vq->desc, vuf_vq_desc_bytes(vq->num), VUF_PERM_R, &r,
              "descriptor table not in guest memory") ||
        !ring(m, vq->avail, vuf_vq_avail_bytes(vq->num), VUF_PERM_R, &r,
              "avail ring not in guest memory") ||
        !ring(m, vq->used, vuf_vq_used_bytes(vq->num), VUF_PERM_R | VUF_PERM_W, &r,
              "used ring not in guest memory"))
        return r;
    return r;
}

vuf_vq_result vuf_vq_start(vuf_vq *vq, const vuf_gmem *m)
{
    vuf_vq_result r = res(VUF_VQ_EMPTY);
    uint8_t *used = ring(m, vq->used, vuf_vq_used_bytes(vq->num), VUF_PERM_R | VUF_PERM_W, &r,
                         "used ring not in guest memory");
    if (!used)
        return r;
    vq->used_idx = ld16(used + 2);
    vq->signalled_valid = false;
    return r;
}

/* Translate [addr, addr+len) into host pieces appended to the chain. */
static vuf_vq_result add_buffer(const vuf_gmem *m, vuf_vq_chain *c, uint64_t addr, uint32_t len,
                                bool write)
{
    unsigned perm = write ? VUF_PERM_W : VUF_PERM_R;
    uint64_t done = 0;
    while (done < len) {
        if (c->niov == VUF_VQ_MAX_IOV)
            return broken("chain spans too many memory pieces");
        uint64_t run, lg;
        vuf_xlate_err e;
        uint8_t *p = vuf_gmem_buf(m, addr + done, len - done, perm, &run, &lg, &e);
        if (!p)
            return xlate_fail(&e, perm, "buffer outside guest memory");
        c->iov[c->niov++] =
            (vuf_vq_iov){.p = p, .len = (uint32_t)run, .write = write, .log_gpa = lg};
        done += run;
    }
    if (write)
        c->writable += len;
    else
        c->readable += len;
    return res(VUF_VQ_CHAIN);
}

/* An indirect table is a guest buffer (a guest address, not a ring
 * address) that must be contiguous in host memory. */
static uint8_t *indirect_table(const vuf_gmem *m, uint64_t addr, uint32_t len, vuf_vq_result *r)
{
    uint64_t run, lg;
    vuf_xlate_err e;
    uint8_t *p = vuf_gmem_buf(m, addr, len, VUF_PERM_R, &run, &lg, &e);
    if (!p) {
        *r = xlate_fail(&e, VUF_PERM_R, "indirect table outside guest memory");
        return NULL;
    }
    if (run != len) {
        *r = broken("indirect table not contiguous in guest memory");
        return NULL;
    }
    return p;
}

vuf_vq_result vuf_vq_chain_at(const vuf_vq *vq, const vuf_gmem *m, uint16_t head, vuf_vq_chain *c)
{
    vuf_vq_result r = res(VUF_VQ_CHAIN);
    c->head = head;
    c->niov = 0;
    c->readable = c->writable = 0;
    if (head >= vq->num)
        return broken("head index out of range");
    uint8_t *table = ring(m, vq->desc, vuf_vq_desc_bytes(vq->num), VUF_PERM_R, &r,
                          "descriptor table not in guest memory");
    if (!table)
        return r;
    uint32_t table_n = vq->num, idx = head, count = 0;
    bool indirect = false, seen_write = false;
    for (;;) {
        /* every descriptor counts, indirect ones included: a chain is at
         * most the queue size long, so a loop ends here */
        if (count++ >= vq->num)
            return broken("descriptor chain longer than the queue size (a loop?)");
        uint8_t d[16];
        memcpy(d, table + 16u * idx, 16);
        uint64_t addr;
        uint32_t len;
        uint16_t flags, next;
        memcpy(&addr, d, 8);
        memcpy(&len, d + 8, 4);
        memcpy(&flags, d + 12, 2);
        memcpy(&next, d + 14, 2);
        if (flags & VUF_VRING_DESC_F_INDIRECT) {
            if (indirect)
                return broken("indirect descriptor inside an indirect table");
            if (flags & VUF_VRING_DESC_F_NEXT)
                return broken("indirect descriptor with NEXT set");
            if (len == 0 || len % 16)
                return broken("indirect table length not a positive multiple of 16");
            table = indirect_table(m, addr, len, &r);
            if (!table)
                return r;
            table_n = len / 16;
            idx = 0;
            indirect = true;
            count--; /* only points at the table: a table of the queue size is legal */
            continue;
        }
        bool write = (flags & VUF_VRING_DESC_F_WRITE) != 0;
        if (!write && seen_write)
            return broken("device-readable descriptor after a device-writable one");
        seen_write |= write;
        if (len) {
            r = add_buffer(m, c, addr, len, write);
            if (r.status != VUF_VQ_CHAIN)
                return r;
        }
        if (!(flags & VUF_VRING_DESC_F_NEXT))
            return res(VUF_VQ_CHAIN);
        if (next >= table_n)
            return broken("next descriptor index out of range");
        idx = next;
    }
}

bool vuf_vq_pending(const vuf_vq *vq, const vuf_gmem *m)
{
    vuf_xlate_err e;
    uint8_t *avail = vuf_vq_ready(vq)
                         ? vuf_gmem_ring(m, vq->avail, vuf_vq_avail_bytes(vq->num), VUF_PERM_R, &e)
                         : NULL;
    return avail && ld16(avail + 2) != vq->last_avail;
}

vuf_vq_result vuf_vq_pop(vuf_vq *vq, const vuf_gmem *m, vuf_vq_chain *c)
{
    vuf_vq_result r = res(VUF_VQ_EMPTY);
    if (!vuf_vq_ready(vq))
        return r;
    uint8_t *avail = ring(m, vq->avail, vuf_vq_avail_bytes(vq->num), VUF_PERM_R, &r,
                          "avail ring not in guest memory");
    if (!avail)
        return r;
    uint16_t avail_idx = ld16(avail + 2);
    __atomic_thread_fence(__ATOMIC_ACQUIRE); /* ring entries after the index */
    uint16_t pending = (uint16_t)(avail_idx - vq->last_avail);
    if (pending == 0)
        return r;
    if (pending > vq->num)
        return broken("avail index ahead by more than the queue size");
    uint16_t head = ld16(avail + 4 + 2u * (vq->last_avail % vq->num));
    r = vuf_vq_chain_at(vq, m, head, c);
    if (r.status == VUF_VQ_CHAIN)
        vq->last_avail++;
    return r;
}

uint64_t vuf_vq_read(const vuf_vq_chain *c, uint64_t off, void *dst, uint64_t len)
{
    uint8_t *out = dst;
    uint64_t done = 0;
    for (size_t i = 0; i < c->niov && done < len; i++) {
        const vuf_vq_iov *v = &c->iov[i];
        if (v->write)
            break; /* readable pieces come first */
        if (off >= v->len) {
            off -= v->len;
            continue;
        }
        uint64_t n = v->len - off;
        if (n > len - done)
            n = len - done;
        memcpy(out + done, v->p + off, n);
        done += n;
        off = 0;
    }
    return done;
}

uint64_t vuf_vq_write(const vuf_vq *vq, vuf_gmem *m, const vuf_vq_chain *c, uint64_t off,
                      const void *src, uint64_t len)
{
    const uint8_t *in = src;
    uint64_t done = 0;
    for (size_t i = 0; i < c->niov && done < len; i++) {
        const vuf_vq_iov *v = &c->iov[i];
        if (!v->write)
            continue;
        if (off >= v->len) {
            off -= v->len;
            continue;
        }
        uint64_t n = v->len - off;
        if (n > len - done)
            n = len - done;
        memcpy(v->p + off, in + done, n);
        if (vq->log_all && v->log_gpa != UINT64_MAX)
            vuf_gmem_log_write(m, v->log_gpa + off, n);
        done += n;
        off = 0;
    }
    return done;
}

/* Dirty-log a write to the used ring at byte offset `off` (VHOST_VRING_F_LOG:
 * logged at log_guest_addr + off). */
static void log_used(const vuf_vq *vq, vuf_gmem *m, uint64_t off, uint64_t len)
{
    if (vq->log_all && (vq->addr_flags & VUF_VHOST_VRING_F_LOG))
        vuf_gmem_log_write(m, vq->log_guest_addr + off, len);
}

vuf_vq_result vuf_vq_push(vuf_vq *vq, vuf_gmem *m, uint16_t head, uint32_t len)
{
    vuf_vq_result r = res(VUF_VQ_CHAIN);
    uint8_t *used = ring(m, vq->used, vuf_vq_used_bytes(vq->num), VUF_PERM_W, &r,
                         "used ring not in guest memory");
    if (!used)
        return r;
    uint64_t off = 4 + 8ull * (vq->used_idx % vq->num);
    st32(used + off, head);
    st32(used + off + 4, len);
    __atomic_thread_fence(__ATOMIC_RELEASE); /* the element before the index */
    vq->used_idx++;
    st16(used + 2, vq->used_idx);
    log_used(vq, m, off, 8);
    log_used(vq, m, 2, 2);
    return r;
}

static bool need_event(uint16_t event, uint16_t new_idx, uint16_t old)
{
    return (uint16_t)(new_idx - event - 1) < (uint16_t)(new_idx - old);
}

bool vuf_vq_should_notify(vuf_vq *vq, const vuf_gmem *m)
{
    vuf_xlate_err e;
    uint8_t *avail = vuf_gmem_ring(m, vq->avail, vuf_vq_avail_bytes(vq->num), VUF_PERM_R, &e);
    if (!avail)
        return true; /* when in doubt, notify */
    __atomic_thread_fence(__ATOMIC_SEQ_CST);
    if (!vq->event_idx)
        return !(ld16(avail) & VUF_VRING_AVAIL_F_NO_INTERRUPT);
    uint16_t event = ld16(avail + 4 + 2u * vq->num);
    bool notify = !vq->signalled_valid || need_event(event, vq->used_idx, vq->signalled_used);
    vq->signalled_used = vq->used_idx;
    vq->signalled_valid = true;
    return notify;
}

void vuf_vq_set_avail_event(vuf_vq *vq, vuf_gmem *m)
{
    if (!vq->event_idx)
        return;
    vuf_xlate_err e;
    uint8_t *used = vuf_gmem_ring(m, vq->used, vuf_vq_used_bytes(vq->num), VUF_PERM_W, &e);
    if (!used)
        return;
    uint64_t off = 4 + 8ull * vq->num;
    st16(used + off, vq->last_avail);
    log_used(vq, m, off, 2);
}

/* ---- inflight ---- */

#define INF_HDR 16  /* u64 features, u16 version, desc_num, last_batch_head, used_idx */
#define INF_DESC 16 /* u8 inflight, u8 pad[5], u16 next, u64 counter */

uint64_t vuf_vq_inflight_bytes(uint16_t queue_size)
{
    uint64_t n = INF_HDR + (uint64_t)INF_DESC * queue_size;
    return (n + 63) & ~63ull;
}

void vuf_vq_inflight_init(uint8_t *region, uint16_t queue_size)
{
    memset(region, 0, vuf_vq_inflight_bytes(queue_size));
    st16(region + 8, 1);
    st16(region + 10, queue_size);
}

static uint8_t *inf_desc(const vuf_vq *vq, uint16_t i)
{
    return vq->inflight + INF_HDR + (size_t)INF_DESC * i;
}

void vuf_vq_inflight_get(vuf_vq *vq, uint16_t head)
{
    if (!vq->inflight || head >= vq->inflight_num)
        return;
    uint8_t *d = inf_desc(vq, head);
    uint64_t ctr = vq->inflight_counter++;
    memcpy(d + 8, &ctr, 8);
    __atomic_thread_fence(__ATOMIC_RELEASE);
    d[0] = 1;
}

void vuf_vq_inflight_put(vuf_vq *vq, uint16_t head)
{
    if (!vq->inflight || head >= vq->inflight_num)
        return;
    uint8_t *d = inf_desc(vq, head);
    st16(d + 6, ld16(vq->inflight + 12)); /* desc[head].next = last_batch_head */
    st16(vq->inflight + 12, head);        /* last_batch_head = head */
    __atomic_thread_fence(__ATOMIC_RELEASE);
    d[0] = 0;
    st16(vq->inflight + 14, vq->used_idx); /* used_idx = the used ring's idx */
}

typedef struct {
    uint64_t counter;
    uint16_t head;
} inf_entry;

static int cmp_inf(const void *a, const void *b)
{
    const inf_entry *x = a, *y = b;
    if (x->counter != y->counter)
        return x->counter < y->counter ? -1 : 1;
    return x->head < y->head ? -1 : x->head > y->head;
}

size_t vuf_vq_inflight_pending(vuf_vq *vq, const vuf_gmem *m, uint16_t *heads, size_t cap)
{
    if (!vq->inflight || ld16(vq->inflight + 8) != 1 ||
        ld16(vq->inflight + 10) != vq->inflight_num || vq->inflight_num != vq->num)
        return 0; /* not a region this queue can trust: nothing to resubmit */
    vuf_xlate_err e;
    uint8_t *used = vuf_gmem_ring(m, vq->used, vuf_vq_used_bytes(vq->num), VUF_PERM_R, &e);
    if (!used)
        return 0;
    uint16_t ring_used = ld16(used + 2), saved = ld16(vq->inflight + 14);
    if (ring_used != saved) {
        /* the last batch reached the used ring: it is not inflight */
        uint16_t batch = (uint16_t)(ring_used - saved), i = ld16(vq->inflight + 12);
        for (uint16_t k = 0; k < batch && k < vq->inflight_num && i < vq->inflight_num; k++) {
            uint8_t *d = inf_desc(vq, i);
            d[0] = 0;
            i = ld16(d + 6);
        }
        st16(vq->inflight + 14, ring_used);
    }
    inf_entry *v = malloc(sizeof *v * vq->inflight_num);
    if (!v)
        return 0;
    size_t n = 0;
    uint64_t top = 0;
    for (uint16_t i = 0; i < vq->inflight_num; i++) {
        uint8_t *d = inf_desc(vq, i);
        uint64_t ctr;
        memcpy(&ctr, d + 8, 8);
        if (ctr >= top)
            top = ctr + 1;
        if (d[0] == 1)
            v[n++] = (inf_entry){.counter = ctr, .head = i};
    }
    qsort(v, n, sizeof *v, cmp_inf);
    if (n > cap)
        n = cap;
    for (size_t i = 0; i < n; i++)
        heads[i] = v[i].head;
    free(v);
    if (top > vq->inflight_counter)
        vq->inflight_counter = top;
    return n;
}
