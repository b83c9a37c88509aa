/* SPDX-License-Identifier: Apache-2.0 */
/* Shared helpers of the vufuzz subcommands. */
#ifndef VUF_CLI_H
#define VUF_CLI_H

#include <stdbool.h>
#include <stdio.h>

#include "vuf_spec.h"

#define VUF_CMD(name, fn, summary) int fn(int argc, char **argv);
#include "commands.def"
#undef VUF_CMD

/* Print "FILE:LINE:COL: error: TEXT" (or without line when 0). */
void vuf_cli_print_diag(FILE *f, const vuf_diag *d, bool is_error);
/* Open --spec FILE or the built-in table; prints the error and returns NULL. */
const vuf_spec *vuf_cli_open_spec(const char *path);
/* True if argv[i] is -h or --help. */
bool vuf_cli_is_help(const char *a);
/* A vuf_write_fn that writes to a FILE*. */
void vuf_cli_write_file(void *ctx, const char *text);

#endif
