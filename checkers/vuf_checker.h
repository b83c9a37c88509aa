/* SPDX-License-Identifier: Apache-2.0 */
/* vuf_checker: the I/O-free rule engine. It observes a conversation (events
 * on both channels) and reports violations as data. It never acts on them.
 *
 * The table's columns are read by the one interpreter (vuf_msgcheck.h) that
 * the reference device uses too; the checker adds what needs the whole
 * conversation: replies owed and their failure forms, closed channels,
 * negotiation learnt from replies, and the device's own notes (refusals,
 * timeouts, late replies). docs/rules.md is the catalogue (vuf_rules.h).
 */
#ifndef VUF_CHECKER_H
#define VUF_CHECKER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "vuf_event.h"
#include "vuf_rules.h"
#include "vuf_spec.h"

typedef struct {
    const vuf_rule_info *rule;
    vuf_level level;     /* from the verb of the sentence that decided it */
    const char *quote;   /* that sentence: the table's for the message, else the catalogue's */
    const char *section; /* its rst section, "" when the rst is silent */
    vuf_side side;       /* the side that broke the rule */
    size_t event_index;  /* 0-based index of the event in the conversation */
    unsigned line;       /* trace line of that event, if known */
    vuf_channel channel;
    char msg[48];   /* message name or "#id" */
    char text[240]; /* one line of explanation */
} vuf_violation;

/* A reply a cut-off capture never showed: the conversation ended (no close)
 * while it was owed. Nobody's violation: the responder had no chance. */
typedef struct {
    vuf_channel channel;
    vuf_side responder;
    unsigned line; /* of the request */
    char msg[48];
} vuf_incomplete;

typedef struct vuf_checker vuf_checker;

vuf_checker *vuf_checker_new(const vuf_spec *spec);
void vuf_checker_free(vuf_checker *c);
/* Forget all state (new conversation), keep the spec and the device type. */
void vuf_checker_reset(vuf_checker *c);
/* The device type (the table's `device` lines: how queues count). NULL:
 * unknown, the most permissive reading: VRING-INDEX is not judged. */
void vuf_checker_set_device(vuf_checker *c, const vuf_device_def *d);
/* Feed one event; returns the number of violations it added. */
size_t vuf_checker_feed(vuf_checker *c, const vuf_event *ev);
/* End of a whole conversation (a harness that ran it): replies that never
 * came are REPLY-MISSING. */
size_t vuf_checker_finish(vuf_checker *c);
/* End of a recorded capture: a reply still owed on a channel that was not
 * closed is not a violation but an incomplete capture (vuf_checker_incomplete).
 * Returns the number of such replies. */
size_t vuf_checker_end_capture(vuf_checker *c);
size_t vuf_checker_incomplete_count(const vuf_checker *c);
const vuf_incomplete *vuf_checker_incomplete(const vuf_checker *c, size_t i);

size_t vuf_checker_violation_count(const vuf_checker *c);
const vuf_violation *vuf_checker_violation(const vuf_checker *c, size_t i);
/* Count of violations at MUST level by a side. */
size_t vuf_checker_must_count(const vuf_checker *c, vuf_side side);

/* Negotiation state, for harnesses and reports. */
typedef struct {
    bool features_offered_known, features_acked_known;
    uint64_t features_offered, features_acked;
    bool protocol_offered_known, protocol_acked_known;
    uint64_t protocol_offered, protocol_acked;
    bool owner;
    bool backend_channel; /* handed over with SET_BACKEND_REQ_FD */
    uint32_t queue_num;   /* from GET_QUEUE_NUM, 0 if unknown */
    uint32_t nregions;    /* memory regions known */
} vuf_checker_state;
void vuf_checker_state_get(const vuf_checker *c, vuf_checker_state *st);
/* Is a reply owed on ch now (the responder has not answered the latest
 * request that needs one, and the channel is open)? A front-end waits for
 * it; the harness's external targets do the same. */
bool vuf_checker_reply_owed(const vuf_checker *c, vuf_channel ch);
/* Is a reply possible but not owed: the latest request broke a gate of its
 * message, so the responder may answer it, ignore it or close. */
bool vuf_checker_reply_optional(const vuf_checker *c, vuf_channel ch);

#endif
