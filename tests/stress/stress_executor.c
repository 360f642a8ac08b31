/* SPDX-License-Identifier: MIT */
/* Stress for <pysync/futures.h>, run plain and under ThreadSanitizer (make tsan).
 *
 * Phase 1: submitter threads share one thread executor. Each submits tasks
 * (pointer and bytes), cancels some at once, hands others to a helper thread
 * that adds callbacks while the tasks complete, waits for batches with
 * FIRST_COMPLETED and ALL_COMPLETED, reads results, and frees its handles at
 * random moments (before the task ran, while it runs, after). At the end every
 * task ran exactly once unless its cancel returned true (then never), every
 * callback ran exactly once, and every result is right.
 * Phase 2: the same while another thread shuts the executor down with
 * cancel_futures: submits fail with ESHUTDOWN from then on, and every future
 * that was handed out either ran once or was cancelled, never both.
 * Phase 3: executors made, used and freed at once, over and over ("wait, then
 * free" against the completing worker, PITFALLS 13).
 * Exits non-zero on any failure. argv[1] scales the task counts (default 1). */
#include <pysync/futures.h>

#include "../helpers.h"

#if UNDER_TSAN
#define TASKS 4000              /* per submitter: make tsan stays in seconds */
#define EXEC_ROUNDS 300
#else
#define TASKS 40000
#define EXEC_ROUNDS 3000
#endif
#define SUBMITTERS 3
#define BATCH 16

static int failures;

#define CHECK(cond, ...)                                                      \
    do {                                                                      \
        if (!(cond)) {                                                        \
            fprintf(stderr, "stress_executor: %s:%d: ", __FILE__, __LINE__);  \
            fprintf(stderr, __VA_ARGS__);                                     \
            fputc('\n', stderr);                                              \
            __atomic_fetch_add(&failures, 1, __ATOMIC_RELAXED);               \
        }                                                                     \
    } while (0)

/* Per task: what happened to it. */
struct task {
    int runs;                   /* times its function ran */
    int callbacks;              /* callback calls */
    int callbacks_added;        /* successful add_done_callback calls */
    bool cancelled;             /* a cancel of ours returned true */
    bool handed_out;            /* submit returned a future */
    int seen_cancelled;         /* a callback or a result found it cancelled */
    int seen_finished;          /* ...or finished */
};

static struct task *tasks;
static unsigned tasks_per_submitter;
static int handed_out;          /* futures handed out in this phase */

static void *ptr_task(void *arg)
{
    struct task *t = arg;
    __atomic_fetch_add(&t->runs, 1, __ATOMIC_RELAXED);
    return t;
}

static ssize_t bytes_task(const void *in, size_t inlen, void *out, size_t outcap)
{
    struct task *t;
    if (inlen != sizeof t || outcap < inlen)
        return -EINVAL;
    memcpy(&t, in, sizeof t);
    __atomic_fetch_add(&t->runs, 1, __ATOMIC_RELAXED);
    memcpy(out, in, inlen);
    return (ssize_t)inlen;
}

static void count_callback(ps_future_t *f, void *arg)
{
    struct task *t = arg;
    __atomic_store_n(ps_future_cancelled(f) ? &t->seen_cancelled : &t->seen_finished, 1,
                     __ATOMIC_RELAXED);
    __atomic_fetch_add(&t->callbacks, 1, __ATOMIC_RELAXED);
}

/* ---- a helper that adds callbacks to futures handed over by a submitter ---- */

struct handoff {
    ps_future_t *f;             /* owned reference, or NULL */
    struct task *t;
    int state;                  /* 0 empty, 1 full, 2 stop */
    pthread_mutex_t mutex;
    pthread_cond_t cond;
};

static void *callback_adder(void *arg)
{
    struct handoff *h = arg;
    for (;;) {
        pthread_mutex_lock(&h->mutex);
        while (h->state == 0)
            pthread_cond_wait(&h->cond, &h->mutex);
        if (h->state == 2) {
            pthread_mutex_unlock(&h->mutex);
            return NULL;
        }
        ps_future_t *f = h->f;
        struct task *t = h->t;
        h->state = 0;
        pthread_cond_broadcast(&h->cond);
        pthread_mutex_unlock(&h->mutex);
        for (int i = 0; i < 3; i++)
            if (ps_future_add_done_callback(f, count_callback, t) == 0)
                __atomic_fetch_add(&t->callbacks_added, 1, __ATOMIC_RELAXED);
        ps_future_free(f);
    }
}

/* Gives f (a reference of its own) to the adder; waits while the slot is full. */
static void hand_over(struct handoff *h, ps_future_t *f, struct task *t)
{
    pthread_mutex_lock(&h->mutex);
    while (h->state == 1)
        pthread_cond_wait(&h->cond, &h->mutex);
    h->f = f;
    h->t = t;
    h->state = 1;
    pthread_cond_broadcast(&h->cond);
    pthread_mutex_unlock(&h->mutex);
}

/* ---- submitters ---- */

struct submitter {
    ps_executor_t *ex;
    unsigned id;
    unsigned seed;
    bool expect_shutdown;       /* phase 2: ESHUTDOWN is fine */
};

static unsigned rnd(unsigned *seed)
{
    *seed = *seed * 1103515245u + 12345u;
    return *seed >> 16;
}

/* Checks a finished future's result against its task. */
static void check_result(ps_future_t *f, struct task *t, bool bytes)
{
    if (ps_future_cancelled(f)) {
        int rc = bytes ? ps_future_result_bytes(f, 0, NULL, 0, NULL) : ps_future_result(f, 0, NULL);
        CHECK(rc == ECANCELED, "cancelled result: %d", rc);
        __atomic_store_n(&t->seen_cancelled, 1, __ATOMIC_RELAXED);
        return;
    }
    __atomic_store_n(&t->seen_finished, 1, __ATOMIC_RELAXED);
    if (bytes) {
        struct task *got = NULL;
        size_t len = 0;
        int rc = ps_future_result_bytes(f, 0, &got, sizeof got, &len);
        CHECK(rc == 0 && len == sizeof got && got == t, "bytes result rc %d", rc);
    } else {
        void *got = NULL;
        int rc = ps_future_result(f, 0, &got);
        CHECK(rc == 0 && got == t, "result rc %d", rc);
    }
}

/* Waits for a batch in one of three ways, checks and frees it. */
static void finish_batch(struct submitter *s, ps_future_t **batch, struct task **batch_task,
                         const bool *batch_bytes, unsigned n)
{
    int how = (int)(rnd(&s->seed) % 3);
    if (how == 0) {
        int rc = ps_futures_wait(batch, n, 10.0, PS_FIRST_COMPLETED);
        CHECK(rc == 0, "FIRST_COMPLETED: %d", rc);
        rc = ps_futures_wait(batch, n, 10.0, PS_ALL_COMPLETED);
        CHECK(rc == 0, "ALL_COMPLETED: %d", rc);
    } else if (how == 1) {
        for (unsigned j = 0; j < n; j++) {
            int rc = ps_future_exception(batch[j], 10.0, NULL);
            CHECK(rc == 0 || rc == ECANCELED, "exception: %d", rc);
        }
    } else {
        int rc = ps_futures_wait(batch, n, 10.0, PS_ALL_COMPLETED);
        CHECK(rc == 0, "ALL_COMPLETED: %d", rc);
    }
    for (unsigned j = 0; j < n; j++) {
        CHECK(ps_future_done(batch[j]), "not done after a wait");
        check_result(batch[j], batch_task[j], batch_bytes[j]);
        ps_future_free(batch[j]);
    }
}

static void *submitter_main(void *arg)
{
    struct submitter *s = arg;
    struct handoff h = { .mutex = PTHREAD_MUTEX_INITIALIZER, .cond = PTHREAD_COND_INITIALIZER };
    pthread_t adder;
    pthread_create(&adder, NULL, callback_adder, &h);
    ps_future_t *batch[BATCH];
    struct task *batch_task[BATCH];
    bool batch_bytes[BATCH];
    unsigned n = 0;
    for (unsigned i = 0; i < tasks_per_submitter; i++) {
        struct task *t = &tasks[s->id * tasks_per_submitter + i];
        unsigned r = rnd(&s->seed);
        bool bytes = r % 5 == 0;
        ps_future_t *f = bytes ? ps_executor_submit_bytes(s->ex, bytes_task, &t, sizeof t)
                               : ps_executor_submit(s->ex, ptr_task, t);
        if (!f) {
            CHECK(s->expect_shutdown && errno == ESHUTDOWN, "submit failed: %d", errno);
            continue;
        }
        t->handed_out = true;
        __atomic_fetch_add(&handed_out, 1, __ATOMIC_RELAXED);
        if (r % 7 == 0 && ps_future_cancel(f))
            t->cancelled = true;
        switch (r / 8 % 4) {
        case 0:                 /* drop the handle at once */
            ps_future_free(f);
            break;
        case 1:                 /* a callback from here, then drop */
            if (ps_future_add_done_callback(f, count_callback, t) == 0)
                __atomic_fetch_add(&t->callbacks_added, 1, __ATOMIC_RELAXED);
            ps_future_free(f);
            break;
        case 2:                 /* callbacks from another thread, racing completion */
            hand_over(&h, f, t);
            break;
        default:                /* keep it for a batch wait */
            batch[n] = f;
            batch_task[n] = t;
            batch_bytes[n] = bytes;
            n++;
            break;
        }
        if (n == BATCH) {
            finish_batch(s, batch, batch_task, batch_bytes, n);
            n = 0;
        }
    }
    if (n > 0)
        finish_batch(s, batch, batch_task, batch_bytes, n);
    pthread_mutex_lock(&h.mutex);
    while (h.state == 1)
        pthread_cond_wait(&h.cond, &h.mutex);
    h.state = 2;
    pthread_cond_broadcast(&h.cond);
    pthread_mutex_unlock(&h.mutex);
    pthread_join(adder, NULL);
    return NULL;
}

/* Every task handed out ran exactly once unless cancelled (then never), and each
 * callback that was added ran once. */
static void check_tasks(unsigned total, bool shutdown_may_cancel, const char *phase)
{
    long bad_runs = 0, bad_callbacks = 0, ran = 0, cancelled = 0;
    for (unsigned i = 0; i < total; i++) {
        struct task *t = &tasks[i];
        int runs = __atomic_load_n(&t->runs, __ATOMIC_RELAXED);
        int callbacks = __atomic_load_n(&t->callbacks, __ATOMIC_RELAXED);
        int added = __atomic_load_n(&t->callbacks_added, __ATOMIC_RELAXED);
        if (!t->handed_out) {
            bad_runs += runs != 0;
            continue;
        }
        bool seen_c = __atomic_load_n(&t->seen_cancelled, __ATOMIC_RELAXED);
        bool seen_f = __atomic_load_n(&t->seen_finished, __ATOMIC_RELAXED);
        if (t->cancelled || seen_c)
            bad_runs += runs != 0 || seen_f;
        else if (seen_f)
            bad_runs += runs != 1;
        else if (!shutdown_may_cancel)
            bad_runs += runs != 1;
        else
            bad_runs += runs > 1;
        bad_callbacks += callbacks != added;
        ran += runs;
        cancelled += t->cancelled;
    }
    CHECK(bad_runs == 0, "%s: %ld tasks ran a wrong number of times", phase, bad_runs);
    CHECK(bad_callbacks == 0, "%s: %ld tasks had a wrong callback count", phase, bad_callbacks);
    printf("%s: %u tasks, %ld ran, %ld cancelled by their submitter\n", phase, total, ran,
           cancelled);
}

static void run_phase(bool with_shutdown, unsigned scale)
{
    tasks_per_submitter = TASKS * scale;
    unsigned total = SUBMITTERS * tasks_per_submitter;
    tasks = calloc(total, sizeof *tasks);
    handed_out = 0;
    ps_executor_t *ex = ps_executor_new(4, 0);
    struct submitter s[SUBMITTERS];
    pthread_t th[SUBMITTERS];
    for (unsigned i = 0; i < SUBMITTERS; i++) {
        s[i] = (struct submitter){ .ex = ex, .id = i, .seed = 7 * i + 1,
                                   .expect_shutdown = with_shutdown };
        pthread_create(&th[i], NULL, submitter_main, &s[i]);
    }
    if (with_shutdown) {
        /* once a third of the tasks are out: most of the rest will fail */
        while (__atomic_load_n(&handed_out, __ATOMIC_RELAXED) < (int)tasks_per_submitter)
            sched_yield();
        int rc = ps_executor_shutdown(ex, false, true);
        CHECK(rc == 0, "shutdown: %d", rc);
    }
    for (unsigned i = 0; i < SUBMITTERS; i++)
        pthread_join(th[i], NULL);
    ps_executor_free(ex);       /* every queued task has run or was cancelled */
    check_tasks(total, with_shutdown, with_shutdown ? "shutdown phase" : "submit phase");
    free(tasks);
}

/* ---- phase 3: make, use, free ---- */

static void *spin_task(void *arg)
{
    for (volatile unsigned i = 0; i < (unsigned)(uintptr_t)arg; i++)
        ;
    return arg;
}

static void exec_rounds(void)
{
    for (unsigned round = 0; round < EXEC_ROUNDS; round++) {
        ps_executor_t *ex = ps_executor_new(1 + round % 3, 0);
        ps_future_t *fs[4];
        for (int i = 0; i < 4; i++)
            fs[i] = ps_executor_submit(ex, spin_task, (void *)(uintptr_t)(round % 7 * 30));
        int rc = round % 2 ? ps_futures_wait(fs, 4, 10.0, PS_FIRST_COMPLETED)
                           : ps_future_result(fs[round % 4], 10.0, NULL);
        CHECK(rc == 0, "round %u: wait %d", round, rc);
        for (int i = 0; i < 4; i++)
            ps_future_free(fs[i]);
        if (round % 3 == 0)
            ps_executor_shutdown(ex, false, round % 2);
        ps_executor_free(ex);
    }
    printf("executor rounds: %u made, used and freed\n", (unsigned)EXEC_ROUNDS);
}

int main(int argc, char **argv)
{
    unsigned scale = argc > 1 ? (unsigned)strtoul(argv[1], NULL, 10) : 1;
    if (scale == 0)
        scale = 1;
    double t0 = now();
    run_phase(false, scale);
    run_phase(true, scale);
    exec_rounds();
    printf("stress_executor: %s in %.2f s\n", failures ? "FAILED" : "ok", now() - t0);
    return failures ? 1 : 0;
}
