/* SPDX-License-Identifier: MIT */
/* pysync/pysync.h - everything: threading, queue, multiprocessing and
 * concurrent.futures for C. */
#ifndef PYSYNC_PYSYNC_H
#define PYSYNC_PYSYNC_H

#include <pysync/threading.h>
#include <pysync/queue.h>
#include <pysync/multiprocessing.h>
#include <pysync/futures.h>

#endif
