/*
 * timer.c: a saga's deadline timer.
 *
 * Every timer_interval_ms it lists the deadline index of its saga (keys sort
 * by due time) and, for each deadline that has passed, appends the
 * DeadlineExpired event and removes the index entry in one unit of work, so
 * a deadline fires exactly once. An entry whose instance no longer has that
 * deadline (changed, cleared, completed) is removed without firing. A
 * partition's timer fires only the deadlines of its correlation ids.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "bus/state.h"
#include "core/alloc.h"
#include "core/error.h"
#include "core/internal.h"
#include "core/log_int.h"
#include "saga/saga_int.h"

#define DUE_PER_ROUND 64

typedef struct due {
    const td_saga *saga;
    char keys[DUE_PER_ROUND][TD_SAGA_KEY_MAX + 1];
    size_t count;
    td_time now;
} due;

/* Keys look like SAGA|DEADLINE(20)|CORRELATION. */
static int collect_due(const char *key, const char *json, size_t len, void *payload)
{
    due *d = payload;
    const char *bar = strchr(key, '|');
    (void)json;
    (void)len;
    if (bar == NULL || d->count == DUE_PER_ROUND || strtoll(bar + 1, NULL, 10) > d->now)
        return 1; /* sorted by due time: the rest is later */
    const char *correlation = strchr(bar + 1, '|');
    if (correlation == NULL || !td_saga__owns(d->saga, correlation + 1))
        return 0; /* another partition's */
    snprintf(d->keys[d->count++], sizeof d->keys[0], "%s", key);
    return 0;
}

typedef struct fire_args {
    td_saga *saga;
    const char *key;
    td_time deadline;
    const char *correlation_id;
} fire_args;

static int fire_unit(td_txn *txn, void *payload)
{
    fire_args *a = payload;
    td_saga_loaded loaded;
    char stream[TD_STREAM_MAX + 1], *data = NULL;
    int error = td_saga__load(txn, a->saga, a->correlation_id, &loaded);
    json_t *instance = loaded.instance;
    bool live = error == 0 && instance && !json_is_true(json_object_get(instance, "completed")) &&
                json_integer_value(json_object_get(instance, "deadline")) == a->deadline;
    if (error == 0)
        td_saga__loaded_done(a->saga, a->correlation_id, &loaded, true);
    if (error == 0 && live) {
        snprintf(stream, sizeof stream, "deadline-%s.%s", a->saga->def->name, a->correlation_id);
        error = td_json__dump_steal(&data, NULL,
                                    json_pack("{s:s,s:s,s:I}", "saga", a->saga->def->name,
                                              "correlation_id", a->correlation_id, "deadline",
                                              (json_int_t)a->deadline));
    }
    if (error == 0 && live) {
        td_event ev;
        td_event_init(&ev);
        ev.type = TD_SAGA_DEADLINE_EXPIRED;
        ev.source = "saga";
        ev.correlation_id = a->correlation_id;
        ev.data = data;
        error = td_txn_append(txn, stream, TD_EXPECT_ANY, &ev, 1);
    }
    td_free(data);
    if (error == 0)
        error = td_txn_doc_delete(txn, TD_COLL_SAGA_DEADLINES, a->key);
    return error == TD_ENOTFOUND ? 0 : error;
}

static void fire_due(td_saga *saga)
{
    static _Thread_local due d;
    d.saga = saga;
    d.count = 0;
    d.now = td_time_now();
    if (td_state__list_prefix(saga->store, TD_COLL_SAGA_DEADLINES, saga->def->name, collect_due,
                              &d) < 0) {
        td_log__emit(TD_LOG_ERROR, saga->subscription_name, NULL, "reading deadlines: %s",
                     td_error_last());
        return;
    }
    for (size_t i = 0; i < d.count; i++) {
        char *bar = strchr(d.keys[i], '|'), *second = bar ? strchr(bar + 1, '|') : NULL;
        if (second == NULL)
            continue;
        fire_args a = {saga, d.keys[i], strtoll(bar + 1, NULL, 10), second + 1};
        int error = td_transact(saga->store, fire_unit, &a);
        if (error < 0) /* tried again at the next tick; a full disk, the store says once */
            td_log__emit(error == TD_ENOSPC || error == TD_EUNAVAILABLE ? TD_LOG_DEBUG
                                                                        : TD_LOG_ERROR,
                         saga->subscription_name, NULL, "firing a deadline: %s", td_error_last());
    }
}

void *td_saga__timer_main(void *arg)
{
    td_saga *saga = arg;
    td_thread__name("td-saga-timer", NULL);
    pthread_mutex_lock(&saga->lock);
    while (!saga->stopping) {
        struct timespec ts;
        clock_gettime(CLOCK_MONOTONIC, &ts);
        ts.tv_nsec += (long)saga->opts.timer_interval_ms % 1000 * 1000000L;
        ts.tv_sec += saga->opts.timer_interval_ms / 1000 + ts.tv_nsec / 1000000000L;
        ts.tv_nsec %= 1000000000L;
        pthread_cond_timedwait(&saga->wake, &saga->lock, &ts);
        if (saga->stopping)
            break;
        pthread_mutex_unlock(&saga->lock);
        fire_due(saga);
        pthread_mutex_lock(&saga->lock);
    }
    pthread_mutex_unlock(&saga->lock);
    return NULL;
}
