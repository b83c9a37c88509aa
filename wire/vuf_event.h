/* SPDX-License-Identifier: Apache-2.0 */
/* vuf_event: one event of a vhost-user conversation, the unit shared by the
 * trace format, the checker, the reference device harness and the fuzzers.
 *
 * A message event carries the exact wire bytes (12-byte header + payload)
 * and the kinds of the fds that travelled with it. It is I/O-free: real fds
 * are classified into kinds by the transport (vuf_fd_classify).
 */
#ifndef VUF_EVENT_H
#define VUF_EVENT_H

#include <stddef.h>
#include <stdint.h>

#include "vuf_spec.h"

/* What an fd is, as far as the protocol cares. */
typedef enum {
    VUF_FDKIND_UNKNOWN = 0,
    VUF_FDKIND_EVENTFD,
    VUF_FDKIND_MEMFD,
    VUF_FDKIND_FILE,          /* regular file (mappable) */
    VUF_FDKIND_SOCKET,        /* connected stream socket */
    VUF_FDKIND_SOCKET_LISTEN, /* listening stream socket */
    VUF_FDKIND_SOCKET_DGRAM,  /* datagram socket */
    VUF_FDKIND_SOCKET_CLOSED, /* stream socket whose peer is closed */
    VUF_FDKIND_PIPE,
    VUF_FDKIND_DEVNULL,
    VUF_FDKIND_OTHER,
    VUF_FDKIND_COUNT
} vuf_fdkind;

const char *vuf_fdkind_name(vuf_fdkind k);
int vuf_fdkind_parse(const char *s, vuf_fdkind *out); /* 0 ok, -1 unknown */
/* Does an fd of kind k satisfy a table kind rule? */
int vuf_fdkind_matches(vuf_fdkind k, vuf_fdkind_rule rule);

typedef enum {
    VUF_EV_MSG = 0, /* a message (request or reply: the REPLY flag says which) */
    VUF_EV_OPEN,    /* a channel was opened */
    VUF_EV_CLOSE,   /* a channel was closed, by `sender` */
    VUF_EV_NOTE,    /* something `sender` did that is not on the wire (vuf_note_kind) */
} vuf_event_kind;

/* What a side reports of itself beside the wire: the reference device (or
 * the harness playing a side) says why it acted as it did, so a recorded
 * conversation shows it and check-trace can take it into account. */
typedef enum {
    VUF_NOTE_NONE = 0,
    VUF_NOTE_REFUSE,  /* it refused the latest request on `channel`: rule = the catalogue rule */
    VUF_NOTE_TIMEOUT, /* it stopped waiting for the reply owed on `channel` */
    VUF_NOTE_LATE,    /* a reply arrived on `channel` after it stopped waiting: ignored */
} vuf_note_kind;

#define VUF_EV_MAX_FDS 64

typedef struct {
    vuf_event_kind kind;
    vuf_side sender; /* MSG: who sent it; CLOSE: who closed it */
    vuf_channel channel;
    const uint8_t *data; /* MSG: header + payload as on the wire */
    size_t len;
    const uint8_t *fds; /* vuf_fdkind of each fd, in order */
    size_t nfds;
    unsigned line; /* source line when parsed from a trace, else 0 */
    /* NOTE only */
    vuf_note_kind note;
    const char *rule; /* REFUSE: a rule id of the catalogue (docs/rules.md), or NULL */
    const char *text; /* one line, for people (the reason), or NULL */
} vuf_event;

#endif
