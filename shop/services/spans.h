/*
 * spans.h (shop): the last spans finished, kept in memory by `shop serve`
 * when tracing is on, so that the console can show the handler spans of
 * one order's story without a tracing backend. A fixed ring: the oldest
 * span makes room for the newest; nothing is written anywhere.
 */
#ifndef SHOP_SERVICES_SPANS_H
#define SHOP_SERVICES_SPANS_H

#include <stddef.h>

#include <tidings/tidings.h>

typedef struct shop_spans shop_spans;

/* capacity: spans kept (0: SHOP_SPANS_DEFAULT). Caller owns *out. */
#define SHOP_SPANS_DEFAULT 4096
int shop_spans_new(shop_spans **out, size_t capacity);
void shop_spans_free(shop_spans *spans);

/* A td_span_exporter (payload: the shop_spans): copies the span in. Safe
 * from any thread. */
void shop_spans_export(const td_span *span, void *payload);

/* Appends to out (a JSON array) every span kept of the trace, oldest first,
 * as {"trace_id","span_id","parent_span_id","name","kind","start","end",
 * "duration_ms","error","status_message","subscription","event_type",
 * "event_id","stream","position","attempt"}. */
int shop_spans_of_trace(shop_spans *spans, const char *trace_id, json_t *out);

#endif
