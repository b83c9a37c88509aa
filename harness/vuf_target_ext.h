/* SPDX-License-Identifier: Apache-2.0 */
/* vuf_target_ext: an external back-end, reached over its Unix socket
 * (target_ext.c). The process behind it, when vufuzz started it
 * (`--exec`), is managed by the caller through the hooks: the target only
 * asks where to connect, which pid to watch, and whether the process has
 * something to report after a session. */
#ifndef VUF_TARGET_EXT_H
#define VUF_TARGET_EXT_H

#include "vuf_target.h"

typedef struct {
    const char *connect_path; /* --connect PATH (or path_fn) */
    int pid;                  /* --pid: the back-end's pid for its fd count, or 0 (or pid_fn) */
    int reply_timeout_ms;     /* a reply owed that does not come in time: a hang (default 2000) */
    int connect_timeout_ms;   /* how long to wait for the back-end to listen (default 5000) */
    int settle_ms;            /* after a session, time for the back-end to drop its fds (200) */
    /* hooks for a process vufuzz runs (NULL: none) */
    int (*prepare)(void *ctx, char *err, size_t errcap); /* before a session: (re)start it */
    /* the back-end does not take a connection at once (a server that served
     * its one connection and is on its way out): restart it; 0 if the
     * connection is worth trying again */
    int (*unreachable)(void *ctx, char *err, size_t errcap);
    const char *(*path_fn)(void *ctx); /* where it listens now */
    int (*pid_fn)(void *ctx);          /* its pid now, or 0 */
    /* after a session: 1 and *f when the process has something to report
     * (it died, exited, a sanitizer spoke) */
    int (*check)(void *ctx, vuf_finding *f);
    void *ctx;
} vuf_target_ext_opts;

vuf_target *vuf_target_external_new(const vuf_spec *spec, const vuf_target_ext_opts *o);
/* Why the last connect failed ("" if none). */
const char *vuf_target_external_error(vuf_target *t);
/* The reply deadline in ms (0 for another target). */
int vuf_target_external_reply_timeout(vuf_target *t);

#endif
