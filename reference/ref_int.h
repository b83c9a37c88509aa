/* SPDX-License-Identifier: Apache-2.0 */
/* Internal to reference/: the reference device's message core
 * (vuf_ref.h), cut by responsibility. One file each:
 *   ref.c           creation and reset, dispatch and validation (every
 *                   message through the table's interpreter, then its typed
 *                   payload), the reaction policy (finish), introspection;
 *   ref_handlers.c  the typed handlers of the front-end's requests and their
 *                   table;
 *   ref_rings.c     the data plane: processing started rings, chains run on
 *                   the blk model, notifications, broken and stalled queues;
 *   ref_backend.c   the back-end channel: the device's queued requests (one
 *                   outstanding at a time, coalesced), the front-end's
 *                   replies, timeouts.
 *
 * Security model: do not assume a received field contains a sensible value.
 * Every message passes validate() -- driven by the spec table's columns --
 * before its handler runs, and every refusal goes through finish(), the one
 * place that applies the reaction policy (docs/reaction-policy.md). fds the
 * handler does not take are closed on every path by vuf_ref_handle(). */
#ifndef VUF_REF_INT_H
#define VUF_REF_INT_H

#include "vuf_blk.h"
#include "vuf_codec.h"
#include "vuf_gmem.h"
#include "vuf_ref.h"
#include "vuf_vq.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
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
    int rule;        /* the catalogue rule (vuf_rule_id) the refusal names, -1 none */
    payload p;
    /* an explicit reply built by the handler */
    uint8_t reply[VUF_REF_MSG_MAX - VUF_HDR_SIZE];
    size_t reply_len;
    int reply_fd;
} ctx;

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
    bool features_set, features_reported, protocol_reported, owner;
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
    char why_buf[240]; /* the text of the latest refusal the interpreter decided */
    ctx msg;           /* the message being handled (one at a time: no allocation per message) */
};

/* ---- helpers every part uses ---- */

static inline bool has(uint64_t mask, int bit)
{
    return bit >= 0 && bit < 64 && (mask >> bit & 1);
}

static inline void close_fd(int *fd)
{
    if (*fd >= 0)
        close(*fd);
    *fd = -1;
}

/* A handler's refusal: the reason, and H_FAIL. */
static inline int fail(ctx *c, const char *why)
{
    c->why = why;
    return H_FAIL;
}

/* ---- ref.c ---- */

/* Append a message to the output; NULL when it is full or too long. */
vuf_ref_msg *vuf_ref_out_msg(vuf_ref_out *o, vuf_channel ch, uint32_t id, uint32_t flags,
                             const void *pl, size_t len);
/* RESET_DEVICE: every ring disabled, device state as at creation; the
 * connection (owner, protocol features, back-end channel) stays. */
void vuf_ref_reset_device(vuf_ref *d);

/* ---- ref_handlers.c ---- */

const handler *vuf_ref_handlers(size_t *n);
/* Drop the inflight buffer and every queue's part of it. */
void vuf_ref_unmap_inflight(vuf_ref *d);

/* ---- ref_rings.c ---- */

/* A kick (or a polled ring's start): the ring is started, a stalled one is
 * retried. */
void vuf_ref_ring_start(vuf_ref *d, uint32_t qi);
/* Process queue qi as far as it goes now. */
void vuf_ref_ring_process(vuf_ref *d, uint32_t qi, vuf_ref_out *out);
/* A new translation arrived: every stalled ring tries again. */
void vuf_ref_rings_retry(vuf_ref *d, vuf_ref_out *out);

/* ---- ref_backend.c ---- */

/* May the device send `def` now: channel present and every gate negotiated. */
bool vuf_ref_be_can_send(const vuf_ref *d, const vuf_msg_def *def);
/* Queue a request (BQ_*), coalesced with one of the same kind and `a`. */
void vuf_ref_be_push(vuf_ref *d, int kind, uint64_t a, uint32_t b);
/* Send queued back-end requests while no reply is awaited. */
void vuf_ref_be_pump(vuf_ref *d, vuf_ref_out *out);
void vuf_ref_be_close(vuf_ref *d);

#endif
