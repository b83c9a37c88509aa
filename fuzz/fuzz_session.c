/* SPDX-License-Identifier: Apache-2.0 */
/* fuzz_session: structured sessions (fuzz/session.proto) against the
 * reference device, in process, with the runner's oracles: a MUST violation
 * by the device, an fd leak or a guest-memory write outside the device's
 * buffers aborts with its rule id; sanitizers and hangs are the engine's.
 * The custom mutator (vuf_mutator.h) keeps inputs well-formed sessions.
 * Reproduce a finding with `vufuzz replay FILE`. */
#include "vuf_mutator.h"
#include "vuf_runner.h"
#include "vuf_session.h"

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>

/* libFuzzer's own byte mutator; absent under other engines (AFL++ driver). */
__attribute__((weak)) size_t LLVMFuzzerMutate(uint8_t *data, size_t size, size_t max);

static vuf_runner *runner;
static vuf_mutator *mutator;

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    signal(SIGPIPE, SIG_IGN);
    const vuf_spec *s = vuf_spec_default();
    runner = s ? vuf_runner_new(s, NULL) : NULL;
    mutator = s ? vuf_mutator_new(s, LLVMFuzzerMutate ? LLVMFuzzerMutate : NULL) : NULL;
    if (!runner || !mutator) {
        fprintf(stderr, "fuzz_session: cannot set up the runner\n");
        abort();
    }
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    Vuf__Session *s = vuf_session_unpack(data, size);
    if (!s)
        return -1; /* not a session: not worth keeping */
    vuf_finding f = vuf_runner_run(runner, s);
    vuf_session_free(s);
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
