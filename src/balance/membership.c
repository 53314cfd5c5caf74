/*
 * membership.c: the instances sharing a store's work (balance.h): each
 * renews a document in tidings_instances under its id, {"label","host",
 * "pid","started_at","expires_at"}; the live ones are those not expired.
 * A member also holds a lock beside the store, "instance-SLOT" (an flock on
 * SQLite, a session's advisory lock on PostgreSQL) for the lowest slot
 * free when it joined, named in its document; the kernel or the database
 * drops it when the member dies: an unexpired document whose slot's lock
 * can be taken, or that names the slot a newcomer took, is an instance
 * that died, not counted and swept away at once, so a restart after a
 * crash counts right away. Slots keep the locks (files, on SQLite) as few
 * as the instances that ever ran at once. A renewal also sweeps away
 * documents long expired, so the collection stays as small as the fleet.
 */
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "balance/balance_int.h"
#include "core/alloc.h"
#include "core/error.h"
#include "core/internal.h"

#define SWEEP_AFTER_US (60 * 1000000LL) /* expired this long: swept away */

typedef struct beat_ctx {
    const td_balancer *b;
    td_time now;
    char stale[8][TD_INSTANCE_ID_LEN + 1];
    size_t stale_count;
} beat_ctx;

static int beat_unit(td_txn *txn, void *payload)
{
    beat_ctx *ctx = payload;
    const td_balancer *b = ctx->b;
    json_t *doc = json_pack("{s:s,s:s,s:I,s:I,s:I,s:I}", "label", b->label, "host", b->host, "pid",
                            (json_int_t)getpid(), "slot", (json_int_t)b->slot, "started_at",
                            (json_int_t)b->started_at, "expires_at",
                            (json_int_t)(ctx->now + TD_MEMBERSHIP_TTL_US));
    int error = doc ? td_txn_doc_put_json(txn, TD_COLL_INSTANCES, b->id, doc) : td_error__oom();
    json_decref(doc);
    for (size_t i = 0; error == 0 && i < ctx->stale_count; i++)
        if ((error = td_txn_doc_delete(txn, TD_COLL_INSTANCES, ctx->stale[i])) == TD_ENOTFOUND)
            error = 0;
    return error;
}

static int leave_unit(td_txn *txn, void *payload)
{
    const td_balancer *b = payload;
    int error = td_txn_doc_delete(txn, TD_COLL_INSTANCES, b->id);
    return error == TD_ENOTFOUND ? 0 : error;
}

/* One instance document, parsed; its strings borrowed from doc. */
static bool parse(const char *key, const char *json, size_t len, td_instance *out, json_t **doc)
{
    json_error_t err;
    *doc = json_loadb(json, len, 0, &err);
    if (*doc == NULL)
        return false;
    out->id = key;
    out->label = json_string_value(json_object_get(*doc, "label"));
    out->host = json_string_value(json_object_get(*doc, "host"));
    out->pid = (long long)json_integer_value(json_object_get(*doc, "pid"));
    out->started_at = json_integer_value(json_object_get(*doc, "started_at"));
    out->expires_at = json_integer_value(json_object_get(*doc, "expires_at"));
    out->live = out->expires_at > td_time_now();
    if (out->label == NULL)
        out->label = "?";
    if (out->host == NULL)
        out->host = "?";
    return true;
}

typedef struct list_ctx {
    td_instance_fn fn;
    void *payload;
} list_ctx;

static int list_one(const char *key, const char *json, size_t len, void *payload)
{
    list_ctx *ctx = payload;
    td_instance in;
    json_t *doc;
    if (!parse(key, json, len, &in, &doc))
        return 0; /* unreadable: not an instance anyone can name */
    int rc = ctx->fn(&in, ctx->payload);
    json_decref(doc);
    return rc;
}

int td_instances_list(td_store *store, td_instance_fn fn, void *payload)
{
    TD_REQUIRE(store && fn);
    list_ctx ctx = {fn, payload};
    return td_store_doc_list(store, TD_COLL_INSTANCES, NULL, 0, list_one, &ctx);
}

#define CANDIDATES_MAX 64
#define SLOTS_MAX      1024

typedef struct other {
    char id[TD_INSTANCE_ID_LEN + 1];
    long long slot;
} other;

typedef struct count_ctx {
    beat_ctx *beat;
    const td_balancer *self;
    /* other unexpired instances, whose locks tell whether they live */
    other others[CANDIDATES_MAX];
    size_t other_count;
    unsigned unchecked; /* unexpired beyond CANDIDATES_MAX: taken as live */
} count_ctx;

static void stale(beat_ctx *beat, const char *id)
{
    if (beat->stale_count < sizeof beat->stale / sizeof beat->stale[0])
        snprintf(beat->stale[beat->stale_count++], TD_INSTANCE_ID_LEN + 1, "%s", id);
}

static int count_one(const char *key, const char *json, size_t len, void *payload)
{
    count_ctx *ctx = payload;
    td_instance in;
    json_t *doc;
    if (strcmp(key, ctx->self->id) == 0 || !parse(key, json, len, &in, &doc))
        return 0;
    json_t *slot = json_object_get(doc, "slot");
    if (in.live && json_is_integer(slot) && json_integer_value(slot) == ctx->self->slot)
        stale(ctx->beat, key); /* its slot is ours now: it died */
    else if (in.live && json_is_integer(slot) && ctx->other_count < CANDIDATES_MAX) {
        other *o = &ctx->others[ctx->other_count++];
        o->slot = (long long)json_integer_value(slot);
        snprintf(o->id, sizeof o->id, "%s", key);
    } else if (in.live)
        ctx->unchecked++;
    else if (in.expires_at < ctx->beat->now - SWEEP_AFTER_US)
        stale(ctx->beat, key);
    json_decref(doc);
    return 0;
}

static void lock_name(char *out, size_t size, long long slot)
{
    snprintf(out, size, "instance-%lld", slot);
}

/* Whether the instance with this slot is alive: it holds the slot's lock. A
 * lock that can be taken belongs to an instance that died (the kernel or
 * the database dropped it). When it cannot be told, alive. */
static bool alive(td_store *store, long long slot)
{
    char name[32];
    td_store_lock *lock = NULL;
    lock_name(name, sizeof name, slot);
    if (td_store__lock(store, name, &lock) < 0)
        return true; /* TD_EBUSY: held; anything else: cannot tell */
    td_store__unlock(store, lock);
    return false;
}

/* The lowest slot whose lock is free: this instance's while it runs. */
static int take_slot(td_balancer *b)
{
    char name[32];
    for (long long slot = 0; slot < SLOTS_MAX; slot++) {
        lock_name(name, sizeof name, slot);
        int error = td_store__lock(b->store, name, &b->instance_lock);
        if (error == 0) {
            b->slot = slot;
            return 0;
        }
        if (error != TD_EBUSY)
            return error;
    }
    return td_error__set(TD_EBUSY, "%d instances run on this store already", SLOTS_MAX);
}

int td_membership__count(td_balancer *b, bool renew)
{
    static _Thread_local beat_ctx beat;
    static _Thread_local count_ctx count;
    int error = 0;
    char name[32];
    if (b->slot >= 0) { /* a server's lock goes with a cut session: take it back */
        lock_name(name, sizeof name, b->slot);
        if (td_store__lock_keep(b->store, name, &b->instance_lock) == TD_EBUSY)
            b->slot = -1; /* a newcomer took our slot for a dead one's: another */
    }
    if (b->slot < 0 && (error = take_slot(b)) < 0)
        return error;
    memset(&beat, 0, sizeof beat);
    memset(&count, 0, sizeof count);
    beat.b = b;
    beat.now = td_time_now();
    count.beat = &beat;
    count.self = b;
    if ((error = td_store_doc_list(b->store, TD_COLL_INSTANCES, NULL, 0, count_one, &count)) < 0)
        return error;
    unsigned live = 1 + count.unchecked, rank = 0;
    for (size_t i = 0; i < count.other_count; i++) {
        if (alive(b->store, count.others[i].slot)) {
            live++;
            rank += strcmp(count.others[i].id, b->id) < 0; /* ids sort by key */
        } else {
            stale(&beat, count.others[i].id);
        }
    }
    if ((renew || beat.stale_count > 0) && (error = td_transact(b->store, beat_unit, &beat)) < 0)
        return error;
    pthread_mutex_lock(&b->lock);
    b->live = live;
    b->rank = rank < live ? rank : 0;
    pthread_mutex_unlock(&b->lock);
    return 0;
}

int td_membership__leave(td_balancer *b)
{
    int error = td_transact(b->store, leave_unit, b);
    td_store__unlock(b->store, b->instance_lock); /* after: nobody takes it for dead first */
    b->instance_lock = NULL;
    b->slot = -1;
    return error;
}
