/* SPDX-License-Identifier: Apache-2.0 */
/* monitor_bench: a front-end that talks fast, for scripts/bench/monitor.sh.
 *
 *   monitor_bench PATH [--messages N] [--batch K]
 *
 * Connects to the vhost-user back-end at PATH (a device directly, or
 * `vufuzz monitor` in front of it), negotiates REPLY_ACK, CONFIG and MQ,
 * then holds a valid conversation of about N messages (requests and
 * replies), one request with a reply outstanding at a time, as a
 * front-end must:
 *   --batch 1 (default): request, reply, request, ... cycling through
 *     GET_FEATURES, GET_QUEUE_NUM, GET_CONFIG (8 bytes) and SET_VRING_NUM
 *     with need_reply: the round trip is the figure;
 *   --batch K: K-1 requests without a reply (SET_VRING_NUM, SET_VRING_BASE,
 *     as QEMU sends a ring's setup), written at once, then GET_FEATURES and
 *     its reply: a stream, throughput is the figure.
 * Prints one line:
 *
 *   messages=M seconds=S messages_per_s=R rtt_us_mean=A rtt_us_p50=B rtt_us_p99=C
 *
 * (M counts requests and replies; a round trip is from the write of a
 * batch to the read of its reply). Exit status 0, or 2 when the
 * conversation breaks (a reply missing, the peer gone). */
#include "vuf_codec.h"
#include "vuf_transport.h"
#include "vuf_util.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define MAX_BATCH 256

static double now_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1e6 + (double)ts.tv_nsec / 1e3;
}

static size_t build(uint8_t *b, uint32_t req, uint32_t flags, const void *pl, uint32_t size)
{
    vuf_hdr h = {.request = req, .flags = flags, .size = size};
    vuf_hdr_encode(&h, b);
    if (size)
        memcpy(b + VUF_HDR_SIZE, pl, size);
    return VUF_HDR_SIZE + size;
}

static int roundtrip(int fd, uint32_t req, uint32_t flags, const void *pl, uint32_t size,
                     uint64_t *u64)
{
    uint8_t b[VUF_HDR_SIZE + 64], p[4096];
    size_t n = build(b, req, flags, pl, size);
    if (vuf_send_msg(fd, b, n, NULL, 0, 5000) != VUF_IO_OK)
        return -1;
    vuf_rx_msg m = {.payload = p, .payload_cap = sizeof p};
    if (vuf_recv_msg(fd, &m, 5000) != VUF_IO_OK)
        return -1;
    if (u64 && m.payload_len == 8)
        memcpy(u64, p, 8);
    return 0;
}

/* The n-th request with a reply of a ping-pong conversation. */
static size_t request(uint8_t *b, uint64_t n)
{
    static const uint32_t cfg[3] = {0, 8, 0};
    uint8_t pl[20] = {0};
    switch (n % 4) {
    case 0:
        return build(b, 1, 1, NULL, 0); /* GET_FEATURES */
    case 1:
        return build(b, 17, 1, NULL, 0); /* GET_QUEUE_NUM */
    case 2:
        memcpy(pl, cfg, sizeof cfg);
        return build(b, 24, 1, pl, 20); /* GET_CONFIG, 8 bytes */
    default: {
        uint32_t st[2] = {0, 128};
        return build(b, 8, 1 | 8, st, 8); /* SET_VRING_NUM, need_reply */
    }
    }
}

static int cmp(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

static void usage(void)
{
    fprintf(stderr, "usage: monitor_bench PATH [--messages N] [--batch 1..%d]\n", MAX_BATCH);
}

int main(int argc, char **argv)
{
    const char *path = NULL;
    uint64_t total = 100000, batch = 1;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--messages") && i + 1 < argc && vuf_parse_u64(argv[i + 1], &total))
            i++;
        else if (!strcmp(argv[i], "--batch") && i + 1 < argc &&
                 vuf_parse_u64(argv[i + 1], &batch) && batch >= 1 && batch <= MAX_BATCH)
            i++;
        else if (argv[i][0] != '-' && !path)
            path = argv[i];
        else {
            usage();
            return 2;
        }
    }
    if (!path) {
        usage();
        return 2;
    }
    int fd = vuf_unix_connect(path, 5000);
    if (fd < 0) {
        perror(path);
        return 2;
    }
    uint64_t feats = 0, proto = 0, want;
    if (roundtrip(fd, 1, 1, NULL, 0, &feats) || roundtrip(fd, 15, 1, NULL, 0, &proto)) {
        fprintf(stderr, "monitor_bench: no handshake\n");
        return 2;
    }
    want = proto & ((1u << 0) | (1u << 3) | (1u << 9)); /* MQ, REPLY_ACK, CONFIG */
    uint8_t sp[VUF_HDR_SIZE + 8];
    if (vuf_send_msg(fd, sp, build(sp, 16, 1, &want, 8), NULL, 0, 5000) != VUF_IO_OK ||
        roundtrip(fd, 1, 1, NULL, 0, &feats)) {
        fprintf(stderr, "monitor_bench: SET_PROTOCOL_FEATURES failed\n");
        return 2;
    }
    /* one round = the batch's requests and one reply */
    uint64_t rounds = total / (batch + 1);
    if (!rounds)
        rounds = 1;
    double *rtt = malloc(rounds * sizeof *rtt);
    if (!rtt)
        return 2;
    static uint8_t out[MAX_BATCH * (VUF_HDR_SIZE + 20)];
    uint8_t p[4096];
    double t0 = now_us();
    for (uint64_t r = 0; r < rounds; r++) {
        size_t n = 0;
        for (uint64_t k = 0; k + 1 < batch; k++) {
            uint32_t st[2] = {0, k % 2 ? 0 : 128};
            n += build(out + n, k % 2 ? 10 : 8, 1, st, 8); /* SET_VRING_BASE / _NUM */
        }
        n += batch > 1 ? build(out + n, 1, 1, NULL, 0) : request(out + n, r);
        double t = now_us();
        vuf_rx_msg m = {.payload = p, .payload_cap = sizeof p};
        if (vuf_send_msg(fd, out, n, NULL, 0, 5000) != VUF_IO_OK ||
            vuf_recv_msg(fd, &m, 5000) != VUF_IO_OK) {
            fprintf(stderr, "monitor_bench: the conversation broke at round %llu\n",
                    (unsigned long long)r);
            return 2;
        }
        rtt[r] = now_us() - t;
    }
    double secs = (now_us() - t0) / 1e6;
    close(fd);
    double sum = 0;
    for (uint64_t i = 0; i < rounds; i++)
        sum += rtt[i];
    qsort(rtt, rounds, sizeof *rtt, cmp);
    uint64_t msgs = rounds * (batch + 1);
    printf("messages=%llu seconds=%.3f messages_per_s=%.0f rtt_us_mean=%.1f rtt_us_p50=%.1f "
           "rtt_us_p99=%.1f\n",
           (unsigned long long)msgs, secs, (double)msgs / secs, sum / (double)rounds,
           rtt[rounds / 2], rtt[rounds * 99 / 100]);
    free(rtt);
    return 0;
}
