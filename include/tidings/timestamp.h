/*
 * timestamp.h: points in time, as microseconds since the Unix epoch, UTC.
 *
 * Text form is ISO 8601 / RFC 3339 with exactly six fractional digits and a
 * Z, e.g. "2026-11-26T13:00:00.123456Z". Parsing also accepts fewer fraction
 * digits (or none), a date alone ("2026-11-26", midnight UTC) and a numeric
 * offset ("+01:00"), and converts to UTC.
 */
#ifndef TIDINGS_TIMESTAMP_H
#define TIDINGS_TIMESTAMP_H

#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef int64_t td_time; /* microseconds since 1970-01-01T00:00:00Z */

#define TD_TIME_STR_LEN 27 /* "YYYY-MM-DDTHH:MM:SS.uuuuuuZ" without the NUL */

/* The wall clock now. */
td_time td_time_now(void);

/* Writes the text form and a NUL; years 0000..9999 only (TD_EINVAL outside). */
int td_time_format(char buf[TD_TIME_STR_LEN + 1], td_time t);

/* Parses text as described above; TD_EINVAL with a message otherwise. */
int td_time_parse(td_time *out, const char *text);

#ifdef __cplusplus
}
#endif
#endif
