/* SPDX-License-Identifier: MIT */
/* What other parts of the library need from the thread registry. */
#ifndef PS_THREAD_H
#define PS_THREAD_H

/* Waits until every non-daemon thread this process started has ended (Python's
 * threading._shutdown): run at exit, and by a child process after its target. */
void join_non_daemon_threads(void);

#endif
