/* SPDX-License-Identifier: Apache-2.0 */
/* vuf_transport: the thin Unix-socket transport for vhost-user messages.
 *
 * Framing: a 12-byte header (u32 request, u32 flags, u32 size, native endian)
 * followed by `size` payload bytes. File descriptors travel as SCM_RIGHTS
 * ancillary data attached to the first byte of the message.
 *
 * Timeouts: every call takes timeout_ms (< 0: wait forever, 0: never wait,
 * > 0: milliseconds). It is one deadline for the whole call, measured on
 * CLOCK_MONOTONIC, not a per-syscall timeout. VUF_IO_TIMEOUT is returned only
 * when the call would have to wait past the deadline: bytes that are already
 * available are always consumed.
 *
 * Nothing here prints, aborts or keeps global state. Sockets may be blocking
 * or not: every transfer uses MSG_DONTWAIT and waits in poll().
 */
#ifndef VUF_TRANSPORT_H
#define VUF_TRANSPORT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "vuf_event.h" /* vuf_fdkind */

#ifndef VUF_HDR_SIZE
#define VUF_HDR_SIZE 12 /* same as vuf_codec.h */
#endif
/* Most fds read per message: the most any implementation accepts. The
 * protocol itself caps at 8 per message; callers enforce that from the spec
 * table. */
#define VUF_MAX_FDS 32
/* Most fds vuf_send_msg sends (the kernel's SCM_MAX_FD): more than
 * VUF_MAX_FDS may be sent on purpose, to provoke truncation in a peer. */
#define VUF_SEND_MAX_FDS 253
/* Transport hard limit on a payload; a larger size is refused (OVERSIZE). */
#define VUF_MAX_PAYLOAD 0x10000

typedef enum {
    VUF_IO_OK = 0,
    VUF_IO_EOF,      /* peer closed cleanly before any byte of a message */
    VUF_IO_SHORT,    /* peer closed in the middle of a message */
    VUF_IO_TIMEOUT,  /* per-call deadline passed */
    VUF_IO_CTRUNC,   /* ancillary data truncated (MSG_CTRUNC): message refused, fds closed */
    VUF_IO_OVERSIZE, /* header size > the caller's max payload: payload discarded, fds closed */
    VUF_IO_ERROR,    /* other errno, see errno */
} vuf_io_status;

/* "ok", "eof", "short", "timeout", "ctrunc", "oversize", "error"; "invalid"
 * for a value outside the enum. */
const char *vuf_io_status_name(vuf_io_status s);

typedef struct {
    uint8_t hdr[VUF_HDR_SIZE];
    uint8_t *payload;   /* caller-provided buffer (may be NULL if payload_cap is 0) */
    size_t payload_cap; /* its capacity; also the max accepted size */
    size_t payload_len; /* bytes received */
    int fds[VUF_MAX_FDS];
    size_t nfds;
    /* Set by vuf_recv_msg on every status (additions to the basic API): */
    size_t hdr_len; /* header bytes received; hdr is valid when it is VUF_HDR_SIZE */
    bool ctrunc;    /* MSG_CTRUNC was seen, even if another status was returned */
} vuf_rx_msg;

/* Receive one message into msg (the caller sets payload and payload_cap).
 *
 * The header is read with one recvmsg() (MSG_CMSG_CLOEXEC, room for
 * VUF_MAX_FDS fds; the fds of every SCM_RIGHTS cmsg are collected), then, if
 * it came short, with recv() until 12 bytes: fds are only accepted with the
 * first byte, as in libvhost-user. fds a peer attaches to any later byte are
 * never installed (the kernel drops them) and do not appear in msg->fds.
 *
 * Statuses, and the state of the stream after each:
 *   VUF_IO_OK       the whole message; hdr, payload_len = size and fds are
 *                   set. The caller owns msg->fds (close them with
 *                   vuf_close_fds).
 *   VUF_IO_EOF      the peer closed before the first byte (hdr_len 0).
 *   VUF_IO_SHORT    the peer closed mid-message (hdr_len tells whether in the
 *                   header or the payload). Nothing more can be read.
 *   VUF_IO_TIMEOUT  the deadline passed. If hdr_len is 0 nothing was consumed
 *                   and the call may be repeated; otherwise part of a message
 *                   was consumed and the stream is out of sync.
 *   VUF_IO_CTRUNC   the kernel truncated the ancillary data (a peer sent more
 *                   than VUF_MAX_FDS fds, or the control data did not fit):
 *                   the fds that arrived are closed, the rest of the header is
 *                   read and then all `size` payload bytes (into the buffer,
 *                   payload_len set, if size fits; else read and discarded,
 *                   payload_len 0). The message is refused but consumed whole:
 *                   the stream stays in sync and the next call reads the next
 *                   message.
 *   VUF_IO_OVERSIZE size > min(payload_cap, VUF_MAX_PAYLOAD): exactly `size`
 *                   bytes are read and discarded, the fds closed, payload_len
 *                   is 0, hdr is valid. The stream stays in sync.
 *   VUF_IO_ERROR    errno says why (EINVAL: bad arguments, nothing read).
 * CTRUNC and OVERSIZE are only returned once the whole message was consumed;
 * if the peer closes, the deadline passes or an error happens while the rest
 * of such a message is read or discarded, that status (SHORT, TIMEOUT, ERROR)
 * is returned instead (msg->ctrunc still records the truncation). Draining is
 * bounded by the deadline only when it would have to wait.
 *
 * On every status other than VUF_IO_OK, nfds is 0 and every fd received was
 * closed. */
vuf_io_status vuf_recv_msg(int sock, vuf_rx_msg *msg, int timeout_ms);

/* Send buf (header + payload, or any bytes) with fds attached as SCM_RIGHTS to
 * the first byte. Handles EINTR, EAGAIN (waits in poll) and partial writes;
 * uses MSG_NOSIGNAL (a closed peer gives VUF_IO_ERROR with EPIPE, no signal).
 * nfds may be up to VUF_SEND_MAX_FDS; fds need at least one byte to travel
 * (len 0 with nfds > 0: VUF_IO_ERROR, EINVAL). On TIMEOUT or ERROR after some
 * bytes went out, the stream is out of sync. The caller keeps its fds. */
vuf_io_status vuf_send_msg(int sock, const uint8_t *buf, size_t len, const int *fds, size_t nfds,
                           int timeout_ms);
/* Raw bytes, no fds (for fuzzing raw streams). Same rules as vuf_send_msg. */
vuf_io_status vuf_send_raw(int sock, const void *buf, size_t len, int timeout_ms);

/* Close every fd in an array (negative entries are skipped), set every entry to
 * -1 and the count to 0. */
void vuf_close_fds(int *fds, size_t *nfds);

/* Unix socket helpers. All return an fd (close-on-exec) or -1 with errno.
 *
 * vuf_unix_listen: a SOCK_STREAM socket listening on path, made non-blocking
 * (so vuf_unix_accept never blocks). If a socket file already exists at path
 * it is looked up in /proc/net/unix (no connection is made to it: a live
 * server sees nothing; a connect is the fallback without /proc): a stale one
 * is unlinked, a live one gives EADDRINUSE. Anything that is not a socket is never unlinked (bind
 * then fails with EADDRINUSE). ENAMETOOLONG if path does not fit sun_path.
 *
 * vuf_unix_accept: wait up to timeout_ms for a connection on lfd (ETIMEDOUT
 * if none) and return it, in blocking mode.
 *
 * vuf_unix_connect: connect to path, in blocking mode. While the path does not
 * exist yet (ENOENT), nobody listens (ECONNREFUSED) or the backlog is full
 * (EAGAIN), retry every 10 ms until the deadline; then fail with the last
 * error (ETIMEDOUT for a full backlog). timeout_ms 0: a single attempt. */
int vuf_unix_listen(const char *path);
int vuf_unix_accept(int lfd, int timeout_ms);
int vuf_unix_connect(const char *path, int timeout_ms);

/* Classify an fd by kind for traces, with fstat, getsockopt(SO_TYPE,
 * SO_ACCEPTCONN), a zero-timeout poll (a stream socket whose peer is closed
 * reports POLLHUP: VUF_FDKIND_SOCKET_CLOSED) and readlink of /proc/self/fd/N
 * ("anon_inode:[eventfd]", "/memfd:"). Never blocks; VUF_FDKIND_UNKNOWN if the
 * fd is not open. Sequenced-packet and raw sockets, directories, devices
 * other than /dev/null and other anonymous inodes are VUF_FDKIND_OTHER.
 * The kinds' names ("eventfd", "memfd", "file", "socket", "socket-listen",
 * "socket-dgram", "socket-closed", "pipe", "devnull", "other", "unknown") are
 * vuf_fdkind_name / vuf_fdkind_parse, declared in vuf_event.h and defined in
 * wire/codec.c. */
vuf_fdkind vuf_fd_classify(int fd);

/* The inode of a Unix socket and of its peer (sock_diag, UNIX_DIAG_PEER), so
 * that a socket handed over later can be recognised as this connection's own
 * end or its peer's. Returns 0, or -1 with errno (ENOTSOCK; ENOENT when the
 * kernel gives no peer; EPROTONOSUPPORT without sock_diag). */
int vuf_unix_peer_ino(int fd, uint64_t *ino, uint64_t *peer_ino);

#endif
