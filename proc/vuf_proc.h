/* SPDX-License-Identifier: Apache-2.0 */
/* vuf_proc: a back-end process that vufuzz starts, watches and ends
 * (`--exec 'CMD ... {socket}'`): the monitor's and the external targets'
 * one way to run a program under test. With `we_listen`, the roles of the
 * socket are the other way round: vufuzz listens on {socket} and the
 * program connects to it (a front-end such as QEMU, whose chardev is a
 * client: `fuzz-frontend --exec`); everything else is the same.
 *
 *   - start: CMD runs under /bin/bash -c (/bin/sh without bash) with every
 *     "{socket}" replaced by a private socket path (a fresh directory of its
 *     own, shell-quoted), in a process group of its own, stdin from /dev/null, stdout and stderr
 *     appended to a log file, no fd of ours inherited, and signals at their
 *     defaults. The call returns once something listens on the socket (asked
 *     of /proc/net/unix: no probe connection reaches the back-end), or fails
 *     with a one-line reason: the process ended first (its status and the
 *     tail of its log), or it did not listen within the deadline (it is then
 *     stopped). With we_listen: vufuzz listens on the path before the
 *     program starts, the call returns at once, and vuf_proc_accept waits
 *     for the program's connection;
 *   - its pid: the process of the group that listens on the socket (bash
 *     runs a simple command as itself; a compound one, a wrapper script,
 *     is searched in /proc), an fd that becomes readable when the run ends
 *     (a pidfd, for an event loop), its state and its exit status or signal
 *     as text: the back-end's own when bash ran it as itself, else the
 *     shell's (a signal then shows as status 128+N);
 *   - the tail of what this run wrote to its log;
 *   - restart (same socket path, same log, appended);
 *   - stop: SIGTERM to the whole group, SIGKILL to the group after the
 *     grace period, and the process reaped, on every path: vuf_proc_free,
 *     exit() of vufuzz (an atexit hook stops every process still running),
 *     and the death of vufuzz itself, even by SIGKILL (the process gets
 *     SIGKILL from the kernel: PR_SET_PDEATHSIG). A caller that handles
 *     SIGINT/SIGTERM (vuf_cli_signal_fd) frees its procs before it returns.
 *     What escapes: a child that leaves the process group (setsid,
 *     --daemonize) and outlives a vufuzz killed by SIGKILL.
 *
 * Not thread-safe (one event loop owns its procs). */
#ifndef VUF_PROC_H
#define VUF_PROC_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

typedef struct vuf_proc vuf_proc;

typedef struct {
    const char *command;  /* shell command line; must contain "{socket}" */
    int ready_timeout_ms; /* how long it may take to listen (0: 10000) */
    int stop_timeout_ms;  /* SIGTERM to SIGKILL (0: 2000) */
    /* its stdout and stderr, appended to (NULL: "backend.log" in the
     * private directory, removed by vuf_proc_free) */
    const char *log_path;
    /* vufuzz listens on {socket} and the program connects (see above) */
    bool we_listen;
    /* more private paths: each "{NAME}" of these names (NULL-terminated) is
     * replaced like {socket}, by NAME.sock in the private directory (QEMU's
     * QMP socket: "qmp") */
    const char *const *tokens;
} vuf_proc_opts;

typedef enum {
    VUF_PROC_RUNNING = 0,
    VUF_PROC_EXITED,   /* it exited: vuf_proc_exit_code is its status */
    VUF_PROC_SIGNALED, /* a signal ended it: vuf_proc_exit_code is the signal */
} vuf_proc_state;

/* NULL if command can be run, else why not ("has no {socket}"). */
const char *vuf_proc_command_error(const char *command);

/* Start and wait until it listens. NULL with a one-line reason in err
 * (nothing is left running, no file left behind). */
vuf_proc *vuf_proc_start(const vuf_proc_opts *o, char *err, size_t errcap);
/* Stop it if it runs, start it again on the same socket, wait until it
 * listens. 0, or -1 with err (it is not running then). */
int vuf_proc_restart(vuf_proc *p, char *err, size_t errcap);
/* Stop it (SIGTERM, then SIGKILL after stop_timeout_ms, to its group) and
 * reap it. Nothing happens if it ended already. */
void vuf_proc_stop(vuf_proc *p);
/* Stop it, close everything, remove the private directory. NULL is fine. */
void vuf_proc_free(vuf_proc *p);

/* we_listen: the program's connection to {socket}, in blocking mode, once
 * it connects (at most timeout_ms, < 0 forever); -1 with a one-line reason
 * when it ended first (its status and the tail of its log) or did not
 * connect in time (it keeps running). Connections a previous run left
 * unaccepted are dropped by a restart. */
int vuf_proc_accept(vuf_proc *p, int timeout_ms, char *err, size_t errcap);
/* we_listen: the listening socket, for an event loop that takes the
 * program's further connections (a front-end that reconnects) with
 * vuf_proc_accept(p, 0, ...) when it is readable; -1 otherwise. */
int vuf_proc_listen_fd(const vuf_proc *p);
/* The path that replaced "{name}" (one of opts.tokens), or NULL. */
const char *vuf_proc_token_path(const vuf_proc *p, const char *name);

/* Its state now (an ended process is reaped here, without waiting). */
vuf_proc_state vuf_proc_poll(vuf_proc *p);
/* EXITED: the exit status; SIGNALED: the signal number; RUNNING: -1. */
int vuf_proc_exit_code(const vuf_proc *p);
/* A line of a program's output that says it crashed: a sanitizer's report
 * (ASan, LSan, UBSan, MSan, TSan), and with `asserts` also an assertion or
 * abort line (the C library's assert(), glib's g_assert() and fatal
 * messages, QEMU's hw_error()). NULL when none; else the mark found, the
 * whole line in line[cap] (cap may be 0), *sanitizer (may be NULL) tells a
 * sanitizer's. */
const char *vuf_proc_crash_line(const char *output, bool asserts, char *line, size_t cap,
                                bool *sanitizer);
/* Did it end because vuf_proc_stop (or a restart) ended it? */
bool vuf_proc_stopped_by_us(const vuf_proc *p);
/* "running", "exited with status 3", "killed by signal 11 (SIGSEGV)". */
const char *vuf_proc_status_text(const vuf_proc *p, char *buf, size_t cap);

/* The back-end of the current (or last) run: the process that listens on
 * the socket (else the shell's). */
pid_t vuf_proc_pid(const vuf_proc *p);
/* Readable once the current run ended (then call vuf_proc_poll); -1 if the
 * kernel has no pidfd (then poll with vuf_proc_poll). */
int vuf_proc_wait_fd(const vuf_proc *p);
const char *vuf_proc_socket(const vuf_proc *p);
const char *vuf_proc_log_path(const vuf_proc *p);
/* The last bytes (at most cap - 1, from a line start when one is in
 * reach) that the current run wrote to its log, NUL-terminated; returns
 * their length. */
size_t vuf_proc_log_tail(const vuf_proc *p, char *buf, size_t cap);
/* How many times it was started. */
unsigned vuf_proc_starts(const vuf_proc *p);

#endif
