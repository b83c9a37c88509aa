#!/usr/bin/env python3
# SPDX-License-Identifier: Apache-2.0
"""Writes the conformance cases of vufuzz (conform/GROUP/ID.txt) and their
prefixes (conform/prefix/NAME.txt): the cases are data, this script only
spells out the families that would be tedious by hand (an fd of every kind
on every fd-carrying message, every gated message without its gate, ...).
A case written by hand goes next to them and is not touched by this script.

    python3 scripts/conform/gen_cases.py [--out DIR]     (default: conform/)

conform/README.md documents the case format; docs/conformance.md the
groups and what each outcome means."""
import argparse, os, sys

# What a case accepts as the back-end's answer to its probe (its last
# front-end request): ack (success), nack (a failure reply), close (the
# back-end closed the connection), silent (no reply, still connected).
OK = ("ack", "")                     # a valid request: REPLY_ACK says the back-end must reply 0
HOSTILE = ("nack close", "ack")      # broke a MUST rule: refused; a success ack is only a warning
TOLERANT = ("ack nack close silent", "")  # the spec leaves the reaction to the back-end: survive

PROTO_BASIC = (1 << 0) | (1 << 3) | (1 << 9) | (1 << 15)  # MQ REPLY_ACK CONFIG CONFIGURE_MEM_SLOTS
PROTO_BREQ = PROTO_BASIC | (1 << 5)                     # + BACKEND_REQ
VIRTIO_MASK = ~((1 << 26) | (1 << 33) | (1 << 34)) & (2**64 - 1)  # not LOG_ALL, IOMMU, RING_PACKED

REGION = ("regions[0].guest_addr=0 regions[0].size=0x10000 "
          "regions[0].user_addr=0x7f0000000000 regions[0].mmap_offset=0")
ONE_REGION = "guest_addr=0 size=0x10000 user_addr=0x7f0000000000 mmap_offset=0"
RING_ADDR = ("index=0 flags=0 desc=0x7f0000000000 used=0x7f0000000800 "
             "avail=0x7f0000000400 log_guest_addr=0x800")

PREFIXES = {
    "hs": f"""# the handshake: the back-end's offer, masked to what every case may use
# (MQ, REPLY_ACK, CONFIG, CONFIGURE_MEM_SLOTS; no logging, no IOMMU)
F>B main GET_FEATURES
F>B main GET_PROTOCOL_FEATURES
F>B main SET_PROTOCOL_FEATURES u64=offered&{PROTO_BASIC:#x}
F>B main SET_OWNER
F>B main SET_FEATURES u64=offered&{VIRTIO_MASK:#x}
""",
    "hs-breq": f"""# the handshake with the back-end channel negotiated (BACKEND_REQ), before
# SET_BACKEND_REQ_FD
F>B main GET_FEATURES
F>B main GET_PROTOCOL_FEATURES
F>B main SET_PROTOCOL_FEATURES u64=offered&{PROTO_BREQ:#x}
F>B main SET_OWNER
""",
    "hs-mem": f"""# the handshake, then one guest memory region (64 KiB)
F>B main GET_FEATURES
F>B main GET_PROTOCOL_FEATURES
F>B main SET_PROTOCOL_FEATURES u64=offered&{PROTO_BASIC:#x}
F>B main SET_OWNER
F>B main SET_FEATURES u64=offered&{VIRTIO_MASK:#x}
F>B main SET_MEM_TABLE need_reply {REGION} fds=guest:0
""",
    "hs-ring": f"""# the handshake, guest memory, and queue 0's ring (size 16) in region 0
F>B main GET_FEATURES
F>B main GET_PROTOCOL_FEATURES
F>B main SET_PROTOCOL_FEATURES u64=offered&{PROTO_BASIC:#x}
F>B main SET_OWNER
F>B main SET_FEATURES u64=offered&{VIRTIO_MASK:#x}
F>B main SET_MEM_TABLE need_reply {REGION} fds=guest:0
F>B main SET_VRING_NUM need_reply index=0 num=16
F>B main SET_VRING_BASE need_reply index=0 num=0
F>B main SET_VRING_ADDR need_reply {RING_ADDR}
""",
}

cases = []


def hs_with(mask, features=f"offered&{VIRTIO_MASK:#x}"):
    """The handshake enabling the protocol features of `mask` (those offered),
    for a case that needs more than a prefix gives."""
    return ("F>B main GET_FEATURES\nF>B main GET_PROTOCOL_FEATURES\n"
            f"F>B main SET_PROTOCOL_FEATURES u64=offered&{mask:#x}\nF>B main SET_OWNER\n"
            f"F>B main SET_FEATURES u64={features}\n")


RING = ("F>B main SET_MEM_TABLE need_reply " + REGION + " fds=guest:0\n"
        "F>B main SET_VRING_NUM need_reply index=0 num=16\n"
        "F>B main SET_VRING_BASE need_reply index=0 num=0\n"
        f"F>B main SET_VRING_ADDR need_reply {RING_ADDR}\n")


def case(group, cid, title, body, rule="-", section="Front-end message types", needs="",
         prefix="hs", outcome=TOLERANT, probe=None):
    need = "virtio PROTOCOL_FEATURES"
    if "need_reply" in body.strip().splitlines()[-1] or outcome in (OK, HOSTILE):
        need += "; protocol REPLY_ACK"
    if needs:
        need += "; " + needs
    cases.append(dict(group=group, id=cid, title=title, body=body.strip() + "\n", rule=rule,
                      section=section, needs=need, prefix=prefix, accept=outcome[0],
                      warn=outcome[1], probe=probe))


# ---------------- handshake and feature negotiation ----------------
case("handshake", "get-features", "GET_FEATURES is answered with the offer",
     "F>B main GET_FEATURES", rule="REPLY-MISSING", prefix=None, outcome=OK)
case("handshake", "get-protocol-features", "GET_PROTOCOL_FEATURES once bit 30 was offered",
     "F>B main GET_FEATURES\nF>B main GET_PROTOCOL_FEATURES", rule="GATE-BIT30-OFFERED",
     section="Protocol features", prefix=None, outcome=OK)
case("handshake", "set-features-offered", "SET_FEATURES acking the offer, with NEED_REPLY",
     f"F>B main SET_FEATURES need_reply u64=offered&{VIRTIO_MASK:#x}", rule="REPLY-MISSING",
     section="Feature negotiation", outcome=OK)
case("handshake", "set-owner-need-reply", "SET_OWNER with NEED_REPLY under REPLY_ACK",
     "F>B main GET_FEATURES\nF>B main GET_PROTOCOL_FEATURES\n"
     "F>B main SET_PROTOCOL_FEATURES u64=offered&0x8\nF>B main SET_OWNER need_reply",
     rule="REPLY-MISSING", section="Communication", prefix=None, outcome=OK)
case("handshake", "set-features-not-offered", "SET_FEATURES acking a bit that was not offered",
     "F>B main SET_FEATURES need_reply u64=0xffffffffffffffff", rule="FEAT-SUBSET",
     section="Feature negotiation", outcome=TOLERANT)
case("handshake", "set-protocol-features-not-offered",
     "SET_PROTOCOL_FEATURES enabling bits that were not offered",
     "F>B main GET_FEATURES\nF>B main GET_PROTOCOL_FEATURES\n"
     "F>B main SET_PROTOCOL_FEATURES u64=0xfffffffffffffff7", rule="FEAT-PROTO-SUBSET",
     section="Protocol features", prefix=None, outcome=TOLERANT)
case("handshake", "set-features-before-get", "SET_FEATURES before any GET_FEATURES",
     f"F>B main SET_FEATURES u64=0x100000000", rule="FEAT-SET-BEFORE-GET",
     section="Feature negotiation", prefix=None, outcome=TOLERANT)
case("handshake", "set-owner-twice", "SET_OWNER twice on one connection",
     "F>B main SET_OWNER need_reply", rule="-", section="Front-end message types",
     outcome=("ack nack close", ""))
case("handshake", "inband-without-dependencies",
     "INBAND_NOTIFICATIONS enabled without BACKEND_REQ and REPLY_ACK",
     "F>B main GET_FEATURES\nF>B main GET_PROTOCOL_FEATURES\n"
     "F>B main SET_PROTOCOL_FEATURES u64=0x4000", rule="FEAT-DEPENDENCY",
     section="In-band notifications", needs="protocol INBAND_NOTIFICATIONS", prefix=None,
     outcome=("close nack", "silent ack"))
case("handshake", "get-protocol-features-twice", "GET_PROTOCOL_FEATURES asked twice",
     "F>B main GET_PROTOCOL_FEATURES", rule="-", section="Protocol features", outcome=OK)

# ---------------- initiator and direction ----------------
case("initiator", "reply-flag-on-request", "a front-end request carrying the REPLY flag",
     "F>B main GET_FEATURES reply", rule="REPLY-DIRECTION", section="Message Specification",
     outcome=("close silent nack", ""))
case("initiator", "backend-channel-request-from-front-end",
     "a request (no REPLY flag) from the front-end on the back-end channel",
     "F>B main SET_BACKEND_REQ_FD need_reply fds=socket\nF>B backend BACKEND_CONFIG_CHANGE_MSG\n"
     "F>B main GET_FEATURES", rule="INIT-FRONTEND-ON-BACKEND", section="Back-end message types",
     needs="protocol BACKEND_REQ", prefix="hs-breq", outcome=OK)
case("initiator", "unsolicited-reply-on-backend-channel",
     "a reply on the back-end channel to no request",
     "F>B main SET_BACKEND_REQ_FD need_reply fds=socket\n"
     "F>B backend BACKEND_CONFIG_CHANGE_MSG reply u64=0\nF>B main GET_FEATURES",
     rule="REPLY-UNSOLICITED", section="Back-end message types", needs="protocol BACKEND_REQ",
     prefix="hs-breq", outcome=OK)
case("initiator", "need-reply-on-reply", "NEED_REPLY set on a front-end 'reply'",
     "F>B main SET_OWNER reply need_reply", rule="HDR-NEED-REPLY-ON-REPLY",
     section="Message Specification", outcome=("close silent nack", ""))

# ---------------- header and size ----------------
for ver, flags in (("0", 0x0), ("2", 0x2), ("3", 0x3)):
    case("header", f"version-{ver}", f"a request of protocol version {ver}",
         f"F>B main SET_OWNER need_reply hdr.flags={flags | 8:#x}", rule="HDR-VERSION",
         section="Message Specification", outcome=("nack close silent", "ack"))
case("header", "reserved-flags", "flag bits above bit 3 set",
     "F>B main SET_OWNER need_reply hdr.flags=0x109", rule="HDR-FLAGS-RESERVED",
     section="Message Specification", outcome=TOLERANT)
case("header", "id-zero", "request id 0", "F>B main 0 need_reply", rule="HDR-ID-ZERO",
     section="Front-end message types", outcome=("nack close silent", ""))
case("header", "id-unknown", "a request id no spec defines (200)", "F>B main 200 need_reply",
     rule="HDR-ID-UNKNOWN", section="Front-end message types",
     outcome=("nack close silent", ""))
case("header", "payload-short", "SET_FEATURES with 4 payload bytes instead of 8",
     "F>B main SET_FEATURES need_reply raw=00000000", rule="SIZE-REQUEST",
     section="Message types", outcome=HOSTILE)
case("header", "payload-long", "SET_FEATURES with 16 payload bytes instead of 8",
     "F>B main SET_FEATURES need_reply raw=00000000010000000000000000000000",
     rule="SIZE-REQUEST", section="Message types", outcome=HOSTILE)
case("header", "payload-on-get-features", "GET_FEATURES carrying a payload",
     "F>B main GET_FEATURES raw=0000000000000000", rule="SIZE-REQUEST",
     section="Message types", outcome=("ack nack close", ""))
case("header", "size-larger-than-sent", "a header announcing 8 bytes, none following, then EOF",
     "F>B main SET_OWNER need_reply hdr.size=8", rule="HDR-SIZE",
     section="Message Specification", outcome=("close silent", ""))
case("header", "huge-size", "a header announcing 256 MiB of payload",
     "F>B main SET_OWNER need_reply hdr.size=0x10000000", rule="HDR-SIZE",
     section="Message Specification", outcome=("close silent", ""))
case("header", "truncated-header", "a message cut in the middle of its header",
     "F>B main SET_OWNER need_reply truncate=7", rule="HDR-SIZE",
     section="Message Specification", outcome=("close silent", ""))
case("header", "vring-addr-short", "SET_VRING_ADDR with 32 bytes (the rst's table shows a size column)",
     "F>B main SET_VRING_ADDR need_reply raw=" + "00" * 32, rule="SIZE-REQUEST",
     section="Message types", prefix="hs-mem", outcome=HOSTILE)
case("header", "mem-table-count-over", "SET_MEM_TABLE saying 9 regions (the limit is 8)",
     "F>B main SET_MEM_TABLE need_reply nregions=9 " + REGION + " fds=guest:0",
     rule="SIZE-COUNT-MAX", section="Memory regions description", outcome=HOSTILE)

# ---------------- fds: count and kind on every fd-carrying message ----------------
KINDS = ["eventfd", "memfd", "file", "socket", "socket-closed", "socket-listen", "socket-dgram",
         "pipe-r", "pipe-w", "devnull", "main", "other"]
FD_MSGS = [
    # name, payload, the kind it takes, the prefix, needs
    ("SET_MEM_TABLE", REGION, "memfd", "hs", ""),
    ("ADD_MEM_REG", ONE_REGION, "memfd", "hs", "protocol CONFIGURE_MEM_SLOTS"),
    ("SET_LOG_FD", "", "eventfd", "hs", ""),
    ("SET_VRING_KICK", "u64=0", "eventfd", "hs-ring", ""),
    ("SET_VRING_CALL", "u64=0", "eventfd", "hs-ring", ""),
    ("SET_VRING_ERR", "u64=0", "eventfd", "hs-ring", ""),
    ("SET_LOG_BASE", "mmap_size=0x1000 mmap_offset=0", "memfd", 1 << 1, "protocol LOG_SHMFD"),
    ("SET_INFLIGHT_FD", "mmap_size=0x1000 mmap_offset=0 num_queues=1 queue_size=16", "memfd",
     1 << 12, "protocol INFLIGHT_SHMFD"),
    ("SET_DEVICE_STATE_FD", "direction=0 phase=0", "pipe-r", 1 << 19, "protocol DEVICE_STATE"),
]
for name, payload, right, prefix, needs in FD_MSGS:
    pl = (" " + payload) if payload else ""
    lead = ""
    if isinstance(prefix, int):  # a feature of its own to enable
        lead, prefix = hs_with(PROTO_BASIC | prefix), None
    base = name.lower().replace("_", "-")
    # no fd, and (KICK, CALL, ERR) the no-fd bit clear: a session derives it
    # from the fd count unless nofd= says
    nofd0 = " nofd=0" if name in ("SET_VRING_KICK", "SET_VRING_CALL", "SET_VRING_ERR") else ""
    case("fd", f"{base}-no-fd", f"{name} carrying no fd", lead + f"F>B main {name} need_reply{pl} fds=none{nofd0}",
         rule="FD-COUNT", section="Front-end message types", needs=needs, prefix=prefix,
         outcome=HOSTILE)
    extra = "guest:0,eventfd" if right == "memfd" and name == "SET_MEM_TABLE" else f"{right},{right}"
    case("fd", f"{base}-extra-fd", f"{name} carrying one fd too many",
         lead + f"F>B main {name} need_reply{pl} fds={extra}", rule="FD-COUNT",
         section="Front-end message types", needs=needs, prefix=prefix, outcome=HOSTILE)
    for k in KINDS:
        if k == right or (right == "memfd" and k == "file") or (right == "pipe-r" and k in ("pipe-w",)):
            continue  # the kinds the rule takes (shm: memfd or file; a pipe end either way)
        if right == "pipe-r":
            continue  # SET_DEVICE_STATE_FD takes any fd: only its count is checked
        case("fd", f"{base}-{k}", f"{name} carrying a {k} fd instead of a {right}",
             lead + f"F>B main {name} need_reply{pl} fds={k}", rule="FD-KIND",
             section="Front-end message types", needs=needs, prefix=prefix, outcome=HOSTILE)
for name, payload in (("GET_FEATURES", ""), ("SET_OWNER", ""), ("SET_VRING_NUM", "index=0 num=16")):
    pl = (" " + payload) if payload else ""
    case("fd", f"{name.lower().replace('_', '-')}-unexpected-fd", f"{name} carrying an fd it does not take",
         f"F>B main {name} need_reply{pl} fds=eventfd", rule="FD-UNEXPECTED",
         section="Communication", prefix="hs-mem" if payload else "hs",
         outcome=("nack close ack", "") if name == "GET_FEATURES" else HOSTILE)
case("fd", "kick-nofd-bit-with-fd", "SET_VRING_KICK with the no-fd bit set and an fd attached",
     "F>B main SET_VRING_KICK need_reply u64=0x100 fds=eventfd nofd=1", rule="FD-NOFD",
     prefix="hs-ring", outcome=HOSTILE)
case("fd", "kick-no-bit-no-fd", "SET_VRING_KICK without the no-fd bit and without an fd",
     "F>B main SET_VRING_KICK need_reply u64=0 fds=none nofd=0", rule="FD-NOFD", prefix="hs-ring",
     outcome=HOSTILE)
case("fd", "forty-fds", "SET_MEM_TABLE carrying 40 fds (more than a receiver takes)",
     "F>B main SET_MEM_TABLE need_reply " + REGION + " fds=" + ",".join(["memfd"] * 40),
     rule="FD-CHANNEL-MAX", section="Communication", outcome=("nack close", "ack"))

# ---------------- gating: every gated message without its gate ----------------
GATED = [
    ("GET_QUEUE_NUM", "", "MQ"), ("SEND_RARP", "u64=0", "RARP"), ("NET_SET_MTU", "u64=1500", "MTU"),
    ("SET_VRING_ENDIAN", "index=0 num=0", "CROSS_ENDIAN"), ("GET_CONFIG", "offset=0 size=4 flags=0 payload=00000000", "CONFIG"),
    ("SET_CONFIG", "offset=0 size=4 flags=0 payload=00000000", "CONFIG"),
    ("CLOSE_CRYPTO_SESSION", "u64=1", "CRYPTO_SESSION"), ("POSTCOPY_ADVISE", "", "PAGEFAULT"),
    ("POSTCOPY_LISTEN", "", "PAGEFAULT"), ("POSTCOPY_END", "", "PAGEFAULT"),
    ("GET_INFLIGHT_FD", "mmap_size=0 mmap_offset=0 num_queues=1 queue_size=16", "INFLIGHT_SHMFD"),
    ("RESET_DEVICE", "", "RESET_DEVICE"), ("VRING_KICK", "index=0 num=0", "INBAND_NOTIFICATIONS"),
    ("GET_MAX_MEM_SLOTS", "", "CONFIGURE_MEM_SLOTS"),
    ("REM_MEM_REG", ONE_REGION + " fds=none", "CONFIGURE_MEM_SLOTS"),
    ("SET_STATUS", "u64=0", "STATUS"), ("GET_STATUS", "", "STATUS"),
    ("GET_SHARED_OBJECT", "uuid=000102030405060708090a0b0c0d0e0f", "SHARED_OBJECT"),
    ("CHECK_DEVICE_STATE", "", "DEVICE_STATE"), ("SET_BACKEND_REQ_FD", "fds=socket", "BACKEND_REQ"),
    ("SET_LOG_BASE", "mmap_size=0x1000 mmap_offset=0 fds=memfd", "LOG_SHMFD"),
]
for name, payload, gate in GATED:
    pl = (" " + payload) if payload else ""
    # the handshake without the gate: REPLY_ACK only, so a failure can be told
    body = ("F>B main GET_FEATURES\nF>B main GET_PROTOCOL_FEATURES\n"
            "F>B main SET_PROTOCOL_FEATURES u64=offered&0x8\nF>B main SET_OWNER\n"
            f"F>B main {name} need_reply{pl}")
    case("gate", f"{name.lower().replace('_', '-')}-without-{gate.lower().replace('_', '-')}",
         f"{name} while {gate} is not negotiated", body, rule="GATE-PROTOCOL",
         section="Protocol features", prefix=None, outcome=TOLERANT)
case("gate", "set-vring-enable-without-bit30", "SET_VRING_ENABLE while bit 30 is not acked",
     "F>B main GET_FEATURES\nF>B main SET_OWNER\nF>B main SET_FEATURES u64=offered&0x100000000\n"
     "F>B main SET_VRING_ENABLE index=0 num=1", rule="GATE-BIT30-NEGOTIATED",
     section="Front-end message types", prefix=None, outcome=("silent close", ""))
case("gate", "iotlb-without-iommu", "IOTLB_MSG while IOMMU_PLATFORM is not acked",
     "F>B main IOTLB_MSG iova=0 size=0x1000 uaddr=0x7f0000000000 perm=3 type=2",
     rule="GATE-VIRTIO", section="IOMMU support", prefix="hs-mem",
     outcome=("nack close silent ack", ""))

# ---------------- REPLY_ACK and NEED_REPLY ----------------
for name, payload, prefix in (("SET_VRING_NUM", "index=0 num=16", "hs-mem"),
                              ("SET_VRING_BASE", "index=0 num=0", "hs-mem"),
                              ("SET_VRING_ADDR", RING_ADDR, "hs-mem"),
                              ("SET_VRING_CALL", "u64=0 fds=eventfd", "hs-ring"),
                              ("SET_VRING_ERR", "u64=0 fds=eventfd", "hs-ring"),
                              ("SET_VRING_KICK", "u64=0x100", "hs-ring"),
                              ("SET_MEM_TABLE", REGION + " fds=guest:0", "hs"),
                              ("SET_VRING_ENABLE", "index=0 num=1", "hs-ring"),
                              ("SET_PROTOCOL_FEATURES", f"u64=offered&{PROTO_BASIC:#x}", "hs")):
    case("reply-ack", f"{name.lower().replace('_', '-')}-acked", f"{name} with NEED_REPLY is acked 0",
         f"F>B main {name} need_reply {payload}", rule="REPLY-MISSING", section="Communication",
         prefix=prefix, outcome=OK)
case("reply-ack", "need-reply-without-reply-ack", "NEED_REPLY while REPLY_ACK is not negotiated",
     "F>B main GET_FEATURES\nF>B main GET_PROTOCOL_FEATURES\n"
     "F>B main SET_PROTOCOL_FEATURES u64=offered&0x1\nF>B main SET_OWNER need_reply",
     rule="REPLY-ACK-UNREQUESTED", section="Communication", prefix=None, outcome=("silent", ""))
case("reply-ack", "get-features-need-reply", "GET_FEATURES with NEED_REPLY: one reply, the explicit one",
     "F>B main GET_FEATURES need_reply\nF>B main GET_FEATURES", rule="REPLY-ACK-UNREQUESTED",
     section="Communication", probe=2, outcome=OK)

# ---------------- the back-end channel: the hostile SET_BACKEND_REQ_FD family ----------------
for k in KINDS:
    if k == "socket":
        continue
    case("backend", f"backend-req-fd-{k}", f"SET_BACKEND_REQ_FD carrying a {k} fd instead of a socket",
         f"F>B main SET_BACKEND_REQ_FD need_reply fds={k}", rule="FD-KIND",
         section="Front-end message types", needs="protocol BACKEND_REQ", prefix="hs-breq",
         outcome=HOSTILE)
for cid, title, fds in (("none", "no fd", "none"), ("two", "two sockets", "socket,socket"),
                        ("closed-number", "an fd number that is not open", "closed")):
    case("backend", f"backend-req-fd-{cid}", f"SET_BACKEND_REQ_FD carrying {title}",
         f"F>B main SET_BACKEND_REQ_FD need_reply fds={fds}", rule="FD-COUNT",
         section="Front-end message types", needs="protocol BACKEND_REQ", prefix="hs-breq",
         outcome=HOSTILE)
case("backend", "backend-req-fd-valid", "SET_BACKEND_REQ_FD carrying a connected socket",
     "F>B main SET_BACKEND_REQ_FD need_reply fds=socket", rule="REPLY-MISSING",
     section="Front-end message types", needs="protocol BACKEND_REQ", prefix="hs-breq", outcome=OK)
case("backend", "backend-req-fd-repeated", "SET_BACKEND_REQ_FD twice: the channel replaced",
     "F>B main SET_BACKEND_REQ_FD need_reply fds=socket\nF>B main SET_BACKEND_REQ_FD need_reply fds=socket",
     rule="-", section="Front-end message types", needs="protocol BACKEND_REQ", prefix="hs-breq",
     outcome=("ack nack", ""))
case("backend", "backend-req-fd-payload", "SET_BACKEND_REQ_FD with a payload it does not take",
     "F>B main SET_BACKEND_REQ_FD need_reply raw=0000000000000000 fds=socket", rule="SIZE-REQUEST",
     section="Front-end message types", needs="protocol BACKEND_REQ", prefix="hs-breq",
     outcome=HOSTILE)
case("backend", "backend-req-fd-then-close-channel",
     "the front-end closes its end of the back-end channel; the main channel goes on",
     "F>B main SET_BACKEND_REQ_FD need_reply fds=socket\nclose backend\nF>B main GET_FEATURES",
     rule="-", section="Back-end communication", needs="protocol BACKEND_REQ", prefix="hs-breq",
     outcome=OK)

# ---------------- memory tables and address ranges ----------------
MEM = [
    ("zero-size", "regions[0].guest_addr=0 regions[0].size=0 regions[0].user_addr=0x7f0000000000 regions[0].mmap_offset=0 fds=guest:0", HOSTILE, "-"),
    ("gpa-wraps", "regions[0].guest_addr=0xfffffffffffff000 regions[0].size=0x10000 regions[0].user_addr=0x7f0000000000 regions[0].mmap_offset=0 fds=guest:0", HOSTILE, "VALUE-SPAN"),
    ("uaddr-wraps", "regions[0].guest_addr=0 regions[0].size=0x10000 regions[0].user_addr=0xfffffffffffff000 regions[0].mmap_offset=0 fds=guest:0", HOSTILE, "VALUE-SPAN"),
    ("offset-wraps", "regions[0].guest_addr=0 regions[0].size=0x10000 regions[0].user_addr=0x7f0000000000 regions[0].mmap_offset=0xfffffffffffff000 fds=guest:0", HOSTILE, "VALUE-SPAN"),
    ("offset-beyond-fd", "regions[0].guest_addr=0 regions[0].size=0x10000 regions[0].user_addr=0x7f0000000000 regions[0].mmap_offset=0x100000 fds=memfd:0x10000", ("nack close", "ack"), "-"),
    ("size-beyond-fd", "regions[0].guest_addr=0 regions[0].size=0x100000 regions[0].user_addr=0x7f0000000000 regions[0].mmap_offset=0 fds=memfd:0x1000", ("nack close", "ack"), "-"),
    ("overlapping-regions", "regions[0].guest_addr=0 regions[0].size=0x10000 regions[0].user_addr=0x7f0000000000 regions[0].mmap_offset=0 regions[1].guest_addr=0x8000 regions[1].size=0x10000 regions[1].user_addr=0x7f0000100000 regions[1].mmap_offset=0 fds=memfd:0x10000,memfd:0x10000", ("nack close ack", ""), "-"),
    ("no-region", "nregions=0 fds=none", ("ack nack close", ""), "-"),
    ("fd-count-mismatch", REGION + " fds=guest:0,memfd", HOSTILE, "FD-COUNT-FIELD"),
]
for cid, payload, outcome, rule in MEM:
    case("memory", f"mem-table-{cid}", f"SET_MEM_TABLE: {cid.replace('-', ' ')}",
         f"F>B main SET_MEM_TABLE need_reply {payload}", rule=rule,
         section="Memory regions description", outcome=outcome)
case("memory", "add-mem-reg-overlap", "ADD_MEM_REG overlapping a region already added",
     f"F>B main ADD_MEM_REG need_reply {ONE_REGION} fds=guest:0\nF>B main ADD_MEM_REG need_reply {ONE_REGION} fds=guest:0",
     rule="-", section="Front-end message types", needs="protocol CONFIGURE_MEM_SLOTS",
     outcome=("nack close", "ack"))
case("memory", "rem-mem-reg-unknown", "REM_MEM_REG of a region that was never added",
     f"F>B main REM_MEM_REG need_reply {ONE_REGION} fds=none", rule="-",
     section="Front-end message types", needs="protocol CONFIGURE_MEM_SLOTS",
     outcome=("nack close ack", ""))
case("memory", "rem-mem-reg-with-fd", "REM_MEM_REG carrying an fd (the back-end may accept it and must close it)",
     f"F>B main ADD_MEM_REG need_reply {ONE_REGION} fds=guest:0\nF>B main REM_MEM_REG need_reply {ONE_REGION} fds=memfd",
     rule="FD-SHOULD", section="Front-end message types", needs="protocol CONFIGURE_MEM_SLOTS",
     outcome=("ack nack", ""))
case("memory", "iotlb-update-outside-memory", "IOTLB update outside every memory region",
     "F>B main IOTLB_MSG iova=0 size=0x1000 uaddr=0x100000000 perm=3 type=2",
     rule="IOTLB-OUTSIDE-MEM", section="IOMMU support", prefix="hs-mem",
     outcome=("nack close silent ack", ""))

# ---------------- vring indexes and sizes ----------------
for name, payload in (("SET_VRING_NUM", "index=200 num=16"), ("SET_VRING_BASE", "index=200 num=0"),
                      ("SET_VRING_ADDR", RING_ADDR.replace("index=0", "index=200")),
                      ("SET_VRING_CALL", "u64=0xc8 fds=eventfd"), ("SET_VRING_KICK", "u64=0x1c8"),
                      ("SET_VRING_ENABLE", "index=200 num=1")):
    # the queue count asked first: vring 200 is beyond it (and known to be)
    case("vring", f"{name.lower().replace('_', '-')}-index-200", f"{name} for vring 200",
         f"F>B main GET_QUEUE_NUM\nF>B main {name} need_reply {payload}", rule="VRING-INDEX",
         section="Multiple queue support", needs="protocol MQ", prefix="hs-mem",
         outcome=("nack close", "ack"))
case("vring", "get-vring-base-index-200", "GET_VRING_BASE for vring 200 (an explicit reply without a failure form)",
     "F>B main GET_QUEUE_NUM\nF>B main GET_VRING_BASE index=200 num=0", rule="VRING-INDEX",
     section="Multiple queue support", needs="protocol MQ", prefix="hs-mem", outcome=("close ack", ""))
for cid, num in (("zero", 0), ("not-power-of-2", 3), ("too-large", 65536)):
    case("vring", f"set-vring-num-{cid}", f"SET_VRING_NUM {num}",
         f"F>B main SET_VRING_NUM need_reply index=0 num={num}", rule="-",
         section="Front-end message types", prefix="hs-mem", outcome=("nack close", "ack"))
case("vring", "set-vring-addr-flags", "SET_VRING_ADDR with flag bits beyond VHOST_VRING_F_LOG",
     f"F>B main SET_VRING_ADDR need_reply {RING_ADDR.replace('flags=0', 'flags=0xfe')}",
     rule="VALUE-MASK", section="Front-end message types", prefix="hs-mem", outcome=HOSTILE)
case("vring", "get-vring-base-stops", "GET_VRING_BASE on a configured ring answers its index",
     "F>B main GET_VRING_BASE index=0 num=0", rule="REPLY-MISSING", section="Front-end message types",
     prefix="hs-ring", outcome=OK)

# ---------------- reset, reconnect and status ----------------
case("reset", "reconnect", "a new connection after the front-end closed one",
     "close main\nopen main\nF>B main GET_FEATURES", rule="-", section="Communication", outcome=OK)
case("reset", "close-mid-message", "the front-end closes in the middle of a message; a new connection follows",
     "F>B main SET_VRING_NUM need_reply index=0 num=16 truncate=14\nclose main\nopen main\nF>B main GET_FEATURES",
     rule="-", section="Communication", prefix="hs-mem", outcome=OK)
case("reset", "reset-owner", "RESET_OWNER (deprecated), then the handshake again",
     "F>B main RESET_OWNER\nF>B main GET_FEATURES", rule="-", section="Front-end message types",
     prefix="hs-ring", outcome=OK)
case("reset", "reset-device", "RESET_DEVICE with NEED_REPLY is acked",
     hs_with(PROTO_BASIC | 1 << 13) + RING + "F>B main RESET_DEVICE need_reply",
     rule="REPLY-MISSING", section="Front-end message types", needs="protocol RESET_DEVICE",
     prefix=None, outcome=OK)
case("reset", "set-status", "SET_STATUS with NEED_REPLY is acked",
     hs_with(PROTO_BASIC | 1 << 16) + RING + "F>B main SET_STATUS need_reply u64=0xf",
     rule="REPLY-MISSING", section="Front-end message types", needs="protocol STATUS",
     prefix=None, outcome=OK)
case("reset", "get-status", "GET_STATUS is answered",
     hs_with(PROTO_BASIC | 1 << 16) + "F>B main GET_STATUS", rule="REPLY-MISSING",
     section="Front-end message types", needs="protocol STATUS", prefix=None, outcome=OK)
case("reset", "get-vring-base-unconfigured", "GET_VRING_BASE on a ring never configured",
     "F>B main GET_VRING_BASE index=0 num=0", rule="-", section="Front-end message types",
     outcome=("ack close", ""))


def write(out):
    os.makedirs(os.path.join(out, "prefix"), exist_ok=True)
    for name, text in PREFIXES.items():
        with open(os.path.join(out, "prefix", name + ".txt"), "w") as f:
            f.write(text)
    seen = set()
    for c in cases:
        key = (c["group"], c["id"])
        assert key not in seen, key
        seen.add(key)
        d = os.path.join(out, c["group"])
        os.makedirs(d, exist_ok=True)
        head = [f"# conform: {c['id']}", f"# group: {c['group']}", f"# title: {c['title']}",
                f"# rule: {c['rule']}", f"# section: {c['section']}", f"# needs: {c['needs']}"]
        if c["prefix"]:
            head.append(f"# prefix: {c['prefix']}")
        if c["probe"]:
            head.append(f"# probe: {c['probe']}")
        head.append(f"# accept: {c['accept']}")
        if c["warn"]:
            head.append(f"# warn: {c['warn']}")
        with open(os.path.join(d, c["id"] + ".txt"), "w") as f:
            f.write("\n".join(head) + "\n" + c["body"])
    return len(cases)


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", default=os.path.join(os.path.dirname(__file__), "..", "..", "conform"))
    a = ap.parse_args()
    n = write(a.out)
    print(f"{n} cases and {len(PREFIXES)} prefixes in {os.path.normpath(a.out)}")
