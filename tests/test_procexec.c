/* SPDX-License-Identifier: MIT */
/* Tests for the process executor (ps_executor_new(n, PS_PROCESSES)): bytes round
 * trip, a task's own error, EMSGSIZE, 1000 tasks each run once, never more than
 * max_workers at once, a worker killed mid-task (EPIPE for that task only, the
 * executor replaces it: 50 rounds while 100 other tasks complete), a worker
 * killed while idle, shutdown with cancel_futures, pointer tasks refused, and
 * an executor left running at exit finishing its queued tasks. */
#include <pysync/futures.h>

#include <criterion/criterion.h>
#include <dirent.h>
#include <errno.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "helpers.h"

/* Shared with the workers (made before the executor, so before their fork). */
struct pe_shared {
    atomic_int running, high, runs[1000];
    atomic_int pids[64];
    atomic_int count;
};

static struct pe_shared *sh;

static void pe_setup(void)
{
    sh = mmap(NULL, sizeof *sh, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    cr_assert(sh != MAP_FAILED);
    memset(sh, 0, sizeof *sh);
}

static void pe_teardown(void)
{
    munmap(sh, sizeof *sh);
}

TestSuite(process_executor, .init = pe_setup, .fini = pe_teardown, .timeout = 30);

/* ---- tasks ---- */

static ssize_t upper(const void *in, size_t inlen, void *out, size_t outcap)
{
    cr_assert(outcap >= PS_TASK_BYTES_MAX);
    const char *s = in;
    char *o = out;
    for (size_t i = 0; i < inlen; i++)
        o[i] = (char)(s[i] >= 'a' && s[i] <= 'z' ? s[i] - 32 : s[i]);
    return (ssize_t)inlen;
}

static ssize_t fail_enoent(const void *in, size_t inlen, void *out, size_t outcap)
{
    (void)in, (void)inlen, (void)out, (void)outcap;
    return -ENOENT;
}

/* in: an int index; marks runs[index], returns index squared. */
static ssize_t count_square(const void *in, size_t inlen, void *out, size_t outcap)
{
    (void)outcap;
    int i;
    cr_assert(inlen == sizeof i);
    memcpy(&i, in, sizeof i);
    atomic_fetch_add(&sh->runs[i], 1);
    long long r = (long long)i * i;
    memcpy(out, &r, sizeof r);
    return (ssize_t)sizeof r;
}

/* count_square after 5 microseconds of work: short enough to be batched. */
static ssize_t count_square_5us(const void *in, size_t inlen, void *out, size_t outcap)
{
    struct timespec t0, t;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    do
        clock_gettime(CLOCK_MONOTONIC, &t);
    while ((t.tv_sec - t0.tv_sec) * 1000000000L + (t.tv_nsec - t0.tv_nsec) < 5000);
    return count_square(in, inlen, out, outcap);
}

static ssize_t concurrency(const void *in, size_t inlen, void *out, size_t outcap)
{
    (void)in, (void)inlen, (void)out, (void)outcap;
    int now_running = atomic_fetch_add(&sh->running, 1) + 1;
    int high = atomic_load(&sh->high);
    while (now_running > high && !atomic_compare_exchange_weak(&sh->high, &high, now_running))
        ;
    usleep(2000);
    atomic_fetch_sub(&sh->running, 1);
    return 0;
}

static ssize_t die(const void *in, size_t inlen, void *out, size_t outcap)
{
    (void)in, (void)inlen, (void)out, (void)outcap;
    raise(SIGKILL);
    return 0;
}

static ssize_t die_exit(const void *in, size_t inlen, void *out, size_t outcap)
{
    (void)in, (void)inlen, (void)out, (void)outcap;
    _exit(3);
}

static ssize_t my_pid(const void *in, size_t inlen, void *out, size_t outcap)
{
    (void)in, (void)inlen, (void)outcap;
    pid_t p = getpid();
    memcpy(out, &p, sizeof p);
    return (ssize_t)sizeof p;
}

/* Announces its pid, then waits to be killed (or for a second). */
static ssize_t wait_killed(const void *in, size_t inlen, void *out, size_t outcap)
{
    (void)in, (void)inlen, (void)out, (void)outcap;
    atomic_store(&sh->pids[0], getpid());
    for (int i = 0; i < 1000; i++)
        usleep(1000);
    return 0;
}

static ssize_t slow_count(const void *in, size_t inlen, void *out, size_t outcap)
{
    (void)in, (void)inlen, (void)out, (void)outcap;
    usleep(5000);
    atomic_fetch_add(&sh->count, 1);
    return 0;
}

static void *ptr_task(void *arg) { return arg; }

/* FNV-1a of the input: tells whether a task saw exactly its own bytes. */
static uint64_t fnv1a(const unsigned char *p, size_t n)
{
    uint64_t h = 1469598103934665603u;
    for (size_t i = 0; i < n; i++)
        h = (h ^ p[i]) * 1099511628211u;
    return h;
}

static ssize_t hash_input(const void *in, size_t inlen, void *out, size_t outcap)
{
    (void)outcap;
    uint64_t h = fnv1a(in, inlen);
    memcpy(out, &h, sizeof h);
    return sizeof h;
}

static int square_result(ps_future_t *f)
{
    long long r = 0;
    size_t len = 0;
    cr_assert_eq(ps_future_result_bytes(f, 10.0, &r, sizeof r, &len), 0);
    cr_assert_eq(len, sizeof r);
    return (int)r;
}

/* ---- tests ---- */

Test(process_executor, round_trip)
{
    ps_executor_t *ex = ps_executor_new(2, PS_PROCESSES);
    cr_assert_not_null(ex);
    ps_future_t *f = ps_executor_submit_bytes(ex, upper, "hello, world", 12);
    cr_assert_not_null(f);
    char buf[32] = { 0 };
    size_t len = 0;
    cr_assert_eq(ps_future_result_bytes(f, 10.0, buf, sizeof buf, &len), 0);
    cr_assert_eq(len, 12);
    cr_assert_str_eq(buf, "HELLO, WORLD");
    cr_assert_eq(ps_future_result_bytes(f, 0, buf, 4, &len), ERANGE);
    cr_assert_eq(len, 12);
    int err = -1;
    cr_assert_eq(ps_future_exception(f, 1.0, &err), 0);
    cr_assert_eq(err, 0);
    ps_future_free(f);

    /* no input at all */
    f = ps_executor_submit_bytes(ex, upper, NULL, 0);
    cr_assert_not_null(f);
    cr_assert_eq(ps_future_result_bytes(f, 10.0, buf, sizeof buf, &len), 0);
    cr_assert_eq(len, 0);
    ps_future_free(f);

    /* a large input and output */
    size_t big = PS_TASK_BYTES_MAX;
    char *in = malloc(big), *out = malloc(big);
    memset(in, 'x', big);
    f = ps_executor_submit_bytes(ex, upper, in, big);
    cr_assert_not_null(f);
    cr_assert_eq(ps_future_result_bytes(f, 10.0, out, big, &len), 0);
    cr_assert_eq(len, big);
    cr_assert_eq(out[0], 'X');
    cr_assert_eq(out[big - 1], 'X');
    ps_future_free(f);
    free(in);
    free(out);
    ps_executor_free(ex);
}

Test(process_executor, task_error)
{
    ps_executor_t *ex = ps_executor_new(1, PS_PROCESSES);
    cr_assert_not_null(ex);
    ps_future_t *f = ps_executor_submit_bytes(ex, fail_enoent, "x", 1);
    cr_assert_not_null(f);
    int err = 0;
    cr_assert_eq(ps_future_exception(f, 10.0, &err), 0);
    cr_assert_eq(err, ENOENT);
    char buf[4];
    size_t len;
    cr_assert_eq(ps_future_result_bytes(f, 0, buf, sizeof buf, &len), ENOENT);
    ps_future_free(f);
    ps_executor_free(ex);
}

Test(process_executor, bad_input)
{
    ps_executor_t *ex = ps_executor_new(0, PS_PROCESSES);   /* one per CPU */
    cr_assert_not_null(ex);
    static char big[PS_TASK_BYTES_MAX + 1];
    errno = 0;
    cr_assert_null(ps_executor_submit_bytes(ex, upper, big, sizeof big));
    cr_assert_eq(errno, EMSGSIZE);
    errno = 0;
    cr_assert_null(ps_executor_submit(ex, ptr_task, NULL));
    cr_assert_eq(errno, EINVAL);
    void *args[1] = { NULL }, *res[1];
    cr_assert_eq(ps_executor_map(ex, ptr_task, args, res, 1, 1.0), EINVAL);
    errno = 0;
    cr_assert_null(ps_executor_submit_bytes(ex, NULL, "x", 1));
    cr_assert_eq(errno, EINVAL);
    cr_assert_eq(ps_executor_shutdown(ex, true, false), 0);
    errno = 0;
    cr_assert_null(ps_executor_submit_bytes(ex, upper, "x", 1));
    cr_assert_eq(errno, ESHUTDOWN);
    cr_assert_eq(ps_executor_shutdown(ex, true, true), 0);  /* twice: harmless */
    ps_executor_free(ex);
}

Test(process_executor, thousand_tasks_once_each)
{
    ps_executor_t *ex = ps_executor_new(2, PS_PROCESSES);
    cr_assert_not_null(ex);
    enum { N = 1000 };
    static ps_future_t *fs[N];
    for (int i = 0; i < N; i++) {
        fs[i] = ps_executor_submit_bytes(ex, count_square, &i, sizeof i);
        cr_assert_not_null(fs[i]);
    }
    for (int i = 0; i < N; i++) {
        cr_assert_eq(square_result(fs[i]), i * i);
        ps_future_free(fs[i]);
    }
    for (int i = 0; i < N; i++)
        cr_assert_eq(atomic_load(&sh->runs[i]), 1, "task %d ran %d times", i,
                     atomic_load(&sh->runs[i]));
    ps_executor_free(ex);
}

/* Inputs of every size class wait in the queue at once, twice (the second
 * time in freed and reused input memory): each task sees exactly its own bytes. */
Test(process_executor, varied_inputs_intact)
{
    ps_executor_t *ex = ps_executor_new(2, PS_PROCESSES);
    cr_assert_not_null(ex);
    enum { N = 120 };
    static ps_future_t *fs[N];
    static uint64_t want[N];
    unsigned char *in = malloc(PS_TASK_BYTES_MAX);
    cr_assert_not_null(in);
    for (int pass = 0; pass < 2; pass++) {
        for (int i = 0; i < N; i++) {
            size_t len = i == N - 1 ? PS_TASK_BYTES_MAX : ((size_t)1 << (i % 20)) + (size_t)i;
            for (size_t k = 0; k < len; k++)
                in[k] = (unsigned char)(k * 31 + (size_t)i + (size_t)pass);
            want[i] = fnv1a(in, len);
            fs[i] = ps_executor_submit_bytes(ex, hash_input, in, len);
            cr_assert_not_null(fs[i]);
        }
        memset(in, 0, PS_TASK_BYTES_MAX);   /* the tasks hold their own copies */
        for (int i = 0; i < N; i++) {
            uint64_t h = 0;
            size_t len = 0;
            cr_assert_eq(ps_future_result_bytes(fs[i], 30.0, &h, sizeof h, &len), 0);
            cr_assert_eq(h, want[i], "pass %d task %d saw other bytes", pass, i);
            ps_future_free(fs[i]);
        }
    }
    free(in);
    ps_executor_free(ex);
}

/* Submits n tasks that take 2 ms each at once and waits for them; returns the
 * most that ran at the same time. */
static int run_concurrently(ps_executor_t *ex, int n)
{
    ps_future_t *fs[64];
    cr_assert(n <= 64);
    for (int i = 0; i < n; i++)
        cr_assert_not_null(fs[i] = ps_executor_submit_bytes(ex, concurrency, NULL, 0));
    cr_assert_eq(ps_futures_wait(fs, (size_t)n, 10.0, PS_ALL_COMPLETED), 0);
    for (int i = 0; i < n; i++)
        ps_future_free(fs[i]);
    return atomic_load(&sh->high);
}

Test(process_executor, at_most_max_workers)
{
    ps_executor_t *ex = ps_executor_new(3, PS_PROCESSES);
    cr_assert_not_null(ex);
    int high = run_concurrently(ex, 60);
    cr_assert(high >= 2 && high <= 3, "high-water mark %d", high);
    ps_executor_free(ex);
}

/* The processes whose parent is this one (the test's own process has no
 * others): their count, and up to max of their pids in pids. */
static int children(pid_t *pids, int max)
{
    DIR *d = opendir("/proc");
    cr_assert_not_null(d);
    int n = 0;
    struct dirent *e;
    while ((e = readdir(d))) {
        char path[300];
        int ppid = 0;
        snprintf(path, sizeof path, "/proc/%s/stat", e->d_name);
        FILE *f = e->d_name[0] >= '1' && e->d_name[0] <= '9' ? fopen(path, "r") : NULL;
        if (!f)
            continue;
        /* pid (comm) state ppid: comm may hold spaces, so start after its ')' */
        char line[512];
        if (fgets(line, sizeof line, f)) {
            char *close = strrchr(line, ')');
            if (close && sscanf(close + 1, " %*c %d", &ppid) == 1 && ppid == getpid()) {
                if (n < max)
                    pids[n] = (pid_t)atoi(e->d_name);
                n++;
            }
        }
        fclose(f);
    }
    closedir(d);
    return n;
}

static int children_of_this_process(void)
{
    return children(NULL, 0);
}

/* Python's ProcessPoolExecutor starts workers on demand: one at first, more
 * only while tasks wait and no worker is free, never more than max_workers. */
Test(process_executor, workers_start_on_demand)
{
    ps_executor_t *ex = ps_executor_new(4, PS_PROCESSES);
    cr_assert_not_null(ex);
    cr_assert_eq(children_of_this_process(), 1);
    for (int r = 0; r < 20; r++) {     /* one at a time: the one worker suffices */
        ps_future_t *f = ps_executor_submit_bytes(ex, my_pid, NULL, 0);
        pid_t pid;
        size_t len;
        cr_assert_eq(ps_future_result_bytes(f, 10.0, &pid, sizeof pid, &len), 0);
        ps_future_free(f);
    }
    cr_assert_eq(children_of_this_process(), 1);
    int high = run_concurrently(ex, 40);
    cr_assert(high >= 2 && high <= 4, "high-water mark %d", high);
    cr_assert_eq(children_of_this_process(), 4);
    ps_executor_free(ex);
    cr_assert_eq(children_of_this_process(), 0);
}

/* 50 rounds: a task kills its worker while 2 others run normally each round
 * (100 in all); only the killed tasks fail, with EPIPE. */
Test(process_executor, worker_killed_mid_task)
{
    ps_executor_t *ex = ps_executor_new(2, PS_PROCESSES);
    cr_assert_not_null(ex);
    double t0 = now();
    int ok = 0;
    for (int round = 0; round < 50; round++) {
        int a = 2 * round, b = 2 * round + 1;
        ps_future_t *f1 = ps_executor_submit_bytes(ex, count_square, &a, sizeof a);
        ps_future_t *k = ps_executor_submit_bytes(ex, round % 2 ? die : die_exit, NULL, 0);
        ps_future_t *f2 = ps_executor_submit_bytes(ex, count_square, &b, sizeof b);
        cr_assert(f1 && k && f2);
        int err = 0;
        cr_assert_eq(ps_future_exception(k, 10.0, &err), 0);
        cr_assert_eq(err, EPIPE, "round %d: %d", round, err);
        char buf[8];
        size_t len;
        cr_assert_eq(ps_future_result_bytes(k, 0, buf, sizeof buf, &len), EPIPE);
        cr_assert_eq(square_result(f1), a * a);
        cr_assert_eq(square_result(f2), b * b);
        ok += 2;
        ps_future_free(f1);
        ps_future_free(k);
        ps_future_free(f2);
    }
    cr_assert_eq(ok, 100);
    for (int i = 0; i < 100; i++)
        cr_assert_eq(atomic_load(&sh->runs[i]), 1);
    cr_assert(now() - t0 < 5.0, "took %.2f s", now() - t0);
    ps_executor_free(ex);
}

/* The test kills the worker running a task; then the executor goes on. */
Test(process_executor, worker_killed_by_test)
{
    ps_executor_t *ex = ps_executor_new(1, PS_PROCESSES);
    cr_assert_not_null(ex);
    ps_future_t *k = ps_executor_submit_bytes(ex, wait_killed, NULL, 0);
    while (atomic_load(&sh->pids[0]) == 0)
        usleep(100);
    cr_assert(ps_future_running(k));
    kill(atomic_load(&sh->pids[0]), SIGKILL);
    int err = 0;
    cr_assert_eq(ps_future_exception(k, 5.0, &err), 0);
    cr_assert_eq(err, EPIPE);
    int i = 7;
    ps_future_t *f = ps_executor_submit_bytes(ex, count_square, &i, sizeof i);
    cr_assert_eq(square_result(f), 49);
    ps_future_free(f);
    ps_future_free(k);
    ps_executor_free(ex);
}

/* Short tasks are handed to a worker several at a time. Workers SIGKILLed at
 * random while 1000 such tasks stream through: every future completes, each
 * with its right result or EPIPE, at most one EPIPE per kill, and every task
 * that succeeded ran exactly once (the ones a dead worker had not started ran
 * in its replacement). */
Test(process_executor, workers_killed_amid_short_tasks)
{
    ps_executor_t *ex = ps_executor_new(2, PS_PROCESSES);
    cr_assert_not_null(ex);
    enum { N = 1000, KILLS = 10 };
    static ps_future_t *fs[N];
    for (int i = 0; i < N; i++)
        cr_assert_not_null(fs[i] = ps_executor_submit_bytes(ex, count_square_5us, &i, sizeof i));
    unsigned seed = (unsigned)getpid();
    int kills = 0;
    for (int k = 0; k < KILLS && !ps_future_done(fs[N - 1]); k++) {
        pid_t pids[8];
        int n = children(pids, 8);
        if (n > 0 && kill(pids[rand_r(&seed) % (n < 8 ? n : 8)], SIGKILL) == 0)
            kills++;
        usleep((useconds_t)(rand_r(&seed) % 400));
    }
    int failed = 0;
    for (int i = 0; i < N; i++) {
        long long r = -1;
        size_t len = 0;
        int rc = ps_future_result_bytes(fs[i], 30.0, &r, sizeof r, &len);
        if (rc == EPIPE) {
            failed++;
            cr_assert_leq(atomic_load(&sh->runs[i]), 1);
        } else {
            cr_assert_eq(rc, 0, "task %d: %s", i, ps_errname(rc));
            cr_assert_eq(r, (long long)i * i);
            cr_assert_eq(atomic_load(&sh->runs[i]), 1, "task %d ran %d times", i,
                         atomic_load(&sh->runs[i]));
        }
        ps_future_free(fs[i]);
    }
    cr_assert_leq(failed, kills);
    cr_log_info("%d kills, %d tasks failed", kills, failed);
    ps_executor_free(ex);
}

Test(process_executor, worker_killed_while_idle)
{
    ps_executor_t *ex = ps_executor_new(1, PS_PROCESSES);
    cr_assert_not_null(ex);
    /* The next task is submitted as the kill lands, often before the executor
     * has seen the death: it must still run (in the replacement), not fail. */
    enum { ROUNDS = 20 };
    pid_t pids[ROUNDS];
    for (int r = 0; r < ROUNDS; r++) {
        ps_future_t *f = ps_executor_submit_bytes(ex, my_pid, NULL, 0);
        size_t len;
        int rc = ps_future_result_bytes(f, 10.0, &pids[r], sizeof pids[r], &len);
        cr_assert_eq(rc, 0, "round %d: %s", r, ps_errname(rc));
        ps_future_free(f);
        cr_assert_neq(pids[r], getpid());
        if (r > 0)
            cr_assert_neq(pids[r], pids[r - 1], "a new worker in round %d", r);
        kill(pids[r], SIGKILL);
        if (r % 2)
            usleep(20000);      /* idle: nothing of ours runs in it */
    }
    /* same worker while alive */
    ps_future_t *f = ps_executor_submit_bytes(ex, my_pid, NULL, 0);
    ps_future_t *g = ps_executor_submit_bytes(ex, my_pid, NULL, 0);
    pid_t a, b;
    size_t len;
    cr_assert_eq(ps_future_result_bytes(f, 10.0, &a, sizeof a, &len), 0);
    cr_assert_eq(ps_future_result_bytes(g, 10.0, &b, sizeof b, &len), 0);
    cr_assert_eq(a, b);
    ps_future_free(f);
    ps_future_free(g);
    ps_executor_free(ex);
}

Test(process_executor, shutdown_cancel_futures)
{
    ps_executor_t *ex = ps_executor_new(1, PS_PROCESSES);
    cr_assert_not_null(ex);
    enum { N = 50 };
    ps_future_t *fs[N];
    for (int i = 0; i < N; i++)
        cr_assert_not_null(fs[i] = ps_executor_submit_bytes(ex, slow_count, "input", 5));
    usleep(2000);
    cr_assert_eq(ps_executor_shutdown(ex, true, true), 0);
    int cancelled = 0, done = 0;
    for (int i = 0; i < N; i++) {
        cr_assert(ps_future_done(fs[i]));
        if (ps_future_cancelled(fs[i])) {
            cancelled++;
            char b;
            size_t len;
            cr_assert_eq(ps_future_result_bytes(fs[i], 0, &b, 1, &len), ECANCELED);
        } else {
            done++;
        }
        ps_future_free(fs[i]);
    }
    cr_assert(cancelled >= N - 3, "cancelled %d", cancelled);
    cr_assert_eq(done, atomic_load(&sh->count));
    ps_executor_free(ex);
}

Test(process_executor, shutdown_runs_queued)
{
    ps_executor_t *ex = ps_executor_new(2, PS_PROCESSES);
    cr_assert_not_null(ex);
    for (int i = 0; i < 20; i++)
        ps_future_free(ps_executor_submit_bytes(ex, slow_count, NULL, 0));
    cr_assert_eq(ps_executor_shutdown(ex, false, false), 0);
    ps_executor_free(ex);       /* waits */
    cr_assert_eq(atomic_load(&sh->count), 20);
}

Test(process_executor, cancel_pending)
{
    ps_executor_t *ex = ps_executor_new(1, PS_PROCESSES);
    cr_assert_not_null(ex);
    ps_future_t *a = ps_executor_submit_bytes(ex, slow_count, NULL, 0);
    ps_future_t *b = ps_executor_submit_bytes(ex, slow_count, "input", 5);
    cr_assert(ps_future_cancel(b));
    cr_assert_eq(ps_futures_wait(&a, 1, 10.0, PS_ALL_COMPLETED), 0);
    ps_executor_free(ex);
    cr_assert_eq(atomic_load(&sh->count), 1);
    ps_future_free(a);
    ps_future_free(b);
}

/* In a child that leaves through exit (or by returning from main) without
 * shutting its executor down, the queued tasks still run. */
Test(process_executor, queued_tasks_run_at_exit)
{
    for (int how = 0; how < 2; how++) {
        atomic_store(&sh->count, 0);
        pid_t pid = fork();
        cr_assert(pid >= 0);
        if (pid == 0) {
            ps_executor_t *ex = ps_executor_new(2, PS_PROCESSES);
            if (!ex)
                _exit(2);
            for (int i = 0; i < 20; i++)
                ps_future_free(ps_executor_submit_bytes(ex, slow_count, NULL, 0));
            exit(0);
        }
        int status;
        cr_assert_eq(waitpid(pid, &status, 0), pid);
        cr_assert(WIFEXITED(status) && WEXITSTATUS(status) == 0, "status %#x", status);
        cr_assert_eq(atomic_load(&sh->count), 20);
    }
}

/* Running, not a zombie waiting for whoever inherited it to reap it. */
static bool pid_alive(pid_t pid)
{
    char path[64], buf[256];
    snprintf(path, sizeof path, "/proc/%d/stat", (int)pid);
    FILE *fp = fopen(path, "r");
    if (!fp)
        return false;
    size_t n = fread(buf, 1, sizeof buf - 1, fp);
    fclose(fp);
    buf[n] = 0;
    const char *p = strrchr(buf, ')');
    return p && p[1] == ' ' && p[2] != 'Z' && p[2] != 'X';
}

/* Workers die with the executor's process, even when it dies abruptly. */
Test(process_executor, workers_die_with_parent)
{
    int p[2];
    cr_assert_eq(pipe(p), 0);
    pid_t pid = fork();
    cr_assert(pid >= 0);
    if (pid == 0) {
        close(p[0]);
        ps_executor_t *ex = ps_executor_new(1, PS_PROCESSES);
        ps_future_t *f = ps_executor_submit_bytes(ex, my_pid, NULL, 0);
        pid_t w = 0;
        size_t len;
        ps_future_result_bytes(f, 10.0, &w, sizeof w, &len);
        if (write(p[1], &w, sizeof w) != sizeof w)
            _exit(2);
        raise(SIGKILL);
    }
    close(p[1]);
    pid_t w = 0;
    cr_assert_eq(read(p[0], &w, sizeof w), (ssize_t)sizeof w);
    close(p[0]);
    waitpid(pid, NULL, 0);
    cr_assert(w > 0);
    double t0 = now();
    while (pid_alive(w) && now() - t0 < 5.0)
        usleep(1000);
    cr_assert(!pid_alive(w), "worker %d outlived its parent", (int)w);
}
