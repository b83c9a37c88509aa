/* SPDX-License-Identifier: Apache-2.0 */
/* The back-end under test as the command line names it (vuf_backend.h). */
#include "vuf_backend.h"
#include "vuf_util.h"
#include "vuf_proc.h"
#include "vuf_target_ext.h"

#include <dirent.h>
#include <fcntl.h>
#include <poll.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

/* How long a back-end that closed the connection has to be seen dead. */
#define DEATH_GRACE_MS 300
/* A sanitizer report in progress: done when nothing was written for
 * REPORT_QUIET_MS, or after REPORT_MAX_MS. */
#define REPORT_QUIET_MS 500
#define REPORT_MAX_MS 10000

struct vuf_backend {
    vuf_backend_opts o;
    vuf_proc *proc;
    char name[600];
    unsigned reported_start; /* the run whose sanitizer report was given already */
    off_t log_mark;          /* the log's size when the session began */
};

vuf_backend *vuf_backend_new(const vuf_backend_opts *o, char *err, size_t errcap)
{
    if (!!o->connect_path + !!o->exec_cmd != 1) {
        snprintf(err, errcap, "one back-end: --connect PATH or --exec 'CMD {socket}'");
        return NULL;
    }
    vuf_backend *b = calloc(1, sizeof *b);
    if (!b) {
        snprintf(err, errcap, "out of memory");
        return NULL;
    }
    b->o = *o;
    if (o->exec_cmd) {
        const char *why = vuf_proc_command_error(o->exec_cmd);
        if (why) {
            snprintf(err, errcap, "--exec: %s", why);
            free(b);
            return NULL;
        }
        vuf_proc_opts po = {.command = o->exec_cmd,
                            .ready_timeout_ms = o->ready_timeout_ms,
                            .log_path = o->log_path};
        b->proc = vuf_proc_start(&po, err, errcap);
        if (!b->proc) {
            free(b);
            return NULL;
        }
        snprintf(b->name, sizeof b->name, "%s (pid %d)", o->exec_cmd, (int)vuf_proc_pid(b->proc));
    } else {
        snprintf(b->name, sizeof b->name, "%s", o->connect_path);
    }
    return b;
}

void vuf_backend_free(vuf_backend *b)
{
    if (!b)
        return;
    vuf_proc_free(b->proc);
    free(b);
}

const char *vuf_backend_name(const vuf_backend *b)
{
    return b->name;
}

size_t vuf_backend_log_tail(vuf_backend *b, char *buf, size_t cap)
{
    if (!b->proc) {
        if (cap)
            buf[0] = 0;
        return 0;
    }
    return vuf_proc_log_tail(b->proc, buf, cap);
}

int vuf_backend_restart(vuf_backend *b, char *err, size_t errcap)
{
    if (!b->proc) {
        snprintf(err, errcap, "a --connect back-end cannot be restarted by vufuzz");
        return -1;
    }
    vuf_proc_stop(b->proc);
    return vuf_proc_restart(b->proc, err, errcap);
}

unsigned vuf_backend_starts(const vuf_backend *b)
{
    return b->proc ? vuf_proc_starts(b->proc) : 1;
}

/* ---- the target's hooks ---- */

static off_t file_size(const char *path)
{
    struct stat st;
    return path && !stat(path, &st) ? st.st_size : -1;
}

/* Before a session: a process that ended is started again. */
static int prepare(void *ctx, char *err, size_t errcap)
{
    vuf_backend *b = ctx;
    if (!b->proc)
        return 0;
    if (vuf_proc_poll(b->proc) != VUF_PROC_RUNNING && vuf_proc_restart(b->proc, err, errcap))
        return -1;
    b->log_mark = file_size(vuf_proc_log_path(b->proc));
    return 0;
}

/* Running, but it does not take a connection: a server that served its one
 * connection and is on its way out, or one that stopped serving. It is given
 * a moment to end, then stopped, and started again. */
static int unreachable(void *ctx, char *err, size_t errcap)
{
    vuf_backend *b = ctx;
    if (vuf_proc_poll(b->proc) == VUF_PROC_RUNNING) {
        struct pollfd pfd = {.fd = vuf_proc_wait_fd(b->proc), .events = POLLIN};
        if (pfd.fd >= 0 && poll(&pfd, 1, DEATH_GRACE_MS) > 0)
            vuf_proc_poll(b->proc);
        if (vuf_proc_poll(b->proc) == VUF_PROC_RUNNING)
            vuf_proc_stop(b->proc);
    }
    if (vuf_proc_restart(b->proc, err, errcap))
        return -1;
    b->log_mark = file_size(vuf_proc_log_path(b->proc));
    return 0;
}

static const char *path_of(void *ctx)
{
    vuf_backend *b = ctx;
    return b->proc ? vuf_proc_socket(b->proc) : b->o.connect_path;
}

static int pid_of(void *ctx)
{
    vuf_backend *b = ctx;
    if (b->proc)
        return vuf_proc_poll(b->proc) == VUF_PROC_RUNNING ? (int)vuf_proc_pid(b->proc) : 0;
    return b->o.pid;
}

/* The last line of a log tail holding `mark`, for a one-line text. */
/* 1 if every thread of pid sleeps (S: in poll, accept, read; T: stopped),
 * 0 if one runs or is dying, -1 if the process is gone. */
static int threads_asleep(int pid)
{
    char path[64];
    snprintf(path, sizeof path, "/proc/%d/task", pid);
    DIR *d = opendir(path);
    if (!d)
        return -1;
    int asleep = 1, n = 0;
    for (struct dirent *e; asleep == 1 && (e = readdir(d));) {
        if (e->d_name[0] == '.')
            continue;
        char sp[96], buf[512];
        snprintf(sp, sizeof sp, "/proc/%d/task/%.20s/stat", pid, e->d_name);
        int fd = open(sp, O_RDONLY | O_CLOEXEC);
        if (fd < 0)
            continue; /* a thread that just ended */
        ssize_t k = read(fd, buf, sizeof buf - 1);
        close(fd);
        if (k <= 0)
            continue;
        buf[k] = 0;
        const char *rp = strrchr(buf, ')'); /* the name may hold anything */
        char st = rp && rp[1] == ' ' ? rp[2] : '?';
        n++;
        if (st != 'S' && st != 'T' && st != 't' && st != 'I')
            asleep = 0;
    }
    closedir(d);
    return n ? asleep : -1;
}

/* Does the output written since offset `from` hold a sanitizer's report? */
static bool report_since(const char *path, off_t from)
{
    char buf[4096];
    int fd = path ? open(path, O_RDONLY | O_CLOEXEC) : -1;
    if (fd < 0)
        return false;
    ssize_t k = pread(fd, buf, sizeof buf - 1, from);
    close(fd);
    if (k <= 0)
        return false;
    for (ssize_t i = 0; i < k; i++)
        if (!buf[i])
            buf[i] = ' '; /* a NUL in the output does not end the search */
    buf[k] = 0;
    return vuf_proc_crash_line(buf, false, NULL, 0, NULL) != NULL;
}

/* After a session, before judging the process: let it finish what the
 * session set off. A process dies a moment after its sockets close (a
 * crash, a server that serves one connection), a sanitizer takes a while
 * to print its report; a back-end that is done sleeps in its event loop.
 * So: wait until it is gone, or every thread of it sleeps twice in a row,
 * or the grace is over; while it writes a sanitizer report, until it is
 * gone or has written nothing for a while. */
static void settle(vuf_backend *b)
{
    int pid = b->proc ? (vuf_proc_poll(b->proc) == VUF_PROC_RUNNING ? vuf_proc_pid(b->proc) : 0)
                      : b->o.pid;
    if (pid <= 0)
        return;
    const char *log = b->proc ? vuf_proc_log_path(b->proc) : NULL;
    int64_t t0 = vuf_now_us(), until = t0 + DEATH_GRACE_MS * 1000, quiet_since = t0;
    off_t size = file_size(log);
    bool report = false;
    int calm = 0, wait_us = 50;
    for (;;) {
        if (b->proc && vuf_proc_poll(b->proc) != VUF_PROC_RUNNING)
            return;
        int a = threads_asleep(pid);
        if (a < 0 && !b->proc)
            return; /* --pid: gone (the target reports it) */
        off_t now_size = file_size(log);
        int64_t now = vuf_now_us();
        if (now_size != size) {
            if (!report && now_size > b->log_mark)
                report = report_since(log, b->log_mark);
            size = now_size;
            quiet_since = now;
            calm = 0;
        }
        if (report) { /* until it dies, or is silent for a while (UBSan goes on) */
            if (now - quiet_since > REPORT_QUIET_MS * 1000 || now - t0 > REPORT_MAX_MS * 1000)
                return;
        } else {
            calm = a == 1 ? calm + 1 : 0;
            if (calm >= 2 || now > until)
                return;
        }
        struct pollfd pfd = {.fd = b->proc ? vuf_proc_wait_fd(b->proc) : -1, .events = POLLIN};
        if (pfd.fd >= 0)
            poll(&pfd, 1, 0);
        usleep((useconds_t)wait_us);
        if (wait_us < 2000)
            wait_us *= 2;
    }
}

/* After a session: the process's own verdict. */
static int check(void *ctx, vuf_finding *f)
{
    vuf_backend *b = ctx;
    settle(b); /* whoever closed: a close of ours can set a crash off too */
    if (!b->proc)
        return 0;
    char tail[8192], line[300], st[128];
    vuf_proc_state s = vuf_proc_poll(b->proc);
    vuf_proc_log_tail(b->proc, tail, sizeof tail);
    const char *mark = vuf_proc_crash_line(tail, false, line, sizeof line, NULL);
    if (mark && b->reported_start != vuf_proc_starts(b->proc)) {
        b->reported_start = vuf_proc_starts(b->proc);
        f->kind = VUF_FINDING_SANITIZER;
        snprintf(f->rule, sizeof f->rule, "sanitizer");
        snprintf(f->text, sizeof f->text, "the back-end's sanitizer reported: %s (%s)", line,
                 vuf_proc_status_text(b->proc, st, sizeof st));
        vuf_proc_stop(b->proc); /* the next session starts a fresh run */
        return 1;
    }
    if (s == VUF_PROC_SIGNALED && !vuf_proc_stopped_by_us(b->proc)) {
        f->kind = VUF_FINDING_CRASH;
        snprintf(f->rule, sizeof f->rule, "crash");
        const char *last = strrchr(tail, '\n');
        while (last && last > tail && last[1] == 0) { /* the last line with text */
            const char *p = last - 1;
            while (p > tail && *p != '\n')
                p--;
            if (p[*p == '\n'] != '\n') {
                last = p;
                break;
            }
            last = p;
        }
        snprintf(f->text, sizeof f->text, "the back-end %s; its last output: %.300s",
                 vuf_proc_status_text(b->proc, st, sizeof st),
                 last ? last + (*last == '\n') : tail);
        return 1;
    }
    if (s == VUF_PROC_EXITED && !vuf_proc_stopped_by_us(b->proc) && vuf_proc_exit_code(b->proc)) {
        f->kind = VUF_FINDING_EXIT;
        snprintf(f->rule, sizeof f->rule, "exit");
        snprintf(f->text, sizeof f->text, "the back-end %s while it should have served",
                 vuf_proc_status_text(b->proc, st, sizeof st));
        return 1;
    }
    return 0; /* running, or a server that served its connection and exited 0 */
}

vuf_target *vuf_backend_target(vuf_backend *b, const vuf_spec *spec)
{
    vuf_target_ext_opts xo = {.connect_path = b->o.connect_path,
                              .pid = b->o.pid,
                              .reply_timeout_ms = b->o.reply_timeout_ms,
                              .prepare = prepare,
                              .unreachable = b->proc ? unreachable : NULL,
                              .path_fn = path_of,
                              .pid_fn = pid_of,
                              .check = check,
                              .ctx = b};
    return vuf_target_external_new(spec, &xo);
}
