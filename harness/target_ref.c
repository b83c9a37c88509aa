/* SPDX-License-Identifier: Apache-2.0 */
/* The reference device as a target (vuf_target.h), two ways:
 *
 *   inproc  the main channel's bytes and fds go into a vuf_framer that the
 *           device's connection reads as it would read its socket (the
 *           transport's rules, checked against the kernel by test_framer);
 *           the back-end channel, the kick eventfds and every fd stay real.
 *           No socket hop, no fd classification (the harness knows the
 *           kinds), no poll unless the harness touched an fd the device
 *           holds.
 *   socket  real socket pairs: sendmsg/recvmsg, SCM_RIGHTS, MSG_CTRUNC,
 *           short reads and EOF, exactly as under `vufuzz serve`.
 *
 * One device serves every session (vuf_ref_reset), and its disk lies in one
 * reserved area, placed so that it ends exactly where an inaccessible guard
 * page begins: a read or write past the disk's size faults at once. A resize
 * keeps the disk where it is (its bytes stay, nothing is copied) and moves
 * the guard to the page after the new end: up to a page of slack then. */
#include "vuf_ref.h"
#include "vuf_ref_conn.h"
#include "vuf_session.h"
#include "vuf_target.h"

#include <fcntl.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <unistd.h>

#define PAGE 4096ul
#define MAX_DISK VUF_SESSION_MAX_DISK
#define CHUNK (32u << 10) /* main-channel bytes written before the device reads (socket) */

typedef struct {
    vuf_target t;
    const vuf_spec *spec;
    bool inproc;
    vuf_ref *dev;
    vuf_ref_conn *conn;
    vuf_framer *framer; /* inproc: the main channel */
    int fe;             /* the harness's end of the main channel (inproc: its identity only) */
    bool poked;
    uint8_t *pool;  /* [PROT_NONE page][area: MAX_DISK + 2 pages] */
    uint8_t *area;  /* page aligned */
    uint8_t *disk;  /* in area; the session's disk starts here */
    uint8_t *guard; /* the inaccessible page after the disk, or NULL */
    uint64_t disk_size, disk_high;
    uint64_t passes_at_begin; /* the device reads and writes the disk only in ring passes */
    bool resized;
    vuf_ref_config cfg;
} ref_target;

static ref_target *rt(vuf_target *t)
{
    return (ref_target *)t;
}

static void fwd_event(void *ctx, const vuf_event *ev)
{
    ref_target *r = ctx;
    if (r->t.sink.on_event)
        r->t.sink.on_event(r->t.sink.ctx, ev);
}

static void fwd_fds(void *ctx, const int *fds, size_t n)
{
    ref_target *r = ctx;
    if (r->t.sink.on_fds)
        r->t.sink.on_fds(r->t.sink.ctx, fds, n);
}

static uint8_t *page_up(const uint8_t *p)
{
    return (uint8_t *)(((uintptr_t)p + PAGE - 1) & ~(uintptr_t)(PAGE - 1));
}

/* [lo, hi) zero: whole pages given back to the kernel, the ends cleared. */
static void zero_range(uint8_t *lo, uint8_t *hi)
{
    uint8_t *plo = page_up(lo), *phi = (uint8_t *)((uintptr_t)hi & ~(uintptr_t)(PAGE - 1));
    if (phi <= plo) {
        memset(lo, 0, (size_t)(hi - lo));
        return;
    }
    memset(lo, 0, (size_t)(plo - lo));
    madvise(plo, (size_t)(phi - plo), MADV_DONTNEED);
    memset(phi, 0, (size_t)(hi - phi));
}

/* The guard at the page where the disk's last page ends. */
static void place_guard(ref_target *r)
{
    uint8_t *g = page_up(r->disk + r->disk_size);
    if (g == r->guard)
        return;
    if (r->guard)
        mprotect(r->guard, PAGE, PROT_READ | PROT_WRITE);
    r->guard = mprotect(g, PAGE, PROT_NONE) ? NULL : g;
}

/* ---- the main channel ---- */

/* Read and discard what the device sent on the harness's end (the device's
 * connection reported it already), closing the fds that came along. */
static void drain(int fd)
{
    for (int k = 0; k < 256; k++) {
        char buf[4096];
        union {
            struct cmsghdr h;
            char b[CMSG_SPACE(sizeof(int) * 64)];
        } cm;
        struct iovec io = {.iov_base = buf, .iov_len = sizeof buf};
        struct msghdr mh = {
            .msg_iov = &io, .msg_iovlen = 1, .msg_control = cm.b, .msg_controllen = sizeof cm.b};
        ssize_t n = recvmsg(fd, &mh, MSG_DONTWAIT | MSG_CMSG_CLOEXEC);
        for (struct cmsghdr *c = n >= 0 ? CMSG_FIRSTHDR(&mh) : NULL; c; c = CMSG_NXTHDR(&mh, c))
            if (c->cmsg_level == SOL_SOCKET && c->cmsg_type == SCM_RIGHTS)
                for (size_t i = 0; i < (c->cmsg_len - CMSG_LEN(0)) / sizeof(int); i++) {
                    int x;
                    memcpy(&x, CMSG_DATA(c) + i * sizeof(int), sizeof x);
                    close(x);
                }
        if (n <= 0)
            return;
    }
}

static bool r_step(vuf_target *t)
{
    ref_target *r = rt(t);
    if (!r->conn || r->fe < 0)
        return false;
    bool open;
    if (r->inproc) {
        open = vuf_ref_conn_run(r->conn, r->poked);
        r->poked = false;
    } else {
        open = vuf_ref_conn_step(r->conn, 0);
        if (r->fe >= 0)
            drain(r->fe);
    }
    return open;
}

static int r_connect(vuf_target *t)
{
    ref_target *r = rt(t);
    if (r->fe >= 0)
        return 0;
    int sv[2];
    if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv))
        return -1;
    r->fe = sv[0];
    vuf_ref_conn_opts o = {.io_timeout_ms = 0,
                           .backend_timeout_ms = -1,
                           .on_event = fwd_event,
                           .on_fds = fwd_fds,
                           .ctx = r};
    if (r->inproc)
        vuf_framer_reset(r->framer);
    if (r->conn) /* the objects of the last connection, reused */
        vuf_ref_conn_reopen(r->conn, sv[1], sv[0]);
    else if (r->inproc)
        r->conn = vuf_ref_conn_new_direct(r->dev, sv[1], sv[0], r->framer, &o);
    else
        r->conn = vuf_ref_conn_new(r->dev, sv[1], &o);
    if (!r->conn) {
        close(r->fe);
        r->fe = -1;
        return -1;
    }
    return 0;
}

static int r_main_fd(vuf_target *t)
{
    return rt(t)->fe;
}

/* The end of the message starting at off (or len when it does not end
 * inside buf). */
static size_t message_end(const uint8_t *buf, size_t len, size_t off)
{
    if (len - off < 12)
        return len;
    uint32_t size;
    memcpy(&size, buf + off + 8, 4);
    return (uint64_t)size > len - off - 12 ? len : off + 12 + size;
}

static vuf_io_status r_write(vuf_target *t, const uint8_t *buf, size_t len, const int *fds,
                             const uint8_t *kinds, size_t nfds)
{
    ref_target *r = rt(t);
    if (!r->conn || r->fe < 0)
        return VUF_IO_ERROR;
    if (r->inproc) {
        /* the device gets copies of the fds, as the kernel would install */
        int dup[VUF_SEND_MAX_FDS];
        if (nfds > VUF_SEND_MAX_FDS)
            return vuf_framer_write(r->framer, buf, len, fds, kinds, nfds); /* refused: EINVAL */
        size_t n = 0;
        for (; n < nfds; n++)
            if ((dup[n] = fcntl(fds[n], F_DUPFD_CLOEXEC, 0)) < 0)
                break;
        vuf_io_status st =
            n == nfds ? vuf_framer_write(r->framer, buf, len, dup, kinds, nfds) : VUF_IO_ERROR;
        if (st != VUF_IO_OK)
            for (size_t i = 0; i < n; i++)
                close(dup[i]);
        return st;
    }
    /* over the socket: whole messages, a chunk at a time, the device reading
     * between chunks as it would while a blocking writer waits (a message
     * larger than a socket buffer holds is cut where the buffer is full) */
    size_t off = 0;
    vuf_io_status st = VUF_IO_OK;
    while (off < len && st == VUF_IO_OK) {
        size_t end = message_end(buf, len, off);
        while (end < len && end - off < CHUNK && message_end(buf, len, end) - off <= 2 * CHUNK)
            end = message_end(buf, len, end);
        if (off) {
            vuf_ref_conn_step(r->conn, 0);
            drain(r->fe);
        }
        st = vuf_send_msg(r->fe, buf + off, end - off, off ? NULL : fds, off ? 0 : nfds, 0);
        off = end;
    }
    return st;
}

static void r_disconnect(vuf_target *t)
{
    ref_target *r = rt(t);
    if (r->fe >= 0) {
        close(r->fe);
        r->fe = -1;
    }
    if (r->inproc && r->conn && vuf_ref_conn_is_open(r->conn)) {
        /* the channel is closed when no copy of the front-end's end is left
         * open (the harness may hold one it sent as FD_MAIN_CHANNEL): what
         * the kernel says of the device's end */
        struct pollfd p = {.fd = vuf_ref_conn_main_fd(r->conn), .events = POLLIN};
        if (poll(&p, 1, 0) == 1 && (p.revents & POLLHUP)) {
            vuf_framer_close(r->framer);
            vuf_ref_conn_run(r->conn, false); /* the device sees the close */
        }
    }
    if (r->conn && vuf_ref_conn_is_open(r->conn)) {
        if (!r->inproc)
            vuf_ref_conn_step(r->conn, 0); /* the device sees the close */
        vuf_ref_conn_close(r->conn);       /* kept for the next connection */
    }
    if (r->inproc)
        vuf_framer_reset(r->framer);
}

static bool r_connected(vuf_target *t)
{
    ref_target *r = rt(t);
    return r->conn && r->fe >= 0 && vuf_ref_conn_is_open(r->conn);
}

static void r_poke(vuf_target *t)
{
    rt(t)->poked = true;
}

/* ---- the session ---- */

static int r_begin(vuf_target *t, const vuf_target_config *c, char *err, size_t errcap)
{
    ref_target *r = rt(t);
    uint64_t size = c->disk_size > MAX_DISK ? MAX_DISK : c->disk_size;
    r->disk_size = r->disk_high = size;
    vuf_ref_config_default(&r->cfg);
    /* the disk ends at a page boundary: the guard follows its last byte */
    r->disk = r->area + (PAGE - size % PAGE) % PAGE;
    place_guard(r);
    r->cfg.disk = size ? r->disk : NULL;
    r->cfg.disk_size = size;
    r->cfg.queues = c->queues;
    r->resized = false;
    if (!r->dev) {
        r->dev = vuf_ref_new(r->spec, &r->cfg, err, errcap);
        r->passes_at_begin = 0;
        return r->dev ? 0 : -1;
    }
    r->passes_at_begin = vuf_ref_ring_passes(r->dev);
    return vuf_ref_reset(r->dev, &r->cfg, err, errcap);
}

static void r_end(vuf_target *t)
{
    ref_target *r = rt(t);
    r_disconnect(t);
    bool touched = r->resized || (r->dev && vuf_ref_ring_passes(r->dev) != r->passes_at_begin);
    if (r->disk_high && touched) {
        /* zero again, cheaply: the pages the disk spanned */
        /* zero again, cheaply: the pages the disk spanned */
        madvise(r->area, (size_t)(page_up(r->disk + r->disk_high) - r->area), MADV_DONTNEED);
    }
    r->disk_size = r->disk_high = 0;
}

static void r_resize(vuf_target *t, uint64_t size)
{
    ref_target *r = rt(t);
    uint64_t room = (uint64_t)(r->area + MAX_DISK + PAGE - r->disk);
    if (size > room)
        size = room;
    if (size < r->disk_size)
        zero_range(r->disk + size, r->disk + r->disk_size); /* a later grow reads zeros */
    r->disk_size = size;
    r->resized = true;
    if (size > r->disk_high)
        r->disk_high = size;
    place_guard(r);
    uint8_t *nd = size ? r->disk : NULL;
    if (r->conn && vuf_ref_conn_is_open(r->conn)) {
        vuf_ref_conn_set_disk(r->conn, nd, size);
    } else {
        vuf_ref_out out;
        vuf_ref_out_init(&out);
        vuf_ref_set_disk(r->dev, nd, size, &out);
        vuf_ref_out_clear(&out);
    }
}

static void r_kick_polled(vuf_target *t, uint32_t q)
{
    ref_target *r = rt(t);
    if (r->conn && r->fe >= 0)
        vuf_ref_conn_kick(r->conn, q);
}

static void r_backend_timeout(vuf_target *t)
{
    ref_target *r = rt(t);
    if (r->conn && r->fe >= 0)
        vuf_ref_conn_backend_timeout(r->conn);
}

static uint64_t r_ring_passes(vuf_target *t)
{
    ref_target *r = rt(t);
    return r->dev ? vuf_ref_ring_passes(r->dev) : 0;
}

static size_t r_fds_held(vuf_target *t)
{
    ref_target *r = rt(t);
    return r->dev ? vuf_ref_fd_count(r->dev) : 0;
}

static uint64_t r_accepted(vuf_target *t, vuf_channel ch, uint32_t id)
{
    ref_target *r = rt(t);
    return r->dev ? vuf_ref_accepted(r->dev, ch, id) : 0;
}

static uint64_t r_chains(vuf_target *t)
{
    ref_target *r = rt(t);
    return r->dev ? vuf_ref_chains_completed(r->dev) : 0;
}

static void r_free(vuf_target *t)
{
    ref_target *r = rt(t);
    r_disconnect(t);
    vuf_ref_conn_free(r->conn);
    vuf_ref_free(r->dev);
    vuf_framer_free(r->framer);
    if (r->pool)
        munmap(r->pool, MAX_DISK + 3 * PAGE);
    free(r);
}

#define REF_CAPS                                                                                   \
    (VUF_TARGET_SYNC | VUF_TARGET_RESIZE | VUF_TARGET_RING_PASSES | VUF_TARGET_BACKEND_TIMEOUT |   \
     VUF_TARGET_FDS_HELD | VUF_TARGET_REFERENCE | VUF_TARGET_EVENTS)

/* The two differ only in how the main channel's bytes travel (r->inproc). */
#define REF_OPS(target_name)                                                                       \
    {                                                                                              \
        .name = target_name, .caps = REF_CAPS, .free = r_free, .begin = r_begin, .end = r_end,     \
        .connect = r_connect, .main_fd = r_main_fd, .write = r_write, .disconnect = r_disconnect,  \
        .connected = r_connected, .poke = r_poke, .step = r_step, .kick_polled = r_kick_polled,    \
        .backend_timeout = r_backend_timeout, .resize = r_resize, .ring_passes = r_ring_passes,    \
        .fds_held = r_fds_held, .accepted = r_accepted, .chains = r_chains,                        \
    }
static const vuf_target_ops inproc_ops = REF_OPS("inproc");
static const vuf_target_ops socket_ops = REF_OPS("socket");

static vuf_target *ref_new(const vuf_spec *spec, bool inproc)
{
    ref_target *r = calloc(1, sizeof *r);
    if (!r)
        return NULL;
    r->t.ops = inproc ? &inproc_ops : &socket_ops;
    r->spec = spec;
    r->inproc = inproc;
    r->fe = -1;
    /* [guard page][the area: a disk of up to MAX_DISK, its guard] */
    void *p = mmap(NULL, MAX_DISK + 3 * PAGE, PROT_READ | PROT_WRITE,
                   MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    if (p == MAP_FAILED) {
        free(r);
        return NULL;
    }
    r->pool = p;
    r->area = r->pool + PAGE;
    r->disk = r->area;
    if (mprotect(r->pool, PAGE, PROT_NONE) || (inproc && !(r->framer = vuf_framer_new()))) {
        r_free(&r->t);
        return NULL;
    }
    return &r->t;
}

vuf_target *vuf_target_inproc_new(const vuf_spec *spec)
{
    return ref_new(spec, true);
}

vuf_target *vuf_target_socket_new(const vuf_spec *spec)
{
    return ref_new(spec, false);
}

uint8_t *vuf_target_ref_disk(vuf_target *t, uint64_t *size)
{
    if (t->ops != &inproc_ops && t->ops != &socket_ops)
        return NULL;
    ref_target *r = rt(t);
    *size = r->disk_size;
    return r->disk_size ? r->disk : NULL;
}
