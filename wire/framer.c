/* SPDX-License-Identifier: Apache-2.0 */
/* vuf_framer: see vuf_framer.h for the rules. */
#include "vuf_framer.h"

#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* The bytes of every write go into one buffer, their fds into one array:
 * a segment is offsets into both. Both are reused once everything queued
 * was read (no allocation per write once they are large enough). */
typedef struct {
    size_t off, len, read; /* in bytes[] */
    size_t fd0, nfds;      /* in fds[]/tags[]; nfds 0 once taken or dropped */
} segment;

struct vuf_framer {
    segment *seg;
    size_t nseg, cap, head; /* segments [head, nseg) are queued */
    uint8_t *bytes;
    size_t nbytes, bytes_cap;
    int *fds;
    uint8_t *tags;
    size_t nfd, fd_cap;
    size_t pending;
    bool closed;
};

vuf_framer *vuf_framer_new(void)
{
    return calloc(1, sizeof(vuf_framer));
}

static void drop_fds(vuf_framer *f, segment *s)
{
    for (size_t i = 0; i < s->nfds; i++)
        if (f->fds[s->fd0 + i] >= 0)
            close(f->fds[s->fd0 + i]);
    s->nfds = 0;
}

void vuf_framer_reset(vuf_framer *f)
{
    for (size_t i = f->head; i < f->nseg; i++)
        drop_fds(f, &f->seg[i]);
    f->nseg = f->head = 0;
    f->nbytes = f->nfd = 0;
    f->pending = 0;
    f->closed = false;
}

void vuf_framer_free(vuf_framer *f)
{
    if (!f)
        return;
    vuf_framer_reset(f);
    free(f->seg);
    free(f->bytes);
    free(f->fds);
    free(f->tags);
    free(f);
}

static bool grow(void **p, size_t *cap, size_t need, size_t elem)
{
    if (need <= *cap)
        return true;
    size_t nc = *cap ? *cap : 16;
    while (nc < need)
        nc *= 2;
    void *np = realloc(*p, nc * elem);
    if (!np)
        return false;
    *p = np;
    *cap = nc;
    return true;
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
    if (f->head == f->nseg) /* everything was read: start over */
        f->head = f->nseg = f->nbytes = f->nfd = 0;
    size_t tag_cap = f->fd_cap;
    if (!grow((void **)&f->seg, &f->cap, f->nseg + 1, sizeof *f->seg) ||
        !grow((void **)&f->bytes, &f->bytes_cap, f->nbytes + len, 1) ||
        !grow((void **)&f->fds, &f->fd_cap, f->nfd + nfds, sizeof(int)) ||
        !grow((void **)&f->tags, &tag_cap, f->fd_cap, 1)) {
        errno = ENOMEM;
        return VUF_IO_ERROR;
    }
    memcpy(f->bytes + f->nbytes, buf, len);
    if (nfds) {
        memcpy(f->fds + f->nfd, fds, nfds * sizeof(int));
        if (tags)
            memcpy(f->tags + f->nfd, tags, nfds);
        else
            memset(f->tags + f->nfd, 0, nfds);
    }
    f->seg[f->nseg++] = (segment){.off = f->nbytes, .len = len, .fd0 = f->nfd, .nfds = nfds};
    f->nbytes += len;
    f->nfd += nfds;
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
        size_t n = s->len - s->read;
        if (n > len - done)
            n = len - done;
        if (dst)
            memcpy(dst + done, f->bytes + s->off + s->read, n);
        s->read += n;
        done += n;
        f->pending -= n;
        bool had_fds = s->nfds > 0;
        if (had_fds && take_fds) {
            for (size_t i = 0; i < s->nfds; i++) {
                if (*ntaken < take_cap) {
                    if (take_tags)
                        take_tags[*ntaken] = f->tags[s->fd0 + i];
                    take_fds[(*ntaken)++] = f->fds[s->fd0 + i];
                } else {
                    if (f->fds[s->fd0 + i] >= 0)
                        close(f->fds[s->fd0 + i]);
                    *overflow = true;
                }
            }
            s->nfds = 0;
        } else if (had_fds) {
            drop_fds(f, s);
        }
        if (s->read == s->len)
            f->head++;
        if (had_fds && stop_at_fds)
            break;
    }
    return done;
}

bool vuf_framer_ready(const vuf_framer *f)
{
    if (f->pending < VUF_HDR_SIZE)
        return false;
    /* the header's 12 bytes may span segments */
    uint8_t hdr[VUF_HDR_SIZE];
    size_t got = 0;
    for (size_t i = f->head; i < f->nseg && got < VUF_HDR_SIZE; i++) {
        const segment *s = &f->seg[i];
        size_t n = s->len - s->read;
        if (n > VUF_HDR_SIZE - got)
            n = VUF_HDR_SIZE - got;
        memcpy(hdr + got, f->bytes + s->off + s->read, n);
        got += n;
    }
    uint32_t size;
    memcpy(&size, hdr + 8, sizeof size);
    return f->pending - VUF_HDR_SIZE >= size;
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
