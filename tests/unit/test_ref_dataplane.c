/* SPDX-License-Identifier: Apache-2.0 */
/* Unit test of the reference device's data plane through its connection
 * layer (reference/conn.c): a test front-end over a real socketpair, with
 * guest memory in a memfd the test maps, eventfds the test keeps, and a disk
 * buffer the test owns.
 *
 * Every scenario opens a fresh device and connection, performs the
 * handshake, hands over the memory and one split virtqueue of 16 entries,
 * writes virtio-blk requests (16-byte header {type, ioprio, sector}, data, a
 * 1-byte status) as descriptor chains into guest memory, kicks, runs one
 * vuf_ref_conn_step(c, 0) and checks what the device did: the used ring, the
 * status byte, the call/err eventfds, the disk, the guest buffers, and that
 * not one byte of guest memory changed outside the device-writable buffers
 * and the used ring. The back-end channel (IOTLB misses, config change
 * notifications) is read from the test's end of its socketpair. fds are
 * counted before and after each scenario. No sleeps: every socket transfer
 * completes before the step that handles it. */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE 1
#endif

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <unistd.h>

#include "vuf_blk.h"
#include "vuf_codec.h"
#include "vuf_ref.h"
#include "vuf_ref_conn.h"
#include "vuf_test.h"
#include "vuf_trace.h"
#include "vuf_transport.h"
#include "vuf_vq.h"

#define S vuf_test_table() /* the built-in table */

/* ---- guest layout ---- */

#define GMEM 0x100000ull          /* 1 MiB of guest memory, gpa 0.. */
#define UVA 0x7f0000000000ull     /* the front-end's user address of gpa 0 */
#define IOVA 0x40000000ull        /* IOVA of gpa 0 under the IOMMU */
#define QSZ 16u                   /* queue size */
#define DESC 0x0000ull            /* descriptor table */
#define AVAIL 0x1000ull           /* avail ring */
#define USED 0x2000ull            /* used ring */
#define INDIRECT 0x3000ull        /* an indirect table */
#define DATA 0x10000ull           /* buffers from here */
#define USED_BYTES (6 + 8 * QSZ)  /* flags, idx, ring, avail_event */
#define AVAIL_BYTES (6 + 2 * QSZ) /* flags, idx, ring, used_event */
#define DISK_SIZE 0x10000ull      /* 128 sectors */
#define LOG_BYTES (GMEM / 0x1000 / 8)

/* ---- bits by the table's names ---- */

static uint64_t P(const char *name)
{
    return vuf_test_feature(S, VUF_SPACE_PROTOCOL, name);
}

static uint64_t V(const char *name)
{
    return vuf_test_feature(S, VUF_SPACE_VIRTIO, name);
}

/* ---- the test front-end ---- */

typedef struct {
    uint64_t features, protocol;
    bool read_only, backend, iommu, no_ring_setup;
} fe_opts;

typedef struct {
    vuf_ref *d;
    vuf_ref_conn *c;
    fe_opts o;
    int sock;            /* the test's end of the main socket */
    int kick, call, err; /* the test's copies of the queue's eventfds */
    int be;              /* the test's end of the back-end channel, or -1 */
    uint8_t *g;          /* guest memory, as the test maps it */
    uint8_t snap[GMEM];  /* guest memory before a kick */
    uint8_t disk[DISK_SIZE];
    uint8_t disk_snap[DISK_SIZE];
    uint64_t ring_base; /* device address of gpa 0 for ring addresses */
    uint64_t buf_base;  /* device address of gpa 0 for descriptor addresses */
    uint16_t avail_idx, used_seen;
    int flushes;
    int fds_before;
} fe;

static void on_flush(void *ctx)
{
    ((fe *)ctx)->flushes++;
}

static void st16(uint8_t *p, uint16_t v)
{
    memcpy(p, &v, 2);
}

static uint16_t ld16(const uint8_t *p)
{
    uint16_t v;
    memcpy(&v, p, 2);
    return v;
}

static uint32_t ld32(const uint8_t *p)
{
    uint32_t v;
    memcpy(&v, p, 4);
    return v;
}

/* One message from a trace line (without "F>B main "), as wire bytes. */
static size_t build(uint8_t *out, size_t cap, const char *text)
{
    char line[1100];
    snprintf(line, sizeof line, "F>B main %s", text);
    vuf_diag diag;
    vuf_trace *t = vuf_trace_new();
    size_t n = 0;
    if (t && vuf_trace_parse_line(t, S, line, 1, "test", &diag) == 1) {
        const vuf_event *ev = vuf_trace_event(t, 0);
        if (ev->len <= cap) {
            memcpy(out, ev->data, ev->len);
            n = ev->len;
        }
    } else {
        printf("FAIL: does not parse: %s: %s\n", text, t ? diag.text : "out of memory");
        vuf_t_fail++;
    }
    vuf_trace_free(t);
    return n;
}

typedef struct {
    bool got;
    vuf_hdr hdr;
    uint8_t pl[VUF_PAYLOAD_MAX];
    size_t len;
    uint64_t u64;
} reply;

/* Receive one message on fd, if one is there now. */
static reply recv_now(int fd)
{
    reply r;
    memset(&r, 0, sizeof r);
    vuf_rx_msg rx;
    memset(&rx, 0, sizeof rx);
    rx.payload = r.pl;
    rx.payload_cap = sizeof r.pl;
    if (vuf_recv_msg(fd, &rx, 0) != VUF_IO_OK)
        return r;
    vuf_close_fds(rx.fds, &rx.nfds);
    r.got = true;
    vuf_hdr_decode(rx.hdr, &r.hdr);
    r.len = rx.payload_len;
    if (r.len >= 8)
        memcpy(&r.u64, r.pl, 8);
    return r;
}

/* Send a message with fds (the test keeps its copies), let the device run
 * one step, and return its reply if `want_reply` (else check none came). */
static reply rpc(fe *f, const int *fds, size_t nfds, bool want_reply, const char *fmt, ...)
    __attribute__((format(printf, 5, 6)));

static reply rpc(fe *f, const int *fds, size_t nfds, bool want_reply, const char *fmt, ...)
{
    char text[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(text, sizeof text, fmt, ap);
    va_end(ap);
    uint8_t buf[VUF_HDR_SIZE + VUF_PAYLOAD_MAX];
    size_t len = build(buf, sizeof buf, text);
    reply r;
    memset(&r, 0, sizeof r);
    if (!len)
        return r;
    CHECK(vuf_send_msg(f->sock, buf, len, fds, nfds, 1000) == VUF_IO_OK, "%s: sent", text);
    CHECK(vuf_ref_conn_step(f->c, 0), "%s: the connection stays open (%s)", text,
          vuf_ref_last_reason(f->d) ? vuf_ref_last_reason(f->d) : "-");
    r = recv_now(f->sock);
    uint32_t id;
    memcpy(&id, buf, 4);
    if (want_reply)
        CHECK(r.got && r.hdr.request == id && r.hdr.flags == (VUF_F_VERSION | VUF_F_REPLY),
              "%s: a reply (got %d id %u flags 0x%x)", text, r.got, r.hdr.request, r.hdr.flags);
    else
        CHECK(!r.got, "%s: no reply (got id %u)", text, r.hdr.request);
    return r;
}

/* An ack-type request with NEED_REPLY: the reply is u64 `want`. */
static void ack(fe *f, const int *fds, size_t nfds, uint64_t want, const char *what,
                const char *text)
{
    if (!(f->o.protocol & P("REPLY_ACK"))) {
        CHECK(want == 0, "%s: a refusal would close the connection without REPLY_ACK", what);
        rpc(f, fds, nfds, false, "%s", text);
        return;
    }
    reply r = rpc(f, fds, nfds, true, "%s", text);
    CHECK(r.len == 8 && r.u64 == want, "%s: u64 %llu, got %llu (%s)", what,
          (unsigned long long)want, (unsigned long long)r.u64,
          vuf_ref_last_reason(f->d) ? vuf_ref_last_reason(f->d) : "-");
}

static int new_eventfd(void)
{
    return eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
}

/* Was the eventfd signalled since the last call? (consumes the count) */
static bool signalled(int fd)
{
    uint64_t v;
    return read(fd, &v, sizeof v) == (ssize_t)sizeof v && v > 0;
}

static void set_vring_addr(fe *f, uint32_t flags, uint64_t log_addr, uint64_t want)
{
    char t[300];
    snprintf(t, sizeof t,
             "SET_VRING_ADDR need_reply index=0 flags=%u desc=0x%llx used=0x%llx avail=0x%llx "
             "log_guest_addr=0x%llx",
             flags, (unsigned long long)(f->ring_base + DESC),
             (unsigned long long)(f->ring_base + USED), (unsigned long long)(f->ring_base + AVAIL),
             (unsigned long long)log_addr);
    ack(f, NULL, 0, want, "SET_VRING_ADDR", t);
}

static fe *fe_open(const fe_opts *o)
{
    fe *f = calloc(1, sizeof *f);
    if (!f) {
        printf("FAIL: out of memory\n");
        exit(1);
    }
    f->fds_before = vuf_test_count_fds();
    f->o = *o;
    f->kick = f->call = f->err = f->be = -1;
    for (size_t i = 0; i < sizeof f->disk; i++)
        f->disk[i] = (uint8_t)(i * 7 + 3);
    vuf_ref_config cfg;
    vuf_ref_config_default(&cfg);
    cfg.disk = f->disk;
    cfg.disk_size = sizeof f->disk;
    cfg.read_only = o->read_only;
    char err[200];
    f->d = vuf_ref_new(S, &cfg, err, sizeof err);
    int sv[2];
    int mfd = memfd_create("vuf-test-guest", MFD_CLOEXEC);
    if (!f->d || socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) || mfd < 0 ||
        ftruncate(mfd, GMEM)) {
        printf("FAIL: set-up: %s %s\n", f->d ? "" : err, strerror(errno));
        exit(1);
    }
    f->g = mmap(NULL, GMEM, PROT_READ | PROT_WRITE, MAP_SHARED, mfd, 0);
    if (f->g == MAP_FAILED) {
        printf("FAIL: mmap: %s\n", strerror(errno));
        exit(1);
    }
    vuf_ref_conn_opts co = {
        .io_timeout_ms = 0, .backend_timeout_ms = -1, .on_flush = on_flush, .ctx = f};
    f->c = vuf_ref_conn_new(f->d, sv[1], &co);
    f->sock = sv[0];
    f->ring_base = o->iommu ? IOVA : UVA;
    f->buf_base = o->iommu ? IOVA : 0;

    reply r = rpc(f, NULL, 0, true, "GET_FEATURES");
    CHECK(r.u64 & V("PROTOCOL_FEATURES"), "GET_FEATURES offers bit 30");
    rpc(f, NULL, 0, true, "GET_PROTOCOL_FEATURES");
    rpc(f, NULL, 0, false, "SET_PROTOCOL_FEATURES u64=0x%llx", (unsigned long long)o->protocol);
    char t[400];
    ack(f, NULL, 0, 0, "SET_OWNER", "SET_OWNER need_reply");
    if (o->backend) {
        int bp[2];
        CHECK(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, bp) == 0, "back-end socketpair");
        ack(f, &bp[1], 1, 0, "SET_BACKEND_REQ_FD", "SET_BACKEND_REQ_FD need_reply");
        close(bp[1]);
        f->be = bp[0];
    }
    snprintf(t, sizeof t, "SET_FEATURES need_reply u64=0x%llx", (unsigned long long)o->features);
    ack(f, NULL, 0, 0, "SET_FEATURES", t);
    snprintf(t, sizeof t,
             "SET_MEM_TABLE need_reply regions[0].guest_addr=0 regions[0].size=0x%llx "
             "regions[0].user_addr=0x%llx regions[0].mmap_offset=0",
             (unsigned long long)GMEM, (unsigned long long)UVA);
    ack(f, &mfd, 1, 0, "SET_MEM_TABLE", t);
    close(mfd);
    if (o->no_ring_setup)
        return f;
    snprintf(t, sizeof t, "SET_VRING_NUM need_reply index=0 num=%u", QSZ);
    ack(f, NULL, 0, 0, "SET_VRING_NUM", t);
    ack(f, NULL, 0, 0, "SET_VRING_BASE", "SET_VRING_BASE need_reply index=0 num=0");
    set_vring_addr(f, 0, 0, 0);
    f->kick = new_eventfd();
    f->call = new_eventfd();
    f->err = new_eventfd();
    ack(f, &f->kick, 1, 0, "SET_VRING_KICK", "SET_VRING_KICK need_reply u64=0");
    ack(f, &f->call, 1, 0, "SET_VRING_CALL", "SET_VRING_CALL need_reply u64=0");
    ack(f, &f->err, 1, 0, "SET_VRING_ERR", "SET_VRING_ERR need_reply u64=0");
    ack(f, NULL, 0, 0, "SET_VRING_ENABLE", "SET_VRING_ENABLE need_reply index=0 num=1");
    return f;
}

static void fe_close(fe *f, const char *name)
{
    vuf_ref_conn_free(f->c);
    vuf_ref_free(f->d);
    close(f->sock);
    if (f->kick >= 0)
        close(f->kick);
    if (f->call >= 0)
        close(f->call);
    if (f->err >= 0)
        close(f->err);
    if (f->be >= 0)
        close(f->be);
    munmap(f->g, GMEM);
    int n = vuf_test_count_fds();
    CHECK(n == f->fds_before, "%s: %d fds open after the scenario, %d before", name, n,
          f->fds_before);
    free(f);
}

/* ---- descriptor chains ---- */

typedef struct {
    uint64_t gpa;
    uint32_t len;
    bool write;
} seg;

static void put_desc(fe *f, uint64_t table, uint16_t i, uint64_t addr, uint32_t len, uint16_t flags,
                     uint16_t next)
{
    uint8_t *p = f->g + table + 16u * i;
    memcpy(p, &addr, 8);
    memcpy(p + 8, &len, 4);
    memcpy(p + 12, &flags, 2);
    memcpy(p + 14, &next, 2);
}

/* Write the segments as a chain: direct from descriptor `first`, or as an
 * indirect table at INDIRECT referenced by descriptor `first`. Returns the
 * head. */
static uint16_t put_chain(fe *f, uint16_t first, const seg *s, size_t n, bool indirect)
{
    uint64_t table = indirect ? INDIRECT : DESC;
    uint16_t base = indirect ? 0 : first;
    for (size_t i = 0; i < n; i++) {
        uint16_t fl = (uint16_t)((s[i].write ? VUF_VRING_DESC_F_WRITE : 0) |
                                 (i + 1 < n ? VUF_VRING_DESC_F_NEXT : 0));
        put_desc(f, table, (uint16_t)(base + i), f->buf_base + s[i].gpa, s[i].len, fl,
                 (uint16_t)(base + i + 1));
    }
    if (indirect)
        put_desc(f, DESC, first, f->buf_base + INDIRECT, (uint32_t)(16 * n),
                 VUF_VRING_DESC_F_INDIRECT, 0);
    return first;
}

static void put_hdr(fe *f, uint64_t gpa, uint32_t type, uint64_t sector)
{
    uint8_t *p = f->g + gpa;
    uint32_t prio = 0;
    memcpy(p, &type, 4);
    memcpy(p + 4, &prio, 4);
    memcpy(p + 8, &sector, 8);
}

static void submit(fe *f, uint16_t head)
{
    st16(f->g + AVAIL + 4 + 2 * (f->avail_idx % QSZ), head);
    __atomic_thread_fence(__ATOMIC_RELEASE);
    f->avail_idx++;
    st16(f->g + AVAIL + 2, f->avail_idx);
}

static void snapshot(fe *f)
{
    memcpy(f->snap, f->g, GMEM);
    memcpy(f->disk_snap, f->disk, DISK_SIZE);
}

/* Kick through the eventfd and let the device run one step. */
static void kick(fe *f)
{
    uint64_t one = 1;
    CHECK(write(f->kick, &one, sizeof one) == (ssize_t)sizeof one, "kick written");
    CHECK(vuf_ref_conn_step(f->c, 0), "the connection stays open after a kick (%s)",
          vuf_ref_last_reason(f->d) ? vuf_ref_last_reason(f->d) : "-");
}

typedef struct {
    uint64_t start, len;
} range;

/* Compare guest memory with the snapshot outside the allowed ranges (the
 * used ring is always allowed). Returns the first changed offset, or -1. */
static long changed_outside(const fe *f, const range *ok, size_t n)
{
    for (uint64_t i = 0; i < GMEM; i++) {
        if (f->g[i] == f->snap[i])
            continue;
        bool allowed = i >= USED && i < USED + USED_BYTES;
        for (size_t k = 0; k < n && !allowed; k++)
            allowed = i >= ok[k].start && i - ok[k].start < ok[k].len;
        if (!allowed)
            return (long)i;
    }
    return -1;
}

/* The next used element is {head, len} (more may follow). */
static void expect_used_next(fe *f, uint16_t head, uint32_t len, const char *what)
{
    uint16_t idx = ld16(f->g + USED + 2);
    const uint8_t *e = f->g + USED + 4 + 8 * (f->used_seen % QSZ);
    CHECK(idx != f->used_seen, "%s: a used element (used idx %u)", what, idx);
    CHECK(ld32(e) == head && ld32(e + 4) == len, "%s: used element {%u, %u}, want {%u, %u}", what,
          ld32(e), ld32(e + 4), head, len);
    f->used_seen++;
}

/* The next used element is {head, len}, and the only new one. */
static void expect_used(fe *f, uint16_t head, uint32_t len, const char *what)
{
    uint16_t idx = ld16(f->g + USED + 2);
    CHECK(idx == (uint16_t)(f->used_seen + 1), "%s: used idx %u, want %u", what, idx,
          f->used_seen + 1);
    expect_used_next(f, head, len, what);
}

static void expect_no_used(fe *f, const char *what)
{
    CHECK(ld16(f->g + USED + 2) == f->used_seen, "%s: no used element (idx %u)", what,
          ld16(f->g + USED + 2));
}

static uint8_t status_at(const fe *f, uint64_t gpa)
{
    return f->g[gpa];
}

static void fill(fe *f, uint64_t gpa, uint64_t len, uint8_t seed)
{
    for (uint64_t i = 0; i < len; i++)
        f->g[gpa + i] = (uint8_t)(seed + i * 13);
}

/* One request: snapshot, submit, kick, then the common checks: the used
 * element, its status, the call eventfd, nothing changed outside the
 * device-writable segments. */
static void run_request(fe *f, uint16_t head, const seg *s, size_t n, uint32_t want_len,
                        uint8_t want_status, const char *what)
{
    range ok[16];
    size_t nok = 0;
    for (size_t i = 0; i < n && nok < 16; i++)
        if (s[i].write)
            ok[nok++] = (range){s[i].gpa, s[i].len};
    uint64_t st = s[n - 1].gpa + s[n - 1].len - 1;
    f->g[st] = 0xee; /* the status byte, so that a write of 0 shows */
    snapshot(f);
    submit(f, head);
    memcpy(f->snap + AVAIL, f->g + AVAIL, AVAIL_BYTES); /* the driver's own writes */
    kick(f);
    expect_used(f, head, want_len, what);
    CHECK(status_at(f, st) == want_status, "%s: status %u, want %u", what, status_at(f, st),
          want_status);
    CHECK(signalled(f->call), "%s: the call eventfd was signalled", what);
    CHECK(!signalled(f->err), "%s: the err eventfd was not signalled", what);
    long at = changed_outside(f, ok, nok);
    CHECK(at < 0, "%s: guest memory changed at gpa 0x%lx, outside the writable buffers", what, at);
}

/* An IN request as an indirect table of n entries: header, n - 2 data
 * segments of 512 bytes, status. */
static size_t long_chain(fe *f, seg *s, size_t n)
{
    s[0] = (seg){0x40000, 16, false};
    for (size_t i = 1; i + 1 < n; i++)
        s[i] = (seg){0x40000 + 0x1000 * i, 512, true};
    s[n - 1] = (seg){0x40000 + 0x1000 * n, 1, true};
    put_hdr(f, 0x40000, VUF_BLK_T_IN, 0);
    put_chain(f, 0, s, n, true);
    return n;
}

/* ---- scenarios ---- */

#define FEATURES (V("VERSION_1") | V("PROTOCOL_FEATURES") | V("RING_INDIRECT_DESC"))
#define PROTO (P("REPLY_ACK") | P("MQ") | P("CONFIG"))

VUF_TEST(blk_requests)
{
    fe_opts o = {.features = FEATURES, .protocol = PROTO};
    fe *f = fe_open(&o);

    /* OUT, direct, data in three segments: sectors 4..5 */
    seg out[] = {{DATA, 16, false},
                 {DATA + 0x1000, 512, false},
                 {DATA + 0x3000, 256, false},
                 {DATA + 0x5000, 256, false},
                 {DATA + 0x7000, 1, true}};
    put_hdr(f, DATA, VUF_BLK_T_OUT, 4);
    fill(f, DATA + 0x1000, 512, 1);
    fill(f, DATA + 0x3000, 256, 2);
    fill(f, DATA + 0x5000, 256, 3);
    run_request(f, put_chain(f, 0, out, 5, false), out, 5, 1, VUF_BLK_S_OK, "OUT");
    CHECK(!memcmp(f->disk + 4 * 512, f->g + DATA + 0x1000, 512) &&
              !memcmp(f->disk + 4 * 512 + 512, f->g + DATA + 0x3000, 256) &&
              !memcmp(f->disk + 4 * 512 + 768, f->g + DATA + 0x5000, 256),
          "OUT: the disk holds the data");
    CHECK(!memcmp(f->disk, f->disk_snap, 4 * 512) &&
              !memcmp(f->disk + 6 * 512, f->disk_snap + 6 * 512, DISK_SIZE - 6 * 512),
          "OUT: the rest of the disk is unchanged");

    /* IN, indirect, into three writable segments: sectors 3..4 */
    seg in[] = {{DATA + 0x8000, 16, false},
                {DATA + 0x9000, 300, true},
                {DATA + 0xa000, 212, true},
                {DATA + 0xb000, 512, true},
                {DATA + 0xc000, 1, true}};
    put_hdr(f, DATA + 0x8000, VUF_BLK_T_IN, 3);
    run_request(f, put_chain(f, 5, in, 5, true), in, 5, 1025, VUF_BLK_S_OK, "IN indirect");
    CHECK(!memcmp(f->g + DATA + 0x9000, f->disk + 3 * 512, 300) &&
              !memcmp(f->g + DATA + 0xa000, f->disk + 3 * 512 + 300, 212) &&
              !memcmp(f->g + DATA + 0xb000, f->disk + 4 * 512, 512),
          "IN: the guest buffers hold sectors 3..4");
    CHECK(!memcmp(f->disk, f->disk_snap, DISK_SIZE), "IN: the disk is unchanged");

    /* GET_ID into a 20-byte buffer */
    seg id[] = {{DATA + 0xd000, 16, false}, {DATA + 0xd100, 20, true}, {DATA + 0xd200, 1, true}};
    put_hdr(f, DATA + 0xd000, VUF_BLK_T_GET_ID, 0);
    run_request(f, put_chain(f, 6, id, 3, false), id, 3, 21, VUF_BLK_S_OK, "GET_ID");
    uint8_t want[20] = {0};
    memcpy(want, VUF_BLK_ID, strlen(VUF_BLK_ID));
    CHECK(!memcmp(f->g + DATA + 0xd100, want, 20), "GET_ID: the id string, zero-padded");

    /* an indirect table of the queue size: the longest chain allowed */
    seg full[QSZ];
    long_chain(f, full, QSZ);
    run_request(f, 0, full, QSZ, (QSZ - 2) * 512 + 1, VUF_BLK_S_OK, "IN, a full-size table");
    for (size_t i = 1; i + 1 < QSZ; i++)
        CHECK(!memcmp(f->g + full[i].gpa, f->disk + (i - 1) * 512, 512),
              "full-size table: segment %zu holds sector %zu", i, i - 1);

    /* FLUSH */
    seg fl[] = {{DATA + 0xe000, 16, false}, {DATA + 0xe100, 1, true}};
    put_hdr(f, DATA + 0xe000, VUF_BLK_T_FLUSH, 0);
    run_request(f, put_chain(f, 9, fl, 2, false), fl, 2, 1, VUF_BLK_S_OK, "FLUSH");
    CHECK(f->flushes == 1, "FLUSH: the on_flush callback ran once (%d)", f->flushes);

    /* the avail ring wrapping past the queue size */
    CHECK(vuf_ref_chains_completed(f->d) == 5, "5 chains completed");
    for (int i = 0; i < 13; i++) {
        seg x[] = {{DATA + 0xf000, 16, false}, {DATA + 0xf100, 1, true}};
        put_hdr(f, DATA + 0xf000, VUF_BLK_T_FLUSH, 0);
        run_request(f, put_chain(f, 11, x, 2, false), x, 2, 1, VUF_BLK_S_OK, "FLUSH again");
    }
    CHECK(f->avail_idx == 18 && vuf_ref_chains_completed(f->d) == 18,
          "the rings wrapped: %u chains", (unsigned)vuf_ref_chains_completed(f->d));
    fe_close(f, "blk requests");
}

VUF_TEST(blk_errors)
{
    fe_opts o = {.features = FEATURES, .protocol = PROTO};
    fe *f = fe_open(&o);
    /* IN past the end of the disk: IOERR, nothing written but the status */
    seg past[] = {{DATA, 16, false}, {DATA + 0x1000, 512, true}, {DATA + 0x2000, 1, true}};
    put_hdr(f, DATA, VUF_BLK_T_IN, DISK_SIZE / 512);
    fill(f, DATA + 0x1000, 512, 9);
    run_request(f, put_chain(f, 0, past, 3, false), past, 3, 1, VUF_BLK_S_IOERR, "IN past end");
    CHECK(!memcmp(f->g + DATA + 0x1000, f->snap + DATA + 0x1000, 512),
          "IN past end: the data buffer is untouched");
    /* straddling the end */
    put_hdr(f, DATA, VUF_BLK_T_IN, DISK_SIZE / 512 - 1);
    seg straddle[] = {{DATA, 16, false}, {DATA + 0x1000, 1024, true}, {DATA + 0x2000, 1, true}};
    run_request(f, put_chain(f, 0, straddle, 3, false), straddle, 3, 1, VUF_BLK_S_IOERR,
                "IN straddling the end");
    /* a huge sector */
    put_hdr(f, DATA, VUF_BLK_T_OUT, 0xffffffffffffffffull);
    seg huge[] = {{DATA, 16, false}, {DATA + 0x1000, 512, false}, {DATA + 0x2000, 1, true}};
    run_request(f, put_chain(f, 0, huge, 3, false), huge, 3, 1, VUF_BLK_S_IOERR, "OUT sector ~0");
    /* not a whole sector */
    put_hdr(f, DATA, VUF_BLK_T_OUT, 0);
    seg part[] = {{DATA, 16, false}, {DATA + 0x1000, 100, false}, {DATA + 0x2000, 1, true}};
    run_request(f, put_chain(f, 0, part, 3, false), part, 3, 1, VUF_BLK_S_IOERR, "OUT 100 bytes");
    /* an unknown type */
    put_hdr(f, DATA, 99, 0);
    seg unk[] = {{DATA, 16, false}, {DATA + 0x2000, 1, true}};
    run_request(f, put_chain(f, 0, unk, 2, false), unk, 2, 1, VUF_BLK_S_UNSUPP, "type 99");
    CHECK(!memcmp(f->disk, f->disk_snap, DISK_SIZE), "errors left the disk unchanged");
    fe_close(f, "blk errors");

    /* a read-only disk refuses OUT */
    o.read_only = true;
    o.features |= 1ull << VUF_BLK_F_RO;
    f = fe_open(&o);
    put_hdr(f, DATA, VUF_BLK_T_OUT, 0);
    fill(f, DATA + 0x1000, 512, 4);
    seg ro[] = {{DATA, 16, false}, {DATA + 0x1000, 512, false}, {DATA + 0x2000, 1, true}};
    run_request(f, put_chain(f, 0, ro, 3, false), ro, 3, 1, VUF_BLK_S_IOERR, "OUT read-only");
    CHECK(!memcmp(f->disk, f->disk_snap, DISK_SIZE), "read-only: the disk is unchanged");
    put_hdr(f, DATA, VUF_BLK_T_IN, 0);
    seg rd[] = {{DATA, 16, false}, {DATA + 0x1000, 512, true}, {DATA + 0x2000, 1, true}};
    run_request(f, put_chain(f, 0, rd, 3, false), rd, 3, 513, VUF_BLK_S_OK, "IN read-only");
    fe_close(f, "blk read-only");
}

/* A chain the driver broke: the queue is broken, the err eventfd signalled,
 * no used element, no byte of guest memory changed. `setup` writes it. */
static void broken_case(const char *what, void (*setup)(fe *f))
{
    fe_opts o = {.features = FEATURES, .protocol = PROTO | P("STATUS")};
    fe *f = fe_open(&o);
    put_hdr(f, DATA, VUF_BLK_T_IN, 0);
    setup(f);
    snapshot(f);
    submit(f, 0);
    memcpy(f->snap + AVAIL, f->g + AVAIL, AVAIL_BYTES);
    kick(f);
    CHECK(vuf_ref_queue_broken(f->d, 0), "%s: the queue is broken", what);
    CHECK(signalled(f->err), "%s: the err eventfd was signalled", what);
    CHECK(!signalled(f->call), "%s: the call eventfd was not signalled", what);
    expect_no_used(f, what);
    CHECK(!memcmp(f->g, f->snap, GMEM), "%s: guest memory unchanged", what);
    CHECK(vuf_ref_chains_completed(f->d) == 0, "%s: no chain completed", what);
    /* a broken queue stays stopped: another kick does nothing */
    kick(f);
    expect_no_used(f, what);
    CHECK(!signalled(f->err), "%s: a second kick signals nothing", what);
    reply r = rpc(f, NULL, 0, true, "GET_STATUS");
    CHECK(r.u64 & 0x40, "%s: GET_STATUS reports DEVICE_NEEDS_RESET", what);
    fe_close(f, what);
}

static void setup_loop(fe *f)
{
    put_desc(f, DESC, 0, DATA, 16, VUF_VRING_DESC_F_NEXT, 1);
    put_desc(f, DESC, 1, DATA + 0x1000, 512, VUF_VRING_DESC_F_NEXT | VUF_VRING_DESC_F_WRITE, 0);
}

static void setup_self_loop(fe *f)
{
    put_desc(f, DESC, 0, DATA, 16, VUF_VRING_DESC_F_NEXT, 0);
}

static void setup_indirect_loop(fe *f)
{
    put_desc(f, INDIRECT, 0, DATA, 16, VUF_VRING_DESC_F_NEXT, 1);
    put_desc(f, INDIRECT, 1, DATA + 0x1000, 1, VUF_VRING_DESC_F_NEXT | VUF_VRING_DESC_F_WRITE, 0);
    put_desc(f, DESC, 0, INDIRECT, 32, VUF_VRING_DESC_F_INDIRECT, 0);
}

static void setup_head_range(fe *f)
{
    seg s[] = {{DATA, 16, false}, {DATA + 0x1000, 1, true}};
    put_chain(f, 0, s, 2, false);
    st16(f->g + AVAIL + 4, QSZ); /* submit() writes the head: patched below */
}

static void setup_outside(fe *f)
{
    seg s[] = {{DATA, 16, false}, {GMEM + 0x1000, 512, true}, {DATA + 0x1000, 1, true}};
    put_chain(f, 0, s, 3, false);
}

static void setup_straddle(fe *f)
{
    seg s[] = {{DATA, 16, false}, {GMEM - 256, 512, true}, {DATA + 0x1000, 1, true}};
    put_chain(f, 0, s, 3, false);
}

static void setup_next_range(fe *f)
{
    put_desc(f, DESC, 0, DATA, 16, VUF_VRING_DESC_F_NEXT, QSZ);
}

static void setup_nested_indirect(fe *f)
{
    put_desc(f, INDIRECT, 0, INDIRECT + 0x100, 32, VUF_VRING_DESC_F_INDIRECT, 0);
    put_desc(f, DESC, 0, INDIRECT, 16, VUF_VRING_DESC_F_INDIRECT, 0);
}

static void setup_no_status(fe *f)
{
    seg s[] = {{DATA, 16, false}};
    put_chain(f, 0, s, 1, false);
}

static void setup_read_after_write(fe *f)
{
    seg s[] = {{DATA, 16, false}, {DATA + 0x1000, 1, true}, {DATA + 0x2000, 16, false}};
    put_chain(f, 0, s, 3, false);
}

static void setup_long_indirect(fe *f)
{
    seg s[QSZ + 1];
    long_chain(f, s, QSZ + 1);
}

VUF_TEST(broken_chains)
{
    broken_case("descriptor loop", setup_loop);
    broken_case("descriptor pointing at itself", setup_self_loop);
    broken_case("loop in an indirect table", setup_indirect_loop);
    broken_case("next index out of range", setup_next_range);
    broken_case("nested indirect table", setup_nested_indirect);
    broken_case("buffer outside guest memory", setup_outside);
    broken_case("buffer straddling the end of guest memory", setup_straddle);
    broken_case("no status byte", setup_no_status);
    broken_case("readable after writable", setup_read_after_write);
    broken_case("indirect table longer than the queue", setup_long_indirect);

    /* head index out of range: the avail ring names descriptor QSZ */
    fe_opts o = {.features = FEATURES, .protocol = PROTO};
    fe *f = fe_open(&o);
    setup_head_range(f);
    snapshot(f);
    f->avail_idx++;
    st16(f->g + AVAIL + 2, f->avail_idx);
    memcpy(f->snap + AVAIL, f->g + AVAIL, AVAIL_BYTES);
    kick(f);
    CHECK(vuf_ref_queue_broken(f->d, 0), "head out of range: the queue is broken");
    CHECK(signalled(f->err), "head out of range: the err eventfd was signalled");
    expect_no_used(f, "head out of range");
    CHECK(!memcmp(f->g, f->snap, GMEM), "head out of range: guest memory unchanged");
    fe_close(f, "head out of range");

    /* the avail index more than a queue ahead */
    f = fe_open(&o);
    snapshot(f);
    st16(f->g + AVAIL + 2, QSZ + 1);
    memcpy(f->snap + AVAIL, f->g + AVAIL, AVAIL_BYTES);
    kick(f);
    CHECK(vuf_ref_queue_broken(f->d, 0), "avail idx too far ahead: the queue is broken");
    expect_no_used(f, "avail idx too far ahead");
    CHECK(!memcmp(f->g, f->snap, GMEM), "avail idx too far ahead: guest memory unchanged");
    fe_close(f, "avail idx ahead");
}

VUF_TEST(ring_addresses)
{
    fe_opts o = {.features = FEATURES, .protocol = PROTO, .no_ring_setup = true};
    fe *f = fe_open(&o);
    char t[300];
    snprintf(t, sizeof t, "SET_VRING_NUM need_reply index=0 num=%u", QSZ);
    ack(f, NULL, 0, 0, "SET_VRING_NUM", t);
    static const struct {
        const char *what;
        uint64_t desc, used, avail;
        uint64_t want;
    } cases[] = {
        {"descriptors outside guest memory", GMEM, USED, AVAIL, 1},
        {"used ring straddling the end", DESC, GMEM - 64, AVAIL, 1},
        {"avail ring straddling the end", DESC, USED, GMEM - 16, 1},
        {"descriptors not aligned", DESC + 8, USED, AVAIL, 1},
        {"used ring not aligned", DESC, USED + 2, AVAIL, 1},
        {"inside guest memory", DESC, USED, AVAIL, 0},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        snprintf(
            t, sizeof t, "SET_VRING_ADDR need_reply index=0 desc=0x%llx used=0x%llx avail=0x%llx",
            (unsigned long long)(UVA + cases[i].desc), (unsigned long long)(UVA + cases[i].used),
            (unsigned long long)(UVA + cases[i].avail));
        ack(f, NULL, 0, cases[i].want, cases[i].what, t);
    }
    /* guest physical addresses are not user addresses */
    ack(f, NULL, 0, 1, "gpa instead of uva",
        "SET_VRING_ADDR need_reply index=0 desc=0 used=0x2000 avail=0x1000");
    fe_close(f, "ring addresses");
}

VUF_TEST(notification_suppression)
{
    /* VRING_AVAIL_F_NO_INTERRUPT without EVENT_IDX */
    fe_opts o = {.features = FEATURES, .protocol = PROTO};
    fe *f = fe_open(&o);
    seg s[] = {{DATA, 16, false}, {DATA + 0x100, 1, true}};
    put_hdr(f, DATA, VUF_BLK_T_FLUSH, 0);
    st16(f->g + AVAIL, VUF_VRING_AVAIL_F_NO_INTERRUPT);
    submit(f, put_chain(f, 0, s, 2, false));
    kick(f);
    expect_used(f, 0, 1, "NO_INTERRUPT");
    CHECK(!signalled(f->call), "NO_INTERRUPT: no call");
    st16(f->g + AVAIL, 0);
    submit(f, 0);
    kick(f);
    expect_used(f, 0, 1, "interrupts on");
    CHECK(signalled(f->call), "interrupts on: a call");
    fe_close(f, "NO_INTERRUPT");

    /* EVENT_IDX: used_event decides; the device publishes avail_event */
    o.features |= V("RING_EVENT_IDX");
    f = fe_open(&o);
    put_hdr(f, DATA, VUF_BLK_T_FLUSH, 0);
    put_chain(f, 0, s, 2, false);
    static const struct {
        uint16_t used_event;
        bool call;
    } steps[] = {{0, true}, {0, false}, {5, false}, {3, true}, {4, true}, {4, false}};
    for (size_t i = 0; i < sizeof steps / sizeof steps[0]; i++) {
        st16(f->g + AVAIL + 4 + 2 * QSZ, steps[i].used_event);
        submit(f, 0);
        kick(f);
        expect_used(f, 0, 1, "EVENT_IDX");
        bool got = signalled(f->call);
        CHECK(got == steps[i].call, "EVENT_IDX step %zu (used_event %u, used idx %u): call %d", i,
              steps[i].used_event, f->used_seen, got);
        CHECK(ld16(f->g + USED + 4 + 8 * QSZ) == f->avail_idx,
              "EVENT_IDX: avail_event is %u, want %u", ld16(f->g + USED + 4 + 8 * QSZ),
              f->avail_idx);
    }
    fe_close(f, "EVENT_IDX");
}

VUF_TEST(dirty_log)
{
    fe_opts o = {.features = FEATURES | V("LOG_ALL"), .protocol = PROTO | P("LOG_SHMFD")};
    fe *f = fe_open(&o);
    int lfd = memfd_create("vuf-test-log", MFD_CLOEXEC);
    CHECK(lfd >= 0 && ftruncate(lfd, 0x1000) == 0, "log memfd");
    uint8_t *log = mmap(NULL, 0x1000, PROT_READ | PROT_WRITE, MAP_SHARED, lfd, 0);
    CHECK(log != MAP_FAILED, "log mapped");
    char t[200];
    snprintf(t, sizeof t, "SET_LOG_BASE mmap_size=%llu mmap_offset=0",
             (unsigned long long)LOG_BYTES);
    ack(f, &lfd, 1, 0, "SET_LOG_BASE", t);
    close(lfd);
    int logev = new_eventfd();
    ack(f, &logev, 1, 0, "SET_LOG_FD", "SET_LOG_FD need_reply");
    /* the used ring is logged at log_guest_addr (VHOST_VRING_F_LOG) */
    set_vring_addr(f, VUF_VHOST_VRING_F_LOG, USED, 0);

    /* IN: 512 bytes at page 0x11, the status at the last byte of page 0x12 */
    put_hdr(f, DATA, VUF_BLK_T_IN, 1);
    seg in[] = {{DATA, 16, false}, {DATA + 0x1000, 512, true}, {DATA + 0x2fff, 1, true}};
    run_request(f, put_chain(f, 0, in, 3, false), in, 3, 513, VUF_BLK_S_OK, "IN logged");
    CHECK(signalled(logev), "the log eventfd was signalled");
    uint8_t want[LOG_BYTES] = {0};
    want[USED / 0x1000 / 8] |= (uint8_t)(1u << (USED / 0x1000 % 8));
    want[0x11 / 8] |= 1u << (0x11 % 8);
    want[0x12 / 8] |= 1u << (0x12 % 8);
    CHECK(!memcmp(log, want, LOG_BYTES), "the log marks pages 2, 0x11, 0x12 only: %02x %02x %02x",
          log[0], log[2], log[3]);
    /* OUT writes nothing to guest buffers: only the status and used pages */
    memset(log, 0, LOG_BYTES);
    put_hdr(f, DATA + 0x4000, VUF_BLK_T_OUT, 1);
    seg out[] = {{DATA + 0x4000, 16, false}, {DATA + 0x5000, 512, false}, {DATA + 0x6000, 1, true}};
    run_request(f, put_chain(f, 3, out, 3, false), out, 3, 1, VUF_BLK_S_OK, "OUT logged");
    memset(want, 0, sizeof want);
    want[0] = 1u << 2;
    want[0x16 / 8] |= 1u << (0x16 % 8);
    CHECK(!memcmp(log, want, LOG_BYTES), "OUT: the log marks pages 2 and 0x16 only");
    munmap(log, 0x1000);
    close(logev);
    fe_close(f, "dirty log");
}

/* Read the device's next back-end request: BACKEND_IOTLB_MSG of `type`
 * (1 miss, 4 access failure). */
static void expect_iotlb(fe *f, uint64_t iova, uint8_t perm, uint8_t type, const char *what)
{
    reply r = recv_now(f->be);
    uint64_t got_iova = 0;
    if (r.len >= 32)
        memcpy(&got_iova, r.pl, 8);
    CHECK(r.got && r.hdr.request == 1 && r.hdr.flags == (VUF_F_VERSION | VUF_F_NEED_REPLY) &&
              r.len == 32,
          "%s: BACKEND_IOTLB_MSG with NEED_REPLY (got %d id %u flags 0x%x size %zu)", what, r.got,
          r.hdr.request, r.hdr.flags, r.len);
    CHECK(got_iova == iova && r.pl[24] == perm && r.pl[25] == type,
          "%s: iova 0x%llx perm %u type %u (got 0x%llx perm %u type %u)", what,
          (unsigned long long)iova, perm, type, (unsigned long long)got_iova, r.pl[24], r.pl[25]);
}

static void backend_reply(fe *f, uint32_t id, uint32_t flags, const void *pl, uint32_t len)
{
    uint8_t b[VUF_HDR_SIZE + 16];
    vuf_hdr h = {.request = id, .flags = flags, .size = len};
    vuf_hdr_encode(&h, b);
    memcpy(b + VUF_HDR_SIZE, pl, len);
    CHECK(vuf_send_msg(f->be, b, VUF_HDR_SIZE + len, NULL, 0, 1000) == VUF_IO_OK,
          "back-end reply sent");
    CHECK(vuf_ref_conn_step(f->c, 0), "the connection stays open after a back-end reply");
}

/* An IOTLB update (type 2) or invalidation (type 3) of [IOVA + gpa, +size). */
static void iotlb(fe *f, unsigned type, uint64_t gpa, uint64_t size, unsigned perm)
{
    reply r =
        rpc(f, NULL, 0, true, "IOTLB_MSG iova=0x%llx size=0x%llx uaddr=0x%llx perm=%u type=%u",
            (unsigned long long)(IOVA + gpa), (unsigned long long)size,
            (unsigned long long)(type == 2 ? UVA + gpa : 0), type == 2 ? perm : 0, type);
    CHECK(r.len == 8 && r.u64 == 0, "IOTLB_MSG type %u at gpa 0x%llx: u64 0", type,
          (unsigned long long)gpa);
}

/* The device asks for gpa's translation; the test acks the request. */
static void miss(fe *f, uint64_t gpa, uint8_t perm, const char *what)
{
    uint64_t zero = 0;
    expect_iotlb(f, IOVA + gpa, perm, 1, what);
    expect_no_used(f, what);
    CHECK(!vuf_ref_queue_broken(f->d, 0), "%s: a miss stalls the ring, it does not break it", what);
    backend_reply(f, 1, VUF_F_VERSION | VUF_F_REPLY, &zero, 8);
    CHECK(!vuf_ref_backend_waiting(f->d), "%s: the miss was answered", what);
}

VUF_TEST(iommu)
{
    fe_opts o = {.features = FEATURES | V("IOMMU_PLATFORM"),
                 .protocol = PROTO | P("BACKEND_REQ"),
                 .backend = true,
                 .iommu = true};
    fe *f = fe_open(&o);
    put_hdr(f, DATA, VUF_BLK_T_IN, 2);
    seg in[] = {{DATA, 16, false}, {DATA + 0x1000, 512, true}, {DATA + 0x2000, 1, true}};
    f->g[DATA + 0x2000] = 0xee;
    submit(f, put_chain(f, 0, in, 3, false));
    snapshot(f);
    kick(f);
    /* nothing is mapped: each translation is asked for in turn, and each
     * IOTLB update retries the stalled ring */
    miss(f, USED, VUF_PERM_R | VUF_PERM_W, "start reads the used ring");
    CHECK(!signalled(f->call), "a miss signals nothing");
    CHECK(!memcmp(f->g, f->snap, GMEM), "a miss changes no guest memory");
    iotlb(f, 2, USED, 0x1000, 3);
    miss(f, AVAIL, VUF_PERM_R, "the avail ring");
    iotlb(f, 2, AVAIL, 0x1000, 1);
    miss(f, DESC, VUF_PERM_R, "the descriptor table");
    iotlb(f, 2, DESC, 0x1000, 1);
    miss(f, DATA, VUF_PERM_R, "the request header");
    CHECK(!memcmp(f->g, f->snap, GMEM), "misses change no guest memory");
    iotlb(f, 2, DATA, 0x10000, 3);
    CHECK(!recv_now(f->be).got, "no more misses");
    expect_used(f, 0, 513, "IN under the IOMMU");
    CHECK(f->g[DATA + 0x2000] == VUF_BLK_S_OK, "IN under the IOMMU: status OK");
    CHECK(!memcmp(f->g + DATA + 0x1000, f->disk + 2 * 512, 512),
          "IN under the IOMMU: sector 2 in the buffer");
    CHECK(signalled(f->call), "IN under the IOMMU: call");
    range ok[] = {{DATA + 0x1000, 512}, {DATA + 0x2000, 1}};
    CHECK(changed_outside(f, ok, 2) < 0, "IN under the IOMMU: nothing else changed");

    /* the used ring unmapped while the ring runs: the next request waits
     * for it and completes once it is mapped again (its completion is not
     * lost, and it runs once) */
    iotlb(f, 3, USED, 0x1000, 0);
    put_hdr(f, DATA, VUF_BLK_T_IN, 5);
    f->g[DATA + 0x2000] = 0xee;
    snapshot(f);
    submit(f, 0);
    memcpy(f->snap + AVAIL, f->g + AVAIL, AVAIL_BYTES);
    kick(f);
    miss(f, USED, VUF_PERM_R | VUF_PERM_W, "the used ring, unmapped");
    CHECK(!memcmp(f->g, f->snap, GMEM), "the request waits: nothing written yet");
    iotlb(f, 2, USED, 0x1000, 3);
    expect_used(f, 0, 513, "IN after the used ring came back");
    CHECK(f->g[DATA + 0x2000] == VUF_BLK_S_OK &&
              !memcmp(f->g + DATA + 0x1000, f->disk + 5 * 512, 512),
          "IN after the used ring came back: status OK, sector 5 in the buffer");
    CHECK(signalled(f->call), "IN after the used ring came back: call");
    CHECK(vuf_ref_chains_completed(f->d) == 2, "2 chains completed, each once");

    /* an invalidation of the buffers: the next request misses again */
    iotlb(f, 3, DATA, 0x10000, 0);
    submit(f, 0);
    kick(f);
    miss(f, DATA, VUF_PERM_R, "after the invalidation");
    /* mapped read-only: the write to the IN buffer is denied, the queue
     * breaks and the device reports the access failure (type 4) */
    snapshot(f);
    iotlb(f, 2, DATA, 0x10000, 1);
    expect_iotlb(f, IOVA + DATA + 0x1000, VUF_PERM_W, 4, "write denied");
    expect_no_used(f, "write denied");
    CHECK(vuf_ref_queue_broken(f->d, 0) && signalled(f->err), "write denied: the queue is broken");
    CHECK(!memcmp(f->g, f->snap, GMEM), "write denied: guest memory unchanged");
    fe_close(f, "IOMMU");
}

/* ---- inflight I/O tracking ---- */

#define INF_VERSION 8
#define INF_DESC_NUM 10
#define INF_LAST_BATCH 12
#define INF_USED_IDX 14
#define INF_DESC(i) (16 + 16 * (i))

/* GET_INFLIGHT_FD for one queue of QSZ: the buffer, mapped by the test. */
static uint8_t *get_inflight(fe *f, int *fd, uint64_t *size)
{
    uint8_t buf[64];
    size_t len = build(buf, sizeof buf, "GET_INFLIGHT_FD num_queues=1 queue_size=16");
    CHECK(vuf_send_msg(f->sock, buf, len, NULL, 0, 1000) == VUF_IO_OK, "GET_INFLIGHT_FD sent");
    CHECK(vuf_ref_conn_step(f->c, 0), "GET_INFLIGHT_FD: the connection stays open");
    uint8_t pl[64];
    vuf_rx_msg rx;
    memset(&rx, 0, sizeof rx);
    rx.payload = pl;
    rx.payload_cap = sizeof pl;
    *fd = -1;
    *size = 0;
    if (vuf_recv_msg(f->sock, &rx, 0) != VUF_IO_OK || rx.payload_len != 24 || rx.nfds != 1) {
        CHECK(0, "GET_INFLIGHT_FD: a 24-byte reply with one fd (%zu bytes, %zu fds)",
              rx.payload_len, rx.nfds);
        vuf_close_fds(rx.fds, &rx.nfds);
        return NULL;
    }
    memcpy(size, pl, 8);
    *fd = rx.fds[0];
    uint8_t *r = mmap(NULL, *size, PROT_READ | PROT_WRITE, MAP_SHARED, *fd, 0);
    CHECK(r != MAP_FAILED, "the inflight buffer maps");
    if (r == MAP_FAILED)
        return NULL;
    CHECK(ld16(r + INF_VERSION) == 1 && ld16(r + INF_DESC_NUM) == QSZ,
          "a fresh inflight region: version 1, desc_num %u", QSZ);
    return r;
}

static void set_inflight(fe *f, int fd, uint64_t size)
{
    char t[200];
    snprintf(t, sizeof t, "SET_INFLIGHT_FD need_reply mmap_size=0x%llx num_queues=1 queue_size=%u",
             (unsigned long long)size, QSZ);
    ack(f, &fd, 1, 0, "SET_INFLIGHT_FD", t);
}

static void inf_mark(uint8_t *r, uint16_t head, uint64_t counter)
{
    r[INF_DESC(head)] = 1;
    memcpy(r + INF_DESC(head) + 8, &counter, 8);
}

VUF_TEST(inflight_resubmit)
{
    fe_opts o = {.features = FEATURES, .protocol = PROTO | P("INFLIGHT_SHMFD")};

    /* A back-end crashed with heads 0 and 3 taken but not completed, and
     * head 6 still in the avail ring. The front-end restarts the ring at
     * the used index (QEMU restores last_avail_idx = used_idx when
     * GET_VRING_BASE fails): the new back-end resubmits 0 and 3, oldest
     * first, then takes 6; each runs once. */
    fe *f = fe_open(&o);
    int fd;
    uint64_t size;
    uint8_t *r = get_inflight(f, &fd, &size);
    if (!r) {
        fe_close(f, "inflight");
        return;
    }
    seg out[] = {{DATA, 16, false}, {DATA + 0x1000, 512, false}, {DATA + 0x2000, 1, true}};
    seg in[] = {{DATA + 0x3000, 16, false}, {DATA + 0x4000, 512, true}, {DATA + 0x5000, 1, true}};
    seg fl[] = {{DATA + 0x6000, 16, false}, {DATA + 0x7000, 1, true}};
    put_hdr(f, DATA, VUF_BLK_T_OUT, 7);
    fill(f, DATA + 0x1000, 512, 0x5a);
    put_hdr(f, DATA + 0x3000, VUF_BLK_T_IN, 2);
    put_hdr(f, DATA + 0x6000, VUF_BLK_T_FLUSH, 0);
    submit(f, put_chain(f, 0, out, 3, false));
    submit(f, put_chain(f, 3, in, 3, false));
    submit(f, put_chain(f, 6, fl, 2, false));
    inf_mark(r, 3, 2);
    inf_mark(r, 0, 1);
    set_inflight(f, fd, size);
    close(fd);
    kick(f);
    expect_used_next(f, 0, 1, "resubmitted OUT");
    expect_used_next(f, 3, 513, "resubmitted IN");
    expect_used_next(f, 6, 1, "the next avail entry");
    CHECK(ld16(f->g + USED + 2) == 3, "each request ran once: used idx %u, want 3",
          ld16(f->g + USED + 2));
    CHECK(!memcmp(f->disk + 7 * 512, f->g + DATA + 0x1000, 512), "the OUT reached the disk");
    CHECK(!memcmp(f->g + DATA + 0x4000, f->disk + 2 * 512, 512), "the IN filled its buffer");
    CHECK(f->flushes == 1, "one FLUSH (%d)", f->flushes);
    CHECK(r[INF_DESC(0)] == 0 && r[INF_DESC(3)] == 0 && r[INF_DESC(6)] == 0,
          "nothing is left inflight");
    CHECK(ld16(r + INF_USED_IDX) == 3 && ld16(r + INF_LAST_BATCH) == 6,
          "the region's used_idx %u (want 3), last_batch_head %u (want 6)", ld16(r + INF_USED_IDX),
          ld16(r + INF_LAST_BATCH));
    munmap(r, size);
    fe_close(f, "inflight resubmission");

    /* The last batch reached the used ring before the crash (used idx 1,
     * the region's used_idx 0): head 4 is not inflight any more and does
     * not run again ("Inflight I/O tracking", reconnecting, step 1). */
    f = fe_open(&o);
    r = get_inflight(f, &fd, &size);
    if (!r) {
        fe_close(f, "inflight");
        return;
    }
    put_hdr(f, DATA, VUF_BLK_T_OUT, 9);
    fill(f, DATA + 0x1000, 512, 0x33);
    submit(f, put_chain(f, 4, out, 3, false));
    uint32_t done[2] = {4, 1};
    memcpy(f->g + USED + 4, done, 8);
    st16(f->g + USED + 2, 1);
    f->used_seen = 1;
    inf_mark(r, 4, 5);
    st16(r + INF_LAST_BATCH, 4);
    ack(f, NULL, 0, 0, "SET_VRING_BASE", "SET_VRING_BASE need_reply index=0 num=1");
    set_inflight(f, fd, size);
    close(fd);
    snapshot(f);
    kick(f);
    expect_no_used(f, "a completed batch");
    CHECK(!memcmp(f->disk, f->disk_snap, DISK_SIZE), "the completed OUT did not run again");
    CHECK(r[INF_DESC(4)] == 0 && ld16(r + INF_USED_IDX) == 1,
          "the batch is cleared: inflight %u, used_idx %u", r[INF_DESC(4)], ld16(r + INF_USED_IDX));
    munmap(r, size);
    fe_close(f, "inflight completed batch");

    /* A region of another version is not trusted: nothing is resubmitted. */
    f = fe_open(&o);
    r = get_inflight(f, &fd, &size);
    if (!r) {
        fe_close(f, "inflight");
        return;
    }
    put_hdr(f, DATA + 0x6000, VUF_BLK_T_FLUSH, 0);
    put_chain(f, 2, fl, 2, false);
    inf_mark(r, 2, 1);
    st16(r + INF_VERSION, 2);
    set_inflight(f, fd, size);
    close(fd);
    kick(f);
    expect_no_used(f, "an untrusted region");
    CHECK(f->flushes == 0, "nothing resubmitted from an untrusted region");
    munmap(r, size);
    fe_close(f, "inflight untrusted");

    /* Under the IOMMU a resubmission that misses a translation resumes
     * after the update: the heads still inflight are not lost. */
    fe_opts io = {.features = FEATURES | V("IOMMU_PLATFORM"),
                  .protocol = PROTO | P("INFLIGHT_SHMFD") | P("BACKEND_REQ"),
                  .backend = true,
                  .iommu = true};
    f = fe_open(&io);
    r = get_inflight(f, &fd, &size);
    if (!r) {
        fe_close(f, "inflight");
        return;
    }
    seg in2[] = {{DATA + 0x8000, 16, false}, {DATA + 0x9000, 512, true}, {DATA + 0xa000, 1, true}};
    put_hdr(f, DATA + 0x3000, VUF_BLK_T_IN, 2);
    put_hdr(f, DATA + 0x8000, VUF_BLK_T_IN, 3);
    submit(f, put_chain(f, 3, in, 3, false));
    submit(f, put_chain(f, 8, in2, 3, false));
    inf_mark(r, 3, 1);
    inf_mark(r, 8, 2);
    set_inflight(f, fd, size);
    close(fd);
    iotlb(f, 2, DESC, 0x4000, 3); /* the rings */
    iotlb(f, 2, DATA, 0x8000, 3); /* head 3's buffers, not head 8's */
    kick(f);
    expect_used_next(f, 3, 513, "first resubmitted head");
    miss(f, DATA + 0x8000, VUF_PERM_R, "second resubmitted head");
    iotlb(f, 2, DATA + 0x8000, 0x8000, 3);
    expect_used(f, 8, 513, "second resubmitted head, after the update");
    CHECK(ld16(f->g + USED + 2) == 2 && !memcmp(f->g + DATA + 0x9000, f->disk + 3 * 512, 512),
          "both resubmitted heads ran once");
    CHECK(r[INF_DESC(3)] == 0 && r[INF_DESC(8)] == 0, "nothing is left inflight");
    munmap(r, size);
    fe_close(f, "inflight under the IOMMU");
}

/* The disk changes size: the device tells the front-end, never waiting. */
static void resize(fe *f, uint64_t size)
{
    vuf_ref_conn_set_disk(f->c, f->disk, size);
    CHECK(vuf_ref_conn_is_open(f->c), "resize: the connection stays open");
}

VUF_TEST(backend_config_change)
{
    fe_opts o = {.features = FEATURES,
                 .protocol = PROTO | P("BACKEND_REQ"),
                 .backend = true,
                 .no_ring_setup = true};
    fe *f = fe_open(&o);
    uint64_t zero = 0, sent = 0;
    /* a resize sends BACKEND_CONFIG_CHANGE_MSG with NEED_REPLY */
    resize(f, DISK_SIZE / 2);
    reply r = recv_now(f->be);
    CHECK(r.got && r.hdr.request == 2 && r.hdr.flags == (VUF_F_VERSION | VUF_F_NEED_REPLY) &&
              r.len == 0,
          "BACKEND_CONFIG_CHANGE_MSG with NEED_REPLY (got %d id %u flags 0x%x)", r.got,
          r.hdr.request, r.hdr.flags);
    sent++;
    CHECK(vuf_ref_backend_waiting(f->d), "the device waits for the reply");
    /* the main channel goes on while the device waits */
    r = rpc(f, NULL, 0, true, "GET_CONFIG offset=0 flags=0 payload=0000000000000000");
    uint64_t cap = 0;
    memcpy(&cap, r.pl + 12, 8);
    CHECK(cap == DISK_SIZE / 2 / 512, "GET_CONFIG: the new capacity %llu", (unsigned long long)cap);

    /* a reply with the wrong id is ignored; a resize meanwhile waits its turn */
    backend_reply(f, 1, VUF_F_VERSION | VUF_F_REPLY, &zero, 8);
    CHECK(vuf_ref_backend_waiting(f->d), "wrong id: still waiting");
    resize(f, DISK_SIZE / 4);
    CHECK(!recv_now(f->be).got, "nothing is sent while a reply is awaited");
    /* the right id, a malformed reply (4 bytes): a failure, the queue moves */
    backend_reply(f, 2, VUF_F_VERSION | VUF_F_REPLY, &zero, 4);
    CHECK(vuf_ref_refused(f->d, VUF_CHAN_BACKEND, 2) == 1, "wrong size counts as a failure");
    r = recv_now(f->be);
    CHECK(r.got && r.hdr.request == 2, "the queued config change is sent next");
    sent++;
    /* no answer at all: the harness ends the wait */
    CHECK(vuf_ref_backend_waiting(f->d), "waiting again");
    vuf_ref_conn_backend_timeout(f->c);
    CHECK(!vuf_ref_backend_waiting(f->d), "timeout: the wait ended");
    resize(f, DISK_SIZE);
    r = recv_now(f->be);
    CHECK(r.got && r.hdr.request == 2, "a resize after a timeout sends again");
    sent++;
    /* a good ack */
    backend_reply(f, 2, VUF_F_VERSION | VUF_F_REPLY, &zero, 8);
    CHECK(!vuf_ref_backend_waiting(f->d), "acked: the wait ended");
    CHECK(vuf_ref_refused(f->d, VUF_CHAN_BACKEND, 2) == 1, "an ack is not a failure");
    /* an error status */
    resize(f, DISK_SIZE / 2);
    CHECK(recv_now(f->be).got, "another config change");
    sent++;
    uint64_t one = 1;
    backend_reply(f, 2, VUF_F_VERSION | VUF_F_REPLY, &one, 8);
    CHECK(!vuf_ref_backend_waiting(f->d) && vuf_ref_refused(f->d, VUF_CHAN_BACKEND, 2) == 2,
          "a failure status ends the wait and counts");
    CHECK(vuf_ref_accepted(f->d, VUF_CHAN_BACKEND, 2) == sent, "%llu config changes sent",
          (unsigned long long)sent);

    /* a message without REPLY from the front-end: the back-end channel is
     * closed, the main connection stays */
    resize(f, DISK_SIZE);
    CHECK(recv_now(f->be).got, "another config change");
    backend_reply(f, 2, VUF_F_VERSION, &zero, 8);
    CHECK(vuf_ref_backend_fd(f->d) < 0 && !vuf_ref_backend_waiting(f->d),
          "a request on the back-end channel closes it");
    struct pollfd pf = {.fd = f->be, .events = POLLIN};
    CHECK(poll(&pf, 1, 0) == 1 && (pf.revents & POLLHUP), "the test's end sees the close");
    resize(f, DISK_SIZE / 2);
    CHECK(vuf_ref_conn_is_open(f->c), "the main connection is open");
    rpc(f, NULL, 0, true, "GET_FEATURES");
    close(f->be);
    /* a new channel: the next resize is sent there */
    int bp[2];
    CHECK(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, bp) == 0, "socketpair");
    ack(f, &bp[1], 1, 0, "SET_BACKEND_REQ_FD", "SET_BACKEND_REQ_FD need_reply");
    close(bp[1]);
    f->be = bp[0];
    resize(f, DISK_SIZE);
    r = recv_now(f->be);
    CHECK(r.got && r.hdr.request == 2, "a new channel carries the next config change");
    /* the test's end closes: the device notices and goes on */
    close(f->be);
    f->be = -1;
    CHECK(vuf_ref_conn_step(f->c, 0), "the main connection survives the channel's close");
    CHECK(vuf_ref_backend_fd(f->d) < 0 && !vuf_ref_backend_waiting(f->d),
          "a closed channel is dropped with its wait");
    resize(f, DISK_SIZE / 2);
    rpc(f, NULL, 0, true, "GET_FEATURES");
    fe_close(f, "config change");
}

VUF_TEST(config_change_without_ack)
{
    /* CONFIG without REPLY_ACK: sent without NEED_REPLY, nothing awaited */
    fe_opts o = {.features = FEATURES,
                 .protocol = P("CONFIG") | P("BACKEND_REQ"),
                 .backend = true,
                 .no_ring_setup = true};
    fe *f = fe_open(&o);
    for (int i = 0; i < 2; i++) {
        resize(f, DISK_SIZE >> i);
        reply r = recv_now(f->be);
        CHECK(r.got && r.hdr.request == 2 && r.hdr.flags == VUF_F_VERSION && r.len == 0,
              "no REPLY_ACK: BACKEND_CONFIG_CHANGE_MSG without NEED_REPLY (flags 0x%x)",
              r.hdr.flags);
        CHECK(!vuf_ref_backend_waiting(f->d), "no REPLY_ACK: no reply awaited");
    }
    fe_close(f, "config change without REPLY_ACK");

    /* CONFIG not negotiated: a resize sends nothing */
    o.protocol = P("BACKEND_REQ") | P("REPLY_ACK");
    f = fe_open(&o);
    resize(f, DISK_SIZE / 2);
    CHECK(!recv_now(f->be).got && !vuf_ref_backend_waiting(f->d), "no CONFIG: nothing sent");
    fe_close(f, "config change without CONFIG");
}

VUF_TEST_MAIN()
