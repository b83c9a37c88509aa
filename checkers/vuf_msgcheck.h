/* SPDX-License-Identifier: Apache-2.0 */
/* vuf_msgcheck: the one interpreter of the spec table's columns.
 *
 * Given one message (channel, sender, its decoded view, the kinds of its fds
 * and, when the caller knows them, their sizes) and a view of the
 * conversation's state so far, it says which catalogue rules the message
 * breaks: framing and direction, request ids, sizes and count bounds, value
 * checks, address ranges and fd sizes, vring indices, fd counts and kinds,
 * gates, ordering, feature negotiation, memory ranges, and whether a reply is
 * owed. It is I/O-free and keeps no state: the caller owns the state.
 *
 * Two callers: the checker (checkers/checker.c) reports every finding; the
 * reference device (reference/ref.c) refuses on the first it does not
 * tolerate (docs/reaction-policy.md), naming the rule.
 *
 *   vuf_msgcheck_state st = {...};       // what the caller knows
 *   vuf_msgcheck_msg m = {.channel = ch, .sender = s, .v = &view, ...};
 *   vuf_msgcheck_frame(spec, &m, &st, on_finding, ctx);       // every message
 *   vuf_msgcheck_request(spec, &m, &st, on_finding, ctx);     // requests
 *
 * on_finding returns false to stop at that finding.
 */
#ifndef VUF_MSGCHECK_H
#define VUF_MSGCHECK_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "vuf_codec.h"
#include "vuf_rules.h"
#include "vuf_spec.h"

/* The conversation as one side knows it. Unknown parts are NULL / false /
 * 0, and the checks that need them are skipped. */
typedef struct {
    /* negotiation: offered = reported in a GET_*FEATURES reply on this
     * connection; acked = sent with SET_*FEATURES (and not failed) */
    bool features_offered_known, features_acked_known;
    uint64_t features_offered, features_acked;
    bool protocol_offered_known, protocol_acked_known;
    uint64_t protocol_offered, protocol_acked;
    bool backend_channel;         /* SET_BACKEND_REQ_FD passed a socket */
    uint32_t queue_num;           /* GET_QUEUE_NUM's answer, 0 unknown */
    const vuf_device_def *device; /* how queues count; NULL: unknown, VRING-INDEX not judged */
    /* ids sent earlier on each channel (`after`, `reply-always-if after:`) */
    const uint8_t *seen[VUF_CHAN_COUNT];
    uint32_t seen_max[VUF_CHAN_COUNT];
    /* memory, when the caller tracks it (mem_covers NULL: not judged) */
    void *mem;
    size_t nregions;
    bool (*mem_covers)(void *mem, uint64_t uaddr, uint64_t size);
    /* a ring's descriptor, avail and used addresses if SET_VRING_ADDR set
     * them (NULL: not judged) */
    bool (*ring_addrs)(void *mem, uint32_t index, uint64_t addr[3]);
} vuf_msgcheck_state;

typedef struct {
    vuf_channel channel;
    vuf_side sender;
    const vuf_msg_view *v;   /* vuf_msg_decode of the bytes */
    const uint8_t *fd_kinds; /* vuf_fdkind of each fd */
    size_t nfds;
    const uint64_t *fd_sizes; /* each fd's size in bytes when known (fstat), else NULL */
} vuf_msgcheck_msg;

typedef struct {
    vuf_rule_id rule;
    vuf_level level;
    /* the table's sentence that gave the level (a gate, a check, a bound),
     * or NULL: the catalogue's sentence */
    const vuf_quote *quote;
    const char *section; /* the rst section of that sentence, "" if the rst is silent */
    char text[200];      /* one line for people */
} vuf_finding;

typedef bool (*vuf_finding_fn)(void *ctx, const vuf_finding *f);

/* Framing and direction, for every message: HDR-SIZE, HDR-VERSION,
 * HDR-FLAGS-RESERVED, REPLY-DIRECTION, INIT-*, and for the back-end
 * channel's initiator BCH-BEFORE-BACKEND-REQ and BCH-NOT-HANDED-OVER.
 * Returns false if fn stopped it. */
bool vuf_msgcheck_frame(const vuf_spec *s, const vuf_msgcheck_msg *m, const vuf_msgcheck_state *st,
                        vuf_finding_fn fn, void *ctx);

/* A request from the channel's initiator: everything its table row says.
 * Returns false if fn stopped it. */
bool vuf_msgcheck_request(const vuf_spec *s, const vuf_msgcheck_msg *m,
                          const vuf_msgcheck_state *st, vuf_finding_fn fn, void *ctx);

/* The reply a request is owed in this state: none, an ack (u64 status), or
 * the explicit reply payload. */
typedef enum { VUF_OWED_NONE = 0, VUF_OWED_ACK, VUF_OWED_EXPLICIT } vuf_reply_owed;
vuf_reply_owed vuf_msgcheck_reply_owed(const vuf_spec *s, const vuf_msg_def *d, uint32_t flags,
                                       const vuf_msgcheck_state *st);

/* Did a reply say "failed"? By the table's `reply-error` form for an
 * explicit reply, by a non-zero u64 for an ack. `can_fail` (if non-NULL):
 * whether the reply has a failure form at all. */
bool vuf_msgcheck_reply_failed(const vuf_msg_def *d, vuf_reply_owed owed, const uint8_t *pl,
                               size_t len, bool *can_fail);

/* The level of a finding of rule r decided by quote q (NULL: the
 * catalogue's). */
vuf_level vuf_msgcheck_level(vuf_rule_id r, const vuf_quote *q);

#endif
