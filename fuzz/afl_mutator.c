/* SPDX-License-Identifier: Apache-2.0 */
/* The session mutator as an AFL++ custom mutator library
 * (AFL_CUSTOM_MUTATOR_LIBRARY=libvufuzz_afl_mutator.so): afl_custom_init,
 * fuzz, describe, the three trimming hooks (one action removed per step,
 * kept when the coverage holds) and deinit. The same core as libFuzzer's
 * LLVMFuzzerCustomMutator (vuf_mutator.h). */
#include "vuf_mutator.h"
#include "vuf_session.h"

#include <stdlib.h>
#include <string.h>

#define BUF_MAX (1u << 20)

typedef struct {
    vuf_mutator *m;
    unsigned seed;
    uint8_t *buf;
    /* trimming */
    uint8_t *trim, *trim_out;
    size_t trim_len, trim_out_len, trim_step, trim_steps;
} afl_state;

void *afl_custom_init(void *afl, unsigned int seed)
{
    (void)afl;
    afl_state *st = calloc(1, sizeof *st);
    const vuf_spec *s = vuf_spec_default();
    if (!st || !s)
        goto fail;
    st->m = vuf_mutator_new(s, NULL);
    st->buf = malloc(BUF_MAX);
    st->trim = malloc(BUF_MAX);
    st->trim_out = malloc(BUF_MAX);
    if (!st->m || !st->buf || !st->trim || !st->trim_out)
        goto fail;
    st->seed = seed;
    return st;
fail:
    if (st) {
        vuf_mutator_free(st->m);
        free(st->buf);
        free(st->trim);
        free(st->trim_out);
        free(st);
    }
    return NULL;
}

size_t afl_custom_fuzz(void *data, uint8_t *buf, size_t buf_size, uint8_t **out_buf,
                       uint8_t *add_buf, size_t add_buf_size, size_t max_size)
{
    afl_state *st = data;
    if (max_size > BUF_MAX)
        max_size = BUF_MAX;
    st->seed = st->seed * 1103515245u + 12345u;
    size_t n;
    if (add_buf && add_buf_size && (st->seed >> 16) % 8 == 0) {
        n = vuf_mutator_crossover(st->m, buf, buf_size, add_buf, add_buf_size, st->buf, max_size,
                                  st->seed);
    } else {
        n = buf_size < max_size ? buf_size : max_size;
        memcpy(st->buf, buf, n);
        n = vuf_mutator_mutate(st->m, st->buf, n, max_size, st->seed);
    }
    *out_buf = st->buf;
    return n;
}

const char *afl_custom_describe(void *data, size_t max_description_len)
{
    afl_state *st = data;
    static char d[64];
    size_t n = max_description_len < sizeof d ? max_description_len : sizeof d;
    if (n) {
        strncpy(d, vuf_mutator_last(st->m), n - 1);
        d[n - 1] = 0;
    }
    return d;
}

int32_t afl_custom_init_trim(void *data, uint8_t *buf, size_t buf_size)
{
    afl_state *st = data;
    if (buf_size > BUF_MAX)
        return 0;
    memcpy(st->trim, buf, buf_size);
    st->trim_len = buf_size;
    st->trim_steps = vuf_mutator_trim_steps(buf, buf_size);
    st->trim_step = 0;
    return (int32_t)st->trim_steps;
}

size_t afl_custom_trim(void *data, uint8_t **out_buf)
{
    afl_state *st = data;
    /* the input without action trim_step */
    st->trim_out_len =
        vuf_mutator_without_action(st->trim, st->trim_len, st->trim_step, st->trim_out, BUF_MAX);
    if (!st->trim_out_len) {
        memcpy(st->trim_out, st->trim, st->trim_len);
        st->trim_out_len = st->trim_len;
    }
    *out_buf = st->trim_out;
    return st->trim_out_len;
}

int32_t afl_custom_post_trim(void *data, unsigned char success)
{
    afl_state *st = data;
    if (success) {
        /* the action was not needed: keep the smaller input, same step */
        memcpy(st->trim, st->trim_out, st->trim_out_len);
        st->trim_len = st->trim_out_len;
        st->trim_steps--;
    } else {
        st->trim_step++;
    }
    return st->trim_step >= st->trim_steps ? (int32_t)st->trim_steps : (int32_t)st->trim_step;
}

void afl_custom_deinit(void *data)
{
    afl_state *st = data;
    if (!st)
        return;
    vuf_mutator_free(st->m);
    free(st->buf);
    free(st->trim);
    free(st->trim_out);
    free(st);
}
