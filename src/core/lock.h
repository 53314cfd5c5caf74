/*
 * lock.h: asserting the lock precondition a comment states (internal).
 *
 * TD_ASSERT_HELD(mutex) at the top of a function documented "lock held"
 * aborts, in builds with assertions (the Debug builds of make test and
 * make test-tsan), when the mutex is not held. pthreads cannot say by whom
 * without an owner field, so this catches the usual slip, calling without
 * the lock while no other thread holds it; release builds (NDEBUG) pay
 * nothing.
 */
#ifndef TD_CORE_LOCK_H
#define TD_CORE_LOCK_H

#include <assert.h>
#include <errno.h>
#include <pthread.h>

#define TD_ASSERT_HELD(mutex) assert(pthread_mutex_trylock(mutex) == EBUSY)

#endif
