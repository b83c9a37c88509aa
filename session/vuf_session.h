/* SPDX-License-Identifier: Apache-2.0 */
/* vuf_session: the session format, vufuzz's fuzz input language.
 *
 * A session is one fuzz input, corpus seed or reproducer: a device
 * configuration plus the actions a harness (playing the vhost-user
 * front-end) performs. Its binary form is the protobuf message vuf.Session
 * (fuzz/session.proto, C names Vuf__*); its text form is the trace format
 * extended with harness actions (docs/session-format.md is the reference).
 *
 * Conversion is lossless: text -> binary -> text gives the canonical text;
 * binary -> text -> binary gives identical bytes for every session in
 * canonical form (everything the text parser produces). Values the text
 * cannot express (an fd kind outside the enum, a name that is not in the
 * table, a false optional bool, ...) print as the harness interprets them.
 *
 * The library is I/O-free except vuf_session_load_file(). It never aborts;
 * hostile text or bytes give an error, never a crash.
 */
#ifndef VUF_SESSION_H
#define VUF_SESSION_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "session.pb-c.h"
#include "vuf_codec.h"
#include "vuf_spec.h"

/* Most fds one message or raw write carries. */
#define VUF_SESSION_MAX_FDS 64
/* Largest payload of a message (raw= bytes, or the header's worth of data). */
#define VUF_SESSION_MAX_PAYLOAD 65536
/* Largest byte string of mem-write, blk and raw data in the text form. */
#define VUF_SESSION_MAX_DATA (1u << 20)
/* Size of a derived memfd/file when the payload gives none (or a bad one). */
#define VUF_SESSION_DEFAULT_FD_SIZE 4096u
/* A derived size above this is refused in favour of the default. */
#define VUF_SESSION_MAX_FD_SIZE (1ull << 30)

/* The largest session file vuf_session_load_file reads. */
#define VUF_SESSION_MAX_FILE (64u << 20)

/* ---- the guest a session's config lays out ---- */

/* Bounds of the config (values outside are clamped; docs/session-format.md). */
#define VUF_SESSION_MAX_QUEUES 8
#define VUF_SESSION_MAX_QUEUE_SIZE 64
#define VUF_SESSION_MAX_REGIONS 4
#define VUF_SESSION_MAX_REGION (1ull << 20) /* bytes per region */
#define VUF_SESSION_MAX_DISK (64ull << 20)  /* bytes of the device's disk */
/* Queue q's standard rings: desc at gpa0 + q * stride, avail +0x400, used +0x800. */
#define VUF_SESSION_RING_STRIDE 0x1000ull

/* nregions regions of region_size bytes, contiguous from gpa0 (guest
 * physical) and from uaddr0 (the front-end's user addresses); the device's
 * queues and its disk. */
typedef struct {
    uint64_t gpa0, uaddr0, region_size, disk_size;
    uint32_t nregions, queues, queue_size;
} vuf_session_guest;

/* The guest of config c (NULL: the defaults), every value clamped. */
void vuf_session_guest_of(const Vuf__Config *c, vuf_session_guest *g);

/* ---- text and binary forms ---- */

/* Parse the text form. NULL with *diag (FILE:LINE:COL, text with the
 * expected tokens) on error. Free with vuf_session_free(). */
Vuf__Session *vuf_session_parse_text(const vuf_spec *s, const char *text, size_t len,
                                     const char *filename, vuf_diag *diag);

/* The canonical text form, NUL-terminated and malloc'd (free()); NULL only
 * when out of memory. Every line ends with a newline. */
char *vuf_session_format_text(const vuf_spec *s, const Vuf__Session *ses);

/* One action in the text form, as one line without its newline (malloc'd,
 * free()); NULL only when out of memory. */
char *vuf_session_format_action(const vuf_spec *s, const Vuf__Action *a);

/* The binary form: NULL when the bytes are not a vuf.Session. */
Vuf__Session *vuf_session_unpack(const uint8_t *data, size_t len);
/* Packed bytes, malloc'd (free()), their count in *len; NULL when out of
 * memory or ses is NULL. */
uint8_t *vuf_session_pack(const Vuf__Session *ses, size_t *len);

/* Edit a session's action list (memory as protobuf-c's unpack makes it):
 * insert a (malloc'd, taken; freed on failure) at index `at` (clamped to
 * the end): false when out of memory; remove action i (freed). */
bool vuf_session_insert_action(Vuf__Session *s, Vuf__Action *a, size_t at);
void vuf_session_remove_action(Vuf__Session *s, size_t i);

/* Frees parsed and unpacked sessions alike (both are built with malloc). */
void vuf_session_free(Vuf__Session *ses);

/* The detection rule of vuf_session_load_file(): true if the bytes are text,
 * i.e. valid UTF-8 with no control character other than tab, LF and CR. */
bool vuf_session_is_text(const uint8_t *data, size_t len);

/* Read a session file. It is binary if its bytes unpack as a vuf.Session and
 * are not text (vuf_session_is_text), else it is parsed as text. *is_binary
 * (may be NULL) tells which. NULL with *diag on error. */
Vuf__Session *vuf_session_load_file(const vuf_spec *s, const char *path, bool *is_binary,
                                    vuf_diag *diag);

/* ---- names ---- */

/* Canonical text name of an fd kind ("eventfd", "pipe-r", ...); kinds outside
 * the enum are FD_OTHER ("other"). */
const char *vuf_session_fd_kind_name(Vuf__FdKind k);
/* The kind the harness creates for k: k itself, or FD_OTHER outside the enum. */
Vuf__FdKind vuf_session_fd_kind(Vuf__FdKind k);

/* ---- messages and the table ---- */

/* The table message a session Message stands for on channel ch: its name
 * (this channel first, then the other one: the id is what travels), else its
 * id (0 when absent). *id receives the id that is sent. NULL when neither
 * resolves: the message is sent under *id with its raw payload or none. */
const vuf_msg_def *vuf_session_msg_def(const vuf_spec *s, vuf_channel ch, const Vuf__Message *m,
                                       uint32_t *id);

/* The payload layout of a message of def (the trace format's rules): the
 * request layout for a request; for a reply, the explicit reply layout when
 * the reply is always explicit, the u64 of an ack otherwise. For a reply
 * that is explicit only under a condition, the explicit layout is returned
 * and *try_ack set: the ack layout is the second choice. NULL: no payload. */
const vuf_payload_def *vuf_session_layout(const vuf_spec *s, const vuf_msg_def *def, bool is_reply,
                                          bool *try_ack);

typedef enum {
    VUF_SFIELD_INVALID = 0, /* not a path of the layout */
    VUF_SFIELD_INT,         /* an integer: Field.value */
    VUF_SFIELD_BYTES,       /* u8 NAME[K], a tail given as bytes, pad@OFF: Field.bytes */
} vuf_session_field_kind;

/* What a payload field path is in a layout (the payload builder's paths:
 * "index", "regions[1].size", "payload", "pad@20"). */
vuf_session_field_kind vuf_session_field_classify(const vuf_payload_def *p, const char *path);
/* The same, and for bytes of a fixed length (u8 NAME[K], pad@OFF) that
 * length in *fixed (0 otherwise). */
vuf_session_field_kind vuf_session_field_shape(const vuf_payload_def *p, const char *path,
                                               uint32_t *fixed);

/* ---- derived fields: the wire bytes of a message ---- */

typedef struct {
    const vuf_msg_def *def; /* table message whose layout and rules applied, or NULL */
    vuf_hdr hdr;            /* the header as built (before truncation) */
    uint8_t data[VUF_HDR_SIZE + VUF_SESSION_MAX_PAYLOAD];
    size_t len; /* header + payload, already truncated if `truncate` */
    /* fd specs to create, after derivation (copies: kind, size, ref; kinds
     * outside the enum are FD_OTHER) */
    Vuf__Fd fds[VUF_SESSION_MAX_FDS];
    size_t nfds;
    bool fd_size_derived[VUF_SESSION_MAX_FDS]; /* size computed here (memfd/file without size) */
    vuf_payload_builder pb; /* the builder's scratch (no allocation per message) */
} vuf_session_wire;

/* Build the wire form of m sent on channel ch, applying derived fields from
 * the spec table: header (version 1 flags, size = payload length), payload
 * (raw_payload verbatim, else fields with derived count fields), fds (from
 * the message's fd rule unless given or no_fds), the NOFD bit, memfd/file
 * sizes from the payload's fd spans, truncation. docs/session-format.md has
 * the rules. Returns 0, or -1 with a message in err (fields that do not fit
 * the layout, too many fds, a payload over 64 KiB). out is large (~70 KiB):
 * do not put it on a small stack. */
int vuf_session_build(const vuf_spec *s, vuf_channel ch, const Vuf__Message *m,
                      vuf_session_wire *out, char *err, size_t errcap);

#endif
