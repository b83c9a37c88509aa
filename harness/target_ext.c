/* SPDX-License-Identifier: Apache-2.0 */
/* An external back-end as a target (vuf_target.h): a process reached over
 * its Unix socket, which the harness drives as a front-end would.
 *
 * Everything is asynchronous: the harness's side of the main channel is an
 * endpoint that reports what the harness sends (as the back-end frames it)
 * and what it reads back; the harness waits for the replies the checker
 * says are owed, up to a deadline (the hang oracle). The target's own
 * oracles, after each session: the process's fds (/proc/PID/fd against its
 * count before the first session) and the process itself (gone: a crash). */
#include "vuf_target.h"
#include "vuf_util.h"
#include "vuf_target_ext.h"

#include <dirent.h>
#include <poll.h>
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define IO_TIMEOUT_MS 1000 /* the rest of a message that has begun arriving */

typedef struct {
    vuf_target t;
    const vuf_spec *spec;
    vuf_target_ext_opts o;
    char path[108];
    int fe;
    bool peer_closed;
    vuf_endpoint *ep;
    int baseline;     /* the back-end's open fds before its first session, -1 unknown */
    int baseline_pid; /* whose: a restarted process is counted anew */
    bool leaked;      /* the baseline moved up after a leak was reported */
    char last_error[200];
} ext_target;

/* How long a started back-end may take to take a connection before it is
 * asked whether it still listens. */
#define UNREACHABLE_PROBE_MS 100

static ext_target *et(vuf_target *t)
{
    return (ext_target *)t;
}

static void fwd_event(void *ctx, const vuf_event *ev)
{
    ext_target *x = ctx;
    if (x->t.sink.on_event)
        x->t.sink.on_event(x->t.sink.ctx, ev);
}

/* Open fds of a process, or -1. */
static int count_fds(int pid)
{
    char dir[64];
    snprintf(dir, sizeof dir, "/proc/%d/fd", pid);
    DIR *d = opendir(dir);
    if (!d)
        return -1;
    int n = 0;
    for (struct dirent *e; (e = readdir(d));)
        n += e->d_name[0] != '.';
    closedir(d);
    return n;
}

static int x_pid(const ext_target *x)
{
    return x->o.pid_fn ? x->o.pid_fn(x->o.ctx) : x->o.pid;
}

static int x_begin(vuf_target *t, const vuf_target_config *c, char *err, size_t errcap)
{
    ext_target *x = et(t);
    (void)c; /* the back-end's own configuration is its business */
    if (x->o.prepare && x->o.prepare(x->o.ctx, err, errcap))
        return -1;
    const char *p = x->o.path_fn ? x->o.path_fn(x->o.ctx) : x->o.connect_path;
    snprintf(x->path, sizeof x->path, "%s", p ? p : "");
    int pid = x_pid(x);
    if (pid > 0 && pid != x->baseline_pid) {
        x->baseline = count_fds(pid);
        x->baseline_pid = pid;
        x->leaked = false;
    }
    return 0;
}

static int x_connect(vuf_target *t)
{
    ext_target *x = et(t);
    if (x->fe >= 0)
        return 0;
    int fd;
    if (x->o.unreachable) {
        /* a process of ours: it listens already (it was waited for when it
         * started), so a refusal now means it stopped listening */
        fd = vuf_unix_connect(x->path, UNREACHABLE_PROBE_MS);
        char err[200];
        if (fd < 0 && x->o.unreachable(x->o.ctx, err, sizeof err) == 0) {
            const char *p = x->o.path_fn ? x->o.path_fn(x->o.ctx) : x->o.connect_path;
            snprintf(x->path, sizeof x->path, "%s", p ? p : "");
            fd = vuf_unix_connect(x->path, x->o.connect_timeout_ms);
        } else if (fd < 0) {
            snprintf(x->last_error, sizeof x->last_error, "%s", err);
            return -1;
        }
    } else {
        fd = vuf_unix_connect(x->path, x->o.connect_timeout_ms);
    }
    if (fd < 0) {
        snprintf(x->last_error, sizeof x->last_error, "cannot connect to %s: %s", x->path,
                 strerror(errno));
        return -1;
    }
    x->fe = fd;
    x->peer_closed = false;
    vuf_endpoint_set_fd(x->ep, fd);
    vuf_endpoint_emit_open(x->ep, VUF_SIDE_FRONTEND);
    return 0;
}

static int x_main_fd(vuf_target *t)
{
    return et(t)->fe;
}

static vuf_io_status x_write(vuf_target *t, const uint8_t *buf, size_t len, const int *fds,
                             const uint8_t *kinds, size_t nfds)
{
    ext_target *x = et(t);
    if (x->fe < 0 || x->peer_closed)
        return VUF_IO_ERROR;
    /* a back-end that stops reading blocks a real front-end: up to the
     * reply deadline, then the write gives up (the harness's hang oracle
     * sees the reply missing) */
    return vuf_endpoint_send(x->ep, buf, len, fds, kinds, nfds, x->o.reply_timeout_ms);
}

static bool x_step(vuf_target *t)
{
    ext_target *x = et(t);
    if (x->fe < 0 || x->peer_closed)
        return false;
    for (int k = 0; k < 256; k++) {
        /* only when something is there; then the rest of the message may
         * take its time (a back-end may write a header and its payload
         * apart) */
        struct pollfd p = {.fd = x->fe, .events = POLLIN};
        if (poll(&p, 1, 0) <= 0)
            break;
        vuf_endpoint_msg m;
        vuf_io_status st = vuf_endpoint_recv(x->ep, &m, IO_TIMEOUT_MS);
        vuf_close_fds(m.fds, &m.nfds); /* a reply's fds: not kept */
        if (st == VUF_IO_OK || st == VUF_IO_CTRUNC || st == VUF_IO_OVERSIZE)
            continue;
        if (st == VUF_IO_TIMEOUT && m.len == 0)
            break;
        /* EOF or SHORT: the back-end closed (reported); anything else broke
         * the framing: a front-end closes */
        x->peer_closed = true;
        if (st != VUF_IO_EOF && st != VUF_IO_SHORT)
            vuf_endpoint_emit_close(x->ep, VUF_SIDE_FRONTEND);
        break;
    }
    return !x->peer_closed;
}

static void x_poll_add(vuf_target *t, vuf_pollset *p)
{
    ext_target *x = et(t);
    if (x->fe >= 0 && !x->peer_closed)
        vuf_pollset_add(p, x->fe, POLLIN);
}

static void x_disconnect(vuf_target *t)
{
    ext_target *x = et(t);
    if (x->fe < 0)
        return;
    if (!x->peer_closed)
        vuf_endpoint_emit_close(x->ep, VUF_SIDE_FRONTEND);
    close(x->fe);
    x->fe = -1;
    vuf_endpoint_set_fd(x->ep, -1);
}

static bool x_connected(vuf_target *t)
{
    ext_target *x = et(t);
    return x->fe >= 0 && !x->peer_closed;
}

static void x_poke(vuf_target *t)
{
    (void)t; /* the back-end watches its own fds */
}

static void x_end(vuf_target *t)
{
    x_disconnect(t);
}

/* After a session: the process itself, then its fds. */
static int x_findings(vuf_target *t, vuf_finding *f)
{
    ext_target *x = et(t);
    if (x->o.check && x->o.check(x->o.ctx, f))
        return 1; /* the process's own verdict (--exec: died, sanitizer report) */
    int pid = x_pid(x);
    if (pid <= 0)
        return 0;
    if (kill(pid, 0) && errno == ESRCH) {
        f->kind = VUF_FINDING_CRASH;
        snprintf(f->rule, sizeof f->rule, "process-gone");
        snprintf(f->text, sizeof f->text, "the back-end process %d is gone", pid);
        return 1;
    }
    if (x->baseline < 0)
        return 0;
    /* the back-end drops a connection's fds when it sees it close: give it
     * a moment */
    int n = count_fds(pid);
    for (int64_t until = vuf_now_ms() + x->o.settle_ms; n > x->baseline && vuf_now_ms() < until;) {
        usleep(2000);
        n = count_fds(pid);
    }
    if (n > x->baseline) {
        f->kind = VUF_FINDING_FD_LEAK;
        snprintf(f->rule, sizeof f->rule, "fd-leak");
        snprintf(f->text, sizeof f->text,
                 "the back-end (pid %d) holds %d fds after the session, %d before it%s", pid, n,
                 x->baseline, x->leaked ? " (after earlier leaks)" : "");
        /* reported once: the next session is judged against this count */
        x->baseline = n;
        x->leaked = true;
        return 1;
    }
    return 0;
}

static void x_free(vuf_target *t)
{
    ext_target *x = et(t);
    x_disconnect(t);
    vuf_endpoint_free(x->ep);
    free(x);
}

static const vuf_target_ops ext_ops = {
    .name = "external",
    .caps = 0,
    .free = x_free,
    .begin = x_begin,
    .end = x_end,
    .connect = x_connect,
    .main_fd = x_main_fd,
    .write = x_write,
    .disconnect = x_disconnect,
    .connected = x_connected,
    .poke = x_poke,
    .step = x_step,
    .poll_add = x_poll_add,
    .findings = x_findings,
};

vuf_target *vuf_target_external_new(const vuf_spec *spec, const vuf_target_ext_opts *o)
{
    ext_target *x = calloc(1, sizeof *x);
    if (!x)
        return NULL;
    x->t.ops = &ext_ops;
    x->spec = spec;
    x->o = *o;
    if (x->o.reply_timeout_ms <= 0)
        x->o.reply_timeout_ms = 2000;
    if (x->o.connect_timeout_ms <= 0)
        x->o.connect_timeout_ms = 5000;
    if (x->o.settle_ms <= 0)
        x->o.settle_ms = 200;
    x->fe = -1;
    x->baseline = -1;
    vuf_endpoint_opts eo = {.channel = VUF_CHAN_FRONTEND,
                            .local = VUF_SIDE_FRONTEND,
                            .payload_cap = VUF_MAX_PAYLOAD,
                            .on_event = fwd_event,
                            .ctx = x};
    x->ep = vuf_endpoint_new(-1, &eo);
    if (!x->ep) {
        free(x);
        return NULL;
    }
    vuf_endpoint_set_tx_framing(x->ep, true);
    return &x->t;
}

const char *vuf_target_external_error(vuf_target *t)
{
    return t->ops == &ext_ops ? et(t)->last_error : "";
}

int vuf_target_external_reply_timeout(vuf_target *t)
{
    return t->ops == &ext_ops ? et(t)->o.reply_timeout_ms : 0;
}
