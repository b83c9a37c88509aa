/* SPDX-License-Identifier: Apache-2.0 */
/* The readable conversation format. docs/trace-format.md is the reference. */
#include "vuf_trace.h"
#include "vuf_util.h"
#include "vuf_codec.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

typedef struct {
    vuf_event ev;
    uint8_t *store; /* data then fd kinds */
} trace_item;

struct vuf_trace {
    trace_item *items;
    size_t n, cap;
};

vuf_trace *vuf_trace_new(void)
{
    return calloc(1, sizeof(vuf_trace));
}

void vuf_trace_free(vuf_trace *t)
{
    if (!t)
        return;
    for (size_t i = 0; i < t->n; i++)
        free(t->items[i].store);
    free(t->items);
    free(t);
}

size_t vuf_trace_count(const vuf_trace *t)
{
    return t->n;
}

const vuf_event *vuf_trace_event(const vuf_trace *t, size_t i)
{
    return i < t->n ? &t->items[i].ev : NULL;
}

int vuf_trace_append(vuf_trace *t, const vuf_event *ev)
{
    if (t->n == t->cap) {
        size_t nc = t->cap ? t->cap * 2 : 64;
        trace_item *ni = realloc(t->items, nc * sizeof *ni);
        if (!ni)
            return -1;
        t->items = ni;
        t->cap = nc;
    }
    trace_item *it = &t->items[t->n];
    it->ev = *ev;
    it->store = malloc(ev->len + ev->nfds + 1);
    if (!it->store)
        return -1;
    if (ev->len)
        memcpy(it->store, ev->data, ev->len);
    if (ev->nfds)
        memcpy(it->store + ev->len, ev->fds, ev->nfds);
    it->ev.data = it->store;
    it->ev.fds = it->store + ev->len;
    t->n++;
    return 0;
}

/* ---------- parsing ---------- */

static int terr(vuf_diag *d, const char *file, unsigned line, unsigned col, const char *fmt, ...)
    __attribute__((format(printf, 5, 6)));

static int terr(vuf_diag *d, const char *file, unsigned line, unsigned col, const char *fmt, ...)
{
    if (d) {
        snprintf(d->file, sizeof d->file, "%s", file ? file : "<trace>");
        d->line = line;
        d->col = col;
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(d->text, sizeof d->text, fmt, ap);
        va_end(ap);
    }
    return -1;
}

#define MAX_TOK 128

typedef struct {
    char *s;
    unsigned col;
} tok_t;

static size_t split(char *buf, tok_t *tok, size_t max)
{
    size_t n = 0;
    char *p = buf;
    while (*p && n < max) {
        while (*p == ' ' || *p == '\t' || *p == '\r' || *p == '\n')
            p++;
        if (!*p || *p == '#')
            break;
        tok[n].s = p;
        tok[n].col = (unsigned)(p - buf + 1);
        n++;
        while (*p && *p != ' ' && *p != '\t' && *p != '\r' && *p != '\n')
            p++;
        if (*p)
            *p++ = 0;
    }
    return n;
}

static int parse_channel_tok(const char *s, vuf_channel *c)
{
    if (!strcmp(s, "main") || !strcmp(s, "frontend")) {
        *c = VUF_CHAN_FRONTEND;
        return 0;
    }
    if (!strcmp(s, "backend")) {
        *c = VUF_CHAN_BACKEND;
        return 0;
    }
    return -1;
}

static int parse_tokens(vuf_trace *t, const vuf_spec *s, char *buf, const char *line,
                        unsigned lineno, const char *file, vuf_diag *diag);

int vuf_trace_parse_line(vuf_trace *t, const vuf_spec *s, const char *line, unsigned lineno,
                         const char *file, vuf_diag *diag)
{
    /* most lines fit on the stack; a long raw payload gets a heap copy */
    char small[4096], *buf = small;
    size_t l = strlen(line);
    if (l > 2 * 65536 + 4096)
        return terr(diag, file, lineno, 1, "line too long (at most %d bytes)", 2 * 65536 + 4096);
    if (l >= sizeof small && !(buf = malloc(l + 1)))
        return terr(diag, file, lineno, 1, "out of memory");
    memcpy(buf, line, l + 1);
    int rc = parse_tokens(t, s, buf, line, lineno, file, diag);
    if (buf != small)
        free(buf);
    return rc;
}

static int parse_tokens(vuf_trace *t, const vuf_spec *s, char *buf, const char *line,
                        unsigned lineno, const char *file, vuf_diag *diag)
{
    tok_t tok[MAX_TOK];
    size_t n = split(buf, tok, MAX_TOK);
    if (n == MAX_TOK)
        return terr(diag, file, lineno, tok[n - 1].col, "too many tokens (at most %d)",
                    MAX_TOK - 1);
    if (n == 0)
        return 0;
    vuf_event ev = {.line = lineno};
    if (!strcmp(tok[0].s, "open") || !strcmp(tok[0].s, "close")) {
        ev.kind = tok[0].s[0] == 'o' ? VUF_EV_OPEN : VUF_EV_CLOSE;
        if (n < 2 || parse_channel_tok(tok[1].s, &ev.channel))
            return terr(diag, file, lineno, n < 2 ? (unsigned)strlen(line) + 1 : tok[1].col,
                        "expected a channel after '%s' (main or backend)", tok[0].s);
        ev.sender = VUF_SIDE_FRONTEND;
        for (size_t i = 2; i < n; i++) {
            if (ev.kind == VUF_EV_CLOSE && !strcmp(tok[i].s, "by=F"))
                ev.sender = VUF_SIDE_FRONTEND;
            else if (ev.kind == VUF_EV_CLOSE && !strcmp(tok[i].s, "by=B"))
                ev.sender = VUF_SIDE_BACKEND;
            else
                return terr(diag, file, lineno, tok[i].col, "unexpected '%s' (expected %s)",
                            tok[i].s, ev.kind == VUF_EV_CLOSE ? "by=F or by=B" : "end of line");
        }
        return vuf_trace_append(t, &ev) ? terr(diag, file, lineno, 1, "out of memory") : 1;
    }
    if (!strcmp(tok[0].s, "F>B"))
        ev.sender = VUF_SIDE_FRONTEND;
    else if (!strcmp(tok[0].s, "B>F"))
        ev.sender = VUF_SIDE_BACKEND;
    else
        return terr(diag, file, lineno, tok[0].col,
                    "unexpected '%s' (expected F>B, B>F, open or close)", tok[0].s);
    if (n < 3)
        return terr(diag, file, lineno, (unsigned)strlen(line) + 1,
                    "expected a channel and a message after '%s'", tok[0].s);
    if (parse_channel_tok(tok[1].s, &ev.channel))
        return terr(diag, file, lineno, tok[1].col, "bad channel '%s' (expected main or backend)",
                    tok[1].s);
    if (!strncmp(tok[2].s, "short=", 6)) {
        /* fewer bytes than a header: only the bytes can be given */
        uint8_t sb[VUF_HDR_SIZE];
        size_t sn;
        if (n > 3 || vuf_hex_decode(tok[2].s + 6, sb, sizeof sb - 1, &sn))
            return terr(diag, file, lineno, tok[2].col,
                        "bad short message (expected short=HEX with at most 11 bytes)");
        ev.kind = VUF_EV_MSG;
        ev.data = sb;
        ev.len = sn;
        return vuf_trace_append(t, &ev) ? terr(diag, file, lineno, 1, "out of memory") : 1;
    }
    /* message: NAME (this channel's table, else the other's: the id is what
     * travels), #ID or ID */
    const vuf_msg_def *def = NULL, *layout_def = NULL;
    uint64_t id;
    const char *m = tok[2].s;
    if (vuf_parse_u64(m[0] == '#' ? m + 1 : m, &id)) {
        if (id > 0xffffffffu)
            return terr(diag, file, lineno, tok[2].col, "message id %s too large", m);
        def = vuf_spec_msg(s, ev.channel, (uint32_t)id);
    } else {
        def = vuf_spec_msg_by_name(s, ev.channel, m);
        if (!def)
            def = vuf_spec_msg_by_name(s, VUF_CHAN_COUNT, m);
        if (!def)
            return terr(diag, file, lineno, tok[2].col,
                        "unknown message '%s' (expected a table name or a numeric id)", m);
        id = def->id;
        if (def->channel != ev.channel) {
            /* the named message's layout, sent under the other channel's id */
            layout_def = def;
            def = vuf_spec_msg(s, ev.channel, (uint32_t)id);
        }
    }
    if (!layout_def)
        layout_def = def;
    vuf_hdr h = {.request = (uint32_t)id, .flags = VUF_F_VERSION};
    bool size_set = false, raw = false, fields = false, is_reply = false;
    uint32_t extra_flags = 0;
    uint8_t fdk[VUF_EV_MAX_FDS];
    size_t nfds = 0;
    static uint8_t msgbuf[VUF_HDR_SIZE + 65536];
    size_t plen = 0;
    /* first pass over tokens: flags and header to know request vs reply */
    for (size_t i = 3; i < n; i++) {
        if (!strcmp(tok[i].s, "reply"))
            is_reply = true, extra_flags |= VUF_F_REPLY;
        else if (!strcmp(tok[i].s, "need_reply"))
            extra_flags |= VUF_F_NEED_REPLY;
        else if (!strncmp(tok[i].s, "hdr.flags=", 10)) {
            uint64_t v;
            if (!vuf_parse_u64(tok[i].s + 10, &v) || v > 0xffffffffu)
                return terr(diag, file, lineno, tok[i].col, "bad flags '%s' (expected a u32)",
                            tok[i].s + 10);
            h.flags = (uint32_t)v;
        }
    }
    h.flags |= extra_flags;
    is_reply = (h.flags & VUF_F_REPLY) != 0;
    const vuf_payload_def *layout = NULL;
    bool try_ack = false;
    if (layout_def) {
        const vuf_msg_def *ld = layout_def;
        if (!is_reply)
            layout = ld->request;
        else if (ld->reply == VUF_REPLY_ALWAYS)
            layout = vuf_reply_layout(s, ld, true);
        else if (ld->reply_cond != VUF_COND_NONE && ld->reply_payload) {
            layout = ld->reply_payload;
            try_ack = true;
        } else
            layout = vuf_reply_layout(s, ld, false);
    }
    vuf_payload_builder *pb = malloc(sizeof *pb);
    if (!pb)
        return terr(diag, file, lineno, 1, "out of memory");
    vuf_pb_init(pb, layout);
    int rc = -1;
    for (int attempt = 0; attempt < 2; attempt++) {
        bool failed = false;
        fields = raw = size_set = false;
        nfds = 0;
        plen = 0;
        for (size_t i = 3; i < n && !failed; i++) {
            char *tk = tok[i].s;
            char *eq = strchr(tk, '=');
            if (!strcmp(tk, "reply") || !strcmp(tk, "need_reply") || !strncmp(tk, "hdr.flags=", 10))
                continue;
            if (!eq) {
                rc = terr(diag, file, lineno, tok[i].col,
                          "unexpected '%s' (expected reply, need_reply, hdr.flags=, hdr.size=, "
                          "raw=, fds= or FIELD=VALUE)",
                          tk);
                failed = true;
                break;
            }
            *eq = 0;
            const char *key = tk, *val = eq + 1;
            if (!strcmp(key, "hdr.size")) {
                uint64_t v;
                if (!vuf_parse_u64(val, &v) || v > 0xffffffffu) {
                    *eq = '=';
                    rc = terr(diag, file, lineno, tok[i].col + 9, "bad size '%s' (expected a u32)",
                              val);
                    failed = true;
                } else {
                    h.size = (uint32_t)v;
                    size_set = true;
                }
            } else if (!strcmp(key, "raw")) {
                if (vuf_hex_decode(val, msgbuf + VUF_HDR_SIZE, sizeof msgbuf - VUF_HDR_SIZE,
                                   &plen)) {
                    *eq = '=';
                    rc = terr(diag, file, lineno, tok[i].col + 4,
                              "bad raw bytes (expected an even number of hex digits, at most "
                              "65536 bytes)");
                    failed = true;
                }
                raw = true;
            } else if (!strcmp(key, "fds")) {
                char fb[1024];
                snprintf(fb, sizeof fb, "%s", val);
                unsigned col = tok[i].col + 4;
                for (char *save = NULL, *k = strtok_r(fb, ",", &save); k;
                     k = strtok_r(NULL, ",", &save)) {
                    vuf_fdkind kind;
                    if (vuf_fdkind_parse(k, &kind) || nfds == VUF_EV_MAX_FDS) {
                        *eq = '=';
                        rc = terr(diag, file, lineno, col,
                                  nfds == VUF_EV_MAX_FDS
                                      ? "too many fds (at most 64)"
                                      : "unknown fd kind '%s' (expected eventfd, memfd, file, "
                                        "socket, socket-listen, socket-dgram, socket-closed, pipe, "
                                        "devnull, other or unknown)",
                                  k);
                        failed = true;
                        break;
                    }
                    fdk[nfds++] = (uint8_t)kind;
                    col += (unsigned)strlen(k) + 1;
                }
            } else {
                char err[200];
                fields = true;
                if (!layout) {
                    *eq = '=';
                    rc = terr(diag, file, lineno, tok[i].col,
                              "%s takes no payload fields here (use raw=HEX)",
                              def ? def->name : "an unknown message id");
                    failed = true;
                } else if (vuf_pb_set(pb, key, val, err, sizeof err)) {
                    *eq = '=';
                    rc = terr(diag, file, lineno, tok[i].col, "%s", err);
                    failed = true;
                }
            }
            if (!failed)
                *eq = '=';
        }
        if (!failed && raw && fields) {
            rc = terr(diag, file, lineno, tok[3].col, "raw= and payload fields are exclusive");
            failed = true;
        }
        if (!failed)
            break;
        if (attempt == 0 && try_ack) {
            /* a conditional reply that is an ack after all */
            layout = vuf_reply_layout(s, layout_def, false);
            vuf_pb_init(pb, layout);
            continue;
        }
        free(pb);
        return rc;
    }
    if (!raw)
        plen = layout ? vuf_pb_finish(pb) : 0;
    if (!raw && layout)
        memcpy(msgbuf + VUF_HDR_SIZE, pb->buf, plen);
    free(pb);
    if (!size_set)
        h.size = (uint32_t)plen;
    vuf_hdr_encode(&h, msgbuf);
    ev.kind = VUF_EV_MSG;
    ev.data = msgbuf;
    ev.len = VUF_HDR_SIZE + plen;
    ev.fds = fdk;
    ev.nfds = nfds;
    return vuf_trace_append(t, &ev) ? terr(diag, file, lineno, 1, "out of memory") : 1;
}

vuf_trace *vuf_trace_parse(const vuf_spec *s, const char *text, size_t len, const char *file,
                           vuf_diag *diag)
{
    vuf_trace *t = vuf_trace_new();
    if (!t)
        return NULL;
    if (diag)
        memset(diag, 0, sizeof *diag);
    char *line = malloc(len + 1);
    if (!line) {
        vuf_trace_free(t);
        return NULL;
    }
    unsigned lineno = 1;
    size_t i = 0;
    while (i < len) {
        size_t st = i;
        while (i < len && text[i] != '\n')
            i++;
        size_t ll = i - st;
        memcpy(line, text + st, ll);
        line[ll] = 0;
        if (memchr(text + st, 0, ll)) {
            terr(diag, file, lineno, 1, "NUL byte in trace");
            goto fail;
        }
        if (vuf_trace_parse_line(t, s, line, lineno, file, diag) < 0)
            goto fail;
        i++;
        lineno++;
    }
    free(line);
    return t;
fail:
    free(line);
    vuf_trace_free(t);
    return NULL;
}

vuf_trace *vuf_trace_load_file(const vuf_spec *s, const char *path, vuf_diag *diag)
{
    size_t len;
    char err[160];
    char *buf = (char *)vuf_read_file(path, VUF_TRACE_MAX_FILE, &len, err, sizeof err);
    if (!buf) {
        terr(diag, path, 0, 0, "%s", err);
        return NULL;
    }
    vuf_trace *t = vuf_trace_parse(s, buf, len, path, diag);
    free(buf);
    return t;
}

/* ---------- printing ---------- */

int vuf_trace_format_event(const vuf_spec *s, const vuf_event *ev, char *out, size_t cap)
{
    const char *ch = ev->channel == VUF_CHAN_BACKEND ? "backend" : "main";
    if (ev->kind == VUF_EV_OPEN)
        return snprintf(out, cap, "open %s", ch);
    if (ev->kind == VUF_EV_CLOSE)
        return snprintf(out, cap, "close %s by=%c", ch, ev->sender == VUF_SIDE_BACKEND ? 'B' : 'F');
    if (ev->kind == VUF_EV_NOTE) {
        static const char *const kind[] = {"note", "refuse", "timeout", "late"};
        return snprintf(out, cap, "# %c %s %s%s%s: %s", ev->sender == VUF_SIDE_BACKEND ? 'B' : 'F',
                        ev->note <= VUF_NOTE_LATE ? kind[ev->note] : "note", ch,
                        ev->rule ? " rule=" : "", ev->rule ? ev->rule : "",
                        ev->text ? ev->text : "");
    }
    vuf_msg_view v;
    if (!vuf_msg_decode(s, ev->channel, ev->data, ev->len, &v)) {
        /* shorter than a header: only raw bytes can say it; keep it readable */
        char hex[2 * VUF_HDR_SIZE + 1];
        vuf_hex_encode(ev->data, ev->len, hex, sizeof hex);
        return snprintf(out, cap, "%s %s short=%s", ev->sender == VUF_SIDE_BACKEND ? "B>F" : "F>B",
                        ch, hex);
    }
    size_t len = 0;
#define EMIT(...)                                                                                  \
    do {                                                                                           \
        int k_ = snprintf(out ? out + (len < cap ? len : cap) : NULL, len < cap ? cap - len : 0,   \
                          __VA_ARGS__);                                                            \
        if (k_ > 0)                                                                                \
            len += (size_t)k_;                                                                     \
    } while (0)
    EMIT("%s %s ", ev->sender == VUF_SIDE_BACKEND ? "B>F" : "F>B", ch);
    if (v.def)
        EMIT("%s", v.def->name);
    else
        EMIT("%u", v.hdr.request);
    uint32_t fl = v.hdr.flags;
    if ((fl & ~VUF_F_KNOWN) || (fl & VUF_F_VERSION_MASK) != VUF_F_VERSION)
        EMIT(" hdr.flags=0x%x", fl);
    else {
        if (fl & VUF_F_REPLY)
            EMIT(" reply");
        if (fl & VUF_F_NEED_REPLY)
            EMIT(" need_reply");
    }
    if (v.hdr.size != v.payload_len)
        EMIT(" hdr.size=%u", v.hdr.size);
    if (!v.payload_len && v.layout && !v.layout->is_empty && v.layout->fixed_size)
        EMIT(" raw="); /* no bytes where the layout has some */
    if (v.payload_len) {
        /* fields when the bytes fit the layout the parser will pick */
        char tmp[16384];
        int k = -1;
        if (v.layout) {
            /* the decoder picks the layout the parser will pick (for a
             * conditional reply: the explicit one when the bytes fit it) */
            k = vuf_payload_format(v.layout, v.payload, v.payload_len, tmp, sizeof tmp);
            if (k >= (int)sizeof tmp)
                k = -1;
        }
        if (k >= 0)
            EMIT(" %s", tmp);
        else {
            char *hex = malloc(2 * v.payload_len + 1);
            if (hex) {
                vuf_hex_encode(v.payload, v.payload_len, hex, 2 * v.payload_len + 1);
                EMIT(" raw=%s", hex);
                free(hex);
            }
        }
    }
    if (ev->nfds) {
        EMIT(" fds=");
        for (size_t i = 0; i < ev->nfds; i++)
            EMIT("%s%s", i ? "," : "", vuf_fdkind_name((vuf_fdkind)ev->fds[i]));
    }
#undef EMIT
    return (int)len;
}
