/* SPDX-License-Identifier: MIT */
/* The process executor: ps_executor_new(n, PS_PROCESSES), concurrent.futures'
 * ProcessPoolExecutor (and multiprocessing.Pool's apply_async) for bytes tasks.
 *
 * Shared memory
 *   One anonymous MAP_SHARED region made before any worker is forked: a header
 *   line (csleep: the collector is asleep and wants the eventfd) and one slot per
 *   worker, a ring of RING entries: the counters assigned (the collector's;
 *   also the futex word the worker sleeps on), started and done (the worker's),
 *   exit and wsleep (the worker sleeps and wants a FUTEX_WAKE); per entry the
 *   task's function pointer (workers are forked from this process, so it is
 *   valid there), its input's offset in the arena, its input and output sizes,
 *   how long it ran, and an output buffer of PS_TASK_BYTES_MAX (MAP_NORESERVE:
 *   only the pages a task touches are ever backed). Inputs live in a second
 *   shared region, the arena (arena.h), also mapped before any fork: submit
 *   copies the input there once, the worker reads it in place, and the
 *   executor frees it when it lets go of the task. The worker writes its output
 *   in its entry, and the collector copies it once into the future. One copy
 *   each way; no pipe, no feeder thread.
 *
 * The ring: collected <= done <= started <= assigned <= collected + RING
 *   Entries collected..assigned hold futures (RUNNING: handed over). The worker
 *   stores started before it calls fn and done after, so a worker found dead
 *   with started > done died running that task (EPIPE), and the entries from
 *   started on were never begun: they go to the next worker, as if queued. A
 *   worker is handed one task at a time, or up to RING while its last task ran
 *   under SHORT_TASK_NS: then it goes from one to the next without waiting for
 *   the collector, and the collector completes them in batches. (A long task
 *   is never queued behind another in a ring, so cancel stays exact for them;
 *   a short one handed ahead counts as started.)
 *
 * The collector
 *   One thread per executor, in the parent. Submits queue futures in parent
 *   memory (a FIFO under a mutex). The collector completes the futures of
 *   finished entries, fills the rings from the queue, and watches the workers'
 *   pidfds: a worker that exits or is killed is reaped, its tasks are settled
 *   as above, and a replacement is forked into its slot. While there is work
 *   the collector polls the rings (and the pidfds with a zero timeout every few
 *   rounds); when idle it sleeps in poll() on the pidfds plus an eventfd.
 *   Sleeping is a Dekker pair: the collector sets csleep and then re-checks the
 *   rings and the queue; a worker stores done and then reads csleep, a submit
 *   counts its task and then reads csleep, and only when it is set does either
 *   write the eventfd. Workers likewise spin a little, then set wsleep and
 *   FUTEX_WAIT on assigned; the collector calls FUTEX_WAKE only if wsleep was
 *   set. So while everyone is busy no system call is made per task.
 *
 *   Workers start on demand, as in Python's ProcessPoolExecutor: the first
 *   when the executor is made (so a system that cannot fork fails the
 *   create), another whenever a task waits and no worker is free, up to
 *   max_workers. A worker that dies is replaced at once; a failed fork is
 *   retried every RESPAWN_MS.
 *
 *   Every worker is forked by the collector thread, which lives as long as the
 *   executor: PR_SET_PDEATHSIG fires when the forking thread ends (PITFALLS 3),
 *   so workers die with the executor's process, never earlier. They check
 *   getppid() after arming it, and leave with _exit (no atexit handlers).
 *
 * Shutdown
 *   Sets the flag under the queue's mutex (later submits: ESHUTDOWN);
 *   cancel_futures cancels every pending future. The collector ends once the
 *   queue is empty and no task runs: it sets every slot's exit, wakes the
 *   workers and reaps them. wait joins the collector. As in Python, an
 *   executor not shut down when the program exits finishes its queued tasks
 *   (an atexit hook shuts down, with wait, every executor of this process). An
 *   executor made before a fork is the parent's: in the child it refuses
 *   submits, and shutdown and free leave it alone. */
#include "executor.h"

#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "arena.h"
#include "futex.h"

#define load_relaxed(p)     __atomic_load_n((p), __ATOMIC_RELAXED)
#define load_acquire(p)     __atomic_load_n((p), __ATOMIC_ACQUIRE)
#define load_sc(p)          __atomic_load_n((p), __ATOMIC_SEQ_CST)
#define store_relaxed(p, v) __atomic_store_n((p), (v), __ATOMIC_RELAXED)
#define store_release(p, v) __atomic_store_n((p), (v), __ATOMIC_RELEASE)
#define store_sc(p, v)      __atomic_store_n((p), (v), __ATOMIC_SEQ_CST)

#define WORKER_SPINS    20000   /* polls of its ring before a worker sleeps */
#define COLLECT_SPINS   20000   /* idle rounds of the collector before it sleeps */
#define DEATH_EVERY     64      /* busy rounds between looks at the pidfds */
#define RESPAWN_MS      50      /* retry period while a fork fails */
#define RING            8       /* tasks a worker may be handed at once... */
#define SHORT_TASK_NS   20000   /* ...while its last one took less than this */

struct shared_header {
    unsigned csleep;            /* the collector sleeps in poll: write the eventfd */
} __attribute__((aligned(64)));

struct entry {
    future_bytes_fn fn;
    uint64_t in_off;            /* the input's place in the arena */
    size_t inlen;
    ssize_t outlen;             /* what fn returned */
    uint64_t took_ns;           /* how long fn ran */
};

struct slot {
    unsigned assigned;          /* futex word: tasks handed over (collector) */
    unsigned exit;              /* leave once the ring is empty (collector) */
    unsigned wsleep;            /* the worker sleeps on assigned: FUTEX_WAKE it */
    __attribute__((aligned(64))) unsigned started;  /* tasks begun (worker) */
    unsigned done;              /* tasks finished (worker) */
    __attribute__((aligned(64))) struct entry e[RING];
    __attribute__((aligned(4096))) unsigned char out[RING][PS_TASK_BYTES_MAX];
};

struct proc_worker {
    pid_t pid;                  /* 0: never started; -1: died, to be replaced */
    int pidfd;
    unsigned assigned;          /* our copy of the slot's */
    unsigned collected;         /* entries completed into their futures */
    bool short_tasks;           /* its last task was short: hand it RING at once */
    ps_future_t *task[RING];    /* the futures of entries collected..assigned */
};

struct proc_executor {
    struct ps_executor base;
    unsigned n;
    void *map;
    size_t maplen;
    struct shared_header *hdr;
    struct slot *slots;
    struct arena arena;         /* the tasks' inputs */
    struct proc_worker *workers;
    struct pollfd *pfds;        /* [0]: eventfd, [1 + i]: worker i's pidfd */
    int efd;
    unsigned generation;        /* executor_generation() where it was made */
    pthread_t collector;
    pthread_mutex_t mutex;      /* the queue, the shutdown flag */
    ps_future_t *head, *tail;
    unsigned nqueued;           /* futures in the queue (seq_cst: the Dekker pair) */
    ps_future_t *retry;         /* collector: tasks whose worker died before it
                                   started them (already RUNNING), linked by next */
    unsigned shutdown;
    unsigned finished;          /* the collector has ended */
    pthread_mutex_t join_mutex;
    bool joined;
    bool orphan;                /* freed from its own collector (a callback) */
    unsigned started;           /* futex word: collector made its first workers */
    uint64_t fork_retry_ns;     /* collector: no fork before (one failed) */
    int start_err;
};

static const struct executor_ops proc_ops;

static int proc_shutdown(struct proc_executor *ex, bool wait, bool cancel_futures);

/* Made by another process (this one was forked after): not ours to use. */
static bool foreign(const struct proc_executor *ex)
{
    return ex->generation != executor_generation();   /* no system call per submit */
}

static uint64_t monotonic_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

/* ---- the worker process ---- */

static void kick(int efd)
{
    uint64_t one = 1;
    ssize_t r = write(efd, &one, sizeof one);
    (void)r;                    /* EAGAIN: the counter is far from empty */
}

/* Runs entry k of the ring. started is stored before fn runs: a worker found
 * dead with started > done died running that task. */
static void run_entry(struct proc_executor *ex, struct slot *s, unsigned k)
{
    struct entry *e = &s->e[k % RING];
    store_relaxed(&s->started, k + 1);
    uint64_t t0 = monotonic_ns();
    ssize_t n = e->fn(ex->arena.base + e->in_off, e->inlen, s->out[k % RING], PS_TASK_BYTES_MAX);
    e->took_ns = monotonic_ns() - t0;
    e->outlen = n > (ssize_t)PS_TASK_BYTES_MAX ? -EMSGSIZE : n;   /* fn overran */
    store_sc(&s->done, k + 1);
    if (load_sc(&ex->hdr->csleep))
        kick(ex->efd);
}

static _Noreturn void worker_main(struct proc_executor *ex, unsigned i, pid_t parent)
{
    prctl(PR_SET_PDEATHSIG, SIGKILL);
    if (getppid() != parent)
        _exit(1);
    sigset_t none;
    sigemptyset(&none);
    pthread_sigmask(SIG_SETMASK, &none, NULL);
    struct slot *s = &ex->slots[i];
    unsigned k = load_relaxed(&s->started);
    for (;;) {
        unsigned a = load_acquire(&s->assigned);
        if (k != a) {
            run_entry(ex, s, k++);
            continue;
        }
        if (load_acquire(&s->exit))
            _exit(0);
        for (int spin = 0; spin < WORKER_SPINS && load_relaxed(&s->assigned) == a; spin++)
            cpu_relax();
        if (load_relaxed(&s->assigned) != a)
            continue;
        /* Sleep: announce it, then look once more (the Dekker pair with hand_over). */
        store_sc(&s->wsleep, 1);
        if (load_sc(&s->assigned) == a && !load_sc(&s->exit))
            futex_wait(&s->assigned, a, NULL, true);
        store_relaxed(&s->wsleep, 0);
    }
}

/* ---- the collector ---- */

/* Publishes worker i's new entries (or its exit), waking it if it sleeps. */
static void hand_over(struct proc_executor *ex, unsigned i)
{
    struct slot *s = &ex->slots[i];
    store_sc(&s->assigned, ex->workers[i].assigned);
    if (load_sc(&s->wsleep))    /* only the worker clears it (else a lost wakeup) */
        futex_wake(&s->assigned, 1, true);
}

/* Forks the worker of slot i (from the collector thread only) with an empty ring. */
static int spawn(struct proc_executor *ex, unsigned i)
{
    struct slot *s = &ex->slots[i];
    struct proc_worker *w = &ex->workers[i];
    w->assigned = w->collected = 0;
    s->assigned = s->started = s->done = s->exit = s->wsleep = 0;
    pid_t parent = getpid();
    pid_t pid = fork();
    if (pid < 0)
        return errno;
    if (pid == 0)
        worker_main(ex, i, parent);
    int fd = (int)syscall(SYS_pidfd_open, pid, 0);
    if (fd < 0) {
        int err = errno;
        kill(pid, SIGKILL);
        waitpid(pid, NULL, 0);
        return err;
    }
    w->pid = pid;
    w->pidfd = fd;
    ex->pfds[1 + i].fd = fd;
    return 0;
}

/* spawn, but no sooner than RESPAWN_MS after a fork failed: a system out of
 * processes gets one attempt per period, not a storm. */
static int try_spawn(struct proc_executor *ex, unsigned i)
{
    if (ex->fork_retry_ns && monotonic_ns() < ex->fork_retry_ns)
        return EAGAIN;
    int err = spawn(ex, i);
    ex->fork_retry_ns = err ? monotonic_ns() + RESPAWN_MS * 1000000ull : 0;
    return err;
}

static ps_future_t *queue_pop(struct proc_executor *ex)
{
    if (load_relaxed(&ex->nqueued) == 0)
        return NULL;
    pthread_mutex_lock(&ex->mutex);
    ps_future_t *f = ex->head;
    if (f) {
        ex->head = f->next;
        if (!ex->head)
            ex->tail = NULL;
        __atomic_sub_fetch(&ex->nqueued, 1, __ATOMIC_SEQ_CST);
    }
    pthread_mutex_unlock(&ex->mutex);
    return f;
}

/* Drops the executor's reference to a task it took, and frees its input. */
static void task_release(struct proc_executor *ex, ps_future_t *f)
{
    if (f->ext->exec_data)
        arena_free(&ex->arena, f->ext->exec_data, f->ext->inlen);
    f->ext->exec_data = NULL;
    future_release(f);
}

/* Where a task's input is in the arena (0 for no input: the worker gets a valid
 * pointer to no bytes). */
static uint64_t in_offset(struct proc_executor *ex, ps_future_t *f)
{
    unsigned char *chunk = f->ext->exec_data;
    return chunk ? (uint64_t)(chunk - ex->arena.base) : 0;
}

/* Completes worker i's finished entries up to done. True if there were any. */
static bool collect(struct proc_executor *ex, unsigned i, unsigned done)
{
    struct proc_worker *w = &ex->workers[i];
    struct slot *s = &ex->slots[i];
    if (w->collected == done)
        return false;
    for (; w->collected != done; w->collected++) {
        unsigned k = w->collected % RING;
        ps_future_t *f = w->task[k];
        w->task[k] = NULL;
        w->short_tasks = s->e[k].took_ns < SHORT_TASK_NS;
        future_complete_bytes(f, s->out[k], s->e[k].outlen);
        task_release(ex, f);
    }
    return true;
}

/* Tasks for the collector to hand out (its own view: seq_cst for the Dekker pair). */
static bool work_waiting(struct proc_executor *ex)
{
    return ex->retry || load_sc(&ex->nqueued) > 0;
}

/* The next task to start: one a dead worker never started, else the oldest
 * queued one that is not cancelled. */
static ps_future_t *next_task(struct proc_executor *ex)
{
    ps_future_t *f = ex->retry;
    if (f) {
        ex->retry = f->next;
        return f;
    }
    while ((f = queue_pop(ex))) {
        if (future_set_running(f))
            return f;
        task_release(ex, f);    /* cancelled */
    }
    return NULL;
}

/* Fills worker i's ring: one task at a time, or RING while its tasks are
 * short (then the worker need not wait for us between them). True if any. */
static bool assign(struct proc_executor *ex, unsigned i)
{
    struct proc_worker *w = &ex->workers[i];
    unsigned room = w->short_tasks ? RING : 1;
    bool any = false;
    ps_future_t *f;
    while (w->assigned - w->collected < room && (f = next_task(ex))) {
        struct entry *e = &ex->slots[i].e[w->assigned % RING];
        e->fn = f->fn.bytes;
        e->inlen = f->ext->inlen;
        e->in_off = in_offset(ex, f);
        w->task[w->assigned++ % RING] = f;
        any = true;
    }
    if (any)
        hand_over(ex, i);
    return any;
}

/* Worker i died: what it finished is collected, the task it was running fails
 * with EPIPE, and those it never started go to the next worker. */
static void tasks_of_dead_worker(struct proc_executor *ex, unsigned i)
{
    struct proc_worker *w = &ex->workers[i];
    struct slot *s = &ex->slots[i];
    unsigned done = load_acquire(&s->done), started = load_acquire(&s->started);
    collect(ex, i, done);
    if (started != done) {
        ps_future_t *f = w->task[done % RING];
        w->task[done % RING] = NULL;
        w->collected++;
        future_complete_error(f, EPIPE);
        task_release(ex, f);
    }
    while (w->assigned != w->collected) {      /* newest first: the oldest ends up in front */
        unsigned k = --w->assigned % RING;
        w->task[k]->next = ex->retry;
        ex->retry = w->task[k];
        w->task[k] = NULL;
    }
}

/* Reaps the workers that ended (see tasks_of_dead_worker). Forks replacements
 * unless the executor is winding down. True if anything changed. */
static bool check_deaths(struct proc_executor *ex, int timeout_ms, bool *missing)
{
    int r = poll(ex->pfds, ex->n + 1, timeout_ms);
    bool changed = false;
    if (r > 0 && ex->pfds[0].revents) {
        uint64_t v;
        ssize_t got = read(ex->efd, &v, sizeof v);
        (void)got;
    }
    *missing = false;
    for (unsigned i = 0; i < ex->n; i++) {
        struct proc_worker *w = &ex->workers[i];
        if (w->pid > 0 && r > 0 && ex->pfds[1 + i].revents) {
            siginfo_t si;
            memset(&si, 0, sizeof si);
            int rc = waitid(P_PIDFD, (id_t)w->pidfd, &si, WEXITED | WNOHANG);
            if (rc != 0 ? errno != ECHILD : si.si_pid == 0)
                continue;   /* not ended after all (ECHILD: reaped elsewhere) */
            close(w->pidfd);
            w->pidfd = -1;
            w->pid = -1;
            ex->pfds[1 + i].fd = -1;
            tasks_of_dead_worker(ex, i);
            changed = true;
        }
        if (w->pid < 0) {
            if (load_acquire(&ex->shutdown) && !work_waiting(ex))
                continue;       /* winding down: no replacement needed */
            if (try_spawn(ex, i) != 0)
                *missing = true;
            else
                changed = true;
        }
    }
    return changed;
}

static bool any_running(struct proc_executor *ex)
{
    for (unsigned i = 0; i < ex->n; i++)
        if (ex->workers[i].assigned != ex->workers[i].collected)
            return true;
    return false;
}

static bool any_free_alive(struct proc_executor *ex)
{
    for (unsigned i = 0; i < ex->n; i++)
        if (ex->workers[i].pid > 0 && ex->workers[i].assigned == ex->workers[i].collected)
            return true;
    return false;
}

/* A slot whose worker was never started, or -1 (max_workers run already). */
static int unstarted_slot(struct proc_executor *ex)
{
    for (unsigned i = 0; i < ex->n; i++)
        if (ex->workers[i].pid == 0)
            return (int)i;
    return -1;
}

/* Python's _adjust_process_count: a task waits and no worker is free, so start
 * one more, up to max_workers. Returns 1 if it did, 0 if none was needed, -1 if
 * the fork failed (the caller retries later). */
static int grow(struct proc_executor *ex)
{
    if (!work_waiting(ex) || any_free_alive(ex))
        return 0;
    int i = unstarted_slot(ex);
    if (i < 0)
        return 0;
    return try_spawn(ex, (unsigned)i) == 0 ? 1 : -1;
}

/* One pass over the workers: collect and assign. True if anything happened. */
static bool round_once(struct proc_executor *ex)
{
    bool progress = false;
    for (unsigned i = 0; i < ex->n; i++) {
        if (ex->workers[i].pid <= 0)
            continue;
        progress |= collect(ex, i, load_acquire(&ex->slots[i].done));
        if (ex->retry || load_relaxed(&ex->nqueued) > 0)
            progress |= assign(ex, i);
    }
    return progress;
}

/* Some worker finished a task we have not collected (seq_cst: the Dekker pair). */
static bool any_done(struct proc_executor *ex)
{
    for (unsigned i = 0; i < ex->n; i++)
        if (ex->workers[i].pid > 0 && load_sc(&ex->slots[i].done) != ex->workers[i].collected)
            return true;
    return false;
}

static void collector_finish(struct proc_executor *ex)
{
    for (unsigned i = 0; i < ex->n; i++) {
        if (ex->workers[i].pid > 0) {
            store_sc(&ex->slots[i].exit, 1);
            hand_over(ex, i);
        }
    }
    for (unsigned i = 0; i < ex->n; i++) {
        struct proc_worker *w = &ex->workers[i];
        if (w->pid <= 0)
            continue;
        siginfo_t si;
        while (waitid(P_PIDFD, (id_t)w->pidfd, &si, WEXITED) != 0 && errno == EINTR)
            ;
        close(w->pidfd);
        w->pidfd = -1;
        w->pid = -1;
    }
}

static void *collector_main(void *arg)
{
    struct proc_executor *ex = arg;
    /* One worker at once, so that a system that cannot fork fails the create;
     * the others start on demand. */
    ex->start_err = spawn(ex, 0);
    store_release(&ex->started, 1);
    futex_wake(&ex->started, 1, false);
    if (ex->start_err)
        return NULL;            /* create fails and joins us */

    unsigned rounds = 0, idle = 0;
    bool missing = false;       /* a fork failed: retry every RESPAWN_MS */
    for (;;) {
        bool progress = round_once(ex);
        if (++rounds % DEATH_EVERY == 0 || missing)
            progress |= check_deaths(ex, 0, &missing);
        int grown = grow(ex);
        progress |= grown > 0;
        missing |= grown < 0;
        if (progress) {
            idle = 0;
            continue;
        }
        if (load_acquire(&ex->shutdown) && !work_waiting(ex) && !any_running(ex))
            break;
        if (idle++ < COLLECT_SPINS) {
            cpu_relax();
            continue;
        }
        /* Sleep: announce it, then look once more (the Dekker pair). */
        store_sc(&ex->hdr->csleep, 1);
        bool work = any_done(ex);
        if (work_waiting(ex) && (any_free_alive(ex) || (!missing && unstarted_slot(ex) >= 0)))
            work = true;
        if (load_sc(&ex->shutdown))
            work = work || (!work_waiting(ex) && !any_running(ex));
        if (!work)
            check_deaths(ex, missing ? RESPAWN_MS : -1, &missing);
        store_relaxed(&ex->hdr->csleep, 0);
        idle = 0;
    }
    collector_finish(ex);
    store_release(&ex->finished, 1);
    bool orphan = load_acquire(&ex->orphan);
    if (orphan) {
        pthread_detach(pthread_self());
        executor_unref(&ex->base);
    }
    return NULL;
}

/* ---- the executor ---- */

static void proc_destroy(struct proc_executor *ex)
{
    ps_future_t *f;
    while ((f = ex->head)) {   /* a foreign executor's leftovers */
        ex->head = f->next;
        future_cancel(f);
        task_release(ex, f);
    }
    if (ex->efd >= 0)
        close(ex->efd);
    if (ex->map)
        munmap(ex->map, ex->maplen);
    arena_destroy(&ex->arena);
    free(ex->workers);
    free(ex->pfds);
    pthread_mutex_destroy(&ex->mutex);
    pthread_mutex_destroy(&ex->join_mutex);
    free(ex);
}

static ps_executor_t *proc_create(unsigned max_workers, int flags)
{
    (void)flags;
    int saved = errno;
    struct proc_executor *ex = calloc(1, sizeof *ex);
    if (!ex) {
        errno = ENOMEM;
        return NULL;
    }
    ex->base.ops = &proc_ops;
    ex->n = max_workers;
    ex->efd = -1;
    ex->base.refs = 1;
    ex->generation = executor_generation();
    pthread_mutex_init(&ex->mutex, NULL);
    pthread_mutex_init(&ex->join_mutex, NULL);
    int err = ENOMEM;
    ex->workers = calloc(max_workers, sizeof *ex->workers);
    ex->pfds = calloc((size_t)max_workers + 1, sizeof *ex->pfds);
    if (!ex->workers || !ex->pfds)
        goto fail;
    ex->maplen = sizeof(struct slot) * ((size_t)max_workers + 1);
    ex->map = mmap(NULL, ex->maplen, PROT_READ | PROT_WRITE,
                   MAP_SHARED | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    if (ex->map == MAP_FAILED) {
        ex->map = NULL;
        goto fail;
    }
    if ((err = arena_init(&ex->arena)) != 0)
        goto fail;
    ex->hdr = ex->map;
    ex->slots = (struct slot *)ex->map + 1;     /* the header gets a slot's room */
    ex->efd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    if (ex->efd < 0) {
        err = errno;
        goto fail;
    }
    ex->pfds[0].fd = ex->efd;
    ex->pfds[0].events = POLLIN;
    for (unsigned i = 0; i < max_workers; i++) {
        ex->workers[i].pidfd = -1;
        ex->pfds[1 + i].fd = -1;
        ex->pfds[1 + i].events = POLLIN;
    }
    /* The collector takes no signals: the program's handlers run elsewhere. */
    sigset_t all, old;
    sigfillset(&all);
    pthread_sigmask(SIG_SETMASK, &all, &old);
    err = pthread_create(&ex->collector, NULL, collector_main, ex);
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    if (err)
        goto fail;
    while (load_acquire(&ex->started) == 0)
        futex_wait(&ex->started, 0, NULL, false);
    if (ex->start_err) {
        err = ex->start_err;
        pthread_join(ex->collector, NULL);
        goto fail;
    }
    executor_register(&ex->base);
    errno = saved;
    return &ex->base;
fail:
    proc_destroy(ex);
    errno = err;
    return NULL;
}

/* A submit that cannot queue f: both references go, and errno is err. */
static ps_future_t *submit_failed(struct proc_executor *ex, ps_future_t *f, int err)
{
    future_release(f);          /* the caller's */
    task_release(ex, f);        /* the executor's, and the input */
    errno = err;
    return NULL;
}

static ps_future_t *proc_submit_bytes(ps_executor_t *base, future_bytes_fn fn, const void *in,
                                      size_t inlen)
{
    struct proc_executor *ex = (struct proc_executor *)base;
    if (load_relaxed(&ex->shutdown) || executor_exiting() || foreign(ex)) {
        errno = ESHUTDOWN;
        return NULL;
    }
    ps_future_t *f = future_new_bytes();
    if (!f)
        return NULL;
    f->ext->inlen = inlen;
    f->fn.bytes = fn;
    f->next = NULL;
    if (inlen > 0) {
        f->ext->exec_data = arena_alloc(&ex->arena, inlen);
        if (!f->ext->exec_data)
            return submit_failed(ex, f, ENOMEM);
        memcpy(f->ext->exec_data, in, inlen);   /* the one copy on the way in */
    }
    pthread_mutex_lock(&ex->mutex);
    if (ex->shutdown || executor_exiting()) {
        pthread_mutex_unlock(&ex->mutex);
        return submit_failed(ex, f, ESHUTDOWN);
    }
    if (ex->tail)
        ex->tail->next = f;
    else
        ex->head = f;
    ex->tail = f;
    __atomic_add_fetch(&ex->nqueued, 1, __ATOMIC_SEQ_CST);
    if (load_sc(&ex->hdr->csleep))
        kick(ex->efd);
    pthread_mutex_unlock(&ex->mutex);
    return f;
}

static int proc_shutdown(struct proc_executor *ex, bool wait, bool cancel_futures)
{
    if (foreign(ex))
        return 0;
    int saved = errno;
    ps_future_t *cancel = NULL;
    pthread_mutex_lock(&ex->mutex);
    store_sc(&ex->shutdown, 1);
    if (cancel_futures) {
        cancel = ex->head;
        ex->head = ex->tail = NULL;
        store_sc(&ex->nqueued, 0);
    }
    kick(ex->efd);
    pthread_mutex_unlock(&ex->mutex);
    while (cancel) {
        ps_future_t *next = cancel->next;
        future_cancel(cancel);
        task_release(ex, cancel);
        cancel = next;
    }
    if (wait && !pthread_equal(pthread_self(), ex->collector)) {
        pthread_mutex_lock(&ex->join_mutex);
        if (!ex->joined) {
            pthread_join(ex->collector, NULL);
            ex->joined = true;
        }
        pthread_mutex_unlock(&ex->join_mutex);
    }
    errno = saved;
    return 0;
}

static int op_shutdown(ps_executor_t *ex, bool wait, bool cancel_futures)
{
    return proc_shutdown((struct proc_executor *)ex, wait, cancel_futures);
}

static void op_free(ps_executor_t *base)
{
    struct proc_executor *ex = (struct proc_executor *)base;
    if (foreign(ex))
        return;                 /* the parent's: left alone */
    int saved = errno;
    executor_unregister(&ex->base);
    if (pthread_equal(pthread_self(), ex->collector)) {
        /* From a done callback: the collector lets go when it ends. */
        proc_shutdown(ex, false, false);
        store_release(&ex->orphan, true);
    } else {
        proc_shutdown(ex, true, false);
        executor_unref(&ex->base);
    }
    errno = saved;
}

static void op_destroy(ps_executor_t *ex)
{
    proc_destroy((struct proc_executor *)ex);
}

static const struct executor_ops proc_ops = {
    .create = proc_create,
    .submit_bytes = proc_submit_bytes,
    .shutdown = op_shutdown,
    .free = op_free,
    .destroy = op_destroy,
};

__attribute__((constructor)) static void proc_register(void)
{
    executor_register_process(&proc_ops);
}
