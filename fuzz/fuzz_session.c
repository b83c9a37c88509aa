/* SPDX-License-Identifier: Apache-2.0 */
/* fuzz_session: structured sessions (session/session.proto) against the
 * reference device with the harness's oracles: a MUST violation by the
 * device (and, the reference's own promise, a SHOULD one), an fd leak or a
 * guest-memory write outside the device's buffers aborts with its rule id;
 * sanitizers and hangs are the engine's. The custom mutator (vuf_mutator.h)
 * keeps inputs well-formed sessions.
 *
 * Built twice: fuzz_session drives the device in process (the `inproc`
 * target: no socket hop, the default), fuzz_session_sockets over real
 * socket pairs (-DVUF_FUZZ_SOCKETS: the kernel's SCM_RIGHTS path, MSG_CTRUNC,
 * short reads and EOF).
 *
 * VUF_SPEC=FILE runs against another table (a spec author's proposal).
 * Reproduce a finding with `vufuzz replay FILE` (`--sockets` for the
 * second). */
#include "vuf_harness.h"
#include "vuf_mutator.h"
#include "vuf_session.h"

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>

#ifdef VUF_FUZZ_SOCKETS
#define TARGET_NAME "fuzz_session_sockets"
#define TARGET_KIND VUF_TARGET_KIND_SOCKET
#define BATCH true
#else
#define TARGET_NAME "fuzz_session"
#define TARGET_KIND VUF_TARGET_KIND_INPROC
#define BATCH false
#endif

/* libFuzzer's own byte mutator; absent under other engines (AFL++ driver). */
__attribute__((weak)) size_t LLVMFuzzerMutate(uint8_t *data, size_t size, size_t max);

static vuf_harness *harness;
static vuf_mutator *mutator;
static unsigned long long skipped_bad, skipped_text;

/* Inputs the table cannot play are skipped, and said so. */
static void report_skipped(void)
{
    if (skipped_bad || skipped_text)
        fprintf(stderr,
                "%s: %llu inputs skipped: %llu do not build against the table, %llu are text "
                "sessions\n",
                TARGET_NAME, skipped_bad + skipped_text, skipped_bad, skipped_text);
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    signal(SIGPIPE, SIG_IGN);
    const vuf_spec *s = vuf_spec_default();
    const char *path = getenv("VUF_SPEC");
    if (path && *path) {
        vuf_diag d;
        s = vuf_spec_open(path, &d);
        if (!s) {
            fprintf(stderr, "%s: VUF_SPEC=%s: %s:%u: %s\n", TARGET_NAME, path, d.file, d.line,
                    d.text);
            exit(2);
        }
        fprintf(stderr, "%s: the table is %s (VUF_SPEC)\n", TARGET_NAME, path);
    }
    vuf_harness_opts o = {.target = TARGET_KIND, .batch = BATCH};
    harness = s ? vuf_harness_new(s, &o) : NULL;
    mutator = s ? vuf_mutator_new(s, LLVMFuzzerMutate ? LLVMFuzzerMutate : NULL) : NULL;
    if (!harness || !mutator) {
        fprintf(stderr, "%s: cannot set up the harness\n", TARGET_NAME);
        abort();
    }
    atexit(report_skipped);
    return 0;
}

/* Print at 1, 10, 100, ... */
static void count_skip(unsigned long long *n, const char *what)
{
    ++*n;
    for (unsigned long long p = 1; p <= *n; p *= 10)
        if (p == *n)
            fprintf(stderr, "%s: %llu inputs skipped so far: %s\n", TARGET_NAME, *n, what);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    Vuf__Session *s = vuf_session_unpack(data, size);
    if (!s) {
        if (size && vuf_session_is_text(data, size))
            count_skip(&skipped_text, "text sessions: encode them first (`vufuzz session encode "
                                      "F.txt -o F.bin`; build/corpus/*.bin are encoded)");
        return -1; /* not a session: not worth keeping */
    }
    vuf_finding f = vuf_harness_run(harness, s);
    vuf_session_free(s);
    if (f.kind == VUF_FINDING_BAD_INPUT) {
        count_skip(&skipped_bad, f.text);
        return -1;
    }
    if (f.kind) {
        fprintf(stderr, "==vufuzz== finding: %s %s at action %zu: %s\n",
                vuf_finding_kind_name(f.kind), f.rule, f.action, f.text);
        abort();
    }
    return 0;
}

size_t LLVMFuzzerCustomMutator(uint8_t *data, size_t size, size_t max, unsigned int seed)
{
    return vuf_mutator_mutate(mutator, data, size, max, seed);
}

size_t LLVMFuzzerCustomCrossOver(const uint8_t *a, size_t alen, const uint8_t *b, size_t blen,
                                 uint8_t *out, size_t max, unsigned int seed)
{
    return vuf_mutator_crossover(mutator, a, alen, b, blen, out, max, seed);
}
