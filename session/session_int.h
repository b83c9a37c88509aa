/* SPDX-License-Identifier: Apache-2.0 */
/* Internal to session/: the names the text form's parser and printer share
 * (session_parse.c, session_print.c), defined in session_pack.c. */
#ifndef VUF_SESSION_INT_H
#define VUF_SESSION_INT_H

#include <stddef.h>
#include <stdint.h>

#include "vuf_session.h"

/* blk type=NAME <-> virtio-blk request types */
typedef struct {
    const char *name;
    uint32_t v;
} vuf_session_blk_type;
extern const vuf_session_blk_type vuf_session_blk_types[];
extern const size_t vuf_session_n_blk_types;

/* backend-reply NAME <-> BackendReply.Kind */
extern const char *const vuf_session_backend_reply_names[];
extern const size_t vuf_session_n_backend_reply;

#endif
