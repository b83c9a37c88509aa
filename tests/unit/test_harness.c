/* SPDX-License-Identifier: Apache-2.0 */
/* The harness and its targets: determinism (the same input gives the same
 * run, alone or after any other session), the in-process and the socket
 * target agreeing, the corpus seeds (the malformed SET_BACKEND_REQ_FD cases
 * first) running clean with the device refusing what it must, every oracle
 * firing on what it names, and the typed fds being the kinds the kernel
 * says they are. */
#include "harness_int.h"
#include "vuf_harness.h"
#include "vuf_session.h"
#include "vuf_test.h"
#include "vuf_util.h"
#include "vuf_trace.h"
#include "vuf_transport.h"

#include <dirent.h>
#include <fcntl.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#define MAX_SEEDS 128

static const vuf_spec *spec;
static char *names[MAX_SEEDS];
static Vuf__Session *seeds[MAX_SEEDS];
static size_t nseeds;

typedef vuf_lines recorder;

/* Every event, as trace text: the run as the device saw it. */
static void record(void *ctx, const vuf_event *ev)
{
    char line[32768];
    int n = vuf_trace_format_event(spec, ev, line, sizeof line);
    if (n >= 0 && (size_t)n < sizeof line)
        vuf_lines_add(ctx, line);
}

static char *run_recorded(vuf_harness *h, recorder *rec, const Vuf__Session *s, vuf_finding *f)
{
    vuf_lines_free(rec);
    *f = vuf_harness_run(h, s);
    return strdup(rec->text ? rec->text : "");
}

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

static size_t seed_index(const char *name)
{
    for (size_t i = 0; i < nseeds; i++)
        if (!strcmp(names[i], name))
            return i;
    return SIZE_MAX;
}

VUF_TEST(seeds_load)
{
    spec = vuf_spec_default();
    char dir[4096];
    snprintf(dir, sizeof dir, "%s/corpus", VUF_SOURCE_DIR);
    DIR *d = opendir(dir);
    CHECK(d != NULL, "corpus/ exists");
    if (!d)
        return;
    for (struct dirent *e; (e = readdir(d)) && nseeds < MAX_SEEDS;) {
        size_t l = strlen(e->d_name);
        if (l > 4 && !strcmp(e->d_name + l - 4, ".txt"))
            names[nseeds++] = strdup(e->d_name);
    }
    closedir(d);
    qsort(names, nseeds, sizeof *names, cmp_str);
    CHECK(nseeds >= 30, "%zu seeds", nseeds);
    for (size_t i = 0; i < nseeds; i++) {
        char path[8192];
        snprintf(path, sizeof path, "%s/%s", dir, names[i]);
        vuf_diag dg;
        seeds[i] = vuf_session_load_file(spec, path, NULL, &dg);
        CHECK(seeds[i] != NULL, "%s loads: %s", names[i], dg.text);
    }
}

/* Each seed alone in a fresh harness, then after all the others, forwards,
 * backwards and twice, in one harness (pooled memory, fds, disk, device):
 * the same conversation. Returns the conversations alone. */
static char **determinism(vuf_target_kind kind)
{
    recorder rec = {0};
    vuf_harness_opts o = {.target = kind, .on_event = record, .ctx = &rec};
    char **alone = calloc(MAX_SEEDS, sizeof *alone);
    for (size_t i = 0; i < nseeds; i++) {
        if (!seeds[i])
            continue;
        vuf_harness *h = vuf_harness_new(spec, &o);
        vuf_finding f;
        alone[i] = run_recorded(h, &rec, seeds[i], &f);
        CHECK(f.kind == VUF_FINDING_NONE, "%s runs clean: %s %s", names[i], f.rule, f.text);
        CHECK(strlen(alone[i]) > 0, "%s has a conversation", names[i]);
        vuf_harness_free(h);
    }
    vuf_harness *shared = vuf_harness_new(spec, &o);
    size_t differ = 0;
    for (int pass = 0; pass < 3; pass++)
        for (size_t k = 0; k < nseeds; k++) {
            size_t i = pass == 1 ? nseeds - 1 - k : k;
            if (!seeds[i])
                continue;
            vuf_finding f;
            char *again = run_recorded(shared, &rec, seeds[i], &f);
            if (strcmp(again, alone[i])) {
                differ++;
                printf("FAIL %s differs on pass %d\n", names[i], pass);
            }
            free(again);
        }
    CHECK(differ == 0, "%zu runs differ from the same input alone", differ);
    vuf_harness_free(shared);
    vuf_lines_free(&rec);
    return alone;
}

static char **conv_inproc, **conv_socket;

VUF_TEST(determinism_inproc)
{
    conv_inproc = determinism(VUF_TARGET_KIND_INPROC);
}

VUF_TEST(determinism_socket)
{
    conv_socket = determinism(VUF_TARGET_KIND_SOCKET);
}

/* The in-process target gives the device what the socket would have: the
 * same conversation, event for event. */
VUF_TEST(targets_agree)
{
    size_t differ = 0;
    for (size_t i = 0; i < nseeds; i++) {
        if (!conv_inproc || !conv_socket || !conv_inproc[i] || !conv_socket[i])
            continue;
        if (strcmp(conv_inproc[i], conv_socket[i])) {
            differ++;
            /* the first line that differs */
            const char *a = conv_inproc[i], *b = conv_socket[i];
            while (*a && *a == *b)
                a++, b++;
            while (a > conv_inproc[i] && a[-1] != '\n')
                a--, b--;
            printf("FAIL %s: inproc and socket differ at:\n  inproc: %.160s\n  socket: %.160s\n",
                   names[i], a, b);
        }
    }
    CHECK(differ == 0, "%zu seeds differ between the targets", differ);
    for (size_t i = 0; i < MAX_SEEDS; i++) {
        if (conv_inproc)
            free(conv_inproc[i]);
        if (conv_socket)
            free(conv_socket[i]);
    }
    free(conv_inproc);
    free(conv_socket);
}

/* A session whose last action queues more messages than the device's
 * bounded steps take: the rest (a polled ring start, processing a read
 * request) runs as the connection closes; the next session must still
 * start from clean guest memory. */
VUF_TEST(late_ring_pass)
{
    size_t hsi = seed_index("handshake.txt");
    CHECK(hsi != SIZE_MAX, "handshake seed");
    if (hsi == SIZE_MAX)
        return;
    char path[8192];
    snprintf(path, sizeof path, "%s/corpus/handshake.txt", VUF_SOURCE_DIR);
    FILE *hf = fopen(path, "r");
    char *late = calloc(1, 65536 + 8192);
    size_t ll = hf && late ? fread(late, 1, 8192, hf) : 0;
    if (hf)
        fclose(hf);
    ll += (size_t)sprintf(late + ll, "blk type=in sector=0 len=512\nraw main data=");
    for (int k = 0; k < 250; k++) /* GET_FEATURES */
        ll += (size_t)sprintf(late + ll, "010000000100000000000000");
    /* SET_VRING_KICK u64=0x100: no fd, the ring is polled: it starts */
    ll += (size_t)sprintf(late + ll, "0c00000001000000080000000001000000000000\n");
    vuf_diag dg;
    Vuf__Session *ls = vuf_session_parse_text(spec, late, ll, "late", &dg);
    CHECK(ls != NULL, "late session parses: %s", dg.text);
    for (int kind = 0; ls && kind < 2; kind++) {
        recorder rec = {0};
        vuf_harness_opts o = {.target = (vuf_target_kind)kind, .on_event = record, .ctx = &rec};
        vuf_harness *h = vuf_harness_new(spec, &o);
        vuf_finding f;
        char *first = run_recorded(h, &rec, seeds[hsi], &f);
        free(run_recorded(h, &rec, ls, &f));
        char *after = run_recorded(h, &rec, seeds[hsi], &f);
        CHECK(!strcmp(after, first), "%s: handshake after a late ring pass: same run",
              vuf_harness_target_name(h));
        free(first);
        free(after);
        vuf_harness_free(h);
        vuf_lines_free(&rec);
    }
    vuf_session_free(ls);
    free(late);
}

/* The malformed SET_BACKEND_REQ_FD seeds: clean, and refused. */
VUF_TEST(backend_req_fd_refused)
{
    const vuf_msg_def *m = vuf_spec_msg_by_name(spec, VUF_CHAN_FRONTEND, "SET_BACKEND_REQ_FD");
    for (int kind = 0; kind < 2; kind++)
        for (size_t i = 0; i < nseeds; i++) {
            if (!seeds[i] || strncmp(names[i], "backend-req-fd-", 15))
                continue;
            vuf_harness_opts o = {.target = (vuf_target_kind)kind};
            vuf_harness *h = vuf_harness_new(spec, &o);
            vuf_finding f = vuf_harness_run(h, seeds[i]);
            uint64_t acc = vuf_harness_accepted(h, VUF_CHAN_FRONTEND, m->id);
            /* before SET_PROTOCOL_FEATURES, or without BACKEND_REQ enabled, it is
             * accepted: the rst's gate is BACKEND_REQ "present in
             * VHOST_USER_GET_PROTOCOL_FEATURES" (offered), and the bit-30 gate
             * a SHOULD the device tolerates (docs/reaction-policy.md) */
            uint64_t want = !strcmp(names[i], "backend-req-fd-repeated.txt")                   ? 2
                            : !strcmp(names[i], "backend-req-fd-need-reply-no-reply-ack.txt")  ? 1
                            : !strcmp(names[i], "backend-req-fd-before-protocol-features.txt") ? 1
                            : !strcmp(names[i], "backend-req-fd-not-negotiated.txt")           ? 1
                                                                                               : 0;
            CHECK(f.kind == VUF_FINDING_NONE, "%s %s clean: %s", vuf_harness_target_name(h),
                  names[i], f.text);
            CHECK_EQ(acc, want, "%s %s: SET_BACKEND_REQ_FD accepted", vuf_harness_target_name(h),
                     names[i]);
            vuf_harness_free(h);
        }
}

VUF_TEST(guest_write_oracle)
{
    size_t hs = seed_index("handshake.txt");
    if (hs == SIZE_MAX)
        return;
    for (int kind = 0; kind < 2; kind++) {
        /* a stray byte outside the buffers and rings ... */
        vuf_harness_opts g = {.target = (vuf_target_kind)kind, .inject_stray_write = 0xf000};
        vuf_harness *h = vuf_harness_new(spec, &g);
        vuf_finding f = vuf_harness_run(h, seeds[hs]);
        CHECK(f.kind == VUF_FINDING_GUEST_WRITE && strstr(f.text, "0xf000"),
              "stray write found: %s", f.text);
        vuf_harness_free(h);
        /* ... but not inside the used ring (gpa 0x800 + 4: an element) */
        g.inject_stray_write = 0x804;
        h = vuf_harness_new(spec, &g);
        f = vuf_harness_run(h, seeds[hs]);
        CHECK(f.kind == VUF_FINDING_NONE, "a used-ring write is allowed: %s", f.text);
        vuf_harness_stats st;
        vuf_harness_stats_get(h, &st);
        CHECK(st.guest_checks > 0, "%llu checks", (unsigned long long)st.guest_checks);
        CHECK_EQ(st.chains, 4, "requests completed");
        vuf_harness_free(h);
    }
}

/* A "device" that leaks: one fd opened on the first action, kept. The full
 * count finds it (every session here). */
static void leak_on_first(void *ctx, size_t i, const Vuf__Action *a)
{
    (void)a;
    int *fd = ctx;
    if (i == 1 && *fd < 0)
        *fd = open("/dev/null", O_RDONLY | O_CLOEXEC);
}

VUF_TEST(fd_count_oracle)
{
    size_t hs = seed_index("handshake.txt");
    if (hs == SIZE_MAX)
        return;
    int leaked = -1;
    vuf_harness_opts lo = {.on_action = leak_on_first, .ctx = &leaked, .fd_scan_period = 1};
    vuf_harness *h = vuf_harness_new(spec, &lo);
    vuf_finding f = vuf_harness_run(h, seeds[hs]);
    CHECK(leaked >= 0 && f.kind == VUF_FINDING_FD_LEAK, "fd leak found: %s", f.text);
    if (leaked >= 0)
        close(leaked);
    f = vuf_harness_run(h, seeds[hs]); /* the callback opens nothing now */
    CHECK(f.kind == VUF_FINDING_NONE, "clean once nothing leaks: %s", f.text);
    vuf_harness_free(h);
}

/* The accounting: a target that reports an fd as received and keeps it
 * open, as a device that forgets to close one would. It wraps the inproc
 * target and reports one fd of its own at the first fds the device gets. */
typedef struct {
    vuf_target t;
    vuf_target *inner;
    int kept;
} leaky_target;

static vuf_target_ops leaky_ops;

static void leaky_fds(void *ctx, const int *fds, size_t n)
{
    leaky_target *l = ctx;
    if (l->kept < 0)
        l->kept = open("/dev/null", O_RDONLY | O_CLOEXEC);
    int all[64];
    size_t k = 0;
    for (size_t i = 0; i < n && k < 63; i++)
        all[k++] = fds[i];
    all[k++] = l->kept;
    l->t.sink.on_fds(l->t.sink.ctx, all, k);
}

static void leaky_event(void *ctx, const vuf_event *ev)
{
    leaky_target *l = ctx;
    l->t.sink.on_event(l->t.sink.ctx, ev);
}

static int leaky_begin(vuf_target *t, const vuf_target_config *c, char *err, size_t cap)
{
    leaky_target *l = (leaky_target *)t;
    l->inner->sink = (vuf_target_sink){.on_event = leaky_event, .on_fds = leaky_fds, .ctx = l};
    return l->inner->ops->begin(l->inner, c, err, cap);
}

#define FWD(name, ret, args, call)                                                                 \
    static ret leaky_##name args                                                                   \
    {                                                                                              \
        leaky_target *l = (leaky_target *)t;                                                       \
        return l->inner->ops->name call;                                                           \
    }
FWD(end, void, (vuf_target * t), (l->inner))
FWD(connect, int, (vuf_target * t), (l->inner))
FWD(main_fd, int, (vuf_target * t), (l->inner))
FWD(disconnect, void, (vuf_target * t), (l->inner))
FWD(connected, bool, (vuf_target * t), (l->inner))
FWD(poke, void, (vuf_target * t), (l->inner))
FWD(step, bool, (vuf_target * t), (l->inner))
FWD(write, vuf_io_status,
    (vuf_target * t, const uint8_t *b, size_t n, const int *fds, const uint8_t *k, size_t nf),
    (l->inner, b, n, fds, k, nf))

static void leaky_free(vuf_target *t)
{
    leaky_target *l = (leaky_target *)t;
    vuf_target_free(l->inner);
    if (l->kept >= 0)
        close(l->kept);
    free(l);
}

VUF_TEST(fd_accounting_oracle)
{
    size_t hs = seed_index("handshake.txt");
    if (hs == SIZE_MAX)
        return;
    leaky_ops = (vuf_target_ops){.name = "leaky",
                                 .free = leaky_free,
                                 .begin = leaky_begin,
                                 .end = leaky_end,
                                 .connect = leaky_connect,
                                 .main_fd = leaky_main_fd,
                                 .write = leaky_write,
                                 .disconnect = leaky_disconnect,
                                 .connected = leaky_connected,
                                 .poke = leaky_poke,
                                 .step = leaky_step};
    leaky_target *l = calloc(1, sizeof *l);
    l->t.ops = &leaky_ops;
    l->inner = vuf_target_inproc_new(spec);
    l->kept = -1;
    /* no full count in this session: the accounting alone must see it */
    vuf_harness_opts o = {.custom = &l->t, .fd_scan_period = 1000};
    vuf_harness *h = vuf_harness_new(spec, &o);
    vuf_finding f = vuf_harness_run(h, seeds[hs]);
    CHECK(f.kind == VUF_FINDING_FD_LEAK && strstr(f.text, "received"),
          "a received fd still open is found: %s", f.text);
    vuf_harness_stats st;
    vuf_harness_stats_get(h, &st);
    CHECK_EQ(st.fd_scans, 0, "found by the accounting, not by a full count");
    vuf_harness_free(h);
}

/* MUST: the same device judged against a table where GET_FEATURES has no
 * reply: its reply is then unsolicited. */
VUF_TEST(judge_spec)
{
    size_t hs = seed_index("handshake.txt");
    if (hs == SIZE_MAX)
        return;
    size_t tl;
    const char *text = vuf_spec_default_text(&tl);
    char *mod = malloc(tl + 1);
    memcpy(mod, text, tl);
    mod[tl] = 0;
    char *p = strstr(mod, "message frontend 1 GET_FEATURES\n  initiator frontend\n  request none\n"
                          "  reply always\n  reply-payload u64\n");
    CHECK(p != NULL, "GET_FEATURES block found");
    if (p) {
        char *q = strstr(p, "  reply always\n  reply-payload u64\n");
        memcpy(q, "  reply none   \n                  \n", 35);
        vuf_diag dg;
        vuf_spec *judge = vuf_spec_parse(mod, tl, "judge.spec", &dg);
        CHECK(judge != NULL, "modified table parses: %s", dg.text);
        vuf_harness_opts jo = {.judge_spec = judge};
        vuf_harness *h = vuf_harness_new(spec, &jo);
        vuf_finding f = vuf_harness_run(h, seeds[hs]);
        CHECK(f.kind == VUF_FINDING_MUST && !strcmp(f.rule, "REPLY-ACK-UNREQUESTED"),
              "judged by the modified table: %s %s", f.rule, f.text);
        vuf_harness_free(h);
        vuf_spec_free(judge);
    }
    free(mod);
}

/* A message the table cannot build makes the session a bad input. */
VUF_TEST(bad_input)
{
    const char *text = "F>B main GET_FEATURES\nF>B main SET_FEATURES nosuchfield=1\n";
    vuf_diag dg;
    Vuf__Session *s = vuf_session_parse_text(spec, text, strlen(text), "bad", &dg);
    if (!s) {
        /* the text parser refuses it already: build one by hand */
        s = vuf_session_parse_text(spec, "F>B main GET_FEATURES\n", 22, "bad", &dg);
        CHECK(s != NULL, "session");
        if (!s)
            return;
        Vuf__Field *fld = malloc(sizeof *fld);
        vuf__field__init(fld);
        fld->path = strdup("nosuchfield");
        fld->has_value = true;
        fld->value = 1;
        Vuf__Message *m = s->actions[0]->send;
        m->fields = realloc(m->fields, (m->n_fields + 1) * sizeof *m->fields);
        m->fields[m->n_fields++] = fld;
    }
    vuf_harness *h = vuf_harness_new(spec, NULL);
    vuf_finding f = vuf_harness_run(h, s);
    CHECK(f.kind == VUF_FINDING_BAD_INPUT, "bad input: %s %s", vuf_finding_kind_name(f.kind),
          f.text);
    CHECK(f.action >= 1, "it names the action: %zu", f.action);
    vuf_harness_stats st;
    vuf_harness_stats_get(h, &st);
    CHECK_EQ(st.bad_inputs, 1, "counted");
    vuf_harness_free(h);
    vuf_session_free(s);
}

/* The kinds the fd factory records are what vuf_fd_classify says. */
VUF_TEST(fd_kinds_are_real)
{
    vuf_guest g;
    vuf_guest_init(&g, spec);
    vuf_session_guest lay;
    vuf_session_guest_of(NULL, &lay);
    CHECK(vuf_guest_setup(&g, &lay), "guest");
    vuf_fdset s;
    vuf_fdset_init(&s);
    int sv[2];
    CHECK(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) == 0, "main");
    for (int k = 0; k <= VUF__FD_KIND__FD_OTHER; k++) {
        Vuf__Fd spec_fd = VUF__FD__INIT;
        spec_fd.kind = (Vuf__FdKind)k;
        int guest;
        uint8_t kind;
        int fd = vuf_fdset_make(&s, &g, &spec_fd, false, sv[0], &guest, &kind);
        if (k == VUF__FD_KIND__FD_CLOSED_NUMBER) {
            CHECK_EQ(fd, -2, "a closed number is dropped");
            continue;
        }
        CHECK(fd >= 0, "kind %d made", k);
        CHECK_EQ(kind, vuf_fd_classify(fd), "kind %s: recorded %s, the kernel says %s",
                 vuf_session_fd_kind_name((Vuf__FdKind)k), vuf_fdkind_name((vuf_fdkind)kind),
                 vuf_fdkind_name(vuf_fd_classify(fd)));
    }
    vuf_fdset_close_all(&s);
    close(sv[0]);
    close(sv[1]);
    vuf_guest_teardown(&g);
    vuf_guest_free(&g);
}

/* The guest-memory model: a translation taken back (an accepted IOTLB
 * invalidation, REM_MEM_REG) no longer allows writes through it. */
static vuf_msg_view view_of(uint8_t *buf, const char *name, const char *fields[][2], size_t n,
                            size_t *len)
{
    const vuf_msg_def *d = vuf_spec_msg_by_name(spec, VUF_CHAN_FRONTEND, name);
    vuf_payload_builder pb;
    vuf_pb_init(&pb, d->request);
    for (size_t i = 0; i < n; i++) {
        char err[100];
        vuf_pb_set(&pb, fields[i][0], fields[i][1], err, sizeof err);
    }
    size_t pl = vuf_pb_finish(&pb);
    vuf_hdr hd = {.request = d->id, .flags = 1, .size = (uint32_t)pl};
    vuf_hdr_encode(&hd, buf);
    memcpy(buf + VUF_HDR_SIZE, pb.buf, pl);
    *len = VUF_HDR_SIZE + pl;
    vuf_msg_view v;
    vuf_msg_decode(spec, VUF_CHAN_FRONTEND, buf, *len, &v);
    return v;
}

VUF_TEST(revoked_translations)
{
    vuf_guest g;
    vuf_guest_init(&g, spec);
    vuf_session_guest lay;
    vuf_session_guest_of(NULL, &lay); /* one 64 KiB region at gpa 0, uaddr 0x7f0000000000 */
    CHECK(vuf_guest_setup(&g, &lay), "guest");
    uint8_t b1[256], b2[256], b3[256];
    size_t l1, l2, l3;
    /* ring 0: desc at uaddr +0x0, used at +0x800 */
    const char *addr[][2] = {{"index", "0"},
                             {"desc", "0x7f0000000000"},
                             {"used", "0x7f0000000800"},
                             {"avail", "0x7f0000000400"}};
    vuf_msg_view va = view_of(b1, "SET_VRING_ADDR", addr, 4, &l1);
    vuf_guest_model_request(&g, &va);
    /* a translation: iova 0x100000 -> uaddr 0x7f0000004000 (gpa 0x4000) */
    const char *upd[][2] = {{"iova", "0x100000"},
                            {"size", "0x1000"},
                            {"uaddr", "0x7f0000004000"},
                            {"perm", "3"},
                            {"type", "2"}};
    vuf_msg_view vu = view_of(b2, "IOTLB_MSG", upd, 5, &l2);
    vuf_guest_model_request(&g, &vu);
    /* descriptor 0: a device-writable buffer at iova 0x100000 */
    vuf_guest_desc(&g, 0, 0, 0x100000, 64, 2, 0);
    uint64_t gpa, len;
    size_t region;
    uint8_t *p = vuf_guest_ptr(&g, 0x4000, 1, NULL, NULL);
    *p = 0x5a; /* the device writes the buffer through the translation */
    CHECK(vuf_guest_compare(&g, &gpa, &len, &region), "a write through a held translation");
    /* the front-end invalidates it, and the device acks */
    const char *inv[][2] = {{"iova", "0x100000"}, {"size", "0x1000"}, {"type", "3"}};
    vuf_msg_view vi = view_of(b3, "IOTLB_MSG", inv, 3, &l3);
    vuf_guest_model_request(&g, &vi);
    vuf_guest_model_reply(&g, vi.def, false, &vi);
    *p = 0xa5; /* ... and writes through it again */
    CHECK(!vuf_guest_compare(&g, &gpa, &len, &region) && gpa == 0x4000,
          "a write through a revoked translation is found at 0x%llx", (unsigned long long)gpa);
    /* a refused invalidation takes nothing back */
    vuf_guest_model_request(&g, &vu);
    vuf_guest_model_reply(&g, vi.def, true, &vi);
    *p = 0x11;
    CHECK(vuf_guest_compare(&g, &gpa, &len, &region), "a refused invalidation: still allowed");
    vuf_guest_teardown(&g);
    vuf_guest_free(&g);
}

/* The disk ends at a guard page: the byte past its end is not readable. */
static bool readable(const void *p)
{
    int fds[2];
    if (pipe(fds))
        return false;
    bool ok = write(fds[1], p, 1) == 1; /* EFAULT on an inaccessible page */
    close(fds[0]);
    close(fds[1]);
    return ok;
}

VUF_TEST(disk_guard)
{
    for (int kind = 0; kind < 2; kind++) {
        vuf_target *t = kind ? vuf_target_socket_new(spec) : vuf_target_inproc_new(spec);
        char err[100];
        vuf_target_config c = {.disk_size = 4096 * 3 + 5, .queues = 1};
        CHECK(t && t->ops->begin(t, &c, err, sizeof err) == 0, "begin");
        uint64_t size = 0;
        uint8_t *disk = vuf_target_ref_disk(t, &size);
        CHECK(disk && size == c.disk_size, "the disk");
        CHECK(readable(disk) && readable(disk + size - 1), "its bytes are readable");
        CHECK(!readable(disk + size), "the byte after it is not");
        disk[0] = 7;
        t->ops->resize(t, 100);
        uint8_t *d2 = vuf_target_ref_disk(t, &size);
        CHECK(size == 100 && d2 == disk && d2[0] == 7, "a resize keeps the disk and its bytes");
        uint8_t *page_end = (uint8_t *)(((uintptr_t)d2 + size + 4095) & ~(uintptr_t)4095);
        CHECK(readable(d2 + size - 1) && !readable(page_end),
              "after a resize, the guard follows the disk's last page");
        t->ops->resize(t, 4096 * 3 + 5);
        d2 = vuf_target_ref_disk(t, &size);
        CHECK(d2[0] == 7 && d2[100] == 0 && d2[size - 1] == 0 && !readable(d2 + size),
              "a grow back reads zeros past the shrink, and the guard is exact again");
        t->ops->end(t);
        vuf_target_free(t);
    }
}

VUF_TEST(cleanup)
{
    for (size_t i = 0; i < nseeds; i++) {
        vuf_session_free(seeds[i]);
        free(names[i]);
    }
}

VUF_TEST_MAIN()
