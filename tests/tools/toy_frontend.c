/* SPDX-License-Identifier: Apache-2.0 */
/* toy_frontend: a small vhost-user front-end with bugs put in on purpose,
 * for the tests of `vufuzz fuzz-frontend` and `vufuzz replay
 * --frontend-exec` (the oracles shown on a front-end whose bugs are known,
 * so no bug of QEMU is assumed). Like tests/tools/toy_backend.c it is not
 * built on vufuzz's libraries (its own reader, its own requests):
 *
 *   toy_frontend --socket PATH [--qmp PATH] [--bug NAME]...
 *
 * It connects to PATH (vufuzz listens there), negotiates (GET_FEATURES,
 * GET_PROTOCOL_FEATURES, SET_PROTOCOL_FEATURES with REPLY_ACK and
 * BACKEND_REQ when offered, SET_OWNER, SET_FEATURES, SET_BACKEND_REQ_FD),
 * then serves the back-end channel: every request is read whole and, when
 * it has NEED_REPLY, acknowledged (u64 0, or 1 for an id it does not know).
 * With --qmp it also listens there for one QMP client once the handshake
 * is done (as QEMU's main loop does after device realize): a greeting,
 * then {"return": {}} to every command, and `quit` ends it.
 * It exits 0 on SIGTERM or when the back-end closes the main channel; a
 * reply it cannot use (a wrong id, size or flags) makes it give up: a line
 * on stderr and exit status 1, as a front-end that refuses its back-end.
 * The bugs:
 *   crash    a u64 reply of another size than 8 fails an assert() (abort)
 *   abort    a back-end IOTLB_MSG request (it has no IOMMU) ends it by abort(),
 *            with no line of output
 *   hang     a back-end request with an id above 64 sends it into an endless
 *            loop that ignores SIGTERM and answers no QMP command
 *   badid    the reply to a back-end request carries the request's id + 1
 */
#undef NDEBUG
#include <assert.h>
#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#define HDR 12
#define MAX_PAYLOAD 4096
#define MAX_FDS 8

enum {
    GET_FEATURES = 1,
    SET_FEATURES = 2,
    SET_OWNER = 3,
    GET_PROTOCOL_FEATURES = 15,
    SET_PROTOCOL_FEATURES = 16,
    SET_BACKEND_REQ_FD = 21,
};

#define F_VERSION 0x1u
#define F_REPLY 0x4u
#define F_NEED_REPLY 0x8u
#define VIRTIO_FEATURES ((1ull << 30) | (1ull << 32)) /* PROTOCOL_FEATURES, VERSION_1 */
#define P_REPLY_ACK (1ull << 3)
#define P_BACKEND_REQ (1ull << 5)

static struct {
    bool crash, abort_on_iotlb, hang, badid;
} bug;

static volatile sig_atomic_t terminated;

static void on_term(int sig)
{
    (void)sig;
    terminated = 1;
}

static void usage(FILE *f)
{
    fprintf(f, "usage: toy_frontend --socket PATH [--qmp PATH] [--bug crash|abort|hang|badid]...\n"
               "A vhost-user front-end with bugs put in on purpose (tests only).\n");
}

static void give_up(const char *why)
{
    fprintf(stderr, "toy_frontend: %s: giving up on the back-end\n", why);
    exit(1);
}

static bool read_full(int fd, void *buf, size_t len)
{
    size_t got = 0;
    while (got < len) {
        ssize_t n = read(fd, (char *)buf + got, len - got);
        if (n < 0 && errno == EINTR) {
            if (terminated)
                exit(0);
            continue;
        }
        if (n <= 0)
            return false;
        got += (size_t)n;
    }
    return true;
}

/* One message: header (and any fds, closed: none is expected) in one
 * recvmsg, then the payload. false: the channel closed or the size is
 * beyond any message. */
static bool recv_msg(int fd, uint8_t *hdr, uint8_t *payload, uint32_t *size)
{
    union {
        char buf[CMSG_SPACE(MAX_FDS * sizeof(int))];
        struct cmsghdr align;
    } cb;
    struct iovec iov = {.iov_base = hdr, .iov_len = HDR};
    struct msghdr mh = {
        .msg_iov = &iov, .msg_iovlen = 1, .msg_control = cb.buf, .msg_controllen = sizeof cb.buf};
    ssize_t n;
    do
        n = recvmsg(fd, &mh, MSG_CMSG_CLOEXEC);
    while (n < 0 && errno == EINTR && !terminated);
    if (terminated)
        exit(0);
    if (n <= 0)
        return false;
    for (struct cmsghdr *c = CMSG_FIRSTHDR(&mh); c; c = CMSG_NXTHDR(&mh, c))
        if (c->cmsg_level == SOL_SOCKET && c->cmsg_type == SCM_RIGHTS)
            for (size_t i = 0; i < (c->cmsg_len - CMSG_LEN(0)) / sizeof(int); i++) {
                int f;
                memcpy(&f, CMSG_DATA(c) + i * sizeof(int), sizeof(int));
                close(f);
            }
    if (n < HDR && !read_full(fd, hdr + n, HDR - (size_t)n))
        return false;
    memcpy(size, hdr + 8, 4);
    if (*size > MAX_PAYLOAD)
        return false;
    return read_full(fd, payload, *size);
}

static void send_msg(int fd, uint32_t req, uint32_t flags, const void *payload, uint32_t size,
                     int pass_fd)
{
    uint8_t b[HDR + 8];
    flags |= F_VERSION;
    memcpy(b, &req, 4);
    memcpy(b + 4, &flags, 4);
    memcpy(b + 8, &size, 4);
    if (size)
        memcpy(b + HDR, payload, size);
    union {
        char buf[CMSG_SPACE(sizeof(int))];
        struct cmsghdr align;
    } cb;
    struct iovec iov = {.iov_base = b, .iov_len = HDR + size};
    struct msghdr mh = {.msg_iov = &iov, .msg_iovlen = 1};
    if (pass_fd >= 0) {
        memset(&cb, 0, sizeof cb);
        mh.msg_control = cb.buf;
        mh.msg_controllen = sizeof cb.buf;
        struct cmsghdr *c = CMSG_FIRSTHDR(&mh);
        c->cmsg_level = SOL_SOCKET;
        c->cmsg_type = SCM_RIGHTS;
        c->cmsg_len = CMSG_LEN(sizeof(int));
        memcpy(CMSG_DATA(c), &pass_fd, sizeof(int));
    }
    if (sendmsg(fd, &mh, MSG_NOSIGNAL) != (ssize_t)(HDR + size))
        give_up("the main channel closed");
}

/* The reply to request req: a u64. */
static uint64_t reply_u64(int fd, uint32_t req)
{
    uint8_t hdr[HDR], pl[MAX_PAYLOAD];
    uint32_t size, id, flags;
    if (!recv_msg(fd, hdr, pl, &size)) {
        fprintf(stderr, "toy_frontend: the back-end closed the main channel\n");
        exit(0);
    }
    memcpy(&id, hdr, 4);
    memcpy(&flags, hdr + 4, 4);
    if (id != req || !(flags & F_REPLY))
        give_up("a reply of another request or without the reply flag");
    if (bug.crash)
        assert(size == 8); /* the bug: what the back-end says is trusted */
    else if (size != 8)
        give_up("a u64 reply of another size");
    uint64_t v;
    memcpy(&v, pl, 8);
    return v;
}

static void request_u64(int fd, uint32_t req, uint32_t flags, uint64_t v, int pass_fd)
{
    send_msg(fd, req, flags, &v, 8, pass_fd);
}

/* A request on the back-end channel; false: the channel is done. */
static bool serve_backend(int be)
{
    uint8_t hdr[HDR], pl[MAX_PAYLOAD];
    uint32_t size, id, flags;
    if (!recv_msg(be, hdr, pl, &size))
        return false;
    memcpy(&id, hdr, 4);
    memcpy(&flags, hdr + 4, 4);
    if (flags & F_REPLY)
        return false; /* a reply nobody asked for: the channel is given up */
    if (bug.abort_on_iotlb && id == 1)
        abort(); /* the bug: a fatal path for what a back-end may send */
    if (bug.hang && id > 64) {
        signal(SIGTERM, SIG_IGN); /* the bug: an endless loop */
        for (;;)
            pause();
    }
    if (flags & F_NEED_REPLY) {
        uint64_t status = id >= 1 && id <= 16 ? 0 : 1;
        request_u64(be, bug.badid ? id + 1 : id, F_REPLY, status, -1);
    }
    return true;
}

/* The QMP listener on path, or -1 (with a line on stderr). */
static int qmp_listen(const char *path)
{
    struct sockaddr_un un = {.sun_family = AF_UNIX};
    if (strlen(path) >= sizeof un.sun_path)
        return -1;
    strcpy(un.sun_path, path);
    unlink(path);
    int l = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (l < 0 || bind(l, (struct sockaddr *)&un, sizeof un) || listen(l, 1)) {
        perror("toy_frontend: qmp");
        if (l >= 0)
            close(l);
        return -1;
    }
    return l;
}

static void qmp_put(int c, const char *text)
{
    ssize_t n = send(c, text, strlen(text), MSG_NOSIGNAL);
    (void)n;
}

/* Lines from the QMP client: every command answered; false at quit or EOF. */
static bool qmp_serve(int c)
{
    char buf[512];
    ssize_t n = recv(c, buf, sizeof buf - 1, 0);
    if (n <= 0)
        return false;
    buf[n] = 0;
    for (char *l = buf; *l;) {
        char *e = strchr(l, '\n');
        if (!e)
            break; /* a command is one short line */
        *e = 0;
        if (strstr(l, "\"execute\"")) {
            qmp_put(c, "{\"return\": {}}\n");
            if (strstr(l, "\"quit\""))
                exit(0);
        }
        l = e + 1;
    }
    return true;
}

int main(int argc, char **argv)
{
    const char *path = NULL, *qmp = NULL;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--socket") && i + 1 < argc) {
            path = argv[++i];
        } else if (!strcmp(argv[i], "--qmp") && i + 1 < argc) {
            qmp = argv[++i];
        } else if (!strcmp(argv[i], "--bug") && i + 1 < argc) {
            const char *b = argv[++i];
            if (!strcmp(b, "crash"))
                bug.crash = true;
            else if (!strcmp(b, "abort"))
                bug.abort_on_iotlb = true;
            else if (!strcmp(b, "hang"))
                bug.hang = true;
            else if (!strcmp(b, "badid"))
                bug.badid = true;
            else {
                fprintf(stderr, "toy_frontend: unknown bug '%s'\n", b);
                usage(stderr);
                return 2;
            }
        } else if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h")) {
            usage(stdout);
            return 0;
        } else {
            usage(stderr);
            return 2;
        }
    }
    if (!path) {
        usage(stderr);
        return 2;
    }
    struct sigaction sa = {.sa_handler = on_term};
    sigaction(SIGTERM, &sa, NULL); /* no SA_RESTART: a blocking read returns */
    signal(SIGPIPE, SIG_IGN);
    struct sockaddr_un un = {.sun_family = AF_UNIX};
    if (strlen(path) >= sizeof un.sun_path) {
        fprintf(stderr, "toy_frontend: socket path too long\n");
        return 2;
    }
    strcpy(un.sun_path, path);
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0 || connect(fd, (struct sockaddr *)&un, sizeof un)) {
        perror("toy_frontend: connect");
        return 2;
    }
    send_msg(fd, GET_FEATURES, 0, NULL, 0, -1);
    uint64_t features = reply_u64(fd, GET_FEATURES);
    if (!(features & (1ull << 30)))
        give_up("no PROTOCOL_FEATURES");
    send_msg(fd, GET_PROTOCOL_FEATURES, 0, NULL, 0, -1);
    uint64_t proto = reply_u64(fd, GET_PROTOCOL_FEATURES) & (P_REPLY_ACK | P_BACKEND_REQ);
    request_u64(fd, SET_PROTOCOL_FEATURES, 0, proto, -1);
    send_msg(fd, SET_OWNER, 0, NULL, 0, -1);
    request_u64(fd, SET_FEATURES, 0, features & VIRTIO_FEATURES, -1);
    int be = -1;
    if (proto & P_BACKEND_REQ) {
        int sv[2];
        if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv))
            give_up("no socket pair");
        bool ack = proto & P_REPLY_ACK;
        send_msg(fd, SET_BACKEND_REQ_FD, ack ? F_NEED_REPLY : 0, NULL, 0, sv[1]);
        close(sv[1]);
        be = sv[0];
        if (ack && reply_u64(fd, SET_BACKEND_REQ_FD) != 0)
            give_up("SET_BACKEND_REQ_FD refused");
    }
    int ql = qmp ? qmp_listen(qmp) : -1, qc = -1;
    if (qmp && ql < 0)
        return 2;
    while (!terminated) {
        struct pollfd pf[4] = {{.fd = fd, .events = POLLIN},
                               {.fd = be, .events = POLLIN},
                               {.fd = ql, .events = POLLIN},
                               {.fd = qc, .events = POLLIN}};
        if (poll(pf, 4, -1) < 0)
            continue; /* EINTR: SIGTERM */
        if (ql >= 0 && (pf[2].revents & POLLIN) && qc < 0) {
            qc = accept4(ql, NULL, NULL, SOCK_CLOEXEC);
            if (qc >= 0)
                qmp_put(qc, "{\"QMP\": {\"version\": {}, \"capabilities\": []}}\n");
        }
        if (qc >= 0 && pf[3].revents && !qmp_serve(qc)) {
            close(qc);
            qc = -1;
        }
        if (pf[0].revents) {
            uint8_t b[HDR];
            ssize_t n = recv(fd, b, sizeof b, MSG_PEEK);
            if (n <= 0)
                return 0; /* the back-end closed the main channel */
            give_up("a message nobody asked for on the main channel");
        }
        if (be >= 0 && pf[1].revents && !serve_backend(be)) {
            close(be);
            be = -1;
        }
    }
    return 0;
}
