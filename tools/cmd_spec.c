/* SPDX-License-Identifier: Apache-2.0 */
/* vufuzz spec list|show|lint|diff|doc: the table, for people and spec authors. */
#include "cli.h"
#include "vuf_util.h"

#include <stdlib.h>
#include <string.h>

static const char usage_line[] =
    "usage: vufuzz spec list|show|lint|diff|doc [OPTIONS] [ARGS] (vufuzz spec --help)";

static void spec_usage(FILE *f)
{
    fprintf(f, "usage: vufuzz spec list [--channel frontend|backend] [--spec FILE]\n"
               "       vufuzz spec show NAME_OR_ID [--channel frontend|backend] [--spec FILE]\n"
               "       vufuzz spec lint FILE...\n"
               "       vufuzz spec diff [--json] OLD NEW\n"
               "       vufuzz spec doc [--format md] [--spec FILE] [-o FILE]\n\n"
               "list   every message of the table (both channels unless --channel)\n"
               "show   everything the table says of one message, with the rst sentence and\n"
               "       verb of each gate and check; NAME may be a former name\n"
               "       (SET_SLAVE_REQ_FD); a numeric ID is looked up on --channel (default\n"
               "       frontend), or written CHANNEL:ID (backend:1)\n"
               "lint   load each FILE and check it for contradictions (a gate's verb that is not\n"
               "       its sentence's is one); prints FILE:LINE:COL diagnostics and one summary\n"
               "       line per file; exit 0 clean, 1 errors, 2 unreadable\n"
               "diff   semantic difference between two tables (message added, gate changed,\n"
               "       fd rule changed, ...), --json for a report; exit 0 same, 1 different,\n"
               "       2 error\n"
               "doc    render the message reference (md, the only format): regenerate\n"
               "       docs/messages.md with  build/vufuzz spec doc -o docs/messages.md\n");
}

typedef struct {
    const char *spec;
    const char *channel;
    const char *format;
    const char *out;
    bool json;
    const char **pos;
    int npos;
} spec_args;

/* Options after the subcommand: -1 to go on, else the exit status. */
static int parse_args(int argc, char **argv, spec_args *a)
{
    static const vuf_cli_opt opts[] = {{"--spec", "FILE"}, {"--channel", "frontend|backend"},
                                       {"--format", "md"}, {"-o", "FILE"},
                                       {"--json", NULL},   {NULL, NULL}};
    memset(a, 0, sizeof *a);
    a->pos = calloc((size_t)argc + 1, sizeof *a->pos);
    if (!a->pos)
        return 2;
    vuf_cli_parser p;
    char cmd[32];
    snprintf(cmd, sizeof cmd, "spec %s", argv[1]);
    vuf_cli_init(&p, cmd, usage_line, opts, argc - 1, argv + 1);
    const char *val;
    for (int k; (k = vuf_cli_next(&p, &val)) != VUF_CLI_END;) {
        if (k == VUF_CLI_HELP) {
            spec_usage(stdout);
            return 0;
        }
        if (k == VUF_CLI_ERROR)
            return 2;
        if (k == VUF_CLI_POS)
            a->pos[a->npos++] = val;
        else if (k == 4)
            a->json = true;
        else
            *(k == 0 ? &a->spec : k == 1 ? &a->channel : k == 2 ? &a->format : &a->out) = val;
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
    uint64_t id;
    if (vuf_parse_u64(key, &id))
        return id <= UINT32_MAX ? vuf_spec_msg(s, c, (uint32_t)id) : NULL;
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
    if (a->npos < 1) {
        vuf_cli_usage_error("spec lint", "usage: vufuzz spec lint FILE...", "no FILE");
        return 2;
    }
    int rc = 0;
    size_t errors = 0, warnings = 0;
    for (int i = 0; i < a->npos; i++) {
        vuf_diag d;
        vuf_spec *s = vuf_spec_load_file(a->pos[i], &d);
        if (!s) {
            vuf_cli_print_diag(stdout, &d, true);
            printf("%s: 1 error, 0 warnings\n", a->pos[i]);
            errors++;
            rc = !d.line || rc == 2 ? 2 : 1; /* unreadable: 2; a load error: 1 */
            continue;
        }
        lint_count c = {0};
        vuf_spec_lint(s, lint_print, &c);
        printf("%s: %zu error%s, %zu warning%s (%zu front-end and %zu back-end messages)\n",
               a->pos[i], c.errors, vuf_plural(c.errors), c.warnings, vuf_plural(c.warnings),
               vuf_spec_msg_count(s, VUF_CHAN_FRONTEND), vuf_spec_msg_count(s, VUF_CHAN_BACKEND));
        vuf_spec_free(s);
        errors += c.errors;
        warnings += c.warnings;
        if (c.errors && rc == 0)
            rc = 1;
    }
    if (a->npos > 1)
        printf("total: %d files, %zu error%s, %zu warning%s\n", a->npos, errors, vuf_plural(errors),
               warnings, vuf_plural(warnings));
    return rc;
}

typedef struct {
    vuf_json *j; /* NULL: text */
} diff_out;

static void diff_line(void *ctx, const char *line)
{
    diff_out *o = ctx;
    if (!o->j) {
        printf("%s\n", line);
        return;
    }
    char change[2] = {line[0], 0};
    vuf_json_object(o->j, NULL);
    vuf_json_str(o->j, "change", change); /* + added, - removed, ~ changed */
    vuf_json_str(o->j, "text", line[0] && line[1] == ' ' ? line + 2 : line);
    vuf_json_end(o->j);
}

static int cmd_diff(const spec_args *a)
{
    if (a->npos != 2) {
        vuf_cli_usage_error("spec diff", "usage: vufuzz spec diff [--json] OLD NEW",
                            "expected OLD and NEW");
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
    vuf_json j;
    diff_out o = {.j = a->json ? &j : NULL};
    if (o.j) {
        vuf_json_init(&j, stdout);
        vuf_json_object(&j, NULL);
        vuf_cli_json_meta(&j); /* the table: NEW, the last one opened */
        vuf_json_str(&j, "old", a->pos[0]);
        vuf_json_str(&j, "new", a->pos[1]);
        vuf_json_array(&j, "differences");
    }
    size_t n = vuf_spec_diff(x, y, diff_line, &o);
    if (o.j) {
        vuf_json_end(&j);
        vuf_json_u64(&j, "count", n);
        vuf_json_end(&j);
        vuf_json_finish(&j);
    } else {
        printf("%zu difference%s\n", n, vuf_plural(n));
    }
    vuf_spec_release(x);
    vuf_spec_release(y);
    return n ? 1 : 0;
}

static int cmd_doc(const spec_args *a)
{
    if (a->format && strcmp(a->format, "md")) {
        vuf_cli_usage_error("spec doc",
                            "usage: vufuzz spec doc [--format md] [--spec FILE] [-o FILE]",
                            "unknown format '%s' (md is the only one)", a->format);
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
        return vuf_cli_usage_error("spec", usage_line, "no subcommand");
    }
    if (vuf_cli_is_help(argv[1])) {
        spec_usage(stdout);
        return 0;
    }
    static const struct {
        const char *name;
        int (*fn)(const spec_args *);
    } subs[] = {{"list", cmd_list},
                {"show", cmd_show},
                {"lint", cmd_lint},
                {"diff", cmd_diff},
                {"doc", cmd_doc}};
    for (size_t i = 0; i < sizeof subs / sizeof subs[0]; i++) {
        if (strcmp(argv[1], subs[i].name))
            continue;
        spec_args a;
        int rc = parse_args(argc, argv, &a);
        if (rc < 0)
            rc = subs[i].fn(&a);
        free(a.pos);
        return rc;
    }
    return vuf_cli_usage_error("spec", usage_line, "unknown subcommand '%s'", argv[1]);
}
