/* SPDX-License-Identifier: Apache-2.0 */
/* The structure-aware session mutator (vuf_mutator.h).
 *
 * Inputs are protobuf-c messages; mutations walk the descriptors of the
 * generated code (ProtobufCMessageDescriptor / ProtobufCFieldDescriptor), so
 * a field added to fuzz/session.proto is mutated with no change here. Memory
 * follows protobuf-c's unpack conventions (malloc'd strings, bytes, arrays
 * and submessages) so protobuf_c_message_free_unpacked() frees any result. */
#include "vuf_mutator.h"
#include "vuf_session.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct vuf_mutator {
    const vuf_spec *spec;
    vuf_session_wire *wire; /* scratch: what a message derives to */
    vuf_byte_mutator bytes;
    uint64_t rng;
    const char *last;
    uint8_t *scratch;
    size_t scratch_cap;
    vuf_session_guest guest; /* the guest of the session being mutated */
};

/* ---------- randomness ---------- */

static uint64_t rnd(vuf_mutator *m)
{
    /* xorshift64* */
    uint64_t x = m->rng;
    x ^= x >> 12;
    x ^= x << 25;
    x ^= x >> 27;
    m->rng = x;
    return x * 0x2545f4914f6cdd1dull;
}

static uint64_t below(vuf_mutator *m, uint64_t n)
{
    return n ? rnd(m) % n : 0;
}

static void seed(vuf_mutator *m, unsigned s)
{
    m->rng = 0x9e3779b97f4a7c15ull ^ ((uint64_t)s * 0xbf58476d1ce4e5b9ull);
    if (!m->rng)
        m->rng = 1;
    rnd(m);
}

static const uint64_t interesting[] = {0,
                                       1,
                                       2,
                                       3,
                                       4,
                                       7,
                                       8,
                                       0xf,
                                       0x10,
                                       0x1f,
                                       0x20,
                                       0x40,
                                       0x7f,
                                       0x80,
                                       0xff,
                                       0x100,
                                       0x101,
                                       0x1ff,
                                       0x200,
                                       0x3ff,
                                       0x400,
                                       0x800,
                                       0x1000,
                                       0x7fff,
                                       0x8000,
                                       0xffff,
                                       0x10000,
                                       0x7fffffff,
                                       0x80000000,
                                       0xffffffff,
                                       0x100000000ull,
                                       0x7f0000000000ull,
                                       0xfffffffffffff000ull,
                                       0x7fffffffffffffffull,
                                       0x8000000000000000ull,
                                       0xffffffffffffffffull};

static uint64_t mutate_int(vuf_mutator *m, uint64_t v, unsigned bits)
{
    switch (below(m, 8)) {
    case 0:
    case 1:
        v = interesting[below(m, sizeof interesting / sizeof interesting[0])];
        break;
    case 2:
        v ^= 1ull << below(m, bits);
        break;
    case 3:
        v += 1 + below(m, 16);
        break;
    case 4:
        v -= 1 + below(m, 16);
        break;
    case 5:
        v = below(m, 16);
        break;
    case 6:
        v = rnd(m);
        break;
    default:
        v = ~v;
        break;
    }
    return bits >= 64 ? v : v & ((1ull << bits) - 1);
}

/* ---------- protobuf-c plumbing ---------- */

#define AT(msg, off, type) (*(type *)((char *)(msg) + (off)))

/* A message with its defaults, required strings and sub-messages present
 * (a required field left NULL would pack as missing and never unpack). */
static ProtobufCMessage *new_message(const ProtobufCMessageDescriptor *d)
{
    ProtobufCMessage *p = malloc(d->sizeof_message);
    if (!p)
        return NULL;
    d->message_init(p);
    for (unsigned i = 0; i < d->n_fields; i++) {
        const ProtobufCFieldDescriptor *f = &d->fields[i];
        if (f->label != PROTOBUF_C_LABEL_REQUIRED)
            continue;
        if (f->type == PROTOBUF_C_TYPE_STRING) {
            char *e = malloc(1);
            if (e)
                *e = 0;
            *(char **)((char *)p + f->offset) = e;
        } else if (f->type == PROTOBUF_C_TYPE_MESSAGE) {
            *(ProtobufCMessage **)((char *)p + f->offset) = new_message(f->descriptor);
        }
    }
    return p;
}

static ProtobufCMessage *copy_message(vuf_mutator *mu, const ProtobufCMessage *src)
{
    size_t n = protobuf_c_message_get_packed_size(src);
    uint8_t *buf = malloc(n ? n : 1);
    if (!buf)
        return NULL;
    protobuf_c_message_pack(src, buf);
    ProtobufCMessage *c = protobuf_c_message_unpack(src->descriptor, NULL, n, buf);
    free(buf);
    (void)mu;
    return c;
}

static char *dupstr(const char *s)
{
    size_t n = strlen(s) + 1;
    char *d = malloc(n);
    if (d)
        memcpy(d, s, n);
    return d;
}

static void set_string(char **slot, const char *s)
{
    char *d = dupstr(s);
    if (d) {
        free(*slot);
        *slot = d;
    }
}

static size_t elem_size(const ProtobufCFieldDescriptor *f)
{
    switch (f->type) {
    case PROTOBUF_C_TYPE_INT64:
    case PROTOBUF_C_TYPE_SINT64:
    case PROTOBUF_C_TYPE_SFIXED64:
    case PROTOBUF_C_TYPE_UINT64:
    case PROTOBUF_C_TYPE_FIXED64:
    case PROTOBUF_C_TYPE_DOUBLE:
        return 8;
    case PROTOBUF_C_TYPE_STRING:
    case PROTOBUF_C_TYPE_MESSAGE:
        return sizeof(void *);
    case PROTOBUF_C_TYPE_BYTES:
        return sizeof(ProtobufCBinaryData);
    default:
        return 4; /* 32-bit integers, enums, bools (protobuf_c_boolean), float */
    }
}

static unsigned int_bits(const ProtobufCFieldDescriptor *f)
{
    return elem_size(f) == 8 ? 64 : 32;
}

/* ---------- leaf mutations ---------- */

static void mutate_bytes(vuf_mutator *mu, ProtobufCBinaryData *b)
{
    size_t max = b->len + 64 < 4096 ? b->len + 64 : (b->len > 4096 ? b->len : 4096);
    uint8_t *p = malloc(max ? max : 1);
    if (!p)
        return;
    if (b->len)
        memcpy(p, b->data, b->len);
    size_t n = b->len;
    if (mu->bytes && below(mu, 4)) {
        n = mu->bytes(p, n, max);
    } else {
        switch (below(mu, 4)) {
        case 0: /* flip */
            if (n)
                p[below(mu, n)] ^= (uint8_t)(1u << below(mu, 8));
            break;
        case 1: /* insert */
            if (n < max) {
                size_t at = below(mu, n + 1);
                memmove(p + at + 1, p + at, n - at);
                p[at] = (uint8_t)rnd(mu);
                n++;
            }
            break;
        case 2: /* delete */
            if (n) {
                size_t at = below(mu, n);
                memmove(p + at, p + at + 1, n - at - 1);
                n--;
            }
            break;
        default: /* interesting byte */
            if (n)
                p[below(mu, n)] = (uint8_t)interesting[below(mu, 16)];
            break;
        }
    }
    free(b->data);
    b->data = p;
    b->len = n;
}

/* v is an address of the session's guest memory (guest-physical, or the
 * front-end's user address): one near the end of a region instead, its last
 * bytes or the first past it, where a range translated by its start only
 * runs over (CVE-2018-1059). False when v is neither kind of address. */
/* The start of the guest-memory address space v lies in (guest-physical, or
 * the front-end's user addresses); false when v is neither kind. */
static bool guest_address_base(const vuf_mutator *mu, uint64_t v, uint64_t *base)
{
    const vuf_session_guest *g = &mu->guest;
    uint64_t span = g->region_size * g->nregions;
    if (v - g->gpa0 < span)
        *base = g->gpa0;
    else if (v - g->uaddr0 < span)
        *base = g->uaddr0;
    else
        return false;
    return true;
}

static bool near_region_end(vuf_mutator *mu, uint64_t v, uint64_t *out)
{
    static const uint64_t back[] = {0, 1, 2, 4, 8, 0x10, 0x40, 0x80, 0x100, 0x200};
    const vuf_session_guest *g = &mu->guest;
    uint64_t base;
    if (!guest_address_base(mu, v, &base))
        return false;
    uint64_t end = base + g->region_size * (1 + below(mu, g->nregions));
    *out = end - back[below(mu, sizeof back / sizeof back[0])];
    return true;
}

/* An integer of `bits` bits mutated; a 64-bit guest address now and then
 * moved to a region's end instead. */
static uint64_t mutate_value(vuf_mutator *mu, uint64_t v, unsigned bits)
{
    uint64_t near;
    if (bits == 64 && below(mu, 4) == 0 && near_region_end(mu, v, &near))
        return near;
    return mutate_int(mu, v, bits);
}

static void mutate_scalar(vuf_mutator *mu, const ProtobufCFieldDescriptor *f, void *v)
{
    switch (f->type) {
    case PROTOBUF_C_TYPE_BOOL:
        *(protobuf_c_boolean *)v = !*(protobuf_c_boolean *)v;
        break;
    case PROTOBUF_C_TYPE_ENUM: {
        /* only the schema's values: a session with another one is refused */
        const ProtobufCEnumDescriptor *e = f->descriptor;
        if (e && e->n_values)
            *(int *)v = e->values[below(mu, e->n_values)].value;
        break;
    }
    case PROTOBUF_C_TYPE_STRING:
        if (*(char **)v) {
            char *s = *(char **)v;
            size_t n = strlen(s);
            if (n)
                s[below(mu, n)] = (char)('A' + below(mu, 26));
        }
        break;
    case PROTOBUF_C_TYPE_BYTES:
        mutate_bytes(mu, v);
        break;
    case PROTOBUF_C_TYPE_FLOAT:
    case PROTOBUF_C_TYPE_DOUBLE:
        break;
    default:
        if (int_bits(f) == 64)
            *(uint64_t *)v = mutate_value(mu, *(uint64_t *)v, 64);
        else
            *(uint32_t *)v = (uint32_t)mutate_int(mu, *(uint32_t *)v, 32);
        break;
    }
}

/* ---------- the table ---------- */

static const vuf_msg_def *random_def(vuf_mutator *mu, bool backend)
{
    vuf_channel ch = backend ? VUF_CHAN_BACKEND : VUF_CHAN_FRONTEND;
    size_t n = vuf_spec_msg_count(mu->spec, ch);
    return n ? vuf_spec_msg_at(mu->spec, ch, below(mu, n)) : NULL;
}

/* A random field path of a payload layout, and whether it takes bytes. */
static bool random_path(vuf_mutator *mu, const vuf_payload_def *p, char *out, size_t cap,
                        bool *bytes)
{
    if (!p || p->is_empty || !p->nfields)
        return false;
    for (int tries = 0; tries < 8; tries++) {
        const vuf_field_def *f = &p->fields[below(mu, p->nfields)];
        if (!f->name)
            continue;
        *bytes = false;
        if (f->type <= VUF_FT_U64) {
            snprintf(out, cap, "%s", f->name);
        } else if (f->type == VUF_FT_BYTES || (f->type == VUF_FT_VARRAY && !f->element)) {
            snprintf(out, cap, "%s", f->name);
            *bytes = true;
        } else if (f->type == VUF_FT_VARRAY) {
            const vuf_payload_def *e = f->element;
            const vuf_field_def *sub = &e->fields[below(mu, e->nfields)];
            if (!sub->name || sub->type > VUF_FT_U64)
                continue;
            uint32_t k = (uint32_t)below(mu, f->max_count < 4 ? f->max_count : 4);
            snprintf(out, cap, "%s[%u].%s", f->name, k, sub->name);
        } else {
            continue;
        }
        return true;
    }
    return false;
}

/* A value for a field, with the table where it knows better. */
static uint64_t table_value(vuf_mutator *mu, const vuf_msg_def *def, const vuf_payload_def *lay,
                            const char *path, uint64_t v)
{
    /* a value the field can hold: a wider one makes the message unbuildable */
    vuf_field_ref ref;
    unsigned bits = vuf_field_resolve(lay, path, &ref) && ref.width < 8 ? ref.width * 8 : 64;
    if (def && !strcmp(path, "u64") && below(mu, 2)) {
        /* feature words: flip a bit the table names */
        size_t n = vuf_spec_feature_count(mu->spec);
        const vuf_feature_def *f = n ? vuf_spec_feature_at(mu->spec, below(mu, n)) : NULL;
        if (f)
            return v ^ (1ull << f->bit);
    }
    if (def && def->vring.present && !strcmp(path, def->vring.path) && below(mu, 2))
        return below(mu, 4) | (below(mu, 4) ? 0 : 0x100); /* small index, NOFD bit now and then */
    return mutate_value(mu, v, bits);
}

/* ---------- table-aware Message mutations ---------- */

static Vuf__Field *add_field(Vuf__Message *m)
{
    Vuf__Field **nf = realloc(m->fields, (m->n_fields + 1) * sizeof *nf);
    if (!nf)
        return NULL;
    m->fields = nf;
    Vuf__Field *f = (Vuf__Field *)new_message(&vuf__field__descriptor);
    if (!f)
        return NULL;
    m->fields[m->n_fields++] = f; /* path: "" (required, from new_message) */
    return f;
}

static void set_field(vuf_mutator *mu, const vuf_msg_def *def, const vuf_payload_def *lay,
                      Vuf__Field *f, const char *path, bool bytes)
{
    set_string(&f->path, path);
    if (bytes) {
        f->has_bytes = true;
        f->has_value = false;
        mutate_bytes(mu, &f->bytes);
    } else {
        f->has_value = true;
        f->has_bytes = false;
        free(f->bytes.data);
        f->bytes.data = NULL;
        f->bytes.len = 0;
        f->value = table_value(mu, def, lay, path, f->value);
    }
}

/* Field `path` of m set to v (added when m does not have it). */
static bool set_path_value(Vuf__Message *m, const char *path, uint64_t v)
{
    Vuf__Field *f = NULL;
    for (size_t i = 0; i < m->n_fields && !f; i++)
        if (!strcmp(m->fields[i]->path, path))
            f = m->fields[i];
    if (!f && !(f = add_field(m)))
        return false;
    set_string(&f->path, path);
    free(f->bytes.data);
    f->bytes.data = NULL;
    f->bytes.len = 0;
    f->has_bytes = false;
    f->has_value = true;
    f->value = v;
    return true;
}

/* An address range the table declares (`span BASE SIZE`, in the payload or
 * in an element of its array) made to wrap around 2^64, or to end exactly
 * at it: BASE + SIZE is then a small number that passes a check written as
 * `base + size <= limit` (CVE-2020-10722, the SET_LOG_BASE overflow; the
 * region overflows of SET_MEM_TABLE and IOTLB updates). Two fields at once:
 * the generic mutations change one at a time and almost never meet. */
static bool span_wrap(vuf_mutator *mu, const vuf_payload_def *lay, Vuf__Message *m)
{
    if (!lay || lay->is_empty)
        return false;
    const vuf_payload_def *p = lay;
    char prefix[48] = "";
    if (!lay->nspans && lay->varray_field >= 0) {
        const vuf_field_def *va = &lay->fields[lay->varray_field];
        if (!va->element || !va->max_count)
            return false;
        p = va->element;
        snprintf(prefix, sizeof prefix, "%s[%u].", va->name,
                 (unsigned)below(mu, va->max_count < 2 ? va->max_count : 2));
    }
    if (!p->nspans)
        return false;
    const vuf_span_def *sp = &p->spans[below(mu, p->nspans)];
    const vuf_field_def *bf = &p->fields[sp->base_field], *sf = &p->fields[sp->size_field];
    if (!bf->name || !sf->name || bf->size != 8 || sf->size != 8)
        return false;
    static const uint64_t ends[] = {0, 1, 0x1000, 0x2000, 0x10000};
    static const uint64_t bases[] = {1ull << 63, ~0ull, ~0ull - 0xfff, ~0ull - 0xffff, 0x1000};
    uint64_t end = ends[below(mu, sizeof ends / sizeof ends[0])];
    uint64_t base = bases[below(mu, sizeof bases / sizeof bases[0])];
    uint64_t size = end - base; /* base + size == end (mod 2^64) */
    if (below(mu, 4) == 0)
        size = 0 - base; /* the last byte is 2^64 - 1: no wrap, on the edge */
    char bpath[128], spath[128];
    snprintf(bpath, sizeof bpath, "%s%s", prefix, bf->name);
    snprintf(spath, sizeof spath, "%s%s", prefix, sf->name);
    if (!set_path_value(m, bpath, base) || !set_path_value(m, spath, size))
        return false;
    mu->last = "span-wrap";
    return true;
}

static Vuf__Fd *new_fd(Vuf__FdKind k, uint32_t ref, bool has_ref);

/* Valid by default, broken on purpose: make one field the table derives
 * explicit and wrong (the fd count, the count field, the no-fd bit, the
 * header's size, the length sent). */
static bool break_derived(vuf_mutator *mu, Vuf__Message *m, bool backend)
{
    char err[160];
    vuf_channel ch = backend ? VUF_CHAN_BACKEND : VUF_CHAN_FRONTEND;
    if (!mu->wire || vuf_session_build(mu->spec, ch, m, mu->wire, err, sizeof err))
        return false;
    const vuf_session_wire *w = mu->wire;
    size_t plen = w->len >= VUF_HDR_SIZE ? w->len - VUF_HDR_SIZE : 0;
    switch (below(mu, 5)) {
    case 0: { /* one fd more or fewer than derived, the rest as derived */
        size_t n = w->nfds;
        bool more = !n || below(mu, 2);
        size_t want = more ? n + 1 : n - 1;
        Vuf__Fd **v = calloc(want + 1, sizeof *v);
        if (!v)
            return false;
        for (size_t i = 0; i < want; i++) {
            const Vuf__Fd *src = i < n ? &w->fds[i] : n ? &w->fds[n - 1] : NULL;
            v[i] = new_fd(src ? src->kind : VUF__FD_KIND__FD_EVENTFD, src ? src->ref : 0,
                          src && src->has_ref);
            if (v[i] && src && src->has_size && !w->fd_size_derived[i < n ? i : n - 1]) {
                v[i]->has_size = true;
                v[i]->size = src->size;
            }
        }
        for (size_t i = 0; i < m->n_fds; i++)
            protobuf_c_message_free_unpacked(&m->fds[i]->base, NULL);
        free(m->fds);
        m->fds = v;
        m->n_fds = want;
        m->has_no_fds = want == 0;
        m->no_fds = want == 0;
        mu->last = more ? "break-fd-count-up" : "break-fd-count-down";
        return true;
    }
    case 1: { /* the count field of a variable payload, one off */
        const vuf_payload_def *lay = w->def ? w->def->request : NULL;
        if (!lay || lay->varray_field < 0 || m->has_raw_payload)
            return false;
        const char *cf = lay->fields[lay->fields[lay->varray_field].count_field].name;
        uint64_t cnt = vuf_payload_count(lay, w->data + VUF_HDR_SIZE, plen);
        if (!set_path_value(m, cf, below(mu, 3) ? cnt + 1 : cnt ? cnt - 1 : 1))
            return false;
        mu->last = "break-count-field";
        return true;
    }
    case 2: /* the no-fd bit against the fds sent */
        if (!w->def || w->def->fds.kind != VUF_FDRULE_NOFD)
            return false;
        m->has_nofd = true;
        m->nofd = w->nfds != 0;
        mu->last = "break-nofd";
        return true;
    case 3: /* the header's size */
        m->has_size = true;
        m->size = below(mu, 2) ? (uint32_t)plen + 1 + (uint32_t)below(mu, 8)
                               : (uint32_t)mutate_int(mu, plen, 32);
        mu->last = "break-hdr-size";
        return true;
    default: /* fewer bytes than built */
        if (w->len < 2)
            return false;
        m->has_truncate = true;
        m->truncate = (uint32_t)below(mu, w->len);
        mu->last = "break-truncate";
        return true;
    }
}

/* The table's definition of m (NULL for an unknown message) and the layout
 * its payload is built with. */
static const vuf_payload_def *message_layout(const vuf_mutator *mu, const Vuf__Message *m,
                                             bool backend, const vuf_msg_def **def)
{
    uint32_t id;
    bool try_ack;
    *def = vuf_session_msg_def(mu->spec, backend ? VUF_CHAN_BACKEND : VUF_CHAN_FRONTEND, m, &id);
    /* as vuf_session_build decides it: the REPLY flag, set by either field */
    bool reply = (m->has_reply && m->reply) || (m->has_flags && (m->flags & VUF_F_REPLY));
    return *def ? vuf_session_layout(mu->spec, *def, reply, &try_ack) : NULL;
}

/* The fields m's layout does not have, or has as the other kind (number or
 * bytes), dropped: a message renamed or given another id keeps the old
 * one's fields, and the generic protobuf mutations add fields with empty or
 * mangled paths. Such a message does not build, the whole session is
 * skipped, and the execution is lost: one in eight of a campaign's inputs
 * was, before. A dropped derived field comes back derived. */
static void fit_fields(const vuf_mutator *mu, Vuf__Message *m, bool backend)
{
    const vuf_msg_def *def;
    const vuf_payload_def *lay = message_layout(mu, m, backend, &def);
    size_t k = 0;
    for (size_t i = 0; i < m->n_fields; i++) {
        Vuf__Field *f = m->fields[i];
        uint32_t fixed = 0;
        vuf_session_field_kind kind = lay && !lay->is_empty
                                          ? vuf_session_field_shape(lay, f->path, &fixed)
                                          : VUF_SFIELD_INVALID;
        bool fits = (kind == VUF_SFIELD_INT && (f->has_value || (f->has_offered && f->offered))) ||
                    (kind == VUF_SFIELD_BYTES && !(f->has_value && !f->has_bytes));
        if (fits && kind == VUF_SFIELD_BYTES && fixed && f->bytes.len != fixed) {
            /* cut, or zero-filled, to the length the field has */
            uint8_t *b = calloc(1, fixed);
            if (b) {
                if (f->bytes.len)
                    memcpy(b, f->bytes.data, f->bytes.len < fixed ? f->bytes.len : fixed);
                free(f->bytes.data);
                f->bytes.data = b;
                f->bytes.len = fixed;
            } else {
                fits = false;
            }
        }
        if (fits)
            m->fields[k++] = f;
        else
            protobuf_c_message_free_unpacked(&f->base, NULL);
    }
    m->n_fields = k;
}

/* One field of m's layout (a random path: set when m has it, added when
 * not) given a value the table's way. */
static bool mutate_layout_field(vuf_mutator *mu, const vuf_msg_def *def, const vuf_payload_def *lay,
                                Vuf__Message *m)
{
    char path[128];
    bool bytes;
    if (!random_path(mu, lay, path, sizeof path, &bytes))
        return false;
    for (size_t i = 0; i < m->n_fields; i++)
        if (!strcmp(m->fields[i]->path, path)) {
            set_field(mu, def, lay, m->fields[i], path, bytes);
            mu->last = "mutate-field";
            return true;
        }
    Vuf__Field *f = add_field(m);
    if (!f)
        return false;
    set_field(mu, def, lay, f, path, bytes);
    mu->last = "add-field";
    return true;
}

static bool mutate_table_message(vuf_mutator *mu, Vuf__Message *m, bool backend)
{
    const vuf_msg_def *def;
    const vuf_payload_def *lay = message_layout(mu, m, backend, &def);
    switch (below(mu, 9)) {
    case 8:
        return span_wrap(mu, lay, m);
    case 6:
    case 7:
        return break_derived(mu, m, backend);
    case 0: { /* another table message (mostly this channel) */
        const vuf_msg_def *d = random_def(mu, below(mu, 5) == 0 ? !backend : backend);
        if (!d)
            return false;
        set_string(&m->name, d->name);
        m->has_id = false;
        mu->last = "rename-message";
        return true;
    }
    case 1: /* a field of the layout */
        return mutate_layout_field(mu, def, lay, m);
    case 2: /* drop a field (a derived one comes back derived) */
        if (!m->n_fields)
            return false;
        {
            size_t i = below(mu, m->n_fields);
            protobuf_c_message_free_unpacked(&m->fields[i]->base, NULL);
            m->fields[i] = m->fields[--m->n_fields];
        }
        mu->last = "drop-field";
        return true;
    case 3: /* a value, the table's way */
        if (!m->n_fields)
            return false;
        {
            Vuf__Field *f = m->fields[below(mu, m->n_fields)];
            if (f->has_bytes)
                mutate_bytes(mu, &f->bytes);
            else {
                f->has_value = true;
                f->value = table_value(mu, def, lay, f->path, f->value);
            }
        }
        mu->last = "table-value";
        return true;
    case 4: { /* raw id */
        m->has_id = true;
        m->id = below(mu, 2) ? (uint32_t)below(mu, 64) : (uint32_t)mutate_int(mu, m->id, 32);
        free(m->name);
        m->name = NULL;
        mu->last = "raw-id";
        return true;
    }
    default: { /* header: NEED_REPLY, REPLY, truncation */
        unsigned k = (unsigned)below(mu, 3);
        if (k == 0) {
            m->has_need_reply = true;
            m->need_reply = !m->need_reply;
        } else if (k == 1) {
            m->has_reply = true;
            m->reply = !m->reply;
        } else {
            m->has_truncate = !m->has_truncate;
            m->truncate = (uint32_t)below(mu, 24);
        }
        mu->last = "header";
        return true;
    }
    }
}

/* ---------- generic descriptor walk ---------- */

static bool mutate_message(vuf_mutator *mu, ProtobufCMessage *msg, int depth);

/* Set oneof member f of msg to a fresh value (clearing the old member). */
static void oneof_switch(vuf_mutator *mu, ProtobufCMessage *msg, const ProtobufCFieldDescriptor *f)
{
    const ProtobufCMessageDescriptor *d = msg->descriptor;
    uint32_t cur = AT(msg, f->quantifier_offset, uint32_t);
    for (unsigned i = 0; i < d->n_fields; i++) {
        const ProtobufCFieldDescriptor *o = &d->fields[i];
        if (o->id == cur && (o->flags & PROTOBUF_C_FIELD_FLAG_ONEOF) &&
            o->quantifier_offset == f->quantifier_offset) {
            if (o->type == PROTOBUF_C_TYPE_MESSAGE && AT(msg, o->offset, ProtobufCMessage *))
                protobuf_c_message_free_unpacked(AT(msg, o->offset, ProtobufCMessage *), NULL);
            else if (o->type == PROTOBUF_C_TYPE_STRING)
                free(AT(msg, o->offset, char *));
            else if (o->type == PROTOBUF_C_TYPE_BYTES)
                free(AT(msg, o->offset, ProtobufCBinaryData).data);
        }
    }
    memset((char *)msg + f->offset, 0, elem_size(f));
    AT(msg, f->quantifier_offset, uint32_t) = f->id;
    if (f->type == PROTOBUF_C_TYPE_MESSAGE)
        AT(msg, f->offset, ProtobufCMessage *) = new_message(f->descriptor);
    else if (f->type == PROTOBUF_C_TYPE_BOOL)
        AT(msg, f->offset, protobuf_c_boolean) = 1;
    else if (f->type != PROTOBUF_C_TYPE_STRING && f->type != PROTOBUF_C_TYPE_BYTES)
        mutate_scalar(mu, f, (char *)msg + f->offset);
    (void)mu;
}

static void free_elem(const ProtobufCFieldDescriptor *f, void *e)
{
    if (f->type == PROTOBUF_C_TYPE_MESSAGE && *(ProtobufCMessage **)e)
        protobuf_c_message_free_unpacked(*(ProtobufCMessage **)e, NULL);
    else if (f->type == PROTOBUF_C_TYPE_STRING)
        free(*(char **)e);
    else if (f->type == PROTOBUF_C_TYPE_BYTES)
        free(((ProtobufCBinaryData *)e)->data);
}

static bool mutate_repeated(vuf_mutator *mu, ProtobufCMessage *msg,
                            const ProtobufCFieldDescriptor *f, int depth)
{
    size_t *n = &AT(msg, f->quantifier_offset, size_t);
    char **arr = &AT(msg, f->offset, char *);
    size_t es = elem_size(f);
    unsigned op = (unsigned)below(mu, *n ? 5 : 1);
    if (op == 0 && *n < 64) { /* insert a fresh element */
        char *na = realloc(*arr, (*n + 1) * es);
        if (!na)
            return false;
        *arr = na;
        size_t at = below(mu, *n + 1);
        memmove(na + (at + 1) * es, na + at * es, (*n - at) * es);
        memset(na + at * es, 0, es);
        if (f->type == PROTOBUF_C_TYPE_MESSAGE)
            *(ProtobufCMessage **)(na + at * es) = new_message(f->descriptor);
        else if (f->type == PROTOBUF_C_TYPE_STRING)
            *(char **)(na + at * es) = dupstr("");
        else
            mutate_scalar(mu, f, na + at * es);
        if (f->type == PROTOBUF_C_TYPE_MESSAGE && !*(ProtobufCMessage **)(na + at * es)) {
            memmove(na + at * es, na + (at + 1) * es, (*n - at) * es);
            return false;
        }
        (*n)++;
        mu->last = "insert-element";
        return true;
    }
    if (!*n)
        return false;
    size_t i = below(mu, *n);
    char *e = *arr + i * es;
    if (op == 1) { /* delete */
        free_elem(f, e);
        memmove(e, e + es, (*n - i - 1) * es);
        (*n)--;
        mu->last = "delete-element";
        return true;
    }
    if (op == 2 && *n > 1) { /* swap */
        size_t j = below(mu, *n);
        char tmp[sizeof(ProtobufCBinaryData)];
        memcpy(tmp, e, es);
        memcpy(e, *arr + j * es, es);
        memcpy(*arr + j * es, tmp, es);
        mu->last = "swap-elements";
        return true;
    }
    if (f->type == PROTOBUF_C_TYPE_MESSAGE)
        return mutate_message(mu, *(ProtobufCMessage **)e, depth + 1);
    mutate_scalar(mu, f, e);
    mu->last = "mutate-element";
    return true;
}

static bool mutate_field(vuf_mutator *mu, ProtobufCMessage *msg, const ProtobufCFieldDescriptor *f,
                         int depth)
{
    if (f->label == PROTOBUF_C_LABEL_REPEATED)
        return mutate_repeated(mu, msg, f, depth);
    void *v = (char *)msg + f->offset;
    if (f->flags & PROTOBUF_C_FIELD_FLAG_ONEOF) {
        uint32_t active = AT(msg, f->quantifier_offset, uint32_t);
        if (active != f->id) {
            /* mostly the member that is set (an action keeps its kind);
             * now and then another kind, from scratch */
            const ProtobufCFieldDescriptor *a = NULL;
            for (unsigned i = 0; i < msg->descriptor->n_fields && !a; i++)
                if (msg->descriptor->fields[i].id == active &&
                    (msg->descriptor->fields[i].flags & PROTOBUF_C_FIELD_FLAG_ONEOF))
                    a = &msg->descriptor->fields[i];
            if (!a || below(mu, 8) == 0) {
                oneof_switch(mu, msg, f);
                mu->last = "oneof-switch";
                return true;
            }
            f = a;
            v = (char *)msg + f->offset;
        }
    } else if (f->label == PROTOBUF_C_LABEL_OPTIONAL && f->type != PROTOBUF_C_TYPE_MESSAGE &&
               f->type != PROTOBUF_C_TYPE_STRING) {
        protobuf_c_boolean *has = &AT(msg, f->quantifier_offset, protobuf_c_boolean);
        if (*has && below(mu, 6) == 0) {
            *has = 0; /* absent: derived or default again */
            mu->last = "clear-optional";
            return true;
        }
        *has = 1;
    }
    if (f->type == PROTOBUF_C_TYPE_MESSAGE) {
        ProtobufCMessage **sub = v;
        if (!*sub) {
            *sub = new_message(f->descriptor);
            mu->last = "new-submessage";
            return *sub != NULL;
        }
        if (f->label == PROTOBUF_C_LABEL_OPTIONAL && !(f->flags & PROTOBUF_C_FIELD_FLAG_ONEOF) &&
            below(mu, 16) == 0) {
            protobuf_c_message_free_unpacked(*sub, NULL);
            *sub = NULL;
            mu->last = "drop-submessage";
            return true;
        }
        return mutate_message(mu, *sub, depth + 1);
    }
    if (f->type == PROTOBUF_C_TYPE_STRING && !*(char **)v)
        *(char **)v = dupstr("");
    mutate_scalar(mu, f, v);
    mu->last = "mutate-scalar";
    return true;
}

static bool mutate_message(vuf_mutator *mu, ProtobufCMessage *msg, int depth)
{
    if (!msg || depth > 8)
        return false;
    const ProtobufCMessageDescriptor *d = msg->descriptor;
    if (d == &vuf__message__descriptor && below(mu, 3))
        return mutate_table_message(mu, (Vuf__Message *)msg, false);
    if (!d->n_fields)
        return false;
    return mutate_field(mu, msg, &d->fields[below(mu, d->n_fields)], depth);
}

/* ---------- actions ---------- */

static Vuf__Fd *new_fd(Vuf__FdKind k, uint32_t ref, bool has_ref)
{
    Vuf__Fd *f = (Vuf__Fd *)new_message(&vuf__fd__descriptor);
    if (f) {
        f->kind = k;
        f->has_ref = has_ref;
        f->ref = ref;
    }
    return f;
}

/* A fresh action of the kinds a driver and a front-end produce. */
static Vuf__Action *gen_action(vuf_mutator *mu)
{
    Vuf__Action *a = (Vuf__Action *)new_message(&vuf__action__descriptor);
    if (!a)
        return NULL;
    unsigned k = (unsigned)below(mu, 20);
    if (k < 10) { /* a table message, fields derived or one set */
        Vuf__Message *m = (Vuf__Message *)new_message(&vuf__message__descriptor);
        const vuf_msg_def *d = random_def(mu, false);
        if (!m || !d) {
            free(m);
            return a;
        }
        m->name = dupstr(d->name);
        if (below(mu, 2))
            mutate_table_message(mu, m, false);
        if (below(mu, 3) == 0) {
            m->has_need_reply = true;
            m->need_reply = true;
        }
        a->action_case = VUF__ACTION__ACTION_SEND;
        a->send = m;
    } else if (k < 13) {
        a->action_case = VUF__ACTION__ACTION_BLK;
        a->blk = (Vuf__BlkRequest *)new_message(&vuf__blk_request__descriptor);
        static const uint32_t types[] = {0, 1, 4, 8, 0, 1, 11, 0xffffffff};
        if (a->blk) {
            a->blk->type = types[below(mu, 8)];
            if (below(mu, 3) == 0) {
                a->blk->has_sector = true;
                a->blk->sector = mutate_int(mu, 0, 64);
            }
            a->blk->has_indirect = below(mu, 3) == 0;
            a->blk->indirect = a->blk->has_indirect;
        }
    } else if (k < 15) {
        a->action_case = VUF__ACTION__ACTION_KICK;
        a->kick = (Vuf__Kick *)new_message(&vuf__kick__descriptor);
        if (a->kick && below(mu, 4) == 0) {
            a->kick->has_inband = true;
            a->kick->inband = true;
        }
    } else if (k == 15) {
        a->action_case = VUF__ACTION__ACTION_BACKEND_REPLY;
        a->backend_reply = (Vuf__BackendReply *)new_message(&vuf__backend_reply__descriptor);
        if (a->backend_reply)
            a->backend_reply->kind = (Vuf__BackendReply__Kind)below(mu, 7);
    } else if (k == 16 && below(mu, 2)) {
        /* a hand-made descriptor: no buffer (length 0) unless a mutation adds one;
         * chained to itself now and then */
        a->action_case = VUF__ACTION__ACTION_DESC;
        a->desc = (Vuf__Desc *)new_message(&vuf__desc__descriptor);
        if (a->desc) {
            a->desc->index = (uint32_t)below(mu, 16);
            a->desc->has_next = true;
            a->desc->next = below(mu, 4) ? (uint32_t)below(mu, 16) : a->desc->index;
            a->desc->has_flags = true;
            a->desc->flags = (uint32_t)below(mu, 8);
        }
    } else if (k == 16) { /* a head made available, as a driver does after writing it */
        a->action_case = VUF__ACTION__ACTION_AVAIL;
        a->avail = (Vuf__Avail *)new_message(&vuf__avail__descriptor);
        if (a->avail)
            a->avail->head = (uint32_t)below(mu, 16);
    } else if (k == 17) {
        a->action_case = VUF__ACTION__ACTION_RESIZE;
        a->resize = below(mu, 2) ? 2u << 20 : mutate_int(mu, 1u << 20, 64);
    } else if (k == 18) { /* the back-end channel handed over again, or broken */
        Vuf__Message *m = (Vuf__Message *)new_message(&vuf__message__descriptor);
        static const Vuf__FdKind kinds[] = {
            VUF__FD_KIND__FD_SOCKET,        VUF__FD_KIND__FD_SOCKET_PEER_CLOSED,
            VUF__FD_KIND__FD_SOCKET_LISTEN, VUF__FD_KIND__FD_SOCKET_DGRAM,
            VUF__FD_KIND__FD_MAIN_CHANNEL,  VUF__FD_KIND__FD_BACKEND_CHANNEL,
            VUF__FD_KIND__FD_EVENTFD,       VUF__FD_KIND__FD_PIPE_READ,
            VUF__FD_KIND__FD_CLOSED_NUMBER, VUF__FD_KIND__FD_DUP};
        if (!m)
            return a;
        m->name = dupstr("SET_BACKEND_REQ_FD");
        m->has_need_reply = true;
        m->need_reply = true;
        m->fds = malloc(sizeof *m->fds);
        if (m->fds) {
            m->fds[0] = new_fd(kinds[below(mu, 10)], (uint32_t)below(mu, 4), true);
            m->n_fds = m->fds[0] ? 1 : 0;
        }
        a->action_case = VUF__ACTION__ACTION_SEND;
        a->send = m;
    } else {
        static const Vuf__Action__ActionCase rare[] = {VUF__ACTION__ACTION_CLOSE_BACKEND,
                                                       VUF__ACTION__ACTION_DISCONNECT,
                                                       VUF__ACTION__ACTION_CONNECT};
        a->action_case = rare[below(mu, 3)];
        a->close_backend = 1; /* the union's bool for all three */
    }
    return a;
}

/* An action of kind k with its (message) member allocated, or NULL. */
static Vuf__Action *new_action(Vuf__Action__ActionCase k)
{
    const ProtobufCFieldDescriptor *f =
        protobuf_c_message_descriptor_get_field(&vuf__action__descriptor, (unsigned)k);
    Vuf__Action *a = (Vuf__Action *)new_message(&vuf__action__descriptor);
    if (!a || !f || f->type != PROTOBUF_C_TYPE_MESSAGE ||
        !(AT(a, f->offset, ProtobufCMessage *) = new_message(f->descriptor))) {
        free(a);
        return NULL;
    }
    AT(a, f->quantifier_offset, uint32_t) = f->id;
    return a;
}

static bool insert_action(vuf_mutator *mu, Vuf__Session *s, Vuf__Action *a)
{
    return vuf_session_insert_action(s, a, below(mu, s->n_actions + 1));
}

/* What a driver does, hand-made: 1 to 3 descriptors written from a random
 * slot and linked in order, the head made available, a kick. The last
 * descriptor ends the chain, or now and then links back into it (a loop,
 * which a device must bound: virtio 1.x "Virtqueues"); lengths are 0 or
 * small, WRITE and INDIRECT set now and then, buffers anywhere in the
 * session's guest memory. */
static bool insert_chain(vuf_mutator *mu, Vuf__Session *s)
{
    static const uint32_t lens[] = {0, 0, 1, 0x10, 0x200, 0x1000};
    size_t at = below(mu, s->n_actions + 1);
    const vuf_session_guest *g = &mu->guest;
    uint32_t qs = g->queue_size, base = (uint32_t)below(mu, qs), n = 1 + (uint32_t)below(mu, 3);
    bool loop = below(mu, 3) == 0;
    for (uint32_t k = 0; k < n; k++) {
        Vuf__Action *a = new_action(VUF__ACTION__ACTION_DESC);
        if (!a)
            return k > 0;
        Vuf__Desc *d = a->desc;
        bool last = k + 1 == n;
        d->index = (base + k) % qs;
        d->has_addr = true;
        d->addr = g->gpa0 + (below(mu, g->region_size * g->nregions) & ~0xfull);
        d->has_len = true;
        d->len = lens[below(mu, 6)];
        d->has_flags = true;
        d->flags = (!last || loop ? 1u : 0) | (below(mu, 2) ? 2u : 0) | (below(mu, 8) ? 0 : 4u);
        d->has_next = !last || loop;
        d->next = (last ? base + (uint32_t)below(mu, n) : base + k + 1) % qs;
        if (!vuf_session_insert_action(s, a, at + k))
            return k > 0;
    }
    Vuf__Action *av = new_action(VUF__ACTION__ACTION_AVAIL);
    if (!av || !vuf_session_insert_action(s, av, at + n))
        return true;
    av->avail->head = base;
    vuf_session_insert_action(s, new_action(VUF__ACTION__ACTION_KICK), at + n + 1);
    return true;
}

static void delete_action(Vuf__Session *s, size_t i)
{
    protobuf_c_message_free_unpacked(&s->actions[i]->base, NULL);
    memmove(s->actions + i, s->actions + i + 1, (s->n_actions - i - 1) * sizeof *s->actions);
    s->n_actions--;
}

/* The table message an action sends, and on which channel; NULL for the
 * other kinds of action. */
static Vuf__Message *action_message(const Vuf__Action *a, bool *backend)
{
    *backend = a->action_case == VUF__ACTION__ACTION_BACKEND_SEND;
    return *backend ? a->backend_send : a->action_case == VUF__ACTION__ACTION_SEND ? a->send : NULL;
}

/* The message an action sends, its table definition and its layout; NULL
 * for the other kinds of action. */
static Vuf__Message *message_at(const vuf_mutator *mu, const Vuf__Action *a,
                                const vuf_msg_def **def, const vuf_payload_def **lay)
{
    bool backend;
    Vuf__Message *m = action_message(a, &backend);
    *lay = m ? message_layout(mu, m, backend, def) : NULL;
    return m;
}

/* Whether span_wrap has a range of 64-bit fields to work on in lay. */
static bool has_wrappable_span(const vuf_payload_def *lay)
{
    if (!lay || lay->is_empty)
        return false;
    const vuf_payload_def *p = lay;
    if (!lay->nspans && lay->varray_field >= 0)
        p = lay->fields[lay->varray_field].element;
    for (size_t i = 0; p && i < p->nspans; i++)
        if (p->fields[p->spans[i].base_field].size == 8 &&
            p->fields[p->spans[i].size_field].size == 8)
            return true;
    return false;
}

/* One range of the session at its edge: a table span of one message made
 * to wrap around 2^64 (span_wrap), or one 64-bit field that holds a guest
 * address (a ring's, a region's, an IOTLB entry's) moved to a region's end
 * (near_region_end). Which of the two is even; within each, the candidates
 * are counted over the whole session and one is picked uniformly. Reached
 * through a random action and then a random mutation of it, each is a few
 * per thousand mutations, and the bugs they find need one exact message of
 * a long set-up (CVE-2020-10722's SET_LOG_BASE after LOG_SHMFD;
 * CVE-2018-1059's ring near a region's end). */
static bool range_edge(vuf_mutator *mu, Vuf__Session *s)
{
    bool want_span = below(mu, 2);
    size_t seen = 0, pick_action = 0, pick_field = 0;
    const vuf_payload_def *pick_lay = NULL;
    for (size_t i = 0; i < s->n_actions; i++) {
        const vuf_msg_def *def;
        const vuf_payload_def *lay;
        Vuf__Message *m = message_at(mu, s->actions[i], &def, &lay);
        if (!m)
            continue;
        if (want_span) {
            if (has_wrappable_span(lay) && below(mu, ++seen) == 0) {
                pick_action = i;
                pick_lay = lay;
            }
            continue;
        }
        for (size_t j = 0; lay && j < m->n_fields; j++) {
            const Vuf__Field *f = m->fields[j];
            vuf_field_ref ref;
            uint64_t base;
            if (f->has_value && vuf_field_resolve(lay, f->path, &ref) && ref.width == 8 &&
                guest_address_base(mu, f->value, &base) && below(mu, ++seen) == 0) {
                pick_action = i;
                pick_field = j;
            }
        }
    }
    if (!seen)
        return false;
    bool backend;
    Vuf__Message *m = action_message(s->actions[pick_action], &backend);
    if (want_span)
        return span_wrap(mu, pick_lay, m);
    Vuf__Field *f = m->fields[pick_field];
    if (!near_region_end(mu, f->value, &f->value))
        return false;
    mu->last = "range-edge";
    return true;
}

/* One payload field of one message of the session, the message picked
 * uniformly among those that have a payload: through a random action, a
 * field of one message deep in a long set-up (SET_INFLIGHT_FD's num_queues,
 * CVE-2021-3839) is changed about half as often, blk requests and kicks
 * taking their share of the picks. */
static bool deep_field(vuf_mutator *mu, Vuf__Session *s)
{
    size_t seen = 0;
    Vuf__Message *pick = NULL;
    const vuf_msg_def *pick_def = NULL;
    const vuf_payload_def *pick_lay = NULL;
    for (size_t i = 0; i < s->n_actions; i++) {
        const vuf_msg_def *def;
        const vuf_payload_def *lay;
        Vuf__Message *m = message_at(mu, s->actions[i], &def, &lay);
        if (!m)
            continue;
        if (lay && !lay->is_empty && lay->nfields && below(mu, ++seen) == 0) {
            pick = m;
            pick_def = def;
            pick_lay = lay;
        }
    }
    if (!pick || !mutate_layout_field(mu, pick_def, pick_lay, pick))
        return false;
    mu->last = "deep-field";
    return true;
}

static bool mutate_session(vuf_mutator *mu, Vuf__Session *s)
{
    size_t n = s->n_actions;
    switch (below(mu, 12)) {
    case 11:
        return deep_field(mu, s);
    case 10:
        return range_edge(mu, s);
    case 0:
    case 1:
        if (below(mu, 8) == 0 && n < 500) {
            mu->last = "insert-chain";
            return insert_chain(mu, s);
        }
        mu->last = "insert-action";
        return insert_action(mu, s, gen_action(mu));
    case 2:
        if (!n)
            return false;
        delete_action(s, below(mu, n));
        mu->last = "delete-action";
        return true;
    case 3:
        if (!n || n >= 512)
            return false;
        mu->last = "duplicate-action";
        return insert_action(mu, s,
                             (Vuf__Action *)copy_message(mu, &s->actions[below(mu, n)]->base));
    case 4:
        if (n < 2)
            return false;
        {
            size_t i = below(mu, n), j = below(mu, n);
            Vuf__Action *t = s->actions[i];
            s->actions[i] = s->actions[j];
            s->actions[j] = t;
        }
        mu->last = "swap-actions";
        return true;
    case 5: /* splice: a run of actions copied elsewhere */
        if (!n || n >= 512)
            return false;
        {
            size_t i = below(mu, n), len = 1 + below(mu, n - i < 8 ? n - i : 8);
            for (size_t k = 0; k < len; k++)
                insert_action(mu, s, (Vuf__Action *)copy_message(mu, &s->actions[i + k]->base));
        }
        mu->last = "splice-actions";
        return true;
    case 6:
        if (!s->config)
            s->config = (Vuf__Config *)new_message(&vuf__config__descriptor);
        return mutate_message(mu, &s->config->base, 0);
    default:
        if (!n)
            return insert_action(mu, s, gen_action(mu));
        return mutate_message(mu, &s->actions[below(mu, n)]->base, 0);
    }
}

/* Every message of s fitted to its layout (fit_fields). */
static void fit_session(const vuf_mutator *mu, Vuf__Session *s)
{
    for (size_t i = 0; i < s->n_actions; i++) {
        bool backend;
        Vuf__Message *m = action_message(s->actions[i], &backend);
        if (m && m->n_fields)
            fit_fields(mu, m, backend);
    }
}

/* ---------- entry points ---------- */

vuf_mutator *vuf_mutator_new(const vuf_spec *spec, vuf_byte_mutator bytes)
{
    vuf_mutator *m = calloc(1, sizeof *m);
    if (m) {
        m->wire = malloc(sizeof *m->wire);
        m->spec = spec;
        m->bytes = bytes;
        m->last = "none";
        vuf_session_guest_of(NULL, &m->guest);
        seed(m, 1);
    }
    return m;
}

void vuf_mutator_free(vuf_mutator *m)
{
    if (m) {
        free(m->scratch);
        free(m->wire);
    }
    free(m);
}

const char *vuf_mutator_last(const vuf_mutator *m)
{
    return m->last;
}

static Vuf__Session *fresh_session(vuf_mutator *mu)
{
    Vuf__Session *s = (Vuf__Session *)new_message(&vuf__session__descriptor);
    for (int i = 0; s && i < 4; i++)
        insert_action(mu, s, gen_action(mu));
    return s;
}

/* Pack s into out[0..max); drops trailing actions until it fits. */
static size_t pack_into(Vuf__Session *s, uint8_t *out, size_t max)
{
    while (protobuf_c_message_get_packed_size(&s->base) > max && s->n_actions)
        delete_action(s, s->n_actions - 1);
    size_t n = protobuf_c_message_get_packed_size(&s->base);
    if (n > max)
        return 0;
    return protobuf_c_message_pack(&s->base, out);
}

size_t vuf_mutator_mutate(vuf_mutator *m, uint8_t *data, size_t size, size_t max, unsigned sd)
{
    seed(m, sd ^ (unsigned)size);
    Vuf__Session *s = vuf_session_unpack(data, size);
    if (!s) {
        s = fresh_session(m);
        m->last = "fresh-session";
    }
    if (!s)
        return size;
    vuf_session_guest_of(s->config, &m->guest);
    unsigned rounds = 1 + (unsigned)below(m, 4);
    for (unsigned i = 0; i < rounds; i++)
        for (int tries = 0; tries < 4 && !mutate_session(m, s); tries++) {
        }
    fit_session(m, s);
    size_t n = pack_into(s, data, max);
    vuf_session_free(s);
    return n ? n : size;
}

size_t vuf_mutator_crossover(vuf_mutator *m, const uint8_t *a, size_t alen, const uint8_t *b,
                             size_t blen, uint8_t *out, size_t max, unsigned sd)
{
    seed(m, sd);
    Vuf__Session *x = vuf_session_unpack(a, alen), *y = vuf_session_unpack(b, blen);
    size_t n = 0;
    if (x && y) {
        /* x's first part, then y's last part */
        size_t cut = below(m, x->n_actions + 1), from = below(m, y->n_actions + 1);
        while (x->n_actions > cut)
            delete_action(x, x->n_actions - 1);
        for (size_t i = from; i < y->n_actions && x->n_actions < 1024; i++) {
            Vuf__Action *c = (Vuf__Action *)copy_message(m, &y->actions[i]->base);
            Vuf__Action **na = c ? realloc(x->actions, (x->n_actions + 1) * sizeof *na) : NULL;
            if (!na) {
                if (c)
                    protobuf_c_message_free_unpacked(&c->base, NULL);
                break;
            }
            x->actions = na;
            na[x->n_actions++] = c;
        }
        m->last = "crossover";
        n = pack_into(x, out, max);
    }
    vuf_session_free(x);
    vuf_session_free(y);
    if (!n && alen <= max) {
        memcpy(out, a, alen);
        n = alen;
    }
    return n;
}

size_t vuf_mutator_trim_steps(const uint8_t *data, size_t size)
{
    Vuf__Session *s = vuf_session_unpack(data, size);
    size_t n = s ? s->n_actions : 0;
    vuf_session_free(s);
    return n;
}

size_t vuf_mutator_without_action(const uint8_t *data, size_t size, size_t i, uint8_t *out,
                                  size_t max)
{
    Vuf__Session *s = vuf_session_unpack(data, size);
    size_t n = 0;
    if (s && i < s->n_actions) {
        delete_action(s, i);
        n = pack_into(s, out, max);
    }
    vuf_session_free(s);
    return n;
}

/* ---------- one message, for inputs of other shapes ---------- */

bool vuf_mutator_mutate_message(vuf_mutator *m, Vuf__Message *msg, vuf_channel ch, unsigned sd)
{
    seed(m, sd);
    vuf_session_guest_of(NULL, &m->guest);
    for (int tries = 0; tries < 4; tries++)
        if (below(m, 4) ? mutate_table_message(m, msg, ch == VUF_CHAN_BACKEND)
                        : mutate_message(m, &msg->base, 0)) {
            fit_fields(m, msg, ch == VUF_CHAN_BACKEND);
            return true;
        }
    return false;
}

void vuf_mutator_seed(vuf_mutator *m, unsigned sd)
{
    seed(m, sd);
}

uint64_t vuf_mutator_below(vuf_mutator *m, uint64_t n)
{
    return below(m, n);
}
