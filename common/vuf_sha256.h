/* SPDX-License-Identifier: Apache-2.0 */
/* vuf_sha256: SHA-256 (FIPS 180-4), to name what a report was made with
 * (the table's text) and to tell inputs apart. Not used for secrets. */
#ifndef VUF_SHA256_H
#define VUF_SHA256_H

#include <stddef.h>
#include <stdint.h>

typedef struct {
    uint32_t h[8];
    uint64_t bytes;
    uint8_t block[64];
    size_t used;
} vuf_sha256;

void vuf_sha256_init(vuf_sha256 *c);
void vuf_sha256_update(vuf_sha256 *c, const void *data, size_t len);
void vuf_sha256_final(vuf_sha256 *c, uint8_t out[32]);
/* The digest of data as 64 lowercase hex digits and a NUL. */
void vuf_sha256_hex(const void *data, size_t len, char out[65]);

#endif
