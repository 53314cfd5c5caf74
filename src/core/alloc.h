/*
 * alloc.h: the one allocation seam of libtidings (internal).
 *
 * Every allocation in the library goes through these functions so that a
 * test can make the Nth allocation from now fail (td_alloc__fail_after) and
 * check that the failure is reported as TD_ENOMEM with nothing changed.
 */
#ifndef TD_CORE_ALLOC_H
#define TD_CORE_ALLOC_H

#include <stddef.h>

#include "tidings/memory.h"

void *td_malloc(size_t size);
void *td_calloc(size_t count, size_t size);
void *td_realloc(void *ptr, size_t size);
char *td_strdup(const char *s);
char *td_strndup(const char *s, size_t n);
/* td_free comes from tidings/memory.h */

/* Test seam: after `successes` more allocations succeed, every later one
 * fails until td_alloc__fail_after(-1). Process-wide, thread-safe. */
void td_alloc__fail_after(long successes);

/* How many allocations the seam has failed on purpose so far (a test that
 * fails the Nth allocation learns this way whether there was an Nth). */
unsigned long td_alloc__failed(void);

/* How many allocations have failed on the calling thread so far, on
 * purpose or for real: a caller of a library that hides why it failed
 * (jansson's parser reports some failed allocations as syntax errors)
 * compares this before and after. */
unsigned long td_alloc__thread_failures(void);

#endif
