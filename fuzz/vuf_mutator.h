/* SPDX-License-Identifier: Apache-2.0 */
/* vuf_mutator: the structure-aware mutator of session inputs.
 *
 * One core, wrapped twice: as libFuzzer's LLVMFuzzerCustomMutator /
 * LLVMFuzzerCustomCrossOver (fuzz/fuzz_session.c) and as an AFL++ custom
 * mutator library (fuzz/afl_mutator.c). It decodes the protobuf input,
 * mutates it by walking the protobuf-c descriptors (any field of any
 * message: integers with interesting values, enums, strings, bytes,
 * optional presence, repeated elements, oneof cases), with the spec table
 * where it helps (message names and ids, payload field paths, feature bits,
 * fd kinds, harness actions that make sense), inserts, deletes, duplicates,
 * swaps and splices actions, and encodes the result.
 *
 * Deterministic for a given (input, seed). No I/O.
 */
#ifndef VUF_MUTATOR_H
#define VUF_MUTATOR_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "vuf_session.h"
#include "vuf_spec.h"

/* Leaf byte mutation supplied by the engine (libFuzzer's LLVMFuzzerMutate),
 * or NULL for the built-in one. Same contract as LLVMFuzzerMutate. */
typedef size_t (*vuf_byte_mutator)(uint8_t *data, size_t size, size_t max);

typedef struct vuf_mutator vuf_mutator;

vuf_mutator *vuf_mutator_new(const vuf_spec *spec, vuf_byte_mutator bytes);
void vuf_mutator_free(vuf_mutator *m);

/* Mutate the session in data[0..size) in place (at most max bytes).
 * Returns the new size (never 0: garbage becomes a fresh session). */
size_t vuf_mutator_mutate(vuf_mutator *m, uint8_t *data, size_t size, size_t max, unsigned seed);
/* A child of two sessions: the first one's config and a splice of both
 * action lists. Returns its size in out (at most max). */
size_t vuf_mutator_crossover(vuf_mutator *m, const uint8_t *a, size_t alen, const uint8_t *b,
                             size_t blen, uint8_t *out, size_t max, unsigned seed);
/* The name of the last mutation applied ("insert-action", ...). */
const char *vuf_mutator_last(const vuf_mutator *m);

/* Trimming (AFL++): the number of steps for a session (its actions), and the
 * session without action i, in out. 0 if i is out of range. */
size_t vuf_mutator_trim_steps(const uint8_t *data, size_t size);
size_t vuf_mutator_without_action(const uint8_t *data, size_t size, size_t i, uint8_t *out,
                                  size_t max);

/* One session Message mutated as the session mutator mutates the messages
 * of its actions (the table's way mostly: a field of the layout, a value,
 * a derived field broken, another message, header bits; now and then any
 * field of the descriptor), as sent on channel ch. Deterministic for a
 * given seed. false: nothing changed. For inputs of other shapes that
 * hold Messages: the back-end sessions of vuf_mutator_mutate_backend. */
bool vuf_mutator_mutate_message(vuf_mutator *m, Vuf__Message *msg, vuf_channel ch, unsigned seed);

/* The mutator's random numbers, for mutations written around it: seed,
 * then values below n (0 when n is 0). */
void vuf_mutator_seed(vuf_mutator *m, unsigned seed);
uint64_t vuf_mutator_below(vuf_mutator *m, uint64_t n);

/* ---- back-end sessions (fuzz/mutator_backend.c) ----
 * Mutate a back-end session (role backend, docs/session-format.md) in
 * data[0..size) in place, at most max bytes: deviations inserted after the
 * front-end messages it expects (a reply laid over the device's, with a
 * field, a size, an id, flags or fds changed; a GET_FEATURES or
 * GET_PROTOCOL_FEATURES reply with bits beyond the device's; a back-end
 * channel request
 * from the table, with and without NEED_REPLY; a delay; a close; raw
 * bytes; a resize), deleted, duplicated, swapped, or their messages
 * mutated with vuf_mutator_mutate_message. The expectations themselves
 * stay in their order. Returns the new size (garbage becomes an empty back-end session). */
size_t vuf_mutator_mutate_backend(vuf_mutator *m, const vuf_spec *spec, uint8_t *data, size_t size,
                                  size_t max, unsigned seed);

#endif
