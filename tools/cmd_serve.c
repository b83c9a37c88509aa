/* SPDX-License-Identifier: Apache-2.0 */
/* vufuzz serve: run the reference vhost-user-blk device on a Unix socket.
 *
 * One event loop (vuf_pollset): the listening socket or the reconnect timer,
 * the connection's fds (vuf_ref_conn_poll_add), stdin commands, and the
 * signals (a self-pipe), so a stop or a command is acted on at once. */
#include "cli.h"
#include "vuf_endpoint.h"
#include "vuf_ref.h"
#include "vuf_ref_conn.h"
#include "vuf_trace.h"
#include "vuf_transport.h"
#include "vuf_util.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

static const char usage_line[] =
    "usage: vufuzz serve --socket PATH [--connect] [--disk FILE | --size BYTES]\n"
    "                    [--queues N] [--read-only] [--trace FILE] [--once]\n"
    "                    [--backend-timeout MS] [--commands] [--spec FILE]";

static void usage(FILE *f)
{
    fprintf(f,
            "%s\n\n"
            "Serve the reference vhost-user-blk back-end (reference/) on a Unix socket.\n"
            "Every message is validated from the spec table; refused messages get the\n"
            "reaction of docs/reaction-policy.md.\n\n"
            "  --socket PATH         the vhost-user socket\n"
            "  --connect             connect to PATH (retrying every second, and again\n"
            "                        after each connection ends) instead of listening\n"
            "  --disk FILE           serve this disk image (mapped; FLUSH syncs it)\n"
            "  --size BYTES          a RAM disk of this size (default 1M; K, M, G suffixes)\n"
            "  --queues N            virtqueues, 1..64 (default 1)\n"
            "  --read-only           offer VIRTIO_BLK_F_RO and refuse writes\n"
            "  --trace FILE          log every conversation in the trace format\n"
            "                        (docs/trace-format.md; '-' for stdout), with the\n"
            "                        device's refusals, given-up waits and late replies as\n"
            "                        notes; an existing FILE is appended to, each run\n"
            "                        starting with a comment line\n"
            "  --once                exit after the first connection ends\n"
            "  --backend-timeout MS  give up waiting for a back-end channel reply after\n"
            "                        MS milliseconds (default 1000)\n"
            "  --commands            read commands on stdin: 'resize BYTES', 'stats', 'quit'\n"
            "  --spec FILE           use this table instead of the built-in one\n\n"
            "SIGINT and SIGTERM stop the server at once, cleanly. SIGUSR1 re-reads the\n"
            "size of --disk FILE (resize the file first) and tells the front-end\n"
            "(CONFIG_CHANGE); a RAM disk (--size) changes size only with 'resize BYTES'.\n"
            "Exit status: 0 clean stop, 2 usage or setup error.\n",
            usage_line);
}

typedef struct {
    int disk_fd; /* -1: RAM disk */
    uint8_t *disk;
    uint64_t size;
    bool read_only;
    FILE *trace;
    const vuf_spec *spec;
    unsigned long conns, events;
    vuf_ref *dev;
    vuf_ref_conn *conn;
} server;

static void on_event(void *ctx, const vuf_event *ev)
{
    server *sv = ctx;
    sv->events++;
    if (!sv->trace)
        return;
    char line[32768];
    int n = vuf_trace_format_event(sv->spec, ev, line, sizeof line);
    if (n >= 0 && (size_t)n < sizeof line) {
        fputs(line, sv->trace);
        fputc('\n', sv->trace);
    } else {
        fprintf(sv->trace, "# event too long to print\n");
    }
    fflush(sv->trace);
}

static void on_flush(void *ctx)
{
    server *sv = ctx;
    if (sv->disk_fd >= 0 && sv->disk && sv->size)
        msync(sv->disk, sv->size, MS_SYNC);
}

static void *map_disk(int fd, uint64_t size, bool ro)
{
    if (size == 0)
        return NULL;
    void *p = fd >= 0
                  ? mmap(NULL, size, PROT_READ | (ro ? 0 : PROT_WRITE), MAP_SHARED, fd, 0)
                  : mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    return p == MAP_FAILED ? NULL : p;
}

/* A new disk of `size` bytes (the old contents kept as far as they go). */
static int resize_disk(server *sv, uint64_t size)
{
    if (sv->disk_fd >= 0) {
        if (sv->read_only && size != sv->size)
            return -1;
        if (!sv->read_only && ftruncate(sv->disk_fd, (off_t)size))
            return -1;
    }
    uint8_t *nd = map_disk(sv->disk_fd, size, sv->read_only);
    if (size && !nd)
        return -1;
    if (sv->disk_fd < 0 && nd && sv->disk)
        memcpy(nd, sv->disk, size < sv->size ? size : sv->size);
    uint8_t *old = sv->disk;
    uint64_t old_size = sv->size;
    sv->disk = nd;
    sv->size = size;
    if (sv->conn) {
        vuf_ref_conn_set_disk(sv->conn, nd, size);
    } else {
        vuf_ref_out out;
        vuf_ref_out_init(&out);
        vuf_ref_set_disk(sv->dev, nd, size, &out);
        vuf_ref_out_clear(&out);
    }
    if (old)
        munmap(old, old_size);
    fprintf(stderr, "vufuzz serve: disk resized to %llu bytes\n", (unsigned long long)size);
    return 0;
}

/* One command line from stdin. false: quit. */
static bool command(server *sv, const char *line)
{
    char word[32];
    char arg[64] = "";
    if (sscanf(line, "%31s %63s", word, arg) < 1)
        return true;
    uint64_t size;
    if (!strcmp(word, "quit"))
        return false;
    if (!strcmp(word, "stats")) {
        fprintf(stderr, "vufuzz serve: %lu connection%s, %lu events, %llu requests completed\n",
                sv->conns, sv->conns == 1 ? "" : "s", sv->events,
                (unsigned long long)vuf_ref_chains_completed(sv->dev));
    } else if (!strcmp(word, "resize") && vuf_parse_size(arg, &size)) {
        if (resize_disk(sv, size))
            fprintf(stderr, "vufuzz serve: resize to %s failed: %s\n", arg, strerror(errno));
    } else {
        fprintf(stderr, "vufuzz serve: unknown command '%s' (resize BYTES, stats, quit)\n", word);
    }
    return true;
}

/* Read and run the stdin commands that are there. false: quit. */
static bool read_commands(server *sv, bool *on)
{
    char line[256];
    ssize_t n = read(0, line, sizeof line - 1);
    if (n <= 0) {
        *on = false; /* end of input: no more commands */
        return true;
    }
    line[n] = 0;
    for (char *save = NULL, *l = strtok_r(line, "\n", &save); l; l = strtok_r(NULL, "\n", &save))
        if (!command(sv, l))
            return false;
    return true;
}

static void resize_from_file(server *sv)
{
    struct stat st;
    if (sv->disk_fd < 0 || fstat(sv->disk_fd, &st)) {
        fprintf(stderr, "vufuzz serve: SIGUSR1 resizes --disk FILE only (a RAM disk: the "
                        "'resize BYTES' command)\n");
        return;
    }
    if ((uint64_t)st.st_size != sv->size && resize_disk(sv, (uint64_t)st.st_size))
        fprintf(stderr, "vufuzz serve: resize failed: %s\n", strerror(errno));
}

static void connection_ended(server *sv)
{
    const char *why = vuf_ref_last_reason(sv->dev);
    fprintf(stderr, "vufuzz serve: connection %lu closed%s%s%s (%llu requests completed)\n",
            sv->conns, why ? " (last refusal: " : "", why ? why : "", why ? ")" : "",
            (unsigned long long)vuf_ref_chains_completed(sv->dev));
    vuf_ref_conn_free(sv->conn);
    sv->conn = NULL;
}

enum {
    O_SOCKET,
    O_CONNECT,
    O_DISK,
    O_SIZE,
    O_QUEUES,
    O_READ_ONLY,
    O_TRACE,
    O_ONCE,
    O_BE_TIMEOUT,
    O_COMMANDS,
    O_SPEC
};

int vuf_cmd_serve(int argc, char **argv)
{
    static const vuf_cli_opt opts[] = {[O_SOCKET] = {"--socket", "PATH"},
                                       [O_CONNECT] = {"--connect", NULL},
                                       [O_DISK] = {"--disk", "FILE"},
                                       [O_SIZE] = {"--size", "BYTES"},
                                       [O_QUEUES] = {"--queues", "N"},
                                       [O_READ_ONLY] = {"--read-only", NULL},
                                       [O_TRACE] = {"--trace", "FILE"},
                                       [O_ONCE] = {"--once", NULL},
                                       [O_BE_TIMEOUT] = {"--backend-timeout", "MS"},
                                       [O_COMMANDS] = {"--commands", NULL},
                                       [O_SPEC] = {"--spec", "FILE"},
                                       {NULL, NULL}};
    const char *sock = NULL, *disk_path = NULL, *trace_path = NULL, *spec_path = NULL, *val;
    bool connect_mode = false, once = false, ro = false, cmds = false;
    uint64_t size = 1 << 20, queues = 1, be_timeout = 1000;
    vuf_cli_parser p;
    vuf_cli_init(&p, "serve", usage_line, opts, argc, argv);
    for (int k; (k = vuf_cli_next(&p, &val)) != VUF_CLI_END;) {
        switch (k) {
        case VUF_CLI_HELP:
            usage(stdout);
            return 0;
        case VUF_CLI_ERROR:
            return 2;
        case VUF_CLI_POS:
            return vuf_cli_usage_error("serve", usage_line, "unexpected '%s'", val);
        case O_SOCKET:
            sock = val;
            break;
        case O_DISK:
            disk_path = val;
            break;
        case O_SIZE:
            if (!vuf_parse_size(val, &size))
                return vuf_cli_usage_error("serve", usage_line,
                                           "bad size '%s' (BYTES, with K, M or G)", val);
            break;
        case O_QUEUES:
            if (!vuf_parse_u64(val, &queues) || queues < 1 || queues > VUF_REF_MAX_QUEUES)
                return vuf_cli_usage_error("serve", usage_line, "bad queue count '%s' (1..%d)", val,
                                           VUF_REF_MAX_QUEUES);
            break;
        case O_BE_TIMEOUT:
            if (!vuf_parse_u64(val, &be_timeout) || be_timeout > 3600000)
                return vuf_cli_usage_error("serve", usage_line, "bad timeout '%s' (ms)", val);
            break;
        case O_TRACE:
            trace_path = val;
            break;
        case O_SPEC:
            spec_path = val;
            break;
        case O_CONNECT:
            connect_mode = true;
            break;
        case O_ONCE:
            once = true;
            break;
        case O_READ_ONLY:
            ro = true;
            break;
        case O_COMMANDS:
            cmds = true;
            break;
        }
    }
    if (!sock)
        return vuf_cli_usage_error("serve", usage_line, "--socket PATH is required");
    const vuf_spec *spec = vuf_cli_open_spec(spec_path);
    if (!spec)
        return 2;
    server sv = {.disk_fd = -1, .read_only = ro, .spec = spec};
    int rc = 2, lfd = -1;
    if (disk_path) {
        sv.disk_fd = open(disk_path, (ro ? O_RDONLY : O_RDWR) | O_CLOEXEC);
        struct stat st;
        if (sv.disk_fd < 0 || fstat(sv.disk_fd, &st) || !S_ISREG(st.st_mode)) {
            fprintf(stderr, "vufuzz serve: %s: %s\n", disk_path,
                    sv.disk_fd < 0 ? strerror(errno) : "not a regular file");
            goto out;
        }
        size = (uint64_t)st.st_size;
    }
    sv.size = size;
    sv.disk = map_disk(sv.disk_fd, size, ro);
    if (size && !sv.disk) {
        fprintf(stderr, "vufuzz serve: cannot map a %llu-byte disk: %s\n", (unsigned long long)size,
                strerror(errno));
        goto out;
    }
    vuf_ref_config cfg;
    vuf_ref_config_default(&cfg);
    cfg.disk = sv.disk;
    cfg.disk_size = size;
    cfg.read_only = ro;
    cfg.queues = (uint32_t)queues;
    char err[200];
    sv.dev = vuf_ref_new(spec, &cfg, err, sizeof err);
    if (!sv.dev) {
        fprintf(stderr, "vufuzz serve: %s\n", err);
        goto out;
    }
    static const int sigs[] = {SIGINT, SIGTERM, SIGUSR1};
    int sigfd = vuf_cli_signal_fd(sigs, 3);
    if (sigfd < 0) {
        fprintf(stderr, "vufuzz serve: cannot watch signals: %s\n", strerror(errno));
        goto out;
    }
    if (!connect_mode) {
        lfd = vuf_unix_listen(sock);
        if (lfd < 0) {
            fprintf(stderr, "vufuzz serve: cannot listen on %s: %s\n", sock, strerror(errno));
            goto out;
        }
        fprintf(stderr, "vufuzz serve: listening on %s (%llu-byte disk, %llu queue%s)\n", sock,
                (unsigned long long)size, (unsigned long long)queues, queues > 1 ? "s" : "");
    } else {
        fprintf(stderr,
                "vufuzz serve: connecting to %s (waiting until it listens; retrying every "
                "second)\n",
                sock);
    }
    /* the trace is opened once the socket is ours: a second serve on a live
     * socket leaves the first one's trace alone */
    if (trace_path) {
        sv.trace = strcmp(trace_path, "-") ? fopen(trace_path, "a") : stdout;
        if (!sv.trace) {
            fprintf(stderr, "vufuzz serve: %s: %s\n", trace_path, strerror(errno));
            goto out;
        }
        time_t t = time(NULL);
        char when[64];
        strftime(when, sizeof when, "%Y-%m-%dT%H:%M:%SZ", gmtime(&t));
        fprintf(sv.trace, "# vufuzz serve --socket %s, started %s (appended)\n", sock, when);
        fflush(sv.trace);
    }
    vuf_ref_conn_opts o = {.io_timeout_ms = 1000,
                           .backend_timeout_ms = (int)be_timeout,
                           .poll_queues = true,
                           .on_event = on_event,
                           .on_flush = on_flush,
                           .ctx = &sv};
    rc = 0;
    bool quit = false;
    int64_t next_try = 0;
    uint64_t done = 0;
    while (!quit) {
        vuf_pollset ps;
        vuf_pollset_init(&ps, -1);
        int i_sig = vuf_pollset_add(&ps, sigfd, POLLIN);
        int i_cmd = cmds ? vuf_pollset_add(&ps, 0, POLLIN) : -1;
        int i_lfd = !sv.conn ? vuf_pollset_add(&ps, lfd, POLLIN) : -1;
        if (sv.conn)
            vuf_ref_conn_poll_add(sv.conn, &ps);
        else if (connect_mode)
            vuf_pollset_deadline(&ps, (int)(next_try - vuf_now_ms()));
        if (vuf_pollset_wait(&ps) < 0) {
            fprintf(stderr, "vufuzz serve: poll: %s\n", strerror(errno));
            rc = 2;
            break;
        }
        if (vuf_pollset_revents(&ps, i_sig) & POLLIN) {
            for (int s; (s = vuf_cli_signal_next(sigfd));) {
                if (s == SIGUSR1) {
                    resize_from_file(&sv);
                    continue;
                }
                fprintf(stderr, "vufuzz serve: stopping on signal %d\n", s);
                quit = true;
            }
            if (quit)
                break;
        }
        if ((vuf_pollset_revents(&ps, i_cmd) & (POLLIN | POLLHUP)) && !read_commands(&sv, &cmds))
            break;
        if (sv.conn) {
            if (!vuf_ref_conn_dispatch(sv.conn, &ps)) {
                connection_ended(&sv);
                if (once)
                    break;
                next_try = vuf_now_ms() + 1000; /* --connect: a pause before reconnecting */
            } else if (sv.trace && vuf_ref_chains_completed(sv.dev) != done) {
                /* data-plane progress, as a comment line of the trace */
                done = vuf_ref_chains_completed(sv.dev);
                fprintf(sv.trace, "# data plane: %llu requests completed\n",
                        (unsigned long long)done);
                fflush(sv.trace);
            }
            continue;
        }
        int fd = -1;
        if (!connect_mode && (vuf_pollset_revents(&ps, i_lfd) & POLLIN)) {
            fd = vuf_unix_accept(lfd, 100);
            if (fd < 0 && errno != ETIMEDOUT && errno != EINTR) {
                fprintf(stderr, "vufuzz serve: accept: %s\n", strerror(errno));
                rc = 2;
                break;
            }
        } else if (connect_mode && vuf_now_ms() >= next_try) {
            fd = vuf_unix_connect(sock, 0);
            if (fd < 0 && errno != ENOENT && errno != ECONNREFUSED && errno != ETIMEDOUT &&
                errno != EAGAIN) {
                fprintf(stderr, "vufuzz serve: connect to %s: %s\n", sock, strerror(errno));
                rc = 2;
                break;
            }
            next_try = vuf_now_ms() + 1000;
        }
        if (fd < 0)
            continue;
        sv.conns++;
        fprintf(stderr, "vufuzz serve: connection %lu opened\n", sv.conns);
        done = vuf_ref_chains_completed(sv.dev);
        sv.conn = vuf_ref_conn_new(sv.dev, fd, &o);
        if (!sv.conn) {
            rc = 2;
            break;
        }
    }
out:
    if (sv.conn)
        connection_ended(&sv);
    vuf_ref_free(sv.dev);
    if (lfd >= 0) {
        close(lfd);
        unlink(sock);
    }
    if (sv.trace && sv.trace != stdout)
        fclose(sv.trace);
    if (sv.disk)
        munmap(sv.disk, sv.size);
    if (sv.disk_fd >= 0)
        close(sv.disk_fd);
    vuf_spec_release(spec);
    return rc;
}
