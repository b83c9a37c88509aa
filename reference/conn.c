/* SPDX-License-Identifier: Apache-2.0 */
/* One connection of the reference device: endpoints, eventfds, deadlines.
 *
 * Security model: the peer controls every byte and fd that arrives. The
 * transport bounds what is read (VUF_PAYLOAD_MAX, VUF_MAX_FDS) and closes
 * fds on every error; this layer never waits past its deadlines and closes
 * the connection when framing breaks. */
#include "vuf_ref_conn.h"
#include "vuf_util.h"
#include "vuf_codec.h"
#include "vuf_transport.h"

#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define MSGS_PER_STEP 64

struct vuf_ref_conn {
    vuf_ref *dev;
    int main_fd;
    bool open, direct;
    vuf_ref_conn_opts o;
    vuf_endpoint *main, *be; /* the device's ends (be follows the device's back-end fd) */
    int64_t be_deadline;     /* ms on CLOCK_MONOTONIC, 0 = none */
    uint32_t be_gave_up;     /* id of the request whose reply the device gave up on, or 0 */
    bool identity;           /* the device knows the main socket's inodes */
    int identity_peer;       /* direct: the peer's end of the main socket pair (not owned) */
    vuf_ref_out out;
    /* the poll set indices of vuf_ref_conn_poll_add */
    int pi_main, pi_be, pi_kick[VUF_REF_MAX_QUEUES];
    int kfd[VUF_REF_MAX_QUEUES];
    uint32_t kq[VUF_REF_MAX_QUEUES];
    size_t nk;
    int be_polled; /* the back-end fd when it was added, or -1 */
};

/* The back-end endpoint follows the device's back-end fd. */
static vuf_endpoint *be_ep(vuf_ref_conn *c)
{
    vuf_endpoint_set_fd(c->be, vuf_ref_backend_fd(c->dev));
    return c->be;
}

static void shutdown_conn(vuf_ref_conn *c, vuf_side by, bool close_emitted)
{
    if (!c->open)
        return;
    if (vuf_ref_backend_fd(c->dev) >= 0)
        vuf_endpoint_emit_close(be_ep(c), VUF_SIDE_BACKEND);
    if (!close_emitted)
        vuf_endpoint_emit_close(c->main, by);
    close(c->main_fd);
    c->main_fd = -1;
    vuf_endpoint_set_fd(c->main, -1);
    c->open = false;
    c->be_deadline = 0;
    vuf_ref_disconnect(c->dev);
}

static void signal_fd(int fd)
{
    uint64_t one = 1;
    if (fd >= 0 && write(fd, &one, sizeof one) < 0) {
        /* EAGAIN: the counter is saturated, the peer is notified already */
    }
}

static void backend_lost(vuf_ref_conn *c)
{
    vuf_endpoint_emit_close(be_ep(c), VUF_SIDE_BACKEND);
    vuf_ref_backend_closed(c->dev);
    c->be_deadline = 0;
}

/* A refusal by the device, as a NOTE event on the channel of the request. */
static void note_refusal(vuf_ref_conn *c, vuf_endpoint *ep, const uint8_t *msg, size_t len)
{
    const char *why = c->out.reason;
    if (!why)
        return;
    vuf_hdr h = {0};
    if (len >= VUF_HDR_SIZE)
        vuf_hdr_decode(msg, &h);
    vuf_note_kind k = VUF_NOTE_REFUSE;
    if (ep == c->be && c->be_gave_up && (h.flags & VUF_F_REPLY) && h.request == c->be_gave_up) {
        k = VUF_NOTE_LATE; /* the reply the device stopped waiting for */
        c->be_gave_up = 0;
    }
    vuf_endpoint_emit_note(ep, VUF_SIDE_BACKEND, k, k == VUF_NOTE_REFUSE ? c->out.rule : NULL, why);
}

/* Carry out what the core decided. */
static void apply(vuf_ref_conn *c)
{
    vuf_ref_out *o = &c->out;
    if (o->backend_closed)
        vuf_endpoint_emit_close(c->be, VUF_SIDE_BACKEND);
    if (o->backend_opened)
        vuf_endpoint_emit_open(be_ep(c), VUF_SIDE_FRONTEND);
    if (o->backend_closed && !o->backend_opened)
        c->be_deadline = 0;
    for (size_t i = 0; i < o->nmsgs && c->open; i++) {
        vuf_ref_msg *m = &o->msgs[i];
        size_t nfds = m->fd >= 0 ? 1 : 0;
        if (m->channel == VUF_CHAN_FRONTEND) {
            if (vuf_endpoint_send(c->main, m->data, m->len, &m->fd, NULL, nfds,
                                  c->o.io_timeout_ms)) {
                shutdown_conn(c, VUF_SIDE_FRONTEND, false); /* the peer is gone */
                break;
            }
            continue;
        }
        if (vuf_ref_backend_fd(c->dev) < 0)
            continue;
        /* never wait on the back-end channel: a full or dead one is dropped */
        if (vuf_endpoint_send(be_ep(c), m->data, m->len, &m->fd, NULL, nfds, 0)) {
            backend_lost(c);
            continue;
        }
        if (m->wants_reply) {
            c->be_deadline =
                c->o.backend_timeout_ms >= 0 ? vuf_now_ms() + c->o.backend_timeout_ms : 0;
            c->be_gave_up = 0;
        }
    }
    for (uint64_t m = o->call_mask; m; m &= m - 1)
        signal_fd(vuf_ref_call_fd(c->dev, (uint32_t)__builtin_ctzll(m)));
    for (uint64_t m = o->err_mask; m; m &= m - 1)
        signal_fd(vuf_ref_err_fd(c->dev, (uint32_t)__builtin_ctzll(m)));
    if (o->log_changed)
        signal_fd(vuf_ref_log_fd(c->dev));
    if (o->flush && c->o.on_flush)
        c->o.on_flush(c->o.ctx);
    if (o->close)
        shutdown_conn(c, VUF_SIDE_BACKEND, false);
    vuf_ref_out_clear(o);
}

static vuf_ref_conn *conn_new(vuf_ref *dev, int main_fd, const vuf_ref_conn_opts *o)
{
    vuf_ref_conn *c = calloc(1, sizeof *c);
    if (!c) {
        close(main_fd);
        return NULL;
    }
    c->dev = dev;
    c->main_fd = main_fd;
    c->open = true;
    c->be_polled = -1;
    c->identity_peer = -1;
    if (o)
        c->o = *o;
    vuf_endpoint_opts eo = {.channel = VUF_CHAN_FRONTEND,
                            .local = VUF_SIDE_BACKEND,
                            .payload_cap = VUF_PAYLOAD_MAX,
                            .on_event = c->o.on_event,
                            .ctx = c->o.ctx};
    c->main = vuf_endpoint_new(main_fd, &eo);
    eo.channel = VUF_CHAN_BACKEND;
    c->be = vuf_endpoint_new(-1, &eo);
    if (!c->main || !c->be) {
        vuf_endpoint_free(c->main);
        vuf_endpoint_free(c->be);
        close(main_fd);
        free(c);
        return NULL;
    }
    vuf_ref_out_init(&c->out);
    vuf_endpoint_emit_open(c->main, VUF_SIDE_FRONTEND);
    return c;
}

void vuf_ref_conn_reopen(vuf_ref_conn *c, int main_fd, int peer_fd)
{
    vuf_ref_conn_close(c);
    c->main_fd = main_fd;
    c->open = true;
    c->be_deadline = 0;
    c->be_gave_up = 0;
    c->identity = false;
    c->identity_peer = c->direct ? peer_fd : -1;
    c->be_polled = -1;
    vuf_endpoint_set_fd(c->main, main_fd);
    vuf_ref_out_clear(&c->out);
    vuf_endpoint_emit_open(c->main, VUF_SIDE_FRONTEND);
}

vuf_ref_conn *vuf_ref_conn_new(vuf_ref *dev, int main_fd, const vuf_ref_conn_opts *o)
{
    return conn_new(dev, main_fd, o);
}

vuf_ref_conn *vuf_ref_conn_new_direct(vuf_ref *dev, int main_fd, int peer_fd, vuf_framer *in,
                                      const vuf_ref_conn_opts *o)
{
    vuf_ref_conn *c = conn_new(dev, main_fd, o);
    if (c) {
        c->direct = true;
        c->identity_peer = peer_fd;
        vuf_endpoint_set_framer(c->main, in);
        vuf_endpoint_set_direct(c->main, true);
    }
    return c;
}

/* Has a message begun arriving on fd? io_timeout_ms is for the rest of a
 * message, never for waiting for the next one: the device does not wait
 * (a reply on the other channel would sit unread, and time out). */
static bool readable_now(int fd)
{
    struct pollfd p = {.fd = fd, .events = POLLIN};
    return poll(&p, 1, 0) > 0;
}

/* One message from channel ch. false: nothing more to read there now. */
static bool read_one(vuf_ref_conn *c, vuf_channel ch)
{
    vuf_endpoint *ep = ch == VUF_CHAN_FRONTEND ? c->main : be_ep(c);
    if (!c->open || (ch == VUF_CHAN_BACKEND && vuf_endpoint_fd(ep) < 0))
        return false;
    if (c->o.io_timeout_ms > 0 && !(ch == VUF_CHAN_FRONTEND && c->direct) &&
        !readable_now(vuf_endpoint_fd(ep)))
        return false;
    vuf_endpoint_msg m;
    vuf_io_status st = vuf_endpoint_recv(ep, &m, c->o.io_timeout_ms);
    if (st == VUF_IO_TIMEOUT && m.len == 0)
        return false;
    if (st == VUF_IO_OK) {
        if (m.nfds && c->o.on_fds)
            c->o.on_fds(c->o.ctx, m.fds, m.nfds);
        for (size_t i = 0; i < m.nfds && !c->identity; i++) {
            if (m.kinds[i] != VUF_FDKIND_SOCKET)
                continue;
            /* a socket arrived: the device can now tell whether it is this
             * connection's own (asked once, when first needed) */
            uint64_t ino = 0, peer = 0;
            struct stat a, b;
            if (c->identity_peer >= 0 && !fstat(c->main_fd, &a) && !fstat(c->identity_peer, &b)) {
                ino = (uint64_t)a.st_ino; /* a pair in this process: both ends are here */
                peer = (uint64_t)b.st_ino;
            } else if (vuf_unix_peer_ino(c->main_fd, &ino, &peer)) {
                peer = 0; /* no sock_diag: only the socket itself is recognised */
            }
            vuf_ref_set_channel_identity(c->dev, ino, peer);
            c->identity = true;
        }
        /* the core may change the back-end channel: the bytes stay in the
         * endpoint's buffer until its next receive */
        if (ch == VUF_CHAN_FRONTEND)
            vuf_ref_handle(c->dev, m.data, m.len, m.fds, m.kinds, m.nfds, &c->out);
        else
            vuf_ref_handle_backend(c->dev, m.data, m.len, m.fds, m.kinds, m.nfds, &c->out);
        if (ch == VUF_CHAN_BACKEND && !vuf_ref_backend_waiting(c->dev))
            c->be_deadline = 0;
        note_refusal(c, ep, m.data, m.len);
        apply(c);
        return c->open;
    }
    /* EOF: the peer closed; anything else broke the framing (the endpoint
     * reported what arrived, and the close on EOF and SHORT) */
    bool by_peer = st == VUF_IO_EOF || st == VUF_IO_SHORT;
    if (ch == VUF_CHAN_FRONTEND) {
        shutdown_conn(c, by_peer ? VUF_SIDE_FRONTEND : VUF_SIDE_BACKEND, by_peer);
    } else if (by_peer) {
        vuf_ref_backend_closed(c->dev);
        c->be_deadline = 0;
    } else {
        backend_lost(c);
    }
    return false;
}

static void kick(vuf_ref_conn *c, uint32_t q)
{
    vuf_ref_kick(c->dev, q, &c->out);
    apply(c);
}

static void read_channel(vuf_ref_conn *c, vuf_channel ch)
{
    for (int k = 0; c->open && k < MSGS_PER_STEP && read_one(c, ch); k++) {
    }
}

/* A kick eventfd that fired and is still its queue's (messages may have
 * replaced it meanwhile). */
static void kicked(vuf_ref_conn *c, size_t i)
{
    if (!c->open || vuf_ref_kick_fd(c->dev, c->kq[i]) != c->kfd[i])
        return;
    uint64_t cnt;
    if (read(c->kfd[i], &cnt, sizeof cnt) == (ssize_t)sizeof cnt)
        kick(c, c->kq[i]);
}

static void after_fds(vuf_ref_conn *c)
{
    if (!c->open)
        return;
    uint64_t polled = c->o.poll_queues ? vuf_ref_polled_queues(c->dev) : 0;
    for (; c->open && polled; polled &= polled - 1)
        kick(c, (uint32_t)__builtin_ctzll(polled));
    if (c->open && c->be_deadline && vuf_now_ms() >= c->be_deadline)
        vuf_ref_conn_backend_timeout(c);
}

void vuf_ref_conn_poll_add(vuf_ref_conn *c, vuf_pollset *p)
{
    c->pi_main = c->pi_be = -1;
    c->nk = 0;
    if (!c->open)
        return;
    if (!c->direct)
        c->pi_main = vuf_pollset_add(p, c->main_fd, POLLIN);
    c->be_polled = vuf_ref_backend_fd(c->dev);
    c->pi_be = vuf_pollset_add(p, c->be_polled, POLLIN);
    c->nk = vuf_ref_kick_fds(c->dev, c->kfd, c->kq, VUF_REF_MAX_QUEUES);
    for (size_t i = 0; i < c->nk; i++)
        c->pi_kick[i] = vuf_pollset_add(p, c->kfd[i], POLLIN);
    if (c->o.poll_queues && vuf_ref_polled_queues(c->dev))
        vuf_pollset_deadline(p, 10);
    if (c->be_deadline)
        vuf_pollset_deadline(p, (int)(c->be_deadline - vuf_now_ms()));
}

bool vuf_ref_conn_dispatch(vuf_ref_conn *c, const vuf_pollset *p)
{
    const short ready = POLLIN | POLLHUP | POLLERR | POLLNVAL;
    /* the back-end channel first: the front-end's replies there came before
     * its next requests on the main socket (and before it closes it) */
    if (c->open && (vuf_pollset_revents(p, c->pi_be) & ready) &&
        vuf_ref_backend_fd(c->dev) == c->be_polled)
        read_channel(c, VUF_CHAN_BACKEND);
    if (c->open && (c->direct || (vuf_pollset_revents(p, c->pi_main) & ready)))
        read_channel(c, VUF_CHAN_FRONTEND);
    for (size_t i = 0; c->open && i < c->nk; i++)
        if (vuf_pollset_revents(p, c->pi_kick[i]) & POLLIN)
            kicked(c, i);
    after_fds(c);
    return c->open;
}

bool vuf_ref_conn_step(vuf_ref_conn *c, int timeout_ms)
{
    if (!c->open)
        return false;
    vuf_pollset p;
    vuf_pollset_init(&p, timeout_ms);
    vuf_ref_conn_poll_add(c, &p);
    if (vuf_pollset_wait(&p) < 0)
        return c->open;
    return vuf_ref_conn_dispatch(c, &p);
}

bool vuf_ref_conn_run(vuf_ref_conn *c, bool poll_fds)
{
    if (!c->open)
        return false;
    if (poll_fds)
        return vuf_ref_conn_step(c, 0);
    /* only the framer can hold something */
    static const vuf_pollset nothing_ready = {.n = 0};
    c->pi_main = c->pi_be = -1;
    c->nk = 0;
    return vuf_ref_conn_dispatch(c, &nothing_ready);
}

void vuf_ref_conn_kick(vuf_ref_conn *c, uint32_t q)
{
    if (c->open)
        kick(c, q);
}

void vuf_ref_conn_backend_timeout(vuf_ref_conn *c)
{
    if (!c->open)
        return;
    c->be_deadline = 0;
    if (vuf_ref_backend_waiting(c->dev)) {
        char text[64];
        c->be_gave_up = vuf_ref_backend_wait_id(c->dev);
        snprintf(text, sizeof text, "gave up waiting for the reply to request %u", c->be_gave_up);
        vuf_endpoint_emit_note(be_ep(c), VUF_SIDE_BACKEND, VUF_NOTE_TIMEOUT, NULL, text);
    }
    vuf_ref_backend_timeout(c->dev, &c->out);
    apply(c);
}

void vuf_ref_conn_set_disk(vuf_ref_conn *c, uint8_t *disk, uint64_t size)
{
    vuf_ref_set_disk(c->dev, disk, size, &c->out);
    if (c->open)
        apply(c);
    else
        vuf_ref_out_clear(&c->out);
}

bool vuf_ref_conn_is_open(const vuf_ref_conn *c)
{
    return c->open;
}

int vuf_ref_conn_main_fd(const vuf_ref_conn *c)
{
    return c->main_fd;
}

void vuf_ref_conn_close(vuf_ref_conn *c)
{
    shutdown_conn(c, VUF_SIDE_BACKEND, false);
}

void vuf_ref_conn_free(vuf_ref_conn *c)
{
    if (!c)
        return;
    shutdown_conn(c, VUF_SIDE_BACKEND, false);
    vuf_ref_out_clear(&c->out);
    vuf_endpoint_free(c->main);
    vuf_endpoint_free(c->be);
    free(c);
}
