/* SPDX-License-Identifier: MIT */
/* Process: multiprocessing.Process with the fork start method.
 *
 * start forks; the child runs the target, deals with its own children, flushes
 * stdio and leaves with _exit, so it never runs the parent's atexit handlers.
 * The parent holds a pidfd of the child. join sleeps in ppoll on the pidfd until
 * the child ends or the CLOCK_MONOTONIC deadline passes, then reaps it with
 * waitid(P_PIDFD, WNOHANG) under the object's mutex: several joiners may poll at
 * once, one of them collects the status, all see it. No SIGCHLD handler is ever
 * installed, and waitid on the pidfd can never take another child's status. A
 * child reaped elsewhere (the program's own waitpid(-1)) makes its pidfd readable
 * and waitid fail with ECHILD, which join reports instead of hanging.
 *
 * The pidfd stays open while a joiner may be polling it: it is closed once the
 * child is reaped and no joiner is inside (closing it under a poller would let
 * the number be reused by an unrelated file).
 *
 * As in Python, the processes a process started are handled when it exits (an
 * atexit handler, or the child's own epilogue): daemon children are killed, then
 * every child is joined. The registry of started processes belongs to one
 * process: a forked child starts with an empty one (pthread_atfork), and it
 * remembers its owner's pid in case a child was made without fork's handlers.
 *
 * Daemon children also die when the parent dies abruptly: the child asks for
 * PR_SET_PDEATHSIG(SIGKILL) and then checks that its parent is still the one
 * that forked it (the parent may have died in between). The kernel sends that
 * signal when the forking *thread* ends, not the process, so it is armed only
 * when the main thread forks; a daemon forked by another thread gets a thread
 * that waits on a pidfd of the parent process instead. */
#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>
#include <pysync/multiprocessing.h>

#include "thread.h"
#include "timing.h"

/* LOST: the child was reaped by someone else; its exit status is unknown. */
enum state { NEW, RUNNING, DONE, LOST };

/* As for threads: at most 63 bytes of a name are kept. */
#define NAME_SIZE 64

struct ps_process {
    pthread_mutex_t mutex;      /* guards everything below but the constants */
    enum state state;
    bool daemon;
    bool orphaned;              /* freed while running: the registry releases it */
    bool registered;
    unsigned pollers;           /* joiners that may be polling pidfd right now */
    int pidfd;                  /* -1 once closed */
    int exitcode;
    pid_t pid;
    pid_t owner;                /* the process that started it: only it can wait */
    int (*target)(void *);
    void *arg;
    ps_process_t *next;         /* in the registry */
    char name[NAME_SIZE];
};

/* ---- system calls glibc 2.36 does not wrap (or wraps under another name) ---- */

static int pidfd_open_nocheck(pid_t pid)
{
    return (int)syscall(SYS_pidfd_open, pid, 0);
}

static int pidfd_signal(int pidfd, int sig)
{
    return (int)syscall(SYS_pidfd_send_signal, pidfd, sig, NULL, 0);
}

/* ---- reaping (with p->mutex held) ---- */

static void close_pidfd_if_unused(ps_process_t *p)
{
    if (p->state != RUNNING && p->pollers == 0 && p->pidfd >= 0) {
        close(p->pidfd);
        p->pidfd = -1;
    }
}

static int exitcode_of(const siginfo_t *si)
{
    return si->si_code == CLD_EXITED ? si->si_status : -si->si_status;
}

/* Collects the exit status if the child has ended; never blocks. */
static void try_reap(ps_process_t *p)
{
    if (p->state != RUNNING || p->owner != getpid())
        return;
    siginfo_t si;
    memset(&si, 0, sizeof si);
    int rc = waitid(P_PIDFD, (id_t)p->pidfd, &si, WEXITED | WNOHANG);
    if (rc != 0 && errno == EINVAL)     /* Linux 5.3 has pidfds but not P_PIDFD */
        rc = waitid(P_PID, (id_t)p->pid, &si, WEXITED | WNOHANG);
    if (rc != 0) {
        if (errno == ECHILD)
            p->state = LOST;
    } else if (si.si_pid != 0) {
        p->exitcode = exitcode_of(&si);
        p->state = DONE;
    }
    close_pidfd_if_unused(p);
}

/* Sleeps until fd is readable (the child ended) or the deadline passes. Signals
 * do not end the wait early. */
static void wait_readable(int fd, const deadline_t *d)
{
    struct pollfd pfd = { .fd = fd, .events = POLLIN };
    for (;;) {
        struct timespec left, now, *timeout = NULL;
        if (!d->forever) {
            clock_gettime(CLOCK_MONOTONIC, &now);
            left.tv_sec = d->at.tv_sec - now.tv_sec;
            left.tv_nsec = d->at.tv_nsec - now.tv_nsec;
            if (left.tv_nsec < 0) {
                left.tv_nsec += 1000000000L;
                left.tv_sec--;
            }
            if (left.tv_sec < 0)
                return;
            timeout = &left;
        }
        if (ppoll(&pfd, 1, timeout, NULL) >= 0 || errno != EINTR)
            return;
    }
}

/* ---- registry of the processes started by this process ---- */

static struct {
    pthread_mutex_t mutex;
    ps_process_t *head;
    pid_t owner;
} registry = { PTHREAD_MUTEX_INITIALIZER, NULL, 0 };

/* In a forked child: the parent's children are not the child's (PITFALLS 4). */
static unsigned name_counter;     /* Process-N */

static void registry_reset_in_child(void)
{
    name_counter = 0;           /* as Python, a child counts its own children from 1 */
    pthread_mutex_init(&registry.mutex, NULL);
    registry.head = NULL;
    registry.owner = getpid();
}

static void process_release(ps_process_t *p)
{
    if (p->pidfd >= 0)
        close(p->pidfd);
    pthread_mutex_destroy(&p->mutex);
    free(p);
}

/* With registry.mutex held. */
static void registry_unlink(ps_process_t *p)
{
    for (ps_process_t **link = &registry.head; *link; link = &(*link)->next) {
        if (*link == p) {
            *link = p->next;
            p->registered = false;
            return;
        }
    }
}

/* Python's multiprocessing._cleanup: releases freed objects whose child ended.
 * With registry.mutex held. */
static void registry_collect_orphans(void)
{
    ps_process_t **link = &registry.head;
    while (*link) {
        ps_process_t *p = *link;
        pthread_mutex_lock(&p->mutex);
        try_reap(p);
        bool gone = p->orphaned && p->state != RUNNING;
        pthread_mutex_unlock(&p->mutex);
        if (gone) {
            *link = p->next;
            process_release(p);
        } else {
            link = &p->next;
        }
    }
}

static void registry_add(ps_process_t *p)
{
    pthread_mutex_lock(&registry.mutex);
    registry.owner = getpid();
    registry_collect_orphans();
    p->next = registry.head;
    registry.head = p;
    p->registered = true;
    pthread_mutex_unlock(&registry.mutex);
}

static int signal_child(ps_process_t *p, int sig);

/* What Python does at exit (multiprocessing.util._exit_function): daemon
 * children are killed, then every child is joined. Also run by a child of ours
 * after its target returned. */
static void finish_children(void)
{
    if (registry.owner != getpid())
        return;                 /* copied by a fork that skipped the atfork handlers */
    pthread_mutex_lock(&registry.mutex);
    for (ps_process_t *p = registry.head; p; p = p->next)
        if (p->daemon)
            signal_child(p, SIGKILL);
    for (ps_process_t *p = registry.head; p; p = p->next)
        ps_process_join(p, PS_FOREVER);
    registry_collect_orphans();
    pthread_mutex_unlock(&registry.mutex);
}

static void registry_setup(void)
{
    pthread_atfork(NULL, NULL, registry_reset_in_child);
    atexit(finish_children);
}

/* ---- objects ---- */

static void set_name(ps_process_t *p, const char *name)
{
    size_t len = strnlen(name, sizeof p->name - 1);    /* never reads past the cut */
    memcpy(p->name, name, len);
    p->name[len] = '\0';
}

ps_process_t *ps_process_new(int (*target)(void *), void *arg, const char *name)
{
    char buf[32];
    if (!target) {
        errno = EINVAL;
        return NULL;
    }
    if (!name) {
        snprintf(buf, sizeof buf, "Process-%u",
                 __atomic_add_fetch(&name_counter, 1, __ATOMIC_RELAXED));
        name = buf;
    }
    ps_process_t *p = calloc(1, sizeof *p);
    if (!p)
        return NULL;
    int err = pthread_mutex_init(&p->mutex, NULL);
    if (err) {
        free(p);
        errno = err;
        return NULL;
    }
    p->target = target;
    p->arg = arg;
    p->pidfd = -1;
    p->exitcode = PS_EXITCODE_NONE;
    set_name(p, name);
    return p;
}

int ps_process_set_daemon(ps_process_t *p, bool daemon)
{
    if (!p)
        return EINVAL;
    pthread_mutex_lock(&p->mutex);
    int err = p->state == NEW ? 0 : EINVAL;
    if (!err)
        __atomic_store_n(&p->daemon, daemon, __ATOMIC_RELAXED);
    pthread_mutex_unlock(&p->mutex);
    return err;
}

bool ps_process_daemon(const ps_process_t *p)
{
    return p && __atomic_load_n(&p->daemon, __ATOMIC_RELAXED);
}

/* ---- the child ---- */

/* Dies with the parent, also when it is SIGKILLed. The parent may already have
 * died between fork and prctl: then getppid() is no longer its pid. */
static void die_with_parent(pid_t parent)
{
    prctl(PR_SET_PDEATHSIG, SIGKILL);
    if (getppid() != parent)
        raise(SIGKILL);
}

static void *kill_self_when_readable(void *arg)
{
    struct pollfd pfd = { .fd = (int)(intptr_t)arg, .events = POLLIN };
    while (poll(&pfd, 1, -1) < 0 && errno == EINTR)
        ;
    kill(getpid(), SIGKILL);
    return NULL;
}

/* The same for a child forked by a thread other than main, for which the kernel
 * would send the parent-death signal as soon as that thread ends: a thread of the
 * child sleeps on a pidfd of the parent process, which becomes readable only when
 * all of the parent's threads are gone. It blocks every signal, so that signals
 * sent to the child still reach the target's thread. If it cannot be made, the
 * child goes on without it (ps_process(3), NOTES). */
static void watch_parent(pid_t parent)
{
    int fd = pidfd_open_nocheck(parent);
    if (getppid() != parent)
        raise(SIGKILL);         /* checked after the open: fd is not a reused pid */
    if (fd < 0)
        return;
    sigset_t all, old;
    sigfillset(&all);
    pthread_sigmask(SIG_SETMASK, &all, &old);
    pthread_attr_t attr;
    pthread_t watcher;
    int err = pthread_attr_init(&attr);
    if (!err) {
        pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
        pthread_attr_setstacksize(&attr, 64 * 1024);
        err = pthread_create(&watcher, &attr, kill_self_when_readable, (void *)(intptr_t)fd);
        pthread_attr_destroy(&attr);
    }
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    if (err)
        close(fd);
}

/* How a daemon child learns that its parent died. */
enum watch { WATCH_NONE, WATCH_PDEATHSIG, WATCH_THREAD };

static _Noreturn void run_child(ps_process_t *p, pid_t parent, enum watch watch)
{
    if (watch == WATCH_PDEATHSIG)
        die_with_parent(parent);
    else if (watch == WATCH_THREAD)
        watch_parent(parent);
    /* The forking thread held p->mutex; in the child that copy belongs to nobody. */
    pthread_mutex_init(&p->mutex, NULL);
    p->pid = getpid();
    int code = p->target(p->arg);
    join_non_daemon_threads();  /* as Python's child: threading._shutdown() first */
    finish_children();
    fflush(NULL);
    _exit(code & 0xff);
}

/* ---- the parent ---- */

/* With p->mutex held and p NEW. */
static int spawn(ps_process_t *p)
{
    pid_t self = getpid();
    enum watch watch = !p->daemon ? WATCH_NONE
                     : gettid() == self ? WATCH_PDEATHSIG : WATCH_THREAD;  /* PITFALLS 3 */
    p->state = RUNNING;         /* so that the child's copy says so */
    p->owner = self;
    fflush(NULL);               /* or the child would write the parent's buffers again */
    pid_t pid = fork();
    if (pid == 0)
        run_child(p, self, watch);
    if (pid < 0) {
        p->state = NEW;
        return errno;
    }
    __atomic_store_n(&p->pid, pid, __ATOMIC_RELAXED);     /* ps_process_pid reads it */
    p->pidfd = pidfd_open_nocheck(pid);
    if (p->pidfd >= 0)
        return 0;
    if (errno == ESRCH) {       /* already ended and reaped by someone else */
        p->state = LOST;
        return 0;
    }
    /* Without a pidfd it could not be waited for without polling: undo. */
    int err = errno;
    kill(pid, SIGKILL);
    while (waitpid(pid, NULL, 0) < 0 && errno == EINTR)
        ;
    p->state = NEW;
    __atomic_store_n(&p->pid, 0, __ATOMIC_RELAXED);
    return err;
}

int ps_process_start(ps_process_t *p)
{
    static pthread_once_t once = PTHREAD_ONCE_INIT;
    if (!p)
        return EINVAL;
    int saved = errno;
    pthread_once(&once, registry_setup);    /* before fork: the child needs the reset */
    pthread_mutex_lock(&p->mutex);
    int err = p->state == NEW ? spawn(p) : EINVAL;
    pthread_mutex_unlock(&p->mutex);
    if (!err)
        registry_add(p);
    errno = saved;
    return err;
}

/* Why p cannot be waited for by the caller, or 0. With p->mutex held. */
static int cannot_wait(const ps_process_t *p)
{
    if (p->state == NEW)
        return EINVAL;
    if (p->pid == getpid())
        return EDEADLK;         /* the child, on its copy of its own object */
    if (p->owner != getpid())
        return ECHILD;          /* a copy inherited from the parent */
    return 0;
}

int ps_process_join(ps_process_t *p, double timeout)
{
    deadline_t d;
    if (!p || deadline_from_timeout(timeout, &d) != 0)
        return EINVAL;
    int saved = errno;
    pthread_mutex_lock(&p->mutex);
    int err = cannot_wait(p);
    if (!err) {
        p->pollers++;
        for (;;) {
            try_reap(p);
            if (p->state != RUNNING)
                break;
            if (deadline_passed(&d)) {
                err = ETIMEDOUT;
                break;
            }
            int fd = p->pidfd;      /* stays open while pollers > 0 */
            pthread_mutex_unlock(&p->mutex);
            wait_readable(fd, &d);
            pthread_mutex_lock(&p->mutex);
        }
        p->pollers--;
        if (p->state == LOST)
            err = ECHILD;
        close_pidfd_if_unused(p);
    }
    pthread_mutex_unlock(&p->mutex);
    errno = saved;
    return err;
}

bool ps_process_is_alive(ps_process_t *p)
{
    if (!p)
        return false;
    int saved = errno;
    pthread_mutex_lock(&p->mutex);
    try_reap(p);                /* as Python's is_alive, it collects an ended child */
    bool alive = p->state == RUNNING && (p->owner == getpid() || p->pid == getpid());
    pthread_mutex_unlock(&p->mutex);
    errno = saved;
    return alive;
}

/* With p->mutex not held. 0 when there is nothing left to signal. */
static int signal_child(ps_process_t *p, int sig)
{
    pthread_mutex_lock(&p->mutex);
    int err = cannot_wait(p);
    if (err == EDEADLK)
        err = 0;                /* a process may signal itself */
    if (!err && p->pid == getpid())
        err = raise(sig) ? errno : 0;
    else if (!err && p->state == RUNNING && pidfd_signal(p->pidfd, sig) != 0)
        err = errno == ESRCH ? 0 : errno;   /* ESRCH: already reaped elsewhere */
    pthread_mutex_unlock(&p->mutex);
    return err;
}

/* terminate and kill: the public checks around signal_child. */
static int signal_public(ps_process_t *p, int sig)
{
    if (!p)
        return EINVAL;
    int saved = errno;
    int err = signal_child(p, sig);
    errno = saved;
    return err;
}

int ps_process_terminate(ps_process_t *p)
{
    return signal_public(p, SIGTERM);
}

int ps_process_kill(ps_process_t *p)
{
    return signal_public(p, SIGKILL);
}

int ps_process_exitcode(ps_process_t *p)
{
    if (!p)
        return PS_EXITCODE_NONE;
    int saved = errno;
    pthread_mutex_lock(&p->mutex);
    try_reap(p);                /* as Python's exitcode, it collects an ended child */
    int code = p->state == DONE ? p->exitcode : PS_EXITCODE_NONE;
    pthread_mutex_unlock(&p->mutex);
    errno = saved;
    return code;
}

pid_t ps_process_pid(const ps_process_t *p)
{
    return p ? __atomic_load_n(&p->pid, __ATOMIC_RELAXED) : 0;
}

const char *ps_process_name(const ps_process_t *p)
{
    return p ? p->name : NULL;
}

void ps_process_free(ps_process_t *p)
{
    if (!p)
        return;
    int saved = errno;
    bool mine = p->owner == getpid();
    if (mine)
        pthread_mutex_lock(&registry.mutex);
    pthread_mutex_lock(&p->mutex);
    try_reap(p);
    bool running = mine && p->state == RUNNING;
    if (running)
        p->orphaned = true;     /* the registry reaps and releases it later */
    else if (mine && p->registered)
        registry_unlink(p);
    pthread_mutex_unlock(&p->mutex);
    if (mine)
        pthread_mutex_unlock(&registry.mutex);
    if (!running)
        process_release(p);
    errno = saved;
}
