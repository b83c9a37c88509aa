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
               "vufuzz --version prints the version and the table's SHA-256.\n"
               "Exit status: 0 success, 1 findings or violations, 2 usage or input error.\n");
}

/* vufuzz --version [--spec FILE] */
static int version(int argc, char **argv)
{
    static const vuf_cli_opt opts[] = {{"--spec", "FILE"}, {NULL, NULL}};
    const char *usage_line = "usage: vufuzz --version [--spec FILE]";
    vuf_cli_parser p;
    vuf_cli_init(&p, "--version", usage_line, opts, argc, argv);
    const char *spec = NULL, *val;
    for (int k; (k = vuf_cli_next(&p, &val)) != VUF_CLI_END;) {
        if (k == VUF_CLI_HELP) {
            printf(
                "%s\n\nThe version of vufuzz and the SHA-256 of the table it uses (the built-in\n"
                "one, or FILE). Reports (JSON, JUnit) carry both.\n",
                usage_line);
            return 0;
        }
        if (k == VUF_CLI_ERROR)
            return 2;
        if (k == VUF_CLI_POS)
            return vuf_cli_usage_error("--version", usage_line, "unexpected '%s'", val);
        spec = val;
    }
    const vuf_spec *s = vuf_cli_open_spec(spec);
    if (!s)
        return 2;
    printf("vufuzz %s\n", vuf_version_string());
    printf("table: %s%s, sha256 %s\n", vuf_cli_spec_file(),
           spec ? "" : " (spec/vhost-user.spec at build time)", vuf_cli_spec_sha256());
    vuf_spec_release(s);
    return 0;
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
    if (!strcmp(argv[1], "--version") || !strcmp(argv[1], "version"))
        return version(argc - 1, argv + 1);
    for (size_t i = 0; i < sizeof commands / sizeof commands[0]; i++)
        if (!strcmp(argv[1], commands[i].name))
            return commands[i].fn(argc - 1, argv + 1);
    fprintf(stderr, "vufuzz: unknown command '%s'\n\n", argv[1]);
    usage(stderr);
    return 2;
}
