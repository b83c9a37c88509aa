/* SPDX-License-Identifier: Apache-2.0 */
/* Shared helpers of the vufuzz subcommands (cli.h). */
#include "cli.h"

#include "vuf_proc.h"
#include "vuf_sha256.h"
#include "vuf_util.h"

#include <errno.h>

#include <fcntl.h>
#include <signal.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

void vuf_cli_print_diag(FILE *f, const vuf_diag *d, bool is_error)
{
    const char *kind = is_error ? "error" : "warning";
    if (d->line)
        fprintf(f, "%s:%u:%u: %s: %s\n", d->file, d->line, d->col ? d->col : 1, kind, d->text);
    else
        fprintf(f, "%s: %s: %s\n", d->file[0] ? d->file : "vufuzz", kind, d->text);
}

static char spec_file[512] = "built-in";
static char spec_sha[65];

/* The digest of the table's text, as the tool read it. */
static void note_spec(const char *path)
{
    size_t len = 0;
    char err[160];
    if (!path) {
        const char *t = vuf_spec_default_text(&len);
        snprintf(spec_file, sizeof spec_file, "built-in");
        vuf_sha256_hex(t, len, spec_sha);
        return;
    }
    snprintf(spec_file, sizeof spec_file, "%s", path);
    uint8_t *b = vuf_read_file(path, VUF_SPEC_MAX_FILE, &len, err, sizeof err);
    if (b)
        vuf_sha256_hex(b, len, spec_sha);
    else
        snprintf(spec_sha, sizeof spec_sha, "unreadable");
    free(b);
}

const vuf_spec *vuf_cli_open_spec(const char *path)
{
    vuf_diag d;
    const vuf_spec *s = vuf_spec_open(path, &d);
    if (!s)
        vuf_cli_print_diag(stderr, &d, true);
    else
        note_spec(path);
    return s;
}

const char *vuf_cli_spec_file(void)
{
    return spec_file;
}

const char *vuf_cli_spec_sha256(void)
{
    if (!spec_sha[0])
        note_spec(NULL);
    return spec_sha;
}

void vuf_cli_json_meta(vuf_json *j)
{
    vuf_json_str(j, "vufuzz", vuf_version_string());
    vuf_json_object(j, "table");
    vuf_json_str(j, "file", vuf_cli_spec_file());
    vuf_json_str(j, "sha256", vuf_cli_spec_sha256());
    vuf_json_end(j);
}

bool vuf_cli_is_help(const char *a)
{
    return !strcmp(a, "-h") || !strcmp(a, "--help");
}

void vuf_cli_write_file(void *ctx, const char *text)
{
    fputs(text, (FILE *)ctx);
}

int vuf_cli_usage_error(const char *cmd, const char *usage_line, const char *fmt, ...)
{
    va_list ap;
    fprintf(stderr, "vufuzz %s: ", cmd);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
    if (usage_line)
        fprintf(stderr, "%s\n", usage_line);
    fprintf(stderr, "Try 'vufuzz %s --help' for more information.\n", cmd);
    return 2;
}

void vuf_cli_init(vuf_cli_parser *p, const char *cmd, const char *usage_line,
                  const vuf_cli_opt *opts, int argc, char **argv)
{
    memset(p, 0, sizeof *p);
    p->cmd = cmd;
    p->usage_line = usage_line;
    p->opts = opts;
    p->argc = argc;
    p->argv = argv;
    p->i = 1;
}

int vuf_cli_next(vuf_cli_parser *p, const char **val)
{
    *val = NULL;
    if (p->i >= p->argc)
        return VUF_CLI_END;
    const char *a = p->argv[p->i++];
    if (p->no_more_options || a[0] != '-' || !a[1]) {
        *val = a; /* "-" alone is a positional (stdin/stdout) */
        return VUF_CLI_POS;
    }
    if (!strcmp(a, "--")) {
        p->no_more_options = true;
        return vuf_cli_next(p, val);
    }
    if (vuf_cli_is_help(a))
        return VUF_CLI_HELP;
    /* "--opt=value", and libFuzzer's "-opt=value" for a long single-dash name */
    const char *eq = strchr(a, '=');
    if (eq && a[1] != '-' && eq - a <= 2)
        eq = NULL;
    size_t n = eq ? (size_t)(eq - a) : strlen(a);
    for (int k = 0; p->opts && p->opts[k].name; k++) {
        const vuf_cli_opt *o = &p->opts[k];
        if (strlen(o->name) != n || strncmp(o->name, a, n))
            continue;
        if (!o->value) {
            if (eq) {
                vuf_cli_usage_error(p->cmd, p->usage_line, "option %s takes no value", o->name);
                return VUF_CLI_ERROR;
            }
            return k;
        }
        if (eq) {
            *val = eq + 1;
            return k;
        }
        if (p->i >= p->argc) {
            vuf_cli_usage_error(p->cmd, p->usage_line, "option %s needs a value (%s)", o->name,
                                o->value);
            return VUF_CLI_ERROR;
        }
        *val = p->argv[p->i++];
        return k;
    }
    vuf_cli_usage_error(p->cmd, p->usage_line, "unknown option '%s'", a);
    return VUF_CLI_ERROR;
}

/* ---- signals for event loops ---- */

static int signal_pipe[2] = {-1, -1};

static void on_signal(int sig)
{
    int e = errno;
    unsigned char b = (unsigned char)sig;
    if (write(signal_pipe[1], &b, 1) < 0) {
        /* full: a signal is pending already */
    }
    errno = e;
}

int vuf_cli_signal_fd(const int *sigs, size_t n)
{
    if (signal_pipe[0] < 0 && pipe2(signal_pipe, O_CLOEXEC | O_NONBLOCK))
        return -1;
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_signal;
    sigemptyset(&sa.sa_mask);
    for (size_t i = 0; i < n; i++)
        sigaction(sigs[i], &sa, NULL);
    signal(SIGPIPE, SIG_IGN);
    return signal_pipe[0];
}

int vuf_cli_signal_next(int fd)
{
    unsigned char b;
    return read(fd, &b, 1) == 1 ? b : 0;
}

/* ---- the back-end under test ---- */

const char vuf_cli_backend_help[] =
    "  --connect PATH    the back-end listens on PATH (started by you; a new\n"
    "                    connection per session)\n"
    "  --pid PID         the --connect back-end's process: its open fds are counted\n"
    "                    after each session against their number before the first\n"
    "                    one, and its death is a crash\n"
    "  --exec 'CMD'      start the back-end: CMD goes to bash -c with {socket}\n"
    "                    replaced by a private socket path where it must listen; it\n"
    "                    is started again whenever it ended (a crash, or a server\n"
    "                    that serves one connection and exits) and stopped at the end;\n"
    "                    a death by a signal, an exit status other than 0 while it\n"
    "                    should serve, and a sanitizer report in its output are\n"
    "                    findings\n"
    "  --backend-log FILE  the --exec back-end's stdout and stderr (default: a\n"
    "                    private file, removed at the end)\n"
    "  --ready-timeout MS  how long the --exec back-end may take to listen\n"
    "                    (default 10000)\n"
    "  --reply-timeout MS  how long a reply the spec owes may take before it is a\n"
    "                    hang (default 2000)\n";

int vuf_cli_backend_opt(vuf_backend_opts *o, int which, const char *val, const char *cmd,
                        const char *usage_line)
{
    uint64_t v = 0;
    switch (which) {
    case 0:
        o->connect_path = val;
        return 0;
    case 1:
        if (!vuf_parse_u64(val, &v) || v < 1 || v > 0x7fffffff)
            return vuf_cli_usage_error(cmd, usage_line, "bad pid '%s'", val);
        o->pid = (int)v;
        return 0;
    case 2:
        o->exec_cmd = val;
        return 0;
    case 3:
        o->log_path = val;
        return 0;
    case 4:
        if (!vuf_parse_u64(val, &v) || v < 1 || v > 600000)
            return vuf_cli_usage_error(cmd, usage_line, "bad --ready-timeout '%s' (1..600000 ms)",
                                       val);
        o->ready_timeout_ms = (int)v;
        return 0;
    case 5:
        if (!vuf_parse_u64(val, &v) || v < 1 || v > 3600000)
            return vuf_cli_usage_error(cmd, usage_line, "bad --reply-timeout '%s' (1..3600000 ms)",
                                       val);
        o->reply_timeout_ms = (int)v;
        return 0;
    }
    return vuf_cli_usage_error(cmd, usage_line, "internal: back-end option %d", which);
}

int vuf_cli_backend_check(const vuf_backend_opts *o, bool *given, const char *cmd,
                          const char *usage_line)
{
    *given = o->connect_path || o->exec_cmd;
    if (o->connect_path && o->exec_cmd)
        return vuf_cli_usage_error(cmd, usage_line,
                                   "one back-end: --connect PATH or --exec 'CMD {socket}'");
    if (o->pid && !o->connect_path)
        return vuf_cli_usage_error(cmd, usage_line, "--pid goes with --connect");
    if ((o->log_path || o->ready_timeout_ms) && !o->exec_cmd)
        return vuf_cli_usage_error(cmd, usage_line, "%s goes with --exec",
                                   o->log_path ? "--backend-log" : "--ready-timeout");
    if (o->exec_cmd && vuf_proc_command_error(o->exec_cmd))
        return vuf_cli_usage_error(cmd, usage_line, "the --exec command %s",
                                   vuf_proc_command_error(o->exec_cmd));
    if (!*given && o->reply_timeout_ms)
        return vuf_cli_usage_error(cmd, usage_line,
                                   "--reply-timeout goes with --connect or --exec");
    return 0;
}

/* ---- the front-end under test ---- */

const char vuf_cli_frontend_help[] =
    "  --device blk|net  the device vufuzz plays (default blk): the reference\n"
    "                    vhost-user-blk device, or its core with virtio-net's\n"
    "                    features (the control plane only: no ring is served)\n"
    "  --firmware        let the guest run its firmware (SeaBIOS boots the blk\n"
    "                    device's disk, iPXE drives the net device): the rings are\n"
    "                    started, and stopped at quit; without it QEMU runs with -S\n"
    "                    and the conversation is the handshake of device realize\n"
    "  --frontend-log FILE  the front-end's stdout and stderr, appended (default:\n"
    "                    private files, removed at the end)\n"
    "  --connect-timeout MS  how long a started front-end may take to connect\n"
    "                    (default 10000)\n"
    "  --settle MS       a session ends after MS without a message on either\n"
    "                    channel (default 300, 60 once QMP answers; with --firmware\n"
    "                    1500 for blk, 3000 for net)\n"
    "  --hang-timeout MS  QMP query-status must be answered, and the process gone\n"
    "                    after QMP quit, within MS (default 5000)\n"
    "  --pool N          front-ends started ahead of their session (default 1)\n"
    "  --level must|should  the front-end's violations that are findings\n"
    "                    (default must)\n";

int vuf_cli_frontend_opt(vuf_frontend_opts *o, int which, const char *val, const char *cmd,
                         const char *usage_line)
{
    uint64_t v = 0;
    switch (which) {
    case 0:
        if (!strcmp(val, "blk"))
            o->device = VUF_HOSTILE_BLK;
        else if (!strcmp(val, "net"))
            o->device = VUF_HOSTILE_NET;
        else
            return vuf_cli_usage_error(cmd, usage_line, "bad --device '%s' (blk or net)", val);
        return 0;
    case 1:
        o->firmware = true;
        return 0;
    case 2:
        o->log_path = val;
        return 0;
    case 3:
    case 4:
    case 5:
        if (!vuf_parse_u64(val, &v) || v < 1 || v > 600000)
            return vuf_cli_usage_error(cmd, usage_line, "bad %s '%s' (1..600000 ms)",
                                       which == 3   ? "--connect-timeout"
                                       : which == 4 ? "--settle"
                                                    : "--hang-timeout",
                                       val);
        *(which == 3 ? &o->ready_ms : which == 4 ? &o->settle_ms : &o->hang_ms) = (int)v;
        return 0;
    case 6:
        if (!vuf_parse_u64(val, &v) || v > 8)
            return vuf_cli_usage_error(cmd, usage_line, "bad --pool '%s' (0..8)", val);
        o->pool = v ? (int)v : -1;
        return 0;
    case 7: {
        vuf_level lv;
        if (vuf_level_parse(val, &lv) || lv == VUF_NOTE)
            return vuf_cli_usage_error(cmd, usage_line, "bad --level '%s' (must or should)", val);
        o->level = lv;
        return 0;
    }
    }
    return vuf_cli_usage_error(cmd, usage_line, "internal: front-end option %d", which);
}

/* The boot sector the blk device's disk holds under --firmware: it prints
 * VUFUZZ-BOOT-OK on COM1 and halts (cld; xor ax,ax; mov ds,ax;
 * mov si,msg; mov dx,0x3f8; lodsb; test al,al; jz; out dx,al; jmp; hlt). */
static uint8_t boot_sector[512] = {
    0xfc, 0x31, 0xc0, 0x8e, 0xd8, 0xbe, 0x16,         0x7c,        0xba, 0xf8, 0x03,
    0xac, 0x84, 0xc0, 0x74, 0x03, 0xee, 0xeb,         0xf8,        0xf4, 0xeb, 0xfd,
    'V',  'U',  'F',  'U',  'Z',  'Z',  '-',          'B',         'O',  'O',  'T',
    '-',  'O',  'K',  '\r', '\n', 0,    [510] = 0x55, [511] = 0xaa};

int vuf_cli_frontend_check(vuf_frontend_opts *o, const char *exec, const char *cmd,
                           const char *usage_line)
{
    static char line[1024];
    if (exec) {
        const char *why = vuf_proc_command_error(exec);
        if (why)
            return vuf_cli_usage_error(cmd, usage_line, "the --exec command %s", why);
        o->exec_cmd = exec;
    } else {
        /* QEMU 7.2 as Debian ships it: TCG, q35, guest memory shared with
         * the back-end (memfd, share=on), the device on a client chardev */
        snprintf(line, sizeof line,
                 "qemu-system-x86_64 -machine q35,accel=tcg -m 64M "
                 "-object memory-backend-memfd,id=mem,size=64M,share=on -numa node,memdev=mem "
                 "-chardev socket,id=c0,path={socket} %s -nographic -nodefaults -display none",
                 o->device == VUF_HOSTILE_NET
                     ? "-netdev vhost-user,chardev=c0,id=n0 "
                       "-device virtio-net-pci,netdev=n0,mac=52:54:00:12:34:56 -boot n"
                     : "-device vhost-user-blk-pci,chardev=c0");
        o->exec_cmd = line;
    }
    if (o->firmware && o->device == VUF_HOSTILE_BLK) {
        o->disk_image = boot_sector;
        o->disk_image_len = sizeof boot_sector;
    }
    return 0;
}
