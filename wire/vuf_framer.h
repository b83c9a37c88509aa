/* SPDX-License-Identifier: Apache-2.0 */
/* vuf_framer: vuf_recv_msg's receive rules over a stream held in memory.
 *
 * A peer in the same process (the in-process target of the fuzz harness)
 * writes bytes with fds, as it would with sendmsg on a Unix stream socket,
 * and reads messages back exactly as vuf_recv_msg(sock, msg, 0) would have
 * read them from a real socket: the same statuses, the same message bytes,
 * the same fds in the same messages, the same fds dropped. It is the
 * kernel's observable behaviour written once as rules, not faked per case,
 * and tests/unit/test_transport.c checks it against a real socket pair.
 *
 * The rules (Linux af_unix, unix_stream_read_generic; vuf_transport.h):
 *   - each write is a segment; its fds ride on its first byte (sendmsg
 *     refuses more than VUF_SEND_MAX_FDS, and a write with fds but no byte);
 *   - a message's header is read first with one recvmsg: it reads across
 *     segments until it has 12 bytes, and stops after the first segment
 *     whose fds it takes; the fds of that segment are the message's;
 *   - the rest of the message is read without room for fds: the fds of any
 *     segment touched then are dropped (closed);
 *   - more fds than VUF_MAX_FDS on the message: VUF_IO_CTRUNC (all closed,
 *     the message consumed whole); a size above the reader's capacity:
 *     VUF_IO_OVERSIZE (payload consumed and dropped);
 *   - nothing more to read, not closed: VUF_IO_TIMEOUT (hdr_len tells
 *     whether part of a message was consumed, as with a 0 ms deadline);
 *     closed: VUF_IO_EOF before a message, VUF_IO_SHORT inside one.
 *
 * I/O-free but for close(2) on the fds it owns. */
#ifndef VUF_FRAMER_H
#define VUF_FRAMER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "vuf_transport.h"

typedef struct vuf_framer vuf_framer;

vuf_framer *vuf_framer_new(void);
void vuf_framer_free(vuf_framer *f); /* closes the fds it still holds */
/* Forget everything (closing held fds); open again. */
void vuf_framer_reset(vuf_framer *f);

/* A write: len bytes, and nfds fds attached to its first byte, each with a
 * tag the reader gets back beside it (the writer's vuf_fdkind of the fd:
 * what vuf_fd_classify would say, known without asking; may be NULL). On VUF_IO_OK
 * the framer owns the fds (it closes them when they are dropped or freed).
 * VUF_IO_ERROR with EINVAL, nothing queued and the fds not taken: more than
 * VUF_SEND_MAX_FDS fds, or fds with no byte (sendmsg's own refusals). A
 * write after vuf_framer_close is refused with EPIPE. len 0 without fds is
 * a no-op. */
vuf_io_status vuf_framer_write(vuf_framer *f, const void *buf, size_t len, const int *fds,
                               const uint8_t *tags, size_t nfds);
/* The writer closed its end. */
void vuf_framer_close(vuf_framer *f);
bool vuf_framer_closed(const vuf_framer *f);
/* Bytes queued and not read yet. */
size_t vuf_framer_pending(const vuf_framer *f);

/* Is a whole message queued (its header and every byte its size says,
 * whether or not the reader will keep them)? A reader that can wait for the
 * rest calls vuf_framer_next only then. */
bool vuf_framer_ready(const vuf_framer *f);

/* The next message, as vuf_recv_msg(sock, msg, 0) (the caller sets
 * msg->payload and msg->payload_cap); tags (VUF_MAX_FDS entries, or NULL)
 * receives the tag of each of msg->fds. */
vuf_io_status vuf_framer_next(vuf_framer *f, vuf_rx_msg *msg, uint8_t *tags);

#endif
