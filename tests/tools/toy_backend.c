/* SPDX-License-Identifier: Apache-2.0 */
/* toy_backend: a small vhost-user back-end with bugs put in on purpose, for
 * the tests of vufuzz's external targets (conform, fuzz, replay, minimize).
 * It is not built on vufuzz's libraries (its own reader, its own replies), so
 * it can be compiled by itself with any compiler, afl-clang-fast included:
 *
 *   toy_backend --socket PATH [--bug NAME]... [--one-shot]
 *
 * It listens on PATH, serves one connection at a time and answers the
 * control plane of a virtio-blk-like device with 2 queues. The bugs:
 *   oob       SET_VRING_NUM, SET_VRING_BASE, GET_VRING_BASE take the ring
 *             index unchecked: an index of 8 or more writes past rings[8]
 *             (a sanitizer reports it; without one, memory is corrupted)
 *   crash     SET_VRING_NUM with num 0 dereferences a NULL ring table
 *             (SIGSEGV)
 *   leak      the fd of SET_VRING_CALL is never closed
 *   hang      GET_VRING_BASE of a ring that was never kicked: no reply
 *   exit      SET_OWNER a second time: the process exits with status 3
 * --one-shot: the process exits (status 0) when its first connection ends.
 */
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
#define NRINGS 8

enum {
    GET_FEATURES = 1,
    SET_FEATURES = 2,
    SET_OWNER = 3,
    RESET_OWNER = 4,
    SET_MEM_TABLE = 5,
    SET_VRING_NUM = 8,
    SET_VRING_ADDR = 9,
    SET_VRING_BASE = 10,
    GET_VRING_BASE = 11,
    SET_VRING_KICK = 12,
    SET_VRING_CALL = 13,
    SET_VRING_ERR = 14,
    GET_PROTOCOL_FEATURES = 15,
    SET_PROTOCOL_FEATURES = 16,
    GET_QUEUE_NUM = 17,
    SET_VRING_ENABLE = 18,
    IOTLB_MSG = 22,
};

#define F_REPLY 0x4u
#define F_NEED_REPLY 0x8u
#define VIRTIO_FEATURES ((1ull << 30) | (1ull << 32)) /* PROTOCOL_FEATURES, VERSION_1 */
#define PROTOCOL_FEATURES ((1ull << 0) | (1ull << 3)) /* MQ, REPLY_ACK */

typedef struct {
    uint32_t num, base;
    bool kicked;
} ring;

static struct {
    bool oob, crash, leak, hang, exit_on_owner, one_shot;
} bug;

static ring rings_store[NRINGS];
static ring *rings = rings_store;
static uint64_t proto_acked;
static bool owned;

static void usage(FILE *f)
{
    fprintf(f, "usage: toy_backend --socket PATH [--bug oob|crash|leak|hang|exit]... "
               "[--one-shot]\n"
               "A vhost-user back-end with bugs put in on purpose (tests only).\n");
}

static bool read_full(int fd, void *buf, size_t len)
{
    size_t got = 0;
    while (got < len) {
        ssize_t n = read(fd, (char *)buf + got, len - got);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            return false;
        got += (size_t)n;
    }
    return true;
}

/* One message: header and fds in one recvmsg, then the payload. */
static bool recv_msg(int fd, uint8_t *hdr, uint8_t *payload, int *fds, size_t *nfds)
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
    while (n < 0 && errno == EINTR);
    if (n <= 0)
        return false;
    *nfds = 0;
    for (struct cmsghdr *c = CMSG_FIRSTHDR(&mh); c; c = CMSG_NXTHDR(&mh, c))
        if (c->cmsg_level == SOL_SOCKET && c->cmsg_type == SCM_RIGHTS)
            for (size_t i = 0; i < (c->cmsg_len - CMSG_LEN(0)) / sizeof(int); i++)
                if (*nfds < MAX_FDS)
                    memcpy(&fds[(*nfds)++], CMSG_DATA(c) + i * sizeof(int), sizeof(int));
    uint32_t size = 0;
    if (n >= HDR || read_full(fd, hdr + n, HDR - (size_t)n)) {
        memcpy(&size, hdr + 8, 4);
        if (size <= MAX_PAYLOAD && read_full(fd, payload, size))
            return true;
    }
    /* the connection is given up: the fds that came with the message too */
    for (size_t i = 0; i < *nfds; i++)
        close(fds[i]);
    *nfds = 0;
    return false;
}

static void reply(int fd, uint32_t req, const void *payload, uint32_t size)
{
    uint8_t b[HDR + 64];
    uint32_t flags = 1 | F_REPLY;
    memcpy(b, &req, 4);
    memcpy(b + 4, &flags, 4);
    memcpy(b + 8, &size, 4);
    memcpy(b + HDR, payload, size);
    ssize_t n = write(fd, b, HDR + size);
    (void)n;
}

static void reply_u64(int fd, uint32_t req, uint64_t v)
{
    reply(fd, req, &v, 8);
}

static void close_fds(int *fds, size_t n)
{
    for (size_t i = 0; i < n; i++)
        close(fds[i]);
}

/* Handle one request; false: close the connection. */
static bool handle(int fd, const uint8_t *hdr, const uint8_t *pl, int *fds, size_t nfds)
{
    uint32_t req, flags, size;
    memcpy(&req, hdr, 4);
    memcpy(&flags, hdr + 4, 4);
    memcpy(&size, hdr + 8, 4);
    uint64_t u64 = 0;
    uint32_t index = 0, num = 0;
    if (size >= 8) {
        memcpy(&u64, pl, 8);
        memcpy(&index, pl, 4);
        memcpy(&num, pl + 4, 4);
    }
    bool ack = (flags & F_NEED_REPLY) && (proto_acked & (1ull << 3));
    uint64_t status = 0;
    if (req != SET_VRING_CALL || !bug.leak) {
        /* no fd is kept (kick and call are not used: no data plane) */
        close_fds(fds, nfds);
        nfds = 0;
    }
    switch (req) {
    case GET_FEATURES:
        reply_u64(fd, req, VIRTIO_FEATURES);
        return true;
    case GET_PROTOCOL_FEATURES:
        reply_u64(fd, req, PROTOCOL_FEATURES);
        return true;
    case GET_QUEUE_NUM:
        reply_u64(fd, req, 2);
        return true;
    case IOTLB_MSG:
        reply_u64(fd, req, 1); /* no IOMMU: a failure, as the reply owed */
        return true;
    case SET_PROTOCOL_FEATURES:
        proto_acked = u64 & PROTOCOL_FEATURES;
        break;
    case SET_OWNER:
        if (owned && bug.exit_on_owner)
            exit(3);
        owned = true;
        break;
    case SET_VRING_NUM:
        if (bug.crash && num == 0)
            rings = NULL; /* the bug: a table dropped on a size of 0 ... */
        if (!bug.oob && index >= NRINGS) {
            status = 1;
            break;
        }
        rings[index].num = num; /* ... and used */
        break;
    case SET_VRING_BASE:
        if (!bug.oob && index >= NRINGS) {
            status = 1;
            break;
        }
        rings[index].base = num;
        break;
    case GET_VRING_BASE: {
        if (!bug.oob && index >= NRINGS) {
            index = 0; /* answered for ring 0: a reply is owed */
        }
        if (bug.hang && !rings[index].kicked)
            return true; /* the bug: the reply never comes */
        uint32_t st[2] = {index, rings[index].base};
        reply(fd, req, st, sizeof st);
        return true;
    }
    case SET_VRING_KICK:
        index = (uint32_t)(u64 & 0xff); /* bit 8: no fd */
        if (index < NRINGS || bug.oob)
            rings[index].kicked = true;
        break;
    case SET_VRING_CALL:
        if (bug.leak)
            nfds = 0; /* the bug: kept and forgotten */
        break;
    case SET_FEATURES:
    case RESET_OWNER:
    case SET_MEM_TABLE:
    case SET_VRING_ADDR:
    case SET_VRING_ERR:
    case SET_VRING_ENABLE:
        break;
    default:
        status = 1; /* not handled: refused */
        break;
    }
    if (ack)
        reply_u64(fd, req, status);
    return true;
}

static void serve(int c)
{
    uint8_t hdr[HDR], pl[MAX_PAYLOAD];
    int fds[MAX_FDS];
    size_t nfds;
    memset(rings_store, 0, sizeof rings_store);
    rings = rings_store;
    proto_acked = 0;
    owned = false;
    while (recv_msg(c, hdr, pl, fds, &nfds))
        if (!handle(c, hdr, pl, fds, nfds))
            break;
    close(c);
}

int main(int argc, char **argv)
{
    const char *path = NULL;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--socket") && i + 1 < argc) {
            path = argv[++i];
        } else if (!strcmp(argv[i], "--bug") && i + 1 < argc) {
            const char *b = argv[++i];
            if (!strcmp(b, "oob"))
                bug.oob = true;
            else if (!strcmp(b, "crash"))
                bug.crash = true;
            else if (!strcmp(b, "leak"))
                bug.leak = true;
            else if (!strcmp(b, "hang"))
                bug.hang = true;
            else if (!strcmp(b, "exit"))
                bug.exit_on_owner = true;
            else {
                fprintf(stderr, "toy_backend: unknown bug '%s'\n", b);
                usage(stderr);
                return 2;
            }
        } else if (!strcmp(argv[i], "--one-shot")) {
            bug.one_shot = true;
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
    signal(SIGPIPE, SIG_IGN);
    struct sockaddr_un sa = {.sun_family = AF_UNIX};
    if (strlen(path) >= sizeof sa.sun_path) {
        fprintf(stderr, "toy_backend: socket path too long\n");
        return 2;
    }
    strcpy(sa.sun_path, path);
    int l = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    unlink(path);
    if (l < 0 || bind(l, (struct sockaddr *)&sa, sizeof sa) || listen(l, 8)) {
        perror("toy_backend: listen");
        return 2;
    }
    for (;;) {
        int c = accept4(l, NULL, NULL, SOCK_CLOEXEC);
        if (c < 0) {
            if (errno == EINTR)
                continue;
            perror("toy_backend: accept");
            return 2;
        }
        if (bug.one_shot) {
            close(l);
            unlink(path);
        }
        serve(c);
        if (bug.one_shot)
            return 0;
    }
}
