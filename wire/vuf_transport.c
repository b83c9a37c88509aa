/* SPDX-License-Identifier: Apache-2.0 */
/* vuf_transport: the thin Unix-socket transport for vhost-user messages.
 * See vuf_transport.h for the contract of every call. */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE 1 /* MSG_CMSG_CLOEXEC, accept4, SOCK_CLOEXEC */
#endif

#include "vuf_transport.h"

#include <errno.h>
#include <fcntl.h>
#include <linux/netlink.h>
#include <linux/rtnetlink.h>
#include <linux/sock_diag.h>
#include <linux/unix_diag.h>
#include <limits.h>
#include <poll.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/types.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

_Static_assert(VUF_HDR_SIZE == 12, "vhost-user header is 12 bytes");
_Static_assert(VUF_MAX_FDS <= VUF_SEND_MAX_FDS, "send side takes at least VUF_MAX_FDS");

/* ---- names ---- */

const char *vuf_io_status_name(vuf_io_status s)
{
    switch (s) {
    case VUF_IO_OK:
        return "ok";
    case VUF_IO_EOF:
        return "eof";
    case VUF_IO_SHORT:
        return "short";
    case VUF_IO_TIMEOUT:
        return "timeout";
    case VUF_IO_CTRUNC:
        return "ctrunc";
    case VUF_IO_OVERSIZE:
        return "oversize";
    case VUF_IO_ERROR:
        return "error";
    }
    return "invalid";
}

/* ---- deadlines ---- */

typedef struct {
    bool forever;
    struct timespec at; /* CLOCK_MONOTONIC */
} deadline;

static void dl_init(deadline *d, int timeout_ms)
{
    d->forever = timeout_ms < 0;
    clock_gettime(CLOCK_MONOTONIC, &d->at);
    if (timeout_ms > 0) {
        d->at.tv_sec += timeout_ms / 1000;
        d->at.tv_nsec += (long)(timeout_ms % 1000) * 1000000L;
        if (d->at.tv_nsec >= 1000000000L) {
            d->at.tv_sec++;
            d->at.tv_nsec -= 1000000000L;
        }
    }
}

/* Milliseconds left, rounded up (-1: forever, 0: passed). */
static int dl_remaining_ms(const deadline *d)
{
    if (d->forever)
        return -1;
    struct timespec now;
    clock_gettime(CLOCK_MONOTONIC, &now);
    long long ns = (long long)(d->at.tv_sec - now.tv_sec) * 1000000000LL +
                   (long long)(d->at.tv_nsec - now.tv_nsec);
    if (ns <= 0)
        return 0;
    long long ms = (ns + 999999LL) / 1000000LL;
    return ms > INT_MAX ? INT_MAX : (int)ms;
}

/* Wait until fd is ready for `events`: 1 ready (or hung up / in error: the next
 * syscall tells), 0 deadline passed, -1 error (errno). */
static int wait_fd(int fd, short events, const deadline *d)
{
    for (;;) {
        int ms = dl_remaining_ms(d);
        if (ms == 0)
            return 0; /* no time to wait: the caller's MSG_DONTWAIT read saw it all */
        struct pollfd p = {.fd = fd, .events = events};
        int r = poll(&p, 1, ms);
        if (r > 0) {
            if (p.revents & POLLNVAL) {
                errno = EBADF;
                return -1;
            }
            return 1;
        }
        if (r == 0) {
            if (ms == 0)
                return 0;
            continue; /* woke early by rounding: recompute, poll once more */
        }
        if (errno != EINTR)
            return -1;
    }
}

/* ---- receive ---- */

/* Close fds[0..*n) keeping errno. */
static void close_keep_errno(int *fds, size_t *n)
{
    int e = errno;
    vuf_close_fds(fds, n);
    errno = e;
}

void vuf_close_fds(int *fds, size_t *nfds)
{
    if (!nfds)
        return;
    if (fds)
        for (size_t i = 0; i < *nfds; i++)
            if (fds[i] >= 0) {
                close(fds[i]);
                fds[i] = -1;
            }
    *nfds = 0;
}

/* Read into buf until *done == len. SHORT on EOF (the caller decides whether
 * that is EOF or SHORT), TIMEOUT, ERROR or OK. */
static vuf_io_status read_full(int sock, uint8_t *buf, size_t len, size_t *done, const deadline *d)
{
    while (*done < len) {
        ssize_t n = recv(sock, buf + *done, len - *done, MSG_DONTWAIT);
        if (n > 0) {
            *done += (size_t)n;
            continue;
        }
        if (n == 0 || errno == ECONNRESET) /* a peer that closed (see vuf_recv_msg) */
            return VUF_IO_SHORT;
        if (errno == EINTR)
            continue;
        if (errno != EAGAIN && errno != EWOULDBLOCK)
            return VUF_IO_ERROR;
        int w = wait_fd(sock, POLLIN, d);
        if (w < 0)
            return VUF_IO_ERROR;
        if (w == 0)
            return VUF_IO_TIMEOUT;
    }
    return VUF_IO_OK;
}

/* Read and drop exactly len bytes. */
static vuf_io_status discard(int sock, size_t len, const deadline *d)
{
    uint8_t scratch[4096];
    while (len > 0) {
        size_t chunk = len < sizeof scratch ? len : sizeof scratch;
        size_t got = 0;
        vuf_io_status st = read_full(sock, scratch, chunk, &got, d);
        if (st != VUF_IO_OK)
            return st;
        len -= chunk;
    }
    return VUF_IO_OK;
}

/* Take the fds of every SCM_RIGHTS cmsg; returns true if some did not fit in
 * msg->fds (they are closed: the message counts as truncated). */
static bool collect_fds(struct msghdr *mh, vuf_rx_msg *msg)
{
    bool overflow = false;
    for (struct cmsghdr *c = CMSG_FIRSTHDR(mh); c; c = CMSG_NXTHDR(mh, c)) {
        if (c->cmsg_level != SOL_SOCKET || c->cmsg_type != SCM_RIGHTS)
            continue;
        if (c->cmsg_len < CMSG_LEN(0))
            continue;
        size_t n = (c->cmsg_len - CMSG_LEN(0)) / sizeof(int);
        const unsigned char *data = CMSG_DATA(c);
        for (size_t i = 0; i < n; i++) {
            int fd;
            memcpy(&fd, data + i * sizeof(int), sizeof fd);
            if (msg->nfds < VUF_MAX_FDS) {
                msg->fds[msg->nfds++] = fd;
            } else {
                close(fd);
                overflow = true;
            }
        }
    }
    return overflow;
}

vuf_io_status vuf_recv_msg(int sock, vuf_rx_msg *msg, int timeout_ms)
{
    if (!msg) {
        errno = EINVAL;
        return VUF_IO_ERROR;
    }
    msg->payload_len = 0;
    msg->nfds = 0;
    msg->hdr_len = 0;
    msg->ctrunc = false;
    if (msg->payload_cap && !msg->payload) {
        errno = EINVAL;
        return VUF_IO_ERROR;
    }

    deadline d;
    dl_init(&d, timeout_ms);

    /* The first bytes of the header, with the fds. */
    union {
        char buf[CMSG_SPACE(VUF_MAX_FDS * sizeof(int))];
        struct cmsghdr align;
    } cbuf;
    struct iovec iov = {.iov_base = msg->hdr, .iov_len = VUF_HDR_SIZE};
    struct msghdr mh;
    ssize_t n;
    for (;;) {
        memset(&mh, 0, sizeof mh);
        mh.msg_iov = &iov;
        mh.msg_iovlen = 1;
        mh.msg_control = cbuf.buf;
        mh.msg_controllen = sizeof cbuf.buf;
        n = recvmsg(sock, &mh, MSG_DONTWAIT | MSG_CMSG_CLOEXEC);
        if (n >= 0)
            break;
        if (errno == EINTR)
            continue;
        /* A peer that closes while bytes we sent are still unread in its
         * socket leaves ECONNRESET for our next read (once; EOF after it):
         * it closed, as a clean close does. */
        if (errno == ECONNRESET)
            return VUF_IO_EOF;
        if (errno != EAGAIN && errno != EWOULDBLOCK)
            return VUF_IO_ERROR;
        int w = wait_fd(sock, POLLIN, &d);
        if (w < 0)
            return VUF_IO_ERROR;
        if (w == 0)
            return VUF_IO_TIMEOUT; /* nothing consumed */
    }
    if (n == 0)
        return VUF_IO_EOF;
    msg->hdr_len = (size_t)n;
    if (collect_fds(&mh, msg) || (mh.msg_flags & MSG_CTRUNC)) {
        /* Refuse the message: the fds that did arrive are closed now, the
         * rest of the message is still consumed below to stay in sync. */
        msg->ctrunc = true;
        vuf_close_fds(msg->fds, &msg->nfds);
    }

    /* The rest of the header: no fds accepted past the first byte. */
    vuf_io_status st = read_full(sock, msg->hdr, VUF_HDR_SIZE, &msg->hdr_len, &d);
    if (st != VUF_IO_OK) {
        close_keep_errno(msg->fds, &msg->nfds);
        return st; /* SHORT (EOF mid-header), TIMEOUT or ERROR */
    }

    uint32_t size;
    memcpy(&size, msg->hdr + 8, sizeof size);
    size_t max = msg->payload_cap < VUF_MAX_PAYLOAD ? msg->payload_cap : VUF_MAX_PAYLOAD;

    if (size > max) {
        /* Refused: drop exactly `size` bytes so the next call starts on the
         * next header. */
        vuf_close_fds(msg->fds, &msg->nfds);
        st = discard(sock, size, &d);
        if (st != VUF_IO_OK)
            return st;
        return msg->ctrunc ? VUF_IO_CTRUNC : VUF_IO_OVERSIZE;
    }

    st = read_full(sock, msg->payload, size, &msg->payload_len, &d);
    if (st != VUF_IO_OK) {
        close_keep_errno(msg->fds, &msg->nfds);
        return st; /* SHORT (EOF mid-payload), TIMEOUT or ERROR */
    }
    return msg->ctrunc ? VUF_IO_CTRUNC : VUF_IO_OK;
}

/* ---- send ---- */

/* One non-blocking send: the fds ride on the first byte. Bytes sent, or -1
 * (errno). */
static ssize_t send_once(int sock, const uint8_t *buf, size_t len, const int *fds, size_t nfds)
{
    if (!nfds)
        return send(sock, buf, len, MSG_NOSIGNAL | MSG_DONTWAIT);
    union {
        char buf[CMSG_SPACE(VUF_SEND_MAX_FDS * sizeof(int))];
        struct cmsghdr align;
    } cbuf;
    struct iovec iov = {.iov_base = (void *)buf, .iov_len = len};
    struct msghdr mh;
    memset(&mh, 0, sizeof mh);
    memset(cbuf.buf, 0, sizeof cbuf.buf);
    mh.msg_iov = &iov;
    mh.msg_iovlen = 1;
    mh.msg_control = cbuf.buf;
    mh.msg_controllen = CMSG_SPACE(nfds * sizeof(int));
    struct cmsghdr *c = CMSG_FIRSTHDR(&mh);
    c->cmsg_level = SOL_SOCKET;
    c->cmsg_type = SCM_RIGHTS;
    c->cmsg_len = CMSG_LEN(nfds * sizeof(int));
    memcpy(CMSG_DATA(c), fds, nfds * sizeof(int));
    return sendmsg(sock, &mh, MSG_NOSIGNAL | MSG_DONTWAIT);
}

static bool bad_send_args(const uint8_t *buf, size_t len, const int *fds, size_t nfds)
{
    return nfds > VUF_SEND_MAX_FDS || (nfds && (!fds || !len)) || (len && !buf);
}

static vuf_io_status send_all(int sock, const uint8_t *buf, size_t len, const int *fds, size_t nfds,
                              int timeout_ms)
{
    if (bad_send_args(buf, len, fds, nfds)) {
        errno = EINVAL;
        return VUF_IO_ERROR;
    }
    deadline d;
    dl_init(&d, timeout_ms);
    size_t off = 0;
    while (off < len) {
        /* The fds ride on the first byte(s); once any byte went out they
         * were sent, and the rest goes without them. */
        ssize_t n = send_once(sock, buf + off, len - off, off ? NULL : fds, off ? 0 : nfds);
        if (n > 0) {
            off += (size_t)n;
            continue;
        }
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK)
            return VUF_IO_ERROR;
        /* EAGAIN (or a 0-byte send): wait for room. */
        int w = wait_fd(sock, POLLOUT, &d);
        if (w < 0)
            return VUF_IO_ERROR;
        if (w == 0)
            return VUF_IO_TIMEOUT;
    }
    return VUF_IO_OK;
}

ssize_t vuf_send_some(int sock, const uint8_t *buf, size_t len, const int *fds, size_t nfds)
{
    if (bad_send_args(buf, len, fds, nfds)) {
        errno = EINVAL;
        return -1;
    }
    if (!len)
        return 0;
    ssize_t n;
    while ((n = send_once(sock, buf, len, fds, nfds)) < 0 && errno == EINTR) {
    }
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
        return 0;
    return n;
}

vuf_io_status vuf_send_msg(int sock, const uint8_t *buf, size_t len, const int *fds, size_t nfds,
                           int timeout_ms)
{
    return send_all(sock, buf, len, fds, nfds, timeout_ms);
}

vuf_io_status vuf_send_raw(int sock, const void *buf, size_t len, int timeout_ms)
{
    return send_all(sock, buf, len, NULL, 0, timeout_ms);
}

/* ---- relaying ---- */

/* recvmsg of up to len bytes into buf (flags | MSG_DONTWAIT): the bytes
 * read, 0 at EOF, -1 with errno. With seg, the fds of SCM_RIGHTS are
 * appended to it; without, *ctrunc says whether the kernel had fds to give
 * (or any control data: not ours to ask for). */
static ssize_t relay_recv(int sock, uint8_t *buf, size_t len, int flags, vuf_segment *seg,
                          bool *ctrunc)
{
    union {
        char buf[CMSG_SPACE(VUF_SEND_MAX_FDS * sizeof(int))];
        struct cmsghdr align;
    } cbuf;
    struct iovec iov = {.iov_base = buf, .iov_len = len};
    struct msghdr mh;
    ssize_t n;
    do {
        memset(&mh, 0, sizeof mh);
        mh.msg_iov = &iov;
        mh.msg_iovlen = 1;
        if (seg) {
            mh.msg_control = cbuf.buf;
            mh.msg_controllen = sizeof cbuf.buf;
        }
        n = recvmsg(sock, &mh, flags | MSG_DONTWAIT | (seg ? MSG_CMSG_CLOEXEC : 0));
    } while (n < 0 && errno == EINTR);
    if (ctrunc)
        *ctrunc = n > 0 && (mh.msg_flags & MSG_CTRUNC);
    if (n <= 0 || !seg)
        return n;
    for (struct cmsghdr *c = CMSG_FIRSTHDR(&mh); c; c = CMSG_NXTHDR(&mh, c)) {
        if (c->cmsg_level != SOL_SOCKET || c->cmsg_type != SCM_RIGHTS || c->cmsg_len < CMSG_LEN(0))
            continue;
        size_t k = (c->cmsg_len - CMSG_LEN(0)) / sizeof(int);
        for (size_t i = 0; i < k && seg->nfds < VUF_SEND_MAX_FDS; i++)
            memcpy(&seg->fds[seg->nfds++], CMSG_DATA(c) + i * sizeof(int), sizeof(int));
    }
    seg->ctrunc |= (mh.msg_flags & MSG_CTRUNC) != 0;
    return n;
}

vuf_io_status vuf_recv_segment(int sock, uint8_t *buf, size_t cap, vuf_segment *seg)
{
    memset(seg, 0, sizeof *seg);
    if (!buf || !cap) {
        errno = EINVAL;
        return VUF_IO_ERROR;
    }
    /* a peek without room for fds: the bytes up to the end of the first
     * fd-carrying write (or cap), and MSG_CTRUNC if a write queued carries
     * fds (the kernel walks the queue to the first one, wherever it
     * starts) */
    bool fds_ahead;
    ssize_t n = relay_recv(sock, buf, cap, MSG_PEEK, NULL, &fds_ahead);
    if (n == 0)
        return VUF_IO_EOF;
    if (n < 0)
        return errno == EAGAIN || errno == EWOULDBLOCK ? VUF_IO_TIMEOUT : VUF_IO_ERROR;
    if (!fds_ahead) {
        ssize_t r = relay_recv(sock, buf, (size_t)n, 0, NULL, NULL);
        if (r <= 0)
            return r == 0 ? VUF_IO_EOF : VUF_IO_ERROR;
        seg->len = (size_t)r;
        return VUF_IO_OK;
    }
    /* where that write starts only a read that reaches it tells: one byte
     * at a time until one comes with fds (at most 4096 per call) */
    size_t limit = (size_t)n < 4096 ? (size_t)n : 4096;
    while (seg->len < limit) {
        ssize_t r = relay_recv(sock, buf + seg->len, 1, 0, seg, NULL);
        if (r <= 0)
            break;
        seg->len++;
        if (seg->nfds || seg->ctrunc) {
            /* found: the rest of that write, as far as the peek went */
            seg->fd_at = seg->len - 1;
            if ((size_t)n > seg->len) {
                r = relay_recv(sock, buf + seg->len, (size_t)n - seg->len, 0, NULL, NULL);
                if (r > 0)
                    seg->len += (size_t)r;
            }
            return VUF_IO_OK;
        }
    }
    if (seg->len)
        return VUF_IO_OK;
    return errno == EAGAIN || errno == EWOULDBLOCK ? VUF_IO_TIMEOUT : VUF_IO_ERROR;
}

vuf_io_status vuf_send_segment(int sock, const uint8_t *buf, const vuf_segment *seg, int timeout_ms)
{
    if (seg->nfds && seg->fd_at) {
        vuf_io_status st = send_all(sock, buf, seg->fd_at, NULL, 0, timeout_ms);
        if (st != VUF_IO_OK)
            return st;
    }
    size_t at = seg->nfds ? seg->fd_at : 0;
    return send_all(sock, buf + at, seg->len - at, seg->fds, seg->nfds, timeout_ms);
}

/* ---- Unix socket helpers ---- */

static int make_addr(const char *path, struct sockaddr_un *sa)
{
    if (!path || !*path) {
        errno = EINVAL;
        return -1;
    }
    memset(sa, 0, sizeof *sa);
    sa->sun_family = AF_UNIX;
    size_t len = strlen(path);
    if (len >= sizeof sa->sun_path) {
        errno = ENAMETOOLONG;
        return -1;
    }
    memcpy(sa->sun_path, path, len + 1);
    return 0;
}

static void close_keep(int fd)
{
    int e = errno;
    close(fd);
    errno = e;
}

static int set_blocking(int fd)
{
    int fl = fcntl(fd, F_GETFL);
    if (fl < 0 || fcntl(fd, F_SETFL, fl & ~O_NONBLOCK) < 0)
        return -1;
    return 0;
}

/* Read from /proc/net/unix (flag __SO_ACCEPTCON, 0x10000), so that asking
 * does not connect to it. */
int vuf_unix_listening_ino(const char *path, uint64_t *ino)
{
    FILE *f = fopen("/proc/net/unix", "re");
    if (!f)
        return -1;
    char line[4096 + 128];
    int live = 0;
    size_t plen = strlen(path);
    while (!live && fgets(line, sizeof line, f)) {
        unsigned long flags;
        unsigned long long inode;
        char *p = line;
        /* Num: RefCount Protocol Flags Type St Inode Path */
        if (sscanf(p, "%*s %*s %*s %lx %*s %*s %llu", &flags, &inode) != 2)
            continue;
        size_t n = strlen(line);
        while (n && (line[n - 1] == '\n' || line[n - 1] == ' '))
            line[--n] = 0;
        if (n > plen && line[n - plen - 1] == ' ' && !strcmp(line + n - plen, path) &&
            (flags & 0x10000)) {
            live = 1;
            if (ino)
                *ino = inode;
        }
    }
    fclose(f);
    return live;
}

int vuf_unix_listening(const char *path)
{
    return vuf_unix_listening_ino(path, NULL);
}

int vuf_unix_listen(const char *path)
{
    struct sockaddr_un sa;
    if (make_addr(path, &sa) < 0)
        return -1;

    struct stat st;
    if (lstat(path, &st) == 0 && S_ISSOCK(st.st_mode)) {
        /* Only a socket nobody listens on is stale. */
        int live = vuf_unix_listening(path);
        if (live < 0) {
            /* no /proc/net/unix: ask with a connect (the listener sees a
             * connection come and go) */
            int p = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
            if (p < 0)
                return -1;
            int r = connect(p, (const struct sockaddr *)&sa, sizeof sa);
            int e = errno;
            close(p);
            live = r == 0 || e == EAGAIN || e == EINPROGRESS;
        }
        if (live) {
            errno = EADDRINUSE;
            return -1;
        }
        if (unlink(path) < 0 && errno != ENOENT)
            return -1;
    }

    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
    if (fd < 0)
        return -1;
    if (bind(fd, (const struct sockaddr *)&sa, sizeof sa) < 0 || listen(fd, 16) < 0) {
        close_keep(fd);
        return -1;
    }
    return fd;
}

int vuf_unix_accept(int lfd, int timeout_ms)
{
    deadline d;
    dl_init(&d, timeout_ms);
    for (;;) {
        /* Wait first, so that a blocking lfd does not block past the deadline. */
        int w = wait_fd(lfd, POLLIN, &d);
        if (w < 0)
            return -1;
        if (w == 0) {
            errno = ETIMEDOUT;
            return -1;
        }
        int fd = accept4(lfd, NULL, NULL, SOCK_CLOEXEC);
        if (fd >= 0)
            return fd;
        if (errno != EINTR && errno != EAGAIN && errno != EWOULDBLOCK && errno != ECONNABORTED)
            return -1;
    }
}

int vuf_unix_connect(const char *path, int timeout_ms)
{
    struct sockaddr_un sa;
    if (make_addr(path, &sa) < 0)
        return -1;
    deadline d;
    dl_init(&d, timeout_ms);
    for (;;) {
        int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
        if (fd < 0)
            return -1;
        int r = connect(fd, (const struct sockaddr *)&sa, sizeof sa);
        if (r < 0 && errno == EINPROGRESS) {
            /* Not done by AF_UNIX today, handled in case. */
            int w = wait_fd(fd, POLLOUT, &d);
            int soerr = 0;
            socklen_t sl = sizeof soerr;
            if (w <= 0) {
                if (w == 0)
                    errno = ETIMEDOUT;
                close_keep(fd);
                return -1;
            }
            if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &soerr, &sl) < 0) {
                close_keep(fd);
                return -1;
            }
            r = soerr ? -1 : 0;
            errno = soerr;
        }
        if (r == 0) {
            if (set_blocking(fd) < 0) {
                close_keep(fd);
                return -1;
            }
            return fd;
        }
        int e = errno;
        close(fd);
        if (e != ENOENT && e != ECONNREFUSED && e != EAGAIN && e != EINTR) {
            errno = e;
            return -1;
        }
        int ms = dl_remaining_ms(&d);
        if (ms == 0) {
            errno = e == EAGAIN || e == EINTR ? ETIMEDOUT : e;
            return -1;
        }
        if (ms < 0 || ms > 10)
            ms = 10;
        struct timespec ts = {.tv_sec = 0, .tv_nsec = (long)ms * 1000000L};
        nanosleep(&ts, NULL); /* EINTR just retries sooner */
    }
}

/* ---- fd classification ---- */

static bool has_prefix(const char *s, const char *p)
{
    return !strncmp(s, p, strlen(p));
}

vuf_fdkind vuf_fd_classify(int fd)
{
    struct stat st;
    if (fd < 0 || fstat(fd, &st) < 0)
        return VUF_FDKIND_UNKNOWN;

    if (S_ISSOCK(st.st_mode)) {
        int type = 0, acc = 0;
        socklen_t len = sizeof type;
        if (getsockopt(fd, SOL_SOCKET, SO_TYPE, &type, &len) < 0)
            return VUF_FDKIND_OTHER;
        if (type == SOCK_DGRAM)
            return VUF_FDKIND_SOCKET_DGRAM;
        if (type != SOCK_STREAM)
            return VUF_FDKIND_OTHER;
        len = sizeof acc;
        if (getsockopt(fd, SOL_SOCKET, SO_ACCEPTCONN, &acc, &len) == 0 && acc)
            return VUF_FDKIND_SOCKET_LISTEN;
        /* A stream socket whose peer is gone (or never connected) hangs up. */
        struct pollfd p = {.fd = fd, .events = 0};
        if (poll(&p, 1, 0) == 1 && (p.revents & POLLHUP))
            return VUF_FDKIND_SOCKET_CLOSED;
        return VUF_FDKIND_SOCKET;
    }
    if (S_ISFIFO(st.st_mode))
        return VUF_FDKIND_PIPE;
    if (S_ISCHR(st.st_mode))
        return st.st_rdev == makedev(1, 3) ? VUF_FDKIND_DEVNULL : VUF_FDKIND_OTHER;
    if (S_ISDIR(st.st_mode) || S_ISBLK(st.st_mode) || S_ISLNK(st.st_mode))
        return VUF_FDKIND_OTHER;

    /* Regular files and anonymous inodes (whose mode has varied between kernel
     * versions): tell them apart by the /proc link. */
    char path[40], link[64];
    snprintf(path, sizeof path, "/proc/self/fd/%d", fd);
    ssize_t n = readlink(path, link, sizeof link - 1);
    if (n >= 0) {
        link[n] = '\0';
        if (has_prefix(link, "anon_inode:"))
            return !strcmp(link, "anon_inode:[eventfd]") ? VUF_FDKIND_EVENTFD : VUF_FDKIND_OTHER;
        if (has_prefix(link, "/memfd:"))
            return VUF_FDKIND_MEMFD;
    }
    return S_ISREG(st.st_mode) ? VUF_FDKIND_FILE : VUF_FDKIND_OTHER;
}

int vuf_unix_peer_ino(int fd, uint64_t *ino, uint64_t *peer_ino)
{
    struct stat st;
    if (fstat(fd, &st))
        return -1;
    if (!S_ISSOCK(st.st_mode)) {
        errno = ENOTSOCK;
        return -1;
    }
    *ino = (uint64_t)st.st_ino;
    int nl = socket(AF_NETLINK, SOCK_DGRAM | SOCK_CLOEXEC, NETLINK_SOCK_DIAG);
    if (nl < 0) {
        errno = EPROTONOSUPPORT;
        return -1;
    }
    struct {
        struct nlmsghdr h;
        struct unix_diag_req r;
    } req;
    memset(&req, 0, sizeof req);
    req.h.nlmsg_len = sizeof req;
    req.h.nlmsg_type = SOCK_DIAG_BY_FAMILY;
    req.h.nlmsg_flags = NLM_F_REQUEST;
    req.r.sdiag_family = AF_UNIX;
    req.r.udiag_states = ~0u;
    req.r.udiag_ino = (uint32_t)st.st_ino;
    req.r.udiag_show = UDIAG_SHOW_PEER;
    req.r.udiag_cookie[0] = req.r.udiag_cookie[1] = ~0u;
    /* a bounded wait: netlink answers at once, or never */
    struct timeval tv = {.tv_sec = 1};
    setsockopt(nl, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    union {
        struct nlmsghdr h;
        char b[1024];
    } buf;
    ssize_t n = -1;
    if (send(nl, &req, sizeof req, 0) == (ssize_t)sizeof req)
        n = recv(nl, &buf, sizeof buf, 0);
    close(nl);
    errno = ENOENT;
    if (n < (ssize_t)NLMSG_LENGTH(sizeof(struct unix_diag_msg)) || !NLMSG_OK(&buf.h, (size_t)n) ||
        buf.h.nlmsg_type != SOCK_DIAG_BY_FAMILY)
        return -1;
    struct unix_diag_msg *m = NLMSG_DATA(&buf.h);
    int len = (int)buf.h.nlmsg_len - (int)NLMSG_LENGTH(sizeof *m);
    for (struct rtattr *a = (struct rtattr *)(m + 1); RTA_OK(a, len); a = RTA_NEXT(a, len))
        if (a->rta_type == UNIX_DIAG_PEER && RTA_PAYLOAD(a) >= sizeof(uint32_t)) {
            uint32_t p;
            memcpy(&p, RTA_DATA(a), sizeof p);
            *peer_ino = p;
            return 0;
        }
    return -1;
}
