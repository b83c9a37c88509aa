/* SPDX-License-Identifier: Apache-2.0 */
/* vuf_endpoint: one side's end of one vhost-user channel, and the poll set
 * an event loop waits on.
 *
 * An endpoint reads a message and its fds, sends one, and reports each as a
 * conversation event (vuf_event) to its observer: the trace of `vufuzz
 * serve`, the fuzz harness's checker, a monitor's. Every place that talks
 * vhost-user over a socket goes through it: the reference device's
 * connection (vuf_ref_conn.h), the harness's side of external targets, the
 * monitor. It adds nothing to the transport's rules (vuf_transport.h); it
 * says what happened.
 *
 * An endpoint may read from a vuf_framer instead of its socket (a peer in
 * the same process writes there), and may hand what it sends to its
 * observer only instead of writing it ("direct": the in-process target).
 * Messages and fds are then exactly what the socket would have carried
 * (vuf_framer.h).
 *
 * Events: a message received or sent, the close of the channel by either
 * side (emitted by the endpoint when it sees EOF, or by its owner), and
 * what arrived of a message cut short. */
#ifndef VUF_ENDPOINT_H
#define VUF_ENDPOINT_H

#include <poll.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "vuf_event.h"
#include "vuf_framer.h"
#include "vuf_transport.h"

typedef void (*vuf_event_fn)(void *ctx, const vuf_event *ev);

typedef struct vuf_endpoint vuf_endpoint;

typedef struct {
    vuf_channel channel;
    vuf_side local;     /* whose end this is: what arrives is the other side's */
    size_t payload_cap; /* largest payload received (0: VUF_PAYLOAD_MAX) */
    vuf_event_fn on_event;
    void *ctx;
} vuf_endpoint_opts;

/* fd: the socket (not owned: the caller closes it; vuf_endpoint_set_fd
 * changes it). NULL on allocation failure. */
vuf_endpoint *vuf_endpoint_new(int fd, const vuf_endpoint_opts *o);
void vuf_endpoint_free(vuf_endpoint *e);
void vuf_endpoint_set_fd(vuf_endpoint *e, int fd);
int vuf_endpoint_fd(const vuf_endpoint *e);
vuf_channel vuf_endpoint_channel(const vuf_endpoint *e);
/* Read from f instead of the socket (NULL: the socket again). */
void vuf_endpoint_set_framer(vuf_endpoint *e, vuf_framer *f);
/* Sends are reported, not written (the in-process peer takes them from the
 * event); the fds of a direct send are the caller's to close. */
void vuf_endpoint_set_direct(vuf_endpoint *e, bool direct);

/* Sends are reported as the messages a receiver frames from the stream
 * (vuf_framer), not one event per write: a write holding two messages, or
 * half of one, is reported as what arrives. What a write leaves unfinished
 * is reported once it completes, or as a cut message by
 * vuf_endpoint_emit_close. (For a side that writes raw bytes: the harness
 * on an external target.) */
void vuf_endpoint_set_tx_framing(vuf_endpoint *e, bool on);

/* A received message: data (header + payload) stays valid until the next
 * receive on this endpoint; the fds are the caller's (close them). kinds are
 * the fds' vuf_fdkind (classified, or the framer's tags). */
typedef struct {
    const uint8_t *data;
    size_t len;
    int fds[VUF_MAX_FDS];
    uint8_t kinds[VUF_MAX_FDS];
    size_t nfds;
} vuf_endpoint_msg;

/* Receive one message (timeout_ms as vuf_recv_msg). Events: OK, CTRUNC and
 * OVERSIZE: the message (OVERSIZE: its header alone); SHORT, or TIMEOUT or
 * ERROR after part of a message: what arrived of it; EOF and SHORT: then
 * the channel's close by the remote side. m->nfds is 0 unless OK. */
vuf_io_status vuf_endpoint_recv(vuf_endpoint *e, vuf_endpoint_msg *m, int timeout_ms);

/* Send buf (header + payload) with fds; kinds may be NULL (then the fds are
 * classified for the event). On VUF_IO_OK the message event is emitted. The
 * caller keeps the fds. */
vuf_io_status vuf_endpoint_send(vuf_endpoint *e, const uint8_t *buf, size_t len, const int *fds,
                                const uint8_t *kinds, size_t nfds, int timeout_ms);

/* Events an owner emits on the endpoint's channel. */
void vuf_endpoint_emit_open(vuf_endpoint *e, vuf_side by);
void vuf_endpoint_emit_close(vuf_endpoint *e, vuf_side by);
void vuf_endpoint_emit_note(vuf_endpoint *e, vuf_side by, vuf_note_kind k, const char *rule,
                            const char *text);

/* ---- the poll set of an event loop ----
 * Every loop (serve, the harness waiting on an external target, the
 * monitor) gathers the fds its parts want to wait on, polls once, and hands
 * each part its results: the parts never poll on their own. */
#define VUF_POLL_MAX 256

typedef struct {
    struct pollfd pf[VUF_POLL_MAX];
    size_t n;
    int timeout_ms; /* < 0: none */
} vuf_pollset;

void vuf_pollset_init(vuf_pollset *p, int timeout_ms);
/* Add fd (ignored when < 0 or the set is full); returns its index or -1. */
int vuf_pollset_add(vuf_pollset *p, int fd, short events);
/* Wake up no later than ms from now. */
void vuf_pollset_deadline(vuf_pollset *p, int ms);
/* Poll; returns the number of ready fds (0 on timeout or EINTR, -1 on
 * other errors). */
int vuf_pollset_wait(vuf_pollset *p);
/* revents of index i (0 for -1). */
short vuf_pollset_revents(const vuf_pollset *p, int i);

#endif
