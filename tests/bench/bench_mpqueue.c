/* SPDX-License-Identifier: MIT */
/* bench_mpqueue.c - benchmark (not a test): the cross-process queue against
 * Boost.Interprocess message_queue, POSIX mq_send/mq_receive, a pipe and Python's
 * multiprocessing.Queue, same run, same machine.
 *
 * 1 producer process -> 1 consumer process (both forked), 64-byte and 4096-byte
 * messages. The producer sends one message per call, the consumer receives one
 * per call (no batching); both block when the channel is full / empty. Every
 * message carries its sequence number in its first and last 8 bytes and the
 * consumer checks both and the size, then that nothing is left over; a wrong or
 * missing message exits 1. The clock starts when both processes wait at the
 * start line and stops when the consumer has the last message.
 *
 * Depth: every channel holds at most DEPTH (256) messages where the system
 * allows it: ps_mpqueue maxsize 256 with a ring of exactly 256 messages;
 * message_queue(256, size); a pipe whose buffer is 256 messages (F_SETPIPE_SZ;
 * small writes share pages); multiprocessing.Queue(256). POSIX mq is limited to
 * fs.mqueue.msg_max (10 by default; more needs root outside a user namespace,
 * PITFALLS 10): the depth it got is printed, and an extra ps_mpqueue row runs at
 * that same depth (info). The two processes are pinned to two distinct CPUs
 * (BENCH_NOPIN=1: not), the Boost and Python pairs too.
 *
 * Pipes and mq swing between a fast and a slow mode here (PITFALLS 11): the
 * systems run in turn, rotated each round (A B C D E, B C D E A, ...), each
 * figure is the median of ROUNDS runs [min .. max], and each ratio is the median
 * of the per-round ratios. Message counts are calibrated once per system so that
 * one run takes ~0.2 s (Python ~0.5 s). Boost: tests/bench/boost_mq.cpp, built
 * next to this program as boost_mq (make deps-bench installs libboost-dev);
 * without it the table says "not available". BENCH_ROUNDS=N changes ROUNDS. */
#include <pysync/multiprocessing.h>

#include <fcntl.h>
#include <limits.h>
#include <mqueue.h>
#include <signal.h>
#include <stdalign.h>
#include <stdarg.h>
#include <stdbool.h>
#include <sys/stat.h>
#include <sys/wait.h>

#include "bench.h"

#define ROUNDS_DEFAULT 7
#define MAX_ROUNDS 31
#define DEPTH 256
#define C_TARGET_S 0.2          /* one run of a C system (and Boost) */
#define PY_TARGET_S 0.5         /* one run of Python */
#define CHILD_WATCHDOG_S 120
#define TOTAL_WATCHDOG_S 900

enum { S_PS, S_BOOST, S_MQ, S_PIPE, S_PY, S_PSMQ, S_N };

static const char *const sys_name[S_N] = {
    "ps_mpqueue", "Boost message_queue", "POSIX mq", "pipe", "Python mp.Queue",
    "ps_mpqueue @ POSIX mq's depth",
};

typedef struct sizecase {
    size_t size;
    bool on[S_N];
    size_t depth[S_N];
    char note[S_N][96];
    uint64_t count[S_N];
    double rate[S_N][MAX_ROUNDS];   /* msgs/s */
} sizecase_t;

static int g_rounds;
static int g_cpu[2] = { -1, -1 };
static char g_boost[PATH_MAX + 16];     /* "": not available */
static char g_boost_why[160];
static char g_python[PATH_MAX + 64];    /* "": not available */
static char g_py_script[64];

/* ---- the C channels: ps_mpqueue, POSIX mq, pipe ---- */

typedef struct chan {
    int sys;
    size_t size;
    ps_mpqueue_t *q;
    mqd_t mq;
    int fd[2];
} chan_t;

static size_t round8(size_t n) { return (n + 7) & ~(size_t)7; }

/* The ring bytes ps_mpqueue needs for exactly `depth` messages of `size` bytes. */
static size_t ps_capacity(size_t size, size_t depth)
{
    return depth * (round8(size) + PS_MPQUEUE_OVERHEAD);
}

static long read_long_file(const char *path)
{
    FILE *f = fopen(path, "r");
    long v = -1;
    if (f) {
        if (fscanf(f, "%ld", &v) != 1)
            v = -1;
        fclose(f);
    }
    return v;
}

static mqd_t mq_make(size_t size, size_t depth, int *err)
{
    char name[64];
    snprintf(name, sizeof name, "/pysync_bench_mq_%ld", (long)getpid());
    struct mq_attr a = { .mq_maxmsg = (long)depth, .mq_msgsize = (long)size };
    mq_unlink(name);
    mqd_t q = mq_open(name, O_CREAT | O_EXCL | O_RDWR, 0600, &a);
    *err = errno;
    if (q != (mqd_t)-1)
        mq_unlink(name);    /* the descriptor is all the children need */
    return q;
}

/* The deepest POSIX mq up to DEPTH that the system lets us make, and why. */
static size_t mq_probe_depth(size_t size, char *note, size_t n)
{
    int err = 0, refused = 0;     /* refused: why the last deeper one failed */
    long msg_max = read_long_file("/proc/sys/fs/mqueue/msg_max");
    for (size_t d = DEPTH; d >= 1;) {
        mqd_t q = mq_make(size, d, &err);
        if (q != (mqd_t)-1) {
            mq_close(q);
            if (d == DEPTH)
                snprintf(note, n, "%zu", d);
            else
                snprintf(note, n, "%zu (fs.mqueue.msg_max %ld%s)", d, msg_max,
                         refused == EMFILE ? ", RLIMIT_MSGQUEUE" : "");
            return d;
        }
        if (err != EINVAL && err != EMFILE && err != ENOMEM)
            break;
        refused = err;
        d = err == EINVAL && msg_max > 0 && (long)d > msg_max ? (size_t)msg_max : d / 2;
    }
    snprintf(note, n, "not available (mq_open: %s)", strerror(err));
    return 0;
}

static void chan_open(chan_t *c, int sys, size_t size, size_t depth)
{
    memset(c, 0, sizeof *c);
    c->sys = sys;
    c->size = size;
    c->fd[0] = c->fd[1] = -1;
    c->mq = (mqd_t)-1;
    if (sys == S_PS || sys == S_PSMQ) {
        c->q = ps_mpqueue_new(depth, ps_capacity(size, depth));
        if (!c->q)
            bench_fail("ps_mpqueue_new(%zu, %zu): %s", depth, ps_capacity(size, depth),
                 ps_errname(errno));
    } else if (sys == S_MQ) {
        int err;
        if ((c->mq = mq_make(size, depth, &err)) == (mqd_t)-1)
            bench_fail("mq_open(depth %zu, size %zu): %s", depth, size, strerror(err));
    } else {
        if (pipe(c->fd) != 0)
            bench_fail("pipe: %s", strerror(errno));
        if (fcntl(c->fd[1], F_SETPIPE_SZ, (int)(depth * size)) < 0)
            bench_fail("F_SETPIPE_SZ %zu: %s", depth * size, strerror(errno));
    }
}

static void chan_close(chan_t *c)
{
    if (c->q)
        ps_mpqueue_free(c->q);
    if (c->mq != (mqd_t)-1)
        mq_close(c->mq);
    for (int i = 0; i < 2; i++)
        if (c->fd[i] >= 0)
            close(c->fd[i]);
}

/* 0 or an error code. */
static int chan_put(chan_t *c, const unsigned char *buf)
{
    switch (c->sys) {
    case S_PS:
    case S_PSMQ:
        return ps_mpqueue_put(c->q, buf, c->size, true, PS_FOREVER);
    case S_MQ:
        while (mq_send(c->mq, (const char *)buf, c->size, 0) != 0)
            if (errno != EINTR)
                return errno;
        return 0;
    default:
        for (size_t off = 0; off < c->size;) {
            ssize_t w = write(c->fd[1], buf + off, c->size - off);
            if (w < 0 && errno != EINTR)
                return errno;
            off += w > 0 ? (size_t)w : 0;
        }
        return 0;
    }
}

/* Receives one message: 0 and its length, or an error code. */
static int chan_get(chan_t *c, unsigned char *buf, size_t *len)
{
    switch (c->sys) {
    case S_PS:
    case S_PSMQ:
        return ps_mpqueue_get(c->q, buf, c->size, len, true, PS_FOREVER);
    case S_MQ:
        for (;;) {
            ssize_t r = mq_receive(c->mq, (char *)buf, c->size, NULL);
            if (r >= 0) {
                *len = (size_t)r;
                return 0;
            }
            if (errno != EINTR)
                return errno;
        }
    default:
        /* One message per read; loops only if a read ever came back short. */
        for (*len = 0; *len < c->size;) {
            ssize_t r = read(c->fd[0], buf + *len, c->size - *len);
            if (r == 0)
                return EPIPE;
            if (r < 0 && errno != EINTR)
                return errno;
            *len += r > 0 ? (size_t)r : 0;
        }
        return 0;
    }
}

/* The consumer has all its messages: nothing may be left. 0, or what is wrong. */
static const char *chan_left_over(chan_t *c, unsigned char *buf)
{
    size_t len;
    switch (c->sys) {
    case S_PS:
    case S_PSMQ:
        return ps_mpqueue_get_nowait(c->q, buf, c->size, &len) == EAGAIN ? NULL
                                                                         : "a message too many";
    case S_MQ: {
        struct mq_attr a;
        return mq_getattr(c->mq, &a) == 0 && a.mq_curmsgs == 0 ? NULL : "a message too many";
    }
    default:    /* the producer closes its end when done: end of file, no bytes */
        return read(c->fd[0], buf, c->size) == 0 ? NULL : "bytes after the last message";
    }
}

typedef struct ctl {
    alignas(64) atomic_int ready;
    atomic_int go;
    alignas(64) uint64_t t_end;
    int bad;
    char why[160];
} ctl_t;

static void stamp(unsigned char *buf, size_t size, uint64_t seq)
{
    memcpy(buf, &seq, 8);
    memcpy(buf + size - 8, &seq, 8);
}

static bool stamped(const unsigned char *buf, size_t size, uint64_t seq)
{
    uint64_t a, b;
    memcpy(&a, buf, 8);
    memcpy(&b, buf + size - 8, 8);
    return a == seq && b == seq;
}

static int producer(chan_t *c, uint64_t count, ctl_t *k)
{
    unsigned char *buf = malloc(c->size);
    if (!buf)
        return 2;
    memset(buf, 0x5a, c->size);
    if (c->fd[0] >= 0)
        close(c->fd[0]);
    bench_pin_self(0);
    atomic_fetch_add(&k->ready, 1);
    bench_spin_until(&k->go, 1);
    for (uint64_t i = 0; i < count; i++) {
        stamp(buf, c->size, i);
        int rc = chan_put(c, buf);
        if (rc != 0) {
            snprintf(k->why, sizeof k->why, "put %llu: %s", (unsigned long long)i,
                     ps_errname(rc));
            return 2;
        }
    }
    if (c->fd[1] >= 0)
        close(c->fd[1]);
    free(buf);
    return 0;
}

static int consumer(chan_t *c, uint64_t count, ctl_t *k)
{
    unsigned char *buf = malloc(c->size);
    if (!buf)
        return 2;
    if (c->fd[1] >= 0)
        close(c->fd[1]);
    bench_pin_self(1);
    atomic_fetch_add(&k->ready, 1);
    bench_spin_until(&k->go, 1);
    for (uint64_t i = 0; i < count; i++) {
        size_t len = 0;
        int rc = chan_get(c, buf, &len);
        if (rc != 0) {
            snprintf(k->why, sizeof k->why, "get %llu: %s", (unsigned long long)i,
                     ps_errname(rc));
            return 2;
        }
        if (len != c->size || !stamped(buf, c->size, i)) {
            uint64_t seq;
            memcpy(&seq, buf, 8);
            k->bad = 1;
            snprintf(k->why, sizeof k->why, "message %llu: %zu bytes, sequence %llu",
                     (unsigned long long)i, len, (unsigned long long)seq);
            return 1;
        }
    }
    k->t_end = bench_now_ns();
    const char *left = chan_left_over(c, buf);
    if (left) {
        k->bad = 1;
        snprintf(k->why, sizeof k->why, "after %llu messages: %s", (unsigned long long)count,
                 left);
        return 1;
    }
    free(buf);
    return 0;
}

/* One run of a C system: msgs/s. */
static double run_c(int sys, size_t size, size_t depth, uint64_t count)
{
    static ctl_t *k;
    if (!k)
        k = bench_shared_alloc(sizeof *k);
    memset(k, 0, sizeof *k);
    chan_t c;
    chan_open(&c, sys, size, depth);
    pid_t pid[2];
    for (int i = 0; i < 2; i++) {
        if ((pid[i] = bench_fork(CHILD_WATCHDOG_S)) == 0)
            _exit(i == 0 ? producer(&c, count, k) : consumer(&c, count, k));
    }
    for (int i = 0; i < 2; i++)     /* the children hold the ends they need */
        if (c.fd[i] >= 0) {
            close(c.fd[i]);
            c.fd[i] = -1;
        }
    bench_spin_until(&k->ready, 2);
    uint64_t t0 = bench_now_ns();
    atomic_store_explicit(&k->go, 1, memory_order_release);
    int worst = 0;
    for (int left = 2; left > 0; left--) {  /* a failed child: the other one is killed */
        int st;
        pid_t w;
        while ((w = waitpid(-1, &st, 0)) < 0 && errno == EINTR)
            ;
        if (w < 0)
            break;
        int code = WIFEXITED(st) ? WEXITSTATUS(st) : 2;
        if (code != 0 && worst == 0) {
            worst = code;
            kill(w == pid[0] ? pid[1] : pid[0], SIGKILL);
        }
    }
    chan_close(&c);
    if (k->bad)
        bench_wrong(sys_name[sys], "%zu-byte messages: %s", size, k->why);
    if (worst != 0)
        bench_fail("%s, %zu-byte messages: a process failed (%s)", sys_name[sys], size,
             k->why[0] ? k->why : "killed or crashed");
    return (double)count / ((double)(k->t_end - t0) / 1e9);
}

/* ---- subprocesses: Boost and Python ---- */

static double run_boost(size_t size, size_t depth, uint64_t count)
{
    char cmd[sizeof g_boost + 128], out[512];
    snprintf(cmd, sizeof cmd, "'%s' %zu %llu %zu %d %d", g_boost, size, (unsigned long long)count,
             depth, g_cpu[0], g_cpu[1]);
    int st = bench_run_cmd(cmd, out, sizeof out);
    const char *r = strstr(out, "msgs_per_s=");
    if (st == 1)
        bench_wrong(sys_name[S_BOOST], "%zu-byte messages: boost_mq reported a wrong message", size);
    if (st != 0 || !r || !strstr(out, " ok"))
        bench_fail("%s: exit %d, output '%s'", cmd, st, out);
    return strtod(r + strlen("msgs_per_s="), NULL);
}

/* multiprocessing.Queue(maxsize): a producer Process puts `count` bytes objects
 * (sequence number in the first and last 8 bytes), a consumer Process gets and
 * checks them; the parent times from the start line to the consumer's last get. */
static const char py_script[] =
    "import multiprocessing as mp, os, sys, time\n"
    "def pin(cpu):\n"
    "    if cpu >= 0: os.sched_setaffinity(0, {cpu})\n"
    "def producer(q, size, n, cpu, ready, go):\n"
    "    pin(cpu); pad = b'\\x5a' * (size - 16)\n"
    "    ready.release(); go.wait(); put = q.put\n"
    "    for i in range(n):\n"
    "        s = i.to_bytes(8, 'little'); put(s + pad + s)\n"
    "def consumer(q, size, n, cpu, ready, go, res):\n"
    "    pin(cpu); ready.release(); go.wait(); get = q.get; bad = -1\n"
    "    for i in range(n):\n"
    "        m = get()\n"
    "        if len(m) != size or int.from_bytes(m[:8], 'little') != i or m[-8:] != m[:8]:\n"
    "            bad = i; break\n"
    "    res[0] = time.monotonic(); res[1] = bad\n"
    "    if bad < 0 and not q.empty(): res[1] = n\n"
    "if __name__ == '__main__':\n"
    "    mp.set_start_method('fork')\n"
    "    size, n, depth, c0, c1 = map(int, sys.argv[1:6])\n"
    "    q = mp.Queue(depth); ready = mp.Semaphore(0); go = mp.Event()\n"
    "    res = mp.Array('d', [0.0, -1.0], lock=False)\n"
    "    p = mp.Process(target=producer, args=(q, size, n, c0, ready, go))\n"
    "    c = mp.Process(target=consumer, args=(q, size, n, c1, ready, go, res))\n"
    "    p.start(); c.start(); ready.acquire(); ready.acquire()\n"
    "    t0 = time.monotonic(); go.set()\n"
    "    c.join()\n"
    "    if res[1] >= 0:\n"
    "        p.kill(); print('BAD message', int(res[1])); sys.exit(3)\n"
    "    p.join()\n"
    "    if c.exitcode != 0 or p.exitcode != 0: sys.exit(2)\n"
    "    print(n / (res[0] - t0), 'ok')\n";

static double run_python(size_t size, size_t depth, uint64_t count)
{
    char cmd[sizeof g_python + sizeof g_py_script + 128], out[512];
    snprintf(cmd, sizeof cmd, "'%s' %s %zu %llu %zu %d %d", g_python, g_py_script, size,
             (unsigned long long)count, depth, g_cpu[0], g_cpu[1]);
    int st = bench_run_cmd(cmd, out, sizeof out);
    if (st == 3)   /* the script found a wrong message */
        bench_wrong(sys_name[S_PY], "%zu-byte messages: %s", size, out);
    double v = 0;
    if (st != 0 || sscanf(out, "%lf", &v) != 1 || !strstr(out, "ok"))
        bench_fail("%s: exit %d, output '%s'", cmd, st, out);
    return v;
}

/* Boost: the program next to this one; a probe run tells whether it works. */
static void boost_probe(void)
{
    char self[PATH_MAX];
    ssize_t n = readlink("/proc/self/exe", self, sizeof self - 1);
    g_boost[0] = '\0';
    if (n <= 0) {
        snprintf(g_boost_why, sizeof g_boost_why, "cannot find my own directory");
        return;
    }
    self[n] = '\0';
    char *slash = strrchr(self, '/');
    *slash = '\0';
    snprintf(g_boost, sizeof g_boost, "%s/boost_mq", self);
    if (access(g_boost, X_OK) != 0) {
        snprintf(g_boost_why, sizeof g_boost_why,
                 "%s not built: libboost-dev missing (make deps-bench)", g_boost);
        g_boost[0] = '\0';
        return;
    }
    char cmd[sizeof g_boost + 64], out[512];
    snprintf(cmd, sizeof cmd, "'%s' 64 1000 %d -1 -1 2>&1", g_boost, DEPTH);
    if (bench_run_cmd(cmd, out, sizeof out) != 0 || !strstr(out, " ok")) {
        out[strcspn(out, "\n")] = '\0';
        snprintf(g_boost_why, sizeof g_boost_why, "boost_mq does not run: %.100s", out);
        g_boost[0] = '\0';
    }
}

/* ---- one run of any system ---- */

static double run_sys(int sys, const sizecase_t *sc, uint64_t count)
{
    switch (sys) {
    case S_BOOST:
        return run_boost(sc->size, sc->depth[sys], count);
    case S_PY:
        return run_python(sc->size, sc->depth[sys], count);
    default:
        return run_c(sys, sc->size, sc->depth[sys], count);
    }
}

/* A short run (also a warm-up) sets the count that takes about the target time. */
static void calibrate(sizecase_t *sc, int sys)
{
    bool py = sys == S_PY;
    uint64_t probe = py ? 3000 : sc->size > 1024 ? 20000 : 50000;
    double rate = run_sys(sys, sc, probe);
    double want = rate * (py ? PY_TARGET_S : C_TARGET_S);
    uint64_t lo = py ? 3000 : 10000, hi = py ? 2000000 : 20000000;
    uint64_t n = want < (double)lo ? lo : want > (double)hi ? hi : (uint64_t)want;
    sc->count[sys] = n / 1000 * 1000;
}

static void setup(sizecase_t *sc, size_t size)
{
    memset(sc, 0, sizeof *sc);
    sc->size = size;
    for (int s = 0; s < S_N; s++) {
        sc->on[s] = true;
        sc->depth[s] = DEPTH;
        snprintf(sc->note[s], sizeof sc->note[s], "%d", DEPTH);
    }
    sc->depth[S_MQ] = mq_probe_depth(size, sc->note[S_MQ], sizeof sc->note[S_MQ]);
    sc->on[S_MQ] = sc->depth[S_MQ] > 0;
    sc->on[S_PSMQ] = sc->on[S_MQ] && sc->depth[S_MQ] != DEPTH;
    sc->depth[S_PSMQ] = sc->depth[S_MQ];
    snprintf(sc->note[S_PSMQ], sizeof sc->note[S_PSMQ], "%zu (info)", sc->depth[S_MQ]);
    snprintf(sc->note[S_PS], sizeof sc->note[S_PS], "%d (ring %zu B)", DEPTH,
             ps_capacity(size, DEPTH));
    sc->on[S_BOOST] = g_boost[0] != '\0';
    if (!sc->on[S_BOOST])
        snprintf(sc->note[S_BOOST], sizeof sc->note[S_BOOST], "not available");
    sc->on[S_PY] = g_python[0] != '\0';
    if (!sc->on[S_PY])
        snprintf(sc->note[S_PY], sizeof sc->note[S_PY], "not available");
    {   /* what the pipe really holds */
        int fd[2];
        if (pipe(fd) != 0)
            bench_fail("pipe: %s", strerror(errno));
        int got = fcntl(fd[1], F_SETPIPE_SZ, (int)(DEPTH * size));
        if (got < 0)
            bench_fail("F_SETPIPE_SZ %zu: %s", DEPTH * size, strerror(errno));
        snprintf(sc->note[S_PIPE], sizeof sc->note[S_PIPE], "%zu (%d B buffer)", (size_t)got / size,
                 got);
        close(fd[0]);
        close(fd[1]);
    }
    for (int s = 0; s < S_N; s++)
        if (sc->on[s])
            calibrate(sc, s);
}

/* ---- the tables ---- */

static void row(const sizecase_t *sc, int s)
{
    if (!sc->on[s]) {
        printf("  %-30s %-26s %s\n", sys_name[s], sc->note[s],
               s == S_BOOST  ? g_boost_why
               : s == S_PY   ? "(python3 with multiprocessing not found)"
                             : "");
        return;
    }
    const double *v = sc->rate[s];
    int n = g_rounds;
    double mb = (double)sc->size / 1e6;
    printf("  %-30s %-26s %9llu %8.3f [%7.3f .. %7.3f] %9.1f [%8.1f .. %8.1f]\n", sys_name[s],
           sc->note[s], (unsigned long long)sc->count[s], bench_median(v, n) / 1e6,
           bench_min(v, n) / 1e6, bench_max(v, n) / 1e6, bench_median(v, n) * mb,
           bench_min(v, n) * mb, bench_max(v, n) * mb);
}

/* Median of the per-round ratios num/den [min .. max]; target <= 0: info only.
 * Returns whether a target was missed. */
static bool ratio(const sizecase_t *sc, const char *label, int num, int den, double target)
{
    if (!sc->on[num] || !sc->on[den]) {
        printf("  %-44s %s not available\n", label, sys_name[sc->on[num] ? den : num]);
        return false;
    }
    double q[MAX_ROUNDS];
    for (int r = 0; r < g_rounds; r++)
        q[r] = sc->rate[num][r] / sc->rate[den][r];
    double med = bench_median(q, (size_t)g_rounds);
    printf("  %-44s %8.2fx [%6.2f .. %6.2f]  ", label, med, bench_min(q, (size_t)g_rounds),
           bench_max(q, (size_t)g_rounds));
    if (target > 0)
        printf(">= %.1fx %s\n", target, med >= target ? "ok" : "MISS");
    else
        printf("info\n");
    return target > 0 && med < target;
}

static int table(const sizecase_t *sc)
{
    printf("\n1 producer process -> 1 consumer process, %zu-byte messages, %d rounds rotated; "
           "every message checked\n",
           sc->size, g_rounds);
    printf("  %-30s %-26s %9s %8s [%7s .. %7s] %9s [%8s .. %8s]\n", "system", "depth (messages)",
           "msgs/run", "M msg/s", "min", "max", "MB/s", "min", "max");
    for (int s = 0; s < S_N; s++)
        if (s != S_PSMQ || sc->on[S_PSMQ])
            row(sc, s);
    printf("  ratios ps_mpqueue / other (msgs/s = MB/s ratio): median of per-round ratios "
           "[min .. max]\n");
    bool big = sc->size >= 4096;
    int miss = 0;
    miss += ratio(sc, "ps_mpqueue / Boost message_queue", S_PS, S_BOOST, big ? 1.0 : 1.2);
    miss += ratio(sc, "ps_mpqueue / POSIX mq", S_PS, S_MQ, big ? 0 : 2.0);
    miss += ratio(sc, "ps_mpqueue / pipe", S_PS, S_PIPE, big ? 1.0 : 0);
    miss += ratio(sc, "ps_mpqueue / Python mp.Queue", S_PS, S_PY, 0);
    if (sc->on[S_PSMQ])
        ratio(sc, "ps_mpqueue / POSIX mq, both at mq's depth", S_PSMQ, S_MQ, 0);
    return miss;
}

int main(void)
{
    bench_run_t run;
    g_rounds = bench_begin(&run, ROUNDS_DEFAULT, MAX_ROUNDS, TOTAL_WATCHDOG_S);
    int pinned = bench_pin_init();
    if (pinned) {
        bench_cpu_slot(0, &g_cpu[0]);
        bench_cpu_slot(1, &g_cpu[1]);
    }
    boost_probe();
    bench_python_setup(py_script, g_python, sizeof g_python, g_py_script, sizeof g_py_script);

    printf("bench_mpqueue: %s; Boost: %s; Python: %s\n",
           pinned ? "producer and consumer pinned to two distinct CPUs (each pair)"
                  : "not pinned (BENCH_NOPIN set, or fewer than 2 CPUs)",
           g_boost[0] ? "boost_mq (message_queue, header-only)" : "not available",
           g_python[0] ? g_python : "not available");
    if (!g_boost[0])
        printf("boost: not available (%s)\n", g_boost_why);
    static sizecase_t cases[2];
    const size_t sizes[2] = { 64, 4096 };
    for (int i = 0; i < 2; i++)
        setup(&cases[i], sizes[i]);

    for (int r = 0; r < g_rounds; r++) {
        for (int i = 0; i < 2; i++) {
            sizecase_t *sc = &cases[i];
            for (int j = 0; j < S_N; j++) {
                int s = (j + r) % S_N;  /* A B C D E F, B C D E F A, ... */
                if (sc->on[s])
                    sc->rate[s][r] = run_sys(s, sc, sc->count[s]);
            }
        }
        fprintf(stderr, "bench_mpqueue: round %d/%d done\n", r + 1, g_rounds);
    }

    int miss = 0;
    for (int i = 0; i < 2; i++)
        miss += table(&cases[i]);
    bench_end(&run, "all messages", miss);
    return 0;
}
