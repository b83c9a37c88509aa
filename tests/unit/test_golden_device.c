/* SPDX-License-Identifier: Apache-2.0 */
/* The golden traces test the reference device's refusals too: the front-end's
 * requests of every tests/golden/ *.fail.trace are fed to the device, set up
 * as the recorded back-end (the features, protocol features and queue count
 * its replies give), with real fds of the recorded kinds. Where the checker
 * reports a rule that a front-end request breaks, the device must refuse a
 * request naming that rule (vuf_ref_out.rule): the checker and the device
 * read the table through the one interpreter (checkers/vuf_msgcheck.h).
 *
 * The exceptions, each with its reason, are the table below: rules about the
 * back-end's own messages (the device writes its own), rules the device
 * tolerates (docs/reaction-policy.md), and what the device judges by its
 * reply policy rather than by a rule. */
#include "vuf_codec.h"
#include "vuf_ref.h"
#include "vuf_rules.h"
#include "vuf_test.h"
#include "vuf_trace.h"
#include "vuf_transport.h"
#include "vuf_util.h"

#include <dirent.h>
#include <fcntl.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <unistd.h>

static const struct {
    vuf_rule_id rule;
    const char *why;
} exceptions[] = {
    /* the back-end's side of the conversation: the device writes its own */
    {VUF_RULE_REPLY_MISSING, "a rule of the back-end's replies"},
    {VUF_RULE_REPLY_UNSOLICITED, "a rule of the back-end's replies"},
    {VUF_RULE_REPLY_ID_MISMATCH, "a rule of the back-end's replies"},
    {VUF_RULE_REPLY_ACK_UNREQUESTED, "a rule of the back-end's replies"},
    {VUF_RULE_SIZE_REPLY, "a rule of the back-end's replies"},
    {VUF_RULE_SIZE_REPLY_MATCH, "a rule of the back-end's replies"},
    {VUF_RULE_FD_REPLY_COUNT, "a rule of the back-end's replies"},
    {VUF_RULE_REACT_ACK_INVALID, "a rule of the back-end's reactions"},
    {VUF_RULE_REACT_CLOSE, "a rule of the back-end's reactions"},
    {VUF_RULE_HDR_NEED_REPLY_ON_REPLY, "a rule of replies"},
    {VUF_RULE_INIT_BACKEND_ON_MAIN, "a rule of the back-end's messages"},
    {VUF_RULE_GATE_BACKEND_MSG, "a rule of the back-end's requests"},
    {VUF_RULE_BCH_BEFORE_BACKEND_REQ, "a rule of the back-end's requests"},
    {VUF_RULE_BCH_NOT_HANDED_OVER, "a rule of the back-end's requests"},
    {VUF_RULE_FD_BACKEND_SEND_FD, "a rule of the back-end's requests"},
    {VUF_RULE_CHAN_CLOSED, "a recording error: a message after its channel closed"},
    /* what the device tolerates (docs/reaction-policy.md) */
    {VUF_RULE_HDR_FLAGS_RESERVED, "tolerated: undefined flag bits are ignored"},
    {VUF_RULE_REPLY_NEED_REPLY_NO_ACK, "tolerated: no ack without REPLY_ACK"},
    {VUF_RULE_FD_SHOULD, "tolerated: REM_MEM_REG's fd, the back-end MAY accept it"},
    {VUF_RULE_FEAT_SET_BEFORE_GET, "tolerated: the handler checks what was offered"},
    {VUF_RULE_FEAT_PROTO_SET_BEFORE_GET, "tolerated: the handler checks what was offered"},
    {VUF_RULE_GATE_BIT30_NEGOTIATED,
     "tolerated: QEMU sends SET_BACKEND_REQ_FD before it acks bit 30"},
    /* the back-end channel's front-end side: the device's reply policy */
    {VUF_RULE_INIT_FRONTEND_ON_BACKEND,
     "the back-end channel: a front-end request there closes it (reply policy, no rule)"},
};

static const char *exception(const vuf_rule_info *r)
{
    for (size_t i = 0; i < sizeof exceptions / sizeof exceptions[0]; i++)
        if (exceptions[i].rule == r->rid)
            return exceptions[i].why;
    return NULL;
}

static uint8_t disk[1 << 20];

/* A real fd of a recorded kind; peers the test keeps go to *keep. */
static int make_fd(vuf_fdkind k, int *keep, size_t *nkeep)
{
    int sv[2];
    switch (k) {
    case VUF_FDKIND_EVENTFD:
        return eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    case VUF_FDKIND_MEMFD: {
        int fd = memfd_create("golden", MFD_CLOEXEC);
        if (fd >= 0 && ftruncate(fd, 1ll << 32)) /* sparse: holds any recorded range */
            close(fd), fd = -1;
        return fd;
    }
    case VUF_FDKIND_PIPE:
        if (pipe2(sv, O_CLOEXEC))
            return -1;
        keep[(*nkeep)++] = sv[1];
        return sv[0];
    case VUF_FDKIND_SOCKET:
    case VUF_FDKIND_SOCKET_CLOSED:
        if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv))
            return -1;
        if (k == VUF_FDKIND_SOCKET)
            keep[(*nkeep)++] = sv[1];
        else
            close(sv[1]);
        return sv[0];
    case VUF_FDKIND_SOCKET_DGRAM:
        return socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    default:
        return open("/dev/null", O_RDWR | O_CLOEXEC);
    }
}

/* The first reply of the recorded back-end to message `name`, as a u64. */
static bool recorded_u64(const vuf_spec *s, const vuf_trace *t, const char *name, uint64_t *out)
{
    const vuf_msg_def *m = vuf_spec_msg_by_name(s, VUF_CHAN_FRONTEND, name);
    for (size_t i = 0; m && i < vuf_trace_count(t); i++) {
        const vuf_event *e = vuf_trace_event(t, i);
        vuf_msg_view v;
        if (e->kind == VUF_EV_MSG && e->sender == VUF_SIDE_BACKEND &&
            e->channel == VUF_CHAN_FRONTEND && vuf_msg_decode(s, e->channel, e->data, e->len, &v) &&
            v.is_reply && v.def == m && v.payload_len == 8) {
            memcpy(out, v.payload, 8);
            return true;
        }
    }
    return false;
}

typedef struct {
    char rules[32][32];
    size_t n;
} refusals;

static void add_refusal(refusals *r, const char *rule)
{
    for (size_t i = 0; i < r->n; i++)
        if (!strcmp(r->rules[i], rule))
            return;
    if (r->n < 32)
        snprintf(r->rules[r->n++], sizeof r->rules[0], "%s", rule);
}

/* Feed the front-end's side of t to a device set up as its back-end. */
static void play(const vuf_spec *s, const vuf_trace *t, refusals *out)
{
    vuf_ref_config cfg;
    vuf_ref_config_default(&cfg);
    cfg.disk = disk;
    cfg.disk_size = sizeof disk;
    uint64_t v;
    if (recorded_u64(s, t, "GET_FEATURES", &v))
        cfg.features = v;
    if (recorded_u64(s, t, "GET_PROTOCOL_FEATURES", &v))
        cfg.protocol_features = v;
    if (recorded_u64(s, t, "GET_QUEUE_NUM", &v) && v >= 1 && v <= VUF_REF_MAX_QUEUES)
        cfg.queues = (uint32_t)v;
    char err[200];
    vuf_ref *d = vuf_ref_new(s, &cfg, err, sizeof err);
    CHECK(d != NULL, "vuf_ref_new: %s", err);
    if (!d)
        return;
    int keep[VUF_EV_MAX_FDS * 4];
    size_t nkeep = 0;
    for (size_t i = 0; i < vuf_trace_count(t); i++) {
        const vuf_event *e = vuf_trace_event(t, i);
        if (e->kind == VUF_EV_CLOSE && e->channel == VUF_CHAN_FRONTEND)
            break;
        if (e->kind != VUF_EV_MSG || e->sender != VUF_SIDE_FRONTEND)
            continue;
        int fds[VUF_EV_MAX_FDS];
        uint8_t kinds[VUF_EV_MAX_FDS];
        size_t n = 0;
        for (; n < e->nfds && nkeep + 2 < sizeof keep / sizeof keep[0]; n++) {
            fds[n] = make_fd((vuf_fdkind)e->fds[n], keep, &nkeep);
            kinds[n] = (uint8_t)vuf_fd_classify(fds[n]);
        }
        vuf_ref_out o;
        vuf_ref_out_init(&o);
        if (e->channel == VUF_CHAN_FRONTEND)
            vuf_ref_handle(d, e->data, e->len, fds, kinds, n, &o);
        else
            vuf_ref_handle_backend(d, e->data, e->len, fds, kinds, n, &o);
        if (o.rule)
            add_refusal(out, o.rule);
        vuf_ref_out_clear(&o);
    }
    vuf_ref_free(d);
    for (size_t i = 0; i < nkeep; i++)
        close(keep[i]);
}

VUF_TEST(golden_fail_traces_refused_by_the_device)
{
    const vuf_spec *s = vuf_spec_default();
    DIR *dir = opendir(VUF_SOURCE_DIR "/tests/golden");
    CHECK(dir != NULL, "tests/golden");
    if (!dir)
        return;
    size_t files = 0, judged = 0, excepted = 0;
    for (struct dirent *de; (de = readdir(dir));) {
        size_t l = strlen(de->d_name);
        if (l < 11 || strcmp(de->d_name + l - 11, ".fail.trace"))
            continue;
        char path[512];
        snprintf(path, sizeof path, "%s/tests/golden/%s", VUF_SOURCE_DIR, de->d_name);
        size_t len;
        char rerr[160];
        char *text = (char *)vuf_read_file(path, 1 << 20, &len, rerr, sizeof rerr);
        vuf_diag dg;
        vuf_trace *t = text ? vuf_trace_parse(s, text, len, path, &dg) : NULL;
        CHECK(t != NULL, "%s: %s", path, text ? dg.text : rerr);
        if (!t) {
            free(text);
            continue;
        }
        files++;
        refusals got = {0};
        play(s, t, &got);
        /* the rules the fail trace expects; the device stops at the first a
         * request breaks, so it must name one of those the request breaks,
         * and only rules the checker reports */
        char expect[16][64];
        size_t nexp = 0, njudged = 0;
        for (char *p = strstr(text, "# expect: "); p && nexp < 16;
             p = strstr(p + 1, "# expect: ")) {
            if (sscanf(p + 10, "%63s", expect[nexp]) != 1 || !strcmp(expect[nexp], "none"))
                continue;
            const vuf_rule_info *ri = vuf_rule_find(expect[nexp]);
            CHECK(ri != NULL, "%s: unknown rule %s", de->d_name, expect[nexp]);
            if (!ri)
                continue;
            if (exception(ri))
                excepted++;
            else
                njudged++;
            nexp++;
        }
        char list[512] = "";
        size_t ll = 0;
        for (size_t i = 0; i < got.n && ll < sizeof list; i++)
            ll += (size_t)snprintf(list + ll, sizeof list - ll, " %s", got.rules[i]);
        bool named = false;
        for (size_t i = 0; i < got.n; i++) {
            bool reported = false;
            for (size_t k = 0; k < nexp; k++)
                reported |= !strcmp(got.rules[i], expect[k]);
            CHECK(reported, "%s: the device refused with %s, which the checker does not report",
                  de->d_name, got.rules[i]);
            named |= reported && !exception(vuf_rule_find(got.rules[i]));
        }
        if (njudged) {
            judged++;
            CHECK(named, "%s: the device named none of the rules the checker reports [device:%s]",
                  de->d_name, list);
        }
        vuf_trace_free(t);
        free(text);
    }
    closedir(dir);
    printf("%zu fail traces, %zu with a rule the device judges, %zu expected rules excepted\n",
           files, judged, excepted);
    CHECK(files >= 55 && judged >= 30, "%zu files, %zu judged", files, judged);
}

/* Every exception names a catalogue rule and says why. */
VUF_TEST(exceptions_documented)
{
    for (size_t i = 0; i < sizeof exceptions / sizeof exceptions[0]; i++)
        CHECK(vuf_rule(exceptions[i].rule) && exceptions[i].why[0], "exception %zu", i);
}

VUF_TEST_MAIN()
