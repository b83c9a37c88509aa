/* SPDX-License-Identifier: Apache-2.0 */
/* vuf_framer: see vuf_framer.h for the rules. */
#include "vuf_framer.h"

#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

typedef struct {
    uint8_t *data;
    size_t len, off; /* bytes, and how many were read */
    int *fds;
    uint8_t *tags;
    size_t nfds; /* still attached: 0 once taken or dropped */
} segment;

struct vuf_framer {
    segment *seg;
    size_t nseg, cap, head; /* segments [head, nseg) are queued */
    size_t pending;
    bool closed;
};

vuf_framer *vuf_framer_new(void)
{
    return calloc(1, sizeof(vuf_framer));
}

static void drop_fds(segment *s)
{
    for (size_t i = 0; i < s->nfds; i++)
        close(s->fds[i]);
    free(s->fds);
    free(s->tags);
    s->fds = NULL;
    s->tags = NULL;
    s->nfds = 0;
}

static void free_segment(segment *s)
{
    drop_fds(s);
    free(s->data);
    memset(s, 0, sizeof *s);
}

void vuf_framer_reset(vuf_framer *f)
{
    for (size_t i = f->head; i < f->nseg; i++)
        free_segment(&f->seg[i]);
    f->nseg = f->head = 0;
    f->pending = 0;
    f->closed = false;
}

void vuf_framer_free(vuf_framer *f)
{
    if (!f)
        return;
    vuf_framer_reset(f);
    free(f->seg);
    free(f);
}

vuf_io_status vuf_framer_write(vuf_framer *f, const void *buf, size_t len, const int *fds,
                               const uint8_t *tags, size_t nfds)
{
    if (nfds > VUF_SEND_MAX_FDS || (nfds && (!fds || !len)) || (len && !buf)) {
        errno = EINVAL;
        return VUF_IO_ERROR;
    }
    if (f->closed) {
        errno = EPIPE;
        return VUF_IO_ERROR;
    }
    if (!len)
        return VUF_IO_OK;
    if (f->head == f->nseg)
        f->head = f->nseg = 0; /* everything was read: start over */
    if (f->nseg == f->cap) {
        size_t nc = f->cap ? f->cap * 2 : 16;
        segment *ns = realloc(f->seg, nc * sizeof *ns);
        if (!ns) {
            errno = ENOMEM;
            return VUF_IO_ERROR;
        }
        f->seg = ns;
        f->cap = nc;
    }
    segment s = {.data = malloc(len), .len = len};
    if (nfds) {
        s.fds = malloc(nfds * sizeof(int));
        s.tags = calloc(nfds, 1);
    }
    if (!s.data || (nfds && (!s.fds || !s.tags))) {
        free(s.data);
        free(s.fds);
        free(s.tags);
        errno = ENOMEM;
        return VUF_IO_ERROR;
    }
    memcpy(s.data, buf, len);
    if (nfds)
        memcpy(s.fds, fds, nfds * sizeof(int));
    if (nfds && tags)
        memcpy(s.tags, tags, nfds);
    s.nfds = nfds;
    f->seg[f->nseg++] = s;
    f->pending += len;
    return VUF_IO_OK;
}

void vuf_framer_close(vuf_framer *f)
{
    f->closed = true;
}

bool vuf_framer_closed(const vuf_framer *f)
{
    return f->closed;
}

size_t vuf_framer_pending(const vuf_framer *f)
{
    return f->pending;
}

/* Move up to len bytes from the queue into dst (NULL: drop them). Segments
 * whose fds are met lose them: into `take` (up to its room, the rest closed,
 * *overflow set) when take is given, else closed. With stop_at_fds, the read
 * ends after the first segment that carried fds. Returns the bytes moved. */
static size_t take(vuf_framer *f, uint8_t *dst, size_t len, int *take_fds, uint8_t *take_tags,
                   size_t take_cap, size_t *ntaken, bool *overflow, bool stop_at_fds)
{
    size_t done = 0;
    while (done < len && f->head < f->nseg) {
        segment *s = &f->seg[f->head];
        size_t n = s->len - s->off;
        if (n > len - done)
            n = len - done;
        if (dst)
            memcpy(dst + done, s->data + s->off, n);
        s->off += n;
        done += n;
        f->pending -= n;
        bool had_fds = s->nfds > 0;
        if (had_fds && take_fds) {
            for (size_t i = 0; i < s->nfds; i++) {
                if (*ntaken < take_cap) {
                    if (take_tags)
                        take_tags[*ntaken] = s->tags[i];
                    take_fds[(*ntaken)++] = s->fds[i];
                } else {
                    close(s->fds[i]);
                    *overflow = true;
                }
            }
            free(s->fds);
            free(s->tags);
            s->fds = NULL;
            s->tags = NULL;
            s->nfds = 0;
        } else if (had_fds) {
            drop_fds(s);
        }
        if (s->off == s->len) {
            free_segment(s);
            f->head++;
        }
        if (had_fds && stop_at_fds)
            break;
    }
    return done;
}

static void close_msg_fds(vuf_rx_msg *m)
{
    vuf_close_fds(m->fds, &m->nfds);
}

/* The state after a read that could not complete: out of data. */
static vuf_io_status incomplete(const vuf_framer *f)
{
    return f->closed ? VUF_IO_SHORT : VUF_IO_TIMEOUT;
}

vuf_io_status vuf_framer_next(vuf_framer *f, vuf_rx_msg *msg, uint8_t *tags)
{
    if (!msg || (msg->payload_cap && !msg->payload)) {
        errno = EINVAL;
        return VUF_IO_ERROR;
    }
    msg->payload_len = 0;
    msg->nfds = 0;
    msg->hdr_len = 0;
    msg->ctrunc = false;
    if (!f->pending)
        return f->closed ? VUF_IO_EOF : VUF_IO_TIMEOUT;
    /* the header's first read, with room for VUF_MAX_FDS fds */
    bool overflow = false;
    msg->hdr_len =
        take(f, msg->hdr, VUF_HDR_SIZE, msg->fds, tags, VUF_MAX_FDS, &msg->nfds, &overflow, true);
    if (overflow) {
        msg->ctrunc = true;
        close_msg_fds(msg);
    }
    /* the rest of the header: no fds */
    msg->hdr_len += take(f, msg->hdr + msg->hdr_len, VUF_HDR_SIZE - msg->hdr_len, NULL, NULL, 0,
                         NULL, NULL, false);
    if (msg->hdr_len < VUF_HDR_SIZE) {
        close_msg_fds(msg);
        return incomplete(f);
    }
    uint32_t size;
    memcpy(&size, msg->hdr + 8, sizeof size);
    size_t max = msg->payload_cap < VUF_MAX_PAYLOAD ? msg->payload_cap : VUF_MAX_PAYLOAD;
    if (size > max) {
        close_msg_fds(msg);
        if (take(f, NULL, size, NULL, NULL, 0, NULL, NULL, false) < size)
            return incomplete(f);
        return msg->ctrunc ? VUF_IO_CTRUNC : VUF_IO_OVERSIZE;
    }
    msg->payload_len = take(f, msg->payload, size, NULL, NULL, 0, NULL, NULL, false);
    if (msg->payload_len < size) {
        close_msg_fds(msg);
        return incomplete(f);
    }
    return msg->ctrunc ? VUF_IO_CTRUNC : VUF_IO_OK;
}
