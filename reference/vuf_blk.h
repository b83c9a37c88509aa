/* SPDX-License-Identifier: Apache-2.0 */
/* vuf_blk: the virtio-blk device model of the reference back-end: requests
 * (IN, OUT, FLUSH, GET_ID) over a disk held in memory, and the config space.
 *
 * The disk is a byte array the caller provides (a RAM disk, or a file the
 * server maps); the module never does I/O itself. A FLUSH is reported so the
 * caller can make the disk durable.
 */
#ifndef VUF_BLK_H
#define VUF_BLK_H

#include <stdbool.h>
#include <stdint.h>

#include "vuf_vq.h"

#define VUF_BLK_SECTOR 512u
#define VUF_BLK_CONFIG_SIZE 60u /* struct virtio_blk_config */
#define VUF_BLK_ID "vufuzz-reference"

/* Request types and status values (virtio 1.x, 5.2.6). */
#define VUF_BLK_T_IN 0u
#define VUF_BLK_T_OUT 1u
#define VUF_BLK_T_FLUSH 4u
#define VUF_BLK_T_GET_ID 8u
#define VUF_BLK_S_OK 0u
#define VUF_BLK_S_IOERR 1u
#define VUF_BLK_S_UNSUPP 2u

/* Feature bits the model implements. */
#define VUF_BLK_F_SEG_MAX 2
#define VUF_BLK_F_RO 5
#define VUF_BLK_F_BLK_SIZE 6
#define VUF_BLK_F_FLUSH 9
#define VUF_BLK_F_CONFIG_WCE 11
#define VUF_BLK_F_MQ 12

typedef struct {
    uint8_t *disk;
    uint64_t size; /* bytes; the capacity is size / 512 sectors */
    bool read_only;
    uint16_t num_queues;
    uint32_t seg_max;
    uint8_t writeback; /* config space `writeback` (CONFIG_WCE) */
} vuf_blk;

typedef struct {
    bool ok;            /* false: the chain is not a virtio-blk request at all */
    const char *reason; /* !ok: why */
    uint8_t status;     /* VUF_BLK_S_* written into the status byte */
    uint32_t written;   /* bytes written into device-writable buffers (used.len) */
    bool flush;         /* a FLUSH completed: the caller makes the disk durable */
    uint32_t type;
} vuf_blk_result;

/* Execute one request chain. Reads the header and OUT data from the
 * chain's readable part, writes IN data and the status byte (its last
 * writable byte) into its writable part. */
vuf_blk_result vuf_blk_execute(vuf_blk *b, const vuf_vq *vq, vuf_gmem *m, const vuf_vq_chain *c);

/* The config space as the driver reads it. */
void vuf_blk_config(const vuf_blk *b, uint8_t out[VUF_BLK_CONFIG_SIZE]);
/* May the driver write [off, off+len)? Only `writeback`, and only with
 * VIRTIO_BLK_F_CONFIG_WCE negotiated. */
bool vuf_blk_config_writable(uint32_t off, uint32_t len, bool wce);
/* Apply a write: only the writable bytes take effect. */
void vuf_blk_config_write(vuf_blk *b, uint32_t off, const uint8_t *data, uint32_t len, bool wce);

#endif
