/* SPDX-License-Identifier: MIT */
/* The FIFO Queue (queue.Queue) without a lock on its fast path: a bounded ring
 * or a list of segments, both with one ticket word per side. lib/fifo.c tells
 * how; lib/queue.c calls it for the FIFO kinds and keeps the rest (LifoQueue,
 * PriorityQueue, task_done/join, destroy). */
#ifndef PS_FIFO_H
#define PS_FIFO_H

#include <pysync/queue.h>
#include <stdbool.h>
#include <stddef.h>

#include "timing.h"

/* ps_queue_t._kind. The two FIFO kinds differ only inside lib/fifo.c. */
enum { KIND_RING = 1, KIND_SEGMENTS, KIND_LIFO, KIND_PRIORITY };

static inline bool is_fifo(const ps_queue_t *q)
{
    return q->_kind == KIND_RING || q->_kind == KIND_SEGMENTS;
}

/* q is zeroed with _maxsize set: picks the kind and allocates. 0 or ENOMEM. */
int  fifo_init(ps_queue_t *q, size_t maxsize);
/* Frees the storage; nobody may be inside. The items are the caller's. */
void fifo_free(ps_queue_t *q);

/* One attempt without sleeping (it may spin briefly for a thread that is in the
 * middle of its own put or get): 0, EAGAIN (full / empty), ESHUTDOWN, ENOMEM. */
int  fifo_put_nowait(ps_queue_t *q, void *item);
int  fifo_get_nowait(ps_queue_t *q, void **item);
/* The blocking forms, for a caller counted in _inside (see queue.c): polls, then
 * sleeps until it succeeds, the queue is shut down or d passes (ETIMEDOUT). */
int  fifo_put_wait(ps_queue_t *q, void *item, const deadline_t *d);
int  fifo_get_wait(ps_queue_t *q, void **item, const deadline_t *d);

/* Items ever put (or being put), the count task_done and join compare with. */
size_t fifo_items_put(ps_queue_t *q);
size_t fifo_qsize(ps_queue_t *q);

/* With the shutdown lock held: stops puts; immediate also stops gets and
 * empties the queue. Returns how many items it removed. */
size_t fifo_shutdown(ps_queue_t *q, bool immediate);
/* The futex words the two sides sleep on, for shutdown's wake-ups. */
unsigned *fifo_getters_word(ps_queue_t *q);
unsigned *fifo_putters_word(ps_queue_t *q);

#endif
