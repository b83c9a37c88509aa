/* SPDX-License-Identifier: Apache-2.0 */
/* fuzz_raw: the baseline of the benchmarks. The same device and oracles as
 * fuzz_session, fed the input as raw bytes on its main channel (no fds, no
 * structure, no custom mutator): what a plain byte fuzzer reaches. */
#include "vuf_harness.h"
#include "vuf_session.h"

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>

static vuf_harness *harness;

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    signal(SIGPIPE, SIG_IGN);
    const vuf_spec *s = vuf_spec_default();
    harness = s ? vuf_harness_new(s, NULL) : NULL;
    if (!harness)
        abort();
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    Vuf__Raw raw = VUF__RAW__INIT;
    raw.data.data = (uint8_t *)data;
    raw.data.len = size;
    Vuf__Action a = VUF__ACTION__INIT;
    a.action_case = VUF__ACTION__ACTION_RAW;
    a.raw = &raw;
    Vuf__Action *acts[1] = {&a};
    Vuf__Session s = VUF__SESSION__INIT;
    s.actions = acts;
    s.n_actions = 1;
    vuf_finding f = vuf_harness_run(harness, &s);
    if (f.kind) {
        fprintf(stderr, "==vufuzz== finding: %s %s: %s\n", vuf_finding_kind_name(f.kind), f.rule,
                f.text);
        abort();
    }
    return 0;
}
