/*
 * uuid.h: UUIDs, version 7 (RFC 9562) for everything tidings creates.
 *
 * A UUIDv7 starts with a 48-bit Unix millisecond timestamp, so ids sort by
 * creation time. Ids made by one process are strictly increasing, also within
 * one millisecond (RFC 9562 §6.2, method 2: the random tail is a counter that
 * is re-seeded each millisecond). Generation is thread-safe.
 * Text form: 36 lower-case characters, 8-4-4-4-12; parsing accepts either case.
 */
#ifndef TIDINGS_UUID_H
#define TIDINGS_UUID_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef struct td_uuid {
    uint8_t bytes[16];
} td_uuid;

#define TD_UUID_STR_LEN 36 /* without the terminating NUL */

/* Makes a new UUIDv7. Fails only if the system has no randomness (TD_EIO). */
int td_uuid_v7(td_uuid *out);

/* Writes the text form and a NUL into buf, which holds TD_UUID_STR_LEN + 1. */
void td_uuid_format(char buf[TD_UUID_STR_LEN + 1], const td_uuid *id);

/* Parses exactly 36 characters of text form; TD_EINVAL otherwise. */
int td_uuid_parse(td_uuid *out, const char *text);

bool td_uuid_is_nil(const td_uuid *id);
int td_uuid_compare(const td_uuid *a, const td_uuid *b);

/* The Unix millisecond timestamp of a v7 id. */
int64_t td_uuid_v7_millis(const td_uuid *id);

#ifdef __cplusplus
}
#endif
#endif
