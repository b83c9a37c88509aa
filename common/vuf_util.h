/* SPDX-License-Identifier: Apache-2.0 */
/* vuf_util: small helpers every module shares, written once.
 *
 *   vuf_read_file   a whole file into memory, bounded: a directory, a device
 *                   that never ends (/dev/zero) or a file over the caller's
 *                   limit is refused with a reason, never read to exhaustion;
 *   vuf_parse_u64   the project's one number syntax (decimal or 0x hex, the
 *                   whole string, no sign, no space);
 *   vuf_parse_size  a number with an optional K, M or G suffix (powers of 2);
 *   vuf_plural      "" or "s" after a count ("1 byte", "2 bytes");
 *   vuf_lines       a growing text of lines (a conversation for a report);
 *   vuf_write_file  a whole file written, replacing the old one at once;
 *   vuf_mkdir_p     a directory and its parents;
 *   vuf_now_*       the monotonic clock in us, ms or seconds.
 *
 * Nothing here prints or aborts. */
#ifndef VUF_UTIL_H
#define VUF_UTIL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Read path whole into a malloc'd buffer (NUL-terminated after *len bytes,
 * so text parsers may use it as a string). At most max bytes are accepted;
 * one byte more is an error. Returns the buffer, or NULL with a one-line
 * reason in err ("is a directory", "larger than 1048576 bytes",
 * "No such file or directory", ...). */
uint8_t *vuf_read_file(const char *path, size_t max, size_t *len, char *err, size_t errcap);

/* Decimal or 0x hexadecimal, the whole string. */
bool vuf_parse_u64(const char *s, uint64_t *out);
/* vuf_parse_u64 with an optional K/k, M/m or G/g suffix (x 2^10, 2^20, 2^30);
 * false on overflow. */
bool vuf_parse_size(const char *s, uint64_t *out);

/* The English plural ending for a count: "" for 1, "s" otherwise. */
static inline const char *vuf_plural(uint64_t n)
{
    return n == 1 ? "" : "s";
}

/* A NUL-terminated text that lines are appended to; {0} is empty. A line
 * that does not fit in memory is dropped (the text stays valid). */
typedef struct {
    char *text; /* NULL while empty; owned, free() it or vuf_lines_free */
    size_t len, cap;
} vuf_lines;
void vuf_lines_add(vuf_lines *l, const char *line);
/* Hand the text over (the caller frees it); l is empty again. */
char *vuf_lines_take(vuf_lines *l);
void vuf_lines_free(vuf_lines *l);

/* Write path whole: a temporary file beside it, renamed over it, so a reader
 * never sees half of it. false (errno set) when it could not. */
bool vuf_write_file(const char *path, const void *data, size_t len);
/* mkdir -p: 0, or -1 with errno. */
int vuf_mkdir_p(const char *path);

/* CLOCK_MONOTONIC. */
int64_t vuf_now_us(void);
int64_t vuf_now_ms(void);
double vuf_now_s(void);

#endif
