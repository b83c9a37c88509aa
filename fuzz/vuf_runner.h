/* SPDX-License-Identifier: Apache-2.0 */
/* vuf_runner: run a session (vuf_session.h) against the reference device,
 * in process, with the oracles.
 *
 * The runner plays the front-end on both channels over real socket pairs,
 * so every message and fd crosses the kernel (SCM_RIGHTS) into the device's
 * connection layer (vuf_ref_conn.h), exactly as under `vufuzz serve`. It is
 * single-threaded and uses no clock: the same session gives the same run.
 *
 * Oracles (the first finding ends the run):
 *   - the checker: a MUST violation by the device (the back-end side);
 *   - fd leaks: the process's open fds are the same after the session;
 *   - guest memory: the device changed guest memory only inside
 *     device-writable descriptor buffers and used rings (shadow comparison
 *     after every step; armed while the memory table the device was given is
 *     the session's own layout);
 *   - sanitizers (ASan, UBSan, LSan) and hangs are caught by the process
 *     running the runner (libFuzzer, AFL++, `vufuzz replay`).
 */
#ifndef VUF_RUNNER_H
#define VUF_RUNNER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "vuf_event.h"
#include "vuf_session.h"
#include "vuf_spec.h"

typedef struct vuf_runner vuf_runner;

typedef enum {
    VUF_FINDING_NONE = 0,
    VUF_FINDING_MUST,        /* the device broke a MUST rule (rule id in .rule) */
    VUF_FINDING_FD_LEAK,     /* fds open after the session differ from before */
    VUF_FINDING_GUEST_WRITE, /* a guest memory write outside what the device may write */
} vuf_finding_kind;

typedef struct {
    vuf_finding_kind kind;
    char rule[48];  /* MUST: the rule id; else the oracle's name */
    char text[512]; /* one line */
    size_t action;  /* index of the action during which it was seen */
} vuf_finding;

const char *vuf_finding_kind_name(vuf_finding_kind k); /* "none", "must", "fd-leak", ... */

typedef struct {
    bool no_fd_oracle;    /* skip the fd-leak check (e.g. when fds are shared) */
    bool no_guest_oracle; /* skip the guest-memory check */
    /* every event of the conversation, as the device saw it, and every
     * action before it runs (for `vufuzz replay`); may be NULL */
    void (*on_event)(void *ctx, const vuf_event *ev);
    void (*on_action)(void *ctx, size_t index, const Vuf__Action *a);
    void *ctx;
    /* Judge the conversation against this table instead of the device's
     * (a spec author's proposed change: does the device still conform?). */
    const vuf_spec *judge_spec;
    /* Oracle self-test: after the device's first ring pass, the runner
     * itself changes one guest byte at this guest address, as a stray
     * device write would (0: off). */
    uint64_t inject_stray_write;
} vuf_runner_opts;

vuf_runner *vuf_runner_new(const vuf_spec *spec, const vuf_runner_opts *o);
void vuf_runner_free(vuf_runner *r);

/* Run one session from a fresh device. Returns the first finding (kind
 * NONE when clean). */
vuf_finding vuf_runner_run(vuf_runner *r, const Vuf__Session *s);

/* Statistics over every run so far. */
typedef struct {
    uint64_t sessions, actions, messages, events, chains;
    uint64_t guest_checks;   /* steps compared against the shadow */
    uint64_t guest_disarmed; /* sessions where the guest oracle was off */
} vuf_runner_stats;
void vuf_runner_stats_get(const vuf_runner *r, vuf_runner_stats *st);
/* Requests of (channel, id) a device accepted (front-end channel) or sent
 * (back-end channel), summed over runs. */
uint64_t vuf_runner_accepted(const vuf_runner *r, vuf_channel ch, uint32_t id);

#endif
