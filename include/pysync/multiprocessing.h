/* SPDX-License-Identifier: MIT */
/* pysync/multiprocessing.h - Python's multiprocessing for C: Process (fork start
 * method), the Manager (a shared-memory segment of named objects), the
 * cross-process queue (bytes) and the shared dict.
 *
 * Every int-returning call returns 0 or a positive errno value and leaves errno
 * alone; pointer-returning calls return NULL and set errno. See pysync(7). */
#ifndef PYSYNC_MULTIPROCESSING_H
#define PYSYNC_MULTIPROCESSING_H

#include <pysync/threading.h>

#include <limits.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#ifdef __cplusplus
extern "C" {
#endif

/* ---- Process: multiprocessing.Process ---- */
#define PS_EXITCODE_NONE INT_MIN    /* ps_process_exitcode while running */

/* Opaque; made by ps_process_new only. See ps_process(3). */
typedef struct ps_process ps_process_t;

/* A process object that, once started, forks and runs target(arg) in the child.
 * name is copied (cut to 63 bytes); NULL: "Process-N". target NULL: EINVAL. */
PS_EXTERN ps_process_t *ps_process_new(int (*target)(void *), void *arg, const char *name);
/* Daemon children are killed when the parent exits, also abruptly; the others
 * are joined at exit. Before start, else EINVAL. */
PS_EXTERN int ps_process_set_daemon(ps_process_t *p, bool daemon);
PS_EXTERN bool ps_process_daemon(const ps_process_t *p);        /* the flag */
/* Forks; the child runs target, flushes stdio and _exits with its return value
 * (mod 256). Twice: EINVAL. */
PS_EXTERN int ps_process_start(ps_process_t *p);
/* Waits at most timeout s for the child to end and reaps it: ETIMEDOUT; never
 * started: EINVAL; reaped by someone else's waitpid: ECHILD. */
PS_EXTERN int ps_process_join(ps_process_t *p, double timeout);
/* True from start until the child has ended (an ended child is reaped here). */
PS_EXTERN bool ps_process_is_alive(ps_process_t *p);
/* Sends SIGTERM; 0 if the child has already ended. Never started: EINVAL. */
PS_EXTERN int ps_process_terminate(ps_process_t *p);
/* Sends SIGKILL; as ps_process_terminate. */
PS_EXTERN int ps_process_kill(ps_process_t *p);
/* The child's exit code, -N if signal N killed it; PS_EXITCODE_NONE before start,
 * while running, or if its status was taken by someone else. */
PS_EXTERN int ps_process_exitcode(ps_process_t *p);
PS_EXTERN pid_t ps_process_pid(const ps_process_t *p);          /* 0 before start */
PS_EXTERN const char *ps_process_name(const ps_process_t *p);
/* Frees the object. A running child is neither killed nor waited for: it runs on,
 * is still joined (or, a daemon, killed) at exit, and is reaped by a later start. */
PS_EXTERN void ps_process_free(ps_process_t *p);

/* ---- Manager: a shared-memory segment holding named objects ---- */
typedef struct ps_manager ps_manager_t;
/* Opaque, in shared memory: made by ps_mpqueue_new or ps_manager_queue. */
typedef struct ps_mpqueue ps_mpqueue_t;
/* Opaque, in a manager's segment: made by ps_manager_dict. */
typedef struct ps_dict ps_dict_t;

#define PS_MANAGER_NAME_MAX 63                  /* object names: 1..63 bytes */
#define PS_MANAGER_MIN_SIZE (16 * 1024)         /* smallest segment */
#define PS_MANAGER_DEFAULT_SIZE (1024 * 1024)   /* size 0 asks for this */

/* What ps_manager_stats reports (bytes, counts). */
typedef struct ps_manager_stats {
    size_t size;            /* the whole segment */
    size_t heap_bytes;      /* the part that holds objects */
    size_t free_bytes;      /* free part of the heap */
    size_t largest_free;    /* largest free block (its 16-byte header included) */
    size_t free_blocks;
    size_t objects;         /* named objects */
    size_t name_slots;      /* name table size; at most 3/4 of it are used */
    size_t tombstones;      /* removed names that lookups still step over */
    size_t repairs;         /* calls of dead processes taken back so far */
} ps_manager_stats_t;

/* name NULL: anonymous, shared with children forked later; "/name": a new POSIX
 * shm object, mode 0600 (EEXIST if it exists). size 0: PS_MANAGER_DEFAULT_SIZE. */
PS_EXTERN ps_manager_t *ps_manager_new(const char *name, size_t size);
/* Attaches to a named segment: EPROTO if it is not a sound pysync segment. */
PS_EXTERN ps_manager_t *ps_manager_open(const char *name);
PS_EXTERN int  ps_manager_close(ps_manager_t *m);              /* unmap; objects live on */
PS_EXTERN int  ps_manager_unlink(const char *name);            /* ENOENT */
/* Find or create by name; creation arguments are used only at creation.
 * NULL + errno: EEXIST (the name holds another type), EINVAL, ENOMEM, EPROTO. */
PS_EXTERN ps_lock_t      *ps_manager_lock(ps_manager_t *m, const char *name);
PS_EXTERN ps_rlock_t     *ps_manager_rlock(ps_manager_t *m, const char *name);
PS_EXTERN ps_semaphore_t *ps_manager_semaphore(ps_manager_t *m, const char *name, int value);
PS_EXTERN ps_event_t     *ps_manager_event(ps_manager_t *m, const char *name);
PS_EXTERN ps_condition_t *ps_manager_condition(ps_manager_t *m, const char *name);
PS_EXTERN ps_barrier_t   *ps_manager_barrier(ps_manager_t *m, const char *name, unsigned parties);
/* A cross-process queue of at most maxsize messages (0: no count limit) in
 * capacity_bytes of ring (header of each message included). */
PS_EXTERN ps_mpqueue_t   *ps_manager_queue(ps_manager_t *m, const char *name, size_t maxsize,
                                           size_t capacity_bytes);
/* A dict whose entries live in the segment's heap. */
PS_EXTERN ps_dict_t      *ps_manager_dict(ps_manager_t *m, const char *name);
/* Zeroed shared bytes (Value/Array); EINVAL if an existing one is smaller. */
PS_EXTERN void           *ps_manager_value(ps_manager_t *m, const char *name, size_t size);
PS_EXTERN int  ps_manager_remove(ps_manager_t *m, const char *name); /* ENOENT; EBUSY */
/* Counts of the segment, checked against each other (EPROTO if they disagree). */
PS_EXTERN int  ps_manager_stats(ps_manager_t *m, ps_manager_stats_t *stats);

/* ---- Cross-process queue: multiprocessing.Queue / JoinableQueue of bytes ---- */
#define PS_MPQUEUE_OVERHEAD 8u  /* ring bytes a message takes beyond its length, rounded up to 8 */

/* A queue in its own anonymous shared memory, shared with children forked later.
 * capacity_bytes: 8..2^31 bytes of ring (EINVAL otherwise). */
PS_EXTERN ps_mpqueue_t *ps_mpqueue_new(size_t maxsize, size_t capacity_bytes);
/* For ps_mpqueue_new queues (a manager queue is left alone). Waited on: the
 * queue stays, errno EBUSY. NULL: no-op. */
PS_EXTERN void ps_mpqueue_free(ps_mpqueue_t *q);
/* Copies len bytes in. EAGAIN (full, block false), ETIMEDOUT, ESHUTDOWN,
 * EMSGSIZE (could never fit), EINVAL. */
PS_EXTERN int  ps_mpqueue_put(ps_mpqueue_t *q, const void *data, size_t len, bool block,
                              double timeout);
/* Copies the oldest message into buf and sets *len. ERANGE: cap too small, *len is
 * the size needed and the message stays queued. EAGAIN, ETIMEDOUT, ESHUTDOWN. */
PS_EXTERN int  ps_mpqueue_get(ps_mpqueue_t *q, void *buf, size_t cap, size_t *len, bool block,
                              double timeout);
PS_EXTERN int  ps_mpqueue_put_nowait(ps_mpqueue_t *q, const void *data, size_t len);
PS_EXTERN int  ps_mpqueue_get_nowait(ps_mpqueue_t *q, void *buf, size_t cap, size_t *len);
PS_EXTERN size_t ps_mpqueue_qsize(ps_mpqueue_t *q);           /* messages queued */
PS_EXTERN bool ps_mpqueue_empty(ps_mpqueue_t *q);
PS_EXTERN bool ps_mpqueue_full(ps_mpqueue_t *q);              /* by count or by bytes */
/* JoinableQueue: EOVERFLOW if called more times than messages were put. */
PS_EXTERN int  ps_mpqueue_task_done(ps_mpqueue_t *q);
/* Blocks until every message put has been task_done'd (from any process). */
PS_EXTERN int  ps_mpqueue_join(ps_mpqueue_t *q);
/* Later puts fail with ESHUTDOWN; gets drain what is queued, then ESHUTDOWN.
 * immediate: discard what is queued (counted as done) and wake every waiter. */
PS_EXTERN int  ps_mpqueue_shutdown(ps_mpqueue_t *q, bool immediate);

/* ---- Shared dict: Manager().dict(), C-string keys, byte values ---- */
PS_EXTERN int  ps_dict_set(ps_dict_t *d, const char *key, const void *value, size_t len);
/* ENOENT; ERANGE (cap too small: *len is the size needed). */
PS_EXTERN int  ps_dict_get(ps_dict_t *d, const char *key, void *buf, size_t cap, size_t *len);
/* As get, and removes the entry (not on ERANGE). */
PS_EXTERN int  ps_dict_pop(ps_dict_t *d, const char *key, void *buf, size_t cap, size_t *len);
PS_EXTERN int  ps_dict_del(ps_dict_t *d, const char *key);     /* ENOENT */
PS_EXTERN bool ps_dict_contains(ps_dict_t *d, const char *key);
PS_EXTERN size_t ps_dict_len(ps_dict_t *d);
PS_EXTERN int  ps_dict_clear(ps_dict_t *d);
/* Atomic add on an int64_t value (a missing key counts as 0); *result (may be
 * NULL) gets the new value. EINVAL if the value is not 8 bytes. */
PS_EXTERN int  ps_dict_incr(ps_dict_t *d, const char *key, int64_t delta, int64_t *result);
/* Calls fn on a snapshot of every entry; stops at fn's first non-zero return
 * and returns it, else 0. ENOMEM if the snapshot cannot be made. */
PS_EXTERN int  ps_dict_foreach(ps_dict_t *d,
                               int (*fn)(const char *key, const void *value, size_t len, void *arg),
                               void *arg);

#ifdef __cplusplus
}
#endif
#endif
