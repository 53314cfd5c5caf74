/*
 * validate.h (shop): checks of command input. Each returns 0 or TD_EINVAL
 * with the shop error set: code validation_failed and the field's JSON
 * Pointer.
 */
#ifndef SHOP_COMMON_VALIDATE_H
#define SHOP_COMMON_VALIDATE_H

#include "shop.h"

int check_text(const char *value, const char *field, size_t max);
int check_email(const char *value, const char *field);
int check_currency(const char *value, const char *field);
int check_price(int64_t value, const char *field);
int check_id(const char *value, const char *field);
int check_range(int64_t value, int64_t min, int64_t max, const char *field);

#endif
