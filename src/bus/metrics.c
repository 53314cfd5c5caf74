/*
 * metrics.c (bus): a subscription's series in its metrics registry.
 *
 *   event_processing_duration_seconds{subscription,event_type}  commit → handled
 *   event_handler_failures_total{subscription,event_type}       failed attempts
 *   event_retries_total{subscription}                            attempts after a failure
 *   dead_letters{subscription}                                   parked entries  ┐ refreshed
 *   subscription_lag_events{subscription}                        head - done     │ at render
 *   subscription_lag_seconds{subscription}                       oldest not done ┘ time
 *
 * "Commit" is approximated by the event's occurred_at, which the store sets
 * just before the commit that makes it durable. A subscription that does
 * not run in this process (a partition another instance runs) reports
 * its lag from its durable checkpoint, and 0 s: the one that runs it
 * knows the age.
 */
#include <string.h>

#include "bus/metrics.h"
#include "bus/ring.h"
#include "bus/sub_int.h"
#include "core/error.h"

static const double latency_buckets[] = {0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025,
                                         0.005,   0.01,   0.025,   0.05,   0.1,   0.25,
                                         0.5,     1,      2.5,     5,      10,    30};

/* The age in seconds of the oldest event read and not yet done, into *age;
 * false when it cannot be told here (behind, but nothing read yet). */
static bool oldest_pending_age(td_subscription *sub, int64_t head, int64_t checkpoint, double *age)
{
    td_time oldest = td_ring__oldest_unfinished(sub, NULL);
    if (oldest == 0 && head > checkpoint)
        return false;
    *age = oldest ? (double)(td_time_now() - oldest) / 1e6 : 0;
    return true;
}

static void collect(td_metrics *m, void *payload)
{
    td_subscription *sub = payload;
    const char *labels[1] = {sub->name};
    int64_t head = 0;
    int64_t dead = 0;
    (void)m;
    if (td_store_head(sub->store, &head) < 0)
        return;
    pthread_mutex_lock(&sub->lock);
    int64_t checkpoint = td_ring__checkpoint(sub);
    pthread_mutex_unlock(&sub->lock);
    double age = 0;
    bool known = oldest_pending_age(sub, head, checkpoint, &age);
    if (!td_reader__running(sub)) {
        /* not running here (another instance runs this partition, say): its
         * durable checkpoint, not this process's memory of a past run */
        td_checkpoint cp;
        bool found = false;
        if (td_state__load_checkpoint(sub->store, sub->name, &cp, &found) < 0)
            return;
        checkpoint = found ? cp.position : 0;
        known = true;
        age = 0; /* the process that runs it knows */
    }
    td_metric_set(sub->metrics.lag_events, labels,
                  (double)(head > checkpoint ? head - checkpoint : 0));
    if (known)
        td_metric_set(sub->metrics.lag_seconds, labels, age);
    if (td_state__count_dead_letters(sub->store, sub->name, &dead) == 0)
        td_metric_set(sub->metrics.dead, labels, (double)dead);
}

int td_sub_metrics__register(td_subscription *sub)
{
    td_metrics *m = sub->opts.metrics;
    if (m == NULL)
        return 0;
    int error = td_metrics_histogram(
        &sub->metrics.duration, m, "event_processing_duration_seconds",
        "Time from an event's commit to its handler finishing, by subscription and type.",
        "subscription,event_type", latency_buckets,
        sizeof latency_buckets / sizeof latency_buckets[0]);
    if (error == 0)
        error = td_metrics_counter(&sub->metrics.failures, m, "event_handler_failures_total",
                                   "Failed handler attempts.", "subscription,event_type");
    if (error == 0)
        error = td_metrics_counter(&sub->metrics.retries, m, "event_retries_total",
                                   "Handler attempts after a failure.", "subscription");
    if (error == 0)
        error = td_metrics_gauge(&sub->metrics.dead, m, "dead_letters",
                                 "Entries in the dead-letter queue.", "subscription");
    if (error == 0)
        error = td_metrics_gauge(&sub->metrics.lag_events, m, "subscription_lag_events",
                                 "Events committed but not yet done.", "subscription");
    if (error == 0)
        error = td_metrics_gauge(&sub->metrics.lag_seconds, m, "subscription_lag_seconds",
                                 "Age of the oldest event not yet done.", "subscription");
    if (error == 0)
        error = td_metrics_on_collect(m, collect, sub);
    return error;
}

void td_sub_metrics__unregister(td_subscription *sub)
{
    if (sub->opts.metrics)
        td_metrics_remove_collector(sub->opts.metrics, collect, sub);
}

void td_sub_metrics__handled(td_subscription *sub, const td_event *ev)
{
    const char *labels[2] = {sub->name, ev->type};
    if (sub->metrics.duration)
        td_metric_observe(sub->metrics.duration, labels,
                          (double)(td_time_now() - ev->occurred_at) / 1e6);
}

void td_sub_metrics__failed(td_subscription *sub, const td_event *ev)
{
    const char *labels[2] = {sub->name, ev->type};
    if (sub->metrics.failures)
        td_metric_add(sub->metrics.failures, labels, 1);
}

void td_sub_metrics__retry(td_subscription *sub)
{
    const char *labels[1] = {sub->name};
    if (sub->metrics.retries)
        td_metric_add(sub->metrics.retries, labels, 1);
}
