/* SPDX-License-Identifier: Apache-2.0 */
/* Sessions: the table lookups shared with the text form, and the wire bytes
 * of a message with its derived fields (docs/session-format.md, "Derived
 * fields"). All rules come from the spec table; no per-message code. */
#include "vuf_session.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---------- names ---------- */

static const char *const fd_kind_names[] = {
    [VUF__FD_KIND__FD_EVENTFD] = "eventfd",
    [VUF__FD_KIND__FD_MEMFD] = "memfd",
    [VUF__FD_KIND__FD_SOCKET] = "socket",
    [VUF__FD_KIND__FD_SOCKET_PEER_CLOSED] = "socket-closed",
    [VUF__FD_KIND__FD_SOCKET_LISTEN] = "socket-listen",
    [VUF__FD_KIND__FD_SOCKET_DGRAM] = "socket-dgram",
    [VUF__FD_KIND__FD_PIPE_READ] = "pipe-r",
    [VUF__FD_KIND__FD_PIPE_WRITE] = "pipe-w",
    [VUF__FD_KIND__FD_FILE] = "file",
    [VUF__FD_KIND__FD_DEVNULL] = "devnull",
    [VUF__FD_KIND__FD_MAIN_CHANNEL] = "main",
    [VUF__FD_KIND__FD_BACKEND_CHANNEL] = "backend",
    [VUF__FD_KIND__FD_CLOSED_NUMBER] = "closed",
    [VUF__FD_KIND__FD_DUP] = "dup",
    [VUF__FD_KIND__FD_GUEST_MEMORY] = "guest",
    [VUF__FD_KIND__FD_OTHER] = "other",
};

Vuf__FdKind vuf_session_fd_kind(Vuf__FdKind k)
{
    unsigned u = (unsigned)k;
    return u < sizeof fd_kind_names / sizeof fd_kind_names[0] ? k : VUF__FD_KIND__FD_OTHER;
}

static uint64_t clamp(bool has, uint64_t v, uint64_t def, uint64_t lo, uint64_t hi)
{
    v = has ? v : def;
    return v < lo ? lo : v > hi ? hi : v;
}

void vuf_session_guest_of(const Vuf__Config *c, vuf_session_guest *g)
{
    Vuf__Config none = VUF__CONFIG__INIT;
    if (!c)
        c = &none;
    g->queues = (uint32_t)clamp(c->has_queues, c->queues, 1, 1, VUF_SESSION_MAX_QUEUES);
    g->queue_size =
        (uint32_t)clamp(c->has_queue_size, c->queue_size, 16, 1, VUF_SESSION_MAX_QUEUE_SIZE);
    uint64_t size = clamp(c->has_mem_size, c->mem_size, 64 << 10, 0x1000, VUF_SESSION_MAX_REGION);
    size = (size + 0xfff) & ~0xfffull;
    if (size < VUF_SESSION_RING_STRIDE * (g->queues + 1))
        size = VUF_SESSION_RING_STRIDE * (g->queues + 1);
    g->region_size = size;
    g->nregions =
        (uint32_t)clamp(c->has_mem_regions, c->mem_regions, 1, 1, VUF_SESSION_MAX_REGIONS);
    g->gpa0 = c->has_mem_gpa ? c->mem_gpa : 0;
    g->uaddr0 = c->has_mem_uaddr ? c->mem_uaddr : 0x7f0000000000ull;
    /* the layout must not wrap: fall back to the defaults */
    if (g->gpa0 > UINT64_MAX - size * g->nregions)
        g->gpa0 = 0;
    if (g->uaddr0 > UINT64_MAX - size * g->nregions)
        g->uaddr0 = 0x7f0000000000ull;
    g->disk_size = clamp(c->has_disk_size, c->disk_size, 1 << 20, 0, VUF_SESSION_MAX_DISK);
}

const char *vuf_session_fd_kind_name(Vuf__FdKind k)
{
    return fd_kind_names[vuf_session_fd_kind(k)];
}

/* ---------- the table ---------- */

const vuf_msg_def *vuf_session_msg_def(const vuf_spec *s, vuf_channel ch, const Vuf__Message *m,
                                       uint32_t *id)
{
    const vuf_msg_def *d = NULL;
    if (m->name) {
        d = vuf_spec_msg_by_name(s, ch, m->name);
        if (!d)
            d = vuf_spec_msg_by_name(s, VUF_CHAN_COUNT, m->name);
    }
    if (d) {
        *id = d->id;
        return d;
    }
    *id = m->has_id ? m->id : 0;
    return vuf_spec_msg(s, ch, *id);
}

const vuf_payload_def *vuf_session_layout(const vuf_spec *s, const vuf_msg_def *def, bool is_reply,
                                          bool *try_ack)
{
    *try_ack = false;
    if (!def)
        return NULL;
    if (!is_reply)
        return def->request;
    if (def->reply == VUF_REPLY_ALWAYS)
        return vuf_reply_layout(s, def, true);
    if (def->reply_cond != VUF_COND_NONE && def->reply_payload) {
        *try_ack = true;
        return def->reply_payload;
    }
    return vuf_reply_layout(s, def, false);
}

vuf_session_field_kind vuf_session_field_classify(const vuf_payload_def *p, const char *path)
{
    uint32_t fixed;
    return vuf_session_field_shape(p, path, &fixed);
}

vuf_session_field_kind vuf_session_field_shape(const vuf_payload_def *p, const char *path,
                                               uint32_t *fixed)
{
    /* mirrors the payload builder's path rules (vuf_pb_set) */
    *fixed = 0;
    if (!p || p->is_empty || !path)
        return VUF_SFIELD_INVALID;
    if (!strncmp(path, "pad@", 4)) {
        char *end;
        errno = 0;
        unsigned long off = strtoul(path + 4, &end, 10);
        if (errno || *end)
            return VUF_SFIELD_INVALID;
        for (size_t i = 0; i < p->nfields; i++)
            if (p->fields[i].type == VUF_FT_PAD && p->fields[i].offset == off) {
                *fixed = p->fields[i].size;
                return VUF_SFIELD_BYTES;
            }
        return VUF_SFIELD_INVALID;
    }
    char name[128];
    if (strlen(path) >= sizeof name)
        return VUF_SFIELD_INVALID;
    snprintf(name, sizeof name, "%s", path);
    char *br = strchr(name, '[');
    if (br)
        *br = 0;
    const vuf_field_def *f = NULL;
    for (size_t i = 0; i < p->nfields; i++)
        if (p->fields[i].name && !strcmp(p->fields[i].name, name))
            f = &p->fields[i];
    if (!f)
        return VUF_SFIELD_INVALID;
    if (f->type <= VUF_FT_U64)
        return br ? VUF_SFIELD_INVALID : VUF_SFIELD_INT;
    if (f->type == VUF_FT_BYTES || (f->type == VUF_FT_VARRAY && !f->element && !br)) {
        if (br)
            return VUF_SFIELD_INVALID;
        *fixed = f->type == VUF_FT_BYTES ? f->size : 0;
        return VUF_SFIELD_BYTES;
    }
    if (f->type != VUF_FT_VARRAY || !br)
        return VUF_SFIELD_INVALID;
    const char *rest = path + (br - name) + 1;
    char *end;
    errno = 0;
    unsigned long long idx = strtoull(rest, &end, 10);
    if (errno || end == rest || *end != ']' || idx >= f->max_count ||
        (uint64_t)f->offset + (idx + 1) * f->size > VUF_PAYLOAD_MAX)
        return VUF_SFIELD_INVALID;
    if (!f->element)
        return end[1] ? VUF_SFIELD_INVALID : VUF_SFIELD_INT;
    if (end[1] != '.')
        return VUF_SFIELD_INVALID;
    return vuf_session_field_shape(f->element, end + 2, fixed);
}

/* ---------- building ---------- */

static int berr(char *err, size_t cap, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

static int berr(char *err, size_t cap, const char *fmt, ...)
{
    if (err && cap) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(err, cap, fmt, ap);
        va_end(ap);
    }
    return -1;
}

/* Set or clear bit `bit` of the field r points at (when the payload holds it). */
static void set_bit(uint8_t *pl, size_t len, const vuf_field_ref *r, unsigned bit, bool on)
{
    if (!r->present || (size_t)r->offset + r->width > len || bit >= 8u * r->width)
        return;
    uint64_t v = vuf_int_load(pl + r->offset, r->width); /* the whole field, not its mask */
    v = on ? v | (1ull << bit) : v & ~(1ull << bit);
    vuf_field_write(r, pl, len, v);
}

/* Apply the fields of m to a builder on layout p. */
static int set_fields(vuf_payload_builder *pb, const vuf_payload_def *p, const Vuf__Message *m,
                      char *err, size_t errcap)
{
    vuf_pb_init(pb, p);
    int rc = 0;
    for (size_t i = 0; i < m->n_fields && !rc; i++) {
        const Vuf__Field *f = m->fields[i];
        const char *path = f->path ? f->path : "";
        char e[200];
        int r;
        switch (vuf_session_field_classify(p, path)) {
        case VUF_SFIELD_INT:
            if (!f->has_value && !(f->has_offered && f->offered)) {
                rc = berr(err, errcap, "field '%s' takes a number (Field.value)", path);
                continue;
            }
            /* an offer not resolved by a harness: the mask stands for it */
            r = vuf_pb_set_num(pb, path, f->has_value ? f->value : UINT64_MAX, e, sizeof e);
            break;
        case VUF_SFIELD_BYTES:
            if (f->has_value && !f->has_bytes) {
                rc = berr(err, errcap, "field '%s' takes bytes (Field.bytes)", path);
                continue;
            }
            if (f->bytes.len > VUF_PAYLOAD_MAX) {
                rc = berr(err, errcap, "field '%s': %zu bytes, at most %d", path, f->bytes.len,
                          VUF_PAYLOAD_MAX);
                continue;
            }
            r = vuf_pb_set_bytes(pb, path, f->bytes.data, f->bytes.len, e, sizeof e);
            break;
        default:
            /* let the builder say what is wrong with the path */
            r = vuf_pb_set(pb, path, "0", e, sizeof e);
            break;
        }
        if (r)
            rc = berr(err, errcap, "%s", e);
    }
    return rc;
}

/* The least size of an fd from the fd spans of layout p at pl: the max of
 * base + size over them. 0 when there is none; *bad when one overflows. */
static uint64_t fd_span_end(const vuf_payload_def *p, const uint8_t *pl, size_t len, bool *any,
                            bool *bad)
{
    uint64_t end = 0;
    *any = *bad = false;
    for (size_t i = 0; p && i < p->nspans; i++) {
        if (!p->spans[i].fd)
            continue;
        *any = true;
        uint64_t base, size;
        if (!vuf_span_read(p, i, pl, len, &base, &size)) {
            *bad = true;
            continue;
        }
        if (base + size < base)
            *bad = true;
        else if (base + size > end)
            end = base + size;
    }
    return end;
}

static uint64_t sane_size(uint64_t end, bool bad)
{
    if (bad || end == 0 || end > VUF_SESSION_MAX_FD_SIZE)
        return VUF_SESSION_DEFAULT_FD_SIZE;
    return end;
}

/* Size of fd i from the payload's fd spans (docs/session-format.md). */
static uint64_t derived_fd_size(const vuf_payload_def *p, const uint8_t *pl, size_t len, size_t i)
{
    if (!p)
        return VUF_SESSION_DEFAULT_FD_SIZE;
    bool any, bad;
    if (p->varray_field >= 0) {
        const vuf_field_def *va = &p->fields[p->varray_field];
        if (va->element && len >= va->offset && va->size) {
            size_t nelem = (len - va->offset) / va->size;
            bool eany, ebad;
            fd_span_end(va->element, NULL, 0, &eany, &ebad);
            if (eany && i < nelem) {
                uint64_t end = fd_span_end(va->element, pl + va->offset + i * va->size, va->size,
                                           &eany, &ebad);
                return sane_size(end, ebad);
            }
        }
    }
    uint64_t end = fd_span_end(p, pl, len, &any, &bad);
    if (!any)
        return VUF_SESSION_DEFAULT_FD_SIZE;
    return sane_size(end, bad);
}

static Vuf__FdKind fd_kind_of_rule(vuf_fdkind_rule r)
{
    switch (r) {
    case VUF_FDK_SHM:
        return VUF__FD_KIND__FD_MEMFD;
    case VUF_FDK_SOCKET:
        return VUF__FD_KIND__FD_SOCKET;
    case VUF_FDK_EVENTFD:
    case VUF_FDK_ANY:
        break;
    }
    return VUF__FD_KIND__FD_EVENTFD;
}

int vuf_session_build(const vuf_spec *s, vuf_channel ch, const Vuf__Message *m,
                      vuf_session_wire *out, char *err, size_t errcap)
{
    if (!s || !m || !out)
        return berr(err, errcap, "no message");
    if ((unsigned)ch >= VUF_CHAN_COUNT)
        return berr(err, errcap, "bad channel");
    out->len = out->nfds = 0;
    uint32_t id;
    const vuf_msg_def *def = vuf_session_msg_def(s, ch, m, &id);
    out->def = def;
    uint32_t flags = m->has_flags ? m->flags : VUF_F_VERSION;
    if (m->has_reply && m->reply)
        flags |= VUF_F_REPLY;
    if (m->has_need_reply && m->need_reply)
        flags |= VUF_F_NEED_REPLY;
    bool is_reply = (flags & VUF_F_REPLY) != 0;
    bool try_ack;
    const vuf_payload_def *layout = vuf_session_layout(s, def, is_reply, &try_ack);
    uint8_t *pl = out->data + VUF_HDR_SIZE;
    size_t plen = 0;
    bool raw = m->has_raw_payload;

    /* payload */
    if (raw) {
        if (m->raw_payload.len > VUF_SESSION_MAX_PAYLOAD)
            return berr(err, errcap, "raw payload of %zu bytes, at most %d", m->raw_payload.len,
                        VUF_SESSION_MAX_PAYLOAD);
        plen = m->raw_payload.len;
        if (plen)
            memcpy(pl, m->raw_payload.data, plen);
        /* the layout the bytes are read with: a conditional reply's explicit
         * layout when they fit it, else the ack's */
        if (try_ack && vuf_payload_check_size(layout, VUF_SIZE_EXACT, pl, plen, NULL) != VUF_SZ_OK)
            layout = vuf_reply_layout(s, def, false);
    } else if (m->n_fields) {
        if (!layout || layout->is_empty)
            return berr(err, errcap, "%s takes no payload fields (use raw_payload)",
                        def ? def->name : "an unknown message id");
        vuf_payload_builder *pb = &out->pb;
        int rc = set_fields(pb, layout, m, err, errcap);
        if (rc && try_ack) {
            layout = vuf_reply_layout(s, def, false);
            rc = set_fields(pb, layout, m, err, errcap);
        }
        if (!rc) {
            plen = vuf_pb_finish(pb);
            memcpy(pl, pb->buf, plen);
        }
        if (rc)
            return -1;
    } else if (layout) {
        /* no fields: the layout's zero payload, count fields derived */
        vuf_payload_builder *pb = &out->pb;
        vuf_pb_init(pb, layout);
        plen = vuf_pb_finish(pb);
        memcpy(pl, pb->buf, plen);
    }

    /* the fd rule of what this message is: a request's, or a reply's */
    const vuf_fd_rule *rule = def ? (is_reply ? &def->reply_fds : &def->fds) : NULL;
    bool nofd_rule = rule && rule->kind == VUF_FDRULE_NOFD;
    if (nofd_rule && m->has_nofd)
        set_bit(pl, plen, &rule->ref, rule->a, m->nofd);

    /* fds */
    if (m->n_fds) {
        if (m->n_fds > VUF_SESSION_MAX_FDS)
            return berr(err, errcap, "%zu fds, at most %d", m->n_fds, VUF_SESSION_MAX_FDS);
        for (size_t i = 0; i < m->n_fds; i++) {
            vuf__fd__init(&out->fds[i]);
            const Vuf__Fd *f = m->fds[i];
            out->fds[i].kind = vuf_session_fd_kind(f->kind);
            out->fds[i].has_size = f->has_size;
            out->fds[i].size = f->size;
            out->fds[i].has_ref = f->has_ref;
            out->fds[i].ref = f->ref;
        }
        out->nfds = m->n_fds;
    } else if (!(m->has_no_fds && m->no_fds) && rule) {
        uint64_t n = 0;
        uint32_t max = VUF_SESSION_MAX_FDS;
        const vuf_channel_def *cd = vuf_spec_channel(s, ch);
        if (cd && cd->max_fds < max)
            max = cd->max_fds;
        switch (rule->kind) {
        case VUF_FDRULE_EXACT:
        case VUF_FDRULE_RANGE:
            n = rule->a;
            break;
        case VUF_FDRULE_COUNT:
            n = vuf_field_get(&rule->ref, pl, plen, 0);
            if (n > max)
                n = max;
            break;
        case VUF_FDRULE_NOFD:
            n = (vuf_field_get(&rule->ref, pl, plen, 0) >> rule->a) & 1 ? 0 : 1;
            break;
        }
        if (n > VUF_SESSION_MAX_FDS)
            n = VUF_SESSION_MAX_FDS;
        for (size_t i = 0; i < n; i++) {
            vuf__fd__init(&out->fds[i]);
            out->fds[i].kind = fd_kind_of_rule(rule->fdkind);
        }
        out->nfds = (size_t)n;
    }

    /* the NOFD bit follows the fd count unless forced (fields only: a raw
     * payload is sent verbatim) */
    if (nofd_rule && !m->has_nofd && !raw)
        set_bit(pl, plen, &rule->ref, rule->a, out->nfds == 0);

    /* sizes of memfds and files the message does not size */
    for (size_t i = 0; i < out->nfds; i++) {
        Vuf__Fd *f = &out->fds[i];
        out->fd_size_derived[i] = false;
        if ((f->kind == VUF__FD_KIND__FD_MEMFD || f->kind == VUF__FD_KIND__FD_FILE) &&
            !f->has_size) {
            f->has_size = true;
            f->size = derived_fd_size(layout, pl, plen, i);
            out->fd_size_derived[i] = true;
        }
    }

    /* header */
    out->hdr.request = id;
    out->hdr.flags = flags;
    out->hdr.size = m->has_size ? m->size : (uint32_t)plen;
    vuf_hdr_encode(&out->hdr, out->data);
    out->len = VUF_HDR_SIZE + plen;
    if (m->has_truncate && m->truncate < out->len)
        out->len = m->truncate;
    return 0;
}
