/* SPDX-License-Identifier: Apache-2.0 */
/* vufuzz spec list|show|lint|diff|doc: the table, for people and spec authors. */
#include "cli.h"

#include <stdlib.h>
#include <string.h>

static void spec_usage(FILE *f)
{
    fprintf(f, "usage: vufuzz spec list [--channel frontend|backend] [--spec FILE]\n"
               "       vufuzz spec show NAME_OR_ID [--channel frontend|backend] [--spec FILE]\n"
               "       vufuzz spec lint FILE\n"
               "       vufuzz spec diff OLD NEW\n"
               "       vufuzz spec doc --format md [--spec FILE] [-o FILE]\n\n"
               "list   every message of the table (both channels unless --channel)\n"
               "show   everything the table says of one message; NAME may be a former name\n"
               "       (SET_SLAVE_REQ_FD); a numeric ID is looked up on --channel (default\n"
               "       frontend), or written CHANNEL:ID (backend:1)\n"
               "lint   load FILE and check it for contradictions; prints FILE:LINE:COL\n"
               "       diagnostics; exit 0 clean, 1 errors, 2 unreadable\n"
               "diff   semantic difference between two tables (message added, gate changed,\n"
               "       fd rule changed, ...); exit 0 same, 1 different, 2 error\n"
               "doc    render the message reference (docs/messages.md)\n");
}

typedef struct {
    const char *spec;
    const char *channel;
    const char *format;
    const char *out;
    const char *pos[4];
    int npos;
} spec_args;

static int parse_args(int argc, char **argv, spec_args *a)
{
    memset(a, 0, sizeof *a);
    for (int i = 2; i < argc; i++) {
        const char *s = argv[i];
        if (vuf_cli_is_help(s)) {
            spec_usage(stdout);
            return 0;
        }
        const char **dst = !strcmp(s, "--spec")      ? &a->spec
                           : !strcmp(s, "--channel") ? &a->channel
                           : !strcmp(s, "--format")  ? &a->format
                           : !strcmp(s, "-o")        ? &a->out
                                                     : NULL;
        if (dst) {
            if (i + 1 >= argc) {
                fprintf(stderr, "vufuzz spec: %s needs a value\n", s);
                return 2;
            }
            *dst = argv[++i];
        } else if (s[0] == '-' && s[1]) {
            fprintf(stderr, "vufuzz spec: unknown option '%s'\n", s);
            return 2;
        } else if (a->npos < 4) {
            a->pos[a->npos++] = s;
        } else {
            fprintf(stderr, "vufuzz spec: too many arguments\n");
            return 2;
        }
    }
    return -1;
}

static int cmd_list(const spec_args *a)
{
    int only = -1;
    if (a->channel) {
        vuf_channel c;
        if (vuf_channel_parse(a->channel, &c)) {
            fprintf(stderr, "vufuzz spec list: bad channel '%s' (expected frontend or backend)\n",
                    a->channel);
            return 2;
        }
        only = (int)c;
    }
    const vuf_spec *s = vuf_cli_open_spec(a->spec);
    if (!s)
        return 2;
    size_t counts[VUF_CHAN_COUNT] = {0};
    for (int c = 0; c < VUF_CHAN_COUNT; c++) {
        if (only >= 0 && only != c)
            continue;
        for (size_t i = 0; i < vuf_spec_msg_count(s, (vuf_channel)c); i++) {
            const vuf_msg_def *m = vuf_spec_msg_at(s, (vuf_channel)c, i);
            char former[256] = "";
            size_t len = 0;
            for (const char *const *f = m->former; *f; f++)
                len += (size_t)snprintf(former + len, sizeof former - len, "%s%s",
                                        len ? ", " : " (formerly ", *f);
            if (len)
                snprintf(former + len, sizeof former - len, ")");
            printf("%-8s %3u  %s%s%s%s\n", vuf_channel_name(m->channel), m->id, m->name, former,
                   m->provisional ? "  [provisional]" : "", m->deprecated ? "  [deprecated]" : "");
            counts[c]++;
        }
    }
    size_t nprot = 0, nvirt = 0;
    for (size_t i = 0; i < vuf_spec_feature_count(s); i++)
        *(vuf_spec_feature_at(s, i)->space == VUF_SPACE_PROTOCOL ? &nprot : &nvirt) += 1;
    printf("%zu front-end messages, %zu back-end messages, %zu protocol features, %zu virtio "
           "features, %zu payloads\n",
           counts[0], counts[1], nprot, nvirt, vuf_spec_payload_count(s));
    vuf_spec_release(s);
    return 0;
}

static const vuf_msg_def *lookup(const vuf_spec *s, const char *key, const char *chan)
{
    vuf_channel c = VUF_CHAN_FRONTEND;
    char buf[128];
    snprintf(buf, sizeof buf, "%s", key);
    char *colon = strchr(buf, ':');
    if (colon) {
        *colon = 0;
        if (vuf_channel_parse(buf, &c))
            return NULL;
        key = key + (colon - buf) + 1;
    } else if (chan && vuf_channel_parse(chan, &c)) {
        return NULL;
    }
    char *end;
    unsigned long id = strtoul(key, &end, 0);
    if (*key && !*end)
        return vuf_spec_msg(s, c, (uint32_t)id);
    return vuf_spec_msg_by_name(s, chan || colon ? c : VUF_CHAN_COUNT, key);
}

static int cmd_show(const spec_args *a)
{
    if (a->npos != 1) {
        fprintf(stderr, "vufuzz spec show: expected one NAME_OR_ID\n");
        return 2;
    }
    const vuf_spec *s = vuf_cli_open_spec(a->spec);
    if (!s)
        return 2;
    const vuf_msg_def *m = lookup(s, a->pos[0], a->channel);
    if (!m) {
        fprintf(stderr, "vufuzz spec show: no message '%s' in %s (try 'vufuzz spec list')\n",
                a->pos[0], vuf_spec_filename(s));
        vuf_spec_release(s);
        return 2;
    }
    vuf_spec_render_show(s, m, vuf_cli_write_file, stdout);
    vuf_spec_release(s);
    return 0;
}

typedef struct {
    size_t errors, warnings;
} lint_count;

static void lint_print(void *ctx, const vuf_diag *d, bool is_error)
{
    lint_count *c = ctx;
    *(is_error ? &c->errors : &c->warnings) += 1;
    vuf_cli_print_diag(stdout, d, is_error);
}

static int cmd_lint(const spec_args *a)
{
    if (a->npos != 1) {
        fprintf(stderr, "vufuzz spec lint: expected one FILE\n");
        return 2;
    }
    vuf_diag d;
    vuf_spec *s = vuf_spec_load_file(a->pos[0], &d);
    if (!s) {
        vuf_cli_print_diag(stdout, &d, true);
        printf("%s: 1 error, 0 warnings\n", a->pos[0]);
        return d.line ? 1 : 2;
    }
    lint_count c = {0};
    vuf_spec_lint(s, lint_print, &c);
    printf("%s: %zu error%s, %zu warning%s (%zu front-end and %zu back-end messages)\n", a->pos[0],
           c.errors, c.errors == 1 ? "" : "s", c.warnings, c.warnings == 1 ? "" : "s",
           vuf_spec_msg_count(s, VUF_CHAN_FRONTEND), vuf_spec_msg_count(s, VUF_CHAN_BACKEND));
    vuf_spec_free(s);
    return c.errors ? 1 : 0;
}

static void print_line(void *ctx, const char *line)
{
    (void)ctx;
    printf("%s\n", line);
}

static int cmd_diff(const spec_args *a)
{
    if (a->npos != 2) {
        fprintf(stderr, "vufuzz spec diff: expected OLD and NEW\n");
        return 2;
    }
    const vuf_spec *x = vuf_cli_open_spec(a->pos[0]);
    if (!x)
        return 2;
    const vuf_spec *y = vuf_cli_open_spec(a->pos[1]);
    if (!y) {
        vuf_spec_release(x);
        return 2;
    }
    size_t n = vuf_spec_diff(x, y, print_line, NULL);
    printf("%zu difference%s\n", n, n == 1 ? "" : "s");
    vuf_spec_release(x);
    vuf_spec_release(y);
    return n ? 1 : 0;
}

static int cmd_doc(const spec_args *a)
{
    if (!a->format || strcmp(a->format, "md")) {
        fprintf(stderr, "vufuzz spec doc: expected --format md\n");
        return 2;
    }
    const vuf_spec *s = vuf_cli_open_spec(a->spec);
    if (!s)
        return 2;
    FILE *f = a->out ? fopen(a->out, "w") : stdout;
    if (!f) {
        perror(a->out);
        vuf_spec_release(s);
        return 2;
    }
    vuf_spec_render_doc_md(s, vuf_cli_write_file, f);
    int rc = 0;
    if (a->out && fclose(f)) {
        perror(a->out);
        rc = 2;
    }
    vuf_spec_release(s);
    return rc;
}

int vuf_cmd_spec(int argc, char **argv)
{
    if (argc < 2) {
        spec_usage(stderr);
        return 2;
    }
    if (vuf_cli_is_help(argv[1])) {
        spec_usage(stdout);
        return 0;
    }
    spec_args a;
    int rc = parse_args(argc, argv, &a);
    if (rc >= 0)
        return rc;
    const char *sub = argv[1];
    if (!strcmp(sub, "list"))
        return cmd_list(&a);
    if (!strcmp(sub, "show"))
        return cmd_show(&a);
    if (!strcmp(sub, "lint"))
        return cmd_lint(&a);
    if (!strcmp(sub, "diff"))
        return cmd_diff(&a);
    if (!strcmp(sub, "doc"))
        return cmd_doc(&a);
    fprintf(stderr, "vufuzz spec: unknown subcommand '%s'\n", sub);
    spec_usage(stderr);
    return 2;
}
