/*
 * split.c: a subscription that ran whole becomes N partitions (partition.h).
 *
 * At the first partitioned start of a name whose whole has a checkpoint,
 * in the unit that records the partitioning (partition.c):
 *
 *   the whole runs somewhere (its lease has not expired) ──▶ TD_EBUSY
 *   it has retries waiting, dead letters, or replays    ──▶ TD_EINVAL
 *     (they are the whole's: retry or drop them, or let them finish)
 *   otherwise: each partition starts from the whole's checkpoint (the
 *   document copied as it is, crash-recovery state included), the whole's
 *   progress mark of each stream with events past it is copied to the
 *   partition that owns each such event, and the whole's checkpoint is
 *   deleted, so it no longer shows and cannot run again (the record
 *   refuses it).
 *
 * So nothing it handled is handed over again past its marks, and nothing
 * past its checkpoint is skipped. The unit grows with what lies past the
 * checkpoint: a whole that lags far makes a large one.
 */
#include <stdio.h>
#include <string.h>

#include "bus/partition.h"
#include "bus/state.h"
#include "bus/sub_int.h"
#include "core/alloc.h"
#include "core/error.h"

typedef struct prefix_scan {
    const char *prefix;
    size_t len;
    int found;
} prefix_scan;

static int count_prefix(const char *key, const char *json, size_t len, void *payload)
{
    prefix_scan *s = payload;
    (void)json;
    (void)len;
    if (strncmp(key, s->prefix, s->len) != 0)
        return 1; /* past the prefix: keys are in order */
    s->found++;
    return 0;
}

/* How many documents of collection have keys "NAME|...". */
static int count_of(td_txn *txn, const char *collection, const char *name, int *found)
{
    char prefix[TD_STATE_KEY_MAX + 1];
    int error = td_state__key(prefix, name, "");
    prefix_scan s = {prefix, strlen(prefix), 0};
    /* from just after "NAME|": its own keys come first (a partition's,
     * "NAME.p...|", sort before it) */
    if (error == 0)
        error = td_txn_doc_list(txn, collection, prefix, 0, count_prefix, &s);
    *found = s.found;
    return error < 0 ? error : 0;
}

typedef struct dead_scan {
    const char *name;
    int found;
} dead_scan;

static int count_dead(const char *key, const char *json, size_t len, void *payload)
{
    dead_scan *s = payload;
    json_t *doc = json_loadb(json, len, 0, NULL);
    const char *of = json_string_value(json_object_get(doc, "subscription"));
    (void)key;
    s->found += of && strcmp(of, s->name) == 0;
    json_decref(doc);
    return 0;
}

/* The events past the whole's checkpoint: each one's stream and partition
 * (a read callback may not touch documents: they are copied after). */
typedef struct past_event {
    char stream[TD_STREAM_MAX + 1];
    unsigned index;
} past_event;

typedef struct past_events {
    const td_subscription *sub;
    past_event *items;
    size_t count, cap;
} past_events;

static int note_event(const td_event *ev, void *payload)
{
    past_events *p = payload;
    if (p->count == p->cap) {
        size_t cap = p->cap ? p->cap * 2 : 64;
        past_event *items = td_realloc(p->items, cap * sizeof *items);
        if (items == NULL)
            return td_error__oom();
        p->items = items;
        p->cap = cap;
    }
    snprintf(p->items[p->count].stream, sizeof p->items[0].stream, "%s", ev->stream);
    p->items[p->count++].index = td_partition__index(p->sub, ev);
    return 0;
}

/* Each stream's mark, if the whole has one, goes to the partitions its
 * events past the checkpoint belong to. */
static int copy_marks(td_txn *txn, const td_subscription *sub, const past_events *past)
{
    int error = 0;
    for (size_t i = 0; error == 0 && i < past->count; i++) {
        char name[TD_SUBSCRIPTION_NAME_MAX + 1];
        int64_t version = 0;
        td_partition p = sub->opts.partition;
        p.index = past->items[i].index;
        error = td_state__progress_get(txn, sub->base_name, past->items[i].stream, &version);
        if (error == TD_ENOTFOUND) {
            error = 0;
            continue;
        }
        if (error == 0)
            error = td_partition_name(name, sizeof name, sub->base_name, &p);
        if (error == 0)
            error = td_state__progress_put(txn, name, past->items[i].stream, version);
    }
    return error;
}

int td_partition__split(td_txn *txn, const td_subscription *sub, const char *checkpoint)
{
    const char *name = sub->base_name;
    char *lease = NULL;
    int error = td_txn_doc_get(txn, TD_COLL_LEASES, name, &lease, NULL);
    if (error == 0) {
        json_t *doc = json_loads(lease, 0, NULL);
        bool live = json_integer_value(json_object_get(doc, "expires_at")) > td_time_now();
        json_decref(doc);
        td_free(lease);
        if (live)
            return td_error__set(TD_EBUSY,
                                 "subscription '%s' runs whole in another process: stop it "
                                 "before its partitions start",
                                 name);
    } else if (error != TD_ENOTFOUND) {
        return error;
    }
    int retries = 0, replays = 0;
    dead_scan dead = {name, 0};
    if ((error = count_of(txn, TD_COLL_RETRIES, name, &retries)) < 0 ||
        (error = count_of(txn, TD_COLL_REPLAYS, name, &replays)) < 0 ||
        (error = td_txn_doc_list(txn, TD_COLL_DEAD_LETTERS, NULL, 0, count_dead, &dead)) < 0)
        return error;
    if (retries || replays || dead.found)
        return td_error__set(TD_EINVAL,
                             "subscription '%s' ran whole and has %d events waiting for a "
                             "retry, %d dead letters and %d replays of its own: let them "
                             "finish, retry or drop them before it runs in partitions",
                             name, retries, dead.found, replays);

    json_t *doc = json_loads(checkpoint, 0, NULL);
    td_read_query q = TD_READ_QUERY_INIT;
    q.after_position = json_integer_value(json_object_get(doc, "position"));
    q.type = sub->opts.match.type;
    q.category = sub->opts.match.category;
    json_decref(doc);
    past_events past = {sub, NULL, 0, 0};
    if ((error = td_txn_read(txn, &q, note_event, &past)) == 0)
        error = copy_marks(txn, sub, &past);
    td_free(past.items);
    if (error < 0)
        return error;
    for (unsigned k = 0; k < sub->opts.partition.count; k++) {
        char part[TD_SUBSCRIPTION_NAME_MAX + 1];
        td_partition p = sub->opts.partition;
        p.index = k;
        if ((error = td_partition_name(part, sizeof part, name, &p)) < 0 ||
            (error = td_txn_doc_put(txn, TD_COLL_CHECKPOINTS, part, checkpoint, 0)) < 0)
            return error;
    }
    return td_txn_doc_delete(txn, TD_COLL_CHECKPOINTS, name);
}
