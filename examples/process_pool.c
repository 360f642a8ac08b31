/* SPDX-License-Identifier: MIT */
/* A Pool of worker processes, then a process executor that counts primes.
 *
 * Python original, part 1 (multiprocessing.Pool with apply_async):
 *     from multiprocessing import Pool
 *     import math, os
 *
 *     def square(x):    return x * x, os.getpid()
 *     def cube(x):      return x ** 3, os.getpid()
 *     def factorial(x): return math.factorial(x), os.getpid()
 *     def fibonacci(x):
 *         a, b = 0, 1
 *         for _ in range(x): a, b = b, a + b
 *         return a, os.getpid()
 *
 *     if __name__ == "__main__":
 *         pool = Pool(3)
 *         results = [pool.apply_async(f, (x,)) for f, x in
 *                    ((square, 7), (cube, 3), (factorial, 10), (fibonacci, 20))]
 *         pool.close()                    # no more tasks
 *         pool.join()                     # wait for the workers to finish them
 *         for r in results:
 *             print(r.get())              # (49, pid) (27, pid) (3628800, pid) (6765, pid)
 *
 * Python original, part 2 (concurrent.futures.ProcessPoolExecutor):
 *     from concurrent.futures import ProcessPoolExecutor
 *
 *     def is_prime(n):
 *         if n < 2: return False
 *         if n % 2 == 0: return n == 2
 *         return all(n % d for d in range(3, math.isqrt(n) + 1, 2))
 *
 *     def count_primes(lo, hi):
 *         return sum(1 for n in range(lo, hi) if is_prime(n))
 *
 *     if __name__ == "__main__":
 *         N, STEP = 2_000_000, 250_000
 *         with ProcessPoolExecutor() as ex:       # one worker per CPU
 *             futures = [ex.submit(count_primes, lo, lo + STEP)
 *                        for lo in range(0, N, STEP)]
 *             total = sum(f.result() for f in futures)
 *         assert total == 148933                  # primes below 2,000,000
 *
 * Worker processes get bytes and send bytes back (no pickling): a task is
 * fn(in, inlen, out, outcap) returning how many bytes it wrote to out.
 */
#define _POSIX_C_SOURCE 200809L         /* getpid() */
#include <pysync/futures.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

/* ---- part 1: Pool(3).apply_async(f, (x,)) for four functions ---- */

struct answer { long value; long pid; };

static long arg_of(const void *in)
{
    long x;
    memcpy(&x, in, sizeof x);
    return x;
}

/* return value, os.getpid() */
static ssize_t answer(void *out, long value)
{
    struct answer a = { value, (long)getpid() };
    memcpy(out, &a, sizeof a);
    return sizeof a;
}

static ssize_t square(const void *in, size_t inlen, void *out, size_t outcap)
{
    (void)inlen;
    (void)outcap;
    long x = arg_of(in);
    return answer(out, x * x);
}

static ssize_t cube(const void *in, size_t inlen, void *out, size_t outcap)
{
    (void)inlen;
    (void)outcap;
    long x = arg_of(in);
    return answer(out, x * x * x);
}

static ssize_t factorial(const void *in, size_t inlen, void *out, size_t outcap)
{
    (void)inlen;
    (void)outcap;
    long f = 1;
    for (long k = 2; k <= arg_of(in); k++)
        f *= k;
    return answer(out, f);
}

static ssize_t fibonacci(const void *in, size_t inlen, void *out, size_t outcap)
{
    (void)inlen;
    (void)outcap;
    long a = 0, b = 1;
    for (long k = 0; k < arg_of(in); k++) {
        long next = a + b;
        a = b;
        b = next;
    }
    return answer(out, a);
}

static bool pool_demo(void)
{
    static const struct {
        const char *name;
        ssize_t (*fn)(const void *, size_t, void *, size_t);
        long x, expected;
    } tasks[] = {
        { "square", square, 7, 49 },
        { "cube", cube, 3, 27 },
        { "factorial", factorial, 10, 3628800 },
        { "fibonacci", fibonacci, 20, 6765 },
    };
    enum { TASKS = sizeof tasks / sizeof tasks[0] };
    ps_future_t *results[TASKS];
    bool ok = true;

    ps_executor_t *pool = ps_executor_new(3, PS_PROCESSES);        /* pool = Pool(3) */
    if (pool == NULL)
        return false;
    for (int i = 0; i < TASKS; i++)                                 /* pool.apply_async(f, (x,)) */
        if (!(results[i] = ps_executor_submit_bytes(pool, tasks[i].fn, &tasks[i].x,
                                                     sizeof tasks[i].x)))
            return false;
    ps_executor_shutdown(pool, true, false);                        /* pool.close(); pool.join() */

    for (int i = 0; i < TASKS; i++) {
        struct answer a;
        size_t len;
        int rc = ps_future_result_bytes(results[i], PS_FOREVER, &a, sizeof a, &len); /* r.get() */
        bool right = rc == 0 && len == sizeof a && a.value == tasks[i].expected;
        if (rc == 0)
            printf("%s(%ld) = %ld, by worker process %ld\n", tasks[i].name, tasks[i].x,
                   a.value, a.pid);
        else
            printf("%s(%ld): %s\n", tasks[i].name, tasks[i].x, ps_strerror(rc));
        ok &= right && a.pid != (long)getpid();
        ps_future_free(results[i]);
    }
    ps_executor_free(pool);
    return ok;
}

/* ---- part 2: ProcessPoolExecutor().submit(count_primes, lo, hi) ---- */

enum { N = 2000000, RANGES = 8, PRIMES_BELOW_N = 148933 };

struct range { long lo, hi; };

static bool is_prime(long n)
{
    if (n < 2)
        return false;
    if (n % 2 == 0)
        return n == 2;
    for (long d = 3; d * d <= n; d += 2)
        if (n % d == 0)
            return false;
    return true;
}

static ssize_t count_primes(const void *in, size_t inlen, void *out, size_t outcap)
{
    struct range r;
    long count = 0;
    (void)outcap;
    if (inlen != sizeof r)
        return -EINVAL;                 /* the task's "exception" */
    memcpy(&r, in, sizeof r);
    for (long n = r.lo; n < r.hi; n++)
        count += is_prime(n);
    memcpy(out, &count, sizeof count);
    return sizeof count;
}

static bool primes_demo(void)
{
    ps_future_t *futures[RANGES];
    long total = 0;
    bool ok = true;

    ps_executor_t *ex = ps_executor_new(0, PS_PROCESSES);  /* ProcessPoolExecutor(): one per CPU */
    if (ex == NULL)
        return false;
    for (int i = 0; i < RANGES; i++) {                      /* ex.submit(count_primes, lo, hi) */
        struct range r = { (long)i * N / RANGES, (long)(i + 1) * N / RANGES };
        if (!(futures[i] = ps_executor_submit_bytes(ex, count_primes, &r, sizeof r)))
            return false;
    }
    for (int i = 0; i < RANGES; i++) {                      /* total = sum(f.result() ...) */
        long count;
        size_t len;
        ok &= ps_future_result_bytes(futures[i], PS_FOREVER, &count, sizeof count, &len) == 0 &&
              len == sizeof count;
        total += ok ? count : 0;
        ps_future_free(futures[i]);
    }
    ps_executor_free(ex);                                   /* the end of the with block */
    printf("%ld primes below %d, counted in %d ranges (expected %d)\n", total, N, RANGES,
           PRIMES_BELOW_N);
    return ok && total == PRIMES_BELOW_N;
}

int main(void)
{
    bool ok = pool_demo();
    ok &= primes_demo();
    printf("%s\n", ok ? "ok" : "FAILED");
    return ok ? 0 : 1;
}
