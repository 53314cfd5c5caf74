/*
 * fuzz_envelope.c: the envelope's JSON decoder (td_event_from_json), the
 * way import, the HTTP API and tools meet it: any bytes, parsed as JSON
 * with duplicate keys refused. Whatever it accepts must come back the same
 * through its encoder: decode(encode(decode(x))) == decode(x), field by
 * field (metadata NULL and "{}" being the same), and the encoded form is
 * JSON again.
 */
#include <string.h>

#include "fuzz.h"
#include "tidings/tidings.h"

static int same_text(const char *a, const char *b)
{
    return (a == NULL && b == NULL) || (a && b && strcmp(a, b) == 0);
}

/* A text field with its length (0: NUL-terminated; NULL: none). */
static int same_bytes(const char *a, size_t alen, const char *b, size_t blen)
{
    if (a == NULL || b == NULL)
        return a == b;
    alen = alen ? alen : strlen(a);
    blen = blen ? blen : strlen(b);
    return alen == blen && memcmp(a, b, alen) == 0;
}

static void check_same(const td_event *a, const td_event *b)
{
    FUZZ_CHECK(a->position == b->position && a->version == b->version);
    FUZZ_CHECK(memcmp(&a->id, &b->id, sizeof a->id) == 0);
    FUZZ_CHECK(same_text(a->stream, b->stream) && same_text(a->type, b->type));
    FUZZ_CHECK(a->schema_version == b->schema_version && a->kind == b->kind);
    FUZZ_CHECK(same_text(a->source, b->source) && a->occurred_at == b->occurred_at);
    FUZZ_CHECK(same_text(a->correlation_id, b->correlation_id));
    FUZZ_CHECK(same_text(a->causation_id, b->causation_id));
    FUZZ_CHECK(memcmp(&a->traceparent, &b->traceparent, sizeof a->traceparent) == 0);
    FUZZ_CHECK(same_bytes(a->data, a->data_len, b->data, b->data_len));
    FUZZ_CHECK(same_bytes(a->metadata ? a->metadata : "{}", a->metadata_len,
                          b->metadata ? b->metadata : "{}", b->metadata_len));
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    json_error_t err;
    td_event *ev = NULL, *again = NULL;
    char *text = NULL;
    size_t len = 0;
    json_t *json = json_loadb((const char *)data, size, JSON_REJECT_DUPLICATES, &err);
    if (json == NULL)
        return 0;
    int rc = td_event_from_json(&ev, json);
    json_decref(json);
    if (rc < 0) {
        FUZZ_CHECK(ev == NULL && td_error_last()[0] != '\0');
        return 0;
    }
    FUZZ_CHECK(td_event_to_text(&text, &len, ev) == 0 && strlen(text) == len);
    json = json_loadb(text, len, JSON_REJECT_DUPLICATES, &err);
    FUZZ_CHECK(json != NULL);
    FUZZ_CHECK(td_event_from_json(&again, json) == 0);
    check_same(ev, again);
    json_decref(json);
    td_free(text);
    td_event_free(again);
    td_event_free(ev);
    return 0;
}
