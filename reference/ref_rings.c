/* SPDX-License-Identifier: Apache-2.0 */
/* The reference device's data plane: started, enabled rings processed on a
 * kick (or when polled), each chain run on the blk model and completed in
 * the used ring, notifications, inflight tracking, and a ring that breaks
 * (reported on its error eventfd or the back-end channel) or stalls on a
 * missing IOTLB translation (asked for on the back-end channel). The only
 * code that reads or writes guest memory through the rings. */
#include "ref_int.h"

static void notify(vuf_ref *d, uint32_t qi, vuf_ref_out *out)
{
    if (d->q[qi].call >= 0)
        out->call_mask |= 1ull << qi;
    else if (vuf_ref_be_can_send(d, d->be_call))
        vuf_ref_be_push(d, BQ_CALL, qi, 0);
}

static void queue_broken(vuf_ref *d, uint32_t qi, const vuf_vq_result *r, vuf_ref_out *out)
{
    queue *q = &d->q[qi];
    q->broken = true;
    q->broken_reason = r->reason;
    d->last_reason = r->reason;
    if (r->denied && vuf_ref_be_can_send(d, d->be_iotlb))
        vuf_ref_be_push(d, BQ_ACCESS_FAIL, r->miss_iova, r->miss_perm);
    if (q->err >= 0)
        out->err_mask |= 1ull << qi;
    else if (vuf_ref_be_can_send(d, d->be_err))
        vuf_ref_be_push(d, BQ_ERR, qi, 0);
}

/* A missing translation: ask the front-end and wait for its update. */
static void queue_miss(vuf_ref *d, uint32_t qi, const vuf_vq_result *r, vuf_ref_out *out)
{
    if (!vuf_ref_be_can_send(d, d->be_iotlb)) {
        vuf_vq_result b = {.status = VUF_VQ_BROKEN,
                           .reason = "IOTLB miss with no back-end channel to ask"};
        queue_broken(d, qi, &b, out);
        return;
    }
    d->q[qi].stalled = true;
    vuf_ref_be_push(d, BQ_IOTLB_MISS, r->miss_iova, r->miss_perm);
}

/* The ring cannot go on: a missing translation waits for the front-end,
 * anything else breaks it. */
static void queue_stop(vuf_ref *d, uint32_t qi, const vuf_vq_result *r, vuf_ref_out *out)
{
    if (r->status == VUF_VQ_MISS)
        queue_miss(d, qi, r, out);
    else
        queue_broken(d, qi, r, out);
}

/* Execute one chain and complete it. false: the queue cannot go on. */
static bool run_chain(vuf_ref *d, uint32_t qi, vuf_ref_out *out)
{
    queue *q = &d->q[qi];
    vuf_vq_inflight_get(&q->vq, d->chain->head);
    vuf_blk_result br = vuf_blk_execute(&d->blk, &q->vq, d->mem, d->chain);
    if (!br.ok) {
        vuf_vq_result b = {.status = VUF_VQ_BROKEN, .reason = br.reason};
        queue_broken(d, qi, &b, out);
        return false;
    }
    vuf_vq_result pr = vuf_vq_push(&q->vq, d->mem, d->chain->head, br.written);
    if (pr.status != VUF_VQ_CHAIN) {
        queue_stop(d, qi, &pr, out);
        return false;
    }
    vuf_vq_inflight_put(&q->vq, d->chain->head);
    out->flush |= br.flush;
    d->chains++;
    return true;
}

/* Begin processing a started ring: the used index, then inflight
 * resubmission (INFLIGHT_SHMFD). */
static bool begin_ring(vuf_ref *d, uint32_t qi, vuf_ref_out *out, bool *used)
{
    queue *q = &d->q[qi];
    vuf_vq_result r = vuf_vq_start(&q->vq, d->mem);
    if (r.status == VUF_VQ_MISS || r.status == VUF_VQ_BROKEN) {
        queue_stop(d, qi, &r, out);
        return false;
    }
    uint16_t heads[VUF_VQ_MAX_SIZE];
    size_t n = vuf_vq_inflight_pending(&q->vq, d->mem, heads, VUF_VQ_MAX_SIZE);
    /* the heads left inflight were taken from the avail ring already: the
     * next one to take follows them (a front-end restarts a crashed
     * back-end's ring at the used index; libvhost-user and DPDK likewise) */
    if (n)
        q->vq.last_avail = (uint16_t)(q->vq.used_idx + n);
    for (size_t i = 0; i < n; i++) {
        vuf_vq_result cr = vuf_vq_chain_at(&q->vq, d->mem, heads[i], d->chain);
        if (cr.status != VUF_VQ_CHAIN) {
            queue_stop(d, qi, &cr, out);
            return false;
        }
        if (!run_chain(d, qi, out))
            return false;
        *used = true;
    }
    q->need_start = false; /* a stalled resubmission starts over when retried */
    return true;
}

/* Take and run what is available, up to a queue's worth. true: the ring was
 * emptied (false: it stopped, broken, stalled, or full of work). */
static bool drain_ring(vuf_ref *d, uint32_t qi, vuf_ref_out *out, bool *used)
{
    queue *q = &d->q[qi];
    for (uint32_t n = 0; n < q->vq.num; n++) {
        vuf_vq_result r = vuf_vq_pop(&q->vq, d->mem, d->chain);
        if (r.status == VUF_VQ_EMPTY)
            return true;
        if (r.status == VUF_VQ_MISS || r.status == VUF_VQ_BROKEN) {
            queue_stop(d, qi, &r, out);
            return false;
        }
        /* the used ring must translate before the request runs: a miss at
         * push time would lose the completion of a request that ran. The
         * chain is given back and taken again once the ring is mapped. */
        r = vuf_vq_check_rings(&q->vq, d->mem);
        if (r.status != VUF_VQ_EMPTY) {
            q->vq.last_avail--;
            queue_stop(d, qi, &r, out);
            return false;
        }
        if (!run_chain(d, qi, out))
            return false;
        *used = true;
    }
    return false;
}

/* Process queue qi as far as it goes now. Stopped, disabled, broken or
 * stalled rings are left alone (started + disabled: block requests have no
 * side-effect-free processing, so they wait in the avail ring). */
void vuf_ref_ring_process(vuf_ref *d, uint32_t qi, vuf_ref_out *out)
{
    queue *q = &d->q[qi];
    if (!q->started || !q->enabled || q->broken || q->stalled || !vuf_vq_ready(&q->vq) ||
        !vuf_gmem_count(d->mem))
        return;
    bool used = false;
    d->passes++;
    if (!q->need_start || begin_ring(d, qi, out, &used)) {
        bool empty = drain_ring(d, qi, out, &used);
        /* EVENT_IDX: once the device asks to be kicked past last_avail, it
         * looks again. A buffer the driver made available before it could
         * see the new avail_event would otherwise wait for a kick that the
         * driver, reading the old one, decided not to send. Bounded. */
        for (int round = 0; empty && q->vq.event_idx && round < 4; round++) {
            vuf_vq_set_avail_event(&q->vq, d->mem);
            __atomic_thread_fence(__ATOMIC_SEQ_CST);
            if (!vuf_vq_pending(&q->vq, d->mem))
                break;
            empty = drain_ring(d, qi, out, &used);
        }
    }
    if (used) {
        if (vuf_vq_should_notify(&q->vq, d->mem))
            notify(d, qi, out);
        if (q->vq.log_all && vuf_gmem_log_mapped(d->mem) && d->log_fd >= 0)
            out->log_changed = true;
    }
    if (!q->broken && !q->stalled && !q->need_start)
        vuf_vq_set_avail_event(&q->vq, d->mem);
}

void vuf_ref_ring_start(vuf_ref *d, uint32_t qi)
{
    queue *q = &d->q[qi];
    if (!q->started) {
        q->started = true;
        q->need_start = true;
    }
    q->stalled = false; /* a kick retries a stalled ring */
}

void vuf_ref_kick(vuf_ref *d, uint32_t qi, vuf_ref_out *out)
{
    if (qi >= d->cfg.queues)
        return;
    vuf_ref_ring_start(d, qi);
    vuf_ref_ring_process(d, qi, out);
    vuf_ref_be_pump(d, out);
}

void vuf_ref_rings_retry(vuf_ref *d, vuf_ref_out *out)
{
    for (uint32_t i = 0; i < d->cfg.queues; i++)
        if (d->q[i].stalled) {
            d->q[i].stalled = false;
            vuf_ref_ring_process(d, i, out);
        }
}
