/* SPDX-License-Identifier: Apache-2.0 */
/* Checker state tracking and determinism, fed events built directly. */
#include "vuf_checker.h"
#include "vuf_msgcheck.h"
#include "vuf_codec.h"
#include "vuf_test.h"
#include "vuf_trace.h"

#include <dirent.h>
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

static vuf_trace *parse(const char *what, const char *text)
{
    vuf_diag d;
    vuf_trace *t = vuf_trace_parse(vuf_spec_default(), text, strlen(text), what, &d);
    CHECK(t != NULL, "%s parses: %u:%u %s", what, d.line, d.col, d.text);
    return t;
}

/* A capture judged as check-trace does (end_capture, not finish). */
static vuf_checker *judge_capture(const char *what, const char *text, const char *device)
{
    vuf_trace *t = parse(what, text);
    vuf_checker *c = vuf_checker_new(vuf_spec_default());
    if (!t || !c) {
        vuf_trace_free(t);
        vuf_checker_free(c);
        return NULL;
    }
    vuf_checker_set_device(c, vuf_spec_device(vuf_spec_default(), device));
    for (size_t i = 0; i < vuf_trace_count(t); i++)
        vuf_checker_feed(c, vuf_trace_event(t, i));
    vuf_checker_end_capture(c);
    vuf_trace_free(t);
    return c;
}

static const vuf_violation *find(const vuf_checker *c, const char *rule)
{
    for (size_t i = 0; c && i < vuf_checker_violation_count(c); i++)
        if (!strcmp(vuf_checker_violation(c, i)->rule->id, rule))
            return vuf_checker_violation(c, i);
    return NULL;
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

VUF_TEST(state_and_determinism)
{
    const vuf_spec *s = vuf_spec_default();
    vuf_trace *t = parse("session", session);
    if (!t)
        return;
    vuf_checker *c = vuf_checker_new(s);
    vuf_checker_set_device(c, vuf_spec_device(s, "blk"));
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
              !strcmp(v0->msg, "SET_VRING_NUM") && v0->level == VUF_SHOULD,
          "violation carries side, index, line, message, level (should stop: SHOULD)");
    const vuf_violation *v2 = vuf_checker_violation(c, 2);
    CHECK(v2 && v2->side == VUF_SIDE_BACKEND, "missing reply blamed on the back-end");
    CHECK(vuf_checker_must_count(c, VUF_SIDE_FRONTEND) == 1, "1 MUST by the front-end (FD-NOFD)");

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
}

VUF_TEST(failed_request_has_no_effect)
{
    vuf_checker *c = vuf_checker_new(vuf_spec_default());
    vuf_checker_state st;

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
    const vuf_violation *g = vuf_checker_violation(c, 0);
    CHECK(g && g->level == VUF_NOTE && strstr(g->quote, "may be submitted"),
          "VRING_KICK's gate is a 'may': NOTE, with its sentence");
    vuf_checker_free(c);
}

VUF_TEST(unknown_ids)
{
    vuf_checker *c = vuf_checker_new(vuf_spec_default());
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
    vuf_checker_free(c);
}

/* A quote's verb is its sentence's: the words of must, should, may; none of
 * them for a definition or a description; a reason for silence. */
static void check_quote(const char *where, vuf_verb verb, const char *text)
{
    vuf_verb said = vuf_verb_detect(text);
    CHECK(text && text[0], "%s: a sentence", where);
    switch (verb) {
    case VUF_VERB_MUST:
    case VUF_VERB_SHOULD:
    case VUF_VERB_MAY:
        CHECK_EQ(said, verb, "%s: %s, but the sentence says %s: %s", where, vuf_verb_name(verb),
                 vuf_verb_name(said), text);
        break;
    case VUF_VERB_DEFINES:
        CHECK(said == VUF_VERB_DESCRIBES || said == VUF_VERB_MAY,
              "%s: a definition with a %s of its own: %s", where, vuf_verb_name(said), text);
        break;
    case VUF_VERB_DESCRIBES:
        CHECK_EQ(said, VUF_VERB_DESCRIBES, "%s: descriptive, but says %s: %s", where,
                 vuf_verb_name(said), text);
        break;
    default:
        break;
    }
}

/* The catalogue: every MUST rule quotes a sentence that says must (or a
 * documented equivalent form, or defines the wire format), every SHOULD one
 * a should; the level is the verb's; every gate, check and bound of the
 * built-in table has its sentence, whose verb it carries. */
VUF_TEST(catalogue)
{
    for (size_t i = 0; i < vuf_rule_count(); i++) {
        const vuf_rule_info *r = vuf_rule_at(i);
        CHECK(vuf_rule_find(r->id) == r && vuf_rule(r->rid) == r, "%s unique", r->id);
        CHECK(r->quote[0] && r->summary[0], "%s documented", r->id);
        CHECK_EQ(r->level, vuf_level_of_verb(r->verb), "%s: the level is its verb's", r->id);
        CHECK(r->verb == VUF_VERB_SILENT ? !r->section[0] : r->section[0] != 0,
              "%s: a section exactly when the rst states it", r->id);
        if (r->level == VUF_MUST)
            CHECK(r->verb == VUF_VERB_DEFINES || vuf_verb_detect(r->quote) == VUF_VERB_MUST,
                  "MUST rule %s quotes no must: %s", r->id, r->quote);
        check_quote(r->id, r->verb, r->quote);
    }
    const vuf_spec *s = vuf_spec_default();
    size_t gates = 0;
    for (int c = 0; c < VUF_CHAN_COUNT; c++)
        for (size_t i = 0; i < vuf_spec_msg_count(s, (vuf_channel)c); i++) {
            const vuf_msg_def *m = vuf_spec_msg_at(s, (vuf_channel)c, i);
            char w[128];
            for (size_t k = 0; k < m->ngates; k++, gates++) {
                snprintf(w, sizeof w, "%s gate %zu", m->name, k + 1);
                check_quote(w, m->gates[k].quote.verb, m->gates[k].quote.text);
            }
            for (size_t k = 0; k < m->nchecks; k++) {
                snprintf(w, sizeof w, "%s check %s", m->name, m->checks[k].ref.path);
                check_quote(w, m->checks[k].quote.verb, m->checks[k].quote.text);
            }
            if (m->nafter)
                check_quote(m->name, m->after_quote.verb, m->after_quote.text);
        }
    CHECK(gates >= 40, "%zu gates, each with its sentence", gates);
    /* the rules whose level the table decides, and the levels it decides */
    CHECK_EQ(vuf_msgcheck_level(VUF_RULE_GATE_PROTOCOL, NULL), VUF_NOTE, "no sentence: NOTE");
    vuf_quote q = {.verb = VUF_VERB_SHOULD, .text = "x should y"};
    CHECK_EQ(vuf_msgcheck_level(VUF_RULE_GATE_PROTOCOL, &q), VUF_SHOULD, "a should gate");
    CHECK_EQ(vuf_msgcheck_level(VUF_RULE_FD_COUNT, &q), VUF_MUST, "a catalogue rule keeps its own");
}

VUF_TEST(levels)
{
    vuf_level l = VUF_NOTE;
    CHECK(vuf_level_parse("must", &l) == 0 && l == VUF_MUST, "must");
    CHECK(vuf_level_parse("SHOULD", &l) == 0 && l == VUF_SHOULD, "SHOULD");
    CHECK(vuf_level_parse("all", &l) == 0 && l == VUF_NOTE, "all = note");
    CHECK(vuf_level_parse("note", &l) == 0 && l == VUF_NOTE, "note");
    l = VUF_MUST;
    CHECK(vuf_level_parse("sometimes", &l) != 0 && l == VUF_MUST, "unknown: unchanged");
    CHECK(vuf_level_parse(NULL, &l) != 0, "NULL");
    CHECK_STREQ(vuf_level_name(VUF_SHOULD), "SHOULD", "name");
    CHECK(vuf_level_within(VUF_MUST, VUF_SHOULD) && !vuf_level_within(VUF_NOTE, VUF_SHOULD) &&
              vuf_level_within(VUF_NOTE, VUF_NOTE) && !vuf_level_within(VUF_SHOULD, VUF_MUST),
          "within");
    CHECK_EQ(vuf_level_of_verb(VUF_VERB_DEFINES), VUF_MUST, "defines: MUST");
    CHECK_EQ(vuf_level_of_verb(VUF_VERB_MAY), VUF_NOTE, "may: NOTE");
}

static const char *hs = "open main\n"
                        "F>B main GET_FEATURES\n"
                        "B>F main GET_FEATURES reply u64=0x370001246\n"
                        "F>B main GET_PROTOCOL_FEATURES\n"
                        "B>F main GET_PROTOCOL_FEATURES reply u64=0xDE29\n"
                        "F>B main SET_PROTOCOL_FEATURES u64=0x9E29\n"
                        "F>B main GET_QUEUE_NUM\n"
                        "B>F main GET_QUEUE_NUM reply u64=1\n"
                        "F>B main SET_FEATURES u64=0x150000246\n";

/* How queues count depends on the device type; without one, no ring index
 * is judged. */
VUF_TEST(device_types)
{
    char text[2048];
    snprintf(text, sizeof text, "%sF>B main SET_VRING_NUM index=1 num=8\n", hs);
    vuf_checker *c = judge_capture("none", text, NULL);
    CHECK(c && !find(c, "VRING-INDEX"), "no device type: not judged");
    vuf_checker_free(c);
    c = judge_capture("blk", text, "blk");
    CHECK(find(c, "VRING-INDEX") != NULL, "blk: ring 1 of 1 queue");
    vuf_checker_free(c);
    c = judge_capture("net", text, "net");
    CHECK(c && !find(c, "VRING-INDEX"), "net: rings 0 and 1 of 1 queue pair");
    vuf_checker_free(c);
    snprintf(text, sizeof text, "%sF>B main SET_VRING_NUM index=2 num=8\n", hs);
    c = judge_capture("net2", text, "net");
    const vuf_violation *v = find(c, "VRING-INDEX");
    CHECK(v && v->level == VUF_SHOULD &&
              strstr(v->text, "beyond the 1 queue pair GET_QUEUE_NUM reports (2 rings"),
          "net: ring 2 of 1 pair: %s", v ? v->text : "-");
    vuf_checker_free(c);
}

/* A capture cut off while a reply is owed is incomplete, not REPLY-MISSING;
 * the whole conversation of a harness (finish) is. */
VUF_TEST(incomplete_capture)
{
    char text[2048];
    snprintf(text, sizeof text, "%sF>B main GET_FEATURES\n", hs);
    vuf_checker *c = judge_capture("cut", text, NULL);
    CHECK(c && vuf_checker_violation_count(c) == 0, "no violation");
    CHECK(c && vuf_checker_incomplete_count(c) == 1, "one incomplete");
    const vuf_incomplete *in = c ? vuf_checker_incomplete(c, 0) : NULL;
    CHECK(in && in->line == 10 && in->responder == VUF_SIDE_BACKEND &&
              !strcmp(in->msg, "GET_FEATURES"),
          "the request, its line and the side that owes the reply");
    vuf_checker_free(c);
    vuf_trace *t = parse("whole", text);
    c = vuf_checker_new(vuf_spec_default());
    if (t && c) {
        feed_all(c, t);
        const vuf_violation *v = find(c, "REPLY-MISSING");
        CHECK(v && v->line == 10, "finish: REPLY-MISSING at the request's line");
    }
    vuf_checker_free(c);
    vuf_trace_free(t);
}

/* Device-side notes: a responder that says why it refused is not charged
 * REACT-CLOSE for the close that follows (a device's own limit is not in the
 * table); after a timeout the reply that comes late is not a violation. */
VUF_TEST(notes)
{
    char text[4096];
    snprintf(text, sizeof text,
             "%sF>B main SET_VRING_NUM need_reply index=0 num=3\n"
             "note main refuse by=B -- queue size not a power of 2\n"
             "close main by=B\n",
             hs);
    vuf_checker *c = judge_capture("refuse", text, NULL);
    CHECK(c && !find(c, "REACT-CLOSE"),
          "a responder that said why it refused is not charged REACT-CLOSE");
    vuf_checker_free(c);
    char *n = strstr(text, "note main refuse");
    if (n)
        memcpy(n, "#", 1);
    c = judge_capture("no-refuse-note", text, NULL);
    const vuf_violation *v = find(c, "REACT-CLOSE");
    CHECK(v && v->level == VUF_SHOULD, "without the note: REACT-CLOSE");
    vuf_checker_free(c);
    snprintf(text, sizeof text,
             "%sF>B main SET_BACKEND_REQ_FD need_reply fds=socket\n"
             "B>F main SET_BACKEND_REQ_FD reply u64=0\n"
             "open backend\n"
             "B>F backend BACKEND_CONFIG_CHANGE_MSG need_reply\n"
             "note backend timeout by=B -- no reply within 1000 ms\n"
             "B>F backend BACKEND_VRING_HOST_NOTIFIER_MSG need_reply u64=0x100 size=0 offset=0\n"
             "F>B backend BACKEND_CONFIG_CHANGE_MSG reply u64=0\n"
             "note backend late by=B\n"
             "F>B backend BACKEND_VRING_HOST_NOTIFIER_MSG reply u64=0\n",
             hs);
    c = judge_capture("timeout", text, NULL);
    CHECK(c && vuf_checker_violation_count(c) == 0, "the late reply is no violation: %zu, %s",
          c ? vuf_checker_violation_count(c) : 0,
          c && vuf_checker_violation_count(c) ? vuf_checker_violation(c, 0)->rule->id : "-");
    vuf_checker_free(c);
    /* without the timeout note, the requester went on before the reply
     * (pipelined): answered in order, that is no violation either... */
    n = strstr(text, "note backend timeout");
    if (n)
        memcpy(n, "#", 1);
    c = judge_capture("no-timeout", text, NULL);
    CHECK(c && vuf_checker_violation_count(c) == 0, "pipelined, answered in order: %zu",
          c ? vuf_checker_violation_count(c) : 0);
    vuf_checker_free(c);
    /* ... but the later request answered first leaves the earlier without one */
    snprintf(text, sizeof text,
             "%sF>B main SET_BACKEND_REQ_FD need_reply fds=socket\n"
             "B>F main SET_BACKEND_REQ_FD reply u64=0\n"
             "open backend\n"
             "B>F backend BACKEND_CONFIG_CHANGE_MSG need_reply\n"
             "B>F backend BACKEND_VRING_HOST_NOTIFIER_MSG need_reply u64=0x100 size=0 offset=0\n"
             "F>B backend BACKEND_VRING_HOST_NOTIFIER_MSG reply u64=0\n",
             hs);
    c = judge_capture("out-of-order", text, NULL);
    CHECK(find(c, "REPLY-MISSING"), "the later answered first: REPLY-MISSING");
    vuf_checker_free(c);
}

/* Every violation of the golden traces has the line of an event. */
VUF_TEST(real_lines)
{
    DIR *dir = opendir(VUF_SOURCE_DIR "/tests/golden");
    CHECK(dir != NULL, "tests/golden");
    if (!dir)
        return;
    size_t files = 0, checked = 0;
    vuf_checker *c = vuf_checker_new(vuf_spec_default());
    for (struct dirent *e; (e = readdir(dir));) {
        if (!strstr(e->d_name, ".trace"))
            continue;
        char path[512];
        snprintf(path, sizeof path, "%s/tests/golden/%s", VUF_SOURCE_DIR, e->d_name);
        vuf_diag d;
        vuf_trace *t = vuf_trace_load_file(vuf_spec_default(), path, &d);
        CHECK(t != NULL, "%s: %s", path, d.text);
        if (!t)
            continue;
        files++;
        vuf_checker_reset(c);
        vuf_checker_set_device(c, vuf_spec_device(vuf_spec_default(), vuf_trace_device(t, NULL)));
        for (size_t i = 0; i < vuf_trace_count(t); i++)
            vuf_checker_feed(c, vuf_trace_event(t, i));
        vuf_checker_end_capture(c);
        for (size_t i = 0; i < vuf_checker_violation_count(c); i++, checked++)
            CHECK(vuf_checker_violation(c, i)->line > 0, "%s: %s at line 0", e->d_name,
                  vuf_checker_violation(c, i)->rule->id);
        vuf_trace_free(t);
    }
    closedir(dir);
    vuf_checker_free(c);
    CHECK(files > 90 && checked > 50, "%zu files, %zu violations", files, checked);
}

VUF_TEST_MAIN()
