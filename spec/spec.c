/* SPDX-License-Identifier: Apache-2.0 */
/* Loader for the vhost-user spec table. See spec/README.md for the format.
 *
 * The text is first split into lines of tokens, then read in passes so that
 * a name can be used before the line that declares it:
 *   1. features and payloads (payloads may only use payloads declared above);
 *   2. message headers (channel, id, name), so messages can name each other;
 *   3. channel lines and message bodies.
 * The first error stops the load and is reported as FILE:LINE:COL.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include "vuf_spec.h"
#include "vuf_util.h"

#include <ctype.h>
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

/* ---------- small arena: everything a spec owns is freed at once ---------- */

typedef struct arena_block {
    struct arena_block *next;
    size_t used, cap;
    max_align_t data[];
} arena_block;

static void *arena_alloc(arena_block **a, size_t n)
{
    n = (n + sizeof(max_align_t) - 1) / sizeof(max_align_t) * sizeof(max_align_t);
    if (!*a || (*a)->cap - (*a)->used < n) {
        size_t cap = n > 16384 ? n : 16384;
        arena_block *b = malloc(sizeof(*b) + cap);
        if (!b)
            return NULL;
        b->next = *a;
        b->used = 0;
        b->cap = cap;
        *a = b;
    }
    void *p = (char *)(*a)->data + (*a)->used;
    (*a)->used += n;
    memset(p, 0, n);
    return p;
}

static void arena_free(arena_block *a)
{
    while (a) {
        arena_block *n = a->next;
        free(a);
        a = n;
    }
}

static char *arena_strdup(arena_block **a, const char *s)
{
    size_t n = strlen(s) + 1;
    char *p = arena_alloc(a, n);
    if (p)
        memcpy(p, s, n);
    return p;
}

/* ---------- the spec ---------- */

#define MAX_FEATURES 256
#define MAX_PAYLOADS 128
#define MAX_MSGS 256

#define NAME_SLOTS 1024

struct vuf_spec {
    arena_block *arena;
    char *filename;
    vuf_channel_def chan[VUF_CHAN_COUNT];
    bool chan_declared[VUF_CHAN_COUNT];
    vuf_feature_def *features[MAX_FEATURES];
    size_t nfeatures;
    vuf_payload_def *payloads[MAX_PAYLOADS];
    size_t npayloads;
    vuf_msg_def *msgs[VUF_CHAN_COUNT][MAX_MSGS];
    size_t nmsgs[VUF_CHAN_COUNT];
    int refs; /* for vuf_spec_open/release; -1 = the shared default */
    /* lookup indexes, built once the table is loaded */
    bool indexed;
    vuf_feature_def *by_bit[2][64];
    struct {
        const char *name;
        vuf_msg_def *msg;
    } names[NAME_SLOTS];
};

const char *vuf_channel_name(vuf_channel c)
{
    return c == VUF_CHAN_BACKEND ? "backend" : "frontend";
}

const char *vuf_side_name(vuf_side s)
{
    return s == VUF_SIDE_BACKEND ? "backend" : "frontend";
}

int vuf_channel_parse(const char *s, vuf_channel *out)
{
    if (!strcmp(s, "frontend") || !strcmp(s, "main")) {
        *out = VUF_CHAN_FRONTEND;
        return 0;
    }
    if (!strcmp(s, "backend")) {
        *out = VUF_CHAN_BACKEND;
        return 0;
    }
    return -1;
}

/* ---------- tokenizer ---------- */

#define MAX_TOKENS 64

typedef struct {
    const char *s; /* NUL-terminated copy */
    unsigned col;
} token;

typedef struct {
    unsigned lineno;
    size_t n;
    token tok[MAX_TOKENS];
} line_t;

typedef struct {
    vuf_spec *spec;
    vuf_diag *diag;
    line_t *lines;
    size_t nlines;
    bool failed;
} parser;

static bool perr(parser *p, unsigned line, unsigned col, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

static bool perr(parser *p, unsigned line, unsigned col, const char *fmt, ...)
{
    if (p->failed)
        return false;
    p->failed = true;
    if (p->diag) {
        snprintf(p->diag->file, sizeof p->diag->file, "%s", p->spec->filename);
        p->diag->line = line;
        p->diag->col = col;
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(p->diag->text, sizeof p->diag->text, fmt, ap);
        va_end(ap);
    }
    return false;
}

#define TERR(p, ln, i, ...)                                                                        \
    perr((p), (ln)->lineno, (i) < (ln)->n ? (ln)->tok[(i)].col : 1, __VA_ARGS__)

static bool tokenize(parser *p, const char *text, size_t len)
{
    size_t cap = 64;
    p->lines = calloc(cap, sizeof(line_t));
    if (!p->lines)
        return perr(p, 0, 0, "out of memory");
    unsigned lineno = 1;
    size_t i = 0;
    char buf[1024];
    while (i < len) {
        size_t start = i;
        while (i < len && text[i] != '\n')
            i++;
        size_t end = i;
        if (i < len)
            i++;
        line_t ln = {.lineno = lineno};
        size_t j = start;
        while (j < end) {
            char c = text[j];
            if (c == ' ' || c == '\t' || c == '\r') {
                j++;
                continue;
            }
            if (c == '#')
                break;
            if (c == '\0')
                return perr(p, lineno, (unsigned)(j - start + 1), "NUL byte in table");
            if (ln.n == MAX_TOKENS)
                return perr(p, lineno, (unsigned)(j - start + 1),
                            "too many tokens on one line (at most %d)", MAX_TOKENS);
            unsigned col = (unsigned)(j - start + 1);
            size_t bl = 0;
            if (c == '"') {
                j++;
                bool closed = false;
                while (j < end) {
                    char d = text[j];
                    if (d == '\\' && j + 1 < end) {
                        d = text[j + 1];
                        j += 2;
                    } else if (d == '"') {
                        j++;
                        closed = true;
                        break;
                    } else {
                        j++;
                    }
                    if (bl + 1 >= sizeof buf)
                        return perr(p, lineno, col, "string too long (at most %zu bytes)",
                                    sizeof buf - 1);
                    buf[bl++] = d;
                }
                if (!closed)
                    return perr(p, lineno, col, "unterminated string (expected '\"')");
            } else {
                while (j < end && text[j] != ' ' && text[j] != '\t' && text[j] != '\r' &&
                       text[j] != '#') {
                    if (bl + 1 >= sizeof buf)
                        return perr(p, lineno, col, "token too long");
                    buf[bl++] = text[j++];
                }
            }
            buf[bl] = 0;
            char *s = arena_strdup(&p->spec->arena, buf);
            if (!s)
                return perr(p, lineno, col, "out of memory");
            ln.tok[ln.n].s = s;
            ln.tok[ln.n].col = col;
            ln.n++;
        }
        if (ln.n) {
            if (p->nlines == cap) {
                cap *= 2;
                line_t *nl = realloc(p->lines, cap * sizeof(line_t));
                if (!nl)
                    return perr(p, lineno, 1, "out of memory");
                p->lines = nl;
            }
            p->lines[p->nlines++] = ln;
        }
        lineno++;
    }
    return true;
}

/* ---------- token helpers ---------- */

static bool is_name(const char *s)
{
    if (!(isalpha((unsigned char)*s) || *s == '_'))
        return false;
    for (s++; *s; s++)
        if (!(isalnum((unsigned char)*s) || *s == '_'))
            return false;
    return true;
}

static bool tok_u64(parser *p, const line_t *ln, size_t i, uint64_t max, uint64_t *out,
                    const char *what)
{
    if (i >= ln->n)
        return TERR(p, ln, i, "missing %s (expected a number)", what);
    if (!vuf_parse_u64(ln->tok[i].s, out) || *out > max)
        return TERR(p, ln, i, "bad %s '%s' (expected a number from 0 to %llu)", what, ln->tok[i].s,
                    (unsigned long long)max);
    return true;
}

static const char *tok_name(parser *p, const line_t *ln, size_t i, const char *what)
{
    if (i >= ln->n) {
        TERR(p, ln, i, "missing %s (expected a name)", what);
        return NULL;
    }
    if (!is_name(ln->tok[i].s)) {
        TERR(p, ln, i, "bad %s '%s' (expected a name: letters, digits, '_')", what, ln->tok[i].s);
        return NULL;
    }
    return ln->tok[i].s;
}

static const char *const *collect_names(parser *p, const line_t *ln, size_t *i, const char *stop1,
                                        const char *stop2, const char *stop3)
{
    size_t start = *i, n = 0;
    while (*i < ln->n && strcmp(ln->tok[*i].s, stop1) && strcmp(ln->tok[*i].s, stop2) &&
           strcmp(ln->tok[*i].s, stop3)) {
        if (!tok_name(p, ln, *i, "name"))
            return NULL;
        (*i)++;
        n++;
    }
    const char **v = arena_alloc(&p->spec->arena, (n + 1) * sizeof(char *));
    if (!v) {
        perr(p, ln->lineno, 1, "out of memory");
        return NULL;
    }
    for (size_t k = 0; k < n; k++)
        v[k] = ln->tok[start + k].s;
    return v;
}

static const char *const empty_names[] = {NULL};

/* ---------- features ---------- */

static vuf_feature_def *find_feature(const vuf_spec *s, vuf_space sp, const char *name)
{
    for (size_t i = 0; i < s->nfeatures; i++) {
        vuf_feature_def *f = s->features[i];
        if (f->space != sp)
            continue;
        if (!strcasecmp(f->name, name))
            return f;
        for (const char *const *fn = f->former; *fn; fn++)
            if (!strcasecmp(*fn, name))
                return f;
    }
    return NULL;
}

static bool parse_space(parser *p, const line_t *ln, size_t i, vuf_space *out)
{
    if (i < ln->n && !strcmp(ln->tok[i].s, "protocol"))
        *out = VUF_SPACE_PROTOCOL;
    else if (i < ln->n && !strcmp(ln->tok[i].s, "virtio"))
        *out = VUF_SPACE_VIRTIO;
    else
        return TERR(p, ln, i, "bad feature space '%s' (expected 'protocol' or 'virtio')",
                    i < ln->n ? ln->tok[i].s : "");
    return true;
}

/* feature SPACE BIT NAME [former N...] [provisional] [requires N...] [section S] [note S] */
static bool parse_feature_head(parser *p, const line_t *ln)
{
    vuf_spec *s = p->spec;
    vuf_space sp;
    uint64_t bit;
    if (!parse_space(p, ln, 1, &sp) || !tok_u64(p, ln, 2, 63, &bit, "feature bit"))
        return false;
    const char *name = tok_name(p, ln, 3, "feature name");
    if (!name)
        return false;
    if (s->nfeatures == MAX_FEATURES)
        return TERR(p, ln, 0, "too many features (at most %d)", MAX_FEATURES);
    for (size_t k = 0; k < s->nfeatures; k++) {
        if (s->features[k]->space == sp && s->features[k]->bit == bit)
            return TERR(p, ln, 2, "duplicate %s feature bit %llu (first defined at line %u)",
                        sp == VUF_SPACE_PROTOCOL ? "protocol" : "virtio", (unsigned long long)bit,
                        s->features[k]->line);
    }
    if (find_feature(s, sp, name))
        return TERR(p, ln, 3, "duplicate feature name '%s'", name);
    vuf_feature_def *f = arena_alloc(&s->arena, sizeof *f);
    if (!f)
        return perr(p, ln->lineno, 1, "out of memory");
    f->space = sp;
    f->bit = (unsigned)bit;
    f->name = name;
    f->former = empty_names;
    f->section = "";
    f->line = ln->lineno;
    size_t i = 4;
    while (i < ln->n) {
        const char *kw = ln->tok[i].s;
        if (!strcmp(kw, "former")) {
            i++;
            f->former = collect_names(p, ln, &i, "provisional", "requires", "section");
            if (!f->former)
                return false;
        } else if (!strcmp(kw, "provisional")) {
            f->provisional = true;
            i++;
        } else if (!strcmp(kw, "requires")) {
            /* resolved in pass 3, once all features are known */
            i++;
            while (i < ln->n && strcmp(ln->tok[i].s, "section") && strcmp(ln->tok[i].s, "note") &&
                   strcmp(ln->tok[i].s, "provisional") && strcmp(ln->tok[i].s, "former"))
                i++;
        } else if (!strcmp(kw, "section") || !strcmp(kw, "note")) {
            if (i + 1 >= ln->n)
                return TERR(p, ln, i, "'%s' needs a quoted string", kw);
            if (kw[0] == 's')
                f->section = ln->tok[i + 1].s;
            else
                f->note = ln->tok[i + 1].s;
            i += 2;
        } else {
            return TERR(p, ln, i,
                        "unexpected '%s' (expected former, provisional, requires, section or "
                        "note)",
                        kw);
        }
    }
    s->features[s->nfeatures++] = f;
    return true;
}

static bool parse_feature_requires(parser *p, const line_t *ln)
{
    vuf_space sp;
    parse_space(p, ln, 1, &sp);
    vuf_feature_def *f = find_feature(p->spec, sp, ln->tok[3].s);
    for (size_t i = 4; i < ln->n; i++) {
        if (strcmp(ln->tok[i].s, "requires"))
            continue;
        for (i++; i < ln->n; i++) {
            const char *n = ln->tok[i].s;
            if (!strcmp(n, "section") || !strcmp(n, "note") || !strcmp(n, "provisional") ||
                !strcmp(n, "former"))
                break;
            vuf_feature_def *r = find_feature(p->spec, sp, n);
            if (!r)
                return TERR(p, ln, i, "unknown feature '%s' in requires (expected a %s feature)", n,
                            sp == VUF_SPACE_PROTOCOL ? "protocol" : "virtio");
            f->requires |= 1ull << r->bit;
        }
        i--;
    }
    return true;
}

/* ---------- payloads ---------- */

static vuf_payload_def empty_payload = {.name = "empty", .varray_field = -1, .is_empty = true};

static const vuf_payload_def *find_payload(const vuf_spec *s, const char *name)
{
    if (!strcmp(name, "empty"))
        return &empty_payload;
    for (size_t i = 0; i < s->npayloads; i++)
        if (!strcmp(s->payloads[i]->name, name))
            return s->payloads[i];
    return NULL;
}

static bool parse_size_decl(const char *t, uint32_t *fixed, uint32_t *elem)
{
    uint64_t a, b = 0;
    char tmp[64];
    snprintf(tmp, sizeof tmp, "%s", t);
    char *plus = strchr(tmp, '+');
    if (plus) {
        *plus = 0;
        size_t l = strlen(plus + 1);
        if (l < 2 || plus[l] != 'n')
            return false;
        plus[l] = 0;
        if (!vuf_parse_u64(plus + 1, &b) || b == 0 || b > 65536)
            return false;
    }
    if (!vuf_parse_u64(tmp, &a) || a > 65536)
        return false;
    *fixed = (uint32_t)a;
    *elem = (uint32_t)b;
    return true;
}

/* Parse a payload block starting at line index *li; leaves *li on 'end'. */
static bool parse_payload(parser *p, size_t *li)
{
    vuf_spec *s = p->spec;
    const line_t *hd = &p->lines[*li];
    const char *name = tok_name(p, hd, 1, "payload name");
    if (!name)
        return false;
    if (!strcmp(name, "none") || !strcmp(name, "empty"))
        return TERR(p, hd, 1, "'%s' is reserved (expected another payload name)", name);
    if (find_payload(s, name))
        return TERR(p, hd, 1, "duplicate payload '%s'", name);
    if (s->npayloads == MAX_PAYLOADS)
        return TERR(p, hd, 0, "too many payloads (at most %d)", MAX_PAYLOADS);
    vuf_payload_def *pd = arena_alloc(&s->arena, sizeof *pd);
    if (!pd)
        return perr(p, hd->lineno, 1, "out of memory");
    pd->name = name;
    pd->line = hd->lineno;
    pd->varray_field = -1;
    if (hd->n < 3)
        return TERR(p, hd, 2, "missing payload size (expected N or N+Mn)");
    if (!parse_size_decl(hd->tok[2].s, &pd->declared_fixed, &pd->declared_elem))
        return TERR(p, hd, 2, "bad payload size '%s' (expected N or N+Mn, e.g. 40 or 8+32n)",
                    hd->tok[2].s);
    if (hd->n > 3)
        return TERR(p, hd, 3, "unexpected '%s' (expected end of line)", hd->tok[3].s);

    vuf_field_def fields[64];
    size_t nf = 0;
    uint32_t off = 0;
    const line_t *span_lines[16];
    size_t nspan = 0;
    for ((*li)++;; (*li)++) {
        if (*li >= p->nlines)
            return perr(p, hd->lineno, 1, "payload '%s' has no 'end'", name);
        const line_t *ln = &p->lines[*li];
        const char *t0 = ln->tok[0].s;
        if (!strcmp(t0, "end")) {
            if (ln->n > 1)
                return TERR(p, ln, 1, "unexpected '%s' after end", ln->tok[1].s);
            break;
        }
        if (!strcmp(t0, "span")) {
            /* resolved at 'end', when every field is known */
            if (nspan == 16)
                return TERR(p, ln, 0, "too many spans (at most 16)");
            span_lines[nspan++] = ln;
            continue;
        }
        if (nf == 64)
            return TERR(p, ln, 0, "too many fields (at most 64)");
        if (pd->varray_field >= 0)
            return TERR(p, ln, 0, "field after the variable array (expected 'end')");
        vuf_field_def *f = &fields[nf];
        memset(f, 0, sizeof *f);
        f->count_field = -1;
        f->offset = off;
        if (!strcmp(t0, "pad")) {
            uint64_t k;
            if (!tok_u64(p, ln, 1, 4096, &k, "pad size"))
                return false;
            if (k == 0)
                return TERR(p, ln, 1, "pad size 0 (expected at least 1)");
            f->type = VUF_FT_PAD;
            f->size = (uint32_t)k;
            off += f->size;
            nf++;
            if (ln->n > 2)
                return TERR(p, ln, 2, "unexpected '%s'", ln->tok[2].s);
            continue;
        }
        uint32_t width = 0;
        const vuf_payload_def *elem = NULL;
        if (!strcmp(t0, "u8"))
            width = 1;
        else if (!strcmp(t0, "u16"))
            width = 2;
        else if (!strcmp(t0, "u32"))
            width = 4;
        else if (!strcmp(t0, "u64"))
            width = 8;
        else if ((elem = find_payload(s, t0)) == NULL || elem->is_empty)
            return TERR(p, ln, 0,
                        "unknown field type '%s' (expected u8, u16, u32, u64, pad or a payload "
                        "declared above)",
                        t0);
        if (ln->n < 2)
            return TERR(p, ln, 1, "missing field name");
        char fname[128];
        snprintf(fname, sizeof fname, "%s", ln->tok[1].s);
        char *br = strchr(fname, '[');
        char *dim = NULL;
        if (br) {
            size_t l = strlen(br);
            if (br[l - 1] != ']')
                return TERR(p, ln, 1, "bad array '%s' (expected name[N] or name[field])",
                            ln->tok[1].s);
            br[l - 1] = 0;
            *br = 0;
            dim = br + 1;
        }
        if (!is_name(fname))
            return TERR(p, ln, 1, "bad field name '%s'", fname);
        for (size_t k = 0; k < nf; k++)
            if (fields[k].name && !strcmp(fields[k].name, fname))
                return TERR(p, ln, 1, "duplicate field '%s'", fname);
        f->name = arena_strdup(&s->arena, fname);
        if (elem && elem->varray_field >= 0)
            return TERR(p, ln, 0, "payload '%s' has a variable part and cannot be an element", t0);
        uint64_t n;
        if (!dim) {
            if (elem)
                return TERR(p, ln, 1, "a payload-typed field must be an array name[count]");
            f->type = width == 1   ? VUF_FT_U8
                      : width == 2 ? VUF_FT_U16
                      : width == 4 ? VUF_FT_U32
                                   : VUF_FT_U64;
            f->size = width;
            if (ln->n > 2)
                return TERR(p, ln, 2, "unexpected '%s' (expected end of line)", ln->tok[2].s);
        } else if (vuf_parse_u64(dim, &n)) {
            if (width != 1)
                return TERR(p, ln, 1, "fixed arrays must be u8 (expected u8 %s)", ln->tok[1].s);
            if (n == 0 || n > 4096)
                return TERR(p, ln, 1, "bad array length %s (expected 1..4096)", dim);
            f->type = VUF_FT_BYTES;
            f->size = (uint32_t)n;
            if (ln->n > 2)
                return TERR(p, ln, 2, "unexpected '%s' (expected end of line)", ln->tok[2].s);
        } else {
            if (width != 1 && width != 0 && width != 8 && width != 4 && width != 2)
                return TERR(p, ln, 0, "bad element type");
            int cf = -1;
            for (size_t k = 0; k < nf; k++)
                if (fields[k].name && !strcmp(fields[k].name, dim))
                    cf = (int)k;
            if (cf < 0)
                return TERR(p, ln, 1, "unknown count field '%s' (expected a field above)", dim);
            if (fields[cf].type > VUF_FT_U64)
                return TERR(p, ln, 1, "count field '%s' is not an integer", dim);
            if (ln->n < 4 || strcmp(ln->tok[2].s, "max"))
                return TERR(p, ln, 2, "variable array needs 'max K'");
            uint64_t mx;
            if (!tok_u64(p, ln, 3, 65536, &mx, "max count"))
                return false;
            if (ln->n > 4)
                return TERR(p, ln, 4, "unexpected '%s' (expected end of line)", ln->tok[4].s);
            f->type = VUF_FT_VARRAY;
            f->count_field = cf;
            f->max_count = (uint32_t)mx;
            f->element = elem;
            f->size = elem ? elem->fixed_size : width;
            pd->varray_field = (int)nf;
            pd->elem_size = f->size;
            nf++;
            continue;
        }
        off += f->size;
        nf++;
    }
    pd->fixed_size = off;
    pd->nfields = nf;
    vuf_field_def *fv = arena_alloc(&s->arena, nf * sizeof *fv + 1);
    if (!fv)
        return perr(p, hd->lineno, 1, "out of memory");
    memcpy(fv, fields, nf * sizeof *fv);
    pd->fields = fv;
    vuf_span_def *sv = arena_alloc(&s->arena, (nspan + 1) * sizeof *sv);
    if (!sv)
        return perr(p, hd->lineno, 1, "out of memory");
    for (size_t k = 0; k < nspan; k++) {
        const line_t *ln = span_lines[k];
        if (ln->n < 3 || ln->n > 4 || (ln->n == 4 && strcmp(ln->tok[3].s, "fd")))
            return TERR(p, ln,
                        ln->n > 4   ? 4
                        : ln->n < 3 ? 0
                                    : 3,
                        "expected 'span BASE SIZE' or 'span BASE SIZE fd'");
        for (int w = 0; w < 2; w++) {
            int *dst = w ? &sv[k].size_field : &sv[k].base_field;
            *dst = -1;
            for (size_t i = 0; i < nf; i++)
                if (fv[i].name && !strcmp(fv[i].name, ln->tok[1 + w].s))
                    *dst = (int)i;
            if (*dst < 0 || fv[*dst].type > VUF_FT_U64)
                return TERR(p, ln, 1 + (size_t)w,
                            "unknown field '%s' (expected an integer field of payload '%s')",
                            ln->tok[1 + w].s, name);
        }
        sv[k].fd = ln->n == 4;
        sv[k].line = ln->lineno;
    }
    pd->spans = sv;
    pd->nspans = nspan;
    s->payloads[s->npayloads++] = pd;
    return true;
}

bool vuf_span_read(const vuf_payload_def *p, size_t i, const uint8_t *pl, size_t len,
                   uint64_t *base, uint64_t *size)
{
    if (!p || i >= p->nspans)
        return false;
    const vuf_field_def *b = &p->fields[p->spans[i].base_field];
    const vuf_field_def *z = &p->fields[p->spans[i].size_field];
    vuf_field_ref rb = {.present = true, .offset = b->offset, .width = b->size, .mask = ~0ull};
    vuf_field_ref rz = {.present = true, .offset = z->offset, .width = z->size, .mask = ~0ull};
    return vuf_field_read(&rb, pl, len, base) && vuf_field_read(&rz, pl, len, size);
}

/* ---------- field references ---------- */

bool vuf_field_resolve(const vuf_payload_def *p, const char *path, vuf_field_ref *out)
{
    memset(out, 0, sizeof *out);
    if (!p || !path)
        return false;
    char buf[128];
    snprintf(buf, sizeof buf, "%s", path);
    uint64_t mask = ~0ull;
    char *amp = strchr(buf, '&');
    if (amp) {
        *amp = 0;
        if (!vuf_parse_u64(amp + 1, &mask))
            return false;
    }
    char *dot = strchr(buf, '.');
    char *br = strchr(buf, '[');
    const vuf_field_def *f = NULL;
    uint32_t base = 0;
    if (br && (!dot || br < dot)) {
        *br = 0;
        char *close = strchr(br + 1, ']');
        if (!close)
            return false;
        *close = 0;
        uint64_t idx;
        if (!vuf_parse_u64(br + 1, &idx))
            return false;
        for (size_t i = 0; i < p->nfields; i++)
            if (p->fields[i].name && !strcmp(p->fields[i].name, buf))
                f = &p->fields[i];
        if (!f || f->type != VUF_FT_VARRAY || idx >= f->max_count)
            return false;
        base = f->offset + (uint32_t)idx * f->size;
        if (!f->element) {
            if (close[1])
                return false;
            out->present = true;
            out->offset = base;
            out->width = 1;
            out->mask = mask;
            out->path = path;
            return true;
        }
        if (close[1] != '.')
            return false;
        vuf_field_ref sub;
        if (!vuf_field_resolve(f->element, close + 2, &sub))
            return false;
        *out = sub;
        out->offset += base;
        if (amp)
            out->mask = mask;
        out->path = path;
        return true;
    }
    if (dot)
        return false;
    for (size_t i = 0; i < p->nfields; i++)
        if (p->fields[i].name && !strcmp(p->fields[i].name, buf))
            f = &p->fields[i];
    if (!f || f->type > VUF_FT_U64)
        return false;
    out->present = true;
    out->offset = f->offset;
    out->width = f->size;
    out->mask = mask;
    out->path = path;
    return true;
}

bool vuf_field_read(const vuf_field_ref *r, const uint8_t *payload, size_t len, uint64_t *out)
{
    if (!r->present || (size_t)r->offset + r->width > len)
        return false;
    uint64_t v = 0;
    switch (r->width) {
    case 1:
        v = payload[r->offset];
        break;
    case 2: {
        uint16_t x;
        memcpy(&x, payload + r->offset, 2);
        v = x;
        break;
    }
    case 4: {
        uint32_t x;
        memcpy(&x, payload + r->offset, 4);
        v = x;
        break;
    }
    default:
        memcpy(&v, payload + r->offset, 8);
        break;
    }
    *out = v & r->mask;
    return true;
}

/* ---------- messages ---------- */

static uint32_t name_hash(const char *n)
{
    uint32_t h = 2166136261u; /* FNV-1a over the lower-case name */
    for (; *n; n++)
        h = (h ^ (uint32_t)(unsigned char)tolower((unsigned char)*n)) * 16777619u;
    return h;
}

static vuf_msg_def *find_msg_name(const vuf_spec *s, int chan, const char *name)
{
    if (s->indexed && chan == VUF_CHAN_COUNT) {
        /* every name (current and former) of both channels, front-end first */
        for (uint32_t i = name_hash(name) % NAME_SLOTS, k = 0; k < NAME_SLOTS;
             k++, i = (i + 1) % NAME_SLOTS) {
            if (!s->names[i].name)
                return NULL;
            if (!strcasecmp(s->names[i].name, name))
                return s->names[i].msg;
        }
        return NULL;
    }
    if (s->indexed) {
        vuf_msg_def *m = find_msg_name(s, VUF_CHAN_COUNT, name);
        if (!m || (int)m->channel == chan)
            return m;
        /* the name belongs to the other channel first; look here too */
    }
    for (int c = 0; c < VUF_CHAN_COUNT; c++) {
        if (chan != VUF_CHAN_COUNT && chan != c)
            continue;
        for (size_t i = 0; i < s->nmsgs[c]; i++) {
            vuf_msg_def *m = s->msgs[c][i];
            if (!strcasecmp(m->name, name))
                return m;
            for (const char *const *fn = m->former; *fn; fn++)
                if (!strcasecmp(*fn, name))
                    return m;
        }
    }
    return NULL;
}

static bool parse_msg_head(parser *p, const line_t *ln)
{
    vuf_spec *s = p->spec;
    vuf_channel c;
    if (ln->n < 2 || vuf_channel_parse(ln->tok[1].s, &c))
        return TERR(p, ln, 1, "bad channel '%s' (expected frontend or backend)",
                    ln->n > 1 ? ln->tok[1].s : "");
    uint64_t id;
    if (!tok_u64(p, ln, 2, 0xffffffffu, &id, "message id"))
        return false;
    if (id == 0)
        return TERR(p, ln, 2, "message id 0 is reserved as invalid (expected 1 or more)");
    const char *name = tok_name(p, ln, 3, "message name");
    if (!name)
        return false;
    for (size_t i = 0; i < s->nmsgs[c]; i++)
        if (s->msgs[c][i]->id == id)
            return TERR(p, ln, 2, "duplicate (%s, %llu): already '%s' at line %u",
                        vuf_channel_name(c), (unsigned long long)id, s->msgs[c][i]->name,
                        s->msgs[c][i]->line);
    vuf_msg_def *other = find_msg_name(s, VUF_CHAN_COUNT, name);
    if (other)
        return TERR(p, ln, 3, "duplicate message name '%s' (already at line %u)", name,
                    other->line);
    if (s->nmsgs[c] == MAX_MSGS)
        return TERR(p, ln, 0, "too many messages (at most %d per channel)", MAX_MSGS);
    vuf_msg_def *m = arena_alloc(&s->arena, sizeof *m);
    if (!m)
        return perr(p, ln->lineno, 1, "out of memory");
    m->channel = c;
    m->id = (uint32_t)id;
    m->name = name;
    m->former = empty_names;
    m->notes = empty_names;
    m->section = "";
    m->line = ln->lineno;
    m->initiator = c == VUF_CHAN_BACKEND ? VUF_SIDE_BACKEND : VUF_SIDE_FRONTEND;
    m->reply = VUF_REPLY_ACK;
    for (size_t i = 4; i < ln->n; i++) {
        if (!strcmp(ln->tok[i].s, "provisional"))
            m->provisional = true;
        else if (!strcmp(ln->tok[i].s, "deprecated"))
            m->deprecated = true;
        else
            return TERR(p, ln, i, "unexpected '%s' (expected provisional or deprecated)",
                        ln->tok[i].s);
    }
    s->msgs[c][s->nmsgs[c]++] = m;
    return true;
}

static bool parse_fd_kind(parser *p, const line_t *ln, size_t i, vuf_fdkind_rule *out)
{
    static const struct {
        const char *n;
        vuf_fdkind_rule k;
    } kinds[] = {{"any", VUF_FDK_ANY},
                 {"eventfd", VUF_FDK_EVENTFD},
                 {"shm", VUF_FDK_SHM},
                 {"socket", VUF_FDK_SOCKET}};
    if (i >= ln->n) {
        *out = VUF_FDK_ANY;
        return true;
    }
    for (size_t k = 0; k < sizeof kinds / sizeof kinds[0]; k++)
        if (!strcmp(ln->tok[i].s, kinds[k].n)) {
            *out = kinds[k].k;
            return true;
        }
    return TERR(p, ln, i, "bad fd kind '%s' (expected eventfd, shm, socket or any)", ln->tok[i].s);
}

static bool parse_fd_rule(parser *p, const line_t *ln, const vuf_payload_def *pl, vuf_fd_rule *r)
{
    memset(r, 0, sizeof *r);
    if (ln->n < 2)
        return TERR(p, ln, 1, "missing fd rule (expected N, A..B, count:FIELD or nofd:FIELD:BIT)");
    const char *t = ln->tok[1].s;
    char buf[128];
    snprintf(buf, sizeof buf, "%s", t);
    uint64_t a, b;
    if (!strncmp(buf, "count:", 6)) {
        r->kind = VUF_FDRULE_COUNT;
        if (!vuf_field_resolve(pl, buf + 6, &r->ref))
            return TERR(p, ln, 1, "unknown field '%s' in the request payload", buf + 6);
        r->ref.path = arena_strdup(&p->spec->arena, buf + 6);
    } else if (!strncmp(buf, "nofd:", 5)) {
        char *c2 = strrchr(buf + 5, ':');
        if (!c2)
            return TERR(p, ln, 1, "bad nofd rule '%s' (expected nofd:FIELD:BIT)", t);
        *c2 = 0;
        if (!vuf_parse_u64(c2 + 1, &a) || a > 63)
            return TERR(p, ln, 1, "bad bit in '%s' (expected 0..63)", t);
        r->kind = VUF_FDRULE_NOFD;
        r->a = (uint32_t)a;
        if (!vuf_field_resolve(pl, buf + 5, &r->ref))
            return TERR(p, ln, 1, "unknown field '%s' in the payload", buf + 5);
        r->ref.path = arena_strdup(&p->spec->arena, buf + 5);
    } else if (strstr(buf, "..")) {
        char *dd = strstr(buf, "..");
        *dd = 0;
        if (!vuf_parse_u64(buf, &a) || !vuf_parse_u64(dd + 2, &b) || a > b || b > 255)
            return TERR(p, ln, 1, "bad fd range '%s' (expected A..B with A <= B <= 255)", t);
        r->kind = VUF_FDRULE_RANGE;
        r->a = (uint32_t)a;
        r->b = (uint32_t)b;
    } else if (vuf_parse_u64(buf, &a) && a <= 255) {
        r->kind = VUF_FDRULE_EXACT;
        r->a = r->b = (uint32_t)a;
    } else {
        return TERR(p, ln, 1, "bad fd rule '%s' (expected N, A..B, count:FIELD or nofd:FIELD:BIT)",
                    t);
    }
    size_t i = 2;
    if (i < ln->n && strcmp(ln->tok[i].s, "should")) {
        if (!parse_fd_kind(p, ln, i, &r->fdkind))
            return false;
        i++;
    }
    if (i < ln->n) {
        if (strcmp(ln->tok[i].s, "should"))
            return TERR(p, ln, i, "unexpected '%s' (expected 'should N')", ln->tok[i].s);
        uint64_t sh;
        if (!tok_u64(p, ln, i + 1, 255, &sh, "recommended fd count"))
            return false;
        r->has_should = true;
        r->should = (uint32_t)sh;
        if (i + 2 < ln->n)
            return TERR(p, ln, i + 2, "unexpected '%s'", ln->tok[i + 2].s);
    }
    return true;
}

static bool resolve_payload_tok(parser *p, const line_t *ln, size_t i, const vuf_payload_def **out)
{
    if (i >= ln->n)
        return TERR(p, ln, i, "missing payload name (expected none, empty or a payload)");
    if (!strcmp(ln->tok[i].s, "none")) {
        *out = NULL;
        return true;
    }
    *out = find_payload(p->spec, ln->tok[i].s);
    if (!*out)
        return TERR(p, ln, i, "unknown payload '%s' (expected none, empty or a declared payload)",
                    ln->tok[i].s);
    if (i + 1 < ln->n)
        return TERR(p, ln, i + 1, "unexpected '%s' (expected end of line)", ln->tok[i + 1].s);
    return true;
}

static bool gate_features(parser *p, const line_t *ln, vuf_space sp, uint64_t *mask)
{
    if (ln->n < 3)
        return TERR(p, ln, 2, "missing feature name");
    for (size_t i = 2; i < ln->n; i++) {
        vuf_feature_def *f = find_feature(p->spec, sp, ln->tok[i].s);
        if (!f)
            return TERR(p, ln, i, "unknown %s feature '%s'",
                        sp == VUF_SPACE_PROTOCOL ? "protocol" : "virtio", ln->tok[i].s);
        *mask |= 1ull << f->bit;
    }
    return true;
}

static bool parse_check(parser *p, const line_t *ln, vuf_msg_def *m, vuf_value_check *c)
{
    if (ln->n < 4)
        return TERR(p, ln, ln->n,
                    "incomplete check (expected 'check FIELD in V,V' or 'check "
                    "FIELD mask M')");
    if (!m->request)
        return TERR(p, ln, 1, "check on a message without request payload");
    if (!vuf_field_resolve(m->request, ln->tok[1].s, &c->ref))
        return TERR(p, ln, 1, "unknown field '%s' in payload '%s'", ln->tok[1].s, m->request->name);
    uint64_t vals[64];
    size_t nv = 0;
    if (!strcmp(ln->tok[2].s, "in")) {
        c->kind = VUF_CHECK_IN;
    } else if (!strcmp(ln->tok[2].s, "mask")) {
        c->kind = VUF_CHECK_MASK;
    } else {
        return TERR(p, ln, 2, "bad check '%s' (expected in or mask)", ln->tok[2].s);
    }
    char buf[512];
    snprintf(buf, sizeof buf, "%s", ln->tok[3].s);
    for (char *save = NULL, *t = strtok_r(buf, ",", &save); t; t = strtok_r(NULL, ",", &save)) {
        if (nv == 64 || !vuf_parse_u64(t, &vals[nv]))
            return TERR(p, ln, 3, "bad value '%s' (expected numbers separated by commas)", t);
        nv++;
    }
    if (nv == 0 || (c->kind == VUF_CHECK_MASK && nv != 1))
        return TERR(p, ln, 3, "bad value list");
    if (ln->n > 4)
        return TERR(p, ln, 4, "unexpected '%s'", ln->tok[4].s);
    uint64_t *v = arena_alloc(&p->spec->arena, nv * sizeof *v);
    if (!v)
        return perr(p, ln->lineno, 1, "out of memory");
    memcpy(v, vals, nv * sizeof *v);
    c->values = v;
    c->nvalues = nv;
    c->ref.path = ln->tok[1].s;
    return true;
}

static bool parse_msg_body(parser *p, size_t *li)
{
    vuf_spec *s = p->spec;
    const line_t *hd = &p->lines[*li];
    vuf_channel c;
    vuf_channel_parse(hd->tok[1].s, &c);
    vuf_msg_def *m = find_msg_name(s, c, hd->tok[3].s);
    bool have_request = false, have_reply = false;
    const vuf_msg_def *after[32];
    size_t nafter = 0;
    size_t nchecks = 0;
    const char *notes[32];
    size_t nnotes = 0;
    const line_t *fds_line = NULL, *rfds_line = NULL, *vring_line = NULL, *checks_at[32];
    for ((*li)++;; (*li)++) {
        if (*li >= p->nlines)
            return perr(p, hd->lineno, 1, "message '%s' has no 'end'", m->name);
        const line_t *ln = &p->lines[*li];
        const char *kw = ln->tok[0].s;
        if (!strcmp(kw, "end"))
            break;
        if (!strcmp(kw, "former")) {
            size_t i = 1;
            m->former = collect_names(p, ln, &i, "", "", "");
            if (!m->former)
                return false;
            for (const char *const *fn = m->former; *fn; fn++) {
                vuf_msg_def *o = find_msg_name(s, VUF_CHAN_COUNT, *fn);
                if (o && o != m)
                    return TERR(p, ln, 1, "former name '%s' is already message '%s'", *fn, o->name);
            }
        } else if (!strcmp(kw, "initiator")) {
            if (ln->n != 2 || (strcmp(ln->tok[1].s, "frontend") && strcmp(ln->tok[1].s, "backend")))
                return TERR(p, ln, 1, "bad initiator (expected frontend or backend)");
            m->initiator = ln->tok[1].s[0] == 'b' ? VUF_SIDE_BACKEND : VUF_SIDE_FRONTEND;
        } else if (!strcmp(kw, "request")) {
            if (!resolve_payload_tok(p, ln, 1, &m->request))
                return false;
            have_request = true;
        } else if (!strcmp(kw, "size")) {
            if (ln->n != 2)
                return TERR(p, ln, 1, "expected 'size exact|min|any'");
            if (!strcmp(ln->tok[1].s, "exact"))
                m->size_rule = VUF_SIZE_EXACT;
            else if (!strcmp(ln->tok[1].s, "min"))
                m->size_rule = VUF_SIZE_MIN;
            else if (!strcmp(ln->tok[1].s, "any"))
                m->size_rule = VUF_SIZE_ANY;
            else
                return TERR(p, ln, 1, "bad size rule '%s' (expected exact, min or any)",
                            ln->tok[1].s);
        } else if (!strcmp(kw, "reply")) {
            if (ln->n != 2)
                return TERR(p, ln, 1, "expected 'reply none|ack|always'");
            if (!strcmp(ln->tok[1].s, "none"))
                m->reply = VUF_REPLY_NONE;
            else if (!strcmp(ln->tok[1].s, "ack"))
                m->reply = VUF_REPLY_ACK;
            else if (!strcmp(ln->tok[1].s, "always"))
                m->reply = VUF_REPLY_ALWAYS;
            else
                return TERR(p, ln, 1, "bad reply rule '%s' (expected none, ack or always)",
                            ln->tok[1].s);
            have_reply = true;
        } else if (!strcmp(kw, "reply-always-if")) {
            if (ln->n != 2)
                return TERR(p, ln, 1, "expected 'reply-always-if protocol:F' or 'after:MSG'");
            const char *t = ln->tok[1].s;
            if (!strncmp(t, "protocol:", 9)) {
                vuf_feature_def *f = find_feature(s, VUF_SPACE_PROTOCOL, t + 9);
                if (!f)
                    return TERR(p, ln, 1, "unknown protocol feature '%s'", t + 9);
                m->reply_cond = VUF_COND_PROTOCOL;
                m->reply_cond_bit = f->bit;
            } else if (!strncmp(t, "after:", 6)) {
                const vuf_msg_def *o = find_msg_name(s, c, t + 6);
                if (!o)
                    return TERR(p, ln, 1, "unknown message '%s' on channel %s", t + 6,
                                vuf_channel_name(c));
                m->reply_cond = VUF_COND_AFTER;
                m->reply_cond_after = o;
            } else {
                return TERR(p, ln, 1, "bad condition '%s' (expected protocol:F or after:MSG)", t);
            }
        } else if (!strcmp(kw, "reply-payload")) {
            if (!resolve_payload_tok(p, ln, 1, &m->reply_payload))
                return false;
        } else if (!strcmp(kw, "reply-size")) {
            if (ln->n != 2 || strcmp(ln->tok[1].s, "request"))
                return TERR(p, ln, 1, "expected 'reply-size request'");
            m->reply_size_matches_request = true;
        } else if (!strcmp(kw, "reply-error")) {
            uint64_t v;
            if (ln->n != 2)
                return TERR(p, ln, 1, "expected 'reply-error VALUE' or 'reply-error empty'");
            if (!strcmp(ln->tok[1].s, "empty")) {
                m->reply_error = VUF_RERR_EMPTY;
            } else if (vuf_parse_u64(ln->tok[1].s, &v) && v != 0) {
                m->reply_error = VUF_RERR_U64;
                m->reply_error_value = v;
            } else {
                return TERR(p, ln, 1, "bad reply error '%s' (expected a non-zero u64 or empty)",
                            ln->tok[1].s);
            }
        } else if (!strcmp(kw, "fds")) {
            fds_line = ln;
        } else if (!strcmp(kw, "reply-fds")) {
            rfds_line = ln;
        } else if (!strcmp(kw, "gate")) {
            if (ln->n < 3)
                return TERR(p, ln, 1, "expected 'gate protocol|virtio|bit30 ...'");
            if (!strcmp(ln->tok[1].s, "protocol")) {
                if (!gate_features(p, ln, VUF_SPACE_PROTOCOL, &m->gate_protocol))
                    return false;
            } else if (!strcmp(ln->tok[1].s, "virtio")) {
                if (!gate_features(p, ln, VUF_SPACE_VIRTIO, &m->gate_virtio))
                    return false;
            } else if (!strcmp(ln->tok[1].s, "bit30")) {
                if (ln->n != 3)
                    return TERR(p, ln, 3, "unexpected '%s'", ln->tok[3].s);
                if (!strcmp(ln->tok[2].s, "offered"))
                    m->gate_bit30 = VUF_BIT30_OFFERED;
                else if (!strcmp(ln->tok[2].s, "negotiated"))
                    m->gate_bit30 = VUF_BIT30_NEGOTIATED;
                else
                    return TERR(p, ln, 2, "bad bit30 gate '%s' (expected offered or negotiated)",
                                ln->tok[2].s);
            } else {
                return TERR(p, ln, 1, "bad gate kind '%s' (expected protocol, virtio or bit30)",
                            ln->tok[1].s);
            }
        } else if (!strcmp(kw, "after")) {
            for (size_t i = 1; i < ln->n; i++) {
                const vuf_msg_def *o = find_msg_name(s, c, ln->tok[i].s);
                if (!o)
                    return TERR(p, ln, i, "unknown message '%s' on channel %s", ln->tok[i].s,
                                vuf_channel_name(c));
                if (nafter == 32)
                    return TERR(p, ln, i, "too many prerequisites");
                after[nafter++] = o;
            }
            if (ln->n < 2)
                return TERR(p, ln, 1, "missing message name");
        } else if (!strcmp(kw, "vring")) {
            vring_line = ln;
        } else if (!strcmp(kw, "check")) {
            if (nchecks == 32)
                return TERR(p, ln, 0, "too many checks");
            checks_at[nchecks++] = ln;
        } else if (!strcmp(kw, "section") || !strcmp(kw, "note")) {
            if (ln->n != 2)
                return TERR(p, ln, 1, "'%s' needs one quoted string", kw);
            if (kw[0] == 's') {
                m->section = ln->tok[1].s;
            } else {
                if (nnotes == 31)
                    return TERR(p, ln, 0, "too many notes");
                notes[nnotes++] = ln->tok[1].s;
            }
        } else {
            return TERR(
                p, ln, 0,
                "unknown statement '%s' (expected former, initiator, request, size, "
                "reply, reply-always-if, reply-payload, reply-size, reply-error, fds, reply-fds, "
                "gate, "
                "after, vring, check, section, note or end)",
                kw);
        }
    }
    if (!have_request)
        return perr(p, hd->lineno, 1, "message '%s' has no 'request' statement", m->name);
    if (!have_reply)
        return perr(p, hd->lineno, 1, "message '%s' has no 'reply' statement", m->name);
    /* statements that resolve fields of the payloads, whatever their order */
    if (fds_line && !parse_fd_rule(p, fds_line, m->request, &m->fds))
        return false;
    if (rfds_line && !parse_fd_rule(p, rfds_line, m->reply_payload, &m->reply_fds))
        return false;
    if (vring_line) {
        if (vring_line->n != 2)
            return TERR(p, vring_line, 1, "expected 'vring FIELD[&MASK]'");
        if (!vuf_field_resolve(m->request, vring_line->tok[1].s, &m->vring))
            return TERR(p, vring_line, 1, "unknown field '%s' in the request payload",
                        vring_line->tok[1].s);
    }
    vuf_value_check *cv = arena_alloc(&s->arena, (nchecks + 1) * sizeof *cv);
    const vuf_msg_def **av = arena_alloc(&s->arena, (nafter + 1) * sizeof *av);
    const char **nv = arena_alloc(&s->arena, (nnotes + 1) * sizeof *nv);
    if (!cv || !av || !nv)
        return perr(p, hd->lineno, 1, "out of memory");
    for (size_t i = 0; i < nchecks; i++) {
        if (!parse_check(p, checks_at[i], m, &cv[i]))
            return false;
    }
    memcpy(av, after, nafter * sizeof *av);
    memcpy(nv, notes, nnotes * sizeof *nv);
    m->checks = cv;
    m->nchecks = nchecks;
    m->after = av;
    m->nafter = nafter;
    m->notes = nv;
    return true;
}

static bool parse_channel(parser *p, const line_t *ln)
{
    vuf_spec *s = p->spec;
    vuf_channel c;
    if (ln->n < 2 || vuf_channel_parse(ln->tok[1].s, &c))
        return TERR(p, ln, 1, "bad channel (expected frontend or backend)");
    if (s->chan_declared[c])
        return TERR(p, ln, 1, "channel '%s' declared twice", ln->tok[1].s);
    vuf_channel_def *d = &s->chan[c];
    d->initiator = c == VUF_CHAN_BACKEND ? VUF_SIDE_BACKEND : VUF_SIDE_FRONTEND;
    d->max_fds = 8;
    d->section = "";
    for (size_t i = 2; i < ln->n; i += 2) {
        const char *kw = ln->tok[i].s;
        if (i + 1 >= ln->n)
            return TERR(p, ln, i, "'%s' needs a value", kw);
        const char *v = ln->tok[i + 1].s;
        if (!strcmp(kw, "initiator")) {
            if (strcmp(v, "frontend") && strcmp(v, "backend"))
                return TERR(p, ln, i + 1, "bad initiator (expected frontend or backend)");
            d->initiator = v[0] == 'b' ? VUF_SIDE_BACKEND : VUF_SIDE_FRONTEND;
        } else if (!strcmp(kw, "max-fds")) {
            uint64_t n;
            if (!tok_u64(p, ln, i + 1, 255, &n, "max-fds"))
                return false;
            d->max_fds = (uint32_t)n;
        } else if (!strcmp(kw, "fd-gate") || !strcmp(kw, "requires")) {
            vuf_feature_def *f = find_feature(s, VUF_SPACE_PROTOCOL, v);
            if (!f)
                return TERR(p, ln, i + 1, "unknown protocol feature '%s'", v);
            if (kw[0] == 'f') {
                d->has_fd_gate = true;
                d->fd_gate_bit = f->bit;
            } else {
                d->requires |= 1ull << f->bit;
            }
        } else if (!strcmp(kw, "section")) {
            d->section = v;
        } else {
            return TERR(p, ln, i,
                        "unexpected '%s' (expected initiator, max-fds, fd-gate, requires or "
                        "section)",
                        kw);
        }
    }
    s->chan_declared[c] = true;
    return true;
}

static int cmp_msg(const void *a, const void *b)
{
    const vuf_msg_def *x = *(vuf_msg_def *const *)a, *y = *(vuf_msg_def *const *)b;
    return x->id < y->id ? -1 : x->id > y->id;
}

static bool skip_block(parser *p, size_t *li)
{
    const line_t *hd = &p->lines[*li];
    for ((*li)++; *li < p->nlines; (*li)++)
        if (!strcmp(p->lines[*li].tok[0].s, "end"))
            return true;
    return perr(p, hd->lineno, 1, "'%s' block has no 'end'", hd->tok[0].s);
}

static void index_name(vuf_spec *s, const char *name, vuf_msg_def *m)
{
    for (uint32_t i = name_hash(name) % NAME_SLOTS, k = 0; k < NAME_SLOTS;
         k++, i = (i + 1) % NAME_SLOTS) {
        if (!s->names[i].name) {
            s->names[i].name = name;
            s->names[i].msg = m;
            return;
        }
        if (!strcasecmp(s->names[i].name, name))
            return; /* the first one (front-end channel) wins */
    }
}

/* O(1) lookups for the hot paths (codec, checker, device, harness). */
static void build_indexes(vuf_spec *s)
{
    for (size_t i = 0; i < s->nfeatures; i++) {
        vuf_feature_def *f = s->features[i];
        if (f->bit < 64 && (unsigned)f->space < 2 && !s->by_bit[f->space][f->bit])
            s->by_bit[f->space][f->bit] = f;
    }
    size_t names = 0;
    for (int c = 0; c < VUF_CHAN_COUNT; c++)
        for (size_t i = 0; i < s->nmsgs[c]; i++) {
            names++;
            for (const char *const *fn = s->msgs[c][i]->former; *fn; fn++)
                names++;
        }
    if (names > NAME_SLOTS / 2)
        return; /* a huge table: linear lookups */
    for (int c = 0; c < VUF_CHAN_COUNT; c++)
        for (size_t i = 0; i < s->nmsgs[c]; i++) {
            vuf_msg_def *m = s->msgs[c][i];
            index_name(s, m->name, m);
            for (const char *const *fn = m->former; *fn; fn++)
                index_name(s, *fn, m);
        }
    s->indexed = true;
}

vuf_spec *vuf_spec_parse(const char *text, size_t len, const char *filename, vuf_diag *diag)
{
    vuf_spec *s = calloc(1, sizeof *s);
    if (!s)
        return NULL;
    s->filename = strdup(filename ? filename : "<spec>");
    parser p = {.spec = s, .diag = diag};
    if (diag)
        memset(diag, 0, sizeof *diag);
    if (!s->filename || !tokenize(&p, text, len))
        goto fail;
    /* pass 1: features and payloads */
    for (size_t li = 0; li < p.nlines && !p.failed; li++) {
        const line_t *ln = &p.lines[li];
        const char *kw = ln->tok[0].s;
        if (!strcmp(kw, "feature"))
            parse_feature_head(&p, ln);
        else if (!strcmp(kw, "payload"))
            parse_payload(&p, &li);
        else if (!strcmp(kw, "message"))
            skip_block(&p, &li);
        else if (!strcmp(kw, "channel"))
            ;
        else
            TERR(&p, ln, 0, "unexpected '%s' (expected channel, feature, payload or message)", kw);
    }
    /* pass 2: feature dependencies and message headers */
    for (size_t li = 0; li < p.nlines && !p.failed; li++) {
        const line_t *ln = &p.lines[li];
        const char *kw = ln->tok[0].s;
        if (!strcmp(kw, "feature"))
            parse_feature_requires(&p, ln);
        else if (!strcmp(kw, "payload"))
            skip_block(&p, &li);
        else if (!strcmp(kw, "message")) {
            if (parse_msg_head(&p, ln))
                skip_block(&p, &li);
        }
    }
    /* pass 3: channels and message bodies */
    for (size_t li = 0; li < p.nlines && !p.failed; li++) {
        const line_t *ln = &p.lines[li];
        const char *kw = ln->tok[0].s;
        if (!strcmp(kw, "channel"))
            parse_channel(&p, ln);
        else if (!strcmp(kw, "payload"))
            skip_block(&p, &li);
        else if (!strcmp(kw, "message"))
            parse_msg_body(&p, &li);
    }
    if (!p.failed) {
        for (int c = 0; c < VUF_CHAN_COUNT; c++) {
            if (!s->chan_declared[c]) {
                perr(&p, 1, 1, "channel '%s' is not declared (expected a 'channel %s ...' line)",
                     vuf_channel_name((vuf_channel)c), vuf_channel_name((vuf_channel)c));
                break;
            }
            qsort(s->msgs[c], s->nmsgs[c], sizeof(vuf_msg_def *), cmp_msg);
        }
    }
    free(p.lines);
    if (p.failed)
        goto fail_nolines;
    build_indexes(s);
    return s;
fail:
    free(p.lines);
fail_nolines:
    vuf_spec_free(s);
    return NULL;
}

void vuf_spec_free(vuf_spec *s)
{
    if (!s)
        return;
    arena_free(s->arena);
    free(s->filename);
    free(s);
}

vuf_spec *vuf_spec_load_file(const char *path, vuf_diag *diag)
{
    size_t len;
    char err[160];
    char *buf = (char *)vuf_read_file(path, VUF_SPEC_MAX_FILE, &len, err, sizeof err);
    if (!buf) {
        if (diag) {
            memset(diag, 0, sizeof *diag);
            snprintf(diag->file, sizeof diag->file, "%s", path);
            snprintf(diag->text, sizeof diag->text, "%s", err);
        }
        return NULL;
    }
    vuf_spec *s = vuf_spec_parse(buf, len, path, diag);
    free(buf);
    return s;
}

/* ---------- queries ---------- */

const char *vuf_spec_filename(const vuf_spec *s)
{
    return s->filename;
}

const vuf_channel_def *vuf_spec_channel(const vuf_spec *s, vuf_channel c)
{
    return c < VUF_CHAN_COUNT ? &s->chan[c] : NULL;
}

size_t vuf_spec_msg_count(const vuf_spec *s, vuf_channel c)
{
    return c < VUF_CHAN_COUNT ? s->nmsgs[c] : 0;
}

const vuf_msg_def *vuf_spec_msg_at(const vuf_spec *s, vuf_channel c, size_t i)
{
    return c < VUF_CHAN_COUNT && i < s->nmsgs[c] ? s->msgs[c][i] : NULL;
}

const vuf_msg_def *vuf_spec_msg(const vuf_spec *s, vuf_channel c, uint32_t id)
{
    if (c >= VUF_CHAN_COUNT)
        return NULL;
    size_t lo = 0, hi = s->nmsgs[c];
    while (lo < hi) {
        size_t mid = (lo + hi) / 2;
        uint32_t v = s->msgs[c][mid]->id;
        if (v == id)
            return s->msgs[c][mid];
        if (v < id)
            lo = mid + 1;
        else
            hi = mid;
    }
    return NULL;
}

const vuf_msg_def *vuf_spec_msg_by_name(const vuf_spec *s, vuf_channel c, const char *name)
{
    return find_msg_name(s, (int)c, name);
}

size_t vuf_spec_feature_count(const vuf_spec *s)
{
    return s->nfeatures;
}

const vuf_feature_def *vuf_spec_feature_at(const vuf_spec *s, size_t i)
{
    return i < s->nfeatures ? s->features[i] : NULL;
}

const vuf_feature_def *vuf_spec_feature(const vuf_spec *s, vuf_space sp, unsigned bit)
{
    if (s->indexed)
        return bit < 64 && (unsigned)sp < 2 ? s->by_bit[sp][bit] : NULL;
    for (size_t i = 0; i < s->nfeatures; i++)
        if (s->features[i]->space == sp && s->features[i]->bit == bit)
            return s->features[i];
    return NULL;
}

const vuf_feature_def *vuf_spec_feature_by_name(const vuf_spec *s, vuf_space sp, const char *n)
{
    return find_feature(s, sp, n);
}

int vuf_spec_feature_bit(const vuf_spec *s, vuf_space sp, const char *name)
{
    const vuf_feature_def *f = find_feature(s, sp, name);
    return f ? (int)f->bit : -1;
}

size_t vuf_spec_payload_count(const vuf_spec *s)
{
    return s->npayloads;
}

const vuf_payload_def *vuf_spec_payload_at(const vuf_spec *s, size_t i)
{
    return i < s->npayloads ? s->payloads[i] : NULL;
}

const vuf_payload_def *vuf_spec_payload(const vuf_spec *s, const char *name)
{
    return find_payload(s, name);
}

/* ---------- default table and open/release ---------- */

extern const char vuf_spec_default_data[];
extern const size_t vuf_spec_default_size;

const char *vuf_spec_default_text(size_t *len)
{
    if (len)
        *len = vuf_spec_default_size;
    return vuf_spec_default_data;
}

const vuf_spec *vuf_spec_default(void)
{
    static vuf_spec *def;
    if (!def) {
        def = vuf_spec_parse(vuf_spec_default_data, vuf_spec_default_size,
                             "spec/vhost-user.spec (built-in)", NULL);
        if (def)
            def->refs = -1;
    }
    return def;
}

typedef struct {
    vuf_diag *diag;
    bool have;
} lint_first;

static void lint_keep_first(void *ctx, const vuf_diag *d, bool is_error)
{
    lint_first *f = ctx;
    if (is_error && !f->have && f->diag) {
        *f->diag = *d;
        f->have = true;
    }
}

const vuf_spec *vuf_spec_open(const char *path, vuf_diag *diag)
{
    if (!path) {
        const vuf_spec *d = vuf_spec_default();
        if (!d && diag) {
            memset(diag, 0, sizeof *diag);
            snprintf(diag->file, sizeof diag->file, "built-in spec");
            snprintf(diag->text, sizeof diag->text, "the built-in table does not parse");
        }
        return d;
    }
    vuf_spec *s = vuf_spec_load_file(path, diag);
    if (!s)
        return NULL;
    s->refs = 1;
    /* a table with lint errors is refused: every tool reads it the same way */
    lint_first fe = {.diag = diag};
    if (vuf_spec_lint(s, lint_keep_first, &fe)) {
        vuf_spec_free(s);
        return NULL;
    }
    return s;
}

void vuf_spec_release(const vuf_spec *s)
{
    if (s && s->refs > 0)
        vuf_spec_free((vuf_spec *)s);
}
