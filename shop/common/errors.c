/*
 * errors.c (shop): the thread's last shop error: a TD_E… status, a stable
 * code word for clients, the JSON Pointer of the offending input and a
 * sentence. Fixed buffers: setting an error never allocates.
 */
#include "common/errors.h"

#include <stdarg.h>
#include <stdio.h>

static _Thread_local int status;
static _Thread_local const char *code;
static _Thread_local char field[128];
static _Thread_local char message[512];

int shop_fail(int st, const char *word, const char *pointer, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(message, sizeof message, fmt, ap);
    va_end(ap);
    status = st;
    code = word;
    snprintf(field, sizeof field, "%s", pointer ? pointer : "");
    return st;
}

static const char *word_for(int st)
{
    switch (st) {
    case TD_EINVAL:
    case TD_ETOOBIG:
        return "validation_failed";
    case TD_ENOTFOUND:
        return "not_found";
    case TD_ECONFLICT:
        return "conflict";
    case TD_EEXISTS:
        return "exists";
    case TD_EBUSY:
        return "busy";
    case TD_ENOSPC:
        return "storage_full";
    case TD_ECLOSED:
    case TD_EUNAVAILABLE:
        return "store_unavailable";
    default:
        return "internal_error";
    }
}

int shop_fail_td(int st)
{
    return shop_fail(st, word_for(st), NULL, "%s", td_error_last());
}

void shop_error_clear(void)
{
    status = 0;
    code = NULL;
    field[0] = message[0] = '\0';
}

shop_error_info shop_error(void)
{
    shop_error_info e = {status, code ? code : "ok", field[0] ? field : NULL, message};
    return e;
}
