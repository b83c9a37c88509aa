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

/* n messages with random ids and payloads into stream (one in big_one
 * has big_min + rnd(big_spread) payload bytes, the others rnd(small));
 * returns the length. */
static size_t make_stream(uint8_t *stream, size_t cap, int n, uint32_t big_one, uint32_t big_min,
                          uint32_t big_spread, uint32_t small)
{
    size_t len = 0;
    for (int m = 0; m < n && len + 12 < cap; m++) {
        uint32_t size = rnd(big_one) == 0 ? big_min + rnd(big_spread) : rnd(small);
        if (len + 12 + size > cap)
            size = (uint32_t)(cap - len - 12);
        uint32_t hdr[3] = {1 + rnd(40), 1, size};
        memcpy(stream + len, hdr, 12);
        len += 12;
        for (uint32_t i = 0; i < size; i++)
            stream[len++] = (uint8_t)rnd(256);
    }
    return len;
}

/* One write of w bytes with nfds fresh fds (identities from *id on), the
 * same into the socket and into the framer. */
static void write_both(int sock, vuf_framer *f, const uint8_t *buf, size_t w, size_t nfds,
                       unsigned *id)
{
    int fds[40], dups[40];
    for (size_t i = 0; i < nfds; i++) {
        fds[i] = ident_fd((*id)++);
        dups[i] = fcntl(fds[i], F_DUPFD_CLOEXEC, 0);
    }
    CHECK(vuf_send_msg(sock, buf, w, fds, nfds, 1000) == VUF_IO_OK, "send");
    CHECK(vuf_framer_write(f, buf, w, dups, NULL, nfds) == VUF_IO_OK, "framer write");
    for (size_t i = 0; i < nfds; i++)
        close(fds[i]);
}

/* ---- a relay between writer and reader (vuf_recv_segment) ---- */

typedef struct {
    int in, out;               /* the relay's ends: it reads in, writes out */
    size_t pos;                /* stream offset of the next byte it reads */
    size_t fd_at[512], nfd_at; /* where the writes with fds start */
    unsigned segments, fd_segments, misplaced;
    bool eof;
} relay;

/* Forward everything there is, segment by segment; at EOF, close. */
static void relay_run(relay *r)
{
    static uint8_t buf[65536];
    while (!r->eof) {
        vuf_segment seg;
        vuf_io_status st = vuf_recv_segment(r->in, buf, sizeof buf, &seg);
        if (st == VUF_IO_EOF) {
            r->eof = true;
            close(r->out);
            r->out = -1;
            return;
        }
        if (st != VUF_IO_OK)
            return;
        r->segments++;
        if (seg.nfds) {
            r->fd_segments++;
            bool known = false;
            for (size_t i = 0; i < r->nfd_at; i++)
                known |= r->fd_at[i] == r->pos + seg.fd_at;
            r->misplaced += !known;
        }
        CHECK(vuf_send_segment(r->out, buf, &seg, 1000) == VUF_IO_OK, "fwd");
        vuf_close_fds(seg.fds, &seg.nfds);
        r->pos += seg.len;
    }
}

static unsigned relay_segments, relay_fd_segments;

/* One random scenario; returns the number of reads compared. relay: 0 the
 * reader reads the writer's socket; 1 a relay between them forwards it all
 * at the end; 2 after every write. */
static int scenario(unsigned seed, int via)
{
    rng = 0x9e3779b97f4a7c15ull ^ ((uint64_t)seed * 0x100000001b3ull);
    int sv[2], rv[2] = {-1, -1};
    CHECK(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) == 0, "socketpair");
    relay r = {.in = sv[1], .out = -1};
    if (via) {
        CHECK(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, rv) == 0, "socketpair");
        r.out = rv[0];
    }
    int reader = via ? rv[1] : sv[1];
    vuf_framer *f = vuf_framer_new();
    /* a stream of messages, some with odd sizes, cut at random places into
     * writes, some writes carrying fds */
    uint8_t stream[16384];
    size_t len = make_stream(stream, sizeof stream, 1 + (int)rnd(6), 8, 4096, 600, 300);
    if (rnd(4) == 0 && len > 3)
        len -= 1 + rnd(len > 20 ? 20 : (uint32_t)len - 1); /* a cut message at the end */
    unsigned id = 1;
    for (size_t off = 0; off < len;) {
        size_t w = rnd(3) == 0 ? 1 + rnd(14) : 1 + rnd(600);
        if (w > len - off)
            w = len - off;
        size_t nfds = rnd(3) == 0 ? (rnd(10) == 0 ? 33 + rnd(6) : 1 + rnd(4)) : 0;
        write_both(sv[0], f, stream + off, w, nfds, &id);
        if (nfds && r.nfd_at < 512)
            r.fd_at[r.nfd_at++] = off;
        off += w;
        if (via == 2)
            relay_run(&r);
    }
    bool closed = rnd(2);
    if (closed) {
        close(sv[0]);
        sv[0] = -1;
        vuf_framer_close(f);
    }
    if (via) {
        relay_run(&r);
        CHECK(r.eof == closed, "seed %u: the relay saw the close as it was", seed);
        CHECK_EQ(r.misplaced, 0, "seed %u: fds forwarded where they rode", seed);
        relay_segments += r.segments;
        relay_fd_segments += r.fd_segments;
    }
    int reads = 0;
    for (int k = 0; k < 40; k++) {
        uint8_t p1[4096], p2[4096];
        vuf_rx_msg a = {.payload = p1, .payload_cap = sizeof p1};
        vuf_rx_msg b = {.payload = p2, .payload_cap = sizeof p2};
        reading ra, rb;
        memset(&ra, 0, sizeof ra);
        memset(&rb, 0, sizeof rb);
        record(&ra, vuf_recv_msg(reader, &a, 0), &a);
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
    if (r.out >= 0)
        close(r.out);
    if (rv[1] >= 0)
        close(rv[1]);
    vuf_framer_free(f);
    return reads;
}

VUF_TEST(against_the_kernel)
{
    int reads = 0;
    for (unsigned seed = 1; seed <= 400; seed++)
        reads += scenario(seed, 0);
    CHECK(reads > 1000, "%d reads compared", reads);
    /* the scenarios reach every rule */
    static const vuf_io_status want[] = {VUF_IO_OK,      VUF_IO_EOF,    VUF_IO_SHORT,
                                         VUF_IO_TIMEOUT, VUF_IO_CTRUNC, VUF_IO_OVERSIZE};
    for (size_t i = 0; i < sizeof want / sizeof want[0]; i++)
        CHECK(seen_status[want[i]] > 0, "status %s reached", vuf_io_status_name(want[i]));
    CHECK(seen_fds > 50, "%u messages arrived with fds", seen_fds);
}

/* ---- live: drained after every write, compared as events ----
 * What the endpoint makes of each read (vuf_endpoint_recv): a message
 * (whole, or what arrived of it) and the close. A live framer read after
 * every write must give the same events as the kernel read once at the
 * end; only an unclosed stream's unfinished tail differs (the live reader
 * waits for it). */
typedef struct {
    bool close;
    size_t len, nfds;
    uint8_t bytes[VUF_HDR_SIZE + 4096];
    long ids[VUF_MAX_FDS];
} event;

#define MAX_EVENTS 64

typedef struct {
    event ev[MAX_EVENTS];
    size_t n;
} events;

/* Append what one read gives; false once nothing more will come. */
static bool to_events(events *e, vuf_io_status st, vuf_rx_msg *m, const uint8_t *payload)
{
    size_t len = m->hdr_len + (m->hdr_len == VUF_HDR_SIZE ? m->payload_len : 0);
    bool msg = st == VUF_IO_OK || st == VUF_IO_CTRUNC || st == VUF_IO_OVERSIZE ||
               st == VUF_IO_SHORT || (st == VUF_IO_TIMEOUT && m->hdr_len);
    if (msg && e->n < MAX_EVENTS) {
        event *v = &e->ev[e->n++];
        memset(v, 0, sizeof *v);
        v->len = len;
        memcpy(v->bytes, m->hdr, m->hdr_len);
        if (m->hdr_len == VUF_HDR_SIZE)
            memcpy(v->bytes + VUF_HDR_SIZE, payload, m->payload_len);
        v->nfds = m->nfds;
        for (size_t i = 0; i < m->nfds; i++)
            v->ids[i] = ident_of(m->fds[i]);
    }
    vuf_close_fds(m->fds, &m->nfds);
    if ((st == VUF_IO_EOF || st == VUF_IO_SHORT) && e->n < MAX_EVENTS) {
        memset(&e->ev[e->n], 0, sizeof e->ev[0]);
        e->ev[e->n++].close = true;
    }
    return st == VUF_IO_OK || st == VUF_IO_CTRUNC || st == VUF_IO_OVERSIZE;
}

static bool same_event(const event *a, const event *b)
{
    return a->close == b->close && a->len == b->len && a->nfds == b->nfds &&
           !memcmp(a->bytes, b->bytes, a->len) && !memcmp(a->ids, b->ids, a->nfds * sizeof(long));
}

static void drain_live(vuf_framer *f, events *e)
{
    for (;;) {
        uint8_t p[4096];
        vuf_rx_msg m = {.payload = p, .payload_cap = sizeof p};
        vuf_io_status st = vuf_framer_next(f, &m, NULL);
        CHECK(st != VUF_IO_TIMEOUT || m.hdr_len == 0, "live: a wait consumes nothing");
        if (!to_events(e, st, &m, p))
            return;
    }
}

static unsigned live_oversize_cut;

static void live_scenario(unsigned seed)
{
    rng = 0x51ed2701a3b4c5d6ull ^ ((uint64_t)seed * 0x100000001b3ull);
    int sv[2];
    CHECK(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) == 0, "socketpair");
    vuf_framer *f = vuf_framer_new();
    vuf_framer_set_live(f, true);
    uint8_t stream[12000];
    /* sizes past the reader's 4096 bytes: oversize, dropped as they come */
    size_t len = make_stream(stream, sizeof stream, 1 + (int)rnd(8), 6, 4097, 3000, 200);
    if (rnd(3) == 0 && len > 3)
        len -= 1 + rnd(len > 3000 ? 3000 : (uint32_t)len - 1); /* cut short */
    events live = {.n = 0};
    unsigned id = 1;
    for (size_t off = 0; off < len;) {
        size_t w = rnd(3) == 0 ? 1 + rnd(14) : 1 + rnd(900);
        if (w > len - off)
            w = len - off;
        size_t nfds = rnd(4) == 0 ? (rnd(12) == 0 ? 33 + rnd(4) : 1 + rnd(3)) : 0;
        write_both(sv[0], f, stream + off, w, nfds, &id);
        off += w;
        drain_live(f, &live);
    }
    bool closed = rnd(2);
    if (closed) {
        close(sv[0]);
        sv[0] = -1;
        vuf_framer_close(f);
        drain_live(f, &live);
    }
    events kern = {.n = 0};
    for (int k = 0; k < 40; k++) {
        uint8_t p[4096];
        vuf_rx_msg m = {.payload = p, .payload_cap = sizeof p};
        vuf_io_status st = vuf_recv_msg(sv[1], &m, 0);
        bool more = to_events(&kern, st, &m, p);
        if (st == VUF_IO_SHORT && m.hdr_len == VUF_HDR_SIZE && !m.payload_len)
            live_oversize_cut++;
        if (!more)
            break;
    }
    if (!closed && kern.n > live.n)
        kern.n--; /* the unfinished tail the live reader waits for */
    CHECK_EQ(live.n, kern.n, "seed %u: as many events", seed);
    for (size_t i = 0; i < live.n && i < kern.n; i++) {
        CHECK(same_event(&live.ev[i], &kern.ev[i]),
              "seed %u event %zu: live %s %zu bytes %zu fds, "
              "kernel %s %zu bytes %zu fds",
              seed, i, live.ev[i].close ? "close" : "msg", live.ev[i].len, live.ev[i].nfds,
              kern.ev[i].close ? "close" : "msg", kern.ev[i].len, kern.ev[i].nfds);
        if (!same_event(&live.ev[i], &kern.ev[i]))
            break;
    }
    if (sv[0] >= 0)
        close(sv[0]);
    close(sv[1]);
    vuf_framer_free(f);
}

VUF_TEST(live_against_the_kernel)
{
    for (unsigned seed = 1; seed <= 300; seed++)
        live_scenario(seed);
    CHECK(live_oversize_cut > 0, "an oversize message cut short was met (%u)", live_oversize_cut);
}

VUF_TEST(live_memory_stays_bounded)
{
    /* a stream of messages whose every write ends mid-message: what was read
     * is compacted away, and an oversize payload is not held */
    vuf_framer *f = vuf_framer_new();
    vuf_framer_set_live(f, true);
    uint8_t msg[12 + 100];
    uint32_t hdr[3] = {1, 1, 100};
    memcpy(msg, hdr, 12);
    memset(msg + 12, 0xab, 100);
    size_t got = 0, off = 0;
    /* every write ends 5 bytes into the next message's header: the reader
     * always waits for the rest of one */
    for (int i = 0; i <= 20000; i++) {
        uint8_t w[sizeof msg];
        size_t n = i ? sizeof msg : 5;
        for (size_t k = 0; k < n; k++, off++)
            w[k] = msg[off % sizeof msg];
        CHECK(vuf_framer_write(f, w, n, NULL, NULL, 0) == VUF_IO_OK, "write");
        for (;;) {
            uint8_t p[4096];
            vuf_rx_msg m = {.payload = p, .payload_cap = sizeof p};
            if (vuf_framer_next(f, &m, NULL) != VUF_IO_OK)
                break;
            got += m.payload_len == 100;
        }
    }
    CHECK_EQ(vuf_framer_pending(f), 5, "5 bytes wait");
    CHECK(vuf_framer_write(f, msg + 5, sizeof msg - 5, NULL, NULL, 0) == VUF_IO_OK, "the rest");
    uint8_t p0[4096];
    vuf_rx_msg m0 = {.payload = p0, .payload_cap = sizeof p0};
    got += vuf_framer_next(f, &m0, NULL) == VUF_IO_OK;
    CHECK_EQ(got, 20001, "every message framed");
    CHECK(vuf_framer_at_boundary(f), "at a boundary");
    CHECK(vuf_framer_footprint(f) < 4096, "%zu bytes held after 2.2 MB went through",
          vuf_framer_footprint(f));
    /* a 4 GiB payload announced: given at once, then dropped as it comes */
    uint32_t big[3] = {2, 1, 0xffffffffu};
    CHECK(vuf_framer_write(f, big, 12, NULL, NULL, 0) == VUF_IO_OK, "header");
    uint8_t p[4096];
    vuf_rx_msg m = {.payload = p, .payload_cap = sizeof p};
    CHECK_EQ(vuf_framer_next(f, &m, NULL), VUF_IO_OVERSIZE, "given at once");
    static uint8_t chunk[65536];
    for (int i = 0; i < 256; i++) {
        vuf_framer_write(f, chunk, sizeof chunk, NULL, NULL, 0);
        CHECK_EQ(vuf_framer_next(f, &m, NULL), VUF_IO_TIMEOUT, "dropping");
        CHECK_EQ(vuf_framer_pending(f), 0, "nothing held");
    }
    CHECK(vuf_framer_footprint(f) < 256 * 1024, "%zu bytes held after 16 MiB dropped",
          vuf_framer_footprint(f));
    CHECK(!vuf_framer_at_boundary(f), "inside the dropped payload");
    vuf_framer_free(f);
}

/* Through a relay that forwards segment by segment, the reader frames what
 * it would have framed reading the writer: the same reads as the framer
 * (which is the kernel's, against_the_kernel). */
VUF_TEST(a_relay_is_transparent)
{
    int reads = 0;
    for (unsigned seed = 1; seed <= 400; seed++)
        reads += scenario(seed, seed % 2 ? 1 : 2);
    CHECK(reads > 1000, "%d reads compared", reads);
    CHECK(relay_fd_segments > 100, "%u of %u segments carried fds", relay_fd_segments,
          relay_segments);
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
