/* SPDX-License-Identifier: Apache-2.0 */
/* vuf_backend: the back-end under test as a command line names it, once for
 * every command (replay, conform, fuzz, minimize):
 *
 *   --connect PATH [--pid PID]   a back-end that listens on PATH (its
 *                                process, when known, for its fds and its
 *                                death);
 *   --exec 'CMD ... {socket}'    a back-end vufuzz starts (proc/vuf_proc.h)
 *                                and starts again whenever it ended: a crash
 *                                between two sessions, or a server that
 *                                serves one connection and exits.
 *
 * The target it gives (vuf_target_ext.h) reports, after every session: the
 * process died by a signal (crash), it exited with a status other than 0
 * (exit), its output holds a sanitizer's report (the run is then started
 * anew), its fds grew. */
#ifndef VUF_BACKEND_H
#define VUF_BACKEND_H

#include <stddef.h>

#include "vuf_target.h"

typedef struct vuf_backend vuf_backend;

typedef struct {
    const char *connect_path;
    int pid;
    const char *exec_cmd;
    int ready_timeout_ms; /* --exec: how long it may take to listen (0: 10000) */
    const char *log_path; /* --exec: its output (NULL: a private file) */
    int reply_timeout_ms; /* a reply owed that does not come in time: a hang (0: 2000) */
} vuf_backend_opts;

/* --exec starts the process here. NULL with a one-line reason. */
vuf_backend *vuf_backend_new(const vuf_backend_opts *o, char *err, size_t errcap);
void vuf_backend_free(vuf_backend *b); /* stops the process; the target must be gone */
/* A target driving it (for vuf_harness_opts.custom: the harness frees it;
 * one target per backend at a time). */
vuf_target *vuf_backend_target(vuf_backend *b, const vuf_spec *spec);
/* "PATH" or "CMD (pid N)", for reports. */
const char *vuf_backend_name(const vuf_backend *b);
/* --exec: the last bytes the current run wrote (its stderr: a sanitizer
 * report, an assertion); "" otherwise. Returns the length. */
size_t vuf_backend_log_tail(vuf_backend *b, char *buf, size_t cap);
/* --exec: stop it and start it anew (a back-end that stopped answering but
 * lives on); 0, or -1 with the reason. --connect: -1 (nobody can). */
int vuf_backend_restart(vuf_backend *b, char *err, size_t errcap);
/* --exec: how many times it was started (a restart after each death). */
unsigned vuf_backend_starts(const vuf_backend *b);

#endif
