/* SPDX-License-Identifier: Apache-2.0 */
/* The spec table loader on arbitrary text: parse, lint, render, and diff
 * against the built-in table. Any crash, leak or UB is a finding. */
#include "vuf_spec.h"

#include <stddef.h>
#include <stdint.h>

static void sink(void *ctx, const char *text)
{
    (void)ctx;
    (void)text;
}

static void sink_diag(void *ctx, const vuf_diag *d, bool is_error)
{
    (void)ctx;
    (void)d;
    (void)is_error;
}

static void sink_line(void *ctx, const char *line)
{
    (void)ctx;
    (void)line;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    vuf_diag d;
    vuf_spec *s = vuf_spec_parse((const char *)data, size, "fuzz.spec", &d);
    if (!s)
        return 0;
    vuf_spec_lint(s, sink_diag, NULL);
    vuf_spec_render_doc_md(s, sink, NULL);
    const vuf_spec *def = vuf_spec_default();
    if (def)
        vuf_spec_diff(def, s, sink_line, NULL);
    vuf_spec_free(s);
    return 0;
}
