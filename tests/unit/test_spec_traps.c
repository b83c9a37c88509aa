/* SPDX-License-Identifier: Apache-2.0 */
/* The spec-text traps (vhost-user-facts.md section 9 and the notes around its
 * tables): places where the rst prose says one thing and the protocol does
 * another. Each block checks that the built-in table encodes the protocol's
 * real behaviour; each would fail if the table copied the prose. */
#include "vuf_codec.h"
#include "vuf_spec.h"
#include "vuf_test.h"

#include <string.h>

static const vuf_spec *S;

static const vuf_msg_def *fe(const char *name)
{
    const vuf_msg_def *m = vuf_spec_msg_by_name(S, VUF_CHAN_FRONTEND, name);
    CHECK(m != NULL, "front-end message %s", name);
    return m;
}

static const vuf_msg_def *be(const char *name)
{
    const vuf_msg_def *m = vuf_spec_msg_by_name(S, VUF_CHAN_BACKEND, name);
    CHECK(m != NULL, "back-end message %s", name);
    return m;
}

static bool gated(const vuf_msg_def *m, const char *feature)
{
    int b = vuf_spec_feature_bit(S, VUF_SPACE_PROTOCOL, feature);
    return m && b >= 0 && (m->gate_protocol >> b & 1);
}

static bool fds_exact(const vuf_fd_rule *r, uint32_t n, vuf_fdkind_rule k)
{
    return r->kind == VUF_FDRULE_EXACT && r->a == n && (n == 0 || r->fdkind == k);
}

static uint64_t pbits(const char *a, const char *b)
{
    uint64_t m = 0;
    int x = vuf_spec_feature_bit(S, VUF_SPACE_PROTOCOL, a);
    if (x >= 0)
        m |= 1ull << x;
    if (b) {
        x = vuf_spec_feature_bit(S, VUF_SPACE_PROTOCOL, b);
        if (x >= 0)
            m |= 1ull << x;
    }
    return m;
}

static const vuf_value_check *check_on(const vuf_msg_def *m, const char *field)
{
    for (size_t i = 0; m && i < m->nchecks; i++)
        if (!strcmp(m->checks[i].ref.path, field))
            return &m->checks[i];
    return NULL;
}

static bool check_values(const vuf_msg_def *m, const char *field, const uint64_t *v, size_t n)
{
    const vuf_value_check *c = check_on(m, field);
    if (!c || c->kind != VUF_CHECK_IN || c->nvalues != n)
        return false;
    for (size_t i = 0; i < n; i++)
        if (c->values[i] != v[i])
            return false;
    return true;
}

static bool table(void)
{
    S = vuf_spec_default();
    CHECK(S != NULL, "built-in table");
    return S != NULL;
}

VUF_TEST(payload_traps)
{
    if (!table())
        return;
    const vuf_msg_def *m;

    /* SET_LOG_BASE: the rst says "u64" and "reply N/A", but the payload is
     * the 16-byte log description with one shm fd, and with LOG_SHMFD the
     * back-end must reply (Communication section). */
    m = fe("SET_LOG_BASE");
    if (m) {
        CHECK(m->request && m->request->fixed_size == 16 && !m->request->elem_size,
              "SET_LOG_BASE request is 16 bytes");
        CHECK(fds_exact(&m->fds, 1, VUF_FDK_SHM), "SET_LOG_BASE: 1 shm fd");
        CHECK(m->reply_cond == VUF_COND_PROTOCOL &&
                  m->reply_cond_bit ==
                      (unsigned)vuf_spec_feature_bit(S, VUF_SPACE_PROTOCOL, "LOG_SHMFD"),
              "SET_LOG_BASE replies always with LOG_SHMFD");
        CHECK(m->reply_payload && m->reply_payload->fixed_size == 8, "reply is a u64");
    }
    /* GET_INFLIGHT_FD: "reply payload N/A", but the reply is the inflight
     * description with one fd. The inflight payload is 24 bytes (tail
     * padding), not 20. */
    m = fe("GET_INFLIGHT_FD");
    if (m) {
        CHECK(m->reply == VUF_REPLY_ALWAYS, "GET_INFLIGHT_FD always replies");
        CHECK(m->reply_payload && m->reply_payload->fixed_size == 24, "inflight reply 24 bytes");
        CHECK(fds_exact(&m->reply_fds, 1, VUF_FDK_SHM), "GET_INFLIGHT_FD reply: 1 shm fd");
        CHECK(m->request && m->request->fixed_size == 24, "inflight request 24 bytes");
    }
    m = fe("SET_INFLIGHT_FD");
    if (m)
        CHECK(m->request && m->request->fixed_size == 24 && fds_exact(&m->fds, 1, VUF_FDK_SHM),
              "SET_INFLIGHT_FD: 24 bytes, 1 shm fd");
    /* IOTLB: 32 bytes with C tail padding; front-end id 22 but back-end id 1;
     * the front-end sends update/invalidate, the back-end miss/access-fail. */
    m = fe("IOTLB_MSG");
    if (m) {
        CHECK(m->id == 22 && m->request && m->request->fixed_size == 32, "IOTLB_MSG fe 22, 32 B");
        CHECK(m->gate_virtio >> 33 & 1, "IOTLB_MSG gated by IOMMU_PLATFORM (virtio 33)");
        const uint64_t v[] = {2, 3};
        CHECK(check_values(m, "type", v, 2), "front-end IOTLB types are update(2)/invalidate(3)");
        CHECK(m->reply == VUF_REPLY_ALWAYS, "IOTLB_MSG always replies (u64)");
    }
    m = be("BACKEND_IOTLB_MSG");
    if (m) {
        CHECK(m->id == 1 && m->request && m->request->fixed_size == 32, "BACKEND_IOTLB_MSG be 1");
        const uint64_t v[] = {1, 4};
        CHECK(check_values(m, "type", v, 2), "back-end IOTLB types are miss(1)/access-fail(4)");
        CHECK(m->former[0] && !strcmp(m->former[0], "SLAVE_IOTLB_MSG"), "former SLAVE_IOTLB_MSG");
    }
}

VUF_TEST(ids_and_layouts)
{
    if (!table())
        return;
    const vuf_msg_def *m;
    /* back-end ids 1..10 reuse front-end ids with other meanings */
    for (uint32_t id = 1; id <= 10; id++) {
        const vuf_msg_def *a = vuf_spec_msg(S, VUF_CHAN_FRONTEND, id);
        const vuf_msg_def *b = vuf_spec_msg(S, VUF_CHAN_BACKEND, id);
        CHECK(a && b && strcmp(a->name, b->name) && a->initiator == VUF_SIDE_FRONTEND &&
                  b->initiator == VUF_SIDE_BACKEND,
              "id %u differs between channels", id);
    }
    /* vring address: 40 bytes; the rst's ASCII table shows a "size" column
     * that is not in the struct */
    m = fe("SET_VRING_ADDR");
    if (m) {
        CHECK(m->request && m->request->fixed_size == 40, "vring_addr 40 bytes");
        vuf_field_ref r;
        CHECK(!vuf_field_resolve(m->request, "size", &r), "vring_addr has no size field");
        CHECK(m->vring.present, "vring index field");
    }
    /* ADD_MEM_REG: the rst swaps request and reply lines; the request is the
     * single region (40 bytes) with exactly one fd */
    m = fe("ADD_MEM_REG");
    if (m) {
        CHECK(m->request && m->request->fixed_size == 40, "ADD_MEM_REG request 40 bytes");
        CHECK(fds_exact(&m->fds, 1, VUF_FDK_SHM), "ADD_MEM_REG exactly 1 fd");
        CHECK(m->reply_cond == VUF_COND_AFTER && m->reply_cond_after &&
                  !strcmp(m->reply_cond_after->name, "POSTCOPY_LISTEN"),
              "ADD_MEM_REG replies always in postcopy");
    }
    /* REM_MEM_REG: 0 fds SHOULD, 1 MAY */
    m = fe("REM_MEM_REG");
    if (m)
        CHECK(m->fds.kind == VUF_FDRULE_RANGE && m->fds.a == 0 && m->fds.b == 1 &&
                  m->fds.has_should && m->fds.should == 0,
              "REM_MEM_REG fds 0..1, should 0");
    /* SET_MEM_TABLE: fd count = nregions (<= 8), and a reply after
     * POSTCOPY_LISTEN even without NEED_REPLY */
    m = fe("SET_MEM_TABLE");
    if (m) {
        CHECK(m->fds.kind == VUF_FDRULE_COUNT && m->fds.fdkind == VUF_FDK_SHM, "fds = nregions");
        CHECK(m->request && m->request->varray_field >= 0 &&
                  m->request->fields[m->request->varray_field].max_count == 8,
              "at most 8 regions");
        CHECK(m->reply_cond == VUF_COND_AFTER && m->reply_cond_after &&
                  !strcmp(m->reply_cond_after->name, "POSTCOPY_LISTEN"),
              "SET_MEM_TABLE replies always after POSTCOPY_LISTEN");
    }
    /* KICK/CALL/ERR: 1 eventfd unless the NOFD bit (8) is set — the
     * over-strict validator regression (DPDK 1407b0752e) */
    const char *kce[] = {"SET_VRING_KICK", "SET_VRING_CALL", "SET_VRING_ERR"};
    for (int i = 0; i < 3; i++) {
        m = fe(kce[i]);
        if (m)
            CHECK(m->fds.kind == VUF_FDRULE_NOFD && m->fds.a == 8 &&
                      m->fds.fdkind == VUF_FDK_EVENTFD && m->vring.present && m->vring.mask == 0xff,
                  "%s: nofd bit 8, vring index u64&0xff", kce[i]);
    }
    /* GET_VRING_BASE: num is reserved and must be 0; always replies */
    m = fe("GET_VRING_BASE");
    if (m) {
        const uint64_t z[] = {0};
        CHECK(check_values(m, "num", z, 1), "GET_VRING_BASE num in 0");
        CHECK(m->reply == VUF_REPLY_ALWAYS && m->reply_payload && m->reply_payload->fixed_size == 8,
              "GET_VRING_BASE reply 8 bytes");
    }
}

VUF_TEST(gates_and_replies)
{
    if (!table())
        return;
    const vuf_msg_def *m;
    /* GET/SET_PROTOCOL_FEATURES need bit 30 offered ("Only legal if ... is
     * present in VHOST_USER_GET_FEATURES"), a MUST; SET_VRING_ENABLE and
     * SET_BACKEND_REQ_FD carry the same "should be sent only when
     * VHOST_USER_F_PROTOCOL_FEATURES has been negotiated": both negotiated,
     * a SHOULD */
    m = fe("GET_PROTOCOL_FEATURES");
    if (m)
        CHECK(m->gate_bit30 == VUF_BIT30_OFFERED && m->gates[0].quote.verb == VUF_VERB_MUST,
              "GET_PROTOCOL_FEATURES: bit 30 offered, must");
    m = fe("SET_PROTOCOL_FEATURES");
    if (m)
        CHECK(m->gate_bit30 == VUF_BIT30_OFFERED, "SET_PROTOCOL_FEATURES: bit 30 offered");
    m = fe("SET_VRING_ENABLE");
    if (m) {
        CHECK(m->gate_bit30 == VUF_BIT30_NEGOTIATED && m->gates[0].quote.verb == VUF_VERB_SHOULD,
              "SET_VRING_ENABLE: bit 30 negotiated, should");
        const uint64_t v[] = {0, 1};
        CHECK(check_values(m, "num", v, 2), "SET_VRING_ENABLE num in 0,1");
    }
    /* SET_BACKEND_REQ_FD and NET_SET_MTU: "If
     * VHOST_USER_PROTOCOL_F_REPLY_ACK is negotiated, the back-end must
     * respond with zero ..., non-zero otherwise": with REPLY_ACK the u64
     * reply is owed with or without NEED_REPLY */
    const char *must_respond[] = {"SET_SLAVE_REQ_FD", "NET_SET_MTU"};
    for (int i = 0; i < 2; i++) {
        m = fe(must_respond[i]);
        if (m)
            CHECK(m->reply == VUF_REPLY_ACK && m->reply_cond == VUF_COND_PROTOCOL &&
                      m->reply_cond_bit ==
                          (unsigned)vuf_spec_feature_bit(S, VUF_SPACE_PROTOCOL, "REPLY_ACK") &&
                      m->reply_payload && m->reply_payload->fixed_size == 8 &&
                      m->reply_error == VUF_RERR_U64,
                  "%s replies with REPLY_ACK", must_respond[i]);
    }
    m = fe("SET_BACKEND_REQ_FD");
    if (m)
        CHECK(m->gate_bit30 == VUF_BIT30_NEGOTIATED && m->ngates == 2 &&
                  m->gates[1].cond == VUF_GATE_OFFERED,
              "SET_BACKEND_REQ_FD: bit 30 negotiated, BACKEND_REQ offered");
    /* GET_QUEUE_NUM: "set in queried protocol features": offered */
    m = fe("GET_QUEUE_NUM");
    if (m)
        CHECK(m->ngates == 1 && m->gates[0].cond == VUF_GATE_OFFERED &&
                  m->gates[0].quote.verb == VUF_VERB_SHOULD,
              "GET_QUEUE_NUM: MQ offered, should");
    /* GPU_SET_SOCKET carries a socket fd although the Communication
     * section's fd list omits it */
    m = fe("GPU_SET_SOCKET");
    if (m)
        CHECK(fds_exact(&m->fds, 1, VUF_FDK_SOCKET), "GPU_SET_SOCKET 1 socket fd");
    /* GET_CONFIG: reply size equals the request size (0 = error) */
    m = fe("GET_CONFIG");
    if (m)
        CHECK(m->reply_size_matches_request && m->reply == VUF_REPLY_ALWAYS,
              "GET_CONFIG reply-size request");
    /* config flags are values 0 (writable) and 1 (migration), not masks
     * 1 and 2 as in rust-vmm */
    m = fe("SET_CONFIG");
    if (m) {
        const uint64_t v[] = {0, 1};
        CHECK(check_values(m, "flags", v, 2), "SET_CONFIG flags in 0,1");
    }
    /* postcopy ordering; ADVISE returns the userfaultfd */
    m = fe("POSTCOPY_LISTEN");
    if (m)
        CHECK(m->nafter == 1 && !strcmp(m->after[0]->name, "POSTCOPY_ADVISE"),
              "LISTEN after ADVISE");
    m = fe("POSTCOPY_END");
    if (m)
        CHECK(m->nafter == 1 && !strcmp(m->after[0]->name, "POSTCOPY_LISTEN"), "END after LISTEN");
    m = fe("POSTCOPY_ADVISE");
    if (m)
        CHECK(fds_exact(&m->reply_fds, 1, VUF_FDK_ANY) && m->reply == VUF_REPLY_ALWAYS,
              "ADVISE replies with 1 fd");
    /* SET_DEVICE_STATE_FD: the reply has an fd unless bit 8 (no fd) is set */
    m = fe("SET_DEVICE_STATE_FD");
    if (m)
        CHECK(m->reply_fds.kind == VUF_FDRULE_NOFD && m->reply_fds.a == 8 &&
                  fds_exact(&m->fds, 1, VUF_FDK_ANY),
              "SET_DEVICE_STATE_FD reply fd unless bit 8");
    /* BACKEND_SHARED_OBJECT_LOOKUP always replies, u64 + 0..1 fd */
    m = be("BACKEND_SHARED_OBJECT_LOOKUP");
    if (m)
        CHECK(m->reply == VUF_REPLY_ALWAYS && m->reply_fds.kind == VUF_FDRULE_RANGE &&
                  m->reply_fds.a == 0 && m->reply_fds.b == 1,
              "LOOKUP reply always, 0..1 fd");
    /* BACKEND_SHMEM_UNMAP: "a reply is generated", but QEMU replies only on
     * NEED_REPLY: encoded as ack */
    m = be("BACKEND_SHMEM_UNMAP");
    if (m)
        CHECK(m->reply == VUF_REPLY_ACK && m->provisional, "SHMEM_UNMAP ack, provisional");
    m = be("BACKEND_SHMEM_MAP");
    if (m)
        CHECK(fds_exact(&m->fds, 1, VUF_FDK_ANY) || fds_exact(&m->fds, 1, VUF_FDK_SHM),
              "SHMEM_MAP exactly 1 fd");
    m = be("BACKEND_VRING_HOST_NOTIFIER_MSG");
    if (m)
        CHECK(m->fds.kind == VUF_FDRULE_RANGE && m->fds.a == 0 && m->fds.b == 1 &&
                  m->fds.fdkind == VUF_FDK_ANY,
              "HOST_NOTIFIER 0..1 fd of any kind (\"typically it's a VFIO device fd\")");
}

VUF_TEST(features_and_channels)
{
    if (!table())
        return;
    const vuf_msg_def *m;
    /* feature bits: SHMEM is 22 (rust-vmm had 21); MTU's code name is NET_MTU;
     * dependencies */
    CHECK(vuf_spec_feature_bit(S, VUF_SPACE_PROTOCOL, "SHMEM") == 22, "SHMEM = 22");
    CHECK(vuf_spec_feature_bit(S, VUF_SPACE_PROTOCOL, "GPA_ADDRESSES") == 21, "GPA = 21");
    CHECK(vuf_spec_feature_bit(S, VUF_SPACE_PROTOCOL, "NET_MTU") == 4 &&
              vuf_spec_feature_bit(S, VUF_SPACE_PROTOCOL, "MTU") == 4,
          "MTU = NET_MTU = 4");
    const vuf_feature_def *f =
        vuf_spec_feature_by_name(S, VUF_SPACE_PROTOCOL, "INBAND_NOTIFICATIONS");
    CHECK(f && f->requires == pbits("BACKEND_REQ", "REPLY_ACK") &&
              f->requires_quote.verb == VUF_VERB_MUST,
          "INBAND needs BACKEND_REQ+REPLY_ACK (\"considered an error\")");
    f = vuf_spec_feature_by_name(S, VUF_SPACE_PROTOCOL, "BACKEND_SEND_FD");
    CHECK(f && f->requires_quote.verb == VUF_VERB_SILENT,
          "BACKEND_SEND_FD's dependency is not in the rst");
    f = vuf_spec_feature_by_name(S, VUF_SPACE_PROTOCOL, "GET_VRING_BASE_INFLIGHT");
    CHECK(f && (f->requires & pbits("INFLIGHT_SHMFD", NULL)), "INFLIGHT needs INFLIGHT_SHMFD");
    f = vuf_spec_feature_by_name(S, VUF_SPACE_PROTOCOL, "GET_VRING_BASE_SKIP_DRAIN");
    CHECK(f && (f->requires & pbits("GET_VRING_BASE_INFLIGHT", "INFLIGHT_SHMFD")) ==
                   pbits("GET_VRING_BASE_INFLIGHT", "INFLIGHT_SHMFD"),
          "SKIP_DRAIN needs GET_VRING_BASE_INFLIGHT+INFLIGHT_SHMFD");
    m = fe("GET_VRING_BASE_SKIP_DRAIN");
    if (m)
        CHECK(m->id == 45 && m->provisional && gated(m, "GET_VRING_BASE_SKIP_DRAIN"),
              "id 45 provisional, gated");
    m = fe("GET_SHMEM_CONFIG");
    if (m)
        CHECK(m->id == 44 && m->provisional && gated(m, "SHMEM"), "id 44 provisional, SHMEM");
    /* the back-end channel carries fds only with BACKEND_SEND_FD, at most 8 */
    const vuf_channel_def *cd = vuf_spec_channel(S, VUF_CHAN_BACKEND);
    CHECK(cd->has_fd_gate &&
              cd->fd_gate_bit ==
                  (unsigned)vuf_spec_feature_bit(S, VUF_SPACE_PROTOCOL, "BACKEND_SEND_FD") &&
              cd->max_fds == 8 && cd->initiator == VUF_SIDE_BACKEND,
          "back-end channel: fd gate BACKEND_SEND_FD, max 8");
    /* the 256-byte config bound is QEMU's, not the rst's */
    const vuf_payload_def *cfg = vuf_spec_payload(S, "config");
    CHECK(cfg && cfg->varray_field >= 0 &&
              cfg->fields[cfg->varray_field].max_quote.verb == VUF_VERB_SILENT,
          "config's 256 is silent in the rst");
}

VUF_TEST_MAIN()
