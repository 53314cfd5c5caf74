/*
 * requests.c: the subscription's side of the dead-letter queue.
 *
 * At start it restores what the queue means for delivery: in sequenced mode
 * a stream with a dead entry is blocked; entries being retried when the
 * process stopped are queued again. While running, the reader carries out
 * operator requests (dlq.c writes them): a retry queues the dead entry and
 * every entry parked behind it, in position order, at the front of their
 * stream; a drop discards the dead entry and queues those behind it. The
 * reader holds the stream (busy) meanwhile, so no lane parks an event behind
 * an entry that is being retried.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bus/scheduler.h"
#include "bus/requests.h"
#include "bus/sub_int.h"
#include "core/alloc.h"
#include "core/error.h"
#include "core/internal.h"

typedef struct entry_list {
    td_dead_letter *entries;
    json_t **holders;
    size_t count, cap;
} entry_list;

static void list_dispose(entry_list *l)
{
    for (size_t i = 0; i < l->count; i++)
        json_decref(l->holders[i]);
    td_free(l->entries);
    td_free(l->holders);
    memset(l, 0, sizeof *l);
}

/* Collects this subscription's entries (all of them, by position). */
static int collect_entry(const char *key, const char *json, size_t len, void *payload)
{
    entry_list *l = ((void **)payload)[0];
    const char *name = ((void **)payload)[1];
    td_dead_letter e;
    json_t *holder = NULL;
    int error = td_state__dead_letter_from_json(&e, &holder, key, json, len);
    if (error < 0 || strcmp(e.subscription, name) != 0) {
        json_decref(holder);
        return error;
    }
    if (l->count == l->cap) {
        size_t cap = l->cap ? l->cap * 2 : 16;
        td_dead_letter *entries = td_realloc(l->entries, cap * sizeof *entries);
        json_t **holders = entries ? td_realloc(l->holders, cap * sizeof *holders) : NULL;
        if (entries)
            l->entries = entries;
        if (holders == NULL) {
            json_decref(holder);
            return td_error__oom();
        }
        l->holders = holders;
        l->cap = cap;
    }
    l->entries[l->count] = e;
    l->holders[l->count++] = holder;
    return 0;
}

static int by_position(const void *a, const void *b)
{
    int64_t x = ((const td_dead_letter *)a)->position, y = ((const td_dead_letter *)b)->position;
    return (x > y) - (x < y);
}

static int load_entries(td_subscription *sub, entry_list *l)
{
    void *ctx[2] = {l, sub->name};
    int error = td_store_doc_list(sub->store, TD_COLL_DEAD_LETTERS, NULL, 0, collect_entry, ctx);
    if (error < 0)
        list_dispose(l);
    return error;
}

typedef struct found_event {
    td_event *event;
} found_event;

static int keep_event(const td_event *ev, void *payload)
{
    return td_event_dup(&((found_event *)payload)->event, ev);
}

/* Makes a redelivery item for an entry (reads its event). */
static int redelivery(td_subscription *sub, const td_dead_letter *e, item **out)
{
    found_event f = {NULL};
    int error = td_store__read_event_stored(sub->store, &e->event_id, keep_event, &f);
    if (error < 0)
        return error;
    item *it = td_calloc(1, sizeof *it);
    if (it == NULL) {
        td_event_free(f.event);
        return td_error__oom();
    }
    it->event = f.event;
    it->seq = NO_SEQ;
    memcpy(it->dead_letter, e->id, sizeof it->dead_letter);
    *out = it;
    return 0;
}

/* Queues redeliveries (sorted by position) at the front of their streams,
 * keeping their order. Lock not held. */
static int queue_front(td_subscription *sub, td_dead_letter **entries, size_t count)
{
    item **items = td_calloc(count ? count : 1, sizeof *items);
    int error = items ? 0 : td_error__oom();
    for (size_t i = 0; error == 0 && i < count; i++)
        error = redelivery(sub, entries[i], &items[i]);
    pthread_mutex_lock(&sub->lock);
    for (size_t i = count; i-- > 0;) { /* last first, so the first ends up in front */
        stream_q *s = NULL;
        if (error == 0 && td_sched__stream(sub, entries[i]->stream, &s) == 0) {
            td_sched__push(sub, s, items[i], true);
            td_sched__offer(sub, s);
            items[i] = NULL;
        }
        td_sched__item_free(items[i]);
    }
    pthread_cond_broadcast(&sub->lanes_cond);
    pthread_mutex_unlock(&sub->lock);
    td_free(items);
    return error;
}

int td_requests__restore(td_subscription *sub)
{
    entry_list l = {0};
    int error = load_entries(sub, &l);
    if (error < 0)
        return error;
    /* Sorting moves entries away from their holders; that is fine, the
     * holders only keep the strings alive until list_dispose. */
    if (l.count > 1)
        qsort(l.entries, l.count, sizeof *l.entries, by_position);
    td_dead_letter **retrying = td_calloc(l.count ? l.count : 1, sizeof *retrying);
    size_t n = 0;
    if (retrying == NULL)
        error = td_error__oom();
    pthread_mutex_lock(&sub->lock);
    for (size_t i = 0; error == 0 && i < l.count; i++) {
        td_dead_letter *e = &l.entries[i];
        stream_q *s = NULL;
        if (strcmp(e->status, "retrying") == 0)
            retrying[n++] = e;
        else if (strcmp(e->status, "dead") == 0 && sub->opts.dlq_mode == TD_DLQ_SEQUENCED &&
                 (error = td_sched__stream(sub, e->stream, &s)) == 0)
            td_sched__block(sub, s, e->id);
    }
    pthread_mutex_unlock(&sub->lock);
    if (error == 0)
        error = queue_front(sub, retrying, n);
    td_free(retrying);
    list_dispose(&l);
    return error;
}

/* ---- operator requests ---------------------------------------------------------- */

#define REQUESTS_PER_ROUND 64

typedef struct request {
    char key[TD_STATE_KEY_MAX + 1];
    char id[TD_DEAD_LETTER_ID_LEN + 1];
    bool drop;
} request;

typedef struct request_list {
    request items[REQUESTS_PER_ROUND];
    size_t count;
} request_list;

static int collect_request(const char *key, const char *json, size_t len, void *payload)
{
    request_list *l = payload;
    json_error_t err;
    const char *action = NULL;
    const char *bar = strchr(key, '|');
    if (l->count == REQUESTS_PER_ROUND)
        return 1;
    bool oom;
    json_t *doc = td_json__loadb(json, len, 0, &err, &oom);
    if (oom) /* not a malformed request: it stays for the next round */
        return td_error__oom();
    request *r = &l->items[l->count];
    int ok = doc && bar && json_unpack(doc, "{s:s}", "action", &action) == 0 &&
             strlen(bar + 1) == TD_DEAD_LETTER_ID_LEN;
    if (ok) {
        snprintf(r->key, sizeof r->key, "%s", key);
        memcpy(r->id, bar + 1, sizeof r->id);
        r->drop = strcmp(action, "drop") == 0;
        l->count++;
    }
    json_decref(doc);
    return 0;
}

typedef struct apply_args {
    const request *req;
    td_dead_letter *target;     /* NULL if the entry is gone */
    td_dead_letter **redeliver; /* in position order: the target (on retry), those behind it */
    size_t count;
} apply_args;

/* Drops the target (on drop), marks what is to be redelivered, removes the
 * request: one unit, so a crash leaves either the request or its effect. */
static int apply_unit(td_txn *txn, void *payload)
{
    apply_args *a = payload;
    int error = 0;
    if (a->target && a->req->drop)
        error = td_txn_doc_delete(txn, TD_COLL_DEAD_LETTERS, a->target->id);
    for (size_t i = 0; error == 0 && i < a->count; i++) {
        a->redeliver[i]->status = "retrying";
        a->redeliver[i]->behind = NULL;
        a->redeliver[i]->request = NULL;
        error = td_state__put_dead_letter(txn, a->redeliver[i]);
    }
    if (error == 0)
        error = td_txn_doc_delete(txn, TD_COLL_DLQ_REQUESTS, a->req->key);
    return error == TD_ENOTFOUND ? 0 : error;
}

/* Takes the stream for the reader; false if a lane has it now. A busy
 * stream still on the ready or delayed list is skipped by the lanes. */
static bool claim_stream(td_subscription *sub, const char *name, stream_q **out)
{
    pthread_mutex_lock(&sub->lock);
    bool ok = td_sched__stream(sub, name, out) == 0 && td_sched__claim(sub, *out);
    pthread_mutex_unlock(&sub->lock);
    return ok;
}

static void release_stream(td_subscription *sub, stream_q *s, const char *unblock)
{
    pthread_mutex_lock(&sub->lock);
    if (unblock)
        td_sched__unblock(sub, s, unblock);
    td_sched__release(sub, s);
    pthread_cond_broadcast(&sub->lanes_cond);
    pthread_mutex_unlock(&sub->lock);
}

static int carry_out(td_subscription *sub, const request *req, entry_list *l)
{
    apply_args a = {req, NULL, NULL, 0};
    stream_q *s = NULL;
    for (size_t i = 0; i < l->count; i++)
        if (strcmp(l->entries[i].id, req->id) == 0)
            a.target = &l->entries[i];
    if (a.target && !claim_stream(sub, a.target->stream, &s))
        return 0; /* a lane has the stream: next round */
    a.redeliver = td_calloc(l->count + 1, sizeof *a.redeliver);
    if (a.redeliver == NULL) {
        if (s)
            release_stream(sub, s, NULL);
        return td_error__oom();
    }
    /* l is in position order, and the target precedes those parked behind it */
    if (!a.req->drop && a.target)
        a.redeliver[a.count++] = a.target;
    for (size_t i = 0; a.target && i < l->count; i++)
        if (l->entries[i].behind && strcmp(l->entries[i].behind, req->id) == 0)
            a.redeliver[a.count++] = &l->entries[i];
    int error = td_transact(sub->store, apply_unit, &a);
    if (error == 0 && a.target)
        error = queue_front(sub, a.redeliver, a.count);
    if (s)
        release_stream(sub, s, error == 0 ? req->id : NULL);
    td_free(a.redeliver);
    return error;
}

int td_requests__process(td_subscription *sub)
{
    request_list requests;
    requests.count = 0;
    int error = td_state__list_prefix(sub->store, TD_COLL_DLQ_REQUESTS, sub->name, collect_request,
                                      &requests);
    if (error < 0 || requests.count == 0)
        return error;
    entry_list l = {0};
    if ((error = load_entries(sub, &l)) < 0)
        return error;
    if (l.count > 1)
        qsort(l.entries, l.count, sizeof *l.entries, by_position);
    for (size_t i = 0; error == 0 && i < requests.count; i++)
        error = carry_out(sub, &requests.items[i], &l);
    list_dispose(&l);
    return error;
}
