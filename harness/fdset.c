/* SPDX-License-Identifier: Apache-2.0 */
/* The typed fd factory: the fd kinds a session names, made real. Each fd
 * is created here, kept until the session ends, and known by its kind (what
 * vuf_fd_classify says of it: tests/unit/test_harness.c checks that they
 * agree for every kind), so a target that takes fds without a socket does
 * not have to ask the kernel. */
#include "harness_int.h"
#include "vuf_event.h"

#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

void vuf_fdset_init(vuf_fdset *s)
{
    memset(s, 0, sizeof *s);
    s->be_peer = -1;
}

void vuf_fdset_close_all(vuf_fdset *s)
{
    for (size_t i = 0; i < s->nh; i++)
        close(s->h[i].fd);
    s->nh = 0;
    for (size_t i = 0; i < s->npeers; i++)
        if (s->peers[i] >= 0)
            close(s->peers[i]);
    s->npeers = 0;
    s->be_peer = -1;
}

static int keep(vuf_fdset *s, int fd, int guest, vuf_fdkind kind)
{
    if (fd < 0)
        return -1;
    if (s->nh == VUF_H_MAX_FDS) {
        close(fd);
        return -1;
    }
    s->h[s->nh].fd = fd;
    s->h[s->nh].kind = (uint8_t)kind;
    s->h[s->nh++].guest = guest;
    return fd;
}

static void keep_peer(vuf_fdset *s, int fd)
{
    if (s->npeers < VUF_H_MAX_PEERS) {
        s->channel[s->npeers] = false;
        s->peers[s->npeers++] = fd;
    } else {
        close(fd);
    }
}

static int make_socket(vuf_fdset *s, int type)
{
    int sv[2];
    if (socketpair(AF_UNIX, type | SOCK_CLOEXEC, 0, sv))
        return -1;
    vuf_fdkind k = type == SOCK_STREAM ? VUF_FDKIND_SOCKET : VUF_FDKIND_SOCKET_DGRAM;
    if (type == SOCK_STREAM)
        keep_peer(s, sv[1]);
    else
        keep(s, sv[1], -1, k);
    return keep(s, sv[0], -1, k);
}

static int make_sized(vuf_fdset *s, bool file, uint64_t size)
{
    int fd = file ? open("/tmp", O_TMPFILE | O_RDWR | O_CLOEXEC, 0600)
                  : memfd_create("vufuzz-session", MFD_CLOEXEC);
    if (fd >= 0 && ftruncate(fd, (off_t)size)) {
        close(fd);
        fd = -1;
    }
    return keep(s, fd, -1, file ? VUF_FDKIND_FILE : VUF_FDKIND_MEMFD);
}

int vuf_fdset_make(vuf_fdset *s, vuf_guest *g, const Vuf__Fd *spec, bool size_derived, int main_fd,
                   int *guest, uint8_t *kind)
{
    *guest = -1;
    uint64_t size = spec->has_size || size_derived ? spec->size : VUF_SESSION_DEFAULT_FD_SIZE;
    if (size == 0 || size > VUF_SESSION_MAX_FD_SIZE)
        size = VUF_SESSION_DEFAULT_FD_SIZE;
    size_t before = s->nh;
    int fd = -1;
    switch (vuf_session_fd_kind(spec->kind)) {
    case VUF__FD_KIND__FD_EVENTFD:
        fd = keep(s, eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK), -1, VUF_FDKIND_EVENTFD);
        break;
    case VUF__FD_KIND__FD_MEMFD:
        fd = make_sized(s, false, size);
        break;
    case VUF__FD_KIND__FD_FILE:
        fd = make_sized(s, true, size);
        break;
    case VUF__FD_KIND__FD_SOCKET:
        fd = make_socket(s, SOCK_STREAM);
        break;
    case VUF__FD_KIND__FD_SOCKET_PEER_CLOSED: {
        int sv[2];
        if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv))
            return -1;
        close(sv[1]);
        fd = keep(s, sv[0], -1, VUF_FDKIND_SOCKET_CLOSED);
        break;
    }
    case VUF__FD_KIND__FD_SOCKET_LISTEN: {
        fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
        struct sockaddr_un a = {.sun_family = AF_UNIX};
        /* an abstract address, unique in this process */
        int n = snprintf(a.sun_path + 1, sizeof a.sun_path - 1, "vufuzz-%d-%u", (int)getpid(),
                         s->serial++);
        if (fd >= 0 && (bind(fd, (struct sockaddr *)&a,
                             (socklen_t)(offsetof(struct sockaddr_un, sun_path) + 1 + n)) ||
                        listen(fd, 1))) {
            close(fd);
            fd = -1;
        }
        fd = keep(s, fd, -1, VUF_FDKIND_SOCKET_LISTEN);
        break;
    }
    case VUF__FD_KIND__FD_SOCKET_DGRAM:
        fd = make_socket(s, SOCK_DGRAM);
        break;
    case VUF__FD_KIND__FD_PIPE_READ:
    case VUF__FD_KIND__FD_PIPE_WRITE: {
        int p[2];
        if (pipe2(p, O_CLOEXEC))
            return -1;
        bool rd_end = vuf_session_fd_kind(spec->kind) == VUF__FD_KIND__FD_PIPE_READ;
        keep(s, p[rd_end ? 1 : 0], -1, VUF_FDKIND_PIPE);
        fd = keep(s, p[rd_end ? 0 : 1], -1, VUF_FDKIND_PIPE);
        break;
    }
    case VUF__FD_KIND__FD_DEVNULL:
        fd = keep(s, open("/dev/null", O_RDWR | O_CLOEXEC), -1, VUF_FDKIND_DEVNULL);
        break;
    case VUF__FD_KIND__FD_MAIN_CHANNEL:
        fd = main_fd >= 0 ? keep(s, fcntl(main_fd, F_DUPFD_CLOEXEC, 0), -1, VUF_FDKIND_SOCKET) : -1;
        break;
    case VUF__FD_KIND__FD_BACKEND_CHANNEL: {
        int be = vuf_fdset_backend(s);
        fd = be >= 0 ? keep(s, fcntl(be, F_DUPFD_CLOEXEC, 0), -1, VUF_FDKIND_SOCKET)
                     : make_socket(s, SOCK_STREAM);
        break;
    }
    case VUF__FD_KIND__FD_CLOSED_NUMBER:
        return -2;
    case VUF__FD_KIND__FD_DUP: {
        if (s->nh == 0) {
            fd = keep(s, eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK), -1, VUF_FDKIND_EVENTFD);
            break;
        }
        vuf_hfd src = s->h[spec->ref % s->nh];
        *guest = src.guest;
        fd = keep(s, fcntl(src.fd, F_DUPFD_CLOEXEC, 0), src.guest, (vuf_fdkind)src.kind);
        break;
    }
    case VUF__FD_KIND__FD_GUEST_MEMORY:
        if (!g->nreg)
            return -1;
        *guest = (int)(spec->ref % g->nreg);
        *kind = VUF_FDKIND_MEMFD;
        return g->reg[*guest].fd;
    case VUF__FD_KIND__FD_OTHER:
    default:
        fd = keep(s, epoll_create1(EPOLL_CLOEXEC), -1, VUF_FDKIND_OTHER);
        break;
    }
    *kind = fd >= 0 && s->nh > before ? s->h[s->nh - 1].kind : VUF_FDKIND_UNKNOWN;
    return fd;
}

bool vuf_fdset_is_eventfd(const vuf_fdset *s, int fd)
{
    for (size_t i = 0; i < s->nh; i++)
        if (s->h[i].fd == fd)
            return s->h[i].kind == VUF_FDKIND_EVENTFD;
    return false;
}

int vuf_fdset_backend(const vuf_fdset *s)
{
    return s->be_peer >= 0 ? s->peers[s->be_peer] : -1;
}

void vuf_fdset_close_backend(vuf_fdset *s)
{
    if (s->be_peer < 0)
        return;
    close(s->peers[s->be_peer]);
    s->peers[s->be_peer] = -1;
    s->be_peer = -1;
}
