/* SPDX-License-Identifier: Apache-2.0 */
/* vuf_relay: one connection of `vufuzz monitor`, a front-end's relayed to a
 * back-end's, byte for byte, on both channels, and the conversation as the
 * relay saw it (vuf_event).
 *
 * Relaying (vuf_transport.h, vuf_recv_segment): what one side writes the
 * other reads unchanged, every byte and every fd at the byte it rode on, as
 * it was read: a malformed message passes as it is. Each direction queues
 * what its reader does not take yet and is written without waiting, so a
 * slow or stuck side never blocks the other direction; past queue_max
 * bytes the relay stops reading from the writer (who then waits on its
 * own socket, as it would with a slow peer).
 *
 * The back-end channel: a SET_BACKEND_REQ_FD whose one fd is a connected
 * stream socket, on its header's first byte (any front-end does that), is
 * interposed: the relay keeps the front-end's socket and hands the
 * back-end one end of a socket pair of its own, then relays between the
 * two like the main channel. Any other SET_BACKEND_REQ_FD (no fd, two,
 * an eventfd, a socket that is not connected, bytes split oddly) is relayed
 * as it is; the back-end channel it may open is then not seen (a note says
 * so). A SET_BACKEND_REQ_FD that passes the front-end's own end of the main
 * connection passes the relay's own end of the back-end's main connection
 * instead: to the back-end it is what it was, its peer's end of its main
 * channel.
 *
 * Events: each direction's bytes are framed by a live vuf_framer (the
 * receive rules of vuf_recv_msg, 64 KiB payloads) as the receiver frames
 * them, and reported through a vuf_endpoint, so a message is reported once
 * it is whole, as its receiver reads it: "open main" first, "open backend"
 * after an interposed SET_BACKEND_REQ_FD, and a channel's "close" when a
 * side closed it (by that side). A side that closes the main channel ends
 * the connection: what it sent before is delivered first (for up to
 * drain_ms), then the relay closes both sides. A side that closes the
 * back-end channel closes it for the other side too.
 *
 * I/O on the sockets it is given; it polls nothing itself: an event loop
 * gathers its fds (vuf_relay_poll_add) and hands it the results
 * (vuf_relay_dispatch). */
#ifndef VUF_RELAY_H
#define VUF_RELAY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "vuf_endpoint.h"
#include "vuf_event.h"
#include "vuf_spec.h"

typedef struct vuf_relay vuf_relay;

typedef struct {
    const vuf_spec *spec;
    vuf_event_fn on_event; /* every event, in the order the relay saw them */
    /* what the relay did that the wire does not show (one line, for people:
     * a comment of the trace), or NULL */
    void (*on_note)(void *ctx, const char *text);
    void *ctx;
    size_t queue_max; /* bytes held for one reader before its writer is not read (0: 1 MiB) */
    int drain_ms;     /* after a side closed the main channel (0: 1000) */
} vuf_relay_opts;

/* fe: the front-end's connection (accepted); be: the back-end's
 * (connected). Both are the relay's (closed by it). Reports "open main".
 * NULL on allocation failure (both closed). */
vuf_relay *vuf_relay_new(int fe, int be, const vuf_relay_opts *o);
void vuf_relay_poll_add(vuf_relay *r, vuf_pollset *p);
/* Do what is ready. false once the connection ended (then vuf_relay_free). */
bool vuf_relay_dispatch(vuf_relay *r, const vuf_pollset *p);
/* Close both sides now (the monitor stops): the channels still open are
 * reported closed by the front-end (to the back-end, its front-end went
 * away). */
void vuf_relay_close(vuf_relay *r);
/* Closes everything it still holds (no event). */
void vuf_relay_free(vuf_relay *r);

/* Which side closed the main channel (ended the connection), or -1. */
int vuf_relay_closer(const vuf_relay *r);
/* fds the relay holds: its sockets and the fds waiting to be forwarded. */
size_t vuf_relay_fd_count(const vuf_relay *r);

#endif
