/* SPDX-License-Identifier: MIT */
/* Error codes as pysync means them. strerror(ESHUTDOWN) says "Cannot send after
 * transport endpoint shutdown"; a pysync user wants "queue or executor is shut
 * down". */
#include <pysync/base.h>

#include <stdio.h>
#include <string.h>

static const struct {
    int code;
    const char *name, *meaning;
} errors[] = {
    { 0, "0", "success" },
    { EAGAIN, "EAGAIN", "would have to wait (lock held, queue full or empty)" },
    { ETIMEDOUT, "ETIMEDOUT", "timed out" },
    { EINVAL, "EINVAL", "invalid argument" },
    { EPERM, "EPERM", "not held by the caller (release or wait without the lock)" },
    { EOVERFLOW, "EOVERFLOW",
      "released too many times (bounded semaphore) or task_done called too often" },
    { ESHUTDOWN, "ESHUTDOWN", "queue or executor is shut down" },
    { EPIPE, "EPIPE", "barrier is broken, or the worker process died" },
    { ECANCELED, "ECANCELED", "future was cancelled" },
    { EOWNERDEAD, "EOWNERDEAD", "previous owner died holding the lock" },
    { EMSGSIZE, "EMSGSIZE", "message too large for the queue" },
    { ERANGE, "ERANGE", "buffer too small; nothing was consumed" },
    { ENOMEM, "ENOMEM", "out of memory, or the shared segment is full" },
    { ENOENT, "ENOENT", "no such object or key" },
    { EEXIST, "EEXIST", "already exists, or holds an object of another type" },
    { EPROTO, "EPROTO", "not a pysync segment, another layout version, or truncated" },
    { EBUSY, "EBUSY", "in use: held or waited on; nothing was changed" },
    { EDEADLK, "EDEADLK", "a thread or process cannot join itself" },
    { ECHILD, "ECHILD", "the child process was reaped elsewhere (waitpid), or is not ours" },
    { ENOSYS, "ENOSYS", "not available in this build (process executor)" },
};

static int find(int code)
{
    for (size_t i = 0; i < sizeof errors / sizeof errors[0]; i++)
        if (errors[i].code == code)
            return (int)i;
    return -1;
}

const char *ps_strerror(int code)
{
    int i = find(code);
    if (i >= 0)
        return errors[i].meaning;
    const char *desc = strerrordesc_np(code);   /* thread-safe, unlike strerror */
    return desc ? desc : "unknown error";
}

const char *ps_errname(int code)
{
    static __thread char unknown[32];
    int i = find(code);
    if (i >= 0)
        return errors[i].name;
    const char *name = strerrorname_np(code);
    if (name)
        return name;
    snprintf(unknown, sizeof unknown, "error %d", code);
    return unknown;
}
