/* SPDX-License-Identifier: Apache-2.0 */
/* Minimal test helpers: CHECK prints one line per failure and counts; the
 * test's main ends with TEST_END(), which prints "N passed, M failed". */
#ifndef VUF_TEST_H
#define VUF_TEST_H

#include <dirent.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

#include "vuf_spec.h"

static int vuf_t_pass, vuf_t_fail;

#define CHECK(cond, ...)                                                                           \
    do {                                                                                           \
        if (cond) {                                                                                \
            vuf_t_pass++;                                                                          \
        } else {                                                                                   \
            vuf_t_fail++;                                                                          \
            printf("FAIL %s:%d: %s: ", __FILE__, __LINE__, #cond);                                 \
            printf(__VA_ARGS__);                                                                   \
            printf("\n");                                                                          \
        }                                                                                          \
    } while (0)

#define TEST_END()                                                                                 \
    do {                                                                                           \
        printf("%d passed, %d failed\n", vuf_t_pass, vuf_t_fail);                                  \
        return vuf_t_fail ? 1 : 0;                                                                 \
    } while (0)

/* Open fds of this process, counted in /proc/self/fd. */
static inline int vuf_test_count_fds(void)
{
    DIR *d = opendir("/proc/self/fd");
    int n = 0;
    if (!d)
        return -1;
    for (struct dirent *e; (e = readdir(d));)
        if (e->d_name[0] != '.')
            n++;
    closedir(d);
    return n - 1; /* the DIR's own fd */
}

/* The mask of a feature named in the table; a test whose table lacks it
 * cannot run, so it stops. */
static inline uint64_t vuf_test_feature(const vuf_spec *s, vuf_space sp, const char *name)
{
    int b = vuf_spec_feature_bit(s, sp, name);
    if (b < 0) {
        printf("FAIL: %s feature %s is not in the table\n",
               sp == VUF_SPACE_PROTOCOL ? "protocol" : "virtio", name);
        exit(1);
    }
    return 1ull << b;
}

#endif
