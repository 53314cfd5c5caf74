/*
 * uuid.c: UUIDv7 generation (RFC 9562 §5.7, monotonic by §6.2 method 2),
 * formatting and parsing.
 *
 * Layout: 48-bit Unix milliseconds | ver 7 | 12-bit rand_a | var 10 | 62-bit
 * rand_b. rand_a:rand_b form one 74-bit counter. On a new millisecond it is
 * seeded with random bits (its top bit cleared, leaving room for 2^73
 * increments); within the same millisecond, or if the clock steps back, the
 * counter is incremented instead, so ids of one process strictly increase.
 * If the counter ever overflows, the timestamp is advanced by one.
 */
#include <pthread.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>

#include "core/error.h"
#include "tidings/uuid.h"

#define RAND_B_MASK ((UINT64_C(1) << 62) - 1)

static pthread_mutex_t state_lock = PTHREAD_MUTEX_INITIALIZER;
static int64_t last_ms = -1;
static uint32_t rand_a; /* 12 bits */
static uint64_t rand_b; /* 62 bits */

static int64_t now_millis(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static int fill_random(void *buf, size_t len)
{
    uint8_t *p = buf;
    while (len > 0) {
        ssize_t n = getrandom(p, len, 0);
        if (n < 0)
            return td_error__set(TD_EIO, "getrandom failed");
        p += n;
        len -= (size_t)n;
    }
    return 0;
}

static int reseed(int64_t ms)
{
    uint8_t r[10];
    int error = fill_random(r, sizeof r);
    if (error < 0)
        return error;
    rand_a = ((uint32_t)(r[0] & 0x07) << 8) | r[1]; /* top bit cleared */
    rand_b = 0;
    for (int i = 2; i < 10; i++)
        rand_b = (rand_b << 8) | r[i];
    rand_b &= RAND_B_MASK;
    last_ms = ms;
    return 0;
}

static void increment(void)
{
    rand_b = (rand_b + 1) & RAND_B_MASK;
    if (rand_b != 0)
        return;
    rand_a = (rand_a + 1) & 0xfff;
    if (rand_a == 0)
        last_ms++;
}

static void compose(td_uuid *out, int64_t ms, uint32_t a, uint64_t b)
{
    for (int i = 0; i < 6; i++)
        out->bytes[i] = (uint8_t)((uint64_t)ms >> (40 - 8 * i));
    out->bytes[6] = (uint8_t)(0x70 | (a >> 8));
    out->bytes[7] = (uint8_t)a;
    out->bytes[8] = (uint8_t)(0x80 | (b >> 56));
    for (int i = 9; i < 16; i++)
        out->bytes[i] = (uint8_t)(b >> (8 * (15 - i)));
}

int td_uuid_v7(td_uuid *out)
{
    TD_REQUIRE(out);
    int error = 0;
    int64_t ms = now_millis();

    pthread_mutex_lock(&state_lock);
    if (ms > last_ms)
        error = reseed(ms);
    else
        increment();
    if (error == 0)
        compose(out, last_ms, rand_a, rand_b);
    pthread_mutex_unlock(&state_lock);
    return error;
}

int64_t td_uuid_v7_millis(const td_uuid *id)
{
    int64_t ms = 0;
    for (int i = 0; i < 6; i++)
        ms = (ms << 8) | id->bytes[i];
    return ms;
}

void td_uuid_format(char buf[TD_UUID_STR_LEN + 1], const td_uuid *id)
{
    static const char hex[] = "0123456789abcdef";
    char *p = buf;
    for (int i = 0; i < 16; i++) {
        if (i == 4 || i == 6 || i == 8 || i == 10)
            *p++ = '-';
        *p++ = hex[id->bytes[i] >> 4];
        *p++ = hex[id->bytes[i] & 0xf];
    }
    *p = '\0';
}

/* The value of hex digit c into *out; false if c is not one. */
static bool hex_value(char c, int *out)
{
    if (c >= '0' && c <= '9')
        *out = c - '0';
    else if (c >= 'a' && c <= 'f')
        *out = c - 'a' + 10;
    else if (c >= 'A' && c <= 'F')
        *out = c - 'A' + 10;
    else
        return false;
    return true;
}

int td_uuid_parse(td_uuid *out, const char *text)
{
    TD_REQUIRE(out);
    td_uuid id;
    const char *p = text;
    if (text == NULL)
        return td_error__set(TD_EINVAL, "missing UUID");
    for (int i = 0; i < 16; i++) {
        if ((i == 4 || i == 6 || i == 8 || i == 10) && *p++ != '-')
            return td_error__set(TD_EINVAL, "malformed UUID: expected 8-4-4-4-12 hex digits");
        int hi, lo;
        if (!hex_value(p[0], &hi) || !hex_value(p[1], &lo))
            return td_error__set(TD_EINVAL, "malformed UUID: expected 8-4-4-4-12 hex digits");
        id.bytes[i] = (uint8_t)(hi << 4 | lo);
        p += 2;
    }
    if (*p != '\0')
        return td_error__set(TD_EINVAL, "malformed UUID: trailing characters");
    *out = id;
    return 0;
}

bool td_uuid_is_nil(const td_uuid *id)
{
    static const td_uuid nil;
    return memcmp(id, &nil, sizeof nil) == 0;
}

int td_uuid_compare(const td_uuid *a, const td_uuid *b)
{
    return memcmp(a->bytes, b->bytes, sizeof a->bytes);
}
