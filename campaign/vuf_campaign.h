/* SPDX-License-Identifier: Apache-2.0 */
/* vuf_campaign: a fuzzing campaign against a target vufuzz drives from the
 * outside (a back-end in another process: `vufuzz fuzz --connect|--exec`),
 * where libFuzzer's in-process coverage cannot reach.
 *
 * One campaign is one worker: a corpus of sessions (packed vuf.Session
 * bytes), a schedule that picks one, the structure-aware mutator
 * (fuzz/vuf_mutator.h), a run through the harness (harness/vuf_harness.h)
 * and two kinds of feedback:
 *
 *   protocol state (always): what the back-end did, as tuples: each answer
 *     (the request it answers, its size class, its status class, its fds,
 *     the protocol features acked so far), each close (after which request),
 *     each request of its own on the back-end channel, each rule it broke,
 *     and each pair of consecutive tuples in a session (the transitions), in
 *     the spirit of AFLNet's response-code state model;
 *   edge coverage (optional): a map the back-end's own instrumentation
 *     writes (AFL++'s shared memory, campaign/vuf_aflmap.h), hit counts in
 *     AFL's buckets.
 *
 * An input that reaches a tuple or an edge bucket never seen joins the
 * corpus. Findings are returned to the caller, which keeps and saves them.
 *
 * No file I/O here: the caller loads seeds, saves findings and corpus
 * entries, and owns the harness and the map. */
#ifndef VUF_CAMPAIGN_H
#define VUF_CAMPAIGN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "vuf_event.h"
#include "vuf_harness.h"
#include "vuf_spec.h"

typedef struct vuf_campaign vuf_campaign;

typedef struct {
    const vuf_spec *spec;
    uint64_t seed;  /* the random schedule and mutations (0: 1) */
    size_t max_len; /* the largest packed session a mutation makes (0: 16384) */
    /* the edge map the target writes (NULL: none); the campaign zeroes it
     * before each run and reads it after */
    uint8_t *edges;
    size_t edges_len;
    /* the edges are counted but keep no input (a baseline run: the
     * corpus grows on protocol states alone) */
    bool edges_count_only;
} vuf_campaign_opts;

vuf_campaign *vuf_campaign_new(const vuf_campaign_opts *o);
void vuf_campaign_free(vuf_campaign *c);

/* The harness's callbacks: a harness made for a campaign passes these with
 * ctx = the campaign (vuf_harness_opts.on_event, .on_violation, .ctx). */
void vuf_campaign_on_event(void *ctx, const vuf_event *ev);
void vuf_campaign_on_violation(void *ctx, const vuf_violation *v);
/* The harness that runs the sessions (not owned). */
void vuf_campaign_attach(vuf_campaign *c, vuf_harness *h);

/* One run. */
typedef struct {
    vuf_finding finding;  /* kind NONE: nothing found */
    const uint8_t *input; /* the session that ran, packed (valid until the next call) */
    size_t len;
    size_t new_states, new_edges; /* feedback it brought */
    bool kept;                    /* it joined the corpus */
} vuf_campaign_run;

/* Run a seed (packed bytes) and keep it in the corpus whatever it brings. */
void vuf_campaign_seed(vuf_campaign *c, const uint8_t *data, size_t len, vuf_campaign_run *r);
/* Run an input another worker found, kept only if it brings something new. */
void vuf_campaign_import(vuf_campaign *c, const uint8_t *data, size_t len, vuf_campaign_run *r);
/* Pick an input, mutate it, run it. false when the corpus is empty. */
bool vuf_campaign_step(vuf_campaign *c, vuf_campaign_run *r);

typedef struct {
    uint64_t execs;         /* runs */
    uint64_t bad_inputs;    /* mutations that do not play against the table */
    size_t corpus;          /* inputs kept */
    size_t states;          /* distinct tuples (answers, closes, requests, rules) */
    size_t transitions;     /* distinct pairs of consecutive tuples */
    size_t edges;           /* distinct edges the map showed (0 without one) */
    uint64_t last_new_exec; /* the run that last brought something new */
} vuf_campaign_stats;

void vuf_campaign_stats_get(const vuf_campaign *c, vuf_campaign_stats *st);

#endif
