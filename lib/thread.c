/* SPDX-License-Identifier: MIT */
/* Thread: threading.Thread.
 *
 * Each ps_thread_t has a mutex and a CLOCK_MONOTONIC condvar guarding its state
 * (NEW -> RUNNING -> DONE). join waits for DONE, then reaps the OS thread once.
 * ps_thread_free of a running thread marks it orphaned and detaches it: the thread
 * frees its own object when it finishes.
 *
 * Python joins non-daemon threads at interpreter exit; we do it in an atexit
 * handler that waits until the registry's count of running non-daemon threads
 * drops to zero. The registry belongs to one process: a forked child starts with
 * an empty one (pthread_atfork), so a child that calls exit never waits for its
 * parent's threads.
 *
 * ps_current_thread promises never to return NULL, so the objects of threads
 * pysync did not start (main and foreign threads) are never allocated: see the
 * end of this file. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <pysync/threading.h>

#include "thread.h"
#include "timing.h"

enum state { NEW, RUNNING, DONE };

/* ps_thread(3): at most 63 bytes of a name are kept. A buffer inside the object
 * also spares an allocation that could fail. */
#define NAME_SIZE 64

struct ps_thread {
    pthread_mutex_t mutex;
    pthread_cond_t changed;     /* broadcast when state becomes DONE */
    enum state state;
    bool daemon, reaped, orphaned, adopted;   /* adopted: main or foreign thread */
    void *(*target)(void *);
    void *arg;
    void *result;
    pthread_t handle;
    unsigned long ident;
    char name[NAME_SIZE];
};

static __thread ps_thread_t *current;

/* ---- registry of running non-daemon threads ---- */

static struct {
    pthread_mutex_t mutex;
    pthread_cond_t changed;
    unsigned running;
} registry = { PTHREAD_MUTEX_INITIALIZER, PTHREAD_COND_INITIALIZER, 0 };

void join_non_daemon_threads(void)
{
    /* exit() called from a non-daemon thread must not wait for itself. */
    unsigned self = current && !current->adopted && !current->daemon ? 1 : 0;
    pthread_mutex_lock(&registry.mutex);
    while (registry.running > self)
        pthread_cond_wait(&registry.changed, &registry.mutex);
    pthread_mutex_unlock(&registry.mutex);
}

/* The forking thread is the child's main thread now, and not in its registry:
 * it is adopted afresh (as Python's _after_fork makes it the main thread). */
static void registry_reset_in_child(void)
{
    pthread_mutex_init(&registry.mutex, NULL);
    pthread_cond_init(&registry.changed, NULL);
    registry.running = 0;
    current = NULL;
}

static void registry_setup(void)
{
    pthread_atfork(NULL, NULL, registry_reset_in_child);
    atexit(join_non_daemon_threads);
}

static void registry_add(int delta)
{
    pthread_mutex_lock(&registry.mutex);
    registry.running += delta;
    pthread_cond_broadcast(&registry.changed);
    pthread_mutex_unlock(&registry.mutex);
}

/* ---- objects ---- */

static void set_name(ps_thread_t *t, const char *name)
{
    size_t len = strnlen(name, sizeof t->name - 1);    /* never reads past the cut */
    memcpy(t->name, name, len);
    t->name[len] = '\0';
}

/* join's timeouts are measured on CLOCK_MONOTONIC, so its condvar must be too. */
static int monotonic_cond_init(pthread_cond_t *cond)
{
    pthread_condattr_t attr;
    int err = pthread_condattr_init(&attr);
    if (err)
        return err;
    err = pthread_condattr_setclock(&attr, CLOCK_MONOTONIC);
    if (!err)
        err = pthread_cond_init(cond, &attr);
    pthread_condattr_destroy(&attr);
    return err;
}

/* On failure nothing is left to destroy. */
static int sync_init(ps_thread_t *t)
{
    int err = pthread_mutex_init(&t->mutex, NULL);
    if (err)
        return err;
    err = monotonic_cond_init(&t->changed);
    if (err)
        pthread_mutex_destroy(&t->mutex);
    return err;
}

/* Only for objects made by thread_alloc. */
static void thread_release(ps_thread_t *t)
{
    pthread_cond_destroy(&t->changed);
    pthread_mutex_destroy(&t->mutex);
    free(t);
}

static ps_thread_t *thread_alloc(const char *name)
{
    ps_thread_t *t = calloc(1, sizeof *t);
    if (!t)
        return NULL;
    int err = sync_init(t);
    if (err) {
        free(t);
        errno = err;
        return NULL;
    }
    set_name(t, name);
    return t;
}

ps_thread_t *ps_thread_new(void *(*target)(void *), void *arg, const char *name)
{
    static unsigned counter;
    char buf[32];
    if (!target) {
        errno = EINVAL;
        return NULL;
    }
    if (!name) {
        snprintf(buf, sizeof buf, "Thread-%u", __atomic_add_fetch(&counter, 1, __ATOMIC_RELAXED));
        name = buf;
    }
    ps_thread_t *t = thread_alloc(name);
    if (t) {
        t->target = target;
        t->arg = arg;
        t->daemon = current && current->daemon;  /* inherited, as in Python */
    }
    return t;
}

int ps_thread_set_daemon(ps_thread_t *t, bool daemon)
{
    if (!t)
        return EINVAL;
    pthread_mutex_lock(&t->mutex);
    int err = t->state == NEW && !t->adopted ? 0 : EINVAL;
    if (!err)
        __atomic_store_n(&t->daemon, daemon, __ATOMIC_RELAXED);
    pthread_mutex_unlock(&t->mutex);
    return err;
}

bool ps_thread_daemon(const ps_thread_t *t)
{
    /* Atomic: set_daemon may store it (under the mutex) at the same time. */
    return t && __atomic_load_n(&t->daemon, __ATOMIC_RELAXED);
}

/* Runs last in every pysync thread, also after pthread_exit. */
static void finish(void *p)
{
    ps_thread_t *t = p;
    if (!t->daemon)
        registry_add(-1);
    pthread_mutex_lock(&t->mutex);
    t->state = DONE;
    bool orphaned = t->orphaned;
    pthread_cond_broadcast(&t->changed);
    pthread_mutex_unlock(&t->mutex);
    if (orphaned)
        thread_release(t);
}

static void *trampoline(void *p)
{
    ps_thread_t *t = p;
    current = t;
    __atomic_store_n(&t->ident, (unsigned long)pthread_self(), __ATOMIC_RELAXED);
    void *result = NULL;
    pthread_cleanup_push(finish, t);
    result = t->target(t->arg);
    t->result = result;         /* read by joiners only after DONE, under the mutex */
    pthread_cleanup_pop(1);
    return NULL;
}

int ps_thread_start(ps_thread_t *t)
{
    static pthread_once_t once = PTHREAD_ONCE_INIT;
    if (!t)
        return EINVAL;
    pthread_mutex_lock(&t->mutex);
    int err = t->state == NEW && !t->adopted ? 0 : EINVAL;
    if (!err) {
        if (!t->daemon) {
            pthread_once(&once, registry_setup);
            registry_add(1);
        }
        t->state = RUNNING;
        int saved = errno;          /* pthread_create may leave errno changed */
        err = pthread_create(&t->handle, NULL, trampoline, t);
        errno = saved;
        if (err) {
            t->state = NEW;
            if (!t->daemon)
                registry_add(-1);
        } else {
            __atomic_store_n(&t->ident, (unsigned long)t->handle, __ATOMIC_RELAXED);
        }
    }
    pthread_mutex_unlock(&t->mutex);
    return err;
}

/* Called with t->mutex held once t is DONE. */
static void reap(ps_thread_t *t)
{
    if (!t->reaped) {
        t->reaped = true;
        pthread_join(t->handle, NULL);
    }
}

int ps_thread_join(ps_thread_t *t, double timeout, void **result)
{
    deadline_t d;
    if (!t || deadline_from_timeout(timeout, &d) != 0)
        return EINVAL;
    if (t == current || (t->adopted && pthread_equal(t->handle, pthread_self())))
        return EDEADLK;
    pthread_mutex_lock(&t->mutex);
    int err = t->state == NEW || t->adopted ? EINVAL : 0;
    while (!err && t->state != DONE) {
        if (d.forever)
            pthread_cond_wait(&t->changed, &t->mutex);
        else if (pthread_cond_timedwait(&t->changed, &t->mutex, &d.at) == ETIMEDOUT)
            err = t->state == DONE ? 0 : ETIMEDOUT;
    }
    if (!err) {
        reap(t);
        if (result)
            *result = t->result;
    }
    pthread_mutex_unlock(&t->mutex);
    return err;
}

bool ps_thread_is_alive(const ps_thread_t *t)
{
    if (!t)
        return false;
    ps_thread_t *mt = (ps_thread_t *)t;
    pthread_mutex_lock(&mt->mutex);
    bool alive = mt->state == RUNNING;
    pthread_mutex_unlock(&mt->mutex);
    return alive;
}

const char *ps_thread_name(const ps_thread_t *t)
{
    return t ? t->name : NULL;
}

unsigned long ps_thread_ident(const ps_thread_t *t)
{
    return t ? __atomic_load_n(&t->ident, __ATOMIC_RELAXED) : 0;
}

void ps_thread_free(ps_thread_t *t)
{
    if (!t || t->adopted)
        return;
    pthread_mutex_lock(&t->mutex);
    if (t->state == RUNNING) {
        t->orphaned = true;
        pthread_detach(t->handle);
        pthread_mutex_unlock(&t->mutex);
        return;
    }
    if (t->state == DONE)
        reap(t);
    pthread_mutex_unlock(&t->mutex);
    thread_release(t);
}

/* ---- threads pysync did not start ----
 *
 * Their objects need no allocation, so ps_current_thread cannot fail: the main
 * thread's is static, a foreign thread's is in that thread's own thread-local
 * storage and so lives exactly until the thread exits. Nobody can join them, so
 * their condvar is never waited on and the default clock does for it. */

static ps_thread_t main_thread;
static __thread ps_thread_t dummy;

/* Builds t from scratch: nobody else can see it yet. (In a child forked by another
 * thread, the copy of main_thread may hold a lock taken by a thread of the parent.) */
static ps_thread_t *adopt(ps_thread_t *t, const char *name)
{
    *t = (ps_thread_t){
        .mutex = PTHREAD_MUTEX_INITIALIZER,
        .changed = PTHREAD_COND_INITIALIZER,
        .state = RUNNING,
        .adopted = true,
        .handle = pthread_self(),
    };
    t->ident = (unsigned long)t->handle;
    set_name(t, name);
    current = t;
    return t;
}

ps_thread_t *ps_current_thread(void)
{
    static unsigned dummies;
    if (current)
        return current;
    if (gettid() == getpid())
        return adopt(&main_thread, "MainThread");
    char name[NAME_SIZE];
    snprintf(name, sizeof name, "Dummy-%u", __atomic_add_fetch(&dummies, 1, __ATOMIC_RELAXED));
    return adopt(&dummy, name);
}
