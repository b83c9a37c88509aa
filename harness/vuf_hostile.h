/* SPDX-License-Identifier: Apache-2.0 */
/* vuf_hostile: vufuzz as a hostile back-end, one connection of a front-end
 * under test (QEMU) at a time: the back-end side of `vufuzz fuzz-frontend`
 * and `vufuzz replay --frontend-exec`.
 *
 * The back-end is the reference device (vuf_ref.h) and its connection layer
 * (vuf_ref_conn.h), unchanged, behind a pair of socket pairs: every message
 * of the front-end goes to the device as it came (fds included), every
 * message of the device goes to the front-end, and a session whose role is
 * BACKEND (docs/session-format.md, "Back-end sessions") says where that
 * differs:
 *
 *   F>B main NAME                 wait for the front-end's next NAME (the
 *                                 device serves everything meanwhile); the
 *                                 actions that follow, up to the next
 *                                 F>B line, apply to it:
 *   B>F main NAME reply FIELDS    the reply, laid over the device's reply
 *                                 to that message (what it leaves out is
 *                                 the device's); with no reply line the
 *                                 device's reply goes first, as it is
 *   B>F main NAME ...             any other message on the main channel
 *   B>F backend NAME ...          a back-end channel request, valid by
 *                                 default from the table (the front-end's
 *                                 reply is taken here, not by the device)
 *   F>B backend NAME              wait for that message on the back-end
 *                                 channel
 *   delay MS                      nothing goes out for MS milliseconds
 *   close main|backend by=B       the back-end closes a channel
 *   raw main|backend data=HEX     bytes as they are; resize N: the disk
 *
 * The back-end channel the front-end hands over with SET_BACKEND_REQ_FD is
 * kept here; the device gets one end of a pair of ours instead, and its
 * requests and the front-end's replies to them are relayed. Kick and call
 * eventfds and guest memory travel to the device untouched (a net device
 * gets idle kick eventfds instead: it serves no ring).
 *
 * Events: every message on the front-end's two sockets, as the front-end
 * saw it (what it sent, what it was sent), and the opening and closing of
 * the channels, in order. They are what the checker judges.
 *
 * One event loop owns it: poll_add and dispatch, like vuf_ref_conn. */
#ifndef VUF_HOSTILE_H
#define VUF_HOSTILE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "vuf_endpoint.h"
#include "vuf_event.h"
#include "vuf_session.h"
#include "vuf_spec.h"

typedef struct vuf_hostile vuf_hostile;

typedef enum {
    VUF_HOSTILE_BLK = 0, /* the reference vhost-user-blk device, rings served */
    VUF_HOSTILE_NET,     /* the reference core with virtio-net's features; no ring served */
} vuf_hostile_device;

typedef struct {
    vuf_hostile_device device;
    /* the disk's first bytes (a boot sector for firmware), or NULL */
    const uint8_t *disk_image;
    size_t disk_image_len;
    /* how long the device waits for the front-end's reply to one of its
     * back-end requests (0: 2000 ms) */
    int backend_timeout_ms;
    /* every event on the front-end's sockets, and every action of the
     * session as it begins (index from 1) */
    void (*on_event)(void *ctx, const vuf_event *ev);
    void (*on_action)(void *ctx, size_t index, const Vuf__Action *a);
    void *ctx;
} vuf_hostile_opts;

/* NULL with a reason in err. */
vuf_hostile *vuf_hostile_new(const vuf_spec *spec, const vuf_hostile_opts *o, char *err,
                             size_t errcap);
void vuf_hostile_free(vuf_hostile *h);

/* A new session on the front-end's connection main_fd (taken: closed by
 * end). s must stay valid until end and must be a back-end session (or
 * empty: the reference device's behaviour). 0, or -1 with err (the session
 * does not build against the table: a bad input). The actions before the
 * first F>B line are performed here. */
int vuf_hostile_begin(vuf_hostile *h, const Vuf__Session *s, int main_fd, char *err, size_t errcap);
/* The front-end connected again (main_fd, taken): the old connection, if
 * still open, is closed; the device serves the new one from scratch, and
 * the session goes on where it was (QEMU reconnects after a failed device
 * realize, or with a chardev's reconnect=). */
void vuf_hostile_reconnect(vuf_hostile *h, int main_fd);
/* The end of the session: every fd closed (the front-end's sockets too),
 * the device reset. */
void vuf_hostile_end(vuf_hostile *h);

void vuf_hostile_poll_add(vuf_hostile *h, vuf_pollset *p);
void vuf_hostile_dispatch(vuf_hostile *h, const vuf_pollset *p);

/* A channel on which the back-end left a message unfinished (the session
 * truncated one, gave a header a larger size than the bytes it sent, or
 * wrote raw bytes) is closed by the back-end now: a front-end that reads a
 * message whole waits for the rest for as long as the channel is open, and
 * the end of a session is when the back-end gives up. true if one was. */
bool vuf_hostile_close_unfinished(vuf_hostile *h);

/* The back-end gives up and closes the main channel (the back-end channel
 * with it): the end of a session in which the front-end waits for a reply
 * the session never sent whole (a reply held back, or truncated to
 * nothing). A front-end blocked in that wait is waiting on its peer, not
 * hung; what it does once the channel closes is played and judged. true if
 * the channel was open. */
bool vuf_hostile_hang_up(vuf_hostile *h);

/* Is the front-end's main channel still open? */
bool vuf_hostile_open(const vuf_hostile *h);
/* Nothing is pending on the back-end's side: no delay running, and the
 * action the session waits for, if any, is an F>B line. */
bool vuf_hostile_idle(const vuf_hostile *h);
/* CLOCK_MONOTONIC ms of the last message on either socket. */
int64_t vuf_hostile_last_activity(const vuf_hostile *h);
/* Actions performed or matched so far in this session (the next one is
 * number done + 1), and the session's count. */
size_t vuf_hostile_actions_done(const vuf_hostile *h);
/* The reason the session could not go on as written ("" if none): a
 * message that did not build (a bad input: the run stops there). */
const char *vuf_hostile_error(const vuf_hostile *h);
/* Block requests the device completed, over every session. */
uint64_t vuf_hostile_chains(const vuf_hostile *h);

#endif
