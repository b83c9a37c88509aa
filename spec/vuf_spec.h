/* SPDX-License-Identifier: Apache-2.0 */
/* vuf_spec: the machine-readable vhost-user spec table.
 *
 * The table is parsed from text (spec/README.md documents the format). The
 * parser is I/O-free: it takes a buffer and a file name used in diagnostics.
 * vuf_spec_load_file() is the one convenience that reads a file.
 *
 * vuf_spec is opaque; the definitions it hands out (vuf_msg_def, ...) are
 * read-only views that live as long as the spec.
 */
#ifndef VUF_SPEC_H
#define VUF_SPEC_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct vuf_spec vuf_spec;

typedef enum { VUF_CHAN_FRONTEND = 0, VUF_CHAN_BACKEND = 1, VUF_CHAN_COUNT = 2 } vuf_channel;
typedef enum { VUF_SIDE_FRONTEND = 0, VUF_SIDE_BACKEND = 1 } vuf_side;
typedef enum { VUF_SPACE_PROTOCOL = 0, VUF_SPACE_VIRTIO = 1 } vuf_space;

const char *vuf_channel_name(vuf_channel c); /* "frontend" / "backend" */
const char *vuf_side_name(vuf_side s);       /* "frontend" / "backend" */
int vuf_channel_parse(const char *s, vuf_channel *out);

/* ---- what the spec text says ----
 * Every column that a rule is checked from can carry the rst sentence it
 * comes from and that sentence's verb; the level of a violation is derived
 * from the verb (checkers/vuf_rules.h), never chosen separately. In the table
 * a quote is written VERB "SENTENCE" at the end of a statement
 * (spec/README.md); docs/rules.md lists the normative forms of each verb. */
typedef enum {
    VUF_VERB_SILENT = 0, /* the rst does not state it; the text says where the check comes from */
    VUF_VERB_MUST,       /* must / MUST, or an equivalent normative form ("only legal if", ...) */
    VUF_VERB_DEFINES,    /* a definition of the wire format: a field, a layout, its values */
    VUF_VERB_SHOULD,     /* should / SHOULD */
    VUF_VERB_MAY,        /* may / can: a permission */
    VUF_VERB_DESCRIBES,  /* descriptive text without a normative verb */
    VUF_VERB_COUNT
} vuf_verb;

typedef struct {
    vuf_verb verb;
    const char *text; /* the rst sentence verbatim, or for SILENT the reason; "" if not given */
    unsigned line;    /* table line, 0 if not given */
} vuf_quote;

/* "must", "defines", ... ; vuf_verb_parse returns 0 or -1. */
const char *vuf_verb_name(vuf_verb v);
int vuf_verb_parse(const char *s, vuf_verb *out);
/* The verb a sentence's own words use: MUST if it has a must-form, else
 * SHOULD, else MAY, else DESCRIBES (docs/rules.md lists the forms). Lint
 * compares it with the verb the table declares. */
vuf_verb vuf_verb_detect(const char *sentence);
/* The words vuf_verb_detect looks for (NULL-terminated), or NULL for a verb
 * without forms (defines, describes, silent). */
const char *const *vuf_verb_forms(vuf_verb v);

/* A diagnostic from the loader or lint. */
typedef struct {
    char file[128];
    unsigned line, col;
    char text[256];
} vuf_diag;

/* ---- features ---- */
typedef struct {
    vuf_space space;
    unsigned bit;
    const char *name;
    const char *const *former; /* NULL-terminated */
    bool provisional;
    uint64_t requires; /* mask of bits (same space) needed with this one */
    vuf_quote requires_quote;
    const char *section;
    const char *note;
    unsigned line;
} vuf_feature_def;

/* ---- payloads ---- */
typedef enum {
    VUF_FT_U8,
    VUF_FT_U16,
    VUF_FT_U32,
    VUF_FT_U64,
    VUF_FT_BYTES,  /* u8 name[K], fixed */
    VUF_FT_PAD,    /* pad K */
    VUF_FT_VARRAY, /* TYPE name[COUNT] max K: the variable tail */
} vuf_field_type;

typedef struct vuf_payload_def vuf_payload_def;

/* `span BASE SIZE [fd]` in a payload block: the range [BASE, BASE+SIZE) is
 * addressable (its last byte BASE + SIZE - 1 does not overflow a u64). With `fd`, the range lies in
 * the file descriptor that travels with the payload (or with this element of a variable array): its
 * end is the least size that fd must have. */
typedef struct {
    int base_field, size_field; /* indices in the payload's fields[] */
    bool fd;
    unsigned line;
} vuf_span_def;

typedef struct {
    const char *name; /* NULL for pad */
    vuf_field_type type;
    uint32_t offset; /* byte offset in the payload */
    uint32_t size;   /* bytes (fixed fields); element size for VARRAY */
    /* VARRAY only */
    int count_field;                /* index of the count field in the payload */
    uint32_t max_count;             /* max K */
    vuf_quote max_quote;            /* where the bound comes from */
    const vuf_payload_def *element; /* NULL when the element is u8 */
} vuf_field_def;

struct vuf_payload_def {
    const char *name;
    uint32_t fixed_size; /* bytes before the variable tail (= total if none) */
    uint32_t elem_size;  /* 0 if fixed */
    size_t nfields;
    const vuf_field_def *fields;
    int varray_field; /* index of the VARRAY field or -1 */
    bool is_empty;    /* the "empty" pseudo payload (present, 0 bytes) */
    size_t nspans;
    const vuf_span_def *spans;
    /* SIZE as written in the table ("N" or "N+Mn"); lint compares it with
     * the size computed from the fields. */
    uint32_t declared_fixed, declared_elem;
    const char *section; /* rst section of the layout, "" if none */
    unsigned line;
};

/* A resolved reference to an integer at a fixed offset of a payload. */
typedef struct {
    bool present;
    uint32_t offset;
    uint32_t width; /* 1, 2, 4 or 8 */
    uint64_t mask;  /* applied after reading (all ones if none) */
    const char *path;
} vuf_field_ref;

/* ---- messages ---- */
typedef enum { VUF_REPLY_NONE, VUF_REPLY_ACK, VUF_REPLY_ALWAYS } vuf_reply_kind;

/* How an explicit reply says "failed" (`reply-error`): not at all, with a
 * u64 status value, or with an empty payload (GET_CONFIG). */
typedef enum {
    VUF_RERR_NONE,
    VUF_RERR_U64,      /* a u64 status: reply_error_value on failure, 0 on success */
    VUF_RERR_EMPTY,    /* an empty payload */
    VUF_RERR_NEGATIVE, /* a field of the reply (reply_error_ref) holds a negative i64 */
} vuf_reply_error_kind;

typedef enum {
    VUF_FDRULE_EXACT, /* n == a */
    VUF_FDRULE_RANGE, /* a <= n <= b */
    VUF_FDRULE_COUNT, /* n == value of ref */
    VUF_FDRULE_NOFD,  /* n == (value of ref has bit a) ? 0 : 1 */
} vuf_fdrule_kind;

typedef enum {
    VUF_FDK_ANY = 0,
    VUF_FDK_EVENTFD,
    VUF_FDK_SHM,
    VUF_FDK_SOCKET,
} vuf_fdkind_rule;

typedef struct {
    vuf_fdrule_kind kind;
    uint32_t a, b;
    vuf_field_ref ref;
    vuf_fdkind_rule fdkind;
    bool has_should;
    uint32_t should; /* recommended count */
} vuf_fd_rule;

typedef enum { VUF_SIZE_EXACT, VUF_SIZE_MIN, VUF_SIZE_ANY } vuf_size_rule;

typedef enum { VUF_COND_NONE, VUF_COND_PROTOCOL, VUF_COND_AFTER } vuf_cond_kind;

typedef enum { VUF_BIT30_NONE, VUF_BIT30_OFFERED, VUF_BIT30_NEGOTIATED } vuf_bit30_gate;

typedef enum { VUF_CHECK_IN, VUF_CHECK_MASK } vuf_check_kind;

typedef struct {
    vuf_check_kind kind;
    vuf_field_ref ref;
    size_t nvalues;
    const uint64_t *values; /* IN: allowed values; MASK: values[0] = mask */
    vuf_quote quote;
} vuf_value_check;

/* `gate protocol|virtio NAME... [offered|negotiated] VERB "SENTENCE"`:
 * the message is sent only when the features were offered (reported by the
 * back-end in GET_FEATURES / GET_PROTOCOL_FEATURES) or negotiated (acked
 * with SET_FEATURES / SET_PROTOCOL_FEATURES). `gate bit30 C` is
 * `gate virtio PROTOCOL_FEATURES C`. */
typedef enum { VUF_GATE_NEGOTIATED = 0, VUF_GATE_OFFERED = 1 } vuf_gate_cond;

typedef struct {
    vuf_space space;
    uint64_t mask; /* every feature of the mask is needed */
    vuf_gate_cond cond;
    vuf_quote quote;
} vuf_gate;

typedef struct vuf_msg_def vuf_msg_def;

struct vuf_msg_def {
    vuf_channel channel;
    uint32_t id;
    const char *name;
    const char *const *former; /* NULL-terminated */
    bool provisional, deprecated;
    vuf_side initiator;

    const vuf_payload_def *request; /* NULL = none */
    vuf_size_rule size_rule;

    vuf_reply_kind reply;
    vuf_cond_kind reply_cond;
    unsigned reply_cond_bit;              /* VUF_COND_PROTOCOL: protocol bit */
    const vuf_msg_def *reply_cond_after;  /* VUF_COND_AFTER */
    const vuf_payload_def *reply_payload; /* explicit reply payload or NULL */
    /* what the rst says of the reply's layout, when the table quotes it
     * (`reply-payload P VERB "..."`): SIZE-REPLY's level for this message
     * (a reply the rst requires without a layout: silent, a NOTE) */
    vuf_quote reply_payload_quote;
    bool reply_size_matches_request;
    vuf_reply_error_kind reply_error;
    uint64_t reply_error_value;    /* VUF_RERR_U64: the status a failure reply carries */
    vuf_field_ref reply_error_ref; /* VUF_RERR_NEGATIVE: the field that is negative */

    vuf_fd_rule fds, reply_fds;

    size_t ngates;
    const vuf_gate *gates;
    /* the gates summed up: every feature some gate names (any condition),
     * and the bit-30 gate's condition */
    uint64_t gate_protocol; /* mask */
    uint64_t gate_virtio;   /* mask */
    vuf_bit30_gate gate_bit30;

    size_t nafter;
    const vuf_msg_def *const *after; /* ordering prerequisites */
    vuf_quote after_quote;

    vuf_field_ref vring; /* vring index field, if any */

    size_t nchecks;
    const vuf_value_check *checks;

    const char *section;
    const char *const *notes; /* NULL-terminated */
    unsigned line;
};

typedef struct {
    vuf_side initiator;
    uint32_t max_fds;
    bool has_fd_gate;
    unsigned fd_gate_bit; /* protocol bit */
    uint64_t requires;    /* protocol mask needed before any traffic */
    vuf_quote max_fds_quote, fd_gate_quote, requires_quote;
    const char *section;
} vuf_channel_def;

/* `device NAME rings-per-queue N VERB "SENTENCE"`: how a device type counts
 * the queues GET_QUEUE_NUM reports (virtio-net: queue pairs, 2 rings each).
 * 0 rings per queue: the table does not know. */
typedef struct {
    const char *name;
    uint32_t rings_per_queue;
    vuf_quote quote;
    unsigned line;
} vuf_device_def;

/* ---- loading ---- */

/* The largest table file vuf_spec_load_file reads (the built-in one is ~20 KB). */
#define VUF_SPEC_MAX_FILE (16u << 20)

/* Parse a table. On error returns NULL and fills *diag (if non-NULL). */
vuf_spec *vuf_spec_parse(const char *text, size_t len, const char *filename, vuf_diag *diag);
/* Read and parse a file. */
vuf_spec *vuf_spec_load_file(const char *path, vuf_diag *diag);
/* The table compiled into the binary (spec/vhost-user.spec at build time).
 * Returns a shared instance; do not free. NULL only if the built-in copy
 * does not parse, which the tests rule out. */
const vuf_spec *vuf_spec_default(void);
const char *vuf_spec_default_text(size_t *len);
void vuf_spec_free(vuf_spec *s);

/* Load FILE if non-NULL else the default. The caller frees with
 * vuf_spec_release(). */
const vuf_spec *vuf_spec_open(const char *path_or_null, vuf_diag *diag);
void vuf_spec_release(const vuf_spec *s);

/* ---- queries ---- */
const char *vuf_spec_filename(const vuf_spec *s);
const vuf_channel_def *vuf_spec_channel(const vuf_spec *s, vuf_channel c);

size_t vuf_spec_msg_count(const vuf_spec *s, vuf_channel c);
const vuf_msg_def *vuf_spec_msg_at(const vuf_spec *s, vuf_channel c, size_t i); /* by id order */
const vuf_msg_def *vuf_spec_msg(const vuf_spec *s, vuf_channel c, uint32_t id);
/* By current or former name, case-insensitive. If c is VUF_CHAN_COUNT, both
 * channels are searched (front-end first). */
const vuf_msg_def *vuf_spec_msg_by_name(const vuf_spec *s, vuf_channel c, const char *name);

size_t vuf_spec_feature_count(const vuf_spec *s);
const vuf_feature_def *vuf_spec_feature_at(const vuf_spec *s, size_t i);
const vuf_feature_def *vuf_spec_feature(const vuf_spec *s, vuf_space sp, unsigned bit);
const vuf_feature_def *vuf_spec_feature_by_name(const vuf_spec *s, vuf_space sp, const char *n);
/* Bit of a feature by name, or -1. */
int vuf_spec_feature_bit(const vuf_spec *s, vuf_space sp, const char *name);

size_t vuf_spec_device_count(const vuf_spec *s);
const vuf_device_def *vuf_spec_device_at(const vuf_spec *s, size_t i);
const vuf_device_def *vuf_spec_device(const vuf_spec *s, const char *name);
/* "blk, net, ..." for messages that list the device types. */
void vuf_spec_device_names(const vuf_spec *s, char *out, size_t cap);

size_t vuf_spec_payload_count(const vuf_spec *s);
const vuf_payload_def *vuf_spec_payload_at(const vuf_spec *s, size_t i);
const vuf_payload_def *vuf_spec_payload(const vuf_spec *s, const char *name);

/* Well-known virtio bit used by the protocol itself. */
#define VUF_VIRTIO_PROTOCOL_FEATURES_BIT 30

/* Size of the payload for a given element count. */
static inline uint64_t vuf_payload_size(const vuf_payload_def *p, uint64_t count)
{
    return p ? (uint64_t)p->fixed_size + (uint64_t)p->elem_size * count : 0;
}

/* Read the integer a resolved reference points at; false if out of range. */
bool vuf_field_read(const vuf_field_ref *r, const uint8_t *payload, size_t len, uint64_t *out);
/* Read span i of payload p at element base `pl` (len bytes): its base and
 * size. False if the bytes are too short. */
bool vuf_span_read(const vuf_payload_def *p, size_t i, const uint8_t *pl, size_t len,
                   uint64_t *base, uint64_t *size);
/* Resolve "a", "a[2].b" against a payload definition. */
bool vuf_field_resolve(const vuf_payload_def *p, const char *path, vuf_field_ref *out);

/* ---- lint and diff (spec_lint.c) ---- */
typedef void (*vuf_diag_fn)(void *ctx, const vuf_diag *d, bool is_error);
/* Semantic checks beyond parsing. Returns the number of errors. */
size_t vuf_spec_lint(const vuf_spec *s, vuf_diag_fn fn, void *ctx);
/* Semantic difference, one line per change through fn(ctx, line).
 * Returns the number of differences. */
size_t vuf_spec_diff(const vuf_spec *a, const vuf_spec *b, void (*fn)(void *ctx, const char *line),
                     void *ctx);

/* ---- rendering (spec_render.c) ---- */
typedef void (*vuf_write_fn)(void *ctx, const char *text);
void vuf_fd_rule_str(const vuf_fd_rule *r, char *out, size_t cap);
void vuf_reply_str(const vuf_spec *s, const vuf_msg_def *m, char *out, size_t cap);
void vuf_gates_str(const vuf_spec *s, const vuf_msg_def *m, char *out, size_t cap);
void vuf_feature_mask_str(const vuf_spec *s, vuf_space sp, uint64_t mask, char *out, size_t cap);
void vuf_payload_str(const vuf_payload_def *p, char *out, size_t cap); /* "name (40 bytes)" */
/* Everything the table says about one message, for people. */
void vuf_spec_render_show(const vuf_spec *s, const vuf_msg_def *m, vuf_write_fn w, void *ctx);
/* docs/messages.md */
void vuf_spec_render_doc_md(const vuf_spec *s, vuf_write_fn w, void *ctx);

#endif
