/*
 * trace.c: spans and their exporters.
 *
 * Span ids come from getrandom, never all zero. The file exporter writes one
 * OTLP/JSON ExportTraceServiceRequest per line under a mutex, so lines from
 * different lanes never interleave; times are Unix nanoseconds as strings,
 * as OTLP/JSON asks for 64-bit integers.
 */
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>

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

int64_t td_trace_now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

int td_tracer_new(td_tracer **out, td_span_exporter exporter, void *payload)
{
    TD_REQUIRE(out && exporter);
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
    if (json_is_integer(value)) { /* OTLP/JSON: 64-bit integers as strings */
        char text[24];
        snprintf(text, sizeof text, "%lld", (long long)json_integer_value(value));
        json_decref(value);
        return json_pack("{s:s,s:{s:s}}", "key", key, "value", "intValue", text);
    }
    return json_pack("{s:s,s:{s:o}}", "key", key, "value", "stringValue", value);
}

static json_t *span_json(const td_span *s)
{
    char start[24], end[24];
    snprintf(start, sizeof start, "%lld", (long long)s->start_ns);
    snprintf(end, sizeof end, "%lld", (long long)s->end_ns);
    bool handler = s->subscription != NULL;
    json_t *attributes =
        json_pack("[o,o,o,o,o,o]", attribute("messaging.system", json_string("tidings")),
                  attribute("messaging.operation.type", json_string(handler ? "process" : "send")),
                  attribute("messaging.destination.name", json_string(s->stream ? s->stream : "")),
                  attribute("messaging.message.id", json_string(s->event_id ? s->event_id : "")),
                  attribute("tidings.event_type", json_string(s->event_type ? s->event_type : "")),
                  attribute("tidings.position", json_integer(s->position)));
    if (attributes && handler) {
        json_array_append_new(
            attributes, attribute("messaging.consumer.group.name", json_string(s->subscription)));
        json_array_append_new(attributes, attribute("tidings.attempt", json_integer(s->attempt)));
    }
    return json_pack("{s:s,s:s,s:s,s:s,s:i,s:s,s:s,s:o,s:{s:i,s:s}}", "traceId", s->trace_id,
                     "spanId", s->span_id, "parentSpanId", s->parent_span_id, "name", s->name,
                     "kind", (int)s->kind, "startTimeUnixNano", start, "endTimeUnixNano", end,
                     "attributes", attributes, "status", "code", s->error ? 2 : 1, "message",
                     s->status_message ? s->status_message : "");
}

int td_span_otlp_json(char **out, const td_span *span)
{
    TD_REQUIRE(out && span);
    *out = NULL;
    return td_json__dump_steal(out, NULL, span_json(span));
}

static void write_line(const td_span *span, void *payload)
{
    td_tracer *t = payload;
    char *text = NULL;
    json_t *line =
        json_pack("{s:[{s:{s:[{s:s,s:{s:s}}]},s:[{s:{s:s},s:[o]}]}]}", "resourceSpans", "resource",
                  "attributes", "key", "service.name", "value", "stringValue", "tidings",
                  "scopeSpans", "scope", "name", "libtidings", "spans", span_json(span));
    if (td_json__dump_steal(&text, NULL, line) < 0)
        return;
    pthread_mutex_lock(&t->lock);
    fprintf(t->file, "%s\n", text);
    fflush(t->file);
    pthread_mutex_unlock(&t->lock);
    td_free(text);
}

int td_tracer_new_file(td_tracer **out, const char *path)
{
    TD_REQUIRE(out && path);
    FILE *file = fopen(path, "a");
    if (file == NULL)
        return td_error__set(TD_EIO, "cannot open trace file '%s': %s", path, strerror(errno));
    int error = td_tracer_new(out, write_line, NULL);
    if (error < 0) {
        fclose(file);
        return error;
    }
    (*out)->file = file;
    (*out)->payload = *out;
    return 0;
}

void td_tracer_export(td_tracer *t, const td_span *span)
{
    t->exporter(span, t->payload);
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
    span->kind = TD_SPAN_CONSUMER;
    span->start_ns = td_trace_now_ns();
    snprintf(traceparent, TD_TRACEPARENT_LEN + 1, "00-%s-%s-01", span->trace_id, span->span_id);
    return 0;
}

void td_tracer_end(td_tracer *t, td_span *span)
{
    span->end_ns = td_trace_now_ns();
    t->exporter(span, t->payload);
}
