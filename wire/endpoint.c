/* SPDX-License-Identifier: Apache-2.0 */
/* vuf_endpoint: see vuf_endpoint.h. */
#include "vuf_endpoint.h"
#include "vuf_codec.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

struct vuf_endpoint {
    int fd;
    vuf_endpoint_opts o;
    vuf_framer *framer;
    bool direct;
    vuf_framer *txf; /* tx framing: the receiver's view of what was sent */
    size_t cap;
    uint8_t *buf; /* header + payload of the last message received */
};

vuf_endpoint *vuf_endpoint_new(int fd, const vuf_endpoint_opts *o)
{
    vuf_endpoint *e = calloc(1, sizeof *e);
    if (!e)
        return NULL;
    e->fd = fd;
    e->o = *o;
    e->cap = o->payload_cap ? o->payload_cap : VUF_PAYLOAD_MAX;
    if (e->cap > VUF_MAX_PAYLOAD)
        e->cap = VUF_MAX_PAYLOAD;
    e->buf = malloc(VUF_HDR_SIZE + e->cap);
    if (!e->buf) {
        free(e);
        return NULL;
    }
    return e;
}

void vuf_endpoint_free(vuf_endpoint *e)
{
    if (!e)
        return;
    vuf_framer_free(e->txf);
    free(e->buf);
    free(e);
}

void vuf_endpoint_set_fd(vuf_endpoint *e, int fd)
{
    /* another connection: what a receiver framed of the last one's bytes
     * (a header whose payload never came) does not go on into it */
    if (fd != e->fd && e->txf)
        vuf_framer_reset(e->txf);
    e->fd = fd;
}

int vuf_endpoint_fd(const vuf_endpoint *e)
{
    return e->fd;
}

vuf_channel vuf_endpoint_channel(const vuf_endpoint *e)
{
    return e->o.channel;
}

void vuf_endpoint_set_framer(vuf_endpoint *e, vuf_framer *f)
{
    e->framer = f;
}

void vuf_endpoint_set_direct(vuf_endpoint *e, bool direct)
{
    e->direct = direct;
}

void vuf_endpoint_set_tx_framing(vuf_endpoint *e, bool on)
{
    if (on && !e->txf)
        e->txf = vuf_framer_new();
    else if (!on) {
        vuf_framer_free(e->txf);
        e->txf = NULL;
    }
}

static vuf_side remote(const vuf_endpoint *e)
{
    return e->o.local == VUF_SIDE_FRONTEND ? VUF_SIDE_BACKEND : VUF_SIDE_FRONTEND;
}

static void emit(vuf_endpoint *e, vuf_event_kind k, vuf_side s, const uint8_t *data, size_t len,
                 const uint8_t *kinds, size_t nfds)
{
    if (!e->o.on_event)
        return;
    vuf_event ev = {.kind = k,
                    .sender = s,
                    .channel = e->o.channel,
                    .data = data,
                    .len = len,
                    .fds = kinds,
                    .nfds = nfds > VUF_EV_MAX_FDS ? VUF_EV_MAX_FDS : nfds};
    e->o.on_event(e->o.ctx, &ev);
}

void vuf_endpoint_emit_open(vuf_endpoint *e, vuf_side by)
{
    emit(e, VUF_EV_OPEN, by, NULL, 0, NULL, 0);
}

/* The messages a receiver has framed from what this side wrote: whole ones
 * (or, once the writer closed, what is left). */
static void emit_framed(vuf_endpoint *e)
{
    uint8_t buf[VUF_HDR_SIZE + VUF_MAX_PAYLOAD];
    uint8_t kinds[VUF_MAX_FDS];
    while (vuf_framer_ready(e->txf) || (vuf_framer_closed(e->txf) && vuf_framer_pending(e->txf))) {
        vuf_rx_msg rx;
        memset(&rx, 0, sizeof rx);
        rx.payload = buf + VUF_HDR_SIZE;
        rx.payload_cap = VUF_MAX_PAYLOAD;
        vuf_io_status st = vuf_framer_next(e->txf, &rx, kinds);
        memcpy(buf, rx.hdr, rx.hdr_len);
        size_t len = rx.hdr_len + (rx.hdr_len == VUF_HDR_SIZE ? rx.payload_len : 0);
        if (len)
            emit(e, VUF_EV_MSG, e->o.local, buf, len, st == VUF_IO_OK ? kinds : NULL,
                 st == VUF_IO_OK ? rx.nfds : 0);
        if (st != VUF_IO_OK && st != VUF_IO_CTRUNC && st != VUF_IO_OVERSIZE)
            break;
    }
}

void vuf_endpoint_emit_close(vuf_endpoint *e, vuf_side by)
{
    if (e->txf && by == e->o.local && vuf_framer_pending(e->txf)) {
        vuf_framer_close(e->txf); /* what was cut short */
        emit_framed(e);
    }
    if (e->txf)
        vuf_framer_reset(e->txf);
    emit(e, VUF_EV_CLOSE, by, NULL, 0, NULL, 0);
}

void vuf_endpoint_emit_note(vuf_endpoint *e, vuf_side by, vuf_note_kind k, const char *rule,
                            const char *text)
{
    if (!e->o.on_event)
        return;
    vuf_event ev = {.kind = VUF_EV_NOTE,
                    .sender = by,
                    .channel = e->o.channel,
                    .note = k,
                    .rule = rule,
                    .text = text};
    e->o.on_event(e->o.ctx, &ev);
}

vuf_io_status vuf_endpoint_recv(vuf_endpoint *e, vuf_endpoint_msg *m, int timeout_ms)
{
    m->data = e->buf;
    m->len = 0;
    m->nfds = 0;
    if (!e->framer && e->fd < 0) {
        errno = EBADF;
        return VUF_IO_ERROR;
    }
    vuf_rx_msg rx;
    memset(&rx, 0, sizeof rx);
    rx.payload = e->buf + VUF_HDR_SIZE;
    rx.payload_cap = e->cap;
    bool tagged = e->framer != NULL;
    vuf_io_status st =
        tagged ? vuf_framer_next(e->framer, &rx, m->kinds) : vuf_recv_msg(e->fd, &rx, timeout_ms);
    memcpy(e->buf, rx.hdr, rx.hdr_len);
    m->len = rx.hdr_len + (rx.hdr_len == VUF_HDR_SIZE ? rx.payload_len : 0);
    switch (st) {
    case VUF_IO_OK:
        m->nfds = rx.nfds;
        memcpy(m->fds, rx.fds, rx.nfds * sizeof(int));
        if (!tagged)
            for (size_t i = 0; i < rx.nfds; i++)
                m->kinds[i] = (uint8_t)vuf_fd_classify(rx.fds[i]);
        emit(e, VUF_EV_MSG, remote(e), m->data, m->len, m->kinds, m->nfds);
        break;
    case VUF_IO_CTRUNC:
    case VUF_IO_OVERSIZE:
        emit(e, VUF_EV_MSG, remote(e), m->data, m->len, NULL, 0);
        break;
    case VUF_IO_EOF:
        emit(e, VUF_EV_CLOSE, remote(e), NULL, 0, NULL, 0);
        break;
    case VUF_IO_SHORT:
        emit(e, VUF_EV_MSG, remote(e), m->data, m->len, NULL, 0);
        emit(e, VUF_EV_CLOSE, remote(e), NULL, 0, NULL, 0);
        break;
    case VUF_IO_TIMEOUT:
    case VUF_IO_ERROR:
        if (rx.hdr_len)
            emit(e, VUF_EV_MSG, remote(e), m->data, m->len, NULL, 0);
        break;
    }
    return st;
}

vuf_io_status vuf_endpoint_send(vuf_endpoint *e, const uint8_t *buf, size_t len, const int *fds,
                                const uint8_t *kinds, size_t nfds, int timeout_ms)
{
    if (!e->direct) {
        vuf_io_status st = vuf_send_msg(e->fd, buf, len, fds, nfds, timeout_ms);
        if (st != VUF_IO_OK)
            return st;
    }
    uint8_t k[VUF_EV_MAX_FDS];
    size_t n = nfds > VUF_EV_MAX_FDS ? VUF_EV_MAX_FDS : nfds;
    if (!kinds) {
        for (size_t i = 0; i < n; i++)
            k[i] = (uint8_t)vuf_fd_classify(fds[i]);
        kinds = k;
    }
    if (e->txf) {
        /* the fds themselves stay the caller's: the framer carries kinds */
        int none[VUF_SEND_MAX_FDS];
        for (size_t i = 0; i < nfds && i < VUF_SEND_MAX_FDS; i++)
            none[i] = -1;
        vuf_framer_write(e->txf, buf, len, none, kinds, n);
        emit_framed(e);
        return VUF_IO_OK;
    }
    emit(e, VUF_EV_MSG, e->o.local, buf, len, kinds, n);
    return VUF_IO_OK;
}

/* ---- poll set ---- */

void vuf_pollset_init(vuf_pollset *p, int timeout_ms)
{
    p->n = 0;
    p->timeout_ms = timeout_ms;
}

int vuf_pollset_add(vuf_pollset *p, int fd, short events)
{
    if (fd < 0 || p->n == VUF_POLL_MAX)
        return -1;
    p->pf[p->n] = (struct pollfd){.fd = fd, .events = events};
    return (int)p->n++;
}

void vuf_pollset_deadline(vuf_pollset *p, int ms)
{
    if (ms < 0)
        ms = 0;
    if (p->timeout_ms < 0 || ms < p->timeout_ms)
        p->timeout_ms = ms;
}

int vuf_pollset_wait(vuf_pollset *p)
{
    for (size_t i = 0; i < p->n; i++)
        p->pf[i].revents = 0;
    int r = poll(p->pf, (nfds_t)p->n, p->timeout_ms);
    if (r < 0 && errno == EINTR)
        return 0;
    return r;
}

short vuf_pollset_revents(const vuf_pollset *p, int i)
{
    return i >= 0 && (size_t)i < p->n ? p->pf[i].revents : 0;
}
