/* SPDX-License-Identifier: Apache-2.0 */
/* Guest memory as the front-end lays it out, the virtio driver, and the
 * guest-memory oracle (harness_int.h).
 *
 * Memory: each region is a memfd mapped once at its largest size and reused
 * by every session; what a session changed is found with SEEK_DATA (a page
 * the device or the driver wrote is a data page of the memfd, a page nobody
 * wrote is a hole) and made zero again by punching it out, so a session
 * costs what it touched, not what it could have touched.
 *
 * The oracle: the driver's writes go to memory and to a shadow copy; after
 * the device ran, the bytes where memory and shadow differ must lie in a
 * device-writable descriptor buffer or a used ring, under every translation
 * the device was given and not taken back (an accepted IOTLB invalidation,
 * REM_MEM_REG or a new memory table narrows what it may write). It is armed
 * while every region the device was given is the session's own layout. */
#include "harness_int.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#define RING_STRIDE VUF_SESSION_RING_STRIDE
#define AVAIL_OFF 0x400ull
#define USED_OFF 0x800ull
#define MAX_MEM VUF_SESSION_MAX_REGION
#define PAGE 4096ull

void vuf_guest_init(vuf_guest *g, const vuf_spec *spec)
{
    memset(g, 0, sizeof *g);
    for (size_t i = 0; i < VUF_H_MAX_REGIONS; i++)
        g->reg[i].fd = -1;
    g->m_num = vuf_spec_msg_by_name(spec, VUF_CHAN_FRONTEND, "SET_VRING_NUM");
    g->m_addr = vuf_spec_msg_by_name(spec, VUF_CHAN_FRONTEND, "SET_VRING_ADDR");
    g->m_mem = vuf_spec_msg_by_name(spec, VUF_CHAN_FRONTEND, "SET_MEM_TABLE");
    g->m_add = vuf_spec_msg_by_name(spec, VUF_CHAN_FRONTEND, "ADD_MEM_REG");
    g->m_rem = vuf_spec_msg_by_name(spec, VUF_CHAN_FRONTEND, "REM_MEM_REG");
    g->m_iotlb = vuf_spec_msg_by_name(spec, VUF_CHAN_FRONTEND, "IOTLB_MSG");
    /* a field the table lacks stays absent: it reads as 0 */
    static const char *const rn[4] = {"guest_addr", "size", "user_addr", "mmap_offset"};
    static const char *const tn[4] = {"type", "iova", "size", "uaddr"};
    static const char *const an[4] = {"index", "desc", "avail", "used"};
    for (int i = 0; i < 4; i++) {
        char path[48];
        if (g->m_add)
            vuf_field_resolve(g->m_add->request, rn[i], &g->f_reg1[i]);
        snprintf(path, sizeof path, "regions[0].%s", rn[i]);
        if (g->m_mem)
            vuf_field_resolve(g->m_mem->request, path, &g->f_regn[i]);
        if (g->m_iotlb)
            vuf_field_resolve(g->m_iotlb->request, tn[i], &g->f_tlb[i]);
        if (g->m_addr)
            vuf_field_resolve(g->m_addr->request, an[i], &g->f_addr[i]);
        if (i < 2 && g->m_num)
            vuf_field_resolve(g->m_num->request, i ? "num" : "index", &g->f_num[i]);
    }
    if (g->m_mem && g->m_mem->request)
        g->regn_stride = g->m_mem->request->elem_size;
}

void vuf_guest_free(vuf_guest *g)
{
    for (size_t i = 0; i < VUF_H_MAX_REGIONS; i++) {
        vuf_gregion *r = &g->reg[i];
        if (r->map)
            munmap(r->map, MAX_MEM);
        if (r->fd >= 0)
            close(r->fd);
        free(r->shadow);
        free(r->allowed);
    }
    memset(g->reg, 0, sizeof g->reg);
}

/* ---------- regions ---------- */

static void dirty(vuf_gregion *r, uint64_t off, uint64_t len)
{
    if (!len)
        return;
    if (r->dirty_hi == 0 || off < r->dirty_lo)
        r->dirty_lo = off;
    if (off + len > r->dirty_hi)
        r->dirty_hi = off + len;
}

/* The data extents of region r's memfd: fn(start, end) for each, in order.
 * false when the kernel cannot tell (then the whole region is one extent). */
static void each_extent(const vuf_gregion *r,
                        void (*fn)(const vuf_gregion *, uint64_t, uint64_t, void *), void *ctx)
{
    off_t at = 0, size = (off_t)r->size;
    while (at < size) {
        off_t d = lseek(r->fd, at, SEEK_DATA);
        if (d < 0) {
            if (errno != ENXIO) /* not supported: everything is data */
                fn(r, (uint64_t)at, (uint64_t)size, ctx);
            return;
        }
        if (d >= size)
            return;
        off_t h = lseek(r->fd, d, SEEK_HOLE);
        if (h < 0 || h > size)
            h = size;
        fn(r, (uint64_t)d, (uint64_t)h, ctx);
        at = h;
    }
}

static bool pool_region(vuf_gregion *r)
{
    if (!r->map) {
        r->fd = memfd_create("vufuzz-guest", MFD_CLOEXEC);
        if (r->fd < 0)
            return false;
        void *p = mmap(NULL, MAX_MEM, PROT_READ | PROT_WRITE, MAP_SHARED, r->fd, 0);
        r->shadow = calloc(1, MAX_MEM);
        r->allowed = calloc(1, MAX_MEM);
        if (p == MAP_FAILED || !r->shadow || !r->allowed)
            return false;
        r->map = p;
        r->fsize = 0;
    }
    if (r->fsize != r->size) {
        /* a shrink drops the pages beyond, a grow adds holes */
        if (ftruncate(r->fd, (off_t)r->size))
            return false;
        r->fsize = r->size;
    }
    r->removed = false;
    return true;
}

bool vuf_guest_setup(vuf_guest *g, const vuf_session_guest *lay)
{
    g->queues = lay->queues;
    g->qsize = lay->queue_size;
    g->nreg = lay->nregions;
    for (size_t i = 0; i < g->nreg; i++) {
        vuf_gregion *r = &g->reg[i];
        r->gpa = lay->gpa0 + lay->region_size * i;
        r->uaddr = lay->uaddr0 + lay->region_size * i;
        r->size = lay->region_size;
        if (!pool_region(r))
            return false;
    }
    g->heap_start = g->heap = g->reg[0].gpa + RING_STRIDE * g->queues;
    g->heap_end = g->reg[0].gpa + lay->region_size;
    memset(g->next_desc, 0, sizeof g->next_desc);
    vuf_guest_forget(g);
    return true;
}

static void zero_extent(const vuf_gregion *r, uint64_t lo, uint64_t hi, void *ctx)
{
    uint64_t *total = ctx;
    memset(r->shadow + lo, 0, hi - lo);
    memset(r->map + lo, 0, hi - lo);
    *total += hi - lo;
}

/* Above this many data bytes in a region, its pages are given back to the
 * kernel (a hole punch: a TLB flush, costly in a VM) instead of zeroed
 * where they are: comparing stays proportional to what sessions touch. */
#define KEEP_DATA (128u << 10)

void vuf_guest_teardown(vuf_guest *g)
{
    for (size_t i = 0; i < g->nreg; i++) {
        vuf_gregion *r = &g->reg[i];
        /* the shadow holds the driver's writes and what was compared, memory
         * what anyone wrote (a data page of the memfd): both zero again */
        if (r->dirty_hi > r->dirty_lo)
            memset(r->shadow + r->dirty_lo, 0, r->dirty_hi - r->dirty_lo);
        uint64_t total = 0;
        each_extent(r, zero_extent, &total);
        if (total > KEEP_DATA &&
            fallocate(r->fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, 0, (off_t)r->size)) {
            /* no hole punching here: the pages stay, zero */
        }
        r->dirty_lo = r->dirty_hi = 0;
        if (r->allowed_hi > r->allowed_lo)
            memset(r->allowed + r->allowed_lo, 0, r->allowed_hi - r->allowed_lo);
        r->allowed_lo = r->allowed_hi = 0;
    }
    g->nreg = 0; /* the regions stay mapped for the next session */
}

void vuf_guest_forget(vuf_guest *g)
{
    g->armed = true;
    memset(g->rings, 0, sizeof g->rings);
    g->ntlb = 0;
    for (size_t i = 0; i < g->nreg; i++)
        g->reg[i].removed = false;
}

uint8_t *vuf_guest_ptr(vuf_guest *g, uint64_t gpa, uint64_t len, int *ri, uint64_t *off)
{
    for (size_t i = 0; i < g->nreg; i++) {
        vuf_gregion *r = &g->reg[i];
        if (gpa >= r->gpa && gpa - r->gpa < r->size && len <= r->size - (gpa - r->gpa)) {
            if (ri)
                *ri = (int)i;
            if (off)
                *off = gpa - r->gpa;
            return r->map + (gpa - r->gpa);
        }
    }
    return NULL;
}

void vuf_guest_write(vuf_guest *g, uint64_t gpa, const void *src, uint64_t len)
{
    int ri;
    uint64_t off;
    uint8_t *p = vuf_guest_ptr(g, gpa, len, &ri, &off);
    if (p && len) {
        memcpy(p, src, len);
        memcpy(g->reg[ri].shadow + off, src, len);
        dirty(&g->reg[ri], off, len);
    }
}

static uint64_t uva_to_gpa(const vuf_guest *g, uint64_t uva)
{
    for (size_t i = 0; i < g->nreg; i++)
        if (uva >= g->reg[i].uaddr && uva - g->reg[i].uaddr < g->reg[i].size)
            return g->reg[i].gpa + (uva - g->reg[i].uaddr);
    return UINT64_MAX;
}

/* ---------- the driver ---------- */

uint32_t vuf_guest_queue(const vuf_guest *g, bool has, uint32_t q)
{
    return has ? q % g->queues : 0;
}

uint64_t vuf_guest_ring_gpa(const vuf_guest *g, uint32_t q)
{
    return g->reg[0].gpa + RING_STRIDE * q;
}

void vuf_guest_desc(vuf_guest *g, uint64_t table, uint32_t slot, uint64_t addr, uint32_t len,
                    uint16_t flags, uint16_t next)
{
    uint8_t d[16];
    memcpy(d, &addr, 8);
    memcpy(d + 8, &len, 4);
    memcpy(d + 12, &flags, 2);
    memcpy(d + 14, &next, 2);
    vuf_guest_write(g, table + 16ull * slot, d, 16);
}

void vuf_guest_avail(vuf_guest *g, uint32_t q, uint32_t head, bool has_idx, uint32_t idx)
{
    uint64_t avail = vuf_guest_ring_gpa(g, q) + AVAIL_OFF;
    uint8_t *p = vuf_guest_ptr(g, avail, 4 + 2ull * g->qsize, NULL, NULL);
    if (!p)
        return;
    uint16_t cur, h = (uint16_t)head;
    memcpy(&cur, p + 2, 2);
    vuf_guest_write(g, avail + 4 + 2 * (cur % g->qsize), &h, 2);
    __atomic_thread_fence(__ATOMIC_RELEASE);
    uint16_t nidx = has_idx ? (uint16_t)idx : (uint16_t)(cur + 1);
    vuf_guest_write(g, avail + 2, &nidx, 2);
}

/* Bump allocation in the heap (region 0 after the rings), wrapping. */
static uint64_t heap_alloc(vuf_guest *g, uint64_t len)
{
    len = (len + 15) & ~15ull;
    if (len > g->heap_end - g->heap_start)
        return UINT64_MAX;
    if (g->heap + len > g->heap_end)
        g->heap = g->heap_start;
    uint64_t a = g->heap;
    g->heap += len;
    return a;
}

typedef struct {
    uint64_t addr;
    uint32_t len;
    uint16_t flags;
} chain_desc;

void vuf_guest_blk(vuf_guest *g, const Vuf__BlkRequest *b)
{
    uint32_t q = vuf_guest_queue(g, b->has_queue, b->queue);
    uint32_t type = b->type;
    uint32_t len = b->has_len ? b->len : type == 8 ? 20 : type == 4 ? 0 : 512;
    if (len > 1u << 20)
        len = 1u << 20;
    uint32_t segs = b->has_segments && b->segments ? b->segments : 1;
    if (segs > 16)
        segs = 16;
    if (len && segs > len)
        segs = len;
    uint64_t hdr = heap_alloc(g, 16), data = heap_alloc(g, len ? len : 1),
             status = heap_alloc(g, 1);
    if (hdr == UINT64_MAX || data == UINT64_MAX || status == UINT64_MAX)
        return;
    uint8_t h[16] = {0};
    memcpy(h, &type, 4);
    uint64_t sector = b->has_sector ? b->sector : 0;
    memcpy(h + 8, &sector, 8);
    vuf_guest_write(g, hdr, h, 16);
    bool out = type == 1;
    if (out && b->has_data && b->data.len) {
        /* the data repeated to len, written a block at a time */
        uint8_t blk[4096];
        size_t pat = b->data.len;
        for (uint32_t i = 0; i < len;) {
            uint32_t n = len - i < sizeof blk ? len - i : (uint32_t)sizeof blk;
            for (uint32_t k = 0; k < n; k++)
                blk[k] = b->data.data[(i + k) % pat];
            vuf_guest_write(g, data + i, blk, n);
            i += n;
        }
    }
    uint8_t st = 0xff;
    vuf_guest_write(g, status, &st, 1);
    /* the chain: header, data segments, status */
    chain_desc c[18];
    size_t n = 0;
    c[n++] = (chain_desc){hdr, 16, 0};
    for (uint32_t s = 0; len && s < segs; s++) {
        uint32_t part = len / segs + (s < len % segs);
        uint64_t at = data + (uint64_t)(len / segs) * s + (s < len % segs ? s : len % segs);
        c[n++] = (chain_desc){at, part, (uint16_t)(out ? 0 : 2)};
    }
    c[n++] = (chain_desc){status, 1, 2};
    uint64_t table = vuf_guest_ring_gpa(g, q);
    uint32_t base = g->next_desc[q];
    if (b->has_indirect && b->indirect) {
        uint64_t it = heap_alloc(g, 16 * n);
        if (it == UINT64_MAX)
            return;
        for (size_t i = 0; i < n; i++)
            vuf_guest_desc(g, it, (uint32_t)i, c[i].addr, c[i].len,
                           (uint16_t)(c[i].flags | (i + 1 < n ? 1 : 0)), (uint16_t)(i + 1));
        vuf_guest_desc(g, table, base % g->qsize, it, (uint32_t)(16 * n), 4, 0);
        g->next_desc[q] = (base + 1) % g->qsize;
    } else {
        for (size_t i = 0; i < n; i++)
            vuf_guest_desc(g, table, (uint32_t)((base + i) % g->qsize), c[i].addr, c[i].len,
                           (uint16_t)(c[i].flags | (i + 1 < n ? 1 : 0)),
                           (uint16_t)((base + i + 1) % g->qsize));
        g->next_desc[q] = (uint32_t)((base + n) % g->qsize);
    }
    vuf_guest_avail(g, q, base % g->qsize, false, 0);
}

/* ---------- the model of what the device was told ---------- */

typedef struct {
    uint64_t gpa, size, uaddr, mmap_offset;
} region_desc;

/* Is x one of the layout's regions (index in *k)? */
static bool region_is_layout(const vuf_guest *g, const region_desc *x, int *k)
{
    for (size_t i = 0; i < g->nreg; i++)
        if (x->gpa == g->reg[i].gpa && x->size == g->reg[i].size && x->uaddr == g->reg[i].uaddr &&
            x->mmap_offset == 0) {
            if (k)
                *k = (int)i;
            return true;
        }
    return false;
}

/* A memory region of message bytes: refs[4] at `shift`. */
static region_desc read_region(const vuf_field_ref *refs, const uint8_t *pl, size_t len,
                               uint64_t shift)
{
    return (region_desc){.gpa = vuf_field_get(&refs[0], pl, len, shift),
                         .size = vuf_field_get(&refs[1], pl, len, shift),
                         .uaddr = vuf_field_get(&refs[2], pl, len, shift),
                         .mmap_offset = vuf_field_get(&refs[3], pl, len, shift)};
}

/* The layout regions a memory table names (bit i: region i); false when it
 * names a region that is not the layout's. */
static bool table_regions(const vuf_guest *g, const vuf_payload_def *p, const uint8_t *pl,
                          size_t len, unsigned *mask)
{
    *mask = 0;
    uint64_t n = vuf_payload_count(p, pl, len);
    bool ok = true;
    for (uint64_t i = 0; i < n && i < 64; i++) {
        region_desc x = read_region(g->f_regn, pl, len, i * g->regn_stride);
        int k;
        if (region_is_layout(g, &x, &k))
            *mask |= 1u << k;
        else
            ok = false;
    }
    return ok;
}

/* What the device may write grows at once (refused requests included) and
 * shrinks only once the device said it took the request (model_reply). */
void vuf_guest_model_request(vuf_guest *g, const vuf_msg_view *v)
{
    const vuf_msg_def *d = v->def;
    const uint8_t *pl = v->payload;
    size_t len = v->payload_len;
    if (!d || v->is_reply)
        return;
    if (d == g->m_num) {
        uint64_t q = vuf_field_get(&g->f_num[0], pl, len, 0),
                 n = vuf_field_get(&g->f_num[1], pl, len, 0);
        if (q < VUF_H_MAX_QUEUES && n > g->rings[q].num)
            g->rings[q].num = n > 32768 ? 32768 : (uint32_t)n;
    } else if (d == g->m_addr) {
        uint64_t q = vuf_field_get(&g->f_addr[0], pl, len, 0);
        vuf_ring_addr a = {.desc = vuf_field_get(&g->f_addr[1], pl, len, 0),
                           .avail = vuf_field_get(&g->f_addr[2], pl, len, 0),
                           .used = vuf_field_get(&g->f_addr[3], pl, len, 0)};
        if (q >= VUF_H_MAX_QUEUES)
            return;
        vuf_ring_model *m = &g->rings[q];
        for (size_t i = 0; i < m->n; i++)
            if (!memcmp(&m->a[i], &a, sizeof a))
                return;
        if (m->n == VUF_RING_HIST)
            g->armed = false; /* too many to follow */
        else
            m->a[m->n++] = a;
    } else if (d == g->m_iotlb) {
        if (vuf_field_get(&g->f_tlb[0], pl, len, 0) != 2)
            return; /* an invalidation narrows: once accepted */
        if (g->ntlb == VUF_TLB_MAX) {
            g->armed = false;
            return;
        }
        g->tlb[g->ntlb].iova = vuf_field_get(&g->f_tlb[1], pl, len, 0);
        g->tlb[g->ntlb].size = vuf_field_get(&g->f_tlb[2], pl, len, 0);
        g->tlb[g->ntlb++].uaddr = vuf_field_get(&g->f_tlb[3], pl, len, 0);
    } else if (d == g->m_add) {
        region_desc x = read_region(g->f_reg1, pl, len, 0);
        int k;
        if (!region_is_layout(g, &x, &k))
            g->armed = false;
        else
            g->reg[k].removed = false;
    } else if (d == g->m_mem) {
        unsigned mask;
        if (!table_regions(g, d->request, pl, len, &mask))
            g->armed = false;
        for (size_t i = 0; i < g->nreg; i++)
            if (mask >> i & 1)
                g->reg[i].removed = false;
    }
}

void vuf_guest_model_reply(vuf_guest *g, const vuf_msg_def *d, bool failed, const vuf_msg_view *v)
{
    if (failed || !d || !v)
        return;
    const uint8_t *pl = v->payload;
    size_t len = v->payload_len;
    if (d == g->m_iotlb && vuf_field_get(&g->f_tlb[0], pl, len, 0) == 3) {
        /* an accepted invalidation: the device may no longer use any
         * translation inside [iova, iova+size) */
        uint64_t iova = vuf_field_get(&g->f_tlb[1], pl, len, 0),
                 size = vuf_field_get(&g->f_tlb[2], pl, len, 0);
        uint64_t end = iova + size < iova ? UINT64_MAX : iova + size;
        size_t k = 0;
        for (size_t i = 0; i < g->ntlb; i++) {
            const vuf_tlb_entry *e = &g->tlb[i];
            uint64_t eend = e->iova + e->size < e->iova ? UINT64_MAX : e->iova + e->size;
            if (size && e->iova < end && iova < eend)
                continue; /* overlaps: gone (the device drops overlapping entries) */
            g->tlb[k++] = *e;
        }
        g->ntlb = k;
    } else if (d == g->m_rem) {
        region_desc x = read_region(g->f_reg1, pl, len, 0);
        for (size_t i = 0; i < g->nreg; i++)
            if (x.gpa == g->reg[i].gpa && x.size == g->reg[i].size && x.uaddr == g->reg[i].uaddr)
                g->reg[i].removed = true;
    } else if (d == g->m_mem) {
        unsigned mask;
        table_regions(g, d->request, pl, len, &mask);
        for (size_t i = 0; i < g->nreg; i++)
            if (!(mask >> i & 1))
                g->reg[i].removed = true; /* replaced: not in the new table */
    }
}

void vuf_guest_check_fds(vuf_guest *g, const vuf_session_wire *w, const int *guests, size_t n)
{
    bool any = false;
    for (size_t i = 0; i < n; i++)
        any |= guests[i] >= 0;
    if (!any)
        return;
    if (!w->def || (w->def != g->m_mem && w->def != g->m_add) || w->len < VUF_HDR_SIZE) {
        g->armed = false;
        return;
    }
    const uint8_t *pl = w->data + VUF_HDR_SIZE;
    size_t len = w->len - VUF_HDR_SIZE;
    for (size_t i = 0; i < n; i++) {
        if (guests[i] < 0)
            continue;
        region_desc x = w->def == g->m_mem ? read_region(g->f_regn, pl, len, i * g->regn_stride)
                                           : read_region(g->f_reg1, pl, len, 0);
        int k;
        if (!region_is_layout(g, &x, &k) || k != guests[i])
            g->armed = false;
    }
}

/* ---------- the oracle ---------- */

typedef struct {
    vuf_guest *g;
    uint64_t lo[VUF_H_MAX_REGIONS], hi[VUF_H_MAX_REGIONS]; /* allowed bytes set: cleared after */
} allow_ctx;

/* Mark [gpa, gpa+len) allowed, clipped to guest memory and to regions the
 * device still has. */
static void allow_gpa(allow_ctx *a, uint64_t gpa, uint64_t len)
{
    vuf_guest *g = a->g;
    for (size_t i = 0; i < g->nreg && len; i++) {
        vuf_gregion *r = &g->reg[i];
        if (r->removed)
            continue;
        uint64_t lo = gpa > r->gpa ? gpa : r->gpa;
        uint64_t end = gpa + len < gpa ? UINT64_MAX : gpa + len;
        uint64_t rend = r->gpa + r->size;
        uint64_t hi = end < rend ? end : rend;
        if (lo >= hi)
            continue;
        memset(r->allowed + (lo - r->gpa), 1, hi - lo);
        if (a->hi[i] == 0 || lo - r->gpa < a->lo[i])
            a->lo[i] = lo - r->gpa;
        if (hi - r->gpa > a->hi[i])
            a->hi[i] = hi - r->gpa;
    }
}

/* Every guest-physical place an address may mean: itself, and every IOTLB
 * translation the device holds. `is_ring`: a ring address is a user
 * address. */
typedef void (*place_fn)(allow_ctx *a, uint64_t gpa, uint64_t len, void *ctx);

static void each_place(allow_ctx *a, uint64_t addr, uint64_t len, bool is_ring, place_fn fn,
                       void *ctx)
{
    vuf_guest *g = a->g;
    uint64_t p = is_ring ? uva_to_gpa(g, addr) : addr;
    if (p != UINT64_MAX)
        fn(a, p, len, ctx);
    for (size_t i = 0; i < g->ntlb; i++) {
        uint64_t iova = g->tlb[i].iova, sz = g->tlb[i].size;
        if (addr < iova || addr - iova >= sz)
            continue;
        uint64_t gp = uva_to_gpa(g, g->tlb[i].uaddr + (addr - iova));
        if (gp != UINT64_MAX)
            fn(a, gp, len < sz - (addr - iova) ? len : sz - (addr - iova), ctx);
    }
}

static void allow_cb(allow_ctx *a, uint64_t gpa, uint64_t len, void *ctx)
{
    (void)ctx;
    allow_gpa(a, gpa, len);
}

typedef struct {
    uint32_t n;
    bool indirect_ok;
} table_ctx;

static void allow_table(allow_ctx *a, uint64_t gpa, uint64_t len, void *ctx);

/* A descriptor, as it was before the step (read from the shadow). */
static void allow_desc(allow_ctx *a, const uint8_t *d, bool indirect_ok)
{
    uint64_t addr;
    uint32_t len;
    uint16_t flags;
    memcpy(&addr, d, 8);
    memcpy(&len, d + 8, 4);
    memcpy(&flags, d + 12, 2);
    if ((flags & 4) && indirect_ok) {
        table_ctx tc = {.n = len / 16 > 1024 ? 1024 : len / 16, .indirect_ok = false};
        each_place(a, addr, (uint64_t)tc.n * 16, false, allow_table, &tc);
    } else if (flags & 2) {
        each_place(a, addr, len, false, allow_cb, NULL);
    }
}

static void allow_table(allow_ctx *a, uint64_t gpa, uint64_t len, void *ctx)
{
    const table_ctx *tc = ctx;
    int ri;
    uint64_t off;
    for (uint32_t i = 0; i < tc->n && (uint64_t)i * 16 + 16 <= len; i++)
        if (vuf_guest_ptr(a->g, gpa + 16ull * i, 16, &ri, &off))
            allow_desc(a, a->g->reg[ri].shadow + off, tc->indirect_ok);
}

static void compute_allowed(allow_ctx *a)
{
    vuf_guest *g = a->g;
    for (uint32_t q = 0; q < VUF_H_MAX_QUEUES; q++) {
        vuf_ring_model *m = &g->rings[q];
        uint32_t num = m->num ? m->num : 1024;
        if (num > 32768)
            num = 32768;
        for (size_t k = 0; k < m->n; k++) {
            each_place(a, m->a[k].used, 6 + 8ull * num, true, allow_cb, NULL);
            table_ctx tc = {.n = num, .indirect_ok = true};
            each_place(a, m->a[k].desc, 16ull * num, true, allow_table, &tc);
        }
    }
}

#define MAX_EXTENTS 64

typedef struct {
    size_t n;
    uint64_t lo[MAX_EXTENTS], hi[MAX_EXTENTS];
} extents;

static void add_extent(const vuf_gregion *r, uint64_t lo, uint64_t hi, void *ctx)
{
    (void)r;
    extents *x = ctx;
    if (x->n == MAX_EXTENTS) {
        x->hi[x->n - 1] = hi; /* many: the last one grows to cover the rest */
        return;
    }
    x->lo[x->n] = lo;
    x->hi[x->n++] = hi;
}

/* The first changed byte of [lo, hi) of region r at or after o, or hi. */
static uint64_t next_change(const vuf_gregion *r, uint64_t o, uint64_t hi)
{
    while (o < hi) {
        if (o % PAGE == 0 && hi - o >= PAGE && !memcmp(r->map + o, r->shadow + o, PAGE)) {
            o += PAGE; /* an unchanged page */
            continue;
        }
        if (o % 64 == 0 && hi - o >= 64 && !memcmp(r->map + o, r->shadow + o, 64)) {
            o += 64; /* an unchanged block */
            continue;
        }
        if (r->map[o] != r->shadow[o])
            return o;
        o++;
    }
    return hi;
}

bool vuf_guest_compare(vuf_guest *g, uint64_t *gpa, uint64_t *len, size_t *region)
{
    extents ext[VUF_H_MAX_REGIONS];
    allow_ctx a = {.g = g};
    bool computed = false, found = false;
    /* the allowed places are computed from the shadow (the memory as it was
     * before the step) before any of it takes the new bytes */
    if (g->sticky) {
        /* every descriptor seen adds to what stays allowed */
        compute_allowed(&a);
        computed = true;
    }
    for (size_t i = 0; i < g->nreg; i++) {
        vuf_gregion *r = &g->reg[i];
        ext[i].n = 0;
        each_extent(r, add_extent, &ext[i]);
        for (size_t k = 0; k < ext[i].n && !found; k++) {
            for (uint64_t o = next_change(r, ext[i].lo[k], ext[i].hi[k]); o < ext[i].hi[k];
                 o = next_change(r, o + 1, ext[i].hi[k])) {
                if (!computed) {
                    compute_allowed(&a);
                    computed = true;
                }
                if (r->allowed[o])
                    continue;
                uint64_t e = o;
                while (e < ext[i].hi[k] && r->map[e] != r->shadow[e] && !r->allowed[e])
                    e++;
                found = true;
                *gpa = r->gpa + o;
                *len = e - o;
                *region = i;
                break;
            }
        }
    }
    for (size_t i = 0; i < g->nreg; i++) {
        vuf_gregion *r = &g->reg[i];
        for (size_t k = 0; k < ext[i].n; k++)
            memcpy(r->shadow + ext[i].lo[k], r->map + ext[i].lo[k], ext[i].hi[k] - ext[i].lo[k]);
        if (a.hi[i] <= a.lo[i])
            continue;
        if (!g->sticky) {
            memset(r->allowed + a.lo[i], 0, a.hi[i] - a.lo[i]);
            continue;
        }
        if (r->allowed_hi == 0 || a.lo[i] < r->allowed_lo)
            r->allowed_lo = a.lo[i];
        if (a.hi[i] > r->allowed_hi)
            r->allowed_hi = a.hi[i];
    }
    return !found;
}

static void sync_extent(const vuf_gregion *r, uint64_t lo, uint64_t hi, void *ctx)
{
    (void)ctx;
    memcpy(r->shadow + lo, r->map + lo, hi - lo);
}

void vuf_guest_sync(vuf_guest *g)
{
    for (size_t i = 0; i < g->nreg; i++)
        each_extent(&g->reg[i], sync_extent, NULL);
}
