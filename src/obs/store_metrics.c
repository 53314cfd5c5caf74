/*
 * store_metrics.c: domain_events_total{event_type,source} for the events
 * this process commits, and the writer thread's work (store_commits_total,
 * store_units_total{result}, store_writer_busy_seconds_total,
 * store_commit_seconds_total: busy over elapsed time is how loaded the one
 * writer is; units over commits, how well group commit batches; with
 * pipelined commits also store_syncs_total and store_sync_seconds_total,
 * the sync thread's share).
 *
 * The commit listener only records position ranges (merged when they
 * touch), so the commit path pays a lock and a comparison. At render time a
 * collector reads the recorded events back and counts them by type and
 * source. Free the registry before the store: that removes the listener.
 */
#include <pthread.h>

#include "core/alloc.h"
#include "core/error.h"
#include "obs/obs_int.h"

typedef struct range {
    int64_t first, last;
} range;

typedef struct watch {
    td_store *store;
    td_metric *events;
    td_metric *commits, *units, *busy, *commit_time, *syncs, *sync_time;
    td_writer_stats told; /* what the counters hold so far */
    pthread_mutex_t lock;
    range *ranges;
    size_t count, cap;
} watch;

static void on_commit(td_store *store, int64_t first, int64_t last, void *payload)
{
    watch *w = payload;
    (void)store;
    pthread_mutex_lock(&w->lock);
    if (w->count > 0 && w->ranges[w->count - 1].last + 1 == first) {
        w->ranges[w->count - 1].last = last;
    } else {
        if (w->count == w->cap) {
            size_t cap = w->cap ? w->cap * 2 : 64;
            range *grown = td_realloc(w->ranges, cap * sizeof *grown);
            if (grown) {
                w->ranges = grown;
                w->cap = cap;
            }
        }
        if (w->count < w->cap) /* out of memory: those events go uncounted */
            w->ranges[w->count++] = (range){first, last};
    }
    pthread_mutex_unlock(&w->lock);
}

static int count_event(const td_event *ev, void *payload)
{
    const char *values[2] = {ev->type, ev->source};
    return td_metric_add(payload, values, 1);
}

/* Adds what the writer did since the last collection. */
static void collect_writer(watch *w)
{
    td_writer_stats now;
    static const char *const ok[] = {"ok"}, *const failed[] = {"failed"};
    if (td_store_writer_stats(w->store, &now) < 0)
        return;
    td_metric_add(w->commits, NULL, (double)(now.commits - w->told.commits));
    td_metric_add(
        w->units, ok,
        (double)((now.units - now.units_failed) - (w->told.units - w->told.units_failed)));
    td_metric_add(w->units, failed, (double)(now.units_failed - w->told.units_failed));
    td_metric_add(w->busy, NULL, now.busy_seconds - w->told.busy_seconds);
    td_metric_add(w->commit_time, NULL, now.commit_seconds - w->told.commit_seconds);
    td_metric_add(w->syncs, NULL, (double)(now.syncs - w->told.syncs));
    td_metric_add(w->sync_time, NULL, now.sync_seconds - w->told.sync_seconds);
    w->told = now;
}

static void collect(td_metrics *m, void *payload)
{
    watch *w = payload;
    (void)m;
    collect_writer(w);
    pthread_mutex_lock(&w->lock);
    range *ranges = w->ranges;
    size_t count = w->count;
    w->ranges = NULL;
    w->count = w->cap = 0;
    pthread_mutex_unlock(&w->lock);
    for (size_t i = 0; i < count; i++) {
        td_read_query q = TD_READ_QUERY_INIT;
        q.after_position = ranges[i].first - 1;
        q.limit = (size_t)(ranges[i].last - ranges[i].first + 1);
        td_store_read(w->store, &q, count_event, w->events);
    }
    td_free(ranges);
}

static void release(void *payload)
{
    watch *w = payload;
    td_store_remove_commit_listener(w->store, on_commit, w);
    pthread_mutex_destroy(&w->lock);
    td_free(w->ranges);
    td_free(w);
}

int td_metrics_watch_store(td_metrics *m, td_store *store)
{
    TD_REQUIRE(m && store);
    watch *w = td_calloc(1, sizeof *w);
    if (w == NULL)
        return td_error__oom();
    w->store = store;
    pthread_mutex_init(&w->lock, NULL);
    int error = td_metrics_counter(&w->events, m, "domain_events_total",
                                   "Events committed by this process, by type and source.",
                                   "event_type,source");
    if (error == 0)
        error =
            td_metrics_counter(&w->commits, m, "store_commits_total",
                               "Transactions the store's writer committed (one per batch).", NULL);
    if (error == 0)
        error = td_metrics_counter(&w->units, m, "store_units_total",
                                   "Units of work the store's writer ran, by result.", "result");
    if (error == 0)
        error = td_metrics_counter(&w->busy, m, "store_writer_busy_seconds_total",
                                   "Time the store's writer spent running batches.", NULL);
    if (error == 0)
        error = td_metrics_counter(
            &w->commit_time, m, "store_commit_seconds_total",
            "Time the store's writer spent committing (waiting for the disk).", NULL);
    if (error == 0)
        error = td_metrics_counter(&w->syncs, m, "store_syncs_total",
                                   "Pipelined commits: syncs of the log by the sync thread.", NULL);
    if (error == 0)
        error = td_metrics_counter(&w->sync_time, m, "store_sync_seconds_total",
                                   "Pipelined commits: time the sync thread spent in syncs.", NULL);
    if (error == 0)
        error = td_store_on_commit(store, on_commit, w);
    if (error == 0 && (error = td_metrics__add_collector(m, collect, w, release)) < 0)
        td_store_remove_commit_listener(store, on_commit, w);
    if (error < 0) {
        pthread_mutex_destroy(&w->lock);
        td_free(w);
    }
    return error;
}
