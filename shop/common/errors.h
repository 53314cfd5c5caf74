/*
 * errors.h (shop): setting the thread's shop error (reading it: shop.h).
 */
#ifndef SHOP_COMMON_ERRORS_H
#define SHOP_COMMON_ERRORS_H

#include "shop.h"

/* Records status, code word, field (JSON Pointer or NULL) and a message;
 * returns status. */
int shop_fail(int status, const char *code, const char *field, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

/* Records a libtidings failure (its message), choosing the code word from the
 * status; returns status. */
int shop_fail_td(int status);

/* Clears the thread's error. */
void shop_error_clear(void);

#endif
