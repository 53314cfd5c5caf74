/*
 * aggregate.c: event-sourced aggregates with snapshots (see aggregate.h).
 *
 * The snapshot document is {"version": N, "state": STATE}; the events after
 * N are read through the store's upcasters and folded on top. Nothing here
 * keeps state between calls.
 */
#include "tidings/aggregate.h"

#include <stdio.h>
#include <string.h>

#include "core/alloc.h"
#include "core/error.h"
#include "core/internal.h"

#define SNAPSHOT_PREFIX "snap_"

/* The stream and the snapshot collection of category-id; checks both. */
static int names(const char *category, const char *id, char stream[TD_STREAM_MAX + 1],
                 char collection[TD_CATEGORY_MAX + 1])
{
    if (td_category_check(category) < 0)
        return td_error_last_code();
    if (id == NULL || id[0] == '\0' || strlen(id) > TD_AGGREGATE_ID_MAX)
        return td_error__set(TD_EINVAL, "an aggregate id is 1..%d characters", TD_AGGREGATE_ID_MAX);
    int n = snprintf(collection, TD_CATEGORY_MAX + 1, SNAPSHOT_PREFIX "%s", category);
    if (n < 0 || n > TD_CATEGORY_MAX)
        return td_error__set(TD_EINVAL,
                             "aggregate category '%s' is too long for its snapshots' collection "
                             "(at most %d characters)",
                             category, TD_CATEGORY_MAX - (int)strlen(SNAPSHOT_PREFIX));
    n = snprintf(stream, TD_STREAM_MAX + 1, "%s-%s", category, id);
    if (n < 0 || n > TD_STREAM_MAX || td_stream_check(stream) < 0)
        return td_error__set(TD_EINVAL, "'%s-%s' is not a stream name", category, id);
    return 0;
}

static void start(td_aggregate *agg, const char *category, const char *id)
{
    memset(agg, 0, sizeof *agg);
    agg->category = category;
    snprintf(agg->id, sizeof agg->id, "%s", id);
}

static int parse_snapshot(const td_aggregate *agg, const char *text, size_t len, json_t **state,
                          int64_t *version)
{
    json_error_t err;
    bool oom = false;
    json_t *doc = td_json__loadb(text, len, 0, &err, &oom);
    json_int_t v = 0;
    json_t *s = NULL;
    if (oom)
        return td_error__oom();
    if (doc == NULL || json_unpack(doc, "{s:I,s:o}", "version", &v, "state", &s) < 0 || v < 1) {
        json_decref(doc);
        return td_error__set(TD_ECORRUPT, "the snapshot of aggregate %s-%s is not one",
                             agg->category, agg->id);
    }
    *state = json_incref(s);
    *version = v;
    json_decref(doc);
    return 0;
}

typedef struct folding {
    td_aggregate *agg;
    td_aggregate_fold_fn fold;
} folding;

static int fold_one(const td_event *ev, void *payload)
{
    folding *f = payload;
    json_t *data;
    int error = td_event_data(&data, ev);
    if (error < 0)
        return error;
    f->agg->state = f->fold(f->agg->state, ev->type, data); /* it takes the old state */
    json_decref(data);
    if (f->agg->state == NULL)
        return td_error__set(TD_ECORRUPT, "event %lld (%s) of aggregate %s-%s cannot be applied",
                             (long long)ev->position, ev->type, f->agg->category, f->agg->id);
    f->agg->version = ev->version;
    return 0;
}

/* The snapshot of agg, into agg (nothing if there is none). */
static int take_snapshot(td_aggregate *agg, const char *text, size_t len, int got)
{
    if (got == TD_ENOTFOUND)
        return 0;
    if (got < 0)
        return got;
    return parse_snapshot(agg, text, len, &agg->state, &agg->version);
}

int td_aggregate_load(td_txn *txn, td_aggregate *agg, const char *category, const char *id,
                      td_aggregate_fold_fn fold)
{
    TD_REQUIRE(txn && agg && category && id && fold);
    char stream[TD_STREAM_MAX + 1], collection[TD_CATEGORY_MAX + 1], *text = NULL;
    size_t len = 0;
    memset(agg, 0, sizeof *agg);
    int error = names(category, id, stream, collection);
    if (error < 0)
        return error;
    start(agg, category, id);
    int got = td_txn_doc_get(txn, collection, id, &text, &len); /* before text is passed on */
    error = take_snapshot(agg, text, len, got);
    td_free(text);
    folding f = {agg, fold};
    if (error == 0)
        error = td_txn_read_stream(txn, stream, agg->version + 1, 0, fold_one, &f);
    if (error < 0)
        td_aggregate_dispose(agg);
    return error;
}

static int write_snapshot(td_txn *txn, const td_aggregate *agg, const char *collection)
{
    json_t *doc = json_pack("{s:I,s:O}", "version", (json_int_t)agg->version, "state", agg->state);
    int error = doc ? td_txn_doc_put_json(txn, collection, agg->id, doc) : td_error__oom();
    json_decref(doc);
    return error;
}

int td_aggregate_append(td_txn *txn, td_aggregate *agg, const td_aggregate_event *events,
                        size_t count, td_aggregate_fold_fn fold)
{
    TD_REQUIRE(txn && agg && agg->category && events && fold);
    char stream[TD_STREAM_MAX + 1], collection[TD_CATEGORY_MAX + 1];
    if (count == 0 || count > TD_AGGREGATE_APPEND_MAX)
        return td_error__set(TD_EINVAL, "an aggregate append takes 1..%d events",
                             TD_AGGREGATE_APPEND_MAX);
    int error = names(agg->category, agg->id, stream, collection);
    if (error < 0)
        return error;
    td_event evs[TD_AGGREGATE_APPEND_MAX];
    char *texts[TD_AGGREGATE_APPEND_MAX] = {0};
    for (size_t i = 0; error == 0 && i < count; i++) {
        td_event_init(&evs[i]);
        evs[i].type = events[i].type;
        evs[i].source = events[i].source;
        evs[i].kind = events[i].kind;
        evs[i].schema_version = events[i].schema_version ? events[i].schema_version : 1;
        if (events[i].data == NULL)
            error = td_error__set(TD_EINVAL, "event %zu of an aggregate append has no data", i);
        else if ((texts[i] = json_dumps(events[i].data, JSON_COMPACT)) == NULL)
            error = td_error__oom();
        evs[i].data = texts[i];
    }
    if (error == 0)
        error = td_txn_append(txn, stream, agg->version, evs, count);
    for (size_t i = 0; error == 0 && i < count; i++)
        if ((agg->state = fold(agg->state, events[i].type, events[i].data)) == NULL)
            error = td_error__set(TD_ECORRUPT, "event %s of aggregate %s-%s cannot be applied",
                                  events[i].type, agg->category, agg->id);
    if (error == 0) {
        agg->version += (int64_t)count;
        error = write_snapshot(txn, agg, collection);
    }
    for (size_t i = 0; i < count; i++)
        td_free(texts[i]);
    return error;
}

void td_aggregate_dispose(td_aggregate *agg)
{
    if (agg == NULL)
        return;
    json_decref(agg->state);
    agg->state = NULL;
}

int td_aggregate_read(td_store *store, const char *category, const char *id,
                      td_aggregate_fold_fn fold, json_t **state, int64_t *version)
{
    TD_REQUIRE(store && category && id && fold && state);
    char stream[TD_STREAM_MAX + 1], collection[TD_CATEGORY_MAX + 1], *text = NULL;
    size_t len = 0;
    td_aggregate agg;
    int error = names(category, id, stream, collection);
    if (error < 0)
        return error;
    start(&agg, category, id);
    int got = td_store_doc_get(store, collection, id, &text, &len); /* before text is passed on */
    error = take_snapshot(&agg, text, len, got);
    td_free(text);
    folding f = {&agg, fold};
    if (error == 0)
        error = td_store_read_stream(store, stream, agg.version + 1, 0, fold_one, &f);
    if (error == 0 && agg.state == NULL)
        error = td_error__set(TD_ENOTFOUND, "aggregate %s-%s has no event", category, id);
    if (error < 0) {
        td_aggregate_dispose(&agg);
        return error;
    }
    *state = agg.state;
    if (version)
        *version = agg.version;
    return 0;
}

int td_aggregate_read_at(td_store *store, const char *category, const char *id, int64_t version,
                         td_aggregate_fold_fn fold, json_t **state)
{
    TD_REQUIRE(store && category && id && fold && state);
    char stream[TD_STREAM_MAX + 1], collection[TD_CATEGORY_MAX + 1];
    td_aggregate agg;
    int error = names(category, id, stream, collection);
    if (error < 0)
        return error;
    if (version < 1)
        return td_error__set(TD_EINVAL, "a version is 1 or more");
    start(&agg, category, id);
    folding f = {&agg, fold};
    error = td_store_read_stream(store, stream, 1, (size_t)version, fold_one, &f);
    if (error == 0 && (agg.state == NULL || agg.version != version))
        error = td_error__set(TD_ENOTFOUND, "aggregate %s-%s has no version %lld", category, id,
                              (long long)version);
    if (error < 0) {
        td_aggregate_dispose(&agg);
        return error;
    }
    *state = agg.state;
    return 0;
}
