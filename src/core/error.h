/*
 * error.h: setting the thread's last error (internal; reading is public in
 * tidings/errors.h).
 */
#ifndef TD_CORE_ERROR_H
#define TD_CORE_ERROR_H

#include <stddef.h>

#include "tidings/errors.h"

/* Records code and a printf-style message for this thread; returns code, so
 * `return td_error__set(TD_EINVAL, "…")` reads naturally. */
int td_error__set(int code, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* TD_ENOMEM with a standard message. */
int td_error__oom(void);

/* A public function's precondition on its arguments (a handle that must be
 * there, an option struct it needs): when cond is false, it returns
 * TD_EINVAL with a message naming the function and the condition, instead
 * of crashing on it. For use at the top of a function returning int. */
#define TD_REQUIRE(cond)                                                                           \
    do {                                                                                           \
        if (!(cond))                                                                               \
            return td_error__set(TD_EINVAL, "%s: needs %s", __func__, #cond);                      \
    } while (0)

/* Copies this thread's message into buf (for handing it to another thread). */
void td_error__copy(char *buf, size_t size);

#endif
