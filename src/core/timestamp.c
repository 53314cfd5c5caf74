/*
 * timestamp.c: microsecond UTC timestamps and their RFC 3339 text form.
 *
 * Conversion between civil dates and day counts uses Howard Hinnant's
 * days_from_civil / civil_from_days, which need no time zone database and
 * are exact over the whole proleptic Gregorian calendar.
 */
#include <ctype.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "core/error.h"
#include "tidings/timestamp.h"

#define USEC_PER_SEC INT64_C(1000000)
#define SEC_PER_DAY  INT64_C(86400)

static int64_t days_from_civil(int64_t y, int m, int d)
{
    y -= m <= 2;
    int64_t era = (y >= 0 ? y : y - 399) / 400;
    int64_t yoe = y - era * 400;
    int64_t doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
    int64_t doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    return era * 146097 + doe - 719468;
}

static void civil_from_days(int64_t z, int64_t *y, int *m, int *d)
{
    z += 719468;
    int64_t era = (z >= 0 ? z : z - 146096) / 146097;
    int64_t doe = z - era * 146097;
    int64_t yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
    int64_t doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    int64_t mp = (5 * doy + 2) / 153;
    *d = (int)(doy - (153 * mp + 2) / 5 + 1);
    *m = (int)(mp < 10 ? mp + 3 : mp - 9);
    *y = yoe + era * 400 + (*m <= 2);
}

td_time td_time_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (td_time)ts.tv_sec * USEC_PER_SEC + ts.tv_nsec / 1000;
}

static int64_t floor_div(int64_t a, int64_t b)
{
    return a / b - (a % b != 0 && (a < 0) != (b < 0));
}

int td_time_format(char buf[TD_TIME_STR_LEN + 1], td_time t)
{
    int64_t secs = floor_div(t, USEC_PER_SEC);
    int64_t usec = t - secs * USEC_PER_SEC;
    int64_t days = floor_div(secs, SEC_PER_DAY);
    int64_t sod = secs - days * SEC_PER_DAY;
    int64_t y;
    int m, d;
    civil_from_days(days, &y, &m, &d);
    if (y < 0 || y > 9999)
        return td_error__set(TD_EINVAL, "timestamp outside years 0000..9999");
    char text[64]; /* roomy, so the compiler can see nothing is cut */
    snprintf(text, sizeof text, "%04d-%02d-%02dT%02d:%02d:%02d.%06dZ", (int)y, m, d,
             (int)(sod / 3600), (int)(sod / 60 % 60), (int)(sod % 60), (int)usec);
    memcpy(buf, text, TD_TIME_STR_LEN + 1);
    return 0;
}

/* Reads exactly n digits at *p into *out and advances *p. */
static int digits(const char **p, int n, int *out)
{
    int v = 0;
    for (int i = 0; i < n; i++) {
        if (!isdigit((unsigned char)(*p)[i]))
            return TD_EINVAL;
        v = v * 10 + ((*p)[i] - '0');
    }
    *p += n;
    *out = v;
    return 0;
}

static int days_in_month(int y, int m)
{
    static const int days[] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
    int leap = (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
    return m == 2 && leap ? 29 : days[m - 1];
}

static int parse_fraction(const char **p, int64_t *usec)
{
    int n = 0;
    int64_t v = 0;
    if (**p != '.')
        return 0;
    (*p)++;
    while (isdigit((unsigned char)**p)) {
        if (n < 6) {
            v = v * 10 + (**p - '0');
            n++;
        }
        (*p)++;
    }
    if (n == 0)
        return TD_EINVAL;
    for (; n < 6; n++)
        v *= 10;
    *usec = v;
    return 0;
}

static int parse_offset(const char **p, int64_t *offset_sec)
{
    int oh, om;
    char sign = **p;
    if (sign == 'Z' || sign == 'z') {
        (*p)++;
        return 0;
    }
    if (sign != '+' && sign != '-')
        return TD_EINVAL;
    (*p)++;
    if (digits(p, 2, &oh) < 0 || *(*p)++ != ':' || digits(p, 2, &om) < 0 || oh > 23 || om > 59)
        return TD_EINVAL;
    *offset_sec = (sign == '+' ? 1 : -1) * (oh * 3600 + om * 60);
    return 0;
}

int td_time_parse(td_time *out, const char *text)
{
    const char *p = text;
    int y, mo, d, h = 0, mi = 0, s = 0;
    int64_t usec = 0, offset = 0;

    if (text == NULL)
        return td_error__set(TD_EINVAL, "missing timestamp");
    if (digits(&p, 4, &y) < 0 || *p++ != '-' || digits(&p, 2, &mo) < 0 || *p++ != '-' ||
        digits(&p, 2, &d) < 0)
        goto bad;
    if (mo < 1 || mo > 12 || d < 1 || d > days_in_month(y, mo))
        goto bad;
    if (*p != '\0') {
        if ((*p != 'T' && *p != 't' && *p != ' ') || (p++, digits(&p, 2, &h)) < 0 || *p++ != ':' ||
            digits(&p, 2, &mi) < 0 || *p++ != ':' || digits(&p, 2, &s) < 0)
            goto bad;
        if (h > 23 || mi > 59 || s > 60 || parse_fraction(&p, &usec) < 0 ||
            parse_offset(&p, &offset) < 0 || *p != '\0')
            goto bad;
    }
    int64_t secs = days_from_civil(y, mo, d) * SEC_PER_DAY + h * 3600 + mi * 60 + s - offset;
    *out = secs * USEC_PER_SEC + usec;
    return 0;
bad:
    return td_error__set(TD_EINVAL,
                         "malformed timestamp '%.64s': expected ISO 8601 like "
                         "2026-11-26T13:00:00.123456Z",
                         text);
}
