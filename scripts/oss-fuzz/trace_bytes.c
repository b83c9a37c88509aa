/* SPDX-License-Identifier: Apache-2.0 */
/* trace_bytes: wire-byte seeds from trace files, for scripts/oss-fuzz/build.sh.
 * A build-time host tool (linked with the cores, no sanitizers); not installed.
 *
 *   trace_bytes wire OUTDIR TRACE...  one file per message of every trace, in
 *                                     fuzz_wire's input form: a byte
 *                                     (sender | channel << 1), then the header
 *                                     and payload as on the wire
 *   trace_bytes raw OUTDIR TRACE...   one file per trace, in fuzz_raw's input
 *                                     form: the front-end's main-channel
 *                                     messages without fds, concatenated (what
 *                                     a byte stream on the main socket can say)
 *
 * Files are named by a hash of their content, so duplicates collapse. The
 * traces are parsed with the built-in table (trace/vuf_trace.h): the bytes
 * are exactly what the trace lines mean. Exit 0, or 2 with a message. */
#include "vuf_trace.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int write_seed(const char *dir, const char *prefix, const uint8_t *d, size_t n)
{
    uint64_t h = 1469598103934665603ull; /* FNV-1a */
    for (size_t i = 0; i < n; i++)
        h = (h ^ d[i]) * 1099511628211ull;
    char path[4096];
    snprintf(path, sizeof path, "%s/%s-%016llx", dir, prefix, (unsigned long long)h);
    FILE *f = fopen(path, "wb");
    if (!f || fwrite(d, 1, n, f) != n || fclose(f)) {
        fprintf(stderr, "trace_bytes: cannot write %s\n", path);
        return -1;
    }
    return 0;
}

int main(int argc, char **argv)
{
    if (argc < 4 || (strcmp(argv[1], "wire") && strcmp(argv[1], "raw"))) {
        fprintf(stderr, "usage: trace_bytes wire|raw OUTDIR TRACE...\n");
        return 2;
    }
    int raw = !strcmp(argv[1], "raw");
    const vuf_spec *s = vuf_spec_default();
    if (!s) {
        fprintf(stderr, "trace_bytes: the built-in table does not load\n");
        return 2;
    }
    static uint8_t buf[1 << 20];
    for (int a = 3; a < argc; a++) {
        vuf_diag d;
        vuf_trace *t = vuf_trace_load_file(s, argv[a], &d);
        if (!t) {
            fprintf(stderr, "%s:%u:%u: %s\n", d.file, d.line, d.col, d.text);
            return 2;
        }
        size_t n = 0;
        for (size_t i = 0; i < vuf_trace_count(t); i++) {
            const vuf_event *e = vuf_trace_event(t, i);
            if (e->kind != VUF_EV_MSG)
                continue;
            if (raw) {
                if (e->sender != VUF_SIDE_FRONTEND || e->channel != VUF_CHAN_FRONTEND || e->nfds ||
                    n + e->len > sizeof buf)
                    continue;
                memcpy(buf + n, e->data, e->len);
                n += e->len;
            } else if (e->len + 1 <= sizeof buf) {
                buf[0] = (uint8_t)((unsigned)e->sender | (unsigned)e->channel << 1);
                memcpy(buf + 1, e->data, e->len);
                if (write_seed(argv[2], "msg", buf, e->len + 1))
                    return 2;
            }
        }
        if (raw && n && write_seed(argv[2], "main", buf, n))
            return 2;
        vuf_trace_free(t);
    }
    return 0;
}
