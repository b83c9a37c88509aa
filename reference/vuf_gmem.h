/* SPDX-License-Identifier: Apache-2.0 */
/* vuf_gmem: guest memory as the reference back-end sees it.
 *
 * Security model: every value here comes from the front-end. Region tables,
 * IOTLB entries and the dirty log are validated before they are installed,
 * and every guest access is a translation of a whole range [addr, addr+len)
 * that succeeds only when the range lies inside one mapping (CVE-2018-1059:
 * translating the start of a range is not enough).
 *
 * Address spaces (vhost-user.rst, "Memory access"):
 *   - user addresses (uva) map through the region containing them;
 *   - without VIRTIO_F_IOMMU_PLATFORM, guest addresses (gpa) map through the
 *     region containing them;
 *   - with it, guest addresses are IOVAs, translated to user addresses by
 *     the IOTLB, and the regions' guest addresses are unused.
 * Ring addresses (SET_VRING_ADDR) are user addresses, or IOVAs under the
 * IOMMU; descriptor addresses are guest addresses.
 *
 * The module maps the fds it is given (mmap) and never keeps them: callers
 * close them. It does no other system call.
 */
#ifndef VUF_GMEM_H
#define VUF_GMEM_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct vuf_gmem vuf_gmem;

typedef struct {
    uint64_t gpa, size, uaddr, mmap_offset;
} vuf_gmem_region;

typedef enum {
    VUF_GMEM_OK = 0,
    VUF_GMEM_EZERO,     /* a region or range of size 0 */
    VUF_GMEM_EOVERFLOW, /* an address range wraps around 2^64 */
    VUF_GMEM_EOVERLAP,  /* overlaps another region's guest or user range */
    VUF_GMEM_EFD,       /* the fd is smaller than mmap_offset + size, or cannot be mapped */
    VUF_GMEM_EFULL,     /* no free slot (regions or IOTLB entries) */
    VUF_GMEM_ENOENT,    /* no such region (REM_MEM_REG), or outside every region */
} vuf_gmem_status;

const char *vuf_gmem_status_str(vuf_gmem_status s);

/* max_regions: slots for regions (SET_MEM_TABLE's 8 and ADD_MEM_REG's
 * GET_MAX_MEM_SLOTS); iotlb_max: IOTLB entries. NULL on allocation failure. */
vuf_gmem *vuf_gmem_new(uint32_t max_regions, uint32_t iotlb_max);
void vuf_gmem_free(vuf_gmem *m); /* unmaps everything */

/* ---- regions ---- */

/* Replace every region at once (SET_MEM_TABLE): all are validated and mapped
 * first, then they replace the old table; on any failure the old table stays
 * and *bad is the index of the region at fault. fds[i] maps region i; the
 * caller keeps and closes the fds. */
vuf_gmem_status vuf_gmem_set(vuf_gmem *m, const vuf_gmem_region *r, const int *fds, size_t n,
                             size_t *bad);
/* Add one region (ADD_MEM_REG). */
vuf_gmem_status vuf_gmem_add(vuf_gmem *m, const vuf_gmem_region *r, int fd);
/* Remove the region with this guest address, user address and size
 * (REM_MEM_REG; mmap_offset is ignored, as the spec says). */
vuf_gmem_status vuf_gmem_remove(vuf_gmem *m, const vuf_gmem_region *r);
void vuf_gmem_clear(vuf_gmem *m);
size_t vuf_gmem_count(const vuf_gmem *m);
uint32_t vuf_gmem_max_regions(const vuf_gmem *m);
/* Is [uaddr, uaddr+size) inside one region (IOTLB updates must be)? */
bool vuf_gmem_uva_covered(const vuf_gmem *m, uint64_t uaddr, uint64_t size);

/* ---- IOTLB (VIRTIO_F_IOMMU_PLATFORM) ---- */

void vuf_gmem_set_iommu(vuf_gmem *m, bool on); /* off: guest addresses are gpas */
bool vuf_gmem_iommu(const vuf_gmem *m);
/* An update replaces whatever it overlaps. perm: 1 read, 2 write, 3 both. */
vuf_gmem_status vuf_gmem_iotlb_update(vuf_gmem *m, uint64_t iova, uint64_t size, uint64_t uaddr,
                                      uint8_t perm);
void vuf_gmem_iotlb_invalidate(vuf_gmem *m, uint64_t iova, uint64_t size);
void vuf_gmem_iotlb_clear(vuf_gmem *m);
size_t vuf_gmem_iotlb_count(const vuf_gmem *m);

/* ---- translation ---- */

#define VUF_PERM_R 1u
#define VUF_PERM_W 2u

typedef enum {
    VUF_XLATE_OK = 0,
    VUF_XLATE_MISS,   /* IOMMU: no IOTLB entry for `fault` (ask the front-end) */
    VUF_XLATE_DENIED, /* IOMMU: an entry without the permission at `fault` */
    VUF_XLATE_FAULT,  /* outside guest memory, or not contiguous */
} vuf_xlate_status;

typedef struct {
    vuf_xlate_status status;
    uint64_t fault; /* the device address that missed or faulted */
} vuf_xlate_err;

/* A ring address (user address, or IOVA under the IOMMU): the whole
 * [addr, addr+len) must be one contiguous mapping. */
void *vuf_gmem_ring(const vuf_gmem *m, uint64_t addr, uint64_t len, unsigned perm,
                    vuf_xlate_err *err);
/* A buffer address (gpa, or IOVA under the IOMMU): the host pointer of its
 * start and in *run the contiguous bytes from there (1..len); the caller
 * walks the rest. *log_gpa gets the guest-physical address for dirty logging
 * (UINT64_MAX if it has none). */
void *vuf_gmem_buf(const vuf_gmem *m, uint64_t addr, uint64_t len, unsigned perm, uint64_t *run,
                   uint64_t *log_gpa, vuf_xlate_err *err);
/* A guest-physical address, as a host pointer for len bytes in one region
 * (tests and harnesses; the data plane uses vuf_gmem_buf). */
void *vuf_gmem_gpa(const vuf_gmem *m, uint64_t gpa, uint64_t len);
/* The guest-physical address of a user address, or UINT64_MAX. */
uint64_t vuf_gmem_uva_to_gpa(const vuf_gmem *m, uint64_t uva);

/* Map [off, off+len) of fd read-write and shared. The fd must be at least
 * off + len bytes long (a mapping past its end faults on access). An
 * inaccessible guard page follows the mapping: an overrun faults. Returns
 * the host address of `off`, or NULL; *map and *map_len are what to munmap. */
void *vuf_gmem_map(int fd, uint64_t off, uint64_t len, void **map, size_t *map_len);

/* ---- dirty log (SET_LOG_BASE, VHOST_F_LOG_ALL) ---- */

/* Map the log: [offset, offset+size) of fd. Replaces an old log. */
vuf_gmem_status vuf_gmem_log_map(vuf_gmem *m, int fd, uint64_t offset, uint64_t size);
void vuf_gmem_log_unmap(vuf_gmem *m);
bool vuf_gmem_log_mapped(const vuf_gmem *m);
/* Mark [gpa, gpa+len) dirty: log[page / 8] |= 1 << page % 8 with 4 KiB
 * pages, atomically. Pages beyond the log are not marked; the return value
 * counts them (0 = all marked). */
uint64_t vuf_gmem_log_write(vuf_gmem *m, uint64_t gpa, uint64_t len);

#endif
