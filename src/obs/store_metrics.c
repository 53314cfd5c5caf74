/*
 * store_metrics.c: domain_events_total{event_type,source} for the events
 * this process commits.
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

static void collect(td_metrics *m, void *payload)
{
    watch *w = payload;
    (void)m;
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
    watch *w = td_calloc(1, sizeof *w);
    if (w == NULL)
        return td_error__oom();
    w->store = store;
    pthread_mutex_init(&w->lock, NULL);
    int error = td_metrics_counter(&w->events, m, "domain_events_total",
                                   "Events committed by this process, by type and source.",
                                   "event_type,source");
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
