/* SPDX-License-Identifier: MIT */
/* The process executor's input arena (arena.h).
 *
 * Chunks come in 15 power-of-two classes (64 B .. 1 MiB), carved from the
 * reserved region by a bump pointer and kept on one free stack per class once
 * freed; a free chunk's first 8 bytes hold the next one's offset. The region is
 * reserved with MAP_NORESERVE, as large as the system allows (64 GiB, or less), so
 * only the pages of chunks in use are backed; a freed chunk of 256 KiB or more
 * gives its pages back (MADV_REMOVE) except the first, which holds the link.
 * Workers never allocate, so one process-private mutex is enough. */
#include "arena.h"
#include "debug.h"

#include <errno.h>
#include <sys/mman.h>

#define MIN_SHIFT 6
#define MAX_RESERVE ((size_t)1 << 36)
#define MIN_RESERVE ((size_t)1 << 26)
#define RETURN_PAGES_FROM ((size_t)256 << 10)
#define PAGE 4096u              /* alignment only: a larger real page is fine too */

static unsigned class_of(size_t len)
{
    unsigned k = 0;
    while (((size_t)1 << (MIN_SHIFT + k)) < len)
        k++;
    return k;
}

int arena_init(struct arena *a)
{
    for (size_t size = MAX_RESERVE; size >= MIN_RESERVE; size /= 4) {
        void *p = mmap(NULL, size, PROT_READ | PROT_WRITE,
                       MAP_SHARED | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
        if (p != MAP_FAILED) {
            *a = (struct arena){ .base = p, .size = size };
            pthread_mutex_init(&a->mutex, NULL);
            return 0;
        }
    }
    return ENOMEM;
}

void arena_destroy(struct arena *a)
{
    if (!a->base)
        return;
    PS_ASSERT(a->live == 0);    /* every task's input was let go */
    munmap(a->base, a->size);
    pthread_mutex_destroy(&a->mutex);
    a->base = NULL;
}

void *arena_alloc(struct arena *a, size_t len)
{
    unsigned k = class_of(len);
    size_t chunk = (size_t)1 << (MIN_SHIFT + k);
    void *p = NULL;
    pthread_mutex_lock(&a->mutex);
    if (a->free_head[k]) {
        p = a->base + (a->free_head[k] - 1);
        a->free_head[k] = *(uint64_t *)p;
    } else {
        /* Page-aligned big chunks, so their pages can be given back. */
        size_t align = chunk < PAGE ? chunk : PAGE;
        size_t at = (a->used + align - 1) & ~(align - 1);
        if (at <= a->size && a->size - at >= chunk) {
            p = a->base + at;
            a->used = at + chunk;
        }
    }
    a->live += p != NULL;
    pthread_mutex_unlock(&a->mutex);
    return p;
}

void arena_free(struct arena *a, void *chunk, size_t len)
{
    unsigned k = class_of(len);
    size_t size = (size_t)1 << (MIN_SHIFT + k);
    if (size >= RETURN_PAGES_FROM) {
        int saved = errno;
        madvise((unsigned char *)chunk + PAGE, size - PAGE, MADV_REMOVE);
        errno = saved;
    }
    pthread_mutex_lock(&a->mutex);
    *(uint64_t *)chunk = a->free_head[k];
    a->free_head[k] = (uint64_t)((unsigned char *)chunk - a->base) + 1;
    a->live--;
    pthread_mutex_unlock(&a->mutex);
}
