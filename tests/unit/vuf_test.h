/* SPDX-License-Identifier: Apache-2.0 */
/* The unit tests' one runner.
 *
 * A test file declares cases with VUF_TEST(name) { ... } and ends with
 * VUF_TEST_MAIN(). The runner runs every case, or those named (or matched by
 * shell globs) on the command line, checks around each case that it left no
 * fd open (/proc/self/fd before and after), and prints one line per case and
 * a total:
 *
 *   build/tests/test_vq                  every case
 *   build/tests/test_vq chain_bound      one case
 *   build/tests/test_vq 'chain_*'        cases matching a glob
 *   build/tests/test_vq --list           the case names
 *
 * Assertions count and never stop the case: CHECK(cond, fmt, ...) prints its
 * message; CHECK_EQ / CHECK_NE / CHECK_STREQ print both operands.
 * Exit status: 0 all passed, 1 a failure, 2 a name matched no case. */
#ifndef VUF_TEST_H
#define VUF_TEST_H

#include <dirent.h>
#include <fnmatch.h>
#include <inttypes.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

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

/* Integer comparisons printing both operands (as unsigned 64-bit and hex;
 * negative values show as their two's complement). */
#define VUF_CHECK_CMP(a, op, b, ...)                                                               \
    do {                                                                                           \
        uint64_t vuf_a_ = (uint64_t)(a), vuf_b_ = (uint64_t)(b);                                   \
        if (vuf_a_ op vuf_b_) {                                                                    \
            vuf_t_pass++;                                                                          \
        } else {                                                                                   \
            vuf_t_fail++;                                                                          \
            printf("FAIL %s:%d: %s %s %s: %" PRIu64 " (0x%" PRIx64 ") vs %" PRIu64 " (0x%" PRIx64  \
                   "): ",                                                                          \
                   __FILE__, __LINE__, #a, #op, #b, vuf_a_, vuf_a_, vuf_b_, vuf_b_);               \
            printf(__VA_ARGS__);                                                                   \
            printf("\n");                                                                          \
        }                                                                                          \
    } while (0)
#define CHECK_EQ(a, b, ...) VUF_CHECK_CMP(a, ==, b, __VA_ARGS__)
#define CHECK_NE(a, b, ...) VUF_CHECK_CMP(a, !=, b, __VA_ARGS__)

#define CHECK_STREQ(a, b, ...)                                                                     \
    do {                                                                                           \
        const char *vuf_a_ = (a), *vuf_b_ = (b);                                                   \
        if (vuf_a_ && vuf_b_ && !strcmp(vuf_a_, vuf_b_)) {                                         \
            vuf_t_pass++;                                                                          \
        } else {                                                                                   \
            vuf_t_fail++;                                                                          \
            printf("FAIL %s:%d: %s == %s: \"%s\" vs \"%s\": ", __FILE__, __LINE__, #a, #b,         \
                   vuf_a_ ? vuf_a_ : "(null)", vuf_b_ ? vuf_b_ : "(null)");                        \
            printf(__VA_ARGS__);                                                                   \
            printf("\n");                                                                          \
        }                                                                                          \
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

/* The built-in table (loaded once); a test cannot run without it, so it
 * stops. */
static inline const vuf_spec *vuf_test_table(void)
{
    const vuf_spec *s = vuf_spec_default();
    if (!s) {
        printf("FAIL: the built-in spec table does not load\n");
        exit(1);
    }
    return s;
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

/* ---- cases and the runner ---- */

#define VUF_TEST_MAX 256

static struct {
    const char *name;
    void (*fn)(void);
} vuf_test_cases[VUF_TEST_MAX];
static int vuf_test_ncases;

static inline void vuf_test_add(const char *name, void (*fn)(void))
{
    if (vuf_test_ncases == VUF_TEST_MAX) {
        printf("FAIL: more than %d test cases in one file\n", VUF_TEST_MAX);
        exit(1);
    }
    vuf_test_cases[vuf_test_ncases].name = name;
    vuf_test_cases[vuf_test_ncases++].fn = fn;
}

/* Cases run in the order they are written (constructors run in order). */
#define VUF_TEST(name)                                                                             \
    static void name(void);                                                                        \
    __attribute__((constructor)) static void vuf_test_reg_##name(void)                             \
    {                                                                                              \
        vuf_test_add(#name, name);                                                                 \
    }                                                                                              \
    static void name(void)

static inline int vuf_test_main(int argc, char **argv)
{
    if (argc > 1 && (!strcmp(argv[1], "--list") || !strcmp(argv[1], "-l"))) {
        for (int i = 0; i < vuf_test_ncases; i++)
            printf("%s\n", vuf_test_cases[i].name);
        return 0;
    }
    if (argc > 1 && (!strcmp(argv[1], "--help") || !strcmp(argv[1], "-h"))) {
        printf("usage: %s [--list] [CASE|GLOB...]\n"
               "Run every test case, or those named. Exit 0 all passed, 1 a failure,\n"
               "2 a name that matches no case.\n",
               argv[0]);
        return 0;
    }
    for (int a = 1; a < argc; a++) {
        bool any = false;
        for (int i = 0; i < vuf_test_ncases; i++)
            any |= !fnmatch(argv[a], vuf_test_cases[i].name, 0);
        if (!any) {
            printf("%s: no test case matches '%s' (--list shows them)\n", argv[0], argv[a]);
            return 2;
        }
    }
    int ran = 0;
    for (int i = 0; i < vuf_test_ncases; i++) {
        bool sel = argc < 2;
        for (int a = 1; a < argc && !sel; a++)
            sel = !fnmatch(argv[a], vuf_test_cases[i].name, 0);
        if (!sel)
            continue;
        int p = vuf_t_pass, f = vuf_t_fail, fds = vuf_test_count_fds();
        vuf_test_cases[i].fn();
        int after = vuf_test_count_fds();
        if (after != fds) {
            vuf_t_fail++;
            printf("FAIL %s: %d fds open before the case, %d after\n", vuf_test_cases[i].name, fds,
                   after);
        }
        printf("%-32s %d passed, %d failed\n", vuf_test_cases[i].name, vuf_t_pass - p,
               vuf_t_fail - f);
        ran++;
    }
    printf("%d cases: %d passed, %d failed\n", ran, vuf_t_pass, vuf_t_fail);
    return vuf_t_fail ? 1 : 0;
}

#define VUF_TEST_MAIN()                                                                            \
    int main(int argc, char **argv)                                                                \
    {                                                                                              \
        return vuf_test_main(argc, argv);                                                          \
    }

#endif
