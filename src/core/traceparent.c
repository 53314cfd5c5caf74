/*
 * traceparent.c: W3C Trace Context "traceparent" values (version 00):
 * "00-<32 hex trace id>-<16 hex parent id>-<2 hex flags>", lower case, and
 * neither id all zeros. New ones start a trace with the sampled flag set.
 */
#include <string.h>
#include <sys/random.h>

#include "core/error.h"
#include "core/internal.h"
#include "tidings/event.h"

static int lower_hex_run(const char *s, size_t n, int *all_zero)
{
    *all_zero = 1;
    for (size_t i = 0; i < n; i++) {
        char c = s[i];
        if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f')))
            return 0;
        if (c != '0')
            *all_zero = 0;
    }
    return 1;
}

int td_traceparent_check(const char *tp)
{
    int zero_trace, zero_parent, ignored;
    if (tp == NULL || strlen(tp) != TD_TRACEPARENT_LEN || memcmp(tp, "00-", 3) != 0 ||
        tp[35] != '-' || tp[52] != '-' || !lower_hex_run(tp + 3, 32, &zero_trace) ||
        !lower_hex_run(tp + 36, 16, &zero_parent) || !lower_hex_run(tp + 53, 2, &ignored) ||
        zero_trace || zero_parent)
        return td_error__set(TD_EINVAL, "invalid traceparent: expected 00-<32 hex>-<16 hex>-<2 "
                                        "hex>, lower case, ids not all zero");
    return 0;
}

static void hex_into(char *out, const uint8_t *bytes, size_t n)
{
    static const char hex[] = "0123456789abcdef";
    for (size_t i = 0; i < n; i++) {
        out[2 * i] = hex[bytes[i] >> 4];
        out[2 * i + 1] = hex[bytes[i] & 0xf];
    }
}

int td_traceparent__new(char out[TD_TRACEPARENT_LEN + 1])
{
    uint8_t r[24];
    if (getrandom(r, sizeof r, 0) != (ssize_t)sizeof r)
        return td_error__set(TD_EIO, "getrandom failed");
    r[0] |= 0x01; /* never all zero */
    r[16] |= 0x01;
    memcpy(out, "00-", 3);
    hex_into(out + 3, r, 16);
    out[35] = '-';
    hex_into(out + 36, r + 16, 8);
    memcpy(out + 52, "-01", 4);
    return 0;
}

int td_traceparent__child(char out[TD_TRACEPARENT_LEN + 1], const char *parent)
{
    uint8_t span[8];
    int error = td_traceparent_check(parent);
    if (error < 0)
        return error;
    if (getrandom(span, sizeof span, 0) != (ssize_t)sizeof span)
        return td_error__set(TD_EIO, "getrandom failed");
    span[0] |= 0x01;
    memcpy(out, parent, TD_TRACEPARENT_LEN + 1);
    hex_into(out + 36, span, 8);
    return 0;
}
