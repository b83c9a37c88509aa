/* SPDX-License-Identifier: Apache-2.0 */
/* The session format (fuzz/vuf_session.h): text <-> binary round trips for
 * every token and action, errors with exact positions, derived fields of
 * vuf_session_build, hostile binary and text input, and every trace, golden
 * trace and corpus seed of the repository. */
#include "vuf_codec.h"
#include "vuf_session.h"
#include "vuf_spec.h"
#include "vuf_test.h"
#include "vuf_trace.h"

#include <dirent.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define S vuf_test_table() /* the built-in table */

/* ---------- helpers ---------- */

static Vuf__Session *parse(const char *text, vuf_diag *d)
{
    return vuf_session_parse_text(S, text, strlen(text), "t.txt", d);
}

static bool packed_equal(const Vuf__Session *a, const Vuf__Session *b)
{
    size_t la = 0, lb = 0;
    uint8_t *pa = vuf_session_pack(a, &la), *pb = vuf_session_pack(b, &lb);
    bool eq = pa && pb && la == lb && !memcmp(pa, pb, la);
    free(pa);
    free(pb);
    return eq;
}

/* text -> binary -> text gives `canon`; canon -> binary is the same binary;
 * the binary unpacks to the same bytes. */
static void rt(const char *in, const char *canon)
{
    vuf_diag d;
    Vuf__Session *s = parse(in, &d);
    CHECK(s != NULL, "parse '%s': %u:%u %s", in, d.line, d.col, d.text);
    if (!s)
        return;
    size_t len = 0;
    uint8_t *bin = vuf_session_pack(s, &len);
    Vuf__Session *u = bin ? vuf_session_unpack(bin, len) : NULL;
    CHECK(u != NULL, "unpack of the encoded '%s'", in);
    char *text = u ? vuf_session_format_text(S, u) : NULL;
    CHECK(text && !strcmp(text, canon), "text of '%s':\n  got  '%s'\n  want '%s'", in,
          text ? text : "(null)", canon);
    if (text) {
        Vuf__Session *s2 = parse(text, &d);
        CHECK(s2 != NULL, "reparse '%s': %u:%u %s", text, d.line, d.col, d.text);
        if (s2) {
            CHECK(packed_equal(s, s2), "binary -> text -> binary changed the bytes of '%s'", in);
            char *text2 = vuf_session_format_text(S, s2);
            CHECK(text2 && !strcmp(text2, text), "the canonical text of '%s' is not stable", in);
            free(text2);
        }
        vuf_session_free(s2);
    }
    free(text);
    vuf_session_free(u);
    free(bin);
    vuf_session_free(s);
}

/* A line that is the canonical text of itself. */
static void rt_same(const char *line)
{
    char buf[4096];
    snprintf(buf, sizeof buf, "%s\n", line);
    rt(line, buf);
}

static void fails(const char *text, unsigned line, unsigned col, const char *frag)
{
    vuf_diag d;
    Vuf__Session *s = parse(text, &d);
    CHECK(s == NULL, "'%s' should not parse", text);
    if (s) {
        vuf_session_free(s);
        return;
    }
    CHECK(d.line == line && d.col == col, "'%s': error at %u:%u, want %u:%u (%s)", text, d.line,
          d.col, line, col, d.text);
    CHECK(strstr(d.text, frag) != NULL, "'%s': '%s' lacks '%s'", text, d.text, frag);
    CHECK(!strcmp(d.file, "t.txt"), "diag file '%s'", d.file);
}

/* Parse one message line and build it. */
static vuf_session_wire W;
static const vuf_session_wire *build(const char *line)
{
    vuf_diag d;
    Vuf__Session *s = parse(line, &d);
    CHECK(s && s->n_actions == 1, "parse '%s': %u:%u %s", line, d.line, d.col, d.text);
    if (!s || s->n_actions != 1) {
        vuf_session_free(s);
        return NULL;
    }
    const Vuf__Action *a = s->actions[0];
    bool be = a->action_case == VUF__ACTION__ACTION_BACKEND_SEND;
    char err[256];
    int rc = vuf_session_build(S, be ? VUF_CHAN_BACKEND : VUF_CHAN_FRONTEND,
                               be ? a->backend_send : a->send, &W, err, sizeof err);
    CHECK(rc == 0, "build '%s': %s", line, err);
    vuf_session_free(s);
    return rc ? NULL : &W;
}

static uint64_t pl_u64(const vuf_session_wire *w, size_t off)
{
    uint64_t v = 0;
    if (VUF_HDR_SIZE + off + 8 <= w->len)
        memcpy(&v, w->data + VUF_HDR_SIZE + off, 8);
    return v;
}

static uint32_t pl_u32(const vuf_session_wire *w, size_t off)
{
    uint32_t v = 0;
    if (VUF_HDR_SIZE + off + 4 <= w->len)
        memcpy(&v, w->data + VUF_HDR_SIZE + off, 4);
    return v;
}

static char *read_file(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return NULL;
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    char *b = malloc((size_t)n + 1);
    if (b && fread(b, 1, (size_t)n, f) != (size_t)n) {
        free(b);
        b = NULL;
    }
    fclose(f);
    if (b) {
        b[n] = 0;
        *len = (size_t)n;
    }
    return b;
}

static uint64_t rng = 0x9e3779b97f4a7c15ull;
static uint64_t rnd(void)
{
    rng ^= rng << 13;
    rng ^= rng >> 7;
    rng ^= rng << 17;
    return rng;
}

/* Whatever a session is, printing and building it must not crash. */
static void exercise(const Vuf__Session *s)
{
    char *text = vuf_session_format_text(S, s);
    CHECK(text != NULL, "format of an unpacked session");
    if (text) {
        vuf_diag d;
        Vuf__Session *back = parse(text, &d);
        vuf_session_free(back);
        free(text);
    }
    for (size_t i = 0; i < s->n_actions; i++) {
        const Vuf__Action *a = s->actions[i];
        char err[256];
        if (a->action_case == VUF__ACTION__ACTION_SEND)
            vuf_session_build(S, VUF_CHAN_FRONTEND, a->send, &W, err, sizeof err);
        else if (a->action_case == VUF__ACTION__ACTION_BACKEND_SEND)
            vuf_session_build(S, VUF_CHAN_BACKEND, a->backend_send, &W, err, sizeof err);
    }
}

/* ---------- round trips ---------- */

VUF_TEST(round_trips)
{
    /* config: every field, none, printed first */
    rt_same("config disk_size=0x100000 queues=2 mem_size=0x10000 mem_regions=2 mem_gpa=0x1000 "
            "mem_uaddr=0x7f0000000000 queue_size=0x40");
    rt_same("config");
    rt("kick\nconfig queues=1 # comment\n", "config queues=1\nkick\n");
    rt("config queue_size=16 disk_size=4096", "config disk_size=0x1000 queue_size=0x10\n");

    /* messages: names, ids, flags, header fields */
    rt_same("F>B main GET_FEATURES");
    rt_same("F>B main SET_FEATURES u64=0x150000000");
    rt_same("F>B main SET_OWNER need_reply");
    rt_same("F>B main GET_FEATURES reply");
    rt_same("F>B main SET_VRING_NUM need_reply hdr.flags=0x31 hdr.size=0x40 index=0 num=0x80");
    rt_same("F>B main SET_VRING_NUM reply need_reply hdr.flags=0x35 hdr.size=0x40 u64=0x80");
    rt_same("F>B main SET_VRING_NUM hdr.flags=1 index=1 num=2");
    rt_same("F>B main SET_SLAVE_REQ_FD need_reply fds=socket");
    rt_same("F>B main set_owner");
    rt_same("F>B main 99");
    rt_same("F>B main 99 raw=0102");
    rt_same("F>B main 21 fds=socket");
    rt_same("F>B main 0 hdr.size=5");
    rt_same("F>B main SET_VRING_NUM raw=");
    rt_same("F>B main SET_VRING_NUM raw=00000000");
    rt_same("F>B backend BACKEND_IOTLB_MSG reply u64=0");
    rt_same("F>B backend BACKEND_CONFIG_CHANGE_MSG reply need_reply u64=1");
    rt_same("F>B backend GET_FEATURES");
    rt_same("F>B main BACKEND_IOTLB_MSG iova=0x1000 size=0x10 uaddr=0 perm=1 type=1");
    rt_same("F>B backend 77 hdr.flags=5 raw=ff");
    rt("F>B backend 77 hdr.flags=0x5 raw=ff", "F>B backend 77 hdr.flags=5 raw=ff\n");
    /* payload fields: integers, elements, bytes, tails, padding, counts */
    rt_same("F>B main SET_MEM_TABLE need_reply regions[0].guest_addr=0 regions[0].size=0x10000 "
            "regions[0].user_addr=0x7f0000000000 regions[0].mmap_offset=0 fds=guest:0");
    rt_same("F>B main SET_MEM_TABLE nregions=9 regions[1].size=0x1000");
    rt_same("F>B main GET_CONFIG offset=0 size=4 flags=0 payload=00000000");
    rt_same("F>B main SET_CONFIG offset=0x20 flags=0 payload=01");
    rt_same("F>B main SET_CONFIG payload=");
    rt_same("F>B main IOTLB_MSG iova=0 size=0x1000 uaddr=0x7f0000000000 perm=3 type=2 "
            "pad@26=010203040506");
    rt_same("F>B main GET_SHARED_OBJECT uuid=00112233445566778899aabbccddeeff");
    rt_same("F>B main SET_INFLIGHT_FD mmap_size=0x1000 mmap_offset=0 num_queues=1 queue_size=0x10");
    rt_same("F>B main SET_VRING_ADDR index=0 flags=1 desc=0x7f0000000000 used=0x7f0000000800 "
            "avail=0x7f0000000400 log_guest_addr=0x800");
    /* replies: the always-explicit layout, a conditional one (explicit and ack) */
    rt_same("F>B main GET_VRING_BASE reply index=0 num=0x2a");
    rt_same("F>B main SET_MEM_TABLE reply u64=0");
    rt_same("F>B main SET_MEM_TABLE reply regions[0].guest_addr=0x1000 regions[0].size=0x1000");
    /* fds: every kind, sizes and refs, none; nofd; truncate */
    rt_same("F>B main SET_VRING_KICK u64=0 fds=eventfd,memfd,memfd:0x1000,file,file:5,socket,"
            "socket-closed,socket-listen,socket-dgram,pipe-r,pipe-w,devnull,main,backend,closed,"
            "dup:3,guest:1,other");
    rt_same("F>B main SET_VRING_KICK u64=0 fds=none");
    rt_same("F>B main SET_VRING_KICK u64=0 fds=none nofd=0");
    rt_same("F>B main SET_VRING_CALL u64=0x100 fds=eventfd nofd=1");
    rt_same("F>B main SET_VRING_CALL nofd=1");
    rt_same("F>B main SET_VRING_NUM index=0 num=1 truncate=0xe");
    rt_same("F>B main SET_VRING_NUM index=0 num=1 truncate=0");
    rt_same("F>B main SET_BACKEND_REQ_FD need_reply raw=0000000000000000");
    rt_same("F>B main short=");
    rt_same("F>B main short=01");
    rt_same("F>B main short=0100000001000000000000");
    rt_same("F>B backend short=0200");
    /* a message with a partial header that is not the short= form */
    rt_same("F>B main GET_FEATURES hdr.flags=1 hdr.size=0 fds=none truncate=5");
    rt_same("F>B main 1 hdr.flags=1 hdr.size=0 truncate=5");
    /* canonicalization: numbers, aliases, channel words, order of tokens */
    rt("F>B main SET_VRING_NUM index=010 num=16", "F>B main SET_VRING_NUM index=8 num=0x10\n");
    rt("F>B frontend SET_VRING_KICK fds=pipe,unknown,memfd:4096 u64=0 truncate=12 need_reply",
       "F>B main SET_VRING_KICK need_reply u64=0 fds=pipe-r,closed,memfd:0x1000 truncate=0xc\n");
    rt("F>B main SET_VRING_NUM truncate=3 fds=none hdr.size=2 num=1 need_reply hdr.flags=1",
       "F>B main SET_VRING_NUM need_reply hdr.flags=1 hdr.size=2 num=1 fds=none truncate=3\n");
    rt("F>B main SET_VRING_KICK fds=eventfd fds=memfd:0x10",
       "F>B main SET_VRING_KICK fds=eventfd,memfd:0x10\n");
    rt("F>B main 1 hdr.flags=0 hdr.size=0 fds=none truncate=3", "F>B main short=010000\n");
    rt_same("F>B main 1 hdr.flags=1 hdr.size=0 fds=none truncate=3"); /* flags beyond the cut */
    rt("F>B main SET_VRING_NUM raw=AbCd", "F>B main SET_VRING_NUM raw=abcd\n");
    rt("F>B main GET_CONFIG payload=FF", "F>B main GET_CONFIG payload=ff\n");

    /* the front-end's side of a conversation is kept, the device's dropped */
    rt("open main\nopen frontend\nclose main\nclose main by=F\nclose backend by=F\n",
       "open main\nopen main\nclose main\nclose main\nclose backend\n");
    rt("open backend\nclose main by=B\nclose backend by=B\n"
       "B>F main GET_FEATURES reply u64=0x150000000\n"
       "B>F backend BACKEND_IOTLB_MSG need_reply iova=0x1000 size=0 uaddr=0 perm=1 type=1 "
       "fds=pipe\n"
       "B>F main short=01\n",
       "");
    rt("\n\n   # only comments\n\t\r\n", "");

    /* harness actions */
    rt_same("backend-reply ack");
    rt_same("backend-reply nack");
    rt_same("backend-reply nack=0x1234");
    rt_same("backend-reply nack=0");
    rt_same("backend-reply wrong-id");
    rt_same("backend-reply no-reply-flag");
    rt_same("backend-reply wrong-size");
    rt_same("backend-reply late");
    rt_same("backend-reply never");
    rt_same("mem-write gpa=0x2000 data=0100000000000000");
    rt_same("mem-write gpa=0 data=");
    rt_same("desc index=0");
    rt_same("desc queue=1 index=2 addr=0x3000 len=0x10 flags=1 next=3 table=0x2000");
    rt("desc table=0x2000 next=0 flags=5 len=9 addr=1 index=0 queue=0",
       "desc queue=0 index=0 addr=1 len=9 flags=5 next=0 table=0x2000\n");
    rt_same("avail head=0");
    rt_same("avail queue=0 head=1 idx=0xffff");
    rt_same("blk type=in");
    rt_same("blk type=out");
    rt_same("blk type=flush");
    rt_same("blk type=get-id");
    rt_same("blk type=3");
    rt_same("blk type=0xffffffff");
    rt("blk type=1", "blk type=out\n");
    rt("blk type=8", "blk type=get-id\n");
    rt_same("blk queue=0 type=out sector=0x10 len=0x400 data=a5a5 indirect segments=3");
    rt_same("blk type=out data=");
    rt("blk indirect type=in", "blk type=in indirect\n");
    rt_same("kick");
    rt_same("kick queue=1");
    rt_same("kick queue=0 inband");
    rt("kick inband", "kick inband\n");
    rt_same("raw main data=0100000000000000");
    rt_same("raw backend data=");
    rt_same("raw main data=00 fds=socket,guest:0,memfd:0x10");
    rt_same("resize 0x200000");
    rt_same("resize 0");
    rt("resize 512", "resize 0x200\n");

    /* a whole session: order kept, config first */
    rt("F>B main GET_FEATURES\nconfig queues=1\nkick\nB>F main GET_FEATURES reply u64=1\n"
       "blk type=in\n",
       "config queues=1\nF>B main GET_FEATURES\nkick\nblk type=in\n");
}

/* Binary sessions the text parser would never produce, built by hand. */
VUF_TEST(binary_round_trips)
{
    /* canonical binaries made directly (not from text) */
    Vuf__Message m = VUF__MESSAGE__INIT;
    Vuf__Action a = VUF__ACTION__INIT;
    Vuf__Action *ap = &a;
    Vuf__Session s = VUF__SESSION__INIT;
    s.n_actions = 1;
    s.actions = &ap;
    a.action_case = VUF__ACTION__ACTION_SEND;
    a.send = &m;
    char name[] = "Set_Slave_Req_Fd";
    m.name = name;
    m.has_need_reply = m.need_reply = true;
    char *text = vuf_session_format_text(S, &s);
    CHECK(text && !strcmp(text, "F>B main Set_Slave_Req_Fd need_reply\n"), "got '%s'",
          text ? text : "(null)");
    vuf_diag d;
    Vuf__Session *back = text ? parse(text, &d) : NULL;
    CHECK(back && packed_equal(&s, back), "a former name in any case round trips");
    vuf_session_free(back);
    free(text);

    /* non-canonical parts print as the harness reads them */
    m.has_reply = true; /* reply=false: no flag */
    m.reply = false;
    m.has_id = true; /* the name wins */
    m.id = 7;
    text = vuf_session_format_text(S, &s);
    CHECK(text && !strcmp(text, "F>B main Set_Slave_Req_Fd need_reply\n"), "got '%s'", text);
    free(text);
    char bogus[] = "NO SUCH\nNAME";
    m.name = bogus; /* not in the table: the id travels */
    text = vuf_session_format_text(S, &s);
    CHECK(text && !strcmp(text, "F>B main 7 need_reply\n"), "got '%s'", text);
    free(text);
    char err[256];
    CHECK(vuf_session_build(S, VUF_CHAN_FRONTEND, &m, &W, err, sizeof err) == 0 &&
              W.hdr.request == 7 && W.def && W.def->id == 7 && W.hdr.flags == 0x9,
          "an unknown name sends the id");
    m.has_id = false;
    text = vuf_session_format_text(S, &s);
    CHECK(text && !strcmp(text, "F>B main 0 need_reply\n"), "got '%s'", text);
    free(text);
    CHECK(vuf_session_build(S, VUF_CHAN_FRONTEND, &m, &W, err, sizeof err) == 0 &&
              W.hdr.request == 0 && !W.def && W.nfds == 0 && W.len == VUF_HDR_SIZE,
          "an unknown name without id sends id 0 with no payload");

    /* a field path with separators prints as one token the parser refuses */
    Vuf__Field f = VUF__FIELD__INIT, *fp = &f;
    char path[] = "a b#c=d";
    f.path = path;
    f.has_value = true;
    f.value = 12;
    m.name = NULL;
    m.has_id = true;
    m.id = 8;
    m.has_need_reply = false;
    m.n_fields = 1;
    m.fields = &fp;
    text = vuf_session_format_text(S, &s);
    CHECK(text && !strcmp(text, "F>B main 8 a?b?c?d=0xc\n"), "got '%s'", text ? text : "(null)");
    back = text ? parse(text, &d) : NULL;
    CHECK(!back && d.line == 1 && d.col == 12 && strstr(d.text, "unknown field"),
          "the bad path is refused at 1:12: %u:%u %s", d.line, d.col, d.text);
    vuf_session_free(back);
    free(text);
    CHECK(vuf_session_build(S, VUF_CHAN_FRONTEND, &m, &W, err, sizeof err) == -1 &&
              strstr(err, "unknown field 'a b#c=d'"),
          "build refuses the bad path: %s", err);
    /* an integer path given bytes, a byte path given a number */
    char ipath[] = "num";
    f.path = ipath;
    f.has_value = false;
    f.has_bytes = true;
    CHECK(vuf_session_build(S, VUF_CHAN_FRONTEND, &m, &W, err, sizeof err) == -1 &&
              strstr(err, "takes a number"),
          "bytes for an integer: %s", err);
    char bpath[] = "payload";
    f.path = bpath;
    f.has_bytes = false;
    f.has_value = true;
    m.id = 24; /* GET_CONFIG */
    CHECK(vuf_session_build(S, VUF_CHAN_FRONTEND, &m, &W, err, sizeof err) == -1 &&
              strstr(err, "takes bytes"),
          "a number for bytes: %s", err);
    /* both set: the layout decides, and so does the printer */
    uint8_t one = 0xab;
    f.has_bytes = true;
    f.bytes.len = 1;
    f.bytes.data = &one;
    text = vuf_session_format_text(S, &s);
    CHECK(text && !strcmp(text, "F>B main 24 payload=ab\n"), "got '%s'", text);
    free(text);
    CHECK(vuf_session_build(S, VUF_CHAN_FRONTEND, &m, &W, err, sizeof err) == 0 &&
              W.len == VUF_HDR_SIZE + 13 && W.data[VUF_HDR_SIZE + 12] == 0xab && pl_u32(&W, 4) == 1,
          "GET_CONFIG payload=ab built: %s", err);
    /* raw and fields: raw wins, in the wire and in the text */
    m.has_raw_payload = true;
    m.raw_payload.len = 1;
    m.raw_payload.data = &one;
    text = vuf_session_format_text(S, &s);
    CHECK(text && !strcmp(text, "F>B main 24 raw=ab\n"), "got '%s'", text);
    free(text);
    CHECK(vuf_session_build(S, VUF_CHAN_FRONTEND, &m, &W, err, sizeof err) == 0 &&
              W.len == VUF_HDR_SIZE + 1,
          "raw wins");
    m.has_raw_payload = false;
    m.n_fields = 0;

    /* fds outside the enum: unpack refuses, the printer and build say other */
    Vuf__Fd fd = VUF__FD__INIT, *fdp = &fd;
    fd.kind = (Vuf__FdKind)99;
    fd.has_ref = true; /* ignored for this kind */
    m.n_fds = 1;
    m.fds = &fdp;
    text = vuf_session_format_text(S, &s);
    CHECK(text && !strcmp(text, "F>B main 24 fds=other\n"), "got '%s'", text);
    free(text);
    CHECK(vuf_session_build(S, VUF_CHAN_FRONTEND, &m, &W, err, sizeof err) == 0 && W.nfds == 1 &&
              W.fds[0].kind == VUF__FD_KIND__FD_OTHER,
          "kind 99 is built as other");
    size_t len = 0;
    uint8_t *bin = vuf_session_pack(&s, &len);
    Vuf__Session *u = bin ? vuf_session_unpack(bin, len) : (Vuf__Session *)1;
    CHECK(u == NULL, "unpack refuses fd kind 99");
    free(bin);
    fd.kind = VUF__FD_KIND__FD_DUP;
    fd.has_ref = false; /* dup without ref: printed as dup:0 */
    text = vuf_session_format_text(S, &s);
    CHECK(text && !strcmp(text, "F>B main 24 fds=dup:0\n"), "got '%s'", text);
    free(text);
    m.n_fds = 0;

    /* a backend reply kind outside the enum */
    Vuf__BackendReply br = VUF__BACKEND_REPLY__INIT;
    br.kind = (Vuf__BackendReply__Kind)42;
    a.action_case = VUF__ACTION__ACTION_BACKEND_REPLY;
    a.backend_reply = &br;
    bin = vuf_session_pack(&s, &len);
    u = bin ? vuf_session_unpack(bin, len) : (Vuf__Session *)1;
    CHECK(u == NULL, "unpack refuses reply kind 42");
    free(bin);
    br.kind = VUF__BACKEND_REPLY__KIND__LATE;
    bin = vuf_session_pack(&s, &len);
    u = bin ? vuf_session_unpack(bin, len) : NULL;
    CHECK(u && u->n_actions == 1 &&
              u->actions[0]->backend_reply->kind == VUF__BACKEND_REPLY__KIND__LATE,
          "a valid reply kind unpacks");
    vuf_session_free(u);
    free(bin);

    /* an empty action has no text; the empty session packs to nothing */
    a.action_case = VUF__ACTION__ACTION__NOT_SET;
    text = vuf_session_format_text(S, &s);
    CHECK(text && !strcmp(text, ""), "an empty action prints nothing: '%s'", text);
    free(text);
    Vuf__Session e = VUF__SESSION__INIT;
    bin = vuf_session_pack(&e, &len);
    CHECK(bin && len == 0, "empty session: %zu bytes", len);
    u = vuf_session_unpack(bin, len);
    CHECK(u && u->n_actions == 0 && !u->config, "empty bytes are an empty session");
    vuf_session_free(u);
    free(bin);
    u = vuf_session_unpack(NULL, 0);
    CHECK(u != NULL, "NULL, 0 is an empty session");
    vuf_session_free(u);
    CHECK(vuf_session_unpack(NULL, 5) == NULL, "NULL with a length");
}

/* ---------- errors ---------- */

VUF_TEST(errors)
{
    fails("F>B main SET_VRING_NUM index=0 nums=1", 1, 32, "unknown field 'nums'");
    fails("F>B main SET_VRING_NUM index=0x100000000", 1, 24, "does not fit");
    fails("F>B main SET_MEM_TABLE regions[9].size=1", 1, 24, "beyond its max");
    fails("F>B main GET_CONFIG payload=abc", 1, 21, "bad hex");
    fails("F>B main GET_FEATURES u64=1", 1, 23, "GET_FEATURES takes no payload fields");
    fails("F>B main 99 u64=1", 1, 13, "an unknown message id takes no payload fields");
    fails("F>B main SET_VRING_NUM raw=00 index=1", 1, 24, "exclusive");
    fails("F>B main SET_VRING_NUM raw=0", 1, 28, "bad raw bytes");
    fails("F>B main NOPE", 1, 10, "unknown message 'NOPE'");
    fails("F>B main 0x100000000", 1, 10, "too large");
    fails("F>B sideways GET_FEATURES", 1, 5, "bad channel");
    fails("F>B main", 1, 9, "expected a channel and a message");
    fails("F>B main GET_FEATURES bogus", 1, 23, "unexpected 'bogus' (expected reply");
    fails("F>B main SET_VRING_KICK hdr.flags=x", 1, 35, "bad flags");
    fails("F>B main SET_VRING_KICK hdr.size=0x100000000", 1, 34, "bad size");
    fails("F>B main SET_VRING_KICK truncate=-1", 1, 34, "bad truncate");
    fails("F>B main SET_VRING_KICK nofd=2", 1, 30, "expected 0 or 1");
    fails("F>B main SET_VRING_KICK fds=eventfd,bogus", 1, 37, "unknown fd kind 'bogus'");
    fails("F>B main SET_VRING_KICK fds=memfd:xyz", 1, 35, "bad size 'xyz'");
    fails("F>B main SET_VRING_KICK fds=dup", 1, 29, "needs a number");
    fails("F>B main SET_VRING_KICK fds=guest:-1", 1, 35, "bad number");
    fails("F>B main SET_VRING_KICK fds=eventfd:3", 1, 36, "takes no ':'");
    fails("F>B main SET_VRING_KICK fds=", 1, 29, "empty fd list");
    fails("F>B main SET_VRING_KICK fds=eventfd,", 1, 37, "empty fd kind");
    fails("F>B main SET_VRING_KICK fds=none,eventfd", 1, 29, "unknown fd kind 'none'");
    fails("F>B main SET_VRING_KICK fds=none fds=eventfd", 1, 38, "exclusive");
    fails("F>B main SET_VRING_KICK fds=eventfd fds=none", 1, 41, "exclusive");
    fails("F>B main short=0102 x", 1, 10, "bad short message");
    fails("F>B main short=000102030405060708090a0b", 1, 10, "at most 11 bytes");
    /* 65 fds */
    {
        char line[1024] = "F>B main SET_VRING_KICK fds=eventfd";
        for (int i = 1; i < 65; i++)
            strcat(line, ",eventfd");
        fails(line, 1, 29 + 64 * 8, "too many fds");
    }
    fails("frobnicate", 1, 1, "unexpected 'frobnicate' (expected F>B, B>F");
    fails("  kick queue=x", 1, 14, "bad value 'x' for queue=");
    fails("kick queue=1 queue=2", 1, 14, "duplicate 'queue'");
    fails("kick inband=1", 1, 6, "unexpected 'inband=1' in kick (expected queue= or inband)");
    fails("config queues=0x100000000", 1, 15, "expected a u32");
    fails("config\n\nconfig", 3, 1, "second config line (the first is on line 1)");
    fails("config bogus=1", 1, 8, "unexpected 'bogus=1' in config");
    fails("desc queue=1", 1, 13, "missing index= in desc");
    fails("desc queue=1 # no index", 1, 13, "missing index= in desc");
    fails("desc index=1 addr=0x1z", 1, 19, "bad value '0x1z' for addr=");
    fails("avail idx=1", 1, 12, "missing head=");
    fails("blk type=write", 1, 10, "bad type 'write'");
    fails("blk sector=1", 1, 13, "missing type=");
    fails("blk type=in indirect=1", 1, 13, "unexpected 'indirect=1'");
    fails("mem-write gpa=0 data=abc", 1, 22, "bad bytes for data=");
    fails("mem-write data=00", 1, 18, "missing gpa=");
    fails("backend-reply maybe", 1, 15, "unknown reply kind 'maybe'");
    fails("backend-reply", 1, 14, "missing the reply kind");
    fails("backend-reply ack ack", 1, 19, "expected end of line");
    fails("backend-reply nack=-1", 1, 20, "bad value '-1' for nack=");
    fails("raw sideways data=00", 1, 5, "expected a channel after 'raw'");
    fails("raw main", 1, 9, "missing data= in raw");
    fails("raw main data=00 fds=none", 1, 22, "fds=none is not allowed here");
    fails("raw main data=00 fds=bogus", 1, 22, "unknown fd kind");
    fails("resize", 1, 7, "missing the disk size");
    fails("resize big", 1, 8, "bad size 'big'");
    fails("resize 1 2", 1, 10, "expected end of line");
    fails("open sideways", 1, 6, "expected a channel after 'open'");
    fails("open main by=F", 1, 11, "expected end of line");
    fails("close main by=X", 1, 12, "expected by=F or by=B");
    fails("close", 1, 6, "expected a channel after 'close'");
    /* B>F lines are checked by the trace parser, with its positions */
    fails("B>F main GET_FEATURES reply u64=zz", 1, 29, "bad number 'zz'");
    fails("kick\nB>F main GET_FEATURES reply fds=memfd:1", 2, 33, "unknown fd kind 'memfd:1'");
    /* lines and bytes */
    fails("kick\n\nF>B main NOPE\nkick", 3, 10, "unknown message");
    {
        const char t[] = "kick\nkick\0x\n";
        vuf_diag d;
        Vuf__Session *s = vuf_session_parse_text(S, t, sizeof t - 1, "t.txt", &d);
        CHECK(!s && d.line == 2 && d.col == 5 && strstr(d.text, "NUL byte"),
              "NUL byte at 2:5: %u:%u %s", d.line, d.col, d.text);
        vuf_session_free(s);
    }
    fails("F>B main GET_FEATURES \x01\x7f", 1, 23, "unexpected '?\?'");
}

/* ---------- derived fields ---------- */

VUF_TEST(derived)
{
    const vuf_session_wire *w;
    /* SET_MEM_TABLE, 2 regions, no fds: 2 memfds sized mmap_offset+size, nregions 2 */
    w = build("F>B main SET_MEM_TABLE regions[0].size=0x10000 regions[0].mmap_offset=0x1000 "
              "regions[1].guest_addr=0x10000 regions[1].size=0x20000 regions[1].mmap_offset=0");
    if (w) {
        CHECK(w->hdr.request == 5 && w->hdr.flags == 1 && w->hdr.size == 72 &&
                  w->len == VUF_HDR_SIZE + 72,
              "SET_MEM_TABLE header: id %u flags %u size %u len %zu", w->hdr.request, w->hdr.flags,
              w->hdr.size, w->len);
        CHECK(pl_u32(w, 0) == 2, "nregions derived: %u", pl_u32(w, 0));
        CHECK(w->nfds == 2, "2 fds derived, got %zu", w->nfds);
        CHECK(w->nfds == 2 && w->fds[0].kind == VUF__FD_KIND__FD_MEMFD &&
                  w->fds[1].kind == VUF__FD_KIND__FD_MEMFD,
              "both memfds");
        CHECK(w->nfds == 2 && w->fds[0].has_size && w->fds[0].size == 0x11000 &&
                  w->fds[1].has_size && w->fds[1].size == 0x20000,
              "sizes 0x11000 and 0x20000: %llx %llx", (unsigned long long)w->fds[0].size,
              (unsigned long long)w->fds[1].size);
        CHECK(w->fd_size_derived[0] && w->fd_size_derived[1], "sizes marked derived");
        CHECK(w->def && !strcmp(w->def->name, "SET_MEM_TABLE"), "def");
    }
    /* a third memfd has no region: the default size; an explicit size is kept */
    w = build("F>B main SET_MEM_TABLE regions[0].size=0x10000 fds=memfd,memfd:0x500,memfd,eventfd");
    if (w) {
        CHECK(w->nfds == 4 && w->fds[0].size == 0x10000 && w->fd_size_derived[0] &&
                  w->fds[1].size == 0x500 && !w->fd_size_derived[1] && w->fds[2].size == 4096 &&
                  w->fd_size_derived[2] && !w->fds[3].has_size && !w->fd_size_derived[3],
              "explicit fds: sizes derived only where absent");
        CHECK(pl_u32(w, 0) == 1, "nregions 1 with 4 fds given");
    }
    /* the count field says how many fds */
    w = build("F>B main SET_MEM_TABLE nregions=3 regions[0].size=0x1000");
    CHECK(w && w->nfds == 3 && pl_u32(w, 0) == 3 && w->fds[0].size == 0x1000 &&
              w->fds[1].size == 4096 && w->fds[2].size == 4096,
          "nregions=3 with 1 region: 3 memfds");
    w = build("F>B main SET_MEM_TABLE nregions=0x100 regions[0].size=0x1000");
    CHECK(w && w->nfds == 8, "count capped at the channel's max-fds (8): %zu", w ? w->nfds : 0);
    w = build("F>B main SET_MEM_TABLE");
    CHECK(w && w->nfds == 0 && w->hdr.size == 8 && pl_u32(w, 0) == 0, "no regions: no fds");
    /* the fd span overflows, is 0 or is over 1 GiB: 4096 */
    w = build("F>B main SET_MEM_TABLE regions[0].size=2 regions[0].mmap_offset=0xffffffffffffffff");
    CHECK(w && w->nfds == 1 && w->fds[0].size == 4096, "overflowing span -> 4096");
    w = build("F>B main SET_MEM_TABLE regions[0].size=0");
    CHECK(w && w->nfds == 1 && w->fds[0].size == 4096, "empty span -> 4096");
    w = build("F>B main SET_MEM_TABLE regions[0].size=0x40000001");
    CHECK(w && w->nfds == 1 && w->fds[0].size == 4096, "span over 1 GiB -> 4096");
    w = build("F>B main SET_MEM_TABLE regions[0].size=0x40000000");
    CHECK(w && w->nfds == 1 && w->fds[0].size == 0x40000000, "span of exactly 1 GiB is kept");

    /* SET_VRING_KICK: NOFD rule */
    w = build("F>B main SET_VRING_KICK u64=0");
    CHECK(w && w->nfds == 1 && w->fds[0].kind == VUF__FD_KIND__FD_EVENTFD && pl_u64(w, 0) == 0,
          "u64=0, no fds -> 1 eventfd, bit 8 clear");
    w = build("F>B main SET_VRING_KICK u64=0 fds=none");
    CHECK(w && w->nfds == 0 && pl_u64(w, 0) == 0x100, "u64=0 fds=none -> bit 8 set: %llx",
          w ? (unsigned long long)pl_u64(w, 0) : 0ull);
    w = build("F>B main SET_VRING_KICK nofd=0 fds=none");
    CHECK(w && w->nfds == 0 && pl_u64(w, 0) == 0, "nofd=0 fds=none -> bit 8 clear, no fd");
    w = build("F>B main SET_VRING_KICK u64=0x101");
    CHECK(w && w->nfds == 0 && pl_u64(w, 0) == 0x101, "bit set by the field -> no fd");
    w = build("F>B main SET_VRING_CALL u64=0x101 fds=eventfd");
    CHECK(w && w->nfds == 1 && pl_u64(w, 0) == 0x1, "an fd given clears the bit");
    w = build("F>B main SET_VRING_CALL u64=1 fds=eventfd nofd=1");
    CHECK(w && w->nfds == 1 && pl_u64(w, 0) == 0x101, "nofd=1 with an fd: broken on purpose");
    w = build("F>B main SET_VRING_ERR nofd=1");
    CHECK(w && w->nfds == 0 && pl_u64(w, 0) == 0x100, "nofd=1 alone: no fd");
    w = build("F>B main SET_VRING_KICK raw=0000000000000000");
    CHECK(w && w->nfds == 1 && pl_u64(w, 0) == 0, "raw payload: fds read from it");
    w = build("F>B main SET_VRING_KICK raw=0001000000000000");
    CHECK(w && w->nfds == 0 && pl_u64(w, 0) == 0x100, "raw with the bit: no fd");
    w = build("F>B main SET_VRING_KICK raw=0000000000000000 fds=none");
    CHECK(w && w->nfds == 0 && pl_u64(w, 0) == 0, "raw payloads are verbatim");
    w = build("F>B main SET_VRING_KICK raw=0000000000000000 nofd=1");
    CHECK(w && w->nfds == 0 && pl_u64(w, 0) == 0x100, "nofd= forces the bit of a raw payload");
    w = build("F>B main SET_VRING_KICK raw=0000");
    CHECK(w && w->nfds == 1 && w->len == VUF_HDR_SIZE + 2, "short raw: reads as 0 -> 1 fd");

    /* SET_LOG_BASE: memfd size = mmap_offset + mmap_size */
    w = build("F>B main SET_LOG_BASE mmap_size=0x2000 mmap_offset=0x1000");
    CHECK(w && w->nfds == 1 && w->fds[0].kind == VUF__FD_KIND__FD_MEMFD && w->fds[0].has_size &&
              w->fds[0].size == 0x3000 && w->fd_size_derived[0],
          "SET_LOG_BASE memfd of 0x3000");
    w = build("F>B main SET_LOG_BASE mmap_size=0x2000 fds=file");
    CHECK(w && w->nfds == 1 && w->fds[0].kind == VUF__FD_KIND__FD_FILE && w->fds[0].size == 0x2000,
          "a file is sized too");
    w = build("F>B main SET_LOG_BASE mmap_size=0x2000 fds=file:7");
    CHECK(w && w->nfds == 1 && w->fds[0].size == 7 && !w->fd_size_derived[0], "explicit size kept");
    w = build("F>B main ADD_MEM_REG guest_addr=0x100000 size=0x10000 user_addr=0x7f0000100000 "
              "mmap_offset=0x2000");
    CHECK(w && w->nfds == 1 && w->fds[0].size == 0x12000, "ADD_MEM_REG fd span");
    w = build("F>B main SET_INFLIGHT_FD mmap_size=0x1000 num_queues=1 queue_size=16");
    CHECK(w && w->nfds == 1 && w->fds[0].size == 0x1000, "SET_INFLIGHT_FD fd span");
    w = build("F>B main SET_LOG_BASE raw=");
    CHECK(w && w->nfds == 1 && w->fds[0].size == 4096, "no bytes for the span: 4096");
    w = build("F>B main SET_LOG_FD");
    CHECK(w && w->nfds == 1 && w->fds[0].kind == VUF__FD_KIND__FD_EVENTFD && !w->fds[0].has_size,
          "SET_LOG_FD: 1 eventfd");
    w = build("F>B main SET_BACKEND_REQ_FD need_reply");
    CHECK(w && w->nfds == 1 && w->fds[0].kind == VUF__FD_KIND__FD_SOCKET && w->hdr.flags == 9 &&
              w->len == VUF_HDR_SIZE,
          "SET_BACKEND_REQ_FD: 1 socket");
    w = build("F>B main SET_DEVICE_STATE_FD direction=0 phase=0");
    CHECK(w && w->nfds == 1 && w->fds[0].kind == VUF__FD_KIND__FD_EVENTFD, "any -> eventfd");
    w = build("F>B main REM_MEM_REG size=0x1000");
    CHECK(w && w->nfds == 0, "0..1 -> 0 fds");
    w = build("F>B main GET_FEATURES");
    CHECK(w && w->nfds == 0 && w->len == VUF_HDR_SIZE && w->hdr.size == 0, "GET_FEATURES");
    w = build("F>B main 99 raw=0102");
    CHECK(w && !w->def && w->hdr.request == 99 && w->nfds == 0 && w->len == VUF_HDR_SIZE + 2,
          "unknown id: raw payload, no fds");

    /* replies use the reply's rules */
    w = build("F>B backend BACKEND_SHMEM_MAP shmid=0 fd_offset=0x1000 len=0x2000");
    CHECK(w && w->nfds == 1 && w->fds[0].kind == VUF__FD_KIND__FD_MEMFD && w->fds[0].size == 0x3000,
          "BACKEND_SHMEM_MAP request: 1 memfd sized from fd_offset+len");
    w = build("F>B backend BACKEND_SHMEM_MAP reply u64=0");
    CHECK(w && w->nfds == 0 && w->hdr.flags == 5 && w->hdr.size == 8, "its ack: no fd");
    w = build("F>B main SET_DEVICE_STATE_FD reply u64=0");
    CHECK(w && w->nfds == 1 && pl_u64(w, 0) == 0, "SET_DEVICE_STATE_FD reply: nofd rule, 1 fd");
    w = build("F>B main SET_DEVICE_STATE_FD reply u64=0 fds=none");
    CHECK(w && w->nfds == 0 && pl_u64(w, 0) == 0x100, "its reply with no fd sets bit 8");
    w = build("F>B main SET_MEM_TABLE reply u64=0");
    CHECK(w && w->hdr.size == 8 && w->nfds == 0, "conditional reply as an ack");
    w = build("F>B main SET_MEM_TABLE reply regions[0].size=0x1000");
    CHECK(w && w->hdr.size == 40 && pl_u32(w, 0) == 1, "conditional reply, explicit layout");
    /* names from the other channel: that message's id, layout and rules */
    w = build("F>B backend GET_FEATURES");
    CHECK(w && w->hdr.request == 1 && w->def && w->def->channel == VUF_CHAN_FRONTEND &&
              w->len == VUF_HDR_SIZE,
          "GET_FEATURES on the back-end channel is id 1");
    w = build("F>B main BACKEND_SHMEM_MAP len=1");
    CHECK(w && w->hdr.request == 9 && w->nfds == 1 && w->fds[0].size == 1,
          "BACKEND_SHMEM_MAP on the main channel: id 9, its fd rule");

    /* header overrides and truncation */
    w = build("F>B main SET_VRING_NUM index=0 num=16 hdr.size=4");
    CHECK(w && w->hdr.size == 4 && w->len == VUF_HDR_SIZE + 8 && pl_u32(w, 4) == 16,
          "hdr.size override keeps the payload");
    CHECK(w && w->data[8] == 4 && w->data[9] == 0, "hdr.size on the wire");
    w = build("F>B main SET_VRING_NUM hdr.flags=0x11 need_reply index=1 num=2");
    CHECK(w && w->hdr.flags == 0x19 && w->data[4] == 0x19, "flags: given | need_reply");
    w = build("F>B main SET_VRING_NUM hdr.flags=0x5 u64=7");
    CHECK(w && w->hdr.flags == 5 && w->hdr.size == 8 && pl_u64(w, 0) == 7,
          "REPLY in hdr.flags: the ack layout");
    w = build("F>B main SET_VRING_NUM hdr.flags=0 index=1 num=2");
    CHECK(w && w->hdr.flags == 0, "flags 0 (no version)");
    w = build("F>B main SET_VRING_NUM index=1 num=2 truncate=10");
    CHECK(w && w->len == 10 && w->hdr.size == 8, "truncate=10: 10 bytes");
    w = build("F>B main SET_VRING_NUM index=1 num=2 truncate=100");
    CHECK(w && w->len == VUF_HDR_SIZE + 8, "truncate beyond the length: unchanged");
    w = build("F>B main SET_VRING_NUM index=1 num=2 truncate=0");
    CHECK(w && w->len == 0, "truncate=0: nothing");
    w = build("F>B main short=0100000001");
    CHECK(w && w->len == 5 && !memcmp(w->data, "\x01\x00\x00\x00\x01", 5) && w->nfds == 0,
          "short=: the bytes, no fds");
    w = build("F>B main short=0c");
    CHECK(w && w->len == 1 && w->data[0] == 12 && w->nfds == 0,
          "short= of SET_VRING_KICK: no derived fd");

    /* errors of build */
    Vuf__Message m = VUF__MESSAGE__INIT;
    char err[256];
    m.has_raw_payload = true;
    m.raw_payload.len = VUF_SESSION_MAX_PAYLOAD + 1;
    m.raw_payload.data = malloc(m.raw_payload.len);
    CHECK(vuf_session_build(S, VUF_CHAN_FRONTEND, &m, &W, err, sizeof err) == -1 &&
              strstr(err, "at most 65536"),
          "raw payload over 64 KiB: %s", err);
    m.raw_payload.len = VUF_SESSION_MAX_PAYLOAD;
    CHECK(vuf_session_build(S, VUF_CHAN_FRONTEND, &m, &W, err, sizeof err) == 0 &&
              W.len == VUF_HDR_SIZE + VUF_SESSION_MAX_PAYLOAD && W.hdr.size == 65536,
          "raw payload of 64 KiB");
    free(m.raw_payload.data);
    m.has_raw_payload = false;
    Vuf__Fd fds[65], *fdp[65];
    for (int i = 0; i < 65; i++) {
        vuf__fd__init(&fds[i]);
        fdp[i] = &fds[i];
    }
    m.fds = fdp;
    m.n_fds = 65;
    CHECK(vuf_session_build(S, VUF_CHAN_FRONTEND, &m, &W, err, sizeof err) == -1 &&
              strstr(err, "at most 64"),
          "65 fds: %s", err);
    m.n_fds = 64;
    CHECK(vuf_session_build(S, VUF_CHAN_FRONTEND, &m, &W, err, sizeof err) == 0 && W.nfds == 64,
          "64 fds");
    CHECK(vuf_session_build(S, VUF_CHAN_COUNT, &m, &W, err, sizeof err) == -1, "bad channel");
}

/* ---------- hostile input ---------- */

VUF_TEST(hostile)
{
    /* random buffers */
    uint8_t buf[512];
    size_t unpacked = 0;
    for (int it = 0; it < 20000; it++) {
        size_t n = rnd() % sizeof buf;
        for (size_t i = 0; i < n; i++)
            buf[i] = (uint8_t)rnd();
        if (it % 4 == 0 && n) /* look like a session: an actions field */
            buf[0] = 0x12;
        Vuf__Session *s = vuf_session_unpack(buf, n);
        if (s) {
            unpacked++;
            exercise(s);
            vuf_session_free(s);
        }
    }
    /* mutations of a rich valid session */
    const char *rich = "config disk_size=0x100000 queues=1 mem_size=0x10000\n"
                       "F>B main SET_MEM_TABLE need_reply regions[0].size=0x10000 "
                       "regions[1].size=0x1000 fds=guest:0,memfd\n"
                       "F>B main GET_CONFIG offset=0 flags=0 payload=00000000\n"
                       "F>B main IOTLB_MSG iova=0 size=0x1000 pad@26=010203040506\n"
                       "F>B backend BACKEND_CONFIG_CHANGE_MSG reply u64=0\n"
                       "F>B main SET_VRING_KICK u64=0 fds=none nofd=0 truncate=3\n"
                       "F>B main short=0102\n"
                       "backend-reply nack=5\nmem-write gpa=0 data=0102\n"
                       "desc index=0 addr=1 len=2 flags=3 next=4 table=5\navail head=0 idx=1\n"
                       "blk type=out data=a5 indirect segments=2\nkick inband\n"
                       "raw backend data=00 fds=socket,dup:1\nclose backend\nclose main\n"
                       "open main\nresize 5\n";
    vuf_diag d;
    Vuf__Session *r = parse(rich, &d);
    CHECK(r != NULL, "rich session: %u:%u %s", d.line, d.col, d.text);
    size_t len = 0;
    uint8_t *bin = r ? vuf_session_pack(r, &len) : NULL;
    size_t mutated_ok = 0;
    for (int it = 0; bin && it < 20000; it++) {
        uint8_t *m = malloc(len + 8);
        memcpy(m, bin, len);
        size_t ml = len;
        int k = 1 + (int)(rnd() % 4);
        for (int j = 0; j < k; j++) {
            switch (rnd() % 3) {
            case 0:
                m[rnd() % ml] ^= (uint8_t)(1u << (rnd() % 8));
                break;
            case 1:
                m[rnd() % ml] = (uint8_t)rnd();
                break;
            default:
                ml -= rnd() % (ml / 4 + 1);
                break;
            }
            if (!ml)
                break;
        }
        Vuf__Session *s = vuf_session_unpack(m, ml);
        if (s) {
            mutated_ok++;
            exercise(s);
            vuf_session_free(s);
        }
        free(m);
    }
    CHECK(mutated_ok > 1000, "mutations that still unpack: %zu", mutated_ok);
    free(bin);
    vuf_session_free(r);
    printf("hostile binary: %zu of 20000 random buffers and %zu of 20000 mutations unpacked\n",
           unpacked, mutated_ok);

    /* hostile text: token soup */
    static const char *const words[] = {
        "F>B",
        "B>F",
        "main",
        "backend",
        "frontend",
        "open",
        "close",
        "config",
        "kick",
        "blk",
        "desc",
        "avail",
        "raw",
        "resize",
        "mem-write",
        "backend-reply",
        "nack=",
        "type=",
        "index=",
        "head=",
        "data=",
        "fds=",
        "memfd:",
        "dup:",
        "none",
        "short=",
        "raw=",
        "hdr.size=",
        "hdr.flags=",
        "truncate=",
        "nofd=",
        "reply",
        "need_reply",
        "SET_MEM_TABLE",
        "regions[",
        "].size=",
        "u64=",
        "payload=",
        "pad@",
        "GET_CONFIG",
        "SET_VRING_KICK",
        "#",
        "=",
        ",",
        "0x",
        "ffff",
        "1",
        "99",
        "18446744073709551616",
        " ",
        "\t",
        "\n",
        "\r",
        "\x01",
        "\xff",
        "by=B",
        "inband",
        "indirect",
        "0",
        "a5",
    };
    size_t nw = sizeof words / sizeof words[0];
    size_t parsed = 0;
    for (int it = 0; it < 20000; it++) {
        char text[512];
        size_t tl = 0;
        int nt = (int)(rnd() % 24);
        for (int j = 0; j < nt; j++) {
            const char *wd = words[rnd() % nw];
            size_t wl = strlen(wd);
            if (tl + wl + 1 >= sizeof text)
                break;
            memcpy(text + tl, wd, wl);
            tl += wl;
            if (rnd() % 2)
                text[tl++] = ' ';
        }
        Vuf__Session *s = vuf_session_parse_text(S, text, tl, "soup", &d);
        if (s) {
            parsed++;
            exercise(s);
            vuf_session_free(s);
        } else {
            CHECK(d.line >= 1 && d.text[0], "an error has a position and a text");
        }
    }
    printf("hostile text: %zu of 20000 token soups parsed\n", parsed);
}

/* ---------- files: detection, traces, corpus ---------- */

VUF_TEST(load_file)
{
    char dir[] = "/tmp/vuf_session_test_XXXXXX";
    CHECK(mkdtemp(dir) != NULL, "mkdtemp");
    char p[256];
    snprintf(p, sizeof p, "%s/a.txt", dir);
    FILE *f = fopen(p, "w");
    fputs("config queues=1\nresize 5\n", f);
    fclose(f);
    bool bin = true;
    vuf_diag d;
    Vuf__Session *t = vuf_session_load_file(S, p, &bin, &d);
    CHECK(t && !bin && t->n_actions == 1 && t->config, "text file: %s", t ? "" : d.text);
    size_t len = 0;
    uint8_t *b = t ? vuf_session_pack(t, &len) : NULL;
    CHECK(b && !vuf_session_is_text(b, len), "this binary is not text");
    snprintf(p, sizeof p, "%s/a.bin", dir);
    f = fopen(p, "wb");
    fwrite(b, 1, len, f);
    fclose(f);
    Vuf__Session *u = vuf_session_load_file(S, p, &bin, &d);
    CHECK(u && bin && packed_equal(t, u), "binary file detected");
    vuf_session_free(u);
    free(b);
    vuf_session_free(t);
    /* neither text nor a session */
    snprintf(p, sizeof p, "%s/junk", dir);
    f = fopen(p, "wb");
    fwrite("\x12\xff\xff\xff\x00", 1, 5, f);
    fclose(f);
    u = vuf_session_load_file(S, p, &bin, &d);
    CHECK(!u && strstr(d.text, "neither text"), "junk: %s", d.text);
    /* an empty file is text: the empty session */
    snprintf(p, sizeof p, "%s/empty", dir);
    fclose(fopen(p, "w"));
    u = vuf_session_load_file(S, p, &bin, &d);
    CHECK(u && !bin && u->n_actions == 0, "empty file");
    vuf_session_free(u);
    unlink(p);
    snprintf(p, sizeof p, "%s/junk", dir);
    unlink(p);
    snprintf(p, sizeof p, "%s/a.bin", dir);
    unlink(p);
    snprintf(p, sizeof p, "%s/a.txt", dir);
    unlink(p);
    rmdir(dir);
    u = vuf_session_load_file(S, "/nonexistent/x", &bin, &d);
    CHECK(!u && strstr(d.text, "cannot open") && !strcmp(d.file, "/nonexistent/x"), "missing");
    /* the rule */
    CHECK(vuf_session_is_text((const uint8_t *)"caf\xc3\xa9 \t\r\n", 9), "UTF-8 is text");
    CHECK(!vuf_session_is_text((const uint8_t *)"\xc3", 1), "a cut sequence is not");
    CHECK(!vuf_session_is_text((const uint8_t *)"\xc0\xaf", 2), "an overlong is not");
    CHECK(!vuf_session_is_text((const uint8_t *)"\xed\xa0\x80", 3), "a surrogate is not");
    CHECK(!vuf_session_is_text((const uint8_t *)"a\x01", 2), "a control character is not");
    CHECK(!vuf_session_is_text((const uint8_t *)"\x7f", 1), "DEL is not");
}

static const vuf_fdkind trace_kind_of[] = {
    [VUF__FD_KIND__FD_EVENTFD] = VUF_FDKIND_EVENTFD,
    [VUF__FD_KIND__FD_MEMFD] = VUF_FDKIND_MEMFD,
    [VUF__FD_KIND__FD_SOCKET] = VUF_FDKIND_SOCKET,
    [VUF__FD_KIND__FD_SOCKET_PEER_CLOSED] = VUF_FDKIND_SOCKET_CLOSED,
    [VUF__FD_KIND__FD_SOCKET_LISTEN] = VUF_FDKIND_SOCKET_LISTEN,
    [VUF__FD_KIND__FD_SOCKET_DGRAM] = VUF_FDKIND_SOCKET_DGRAM,
    [VUF__FD_KIND__FD_PIPE_READ] = VUF_FDKIND_PIPE,
    [VUF__FD_KIND__FD_PIPE_WRITE] = VUF_FDKIND_PIPE,
    [VUF__FD_KIND__FD_FILE] = VUF_FDKIND_FILE,
    [VUF__FD_KIND__FD_DEVNULL] = VUF_FDKIND_DEVNULL,
    [VUF__FD_KIND__FD_MAIN_CHANNEL] = VUF_FDKIND_SOCKET,
    [VUF__FD_KIND__FD_BACKEND_CHANNEL] = VUF_FDKIND_SOCKET,
    [VUF__FD_KIND__FD_CLOSED_NUMBER] = VUF_FDKIND_UNKNOWN,
    [VUF__FD_KIND__FD_DUP] = VUF_FDKIND_OTHER,
    [VUF__FD_KIND__FD_GUEST_MEMORY] = VUF_FDKIND_MEMFD,
    [VUF__FD_KIND__FD_OTHER] = VUF_FDKIND_OTHER,
};

/* A valid trace encodes; decode(encode(x)) encodes to the same bytes; the
 * harness's side of it is what is kept, with the trace's wire bytes. */
static void check_trace_file(const char *path)
{
    size_t len;
    char *text = read_file(path, &len);
    CHECK(text != NULL, "read %s", path);
    if (!text)
        return;
    vuf_diag d;
    vuf_trace *t = vuf_trace_parse(S, text, len, path, &d);
    /* a trace's `device` line and `note` events (docs/trace-format.md) are
     * the recording's, not something a session plays: commented out */
    for (char *l = text; l && *l; l = strchr(l, '\n') ? strchr(l, '\n') + 1 : NULL)
        if (!strncmp(l, "device ", 7) || !strncmp(l, "note ", 5))
            *l = '#';
    Vuf__Session *s = vuf_session_parse_text(S, text, len, path, &d);
    CHECK(s != NULL, "%s does not encode: %s:%u:%u: %s", path, d.file, d.line, d.col, d.text);
    CHECK(t != NULL, "%s is not a valid trace", path);
    if (!s || !t) {
        vuf_session_free(s);
        vuf_trace_free(t);
        free(text);
        return;
    }
    size_t blen = 0;
    uint8_t *bin = vuf_session_pack(s, &blen);
    Vuf__Session *u = vuf_session_unpack(bin, blen);
    char *canon = u ? vuf_session_format_text(S, u) : NULL;
    Vuf__Session *s2 = canon ? parse(canon, &d) : NULL;
    CHECK(s2 != NULL, "%s: the decoded text does not parse: %u:%u %s", path, d.line, d.col, d.text);
    CHECK(s2 && packed_equal(s, s2), "%s: encode(decode(encode(x))) != encode(x)", path);
    /* the front-end's events of the trace, one action each, same bytes */
    size_t k = 0;
    for (size_t i = 0; i < vuf_trace_count(t); i++) {
        const vuf_event *e = vuf_trace_event(t, i);
        if (e->sender != VUF_SIDE_FRONTEND || e->kind == VUF_EV_NOTE ||
            (e->kind == VUF_EV_OPEN && e->channel != 0))
            continue;
        if (k >= s->n_actions) {
            CHECK(false, "%s: fewer actions than front-end events", path);
            break;
        }
        const Vuf__Action *a = s->actions[k++];
        if (e->kind == VUF_EV_OPEN) {
            CHECK(a->action_case == VUF__ACTION__ACTION_CONNECT, "%s:%u: open main", path, e->line);
            continue;
        }
        if (e->kind == VUF_EV_CLOSE) {
            CHECK(a->action_case == (e->channel ? VUF__ACTION__ACTION_CLOSE_BACKEND
                                                : VUF__ACTION__ACTION_DISCONNECT),
                  "%s:%u: close", path, e->line);
            continue;
        }
        bool be = e->channel == VUF_CHAN_BACKEND;
        if (a->action_case != (be ? VUF__ACTION__ACTION_BACKEND_SEND : VUF__ACTION__ACTION_SEND)) {
            CHECK(false, "%s:%u: a message, got action case %d", path, e->line, a->action_case);
            break; /* out of step: the rest would compare the wrong actions */
        }
        const Vuf__Message *m = be ? a->backend_send : a->send;
        char err[256];
        if (!m || vuf_session_build(S, e->channel, m, &W, err, sizeof err)) {
            CHECK(false, "%s:%u: build: %s", path, e->line, m ? err : "no message");
            continue;
        }
        bool nofd_adjusted = false;
        if (W.def && !m->has_raw_payload && e->len >= VUF_HDR_SIZE) {
            const vuf_fd_rule *r = (W.hdr.flags & VUF_F_REPLY) ? &W.def->reply_fds : &W.def->fds;
            nofd_adjusted = r->kind == VUF_FDRULE_NOFD;
        }
        /* the bytes match, except the NOFD bit that follows the fd count */
        CHECK(W.len == e->len && (nofd_adjusted || !memcmp(W.data, e->data, e->len)),
              "%s:%u: wire bytes differ from the trace's", path, e->line);
        if (e->nfds) {
            bool same = W.nfds == e->nfds;
            for (size_t j = 0; same && j < e->nfds; j++)
                same = trace_kind_of[W.fds[j].kind] == e->fds[j];
            CHECK(same, "%s:%u: fds differ from the trace's", path, e->line);
        }
    }
    CHECK(k == s->n_actions, "%s: %zu front-end events, %zu actions", path, k, s->n_actions);
    vuf_session_free(s2);
    free(canon);
    vuf_session_free(u);
    free(bin);
    vuf_trace_free(t);
    vuf_session_free(s);
    free(text);
}

static size_t for_each_file(const char *sub, const char *suffix, void (*fn)(const char *))
{
    char dir[512];
    snprintf(dir, sizeof dir, "%s/%s", VUF_SOURCE_DIR, sub);
    DIR *dd = opendir(dir);
    CHECK(dd != NULL, "opendir %s", dir);
    if (!dd)
        return 0;
    size_t n = 0;
    for (struct dirent *e; (e = readdir(dd));) {
        size_t l = strlen(e->d_name), sl = strlen(suffix);
        if (l <= sl || strcmp(e->d_name + l - sl, suffix))
            continue;
        char p[1024];
        snprintf(p, sizeof p, "%s/%s", dir, e->d_name);
        fn(p);
        n++;
    }
    closedir(dd);
    return n;
}

static void check_seed(const char *path)
{
    vuf_diag d;
    bool bin;
    Vuf__Session *s = vuf_session_load_file(S, path, &bin, &d);
    CHECK(s && !bin, "%s does not encode: %s:%u:%u: %s", path, d.file, d.line, d.col, d.text);
    if (!s)
        return;
    /* written seeds start with a config line; recordings of QEMU (qemu-*) have none */
    const char *base = strrchr(path, '/') ? strrchr(path, '/') + 1 : path;
    CHECK(s->config != NULL || !strncmp(base, "qemu-", 5), "%s: a seed has a config line", path);
    size_t msgs = 0;
    for (size_t i = 0; i < s->n_actions; i++) {
        const Vuf__Action *a = s->actions[i];
        const Vuf__Message *m = a->action_case == VUF__ACTION__ACTION_SEND ? a->send
                                : a->action_case == VUF__ACTION__ACTION_BACKEND_SEND
                                    ? a->backend_send
                                    : NULL;
        char err[256];
        if (!m)
            continue;
        msgs++;
        CHECK(!vuf_session_build(S, a->action_case == VUF__ACTION__ACTION_SEND ? 0 : 1, m, &W, err,
                                 sizeof err),
              "%s: action %zu: %s", path, i + 1, err);
    }
    CHECK(msgs >= 4, "%s: a handshake (%zu messages)", path, msgs);
    size_t blen = 0;
    uint8_t *b = vuf_session_pack(s, &blen);
    Vuf__Session *u = vuf_session_unpack(b, blen);
    char *canon = u ? vuf_session_format_text(S, u) : NULL;
    Vuf__Session *s2 = canon ? parse(canon, &d) : NULL;
    CHECK(s2 && packed_equal(s, s2), "%s: decode/encode is stable", path);
    vuf_session_free(s2);
    free(canon);
    vuf_session_free(u);
    free(b);
    vuf_session_free(s);
}

VUF_TEST(trace_files)
{
    size_t n = for_each_file("tests/traces", ".trace", check_trace_file);
    n += for_each_file("tests/golden", ".trace", check_trace_file);
    CHECK(n >= 80, "%zu trace files", n);
}

VUF_TEST(corpus_seeds)
{
    size_t seeds = for_each_file("corpus", ".txt", check_seed);
    CHECK(seeds >= 30, "%zu corpus seeds", seeds);
}

VUF_TEST_MAIN()
