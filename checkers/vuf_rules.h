/* SPDX-License-Identifier: Apache-2.0 */
/* vuf_rules: the rule catalogue (checkers/rules.def) and the levels.
 *
 * Every rule is a compile-time constant VUF_RULE_<SYM>: a misspelt rule does
 * not build. Its level is derived from the verb of the rst sentence it
 * enforces (vuf_level_of_verb), never chosen separately; for the rules
 * marked `table`, each violation's level comes from the sentence the spec
 * table gives that column of the message (docs/rules.md, "Levels").
 *
 * The level functions are shared by every command that takes --level
 * (check-trace, and the conformance runner and monitor to come):
 *
 *   vuf_level lv = VUF_SHOULD;
 *   if (vuf_level_parse(arg, &lv)) -> usage error "expected must, should or all"
 *   exit 1 if any finding f has vuf_level_within(f.level, lv)
 */
#ifndef VUF_RULES_H
#define VUF_RULES_H

#include <stdbool.h>
#include <stddef.h>

#include "vuf_spec.h"

/* MUST: the spec requires it (must, or a definition of the wire format).
 * SHOULD: the spec recommends it. NOTE: the spec states no requirement
 * (may, descriptive text, silence): a check of this tool, reported apart and
 * never counted as MUST. Ordered: a lower value is stricter. */
typedef enum { VUF_MUST = 0, VUF_SHOULD = 1, VUF_NOTE = 2, VUF_LEVEL_COUNT } vuf_level;

/* "MUST", "SHOULD", "NOTE". */
const char *vuf_level_name(vuf_level l);
/* The --level argument: "must", "should", "note" or "all" (= note), any
 * case. 0, or -1 for anything else (*out unchanged). */
int vuf_level_parse(const char *s, vuf_level *out);
/* The words vuf_level_parse takes, for usage lines. */
#define VUF_LEVEL_ARG "must|should|all"
/* Does a finding at level `l` count at the threshold `threshold`? */
static inline bool vuf_level_within(vuf_level l, vuf_level threshold)
{
    return l <= threshold;
}
/* The level a verb gives: must, defines -> MUST; should -> SHOULD;
 * may, describes, silent -> NOTE. */
vuf_level vuf_level_of_verb(vuf_verb v);

typedef enum {
#define VUF_RULE(sym, id, family, verb, table, section, quote, summary) VUF_RULE_##sym,
#include "rules.def"
#undef VUF_RULE
    VUF_RULE_COUNT
} vuf_rule_id;

typedef struct {
    vuf_rule_id rid;
    const char *id;  /* stable id, e.g. "FD-COUNT" */
    vuf_level level; /* of the catalogue's sentence (vuf_level_of_verb(verb)) */
    vuf_verb verb;
    bool table;          /* a violation's level comes from the table's sentence for the message */
    const char *family;  /* header, initiator, size, value, fd, gate, feature, reply, order, ... */
    const char *section; /* rst section, "" when the rst is silent */
    const char *quote;   /* the rst sentence it enforces (for SILENT: where it comes from) */
    const char *summary; /* one line: what is checked, from which table column */
} vuf_rule_info;

/* The catalogue, in rules.def order. */
size_t vuf_rule_count(void);
const vuf_rule_info *vuf_rule_at(size_t i);
const vuf_rule_info *vuf_rule(vuf_rule_id id);
/* By id string ("FD-COUNT"); NULL if none. */
const vuf_rule_info *vuf_rule_find(const char *id);

#endif
