/* SPDX-License-Identifier: Apache-2.0 */
/* Sessions: the binary form (protobuf-c pack and unpack, with the checks
 * that keep a hostile input loadable or refused, never crashing), the one
 * helper that reads a session file, and the names the text form shares. */
#include "session_int.h"
#include "vuf_session.h"
#include "vuf_util.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---------- names shared by the parser and the printer ---------- */

const vuf_session_blk_type vuf_session_blk_types[] = {
    {"in", 0}, {"out", 1}, {"flush", 4}, {"get-id", 8}};
const size_t vuf_session_n_blk_types =
    sizeof vuf_session_blk_types / sizeof vuf_session_blk_types[0];

const char *const vuf_session_backend_reply_names[] = {
    [VUF__BACKEND_REPLY__KIND__ACK] = "ack",
    [VUF__BACKEND_REPLY__KIND__NACK] = "nack",
    [VUF__BACKEND_REPLY__KIND__WRONG_ID] = "wrong-id",
    [VUF__BACKEND_REPLY__KIND__NO_REPLY_FLAG] = "no-reply-flag",
    [VUF__BACKEND_REPLY__KIND__WRONG_SIZE] = "wrong-size",
    [VUF__BACKEND_REPLY__KIND__LATE] = "late",
    [VUF__BACKEND_REPLY__KIND__NEVER] = "never",
};
const size_t vuf_session_n_backend_reply =
    sizeof vuf_session_backend_reply_names / sizeof vuf_session_backend_reply_names[0];

/* ---------- binary form ---------- */

static bool fds_ok(Vuf__Fd *const *fds, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (vuf_session_fd_kind(fds[i]->kind) != fds[i]->kind)
            return false;
    return true;
}

/* protobuf-c keeps enum values outside the schema; the reference protobuf
 * implementations refuse a required enum field with an unknown value, and
 * so do we. */
static bool enums_ok(const Vuf__Session *s)
{
    if (s->has_role && s->role != VUF__ROLE__ROLE_FRONTEND && s->role != VUF__ROLE__ROLE_BACKEND)
        return false;
    for (size_t i = 0; i < s->n_actions; i++) {
        const Vuf__Action *a = s->actions[i];
        switch (a->action_case) {
        case VUF__ACTION__ACTION_SEND:
            if (!fds_ok(a->send->fds, a->send->n_fds))
                return false;
            break;
        case VUF__ACTION__ACTION_BACKEND_SEND:
            if (!fds_ok(a->backend_send->fds, a->backend_send->n_fds))
                return false;
            break;
        case VUF__ACTION__ACTION_RAW:
            if (!fds_ok(a->raw->fds, a->raw->n_fds))
                return false;
            break;
        case VUF__ACTION__ACTION_EXPECT:
        case VUF__ACTION__ACTION_BACKEND_EXPECT:
        case VUF__ACTION__ACTION_BE_SEND:
        case VUF__ACTION__ACTION_BE_BACKEND_SEND: /* the union's Message */
            if (!fds_ok(a->expect->fds, a->expect->n_fds))
                return false;
            break;
        case VUF__ACTION__ACTION_BACKEND_REPLY:
            if ((unsigned)a->backend_reply->kind >= vuf_session_n_backend_reply)
                return false;
            break;
        default:
            break;
        }
    }
    return true;
}

Vuf__Session *vuf_session_unpack(const uint8_t *data, size_t len)
{
    static const uint8_t none[1];
    if (!data) {
        if (len)
            return NULL;
        data = none;
    }
    Vuf__Session *s = vuf__session__unpack(NULL, len, data);
    if (s && !enums_ok(s)) {
        vuf_session_free(s);
        return NULL;
    }
    return s;
}

uint8_t *vuf_session_pack(const Vuf__Session *ses, size_t *len)
{
    if (!ses)
        return NULL;
    size_t n = vuf__session__get_packed_size(ses);
    uint8_t *b = malloc(n ? n : 1);
    if (!b)
        return NULL;
    *len = vuf__session__pack(ses, b);
    return b;
}

void vuf_session_free(Vuf__Session *ses)
{
    if (ses)
        vuf__session__free_unpacked(ses, NULL);
}

/* ---------- files ---------- */

bool vuf_session_is_text(const uint8_t *d, size_t n)
{
    size_t i = 0;
    while (i < n) {
        uint8_t ch = d[i];
        if (ch < 0x80) {
            if ((ch < 0x20 && ch != '\t' && ch != '\n' && ch != '\r') || ch == 0x7f)
                return false;
            i++;
            continue;
        }
        size_t k;
        uint32_t cp, min;
        if ((ch & 0xe0) == 0xc0)
            k = 1, cp = ch & 0x1f, min = 0x80;
        else if ((ch & 0xf0) == 0xe0)
            k = 2, cp = ch & 0x0f, min = 0x800;
        else if ((ch & 0xf8) == 0xf0)
            k = 3, cp = ch & 0x07, min = 0x10000;
        else
            return false;
        if (n - i <= k)
            return false;
        for (size_t j = 1; j <= k; j++) {
            if ((d[i + j] & 0xc0) != 0x80)
                return false;
            cp = cp << 6 | (d[i + j] & 0x3f);
        }
        if (cp < min || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff))
            return false;
        i += k + 1;
    }
    return true;
}

static void file_err(vuf_diag *d, const char *path, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void file_err(vuf_diag *d, const char *path, const char *fmt, ...)
{
    if (!d)
        return;
    memset(d, 0, sizeof *d);
    snprintf(d->file, sizeof d->file, "%s", path);
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(d->text, sizeof d->text, fmt, ap);
    va_end(ap);
}

Vuf__Session *vuf_session_load_file(const vuf_spec *s, const char *path, bool *is_binary,
                                    vuf_diag *diag)
{
    if (is_binary)
        *is_binary = false;
    size_t len;
    char err[160];
    uint8_t *buf = vuf_read_file(path, VUF_SESSION_MAX_FILE, &len, err, sizeof err);
    if (!buf) {
        file_err(diag, path, "%s", err);
        return NULL;
    }
    Vuf__Session *ses = NULL;
    if (!vuf_session_is_text(buf, len)) {
        ses = vuf_session_unpack(buf, len);
        if (ses && is_binary)
            *is_binary = true;
        if (!ses)
            file_err(diag, path,
                     "neither text (UTF-8 without control characters) nor a binary session");
    } else {
        ses = vuf_session_parse_text(s, (const char *)buf, len, path, diag);
    }
    free(buf);
    return ses;
}

bool vuf_session_insert_action(Vuf__Session *s, Vuf__Action *a, size_t at)
{
    if (!a)
        return false;
    Vuf__Action **na = realloc(s->actions, (s->n_actions + 1) * sizeof *na);
    if (!na) {
        protobuf_c_message_free_unpacked(&a->base, NULL);
        return false;
    }
    s->actions = na;
    if (at > s->n_actions)
        at = s->n_actions;
    memmove(na + at + 1, na + at, (s->n_actions - at) * sizeof *na);
    na[at] = a;
    s->n_actions++;
    return true;
}

void vuf_session_remove_action(Vuf__Session *s, size_t i)
{
    if (i >= s->n_actions)
        return;
    protobuf_c_message_free_unpacked(&s->actions[i]->base, NULL);
    memmove(s->actions + i, s->actions + i + 1, (s->n_actions - i - 1) * sizeof *s->actions);
    s->n_actions--;
}
