/* SPDX-License-Identifier: MIT */
/* The cross-process queue placed in memory someone else owns (a manager's
 * heap). See mpqueue.c. */
#ifndef PS_SHM_MPQUEUE_H
#define PS_SHM_MPQUEUE_H

#include <pysync/multiprocessing.h>
#include <stdbool.h>
#include <stddef.h>

bool   mpqueue_capacity_ok(size_t capacity_bytes);      /* 8 .. 2^31 */
size_t mpqueue_object_size(size_t capacity_bytes);      /* header + ring */
size_t mpqueue_header_size(void);                       /* what destroy may change */
/* On zeroed shared bytes of mpqueue_object_size(capacity_bytes). */
int    mpqueue_init_at(void *obj, size_t maxsize, size_t capacity_bytes);
/* Is the queue found in obj (size bytes) sound: ring inside the block? */
bool   mpqueue_sound(const void *obj, size_t size);
/* 0, or EBUSY (a caller is inside: nothing changed). */
int    mpqueue_destroy_at(void *obj);

/* What pysync-stat shows, read without locks (a moment's view). */
struct mpqueue_peek {
    size_t maxsize, capacity;       /* creation arguments (capacity rounded to 8) */
    size_t depth, bytes_used;       /* messages queued, ring bytes they take */
    size_t getters, putters;        /* asleep in get / put */
    size_t unfinished;              /* tasks not yet task_done'd */
    bool shut_down;
};
/* EPROTO if obj (obj_size bytes) is not a sound queue. */
int    mpqueue_peek(const void *obj, size_t obj_size, struct mpqueue_peek *out);

#endif
