/*
 * metrics.h: a subscription's series in its metrics registry (internal;
 * metrics.c in this folder).
 *
 * Owns: the handles of its series (all NULL without a registry). They are
 * set at creation, on the control thread, and only read after that (the
 * registry locks its own series): by lanes and the writer thread (handled,
 * failed, retry) and by the registry's collect callback, which takes the
 * subscription's lock only to read the ring.
 */
#ifndef TD_BUS_METRICS_H
#define TD_BUS_METRICS_H

#include "tidings/event.h"
#include "tidings/metrics.h"
#include "tidings/subscription.h"

typedef struct td_sub_metrics {
    td_metric *duration, *failures, *retries, *dead, *lag_events, *lag_seconds;
} td_sub_metrics;

int td_sub_metrics__register(td_subscription *sub);
void td_sub_metrics__unregister(td_subscription *sub);
void td_sub_metrics__handled(td_subscription *sub, const td_event *ev);
void td_sub_metrics__failed(td_subscription *sub, const td_event *ev);
void td_sub_metrics__retry(td_subscription *sub);

#endif
