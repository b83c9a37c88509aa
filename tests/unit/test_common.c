/* SPDX-License-Identifier: Apache-2.0 */
/* common/: the bounded file reader, the number syntax, the JSON and JUnit
 * writers. */
#include "vuf_json.h"
#include "vuf_sha256.h"
#include "vuf_test.h"
#include "vuf_util.h"

#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* What a writer produced, through a memory stream. */
static char *capture_json(void (*fn)(vuf_json *), bool *ok)
{
    char *buf = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&buf, &len);
    vuf_json j;
    vuf_json_init(&j, f);
    fn(&j);
    *ok = vuf_json_finish(&j);
    fclose(f);
    return buf;
}

static void doc_report(vuf_json *j)
{
    vuf_json_object(j, NULL);
    vuf_json_str(j, "file", "a \"b\"\\c\n\x01");
    vuf_json_u64(j, "events", 18446744073709551615ull);
    vuf_json_i64(j, "delta", -3);
    vuf_json_bool(j, "clean", false);
    vuf_json_null(j, "none");
    vuf_json_str(j, "nullstr", NULL);
    vuf_json_double(j, "rate", 2.5);
    vuf_json_array(j, "list");
    vuf_json_u64(j, NULL, 1);
    vuf_json_object(j, NULL);
    vuf_json_str(j, "k", "v");
    vuf_json_end(j);
    vuf_json_array(j, NULL);
    vuf_json_end(j);
    vuf_json_end(j);
    vuf_json_end(j);
}

static void doc_unbalanced(vuf_json *j)
{
    vuf_json_object(j, NULL);
    vuf_json_u64(j, "a", 1);
}

static void doc_key_in_array(vuf_json *j)
{
    vuf_json_array(j, NULL);
    vuf_json_u64(j, "a", 1);
    vuf_json_end(j);
}

static void doc_extra_end(vuf_json *j)
{
    vuf_json_array(j, NULL);
    vuf_json_end(j);
    vuf_json_end(j);
}

static void doc_too_deep(vuf_json *j)
{
    for (int i = 0; i < VUF_JSON_DEPTH + 2; i++)
        vuf_json_array(j, NULL);
    for (int i = 0; i < VUF_JSON_DEPTH + 2; i++)
        vuf_json_end(j);
}

VUF_TEST(read_file)
{
    char err[160];
    size_t len = 99;
    char path[] = "/tmp/vuf-test-common-XXXXXX";
    int fd = mkstemp(path);
    CHECK(fd >= 0, "temp file");
    CHECK(write(fd, "hello\n", 6) == 6, "write");
    close(fd);
    uint8_t *b = vuf_read_file(path, 100, &len, err, sizeof err);
    CHECK(b && len == 6 && !memcmp(b, "hello\n", 6) && b[6] == 0, "a regular file, NUL-terminated");
    free(b);
    b = vuf_read_file(path, 6, &len, err, sizeof err);
    CHECK(b && len == 6, "exactly at the limit");
    free(b);
    b = vuf_read_file(path, 5, &len, err, sizeof err);
    CHECK(!b && strstr(err, "larger than 5 bytes"), "one byte over the limit: '%s'", err);
    unlink(path);
    b = vuf_read_file(path, 100, &len, err, sizeof err);
    CHECK(!b && strstr(err, "cannot open") && strstr(err, "No such file"), "missing: '%s'", err);
    b = vuf_read_file("/tmp", 100, &len, err, sizeof err);
    CHECK(!b && strstr(err, "directory"), "a directory is refused: '%s'", err);
    b = vuf_read_file("/dev/zero", 1 << 20, &len, err, sizeof err);
    CHECK(!b && strstr(err, "larger than 1048576"), "/dev/zero stops at the limit: '%s'", err);
    b = vuf_read_file("/dev/null", 10, &len, err, sizeof err);
    CHECK(b && len == 0, "/dev/null: empty");
    free(b);
}

VUF_TEST(numbers)
{
    uint64_t v = 0;
    CHECK(vuf_parse_u64("0", &v) && v == 0, "0");
    CHECK(vuf_parse_u64("18446744073709551615", &v) && v == UINT64_MAX, "max");
    CHECK(!vuf_parse_u64("18446744073709551616", &v), "overflow");
    CHECK(vuf_parse_u64("0x1f", &v), "hex");
    CHECK_EQ(v, 31, "0x1f");
    CHECK(!vuf_parse_u64("-1", &v) && !vuf_parse_u64("+1", &v) && !vuf_parse_u64(" 1", &v),
          "no sign, no space");
    CHECK(!vuf_parse_u64("", &v) && !vuf_parse_u64("12x", &v) && !vuf_parse_u64("0x", &v),
          "whole string");
    CHECK(vuf_parse_size("4K", &v) && v == 4096, "4K");
    CHECK(vuf_parse_size("2m", &v) && v == 2u << 20, "2m");
    CHECK(vuf_parse_size("1G", &v) && v == 1u << 30, "1G");
    CHECK(vuf_parse_size("0x10", &v) && v == 16, "no suffix");
    CHECK(!vuf_parse_size("K", &v) && !vuf_parse_size("1T", &v), "bad suffix use");
    CHECK(!vuf_parse_size("17179869184G", &v), "overflow with a suffix");
}

VUF_TEST(json)
{
    bool ok;
    char *out = capture_json(doc_report, &ok);
    const char *want = "{\"file\":\"a \\\"b\\\"\\\\c\\n\\u0001\",\"events\":18446744073709551615,"
                       "\"delta\":-3,\"clean\":false,\"none\":null,\"nullstr\":null,\"rate\":2.5,"
                       "\"list\":[1,{\"k\":\"v\"},[]]}\n";
    CHECK(ok && out && !strcmp(out, want), "document:\n%s\nwant:\n%s", out, want);
    free(out);
    out = capture_json(doc_unbalanced, &ok);
    CHECK(!ok, "an unclosed object is reported");
    free(out);
    out = capture_json(doc_key_in_array, &ok);
    CHECK(!ok, "a key inside an array is reported");
    free(out);
    out = capture_json(doc_extra_end, &ok);
    CHECK(!ok, "a close with nothing open is reported");
    free(out);
    out = capture_json(doc_too_deep, &ok);
    CHECK(!ok, "nesting past the bound is reported");
    free(out);
}

VUF_TEST(junit)
{
    char *x = NULL;
    size_t xl = 0;
    FILE *f = open_memstream(&x, &xl);
    vuf_junit_begin(f, "vufuzz");
    vuf_junit_suite(f, "s<1>", 2, 1, 0, 0, 0.5);
    vuf_junit_case(f, "c", "pass", 0.1, VUF_JUNIT_PASS, NULL, NULL);
    vuf_junit_case(f, "c", "fail", 0.2, VUF_JUNIT_FAIL, "a \"quoted\" & <tagged>", "line 3\x02");
    vuf_junit_suite_end(f);
    vuf_junit_end(f);
    fclose(f);
    CHECK(x && strstr(x, "<testsuite name=\"s&lt;1&gt;\" tests=\"2\" failures=\"1\""),
          "suite attributes escaped: %s", x);
    CHECK(x && strstr(x, "<testcase classname=\"c\" name=\"pass\" time=\"0.100\"/>"), "a pass");
    CHECK(
        x && strstr(
                 x,
                 "<failure message=\"a &quot;quoted&quot; &amp; &lt;tagged&gt;\">line 3</failure>"),
        "a failure, escaped, control character dropped: %s", x);
    CHECK(x && strstr(x, "</testsuites>"), "closed");
    free(x);
}

VUF_TEST(sha256)
{
    char h[65];
    vuf_sha256_hex("abc", 3, h);
    CHECK_STREQ(h, "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad",
                "FIPS 180-4 'abc'");
    vuf_sha256_hex("", 0, h);
    CHECK_STREQ(h, "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855", "empty");
    /* 56 bytes: the padding needs a second block */
    const char *m = "abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq";
    vuf_sha256_hex(m, strlen(m), h);
    CHECK_STREQ(h, "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1",
                "two blocks");
    /* in pieces, across block boundaries */
    uint8_t big[1000];
    for (size_t i = 0; i < sizeof big; i++)
        big[i] = (uint8_t)(i * 7);
    vuf_sha256 c;
    uint8_t d1[32], d2[32];
    vuf_sha256_init(&c);
    for (size_t i = 0; i < sizeof big; i += 33)
        vuf_sha256_update(&c, big + i, sizeof big - i < 33 ? sizeof big - i : 33);
    vuf_sha256_final(&c, d1);
    vuf_sha256_init(&c);
    vuf_sha256_update(&c, big, sizeof big);
    vuf_sha256_final(&c, d2);
    CHECK(!memcmp(d1, d2, 32), "pieces and whole agree");
}

VUF_TEST_MAIN()
