/* SPDX-License-Identifier: Apache-2.0 */
/* The codec on raw bytes: the first byte picks the channel and sender, the
 * rest is one message. Decode it, check its size and fd rules, print it as a
 * trace line and parse the line back: the round trip must give the same
 * bytes (a lossless text form is a promise of docs/trace-format.md). */
#include "vuf_codec.h"
#include "vuf_trace.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const vuf_spec *s = vuf_spec_default();
    if (!s || size < 1 || size > 1 + VUF_HDR_SIZE + VUF_PAYLOAD_MAX)
        return 0;
    vuf_event ev = {.kind = VUF_EV_MSG,
                    .sender = (vuf_side)(data[0] & 1),
                    .channel = (vuf_channel)((data[0] >> 1) & 1),
                    .data = data + 1,
                    .len = size - 1};
    vuf_msg_view v;
    if (vuf_msg_decode(s, ev.channel, ev.data, ev.len, &v) && v.def) {
        uint64_t exp;
        uint32_t mn, mx;
        vuf_payload_check_size(v.layout, v.def->size_rule, v.payload, v.payload_len, &exp);
        vuf_fd_rule_range(&v.def->fds, v.payload, v.payload_len, &mn, &mx);
    }
    static char line[2 * (VUF_HDR_SIZE + VUF_PAYLOAD_MAX) + 4096];
    int n = vuf_trace_format_event(s, &ev, line, sizeof line);
    if (n < 0 || (size_t)n >= sizeof line)
        return 0;
    vuf_diag d;
    vuf_trace *t = vuf_trace_parse(s, line, (size_t)n, "fuzz", &d);
    if (!t) {
        fprintf(stderr, "printed line does not parse: %s\n%s\n", d.text, line);
        abort();
    }
    const vuf_event *e = vuf_trace_event(t, 0);
    if (!e || e->len != ev.len || memcmp(e->data, ev.data, ev.len) || e->sender != ev.sender ||
        e->channel != ev.channel) {
        fprintf(stderr, "round trip changed the message:\n%s\n", line);
        abort();
    }
    vuf_trace_free(t);
    return 0;
}
