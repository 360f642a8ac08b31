/* SPDX-License-Identifier: MIT */
/* Two threads take two locks in opposite order: a deadlock, found with a timeout.
 *
 * Python original:
 *     mutex_a = threading.Lock()
 *     mutex_b = threading.Lock()
 *
 *     def worker(name, first, second):
 *         with first:
 *             if not second.acquire(timeout=0.2):
 *                 print(f"{name}: deadlock, backing off")
 *                 return False
 *             print(f"{name}: has both locks")
 *             second.release()
 *             return True
 *
 *     t1 = threading.Thread(target=worker, args=("thread-1", mutex_a, mutex_b))
 *     t2 = threading.Thread(target=worker, args=("thread-2", mutex_b, mutex_a))
 *     # thread-1 holds a and waits for b, thread-2 holds b and waits for a.
 *
 *     # The fix: one reentrant lock for both.
 *     mutex_a = mutex_b = threading.RLock()
 *
 * Python's deadlock only happens when both threads hold their first lock at the
 * same time. Here a Barrier makes sure they do, and a second one makes both
 * wait out their timeout before either backs off, so both always see it.
 * With the single RLock no barrier can be used: the second thread could not
 * reach it while the first holds the lock.
 */
#include <pysync/threading.h>
#include <stdint.h>
#include <stdio.h>

/* Python's "with mutex:" works on any lock; C has to know which kind. */
struct mutex {
    ps_lock_t *lock;
    ps_rlock_t *rlock;
};

static int mutex_acquire(struct mutex *m, double timeout)
{
    return m->lock ? ps_lock_acquire(m->lock, true, timeout)
                   : ps_rlock_acquire(m->rlock, true, timeout);
}

static void mutex_release(struct mutex *m)
{
    if (m->lock)
        ps_lock_release(m->lock);
    else
        ps_rlock_release(m->rlock);
}

struct worker {
    const char *name;
    struct mutex *first, *second;
    ps_barrier_t *both_hold_first;      /* NULL: no rendezvous */
    ps_barrier_t *both_gave_up;
};

static void rendezvous(ps_barrier_t *b)
{
    if (b)
        ps_barrier_wait(b, PS_FOREVER, NULL);
}

static void *worker(void *arg)
{
    struct worker *w = arg;

    mutex_acquire(w->first, PS_FOREVER);
    rendezvous(w->both_hold_first);
    int rc = mutex_acquire(w->second, 0.2);
    rendezvous(w->both_gave_up);
    if (rc == 0) {
        printf("%s: has both locks\n", w->name);
        mutex_release(w->second);
    } else {
        printf("%s: %s waiting for its second lock: deadlock, backing off\n",
               w->name, ps_errname(rc));
    }
    mutex_release(w->first);
    return (void *)(intptr_t)rc;
}

/* Runs the two workers; returns how many of them timed out. */
static int run(struct mutex *a, struct mutex *b, ps_barrier_t *b1, ps_barrier_t *b2)
{
    struct worker w[2] = {
        { "thread-1", a, b, b1, b2 },
        { "thread-2", b, a, b1, b2 },   /* the opposite order */
    };
    ps_thread_t *t1 = ps_thread_new(worker, &w[0], w[0].name);
    ps_thread_t *t2 = ps_thread_new(worker, &w[1], w[1].name);
    if (!t1 || !t2 || ps_thread_start(t1) != 0 || ps_thread_start(t2) != 0)
        return -1;
    void *r1, *r2;
    ps_thread_join(t1, PS_FOREVER, &r1);
    ps_thread_join(t2, PS_FOREVER, &r2);
    ps_thread_free(t1);
    ps_thread_free(t2);
    return ((intptr_t)r1 == ETIMEDOUT) + ((intptr_t)r2 == ETIMEDOUT);
}

int main(void)
{
    ps_lock_t lock_a, lock_b;
    ps_rlock_t rlock;
    ps_barrier_t both_hold_first, both_gave_up;

    ps_lock_init(&lock_a, 0);
    ps_lock_init(&lock_b, 0);
    ps_barrier_init(&both_hold_first, 2, NULL, NULL, PS_FOREVER, 0);
    ps_barrier_init(&both_gave_up, 2, NULL, NULL, PS_FOREVER, 0);
    struct mutex mutex_a = { &lock_a, NULL }, mutex_b = { &lock_b, NULL };
    puts("two Locks, taken in opposite order:");
    int deadlocked = run(&mutex_a, &mutex_b, &both_hold_first, &both_gave_up);

    ps_rlock_init(&rlock, 0);
    struct mutex shared = { NULL, &rlock };     /* mutex_a = mutex_b = RLock() */
    puts("one RLock for both:");
    int stuck = run(&shared, &shared, NULL, NULL);

    printf("deadlocks detected: %d of 2 with two Locks, %d with one RLock\n", deadlocked, stuck);
    /* Every lock is free again: the workers backed off cleanly. */
    int cleanup = ps_lock_destroy(&lock_a) | ps_lock_destroy(&lock_b) |
                  ps_rlock_destroy(&rlock) | ps_barrier_destroy(&both_hold_first) |
                  ps_barrier_destroy(&both_gave_up);
    return deadlocked == 2 && stuck == 0 && cleanup == 0 ? 0 : 1;
}
