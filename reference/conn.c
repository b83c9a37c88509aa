/* SPDX-License-Identifier: Apache-2.0 */
/* One connection of the reference device: sockets, eventfds, deadlines.
 *
 * Security model: the peer controls every byte and fd that arrives. The
 * transport bounds what is read (VUF_PAYLOAD_MAX, VUF_MAX_FDS) and closes
 * fds on every error; this layer never waits past its deadlines and closes
 * the connection when framing breaks. */
#include "vuf_ref_conn.h"
#include "vuf_codec.h"
#include "vuf_transport.h"

#include <errno.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define MSGS_PER_STEP 64

struct vuf_ref_conn {
    vuf_ref *dev;
    int main_fd;
    bool open;
    vuf_ref_conn_opts o;
    int64_t be_deadline; /* ms on CLOCK_MONOTONIC, 0 = none */
    bool be_timed_out;   /* a back-end request's reply was given up: a late one may come */
    bool identity;       /* the device knows the main socket's inodes */
    uint8_t buf[VUF_HDR_SIZE + VUF_PAYLOAD_MAX];
    vuf_ref_out out;
};

static int64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void emit(vuf_ref_conn *c, vuf_event_kind k, vuf_side s, vuf_channel ch, const uint8_t *data,
                 size_t len, const int *fds, size_t nfds)
{
    if (!c->o.on_event)
        return;
    uint8_t kinds[VUF_EV_MAX_FDS];
    if (nfds > VUF_EV_MAX_FDS)
        nfds = VUF_EV_MAX_FDS;
    for (size_t i = 0; i < nfds; i++)
        kinds[i] = (uint8_t)vuf_fd_classify(fds[i]);
    vuf_event ev = {.kind = k,
                    .sender = s,
                    .channel = ch,
                    .data = data,
                    .len = len,
                    .fds = kinds,
                    .nfds = nfds};
    c->o.on_event(c->o.ctx, &ev);
}

static void emit_msg_kinds(vuf_ref_conn *c, vuf_side s, vuf_channel ch, const uint8_t *data,
                           size_t len, const uint8_t *kinds, size_t nfds)
{
    if (!c->o.on_event)
        return;
    vuf_event ev = {.kind = VUF_EV_MSG,
                    .sender = s,
                    .channel = ch,
                    .data = data,
                    .len = len,
                    .fds = kinds,
                    .nfds = nfds};
    c->o.on_event(c->o.ctx, &ev);
}

/* What the device did that is not on the wire (a refusal and its rule, a
 * reply given up, a late reply ignored): a note event of the trace. */
static void emit_note(vuf_ref_conn *c, vuf_note_kind k, vuf_channel ch, const char *rule,
                      const char *text)
{
    if (!c->o.on_event)
        return;
    vuf_event ev = {.kind = VUF_EV_NOTE,
                    .sender = VUF_SIDE_BACKEND,
                    .channel = ch,
                    .note = k,
                    .rule = rule,
                    .text = text};
    c->o.on_event(c->o.ctx, &ev);
}

static void shutdown_conn(vuf_ref_conn *c, vuf_side by)
{
    if (!c->open)
        return;
    if (vuf_ref_backend_fd(c->dev) >= 0)
        emit(c, VUF_EV_CLOSE, VUF_SIDE_BACKEND, VUF_CHAN_BACKEND, NULL, 0, NULL, 0);
    emit(c, VUF_EV_CLOSE, by, VUF_CHAN_FRONTEND, NULL, 0, NULL, 0);
    close(c->main_fd);
    c->main_fd = -1;
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
    emit(c, VUF_EV_CLOSE, VUF_SIDE_BACKEND, VUF_CHAN_BACKEND, NULL, 0, NULL, 0);
    vuf_ref_backend_closed(c->dev);
    c->be_deadline = 0;
}

/* Carry out what the core decided. */
static void apply(vuf_ref_conn *c)
{
    vuf_ref_out *o = &c->out;
    if (o->backend_closed)
        emit(c, VUF_EV_CLOSE, VUF_SIDE_BACKEND, VUF_CHAN_BACKEND, NULL, 0, NULL, 0);
    if (o->backend_opened)
        emit(c, VUF_EV_OPEN, VUF_SIDE_FRONTEND, VUF_CHAN_BACKEND, NULL, 0, NULL, 0);
    if (o->backend_closed && !o->backend_opened)
        c->be_deadline = 0;
    for (size_t i = 0; i < o->nmsgs && c->open; i++) {
        vuf_ref_msg *m = &o->msgs[i];
        size_t nfds = m->fd >= 0 ? 1 : 0;
        if (m->channel == VUF_CHAN_FRONTEND) {
            if (vuf_send_msg(c->main_fd, m->data, m->len, &m->fd, nfds, c->o.io_timeout_ms)) {
                shutdown_conn(c, VUF_SIDE_FRONTEND); /* the peer is gone */
                break;
            }
            emit(c, VUF_EV_MSG, VUF_SIDE_BACKEND, VUF_CHAN_FRONTEND, m->data, m->len, &m->fd, nfds);
            continue;
        }
        int be = vuf_ref_backend_fd(c->dev);
        if (be < 0)
            continue;
        /* never wait on the back-end channel: a full or dead one is dropped */
        if (vuf_send_msg(be, m->data, m->len, &m->fd, nfds, 0)) {
            backend_lost(c);
            continue;
        }
        emit(c, VUF_EV_MSG, VUF_SIDE_BACKEND, VUF_CHAN_BACKEND, m->data, m->len, &m->fd, nfds);
        if (m->wants_reply)
            c->be_deadline = c->o.backend_timeout_ms >= 0 ? now_ms() + c->o.backend_timeout_ms : 0;
    }
    for (uint32_t q = 0; q < VUF_REF_MAX_QUEUES; q++) {
        if (o->call_mask >> q & 1)
            signal_fd(vuf_ref_call_fd(c->dev, q));
        if (o->err_mask >> q & 1)
            signal_fd(vuf_ref_err_fd(c->dev, q));
    }
    if (o->log_changed)
        signal_fd(vuf_ref_log_fd(c->dev));
    if (o->flush && c->o.on_flush)
        c->o.on_flush(c->o.ctx);
    if (o->close)
        shutdown_conn(c, VUF_SIDE_BACKEND);
    vuf_ref_out_clear(o);
}

vuf_ref_conn *vuf_ref_conn_new(vuf_ref *dev, int main_fd, const vuf_ref_conn_opts *o)
{
    vuf_ref_conn *c = calloc(1, sizeof *c);
    if (!c) {
        close(main_fd);
        return NULL;
    }
    c->dev = dev;
    c->main_fd = main_fd;
    c->open = true;
    if (o)
        c->o = *o;
    vuf_ref_out_init(&c->out);
    emit(c, VUF_EV_OPEN, VUF_SIDE_FRONTEND, VUF_CHAN_FRONTEND, NULL, 0, NULL, 0);
    return c;
}

/* Report what arrived of a message that failed to arrive whole. */
static void emit_partial(vuf_ref_conn *c, vuf_channel ch, const vuf_rx_msg *rx)
{
    if (rx->hdr_len == 0)
        return;
    memcpy(c->buf, rx->hdr, rx->hdr_len);
    size_t len = rx->hdr_len;
    if (rx->hdr_len == VUF_HDR_SIZE)
        len += rx->payload_len;
    emit_msg_kinds(c, VUF_SIDE_FRONTEND, ch, c->buf, len, NULL, 0);
}

/* One message from channel ch. false: nothing more to read there now. */
static bool read_one(vuf_ref_conn *c, vuf_channel ch)
{
    int fd = ch == VUF_CHAN_FRONTEND ? c->main_fd : vuf_ref_backend_fd(c->dev);
    if (fd < 0)
        return false;
    vuf_rx_msg rx;
    memset(&rx, 0, sizeof rx);
    rx.payload = c->buf + VUF_HDR_SIZE;
    rx.payload_cap = VUF_PAYLOAD_MAX;
    vuf_io_status st = vuf_recv_msg(fd, &rx, c->o.io_timeout_ms);
    if (st == VUF_IO_TIMEOUT && rx.hdr_len == 0)
        return false;
    if (st == VUF_IO_OK) {
        memcpy(c->buf, rx.hdr, VUF_HDR_SIZE);
        size_t len = VUF_HDR_SIZE + rx.payload_len;
        uint8_t kinds[VUF_MAX_FDS];
        for (size_t i = 0; i < rx.nfds; i++) {
            kinds[i] = (uint8_t)vuf_fd_classify(rx.fds[i]);
            if (kinds[i] == VUF_FDKIND_SOCKET && !c->identity) {
                /* a socket arrived: the device can now tell whether it is
                 * this connection's own (asked once, when first needed) */
                uint64_t ino = 0, peer = 0;
                if (vuf_unix_peer_ino(c->main_fd, &ino, &peer))
                    peer = 0; /* no sock_diag: only the socket itself is recognised */
                vuf_ref_set_channel_identity(c->dev, ino, peer);
                c->identity = true;
            }
        }
        emit_msg_kinds(c, VUF_SIDE_FRONTEND, ch, c->buf, len, kinds, rx.nfds);
        bool waiting = vuf_ref_backend_waiting(c->dev);
        if (ch == VUF_CHAN_FRONTEND)
            vuf_ref_handle(c->dev, c->buf, len, rx.fds, kinds, rx.nfds, &c->out);
        else
            vuf_ref_handle_backend(c->dev, c->buf, len, rx.fds, kinds, rx.nfds, &c->out);
        /* the reason the device gave: a refusal, or on the back-end channel a
         * reply it ignored (late, after it gave up waiting) */
        if (c->out.reason && ch == VUF_CHAN_BACKEND && c->be_timed_out)
            emit_note(c, VUF_NOTE_LATE, ch, NULL, c->out.reason);
        else if (c->out.reason)
            emit_note(c, VUF_NOTE_REFUSE, ch, c->out.rule, c->out.reason);
        if (ch == VUF_CHAN_BACKEND && waiting && !vuf_ref_backend_waiting(c->dev))
            c->be_timed_out = false; /* the awaited reply came */
        if (ch == VUF_CHAN_BACKEND && !vuf_ref_backend_waiting(c->dev))
            c->be_deadline = 0;
        apply(c);
        return c->open;
    }
    /* EOF: the peer closed; anything else broke the framing */
    emit_partial(c, ch, &rx);
    bool by_peer = st == VUF_IO_EOF || st == VUF_IO_SHORT;
    if (ch == VUF_CHAN_FRONTEND) {
        shutdown_conn(c, by_peer ? VUF_SIDE_FRONTEND : VUF_SIDE_BACKEND);
    } else if (by_peer) {
        emit(c, VUF_EV_CLOSE, VUF_SIDE_FRONTEND, VUF_CHAN_BACKEND, NULL, 0, NULL, 0);
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

bool vuf_ref_conn_step(vuf_ref_conn *c, int timeout_ms)
{
    if (!c->open)
        return false;
    struct pollfd pf[2 + VUF_REF_MAX_QUEUES];
    uint32_t qs[VUF_REF_MAX_QUEUES];
    int kfd[VUF_REF_MAX_QUEUES];
    size_t n = 0;
    pf[n++] = (struct pollfd){.fd = c->main_fd, .events = POLLIN};
    int be = vuf_ref_backend_fd(c->dev);
    if (be >= 0)
        pf[n++] = (struct pollfd){.fd = be, .events = POLLIN};
    size_t nk = vuf_ref_kick_fds(c->dev, kfd, qs, VUF_REF_MAX_QUEUES);
    for (size_t i = 0; i < nk; i++)
        pf[n++] = (struct pollfd){.fd = kfd[i], .events = POLLIN};
    uint64_t polled = c->o.poll_queues ? vuf_ref_polled_queues(c->dev) : 0;
    if (polled && (timeout_ms < 0 || timeout_ms > 10))
        timeout_ms = 10;
    if (c->be_deadline) {
        int64_t left = c->be_deadline - now_ms();
        if (left < 0)
            left = 0;
        if (timeout_ms < 0 || left < timeout_ms)
            timeout_ms = (int)left;
    }
    int r = poll(pf, (nfds_t)n, timeout_ms);
    if (r < 0 && errno != EINTR)
        return c->open;
    const short ready = POLLIN | POLLHUP | POLLERR | POLLNVAL;
    /* only what poll reported: each read loop ends at the first EAGAIN. The
     * back-end channel first: the front-end's replies there came before its
     * next requests on the main socket (and before it closes it). */
    if (r > 0 && be >= 0 && (pf[1].revents & ready))
        for (int k = 0; c->open && k < MSGS_PER_STEP && read_one(c, VUF_CHAN_BACKEND); k++) {
        }
    if (r > 0 && (pf[0].revents & ready))
        for (int k = 0; c->open && k < MSGS_PER_STEP && read_one(c, VUF_CHAN_FRONTEND); k++) {
        }
    /* kicks whose eventfds fired and are still the queue's (messages may
     * have replaced them meanwhile) */
    size_t base = be >= 0 ? 2 : 1;
    for (size_t i = 0; r > 0 && i < nk && c->open; i++) {
        if (!(pf[base + i].revents & POLLIN) || vuf_ref_kick_fd(c->dev, qs[i]) != kfd[i])
            continue;
        uint64_t cnt;
        if (read(kfd[i], &cnt, sizeof cnt) == (ssize_t)sizeof cnt)
            kick(c, qs[i]);
    }
    for (uint32_t q = 0; c->open && q < VUF_REF_MAX_QUEUES; q++)
        if (polled >> q & 1)
            kick(c, q);
    if (c->open && c->be_deadline && now_ms() >= c->be_deadline)
        vuf_ref_conn_backend_timeout(c);
    return c->open;
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
    if (vuf_ref_backend_waiting(c->dev)) {
        emit_note(c, VUF_NOTE_TIMEOUT, VUF_CHAN_BACKEND, NULL,
                  "no reply to the back-end request in time: given up");
        c->be_timed_out = true;
    }
    c->be_deadline = 0;
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
    shutdown_conn(c, VUF_SIDE_BACKEND);
}

void vuf_ref_conn_free(vuf_ref_conn *c)
{
    if (!c)
        return;
    shutdown_conn(c, VUF_SIDE_BACKEND);
    vuf_ref_out_clear(&c->out);
    free(c);
}
