/* SPDX-License-Identifier: Apache-2.0 */
/* Sessions: the canonical text form (what vuf_session_format_text prints
 * parses back to the same session). */
#include "session_int.h"
#include "vuf_session.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---------- printing ---------- */

typedef struct {
    char *p;
    size_t len, cap;
    bool oom;
} dbuf;

static bool dreserve(dbuf *b, size_t more)
{
    if (b->oom)
        return false;
    if (b->len + more + 1 <= b->cap)
        return true;
    size_t nc = b->cap ? b->cap : 4096;
    while (nc < b->len + more + 1) {
        if (nc > SIZE_MAX / 2) {
            b->oom = true;
            return false;
        }
        nc *= 2;
    }
    char *np = realloc(b->p, nc);
    if (!np) {
        b->oom = true;
        return false;
    }
    b->p = np;
    b->cap = nc;
    return true;
}

static void dput(dbuf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static void dput(dbuf *b, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    if (n < 0 || !dreserve(b, (size_t)n))
        return;
    va_start(ap, fmt);
    vsnprintf(b->p + b->len, (size_t)n + 1, fmt, ap);
    va_end(ap);
    b->len += (size_t)n;
}

static void dnum(dbuf *b, uint64_t v)
{
    if (v < 10)
        dput(b, "%llu", (unsigned long long)v);
    else
        dput(b, "0x%llx", (unsigned long long)v);
}

static void dkey(dbuf *b, const char *key, uint64_t v)
{
    dput(b, " %s=", key);
    dnum(b, v);
}

static void dhex(dbuf *b, const uint8_t *d, size_t n)
{
    static const char hx[] = "0123456789abcdef";
    if (!n || !dreserve(b, 2 * n))
        return;
    for (size_t i = 0; i < n; i++) {
        b->p[b->len++] = hx[d[i] >> 4];
        b->p[b->len++] = hx[d[i] & 15];
    }
    b->p[b->len] = 0;
}

/* A path as one token: bytes that would end or split it become '?'. */
static void dpath(dbuf *b, const char *s)
{
    size_t n = strlen(s);
    if (!dreserve(b, n))
        return;
    for (size_t i = 0; i < n; i++) {
        unsigned char ch = (unsigned char)s[i];
        b->p[b->len++] = ch <= ' ' || ch >= 0x7f || ch == '#' || ch == '=' ? '?' : (char)ch;
    }
    b->p[b->len] = 0;
}

static void print_fds(dbuf *b, Vuf__Fd *const *fds, size_t n)
{
    dput(b, " fds=");
    for (size_t i = 0; i < n; i++) {
        const Vuf__Fd *f = fds[i];
        Vuf__FdKind k = vuf_session_fd_kind(f->kind);
        dput(b, "%s%s", i ? "," : "", vuf_session_fd_kind_name(k));
        if ((k == VUF__FD_KIND__FD_MEMFD || k == VUF__FD_KIND__FD_FILE) && f->has_size) {
            dput(b, ":");
            dnum(b, f->size);
        } else if (k == VUF__FD_KIND__FD_DUP || k == VUF__FD_KIND__FD_GUEST_MEMORY) {
            dput(b, ":");
            dnum(b, f->ref);
        }
    }
}

/* The form `short=HEX` parses to. */
static bool short_form(const Vuf__Message *m, uint8_t hb[VUF_HDR_SIZE])
{
    if (m->name || !m->has_id || !m->has_flags || !m->has_size || !m->has_truncate ||
        m->truncate >= VUF_HDR_SIZE || m->n_fields || m->has_raw_payload || m->n_fds ||
        !m->has_no_fds || !m->no_fds || m->has_need_reply || m->has_reply || m->has_nofd)
        return false;
    vuf_hdr h = {.request = m->id, .flags = m->flags, .size = m->size};
    vuf_hdr_encode(&h, hb);
    for (size_t i = m->truncate; i < VUF_HDR_SIZE; i++)
        if (hb[i])
            return false;
    return true;
}

static bool name_resolves(const vuf_spec *s, vuf_channel ch, const char *name)
{
    return name &&
           (vuf_spec_msg_by_name(s, ch, name) || vuf_spec_msg_by_name(s, VUF_CHAN_COUNT, name));
}

/* A message line: "F>B" (the front-end's) or "B>F" (a back-end session's
 * own messages). */
static void print_message(dbuf *b, const vuf_spec *s, vuf_channel ch, const Vuf__Message *m,
                          bool by_backend)
{
    dput(b, "%s %s ", by_backend ? "B>F" : "F>B", ch == VUF_CHAN_BACKEND ? "backend" : "main");
    uint8_t hb[VUF_HDR_SIZE];
    if (short_form(m, hb)) {
        dput(b, "short=");
        dhex(b, hb, m->truncate);
        return;
    }
    uint32_t id;
    const vuf_msg_def *def = vuf_session_msg_def(s, ch, m, &id);
    if (name_resolves(s, ch, m->name))
        dput(b, "%s", m->name);
    else
        dput(b, "%u", id);
    if (m->has_reply && m->reply)
        dput(b, " reply");
    if (m->has_need_reply && m->need_reply)
        dput(b, " need_reply");
    if (m->has_flags)
        dkey(b, "hdr.flags", m->flags);
    if (m->has_size)
        dkey(b, "hdr.size", m->size);
    if (m->has_raw_payload) {
        dput(b, " raw=");
        dhex(b, m->raw_payload.data, m->raw_payload.len);
    } else if (m->n_fields) {
        uint32_t flags = m->has_flags ? m->flags : VUF_F_VERSION;
        if (m->has_reply && m->reply)
            flags |= VUF_F_REPLY;
        bool try_ack;
        const vuf_payload_def *layout =
            vuf_session_layout(s, def, (flags & VUF_F_REPLY) != 0, &try_ack);
        for (size_t i = 0; i < m->n_fields; i++) {
            const Vuf__Field *f = m->fields[i];
            dput(b, " ");
            dpath(b, f->path ? f->path : "");
            dput(b, "=");
            bool bytes = f->has_bytes;
            if (f->has_bytes && f->has_value)
                bytes = vuf_session_field_classify(layout, f->path) == VUF_SFIELD_BYTES;
            if (f->has_offered && f->offered && !bytes) {
                dput(b, "offered");
                if (f->has_value) {
                    dput(b, "&");
                    dnum(b, f->value);
                }
            } else if (bytes) {
                dhex(b, f->bytes.data, f->bytes.len);
            } else if (f->has_value) {
                dnum(b, f->value);
            }
        }
    }
    if (m->n_fds)
        print_fds(b, m->fds, m->n_fds);
    else if (m->has_no_fds && m->no_fds)
        dput(b, " fds=none");
    if (m->has_nofd)
        dput(b, " nofd=%d", m->nofd ? 1 : 0);
    if (m->has_truncate)
        dkey(b, "truncate", m->truncate);
}

static void print_action(dbuf *b, const vuf_spec *s, const Vuf__Action *a)
{
    switch (a->action_case) {
    case VUF__ACTION__ACTION_SEND:
    case VUF__ACTION__ACTION_BACKEND_SEND: {
        bool be = a->action_case == VUF__ACTION__ACTION_BACKEND_SEND;
        const Vuf__Message *m = be ? a->backend_send : a->send;
        if (!m)
            return;
        print_message(b, s, be ? VUF_CHAN_BACKEND : VUF_CHAN_FRONTEND, m, false);
        break;
    }
    case VUF__ACTION__ACTION_EXPECT:
    case VUF__ACTION__ACTION_BACKEND_EXPECT:
    case VUF__ACTION__ACTION_BE_SEND:
    case VUF__ACTION__ACTION_BE_BACKEND_SEND: {
        /* the union's Message: the case says whose and on which channel */
        const Vuf__Message *m = a->expect;
        if (!m)
            return;
        vuf_channel ch = a->action_case == VUF__ACTION__ACTION_BACKEND_EXPECT ||
                                 a->action_case == VUF__ACTION__ACTION_BE_BACKEND_SEND
                             ? VUF_CHAN_BACKEND
                             : VUF_CHAN_FRONTEND;
        print_message(b, s, ch, m,
                      a->action_case == VUF__ACTION__ACTION_BE_SEND ||
                          a->action_case == VUF__ACTION__ACTION_BE_BACKEND_SEND);
        break;
    }
    case VUF__ACTION__ACTION_DELAY:
        dput(b, "delay %u", a->delay);
        break;
    case VUF__ACTION__ACTION_BE_CLOSE:
        dput(b, "close main by=B");
        break;
    case VUF__ACTION__ACTION_BE_CLOSE_BACKEND:
        dput(b, "close backend by=B");
        break;
    case VUF__ACTION__ACTION_BACKEND_REPLY: {
        const Vuf__BackendReply *r = a->backend_reply;
        if (!r)
            return;
        unsigned k = (unsigned)r->kind;
        dput(b, "backend-reply %s",
             k < vuf_session_n_backend_reply ? vuf_session_backend_reply_names[k] : "ack");
        if (r->kind == VUF__BACKEND_REPLY__KIND__NACK && r->has_value) {
            dput(b, "=");
            dnum(b, r->value);
        }
        break;
    }
    case VUF__ACTION__ACTION_MEM_WRITE:
        if (!a->mem_write)
            return;
        dput(b, "mem-write");
        dkey(b, "gpa", a->mem_write->gpa);
        dput(b, " data=");
        dhex(b, a->mem_write->data.data, a->mem_write->data.len);
        break;
    case VUF__ACTION__ACTION_DESC: {
        const Vuf__Desc *x = a->desc;
        if (!x)
            return;
        dput(b, "desc");
        if (x->has_queue)
            dkey(b, "queue", x->queue);
        dkey(b, "index", x->index);
        if (x->has_addr)
            dkey(b, "addr", x->addr);
        if (x->has_len)
            dkey(b, "len", x->len);
        if (x->has_flags)
            dkey(b, "flags", x->flags);
        if (x->has_next)
            dkey(b, "next", x->next);
        if (x->has_table)
            dkey(b, "table", x->table);
        break;
    }
    case VUF__ACTION__ACTION_AVAIL: {
        const Vuf__Avail *x = a->avail;
        if (!x)
            return;
        dput(b, "avail");
        if (x->has_queue)
            dkey(b, "queue", x->queue);
        dkey(b, "head", x->head);
        if (x->has_idx)
            dkey(b, "idx", x->idx);
        break;
    }
    case VUF__ACTION__ACTION_BLK: {
        const Vuf__BlkRequest *x = a->blk;
        if (!x)
            return;
        dput(b, "blk");
        if (x->has_queue)
            dkey(b, "queue", x->queue);
        size_t t;
        for (t = 0; t < vuf_session_n_blk_types; t++)
            if (vuf_session_blk_types[t].v == x->type)
                break;
        if (t < vuf_session_n_blk_types)
            dput(b, " type=%s", vuf_session_blk_types[t].name);
        else
            dkey(b, "type", x->type);
        if (x->has_sector)
            dkey(b, "sector", x->sector);
        if (x->has_len)
            dkey(b, "len", x->len);
        if (x->has_data) {
            dput(b, " data=");
            dhex(b, x->data.data, x->data.len);
        }
        if (x->has_indirect && x->indirect)
            dput(b, " indirect");
        if (x->has_segments)
            dkey(b, "segments", x->segments);
        break;
    }
    case VUF__ACTION__ACTION_KICK:
        if (!a->kick)
            return;
        dput(b, "kick");
        if (a->kick->has_queue)
            dkey(b, "queue", a->kick->queue);
        if (a->kick->has_inband && a->kick->inband)
            dput(b, " inband");
        break;
    case VUF__ACTION__ACTION_RAW:
        if (!a->raw)
            return;
        dput(b, "raw %s data=", a->raw->has_backend && a->raw->backend ? "backend" : "main");
        dhex(b, a->raw->data.data, a->raw->data.len);
        if (a->raw->n_fds)
            print_fds(b, a->raw->fds, a->raw->n_fds);
        break;
    case VUF__ACTION__ACTION_CLOSE_BACKEND:
        dput(b, "close backend");
        break;
    case VUF__ACTION__ACTION_DISCONNECT:
        dput(b, "close main");
        break;
    case VUF__ACTION__ACTION_CONNECT:
        dput(b, "open main");
        break;
    case VUF__ACTION__ACTION_RESIZE:
        dput(b, "resize ");
        dnum(b, a->resize);
        break;
    default:
        return; /* an empty action: nothing to perform, nothing to print */
    }
    dput(b, "\n");
}

char *vuf_session_format_text(const vuf_spec *s, const Vuf__Session *ses)
{
    dbuf b = {0};
    if (!dreserve(&b, 0))
        return NULL;
    b.p[0] = 0;
    if (!ses || !s)
        return b.p;
    if (ses->has_role)
        dput(&b, "role %s\n", ses->role == VUF__ROLE__ROLE_BACKEND ? "backend" : "frontend");
    const Vuf__Config *cf = ses->config;
    if (cf) {
        dput(&b, "config");
        if (cf->has_disk_size)
            dkey(&b, "disk_size", cf->disk_size);
        if (cf->has_queues)
            dkey(&b, "queues", cf->queues);
        if (cf->has_mem_size)
            dkey(&b, "mem_size", cf->mem_size);
        if (cf->has_mem_regions)
            dkey(&b, "mem_regions", cf->mem_regions);
        if (cf->has_mem_gpa)
            dkey(&b, "mem_gpa", cf->mem_gpa);
        if (cf->has_mem_uaddr)
            dkey(&b, "mem_uaddr", cf->mem_uaddr);
        if (cf->has_queue_size)
            dkey(&b, "queue_size", cf->queue_size);
        dput(&b, "\n");
    }
    for (size_t i = 0; i < ses->n_actions; i++)
        if (ses->actions[i])
            print_action(&b, s, ses->actions[i]);
    if (b.oom) {
        free(b.p);
        return NULL;
    }
    return b.p;
}

char *vuf_session_format_action(const vuf_spec *s, const Vuf__Action *a)
{
    dbuf b = {0};
    if (!dreserve(&b, 0))
        return NULL;
    b.p[0] = 0;
    if (s && a)
        print_action(&b, s, a);
    if (b.oom) {
        free(b.p);
        return NULL;
    }
    if (b.len && b.p[b.len - 1] == '\n')
        b.p[--b.len] = 0; /* one line, without its newline */
    return b.p;
}
