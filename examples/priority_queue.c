/* SPDX-License-Identifier: MIT */
/* A job scheduler: three threads submit jobs to a PriorityQueue, one worker runs
 * them, most urgent first, and in submission order among equals.
 *
 * Python original (3.13, for shutdown):
 *     jobs = queue.PriorityQueue()
 *     seq = itertools.count()              # heapq is not stable: a tie-breaker
 *     lock = threading.Lock()
 *
 *     def submit(who, priorities):
 *         for i, prio in enumerate(priorities):
 *             with lock:                   # so seq is also the order of the puts
 *                 jobs.put((prio, next(seq), f"{who}-{i}"))
 *
 *     def worker():
 *         while True:
 *             try:
 *                 prio, n, name = jobs.get()
 *             except queue.ShutDown:
 *                 return
 *             print(f"priority {prio}: {name} (submitted #{n})")
 *
 *     submitters = [threading.Thread(target=submit, args=args) for args in
 *                   (("alice", [2, 1, 3, 2]), ("bob", [3, 2, 1, 1]), ("carol", [1, 3, 2, 3]))]
 *     for t in submitters: t.start()
 *     for t in submitters: t.join()
 *     w = threading.Thread(target=worker)  # opens once every job is in
 *     w.start()
 *     jobs.shutdown()                      # the worker drains the queue, then stops
 *     w.join()
 *
 * A pysync PriorityQueue is stable by itself, so the C comparison looks at the
 * priority only, and the sequence number is there to check that stability.
 */
#include <pysync/pysync.h>
#include <stdio.h>

enum { SUBMITTERS = 3, JOBS_EACH = 4, JOBS = SUBMITTERS * JOBS_EACH };

struct job {
    int priority;                       /* 1 is the most urgent */
    int seq;                            /* the order in which it was put */
    char name[16];
};

struct submitter {
    const char *who;
    int priorities[JOBS_EACH];
    struct job jobs[JOBS_EACH];
};

static ps_queue_t jobs;
static ps_lock_t lock;
static int next_seq;                    /* under lock */
static struct job *done[JOBS];          /* in the order the worker got them */
static int n_done;                      /* the worker's; read after joining it */

static int by_priority(const void *a, const void *b)
{
    const struct job *x = a, *y = b;
    return x->priority - y->priority;
}

static void *submit(void *arg)
{
    struct submitter *s = arg;
    for (int i = 0; i < JOBS_EACH; i++) {
        struct job *job = &s->jobs[i];
        job->priority = s->priorities[i];
        snprintf(job->name, sizeof job->name, "%s-%d", s->who, i);
        ps_lock_acquire(&lock, true, PS_FOREVER);
        job->seq = next_seq++;
        ps_queue_put(&jobs, job, true, PS_FOREVER);
        ps_lock_release(&lock);
    }
    return NULL;
}

static void *worker(void *arg)
{
    (void)arg;
    void *item;
    while (ps_queue_get(&jobs, &item, true, PS_FOREVER) == 0) {   /* ESHUTDOWN ends it */
        struct job *job = item;
        printf("priority %d: %-8s (submitted #%d)\n", job->priority, job->name, job->seq);
        if (n_done < JOBS)
            done[n_done] = job;
        n_done++;
    }
    return NULL;
}

static bool in_order(const struct job *before, const struct job *after)
{
    return before->priority < after->priority ||
           (before->priority == after->priority && before->seq < after->seq);
}

int main(void)
{
    static struct submitter submitters[SUBMITTERS] = {
        { .who = "alice", .priorities = { 2, 1, 3, 2 } },
        { .who = "bob", .priorities = { 3, 2, 1, 1 } },
        { .who = "carol", .priorities = { 1, 3, 2, 3 } },
    };
    ps_thread_t *threads[SUBMITTERS];

    ps_priorityqueue_init(&jobs, 0, by_priority);
    ps_lock_init(&lock, 0);
    for (int i = 0; i < SUBMITTERS; i++) {
        threads[i] = ps_thread_new(submit, &submitters[i], submitters[i].who);
        if (!threads[i] || ps_thread_start(threads[i]) != 0)
            return 1;
    }
    for (int i = 0; i < SUBMITTERS; i++) {
        ps_thread_join(threads[i], PS_FOREVER, NULL);
        ps_thread_free(threads[i]);
    }

    ps_thread_t *w = ps_thread_new(worker, NULL, "worker");     /* every job is in */
    if (!w || ps_thread_start(w) != 0)
        return 1;
    ps_queue_shutdown(&jobs, false);    /* the worker drains the queue, then stops */
    ps_thread_join(w, PS_FOREVER, NULL);
    ps_thread_free(w);

    int wrong = n_done != JOBS;
    for (int i = 1; i < n_done && i < JOBS; i++)
        wrong += !in_order(done[i - 1], done[i]);
    printf("%d jobs run, %d out of order\n", n_done, wrong);
    ps_lock_destroy(&lock);
    ps_queue_destroy(&jobs);
    return wrong == 0 ? 0 : 1;
}
