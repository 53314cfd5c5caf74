/*
 * thread_name.c: names the library's threads ("td-writer", "sub/payments"),
 * so that top -H, perf and gdb show which one is busy. Best effort: the kernel
 * keeps 15 bytes, and a failure changes nothing but the name.
 */
#define _GNU_SOURCE
#include <pthread.h>
#include <stdio.h>

#include "internal.h"

void td_thread__name(const char *prefix, const char *name)
{
    char buf[16];
    snprintf(buf, sizeof buf, "%s%s", prefix, name ? name : "");
    (void)pthread_setname_np(pthread_self(), buf);
}
