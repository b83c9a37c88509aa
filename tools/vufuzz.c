/* SPDX-License-Identifier: Apache-2.0 */
/* vufuzz: the command line. One binary, one subcommand per tools/cmd_*.c. */
#include "cli.h"

#include <stdio.h>
#include <string.h>

static const struct {
    const char *name;
    int (*fn)(int, char **);
    const char *summary;
} commands[] = {
#define VUF_CMD(name, fn, summary) {name, fn, summary},
#include "commands.def"
#undef VUF_CMD
};

static void usage(FILE *f)
{
    fprintf(f, "usage: vufuzz COMMAND [ARGS...]\n\n"
               "A vhost-user fuzzing and conformance toolkit.\n\ncommands:\n");
    for (size_t i = 0; i < sizeof commands / sizeof commands[0]; i++)
        fprintf(f, "  %-12s %s\n", commands[i].name, commands[i].summary);
    fprintf(f, "\nEvery command takes --help. Commands that read the spec table take --spec FILE\n"
               "(default: the table built in from spec/vhost-user.spec).\n"
               "Exit status: 0 success, 1 findings or violations, 2 usage or input error.\n");
}

int main(int argc, char **argv)
{
    if (argc < 2) {
        usage(stderr);
        return 2;
    }
    if (vuf_cli_is_help(argv[1]) || !strcmp(argv[1], "help")) {
        usage(stdout);
        return 0;
    }
    for (size_t i = 0; i < sizeof commands / sizeof commands[0]; i++)
        if (!strcmp(argv[1], commands[i].name))
            return commands[i].fn(argc - 1, argv + 1);
    fprintf(stderr, "vufuzz: unknown command '%s'\n\n", argv[1]);
    usage(stderr);
    return 2;
}
