/* SPDX-License-Identifier: Apache-2.0 */
/* vufuzz serve: run the reference vhost-user-blk device on a Unix socket. */
#include "cli.h"
#include "vuf_ref.h"
#include "vuf_ref_conn.h"
#include "vuf_trace.h"
#include "vuf_transport.h"
#include "vuf_util.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

static void usage(FILE *f)
{
    fprintf(f, "usage: vufuzz serve --socket PATH [--connect] [--disk FILE | --size BYTES]\n"
               "                    [--queues N] [--read-only] [--trace FILE] [--once]\n"
               "                    [--backend-timeout MS] [--commands] [--spec FILE]\n\n"
               "Serve the reference vhost-user-blk back-end (reference/) on a Unix socket.\n"
               "Every message is validated from the spec table; refused messages get the\n"
               "reaction of docs/reaction-policy.md.\n\n"
               "  --socket PATH         the vhost-user socket\n"
               "  --connect             connect to PATH (reconnecting every second) instead\n"
               "                        of listening on it\n"
               "  --disk FILE           serve this disk image (mapped; FLUSH syncs it)\n"
               "  --size BYTES          a RAM disk of this size (default 1M; K, M, G suffixes)\n"
               "  --queues N            virtqueues, 1..64 (default 1)\n"
               "  --read-only           offer VIRTIO_BLK_F_RO and refuse writes\n"
               "  --trace FILE          log every conversation in the trace format\n"
               "                        (docs/trace-format.md; '-' for stdout)\n"
               "  --once                exit after the first connection ends\n"
               "  --backend-timeout MS  give up waiting for a back-end channel reply after\n"
               "                        MS milliseconds (default 1000)\n"
               "  --commands            read commands on stdin: 'resize BYTES', 'stats', 'quit'\n"
               "  --spec FILE           use this table instead of the built-in one\n\n"
               "SIGINT and SIGTERM stop the server cleanly; SIGUSR1 re-reads the size of\n"
               "--disk FILE (resize it first) and tells the front-end (CONFIG_CHANGE).\n"
               "Exit status: 0 clean stop, 2 usage or setup error.\n");
}

static volatile sig_atomic_t stop_sig, resize_sig;

static void on_signal(int s)
{
    if (s == SIGUSR1)
        resize_sig = 1;
    else
        stop_sig = s;
}

typedef struct {
    int disk_fd; /* -1: RAM disk */
    uint8_t *disk;
    uint64_t size;
    bool read_only;
    FILE *trace;
    const vuf_spec *spec;
    unsigned long conns, events;
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
static int resize_disk(server *sv, uint64_t size, vuf_ref_conn *conn, vuf_ref *dev)
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
    if (conn)
        vuf_ref_conn_set_disk(conn, nd, size);
    else {
        vuf_ref_out out;
        vuf_ref_out_init(&out);
        vuf_ref_set_disk(dev, nd, size, &out);
        vuf_ref_out_clear(&out);
    }
    if (old)
        munmap(old, old_size);
    fprintf(stderr, "vufuzz serve: disk resized to %llu bytes\n", (unsigned long long)size);
    return 0;
}

/* One command line from stdin. false: quit. */
static bool command(server *sv, const char *line, vuf_ref_conn *conn, vuf_ref *dev)
{
    char word[32];
    char arg[64] = "";
    if (sscanf(line, "%31s %63s", word, arg) < 1)
        return true;
    uint64_t size;
    if (!strcmp(word, "quit"))
        return false;
    if (!strcmp(word, "stats")) {
        fprintf(stderr, "vufuzz serve: %lu connections, %lu events, %llu requests completed\n",
                sv->conns, sv->events, (unsigned long long)vuf_ref_chains_completed(dev));
    } else if (!strcmp(word, "resize") && vuf_parse_size(arg, &size)) {
        if (resize_disk(sv, size, conn, dev))
            fprintf(stderr, "vufuzz serve: resize to %s failed: %s\n", arg, strerror(errno));
    } else {
        fprintf(stderr, "vufuzz serve: unknown command '%s' (resize BYTES, stats, quit)\n", word);
    }
    return true;
}

/* Read and run stdin commands if a line is ready. false: quit. */
static bool poll_commands(server *sv, vuf_ref_conn *conn, vuf_ref *dev, bool *on)
{
    if (!*on)
        return true;
    struct pollfd p = {.fd = 0, .events = POLLIN};
    if (poll(&p, 1, 0) <= 0)
        return true;
    char line[256];
    ssize_t n = read(0, line, sizeof line - 1);
    if (n <= 0) {
        *on = false; /* end of input: no more commands */
        return true;
    }
    line[n] = 0;
    for (char *save = NULL, *l = strtok_r(line, "\n", &save); l; l = strtok_r(NULL, "\n", &save))
        if (!command(sv, l, conn, dev))
            return false;
    return true;
}

static void handle_resize_signal(server *sv, vuf_ref_conn *conn, vuf_ref *dev)
{
    if (!resize_sig)
        return;
    resize_sig = 0;
    struct stat st;
    if (sv->disk_fd < 0 || fstat(sv->disk_fd, &st)) {
        fprintf(stderr, "vufuzz serve: SIGUSR1 resizes --disk FILE only\n");
        return;
    }
    if ((uint64_t)st.st_size != sv->size && resize_disk(sv, (uint64_t)st.st_size, conn, dev))
        fprintf(stderr, "vufuzz serve: resize failed: %s\n", strerror(errno));
}

int vuf_cmd_serve(int argc, char **argv)
{
    const char *sock = NULL, *disk_path = NULL, *trace_path = NULL, *spec_path = NULL;
    bool connect_mode = false, once = false, ro = false, cmds = false;
    uint64_t size = 1 << 20, queues = 1, be_timeout = 1000;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        bool more = i + 1 < argc;
        if (vuf_cli_is_help(a)) {
            usage(stdout);
            return 0;
        } else if (!strcmp(a, "--socket") && more) {
            sock = argv[++i];
        } else if (!strcmp(a, "--disk") && more) {
            disk_path = argv[++i];
        } else if (!strcmp(a, "--size") && more) {
            if (!vuf_parse_size(argv[++i], &size)) {
                fprintf(stderr, "vufuzz serve: bad size '%s' (BYTES, with K, M or G)\n", argv[i]);
                return 2;
            }
        } else if (!strcmp(a, "--queues") && more) {
            if (!vuf_parse_size(argv[++i], &queues) || queues < 1 || queues > VUF_REF_MAX_QUEUES) {
                fprintf(stderr, "vufuzz serve: bad queue count '%s' (1..%d)\n", argv[i],
                        VUF_REF_MAX_QUEUES);
                return 2;
            }
        } else if (!strcmp(a, "--backend-timeout") && more) {
            if (!vuf_parse_size(argv[++i], &be_timeout) || be_timeout > 3600000) {
                fprintf(stderr, "vufuzz serve: bad timeout '%s' (ms)\n", argv[i]);
                return 2;
            }
        } else if (!strcmp(a, "--trace") && more) {
            trace_path = argv[++i];
        } else if (!strcmp(a, "--spec") && more) {
            spec_path = argv[++i];
        } else if (!strcmp(a, "--connect")) {
            connect_mode = true;
        } else if (!strcmp(a, "--once")) {
            once = true;
        } else if (!strcmp(a, "--read-only")) {
            ro = true;
        } else if (!strcmp(a, "--commands")) {
            cmds = true;
        } else {
            fprintf(stderr, "vufuzz serve: unexpected '%s'\n\n", a);
            usage(stderr);
            return 2;
        }
    }
    if (!sock) {
        fprintf(stderr, "vufuzz serve: --socket PATH is required\n\n");
        usage(stderr);
        return 2;
    }
    const vuf_spec *spec = vuf_cli_open_spec(spec_path);
    if (!spec)
        return 2;
    server sv = {.disk_fd = -1, .read_only = ro, .spec = spec};
    int rc = 2, lfd = -1;
    vuf_ref *dev = NULL;
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
    if (trace_path) {
        sv.trace = strcmp(trace_path, "-") ? fopen(trace_path, "w") : stdout;
        if (!sv.trace) {
            fprintf(stderr, "vufuzz serve: %s: %s\n", trace_path, strerror(errno));
            goto out;
        }
        fprintf(sv.trace, "# vufuzz serve --socket %s: the reference device's conversations\n",
                sock);
    }
    vuf_ref_config cfg;
    vuf_ref_config_default(&cfg);
    cfg.disk = sv.disk;
    cfg.disk_size = size;
    cfg.read_only = ro;
    cfg.queues = (uint32_t)queues;
    char err[200];
    dev = vuf_ref_new(spec, &cfg, err, sizeof err);
    if (!dev) {
        fprintf(stderr, "vufuzz serve: %s\n", err);
        goto out;
    }
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_signal;
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGUSR1, &sa, NULL);
    signal(SIGPIPE, SIG_IGN);
    if (!connect_mode) {
        lfd = vuf_unix_listen(sock);
        if (lfd < 0) {
            fprintf(stderr, "vufuzz serve: cannot listen on %s: %s\n", sock, strerror(errno));
            goto out;
        }
        fprintf(stderr, "vufuzz serve: listening on %s (%llu-byte disk, %llu queue%s)\n", sock,
                (unsigned long long)size, (unsigned long long)queues, queues > 1 ? "s" : "");
    }
    vuf_ref_conn_opts o = {.io_timeout_ms = 1000,
                           .backend_timeout_ms = (int)be_timeout,
                           .poll_queues = true,
                           .on_event = on_event,
                           .on_flush = on_flush,
                           .ctx = &sv};
    rc = 0;
    bool quit = false;
    while (!stop_sig && !quit) {
        int fd = connect_mode ? vuf_unix_connect(sock, 200) : vuf_unix_accept(lfd, 200);
        handle_resize_signal(&sv, NULL, dev);
        if (!poll_commands(&sv, NULL, dev, &cmds))
            break;
        if (fd < 0) {
            if (errno != ETIMEDOUT && errno != EINTR && errno != ENOENT && errno != ECONNREFUSED) {
                fprintf(stderr, "vufuzz serve: %s: %s\n", connect_mode ? "connect" : "accept",
                        strerror(errno));
                rc = 2;
                break;
            }
            if (connect_mode)
                sleep(1);
            continue;
        }
        sv.conns++;
        fprintf(stderr, "vufuzz serve: connection %lu opened\n", sv.conns);
        vuf_ref_conn *conn = vuf_ref_conn_new(dev, fd, &o);
        if (!conn) {
            rc = 2;
            break;
        }
        uint64_t done = vuf_ref_chains_completed(dev);
        while (!stop_sig && vuf_ref_conn_step(conn, 100)) {
            if (sv.trace && vuf_ref_chains_completed(dev) != done) {
                /* data-plane progress, as a comment line of the trace */
                done = vuf_ref_chains_completed(dev);
                fprintf(sv.trace, "# data plane: %llu requests completed\n",
                        (unsigned long long)done);
                fflush(sv.trace);
            }
            handle_resize_signal(&sv, conn, dev);
            if (!poll_commands(&sv, conn, dev, &cmds)) {
                quit = true;
                break;
            }
        }
        const char *why = vuf_ref_last_reason(dev);
        fprintf(stderr, "vufuzz serve: connection %lu closed%s%s%s (%llu requests completed)\n",
                sv.conns, why ? " (last refusal: " : "", why ? why : "", why ? ")" : "",
                (unsigned long long)vuf_ref_chains_completed(dev));
        vuf_ref_conn_free(conn);
        if (once)
            break;
    }
    if (stop_sig)
        fprintf(stderr, "vufuzz serve: stopping on signal %d\n", (int)stop_sig);
out:
    vuf_ref_free(dev);
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
