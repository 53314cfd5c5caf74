/*
 * error.c: the thread-local last error.
 *
 * Each thread has its own code and a fixed message buffer, so setting an
 * error never allocates (it must work when memory is exhausted) and threads
 * never see each other's messages.
 */
#include "core/error.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#define MESSAGE_MAX 512

static _Thread_local int last_code;
static _Thread_local char last_message[MESSAGE_MAX];

__attribute__((format(printf, 2, 0))) static int set_v(int code, const char *fmt, va_list ap)
{
    vsnprintf(last_message, sizeof last_message, fmt, ap);
    last_code = code;
    return code;
}

int td_error__set(int code, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    set_v(code, fmt, ap);
    va_end(ap);
    return code;
}

int td_error_report(int code, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    set_v(code, fmt, ap);
    va_end(ap);
    return code;
}

int td_error__oom(void)
{
    return td_error__set(TD_ENOMEM, "out of memory");
}

void td_error__copy(char *buf, size_t size)
{
    snprintf(buf, size, "%s", last_message);
}

const char *td_error_last(void)
{
    return last_message;
}

int td_error_last_code(void)
{
    return last_code;
}

void td_error_clear(void)
{
    last_code = TD_OK;
    last_message[0] = '\0';
}

const char *td_error_name(int code)
{
    switch (code) {
    case TD_OK:
        return "ok";
    case TD_EINVAL:
        return "invalid";
    case TD_ENOTFOUND:
        return "not_found";
    case TD_ECONFLICT:
        return "conflict";
    case TD_EIO:
        return "io";
    case TD_ECORRUPT:
        return "corrupt";
    case TD_ETOOBIG:
        return "too_big";
    case TD_EVERSION:
        return "unsupported_version";
    case TD_ENOMEM:
        return "no_memory";
    case TD_EBUSY:
        return "busy";
    case TD_EEXISTS:
        return "exists";
    case TD_ECLOSED:
        return "closed";
    case TD_EPERMANENT:
        return "permanent";
    case TD_ENOSPC:
        return "storage_full";
    case TD_EUNAVAILABLE:
        return "unavailable";
    default:
        return "error";
    }
}
