/* SPDX-License-Identifier: Apache-2.0 */
/* The spec table's model: storage, lookups, field references and the
 * accessors every module reads. The text format is read by spec_parse.c
 * (spec/README.md documents it). */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include "spec_internal.h"
#include "vuf_util.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

/* ---------- arena ---------- */

struct vuf_arena_block {
    struct vuf_arena_block *next;
    size_t used, cap;
    max_align_t data[];
};

void *vuf_arena_alloc(vuf_arena_block **a, size_t n)
{
    n = (n + sizeof(max_align_t) - 1) / sizeof(max_align_t) * sizeof(max_align_t);
    if (!*a || (*a)->cap - (*a)->used < n) {
        size_t cap = n > 16384 ? n : 16384;
        vuf_arena_block *b = malloc(sizeof(*b) + cap);
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

void vuf_arena_free(vuf_arena_block *a)
{
    while (a) {
        vuf_arena_block *n = a->next;
        free(a);
        a = n;
    }
}

char *vuf_arena_strdup(vuf_arena_block **a, const char *s)
{
    size_t n = strlen(s) + 1;
    char *p = vuf_arena_alloc(a, n);
    if (p)
        memcpy(p, s, n);
    return p;
}

/* ---------- names ---------- */

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

static const char *const verb_names[VUF_VERB_COUNT] = {
    [VUF_VERB_SILENT] = "silent", [VUF_VERB_MUST] = "must", [VUF_VERB_DEFINES] = "defines",
    [VUF_VERB_SHOULD] = "should", [VUF_VERB_MAY] = "may",   [VUF_VERB_DESCRIBES] = "describes",
};

const char *vuf_verb_name(vuf_verb v)
{
    return (unsigned)v < VUF_VERB_COUNT ? verb_names[v] : "?";
}

int vuf_verb_parse(const char *s, vuf_verb *out)
{
    for (int v = 0; v < VUF_VERB_COUNT; v++)
        if (!strcmp(s, verb_names[v])) {
            *out = (vuf_verb)v;
            return 0;
        }
    return -1;
}

/* The words of each normative verb, lower case, matched on word boundaries.
 * docs/rules.md ("Levels") lists the same forms for people. */
static const char *const must_forms[] = {
    "must",     "only legal if", "only valid if",       "requires", "required", "has to", "have to",
    "needs to", "need to",       "considered an error", "invalid",  NULL};
static const char *const should_forms[] = {"should", "is recommended", "not advised", NULL};
static const char *const may_forms[] = {"may", "can", NULL};

static bool has_form(const char *lower, const char *const *forms)
{
    for (; *forms; forms++) {
        size_t n = strlen(*forms);
        for (const char *p = strstr(lower, *forms); p; p = strstr(p + 1, *forms)) {
            bool start = p == lower || !isalpha((unsigned char)p[-1]);
            bool end = !isalpha((unsigned char)p[n]);
            if (start && end)
                return true;
        }
    }
    return false;
}

const char *const *vuf_verb_forms(vuf_verb v)
{
    return v == VUF_VERB_MUST     ? must_forms
           : v == VUF_VERB_SHOULD ? should_forms
           : v == VUF_VERB_MAY    ? may_forms
                                  : NULL;
}

vuf_verb vuf_verb_detect(const char *sentence)
{
    char lower[1024];
    size_t i = 0;
    for (; sentence && sentence[i] && i + 1 < sizeof lower; i++)
        lower[i] = (char)tolower((unsigned char)sentence[i]);
    lower[i] = 0;
    if (has_form(lower, must_forms))
        return VUF_VERB_MUST;
    if (has_form(lower, should_forms))
        return VUF_VERB_SHOULD;
    if (has_form(lower, may_forms))
        return VUF_VERB_MAY;
    return VUF_VERB_DESCRIBES;
}

/* ---------- lookups ---------- */

vuf_spec *vuf_spec_alloc(const char *filename)
{
    vuf_spec *s = calloc(1, sizeof *s);
    if (!s)
        return NULL;
    s->filename = strdup(filename ? filename : "<spec>");
    if (!s->filename) {
        free(s);
        return NULL;
    }
    return s;
}

vuf_feature_def *vuf_spec_find_feature(const vuf_spec *s, vuf_space sp, const char *name)
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

static const vuf_payload_def empty_payload = {
    .name = "empty", .varray_field = -1, .is_empty = true, .section = ""};

const vuf_payload_def *vuf_spec_find_payload(const vuf_spec *s, const char *name)
{
    if (!strcmp(name, "empty"))
        return &empty_payload;
    for (size_t i = 0; i < s->npayloads; i++)
        if (!strcmp(s->payloads[i]->name, name))
            return s->payloads[i];
    return NULL;
}

static uint32_t name_hash(const char *n)
{
    uint32_t h = 2166136261u; /* FNV-1a over the lower-case name */
    for (; *n; n++)
        h = (h ^ (uint32_t)(unsigned char)tolower((unsigned char)*n)) * 16777619u;
    return h;
}

vuf_msg_def *vuf_spec_find_msg(const vuf_spec *s, int chan, const char *name)
{
    if (s->indexed && chan == VUF_CHAN_COUNT) {
        /* every name (current and former) of both channels, front-end first */
        for (uint32_t i = name_hash(name) % VUF_SPEC_NAME_SLOTS, k = 0; k < VUF_SPEC_NAME_SLOTS;
             k++, i = (i + 1) % VUF_SPEC_NAME_SLOTS) {
            if (!s->names[i].name)
                return NULL;
            if (!strcasecmp(s->names[i].name, name))
                return s->names[i].msg;
        }
        return NULL;
    }
    if (s->indexed) {
        vuf_msg_def *m = vuf_spec_find_msg(s, VUF_CHAN_COUNT, name);
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

static void index_name(vuf_spec *s, const char *name, vuf_msg_def *m)
{
    for (uint32_t i = name_hash(name) % VUF_SPEC_NAME_SLOTS, k = 0; k < VUF_SPEC_NAME_SLOTS;
         k++, i = (i + 1) % VUF_SPEC_NAME_SLOTS) {
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
    if (names > VUF_SPEC_NAME_SLOTS / 2)
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

static int cmp_msg(const void *a, const void *b)
{
    const vuf_msg_def *x = *(vuf_msg_def *const *)a, *y = *(vuf_msg_def *const *)b;
    return x->id < y->id ? -1 : x->id > y->id;
}

void vuf_spec_finalize(vuf_spec *s)
{
    for (int c = 0; c < VUF_CHAN_COUNT; c++)
        qsort(s->msgs[c], s->nmsgs[c], sizeof(vuf_msg_def *), cmp_msg);
    build_indexes(s);
}

/* ---------- field references ---------- */

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

/* The integer of `width` bytes at p, in the host's byte order (vhost-user's:
 * the peers share a host). */
static uint64_t int_load(const uint8_t *p, uint32_t width)
{
    switch (width) {
    case 1:
        return p[0];
    case 2: {
        uint16_t x;
        memcpy(&x, p, 2);
        return x;
    }
    case 4: {
        uint32_t x;
        memcpy(&x, p, 4);
        return x;
    }
    default: {
        uint64_t x;
        memcpy(&x, p, 8);
        return x;
    }
    }
}

static void int_store(uint8_t *p, uint32_t width, uint64_t v)
{
    switch (width) {
    case 1:
        p[0] = (uint8_t)v;
        break;
    case 2: {
        uint16_t x = (uint16_t)v;
        memcpy(p, &x, 2);
        break;
    }
    case 4: {
        uint32_t x = (uint32_t)v;
        memcpy(p, &x, 4);
        break;
    }
    default:
        memcpy(p, &v, 8);
        break;
    }
}

bool vuf_field_read(const vuf_field_ref *r, const uint8_t *payload, size_t len, uint64_t *out)
{
    if (!r->present || (size_t)r->offset + r->width > len)
        return false;
    *out = int_load(payload + r->offset, r->width) & r->mask;
    return true;
}

uint64_t vuf_field_get(const vuf_field_ref *r, const uint8_t *payload, size_t len, uint64_t shift)
{
    if (!r->present || shift > len || (size_t)r->offset + r->width > len - shift)
        return 0;
    return int_load(payload + shift + r->offset, r->width) & r->mask;
}

bool vuf_field_write(const vuf_field_ref *r, uint8_t *payload, size_t len, uint64_t v)
{
    if (!r->present || (size_t)r->offset + r->width > len)
        return false;
    int_store(payload + r->offset, r->width, v);
    return true;
}

uint64_t vuf_int_load(const uint8_t *p, uint32_t width)
{
    return int_load(p, width);
}

void vuf_int_store(uint8_t *p, uint32_t width, uint64_t v)
{
    int_store(p, width, v);
}

void vuf_spec_free(vuf_spec *s)
{
    if (!s)
        return;
    vuf_arena_free(s->arena);
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
    return vuf_spec_find_msg(s, (int)c, name);
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
    return vuf_spec_find_feature(s, sp, n);
}

int vuf_spec_feature_bit(const vuf_spec *s, vuf_space sp, const char *name)
{
    const vuf_feature_def *f = vuf_spec_find_feature(s, sp, name);
    return f ? (int)f->bit : -1;
}

size_t vuf_spec_device_count(const vuf_spec *s)
{
    return s->ndevices;
}

const vuf_device_def *vuf_spec_device_at(const vuf_spec *s, size_t i)
{
    return i < s->ndevices ? s->devices[i] : NULL;
}

const vuf_device_def *vuf_spec_device(const vuf_spec *s, const char *name)
{
    for (size_t i = 0; name && i < s->ndevices; i++)
        if (!strcasecmp(s->devices[i]->name, name))
            return s->devices[i];
    return NULL;
}

void vuf_spec_device_names(const vuf_spec *s, char *out, size_t cap)
{
    size_t len = 0;
    if (cap)
        out[0] = 0;
    for (size_t i = 0; i < s->ndevices && len < cap; i++) {
        int n = snprintf(out + len, cap - len, "%s%s", i ? ", " : "", s->devices[i]->name);
        if (n < 0)
            return;
        len += (size_t)n;
    }
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
    return vuf_spec_find_payload(s, name);
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
