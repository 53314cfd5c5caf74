/*
 * trace.c: handler spans and their exporters.
 *
 * Span ids come from getrandom, never all zero. The file exporter writes one
 * OTLP/JSON ResourceSpans object per line under a mutex, so lines from
 * different lanes never interleave; times are Unix nanoseconds as strings,
 * as OTLP/JSON asks for 64-bit integers.
 */
#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <sys/random.h>

#include "core/alloc.h"
#include "core/error.h"
#include "core/internal.h"
#include "tidings/trace.h"

struct td_tracer {
    td_span_exporter exporter;
    void *payload;
    FILE *file; /* the file exporter's, or NULL */
    pthread_mutex_t lock;
};

int td_tracer_new(td_tracer **out, td_span_exporter exporter, void *payload)
{
    if (exporter == NULL)
        return td_error__set(TD_EINVAL, "td_tracer_new: exporter is NULL");
    td_tracer *t = td_calloc(1, sizeof *t);
    if (t == NULL)
        return td_error__oom();
    t->exporter = exporter;
    t->payload = payload;
    pthread_mutex_init(&t->lock, NULL);
    *out = t;
    return 0;
}

void td_tracer_free(td_tracer *t)
{
    if (t == NULL)
        return;
    if (t->file)
        fclose(t->file);
    pthread_mutex_destroy(&t->lock);
    td_free(t);
}

static json_t *attribute(const char *key, json_t *value)
{
    return json_pack("{s:s,s:{s:o}}", "key", key, "value",
                     json_is_integer(value) ? "intValue" : "stringValue", value);
}

static json_t *span_json(const td_span *s)
{
    char start[32], end[32];
    snprintf(start, sizeof start, "%lld000", (long long)s->start);
    snprintf(end, sizeof end, "%lld000", (long long)s->end);
    json_t *attributes =
        json_pack("[o,o,o,o,o,o]", attribute("messaging.system", json_string("tidings")),
                  attribute("messaging.consumer.group.name", json_string(s->subscription)),
                  attribute("messaging.message.id", json_string(s->event_id)),
                  attribute("tidings.event_type", json_string(s->event_type)),
                  attribute("tidings.stream", json_string(s->stream)),
                  attribute("tidings.attempt", json_integer(s->attempt)));
    json_t *span = json_pack(
        "{s:s,s:s,s:s,s:s,s:i,s:s,s:s,s:o,s:{s:i,s:s}}", "traceId", s->trace_id, "spanId",
        s->span_id, "parentSpanId", s->parent_span_id, "name", s->name, "kind", 5,
        "startTimeUnixNano", start, "endTimeUnixNano", end, "attributes", attributes, "status",
        "code", s->error ? 2 : 1, "message", s->status_message ? s->status_message : "");
    return json_pack("{s:[{s:{s:[{s:s,s:{s:s}}]},s:[{s:{s:s},s:[o]}]}]}", "resourceSpans",
                     "resource", "attributes", "key", "service.name", "value", "stringValue",
                     "tidings", "scopeSpans", "scope", "name", "libtidings", "spans", span);
}

static void write_line(const td_span *span, void *payload)
{
    td_tracer *t = payload;
    char *text = NULL;
    if (td_json__dump_steal(&text, NULL, span_json(span)) < 0)
        return;
    pthread_mutex_lock(&t->lock);
    fprintf(t->file, "%s\n", text);
    fflush(t->file);
    pthread_mutex_unlock(&t->lock);
    td_free(text);
}

int td_tracer_new_file(td_tracer **out, const char *path)
{
    FILE *file = fopen(path, "a");
    if (file == NULL)
        return td_error__set(TD_EIO, "cannot open trace file '%s'", path);
    int error = td_tracer_new(out, write_line, NULL);
    if (error < 0) {
        fclose(file);
        return error;
    }
    (*out)->file = file;
    (*out)->payload = *out;
    return 0;
}

static void new_span_id(char out[17])
{
    static const char hex[] = "0123456789abcdef";
    uint8_t r[8] = {0};
    if (getrandom(r, sizeof r, 0) != (ssize_t)sizeof r)
        memset(r, 0x5a, sizeof r);
    r[0] |= 1;
    for (int i = 0; i < 8; i++) {
        out[2 * i] = hex[r[i] >> 4];
        out[2 * i + 1] = hex[r[i] & 0xf];
    }
    out[16] = '\0';
}

int td_tracer_start(td_tracer *t, td_span *span, const td_event *event,
                    char traceparent[TD_TRACEPARENT_LEN + 1])
{
    (void)t;
    memset(span, 0, sizeof *span);
    if (td_traceparent_check(event->traceparent) == 0) {
        memcpy(span->trace_id, event->traceparent + 3, 32);
        memcpy(span->parent_span_id, event->traceparent + 36, 16);
    } else { /* an event from before tracing: start a trace of its own */
        char fresh[TD_TRACEPARENT_LEN + 1];
        int error = td_traceparent__new(fresh);
        if (error < 0)
            return error;
        memcpy(span->trace_id, fresh + 3, 32);
    }
    new_span_id(span->span_id);
    span->start = td_time_now();
    snprintf(traceparent, TD_TRACEPARENT_LEN + 1, "00-%s-%s-01", span->trace_id, span->span_id);
    return 0;
}

void td_tracer_end(td_tracer *t, td_span *span)
{
    span->end = td_time_now();
    t->exporter(span, t->payload);
}
