/*
 * replay.c: replay requests (subscription.h): writing them, and carrying
 * them out on the subscription's reader thread.
 *
 * A request is a document tidings_replays/NAME|ID: {from, to, next, stream,
 * type, force_effects, who, at}. The reader takes this subscription's
 * requests one at a time, in id (so time) order. It queues a page of the
 * events from `next` on (as stored, upcast on the lane like any item), and
 * only when the lanes have finished that page does it record the new `next`
 * and queue the following one, so pages never overtake each other. When
 * `next` passes `to` the request is deleted. Replay items are not tracked by
 * the checkpoint ring: they are below the checkpoint already. A request for
 * a partitioned name is written once for each of its partitions, under one
 * id: each replays the events of its own partition, wherever it runs.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bus/replay.h"
#include "bus/scheduler.h"
#include "bus/sub_int.h"
#include "core/alloc.h"
#include "core/error.h"
#include "core/internal.h"
#include "core/lock.h"
#include "core/log_int.h"
#include "tidings/upcast.h"

#define REPLAY_PAGE 256

/* ---- writing requests ---------------------------------------------------------- */

/* One document written (text) or deleted (text NULL) in a unit of its own. */
typedef struct doc_op {
    const char *key;
    const char *text;
} doc_op;

static int doc_unit(td_txn *txn, void *payload)
{
    const doc_op *op = payload;
    return op->text ? td_txn_doc_put(txn, TD_COLL_REPLAYS, op->key, op->text, 0)
                    : td_txn_doc_delete(txn, TD_COLL_REPLAYS, op->key);
}

static int doc_write(td_store *store, const char *key, const char *text)
{
    doc_op op = {key, text};
    return td_transact(store, doc_unit, &op);
}

typedef struct find_sub {
    const char *name;
    bool found;
} find_sub;

static int match_name(const char *name, const td_subscription_status *st, void *payload)
{
    find_sub *f = payload;
    (void)st;
    if (strcmp(name, f->name) == 0)
        f->found = true;
    return 0;
}

static int add_one(td_store *store, const td_replay_request *r, int64_t to, const char *name,
                   const char *id);

int td_replay_request_add(td_store *store, const td_replay_request *r,
                          char id_out[TD_REPLAY_ID_LEN + 1])
{
    TD_REQUIRE(store && r);
    char id[TD_REPLAY_ID_LEN + 1];
    int64_t head = 0;
    find_sub f = {r->subscription, false};
    td_uuid uuid;
    int error = td_state__check_name(r->subscription);
    if (error == 0 && r->stream)
        error = td_stream_check(r->stream);
    if (error == 0 && r->type)
        error = td_type_check(r->type);
    if (error == 0)
        error = td_store_head(store, &head);
    if (error < 0)
        return error;
    int64_t to = r->to > 0 ? r->to : head;
    if (r->from < 1 || to < r->from)
        return td_error__set(TD_EINVAL,
                             "a replay runs from position >= 1 to one at or after it "
                             "(asked %lld..%lld)",
                             (long long)r->from, (long long)to);
    unsigned partitions = 0;
    if ((error = td_subscriptions_list(store, match_name, &f)) < 0 ||
        (!f.found && (error = td_partition_count(store, r->subscription, &partitions)) < 0))
        return error;
    if (!f.found && partitions == 0)
        return td_error__set(TD_ENOTFOUND, "no subscription %s has run on this store",
                             r->subscription);
    if ((error = td_uuid_v7(&uuid)) < 0)
        return error;
    td_uuid_format(id, &uuid);
    /* a partitioned name: a request for each partition, under one id */
    for (unsigned k = 0; k < (partitions ? partitions : 1); k++) {
        char name[TD_SUBSCRIPTION_NAME_MAX + 1];
        td_partition p = {partitions, k, TD_PARTITION_BY_STREAM};
        if ((error = td_partition_name(name, sizeof name, r->subscription, &p)) < 0 ||
            (error = add_one(store, r, to, name, id)) < 0)
            return error;
    }
    if (id_out)
        memcpy(id_out, id, sizeof id);
    return 0;
}

/* One request, for one subscription name. */
static int add_one(td_store *store, const td_replay_request *r, int64_t to, const char *name,
                   const char *id)
{
    char key[TD_STATE_KEY_MAX + 1];
    int error = td_state__key(key, name, id);
    if (error < 0)
        return error;
    json_t *doc =
        json_pack("{s:I,s:I,s:I,s:s*,s:s*,s:b,s:s,s:I}", "from", (json_int_t)r->from, "to",
                  (json_int_t)to, "next", (json_int_t)r->from, "stream", r->stream, "type", r->type,
                  "force_effects", r->force_effects, "who",
                  r->who && r->who[0] ? r->who : "unknown", "at", (json_int_t)td_time_now());
    char *text = NULL;
    if ((error = td_json__dump_steal(&text, NULL, doc)) == 0)
        error = doc_write(store, key, text);
    td_free(text);
    return error;
}

typedef struct list_ctx {
    td_replay_fn fn;
    void *payload;
} list_ctx;

static int list_one(const char *key, const char *json, size_t len, void *payload)
{
    list_ctx *c = payload;
    json_error_t err;
    json_int_t next = 0, to = 0;
    const char *bar = strrchr(key, '|');
    bool oom;
    json_t *doc = td_json__loadb(json, len, 0, &err, &oom);
    if (oom)
        return td_error__oom();
    int ok = doc && bar && json_unpack(doc, "{s:I,s:I}", "next", &next, "to", &to) == 0;
    char name[TD_SUBSCRIPTION_NAME_MAX + 1];
    snprintf(name, sizeof name, "%.*s", bar ? (int)(bar - key) : 0, key);
    int rc = ok ? c->fn(bar + 1, name, next, to, c->payload) : 0;
    json_decref(doc);
    return rc;
}

int td_replay_list(td_store *store, td_replay_fn fn, void *payload)
{
    TD_REQUIRE(store && fn);
    list_ctx c = {fn, payload};
    return td_store_doc_list(store, TD_COLL_REPLAYS, NULL, 0, list_one, &c);
}

/* ---- carrying them out (reader thread) ---------------------------------------------- */

static void forget(td_subscription *sub)
{
    td_free(sub->replay.stream);
    td_free(sub->replay.type);
    sub->replay.stream = sub->replay.type = NULL;
    sub->replay.active = false;
}

void td_replays__reset(td_subscription *sub)
{
    forget(sub); /* outstanding stays: items of an earlier run may still be queued */
}

void td_replays__item_done(td_subscription *sub)
{
    TD_ASSERT_HELD(&sub->lock);
    if (sub->replay.outstanding > 0)
        sub->replay.outstanding--; /* the reader queues the next page at 0 */
}

/* Takes the first pending request of this subscription. */
static int take_request(const char *key, const char *json, size_t len, void *payload)
{
    td_subscription *sub = payload;
    json_error_t err;
    json_int_t next = 0, to = 0;
    const char *stream = NULL, *type = NULL;
    int force = 0;
    bool oom;
    json_t *doc = td_json__loadb(json, len, 0, &err, &oom);
    if (oom) /* not a malformed request: it stays for the next round */
        return td_error__oom();
    int ok = doc && json_unpack(doc, "{s:I,s:I,s?s,s?s,s:b}", "next", &next, "to", &to, "stream",
                                &stream, "type", &type, "force_effects", &force) == 0;
    if (ok) {
        snprintf(sub->replay.key, sizeof sub->replay.key, "%s", key);
        sub->replay.next = next;
        sub->replay.to = to;
        sub->replay.page_end = 0;
        sub->replay.replayed = 0;
        sub->replay.force_effects = force;
        sub->replay.stream = stream ? td_strdup(stream) : NULL;
        sub->replay.type = type ? td_strdup(type) : NULL;
        sub->replay.active = true;
    }
    json_decref(doc);
    if (ok && ((stream && !sub->replay.stream) || (type && !sub->replay.type))) {
        forget(sub);
        return td_error__oom();
    }
    return ok; /* the first well-formed one ends the listing */
}

typedef struct page {
    td_subscription *sub;
    int64_t last; /* the last position read */
    size_t read, queued;
} page;

static int queue_one(const td_event *ev, void *payload)
{
    page *p = payload;
    td_subscription *sub = p->sub;
    if (ev->position > sub->replay.to)
        return 1;
    p->read++;
    p->last = ev->position;
    if (sub->opts.accept && !sub->opts.accept(ev, sub->payload))
        return 0;
    item *it = td_calloc(1, sizeof *it);
    int error = it ? td_event_dup(&it->event, ev) : td_error__oom();
    if (error < 0) {
        td_free(it);
        return error;
    }
    it->seq = NO_SEQ;
    it->replay = true;
    it->force_effects = sub->replay.force_effects;
    stream_q *s = NULL;
    pthread_mutex_lock(&sub->lock);
    if ((error = td_sched__stream(sub, ev->stream, &s)) == 0) {
        td_sched__push(sub, s, it, false); /* behind what is queued: in stream order */
        td_sched__offer(sub, s);
        sub->replay.outstanding++;
        p->queued++;
    }
    pthread_cond_broadcast(&sub->lanes_cond);
    pthread_mutex_unlock(&sub->lock);
    if (error < 0)
        td_sched__item_free(it);
    return error;
}

/* Queues the next page; sets page_end to the last position it covers. */
static int queue_page(td_subscription *sub)
{
    const char *match_type = sub->opts.match.type, *type = sub->replay.type;
    td_read_query q = TD_READ_QUERY_INIT;
    q.after_position = sub->replay.next - 1;
    q.stream = sub->replay.stream;
    q.category = sub->opts.match.category;
    q.type = type ? type : match_type;
    q.limit = REPLAY_PAGE;
    page p = {sub, 0, 0, 0};
    int error = 0;
    if (!(type && match_type && strcmp(type, match_type) != 0)) /* else nothing fits */
        error = td_store_read_stored(sub->store, &q, queue_one, &p);
    if (error < 0)
        return error;
    sub->replay.replayed += (int64_t)p.queued;
    sub->replay.page_end =
        p.read == REPLAY_PAGE && p.last < sub->replay.to ? p.last : sub->replay.to;
    return 0;
}

static int save_next(td_subscription *sub)
{
    char *json = NULL;
    size_t len = 0;
    json_error_t err;
    int error = td_store_doc_get(sub->store, TD_COLL_REPLAYS, sub->replay.key, &json, &len);
    if (error == TD_ENOTFOUND)
        return 0; /* withdrawn meanwhile */
    bool oom = false;
    json_t *doc = error == 0 ? td_json__loadb(json, len, 0, &err, &oom) : NULL;
    td_free(json);
    if (oom)
        error = td_error__oom();
    if (error == 0 &&
        (doc == NULL || json_object_set_new(doc, "next", json_integer(sub->replay.next)) < 0))
        error = td_error__set(TD_ECORRUPT, "replay request %s is not JSON", sub->replay.key);
    char *text = NULL;
    if (error == 0 && (error = td_json__dump_steal(&text, NULL, json_incref(doc))) == 0)
        error = doc_write(sub->store, sub->replay.key, text);
    td_free(text);
    json_decref(doc);
    return error;
}

static int finish(td_subscription *sub)
{
    int error = doc_write(sub->store, sub->replay.key, NULL);
    if (error == 0 || error == TD_ENOTFOUND)
        td_log__emit(TD_LOG_INFO, sub->name, NULL,
                     "replay %s done up to position %lld: %lld events",
                     strrchr(sub->replay.key, '|') + 1, (long long)sub->replay.to,
                     (long long)sub->replay.replayed);
    forget(sub);
    return error == TD_ENOTFOUND ? 0 : error;
}

int td_replays__process(td_subscription *sub)
{
    pthread_mutex_lock(&sub->lock);
    size_t outstanding = sub->replay.outstanding;
    pthread_mutex_unlock(&sub->lock);
    if (outstanding > 0)
        return 0; /* the page is still being handled */
    int error = 0;
    if (!sub->replay.active) {
        error = td_state__list_prefix(sub->store, TD_COLL_REPLAYS, sub->name, take_request, sub);
        if (error < 0 || !sub->replay.active)
            return error;
    } else if (sub->replay.page_end > 0) { /* a page is done: record it */
        sub->replay.next = sub->replay.page_end + 1;
        sub->replay.page_end = 0;
        error = sub->replay.next > sub->replay.to ? finish(sub) : save_next(sub);
        if (error < 0 || !sub->replay.active)
            return error;
    }
    return queue_page(sub);
}
