/* SPDX-License-Identifier: Apache-2.0 */
/* vuf_ref: the strict reference vhost-user-blk back-end, I/O-free.
 *
 * The device core takes one received message (wire bytes, the fds that came
 * with it and their kinds) and says what to do in a vuf_ref_out: replies to
 * send on the main socket, requests to send on the back-end channel,
 * eventfds to signal, whether to close. It never reads or writes a socket;
 * the connection module (vuf_ref_conn.h) and the fuzz harness do the I/O and
 * feed the results back. Its only system calls are mmap/munmap of the fds
 * the front-end hands over, fstat to size them, memfd_create for the
 * inflight buffer, fcntl(O_NONBLOCK) on the eventfds it keeps, and close.
 *
 * Every message is validated centrally from the spec table before any
 * handler runs: version and flags, size, fd count and kind, gates, vring
 * index range, the table's value checks, address-range overflow (spans)
 * and fd sizes. Handlers get typed payloads and return an explicit result;
 * the reaction to a refused message is one deterministic policy
 * (docs/reaction-policy.md): an error reply, a NACK, or closing the
 * connection.
 *
 * fd ownership: every fd passed to vuf_ref_handle*() belongs to the device
 * from then on. It keeps the ones a message installs and closes every other
 * one before returning, on every path.
 */
#ifndef VUF_REF_H
#define VUF_REF_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "vuf_spec.h"

typedef struct vuf_ref vuf_ref;

#define VUF_REF_MAX_QUEUES 64
/* Virtio features the device offers: VERSION_1, RING_INDIRECT_DESC,
 * RING_EVENT_IDX, IOMMU_PLATFORM, PROTOCOL_FEATURES, LOG_ALL and the blk
 * features SEG_MAX, BLK_SIZE, FLUSH, CONFIG_WCE, MQ (RO when read-only). */
#define VUF_REF_FEATURES 0x374001a44ull
/* Protocol features: MQ, LOG_SHMFD, REPLY_ACK, BACKEND_REQ, CONFIG,
 * INFLIGHT_SHMFD, RESET_DEVICE, INBAND_NOTIFICATIONS, CONFIGURE_MEM_SLOTS,
 * STATUS. */
#define VUF_REF_PROTOCOL_FEATURES 0x1f22bull

typedef struct {
    uint8_t *disk;      /* the disk's bytes, owned by the caller */
    uint64_t disk_size; /* bytes */
    bool read_only;
    uint32_t queues;        /* 1..VUF_REF_MAX_QUEUES (GET_QUEUE_NUM, blk num_queues) */
    uint32_t max_mem_slots; /* GET_MAX_MEM_SLOTS; also the region table size */
    uint32_t iotlb_entries; /* IOTLB capacity */
    uint64_t features;      /* offered virtio features */
    uint64_t protocol_features;
} vuf_ref_config;

void vuf_ref_config_default(vuf_ref_config *cfg);

/* NULL with a reason in err when the configuration is unusable. A table
 * whose layouts the device does not understand makes the affected messages
 * unsupported (vuf_ref_unsupported lists them), not a failure. */
vuf_ref *vuf_ref_new(const vuf_spec *spec, const vuf_ref_config *cfg, char *err, size_t errcap);
void vuf_ref_free(vuf_ref *d); /* closes every fd the device holds */
/* The device as new with this configuration (a new session), without
 * allocating: every fd closed, every mapping dropped, every per-connection
 * state forgotten. The counters (accepted, refused, chains, passes) go on.
 * -1 with a reason when the configuration is unusable. */
int vuf_ref_reset(vuf_ref *d, const vuf_ref_config *cfg, char *err, size_t errcap);

/* ---- what to do ---- */

#define VUF_REF_OUT_MSGS 8
#define VUF_REF_MSG_MAX (12 + 512)

typedef struct {
    vuf_channel channel; /* FRONTEND: a reply on the main socket; BACKEND: a request on the back-end
                            channel */
    uint8_t data[VUF_REF_MSG_MAX];
    size_t len;
    int fd;           /* an fd to send with it (owned by the output), or -1 */
    bool wants_reply; /* a back-end request with NEED_REPLY: a reply is awaited */
} vuf_ref_msg;

typedef struct {
    vuf_ref_msg msgs[VUF_REF_OUT_MSGS];
    size_t nmsgs;
    uint64_t call_mask; /* queues whose call eventfd to signal */
    uint64_t err_mask;  /* queues whose error eventfd to signal */
    bool log_changed;   /* signal the SET_LOG_FD eventfd */
    bool flush;         /* a FLUSH completed: make the disk durable */
    bool backend_opened;
    bool backend_closed; /* the device closed (or replaced) the back-end channel */
    bool close;          /* close the main connection (the policy's last resort) */
    const char *reason;  /* why a request was refused or the session closed */
    const char *rule;    /* the catalogue rule (docs/rules.md) the refused request broke, or NULL */
} vuf_ref_out;

void vuf_ref_out_init(vuf_ref_out *o);
/* Closes the fds the output still owns and empties it. */
void vuf_ref_out_clear(vuf_ref_out *o);

/* ---- input ---- */

/* A message from the front-end on the main socket. kinds[i] is the
 * vuf_fdkind of fds[i] (vuf_fd_classify). */
void vuf_ref_handle(vuf_ref *d, const uint8_t *msg, size_t len, int *fds, const uint8_t *kinds,
                    size_t nfds, vuf_ref_out *out);
/* A message from the front-end on the back-end channel: a reply to the
 * device's outstanding request, or something the policy refuses. */
void vuf_ref_handle_backend(vuf_ref *d, const uint8_t *msg, size_t len, int *fds,
                            const uint8_t *kinds, size_t nfds, vuf_ref_out *out);
/* The outstanding back-end request got no reply in time: give up on it. */
void vuf_ref_backend_timeout(vuf_ref *d, vuf_ref_out *out);
/* The back-end channel is gone (peer closed, or a send failed). */
void vuf_ref_backend_closed(vuf_ref *d);
/* Queue q's kick fired (its eventfd was readable, or it is polled). */
void vuf_ref_kick(vuf_ref *d, uint32_t q, vuf_ref_out *out);
/* A new disk (resize): sends BACKEND_CONFIG_CHANGE_MSG when CONFIG and the
 * back-end channel are there. */
void vuf_ref_set_disk(vuf_ref *d, uint8_t *disk, uint64_t size, vuf_ref_out *out);
/* Inode of the main socket and of its peer, so SET_BACKEND_REQ_FD can
 * refuse the main channel itself (0 = unknown). */
void vuf_ref_set_channel_identity(vuf_ref *d, uint64_t main_ino, uint64_t peer_ino);
/* The main connection is gone: drop per-connection state (features,
 * memory, rings, back-end channel, inflight, log), keep the disk. */
void vuf_ref_disconnect(vuf_ref *d);

/* ---- fds for the I/O layer ---- */

int vuf_ref_backend_fd(const vuf_ref *d);           /* -1 if none */
bool vuf_ref_backend_waiting(const vuf_ref *d);     /* a reply is awaited */
uint32_t vuf_ref_backend_wait_id(const vuf_ref *d); /* the id whose reply is awaited */
/* Kick eventfds to watch (queue index in queues[]). */
size_t vuf_ref_kick_fds(const vuf_ref *d, int *fds, uint32_t *queues, size_t cap);
/* Queues polled instead of kicked (SET_VRING_KICK with the no-fd bit). */
uint64_t vuf_ref_polled_queues(const vuf_ref *d);
int vuf_ref_kick_fd(const vuf_ref *d, uint32_t q);
int vuf_ref_call_fd(const vuf_ref *d, uint32_t q);
int vuf_ref_err_fd(const vuf_ref *d, uint32_t q);
int vuf_ref_log_fd(const vuf_ref *d);

/* ---- introspection (tests, coverage reports, fuzz oracles) ---- */

/* Front-end channel: requests of id the device accepted / refused so far.
 * Back-end channel: requests of id the device sent / that the front-end
 * answered with a failure (or a malformed reply). */
uint64_t vuf_ref_accepted(const vuf_ref *d, vuf_channel ch, uint32_t id);
uint64_t vuf_ref_refused(const vuf_ref *d, vuf_channel ch, uint32_t id);
/* Does the device have a handler for this message? */
bool vuf_ref_supports(const vuf_ref *d, vuf_channel ch, uint32_t id);
size_t vuf_ref_fd_count(const vuf_ref *d); /* fds the device holds */
const char *vuf_ref_last_reason(const vuf_ref *d);
uint64_t vuf_ref_chains_completed(const vuf_ref *d);
/* Processing passes over a started, enabled ring: the only code that reads
 * or writes guest memory through the rings (the guest-memory oracle compares
 * memory when this moves). */
uint64_t vuf_ref_ring_passes(const vuf_ref *d);
bool vuf_ref_queue_broken(const vuf_ref *d, uint32_t q);

#endif
