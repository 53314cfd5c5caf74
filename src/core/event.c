/*
 * event.c: owned copies of events and checks of their JSON payloads.
 *
 * An owned event is one allocation: the td_event struct followed by its
 * strings, so td_event_free is a single free and a copy can never be half
 * made.
 */
#include <string.h>

#include "core/alloc.h"
#include "core/error.h"
#include "core/internal.h"
#include "tidings/event.h"
#include "tidings/memory.h"

void td_event_init(td_event *event)
{
    memset(event, 0, sizeof *event);
}

static size_t field_size(const char *s)
{
    return s ? strlen(s) + 1 : 0;
}

/* Copies n bytes of s to *cursor as a NUL-terminated string; NULL stays NULL. */
static const char *place(char **cursor, const char *s, size_t n)
{
    if (s == NULL)
        return NULL;
    char *copy = *cursor;
    memcpy(copy, s, n);
    copy[n] = '\0';
    *cursor += n + 1;
    return copy;
}

int td_event_dup(td_event **out, const td_event *event)
{
    TD_REQUIRE(out && event);
    size_t meta_len = td_json__length(event->metadata, event->metadata_len);
    size_t data_len = td_json__length(event->data, event->data_len);
    size_t size = sizeof(td_event) + field_size(event->stream) + field_size(event->type) +
                  field_size(event->source) + field_size(event->correlation_id) +
                  field_size(event->causation_id) + (event->metadata ? meta_len + 1 : 0) +
                  (event->data ? data_len + 1 : 0);
    td_event *copy = td_malloc(size);
    if (copy == NULL)
        return td_error__oom();
    *copy = *event;
    char *cursor = (char *)(copy + 1);
    copy->stream = place(&cursor, event->stream, field_size(event->stream) - !!event->stream);
    copy->type = place(&cursor, event->type, field_size(event->type) - !!event->type);
    copy->source = place(&cursor, event->source, field_size(event->source) - !!event->source);
    copy->correlation_id = place(&cursor, event->correlation_id,
                                 field_size(event->correlation_id) - !!event->correlation_id);
    copy->causation_id = place(&cursor, event->causation_id,
                               field_size(event->causation_id) - !!event->causation_id);
    copy->metadata = place(&cursor, event->metadata, meta_len);
    copy->metadata_len = meta_len;
    copy->data = place(&cursor, event->data, data_len);
    copy->data_len = data_len;
    *out = copy;
    return 0;
}

void td_event_free(td_event *event)
{
    td_free(event);
}

int td_event_data(json_t **out, const td_event *event)
{
    TD_REQUIRE(out && event);
    json_error_t err;
    size_t len = td_json__length(event->data, event->data_len);
    if (event->data == NULL)
        return td_error__set(TD_EINVAL, "event has no data");
    bool oom;
    *out = td_json__loadb(event->data, len, 0, &err, &oom);
    if (oom)
        return td_error__oom();
    if (*out == NULL)
        return td_error__set(TD_ECORRUPT, "event data is not JSON: %s", err.text);
    return 0;
}
