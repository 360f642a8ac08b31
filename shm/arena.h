/* SPDX-License-Identifier: MIT */
/* The process executor's input arena: one MAP_SHARED region made before the
 * workers are forked, so a task's input is copied once, at submit, to where its
 * worker reads it. Only the making process allocates and frees; workers read the
 * chunks they are handed. */
#ifndef PS_ARENA_H
#define PS_ARENA_H

#include <pthread.h>
#include <stddef.h>
#include <stdint.h>

#define ARENA_CLASSES 15            /* chunks of 64 B << k, k < 15: up to 1 MiB */

struct arena {
    unsigned char *base;
    size_t size;                    /* reserved (MAP_NORESERVE) */
    size_t used;                    /* bump pointer: never handed out beyond */
    uint64_t free_head[ARENA_CLASSES];   /* offset + 1 of a free chunk; 0: none */
    size_t live;                    /* chunks handed out and not freed */
    pthread_mutex_t mutex;
};

int arena_init(struct arena *a);    /* 0 or ENOMEM */
void arena_destroy(struct arena *a);  /* every chunk freed (checked by PS_DEBUG) */
/* A chunk of at least len bytes (1 .. 1 MiB); NULL when the arena is full. */
void *arena_alloc(struct arena *a, size_t len);
void arena_free(struct arena *a, void *chunk, size_t len);

#endif
