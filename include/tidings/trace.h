/*
 * trace.h: W3C trace context through events and handlers.
 *
 * Every event carries a traceparent (the store starts a new trace when the
 * appender gives none). With a tracer, a subscription runs each handler in a
 * span: a child of the span named by the event's traceparent, in the same
 * trace. Events the handler publishes carry that span as their parent, so a
 * trace reads request → event → handler → next event → next handler.
 * Finished spans go to an exporter; td_tracer_new_file writes them as
 * OTLP/JSON-shaped lines (one ResourceSpans object per line), which
 * collectors and jq read directly.
 *
 * Threads: a tracer may be shared; exporters are called from lane threads
 * and must be safe to call concurrently (the file exporter is).
 */
#ifndef TIDINGS_TRACE_H
#define TIDINGS_TRACE_H

#include "event.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct td_span {
    char trace_id[33];       /* 32 lower-case hex digits */
    char span_id[17];        /* 16 */
    char parent_span_id[17]; /* 16, or "" for a root span */
    const char *name;        /* "handle OrderCreated" */
    td_time start, end;
    bool error;
    const char *status_message; /* why it failed, or NULL */
    const char *subscription;
    const char *event_type;
    const char *event_id;
    const char *stream;
    int64_t position;
    unsigned attempt;
} td_span;

/* Receives each finished span, borrowed for the call. */
typedef void (*td_span_exporter)(const td_span *span, void *payload);

typedef struct td_tracer td_tracer;

/* Caller owns *out; free with td_tracer_free after every user is gone. */
int td_tracer_new(td_tracer **out, td_span_exporter exporter, void *payload);
/* Appends spans to the file at path (created if missing). */
int td_tracer_new_file(td_tracer **out, const char *path);
void td_tracer_free(td_tracer *tracer);

/* Starts a span for handling event: fills ids from its traceparent and
 * start time. The traceparent naming the new span is written to
 * `traceparent`, for what the handler publishes. */
int td_tracer_start(td_tracer *tracer, td_span *span, const td_event *event,
                    char traceparent[TD_TRACEPARENT_LEN + 1]);
/* Ends the span and hands it to the exporter. */
void td_tracer_end(td_tracer *tracer, td_span *span);

#ifdef __cplusplus
}
#endif
#endif
