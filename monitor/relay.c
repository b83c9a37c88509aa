/* SPDX-License-Identifier: Apache-2.0 */
/* vuf_relay: see vuf_relay.h.
 *
 * Security model: both peers are hostile. Every byte is forwarded as it
 * is, never interpreted beyond the header of a SET_BACKEND_REQ_FD; every fd
 * received is forwarded and closed, or closed; the framed copies are
 * bounded (live framers: one message and one read); the queues are bounded
 * by queue_max plus one read. */
#include "vuf_relay.h"
#include "vuf_util.h"
#include "vuf_codec.h"
#include "vuf_framer.h"
#include "vuf_transport.h"

#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define READ_CAP (64 * 1024)
#define READS_PER_DISPATCH 16

/* The relay's fds. */
enum { MAIN_FE, MAIN_BE, BCH_FE, BCH_BE, NFD };
/* The four directions. */
enum { MAIN_FB, MAIN_BF, BCH_BF, BCH_FB, NPIPE };

/* fds that ride at stream offset `at` of a queue */
typedef struct {
    uint64_t at;
    int *fds;
    size_t nfds;
} mark;

typedef struct {
    int from, to; /* MAIN_FE... */
    vuf_channel ch;
    vuf_framer *copy; /* the receiver's framing of what passes */
    vuf_endpoint *ep; /* reports it */
    /* the queue: stream bytes [sent, queued) are buf[head, head + queued - sent) */
    uint8_t *buf;
    size_t cap, head;
    uint64_t sent, queued;
    mark *marks;
    size_t nmarks, marks_cap;
    bool eof;       /* the writer closed */
    bool sink_dead; /* the reader is gone: what is queued is dropped */
    int pi_in, pi_out;
} pipe_t;

struct vuf_relay {
    vuf_relay_opts o;
    int fd[NFD];
    pipe_t p[NPIPE];
    uint8_t *rbuf;
    uint32_t backend_req_id; /* SET_BACKEND_REQ_FD's id, 0 if the table has none */
    /* a SET_BACKEND_REQ_FD read and handled, not reported yet */
    enum { SBRF_NONE, SBRF_INTERPOSED, SBRF_MAIN_END } sbrf;
    bool closed[VUF_CHAN_COUNT];
    bool bch_closing;
    int closer; /* the side that closed the main channel, or -1 */
    int64_t deadline;
    bool done;
    uint64_t main_fe_peer; /* inode of the front-end's end of the main connection, 0 unknown */
    bool main_fe_peer_known;
};

static void note(vuf_relay *r, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static void note(vuf_relay *r, const char *fmt, ...)
{
    if (!r->o.on_note)
        return;
    char text[256];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(text, sizeof text, fmt, ap);
    va_end(ap);
    r->o.on_note(r->o.ctx, text);
}

/* ---- queues ---- */

static size_t waiting(const pipe_t *p)
{
    return (size_t)(p->queued - p->sent);
}

static void drop_marks(pipe_t *p)
{
    for (size_t i = 0; i < p->nmarks; i++) {
        vuf_close_fds(p->marks[i].fds, &p->marks[i].nfds);
        free(p->marks[i].fds);
    }
    p->nmarks = 0;
}

static void drop_queue(pipe_t *p)
{
    drop_marks(p);
    p->sent = p->queued;
    p->head = 0;
}

/* Queue len bytes, with nfds fds (now the queue's) at byte fd_at. false:
 * out of memory (the fds are closed). */
static bool enqueue(pipe_t *p, const uint8_t *b, size_t len, int *fds, size_t nfds, size_t fd_at)
{
    size_t w = waiting(p);
    if (p->head && (!w || p->head + w + len > p->cap)) {
        memmove(p->buf, p->buf + p->head, w);
        p->head = 0;
    }
    if (w + len > p->cap) {
        size_t nc = p->cap ? p->cap : 4096;
        while (nc < w + len)
            nc *= 2;
        uint8_t *nb = realloc(p->buf, nc);
        if (!nb) {
            vuf_close_fds(fds, &nfds);
            return false;
        }
        p->buf = nb;
        p->cap = nc;
    }
    if (nfds) {
        if (p->nmarks == p->marks_cap) {
            size_t nc = p->marks_cap ? p->marks_cap * 2 : 4;
            mark *nm = realloc(p->marks, nc * sizeof *nm);
            if (!nm) {
                vuf_close_fds(fds, &nfds);
                return false;
            }
            p->marks = nm;
            p->marks_cap = nc;
        }
        int *copy = malloc(nfds * sizeof *copy);
        if (!copy) {
            vuf_close_fds(fds, &nfds);
            return false;
        }
        memcpy(copy, fds, nfds * sizeof *copy);
        p->marks[p->nmarks++] = (mark){.at = p->queued + fd_at, .fds = copy, .nfds = nfds};
    }
    memcpy(p->buf + p->head + w, b, len);
    p->queued += len;
    return true;
}

/* Write what is queued, without waiting. false: the reader is gone. */
static bool flush(vuf_relay *r, pipe_t *p)
{
    int to = r->fd[p->to];
    while (waiting(p) && !p->sink_dead) {
        if (to < 0) {
            p->sink_dead = true;
            break;
        }
        mark *m = p->nmarks ? &p->marks[0] : NULL;
        bool with_fds = m && m->at == p->sent;
        /* up to the next fds (those ride on the first byte of a write) */
        uint64_t end = p->queued;
        if (m && !with_fds)
            end = m->at;
        else if (with_fds && p->nmarks > 1)
            end = p->marks[1].at;
        ssize_t n = vuf_send_some(to, p->buf + p->head, (size_t)(end - p->sent),
                                  with_fds ? m->fds : NULL, with_fds ? m->nfds : 0);
        if (n < 0) {
            p->sink_dead = true;
            break;
        }
        if (n == 0)
            return true; /* full: POLLOUT */
        if (with_fds) {
            vuf_close_fds(m->fds, &m->nfds);
            free(m->fds);
            memmove(p->marks, p->marks + 1, (p->nmarks - 1) * sizeof *p->marks);
            p->nmarks--;
        }
        p->sent += (uint64_t)n;
        p->head += (size_t)n;
    }
    if (p->sink_dead)
        drop_queue(p);
    if (!waiting(p))
        p->head = 0;
    return !p->sink_dead;
}

/* ---- events ---- */

static void on_endpoint_event(void *ctx, const vuf_event *ev)
{
    vuf_relay *r = ctx;
    if (ev->kind == VUF_EV_OPEN)
        r->closed[ev->channel] = false;
    if (ev->kind == VUF_EV_CLOSE)
        r->closed[ev->channel] = true;
    if (r->o.on_event)
        r->o.on_event(r->o.ctx, ev);
    if (ev->kind != VUF_EV_MSG || ev->channel != VUF_CHAN_FRONTEND ||
        ev->sender != VUF_SIDE_FRONTEND || ev->len < VUF_HDR_SIZE || !r->backend_req_id)
        return;
    vuf_hdr h;
    vuf_hdr_decode(ev->data, &h);
    if (h.request != r->backend_req_id || (h.flags & VUF_F_REPLY))
        return;
    if (r->sbrf == SBRF_INTERPOSED) {
        vuf_endpoint_emit_open(r->p[BCH_BF].ep, VUF_SIDE_FRONTEND);
    } else if (r->sbrf == SBRF_NONE) {
        note(r,
             "SET_BACKEND_REQ_FD with %zu fd%s that is not one connected stream socket on its "
             "first byte: relayed as it is; a back-end channel it opens is not seen",
             ev->nfds, ev->nfds == 1 ? "" : "s");
    }
    r->sbrf = SBRF_NONE;
}

/* Report what the copy holds whole (or, closed, what is left). */
static void drain(pipe_t *p)
{
    for (;;) {
        vuf_endpoint_msg m;
        vuf_io_status st = vuf_endpoint_recv(p->ep, &m, 0);
        vuf_close_fds(m.fds, &m.nfds); /* kinds only: -1 */
        if (st != VUF_IO_OK && st != VUF_IO_CTRUNC && st != VUF_IO_OVERSIZE)
            return;
    }
}

/* ---- the back-end channel ---- */

static void close_bch(vuf_relay *r)
{
    for (int i = BCH_BF; i <= BCH_FB; i++) {
        drop_queue(&r->p[i]);
        vuf_framer_reset(r->p[i].copy);
        r->p[i].eof = r->p[i].sink_dead = false;
    }
    for (int i = BCH_FE; i <= BCH_BE; i++)
        if (r->fd[i] >= 0) {
            close(r->fd[i]);
            r->fd[i] = -1;
        }
    r->bch_closing = false;
}

/* Is fd the front-end's own end of the main connection? */
static bool is_frontend_main_end(vuf_relay *r, int fd)
{
    if (!r->main_fe_peer_known) {
        uint64_t ino = 0;
        if (vuf_unix_peer_ino(r->fd[MAIN_FE], &ino, &r->main_fe_peer))
            r->main_fe_peer = 0;
        r->main_fe_peer_known = true;
    }
    struct stat st;
    return r->main_fe_peer && !fstat(fd, &st) && (uint64_t)st.st_ino == r->main_fe_peer;
}

/* A SET_BACKEND_REQ_FD with one connected stream socket: *fd (the
 * front-end's socket, received) is replaced by what the back-end gets. */
static void interpose(vuf_relay *r, int *fd)
{
    if (is_frontend_main_end(r, *fd)) {
        int mine = fcntl(r->fd[MAIN_BE], F_DUPFD_CLOEXEC, 0);
        if (mine < 0)
            return;
        close(*fd);
        *fd = mine;
        r->sbrf = SBRF_MAIN_END;
        note(r, "SET_BACKEND_REQ_FD passes the front-end's own end of the main connection: the "
                "back-end gets the monitor's end of its main connection (its peer's end, as "
                "it would have)");
        return;
    }
    int sv[2];
    if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv)) {
        note(r, "cannot make a socket pair (%s): the back-end channel passes as it is",
             strerror(errno));
        return;
    }
    if (r->fd[BCH_FE] >= 0) {
        note(r, "a new back-end channel replaces the previous one (closed)");
        close_bch(r);
    }
    r->fd[BCH_FE] = *fd;
    r->fd[BCH_BE] = sv[0];
    *fd = sv[1];
    r->sbrf = SBRF_INTERPOSED;
}

static bool starts_backend_req_fd(const vuf_relay *r, const uint8_t *b, size_t len)
{
    if (!r->backend_req_id || len < VUF_HDR_SIZE)
        return false;
    vuf_hdr h;
    vuf_hdr_decode(b, &h);
    return h.request == r->backend_req_id && !(h.flags & VUF_F_REPLY);
}

/* ---- reading ---- */

/* One write of the writer (fds on its first byte): forwarded first (the
 * reader is not kept waiting while it is checked), then framed and
 * reported. The reader's answer is read in a later dispatch: it comes
 * after in the events. */
static void piece(vuf_relay *r, pipe_t *p, const uint8_t *b, size_t len, int *fds,
                  const uint8_t *kinds, size_t nfds)
{
    if (p == &r->p[MAIN_FB] && nfds == 1 && kinds[0] == VUF_FDKIND_SOCKET &&
        vuf_framer_at_boundary(p->copy) && starts_backend_req_fd(r, b, len))
        interpose(r, &fds[0]);
    if (!p->sink_dead && enqueue(p, b, len, fds, nfds, 0))
        flush(r, p);
    else if (p->sink_dead)
        vuf_close_fds(fds, &nfds);
    int none[VUF_SEND_MAX_FDS];
    for (size_t i = 0; i < nfds; i++)
        none[i] = -1;
    vuf_framer_write(p->copy, b, len, none, kinds, nfds);
    drain(p);
}

static void writer_closed(vuf_relay *r, pipe_t *p)
{
    p->eof = true;
    vuf_framer_close(p->copy);
    drain(p); /* what was cut short, and the close */
    if (p->ch == VUF_CHAN_BACKEND) {
        r->bch_closing = true; /* closed for the other side once what was sent is delivered */
        return;
    }
    if (r->closer < 0) {
        r->closer = p == &r->p[MAIN_FB] ? VUF_SIDE_FRONTEND : VUF_SIDE_BACKEND;
        r->deadline = vuf_now_ms() + r->o.drain_ms;
    }
}

static void read_pipe(vuf_relay *r, pipe_t *p)
{
    for (int k = 0; k < READS_PER_DISPATCH && !p->eof && waiting(p) < r->o.queue_max; k++) {
        vuf_segment seg;
        vuf_io_status st = vuf_recv_segment(r->fd[p->from], r->rbuf, READ_CAP, &seg);
        if (st == VUF_IO_TIMEOUT)
            return;
        if (st != VUF_IO_OK) {
            writer_closed(r, p); /* EOF, or ECONNRESET: the writer is gone */
            return;
        }
        uint8_t kinds[VUF_SEND_MAX_FDS];
        for (size_t i = 0; i < seg.nfds; i++)
            kinds[i] = (uint8_t)vuf_fd_classify(seg.fds[i]);
        if (seg.ctrunc)
            note(r,
                 "some fds sent on the %s channel did not reach the monitor (its fd limit): "
                 "they are lost",
                 vuf_channel_name(p->ch));
        size_t at = seg.nfds ? seg.fd_at : seg.len;
        if (at)
            piece(r, p, r->rbuf, at, NULL, NULL, 0);
        if (at < seg.len)
            piece(r, p, r->rbuf + at, seg.len - at, seg.fds, kinds, seg.nfds);
    }
}

/* ---- the relay ---- */

vuf_relay *vuf_relay_new(int fe, int be, const vuf_relay_opts *o)
{
    vuf_relay *r = calloc(1, sizeof *r);
    if (!r) {
        close(fe);
        close(be);
        return NULL;
    }
    r->o = *o;
    if (!r->o.queue_max)
        r->o.queue_max = 1u << 20;
    if (r->o.drain_ms <= 0)
        r->o.drain_ms = 1000;
    r->fd[MAIN_FE] = fe;
    r->fd[MAIN_BE] = be;
    r->fd[BCH_FE] = r->fd[BCH_BE] = -1;
    r->closer = -1;
    const vuf_msg_def *d =
        o->spec ? vuf_spec_msg_by_name(o->spec, VUF_CHAN_FRONTEND, "SET_BACKEND_REQ_FD") : NULL;
    r->backend_req_id = d ? d->id : 0;
    static const struct {
        int from, to;
        vuf_channel ch;
        vuf_side reader;
    } dirs[NPIPE] = {
        [MAIN_FB] = {MAIN_FE, MAIN_BE, VUF_CHAN_FRONTEND, VUF_SIDE_BACKEND},
        [MAIN_BF] = {MAIN_BE, MAIN_FE, VUF_CHAN_FRONTEND, VUF_SIDE_FRONTEND},
        [BCH_BF] = {BCH_BE, BCH_FE, VUF_CHAN_BACKEND, VUF_SIDE_FRONTEND},
        [BCH_FB] = {BCH_FE, BCH_BE, VUF_CHAN_BACKEND, VUF_SIDE_BACKEND},
    };
    bool ok = (r->rbuf = malloc(READ_CAP)) != NULL;
    for (int i = 0; i < NPIPE && ok; i++) {
        pipe_t *p = &r->p[i];
        p->from = dirs[i].from;
        p->to = dirs[i].to;
        p->ch = dirs[i].ch;
        vuf_endpoint_opts eo = {.channel = p->ch,
                                .local = dirs[i].reader,
                                .payload_cap = VUF_MAX_PAYLOAD,
                                .on_event = on_endpoint_event,
                                .ctx = r};
        p->copy = vuf_framer_new();
        p->ep = vuf_endpoint_new(-1, &eo);
        ok = p->copy && p->ep;
        if (ok) {
            vuf_framer_set_live(p->copy, true);
            vuf_endpoint_set_framer(p->ep, p->copy);
        }
    }
    if (!ok) {
        vuf_relay_free(r);
        return NULL;
    }
    r->closed[VUF_CHAN_BACKEND] = true;
    vuf_endpoint_emit_open(r->p[MAIN_FB].ep, VUF_SIDE_FRONTEND);
    return r;
}

void vuf_relay_poll_add(vuf_relay *r, vuf_pollset *ps)
{
    for (int i = 0; i < NPIPE; i++) {
        pipe_t *p = &r->p[i];
        p->pi_in = p->pi_out = -1;
        if (!r->done && r->closer < 0 && !p->eof && waiting(p) < r->o.queue_max)
            p->pi_in = vuf_pollset_add(ps, r->fd[p->from], POLLIN);
        if (waiting(p) && !p->sink_dead)
            p->pi_out = vuf_pollset_add(ps, r->fd[p->to], POLLOUT);
    }
    if (r->closer >= 0)
        vuf_pollset_deadline(ps, (int)(r->deadline - vuf_now_ms()));
}

bool vuf_relay_dispatch(vuf_relay *r, const vuf_pollset *ps)
{
    if (r->done)
        return false;
    const short ready = POLLIN | POLLHUP | POLLERR | POLLNVAL;
    /* the back-end channel first: what came there came before what the
     * same side sends next on the main channel */
    static const int order[NPIPE] = {BCH_BF, BCH_FB, MAIN_FB, MAIN_BF};
    for (int k = 0; k < NPIPE; k++) {
        pipe_t *p = &r->p[order[k]];
        if (vuf_pollset_revents(ps, p->pi_out) & (POLLOUT | POLLHUP | POLLERR | POLLNVAL))
            flush(r, p);
        if (r->closer < 0 && (vuf_pollset_revents(ps, p->pi_in) & ready))
            read_pipe(r, p);
    }
    /* a back-end channel closed by one side: closed for the other once what
     * that side sent is delivered */
    if (r->bch_closing && !waiting(&r->p[BCH_BF]) && !waiting(&r->p[BCH_FB]))
        close_bch(r);
    /* a reader of the main channel that is gone ends it too */
    for (int i = MAIN_FB; i <= MAIN_BF && r->closer < 0; i++)
        if (r->p[i].sink_dead) {
            r->closer = i == MAIN_FB ? VUF_SIDE_BACKEND : VUF_SIDE_FRONTEND;
            r->deadline = vuf_now_ms() + r->o.drain_ms;
            if (!r->closed[VUF_CHAN_FRONTEND])
                vuf_endpoint_emit_close(r->p[MAIN_FB].ep, (vuf_side)r->closer);
        }
    if (r->closer >= 0) {
        /* what the closer sent before is delivered, then both sides close */
        const pipe_t *from_closer = &r->p[r->closer == VUF_SIDE_FRONTEND ? MAIN_FB : MAIN_BF];
        if (!waiting(from_closer) || from_closer->sink_dead || vuf_now_ms() >= r->deadline)
            r->done = true;
    }
    return !r->done;
}

void vuf_relay_close(vuf_relay *r)
{
    vuf_side by = r->closer >= 0 ? (vuf_side)r->closer : VUF_SIDE_FRONTEND;
    if (!r->closed[VUF_CHAN_BACKEND] && r->fd[BCH_FE] >= 0)
        vuf_endpoint_emit_close(r->p[BCH_BF].ep, by);
    if (!r->closed[VUF_CHAN_FRONTEND])
        vuf_endpoint_emit_close(r->p[MAIN_FB].ep, by);
    r->closed[VUF_CHAN_BACKEND] = r->closed[VUF_CHAN_FRONTEND] = true;
    for (int i = 0; i < NPIPE; i++)
        drop_queue(&r->p[i]);
    for (int i = 0; i < NFD; i++)
        if (r->fd[i] >= 0) {
            close(r->fd[i]);
            r->fd[i] = -1;
        }
    r->done = true;
}

void vuf_relay_free(vuf_relay *r)
{
    if (!r)
        return;
    for (int i = 0; i < NPIPE; i++) {
        pipe_t *p = &r->p[i];
        drop_marks(p);
        free(p->marks);
        free(p->buf);
        vuf_endpoint_free(p->ep);
        vuf_framer_free(p->copy);
    }
    for (int i = 0; i < NFD; i++)
        if (r->fd[i] >= 0)
            close(r->fd[i]);
    free(r->rbuf);
    free(r);
}

int vuf_relay_closer(const vuf_relay *r)
{
    return r->closer;
}

size_t vuf_relay_fd_count(const vuf_relay *r)
{
    size_t n = 0;
    for (int i = 0; i < NFD; i++)
        n += r->fd[i] >= 0;
    for (int i = 0; i < NPIPE; i++)
        for (size_t k = 0; k < r->p[i].nmarks; k++)
            n += r->p[i].marks[k].nfds;
    return n;
}
