/*
 * metrics.h: counters, gauges and histograms with labels, rendered in the
 * Prometheus text exposition format (version 0.0.4).
 *
 * A registry holds metric families; a family has a name, help text, a type
 * and label names; its series are made on first use of a set of label
 * values. Updating a series takes the registry's lock briefly; rendering
 * first runs the registered collectors (which refresh gauges such as lag),
 * then writes every family in registration order.
 *
 * Built in, when wired up:
 *   domain_events_total{event_type,source}          td_metrics_watch_store
 *   event_processing_duration_seconds{subscription,event_type}   (histogram)
 *   event_handler_failures_total{subscription,event_type}
 *   event_retries_total{subscription}
 *   dead_letters{subscription}
 *   subscription_lag_events{subscription}
 *   subscription_lag_seconds{subscription}       subscription options .metrics
 *
 * Threads: a registry may be shared by all threads; every call is safe from
 * any thread. Register families and collectors before sharing it widely.
 */
#ifndef TIDINGS_METRICS_H
#define TIDINGS_METRICS_H

#include <stddef.h>
#include <stdint.h>

#include "store.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct td_metrics td_metrics;
typedef struct td_metric td_metric; /* a family; owned by its registry */

#define TD_METRIC_LABELS_MAX 8

/* Caller owns *out; free with td_metrics_free after every user is gone. */
int td_metrics_new(td_metrics **out);
void td_metrics_free(td_metrics *metrics);

/* Registers a family, or returns the existing one of that name if its type
 * and labels are the same (TD_EEXISTS otherwise). labels: comma-separated
 * label names ("event_type,source"), or NULL/"" for none. Names follow
 * Prometheus: [a-zA-Z_:][a-zA-Z0-9_:]*, labels [a-zA-Z_][a-zA-Z0-9_]*. */
int td_metrics_counter(td_metric **out, td_metrics *metrics, const char *name, const char *help,
                       const char *labels);
int td_metrics_gauge(td_metric **out, td_metrics *metrics, const char *name, const char *help,
                     const char *labels);
/* buckets: increasing upper bounds (NULL: latency buckets from 100 µs to 10 s). */
int td_metrics_histogram(td_metric **out, td_metrics *metrics, const char *name, const char *help,
                         const char *labels, const double *buckets, size_t bucket_count);

/* values: one per label, in the family's order (NULL when it has none). */
int td_metric_add(td_metric *family, const char *const *values, double amount);
int td_metric_set(td_metric *family, const char *const *values, double value);
int td_metric_observe(td_metric *family, const char *const *values, double value);
/* A counter's or gauge's value, or a histogram's count; 0 for a series not
 * made yet. */
double td_metric_value(td_metric *family, const char *const *values);

/* Collectors run before each render, e.g. to refresh gauges. */
typedef void (*td_metrics_collect_fn)(td_metrics *metrics, void *payload);
int td_metrics_on_collect(td_metrics *metrics, td_metrics_collect_fn fn, void *payload);
void td_metrics_remove_collector(td_metrics *metrics, td_metrics_collect_fn fn, void *payload);

/* Runs the collectors, as a render does first: gauges such as lag are then
 * fresh for td_metrics_read. */
void td_metrics_collect(td_metrics *metrics);

/* One series of a family, as td_metrics_read hands it over (borrowed for
 * the call). */
typedef struct td_metric_sample {
    const char *const *labels; /* its label values, in the family's order */
    size_t label_count;
    double value;            /* a counter's or gauge's value; a histogram's sum */
    uint64_t count;          /* a histogram's observations (0 otherwise) */
    const double *bounds;    /* a histogram's bucket upper bounds, increasing */
    const uint64_t *buckets; /* observations per bucket, not cumulative (those
                                above the last bound are count minus their sum) */
    size_t bound_count;
} td_metric_sample;
/* Return 0 to go on, > 0 to stop. fn runs under the registry's lock: it must
 * not call the registry. */
typedef int (*td_metric_sample_fn)(const td_metric_sample *sample, void *payload);
/* Every series of the family named name, in the order they were made (no
 * collectors run: see td_metrics_collect). TD_ENOTFOUND when no family has
 * that name. For programs that show metrics themselves (the shop's console)
 * rather than parse the exposition text. */
int td_metrics_read(td_metrics *metrics, const char *name, td_metric_sample_fn fn, void *payload);

/* The exposition text. Caller owns *out; free with td_free. */
int td_metrics_render(td_metrics *metrics, char **out, size_t *len);

/* Counts the events this process commits to store in
 * domain_events_total{event_type,source} (tallied at render time, off the
 * commit path). Call before the store's first unit of work. */
int td_metrics_watch_store(td_metrics *metrics, td_store *store);

#ifdef __cplusplus
}
#endif
#endif
