/* SPDX-License-Identifier: Apache-2.0 */
/* The session runner: the front-end side of a session, against the
 * reference device in this process, with the oracles (vuf_runner.h).
 *
 * Everything the device sees crosses a real socket pair: messages and fds
 * go through sendmsg/recvmsg (SCM_RIGHTS). The runner never waits: sockets
 * are drained with MSG_DONTWAIT and the device's connection layer runs with
 * zero timeouts, so a run is deterministic. */
#include "vuf_runner.h"
#include "vuf_checker.h"
#include "vuf_codec.h"
#include "vuf_gmem.h"
#include "vuf_ref.h"
#include "vuf_ref_conn.h"
#include "vuf_transport.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#define MAX_ACTIONS 4096
#define MAX_HFDS 256 /* fds the front-end creates in one session */
#define MAX_PEERS 32 /* socket pairs it keeps the other end of */
#define MAX_QUEUES VUF_SESSION_MAX_QUEUES
#define MAX_REGIONS VUF_SESSION_MAX_REGIONS
#define RING_HIST 8 /* ring addresses remembered per queue */
#define TLB_MAX 128 /* IOTLB updates remembered */
#define RING_STRIDE VUF_SESSION_RING_STRIDE
#define AVAIL_OFF 0x400ull
#define USED_OFF 0x800ull
#define MAX_DISK VUF_SESSION_MAX_DISK
#define MAX_MEM VUF_SESSION_MAX_REGION
#define STEPS 3                /* device steps after each action (a message, its kicks, ...) */
#define SETTLE_STEPS 4096      /* steps before leaving (a 1 MiB raw write: < 1400) */
#define BATCH_MAX 32           /* main-socket writes sent before the device steps */
#define BATCH_BYTES (32 << 10) /* ... and their bytes: well inside a socket buffer */

const char *vuf_finding_kind_name(vuf_finding_kind k)
{
    switch (k) {
    case VUF_FINDING_NONE:
        return "none";
    case VUF_FINDING_MUST:
        return "must";
    case VUF_FINDING_FD_LEAK:
        return "fd-leak";
    case VUF_FINDING_GUEST_WRITE:
        return "guest-write";
    }
    return "invalid";
}

typedef struct {
    uint64_t gpa, uaddr, size; /* this session's layout */
    uint64_t fsize;            /* the memfd's size now (MAX_MEM is mapped once) */
    int fd;
    uint8_t *map, *shadow, *allowed; /* allowed: 1 per byte the device may write */
} gregion;

typedef struct {
    uint64_t desc, avail, used;
} ring_addr;

typedef struct {
    ring_addr a[RING_HIST];
    size_t n;
    uint32_t num; /* the largest size sent */
} ring_model;

struct vuf_runner {
    const vuf_spec *spec;
    vuf_runner_opts o;
    vuf_checker *chk;
    const vuf_msg_def *m_num, *m_addr, *m_mem, *m_add, *m_iotlb, *m_kick, *m_vkick;
    vuf_runner_stats st;
    uint64_t *acc[VUF_CHAN_COUNT];
    uint32_t maxid[VUF_CHAN_COUNT];
    vuf_session_wire *wire;
    /* one session */
    uint32_t queues, qsize;
    gregion reg[MAX_REGIONS];
    size_t nreg;
    uint8_t *disk;
    uint64_t disk_size;
    uint8_t *pool_disk; /* MAX_DISK reserved once; a disk is a prefix of it */
    uint64_t disk_high; /* the largest size this session used */
    vuf_ref *dev;
    vuf_ref_conn *conn;
    int fe; /* the front-end's end of the main channel */
    struct {
        int fd;
        int guest;    /* guest region the fd maps, or -1 */
        bool eventfd; /* an eventfd (kicks are written to it) */
    } h[MAX_HFDS];
    size_t nh;
    int peers[MAX_PEERS];
    size_t npeers;
    int be_peer; /* the front-end's end of the back-end channel, or -1 */
    bool be_pending;
    uint32_t be_id, be_last_id;
    int kick[MAX_QUEUES];
    ring_model rings[MAX_QUEUES];
    struct {
        uint64_t iova, size, uaddr;
    } tlb[TLB_MAX];
    size_t ntlb;
    bool armed;
    uint64_t passes;
    uint32_t next_desc[MAX_QUEUES];
    uint64_t heap, heap_start, heap_end;
    unsigned serial;
    vuf_finding f;
    size_t action;
};

/* ---------- findings ---------- */

static void finding(vuf_runner *r, vuf_finding_kind k, const char *rule, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

static void finding(vuf_runner *r, vuf_finding_kind k, const char *rule, const char *fmt, ...)
{
    if (r->f.kind)
        return; /* the first one counts */
    r->f.kind = k;
    r->f.action = r->action;
    snprintf(r->f.rule, sizeof r->f.rule, "%s", rule);
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(r->f.text, sizeof r->f.text, fmt, ap);
    va_end(ap);
}

/* ---------- guest memory, as the front-end lays it out ---------- */

/* Host pointer of [gpa, gpa+len) in one region, or NULL. */
static uint8_t *g_ptr(vuf_runner *r, uint64_t gpa, uint64_t len, int *ri, uint64_t *off)
{
    for (size_t i = 0; i < r->nreg; i++) {
        gregion *g = &r->reg[i];
        if (gpa >= g->gpa && gpa - g->gpa < g->size && len <= g->size - (gpa - g->gpa)) {
            if (ri)
                *ri = (int)i;
            if (off)
                *off = gpa - g->gpa;
            return g->map + (gpa - g->gpa);
        }
    }
    return NULL;
}

/* The driver's own writes: guest memory and its shadow alike. */
static void g_write(vuf_runner *r, uint64_t gpa, const void *src, uint64_t len)
{
    int ri;
    uint64_t off;
    uint8_t *p = g_ptr(r, gpa, len, &ri, &off);
    if (p && len) {
        memcpy(p, src, len);
        memcpy(r->reg[ri].shadow + off, src, len);
    }
}

static uint64_t uva_to_gpa(const vuf_runner *r, uint64_t uva)
{
    for (size_t i = 0; i < r->nreg; i++)
        if (uva >= r->reg[i].uaddr && uva - r->reg[i].uaddr < r->reg[i].size)
            return r->reg[i].gpa + (uva - r->reg[i].uaddr);
    return UINT64_MAX;
}

static void refresh_shadows(vuf_runner *r)
{
    for (size_t i = 0; i < r->nreg; i++)
        memcpy(r->reg[i].shadow, r->reg[i].map, r->reg[i].size);
}

/* ---------- the guest-memory oracle ---------- */

/* Mark [gpa, gpa+len) allowed, clipped to guest memory. */
static void allow_gpa(vuf_runner *r, uint64_t gpa, uint64_t len)
{
    for (size_t i = 0; i < r->nreg && len; i++) {
        gregion *g = &r->reg[i];
        uint64_t lo = gpa > g->gpa ? gpa : g->gpa;
        uint64_t end = gpa + len < gpa ? UINT64_MAX : gpa + len;
        uint64_t gend = g->gpa + g->size;
        uint64_t hi = end < gend ? end : gend;
        if (lo < hi)
            memset(g->allowed + (lo - g->gpa), 1, hi - lo);
    }
}

/* Every guest-physical place an address may mean: itself (gpa), and every
 * IOTLB translation the front-end sent (under the IOMMU). `is_ring`: ring
 * addresses are user addresses, not guest addresses. */
typedef void (*place_fn)(vuf_runner *r, uint64_t gpa, uint64_t len, void *ctx);

static void each_place(vuf_runner *r, uint64_t addr, uint64_t len, bool is_ring, place_fn fn,
                       void *ctx)
{
    uint64_t g = is_ring ? uva_to_gpa(r, addr) : addr;
    if (g != UINT64_MAX)
        fn(r, g, len, ctx);
    for (size_t i = 0; i < r->ntlb; i++) {
        uint64_t iova = r->tlb[i].iova, sz = r->tlb[i].size;
        if (addr < iova || addr - iova >= sz)
            continue;
        uint64_t gp = uva_to_gpa(r, r->tlb[i].uaddr + (addr - iova));
        if (gp != UINT64_MAX)
            fn(r, gp, len < sz - (addr - iova) ? len : sz - (addr - iova), ctx);
    }
}

static void allow_cb(vuf_runner *r, uint64_t gpa, uint64_t len, void *ctx)
{
    (void)ctx;
    allow_gpa(r, gpa, len);
}

/* Read descriptors from the shadow (the memory before the step). */
typedef struct {
    uint32_t n;
    bool indirect_ok;
} table_ctx;

static void allow_table(vuf_runner *r, uint64_t gpa, uint64_t len, void *ctx);

static void allow_desc(vuf_runner *r, const uint8_t *d, bool indirect_ok)
{
    uint64_t addr;
    uint32_t len;
    uint16_t flags;
    memcpy(&addr, d, 8);
    memcpy(&len, d + 8, 4);
    memcpy(&flags, d + 12, 2);
    if ((flags & 4) && indirect_ok) {
        table_ctx tc = {.n = len / 16 > 1024 ? 1024 : len / 16, .indirect_ok = false};
        each_place(r, addr, (uint64_t)tc.n * 16, false, allow_table, &tc);
    } else if (flags & 2) {
        each_place(r, addr, len, false, allow_cb, NULL);
    }
}

static void allow_table(vuf_runner *r, uint64_t gpa, uint64_t len, void *ctx)
{
    const table_ctx *tc = ctx;
    int ri;
    uint64_t off;
    for (uint32_t i = 0; i < tc->n && (uint64_t)i * 16 + 16 <= len; i++)
        if (g_ptr(r, gpa + 16ull * i, 16, &ri, &off))
            allow_desc(r, r->reg[ri].shadow + off, tc->indirect_ok);
}

static void compute_allowed(vuf_runner *r)
{
    for (size_t i = 0; i < r->nreg; i++)
        memset(r->reg[i].allowed, 0, r->reg[i].size);
    for (uint32_t q = 0; q < MAX_QUEUES; q++) {
        ring_model *m = &r->rings[q];
        uint32_t num = m->num ? m->num : 1024;
        if (num > 32768)
            num = 32768;
        for (size_t k = 0; k < m->n; k++) {
            each_place(r, m->a[k].used, 6 + 8ull * num, true, allow_cb, NULL);
            table_ctx tc = {.n = num, .indirect_ok = true};
            each_place(r, m->a[k].desc, 16ull * num, true, allow_table, &tc);
        }
    }
}

static void guest_check(vuf_runner *r)
{
    uint64_t passes = r->dev ? vuf_ref_ring_passes(r->dev) : 0;
    if (passes == r->passes)
        return; /* the rings did not run: the device touched no guest memory */
    r->passes = passes;
    if (r->o.inject_stray_write && r->nreg) {
        int ri;
        uint64_t off;
        uint8_t *p = g_ptr(r, r->o.inject_stray_write, 1, &ri, &off);
        if (p)
            *p ^= 0xff; /* not through g_write: the shadow does not see it */
    }
    if (!r->armed || r->o.no_guest_oracle) {
        refresh_shadows(r);
        return;
    }
    r->st.guest_checks++;
    bool computed = false;
    for (size_t i = 0; i < r->nreg && !r->f.kind; i++) {
        gregion *g = &r->reg[i];
        if (!memcmp(g->map, g->shadow, g->size))
            continue;
        if (!computed) {
            compute_allowed(r);
            computed = true;
        }
        for (uint64_t o = 0; o < g->size; o++) {
            if (o % 64 == 0 && g->size - o >= 64 && !memcmp(g->map + o, g->shadow + o, 64)) {
                o += 63; /* an unchanged block */
                continue;
            }
            if (g->map[o] == g->shadow[o] || g->allowed[o])
                continue;
            uint64_t e = o;
            while (e < g->size && g->map[e] != g->shadow[e] && !g->allowed[e])
                e++;
            finding(r, VUF_FINDING_GUEST_WRITE, "guest-write",
                    "the device wrote guest memory at gpa 0x%llx (%llu bytes, region %zu), "
                    "outside every device-writable descriptor buffer and used ring",
                    (unsigned long long)(g->gpa + o), (unsigned long long)(e - o), i);
            break;
        }
    }
    refresh_shadows(r);
}

/* ---------- the model of what the device was told (from its events) ---------- */

static bool region_is_config(const vuf_runner *r, const vuf_gmem_region *x, int *k)
{
    for (size_t i = 0; i < r->nreg; i++)
        if (x->gpa == r->reg[i].gpa && x->size == r->reg[i].size && x->uaddr == r->reg[i].uaddr &&
            x->mmap_offset == 0) {
            if (k)
                *k = (int)i;
            return true;
        }
    return false;
}

static uint64_t rd(const vuf_payload_def *p, const char *path, const uint8_t *pl, size_t len)
{
    vuf_field_ref ref;
    uint64_t v = 0;
    if (vuf_field_resolve(p, path, &ref))
        vuf_field_read(&ref, pl, len, &v);
    return v;
}

/* A memory region of message bytes (element `prefix`). */
static vuf_gmem_region read_region(const vuf_payload_def *p, const char *prefix, const uint8_t *pl,
                                   size_t len)
{
    char b[4][64];
    static const char *const n[4] = {"guest_addr", "size", "user_addr", "mmap_offset"};
    for (int i = 0; i < 4; i++)
        snprintf(b[i], sizeof b[i], "%s%s", prefix, n[i]);
    return (vuf_gmem_region){.gpa = rd(p, b[0], pl, len),
                             .size = rd(p, b[1], pl, len),
                             .uaddr = rd(p, b[2], pl, len),
                             .mmap_offset = rd(p, b[3], pl, len)};
}

/* Track ring addresses, IOTLB updates and memory tables the device
 * received. Refused messages are kept too: the model over-approximates
 * where the device may write, it never under-approximates. */
static void model_update(vuf_runner *r, const vuf_event *ev)
{
    vuf_msg_view v;
    if (!vuf_msg_decode(r->spec, VUF_CHAN_FRONTEND, ev->data, ev->len, &v) || !v.def || v.is_reply)
        return;
    const vuf_msg_def *d = v.def;
    const uint8_t *pl = v.payload;
    size_t len = v.payload_len;
    if (d == r->m_num) {
        uint64_t q = rd(d->request, "index", pl, len), n = rd(d->request, "num", pl, len);
        if (q < MAX_QUEUES && n > r->rings[q].num)
            r->rings[q].num = n > 32768 ? 32768 : (uint32_t)n;
    } else if (d == r->m_addr) {
        uint64_t q = rd(d->request, "index", pl, len);
        ring_addr a = {.desc = rd(d->request, "desc", pl, len),
                       .avail = rd(d->request, "avail", pl, len),
                       .used = rd(d->request, "used", pl, len)};
        if (q >= MAX_QUEUES)
            return;
        ring_model *m = &r->rings[q];
        for (size_t i = 0; i < m->n; i++)
            if (!memcmp(&m->a[i], &a, sizeof a))
                return;
        if (m->n == RING_HIST)
            r->armed = false; /* too many to follow */
        else
            m->a[m->n++] = a;
    } else if (d == r->m_iotlb) {
        if (rd(d->request, "type", pl, len) != 2)
            return;
        if (r->ntlb == TLB_MAX) {
            r->armed = false;
            return;
        }
        r->tlb[r->ntlb].iova = rd(d->request, "iova", pl, len);
        r->tlb[r->ntlb].size = rd(d->request, "size", pl, len);
        r->tlb[r->ntlb++].uaddr = rd(d->request, "uaddr", pl, len);
    } else if (d == r->m_mem || d == r->m_add) {
        /* the oracle stays armed only while every region is the layout's */
        const vuf_payload_def *p = d->request;
        if (d == r->m_add) {
            vuf_gmem_region x = read_region(p, "", pl, len);
            if (!region_is_config(r, &x, NULL))
                r->armed = false;
            return;
        }
        uint64_t n = vuf_payload_count(p, pl, len);
        for (uint64_t i = 0; i < n && i < 64; i++) {
            char pre[32];
            snprintf(pre, sizeof pre, "regions[%llu].", (unsigned long long)i);
            vuf_gmem_region x = read_region(p, pre, pl, len);
            if (!region_is_config(r, &x, NULL))
                r->armed = false;
        }
    }
}

/* ---------- events ---------- */

static void on_event(void *ctx, const vuf_event *ev)
{
    vuf_runner *r = ctx;
    r->st.events++;
    if (r->o.on_event)
        r->o.on_event(r->o.ctx, ev);
    size_t before = vuf_checker_violation_count(r->chk);
    vuf_checker_feed(r->chk, ev);
    for (size_t i = before; i < vuf_checker_violation_count(r->chk); i++) {
        const vuf_violation *v = vuf_checker_violation(r->chk, i);
        if (v->side == VUF_SIDE_BACKEND && v->rule->level == VUF_MUST)
            finding(r, VUF_FINDING_MUST, v->rule->id, "%s on %s channel: %s", v->msg,
                    v->channel == VUF_CHAN_BACKEND ? "the back-end" : "the main", v->text);
    }
    if (ev->kind == VUF_EV_MSG && ev->sender == VUF_SIDE_FRONTEND &&
        ev->channel == VUF_CHAN_FRONTEND)
        model_update(r, ev);
}

static void finish_checker(vuf_runner *r)
{
    size_t before = vuf_checker_violation_count(r->chk);
    vuf_checker_finish(r->chk);
    for (size_t i = before; i < vuf_checker_violation_count(r->chk); i++) {
        const vuf_violation *v = vuf_checker_violation(r->chk, i);
        if (v->side == VUF_SIDE_BACKEND && v->rule->level == VUF_MUST)
            finding(r, VUF_FINDING_MUST, v->rule->id, "%s: %s", v->msg, v->text);
    }
    vuf_checker_reset(r->chk);
}

/* ---------- sockets ---------- */

/* Read and discard whatever is waiting on fd, closing fds that came along.
 * The bytes were reported by the device's connection layer already. */
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

/* Read the device's requests on a back-end channel peer. */
static void read_backend(vuf_runner *r, size_t pi)
{
    int fd = r->peers[pi];
    for (int k = 0; k < 64; k++) {
        uint8_t pl[256];
        vuf_rx_msg rx;
        memset(&rx, 0, sizeof rx);
        rx.payload = pl;
        rx.payload_cap = sizeof pl;
        vuf_io_status st = vuf_recv_msg(fd, &rx, 0);
        vuf_close_fds(rx.fds, &rx.nfds);
        if (st != VUF_IO_OK)
            return;
        vuf_hdr h;
        vuf_hdr_decode(rx.hdr, &h);
        r->be_peer = (int)pi;
        r->be_last_id = h.request;
        if (h.flags & VUF_F_NEED_REPLY) {
            r->be_pending = true;
            r->be_id = h.request;
        }
    }
}

static void collect(vuf_runner *r)
{
    if (r->fe >= 0)
        drain(r->fe);
    if (!r->npeers)
        return;
    /* one poll finds the peers the device wrote to */
    struct pollfd pf[MAX_PEERS];
    for (size_t i = 0; i < r->npeers; i++)
        pf[i] = (struct pollfd){.fd = r->peers[i], .events = POLLIN};
    if (poll(pf, (nfds_t)r->npeers, 0) <= 0)
        return;
    for (size_t i = 0; i < r->npeers; i++)
        if (r->peers[i] >= 0 && (pf[i].revents & POLLIN))
            read_backend(r, i);
}

/* Let the device do everything the last action caused: step until a step
 * reports no new event (bounded). */
static void step(vuf_runner *r)
{
    for (int i = 0; i < STEPS && r->conn; i++) {
        uint64_t ev = r->st.events;
        if (!vuf_ref_conn_step(r->conn, 0)) {
            vuf_ref_conn_free(r->conn);
            r->conn = NULL;
        }
        collect(r);
        if (r->st.events == ev)
            break;
    }
    guest_check(r);
}

static void disconnect(vuf_runner *r)
{
    /* a front-end leaves once what it sent was read and answered (a big raw
     * write can hold more messages than a few steps take) */
    for (int i = 0; i < SETTLE_STEPS && r->conn; i++) {
        uint64_t ev = r->st.events;
        step(r);
        if (r->st.events == ev)
            break;
    }
    if (r->fe >= 0) {
        close(r->fe);
        r->fe = -1;
    }
    if (r->conn) {
        vuf_ref_conn_step(r->conn, 0); /* the device sees the close */
        vuf_ref_conn_free(r->conn);
        r->conn = NULL;
        guest_check(r); /* what that last step wrote is judged too */
    }
    finish_checker(r);
    r->be_pending = false;
    r->be_peer = -1;
    memset(r->rings, 0, sizeof r->rings);
    r->ntlb = 0;
    r->armed = true;
}

static void connect_dev(vuf_runner *r)
{
    if (r->conn)
        return;
    if (r->fe >= 0)
        disconnect(r);
    int sv[2];
    if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv))
        return;
    r->fe = sv[0];
    vuf_ref_conn_opts o = {
        .io_timeout_ms = 0, .backend_timeout_ms = -1, .on_event = on_event, .ctx = r};
    r->conn = vuf_ref_conn_new(r->dev, sv[1], &o);
    if (!r->conn) {
        close(r->fe);
        r->fe = -1;
    }
}

/* ---------- fds as typed resources ---------- */

static int keep(vuf_runner *r, int fd, int guest)
{
    if (fd < 0)
        return -1;
    if (r->nh == MAX_HFDS) {
        close(fd);
        return -1;
    }
    r->h[r->nh].fd = fd;
    r->h[r->nh].eventfd = false;
    r->h[r->nh++].guest = guest;
    return fd;
}

static void keep_peer(vuf_runner *r, int fd)
{
    if (r->npeers < MAX_PEERS)
        r->peers[r->npeers++] = fd;
    else
        close(fd);
}

static int make_socket(vuf_runner *r, int type)
{
    int sv[2];
    if (socketpair(AF_UNIX, type | SOCK_CLOEXEC, 0, sv))
        return -1;
    if (type == SOCK_STREAM)
        keep_peer(r, sv[1]);
    else
        keep(r, sv[1], -1);
    return keep(r, sv[0], -1);
}

static int make_sized(vuf_runner *r, bool file, uint64_t size)
{
    int fd = file ? open("/tmp", O_TMPFILE | O_RDWR | O_CLOEXEC, 0600)
                  : memfd_create("vufuzz-session", MFD_CLOEXEC);
    if (fd >= 0 && ftruncate(fd, (off_t)size)) {
        close(fd);
        fd = -1;
    }
    return keep(r, fd, -1);
}

/* An fd of the kind a session names (the front-end keeps its copy until
 * the session ends). -2: dropped (a closed number: the kernel refuses it). */
static int make_fd(vuf_runner *r, const Vuf__Fd *spec, bool size_derived, int *guest)
{
    *guest = -1;
    uint64_t size = spec->has_size || size_derived ? spec->size : VUF_SESSION_DEFAULT_FD_SIZE;
    if (size == 0 || size > VUF_SESSION_MAX_FD_SIZE)
        size = VUF_SESSION_DEFAULT_FD_SIZE;
    switch (vuf_session_fd_kind(spec->kind)) {
    case VUF__FD_KIND__FD_EVENTFD: {
        int fd = keep(r, eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK), -1);
        if (fd >= 0)
            r->h[r->nh - 1].eventfd = true;
        return fd;
    }
    case VUF__FD_KIND__FD_MEMFD:
        return make_sized(r, false, size);
    case VUF__FD_KIND__FD_FILE:
        return make_sized(r, true, size);
    case VUF__FD_KIND__FD_SOCKET:
        return make_socket(r, SOCK_STREAM);
    case VUF__FD_KIND__FD_SOCKET_PEER_CLOSED: {
        int sv[2];
        if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv))
            return -1;
        close(sv[1]);
        return keep(r, sv[0], -1);
    }
    case VUF__FD_KIND__FD_SOCKET_LISTEN: {
        int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
        struct sockaddr_un a = {.sun_family = AF_UNIX};
        /* an abstract address, unique in this process */
        int n = snprintf(a.sun_path + 1, sizeof a.sun_path - 1, "vufuzz-%d-%u", (int)getpid(),
                         r->serial++);
        if (fd >= 0 && (bind(fd, (struct sockaddr *)&a,
                             (socklen_t)(offsetof(struct sockaddr_un, sun_path) + 1 + n)) ||
                        listen(fd, 1))) {
            close(fd);
            fd = -1;
        }
        return keep(r, fd, -1);
    }
    case VUF__FD_KIND__FD_SOCKET_DGRAM:
        return make_socket(r, SOCK_DGRAM);
    case VUF__FD_KIND__FD_PIPE_READ:
    case VUF__FD_KIND__FD_PIPE_WRITE: {
        int p[2];
        if (pipe2(p, O_CLOEXEC))
            return -1;
        bool rd_end = vuf_session_fd_kind(spec->kind) == VUF__FD_KIND__FD_PIPE_READ;
        keep(r, p[rd_end ? 1 : 0], -1);
        return keep(r, p[rd_end ? 0 : 1], -1);
    }
    case VUF__FD_KIND__FD_DEVNULL:
        return keep(r, open("/dev/null", O_RDWR | O_CLOEXEC), -1);
    case VUF__FD_KIND__FD_MAIN_CHANNEL:
        return r->fe >= 0 ? keep(r, fcntl(r->fe, F_DUPFD_CLOEXEC, 0), -1) : -1;
    case VUF__FD_KIND__FD_BACKEND_CHANNEL:
        if (r->be_peer >= 0 && r->peers[r->be_peer] >= 0)
            return keep(r, fcntl(r->peers[r->be_peer], F_DUPFD_CLOEXEC, 0), -1);
        return make_socket(r, SOCK_STREAM);
    case VUF__FD_KIND__FD_CLOSED_NUMBER:
        return -2;
    case VUF__FD_KIND__FD_DUP: {
        if (r->nh == 0)
            return keep(r, eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK), -1);
        size_t i = spec->ref % r->nh;
        *guest = r->h[i].guest;
        bool efd = r->h[i].eventfd;
        int fd = keep(r, fcntl(r->h[i].fd, F_DUPFD_CLOEXEC, 0), *guest);
        if (fd >= 0)
            r->h[r->nh - 1].eventfd = efd;
        return fd;
    }
    case VUF__FD_KIND__FD_GUEST_MEMORY:
        *guest = (int)(spec->ref % r->nreg);
        return r->reg[*guest].fd;
    case VUF__FD_KIND__FD_OTHER:
    default:
        return keep(r, epoll_create1(EPOLL_CLOEXEC), -1);
    }
}

/* ---------- sending ---------- */

/* Create the fds of the wire form; guests[i] is the guest region of fd i. */
static size_t make_fds(vuf_runner *r, const vuf_session_wire *w, int *fds, int *guests)
{
    size_t n = 0;
    for (size_t i = 0; i < w->nfds; i++) {
        int g;
        int fd = make_fd(r, &w->fds[i], w->fd_size_derived[i], &g);
        if (fd == -2)
            continue; /* dropped by the kernel at the sender */
        if (fd < 0) {
            /* out of resources: send a fresh eventfd in its place */
            fd = keep(r, eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK), -1);
            g = -1;
        }
        if (fd >= 0) {
            guests[n] = g;
            fds[n++] = fd;
        }
    }
    return n;
}

/* Guest memory fds may only map the session's layout: anything else (a
 * guest memfd as a log, an inflight buffer, a region elsewhere) means the
 * device may write guest memory in places the oracle cannot predict. */
static void guard_guest_fds(vuf_runner *r, const vuf_session_wire *w, const int *guests, size_t n)
{
    bool any = false;
    for (size_t i = 0; i < n; i++)
        any |= guests[i] >= 0;
    if (!any)
        return;
    if (!w->def || (w->def != r->m_mem && w->def != r->m_add) || w->len < VUF_HDR_SIZE) {
        r->armed = false;
        return;
    }
    const uint8_t *pl = w->data + VUF_HDR_SIZE;
    size_t len = w->len - VUF_HDR_SIZE;
    for (size_t i = 0; i < n; i++) {
        if (guests[i] < 0)
            continue;
        char pre[32] = "";
        if (w->def == r->m_mem)
            snprintf(pre, sizeof pre, "regions[%zu].", i);
        vuf_gmem_region x = read_region(w->def->request, pre, pl, len);
        int k;
        if (!region_is_config(r, &x, &k) || k != guests[i])
            r->armed = false;
    }
}

/* Is fd one of the front-end's eventfds? */
static bool is_eventfd(const vuf_runner *r, int fd)
{
    for (size_t i = 0; i < r->nh; i++)
        if (r->h[i].fd == fd)
            return r->h[i].eventfd;
    return false;
}

/* Send a built message; returns its first fd (or -1). */
static int send_wire(vuf_runner *r, bool backend, const vuf_session_wire *w)
{
    int fds[VUF_SESSION_MAX_FDS], guests[VUF_SESSION_MAX_FDS];
    size_t n = make_fds(r, w, fds, guests);
    if (!backend)
        guard_guest_fds(r, w, guests, n);
    int sock = backend ? (r->be_peer >= 0 ? r->peers[r->be_peer] : -1) : r->fe;
    if (sock < 0 || w->len == 0)
        return -1;
    r->st.messages++;
    vuf_send_msg(sock, w->data, w->len, fds, n, 0);
    return n ? fds[0] : -1;
}

static void send_message(vuf_runner *r, bool backend, const Vuf__Message *m)
{
    char err[200];
    if (vuf_session_build(r->spec, backend ? VUF_CHAN_BACKEND : VUF_CHAN_FRONTEND, m, r->wire, err,
                          sizeof err))
        return; /* not buildable against this table: nothing is sent */
    if (!backend && r->wire->def == r->m_kick && r->wire->len >= VUF_HDR_SIZE + 8) {
        /* remember the eventfd the front-end kicks queue q with */
        uint64_t u;
        memcpy(&u, r->wire->data + VUF_HDR_SIZE, 8);
        int fd = send_wire(r, false, r->wire);
        uint32_t q = (uint32_t)(u & 0xff);
        /* kicks are written only to the front-end's own eventfds */
        if (q < MAX_QUEUES)
            r->kick[q] = (u & 0x100) || !is_eventfd(r, fd) ? -1 : fd;
        return;
    }
    send_wire(r, backend, r->wire);
}

/* A message built from name and integer fields (the harness's own). */
static void send_simple(vuf_runner *r, const char *name, const char *f1, uint64_t v1,
                        const char *f2, uint64_t v2)
{
    Vuf__Message m = VUF__MESSAGE__INIT;
    Vuf__Field fa = VUF__FIELD__INIT, fb = VUF__FIELD__INIT;
    Vuf__Field *fl[2] = {&fa, &fb};
    m.name = (char *)name;
    fa.path = (char *)f1;
    fa.has_value = true;
    fa.value = v1;
    fb.path = (char *)f2;
    fb.has_value = true;
    fb.value = v2;
    m.fields = fl;
    m.n_fields = 2;
    send_message(r, false, &m);
}

/* ---------- the back-end channel ---------- */

static void backend_reply(vuf_runner *r, const Vuf__BackendReply *b)
{
    int sock = r->be_peer >= 0 ? r->peers[r->be_peer] : -1;
    uint32_t id = r->be_pending ? r->be_id : r->be_last_id;
    r->be_pending = false;
    if (b->kind == VUF__BACKEND_REPLY__KIND__NEVER || b->kind == VUF__BACKEND_REPLY__KIND__LATE) {
        if (r->conn)
            vuf_ref_conn_backend_timeout(r->conn);
        if (b->kind == VUF__BACKEND_REPLY__KIND__NEVER)
            return;
    }
    if (sock < 0)
        return;
    uint8_t msg[VUF_HDR_SIZE + 8];
    uint64_t val = b->kind == VUF__BACKEND_REPLY__KIND__NACK ? (b->has_value ? b->value : 1) : 0;
    vuf_hdr h = {.request = id, .flags = VUF_F_VERSION | VUF_F_REPLY, .size = 8};
    if (b->kind == VUF__BACKEND_REPLY__KIND__WRONG_ID)
        h.request = id + 1;
    if (b->kind == VUF__BACKEND_REPLY__KIND__NO_REPLY_FLAG)
        h.flags = VUF_F_VERSION;
    if (b->kind == VUF__BACKEND_REPLY__KIND__WRONG_SIZE)
        h.size = 4;
    vuf_hdr_encode(&h, msg);
    memcpy(msg + VUF_HDR_SIZE, &val, 8);
    vuf_send_msg(sock, msg, VUF_HDR_SIZE + h.size, NULL, 0, 0);
}

/* Valid by default: an awaited reply is acked before anything else. */
static void auto_ack(vuf_runner *r)
{
    if (!r->be_pending)
        return;
    Vuf__BackendReply b = VUF__BACKEND_REPLY__INIT;
    b.kind = VUF__BACKEND_REPLY__KIND__ACK;
    backend_reply(r, &b);
    step(r);
}

/* ---------- guest-side actions (the driver) ---------- */

static uint32_t queue_of(const vuf_runner *r, bool has, uint32_t q)
{
    return has ? q % r->queues : 0;
}

static uint64_t ring_gpa(const vuf_runner *r, uint32_t q)
{
    return r->reg[0].gpa + RING_STRIDE * q;
}

static void write_desc(vuf_runner *r, uint64_t table, uint32_t slot, uint64_t addr, uint32_t len,
                       uint16_t flags, uint16_t next)
{
    uint8_t d[16];
    memcpy(d, &addr, 8);
    memcpy(d + 8, &len, 4);
    memcpy(d + 12, &flags, 2);
    memcpy(d + 14, &next, 2);
    g_write(r, table + 16ull * slot, d, 16);
}

static void push_avail(vuf_runner *r, uint32_t q, uint32_t head, bool has_idx, uint32_t idx)
{
    uint64_t avail = ring_gpa(r, q) + AVAIL_OFF;
    uint8_t *p = g_ptr(r, avail, 4 + 2ull * r->qsize, NULL, NULL);
    if (!p)
        return;
    uint16_t cur, h = (uint16_t)head;
    memcpy(&cur, p + 2, 2);
    g_write(r, avail + 4 + 2 * (cur % r->qsize), &h, 2);
    __atomic_thread_fence(__ATOMIC_RELEASE);
    uint16_t nidx = has_idx ? (uint16_t)idx : (uint16_t)(cur + 1);
    g_write(r, avail + 2, &nidx, 2);
}

/* Bump allocation in the heap (region 0 after the rings), wrapping. */
static uint64_t heap_alloc(vuf_runner *r, uint64_t len)
{
    len = (len + 15) & ~15ull;
    if (len > r->heap_end - r->heap_start)
        return UINT64_MAX;
    if (r->heap + len > r->heap_end)
        r->heap = r->heap_start;
    uint64_t a = r->heap;
    r->heap += len;
    return a;
}

typedef struct {
    uint64_t addr;
    uint32_t len;
    uint16_t flags;
} chain_desc;

static void blk_request(vuf_runner *r, const Vuf__BlkRequest *b)
{
    uint32_t q = queue_of(r, b->has_queue, b->queue);
    uint32_t type = b->type;
    uint32_t len = b->has_len ? b->len : type == 8 ? 20 : type == 4 ? 0 : 512;
    if (len > 1u << 20)
        len = 1u << 20;
    uint32_t segs = b->has_segments && b->segments ? b->segments : 1;
    if (segs > 16)
        segs = 16;
    if (len && segs > len)
        segs = len;
    uint64_t hdr = heap_alloc(r, 16), data = heap_alloc(r, len ? len : 1),
             status = heap_alloc(r, 1);
    if (hdr == UINT64_MAX || data == UINT64_MAX || status == UINT64_MAX)
        return;
    uint8_t h[16] = {0};
    memcpy(h, &type, 4);
    uint64_t sector = b->has_sector ? b->sector : 0;
    memcpy(h + 8, &sector, 8);
    g_write(r, hdr, h, 16);
    bool out = type == 1;
    if (out && b->has_data && b->data.len) {
        for (uint32_t i = 0; i < len; i += (uint32_t)b->data.len)
            g_write(r, data + i, b->data.data, len - i < b->data.len ? len - i : b->data.len);
    }
    uint8_t st = 0xff;
    g_write(r, status, &st, 1);
    /* the chain: header, data segments, status */
    chain_desc c[18];
    size_t n = 0;
    c[n++] = (chain_desc){hdr, 16, 0};
    for (uint32_t s = 0; len && s < segs; s++) {
        uint32_t part = len / segs + (s < len % segs);
        uint64_t at = data + (uint64_t)(len / segs) * s + (s < len % segs ? s : len % segs);
        c[n++] = (chain_desc){at, part, (uint16_t)(out ? 0 : 2)};
    }
    c[n++] = (chain_desc){status, 1, 2};
    uint64_t table = ring_gpa(r, q);
    uint32_t base = r->next_desc[q];
    if (b->has_indirect && b->indirect) {
        uint64_t it = heap_alloc(r, 16 * n);
        if (it == UINT64_MAX)
            return;
        for (size_t i = 0; i < n; i++)
            write_desc(r, it, (uint32_t)i, c[i].addr, c[i].len,
                       (uint16_t)(c[i].flags | (i + 1 < n ? 1 : 0)), (uint16_t)(i + 1));
        write_desc(r, table, base % r->qsize, it, (uint32_t)(16 * n), 4, 0);
        r->next_desc[q] = (base + 1) % r->qsize;
    } else {
        for (size_t i = 0; i < n; i++)
            write_desc(r, table, (uint32_t)((base + i) % r->qsize), c[i].addr, c[i].len,
                       (uint16_t)(c[i].flags | (i + 1 < n ? 1 : 0)),
                       (uint16_t)((base + i + 1) % r->qsize));
        r->next_desc[q] = (uint32_t)((base + n) % r->qsize);
    }
    push_avail(r, q, base % r->qsize, false, 0);
}

static void kick(vuf_runner *r, const Vuf__Kick *k)
{
    uint32_t q = queue_of(r, k->has_queue, k->queue);
    if (k->has_inband && k->inband) {
        send_simple(r, "VRING_KICK", "index", q, "num", 0);
        return;
    }
    uint64_t one = 1;
    if (r->kick[q] >= 0) {
        if (write(r->kick[q], &one, sizeof one) < 0) {
            /* a saturated eventfd is still readable: the kick is pending */
        }
    } else if (r->conn) {
        vuf_ref_conn_kick(r->conn, q); /* a polled ring */
    }
}

static void raw_action(vuf_runner *r, const Vuf__Raw *raw)
{
    int fds[VUF_SESSION_MAX_FDS];
    size_t n = 0;
    for (size_t i = 0; i < raw->n_fds && n < VUF_SESSION_MAX_FDS; i++) {
        int g;
        int fd = make_fd(r, raw->fds[i], false, &g);
        if (fd >= 0) {
            fds[n++] = fd;
            if (g >= 0)
                r->armed = false; /* guest memory through bytes the runner does not parse */
        }
    }
    bool be = raw->has_backend && raw->backend;
    int sock = be ? (r->be_peer >= 0 ? r->peers[r->be_peer] : -1) : r->fe;
    if (sock >= 0 && raw->data.len)
        vuf_send_msg(sock, raw->data.data, raw->data.len, fds, n, 0);
}

/* A new disk size: the same bytes (the disk is a prefix of one reserved
 * area), the pages beyond a shrink discarded so a later grow reads zeros. */
static void resize(vuf_runner *r, uint64_t size)
{
    if (size > MAX_DISK)
        size = MAX_DISK;
    if (!r->pool_disk)
        return;
    if (size < r->disk_size)
        madvise(r->pool_disk + size, r->disk_size - size, MADV_DONTNEED);
    r->disk_size = size;
    if (size > r->disk_high)
        r->disk_high = size;
    uint8_t *nd = size ? r->pool_disk : NULL;
    if (r->conn)
        vuf_ref_conn_set_disk(r->conn, nd, size);
    else {
        vuf_ref_out out;
        vuf_ref_out_init(&out);
        vuf_ref_set_disk(r->dev, nd, size, &out);
        vuf_ref_out_clear(&out);
    }
}

/* ---------- one action ---------- */

static void perform(vuf_runner *r, const Vuf__Action *a)
{
    if (a->action_case != VUF__ACTION__ACTION_BACKEND_REPLY)
        auto_ack(r);
    switch (a->action_case) {
    case VUF__ACTION__ACTION_SEND:
        connect_dev(r);
        send_message(r, false, a->send);
        break;
    case VUF__ACTION__ACTION_BACKEND_SEND:
        send_message(r, true, a->backend_send);
        break;
    case VUF__ACTION__ACTION_BACKEND_REPLY:
        backend_reply(r, a->backend_reply);
        break;
    case VUF__ACTION__ACTION_MEM_WRITE:
        g_write(r, a->mem_write->gpa, a->mem_write->data.data, a->mem_write->data.len);
        break;
    case VUF__ACTION__ACTION_DESC: {
        const Vuf__Desc *d = a->desc;
        uint32_t q = queue_of(r, d->has_queue, d->queue);
        uint64_t table = d->has_table ? d->table : ring_gpa(r, q);
        uint32_t slot = d->has_table ? d->index % 4096 : d->index % r->qsize;
        write_desc(r, table, slot, d->addr, d->len, (uint16_t)d->flags, (uint16_t)d->next);
        break;
    }
    case VUF__ACTION__ACTION_AVAIL:
        push_avail(r, queue_of(r, a->avail->has_queue, a->avail->queue), a->avail->head,
                   a->avail->has_idx, a->avail->idx);
        break;
    case VUF__ACTION__ACTION_BLK:
        blk_request(r, a->blk);
        break;
    case VUF__ACTION__ACTION_KICK:
        kick(r, a->kick);
        break;
    case VUF__ACTION__ACTION_RAW:
        if (!(a->raw->has_backend && a->raw->backend))
            connect_dev(r);
        raw_action(r, a->raw);
        break;
    case VUF__ACTION__ACTION_CLOSE_BACKEND:
        if (r->be_peer >= 0) {
            close(r->peers[r->be_peer]);
            r->peers[r->be_peer] = -1;
            r->be_peer = -1;
            r->be_pending = false;
        }
        break;
    case VUF__ACTION__ACTION_DISCONNECT:
        disconnect(r);
        break;
    case VUF__ACTION__ACTION_CONNECT:
        connect_dev(r);
        break;
    case VUF__ACTION__ACTION_RESIZE:
        resize(r, a->resize);
        break;
    default:
        break;
    }
}

/* Writes on the main socket only: consecutive ones go out as one batch, and
 * the device then reads them one by one, in order, in one step. */
static size_t main_write_bytes(const Vuf__Action *a)
{
    if (a->action_case == VUF__ACTION__ACTION_SEND)
        return 12 + (a->send->has_raw_payload ? a->send->raw_payload.len : 64);
    if (a->action_case == VUF__ACTION__ACTION_RAW && !(a->raw->has_backend && a->raw->backend))
        return a->raw->data.len;
    return 0;
}

/* ---------- a session ---------- */

static int count_fds(void)
{
    DIR *d = opendir("/proc/self/fd");
    int n = 0;
    if (!d)
        return -1;
    for (struct dirent *e; (e = readdir(d));)
        n += e->d_name[0] != '.';
    closedir(d);
    return n - 1;
}

/* Region g (size set) mapped and zero. The memfd is created and mapped
 * once at MAX_MEM; each session sets its size (a shrink discards the pages
 * beyond, a grow adds zero pages) and clears what it uses. */
static bool pool_region(gregion *g)
{
    if (!g->map) {
        g->fd = memfd_create("vufuzz-guest", MFD_CLOEXEC);
        if (g->fd < 0)
            return false;
        void *p = mmap(NULL, MAX_MEM, PROT_READ | PROT_WRITE, MAP_SHARED, g->fd, 0);
        g->shadow = calloc(1, MAX_MEM);
        g->allowed = calloc(1, MAX_MEM);
        if (p == MAP_FAILED || !g->shadow || !g->allowed)
            return false;
        g->map = p;
        g->fsize = 0;
    }
    if (g->fsize != g->size) {
        if (ftruncate(g->fd, (off_t)g->size))
            return false;
        g->fsize = g->size;
    }
    /* always: what a previous session left, the device included, is gone */
    memset(g->map, 0, g->size);
    memset(g->shadow, 0, g->size);
    return true;
}

static bool setup(vuf_runner *r, const Vuf__Session *s)
{
    vuf_session_guest lay;
    vuf_session_guest_of(s->config, &lay);
    r->queues = lay.queues;
    r->qsize = lay.queue_size;
    uint64_t msize = lay.region_size;
    r->nreg = lay.nregions;
    for (size_t i = 0; i < r->nreg; i++) {
        gregion *g = &r->reg[i];
        g->gpa = lay.gpa0 + msize * i;
        g->uaddr = lay.uaddr0 + msize * i;
        g->size = msize;
        if (!pool_region(g))
            return false;
    }
    r->heap_start = r->heap = r->reg[0].gpa + RING_STRIDE * r->queues;
    r->heap_end = r->reg[0].gpa + msize;
    r->disk_size = lay.disk_size;
    r->disk_high = r->disk_size;
    r->disk = r->disk_size ? r->pool_disk : NULL; /* zero: cleared when the last session ended */
    if (!r->pool_disk)
        return false;
    vuf_ref_config cfg;
    vuf_ref_config_default(&cfg);
    cfg.disk = r->disk;
    cfg.disk_size = r->disk ? r->disk_size : 0;
    cfg.queues = r->queues;
    char err[200];
    r->dev = vuf_ref_new(r->spec, &cfg, err, sizeof err);
    return r->dev != NULL;
}

static void teardown(vuf_runner *r)
{
    disconnect(r);
    if (r->dev) {
        for (int ch = 0; ch < VUF_CHAN_COUNT; ch++)
            for (uint32_t id = 0; id <= r->maxid[ch]; id++)
                r->acc[ch][id] += vuf_ref_accepted(r->dev, (vuf_channel)ch, id);
        r->st.chains += vuf_ref_chains_completed(r->dev);
        vuf_ref_free(r->dev);
        r->dev = NULL;
    }
    for (size_t i = 0; i < r->nh; i++)
        close(r->h[i].fd);
    r->nh = 0;
    for (size_t i = 0; i < r->npeers; i++)
        if (r->peers[i] >= 0)
            close(r->peers[i]);
    r->npeers = 0;
    r->nreg = 0; /* the regions stay mapped for the next session */
    if (r->pool_disk && r->disk_high)
        madvise(r->pool_disk, r->disk_high, MADV_DONTNEED); /* zero again, cheaply */
    r->disk = NULL;
    r->disk_high = 0;
}

vuf_finding vuf_runner_run(vuf_runner *r, const Vuf__Session *s)
{
    memset(&r->f, 0, sizeof r->f);
    int fds_before = 0;
    r->fe = -1;
    r->be_peer = -1;
    r->be_pending = false;
    r->be_last_id = 0;
    r->armed = true;
    r->ntlb = 0;
    r->passes = 0;
    memset(r->rings, 0, sizeof r->rings);
    memset(r->next_desc, 0, sizeof r->next_desc);
    for (int i = 0; i < MAX_QUEUES; i++)
        r->kick[i] = -1;
    r->st.sessions++;
    vuf_checker_reset(r->chk);
    bool ok = setup(r, s);
    /* the baseline after setup: the pooled guest memfds persist */
    if (!r->o.no_fd_oracle)
        fds_before = count_fds();
    if (ok) {
        connect_dev(r);
        size_t n = s->n_actions < MAX_ACTIONS ? s->n_actions : MAX_ACTIONS;
        size_t batch = 0, nbatch = 0;
        for (size_t i = 0; i < n && !r->f.kind; i++) {
            r->action = i;
            if (r->o.on_action)
                r->o.on_action(r->o.ctx, i, s->actions[i]);
            perform(r, s->actions[i]);
            r->st.actions++;
            /* step now, unless this write and the next one are a batch */
            size_t w = main_write_bytes(s->actions[i]);
            batch = w ? batch + w : 0;
            size_t nw = i + 1 < n ? main_write_bytes(s->actions[i + 1]) : 0;
            if (w && nw && batch + nw <= BATCH_BYTES && ++nbatch < BATCH_MAX)
                continue;
            batch = nbatch = 0;
            step(r);
        }
        r->action = n;
    }
    if (!r->armed)
        r->st.guest_disarmed++;
    teardown(r);
    if (!r->o.no_fd_oracle && !r->f.kind) {
        int after = count_fds();
        if (after != fds_before)
            finding(r, VUF_FINDING_FD_LEAK, "fd-leak",
                    "%d fds open before the session, %d after: the device leaked %d", fds_before,
                    after, after - fds_before);
    }
    return r->f;
}

/* ---------- the runner ---------- */

vuf_runner *vuf_runner_new(const vuf_spec *spec, const vuf_runner_opts *o)
{
    vuf_runner *r = calloc(1, sizeof *r);
    if (!r)
        return NULL;
    r->spec = spec;
    if (o)
        r->o = *o;
    r->chk = vuf_checker_new(r->o.judge_spec ? r->o.judge_spec : spec);
    r->wire = malloc(sizeof *r->wire);
    r->fe = r->be_peer = -1;
    for (int ch = 0; ch < VUF_CHAN_COUNT; ch++) {
        size_t n = vuf_spec_msg_count(spec, (vuf_channel)ch);
        r->maxid[ch] = n ? vuf_spec_msg_at(spec, (vuf_channel)ch, n - 1)->id : 0;
        r->acc[ch] = calloc((size_t)r->maxid[ch] + 1, sizeof(uint64_t));
        if (!r->acc[ch]) {
            vuf_runner_free(r);
            return NULL;
        }
    }
    if (!r->chk || !r->wire) {
        vuf_runner_free(r);
        return NULL;
    }
    r->m_num = vuf_spec_msg_by_name(spec, VUF_CHAN_FRONTEND, "SET_VRING_NUM");
    r->m_addr = vuf_spec_msg_by_name(spec, VUF_CHAN_FRONTEND, "SET_VRING_ADDR");
    r->m_mem = vuf_spec_msg_by_name(spec, VUF_CHAN_FRONTEND, "SET_MEM_TABLE");
    r->m_add = vuf_spec_msg_by_name(spec, VUF_CHAN_FRONTEND, "ADD_MEM_REG");
    r->m_iotlb = vuf_spec_msg_by_name(spec, VUF_CHAN_FRONTEND, "IOTLB_MSG");
    r->m_kick = vuf_spec_msg_by_name(spec, VUF_CHAN_FRONTEND, "SET_VRING_KICK");
    r->m_vkick = vuf_spec_msg_by_name(spec, VUF_CHAN_FRONTEND, "VRING_KICK");
    for (size_t i = 0; i < MAX_REGIONS; i++)
        r->reg[i].fd = -1;
    r->pool_disk = mmap(NULL, MAX_DISK, PROT_READ | PROT_WRITE,
                        MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    if (r->pool_disk == MAP_FAILED)
        r->pool_disk = NULL;
    return r;
}

void vuf_runner_free(vuf_runner *r)
{
    if (!r)
        return;
    vuf_checker_free(r->chk);
    for (int ch = 0; ch < VUF_CHAN_COUNT; ch++)
        free(r->acc[ch]);
    for (size_t i = 0; i < MAX_REGIONS; i++) {
        gregion *g = &r->reg[i];
        if (g->map)
            munmap(g->map, MAX_MEM);
        if (g->fd >= 0)
            close(g->fd);
        free(g->shadow);
        free(g->allowed);
    }
    if (r->pool_disk)
        munmap(r->pool_disk, MAX_DISK);
    free(r->wire);
    free(r);
}

void vuf_runner_stats_get(const vuf_runner *r, vuf_runner_stats *st)
{
    *st = r->st;
}

uint64_t vuf_runner_accepted(const vuf_runner *r, vuf_channel ch, uint32_t id)
{
    return ch < VUF_CHAN_COUNT && id <= r->maxid[ch] ? r->acc[ch][id] : 0;
}
