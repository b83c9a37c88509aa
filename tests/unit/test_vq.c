/* SPDX-License-Identifier: Apache-2.0 */
/* Virtqueue primitives on a memfd-backed guest memory: the pending check the
 * EVENT_IDX re-check relies on, chain walks at the queue-size bound, and the
 * guard page after every mapping of guest memory. */
#include "vuf_gmem.h"
#include "vuf_test.h"
#include "vuf_vq.h"

#include <errno.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#define MEM 0x10000
#define UA 0x7f0000000000ull

static void put16(uint8_t *p, uint16_t v)
{
    memcpy(p, &v, 2);
}

/* Can this process read p? write(2) from an inaccessible address fails
 * with EFAULT instead of faulting. */
static bool readable(int pipe_w, const void *p)
{
    ssize_t n = write(pipe_w, p, 1);
    return n == 1 || errno != EFAULT;
}

static void desc(uint8_t *table, uint16_t i, uint64_t addr, uint32_t len, uint16_t flags,
                 uint16_t next)
{
    uint8_t *d = table + 16u * i;
    memcpy(d, &addr, 8);
    memcpy(d + 8, &len, 4);
    memcpy(d + 12, &flags, 2);
    memcpy(d + 14, &next, 2);
}

VUF_TEST(rings_and_guard)
{
    int fd = memfd_create("test-vq", MFD_CLOEXEC);
    CHECK(fd >= 0 && ftruncate(fd, MEM) == 0, "memfd");
    uint8_t *g = mmap(NULL, MEM, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    CHECK(g != MAP_FAILED, "map");
    vuf_gmem *m = vuf_gmem_new(8, 16);
    vuf_gmem_region r = {.gpa = 0, .size = MEM, .uaddr = UA, .mmap_offset = 0};
    size_t bad;
    CHECK(vuf_gmem_set(m, &r, &fd, 1, &bad) == VUF_GMEM_OK, "region mapped");
    close(fd);
    vuf_vq vq = {.num = 4, .addr_set = true, .desc = UA, .avail = UA + 0x400, .used = UA + 0x800};
    uint8_t *avail = g + 0x400;

    /* pending: the avail index past last_avail, read through the rings */
    CHECK(!vuf_vq_pending(&vq, m), "empty ring: nothing pending");
    put16(avail + 2, 1);
    CHECK(vuf_vq_pending(&vq, m), "avail idx 1: pending");
    vq.last_avail = 1;
    CHECK(!vuf_vq_pending(&vq, m), "taken: nothing pending");
    put16(avail + 2, 0);
    CHECK(vuf_vq_pending(&vq, m), "avail idx wrapped differently: pending (the pop decides)");
    vuf_vq far = vq;
    far.avail = UA + MEM; /* outside guest memory */
    CHECK(!vuf_vq_pending(&far, m), "an untranslatable avail ring: not pending");
    vuf_vq unset = vq;
    unset.addr_set = false;
    CHECK(!vuf_vq_pending(&unset, m), "no ring addresses: not pending");

    /* chains at the bound: a queue-size chain is legal, one more is a loop */
    vuf_vq_chain *c = malloc(sizeof *c);
    for (uint16_t i = 0; i < 4; i++)
        desc(g, i, 0x1000 + 16u * i, 16, i < 3 ? VUF_VRING_DESC_F_NEXT : 0, (uint16_t)(i + 1));
    vuf_vq_result res = vuf_vq_chain_at(&vq, m, 0, c);
    CHECK(res.status == VUF_VQ_CHAIN && c->niov == 4 && c->readable == 64,
          "a chain of the queue size: %d, %zu pieces", res.status, c->niov);
    desc(g, 3, 0x1030, 16, VUF_VRING_DESC_F_NEXT, 0); /* back to the head */
    res = vuf_vq_chain_at(&vq, m, 0, c);
    CHECK(res.status == VUF_VQ_BROKEN && strstr(res.reason, "longer than the queue size"),
          "a loop ends at the bound: %s", res.reason ? res.reason : "-");
    /* an indirect table of the queue size, behind one pointer descriptor */
    for (uint16_t i = 0; i < 4; i++)
        desc(g + 0x2000, i, 0x1000 + 16u * i, 16, i < 3 ? VUF_VRING_DESC_F_NEXT : 0,
             (uint16_t)(i + 1));
    desc(g, 0, 0x2000, 64, VUF_VRING_DESC_F_INDIRECT, 0);
    res = vuf_vq_chain_at(&vq, m, 0, c);
    CHECK(res.status == VUF_VQ_CHAIN && c->niov == 4, "indirect table of the queue size: %d",
          res.status);
    free(c);

    /* the guard page: the byte after a region's mapping faults */
    int pp[2];
    CHECK(pipe(pp) == 0, "pipe");
    uint8_t *host = vuf_gmem_gpa(m, MEM - 1, 1);
    CHECK(host && readable(pp[1], host), "last byte of the region readable");
    CHECK(host && !readable(pp[1], host + 1), "the byte after the region is a guard page");
    /* a mapping from an unaligned offset: the guard follows the last page */
    int f2 = memfd_create("test-vq-guard", MFD_CLOEXEC);
    CHECK(f2 >= 0 && ftruncate(f2, 0x3000) == 0, "memfd 2");
    void *map = NULL;
    size_t map_len = 0;
    uint8_t *b = vuf_gmem_map(f2, 0x1010, 0x100, &map, &map_len);
    CHECK(b && readable(pp[1], b) && readable(pp[1], b + 0x100 - 1), "mapped range readable");
    CHECK(b && !readable(pp[1], b - 0x10 + 0x1000), "guard page after the mapping's last page");
    if (map)
        munmap(map, map_len);
    close(f2);
    close(pp[0]);
    close(pp[1]);

    vuf_gmem_free(m);
    munmap(g, MEM);
}

VUF_TEST_MAIN()
