/* SPDX-License-Identifier: MIT */
/* Producer/consumer on a bounded buffer guarded by a Condition.
 *
 * Python original:
 *     cond = threading.Condition()
 *     items = []
 *     def producer():
 *         for i in range(1000):
 *             with cond:
 *                 cond.wait_for(lambda: len(items) < 8)
 *                 items.append(i)
 *                 cond.notify_all()
 *     def consumer():
 *         total = 0
 *         for _ in range(1000):
 *             with cond:
 *                 cond.wait_for(lambda: items)
 *                 total += items.pop(0)
 *                 cond.notify_all()
 *         print(total)
 */
#include <pysync/threading.h>
#include <stdio.h>

enum { ITEMS = 1000, SLOTS = 8 };

static ps_condition_t cond;
static int buffer[SLOTS], head, count;

static bool has_room(void *arg) { (void)arg; return count < SLOTS; }
static bool has_item(void *arg) { (void)arg; return count > 0; }

static void *producer(void *arg)
{
    (void)arg;
    for (int i = 0; i < ITEMS; i++) {
        ps_condition_acquire(&cond, true, PS_FOREVER);
        ps_condition_wait_for(&cond, has_room, NULL, PS_FOREVER);
        buffer[(head + count++) % SLOTS] = i;
        ps_condition_notify_all(&cond);
        ps_condition_release(&cond);
    }
    return NULL;
}

static void *consumer(void *arg)
{
    long *total = arg;
    for (int i = 0; i < ITEMS; i++) {
        ps_condition_acquire(&cond, true, PS_FOREVER);
        ps_condition_wait_for(&cond, has_item, NULL, PS_FOREVER);
        *total += buffer[head];
        head = (head + 1) % SLOTS;
        count--;
        ps_condition_notify_all(&cond);
        ps_condition_release(&cond);
    }
    return NULL;
}

int main(void)
{
    long total = 0;
    ps_condition_init(&cond, NULL, 0);          /* NULL: the condition's own RLock */
    ps_thread_t *p = ps_thread_new(producer, NULL, "producer");
    ps_thread_t *c = ps_thread_new(consumer, &total, "consumer");
    if (!p || !c || ps_thread_start(p) || ps_thread_start(c))
        return 1;
    ps_thread_join(p, PS_FOREVER, NULL);
    ps_thread_join(c, PS_FOREVER, NULL);
    ps_thread_free(p);
    ps_thread_free(c);
    printf("consumed total = %ld (expected %d)\n", total, ITEMS * (ITEMS - 1) / 2);
    return total == ITEMS * (ITEMS - 1) / 2 ? 0 : 1;
}
