/* SPDX-License-Identifier: Apache-2.0 */
/* vuf_qmp: a small QEMU Machine Protocol client for an event loop, for the
 * front-end runner's hang oracle (vuf_frontend.h): connect to the -qmp
 * socket vufuzz added, read the greeting, qmp_capabilities, then one
 * command at a time (query-status, quit), without ever blocking.
 *
 * QMP is line-delimited JSON (QEMU's docs/interop/qmp-spec.rst): the
 * server greets with {"QMP": ...}, answers each command with one
 * {"return": ...} or {"error": ...} line, and interleaves {"event": ...}
 * lines, which are skipped. Lines are bounded; a longer one is dropped. */
#ifndef VUF_QMP_H
#define VUF_QMP_H

#include <stdbool.h>

#include "vuf_endpoint.h"

typedef struct vuf_qmp vuf_qmp;

typedef enum {
    VUF_QMP_DOWN = 0,  /* not connected (or the socket is not there yet) */
    VUF_QMP_HANDSHAKE, /* connected: greeting and capabilities under way */
    VUF_QMP_READY,     /* a command may be sent */
    VUF_QMP_WAITING,   /* a command was sent, its answer is awaited */
    VUF_QMP_CLOSED,    /* the server closed the connection */
} vuf_qmp_state;

vuf_qmp *vuf_qmp_new(void);
void vuf_qmp_free(vuf_qmp *q);
/* Try to connect (DOWN only): true once connected. A socket that is not
 * there yet, or not listening, leaves it DOWN: try again later. */
bool vuf_qmp_connect(vuf_qmp *q, const char *path);
/* Drop the connection: DOWN again. */
void vuf_qmp_close(vuf_qmp *q);
vuf_qmp_state vuf_qmp_state_get(const vuf_qmp *q);
/* Send {"execute": "CMD"} (READY only): true once written. */
bool vuf_qmp_send(vuf_qmp *q, const char *cmd);
/* The answer line to the last command (after WAITING became READY), or "". */
const char *vuf_qmp_answer(const vuf_qmp *q);
/* How many answers arrived since the connection. */
unsigned vuf_qmp_answers(const vuf_qmp *q);

void vuf_qmp_poll_add(vuf_qmp *q, vuf_pollset *p);
void vuf_qmp_dispatch(vuf_qmp *q, const vuf_pollset *p);

#endif
