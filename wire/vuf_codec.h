/* SPDX-License-Identifier: Apache-2.0 */
/* vuf_codec: the I/O-free vhost-user message codec, driven by the spec table.
 *
 * Decoding gives a view on caller-owned bytes; encoding builds a payload from
 * named field values, computing derived fields (count fields such as
 * SET_MEM_TABLE's nregions) unless they were set explicitly.
 */
#ifndef VUF_CODEC_H
#define VUF_CODEC_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "vuf_spec.h"

#define VUF_HDR_SIZE 12
#define VUF_F_VERSION_MASK 0x3u
#define VUF_F_VERSION 0x1u
#define VUF_F_REPLY 0x4u
#define VUF_F_NEED_REPLY 0x8u
#define VUF_F_KNOWN 0xfu
/* Largest payload the codec builds (shmem_config with 256 regions is 2056). */
#define VUF_PAYLOAD_MAX 4096

typedef struct {
    uint32_t request, flags, size;
} vuf_hdr;

void vuf_hdr_decode(const uint8_t b[VUF_HDR_SIZE], vuf_hdr *h);
void vuf_hdr_encode(const vuf_hdr *h, uint8_t b[VUF_HDR_SIZE]);

/* A decoded message: a view on the caller's bytes. */
typedef struct {
    vuf_hdr hdr;
    bool is_reply;                 /* REPLY flag */
    const vuf_msg_def *def;        /* NULL: id not in the table for this channel */
    const uint8_t *payload;        /* bytes after the header */
    size_t payload_len;            /* bytes actually present (may differ from hdr.size) */
    const vuf_payload_def *layout; /* request or reply layout that applies (may be NULL) */
} vuf_msg_view;

/* Decode header + payload. Returns false only if len < VUF_HDR_SIZE. */
bool vuf_msg_decode(const vuf_spec *s, vuf_channel ch, const uint8_t *buf, size_t len,
                    vuf_msg_view *out);

/* The layout of a reply to `def`: its explicit reply payload when the reply is
 * the explicit one, else the u64 of an ack. `explicit_reply` tells which. */
const vuf_payload_def *vuf_reply_layout(const vuf_spec *s, const vuf_msg_def *def,
                                        bool explicit_reply);

/* Size check of a payload against a layout and rule. */
typedef enum {
    VUF_SZ_OK = 0,
    VUF_SZ_SHORT,      /* fewer bytes than the rule needs */
    VUF_SZ_LONG,       /* more bytes than the rule allows */
    VUF_SZ_COUNT_OVER, /* count field above the layout's max */
} vuf_size_verdict;

/* `expected` receives the size the layout needs (with the count field). */
vuf_size_verdict vuf_payload_check_size(const vuf_payload_def *p, vuf_size_rule rule,
                                        const uint8_t *pl, size_t len, uint64_t *expected);

/* Range of fd counts a rule allows for this payload. False when the rule
 * reads a field the payload is too short to hold. */
bool vuf_fd_rule_range(const vuf_fd_rule *r, const uint8_t *pl, size_t len, uint32_t *min,
                       uint32_t *max);

/* Count field value of a variable payload, or 0. */
uint64_t vuf_payload_count(const vuf_payload_def *p, const uint8_t *pl, size_t len);

/* ---- building payloads from named fields ---- */
typedef struct {
    const vuf_payload_def *def;
    uint8_t buf[VUF_PAYLOAD_MAX];
    size_t len;     /* current length */
    uint32_t nelem; /* elements of the variable tail touched (max index + 1) */
    bool count_set; /* the count field was given explicitly */
} vuf_payload_builder;

void vuf_pb_init(vuf_payload_builder *b, const vuf_payload_def *def);
/* Set "field", "arr[i].field" or "bytes" (hex string for u8 arrays and the
 * u8 variable tail). value is a number (decimal or 0x) or, for byte fields,
 * hex digits. Returns 0, or -1 with a message in err. */
int vuf_pb_set(vuf_payload_builder *b, const char *path, const char *value, char *err,
               size_t errcap);
/* The same with the value as it is: a number for an integer field, raw
 * bytes for a byte field (no text in between). */
int vuf_pb_set_num(vuf_payload_builder *b, const char *path, uint64_t v, char *err, size_t errcap);
int vuf_pb_set_bytes(vuf_payload_builder *b, const char *path, const uint8_t *data, size_t len,
                     char *err, size_t errcap);
/* Fill derived fields that were not set; returns the payload length. */
size_t vuf_pb_finish(vuf_payload_builder *b);

/* ---- text form of a payload ----
 * "name=value" tokens separated by spaces. Derived count fields are omitted
 * when they equal the number of elements present. Returns the length written
 * (snprintf style), or -1 when the bytes do not fit the layout exactly (the
 * caller then prints raw bytes). */
int vuf_payload_format(const vuf_payload_def *p, const uint8_t *pl, size_t len, char *out,
                       size_t cap);

/* Hex helpers. */
size_t vuf_hex_encode(const uint8_t *b, size_t n, char *out, size_t cap);
int vuf_hex_decode(const char *s, uint8_t *out, size_t cap, size_t *n);

#endif
