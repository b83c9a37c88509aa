/* SPDX-License-Identifier: Apache-2.0 */
/* vuf_json: the one writer of machine-readable reports: JSON (streamed, with
 * the commas and escaping done here) and JUnit XML (the test-report format
 * CI systems read). Every command's --json and --junit goes through it.
 *
 * JSON: open a container, then add members (in an object: with a key; in an
 * array: key NULL), close it. Nesting is bounded (VUF_JSON_DEPTH); a writer
 * used wrongly (an unbalanced close, too deep) stops writing and says so in
 * vuf_json_ok(), it never crashes. */
#ifndef VUF_JSON_H
#define VUF_JSON_H

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

#define VUF_JSON_DEPTH 16

typedef struct {
    FILE *f;
    int depth;
    bool first[VUF_JSON_DEPTH];
    char closer[VUF_JSON_DEPTH]; /* the bracket that closes each open container */
    bool bad;
} vuf_json;

void vuf_json_init(vuf_json *j, FILE *f);
/* Containers; key is the member name inside an object, NULL elsewhere. */
void vuf_json_object(vuf_json *j, const char *key);
void vuf_json_array(vuf_json *j, const char *key);
void vuf_json_end(vuf_json *j); /* closes the innermost object or array */
/* Members. A NULL string is written as null. */
void vuf_json_str(vuf_json *j, const char *key, const char *v);
void vuf_json_u64(vuf_json *j, const char *key, uint64_t v);
void vuf_json_i64(vuf_json *j, const char *key, int64_t v);
void vuf_json_double(vuf_json *j, const char *key, double v);
void vuf_json_bool(vuf_json *j, const char *key, bool v);
void vuf_json_null(vuf_json *j, const char *key);
/* Ends the document with a newline; false if it was used wrongly. */
bool vuf_json_finish(vuf_json *j);

/* A JSON string literal, quoted and escaped, on f. */
void vuf_json_write_string(FILE *f, const char *s);

/* ---- JUnit XML ----
 * <testsuites> of <testsuite>s of <testcase>s. The counts of a suite are
 * attributes of its opening tag, so a caller collects its results first. */
typedef enum { VUF_JUNIT_PASS, VUF_JUNIT_FAIL, VUF_JUNIT_SKIP, VUF_JUNIT_ERROR } vuf_junit_status;

void vuf_junit_begin(FILE *f, const char *name);
void vuf_junit_suite(FILE *f, const char *name, unsigned tests, unsigned failures, unsigned skipped,
                     unsigned errors, double seconds);
/* message: one line (an attribute); detail: the element's text (may be NULL). */
void vuf_junit_case(FILE *f, const char *classname, const char *name, double seconds,
                    vuf_junit_status st, const char *message, const char *detail);
void vuf_junit_suite_end(FILE *f);
void vuf_junit_end(FILE *f);
/* XML text with &, <, >, " escaped and control characters dropped. */
void vuf_xml_write_escaped(FILE *f, const char *s);

#endif
