/*
 * alloc.c: the allocation seam (see alloc.h).
 *
 * In normal runs the countdown is negative and each function is a plain call
 * to the C library. A test arms the countdown to fail allocations on purpose.
 *
 * jansson allocates through the seam too: when the library is loaded, a
 * constructor hands td_malloc and td_free to json_set_alloc_funcs. That is
 * process-wide, so the application's own jansson calls go through it as
 * well; in normal runs that is malloc and free all the same. An
 * application that sets jansson's functions itself afterwards keeps
 * working (the library frees what jansson hands it with jansson's own free,
 * td_json__free), only its failures are no longer injected.
 */
#include "core/alloc.h"

#include <jansson.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#include "tidings/memory.h"

static atomic_long countdown = -1;
static atomic_ulong failed;
static _Thread_local unsigned long thread_failures;

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
    atomic_fetch_add_explicit(&failed, 1, memory_order_relaxed);
    thread_failures++;
    return 1;
}

/* p, counting it as a failure of this thread when NULL. */
static void *counted(void *p)
{
    if (p == NULL)
        thread_failures++;
    return p;
}

unsigned long td_alloc__thread_failures(void)
{
    return thread_failures;
}

unsigned long td_alloc__failed(void)
{
    return atomic_load(&failed);
}

void td_alloc__fail_after(long successes)
{
    atomic_store(&countdown, successes);
}

void *td_malloc(size_t size)
{
    return should_fail() ? NULL : counted(malloc(size ? size : 1));
}

void *td_calloc(size_t count, size_t size)
{
    return should_fail() ? NULL : counted(calloc(count ? count : 1, size ? size : 1));
}

void *td_realloc(void *ptr, size_t size)
{
    return should_fail() ? NULL : counted(realloc(ptr, size ? size : 1));
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

static void *json_malloc(size_t size)
{
    return td_malloc(size);
}

__attribute__((constructor)) static void route_jansson(void)
{
    json_set_alloc_funcs(json_malloc, td_free);
}
