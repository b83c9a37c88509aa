/* SPDX-License-Identifier: Apache-2.0 */
/* Guest memory of the reference back-end: regions, IOTLB, dirty log.
 *
 * Security model: do not assume a value from the front-end is sensible. Every
 * range is checked as a whole against one mapping, with arithmetic on the
 * last byte (base + size - 1) so that nothing overflows. */
#include "vuf_gmem.h"

#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#define LOG_PAGE 0x1000ull

typedef struct {
    vuf_gmem_region r;
    uint8_t *host; /* host address of guest address r.gpa / user address r.uaddr */
    void *map;     /* what mmap returned */
    size_t map_len;
} region;

typedef struct {
    uint64_t iova, size, uaddr;
    uint8_t perm;
} iotlb_entry;

struct vuf_gmem {
    region *reg;
    size_t nreg;
    uint32_t max_regions;
    bool iommu;
    iotlb_entry *tlb; /* sorted by iova, non-overlapping */
    size_t ntlb;
    uint32_t tlb_max;
    uint8_t *log;
    uint64_t log_size;
    void *log_map;
    size_t log_map_len;
};

const char *vuf_gmem_status_str(vuf_gmem_status s)
{
    switch (s) {
    case VUF_GMEM_OK:
        return "ok";
    case VUF_GMEM_EZERO:
        return "size 0";
    case VUF_GMEM_EOVERFLOW:
        return "address range wraps around";
    case VUF_GMEM_EOVERLAP:
        return "overlaps another region";
    case VUF_GMEM_EFD:
        return "fd too small for the range, or not mappable";
    case VUF_GMEM_EFULL:
        return "no free slot";
    case VUF_GMEM_ENOENT:
        return "no such region";
    }
    return "invalid status";
}

vuf_gmem *vuf_gmem_new(uint32_t max_regions, uint32_t iotlb_max)
{
    vuf_gmem *m = calloc(1, sizeof *m);
    if (!m)
        return NULL;
    m->reg = calloc(max_regions ? max_regions : 1, sizeof *m->reg);
    /* the IOTLB is allocated at its first update: most sessions have none */
    if (!m->reg) {
        vuf_gmem_free(m);
        return NULL;
    }
    m->max_regions = max_regions;
    m->tlb_max = iotlb_max;
    return m;
}

static void unmap_region(region *g)
{
    if (g->map)
        munmap(g->map, g->map_len);
    memset(g, 0, sizeof *g);
}

void vuf_gmem_clear(vuf_gmem *m)
{
    for (size_t i = 0; i < m->nreg; i++)
        unmap_region(&m->reg[i]);
    m->nreg = 0;
}

void vuf_gmem_free(vuf_gmem *m)
{
    if (!m)
        return;
    if (m->reg)
        vuf_gmem_clear(m);
    vuf_gmem_log_unmap(m);
    free(m->reg);
    free(m->tlb);
    free(m);
}

size_t vuf_gmem_count(const vuf_gmem *m)
{
    return m->nreg;
}

uint32_t vuf_gmem_max_regions(const vuf_gmem *m)
{
    return m->max_regions;
}

/* [addr, addr+len) inside [start, start+size); len >= 1. */
static bool inside(uint64_t start, uint64_t size, uint64_t addr, uint64_t len)
{
    if (addr < start || len == 0)
        return false;
    uint64_t off = addr - start;
    return off < size && len <= size - off;
}

/* [a, a+as) and [b, b+bs) share a byte; both sizes >= 1 and both last
 * bytes addressable. */
static bool overlaps(uint64_t a, uint64_t as, uint64_t b, uint64_t bs)
{
    return a <= b + (bs - 1) && b <= a + (as - 1);
}

static bool wraps(uint64_t base, uint64_t size)
{
    return base + (size - 1) < base;
}

static vuf_gmem_status check_region(const vuf_gmem_region *r)
{
    if (r->size == 0)
        return VUF_GMEM_EZERO;
    if (wraps(r->gpa, r->size) || wraps(r->uaddr, r->size) || wraps(r->mmap_offset, r->size))
        return VUF_GMEM_EOVERFLOW;
    return VUF_GMEM_OK;
}

static bool regions_overlap(const vuf_gmem_region *a, const vuf_gmem_region *b)
{
    return overlaps(a->gpa, a->size, b->gpa, b->size) ||
           overlaps(a->uaddr, a->size, b->uaddr, b->size);
}

/* Map [off, off+len) of fd read-write and shared. The fd must be at least
 * off + len bytes long: mapping past its end would fault on access. The
 * mapping is followed by an inaccessible guard page, so an access that runs
 * past its end faults at once instead of landing in whatever the kernel
 * placed next (defence in depth, and a deterministic oracle for fuzzing). */
void *vuf_gmem_map(int fd, uint64_t off, uint64_t len, void **map, size_t *map_len)
{
    struct stat st;
    if (fd < 0 || fstat(fd, &st) || st.st_size <= 0)
        return NULL;
    uint64_t fsize = (uint64_t)st.st_size;
    if (off >= fsize || len > fsize - off)
        return NULL;
    uint64_t pg = (uint64_t)sysconf(_SC_PAGESIZE);
    uint64_t aligned = off & ~(pg - 1), delta = off - aligned;
    if (len + delta > (uint64_t)SIZE_MAX)
        return NULL;
    uint64_t body = (len + delta + pg - 1) & ~(pg - 1);
    if (body < len + delta || body > (uint64_t)SIZE_MAX - pg)
        return NULL;
    /* reserve body + guard, inaccessible, then put the fd over the body */
    void *r = mmap(NULL, (size_t)(body + pg), PROT_NONE,
                   MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    if (r == MAP_FAILED)
        return NULL;
    void *p = mmap(r, (size_t)(len + delta), PROT_READ | PROT_WRITE, MAP_SHARED | MAP_FIXED, fd,
                   (off_t)aligned);
    if (p == MAP_FAILED) {
        munmap(r, (size_t)(body + pg));
        return NULL;
    }
    *map = r;
    *map_len = (size_t)(body + pg);
    return (uint8_t *)r + delta;
}

static vuf_gmem_status map_region(region *g, const vuf_gmem_region *r, int fd)
{
    memset(g, 0, sizeof *g);
    g->host = vuf_gmem_map(fd, r->mmap_offset, r->size, &g->map, &g->map_len);
    if (!g->host)
        return VUF_GMEM_EFD;
    g->r = *r;
    return VUF_GMEM_OK;
}

vuf_gmem_status vuf_gmem_set(vuf_gmem *m, const vuf_gmem_region *r, const int *fds, size_t n,
                             size_t *bad)
{
    *bad = 0;
    if (n > m->max_regions)
        return VUF_GMEM_EFULL;
    for (size_t i = 0; i < n; i++) {
        *bad = i;
        vuf_gmem_status s = check_region(&r[i]);
        if (s)
            return s;
        for (size_t j = 0; j < i; j++)
            if (regions_overlap(&r[i], &r[j]))
                return VUF_GMEM_EOVERLAP;
    }
    region *nr = calloc(m->max_regions ? m->max_regions : 1, sizeof *nr);
    if (!nr)
        return VUF_GMEM_EFD;
    for (size_t i = 0; i < n; i++) {
        *bad = i;
        if (map_region(&nr[i], &r[i], fds[i])) {
            for (size_t j = 0; j < i; j++)
                unmap_region(&nr[j]);
            free(nr);
            return VUF_GMEM_EFD;
        }
    }
    vuf_gmem_clear(m);
    free(m->reg);
    m->reg = nr;
    m->nreg = n;
    return VUF_GMEM_OK;
}

vuf_gmem_status vuf_gmem_add(vuf_gmem *m, const vuf_gmem_region *r, int fd)
{
    vuf_gmem_status s = check_region(r);
    if (s)
        return s;
    if (m->nreg >= m->max_regions)
        return VUF_GMEM_EFULL;
    for (size_t i = 0; i < m->nreg; i++)
        if (regions_overlap(r, &m->reg[i].r))
            return VUF_GMEM_EOVERLAP;
    region g;
    if (map_region(&g, r, fd))
        return VUF_GMEM_EFD;
    m->reg[m->nreg++] = g;
    return VUF_GMEM_OK;
}

vuf_gmem_status vuf_gmem_remove(vuf_gmem *m, const vuf_gmem_region *r)
{
    for (size_t i = 0; i < m->nreg; i++) {
        const vuf_gmem_region *x = &m->reg[i].r;
        if (x->gpa == r->gpa && x->uaddr == r->uaddr && x->size == r->size) {
            unmap_region(&m->reg[i]);
            m->reg[i] = m->reg[--m->nreg];
            memset(&m->reg[m->nreg], 0, sizeof m->reg[0]);
            return VUF_GMEM_OK;
        }
    }
    return VUF_GMEM_ENOENT;
}

static const region *by_uva(const vuf_gmem *m, uint64_t uva)
{
    for (size_t i = 0; i < m->nreg; i++)
        if (inside(m->reg[i].r.uaddr, m->reg[i].r.size, uva, 1))
            return &m->reg[i];
    return NULL;
}

static const region *by_gpa(const vuf_gmem *m, uint64_t gpa)
{
    for (size_t i = 0; i < m->nreg; i++)
        if (inside(m->reg[i].r.gpa, m->reg[i].r.size, gpa, 1))
            return &m->reg[i];
    return NULL;
}

bool vuf_gmem_uva_covered(const vuf_gmem *m, uint64_t uaddr, uint64_t size)
{
    const region *g = by_uva(m, uaddr);
    return g && inside(g->r.uaddr, g->r.size, uaddr, size);
}

uint64_t vuf_gmem_uva_to_gpa(const vuf_gmem *m, uint64_t uva)
{
    const region *g = by_uva(m, uva);
    return g ? g->r.gpa + (uva - g->r.uaddr) : UINT64_MAX;
}

void *vuf_gmem_gpa(const vuf_gmem *m, uint64_t gpa, uint64_t len)
{
    const region *g = by_gpa(m, gpa);
    if (!g || !inside(g->r.gpa, g->r.size, gpa, len))
        return NULL;
    return g->host + (gpa - g->r.gpa);
}

/* ---- IOTLB ---- */

void vuf_gmem_set_iommu(vuf_gmem *m, bool on)
{
    if (m->iommu != on)
        m->ntlb = 0;
    m->iommu = on;
}

bool vuf_gmem_iommu(const vuf_gmem *m)
{
    return m->iommu;
}

size_t vuf_gmem_iotlb_count(const vuf_gmem *m)
{
    return m->ntlb;
}

void vuf_gmem_iotlb_clear(vuf_gmem *m)
{
    m->ntlb = 0;
}

void vuf_gmem_iotlb_invalidate(vuf_gmem *m, uint64_t iova, uint64_t size)
{
    if (size == 0)
        return;
    if (wraps(iova, size))
        size = UINT64_MAX - iova + 1; /* up to the end of the space */
    size_t k = 0;
    for (size_t i = 0; i < m->ntlb; i++)
        if (!overlaps(m->tlb[i].iova, m->tlb[i].size, iova, size))
            m->tlb[k++] = m->tlb[i];
    m->ntlb = k;
}

vuf_gmem_status vuf_gmem_iotlb_update(vuf_gmem *m, uint64_t iova, uint64_t size, uint64_t uaddr,
                                      uint8_t perm)
{
    if (size == 0)
        return VUF_GMEM_EZERO;
    if (wraps(iova, size) || wraps(uaddr, size))
        return VUF_GMEM_EOVERFLOW;
    vuf_gmem_iotlb_invalidate(m, iova, size);
    if (!m->tlb && m->tlb_max && !(m->tlb = malloc(m->tlb_max * sizeof *m->tlb)))
        return VUF_GMEM_EFULL; /* out of memory: no room */
    if (m->ntlb >= m->tlb_max)
        return VUF_GMEM_EFULL;
    size_t at = 0;
    while (at < m->ntlb && m->tlb[at].iova < iova)
        at++;
    memmove(&m->tlb[at + 1], &m->tlb[at], (m->ntlb - at) * sizeof m->tlb[0]);
    m->tlb[at] = (iotlb_entry){.iova = iova, .size = size, .uaddr = uaddr, .perm = perm};
    m->ntlb++;
    return VUF_GMEM_OK;
}

static const iotlb_entry *tlb_find(const vuf_gmem *m, uint64_t iova)
{
    size_t lo = 0, hi = m->ntlb;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        const iotlb_entry *e = &m->tlb[mid];
        if (iova < e->iova)
            hi = mid;
        else if (iova - e->iova >= e->size)
            lo = mid + 1;
        else
            return e;
    }
    return NULL;
}

/* ---- translation ---- */

static void *xerr(vuf_xlate_err *err, vuf_xlate_status s, uint64_t at)
{
    if (err) {
        err->status = s;
        err->fault = at;
    }
    return NULL;
}

void *vuf_gmem_buf(const vuf_gmem *m, uint64_t addr, uint64_t len, unsigned perm, uint64_t *run,
                   uint64_t *log_gpa, vuf_xlate_err *err)
{
    *run = 0;
    *log_gpa = UINT64_MAX;
    if (err)
        err->status = VUF_XLATE_OK;
    if (len == 0)
        return xerr(err, VUF_XLATE_FAULT, addr);
    uint64_t uva, want = len;
    if (m->iommu) {
        const iotlb_entry *e = tlb_find(m, addr);
        if (!e)
            return xerr(err, VUF_XLATE_MISS, addr);
        if ((e->perm & perm) != perm)
            return xerr(err, VUF_XLATE_DENIED, addr);
        uint64_t off = addr - e->iova;
        if (want > e->size - off)
            want = e->size - off;
        uva = e->uaddr + off;
        const region *g = by_uva(m, uva);
        if (!g)
            return xerr(err, VUF_XLATE_FAULT, addr);
        uint64_t roff = uva - g->r.uaddr;
        if (want > g->r.size - roff)
            want = g->r.size - roff;
        *run = want;
        *log_gpa = g->r.gpa + roff;
        return g->host + roff;
    }
    const region *g = by_gpa(m, addr);
    if (!g)
        return xerr(err, VUF_XLATE_FAULT, addr);
    uint64_t off = addr - g->r.gpa;
    if (want > g->r.size - off)
        want = g->r.size - off;
    *run = want;
    *log_gpa = addr;
    return g->host + off;
}

void *vuf_gmem_ring(const vuf_gmem *m, uint64_t addr, uint64_t len, unsigned perm,
                    vuf_xlate_err *err)
{
    if (err)
        err->status = VUF_XLATE_OK;
    if (len == 0 || wraps(addr, len))
        return xerr(err, VUF_XLATE_FAULT, addr);
    if (!m->iommu) {
        /* a user address: the whole ring in one region */
        const region *g = by_uva(m, addr);
        if (!g || !inside(g->r.uaddr, g->r.size, addr, len))
            return xerr(err, VUF_XLATE_FAULT, addr);
        return g->host + (addr - g->r.uaddr);
    }
    /* IOVA: possibly several IOTLB entries, contiguous in host memory */
    uint8_t *start = NULL, *next = NULL;
    uint64_t done = 0;
    while (done < len) {
        uint64_t run, lg;
        uint8_t *p = vuf_gmem_buf(m, addr + done, len - done, perm, &run, &lg, err);
        if (!p)
            return NULL;
        if (!start)
            start = p;
        else if (p != next)
            return xerr(err, VUF_XLATE_FAULT, addr + done);
        next = p + run;
        done += run;
    }
    return start;
}

/* ---- dirty log ---- */

vuf_gmem_status vuf_gmem_log_map(vuf_gmem *m, int fd, uint64_t offset, uint64_t size)
{
    if (size == 0)
        return VUF_GMEM_EZERO;
    if (wraps(offset, size))
        return VUF_GMEM_EOVERFLOW;
    void *map;
    size_t len;
    uint8_t *p = vuf_gmem_map(fd, offset, size, &map, &len);
    if (!p)
        return VUF_GMEM_EFD;
    vuf_gmem_log_unmap(m);
    m->log = p;
    m->log_size = size;
    m->log_map = map;
    m->log_map_len = len;
    return VUF_GMEM_OK;
}

void vuf_gmem_log_unmap(vuf_gmem *m)
{
    if (m->log_map)
        munmap(m->log_map, m->log_map_len);
    m->log = NULL;
    m->log_map = NULL;
    m->log_size = 0;
    m->log_map_len = 0;
}

bool vuf_gmem_log_mapped(const vuf_gmem *m)
{
    return m->log != NULL;
}

uint64_t vuf_gmem_log_write(vuf_gmem *m, uint64_t gpa, uint64_t len)
{
    if (!m->log || len == 0)
        return 0;
    uint64_t first = gpa / LOG_PAGE;
    uint64_t last = (wraps(gpa, len) ? UINT64_MAX : gpa + (len - 1)) / LOG_PAGE;
    uint64_t missed = 0;
    for (uint64_t page = first;; page++) {
        uint64_t byte = page / 8;
        if (byte < m->log_size)
            __atomic_fetch_or(&m->log[byte], (uint8_t)(1u << (page % 8)), __ATOMIC_RELAXED);
        else {
            /* the rest of the range is beyond the log too */
            missed += last - page + 1;
            break;
        }
        if (page == last)
            break;
    }
    return missed;
}
