/* SPDX-License-Identifier: Apache-2.0 */
#include "vuf_json.h"

#include <inttypes.h>
#include <math.h>

void vuf_json_write_string(FILE *f, const char *s)
{
    fputc('"', f);
    for (; *s; s++) {
        unsigned char c = (unsigned char)*s;
        if (c == '"' || c == '\\')
            fprintf(f, "\\%c", c);
        else if (c == '\n')
            fputs("\\n", f);
        else if (c == '\t')
            fputs("\\t", f);
        else if (c < 0x20 || c == 0x7f)
            fprintf(f, "\\u%04x", c);
        else
            fputc(c, f);
    }
    fputc('"', f);
}

void vuf_json_init(vuf_json *j, FILE *f)
{
    j->f = f;
    j->depth = 0;
    j->first[0] = true;
    j->bad = false;
}

/* The separator and key before a value; false when nothing may be written
 * (a writer used wrongly stops, and vuf_json_finish reports it). */
static bool member(vuf_json *j, const char *key)
{
    if (j->bad)
        return false;
    bool in_object = j->depth > 0 && j->closer[j->depth] == '}';
    if (in_object != (key != NULL) || (j->depth == 0 && !j->first[0])) {
        j->bad = true; /* a key outside an object, none inside one, or two documents */
        return false;
    }
    if (!j->first[j->depth])
        fputc(',', j->f);
    j->first[j->depth] = false;
    if (key) {
        vuf_json_write_string(j->f, key);
        fputc(':', j->f);
    }
    return true;
}

static void open_container(vuf_json *j, const char *key, char open, char close)
{
    if (j->depth + 1 >= VUF_JSON_DEPTH) {
        j->bad = true;
        return;
    }
    if (!member(j, key))
        return;
    fputc(open, j->f);
    j->depth++;
    j->first[j->depth] = true;
    j->closer[j->depth] = close;
}

void vuf_json_object(vuf_json *j, const char *key)
{
    open_container(j, key, '{', '}');
}

void vuf_json_array(vuf_json *j, const char *key)
{
    open_container(j, key, '[', ']');
}

void vuf_json_end(vuf_json *j)
{
    if (j->bad)
        return;
    if (j->depth == 0) {
        j->bad = true;
        return;
    }
    fputc(j->closer[j->depth], j->f);
    j->depth--;
}

void vuf_json_str(vuf_json *j, const char *key, const char *v)
{
    if (!member(j, key))
        return;
    if (v)
        vuf_json_write_string(j->f, v);
    else
        fputs("null", j->f);
}

void vuf_json_u64(vuf_json *j, const char *key, uint64_t v)
{
    if (member(j, key))
        fprintf(j->f, "%" PRIu64, v);
}

void vuf_json_i64(vuf_json *j, const char *key, int64_t v)
{
    if (member(j, key))
        fprintf(j->f, "%" PRId64, v);
}

void vuf_json_double(vuf_json *j, const char *key, double v)
{
    if (!member(j, key))
        return;
    if (isfinite(v))
        fprintf(j->f, "%.6g", v);
    else
        fputs("null", j->f); /* JSON has no inf or nan */
}

void vuf_json_bool(vuf_json *j, const char *key, bool v)
{
    if (member(j, key))
        fputs(v ? "true" : "false", j->f);
}

void vuf_json_null(vuf_json *j, const char *key)
{
    if (member(j, key))
        fputs("null", j->f);
}

bool vuf_json_finish(vuf_json *j)
{
    if (j->depth != 0)
        j->bad = true;
    fputc('\n', j->f);
    fflush(j->f);
    return !j->bad;
}

/* ---- JUnit ---- */

void vuf_xml_write_escaped(FILE *f, const char *s)
{
    for (; s && *s; s++) {
        unsigned char c = (unsigned char)*s;
        switch (c) {
        case '<':
            fputs("&lt;", f);
            break;
        case '>':
            fputs("&gt;", f);
            break;
        case '&':
            fputs("&amp;", f);
            break;
        case '"':
            fputs("&quot;", f);
            break;
        default:
            if (c >= 0x20 || c == '\n' || c == '\t')
                fputc(c, f); /* XML 1.0 has no other control characters */
        }
    }
}

void vuf_junit_begin(FILE *f, const char *name)
{
    fputs("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<testsuites name=\"", f);
    vuf_xml_write_escaped(f, name);
    fputs("\">\n", f);
}

void vuf_junit_suite(FILE *f, const char *name, unsigned tests, unsigned failures, unsigned skipped,
                     unsigned errors, double seconds)
{
    fputs("  <testsuite name=\"", f);
    vuf_xml_write_escaped(f, name);
    fprintf(f, "\" tests=\"%u\" failures=\"%u\" skipped=\"%u\" errors=\"%u\" time=\"%.3f\">\n",
            tests, failures, skipped, errors, seconds);
}

void vuf_junit_case(FILE *f, const char *classname, const char *name, double seconds,
                    vuf_junit_status st, const char *message, const char *detail)
{
    fputs("    <testcase classname=\"", f);
    vuf_xml_write_escaped(f, classname);
    fputs("\" name=\"", f);
    vuf_xml_write_escaped(f, name);
    fprintf(f, "\" time=\"%.3f\"", seconds);
    if (st == VUF_JUNIT_PASS) {
        fputs("/>\n", f);
        return;
    }
    static const char *const tag[] = {"", "failure", "skipped", "error"};
    fprintf(f, ">\n      <%s message=\"", tag[st]);
    vuf_xml_write_escaped(f, message ? message : "");
    if (detail && *detail) {
        fputs("\">", f);
        vuf_xml_write_escaped(f, detail);
        fprintf(f, "</%s>\n", tag[st]);
    } else {
        fputs("\"/>\n", f);
    }
    fputs("    </testcase>\n", f);
}

void vuf_junit_suite_end(FILE *f)
{
    fputs("  </testsuite>\n", f);
}

void vuf_junit_end(FILE *f)
{
    fputs("</testsuites>\n", f);
}
