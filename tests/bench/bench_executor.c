/* SPDX-License-Identifier: MIT */
/* bench_executor.c - benchmark (not a test): executors with futures against GLib's
 * GThreadPool and Python's concurrent.futures / multiprocessing.Pool, same run.
 *
 * Threads: N_THREAD trivial tasks (fn returns its argument) through a 2-worker
 * ps_executor: submit them all, then ps_future_result each (checked) and free it.
 * GThreadPool (2 threads) pushes the same tasks with no futures at all: each adds
 * to a completion counter and the main thread waits for the last one. Python:
 * ThreadPoolExecutor(2), [ex.submit(f, i) for i in range(n)], then every
 * result() checked.
 *
 * Processes: N_PROC tasks with 8 bytes of input (the task's number) that return
 * them, through a 2-worker ps_executor(PS_PROCESSES): submit_bytes all, then
 * result_bytes each (checked). Python: ProcessPoolExecutor(2).submit and
 * multiprocessing.Pool(2).apply_async of the same function on 8-byte bytes,
 * results checked. Every pool is made and warmed up (its workers exist) before
 * the clock starts; nothing is pinned (3 threads or processes on 2 CPUs is the
 * real-life case).
 *
 * The six systems run in turn, rotated each round (PITFALLS 11): each figure is
 * the median of ROUNDS runs [min .. max], each ratio the median of the per-round
 * ratios, against the targets. BENCH_ROUNDS=N changes ROUNDS. Python's
 * process pools use the fork start method, as ours does. */
#include <pysync/futures.h>

#include <glib.h>
#include <limits.h>
#include <stdbool.h>

#include "bench.h"

#define ROUNDS_DEFAULT 5
#define MAX_ROUNDS 31
#define N_THREAD 200000
#define N_PROC 100000
#define N_PY_THREAD 20000
#define N_PY_PROC 5000
#define TOTAL_WATCHDOG_S 900

enum { PS_THREADS, GLIB_POOL, PY_TPE, PS_PROCS, PY_PPE, PY_POOL, NSYS };
static const char *const sys_name[NSYS] = {
    "ps_executor, 2 threads", "GThreadPool, 2 threads", "Python ThreadPoolExecutor(2)",
    "ps_executor, 2 processes", "Python ProcessPoolExecutor(2)", "Python Pool(2).apply_async",
};
static const char *const py_mode[NSYS] = { [PY_TPE] = "tpe", [PY_PPE] = "ppe", [PY_POOL] = "pool" };

static double g_rate[NSYS][MAX_ROUNDS];     /* tasks/s */
static int g_rounds;
static char g_python[PATH_MAX + 64];
static char g_py_script[64];

static double seconds_since(uint64_t t0)
{
    return (double)(bench_now_ns() - t0) / 1e9;
}

/* ---- ps_executor, threads ---- */

static void *identity(void *arg)
{
    return arg;
}

static double run_ps_threads(ps_executor_t *ex, ps_future_t **fs)
{
    uint64_t t0 = bench_now_ns();
    for (long i = 0; i < N_THREAD; i++)
        if (!(fs[i] = ps_executor_submit(ex, identity, (void *)(i + 1))))
            bench_fail("ps_executor_submit: %s", ps_errname(errno));
    for (long i = 0; i < N_THREAD; i++) {
        void *r;
        int rc = ps_future_result(fs[i], PS_FOREVER, &r);
        if (rc != 0 || r != (void *)(i + 1))
            bench_wrong("ps_executor, threads", "task %ld: rc %s, result %p", i, ps_errname(rc), r);
        ps_future_free(fs[i]);
    }
    return N_THREAD / seconds_since(t0);
}

/* ---- GThreadPool: the same tasks, a completion counter instead of futures ---- */

typedef struct glib_done {
    GMutex mu;
    GCond cond;
    atomic_long count;
    atomic_long sum;
} glib_done_t;

static void glib_task(gpointer data, gpointer user)
{
    glib_done_t *d = user;
    atomic_fetch_add(&d->sum, (long)GPOINTER_TO_SIZE(data));
    if (atomic_fetch_add(&d->count, 1) + 1 == N_THREAD) {
        g_mutex_lock(&d->mu);
        g_cond_signal(&d->cond);
        g_mutex_unlock(&d->mu);
    }
}

static double run_glib(GThreadPool *pool, glib_done_t *d)
{
    atomic_store(&d->count, 0);
    atomic_store(&d->sum, 0);
    uint64_t t0 = bench_now_ns();
    for (long i = 0; i < N_THREAD; i++)
        g_thread_pool_push(pool, GSIZE_TO_POINTER((gsize)(i + 1)), NULL);
    g_mutex_lock(&d->mu);
    while (atomic_load(&d->count) != N_THREAD)
        g_cond_wait(&d->cond, &d->mu);
    g_mutex_unlock(&d->mu);
    double rate = N_THREAD / seconds_since(t0);
    long want = (long)N_THREAD * (N_THREAD + 1) / 2;
    if (atomic_load(&d->sum) != want)
        bench_wrong("GThreadPool", "sum %ld, want %ld", atomic_load(&d->sum), want);
    return rate;
}

/* ---- ps_executor, processes ---- */

static ssize_t echo8(const void *in, size_t inlen, void *out, size_t outcap)
{
    (void)outcap;
    memcpy(out, in, inlen);
    return (ssize_t)inlen;
}

static double run_ps_procs(ps_executor_t *ex, ps_future_t **fs)
{
    uint64_t t0 = bench_now_ns();
    for (uint64_t i = 0; i < N_PROC; i++)
        if (!(fs[i] = ps_executor_submit_bytes(ex, echo8, &i, sizeof i)))
            bench_fail("ps_executor_submit_bytes: %s", ps_errname(errno));
    for (uint64_t i = 0; i < N_PROC; i++) {
        uint64_t v = 0;
        size_t len = 0;
        int rc = ps_future_result_bytes(fs[i], PS_FOREVER, &v, sizeof v, &len);
        if (rc != 0 || len != sizeof v || v != i)
            bench_wrong("ps_executor, processes", "task %llu: rc %s, %zu bytes, value %llu",
                        (unsigned long long)i, ps_errname(rc), len, (unsigned long long)v);
        ps_future_free(fs[i]);
    }
    return N_PROC / seconds_since(t0);
}

/* ---- Python ---- */

static const char py_script[] =
    "import sys, time\n"
    "def ident(x):\n"
    "    return x\n"
    "def run(mode, n):\n"
    "    if mode == 'tpe':\n"
    "        from concurrent.futures import ThreadPoolExecutor\n"
    "        with ThreadPoolExecutor(2) as ex:\n"
    "            ex.submit(ident, 0).result()\n"
    "            t = time.perf_counter()\n"
    "            fs = [ex.submit(ident, i) for i in range(n)]\n"
    "            ok = all(f.result() == i for i, f in enumerate(fs))\n"
    "            return n / (time.perf_counter() - t), ok\n"
    "    arg = [i.to_bytes(8, 'little') for i in range(n)]\n"
    "    if mode == 'ppe':\n"
    "        from concurrent.futures import ProcessPoolExecutor\n"
    "        with ProcessPoolExecutor(2) as ex:\n"
    "            list(ex.map(ident, arg[:8]))\n"
    "            t = time.perf_counter()\n"
    "            fs = [ex.submit(ident, a) for a in arg]\n"
    "            ok = all(f.result() == a for a, f in zip(arg, fs))\n"
    "            return n / (time.perf_counter() - t), ok\n"
    "    import multiprocessing as mp\n"
    "    with mp.Pool(2) as p:\n"
    "        p.map(ident, arg[:8])\n"
    "        t = time.perf_counter()\n"
    "        rs = [p.apply_async(ident, (a,)) for a in arg]\n"
    "        ok = all(r.get() == a for a, r in zip(arg, rs))\n"
    "        return n / (time.perf_counter() - t), ok\n"
    "if __name__ == '__main__':\n"
    "    import multiprocessing\n"
    "    multiprocessing.set_start_method('fork')\n"
    "    rate, ok = run(sys.argv[1], int(sys.argv[2]))\n"
    "    print(rate, 'ok' if ok else 'WRONG')\n"
    "    sys.exit(0 if ok else 3)\n";

static double run_py(int sys)
{
    char cmd[sizeof g_python + sizeof g_py_script + 64], out[512];
    int n = sys == PY_TPE ? N_PY_THREAD : N_PY_PROC;
    snprintf(cmd, sizeof cmd, "'%s' %s %s %d", g_python, g_py_script, py_mode[sys], n);
    int st = bench_run_cmd(cmd, out, sizeof out);
    if (st == 3)
        bench_wrong(sys_name[sys], "%s", out);
    double rate;
    if (st != 0 || sscanf(out, "%lf", &rate) != 1 || !strstr(out, "ok"))
        bench_fail("%s: exit %d, output '%s'", cmd, st, out);
    return rate;
}

/* ---- the table ---- */

struct ratio {
    int sys, base;
    double target;
};

static const struct ratio ratios[] = {
    { PS_THREADS, GLIB_POOL, 1.0 }, { PS_THREADS, PY_TPE, 30.0 },
    { PS_PROCS, PY_PPE, 20.0 },     { PS_PROCS, PY_POOL, 0.0 },
};

static int table(bool py)
{
    int n = g_rounds, miss = 0;
    printf("  %-30s %10s [%9s .. %9s]\n", "system", "tasks/s", "min", "max");
    for (int s = 0; s < NSYS; s++) {
        if (py_mode[s] && !py)
            continue;
        printf("  %-30s %10.0f [%9.0f .. %9.0f]\n", sys_name[s], bench_median(g_rate[s], n),
               bench_min(g_rate[s], n), bench_max(g_rate[s], n));
    }
    printf("\n  %-58s %8s [%7s .. %7s]  %s\n", "ratio (median of per-round ratios)", "", "min",
           "max", "target");
    for (size_t k = 0; k < sizeof ratios / sizeof ratios[0]; k++) {
        const struct ratio *q = &ratios[k];
        if (py_mode[q->base] && !py)
            continue;
        double v[MAX_ROUNDS];
        for (int r = 0; r < n; r++)
            v[r] = g_rate[q->sys][r] / g_rate[q->base][r];
        double med = bench_median(v, n);
        char label[80], target[32] = "-";
        snprintf(label, sizeof label, "%s / %s", sys_name[q->sys], sys_name[q->base]);
        if (q->target > 0)
            snprintf(target, sizeof target, ">= %.0fx %s", q->target,
                     med >= q->target ? "ok" : "MISS");
        printf("  %-58s %7.2fx [%6.2fx .. %6.2fx]  %s\n", label, med, bench_min(v, n),
               bench_max(v, n), target);
        miss += q->target > 0 && med < q->target;
    }
    return miss;
}

int main(void)
{
    bench_run_t run;
    g_rounds = bench_begin(&run, ROUNDS_DEFAULT, MAX_ROUNDS, TOTAL_WATCHDOG_S);
    bench_python_setup(py_script, g_python, sizeof g_python, g_py_script, sizeof g_py_script);
    bool py = g_python[0] != '\0';

    ps_future_t **fs = malloc(sizeof *fs * N_THREAD);
    ps_executor_t *threads = ps_executor_new(2, 0);
    ps_executor_t *procs = ps_executor_new(2, PS_PROCESSES);
    glib_done_t done = { 0 };
    GThreadPool *pool = g_thread_pool_new(glib_task, &done, 2, TRUE, NULL);
    if (!fs || !threads || !procs || !pool)
        bench_fail("setup: %s", strerror(errno));
    g_mutex_init(&done.mu);
    g_cond_init(&done.cond);
    /* Warm-up: workers started, pools grown; the worker processes first. Each
     * fork makes the pages this process had then copy-on-write, and the first
     * write to each afterwards copies it: 0.2 s for the thread executor's 200k
     * futures here, charged to whatever runs next. A program that makes its
     * pools at start-up pays that before its heap has grown; so does this one. */
    run_ps_procs(procs, fs);
    run_ps_threads(threads, fs);
    run_glib(pool, &done);

    for (int r = 0; r < g_rounds; r++) {
        for (int j = 0; j < NSYS; j++) {
            int s = (j + r) % NSYS;
            if (s == PS_THREADS)
                g_rate[s][r] = run_ps_threads(threads, fs);
            else if (s == GLIB_POOL)
                g_rate[s][r] = run_glib(pool, &done);
            else if (s == PS_PROCS)
                g_rate[s][r] = run_ps_procs(procs, fs);
            else if (py)
                g_rate[s][r] = run_py(s);
        }
        fprintf(stderr, "bench_executor: round %d/%d done\n", r + 1, g_rounds);
    }

    printf("\nexecutors: trivial tasks, submit all then every result checked, tasks/s, median "
           "of %d rounds rotated [min .. max]\n", g_rounds);
    printf("  threads: %d tasks per run (Python %d); processes: %d tasks of 8 bytes per run "
           "(Python %d); not pinned\n", N_THREAD, N_PY_THREAD, N_PROC, N_PY_PROC);
    if (py)
        printf("  Python: %s\n", g_python);
    else
        printf("  python: not available (python3 with multiprocessing not found)\n");
    int miss = table(py);
    g_thread_pool_free(pool, FALSE, TRUE);
    ps_executor_free(threads);
    ps_executor_free(procs);
    free(fs);
    bench_end(&run, "all results", miss);
    return 0;
}
