/* SPDX-License-Identifier: Apache-2.0 */
/* vufuzz session: session files (docs/session-format.md): encode text to
 * binary, decode binary to text, check. */
#include "cli.h"
#include "vuf_util.h"

#include "vuf_session.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static void usage(FILE *f)
{
    fprintf(f, "usage: vufuzz session encode [--spec FILE] FILE.txt [-o OUT.bin]\n"
               "       vufuzz session decode [--spec FILE] FILE.bin [-o OUT.txt]\n"
               "       vufuzz session check [--spec FILE] FILE...\n\n"
               "Session files are fuzz inputs, corpus seeds and reproducers: a device\n"
               "configuration and the actions the harness performs (docs/session-format.md).\n"
               "The text form is the trace format plus harness actions; the binary form is\n"
               "the protobuf message vuf.Session (fuzz/session.proto).\n\n"
               "  encode   parse text and write the binary form (to stdout without -o, never\n"
               "           to a terminal)\n"
               "  decode   read the binary form and write the canonical text (stdout without -o);\n"
               "           a warning says when the text does not encode back to the same bytes\n"
               "  check    read each FILE (text or binary, detected), build every message and\n"
               "           print 'FILE: N actions' or the error\n\n"
               "  --spec FILE  use this table instead of the built-in one\n"
               "  -o FILE      write the output to FILE\n\n"
               "Exit status: 0 success, 2 bad input or usage (errors as FILE:LINE:COL).\n");
}

static uint8_t *read_all(const char *path, size_t *len)
{
    char err[160];
    uint8_t *buf = vuf_read_file(path, VUF_SESSION_MAX_FILE, len, err, sizeof err);
    if (!buf)
        fprintf(stderr, "%s: error: %s\n", path, err);
    return buf;
}

/* Write to `out` or stdout. Returns 0 or 2. */
static int write_out(const char *out, const void *data, size_t len, bool binary)
{
    if (!out) {
        if (binary && isatty(STDOUT_FILENO)) {
            fprintf(stderr,
                    "vufuzz session: refusing to write binary to a terminal (use -o FILE or a "
                    "redirection)\n");
            return 2;
        }
        if (len && fwrite(data, 1, len, stdout) != len) {
            fprintf(stderr, "vufuzz session: write error on stdout\n");
            return 2;
        }
        return fflush(stdout) ? 2 : 0;
    }
    FILE *f = fopen(out, "wb");
    if (!f) {
        fprintf(stderr, "%s: error: cannot create: %s\n", out, strerror(errno));
        return 2;
    }
    bool ok = (!len || fwrite(data, 1, len, f) == len);
    ok = !fclose(f) && ok;
    if (!ok) {
        fprintf(stderr, "%s: error: write error\n", out);
        return 2;
    }
    return 0;
}

static int do_encode(const vuf_spec *s, const char *in, const char *out)
{
    size_t len;
    uint8_t *text = read_all(in, &len);
    if (!text)
        return 2;
    vuf_diag d;
    Vuf__Session *ses = vuf_session_parse_text(s, (const char *)text, len, in, &d);
    free(text);
    if (!ses) {
        vuf_cli_print_diag(stderr, &d, true);
        return 2;
    }
    size_t blen = 0;
    uint8_t *bin = vuf_session_pack(ses, &blen);
    vuf_session_free(ses);
    if (!bin) {
        fprintf(stderr, "vufuzz session: out of memory\n");
        return 2;
    }
    int rc = write_out(out, bin, blen, true);
    free(bin);
    return rc;
}

static int do_decode(const vuf_spec *s, const char *in, const char *out)
{
    size_t len;
    uint8_t *bin = read_all(in, &len);
    if (!bin)
        return 2;
    Vuf__Session *ses = vuf_session_unpack(bin, len);
    if (!ses) {
        fprintf(stderr, "%s: error: not a binary session (vuf.Session, fuzz/session.proto)\n", in);
        free(bin);
        return 2;
    }
    char *text = vuf_session_format_text(s, ses);
    vuf_session_free(ses);
    if (!text) {
        free(bin);
        fprintf(stderr, "vufuzz session: out of memory\n");
        return 2;
    }
    int rc = write_out(out, text, strlen(text), false);
    /* tell when the text is not the same session: parts the text form cannot
     * express (docs/session-format.md, "Canonical form") */
    vuf_diag d;
    Vuf__Session *back = vuf_session_parse_text(s, text, strlen(text), out ? out : "<stdout>", &d);
    if (!back) {
        fprintf(stderr, "%s: warning: the text does not parse back: ", in);
        vuf_cli_print_diag(stderr, &d, true);
    } else {
        size_t blen = 0;
        uint8_t *again = vuf_session_pack(back, &blen);
        if (again && (blen != len || memcmp(again, bin, len)))
            fprintf(stderr,
                    "%s: warning: not in canonical form: the text encodes to different bytes "
                    "(values the text form cannot express were normalized)\n",
                    in);
        free(again);
        vuf_session_free(back);
    }
    free(text);
    free(bin);
    return rc;
}

static int do_check(const vuf_spec *s, const char *path)
{
    vuf_diag d;
    bool binary;
    Vuf__Session *ses = vuf_session_load_file(s, path, &binary, &d);
    if (!ses) {
        vuf_cli_print_diag(stderr, &d, true);
        return 2;
    }
    vuf_session_wire *w = malloc(sizeof *w);
    if (!w) {
        vuf_session_free(ses);
        fprintf(stderr, "vufuzz session: out of memory\n");
        return 2;
    }
    int rc = 0;
    for (size_t i = 0; i < ses->n_actions && !rc; i++) {
        const Vuf__Action *a = ses->actions[i];
        char err[256];
        const Vuf__Message *m = a->action_case == VUF__ACTION__ACTION_SEND ? a->send
                                : a->action_case == VUF__ACTION__ACTION_BACKEND_SEND
                                    ? a->backend_send
                                    : NULL;
        if (!m)
            continue;
        vuf_channel ch =
            a->action_case == VUF__ACTION__ACTION_SEND ? VUF_CHAN_FRONTEND : VUF_CHAN_BACKEND;
        if (vuf_session_build(s, ch, m, w, err, sizeof err)) {
            fprintf(stderr, "%s: error: action %zu: %s\n", path, i + 1, err);
            rc = 2;
        }
    }
    if (!rc)
        printf("%s: %zu actions\n", path, ses->n_actions);
    free(w);
    vuf_session_free(ses);
    return rc;
}

int vuf_cmd_session(int argc, char **argv)
{
    const char *spec = NULL, *out = NULL, *sub = NULL;
    const char **files = calloc((size_t)argc + 1, sizeof *files);
    size_t nfiles = 0;
    int rc = 2;
    if (!files)
        return 2;
    for (int i = 1; i < argc; i++) {
        if (vuf_cli_is_help(argv[i])) {
            usage(stdout);
            rc = 0;
            goto done;
        } else if (!strcmp(argv[i], "--spec") || !strcmp(argv[i], "-o")) {
            if (i + 1 >= argc) {
                fprintf(stderr, "vufuzz session: %s needs a FILE\n", argv[i]);
                goto done;
            }
            if (argv[i][1] == 'o')
                out = argv[++i];
            else
                spec = argv[++i];
        } else if (argv[i][0] == '-' && argv[i][1]) {
            fprintf(stderr, "vufuzz session: unknown option '%s'\n", argv[i]);
            usage(stderr);
            goto done;
        } else if (!sub) {
            sub = argv[i];
        } else {
            files[nfiles++] = argv[i];
        }
    }
    if (!sub) {
        usage(stderr);
        goto done;
    }
    bool check = !strcmp(sub, "check");
    if (!check && strcmp(sub, "encode") && strcmp(sub, "decode")) {
        fprintf(stderr, "vufuzz session: unknown subcommand '%s' (encode, decode or check)\n", sub);
        goto done;
    }
    if (!nfiles || (!check && nfiles > 1)) {
        fprintf(stderr, "vufuzz session %s: %s\n", sub,
                check ? "needs at least one FILE" : "needs exactly one FILE");
        goto done;
    }
    if (check && out) {
        fprintf(stderr, "vufuzz session check: -o is for encode and decode\n");
        goto done;
    }
    const vuf_spec *s = vuf_cli_open_spec(spec);
    if (!s)
        goto done;
    if (!strcmp(sub, "encode")) {
        rc = do_encode(s, files[0], out);
    } else if (!strcmp(sub, "decode")) {
        rc = do_decode(s, files[0], out);
    } else {
        rc = 0;
        for (size_t i = 0; i < nfiles; i++)
            if (do_check(s, files[i]))
                rc = 2;
    }
    vuf_spec_release(s);
done:
    free(files);
    return rc;
}
