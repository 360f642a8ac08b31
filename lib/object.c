/* SPDX-License-Identifier: MIT */
#include "object.h"

#include <errno.h>
#include <pysync/threading.h>
#include <stdlib.h>
#include <sys/mman.h>

void *object_alloc(size_t size, int flags)
{
    if (flags & ~PS_SHARED) {
        errno = EINVAL;
        return NULL;
    }
    if (!(flags & PS_SHARED))
        return calloc(1, size);
    void *p = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    return p == MAP_FAILED ? NULL : p;
}

void object_free(void *obj, size_t size, int flags)
{
    if (flags & PS_SHARED)
        munmap(obj, size);
    else
        free(obj);
}
