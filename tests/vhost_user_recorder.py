# SPDX-License-Identifier: Apache-2.0
"""A small vhost-user back-end that answers a front-end's control plane and
records the conversation in the trace format (docs/trace-format.md).

It is the other side for recording a real front-end (QEMU's virtio-net,
driven by iPXE: tests/test_qemu_net.sh): it listens on a Unix socket, takes
one connection, answers what needs an answer (GET_FEATURES,
GET_PROTOCOL_FEATURES, GET_QUEUE_NUM, GET_VRING_BASE, acks when REPLY_ACK is
negotiated and NEED_REPLY set, SET_BACKEND_REQ_FD's reply), processes no ring,
and writes every message as it went over the wire: `raw=` payload bytes and
the kinds of the fds that came with it (`vufuzz trace canon` gives the
names and fields back). It implements nothing of vufuzz and uses no table:
the recording is the front-end's, not vufuzz's idea of it.

usage: vhost_user_recorder.py SOCKET TRACE [--device NAME] [--features HEX]
                              [--protocol-features HEX] [--queues N]
"""
import argparse
import array
import os
import socket
import stat
import struct
import sys

HDR = struct.Struct("<III")  # request, flags, size
F_VERSION, F_REPLY, F_NEED_REPLY = 0x1, 0x4, 0x8
REPLY_ACK_BIT = 3
# front-end request ids (docs/interop/vhost-user.rst, "Front-end message types")
GET_FEATURES, SET_PROTOCOL_FEATURES_ID = 1, 16
GET_VRING_BASE, GET_PROTOCOL_FEATURES, GET_QUEUE_NUM = 11, 15, 17
SET_BACKEND_REQ_FD = 21


def fd_kind(fd):
    """The trace format's fd kind of fd, by what the kernel says it is."""
    try:
        target = os.readlink("/proc/self/fd/%d" % fd)
        st = os.fstat(fd)
    except OSError:
        return "unknown"
    if target == "anon_inode:[eventfd]":
        return "eventfd"
    if target.startswith("/memfd:"):
        return "memfd"
    if stat.S_ISFIFO(st.st_mode):
        return "pipe"
    if stat.S_ISSOCK(st.st_mode):
        s = socket.socket(fileno=os.dup(fd))
        try:
            if s.getsockopt(socket.SOL_SOCKET, socket.SO_TYPE) != socket.SOCK_STREAM:
                return "socket-dgram"
            if s.getsockopt(socket.SOL_SOCKET, socket.SO_ACCEPTCONN):
                return "socket-listen"
            return "socket"
        finally:
            s.close()
    if stat.S_ISREG(st.st_mode):
        return "file"
    if target == "/dev/null":
        return "devnull"
    return "other"


def recv_exact(conn, n):
    data = b""
    while len(data) < n:
        chunk = conn.recv(n - len(data))
        if not chunk:
            return None
        data += chunk
    return data


def recv_msg(conn):
    """One message: (request, flags, payload, fds) or None at EOF."""
    fds = array.array("i")
    hdr, anc, _, _ = conn.recvmsg(HDR.size, socket.CMSG_SPACE(64 * fds.itemsize))
    if not hdr:
        return None
    for level, kind, data in anc:
        if level == socket.SOL_SOCKET and kind == socket.SCM_RIGHTS:
            fds.frombytes(data[: len(data) - (len(data) % fds.itemsize)])
    if len(hdr) < HDR.size:
        rest = recv_exact(conn, HDR.size - len(hdr))
        if rest is None:
            return None
        hdr += rest
    request, flags, size = HDR.unpack(hdr)
    payload = recv_exact(conn, size) if size else b""
    if payload is None:
        return None
    return request, flags, payload, list(fds)


class Recorder:
    def __init__(self, args, out):
        self.args = args
        self.out = out
        self.protocol = 0  # enabled by SET_PROTOCOL_FEATURES
        self.kept = []  # fds the back-end keeps (the back-end channel)

    def line(self, text):
        self.out.write(text + "\n")
        self.out.flush()

    def record(self, sender, request, flags, payload, kinds=()):
        words = ["%s main %d" % (sender, request)]
        if flags & ~(F_VERSION | F_REPLY | F_NEED_REPLY) or flags & 0x3 != F_VERSION:
            words.append("hdr.flags=0x%x" % flags)
        else:
            if flags & F_REPLY:
                words.append("reply")
            if flags & F_NEED_REPLY:
                words.append("need_reply")
        words.append("raw=" + payload.hex())
        if kinds:
            words.append("fds=" + ",".join(kinds))
        self.line(" ".join(words))

    def reply(self, conn, request, payload):
        flags = F_VERSION | F_REPLY
        conn.sendall(HDR.pack(request, flags, len(payload)) + payload)
        self.record("B>F", request, flags, payload)

    def answer(self, conn, request, flags, payload, fds):
        u64 = struct.Struct("<Q")
        reply_ack = self.protocol >> REPLY_ACK_BIT & 1
        if request == GET_FEATURES:
            self.reply(conn, request, u64.pack(self.args.features))
        elif request == GET_PROTOCOL_FEATURES:
            self.reply(conn, request, u64.pack(self.args.protocol_features))
        elif request == GET_QUEUE_NUM:
            self.reply(conn, request, u64.pack(self.args.queues))
        elif request == GET_VRING_BASE:
            index = struct.unpack_from("<I", payload)[0] if len(payload) >= 4 else 0
            self.reply(conn, request, struct.pack("<II", index, 0))
        elif request == SET_PROTOCOL_FEATURES_ID:
            if len(payload) == 8:
                self.protocol = u64.unpack(payload)[0]
            if flags & F_NEED_REPLY and reply_ack:
                self.reply(conn, request, u64.pack(0))
        elif request == SET_BACKEND_REQ_FD and reply_ack:
            # "If VHOST_USER_PROTOCOL_F_REPLY_ACK is negotiated, the back-end
            # must respond with zero for success, non-zero otherwise."
            self.kept.extend(fds)
            fds.clear()
            self.reply(conn, request, u64.pack(0))
        elif flags & F_NEED_REPLY and reply_ack:
            self.reply(conn, request, u64.pack(0))

    def serve(self, conn):
        self.line("open main")
        while True:
            msg = recv_msg(conn)
            if msg is None:
                self.line("close main by=F")
                return
            request, flags, payload, fds = msg
            kinds = [fd_kind(fd) for fd in fds]
            self.record("F>B", request, flags, payload, kinds)
            self.answer(conn, request, flags, payload, fds)
            for fd in fds:
                os.close(fd)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("socket")
    ap.add_argument("trace")
    ap.add_argument("--device", default="net")
    num = lambda s: int(s, 0)
    # virtio-net: MRG_RXBUF (15), RING_INDIRECT_DESC (28), RING_EVENT_IDX (29),
    # VHOST_USER_F_PROTOCOL_FEATURES (30), VERSION_1 (32)
    ap.add_argument("--features", type=num, default=0x170008000)
    # MQ (0), REPLY_ACK (3), BACKEND_REQ (5)
    ap.add_argument("--protocol-features", type=num, default=0x29)
    ap.add_argument("--queues", type=num, default=1)
    args = ap.parse_args()
    try:
        os.unlink(args.socket)
    except FileNotFoundError:
        pass
    srv = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    srv.bind(args.socket)
    srv.listen(1)
    with open(args.trace, "w") as out:
        out.write("device %s\n" % args.device)
        out.flush()
        conn, _ = srv.accept()
        srv.close()
        rec = Recorder(args, out)
        try:
            rec.serve(conn)
        except (ConnectionError, OSError) as e:
            rec.line("# connection error: %s" % e)
            rec.line("close main by=F")
        finally:
            for fd in rec.kept:
                os.close(fd)
            conn.close()
    os.unlink(args.socket)
    return 0


if __name__ == "__main__":
    sys.exit(main())
