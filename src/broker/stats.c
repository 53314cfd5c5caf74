/*
 * stats.c: the counters of a relay or consumer, read from any thread
 * (td_relay_stats, td_consumer_stats, /health), and their metric families.
 *
 *   broker_published_total{relay}      messages sent, republished ones again
 *   broker_confirmed_total{relay}      confirmed by the broker
 *   broker_nacked_total{relay}         refused by the broker
 *   broker_relay_lag_events{relay}     the store's head minus the checkpoint
 *   broker_relay_lag_seconds{relay}    the oldest event not yet confirmed
 *   broker_consumed_total{queue}       messages appended to the store
 *   broker_duplicates_total{queue}     messages whose event was stored already
 *   broker_redelivered_total{queue}    messages the broker marked redelivered
 *   broker_rejected_total{queue}       messages parked as tidings.Rejected
 *   broker_connected{relay|queue}      1 while the connection is up
 *
 * The thread that owns the relay or consumer is the only writer; readers
 * take a copy under the lock.
 */
#include <stdio.h>
#include <string.h>

#include "broker/broker_int.h"

void td_broker__counters_init(td_broker_counters *c)
{
    memset(c, 0, sizeof *c);
    pthread_mutex_init(&c->lock, NULL);
}

void td_broker__counters_dispose(td_broker_counters *c)
{
    pthread_mutex_destroy(&c->lock);
}

void td_broker__set_error(td_broker_counters *c, const char *message)
{
    pthread_mutex_lock(&c->lock);
    snprintf(c->stats.last_error, sizeof c->stats.last_error, "%s", message);
    pthread_mutex_unlock(&c->lock);
}

void td_broker__set_connected(td_broker_counters *c, bool connected)
{
    pthread_mutex_lock(&c->lock);
    c->stats.connected = connected;
    if (connected)
        c->stats.connects++;
    pthread_mutex_unlock(&c->lock);
}

void td_broker__snapshot(td_broker_counters *c, td_broker_stats *out)
{
    pthread_mutex_lock(&c->lock);
    *out = c->stats;
    pthread_mutex_unlock(&c->lock);
}

void td_broker__count(td_metric *family, const char *name, double amount)
{
    const char *labels[1] = {name};
    if (family && amount != 0)
        td_metric_add(family, labels, amount);
}

/* Makes each counter's series for name exist at 0, so that a scraper sees
 * it (and a rate of 0) before the first message rather than no series. */
static int start_at_zero(td_metric *const *families, size_t count, const char *name)
{
    const char *labels[1] = {name};
    int error = 0;
    for (size_t i = 0; i < count && error == 0; i++)
        error = td_metric_add(families[i], labels, 0);
    return error;
}

int td_broker__metrics_relay(td_broker_metrics *m, td_metrics *r, const char *name)
{
    memset(m, 0, sizeof *m);
    if (r == NULL)
        return 0;
    int error = td_metrics_counter(&m->published, r, "broker_published_total",
                                   "Messages the relay sent to the broker.", "relay");
    if (error == 0)
        error = td_metrics_counter(&m->confirmed, r, "broker_confirmed_total",
                                   "Messages the broker confirmed to the relay.", "relay");
    if (error == 0)
        error = td_metrics_counter(&m->nacked, r, "broker_nacked_total",
                                   "Messages the broker refused (sent again).", "relay");
    if (error == 0)
        error = td_metrics_gauge(&m->lag_events, r, "broker_relay_lag_events",
                                 "Events committed but not yet confirmed by the broker.", "relay");
    if (error == 0)
        error = td_metrics_gauge(&m->lag_seconds, r, "broker_relay_lag_seconds",
                                 "Age of the oldest event not yet confirmed.", "relay");
    if (error == 0)
        error = td_metrics_gauge(&m->connected, r, "broker_relay_connected",
                                 "1 while the relay's connection is up.", "relay");
    td_metric *counters[] = {m->published, m->confirmed, m->nacked};
    return error < 0 ? error : start_at_zero(counters, 3, name);
}

int td_broker__metrics_consumer(td_broker_metrics *m, td_metrics *r, const char *name)
{
    memset(m, 0, sizeof *m);
    if (r == NULL)
        return 0;
    int error = td_metrics_counter(&m->consumed, r, "broker_consumed_total",
                                   "Messages appended to the store.", "queue");
    if (error == 0)
        error = td_metrics_counter(&m->duplicates, r, "broker_duplicates_total",
                                   "Messages whose event was stored already.", "queue");
    if (error == 0)
        error = td_metrics_counter(&m->redelivered, r, "broker_redelivered_total",
                                   "Messages the broker marked redelivered.", "queue");
    if (error == 0)
        error = td_metrics_counter(&m->rejected, r, "broker_rejected_total",
                                   "Messages that could not be taken, parked with why.", "queue");
    if (error == 0)
        error = td_metrics_gauge(&m->connected, r, "broker_consumer_connected",
                                 "1 while the consumer's connection is up.", "queue");
    td_metric *counters[] = {m->consumed, m->duplicates, m->redelivered, m->rejected};
    return error < 0 ? error : start_at_zero(counters, 4, name);
}
