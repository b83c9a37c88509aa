/* SPDX-License-Identifier: Apache-2.0 */
/* vuf_proc: see vuf_proc.h. */
#include "vuf_proc.h"
#include "vuf_util.h"
#include "vuf_transport.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define SOCKET_TOKEN "{socket}"
#define MAX_TOKENS 4

struct vuf_proc {
    char *command; /* as given */
    char *line;    /* what the shell runs: {socket} replaced */
    const char *shell;
    int ready_ms, stop_ms;
    char dir[80]; /* TMPDIR (at most 64 bytes) + "/vufuzz-XXXXXX" */
    char sock[sizeof(((struct sockaddr_un *)0)->sun_path)];
    char log[PATH_MAX];
    bool own_log;
    int lfd; /* we_listen: vufuzz's listening socket on sock, else -1 */
    char token[MAX_TOKENS][24];
    char token_path[MAX_TOKENS][sizeof(((struct sockaddr_un *)0)->sun_path)];
    size_t ntokens;
    pid_t sup; /* the supervisor: our child, the process group's leader */
    pid_t pid; /* the back-end */
    int pidfd; /* the supervisor's */
    bool running, by_us;
    vuf_proc_state state;
    int code;
    off_t log_start; /* where the current run's output begins in the log */
    unsigned starts;
    struct vuf_proc *next; /* every proc not freed yet, for the atexit hook */
};

static vuf_proc *all;

static void stop_all(void)
{
    for (vuf_proc *p = all; p; p = p->next)
        vuf_proc_stop(p);
}

static void track(vuf_proc *p)
{
    static bool hooked;
    if (!hooked && atexit(stop_all) == 0)
        hooked = true;
    p->next = all;
    all = p;
}

static void untrack(vuf_proc *p)
{
    for (vuf_proc **q = &all; *q; q = &(*q)->next)
        if (*q == p) {
            *q = p->next;
            return;
        }
}

const char *vuf_proc_command_error(const char *command)
{
    if (!command || !*command)
        return "is empty";
    if (!strstr(command, SOCKET_TOKEN))
        return "has no " SOCKET_TOKEN " (where the back-end's socket path goes)";
    return NULL;
}

/* command with every `token` replaced by path in single quotes. */
static char *substitute(const char *command, const char *token, const char *path)
{
    char q[3 * PATH_MAX];
    size_t n = 0;
    q[n++] = '\'';
    for (const char *s = path; *s && n + 6 < sizeof q; s++) {
        if (*s == '\'') {
            memcpy(q + n, "'\\''", 4);
            n += 4;
        } else {
            q[n++] = *s;
        }
    }
    q[n++] = '\'';
    q[n] = 0;
    size_t count = 0, tl = strlen(token);
    for (const char *s = strstr(command, token); s; s = strstr(s + tl, token))
        count++;
    size_t len = strlen(command) + count * n + 1;
    char *out = malloc(len), *o = out;
    if (!out)
        return NULL;
    for (const char *s = command; *s;) {
        if (!strncmp(s, token, tl)) {
            memcpy(o, q, n);
            o += n;
            s += tl;
        } else {
            *o++ = *s++;
        }
    }
    *o = 0;
    return out;
}

/* The tail of the current run's log as one line (newlines shown as " | "). */
static void tail_line(const vuf_proc *p, char *out, size_t cap)
{
    char t[400];
    size_t n = vuf_proc_log_tail(p, t, sizeof t);
    while (n && (t[n - 1] == '\n' || t[n - 1] == ' '))
        t[--n] = 0;
    size_t o = 0;
    for (size_t i = 0; i < n && o + 4 < cap; i++) {
        if (t[i] == '\n') {
            memcpy(out + o, " | ", 3);
            o += 3;
        } else {
            out[o++] = t[i] == '\t' ? ' ' : (t[i] >= 0x20 && t[i] < 0x7f) ? t[i] : '?';
        }
    }
    out[o] = 0;
}

/* Record how it ended from a wait status. */
static void ended(vuf_proc *p, int st)
{
    p->running = false;
    if (WIFSIGNALED(st)) {
        p->state = VUF_PROC_SIGNALED;
        p->code = WTERMSIG(st);
    } else {
        p->state = VUF_PROC_EXITED;
        p->code = WIFEXITED(st) ? WEXITSTATUS(st) : -1;
    }
    if (p->pidfd >= 0)
        close(p->pidfd);
    p->pidfd = -1;
}

/* Sleep up to ms, less if the run ends meanwhile. */
static void nap(const vuf_proc *p, int ms)
{
    if (p->pidfd >= 0) {
        struct pollfd pf = {.fd = p->pidfd, .events = POLLIN};
        poll(&pf, 1, ms);
    } else {
        struct timespec ts = {.tv_sec = 0, .tv_nsec = (long)(ms < 10 ? ms : 10) * 1000000L};
        nanosleep(&ts, NULL);
    }
}

/* Wait up to ms for the run to end, without reaping it (its pid, and so its
 * process group id, stay reserved while it is a zombie). true: it ended. */
static bool wait_end(vuf_proc *p, int ms)
{
    int64_t until = vuf_now_ms() + ms;
    for (;;) {
        siginfo_t si;
        memset(&si, 0, sizeof si);
        if (waitid(P_PID, (id_t)p->sup, &si, WEXITED | WNOHANG | WNOWAIT) < 0)
            return errno == ECHILD;
        if (si.si_pid == p->sup)
            return true;
        int64_t left = until - vuf_now_ms();
        if (left <= 0)
            return false;
        nap(p, left > 50 ? 50 : (int)left);
    }
}

/* A live (not zombie) process of the run's group, other than the
 * supervisor, for which match(pid, ctx) holds (NULL: any): its pid, or 0. */
static pid_t run_member(const vuf_proc *p, bool (*match)(const char *pid, void *ctx), void *ctx)
{
    DIR *d = opendir("/proc");
    if (!d)
        return 0;
    pid_t found = 0;
    for (struct dirent *e; !found && (e = readdir(d));) {
        if (e->d_name[0] < '1' || e->d_name[0] > '9')
            continue;
        char path[300], stat[512];
        snprintf(path, sizeof path, "/proc/%s/stat", e->d_name);
        int fd = open(path, O_RDONLY | O_CLOEXEC);
        if (fd < 0)
            continue;
        ssize_t n = read(fd, stat, sizeof stat - 1);
        close(fd);
        if (n <= 0)
            continue;
        stat[n] = 0;
        /* pid (comm) state ppid pgrp ...: comm may hold anything, ')' ends it */
        const char *rp = strrchr(stat, ')');
        char state = 0;
        long pgrp = 0;
        pid_t pid = (pid_t)strtol(e->d_name, NULL, 10);
        if (!rp || sscanf(rp + 1, " %c %*d %ld", &state, &pgrp) != 2 || pgrp != (long)p->sup ||
            pid == p->sup || state == 'Z' || state == 'X')
            continue;
        if (!match || match(e->d_name, ctx))
            found = pid;
    }
    closedir(d);
    return found;
}

/* Does process pid hold the socket of inode *(uint64_t *)ino? */
static bool holds_socket(const char *pid, void *ino)
{
    char dir[64], want[48];
    snprintf(dir, sizeof dir, "/proc/%s/fd", pid);
    snprintf(want, sizeof want, "socket:[%llu]", *(unsigned long long *)ino);
    DIR *d = opendir(dir);
    if (!d)
        return false;
    bool found = false;
    for (struct dirent *e; !found && (e = readdir(d));) {
        char path[320], link[64];
        snprintf(path, sizeof path, "%s/%s", dir, e->d_name);
        ssize_t n = readlink(path, link, sizeof link - 1);
        if (n > 0) {
            link[n] = 0;
            found = !strcmp(link, want);
        }
    }
    closedir(d);
    return found;
}

/* The supervisor ignores SIGTERM: the back-end gets it, and the
 * supervisor ends as the back-end does. */
static void signal_group(const vuf_proc *p, int sig)
{
    if (kill(-p->sup, sig) < 0 && errno == ESRCH)
        kill(p->sup, sig); /* not a group leader (yet): the process alone */
}

/* Reap a run that ended (its stragglers killed first, while the
 * unreaped supervisor keeps the group id reserved). true: it had ended. */
static bool reap(vuf_proc *p)
{
    siginfo_t si;
    memset(&si, 0, sizeof si);
    int r = waitid(P_PID, (id_t)p->sup, &si, WEXITED | WNOHANG | WNOWAIT);
    if (r < 0 && errno == ECHILD) {
        ended(p, 0); /* reaped by someone else (SIGCHLD ignored): status unknown */
        return true;
    }
    if (r < 0 || si.si_pid != p->sup)
        return false;
    signal_group(p, SIGKILL); /* what the back-end left running */
    /* gone once SIGKILL is through (an orphan may stay a zombie under an
     * init that does not reap: that is not running) */
    for (int64_t until = vuf_now_ms() + 2000; run_member(p, NULL, NULL) && vuf_now_ms() < until;) {
        struct timespec ts = {.tv_sec = 0, .tv_nsec = 2 * 1000000L};
        nanosleep(&ts, NULL);
    }
    int st = 0;
    while (waitpid(p->sup, &st, 0) < 0 && errno == EINTR) {
    }
    ended(p, st);
    return true;
}

vuf_proc_state vuf_proc_poll(vuf_proc *p)
{
    if (p->running)
        reap(p);
    return p->state;
}

void vuf_proc_stop(vuf_proc *p)
{
    if (!p || vuf_proc_poll(p) != VUF_PROC_RUNNING)
        return;
    p->by_us = true;
    signal_group(p, SIGTERM);
    if (!wait_end(p, p->stop_ms))
        signal_group(p, SIGKILL); /* SIGTERM was not enough */
    wait_end(p, 60000);
    reap(p);
}

static int fail(char *err, size_t errcap, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static int fail(char *err, size_t errcap, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err, errcap, fmt, ap);
    va_end(ap);
    return -1;
}

/* The process tree of a run:
 *
 *   vufuzz ── supervisor (a fork of vufuzz, leader of the run's process group)
 *               └── bash -c COMMAND (a simple command: bash execs it, it is the
 *                   back-end; else the back-end is among its children)
 *
 * The supervisor waits for the back-end and ends as it ended (the same exit
 * status, or killed by the same signal), so the status vufuzz reaps is the
 * back-end's. It ignores the SIGTERM that stops the group (the back-end gets
 * it), and when vufuzz dies, however it dies, the kernel tells it
 * (PR_SET_PDEATHSIG) and it kills the whole group: a back-end's own
 * children (a wrapper script's, a shim's) die too.
 *
 * Between fork and exec: async-signal-safe calls only. */
static void supervisor_on_parent_death(int sig)
{
    (void)sig;
    kill(0, SIGKILL); /* the group, this process included */
}

static void close_from_3(void)
{
    if (syscall(SYS_close_range, 3u, ~0u, 0u) < 0)
        for (int fd = 3; fd < 65536; fd++)
            close(fd);
}

static void default_signals(void)
{
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = SIG_DFL;
    for (int s = 1; s < NSIG; s++)
        sigaction(s, &sa, NULL); /* SIGPIPE ignored by vufuzz is not the back-end's */
    sigset_t none;
    sigemptyset(&none);
    sigprocmask(SIG_SETMASK, &none, NULL);
}

static void supervisor(const vuf_proc *p, pid_t parent, int devnull, int logfd, int report)
{
    setpgid(0, 0);
    prctl(PR_SET_DUMPABLE, 0); /* a signal it passes on leaves no core file */
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = supervisor_on_parent_death;
    sigaction(SIGUSR1, &sa, NULL);
    sa.sa_handler = SIG_IGN;
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGHUP, &sa, NULL);
    sa.sa_handler = SIG_DFL;
    sigaction(SIGCHLD, &sa, NULL);
    sigset_t mask;
    sigemptyset(&mask);
    sigprocmask(SIG_SETMASK, &mask, NULL);
    prctl(PR_SET_PDEATHSIG, SIGUSR1);
    if (getppid() != parent) /* vufuzz died before the line above */
        _exit(127);
    if (dup2(devnull, 0) < 0 || dup2(logfd, 1) < 0 || dup2(logfd, 2) < 0)
        _exit(127);
    pid_t be = fork();
    if (be == 0) {
        close_from_3();
        default_signals();
        execl(p->shell, p->shell, "-c", p->line, (char *)NULL);
        _exit(127);
    }
    if (write(report, &be, sizeof be) != (ssize_t)sizeof be || be < 0)
        _exit(127);
    close_from_3();
    int st = 0;
    while (waitpid(be, &st, 0) < 0)
        if (errno != EINTR)
            _exit(127);
    if (WIFSIGNALED(st)) {
        int sig = WTERMSIG(st);
        sa.sa_handler = SIG_DFL;
        sigaction(sig, &sa, NULL);
        kill(getpid(), sig);
    }
    _exit(WIFEXITED(st) ? WEXITSTATUS(st) : 127);
}

/* we_listen: drop the connections a previous run left unaccepted. */
static void drain_pending(vuf_proc *p)
{
    for (int fd; p->lfd >= 0 && (fd = accept4(p->lfd, NULL, NULL, SOCK_CLOEXEC)) >= 0;)
        close(fd);
}

static int run(vuf_proc *p, char *err, size_t errcap)
{
    if (p->lfd < 0)
        unlink(p->sock); /* a socket a previous run left behind */
    else
        drain_pending(p);
    for (size_t i = 0; i < p->ntokens; i++)
        unlink(p->token_path[i]);
    int logfd = open(p->log, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
    if (logfd < 0)
        return fail(err, errcap, "cannot open the back-end's log %s: %s", p->log, strerror(errno));
    char head[256];
    int hn = snprintf(head, sizeof head, "== vufuzz: start %u of the back-end\n", p->starts + 1);
    if (hn > 0 && write(logfd, head, (size_t)hn) < 0) {
        /* the log is for people: the run goes on without its header */
    }
    p->log_start = lseek(logfd, 0, SEEK_END);
    int devnull = open("/dev/null", O_RDONLY | O_CLOEXEC);
    if (devnull < 0) {
        close(logfd);
        return fail(err, errcap, "/dev/null: %s", strerror(errno));
    }
    int rep[2];
    if (pipe2(rep, O_CLOEXEC)) {
        close(devnull);
        close(logfd);
        return fail(err, errcap, "cannot start the back-end: pipe: %s", strerror(errno));
    }
    pid_t parent = getpid();
    fflush(NULL); /* nothing buffered is written twice */
    pid_t pid = fork();
    if (pid == 0)
        supervisor(p, parent, devnull, logfd, rep[1]);
    int e = errno;
    close(devnull);
    close(logfd);
    close(rep[1]);
    if (pid < 0) {
        close(rep[0]);
        return fail(err, errcap, "cannot start the back-end: fork: %s", strerror(e));
    }
    setpgid(pid, pid); /* both sides set it: no window where it is in ours */
    pid_t be = -1;
    ssize_t r;
    while ((r = read(rep[0], &be, sizeof be)) < 0 && errno == EINTR) {
    }
    close(rep[0]);
    p->sup = pid;
    p->pid = r == (ssize_t)sizeof be && be > 0 ? be : pid;
    p->pidfd = (int)syscall(SYS_pidfd_open, pid, 0);
    p->running = true;
    p->by_us = false;
    p->state = VUF_PROC_RUNNING;
    p->code = -1;
    p->starts++;
    return 0;
}

/* Until it listens on its socket, it ends, or the deadline. */
static int wait_listening(vuf_proc *p, char *err, size_t errcap)
{
    int64_t until = vuf_now_ms() + p->ready_ms;
    for (;;) {
        if (vuf_proc_poll(p) != VUF_PROC_RUNNING) {
            char st[64], tail[300];
            tail_line(p, tail, sizeof tail);
            return fail(err, errcap, "the back-end %s before it listened on %s%s%s",
                        vuf_proc_status_text(p, st, sizeof st), p->sock,
                        *tail ? "; its output ends with: " : " (it wrote nothing)", tail);
        }
        uint64_t ino = 0;
        int l = vuf_unix_listening_ino(p->sock, &ino);
        if (l < 0) {
            /* no /proc/net/unix: a probe connection (the back-end sees it) */
            int fd = vuf_unix_connect(p->sock, 0);
            if (fd >= 0) {
                close(fd);
                l = 1;
            }
        }
        if (l == 1) {
            /* the back-end is the process of the group that listens (bash
             * runs a simple command as itself; a wrapper's child, else) */
            unsigned long long i = ino;
            pid_t listener = ino ? run_member(p, holds_socket, &i) : 0;
            if (listener)
                p->pid = listener;
            return 0;
        }
        int64_t left = until - vuf_now_ms();
        if (left <= 0) {
            char tail[300];
            tail_line(p, tail, sizeof tail);
            vuf_proc_stop(p);
            return fail(err, errcap,
                        "the back-end did not listen on %s within %d ms (stopped)%s%s; does the "
                        "command put %s where the back-end's listening socket goes?",
                        p->sock, p->ready_ms, *tail ? "; its output ends with: " : "", tail,
                        SOCKET_TOKEN);
        }
        nap(p, left > 10 ? 10 : (int)left);
    }
}

static void remove_private(vuf_proc *p)
{
    if (p->lfd >= 0)
        close(p->lfd);
    p->lfd = -1;
    unlink(p->sock);
    for (size_t i = 0; i < p->ntokens; i++)
        unlink(p->token_path[i]);
    if (p->own_log)
        unlink(p->log);
    if (p->dir[0])
        rmdir(p->dir);
    p->dir[0] = 0;
}

void vuf_proc_free(vuf_proc *p)
{
    if (!p)
        return;
    if (p->lfd >= 0) {
        /* first: a program still waiting to be accepted sees its
         * connection reset and ends of its own accord */
        close(p->lfd);
        p->lfd = -1;
    }
    vuf_proc_stop(p);
    untrack(p);
    remove_private(p);
    free(p->command);
    free(p->line);
    free(p);
}

vuf_proc *vuf_proc_start(const vuf_proc_opts *o, char *err, size_t errcap)
{
    const char *why = vuf_proc_command_error(o->command);
    if (why) {
        fail(err, errcap, "the back-end command %s", why);
        return NULL;
    }
    vuf_proc *p = calloc(1, sizeof *p);
    if (!p) {
        fail(err, errcap, "out of memory");
        return NULL;
    }
    p->pidfd = -1;
    p->lfd = -1;
    p->code = -1;
    p->state = VUF_PROC_EXITED;
    p->ready_ms = o->ready_timeout_ms > 0 ? o->ready_timeout_ms : 10000;
    p->stop_ms = o->stop_timeout_ms > 0 ? o->stop_timeout_ms : 2000;
    const char *tmp = getenv("TMPDIR");
    if (!tmp || !*tmp || strlen(tmp) > 64)
        tmp = "/tmp";
    snprintf(p->dir, sizeof p->dir, "%s/vufuzz-XXXXXX", tmp);
    if (!mkdtemp(p->dir)) {
        fail(err, errcap, "cannot make a private directory in %s: %s", tmp, strerror(errno));
        p->dir[0] = 0;
        vuf_proc_free(p);
        return NULL;
    }
    snprintf(p->sock, sizeof p->sock, "%s/backend.sock", p->dir);
    if (o->log_path) {
        snprintf(p->log, sizeof p->log, "%s", o->log_path);
    } else {
        snprintf(p->log, sizeof p->log, "%s/backend.log", p->dir);
        p->own_log = true;
    }
    /* bash runs a simple command as itself (no shell process between):
     * its pid and exit status are the back-end's */
    p->shell = access("/bin/bash", X_OK) == 0 ? "/bin/bash" : "/bin/sh";
    p->command = strdup(o->command);
    p->line = substitute(o->command, SOCKET_TOKEN, p->sock);
    for (size_t i = 0; o->tokens && o->tokens[i] && p->line; i++) {
        if (i == MAX_TOKENS || strlen(o->tokens[i]) + 3 > sizeof p->token[0]) {
            fail(err, errcap, "too many or too long path tokens");
            vuf_proc_free(p);
            return NULL;
        }
        snprintf(p->token[i], sizeof p->token[i], "{%s}", o->tokens[i]);
        snprintf(p->token_path[i], sizeof p->token_path[i], "%s/%s.sock", p->dir, o->tokens[i]);
        p->ntokens = i + 1;
        char *l = substitute(p->line, p->token[i], p->token_path[i]);
        free(p->line);
        p->line = l;
    }
    if (!p->command || !p->line) {
        fail(err, errcap, "out of memory");
        vuf_proc_free(p);
        return NULL;
    }
    if (o->we_listen && (p->lfd = vuf_unix_listen(p->sock)) < 0) {
        fail(err, errcap, "cannot listen on %s: %s", p->sock, strerror(errno));
        vuf_proc_free(p);
        return NULL;
    }
    track(p);
    if (run(p, err, errcap) || (p->lfd < 0 && wait_listening(p, err, errcap))) {
        vuf_proc_free(p);
        return NULL;
    }
    return p;
}

int vuf_proc_restart(vuf_proc *p, char *err, size_t errcap)
{
    vuf_proc_stop(p);
    if (run(p, err, errcap))
        return -1;
    return p->lfd >= 0 ? 0 : wait_listening(p, err, errcap);
}

int vuf_proc_accept(vuf_proc *p, int timeout_ms, char *err, size_t errcap)
{
    if (p->lfd < 0)
        return fail(err, errcap, "vufuzz does not listen for this program");
    int64_t until = timeout_ms < 0 ? INT64_MAX : vuf_now_ms() + timeout_ms;
    for (;;) {
        int fd = accept4(p->lfd, NULL, NULL, SOCK_CLOEXEC);
        if (fd >= 0)
            return fd; /* blocking: the listening socket's flag is not inherited */
        if (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR && errno != ECONNABORTED)
            return fail(err, errcap, "accept on %s: %s", p->sock, strerror(errno));
        if (vuf_proc_poll(p) != VUF_PROC_RUNNING) {
            char st[64], tail[300];
            tail_line(p, tail, sizeof tail);
            return fail(err, errcap, "the program %s before it connected to %s%s%s",
                        vuf_proc_status_text(p, st, sizeof st), p->sock,
                        *tail ? "; its output ends with: " : " (it wrote nothing)", tail);
        }
        int64_t left = until - vuf_now_ms();
        if (left <= 0)
            return fail(err, errcap,
                        "the program did not connect to %s within %d ms; does the command put "
                        "%s where its client socket's path goes?",
                        p->sock, timeout_ms, SOCKET_TOKEN);
        struct pollfd pf[2] = {{.fd = p->lfd, .events = POLLIN},
                               {.fd = p->pidfd, .events = POLLIN}};
        poll(pf, p->pidfd >= 0 ? 2 : 1, left > 50 ? 50 : (int)left);
    }
}

int vuf_proc_listen_fd(const vuf_proc *p)
{
    return p->lfd;
}

const char *vuf_proc_token_path(const vuf_proc *p, const char *name)
{
    for (size_t i = 0; i < p->ntokens; i++)
        if (!strncmp(p->token[i] + 1, name, strlen(name)) && p->token[i][strlen(name) + 1] == '}')
            return p->token_path[i];
    return NULL;
}

static const struct {
    const char *mark;
    bool sanitizer;
} crash_marks[] = {
    {"ERROR: AddressSanitizer", true},
    {"ERROR: LeakSanitizer", true},
    {"SUMMARY: UndefinedBehaviorSanitizer", true},
    {"runtime error:", true},
    {"ERROR: MemorySanitizer", true},
    {"WARNING: ThreadSanitizer", true},
    {"Assertion `", false},                /* the C library's assert() */
    {"assertion failed", false},           /* glib's g_assert() */
    {"code should not be reached", false}, /* glib's g_assert_not_reached() */
    {"Bail out!", false},                  /* glib's fatal message prefix */
    {"qemu: hardware error", false},       /* QEMU's hw_error(), then abort() */
};

const char *vuf_proc_crash_line(const char *output, bool asserts, char *line, size_t cap,
                                bool *sanitizer)
{
    /* the earliest mark in the output: a report's first line ("runtime
     * error: ...", "ERROR: AddressSanitizer: ...") says more than its
     * SUMMARY */
    const char *best = NULL;
    size_t bi = 0;
    for (size_t i = 0; i < sizeof crash_marks / sizeof *crash_marks; i++) {
        if (!asserts && !crash_marks[i].sanitizer)
            continue;
        const char *p = strstr(output, crash_marks[i].mark);
        if (p && (!best || p < best)) {
            best = p;
            bi = i;
        }
    }
    if (!best)
        return NULL;
    const char *s = best;
    while (s > output && s[-1] != '\n')
        s--;
    size_t n = strcspn(s, "\n");
    if (cap)
        snprintf(line, cap, "%.*s", (int)(n < cap ? n : cap - 1), s);
    if (sanitizer)
        *sanitizer = crash_marks[bi].sanitizer;
    return crash_marks[bi].mark;
}

int vuf_proc_exit_code(const vuf_proc *p)
{
    return p->running ? -1 : p->code;
}

bool vuf_proc_stopped_by_us(const vuf_proc *p)
{
    return !p->running && p->by_us;
}

const char *vuf_proc_status_text(const vuf_proc *p, char *buf, size_t cap)
{
    if (p->running) {
        snprintf(buf, cap, "running");
    } else if (p->state == VUF_PROC_SIGNALED) {
        const char *abbrev = sigabbrev_np(p->code);
        snprintf(buf, cap, "was killed by signal %d (SIG%s)", p->code, abbrev ? abbrev : "?");
    } else if (p->code < 0) {
        snprintf(buf, cap, "ended (status unknown)");
    } else {
        snprintf(buf, cap, "exited with status %d", p->code);
    }
    return buf;
}

pid_t vuf_proc_pid(const vuf_proc *p)
{
    return p->pid;
}

int vuf_proc_wait_fd(const vuf_proc *p)
{
    return p->running ? p->pidfd : -1;
}

const char *vuf_proc_socket(const vuf_proc *p)
{
    return p->sock;
}

const char *vuf_proc_log_path(const vuf_proc *p)
{
    return p->log;
}

unsigned vuf_proc_starts(const vuf_proc *p)
{
    return p->starts;
}

size_t vuf_proc_log_tail(const vuf_proc *p, char *buf, size_t cap)
{
    if (!cap)
        return 0;
    buf[0] = 0;
    int fd = open(p->log, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return 0;
    struct stat st;
    size_t n = 0;
    if (fstat(fd, &st) == 0 && st.st_size > p->log_start) {
        off_t from = st.st_size - (off_t)(cap - 1);
        if (from < p->log_start)
            from = p->log_start;
        ssize_t r = pread(fd, buf, (size_t)(st.st_size - from), from);
        n = r > 0 ? (size_t)r : 0;
        buf[n] = 0;
        if (from > p->log_start) {
            /* start at a line when one starts in reach */
            char *nl = memchr(buf, '\n', n);
            if (nl && nl + 1 < buf + n) {
                size_t skip = (size_t)(nl + 1 - buf);
                memmove(buf, nl + 1, n - skip + 1);
                n -= skip;
            }
        }
    }
    close(fd);
    return n;
}
