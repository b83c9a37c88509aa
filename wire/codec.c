/* SPDX-License-Identifier: Apache-2.0 */
/* The I/O-free vhost-user codec, driven by the spec table. */
#include "vuf_codec.h"
#include "vuf_event.h"
#include "vuf_util.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---------- fd kinds ---------- */

static const char *const fdkind_names[VUF_FDKIND_COUNT] = {
    [VUF_FDKIND_UNKNOWN] = "unknown",
    [VUF_FDKIND_EVENTFD] = "eventfd",
    [VUF_FDKIND_MEMFD] = "memfd",
    [VUF_FDKIND_FILE] = "file",
    [VUF_FDKIND_SOCKET] = "socket",
    [VUF_FDKIND_SOCKET_LISTEN] = "socket-listen",
    [VUF_FDKIND_SOCKET_DGRAM] = "socket-dgram",
    [VUF_FDKIND_SOCKET_CLOSED] = "socket-closed",
    [VUF_FDKIND_PIPE] = "pipe",
    [VUF_FDKIND_DEVNULL] = "devnull",
    [VUF_FDKIND_OTHER] = "other",
};

const char *vuf_fdkind_name(vuf_fdkind k)
{
    return (unsigned)k < VUF_FDKIND_COUNT ? fdkind_names[k] : "unknown";
}

int vuf_fdkind_parse(const char *s, vuf_fdkind *out)
{
    for (int k = 0; k < VUF_FDKIND_COUNT; k++)
        if (!strcmp(s, fdkind_names[k])) {
            *out = (vuf_fdkind)k;
            return 0;
        }
    return -1;
}

int vuf_fdkind_matches(vuf_fdkind k, vuf_fdkind_rule rule)
{
    switch (rule) {
    case VUF_FDK_ANY:
        return 1;
    case VUF_FDK_EVENTFD:
        /* "Either eventfd or pipe/pipe2. On platforms where eventfd is not
         * available, QEMU will automatically fall back to pipe2 or, as a last
         * resort, pipe." (Support for platforms other than Linux) */
        return k == VUF_FDKIND_EVENTFD || k == VUF_FDKIND_PIPE;
    case VUF_FDK_SHM:
        return k == VUF_FDKIND_MEMFD || k == VUF_FDKIND_FILE;
    case VUF_FDK_SOCKET:
        return k == VUF_FDKIND_SOCKET;
    }
    return 0;
}

/* ---------- header ---------- */

void vuf_hdr_decode(const uint8_t b[VUF_HDR_SIZE], vuf_hdr *h)
{
    memcpy(&h->request, b, 4);
    memcpy(&h->flags, b + 4, 4);
    memcpy(&h->size, b + 8, 4);
}

void vuf_hdr_encode(const vuf_hdr *h, uint8_t b[VUF_HDR_SIZE])
{
    memcpy(b, &h->request, 4);
    memcpy(b + 4, &h->flags, 4);
    memcpy(b + 8, &h->size, 4);
}

/* The u64 layout of ack replies. A table normally declares "payload u64 8";
 * this fallback keeps acks decodable with a table that does not. */
static const vuf_field_def u64_fields[] = {{.name = "u64", .type = VUF_FT_U64, .size = 8}};
static const vuf_payload_def u64_fallback = {.name = "u64",
                                             .fixed_size = 8,
                                             .nfields = 1,
                                             .fields = u64_fields,
                                             .varray_field = -1,
                                             .declared_fixed = 8};

const vuf_payload_def *vuf_reply_layout(const vuf_spec *s, const vuf_msg_def *def,
                                        bool explicit_reply)
{
    if (def && explicit_reply && def->reply_payload)
        return def->reply_payload;
    const vuf_payload_def *p = vuf_spec_payload(s, "u64");
    return p ? p : &u64_fallback;
}

bool vuf_msg_decode(const vuf_spec *s, vuf_channel ch, const uint8_t *buf, size_t len,
                    vuf_msg_view *out)
{
    memset(out, 0, sizeof *out);
    if (len < VUF_HDR_SIZE)
        return false;
    vuf_hdr_decode(buf, &out->hdr);
    out->is_reply = (out->hdr.flags & VUF_F_REPLY) != 0;
    out->def = vuf_spec_msg(s, ch, out->hdr.request);
    out->payload = buf + VUF_HDR_SIZE;
    out->payload_len = len - VUF_HDR_SIZE;
    if (out->def) {
        const vuf_msg_def *d = out->def;
        if (!out->is_reply)
            out->layout = d->request;
        else if (d->reply == VUF_REPLY_ALWAYS)
            out->layout = vuf_reply_layout(s, d, true);
        else if (d->reply_cond != VUF_COND_NONE && d->reply_payload &&
                 vuf_payload_check_size(d->reply_payload, VUF_SIZE_EXACT, out->payload,
                                        out->payload_len, NULL) == VUF_SZ_OK)
            /* conditional explicit reply: chosen by shape, the checker knows the state */
            out->layout = d->reply_payload;
        else
            out->layout = vuf_reply_layout(s, d, false);
    }
    return true;
}

uint64_t vuf_payload_count(const vuf_payload_def *p, const uint8_t *pl, size_t len)
{
    if (!p || p->varray_field < 0)
        return 0;
    const vuf_field_def *va = &p->fields[p->varray_field];
    const vuf_field_def *cf = &p->fields[va->count_field];
    vuf_field_ref r = {.present = true, .offset = cf->offset, .width = cf->size, .mask = ~0ull};
    uint64_t v = 0;
    if (!vuf_field_read(&r, pl, len, &v))
        return 0;
    return v;
}

vuf_size_verdict vuf_payload_check_size(const vuf_payload_def *p, vuf_size_rule rule,
                                        const uint8_t *pl, size_t len, uint64_t *expected)
{
    uint64_t need = p ? p->fixed_size : 0;
    vuf_size_verdict v = VUF_SZ_OK;
    if (p && p->varray_field >= 0 && len >= p->fixed_size) {
        uint64_t n = vuf_payload_count(p, pl, len);
        uint32_t max = p->fields[p->varray_field].max_count;
        if (n > max)
            v = VUF_SZ_COUNT_OVER;
        need = vuf_payload_size(p, n);
    }
    if (expected)
        *expected = need;
    if (v != VUF_SZ_OK)
        return v;
    switch (rule) {
    case VUF_SIZE_ANY:
        return VUF_SZ_OK;
    case VUF_SIZE_MIN:
        return len < (p ? p->fixed_size : 0) ? VUF_SZ_SHORT : VUF_SZ_OK;
    case VUF_SIZE_EXACT:
        break;
    }
    if (len < need)
        return VUF_SZ_SHORT;
    if (len > need)
        return VUF_SZ_LONG;
    return VUF_SZ_OK;
}

bool vuf_fd_rule_range(const vuf_fd_rule *r, const uint8_t *pl, size_t len, uint32_t *min,
                       uint32_t *max)
{
    uint64_t v;
    switch (r->kind) {
    case VUF_FDRULE_EXACT:
        *min = *max = r->a;
        return true;
    case VUF_FDRULE_RANGE:
        *min = r->a;
        *max = r->b;
        return true;
    case VUF_FDRULE_COUNT:
        if (!vuf_field_read(&r->ref, pl, len, &v))
            return false;
        *min = *max = v > 0xffffffffu ? 0xffffffffu : (uint32_t)v;
        return true;
    case VUF_FDRULE_NOFD:
        if (!vuf_field_read(&r->ref, pl, len, &v))
            return false;
        *min = *max = (v >> r->a) & 1 ? 0 : 1;
        return true;
    }
    return false;
}

/* ---------- hex ---------- */

size_t vuf_hex_encode(const uint8_t *b, size_t n, char *out, size_t cap)
{
    static const char d[] = "0123456789abcdef";
    size_t j = 0;
    for (size_t i = 0; i < n && j + 2 < cap; i++) {
        out[j++] = d[b[i] >> 4];
        out[j++] = d[b[i] & 15];
    }
    if (cap)
        out[j < cap ? j : cap - 1] = 0;
    return j;
}

static int hexval(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

int vuf_hex_decode(const char *s, uint8_t *out, size_t cap, size_t *n)
{
    size_t l = strlen(s);
    if (l % 2)
        return -1;
    if (l / 2 > cap)
        return -1;
    for (size_t i = 0; i < l / 2; i++) {
        int hi = hexval(s[2 * i]), lo = hexval(s[2 * i + 1]);
        if (hi < 0 || lo < 0)
            return -1;
        out[i] = (uint8_t)(hi << 4 | lo);
    }
    *n = l / 2;
    return 0;
}

/* ---------- payload builder ---------- */

void vuf_pb_init(vuf_payload_builder *b, const vuf_payload_def *def)
{
    b->def = def;
    b->len = def ? def->fixed_size : 0;
    b->nelem = 0;
    b->count_set = false;
    memset(b->buf, 0, b->def ? (b->len < sizeof b->buf ? b->len : sizeof b->buf) : 0);
}

/* Grow the variable tail to hold element idx. */
static int pb_grow(vuf_payload_builder *b, uint64_t idx)
{
    const vuf_field_def *va = &b->def->fields[b->def->varray_field];
    if (idx >= va->max_count)
        return -1;
    size_t need = (size_t)va->offset + (size_t)(idx + 1) * va->size;
    if (need > sizeof b->buf)
        return -1;
    if (need > b->len) {
        memset(b->buf + b->len, 0, need - b->len);
        b->len = need;
    }
    if (idx + 1 > b->nelem)
        b->nelem = (uint32_t)(idx + 1);
    return 0;
}

/* A value for a payload field: a number, hex text or raw bytes. */
typedef struct {
    enum { PV_NUM, PV_HEX, PV_BYTES } kind;
    uint64_t num;
    const char *hex;
    const uint8_t *bytes;
    size_t nbytes;
} pb_value;

/* The bytes of a byte-valued field: raw bytes as they are, hex decoded into
 * tmp. false: not bytes. */
static bool pv_bytes(const pb_value *val, uint8_t *tmp, size_t cap, const uint8_t **out, size_t *n)
{
    if (val->kind == PV_BYTES) {
        if (val->nbytes > cap)
            return false;
        *out = val->bytes;
        *n = val->nbytes;
        return true;
    }
    *out = tmp;
    return val->kind == PV_HEX && !vuf_hex_decode(val->hex, tmp, cap, n);
}

static bool pv_number(const pb_value *val, uint64_t *v)
{
    if (val->kind == PV_NUM) {
        *v = val->num;
        return true;
    }
    return val->kind == PV_HEX && vuf_parse_u64(val->hex, v);
}

/* Set `path` of layout p in the bytes at buf: the whole payload (b, whose
 * variable tail may grow) or one element of an array (b NULL: a fixed
 * layout). */
static int pb_set_at(vuf_payload_builder *b, const vuf_payload_def *p, uint8_t *buf,
                     const char *path, const pb_value *val, char *err, size_t errcap)
{
    if (!p || p->is_empty) {
        snprintf(err, errcap, "message has no payload fields (use raw=HEX)");
        return -1;
    }
    if (!strncmp(path, "pad@", 4)) {
        char *end;
        unsigned long off = strtoul(path + 4, &end, 10);
        for (size_t i = 0; i < p->nfields; i++) {
            const vuf_field_def *f = &p->fields[i];
            if (f->type != VUF_FT_PAD || f->offset != off || *end)
                continue;
            uint8_t tmp[4096];
            const uint8_t *src;
            size_t n;
            if (!pv_bytes(val, tmp, sizeof tmp, &src, &n) || n != f->size) {
                snprintf(err, errcap, "'%s' takes %u hex bytes", path, f->size);
                return -1;
            }
            if (n)
                memcpy(buf + f->offset, src, n);
            return 0;
        }
        snprintf(err, errcap, "no padding at '%s' in payload '%s'", path, p->name);
        return -1;
    }
    const char *br = strchr(path, '[');
    size_t nlen = br ? (size_t)(br - path) : strlen(path);
    const vuf_field_def *f = NULL;
    size_t fi = 0;
    for (size_t i = 0; i < p->nfields; i++)
        if (p->fields[i].name && strlen(p->fields[i].name) == nlen &&
            !memcmp(p->fields[i].name, path, nlen)) {
            f = &p->fields[i];
            fi = i;
        }
    if (!f) {
        snprintf(err, errcap, "unknown field '%.*s' in payload '%s'",
                 (int)(nlen > 100 ? 100 : nlen), path, p->name);
        return -1;
    }
    const char *name = f->name;
    uint64_t v;
    if (f->type <= VUF_FT_U64) {
        if (br) {
            snprintf(err, errcap, "field '%s' is not an array", name);
            return -1;
        }
        if (!pv_number(val, &v)) {
            snprintf(err, errcap, "bad number '%s' for field '%s'",
                     val->kind == PV_HEX ? val->hex : "(bytes)", name);
            return -1;
        }
        if (f->size < 8 && v >> (f->size * 8)) {
            snprintf(err, errcap, "value 0x%llx does not fit the %u-byte field '%s'",
                     (unsigned long long)v, f->size, name);
            return -1;
        }
        vuf_int_store(buf + f->offset, f->size, v);
        if (b && p->varray_field >= 0 && p->fields[p->varray_field].count_field == (int)fi)
            b->count_set = true;
        return 0;
    }
    if (f->type == VUF_FT_BYTES || (f->type == VUF_FT_VARRAY && !f->element && !br)) {
        uint8_t tmp[VUF_PAYLOAD_MAX];
        const uint8_t *src;
        size_t n;
        if (br || val->kind == PV_NUM) {
            snprintf(err, errcap, "field '%s' takes hex bytes", name);
            return -1;
        }
        if (!pv_bytes(val, tmp, sizeof tmp, &src, &n)) {
            snprintf(err, errcap, "bad hex bytes for field '%s'", name);
            return -1;
        }
        if (f->type == VUF_FT_BYTES) {
            if (n != f->size) {
                snprintf(err, errcap, "field '%s' takes %u bytes, got %zu", name, f->size, n);
                return -1;
            }
            if (n)
                memcpy(buf + f->offset, src, n);
            return 0;
        }
        /* a tail of integers given as bytes: whole elements only */
        size_t nel = n / f->size;
        if (!b || n % f->size || nel > f->max_count || (nel && pb_grow(b, nel - 1))) {
            snprintf(err, errcap, "field '%s' takes whole %u-byte elements, at most %u", name,
                     f->size, f->max_count);
            return -1;
        }
        if (n)
            memcpy(buf + f->offset, src, n);
        if (n == 0) {
            b->len = f->offset;
            b->nelem = 0;
        }
        return 0;
    }
    if (f->type == VUF_FT_PAD) {
        snprintf(err, errcap, "padding has no name");
        return -1;
    }
    /* VARRAY element: name[i] or name[i].sub */
    if (!br) {
        snprintf(err, errcap, "field '%s' is an array: use %s[N]%s", name, name,
                 f->element ? ".FIELD" : "");
        return -1;
    }
    const char *rest = br + 1;
    char *end;
    errno = 0;
    unsigned long long idx = strtoull(rest, &end, 10);
    if (errno || end == rest || *end != ']') {
        snprintf(err, errcap, "bad index in '%s'", path);
        return -1;
    }
    if (!b) {
        snprintf(err, errcap, "'%s': an array inside an array element", path);
        return -1;
    }
    if (pb_grow(b, idx)) {
        snprintf(err, errcap, "index %llu of '%s' is beyond its max %u", idx, name, f->max_count);
        return -1;
    }
    uint8_t *base = buf + f->offset + idx * f->size;
    if (!f->element) {
        if (end[1]) {
            snprintf(err, errcap, "bad path '%s'", path);
            return -1;
        }
        if (!pv_number(val, &v)) {
            snprintf(err, errcap, "bad number '%s'", val->kind == PV_HEX ? val->hex : "(bytes)");
            return -1;
        }
        if (f->size < 8 && v >> (f->size * 8)) {
            snprintf(err, errcap, "value does not fit '%s'", path);
            return -1;
        }
        vuf_int_store(base, f->size, v);
        return 0;
    }
    if (end[1] != '.') {
        snprintf(err, errcap, "'%s' needs a member: %s[%llu].FIELD", path, name, idx);
        return -1;
    }
    /* the element's own layout, written in place (it has no variable tail) */
    return pb_set_at(NULL, f->element, base, end + 2, val, err, errcap);
}

int vuf_pb_set(vuf_payload_builder *b, const char *path, const char *value, char *err,
               size_t errcap)
{
    pb_value v = {.kind = PV_HEX, .hex = value};
    return pb_set_at(b, b->def, b->buf, path, &v, err, errcap);
}

int vuf_pb_set_num(vuf_payload_builder *b, const char *path, uint64_t v, char *err, size_t errcap)
{
    pb_value pv = {.kind = PV_NUM, .num = v};
    return pb_set_at(b, b->def, b->buf, path, &pv, err, errcap);
}

int vuf_pb_set_bytes(vuf_payload_builder *b, const char *path, const uint8_t *data, size_t len,
                     char *err, size_t errcap)
{
    pb_value pv = {.kind = PV_BYTES, .bytes = data, .nbytes = len};
    return pb_set_at(b, b->def, b->buf, path, &pv, err, errcap);
}

size_t vuf_pb_finish(vuf_payload_builder *b)
{
    const vuf_payload_def *p = b->def;
    if (!p)
        return 0;
    if (p->varray_field >= 0 && !b->count_set) {
        const vuf_field_def *cf = &p->fields[p->fields[p->varray_field].count_field];
        vuf_int_store(b->buf + cf->offset, cf->size, b->nelem);
    }
    return b->len;
}

/* ---------- text form ---------- */

typedef struct {
    char *out;
    size_t cap, len;
} sbuf;

static void sb_printf(sbuf *s, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static void sb_printf(sbuf *s, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    size_t room = s->len < s->cap ? s->cap - s->len : 0;
    int n = vsnprintf(s->out ? s->out + (s->len < s->cap ? s->len : s->cap) : NULL, room, fmt, ap);
    va_end(ap);
    if (n > 0)
        s->len += (size_t)n;
}

static void fmt_num(sbuf *s, uint64_t v)
{
    if (v < 10)
        sb_printf(s, "%llu", (unsigned long long)v);
    else
        sb_printf(s, "0x%llx", (unsigned long long)v);
}

static void fmt_fields(sbuf *s, const vuf_payload_def *p, const uint8_t *pl, const char *prefix,
                       uint64_t nelem, bool *first)
{
    for (size_t i = 0; i < p->nfields; i++) {
        const vuf_field_def *f = &p->fields[i];
        if (f->type == VUF_FT_PAD) {
            /* reserved bytes are printed only when non-zero */
            bool nz = false;
            for (uint32_t k = 0; k < f->size; k++)
                nz |= pl[f->offset + k] != 0;
            if (nz) {
                char hex[2 * 4096 + 1];
                vuf_hex_encode(pl + f->offset, f->size, hex, sizeof hex);
                sb_printf(s, "%s%spad@%u=%s", *first ? "" : " ", prefix, f->offset, hex);
                *first = false;
            }
            continue;
        }
        if (f->type <= VUF_FT_U64) {
            uint64_t v = vuf_int_load(pl + f->offset, f->size);
            if (p->varray_field >= 0 && p->fields[p->varray_field].count_field == (int)i &&
                v == nelem)
                continue; /* derived and consistent: omitted */
            sb_printf(s, "%s%s%s=", *first ? "" : " ", prefix, f->name);
            fmt_num(s, v);
            *first = false;
        } else if (f->type == VUF_FT_BYTES) {
            char hex[2 * 4096 + 1];
            vuf_hex_encode(pl + f->offset, f->size, hex, sizeof hex);
            sb_printf(s, "%s%s%s=%s", *first ? "" : " ", prefix, f->name, hex);
            *first = false;
        } else if (f->type == VUF_FT_VARRAY) {
            if (!f->element) {
                if (nelem == 0)
                    continue;
                char hex[2 * VUF_PAYLOAD_MAX + 1];
                vuf_hex_encode(pl + f->offset, (size_t)nelem * f->size, hex, sizeof hex);
                sb_printf(s, "%s%s%s=%s", *first ? "" : " ", prefix, f->name, hex);
                *first = false;
                continue;
            }
            for (uint64_t k = 0; k < nelem; k++) {
                char pre[160];
                snprintf(pre, sizeof pre, "%s%s[%llu].", prefix, f->name, (unsigned long long)k);
                fmt_fields(s, f->element, pl + f->offset + k * f->size, pre, 0, first);
            }
        }
    }
}

int vuf_payload_format(const vuf_payload_def *p, const uint8_t *pl, size_t len, char *out,
                       size_t cap)
{
    if (cap)
        out[0] = 0;
    if (!p)
        return len == 0 ? 0 : -1;
    if (p->is_empty)
        return len == 0 ? 0 : -1;
    if (len < p->fixed_size || len > VUF_PAYLOAD_MAX)
        return -1;
    uint64_t nelem = 0;
    if (p->varray_field >= 0) {
        const vuf_field_def *va = &p->fields[p->varray_field];
        if ((len - p->fixed_size) % va->size)
            return -1;
        nelem = (len - p->fixed_size) / va->size;
        if (nelem > va->max_count)
            return -1;
        /* A byte tail whose count field disagrees cannot print losslessly
         * unless the count is printed; it always is when it differs. */
    } else if (len != p->fixed_size) {
        return -1;
    }
    sbuf s = {out, cap, 0};
    bool first = true;
    fmt_fields(&s, p, pl, "", nelem, &first);
    return (int)s.len;
}
