/* SPDX-License-Identifier: Apache-2.0 */
/* Shared helpers of the vufuzz subcommands. */
#ifndef VUF_CLI_H
#define VUF_CLI_H

#include <stdbool.h>
#include <stdio.h>

#include "vuf_backend.h"
#include "vuf_frontend.h"
#include "vuf_json.h"
#include "vuf_spec.h"

#define VUF_CMD(name, fn, summary) int fn(int argc, char **argv);
#include "commands.def"
#undef VUF_CMD

/* Print "FILE:LINE:COL: error: TEXT" (or without line when 0). */
void vuf_cli_print_diag(FILE *f, const vuf_diag *d, bool is_error);
/* Open --spec FILE or the built-in table; prints the error and returns NULL. */
const vuf_spec *vuf_cli_open_spec(const char *path);
/* The table the last vuf_cli_open_spec opened ("built-in" or its path) and
 * the SHA-256 of its text: what every report names, so a result can be
 * traced to the table that judged it. */
const char *vuf_cli_spec_file(void);
const char *vuf_cli_spec_sha256(void);
/* "0.5.0 (git 1234abcd5678)" (cmake/version.cmake, made at build time). */
const char *vuf_version_string(void);
/* Members "vufuzz" (the version) and "table" {file, sha256} of a JSON
 * report's top-level object. */
void vuf_cli_json_meta(vuf_json *j);
/* True if argv[i] is -h or --help. */
bool vuf_cli_is_help(const char *a);
/* A vuf_write_fn that writes to a FILE*. */
void vuf_cli_write_file(void *ctx, const char *text);

/* A usage error: "vufuzz CMD: MESSAGE", the one-line usage and a pointer to
 * --help, on stderr. Returns 2, the exit status of a usage error. */
int vuf_cli_usage_error(const char *cmd, const char *usage_line, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* ---- options ----
 * A subcommand declares its options once; vuf_cli_next walks argv and does
 * the error messages every command needs the same way: an unknown option, a
 * missing value ("option --spec needs a value (FILE)"), a value given to a
 * flag. "--opt=value" and "--opt value" are the same; "--" ends the options;
 * "-" alone is a positional (stdin or stdout). */
typedef struct {
    const char *name;  /* "--spec", "-o" */
    const char *value; /* NULL for a flag, else what the value is ("FILE") */
} vuf_cli_opt;

typedef struct {
    const char *cmd, *usage_line;
    const vuf_cli_opt *opts; /* ends with {NULL, NULL} */
    int argc, i;
    char **argv;
    bool no_more_options;
} vuf_cli_parser;

enum { VUF_CLI_END = -1, VUF_CLI_POS = -2, VUF_CLI_HELP = -3, VUF_CLI_ERROR = -4 };

/* argv[0] is the subcommand's name; parsing starts at argv[1]. */
void vuf_cli_init(vuf_cli_parser *p, const char *cmd, const char *usage_line,
                  const vuf_cli_opt *opts, int argc, char **argv);
/* The next argument: the index of an option in opts (*val its value, or
 * NULL for a flag), VUF_CLI_POS (*val the argument), VUF_CLI_HELP (-h or
 * --help), VUF_CLI_END, or VUF_CLI_ERROR after printing the usage error
 * (the caller returns 2). */
int vuf_cli_next(vuf_cli_parser *p, const char **val);

/* ---- the back-end under test (replay, conform, fuzz, minimize, monitor) ----
 * Its options, parsed and checked the same way in every command:
 *   --connect PATH  --pid PID  --exec 'CMD {socket}'  --backend-log FILE
 *   --ready-timeout MS  --reply-timeout MS
 * A command puts VUF_CLI_BACKEND_OPTS(FIRST) in its option table, where FIRST
 * is the index of the first of VUF_CLI_BACKEND_N consecutive enum values, and
 * hands an index k in FIRST..FIRST+VUF_CLI_BACKEND_N-1 to vuf_cli_backend_opt
 * as k - FIRST. */
#define VUF_CLI_BACKEND_N 6
#define VUF_CLI_BACKEND_OPTS(first)                                                                \
    [(first)] = {"--connect", "PATH"}, [(first) + 1] = {"--pid", "PID"},                           \
    [(first) + 2] = {"--exec", "CMD"}, [(first) + 3] = {"--backend-log", "FILE"},                  \
    [(first) + 4] = {"--ready-timeout", "MS"}, [(first) + 5] = {"--reply-timeout", "MS"}
/* The options' lines for --help. */
extern const char vuf_cli_backend_help[];
/* Parse option `which` (0..VUF_CLI_BACKEND_N-1) into *o: 0, or the usage
 * error's exit status (2) after printing it. */
int vuf_cli_backend_opt(vuf_backend_opts *o, int which, const char *val, const char *cmd,
                        const char *usage_line);
/* After the options: none given (0, *given false), a usable set (0), or the
 * usage error (2): both --connect and --exec, --pid without --connect,
 * --backend-log or --ready-timeout without --exec, a command without
 * {socket}. */
int vuf_cli_backend_check(const vuf_backend_opts *o, bool *given, const char *cmd,
                          const char *usage_line);

/* ---- the front-end under test (fuzz-frontend, replay --frontend-exec) ----
 * Its options, parsed the same way in both commands:
 *   --device blk|net  --firmware  --frontend-log FILE  --connect-timeout MS
 *   --settle MS  --hang-timeout MS  --pool N  --level must|should
 * Used like VUF_CLI_BACKEND_OPTS (FIRST .. FIRST+VUF_CLI_FRONTEND_N-1). */
#define VUF_CLI_FRONTEND_N 8
#define VUF_CLI_FRONTEND_OPTS(first)                                                               \
    [(first)] = {"--device", "blk|net"}, [(first) + 1] = {"--firmware", NULL},                     \
    [(first) + 2] = {"--frontend-log", "FILE"}, [(first) + 3] = {"--connect-timeout", "MS"},       \
    [(first) + 4] = {"--settle", "MS"}, [(first) + 5] = {"--hang-timeout", "MS"},                  \
    [(first) + 6] = {"--pool", "N"}, [(first) + 7] = {"--level", "must|should"}
extern const char vuf_cli_frontend_help[];
/* Parse option `which` into *o: 0, or the usage error's status (2). */
int vuf_cli_frontend_opt(vuf_frontend_opts *o, int which, const char *val, const char *cmd,
                         const char *usage_line);
/* After the options: the command (exec, or QEMU's standard line for the
 * device when NULL) checked and set in o, the firmware's disk (a boot
 * sector for blk) set: 0, or the usage error's status (2). */
int vuf_cli_frontend_check(vuf_frontend_opts *o, const char *exec, const char *cmd,
                           const char *usage_line);

/* ---- signals ----
 * Signals as an fd an event loop polls (a self-pipe): each of sigs, when it
 * arrives, makes the fd readable; vuf_cli_signal_next returns the next one
 * (0 when none is left). SIGPIPE is ignored. Returns the fd, or -1. */
int vuf_cli_signal_fd(const int *sigs, size_t n);
int vuf_cli_signal_next(int fd);

#endif
