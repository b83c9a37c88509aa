/* SPDX-License-Identifier: Apache-2.0 */
#include "vuf_util.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

uint8_t *vuf_read_file(const char *path, size_t max, size_t *len, char *err, size_t errcap)
{
    *len = 0;
    if (errcap)
        err[0] = 0;
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        snprintf(err, errcap, "cannot open: %s", strerror(errno));
        return NULL;
    }
    struct stat st;
    if (fstat(fd, &st)) {
        snprintf(err, errcap, "cannot stat: %s", strerror(errno));
        close(fd);
        return NULL;
    }
    if (S_ISDIR(st.st_mode)) {
        snprintf(err, errcap, "is a directory, not a file");
        close(fd);
        return NULL;
    }
    if (S_ISREG(st.st_mode) && (uint64_t)st.st_size > max) {
        snprintf(err, errcap, "larger than %zu bytes", max);
        close(fd);
        return NULL;
    }
    /* a regular file's size is a hint only (it may grow); other files
     * (pipes, devices) are read in steps up to the limit */
    size_t cap = S_ISREG(st.st_mode) ? (size_t)st.st_size + 1 : 65536;
    if (cap > max + 1)
        cap = max + 1;
    uint8_t *buf = malloc(cap + 1);
    size_t n = 0;
    while (buf) {
        ssize_t r = read(fd, buf + n, cap - n);
        if (r < 0 && errno == EINTR)
            continue;
        if (r < 0) {
            snprintf(err, errcap, "read error: %s", strerror(errno));
            free(buf);
            buf = NULL;
            break;
        }
        if (r == 0)
            break;
        n += (size_t)r;
        if (n > max) {
            snprintf(err, errcap, "larger than %zu bytes", max);
            free(buf);
            buf = NULL;
            break;
        }
        if (n == cap) {
            size_t nc = cap * 2 > max + 1 ? max + 1 : cap * 2;
            uint8_t *nb = realloc(buf, nc + 1);
            if (!nb) {
                snprintf(err, errcap, "out of memory");
                free(buf);
                buf = NULL;
                break;
            }
            buf = nb;
            cap = nc;
        }
    }
    if (!buf && cap && n == 0 && errno == ENOMEM)
        snprintf(err, errcap, "out of memory");
    close(fd);
    if (buf) {
        buf[n] = 0;
        *len = n;
    }
    return buf;
}

bool vuf_parse_u64(const char *s, uint64_t *out)
{
    if (!s || *s < '0' || *s > '9')
        return false; /* no sign, no space, not empty */
    errno = 0;
    char *end;
    unsigned long long v = strtoull(s, &end, 0);
    if (errno || *end)
        return false;
    *out = v;
    return true;
}

bool vuf_parse_size(const char *s, uint64_t *out)
{
    size_t n = s ? strlen(s) : 0;
    if (!n || n > 40)
        return false;
    char num[48];
    memcpy(num, s, n + 1);
    unsigned shift = 0;
    switch (num[n - 1]) {
    case 'K':
    case 'k':
        shift = 10;
        break;
    case 'M':
    case 'm':
        shift = 20;
        break;
    case 'G':
    case 'g':
        shift = 30;
        break;
    }
    if (shift)
        num[n - 1] = 0;
    uint64_t v;
    if (!vuf_parse_u64(num, &v) || (shift && v > (UINT64_MAX >> shift)))
        return false;
    *out = v << shift;
    return true;
}

void vuf_lines_add(vuf_lines *l, const char *line)
{
    size_t n = strlen(line);
    if (l->len + n + 2 > l->cap) {
        size_t nc = (l->cap ? l->cap * 2 : 4096) + n;
        char *nb = realloc(l->text, nc);
        if (!nb)
            return;
        l->text = nb;
        l->cap = nc;
    }
    memcpy(l->text + l->len, line, n);
    l->len += n;
    l->text[l->len++] = '\n';
    l->text[l->len] = 0;
}

char *vuf_lines_take(vuf_lines *l)
{
    char *t = l->text;
    *l = (vuf_lines){0};
    return t;
}

void vuf_lines_free(vuf_lines *l)
{
    free(l->text);
    *l = (vuf_lines){0};
}

bool vuf_write_file(const char *path, const void *data, size_t len)
{
    char tmp[4200];
    if ((size_t)snprintf(tmp, sizeof tmp, "%s.tmp%d", path, (int)getpid()) >= sizeof tmp) {
        errno = ENAMETOOLONG;
        return false;
    }
    FILE *f = fopen(tmp, "wb");
    if (!f)
        return false;
    bool ok = fwrite(data, 1, len, f) == len;
    ok = fclose(f) == 0 && ok;
    if (ok && rename(tmp, path))
        ok = false;
    if (!ok) {
        int e = errno;
        unlink(tmp);
        errno = e;
    }
    return ok;
}

int vuf_mkdir_p(const char *path)
{
    char b[4096];
    if ((size_t)snprintf(b, sizeof b, "%s", path) >= sizeof b) {
        errno = ENAMETOOLONG;
        return -1;
    }
    for (char *p = b + 1; *p; p++)
        if (*p == '/') {
            *p = 0;
            if (mkdir(b, 0777) && errno != EEXIST)
                return -1;
            *p = '/';
        }
    return mkdir(b, 0777) && errno != EEXIST ? -1 : 0;
}

int64_t vuf_now_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

int64_t vuf_now_ms(void)
{
    return vuf_now_us() / 1000;
}

double vuf_now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}
