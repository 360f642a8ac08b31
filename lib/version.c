/* SPDX-License-Identifier: MIT */
#include <pysync/base.h>

#define STR_(x) #x
#define STR(x) STR_(x)

unsigned ps_version(void)
{
    return PS_VERSION_HEX;
}

const char *ps_version_string(void)
{
    return STR(PS_VERSION_MAJOR) "." STR(PS_VERSION_MINOR) "." STR(PS_VERSION_PATCH);
}
