/*
 * trace.h: W3C trace context through events and handlers.
 *
 * Every event carries a traceparent (the store starts a new trace when the
 * appender gives none). With a tracer, a subscription runs each handler in a
 * span: a child of the span named by the event's traceparent, in the same
 * trace. Events the handler publishes carry that span as their parent, so a
 * trace reads request → event → handler → next event → next handler.
 * A store given the tracer (td_store_set_tracer) exports the span that
 * the traceparent it made for an event names: the append, a root span when
 * the event starts a trace (or a child of its cause's span), from the
 * append to its durable commit. So every span's parent is exported too.
 * Finished spans go to an exporter; td_tracer_new_file writes them as
 * OTLP/JSON lines (one ExportTraceServiceRequest object per line, as the
 * OTLP file exporter writes them), which collectors and jq read directly.
 * Times are Unix nanoseconds.
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

/* OpenTelemetry's span kinds, by their OTLP numbers. */
typedef enum td_span_kind {
    TD_SPAN_INTERNAL = 1,
    TD_SPAN_PRODUCER = 4, /* an append */
    TD_SPAN_CONSUMER = 5, /* a handler call */
} td_span_kind;

typedef struct td_span {
    char trace_id[33];       /* 32 lower-case hex digits */
    char span_id[17];        /* 16 */
    char parent_span_id[17]; /* 16, or "" for a root span */
    const char *name;        /* "handle OrderCreated", "append OrderCreated" */
    td_span_kind kind;
    int64_t start_ns, end_ns; /* Unix time in nanoseconds */
    bool error;
    const char *status_message; /* why it failed, or NULL */
    const char *subscription;   /* the handler's; NULL for an append */
    const char *event_type;
    const char *event_id;
    const char *stream;
    int64_t position;
    unsigned attempt; /* handler calls: 1 for the first */
} td_span;

/* Receives each finished span, borrowed for the call. */
typedef void (*td_span_exporter)(const td_span *span, void *payload);

typedef struct td_tracer td_tracer;

/* Caller owns *out; free with td_tracer_free after every user is gone. */
int td_tracer_new(td_tracer **out, td_span_exporter exporter, void *payload);
/* Appends spans to the file at path (created if missing). */
int td_tracer_new_file(td_tracer **out, const char *path);
void td_tracer_free(td_tracer *tracer);

/* Hands a finished span to the tracer's exporter (for exporters that
 * fan out to another tracer's, such as a file's). */
void td_tracer_export(td_tracer *tracer, const td_span *span);

/* The span as one OTLP/JSON Span object (ids in hex, times as strings of
 * nanoseconds, attributes), for exporters that batch spans themselves.
 * Caller frees *out with td_free. */
int td_span_otlp_json(char **out, const td_span *span);

/* The time now, in Unix nanoseconds. */
int64_t td_trace_now_ns(void);

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
