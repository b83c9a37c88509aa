/* SPDX-License-Identifier: Apache-2.0 */
/* vuf_ref_conn: one vhost-user connection of the reference device.
 *
 * The thin I/O layer around the I/O-free core (vuf_ref.h): it reads
 * messages and their fds from the main channel and the back-end channel
 * (vuf_endpoint.h), feeds the core, sends what the core says, signals the
 * eventfds it names, and reports every event of the conversation (vuf_event)
 * to an optional observer: the trace log of `vufuzz serve --trace`, or the
 * checker of the fuzz harness. Events are in the order they happened on the
 * device's side of the sockets; a refusal, a back-end reply given up on and
 * a late reply are reported as NOTE events.
 *
 * It never blocks longer than the timeouts it is given: every socket
 * transfer is non-blocking with a deadline, and the eventfds the device keeps
 * are non-blocking. Framing errors close the connection (the reaction
 * policy, docs/reaction-policy.md).
 *
 * Two ways to reach it:
 *   - over a socket (vuf_ref_conn_new): `vufuzz serve` and the fuzz
 *     harness's socket target;
 *   - in process (vuf_ref_conn_new_direct): a peer in the same process
 *     writes the main channel's bytes and fds into a vuf_framer, which gives
 *     the device exactly what the socket would have; replies are reported,
 *     not written. The back-end channel and the kick eventfds stay real.
 * Everything after the bytes arrive (the core, the reaction, the back-end
 * channel, the events) is the same code in both. */
#ifndef VUF_REF_CONN_H
#define VUF_REF_CONN_H

#include <stdbool.h>
#include <stdint.h>

#include "vuf_endpoint.h"
#include "vuf_event.h"
#include "vuf_framer.h"
#include "vuf_ref.h"

typedef struct vuf_ref_conn vuf_ref_conn;

typedef void (*vuf_ref_event_fn)(void *ctx, const vuf_event *ev);

typedef struct {
    /* How long to wait for the rest of a message that has begun arriving
     * (ms). 0: not at all (the fuzz harness writes whole messages). */
    int io_timeout_ms;
    /* Reply deadline of a back-end channel request (ms). < 0: the wait ends
     * only with vuf_ref_conn_backend_timeout() (the deterministic harness). */
    int backend_timeout_ms;
    /* Kick polled queues (SET_VRING_KICK with the no-fd bit) on every step. */
    bool poll_queues;
    vuf_ref_event_fn on_event;   /* every event, or NULL */
    void (*on_flush)(void *ctx); /* a FLUSH completed: make the disk durable */
    /* every fd the connection receives, as it arrives (the harness's fd
     * accounting), or NULL */
    void (*on_fds)(void *ctx, const int *fds, size_t n);
    void *ctx;
} vuf_ref_conn_opts;

/* Takes ownership of main_fd (a connected Unix stream socket). Reports
 * "open main". NULL on allocation failure (main_fd is then closed). */
vuf_ref_conn *vuf_ref_conn_new(vuf_ref *dev, int main_fd, const vuf_ref_conn_opts *o);
/* In process: the main channel's messages come from `in` (the peer writes
 * there and closes it to disconnect); replies are reported as events only.
 * main_fd (owned) is the device's end of a real socket pair standing for the
 * main channel: never read or written, it gives the channel its identity
 * (a SET_BACKEND_REQ_FD carrying the main channel's own socket is known);
 * peer_fd (not owned) is the pair's other end, whose inode is the peer's. */
vuf_ref_conn *vuf_ref_conn_new_direct(vuf_ref *dev, int main_fd, int peer_fd, vuf_framer *in,
                                      const vuf_ref_conn_opts *o);

/* A new connection on the same objects, the old one closed first (no
 * allocation: the harness's in-process target reuses one per session).
 * peer_fd: as for vuf_ref_conn_new_direct (ignored over a socket). Reports
 * "open main". */
void vuf_ref_conn_reopen(vuf_ref_conn *c, int main_fd, int peer_fd);

/* Wait up to timeout_ms for something to do, then do everything that is
 * ready (bounded). Returns false once the connection is closed. */
bool vuf_ref_conn_step(vuf_ref_conn *c, int timeout_ms);
/* In process: handle what the framer holds, and, when poll_fds, whatever
 * is ready on the back-end channel and the kick eventfds (a peer that wrote
 * or closed one of those says so; polling costs a system call). Never
 * waits. Returns false once the connection is closed. */
bool vuf_ref_conn_run(vuf_ref_conn *c, bool poll_fds);

/* For an outer event loop: add the fds the connection waits on to p and
 * lower p's timeout to its next deadline; after the poll, do what is
 * ready. dispatch returns false once the connection is closed. */
void vuf_ref_conn_poll_add(vuf_ref_conn *c, vuf_pollset *p);
bool vuf_ref_conn_dispatch(vuf_ref_conn *c, const vuf_pollset *p);

/* Queue q is kicked now (a polled queue, or a harness that kicks directly). */
void vuf_ref_conn_kick(vuf_ref_conn *c, uint32_t q);
/* End the wait for the outstanding back-end request's reply. */
void vuf_ref_conn_backend_timeout(vuf_ref_conn *c);
/* Resize the disk (BACKEND_CONFIG_CHANGE_MSG when negotiated). */
void vuf_ref_conn_set_disk(vuf_ref_conn *c, uint8_t *disk, uint64_t size);
bool vuf_ref_conn_is_open(const vuf_ref_conn *c);
int vuf_ref_conn_main_fd(const vuf_ref_conn *c);
/* Close from the device's side ("close main by=B") and drop the device's
 * per-connection state. */
void vuf_ref_conn_close(vuf_ref_conn *c);
void vuf_ref_conn_free(vuf_ref_conn *c); /* closes the connection if open */

#endif
