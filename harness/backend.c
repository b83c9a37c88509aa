/* SPDX-License-Identifier: Apache-2.0 */
/* The back-end under test as the command line names it (vuf_backend.h). */
#include "vuf_backend.h"
#include "vuf_proc.h"
#include "vuf_target_ext.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct vuf_backend {
    vuf_backend_opts o;
    vuf_proc *proc;
    char name[600];
    unsigned reported_start; /* the run whose sanitizer report was given already */
};

static const char *const sanitizer_marks[] = {
    "ERROR: AddressSanitizer", "ERROR: LeakSanitizer",
    "runtime error:",          "SUMMARY: UndefinedBehaviorSanitizer",
    "ERROR: MemorySanitizer",  "WARNING: ThreadSanitizer",
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

unsigned vuf_backend_starts(const vuf_backend *b)
{
    return b->proc ? vuf_proc_starts(b->proc) : 1;
}

/* ---- the target's hooks ---- */

/* Before a session: a process that ended is started again. */
static int prepare(void *ctx, char *err, size_t errcap)
{
    vuf_backend *b = ctx;
    if (!b->proc || vuf_proc_poll(b->proc) == VUF_PROC_RUNNING)
        return 0;
    return vuf_proc_restart(b->proc, err, errcap);
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
static void line_with(const char *tail, const char *mark, char *out, size_t cap)
{
    const char *p = strstr(tail, mark);
    const char *s = p;
    while (s > tail && s[-1] != '\n')
        s--;
    const char *e = strchr(p, '\n');
    size_t n = e ? (size_t)(e - s) : strlen(s);
    snprintf(out, cap, "%.*s", (int)(n < cap ? n : cap - 1), s);
}

/* After a session: the process's own verdict. */
static int check(void *ctx, vuf_finding *f)
{
    vuf_backend *b = ctx;
    if (!b->proc)
        return 0;
    char tail[8192], line[300], st[128];
    vuf_proc_state s = vuf_proc_poll(b->proc);
    vuf_proc_log_tail(b->proc, tail, sizeof tail);
    const char *mark = NULL;
    for (size_t i = 0; i < sizeof sanitizer_marks / sizeof *sanitizer_marks && !mark; i++)
        if (strstr(tail, sanitizer_marks[i]))
            mark = sanitizer_marks[i];
    if (mark && b->reported_start != vuf_proc_starts(b->proc)) {
        b->reported_start = vuf_proc_starts(b->proc);
        line_with(tail, mark, line, sizeof line);
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
                              .path_fn = path_of,
                              .pid_fn = pid_of,
                              .check = check,
                              .ctx = b};
    return vuf_target_external_new(spec, &xo);
}
