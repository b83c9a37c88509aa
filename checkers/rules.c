/* SPDX-License-Identifier: Apache-2.0 */
/* The rule catalogue, from rules.def, and the levels. docs/rules.md is
 * generated from it by `vufuzz rules --format md`. */
#include "vuf_rules.h"

#include <string.h>
#include <strings.h>

/* The level each verb gives, as constants (vuf_level_of_verb says the same;
 * test_checker checks that they agree). */
#define VUF_LVL_MUST VUF_MUST
#define VUF_LVL_DEFINES VUF_MUST
#define VUF_LVL_SHOULD VUF_SHOULD
#define VUF_LVL_MAY VUF_NOTE
#define VUF_LVL_DESCRIBES VUF_NOTE
#define VUF_LVL_SILENT VUF_NOTE

static const vuf_rule_info rules[] = {
#define VUF_RULE(sym, id_, family_, verb_, table_, section_, quote_, summary_)                     \
    {.rid = VUF_RULE_##sym,                                                                        \
     .id = id_,                                                                                    \
     .level = VUF_LVL_##verb_,                                                                     \
     .verb = VUF_VERB_##verb_,                                                                     \
     .table = table_,                                                                              \
     .family = family_,                                                                            \
     .section = section_,                                                                          \
     .quote = quote_,                                                                              \
     .summary = summary_},
#include "rules.def"
#undef VUF_RULE
};

_Static_assert(sizeof rules / sizeof rules[0] == VUF_RULE_COUNT, "one entry per rule");

static const char *const level_names[VUF_LEVEL_COUNT] = {"MUST", "SHOULD", "NOTE"};

const char *vuf_level_name(vuf_level l)
{
    return (unsigned)l < VUF_LEVEL_COUNT ? level_names[l] : "?";
}

int vuf_level_parse(const char *s, vuf_level *out)
{
    if (!s)
        return -1;
    for (int l = 0; l < VUF_LEVEL_COUNT; l++)
        if (!strcasecmp(s, level_names[l])) {
            *out = (vuf_level)l;
            return 0;
        }
    if (!strcasecmp(s, "all")) {
        *out = VUF_NOTE;
        return 0;
    }
    return -1;
}

vuf_level vuf_level_of_verb(vuf_verb v)
{
    switch (v) {
    case VUF_VERB_MUST:
    case VUF_VERB_DEFINES:
        return VUF_MUST;
    case VUF_VERB_SHOULD:
        return VUF_SHOULD;
    default:
        return VUF_NOTE;
    }
}

size_t vuf_rule_count(void)
{
    return VUF_RULE_COUNT;
}

const vuf_rule_info *vuf_rule_at(size_t i)
{
    return i < VUF_RULE_COUNT ? vuf_rule((vuf_rule_id)i) : NULL;
}

const vuf_rule_info *vuf_rule(vuf_rule_id id)
{
    return (unsigned)id < VUF_RULE_COUNT ? &rules[id] : NULL;
}

const vuf_rule_info *vuf_rule_find(const char *id)
{
    for (size_t i = 0; id && i < VUF_RULE_COUNT; i++)
        if (!strcmp(rules[i].id, id))
            return &rules[i];
    return NULL;
}
