/* SPDX-License-Identifier: MIT */
/* A traffic light made of an Event: set is green, clear is red.
 *
 * Python original:
 *     light = threading.Event()            # starts red (cleared)
 *     lock = threading.Lock()
 *     passed = 0
 *
 *     def traffic_light():
 *         for cycle in range(4):
 *             with lock:
 *                 light.clear(); print("light: RED")
 *             time.sleep(0.15)
 *             with lock:
 *                 light.set(); print("light: GREEN")
 *             time.sleep(0.10)             # and it stays green at the end
 *
 *     def car(n):
 *         time.sleep(0.08 * n)             # cars arrive one by one
 *         while True:
 *             light.wait()                 # stop while red
 *             with lock:                   # the light cannot change meanwhile
 *                 if light.is_set():
 *                     print(f"car {n} passes on green")
 *                     passed += 1
 *                     return
 *             # woken by green, but it turned red again before we got there
 *
 *     threads = [threading.Thread(target=traffic_light)]
 *     threads += [threading.Thread(target=car, args=(n,)) for n in range(10)]
 *     for t in threads: t.start()
 *     for t in threads: t.join()
 *     assert passed == 10
 *
 * wait() returning only says the light was green at some moment: a car must
 * look again, under the lock the light also takes, before it drives on.
 */
#define _POSIX_C_SOURCE 200809L         /* nanosleep(), clock_gettime() */
#include <pysync/threading.h>
#include <stdio.h>
#include <time.h>

enum { CARS = 10, CYCLES = 4 };

static ps_event_t light;                /* set: green, clear: red */
static ps_lock_t lock;                  /* the light changes, a car passes: one at a time */
static bool green;                      /* the light's own record, to check the cars */
static int passed, ran_red;             /* under lock */

static void sleep_for(double seconds)
{
    struct timespec ts = { (time_t)seconds, (long)((seconds - (time_t)seconds) * 1e9) };
    nanosleep(&ts, NULL);
}

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec / 1e9;
}

static void switch_light(bool to_green)
{
    ps_lock_acquire(&lock, true, PS_FOREVER);
    green = to_green;
    if (to_green)
        ps_event_set(&light);
    else
        ps_event_clear(&light);
    printf("light: %s\n", to_green ? "GREEN" : "RED");
    ps_lock_release(&lock);
}

static void *traffic_light(void *arg)
{
    (void)arg;
    for (int cycle = 0; cycle < CYCLES; cycle++) {
        switch_light(false);
        sleep_for(0.15);
        switch_light(true);
        sleep_for(0.10);
    }
    return NULL;                        /* green for good: every car gets through */
}

static void *car(void *arg)
{
    int n = *(int *)arg;
    sleep_for(0.08 * n);
    double arrived = now();
    for (;;) {
        ps_event_wait(&light, PS_FOREVER);              /* stop while red */
        ps_lock_acquire(&lock, true, PS_FOREVER);
        if (ps_event_is_set(&light)) {
            if (!green)
                ran_red++;              /* the Event and the light disagree */
            passed++;
            printf("car %d passes on green (waited %.2f s)\n", n, now() - arrived);
            ps_lock_release(&lock);
            return NULL;
        }
        ps_lock_release(&lock);         /* red again before we got there: wait */
    }
}

int main(void)
{
    static int ids[CARS];
    ps_thread_t *threads[CARS + 1];

    ps_event_init(&light, 0);
    ps_lock_init(&lock, 0);
    threads[CARS] = ps_thread_new(traffic_light, NULL, "light");
    for (int n = 0; n < CARS; n++) {
        ids[n] = n;
        threads[n] = ps_thread_new(car, &ids[n], NULL);
    }
    for (int i = 0; i <= CARS; i++)
        if (!threads[i] || ps_thread_start(threads[i]) != 0)
            return 1;
    for (int i = 0; i <= CARS; i++) {
        ps_thread_join(threads[i], PS_FOREVER, NULL);
        ps_thread_free(threads[i]);
    }
    printf("%d of %d cars passed, %d on red\n", passed, CARS, ran_red);
    return passed == CARS && ran_red == 0 ? 0 : 1;
}
