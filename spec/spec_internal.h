/* SPDX-License-Identifier: Apache-2.0 */
/* Internal to spec/: the table's storage, shared by the model and accessors
 * (spec.c) and the parser (spec_parse.c). Nothing outside spec/ includes it. */
#ifndef VUF_SPEC_INTERNAL_H
#define VUF_SPEC_INTERNAL_H

#include "vuf_spec.h"

#include <stddef.h>

/* A small arena: everything a table owns is freed at once. */
typedef struct vuf_arena_block vuf_arena_block;
void *vuf_arena_alloc(vuf_arena_block **a, size_t n); /* zeroed; NULL when out of memory */
char *vuf_arena_strdup(vuf_arena_block **a, const char *s);
void vuf_arena_free(vuf_arena_block *a);

#define VUF_SPEC_MAX_FEATURES 256
#define VUF_SPEC_MAX_PAYLOADS 128
#define VUF_SPEC_MAX_MSGS 256
#define VUF_SPEC_MAX_DEVICES 32
#define VUF_SPEC_NAME_SLOTS 1024

struct vuf_spec {
    vuf_arena_block *arena;
    char *filename;
    vuf_channel_def chan[VUF_CHAN_COUNT];
    bool chan_declared[VUF_CHAN_COUNT];
    vuf_feature_def *features[VUF_SPEC_MAX_FEATURES];
    size_t nfeatures;
    vuf_payload_def *payloads[VUF_SPEC_MAX_PAYLOADS];
    size_t npayloads;
    vuf_msg_def *msgs[VUF_CHAN_COUNT][VUF_SPEC_MAX_MSGS];
    size_t nmsgs[VUF_CHAN_COUNT];
    vuf_device_def *devices[VUF_SPEC_MAX_DEVICES];
    size_t ndevices;
    int refs; /* for vuf_spec_open/release; -1 = the shared default */
    /* lookup indexes, built once the table is loaded */
    bool indexed;
    vuf_feature_def *by_bit[2][64];
    struct {
        const char *name;
        vuf_msg_def *msg;
    } names[VUF_SPEC_NAME_SLOTS];
};

/* A new empty table named after its file; NULL when out of memory. */
vuf_spec *vuf_spec_alloc(const char *filename);
/* Sort the messages by id and build the O(1) lookups (after parsing). */
void vuf_spec_finalize(vuf_spec *s);

/* Lookups that also work while the table is being parsed. */
vuf_feature_def *vuf_spec_find_feature(const vuf_spec *s, vuf_space sp, const char *name);
const vuf_payload_def *vuf_spec_find_payload(const vuf_spec *s, const char *name);
/* chan VUF_CHAN_COUNT: both channels, front-end first. */
vuf_msg_def *vuf_spec_find_msg(const vuf_spec *s, int chan, const char *name);

#endif
