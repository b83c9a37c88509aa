/* SPDX-License-Identifier: Apache-2.0 */
/* The checker on arbitrary conversations. Input: the trace text form when it
 * parses (so the golden traces are meaningful seeds and mutations stay near
 * real sessions), else a binary event stream:
 *   [u8 kind|sender<<2|channel<<3] [u16 len] [len bytes] [u8 nfds] [nfds kinds]
 * The checker must never crash, and its verdict must be deterministic. */
#include "vuf_checker.h"
#include "vuf_trace.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static vuf_trace *binary_events(const uint8_t *d, size_t n)
{
    vuf_trace *t = vuf_trace_new();
    size_t i = 0;
    while (t && i + 3 <= n) {
        vuf_event e = {.kind = (vuf_event_kind)((d[i] & 3) % 3),
                       .sender = (vuf_side)(d[i] >> 2 & 1),
                       .channel = (vuf_channel)(d[i] >> 3 & 1)};
        if (e.kind > VUF_EV_CLOSE)
            e.kind = VUF_EV_MSG;
        size_t len = (size_t)d[i + 1] | (size_t)d[i + 2] << 8;
        i += 3;
        if (len > n - i)
            len = n - i;
        e.data = d + i;
        e.len = len;
        i += len;
        if (i < n) {
            size_t nf = d[i++] % (VUF_EV_MAX_FDS + 1);
            if (nf > n - i)
                nf = n - i;
            uint8_t kinds[VUF_EV_MAX_FDS];
            for (size_t k = 0; k < nf; k++)
                kinds[k] = d[i + k] % VUF_FDKIND_COUNT;
            e.fds = kinds;
            e.nfds = nf;
            i += nf;
            vuf_trace_append(t, &e);
        } else {
            vuf_trace_append(t, &e);
        }
    }
    return t;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const vuf_spec *s = vuf_spec_default();
    if (!s)
        return 0;
    vuf_diag d;
    vuf_trace *t = NULL;
    if (size && !memchr(data, 0, size))
        t = vuf_trace_parse(s, (const char *)data, size, "fuzz", &d);
    if (!t)
        t = binary_events(data, size);
    if (!t)
        return 0;
    static vuf_checker *c;
    if (!c)
        c = vuf_checker_new(s);
    size_t counts[2];
    for (int round = 0; round < 2; round++) {
        vuf_checker_reset(c);
        for (size_t i = 0; i < vuf_trace_count(t); i++)
            vuf_checker_feed(c, vuf_trace_event(t, i));
        vuf_checker_finish(c);
        counts[round] = vuf_checker_violation_count(c);
    }
    if (counts[0] != counts[1]) {
        fprintf(stderr, "nondeterministic verdict: %zu then %zu violations\n", counts[0],
                counts[1]);
        abort();
    }
    vuf_trace_free(t);
    return 0;
}
