/* SPDX-License-Identifier: Apache-2.0 */
/* The virtio-blk request model (virtio 1.x, 5.2).
 *
 * Security model: the request header, the sector and every length come from
 * the driver. Ranges are checked against the disk with overflow-free
 * arithmetic before any byte moves; the device writes only into the chain's
 * device-writable pieces (vuf_vq_write). */
#include "vuf_blk.h"

#include <string.h>

#define CFG_WRITEBACK 32u

static uint32_t le32(const uint8_t *p)
{
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

static uint64_t le64(const uint8_t *p)
{
    return (uint64_t)le32(p) | (uint64_t)le32(p + 4) << 32;
}

static void put_le(uint8_t *p, uint64_t v, unsigned n)
{
    for (unsigned i = 0; i < n; i++)
        p[i] = (uint8_t)(v >> (8 * i));
}

/* [sector * 512, + len) inside the disk. */
static bool in_disk(const vuf_blk *b, uint64_t sector, uint64_t len, uint64_t *off)
{
    if (sector > b->size / VUF_BLK_SECTOR)
        return false;
    *off = sector * VUF_BLK_SECTOR;
    return len <= b->size - *off;
}

vuf_blk_result vuf_blk_execute(vuf_blk *b, const vuf_vq *vq, vuf_gmem *m, const vuf_vq_chain *c)
{
    vuf_blk_result r = {.ok = true, .status = VUF_BLK_S_OK};
    uint8_t hdr[16];
    if (c->readable < sizeof hdr || vuf_vq_read(c, 0, hdr, sizeof hdr) != sizeof hdr)
        return (vuf_blk_result){.reason = "request header shorter than 16 bytes"};
    if (c->writable < 1)
        return (vuf_blk_result){.reason = "request without a device-writable status byte"};
    r.type = le32(hdr);
    uint64_t sector = le64(hdr + 8), off = 0;
    uint64_t in_len = c->writable - 1, out_len = c->readable - sizeof hdr;
    uint32_t written = 0;
    switch (r.type) {
    case VUF_BLK_T_IN:
        if (in_len % VUF_BLK_SECTOR || !in_disk(b, sector, in_len, &off)) {
            r.status = VUF_BLK_S_IOERR;
            break;
        }
        if (in_len) /* a 0-byte read of a 0-byte disk has no disk address */
            written = (uint32_t)vuf_vq_write(vq, m, c, 0, b->disk + off, in_len);
        break;
    case VUF_BLK_T_OUT:
        if (b->read_only || out_len % VUF_BLK_SECTOR || !in_disk(b, sector, out_len, &off)) {
            r.status = VUF_BLK_S_IOERR;
            break;
        }
        if (out_len)
            vuf_vq_read(c, sizeof hdr, b->disk + off, out_len);
        break;
    case VUF_BLK_T_FLUSH:
        r.flush = true;
        break;
    case VUF_BLK_T_GET_ID: {
        uint8_t id[20] = {0};
        memcpy(id, VUF_BLK_ID, sizeof VUF_BLK_ID - 1);
        written = (uint32_t)vuf_vq_write(vq, m, c, 0, id, in_len < sizeof id ? in_len : sizeof id);
        break;
    }
    default:
        r.status = VUF_BLK_S_UNSUPP;
        break;
    }
    /* the status byte is the last device-writable byte */
    vuf_vq_write(vq, m, c, c->writable - 1, &r.status, 1);
    r.written = written + 1;
    return r;
}

void vuf_blk_config(const vuf_blk *b, uint8_t out[VUF_BLK_CONFIG_SIZE])
{
    memset(out, 0, VUF_BLK_CONFIG_SIZE);
    put_le(out + 0, b->size / VUF_BLK_SECTOR, 8); /* capacity */
    put_le(out + 12, b->seg_max, 4);              /* seg_max */
    put_le(out + 20, VUF_BLK_SECTOR, 4);          /* blk_size */
    out[CFG_WRITEBACK] = b->writeback;
    put_le(out + 34, b->num_queues, 2); /* num_queues */
}

bool vuf_blk_config_writable(uint32_t off, uint32_t len, bool wce)
{
    return wce && len == 1 && off == CFG_WRITEBACK;
}

void vuf_blk_config_write(vuf_blk *b, uint32_t off, const uint8_t *data, uint32_t len, bool wce)
{
    if (wce && off <= CFG_WRITEBACK && len > CFG_WRITEBACK - off)
        b->writeback = data[CFG_WRITEBACK - off] ? 1 : 0;
}
