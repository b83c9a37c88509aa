/* SPDX-License-Identifier: Apache-2.0 */
/* AFL++'s shared-memory edge map, from outside (vuf_aflmap.h). */
#include "vuf_aflmap.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ipc.h>
#include <sys/shm.h>

struct vuf_aflmap {
    int id;
    uint8_t *bytes;
    size_t size;
};

vuf_aflmap *vuf_aflmap_new(size_t size, char *err, size_t errcap)
{
    if (!size)
        size = 65536;
    vuf_aflmap *m = calloc(1, sizeof *m);
    if (!m) {
        snprintf(err, errcap, "out of memory");
        return NULL;
    }
    m->size = size;
    m->id = shmget(IPC_PRIVATE, size, IPC_CREAT | IPC_EXCL | 0600);
    if (m->id < 0) {
        snprintf(err, errcap, "cannot make a shared memory map of %zu bytes: %s", size,
                 strerror(errno));
        free(m);
        return NULL;
    }
    void *p = shmat(m->id, NULL, 0);
    shmctl(m->id, IPC_RMID, NULL); /* gone with the last process that has it */
    if (p == (void *)-1) {
        snprintf(err, errcap, "cannot attach the shared memory map: %s", strerror(errno));
        free(m);
        return NULL;
    }
    m->bytes = p;
    char v[32];
    snprintf(v, sizeof v, "%d", m->id);
    setenv("__AFL_SHM_ID", v, 1);
    snprintf(v, sizeof v, "%zu", size);
    setenv("AFL_MAP_SIZE", v, 1);
    return m;
}

void vuf_aflmap_free(vuf_aflmap *m)
{
    if (!m)
        return;
    shmdt(m->bytes);
    unsetenv("__AFL_SHM_ID");
    unsetenv("AFL_MAP_SIZE");
    free(m);
}

uint8_t *vuf_aflmap_bytes(vuf_aflmap *m)
{
    return m->bytes;
}

size_t vuf_aflmap_size(const vuf_aflmap *m)
{
    return m->size;
}

size_t vuf_aflmap_count(const vuf_aflmap *m)
{
    size_t n = 0;
    for (size_t i = 0; i < m->size; i++)
        n += m->bytes[i] != 0;
    return n;
}
