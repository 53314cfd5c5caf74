/*
 * alloc.c: the allocation seam (see alloc.h).
 *
 * In normal runs the countdown is negative and each function is a plain call
 * to the C library. A test arms the countdown to fail allocations on purpose.
 */
#include "core/alloc.h"

#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#include "tidings/memory.h"

static atomic_long countdown = -1;

static int should_fail(void)
{
    long left = atomic_load_explicit(&countdown, memory_order_relaxed);
    if (left < 0)
        return 0;
    while (left > 0) {
        if (atomic_compare_exchange_weak(&countdown, &left, left - 1))
            return 0;
        if (left < 0)
            return 0;
    }
    return 1;
}

void td_alloc__fail_after(long successes)
{
    atomic_store(&countdown, successes);
}

void *td_malloc(size_t size)
{
    return should_fail() ? NULL : malloc(size ? size : 1);
}

void *td_calloc(size_t count, size_t size)
{
    return should_fail() ? NULL : calloc(count ? count : 1, size ? size : 1);
}

void *td_realloc(void *ptr, size_t size)
{
    return should_fail() ? NULL : realloc(ptr, size ? size : 1);
}

char *td_strndup(const char *s, size_t n)
{
    char *copy = td_malloc(n + 1);
    if (copy) {
        memcpy(copy, s, n);
        copy[n] = '\0';
    }
    return copy;
}

char *td_strdup(const char *s)
{
    return td_strndup(s, strlen(s));
}

void td_free(void *ptr)
{
    free(ptr);
}
