/* SPDX-License-Identifier: Apache-2.0 */
/* vuf_relay (monitor/): a front-end and a back-end played here over real
 * socket pairs, the relay between them. What one side writes the other
 * reads unchanged (bytes and fds, malformed ones included), the back-end
 * channel is interposed, a slow side blocks nothing, a side's death is
 * relayed, and the conversation is reported as the relay saw it. */
#include "vuf_codec.h"
#include "vuf_relay.h"
#include "vuf_test.h"
#include "vuf_trace.h"
#include "vuf_transport.h"

#include <errno.h>
#include <fcntl.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#define GET_FEATURES 1
#define SET_VRING_KICK 12
#define SET_BACKEND_REQ_FD 21
#define CONFIG_CHANGE 2 /* on the back-end channel */

typedef struct {
    const vuf_spec *spec;
    char lines[256][160];
    size_t n;
    char notes[8][256];
    size_t nnotes;
} seen;

static void on_event(void *ctx, const vuf_event *ev)
{
    seen *s = ctx;
    if (s->n < 256)
        vuf_trace_format_event(s->spec, ev, s->lines[s->n++], sizeof s->lines[0]);
}

static void on_note(void *ctx, const char *text)
{
    seen *s = ctx;
    if (s->nnotes < 8)
        snprintf(s->notes[s->nnotes++], sizeof s->notes[0], "%s", text);
}

static bool has_line(const seen *s, const char *line)
{
    for (size_t i = 0; i < s->n; i++)
        if (!strcmp(s->lines[i], line))
            return true;
    return false;
}

static int index_of(const seen *s, const char *line)
{
    for (size_t i = 0; i < s->n; i++)
        if (!strcmp(s->lines[i], line))
            return (int)i;
    return -1;
}

static void dump(const seen *s)
{
    for (size_t i = 0; i < s->n; i++)
        printf("  | %s\n", s->lines[i]);
}

typedef struct {
    int fe, be; /* the front-end's and the back-end's ends */
    vuf_relay *r;
    seen s;
    bool ended;
    int poll_ms; /* how long pump waits for something to happen (0: 20) */
} rig;

static void rig_up(rig *g, size_t queue_max)
{
    memset(g, 0, sizeof *g);
    g->s.spec = vuf_spec_default();
    int a[2], b[2];
    CHECK(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, a) == 0, "pair");
    CHECK(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, b) == 0, "pair");
    g->fe = a[0];
    g->be = b[1];
    vuf_relay_opts o = {.spec = g->s.spec,
                        .on_event = on_event,
                        .on_note = on_note,
                        .ctx = &g->s,
                        .queue_max = queue_max,
                        .drain_ms = 200};
    g->r = vuf_relay_new(a[1], b[0], &o);
    CHECK(g->r != NULL, "relay");
}

/* Let the relay work until nothing happens for a little while. */
static void pump(rig *g)
{
    for (int idle = 0; idle < 3 && !g->ended;) {
        vuf_pollset p;
        vuf_pollset_init(&p, g->poll_ms ? g->poll_ms : 20);
        vuf_relay_poll_add(g->r, &p);
        int n = vuf_pollset_wait(&p);
        if (!vuf_relay_dispatch(g->r, &p)) {
            g->ended = true;
            vuf_relay_close(g->r); /* what the monitor does then */
        }
        idle = n > 0 ? 0 : idle + 1;
    }
}

static void rig_down(rig *g)
{
    if (g->r) {
        vuf_relay_close(g->r);
        vuf_relay_free(g->r);
    }
    if (g->fe >= 0)
        close(g->fe);
    if (g->be >= 0)
        close(g->be);
}

static size_t msg(uint8_t *b, uint32_t req, uint32_t flags, const void *pl, uint32_t size)
{
    vuf_hdr h = {.request = req, .flags = flags, .size = size};
    vuf_hdr_encode(&h, b);
    if (size)
        memcpy(b + VUF_HDR_SIZE, pl, size);
    return VUF_HDR_SIZE + size;
}

static vuf_io_status recv_one(int fd, uint8_t *hdr, uint8_t *pl, size_t *plen, int *fds,
                              size_t *nfds)
{
    vuf_rx_msg m = {.payload = pl, .payload_cap = 4096};
    vuf_io_status st = vuf_recv_msg(fd, &m, 1000);
    memcpy(hdr, m.hdr, VUF_HDR_SIZE);
    *plen = m.payload_len;
    *nfds = m.nfds;
    memcpy(fds, m.fds, m.nfds * sizeof(int));
    return st;
}

static ino_t ino_of(int fd)
{
    struct stat st;
    return fstat(fd, &st) ? 0 : st.st_ino;
}

VUF_TEST(messages_and_fds_pass_unchanged)
{
    rig g;
    rig_up(&g, 0);
    uint8_t b[64], hdr[12], pl[4096];
    size_t plen, nfds;
    int fds[VUF_MAX_FDS];
    /* a request, and a kick with an eventfd written in two pieces (the fd
     * rides on the first) */
    CHECK(vuf_send_msg(g.fe, b, msg(b, GET_FEATURES, 1, NULL, 0), NULL, 0, 1000) == VUF_IO_OK, "w");
    int efd = eventfd(0, EFD_CLOEXEC);
    uint64_t u = 0;
    size_t len = msg(b, SET_VRING_KICK, 1, &u, 8);
    CHECK(vuf_send_msg(g.fe, b, 5, &efd, 1, 1000) == VUF_IO_OK, "w");
    pump(&g);
    CHECK(vuf_send_msg(g.fe, b + 5, len - 5, NULL, 0, 1000) == VUF_IO_OK, "w");
    pump(&g);
    CHECK_EQ(recv_one(g.be, hdr, pl, &plen, fds, &nfds), VUF_IO_OK, "the back-end reads");
    CHECK(hdr[0] == GET_FEATURES && plen == 0 && nfds == 0, "GET_FEATURES as sent");
    CHECK_EQ(recv_one(g.be, hdr, pl, &plen, fds, &nfds), VUF_IO_OK, "the back-end reads");
    CHECK(hdr[0] == SET_VRING_KICK && plen == 8 && nfds == 1, "the kick, with its fd");
    CHECK(nfds == 1 && vuf_fd_classify(fds[0]) == VUF_FDKIND_EVENTFD, "an eventfd");
    /* the same eventfd: a count written at one end is read at the other */
    uint64_t one = 1, got = 0;
    CHECK(write(efd, &one, 8) == 8 && nfds == 1 && read(fds[0], &got, 8) == 8 && got == 1,
          "the very eventfd");
    vuf_close_fds(fds, &nfds);
    close(efd);
    uint64_t feats = 0x150000000ull;
    CHECK(vuf_send_msg(g.be, b, msg(b, GET_FEATURES, 5, &feats, 8), NULL, 0, 1000) == VUF_IO_OK,
          "reply");
    pump(&g);
    CHECK_EQ(recv_one(g.fe, hdr, pl, &plen, fds, &nfds), VUF_IO_OK, "the front-end reads");
    CHECK(hdr[0] == GET_FEATURES && hdr[4] == 5 && plen == 8 && !memcmp(pl, &feats, 8), "reply");
    CHECK(has_line(&g.s, "open main"), "opened");
    CHECK(has_line(&g.s, "F>B main GET_FEATURES"), "request seen");
    CHECK(has_line(&g.s, "F>B main SET_VRING_KICK u64=0 fds=eventfd"), "kick seen with its fd");
    CHECK(index_of(&g.s, "B>F main GET_FEATURES reply u64=0x150000000") >
              index_of(&g.s, "F>B main GET_FEATURES"),
          "the reply after the request");
    CHECK_EQ(vuf_relay_fd_count(g.r), 2, "the two sockets only");
    if (g.s.n < 4)
        dump(&g.s);
    rig_down(&g);
}

VUF_TEST(the_backend_channel_is_interposed)
{
    rig g;
    rig_up(&g, 0);
    uint8_t b[64], hdr[12], pl[4096];
    size_t plen, nfds;
    int fds[VUF_MAX_FDS];
    int ch[2];
    CHECK(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, ch) == 0, "pair");
    CHECK(vuf_send_msg(g.fe, b, msg(b, SET_BACKEND_REQ_FD, 1 | 8, NULL, 0), &ch[1], 1, 1000) ==
              VUF_IO_OK,
          "SET_BACKEND_REQ_FD");
    ino_t sent = ino_of(ch[1]);
    close(ch[1]);
    pump(&g);
    CHECK_EQ(recv_one(g.be, hdr, pl, &plen, fds, &nfds), VUF_IO_OK, "the back-end reads it");
    CHECK(hdr[0] == SET_BACKEND_REQ_FD && nfds == 1, "with one fd");
    int bch = nfds == 1 ? fds[0] : -1;
    CHECK(bch >= 0 && vuf_fd_classify(bch) == VUF_FDKIND_SOCKET, "a connected socket");
    CHECK(bch >= 0 && ino_of(bch) != sent, "the relay's own, not the front-end's");
    /* the back-end asks on its channel, the front-end answers */
    CHECK(vuf_send_msg(bch, b, msg(b, CONFIG_CHANGE, 1 | 8, NULL, 0), NULL, 0, 1000) == VUF_IO_OK,
          "back-end request");
    pump(&g);
    CHECK_EQ(recv_one(ch[0], hdr, pl, &plen, fds, &nfds), VUF_IO_OK, "the front-end reads it");
    CHECK(hdr[0] == CONFIG_CHANGE && hdr[4] == 9, "as sent");
    uint64_t zero = 0;
    CHECK(vuf_send_msg(ch[0], b, msg(b, CONFIG_CHANGE, 5, &zero, 8), NULL, 0, 1000) == VUF_IO_OK,
          "reply");
    pump(&g);
    CHECK_EQ(recv_one(bch, hdr, pl, &plen, fds, &nfds), VUF_IO_OK, "the back-end reads the reply");
    CHECK(hdr[0] == CONFIG_CHANGE && hdr[4] == 5 && plen == 8, "as sent");
    int i_req = index_of(&g.s, "F>B main SET_BACKEND_REQ_FD need_reply fds=socket");
    int i_open = index_of(&g.s, "open backend");
    CHECK(i_req >= 0 && i_open == i_req + 1, "open backend right after the request (%d, %d)", i_req,
          i_open);
    CHECK(has_line(&g.s, "B>F backend BACKEND_CONFIG_CHANGE_MSG need_reply"), "request seen");
    CHECK(has_line(&g.s, "F>B backend BACKEND_CONFIG_CHANGE_MSG reply u64=0"), "reply seen");
    CHECK_EQ(vuf_relay_fd_count(g.r), 4, "main and back-end channel sockets");
    /* the back-end closes its channel: the front-end's end sees it closed,
     * the main channel goes on */
    close(bch);
    pump(&g);
    CHECK(has_line(&g.s, "close backend by=B"), "close seen");
    CHECK_EQ(recv_one(ch[0], hdr, pl, &plen, fds, &nfds), VUF_IO_EOF, "relayed as a close");
    CHECK_EQ(vuf_relay_fd_count(g.r), 2, "the channel's sockets closed");
    CHECK(vuf_send_msg(g.fe, b, msg(b, GET_FEATURES, 1, NULL, 0), NULL, 0, 1000) == VUF_IO_OK, "w");
    pump(&g);
    CHECK_EQ(recv_one(g.be, hdr, pl, &plen, fds, &nfds), VUF_IO_OK, "main goes on");
    close(ch[0]);
    if (i_open < 0)
        dump(&g.s);
    rig_down(&g);
}

VUF_TEST(an_odd_backend_channel_passes_as_it_is)
{
    rig g;
    rig_up(&g, 0);
    uint8_t b[64], hdr[12], pl[4096];
    size_t plen, nfds;
    int fds[VUF_MAX_FDS];
    int efd = eventfd(0, EFD_CLOEXEC);
    CHECK(vuf_send_msg(g.fe, b, msg(b, SET_BACKEND_REQ_FD, 1 | 8, NULL, 0), &efd, 1, 1000) ==
              VUF_IO_OK,
          "SET_BACKEND_REQ_FD with an eventfd");
    pump(&g);
    CHECK_EQ(recv_one(g.be, hdr, pl, &plen, fds, &nfds), VUF_IO_OK, "read");
    CHECK(nfds == 1 && vuf_fd_classify(fds[0]) == VUF_FDKIND_EVENTFD, "the eventfd itself");
    uint64_t one = 1, got = 0;
    CHECK(nfds == 1 && write(efd, &one, 8) == 8 && read(fds[0], &got, 8) == 8, "the very one");
    vuf_close_fds(fds, &nfds);
    close(efd);
    CHECK(!has_line(&g.s, "open backend"), "no back-end channel");
    CHECK(g.s.nnotes == 1 && strstr(g.s.notes[0], "relayed as it is"), "a note: %s",
          g.s.nnotes ? g.s.notes[0] : "none");
    /* the front-end's own end of the main connection: the back-end gets
     * its peer's end of its own main connection */
    CHECK(vuf_send_msg(g.fe, b, msg(b, SET_BACKEND_REQ_FD, 1 | 8, NULL, 0), &g.fe, 1, 1000) ==
              VUF_IO_OK,
          "SET_BACKEND_REQ_FD with the main channel");
    pump(&g);
    CHECK_EQ(recv_one(g.be, hdr, pl, &plen, fds, &nfds), VUF_IO_OK, "read");
    uint64_t ino = 0, peer = 0;
    CHECK(vuf_unix_peer_ino(g.be, &ino, &peer) == 0, "peer of the back-end's main socket");
    CHECK(nfds == 1 && (uint64_t)ino_of(fds[0]) == peer, "its peer's end of its main channel");
    vuf_close_fds(fds, &nfds);
    CHECK(!has_line(&g.s, "open backend"), "no back-end channel");
    rig_down(&g);
}

VUF_TEST(malformed_bytes_pass_unchanged_and_a_close_ends_it)
{
    rig g;
    rig_up(&g, 0);
    /* a header announcing 4 GiB, 100 bytes of it, a lone byte, then the
     * front-end goes */
    uint8_t junk[12 + 100];
    msg(junk, 77, 0x1234, NULL, 0);
    uint32_t big = 0xffffffffu;
    memcpy(junk + 8, &big, 4);
    for (int i = 0; i < 100; i++)
        junk[12 + i] = (uint8_t)i;
    CHECK(vuf_send_raw(g.fe, junk, sizeof junk, 1000) == VUF_IO_OK, "junk");
    pump(&g);
    close(g.fe);
    g.fe = -1;
    pump(&g);
    uint8_t got[256];
    ssize_t n = recv(g.be, got, sizeof got, MSG_DONTWAIT);
    CHECK(n == (ssize_t)sizeof junk && !memcmp(got, junk, sizeof junk), "unchanged (%zd bytes)", n);
    CHECK(recv(g.be, got, sizeof got, MSG_DONTWAIT) == 0, "then the close");
    CHECK(has_line(&g.s, "F>B main 77 hdr.flags=0x1234 hdr.size=4294967295"), "flagged as it is");
    CHECK(has_line(&g.s, "close main by=F"), "the close");
    CHECK(g.ended && vuf_relay_closer(g.r) == VUF_SIDE_FRONTEND, "the connection ended");
    rig_down(&g);
}

VUF_TEST(a_slow_reader_blocks_nothing)
{
    rig g;
    rig_up(&g, 64 * 1024);
    /* the back-end reads nothing while the front-end writes 2 MiB */
    static uint8_t big[12 + 4000];
    msg(big, GET_FEATURES, 1, NULL, 0);
    uint32_t size = 4000;
    memcpy(big + 8, &size, 4);
    int fl = fcntl(g.fe, F_GETFL);
    fcntl(g.fe, F_SETFL, fl | O_NONBLOCK);
    size_t wrote = 0;
    for (int i = 0; i < 2000; i++) {
        ssize_t n = send(g.fe, big, sizeof big, MSG_DONTWAIT | MSG_NOSIGNAL);
        if (n > 0)
            wrote += (size_t)n;
        if (n < (ssize_t)sizeof big)
            break; /* the front-end's own socket is full: it waits, as it would */
        pump(&g);
    }
    fcntl(g.fe, F_SETFL, fl);
    CHECK(wrote > 64 * 1024, "%zu bytes written before the front-end's socket filled", wrote);
    /* meanwhile the other direction flows */
    uint8_t b[64], hdr[12], pl[4096];
    size_t plen, nfds;
    int fds[VUF_MAX_FDS];
    uint64_t v = 7;
    CHECK(vuf_send_msg(g.be, b, msg(b, GET_FEATURES, 5, &v, 8), NULL, 0, 1000) == VUF_IO_OK, "w");
    pump(&g);
    CHECK_EQ(recv_one(g.fe, hdr, pl, &plen, fds, &nfds), VUF_IO_OK, "the reply gets through");
    /* the back-end reads it all, every byte once, in order */
    size_t total = 0;
    bool same = true;
    for (;;) {
        pump(&g);
        uint8_t r[65536];
        ssize_t n = recv(g.be, r, sizeof r, MSG_DONTWAIT);
        if (n <= 0)
            break;
        for (ssize_t i = 0; i < n; i++, total++)
            same &= r[i] == big[total % sizeof big];
    }
    CHECK_EQ(total, wrote, "everything arrives");
    CHECK(same, "in order, unchanged");
    rig_down(&g);
}

VUF_TEST(a_dead_backend_is_relayed_as_a_close)
{
    rig g;
    rig_up(&g, 0);
    uint8_t b[64];
    CHECK(vuf_send_msg(g.fe, b, msg(b, GET_FEATURES, 1, NULL, 0), NULL, 0, 1000) == VUF_IO_OK, "w");
    pump(&g);
    close(g.be);
    g.be = -1;
    pump(&g);
    CHECK(g.ended, "the connection ended");
    CHECK(has_line(&g.s, "close main by=B"), "closed by the back-end");
    uint8_t x;
    CHECK(recv(g.fe, &x, 1, MSG_DONTWAIT) == 0, "the front-end sees the close");
    rig_down(&g);
}

VUF_TEST(the_monitor_stopping_closes_both)
{
    rig g;
    rig_up(&g, 0);
    int ch[2];
    uint8_t b[64];
    CHECK(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, ch) == 0, "pair");
    CHECK(vuf_send_msg(g.fe, b, msg(b, SET_BACKEND_REQ_FD, 1, NULL, 0), &ch[1], 1, 1000) ==
              VUF_IO_OK,
          "w");
    close(ch[1]);
    pump(&g);
    vuf_relay_close(g.r);
    CHECK(has_line(&g.s, "close backend by=F") && has_line(&g.s, "close main by=F"),
          "both reported closed");
    uint8_t x;
    CHECK(recv(g.fe, &x, 1, MSG_DONTWAIT) == 0 && recv(ch[0], &x, 1, MSG_DONTWAIT) == 0,
          "the front-end sees both closed");
    CHECK(recv(g.be, &x, 1, MSG_DONTWAIT) > 0, "the back-end got the request");
    CHECK_EQ(vuf_relay_fd_count(g.r), 0, "nothing held");
    close(ch[0]);
    rig_down(&g);
}

/* ---- hostile streams: random bytes and fds both ways ---- */

static uint64_t rng;
static uint32_t rnd(uint32_t n)
{
    rng ^= rng << 13;
    rng ^= rng >> 7;
    rng ^= rng << 17;
    return n ? (uint32_t)(rng % n) : 0;
}

/* One random write on fd: a header now and then (any id, sizes up to 4
 * GiB, SET_BACKEND_REQ_FD with a socket among them), random bytes else,
 * fds now and then. Appends the bytes to sent, counts the fds. */
static void hostile_write(int fd, uint8_t *sent, size_t *nsent, size_t cap, size_t *fds_sent)
{
    uint8_t b[600];
    size_t len = 1 + rnd(sizeof b);
    for (size_t i = 0; i < len; i++)
        b[i] = (uint8_t)rnd(256);
    if (rnd(2) && len >= 12) {
        uint32_t size = rnd(4) ? rnd(100) : rnd(0xffffffffu);
        uint32_t req = rnd(3) ? 1 + rnd(45) : SET_BACKEND_REQ_FD;
        msg(b, req, rnd(4) ? 1 : rnd(0x100), NULL, 0);
        memcpy(b + 8, &size, 4);
    }
    if (*nsent + len > cap)
        return;
    int fds[3], n = rnd(4) ? 0 : 1 + (int)rnd(3), pair[2] = {-1, -1};
    for (int i = 0; i < n; i++)
        fds[i] = eventfd(0, EFD_CLOEXEC);
    if (n && rnd(2) && !socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, pair)) {
        close(fds[0]);
        fds[0] = pair[1];
    }
    if (vuf_send_msg(fd, b, len, fds, (size_t)n, 1000) == VUF_IO_OK) {
        memcpy(sent + *nsent, b, len);
        *nsent += len;
        *fds_sent += (size_t)n;
    }
    for (int i = 0; i < n; i++)
        close(fds[i]);
    if (pair[0] >= 0)
        close(pair[0]);
}

/* Everything there is on fd, as segments: bytes appended, fds counted and
 * closed. */
static void drain_side(int fd, uint8_t *got, size_t *ngot, size_t cap, size_t *fds_got)
{
    static uint8_t buf[65536];
    for (;;) {
        vuf_segment seg;
        if (vuf_recv_segment(fd, buf, sizeof buf, &seg) != VUF_IO_OK)
            return;
        if (*ngot + seg.len <= cap) {
            memcpy(got + *ngot, buf, seg.len);
            *ngot += seg.len;
        }
        *fds_got += seg.nfds;
        vuf_close_fds(seg.fds, &seg.nfds);
    }
}

VUF_TEST(hostile_streams_pass_unchanged)
{
    enum { CAP = 1 << 16 };
    static uint8_t a_sent[CAP], a_got[CAP], b_sent[CAP], b_got[CAP];
    unsigned same = 0, scenarios = 150;
    size_t fds_total = 0;
    for (unsigned seed = 1; seed <= scenarios; seed++) {
        rng = 0x243f6a8885a308d3ull ^ ((uint64_t)seed * 0x9e3779b97f4a7c15ull);
        rig g;
        rig_up(&g, 0);
        g.poll_ms = 1; /* all in this process: what is ready is ready at once */
        size_t as = 0, ag = 0, bs = 0, bg = 0, afs = 0, afg = 0, bfs = 0, bfg = 0;
        for (int w = 0, n = 2 + (int)rnd(30); w < n; w++) {
            if (rnd(3))
                hostile_write(g.fe, a_sent, &as, CAP, &afs);
            else
                hostile_write(g.be, b_sent, &bs, CAP, &bfs);
            if (rnd(2))
                pump(&g);
            drain_side(g.be, a_got, &ag, CAP, &afg);
            drain_side(g.fe, b_got, &bg, CAP, &bfg);
        }
        pump(&g);
        drain_side(g.be, a_got, &ag, CAP, &afg);
        drain_side(g.fe, b_got, &bg, CAP, &bfg);
        bool ok = ag == as && !memcmp(a_got, a_sent, as) && bg == bs &&
                  !memcmp(b_got, b_sent, bs) && afg == afs && bfg == bfs;
        CHECK(ok,
              "seed %u: front-end to back-end %zu of %zu bytes, %zu of %zu fds; back to front "
              "%zu of %zu bytes, %zu of %zu fds",
              seed, ag, as, afg, afs, bg, bs, bfg, bfs);
        same += ok;
        fds_total += afs + bfs;
        rig_down(&g);
    }
    CHECK_EQ(same, scenarios, "every scenario relayed unchanged");
    CHECK(fds_total > 100, "%zu fds went through", fds_total);
}

VUF_TEST_MAIN()
