/* SPDX-License-Identifier: Apache-2.0 */
/* vuf_framer against the kernel: the same writes go into a real Unix socket
 * pair (read with vuf_recv_msg, 0 ms deadline) and into a framer; every read
 * must give the same status, the same header and payload bytes and the same
 * fds (told apart by the size of the memfd each one is). */
#include "vuf_framer.h"
#include "vuf_test.h"
#include "vuf_transport.h"

#include <errno.h>
#include <fcntl.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

static uint64_t rng = 0x9e3779b97f4a7c15ull;
static uint32_t rnd(uint32_t n)
{
    rng ^= rng << 13;
    rng ^= rng >> 7;
    rng ^= rng << 17;
    return n ? (uint32_t)(rng % n) : 0;
}

/* An fd whose identity is its size. */
static int ident_fd(unsigned id)
{
    int fd = memfd_create("vuf-framer-test", MFD_CLOEXEC);
    if (fd >= 0 && ftruncate(fd, id))
        close(fd);
    return fd;
}

static long ident_of(int fd)
{
    struct stat st;
    return fstat(fd, &st) ? -1 : (long)st.st_size;
}

static unsigned seen_status[VUF_IO_ERROR + 1], seen_fds;

typedef struct {
    vuf_io_status st;
    uint8_t hdr[VUF_HDR_SIZE];
    size_t hdr_len, payload_len, nfds;
    uint8_t payload[4096];
    long ids[VUF_MAX_FDS];
} reading;

static void record(reading *r, vuf_io_status st, vuf_rx_msg *m)
{
    r->st = st;
    memcpy(r->hdr, m->hdr, sizeof r->hdr);
    r->hdr_len = m->hdr_len;
    r->payload_len = m->payload_len;
    r->nfds = m->nfds;
    for (size_t i = 0; i < m->nfds; i++)
        r->ids[i] = ident_of(m->fds[i]);
    vuf_close_fds(m->fds, &m->nfds);
}

/* One random scenario; returns the number of reads compared. */
static int scenario(unsigned seed)
{
    rng = 0x9e3779b97f4a7c15ull ^ ((uint64_t)seed * 0x100000001b3ull);
    int sv[2];
    CHECK(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) == 0, "socketpair");
    vuf_framer *f = vuf_framer_new();
    /* a stream of messages, some with odd sizes, cut at random places into
     * writes, some writes carrying fds */
    uint8_t stream[16384];
    size_t len = 0;
    int nmsg = 1 + (int)rnd(6);
    for (int m = 0; m < nmsg && len + 12 < sizeof stream; m++) {
        uint32_t size = rnd(8) == 0 ? 4096 + rnd(600) : rnd(300);
        if (len + 12 + size > sizeof stream)
            size = (uint32_t)(sizeof stream - len - 12);
        uint32_t hdr[3] = {1 + rnd(40), 1, size};
        memcpy(stream + len, hdr, 12);
        len += 12;
        for (uint32_t i = 0; i < size; i++)
            stream[len++] = (uint8_t)rnd(256);
    }
    if (rnd(4) == 0 && len > 3)
        len -= 1 + rnd(len > 20 ? 20 : (uint32_t)len - 1); /* a cut message at the end */
    unsigned id = 1;
    for (size_t off = 0; off < len;) {
        size_t w = rnd(3) == 0 ? 1 + rnd(14) : 1 + rnd(600);
        if (w > len - off)
            w = len - off;
        size_t nfds = rnd(3) == 0 ? (rnd(10) == 0 ? 33 + rnd(6) : 1 + rnd(4)) : 0;
        int fds[40], dups[40];
        for (size_t i = 0; i < nfds; i++) {
            fds[i] = ident_fd(id++);
            dups[i] = fcntl(fds[i], F_DUPFD_CLOEXEC, 0);
        }
        CHECK(vuf_send_msg(sv[0], stream + off, w, fds, nfds, 1000) == VUF_IO_OK, "send");
        CHECK(vuf_framer_write(f, stream + off, w, dups, NULL, nfds) == VUF_IO_OK, "framer write");
        for (size_t i = 0; i < nfds; i++)
            close(fds[i]);
        off += w;
    }
    bool closed = rnd(2);
    if (closed) {
        close(sv[0]);
        sv[0] = -1;
        vuf_framer_close(f);
    }
    int reads = 0;
    for (int k = 0; k < 40; k++) {
        uint8_t p1[4096], p2[4096];
        vuf_rx_msg a = {.payload = p1, .payload_cap = sizeof p1};
        vuf_rx_msg b = {.payload = p2, .payload_cap = sizeof p2};
        reading ra, rb;
        memset(&ra, 0, sizeof ra);
        memset(&rb, 0, sizeof rb);
        record(&ra, vuf_recv_msg(sv[1], &a, 0), &a);
        memcpy(ra.payload, p1, ra.payload_len);
        record(&rb, vuf_framer_next(f, &b, NULL), &b);
        memcpy(rb.payload, p2, rb.payload_len);
        reads++;
        bool same = ra.st == rb.st && ra.hdr_len == rb.hdr_len &&
                    ra.payload_len == rb.payload_len && ra.nfds == rb.nfds &&
                    !memcmp(ra.hdr, rb.hdr, ra.hdr_len) &&
                    !memcmp(ra.payload, rb.payload, ra.payload_len) &&
                    !memcmp(ra.ids, rb.ids, ra.nfds * sizeof ra.ids[0]);
        CHECK(same,
              "seed %u read %d: socket %s hdr %zu payload %zu fds %zu (first id %ld); framer %s "
              "hdr %zu payload %zu fds %zu (first id %ld)",
              seed, k, vuf_io_status_name(ra.st), ra.hdr_len, ra.payload_len, ra.nfds,
              ra.nfds ? ra.ids[0] : -1, vuf_io_status_name(rb.st), rb.hdr_len, rb.payload_len,
              rb.nfds, rb.nfds ? rb.ids[0] : -1);
        if (!same)
            break;
        seen_status[ra.st]++;
        seen_fds += ra.nfds > 0;
        /* past a partial read the stream is out of sync: both stop there */
        if (ra.st == VUF_IO_EOF || ra.st == VUF_IO_SHORT || ra.st == VUF_IO_ERROR ||
            (ra.st == VUF_IO_TIMEOUT))
            break;
    }
    if (sv[0] >= 0)
        close(sv[0]);
    close(sv[1]);
    vuf_framer_free(f);
    return reads;
}

VUF_TEST(against_the_kernel)
{
    int reads = 0;
    for (unsigned seed = 1; seed <= 400; seed++)
        reads += scenario(seed);
    CHECK(reads > 1000, "%d reads compared", reads);
    /* the scenarios reach every rule */
    static const vuf_io_status want[] = {VUF_IO_OK,      VUF_IO_EOF,    VUF_IO_SHORT,
                                         VUF_IO_TIMEOUT, VUF_IO_CTRUNC, VUF_IO_OVERSIZE};
    for (size_t i = 0; i < sizeof want / sizeof want[0]; i++)
        CHECK(seen_status[want[i]] > 0, "status %s reached", vuf_io_status_name(want[i]));
    CHECK(seen_fds > 50, "%u messages arrived with fds", seen_fds);
}

VUF_TEST(sendmsg_refusals)
{
    vuf_framer *f = vuf_framer_new();
    int fd = ident_fd(1);
    errno = 0;
    CHECK(vuf_framer_write(f, NULL, 0, &fd, NULL, 1) == VUF_IO_ERROR && errno == EINVAL,
          "fds without a byte are refused");
    int many[VUF_SEND_MAX_FDS + 1];
    for (size_t i = 0; i < VUF_SEND_MAX_FDS + 1; i++)
        many[i] = fd;
    CHECK(vuf_framer_write(f, "x", 1, many, NULL, VUF_SEND_MAX_FDS + 1) == VUF_IO_ERROR,
          "more than SCM_MAX_FD fds are refused");
    CHECK(ident_of(fd) == 1, "a refused write does not take its fds");
    CHECK(vuf_framer_pending(f) == 0, "nothing queued");
    vuf_framer_close(f);
    CHECK(vuf_framer_write(f, "x", 1, NULL, NULL, 0) == VUF_IO_ERROR && errno == EPIPE,
          "a write after close: EPIPE");
    close(fd);
    vuf_framer_free(f);
}

VUF_TEST(held_fds_are_closed)
{
    int before = vuf_test_count_fds();
    vuf_framer *f = vuf_framer_new();
    int fds[3] = {ident_fd(1), ident_fd(2), ident_fd(3)};
    CHECK(vuf_framer_write(f, "abcdef", 6, fds, (const uint8_t *)"\1\2\3", 3) == VUF_IO_OK,
          "write");
    CHECK(vuf_test_count_fds() == before + 3, "held");
    vuf_framer_reset(f);
    CHECK(vuf_test_count_fds() == before, "reset closes them");
    fds[0] = ident_fd(4);
    CHECK(vuf_framer_write(f, "abcdef", 6, fds, NULL, 1) == VUF_IO_OK, "write");
    vuf_framer_free(f);
    CHECK(vuf_test_count_fds() == before, "free closes them");
}

VUF_TEST_MAIN()
