/* SPDX-License-Identifier: MIT */
/* pysync/multiprocessing.h - Python's multiprocessing for C: Process (fork start
 * method) and the Manager, a shared-memory segment of named objects.
 *
 * Every int-returning call returns 0 or a positive errno value and leaves errno
 * alone; pointer-returning calls return NULL and set errno. See pysync(7). */
#ifndef PYSYNC_MULTIPROCESSING_H
#define PYSYNC_MULTIPROCESSING_H

#include <pysync/threading.h>

#include <limits.h>
#include <stdbool.h>
#include <stddef.h>
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
/* Zeroed shared bytes (Value/Array); EINVAL if an existing one is smaller. */
PS_EXTERN void           *ps_manager_value(ps_manager_t *m, const char *name, size_t size);
PS_EXTERN int  ps_manager_remove(ps_manager_t *m, const char *name); /* ENOENT; EBUSY */
/* Counts of the segment, checked against each other (EPROTO if they disagree). */
PS_EXTERN int  ps_manager_stats(ps_manager_t *m, ps_manager_stats_t *stats);

#ifdef __cplusplus
}
#endif
#endif
