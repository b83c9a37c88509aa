/* SPDX-License-Identifier: Apache-2.0 */
/* vufuzz trace print FILE...: a conversation for people, one event per
 * block, with message names, the decoded header and one field per line. */
#include "cli.h"
#include "vuf_codec.h"
#include "vuf_trace.h"
#include "vuf_util.h"

#include <stdlib.h>
#include <string.h>

static const char usage_line[] = "usage: vufuzz trace print|canon [--spec FILE] FILE...";

static void usage(FILE *f)
{
    fprintf(f,
            "%s\n\n"
            "print  conversations in the trace format (docs/trace-format.md) for people:\n"
            "       each event with its line, sender, channel, message name and id, request\n"
            "       or reply, flags, payload size and fds, then one decoded field per line (a\n"
            "       count field the payload agrees with is left out, as in the trace). Device\n"
            "       notes show who refused what, and why.\n"
            "canon  the same conversations in the trace format as vufuzz writes it: names\n"
            "       and fields for numeric ids and raw= bytes (lossless: the same wire bytes\n"
            "       and fd kinds); comments are dropped.\n\n"
            "  --spec FILE  the table to decode with (default: built-in)\n\n"
            "Exit status: 0 printed, 2 a file that does not read or parse.\n",
            usage_line);
}

static const char *sender_str(vuf_side s)
{
    return s == VUF_SIDE_BACKEND ? "B>F" : "F>B";
}

static const char *chan_str(vuf_channel c)
{
    return c == VUF_CHAN_BACKEND ? "backend" : "main";
}

/* "name=value name=value" from the codec's payload formatter, one per line. */
static void print_fields(const char *fields)
{
    char *copy = strdup(fields);
    if (!copy)
        return;
    size_t w = 0;
    for (char *save = NULL, *t = strtok_r(copy, " ", &save); t; t = strtok_r(NULL, " ", &save)) {
        char *eq = strchr(t, '=');
        size_t k = eq ? (size_t)(eq - t) : strlen(t);
        if (k > w)
            w = k;
    }
    free(copy);
    copy = strdup(fields);
    if (!copy)
        return;
    for (char *save = NULL, *t = strtok_r(copy, " ", &save); t; t = strtok_r(NULL, " ", &save)) {
        char *eq = strchr(t, '=');
        if (!eq) {
            printf("      %s\n", t);
            continue;
        }
        *eq = 0;
        size_t vl = strlen(eq + 1);
        if (vl > 96)
            printf("      %-*s  %.96s... (%zu hex digits)\n", (int)w, t, eq + 1, vl);
        else
            printf("      %-*s  %s\n", (int)w, t, eq + 1);
    }
    free(copy);
}

static void print_msg(const vuf_spec *s, const char *file, const vuf_event *ev)
{
    vuf_msg_view v;
    printf("%s:%u  %s %-7s ", file, ev->line, sender_str(ev->sender), chan_str(ev->channel));
    if (!vuf_msg_decode(s, ev->channel, ev->data, ev->len, &v)) {
        printf("%zu byte%s, shorter than a header\n", ev->len, vuf_plural(ev->len));
        return;
    }
    printf("%s (id %u) %s", v.def ? v.def->name : "unknown", v.hdr.request,
           v.is_reply ? "reply" : "request");
    if ((v.hdr.flags & VUF_F_VERSION_MASK) != VUF_F_VERSION)
        printf(", version %u", v.hdr.flags & VUF_F_VERSION_MASK);
    if (v.hdr.flags & VUF_F_NEED_REPLY)
        printf(", need_reply");
    if (v.hdr.flags & ~VUF_F_KNOWN)
        printf(", flags 0x%x", v.hdr.flags);
    printf(", %zu byte%s", v.payload_len, vuf_plural(v.payload_len));
    if (v.hdr.size != v.payload_len)
        printf(" (the header says %u)", v.hdr.size);
    if (ev->nfds) {
        printf(", %zu fd%s:", ev->nfds, vuf_plural(ev->nfds));
        for (size_t i = 0; i < ev->nfds; i++)
            printf("%s%s", i ? "," : " ", vuf_fdkind_name((vuf_fdkind)ev->fds[i]));
    }
    printf("\n");
    if (!v.payload_len)
        return;
    /* a reply that is explicit only in some states (reply-always-if): 8 bytes
     * read as the ack they most often are */
    if (v.is_reply && v.def && v.def->reply != VUF_REPLY_ALWAYS &&
        v.def->reply_cond != VUF_COND_NONE && v.payload_len == 8)
        v.layout = vuf_reply_layout(s, v.def, false);
    char fields[16384];
    int k = v.layout ? vuf_payload_format(v.layout, v.payload, v.payload_len, fields, sizeof fields)
                     : -1;
    if (k >= 0 && k < (int)sizeof fields) {
        printf("    %s:\n", v.layout->name);
        print_fields(fields);
        return;
    }
    char *hex = malloc(2 * v.payload_len + 1);
    if (hex) {
        vuf_hex_encode(v.payload, v.payload_len, hex, 2 * v.payload_len + 1);
        printf("    raw (the bytes do not fit %s):\n      %.96s%s\n",
               v.layout ? v.layout->name : "any layout", hex, strlen(hex) > 96 ? "..." : "");
        free(hex);
    }
}

static void print_event(const vuf_spec *s, const char *file, const vuf_event *ev)
{
    static const char *const notes[] = {[VUF_NOTE_NONE] = "note",
                                        [VUF_NOTE_REFUSE] = "refused the latest request",
                                        [VUF_NOTE_TIMEOUT] = "stopped waiting for a reply",
                                        [VUF_NOTE_LATE] = "ignored a late reply"};
    const char *side = vuf_side_name(ev->sender);
    switch (ev->kind) {
    case VUF_EV_OPEN:
        printf("%s:%u  the %s channel opens\n", file, ev->line, chan_str(ev->channel));
        break;
    case VUF_EV_CLOSE:
        printf("%s:%u  the %s closes the %s channel\n", file, ev->line, side,
               chan_str(ev->channel));
        break;
    case VUF_EV_NOTE:
        printf("%s:%u  the %s %s on the %s channel", file, ev->line, side,
               ev->note <= VUF_NOTE_LATE ? notes[ev->note] : "note", chan_str(ev->channel));
        if (ev->rule)
            printf(", rule %s", ev->rule);
        printf("%s%s\n", ev->text ? ": " : "", ev->text ? ev->text : "");
        break;
    case VUF_EV_MSG:
        print_msg(s, file, ev);
        break;
    }
}

int vuf_cmd_trace(int argc, char **argv)
{
    static const vuf_cli_opt opts[] = {{"--spec", "FILE"}, {NULL, NULL}};
    bool canon = argc >= 2 && !strcmp(argv[1], "canon");
    if (argc < 2 || (strcmp(argv[1], "print") && !canon)) {
        if (argc >= 2 && vuf_cli_is_help(argv[1])) {
            usage(stdout);
            return 0;
        }
        if (argc < 2)
            return vuf_cli_usage_error("trace", usage_line, "no subcommand (print or canon)");
        return vuf_cli_usage_error("trace", usage_line, "unknown subcommand '%s'", argv[1]);
    }
    const char *spec = NULL, *val;
    const char **files = calloc((size_t)argc, sizeof *files);
    size_t n = 0;
    if (!files)
        return 2;
    vuf_cli_parser p;
    vuf_cli_init(&p, canon ? "trace canon" : "trace print", usage_line, opts, argc - 1, argv + 1);
    int rc = 0;
    for (int k; (k = vuf_cli_next(&p, &val)) != VUF_CLI_END;) {
        if (k == VUF_CLI_HELP) {
            usage(stdout);
            free(files);
            return 0;
        }
        if (k == VUF_CLI_ERROR) {
            free(files);
            return 2;
        }
        if (k == VUF_CLI_POS)
            files[n++] = val;
        else
            spec = val;
    }
    if (!n) {
        free(files);
        return vuf_cli_usage_error("trace print", usage_line, "no FILE");
    }
    const vuf_spec *s = vuf_cli_open_spec(spec);
    if (!s) {
        free(files);
        return 2;
    }
    for (size_t i = 0; i < n; i++) {
        vuf_diag d;
        vuf_trace *t = vuf_trace_load_file(s, files[i], &d);
        if (!t) {
            vuf_cli_print_diag(stderr, &d, true);
            rc = 2;
            continue;
        }
        unsigned dl;
        const char *dev = vuf_trace_device(t, &dl);
        if (dev && canon)
            printf("device %s\n", dev);
        else if (dev)
            printf("%s:%u  device %s\n", files[i], dl, dev);
        for (size_t e = 0; e < vuf_trace_count(t); e++) {
            if (!canon) {
                print_event(s, files[i], vuf_trace_event(t, e));
                continue;
            }
            int n = vuf_trace_format_event(s, vuf_trace_event(t, e), NULL, 0);
            char *line = n >= 0 ? malloc((size_t)n + 1) : NULL;
            if (line) {
                vuf_trace_format_event(s, vuf_trace_event(t, e), line, (size_t)n + 1);
                printf("%s\n", line);
                free(line);
            }
        }
        vuf_trace_free(t);
    }
    vuf_spec_release(s);
    free(files);
    return rc;
}
