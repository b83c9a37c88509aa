/* SPDX-License-Identifier: Apache-2.0 */
/* vufuzz as a hostile back-end (vuf_hostile.h): the reference device behind
 * a relay that applies a back-end session's deviations.
 *
 *   front-end ── fe_main ─┐                         ┌─ rl_main ══ device's main socket
 *   (QEMU)    ── fe_be  ──┤ ep_main/ep_be (events)  ├─ rl_be   ══ device's back-end channel
 *                          └──── player (session) ───┘
 *
 * Security model: the front-end is the peer under test; its bytes and fds
 * go to the reference device, which validates them as it validates any
 * front-end's. The relay reads them through the transport (bounded, fds
 * closed on every error) and never acts on their content beyond the header
 * and the fd kinds. */
#include "vuf_hostile.h"
#include "vuf_util.h"
#include "harness_int.h"
#include "vuf_codec.h"
#include "vuf_ref.h"
#include "vuf_ref_conn.h"
#include "vuf_transport.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define HELD_MAX 16        /* device replies held for a reply line */
#define FIFO_MAX 64        /* back-end requests awaiting the front-end's reply */
#define MAX_DELAY_MS 10000 /* a delay line waits at most this long */
#define IO_TIMEOUT_MS 1000 /* the rest of a message, a send into a full socket */
#define MSG_MAX (VUF_HDR_SIZE + VUF_PAYLOAD_MAX)

/* virtio-net's features for --device net (a recording of QEMU driven by
 * iPXE, tests/test_qemu_net.sh): MRG_RXBUF, RING_INDIRECT_DESC,
 * RING_EVENT_IDX, PROTOCOL_FEATURES, VERSION_1; protocol features MQ,
 * REPLY_ACK, BACKEND_REQ (no CONFIG: the net front-end reads no config
 * space; no in-band kicks: the device serves no ring). */
#define NET_FEATURES 0x170008000ull
#define NET_PROTOCOL_FEATURES 0x29ull

typedef struct {
    uint8_t data[MSG_MAX];
    size_t len;
    int fds[VUF_MAX_FDS];
    size_t nfds;
} held_msg;

/* Where the stream the back-end writes on a channel stands: in a header
 * (have bytes of it), or in a payload (need bytes more). */
typedef struct {
    uint8_t hdr[VUF_HDR_SIZE];
    size_t have;
    uint64_t need;
} tx_state;

struct vuf_hostile {
    const vuf_spec *spec;
    vuf_hostile_opts o;
    vuf_ref_config cfg;
    vuf_ref *dev;
    uint8_t *disk; /* VUF_SESSION_MAX_DISK bytes reserved, touched as used */
    vuf_ref_conn *conn;
    int fe_main, fe_be; /* the front-end's sockets (our ends) */
    int rl_main, rl_be; /* our ends of the device's socket pairs */
    vuf_endpoint *ep_main, *ep_be;
    const Vuf__Session *s;
    size_t next;     /* the next action (index) */
    bool in_group;   /* performing the actions after a match */
    bool hold_reply; /* ... and one of them is a reply line: the device's reply waits */
    int64_t delay_until;
    held_msg held[HELD_MAX];
    size_t nheld;
    bool fifo[FIFO_MAX]; /* awaited back-end replies, oldest first: true = ours */
    size_t nfifo;
    bool gave_up; /* a TIMEOUT note was given for the newest awaited reply */
    vuf_fdset fds;
    vuf_guest noguest; /* a back-end has no guest memory of its own */
    vuf_session_wire *wire;
    int64_t last;
    tx_state tx[VUF_CHAN_COUNT];
    uint64_t chains;
    const vuf_msg_def *m_backend_req, *m_kick;
    char err[256];
};

static void close_fd(int *fd)
{
    if (*fd >= 0)
        close(*fd);
    *fd = -1;
}

static size_t nactions(const vuf_hostile *h)
{
    return h->s ? h->s->n_actions : 0;
}

static bool is_expect(const Vuf__Action *a)
{
    return a->action_case == VUF__ACTION__ACTION_EXPECT ||
           a->action_case == VUF__ACTION__ACTION_BACKEND_EXPECT;
}

/* ---------- setup ---------- */

vuf_hostile *vuf_hostile_new(const vuf_spec *spec, const vuf_hostile_opts *o, char *err,
                             size_t errcap)
{
    vuf_hostile *h = calloc(1, sizeof *h);
    if (!h) {
        snprintf(err, errcap, "out of memory");
        return NULL;
    }
    h->spec = spec;
    h->o = *o;
    if (h->o.backend_timeout_ms <= 0)
        h->o.backend_timeout_ms = 2000;
    h->fe_main = h->fe_be = h->rl_main = h->rl_be = -1;
    vuf_fdset_init(&h->fds);
    h->wire = malloc(sizeof *h->wire);
    h->disk = mmap(NULL, VUF_SESSION_MAX_DISK, PROT_READ | PROT_WRITE,
                   MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    if (h->disk == MAP_FAILED)
        h->disk = NULL;
    vuf_ref_config_default(&h->cfg);
    h->cfg.disk = h->disk;
    if (o->device == VUF_HOSTILE_NET) {
        h->cfg.features = NET_FEATURES;
        h->cfg.protocol_features = NET_PROTOCOL_FEATURES;
        h->cfg.queues = 2; /* one queue pair: receive and transmit */
    }
    vuf_endpoint_opts eo = {.channel = VUF_CHAN_FRONTEND,
                            .local = VUF_SIDE_BACKEND,
                            .on_event = o->on_event,
                            .ctx = o->ctx};
    h->ep_main = vuf_endpoint_new(-1, &eo);
    eo.channel = VUF_CHAN_BACKEND;
    h->ep_be = vuf_endpoint_new(-1, &eo);
    h->dev = h->disk ? vuf_ref_new(spec, &h->cfg, err, errcap) : NULL;
    if (!h->wire || !h->disk || !h->ep_main || !h->ep_be || !h->dev) {
        if (!h->dev && (h->disk && h->wire && h->ep_main && h->ep_be))
            ; /* err set by vuf_ref_new */
        else
            snprintf(err, errcap, "out of memory");
        vuf_hostile_free(h);
        return NULL;
    }
    /* sends are reported as the front-end frames them (raw and truncated
     * messages included) */
    vuf_endpoint_set_tx_framing(h->ep_main, true);
    vuf_endpoint_set_tx_framing(h->ep_be, true);
    h->m_backend_req = vuf_spec_msg_by_name(spec, VUF_CHAN_FRONTEND, "SET_BACKEND_REQ_FD");
    h->m_kick = vuf_spec_msg_by_name(spec, VUF_CHAN_FRONTEND, "SET_VRING_KICK");
    return h;
}

static void drop_held(vuf_hostile *h)
{
    for (size_t i = 0; i < h->nheld; i++)
        vuf_close_fds(h->held[i].fds, &h->held[i].nfds);
    h->nheld = 0;
}

void vuf_hostile_end(vuf_hostile *h)
{
    if (h->conn) {
        vuf_ref_conn_free(h->conn);
        h->conn = NULL;
    }
    close_fd(&h->rl_main);
    close_fd(&h->rl_be);
    close_fd(&h->fe_main);
    close_fd(&h->fe_be);
    vuf_endpoint_set_fd(h->ep_main, -1);
    vuf_endpoint_set_fd(h->ep_be, -1);
    drop_held(h);
    vuf_fdset_close_all(&h->fds);
    memset(h->tx, 0, sizeof h->tx);
    h->s = NULL;
    h->in_group = h->hold_reply = false;
    h->delay_until = 0;
    h->nfifo = 0;
}

void vuf_hostile_free(vuf_hostile *h)
{
    if (!h)
        return;
    vuf_hostile_end(h);
    vuf_ref_free(h->dev);
    vuf_endpoint_free(h->ep_main);
    vuf_endpoint_free(h->ep_be);
    if (h->disk)
        munmap(h->disk, VUF_SESSION_MAX_DISK);
    free(h->wire);
    free(h);
}

/* ---------- the front-end's side ---------- */

/* The front-end closed a channel: what the back-end left unfinished on it
 * is not the start of the next connection's first message. */
static void restart_tx(vuf_endpoint *e)
{
    vuf_endpoint_set_tx_framing(e, false);
    vuf_endpoint_set_tx_framing(e, true);
}

/* The back-end closes the main channel (or sees it closed: `emitted`, the
 * endpoint reported the front-end's close). The back-end channel goes with
 * it, closed first, as the device's connection does. */
static void close_main(vuf_hostile *h, bool emitted)
{
    if (h->fe_main < 0)
        return;
    if (h->fe_be >= 0) {
        vuf_endpoint_emit_close(h->ep_be, VUF_SIDE_BACKEND);
        close_fd(&h->fe_be);
        vuf_endpoint_set_fd(h->ep_be, -1);
    }
    if (!emitted)
        vuf_endpoint_emit_close(h->ep_main, VUF_SIDE_BACKEND);
    else
        restart_tx(h->ep_main);
    close_fd(&h->fe_main);
    vuf_endpoint_set_fd(h->ep_main, -1);
    memset(h->tx, 0, sizeof h->tx);
    close_fd(&h->rl_main); /* the device sees its connection end */
    close_fd(&h->rl_be);
    drop_held(h);
    h->in_group = false;
    h->delay_until = 0;
    if (h->conn)
        vuf_ref_conn_step(h->conn, 0);
}

/* The back-end channel toward the front-end ends: by the back-end (a close
 * line, the device closed its end) or by the front-end (`emitted`). */
static void close_backend(vuf_hostile *h, bool emitted)
{
    if (h->fe_be >= 0 && !emitted)
        vuf_endpoint_emit_close(h->ep_be, VUF_SIDE_BACKEND);
    else
        restart_tx(h->ep_be);
    close_fd(&h->fe_be);
    vuf_endpoint_set_fd(h->ep_be, -1);
    close_fd(&h->rl_be);
    memset(&h->tx[VUF_CHAN_BACKEND], 0, sizeof h->tx[0]);
    h->nfifo = 0;
}

/* Follow what went out on a channel: the message boundaries the front-end
 * frames. */
static void tx_track(tx_state *t, const uint8_t *buf, size_t len)
{
    while (len) {
        if (t->need) {
            size_t k = len < t->need ? len : (size_t)t->need;
            t->need -= k;
            buf += k;
            len -= k;
            continue;
        }
        size_t k = VUF_HDR_SIZE - t->have < len ? VUF_HDR_SIZE - t->have : len;
        memcpy(t->hdr + t->have, buf, k);
        t->have += k;
        buf += k;
        len -= k;
        if (t->have == VUF_HDR_SIZE) {
            vuf_hdr hd;
            vuf_hdr_decode(t->hdr, &hd);
            t->need = hd.size;
            t->have = 0;
        }
    }
}

/* How many bytes of buf finish the message the front-end is framing on t
 * (0: none is in progress; len: buf does not finish it). */
static size_t tx_finishing(const tx_state *t, const uint8_t *buf, size_t len)
{
    if (!t->need && !t->have)
        return 0;
    tx_state c = *t;
    for (size_t k = 0; k < len;) {
        size_t step = c.need ? (size_t)c.need : 1;
        if (step > len - k)
            step = len - k;
        tx_track(&c, buf + k, step);
        k += step;
        if (!c.need && !c.have)
            return k;
    }
    return len;
}

static bool send_main(vuf_hostile *h, const uint8_t *buf, size_t len, const int *fds,
                      const uint8_t *kinds, size_t nfds)
{
    if (h->fe_main < 0)
        return false;
    h->last = vuf_now_ms();
    tx_track(&h->tx[VUF_CHAN_FRONTEND], buf, len);
    if (vuf_endpoint_send(h->ep_main, buf, len, fds, kinds, nfds, IO_TIMEOUT_MS) != VUF_IO_OK) {
        close_main(h, false); /* the front-end is gone, or stopped reading */
        return false;
    }
    return true;
}

static bool send_backend(vuf_hostile *h, const uint8_t *buf, size_t len, const int *fds,
                         const uint8_t *kinds, size_t nfds)
{
    if (h->fe_be < 0)
        return false;
    h->last = vuf_now_ms();
    vuf_hdr hd = {0};
    if (len >= VUF_HDR_SIZE)
        vuf_hdr_decode(buf, &hd);
    if (h->nfifo && !(hd.flags & VUF_F_REPLY) && !h->gave_up) {
        /* a request before the reply to the last one: the back-end does
         * not wait (on purpose, or the device and a line of the session
         * both ask); said as the checker reads it, so the front-end is not
         * blamed for a reply it had no time to give */
        size_t k = tx_finishing(&h->tx[VUF_CHAN_BACKEND], buf, len);
        if (k && k < len) {
            /* the last message is unfinished (a size larger than its
             * bytes): the front-end frames it with the first k bytes of
             * this one, the request the note is about; then the rest */
            tx_track(&h->tx[VUF_CHAN_BACKEND], buf, k);
            if (vuf_endpoint_send(h->ep_be, buf, k, fds, kinds, nfds, IO_TIMEOUT_MS) != VUF_IO_OK) {
                close_backend(h, false);
                return false;
            }
            buf += k;
            len -= k;
            fds = NULL;
            kinds = NULL;
            nfds = 0;
        }
        vuf_endpoint_emit_note(h->ep_be, VUF_SIDE_BACKEND, VUF_NOTE_TIMEOUT, NULL,
                               "the next request goes out without waiting for the reply");
        h->gave_up = true;
    }
    tx_track(&h->tx[VUF_CHAN_BACKEND], buf, len);
    if (vuf_endpoint_send(h->ep_be, buf, len, fds, kinds, nfds, IO_TIMEOUT_MS) != VUF_IO_OK) {
        close_backend(h, false);
        return false;
    }
    return true;
}

/* Will the front-end answer this back-end request (NEED_REPLY, or a
 * message the table says is always answered)? */
static bool answered(const vuf_hostile *h, const uint8_t *buf, size_t len)
{
    if (len < VUF_HDR_SIZE)
        return false;
    vuf_hdr hd;
    vuf_hdr_decode(buf, &hd);
    if (hd.flags & VUF_F_REPLY)
        return false;
    const vuf_msg_def *d = vuf_spec_msg(h->spec, VUF_CHAN_BACKEND, hd.request);
    return (hd.flags & VUF_F_NEED_REPLY) || (d && d->reply == VUF_REPLY_ALWAYS);
}

static void fifo_push(vuf_hostile *h, bool ours)
{
    if (h->nfifo < FIFO_MAX)
        h->fifo[h->nfifo++] = ours;
    h->gave_up = false;
}

/* The owner of the oldest awaited back-end reply: 1 ours, 0 the device's,
 * -1 none awaited. */
static int fifo_pop(vuf_hostile *h)
{
    if (!h->nfifo)
        return -1;
    bool ours = h->fifo[0];
    memmove(h->fifo, h->fifo + 1, (h->nfifo - 1) * sizeof h->fifo[0]);
    h->nfifo--;
    return ours;
}

static void flush_held(vuf_hostile *h)
{
    for (size_t i = 0; i < h->nheld; i++) {
        held_msg *m = &h->held[i];
        send_main(h, m->data, m->len, m->fds, NULL, m->nfds);
        vuf_close_fds(m->fds, &m->nfds);
    }
    h->nheld = 0;
}

/* ---------- the device's side ---------- */

static void run_device(vuf_hostile *h);

/* What the device sent: replies on the main channel (held for a reply
 * line, else forwarded) and requests on its back-end channel (forwarded). */
static void collect(vuf_hostile *h)
{
    static uint8_t pl[VUF_PAYLOAD_MAX];
    for (int k = 0; k < 64 && h->rl_be >= 0; k++) {
        vuf_rx_msg rx = {.payload = pl, .payload_cap = sizeof pl};
        vuf_io_status st = vuf_recv_msg(h->rl_be, &rx, 0);
        if (st == VUF_IO_TIMEOUT && !rx.hdr_len)
            break;
        if (st != VUF_IO_OK) { /* the device closed its back-end channel */
            close_backend(h, false);
            break;
        }
        uint8_t buf[MSG_MAX];
        memcpy(buf, rx.hdr, VUF_HDR_SIZE);
        memcpy(buf + VUF_HDR_SIZE, pl, rx.payload_len);
        size_t len = VUF_HDR_SIZE + rx.payload_len;
        if (send_backend(h, buf, len, rx.fds, NULL, rx.nfds) && answered(h, buf, len))
            fifo_push(h, false);
        vuf_close_fds(rx.fds, &rx.nfds);
    }
    for (int k = 0; k < 64 && h->rl_main >= 0; k++) {
        vuf_rx_msg rx = {.payload = pl, .payload_cap = sizeof pl};
        vuf_io_status st = vuf_recv_msg(h->rl_main, &rx, 0);
        if (st == VUF_IO_TIMEOUT && !rx.hdr_len)
            break;
        if (st != VUF_IO_OK) { /* the device closed the connection: its policy */
            if (!h->hold_reply)
                flush_held(h);
            close_main(h, false);
            break;
        }
        if (h->nheld == HELD_MAX) {
            vuf_close_fds(rx.fds, &rx.nfds);
            continue;
        }
        held_msg *m = &h->held[h->nheld++];
        memcpy(m->data, rx.hdr, VUF_HDR_SIZE);
        memcpy(m->data + VUF_HDR_SIZE, pl, rx.payload_len);
        m->len = VUF_HDR_SIZE + rx.payload_len;
        memcpy(m->fds, rx.fds, rx.nfds * sizeof(int));
        m->nfds = rx.nfds;
        if (!h->hold_reply)
            flush_held(h);
    }
}

static void run_device(vuf_hostile *h)
{
    if (h->conn && vuf_ref_conn_is_open(h->conn))
        vuf_ref_conn_step(h->conn, 0);
    collect(h);
}

/* ---------- the session's actions ---------- */

/* The session cannot go on: the reason in h->err (fmt NULL: it is there
 * already). */
static void stop_session(vuf_hostile *h, const char *fmt, const char *what)
{
    if (fmt)
        snprintf(h->err, sizeof h->err, fmt, what);
    h->next = nactions(h);
    h->in_group = false;
}

/* The fds a built message names, made real; *n of them. false: bad. */
static bool make_fds(vuf_hostile *h, const vuf_session_wire *w, int *fds, uint8_t *kinds, size_t *n,
                     int *dup_be)
{
    *n = 0;
    *dup_be = -1;
    for (size_t i = 0; i < w->nfds; i++) {
        const Vuf__Fd *f = &w->fds[i];
        int fd, guest;
        uint8_t kind;
        if (f->kind == VUF__FD_KIND__FD_BACKEND_CHANNEL && h->fe_be >= 0 && *dup_be < 0) {
            /* the back-end's own end of the back-end channel */
            fd = *dup_be = fcntl(h->fe_be, F_DUPFD_CLOEXEC, 0);
            kind = VUF_FDKIND_SOCKET;
        } else {
            fd = vuf_fdset_make(&h->fds, &h->noguest, f, w->fd_size_derived[i], h->fe_main, &guest,
                                &kind);
        }
        if (fd == -2)
            continue; /* a closed number: the kernel refuses it at the sender */
        if (fd < 0)
            return false;
        fds[*n] = fd;
        kinds[(*n)++] = kind;
    }
    return true;
}

/* The device's reply as session fields (its layout's, in order; a count
 * field is left to be derived), in *out (malloc'd, each Field and path
 * too). Returns their number, 0 when the payload does not fit the layout. */
static size_t device_fields(const vuf_payload_def *lay, const uint8_t *pl, size_t len,
                            Vuf__Field ***out)
{
    *out = NULL;
    if (!lay || lay->is_empty)
        return 0;
    size_t cap = 64, n = 0;
    Vuf__Field **v = calloc(cap, sizeof *v);
    if (!v)
        return 0;
    int count_field = lay->varray_field >= 0 ? lay->fields[lay->varray_field].count_field : -1;
    for (size_t i = 0; i < lay->nfields && n < cap; i++) {
        const vuf_field_def *f = &lay->fields[i];
        if (!f->name || (int)i == count_field || f->type == VUF_FT_PAD)
            continue;
        if (f->type <= VUF_FT_U64 || f->type == VUF_FT_BYTES ||
            (f->type == VUF_FT_VARRAY && !f->element)) {
            if (f->offset > len)
                continue;
            Vuf__Field *x = malloc(sizeof *x);
            if (!x)
                break;
            vuf__field__init(x);
            x->path = strdup(f->name);
            if (f->type <= VUF_FT_U64) {
                if (f->offset + f->size > len) {
                    free(x->path);
                    free(x);
                    continue;
                }
                uint64_t val = 0;
                memcpy(&val, pl + f->offset, f->size); /* little-endian host */
                x->has_value = true;
                x->value = val;
            } else {
                size_t end = f->type == VUF_FT_BYTES ? f->offset + f->size : len;
                if (end > len)
                    end = len;
                x->has_bytes = true;
                x->bytes.len = end - f->offset;
                x->bytes.data = malloc(x->bytes.len ? x->bytes.len : 1);
                if (x->bytes.data)
                    memcpy(x->bytes.data, pl + f->offset, x->bytes.len);
            }
            v[n++] = x;
            continue;
        }
        /* an array of records: element k's integer fields */
        const vuf_payload_def *e = f->element;
        for (size_t k = 0; e && f->size && f->offset + (k + 1) * f->size <= len; k++)
            for (size_t j = 0; j < e->nfields && n < cap; j++) {
                const vuf_field_def *sf = &e->fields[j];
                if (!sf->name || sf->type > VUF_FT_U64)
                    continue;
                Vuf__Field *x = malloc(sizeof *x);
                char path[160];
                if (!x)
                    break;
                vuf__field__init(x);
                snprintf(path, sizeof path, "%s[%zu].%s", f->name, k, sf->name);
                x->path = strdup(path);
                uint64_t val = 0;
                memcpy(&val, pl + f->offset + k * f->size + sf->offset, sf->size);
                x->has_value = true;
                x->value = val;
                v[n++] = x;
            }
    }
    *out = v;
    return n;
}

static void free_fields(Vuf__Field **v, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (v[i])
            protobuf_c_message_free_unpacked(&v[i]->base, NULL);
    free(v);
}

/* The wire bytes of a main-channel line of the back-end; `base` is the
 * device's reply it is laid over (NULL: none). *use_base_fds: the device's
 * fds go with it (the line names none). */
static int build_main(vuf_hostile *h, const Vuf__Message *m, const held_msg *base,
                      bool *use_base_fds)
{
    Vuf__Message t = *m;
    Vuf__Field **dev = NULL, **all = NULL;
    size_t ndev = 0;
    *use_base_fds = false;
    uint32_t id;
    const vuf_msg_def *def = vuf_session_msg_def(h->spec, VUF_CHAN_FRONTEND, m, &id);
    if (base && base->len >= VUF_HDR_SIZE) {
        vuf_hdr bh;
        vuf_hdr_decode(base->data, &bh);
        const uint8_t *pl = base->data + VUF_HDR_SIZE;
        size_t plen = base->len - VUF_HDR_SIZE;
        if (bh.request == id && !m->has_raw_payload && !m->n_fields) {
            t.has_raw_payload = true; /* the device's payload as it is */
            t.raw_payload.data = (uint8_t *)pl;
            t.raw_payload.len = plen;
        } else if (bh.request == id && !m->has_raw_payload && def) {
            bool try_ack;
            const vuf_payload_def *lay = vuf_session_layout(h->spec, def, true, &try_ack);
            if (try_ack && vuf_payload_check_size(lay, VUF_SIZE_EXACT, pl, plen, NULL) != VUF_SZ_OK)
                lay = vuf_reply_layout(h->spec, def, false);
            ndev = device_fields(lay, pl, plen, &dev);
            all = ndev ? malloc((ndev + m->n_fields) * sizeof *all) : NULL;
            if (all) { /* the device's fields, then the line's: later ones win */
                memcpy(all, dev, ndev * sizeof *all);
                memcpy(all + ndev, m->fields, m->n_fields * sizeof *all);
                t.fields = all;
                t.n_fields = ndev + m->n_fields;
            }
        }
        if (!m->n_fds && !(m->has_no_fds && m->no_fds)) {
            t.has_no_fds = t.no_fds = true;
            *use_base_fds = true;
        }
    }
    int rc = vuf_session_build(h->spec, VUF_CHAN_FRONTEND, &t, h->wire, h->err, sizeof h->err);
    free(all);
    free_fields(dev, ndev);
    return rc;
}

static bool is_reply_line(const Vuf__Message *m)
{
    return (m->has_reply && m->reply) || (m->has_flags && (m->flags & VUF_F_REPLY));
}

/* Send a built message with the fds it names. */
static void send_built(vuf_hostile *h, vuf_channel ch, const int *extra, size_t nextra)
{
    int fds[VUF_SESSION_MAX_FDS];
    uint8_t kinds[VUF_SESSION_MAX_FDS];
    size_t n = 0;
    int dup_be = -1;
    if (extra) {
        memcpy(fds, extra, nextra * sizeof *fds);
        n = nextra;
        for (size_t i = 0; i < n; i++)
            kinds[i] = (uint8_t)vuf_fd_classify(fds[i]);
    } else if (!make_fds(h, h->wire, fds, kinds, &n, &dup_be)) {
        close_fd(&dup_be);
        stop_session(h, "cannot make the fds of a %s message", vuf_channel_name(ch));
        return;
    }
    const uint8_t *buf = h->wire->data;
    size_t len = h->wire->len;
    if (ch == VUF_CHAN_FRONTEND) {
        send_main(h, buf, len, fds, kinds, n);
    } else if (send_backend(h, buf, len, fds, kinds, n) && answered(h, buf, len)) {
        fifo_push(h, true); /* the front-end's reply comes to us */
    }
    close_fd(&dup_be);
}

static void perform(vuf_hostile *h, const Vuf__Action *a)
{
    switch (a->action_case) {
    case VUF__ACTION__ACTION_BE_SEND: {
        const Vuf__Message *m = a->be_send;
        held_msg base;
        bool have = false, base_fds;
        if (is_reply_line(m) && h->nheld) { /* the device's reply, laid under it */
            base = h->held[0];
            memmove(h->held, h->held + 1, (h->nheld - 1) * sizeof h->held[0]);
            h->nheld--;
            have = true;
        }
        if (build_main(h, m, have ? &base : NULL, &base_fds)) {
            if (have)
                vuf_close_fds(base.fds, &base.nfds);
            stop_session(h, NULL, NULL);
            return;
        }
        send_built(h, VUF_CHAN_FRONTEND, have && base_fds ? base.fds : NULL,
                   have && base_fds ? base.nfds : 0);
        if (have)
            vuf_close_fds(base.fds, &base.nfds);
        break;
    }
    case VUF__ACTION__ACTION_BE_BACKEND_SEND:
        if (vuf_session_build(h->spec, VUF_CHAN_BACKEND, a->be_backend_send, h->wire, h->err,
                              sizeof h->err)) {
            stop_session(h, NULL, NULL);
            return;
        }
        send_built(h, VUF_CHAN_BACKEND, NULL, 0);
        break;
    case VUF__ACTION__ACTION_DELAY:
        h->delay_until = vuf_now_ms() + (a->delay > MAX_DELAY_MS ? MAX_DELAY_MS : a->delay);
        break;
    case VUF__ACTION__ACTION_BE_CLOSE:
        close_main(h, false);
        break;
    case VUF__ACTION__ACTION_BE_CLOSE_BACKEND:
        close_backend(h, false);
        run_device(h); /* the device sees its channel gone */
        break;
    case VUF__ACTION__ACTION_RAW: {
        const Vuf__Raw *r = a->raw;
        bool be = r->has_backend && r->backend;
        vuf_session_wire *w = h->wire;
        w->nfds = 0;
        for (size_t i = 0; i < r->n_fds && i < VUF_SESSION_MAX_FDS; i++) {
            w->fds[w->nfds] = *r->fds[i];
            w->fd_size_derived[w->nfds++] = false;
        }
        int fds[VUF_SESSION_MAX_FDS];
        uint8_t kinds[VUF_SESSION_MAX_FDS];
        size_t n = 0;
        int dup_be = -1;
        if (r->data.len && make_fds(h, w, fds, kinds, &n, &dup_be)) {
            if (be)
                send_backend(h, r->data.data, r->data.len, fds, kinds, n);
            else
                send_main(h, r->data.data, r->data.len, fds, kinds, n);
        }
        close_fd(&dup_be);
        break;
    }
    case VUF__ACTION__ACTION_RESIZE:
        if (h->conn && vuf_ref_conn_is_open(h->conn)) {
            uint64_t size = a->resize > VUF_SESSION_MAX_DISK ? VUF_SESSION_MAX_DISK : a->resize;
            vuf_ref_conn_set_disk(h->conn, size ? h->disk : NULL, size);
            collect(h);
        }
        break;
    default: /* a front-end action: nothing for a back-end to do */
        break;
    }
}

/* Does the group from action i (up to the next F>B line) hold a reply line
 * for the device's reply? */
static bool group_has_reply(const vuf_hostile *h, size_t i)
{
    for (; i < nactions(h) && !is_expect(h->s->actions[i]); i++) {
        const Vuf__Action *a = h->s->actions[i];
        if (a->action_case == VUF__ACTION__ACTION_BE_SEND && is_reply_line(a->be_send))
            return true;
    }
    return false;
}

static void end_group(vuf_hostile *h)
{
    h->in_group = h->hold_reply = false;
    flush_held(h); /* a device reply no line took */
}

/* Perform the group's actions until its end, a delay, or a closed channel. */
static void run_actions(vuf_hostile *h)
{
    while (h->in_group) {
        if (h->fe_main < 0) {
            h->in_group = false;
            return;
        }
        if (h->delay_until) {
            if (vuf_now_ms() < h->delay_until)
                return;
            h->delay_until = 0;
        }
        if (h->next >= nactions(h) || is_expect(h->s->actions[h->next])) {
            end_group(h);
            return;
        }
        const Vuf__Action *a = h->s->actions[h->next++];
        if (h->o.on_action)
            h->o.on_action(h->o.ctx, h->next, a);
        perform(h, a);
    }
}

static void start_group(vuf_hostile *h)
{
    h->in_group = true;
    h->hold_reply = group_has_reply(h, h->next);
    if (!h->hold_reply)
        flush_held(h);
    run_actions(h);
}

/* Is the session waiting for this message of the front-end? Then it is
 * matched (the expectation performed). */
static bool matches(vuf_hostile *h, vuf_channel ch, const uint8_t *msg, size_t len)
{
    if (h->in_group || h->next >= nactions(h) || len < VUF_HDR_SIZE)
        return false;
    const Vuf__Action *a = h->s->actions[h->next];
    vuf_channel want =
        a->action_case == VUF__ACTION__ACTION_BACKEND_EXPECT ? VUF_CHAN_BACKEND : VUF_CHAN_FRONTEND;
    if (!is_expect(a) || want != ch)
        return false;
    uint32_t id;
    vuf_session_msg_def(h->spec, ch, a->expect, &id);
    vuf_hdr hd;
    vuf_hdr_decode(msg, &hd);
    if (hd.request != id)
        return false;
    h->next++;
    if (h->o.on_action)
        h->o.on_action(h->o.ctx, h->next, a);
    return true;
}

/* ---------- what the front-end sends ---------- */

/* SET_BACKEND_REQ_FD with one socket: the front-end's end of the back-end
 * channel stays here, the device gets one end of a pair of ours. */
static void take_backend_channel(vuf_hostile *h, vuf_endpoint_msg *m)
{
    vuf_hdr hd;
    vuf_hdr_decode(m->data, &hd);
    if (!h->m_backend_req || hd.request != h->m_backend_req->id || m->nfds != 1 ||
        m->kinds[0] != VUF_FDKIND_SOCKET)
        return;
    int sv[2];
    if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv))
        return; /* the device gets the front-end's socket itself */
    if (h->fe_be >= 0)
        close_backend(h, false); /* replaced */
    h->fe_be = m->fds[0];
    h->rl_be = sv[1];
    m->fds[0] = sv[0];
    h->nfifo = 0;
    vuf_endpoint_set_fd(h->ep_be, h->fe_be);
    vuf_endpoint_emit_open(h->ep_be, VUF_SIDE_FRONTEND);
}

/* A net device serves no ring: its kick eventfds are idle ones of ours. */
static void idle_kick(vuf_hostile *h, vuf_endpoint_msg *m)
{
    vuf_hdr hd;
    vuf_hdr_decode(m->data, &hd);
    if (h->o.device != VUF_HOSTILE_NET || !h->m_kick || hd.request != h->m_kick->id ||
        m->nfds != 1 || m->kinds[0] != VUF_FDKIND_EVENTFD)
        return;
    Vuf__Fd spec = VUF__FD__INIT;
    int guest;
    uint8_t kind;
    int fd = vuf_fdset_make(&h->fds, &h->noguest, &spec, false, -1, &guest, &kind);
    if (fd < 0)
        return;
    close(m->fds[0]);
    m->fds[0] = fcntl(fd, F_DUPFD_CLOEXEC, 0); /* the set keeps its own */
}

static void to_device(vuf_hostile *h, int sock, vuf_endpoint_msg *m)
{
    if (sock >= 0)
        vuf_send_msg(sock, m->data, m->len, m->fds, m->nfds, IO_TIMEOUT_MS);
    vuf_close_fds(m->fds, &m->nfds);
    run_device(h);
}

static void from_frontend_main(vuf_hostile *h)
{
    vuf_endpoint_msg m;
    vuf_io_status st = vuf_endpoint_recv(h->ep_main, &m, IO_TIMEOUT_MS);
    if (st == VUF_IO_TIMEOUT && m.len == 0)
        return;
    h->last = vuf_now_ms();
    if (st != VUF_IO_OK) {
        /* EOF and SHORT: the front-end closed it (the endpoint said so);
         * anything else broke the framing: the device's policy, a close */
        vuf_close_fds(m.fds, &m.nfds);
        close_main(h, st == VUF_IO_EOF || st == VUF_IO_SHORT);
        return;
    }
    bool match = matches(h, VUF_CHAN_FRONTEND, m.data, m.len);
    if (match)
        h->hold_reply = group_has_reply(h, h->next); /* before the device answers */
    take_backend_channel(h, &m);
    idle_kick(h, &m);
    to_device(h, h->rl_main, &m);
    if (match)
        start_group(h);
    else if (!h->in_group)
        flush_held(h);
}

static void from_frontend_backend(vuf_hostile *h)
{
    vuf_endpoint_msg m;
    vuf_io_status st = vuf_endpoint_recv(h->ep_be, &m, IO_TIMEOUT_MS);
    if (st == VUF_IO_TIMEOUT && m.len == 0)
        return;
    h->last = vuf_now_ms();
    if (st != VUF_IO_OK) {
        vuf_close_fds(m.fds, &m.nfds);
        close_backend(h, st == VUF_IO_EOF || st == VUF_IO_SHORT);
        run_device(h);
        return;
    }
    bool match = matches(h, VUF_CHAN_BACKEND, m.data, m.len);
    vuf_hdr hd;
    vuf_hdr_decode(m.data, &hd);
    int owner = (hd.flags & VUF_F_REPLY) ? fifo_pop(h) : -1;
    if (owner == 1)
        vuf_close_fds(m.fds, &m.nfds); /* the answer to one of ours */
    else
        to_device(h, h->rl_be, &m); /* the device's, or for it to judge */
    if (match)
        start_group(h);
}

/* ---------- the session ---------- */

int vuf_hostile_begin(vuf_hostile *h, const Vuf__Session *s, int main_fd, char *err, size_t errcap)
{
    vuf_hostile_end(h);
    h->err[0] = 0;
    h->s = s;
    h->next = 0;
    vuf_session_guest g;
    vuf_session_guest_of(s ? s->config : NULL, &g);
    h->cfg.disk_size = g.disk_size;
    if (h->o.device == VUF_HOSTILE_BLK)
        h->cfg.queues = g.queues;
    memset(h->disk, 0, 4096);
    if (h->o.disk_image)
        memcpy(h->disk, h->o.disk_image,
               h->o.disk_image_len < g.disk_size ? h->o.disk_image_len : g.disk_size);
    if (vuf_ref_reset(h->dev, &h->cfg, err, errcap)) {
        close(main_fd);
        return -1;
    }
    int sv[2];
    if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv)) {
        snprintf(err, errcap, "socketpair: %s", strerror(errno));
        close(main_fd);
        return -1;
    }
    vuf_ref_conn_opts co = {.io_timeout_ms = IO_TIMEOUT_MS,
                            .backend_timeout_ms = h->o.backend_timeout_ms};
    h->conn = vuf_ref_conn_new(h->dev, sv[0], &co);
    if (!h->conn) {
        snprintf(err, errcap, "out of memory");
        close(sv[1]);
        close(main_fd);
        return -1;
    }
    h->rl_main = sv[1];
    h->fe_main = main_fd;
    vuf_endpoint_set_fd(h->ep_main, main_fd);
    h->last = vuf_now_ms();
    vuf_endpoint_emit_open(h->ep_main, VUF_SIDE_FRONTEND);
    start_group(h); /* the actions before the first F>B line */
    if (h->err[0]) {
        snprintf(err, errcap, "%s", h->err);
        return -1;
    }
    return 0;
}

void vuf_hostile_reconnect(vuf_hostile *h, int main_fd)
{
    close_main(h, false);
    int sv[2];
    if (!h->conn || socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv)) {
        close(main_fd);
        return;
    }
    vuf_ref_conn_reopen(h->conn, sv[0], -1);
    h->rl_main = sv[1];
    h->fe_main = main_fd;
    vuf_endpoint_set_fd(h->ep_main, main_fd);
    h->last = vuf_now_ms();
    vuf_endpoint_emit_open(h->ep_main, VUF_SIDE_FRONTEND);
}

void vuf_hostile_poll_add(vuf_hostile *h, vuf_pollset *p)
{
    if (h->conn)
        vuf_ref_conn_poll_add(h->conn, p);
    if (h->delay_until) {
        vuf_pollset_deadline(p, (int)(h->delay_until - vuf_now_ms()));
        return; /* nothing is read meanwhile: the front-end's order stays */
    }
    vuf_pollset_add(p, h->rl_be, POLLIN);
    vuf_pollset_add(p, h->rl_main, POLLIN);
    vuf_pollset_add(p, h->fe_be, POLLIN);
    vuf_pollset_add(p, h->fe_main, POLLIN);
}

static bool ready(const vuf_pollset *p, int fd)
{
    for (size_t i = 0; fd >= 0 && i < p->n; i++)
        if (p->pf[i].fd == fd)
            return (p->pf[i].revents & (POLLIN | POLLHUP | POLLERR | POLLNVAL)) != 0;
    return false;
}

void vuf_hostile_dispatch(vuf_hostile *h, const vuf_pollset *p)
{
    if (h->conn) {
        uint64_t before = vuf_ref_chains_completed(h->dev);
        vuf_ref_conn_dispatch(h->conn, p);
        h->chains += vuf_ref_chains_completed(h->dev) - before;
    }
    if (h->delay_until) {
        run_actions(h); /* when the delay is over */
        collect(h);
        return;
    }
    collect(h);
    /* the back-end channel first: the front-end's replies there came
     * before its next requests on the main socket */
    if (ready(p, h->fe_be))
        from_frontend_backend(h);
    if (ready(p, h->fe_main) && !h->delay_until)
        from_frontend_main(h);
}

bool vuf_hostile_open(const vuf_hostile *h)
{
    return h->fe_main >= 0;
}

bool vuf_hostile_idle(const vuf_hostile *h)
{
    return !h->delay_until && !h->in_group;
}

int64_t vuf_hostile_last_activity(const vuf_hostile *h)
{
    return h->last;
}

size_t vuf_hostile_actions_done(const vuf_hostile *h)
{
    return h->next;
}

const char *vuf_hostile_error(const vuf_hostile *h)
{
    return h->err;
}

uint64_t vuf_hostile_chains(const vuf_hostile *h)
{
    return h->chains;
}

bool vuf_hostile_close_unfinished(vuf_hostile *h)
{
    bool any = false;
    if (h->fe_be >= 0 && (h->tx[VUF_CHAN_BACKEND].have || h->tx[VUF_CHAN_BACKEND].need)) {
        close_backend(h, false);
        run_device(h);
        any = true;
    }
    if (h->fe_main >= 0 && (h->tx[VUF_CHAN_FRONTEND].have || h->tx[VUF_CHAN_FRONTEND].need)) {
        close_main(h, false);
        any = true;
    }
    if (any)
        h->last = vuf_now_ms(); /* the front-end's reaction is part of the session */
    return any;
}

bool vuf_hostile_hang_up(vuf_hostile *h)
{
    if (h->fe_main < 0)
        return false;
    close_main(h, false);
    h->last = vuf_now_ms(); /* the front-end's reaction is part of the session */
    return true;
}
