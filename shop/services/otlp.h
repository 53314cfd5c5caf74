/*
 * otlp.h (shop): sends spans to an OpenTelemetry collector over OTLP/HTTP
 * with JSON bodies (POST <endpoint>/v1/traces, an ExportTraceServiceRequest),
 * through libcurl. It lives in the shop, not in libtidings, so that the
 * library needs no HTTP client: the library hands finished spans to an
 * exporter (trace.h), and this one is such an exporter.
 *
 * Spans are queued, bounded, by whichever thread finishes them, and sent in
 * batches by a thread of the exporter's own, so no request, handler or
 * commit ever waits for the collector. When the queue is full (a slow or
 * absent collector), a span is dropped and counted, never waited for; a
 * batch the collector refuses or does not answer in time is dropped and
 * counted too. Counted in otlp_spans_exported_total and
 * otlp_spans_dropped_total when given metrics.
 */
#ifndef SHOP_SERVICES_OTLP_H
#define SHOP_SERVICES_OTLP_H

#include <stddef.h>
#include <stdint.h>

#include <tidings/tidings.h>

typedef struct shop_otlp shop_otlp;

typedef struct shop_otlp_options {
    const char *endpoint;     /* http://host:4318 (…/v1/traces is added unless given) */
    const char *service_name; /* the resource's service.name; NULL: "shop" */
    size_t queue;             /* spans kept waiting to be sent; 0: 2048 */
    size_t batch;             /* most spans in one request; 0: 512 */
    int interval_ms;     /* a batch that is not full goes this long after its first span; 0: 1000 */
    int timeout_ms;      /* a request not answered by then fails; 0: 5000 */
    td_metrics *metrics; /* borrowed; may be NULL */
} shop_otlp_options;

/* Starts the sending thread. Caller owns *out; stop with shop_otlp_stop. */
int shop_otlp_start(shop_otlp **out, const shop_otlp_options *opts);

/* A td_span_exporter (payload: the shop_otlp): queues the span, or drops
 * it when the queue is full. Safe from any thread; never blocks on I/O. */
void shop_otlp_export(const td_span *span, void *payload);

/* Spans dropped so far (queue full, or a request that failed). */
uint64_t shop_otlp_dropped(shop_otlp *otlp);

/* Sends what is queued (one last request of at most timeout_ms), stops the
 * thread and frees; what could not be sent is counted as dropped. */
void shop_otlp_stop(shop_otlp *otlp);

#endif
