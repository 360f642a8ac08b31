/* SPDX-License-Identifier: MIT */
/* bench.h - small helpers shared by the pysync benchmarks (plain programs).
 * Everything is static inline so a program may use any subset without warnings. */
#ifndef PS_BENCH_H
#define PS_BENCH_H

#include <errno.h>
#include <limits.h>
#include <pthread.h>
#include <signal.h>
#include <sched.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

/* Compiler barrier: the compiler may not cache memory across it. No CPU fence. */
#define BENCH_BARRIER() __asm__ __volatile__("" ::: "memory")

/* A call the benchmark needs failed: not a measurement, so stop (exit 2). */
static inline void bench_must(int rc, const char *what)
{
    if (rc != 0) {
        fprintf(stderr, "%s: %s: %s\n", program_invocation_short_name, what, strerror(rc));
        exit(2);
    }
}

/* Waits (yielding) until *flag reaches value: start lines between processes. */
static inline void bench_spin_until(atomic_int *flag, int value)
{
    while (atomic_load_explicit(flag, memory_order_acquire) < value)
        sched_yield();
}

/* Monotonic clock in nanoseconds. */
static inline uint64_t bench_now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static inline void bench_sleep_ns(uint64_t ns)
{
    struct timespec ts = { (time_t)(ns / 1000000000u), (long)(ns % 1000000000u) };
    while (nanosleep(&ts, &ts) != 0 && errno == EINTR)
        ;
}

static inline int bench_cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

/* Median of n samples (the input is not modified). n == 0: 0. */
static inline double bench_median(const double *v, size_t n)
{
    if (n == 0)
        return 0.0;
    double *t = malloc(n * sizeof *t);
    if (!t) {
        perror("malloc");
        exit(2);
    }
    memcpy(t, v, n * sizeof *t);
    qsort(t, n, sizeof *t, bench_cmp_double);
    double m = n % 2 ? t[n / 2] : (t[n / 2 - 1] + t[n / 2]) / 2.0;
    free(t);
    return m;
}

static inline double bench_min(const double *v, size_t n)
{
    double m = n ? v[0] : 0.0;
    for (size_t i = 1; i < n; i++)
        if (v[i] < m)
            m = v[i];
    return m;
}

static inline double bench_max(const double *v, size_t n)
{
    double m = n ? v[0] : 0.0;
    for (size_t i = 1; i < n; i++)
        if (v[i] > m)
            m = v[i];
    return m;
}

/* Zeroed anonymous MAP_SHARED memory, inherited by children forked later. */
static inline void *bench_shared_alloc(size_t size)
{
    void *p = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    if (p == MAP_FAILED) {
        perror("mmap");
        exit(2);
    }
    return p;
}

/* Pinning the two parties of a 2-party benchmark to two distinct CPUs: on a 2-CPU VM
 * the scheduler otherwise sometimes puts both on one CPU, and the run flips between
 * a "contended" and a "time-sliced" mode (PITFALLS 11). BENCH_NOPIN=1 disables it. */
static inline int bench_cpu_slot(int slot, int *cpu)
{
    static cpu_set_t initial;
    static int ncpu = -1;
    if (ncpu < 0) {
        const char *e = getenv("BENCH_NOPIN");
        ncpu = 0;
        if (!(e && *e && *e != '0') && sched_getaffinity(0, sizeof initial, &initial) == 0)
            ncpu = CPU_COUNT(&initial);
    }
    if (ncpu < 2)
        return -1;
    for (int c = 0, seen = 0; c < CPU_SETSIZE; c++)
        if (CPU_ISSET(c, &initial) && seen++ == slot % ncpu) {
            *cpu = c;
            return 0;
        }
    return -1;
}

/* Call once from the main thread before any pinning (captures the allowed CPUs).
 * Returns the number of CPUs the parties will be spread over (0: no pinning). */
static inline int bench_pin_init(void)
{
    int c0, c1;
    return bench_cpu_slot(0, &c0) == 0 && bench_cpu_slot(1, &c1) == 0 && c0 != c1 ? 2 : 0;
}

/* Pins the calling thread (or single-threaded process) to the slot-th allowed CPU. */
static inline void bench_pin_self(int slot)
{
    int cpu;
    if (bench_cpu_slot(slot, &cpu) != 0)
        return;
    cpu_set_t set;
    CPU_ZERO(&set);
    CPU_SET(cpu, &set);
    sched_setaffinity(0, sizeof set, &set);  /* 0: the calling thread */
}

/* A second thread that only sleeps (blocked in read on a pipe), so that glibc stops
 * taking its single-thread shortcuts for private mutexes (PITFALLS 2). */
typedef struct bench_idle {
    pthread_t tid;
    int fd[2];
} bench_idle_t;

static inline void *bench_idle_main(void *arg)
{
    bench_idle_t *t = arg;
    char c;
    while (read(t->fd[0], &c, 1) < 0 && errno == EINTR)
        ;
    return NULL;
}

static inline void bench_idle_start(bench_idle_t *t)
{
    int rc;
    if (pipe(t->fd) != 0) {
        perror("pipe");
        exit(2);
    }
    if ((rc = pthread_create(&t->tid, NULL, bench_idle_main, t)) != 0) {
        fprintf(stderr, "pthread_create: %s\n", strerror(rc));
        exit(2);
    }
}

static inline void bench_idle_stop(bench_idle_t *t)
{
    close(t->fd[1]);  /* read returns 0 */
    pthread_join(t->tid, NULL);
    close(t->fd[0]);
}

/* Exit 2: the benchmark could not run (setup failed). */
static inline _Noreturn __attribute__((format(printf, 1, 2))) void bench_fail(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fprintf(stderr, "%s: ", program_invocation_short_name);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
    exit(2);
}

/* Exit 1: a result was wrong, so no figure of the run can be trusted. */
static inline _Noreturn __attribute__((format(printf, 2, 3))) void bench_wrong(const char *what,
                                                                            const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fprintf(stderr, "%s: CORRECTNESS FAILURE: %s: ", program_invocation_short_name, what);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
    exit(1);
}

/* fork() for a benchmark's worker process: in the child (0 returned) it dies with
 * the parent (PITFALLS 3: checked after arming) and after watchdog_s seconds, so
 * a broken run never leaves a process spinning. The parent gets the pid. */
static inline pid_t bench_fork(unsigned watchdog_s)
{
    pid_t parent = getpid();
    fflush(NULL);
    pid_t pid = fork();
    if (pid < 0)
        bench_fail("fork: %s", strerror(errno));
    if (pid == 0) {
        prctl(PR_SET_PDEATHSIG, SIGKILL);
        if (getppid() != parent)
            _exit(3);
        alarm(watchdog_s);
    }
    return pid;
}

/* Runs cmd, returns its output in out (NUL-terminated) and its exit status. */
static inline int bench_run_cmd(const char *cmd, char *out, size_t n)
{
    fflush(NULL);
    FILE *p = popen(cmd, "r");
    if (!p)
        bench_fail("popen %s: %s", cmd, strerror(errno));
    size_t got = 0;
    while (got + 1 < n) {
        size_t r = fread(out + got, 1, n - 1 - got, p);
        if (r == 0)
            break;
        got += r;
    }
    out[got] = '\0';
    int st = pclose(p);
    return st == -1 ? -1 : WIFEXITED(st) ? WEXITSTATUS(st) : 128;
}

/* The temporary file of bench_python_setup, removed at exit. */
static inline char *bench_py_script_path(void)
{
    static char path[64];
    return path;
}

static inline void bench_py_cleanup(void)
{
    if (bench_py_script_path()[0])
        unlink(bench_py_script_path());
}

/* For the comparisons with Python: python gets python3's path ("" if there is
 * none, and then nothing else happens), script is written to a temporary file
 * whose path goes to script_path. */
static inline void bench_python_setup(const char *script, char *python, size_t n,
                                      char *script_path, size_t path_n)
{
    char out[PATH_MAX + 64];
    python[0] = '\0';
    int st = bench_run_cmd("python3 -c 'import multiprocessing, sys; print(sys.executable)' "
                           "2>/dev/null", out, sizeof out);
    out[strcspn(out, "\n")] = '\0';
    if (st != 0 || out[0] != '/')
        return;
    char *path = bench_py_script_path();
    snprintf(path, 64, "/tmp/%s_%ld.py", program_invocation_short_name, (long)getpid());
    FILE *f = fopen(path, "w");
    if (!f || fputs(script, f) < 0 || fclose(f) != 0)
        bench_fail("%s: %s", path, strerror(errno));
    atexit(bench_py_cleanup);
    snprintf(script_path, path_n, "%s", path);
    snprintf(python, n, "%s", out);
}

/* The 1-, 5- and 15-minute load averages ("0.58 0.77 1.23"), to print next to
 * results: other work on the machine shows in the spread. "?" if unreadable. */
static inline void bench_loadavg(char *buf, size_t n)
{
    FILE *f = fopen("/proc/loadavg", "r");
    double a = 0, b = 0, c = 0;
    if (f && fscanf(f, "%lf %lf %lf", &a, &b, &c) == 3)
        snprintf(buf, n, "%.2f %.2f %.2f", a, b, c);
    else
        snprintf(buf, n, "?");
    if (f)
        fclose(f);
}

/* What bench_begin noted, for bench_end's closing line. */
typedef struct bench_run {
    uint64_t t0;
    char load0[64];
} bench_run_t;

/* Starts a run: line-buffered stdout, a watchdog of watchdog_s seconds, the clock
 * and the load average. Returns the rounds to run: BENCH_ROUNDS (1 .. max) or dflt. */
static inline int bench_begin(bench_run_t *run, int dflt, int max, unsigned watchdog_s)
{
    setvbuf(stdout, NULL, _IOLBF, 0);
    alarm(watchdog_s);
    run->t0 = bench_now_ns();
    bench_loadavg(run->load0, sizeof run->load0);
    const char *e = getenv("BENCH_ROUNDS");
    int n = e ? atoi(e) : 0;
    return n <= 0 ? dflt : n > max ? max : n;
}

/* The closing line: time taken, load before and after, what was verified. */
static inline void bench_end(const bench_run_t *run, const char *verified, int miss)
{
    char load1[64];
    bench_loadavg(load1, sizeof load1);
    printf("\ntotal %.1f s; load average %s at the start, %s at the end (%ld CPUs); "
           "%s verified; %d target%s missed\n",
           (double)(bench_now_ns() - run->t0) / 1e9, run->load0, load1,
           sysconf(_SC_NPROCESSORS_ONLN), verified, miss, miss == 1 ? "" : "s");
}

#endif
