/* SPDX-License-Identifier: MIT */
/* Benchmark (not a test): ps_queue against GLib's GAsyncQueue, a plain
 * mutex+condvar ring and Python's queue.Queue, same run, same machine.
 *
 * Scenarios: 1 producer thread -> 1 consumer thread, bounded (1024) and
 * unbounded; 2 producers x 2 consumers (bounded 1024); PriorityQueue put+get
 * pairs with 10k items resident. The systems are interleaved A B C D A B C D
 * and each figure is the median of ROUNDS runs (PITFALLS 11). Threads wait on a
 * barrier and the clock starts when it opens; the PriorityQueue run keeps a
 * second thread alive so glibc takes its multi-threaded paths (PITFALLS 2). */
#include <pysync/queue.h>

#include <errno.h>
#include <glib.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define ROUNDS    5
#define N_ITEMS   2000000L      /* per C run */
#define N_PY      100000L       /* per Python run */
#define PQ_RESIDENT 10000
#define PQ_PAIRS  2000000L
#define PQ_PY_PAIRS 200000L

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

/* ---- the plain ring: what one writes in an afternoon ---- */

typedef struct ring {
    pthread_mutex_t mu;
    pthread_cond_t not_empty, not_full;
    void **slots;
    size_t cap, head, count;
} ring_t;

static void ring_init(ring_t *r, size_t cap)
{
    pthread_mutex_init(&r->mu, NULL);
    pthread_cond_init(&r->not_empty, NULL);
    pthread_cond_init(&r->not_full, NULL);
    r->slots = malloc(cap * sizeof *r->slots);
    r->cap = cap;
    r->head = r->count = 0;
}

static void ring_destroy(ring_t *r)
{
    pthread_mutex_destroy(&r->mu);
    pthread_cond_destroy(&r->not_empty);
    pthread_cond_destroy(&r->not_full);
    free(r->slots);
}

static void ring_put(ring_t *r, void *item)
{
    pthread_mutex_lock(&r->mu);
    while (r->count == r->cap)
        pthread_cond_wait(&r->not_full, &r->mu);
    r->slots[(r->head + r->count++) % r->cap] = item;
    pthread_cond_signal(&r->not_empty);
    pthread_mutex_unlock(&r->mu);
}

static void *ring_get(ring_t *r)
{
    pthread_mutex_lock(&r->mu);
    while (r->count == 0)
        pthread_cond_wait(&r->not_empty, &r->mu);
    void *item = r->slots[r->head];
    r->head = (r->head + 1) % r->cap;
    r->count--;
    pthread_cond_signal(&r->not_full);
    pthread_mutex_unlock(&r->mu);
    return item;
}

/* ---- one producer/consumer run over any of the three C queues ---- */

enum sys { SYS_PS, SYS_GLIB, SYS_RING, SYS_PY, NSYS };
static const char *const sys_name[NSYS] = { "ps_queue", "GAsyncQueue", "mutex+cv ring",
                                            "Python queue" };

struct run {
    enum sys sys;
    ps_queue_t *ps;
    GAsyncQueue *glib;
    ring_t *ring;
    long per_thread;
    pthread_barrier_t start;
    long bad;                   /* consumers' checksum errors */
};

static void *producer(void *arg)
{
    struct run *r = arg;
    pthread_barrier_wait(&r->start);
    for (long i = 1; i <= r->per_thread; i++) {
        void *item = (void *)(intptr_t)i;
        switch (r->sys) {
        case SYS_PS: ps_queue_put(r->ps, item, true, PS_FOREVER); break;
        case SYS_GLIB: g_async_queue_push(r->glib, item); break;
        default: ring_put(r->ring, item); break;
        }
    }
    return NULL;
}

static void *consumer(void *arg)
{
    struct run *r = arg;
    long bad = 0;
    pthread_barrier_wait(&r->start);
    for (long i = 0; i < r->per_thread; i++) {
        void *item = NULL;
        switch (r->sys) {
        case SYS_PS: ps_queue_get(r->ps, &item, true, PS_FOREVER); break;
        case SYS_GLIB: item = g_async_queue_pop(r->glib); break;
        default: item = ring_get(r->ring); break;
        }
        bad += item == NULL;
    }
    __atomic_fetch_add(&r->bad, bad, __ATOMIC_RELAXED);
    return NULL;
}

/* items/s for nprod -> ncons threads moving N_ITEMS; maxsize 0: unbounded. */
static double run_c(enum sys sys, int nprod, int ncons, size_t maxsize)
{
    struct run r = { .sys = sys, .per_thread = N_ITEMS / nprod };
    ps_queue_t ps;
    ring_t ring;
    if (sys == SYS_PS) {
        ps_queue_init(&ps, maxsize);
        r.ps = &ps;
    } else if (sys == SYS_GLIB) {
        r.glib = g_async_queue_new();
    } else {
        ring_init(&ring, maxsize ? maxsize : 1 << 20);   /* "unbounded": never fills */
        r.ring = &ring;
    }
    pthread_t th[8];
    int n = nprod + ncons;
    pthread_barrier_init(&r.start, NULL, (unsigned)n + 1);
    for (int i = 0; i < n; i++)
        pthread_create(&th[i], NULL, i < nprod ? producer : consumer, &r);
    /* every thread moves per_thread items: the scenarios have nprod == ncons */
    pthread_barrier_wait(&r.start);
    double t0 = now();
    for (int i = 0; i < n; i++)
        pthread_join(th[i], NULL);
    double dt = now() - t0;
    pthread_barrier_destroy(&r.start);
    if (sys == SYS_PS)
        ps_queue_destroy(&ps);
    else if (sys == SYS_GLIB)
        g_async_queue_unref(r.glib);
    else
        ring_destroy(&ring);
    if (r.bad) {
        fprintf(stderr, "bench_queue: %ld bad items\n", r.bad);
        exit(1);
    }
    return (double)(r.per_thread * nprod) / dt;
}

/* ---- PriorityQueue: put+get pairs with PQ_RESIDENT items resident ---- */

static int cmp_key(const void *a, const void *b)
{
    uintptr_t x = (uintptr_t)a, y = (uintptr_t)b;
    return (x > y) - (x < y);
}

static uint64_t rng_state = 88172645463325252ULL;

static uintptr_t next_key(void)
{
    rng_state ^= rng_state << 13;       /* xorshift64 */
    rng_state ^= rng_state >> 7;
    rng_state ^= rng_state << 17;
    return (uintptr_t)(rng_state >> 16) | 1;
}

static pthread_mutex_t idle_mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t idle_cv = PTHREAD_COND_INITIALIZER;
static int idle_stop;

static void *idle_thread(void *arg)
{
    (void)arg;
    pthread_mutex_lock(&idle_mu);
    while (!idle_stop)
        pthread_cond_wait(&idle_cv, &idle_mu);
    pthread_mutex_unlock(&idle_mu);
    return NULL;
}

static double run_pq(void)
{
    ps_queue_t q;
    ps_priorityqueue_init(&q, 0, cmp_key);
    for (int i = 0; i < PQ_RESIDENT; i++)
        ps_queue_put_nowait(&q, (void *)next_key());
    double t0 = now();
    for (long i = 0; i < PQ_PAIRS; i++) {
        void *x;
        ps_queue_put(&q, (void *)next_key(), true, PS_FOREVER);
        ps_queue_get(&q, &x, true, PS_FOREVER);
    }
    double dt = now() - t0;
    ps_queue_destroy(&q);
    return (double)PQ_PAIRS / dt;
}

/* ---- Python, as a subprocess; it prints one figure ---- */

static const char py_script[] =
    "import queue, random, sys, threading, time\n"
    "mode, n = sys.argv[1], int(sys.argv[2])\n"
    "if mode == 'pq':\n"
    "    q = queue.PriorityQueue(); r = random.Random(1)\n"
    "    for _ in range(int(sys.argv[3])): q.put(r.random())\n"
    "    keys = [r.random() for _ in range(n)]\n"
    "    put, get = q.put, q.get\n"
    "    t0 = time.perf_counter()\n"
    "    for k in keys:\n"
    "        put(k); get()\n"
    "    print(n / (time.perf_counter() - t0)); sys.exit(0)\n"
    "P, C, maxsize = int(sys.argv[3]), int(sys.argv[4]), int(sys.argv[5])\n"
    "q = queue.Queue(maxsize); start = threading.Barrier(P + C + 1)\n"
    "def prod():\n"
    "    start.wait(); put = q.put\n"
    "    for i in range(n // P): put(i)\n"
    "def cons():\n"
    "    start.wait(); get = q.get\n"
    "    for i in range(n // C): get()\n"
    "ts = [threading.Thread(target=prod) for _ in range(P)] + "
    "[threading.Thread(target=cons) for _ in range(C)]\n"
    "for t in ts: t.start()\n"
    "start.wait(); t0 = time.perf_counter()\n"
    "for t in ts: t.join()\n"
    "print(n // P * P / (time.perf_counter() - t0))\n";

static char py_path[64];

static void write_py_script(void)
{
    snprintf(py_path, sizeof py_path, "/tmp/bench_queue_%ld.py", (long)getpid());
    FILE *f = fopen(py_path, "w");
    if (!f || fputs(py_script, f) < 0 || fclose(f) != 0) {
        perror("bench_queue: python script");
        exit(1);
    }
}

static double run_python(const char *args)
{
    char cmd[256];
    snprintf(cmd, sizeof cmd, "python3 %s %s", py_path, args);
    FILE *p = popen(cmd, "r");
    double v = 0;
    if (!p || fscanf(p, "%lf", &v) != 1)
        v = 0;
    if (p)
        pclose(p);
    return v;
}

/* ---- the table ---- */

struct scenario {
    const char *name;
    int nprod, ncons;
    size_t maxsize;
    double v[NSYS][ROUNDS];
};

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static double median(double *v, int n)
{
    double s[ROUNDS];
    memcpy(s, v, sizeof(double) * (size_t)n);
    qsort(s, (size_t)n, sizeof *s, cmp_double);
    return n % 2 ? s[n / 2] : (s[n / 2 - 1] + s[n / 2]) / 2;
}

static void print_ratio(double a, double b)
{
    if (a > 0 && b > 0)
        printf(" %8.1fx", a / b);
    else
        printf(" %9s", "-");
}

int main(void)
{
    struct scenario sc[] = {
        { "1->1 bounded(1024)", 1, 1, 1024, { { 0 } } },
        { "1->1 unbounded", 1, 1, 0, { { 0 } } },
        { "2x2 MPMC bounded(1024)", 2, 2, 1024, { { 0 } } },
    };
    enum { NSC = sizeof sc / sizeof sc[0] };
    double pq_ps[ROUNDS], pq_py[ROUNDS];
    char args[128];

    write_py_script();
    pthread_t idle;
    pthread_create(&idle, NULL, idle_thread, NULL);

    for (int round = 0; round < ROUNDS; round++) {
        for (int s = 0; s < NSC; s++) {
            for (int sys = 0; sys < NSYS; sys++) {
                if (sys == SYS_PY) {
                    snprintf(args, sizeof args, "mpmc %ld %d %d %zu", N_PY, sc[s].nprod,
                             sc[s].ncons, sc[s].maxsize);
                    sc[s].v[sys][round] = run_python(args);
                } else {
                    sc[s].v[sys][round] = run_c(sys, sc[s].nprod, sc[s].ncons, sc[s].maxsize);
                }
            }
        }
        pq_ps[round] = run_pq();
        snprintf(args, sizeof args, "pq %ld %d", PQ_PY_PAIRS, PQ_RESIDENT);
        pq_py[round] = run_python(args);
        fprintf(stderr, "round %d/%d done\n", round + 1, ROUNDS);
    }

    printf("\nitems/s, median of %d interleaved rounds (M = 1e6)\n", ROUNDS);
    printf("%-24s", "scenario");
    for (int sys = 0; sys < NSYS; sys++)
        printf(" %13s", sys_name[sys]);
    printf(" %9s %9s %9s\n", "/GAsync", "/ring", "/Python");
    for (int s = 0; s < NSC; s++) {
        double m[NSYS];
        printf("%-24s", sc[s].name);
        for (int sys = 0; sys < NSYS; sys++) {
            m[sys] = median(sc[s].v[sys], ROUNDS);
            printf(" %12.2fM", m[sys] / 1e6);
        }
        print_ratio(m[SYS_PS], m[SYS_GLIB]);
        print_ratio(m[SYS_PS], m[SYS_RING]);
        print_ratio(m[SYS_PS], m[SYS_PY]);
        printf("\n");
    }
    double mps = median(pq_ps, ROUNDS), mpy = median(pq_py, ROUNDS);
    printf("%-24s %12.2fM %13s %13s %12.2fM %9s %9s", "PriorityQueue 10k put+get", mps / 1e6,
           "-", "-", mpy / 1e6, "-", "-");
    print_ratio(mps, mpy);
    printf("\n(GAsyncQueue is always unbounded; the ring's \"unbounded\" is 2^20 slots.)\n");

    pthread_mutex_lock(&idle_mu);
    idle_stop = 1;
    pthread_cond_signal(&idle_cv);
    pthread_mutex_unlock(&idle_mu);
    pthread_join(idle, NULL);
    remove(py_path);
    return 0;
}
