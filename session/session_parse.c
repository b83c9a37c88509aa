/* SPDX-License-Identifier: Apache-2.0 */
/* Sessions: parsing the text form (docs/session-format.md is its reference). */
#include "session_int.h"
#include "vuf_session.h"
#include "vuf_trace.h"
#include "vuf_util.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---------- errors ---------- */

typedef struct {
    const vuf_spec *s;
    const char *file;
    unsigned line;
    unsigned eol; /* column just past the last token */
    vuf_diag *diag;
    Vuf__Session *ses;
    size_t cap; /* of ses->actions */
    unsigned config_line;
    /* `role backend`: vufuzz plays the back-end (docs/session-format.md,
     * "Back-end sessions"): F>B lines are expectations, B>F lines actions */
    bool backend_role;
    bool by_backend; /* the line being parsed is the back-end's (B>F) */
} pctx;

static int perr(pctx *c, unsigned col, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

static int perr(pctx *c, unsigned col, const char *fmt, ...)
{
    vuf_diag *d = c->diag;
    if (d) {
        snprintf(d->file, sizeof d->file, "%s", c->file);
        d->line = c->line;
        d->col = col;
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(d->text, sizeof d->text, fmt, ap);
        va_end(ap);
        /* tokens of hostile input may hold control characters */
        for (char *p = d->text; *p; p++)
            if ((unsigned char)*p < 0x20 || *p == 0x7f)
                *p = '?';
    }
    return -1;
}

#define OOM(c) perr((c), 1, "out of memory")

/* ---------- tokens and values ---------- */

typedef struct {
    char *s;
    unsigned col;
} tok_t;

static bool is_blank(char ch)
{
    return ch == ' ' || ch == '\t' || ch == '\r' || ch == '\n';
}

/* Tokens of a line (for the allocation of split's array). */
static size_t count_tokens(const char *p, size_t len)
{
    size_t n = 0, i = 0;
    for (;;) {
        while (i < len && is_blank(p[i]))
            i++;
        if (i == len || p[i] == '#')
            return n;
        n++;
        while (i < len && !is_blank(p[i]))
            i++;
    }
}

/* The trace format's tokenizer: blanks separate, '#' at a token start begins
 * a comment. tok has room for count_tokens() tokens. */
static size_t split(char *buf, tok_t *tok)
{
    size_t n = 0;
    char *p = buf;
    while (*p) {
        while (is_blank(*p))
            p++;
        if (!*p || *p == '#')
            break;
        tok[n].s = p;
        tok[n].col = (unsigned)(p - buf + 1);
        n++;
        while (*p && !is_blank(*p))
            p++;
        if (*p)
            *p++ = 0;
    }
    return n;
}

static bool parse_u32(const char *s, uint32_t *out)
{
    uint64_t v;
    if (!vuf_parse_u64(s, &v) || v > 0xffffffffu)
        return false;
    *out = (uint32_t)v;
    return true;
}

/* Hex digits to malloc'd bytes (NULL for none). 0, -1 bad hex or too long,
 * -2 out of memory. */
static int hex_alloc(const char *s, size_t max, ProtobufCBinaryData *out)
{
    size_t l = strlen(s);
    out->len = 0;
    out->data = NULL;
    if (l % 2 || l / 2 > max)
        return -1;
    if (!l)
        return 0;
    uint8_t *b = malloc(l / 2);
    if (!b)
        return -2;
    size_t n;
    if (vuf_hex_decode(s, b, l / 2, &n)) {
        free(b);
        return -1;
    }
    out->data = b;
    out->len = n;
    return 0;
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

/* ---------- session building blocks (malloc, so free_unpacked frees them) ---------- */

static Vuf__Action *push_action(pctx *c)
{
    Vuf__Session *s = c->ses;
    if (s->n_actions == c->cap) {
        size_t nc = c->cap ? 2 * c->cap : 64;
        Vuf__Action **na = realloc(s->actions, nc * sizeof *na);
        if (!na)
            return NULL;
        s->actions = na;
        c->cap = nc;
    }
    Vuf__Action *a = malloc(sizeof *a);
    if (!a)
        return NULL;
    vuf__action__init(a);
    s->actions[s->n_actions++] = a;
    return a;
}

static void free_msg(void *m)
{
    if (m)
        protobuf_c_message_free_unpacked((ProtobufCMessage *)m, NULL);
}

/* ---------- fd lists ---------- */

typedef struct {
    Vuf__Fd **v;
    size_t n;
    bool none; /* fds=none */
    unsigned none_col, list_col;
} fdlist;

static void fdlist_free(fdlist *l)
{
    for (size_t i = 0; i < l->n; i++)
        free_msg(l->v[i]);
    free(l->v);
    l->v = NULL;
    l->n = 0;
}

#define FD_KINDS_EXPECTED                                                                          \
    "eventfd, memfd[:SIZE], file[:SIZE], socket, socket-closed, socket-listen, socket-dgram, "     \
    "pipe-r, pipe-w, devnull, main, backend, closed, dup:N, guest:N or other"

static const struct {
    const char *name;
    Vuf__FdKind kind;
    char arg; /* 0 none, 's' optional :SIZE, 'r' required :N */
} fd_words[] = {
    {"eventfd", VUF__FD_KIND__FD_EVENTFD, 0},
    {"memfd", VUF__FD_KIND__FD_MEMFD, 's'},
    {"file", VUF__FD_KIND__FD_FILE, 's'},
    {"socket", VUF__FD_KIND__FD_SOCKET, 0},
    {"socket-closed", VUF__FD_KIND__FD_SOCKET_PEER_CLOSED, 0},
    {"socket-listen", VUF__FD_KIND__FD_SOCKET_LISTEN, 0},
    {"socket-dgram", VUF__FD_KIND__FD_SOCKET_DGRAM, 0},
    {"pipe-r", VUF__FD_KIND__FD_PIPE_READ, 0},
    {"pipe", VUF__FD_KIND__FD_PIPE_READ, 0}, /* the trace format's name */
    {"pipe-w", VUF__FD_KIND__FD_PIPE_WRITE, 0},
    {"devnull", VUF__FD_KIND__FD_DEVNULL, 0},
    {"main", VUF__FD_KIND__FD_MAIN_CHANNEL, 0},
    {"backend", VUF__FD_KIND__FD_BACKEND_CHANNEL, 0},
    {"closed", VUF__FD_KIND__FD_CLOSED_NUMBER, 0},
    {"unknown", VUF__FD_KIND__FD_CLOSED_NUMBER, 0}, /* the trace format's name */
    {"dup", VUF__FD_KIND__FD_DUP, 'r'},
    {"guest", VUF__FD_KIND__FD_GUEST_MEMORY, 'r'},
    {"other", VUF__FD_KIND__FD_OTHER, 0},
};

/* Parse the value of fds= (starting at column col) into l. */
static int parse_fds(pctx *c, const char *val, unsigned col, fdlist *l, bool allow_none)
{
    if (!strcmp(val, "none")) {
        if (!allow_none)
            return perr(c, col, "fds=none is not allowed here (leave fds= out for no fds)");
        if (l->n)
            return perr(c, col, "fds=none and fd kinds are exclusive");
        l->none = true;
        l->none_col = col;
        return 0;
    }
    if (l->none)
        return perr(c, col, "fd kinds and fds=none are exclusive");
    if (!*val)
        return perr(c, col, "empty fd list (expected fds=KIND,KIND,...%s)",
                    allow_none ? " or fds=none" : "");
    const char *p = val;
    for (;;) {
        const char *e = strchr(p, ',');
        size_t il = e ? (size_t)(e - p) : strlen(p);
        char item[64];
        unsigned icol = col + (unsigned)(p - val);
        if (il >= sizeof item)
            return perr(c, icol, "unknown fd kind '%.*s...' (expected " FD_KINDS_EXPECTED ")", 20,
                        p);
        memcpy(item, p, il);
        item[il] = 0;
        char *colon = strchr(item, ':');
        if (colon)
            *colon = 0;
        size_t w;
        for (w = 0; w < sizeof fd_words / sizeof fd_words[0]; w++)
            if (!strcmp(item, fd_words[w].name))
                break;
        if (w == sizeof fd_words / sizeof fd_words[0]) {
            if (colon)
                *colon = ':';
            return perr(c, icol, "unknown fd kind '%s' (expected " FD_KINDS_EXPECTED ")", item);
        }
        if (l->n == VUF_SESSION_MAX_FDS)
            return perr(c, icol, "too many fds (at most %d)", VUF_SESSION_MAX_FDS);
        Vuf__Fd *fd = malloc(sizeof *fd);
        if (!fd)
            return OOM(c);
        vuf__fd__init(fd);
        fd->kind = fd_words[w].kind;
        if (colon && !fd_words[w].arg) {
            free(fd);
            return perr(c, icol + (unsigned)(colon - item), "fd kind '%s' takes no ':' argument",
                        item);
        }
        if (!colon && fd_words[w].arg == 'r') {
            free(fd);
            return perr(c, icol, "fd kind '%s' needs a number (expected %s:N)", item, item);
        }
        if (colon) {
            unsigned acol = icol + (unsigned)(colon - item) + 1;
            if (fd_words[w].arg == 's') {
                if (!vuf_parse_u64(colon + 1, &fd->size)) {
                    free(fd);
                    return perr(c, acol, "bad size '%s' (expected %s:SIZE, a u64)", colon + 1,
                                item);
                }
                fd->has_size = true;
            } else {
                if (!parse_u32(colon + 1, &fd->ref)) {
                    free(fd);
                    return perr(c, acol, "bad number '%s' (expected %s:N, a u32)", colon + 1, item);
                }
                fd->has_ref = true;
            }
        }
        Vuf__Fd **nv = realloc(l->v, (l->n + 1) * sizeof *nv);
        if (!nv) {
            free(fd);
            return OOM(c);
        }
        l->v = nv;
        l->v[l->n++] = fd;
        if (!e)
            break;
        p = e + 1;
        if (!*p)
            return perr(c, col + (unsigned)(p - val), "empty fd kind after ','");
    }
    return 0;
}

/* ---------- harness action lines: KEY=VALUE and flag words ---------- */

typedef enum { KT_U32, KT_U64, KT_HEX, KT_FLAG, KT_BLKTYPE, KT_FDS } ktype;

typedef struct {
    const char *name;
    ktype type;
    bool required;
} kdef;

typedef struct {
    bool set;
    uint64_t v;
    ProtobufCBinaryData bytes;
    fdlist fds;
} kval;

static void kvals_free(kval *v, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        free(v[i].bytes.data);
        fdlist_free(&v[i].fds);
    }
}

static void expected_keys(const kdef *d, size_t nd, char *out, size_t cap)
{
    size_t len = 0;
    out[0] = 0;
    for (size_t i = 0; i < nd && len < cap; i++) {
        const char *sep = i == 0 ? "" : i + 1 == nd ? " or " : ", ";
        int k = snprintf(out + len, cap - len, "%s%s%s", sep, d[i].name,
                         d[i].type == KT_FLAG ? "" : "=");
        if (k > 0)
            len += (size_t)k;
    }
}

static int parse_kv(pctx *c, const char *what, const tok_t *tok, size_t n, size_t first,
                    const kdef *d, size_t nd, kval *out)
{
    char exp[256];
    expected_keys(d, nd, exp, sizeof exp);
    for (size_t i = first; i < n; i++) {
        const char *t = tok[i].s;
        const char *eq = strchr(t, '=');
        size_t kl = eq ? (size_t)(eq - t) : strlen(t);
        size_t k;
        for (k = 0; k < nd; k++)
            if (strlen(d[k].name) == kl && !strncmp(d[k].name, t, kl) &&
                (d[k].type == KT_FLAG) == !eq)
                break;
        if (k == nd)
            return perr(c, tok[i].col, "unexpected '%s' in %s (expected %s)", t, what, exp);
        if (out[k].set)
            return perr(c, tok[i].col, "duplicate '%.*s' (at most once per line)", (int)kl, t);
        out[k].set = true;
        if (d[k].type == KT_FLAG) {
            out[k].v = 1;
            continue;
        }
        const char *val = eq + 1;
        unsigned vcol = tok[i].col + (unsigned)kl + 1;
        switch (d[k].type) {
        case KT_U32:
        case KT_U64: {
            uint64_t v;
            if (!vuf_parse_u64(val, &v) || (d[k].type == KT_U32 && v > 0xffffffffu))
                return perr(c, vcol, "bad value '%s' for %s= (expected a %s)", val, d[k].name,
                            d[k].type == KT_U32 ? "u32" : "u64");
            out[k].v = v;
            break;
        }
        case KT_HEX: {
            int rc = hex_alloc(val, VUF_SESSION_MAX_DATA, &out[k].bytes);
            if (rc == -2)
                return OOM(c);
            if (rc)
                return perr(c, vcol,
                            "bad bytes for %s= (expected an even number of hex digits, at most "
                            "%u bytes)",
                            d[k].name, VUF_SESSION_MAX_DATA);
            break;
        }
        case KT_BLKTYPE: {
            size_t b;
            for (b = 0; b < vuf_session_n_blk_types; b++)
                if (!strcmp(val, vuf_session_blk_types[b].name))
                    break;
            if (b < vuf_session_n_blk_types) {
                out[k].v = vuf_session_blk_types[b].v;
            } else {
                uint32_t v;
                if (!parse_u32(val, &v))
                    return perr(c, vcol,
                                "bad type '%s' (expected in, out, flush, get-id or a number)", val);
                out[k].v = v;
            }
            break;
        }
        case KT_FDS:
            if (parse_fds(c, val, vcol, &out[k].fds, false))
                return -1;
            break;
        case KT_FLAG:
            break;
        }
    }
    for (size_t k = 0; k < nd; k++)
        if (d[k].required && !out[k].set)
            return perr(c, c->eol, "missing %s= in %s (expected %s)", d[k].name, what, exp);
    return 0;
}

#define NKEYS(d) (sizeof(d) / sizeof((d)[0]))

/* Take ownership of bytes parsed into a kval. */
static ProtobufCBinaryData take_bytes(kval *v)
{
    ProtobufCBinaryData b = v->bytes;
    v->bytes.data = NULL;
    v->bytes.len = 0;
    return b;
}

static int parse_config(pctx *c, const tok_t *tok, size_t n)
{
    static const kdef d[] = {
        {"disk_size", KT_U64, false},   {"queues", KT_U32, false},  {"mem_size", KT_U64, false},
        {"mem_regions", KT_U32, false}, {"mem_gpa", KT_U64, false}, {"mem_uaddr", KT_U64, false},
        {"queue_size", KT_U32, false},
    };
    if (c->config_line)
        return perr(c, tok[0].col, "a second config line (the first is on line %u)",
                    c->config_line);
    kval v[NKEYS(d)] = {0};
    int rc = parse_kv(c, "config", tok, n, 1, d, NKEYS(d), v);
    kvals_free(v, NKEYS(d));
    if (rc)
        return -1;
    Vuf__Config *cf = malloc(sizeof *cf);
    if (!cf)
        return OOM(c);
    vuf__config__init(cf);
    c->ses->config = cf;
    c->config_line = c->line;
    cf->has_disk_size = v[0].set, cf->disk_size = v[0].v;
    cf->has_queues = v[1].set, cf->queues = (uint32_t)v[1].v;
    cf->has_mem_size = v[2].set, cf->mem_size = v[2].v;
    cf->has_mem_regions = v[3].set, cf->mem_regions = (uint32_t)v[3].v;
    cf->has_mem_gpa = v[4].set, cf->mem_gpa = v[4].v;
    cf->has_mem_uaddr = v[5].set, cf->mem_uaddr = v[5].v;
    cf->has_queue_size = v[6].set, cf->queue_size = (uint32_t)v[6].v;
    return 0;
}

static int parse_backend_reply(pctx *c, const tok_t *tok, size_t n)
{
    static const char exp[] =
        "expected ack, nack, nack=VALUE, wrong-id, no-reply-flag, wrong-size, late or never";
    if (n < 2)
        return perr(c, c->eol, "missing the reply kind after 'backend-reply' (%s)", exp);
    if (n > 2)
        return perr(c, tok[2].col, "unexpected '%s' (expected end of line)", tok[2].s);
    const char *t = tok[1].s;
    Vuf__BackendReply r = VUF__BACKEND_REPLY__INIT;
    size_t k;
    for (k = 0; k < vuf_session_n_backend_reply; k++)
        if (!strcmp(t, vuf_session_backend_reply_names[k]))
            break;
    if (k < vuf_session_n_backend_reply) {
        r.kind = (Vuf__BackendReply__Kind)k;
    } else if (!strncmp(t, "nack=", 5)) {
        r.kind = VUF__BACKEND_REPLY__KIND__NACK;
        if (!vuf_parse_u64(t + 5, &r.value))
            return perr(c, tok[1].col + 5, "bad value '%s' for nack= (expected a u64)", t + 5);
        r.has_value = true;
    } else {
        return perr(c, tok[1].col, "unknown reply kind '%s' (%s)", t, exp);
    }
    Vuf__BackendReply *br = malloc(sizeof *br);
    Vuf__Action *a = br ? push_action(c) : NULL;
    if (!a) {
        free(br);
        return OOM(c);
    }
    *br = r;
    a->action_case = VUF__ACTION__ACTION_BACKEND_REPLY;
    a->backend_reply = br;
    return 0;
}

static int parse_mem_write(pctx *c, const tok_t *tok, size_t n)
{
    static const kdef d[] = {{"gpa", KT_U64, true}, {"data", KT_HEX, true}};
    kval v[NKEYS(d)] = {0};
    Vuf__MemWrite *w = NULL;
    Vuf__Action *a = NULL;
    if (!parse_kv(c, "mem-write", tok, n, 1, d, NKEYS(d), v)) {
        if (!(w = malloc(sizeof *w)) || !(a = push_action(c))) {
            free(w);
            kvals_free(v, NKEYS(d));
            return OOM(c);
        }
        vuf__mem_write__init(w);
        w->gpa = v[0].v;
        w->data = take_bytes(&v[1]);
        a->action_case = VUF__ACTION__ACTION_MEM_WRITE;
        a->mem_write = w;
    }
    kvals_free(v, NKEYS(d));
    return a ? 0 : -1;
}

static int parse_desc(pctx *c, const tok_t *tok, size_t n)
{
    static const kdef d[] = {{"queue", KT_U32, false}, {"index", KT_U32, true},
                             {"addr", KT_U64, false},  {"len", KT_U32, false},
                             {"flags", KT_U32, false}, {"next", KT_U32, false},
                             {"table", KT_U64, false}};
    kval v[NKEYS(d)] = {0};
    int rc = parse_kv(c, "desc", tok, n, 1, d, NKEYS(d), v);
    kvals_free(v, NKEYS(d));
    if (rc)
        return -1;
    Vuf__Desc *x = malloc(sizeof *x);
    Vuf__Action *a = x ? push_action(c) : NULL;
    if (!a) {
        free(x);
        return OOM(c);
    }
    vuf__desc__init(x);
    x->has_queue = v[0].set, x->queue = (uint32_t)v[0].v;
    x->index = (uint32_t)v[1].v;
    x->has_addr = v[2].set, x->addr = v[2].v;
    x->has_len = v[3].set, x->len = (uint32_t)v[3].v;
    x->has_flags = v[4].set, x->flags = (uint32_t)v[4].v;
    x->has_next = v[5].set, x->next = (uint32_t)v[5].v;
    x->has_table = v[6].set, x->table = v[6].v;
    a->action_case = VUF__ACTION__ACTION_DESC;
    a->desc = x;
    return 0;
}

static int parse_avail(pctx *c, const tok_t *tok, size_t n)
{
    static const kdef d[] = {
        {"queue", KT_U32, false}, {"head", KT_U32, true}, {"idx", KT_U32, false}};
    kval v[NKEYS(d)] = {0};
    int rc = parse_kv(c, "avail", tok, n, 1, d, NKEYS(d), v);
    kvals_free(v, NKEYS(d));
    if (rc)
        return -1;
    Vuf__Avail *x = malloc(sizeof *x);
    Vuf__Action *a = x ? push_action(c) : NULL;
    if (!a) {
        free(x);
        return OOM(c);
    }
    vuf__avail__init(x);
    x->has_queue = v[0].set, x->queue = (uint32_t)v[0].v;
    x->head = (uint32_t)v[1].v;
    x->has_idx = v[2].set, x->idx = (uint32_t)v[2].v;
    a->action_case = VUF__ACTION__ACTION_AVAIL;
    a->avail = x;
    return 0;
}

static int parse_blk(pctx *c, const tok_t *tok, size_t n)
{
    static const kdef d[] = {{"queue", KT_U32, false},   {"type", KT_BLKTYPE, true},
                             {"sector", KT_U64, false},  {"len", KT_U32, false},
                             {"data", KT_HEX, false},    {"indirect", KT_FLAG, false},
                             {"segments", KT_U32, false}};
    kval v[NKEYS(d)] = {0};
    Vuf__BlkRequest *x = NULL;
    Vuf__Action *a = NULL;
    if (!parse_kv(c, "blk", tok, n, 1, d, NKEYS(d), v)) {
        if (!(x = malloc(sizeof *x)) || !(a = push_action(c))) {
            free(x);
            kvals_free(v, NKEYS(d));
            return OOM(c);
        }
        vuf__blk_request__init(x);
        x->has_queue = v[0].set, x->queue = (uint32_t)v[0].v;
        x->type = (uint32_t)v[1].v;
        x->has_sector = v[2].set, x->sector = v[2].v;
        x->has_len = v[3].set, x->len = (uint32_t)v[3].v;
        x->has_data = v[4].set, x->data = take_bytes(&v[4]);
        x->has_indirect = v[5].set, x->indirect = v[5].set;
        x->has_segments = v[6].set, x->segments = (uint32_t)v[6].v;
        a->action_case = VUF__ACTION__ACTION_BLK;
        a->blk = x;
    }
    kvals_free(v, NKEYS(d));
    return a ? 0 : -1;
}

static int parse_kick(pctx *c, const tok_t *tok, size_t n)
{
    static const kdef d[] = {{"queue", KT_U32, false}, {"inband", KT_FLAG, false}};
    kval v[NKEYS(d)] = {0};
    int rc = parse_kv(c, "kick", tok, n, 1, d, NKEYS(d), v);
    kvals_free(v, NKEYS(d));
    if (rc)
        return -1;
    Vuf__Kick *x = malloc(sizeof *x);
    Vuf__Action *a = x ? push_action(c) : NULL;
    if (!a) {
        free(x);
        return OOM(c);
    }
    vuf__kick__init(x);
    x->has_queue = v[0].set, x->queue = (uint32_t)v[0].v;
    x->has_inband = v[1].set, x->inband = v[1].set;
    a->action_case = VUF__ACTION__ACTION_KICK;
    a->kick = x;
    return 0;
}

static int parse_raw(pctx *c, const tok_t *tok, size_t n)
{
    static const kdef d[] = {{"data", KT_HEX, true}, {"fds", KT_FDS, false}};
    vuf_channel ch;
    if (n < 2 || parse_channel_tok(tok[1].s, &ch))
        return perr(c, n < 2 ? c->eol : tok[1].col,
                    "expected a channel after 'raw' (main or backend)");
    kval v[NKEYS(d)] = {0};
    Vuf__Raw *x = NULL;
    Vuf__Action *a = NULL;
    if (!parse_kv(c, "raw", tok, n, 2, d, NKEYS(d), v)) {
        if (!(x = malloc(sizeof *x)) || !(a = push_action(c))) {
            free(x);
            kvals_free(v, NKEYS(d));
            return OOM(c);
        }
        vuf__raw__init(x);
        if (ch == VUF_CHAN_BACKEND)
            x->has_backend = x->backend = true;
        x->data = take_bytes(&v[0]);
        x->fds = v[1].fds.v;
        x->n_fds = v[1].fds.n;
        v[1].fds.v = NULL;
        v[1].fds.n = 0;
        a->action_case = VUF__ACTION__ACTION_RAW;
        a->raw = x;
    }
    kvals_free(v, NKEYS(d));
    return a ? 0 : -1;
}

static int parse_resize(pctx *c, const tok_t *tok, size_t n)
{
    uint64_t v;
    if (n < 2)
        return perr(c, c->eol, "missing the disk size after 'resize' (expected resize BYTES)");
    if (!vuf_parse_u64(tok[1].s, &v))
        return perr(c, tok[1].col, "bad size '%s' (expected a u64)", tok[1].s);
    if (n > 2)
        return perr(c, tok[2].col, "unexpected '%s' (expected end of line)", tok[2].s);
    Vuf__Action *a = push_action(c);
    if (!a)
        return OOM(c);
    a->action_case = VUF__ACTION__ACTION_RESIZE;
    a->resize = v;
    return 0;
}

/* ---------- back-end sessions: role, delay ---------- */

static int parse_role(pctx *c, const tok_t *tok, size_t n)
{
    if (n != 2 || (strcmp(tok[1].s, "backend") && strcmp(tok[1].s, "frontend")))
        return perr(c, n < 2 ? c->eol : tok[1].col, "expected 'role backend' or 'role frontend'");
    if (c->ses->n_actions || c->ses->has_role)
        return perr(c, tok[0].col, "the role line comes first, once (before every action)");
    c->ses->has_role = true;
    c->backend_role = tok[1].s[0] == 'b';
    c->ses->role = c->backend_role ? VUF__ROLE__ROLE_BACKEND : VUF__ROLE__ROLE_FRONTEND;
    return 0;
}

static int parse_delay(pctx *c, const tok_t *tok, size_t n)
{
    uint32_t ms;
    if (!c->backend_role)
        return perr(c, tok[0].col, "'delay' is a back-end action (a 'role backend' session)");
    if (n < 2 || !parse_u32(tok[1].s, &ms))
        return perr(c, n < 2 ? c->eol : tok[1].col, "expected delay MILLISECONDS (a u32)");
    if (n > 2)
        return perr(c, tok[2].col, "unexpected '%s' (expected end of line)", tok[2].s);
    Vuf__Action *a = push_action(c);
    if (!a)
        return OOM(c);
    a->action_case = VUF__ACTION__ACTION_DELAY;
    a->delay = ms;
    return 0;
}

/* ---------- open / close ---------- */

static int parse_open_close(pctx *c, const tok_t *tok, size_t n)
{
    bool open = tok[0].s[0] == 'o';
    vuf_channel ch;
    if (n < 2 || parse_channel_tok(tok[1].s, &ch))
        return perr(c, n < 2 ? c->eol : tok[1].col,
                    "expected a channel after '%s' (main or backend)", tok[0].s);
    bool by_backend = false;
    for (size_t i = 2; i < n; i++) {
        if (!open && !strcmp(tok[i].s, "by=F"))
            by_backend = false;
        else if (!open && !strcmp(tok[i].s, "by=B"))
            by_backend = true;
        else
            return perr(c, tok[i].col, "unexpected '%s' (expected %s)", tok[i].s,
                        open ? "end of line" : "by=F or by=B");
    }
    if (c->backend_role) {
        /* a back-end session: the back-end's closes are actions, the
         * front-end's side is awaited, not performed */
        if (!by_backend || open)
            return 0;
        Vuf__Action *a = push_action(c);
        if (!a)
            return OOM(c);
        a->action_case = ch == VUF_CHAN_FRONTEND ? VUF__ACTION__ACTION_BE_CLOSE
                                                 : VUF__ACTION__ACTION_BE_CLOSE_BACKEND;
        a->be_close = true; /* the union's bool for both */
        return 0;
    }
    /* the device's side of a recorded conversation is not performed */
    if (by_backend || (open && ch == VUF_CHAN_BACKEND))
        return 0;
    Vuf__Action *a = push_action(c);
    if (!a)
        return OOM(c);
    if (open) {
        a->action_case = VUF__ACTION__ACTION_CONNECT;
        a->connect = true;
    } else if (ch == VUF_CHAN_FRONTEND) {
        a->action_case = VUF__ACTION__ACTION_DISCONNECT;
        a->disconnect = true;
    } else {
        a->action_case = VUF__ACTION__ACTION_CLOSE_BACKEND;
        a->close_backend = true;
    }
    return 0;
}

/* ---------- message lines (F>B) ---------- */

static Vuf__Message *new_message(void)
{
    Vuf__Message *m = malloc(sizeof *m);
    if (m)
        vuf__message__init(m);
    return m;
}

static int attach_message(pctx *c, Vuf__Message *m, vuf_channel ch)
{
    Vuf__Action *a = push_action(c);
    if (!a) {
        free_msg(m);
        return OOM(c);
    }
    bool be = ch == VUF_CHAN_BACKEND;
    if (c->backend_role && c->by_backend) { /* the back-end's message */
        a->action_case = be ? VUF__ACTION__ACTION_BE_BACKEND_SEND : VUF__ACTION__ACTION_BE_SEND;
        *(be ? &a->be_backend_send : &a->be_send) = m;
    } else if (c->backend_role) { /* the front-end's, awaited */
        a->action_case = be ? VUF__ACTION__ACTION_BACKEND_EXPECT : VUF__ACTION__ACTION_EXPECT;
        *(be ? &a->backend_expect : &a->expect) = m;
    } else {
        a->action_case = be ? VUF__ACTION__ACTION_BACKEND_SEND : VUF__ACTION__ACTION_SEND;
        *(be ? &a->backend_send : &a->send) = m;
    }
    return 0;
}

static int parse_short(pctx *c, const tok_t *tok, size_t n, vuf_channel ch)
{
    uint8_t hb[VUF_HDR_SIZE] = {0};
    size_t sn;
    if (n > 3 || vuf_hex_decode(tok[2].s + 6, hb, sizeof hb - 1, &sn))
        return perr(c, tok[2].col, "bad short message (expected short=HEX with at most 11 bytes)");
    vuf_hdr h;
    vuf_hdr_decode(hb, &h);
    Vuf__Message *m = new_message();
    if (!m)
        return OOM(c);
    m->has_id = m->has_flags = m->has_size = m->has_truncate = true;
    m->id = h.request;
    m->flags = h.flags;
    m->size = h.size;
    m->truncate = (uint32_t)sn;
    m->has_no_fds = m->no_fds = true;
    return attach_message(c, m, ch);
}

static int add_field(pctx *c, Vuf__Message *m, const char *path, const char *val,
                     vuf_session_field_kind kind, unsigned col)
{
    Vuf__Field *f = malloc(sizeof *f);
    if (!f)
        return OOM(c);
    vuf__field__init(f);
    Vuf__Field **nv = realloc(m->fields, (m->n_fields + 1) * sizeof *nv);
    if (!nv || !(f->path = strdup(path))) {
        if (nv)
            m->fields = nv;
        free(f);
        return OOM(c);
    }
    m->fields = nv;
    m->fields[m->n_fields++] = f;
    if (kind == VUF_SFIELD_INT) {
        if (!vuf_parse_u64(val, &f->value))
            return perr(c, col, "bad number '%s' for field '%s'", val, path);
        f->has_value = true;
    } else {
        int rc = hex_alloc(val, VUF_PAYLOAD_MAX, &f->bytes);
        if (rc == -2)
            return OOM(c);
        if (rc)
            return perr(c, col, "bad hex bytes for field '%s'", path);
        f->has_bytes = true;
    }
    return 0;
}

/* FIELD=offered or FIELD=offered&MASK: an integer field whose value is the
 * peer's offer (masked), resolved when the message is sent. */
static int add_offered(pctx *c, Vuf__Message *m, vuf_payload_builder *pb, const char *key,
                       const char *val, const vuf_payload_def *layout, unsigned col, unsigned vcol)
{
    if (vuf_session_field_classify(layout, key) != VUF_SFIELD_INT)
        return perr(c, col, "'offered' takes an integer field, not '%s'", key);
    const char *mask = val[7] == '&' ? val + 8 : NULL;
    uint64_t v = UINT64_MAX;
    if (mask && !vuf_parse_u64(mask, &v))
        return perr(c, vcol, "bad mask '%s' after offered& (a number)", mask);
    char num[32], err[200];
    snprintf(num, sizeof num, "%llu", (unsigned long long)v);
    if (vuf_pb_set(pb, key, num, err, sizeof err))
        return perr(c, col, "%s", err);
    int rc = add_field(c, m, key, num, VUF_SFIELD_INT, col);
    if (!rc) {
        Vuf__Field *f = m->fields[m->n_fields - 1];
        f->has_offered = f->offered = true;
        f->has_value = mask != NULL;
        f->value = v;
    }
    return rc;
}

#define MSG_TOKENS_EXPECTED                                                                        \
    "reply, need_reply, hdr.flags=, hdr.size=, raw=, fds=, truncate=, nofd= or FIELD=VALUE"

/* One pass over the tokens of a message line with payload layout `layout`.
 * Fills m; returns 0 or -1 with the diagnostic. */
static int message_tokens(pctx *c, const tok_t *tok, size_t n, const vuf_msg_def *def,
                          const vuf_payload_def *layout, vuf_payload_builder *pb, Vuf__Message *m)
{
    bool fields = false;
    fdlist fl = {0};
    int rc = 0;
    vuf_pb_init(pb, layout);
    for (size_t i = 3; i < n && !rc; i++) {
        const char *tk = tok[i].s;
        if (!strcmp(tk, "reply")) {
            m->has_reply = m->reply = true;
            continue;
        }
        if (!strcmp(tk, "need_reply")) {
            m->has_need_reply = m->need_reply = true;
            continue;
        }
        const char *eq = strchr(tk, '=');
        if (!eq) {
            rc = perr(c, tok[i].col, "unexpected '%s' (expected " MSG_TOKENS_EXPECTED ")", tk);
            break;
        }
        size_t kl = (size_t)(eq - tk);
        const char *val = eq + 1;
        char key[160];
        if (kl >= sizeof key) {
            rc =
                perr(c, tok[i].col, "field path too long (at most %zu characters)", sizeof key - 1);
            break;
        }
        memcpy(key, tk, kl);
        key[kl] = 0;
        unsigned vcol = tok[i].col + (unsigned)kl + 1;
        if (!strcmp(key, "hdr.flags")) {
            m->has_flags = parse_u32(val, &m->flags); /* checked before */
        } else if (!strcmp(key, "hdr.size")) {
            if (!parse_u32(val, &m->size))
                rc = perr(c, vcol, "bad size '%s' (expected a u32)", val);
            m->has_size = true;
        } else if (!strcmp(key, "truncate")) {
            if (!parse_u32(val, &m->truncate))
                rc = perr(c, vcol, "bad truncate '%s' (expected a u32 byte count)", val);
            m->has_truncate = true;
        } else if (!strcmp(key, "nofd")) {
            if (strcmp(val, "0") && strcmp(val, "1"))
                rc = perr(c, vcol, "bad nofd '%s' (expected 0 or 1)", val);
            m->has_nofd = true;
            m->nofd = val[0] == '1';
        } else if (!strcmp(key, "raw")) {
            free(m->raw_payload.data);
            int hr = hex_alloc(val, VUF_SESSION_MAX_PAYLOAD, &m->raw_payload);
            if (hr == -2)
                rc = OOM(c);
            else if (hr)
                rc = perr(c, vcol,
                          "bad raw bytes (expected an even number of hex digits, at most %d "
                          "bytes)",
                          VUF_SESSION_MAX_PAYLOAD);
            m->has_raw_payload = true;
        } else if (!strcmp(key, "fds")) {
            rc = parse_fds(c, val, vcol, &fl, true);
        } else {
            char err[200];
            fields = true;
            if (!layout || layout->is_empty)
                rc = perr(c, tok[i].col, "%s takes no payload fields here (use raw=HEX)",
                          def ? def->name : "an unknown message id");
            else if (!strncmp(val, "offered", 7) && (val[7] == 0 || val[7] == '&'))
                rc = add_offered(c, m, pb, key, val, layout, tok[i].col, vcol);
            else if (vuf_pb_set(pb, key, val, err, sizeof err))
                rc = perr(c, tok[i].col, "%s", err);
            else
                rc = add_field(c, m, key, val, vuf_session_field_classify(layout, key), tok[i].col);
        }
    }
    if (!rc && m->has_raw_payload && fields)
        rc = perr(c, tok[3].col, "raw= and payload fields are exclusive");
    if (!rc) {
        m->fds = fl.v;
        m->n_fds = fl.n;
        if (fl.none)
            m->has_no_fds = m->no_fds = true;
        fl.v = NULL;
        fl.n = 0;
    }
    fdlist_free(&fl);
    return rc;
}

static int parse_message(pctx *c, const tok_t *tok, size_t n)
{
    vuf_channel ch;
    if (n < 3)
        return perr(c, c->eol, "expected a channel and a message after '%s'", tok[0].s);
    if (parse_channel_tok(tok[1].s, &ch))
        return perr(c, tok[1].col, "bad channel '%s' (expected main or backend)", tok[1].s);
    if (!strncmp(tok[2].s, "short=", 6))
        return parse_short(c, tok, n, ch);
    /* NAME (this channel's table, else the other's) or a numeric id */
    const vuf_msg_def *def = NULL, *layout_def = NULL;
    const char *name = NULL;
    uint64_t id = 0;
    const char *mt = tok[2].s;
    if (vuf_parse_u64(mt[0] == '#' ? mt + 1 : mt, &id)) {
        if (id > 0xffffffffu)
            return perr(c, tok[2].col, "message id %s too large (expected a u32)", mt);
        def = layout_def = vuf_spec_msg(c->s, ch, (uint32_t)id);
    } else {
        layout_def = vuf_spec_msg_by_name(c->s, ch, mt);
        if (!layout_def)
            layout_def = vuf_spec_msg_by_name(c->s, VUF_CHAN_COUNT, mt);
        if (!layout_def)
            return perr(c, tok[2].col,
                        "unknown message '%s' (expected a table name or a numeric id)", mt);
        def = layout_def->channel == ch ? layout_def : vuf_spec_msg(c->s, ch, layout_def->id);
        name = mt;
    }
    /* flags first: they decide request or reply, hence the layout */
    uint32_t flags = VUF_F_VERSION, extra = 0;
    for (size_t i = 3; i < n; i++) {
        if (!strcmp(tok[i].s, "reply"))
            extra |= VUF_F_REPLY;
        else if (!strcmp(tok[i].s, "need_reply"))
            extra |= VUF_F_NEED_REPLY;
        else if (!strncmp(tok[i].s, "hdr.flags=", 10) && !parse_u32(tok[i].s + 10, &flags))
            return perr(c, tok[i].col + 10, "bad flags '%s' (expected a u32)", tok[i].s + 10);
    }
    bool try_ack;
    const vuf_payload_def *layout =
        vuf_session_layout(c->s, layout_def, ((flags | extra) & VUF_F_REPLY) != 0, &try_ack);
    vuf_payload_builder *pb = malloc(sizeof *pb);
    if (!pb)
        return OOM(c);
    Vuf__Message *m = NULL;
    int rc = -1;
    for (int attempt = 0; attempt < 2; attempt++) {
        m = new_message();
        if (!m) {
            rc = OOM(c);
            break;
        }
        if (name && !(m->name = strdup(name))) {
            rc = OOM(c);
            break;
        }
        if (!name) {
            m->has_id = true;
            m->id = (uint32_t)id;
        }
        rc = message_tokens(c, tok, n, def, layout, pb, m);
        if (!rc || attempt == 1 || !try_ack)
            break;
        /* a conditional reply that is an ack after all */
        free_msg(m);
        m = NULL;
        layout = vuf_reply_layout(c->s, layout_def, false);
    }
    free(pb);
    if (rc) {
        free_msg(m);
        return -1;
    }
    return attach_message(c, m, ch);
}

/* ---------- lines ---------- */

static int parse_line(pctx *c, const char *line, size_t len)
{
    char *buf = malloc(len + 1);
    tok_t *tok = malloc((count_tokens(line, len) + 1) * sizeof *tok);
    int rc = -1;
    if (!buf || !tok) {
        rc = OOM(c);
        goto out;
    }
    memcpy(buf, line, len);
    buf[len] = 0;
    size_t n = split(buf, tok);
    rc = 0;
    if (n == 0)
        goto out;
    c->eol = tok[n - 1].col + (unsigned)strlen(tok[n - 1].s);
    const char *k = tok[0].s;
    c->by_backend = !strcmp(k, "B>F");
    static const char *const frontend_only[] = {"backend-reply", "mem-write", "desc",
                                                "avail",         "blk",       "kick"};
    for (size_t i = 0; c->backend_role && i < sizeof frontend_only / sizeof *frontend_only; i++)
        if (!strcmp(k, frontend_only[i])) {
            rc = perr(c, tok[0].col,
                      "'%s' is a front-end action: not in a 'role backend' session (expected "
                      "F>B, B>F, close, delay, raw, resize or config)",
                      k);
            goto out;
        }
    if (!strcmp(k, "F>B") || (c->by_backend && c->backend_role)) {
        rc = parse_message(c, tok, n);
    } else if (!strcmp(k, "role")) {
        rc = parse_role(c, tok, n);
    } else if (!strcmp(k, "delay")) {
        rc = parse_delay(c, tok, n);
    } else if (!strcmp(k, "B>F")) {
        /* the device's side: checked with the trace parser, not performed */
        vuf_trace *t = vuf_trace_new();
        if (!t) {
            rc = OOM(c);
            goto out;
        }
        memcpy(buf, line, len);
        rc = vuf_trace_parse_line(t, c->s, buf, c->line, c->file, c->diag) < 0 ? -1 : 0;
        vuf_trace_free(t);
    } else if (!strcmp(k, "open") || !strcmp(k, "close")) {
        rc = parse_open_close(c, tok, n);
    } else if (!strcmp(k, "config")) {
        rc = parse_config(c, tok, n);
    } else if (!strcmp(k, "backend-reply")) {
        rc = parse_backend_reply(c, tok, n);
    } else if (!strcmp(k, "mem-write")) {
        rc = parse_mem_write(c, tok, n);
    } else if (!strcmp(k, "desc")) {
        rc = parse_desc(c, tok, n);
    } else if (!strcmp(k, "avail")) {
        rc = parse_avail(c, tok, n);
    } else if (!strcmp(k, "blk")) {
        rc = parse_blk(c, tok, n);
    } else if (!strcmp(k, "kick")) {
        rc = parse_kick(c, tok, n);
    } else if (!strcmp(k, "raw")) {
        rc = parse_raw(c, tok, n);
    } else if (!strcmp(k, "resize")) {
        rc = parse_resize(c, tok, n);
    } else {
        rc = perr(c, tok[0].col,
                  "unexpected '%s' (expected F>B, B>F, open, close, config, backend-reply, "
                  "mem-write, desc, avail, blk, kick, raw, resize, role or delay)",
                  k);
    }
out:
    free(buf);
    free(tok);
    return rc;
}

Vuf__Session *vuf_session_parse_text(const vuf_spec *s, const char *text, size_t len,
                                     const char *filename, vuf_diag *diag)
{
    if (diag)
        memset(diag, 0, sizeof *diag);
    pctx c = {.s = s, .file = filename ? filename : "<session>", .diag = diag};
    if (!s) {
        perr(&c, 0, "no spec table");
        return NULL;
    }
    Vuf__Session *ses = malloc(sizeof *ses);
    if (!ses) {
        OOM(&c);
        return NULL;
    }
    vuf__session__init(ses);
    c.ses = ses;
    size_t i = 0;
    c.line = 1;
    while (i < len) {
        size_t st = i;
        while (i < len && text[i] != '\n')
            i++;
        if (memchr(text + st, 0, i - st)) {
            perr(&c, (unsigned)((const char *)memchr(text + st, 0, i - st) - (text + st)) + 1,
                 "NUL byte in session text");
            goto fail;
        }
        if (parse_line(&c, text + st, i - st))
            goto fail;
        i++;
        c.line++;
    }
    return ses;
fail:
    vuf_session_free(ses);
    return NULL;
}
