/* SPDX-License-Identifier: MIT */
/* bench_dict.c - benchmark (not a test): the shared dict (ps_manager_dict)
 * against Python's multiprocessing.Manager().dict(), same run, same machine.
 *
 * Keys "key0" .. "key999" (prefilled), 8-byte values. set and get ops/s from 1
 * and from 2 worker processes (forked; the 2 cycle through the keyspace from
 * opposite ends, key i and key i+500). Each op is one call; every get checks
 * that it got 8 bytes belonging to its key, and after each set phase every key
 * must hold the last value one of the workers wrote to it, and the dict exactly
 * the 1000 keys: a wrong result exits 1.
 *
 * ps_dict: workers run for PS_PHASE_NS each phase, pinned to distinct CPUs
 * (BENCH_NOPIN=1: not). Python: one python3 run per round and process count
 * starts a Manager, prefills it and times a set phase and a get phase of
 * PY_PHASE_S each in fresh worker processes (not pinned: the Manager's server
 * process needs a CPU too). Rate = all workers' ops / (start line to the last
 * worker's end). The systems run in turn, rotated each round (PITFALLS 11): each
 * figure is the median of ROUNDS runs [min .. max], each ratio the median of the
 * per-round ratios, against the target (>= 100x Python).
 * BENCH_ROUNDS=N changes ROUNDS. */
#include <pysync/multiprocessing.h>

#include <limits.h>
#include <signal.h>
#include <stdalign.h>
#include <stdarg.h>
#include <stdbool.h>
#include <sys/wait.h>

#include "bench.h"

#define ROUNDS_DEFAULT 7
#define MAX_ROUNDS 31
#define NKEYS 1000
#define PS_PHASE_NS 200000000ull    /* 0.2 s */
#define PY_PHASE_S "0.4"
#define CHILD_WATCHDOG_S 120
#define TOTAL_WATCHDOG_S 600

enum { OP_SET, OP_GET, OP_N };
static const char *const op_name[OP_N] = { "set", "get" };

/* What a round measures: [system: 0 ps, 1 Python][processes - 1][op]. */
static double g_rate[2][2][OP_N][MAX_ROUNDS];
static int g_rounds;
static char g_keys[NKEYS][16];
static char g_python[PATH_MAX + 64];    /* "": not available */
static char g_py_script[64];

/* ---- ps_dict ---- */

typedef struct ctl {
    alignas(64) atomic_int ready;
    atomic_int go;
    atomic_int stop;
    alignas(64) struct {
        int64_t ops;
        uint64_t t_end;
        int bad;
        char why[96];
        uint64_t last[NKEYS];   /* set: the last value this worker wrote per key (0: none) */
    } w[2];
} ctl_t;

/* A value: the key's index in the low 32 bits, who wrote it and when above. */
static uint64_t value_of(int key, int worker, int64_t op)
{
    return ((uint64_t)(((op << 1) | worker) & 0x7fffffff) + 1) << 32 | (uint32_t)key;
}

static void worker(ps_dict_t *d, int op, ctl_t *c, int idx)
{
    static uint64_t last[NKEYS];
    int64_t ops = 0;
    int k = idx * (NKEYS / 2), bad = 0;
    char why[96] = "";
    bench_pin_self(idx);
    atomic_fetch_add(&c->ready, 1);
    bench_spin_until(&c->go, 1);
    while (!atomic_load_explicit(&c->stop, memory_order_relaxed) && !bad) {
        for (int j = 0; j < 64; j++, ops++, k = k + 1 == NKEYS ? 0 : k + 1) {
            uint64_t v;
            size_t len = 0;
            if (op == OP_SET) {
                v = value_of(k, idx, ops);
                int rc = ps_dict_set(d, g_keys[k], &v, sizeof v);
                if (rc != 0) {
                    snprintf(why, sizeof why, "set %s: %s", g_keys[k], ps_errname(rc));
                    bad = 2;
                    break;
                }
                last[k] = v;
            } else {
                int rc = ps_dict_get(d, g_keys[k], &v, sizeof v, &len);
                if (rc != 0 || len != sizeof v || (uint32_t)v != (uint32_t)k) {
                    snprintf(why, sizeof why, "get %s: %s, %zu bytes, key index %u", g_keys[k],
                             ps_errname(rc), len, (unsigned)(uint32_t)v);
                    bad = 1;
                    break;
                }
            }
        }
    }
    c->w[idx].t_end = bench_now_ns();
    c->w[idx].ops = ops;
    c->w[idx].bad = bad;
    memcpy(c->w[idx].why, why, sizeof why);
    memcpy(c->w[idx].last, last, sizeof last);
}

static void prefill(ps_dict_t *d)
{
    for (int k = 0; k < NKEYS; k++) {
        uint64_t v = (uint32_t)k;
        int rc = ps_dict_set(d, g_keys[k], &v, sizeof v);
        if (rc != 0)
            bench_fail("prefill %s: %s", g_keys[k], ps_errname(rc));
    }
}

/* Every key holds the last value one of the workers wrote to it. */
static void check_sets(ps_dict_t *d, const ctl_t *c, int nproc)
{
    const char *what = nproc == 1 ? "set, 1 process" : "set, 2 processes";
    for (int k = 0; k < NKEYS; k++) {
        uint64_t v = 0;
        size_t len = 0;
        int rc = ps_dict_get(d, g_keys[k], &v, sizeof v, &len);
        if (rc != 0 || len != sizeof v)
            bench_wrong(what, "get %s afterwards: %s, %zu bytes", g_keys[k], ps_errname(rc), len);
        bool written = false, match = false;
        for (int w = 0; w < nproc; w++) {
            written |= c->w[w].last[k] != 0;
            match |= c->w[w].last[k] == v;
        }
        if (written ? !match : v != (uint32_t)k)
            bench_wrong(what, "%s holds 0x%llx, not the last value written to it", g_keys[k],
                  (unsigned long long)v);
    }
    if (ps_dict_len(d) != NKEYS)
        bench_wrong(what, "the dict holds %zu keys, not %d", ps_dict_len(d), NKEYS);
}

/* One phase: ops/s of nproc workers doing op for PS_PHASE_NS. */
static double ps_phase(ps_dict_t *d, ctl_t *c, int nproc, int op)
{
    const char *what = op == OP_SET ? "ps_dict set" : "ps_dict get";
    pid_t pid[2];
    memset(c, 0, sizeof *c);
    for (int i = 0; i < nproc; i++) {
        if ((pid[i] = bench_fork(CHILD_WATCHDOG_S)) == 0) {
            worker(d, op, c, i);
            _exit(0);
        }
    }
    bench_spin_until(&c->ready, nproc);
    uint64_t t0 = bench_now_ns();
    atomic_store(&c->go, 1);
    bench_sleep_ns(PS_PHASE_NS);
    atomic_store(&c->stop, 1);
    for (int i = 0; i < nproc; i++) {
        int st;
        while (waitpid(pid[i], &st, 0) < 0 && errno == EINTR)
            ;
        if (!WIFEXITED(st) || WEXITSTATUS(st) != 0)
            bench_fail("%s: worker %d ended with status 0x%x", what, i, st);
    }
    int64_t total = 0;
    uint64_t t1 = t0;
    for (int i = 0; i < nproc; i++) {
        if (c->w[i].bad == 1)
            bench_wrong(what, "%s", c->w[i].why);
        if (c->w[i].bad)
            bench_fail("%s: %s", what, c->w[i].why);
        total += c->w[i].ops;
        if (c->w[i].t_end > t1)
            t1 = c->w[i].t_end;
    }
    if (op == OP_SET)
        check_sets(d, c, nproc);
    return (double)total / ((double)(t1 - t0) / 1e9);
}

static void run_ps(ps_dict_t *d, ctl_t *c, int nproc, int r)
{
    for (int op = 0; op < OP_N; op++)
        g_rate[0][nproc - 1][op][r] = ps_phase(d, c, nproc, op);
}

/* ---- Python: one run = Manager start, prefill, a set phase, a get phase ---- */

static const char py_script[] =
    "import multiprocessing as mp, sys, time\n"
    "NKEYS = 1000\n"
    "keys = ['key%d' % i for i in range(NKEYS)]\n"
    "def worker(d, w, op, secs, ready, go, out):\n"
    "    k = w * (NKEYS // 2); n = 0; bad = None; last = {}\n"
    "    ready.release(); go.wait()\n"
    "    deadline = time.monotonic() + secs\n"
    "    while bad is None:\n"
    "        for _ in range(32):\n"
    "            if op == 'set':\n"
    "                v = ((((n << 1) | w) & 0x7fffffff) + 1 << 32 | k).to_bytes(8, 'little')\n"
    "                d[keys[k]] = v; last[k] = v\n"
    "            else:\n"
    "                v = d[keys[k]]\n"
    "                if len(v) != 8 or int.from_bytes(v[:4], 'little') != k:\n"
    "                    bad = 'get %s: %r' % (keys[k], v); break\n"
    "            n += 1; k = k + 1 if k + 1 < NKEYS else 0\n"
    "        if time.monotonic() >= deadline: break\n"
    "    out.put((n, time.monotonic(), bad, last))\n"
    "def phase(d, nproc, op, secs):\n"
    "    ready = mp.Semaphore(0); go = mp.Event(); out = mp.Queue()\n"
    "    ps = [mp.Process(target=worker, args=(d, w, op, secs, ready, go, out))\n"
    "          for w in range(nproc)]\n"
    "    for p in ps: p.start()\n"
    "    for p in ps: ready.acquire()\n"
    "    t0 = time.monotonic(); go.set()\n"
    "    res = [out.get() for p in ps]\n"
    "    for p in ps: p.join()\n"
    "    for r in res:\n"
    "        if r[2] is not None: print('BAD', r[2]); sys.exit(3)\n"
    "    if op == 'set':\n"
    "        for k in range(NKEYS):\n"
    "            v = d[keys[k]]; lasts = [r[3][k] for r in res if k in r[3]]\n"
    "            if (v not in lasts) if lasts else v != k.to_bytes(8, 'little'):\n"
    "                print('BAD', keys[k], 'holds', v); sys.exit(3)\n"
    "        if len(d) != NKEYS: print('BAD len', len(d)); sys.exit(3)\n"
    "    return sum(r[0] for r in res) / (max(r[1] for r in res) - t0)\n"
    "if __name__ == '__main__':\n"
    "    mp.set_start_method('fork')\n"
    "    nproc, secs = int(sys.argv[1]), float(sys.argv[2])\n"
    "    with mp.Manager() as m:\n"
    "        d = m.dict(); d.update({keys[k]: k.to_bytes(8, 'little') for k in range(NKEYS)})\n"
    "        s = phase(d, nproc, 'set', secs)\n"
    "        d.update({keys[k]: k.to_bytes(8, 'little') for k in range(NKEYS)})\n"
    "        g = phase(d, nproc, 'get', secs)\n"
    "    print(s, g, 'ok')\n";

static void run_py(int nproc, int r)
{
    char cmd[sizeof g_python + sizeof g_py_script + 64], out[512];
    snprintf(cmd, sizeof cmd, "'%s' %s %d %s", g_python, g_py_script, nproc, PY_PHASE_S);
    int st = bench_run_cmd(cmd, out, sizeof out);
    if (st == 3)   /* the script found a wrong result */
        bench_wrong(nproc == 1 ? "Python, 1 process" : "Python, 2 processes", "%s", out);
    double s, g;
    if (st != 0 || sscanf(out, "%lf %lf", &s, &g) != 2 || !strstr(out, "ok"))
        bench_fail("%s: exit %d, output '%s'", cmd, st, out);
    g_rate[1][nproc - 1][OP_SET][r] = s;
    g_rate[1][nproc - 1][OP_GET][r] = g;
}

/* ---- the table ---- */

static int table(bool py)
{
    int n = g_rounds, miss = 0;
    printf("  %-18s %8s [%6s .. %6s] %9s [%7s .. %7s] %8s [%6s .. %6s]  %s\n", "op, processes",
           "ps M/s", "min", "max", "Py k/s", "min", "max", "ps / Py", "min", "max",
           "target >= 100x");
    for (int np = 1; np <= 2; np++)
        for (int op = 0; op < OP_N; op++) {
            const double *a = g_rate[0][np - 1][op], *b = g_rate[1][np - 1][op];
            char label[32];
            snprintf(label, sizeof label, "%s, %d process%s", op_name[op], np, np == 1 ? "" : "es");
            printf("  %-18s %8.2f [%6.2f .. %6.2f]", label, bench_median(a, n) / 1e6,
                   bench_min(a, n) / 1e6, bench_max(a, n) / 1e6);
            if (!py) {
                printf(" %9s\n", "n/a");
                continue;
            }
            double q[MAX_ROUNDS];
            for (int r = 0; r < n; r++)
                q[r] = a[r] / b[r];
            double med = bench_median(q, n);
            printf(" %9.1f [%7.1f .. %7.1f] %7.0fx [%5.0fx .. %5.0fx]  %s\n", bench_median(b, n) / 1e3,
                   bench_min(b, n) / 1e3, bench_max(b, n) / 1e3, med, bench_min(q, n),
                   bench_max(q, n), med >= 100 ? "ok" : "MISS");
            miss += med < 100;
        }
    return miss;
}

int main(void)
{
    bench_run_t run;
    g_rounds = bench_begin(&run, ROUNDS_DEFAULT, MAX_ROUNDS, TOTAL_WATCHDOG_S);
    int pinned = bench_pin_init();
    for (int k = 0; k < NKEYS; k++)
        snprintf(g_keys[k], sizeof g_keys[k], "key%d", k);
    bench_python_setup(py_script, g_python, sizeof g_python, g_py_script, sizeof g_py_script);
    bool py = g_python[0] != '\0';

    ps_manager_t *m = ps_manager_new(NULL, 0);
    ps_dict_t *d = m ? ps_manager_dict(m, "bench") : NULL;
    if (!d)
        bench_fail("ps_manager_new / ps_manager_dict: %s", ps_errname(errno));
    ctl_t *c = bench_shared_alloc(sizeof *c);
    prefill(d);
    ps_phase(d, c, 2, OP_SET);  /* warm-up */
    prefill(d);

    for (int r = 0; r < g_rounds; r++) {
        for (int j = 0; j < 4; j++) {
            int item = (j + r) % 4;     /* ps 1, Py 1, ps 2, Py 2; rotated each round */
            int nproc = item < 2 ? 1 : 2;
            if (item % 2 == 0) {
                run_ps(d, c, nproc, r);
                prefill(d);
            } else if (py) {
                run_py(nproc, r);
            }
        }
        fprintf(stderr, "bench_dict: round %d/%d done\n", r + 1, g_rounds);
    }

    printf("\nshared dict, keys \"key0\"..\"key%d\", 8-byte values, set and get ops/s, "
           "median of %d rounds rotated [min .. max]; every get and the state after every set "
           "checked\n",
           NKEYS - 1, g_rounds);
    printf("  ps_dict (ps_manager_dict): %.1f s phases, %s\n", PS_PHASE_NS / 1e9,
           pinned ? "workers pinned to distinct CPUs" : "not pinned");
    if (py)
        printf("  Python: multiprocessing.Manager().dict() (%s), %s s phases, not pinned\n",
               g_python, PY_PHASE_S);
    else
        printf("  python: not available (python3 with multiprocessing not found)\n");
    int miss = table(py);
    ps_manager_close(m);
    bench_end(&run, "all results", miss);
    return 0;
}
