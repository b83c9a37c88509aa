/* SPDX-License-Identifier: Apache-2.0 */
/* vufuzz rules: the rule catalogue (docs/rules.md is its md output). */
#include "cli.h"
#include "vuf_checker.h"
#include "vuf_util.h"

#include <stdlib.h>
#include <string.h>

static const char usage_line[] =
    "usage: vufuzz rules [--format text|md|json] [--spec FILE] [-o FILE]";

/* docs/rules.md: what `--format md -o FILE` writes above this line is
 * generated; from it on the file is written by hand and kept. */
#define HAND_WRITTEN "<!-- hand-written below: `vufuzz rules --format md -o` keeps it -->"

static void usage(FILE *f)
{
    fprintf(f,
            "%s\n\n"
            "The checker's rule catalogue: for each rule its id, level, the rst sentence it\n"
            "enforces and that sentence's verb (the level is the verb's), the family, the\n"
            "spec section and the table column it derives from. md adds every sentence the\n"
            "table gives a gate, a value check or a bound (those rules take their level\n"
            "from it, message by message).\n\n"
            "  --format F  text (default), md (docs/rules.md) or json (every column)\n"
            "  --spec FILE the table whose sentences md and json list (default: built-in)\n"
            "  -o FILE     write to FILE; for md, an existing FILE keeps its hand-written\n"
            "              part (from the line '%s' on):\n"
            "              build/vufuzz rules --format md -o docs/rules.md\n",
            usage_line, HAND_WRITTEN);
}

static const char *level_col(const vuf_rule_info *r)
{
    return r->table ? "per message" : vuf_level_name(r->level);
}

static void md_cell(FILE *f, const char *s)
{
    for (; *s; s++) {
        if (*s == '|')
            fputc('\\', f);
        fputc(*s, f);
    }
}

static void md_quote_row(FILE *f, const char *where, const char *what, const vuf_quote *q)
{
    fprintf(f, "| %s | %s | %s | %s | ", where, what, vuf_level_name(vuf_level_of_verb(q->verb)),
            vuf_verb_name(q->verb));
    md_cell(f, q->text[0] ? q->text : "(none: NOTE)");
    fprintf(f, " |\n");
}

static void md_table_sentences(FILE *f, const vuf_spec *s)
{
    char b[512];
    fprintf(f, "## Levels from the table\n\n"
               "The rules marked *per message* take each violation's level from the sentence "
               "the table (`spec/vhost-user.spec`) gives that column of the message. Every one "
               "of them:\n\n"
               "| where | column | level | verb | rst sentence |\n|---|---|---|---|---|\n");
    for (int c = 0; c < VUF_CHAN_COUNT; c++) {
        const vuf_channel_def *cd = vuf_spec_channel(s, (vuf_channel)c);
        snprintf(b, sizeof b, "channel %s", vuf_channel_name((vuf_channel)c));
        md_quote_row(f, b, "max-fds (FD-CHANNEL-MAX)", &cd->max_fds_quote);
        if (cd->has_fd_gate)
            md_quote_row(f, b, "fd-gate (FD-BACKEND-SEND-FD)", &cd->fd_gate_quote);
        if (cd->requires)
            md_quote_row(f, b, "requires (BCH-BEFORE-BACKEND-REQ)", &cd->requires_quote);
    }
    for (size_t i = 0; i < vuf_spec_feature_count(s); i++) {
        const vuf_feature_def *ft = vuf_spec_feature_at(s, i);
        if (!ft->requires)
            continue;
        char need[256];
        vuf_feature_mask_str(s, ft->space, ft->requires, need, sizeof need);
        snprintf(b, sizeof b, "requires %s (FEAT-DEPENDENCY)", need);
        md_quote_row(f, ft->name, b, &ft->requires_quote);
    }
    for (size_t i = 0; i < vuf_spec_payload_count(s); i++) {
        const vuf_payload_def *p = vuf_spec_payload_at(s, i);
        if (p->varray_field < 0)
            continue;
        const vuf_field_def *va = &p->fields[p->varray_field];
        snprintf(b, sizeof b, "%s max %u (SIZE-COUNT-MAX)", va->name, va->max_count);
        md_quote_row(f, p->name, b, &va->max_quote);
    }
    for (int c = 0; c < VUF_CHAN_COUNT; c++)
        for (size_t i = 0; i < vuf_spec_msg_count(s, (vuf_channel)c); i++) {
            const vuf_msg_def *m = vuf_spec_msg_at(s, (vuf_channel)c, i);
            for (size_t k = 0; k < m->ngates; k++) {
                vuf_msg_def one = *m;
                one.gates = &m->gates[k];
                one.ngates = 1;
                vuf_gates_str(s, &one, b, sizeof b);
                char *paren = strrchr(b, '(');
                if (paren && paren > b)
                    paren[-1] = 0; /* the verb has its own column */
                md_quote_row(f, m->name, b, &m->gates[k].quote);
            }
            if (m->nafter)
                md_quote_row(f, m->name, "after (ORDER-AFTER)", &m->after_quote);
            if (m->reply_payload_quote.text)
                md_quote_row(f, m->name, "reply-payload (SIZE-REPLY)", &m->reply_payload_quote);
            for (size_t k = 0; k < m->nchecks; k++) {
                const vuf_value_check *ck = &m->checks[k];
                snprintf(b, sizeof b, "check %s %s (%s)", ck->ref.path,
                         ck->kind == VUF_CHECK_IN ? "in" : "mask",
                         ck->kind == VUF_CHECK_IN ? "VALUE-IN" : "VALUE-MASK");
                md_quote_row(f, m->name, b, &ck->quote);
            }
        }
    fprintf(f, "\n");
}

static void md_levels(FILE *f)
{
    fprintf(f, "## Levels\n\n"
               "A violation's level is derived from the verb of the rst sentence the rule "
               "enforces, never chosen apart from it:\n\n"
               "| verb | level | the sentence |\n|---|---|---|\n");
    for (int v = 0; v < VUF_VERB_COUNT; v++) {
        const char *const *forms = vuf_verb_forms((vuf_verb)v);
        fprintf(f, "| %s | %s | ", vuf_verb_name((vuf_verb)v),
                vuf_level_name(vuf_level_of_verb((vuf_verb)v)));
        if (forms) {
            fprintf(f, "uses one of: ");
            for (size_t i = 0; forms[i]; i++)
                fprintf(f, "%s\"%s\"", i ? ", " : "", forms[i]);
        } else if (v == VUF_VERB_DEFINES) {
            fprintf(f, "defines the wire format (a header field, a payload layout, the values "
                       "of a field, the roles of the two sides) without a must or should of its "
                       "own: a message that breaks it is not a message of this protocol");
        } else if (v == VUF_VERB_DESCRIBES) {
            fprintf(f, "describes, without a normative verb (\"this message is submitted by the "
                       "front-end when ...\")");
        } else {
            fprintf(f, "none: the rst does not state the check; the text says where it comes "
                       "from (an implementation's limit, a common practice)");
        }
        fprintf(f, " |\n");
    }
    fprintf(f, "\nThe words are matched whole, in any case, strongest first (`spec lint` "
               "refuses a table whose verb is not its sentence's). NOTE findings are reported "
               "apart and count toward `check-trace`'s exit status only with `--level all`; "
               "`--level must` counts MUST only.\n\n");
}

static int write_md(const vuf_spec *s, FILE *f)
{
    size_t n = vuf_rule_count();
    fprintf(f, "# Rule catalogue\n\n"
               "Generated by `build/vufuzz rules --format md -o docs/rules.md` from "
               "`checkers/rules.def` and the table; a test keeps it fresh. The part after the "
               "catalogue is written by hand. Each rule is derived from a column of the spec table "
               "(`spec/README.md`) and has a golden pair in `tests/golden/`: `RULE.pass.trace` (a "
               "legal near miss) and `RULE.fail.trace` (reports exactly that rule).\n\n");
    md_levels(f);
    fprintf(f,
            "## Rules\n\n"
            "The sentence is quoted from QEMU `docs/interop/vhost-user.rst`; for *silent* rules "
            "it says where the check comes from. %zu rules.\n\n"
            "| rule | level | verb | family | spec section | rst sentence | derived from |\n"
            "|---|---|---|---|---|---|---|\n",
            n);
    for (size_t i = 0; i < n; i++) {
        const vuf_rule_info *r = vuf_rule_at(i);
        fprintf(f, "| `%s` | %s | %s | %s | %s | ", r->id, level_col(r), vuf_verb_name(r->verb),
                r->family, r->section[0] ? r->section : "-");
        md_cell(f, r->quote);
        fprintf(f, " | ");
        md_cell(f, r->summary);
        fprintf(f, " |\n");
    }
    fprintf(f, "\n");
    md_table_sentences(f, s);
    return 0;
}

static void json_quote(vuf_json *j, const char *key, const vuf_quote *q)
{
    vuf_json_object(j, key);
    vuf_json_str(j, "verb", vuf_verb_name(q->verb));
    vuf_json_str(j, "level", vuf_level_name(vuf_level_of_verb(q->verb)));
    vuf_json_str(j, "sentence", q->text);
    vuf_json_end(j);
}

static void write_json(const vuf_spec *s, FILE *f)
{
    vuf_json j;
    vuf_json_init(&j, f);
    vuf_json_object(&j, NULL);
    vuf_cli_json_meta(&j);
    vuf_json_array(&j, "rules");
    for (size_t i = 0; i < vuf_rule_count(); i++) {
        const vuf_rule_info *r = vuf_rule_at(i);
        vuf_json_object(&j, NULL);
        vuf_json_str(&j, "id", r->id);
        vuf_json_str(&j, "level", vuf_level_name(r->level));
        vuf_json_bool(&j, "level_per_message", r->table);
        vuf_json_str(&j, "verb", vuf_verb_name(r->verb));
        vuf_json_str(&j, "family", r->family);
        vuf_json_str(&j, "section", r->section);
        vuf_json_str(&j, "sentence", r->quote);
        vuf_json_str(&j, "derived_from", r->summary);
        vuf_json_end(&j);
    }
    vuf_json_end(&j);
    vuf_json_array(&j, "table_sentences");
    for (int c = 0; c < VUF_CHAN_COUNT; c++)
        for (size_t i = 0; i < vuf_spec_msg_count(s, (vuf_channel)c); i++) {
            const vuf_msg_def *m = vuf_spec_msg_at(s, (vuf_channel)c, i);
            size_t nafter = m->nafter ? 1 : 0, nreply = m->reply_payload_quote.text ? 1 : 0;
            for (size_t k = 0; k < m->ngates + m->nchecks + nafter + nreply; k++) {
                char b[512];
                const vuf_quote *q;
                if (k < m->ngates) {
                    vuf_msg_def one = *m;
                    one.gates = &m->gates[k];
                    one.ngates = 1;
                    vuf_gates_str(s, &one, b, sizeof b);
                    snprintf(b + strlen(b), sizeof b - strlen(b), " gate");
                    q = &m->gates[k].quote;
                } else if (k < m->ngates + m->nchecks) {
                    const vuf_value_check *ck = &m->checks[k - m->ngates];
                    snprintf(b, sizeof b, "check %s %s", ck->ref.path,
                             ck->kind == VUF_CHECK_IN ? "in" : "mask");
                    q = &ck->quote;
                } else if (k < m->ngates + m->nchecks + nafter) {
                    snprintf(b, sizeof b, "after");
                    q = &m->after_quote;
                } else {
                    snprintf(b, sizeof b, "reply-payload");
                    q = &m->reply_payload_quote;
                }
                vuf_json_object(&j, NULL);
                vuf_json_str(&j, "channel", vuf_channel_name(m->channel));
                vuf_json_str(&j, "message", m->name);
                vuf_json_str(&j, "column", b);
                json_quote(&j, "quote", q);
                vuf_json_end(&j);
            }
        }
    vuf_json_end(&j);
    vuf_json_end(&j);
    vuf_json_finish(&j);
}

/* The hand-written part of an existing md file, from the marker line on. */
static char *hand_written(const char *path)
{
    size_t len;
    char err[160];
    char *b = (char *)vuf_read_file(path, 16u << 20, &len, err, sizeof err);
    if (!b)
        return NULL;
    char *m = strstr(b, HAND_WRITTEN);
    char *keep = m ? strdup(m) : NULL;
    free(b);
    return keep;
}

int vuf_cmd_rules(int argc, char **argv)
{
    static const vuf_cli_opt opts[] = {
        {"--format", "text|md|json"}, {"--spec", "FILE"}, {"-o", "FILE"}, {NULL, NULL}};
    const char *fmt = "text", *spec = NULL, *outp = NULL, *val;
    vuf_cli_parser p;
    vuf_cli_init(&p, "rules", usage_line, opts, argc, argv);
    for (int k; (k = vuf_cli_next(&p, &val)) != VUF_CLI_END;) {
        if (k == VUF_CLI_HELP) {
            usage(stdout);
            return 0;
        }
        if (k == VUF_CLI_ERROR)
            return 2;
        if (k == VUF_CLI_POS)
            return vuf_cli_usage_error("rules", usage_line, "unexpected '%s'", val);
        *(k == 0 ? &fmt : k == 1 ? &spec : &outp) = val;
    }
    if (strcmp(fmt, "text") && strcmp(fmt, "md") && strcmp(fmt, "json"))
        return vuf_cli_usage_error("rules", usage_line,
                                   "unknown format '%s' (expected text, md or json)", fmt);
    const vuf_spec *s = vuf_cli_open_spec(spec);
    if (!s)
        return 2;
    char *keep = outp && !strcmp(fmt, "md") ? hand_written(outp) : NULL;
    FILE *f = outp ? fopen(outp, "w") : stdout;
    if (!f) {
        perror(outp);
        free(keep);
        vuf_spec_release(s);
        return 2;
    }
    if (!strcmp(fmt, "text")) {
        for (size_t i = 0; i < vuf_rule_count(); i++) {
            const vuf_rule_info *r = vuf_rule_at(i);
            fprintf(f, "%-26s %-11s %-9s %s\n", r->id, level_col(r), r->family, r->summary);
        }
        fprintf(f, "%zu rules\n", vuf_rule_count());
    } else if (!strcmp(fmt, "md")) {
        write_md(s, f);
        fputs(keep ? keep : HAND_WRITTEN "\n", f); /* the marker line starts the kept part */
    } else {
        write_json(s, f);
    }
    free(keep);
    int rc = 0;
    if (outp && fclose(f)) {
        perror(outp);
        rc = 2;
    }
    vuf_spec_release(s);
    return rc;
}
