/*
 * validate.c (shop): input checks (see validate.h). Text must be valid
 * UTF-8 without control characters; lengths are in bytes.
 */
#include "common/validate.h"

#include <string.h>

#include "common/errors.h"

static int invalid(const char *field, const char *what)
{
    return shop_fail(TD_EINVAL, "validation_failed", field, "%s %s", field + 1, what);
}

/* Length of a valid UTF-8 sequence at s, or 0. */
static size_t utf8_char(const unsigned char *s)
{
    size_t n = s[0] < 0x80             ? 1
               : (s[0] & 0xe0) == 0xc0 ? 2
               : (s[0] & 0xf0) == 0xe0 ? 3
               : (s[0] & 0xf8) == 0xf0 ? 4
                                       : 0;
    if (n == 2 && s[0] < 0xc2)
        return 0; /* overlong */
    for (size_t i = 1; i < n; i++)
        if ((s[i] & 0xc0) != 0x80)
            return 0;
    return n;
}

int check_text(const char *value, const char *field, size_t max)
{
    if (value == NULL)
        return invalid(field, "is required");
    size_t len = strlen(value);
    if (len == 0)
        return invalid(field, "must not be empty");
    if (len > max)
        return shop_fail(TD_EINVAL, "validation_failed", field, "%s is longer than %zu bytes",
                         field + 1, max);
    for (const unsigned char *p = (const unsigned char *)value; *p;) {
        size_t n = utf8_char(p);
        if (n == 0)
            return invalid(field, "is not valid UTF-8");
        if (n == 1 && (*p < 0x20 || *p == 0x7f))
            return invalid(field, "contains control characters");
        p += n;
    }
    return 0;
}

int check_email(const char *value, const char *field)
{
    int error = check_text(value, field, 254);
    if (error < 0)
        return error;
    const char *at = strchr(value, '@');
    const char *dot = at ? strrchr(at, '.') : NULL;
    bool ok = at && at != value && strchr(at + 1, '@') == NULL && dot && dot > at + 1 &&
              dot[1] != '\0' && strpbrk(value, " \t<>()[],;:\\\"") == NULL;
    return ok ? 0 : invalid(field, "is not an e-mail address");
}

int check_currency(const char *value, const char *field)
{
    bool ok = value && strlen(value) == 3;
    for (int i = 0; ok && i < 3; i++)
        ok = value[i] >= 'A' && value[i] <= 'Z';
    return ok ? 0 : invalid(field, "must be an ISO 4217 code like USD");
}

int check_price(int64_t value, const char *field)
{
    return check_range(value, 0, SHOP_MAX_PRICE, field);
}

int check_id(const char *value, const char *field)
{
    td_uuid ignored;
    if (value == NULL)
        return invalid(field, "is required");
    return td_uuid_parse(&ignored, value) == 0 ? 0 : invalid(field, "is not a UUID");
}

int check_range(int64_t value, int64_t min, int64_t max, const char *field)
{
    if (value < min || value > max)
        return shop_fail(TD_EINVAL, "validation_failed", field, "%s must be between %lld and %lld",
                         field + 1, (long long)min, (long long)max);
    return 0;
}
