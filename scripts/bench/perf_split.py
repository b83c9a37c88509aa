# SPDX-License-Identifier: Apache-2.0
"""Where a fuzz target's time goes, from `perf script -F ip,sym` output of a
`perf record -g` run (stdin): the share of samples per part of an execution,
each split into user and kernel time (a sample is kernel time when its stack
has a system call or page-fault entry). Used by scripts/bench/fuzz.sh.

Parts, by the first of these frames found in a sample's stack (innermost
caller wins, so a checker call inside the device loop counts as checker):
  checker        vuf_checker_feed (the MUST/SHOULD oracle)
  device core    vuf_ref_handle, vuf_ref_kick (validation, handlers, rings)
  build message  vuf_session_build (derived fields, payload builder)
  make fds       vuf_fdset_make (the typed fd factory)
  guest oracle   guest_check, vuf_guest_compare, vuf_guest_teardown
  decode input   vuf_session_unpack, vuf_session_free (protobuf-c)
  session ends   connect_dev, disconnect, r_begin, r_end, fd_accounting,
                 vuf_fdset_close_all (per session: the main channel's pair,
                 the device's reset and unmapping, closing the fds made,
                 the fd oracle)
  message loop   send_message, step (the player writing, the framer and
                 endpoints reading, the connection dispatching and
                 signalling: what is not one of the above)
  harness, rest  anything else under LLVMFuzzerTestOneInput
  mutator        LLVMFuzzerCustomMutator, LLVMFuzzerCustomCrossOver
  libFuzzer      everything else (coverage feedback, corpus, comparison
                 tracing outside the target's frames)
"""
import collections
import sys

PARTS = [
    ("checker", ("vuf_checker_feed",)),
    ("device core", ("vuf_ref_handle", "vuf_ref_kick")),
    ("build message", ("vuf_session_build",)),
    ("make fds", ("vuf_fdset_make",)),
    ("guest oracle", ("guest_check", "vuf_guest_compare", "vuf_guest_teardown")),
    ("decode input", ("vuf_session_unpack", "vuf_session_free")),
    ("session ends", ("connect_dev", "disconnect", "r_begin", "r_end", "fd_accounting",
                      "vuf_fdset_close_all")),
    ("message loop", ("send_message", "step")),
]
KERNEL = ("entry_SYSCALL", "do_syscall_64", "asm_exc_page_fault", "exc_page_fault")


def samples(lines):
    cur = []
    for line in lines:
        line = line.rstrip("\n")
        if not line.strip():
            if cur:
                yield cur
            cur = []
        elif line[0] in " \t":
            f = line.split(None, 1)
            name = f[1].split("+")[0] if len(f) > 1 else "?"
            cur.append(name.replace(" (inlined)", ""))
        elif cur:
            yield cur
            cur = []
    if cur:
        yield cur


def part(stack):
    names = set(stack)
    if "LLVMFuzzerTestOneInput" in names:
        for f in stack:  # innermost first
            for name, keys in PARTS:
                if f in keys:
                    return name
        return "harness, rest"
    if names & {"LLVMFuzzerCustomMutator", "LLVMFuzzerCustomCrossOver"}:
        return "mutator"
    return "libFuzzer"


def main():
    count = collections.Counter()
    n = 0
    for st in samples(sys.stdin):
        n += 1
        kern = any(f.startswith(KERNEL) for f in st)
        count[(part(st), kern)] += 1
    if not n:
        print("no samples")
        return 1
    order = [p for p, _ in PARTS] + ["harness, rest", "mutator", "libFuzzer"]
    print("%-14s %7s %7s %7s" % ("part", "total", "user", "kernel"))
    for p in order:
        u, k = count[(p, False)], count[(p, True)]
        print("%-14s %6.1f%% %6.1f%% %6.1f%%" % (p, 100 * (u + k) / n, 100 * u / n, 100 * k / n))
    ku = sum(v for (p, k), v in count.items() if k)
    print("%-14s %6.1f%% %6.1f%% %6.1f%%  (%d samples)" % ("all", 100.0, 100 * (n - ku) / n, 100 * ku / n, n))
    return 0


if __name__ == "__main__":
    sys.exit(main())
