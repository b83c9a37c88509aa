/* SPDX-License-Identifier: Apache-2.0 */
/* vuf_target: what the harness drives.
 *
 * A target is the peer under test, reached by the harness (vuf_harness.h),
 * which plays the other side: the session player, the guest memory and
 * virtio driver, the typed fds and the oracles are the harness's and are
 * written once; a target only says how bytes reach the peer and what it
 * can tell about itself.
 *
 * The harness plays the front-end. It writes the main channel through the
 * target (write), and owns every other fd it creates: the back-end channel
 * is one of its socket pairs whose other end travels in SET_BACKEND_REQ_FD,
 * kicks are writes to its eventfds. After touching one of those it calls
 * poke, so a target that only looks when told (in process) looks.
 *
 * The conversation reaches the harness as events through the sink, in the
 * order the peer saw them; every fd the peer received is reported too (the
 * fd-leak oracle's accounting).
 *
 * Built-in targets (target_ref.c): the reference device in this process,
 * called directly ("inproc", the fuzzers' default) or over real socket
 * pairs and its connection layer ("socket"). */
#ifndef VUF_TARGET_H
#define VUF_TARGET_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "vuf_endpoint.h"
#include "vuf_event.h"
#include "vuf_spec.h"
#include "vuf_transport.h"

typedef struct vuf_target vuf_target;

/* What the oracles found: the harness's, or the target's own (a process
 * that died, a hang, the fds of a process). */
typedef enum {
    VUF_FINDING_NONE = 0,
    VUF_FINDING_MUST,        /* the side under test broke a MUST rule (rule id in .rule) */
    VUF_FINDING_SHOULD,      /* ... a SHOULD rule, under strict */
    VUF_FINDING_FD_LEAK,     /* an fd the peer received stayed open, or the fd count grew */
    VUF_FINDING_GUEST_WRITE, /* a guest memory write outside what the device may write */
    VUF_FINDING_CRASH,       /* the peer process died by a signal */
    VUF_FINDING_EXIT,        /* the peer process exited while it should have served */
    VUF_FINDING_SANITIZER,   /* the peer's stderr holds a sanitizer report */
    VUF_FINDING_HANG, /* a reply owed did not come in time, or a fresh connection got no answer */
    VUF_FINDING_BAD_INPUT,    /* the session cannot be played against this table (not a finding
                                 of the peer: a bad input, exit 2) */
    VUF_FINDING_TARGET_ERROR, /* the target could not be driven (no back-end listening, ...) */
} vuf_finding_kind;

typedef struct {
    vuf_finding_kind kind;
    char rule[48];  /* MUST/SHOULD: the rule id; else the oracle's name */
    char text[512]; /* one line */
    size_t action;  /* the action (from 1) during which it was seen; 0 before the first */
} vuf_finding;

/* "none", "must", "should", "fd-leak", "guest-write", "crash", "exit",
 * "sanitizer", "hang", "bad-input", "target-error" */
const char *vuf_finding_kind_name(vuf_finding_kind k);

/* What a target can do beyond the basics, and what its steps promise. */
enum {
    /* step() returns once the peer did everything the harness's last
     * writes caused (a deterministic, in-process peer) */
    VUF_TARGET_SYNC = 1u << 0,
    /* resize(): the device's disk changes size (BACKEND_CONFIG_CHANGE_MSG) */
    VUF_TARGET_RESIZE = 1u << 1,
    /* ring_passes(): a counter that moves whenever the peer may have touched
     * guest memory (else the harness compares after every step) */
    VUF_TARGET_RING_PASSES = 1u << 2,
    /* backend_timeout(): the harness itself ends the peer's wait for a
     * back-end channel reply (no clock: deterministic runs) */
    VUF_TARGET_BACKEND_TIMEOUT = 1u << 3,
    /* fds_held(): how many fds the peer holds */
    VUF_TARGET_FDS_HELD = 1u << 4,
    /* the peer is vufuzz's reference device: it promises to refuse every
     * request that breaks a rule (docs/reaction-policy.md), so the SHOULD
     * rules it breaks are findings too */
    VUF_TARGET_REFERENCE = 1u << 5,
    /* the target reports every event of both channels as the peer saw them
     * (the harness's own writes and reads on its fds are then silent) */
    VUF_TARGET_EVENTS = 1u << 6,
};

/* Where a target reports to: the harness. */
typedef struct {
    void (*on_event)(void *ctx, const vuf_event *ev);
    /* fds the peer received (numbers in this process), or NULL */
    void (*on_fds)(void *ctx, const int *fds, size_t n);
    void *ctx;
} vuf_target_sink;

/* A session's device, as the session's config lays it out. */
typedef struct {
    uint64_t disk_size;
    uint32_t queues;
} vuf_target_config;

typedef struct {
    const char *name;
    unsigned caps;
    void (*free)(vuf_target *t);
    /* a new session: a fresh peer (0, or -1 with a reason) */
    int (*begin)(vuf_target *t, const vuf_target_config *cfg, char *err, size_t errcap);
    void (*end)(vuf_target *t);
    /* the main channel: open it (0 or -1); the harness's end of it for
     * FD_MAIN_CHANNEL (or -1); write on it (as vuf_send_msg: the fds are
     * the harness's, the peer gets its own copies; kinds are the fds'
     * vuf_fdkind); close it */
    int (*connect)(vuf_target *t);
    int (*main_fd)(vuf_target *t);
    vuf_io_status (*write)(vuf_target *t, const uint8_t *buf, size_t len, const int *fds,
                           const uint8_t *kinds, size_t nfds);
    void (*disconnect)(vuf_target *t);
    bool (*connected)(vuf_target *t);
    /* the harness wrote to or closed an fd the peer may hold */
    void (*poke)(vuf_target *t);
    /* let the peer do what is pending, without waiting (an asynchronous
     * peer: read what it sent); false once the main channel is closed */
    bool (*step)(vuf_target *t);
    /* an asynchronous peer: the fds to wait on for what it sends next */
    void (*poll_add)(vuf_target *t, vuf_pollset *p);
    /* the target's own findings about the session that just ended (after
     * end): 1 and *f filled, or 0 */
    int (*findings)(vuf_target *t, vuf_finding *f);
    /* optional, by caps (NULL otherwise) */
    void (*kick_polled)(vuf_target *t, uint32_t q); /* a queue the peer polls */
    void (*backend_timeout)(vuf_target *t);
    void (*resize)(vuf_target *t, uint64_t size);
    uint64_t (*ring_passes)(vuf_target *t);
    size_t (*fds_held)(vuf_target *t);
    /* requests of (channel, id) the peer accepted (front-end channel) or
     * sent (back-end channel) since the target was made, or NULL */
    uint64_t (*accepted)(vuf_target *t, vuf_channel ch, uint32_t id);
    uint64_t (*chains)(vuf_target *t); /* requests the device completed */
} vuf_target_ops;

/* The sink is set by whoever drives the target (the harness) before the
 * first begin; a target reads it when it reports. */
struct vuf_target {
    const vuf_target_ops *ops;
    vuf_target_sink sink;
};

/* The reference device in this process: its core called directly through
 * the connection layer's in-process path (a framer instead of the main
 * socket; everything else real). The fuzzers' default. */
vuf_target *vuf_target_inproc_new(const vuf_spec *spec);
/* The reference device over real socket pairs: every message and fd
 * crosses the kernel (SCM_RIGHTS, MSG_CTRUNC, short reads, EOF) into its
 * connection layer, as under `vufuzz serve`. */
vuf_target *vuf_target_socket_new(const vuf_spec *spec);

/* The reference targets' disk (tests: its guard page), or NULL for other
 * targets and a disk of size 0. */
uint8_t *vuf_target_ref_disk(vuf_target *t, uint64_t *size);

static inline void vuf_target_free(vuf_target *t)
{
    if (t)
        t->ops->free(t);
}

#endif
