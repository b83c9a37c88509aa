/* SPDX-License-Identifier: Apache-2.0 */
/* The front-end under test, one process per back-end session, with the
 * oracles (vuf_frontend.h). */
#include "vuf_frontend.h"
#include "vuf_util.h"
#include "vuf_codec.h"
#include "vuf_proc.h"
#include "vuf_qmp.h"

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define POOL_MAX 8
#define QUICK_SETTLE_MS 60

struct vuf_frontend {
    const vuf_spec *spec;
    vuf_frontend_opts o;
    char *cmd;
    bool qmp;
    vuf_proc *pool[POOL_MAX];
    size_t npool;
    int pool_size;
    vuf_hostile *h;
    vuf_checker *chk;
    vuf_qmp *q;
    vuf_frontend_result *r; /* the running session's */
    bool judging;
    bool conversation;     /* the checker has seen this connection's events */
    vuf_finding violation; /* the front-end's first violation at the level */
    unsigned be_awaited;   /* back-end channel requests the front-end owes a reply */
    bool be_pipelined;     /* the back-end sent there while one was awaited */
    bool fe_waits;         /* the front-end waits for a reply on the main channel */
};

/* ---------- the output's marks ---------- */

const char *vuf_frontend_crash_line(const char *output, char *line, size_t cap, bool *sanitizer)
{
    return vuf_proc_crash_line(output, true, line, cap, sanitizer);
}

/* ---------- the command ---------- */

/* Is the program of cmd a QEMU system emulator (qemu-system-*)? */
static bool is_qemu(const char *cmd)
{
    while (*cmd == ' ' || *cmd == '\t')
        cmd++;
    size_t n = strcspn(cmd, " \t");
    const char *base = cmd;
    for (const char *p = cmd; p < cmd + n; p++)
        if (*p == '/')
            base = p + 1;
    return !strncmp(base, "qemu-system-", 12);
}

static bool has_word(const char *cmd, const char *w)
{
    size_t n = strlen(w);
    for (const char *p = strstr(cmd, w); p; p = strstr(p + 1, w))
        if ((p == cmd || p[-1] == ' ' || p[-1] == '\t') &&
            (p[n] == 0 || p[n] == ' ' || p[n] == '\t'))
            return true;
    return false;
}

static char *prepare_command(const char *cmd, bool firmware, bool *qmp)
{
    bool qemu = is_qemu(cmd);
    bool add_qmp = qemu && !strstr(cmd, "{qmp}");
    bool add_stop = qemu && !firmware && !has_word(cmd, "-S");
    *qmp = add_qmp || strstr(cmd, "{qmp}");
    size_t n = strlen(cmd) + 64;
    char *out = malloc(n);
    if (out)
        snprintf(out, n, "%s%s%s", cmd, add_qmp ? " -qmp unix:{qmp},server=on,wait=off" : "",
                 add_stop ? " -S" : "");
    return out;
}

/* ---------- processes ---------- */

static const char *const qmp_tokens[] = {"qmp", NULL};

static vuf_proc *start(vuf_frontend *f, char *err, size_t errcap)
{
    vuf_proc_opts po = {.command = f->cmd,
                        .ready_timeout_ms = f->o.ready_ms,
                        .stop_timeout_ms = 500,
                        .log_path = f->o.log_path,
                        .we_listen = true,
                        .tokens = f->qmp ? qmp_tokens : NULL};
    return vuf_proc_start(&po, err, errcap);
}

static void refill(vuf_frontend *f)
{
    while ((int)f->npool < f->pool_size) {
        char err[512];
        vuf_proc *p = start(f, err, sizeof err);
        if (!p)
            return; /* taking one will say why */
        f->pool[f->npool++] = p;
    }
}

static vuf_proc *take(vuf_frontend *f, char *err, size_t errcap)
{
    vuf_proc *p = NULL;
    if (f->npool) {
        p = f->pool[0];
        memmove(f->pool, f->pool + 1, (f->npool - 1) * sizeof *f->pool);
        f->npool--;
    } else {
        p = start(f, err, errcap);
    }
    refill(f); /* the next ones start while this one runs */
    return p;
}

/* ---------- events ---------- */

static void on_event(void *ctx, const vuf_event *ev)
{
    vuf_frontend *f = ctx;
    vuf_frontend_result *r = f->r;
    if (r && ev->kind == VUF_EV_MSG && ev->len >= VUF_HDR_SIZE && ev->channel < VUF_CHAN_COUNT) {
        int who = ev->sender == VUF_SIDE_FRONTEND ? 0 : 1;
        vuf_hdr hd;
        vuf_hdr_decode(ev->data, &hd);
        r->msgs[ev->channel][who]++;
        if (hd.request < 64)
            r->seen_ids[ev->channel][who] |= 1ull << hd.request;
    }
    if (f->judging && ev->kind == VUF_EV_MSG && ev->channel == VUF_CHAN_BACKEND &&
        ev->len >= VUF_HDR_SIZE) {
        /* as the front-end frames the back-end channel: a message of the
         * back-end while a reply is awaited is sent without waiting */
        vuf_hdr hd;
        vuf_hdr_decode(ev->data, &hd);
        if (ev->sender == VUF_SIDE_BACKEND) {
            if (f->be_awaited)
                f->be_pipelined = true;
            const vuf_msg_def *d = vuf_spec_msg(f->spec, VUF_CHAN_BACKEND, hd.request);
            if (!(hd.flags & VUF_F_REPLY) &&
                ((hd.flags & VUF_F_NEED_REPLY) || (d && d->reply == VUF_REPLY_ALWAYS)))
                f->be_awaited++;
        } else if ((hd.flags & VUF_F_REPLY) && f->be_awaited) {
            f->be_awaited--;
        }
    }
    if (f->judging && ev->kind == VUF_EV_MSG && ev->channel == VUF_CHAN_FRONTEND &&
        ev->len >= VUF_HDR_SIZE) {
        /* does the front-end wait for a reply on the main channel? Its
         * request asked for one (NEED_REPLY, or a message always
         * answered) and no reply came since, whatever its id: the
         * front-end's own view, whatever was negotiated */
        vuf_hdr hd;
        vuf_hdr_decode(ev->data, &hd);
        if (ev->sender == VUF_SIDE_BACKEND && (hd.flags & VUF_F_REPLY)) {
            f->fe_waits = false;
        } else if (ev->sender == VUF_SIDE_FRONTEND && !(hd.flags & VUF_F_REPLY)) {
            const vuf_msg_def *d = vuf_spec_msg(f->spec, VUF_CHAN_FRONTEND, hd.request);
            f->fe_waits = (hd.flags & VUF_F_NEED_REPLY) || (d && d->reply == VUF_REPLY_ALWAYS);
        }
    }
    if (f->judging && ev->kind == VUF_EV_CLOSE && ev->channel == VUF_CHAN_FRONTEND)
        f->fe_waits = false;
    if (f->judging) {
        if (ev->kind == VUF_EV_OPEN && ev->channel == VUF_CHAN_FRONTEND && f->conversation) {
            /* a new connection: a new conversation (the harness's and the
             * monitor's rule too) */
            vuf_checker_end_capture(f->chk);
            vuf_checker_reset(f->chk);
        }
        f->conversation = true;
        /* A socket the front-end sent (SET_BACKEND_REQ_FD) is classified
         * when vufuzz reads the message; a front-end that gave up on the
         * back-end meanwhile (after a hostile reply) has closed its end by
         * then. What it was when sent cannot be seen: not judged as a
         * closed socket. */
        vuf_event fixed = *ev;
        uint8_t kinds[VUF_EV_MAX_FDS];
        if (ev->kind == VUF_EV_MSG && ev->sender == VUF_SIDE_FRONTEND &&
            ev->nfds <= VUF_EV_MAX_FDS) {
            for (size_t i = 0; i < ev->nfds; i++)
                kinds[i] = ev->fds[i] == VUF_FDKIND_SOCKET_CLOSED ? VUF_FDKIND_SOCKET : ev->fds[i];
            fixed.fds = kinds;
        }
        size_t before = vuf_checker_violation_count(f->chk);
        vuf_checker_feed(f->chk, &fixed);
        for (size_t i = before; i < vuf_checker_violation_count(f->chk); i++) {
            const vuf_violation *v = vuf_checker_violation(f->chk, i);
            /* requests the back-end sent without waiting: the replies'
             * order on that channel is not the front-end's to answer for */
            if (v->side == VUF_SIDE_FRONTEND && v->channel == VUF_CHAN_BACKEND &&
                !strncmp(v->rule->id, "REPLY-", 6) && f->be_pipelined)
                continue;
            if (f->o.on_violation)
                f->o.on_violation(f->o.ctx, v);
            if (f->violation.kind || v->side != VUF_SIDE_FRONTEND ||
                !vuf_level_within(v->level, f->o.level))
                continue;
            f->violation.kind = v->level == VUF_MUST ? VUF_FINDING_MUST : VUF_FINDING_SHOULD;
            f->violation.action = vuf_hostile_actions_done(f->h);
            snprintf(f->violation.rule, sizeof f->violation.rule, "%s", v->rule->id);
            snprintf(f->violation.text, sizeof f->violation.text, "%s %s side=frontend msg=%s: %s",
                     vuf_level_name(v->level), v->rule->id, v->msg, v->text);
        }
    }
    if (f->o.on_event)
        f->o.on_event(f->o.ctx, ev);
}

static void on_action(void *ctx, size_t index, const Vuf__Action *a)
{
    vuf_frontend *f = ctx;
    if (f->o.on_action)
        f->o.on_action(f->o.ctx, index, a);
}

/* ---------- setup ---------- */

vuf_frontend *vuf_frontend_new(const vuf_spec *spec, const vuf_frontend_opts *o, char *err,
                               size_t errcap)
{
    const char *why = vuf_proc_command_error(o->exec_cmd);
    if (why) {
        snprintf(err, errcap, "the front-end command %s", why);
        return NULL;
    }
    vuf_frontend *f = calloc(1, sizeof *f);
    if (!f) {
        snprintf(err, errcap, "out of memory");
        return NULL;
    }
    f->spec = spec;
    f->o = *o;
    if (f->o.ready_ms <= 0)
        f->o.ready_ms = 10000;
    if (f->o.settle_ms <= 0)
        f->o.settle_ms = o->firmware ? (o->device == VUF_HOSTILE_NET ? 3000 : 1500) : 300;
    if (f->o.session_ms <= 0)
        f->o.session_ms = o->firmware ? 30000 : 15000;
    if (f->o.hang_ms <= 0)
        f->o.hang_ms = 5000;
    f->pool_size = o->pool < 0 ? 0 : o->pool == 0 ? 1 : o->pool > POOL_MAX ? POOL_MAX : o->pool;
    f->cmd = prepare_command(o->exec_cmd, o->firmware, &f->qmp);
    vuf_hostile_opts ho = {.device = o->device,
                           .disk_image = o->disk_image,
                           .disk_image_len = o->disk_image_len,
                           .on_event = on_event,
                           .on_action = on_action,
                           .ctx = f};
    f->chk = vuf_checker_new(spec);
    f->q = vuf_qmp_new();
    if (!f->cmd || !f->chk || !f->q || !(f->h = vuf_hostile_new(spec, &ho, err, errcap))) {
        if (!f->h && f->cmd && f->chk && f->q)
            ; /* err set */
        else
            snprintf(err, errcap, "out of memory");
        vuf_frontend_free(f);
        return NULL;
    }
    vuf_checker_set_device(f->chk,
                           vuf_spec_device(spec, o->device == VUF_HOSTILE_NET ? "net" : "blk"));
    refill(f);
    return f;
}

void vuf_frontend_free(vuf_frontend *f)
{
    if (!f)
        return;
    for (size_t i = 0; i < f->npool; i++)
        vuf_proc_free(f->pool[i]);
    vuf_hostile_free(f->h);
    vuf_checker_free(f->chk);
    vuf_qmp_free(f->q);
    free(f->cmd);
    free(f);
}

const char *vuf_frontend_command(const vuf_frontend *f)
{
    return f->cmd;
}

uint64_t vuf_frontend_chains(const vuf_frontend *f)
{
    return vuf_hostile_chains(f->h);
}

/* ---------- one session ---------- */

typedef enum { PLAY, PROBE, QUIT, DONE } phase;

static vuf_finding finding(vuf_finding_kind k, const char *rule, size_t action, const char *text)
{
    vuf_finding fd = {.kind = k, .action = action};
    snprintf(fd.rule, sizeof fd.rule, "%s", rule);
    snprintf(fd.text, sizeof fd.text, "%s", text);
    return fd;
}

/* The last line of the output with text, for a one-line finding. */
static void last_line(const char *out, char *line, size_t cap)
{
    size_t n = strlen(out);
    while (n && (out[n - 1] == '\n' || out[n - 1] == ' '))
        n--;
    size_t s = n;
    while (s && out[s - 1] != '\n')
        s--;
    snprintf(line, cap, "%.*s", (int)(n - s < cap ? n - s : cap - 1), out + s);
}

vuf_finding vuf_frontend_run(vuf_frontend *f, const Vuf__Session *s, vuf_frontend_result *r)
{
    vuf_frontend_result local;
    if (!r)
        r = &local;
    memset(r, 0, sizeof *r);
    char err[512], text[512];
    if (s && s->n_actions && !(s->has_role && s->role == VUF__ROLE__ROLE_BACKEND))
        return finding(VUF_FINDING_BAD_INPUT, "bad-input", 0,
                       "not a back-end session (its first line must be 'role backend')");
    int64_t t0 = vuf_now_ms();
    vuf_proc *p = take(f, err, sizeof err);
    if (!p)
        return finding(VUF_FINDING_TARGET_ERROR, "target-error", 0, err);
    int fd = vuf_proc_accept(p, f->o.ready_ms, err, sizeof err);
    if (fd < 0) {
        vuf_proc_log_tail(p, r->output, sizeof r->output);
        vuf_proc_status_text(p, r->status, sizeof r->status);
        vuf_proc_free(p);
        return finding(VUF_FINDING_TARGET_ERROR, "target-error", 0, err);
    }
    f->r = r;
    f->judging = true;
    f->conversation = false;
    memset(&f->violation, 0, sizeof f->violation);
    f->be_awaited = 0;
    f->fe_waits = false;
    f->be_pipelined = false;
    vuf_checker_reset(f->chk);
    vuf_qmp_close(f->q);
    vuf_finding out = {0};
    if (vuf_hostile_begin(f->h, s, fd, err, sizeof err)) {
        out = finding(VUF_FINDING_BAD_INPUT, "bad-input", vuf_hostile_actions_done(f->h), err);
        goto end;
    }
    const char *qmp_path = f->qmp ? vuf_proc_token_path(p, "qmp") : NULL;
    phase ph = PLAY;
    int64_t t_phase = vuf_now_ms();
    bool sent = false, we_killed = false, we_termed = false;
    while (ph != DONE) {
        if (vuf_proc_poll(p) != VUF_PROC_RUNNING) {
            ph = DONE;
            break;
        }
        if (qmp_path && vuf_qmp_state_get(f->q) == VUF_QMP_DOWN)
            vuf_qmp_connect(f->q, qmp_path);
        vuf_pollset ps;
        vuf_pollset_init(&ps, 20);
        vuf_hostile_poll_add(f->h, &ps);
        vuf_qmp_poll_add(f->q, &ps);
        vuf_pollset_add(&ps, vuf_proc_wait_fd(p), POLLIN);
        int li = vuf_pollset_add(&ps, vuf_proc_listen_fd(p), POLLIN);
        if (vuf_pollset_wait(&ps) < 0)
            break;
        vuf_hostile_dispatch(f->h, &ps);
        if (vuf_pollset_revents(&ps, li) & POLLIN) { /* it connects again */
            int nfd = vuf_proc_accept(p, 0, err, sizeof err);
            if (nfd >= 0)
                vuf_hostile_reconnect(f->h, nfd);
        }
        vuf_qmp_dispatch(f->q, &ps);
        if (vuf_hostile_error(f->h)[0]) {
            out = finding(VUF_FINDING_BAD_INPUT, "bad-input", vuf_hostile_actions_done(f->h),
                          vuf_hostile_error(f->h));
            break;
        }
        int64_t now = vuf_now_ms();
        vuf_qmp_state qs = vuf_qmp_state_get(f->q);
        switch (ph) {
        case PLAY: {
            /* QMP answers once the main loop runs: device realize, the
             * handshake of a stopped guest, is over; a moment more for what
             * the front-end does then (the back-end channel's requests) */
            int settle = !f->o.firmware && qs == VUF_QMP_READY && f->o.settle_ms > QUICK_SETTLE_MS
                             ? QUICK_SETTLE_MS
                             : f->o.settle_ms;
            if ((!vuf_hostile_open(f->h) && now - vuf_hostile_last_activity(f->h) >= settle) ||
                now - t0 >= f->o.session_ms ||
                (vuf_hostile_idle(f->h) && now - vuf_hostile_last_activity(f->h) >= settle)) {
                /* a message of the back-end left unfinished: it gives up on
                 * it (the front-end's blocking read, waiting for the rest
                 * while the channel is open, is not a hang of its own) */
                if (vuf_hostile_close_unfinished(f->h) ||
                    ((f->fe_waits || vuf_checker_reply_owed(f->chk, VUF_CHAN_FRONTEND)) &&
                     vuf_hostile_hang_up(f->h))) {
                    t_phase = now;
                    break; /* what the front-end does then is played too */
                }
                ph = PROBE;
                t_phase = now;
                sent = false;
            }
            break;
        }
        case PROBE:
            if (!qmp_path) {
                ph = QUIT;
                t_phase = now;
                sent = false;
                break;
            }
            if (!sent && qs == VUF_QMP_READY)
                sent = vuf_qmp_send(f->q, "query-status");
            if (sent && qs == VUF_QMP_READY) {
                r->qmp_answered = true;
                ph = QUIT;
                t_phase = now;
                sent = false;
            } else if (now - t_phase >= f->o.hang_ms) {
                snprintf(text, sizeof text,
                         "the front-end did not answer QMP query-status within %d ms (%s)",
                         f->o.hang_ms,
                         qs == VUF_QMP_DOWN        ? "its QMP socket never accepted"
                         : qs == VUF_QMP_HANDSHAKE ? "no QMP greeting"
                                                   : "no answer");
                out = finding(VUF_FINDING_HANG, "hang", vuf_hostile_actions_done(f->h), text);
                ph = DONE;
            }
            break;
        case QUIT:
            if (!sent) {
                sent = qs == VUF_QMP_READY ? vuf_qmp_send(f->q, "quit")
                                           : (we_termed = kill(vuf_proc_pid(p), SIGTERM) == 0);
                if (!sent && qs != VUF_QMP_READY)
                    sent = true; /* gone already: the next poll says so */
            }
            if (now - t_phase >= f->o.hang_ms) {
                snprintf(text, sizeof text, "the front-end did not exit within %d ms of %s",
                         f->o.hang_ms, qmp_path ? "QMP quit" : "SIGTERM");
                out = finding(VUF_FINDING_HANG, "hang", vuf_hostile_actions_done(f->h), text);
                ph = DONE;
            }
            break;
        case DONE:
            break;
        }
    }
    f->judging = false;
    vuf_checker_end_capture(f->chk);
    if (vuf_proc_poll(p) == VUF_PROC_RUNNING) { /* a hang, or a session that stopped */
        kill(vuf_proc_pid(p), SIGKILL);
        we_killed = true;
    }
    for (int64_t until = vuf_now_ms() + 2000;
         vuf_proc_poll(p) == VUF_PROC_RUNNING && vuf_now_ms() < until;)
        usleep(1000);
    vuf_proc_status_text(p, r->status, sizeof r->status);
    vuf_proc_log_tail(p, r->output, sizeof r->output);
    if (out.kind == VUF_FINDING_NONE || out.kind == VUF_FINDING_HANG) {
        char line[300];
        bool san = false;
        const char *mark = vuf_frontend_crash_line(r->output, line, sizeof line, &san);
        /* the SIGTERM that ends a program without QMP is ours too */
        bool signaled = vuf_proc_poll(p) == VUF_PROC_SIGNALED && !we_killed &&
                        !(we_termed && vuf_proc_exit_code(p) == SIGTERM);
        if (signaled || mark) {
            if (!mark)
                last_line(r->output, line, sizeof line);
            snprintf(text, sizeof text, "the front-end %s%s%.300s", r->status,
                     *line ? "; its output: " : "", line);
            out = finding(san ? VUF_FINDING_SANITIZER : VUF_FINDING_CRASH,
                          san                 ? "sanitizer"
                          : mark && !signaled ? "assertion"
                                              : "crash",
                          vuf_hostile_actions_done(f->h), text);
        }
    }
    if (out.kind == VUF_FINDING_NONE && f->violation.kind)
        out = f->violation;
end:
    f->judging = false;
    vuf_proc_free(p);
    r->seconds = (double)(vuf_now_ms() - t0) / 1000.0;
    r->actions_done = vuf_hostile_actions_done(f->h);
    vuf_hostile_end(f->h);
    vuf_qmp_close(f->q);
    f->r = NULL;
    return out;
}

/* ---------- minimizing ---------- */

static Vuf__Session *copy_session(const Vuf__Session *s)
{
    size_t n;
    uint8_t *b = vuf_session_pack(s, &n);
    Vuf__Session *c = b ? vuf_session_unpack(b, n) : NULL;
    free(b);
    return c;
}

static bool same_finding(const vuf_finding *a, const vuf_finding *b)
{
    return a->kind == b->kind && !strcmp(a->rule, b->rule);
}

Vuf__Session *vuf_frontend_minimize(vuf_frontend *f, const Vuf__Session *s, const vuf_finding *fd,
                                    unsigned *runs)
{
    Vuf__Session *cur = copy_session(s);
    if (!cur)
        return NULL;
    vuf_finding again = vuf_frontend_run(f, cur, NULL);
    (*runs)++;
    if (!same_finding(&again, fd)) {
        again = vuf_frontend_run(f, cur, NULL); /* once more: timing */
        (*runs)++;
        if (!same_finding(&again, fd)) {
            vuf_session_free(cur);
            return NULL;
        }
    }
    /* the back-end's actions first, the last first; then the expectations */
    for (int pass = 0; pass < 2; pass++)
        for (size_t i = cur->n_actions; i-- > 0;) {
            Vuf__Action *a = cur->actions[i];
            bool expect = a->action_case == VUF__ACTION__ACTION_EXPECT ||
                          a->action_case == VUF__ACTION__ACTION_BACKEND_EXPECT;
            if (expect != (pass == 1))
                continue;
            /* out of the list, kept aside: back in if it is needed */
            memmove(cur->actions + i, cur->actions + i + 1,
                    (cur->n_actions - i - 1) * sizeof *cur->actions);
            cur->n_actions--;
            vuf_finding r = vuf_frontend_run(f, cur, NULL);
            (*runs)++;
            if (same_finding(&r, fd))
                protobuf_c_message_free_unpacked(&a->base, NULL); /* not needed */
            else if (!vuf_session_insert_action(cur, a, i))
                break; /* out of memory: what is left is still a reproducer */
        }
    return cur;
}
