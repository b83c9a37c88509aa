/* SPDX-License-Identifier: Apache-2.0 */
/* The spec table: loader errors, lint, diff, and what the built-in table
 * says about the messages the rules depend on. Spec-text traps have their
 * own test (test_spec_traps.c). */
#include "vuf_codec.h"
#include "vuf_spec.h"
#include "vuf_test.h"

#include <string.h>

static const char *base_table =
    "channel frontend initiator frontend max-fds 8 section \"Front-end message types\"\n"
    "channel backend initiator backend max-fds 8 fd-gate BACKEND_SEND_FD requires BACKEND_REQ "
    "section \"Back-end message types\"\n"
    "feature protocol 3 REPLY_ACK\n"
    "feature protocol 5 BACKEND_REQ former SLAVE_REQ\n"
    "feature protocol 10 BACKEND_SEND_FD former SLAVE_SEND_FD requires BACKEND_REQ\n"
    "feature virtio 30 PROTOCOL_FEATURES\n"
    "payload u64 8\n  u64 u64\nend\n"
    "payload vring_state 8\n  u32 index\n  u32 num\nend\n"
    "payload mem_region 32\n u64 guest_addr\n u64 size\n u64 user_addr\n u64 mmap_offset\nend\n"
    "payload mem_table 8+32n\n u32 nregions\n u32 padding\n mem_region regions[nregions] max "
    "8\nend\n"
    "message frontend 1 GET_FEATURES\n request none\n reply always\n reply-payload u64\n"
    " section \"x\"\nend\n"
    "message frontend 5 SET_MEM_TABLE\n request mem_table\n reply ack\n"
    " fds count:nregions shm\n section \"x\"\nend\n"
    "message frontend 8 SET_VRING_NUM\n request vring_state\n reply ack\n vring index\n"
    " section \"x\"\nend\n"
    "message frontend 21 SET_BACKEND_REQ_FD\n former SET_SLAVE_REQ_FD\n request none\n reply ack\n"
    " fds 1 socket\n gate bit30 negotiated\n gate protocol BACKEND_REQ\n section \"x\"\nend\n"
    "message backend 1 BACKEND_IOTLB_MSG\n initiator backend\n request u64\n reply ack\n"
    " section \"y\"\nend\n";

static vuf_spec *parse(const char *text, vuf_diag *d)
{
    return vuf_spec_parse(text, strlen(text), "t.spec", d);
}

/* Replace the first occurrence of `from` in the base table. */
static char *variant(const char *from, const char *to)
{
    static char buf[8192];
    const char *p = strstr(base_table, from);
    if (!p)
        return NULL;
    size_t pre = (size_t)(p - base_table);
    snprintf(buf, sizeof buf, "%.*s%s%s", (int)pre, base_table, to, p + strlen(from));
    return buf;
}

static void expect_parse_error(const char *from, const char *to, unsigned line, const char *frag)
{
    vuf_diag d;
    char *t = variant(from, to);
    CHECK(t != NULL, "variant '%s' not found", from);
    if (!t)
        return;
    vuf_spec *s = parse(t, &d);
    CHECK(s == NULL, "expected a load error for '%s'", to);
    if (s) {
        vuf_spec_free(s);
        return;
    }
    CHECK(d.line == line, "error line %u, expected %u (%s)", d.line, line, d.text);
    CHECK(d.col >= 1, "no column");
    CHECK(strstr(d.text, frag) != NULL, "error '%s' lacks '%s'", d.text, frag);
    CHECK(!strcmp(d.file, "t.spec"), "file '%s'", d.file);
}

typedef struct {
    int errors, warnings;
    char first[300];
} lint_seen;

static void on_lint(void *ctx, const vuf_diag *d, bool is_error)
{
    lint_seen *l = ctx;
    if (is_error && !l->errors)
        snprintf(l->first, sizeof l->first, "%u:%s", d->line, d->text);
    *(is_error ? &l->errors : &l->warnings) += 1;
}

static void expect_lint_error(const char *from, const char *to, const char *frag)
{
    vuf_diag d;
    vuf_spec *s = parse(variant(from, to), &d);
    CHECK(s != NULL, "variant should load: %s", d.text);
    if (!s)
        return;
    lint_seen l = {0};
    vuf_spec_lint(s, on_lint, &l);
    CHECK(l.errors >= 1, "lint missed '%s'", to);
    CHECK(strstr(l.first, frag) != NULL, "lint said '%s', expected '%s'", l.first, frag);
    vuf_spec_free(s);
}

static void count_lines(void *ctx, const char *line)
{
    (void)line;
    (*(int *)ctx)++;
}

static char diff_seen[4096];
static void keep_lines(void *ctx, const char *line)
{
    (void)ctx;
    strncat(diff_seen, line, sizeof diff_seen - strlen(diff_seen) - 2);
    strcat(diff_seen, "\n");
}

VUF_TEST(base_table_loads)
{
    vuf_diag d;
    /* the base table is clean */
    vuf_spec *s = parse(base_table, &d);
    CHECK(s != NULL, "base table: %s:%u:%u: %s", d.file, d.line, d.col, d.text);
    if (s) {
        lint_seen l = {0};
        CHECK(vuf_spec_lint(s, on_lint, &l) == 0, "base lint: %s", l.first);
        const vuf_msg_def *m = vuf_spec_msg_by_name(s, VUF_CHAN_COUNT, "set_slave_req_fd");
        CHECK(m && m->id == 21, "former name lookup");
        CHECK(vuf_spec_msg(s, VUF_CHAN_BACKEND, 1) != vuf_spec_msg(s, VUF_CHAN_FRONTEND, 1),
              "(channel, id) keys");
        const vuf_msg_def *mt = vuf_spec_msg(s, VUF_CHAN_FRONTEND, 5);
        CHECK(mt && mt->fds.kind == VUF_FDRULE_COUNT && mt->fds.ref.offset == 0 &&
                  mt->fds.ref.width == 4,
              "count:nregions resolves to the u32 at 0");
        vuf_field_ref r;
        CHECK(vuf_field_resolve(mt->request, "regions[2].user_addr", &r) && r.offset == 8 + 64 + 16,
              "nested path offset %u", r.offset);
        CHECK(!vuf_field_resolve(mt->request, "regions[8].size", &r), "index beyond max");
        vuf_spec_free(s);
    }
}

VUF_TEST(loader_errors)
{
    /* loader errors carry file:line:col and what was expected */
    expect_parse_error("message frontend 8 SET_VRING_NUM", "message frontend 5 SET_VRING_NUM", 37,
                       "duplicate (frontend, 5)");
    expect_parse_error("gate protocol BACKEND_REQ", "gate protocol BACKEND_REQQ", 49,
                       "unknown protocol feature 'BACKEND_REQQ'");
    expect_parse_error("request mem_table", "request mem_tabel", 32, "unknown payload 'mem_tabel'");
    expect_parse_error("fds 1 socket", "fds 1 sockets", 47, "bad fd kind");
    expect_parse_error("reply always\n", "reply sometimes\n", 27, "expected none, ack or always");
    expect_parse_error("u32 num\n", "u32 num\n u33 x\n", 13, "unknown field type 'u33'");
    expect_parse_error(" section \"y\"\nend\n", " section \"y\n", 56, "unterminated string");
    expect_parse_error("message frontend 1 GET_FEATURES", "message frontend 0 GET_FEATURES", 25,
                       "id 0");
    expect_parse_error("fds count:nregions shm", "fds count:nregionz shm", 34,
                       "unknown field 'nregionz'");
}

VUF_TEST(lint_errors)
{
    /* lint: sizes that contradict the layout, reply rules that contradict
     * the reply payload, fd counts above the channel's limit */
    expect_lint_error("payload vring_state 8", "payload vring_state 12",
                      "declared 12 bytes but its fields make 8");
    expect_lint_error("payload mem_table 8+32n", "payload mem_table 8+40n", "declared 8+40n");
    expect_lint_error("reply always\n reply-payload u64", "reply none\n reply-payload u64",
                      "'reply none' contradicts");
    expect_lint_error("reply always\n reply-payload u64", "reply always\n",
                      "'reply always' needs a reply-payload");
    expect_lint_error("request vring_state\n reply ack",
                      "request vring_state\n reply ack\n reply-payload vring_state",
                      "'reply ack' replies are a u64");
    expect_lint_error("fds 1 socket", "fds 9 socket", "above channel frontend's max-fds 8");
    /* span: fields of the payload, resolved at 'end'; reply-error */
    expect_parse_error(" u64 mmap_offset\nend\n", " u64 mmap_offset\n span guest_addr sise\nend\n",
                       19, "unknown field 'sise'");
    expect_parse_error(" u64 mmap_offset\nend\n", " u64 mmap_offset\n span size\nend\n", 19,
                       "expected 'span BASE SIZE'");
    expect_parse_error(" u64 mmap_offset\nend\n",
                       " u64 mmap_offset\n span mmap_offset size file\nend\n", 19,
                       "expected 'span BASE SIZE'");
    expect_parse_error("reply-payload u64\n section \"x\"",
                       "reply-payload u64\n reply-error 0\n section \"x\"", 29,
                       "bad reply error '0'");
    expect_lint_error("request vring_state\n reply ack",
                      "request vring_state\n reply ack\n"
                      " reply-error 1",
                      "reply-error needs an explicit reply payload");
    expect_lint_error("message backend 1 BACKEND_IOTLB_MSG\n initiator backend",
                      "message backend 1 BACKEND_IOTLB_MSG\n initiator frontend",
                      "initiator frontend contradicts channel backend");
}

VUF_TEST(diff)
{
    vuf_diag d;
    /* diff is semantic: an edit to a gate is reported as a gate change */
    vuf_spec *a = parse(base_table, &d);
    vuf_spec *b = parse(variant("gate protocol BACKEND_REQ", "gate protocol REPLY_ACK"), &d);
    CHECK(a && b, "diff inputs load");
    if (a && b) {
        diff_seen[0] = 0;
        size_t n = vuf_spec_diff(a, b, keep_lines, NULL);
        CHECK(n == 1, "one difference, got %zu:\n%s", n, diff_seen);
        CHECK(strstr(diff_seen, "SET_BACKEND_REQ_FD: gates changed: bit 30 negotiated (silent); "
                                "protocol BACKEND_REQ negotiated (silent) -> bit 30 negotiated "
                                "(silent); protocol REPLY_ACK negotiated (silent)") != NULL,
              "diff text: %s", diff_seen);
        int same = 0;
        CHECK(vuf_spec_diff(a, a, count_lines, &same) == 0 && same == 0, "self diff empty");
    }
    vuf_spec_free(a);
    vuf_spec_free(b);
}

VUF_TEST(builtin_table)
{
    /* the built-in table: loads, lints clean (no warning either: every gate,
     * check and bound has its sentence, with the verb its words use), and
     * has both channels whole */
    const vuf_spec *def = vuf_spec_default();
    CHECK(def != NULL, "built-in table loads");
    if (!def)
        return;
    lint_seen l = {0};
    CHECK(vuf_spec_lint(def, on_lint, &l) == 0, "built-in table lints clean: %s", l.first);
    CHECK_EQ(l.warnings, 0, "built-in table: no lint warning");
    CHECK(vuf_spec_msg_count(def, VUF_CHAN_FRONTEND) == 45, "45 front-end messages, got %zu",
          vuf_spec_msg_count(def, VUF_CHAN_FRONTEND));
    CHECK(vuf_spec_msg_count(def, VUF_CHAN_BACKEND) == 10, "10 back-end messages, got %zu",
          vuf_spec_msg_count(def, VUF_CHAN_BACKEND));
    for (uint32_t id = 1; id <= 45; id++)
        CHECK(vuf_spec_msg(def, VUF_CHAN_FRONTEND, id) != NULL, "front-end id %u present", id);
    for (uint32_t id = 1; id <= 10; id++)
        CHECK(vuf_spec_msg(def, VUF_CHAN_BACKEND, id) != NULL, "back-end id %u present", id);
    for (unsigned bit = 0; bit <= 23; bit++) {
        const vuf_feature_def *f = vuf_spec_feature(def, VUF_SPACE_PROTOCOL, bit);
        CHECK(f != NULL, "protocol bit %u present", bit);
        if (f)
            CHECK(f->provisional == (bit >= 20), "bit %u provisional=%d", bit, f->provisional);
    }
    const uint32_t prov_fe[] = {44, 45}, prov_be[] = {9, 10};
    for (int i = 0; i < 2; i++) {
        const vuf_msg_def *m = vuf_spec_msg(def, VUF_CHAN_FRONTEND, prov_fe[i]);
        CHECK(m && m->provisional, "front-end %u provisional", prov_fe[i]);
        m = vuf_spec_msg(def, VUF_CHAN_BACKEND, prov_be[i]);
        CHECK(m && m->provisional, "back-end %u provisional", prov_be[i]);
    }
    CHECK(vuf_spec_feature_bit(def, VUF_SPACE_PROTOCOL, "SLAVE_REQ") == 5, "SLAVE_REQ = 5");
    CHECK(vuf_spec_feature_bit(def, VUF_SPACE_PROTOCOL, "SLAVE_SEND_FD") == 10,
          "SLAVE_SEND_FD = 10");
    CHECK(vuf_spec_feature_bit(def, VUF_SPACE_VIRTIO, "PROTOCOL_FEATURES") == 30, "bit 30");
    CHECK(vuf_spec_feature_bit(def, VUF_SPACE_VIRTIO, "LOG_ALL") == 26, "LOG_ALL 26");
    CHECK(vuf_spec_feature_bit(def, VUF_SPACE_VIRTIO, "VERSION_1") == 32, "VERSION_1 32");
    CHECK(vuf_spec_feature_bit(def, VUF_SPACE_VIRTIO, "IOMMU_PLATFORM") == 33, "IOMMU 33");
    /* SET_SLAVE_REQ_FD: id 21, front-end initiator, one socket fd, BACKEND_REQ gate */
    const vuf_msg_def *m = vuf_spec_msg_by_name(def, VUF_CHAN_COUNT, "SET_SLAVE_REQ_FD");
    CHECK(m && m->id == 21 && m->channel == VUF_CHAN_FRONTEND, "SET_SLAVE_REQ_FD is fe 21");
    if (m) {
        CHECK(m->initiator == VUF_SIDE_FRONTEND, "initiator front-end");
        CHECK(m->fds.kind == VUF_FDRULE_EXACT && m->fds.a == 1 && m->fds.fdkind == VUF_FDK_SOCKET,
              "one socket fd");
        int br = vuf_spec_feature_bit(def, VUF_SPACE_PROTOCOL, "BACKEND_REQ");
        CHECK(br == 5 && (m->gate_protocol >> br & 1), "BACKEND_REQ gate");
        CHECK_EQ(m->gate_bit30, VUF_BIT30_NEGOTIATED, "bit 30 negotiated, as SET_VRING_ENABLE");
        CHECK(!strcmp(m->name, "SET_BACKEND_REQ_FD"), "current name");
    }
    /* spans and failure replies of the built-in table */
    const vuf_payload_def *mr = vuf_spec_payload(def, "mem_region");
    CHECK(mr && mr->nspans == 3, "mem_region has 3 spans");
    if (mr && mr->nspans == 3) {
        CHECK(mr->spans[2].fd && !mr->spans[0].fd, "only the mmap_offset span is in the fd");
        uint8_t reg[32] = {0};
        uint64_t v = 0x1000, sz = ~0ull, base = 0, size = 0;
        memcpy(reg + 24, &v, 8);
        memcpy(reg + 8, &sz, 8);
        CHECK(vuf_span_read(mr, 2, reg, sizeof reg, &base, &size) && base == 0x1000 && size == sz,
              "span read: mmap_offset 0x1000 size ~0");
        CHECK(!vuf_span_read(mr, 2, reg, 20, &base, &size), "span read needs the bytes");
    }
    const vuf_msg_def *gc = vuf_spec_msg_by_name(def, VUF_CHAN_FRONTEND, "GET_CONFIG");
    CHECK(gc && gc->reply_error == VUF_RERR_EMPTY, "GET_CONFIG fails with an empty reply");
    const vuf_msg_def *sd = vuf_spec_msg_by_name(def, VUF_CHAN_FRONTEND, "SET_DEVICE_STATE_FD");
    CHECK(sd && sd->reply_error == VUF_RERR_U64 && sd->reply_error_value == 0x101,
          "SET_DEVICE_STATE_FD fails with 0x101");
    const vuf_msg_def *gb = vuf_spec_msg_by_name(def, VUF_CHAN_FRONTEND, "GET_VRING_BASE");
    CHECK(gb && gb->reply_error == VUF_RERR_NONE, "GET_VRING_BASE has no failure reply");
    /* every name is unique across both channels, including former names */
    for (int c = 0; c < VUF_CHAN_COUNT; c++)
        for (size_t i = 0; i < vuf_spec_msg_count(def, (vuf_channel)c); i++) {
            const vuf_msg_def *x = vuf_spec_msg_at(def, (vuf_channel)c, i);
            CHECK(vuf_spec_msg_by_name(def, VUF_CHAN_COUNT, x->name) == x, "%s unique", x->name);
            CHECK(x->section[0] != 0, "%s has a section", x->name);
        }
}

/* VERB "SENTENCE" on a gate, a check and a bound; gate conditions. */
VUF_TEST(quotes)
{
    vuf_diag d;
    char *t = variant("gate protocol BACKEND_REQ\n",
                      "gate protocol BACKEND_REQ offered should \"This request should be sent "
                      "only when X.\"\n");
    char buf[8192];
    snprintf(buf, sizeof buf, "%s", t ? t : "");
    vuf_spec *s = parse(buf, &d);
    CHECK(s != NULL, "quotes parse: %u:%u %s", d.line, d.col, d.text);
    if (!s)
        return;
    const vuf_msg_def *m = vuf_spec_msg(s, VUF_CHAN_FRONTEND, 21);
    CHECK_EQ(m->ngates, 2, "two gates");
    if (m->ngates == 2) {
        CHECK_EQ(m->gates[0].space, VUF_SPACE_VIRTIO, "bit 30 is a virtio gate");
        CHECK_EQ(m->gates[0].cond, VUF_GATE_NEGOTIATED, "bit30 negotiated");
        CHECK_EQ(m->gates[1].cond, VUF_GATE_OFFERED, "offered");
        CHECK_EQ(m->gates[1].quote.verb, VUF_VERB_SHOULD, "should");
        CHECK_STREQ(m->gates[1].quote.text, "This request should be sent only when X.", "text");
        CHECK_EQ(m->gates[1].quote.line, 49, "the quote's line");
    }
    vuf_spec_free(s);
    t = variant(" vring index\n", " vring index\n check num in 0 must \"It must be 0.\"\n");
    snprintf(buf, sizeof buf, "%s", t ? t : "");
    s = parse(buf, &d);
    m = s ? vuf_spec_msg(s, VUF_CHAN_FRONTEND, 8) : NULL;
    CHECK(m && m->nchecks == 1 && m->checks[0].quote.verb == VUF_VERB_MUST, "a check's quote");
    vuf_spec_free(s);
    /* a verb that is not the sentence's is a lint error; a missing one a warning */
    expect_lint_error("gate protocol BACKEND_REQ\n",
                      "gate protocol BACKEND_REQ must \"This request should be sent.\"\n",
                      "the table says 'must' but the sentence's words say 'should'");
    expect_lint_error("gate protocol BACKEND_REQ\n",
                      "gate protocol BACKEND_REQ defines \"The back-end must do it.\"\n",
                      "says 'defines' but the sentence's words say 'must'");
    s = parse(base_table, &d);
    lint_seen l = {0};
    if (s)
        vuf_spec_lint(s, on_lint, &l);
    CHECK(l.warnings >= 2, "gates without a sentence warn: %d", l.warnings);
    vuf_spec_free(s);
    expect_parse_error("gate protocol BACKEND_REQ\n", "gate protocol BACKEND_REQ must\n", 49,
                       "'must' needs a quoted string");
    expect_parse_error("gate protocol BACKEND_REQ\n", "gate protocol BACKEND_REQ sometimes\n", 49,
                       "unknown protocol feature 'sometimes'");
    expect_parse_error("gate bit30 negotiated\n", "gate bit30 always\n", 48, "bad bit30 gate");
}

VUF_TEST(verb_detect)
{
    static const struct {
        const char *s;
        vuf_verb v;
    } cases[] = {
        {"The back-end MUST respond.", VUF_VERB_MUST},
        {"Only legal if feature bit X is present.", VUF_VERB_MUST},
        {"Only valid if the feature is set by the back-end.", VUF_VERB_MUST},
        {"Using this function requires prior negotiation.", VUF_VERB_MUST},
        {"It is also considered an error to negotiate it.", VUF_VERB_MUST},
        {"Other values are invalid.", VUF_VERB_MUST},
        {"This request should be sent only when X.", VUF_VERB_SHOULD},
        {"No file descriptors SHOULD be passed.", VUF_VERB_SHOULD},
        {"this message may be submitted", VUF_VERB_MAY},
        {"back-end can send file descriptors", VUF_VERB_MAY},
        {"this message is submitted by the front-end", VUF_VERB_DESCRIBES},
        {"the mustard is yellow; canned", VUF_VERB_DESCRIBES}, /* whole words only */
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++)
        CHECK_EQ(vuf_verb_detect(cases[i].s), cases[i].v, "'%s'", cases[i].s);
    vuf_verb v;
    CHECK(vuf_verb_parse("defines", &v) == 0 && v == VUF_VERB_DEFINES, "parse defines");
    CHECK(vuf_verb_parse("MUST", &v) != 0, "verbs are lower case");
    CHECK_STREQ(vuf_verb_name(VUF_VERB_SILENT), "silent", "name");
}

/* A block without 'end' is reported at the block that is not closed. */
VUF_TEST(block_without_end)
{
    expect_parse_error(" fds count:nregions shm\n section \"x\"\nend\n",
                       " fds count:nregions shm\n section \"x\"\n", 31,
                       "message 'SET_MEM_TABLE' has no 'end' (expected 'end' before the message "
                       "at line 36)");
    expect_parse_error("payload vring_state 8\n  u32 index\n  u32 num\nend\n",
                       "payload vring_state 8\n  u32 index\n  u32 num\n", 10,
                       "payload 'vring_state' has no 'end'");
}

VUF_TEST(devices_and_failure_forms)
{
    vuf_diag d;
    char buf[8192];
    snprintf(buf, sizeof buf, "%sdevice net rings-per-queue 2 silent \"queue pairs\"\n",
             base_table);
    vuf_spec *s = parse(buf, &d);
    CHECK(s != NULL, "device line: %s", d.text);
    const vuf_device_def *dv = s ? vuf_spec_device(s, "NET") : NULL;
    CHECK(dv && dv->rings_per_queue == 2 && dv->quote.verb == VUF_VERB_SILENT, "net: 2 rings");
    vuf_spec_free(s);
    snprintf(buf, sizeof buf, "%sdevice net rings-per-queue 99\n", base_table);
    s = parse(buf, &d);
    CHECK(!s && strstr(d.text, "bad rings per queue '99'"), "bound: %s", d.text);
    vuf_spec_free(s);
    const vuf_spec *def = vuf_spec_default();
    const vuf_msg_def *cs = vuf_spec_msg_by_name(def, VUF_CHAN_FRONTEND, "CREATE_CRYPTO_SESSION");
    CHECK(cs && cs->reply_error == VUF_RERR_NEGATIVE && cs->reply_error_ref.offset == 0 &&
              cs->reply_error_ref.width == 8,
          "CREATE_CRYPTO_SESSION fails with a negative session_id");
    CHECK(cs && cs->request && cs->request->fixed_size == 632, "632 bytes (QEMU 7.2)");
    CHECK(vuf_spec_device(def, "blk") && vuf_spec_device(def, "blk")->rings_per_queue == 1,
          "blk: one ring per queue");
    expect_parse_error("reply-payload u64\n section \"x\"",
                       "reply-payload u64\n reply-error negative:nope\n section \"x\"", 29,
                       "unknown field 'nope' in the reply payload");
}

VUF_TEST_MAIN()
