/* SPDX-License-Identifier: MIT */
/* Timer: threading.Timer, a thread that waits on an Event for the interval.
 *
 * cancel and the timer thread decide under one mutex whether fn runs, so once
 * cancel has returned, fn runs only if it had already started.
 *
 * As in Python, a Timer is a Thread: its thread is made by ps_timer_new, in the
 * caller's thread, so it inherits that thread's daemon flag. */
#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <pysync/threading.h>

struct ps_timer {
    ps_thread_t *thread;
    ps_event_t finished;
    pthread_mutex_t mutex;
    bool cancelled;
    double interval;
    void (*fn)(void *);
    void *arg;
};

static void *timer_main(void *p)
{
    ps_timer_t *t = p;
    ps_event_wait(&t->finished, t->interval);
    pthread_mutex_lock(&t->mutex);
    bool run = !t->cancelled;
    pthread_mutex_unlock(&t->mutex);
    if (run)
        t->fn(t->arg);
    ps_event_set(&t->finished);
    return NULL;
}

/* Makes the event, the mutex and the thread; on failure nothing is left behind. */
static int timer_parts_init(ps_timer_t *t)
{
    int err = ps_event_init(&t->finished, 0);
    if (err)
        return err;
    if ((err = pthread_mutex_init(&t->mutex, NULL)) != 0)
        goto no_mutex;
    if ((t->thread = ps_thread_new(timer_main, t, NULL)) != NULL)
        return 0;
    err = errno;
    pthread_mutex_destroy(&t->mutex);
no_mutex:
    ps_event_destroy(&t->finished);
    return err;
}

ps_timer_t *ps_timer_new(double interval, void (*fn)(void *), void *arg)
{
    if (isnan(interval) || !fn) {
        errno = EINVAL;
        return NULL;
    }
    ps_timer_t *t = calloc(1, sizeof *t);
    if (!t)
        return NULL;
    int err = timer_parts_init(t);
    if (err) {
        free(t);
        errno = err;
        return NULL;
    }
    t->interval = interval < 0 ? 0 : interval;   /* as Python: a past deadline fires now */
    t->fn = fn;
    t->arg = arg;
    return t;
}

int ps_timer_set_daemon(ps_timer_t *t, bool daemon)
{
    return t ? ps_thread_set_daemon(t->thread, daemon) : EINVAL;
}

bool ps_timer_daemon(const ps_timer_t *t)
{
    return t && ps_thread_daemon(t->thread);
}

int ps_timer_start(ps_timer_t *t)
{
    return t ? ps_thread_start(t->thread) : EINVAL;
}

int ps_timer_cancel(ps_timer_t *t)
{
    if (!t)
        return EINVAL;
    pthread_mutex_lock(&t->mutex);
    t->cancelled = true;
    pthread_mutex_unlock(&t->mutex);
    return ps_event_set(&t->finished);
}

int ps_timer_join(ps_timer_t *t, double timeout)
{
    return t ? ps_thread_join(t->thread, timeout, NULL) : EINVAL;
}

void ps_timer_free(ps_timer_t *t)
{
    if (!t)
        return;
    if (ps_thread_ident(t->thread)) {   /* started: stop it and wait, it uses *t */
        ps_timer_cancel(t);
        ps_thread_join(t->thread, PS_FOREVER, NULL);
    }
    ps_thread_free(t->thread);
    pthread_mutex_destroy(&t->mutex);
    ps_event_destroy(&t->finished);
    free(t);
}
