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

/* Copies this thread's message into buf (for handing it to another thread). */
void td_error__copy(char *buf, size_t size);

#endif
