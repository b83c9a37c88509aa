/* SPDX-License-Identifier: Apache-2.0 */
/* Checker state tracking and determinism, fed events built directly. */
#include "vuf_checker.h"
#include "vuf_codec.h"
#include "vuf_test.h"
#include "vuf_trace.h"

#include <string.h>

static const char *session = "open main\n"
                             "F>B main GET_FEATURES\n"
                             "B>F main GET_FEATURES reply u64=0x140000000\n"
                             "F>B main GET_PROTOCOL_FEATURES\n"
                             "B>F main GET_PROTOCOL_FEATURES reply u64=0x29\n"
                             "F>B main SET_PROTOCOL_FEATURES u64=0x29\n"
                             "F>B main GET_QUEUE_NUM\n"
                             "B>F main GET_QUEUE_NUM reply u64=4\n"
                             "F>B main SET_FEATURES u64=0x140000000\n"
                             "F>B main SET_BACKEND_REQ_FD need_reply fds=socket\n"
                             "B>F main SET_BACKEND_REQ_FD reply u64=0\n"
                             "F>B main SET_VRING_NUM index=7 num=8\n" /* VRING-INDEX: 4 queues */
                             "F>B main SET_VRING_CALL u64=0x100 fds=eventfd\n" /* FD-NOFD */
                             "F>B main GET_FEATURES\n"; /* REPLY-MISSING at finish */

static void feed_all(vuf_checker *c, const vuf_trace *t)
{
    for (size_t i = 0; i < vuf_trace_count(t); i++)
        vuf_checker_feed(c, vuf_trace_event(t, i));
    vuf_checker_finish(c);
}

/* Judge a conversation from scratch; its violations must be want[0..n). */
static void expect_rules(vuf_checker *c, const char *what, const char *text,
                         const char *const *want, size_t n)
{
    vuf_diag d;
    vuf_trace *t = vuf_trace_parse(vuf_spec_default(), text, strlen(text), what, &d);
    CHECK(t != NULL, "%s parses: %s", what, d.text);
    if (!t)
        return;
    vuf_checker_reset(c);
    feed_all(c, t);
    size_t got = vuf_checker_violation_count(c);
    CHECK(got == n, "%s: %zu violations, want %zu", what, got, n);
    for (size_t i = 0; i < got && i < n; i++)
        CHECK(!strcmp(vuf_checker_violation(c, i)->rule->id, want[i]),
              "%s: violation %zu is %s, want %s", what, i, vuf_checker_violation(c, i)->rule->id,
              want[i]);
    vuf_trace_free(t);
}

int main(void)
{
    const vuf_spec *s = vuf_spec_default();
    vuf_diag d;
    vuf_trace *t = vuf_trace_parse(s, session, strlen(session), "session", &d);
    CHECK(t != NULL, "parse: %s", d.text);
    if (!t)
        TEST_END();
    vuf_checker *c = vuf_checker_new(s);
    feed_all(c, t);
    vuf_checker_state st;
    vuf_checker_state_get(c, &st);
    CHECK(st.features_offered_known && st.features_offered == 0x140000000ull, "offered");
    CHECK(st.features_acked_known && st.features_acked == 0x140000000ull, "acked");
    CHECK(st.protocol_offered == 0x29 && st.protocol_acked == 0x29, "protocol features");
    CHECK(st.queue_num == 4, "queue_num %u", st.queue_num);
    CHECK(st.backend_channel, "back-end channel handed over");
    size_t n = vuf_checker_violation_count(c);
    const char *want[] = {"VRING-INDEX", "FD-NOFD", "REPLY-MISSING"};
    CHECK(n == 3, "3 violations, got %zu", n);
    for (size_t i = 0; i < n && i < 3; i++) {
        const vuf_violation *v = vuf_checker_violation(c, i);
        CHECK(!strcmp(v->rule->id, want[i]), "violation %zu is %s, want %s", i, v->rule->id,
              want[i]);
    }
    const vuf_violation *v0 = vuf_checker_violation(c, 0);
    CHECK(v0 && v0->side == VUF_SIDE_FRONTEND && v0->event_index == 11 && v0->line == 12 &&
              !strcmp(v0->msg, "SET_VRING_NUM") && v0->rule->level == VUF_MUST,
          "violation carries side, index, line, message");
    const vuf_violation *v2 = vuf_checker_violation(c, 2);
    CHECK(v2 && v2->side == VUF_SIDE_BACKEND, "missing reply blamed on the back-end");
    CHECK(vuf_checker_must_count(c, VUF_SIDE_FRONTEND) == 2, "2 MUST by the front-end");

    /* determinism: reset and feed again gives the same violations */
    vuf_violation first[8];
    for (size_t i = 0; i < n && i < 8; i++)
        first[i] = *vuf_checker_violation(c, i);
    vuf_checker_reset(c);
    vuf_checker_state_get(c, &st);
    CHECK(!st.features_offered_known && !st.backend_channel, "reset clears state");
    feed_all(c, t);
    CHECK(vuf_checker_violation_count(c) == n, "same count after reset");
    for (size_t i = 0; i < n && i < 8; i++)
        CHECK(!memcmp(&first[i], vuf_checker_violation(c, i), sizeof first[i]),
              "violation %zu identical", i);

    /* a failed request has no effect: a NACKed SET_PROTOCOL_FEATURES leaves
     * INBAND_NOTIFICATIONS unnegotiated (VRING_KICK is then a gate
     * violation), a NACKed SET_MEM_TABLE leaves the IOTLB range unmapped */
    static const char *failed =
        "open main\n"
        "F>B main GET_FEATURES\n"
        "B>F main GET_FEATURES reply u64=0x340000000\n"
        "F>B main GET_PROTOCOL_FEATURES\n"
        "B>F main GET_PROTOCOL_FEATURES reply u64=0x4828\n"
        "F>B main SET_PROTOCOL_FEATURES u64=0x8\n"
        "F>B main SET_FEATURES u64=0x340000000\n"
        "F>B main SET_PROTOCOL_FEATURES need_reply u64=0x4828\n"
        "B>F main SET_PROTOCOL_FEATURES reply u64=1\n"
        "F>B main VRING_KICK index=0 num=0\n"
        "F>B main SET_MEM_TABLE need_reply regions[0].guest_addr=0 regions[0].size=0x10000 "
        "regions[0].user_addr=0x10000 regions[0].mmap_offset=0 fds=memfd\n"
        "B>F main SET_MEM_TABLE reply u64=0\n"
        "F>B main SET_MEM_TABLE need_reply regions[0].guest_addr=0 regions[0].size=0x20000 "
        "regions[0].user_addr=0x40000 regions[0].mmap_offset=0 fds=memfd\n"
        "B>F main SET_MEM_TABLE reply u64=1\n"
        "F>B main IOTLB_MSG iova=0 size=0x1000 uaddr=0x40000 perm=3 type=2\n"
        "B>F main IOTLB_MSG reply u64=1\n";
    static const char *const want2[] = {"GATE-PROTOCOL", "IOTLB-OUTSIDE-MEM"};
    expect_rules(c, "failed", failed, want2, 2);
    vuf_checker_state_get(c, &st);
    CHECK(st.protocol_acked == 0x8, "NACKed protocol features not applied: 0x%llx",
          (unsigned long long)st.protocol_acked);
    CHECK(st.nregions == 1, "NACKed memory table not applied: %u regions", st.nregions);

    /* NEED_REPLY may be set on any command: an unknown id is answered with
     * a failure ack, which is not unsolicited; a success ack is REACT */
    static const char *unknown = "open main\n"
                                 "F>B main GET_FEATURES\n"
                                 "B>F main GET_FEATURES reply u64=0x140000000\n"
                                 "F>B main GET_PROTOCOL_FEATURES\n"
                                 "B>F main GET_PROTOCOL_FEATURES reply u64=0x8\n"
                                 "F>B main SET_PROTOCOL_FEATURES u64=0x8\n"
                                 "F>B main 99 need_reply\n"
                                 "B>F main 99 reply raw=0100000000000000\n"
                                 "F>B main 99 need_reply\n"
                                 "B>F main 99 reply raw=0000000000000000\n";
    static const char *const want3[] = {"HDR-ID-UNKNOWN", "HDR-ID-UNKNOWN", "REACT-ACK-INVALID"};
    expect_rules(c, "unknown", unknown, want3, 3);

    /* every catalogue id is unique and findable */
    for (size_t i = 0; i < vuf_rule_count(); i++) {
        const vuf_rule_info *r = vuf_rule_at(i);
        CHECK(vuf_rule_find(r->id) == r, "%s unique", r->id);
        CHECK(r->quote[0] && r->summary[0] && r->section[0], "%s documented", r->id);
    }
    /* hostile bytes never crash it: every prefix of a message, any flags */
    uint8_t buf[64];
    memset(buf, 0xff, sizeof buf);
    for (size_t len = 0; len < sizeof buf; len++) {
        vuf_event e = {.kind = VUF_EV_MSG,
                       .sender = (vuf_side)(len & 1),
                       .channel = (vuf_channel)((len >> 1) & 1),
                       .data = buf,
                       .len = len};
        vuf_checker_feed(c, &e);
    }
    CHECK(vuf_checker_violation_count(c) > n, "garbage reported");
    vuf_checker_free(c);
    vuf_trace_free(t);
    TEST_END();
}
