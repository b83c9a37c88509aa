/* SPDX-License-Identifier: Apache-2.0 */
/* The harness: the session player, the event intake and the oracles'
 * verdicts (vuf_harness.h). The guest memory and the driver are in guest.c,
 * the typed fds in fdset.c, the targets behind vuf_target.h. */
#include "vuf_harness.h"
#include "vuf_util.h"
#include "harness_int.h"
#include "vuf_checker.h"
#include "vuf_codec.h"
#include "vuf_target_ext.h"
#include "vuf_transport.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define MAX_ACTIONS 4096
#define MAX_RECEIVED 1024 /* fds the peer received in one session, for the accounting */
#define STEPS 3           /* peer steps after each action (a message, its kicks, ...) */
#define SETTLE_STEPS 4096 /* steps before leaving (a 1 MiB raw write: < 1400) */
#define BATCH_MAX 32      /* main-channel writes sent before the peer steps (opts.batch) */
#define BATCH_BYTES (32 << 10)
#define DEFAULT_SCAN_PERIOD 64
#define GRACE_MS                                                                                   \
    5 /* an asynchronous peer's ack nobody asked for (maybe_reply), or an optional reply: one that \
         comes later is still matched to its request by the checker */

const char *vuf_finding_kind_name(vuf_finding_kind k)
{
    switch (k) {
    case VUF_FINDING_NONE:
        return "none";
    case VUF_FINDING_MUST:
        return "must";
    case VUF_FINDING_SHOULD:
        return "should";
    case VUF_FINDING_FD_LEAK:
        return "fd-leak";
    case VUF_FINDING_GUEST_WRITE:
        return "guest-write";
    case VUF_FINDING_CRASH:
        return "crash";
    case VUF_FINDING_EXIT:
        return "exit";
    case VUF_FINDING_SANITIZER:
        return "sanitizer";
    case VUF_FINDING_HANG:
        return "hang";
    case VUF_FINDING_BAD_INPUT:
        return "bad-input";
    case VUF_FINDING_TARGET_ERROR:
        return "target-error";
    }
    return "invalid";
}

/* A request whose effect narrows what the device may write (an IOTLB
 * invalidation, REM_MEM_REG, a new memory table): applied to the model once
 * the device took it. */
typedef struct {
    bool active;
    const vuf_msg_def *def;
    uint8_t data[VUF_HDR_SIZE + VUF_PAYLOAD_MAX];
    size_t len;
} narrowing;

struct vuf_harness {
    const vuf_spec *spec;
    const vuf_msg_def *breq; /* SET_BACKEND_REQ_FD: what hands the back-end channel over */
    vuf_harness_opts o;
    vuf_side side;
    bool strict;
    vuf_target *t;
    vuf_checker *chk;
    const vuf_msg_def *m_kick;
    vuf_harness_stats st;
    vuf_session_wire *wire;
    vuf_guest g;
    vuf_fdset fds;
    bool async; /* the target is not synchronous: replies are awaited */
    /* the latest main-channel request set NEED_REPLY without a reply being
     * owed: some back-ends ack it anyway (libvhost-user), so an asynchronous
     * one gets a moment before the next request, or its ack would look like
     * the answer to that one */
    bool maybe_reply;
    int64_t maybe_since;
    bool events_from_target;
    int reply_timeout_ms;
    /* the back-end channel, as the events tell it; the front-end's end of
     * it (reports events when the target does not) */
    vuf_endpoint *be_ep;
    bool be_pending, be_traffic;
    uint32_t be_id, be_last_id;
    int kick[VUF_H_MAX_QUEUES]; /* the eventfd the front-end kicks queue q with, or -1 */
    narrowing narrow;
    uint64_t passes;
    bool injected;    /* the oracle self-test's stray write was made this session */
    bool peer_closed; /* stop_on_peer_close: the peer closed the main channel */
    /* the fd accounting */
    int received[MAX_RECEIVED];
    size_t nreceived;
    bool received_overflow;
    vuf_finding f;
    size_t action;
};

/* ---------- findings ---------- */

static void finding(vuf_harness *h, vuf_finding_kind k, const char *rule, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

static void finding(vuf_harness *h, vuf_finding_kind k, const char *rule, const char *fmt, ...)
{
    if (h->f.kind)
        return; /* the first one counts */
    h->f.kind = k;
    h->f.action = h->action;
    snprintf(h->f.rule, sizeof h->f.rule, "%s", rule);
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(h->f.text, sizeof h->f.text, fmt, ap);
    va_end(ap);
}

/* Violations from index `from` on: those of the side under test. */
static void judge(vuf_harness *h, size_t from)
{
    for (size_t i = from; i < vuf_checker_violation_count(h->chk); i++) {
        const vuf_violation *v = vuf_checker_violation(h->chk, i);
        if (h->o.on_violation)
            h->o.on_violation(h->o.ctx, v);
        if (v->side != h->side)
            continue;
        if (v->level == VUF_MUST)
            finding(h, VUF_FINDING_MUST, v->rule->id, "%s on the %s channel: %s", v->msg,
                    v->channel == VUF_CHAN_BACKEND ? "back-end" : "main", v->text);
        else if (v->level == VUF_SHOULD && h->strict)
            finding(h, VUF_FINDING_SHOULD, v->rule->id, "%s on the %s channel: %s", v->msg,
                    v->channel == VUF_CHAN_BACKEND ? "back-end" : "main", v->text);
    }
}

/* ---------- the guest-memory oracle ---------- */

static void guest_check(vuf_harness *h)
{
    if (h->t->ops->caps & VUF_TARGET_RING_PASSES) {
        uint64_t passes = h->t->ops->ring_passes(h->t);
        if (passes == h->passes)
            return; /* the rings did not run: the device touched no guest memory */
        h->passes = passes;
        if (h->o.inject_stray_write && !h->injected) {
            h->injected = true;
            int ri;
            uint64_t off;
            uint8_t *p = vuf_guest_ptr(&h->g, h->o.inject_stray_write, 1, &ri, &off);
            if (p)
                *p ^= 0xff; /* not through vuf_guest_write: the shadow does not see it */
        }
    }
    bool rings = false;
    for (size_t q = 0; q < VUF_H_MAX_QUEUES; q++)
        rings |= h->g.rings[q].n > 0;
    if (!h->g.armed || h->o.no_guest_oracle || !rings) {
        vuf_guest_sync(&h->g);
        return;
    }
    h->st.guest_checks++;
    uint64_t gpa, len;
    size_t region;
    if (!vuf_guest_compare(&h->g, &gpa, &len, &region))
        finding(h, VUF_FINDING_GUEST_WRITE, "guest-write",
                "the device wrote guest memory at gpa 0x%llx (%llu bytes, region %zu), outside "
                "every device-writable descriptor buffer and used ring",
                (unsigned long long)gpa, (unsigned long long)len, region);
}

/* ---------- events ---------- */

static void narrowing_done(vuf_harness *h, bool taken)
{
    narrowing *n = &h->narrow;
    if (!n->active)
        return;
    n->active = false;
    vuf_msg_view v;
    if (taken && vuf_msg_decode(h->spec, VUF_CHAN_FRONTEND, n->data, n->len, &v))
        vuf_guest_model_reply(&h->g, n->def, false, &v);
}

/* What the model learns from the main channel's events. */
static void model_event(vuf_harness *h, const vuf_event *ev)
{
    bool reference = h->t->ops->caps & VUF_TARGET_REFERENCE;
    if (ev->kind == VUF_EV_NOTE) {
        if (ev->note == VUF_NOTE_REFUSE && ev->channel == VUF_CHAN_FRONTEND)
            narrowing_done(h, false); /* refused: nothing changed */
        return;
    }
    if (ev->kind != VUF_EV_MSG || ev->channel != VUF_CHAN_FRONTEND)
        return;
    vuf_msg_view v;
    bool ok = vuf_msg_decode(h->spec, VUF_CHAN_FRONTEND, ev->data, ev->len, &v);
    if (ev->sender == VUF_SIDE_BACKEND) {
        /* a reply: a u64 status of 0 (or an explicit reply) confirms */
        uint64_t val = 0;
        bool failed = ok && v.payload_len == 8 && (memcpy(&val, v.payload, 8), val != 0);
        narrowing_done(h, ok && !failed);
        return;
    }
    /* a request: the one before it stands, unless refused (the reference
     * device reports refusals; others confirm with a reply only) */
    narrowing_done(h, reference);
    if (!ok || !v.def || v.is_reply)
        return;
    vuf_guest_model_request(&h->g, &v);
    if ((v.def == h->g.m_iotlb || v.def == h->g.m_rem || v.def == h->g.m_mem) &&
        ev->len <= sizeof h->narrow.data) {
        h->narrow.active = true;
        h->narrow.def = v.def;
        memcpy(h->narrow.data, ev->data, ev->len);
        h->narrow.len = ev->len;
    }
}

static void on_event(void *ctx, const vuf_event *ev)
{
    vuf_harness *h = ctx;
    h->st.events++;
    if (h->o.on_event)
        h->o.on_event(h->o.ctx, ev);
    size_t before = vuf_checker_violation_count(h->chk);
    vuf_checker_feed(h->chk, ev);
    judge(h, before);
    model_event(h, ev);
    if (h->o.stop_on_peer_close && ev->kind == VUF_EV_CLOSE && ev->channel == VUF_CHAN_FRONTEND &&
        ev->sender == h->side)
        h->peer_closed = true;
    if (h->async && ev->kind == VUF_EV_MSG && ev->channel == VUF_CHAN_FRONTEND &&
        ev->len >= VUF_HDR_SIZE) {
        vuf_hdr hd;
        vuf_hdr_decode(ev->data, &hd);
        /* (a "reply" flagged NEED_REPLY too: a peer that ignores the
         * REPLY flag answers it) */
        h->maybe_reply = ev->sender == VUF_SIDE_FRONTEND && (hd.flags & VUF_F_NEED_REPLY);
        if (ev->sender == VUF_SIDE_FRONTEND)
            h->maybe_since = vuf_now_ms(); /* also for a reply that is optional */
    }
    if (ev->kind == VUF_EV_MSG && ev->channel == VUF_CHAN_BACKEND &&
        ev->sender == VUF_SIDE_BACKEND && ev->len >= VUF_HDR_SIZE) {
        /* a request of the device on its channel */
        vuf_hdr hd;
        vuf_hdr_decode(ev->data, &hd);
        h->be_traffic = true;
        h->be_last_id = hd.request;
        if (!(hd.flags & VUF_F_REPLY) && (hd.flags & VUF_F_NEED_REPLY)) {
            h->be_pending = true;
            h->be_id = hd.request;
        }
    }
}

static void on_fds(void *ctx, const int *fds, size_t n)
{
    vuf_harness *h = ctx;
    for (size_t i = 0; i < n; i++) {
        if (h->nreceived == MAX_RECEIVED) {
            h->received_overflow = true; /* the full count decides */
            return;
        }
        h->received[h->nreceived++] = fds[i];
    }
}

static void finish_checker(vuf_harness *h)
{
    size_t before = vuf_checker_violation_count(h->chk);
    vuf_checker_finish(h->chk);
    judge(h, before);
    vuf_checker_reset(h->chk);
}

/* ---------- the back-end channel, front-end side ---------- */

/* Read and drop what is queued on a socket (its fds closed). */
static void drain(int sock)
{
    uint8_t buf[4096];
    for (int k = 0; k < 64; k++) {
        vuf_segment seg = {0};
        vuf_io_status st = vuf_recv_segment(sock, buf, sizeof buf, &seg);
        vuf_close_fds(seg.fds, &seg.nfds);
        if (st != VUF_IO_OK)
            break;
    }
}

/* Read what the peer sent on the front-end's socket ends: which one is the
 * back-end channel, and (when the target does not report events) its
 * requests, as events. */
static void collect(vuf_harness *h)
{
    if (h->events_from_target && !h->be_traffic)
        return; /* nothing was sent there */
    if (!h->fds.npeers)
        return;
    h->be_traffic = false;
    struct pollfd pf[VUF_H_MAX_PEERS];
    for (size_t i = 0; i < h->fds.npeers; i++)
        pf[i] = (struct pollfd){.fd = h->fds.peers[i], .events = POLLIN};
    if (poll(pf, (nfds_t)h->fds.npeers, 0) <= 0)
        return;
    for (size_t i = 0; i < h->fds.npeers; i++) {
        if (h->fds.peers[i] < 0 || !(pf[i].revents & (POLLIN | POLLHUP)))
            continue;
        if (!h->fds.channel[i]) {
            drain(h->fds.peers[i]); /* a socket where a signal fd belongs */
            continue;
        }
        vuf_endpoint_set_fd(h->be_ep, h->fds.peers[i]);
        for (int k = 0; k < 64; k++) {
            /* once something is there, the rest of a message may take a
             * moment from an asynchronous peer */
            struct pollfd p1 = {.fd = h->fds.peers[i], .events = POLLIN};
            if (k && poll(&p1, 1, 0) <= 0)
                break;
            vuf_endpoint_msg m;
            vuf_io_status st = vuf_endpoint_recv(h->be_ep, &m, h->async ? 1000 : 0);
            vuf_close_fds(m.fds, &m.nfds);
            if (st != VUF_IO_OK)
                break;
            h->fds.be_peer = (int)i;
        }
    }
}

/* The front-end's end of the back-end channel, for a write. */
static vuf_endpoint *be_send_ep(vuf_harness *h)
{
    int sock = vuf_fdset_backend(&h->fds);
    if (sock < 0)
        return NULL;
    vuf_endpoint_set_fd(h->be_ep, sock);
    return h->be_ep;
}

static void auto_ack(vuf_harness *h);

/* An asynchronous peer: read what it sent, answer its requests, and wait for
 * the reply the checker says is owed on the main channel, up to the reply
 * deadline (then: a hang). */
static void settle_async(vuf_harness *h)
{
    int64_t deadline = vuf_now_ms() + h->reply_timeout_ms;
    for (;;) {
        h->t->ops->step(h->t);
        collect(h);
        if (h->be_pending) {
            auto_ack(h); /* the peer may wait for it before it answers */
            continue;
        }
        if (!h->t->ops->connected(h->t))
            break;
        if (!vuf_checker_reply_owed(h->chk, VUF_CHAN_FRONTEND)) {
            bool maybe = h->maybe_reply || vuf_checker_reply_optional(h->chk, VUF_CHAN_FRONTEND);
            int64_t grace = maybe ? h->maybe_since + GRACE_MS - vuf_now_ms() : 0;
            if (grace <= 0)
                break;
            vuf_pollset p; /* a moment for an ack nobody asked for */
            vuf_pollset_init(&p, (int)grace);
            h->t->ops->poll_add(h->t, &p);
            if (vuf_pollset_wait(&p) <= 0)
                h->maybe_reply = false;
            continue;
        }
        int64_t left = deadline - vuf_now_ms();
        if (left <= 0) {
            finding(h, VUF_FINDING_HANG, "hang",
                    "no reply within %d ms to the request of action %zu that needs one",
                    h->reply_timeout_ms, h->action);
            break;
        }
        vuf_pollset p;
        vuf_pollset_init(&p, left > 50 ? 50 : (int)left);
        h->t->ops->poll_add(h->t, &p);
        for (size_t i = 0; i < h->fds.npeers; i++)
            vuf_pollset_add(&p, h->fds.peers[i], POLLIN);
        vuf_pollset_wait(&p);
    }
}

/* Let the peer do everything the last action caused: a synchronous target
 * steps until a step reports no new event (bounded). */
static void step(vuf_harness *h)
{
    if (h->async) {
        settle_async(h);
    } else {
        for (int i = 0; i < STEPS && h->t->ops->connected(h->t); i++) {
            uint64_t ev = h->st.events;
            h->t->ops->step(h->t);
            collect(h);
            if (h->st.events == ev)
                break;
        }
    }
    guest_check(h);
}

static void backend_reply(vuf_harness *h, const Vuf__BackendReply *b)
{
    vuf_endpoint *ep = be_send_ep(h);
    uint32_t id = h->be_pending ? h->be_id : h->be_last_id;
    h->be_pending = false;
    if (b->kind == VUF__BACKEND_REPLY__KIND__NEVER || b->kind == VUF__BACKEND_REPLY__KIND__LATE) {
        if (h->t->ops->backend_timeout)
            h->t->ops->backend_timeout(h->t);
        if (b->kind == VUF__BACKEND_REPLY__KIND__NEVER)
            return;
    }
    if (!ep)
        return;
    uint8_t msg[VUF_HDR_SIZE + 8];
    uint64_t val = b->kind == VUF__BACKEND_REPLY__KIND__NACK ? (b->has_value ? b->value : 1) : 0;
    vuf_hdr hd = {.request = id, .flags = VUF_F_VERSION | VUF_F_REPLY, .size = 8};
    if (b->kind == VUF__BACKEND_REPLY__KIND__WRONG_ID)
        hd.request = id + 1;
    if (b->kind == VUF__BACKEND_REPLY__KIND__NO_REPLY_FLAG)
        hd.flags = VUF_F_VERSION;
    if (b->kind == VUF__BACKEND_REPLY__KIND__WRONG_SIZE)
        hd.size = 4;
    vuf_hdr_encode(&hd, msg);
    memcpy(msg + VUF_HDR_SIZE, &val, 8);
    vuf_endpoint_send(ep, msg, VUF_HDR_SIZE + hd.size, NULL, NULL, 0, 0);
    h->t->ops->poke(h->t);
}

/* Valid by default: an awaited reply is acked before anything else. */
static void auto_ack(vuf_harness *h)
{
    if (!h->be_pending)
        return;
    Vuf__BackendReply b = VUF__BACKEND_REPLY__INIT;
    b.kind = VUF__BACKEND_REPLY__KIND__ACK;
    backend_reply(h, &b);
    step(h);
}

/* ---------- connections ---------- */

static void disconnect(vuf_harness *h)
{
    /* a front-end leaves once what it sent was read and answered (a big raw
     * write can hold more messages than a few steps take) */
    for (int i = 0; i < SETTLE_STEPS && h->t->ops->connected(h->t); i++) {
        uint64_t ev = h->st.events;
        step(h);
        if (h->st.events == ev)
            break;
    }
    h->t->ops->disconnect(h->t);
    vuf_fdset_close_main_dups(&h->fds);
    guest_check(h); /* what the last step wrote is judged too */
    narrowing_done(h, false);
    finish_checker(h);
    h->be_pending = false;
    h->fds.be_peer = -1;
    vuf_guest_forget(&h->g);
}

static void connect_dev(vuf_harness *h)
{
    if (h->t->ops->connected(h->t) || h->peer_closed)
        return;
    if (h->t->ops->main_fd(h->t) >= 0)
        disconnect(h); /* the peer closed it: what remains of that connection */
    if (h->t->ops->connect(h->t))
        finding(h, VUF_FINDING_TARGET_ERROR, "connect", "%s",
                !strcmp(h->t->ops->name, "external") ? vuf_target_external_error(h->t)
                                                     : "cannot open the main channel");
}

/* ---------- sending ---------- */

/* An fd's kind as it is now (a stream socket's peer may have closed since
 * it was made); the other kinds do not change. */
static uint8_t kind_now(int fd, uint8_t k)
{
    if (k != VUF_FDKIND_SOCKET && k != VUF_FDKIND_SOCKET_CLOSED)
        return k;
    struct pollfd p = {.fd = fd, .events = 0};
    return poll(&p, 1, 0) == 1 && (p.revents & POLLHUP) ? VUF_FDKIND_SOCKET_CLOSED
                                                        : VUF_FDKIND_SOCKET;
}

/* The fds of a list of specs, made real; guests[i] is the guest region of
 * fd i. */
static size_t make_fds(vuf_harness *h, Vuf__Fd *const *specs, const bool *derived, size_t n_specs,
                       int *fds, uint8_t *kinds, int *guests)
{
    size_t n = 0;
    int main_fd = h->t->ops->main_fd(h->t);
    for (size_t i = 0; i < n_specs && n < VUF_SESSION_MAX_FDS; i++) {
        int g;
        uint8_t k;
        int fd = vuf_fdset_make(&h->fds, &h->g, specs[i], derived && derived[i], main_fd, &g, &k);
        if (fd == -2)
            continue; /* dropped by the kernel at the sender */
        if (fd < 0) {
            /* out of resources: a fresh eventfd in its place */
            Vuf__Fd e = VUF__FD__INIT;
            e.kind = VUF__FD_KIND__FD_EVENTFD;
            fd = vuf_fdset_make(&h->fds, &h->g, &e, false, main_fd, &g, &k);
        }
        if (fd >= 0) {
            guests[n] = g;
            kinds[n] = kind_now(fd, k);
            fds[n++] = fd;
        }
    }
    return n;
}

/* Send a built message; returns its first fd (or -1). */
static int send_wire(vuf_harness *h, bool backend, const vuf_session_wire *w)
{
    int fds[VUF_SESSION_MAX_FDS], guests[VUF_SESSION_MAX_FDS];
    uint8_t kinds[VUF_SESSION_MAX_FDS];
    Vuf__Fd *specs[VUF_SESSION_MAX_FDS];
    for (size_t i = 0; i < w->nfds; i++)
        specs[i] = (Vuf__Fd *)&w->fds[i];
    size_t peers_before = h->fds.npeers;
    size_t n = make_fds(h, specs, w->fd_size_derived, w->nfds, fds, kinds, guests);
    /* the socket ends a SET_BACKEND_REQ_FD hands over (by its header's id:
     * a malformed one too) may carry the back-end channel */
    bool breq = !backend && h->breq && w->len >= VUF_HDR_SIZE && w->hdr.request == h->breq->id;
    for (size_t i = peers_before; i < h->fds.npeers; i++)
        h->fds.channel[i] = breq;
    if (!backend)
        vuf_guest_check_fds(&h->g, w, guests, n);
    if (w->len == 0)
        return -1;
    if (backend) {
        vuf_endpoint *ep = be_send_ep(h);
        if (!ep)
            return -1;
        vuf_endpoint_send(ep, w->data, w->len, fds, kinds, n, 0);
        h->t->ops->poke(h->t);
    } else {
        h->t->ops->write(h->t, w->data, w->len, fds, kinds, n);
    }
    h->st.messages++;
    return n ? fds[0] : -1;
}

/* A message whose fields say `offered`: a copy with the peer's offer (from
 * the checker's view of the conversation) ANDed in, in *copy. */
static const Vuf__Message *resolve_offered(vuf_harness *h, const Vuf__Message *m,
                                           Vuf__Message *copy, Vuf__Field *fields,
                                           Vuf__Field **ptrs, size_t cap)
{
    bool any = false;
    for (size_t i = 0; i < m->n_fields; i++)
        any |= m->fields[i]->has_offered && m->fields[i]->offered;
    if (!any || m->n_fields > cap)
        return m;
    vuf_checker_state st;
    vuf_checker_state_get(h->chk, &st);
    uint32_t id;
    const vuf_msg_def *d = vuf_session_msg_def(h->spec, VUF_CHAN_FRONTEND, m, &id);
    bool proto = d && !strcmp(d->name, "SET_PROTOCOL_FEATURES");
    uint64_t offer = proto ? (st.protocol_offered_known ? st.protocol_offered : 0)
                           : (st.features_offered_known ? st.features_offered : 0);
    *copy = *m;
    copy->fields = ptrs;
    for (size_t i = 0; i < m->n_fields; i++) {
        fields[i] = *m->fields[i];
        ptrs[i] = &fields[i];
        if (fields[i].has_offered && fields[i].offered) {
            fields[i].value = offer & (fields[i].has_value ? fields[i].value : UINT64_MAX);
            fields[i].has_value = true;
        }
    }
    return copy;
}

/* false: the message does not build against the table (a bad input). */
static bool send_message(vuf_harness *h, bool backend, const Vuf__Message *m)
{
    Vuf__Message copy;
    Vuf__Field fields[16], *ptrs[16];
    m = resolve_offered(h, m, &copy, fields, ptrs, 16);
    char err[200];
    if (vuf_session_build(h->spec, backend ? VUF_CHAN_BACKEND : VUF_CHAN_FRONTEND, m, h->wire, err,
                          sizeof err)) {
        finding(h, VUF_FINDING_BAD_INPUT, "bad-input",
                "the message of action %zu does not build against this table: %s", h->action, err);
        return false;
    }
    const vuf_session_wire *w = h->wire;
    int fd = send_wire(h, backend, w);
    if (!backend && w->def && w->def == h->m_kick && w->len >= VUF_HDR_SIZE + 8) {
        /* remember the eventfd the front-end kicks queue q with */
        uint64_t u;
        memcpy(&u, w->data + VUF_HDR_SIZE, 8);
        uint32_t q = (uint32_t)(u & 0xff);
        /* kicks are written only to the front-end's own eventfds */
        if (q < VUF_H_MAX_QUEUES)
            h->kick[q] = (u & 0x100) || !vuf_fdset_is_eventfd(&h->fds, fd) ? -1 : fd;
    }
    return true;
}

/* A message built from name and integer fields (the harness's own). */
static void send_simple(vuf_harness *h, const char *name, const char *f1, uint64_t v1,
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
    send_message(h, false, &m);
}

static void kick(vuf_harness *h, const Vuf__Kick *k)
{
    uint32_t q = vuf_guest_queue(&h->g, k->has_queue, k->queue);
    if (k->has_inband && k->inband) {
        send_simple(h, "VRING_KICK", "index", q, "num", 0);
        return;
    }
    uint64_t one = 1;
    if (h->kick[q] >= 0) {
        if (write(h->kick[q], &one, sizeof one) < 0) {
            /* a saturated eventfd is still readable: the kick is pending */
        }
        h->t->ops->poke(h->t);
    } else if (h->t->ops->kick_polled) {
        h->t->ops->kick_polled(h->t, q); /* a polled ring */
    }
}

static void raw_action(vuf_harness *h, const Vuf__Raw *raw)
{
    int fds[VUF_SESSION_MAX_FDS], guests[VUF_SESSION_MAX_FDS];
    uint8_t kinds[VUF_SESSION_MAX_FDS];
    size_t n = make_fds(h, raw->fds, NULL, raw->n_fds, fds, kinds, guests);
    for (size_t i = 0; i < n; i++)
        if (guests[i] >= 0)
            h->g.armed = false; /* guest memory through bytes the harness does not parse */
    bool be = raw->has_backend && raw->backend;
    if (!raw->data.len)
        return;
    if (be) {
        vuf_endpoint *ep = be_send_ep(h);
        if (ep) {
            vuf_endpoint_send(ep, raw->data.data, raw->data.len, fds, kinds, n, 0);
            h->t->ops->poke(h->t);
        }
    } else {
        h->t->ops->write(h->t, raw->data.data, raw->data.len, fds, kinds, n);
    }
}

/* ---------- one action ---------- */

static bool perform(vuf_harness *h, const Vuf__Action *a)
{
    if (a->action_case != VUF__ACTION__ACTION_BACKEND_REPLY)
        auto_ack(h);
    switch (a->action_case) {
    case VUF__ACTION__ACTION_SEND:
        connect_dev(h);
        return send_message(h, false, a->send);
    case VUF__ACTION__ACTION_BACKEND_SEND:
        return send_message(h, true, a->backend_send);
    case VUF__ACTION__ACTION_BACKEND_REPLY:
        backend_reply(h, a->backend_reply);
        break;
    case VUF__ACTION__ACTION_MEM_WRITE:
        vuf_guest_write(&h->g, a->mem_write->gpa, a->mem_write->data.data, a->mem_write->data.len);
        break;
    case VUF__ACTION__ACTION_DESC: {
        const Vuf__Desc *d = a->desc;
        uint32_t q = vuf_guest_queue(&h->g, d->has_queue, d->queue);
        uint64_t table = d->has_table ? d->table : vuf_guest_ring_gpa(&h->g, q);
        uint32_t slot = d->has_table ? d->index % 4096 : d->index % h->g.qsize;
        vuf_guest_desc(&h->g, table, slot, d->addr, d->len, (uint16_t)d->flags, (uint16_t)d->next);
        break;
    }
    case VUF__ACTION__ACTION_AVAIL:
        vuf_guest_avail(&h->g, vuf_guest_queue(&h->g, a->avail->has_queue, a->avail->queue),
                        a->avail->head, a->avail->has_idx, a->avail->idx);
        break;
    case VUF__ACTION__ACTION_BLK:
        vuf_guest_blk(&h->g, a->blk);
        break;
    case VUF__ACTION__ACTION_KICK:
        kick(h, a->kick);
        break;
    case VUF__ACTION__ACTION_RAW:
        if (!(a->raw->has_backend && a->raw->backend))
            connect_dev(h);
        raw_action(h, a->raw);
        break;
    case VUF__ACTION__ACTION_CLOSE_BACKEND:
        if (vuf_fdset_backend(&h->fds) >= 0) {
            if (!h->events_from_target)
                vuf_endpoint_emit_close(h->be_ep, VUF_SIDE_FRONTEND);
            vuf_fdset_close_backend(&h->fds);
            h->be_pending = false;
            h->t->ops->poke(h->t);
        }
        break;
    case VUF__ACTION__ACTION_DISCONNECT:
        disconnect(h);
        break;
    case VUF__ACTION__ACTION_CONNECT:
        connect_dev(h);
        break;
    case VUF__ACTION__ACTION_RESIZE:
        if (h->t->ops->resize)
            h->t->ops->resize(h->t, a->resize);
        break;
    default:
        break;
    }
    return true;
}

/* Writes on the main channel only: consecutive ones may go out as one
 * batch (opts.batch), and the peer then reads them one by one, in order. */
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

static bool is_guest_fd(const vuf_harness *h, int fd)
{
    for (size_t i = 0; i < VUF_H_MAX_REGIONS; i++)
        if (h->g.reg[i].fd == fd)
            return true;
    return false;
}

/* The accounting: every fd the peer received is closed now. */
static void fd_accounting(vuf_harness *h)
{
    if (h->t->ops->fds_held && h->t->ops->fds_held(h->t))
        finding(h, VUF_FINDING_FD_LEAK, "fd-leak",
                "the device still holds %zu fds after the session ended",
                h->t->ops->fds_held(h->t));
    for (size_t i = 0; i < h->nreceived; i++) {
        int fd = h->received[i];
        if (fcntl(fd, F_GETFD) == -1 || is_guest_fd(h, fd))
            continue;
        finding(h, VUF_FINDING_FD_LEAK, "fd-leak",
                "fd %d, which the device received during the session, is still open after it "
                "ended",
                fd);
        return;
    }
}

vuf_finding vuf_harness_run(vuf_harness *h, const Vuf__Session *s)
{
    memset(&h->f, 0, sizeof h->f);
    h->action = 0;
    h->be_pending = h->be_traffic = false;
    h->be_last_id = 0;
    h->narrow.active = false;
    h->injected = false;
    h->peer_closed = false;
    h->nreceived = 0;
    h->received_overflow = false;
    for (int i = 0; i < VUF_H_MAX_QUEUES; i++)
        h->kick[i] = -1;
    h->st.sessions++;
    vuf_checker_reset(h->chk);
    vuf_session_guest lay;
    vuf_session_guest_of(s->config, &lay);
    char err[200];
    vuf_target_config tc = {.disk_size = lay.disk_size, .queues = lay.queues};
    bool ok = vuf_guest_setup(&h->g, &lay) && h->t->ops->begin(h->t, &tc, err, sizeof err) == 0;
    h->passes = h->t->ops->ring_passes ? h->t->ops->ring_passes(h->t) : 0;
    unsigned period = h->o.fd_scan_period ? h->o.fd_scan_period : DEFAULT_SCAN_PERIOD;
    bool scan = !h->o.no_fd_oracle && h->st.sessions % period == 0;
    /* the baseline after setup: the pooled guest memfds persist */
    int fds_before = scan ? count_fds() : 0;
    if (ok) {
        connect_dev(h);
        size_t n = s->n_actions < MAX_ACTIONS ? s->n_actions : MAX_ACTIONS;
        size_t batch = 0, nbatch = 0;
        for (size_t i = 0; i < n && !h->f.kind && !h->peer_closed; i++) {
            h->action = i + 1;
            if (h->o.on_action)
                h->o.on_action(h->o.ctx, i + 1, s->actions[i]);
            perform(h, s->actions[i]);
            h->st.actions++;
            /* step now, unless this write and the next one are a batch */
            size_t w = h->o.batch ? main_write_bytes(s->actions[i]) : 0;
            batch = w ? batch + w : 0;
            size_t nw = h->o.batch && i + 1 < n ? main_write_bytes(s->actions[i + 1]) : 0;
            if (w && nw && batch + nw <= BATCH_BYTES && ++nbatch < BATCH_MAX)
                continue;
            batch = nbatch = 0;
            step(h);
        }
        h->action = n; /* what follows (leaving, the oracles) belongs to the last action */
    } else {
        finding(h, h->g.nreg ? VUF_FINDING_TARGET_ERROR : VUF_FINDING_BAD_INPUT, "setup",
                "cannot set the session up: %s", h->g.nreg ? err : "guest memory");
    }
    if (h->f.kind == VUF_FINDING_BAD_INPUT)
        h->st.bad_inputs++;
    if (!h->g.armed)
        h->st.guest_disarmed++;
    disconnect(h);
    h->st.chains = h->t->ops->chains ? h->t->ops->chains(h->t) : 0;
    h->t->ops->end(h->t);
    vuf_fdset_close_all(&h->fds); /* a copy of the main channel's end the front-end kept */
    if (h->t->ops->findings && h->f.kind != VUF_FINDING_TARGET_ERROR) {
        vuf_finding tf;
        memset(&tf, 0, sizeof tf);
        if (h->t->ops->findings(h->t, &tf)) {
            /* the process itself outranks what was seen on the wire */
            if (h->f.kind == VUF_FINDING_NONE || tf.kind == VUF_FINDING_CRASH ||
                tf.kind == VUF_FINDING_SANITIZER) {
                tf.action = h->action;
                h->f = tf;
            }
        }
    }
    vuf_guest_teardown(&h->g);
    if (!h->o.no_fd_oracle && !h->f.kind) {
        fd_accounting(h);
        if (scan || h->received_overflow) {
            int after = count_fds();
            h->st.fd_scans++;
            if (scan && after != fds_before)
                finding(h, VUF_FINDING_FD_LEAK, "fd-leak",
                        "%d fds open before the session, %d after: %d leaked", fds_before, after,
                        after - fds_before);
        }
    }
    return h->f;
}

/* ---------- the harness ---------- */

vuf_harness *vuf_harness_new(const vuf_spec *spec, const vuf_harness_opts *o)
{
    vuf_harness *h = calloc(1, sizeof *h);
    if (!h)
        return NULL;
    h->spec = spec;
    if (o)
        h->o = *o;
    h->side = h->o.frontend_under_test ? VUF_SIDE_FRONTEND : VUF_SIDE_BACKEND;
    h->t = h->o.custom                             ? h->o.custom
           : h->o.target == VUF_TARGET_KIND_SOCKET ? vuf_target_socket_new(spec)
                                                   : vuf_target_inproc_new(spec);
    h->chk = vuf_checker_new(h->o.judge_spec ? h->o.judge_spec : spec);
    if (h->chk)
        vuf_checker_set_device(h->chk, h->o.device);
    h->wire = malloc(sizeof *h->wire);
    vuf_guest_init(&h->g, spec);
    vuf_fdset_init(&h->fds);
    h->m_kick = vuf_spec_msg_by_name(spec, VUF_CHAN_FRONTEND, "SET_VRING_KICK");
    if (!h->t || !h->chk || !h->wire) {
        vuf_harness_free(h);
        return NULL;
    }
    h->t->sink = (vuf_target_sink){.on_event = on_event, .on_fds = on_fds, .ctx = h};
    h->async = !(h->t->ops->caps & VUF_TARGET_SYNC);
    h->events_from_target = h->t->ops->caps & VUF_TARGET_EVENTS;
    h->reply_timeout_ms = vuf_target_external_reply_timeout(h->t);
    if (h->reply_timeout_ms <= 0)
        h->reply_timeout_ms = 2000;
    vuf_endpoint_opts eo = {.channel = VUF_CHAN_BACKEND,
                            .local = VUF_SIDE_FRONTEND,
                            .payload_cap = VUF_MAX_PAYLOAD,
                            .on_event = h->events_from_target ? NULL : on_event,
                            .ctx = h};
    h->be_ep = vuf_endpoint_new(-1, &eo);
    if (!h->be_ep) {
        vuf_harness_free(h);
        return NULL;
    }
    if (!h->events_from_target)
        vuf_endpoint_set_tx_framing(h->be_ep, true);
    h->g.sticky = h->async; /* an asynchronous device may finish any request it saw, later */
    h->strict = h->o.strict == VUF_STRICT_ON ||
                (h->o.strict == VUF_STRICT_DEFAULT && (h->t->ops->caps & VUF_TARGET_REFERENCE));
    return h;
}

void vuf_harness_free(vuf_harness *h)
{
    if (!h)
        return;
    vuf_target_free(h->t);
    vuf_endpoint_free(h->be_ep);
    vuf_checker_free(h->chk);
    vuf_fdset_close_all(&h->fds);
    vuf_guest_free(&h->g);
    free(h->wire);
    free(h);
}

void vuf_harness_stats_get(const vuf_harness *h, vuf_harness_stats *st)
{
    *st = h->st;
}

uint64_t vuf_harness_accepted(const vuf_harness *h, vuf_channel ch, uint32_t id)
{
    return h->t->ops->accepted ? h->t->ops->accepted(h->t, ch, id) : 0;
}

const char *vuf_harness_target_name(const vuf_harness *h)
{
    return h->t->ops->name;
}

vuf_target *vuf_harness_target(vuf_harness *h)
{
    return h->t;
}
