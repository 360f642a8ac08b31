/* SPDX-License-Identifier: MIT */
/* pysync/base.h - what every pysync header shares: the export macro, the version
 * and readable error names. Included by each of the other headers. */
#ifndef PYSYNC_BASE_H
#define PYSYNC_BASE_H

#include <errno.h>      /* the error codes pysync returns: ETIMEDOUT, EAGAIN... */

#ifdef __cplusplus
extern "C" {
#endif

/* Marks the public API; everything else in the library is hidden. */
#if defined(__GNUC__) && __GNUC__ >= 4
#define PS_EXTERN __attribute__((visibility("default")))
#else
#define PS_EXTERN
#endif

#define PS_VERSION_MAJOR 0
#define PS_VERSION_MINOR 2
#define PS_VERSION_PATCH 0
#define PS_VERSION_HEX ((PS_VERSION_MAJOR << 16) | (PS_VERSION_MINOR << 8) | PS_VERSION_PATCH)

/* PS_VERSION_HEX of the library actually linked (the header may be newer). */
PS_EXTERN unsigned ps_version(void);
/* "0.2.0" */
PS_EXTERN const char *ps_version_string(void);
/* What a code returned by pysync means here ("queue is shut down"); never NULL. */
PS_EXTERN const char *ps_strerror(int code);
/* The code's name ("ETIMEDOUT"); for an unknown code, a string with its number. */
PS_EXTERN const char *ps_errname(int code);

#ifdef __cplusplus
}
#endif
#endif
