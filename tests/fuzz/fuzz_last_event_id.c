/*
 * fuzz_last_event_id.c: the live feed's start position as a client sends it
 * (the Last-Event-ID header or ?after=, http_parse_position in
 * shop/http/sse.c). The oracle is the definition: accepted iff the text is
 * one or more decimal digits whose value fits in int64, and then the value
 * printed back is the text without its leading zeros.
 */
#include <inttypes.h>
#include <string.h>

#include "fuzz.h"
#include "http/http.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char text[64], back[32];
    if (size >= sizeof text || memchr(data, '\0', size)) /* no header holds a NUL */
        return 0;
    memcpy(text, data, size);
    text[size] = '\0';
    int64_t value = -1;
    bool ok = http_parse_position(text, &value);
    size_t digits = strspn(text, "0123456789");
    const char *significant = text + strspn(text, "0");
    if (*significant == '\0' && size > 0)
        significant--; /* "000" is 0 */
    bool fits = strlen(significant) < 19 ||
                (strlen(significant) == 19 && strcmp(significant, "9223372036854775807") <= 0);
    FUZZ_CHECK(ok == (size > 0 && digits == size && fits));
    if (ok) {
        snprintf(back, sizeof back, "%" PRId64, value);
        FUZZ_CHECK(strcmp(back, significant) == 0);
    } else {
        FUZZ_CHECK(value == -1);
    }
    return 0;
}
