/* SPDX-License-Identifier: Apache-2.0 */
/* The table's text format (spec/README.md), read into the model of
 * spec_internal.h. I/O-free: it takes a buffer and a file name for
 * diagnostics.
 *
 * The text is first split into lines of tokens, then read in passes so that
 * a name can be used before the line that declares it:
 *   1. features, devices and payloads (payloads may only use payloads
 *      declared above);
 *   2. feature dependencies and message headers (channel, id, name), so
 *      messages can name each other;
 *   3. channel lines and message bodies.
 * Statements are dispatched through keyword tables. The first error stops
 * the load and is reported as FILE:LINE:COL. */
#include "spec_internal.h"
#include "vuf_util.h"

#include <ctype.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---------- tokens ---------- */

#define MAX_TOKENS 64

typedef struct {
    const char *s; /* NUL-terminated copy, quotes and escapes removed */
    unsigned col;
    bool quoted;
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

/* One token starting at text[j] (not a blank): a quoted string or a word. */
static bool read_token(parser *p, const char *text, size_t *jp, size_t end, unsigned lineno,
                       size_t start, token *out)
{
    char buf[1024];
    size_t j = *jp, bl = 0;
    unsigned col = (unsigned)(j - start + 1);
    out->quoted = text[j] == '"';
    if (out->quoted) {
        bool closed = false;
        for (j++; j < end;) {
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
                return perr(p, lineno, col, "string too long (at most %zu bytes)", sizeof buf - 1);
            buf[bl++] = d;
        }
        if (!closed)
            return perr(p, lineno, col, "unterminated string (expected '\"')");
    } else {
        while (j < end && text[j] != ' ' && text[j] != '\t' && text[j] != '\r' && text[j] != '#') {
            if (bl + 1 >= sizeof buf)
                return perr(p, lineno, col, "token too long");
            buf[bl++] = text[j++];
        }
    }
    buf[bl] = 0;
    out->s = vuf_arena_strdup(&p->spec->arena, buf);
    out->col = col;
    *jp = j;
    return out->s ? true : perr(p, lineno, col, "out of memory");
}

static bool tokenize(parser *p, const char *text, size_t len)
{
    size_t cap = 64;
    p->lines = calloc(cap, sizeof(line_t));
    if (!p->lines)
        return perr(p, 0, 0, "out of memory");
    unsigned lineno = 1;
    for (size_t i = 0; i < len; lineno++) {
        size_t start = i;
        while (i < len && text[i] != '\n')
            i++;
        size_t end = i;
        if (i < len)
            i++;
        line_t ln = {.lineno = lineno};
        for (size_t j = start; j < end;) {
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
            if (!read_token(p, text, &j, end, lineno, start, &ln.tok[ln.n]))
                return false;
            ln.n++;
        }
        if (!ln.n)
            continue;
        if (p->nlines == cap) {
            cap *= 2;
            line_t *nl = realloc(p->lines, cap * sizeof(line_t));
            if (!nl)
                return perr(p, lineno, 1, "out of memory");
            p->lines = nl;
        }
        p->lines[p->nlines++] = ln;
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

static bool is_verb(const token *t)
{
    vuf_verb v;
    return !t->quoted && !vuf_verb_parse(t->s, &v);
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

/* A quoted string at i ("needs a quoted string" otherwise). */
static const char *tok_string(parser *p, const line_t *ln, size_t i, const char *what)
{
    if (i >= ln->n || !ln->tok[i].quoted) {
        TERR(p, ln, i, "'%s' needs a quoted string", what);
        return NULL;
    }
    return ln->tok[i].s;
}

/* An optional quote `VERB "SENTENCE"` at *i. */
static bool opt_quote(parser *p, const line_t *ln, size_t *i, vuf_quote *q)
{
    if (*i >= ln->n || !is_verb(&ln->tok[*i]))
        return true;
    vuf_verb_parse(ln->tok[*i].s, &q->verb);
    const char *text = tok_string(p, ln, *i + 1, ln->tok[*i].s);
    if (!text)
        return false;
    q->text = text;
    q->line = ln->lineno;
    *i += 2;
    return true;
}

static bool end_of_line(parser *p, const line_t *ln, size_t i, const char *expected)
{
    if (i < ln->n)
        return TERR(p, ln, i, "unexpected '%s' (expected %s)", ln->tok[i].s, expected);
    return true;
}

static bool is_one_of(const char *s, const char *const *kw)
{
    for (; *kw; kw++)
        if (!strcmp(s, *kw))
            return true;
    return false;
}

/* Names from *i up to a keyword of `stop` or a verb; NULL-terminated. */
static const char *const *collect_names(parser *p, const line_t *ln, size_t *i,
                                        const char *const *stop)
{
    size_t start = *i, n = 0;
    while (*i < ln->n && !is_one_of(ln->tok[*i].s, stop) && !is_verb(&ln->tok[*i])) {
        if (!tok_name(p, ln, *i, "name"))
            return NULL;
        (*i)++;
        n++;
    }
    const char **v = vuf_arena_alloc(&p->spec->arena, (n + 1) * sizeof(char *));
    if (!v) {
        perr(p, ln->lineno, 1, "out of memory");
        return NULL;
    }
    for (size_t k = 0; k < n; k++)
        v[k] = ln->tok[start + k].s;
    return v;
}

static const char *const empty_names[] = {NULL};

static bool alloc_fail(parser *p, const line_t *ln)
{
    return perr(p, ln->lineno, 1, "out of memory");
}

/* ---------- blocks ---------- */

static const char *const block_keywords[] = {"channel", "feature", "device",
                                             "payload", "message", NULL};

/* The line index of the 'end' of the block at *li. A top-level keyword
 * before it means the block is not closed: the error names that block. */
static bool block_end(parser *p, size_t li, size_t *end)
{
    const line_t *hd = &p->lines[li];
    for (size_t k = li + 1; k < p->nlines; k++) {
        const char *kw = p->lines[k].tok[0].s;
        if (!strcmp(kw, "end")) {
            *end = k;
            return true;
        }
        if (is_one_of(kw, block_keywords))
            return perr(p, hd->lineno, hd->tok[0].col,
                        "%s '%s' has no 'end' (expected 'end' before the %s at line %u)",
                        hd->tok[0].s,
                        hd->n > 3 && !strcmp(hd->tok[0].s, "message") ? hd->tok[3].s
                        : hd->n > 1                                   ? hd->tok[1].s
                                                                      : "",
                        kw, p->lines[k].lineno);
    }
    return perr(p, hd->lineno, hd->tok[0].col, "%s '%s' has no 'end' (expected 'end')",
                hd->tok[0].s,
                hd->n > 3 && !strcmp(hd->tok[0].s, "message") ? hd->tok[3].s
                : hd->n > 1                                   ? hd->tok[1].s
                                                              : "");
}

/* ---------- features ---------- */

static bool parse_space(parser *p, const line_t *ln, size_t i, vuf_space *out)
{
    static const struct {
        const char *name;
        vuf_space sp;
    } spaces[] = {{"protocol", VUF_SPACE_PROTOCOL}, {"virtio", VUF_SPACE_VIRTIO}};
    for (size_t k = 0; i < ln->n && k < sizeof spaces / sizeof spaces[0]; k++)
        if (!strcmp(ln->tok[i].s, spaces[k].name)) {
            *out = spaces[k].sp;
            return true;
        }
    return TERR(p, ln, i, "bad feature space '%s' (expected 'protocol' or 'virtio')",
                i < ln->n ? ln->tok[i].s : "");
}

static const char *const feature_keywords[] = {"former",  "provisional", "requires",
                                               "section", "note",        NULL};

typedef bool (*feature_opt_fn)(parser *p, const line_t *ln, size_t *i, vuf_feature_def *f);

static bool fo_former(parser *p, const line_t *ln, size_t *i, vuf_feature_def *f)
{
    (*i)++;
    f->former = collect_names(p, ln, i, feature_keywords);
    return f->former != NULL;
}

static bool fo_provisional(parser *p, const line_t *ln, size_t *i, vuf_feature_def *f)
{
    (void)p;
    (void)ln;
    f->provisional = true;
    (*i)++;
    return true;
}

static bool fo_requires(parser *p, const line_t *ln, size_t *i, vuf_feature_def *f)
{
    /* names resolved in pass 2, once every feature is known */
    (*i)++;
    while (*i < ln->n && !is_one_of(ln->tok[*i].s, feature_keywords) && !is_verb(&ln->tok[*i]))
        (*i)++;
    return opt_quote(p, ln, i, &f->requires_quote);
}

static bool fo_section(parser *p, const line_t *ln, size_t *i, vuf_feature_def *f)
{
    const char *s = tok_string(p, ln, *i + 1, ln->tok[*i].s);
    if (!s)
        return false;
    if (ln->tok[*i].s[0] == 's')
        f->section = s;
    else
        f->note = s;
    *i += 2;
    return true;
}

static const struct {
    const char *kw;
    feature_opt_fn fn;
} feature_opts[] = {{"former", fo_former},
                    {"provisional", fo_provisional},
                    {"requires", fo_requires},
                    {"section", fo_section},
                    {"note", fo_section}};

/* feature SPACE BIT NAME [former N...] [provisional] [requires N... [VERB "S"]] [section S]
 * [note S] */
static bool parse_feature_head(parser *p, const line_t *ln)
{
    vuf_spec *s = p->spec;
    vuf_space sp = VUF_SPACE_PROTOCOL;
    uint64_t bit;
    if (!parse_space(p, ln, 1, &sp) || !tok_u64(p, ln, 2, 63, &bit, "feature bit"))
        return false;
    const char *name = tok_name(p, ln, 3, "feature name");
    if (!name)
        return false;
    if (s->nfeatures == VUF_SPEC_MAX_FEATURES)
        return TERR(p, ln, 0, "too many features (at most %d)", VUF_SPEC_MAX_FEATURES);
    for (size_t k = 0; k < s->nfeatures; k++)
        if (s->features[k]->space == sp && s->features[k]->bit == bit)
            return TERR(p, ln, 2, "duplicate %s feature bit %llu (first defined at line %u)",
                        sp == VUF_SPACE_PROTOCOL ? "protocol" : "virtio", (unsigned long long)bit,
                        s->features[k]->line);
    if (vuf_spec_find_feature(s, sp, name))
        return TERR(p, ln, 3, "duplicate feature name '%s'", name);
    vuf_feature_def *f = vuf_arena_alloc(&s->arena, sizeof *f);
    if (!f)
        return alloc_fail(p, ln);
    f->space = sp;
    f->bit = (unsigned)bit;
    f->name = name;
    f->former = empty_names;
    f->section = "";
    f->requires_quote.text = "";
    f->line = ln->lineno;
    for (size_t i = 4; i < ln->n;) {
        size_t k = 0, nk = sizeof feature_opts / sizeof feature_opts[0];
        while (k < nk && strcmp(ln->tok[i].s, feature_opts[k].kw))
            k++;
        if (k == nk)
            return TERR(p, ln, i,
                        "unexpected '%s' (expected former, provisional, requires, section or "
                        "note)",
                        ln->tok[i].s);
        if (!feature_opts[k].fn(p, ln, &i, f))
            return false;
    }
    s->features[s->nfeatures++] = f;
    return true;
}

static bool parse_feature_requires(parser *p, const line_t *ln)
{
    vuf_space sp = VUF_SPACE_PROTOCOL;
    parse_space(p, ln, 1, &sp);
    vuf_feature_def *f = vuf_spec_find_feature(p->spec, sp, ln->tok[3].s);
    for (size_t i = 4; i < ln->n; i++) {
        if (strcmp(ln->tok[i].s, "requires"))
            continue;
        for (i++; i < ln->n && !is_one_of(ln->tok[i].s, feature_keywords) && !is_verb(&ln->tok[i]);
             i++) {
            vuf_feature_def *r = vuf_spec_find_feature(p->spec, sp, ln->tok[i].s);
            if (!r)
                return TERR(p, ln, i, "unknown feature '%s' in requires (expected a %s feature)",
                            ln->tok[i].s, sp == VUF_SPACE_PROTOCOL ? "protocol" : "virtio");
            f->requires |= 1ull << r->bit;
        }
        i--;
    }
    return true;
}

/* ---------- devices ---------- */

/* device NAME rings-per-queue N [VERB "S"] */
static bool parse_device(parser *p, const line_t *ln)
{
    vuf_spec *s = p->spec;
    const char *name = tok_name(p, ln, 1, "device name");
    if (!name)
        return false;
    if (vuf_spec_device(s, name))
        return TERR(p, ln, 1, "duplicate device '%s'", name);
    if (s->ndevices == VUF_SPEC_MAX_DEVICES)
        return TERR(p, ln, 0, "too many devices (at most %d)", VUF_SPEC_MAX_DEVICES);
    if (ln->n < 3 || strcmp(ln->tok[2].s, "rings-per-queue"))
        return TERR(p, ln, 2, "expected 'rings-per-queue N' (0 if the table does not know)");
    uint64_t n;
    if (!tok_u64(p, ln, 3, 16, &n, "rings per queue"))
        return false;
    vuf_device_def *d = vuf_arena_alloc(&s->arena, sizeof *d);
    if (!d)
        return alloc_fail(p, ln);
    d->name = name;
    d->rings_per_queue = (uint32_t)n;
    d->quote.text = "";
    d->line = ln->lineno;
    size_t i = 4;
    if (!opt_quote(p, ln, &i, &d->quote) || !end_of_line(p, ln, i, "VERB \"SENTENCE\" or end"))
        return false;
    s->devices[s->ndevices++] = d;
    return true;
}

/* ---------- payloads ---------- */

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

/* The integer field types; a payload name declared above is an element type. */
static const struct {
    const char *name;
    uint32_t width;
    vuf_field_type type;
} int_types[] = {
    {"u8", 1, VUF_FT_U8}, {"u16", 2, VUF_FT_U16}, {"u32", 4, VUF_FT_U32}, {"u64", 8, VUF_FT_U64}};

typedef struct {
    vuf_payload_def *pd;
    vuf_field_def fields[64];
    size_t nf;
    uint32_t off;
    const line_t *span_lines[16];
    size_t nspan;
} payload_ctx;

static bool field_pad(parser *p, const line_t *ln, payload_ctx *pc, vuf_field_def *f)
{
    uint64_t k;
    if (!tok_u64(p, ln, 1, 4096, &k, "pad size"))
        return false;
    if (k == 0)
        return TERR(p, ln, 1, "pad size 0 (expected at least 1)");
    f->type = VUF_FT_PAD;
    f->size = (uint32_t)k;
    pc->off += f->size;
    pc->nf++;
    return end_of_line(p, ln, 2, "end of line");
}

/* TYPE NAME[COUNT] max K [VERB "S"]: the variable tail. */
static bool field_varray(parser *p, const line_t *ln, payload_ctx *pc, vuf_field_def *f,
                         uint32_t width, const vuf_payload_def *elem, const char *dim)
{
    int cf = -1;
    for (size_t k = 0; k < pc->nf; k++)
        if (pc->fields[k].name && !strcmp(pc->fields[k].name, dim))
            cf = (int)k;
    if (cf < 0)
        return TERR(p, ln, 1, "unknown count field '%s' (expected a field above)", dim);
    if (pc->fields[cf].type > VUF_FT_U64)
        return TERR(p, ln, 1, "count field '%s' is not an integer", dim);
    if (ln->n < 4 || strcmp(ln->tok[2].s, "max"))
        return TERR(p, ln, 2, "variable array needs 'max K'");
    uint64_t mx;
    if (!tok_u64(p, ln, 3, 65536, &mx, "max count"))
        return false;
    f->max_quote.text = "";
    size_t i = 4;
    if (!opt_quote(p, ln, &i, &f->max_quote) ||
        !end_of_line(p, ln, i, "VERB \"SENTENCE\" or end of line"))
        return false;
    f->type = VUF_FT_VARRAY;
    f->count_field = cf;
    f->max_count = (uint32_t)mx;
    f->element = elem;
    f->size = elem ? elem->fixed_size : width;
    pc->pd->varray_field = (int)pc->nf;
    pc->pd->elem_size = f->size;
    pc->nf++;
    return true;
}

static bool parse_field(parser *p, const line_t *ln, payload_ctx *pc)
{
    vuf_spec *s = p->spec;
    const char *t0 = ln->tok[0].s;
    if (pc->nf == 64)
        return TERR(p, ln, 0, "too many fields (at most 64)");
    if (pc->pd->varray_field >= 0)
        return TERR(p, ln, 0, "field after the variable array (expected 'end')");
    vuf_field_def *f = &pc->fields[pc->nf];
    memset(f, 0, sizeof *f);
    f->count_field = -1;
    f->offset = pc->off;
    if (!strcmp(t0, "pad"))
        return field_pad(p, ln, pc, f);
    uint32_t width = 0;
    vuf_field_type itype = VUF_FT_U8;
    const vuf_payload_def *elem = NULL;
    for (size_t k = 0; k < sizeof int_types / sizeof int_types[0]; k++)
        if (!strcmp(t0, int_types[k].name)) {
            width = int_types[k].width;
            itype = int_types[k].type;
        }
    if (!width && ((elem = vuf_spec_find_payload(s, t0)) == NULL || elem->is_empty))
        return TERR(p, ln, 0,
                    "unknown field type '%s' (expected u8, u16, u32, u64, pad or a payload "
                    "declared above)",
                    t0);
    if (ln->n < 2)
        return TERR(p, ln, 1, "missing field name");
    char fname[128];
    snprintf(fname, sizeof fname, "%s", ln->tok[1].s);
    char *br = strchr(fname, '['), *dim = NULL;
    if (br) {
        size_t l = strlen(br);
        if (br[l - 1] != ']')
            return TERR(p, ln, 1, "bad array '%s' (expected name[N] or name[field])", ln->tok[1].s);
        br[l - 1] = 0;
        *br = 0;
        dim = br + 1;
    }
    if (!is_name(fname))
        return TERR(p, ln, 1, "bad field name '%s'", fname);
    for (size_t k = 0; k < pc->nf; k++)
        if (pc->fields[k].name && !strcmp(pc->fields[k].name, fname))
            return TERR(p, ln, 1, "duplicate field '%s'", fname);
    f->name = vuf_arena_strdup(&s->arena, fname);
    if (!f->name)
        return alloc_fail(p, ln);
    if (elem && elem->varray_field >= 0)
        return TERR(p, ln, 0, "payload '%s' has a variable part and cannot be an element", t0);
    uint64_t n;
    if (!dim) {
        if (elem)
            return TERR(p, ln, 1, "a payload-typed field must be an array name[count]");
        f->type = itype;
        f->size = width;
    } else if (vuf_parse_u64(dim, &n)) {
        if (width != 1)
            return TERR(p, ln, 1, "fixed arrays must be u8 (expected u8 %s)", ln->tok[1].s);
        if (n == 0 || n > 4096)
            return TERR(p, ln, 1, "bad array length %s (expected 1..4096)", dim);
        f->type = VUF_FT_BYTES;
        f->size = (uint32_t)n;
    } else {
        return field_varray(p, ln, pc, f, width, elem, dim);
    }
    if (!end_of_line(p, ln, 2, "end of line"))
        return false;
    pc->off += f->size;
    pc->nf++;
    return true;
}

static bool resolve_spans(parser *p, payload_ctx *pc, const vuf_field_def *fv)
{
    vuf_payload_def *pd = pc->pd;
    vuf_span_def *sv = vuf_arena_alloc(&p->spec->arena, (pc->nspan + 1) * sizeof *sv);
    if (!sv)
        return perr(p, pd->line, 1, "out of memory");
    for (size_t k = 0; k < pc->nspan; k++) {
        const line_t *ln = pc->span_lines[k];
        if (ln->n < 3 || ln->n > 4 || (ln->n == 4 && strcmp(ln->tok[3].s, "fd")))
            return TERR(p, ln,
                        ln->n > 4   ? 4
                        : ln->n < 3 ? 0
                                    : 3,
                        "expected 'span BASE SIZE' or 'span BASE SIZE fd'");
        for (int w = 0; w < 2; w++) {
            int *dst = w ? &sv[k].size_field : &sv[k].base_field;
            *dst = -1;
            for (size_t i = 0; i < pc->nf; i++)
                if (fv[i].name && !strcmp(fv[i].name, ln->tok[1 + w].s))
                    *dst = (int)i;
            if (*dst < 0 || fv[*dst].type > VUF_FT_U64)
                return TERR(p, ln, 1 + (size_t)w,
                            "unknown field '%s' (expected an integer field of payload '%s')",
                            ln->tok[1 + w].s, pd->name);
        }
        sv[k].fd = ln->n == 4;
        sv[k].line = ln->lineno;
    }
    pd->spans = sv;
    pd->nspans = pc->nspan;
    return true;
}

/* payload NAME SIZE [section "S"], fields and spans, end. *li: the header;
 * left on 'end'. */
static bool parse_payload(parser *p, size_t *li)
{
    vuf_spec *s = p->spec;
    const line_t *hd = &p->lines[*li];
    size_t end;
    if (!block_end(p, *li, &end))
        return false;
    const char *name = tok_name(p, hd, 1, "payload name");
    if (!name)
        return false;
    if (!strcmp(name, "none") || !strcmp(name, "empty"))
        return TERR(p, hd, 1, "'%s' is reserved (expected another payload name)", name);
    if (vuf_spec_find_payload(s, name))
        return TERR(p, hd, 1, "duplicate payload '%s'", name);
    if (s->npayloads == VUF_SPEC_MAX_PAYLOADS)
        return TERR(p, hd, 0, "too many payloads (at most %d)", VUF_SPEC_MAX_PAYLOADS);
    payload_ctx *pc = calloc(1, sizeof *pc);
    vuf_payload_def *pd = vuf_arena_alloc(&s->arena, sizeof *pd);
    if (!pc || !pd) {
        free(pc);
        return alloc_fail(p, hd);
    }
    bool ok = false;
    pc->pd = pd;
    pd->name = name;
    pd->line = hd->lineno;
    pd->varray_field = -1;
    pd->section = "";
    if (hd->n < 3) {
        TERR(p, hd, 2, "missing payload size (expected N or N+Mn)");
        goto out;
    }
    if (!parse_size_decl(hd->tok[2].s, &pd->declared_fixed, &pd->declared_elem)) {
        TERR(p, hd, 2, "bad payload size '%s' (expected N or N+Mn, e.g. 40 or 8+32n)",
             hd->tok[2].s);
        goto out;
    }
    if (hd->n > 3) {
        if (strcmp(hd->tok[3].s, "section")) {
            TERR(p, hd, 3, "unexpected '%s' (expected section or end of line)", hd->tok[3].s);
            goto out;
        }
        if (!(pd->section = tok_string(p, hd, 4, "section")) || !end_of_line(p, hd, 5, "end"))
            goto out;
    }
    for (size_t k = *li + 1; k < end; k++) {
        const line_t *ln = &p->lines[k];
        if (!strcmp(ln->tok[0].s, "span")) {
            /* resolved at 'end', when every field is known */
            if (pc->nspan == 16) {
                TERR(p, ln, 0, "too many spans (at most 16)");
                goto out;
            }
            pc->span_lines[pc->nspan++] = ln;
        } else if (!parse_field(p, ln, pc)) {
            goto out;
        }
    }
    if (p->lines[end].n > 1) {
        TERR(p, &p->lines[end], 1, "unexpected '%s' after end", p->lines[end].tok[1].s);
        goto out;
    }
    pd->fixed_size = pc->off;
    pd->nfields = pc->nf;
    vuf_field_def *fv = vuf_arena_alloc(&s->arena, pc->nf * sizeof *fv + 1);
    if (!fv) {
        alloc_fail(p, hd);
        goto out;
    }
    memcpy(fv, pc->fields, pc->nf * sizeof *fv);
    pd->fields = fv;
    if (!resolve_spans(p, pc, fv))
        goto out;
    s->payloads[s->npayloads++] = pd;
    *li = end;
    ok = true;
out:
    free(pc);
    return ok;
}

/* ---------- messages: header ---------- */

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
    vuf_msg_def *other = vuf_spec_find_msg(s, VUF_CHAN_COUNT, name);
    if (other)
        return TERR(p, ln, 3, "duplicate message name '%s' (already at line %u)", name,
                    other->line);
    if (s->nmsgs[c] == VUF_SPEC_MAX_MSGS)
        return TERR(p, ln, 0, "too many messages (at most %d per channel)", VUF_SPEC_MAX_MSGS);
    vuf_msg_def *m = vuf_arena_alloc(&s->arena, sizeof *m);
    if (!m)
        return alloc_fail(p, ln);
    m->channel = c;
    m->id = (uint32_t)id;
    m->name = name;
    m->former = empty_names;
    m->notes = empty_names;
    m->section = "";
    m->after_quote.text = "";
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

/* ---------- messages: body ---------- */

#define MAX_GATES 8

/* What a message body collects before it is stored. Statements that read
 * fields of the payloads are kept and resolved at the end, whatever their
 * order. */
typedef struct {
    vuf_msg_def *m;
    vuf_channel c;
    bool have_request, have_reply;
    const vuf_msg_def *after[32];
    size_t nafter;
    const char *notes[32];
    size_t nnotes;
    vuf_gate gates[MAX_GATES];
    size_t ngates;
    const line_t *fds_line, *rfds_line, *vring_line, *rerr_line, *checks_at[32];
    size_t nchecks;
} msg_ctx;

typedef bool (*stmt_fn)(parser *p, const line_t *ln, msg_ctx *mc);

static bool st_former(parser *p, const line_t *ln, msg_ctx *mc)
{
    static const char *const none[] = {NULL};
    size_t i = 1;
    mc->m->former = collect_names(p, ln, &i, none);
    if (!mc->m->former || !end_of_line(p, ln, i, "names"))
        return false;
    for (const char *const *fn = mc->m->former; *fn; fn++) {
        vuf_msg_def *o = vuf_spec_find_msg(p->spec, VUF_CHAN_COUNT, *fn);
        if (o && o != mc->m)
            return TERR(p, ln, 1, "former name '%s' is already message '%s'", *fn, o->name);
    }
    return true;
}

static bool st_initiator(parser *p, const line_t *ln, msg_ctx *mc)
{
    if (ln->n != 2 || (strcmp(ln->tok[1].s, "frontend") && strcmp(ln->tok[1].s, "backend")))
        return TERR(p, ln, 1, "bad initiator (expected frontend or backend)");
    mc->m->initiator = ln->tok[1].s[0] == 'b' ? VUF_SIDE_BACKEND : VUF_SIDE_FRONTEND;
    return true;
}

static bool resolve_payload_tok(parser *p, const line_t *ln, size_t i, const vuf_payload_def **out)
{
    if (i >= ln->n)
        return TERR(p, ln, i, "missing payload name (expected none, empty or a payload)");
    if (!strcmp(ln->tok[i].s, "none")) {
        *out = NULL;
    } else if (!(*out = vuf_spec_find_payload(p->spec, ln->tok[i].s))) {
        return TERR(p, ln, i, "unknown payload '%s' (expected none, empty or a declared payload)",
                    ln->tok[i].s);
    }
    return end_of_line(p, ln, i + 1, "end of line");
}

static bool st_request(parser *p, const line_t *ln, msg_ctx *mc)
{
    mc->have_request = true;
    return resolve_payload_tok(p, ln, 1, &mc->m->request);
}

static bool st_reply_payload(parser *p, const line_t *ln, msg_ctx *mc)
{
    /* reply-payload P [VERB "SENTENCE"] */
    size_t i = 2;
    if (ln->n > 2 && !opt_quote(p, ln, &i, &mc->m->reply_payload_quote))
        return false;
    line_t head = *ln;
    if (head.n > 2)
        head.n = 2; /* the payload name alone for the resolver */
    return resolve_payload_tok(p, &head, 1, &mc->m->reply_payload) &&
           end_of_line(p, ln, i, "end of line or VERB \"SENTENCE\"");
}

/* A statement that takes one word of a list: its index in words, or -1. */
static int one_word(parser *p, const line_t *ln, const char *const *words, const char *what,
                    const char *list)
{
    for (int k = 0; ln->n == 2 && words[k]; k++)
        if (!strcmp(ln->tok[1].s, words[k]))
            return k;
    if (ln->n == 2)
        TERR(p, ln, 1, "bad %s '%s' (expected %s)", what, ln->tok[1].s, list);
    else
        TERR(p, ln, ln->n > 2 ? 2 : 1, "expected '%s %s'", ln->tok[0].s, list);
    return -1;
}

static bool st_size(parser *p, const line_t *ln, msg_ctx *mc)
{
    static const char *const w[] = {"exact", "min", "any", NULL};
    static const vuf_size_rule r[] = {VUF_SIZE_EXACT, VUF_SIZE_MIN, VUF_SIZE_ANY};
    int k = one_word(p, ln, w, "size rule", "exact, min or any");
    if (k >= 0)
        mc->m->size_rule = r[k];
    return k >= 0;
}

static bool st_reply(parser *p, const line_t *ln, msg_ctx *mc)
{
    static const char *const w[] = {"none", "ack", "always", NULL};
    static const vuf_reply_kind r[] = {VUF_REPLY_NONE, VUF_REPLY_ACK, VUF_REPLY_ALWAYS};
    int k = one_word(p, ln, w, "reply rule", "none, ack or always");
    if (k >= 0)
        mc->m->reply = r[k];
    mc->have_reply = true;
    return k >= 0;
}

static bool st_reply_size(parser *p, const line_t *ln, msg_ctx *mc)
{
    static const char *const w[] = {"request", NULL};
    mc->m->reply_size_matches_request = one_word(p, ln, w, "reply size rule", "request") == 0;
    return mc->m->reply_size_matches_request;
}

static bool st_reply_always_if(parser *p, const line_t *ln, msg_ctx *mc)
{
    if (ln->n != 2)
        return TERR(p, ln, 1, "expected 'reply-always-if protocol:F' or 'after:MSG'");
    const char *t = ln->tok[1].s;
    if (!strncmp(t, "protocol:", 9)) {
        vuf_feature_def *f = vuf_spec_find_feature(p->spec, VUF_SPACE_PROTOCOL, t + 9);
        if (!f)
            return TERR(p, ln, 1, "unknown protocol feature '%s'", t + 9);
        mc->m->reply_cond = VUF_COND_PROTOCOL;
        mc->m->reply_cond_bit = f->bit;
    } else if (!strncmp(t, "after:", 6)) {
        const vuf_msg_def *o = vuf_spec_find_msg(p->spec, mc->c, t + 6);
        if (!o)
            return TERR(p, ln, 1, "unknown message '%s' on channel %s", t + 6,
                        vuf_channel_name(mc->c));
        mc->m->reply_cond = VUF_COND_AFTER;
        mc->m->reply_cond_after = o;
    } else {
        return TERR(p, ln, 1, "bad condition '%s' (expected protocol:F or after:MSG)", t);
    }
    return true;
}

static bool st_reply_error(parser *p, const line_t *ln, msg_ctx *mc)
{
    uint64_t v;
    if (ln->n != 2)
        return TERR(p, ln, 1,
                    "expected 'reply-error VALUE', 'reply-error empty' or 'reply-error "
                    "negative:FIELD'");
    const char *t = ln->tok[1].s;
    if (!strcmp(t, "empty")) {
        mc->m->reply_error = VUF_RERR_EMPTY;
    } else if (!strncmp(t, "negative:", 9)) {
        mc->m->reply_error = VUF_RERR_NEGATIVE;
        mc->rerr_line = ln; /* the field is resolved once the reply payload is known */
    } else if (vuf_parse_u64(t, &v) && v != 0) {
        mc->m->reply_error = VUF_RERR_U64;
        mc->m->reply_error_value = v;
    } else {
        return TERR(p, ln, 1,
                    "bad reply error '%s' (expected a non-zero u64, empty or negative:FIELD)", t);
    }
    return true;
}

static bool st_fds(parser *p, const line_t *ln, msg_ctx *mc)
{
    (void)p;
    *(strcmp(ln->tok[0].s, "fds") ? &mc->rfds_line : &mc->fds_line) = ln;
    return true;
}

static bool st_vring(parser *p, const line_t *ln, msg_ctx *mc)
{
    (void)p;
    mc->vring_line = ln;
    return true;
}

static bool st_check(parser *p, const line_t *ln, msg_ctx *mc)
{
    if (mc->nchecks == 32)
        return TERR(p, ln, 0, "too many checks");
    mc->checks_at[mc->nchecks++] = ln;
    return true;
}

static bool gate_names(parser *p, const line_t *ln, size_t *i, vuf_space sp, uint64_t *mask)
{
    static const char *const conds[] = {"offered", "negotiated", NULL};
    size_t start = *i;
    for (; *i < ln->n && !is_one_of(ln->tok[*i].s, conds) && !is_verb(&ln->tok[*i]); (*i)++) {
        vuf_feature_def *f = vuf_spec_find_feature(p->spec, sp, ln->tok[*i].s);
        if (!f)
            return TERR(p, ln, *i, "unknown %s feature '%s'",
                        sp == VUF_SPACE_PROTOCOL ? "protocol" : "virtio", ln->tok[*i].s);
        *mask |= 1ull << f->bit;
    }
    if (*i == start)
        return TERR(p, ln, *i, "missing feature name");
    return true;
}

/* gate protocol|virtio NAME... [offered|negotiated] [VERB "S"]
 * gate bit30 offered|negotiated [VERB "S"] */
static bool st_gate(parser *p, const line_t *ln, msg_ctx *mc)
{
    if (mc->ngates == MAX_GATES)
        return TERR(p, ln, 0, "too many gates (at most %d)", MAX_GATES);
    vuf_gate g = {.quote = {.text = ""}};
    size_t i = 2;
    if (ln->n < 3)
        return TERR(p, ln, ln->n, "expected 'gate protocol|virtio|bit30 ...'");
    if (!strcmp(ln->tok[1].s, "bit30")) {
        g.space = VUF_SPACE_VIRTIO;
        g.mask = 1ull << VUF_VIRTIO_PROTOCOL_FEATURES_BIT;
        if (strcmp(ln->tok[2].s, "offered") && strcmp(ln->tok[2].s, "negotiated"))
            return TERR(p, ln, 2, "bad bit30 gate '%s' (expected offered or negotiated)",
                        ln->tok[2].s);
    } else if (strcmp(ln->tok[1].s, "protocol") && strcmp(ln->tok[1].s, "virtio")) {
        return TERR(p, ln, 1, "bad gate kind '%s' (expected protocol, virtio or bit30)",
                    ln->tok[1].s);
    } else if (!parse_space(p, ln, 1, &g.space) || !gate_names(p, ln, &i, g.space, &g.mask)) {
        return false;
    }
    if (i < ln->n && !strcmp(ln->tok[i].s, "offered")) {
        g.cond = VUF_GATE_OFFERED;
        i++;
    } else if (i < ln->n && !strcmp(ln->tok[i].s, "negotiated")) {
        i++;
    }
    if (!opt_quote(p, ln, &i, &g.quote) ||
        !end_of_line(p, ln, i, "offered, negotiated or VERB \"SENTENCE\""))
        return false;
    mc->gates[mc->ngates++] = g;
    return true;
}

/* after NAME... [VERB "S"] */
static bool st_after(parser *p, const line_t *ln, msg_ctx *mc)
{
    size_t i = 1;
    for (; i < ln->n && !is_verb(&ln->tok[i]); i++) {
        const vuf_msg_def *o = vuf_spec_find_msg(p->spec, mc->c, ln->tok[i].s);
        if (!o)
            return TERR(p, ln, i, "unknown message '%s' on channel %s", ln->tok[i].s,
                        vuf_channel_name(mc->c));
        if (mc->nafter == 32)
            return TERR(p, ln, i, "too many prerequisites");
        mc->after[mc->nafter++] = o;
    }
    if (i == 1)
        return TERR(p, ln, 1, "missing message name");
    return opt_quote(p, ln, &i, &mc->m->after_quote) &&
           end_of_line(p, ln, i, "VERB \"SENTENCE\" or end of line");
}

static bool st_section(parser *p, const line_t *ln, msg_ctx *mc)
{
    const char *s = tok_string(p, ln, 1, ln->tok[0].s);
    if (!s || !end_of_line(p, ln, 2, "end of line"))
        return false;
    if (ln->tok[0].s[0] == 's') {
        mc->m->section = s;
    } else {
        if (mc->nnotes == 31)
            return TERR(p, ln, 0, "too many notes");
        mc->notes[mc->nnotes++] = s;
    }
    return true;
}

static const struct {
    const char *kw;
    stmt_fn fn;
} msg_statements[] = {
    {"former", st_former},
    {"initiator", st_initiator},
    {"request", st_request},
    {"size", st_size},
    {"reply", st_reply},
    {"reply-always-if", st_reply_always_if},
    {"reply-payload", st_reply_payload},
    {"reply-size", st_reply_size},
    {"reply-error", st_reply_error},
    {"fds", st_fds},
    {"reply-fds", st_fds},
    {"gate", st_gate},
    {"after", st_after},
    {"vring", st_vring},
    {"check", st_check},
    {"section", st_section},
    {"note", st_section},
};

static bool parse_fd_kind(parser *p, const line_t *ln, size_t i, vuf_fdkind_rule *out)
{
    static const struct {
        const char *n;
        vuf_fdkind_rule k;
    } kinds[] = {{"any", VUF_FDK_ANY},
                 {"eventfd", VUF_FDK_EVENTFD},
                 {"shm", VUF_FDK_SHM},
                 {"socket", VUF_FDK_SOCKET}};
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
        r->ref.path = vuf_arena_strdup(&p->spec->arena, buf + 6);
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
        r->ref.path = vuf_arena_strdup(&p->spec->arena, buf + 5);
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
        return end_of_line(p, ln, i + 2, "end of line");
    }
    return true;
}

/* check FIELD in V,V... [VERB "S"] | check FIELD mask M [VERB "S"] */
static bool parse_check(parser *p, const line_t *ln, vuf_msg_def *m, vuf_value_check *c)
{
    static const struct {
        const char *kw;
        vuf_check_kind kind;
    } kinds[] = {{"in", VUF_CHECK_IN}, {"mask", VUF_CHECK_MASK}};
    if (ln->n < 4)
        return TERR(p, ln, ln->n,
                    "incomplete check (expected 'check FIELD in V,V' or 'check FIELD mask M')");
    if (!m->request)
        return TERR(p, ln, 1, "check on a message without request payload");
    if (!vuf_field_resolve(m->request, ln->tok[1].s, &c->ref))
        return TERR(p, ln, 1, "unknown field '%s' in payload '%s'", ln->tok[1].s, m->request->name);
    size_t k = 0;
    while (k < 2 && strcmp(ln->tok[2].s, kinds[k].kw))
        k++;
    if (k == 2)
        return TERR(p, ln, 2, "bad check '%s' (expected in or mask)", ln->tok[2].s);
    c->kind = kinds[k].kind;
    uint64_t vals[64];
    size_t nv = 0;
    char buf[512];
    snprintf(buf, sizeof buf, "%s", ln->tok[3].s);
    for (char *save = NULL, *t = strtok_r(buf, ",", &save); t; t = strtok_r(NULL, ",", &save)) {
        if (nv == 64 || !vuf_parse_u64(t, &vals[nv]))
            return TERR(p, ln, 3, "bad value '%s' (expected numbers separated by commas)", t);
        nv++;
    }
    if (nv == 0 || (c->kind == VUF_CHECK_MASK && nv != 1))
        return TERR(p, ln, 3, "bad value list");
    c->quote.text = "";
    size_t i = 4;
    if (!opt_quote(p, ln, &i, &c->quote) ||
        !end_of_line(p, ln, i, "VERB \"SENTENCE\" or end of line"))
        return false;
    uint64_t *v = vuf_arena_alloc(&p->spec->arena, nv * sizeof *v);
    if (!v)
        return alloc_fail(p, ln);
    memcpy(v, vals, nv * sizeof *v);
    c->values = v;
    c->nvalues = nv;
    c->ref.path = ln->tok[1].s;
    return true;
}

/* The statements that read fields of the payloads, and the summaries. */
static bool finish_msg(parser *p, const line_t *hd, msg_ctx *mc)
{
    vuf_spec *s = p->spec;
    vuf_msg_def *m = mc->m;
    if (!mc->have_request)
        return perr(p, hd->lineno, 1, "message '%s' has no 'request' statement", m->name);
    if (!mc->have_reply)
        return perr(p, hd->lineno, 1, "message '%s' has no 'reply' statement", m->name);
    if (mc->fds_line && !parse_fd_rule(p, mc->fds_line, m->request, &m->fds))
        return false;
    if (mc->rfds_line && !parse_fd_rule(p, mc->rfds_line, m->reply_payload, &m->reply_fds))
        return false;
    if (mc->vring_line) {
        if (mc->vring_line->n != 2)
            return TERR(p, mc->vring_line, 1, "expected 'vring FIELD[&MASK]'");
        if (!vuf_field_resolve(m->request, mc->vring_line->tok[1].s, &m->vring))
            return TERR(p, mc->vring_line, 1, "unknown field '%s' in the request payload",
                        mc->vring_line->tok[1].s);
    }
    if (mc->rerr_line &&
        !vuf_field_resolve(m->reply_payload, mc->rerr_line->tok[1].s + 9, &m->reply_error_ref))
        return TERR(p, mc->rerr_line, 1, "unknown field '%s' in the reply payload",
                    mc->rerr_line->tok[1].s + 9);
    vuf_value_check *cv = vuf_arena_alloc(&s->arena, (mc->nchecks + 1) * sizeof *cv);
    const vuf_msg_def **av = vuf_arena_alloc(&s->arena, (mc->nafter + 1) * sizeof *av);
    const char **nv = vuf_arena_alloc(&s->arena, (mc->nnotes + 1) * sizeof *nv);
    vuf_gate *gv = vuf_arena_alloc(&s->arena, (mc->ngates + 1) * sizeof *gv);
    if (!cv || !av || !nv || !gv)
        return alloc_fail(p, hd);
    for (size_t i = 0; i < mc->nchecks; i++)
        if (!parse_check(p, mc->checks_at[i], m, &cv[i]))
            return false;
    memcpy(av, mc->after, mc->nafter * sizeof *av);
    memcpy(nv, mc->notes, mc->nnotes * sizeof *nv);
    memcpy(gv, mc->gates, mc->ngates * sizeof *gv);
    m->checks = cv;
    m->nchecks = mc->nchecks;
    m->after = av;
    m->nafter = mc->nafter;
    m->notes = nv;
    m->gates = gv;
    m->ngates = mc->ngates;
    for (size_t i = 0; i < mc->ngates; i++) {
        uint64_t bit30 = 1ull << VUF_VIRTIO_PROTOCOL_FEATURES_BIT;
        if (gv[i].space == VUF_SPACE_PROTOCOL) {
            m->gate_protocol |= gv[i].mask;
            continue;
        }
        m->gate_virtio |= gv[i].mask & ~bit30;
        if (gv[i].mask & bit30)
            m->gate_bit30 =
                gv[i].cond == VUF_GATE_OFFERED ? VUF_BIT30_OFFERED : VUF_BIT30_NEGOTIATED;
    }
    return true;
}

static bool parse_msg_body(parser *p, size_t *li)
{
    const line_t *hd = &p->lines[*li];
    size_t end;
    if (!block_end(p, *li, &end))
        return false;
    msg_ctx *mc = calloc(1, sizeof *mc);
    if (!mc)
        return alloc_fail(p, hd);
    vuf_channel_parse(hd->tok[1].s, &mc->c);
    mc->m = vuf_spec_find_msg(p->spec, mc->c, hd->tok[3].s);
    bool ok = true;
    size_t nst = sizeof msg_statements / sizeof msg_statements[0];
    for (size_t k = *li + 1; ok && k < end; k++) {
        const line_t *ln = &p->lines[k];
        size_t s = 0;
        while (s < nst && strcmp(ln->tok[0].s, msg_statements[s].kw))
            s++;
        if (s == nst)
            ok = TERR(p, ln, 0,
                      "unknown statement '%s' (expected former, initiator, request, size, "
                      "reply, reply-always-if, reply-payload, reply-size, reply-error, fds, "
                      "reply-fds, gate, after, vring, check, section, note or end)",
                      ln->tok[0].s);
        else
            ok = msg_statements[s].fn(p, ln, mc);
    }
    ok = ok && finish_msg(p, hd, mc);
    free(mc);
    *li = end;
    return ok;
}

/* ---------- channels ---------- */

typedef bool (*chan_opt_fn)(parser *p, const line_t *ln, size_t *i, vuf_channel_def *d);

static bool co_initiator(parser *p, const line_t *ln, size_t *i, vuf_channel_def *d)
{
    const char *v = ln->tok[*i + 1].s;
    if (strcmp(v, "frontend") && strcmp(v, "backend"))
        return TERR(p, ln, *i + 1, "bad initiator (expected frontend or backend)");
    d->initiator = v[0] == 'b' ? VUF_SIDE_BACKEND : VUF_SIDE_FRONTEND;
    *i += 2;
    return true;
}

static bool co_max_fds(parser *p, const line_t *ln, size_t *i, vuf_channel_def *d)
{
    uint64_t n;
    if (!tok_u64(p, ln, *i + 1, 255, &n, "max-fds"))
        return false;
    d->max_fds = (uint32_t)n;
    *i += 2;
    return opt_quote(p, ln, i, &d->max_fds_quote);
}

static bool co_feature(parser *p, const line_t *ln, size_t *i, vuf_channel_def *d)
{
    const char *v = ln->tok[*i + 1].s;
    vuf_feature_def *f = vuf_spec_find_feature(p->spec, VUF_SPACE_PROTOCOL, v);
    if (!f)
        return TERR(p, ln, *i + 1, "unknown protocol feature '%s'", v);
    bool gate = ln->tok[*i].s[0] == 'f';
    if (gate) {
        d->has_fd_gate = true;
        d->fd_gate_bit = f->bit;
    } else {
        d->requires |= 1ull << f->bit;
    }
    *i += 2;
    return opt_quote(p, ln, i, gate ? &d->fd_gate_quote : &d->requires_quote);
}

static bool co_section(parser *p, const line_t *ln, size_t *i, vuf_channel_def *d)
{
    d->section = tok_string(p, ln, *i + 1, "section");
    *i += 2;
    return d->section != NULL;
}

static const struct {
    const char *kw;
    chan_opt_fn fn;
} chan_opts[] = {{"initiator", co_initiator},
                 {"max-fds", co_max_fds},
                 {"fd-gate", co_feature},
                 {"requires", co_feature},
                 {"section", co_section}};

/* channel NAME [initiator S] [max-fds N [VERB "S"]] [fd-gate F [VERB "S"]]
 * [requires F [VERB "S"]] [section "S"] */
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
    d->max_fds_quote.text = d->fd_gate_quote.text = d->requires_quote.text = "";
    for (size_t i = 2; i < ln->n;) {
        size_t k = 0, nk = sizeof chan_opts / sizeof chan_opts[0];
        while (k < nk && strcmp(ln->tok[i].s, chan_opts[k].kw))
            k++;
        if (k == nk)
            return TERR(p, ln, i,
                        "unexpected '%s' (expected initiator, max-fds, fd-gate, requires or "
                        "section)",
                        ln->tok[i].s);
        if (i + 1 >= ln->n)
            return TERR(p, ln, i, "'%s' needs a value", ln->tok[i].s);
        if (!chan_opts[k].fn(p, ln, &i, d))
            return false;
    }
    s->chan_declared[c] = true;
    return true;
}

/* ---------- passes ---------- */

typedef bool (*top_fn)(parser *p, size_t *li);

static bool skip(parser *p, size_t *li)
{
    (void)p;
    (void)li;
    return true;
}

static bool skip_block(parser *p, size_t *li)
{
    return block_end(p, *li, li);
}

static bool feature_head(parser *p, size_t *li)
{
    return parse_feature_head(p, &p->lines[*li]);
}

static bool feature_requires(parser *p, size_t *li)
{
    return parse_feature_requires(p, &p->lines[*li]);
}

static bool device_line(parser *p, size_t *li)
{
    return parse_device(p, &p->lines[*li]);
}

static bool msg_head(parser *p, size_t *li)
{
    return parse_msg_head(p, &p->lines[*li]) && block_end(p, *li, li);
}

static bool channel_line(parser *p, size_t *li)
{
    return parse_channel(p, &p->lines[*li]);
}

/* What each top-level keyword does in each pass. */
static const struct {
    const char *kw;
    top_fn pass[3];
} top_level[] = {
    {"feature", {feature_head, feature_requires, skip}},
    {"device", {device_line, skip, skip}},
    {"payload", {parse_payload, skip_block, skip_block}},
    {"message", {skip_block, msg_head, parse_msg_body}},
    {"channel", {skip, skip, channel_line}},
};

static bool run_pass(parser *p, int pass)
{
    size_t nt = sizeof top_level / sizeof top_level[0];
    for (size_t li = 0; li < p->nlines && !p->failed; li++) {
        const line_t *ln = &p->lines[li];
        size_t k = 0;
        while (k < nt && strcmp(ln->tok[0].s, top_level[k].kw))
            k++;
        if (k == nt)
            return TERR(p, ln, 0,
                        "unexpected '%s' (expected channel, feature, device, payload or message)",
                        ln->tok[0].s);
        if (!top_level[k].pass[pass](p, &li))
            return false;
    }
    return !p->failed;
}

vuf_spec *vuf_spec_parse(const char *text, size_t len, const char *filename, vuf_diag *diag)
{
    vuf_spec *s = vuf_spec_alloc(filename);
    if (!s)
        return NULL;
    parser p = {.spec = s, .diag = diag};
    if (diag)
        memset(diag, 0, sizeof *diag);
    bool ok = tokenize(&p, text, len) && run_pass(&p, 0) && run_pass(&p, 1) && run_pass(&p, 2);
    for (int c = 0; ok && c < VUF_CHAN_COUNT; c++)
        if (!s->chan_declared[c])
            ok = perr(&p, 1, 1, "channel '%s' is not declared (expected a 'channel %s ...' line)",
                      vuf_channel_name((vuf_channel)c), vuf_channel_name((vuf_channel)c));
    free(p.lines);
    if (!ok) {
        vuf_spec_free(s);
        return NULL;
    }
    vuf_spec_finalize(s);
    return s;
}
