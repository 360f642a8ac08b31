/* SPDX-License-Identifier: MIT */
/* Executor: concurrent.futures.ThreadPoolExecutor, and the public calls every
 * executor shares (a PS_PROCESSES one is reached through its registered ops,
 * lib/executor.h).
 *
 * Work queue
 *   An intrusive FIFO of futures linked through f->next: Vyukov's MPSC queue,
 *   with a stub node. A submit appends with one exchange on the producers' end
 *   (phead) and one store linking the previous node; workers pop at the other
 *   end (ctail) one at a time under the consumers' lock, which also guards the
 *   sleeper stack and the worker list. Producers and consumers touch different
 *   cache lines unless the queue is nearly empty. The queue holds the
 *   executor's reference to each future (future.h). Futures come from a pool
 *   kept per executor, so a steady stream of tasks allocates nothing.
 *
 * Workers
 *   Started on demand, as Python's _adjust_thread_count does: while fewer than
 *   max_workers exist, every submit either takes an idle token (given by a
 *   worker about to be idle) or starts a thread, and, as Python's
 *   Thread.start, waits until that thread runs and has taken the oldest task.
 *   A worker gives its token as soon as its task's function has returned and
 *   the queue looks empty, before it completes the future, so a caller woken by
 *   that completion who submits again finds it and no extra thread starts
 *   (test_idle_thread_reuse). Once max_workers exist, submits skip all of this.
 *   Workers live until shutdown.
 *
 *   A worker that finds the queue empty polls it for a few microseconds, then
 *   sleeps on its own futex word, pushed on the sleeper stack. Sleeping and
 *   waking are a Dekker pair: the worker counts itself in nsleep (seq_cst) and
 *   then re-reads phead; a submit exchanges phead (seq_cst) and then reads
 *   nsleep. So either the worker sees the task and stays up, or the submit sees
 *   the sleeper and wakes one: it pops it under the lock, sets its word, and
 *   calls FUTEX_WAKE. While no worker sleeps, a submit makes no system call and
 *   takes no lock.
 *
 * Shutdown
 *   A submit counts itself in `producers` (seq_cst) and then checks `shutdown`;
 *   shutdown sets CLOSING and waits until no submit is counted, then sets
 *   SEALED: after that nothing more can be queued, and a worker that finds the
 *   queue empty exits, so the queued tasks run first. cancel_futures pops the
 *   whole queue and cancels each future (its callbacks run in the caller);
 *   every sleeper is woken; wait joins the workers (a join mutex serializes
 *   joiners; a worker never joins itself). A submit's last access to the
 *   executor is its `producers` decrement, so shutdown's wait also covers it.
 *   The executor's memory is reference counted: the caller's handle, plus the
 *   at-exit hook while it shuts it down, plus a worker that freed its own
 *   executor from a task (it detaches and lets go when it leaves).
 *
 * At exit (Python's threading._register_atexit(_python_exit))
 *   A registry of the live executors of this process, of both kinds
 *   (executor.h): at exit, later submits fail with ESHUTDOWN and each executor
 *   is shut down with wait, so queued work finishes. The registry is reset in a forked child
 *   (pthread_atfork) and remembers its pid (PITFALLS 4): a child never waits for
 *   its parent's workers. An executor made before a fork is the parent's: in
 *   the child its submits fail with ESHUTDOWN, and shutdown and free leave it
 *   alone (its threads are not there, its locks may be held). */
#include "executor.h"

#include <errno.h>
#include <pthread.h>
#include <sched.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "futex.h"
#include "timing.h"
#include "wordlock.h"

#define LOCK_SPINS   64         /* polls of a held consumers' lock before sleeping */
#define WORK_SPINS   2000       /* pauses an idle worker polls the queue... */
#define WORK_YIELDS  4          /* ...then sched_yield polls, then it sleeps */
#define MAX_BACKOFF  16

#define load_relaxed(p)     __atomic_load_n((p), __ATOMIC_RELAXED)
#define load_acquire(p)     __atomic_load_n((p), __ATOMIC_ACQUIRE)
#define load_sc(p)          __atomic_load_n((p), __ATOMIC_SEQ_CST)
#define store_relaxed(p, v) __atomic_store_n((p), (v), __ATOMIC_RELAXED)
#define store_release(p, v) __atomic_store_n((p), (v), __ATOMIC_RELEASE)

enum { OPEN, CLOSING, SEALED };         /* shutdown */

struct thread_executor;

struct worker {
    pthread_t thread;
    struct thread_executor *ex;
    struct worker *next;        /* ex->workers: every worker not yet joined */
    struct worker *next_sleeper;
    unsigned wake;              /* futex word: 0 asleep, 1 woken */
    unsigned started;           /* futex word: 1 once it took its first task */
    bool orphan;                /* it freed its own executor: detached, lets go of it */
    unsigned index;             /* n-th worker of its executor, for its name */
    void *scratch;              /* bytes tasks' output buffer */
} __attribute__((aligned(64)));

struct thread_executor {
    struct ps_executor base;
    /* The producers' end: written by submits only. */
    __attribute__((aligned(64))) ps_future_t *phead;    /* the newest node */
    unsigned producers;         /* submits past their shutdown check */
    /* The consumers' end, guarded by lock (ctail is also polled without it). */
    __attribute__((aligned(64))) unsigned lock;
    ps_future_t *ctail;         /* the oldest node */
    struct worker *sleepers;    /* idle workers asleep, each on its own word */
    struct worker *workers;
    unsigned nstarted;
    /* Read by every submit, written seldom. */
    __attribute__((aligned(64))) unsigned nsleep;   /* workers on the sleeper stack */
    unsigned nthreads;          /* workers started and not yet exited (under lock) */
    unsigned max_workers;
    unsigned shutdown;          /* OPEN, CLOSING, SEALED */
    unsigned idle_tokens;       /* while nthreads < max_workers: idle workers */
    ps_future_t stub;           /* a line of its own (the type is aligned) */
    /* Cold. */
    struct future_pool *pool;
    pthread_mutex_t join_mutex; /* one joiner at a time */
    unsigned id;                /* for its threads' names */
    pid_t pid;                  /* the process whose threads these are */
    unsigned generation;        /* executor_generation() when made */
};

static const struct executor_ops thread_ops;
static __thread struct worker *current_worker;

/* ---- process executors ---- */

static const struct executor_ops *process_ops;

void executor_register_process(const struct executor_ops *ops)
{
    __atomic_store_n(&process_ops, ops, __ATOMIC_RELEASE);
}

unsigned executor_default_workers(void)
{
    int saved = errno;
    cpu_set_t set;
    long n = 0;
    if (sched_getaffinity(0, sizeof set, &set) == 0)
        n = CPU_COUNT(&set);
    if (n <= 0)
        n = sysconf(_SC_NPROCESSORS_ONLN);
    errno = saved;
    return n > 0 ? (unsigned)n : 1;
}

/* ---- the consumers' lock ---- */

static inline void qlock(struct thread_executor *ex)
{
    if (wordlock_try(&ex->lock))
        return;
    for (int i = 0; i < LOCK_SPINS; i++) {
        cpu_relax();
        if (load_relaxed(&ex->lock) == 0 && wordlock_try(&ex->lock))
            return;
    }
    wordlock_lock(&ex->lock);
}

static inline void qunlock(struct thread_executor *ex)
{
    wordlock_release(&ex->lock);
}

/* ---- the queue (Vyukov's intrusive MPSC queue; one consumer at a time) ---- */

static inline void mpsc_push(struct thread_executor *ex, ps_future_t *f)
{
    store_relaxed(&f->next, NULL);
    ps_future_t *prev = __atomic_exchange_n(&ex->phead, f, __ATOMIC_SEQ_CST);
    store_release(&prev->next, f);
}

/* With the lock held. NULL: empty, or a push is between its two steps (then
 * queue_empty is false and the node appears within a few instructions). */
static ps_future_t *mpsc_pop(struct thread_executor *ex)
{
    ps_future_t *stub = &ex->stub;
    ps_future_t *tail = ex->ctail, *next = load_acquire(&tail->next);
    if (tail == stub) {
        if (!next)
            return NULL;
        store_relaxed(&ex->ctail, next);
        tail = next;
        next = load_acquire(&next->next);
    }
    if (next) {
        store_relaxed(&ex->ctail, next);
        return tail;
    }
    if (tail != load_acquire(&ex->phead))
        return NULL;
    mpsc_push(ex, stub);        /* tail is the last node: put the stub behind it */
    next = load_acquire(&tail->next);
    if (next) {
        store_relaxed(&ex->ctail, next);
        return tail;
    }
    return NULL;
}

/* With the lock held (seq_cst: the sleepers' half of the Dekker pair). */
static bool queue_empty(struct thread_executor *ex)
{
    return ex->ctail == &ex->stub && load_sc(&ex->phead) == &ex->stub;
}

/* Without the lock, a hint for polling workers: the stub's link changes when a
 * push ends the queue's emptiness (the producers' line is left alone). */
static bool queue_maybe_work(struct thread_executor *ex)
{
    return load_relaxed(&ex->ctail) != &ex->stub || load_relaxed(&ex->stub.next) != NULL;
}

/* ---- the at-exit registry: this process's executors, of every kind ---- */

static struct {
    pthread_mutex_t mutex;
    ps_executor_t *head;
    pid_t pid;
    bool exiting;               /* the hook has started: submits fail */
    unsigned generation;        /* bumped in every forked child */
} registry = { PTHREAD_MUTEX_INITIALIZER, NULL, 0, false, 0 };

/* The parent's executors are not the child's: it starts with none. */
static void registry_reset_in_child(void)
{
    store_relaxed(&registry.generation, registry.generation + 1);
    pthread_mutex_init(&registry.mutex, NULL);
    registry.head = NULL;
    registry.pid = getpid();
    store_relaxed(&registry.exiting, false);
}

/* What Python's concurrent.futures _python_exit does. */
static void registry_at_exit(void)
{
    if (registry.pid != getpid())
        return;                 /* inherited through a fork that skipped atfork */
    store_relaxed(&registry.exiting, true);
    for (;;) {
        pthread_mutex_lock(&registry.mutex);
        ps_executor_t *ex = registry.head;
        while (ex && ex->exit_seen)
            ex = ex->reg_next;
        if (ex) {
            ex->exit_seen = true;
            executor_ref(ex);
        }
        pthread_mutex_unlock(&registry.mutex);
        if (!ex)
            return;
        ex->ops->shutdown(ex, true, false);
        executor_unref(ex);
    }
}

static void registry_setup(void)
{
    registry.pid = getpid();
    pthread_atfork(NULL, NULL, registry_reset_in_child);
    atexit(registry_at_exit);
}

void executor_register(ps_executor_t *ex)
{
    static pthread_once_t once = PTHREAD_ONCE_INIT;
    pthread_once(&once, registry_setup);
    pthread_mutex_lock(&registry.mutex);
    ex->reg_next = registry.head;
    registry.head = ex;
    pthread_mutex_unlock(&registry.mutex);
}

void executor_unregister(ps_executor_t *ex)
{
    pthread_mutex_lock(&registry.mutex);
    for (ps_executor_t **link = &registry.head; *link; link = &(*link)->reg_next) {
        if (*link == ex) {
            *link = ex->reg_next;
            break;
        }
    }
    pthread_mutex_unlock(&registry.mutex);
}

bool executor_exiting(void)
{
    return load_relaxed(&registry.exiting);
}

unsigned executor_generation(void)
{
    return load_relaxed(&registry.generation);
}

static int thread_shutdown(struct thread_executor *ex, bool wait, bool cancel_futures);

/* An executor made before a fork is the parent's: its threads do not exist
 * here, and a thread of the parent may have held its locks at the fork. A child
 * can neither use nor free it. */
static bool foreign(const struct thread_executor *ex)
{
    return ex->generation != executor_generation();
}

/* ---- workers ---- */

/* A worker about to be idle: a token for the next submit, which then starts no
 * thread. Only counted while more threads may start. */
static void give_idle_token(struct thread_executor *ex)
{
    if (load_relaxed(&ex->nthreads) < ex->max_workers)
        __atomic_add_fetch(&ex->idle_tokens, 1, __ATOMIC_RELAXED);
}

/* Runs the function of a RUNNING future; the worker is done with it except for
 * completing it: time to say whether it will be idle. */
static bool before_completion(struct thread_executor *ex)
{
    if (queue_maybe_work(ex) || load_relaxed(&ex->phead) != &ex->stub)
        return false;
    give_idle_token(ex);
    return true;
}

static bool run_bytes(struct thread_executor *ex, struct worker *w, ps_future_t *f)
{
    if (!w->scratch)
        w->scratch = malloc(PS_TASK_BYTES_MAX);
    if (!w->scratch) {
        bool idle = before_completion(ex);
        future_complete_error(f, ENOMEM);
        return idle;
    }
    static const char empty[1];     /* never NULL, even for no input */
    const void *in = f->arg ? f->arg : empty;
    ssize_t n = f->fn.bytes(in, f->ext->inlen, w->scratch, PS_TASK_BYTES_MAX);
    bool idle = before_completion(ex);
    if (n > (ssize_t)PS_TASK_BYTES_MAX)
        future_complete_error(f, EMSGSIZE);     /* fn overran its buffer */
    else
        future_complete_bytes(f, w->scratch, n);
    return idle;
}

/* Runs f unless it was cancelled, then drops the queue's reference. True if it
 * gave an idle token. */
static bool run_task(struct thread_executor *ex, struct worker *w, ps_future_t *f)
{
    bool idle = false;
    if (future_set_running(f)) {
        if (f->kind == FUT_PTR) {
            void *result = f->fn.ptr(f->arg);
            idle = before_completion(ex);
            future_complete_ptr(f, result);
        } else {
            idle = run_bytes(ex, w, f);
        }
    }
    future_release(f);
    return idle;
}

static bool work_or_sealed(void *arg)
{
    struct thread_executor *ex = arg;
    return queue_maybe_work(ex) || load_relaxed(&ex->shutdown) == SEALED;
}

/* An idle worker polls the queue for a while before it sleeps. */
static void spin_for_work(struct thread_executor *ex)
{
    static const struct spin_policy spin = { WORK_SPINS, 1, MAX_BACKOFF, WORK_YIELDS };
    spin_until_ready(&spin, work_or_sealed, ex);
}

/* With the lock held and the queue found empty: sleeps until a submit or
 * shutdown wakes it, unless the re-check after counting itself sees work. */
static void sleep_for_work(struct thread_executor *ex, struct worker *w)
{
    w->next_sleeper = ex->sleepers;
    ex->sleepers = w;
    store_relaxed(&w->wake, 0);
    __atomic_add_fetch(&ex->nsleep, 1, __ATOMIC_SEQ_CST);
    if (!queue_empty(ex) || load_sc(&ex->shutdown) == SEALED) {
        ex->sleepers = w->next_sleeper;         /* still on top: we hold the lock */
        __atomic_sub_fetch(&ex->nsleep, 1, __ATOMIC_RELAXED);
        return;
    }
    qunlock(ex);
    while (load_acquire(&w->wake) == 0)
        futex_wait(&w->wake, 0, NULL, false);
    qlock(ex);
}

static void *worker_main(void *arg)
{
    struct worker *w = arg;
    struct thread_executor *ex = w->ex;
    current_worker = w;
    char name[16];
    snprintf(name, sizeof name, "psexec%u_%u", ex->id % 1000u, w->index % 1000u);
    pthread_setname_np(pthread_self(), name);

    /* As Python's Thread.start, the submit that started us waits until we run:
     * by then we have taken the oldest task. */
    qlock(ex);
    ps_future_t *first = mpsc_pop(ex);
    qunlock(ex);
    store_release(&w->started, 1);
    futex_wake(&w->started, 1, false);
    bool idle = first ? run_task(ex, w, first) : false;  /* gave a token since its last task */
    qlock(ex);
    for (;;) {
        ps_future_t *f = mpsc_pop(ex);
        if (f) {
            qunlock(ex);
            idle = run_task(ex, w, f);
            qlock(ex);
            continue;
        }
        if (!queue_empty(ex)) {         /* a push between its two steps */
            qunlock(ex);
            sched_yield();
            qlock(ex);
            continue;
        }
        if (load_acquire(&ex->shutdown) == SEALED)
            break;
        if (!idle) {
            give_idle_token(ex);
            idle = true;
        }
        qunlock(ex);
        spin_for_work(ex);
        qlock(ex);
        if (queue_empty(ex) && load_acquire(&ex->shutdown) != SEALED)
            sleep_for_work(ex, w);
    }
    store_relaxed(&ex->nthreads, ex->nthreads - 1);
    bool orphan = w->orphan;    /* only this thread sets it, from a task */
    qunlock(ex);
    free(w->scratch);
    w->scratch = NULL;
    current_worker = NULL;
    if (orphan) {
        executor_unref(&ex->base);
        free(w);
    }
    return NULL;
}

/* Starts worker number index (its place in nthreads is reserved) and waits
 * until it runs. Within a submit: shutdown waits for it to end. */
static int spawn(struct thread_executor *ex, unsigned index)
{
    void *mem;
    if (posix_memalign(&mem, 64, sizeof(struct worker)) != 0)
        return ENOMEM;
    struct worker *w = memset(mem, 0, sizeof(struct worker));
    w->ex = ex;
    w->index = index;
    int saved = errno;
    int err = pthread_create(&w->thread, NULL, worker_main, w);
    errno = saved;
    if (err) {
        free(w);
        return err;
    }
    qlock(ex);
    w->next = ex->workers;
    ex->workers = w;
    qunlock(ex);
    while (load_acquire(&w->started) == 0)
        futex_wait(&w->started, 0, NULL, false);
    return 0;
}

/* Python's _adjust_thread_count, while fewer than max_workers run: take an idle
 * token or start a thread. An error only if no worker exists at all. */
static int adjust_threads(struct thread_executor *ex)
{
    unsigned tokens = load_relaxed(&ex->idle_tokens);
    while (tokens > 0)
        if (__atomic_compare_exchange_n(&ex->idle_tokens, &tokens, tokens - 1, true,
                                        __ATOMIC_RELAXED, __ATOMIC_RELAXED))
            return 0;
    qlock(ex);
    bool room = ex->nthreads < ex->max_workers;
    unsigned index = ex->nstarted;
    if (room) {
        store_relaxed(&ex->nthreads, ex->nthreads + 1);
        ex->nstarted++;
    }
    qunlock(ex);
    if (!room)
        return 0;
    int err = spawn(ex, index);
    if (!err)
        return 0;
    qlock(ex);
    store_relaxed(&ex->nthreads, ex->nthreads - 1);
    bool none = ex->nthreads == 0;
    qunlock(ex);
    return none ? err : 0;      /* else the workers there are will run it */
}

static void wake_one(struct thread_executor *ex)
{
    qlock(ex);
    struct worker *w = ex->sleepers;
    if (w) {
        ex->sleepers = w->next_sleeper;
        __atomic_sub_fetch(&ex->nsleep, 1, __ATOMIC_RELAXED);
        store_release(&w->wake, 1);
    }
    qunlock(ex);
    if (w)
        futex_wake(&w->wake, 1, false);         /* an address only: see shutdown */
}

/* A cheap early look (enqueue decides): no future is made for a submit that
 * must fail, and none from the pool of a parent's executor. */
static bool submit_allowed(const struct thread_executor *ex)
{
    return load_relaxed(&ex->shutdown) == OPEN && !executor_exiting() &&
           !foreign(ex);
}

/* Queues f (two references: the caller's and the queue's). NULL + errno. */
static ps_future_t *enqueue(struct thread_executor *ex, ps_future_t *f)
{
    __atomic_add_fetch(&ex->producers, 1, __ATOMIC_SEQ_CST);
    if (load_sc(&ex->shutdown) != OPEN || executor_exiting() || foreign(ex)) {
        __atomic_sub_fetch(&ex->producers, 1, __ATOMIC_RELEASE);
        future_release(f);
        future_release(f);
        errno = ESHUTDOWN;
        return NULL;
    }
    mpsc_push(ex, f);
    int err = 0;
    if (load_relaxed(&ex->nthreads) < ex->max_workers)
        err = adjust_threads(ex);
    if (load_sc(&ex->nsleep) > 0)
        wake_one(ex);
    __atomic_sub_fetch(&ex->producers, 1, __ATOMIC_RELEASE);   /* the last access to ex */
    if (err && future_cancel(f)) {
        /* No thread could be started: the task would never run. It stays queued,
         * cancelled, until a worker or the executor's end drops it. (If the
         * cancel fails, a worker another submit started has taken it.) */
        future_release(f);
        errno = err;
        return NULL;
    }
    return f;
}

/* ---- shutdown and lifetime ---- */

static void join_workers(struct thread_executor *ex)
{
    pthread_mutex_lock(&ex->join_mutex);
    bool ours = ex->pid == getpid();    /* a forked child has none of the threads */
    qlock(ex);
    struct worker *list = ex->workers, *keep = NULL;
    ex->workers = NULL;
    qunlock(ex);
    while (list) {
        struct worker *next = list->next;
        if (list == current_worker) {
            list->next = keep;  /* never join ourselves */
            keep = list;
        } else {
            if (ours)
                pthread_join(list->thread, NULL);
            free(list);
        }
        list = next;
    }
    if (keep) {
        qlock(ex);
        keep->next = ex->workers;
        ex->workers = keep;
        qunlock(ex);
    }
    pthread_mutex_unlock(&ex->join_mutex);
}

static int thread_shutdown(struct thread_executor *ex, bool wait, bool cancel_futures)
{
    if (foreign(ex))
        return 0;               /* the parent's: nothing of it runs here */
    int saved = errno;
    unsigned open = OPEN;
    __atomic_compare_exchange_n(&ex->shutdown, &open, CLOSING, false, __ATOMIC_SEQ_CST,
                                __ATOMIC_SEQ_CST);
    while (load_sc(&ex->producers) != 0)
        sched_yield();          /* a submit finishing its push: a few instructions */
    store_release(&ex->shutdown, SEALED);
    ps_future_t *cancel = NULL, **link = &cancel;
    qlock(ex);
    if (cancel_futures) {
        ps_future_t *f;
        while ((f = mpsc_pop(ex))) {    /* no push is in progress any more */
            *link = f;
            link = &f->next;
        }
        *link = NULL;
    }
    struct worker *wake = ex->sleepers;
    ex->sleepers = NULL;
    store_relaxed(&ex->nsleep, 0);
    qunlock(ex);
    /* A sleeper may run, exit and be joined and freed as soon as its word is
     * set: read its link first, and after the store only wake the address. */
    while (wake) {
        struct worker *next = wake->next_sleeper;
        store_release(&wake->wake, 1);
        futex_wake(&wake->wake, 1, false);
        wake = next;
    }
    while (cancel) {
        ps_future_t *next = cancel->next;
        future_cancel(cancel);
        future_release(cancel);
        cancel = next;
    }
    if (wait)
        join_workers(ex);
    errno = saved;
    return 0;
}

static void executor_destroy(struct thread_executor *ex)
{
    /* Futures left: cancelled ones a failed submit left behind, and in a forked
     * child, whatever the parent's workers were to run. */
    ps_future_t *f;
    while ((f = mpsc_pop(ex))) {
        future_cancel(f);
        future_release(f);
    }
    while (ex->workers) {
        struct worker *next = ex->workers->next;
        free(ex->workers);
        ex->workers = next;
    }
    future_pool_close(ex->pool);
    pthread_mutex_destroy(&ex->join_mutex);
    free(ex);
}

void executor_ref(ps_executor_t *ex)
{
    __atomic_add_fetch(&ex->refs, 1, __ATOMIC_RELAXED);
}

void executor_unref(ps_executor_t *ex)
{
    if (__atomic_sub_fetch(&ex->refs, 1, __ATOMIC_ACQ_REL) == 0)
        ex->ops->destroy(ex);
}

static void thread_free(struct thread_executor *ex)
{
    if (foreign(ex))
        return;                 /* left as it is: its locks may be held */
    int saved = errno;
    thread_shutdown(ex, true, false);
    executor_unregister(&ex->base);
    struct worker *self = current_worker;
    if (self && self->ex == ex) {
        /* Freed by one of its own tasks: this worker becomes the holder of the
         * caller's reference and lets go of it when it leaves. */
        qlock(ex);
        for (struct worker **link = &ex->workers; *link; link = &(*link)->next) {
            if (*link == self) {
                *link = self->next;
                break;
            }
        }
        self->orphan = true;
        qunlock(ex);
        pthread_detach(pthread_self());
    } else {
        executor_unref(&ex->base);
    }
    errno = saved;
}

static struct thread_executor *thread_new(unsigned max_workers)
{
    struct thread_executor *ex;
    if (posix_memalign((void **)&ex, 64, sizeof *ex) != 0) {
        errno = ENOMEM;
        return NULL;
    }
    memset(ex, 0, sizeof *ex);
    ex->pool = future_pool_new();
    if (!ex->pool) {
        free(ex);
        errno = ENOMEM;
        return NULL;
    }
    ex->base.ops = &thread_ops;
    ex->phead = ex->ctail = &ex->stub;
    ex->max_workers = max_workers;
    ex->base.refs = 1;
    ex->pid = getpid();
    static unsigned next_id;
    ex->id = __atomic_fetch_add(&next_id, 1, __ATOMIC_RELAXED);
    ex->generation = executor_generation();
    pthread_mutex_init(&ex->join_mutex, NULL);
    executor_register(&ex->base);
    return ex;
}

/* ---- ops (a thread executor is reached directly; these keep the table whole) ---- */

static ps_future_t *thread_submit_bytes(struct thread_executor *ex, future_bytes_fn fn,
                                        const void *in, size_t inlen)
{
    if (!submit_allowed(ex)) {
        errno = ESHUTDOWN;
        return NULL;
    }
    ps_future_t *f = future_new(ex->pool, FUT_BYTES);
    if (!f)
        return NULL;
    if (inlen > 0) {
        f->arg = malloc(inlen);
        if (!f->arg) {
            future_release(f);
            future_release(f);
            errno = ENOMEM;
            return NULL;
        }
        memcpy(f->arg, in, inlen);
    }
    f->ext->inlen = inlen;
    f->fn.bytes = fn;
    return enqueue(ex, f);
}

static ps_future_t *op_submit_bytes(ps_executor_t *ex, future_bytes_fn fn, const void *in,
                                    size_t inlen)
{
    return thread_submit_bytes((struct thread_executor *)ex, fn, in, inlen);
}

static int op_shutdown(ps_executor_t *ex, bool wait, bool cancel_futures)
{
    return thread_shutdown((struct thread_executor *)ex, wait, cancel_futures);
}

static void op_free(ps_executor_t *ex)
{
    thread_free((struct thread_executor *)ex);
}

static void op_destroy(ps_executor_t *ex)
{
    executor_destroy((struct thread_executor *)ex);
}

static const struct executor_ops thread_ops = {
    .create = NULL,
    .submit_bytes = op_submit_bytes,
    .shutdown = op_shutdown,
    .free = op_free,
    .destroy = op_destroy,
};

/* ---- the public calls ---- */

ps_executor_t *ps_executor_new(unsigned max_workers, int flags)
{
    if (flags & ~PS_PROCESSES) {
        errno = EINVAL;
        return NULL;
    }
    if (max_workers == 0)
        max_workers = executor_default_workers();
    if (flags & PS_PROCESSES) {
        const struct executor_ops *ops = __atomic_load_n(&process_ops, __ATOMIC_ACQUIRE);
        if (!ops || !ops->create) {
            errno = ENOSYS;
            return NULL;
        }
        return ops->create(max_workers, flags);
    }
    struct thread_executor *ex = thread_new(max_workers);
    return ex ? &ex->base : NULL;
}

static struct thread_executor *as_thread(ps_executor_t *ex)
{
    return ex && ex->ops == &thread_ops ? (struct thread_executor *)ex : NULL;
}

ps_future_t *ps_executor_submit(ps_executor_t *ex, void *(*fn)(void *), void *arg)
{
    struct thread_executor *tex = as_thread(ex);
    if (!tex || !fn) {
        errno = EINVAL;
        return NULL;
    }
    if (!submit_allowed(tex)) {
        errno = ESHUTDOWN;      /* checked again when queueing */
        return NULL;
    }
    ps_future_t *f = future_new(tex->pool, FUT_PTR);
    if (!f)
        return NULL;
    f->fn.ptr = fn;
    f->arg = arg;
    return enqueue(tex, f);
}

ps_future_t *ps_executor_submit_bytes(ps_executor_t *ex,
        ssize_t (*fn)(const void *in, size_t inlen, void *out, size_t outcap),
        const void *in, size_t inlen)
{
    if (!ex || !fn || (!in && inlen > 0)) {
        errno = EINVAL;
        return NULL;
    }
    if (inlen > PS_TASK_BYTES_MAX) {
        errno = EMSGSIZE;
        return NULL;
    }
    return ex->ops->submit_bytes(ex, fn, in, inlen);
}

int ps_executor_map(ps_executor_t *ex, void *(*fn)(void *), void *const *args,
                    void **results, size_t n, double timeout)
{
    deadline_t d;
    struct thread_executor *tex = as_thread(ex);
    if (!tex || !fn || (n > 0 && !args) || deadline_from_timeout(timeout, &d) != 0)
        return EINVAL;
    if (n == 0)
        return 0;
    int saved = errno, err = 0;
    /* The futures wait in results[] until their values replace them. */
    void **slots = results;
    if (!slots) {
        slots = n <= SIZE_MAX / sizeof *slots ? malloc(n * sizeof *slots) : NULL;
        if (!slots) {
            errno = saved;
            return ENOMEM;
        }
    }
    size_t submitted = 0, collected = 0;
    for (; submitted < n; submitted++) {
        ps_future_t *f = ps_executor_submit(ex, fn, args[submitted]);
        if (!f) {
            err = errno;
            break;
        }
        slots[submitted] = f;
    }
    for (; !err && collected < submitted; collected++) {
        ps_future_t *f = slots[collected];
        err = future_wait(f, &d);
        if (!err && ps_future_cancelled(f))
            err = ESHUTDOWN;    /* shutdown(cancel_futures) took it */
        if (err)
            break;
        slots[collected] = f->result;
        future_release(f);
    }
    /* On failure: what has not started never will; running ones finish unseen. */
    for (size_t i = collected; i < submitted; i++) {
        ps_future_t *f = slots[i];
        future_cancel(f);
        future_release(f);
        slots[i] = NULL;
    }
    if (slots != results)
        free(slots);
    errno = saved;
    return err;
}

int ps_executor_shutdown(ps_executor_t *ex, bool wait, bool cancel_futures)
{
    if (!ex)
        return EINVAL;
    return ex->ops->shutdown(ex, wait, cancel_futures);
}

void ps_executor_free(ps_executor_t *ex)
{
    if (ex)
        ex->ops->free(ex);
}
