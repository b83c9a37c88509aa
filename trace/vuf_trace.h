/* SPDX-License-Identifier: Apache-2.0 */
/* vuf_trace: the readable conversation format, one event per line.
 *
 *   F>B main SET_MEM_TABLE need_reply regions[0].guest_addr=0 ... fds=memfd
 *   B>F main SET_MEM_TABLE reply u64=0
 *   open backend
 *   B>F backend BACKEND_IOTLB_MSG need_reply iova=0x1000 perm=1 type=1
 *   close main by=F
 *   note main refuse by=B rule=FD-COUNT -- 2 fds, expected 1
 *   device blk
 *
 * See docs/trace-format.md. Parsing and printing are lossless on the wire
 * bytes and fd kinds: parse(print(e)) == e.
 */
#ifndef VUF_TRACE_H
#define VUF_TRACE_H

#include <stddef.h>

#include "vuf_event.h"
#include "vuf_spec.h"

typedef struct vuf_trace vuf_trace;

vuf_trace *vuf_trace_new(void);
void vuf_trace_free(vuf_trace *t);
/* Parse a whole text; NULL with diag (file:line:col) on error. */
vuf_trace *vuf_trace_parse(const vuf_spec *s, const char *text, size_t len, const char *filename,
                           vuf_diag *diag);
/* The largest trace file vuf_trace_load_file reads. */
#define VUF_TRACE_MAX_FILE (256u << 20)
vuf_trace *vuf_trace_load_file(const vuf_spec *s, const char *path, vuf_diag *diag);
/* Parse one line into *ev (ev->data points into storage owned by t, which
 * the event is appended to). Returns 1 if an event was added, 0 for a blank
 * or comment line, -1 on error. */
int vuf_trace_parse_line(vuf_trace *t, const vuf_spec *s, const char *line, unsigned lineno,
                         const char *filename, vuf_diag *diag);
/* Append a copy of an event. Returns 0 or -1 (out of memory). */
int vuf_trace_append(vuf_trace *t, const vuf_event *ev);
size_t vuf_trace_count(const vuf_trace *t);
/* The `device NAME` line's device (a name of the table's `device` lines), or
 * NULL; *line (if non-NULL) its line. */
const char *vuf_trace_device(const vuf_trace *t, unsigned *line);
const vuf_event *vuf_trace_event(const vuf_trace *t, size_t i);

/* Print one event as one line (no newline). snprintf semantics. */
int vuf_trace_format_event(const vuf_spec *s, const vuf_event *ev, char *out, size_t cap);

#endif
