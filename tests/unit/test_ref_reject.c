/* SPDX-License-Identifier: Apache-2.0 */
/* Unit test of the reference device's message core (reference/ref.c): every
 * way a request is refused, and the reaction the policy prescribes for it.
 *
 * The I/O-free core is driven directly with vuf_ref_handle(). Messages are
 * written as trace lines (docs/trace-format.md) and turned into wire bytes by
 * the trace parser; the fds that travel with them are real (eventfd, memfd,
 * sockets, pipes, /dev/null), created per message and classified with
 * vuf_fd_classify().
 *
 * The reaction policy (reference/vuf_ref.h):
 *   - framing or direction errors close the connection;
 *   - any other refused request gets the table's error reply when its reply
 *     is explicit (or the connection closes when that reply has no failure
 *     form), else a NACK (u64 1) under REPLY_ACK + NEED_REPLY, else a close;
 *   - an accepted ack-type request gets u64 0 under REPLY_ACK + NEED_REPLY.
 * Every message is sent through send_msg(), which asserts the reaction, the
 * accepted/refused counters and that no fd leaked: the process's open fds
 * after the message equal those before it, less the fds handed over, plus
 * the ones the device installed (vuf_ref_fd_count). */
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
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "vuf_codec.h"
#include "vuf_event.h"
#include "vuf_ref.h"
#include "vuf_test.h"
#include "vuf_trace.h"
#include "vuf_transport.h"

#define S vuf_test_table() /* the built-in table */
static uint8_t disk[1 << 16];

/* ---- feature bits, by the table's names ---- */

static uint64_t P(const char *name)
{
    return vuf_test_feature(S, VUF_SPACE_PROTOCOL, name);
}

static uint64_t V(const char *name)
{
    return vuf_test_feature(S, VUF_SPACE_VIRTIO, name);
}

#define BASE_FEATURES (V("VERSION_1") | V("PROTOCOL_FEATURES"))

/* ---- fds ---- */

static int make_memfd(uint64_t size)
{
    int fd = memfd_create("vuf-test-ref", MFD_CLOEXEC);
    if (fd >= 0 && ftruncate(fd, (off_t)size)) {
        close(fd);
        return -1;
    }
    return fd;
}

static int make_listener(void)
{
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    struct sockaddr_un sa = {.sun_family = AF_UNIX};
    if (fd >= 0 && (bind(fd, (struct sockaddr *)&sa, sizeof(sa_family_t)) || listen(fd, 1))) {
        close(fd);
        return -1;
    }
    return fd;
}

/* Mappings of this process whose line in /proc/self/maps names `what`
 * (a memfd's name): how many the device holds. */
static int count_maps(const char *what)
{
    FILE *f = fopen("/proc/self/maps", "r");
    char line[512];
    int n = 0;
    while (f && fgets(line, sizeof line, f))
        n += strstr(line, what) != NULL;
    if (f)
        fclose(f);
    return n;
}

/* A peer end is gone: POLLHUP, or EOF on read. */
static bool peer_closed(int fd)
{
    struct pollfd p = {.fd = fd, .events = POLLIN};
    return poll(&p, 1, 0) == 1 && (p.revents & POLLHUP);
}

#define MAX_MSG_FDS 16

/* The fds of one message, from a spec "kind,kind,...":
 *   eventfd, memfd (64 KiB), memfd:SIZE, pipe, devnull, dgram, listen,
 *   socket (a connected stream socket; its peer is closed after the message),
 *   socket-closed (its peer closed before), dup:N (a dup of the test's fd N),
 *   fd:N (the test's own fd N, handed over).
 * Helpers the message does not carry (peers, the other end of a pipe) go to
 * extra[] and are closed after the message. */
typedef struct {
    int fds[MAX_MSG_FDS];
    uint8_t kinds[MAX_MSG_FDS];
    size_t n;
    int extra[MAX_MSG_FDS];
    size_t nextra;
    int external; /* fd:N entries: opened before the count */
} msg_fds;

static bool make_fds(const char *spec, msg_fds *m)
{
    memset(m, 0, sizeof *m);
    char buf[256];
    snprintf(buf, sizeof buf, "%s", spec ? spec : "");
    char *save = NULL;
    for (char *k = strtok_r(buf, ",", &save); k; k = strtok_r(NULL, ",", &save)) {
        if (m->n == MAX_MSG_FDS)
            return false;
        int fd = -1, sv[2];
        if (!strcmp(k, "eventfd")) {
            fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
        } else if (!strncmp(k, "memfd", 5)) {
            fd = make_memfd(k[5] == ':' ? strtoull(k + 6, NULL, 0) : 0x10000);
        } else if (!strcmp(k, "pipe")) {
            if (!pipe2(sv, O_CLOEXEC)) {
                fd = sv[0];
                m->extra[m->nextra++] = sv[1];
            }
        } else if (!strcmp(k, "devnull")) {
            fd = open("/dev/null", O_RDWR | O_CLOEXEC);
        } else if (!strcmp(k, "dgram")) {
            fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
        } else if (!strcmp(k, "listen")) {
            fd = make_listener();
        } else if (!strcmp(k, "socket") || !strcmp(k, "socket-closed")) {
            if (!socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv)) {
                fd = sv[0];
                if (!strcmp(k, "socket"))
                    m->extra[m->nextra++] = sv[1];
                else
                    close(sv[1]);
            }
        } else if (!strncmp(k, "dup:", 4)) {
            fd = fcntl(atoi(k + 4), F_DUPFD_CLOEXEC, 0);
        } else if (!strncmp(k, "fd:", 3)) {
            fd = atoi(k + 3);
            m->external++;
        }
        if (fd < 0)
            return false;
        m->fds[m->n] = fd;
        m->kinds[m->n++] = (uint8_t)vuf_fd_classify(fd);
    }
    return true;
}

/* ---- one message, one reaction ---- */

typedef enum {
    R_NONE,  /* accepted, no reply (no NEED_REPLY, or no REPLY_ACK) */
    R_ACK,   /* accepted, u64 0 */
    R_REPLY, /* accepted, an explicit reply (the caller checks it) */
    R_NACK,  /* refused, u64 1 */
    R_ERROR, /* refused, the table's reply-error form */
    R_CLOSE, /* refused, the connection is closed, no reply */
} reaction;

static const char *const reaction_name[] = {"none", "ack", "reply", "nack", "error", "close"};

typedef struct {
    size_t nreplies; /* replies on the main channel */
    vuf_hdr hdr;     /* of the first one */
    uint8_t pl[VUF_REF_MSG_MAX];
    size_t pl_len;
    uint64_t u64; /* its first 8 payload bytes */
    int reply_fds;
    vuf_fdkind reply_kind;
    uint64_t reply_ino, reply_size;
    size_t nbackend; /* requests on the back-end channel */
    bool close, backend_opened, backend_closed;
    const char *reason;
    const char *rule;
} result;

static uint32_t max_front_id(void)
{
    size_t n = vuf_spec_msg_count(S, VUF_CHAN_FRONTEND);
    return vuf_spec_msg_at(S, VUF_CHAN_FRONTEND, n - 1)->id;
}

static void record(const vuf_ref_out *o, result *r)
{
    memset(r, 0, sizeof *r);
    r->close = o->close;
    r->backend_opened = o->backend_opened;
    r->backend_closed = o->backend_closed;
    r->reason = o->reason;
    r->rule = o->rule;
    for (size_t i = 0; i < o->nmsgs; i++) {
        const vuf_ref_msg *m = &o->msgs[i];
        if (m->channel == VUF_CHAN_BACKEND) {
            r->nbackend++;
            continue;
        }
        if (r->nreplies++)
            continue;
        vuf_hdr_decode(m->data, &r->hdr);
        r->pl_len = m->len - VUF_HDR_SIZE;
        memcpy(r->pl, m->data + VUF_HDR_SIZE, r->pl_len);
        if (r->pl_len >= 8)
            memcpy(&r->u64, r->pl, 8);
        r->reply_fds = m->fd >= 0;
        if (m->fd >= 0) {
            struct stat st;
            r->reply_kind = vuf_fd_classify(m->fd);
            if (!fstat(m->fd, &st)) {
                r->reply_ino = (uint64_t)st.st_ino;
                r->reply_size = (uint64_t)st.st_size;
            }
        }
    }
}

/* Check a recorded reaction against the expected one. */
static void check_reaction(const result *r, const vuf_msg_def *def, uint32_t id, reaction want,
                           const char *line)
{
    const uint32_t rflags = VUF_F_VERSION | VUF_F_REPLY;
    const char *why = r->reason ? r->reason : "-";
    if (want == R_CLOSE || want == R_NONE) {
        CHECK(r->close == (want == R_CLOSE) && r->nreplies == 0,
              "%s: want %s, got close=%d replies=%zu (%s)", line, reaction_name[want], r->close,
              r->nreplies, why);
        return;
    }
    CHECK(!r->close && r->nreplies == 1 && r->hdr.request == id && r->hdr.flags == rflags &&
              r->hdr.size == r->pl_len,
          "%s: want one %s reply, got close=%d replies=%zu id=%u flags=0x%x (%s)", line,
          reaction_name[want], r->close, r->nreplies, r->hdr.request, r->hdr.flags, why);
    if (want == R_ACK || want == R_NACK)
        CHECK(r->pl_len == 8 && r->u64 == (want == R_NACK) && !r->reply_fds,
              "%s: want u64 %d, got %zu bytes u64=%llu (%s)", line, want == R_NACK, r->pl_len,
              (unsigned long long)r->u64, why);
    if (want == R_ERROR) {
        if (def && def->reply_error == VUF_RERR_U64)
            CHECK(r->pl_len == 8 && r->u64 == def->reply_error_value && !r->reply_fds,
                  "%s: want the error reply u64 0x%llx, got %zu bytes u64=0x%llx (%s)", line,
                  (unsigned long long)def->reply_error_value, r->pl_len, (unsigned long long)r->u64,
                  why);
        else
            CHECK(def && def->reply_error == VUF_RERR_EMPTY && r->pl_len == 0 && !r->reply_fds,
                  "%s: want the empty error reply, got %zu bytes (%s)", line, r->pl_len, why);
    }
}

/* Send one message (a trace line without "F>B main ") with the fds of
 * `fdspec`, check the reaction, the counters and the fd balance, and return
 * what the device said. */
static result send_msg(vuf_ref *d, const char *fdspec, reaction want, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

static result send_msg(vuf_ref *d, const char *fdspec, reaction want, const char *fmt, ...)
{
    char text[1024], line[1100];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(text, sizeof text, fmt, ap);
    va_end(ap);
    snprintf(line, sizeof line, "F>B main %s", text);
    result r;
    memset(&r, 0, sizeof r);

    vuf_diag diag;
    vuf_trace *t = vuf_trace_new();
    if (!t || vuf_trace_parse_line(t, S, line, 1, "test", &diag) != 1) {
        CHECK(0, "%s: does not parse: %s", text, t ? diag.text : "out of memory");
        vuf_trace_free(t);
        return r;
    }
    const vuf_event *ev = vuf_trace_event(t, 0);
    uint32_t id = 0;
    bool has_hdr = ev->len >= VUF_HDR_SIZE; /* a short message has no id */
    if (has_hdr)
        memcpy(&id, ev->data, 4);
    const vuf_msg_def *def = vuf_spec_msg(S, VUF_CHAN_FRONTEND, id);

    int base = vuf_test_count_fds();
    size_t dev_before = vuf_ref_fd_count(d);
    uint64_t acc = vuf_ref_accepted(d, VUF_CHAN_FRONTEND, id);
    uint64_t ref = vuf_ref_refused(d, VUF_CHAN_FRONTEND, id);
    msg_fds m;
    if (!make_fds(fdspec, &m)) {
        CHECK(0, "%s: cannot create fds '%s': %s", text, fdspec, strerror(errno));
        for (size_t i = 0; i < m.n; i++)
            close(m.fds[i]);
        for (size_t i = 0; i < m.nextra; i++)
            close(m.extra[i]);
        vuf_trace_free(t);
        return r;
    }

    vuf_ref_out out;
    vuf_ref_out_init(&out);
    vuf_ref_handle(d, ev->data, ev->len, m.fds, m.kinds, m.n, &out);
    record(&out, &r);
    vuf_ref_out_clear(&out);
    for (size_t i = 0; i < m.nextra; i++)
        close(m.extra[i]);
    vuf_trace_free(t);

    check_reaction(&r, def, id, want, text);
    bool accepted = want == R_NONE || want == R_ACK || want == R_REPLY;
    bool counted = has_hdr && id <= max_front_id();
    CHECK(vuf_ref_accepted(d, VUF_CHAN_FRONTEND, id) == acc + (accepted && counted) &&
              vuf_ref_refused(d, VUF_CHAN_FRONTEND, id) == ref + (!accepted && counted),
          "%s: counters accepted %llu->%llu refused %llu->%llu", text, (unsigned long long)acc,
          (unsigned long long)vuf_ref_accepted(d, VUF_CHAN_FRONTEND, id), (unsigned long long)ref,
          (unsigned long long)vuf_ref_refused(d, VUF_CHAN_FRONTEND, id));
    if (!accepted)
        CHECK(vuf_ref_fd_count(d) == dev_before, "%s: a refused message changed the device's fds",
              text);
    int after = vuf_test_count_fds();
    int want_fds = base - m.external + (int)vuf_ref_fd_count(d) - (int)dev_before;
    CHECK(after == want_fds, "%s [fds %s]: %d fds open, want %d (leak or double close)", text,
          fdspec, after, want_fds);
    return r;
}

/* ---- devices ---- */

static vuf_ref *dev_new(uint32_t queues, bool read_only)
{
    vuf_ref_config cfg;
    vuf_ref_config_default(&cfg);
    cfg.disk = disk;
    cfg.disk_size = sizeof disk;
    cfg.queues = queues;
    cfg.read_only = read_only;
    char err[200];
    vuf_ref *d = vuf_ref_new(S, &cfg, err, sizeof err);
    if (!d) {
        printf("FAIL: vuf_ref_new: %s\n", err);
        exit(1);
    }
    return d;
}

/* The normal handshake: features, protocol features, owner, features acked. */
static void handshake(vuf_ref *d, uint64_t proto, uint64_t features)
{
    result r = send_msg(d, "", R_REPLY, "GET_FEATURES");
    CHECK((r.u64 & VUF_REF_FEATURES) == VUF_REF_FEATURES, "GET_FEATURES offers 0x%llx",
          (unsigned long long)r.u64);
    r = send_msg(d, "", R_REPLY, "GET_PROTOCOL_FEATURES");
    CHECK(r.u64 == VUF_REF_PROTOCOL_FEATURES, "GET_PROTOCOL_FEATURES offers 0x%llx",
          (unsigned long long)r.u64);
    reaction ack = proto & P("REPLY_ACK") ? R_ACK : R_NONE;
    send_msg(d, "", R_NONE, "SET_PROTOCOL_FEATURES u64=0x%llx", (unsigned long long)proto);
    send_msg(d, "", ack, "SET_OWNER need_reply");
    send_msg(d, "", ack, "SET_FEATURES need_reply u64=0x%llx", (unsigned long long)features);
}

static vuf_ref *dev_ready(uint32_t queues, uint64_t proto, uint64_t features)
{
    vuf_ref *d = dev_new(queues, false);
    handshake(d, proto, features);
    return d;
}

#define FULL VUF_REF_PROTOCOL_FEATURES
#define REGION0 "regions[0].guest_addr=0 regions[0].size=0x10000 regions[0].user_addr=0x100000"

/* ---- the cases ---- */

VUF_TEST(handshake_and_acks)
{
    /* without REPLY_ACK: NEED_REPLY gets nothing, a refusal closes */
    vuf_ref *d = dev_ready(1, P("MQ"), BASE_FEATURES);
    send_msg(d, "", R_NONE, "SET_VRING_NUM need_reply index=0 num=8");
    send_msg(d, "", R_CLOSE, "SET_VRING_NUM need_reply index=0 num=3");
    send_msg(d, "", R_CLOSE, "SET_VRING_NUM index=0 num=3");
    vuf_ref_free(d);

    d = dev_ready(1, FULL, BASE_FEATURES);
    /* accepted ack-type messages: u64 0 with NEED_REPLY, nothing without */
    send_msg(d, "", R_ACK, "SET_VRING_NUM need_reply index=0 num=8");
    send_msg(d, "", R_NONE, "SET_VRING_NUM index=0 num=16");
    send_msg(d, "", R_ACK, "SET_VRING_BASE need_reply index=0 num=5");
    result r = send_msg(d, "", R_REPLY, "GET_VRING_BASE index=0 num=0");
    CHECK(r.pl_len == 8 && r.u64 == 5ull << 32, "GET_VRING_BASE returns index 0 num 5: 0x%llx",
          (unsigned long long)r.u64);
    /* undefined flag bits above bit 3 are ignored */
    send_msg(d, "", R_ACK, "SET_VRING_NUM hdr.flags=0x109 index=0 num=32");
    send_msg(d, "", R_NONE, "SET_VRING_NUM hdr.flags=0x80000001 index=0 num=32");
    /* refused: a NACK with NEED_REPLY, a close without */
    send_msg(d, "", R_NACK, "SET_VRING_NUM need_reply index=0 num=3");
    send_msg(d, "", R_CLOSE, "SET_VRING_NUM index=0 num=3");
    send_msg(d, "", R_NACK, "SET_OWNER need_reply"); /* owner twice */
    send_msg(d, "", R_NACK, "SET_VRING_BASE need_reply index=0 num=0x10000");
    send_msg(d, "", R_NACK, "SET_STATUS need_reply u64=0x100");
    send_msg(d, "", R_ACK, "SET_STATUS need_reply u64=0xf");
    r = send_msg(d, "", R_REPLY, "GET_STATUS");
    CHECK(r.u64 == 0xf, "GET_STATUS returns 0xf: 0x%llx", (unsigned long long)r.u64);
    r = send_msg(d, "", R_REPLY, "GET_MAX_MEM_SLOTS");
    CHECK(r.u64 == 32, "GET_MAX_MEM_SLOTS returns 32: %llu", (unsigned long long)r.u64);
    r = send_msg(d, "", R_REPLY, "GET_QUEUE_NUM");
    CHECK(r.u64 == 1, "GET_QUEUE_NUM returns 1: %llu", (unsigned long long)r.u64);
    /* the counters add up */
    CHECK(vuf_ref_accepted(d, VUF_CHAN_FRONTEND, 8) == 4 &&
              vuf_ref_refused(d, VUF_CHAN_FRONTEND, 8) == 2,
          "SET_VRING_NUM: 4 accepted, 2 refused (%llu, %llu)",
          (unsigned long long)vuf_ref_accepted(d, VUF_CHAN_FRONTEND, 8),
          (unsigned long long)vuf_ref_refused(d, VUF_CHAN_FRONTEND, 8));
    /* an explicit reply is the only reply, NEED_REPLY or not */
    r = send_msg(d, "", R_REPLY, "GET_FEATURES need_reply");
    CHECK(r.pl_len == 8 && r.u64 == VUF_REF_FEATURES, "GET_FEATURES need_reply: the features");
    /* a started ring: its size, base and the features are fixed, but for LOG_ALL */
    send_msg(d, "", R_ACK, "VRING_KICK need_reply index=0 num=0");
    send_msg(d, "", R_NACK, "SET_VRING_NUM need_reply index=0 num=8");
    send_msg(d, "", R_NACK, "SET_VRING_BASE need_reply index=0 num=0");
    send_msg(d, "", R_NACK, "SET_FEATURES need_reply u64=0x%llx",
             (unsigned long long)(BASE_FEATURES | V("RING_EVENT_IDX")));
    send_msg(d, "", R_ACK, "SET_FEATURES need_reply u64=0x%llx",
             (unsigned long long)(BASE_FEATURES | V("LOG_ALL")));
    send_msg(d, "", R_REPLY, "GET_VRING_BASE index=0 num=0"); /* stops it */
    send_msg(d, "", R_ACK, "SET_VRING_NUM need_reply index=0 num=8");
    /* RESET_DEVICE forgets the acked features: bit 30 is no longer negotiated,
     * a SHOULD the device tolerates (GATE-BIT30-NEGOTIATED: QEMU sends
     * SET_BACKEND_REQ_FD, which has the same gate, before it acks bit 30) */
    send_msg(d, "", R_ACK, "RESET_DEVICE need_reply");
    send_msg(d, "", R_ACK, "SET_VRING_ENABLE need_reply index=0 num=1");
    send_msg(d, "", R_ACK, "SET_FEATURES need_reply u64=0x%llx", (unsigned long long)BASE_FEATURES);
    send_msg(d, "", R_ACK, "SET_VRING_ENABLE need_reply index=0 num=1");
    vuf_ref_free(d);
}

VUF_TEST(vring_index)
{
    vuf_ref *d = dev_ready(1, FULL, BASE_FEATURES);
    send_msg(d, "", R_NACK, "SET_VRING_NUM need_reply index=1 num=8");
    send_msg(d, "", R_CLOSE, "SET_VRING_NUM index=1 num=8");
    send_msg(d, "", R_NACK, "SET_VRING_NUM need_reply index=0xffffffff num=8");
    send_msg(d, "", R_NACK, "SET_VRING_BASE need_reply index=1 num=0");
    send_msg(d, "", R_NACK, "SET_VRING_ADDR need_reply index=1");
    send_msg(d, "", R_NACK, "SET_VRING_ENABLE need_reply index=1 num=1");
    send_msg(d, "eventfd", R_NACK, "SET_VRING_KICK need_reply u64=5");
    send_msg(d, "eventfd", R_NACK, "SET_VRING_CALL need_reply u64=1");
    send_msg(d, "eventfd", R_NACK, "SET_VRING_ERR need_reply u64=0xff");
    send_msg(d, "", R_NACK, "SET_VRING_KICK need_reply u64=0x105");
    send_msg(d, "", R_NACK, "VRING_KICK need_reply index=1 num=0");
    /* GET_VRING_BASE has an explicit reply with no failure form: close */
    send_msg(d, "", R_CLOSE, "GET_VRING_BASE index=9 num=0");
    send_msg(d, "", R_CLOSE, "GET_VRING_BASE need_reply index=1 num=0");
    /* index 0 is fine, and its fd is installed */
    send_msg(d, "eventfd", R_ACK, "SET_VRING_KICK need_reply u64=0");
    send_msg(d, "eventfd", R_ACK, "SET_VRING_CALL need_reply u64=0");
    send_msg(d, "eventfd", R_ACK, "SET_VRING_ERR need_reply u64=0");
    CHECK(vuf_ref_fd_count(d) == 3, "3 eventfds installed: %zu", vuf_ref_fd_count(d));
    /* a replacement closes the old fd (the balance in send_msg says so) */
    send_msg(d, "eventfd", R_ACK, "SET_VRING_CALL need_reply u64=0");
    send_msg(d, "", R_ACK, "SET_VRING_CALL need_reply u64=0x100");
    CHECK(vuf_ref_call_fd(d, 0) < 0, "NOFD removed the call fd");
    vuf_ref_free(d);

    d = dev_ready(4, FULL, BASE_FEATURES);
    result r = send_msg(d, "", R_REPLY, "GET_QUEUE_NUM");
    CHECK(r.u64 == 4, "GET_QUEUE_NUM: 4 queues, got %llu", (unsigned long long)r.u64);
    send_msg(d, "", R_ACK, "SET_VRING_NUM need_reply index=3 num=8");
    send_msg(d, "", R_NACK, "SET_VRING_NUM need_reply index=4 num=8");
    send_msg(d, "eventfd", R_ACK, "SET_VRING_KICK need_reply u64=3");
    send_msg(d, "eventfd", R_NACK, "SET_VRING_KICK need_reply u64=4");
    send_msg(d, "", R_CLOSE, "GET_VRING_BASE index=4 num=0");
    vuf_ref_free(d);
}

VUF_TEST(fd_counts_and_kinds)
{
    vuf_ref *d = dev_ready(1, FULL, BASE_FEATURES);
    /* too many */
    send_msg(d, "eventfd,eventfd", R_NACK, "SET_VRING_CALL need_reply u64=0");
    send_msg(d, "eventfd,eventfd,eventfd,eventfd,eventfd,eventfd,eventfd,eventfd,eventfd", R_NACK,
             "SET_VRING_CALL need_reply u64=0");
    send_msg(d, "memfd,memfd", R_NACK, "SET_MEM_TABLE need_reply " REGION0);
    /* too few */
    send_msg(d, "memfd", R_NACK,
             "SET_MEM_TABLE need_reply " REGION0 " regions[1].guest_addr=0x10000 "
             "regions[1].size=0x10000 regions[1].user_addr=0x200000");
    send_msg(d, "", R_NACK, "SET_MEM_TABLE need_reply " REGION0);
    send_msg(d, "", R_NACK, "SET_LOG_FD need_reply");
    /* fds on messages that take none */
    send_msg(d, "eventfd", R_CLOSE, "GET_FEATURES");
    send_msg(d, "eventfd", R_NACK, "SET_OWNER need_reply");
    send_msg(d, "eventfd", R_NACK, "SET_VRING_NUM need_reply index=0 num=8");
    send_msg(d, "memfd", R_NACK, "SET_FEATURES need_reply u64=0x%llx",
             (unsigned long long)BASE_FEATURES);
    send_msg(d, "socket", R_CLOSE, "GET_PROTOCOL_FEATURES");
    send_msg(d, "eventfd", R_CLOSE, "SET_VRING_NUM index=0 num=8");
    /* the NOFD bit: set with an fd, clear without one */
    send_msg(d, "eventfd", R_NACK, "SET_VRING_KICK need_reply u64=0x100");
    send_msg(d, "", R_NACK, "SET_VRING_KICK need_reply u64=0");
    send_msg(d, "eventfd", R_NACK, "SET_VRING_CALL need_reply u64=0x100");
    send_msg(d, "", R_NACK, "SET_VRING_ERR need_reply u64=0");
    send_msg(d, "", R_CLOSE, "SET_VRING_CALL u64=0");
    send_msg(d, "", R_ACK, "SET_VRING_KICK need_reply u64=0x100");
    CHECK(vuf_ref_polled_queues(d) == 1, "queue 0 is polled");
    /* kinds */
    send_msg(d, "memfd", R_NACK, "SET_VRING_CALL need_reply u64=0");
    send_msg(d, "socket", R_NACK, "SET_VRING_KICK need_reply u64=0");
    send_msg(d, "socket", R_NACK, "SET_VRING_ERR need_reply u64=0");
    send_msg(d, "memfd", R_NACK, "SET_LOG_FD need_reply");
    /* "Either eventfd or pipe/pipe2": a pipe is an event fd */
    send_msg(d, "pipe", R_ACK, "SET_VRING_ERR need_reply u64=0");
    send_msg(d, "eventfd", R_NACK, "SET_MEM_TABLE need_reply " REGION0);
    send_msg(d, "devnull", R_NACK, "SET_MEM_TABLE need_reply " REGION0);
    send_msg(d, "eventfd", R_ACK, "SET_LOG_FD need_reply");
    CHECK(vuf_ref_log_fd(d) >= 0, "SET_LOG_FD installed the eventfd");
    vuf_ref_free(d);
}

VUF_TEST(memory)
{
    vuf_ref *d = dev_ready(1, FULL, BASE_FEATURES);
    /* address ranges that wrap around 2^64 */
    send_msg(d, "memfd", R_NACK,
             "SET_MEM_TABLE need_reply regions[0].guest_addr=0 regions[0].size=0x2000 "
             "regions[0].user_addr=0xfffffffffffff000");
    send_msg(d, "memfd", R_NACK,
             "SET_MEM_TABLE need_reply regions[0].guest_addr=0xfffffffffffff000 "
             "regions[0].size=0x2000 regions[0].user_addr=0x100000");
    send_msg(d, "memfd", R_NACK,
             "SET_MEM_TABLE need_reply regions[0].guest_addr=0 regions[0].size=0x2000 "
             "regions[0].user_addr=0x100000 regions[0].mmap_offset=0xfffffffffffff000");
    send_msg(d, "memfd", R_CLOSE,
             "SET_MEM_TABLE regions[0].guest_addr=0 regions[0].size=0xffffffffffffffff "
             "regions[0].user_addr=0x1000");
    /* size 0 */
    send_msg(d, "memfd", R_NACK,
             "SET_MEM_TABLE need_reply regions[0].guest_addr=0 regions[0].size=0 "
             "regions[0].user_addr=0x100000");
    /* the fd is smaller than mmap_offset + size */
    send_msg(d, "memfd:0x1000", R_NACK, "SET_MEM_TABLE need_reply " REGION0);
    send_msg(d, "memfd:0x10000", R_NACK,
             "SET_MEM_TABLE need_reply " REGION0 " regions[0].mmap_offset=0x1000");
    send_msg(d, "memfd:0x20000,memfd:0x1000", R_NACK,
             "SET_MEM_TABLE need_reply " REGION0 " regions[1].guest_addr=0x10000 "
             "regions[1].size=0x10000 regions[1].user_addr=0x200000");
    /* overlaps, in guest and in user addresses */
    send_msg(d, "memfd,memfd", R_NACK,
             "SET_MEM_TABLE need_reply " REGION0 " regions[1].guest_addr=0x8000 "
             "regions[1].size=0x10000 regions[1].user_addr=0x200000");
    send_msg(d, "memfd,memfd", R_NACK,
             "SET_MEM_TABLE need_reply " REGION0 " regions[1].guest_addr=0x20000 "
             "regions[1].size=0x10000 regions[1].user_addr=0x10f000");
    /* the table's value checks and count bound */
    send_msg(d, "memfd", R_NACK, "SET_MEM_TABLE need_reply padding=1 " REGION0);
    send_msg(d, "memfd", R_NACK, "SET_MEM_TABLE need_reply nregions=9 " REGION0);
    CHECK(count_maps("vuf-test-ref") == 0, "refused tables left no mapping");
    /* a good table, then a replacement: mapped, and the fds closed, not kept */
    send_msg(d, "memfd", R_ACK, "SET_MEM_TABLE need_reply " REGION0);
    send_msg(d, "memfd,memfd", R_ACK,
             "SET_MEM_TABLE need_reply " REGION0 " regions[1].guest_addr=0x10000 "
             "regions[1].size=0x10000 regions[1].user_addr=0x200000");
    CHECK(vuf_ref_fd_count(d) == 0, "region fds are not kept: %zu", vuf_ref_fd_count(d));
    CHECK(count_maps("vuf-test-ref") == 2, "the replaced table was unmapped: %d mappings",
          count_maps("vuf-test-ref"));
    /* a refused replacement keeps the table as it was */
    send_msg(d, "memfd,memfd", R_NACK,
             "SET_MEM_TABLE need_reply " REGION0 " regions[1].guest_addr=0x8000 "
             "regions[1].size=0x10000 regions[1].user_addr=0x200000");
    CHECK(count_maps("vuf-test-ref") == 2, "a refused table changes nothing");

    /* ADD_MEM_REG / REM_MEM_REG (CONFIGURE_MEM_SLOTS) */
    send_msg(d, "memfd", R_NACK,
             "ADD_MEM_REG need_reply guest_addr=0x18000 size=0x10000 user_addr=0x300000");
    send_msg(d, "memfd", R_NACK,
             "ADD_MEM_REG need_reply guest_addr=0x40000 size=0x10000 user_addr=0x1ff000");
    send_msg(d, "memfd", R_NACK,
             "ADD_MEM_REG need_reply guest_addr=0x40000 size=0 user_addr=0x300000");
    send_msg(d, "memfd", R_NACK,
             "ADD_MEM_REG need_reply guest_addr=0xffffffffffff0000 size=0x20000 "
             "user_addr=0x300000");
    send_msg(d, "memfd:0x8000", R_NACK,
             "ADD_MEM_REG need_reply guest_addr=0x40000 size=0x10000 user_addr=0x300000");
    send_msg(d, "", R_NACK,
             "ADD_MEM_REG need_reply guest_addr=0x40000 size=0x10000 user_addr=0x300000");
    CHECK(count_maps("vuf-test-ref") == 2, "refused regions left no mapping");
    send_msg(d, "memfd", R_ACK,
             "ADD_MEM_REG need_reply guest_addr=0x40000 size=0x10000 user_addr=0x300000");
    CHECK(count_maps("vuf-test-ref") == 3, "ADD_MEM_REG mapped its region");
    send_msg(d, "", R_NACK,
             "REM_MEM_REG need_reply guest_addr=0x40000 size=0x8000 user_addr=0x300000");
    /* REM_MEM_REG MAY carry an fd: accepted, and the fd closed unused */
    send_msg(d, "memfd", R_ACK,
             "REM_MEM_REG need_reply guest_addr=0x40000 size=0x10000 user_addr=0x300000");
    CHECK(count_maps("vuf-test-ref") == 2, "REM_MEM_REG unmapped its region");
    send_msg(d, "", R_NACK,
             "REM_MEM_REG need_reply guest_addr=0x40000 size=0x10000 user_addr=0x300000");
    send_msg(d, "memfd,memfd", R_NACK,
             "REM_MEM_REG need_reply guest_addr=0 size=0x10000 user_addr=0x100000");

    /* SET_LOG_BASE: an explicit reply under LOG_SHMFD, error form u64 1
     * (CVE-2020-10722: mmap_offset + mmap_size overflow) */
    result r = send_msg(d, "memfd:0x1000", R_ERROR,
                        "SET_LOG_BASE mmap_size=0x2000 mmap_offset=0xfffffffffffff000");
    CHECK(r.u64 == 1, "SET_LOG_BASE overflow: error u64 1");
    send_msg(d, "memfd:0x1000", R_ERROR, "SET_LOG_BASE mmap_size=0x2000 mmap_offset=0");
    send_msg(d, "memfd:0x2000", R_ERROR, "SET_LOG_BASE mmap_size=0x1000 mmap_offset=0x1001");
    send_msg(d, "memfd:0x1000", R_ERROR, "SET_LOG_BASE need_reply mmap_size=0 mmap_offset=0");
    send_msg(d, "", R_ERROR, "SET_LOG_BASE need_reply mmap_size=0x1000 mmap_offset=0");
    send_msg(d, "eventfd", R_ERROR, "SET_LOG_BASE mmap_size=0x1000 mmap_offset=0");
    int maps = count_maps("vuf-test-ref");
    r = send_msg(d, "memfd:0x2000", R_REPLY, "SET_LOG_BASE mmap_size=0x1000 mmap_offset=0x1000");
    CHECK(r.pl_len == 8 && r.u64 == 0, "SET_LOG_BASE accepted: u64 0");
    r = send_msg(d, "memfd:0x1000", R_REPLY, "SET_LOG_BASE need_reply mmap_size=8 mmap_offset=0");
    CHECK(r.pl_len == 8 && r.u64 == 0 && count_maps("vuf-test-ref") == maps + 1,
          "a second log replaces the first: %d mappings, want %d", count_maps("vuf-test-ref"),
          maps + 1);
    vuf_ref_free(d);
    CHECK(count_maps("vuf-test-ref") == 0, "vuf_ref_free unmapped everything");

    /* without LOG_SHMFD the reply is not explicit: a NACK */
    d = dev_ready(1, P("REPLY_ACK"), BASE_FEATURES);
    send_msg(d, "memfd:0x1000", R_NACK, "SET_LOG_BASE need_reply mmap_size=0x1000 mmap_offset=0");
    send_msg(d, "memfd", R_NACK,
             "ADD_MEM_REG need_reply guest_addr=0x40000 size=0x10000 user_addr=0x300000");
    vuf_ref_free(d);
}

VUF_TEST(backend_req_fd)
{
    vuf_ref *d = dev_ready(1, FULL, BASE_FEATURES);
    static const char *const bad[] = {"eventfd",       "memfd",         "pipe",
                                      "devnull",       "dgram",         "listen",
                                      "socket-closed", "socket,socket", ""};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        result r = send_msg(d, bad[i], R_NACK, "SET_BACKEND_REQ_FD need_reply");
        CHECK(!r.backend_opened && vuf_ref_backend_fd(d) < 0, "[%s]: no back-end channel", bad[i]);
    }
    send_msg(d, "socket", R_NACK, "SET_BACKEND_REQ_FD need_reply raw=0000000000000000");
    /* with REPLY_ACK the reply is owed without NEED_REPLY too ("must respond
     * with zero for success, non-zero otherwise"): a failure reply, no close */
    send_msg(d, "pipe", R_NACK, "SET_BACKEND_REQ_FD");

    /* the main channel's own socket, either end */
    int m[2];
    CHECK(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, m) == 0, "socketpair");
    struct stat s0, s1;
    fstat(m[0], &s0);
    fstat(m[1], &s1);
    vuf_ref_set_channel_identity(d, (uint64_t)s0.st_ino, (uint64_t)s1.st_ino);
    char spec[32];
    for (int i = 0; i < 2; i++) {
        snprintf(spec, sizeof spec, "dup:%d", m[i]);
        result r = send_msg(d, spec, R_NACK, "SET_BACKEND_REQ_FD need_reply");
        CHECK(!r.backend_opened && vuf_ref_backend_fd(d) < 0, "main end %d refused", i);
    }
    close(m[0]);
    close(m[1]);

    /* a valid one, then a replacement: the old channel is closed */
    int p1[2], p2[2];
    CHECK(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, p1) == 0, "socketpair 1");
    CHECK(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, p2) == 0, "socketpair 2");
    snprintf(spec, sizeof spec, "fd:%d", p1[0]);
    result r = send_msg(d, spec, R_ACK, "SET_BACKEND_REQ_FD need_reply");
    int be1 = vuf_ref_backend_fd(d);
    CHECK(r.backend_opened && !r.backend_closed && be1 >= 0, "a valid channel is opened");
    CHECK(!peer_closed(p1[1]), "the channel is open");
    /* refusals leave the channel alone */
    send_msg(d, "eventfd", R_NACK, "SET_BACKEND_REQ_FD need_reply");
    CHECK(vuf_ref_backend_fd(d) == be1 && !peer_closed(p1[1]), "a refusal keeps the channel");
    snprintf(spec, sizeof spec, "fd:%d", p2[0]);
    r = send_msg(d, spec, R_ACK, "SET_BACKEND_REQ_FD need_reply");
    int be2 = vuf_ref_backend_fd(d);
    CHECK(r.backend_opened && r.backend_closed && be2 >= 0 && be2 != be1,
          "a repeated one replaces the channel (%d -> %d)", be1, be2);
    CHECK(peer_closed(p1[1]), "the old channel's fd was closed");
    CHECK(!peer_closed(p2[1]), "the new channel is open");
    close(p1[1]);
    vuf_ref_free(d);
    CHECK(peer_closed(p2[1]), "vuf_ref_free closed the channel");
    close(p2[1]);

    /* before protocol features are negotiated (no REPLY_ACK either): close */
    d = dev_new(1, false);
    send_msg(d, "", R_REPLY, "GET_FEATURES");
    send_msg(d, "socket", R_CLOSE, "SET_BACKEND_REQ_FD need_reply");
    send_msg(d, "socket", R_CLOSE, "SET_BACKEND_REQ_FD");
    CHECK(vuf_ref_backend_fd(d) < 0, "no back-end channel before negotiation");
    vuf_ref_free(d);

    /* BACKEND_REQ offered but not enabled: the rst's gate is "present in
     * GET_PROTOCOL_FEATURES", so the channel is taken, and never used (the
     * device sends only once BACKEND_REQ is negotiated) */
    d = dev_ready(1, P("REPLY_ACK"), BASE_FEATURES);
    send_msg(d, "socket", R_ACK, "SET_BACKEND_REQ_FD need_reply");
    CHECK(vuf_ref_backend_fd(d) >= 0, "the channel, BACKEND_REQ offered");
    vuf_ref_free(d);
    /* not offered (GET_PROTOCOL_FEATURES never asked): refused, naming the gate */
    d = dev_new(1, false);
    send_msg(d, "", R_REPLY, "GET_FEATURES");
    r = send_msg(d, "socket", R_CLOSE, "SET_BACKEND_REQ_FD");
    CHECK(r.rule && !strcmp(r.rule, "GATE-PROTOCOL"), "refused by GATE-PROTOCOL: %s",
          r.rule ? r.rule : "-");
    vuf_ref_free(d);

    /* QEMU's order: right after SET_PROTOCOL_FEATURES, before SET_FEATURES */
    d = dev_new(1, false);
    send_msg(d, "", R_REPLY, "GET_FEATURES");
    send_msg(d, "", R_REPLY, "GET_PROTOCOL_FEATURES");
    send_msg(d, "", R_NONE, "SET_PROTOCOL_FEATURES u64=0x%llx",
             (unsigned long long)(P("REPLY_ACK") | P("BACKEND_REQ")));
    r = send_msg(d, "socket", R_ACK, "SET_BACKEND_REQ_FD need_reply");
    CHECK(r.backend_opened && vuf_ref_backend_fd(d) >= 0, "accepted before SET_FEATURES");
    vuf_ref_free(d);
}

/* The usual setup mistake, QEMU without a shared memory backend: the rings'
 * addresses and a kick, no memory table. The device refuses to start the
 * ring, naming RING-ADDR-UNMAPPED, and says what is missing; with a memory
 * table it starts it. */
VUF_TEST(ring_start_needs_memory)
{
    vuf_ref *d = dev_ready(1, FULL, BASE_FEATURES);
    send_msg(d, "", R_ACK, "SET_VRING_NUM need_reply index=0 num=16");
    send_msg(d, "", R_ACK,
             "SET_VRING_ADDR need_reply index=0 flags=0 desc=0x100000 used=0x101000 "
             "avail=0x100800 log_guest_addr=0");
    result r = send_msg(d, "eventfd", R_NACK, "SET_VRING_KICK need_reply u64=0");
    CHECK(r.rule && !strcmp(r.rule, "RING-ADDR-UNMAPPED") && r.reason &&
              strstr(r.reason, "no memory table") && strstr(r.reason, "share=on"),
          "refused: %s: %s", r.rule ? r.rule : "-", r.reason ? r.reason : "-");
    CHECK(vuf_ref_kick_fd(d, 0) < 0, "no kick fd installed");
    r = send_msg(d, "", R_NACK, "SET_VRING_KICK need_reply u64=0x100"); /* polled: starts now */
    CHECK(r.rule && !strcmp(r.rule, "RING-ADDR-UNMAPPED"), "a polled ring neither");
    send_msg(d, "", R_CLOSE, "SET_VRING_KICK u64=0x100");
    send_msg(d, "memfd", R_ACK, "SET_MEM_TABLE need_reply " REGION0);
    /* outside the region now that there is one: refused at SET_VRING_ADDR */
    r = send_msg(d, "", R_NACK,
                 "SET_VRING_ADDR need_reply index=0 flags=0 desc=0x200000 used=0x101000 "
                 "avail=0x100800 log_guest_addr=0");
    CHECK(r.rule && !strcmp(r.rule, "RING-ADDR-UNMAPPED"), "outside: %s",
          r.reason ? r.reason : "-");
    send_msg(d, "eventfd", R_ACK, "SET_VRING_KICK need_reply u64=0");
    CHECK(vuf_ref_kick_fd(d, 0) >= 0, "with memory, the ring starts");
    vuf_ref_free(d);
}

VUF_TEST(gates)
{
    vuf_ref *d = dev_new(1, false);
    /* before any GET_FEATURES reply: bit 30 was not offered */
    send_msg(d, "", R_CLOSE, "GET_PROTOCOL_FEATURES");
    send_msg(d, "", R_CLOSE, "SET_PROTOCOL_FEATURES need_reply u64=0x%llx",
             (unsigned long long)P("REPLY_ACK"));
    send_msg(d, "", R_REPLY, "GET_FEATURES");
    send_msg(d, "", R_REPLY, "GET_PROTOCOL_FEATURES");
    send_msg(d, "", R_NONE, "SET_PROTOCOL_FEATURES u64=0x%llx", (unsigned long long)P("REPLY_ACK"));
    /* bit 30 offered but not acked yet: a SHOULD the device tolerates */
    send_msg(d, "", R_ACK, "SET_VRING_ENABLE need_reply index=0 num=1");
    send_msg(d, "", R_NONE, "SET_VRING_ENABLE index=0 num=1");
    /* GET_QUEUE_NUM's gate is MQ "set in queried protocol features" */
    send_msg(d, "", R_REPLY, "GET_QUEUE_NUM");
    /* protocol features not negotiated */
    send_msg(d, "", R_NACK, "VRING_KICK need_reply index=0 num=0");
    send_msg(d, "", R_ERROR, "GET_CONFIG offset=0 flags=0 payload=0000000000000000");
    send_msg(d, "", R_NACK, "SET_CONFIG need_reply offset=32 flags=0 payload=01");
    send_msg(d, "", R_CLOSE, "GET_INFLIGHT_FD num_queues=1 queue_size=16");
    send_msg(d, "memfd", R_NACK,
             "SET_INFLIGHT_FD need_reply mmap_size=0x1000 num_queues=1 queue_size=16");
    send_msg(d, "", R_CLOSE, "GET_MAX_MEM_SLOTS");
    send_msg(d, "", R_NACK, "SET_STATUS need_reply u64=1");
    send_msg(d, "", R_CLOSE, "GET_STATUS");
    /* RESET_DEVICE is "Only valid if ... is set by the back-end": offered */
    send_msg(d, "", R_ACK, "RESET_DEVICE need_reply");
    /* virtio features: IOMMU_PLATFORM not acked; the error reply is u64 1 */
    result r =
        send_msg(d, "", R_ERROR, "IOTLB_MSG iova=0 size=0x1000 uaddr=0x100000 perm=3 type=2");
    CHECK(r.u64 == 1, "IOTLB_MSG before IOMMU_PLATFORM: u64 1");
    send_msg(d, "", R_ACK, "SET_FEATURES need_reply u64=0x%llx", (unsigned long long)BASE_FEATURES);
    send_msg(d, "", R_ACK, "SET_VRING_ENABLE need_reply index=0 num=1");
    send_msg(d, "", R_ERROR,
             "IOTLB_MSG need_reply iova=0 size=0x1000 uaddr=0x100000 perm=3 type=2");
    vuf_ref_free(d);

    /* the same messages once negotiated */
    d = dev_ready(1, FULL, BASE_FEATURES | V("IOMMU_PLATFORM"));
    send_msg(d, "", R_ACK, "VRING_KICK need_reply index=0 num=0");
    r = send_msg(d, "", R_REPLY, "GET_CONFIG offset=0 flags=0 payload=0000000000000000");
    uint64_t cap;
    memcpy(&cap, r.pl + 12, 8);
    CHECK(r.pl_len == 20 && cap == sizeof disk / 512, "GET_CONFIG capacity %llu",
          (unsigned long long)cap);
    send_msg(d, "", R_REPLY, "GET_QUEUE_NUM");
    send_msg(d, "", R_REPLY, "GET_STATUS");
    /* IOTLB: the update must be inside a memory region */
    r = send_msg(d, "", R_ERROR, "IOTLB_MSG iova=0 size=0x1000 uaddr=0x100000 perm=3 type=2");
    send_msg(d, "memfd", R_ACK, "SET_MEM_TABLE need_reply " REGION0);
    r = send_msg(d, "", R_REPLY, "IOTLB_MSG iova=0 size=0x1000 uaddr=0x100000 perm=3 type=2");
    CHECK(r.pl_len == 8 && r.u64 == 0, "IOTLB update accepted: u64 0");
    send_msg(d, "", R_ERROR, "IOTLB_MSG iova=0 size=0x1000 uaddr=0x10f800 perm=3 type=2");
    send_msg(d, "", R_ERROR, "IOTLB_MSG iova=0 size=0 uaddr=0x100000 perm=3 type=2");
    send_msg(d, "", R_ERROR, "IOTLB_MSG iova=0 size=0x1000 uaddr=0x100000 perm=3 type=1");
    send_msg(d, "", R_ERROR, "IOTLB_MSG iova=0 size=0x1000 uaddr=0x100000 perm=4 type=2");
    send_msg(d, "", R_ERROR,
             "IOTLB_MSG iova=0xfffffffffffff000 size=0x2000 uaddr=0x100000 perm=3 type=2");
    r = send_msg(d, "", R_REPLY, "IOTLB_MSG iova=0 size=0x1000 type=3");
    CHECK(r.pl_len == 8 && r.u64 == 0, "IOTLB invalidation accepted: u64 0");
    send_msg(d, "", R_ERROR, "IOTLB_MSG iova=0xfffffffffffff000 size=0x2000 type=3");
    vuf_ref_free(d);
}

VUF_TEST(unknown_and_framing)
{
    vuf_ref *d = dev_ready(1, FULL, BASE_FEATURES);
    /* unknown ids */
    send_msg(d, "", R_NACK, "99 need_reply");
    send_msg(d, "", R_CLOSE, "99");
    send_msg(d, "eventfd", R_NACK, "99 need_reply");
    send_msg(d, "", R_NACK, "0 need_reply");
    send_msg(d, "memfd", R_CLOSE, "0");
    send_msg(d, "", R_NACK, "46 need_reply");
    send_msg(d, "", R_NACK, "0xffffffff need_reply");
    /* messages of the table the device does not support */
    send_msg(d, "", R_NACK, "SEND_RARP need_reply u64=0");
    send_msg(d, "", R_CLOSE, "SEND_RARP u64=0");
    send_msg(d, "", R_NACK, "NET_SET_MTU need_reply u64=1500");
    send_msg(d, "", R_NACK, "SET_VRING_ENDIAN need_reply index=0 num=0");
    send_msg(d, "", R_CLOSE, "CREATE_CRYPTO_SESSION");
    send_msg(d, "", R_NACK, "CLOSE_CRYPTO_SESSION need_reply u64=0");
    send_msg(d, "", R_CLOSE, "POSTCOPY_ADVISE");
    send_msg(d, "", R_NACK, "POSTCOPY_LISTEN need_reply");
    send_msg(d, "", R_ERROR, "POSTCOPY_END");
    send_msg(d, "socket", R_NACK, "GPU_SET_SOCKET need_reply");
    send_msg(d, "", R_CLOSE, "GET_SHARED_OBJECT");
    send_msg(d, "pipe", R_ERROR, "SET_DEVICE_STATE_FD direction=0 phase=0");
    send_msg(d, "", R_ERROR, "CHECK_DEVICE_STATE");
    send_msg(d, "", R_CLOSE, "GET_SHMEM_CONFIG");
    send_msg(d, "", R_CLOSE, "GET_VRING_BASE_SKIP_DRAIN index=0 num=0");
    /* framing and direction: always a close, NEED_REPLY or not */
    send_msg(d, "", R_CLOSE, "GET_FEATURES hdr.flags=0x2");
    send_msg(d, "", R_CLOSE, "SET_VRING_NUM hdr.flags=0xa index=0 num=8");
    send_msg(d, "", R_CLOSE, "SET_VRING_NUM hdr.flags=0x8 index=0 num=8");
    send_msg(d, "", R_CLOSE, "SET_VRING_NUM hdr.flags=0xb index=0 num=8");
    send_msg(d, "eventfd", R_CLOSE, "SET_VRING_CALL hdr.flags=0x2 u64=0");
    send_msg(d, "", R_CLOSE, "SET_OWNER reply");
    send_msg(d, "", R_CLOSE, "SET_VRING_NUM reply need_reply raw=0000000008000000");
    send_msg(d, "", R_CLOSE, "GET_FEATURES reply u64=0");
    send_msg(d, "", R_CLOSE, "SET_VRING_NUM need_reply hdr.size=4 index=0 num=8");
    send_msg(d, "", R_CLOSE, "SET_VRING_NUM need_reply hdr.size=12 index=0 num=8");
    send_msg(d, "", R_CLOSE, "GET_FEATURES need_reply hdr.size=8");
    send_msg(d, "eventfd", R_CLOSE, "short=010000000900");
    send_msg(d, "", R_CLOSE, "short=");
    /* sizes and value checks */
    send_msg(d, "", R_NACK, "SET_VRING_NUM need_reply raw=00000000");
    send_msg(d, "", R_NACK, "SET_FEATURES need_reply raw=00000000000000000000000000000000");
    send_msg(d, "", R_CLOSE, "GET_FEATURES raw=0000000000000000");
    send_msg(d, "", R_NACK, "SET_VRING_ADDR need_reply index=0 flags=2");
    send_msg(d, "", R_NACK, "SET_VRING_ENABLE need_reply index=0 num=2");
    send_msg(d, "", R_CLOSE, "GET_VRING_BASE index=0 num=1");
    send_msg(d, "", R_NACK, "SET_VRING_KICK need_reply u64=0x300");
    send_msg(d, "", R_ERROR, "GET_CONFIG offset=0 flags=2 payload=00");
    send_msg(d, "", R_NACK, "SET_CONFIG need_reply offset=32 flags=2 payload=01");
    send_msg(d, "", R_ERROR, "IOTLB_MSG raw=00");
    vuf_ref_free(d);
}

VUF_TEST(protocol_features)
{
    vuf_ref *d = dev_new(1, false);
    send_msg(d, "", R_REPLY, "GET_FEATURES");
    /* INBAND_NOTIFICATIONS without REPLY_ACK: "the back-end should close" */
    send_msg(d, "", R_CLOSE, "SET_PROTOCOL_FEATURES u64=0x%llx",
             (unsigned long long)(P("INBAND_NOTIFICATIONS") | P("BACKEND_REQ")));
    /* a bit not offered, before REPLY_ACK is there: close */
    send_msg(d, "", R_CLOSE, "SET_PROTOCOL_FEATURES need_reply u64=0x%llx",
             (unsigned long long)(P("RARP") | P("REPLY_ACK")));
    send_msg(d, "", R_NONE, "SET_PROTOCOL_FEATURES need_reply u64=0x%llx",
             (unsigned long long)P("REPLY_ACK"));
    /* now a NACK, and the features stay as they were */
    send_msg(d, "", R_NACK, "SET_PROTOCOL_FEATURES need_reply u64=0x%llx",
             (unsigned long long)(P("RARP") | P("REPLY_ACK")));
    send_msg(d, "", R_NACK, "SET_PROTOCOL_FEATURES need_reply u64=0x8000000000000008");
    send_msg(d, "", R_CLOSE, "GET_QUEUE_NUM");
    /* a dependency missing closes even under REPLY_ACK */
    send_msg(d, "", R_CLOSE, "SET_PROTOCOL_FEATURES need_reply u64=0x%llx",
             (unsigned long long)(P("INBAND_NOTIFICATIONS") | P("REPLY_ACK")));
    send_msg(d, "", R_ACK, "SET_PROTOCOL_FEATURES need_reply u64=0x%llx",
             (unsigned long long)(P("INBAND_NOTIFICATIONS") | P("REPLY_ACK") | P("BACKEND_REQ") |
                                  P("MQ")));
    /* GET_QUEUE_NUM's gate: MQ "set in queried protocol features" */
    send_msg(d, "", R_CLOSE, "GET_QUEUE_NUM");
    send_msg(d, "", R_REPLY, "GET_PROTOCOL_FEATURES");
    send_msg(d, "", R_REPLY, "GET_QUEUE_NUM");
    vuf_ref_free(d);
}

VUF_TEST(features)
{
    vuf_ref *d = dev_new(1, true);
    result r = send_msg(d, "", R_REPLY, "GET_FEATURES");
    CHECK(r.u64 == (VUF_REF_FEATURES | 1ull << 5), "read-only: VIRTIO_BLK_F_RO offered: 0x%llx",
          (unsigned long long)r.u64);
    send_msg(d, "", R_REPLY, "GET_PROTOCOL_FEATURES");
    send_msg(d, "", R_NONE, "SET_PROTOCOL_FEATURES u64=0x%llx", (unsigned long long)P("REPLY_ACK"));
    send_msg(d, "", R_NACK, "SET_FEATURES need_reply u64=0x%llx",
             (unsigned long long)(BASE_FEATURES | 1));
    send_msg(d, "", R_NACK, "SET_FEATURES need_reply u64=0x%llx",
             (unsigned long long)(BASE_FEATURES | V("RING_PACKED")));
    send_msg(d, "", R_NACK, "SET_FEATURES need_reply u64=0x%llx",
             (unsigned long long)V("PROTOCOL_FEATURES"));
    send_msg(d, "", R_CLOSE, "SET_FEATURES u64=0x%llx", (unsigned long long)V("PROTOCOL_FEATURES"));
    /* bit 30 not acked: a SHOULD the device tolerates (GATE-BIT30-NEGOTIATED) */
    send_msg(d, "", R_ACK, "SET_VRING_ENABLE need_reply index=0 num=1");
    send_msg(d, "", R_ACK, "SET_FEATURES need_reply u64=0x%llx",
             (unsigned long long)(BASE_FEATURES | 1ull << 5));
    send_msg(d, "", R_ACK, "SET_VRING_ENABLE need_reply index=0 num=1");
    vuf_ref_free(d);
}

VUF_TEST(inflight)
{
    vuf_ref *d = dev_ready(2, FULL, BASE_FEATURES);
    /* num_queues bounded (CVE-2021-3839), queue_size, sizes, ranges */
    static const char *const bad[] = {
        "mmap_size=0x1000 num_queues=0 queue_size=16",
        "mmap_size=0x1000 num_queues=3 queue_size=16",
        "mmap_size=0x1000 num_queues=0xffff queue_size=16",
        "mmap_size=0x1000 num_queues=1 queue_size=0",
        "mmap_size=0x1000 num_queues=1 queue_size=2048",
        "mmap_size=0x40 num_queues=2 queue_size=16",
        "mmap_size=0x2000 num_queues=1 queue_size=16",
        "mmap_size=0x1000 mmap_offset=0xfffffffffffff800 num_queues=1 queue_size=16",
        "mmap_size=0x800 mmap_offset=0xc00 num_queues=1 queue_size=16",
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        send_msg(d, "memfd:0x1000", R_NACK, "SET_INFLIGHT_FD need_reply %s", bad[i]);
    send_msg(d, "", R_NACK,
             "SET_INFLIGHT_FD need_reply mmap_size=0x1000 num_queues=1 queue_size=16");
    send_msg(d, "eventfd", R_NACK,
             "SET_INFLIGHT_FD need_reply mmap_size=0x1000 num_queues=1 queue_size=16");
    send_msg(d, "memfd:0x1000", R_CLOSE,
             "SET_INFLIGHT_FD mmap_size=0x1000 num_queues=0 queue_size=16");
    send_msg(d, "memfd:0x1000", R_ACK,
             "SET_INFLIGHT_FD need_reply mmap_size=0x1000 num_queues=2 queue_size=16");
    CHECK(vuf_ref_fd_count(d) == 0, "the inflight fd is mapped, not kept");

    /* GET_INFLIGHT_FD: an explicit reply with no failure form */
    send_msg(d, "", R_CLOSE, "GET_INFLIGHT_FD num_queues=0 queue_size=16");
    send_msg(d, "", R_CLOSE, "GET_INFLIGHT_FD num_queues=3 queue_size=16");
    send_msg(d, "", R_CLOSE, "GET_INFLIGHT_FD num_queues=0xffff queue_size=16");
    send_msg(d, "", R_CLOSE, "GET_INFLIGHT_FD num_queues=1 queue_size=0");
    send_msg(d, "memfd", R_CLOSE, "GET_INFLIGHT_FD num_queues=1 queue_size=16");
    result a = send_msg(d, "", R_REPLY, "GET_INFLIGHT_FD num_queues=2 queue_size=16");
    result b = send_msg(d, "", R_REPLY, "GET_INFLIGHT_FD need_reply num_queues=2 queue_size=16");
    uint64_t want = 2 * ((16 + 16 * 16 + 63) & ~63ull);
    const result *rs[2] = {&a, &b};
    for (int i = 0; i < 2; i++) {
        uint64_t sz, off;
        uint16_t nq, qs;
        memcpy(&sz, rs[i]->pl, 8);
        memcpy(&off, rs[i]->pl + 8, 8);
        memcpy(&nq, rs[i]->pl + 16, 2);
        memcpy(&qs, rs[i]->pl + 18, 2);
        CHECK(rs[i]->pl_len == 24 && sz == want && off == 0 && nq == 2 && qs == 16,
              "GET_INFLIGHT_FD #%d: %zu bytes, mmap_size %llu (want %llu), num_queues %u", i,
              rs[i]->pl_len, (unsigned long long)sz, (unsigned long long)want, nq);
        CHECK(rs[i]->reply_fds == 1 && rs[i]->reply_kind == VUF_FDKIND_MEMFD &&
                  rs[i]->reply_size >= want,
              "GET_INFLIGHT_FD #%d: one memfd of %llu bytes (kind %s)", i,
              (unsigned long long)rs[i]->reply_size, vuf_fdkind_name(rs[i]->reply_kind));
    }
    CHECK(a.reply_ino != b.reply_ino, "a repeated GET_INFLIGHT_FD returns a new buffer");
    CHECK(count_maps("vufuzz-inflight") == 1, "the old inflight buffer was unmapped (%d maps)",
          count_maps("vufuzz-inflight"));
    send_msg(d, "memfd:0x1000", R_ACK,
             "SET_INFLIGHT_FD need_reply mmap_size=0x1000 num_queues=2 queue_size=16");
    CHECK(count_maps("vufuzz-inflight") == 0 && count_maps("vuf-test-ref") == 1,
          "SET_INFLIGHT_FD replaced the device's buffer");
    vuf_ref_free(d);
}

VUF_TEST(config)
{
    vuf_ref *d = dev_ready(1, FULL, BASE_FEATURES);
    /* read-only fields: refused with flags 0, taken with flags 1 (migration) */
    send_msg(d, "", R_NACK, "SET_CONFIG need_reply offset=0 flags=0 payload=0000000000000001");
    send_msg(d, "", R_CLOSE, "SET_CONFIG offset=0 flags=0 payload=0000000000000001");
    send_msg(d, "", R_ACK, "SET_CONFIG need_reply offset=0 flags=1 payload=0000000000000001");
    send_msg(d, "", R_NONE, "SET_CONFIG offset=0 flags=1 payload=0000000000000001");
    /* writeback needs CONFIG_WCE */
    send_msg(d, "", R_NACK, "SET_CONFIG need_reply offset=32 flags=0 payload=01");
    send_msg(d, "", R_NACK, "SET_CONFIG need_reply offset=60 flags=1 payload=01");
    send_msg(d, "", R_NACK, "SET_CONFIG need_reply offset=0xffffffff flags=1 payload=01");
    send_msg(d, "", R_NACK, "SET_CONFIG need_reply offset=0 flags=1");
    /* GET_CONFIG outside the 60 bytes: the empty error reply */
    send_msg(d, "", R_ERROR, "GET_CONFIG offset=56 flags=0 payload=0000000000000000");
    send_msg(d, "", R_ERROR, "GET_CONFIG need_reply offset=61 flags=0 payload=00");
    send_msg(d, "", R_ERROR, "GET_CONFIG offset=0xfffffffc flags=0 payload=0000000000000000");
    send_msg(d, "", R_ERROR, "GET_CONFIG offset=0 flags=0");
    send_msg(d, "", R_ERROR, "GET_CONFIG offset=0 size=8 flags=0 payload=00");
    char hex60[2 * 60 + 1];
    memset(hex60, '0', 2 * 60);
    hex60[2 * 60] = '\0';
    result r = send_msg(d, "", R_REPLY, "GET_CONFIG offset=0 flags=0 payload=%s", hex60);
    uint64_t cap;
    memcpy(&cap, r.pl + 12, 8);
    CHECK(r.pl_len == 12 + 60 && cap == sizeof disk / 512,
          "GET_CONFIG of all 60 bytes: %zu payload bytes, capacity %llu", r.pl_len,
          (unsigned long long)cap);
    send_msg(d, "", R_ERROR, "GET_CONFIG offset=0 flags=0 payload=%s00", hex60);
    r = send_msg(d, "", R_REPLY, "GET_CONFIG offset=56 flags=0 payload=00000000");
    CHECK(r.pl_len == 16, "GET_CONFIG of the last 4 bytes: %zu payload bytes", r.pl_len);
    vuf_ref_free(d);

    d = dev_ready(1, FULL, BASE_FEATURES | 1ull << 11);
    send_msg(d, "", R_ACK, "SET_CONFIG need_reply offset=32 flags=0 payload=01");
    r = send_msg(d, "", R_REPLY, "GET_CONFIG offset=32 flags=0 payload=00");
    CHECK(r.pl_len == 13 && r.pl[12] == 1, "writeback is 1 after SET_CONFIG");
    send_msg(d, "", R_NACK, "SET_CONFIG need_reply offset=31 flags=0 payload=0101");
    vuf_ref_free(d);
}

VUF_TEST_MAIN()
