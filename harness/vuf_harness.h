/* SPDX-License-Identifier: Apache-2.0 */
/* vuf_harness: run a session (vuf_session.h) against a target
 * (vuf_target.h), playing the front-end, with the oracles.
 *
 * The harness is the front-end logic written once: the session player
 * (actions in order, valid by default, broken on purpose), guest memory
 * from memfds shared with the peer and the virtio driver that writes
 * descriptor chains and kicks, the typed fds, the back-end channel and its
 * replies. It is single-threaded and uses no clock with a synchronous
 * target: the same session gives the same run.
 *
 * Oracles (the first finding ends the run), judging the side under test:
 *   - the checker: a MUST violation (with `strict`, a SHOULD one too; the
 *     reference device's own promises make strict its default);
 *   - fd leaks: every fd the peer received is closed after the session
 *     (accounting), and the process's open fds are the same as before (a
 *     full /proc/self/fd count, every session or periodically);
 *   - guest memory: the peer changed guest memory only inside
 *     device-writable descriptor buffers and used rings, under the
 *     translations it holds (shadow comparison after every step in which it
 *     may have run; armed while the memory table it was given is the
 *     session's own layout);
 *   - sanitizers (ASan, UBSan, LSan) and hangs are caught by the process
 *     around the harness (libFuzzer, AFL++, `vufuzz replay`).
 *
 * Actions are numbered from 1 everywhere (the first action of a session is
 * action 1), as `vufuzz session check` and `vufuzz replay` print them. */
#ifndef VUF_HARNESS_H
#define VUF_HARNESS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "vuf_event.h"
#include "vuf_session.h"
#include "vuf_spec.h"
#include "vuf_target.h"

typedef struct vuf_harness vuf_harness;

const char *vuf_finding_kind_name(vuf_finding_kind k); /* "none", "must", "fd-leak", ... */

typedef enum {
    VUF_STRICT_DEFAULT = 0, /* the target's promise: yes for the reference device, else no */
    VUF_STRICT_ON,
    VUF_STRICT_OFF,
} vuf_strictness;

typedef enum {
    VUF_TARGET_KIND_INPROC = 0, /* the reference device, called directly (default) */
    VUF_TARGET_KIND_SOCKET,     /* the reference device over socket pairs */
} vuf_target_kind;

typedef struct {
    vuf_target_kind target; /* which built-in target (ignored when `custom` is set) */
    /* a target made by the caller (the harness takes it, sets its sink and
     * frees it) */
    vuf_target *custom;
    bool frontend_under_test; /* the side under test is the front-end (default: the back-end) */
    vuf_strictness strict;    /* are SHOULD violations findings? */
    bool no_fd_oracle;        /* skip the fd-leak check */
    /* full /proc/self/fd count every N sessions (0: 64; 1: every session) */
    unsigned fd_scan_period;
    bool no_guest_oracle; /* skip the guest-memory check */
    /* consecutive main-channel writes go out together before the peer runs
     * (fewer steps over sockets; off by default: the printed order of
     * actions and messages is then exact) */
    bool batch;
    /* every event of the conversation, as the peer saw it, and every action
     * before it runs (index from 1); may be NULL */
    void (*on_event)(void *ctx, const vuf_event *ev);
    void (*on_action)(void *ctx, size_t index, const Vuf__Action *a);
    void *ctx;
    /* Judge the conversation against this table instead of the device's
     * (a spec author's proposed change: does the device still conform?). */
    const vuf_spec *judge_spec;
    /* Oracle self-test: after the device's first ring pass, the harness
     * itself changes one guest byte at this guest address, as a stray
     * device write would (0: off). */
    uint64_t inject_stray_write;
} vuf_harness_opts;

vuf_harness *vuf_harness_new(const vuf_spec *spec, const vuf_harness_opts *o);
void vuf_harness_free(vuf_harness *h); /* frees the target, a custom one too */

/* Run one session from a fresh peer. Returns the first finding (kind NONE
 * when clean). */
vuf_finding vuf_harness_run(vuf_harness *h, const Vuf__Session *s);

/* Statistics over every run so far. */
typedef struct {
    uint64_t sessions, actions, messages, events, chains;
    uint64_t guest_checks;   /* steps compared against the shadow */
    uint64_t guest_disarmed; /* sessions where the guest oracle was off */
    uint64_t fd_scans;       /* full /proc/self/fd counts */
    uint64_t bad_inputs;     /* sessions not playable against the table */
} vuf_harness_stats;
void vuf_harness_stats_get(const vuf_harness *h, vuf_harness_stats *st);
/* Requests of (channel, id) the peer accepted (front-end channel) or sent
 * (back-end channel), summed over runs. */
uint64_t vuf_harness_accepted(const vuf_harness *h, vuf_channel ch, uint32_t id);
const char *vuf_harness_target_name(const vuf_harness *h);
vuf_target *vuf_harness_target(vuf_harness *h);

#endif
