/* SPDX-License-Identifier: Apache-2.0 */
/* Internal to harness/: the parts of the harness (vuf_harness.h) and what
 * they share. One file each:
 *   harness.c  the session player, the event intake, the oracles' verdicts;
 *   guest.c    guest memory as the front-end lays it out, the virtio driver
 *              (descriptors, avail ring, virtio-blk requests), and the
 *              guest-memory oracle's model of where the device may write;
 *   fdset.c    the typed fd factory (session fd kinds made real);
 *   target_ref.c  the reference device as a target (inproc and socket). */
#ifndef VUF_HARNESS_INT_H
#define VUF_HARNESS_INT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "vuf_codec.h"
#include "vuf_session.h"

#define VUF_H_MAX_QUEUES VUF_SESSION_MAX_QUEUES
#define VUF_H_MAX_REGIONS VUF_SESSION_MAX_REGIONS

/* ---------- guest.c ---------- */

#define VUF_RING_HIST 8 /* ring addresses remembered per queue */
#define VUF_TLB_MAX 128 /* IOTLB translations the model follows */

typedef struct {
    uint64_t gpa, uaddr, size; /* this session's layout */
    uint64_t fsize;            /* the memfd's size now (VUF_SESSION_MAX_REGION is mapped once) */
    int fd;
    uint8_t *map, *shadow, *allowed; /* allowed: 1 per byte the device may write */
    bool removed;                    /* REM_MEM_REG took it from the device */
    uint64_t allowed_lo, allowed_hi; /* sticky: the allowed bytes set this session */
    uint64_t dirty_lo, dirty_hi;     /* bytes the session may have changed: [lo, hi) */
} vuf_gregion;

typedef struct {
    uint64_t desc, avail, used;
} vuf_ring_addr;

typedef struct {
    vuf_ring_addr a[VUF_RING_HIST];
    size_t n;
    uint32_t num; /* the largest size sent */
} vuf_ring_model;

typedef struct {
    uint64_t iova, size, uaddr;
} vuf_tlb_entry;

typedef struct {
    vuf_gregion reg[VUF_H_MAX_REGIONS];
    size_t nreg;
    uint32_t queues, qsize;
    uint64_t heap, heap_start, heap_end;
    uint32_t next_desc[VUF_H_MAX_QUEUES];
    /* the oracle's model of what the device was told */
    bool armed;
    /* an asynchronous device may finish a request after the driver reused
     * its descriptors: what it was allowed to write stays allowed for the
     * session */
    bool sticky;
    vuf_ring_model rings[VUF_H_MAX_QUEUES];
    vuf_tlb_entry tlb[VUF_TLB_MAX];
    size_t ntlb;
    /* message definitions the model follows (from the table), and their
     * fields, resolved once */
    const vuf_msg_def *m_num, *m_addr, *m_mem, *m_add, *m_rem, *m_iotlb;
    vuf_field_ref f_num[2];  /* SET_VRING_NUM index, num */
    vuf_field_ref f_addr[4]; /* SET_VRING_ADDR index, desc, avail, used */
    vuf_field_ref f_tlb[4];  /* IOTLB_MSG type, iova, size, uaddr */
    vuf_field_ref f_reg1[4]; /* ADD/REM_MEM_REG guest_addr, size, user_addr, mmap_offset */
    vuf_field_ref f_regn[4]; /* SET_MEM_TABLE regions[0]. the same */
    uint32_t regn_stride;    /* bytes between two regions of SET_MEM_TABLE */
} vuf_guest;

void vuf_guest_init(vuf_guest *g, const vuf_spec *spec);
void vuf_guest_free(vuf_guest *g);
/* The regions of a session's layout, mapped and zero. */
bool vuf_guest_setup(vuf_guest *g, const vuf_session_guest *lay);
/* The end of a session: what it changed is zero again (O(what changed)). */
void vuf_guest_teardown(vuf_guest *g);
/* A new connection: the device forgot what it was told. */
void vuf_guest_forget(vuf_guest *g);

uint8_t *vuf_guest_ptr(vuf_guest *g, uint64_t gpa, uint64_t len, int *ri, uint64_t *off);
/* The driver's own writes: memory and shadow alike. */
void vuf_guest_write(vuf_guest *g, uint64_t gpa, const void *src, uint64_t len);
uint32_t vuf_guest_queue(const vuf_guest *g, bool has, uint32_t q);
uint64_t vuf_guest_ring_gpa(const vuf_guest *g, uint32_t q);
void vuf_guest_desc(vuf_guest *g, uint64_t table, uint32_t slot, uint64_t addr, uint32_t len,
                    uint16_t flags, uint16_t next);
void vuf_guest_avail(vuf_guest *g, uint32_t q, uint32_t head, bool has_idx, uint32_t idx);
void vuf_guest_blk(vuf_guest *g, const Vuf__BlkRequest *b);

/* The model: a request the device received on the main channel (refused
 * ones included: the model over-approximates where the device may write),
 * and the device's reply to it (an accepted invalidation or removal narrows
 * it). */
void vuf_guest_model_request(vuf_guest *g, const vuf_msg_view *v);
void vuf_guest_model_reply(vuf_guest *g, const vuf_msg_def *req, bool failed,
                           const vuf_msg_view *req_view);
/* A message the harness builds with guest memory fds: does it map exactly
 * the session's layout? If not, the oracle is disarmed for the session. */
void vuf_guest_check_fds(vuf_guest *g, const vuf_session_wire *w, const int *guests, size_t n);

/* The oracle: compare guest memory with the shadow after the device ran.
 * false with the first stray write's place when the device changed a byte
 * outside every device-writable buffer and used ring. */
bool vuf_guest_compare(vuf_guest *g, uint64_t *gpa, uint64_t *len, size_t *region);
/* Make the shadow equal to memory (after a step that was not checked). */
void vuf_guest_sync(vuf_guest *g);

/* ---------- fdset.c ---------- */

#define VUF_H_MAX_FDS 256  /* fds the front-end creates in one session */
#define VUF_H_MAX_PEERS 32 /* socket pairs it keeps the other end of */

typedef struct {
    int fd;
    int guest;    /* guest region the fd maps, or -1 */
    uint8_t kind; /* vuf_fdkind: what vuf_fd_classify says of it */
} vuf_hfd;

typedef struct {
    vuf_hfd h[VUF_H_MAX_FDS];
    size_t nh;
    int peers[VUF_H_MAX_PEERS];
    /* handed over by a SET_BACKEND_REQ_FD (its header's id): the only peers
     * whose traffic is the back-end channel; the others (a socket passed
     * where an eventfd belongs) are drained unread */
    bool channel[VUF_H_MAX_PEERS];
    size_t npeers;
    int be_peer; /* index in peers of the back-end channel's front-end end, or -1 */
    unsigned serial;
} vuf_fdset;

void vuf_fdset_init(vuf_fdset *s);
/* Close every fd and peer of the session. */
void vuf_fdset_close_all(vuf_fdset *s);
/* An fd of the kind spec names (the front-end keeps it until the session
 * ends). -2: dropped (a closed number: the kernel refuses it at the sender).
 * *guest: the guest region it maps (FD_GUEST_MEMORY, a dup of one), else -1;
 * *kind: its vuf_fdkind. main_fd: the front-end's end of the main channel. */
int vuf_fdset_make(vuf_fdset *s, vuf_guest *g, const Vuf__Fd *spec, bool size_derived, int main_fd,
                   int *guest, uint8_t *kind);
bool vuf_fdset_is_eventfd(const vuf_fdset *s, int fd);
/* The front-end's end of the back-end channel, or -1. */
int vuf_fdset_backend(const vuf_fdset *s);
void vuf_fdset_close_backend(vuf_fdset *s);

#endif
