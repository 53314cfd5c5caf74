/*
 * spans.c (shop): the ring of recent spans (spans.h). Each slot holds a
 * copy of a span with its strings cut to fixed sizes; a lookup by trace id
 * walks the ring (a few thousand slots) under the lock.
 */
#include "services/spans.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct slot {
    char trace_id[33], span_id[17], parent_span_id[17];
    char name[TD_TYPE_MAX + 16];
    td_span_kind kind;
    int64_t start_ns, end_ns;
    bool error;
    char status_message[256];
    char subscription[128];
    char event_type[TD_TYPE_MAX + 1];
    char event_id[TD_UUID_STR_LEN + 1];
    char stream[TD_STREAM_MAX + 1];
    int64_t position;
    unsigned attempt;
} slot;

struct shop_spans {
    pthread_mutex_t lock;
    slot *ring;
    size_t capacity, next, count;
};

int shop_spans_new(shop_spans **out, size_t capacity)
{
    shop_spans *s = calloc(1, sizeof *s);
    if (s == NULL)
        return TD_ENOMEM;
    s->capacity = capacity ? capacity : SHOP_SPANS_DEFAULT;
    s->ring = calloc(s->capacity, sizeof *s->ring);
    if (s->ring == NULL || pthread_mutex_init(&s->lock, NULL) != 0) {
        free(s->ring);
        free(s);
        return TD_ENOMEM;
    }
    *out = s;
    return 0;
}

void shop_spans_free(shop_spans *s)
{
    if (s == NULL)
        return;
    pthread_mutex_destroy(&s->lock);
    free(s->ring);
    free(s);
}

#define COPY(field, from) snprintf(field, sizeof field, "%s", (from) ? (from) : "")

void shop_spans_export(const td_span *span, void *payload)
{
    shop_spans *s = payload;
    slot copy = {.kind = span->kind,
                 .start_ns = span->start_ns,
                 .end_ns = span->end_ns,
                 .error = span->error,
                 .position = span->position,
                 .attempt = span->attempt};
    COPY(copy.trace_id, span->trace_id);
    COPY(copy.span_id, span->span_id);
    COPY(copy.parent_span_id, span->parent_span_id);
    COPY(copy.name, span->name);
    COPY(copy.status_message, span->status_message);
    COPY(copy.subscription, span->subscription);
    COPY(copy.event_type, span->event_type);
    COPY(copy.event_id, span->event_id);
    COPY(copy.stream, span->stream);
    pthread_mutex_lock(&s->lock);
    s->ring[s->next] = copy;
    s->next = (s->next + 1) % s->capacity;
    if (s->count < s->capacity)
        s->count++;
    pthread_mutex_unlock(&s->lock);
}

/* Unix nanoseconds as RFC 3339 with microseconds. */
static json_t *time_json(int64_t ns)
{
    char text[TD_TIME_STR_LEN + 1];
    return td_time_format(text, (td_time)(ns / 1000)) == 0 ? json_string(text) : json_null();
}

/* "" as null; a text cut inside a UTF-8 sequence as null too. */
static json_t *empty_null(const char *text)
{
    json_t *json = text[0] ? json_string(text) : NULL;
    return json ? json : json_null();
}

static json_t *slot_json(const slot *x)
{
    const char *kind = x->kind == TD_SPAN_PRODUCER   ? "producer"
                       : x->kind == TD_SPAN_CONSUMER ? "consumer"
                                                     : "internal";
    return json_pack("{s:s,s:s,s:o,s:s,s:s,s:o,s:o,s:f,s:b,s:o,s:o,s:o,s:o,s:o,s:I,s:i}",
                     "trace_id", x->trace_id, "span_id", x->span_id, "parent_span_id",
                     empty_null(x->parent_span_id), "name", x->name[0] ? x->name : "span", "kind",
                     kind, "start", time_json(x->start_ns), "end", time_json(x->end_ns),
                     "duration_ms", (double)(x->end_ns - x->start_ns) / 1e6, "error", x->error,
                     "status_message", empty_null(x->status_message), "subscription",
                     empty_null(x->subscription), "event_type", empty_null(x->event_type),
                     "event_id", empty_null(x->event_id), "stream", empty_null(x->stream),
                     "position", (json_int_t)x->position, "attempt", (int)x->attempt);
}

int shop_spans_of_trace(shop_spans *s, const char *trace_id, json_t *out)
{
    int error = 0;
    pthread_mutex_lock(&s->lock);
    size_t first = (s->next + s->capacity - s->count) % s->capacity;
    for (size_t i = 0; i < s->count && error == 0; i++) {
        const slot *x = &s->ring[(first + i) % s->capacity];
        if (strcmp(x->trace_id, trace_id) != 0)
            continue;
        json_t *json = slot_json(x);
        if (json == NULL || json_array_append_new(out, json) < 0)
            error = TD_ENOMEM;
    }
    pthread_mutex_unlock(&s->lock);
    return error;
}
