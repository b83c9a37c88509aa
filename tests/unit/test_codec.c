/* SPDX-License-Identifier: Apache-2.0 */
/* Codec and trace format: derived fields, size and fd rules, and lossless
 * text <-> wire round trips. */
#include "vuf_codec.h"
#include "vuf_spec.h"
#include "vuf_test.h"
#include "vuf_trace.h"

#include <stdlib.h>
#include <string.h>

static const vuf_spec *S;

/* The built-in table, for every case. */
static bool table(void)
{
    S = vuf_spec_default();
    CHECK(S != NULL, "built-in table");
    return S != NULL;
}

/* Parse one line, print it, parse the print: bytes and fds must be equal. */
static void roundtrip(const char *line, const char *expect_print)
{
    vuf_diag d;
    vuf_trace *t = vuf_trace_parse(S, line, strlen(line), "rt", &d);
    CHECK(t != NULL, "parse '%s': %u:%u %s", line, d.line, d.col, d.text);
    if (!t)
        return;
    const vuf_event *e = vuf_trace_event(t, 0);
    char out[8192];
    vuf_trace_format_event(S, e, out, sizeof out);
    if (expect_print)
        CHECK(!strcmp(out, expect_print), "print:\n  got  '%s'\n  want '%s'", out, expect_print);
    vuf_trace *t2 = vuf_trace_parse(S, out, strlen(out), "rt2", &d);
    CHECK(t2 != NULL, "reparse '%s': %s", out, d.text);
    if (t2) {
        const vuf_event *e2 = vuf_trace_event(t2, 0);
        CHECK(e->kind == e2->kind && e->sender == e2->sender && e->channel == e2->channel &&
                  e->len == e2->len && !memcmp(e->data, e2->data, e->len) && e->nfds == e2->nfds &&
                  !memcmp(e->fds, e2->fds, e->nfds),
              "round trip of '%s' changed the event", line);
        vuf_trace_free(t2);
    }
    vuf_trace_free(t);
}

static void parse_fails(const char *line, unsigned col, const char *frag)
{
    vuf_diag d;
    vuf_trace *t = vuf_trace_parse(S, line, strlen(line), "bad.trace", &d);
    CHECK(t == NULL, "'%s' should not parse", line);
    vuf_trace_free(t);
    if (t)
        return;
    CHECK(d.line == 1 && d.col == col, "'%s': error at %u:%u, want 1:%u (%s)", line, d.line, d.col,
          col, d.text);
    CHECK(strstr(d.text, frag) != NULL, "'%s': '%s' lacks '%s'", line, d.text, frag);
}

static const vuf_event *one(vuf_trace **t, const char *line)
{
    vuf_diag d;
    *t = vuf_trace_parse(S, line, strlen(line), "x", &d);
    CHECK(*t != NULL, "parse '%s': %s", line, d.text);
    return *t ? vuf_trace_event(*t, 0) : NULL;
}

VUF_TEST(header)
{
    /* header encode/decode */
    vuf_hdr h = {.request = 21, .flags = 0x9, .size = 0}, h2;
    uint8_t hb[12];
    vuf_hdr_encode(&h, hb);
    vuf_hdr_decode(hb, &h2);
    CHECK(h2.request == 21 && h2.flags == 9 && h2.size == 0, "header round trip");
}

VUF_TEST(derived_fields_and_rules)
{
    if (!table())
        return;
    /* derived count: nregions and size computed from the regions given */
    vuf_trace *t;
    const vuf_event *e = one(&t, "F>B main SET_MEM_TABLE regions[0].size=0x1000 "
                                 "regions[1].size=0x2000 fds=memfd,memfd");
    if (e) {
        vuf_msg_view v;
        CHECK(vuf_msg_decode(S, VUF_CHAN_FRONTEND, e->data, e->len, &v), "decode");
        CHECK(v.hdr.size == 8 + 64 && v.payload_len == 72, "size 72, got %u", v.hdr.size);
        CHECK(vuf_payload_count(v.layout, v.payload, v.payload_len) == 2, "nregions derived = 2");
        uint32_t mn, mx;
        CHECK(vuf_fd_rule_range(&v.def->fds, v.payload, v.payload_len, &mn, &mx) && mn == 2 &&
                  mx == 2,
              "fd rule count:nregions = 2");
        uint64_t exp;
        CHECK(vuf_payload_check_size(v.layout, v.def->size_rule, v.payload, v.payload_len, &exp) ==
                      VUF_SZ_OK &&
                  exp == 72,
              "size rule ok");
    }
    vuf_trace_free(t);
    /* explicit override of the derived field survives */
    e = one(&t, "F>B main SET_MEM_TABLE nregions=9 regions[0].size=0x1000 fds=memfd");
    if (e) {
        vuf_msg_view v;
        vuf_msg_decode(S, VUF_CHAN_FRONTEND, e->data, e->len, &v);
        uint64_t exp;
        CHECK(vuf_payload_check_size(v.layout, v.def->size_rule, v.payload, v.payload_len, &exp) ==
                  VUF_SZ_COUNT_OVER,
              "nregions 9 is over the max of 8");
    }
    vuf_trace_free(t);
    /* NOFD: bit 8 set means no fd expected */
    e = one(&t, "F>B main SET_VRING_CALL u64=0x101");
    if (e) {
        vuf_msg_view v;
        vuf_msg_decode(S, VUF_CHAN_FRONTEND, e->data, e->len, &v);
        uint32_t mn = 9, mx = 9;
        CHECK(vuf_fd_rule_range(&v.def->fds, v.payload, v.payload_len, &mn, &mx) && mn == 0 &&
                  mx == 0,
              "NOFD -> 0 fds");
    }
    vuf_trace_free(t);
    /* the same line with a size that disagrees: SHORT / LONG */
    e = one(&t, "F>B main SET_VRING_NUM raw=00000000");
    if (e) {
        vuf_msg_view v;
        vuf_msg_decode(S, VUF_CHAN_FRONTEND, e->data, e->len, &v);
        CHECK(vuf_payload_check_size(v.layout, v.def->size_rule, v.payload, v.payload_len, NULL) ==
                  VUF_SZ_SHORT,
              "4 bytes for vring_state is short");
    }
    vuf_trace_free(t);
}

VUF_TEST(round_trips)
{
    if (!table())
        return;
    /* lossless round trips, including malformed messages */
    roundtrip("F>B main GET_FEATURES", "F>B main GET_FEATURES");
    roundtrip("B>F main GET_FEATURES reply u64=0x150000000",
              "B>F main GET_FEATURES reply u64=0x150000000");
    roundtrip("F>B main SET_VRING_KICK need_reply u64=0 fds=eventfd",
              "F>B main SET_VRING_KICK need_reply u64=0 fds=eventfd");
    roundtrip("F>B main SET_SLAVE_REQ_FD need_reply fds=socket",
              "F>B main SET_BACKEND_REQ_FD need_reply fds=socket");
    roundtrip("F>B main SET_MEM_TABLE regions[0].guest_addr=0 regions[0].size=0x10000000 "
              "regions[0].user_addr=0x7f0000000000 regions[0].mmap_offset=0 fds=memfd",
              "F>B main SET_MEM_TABLE padding=0 regions[0].guest_addr=0 "
              "regions[0].size=0x10000000 regions[0].user_addr=0x7f0000000000 "
              "regions[0].mmap_offset=0 fds=memfd");
    roundtrip("F>B main SET_MEM_TABLE nregions=3 regions[0].size=1", NULL);
    roundtrip("F>B main SET_VRING_NUM hdr.size=100 index=0 num=256", NULL);
    roundtrip("F>B main SET_VRING_NUM raw=0102", "F>B main SET_VRING_NUM raw=0102");
    roundtrip("F>B main 99 raw=00ff", "F>B main 99 raw=00ff");
    roundtrip("F>B main GET_FEATURES hdr.flags=0x31", "F>B main GET_FEATURES hdr.flags=0x31");
    roundtrip("F>B main GET_FEATURES hdr.flags=0x2", "F>B main GET_FEATURES hdr.flags=0x2");
    roundtrip("B>F backend BACKEND_IOTLB_MSG need_reply iova=0x1000 perm=1 type=1", NULL);
    roundtrip("F>B backend GET_FEATURES", "F>B backend BACKEND_IOTLB_MSG raw=");
    roundtrip("F>B main SET_INFLIGHT_FD mmap_size=0x1000 num_queues=1 queue_size=128 "
              "pad@20=01000000 fds=memfd",
              NULL);
    roundtrip("F>B main GET_CONFIG offset=0 flags=0 payload=00112233", NULL);
    roundtrip("F>B main GET_CONFIG offset=0 size=60 flags=0", NULL);
    roundtrip("B>F main short=0102", "B>F main short=0102");
    roundtrip("open backend", "open backend");
    /* a u64 tail given as hex bytes (found by fuzz_wire): whole elements */
    roundtrip(
        "B>F main GET_SHMEM_CONFIG reply nregions=3 memory_sizes=01000000000000000200000000000000",
        NULL);
    parse_fails("B>F main GET_SHMEM_CONFIG reply memory_sizes=0100", 33, "whole 8-byte elements");
    roundtrip("F>B main SET_VRING_NUM raw=", "F>B main SET_VRING_NUM raw=");
    roundtrip("close main by=B", "close main by=B");
    roundtrip("F>B main SET_VRING_ADDR index=1 flags=0 desc=0x1000 used=0x2000 avail=0x3000 "
              "log_guest_addr=0 fds=devnull,socket-closed,socket-listen,socket-dgram,pipe,file",
              NULL);
}

VUF_TEST(parse_errors)
{
    if (!table())
        return;
    /* bad input: file:line:col and what was expected, never a crash */
    parse_fails("X>Y main GET_FEATURES", 1, "expected F>B, B>F, open, close, note or device");
    parse_fails("F>B side GET_FEATURES", 5, "bad channel 'side'");
    parse_fails("F>B main NOT_A_MESSAGE", 10, "unknown message 'NOT_A_MESSAGE'");
    parse_fails("F>B main SET_VRING_NUM index=0 nums=3", 32, "unknown field 'nums'");
    parse_fails("F>B main SET_VRING_NUM index=0x100000000", 24, "does not fit");
    parse_fails("F>B main SET_VRING_KICK u64=0 fds=eventfd,bogus", 43, "unknown fd kind 'bogus'");
    parse_fails("F>B main GET_FEATURES index=1", 23, "takes no payload fields");
    parse_fails("F>B main SET_VRING_NUM raw=0 index=1", 28, "bad raw bytes");
    parse_fails("F>B main SET_VRING_NUM raw=00 index=1", 24, "exclusive");
    parse_fails("F>B main SET_MEM_TABLE regions[8].size=1", 24, "beyond its max");
    parse_fails("close main by=X", 12, "expected by=F or by=B");
}

/* Device-side events (note) and the device line: their syntax, printed as
 * parsed, with the rule and the text kept. */
VUF_TEST(notes_and_device)
{
    if (!table())
        return;
    const char *lines[] = {
        "note main refuse by=B rule=FD-COUNT -- 2 fds, expected 1 # not a comment",
        "note backend timeout by=B -- no reply to BACKEND_IOTLB_MSG within 1000 ms",
        "note backend late by=B",
        "note main refuse by=B",
    };
    for (size_t i = 0; i < sizeof lines / sizeof lines[0]; i++) {
        vuf_diag d;
        vuf_trace *t = vuf_trace_parse(S, lines[i], strlen(lines[i]), "n", &d);
        CHECK(t != NULL, "'%s': %s", lines[i], d.text);
        if (!t)
            continue;
        const vuf_event *e = vuf_trace_event(t, 0);
        CHECK_EQ(e->kind, VUF_EV_NOTE, "%s", lines[i]);
        char out[512];
        vuf_trace_format_event(S, e, out, sizeof out);
        CHECK_STREQ(out, lines[i], "printed as parsed");
        vuf_trace_free(t);
    }
    vuf_trace *t;
    const vuf_event *e = one(&t, "note main refuse by=B rule=VRING-INDEX -- vring 9 out of range");
    if (e) {
        CHECK_EQ(e->note, VUF_NOTE_REFUSE, "refuse");
        CHECK_EQ(e->sender, VUF_SIDE_BACKEND, "by the back-end");
        CHECK_STREQ(e->rule, "VRING-INDEX", "rule");
        CHECK_STREQ(e->text, "vring 9 out of range", "text");
    }
    vuf_trace_free(t);
    const char *dev = "device net\nopen main\n";
    vuf_diag d;
    t = vuf_trace_parse(S, dev, strlen(dev), "d", &d);
    CHECK(t != NULL, "device line: %s", d.text);
    unsigned line = 0;
    CHECK_STREQ(t ? vuf_trace_device(t, &line) : NULL, "net", "the device");
    CHECK_EQ(line, 1, "its line");
    CHECK_EQ(t ? vuf_trace_count(t) : 0, 1, "not an event");
    vuf_trace_free(t);
    parse_fails("device toaster", 8, "unknown device 'toaster' (expected blk, net");
    parse_fails("device", 7, "expected 'device NAME'");
    parse_fails("note main explode by=B", 11, "unknown note 'explode'");
    parse_fails("note main refuse", 17, "needs by=F or by=B");
    parse_fails("note main timeout by=B rule=X", 24, "unexpected 'rule=X'");
    parse_fails("note side refuse by=B", 6, "expected a channel");
}

VUF_TEST_MAIN()
