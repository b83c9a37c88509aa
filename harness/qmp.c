/* SPDX-License-Identifier: Apache-2.0 */
/* A QMP client for an event loop (vuf_qmp.h). The server is the program
 * under test: its lines are bounded and only searched for the member names
 * QMP defines, never parsed further. */
#include "vuf_qmp.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#define LINE_MAX_BYTES 8192

struct vuf_qmp {
    int fd;
    vuf_qmp_state st;
    bool greeted; /* the greeting arrived; capabilities sent */
    char line[LINE_MAX_BYTES];
    size_t len;
    bool overlong; /* dropping the rest of a line that did not fit */
    char answer[LINE_MAX_BYTES];
    unsigned answers;
    int pi;
};

vuf_qmp *vuf_qmp_new(void)
{
    vuf_qmp *q = calloc(1, sizeof *q);
    if (q)
        q->fd = q->pi = -1;
    return q;
}

void vuf_qmp_close(vuf_qmp *q)
{
    if (q->fd >= 0)
        close(q->fd);
    q->fd = -1;
    q->st = VUF_QMP_DOWN;
    q->greeted = q->overlong = false;
    q->len = 0;
    q->answer[0] = 0;
    q->answers = 0;
}

void vuf_qmp_free(vuf_qmp *q)
{
    if (!q)
        return;
    vuf_qmp_close(q);
    free(q);
}

bool vuf_qmp_connect(vuf_qmp *q, const char *path)
{
    if (q->st != VUF_QMP_DOWN || !path)
        return q->st != VUF_QMP_DOWN;
    struct sockaddr_un sa = {.sun_family = AF_UNIX};
    if (strlen(path) >= sizeof sa.sun_path)
        return false;
    memcpy(sa.sun_path, path, strlen(path) + 1);
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
    if (fd < 0)
        return false;
    if (connect(fd, (struct sockaddr *)&sa, sizeof sa) < 0) {
        close(fd); /* not there yet, or not listening yet */
        return false;
    }
    q->fd = fd;
    q->st = VUF_QMP_HANDSHAKE;
    return true;
}

vuf_qmp_state vuf_qmp_state_get(const vuf_qmp *q)
{
    return q->st;
}

const char *vuf_qmp_answer(const vuf_qmp *q)
{
    return q->answer;
}

unsigned vuf_qmp_answers(const vuf_qmp *q)
{
    return q->answers;
}

static bool put(vuf_qmp *q, const char *text)
{
    size_t n = strlen(text), off = 0;
    while (off < n) {
        ssize_t w = send(q->fd, text + off, n - off, MSG_NOSIGNAL | MSG_DONTWAIT);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0) { /* a command is a few bytes: a full socket is a dead server */
            close(q->fd);
            q->fd = -1;
            q->st = VUF_QMP_CLOSED;
            return false;
        }
        off += (size_t)w;
    }
    return true;
}

bool vuf_qmp_send(vuf_qmp *q, const char *cmd)
{
    if (q->st != VUF_QMP_READY)
        return false;
    char text[128];
    snprintf(text, sizeof text, "{\"execute\": \"%s\"}\n", cmd);
    if (!put(q, text))
        return false;
    q->st = VUF_QMP_WAITING;
    q->answer[0] = 0;
    return true;
}

/* One complete line from the server. */
static void on_line(vuf_qmp *q, const char *l)
{
    if (!q->greeted) {
        if (strstr(l, "\"QMP\"")) {
            q->greeted = true;
            put(q, "{\"execute\": \"qmp_capabilities\"}\n");
        }
        return;
    }
    if (!strstr(l, "\"return\"") && !strstr(l, "\"error\""))
        return; /* an event */
    if (q->st == VUF_QMP_HANDSHAKE) {
        q->st = VUF_QMP_READY; /* the capabilities' answer */
        return;
    }
    if (q->st == VUF_QMP_WAITING) {
        snprintf(q->answer, sizeof q->answer, "%s", l);
        q->answers++;
        q->st = VUF_QMP_READY;
    }
}

void vuf_qmp_poll_add(vuf_qmp *q, vuf_pollset *p)
{
    q->pi = vuf_pollset_add(p, q->fd, POLLIN);
}

void vuf_qmp_dispatch(vuf_qmp *q, const vuf_pollset *p)
{
    if (q->fd < 0 || !(vuf_pollset_revents(p, q->pi) & (POLLIN | POLLHUP | POLLERR)))
        return;
    char buf[4096];
    for (int rounds = 0; rounds < 16 && q->fd >= 0; rounds++) {
        ssize_t n = recv(q->fd, buf, sizeof buf, MSG_DONTWAIT);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
            return;
        if (n <= 0) {
            close(q->fd);
            q->fd = -1;
            q->st = VUF_QMP_CLOSED;
            return;
        }
        for (ssize_t i = 0; i < n; i++) {
            char c = buf[i];
            if (c == '\n') {
                if (!q->overlong) {
                    q->line[q->len] = 0;
                    on_line(q, q->line);
                }
                q->len = 0;
                q->overlong = false;
            } else if (q->len + 1 < sizeof q->line) {
                q->line[q->len++] = c ? c : ' ';
            } else {
                q->overlong = true;
            }
        }
    }
}
