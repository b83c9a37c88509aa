/* SPDX-License-Identifier: Apache-2.0 */
/* Rendering the table for people: one-line column strings, `spec show`, and
 * the generated message reference (docs/messages.md). */
#include "vuf_spec.h"
#include "vuf_util.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

static const char *fdkind_rule_name(vuf_fdkind_rule k)
{
    switch (k) {
    case VUF_FDK_EVENTFD:
        return "eventfd";
    case VUF_FDK_SHM:
        return "shm";
    case VUF_FDK_SOCKET:
        return "socket";
    case VUF_FDK_ANY:
        break;
    }
    return "any";
}

void vuf_fd_rule_str(const vuf_fd_rule *r, char *out, size_t cap)
{
    const char *k = fdkind_rule_name(r->fdkind);
    int n = 0;
    switch (r->kind) {
    case VUF_FDRULE_EXACT:
        if (r->a == 0)
            n = snprintf(out, cap, "0");
        else
            n = snprintf(out, cap, "%u %s", r->a, k);
        break;
    case VUF_FDRULE_RANGE:
        n = snprintf(out, cap, "%u..%u %s", r->a, r->b, k);
        break;
    case VUF_FDRULE_COUNT:
        n = snprintf(out, cap, "%s (count) %s", r->ref.path, k);
        break;
    case VUF_FDRULE_NOFD:
        n = snprintf(out, cap, "1 %s, 0 if bit %u of %s (NOFD)", k, r->a, r->ref.path);
        break;
    }
    if (r->has_should && n >= 0 && (size_t)n < cap)
        snprintf(out + n, cap - (size_t)n, ", should be %u", r->should);
}

void vuf_payload_str(const vuf_payload_def *p, char *out, size_t cap)
{
    if (!p)
        snprintf(out, cap, "none");
    else if (p->is_empty)
        snprintf(out, cap, "empty");
    else if (p->elem_size)
        snprintf(out, cap, "%s (%u+%un bytes)", p->name, p->fixed_size, p->elem_size);
    else
        snprintf(out, cap, "%s (%u byte%s)", p->name, p->fixed_size, vuf_plural(p->fixed_size));
}

void vuf_feature_mask_str(const vuf_spec *s, vuf_space sp, uint64_t mask, char *out, size_t cap)
{
    size_t len = 0;
    if (cap)
        out[0] = 0;
    for (unsigned b = 0; b < 64; b++) {
        if (!(mask >> b & 1))
            continue;
        const vuf_feature_def *f = vuf_spec_feature(s, sp, b);
        int n = f ? snprintf(out + len, cap - len, "%s%s", len ? " " : "", f->name)
                  : snprintf(out + len, cap - len, "%sbit%u", len ? " " : "", b);
        if (n < 0 || (size_t)n >= cap - len)
            return;
        len += (size_t)n;
    }
}

void vuf_reply_str(const vuf_spec *s, const vuf_msg_def *m, char *out, size_t cap)
{
    const char *k = m->reply == VUF_REPLY_ALWAYS ? "always"
                    : m->reply == VUF_REPLY_ACK  ? "ack"
                                                 : "none";
    char pl[96];
    vuf_payload_str(m->reply_payload, pl, sizeof pl);
    int n;
    if (m->reply == VUF_REPLY_ALWAYS)
        n = snprintf(out, cap, "always: %s", pl);
    else
        n = snprintf(out, cap, "%s", k);
    if (n < 0 || (size_t)n >= cap)
        return;
    int extra = 0;
    if (m->reply_cond == VUF_COND_PROTOCOL) {
        const vuf_feature_def *f = vuf_spec_feature(s, VUF_SPACE_PROTOCOL, m->reply_cond_bit);
        extra = snprintf(out + n, cap - (size_t)n, "; always (%s) if %s negotiated", pl,
                         f ? f->name : "?");
    } else if (m->reply_cond == VUF_COND_AFTER) {
        extra = snprintf(out + n, cap - (size_t)n, "; always (%s) after %s", pl,
                         m->reply_cond_after->name);
    }
    if (extra < 0 || (size_t)(n + extra) >= cap)
        return;
    if (m->reply_error == VUF_RERR_U64)
        snprintf(out + n + extra, cap - (size_t)(n + extra), "; failure: u64 0x%llx",
                 (unsigned long long)m->reply_error_value);
    else if (m->reply_error == VUF_RERR_EMPTY)
        snprintf(out + n + extra, cap - (size_t)(n + extra), "; failure: empty payload");
}

static const char *gate_cond_name(const vuf_gate *g)
{
    return g->cond == VUF_GATE_OFFERED ? "offered" : "negotiated";
}

/* One gate: "bit 30 offered", "protocol MQ offered", "virtio IOMMU_PLATFORM negotiated". */
static void gate_str(const vuf_spec *s, const vuf_gate *g, char *out, size_t cap)
{
    char names[256];
    if (g->space == VUF_SPACE_VIRTIO && g->mask == 1ull << VUF_VIRTIO_PROTOCOL_FEATURES_BIT) {
        snprintf(out, cap, "bit 30 %s", gate_cond_name(g));
        return;
    }
    vuf_feature_mask_str(s, g->space, g->mask, names, sizeof names);
    snprintf(out, cap, "%s %s %s", g->space == VUF_SPACE_PROTOCOL ? "protocol" : "virtio", names,
             gate_cond_name(g));
}

void vuf_gates_str(const vuf_spec *s, const vuf_msg_def *m, char *out, size_t cap)
{
    size_t len = 0;
    if (cap)
        out[0] = 0;
    for (size_t i = 0; i < m->ngates && len < cap; i++) {
        char g[300];
        gate_str(s, &m->gates[i], g, sizeof g);
        int n = snprintf(out + len, cap - len, "%s%s (%s)", i ? "; " : "", g,
                         vuf_verb_name(m->gates[i].quote.verb));
        if (n < 0)
            return;
        len += (size_t)n;
    }
    if (cap && !out[0])
        snprintf(out, cap, "-");
}

static void wf(vuf_write_fn w, void *ctx, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void wf(vuf_write_fn w, void *ctx, const char *fmt, ...)
{
    char buf[4096];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(buf, sizeof buf, fmt, ap);
    va_end(ap);
    w(ctx, buf);
}

static void names_str(const char *const *v, char *out, size_t cap)
{
    size_t len = 0;
    out[0] = 0;
    for (; v && *v; v++) {
        int n = snprintf(out + len, cap - len, "%s%s", len ? ", " : "", *v);
        if (n < 0 || (size_t)n >= cap - len)
            return;
        len += (size_t)n;
    }
}

static void payload_fields(const vuf_payload_def *p, vuf_write_fn w, void *ctx, const char *ind)
{
    if (!p || p->is_empty)
        return;
    for (size_t i = 0; i < p->nfields; i++) {
        const vuf_field_def *f = &p->fields[i];
        static const char *tn[] = {"u8", "u16", "u32", "u64", "u8[]", "pad", "array"};
        if (f->type == VUF_FT_PAD)
            wf(w, ctx, "%s@%-3u pad %u\n", ind, f->offset, f->size);
        else if (f->type == VUF_FT_BYTES)
            wf(w, ctx, "%s@%-3u u8 %s[%u]\n", ind, f->offset, f->name, f->size);
        else if (f->type == VUF_FT_VARRAY)
            wf(w, ctx, "%s@%-3u %s %s[%s] max %u (%s: \"%s\")\n", ind, f->offset,
               f->element ? f->element->name : "u8", f->name, p->fields[f->count_field].name,
               f->max_count, vuf_verb_name(f->max_quote.verb), f->max_quote.text);
        else
            wf(w, ctx, "%s@%-3u %s %s\n", ind, f->offset, tn[f->type], f->name);
    }
    for (size_t i = 0; i < p->nspans; i++)
        wf(w, ctx, "%sspan %s + %s%s\n", ind, p->fields[p->spans[i].base_field].name,
           p->fields[p->spans[i].size_field].name, p->spans[i].fd ? " (in the fd)" : "");
}

static void quote_line(vuf_write_fn w, void *ctx, const char *ind, const vuf_quote *q)
{
    if (q->text && q->text[0])
        wf(w, ctx, "%s%s: \"%s\"\n", ind, vuf_verb_name(q->verb), q->text);
    else
        wf(w, ctx, "%s(no spec sentence)\n", ind);
}

static void show(const vuf_spec *s, const vuf_msg_def *m, vuf_write_fn w, void *ctx, bool lines)
{
    char b[512];
    wf(w, ctx, "%s\n", m->name);
    names_str(m->former, b, sizeof b);
    if (b[0])
        wf(w, ctx, "  former names: %s\n", b);
    wf(w, ctx, "  channel:      %s (id %u)%s%s\n", vuf_channel_name(m->channel), m->id,
       m->provisional ? ", provisional" : "", m->deprecated ? ", deprecated" : "");
    wf(w, ctx, "  initiator:    %s\n", vuf_side_name(m->initiator));
    vuf_payload_str(m->request, b, sizeof b);
    wf(w, ctx, "  request:      %s, size %s\n", b,
       m->size_rule == VUF_SIZE_EXACT ? "exact"
       : m->size_rule == VUF_SIZE_MIN ? "at least"
                                      : "any");
    payload_fields(m->request, w, ctx, "                ");
    vuf_fd_rule_str(&m->fds, b, sizeof b);
    wf(w, ctx, "  fds:          %s\n", b);
    vuf_reply_str(s, m, b, sizeof b);
    wf(w, ctx, "  reply:        %s%s\n", b,
       m->reply_size_matches_request ? " (size equals the request's)" : "");
    vuf_fd_rule_str(&m->reply_fds, b, sizeof b);
    wf(w, ctx, "  reply fds:    %s\n", b);
    for (size_t i = 0; i < m->ngates; i++) {
        gate_str(s, &m->gates[i], b, sizeof b);
        wf(w, ctx, "  gate:         %s\n", b);
        quote_line(w, ctx, "                ", &m->gates[i].quote);
    }
    if (!m->ngates)
        wf(w, ctx, "  gates:        -\n");
    if (m->nafter) {
        size_t len = 0;
        b[0] = 0;
        for (size_t i = 0; i < m->nafter; i++)
            len +=
                (size_t)snprintf(b + len, sizeof b - len, "%s%s", i ? ", " : "", m->after[i]->name);
        wf(w, ctx, "  after:        %s\n", b);
        quote_line(w, ctx, "                ", &m->after_quote);
    }
    if (m->vring.present)
        wf(w, ctx, "  vring index:  %s\n", m->vring.path);
    for (size_t i = 0; i < m->nchecks; i++) {
        const vuf_value_check *c = &m->checks[i];
        size_t len = 0;
        b[0] = 0;
        for (size_t k = 0; k < c->nvalues; k++)
            len += (size_t)snprintf(b + len, sizeof b - len, "%s0x%llx", k ? "," : "",
                                    (unsigned long long)c->values[k]);
        wf(w, ctx, "  check:        %s %s %s\n", c->ref.path,
           c->kind == VUF_CHECK_IN ? "in" : "mask", b);
        quote_line(w, ctx, "                ", &c->quote);
    }
    wf(w, ctx, "  section:      %s\n", m->section);
    for (const char *const *n = m->notes; *n; n++)
        wf(w, ctx, "  note:         %s\n", *n);
    if (lines)
        wf(w, ctx, "  defined at:   %s:%u\n", vuf_spec_filename(s), m->line);
}

void vuf_spec_render_show(const vuf_spec *s, const vuf_msg_def *m, vuf_write_fn w, void *ctx)
{
    show(s, m, w, ctx, true);
}

static void md_escape(const char *in, char *out, size_t cap)
{
    size_t j = 0;
    for (; *in && j + 2 < cap; in++) {
        if (*in == '|')
            out[j++] = '\\';
        out[j++] = *in;
    }
    out[j] = 0;
}

void vuf_spec_render_doc_md(const vuf_spec *s, vuf_write_fn w, void *ctx)
{
    char b[1024], e[2048];
    wf(w, ctx, "# vhost-user message reference\n\n");
    wf(w, ctx,
       "Generated from `spec/vhost-user.spec`: do not edit, edit the table and "
       "regenerate with `build/vufuzz spec doc -o docs/messages.md` (a test checks "
       "this file is fresh). Each gate and value check shows the rst sentence it "
       "comes from and its verb (docs/rules.md, \"Levels\").\n\n");
    for (int c = 0; c < VUF_CHAN_COUNT; c++) {
        const vuf_channel_def *cd = vuf_spec_channel(s, (vuf_channel)c);
        wf(w, ctx, "## %s channel\n\n",
           c == VUF_CHAN_FRONTEND ? "Front-end (main socket)" : "Back-end");
        wf(w, ctx, "Initiator: %s. At most %u fd%s per message.", vuf_side_name(cd->initiator),
           cd->max_fds, vuf_plural(cd->max_fds));
        if (cd->has_fd_gate) {
            const vuf_feature_def *f = vuf_spec_feature(s, VUF_SPACE_PROTOCOL, cd->fd_gate_bit);
            wf(w, ctx, " fds only with %s.", f ? f->name : "?");
        }
        if (cd->requires) {
            vuf_feature_mask_str(s, VUF_SPACE_PROTOCOL, cd->requires, b, sizeof b);
            wf(w, ctx, " Needs %s.", b);
        }
        wf(w, ctx, " Spec section: %s.\n\n", cd->section);
        wf(w, ctx, "| id | message | request | fds | reply | reply fds | gates |\n");
        wf(w, ctx, "|---|---|---|---|---|---|---|\n");
        for (size_t i = 0; i < vuf_spec_msg_count(s, (vuf_channel)c); i++) {
            const vuf_msg_def *m = vuf_spec_msg_at(s, (vuf_channel)c, i);
            char req[96], fds[160], rep[256], rfd[160], g[400];
            vuf_payload_str(m->request, req, sizeof req);
            vuf_fd_rule_str(&m->fds, fds, sizeof fds);
            vuf_reply_str(s, m, rep, sizeof rep);
            vuf_fd_rule_str(&m->reply_fds, rfd, sizeof rfd);
            vuf_gates_str(s, m, g, sizeof g);
            snprintf(b, sizeof b, "%s%s%s", m->name, m->provisional ? " (provisional)" : "",
                     m->deprecated ? " (deprecated)" : "");
            wf(w, ctx, "| %u | [%s](#%s-%u) | %s | %s | %s | %s | %s |\n", m->id, b,
               c == VUF_CHAN_FRONTEND ? "fe" : "be", m->id, req, fds, rep, rfd, g);
        }
        wf(w, ctx, "\n");
    }
    wf(w, ctx, "## Messages in detail\n\n");
    for (int c = 0; c < VUF_CHAN_COUNT; c++) {
        for (size_t i = 0; i < vuf_spec_msg_count(s, (vuf_channel)c); i++) {
            const vuf_msg_def *m = vuf_spec_msg_at(s, (vuf_channel)c, i);
            wf(w, ctx, "<a id=\"%s-%u\"></a>\n### %s (%s %u)\n\n```\n",
               c == VUF_CHAN_FRONTEND ? "fe" : "be", m->id, m->name, vuf_channel_name(m->channel),
               m->id);
            show(s, m, w, ctx, false); /* no line numbers: a table edit is not a doc diff */
            wf(w, ctx, "```\n\n");
        }
    }
    wf(w, ctx, "## Feature bits\n\n| space | bit | name | former | requires | status |\n");
    wf(w, ctx, "|---|---|---|---|---|---|\n");
    for (size_t i = 0; i < vuf_spec_feature_count(s); i++) {
        const vuf_feature_def *f = vuf_spec_feature_at(s, i);
        char fo[256], rq[256];
        names_str(f->former, fo, sizeof fo);
        vuf_feature_mask_str(s, f->space, f->requires, rq, sizeof rq);
        wf(w, ctx, "| %s | %u | %s | %s | %s | %s |\n",
           f->space == VUF_SPACE_PROTOCOL ? "protocol" : "virtio", f->bit, f->name, fo, rq,
           f->provisional ? "provisional" : "");
    }
    wf(w, ctx, "\n## Payload layouts\n\n");
    for (size_t i = 0; i < vuf_spec_payload_count(s); i++) {
        const vuf_payload_def *p = vuf_spec_payload_at(s, i);
        vuf_payload_str(p, b, sizeof b);
        md_escape(b, e, sizeof e);
        wf(w, ctx, "### %s\n\n```\n", e);
        payload_fields(p, w, ctx, "");
        wf(w, ctx, "```\n\n");
    }
}
