/* SPDX-License-Identifier: Apache-2.0 */
/* The reference device's back-end channel: the requests it sends there
 * (IOTLB miss and access failure, config change, vring call and error),
 * queued and coalesced, one outstanding at a time when REPLY_ACK asks for
 * replies; the front-end's replies, a reply that never comes, the channel
 * closed. */
#include "ref_int.h"

#include <string.h>

/* ---------- the device's requests ---------- */

void vuf_ref_be_close(vuf_ref *d)
{
    close_fd(&d->be_fd);
    d->be_waiting = false;
    d->nbq = 0;
}

/* May the device send `def` now: channel present and every gate negotiated. */
bool vuf_ref_be_can_send(const vuf_ref *d, const vuf_msg_def *def)
{
    const vuf_channel_def *cd = vuf_spec_channel(d->spec, VUF_CHAN_BACKEND);
    return def && d->be_fd >= 0 && !(cd->requires & ~d->proto) &&
           !(def->gate_protocol & ~d->proto) && !(def->gate_virtio & ~d->acked);
}

void vuf_ref_be_push(vuf_ref *d, int kind, uint64_t a, uint32_t b)
{
    for (size_t i = 0; i < d->nbq; i++)
        if (d->bq[i].kind == kind && d->bq[i].a == a)
            return; /* already queued: coalesced */
    if (d->nbq < BQ_MAX)
        d->bq[d->nbq++] = (bq_entry){.kind = kind, .a = a, .b = b};
}

/* Send queued back-end requests while no reply is awaited. */
void vuf_ref_be_pump(vuf_ref *d, vuf_ref_out *out)
{
    while (!d->be_waiting && d->nbq && out->nmsgs < VUF_REF_OUT_MSGS) {
        bq_entry e = d->bq[0];
        memmove(&d->bq[0], &d->bq[1], (d->nbq - 1) * sizeof d->bq[0]);
        d->nbq--;
        const vuf_msg_def *def = e.kind == BQ_CONFIG ? d->be_config
                                 : e.kind == BQ_CALL ? d->be_call
                                 : e.kind == BQ_ERR  ? d->be_err
                                                     : d->be_iotlb;
        if (!vuf_ref_be_can_send(d, def))
            continue; /* no channel or not negotiated (any more): dropped */
        uint8_t pl[64] = {0};
        size_t len = 0;
        if (def == d->be_iotlb) {
            const pk_layout *k = &d->pk[PK_IOTLB];
            vuf_field_write(&k->f[0], pl, sizeof pl, e.a); /* iova */
            vuf_field_write(&k->f[3], pl, sizeof pl, e.b); /* perm */
            /* type: miss 1, fail 4 */
            vuf_field_write(&k->f[4], pl, sizeof pl, e.kind == BQ_ACCESS_FAIL ? 4u : 1u);
            len = k->def->fixed_size;
        } else if (def == d->be_call || def == d->be_err) {
            const pk_layout *k = &d->pk[PK_VRING_STATE];
            vuf_field_write(&k->f[0], pl, sizeof pl, e.a); /* index; num 0 */
            len = k->def->fixed_size;
        }
        bool ack = has(d->proto, d->bit_reply_ack);
        vuf_ref_msg *m = vuf_ref_out_msg(out, VUF_CHAN_BACKEND, def->id,
                                         VUF_F_VERSION | (ack ? VUF_F_NEED_REPLY : 0), pl, len);
        if (!m)
            return;
        if (def->id <= d->maxid[VUF_CHAN_BACKEND])
            d->accepted[VUF_CHAN_BACKEND][def->id]++; /* sent */
        if (ack) {
            m->wants_reply = true;
            d->be_waiting = true;
            d->be_wait_id = def->id;
        }
    }
}

/* ---------- the front-end's side ---------- */

void vuf_ref_handle_backend(vuf_ref *d, const uint8_t *msg, size_t len, int *fds,
                            const uint8_t *kinds, size_t nfds, vuf_ref_out *out)
{
    (void)kinds;
    /* the device's requests take no fds back: any fd is closed unused */
    for (size_t i = 0; i < nfds; i++)
        close_fd(&fds[i]);
    vuf_hdr h = {0};
    if (len >= VUF_HDR_SIZE)
        vuf_hdr_decode(msg, &h);
    if (len < VUF_HDR_SIZE || !(h.flags & VUF_F_REPLY)) {
        /* a request in the wrong direction (the front-end only replies
         * here), or garbage: the channel is closed */
        d->last_reason = out->reason = "a request from the front-end on the back-end channel";
        vuf_ref_be_close(d);
        out->backend_closed = true;
        return;
    }
    if (!d->be_waiting || h.request != d->be_wait_id) {
        d->last_reason = out->reason = "an unsolicited or mismatched reply: ignored";
        return;
    }
    /* the awaited reply; a malformed one counts as a failure */
    d->be_waiting = false;
    uint64_t v = 1;
    if ((h.flags & VUF_F_VERSION_MASK) == VUF_F_VERSION && h.size == 8 && len == VUF_HDR_SIZE + 8 &&
        nfds == 0)
        memcpy(&v, msg + VUF_HDR_SIZE, 8);
    if (v && h.request <= d->maxid[VUF_CHAN_BACKEND])
        d->refused[VUF_CHAN_BACKEND][h.request]++; /* the front-end reported a failure */
    vuf_ref_be_pump(d, out);
}

void vuf_ref_backend_timeout(vuf_ref *d, vuf_ref_out *out)
{
    if (d->be_waiting) {
        d->be_waiting = false;
        d->last_reason = "a back-end request got no reply in time";
    }
    vuf_ref_be_pump(d, out);
}

void vuf_ref_backend_closed(vuf_ref *d)
{
    vuf_ref_be_close(d);
}

void vuf_ref_set_disk(vuf_ref *d, uint8_t *disk, uint64_t size, vuf_ref_out *out)
{
    d->blk.disk = disk;
    d->blk.size = size;
    d->cfg.disk = disk;
    d->cfg.disk_size = size;
    if (vuf_ref_be_can_send(d, d->be_config))
        vuf_ref_be_push(d, BQ_CONFIG, 0, 0);
    vuf_ref_be_pump(d, out);
}

/* ---------- for the I/O layer ---------- */

int vuf_ref_backend_fd(const vuf_ref *d)
{
    return d->be_fd;
}

uint32_t vuf_ref_backend_wait_id(const vuf_ref *d)
{
    return d->be_waiting ? d->be_wait_id : 0;
}

bool vuf_ref_backend_waiting(const vuf_ref *d)
{
    return d->be_waiting;
}
