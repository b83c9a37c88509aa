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

#include <stddef.h>
#include <stdint.h>

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

#endif
