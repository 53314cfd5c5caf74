/*
 * thread_attr.c: what the library sets on its own threads.
 *
 * Names ("td-writer", "l/payments"), so that top -H, perf and gdb show
 * which one is busy. Best effort: the kernel keeps 15 bytes, and a failure
 * changes nothing but the name.
 *
 * Nice values, per thread as Linux allows (the store's writer: store.h).
 */
#define _GNU_SOURCE
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>

#include "core/error.h"
#include "internal.h"

void td_thread__name(const char *prefix, const char *name)
{
    char buf[16];
    snprintf(buf, sizeof buf, "%s%s", prefix, name ? name : "");
    (void)pthread_setname_np(pthread_self(), buf);
}

int td_thread__nice(int nice)
{
    nice = nice < -20 ? -20 : nice > 19 ? 19 : nice;
    if (setpriority(PRIO_PROCESS, (id_t)gettid(), nice) < 0)
        return td_error__set(errno == EPERM || errno == EACCES ? TD_EPERMANENT : TD_EIO,
                             "nice %d refused: %s", nice, strerror(errno));
    return 0;
}
