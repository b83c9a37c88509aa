/* SPDX-License-Identifier: Apache-2.0 */
/* vuf_proc: a back-end process started with {socket}, watched, stopped on
 * every path, with nothing left running (its whole process group, even
 * when vufuzz itself is killed). The back-end here is a small python3
 * listener. */
#include "vuf_proc.h"
#include "vuf_test.h"
#include "vuf_transport.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define LISTENER                                                                                   \
    "python3 -c 'import socket,sys,time; s=socket.socket(socket.AF_UNIX); s.bind(sys.argv[1]); "   \
    "s.listen(); print(\"listening\", flush=True); time.sleep(300)' {socket}"

/* A process that exists and is not a zombie. */
static bool alive(pid_t pid)
{
    char path[64], buf[256];
    snprintf(path, sizeof path, "/proc/%d/stat", (int)pid);
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return false;
    ssize_t n = read(fd, buf, sizeof buf - 1);
    close(fd);
    if (n <= 0)
        return false;
    buf[n] = 0;
    const char *rp = strrchr(buf, ')');
    return rp && rp[1] == ' ' && rp[2] != 'Z' && rp[2] != 'X';
}

/* Wait up to ms for pid to be gone. */
static bool gone_within(pid_t pid, int ms)
{
    for (int i = 0; i < ms / 10; i++) {
        if (!alive(pid))
            return true;
        usleep(10000);
    }
    return !alive(pid);
}

static pid_t read_pid_file(const char *path)
{
    for (int i = 0; i < 200; i++) {
        FILE *f = fopen(path, "re");
        long v = 0;
        if (f) {
            int ok = fscanf(f, "%ld", &v);
            fclose(f);
            if (ok == 1 && v > 0)
                return (pid_t)v;
        }
        usleep(10000);
    }
    return 0;
}

static bool tail_has(const vuf_proc *p, const char *needle)
{
    char t[4096];
    for (int i = 0; i < 200; i++) {
        vuf_proc_log_tail(p, t, sizeof t);
        if (strstr(t, needle))
            return true;
        usleep(10000);
    }
    return false;
}

/* The listener, started after a child of its own in the background (the
 * child's pid in *kid): a back-end with a child. "exec" makes the listener
 * the process vuf_proc_pid names. */
static vuf_proc *start_with_child(bool exec, pid_t *kid, char *err, size_t errcap)
{
    char pidfile[] = "/tmp/vuf-proc-test-XXXXXX";
    int fd = mkstemp(pidfile);
    if (fd >= 0)
        close(fd);
    char cmd[1024];
    snprintf(cmd, sizeof cmd, "sleep 300 & echo $! > %s; %s%s", pidfile, exec ? "exec " : "",
             LISTENER);
    vuf_proc_opts o = {.command = cmd};
    vuf_proc *p = vuf_proc_start(&o, err, errcap);
    *kid = read_pid_file(pidfile);
    unlink(pidfile);
    CHECK(*kid > 0 && alive(*kid), "the background child runs (%d)", (int)*kid);
    return p;
}

/* Does pid hold the socket that listens on path? */
static bool holds_listener(pid_t pid, const char *path)
{
    uint64_t ino = 0;
    if (vuf_unix_listening_ino(path, &ino) != 1)
        return false;
    char dir[64], want[48];
    snprintf(dir, sizeof dir, "/proc/%d/fd", (int)pid);
    snprintf(want, sizeof want, "socket:[%llu]", (unsigned long long)ino);
    DIR *d = opendir(dir);
    bool found = false;
    for (struct dirent *e; d && !found && (e = readdir(d));) {
        char path2[320], link[64];
        snprintf(path2, sizeof path2, "%s/%s", dir, e->d_name);
        ssize_t n = readlink(path2, link, sizeof link - 1);
        if (n > 0) {
            link[n] = 0;
            found = !strcmp(link, want);
        }
    }
    if (d)
        closedir(d);
    return found;
}

static vuf_proc *listener(void)
{
    char err[512] = "";
    vuf_proc_opts o = {.command = LISTENER};
    vuf_proc *p = vuf_proc_start(&o, err, sizeof err);
    CHECK(p != NULL, "start: %s", err);
    return p;
}

VUF_TEST(start_listens_and_free_ends_it)
{
    vuf_proc *p = listener();
    if (!p)
        return;
    pid_t pid = vuf_proc_pid(p);
    char sock[128], dir[128], st[64];
    snprintf(sock, sizeof sock, "%s", vuf_proc_socket(p));
    snprintf(dir, sizeof dir, "%s", sock);
    *strrchr(dir, '/') = 0;
    CHECK(pid > 0 && alive(pid), "pid %d runs", (int)pid);
    CHECK_EQ(vuf_unix_listening(sock), 1, "it listens on %s", sock);
    CHECK(holds_listener(pid, sock), "the pid is the listener's");
    CHECK_EQ(vuf_proc_poll(p), VUF_PROC_RUNNING, "running");
    CHECK_STREQ(vuf_proc_status_text(p, st, sizeof st), "running", "status text");
    CHECK(vuf_proc_wait_fd(p) >= 0, "a pidfd to poll");
    CHECK(tail_has(p, "listening"), "its output is in the log");
    CHECK_EQ(vuf_proc_starts(p), 1, "started once");
    vuf_proc_free(p);
    CHECK(!alive(pid), "gone after free");
    struct stat sb;
    CHECK(stat(sock, &sb) < 0 && stat(dir, &sb) < 0, "socket and private directory removed");
}

VUF_TEST(stop_reports_how_it_ended)
{
    char st[64];
    vuf_proc *p = listener();
    if (!p)
        return;
    vuf_proc_stop(p);
    CHECK_EQ(vuf_proc_poll(p), VUF_PROC_SIGNALED, "ended by a signal");
    CHECK_EQ(vuf_proc_exit_code(p), SIGTERM, "SIGTERM");
    CHECK(vuf_proc_stopped_by_us(p), "by us");
    CHECK_STREQ(vuf_proc_status_text(p, st, sizeof st), "was killed by signal 15 (SIGTERM)",
                "status text");
    CHECK_EQ(vuf_proc_wait_fd(p), -1, "no pidfd once ended");
    vuf_proc_stop(p); /* twice is fine */
    vuf_proc_free(p);
}

VUF_TEST(the_whole_group_is_stopped)
{
    char err[512] = "";
    pid_t kid;
    vuf_proc *p = start_with_child(false, &kid, err, sizeof err);
    CHECK(p != NULL, "start: %s", err);
    vuf_proc_free(p);
    CHECK(kid > 0 && gone_within(kid, 2000), "the background child is gone too");
}

VUF_TEST(a_dead_back_end_takes_its_children_along)
{
    char err[512] = "";
    pid_t kid;
    vuf_proc *p = start_with_child(true, &kid, err, sizeof err);
    CHECK(p != NULL, "start: %s", err);
    if (p)
        kill(vuf_proc_pid(p), SIGKILL);
    for (int i = 0; p && i < 500 && vuf_proc_poll(p) == VUF_PROC_RUNNING; i++)
        usleep(10000);
    CHECK(p && vuf_proc_poll(p) == VUF_PROC_SIGNALED, "seen dead");
    CHECK(kid > 0 && gone_within(kid, 2000), "its child is gone too");
    vuf_proc_free(p);
}

VUF_TEST(the_pid_is_the_listener_behind_a_wrapper)
{
    char err[512] = "";
    /* a compound command: the shell stays, the listener is its child */
    vuf_proc_opts o = {.command = "echo wrapping; " LISTENER "; echo done"};
    vuf_proc *p = vuf_proc_start(&o, err, sizeof err);
    CHECK(p != NULL, "start: %s", err);
    if (!p)
        return;
    CHECK(holds_listener(vuf_proc_pid(p), vuf_proc_socket(p)), "pid %d is the listener",
          (int)vuf_proc_pid(p));
    pid_t pid = vuf_proc_pid(p);
    vuf_proc_free(p);
    CHECK(!alive(pid), "gone");
}

VUF_TEST(ending_before_listening_is_an_error_with_its_output)
{
    char err[512] = "";
    vuf_proc_opts o = {.command = "echo boom-on-stderr >&2; exit 3 # {socket}"};
    vuf_proc *p = vuf_proc_start(&o, err, sizeof err);
    CHECK(p == NULL, "no proc");
    CHECK(strstr(err, "exited with status 3") != NULL, "status in: %s", err);
    CHECK(strstr(err, "boom-on-stderr") != NULL, "its output in: %s", err);
    CHECK(strstr(err, "before it listened") != NULL, "says when: %s", err);
    vuf_proc_free(p);
}

VUF_TEST(not_listening_in_time_is_an_error_and_it_is_stopped)
{
    char pidfile[] = "/tmp/vuf-proc-test-XXXXXX";
    int fd = mkstemp(pidfile);
    close(fd);
    char cmd[512], err[512] = "";
    snprintf(cmd, sizeof cmd, "echo $$ > %s; exec sleep 30 # {socket}", pidfile);
    vuf_proc_opts o = {.command = cmd, .ready_timeout_ms = 300};
    vuf_proc *p = vuf_proc_start(&o, err, sizeof err);
    CHECK(p == NULL, "no proc");
    CHECK(strstr(err, "did not listen") && strstr(err, "within 300 ms"), "reason: %s", err);
    pid_t pid = read_pid_file(pidfile);
    CHECK(pid > 0 && !alive(pid), "the process (%d) was stopped", (int)pid);
    unlink(pidfile);
}

VUF_TEST(a_command_needs_the_socket)
{
    CHECK(vuf_proc_command_error("qemu-storage-daemon --export x") != NULL, "no {socket}");
    CHECK(vuf_proc_command_error("") != NULL, "empty");
    CHECK(vuf_proc_command_error("serve --socket {socket}") == NULL, "fine");
    char err[256] = "";
    vuf_proc_opts o = {.command = "true"};
    CHECK(vuf_proc_start(&o, err, sizeof err) == NULL && strstr(err, "{socket}"), "err: %s", err);
}

VUF_TEST(a_death_is_seen_and_restart_serves_again)
{
    char err[512] = "", st[64];
    vuf_proc *p = listener();
    if (!p)
        return;
    pid_t first = vuf_proc_pid(p);
    CHECK(tail_has(p, "listening"), "first run wrote");
    kill(first, SIGKILL);
    struct pollfd pf = {.fd = vuf_proc_wait_fd(p), .events = POLLIN};
    CHECK(poll(&pf, 1, 5000) == 1, "the pidfd tells");
    CHECK_EQ(vuf_proc_poll(p), VUF_PROC_SIGNALED, "signaled");
    CHECK(!vuf_proc_stopped_by_us(p), "not by us");
    CHECK(strstr(vuf_proc_status_text(p, st, sizeof st), "SIGKILL") != NULL, "text: %s", st);
    CHECK_EQ(vuf_proc_restart(p, err, sizeof err), 0, "restart: %s", err);
    CHECK(vuf_proc_pid(p) != first && alive(vuf_proc_pid(p)), "a new process");
    CHECK_EQ(vuf_unix_listening(vuf_proc_socket(p)), 1, "listening again");
    CHECK_EQ(vuf_proc_starts(p), 2, "started twice");
    CHECK(tail_has(p, "listening"), "the second run's output");
    char t[4096];
    vuf_proc_log_tail(p, t, sizeof t);
    CHECK(strstr(t, "start 1") == NULL && strstr(t, "start 2") == NULL,
          "the tail is the current run's only: %s", t);
    vuf_proc_free(p);
}

VUF_TEST(given_log_stays)
{
    char log[] = "/tmp/vuf-proc-log-XXXXXX";
    int fd = mkstemp(log);
    close(fd);
    char err[512] = "";
    vuf_proc_opts o = {.command = LISTENER, .log_path = log};
    vuf_proc *p = vuf_proc_start(&o, err, sizeof err);
    CHECK(p != NULL, "start: %s", err);
    CHECK(p && tail_has(p, "listening"), "written");
    CHECK_STREQ(p ? vuf_proc_log_path(p) : "", log, "its path");
    vuf_proc_free(p);
    char buf[512] = "";
    FILE *f = fopen(log, "re");
    size_t n = f ? fread(buf, 1, sizeof buf - 1, f) : 0;
    buf[n] = 0;
    if (f)
        fclose(f);
    CHECK(strstr(buf, "== vufuzz: start 1") && strstr(buf, "listening"), "kept: %s", buf);
    unlink(log);
}

VUF_TEST(no_fd_and_no_ignored_signal_is_inherited)
{
    int leak = dup(1); /* not close-on-exec: still not the back-end's */
    void (*old)(int) = signal(SIGPIPE, SIG_IGN);
    char err[1024] = "";
    vuf_proc_opts o = {.command = "grep SigIgn /proc/self/status; ls /proc/self/fd; exit 1 "
                                  "# {socket}"};
    vuf_proc *p = vuf_proc_start(&o, err, sizeof err);
    signal(SIGPIPE, old);
    close(leak);
    CHECK(p == NULL, "it exits");
    CHECK(strstr(err, "SigIgn: 0000000000000000") != NULL, "no signal ignored: %s", err);
    CHECK(strstr(err, "0 | 1 | 2 | 3") != NULL && !strstr(err, "| 4"),
          "fds 0-2 (and ls's own 3) only: %s", err);
}

VUF_TEST(vufuzz_killed_takes_the_back_end_along)
{
    int pp[2];
    CHECK(pipe2(pp, O_CLOEXEC) == 0, "pipe");
    fflush(stdout); /* the child's copy of the buffer is not printed twice */
    pid_t kid = fork();
    if (kid == 0) {
        /* stands for vufuzz: starts a back-end, then is killed */
        char err[256];
        struct {
            pid_t pid, kid;
            char sock[108];
        } r = {0};
        vuf_proc *p = start_with_child(true, &r.kid, err, sizeof err);
        r.pid = p ? vuf_proc_pid(p) : 0;
        snprintf(r.sock, sizeof r.sock, "%s", p ? vuf_proc_socket(p) : "");
        if (write(pp[1], &r, sizeof r) < 0)
            _exit(1);
        for (;;)
            pause();
    }
    close(pp[1]);
    struct {
        pid_t pid, kid;
        char sock[108];
    } r = {0};
    CHECK(read(pp[0], &r, sizeof r) == (ssize_t)sizeof r && r.pid > 0, "a back-end started");
    close(pp[0]);
    kill(kid, SIGKILL);
    waitpid(kid, NULL, 0);
    pid_t be = r.pid, kid2 = r.kid;
    CHECK(be > 0 && gone_within(be, 3000), "the back-end %d died with it", (int)be);
    CHECK(kid2 > 0 && gone_within(kid2, 3000), "and its own child %d", (int)kid2);
    if (be > 0 && alive(be))
        kill(be, SIGKILL);
    if (kid2 > 0 && alive(kid2))
        kill(kid2, SIGKILL);
    /* what the killed process could not clean up */
    if (r.sock[0]) {
        unlink(r.sock);
        *strrchr(r.sock, '/') = 0;
        char log[160];
        snprintf(log, sizeof log, "%s/backend.log", r.sock);
        unlink(log);
        CHECK(rmdir(r.sock) == 0, "its private directory removed");
    }
}

VUF_TEST_MAIN()
