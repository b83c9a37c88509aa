/* vuf_ref: the strict reference vhost-user-blk back-end device, I/O-free.
 *
 * The device core takes one received message (wire bytes + the fds that came
 * with it) and returns what to do: replies to send on the main socket,
 * requests to send on the back-end channel, and whether to close. It never
 * reads or writes a socket itself. The server (reference/server.c) and the
 * fuzz harness (fuzz/) do the I/O and feed the results back.
 *
 * fd ownership: every fd passed to vuf_ref_handle*() belongs to the device
 * from then on. It keeps the ones the message installs (memory regions, kick,
 * call, back-end channel, ...) and closes every other one before returning,
 * on every path. Guest memory is accessed only through mmap of the region
 * fds, with bounds checks (reference/vuf_ref_mem.h).
 */
#ifndef VUF_REF_H
#define VUF_REF_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "vuf_spec.h"

typedef struct vuf_ref vuf_ref;

typedef struct {
    uint64_t disk_size;    /* bytes of RAM disk when disk_path is NULL */
    const char *disk_path; /* disk image file, or NULL */
    uint32_t queues;       /* number of virtqueues (MQ) */
    uint32_t max_queue_size;
} vuf_ref_config;

void vuf_ref_config_default(vuf_ref_config *cfg);

vuf_ref *vuf_ref_new(const vuf_spec *spec, const vuf_ref_config *cfg);
void vuf_ref_free(vuf_ref *d); /* closes every fd the device holds */

/* One message the device wants sent. `fds` are owned by the output: the
 * caller sends them then calls vuf_ref_out_clear(), which closes them. */
typedef struct {
    vuf_channel
        channel; /* FRONTEND = reply on the main socket; BACKEND = on the back-end channel */
    uint8_t data[4096 + 12];
    size_t len;
    int fds[8];
    size_t nfds;
    bool wants_reply; /* back-end channel request with NEED_REPLY set */
} vuf_ref_msg;

typedef struct {
    vuf_ref_msg msgs[8];
    size_t nmsgs;
    bool close;         /* the device ends the session (policy: docs/reaction-policy.md) */
    const char *reason; /* why a request was refused or the session closed (static text) */
} vuf_ref_out;

void vuf_ref_out_init(vuf_ref_out *o);
void vuf_ref_out_clear(vuf_ref_out *o);

/* A message from the front-end on the main socket. */
void vuf_ref_handle(vuf_ref *d, const uint8_t *msg, size_t len, int *fds, size_t nfds,
                    vuf_ref_out *out);
/* A message from the front-end on the back-end channel (a reply to one of the
 * device's requests, or something illegal). */
void vuf_ref_handle_backend(vuf_ref *d, const uint8_t *msg, size_t len, int *fds, size_t nfds,
                            vuf_ref_out *out);
/* A back-end channel request got no reply in time: the device gives up on it
 * (it never blocks on the front-end). */
void vuf_ref_backend_timeout(vuf_ref *d, vuf_ref_out *out);
/* The back-end channel was closed by the peer. */
void vuf_ref_backend_closed(vuf_ref *d);

/* Data plane: process queue q now (as if its kick fd fired or an in-band
 * VRING_KICK arrived). Non-blocking. */
void vuf_ref_kick(vuf_ref *d, uint32_t q, vuf_ref_out *out);
/* The fds the server should poll: kick eventfds of started rings, and the
 * back-end channel. Returns the count written to fds/queues (queue = -1 for
 * the back-end channel). */
size_t vuf_ref_poll_fds(const vuf_ref *d, int *fds, int *queues, size_t cap);
/* The back-end channel fd the device holds, or -1. */
int vuf_ref_backend_fd(const vuf_ref *d);
/* Resize the disk (sends BACKEND_CONFIG_CHANGE_MSG when negotiated). */
void vuf_ref_resize(vuf_ref *d, uint64_t new_size, vuf_ref_out *out);

/* Connection lost: reset per-connection state (rings, memory, features),
 * keep the disk. */
void vuf_ref_disconnect(vuf_ref *d);

/* Introspection for tests and the fuzz oracles. */
typedef struct {
    uint64_t addr; /* host address of the start */
    uint64_t len;
} vuf_ref_range;
/* Host ranges the device wrote to during the last vuf_ref_kick(): the fuzz
 * harness checks them against the device-writable descriptor buffers and the
 * used ring. Returns the count (at most cap). */
size_t vuf_ref_last_writes(const vuf_ref *d, vuf_ref_range *r, size_t cap);
/* Names of the handlers that accepted a message so far (coverage report). */
bool vuf_ref_handler_accepted(const vuf_ref *d, uint32_t msg_id);
size_t vuf_ref_open_fd_count(const vuf_ref *d); /* fds held by the device */

#endif
