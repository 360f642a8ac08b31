/* SPDX-License-Identifier: MIT */
/* pysync/pysync.h - everything: threading, queue and multiprocessing for C. */
#ifndef PYSYNC_PYSYNC_H
#define PYSYNC_PYSYNC_H

#include <pysync/threading.h>
#include <pysync/queue.h>
#include <pysync/multiprocessing.h>

#endif
