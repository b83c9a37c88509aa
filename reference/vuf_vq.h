/* SPDX-License-Identifier: Apache-2.0 */
/* vuf_vq: a split virtqueue as the device side of virtio 1.x sees it.
 *
 * Security model: the descriptor table, the rings and the inflight region
 * are guest (front-end) memory, rewritten at will. Every field is read once
 * into a local, every index is reduced or checked against the queue size,
 * a chain is bounded by the queue size (a loop cannot be longer), indirect
 * tables are bounded by their length and may not nest, and every buffer is
 * translated as a whole through vuf_gmem before any byte moves.
 *
 * The module does no system call: it reads and writes guest memory through
 * vuf_gmem and reports what it did.
 */
#ifndef VUF_VQ_H
#define VUF_VQ_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "vuf_gmem.h"

#define VUF_VQ_MAX_SIZE 1024 /* largest queue size the device accepts (power of 2) */
#define VUF_VQ_MAX_IOV 2048  /* host pieces of one chain */

#define VUF_VRING_DESC_F_NEXT 1u
#define VUF_VRING_DESC_F_WRITE 2u
#define VUF_VRING_DESC_F_INDIRECT 4u
#define VUF_VRING_AVAIL_F_NO_INTERRUPT 1u
#define VUF_VHOST_VRING_F_LOG 1u

typedef struct {
    /* set by the front-end */
    uint32_t num; /* queue size, 0 until SET_VRING_NUM */
    bool addr_set;
    uint64_t desc, avail, used; /* ring addresses (user addresses or IOVAs) */
    uint32_t addr_flags;        /* VHOST_VRING_F_LOG */
    uint64_t log_guest_addr;
    uint16_t last_avail; /* next avail ring entry to take (SET/GET_VRING_BASE) */
    /* device state */
    uint16_t used_idx; /* next used ring entry to write */
    bool event_idx;    /* VIRTIO_F_RING_EVENT_IDX negotiated */
    bool log_all;      /* VHOST_F_LOG_ALL negotiated */
    bool signalled_valid;
    uint16_t signalled_used;
    /* inflight region of this queue (INFLIGHT_SHMFD), or NULL */
    uint8_t *inflight;
    uint16_t inflight_num;
    uint64_t inflight_counter;
} vuf_vq;

typedef struct {
    uint8_t *p;
    uint32_t len;
    bool write;
    uint64_t log_gpa; /* guest-physical address for the dirty log, UINT64_MAX if none */
} vuf_vq_iov;

typedef struct {
    uint16_t head;
    size_t niov;
    uint64_t readable, writable; /* bytes */
    vuf_vq_iov iov[VUF_VQ_MAX_IOV];
} vuf_vq_chain;

typedef enum {
    VUF_VQ_EMPTY = 0, /* nothing available */
    VUF_VQ_CHAIN,     /* a chain was taken */
    VUF_VQ_MISS,      /* IOMMU: a translation is missing (ask, then retry) */
    VUF_VQ_BROKEN,    /* the driver broke the ring: the queue needs a reset */
} vuf_vq_status;

typedef struct {
    vuf_vq_status status;
    uint64_t miss_iova; /* MISS / DENIED: the address */
    unsigned miss_perm; /* MISS: the access wanted */
    bool denied;        /* the IOTLB entry lacks the permission (access failure) */
    const char *reason; /* BROKEN: why (static text) */
} vuf_vq_result;

/* Sizes of the rings in bytes for a queue of num entries (event index
 * fields included). */
uint64_t vuf_vq_desc_bytes(uint32_t num);
uint64_t vuf_vq_avail_bytes(uint32_t num);
uint64_t vuf_vq_used_bytes(uint32_t num);

/* Is the queue configured enough to run (size and addresses set)? */
bool vuf_vq_ready(const vuf_vq *vq);
/* Checks the three rings translate in full (for SET_VRING_ADDR and start). */
vuf_vq_result vuf_vq_check_rings(const vuf_vq *vq, const vuf_gmem *m);
/* At start: read the used index from the used ring. */
vuf_vq_result vuf_vq_start(vuf_vq *vq, const vuf_gmem *m);

/* Does the avail ring hold entries past last_avail? (false when it does not
 * translate) */
bool vuf_vq_pending(const vuf_vq *vq, const vuf_gmem *m);

/* Take the next available chain into *c. Nothing is consumed unless
 * VUF_VQ_CHAIN is returned. */
vuf_vq_result vuf_vq_pop(vuf_vq *vq, const vuf_gmem *m, vuf_vq_chain *c);
/* The chain starting at descriptor head (inflight resubmission). */
vuf_vq_result vuf_vq_chain_at(const vuf_vq *vq, const vuf_gmem *m, uint16_t head, vuf_vq_chain *c);

/* Copy out of the readable part / into the writable part of a chain,
 * starting `off` bytes into that part. Returns the bytes copied. Writes are
 * marked in the dirty log when log_all is set. */
uint64_t vuf_vq_read(const vuf_vq_chain *c, uint64_t off, void *dst, uint64_t len);
uint64_t vuf_vq_write(const vuf_vq *vq, vuf_gmem *m, const vuf_vq_chain *c, uint64_t off,
                      const void *src, uint64_t len);

/* Put a used element {head, len} and publish the used index. */
vuf_vq_result vuf_vq_push(vuf_vq *vq, vuf_gmem *m, uint16_t head, uint32_t len);
/* Should the driver be notified of what was pushed since the last call
 * (VRING_AVAIL_F_NO_INTERRUPT, or used_event with EVENT_IDX)? */
bool vuf_vq_should_notify(vuf_vq *vq, const vuf_gmem *m);
/* EVENT_IDX: ask to be kicked when the avail index passes last_avail. */
void vuf_vq_set_avail_event(vuf_vq *vq, vuf_gmem *m);

/* ---- inflight tracking (vhost-user.rst, "Inflight I/O tracking", split) ---- */

/* Bytes of one queue's region for a queue size (aligned to 64). */
uint64_t vuf_vq_inflight_bytes(uint16_t queue_size);
/* Initialise a fresh region: features 0, version 1, desc_num. */
void vuf_vq_inflight_init(uint8_t *region, uint16_t queue_size);
/* Mark head inflight / completed. */
void vuf_vq_inflight_get(vuf_vq *vq, uint16_t head);
void vuf_vq_inflight_put(vuf_vq *vq, uint16_t head);
/* The heads to resubmit after a reconnect, oldest first (at most num).
 * Returns the count. */
size_t vuf_vq_inflight_pending(vuf_vq *vq, const vuf_gmem *m, uint16_t *heads, size_t cap);

#endif
