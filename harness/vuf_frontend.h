/* SPDX-License-Identifier: Apache-2.0 */
/* vuf_frontend: the front-end under test as the command line names it
 * (`--exec 'qemu-system-x86_64 ... -chardev socket,id=c0,path={socket} ...'`),
 * one back-end session per process, with the oracles of `vufuzz
 * fuzz-frontend` and `vufuzz replay --frontend-exec`.
 *
 * For every session a fresh process connects to a socket vufuzz listens
 * on (proc/, we_listen) and vuf_hostile plays the back-end. Processes are
 * started ahead (a pool): their start-up, QEMU's TCG set-up above all,
 * overlaps the session before them. A QEMU command (its program is
 * qemu-system-*) gets `-qmp unix:{qmp},server=on,wait=off` unless it names
 * {qmp} itself, and `-S` unless the session wants the firmware to run
 * (opts.firmware): the guest stays stopped, the conversation is the
 * handshake at device realize.
 *
 * A session plays until the front-end closed the main channel, or nothing
 * happened on either channel for settle_ms with no action running, or
 * session_ms passed. A message the back-end left unfinished, or a reply
 * the front-end still waits for then (the checker says one is owed), makes
 * the back-end close the channel first, and the session goes on with the
 * front-end's reaction: waiting on its peer is not a hang. Then, with QMP: query-status must be
 * answered within hang_ms (else: a hang), then `quit`, and the process must be gone within hang_ms
 * (else: a hang); without QMP: SIGTERM. The oracles, in order:
 *   - crash: the process died by a signal it was not sent by vufuzz;
 *   - sanitizer / assertion: its output holds a sanitizer's report, or an
 *     assertion or abort line (glib's, the C library's), whatever its status;
 *   - hang: as above;
 *   - must: the checker saw the front-end break a MUST rule (a SHOULD one
 *     too with opts.level SHOULD); its replies' order on the back-end
 *     channel (REPLY-* rules) is not judged in a session whose back-end
 *     sent requests there without waiting for the replies.
 * An exit with an error status is not a finding: a front-end that refuses
 * a hostile back-end and exits (QEMU at device realize) does its duty. */
#ifndef VUF_FRONTEND_H
#define VUF_FRONTEND_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "vuf_checker.h"
#include "vuf_hostile.h"
#include "vuf_rules.h"
#include "vuf_target.h"

typedef struct vuf_frontend vuf_frontend;

typedef struct {
    const char *exec_cmd; /* with {socket}; {qmp} optional */
    const char *log_path; /* the processes' output (NULL: private files) */
    vuf_hostile_device device;
    bool firmware;             /* let the guest run its firmware (no -S) */
    const uint8_t *disk_image; /* the device's first disk bytes (a boot sector) */
    size_t disk_image_len;
    int pool;        /* processes started ahead (0: 1; -1: none) */
    int ready_ms;    /* to connect (0: 10000) */
    int settle_ms;   /* quiet that ends a session (0: 300, 60 once QMP answers;
                        firmware: blk 1500, net 3000: iPXE starts the
                        rings some 2 s after it set the device up) */
    int session_ms;  /* longest session (0: 15000; firmware: 30000) */
    int hang_ms;     /* query-status answered, then gone after quit (0: 5000) */
    vuf_level level; /* MUST (default) or SHOULD */
    /* every event as the front-end saw it; every action as it begins */
    void (*on_event)(void *ctx, const vuf_event *ev);
    void (*on_action)(void *ctx, size_t index, const Vuf__Action *a);
    void (*on_violation)(void *ctx, const vuf_violation *v);
    void *ctx;
} vuf_frontend_opts;

/* One session's figures beside its finding. */
typedef struct {
    double seconds;                   /* from taking the process to its end */
    size_t actions_done;              /* actions performed or matched */
    uint64_t msgs[VUF_CHAN_COUNT][2]; /* messages by channel and sender (0 front-end, 1 back-end) */
    /* (channel, sender, id) seen, id < 64: bit id of seen_ids[channel][sender] */
    uint64_t seen_ids[VUF_CHAN_COUNT][2];
    char status[96];   /* how the process ended ("exited with status 0", ...) */
    char output[4096]; /* the tail of what it wrote */
    bool qmp_answered; /* query-status was answered */
} vuf_frontend_result;

/* Checks the command (it must contain {socket}) and starts the pool. NULL
 * with a one-line reason. */
vuf_frontend *vuf_frontend_new(const vuf_spec *spec, const vuf_frontend_opts *o, char *err,
                               size_t errcap);
void vuf_frontend_free(vuf_frontend *f); /* every process stopped, files removed */

/* Run one back-end session against a fresh process. BAD_INPUT: the
 * session does not build against the table (or is not a back-end
 * session); TARGET_ERROR: the program never connected. r may be NULL. */
vuf_finding vuf_frontend_run(vuf_frontend *f, const Vuf__Session *s, vuf_frontend_result *r);

/* A smaller session that gives the same finding (kind and rule): each
 * action removed in turn (the back-end's, from the last, then the
 * expectations) and the removal kept when the finding stays. A new session
 * (vuf_session_free), or NULL when the finding did not come back in two
 * runs (a flaky one: keep the original). *runs counts the runs made. */
Vuf__Session *vuf_frontend_minimize(vuf_frontend *f, const Vuf__Session *s, const vuf_finding *fd,
                                    unsigned *runs);

/* The command as run (-qmp and -S added), with {socket} and {qmp} left in. */
const char *vuf_frontend_command(const vuf_frontend *f);
/* Block requests the device completed over every session (firmware I/O). */
uint64_t vuf_frontend_chains(const vuf_frontend *f);

/* A line of a program's output that says it crashed or failed an
 * assertion: sanitizer reports, glib's and the C library's assertion
 * messages, abort notices. NULL when none; else the mark found, and the
 * whole line in line[cap]. *sanitizer tells a sanitizer's. */
const char *vuf_frontend_crash_line(const char *output, char *line, size_t cap, bool *sanitizer);

#endif
