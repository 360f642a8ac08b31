/* SPDX-License-Identifier: MIT */
/* pysync/queue.h - Python's queue module for C: Queue (FIFO), LifoQueue and
 * PriorityQueue of void * items, with task_done/join and shutdown (Python 3.13).
 *
 * Every int-returning call returns 0 or a positive errno value and leaves errno
 * alone. Timeouts are seconds; negative or INFINITY waits forever, NaN is EINVAL.
 * A ps_queue_t is for the threads of one process. The struct members are
 * private: use the functions. See ps_queue(3). */
#ifndef PYSYNC_QUEUE_H
#define PYSYNC_QUEUE_H

#include <pysync/threading.h>

#include <stdbool.h>
#include <stddef.h>

#ifdef __cplusplus
extern "C" {
#endif

struct ps_queue_entry;          /* private: a PriorityQueue heap slot */

/* Private layout. Each group sits on its own cache lines (the _pad members), so
 * that a thread polling one counter does not steal the line of a lock or of the
 * other side's cache. */
typedef struct ps_queue {
    unsigned _get_lock;         /* with _put_lock: shutdown and destroy */
    size_t _head_segment;       /* FIFO of segments: the consumers' segment */
    char _pad0[64];
    size_t _head;               /* FIFO: consumers' ticket (position << 3 | flags);
                                 * others: items taken so far */
    char _pad1[64];
    unsigned _put_lock;         /* the only lock of LIFO and priority queues */
    size_t _tail_segment;       /* FIFO of segments: the producers' segment */
    char _pad2[64];
    size_t _tail;               /* FIFO: producers' ticket; others: items stored */
    char _pad3[64];
    size_t _done;               /* (task_done calls plus items shutdown discarded)
                                 * << 1 | 1 while a joiner may sleep on it */
    char _pad4[64];
    void **_slots;              /* FIFO ring (stamped slots) / LIFO stack */
    struct ps_queue_entry *_heap;   /* PriorityQueue; FIFO of segments: free segments */
    size_t _cap;                /* allocated slots (FIFO ring: exactly maxsize) */
    size_t _maxsize;            /* 0: unbounded */
    int (*_cmp)(const void *, const void *);
    int _kind;                  /* 0 once destroyed */
    unsigned _shutdown;         /* 0 alive, 1 shut down, 2 shut down immediately */
    char _pad5[64];
    unsigned _getters, _putters;        /* threads asleep in get and put */
    unsigned _inside;           /* threads in a blocking put, get or join */
    unsigned _not_empty, _not_full;     /* LIFO, priority: futex words, bumped to wake */
} ps_queue_t;

/* queue.Queue(maxsize): FIFO; maxsize 0 is unbounded. EINVAL for a NULL q,
 * ENOMEM. */
PS_EXTERN int ps_queue_init(ps_queue_t *q, size_t maxsize);
/* queue.LifoQueue(maxsize): the last item put leaves first. */
PS_EXTERN int ps_lifoqueue_init(ps_queue_t *q, size_t maxsize);
/* queue.PriorityQueue(maxsize): smallest item by cmp(a, b) (< 0: a first) leaves
 * first; equal items leave in the order they were put. cmp NULL: EINVAL. */
PS_EXTERN int ps_priorityqueue_init(ps_queue_t *q, size_t maxsize,
                           int (*cmp)(const void *a, const void *b));
/* Frees the storage (items are the caller's). EBUSY while a thread waits on q;
 * waits for a thread that is still waking others to be done with q. */
PS_EXTERN int ps_queue_destroy(ps_queue_t *q);
/* Heap-allocated variants: NULL and errno (EINVAL, ENOMEM) on failure. */
PS_EXTERN ps_queue_t *ps_queue_new(size_t maxsize);
PS_EXTERN ps_queue_t *ps_lifoqueue_new(size_t maxsize);
PS_EXTERN ps_queue_t *ps_priorityqueue_new(size_t maxsize, int (*cmp)(const void *, const void *));
/* Destroys and frees a _new queue; NULL is a no-op. Busy: left alone, errno EBUSY. */
PS_EXTERN void ps_queue_free(ps_queue_t *q);

/* Appends item: 0, EAGAIN (full, !block), ETIMEDOUT, ESHUTDOWN, ENOMEM, EINVAL.
 * With block == false the timeout is ignored. */
PS_EXTERN int ps_queue_put(ps_queue_t *q, void *item, bool block, double timeout);
/* Removes the next item into *item: 0, EAGAIN (empty, !block), ETIMEDOUT,
 * ESHUTDOWN (shut down and empty), EINVAL (NULL q or item). */
PS_EXTERN int ps_queue_get(ps_queue_t *q, void **item, bool block, double timeout);
PS_EXTERN int ps_queue_put_nowait(ps_queue_t *q, void *item);  /* put(q, item, false, 0) */
PS_EXTERN int ps_queue_get_nowait(ps_queue_t *q, void **item); /* get(q, item, false, 0) */
/* Approximate, as in Python: other threads may change it at once. */
PS_EXTERN size_t ps_queue_qsize(ps_queue_t *q);
PS_EXTERN bool ps_queue_empty(ps_queue_t *q);
PS_EXTERN bool ps_queue_full(ps_queue_t *q);                   /* maxsize > 0 && qsize >= maxsize */
/* One put item is fully processed. EOVERFLOW: more calls than items put. */
PS_EXTERN int ps_queue_task_done(ps_queue_t *q);
/* Waits until every item put has been matched by a task_done. */
PS_EXTERN int ps_queue_join(ps_queue_t *q);
/* Later puts fail with ESHUTDOWN, gets drain then fail; immediate also empties the
 * queue (removed items count as done). Wakes every blocked caller. */
PS_EXTERN int ps_queue_shutdown(ps_queue_t *q, bool immediate);

#ifdef __cplusplus
}
#endif
#endif
