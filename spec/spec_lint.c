/* SPDX-License-Identifier: Apache-2.0 */
/* Semantic lint and semantic diff of spec tables.
 *
 * The loader rejects what cannot be read (syntax, unknown names, duplicate
 * keys). Lint finds what reads fine but contradicts itself: a declared size
 * that is not the layout's, a reply rule that contradicts its payload, an fd
 * count above the channel's limit, a message whose initiator is not its
 * channel's. vuf_spec_open() refuses a table with lint errors.
 */
#include "vuf_spec.h"
#include "vuf_util.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

typedef struct {
    const vuf_spec *s;
    vuf_diag_fn fn;
    void *ctx;
    size_t errors;
} lint_ctx;

static void lint_report(lint_ctx *l, bool is_error, unsigned line, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

static void lint_report(lint_ctx *l, bool is_error, unsigned line, const char *fmt, ...)
{
    vuf_diag d = {.line = line, .col = 1};
    snprintf(d.file, sizeof d.file, "%s", vuf_spec_filename(l->s));
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(d.text, sizeof d.text, fmt, ap);
    va_end(ap);
    if (is_error)
        l->errors++;
    if (l->fn)
        l->fn(l->ctx, &d, is_error);
}

static uint32_t fd_rule_max(const vuf_fd_rule *r, const vuf_payload_def *p)
{
    switch (r->kind) {
    case VUF_FDRULE_EXACT:
    case VUF_FDRULE_RANGE:
        return r->b;
    case VUF_FDRULE_NOFD:
        return 1;
    case VUF_FDRULE_COUNT:
        /* the count field's largest legal value: the array's max when the
         * count is the array's count field, else unbounded */
        if (p && p->varray_field >= 0) {
            const vuf_field_def *va = &p->fields[p->varray_field];
            const vuf_field_def *cf = &p->fields[va->count_field];
            if (cf->offset == r->ref.offset)
                return va->max_count;
        }
        return 0xffffffffu;
    }
    return 0;
}

/* A column's quote: given where a rule's level comes from it, and its verb
 * the one its words use (vuf_verb_detect). */
static void lint_quote(lint_ctx *l, const vuf_quote *q, unsigned line, const char *what)
{
    if (!q->text || !q->text[0]) {
        lint_report(l, false, line,
                    "%s has no spec sentence (VERB \"SENTENCE\"): its violations are NOTE", what);
        return;
    }
    vuf_verb said = vuf_verb_detect(q->text);
    bool ok = true;
    switch (q->verb) {
    case VUF_VERB_MUST:
    case VUF_VERB_SHOULD:
    case VUF_VERB_MAY:
        ok = said == q->verb;
        break;
    case VUF_VERB_DEFINES: /* a definition has no must or should of its own */
        ok = said == VUF_VERB_DESCRIBES || said == VUF_VERB_MAY;
        break;
    case VUF_VERB_DESCRIBES:
        ok = said == VUF_VERB_DESCRIBES;
        break;
    case VUF_VERB_SILENT:
    case VUF_VERB_COUNT:
        break;
    }
    if (!ok)
        lint_report(l, true, q->line ? q->line : line,
                    "%s: the table says '%s' but the sentence's words say '%s' (docs/rules.md "
                    "lists the forms of each verb)",
                    what, vuf_verb_name(q->verb), vuf_verb_name(said));
}

static bool fd_rule_is_zero(const vuf_fd_rule *r)
{
    return r->kind == VUF_FDRULE_EXACT && r->a == 0;
}

size_t vuf_spec_lint(const vuf_spec *s, vuf_diag_fn fn, void *ctx)
{
    lint_ctx l = {.s = s, .fn = fn, .ctx = ctx};
    for (size_t i = 0; i < vuf_spec_payload_count(s); i++) {
        const vuf_payload_def *p = vuf_spec_payload_at(s, i);
        if (p->declared_fixed != p->fixed_size || p->declared_elem != p->elem_size) {
            if (p->elem_size || p->declared_elem)
                lint_report(&l, true, p->line,
                            "payload '%s' is declared %u+%un bytes but its fields make %u+%un",
                            p->name, p->declared_fixed, p->declared_elem, p->fixed_size,
                            p->elem_size);
            else
                lint_report(&l, true, p->line,
                            "payload '%s' is declared %u byte%s but its fields make %u", p->name,
                            p->declared_fixed, vuf_plural(p->declared_fixed), p->fixed_size);
        }
    }
    for (size_t i = 0; i < vuf_spec_payload_count(s); i++) {
        const vuf_payload_def *p = vuf_spec_payload_at(s, i);
        char what[160];
        if (p->varray_field < 0)
            continue;
        snprintf(what, sizeof what, "payload %s: the bound of %s", p->name,
                 p->fields[p->varray_field].name);
        lint_quote(&l, &p->fields[p->varray_field].max_quote, p->line, what);
    }
    for (size_t i = 0; i < vuf_spec_feature_count(s); i++) {
        const vuf_feature_def *f = vuf_spec_feature_at(s, i);
        char what[160];
        snprintf(what, sizeof what, "feature %s: requires", f->name);
        if (f->requires)
            lint_quote(&l, &f->requires_quote, f->line, what);
    }
    for (size_t i = 0; i < vuf_spec_device_count(s); i++) {
        const vuf_device_def *dv = vuf_spec_device_at(s, i);
        char what[160];
        snprintf(what, sizeof what, "device %s", dv->name);
        lint_quote(&l, &dv->quote, dv->line, what);
    }
    for (int c = 0; c < VUF_CHAN_COUNT; c++) {
        const vuf_channel_def *cd = vuf_spec_channel(s, (vuf_channel)c);
        char what[160];
        snprintf(what, sizeof what, "channel %s: max-fds", vuf_channel_name((vuf_channel)c));
        lint_quote(&l, &cd->max_fds_quote, 1, what);
        snprintf(what, sizeof what, "channel %s: fd-gate", vuf_channel_name((vuf_channel)c));
        if (cd->has_fd_gate)
            lint_quote(&l, &cd->fd_gate_quote, 1, what);
        snprintf(what, sizeof what, "channel %s: requires", vuf_channel_name((vuf_channel)c));
        if (cd->requires)
            lint_quote(&l, &cd->requires_quote, 1, what);
    }
    const vuf_payload_def *u64 = vuf_spec_payload(s, "u64");
    if (!u64 || u64->fixed_size != 8 || u64->elem_size)
        lint_report(&l, true, 1, "the table needs 'payload u64 8' (the layout of ack replies)");
    for (int c = 0; c < VUF_CHAN_COUNT; c++) {
        const vuf_channel_def *cd = vuf_spec_channel(s, (vuf_channel)c);
        for (size_t i = 0; i < vuf_spec_msg_count(s, (vuf_channel)c); i++) {
            const vuf_msg_def *m = vuf_spec_msg_at(s, (vuf_channel)c, i);
            if (m->initiator != cd->initiator)
                lint_report(&l, true, m->line,
                            "%s: initiator %s contradicts channel %s, whose requests come from "
                            "the %s",
                            m->name, vuf_side_name(m->initiator), vuf_channel_name(m->channel),
                            vuf_side_name(cd->initiator));
            if (m->reply == VUF_REPLY_NONE && (m->reply_payload || m->reply_cond))
                lint_report(&l, true, m->line,
                            "%s: 'reply none' contradicts its reply payload or condition", m->name);
            if (m->reply == VUF_REPLY_ALWAYS && !m->reply_payload)
                lint_report(&l, true, m->line,
                            "%s: 'reply always' needs a reply-payload (use 'empty' for a reply "
                            "with no bytes)",
                            m->name);
            if (m->reply == VUF_REPLY_ACK && m->reply_cond == VUF_COND_NONE && m->reply_payload)
                lint_report(&l, true, m->line,
                            "%s: 'reply ack' replies are a u64; reply-payload '%s' contradicts it "
                            "(use 'reply always' or 'reply-always-if')",
                            m->name, m->reply_payload->name);
            if (m->reply_cond != VUF_COND_NONE && !m->reply_payload)
                lint_report(&l, true, m->line, "%s: reply-always-if needs a reply-payload",
                            m->name);
            if (m->reply_cond != VUF_COND_NONE && m->reply == VUF_REPLY_ALWAYS)
                lint_report(&l, false, m->line,
                            "%s: reply-always-if has no effect on 'reply always'", m->name);
            if (m->reply_size_matches_request && (!m->reply_payload || !m->request))
                lint_report(&l, true, m->line,
                            "%s: 'reply-size request' needs both a request and a reply payload",
                            m->name);
            if (m->reply_error != VUF_RERR_NONE && !m->reply_payload)
                lint_report(&l, true, m->line, "%s: reply-error needs an explicit reply payload",
                            m->name);
            if (m->reply_error == VUF_RERR_U64 && m->reply_payload &&
                (m->reply_payload->fixed_size != 8 || m->reply_payload->elem_size))
                lint_report(&l, true, m->line,
                            "%s: 'reply-error VALUE' needs a u64 reply payload, not '%s'", m->name,
                            m->reply_payload->name);
            if (m->reply_error == VUF_RERR_EMPTY && m->reply_payload && m->reply_payload->is_empty)
                lint_report(&l, true, m->line,
                            "%s: 'reply-error empty' cannot be told from its empty reply", m->name);
            if (!fd_rule_is_zero(&m->reply_fds) && m->reply == VUF_REPLY_ACK &&
                m->reply_cond == VUF_COND_NONE)
                lint_report(&l, true, m->line,
                            "%s: an ack reply carries no fds, but reply-fds allows some", m->name);
            if (!fd_rule_is_zero(&m->reply_fds) && m->reply == VUF_REPLY_NONE)
                lint_report(&l, true, m->line, "%s: reply-fds on a message without reply", m->name);
            uint32_t mx = fd_rule_max(&m->fds, m->request);
            if (mx > cd->max_fds)
                lint_report(&l, true, m->line,
                            "%s: its fd rule allows %u fd%s, above channel %s's max-fds %u",
                            m->name, mx, vuf_plural(mx), vuf_channel_name(m->channel), cd->max_fds);
            if (m->fds.has_should && m->fds.should > mx)
                lint_report(&l, true, m->line, "%s: 'should %u' is outside the fd rule's range",
                            m->name, m->fds.should);
            char what[160];
            for (size_t k = 0; k < m->ngates; k++) {
                snprintf(what, sizeof what, "%s: gate %zu", m->name, k + 1);
                lint_quote(&l, &m->gates[k].quote, m->line, what);
            }
            for (size_t k = 0; k < m->nchecks; k++) {
                snprintf(what, sizeof what, "%s: check %s", m->name, m->checks[k].ref.path);
                lint_quote(&l, &m->checks[k].quote, m->line, what);
            }
            if (m->nafter) {
                snprintf(what, sizeof what, "%s: after", m->name);
                lint_quote(&l, &m->after_quote, m->line, what);
            }
            if (m->reply_error == VUF_RERR_NEGATIVE && !m->reply_payload)
                lint_report(&l, true, m->line,
                            "%s: 'reply-error negative:FIELD' needs a reply payload", m->name);
            for (unsigned b = 0; b < 64; b++) {
                if (!(m->gate_protocol >> b & 1))
                    continue;
                const vuf_feature_def *f = vuf_spec_feature(s, VUF_SPACE_PROTOCOL, b);
                if (f && f->provisional && !m->provisional)
                    lint_report(&l, false, m->line,
                                "%s is not provisional but is gated by provisional feature %s",
                                m->name, f->name);
            }
            for (size_t k = 0; k < m->nchecks; k++) {
                const vuf_value_check *ck = &m->checks[k];
                uint64_t lim = ck->ref.width >= 8 ? ~0ull : (1ull << (ck->ref.width * 8)) - 1;
                for (size_t v = 0; v < ck->nvalues; v++)
                    if (ck->values[v] > lim)
                        lint_report(&l, true, m->line,
                                    "%s: check value 0x%llx does not fit the %u-byte field %s",
                                    m->name, (unsigned long long)ck->values[v], ck->ref.width,
                                    ck->ref.path);
            }
            if (!m->section[0])
                lint_report(&l, false, m->line, "%s has no section", m->name);
        }
    }
    return l.errors;
}

/* ---------- diff ---------- */

typedef struct {
    void (*fn)(void *, const char *);
    void *ctx;
    size_t n;
} diff_ctx;

static void dout(diff_ctx *d, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static void dout(diff_ctx *d, const char *fmt, ...)
{
    char buf[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(buf, sizeof buf, fmt, ap);
    va_end(ap);
    d->n++;
    d->fn(d->ctx, buf);
}

static void diff_str(diff_ctx *d, const char *what, const char *col, const char *a, const char *b)
{
    if (strcmp(a, b))
        dout(d, "~ %s: %s changed: %s -> %s", what, col, a[0] ? a : "(none)", b[0] ? b : "(none)");
}

static void diff_mask(diff_ctx *d, const vuf_spec *A, const vuf_spec *B, const char *what,
                      const char *col, vuf_space sp, uint64_t ma, uint64_t mb)
{
    if (ma == mb)
        return;
    char add[512], del[512];
    vuf_feature_mask_str(B, sp, mb & ~ma, add, sizeof add);
    vuf_feature_mask_str(A, sp, ma & ~mb, del, sizeof del);
    dout(d, "~ %s: %s changed:%s%s%s%s", what, col, add[0] ? " added " : "", add,
         del[0] ? " removed " : "", del);
}

static void names_join(const char *const *v, char *out, size_t cap)
{
    size_t len = 0;
    out[0] = 0;
    for (; v && *v && len < cap; v++)
        len += (size_t)snprintf(out + len, cap - len, "%s%s", len ? " " : "", *v);
}

static void payload_sig(const vuf_payload_def *p, char *out, size_t cap)
{
    size_t len = 0;
    if (!p) {
        snprintf(out, cap, "none");
        return;
    }
    len += (size_t)snprintf(out, cap, "%s:", p->name);
    for (size_t i = 0; i < p->nfields && len < cap; i++) {
        const vuf_field_def *f = &p->fields[i];
        len += (size_t)snprintf(out + len, cap - len, " %s@%u/%u%s%s", f->name ? f->name : "pad",
                                f->offset, f->size, f->type == VUF_FT_VARRAY ? "[]" : "",
                                f->element ? f->element->name : "");
        if (f->type == VUF_FT_VARRAY && len < cap)
            len += (size_t)snprintf(out + len, cap - len, " max %u (%s)", f->max_count,
                                    vuf_verb_name(f->max_quote.verb));
    }
    for (size_t i = 0; i < p->nspans && len < cap; i++)
        len += (size_t)snprintf(
            out + len, cap - len, " span(%s+%s%s)", p->fields[p->spans[i].base_field].name,
            p->fields[p->spans[i].size_field].name, p->spans[i].fd ? ",fd" : "");
}

static void diff_msg(diff_ctx *d, const vuf_spec *A, const vuf_spec *B, const vuf_msg_def *a,
                     const vuf_msg_def *b)
{
    char what[160], x[1024], y[1024];
    snprintf(what, sizeof what, "message %s %u %s", vuf_channel_name(b->channel), b->id, b->name);
    diff_str(d, what, "name", a->name, b->name);
    names_join(a->former, x, sizeof x);
    names_join(b->former, y, sizeof y);
    diff_str(d, what, "former names", x, y);
    if (a->provisional != b->provisional)
        dout(d, "~ %s: %s", what, b->provisional ? "now provisional" : "no longer provisional");
    if (a->deprecated != b->deprecated)
        dout(d, "~ %s: %s", what, b->deprecated ? "now deprecated" : "no longer deprecated");
    diff_str(d, what, "initiator", vuf_side_name(a->initiator), vuf_side_name(b->initiator));
    vuf_payload_str(a->request, x, sizeof x);
    vuf_payload_str(b->request, y, sizeof y);
    diff_str(d, what, "request payload", x, y);
    static const char *sz[] = {"exact", "min", "any"};
    diff_str(d, what, "size rule", sz[a->size_rule], sz[b->size_rule]);
    vuf_reply_str(A, a, x, sizeof x);
    vuf_reply_str(B, b, y, sizeof y);
    diff_str(d, what, "reply rule", x, y);
    diff_str(d, what, "reply size rule", a->reply_size_matches_request ? "equals request" : "",
             b->reply_size_matches_request ? "equals request" : "");
    vuf_fd_rule_str(&a->fds, x, sizeof x);
    vuf_fd_rule_str(&b->fds, y, sizeof y);
    diff_str(d, what, "fd rule", x, y);
    vuf_fd_rule_str(&a->reply_fds, x, sizeof x);
    vuf_fd_rule_str(&b->reply_fds, y, sizeof y);
    diff_str(d, what, "reply fd rule", x, y);
    vuf_gates_str(A, a, x, sizeof x);
    vuf_gates_str(B, b, y, sizeof y);
    diff_str(d, what, "gates", x, y);
    size_t lx = 0, ly = 0;
    x[0] = y[0] = 0;
    for (size_t i = 0; i < a->nafter; i++)
        lx += (size_t)snprintf(x + lx, sizeof x - lx, "%s%s", i ? " " : "", a->after[i]->name);
    for (size_t i = 0; i < b->nafter; i++)
        ly += (size_t)snprintf(y + ly, sizeof y - ly, "%s%s", i ? " " : "", b->after[i]->name);
    diff_str(d, what, "ordering prerequisites", x, y);
    diff_str(d, what, "vring index field", a->vring.present ? a->vring.path : "",
             b->vring.present ? b->vring.path : "");
    lx = ly = 0;
    x[0] = y[0] = 0;
    for (size_t i = 0; i < a->nchecks; i++) {
        lx +=
            (size_t)snprintf(x + lx, sizeof x - lx, "%s%s %s", i ? "; " : "", a->checks[i].ref.path,
                             a->checks[i].kind == VUF_CHECK_IN ? "in" : "mask");
        for (size_t k = 0; k < a->checks[i].nvalues && lx < sizeof x; k++)
            lx += (size_t)snprintf(x + lx, sizeof x - lx, "%s%llu", k ? "," : " ",
                                   (unsigned long long)a->checks[i].values[k]);
        if (lx < sizeof x)
            lx += (size_t)snprintf(x + lx, sizeof x - lx, " (%s)",
                                   vuf_verb_name(a->checks[i].quote.verb));
    }
    for (size_t i = 0; i < b->nchecks; i++) {
        ly +=
            (size_t)snprintf(y + ly, sizeof y - ly, "%s%s %s", i ? "; " : "", b->checks[i].ref.path,
                             b->checks[i].kind == VUF_CHECK_IN ? "in" : "mask");
        for (size_t k = 0; k < b->checks[i].nvalues && ly < sizeof y; k++)
            ly += (size_t)snprintf(y + ly, sizeof y - ly, "%s%llu", k ? "," : " ",
                                   (unsigned long long)b->checks[i].values[k]);
        if (ly < sizeof y)
            ly += (size_t)snprintf(y + ly, sizeof y - ly, " (%s)",
                                   vuf_verb_name(b->checks[i].quote.verb));
    }
    diff_str(d, what, "value checks", x, y);
    diff_str(d, what, "section", a->section, b->section);
}

size_t vuf_spec_diff(const vuf_spec *A, const vuf_spec *B, void (*fn)(void *, const char *),
                     void *ctx)
{
    diff_ctx d = {.fn = fn, .ctx = ctx};
    char x[512], y[512];
    for (int c = 0; c < VUF_CHAN_COUNT; c++) {
        const vuf_channel_def *a = vuf_spec_channel(A, (vuf_channel)c),
                              *b = vuf_spec_channel(B, (vuf_channel)c);
        char what[64];
        snprintf(what, sizeof what, "channel %s", vuf_channel_name((vuf_channel)c));
        diff_str(&d, what, "initiator", vuf_side_name(a->initiator), vuf_side_name(b->initiator));
        if (a->max_fds != b->max_fds)
            dout(&d, "~ %s: max-fds changed: %u -> %u", what, a->max_fds, b->max_fds);
        diff_mask(&d, A, B, what, "fd gate", VUF_SPACE_PROTOCOL,
                  a->has_fd_gate ? 1ull << a->fd_gate_bit : 0,
                  b->has_fd_gate ? 1ull << b->fd_gate_bit : 0);
        diff_mask(&d, A, B, what, "required features", VUF_SPACE_PROTOCOL, a->requires,
                  b->requires);
    }
    for (int sp = 0; sp < 2; sp++) {
        for (unsigned bit = 0; bit < 64; bit++) {
            const vuf_feature_def *a = vuf_spec_feature(A, (vuf_space)sp, bit),
                                  *b = vuf_spec_feature(B, (vuf_space)sp, bit);
            const char *spn = sp == VUF_SPACE_PROTOCOL ? "protocol" : "virtio";
            if (!a && !b)
                continue;
            if (!a) {
                dout(&d, "+ feature %s %u %s added%s", spn, bit, b->name,
                     b->provisional ? " (provisional)" : "");
                continue;
            }
            if (!b) {
                dout(&d, "- feature %s %u %s removed", spn, bit, a->name);
                continue;
            }
            char what[128];
            snprintf(what, sizeof what, "feature %s %u %s", spn, bit, b->name);
            diff_str(&d, what, "name", a->name, b->name);
            names_join(a->former, x, sizeof x);
            names_join(b->former, y, sizeof y);
            diff_str(&d, what, "former names", x, y);
            if (a->provisional != b->provisional)
                dout(&d, "~ %s: %s", what,
                     b->provisional ? "now provisional" : "no longer provisional");
            diff_mask(&d, A, B, what, "requires", (vuf_space)sp, a->requires, b->requires);
            if (a->requires && b->requires)
                diff_str(&d, what, "requires verb", vuf_verb_name(a->requires_quote.verb),
                         vuf_verb_name(b->requires_quote.verb));
        }
    }
    for (size_t i = 0; i < vuf_spec_device_count(A); i++) {
        const vuf_device_def *a = vuf_spec_device_at(A, i), *b = vuf_spec_device(B, a->name);
        if (!b)
            dout(&d, "- device %s removed", a->name);
        else if (a->rings_per_queue != b->rings_per_queue)
            dout(&d, "~ device %s: rings per queue changed: %u -> %u", a->name, a->rings_per_queue,
                 b->rings_per_queue);
    }
    for (size_t i = 0; i < vuf_spec_device_count(B); i++) {
        const vuf_device_def *b = vuf_spec_device_at(B, i);
        if (!vuf_spec_device(A, b->name))
            dout(&d, "+ device %s added (%u rings per queue)", b->name, b->rings_per_queue);
    }
    for (size_t i = 0; i < vuf_spec_payload_count(A); i++) {
        const vuf_payload_def *a = vuf_spec_payload_at(A, i);
        const vuf_payload_def *b = vuf_spec_payload(B, a->name);
        if (!b) {
            dout(&d, "- payload %s removed", a->name);
            continue;
        }
        payload_sig(a, x, sizeof x);
        payload_sig(b, y, sizeof y);
        char *sa_span = strstr(x, " span("), *sb_span = strstr(y, " span(");
        size_t la = sa_span ? (size_t)(sa_span - x) : strlen(x);
        size_t lb = sb_span ? (size_t)(sb_span - y) : strlen(y);
        if (strcmp(x, y) && la == lb && !strncmp(x, y, la)) {
            /* same fields, other spans */
            dout(&d, "~ payload %s: spans changed:%s ->%s", a->name, sa_span ? sa_span : " (none)",
                 sb_span ? sb_span : " (none)");
        } else if (strcmp(x, y)) {
            char sa[96], sb[96];
            vuf_payload_str(a, sa, sizeof sa);
            vuf_payload_str(b, sb, sizeof sb);
            dout(&d, "~ payload %s: layout changed: %s -> %s", a->name, sa, sb);
        }
    }
    for (size_t i = 0; i < vuf_spec_payload_count(B); i++) {
        const vuf_payload_def *b = vuf_spec_payload_at(B, i);
        if (!vuf_spec_payload(A, b->name)) {
            char sb[96];
            vuf_payload_str(b, sb, sizeof sb);
            dout(&d, "+ payload %s added", sb);
        }
    }
    for (int c = 0; c < VUF_CHAN_COUNT; c++) {
        for (size_t i = 0; i < vuf_spec_msg_count(A, (vuf_channel)c); i++) {
            const vuf_msg_def *a = vuf_spec_msg_at(A, (vuf_channel)c, i);
            const vuf_msg_def *b = vuf_spec_msg(B, (vuf_channel)c, a->id);
            if (!b)
                dout(&d, "- message %s %u %s removed", vuf_channel_name((vuf_channel)c), a->id,
                     a->name);
            else
                diff_msg(&d, A, B, a, b);
        }
        for (size_t i = 0; i < vuf_spec_msg_count(B, (vuf_channel)c); i++) {
            const vuf_msg_def *b = vuf_spec_msg_at(B, (vuf_channel)c, i);
            if (!vuf_spec_msg(A, (vuf_channel)c, b->id))
                dout(&d, "+ message %s %u %s added%s", vuf_channel_name((vuf_channel)c), b->id,
                     b->name, b->provisional ? " (provisional)" : "");
        }
    }
    return d.n;
}
