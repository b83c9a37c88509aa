/* SPDX-License-Identifier: Apache-2.0 */
/* vuf_aflmap: the edge map of a back-end built with AFL++'s instrumentation
 * (afl-clang-fast, afl-gcc-fast), read from outside.
 *
 * The instrumentation of such a binary looks for a System V shared memory
 * segment named by the environment variable __AFL_SHM_ID when it starts, and
 * counts each edge it takes in a byte of it (AFL_MAP_SIZE bytes). vufuzz
 * makes the segment, puts both variables in its environment before it starts
 * the back-end (`--exec`: the child inherits them), and reads the counts
 * after each session (campaign/vuf_campaign.h). A back-end with no such
 * instrumentation leaves the map at zero: vufuzz says so.
 *
 * The segment is marked for removal as soon as it is made (Linux lets a
 * process attach it until the last one detaches), so nothing is left
 * behind, whatever way vufuzz ends. */
#ifndef VUF_AFLMAP_H
#define VUF_AFLMAP_H

#include <stddef.h>
#include <stdint.h>

typedef struct vuf_aflmap vuf_aflmap;

/* A map of size bytes (0: 65536), its variables set in this process's
 * environment. NULL with a reason in err. */
vuf_aflmap *vuf_aflmap_new(size_t size, char *err, size_t errcap);
void vuf_aflmap_free(vuf_aflmap *m);
uint8_t *vuf_aflmap_bytes(vuf_aflmap *m);
size_t vuf_aflmap_size(const vuf_aflmap *m);
/* Edges with a count now (for "the map stays empty" checks). */
size_t vuf_aflmap_count(const vuf_aflmap *m);

#endif
