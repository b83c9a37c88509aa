/* SPDX-License-Identifier: Apache-2.0 */
/* Unit test of wire/vuf_transport: framing, fds, short reads, EOF, timeouts,
 * MSG_CTRUNC, oversize payloads, stream sync, fd classification and the Unix
 * socket helpers. Cases run under tests/unit/vuf_test.h (its per-case fd
 * check); prints one line per check too. */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE 1
#endif

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <sys/types.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "vuf_test.h"
#include "vuf_transport.h"

/* One line per check: "ok   test: what" or "FAIL file:line: test: what (cond)". */
#define T(cond, ...)                                                                               \
    do {                                                                                           \
        int t_ok_ = !!(cond); /* evaluated once: conditions may have effects */                    \
        if (t_ok_) {                                                                               \
            vuf_t_pass++;                                                                          \
            printf("ok   %s: ", __func__);                                                         \
        } else {                                                                                   \
            vuf_t_fail++;                                                                          \
            printf("FAIL %s:%d: %s: ", __FILE__, __LINE__, __func__);                              \
        }                                                                                          \
        printf(__VA_ARGS__);                                                                       \
        if (!t_ok_)                                                                                \
            printf(" [%s]", #cond);                                                                \
        printf("\n");                                                                              \
        fflush(stdout);                                                                            \
    } while (0)

#define ST(s) vuf_io_status_name(s)

#define kname(k) vuf_fdkind_name(k)

/* ---- helpers ---- */

static void mkhdr(uint8_t *b, uint32_t req, uint32_t flags, uint32_t size)
{
    memcpy(b, &req, 4);
    memcpy(b + 4, &flags, 4);
    memcpy(b + 8, &size, 4);
}

/* A message: header (request, flags 1, size) + `size` bytes of pattern `seed`. */
static size_t mkmsg(uint8_t *b, uint32_t req, uint32_t size, uint8_t seed)
{
    mkhdr(b, req, 1, size);
    for (uint32_t i = 0; i < size; i++)
        b[VUF_HDR_SIZE + i] = (uint8_t)(seed + i);
    return VUF_HDR_SIZE + size;
}

static int check_payload(const uint8_t *p, size_t len, uint8_t seed)
{
    for (size_t i = 0; i < len; i++)
        if (p[i] != (uint8_t)(seed + i))
            return 0;
    return 1;
}

/* sendmsg directly (not through the transport), any number of fds. */
static ssize_t raw_sendmsg(int sock, const void *buf, size_t len, const int *fds, size_t nfds)
{
    static union {
        char buf[CMSG_SPACE(253 * sizeof(int))];
        struct cmsghdr align;
    } cbuf;
    struct iovec iov = {.iov_base = (void *)buf, .iov_len = len};
    struct msghdr mh;
    memset(&mh, 0, sizeof mh);
    mh.msg_iov = &iov;
    mh.msg_iovlen = 1;
    if (nfds) {
        memset(cbuf.buf, 0, sizeof cbuf.buf);
        mh.msg_control = cbuf.buf;
        mh.msg_controllen = CMSG_SPACE(nfds * sizeof(int));
        struct cmsghdr *c = CMSG_FIRSTHDR(&mh);
        c->cmsg_level = SOL_SOCKET;
        c->cmsg_type = SCM_RIGHTS;
        c->cmsg_len = CMSG_LEN(nfds * sizeof(int));
        memcpy(CMSG_DATA(c), fds, nfds * sizeof(int));
    }
    return sendmsg(sock, &mh, MSG_NOSIGNAL);
}

static int pair(int sv[2])
{
    return socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv);
}

static void close_pair(int sv[2])
{
    close(sv[0]);
    close(sv[1]);
}

static void rx_init(vuf_rx_msg *m, uint8_t *buf, size_t cap)
{
    memset(m, 0, sizeof *m);
    m->payload = buf;
    m->payload_cap = cap;
}

/* Leak probe: a pipe whose write end is what gets sent. Once the sender
 * closed its own copy, the read end sees EOF only if every received copy was
 * closed too. */
typedef struct {
    int r, w;
} probe;

static int probe_open(probe *p)
{
    int fd[2];
    p->r = p->w = -1;
    if (pipe2(fd, O_CLOEXEC) < 0)
        return -1;
    p->r = fd[0];
    p->w = fd[1];
    return 0;
}

/* Closes the sender's write end (if still open) and the read end; returns 1 if
 * every copy of the write end was closed. */
static int probe_all_closed(probe *p)
{
    if (p->w >= 0)
        close(p->w);
    p->w = -1;
    fcntl(p->r, F_SETFL, O_NONBLOCK);
    char c;
    ssize_t n = read(p->r, &c, 1);
    close(p->r);
    p->r = -1;
    return n == 0;
}

static int is_cloexec(int fd)
{
    int f = fcntl(fd, F_GETFD);
    return f >= 0 && (f & FD_CLOEXEC);
}

static int is_nonblock(int fd)
{
    int f = fcntl(fd, F_GETFL);
    return f >= 0 && (f & O_NONBLOCK);
}

/* Is eventfd b the same object as eventfd a? Write through a, read via b. */
static int same_eventfd(int a, int b, uint64_t v)
{
    uint64_t got = 0;
    if (write(a, &v, sizeof v) != (ssize_t)sizeof v)
        return 0;
    if (read(b, &got, sizeof got) != (ssize_t)sizeof got)
        return 0;
    return got == v;
}

static void msleep(int ms)
{
    struct timespec ts = {.tv_sec = ms / 1000, .tv_nsec = (long)(ms % 1000) * 1000000L};
    while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
        ;
}

static int wait_child(pid_t pid)
{
    int ws = 0;
    while (waitpid(pid, &ws, 0) < 0 && errno == EINTR)
        ;
    return WIFEXITED(ws) ? WEXITSTATUS(ws) : 128 + (WIFSIGNALED(ws) ? WTERMSIG(ws) : 0);
}

/* ---- tests ---- */

VUF_TEST(names)
{
    T(!strcmp(ST(VUF_IO_OK), "ok") && !strcmp(ST(VUF_IO_EOF), "eof") &&
          !strcmp(ST(VUF_IO_SHORT), "short") && !strcmp(ST(VUF_IO_TIMEOUT), "timeout") &&
          !strcmp(ST(VUF_IO_CTRUNC), "ctrunc") && !strcmp(ST(VUF_IO_OVERSIZE), "oversize") &&
          !strcmp(ST(VUF_IO_ERROR), "error") && !strcmp(ST((vuf_io_status)99), "invalid"),
      "status names");
}

static void roundtrip(size_t n)
{
    int sv[2], efd[8], sent[8];
    uint8_t out[VUF_HDR_SIZE + 64], in[64];
    vuf_rx_msg m;
    T(pair(sv) == 0, "%zu fds: socketpair", n);
    for (size_t i = 0; i < n; i++)
        sent[i] = efd[i] = eventfd(0, EFD_CLOEXEC);
    size_t len = mkmsg(out, 5, 16, (uint8_t)(0x40 + n));
    vuf_io_status st = vuf_send_msg(sv[0], out, len, sent, n, 1000);
    T(st == VUF_IO_OK, "%zu fds: send %s", n, ST(st));
    rx_init(&m, in, sizeof in);
    st = vuf_recv_msg(sv[1], &m, 1000);
    T(st == VUF_IO_OK, "%zu fds: recv %s", n, ST(st));
    T(m.hdr_len == VUF_HDR_SIZE && !memcmp(m.hdr, out, VUF_HDR_SIZE), "%zu fds: header intact", n);
    T(m.payload_len == 16 && check_payload(in, 16, (uint8_t)(0x40 + n)), "%zu fds: payload intact",
      n);
    T(m.nfds == n, "%zu fds: got %zu fds", n, m.nfds);
    int ok = m.nfds == n;
    for (size_t i = 0; ok && i < n; i++)
        ok = is_cloexec(m.fds[i]) && same_eventfd(m.fds[i], efd[i], 100 + i) &&
             vuf_fd_classify(m.fds[i]) == VUF_FDKIND_EVENTFD;
    T(ok, "%zu fds: each received fd is the sent eventfd, in order, close-on-exec", n);
    vuf_close_fds(m.fds, &m.nfds);
    T(m.nfds == 0, "%zu fds: vuf_close_fds zeroes the count", n);
    for (size_t i = 0; i < n; i++)
        close(efd[i]);
    close_pair(sv);
}

VUF_TEST(roundtrip_0)
{
    roundtrip(0);
}
VUF_TEST(roundtrip_1)
{
    roundtrip(1);
}
VUF_TEST(roundtrip_8)
{
    roundtrip(8);
}

/* Empty payload, payload exactly at capacity, and several messages queued
 * back to back. */
VUF_TEST(sizes)
{
    int sv[2], efd = eventfd(0, EFD_CLOEXEC);
    uint8_t out[VUF_HDR_SIZE + 32], in[32];
    vuf_rx_msg m;
    pair(sv);
    size_t l0 = mkmsg(out, 1, 0, 0);
    vuf_send_msg(sv[0], out, l0, &efd, 1, 1000);
    size_t l1 = mkmsg(out, 2, 32, 7);
    vuf_send_msg(sv[0], out, l1, NULL, 0, 1000);
    rx_init(&m, NULL, 0);
    vuf_io_status st = vuf_recv_msg(sv[1], &m, 1000);
    T(st == VUF_IO_OK && m.payload_len == 0 && m.nfds == 1,
      "empty payload with an fd and no buffer: %s, %zu fds", ST(st), m.nfds);
    vuf_close_fds(m.fds, &m.nfds);
    rx_init(&m, in, sizeof in);
    st = vuf_recv_msg(sv[1], &m, 1000);
    T(st == VUF_IO_OK && m.payload_len == 32 && check_payload(in, 32, 7) && m.nfds == 0,
      "payload exactly at capacity: %s", ST(st));
    uint8_t junk[4] = {0};
    rx_init(&m, NULL, 4);
    st = vuf_recv_msg(sv[1], &m, 0);
    T(st == VUF_IO_ERROR && errno == EINVAL, "NULL buffer with a capacity: EINVAL (%s)", ST(st));
    rx_init(&m, junk, 4);
    st = vuf_recv_msg(-1, &m, 0);
    T(st == VUF_IO_ERROR && errno == EBADF, "bad socket: error EBADF (%s)", ST(st));
    close(efd);
    close_pair(sv);
}

VUF_TEST(classify)
{
    int sp[2], pp[2], sv[2];
    char tmpl[] = "/tmp/vuf-test-transport-XXXXXX";
    pair(sp);
    pipe2(pp, O_CLOEXEC);
    int lsock = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    struct sockaddr_un sa = {.sun_family = AF_UNIX};
    int lok = bind(lsock, (struct sockaddr *)&sa, sizeof(sa_family_t)) == 0 && /* autobind */
              listen(lsock, 1) == 0;
    T(lok, "listening socket set up");
    int file = mkstemp(tmpl);
    if (file >= 0)
        unlink(tmpl);
    int fds[8] = {
        eventfd(0, EFD_CLOEXEC),
        memfd_create("vuf-test", MFD_CLOEXEC),
        file,
        sp[0],
        lsock,
        socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0),
        pp[0],
        open("/dev/null", O_RDWR | O_CLOEXEC),
    };
    const vuf_fdkind want[8] = {
        VUF_FDKIND_EVENTFD,       VUF_FDKIND_MEMFD,        VUF_FDKIND_FILE, VUF_FDKIND_SOCKET,
        VUF_FDKIND_SOCKET_LISTEN, VUF_FDKIND_SOCKET_DGRAM, VUF_FDKIND_PIPE, VUF_FDKIND_DEVNULL,
    };
    for (int i = 0; i < 8; i++) {
        vuf_fdkind k = vuf_fd_classify(fds[i]);
        T(fds[i] >= 0 && k == want[i], "local %s classified %s", kname(want[i]), kname(k));
    }
    /* The same 8 kinds, received over the transport. */
    uint8_t out[VUF_HDR_SIZE], in[8];
    vuf_rx_msg m;
    pair(sv);
    mkmsg(out, 3, 0, 0);
    vuf_io_status st = vuf_send_msg(sv[0], out, sizeof out, fds, 8, 1000);
    rx_init(&m, in, sizeof in);
    vuf_io_status rs = vuf_recv_msg(sv[1], &m, 1000);
    T(st == VUF_IO_OK && rs == VUF_IO_OK && m.nfds == 8, "8 kinds sent %s, received %s, %zu fds",
      ST(st), ST(rs), m.nfds);
    for (size_t i = 0; i < m.nfds && i < 8; i++) {
        vuf_fdkind k = vuf_fd_classify(m.fds[i]);
        T(k == want[i], "received %s classified %s", kname(want[i]), kname(k));
    }
    vuf_close_fds(m.fds, &m.nfds);
    close_pair(sv);
    for (int i = 0; i < 8; i++)
        close(fds[i]);

    /* A stream socket whose peer is closed. */
    T(vuf_fd_classify(sp[1]) == VUF_FDKIND_SOCKET_CLOSED, "socket with closed peer: %s",
      kname(vuf_fd_classify(sp[1])));
    close(sp[1]);
    close(pp[1]);
    /* Other kinds, and fds that are not open. */
    int dir = open("/tmp", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    int ep = epoll_create1(EPOLL_CLOEXEC);
    T(vuf_fd_classify(dir) == VUF_FDKIND_OTHER, "directory: %s", kname(vuf_fd_classify(dir)));
    T(vuf_fd_classify(ep) == VUF_FDKIND_OTHER, "epoll fd (another anon inode): %s",
      kname(vuf_fd_classify(ep)));
    close(dir);
    close(ep);
    T(vuf_fd_classify(-1) == VUF_FDKIND_UNKNOWN, "fd -1: unknown");
    T(vuf_fd_classify(dir) == VUF_FDKIND_UNKNOWN, "closed fd: unknown");
}

/* The header arrives in several writes (the fds with the first byte only),
 * within the timeout. */
VUF_TEST(split_header)
{
    int sv[2], efd[2] = {eventfd(0, EFD_CLOEXEC), eventfd(0, EFD_CLOEXEC)};
    uint8_t out[VUF_HDR_SIZE + 40], in[64];
    mkmsg(out, 9, 40, 0x11);
    pair(sv);
    pid_t pid = fork();
    if (pid == 0) {
        static const size_t cut[] = {0, 1, 3, 7, 12, 30, VUF_HDR_SIZE + 40};
        int rc = raw_sendmsg(sv[0], out, 1, efd, 2) == 1 ? 0 : 1;
        for (size_t i = 1; i + 1 < sizeof cut / sizeof cut[0]; i++) {
            msleep(20);
            if (vuf_send_raw(sv[0], out + cut[i], cut[i + 1] - cut[i], 1000) != VUF_IO_OK)
                rc = 1;
        }
        _exit(rc);
    }
    vuf_rx_msg m;
    rx_init(&m, in, sizeof in);
    vuf_io_status st = vuf_recv_msg(sv[1], &m, 5000);
    T(st == VUF_IO_OK, "header in 6 writes: %s", ST(st));
    T(m.hdr_len == VUF_HDR_SIZE && !memcmp(m.hdr, out, VUF_HDR_SIZE) && m.payload_len == 40 &&
          check_payload(in, 40, 0x11),
      "header and payload reassembled");
    T(m.nfds == 2 && same_eventfd(m.fds[0], efd[0], 7) && same_eventfd(m.fds[1], efd[1], 8),
      "the 2 fds of the first byte received (%zu)", m.nfds);
    T(wait_child(pid) == 0, "writer child sent everything");
    vuf_close_fds(m.fds, &m.nfds);
    close(efd[0]);
    close(efd[1]);
    close_pair(sv);
}

/* The timeout is one deadline for the call, not per syscall: 6 header pieces
 * 100 ms apart (500 ms in all) do not fit in 250 ms, although every single
 * wait is shorter than 250 ms. */
VUF_TEST(deadline_per_call)
{
    int sv[2];
    probe pr;
    uint8_t out[VUF_HDR_SIZE], in[8];
    mkmsg(out, 1, 0, 0);
    pair(sv);
    probe_open(&pr);
    pid_t pid = fork();
    if (pid == 0) {
        int rc = raw_sendmsg(sv[0], out, 2, &pr.w, 1) == 2 ? 0 : 1;
        for (size_t off = 2; off < VUF_HDR_SIZE; off += 2) {
            msleep(100);
            vuf_send_raw(sv[0], out + off, 2, 1000);
        }
        _exit(rc);
    }
    close(pr.w);
    pr.w = -1;
    vuf_rx_msg m;
    rx_init(&m, in, sizeof in);
    vuf_io_status st = vuf_recv_msg(sv[1], &m, 250);
    T(st == VUF_IO_TIMEOUT, "slow header, 250 ms deadline: %s", ST(st));
    T(m.hdr_len > 0 && m.hdr_len < VUF_HDR_SIZE && m.nfds == 0,
      "timeout mid-header reports %zu header bytes, 0 fds", m.hdr_len);
    T(wait_child(pid) == 0, "writer child done");
    T(probe_all_closed(&pr), "the fd received with the first byte was closed");
    close_pair(sv);
}

VUF_TEST(eof)
{
    int sv[2];
    uint8_t out[VUF_HDR_SIZE + 100], in[128];
    vuf_rx_msg m;
    probe pr;

    pair(sv);
    close(sv[0]);
    rx_init(&m, in, sizeof in);
    vuf_io_status st = vuf_recv_msg(sv[1], &m, 1000);
    T(st == VUF_IO_EOF && m.hdr_len == 0 && m.nfds == 0, "EOF at start: %s", ST(st));
    close(sv[1]);

    pair(sv);
    probe_open(&pr);
    int three[3] = {pr.w, pr.w, pr.w};
    mkmsg(out, 1, 0, 0);
    raw_sendmsg(sv[0], out, 5, three, 3);
    close(sv[0]);
    rx_init(&m, in, sizeof in);
    st = vuf_recv_msg(sv[1], &m, 1000);
    T(st == VUF_IO_SHORT && m.hdr_len == 5 && m.nfds == 0, "EOF mid-header: %s after %zu bytes",
      ST(st), m.hdr_len);
    T(probe_all_closed(&pr), "EOF mid-header: the 3 received fds were closed");
    close(sv[1]);

    pair(sv);
    probe_open(&pr);
    int two[2] = {pr.w, pr.w};
    mkmsg(out, 1, 100, 0);
    raw_sendmsg(sv[0], out, VUF_HDR_SIZE + 40, two, 2);
    close(sv[0]);
    rx_init(&m, in, sizeof in);
    st = vuf_recv_msg(sv[1], &m, 1000);
    T(st == VUF_IO_SHORT && m.hdr_len == VUF_HDR_SIZE && m.payload_len == 40 && m.nfds == 0,
      "EOF mid-payload: %s after %zu payload bytes", ST(st), m.payload_len);
    T(probe_all_closed(&pr), "EOF mid-payload: the 2 received fds were closed");
    close(sv[1]);
}

VUF_TEST(timeout)
{
    int sv[2];
    uint8_t out[VUF_HDR_SIZE + 8], in[8];
    vuf_rx_msg m;
    probe pr;
    pair(sv);
    rx_init(&m, in, sizeof in);
    vuf_io_status st = vuf_recv_msg(sv[1], &m, 100);
    T(st == VUF_IO_TIMEOUT && m.hdr_len == 0, "nothing sent, 100 ms: %s", ST(st));
    st = vuf_recv_msg(sv[1], &m, 0);
    T(st == VUF_IO_TIMEOUT && m.hdr_len == 0, "nothing sent, poll once: %s", ST(st));

    size_t len = mkmsg(out, 4, 8, 3);
    vuf_send_msg(sv[0], out, len, NULL, 0, 1000);
    st = vuf_recv_msg(sv[1], &m, 0);
    T(st == VUF_IO_OK && check_payload(in, 8, 3), "message already there, poll once: %s", ST(st));

    /* Part of a header with an fd, then silence. */
    probe_open(&pr);
    raw_sendmsg(sv[0], out, 4, &pr.w, 1);
    st = vuf_recv_msg(sv[1], &m, 50);
    T(st == VUF_IO_TIMEOUT && m.hdr_len == 4 && m.nfds == 0, "4 header bytes then silence: %s",
      ST(st));
    T(probe_all_closed(&pr), "timeout mid-header: the received fd was closed");
    /* Header, part of the payload with fds, then silence. */
    close_pair(sv);
    pair(sv);
    probe_open(&pr);
    raw_sendmsg(sv[0], out, VUF_HDR_SIZE + 3, &pr.w, 1);
    st = vuf_recv_msg(sv[1], &m, 50);
    T(st == VUF_IO_TIMEOUT && m.hdr_len == VUF_HDR_SIZE && m.payload_len == 3 && m.nfds == 0,
      "timeout mid-payload: %s", ST(st));
    T(probe_all_closed(&pr), "timeout mid-payload: the received fd was closed");
    close_pair(sv);
}

/* Receive the follow-up message (request 77, 1 eventfd, 8 bytes of seed 0x5a)
 * that checks the stream is still in sync. */
static void send_followup(int sock, int efd)
{
    uint8_t out[VUF_HDR_SIZE + 8];
    size_t len = mkmsg(out, 77, 8, 0x5a);
    vuf_send_msg(sock, out, len, &efd, 1, 1000);
}

static int recv_followup(int sock, int efd)
{
    uint8_t in[64];
    vuf_rx_msg m;
    rx_init(&m, in, sizeof in);
    vuf_io_status st = vuf_recv_msg(sock, &m, 1000);
    uint32_t req;
    memcpy(&req, m.hdr, 4);
    int ok = st == VUF_IO_OK && req == 77 && m.payload_len == 8 && check_payload(in, 8, 0x5a) &&
             m.nfds == 1 && same_eventfd(efd, m.fds[0], 42);
    if (st == VUF_IO_OK)
        vuf_close_fds(m.fds, &m.nfds);
    return ok;
}

VUF_TEST(ctrunc)
{
    int sv[2], efd = eventfd(0, EFD_CLOEXEC), forty[40];
    uint8_t out[VUF_HDR_SIZE + 200], in[64];
    vuf_rx_msg m;
    probe pr;
    vuf_io_status st;

    /* 40 fds (more than VUF_MAX_FDS) with a whole message. */
    pair(sv);
    probe_open(&pr);
    for (int i = 0; i < 40; i++)
        forty[i] = pr.w;
    size_t len = mkmsg(out, 6, 16, 0x21);
    T(raw_sendmsg(sv[0], out, len, forty, 40) == (ssize_t)len, "sendmsg with 40 fds");
    send_followup(sv[0], efd);
    rx_init(&m, in, sizeof in);
    st = vuf_recv_msg(sv[1], &m, 1000);
    T(st == VUF_IO_CTRUNC && m.ctrunc && m.nfds == 0, "40 fds: %s, %zu fds", ST(st), m.nfds);
    T(m.hdr_len == VUF_HDR_SIZE && m.payload_len == 16 && check_payload(in, 16, 0x21),
      "40 fds: refused message still read whole (payload_len %zu)", m.payload_len);
    T(probe_all_closed(&pr), "40 fds: every received fd was closed");
    T(recv_followup(sv[1], efd), "40 fds: next message received intact (stream in sync)");
    close_pair(sv);

    /* The same through vuf_send_msg, which may send more than VUF_MAX_FDS. */
    pair(sv);
    probe_open(&pr);
    for (int i = 0; i < 40; i++)
        forty[i] = pr.w;
    st = vuf_send_msg(sv[0], out, len, forty, 40, 1000);
    T(st == VUF_IO_OK, "vuf_send_msg with 40 fds: %s", ST(st));
    send_followup(sv[0], efd);
    rx_init(&m, in, sizeof in);
    st = vuf_recv_msg(sv[1], &m, 1000);
    T(st == VUF_IO_CTRUNC && m.nfds == 0, "vuf_send_msg with 40 fds: receiver sees %s", ST(st));
    T(probe_all_closed(&pr), "vuf_send_msg with 40 fds: every received fd was closed");
    T(recv_followup(sv[1], efd), "vuf_send_msg with 40 fds: next message intact");
    close_pair(sv);

    /* Truncated fds on a split header: the rest of it and the payload are
     * read before returning. */
    pair(sv);
    probe_open(&pr);
    for (int i = 0; i < 40; i++)
        forty[i] = pr.w;
    len = mkmsg(out, 6, 16, 0x22);
    raw_sendmsg(sv[0], out, 3, forty, 40);
    vuf_send_raw(sv[0], out + 3, len - 3, 1000);
    send_followup(sv[0], efd);
    rx_init(&m, in, sizeof in);
    st = vuf_recv_msg(sv[1], &m, 1000);
    T(st == VUF_IO_CTRUNC && m.nfds == 0 && m.payload_len == 16, "40 fds on 3 header bytes: %s",
      ST(st));
    T(probe_all_closed(&pr), "40 fds on 3 header bytes: received fds closed");
    T(recv_followup(sv[1], efd), "40 fds on 3 header bytes: next message intact");
    close_pair(sv);

    /* Truncated and oversize: the payload is discarded, CTRUNC wins. */
    pair(sv);
    probe_open(&pr);
    for (int i = 0; i < 40; i++)
        forty[i] = pr.w;
    len = mkmsg(out, 6, 200, 0x23);
    raw_sendmsg(sv[0], out, len, forty, 40);
    send_followup(sv[0], efd);
    rx_init(&m, in, sizeof in);
    st = vuf_recv_msg(sv[1], &m, 1000);
    T(st == VUF_IO_CTRUNC && m.nfds == 0 && m.payload_len == 0,
      "40 fds and 200 bytes for a 64-byte buffer: %s", ST(st));
    T(probe_all_closed(&pr), "40 fds, oversize: received fds closed");
    T(recv_followup(sv[1], efd), "40 fds, oversize: next message intact");
    close_pair(sv);

    /* Truncated, then the peer closes mid-payload: SHORT, truncation noted. */
    pair(sv);
    probe_open(&pr);
    for (int i = 0; i < 40; i++)
        forty[i] = pr.w;
    len = mkmsg(out, 6, 16, 0x24);
    raw_sendmsg(sv[0], out, VUF_HDR_SIZE + 4, forty, 40);
    close(sv[0]);
    rx_init(&m, in, sizeof in);
    st = vuf_recv_msg(sv[1], &m, 1000);
    T(st == VUF_IO_SHORT && m.ctrunc && m.nfds == 0, "40 fds then EOF mid-payload: %s", ST(st));
    T(probe_all_closed(&pr), "40 fds then EOF: received fds closed");
    close(sv[1]);
    close(efd);
}

VUF_TEST(oversize)
{
    int sv[2], efd = eventfd(0, EFD_CLOEXEC);
    uint8_t out[VUF_HDR_SIZE + 1000], in[64];
    vuf_rx_msg m;
    probe pr;
    vuf_io_status st;

    pair(sv);
    probe_open(&pr);
    int two[2] = {pr.w, pr.w};
    size_t len = mkmsg(out, 8, 1000, 0x31);
    vuf_send_msg(sv[0], out, len, two, 2, 1000);
    send_followup(sv[0], efd);
    memset(in, 0xee, sizeof in);
    rx_init(&m, in, sizeof in);
    st = vuf_recv_msg(sv[1], &m, 1000);
    T(st == VUF_IO_OVERSIZE && m.nfds == 0 && m.payload_len == 0 && !m.ctrunc,
      "1000 bytes for a 64-byte buffer: %s", ST(st));
    T(m.hdr_len == VUF_HDR_SIZE && !memcmp(m.hdr, out, VUF_HDR_SIZE), "oversize: header kept");
    int untouched = 1;
    for (size_t i = 0; i < sizeof in; i++)
        untouched &= in[i] == 0xee;
    T(untouched, "oversize: buffer not written");
    T(probe_all_closed(&pr), "oversize: the 2 received fds were closed");
    T(recv_followup(sv[1], efd), "oversize: next message intact (exactly 1000 bytes discarded)");
    close_pair(sv);

    /* Above the transport's hard limit although the buffer is larger. The
     * writer is a child: 64 KiB may not fit in the socket buffer. */
    size_t big = VUF_MAX_PAYLOAD + 1, cap = 2 * VUF_MAX_PAYLOAD;
    uint8_t *bout = calloc(1, VUF_HDR_SIZE + big), *bin = malloc(cap);
    pair(sv);
    pid_t pid = fork();
    if (pid == 0) {
        size_t l = mkmsg(bout, 8, (uint32_t)big, 0x32);
        int rc = vuf_send_msg(sv[0], bout, l, &efd, 1, 5000) == VUF_IO_OK ? 0 : 1;
        send_followup(sv[0], efd);
        _exit(rc);
    }
    rx_init(&m, bin, cap);
    st = vuf_recv_msg(sv[1], &m, 5000);
    T(st == VUF_IO_OVERSIZE && m.nfds == 0, "VUF_MAX_PAYLOAD+1 bytes into a %zu-byte buffer: %s",
      cap, ST(st));
    T(recv_followup(sv[1], efd), "above hard limit: next message intact");
    T(wait_child(pid) == 0, "writer child sent everything");
    close_pair(sv);

    /* Exactly at the hard limit is accepted. */
    pair(sv);
    pid = fork();
    if (pid == 0) {
        size_t l = mkmsg(bout, 8, VUF_MAX_PAYLOAD, 0x33);
        _exit(vuf_send_msg(sv[0], bout, l, NULL, 0, 5000) == VUF_IO_OK ? 0 : 1);
    }
    rx_init(&m, bin, cap);
    st = vuf_recv_msg(sv[1], &m, 5000);
    T(st == VUF_IO_OK && m.payload_len == VUF_MAX_PAYLOAD &&
          check_payload(bin, VUF_MAX_PAYLOAD, 0x33),
      "exactly VUF_MAX_PAYLOAD bytes: %s", ST(st));
    T(wait_child(pid) == 0, "writer child sent everything");
    close_pair(sv);
    free(bout);
    free(bin);

    /* Oversize and the peer closes during the discard: SHORT. */
    pair(sv);
    probe_open(&pr);
    mkmsg(out, 8, 1000, 0x34);
    raw_sendmsg(sv[0], out, VUF_HDR_SIZE + 500, &pr.w, 1);
    close(sv[0]);
    rx_init(&m, in, sizeof in);
    st = vuf_recv_msg(sv[1], &m, 1000);
    T(st == VUF_IO_SHORT && m.nfds == 0, "oversize then EOF while discarding: %s", ST(st));
    T(probe_all_closed(&pr), "oversize then EOF: received fd closed");
    close(sv[1]);

    /* Oversize and silence during the discard: TIMEOUT. */
    pair(sv);
    raw_sendmsg(sv[0], out, VUF_HDR_SIZE + 500, NULL, 0);
    rx_init(&m, in, sizeof in);
    st = vuf_recv_msg(sv[1], &m, 50);
    T(st == VUF_IO_TIMEOUT, "oversize then silence while discarding: %s", ST(st));
    close_pair(sv);
    close(efd);
}

/* fds a peer attaches to a later byte than the first are not accepted (the
 * kernel drops them on recv) and do not leak. */
VUF_TEST(fds_on_later_byte)
{
    int sv[2];
    uint8_t out[VUF_HDR_SIZE + 16], in[16];
    vuf_rx_msg m;
    probe pr;
    pair(sv);
    probe_open(&pr);
    int two[2] = {pr.w, pr.w};
    size_t len = mkmsg(out, 2, 16, 0x41);
    raw_sendmsg(sv[0], out, VUF_HDR_SIZE, NULL, 0);
    raw_sendmsg(sv[0], out + VUF_HDR_SIZE, len - VUF_HDR_SIZE, two, 2);
    rx_init(&m, in, sizeof in);
    vuf_io_status st = vuf_recv_msg(sv[1], &m, 1000);
    T(st == VUF_IO_OK && m.nfds == 0 && check_payload(in, 16, 0x41),
      "fds on the payload's first byte: %s, %zu fds", ST(st), m.nfds);
    T(probe_all_closed(&pr), "fds on a later byte did not leak");
    close_pair(sv);
}

static volatile sig_atomic_t ticks;

static void on_alarm(int sig)
{
    (void)sig;
    ticks++;
}

/* Signals every 5 ms (no SA_RESTART) interrupt poll(): waits are resumed, and
 * the deadline still holds. */
VUF_TEST(eintr)
{
    struct sigaction sa, old;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_alarm;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGALRM, &sa, &old);
    struct itimerval on = {{0, 5000}, {0, 5000}}, off;
    memset(&off, 0, sizeof off);

    int sv[2];
    uint8_t out[VUF_HDR_SIZE + 8], in[8];
    vuf_rx_msg m;
    pair(sv);
    size_t len = mkmsg(out, 14, 8, 0x81);
    pid_t pid = fork();
    if (pid == 0) { /* interval timers are not inherited */
        msleep(150);
        _exit(vuf_send_raw(sv[0], out, len, 1000) == VUF_IO_OK ? 0 : 1);
    }
    ticks = 0;
    setitimer(ITIMER_REAL, &on, NULL);
    rx_init(&m, in, sizeof in);
    vuf_io_status st = vuf_recv_msg(sv[1], &m, 3000);
    int t1 = ticks;
    vuf_io_status st2 = vuf_recv_msg(sv[1], &m, 100);
    setitimer(ITIMER_REAL, &off, NULL);
    sigaction(SIGALRM, &old, NULL);
    T(st == VUF_IO_OK && check_payload(in, 8, 0x81), "recv while signals interrupt poll: %s",
      ST(st));
    T(t1 > 0, "signals did arrive during the wait (%d)", t1);
    T(st2 == VUF_IO_TIMEOUT, "timeout while signals interrupt poll: %s", ST(st2));
    T(wait_child(pid) == 0, "writer child done");
    close_pair(sv);
}

VUF_TEST(send_messages)
{
    signal(SIGPIPE, SIG_DFL); /* a missing MSG_NOSIGNAL must kill the test */
    int sv[2], efd[2] = {eventfd(0, EFD_CLOEXEC), eventfd(0, EFD_CLOEXEC)};
    vuf_io_status st;
    enum { BIG = 0x8000 };
    uint8_t *out = malloc(VUF_HDR_SIZE + BIG), *in = malloc(BIG);

    /* Partial writes: a small send buffer and a late reader. */
    pair(sv);
    int small = 4096;
    setsockopt(sv[0], SOL_SOCKET, SO_SNDBUF, &small, sizeof small);
    setsockopt(sv[1], SOL_SOCKET, SO_RCVBUF, &small, sizeof small);
    size_t len = mkmsg(out, 10, BIG, 0x51);
    pid_t pid = fork();
    if (pid == 0)
        _exit(vuf_send_msg(sv[0], out, len, efd, 2, 5000) == VUF_IO_OK ? 0 : 1);
    msleep(50);
    vuf_rx_msg m;
    rx_init(&m, in, BIG);
    st = vuf_recv_msg(sv[1], &m, 5000);
    T(st == VUF_IO_OK && m.payload_len == BIG && check_payload(in, BIG, 0x51) && m.nfds == 2,
      "32 KiB through a 4 KiB send buffer: %s, %zu fds", ST(st), m.nfds);
    T(m.nfds == 2 && same_eventfd(efd[0], m.fds[0], 1) && same_eventfd(efd[1], m.fds[1], 2),
      "fds arrive once, on the first byte");
    vuf_close_fds(m.fds, &m.nfds);
    T(wait_child(pid) == 0, "sender child: partial writes completed");

    /* Nobody reads: the send times out. */
    size_t huge = 1 << 20;
    uint8_t *h = calloc(1, huge);
    st = vuf_send_raw(sv[0], h, huge, 100);
    T(st == VUF_IO_TIMEOUT, "1 MiB nobody reads, 100 ms: %s", ST(st));
    free(h);
    close_pair(sv);

    /* Closed peer: EPIPE, no SIGPIPE (the test would die). */
    pair(sv);
    close(sv[1]);
    errno = 0;
    st = vuf_send_msg(sv[0], out, VUF_HDR_SIZE, efd, 1, 100);
    T(st == VUF_IO_ERROR && errno == EPIPE, "send to a closed peer: %s, %s", ST(st),
      strerror(errno));
    errno = 0;
    st = vuf_send_raw(sv[0], out, VUF_HDR_SIZE, 100);
    T(st == VUF_IO_ERROR && errno == EPIPE, "raw send to a closed peer: %s, %s", ST(st),
      strerror(errno));
    close(sv[0]);

    /* Bad arguments. */
    pair(sv);
    st = vuf_send_msg(sv[0], out, 0, efd, 1, 100);
    T(st == VUF_IO_ERROR && errno == EINVAL, "fds without bytes: EINVAL (%s)", ST(st));
    int many[VUF_SEND_MAX_FDS + 1];
    for (size_t i = 0; i < sizeof many / sizeof many[0]; i++)
        many[i] = efd[0];
    st = vuf_send_msg(sv[0], out, VUF_HDR_SIZE, many, VUF_SEND_MAX_FDS + 1, 100);
    T(st == VUF_IO_ERROR && errno == EINVAL, "more than VUF_SEND_MAX_FDS fds: EINVAL (%s)", ST(st));
    st = vuf_send_raw(sv[0], NULL, 0, 100);
    T(st == VUF_IO_OK, "nothing to send: %s", ST(st));
    rx_init(&m, in, BIG);
    st = vuf_recv_msg(sv[1], &m, 0);
    T(st == VUF_IO_TIMEOUT, "and nothing was sent: %s", ST(st));
    /* Raw bytes form a message on the other side. */
    len = mkmsg(out, 11, 5, 0x61);
    st = vuf_send_raw(sv[0], out, len, 1000);
    vuf_io_status rs = vuf_recv_msg(sv[1], &m, 1000);
    T(st == VUF_IO_OK && rs == VUF_IO_OK && m.payload_len == 5 && check_payload(in, 5, 0x61),
      "raw send, message received: %s/%s", ST(st), ST(rs));
    close_pair(sv);
    close(efd[0]);
    close(efd[1]);
    free(out);
    free(in);
}

VUF_TEST(close_fds)
{
    int fds[4] = {eventfd(0, EFD_CLOEXEC), -1, eventfd(0, EFD_CLOEXEC), eventfd(0, EFD_CLOEXEC)};
    size_t n = 4;
    int before = vuf_test_count_fds();
    vuf_close_fds(fds, &n);
    T(n == 0 && fds[0] == -1 && fds[2] == -1 && fds[3] == -1, "count zeroed, entries -1");
    T(vuf_test_count_fds() == before - 3, "3 fds closed, -1 skipped");
    vuf_close_fds(NULL, NULL);
    n = 0;
    vuf_close_fds(NULL, &n);
    T(n == 0, "NULL arrays tolerated");
}

VUF_TEST(unix_helpers)
{
    char path[64];
    snprintf(path, sizeof path, "/tmp/vuf-test-transport-%ld.sock", (long)getpid());
    unlink(path);

    int lfd = vuf_unix_listen(path);
    T(lfd >= 0, "listen on %s", path);
    T(lfd >= 0 && vuf_fd_classify(lfd) == VUF_FDKIND_SOCKET_LISTEN && is_cloexec(lfd),
      "listening fd is socket-listen, close-on-exec");
    int a = vuf_unix_accept(lfd, 0);
    T(a == -1 && errno == ETIMEDOUT, "accept, nobody, poll once: ETIMEDOUT");
    a = vuf_unix_accept(lfd, 50);
    T(a == -1 && errno == ETIMEDOUT, "accept, nobody, 50 ms: ETIMEDOUT");
    int c = vuf_unix_connect(path, 1000);
    T(c >= 0 && !is_nonblock(c) && is_cloexec(c), "connect: blocking, close-on-exec");
    a = vuf_unix_accept(lfd, 1000);
    T(a >= 0 && !is_nonblock(a) && is_cloexec(a), "accept: blocking, close-on-exec");
    T(vuf_fd_classify(c) == VUF_FDKIND_SOCKET, "connected socket is socket");
    uint8_t out[VUF_HDR_SIZE + 4], in[4];
    size_t len = mkmsg(out, 12, 4, 0x71);
    vuf_rx_msg m;
    rx_init(&m, in, sizeof in);
    vuf_io_status st = vuf_send_msg(c, out, len, &lfd, 1, 1000);
    vuf_io_status rs = vuf_recv_msg(a, &m, 1000);
    T(st == VUF_IO_OK && rs == VUF_IO_OK && m.nfds == 1 &&
          vuf_fd_classify(m.fds[0]) == VUF_FDKIND_SOCKET_LISTEN,
      "message with an fd across connect/accept: %s/%s", ST(st), ST(rs));
    vuf_close_fds(m.fds, &m.nfds);
    close(c);
    close(a);

    int l2 = vuf_unix_listen(path);
    T(l2 == -1 && errno == EADDRINUSE, "listen on a live socket's path: EADDRINUSE");
    close(lfd);
    l2 = vuf_unix_listen(path);
    T(l2 >= 0, "listen on a stale socket's path: unlinked and bound");
    close(l2);

    unlink(path);
    int f = open(path, O_CREAT | O_WRONLY | O_CLOEXEC, 0600);
    close(f);
    l2 = vuf_unix_listen(path);
    struct stat sb;
    T(l2 == -1 && errno == EADDRINUSE && stat(path, &sb) == 0 && S_ISREG(sb.st_mode),
      "a regular file at the path is left alone: EADDRINUSE");
    unlink(path);

    c = vuf_unix_connect(path, 0);
    T(c == -1 && errno == ENOENT, "connect to nothing, once: ENOENT");
    c = vuf_unix_connect(path, 50);
    T(c == -1 && errno == ENOENT, "connect to nothing, 50 ms: ENOENT");
    char longp[200];
    memset(longp, 'a', sizeof longp - 1);
    longp[0] = '/';
    longp[sizeof longp - 1] = '\0';
    T(vuf_unix_listen(longp) == -1 && errno == ENAMETOOLONG, "path too long: ENAMETOOLONG");
    T(vuf_unix_connect(longp, 0) == -1 && errno == ENAMETOOLONG, "connect, too long");

    /* connect waits for a server that appears later. */
    pid_t pid = fork();
    if (pid == 0) {
        msleep(100);
        int l = vuf_unix_listen(path);
        int s = vuf_unix_accept(l, 3000);
        size_t n = mkmsg(out, 13, 4, 0x72);
        int rc = s >= 0 && vuf_send_raw(s, out, n, 1000) == VUF_IO_OK ? 0 : 1;
        msleep(100);
        _exit(rc);
    }
    c = vuf_unix_connect(path, 3000);
    T(c >= 0, "connect waits for a late listener");
    rx_init(&m, in, sizeof in);
    st = c >= 0 ? vuf_recv_msg(c, &m, 3000) : VUF_IO_ERROR;
    T(st == VUF_IO_OK && check_payload(in, 4, 0x72), "and talks to it: %s", ST(st));
    T(wait_child(pid) == 0, "late listener child done");
    if (c >= 0)
        close(c);
    unlink(path);
}

VUF_TEST_MAIN()
